/* safetensors reader and writer: round trips in F32/F16/BF16, the exact header bytes the
 * reference library writes (docs/file-formats.md §4.4), every validation rule on hand-made corrupt
 * files, sharded indexes, and atomic writes under a full disk. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "core/base/mapped_file.h"
#include "core/formats/safetensors.h"
#include "hl_test.h"

static char tmpdir[256];

static void path_in(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", tmpdir, name); }

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fwrite(p, 1, n, f);
    fclose(f);
}

/* A safetensors image from a header string and `data_len` bytes of data (value i & 0xff). */
static unsigned char *make_st(const char *header, size_t data_len, size_t *len) {
    size_t n = strlen(header);
    *len = 8 + n + data_len;
    unsigned char *b = malloc(*len);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(b + 8, header, n);
    for (size_t i = 0; i < data_len; i++)
        b[8 + n + i] = (unsigned char)i;
    return b;
}

/* Parse a hand-made file; return the status and keep the message. */
static hl_status parse_header(const char *header, size_t data_len) {
    size_t len;
    unsigned char *b = make_st(header, data_len, &len);
    hl_safetensors *st = NULL;
    hl_status rc = hl_st_parse(&st, b, len, "test.safetensors");
    hl_st_close(st);
    free(b);
    return rc;
}

#define EXPECT_FAIL(header, data_len, needle)                                                          \
    do {                                                                                               \
        hl_status rc_ = parse_header(header, data_len);                                                \
        CHECK(rc_ == HL_ERR_FORMAT, "header %s: expected a format error, got %d", header, rc_);        \
        CHECK(strstr(hl_last_error(), needle) != NULL, "message \"%s\" lacks \"%s\"", hl_last_error(), \
              needle);                                                                                 \
    } while (0)

static void test_validation(void) {
    /* A good one first, so the failures below are about the one thing changed. */
    CHECK(parse_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8) == HL_OK, "%s",
          hl_last_error());
    /* Padding spaces after the object are allowed (the reference writer pads). */
    CHECK(parse_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}    ", 8) == HL_OK, "%s",
          hl_last_error());
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}xx", 8, "junk");
    EXPECT_FAIL("[1,2]", 0, "not a JSON object");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8, "not valid JSON");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F99\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unknown dtype");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "shape[0]");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8, "shape[0]");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}",
                8, "absurd");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,8]}}", 8, "shape[0]");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}", 8, "outside");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "outside");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 12, "needs 12");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "data_offsets");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "needs");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                12, "overlap");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                16, "twice");
    EXPECT_FAIL("{\"__metadata__\":{\"format\":3}}", 0, "not a string");
    EXPECT_FAIL("{\"a\":5}", 0, "not an object");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
                "dimensions");

    /* Lying header lengths and truncation. */
    size_t len;
    unsigned char *b = make_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, &len);
    hl_safetensors *st = NULL;
    unsigned char save[8];
    memcpy(save, b, 8);
    uint64_t lie = len; /* header "longer than the file" */
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(lie >> (8 * i));
    CHECK(hl_st_parse(&st, b, len, "t") == HL_ERR_FORMAT && strstr(hl_last_error(), "exceeds the file size"), "%s",
          hl_last_error());
    memset(b, 0xff, 8); /* 2^64 - 1 */
    CHECK(hl_st_parse(&st, b, len, "t") == HL_ERR_FORMAT && strstr(hl_last_error(), "exceeds"), "%s",
          hl_last_error());
    memcpy(b, save, 8);
    CHECK(hl_st_parse(&st, b, len - 1, "t") == HL_ERR_FORMAT && strstr(hl_last_error(), "outside"), "truncated: %s",
          hl_last_error());
    CHECK(hl_st_parse(&st, b, 5, "t") == HL_ERR_FORMAT && strstr(hl_last_error(), "too small"), "%s",
          hl_last_error());
    CHECK(st == NULL, "no handle on failure");
    free(b);

    /* Recognised non-float dtypes open and list; converting them is refused. */
    b = make_st("{\"__metadata__\":{\"k\":\"v\"},\"i\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]},"
                "\"s\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[16,18]}}",
                18, &len);
    CHECK(hl_st_parse(&st, b, len, "t") == HL_OK, "%s", hl_last_error());
    if (st) {
        CHECK(hl_st_count(st) == 2, "count %d", hl_st_count(st));
        const hl_st_tensor *ti = hl_st_find(st, "i");
        CHECK(ti && ti->dtype == HL_ST_I64 && ti->numel == 2 && ti->nbytes == 16, "I64 tensor");
        hl_weight w;
        CHECK(ti && hl_st_tensor_weight(ti, &w) == HL_ERR_FORMAT, "I64 cannot be a weight");
        const hl_st_tensor *ts = hl_st_find(st, "s");
        CHECK(ts && ts->ndim == 0 && ts->numel == 1, "scalar numel 1");
        CHECK(hl_st_metadata(st, "k") && !strcmp(hl_st_metadata(st, "k"), "v"), "metadata");
        CHECK(hl_st_find(st, "nope") == NULL, "absent name");
        hl_st_close(st);
    }
    free(b);
}

