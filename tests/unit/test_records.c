/* Records: formats (JSON lines, JSON array, BBH examples, gzip), schemas, custom field
 * maps, malformed lines with line numbers, empty files, prompt + label layout (ids checked
 * against SentencePiece), the validation split and the inspection numbers.
 * Expected values come from the shared data's READMEs / MANIFEST (record counts), from
 * Python's sentencepiece (token ids, see the comments), or from hand-written inputs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/model/tokenizer/tokenizer.h"
#include "datasets/inspect.h"
#include "core/text/records.h"
#include "hl_test.h"

static char g_dir[256];

static const char *write_tmp(const char *name, const char *text) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fwrite(text, 1, strlen(text), f);
    fclose(f);
    return path;
}

static int has_issue(const hl_dataset *ds, unsigned line, const char *needle) {
    for (size_t i = 0; i < ds->n_issues; i++)
        if (ds->issues[i].line == line && strstr(ds->issues[i].reason, needle))
            return 1;
    return 0;
}

static void test_alpaca_array(void) {
    const char *p = write_tmp("alpaca.json",
                              "[\n"
                              "  {\"instruction\": \"Give three tips.\", \"input\": \"\", \"output\": \"Eat.\"},\n"
                              "  {\"instruction\": \"Translate\", \"input\": \"Bonjour\", \"output\": \"Hello\", "
                              "\"extra\": 1},\n"
                              "  {\"instruction\": \"No input field\", \"output\": \"ok\"}\n"
                              "]\n");
    hl_dataset ds;
    CHECK(hl_records_load(&ds, p, NULL) == HL_OK, "alpaca load: %s", hl_last_error());
    CHECK(ds.format == HL_RECORDS_JSON_ARRAY, "format %d", ds.format);
    CHECK(!strcmp(ds.schema, "alpaca"), "schema %s", ds.schema);
    CHECK(ds.n_records == 3 && ds.n_malformed == 0, "n %zu bad %zu", ds.n_records, ds.n_malformed);
    if (ds.n_records == 3) {
        char *pr;
        size_t n;
        CHECK(hl_record_prompt(&ds.records[0], &pr, &n) == HL_OK && !strcmp(pr, "Give three tips.") && n == 16,
              "prompt without input: '%s'", pr);
        free(pr);
        CHECK(hl_record_prompt(&ds.records[1], &pr, &n) == HL_OK && !strcmp(pr, "Translate\nBonjour"),
              "prompt with input: '%s'", pr);
        free(pr);
        CHECK(!strcmp(ds.records[2].input, "") && !strcmp(ds.records[2].output, "ok"), "optional input");
        CHECK(ds.records[0].line == 2 && ds.records[1].line == 3 && ds.records[2].line == 4,
              "array element lines %u %u %u", ds.records[0].line, ds.records[1].line, ds.records[2].line);
    }
    /* field stats: "input" present in 2 of 3 objects, empty in 1; "extra" in 1 */
    int found = 0;
    for (int i = 0; i < ds.n_fields; i++) {
        if (!strcmp(ds.fields[i].name, "input")) {
            found++;
            CHECK(ds.fields[i].present == 2 && ds.fields[i].empty == 1, "input stats %zu %zu", ds.fields[i].present,
                  ds.fields[i].empty);
        }
        if (!strcmp(ds.fields[i].name, "extra")) {
            found++;
            CHECK(ds.fields[i].present == 1, "extra present %zu", ds.fields[i].present);
        }
    }
    CHECK(found == 2, "field stats found %d", found);
    hl_dataset_free(&ds);
}

