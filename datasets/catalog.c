#include "datasets/catalog.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/base/sha256.h"
#include "datasets/safepath.h"

/* Generated at build time from datasets/catalog.json (datasets/embed_catalog.cmake). */
extern const unsigned char hl_catalog_json_builtin[];
extern const size_t hl_catalog_json_builtin_len;

const char *hl_catalog_builtin(size_t *len) {
    /* The generated array carries a trailing NUL that is not part of the JSON. */
    *len = hl_catalog_json_builtin_len ? hl_catalog_json_builtin_len - 1 : 0;
    return (const char *)hl_catalog_json_builtin;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

static void file_free(hl_catalog_file *f) {
    free(f->name);
    free(f->url);
    free(f->rows_endpoint);
    free(f->rows_dataset);
    free(f->rows_config);
    free(f->rows_split);
}

static void entry_free(hl_catalog_entry *e) {
    free(e->id);
    free(e->title);
    free(e->license);
    free(e->homepage);
    free(e->revision);
    free(e->format);
    free(e->use);
    free(e->note);
    for (size_t i = 0; i < e->n_files; i++)
        file_free(&e->files[i]);
    free(e->files);
}

void hl_catalog_free(hl_catalog *cat) {
    if (!cat)
        return;
    for (size_t i = 0; i < cat->n_entries; i++)
        entry_free(&cat->entries[i]);
    free(cat->entries);
    cat->entries = NULL;
    cat->n_entries = 0;
}

/* Optional string member: "" when absent; error when present with another type. */
static hl_status get_str(const cJSON *obj, const char *key, int required, char **out, const char *where) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = NULL;
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return hl_fail(HL_ERR_FORMAT, "catalog: %s: missing \"%s\"", where, key);
        *out = dup_str("");
    } else if (!cJSON_IsString(v) || !v->valuestring) {
        return hl_fail(HL_ERR_FORMAT, "catalog: %s: \"%s\" must be a string", where, key);
    } else {
        if (required && !v->valuestring[0])
            return hl_fail(HL_ERR_FORMAT, "catalog: %s: \"%s\" is empty", where, key);
        *out = dup_str(v->valuestring);
    }
    return *out ? HL_OK : hl_fail(HL_ERR_NOMEM, "catalog: out of memory");
}

static int is_http_url(const char *u) {
    if (!strncmp(u, "https://", 8))
        u += 8;
    else if (!strncmp(u, "http://", 7))
        u += 7;
    else
        return 0;
    if (!*u || *u == '/')
        return 0; /* no host */
    for (; *u; u++)
        if ((unsigned char)*u <= 0x20 || *u == 0x7f)
            return 0; /* spaces / control bytes never belong in a URL we fetch */
    return 1;
}

static hl_status parse_file(const cJSON *jf, hl_catalog_file *f, const char *where) {
    char w[256];
    if (!cJSON_IsObject(jf))
        return hl_fail(HL_ERR_FORMAT, "catalog: %s: each file must be an object", where);
    f->size = -1;
    HL_TRY(get_str(jf, "name", 1, &f->name, where));
    snprintf(w, sizeof w, "%s file '%.80s'", where, f->name);
    if (!hl_path_is_safe_relative(f->name))
        return hl_fail(HL_ERR_FORMAT, "catalog: %s: unsafe file name (absolute, '..' or control bytes)", w);
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(jf, "url");
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(jf, "rows");
    if ((url != NULL) == (rows != NULL))
        return hl_fail(HL_ERR_FORMAT, "catalog: %s: needs exactly one of \"url\" and \"rows\"", w);
    if (url) {
        HL_TRY(get_str(jf, "url", 1, &f->url, w));
        if (!is_http_url(f->url))
            return hl_fail(HL_ERR_FORMAT, "catalog: %s: url must be http:// or https:// with a host", w);
    } else {
        if (!cJSON_IsObject(rows))
            return hl_fail(HL_ERR_FORMAT, "catalog: %s: \"rows\" must be an object", w);
        HL_TRY(get_str(rows, "endpoint", 1, &f->rows_endpoint, w));
        HL_TRY(get_str(rows, "dataset", 1, &f->rows_dataset, w));
        HL_TRY(get_str(rows, "config", 1, &f->rows_config, w));
        HL_TRY(get_str(rows, "split", 1, &f->rows_split, w));
        if (!is_http_url(f->rows_endpoint))
            return hl_fail(HL_ERR_FORMAT, "catalog: %s: rows endpoint must be http:// or https://", w);
    }
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(jf, "size");
    if (size) {
        /* Exact integers only: doubles are exact up to 2^53, far beyond any file here. */
        if (!cJSON_IsNumber(size) || size->valuedouble < 0 || size->valuedouble > 9007199254740992.0 ||
            size->valuedouble != (double)(int64_t)size->valuedouble)
            return hl_fail(HL_ERR_FORMAT, "catalog: %s: size must be a non-negative integer", w);
        f->size = (int64_t)size->valuedouble;
    }
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(jf, "sha256");
    if (sha) {
        if (!cJSON_IsString(sha) || !hl_sha256_is_hex(sha->valuestring))
            return hl_fail(HL_ERR_FORMAT, "catalog: %s: sha256 must be 64 hex digits", w);
        for (int i = 0; i < 65; i++)
            f->sha256[i] = (char)((sha->valuestring[i] >= 'A' && sha->valuestring[i] <= 'F')
                                      ? sha->valuestring[i] - 'A' + 'a'
                                      : sha->valuestring[i]);
    }
    return HL_OK;
}