static int count_tmp_leftovers(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strstr(de->d_name, ".tmp-"))
            n++;
    if (d)
        closedir(d);
    return n;
}

static void test_roundtrip(void) {
    /* Values chosen so that the expected F16/BF16 results are known without our converters:
     * exactly representable numbers, plus ties that round to even. */
    float a[6] = {0.5f, -2.25f, 1024.0f, 0.0f, 3.0f, -0.125f};
    float b[3] = {1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048, 65504.0f};   /* f16: 1, 1+2^-9 (tie→even), max */
    float c[3] = {1.0f + 1.0f / 256, 1.0f + 3.0f / 256, -1.0f / 1024}; /* bf16: 1, 1+2^-6 */
    float b_f16[3] = {1.0f, 1.0f + 2.0f / 1024, 65504.0f};
    float c_bf16[3] = {1.0f, 1.0f + 4.0f / 256, -1.0f / 1024};
    hl_st_entry e[3] = {
        {.name = "z.weight", .data = a, .ndim = 2, .shape = {2, 3}},
        {.name = "a\"odd\\name", .data = b, .ndim = 1, .shape = {3}},
        {.name = "m.bias", .data = c, .ndim = 1, .shape = {3}},
    };
    hl_dtype dts[3] = {HL_DTYPE_F32, HL_DTYPE_F16, HL_DTYPE_BF16};
    for (int k = 0; k < 3; k++) {
        char path[512];
        path_in(path, sizeof path, "rt.safetensors");
        const char *meta[] = {"note", "hi"};
        hl_st_write_opts o = {dts[k], 1, meta, 1};
        CHECK(hl_st_write(path, e, 3, &o) == HL_OK, "write %s: %s", hl_dtype_name(dts[k]), hl_last_error());
        hl_mapped_file mf;
        CHECK(hl_mapped_file_open(&mf, path) == HL_OK, "%s", hl_last_error());
        uint64_t n = 0;
        for (int i = 7; i >= 0; i--)
            n = (n << 8) | mf.data[i];
        CHECK((8 + n) % 8 == 0, "8+N multiple of 8 (N=%llu)", (unsigned long long)n);
        /* Keys in sorted order, compact JSON, metadata first, as the reference writes. */
        char expect[1024];
        size_t es = hl_dtype_size(dts[k]);
        snprintf(expect, sizeof expect,
                 "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"hi\"},"
                 "\"a\\\"odd\\\\name\":{\"dtype\":\"%s\",\"shape\":[3],\"data_offsets\":[0,%zu]},"
                 "\"m.bias\":{\"dtype\":\"%s\",\"shape\":[3],\"data_offsets\":[%zu,%zu]},"
                 "\"z.weight\":{\"dtype\":\"%s\",\"shape\":[2,3],\"data_offsets\":[%zu,%zu]}}",
                 hl_dtype_name(dts[k]), 3 * es, hl_dtype_name(dts[k]), 3 * es, 6 * es, hl_dtype_name(dts[k]),
                 6 * es, 12 * es);
        size_t el = strlen(expect);
        CHECK(n >= el && !memcmp(mf.data + 8, expect, el), "header bytes (%s):\n%.*s\nexpected\n%s",
              hl_dtype_name(dts[k]), (int)n, (const char *)mf.data + 8, expect);
        for (size_t i = el; i < n; i++)
            CHECK(mf.data[8 + i] == ' ', "padding is spaces");
        CHECK(mf.size == 8 + n + 12 * es, "file size %zu", mf.size);
        hl_mapped_file_close(&mf);

        hl_safetensors *st = NULL;
        CHECK(hl_st_open(&st, path) == HL_OK, "%s", hl_last_error());
        if (!st)
            continue;
        CHECK(hl_st_metadata(st, "format") && !strcmp(hl_st_metadata(st, "format"), "pt"), "format pt");
        CHECK(hl_st_metadata(st, "note") && !strcmp(hl_st_metadata(st, "note"), "hi"), "note");
        const hl_st_tensor *tz = hl_st_find(st, "z.weight"), *tb = hl_st_find(st, "a\"odd\\name"),
                           *tc = hl_st_find(st, "m.bias");
        CHECK(tz && tb && tc, "all tensors present");
        if (tz && tb && tc) {
            float out[6];
            CHECK(tz->ndim == 2 && tz->shape[0] == 2 && tz->shape[1] == 3, "shape");
            hl_st_tensor_to_f32(tz, out);
            for (int i = 0; i < 6; i++)
                CHECK(out[i] == a[i], "%s a[%d] = %g", hl_dtype_name(dts[k]), i, out[i]);
            hl_st_tensor_to_f32(tb, out);
            for (int i = 0; i < 3; i++) {
                float want = dts[k] == HL_DTYPE_F32 ? b[i] : dts[k] == HL_DTYPE_F16 ? b_f16[i] : b[i];
                if (dts[k] == HL_DTYPE_BF16) /* bf16 keeps 8 bits: 1+2^-11 → 1, 1+3·2^-11 → 1, 65504 → 65536 */
                    want = i == 2 ? 65536.0f : 1.0f;
                CHECK(out[i] == want, "%s b[%d] = %.9g want %.9g", hl_dtype_name(dts[k]), i, out[i], want);
            }
            hl_st_tensor_to_f32(tc, out);
            for (int i = 0; i < 3; i++) {
                float want = dts[k] == HL_DTYPE_BF16 ? c_bf16[i] : c[i];
                if (dts[k] == HL_DTYPE_F16) /* f16 has 10 bits: both exact */
                    want = c[i];
                CHECK(out[i] == want, "%s c[%d] = %.9g want %.9g", hl_dtype_name(dts[k]), i, out[i], want);
            }
        }
        hl_st_close(st);
    }
    CHECK(count_tmp_leftovers(tmpdir) == 0, "no temporary files left");

    /* Bad calls. */
    char path[512];
    path_in(path, sizeof path, "bad.safetensors");
    hl_st_entry dup[2] = {{.name = "x", .data = a, .ndim = 1, .shape = {1}}, {.name = "x", .data = a, .ndim = 1,
                                                                             .shape = {1}}};
    CHECK(hl_st_write(path, dup, 2, NULL) == HL_ERR_ARG && strstr(hl_last_error(), "twice"), "%s", hl_last_error());
    CHECK(access(path, F_OK) != 0, "nothing written on a bad call");
    path_in(path, sizeof path, "no/such/dir/x.safetensors");
    CHECK(hl_st_write(path, e, 1, NULL) != HL_OK, "missing directory is an error");

    /* Empty set and metadata-free file. */
    path_in(path, sizeof path, "empty.safetensors");
    hl_st_write_opts o = {HL_DTYPE_F32, 0, NULL, 0};
    CHECK(hl_st_write(path, NULL, 0, &o) == HL_OK, "%s", hl_last_error());
    hl_safetensors *st = NULL;
    CHECK(hl_st_open(&st, path) == HL_OK && hl_st_count(st) == 0, "%s", hl_last_error());
    hl_st_close(st);
}