static void test_shared_files(void) {
    char path[1024];
    hl_dataset ds;
    /* counts from shared/datasets/README.md: GSM8K train 7,473, test 1,319; HumanEval 164 */
    snprintf(path, sizeof path, "%s/datasets/gsm8k/train.jsonl", hl_test_shared_dir());
    CHECK(hl_records_load(&ds, path, NULL) == HL_OK, "gsm8k train: %s", hl_last_error());
    CHECK(ds.n_records == 7473 && ds.n_malformed == 0, "gsm8k train n=%zu bad=%zu", ds.n_records, ds.n_malformed);
    CHECK(!strcmp(ds.schema, "gsm8k") && ds.format == HL_RECORDS_JSONL, "gsm8k schema %s", ds.schema);
    CHECK(ds.n_records && !strncmp(ds.records[0].instruction, "Natalia sold clips", 18), "gsm8k first question");
    CHECK(ds.n_records && strstr(ds.records[0].output, "#### 72"), "gsm8k first answer");
    hl_dataset_free(&ds);
    snprintf(path, sizeof path, "%s/datasets/gsm8k/test.jsonl", hl_test_shared_dir());
    CHECK(hl_records_load(&ds, path, NULL) == HL_OK && ds.n_records == 1319, "gsm8k test n=%zu", ds.n_records);
    hl_dataset_free(&ds);
    snprintf(path, sizeof path, "%s/datasets/humaneval/HumanEval.jsonl.gz", hl_test_shared_dir());
    CHECK(hl_records_load(&ds, path, NULL) == HL_OK, "humaneval: %s", hl_last_error());
    CHECK(ds.n_records == 164 && ds.gzipped && !strcmp(ds.schema, "humaneval"), "humaneval n=%zu gz=%d %s",
          ds.n_records, ds.gzipped, ds.schema);
    hl_dataset_free(&ds);

    /* BBH: every task file against MANIFEST.tsv's example counts (6,511 in total) */
    snprintf(path, sizeof path, "%s/datasets/bbh/MANIFEST.tsv", hl_test_shared_dir());
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "open %s", path);
    if (!f)
        return;
    char line[512];
    size_t total = 0, files = 0;
    while (fgets(line, sizeof line, f)) {
        char name[256], kind[64];
        long examples;
        if (sscanf(line, "%255s %63s %ld", name, kind, &examples) != 3 || strcmp(kind, "test-data"))
            continue;
        snprintf(path, sizeof path, "%s/datasets/bbh/%s", hl_test_shared_dir(), name);
        hl_status st = hl_records_load(&ds, path, NULL);
        CHECK(st == HL_OK && ds.n_records == (size_t)examples && ds.format == HL_RECORDS_JSON_EXAMPLES &&
                  !strcmp(ds.schema, "bbh"),
              "%s: n=%zu expected %ld (%s)", name, ds.n_records, examples, hl_last_error());
        total += ds.n_records;
        files++;
        hl_dataset_free(&ds);
    }
    fclose(f);
    CHECK(files == 27 && total == 6511, "bbh files %zu total %zu", files, total);
}

static void test_custom_map(void) {
    const char *p = write_tmp("custom.jsonl", "{\"q\": \"What?\", \"ctx\": \"Some context\", \"a\": \"This.\"}\n"
                                              "{\"q\": \"Why?\", \"a\": \"Because.\"}\n");
    hl_field_map map = {{0}, {0}, {0}};
    CHECK(hl_field_map_parse(&map, "output=a,instruction=q,input=ctx") == HL_OK, "map parse: %s", hl_last_error());
    hl_records_options o = {.map = &map};
    hl_dataset ds;
    CHECK(hl_records_load(&ds, p, &o) == HL_OK, "custom load: %s", hl_last_error());
    CHECK(ds.n_records == 2 && !strcmp(ds.schema, "custom"), "custom n=%zu", ds.n_records);
    if (ds.n_records == 2) {
        CHECK(!strcmp(ds.records[0].instruction, "What?") && !strcmp(ds.records[0].input, "Some context") &&
                  !strcmp(ds.records[0].output, "This."),
              "custom fields");
        CHECK(!strcmp(ds.records[1].input, ""), "custom missing input is empty");
    }
    hl_dataset_free(&ds);
    /* without a map this layout is unknown: every line is reported, and the load fails */
    hl_status st = hl_records_load(&ds, p, NULL);
    CHECK(st == HL_ERR_FORMAT && strstr(hl_last_error(), "unknown field layout") && strstr(hl_last_error(), "line 1"),
          "unknown layout: %s", hl_last_error());
    /* map syntax errors */
    hl_field_map m2 = {{0}, {0}, {0}};
    CHECK(hl_field_map_parse(&m2, "instruction=q") != HL_OK, "map without output accepted");
    CHECK(hl_field_map_parse(&m2, "prompt=q,output=a") != HL_OK, "unknown role accepted");
    CHECK(hl_field_map_parse(&m2, "instruction=x,output=x") != HL_OK, "same field for both accepted");
    CHECK(hl_field_map_parse(&m2, "instruction=question,output=answer") == HL_OK && m2.input[0] == '\0',
          "map without input");
}

