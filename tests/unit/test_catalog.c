/* The built-in catalog: parses, has the entries the project needs, and its sizes and
 * sha256 agree with the copies in shared/ (hashed here); URL rewriting (mirror, HF_ENDPOINT),
 * the token lookup order, the data directory rule, and rejection of bad catalogs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/base/sha256.h"
#include "datasets/catalog.h"
#include "datasets/remote.h"
#include "hl_test.h"

static hl_status parse_str(hl_catalog *cat, const char *json) {
    return hl_catalog_parse(cat, json, strlen(json), "test");
}

/* A local copy in shared/ for a catalog file, or NULL. */
static int shared_copy(const char *id, const char *name, char *out, size_t size) {
    const char *sh = hl_test_shared_dir();
    if (!strcmp(id, "bbh"))
        snprintf(out, size, "%s/datasets/bbh/%s", sh, name);
    else if (!strcmp(id, "gsm8k"))
        snprintf(out, size, "%s/datasets/gsm8k/%s", sh, name);
    else if (!strcmp(id, "humaneval"))
        snprintf(out, size, "%s/datasets/humaneval/%s", sh, name);
    else if (!strcmp(id, "stories260K"))
        snprintf(out, size, "%s/models/stories260K/%s", sh, name);
    else if (!strcmp(id, "llama-2-7b-hf") && !strcmp(name, "tokenizer.model"))
        snprintf(out, size, "%s/models/llama2c-tokenizer/tokenizer.model", sh);
    else
        return 0;
    return access(out, R_OK) == 0;
}