/* A full disk: RLIMIT_FSIZE makes write() fail with EFBIG once the file passes the limit,
 * exactly where ENOSPC would. The old target must survive and no temp file may remain. */
static void test_disk_full(void) {
    char path[512];
    path_in(path, sizeof path, "full.safetensors");
    write_bytes(path, "old", 3);
    size_t n = 1 << 20;
    float *big = calloc(n, sizeof *big);
    hl_st_entry e = {.name = "big", .data = big, .ndim = 1, .shape = {(int64_t)n}};
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 64 * 1024;
    signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &lim);
    hl_status rc = hl_st_write(path, &e, 1, NULL);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK(rc == HL_ERR_DISK_FULL, "full disk gives HL_ERR_DISK_FULL, got %d (%s)", rc, hl_last_error());
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && sb.st_size == 3, "the old file is untouched");
    CHECK(count_tmp_leftovers(tmpdir) == 0, "temporary file removed");
    free(big);
}

static void test_sharded(void) {
    char dir[512], p[600];
    snprintf(dir, sizeof dir, "%s/shards", tmpdir);
    mkdir(dir, 0755);
    float x[4] = {1, 2, 3, 4};
    hl_st_entry e1[2] = {{.name = "a", .data = x, .ndim = 1, .shape = {2}},
                         {.name = "b", .data = x + 2, .ndim = 1, .shape = {2}}};
    hl_st_entry e2[1] = {{.name = "c", .data = x, .ndim = 2, .shape = {2, 2}}};
    snprintf(p, sizeof p, "%s/s1.safetensors", dir);
    CHECK(hl_st_write(p, e1, 2, NULL) == HL_OK, "%s", hl_last_error());
    snprintf(p, sizeof p, "%s/s2.safetensors", dir);
    CHECK(hl_st_write(p, e2, 1, NULL) == HL_OK, "%s", hl_last_error());
    const char *good = "{\"metadata\":{\"total_size\":32},\"weight_map\":{\"a\":\"s1.safetensors\","
                       "\"c\":\"s2.safetensors\",\"b\":\"s1.safetensors\"}}";
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    write_bytes(p, good, strlen(good));
    hl_st_set *set = NULL;
    CHECK(hl_st_set_open(&set, dir) == HL_OK, "%s", hl_last_error());
    if (set) {
        CHECK(hl_st_set_n_files(set) == 2, "two distinct shards opened once each (%d)", hl_st_set_n_files(set));
        CHECK(hl_st_set_count(set) == 3, "3 tensors");
        const hl_st_tensor *c = hl_st_set_find(set, "c");
        CHECK(c && c->ndim == 2 && ((const float *)c->data)[3] == 4.0f, "tensor c from shard 2");
        hl_st_set_close(set);
    }
    struct {
        const char *json, *needle;
    } bad[] = {
        {"{\"weight_map\":{\"a\":\"../s1.safetensors\"}}", "not a plain relative"},
        {"{\"weight_map\":{\"a\":\"/etc/passwd\"}}", "not a plain relative"},
        {"{\"weight_map\":{\"a\":\"missing.safetensors\"}}", "no such file"},
        {"{\"weight_map\":{\"zz\":\"s1.safetensors\"}}", "missing from"},
        {"{\"weight_map\":{\"a\":3}}", "not a file name"},
        {"{\"nothing\":1}", "weight_map"},
        {"{\"weight_map\":", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_bytes(p, bad[i].json, strlen(bad[i].json));
        set = NULL;
        hl_status rc = hl_st_set_open(&set, dir);
        CHECK(rc != HL_OK && strstr(hl_last_error(), bad[i].needle), "index %s: rc %d, message \"%s\"", bad[i].json,
              rc, hl_last_error());
        hl_st_set_close(set);
    }
    /* The same tensor in two shards. */
    const char *dupe = "{\"weight_map\":{\"a\":\"s1.safetensors\",\"c\":\"s2.safetensors\",\"x\":\"s3.safetensors\"}}";
    char p3[600];
    snprintf(p3, sizeof p3, "%s/s3.safetensors", dir);
    hl_st_entry e3[2] = {{.name = "a", .data = x, .ndim = 1, .shape = {2}},
                         {.name = "x", .data = x, .ndim = 1, .shape = {1}}};
    CHECK(hl_st_write(p3, e3, 2, NULL) == HL_OK, "%s", hl_last_error());
    write_bytes(p, dupe, strlen(dupe));
    set = NULL;
    CHECK(hl_st_set_open(&set, dir) == HL_ERR_FORMAT && strstr(hl_last_error(), "two shards"), "%s",
          hl_last_error());
    hl_st_set_close(set);
}

static void test_mapped_file(void) {
    hl_mapped_file mf;
    CHECK(hl_mapped_file_open(&mf, "/definitely/not/here") == HL_ERR_NOT_FOUND &&
              strstr(hl_last_error(), "no such file"),
          "%s", hl_last_error());
    CHECK(hl_mapped_file_open(&mf, tmpdir) == HL_ERR_IO && strstr(hl_last_error(), "directory"), "%s",
          hl_last_error());
    char p[512];
    path_in(p, sizeof p, "empty");
    write_bytes(p, "", 0);
    CHECK(hl_mapped_file_open(&mf, p) == HL_OK && mf.size == 0, "empty file maps");
    hl_mapped_file_close(&mf);
    if (geteuid() != 0) { /* root reads anything */
        path_in(p, sizeof p, "noperm");
        write_bytes(p, "x", 1);
        chmod(p, 0);
        CHECK(hl_mapped_file_open(&mf, p) == HL_ERR_IO && strstr(hl_last_error(), "permission"), "%s",
              hl_last_error());
    }
}

/* The shared HF file opens, and its header follows the reference layout. */
static void test_shared_file(void) {
    char p[1024];
    snprintf(p, sizeof p, "%s/models/stories260K-hf/model.safetensors", hl_test_shared_dir());
    hl_safetensors *st = NULL;
    CHECK(hl_st_open(&st, p) == HL_OK, "%s", hl_last_error());
    if (!st)
        return;
    CHECK(hl_st_count(st) == 1 + 1 + 5 * 9, "47 tensors (tied: no lm_head), got %d", hl_st_count(st));
    const hl_st_tensor *t = hl_st_find(st, "model.layers.0.mlp.down_proj.weight");
    CHECK(t && t->dtype == HL_ST_F32 && t->ndim == 2 && t->shape[0] == 64 && t->shape[1] == 172, "down_proj shape");
    /* Tensors are laid out in sorted-name order in files the reference library wrote. */
    for (int i = 1; i < hl_st_count(st); i++)
        CHECK(strcmp(hl_st_at(st, i - 1)->name, hl_st_at(st, i)->name) < 0, "layout order at %d", i);
    hl_st_close(st);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/hl_test_st_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_validation();
    test_roundtrip();
    test_disk_full();
    test_sharded();
    test_mapped_file();
    test_shared_file();
    hl_test_remove_dir(tmpdir);
    return hl_test_finish();
}