static void test_malformed(void) {
    const char *p = write_tmp("bad.jsonl",
                              "{\"question\": \"one\", \"answer\": \"1\"}\n"       /* 1 ok (sets the schema) */
                              "{\"question\": \"two\", \"answer\": \n"              /* 2 bad JSON */
                              "{\"question\": \"three\", \"answer\": \"3\"}\r\n"   /* 3 ok, CRLF */
                              "{\"question\": \"four\"}\n"                          /* 4 missing answer */
                              "{\"question\": \"five\", \"answer\": 5}\n"           /* 5 wrong type */
                              "[1, 2]\n"                                            /* 6 not an object */
                              "   \n"                                               /* 7 blank: skipped */
                              "{\"question\": \"eight\", \"answer\": \"8\"} junk\n" /* 8 trailing garbage */
                              "{\"question\": \"nine\", \"answer\": \"9\"}");       /* 9 ok, no final newline */
    hl_dataset ds;
    CHECK(hl_records_load(&ds, p, NULL) == HL_OK, "malformed load: %s", hl_last_error());
    CHECK(ds.n_records == 3 && ds.n_malformed == 5, "n=%zu malformed=%zu", ds.n_records, ds.n_malformed);
    CHECK(has_issue(&ds, 2, "bad JSON"), "line 2 bad JSON");
    CHECK(has_issue(&ds, 4, "missing field 'answer'"), "line 4 missing field");
    CHECK(has_issue(&ds, 5, "is a number, expected a string"), "line 5 wrong type");
    CHECK(has_issue(&ds, 6, "expected a JSON object"), "line 6 not an object");
    CHECK(has_issue(&ds, 8, "bad JSON"), "line 8 trailing garbage");
    if (ds.n_records == 3) {
        CHECK(ds.records[1].line == 3 && !strcmp(ds.records[1].output, "3"), "CRLF record");
        CHECK(ds.records[2].line == 9 && !strcmp(ds.records[2].instruction, "nine"), "last line without newline");
    }
    hl_dataset_free(&ds);

    /* a JSON array with a bad element: the error names the element's line, the rest survive */
    p = write_tmp("bad.json", "[\n"
                              " {\"instruction\": \"a\", \"output\": \"b\"},\n"
                              " {\"instruction\": \"c\", \"output\": nope},\n"
                              " {\"instruction\": \"e\",\n"
                              "  \"output\": \"f\"}\n"
                              "]");
    CHECK(hl_records_load(&ds, p, NULL) == HL_OK, "array load: %s", hl_last_error());
    CHECK(ds.n_records == 2 && ds.n_malformed == 1 && has_issue(&ds, 3, "bad JSON"), "array bad element n=%zu bad=%zu",
          ds.n_records, ds.n_malformed);
    CHECK(ds.n_records == 2 && ds.records[1].line == 4, "multi-line element line %u",
          ds.n_records == 2 ? ds.records[1].line : 0);
    hl_dataset_free(&ds);

    /* an unterminated array keeps what came before and reports the rest */
    p = write_tmp("cut.json", "[{\"instruction\": \"a\", \"output\": \"b\"}, {\"instruction\": \"c\", \"outp");
    CHECK(hl_records_load(&ds, p, NULL) == HL_OK && ds.n_records == 1 && ds.n_malformed == 1, "truncated array");
    hl_dataset_free(&ds);

    /* files without a usable record are errors */
    p = write_tmp("empty.jsonl", "");
    CHECK(hl_records_load(&ds, p, NULL) == HL_ERR_FORMAT && strstr(hl_last_error(), "empty"), "empty file: %s",
          hl_last_error());
    p = write_tmp("blank.jsonl", "\n  \n\n");
    CHECK(hl_records_load(&ds, p, NULL) == HL_ERR_FORMAT, "blank file");
    p = write_tmp("emptyarr.json", "[ ]");
    CHECK(hl_records_load(&ds, p, NULL) == HL_ERR_FORMAT, "empty array");
    p = write_tmp("allbad.jsonl", "not json\n{\"question\": 1, \"answer\": \"x\"}\n");
    CHECK(hl_records_load(&ds, p, NULL) == HL_ERR_FORMAT && strstr(hl_last_error(), "no usable record") &&
              strstr(hl_last_error(), "line 1"),
          "all bad: %s", hl_last_error());
    CHECK(hl_records_load(&ds, "/nonexistent/x.jsonl", NULL) == HL_ERR_NOT_FOUND, "missing file");
    /* a BOM and a single pretty-printed object */
    p = write_tmp("single.json", "\xEF\xBB\xBF{\n \"instruction\": \"x\",\n \"output\": \"y\"\n}\n");
    CHECK(hl_records_load(&ds, p, NULL) == HL_OK && ds.n_records == 1, "single object with BOM: %s", hl_last_error());
    hl_dataset_free(&ds);
    /* rows-API page shape {"rows": [{"row_idx": 0, "row": {...}}]} */
    p = write_tmp("page.json", "{\"rows\": [{\"row_idx\": 0, \"row\": {\"inputs\": \"x\", \"targets\": \"y\"}, "
                               "\"truncated_cells\": []}], \"num_rows_total\": 1}");
    CHECK(hl_records_load(&ds, p, NULL) == HL_OK && ds.n_records == 1 && !strcmp(ds.schema, "flan"), "rows page");
    hl_dataset_free(&ds);
}