static void test_builtin(void) {
    unsetenv("HYDRALORA_CATALOG");
    hl_catalog cat;
    CHECK(hl_catalog_load(&cat) == HL_OK, "built-in catalog: %s", hl_last_error());
    CHECK(!strcmp(cat.origin, "built-in"), "origin %s", cat.origin);
    const char *ids[] = {"bbh", "gsm8k", "humaneval", "dolly-15k", "codealpaca-20k",
                         "flanv2", "alpaca-cleaned", "stories260K", "llama-2-7b-hf"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        CHECK(hl_catalog_find(&cat, ids[i]) != NULL, "entry %s", ids[i]);
    const hl_catalog_entry *bbh = hl_catalog_find(&cat, "bbh");
    CHECK(bbh && bbh->n_files == 55 && bbh->total_size == 2676508 + 77735 + 1068, "bbh files %zu size %lld",
          bbh ? bbh->n_files : 0, bbh ? (long long)bbh->total_size : 0);
    const hl_catalog_entry *gsm = hl_catalog_find(&cat, "gsm8k");
    CHECK(gsm && gsm->has_fields && !strcmp(gsm->fields.instruction, "question") &&
              !strcmp(gsm->fields.output, "answer"),
          "gsm8k field map");
    const hl_catalog_entry *llama = hl_catalog_find(&cat, "llama-2-7b-hf");
    CHECK(llama && llama->gated && llama->kind == HL_CATALOG_MODEL && llama->total_size == -1, "llama gated model");
    const hl_catalog_entry *flan = hl_catalog_find(&cat, "flanv2");
    CHECK(flan && flan->n_files == 1 && !flan->files[0].url && flan->files[0].rows_dataset &&
              !strcmp(flan->files[0].rows_dataset, "lorahub/flanv2"),
          "flan rows file");
    /* every file with a copy in shared/ has exactly its size and sha256 */
    int checked = 0;
    for (size_t i = 0; i < cat.n_entries; i++) {
        const hl_catalog_entry *e = &cat.entries[i];
        for (size_t k = 0; k < e->n_files; k++) {
            const hl_catalog_file *f = &e->files[k];
            char path[1024], hex[65];
            uint64_t size = 0;
            if (!shared_copy(e->id, f->name, path, sizeof path))
                continue;
            CHECK(f->sha256[0] && f->size >= 0, "%s/%s has no sha256/size although shared/ has it", e->id, f->name);
            CHECK(hl_sha256_file(path, hex, &size) == HL_OK && !strcmp(hex, f->sha256) && (int64_t)size == f->size,
                  "%s/%s: catalog %s %lld, shared %s %llu", e->id, f->name, f->sha256, (long long)f->size, hex,
                  (unsigned long long)size);
            checked++;
        }
    }
    CHECK(checked == 55 + 3 + 2 + 2 + 1, "files checked against shared/: %d", checked);
    /* BBH URLs: pinned commit, upstream layout bbh/<task>.json and cot-prompts/<task>.txt */
    int pinned = 1;
    for (size_t k = 0; bbh && k < bbh->n_files; k++)
        pinned &= strstr(bbh->files[k].url, "/suzgunmirac/BIG-Bench-Hard/9ee07bd481feebf959a6b59d61ea57bdcf30964d/") != NULL;
    CHECK(pinned, "bbh URLs pinned");
    hl_catalog_free(&cat);
}

static void test_rewrite(void) {
    char out[1024];
    unsetenv("HYDRALORA_MIRROR");
    unsetenv("HF_ENDPOINT");
    const char *gh = "https://raw.githubusercontent.com/openai/grade-school-math/abc/grade_school_math/data/test.jsonl";
    const char *hf = "https://huggingface.co/karpathy/tinyllamas/resolve/0bd2/stories260K/tok512.bin";
    CHECK(hl_remote_resolve(gh, out, sizeof out) == HL_OK && !strcmp(out, gh), "no rewrite");
    CHECK(hl_remote_resolve(hf, out, sizeof out) == HL_OK && !strcmp(out, hf), "hf default endpoint");
    setenv("HF_ENDPOINT", "https://hf-mirror.example/", 1);
    CHECK(hl_remote_resolve(hf, out, sizeof out) == HL_OK &&
              !strcmp(out, "https://hf-mirror.example/karpathy/tinyllamas/resolve/0bd2/stories260K/tok512.bin"),
          "HF_ENDPOINT: %s", out);
    CHECK(hl_remote_resolve(gh, out, sizeof out) == HL_OK && !strcmp(out, gh), "HF_ENDPOINT leaves GitHub alone");
    setenv("HYDRALORA_MIRROR", "http://127.0.0.1:8000/m/", 1);
    CHECK(hl_remote_resolve(gh, out, sizeof out) == HL_OK &&
              !strcmp(out, "http://127.0.0.1:8000/m/raw.githubusercontent.com/openai/grade-school-math/abc/"
                           "grade_school_math/data/test.jsonl"),
          "mirror: %s", out);
    CHECK(hl_remote_resolve(hf, out, sizeof out) == HL_OK &&
              !strcmp(out, "http://127.0.0.1:8000/m/huggingface.co/karpathy/tinyllamas/resolve/0bd2/stories260K/tok512.bin"),
          "mirror wins over HF_ENDPOINT: %s", out);
    CHECK(hl_remote_resolve("https://user:pw@datasets-server.huggingface.co/rows?x=1", out, sizeof out) == HL_OK &&
              !strcmp(out, "http://127.0.0.1:8000/m/datasets-server.huggingface.co/rows?x=1"),
          "mirror drops userinfo: %s", out);
    setenv("HYDRALORA_MIRROR", "ftp://x", 1);
    CHECK(hl_remote_resolve(gh, out, sizeof out) == HL_ERR_ARG, "bad mirror scheme");
    unsetenv("HYDRALORA_MIRROR");
    unsetenv("HF_ENDPOINT");
    hl_url_redact("https://me:secret@host.example:8443/p?q", out, sizeof out);
    CHECK(!strcmp(out, "https://host.example:8443/p?q"), "redact: %s", out);
    CHECK(hl_url_same_origin("https://huggingface.co/a", "https://HuggingFace.co:443/b"), "same origin");
    CHECK(!hl_url_same_origin("https://huggingface.co/a", "https://cdn-lfs.huggingface.co/a"), "other host");
    CHECK(!hl_url_same_origin("http://127.0.0.1:80/a", "http://127.0.0.1:8080/a"), "other port");
    CHECK(!hl_url_same_origin("http://localhost:8080/a", "http://127.0.0.1:8080/a"), "other name");
    CHECK(!hl_url_same_origin("http://huggingface.co/a", "https://huggingface.co/a"), "other scheme");
}

static void test_token(void) {
    char dir[] = "/tmp/hl_test_token_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char tok[256];
    unsetenv("HF_TOKEN");
    unsetenv("HUGGING_FACE_HUB_TOKEN");
    unsetenv("HF_TOKEN_PATH");
    unsetenv("XDG_CACHE_HOME");
    setenv("HF_HOME", dir, 1);
    setenv("HOME", dir, 1);
    CHECK(!hl_hf_token(tok, sizeof tok), "no token anywhere");
    char path[512];
    snprintf(path, sizeof path, "%s/token", dir);
    FILE *f = fopen(path, "w");
    fputs("  hf_fromfile\n", f);
    fclose(f);
    CHECK(hl_hf_token(tok, sizeof tok) && !strcmp(tok, "hf_fromfile"), "token file (trimmed): %s", tok);
    setenv("HUGGING_FACE_HUB_TOKEN", "hf_legacy", 1);
    CHECK(hl_hf_token(tok, sizeof tok) && !strcmp(tok, "hf_legacy"), "HUGGING_FACE_HUB_TOKEN");
    setenv("HF_TOKEN", "hf_env", 1);
    CHECK(hl_hf_token(tok, sizeof tok) && !strcmp(tok, "hf_env"), "HF_TOKEN first");
    setenv("HF_TOKEN", "bad\r\nX-Injected: 1", 1);
    CHECK(hl_hf_token(tok, sizeof tok) && !strcmp(tok, "hf_legacy"), "a token with CR/LF is refused");
    unsetenv("HF_TOKEN");
    unsetenv("HUGGING_FACE_HUB_TOKEN");
    unlink(path);
    rmdir(dir);
}

static void test_data_dir(void) {
    char d[1024];
    setenv("HYDRALORA_DATA", "/srv/data//", 1);
    CHECK(hl_data_dir(d, sizeof d) == HL_OK && !strcmp(d, "/srv/data"), "HYDRALORA_DATA: %s", d);
    unsetenv("HYDRALORA_DATA");
    setenv("XDG_DATA_HOME", "/x/share", 1);
    CHECK(hl_data_dir(d, sizeof d) == HL_OK && !strcmp(d, "/x/share/hydralora"), "XDG_DATA_HOME: %s", d);
    setenv("XDG_DATA_HOME", "relative/ignored", 1);
    setenv("HOME", "/home/u", 1);
    CHECK(hl_data_dir(d, sizeof d) == HL_OK && !strcmp(d, "/home/u/.local/share/hydralora"), "HOME: %s", d);
    unsetenv("XDG_DATA_HOME");
    hl_catalog cat;
    CHECK(hl_catalog_load(&cat) == HL_OK, "load");
    const hl_catalog_entry *bbh = hl_catalog_find(&cat, "bbh");
    for (size_t k = 0; bbh && k < bbh->n_files; k++)
        if (!strcmp(bbh->files[k].name, "data/snarks.json")) {
            CHECK(hl_catalog_file_path(d, sizeof d, "/r", bbh, &bbh->files[k]) == HL_OK &&
                      !strcmp(d, "/r/bbh/data/snarks.json"),
                  "file path %s", d);
        }
    hl_catalog_free(&cat);
}

static void test_bad_catalogs(void) {
    hl_catalog cat;
    const char *head = "{\"catalog_version\": 1, \"entries\": [";
    char buf[2048];
#define ENTRY(files) "{\"id\": \"x\", \"kind\": \"dataset\", \"title\": \"t\", \"license\": \"MIT\", \"files\": [" files "]}"
    snprintf(buf, sizeof buf, "%s%s]}", head, ENTRY("{\"name\": \"a.json\", \"url\": \"https://h/a.json\"}"));
    CHECK(parse_str(&cat, buf) == HL_OK && cat.n_entries == 1 && cat.entries[0].files[0].size == -1,
          "minimal entry: %s", hl_last_error());
    hl_catalog_free(&cat);
    const char *bad_files[] = {
        "{\"name\": \"../a.json\", \"url\": \"https://h/a\"}",
        "{\"name\": \"/etc/passwd\", \"url\": \"https://h/a\"}",
        "{\"name\": \"a/../../b\", \"url\": \"https://h/a\"}",
        "{\"name\": \"a.json\", \"url\": \"file:///etc/passwd\"}",
        "{\"name\": \"a.json\", \"url\": \"https://\"}",
        "{\"name\": \"a.json\", \"url\": \"https://h/a b\"}",
        "{\"name\": \"a.json\"}",
        "{\"name\": \"a.json\", \"url\": \"https://h/a\", \"sha256\": \"abc\"}",
        "{\"name\": \"a.json\", \"url\": \"https://h/a\", \"size\": -1}",
        "{\"name\": \"a.json\", \"url\": \"https://h/a\", \"size\": 1.5}",
        "{\"name\": \"a.json\", \"url\": \"https://h/a\", \"rows\": {}}",
        "{\"name\": \"a.json\", \"url\": \"https://h/a\"}, {\"name\": \"a.json\", \"url\": \"https://h/b\"}",
        "\"a.json\"",
    };
    for (size_t i = 0; i < sizeof bad_files / sizeof bad_files[0]; i++) {
        snprintf(buf, sizeof buf, "%s{\"id\": \"x\", \"kind\": \"dataset\", \"title\": \"t\", \"license\": \"MIT\", "
                                  "\"files\": [%s]}]}",
                 head, bad_files[i]);
        CHECK(parse_str(&cat, buf) == HL_ERR_FORMAT, "bad file %zu accepted: %s", i, bad_files[i]);
    }
    const char *bad_docs[] = {
        "",
        "{",
        "[]",
        "{\"catalog_version\": 2, \"entries\": []}",
        "{\"catalog_version\": 1}",
        "{\"catalog_version\": 1, \"entries\": [{\"id\": \"../x\", \"kind\": \"dataset\", \"title\": \"t\", "
        "\"license\": \"l\", \"files\": [{\"name\": \"a\", \"url\": \"https://h/a\"}]}]}",
        "{\"catalog_version\": 1, \"entries\": [{\"id\": \"a/b\", \"kind\": \"dataset\", \"title\": \"t\", "
        "\"license\": \"l\", \"files\": [{\"name\": \"a\", \"url\": \"https://h/a\"}]}]}",
        "{\"catalog_version\": 1, \"entries\": [{\"id\": \"x\", \"kind\": \"weights\", \"title\": \"t\", "
        "\"license\": \"l\", \"files\": [{\"name\": \"a\", \"url\": \"https://h/a\"}]}]}",
        "{\"catalog_version\": 1, \"entries\": [{\"id\": \"x\", \"kind\": \"model\", \"title\": \"t\", "
        "\"license\": \"l\", \"files\": []}]}",
        "{\"catalog_version\": 1, \"entries\": [{\"id\": \"x\", \"kind\": \"model\", \"title\": 3, "
        "\"license\": \"l\", \"files\": [{\"name\": \"a\", \"url\": \"https://h/a\"}]}]}",
    };
    for (size_t i = 0; i < sizeof bad_docs / sizeof bad_docs[0]; i++)
        CHECK(parse_str(&cat, bad_docs[i]) == HL_ERR_FORMAT, "bad catalog %zu accepted", i);
    snprintf(buf, sizeof buf, "%s%s,%s]}", head, ENTRY("{\"name\": \"a\", \"url\": \"https://h/a\"}"),
             ENTRY("{\"name\": \"a\", \"url\": \"https://h/a\"}"));
    CHECK(parse_str(&cat, buf) == HL_ERR_FORMAT && strstr(hl_last_error(), "twice"), "duplicate id");

    /* HYDRALORA_CATALOG replaces the built-in catalog */
    char path[] = "/tmp/hl_test_catalog_XXXXXX";
    int fd = mkstemp(path);
    snprintf(buf, sizeof buf, "%s%s]}", head, ENTRY("{\"name\": \"a.json\", \"url\": \"https://h/a.json\"}"));
    CHECK(fd >= 0 && write(fd, buf, strlen(buf)) == (ssize_t)strlen(buf), "write catalog");
    close(fd);
    setenv("HYDRALORA_CATALOG", path, 1);
    CHECK(hl_catalog_load(&cat) == HL_OK && cat.n_entries == 1 && !strcmp(cat.origin, path), "override");
    hl_catalog_free(&cat);
    setenv("HYDRALORA_CATALOG", "/nonexistent/catalog.json", 1);
    CHECK(hl_catalog_load(&cat) == HL_ERR_NOT_FOUND && strstr(hl_last_error(), "HYDRALORA_CATALOG"), "missing override");
    unsetenv("HYDRALORA_CATALOG");
    unlink(path);
}

int main(void) {
    test_builtin();
    test_rewrite();
    test_token();
    test_data_dir();
    test_bad_catalogs();
    return hl_test_finish();
}