static hl_status parse_fields(const cJSON *jfields, hl_catalog_entry *e, const char *where) {
    if (!jfields)
        return HL_OK;
    if (!cJSON_IsObject(jfields))
        return hl_fail(HL_ERR_FORMAT, "catalog: %s: \"fields\" must be an object", where);
    const char *names[3] = {"instruction", "input", "output"};
    const char *vals[3] = {"", "", ""};
    for (int i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(jfields, names[i]);
        if (v && !cJSON_IsString(v))
            return hl_fail(HL_ERR_FORMAT, "catalog: %s: fields.%s must be a string", where, names[i]);
        if (v)
            vals[i] = v->valuestring;
    }
    hl_status st = hl_field_map_set(&e->fields, vals[0], vals[1], vals[2]);
    if (st != HL_OK)
        return hl_fail_context(st, "catalog: %s: fields", where);
    e->has_fields = 1;
    return HL_OK;
}

static hl_status parse_entry(const cJSON *je, hl_catalog_entry *e, size_t index) {
    char where[128];
    snprintf(where, sizeof where, "entry %zu", index);
    if (!cJSON_IsObject(je))
        return hl_fail(HL_ERR_FORMAT, "catalog: %s: must be an object", where);
    HL_TRY(get_str(je, "id", 1, &e->id, where));
    snprintf(where, sizeof where, "entry '%.80s'", e->id);
    /* The id becomes a directory name: one safe path component. */
    if (!hl_path_is_safe_relative(e->id) || strchr(e->id, '/'))
        return hl_fail(HL_ERR_FORMAT, "catalog: %s: id must be a single safe name", where);
    char *kind = NULL;
    hl_status st = get_str(je, "kind", 1, &kind, where);
    if (st != HL_OK)
        return st;
    if (!strcmp(kind, "dataset"))
        e->kind = HL_CATALOG_DATASET;
    else if (!strcmp(kind, "model"))
        e->kind = HL_CATALOG_MODEL;
    free(kind);
    if (!e->kind)
        return hl_fail(HL_ERR_FORMAT, "catalog: %s: kind must be \"dataset\" or \"model\"", where);
    HL_TRY(get_str(je, "title", 1, &e->title, where));
    HL_TRY(get_str(je, "license", 1, &e->license, where));
    HL_TRY(get_str(je, "homepage", 0, &e->homepage, where));
    HL_TRY(get_str(je, "revision", 0, &e->revision, where));
    HL_TRY(get_str(je, "format", 0, &e->format, where));
    HL_TRY(get_str(je, "use", 0, &e->use, where));
    HL_TRY(get_str(je, "note", 0, &e->note, where));
    const cJSON *gated = cJSON_GetObjectItemCaseSensitive(je, "gated");
    if (gated && !cJSON_IsBool(gated))
        return hl_fail(HL_ERR_FORMAT, "catalog: %s: gated must be true or false", where);
    e->gated = gated && cJSON_IsTrue(gated);
    HL_TRY(parse_fields(cJSON_GetObjectItemCaseSensitive(je, "fields"), e, where));

    const cJSON *files = cJSON_GetObjectItemCaseSensitive(je, "files");
    if (!cJSON_IsArray(files) || cJSON_GetArraySize(files) == 0)
        return hl_fail(HL_ERR_FORMAT, "catalog: %s: \"files\" must be a non-empty array", where);
    int n = cJSON_GetArraySize(files);
    e->files = calloc((size_t)n, sizeof *e->files);
    if (!e->files)
        return hl_fail(HL_ERR_NOMEM, "catalog: out of memory");
    e->total_size = 0;
    const cJSON *jf;
    cJSON_ArrayForEach(jf, files) {
        hl_catalog_file *f = &e->files[e->n_files++];
        HL_TRY(parse_file(jf, f, where));
        for (size_t k = 0; k + 1 < e->n_files; k++)
            if (!strcmp(e->files[k].name, f->name))
                return hl_fail(HL_ERR_FORMAT, "catalog: %s: file name '%.80s' appears twice", where, f->name);
        if (f->size < 0 || e->total_size < 0)
            e->total_size = -1;
        else
            e->total_size += f->size;
    }
    return HL_OK;
}