static void test_split(void) {
    size_t *tr, *va, ntr, nva;
    CHECK(hl_records_split(100, 0.1, 0, 42, &tr, &ntr, &va, &nva) == HL_OK, "split");
    CHECK(ntr == 90 && nva == 10, "split sizes %zu %zu", ntr, nva);
    unsigned char seen[100] = {0};
    int sorted = 1;
    for (size_t i = 0; i < ntr; i++) {
        seen[tr[i]]++;
        if (i && tr[i] <= tr[i - 1])
            sorted = 0;
    }
    for (size_t i = 0; i < nva; i++) {
        seen[va[i]]++;
        if (i && va[i] <= va[i - 1])
            sorted = 0;
    }
    int cover = 1;
    for (int i = 0; i < 100; i++)
        cover &= seen[i] == 1;
    CHECK(sorted && cover, "split is a sorted partition");
    size_t *tr2, *va2, ntr2, nva2;
    hl_records_split(100, 0.1, 0, 42, &tr2, &ntr2, &va2, &nva2);
    CHECK(nva2 == nva && !memcmp(va, va2, nva * sizeof *va), "same seed, same split");
    free(tr2);
    free(va2);
    hl_records_split(100, 0.1, 0, 43, &tr2, &ntr2, &va2, &nva2);
    CHECK(nva2 == nva && memcmp(va, va2, nva * sizeof *va) != 0, "another seed, another split");
    free(tr2);
    free(va2);
    free(tr);
    free(va);
    CHECK(hl_records_split(10, 0, 3, 1, &tr, &ntr, &va, &nva) == HL_OK && nva == 3 && ntr == 7, "count split");
    free(tr);
    free(va);
    CHECK(hl_records_split(3, 0.01, 0, 1, &tr, &ntr, &va, &nva) == HL_OK && nva == 1 && ntr == 2, "tiny fraction");
    free(tr);
    free(va);
    CHECK(hl_records_split(5, 0, 5, 1, &tr, &ntr, &va, &nva) == HL_ERR_RANGE, "count >= n refused");
    CHECK(hl_records_split(5, 1.5, 0, 1, &tr, &ntr, &va, &nva) == HL_ERR_RANGE, "fraction > 1 refused");
    CHECK(hl_records_split(1, 0.5, 0, 1, &tr, &ntr, &va, &nva) == HL_OK && ntr == 1 && nva == 0, "one record");
    free(tr);
    free(va);
}

/* Expected ids from Python: sentencepiece.SentencePieceProcessor(model_file=...).encode(s)
 * on shared/models/llama2c-tokenizer/tokenizer.model (bos 1, eos 2):
 *   'Hello\nworld' -> [15043, 13, 11526]      'Hi there' -> [6324, 727]
 *   'Give three tips for staying healthy.' -> [25538, 2211, 25562, 363, 7952, 292, 9045, 29891, 29889]
 *   '1. Eat a balanced diet.' -> [29871, 29896, 29889, 382, 271, 263, 6411, 8362, 652, 300, 29889] */