hl_status hl_catalog_parse(hl_catalog *cat, const char *json, size_t len, const char *origin) {
    memset(cat, 0, sizeof *cat);
    snprintf(cat->origin, sizeof cat->origin, "%s", origin ? origin : "catalog");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        size_t off = (end && end >= json && end <= json + len) ? (size_t)(end - json) : 0;
        return hl_fail(HL_ERR_FORMAT, "catalog %s: not valid JSON (near byte %zu)", cat->origin, off);
    }
    hl_status st = HL_OK;
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "catalog_version");
    const cJSON *entries = cJSON_GetObjectItemCaseSensitive(root, "entries");
    if (!cJSON_IsObject(root) || !cJSON_IsNumber(ver) || ver->valuedouble != 1.0) {
        st = hl_fail(HL_ERR_FORMAT, "catalog %s: expected an object with \"catalog_version\": 1", cat->origin);
        goto done;
    }
    if (!cJSON_IsArray(entries)) {
        st = hl_fail(HL_ERR_FORMAT, "catalog %s: \"entries\" must be an array", cat->origin);
        goto done;
    }
    int n = cJSON_GetArraySize(entries);
    cat->entries = calloc(n > 0 ? (size_t)n : 1, sizeof *cat->entries);
    if (!cat->entries) {
        st = hl_fail(HL_ERR_NOMEM, "catalog: out of memory");
        goto done;
    }
    const cJSON *je;
    cJSON_ArrayForEach(je, entries) {
        hl_catalog_entry *e = &cat->entries[cat->n_entries++];
        st = parse_entry(je, e, cat->n_entries - 1);
        if (st != HL_OK) {
            hl_fail_context(st, "%s", cat->origin);
            goto done;
        }
        for (size_t k = 0; k + 1 < cat->n_entries; k++)
            if (!strcmp(cat->entries[k].id, e->id)) {
                st = hl_fail(HL_ERR_FORMAT, "catalog %s: id '%.80s' appears twice", cat->origin, e->id);
                goto done;
            }
    }
done:
    cJSON_Delete(root);
    if (st != HL_OK)
        hl_catalog_free(cat);
    return st;
}

hl_status hl_catalog_load(hl_catalog *cat) {
    const char *path = getenv("HYDRALORA_CATALOG");
    if (!path || !*path) {
        size_t len;
        const char *json = hl_catalog_builtin(&len);
        return hl_catalog_parse(cat, json, len, "built-in");
    }
    FILE *f = fopen(path, "rb");
    if (!f)
        return hl_fail(HL_ERR_NOT_FOUND, "cannot open HYDRALORA_CATALOG=%s: %s", path, strerror(errno));
    /* A catalog is a few tens of KB; 64 MiB is a generous bound against a wrong path. */
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (len < cap)
            break;
        if (cap >= ((size_t)64 << 20)) {
            free(buf);
            fclose(f);
            return hl_fail(HL_ERR_RANGE, "HYDRALORA_CATALOG=%s is larger than 64 MiB: not a catalog?", path);
        }
        char *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    int err = ferror(f);
    fclose(f);
    if (!buf)
        return hl_fail(HL_ERR_NOMEM, "out of memory reading %s", path);
    if (err) {
        free(buf);
        return hl_fail(HL_ERR_IO, "read error on %s", path);
    }
    hl_status st = hl_catalog_parse(cat, buf, len, path);
    free(buf);
    return st;
}

const hl_catalog_entry *hl_catalog_find(const hl_catalog *cat, const char *id) {
    for (size_t i = 0; cat && id && i < cat->n_entries; i++)
        if (!strcmp(cat->entries[i].id, id))
            return &cat->entries[i];
    return NULL;
}

hl_status hl_catalog_file_path(char *out, size_t size, const char *root, const hl_catalog_entry *e,
                               const hl_catalog_file *f) {
    char dir[4096], base[4096];
    if (!root) {
        HL_TRY(hl_data_dir(base, sizeof base));
        root = base;
    }
    HL_TRY(hl_path_join_safe(dir, sizeof dir, root, e->id));
    return hl_path_join_safe(out, size, dir, f->name);
}

void hl_catalog_entry_local(const hl_catalog_entry *e, const char *root, size_t *n_present, uint64_t *bytes_present) {
    *n_present = 0;
    *bytes_present = 0;
    for (size_t i = 0; i < e->n_files; i++) {
        char path[4096];
        struct stat st;
        if (hl_catalog_file_path(path, sizeof path, root, e, &e->files[i]) != HL_OK)
            continue;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (e->files[i].size >= 0 && (int64_t)st.st_size != e->files[i].size)
            continue;
        (*n_present)++;
        *bytes_present += (uint64_t)st.st_size;
    }
    hl_clear_error();
}