static void test_tokenize(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/models/llama2c-tokenizer/tokenizer.model", hl_test_shared_dir());
    hl_tokenizer *tok = NULL;
    if (hl_tokenizer_load(&tok, path) != HL_OK) {
        CHECK(0, "tokenizer load: %s", hl_last_error());
        return;
    }
    const char *p = write_tmp("tok.jsonl",
                              "{\"instruction\": \"Hello\", \"input\": \"world\", \"output\": \"Hi there\"}\n"
                              "{\"instruction\": \"Give three tips for staying healthy.\", \"input\": \"\", "
                              "\"output\": \"1. Eat a balanced diet.\"}\n");
    hl_dataset ds;
    CHECK(hl_records_load(&ds, p, NULL) == HL_OK && ds.n_records == 2, "tok data");
    if (ds.n_records != 2) {
        hl_tokenizer_free(tok);
        return;
    }
    const int32_t e0[] = {1, 15043, 13, 11526, 2, 6324, 727, 2};
    const int32_t l0[] = {-100, -100, -100, -100, -100, 6324, 727, 2};
    hl_tokenized t;
    CHECK(hl_record_tokenize(tok, &ds.records[0], 0, &t) == HL_OK, "tokenize: %s", hl_last_error());
    CHECK(t.n == 8 && t.n_source == 5 && t.n_full == 8 && !t.truncated, "n=%zu src=%zu", t.n, t.n_source);
    CHECK(t.n == 8 && !memcmp(t.ids, e0, sizeof e0) && !memcmp(t.labels, l0, sizeof l0), "ids/labels record 0");
    hl_tokenized_free(&t);

    const int32_t e1[] = {1, 25538, 2211, 25562, 363, 7952, 292, 9045, 29891, 29889, 2,
                          29871, 29896, 29889, 382, 271, 263, 6411, 8362, 652, 300, 29889, 2};
    CHECK(hl_record_tokenize(tok, &ds.records[1], 0, &t) == HL_OK && t.n == 23 && t.n_source == 11,
          "record 1 n=%zu", t.n);
    int ok = t.n == 23 && !memcmp(t.ids, e1, sizeof e1);
    for (size_t i = 0; ok && i < t.n; i++)
        ok = t.labels[i] == (i < 11 ? HL_LABEL_IGNORE : e1[i]);
    CHECK(ok, "ids/labels record 1");
    hl_tokenized_free(&t);
    /* truncation from the right keeps the first max_len positions of both */
    CHECK(hl_record_tokenize(tok, &ds.records[1], 14, &t) == HL_OK && t.n == 14 && t.truncated && t.n_full == 23,
          "truncated n=%zu", t.n);
    CHECK(t.n == 14 && !memcmp(t.ids, e1, 14 * sizeof *e1) && t.labels[10] == HL_LABEL_IGNORE &&
              t.labels[11] == 29871 && t.labels[13] == 29889,
          "truncated ids/labels");
    hl_tokenized_free(&t);
    /* a limit inside the source leaves no trained token */
    CHECK(hl_record_tokenize(tok, &ds.records[1], 4, &t) == HL_OK && t.n == 4 && t.n_source == 4 &&
              t.labels[3] == HL_LABEL_IGNORE,
          "truncated inside source");
    hl_tokenized_free(&t);

    hl_inspect in;
    CHECK(hl_inspect_dataset(&ds, tok, 10, NULL, &in) == HL_OK && in.have_tokens, "inspect with tokens");
    CHECK(in.tok_len[0] == 8 && in.tok_len[1] == 23 && in.n_over_max == 1, "token lengths %u %u over %zu",
          in.tok_len[0], in.tok_len[1], in.n_over_max);
    hl_inspect_free(&in);
    hl_dataset_free(&ds);
    hl_tokenizer_free(tok);
}

static void test_inspect(void) {
    const char *p = write_tmp("dups.jsonl", "{\"instruction\": \"a\", \"output\": \"1\"}\n"
                                            "{\"instruction\": \"b\", \"output\": \"2\"}\n"
                                            "{\"instruction\": \"a\", \"output\": \"1\"}\n"
                                            "{\"instruction\": \"a\", \"output\": \"1\"}\n"
                                            "{\"instruction\": \"a\", \"input\": \"x\", \"output\": \"1\"}\n"
                                            "{\"instruction\": \"b\", \"output\": \"2\"}\n"
                                            "{\"instruction\": \"h\u00e9\", \"output\": \"\"}\n");
    hl_dataset ds;
    CHECK(hl_records_load(&ds, p, NULL) == HL_OK && ds.n_records == 7, "dups load");
    hl_inspect in;
    CHECK(hl_inspect_dataset(&ds, NULL, 0, NULL, &in) == HL_OK, "inspect");
    CHECK(in.n_duplicates == 3 && in.n_duplicate_groups == 2, "dups %zu groups %zu", in.n_duplicates,
          in.n_duplicate_groups);
    CHECK(in.n_empty_output == 1 && in.max_length == 1024 && !in.have_tokens, "empty outputs %zu", in.n_empty_output);
    /* characters: "a"+"1" = 2; "a\nx" + "1" = 4; "hé" = 2 code points (3 bytes) */
    CHECK(in.char_len[0] == 2 && in.char_len[4] == 4 && in.char_len[6] == 2, "char lengths %u %u %u", in.char_len[0],
          in.char_len[4], in.char_len[6]);
    hl_inspect_free(&in);
    hl_dataset_free(&ds);

    uint32_t v[100];
    for (int i = 0; i < 100; i++)
        v[i] = (uint32_t)(100 - i); /* 100..1, unsorted */
    hl_len_summary s = hl_len_summarize(v, 100);
    CHECK(s.min == 1 && s.max == 100 && s.p50 == 50 && s.p95 == 95 && s.mean == 50.5, "summary %g %g %g %g %g", s.min,
          s.p50, s.p95, s.max, s.mean);
    size_t counts[4];
    double lo, w;
    hl_histogram(v, 100, 4, 0, 0, counts, &lo, &w);
    CHECK(lo == 1 && w == 24.75 && counts[0] + counts[1] + counts[2] + counts[3] == 100 && counts[0] == 25 &&
              counts[3] == 25,
          "histogram %zu %zu %zu %zu", counts[0], counts[1], counts[2], counts[3]);
    CHECK(hl_utf8_chars("h\xc3\xa9\xe2\x82\xac!", 7) == 4, "utf8 chars");
}

/* The source field (routing by source): strings and numbers become each record's tag, a missing
 * field or another type leaves it NULL; without a tag field nothing is kept; in all three layouts. */
static void test_tag_field(void) {
    const char *p = write_tmp("tags.jsonl", "{\"instruction\": \"a\", \"output\": \"b\", \"task\": \"math\"}\n"
                                            "{\"instruction\": \"c\", \"output\": \"d\", \"task\": 7}\n"
                                            "{\"instruction\": \"e\", \"output\": \"f\"}\n"
                                            "{\"instruction\": \"g\", \"output\": \"h\", \"task\": [1]}\n"
                                            "{\"instruction\": \"i\", \"output\": \"j\", \"task\": \"\"}\n");
    hl_records_options o = {.tag_field = "task"};
    hl_dataset ds;
    CHECK(hl_records_load(&ds, p, &o) == HL_OK, "tag load: %s", hl_last_error());
    CHECK(ds.n_records == 5, "tag records %zu", ds.n_records);
    if (ds.n_records == 5) {
        CHECK(ds.records[0].tag && !strcmp(ds.records[0].tag, "math"), "string tag");
        CHECK(ds.records[1].tag && !strcmp(ds.records[1].tag, "7"), "number tag '%s'", ds.records[1].tag);
        CHECK(!ds.records[2].tag, "missing tag is NULL");
        CHECK(!ds.records[3].tag, "a list is not a tag");
        CHECK(ds.records[4].tag && !strcmp(ds.records[4].tag, ""), "empty string tag");
    }
    hl_dataset_free(&ds);
    CHECK(hl_records_load(&ds, p, NULL) == HL_OK && ds.n_records == 5 && !ds.records[0].tag, "no tag field: no tags");
    hl_dataset_free(&ds);
    const char *b = write_tmp("tags.json", "{\"examples\": [{\"input\": \"x\", \"target\": \"y\", \"category\": \"c1\"}]}");
    hl_records_options oc = {.tag_field = "category"};
    CHECK(hl_records_load(&ds, b, &oc) == HL_OK && ds.n_records == 1 && ds.records[0].tag &&
              !strcmp(ds.records[0].tag, "c1"),
          "tag in a BBH-style file");
    hl_dataset_free(&ds);
    const char *a = write_tmp("tags_array.json", "[{\"instruction\": \"x\", \"output\": \"y\", \"source\": \"dolly\"}]");
    hl_records_options os = {.tag_field = "source"};
    CHECK(hl_records_load(&ds, a, &os) == HL_OK && ds.n_records == 1 && ds.records[0].tag &&
              !strcmp(ds.records[0].tag, "dolly"),
          "tag in a JSON array");
    hl_dataset_free(&ds);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/hl_test_records_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_alpaca_array();
    test_shared_files();
    test_custom_map();
    test_malformed();
    test_split();
    test_tokenize();
    test_inspect();
    test_tag_field();
    hl_test_remove_dir(g_dir);
    return hl_test_finish();
}
