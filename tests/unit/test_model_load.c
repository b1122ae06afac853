/* Model loading: the four shared forms of stories260K (llama2.c v0 .bin, HF F32, HF F16
 * sharded untied, GGUF) give the same configuration and the same weights, checked against the
 * raw floats of the .bin read here at the offsets docs/file-formats.md §1.1 documents, with the q/k
 * row rule of §4.2 applied here. Plus v1, v2 (Q8_0) and unshared-classifier v0 files written by
 * this test from those floats, the GGUF vocabulary against tok512.bin, and damaged files. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/convert.h"
#include "core/formats/gguf.h"
#include "core/base/mapped_file.h"
#include "core/model/model.h"
#include "core/formats/safetensors.h"
#include "core/base/tensor.h"
#include "hl_test.h"

enum { DIM = 64, HID = 172, NL = 5, NH = 8, NKV = 4, HD = 8, VOCAB = 512, SEQ = 512, KV = NKV * HD };

/* Raw f32 sections of stories260K.bin (docs/file-formats.md §1.1 byte offsets). */
typedef struct {
    float *file; /* whole file after the 28-byte header */
    const float *tok, *rms_att, *wq, *wk, *wv, *wo, *rms_ffn, *w1, *w2, *w3, *rms_final;
    size_t nfloats;
} raw_model;

static raw_model raw;
static char tmpdir[256];
static char shared_models[1024];

static void write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fwrite(p, 1, n, f);
    fclose(f);
}

static int load_raw(void) {
    char p[1200];
    snprintf(p, sizeof p, "%s/stories260K/stories260K.bin", shared_models);
    size_t len;
    unsigned char *b = hl_test_read_file(p, &len);
    if (!b || len != 1056540)
        return 0;
    raw.nfloats = (len - 28) / 4;
    raw.file = malloc(len - 28);
    memcpy(raw.file, b + 28, len - 28);
#define AT(off) (raw.file + ((off) - 28) / 4)
    raw.tok = AT(28);
    raw.rms_att = AT(131100);
    raw.wq = AT(132380);
    raw.wk = AT(214300);
    raw.wv = AT(255260);
    raw.wo = AT(296220);
    raw.rms_ffn = AT(378140);
    raw.w1 = AT(379420);
    raw.w2 = AT(599580);
    raw.w3 = AT(819740);
    raw.rms_final = AT(1039900);
#undef AT
    free(b);
    return 1;
}

typedef enum { EXACT, F16_ROUNDING, Q8 } tol_mode;

/* Compare a weight view to reference rows; `heads` > 0 applies the Meta → rotate_half row
 * rule within heads of HD rows. Returns the number of mismatches (reports the first). */
static int weight_matches(const hl_weight *w, const float *ref, int64_t rows, int64_t cols, int heads, tol_mode tol,
                          const float *q8_expect, const char *what) {
    if (w->rows != rows || w->cols != cols) {
        CHECK(0, "%s: shape [%lld, %lld], expected [%lld, %lld]", what, (long long)w->rows, (long long)w->cols,
              (long long)rows, (long long)cols);
        return 1;
    }
    float *got = malloc((size_t)(rows * cols) * sizeof *got);
    hl_weight_rows_to_f32(w, 0, rows, got);
    int bad = 0;
    for (int64_t r = 0; r < rows; r++) {
        int64_t src = r;
        if (heads) {
            int64_t h = r / HD, i = r % HD;
            src = h * HD + (i < HD / 2 ? 2 * i : 2 * (i - HD / 2) + 1);
        }
        for (int64_t c = 0; c < cols; c++) {
            float g = got[r * cols + c], e = ref[src * cols + c];
            int ok;
            if (tol == EXACT)
                ok = memcmp(&g, &e, 4) == 0;
            else if (tol == F16_ROUNDING) /* half an f16 ulp: 2^-11 relative, 2^-25 absolute (subnormals) */
                ok = fabsf(g - e) <= fabsf(e) * (1.0f / 2048) + 1.0f / (1 << 25);
            else
                ok = g == q8_expect[src * cols + c];
            if (!ok && bad++ == 0)
                CHECK(0, "%s[%lld, %lld] = %.9g, expected %.9g", what, (long long)r, (long long)c, g, e);
        }
    }
    free(got);
    return bad;
}

/* Every weight of `m` against the raw .bin floats. lm_ref: the classifier reference. */
static void check_weights(const hl_model *m, tol_mode tol, const float *lm_ref, const char *label,
                          float *const *q8) {
    char what[200];
#define Q8P(i) (q8 ? q8[i] : NULL)
    snprintf(what, sizeof what, "%s tok_embed", label);
    weight_matches(&m->tok_embed, raw.tok, VOCAB, DIM, 0, tol, Q8P(0), what);
    snprintf(what, sizeof what, "%s lm_head", label);
    weight_matches(&m->lm_head, lm_ref, VOCAB, DIM, 0, tol, Q8P(8), what);
    snprintf(what, sizeof what, "%s final_norm", label);
    weight_matches(&m->final_norm, raw.rms_final, 1, DIM, 0, tol == Q8 ? EXACT : tol, NULL, what);
    for (int l = 0; l < NL; l++) {
        const hl_layer_weights *W = &m->layers[l];
        struct {
            const hl_weight *w;
            const float *ref;
            int64_t rows, cols;
            int heads, qi;
            const char *name;
        } s[] = {
            {&W->attn_norm, raw.rms_att + l * DIM, 1, DIM, 0, -1, "attn_norm"},
            {&W->wq, raw.wq + l * DIM * DIM, DIM, DIM, NH, 1, "wq"},
            {&W->wk, raw.wk + l * KV * DIM, KV, DIM, NKV, 2, "wk"},
            {&W->wv, raw.wv + l * KV * DIM, KV, DIM, 0, 3, "wv"},
            {&W->wo, raw.wo + l * DIM * DIM, DIM, DIM, 0, 4, "wo"},
            {&W->ffn_norm, raw.rms_ffn + l * DIM, 1, DIM, 0, -1, "ffn_norm"},
            {&W->w_gate, raw.w1 + l * HID * DIM, HID, DIM, 0, 5, "w_gate"},
            {&W->w_down, raw.w2 + l * DIM * HID, DIM, HID, 0, 6, "w_down"},
            {&W->w_up, raw.w3 + l * HID * DIM, HID, DIM, 0, 7, "w_up"},
        };
        for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
            snprintf(what, sizeof what, "%s layer %d %s", label, l, s[i].name);
            const float *qe = NULL;
            if (q8 && s[i].qi >= 0)
                qe = q8[s[i].qi] + (s[i].ref - (s[i].qi == 1   ? raw.wq
                                                 : s[i].qi == 2 ? raw.wk
                                                 : s[i].qi == 3 ? raw.wv
                                                 : s[i].qi == 4 ? raw.wo
                                                 : s[i].qi == 5 ? raw.w1
                                                 : s[i].qi == 6 ? raw.w2
                                                                : raw.w3));
            tol_mode t = (tol == Q8 && s[i].qi < 0) ? EXACT : tol;
            weight_matches(s[i].w, s[i].ref, s[i].rows, s[i].cols, s[i].heads, t, qe, what);
        }
    }
#undef Q8P
}

static void check_config(const hl_model *m, int seq, int tied, const char *label) {
    const hl_llama_config *c = &m->cfg;
    CHECK(c->dim == DIM && c->hidden_dim == HID && c->n_layers == NL && c->n_heads == NH && c->n_kv_heads == NKV &&
              c->head_dim == HD && c->vocab_size == VOCAB,
          "%s: dims %d %d %d %d %d %d %d", label, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
          c->head_dim, c->vocab_size);
    CHECK(c->max_seq_len == seq, "%s: max_seq_len %d expected %d", label, c->max_seq_len, seq);
    CHECK(c->tie_word_embeddings == tied, "%s: tie %d expected %d", label, c->tie_word_embeddings, tied);
    CHECK_CLOSE(c->rms_norm_eps, 1e-5, 1e-9, "rms_norm_eps");
    CHECK(c->rope_theta == 10000.0f, "%s: rope_theta %g", label, c->rope_theta);
    CHECK(c->bos_id == 1 && c->eos_id == 2, "%s: bos/eos %d %d", label, c->bos_id, c->eos_id);
}

static void test_shared_forms(void) {
    char p[1400];
    hl_model m;

    snprintf(p, sizeof p, "%s/stories260K/stories260K.bin", shared_models);
    CHECK(hl_model_load(&m, p) == HL_OK, "%s", hl_last_error());
    CHECK(m.format == HL_FORMAT_LLAMA2C_V0 && m.dtype == HL_DTYPE_F32, "v0 f32");
    check_config(&m, SEQ, 1, "v0");
    check_weights(&m, EXACT, raw.tok, "v0", NULL);
    CHECK(m.lm_head.data == m.tok_embed.data, "tied head is the embedding");
    CHECK(hl_model_param_count(&m.cfg) == 260032, "param count %lld (docs/file-formats.md: 260,032)",
          (long long)hl_model_param_count(&m.cfg));
    hl_model_free(&m);

    snprintf(p, sizeof p, "%s/stories260K-hf", shared_models);
    CHECK(hl_model_load(&m, p) == HL_OK, "%s", hl_last_error());
    CHECK(m.format == HL_FORMAT_HF_SAFETENSORS && m.dtype == HL_DTYPE_F32, "hf f32");
    check_config(&m, SEQ, 1, "hf");
    check_weights(&m, EXACT, raw.tok, "hf", NULL);
    hl_model_free(&m);

    snprintf(p, sizeof p, "%s/stories260K-hf-f16-sharded", shared_models);
    CHECK(hl_model_load(&m, p) == HL_OK, "%s", hl_last_error());
    CHECK(m.format == HL_FORMAT_HF_SAFETENSORS && m.dtype == HL_DTYPE_F16, "hf f16, dtype %s",
          hl_dtype_name(m.dtype));
    check_config(&m, SEQ, 0, "hf-f16");
    check_weights(&m, F16_ROUNDING, raw.tok, "hf-f16", NULL);
    CHECK(m.lm_head.data != m.tok_embed.data, "untied head stored separately");
    CHECK(m.n_maps == 2, "two shards mapped (%d)", m.n_maps);
    /* Views, not copies: the big matrices point into the mappings. */
    const unsigned char *lo = m.maps[0].data, *hi = m.maps[0].data + m.maps[0].size;
    const unsigned char *lo2 = m.maps[1].data, *hi2 = m.maps[1].data + m.maps[1].size;
    const unsigned char *wv = m.layers[0].wv.data;
    CHECK((wv >= lo && wv < hi) || (wv >= lo2 && wv < hi2), "f16 wv is a view into a shard mapping");
    hl_model_free(&m);

    /* GGUF: the converter wrote context_length 2048 (not 512) and a separate output.weight
     * (a copy of the embedding) — both are what the file says, so both are kept. */
    snprintf(p, sizeof p, "%s/stories260K-gguf/stories260K.gguf", shared_models);
    CHECK(hl_model_load(&m, p) == HL_OK, "%s", hl_last_error());
    CHECK(m.format == HL_FORMAT_GGUF && m.dtype == HL_DTYPE_F32, "gguf f32");
    check_config(&m, 2048, 0, "gguf");
    check_weights(&m, EXACT, raw.tok, "gguf", NULL);
    CHECK(m.vocab != NULL, "gguf vocabulary exposed");
    if (m.vocab) {
        /* Against tok512.bin (docs/file-formats.md §2): same pieces with ' ' → U+2581 and BOS/EOS spelled
         * "<s>"/"</s>", same scores. */
        snprintf(p, sizeof p, "%s/stories260K/tok512.bin", shared_models);
        size_t len;
        unsigned char *tb = hl_test_read_file(p, &len);
        CHECK(tb != NULL, "tok512.bin readable");
        size_t at = 4;
        int mism = 0;
        CHECK(m.vocab->n == 512, "vocab n %d", m.vocab->n);
        for (int i = 0; tb && i < 512 && i < m.vocab->n; i++) {
            float score;
            int32_t n;
            memcpy(&score, tb + at, 4);
            memcpy(&n, tb + at + 4, 4);
            char piece[64] = {0}, want[256] = {0};
            memcpy(piece, tb + at + 8, (size_t)n);
            at += 8 + (size_t)n;
            if (!strcmp(piece, "\n<s>\n"))
                strcpy(want, "<s>");
            else if (!strcmp(piece, "\n</s>\n"))
                strcpy(want, "</s>");
            else
                for (char *s = piece, *d = want; *s; s++) {
                    if (*s == ' ') {
                        memcpy(d, "\xe2\x96\x81", 3);
                        d += 3;
                    } else {
                        *d++ = *s;
                    }
                }
            if ((strcmp(want, m.vocab->tokens[i]) || score != m.vocab->scores[i]) && mism++ == 0)
                CHECK(0, "token %d: gguf \"%s\" %g, tok512.bin \"%s\" %g", i, m.vocab->tokens[i], m.vocab->scores[i],
                      want, score);
        }
        CHECK(mism == 0, "%d vocabulary mismatches", mism);
        CHECK(m.vocab->types && m.vocab->types[0] == 2 && m.vocab->types[1] == 3 && m.vocab->types[3] == 6 &&
                  m.vocab->types[300] == 1,
              "token types unknown/control/byte/normal");
        CHECK(m.vocab->unk_id == 0 && m.vocab->bos_id == 1 && m.vocab->eos_id == 2, "special ids");
        CHECK(!strcmp(m.vocab->model, "llama"), "tokenizer model %s", m.vocab->model);
        free(tb);
    }
    hl_model_free(&m);

    /* A single .safetensors file path finds config.json next to it. */
    snprintf(p, sizeof p, "%s/stories260K-hf/model.safetensors", shared_models);
    CHECK(hl_model_load(&m, p) == HL_OK && m.cfg.dim == DIM, "%s", hl_last_error());
    hl_model_free(&m);
}

/* ---- files written by this test from the raw floats ---- */

static void put_i32(unsigned char *b, int32_t v) { memcpy(b, &v, 4); }

static void test_written_forms(void) {
    char p[512];
    hl_model m;
    /* v1: 256-byte header, then norms first, then the matrices (docs/file-formats.md §1.2). */
    size_t body = (size_t)NL * DIM * 2 + DIM + (size_t)VOCAB * DIM + (size_t)NL * DIM * DIM * 2 +
                  (size_t)NL * KV * DIM * 2 + (size_t)NL * HID * DIM * 3;
    unsigned char *v1 = calloc(256 + body * 4, 1);
    put_i32(v1, 0x616b3432);
    put_i32(v1 + 4, 1);
    int32_t hdr[7] = {DIM, HID, NL, NH, NKV, VOCAB, SEQ};
    memcpy(v1 + 8, hdr, sizeof hdr);
    v1[36] = 1;
    float *f = (float *)(v1 + 256);
#define PUT(src, n)                                 \
    do {                                            \
        memcpy(f, (src), (size_t)(n) * 4);          \
        f += (n);                                   \
    } while (0)
    PUT(raw.rms_att, NL * DIM);
    PUT(raw.rms_ffn, NL * DIM);
    PUT(raw.rms_final, DIM);
    PUT(raw.tok, VOCAB * DIM);
    PUT(raw.wq, NL * DIM * DIM);
    PUT(raw.wk, NL * KV * DIM);
    PUT(raw.wv, NL * KV * DIM);
    PUT(raw.wo, NL * DIM * DIM);
    PUT(raw.w1, NL * HID * DIM);
    PUT(raw.w2, NL * DIM * HID);
    PUT(raw.w3, NL * HID * DIM);
#undef PUT
    snprintf(p, sizeof p, "%s/v1.bin", tmpdir);
    write_file(p, v1, 256 + body * 4);
    CHECK(hl_model_load(&m, p) == HL_OK, "v1: %s", hl_last_error());
    if (m.layers) {
        CHECK(m.format == HL_FORMAT_LLAMA2C_V1, "v1 format");
        check_config(&m, SEQ, 1, "v1");
        check_weights(&m, EXACT, raw.tok, "v1", NULL);
        hl_model_free(&m);
    }
    free(v1);

    /* v0 with an unshared classifier: vocab −512 and wcls appended (here: −embedding, so that
     * reading the wrong array shows). */
    size_t n0 = raw.nfloats;
    unsigned char *v0 = malloc(28 + (n0 + (size_t)VOCAB * DIM) * 4);
    int32_t h0[7] = {DIM, HID, NL, NH, NKV, -VOCAB, SEQ};
    memcpy(v0, h0, 28);
    memcpy(v0 + 28, raw.file, n0 * 4);
    float *wcls = malloc((size_t)VOCAB * DIM * 4);
    for (int i = 0; i < VOCAB * DIM; i++)
        wcls[i] = -raw.tok[i];
    memcpy(v0 + 28 + n0 * 4, wcls, (size_t)VOCAB * DIM * 4);
    snprintf(p, sizeof p, "%s/unshared.bin", tmpdir);
    write_file(p, v0, 28 + (n0 + (size_t)VOCAB * DIM) * 4);
    CHECK(hl_model_load(&m, p) == HL_OK, "unshared v0: %s", hl_last_error());
    if (m.layers) {
        check_config(&m, SEQ, 0, "v0-unshared");
        check_weights(&m, EXACT, wcls, "v0-unshared", NULL);
        CHECK(hl_model_param_count(&m.cfg) == 260032 + VOCAB * DIM, "unshared param count");
        hl_model_free(&m);
    }
    /* The same file without the classifier is truncated for its header. */
    write_file(p, v0, 28 + n0 * 4);
    CHECK(hl_model_load(&m, p) == HL_ERR_FORMAT && strstr(hl_last_error(), "truncated"), "%s", hl_last_error());
    free(v0);

    /* v2 (Q8_0, group 64): quantised here as export.py does (scale = max|x|/127, q = round(x/scale)). */
    const int GS = 64;
    const float *qsrc[9] = {raw.tok, raw.wq, raw.wk, raw.wv, raw.wo, raw.w1, raw.w2, raw.w3, raw.tok};
    size_t qn[9] = {VOCAB * DIM, NL * DIM * DIM, NL * KV * DIM, NL * KV * DIM, NL * DIM * DIM,
                    NL * HID * DIM,  NL * DIM * HID, NL * HID * DIM, VOCAB * DIM};
    float *expect[9];
    size_t total = 256 + ((size_t)NL * DIM * 2 + DIM) * 4;
    for (int i = 0; i < 8; i++)
        total += qn[i] + qn[i] / GS * 4;
    unsigned char *v2 = calloc(total, 1), *at = v2 + 256;
    put_i32(v2, 0x616b3432);
    put_i32(v2 + 4, 2);
    memcpy(v2 + 8, hdr, sizeof hdr);
    v2[36] = 1;
    put_i32(v2 + 37, GS);
    memcpy(at, raw.rms_att, NL * DIM * 4), at += NL * DIM * 4;
    memcpy(at, raw.rms_ffn, NL * DIM * 4), at += NL * DIM * 4;
    memcpy(at, raw.rms_final, DIM * 4), at += DIM * 4;
    /* Each matrix of each layer is its own quantised tensor: int8 q[numel] then f32 scales. */
    for (int i = 0; i < 8; i++) {
        expect[i] = malloc(qn[i] * 4);
        size_t parts = (i == 0) ? 1 : NL, per = qn[i] / parts;
        for (size_t part = 0; part < parts; part++) {
            const float *x = qsrc[i] + part * per;
            float *ex = expect[i] + part * per;
            signed char *q = (signed char *)at;
            float *sc = malloc(per / GS * 4);
            for (size_t g = 0; g < per / GS; g++) {
                float mx = 0;
                for (int j = 0; j < GS; j++)
                    mx = fmaxf(mx, fabsf(x[g * GS + j]));
                float s = mx / 127.0f;
                sc[g] = s;
                for (int j = 0; j < GS; j++) {
                    q[g * GS + j] = (signed char)(s > 0 ? lrintf(x[g * GS + j] / s) : 0);
                    ex[g * GS + j] = (float)q[g * GS + j] * s;
                }
            }
            memcpy(at + per, sc, per / GS * 4);
            at += per + per / GS * 4;
            free(sc);
        }
    }
    expect[8] = expect[0];
    snprintf(p, sizeof p, "%s/v2.bin", tmpdir);
    write_file(p, v2, total);
    CHECK(hl_model_load(&m, p) == HL_OK, "v2: %s", hl_last_error());
    if (m.layers) {
        CHECK(m.format == HL_FORMAT_LLAMA2C_V2, "v2 format");
        check_config(&m, SEQ, 1, "v2");
        check_weights(&m, Q8, raw.tok, "v2", expect);
        hl_model_free(&m);
    }
    for (int i = 0; i < 8; i++)
        free(expect[i]);
    free(v2);
    free(wcls);
}

/* ---- damaged files ---- */

static void expect_load_error(const char *path, const char *needle1, const char *needle2, const char *what) {
    hl_model m;
    hl_status rc = hl_model_load(&m, path);
    CHECK(rc != HL_OK, "%s: loading should fail", what);
    if (rc == HL_OK) {
        hl_model_free(&m);
        return;
    }
    CHECK(strstr(hl_last_error(), needle1) != NULL, "%s: message \"%s\" lacks \"%s\"", what, hl_last_error(),
          needle1);
    if (needle2)
        CHECK(strstr(hl_last_error(), needle2) != NULL, "%s: message \"%s\" lacks \"%s\"", what, hl_last_error(),
              needle2);
}

/* An HF directory in tmpdir/<name> with the shared config and the shared F32 tensors, where
 * `skip` is left out and `transpose` is written with its two dims swapped. */
static void write_hf_dir(const char *name, const char *skip, const char *transpose, const char *config_edit) {
    char dir[512], p[600], src[1200];
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, name);
    mkdir(dir, 0755);
    snprintf(src, sizeof src, "%s/stories260K-hf/config.json", shared_models);
    size_t len;
    char *cfg = hl_test_read_file(src, &len);
    cfg[len] = '\0';
    if (config_edit) { /* "old=new": replace the first occurrence */
        char old[64], neu[64];
        sscanf(config_edit, "%63[^=]=%63[^\n]", old, neu);
        char *hit = strstr(cfg, old);
        if (hit) {
            char *out = malloc(len + 64);
            size_t pre = (size_t)(hit - cfg);
            memcpy(out, cfg, pre);
            strcpy(out + pre, neu);
            strcat(out, hit + strlen(old));
            free(cfg);
            cfg = out;
            len = strlen(cfg);
        }
    }
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_file(p, cfg, strlen(cfg));
    free(cfg);
    snprintf(src, sizeof src, "%s/stories260K-hf/model.safetensors", shared_models);
    hl_safetensors *st = NULL;
    if (hl_st_open(&st, src) != HL_OK) {
        CHECK(0, "%s", hl_last_error());
        return;
    }
    hl_st_entry *e = calloc((size_t)hl_st_count(st), sizeof *e);
    int n = 0;
    for (int i = 0; i < hl_st_count(st); i++) {
        const hl_st_tensor *t = hl_st_at(st, i);
        if (skip && !strcmp(t->name, skip))
            continue;
        e[n].name = t->name;
        e[n].data = t->data;
        e[n].ndim = t->ndim;
        memcpy(e[n].shape, t->shape, sizeof t->shape);
        if (transpose && !strcmp(t->name, transpose)) {
            e[n].shape[0] = t->shape[1];
            e[n].shape[1] = t->shape[0];
        }
        n++;
    }
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    CHECK(hl_st_write(p, e, n, NULL) == HL_OK, "%s", hl_last_error());
    free(e);
    hl_st_close(st);
}

static void damage_copy(const char *src, const char *dst, size_t keep, size_t at, const void *bytes, size_t n) {
    size_t len;
    unsigned char *b = hl_test_read_file(src, &len);
    if (keep > len)
        keep = len;
    if (bytes && at + n <= keep)
        memcpy(b + at, bytes, n);
    write_file(dst, b, keep);
    free(b);
}

static void test_damaged(void) {
    char src[1200], p[600], dir[600];

    /* Missing and mis-shaped tensors name the tensor and the expected shape. */
    write_hf_dir("missing", "model.layers.2.mlp.up_proj.weight", NULL, NULL);
    snprintf(dir, sizeof dir, "%s/missing", tmpdir);
    expect_load_error(dir, "model.layers.2.mlp.up_proj.weight", "[172, 64]", "missing tensor");
    write_hf_dir("misshaped", NULL, "model.layers.1.self_attn.o_proj.weight", NULL);
    write_hf_dir("misshaped2", NULL, "model.layers.3.mlp.down_proj.weight", NULL);
    snprintf(dir, sizeof dir, "%s/misshaped2", tmpdir);
    expect_load_error(dir, "model.layers.3.mlp.down_proj.weight", "expected [64, 172]", "mis-shaped tensor");
    write_hf_dir("nohidden", NULL, NULL, "\"hidden_size\"=\"hidden_sizeX\"");
    snprintf(dir, sizeof dir, "%s/nohidden", tmpdir);
    expect_load_error(dir, "hidden_size", "missing", "config without hidden_size");
    write_hf_dir("badheads", NULL, NULL, "\"num_key_value_heads\": 4=\"num_key_value_heads\": 3");
    snprintf(dir, sizeof dir, "%s/badheads", tmpdir);
    expect_load_error(dir, "n_kv_heads", NULL, "kv heads not dividing heads");
    write_hf_dir("scaling", NULL, NULL, "\"rope_scaling\": null=\"rope_scaling\": {\"type\": \"linear\"}");
    snprintf(dir, sizeof dir, "%s/scaling", tmpdir);
    expect_load_error(dir, "rope_scaling", NULL, "rope scaling");

    /* Damaged safetensors inside a good directory. */
    write_hf_dir("trunc", NULL, NULL, NULL);
    snprintf(src, sizeof src, "%s/stories260K-hf/model.safetensors", shared_models);
    snprintf(p, sizeof p, "%s/trunc/model.safetensors", tmpdir);
    damage_copy(src, p, 1044992 - 100, 0, NULL, 0);
    snprintf(dir, sizeof dir, "%s/trunc", tmpdir);
    expect_load_error(dir, "outside", "truncated", "truncated safetensors");
    uint64_t lie = 1044992;
    damage_copy(src, p, 1044992, 0, &lie, 8);
    expect_load_error(dir, "exceeds the file size", NULL, "lying header length");
    damage_copy(src, p, 1044992, 9, "#", 1); /* the first key's opening quote */
    expect_load_error(dir, "not valid JSON", NULL, "bad JSON header");

    /* GGUF: wrong magic, truncated, absurd counts, string past EOF, absurd shape. */
    snprintf(src, sizeof src, "%s/stories260K-gguf/stories260K.gguf", shared_models);
    snprintf(p, sizeof p, "%s/bad.gguf", tmpdir);
    damage_copy(src, p, 1185376, 0, "GGUX", 4);
    expect_load_error(p, "not a recognised model file", NULL, "wrong magic");
    damage_copy(src, p, 1185376 - 1000, 0, NULL, 0);
    expect_load_error(p, "runs past the end", "truncated", "truncated gguf");
    damage_copy(src, p, 9000, 0, NULL, 0);
    expect_load_error(p, "runs past the end", NULL, "gguf cut inside the metadata");
    uint64_t big = (uint64_t)1 << 60;
    damage_copy(src, p, 1185376, 8, &big, 8);
    expect_load_error(p, "more than", NULL, "n_tensors = 2^60");
    damage_copy(src, p, 1185376, 24, &big, 8); /* length of the first key */
    expect_load_error(p, "runs past the end", NULL, "string length past EOF");
    /* Find the first tensor info (token_embd.weight) and make its ne[1] absurd. */
    {
        size_t len;
        unsigned char *b = hl_test_read_file(src, &len);
        unsigned char *hit = memmem(b, len, "token_embd.weight", 17);
        size_t ne1 = (size_t)(hit - b) + 17 + 4 + 8;
        uint64_t absurd = (uint64_t)1 << 40;
        free(b);
        damage_copy(src, p, 1185376, ne1, &absurd, 8);
        expect_load_error(p, "token_embd.weight", "past the end", "absurd gguf shape");
        uint32_t badtype = 77;
        damage_copy(src, p, 1185376, ne1 + 8, &badtype, 4);
        expect_load_error(p, "unsupported ggml type", NULL, "unknown ggml type");
    }

    /* llama2.c: truncated, absurd header. */
    snprintf(src, sizeof src, "%s/stories260K/stories260K.bin", shared_models);
    snprintf(p, sizeof p, "%s/bad.bin", tmpdir);
    damage_copy(src, p, 1056540 - 4, 0, NULL, 0);
    expect_load_error(p, "truncated", NULL, "truncated .bin");
    int32_t huge = 1 << 30;
    damage_copy(src, p, 1056540, 0, &huge, 4);
    expect_load_error(p, "out of range", NULL, "absurd dim");
    snprintf(p, sizeof p, "%s/missing-file.bin", tmpdir);
    expect_load_error(p, "no such file", NULL, "missing file");
}


/* ---- more forms written here: mixed-dtype shards, extra tensors, GGUF F16/BF16/Q8_0 ---- */

/* The shared F32 HF tensors split over two shards: the embedding, norms and layers 0-1 in F32
 * with an unknown rotary_emb.inv_freq tensor, layers 2-4 in BF16 — plus an index. */
static void test_mixed_shards(void) {
    char dir[512], p[700], src[1200];
    snprintf(dir, sizeof dir, "%s/mixed", tmpdir);
    mkdir(dir, 0755);
    snprintf(src, sizeof src, "%s/stories260K-hf/config.json", shared_models);
    size_t len;
    char *cfg = hl_test_read_file(src, &len);
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_file(p, cfg, len);
    free(cfg);
    snprintf(src, sizeof src, "%s/stories260K-hf/model.safetensors", shared_models);
    hl_safetensors *st = NULL;
    if (hl_st_open(&st, src) != HL_OK) {
        CHECK(0, "%s", hl_last_error());
        return;
    }
    int n = hl_st_count(st), n1 = 0, n2 = 0;
    hl_st_entry *e1 = calloc((size_t)n + 1, sizeof *e1), *e2 = calloc((size_t)n, sizeof *e2);
    char *index = malloc(64 * 1024);
    size_t il = (size_t)sprintf(index, "{\"metadata\":{\"total_size\":0},\"weight_map\":{");
    for (int i = 0; i < n; i++) {
        const hl_st_tensor *t = hl_st_at(st, i);
        int late = strstr(t->name, "layers.2.") || strstr(t->name, "layers.3.") || strstr(t->name, "layers.4.");
        hl_st_entry *e = late ? &e2[n2++] : &e1[n1++];
        e->name = t->name;
        e->data = t->data;
        e->ndim = t->ndim;
        memcpy(e->shape, t->shape, sizeof t->shape);
        il += (size_t)sprintf(index + il, "%s\"%s\":\"%s\"", i ? "," : "", t->name,
                              late ? "part-2.safetensors" : "part-1.safetensors");
    }
    static const float inv_freq[4] = {1.0f, 0.1f, 0.01f, 0.001f};
    e1[n1++] = (hl_st_entry){.name = "model.layers.0.self_attn.rotary_emb.inv_freq", .data = inv_freq, .ndim = 1,
                             .shape = {4}};
    il += (size_t)sprintf(index + il, ",\"model.layers.0.self_attn.rotary_emb.inv_freq\":\"part-1.safetensors\"}}");
    hl_st_write_opts o32 = {HL_DTYPE_F32, 1, NULL, 0}, o16 = {HL_DTYPE_BF16, 1, NULL, 0};
    snprintf(p, sizeof p, "%s/part-1.safetensors", dir);
    CHECK(hl_st_write(p, e1, n1, &o32) == HL_OK, "%s", hl_last_error());
    snprintf(p, sizeof p, "%s/part-2.safetensors", dir);
    CHECK(hl_st_write(p, e2, n2, &o16) == HL_OK, "%s", hl_last_error());
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    write_file(p, index, il);
    free(index);
    free(e1);
    free(e2);
    hl_st_close(st);
    hl_model m;
    CHECK(hl_model_load(&m, dir) == HL_OK, "mixed shards: %s", hl_last_error());
    if (!m.layers)
        return;
    CHECK(m.layers[0].wq.dtype == HL_DTYPE_F32 && m.layers[4].wq.dtype == HL_DTYPE_BF16 &&
              m.tok_embed.dtype == HL_DTYPE_F32,
          "per-tensor dtypes kept");
    check_config(&m, SEQ, 1, "mixed");
    /* Layers 0-1 exact; layers 2-4 within bf16 rounding (2^-9 relative). */
    float *got = malloc((size_t)DIM * DIM * 4);
    for (int l = 0; l < NL; l++) {
        hl_weight_rows_to_f32(&m.layers[l].wo, 0, DIM, got);
        int bad = 0;
        for (int i = 0; i < DIM * DIM; i++) {
            float e = raw.wo[l * DIM * DIM + i];
            float tol = l < 2 ? 0.0f : fabsf(e) / 256.0f;
            bad += fabsf(got[i] - e) > tol;
        }
        CHECK(bad == 0, "mixed: layer %d wo has %d values off", l, bad);
    }
    free(got);
    hl_model_free(&m);
}

/* A minimal GGUF v3 writer following docs/file-formats.md §5 (independent of core/formats/gguf.c). */
typedef struct {
    unsigned char *p;
    size_t len, cap;
} buf;

static void put(buf *b, const void *d, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 1024;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}
static void put_u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(buf *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void kv_u32(buf *b, const char *k, uint32_t v) {
    put_str(b, k);
    put_u32(b, 4);
    put_u32(b, v);
}

static uint16_t f16_bits(float f) { /* independent round-to-nearest-even f32 → f16 for normal numbers */
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000;
    int exp = (int)((u >> 23) & 0xff) - 127 + 15;
    uint32_t mant = u & 0x7fffff;
    if ((u & 0x7fffffff) == 0)
        return (uint16_t)sign;
    if (exp <= 0) { /* subnormal */
        float a = fabsf(f) * 16777216.0f;
        return (uint16_t)(sign | (uint32_t)lrintf(a));
    }
    uint32_t h = ((uint32_t)exp << 10) | (mant >> 13), rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
        h++;
    return (uint16_t)(sign | h);
}

static float f16_value(uint16_t h) {
    int exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    float v = exp ? ldexpf((float)(mant | 0x400), exp - 25) : ldexpf((float)mant, -24);
    return (h & 0x8000) ? -v : v;
}

typedef enum { G_F16 = 1, G_Q8_0 = 8, G_BF16 = 30 } gtype;

/* Matrices in type `t`, norms F32; returns the file image. `expect` gets, per matrix in
 * write order, the values a reader must produce. */
static unsigned char *write_gguf(gtype t, size_t *out_len) {
    buf kv = {0}, info = {0}, data = {0};
    int nkv = 0, nt = 0;
    put_str(&kv, "general.architecture");
    put_u32(&kv, 8);
    put_str(&kv, "llama");
    nkv++;
    const char *keys[] = {"llama.context_length", "llama.embedding_length", "llama.feed_forward_length",
                          "llama.block_count", "llama.attention.head_count", "llama.attention.head_count_kv"};
    uint32_t vals[] = {SEQ, DIM, HID, NL, NH, NKV};
    for (int i = 0; i < 6; i++, nkv++)
        kv_u32(&kv, keys[i], vals[i]);
    kv_u32(&kv, "general.alignment", 64);
    nkv++;
    struct {
        char name[64];
        const float *src;
        int64_t rows, cols;
    } tl[3 + 9 * NL];
    snprintf(tl[nt].name, 64, "token_embd.weight"), tl[nt].src = raw.tok, tl[nt].rows = VOCAB, tl[nt++].cols = DIM;
    snprintf(tl[nt].name, 64, "output_norm.weight"), tl[nt].src = raw.rms_final, tl[nt].rows = 0,
        tl[nt++].cols = DIM;
    for (int l = 0; l < NL; l++) {
#define T(nm, s, r, c) snprintf(tl[nt].name, 64, "blk.%d." nm ".weight", l), tl[nt].src = (s), tl[nt].rows = (r), \
                       tl[nt++].cols = (c)
        T("attn_norm", raw.rms_att + l * DIM, 0, DIM);
        T("attn_q", raw.wq + l * DIM * DIM, DIM, DIM);
        T("attn_k", raw.wk + l * KV * DIM, KV, DIM);
        T("attn_v", raw.wv + l * KV * DIM, KV, DIM);
        T("attn_output", raw.wo + l * DIM * DIM, DIM, DIM);
        T("ffn_norm", raw.rms_ffn + l * DIM, 0, DIM);
        T("ffn_gate", raw.w1 + l * HID * DIM, HID, DIM);
        T("ffn_down", raw.w2 + l * DIM * HID, DIM, HID);
        T("ffn_up", raw.w3 + l * HID * DIM, HID, DIM);
#undef T
    }
    for (int i = 0; i < nt; i++) {
        while (data.len % 64)
            put(&data, "", 1);
        put_str(&info, tl[i].name);
        int two = tl[i].rows > 0;
        put_u32(&info, two ? 2 : 1);
        put_u64(&info, (uint64_t)tl[i].cols); /* ne[0] = innermost = PyTorch's last dim */
        if (two)
            put_u64(&info, (uint64_t)tl[i].rows);
        gtype ty = two ? t : 0;
        if (ty == G_Q8_0 && tl[i].cols % 32) /* rows must be whole blocks: llama.cpp falls back likewise */
            ty = G_F16;
        put_u32(&info, (uint32_t)ty);
        put_u64(&info, data.len);
        int64_t n = (two ? tl[i].rows : 1) * tl[i].cols;
        for (int64_t j = 0; j < n; j++) {
            float x = tl[i].src[j];
            if (ty == 0) {
                put(&data, &x, 4);
            } else if (ty == G_F16) {
                uint16_t h = f16_bits(x);
                put(&data, &h, 2);
            } else if (ty == G_BF16) {
                uint32_t u;
                memcpy(&u, &x, 4);
                uint16_t h = (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
                put(&data, &h, 2);
            } else if (j % 32 == 0) { /* Q8_0 block: f16 d = max|x|/127, 32 × int8 round(x/d) */
                float mx = 0;
                for (int k = 0; k < 32; k++)
                    mx = fmaxf(mx, fabsf(tl[i].src[j + k]));
                uint16_t dh = f16_bits(mx / 127.0f);
                float d = f16_value(dh);
                put(&data, &dh, 2);
                for (int k = 0; k < 32; k++) {
                    signed char q = (signed char)(d > 0 ? lrintf(tl[i].src[j + k] / d) : 0);
                    put(&data, &q, 1);
                }
            }
        }
    }
    buf out = {0};
    put(&out, "GGUF", 4);
    put_u32(&out, 3);
    put_u64(&out, (uint64_t)nt);
    put_u64(&out, (uint64_t)nkv);
    put(&out, kv.p, kv.len);
    put(&out, info.p, info.len);
    while (out.len % 64)
        put(&out, "", 1);
    put(&out, data.p, data.len);
    free(kv.p);
    free(info.p);
    free(data.p);
    *out_len = out.len;
    return out.p;
}

/* Expected reader output for one weight under the GGUF type. */
static float gguf_expect(gtype t, const float *src, int64_t i) {
    float x = src[i];
    if (t == G_F16)
        return f16_value(f16_bits(x));
    if (t == G_BF16) {
        uint32_t u;
        memcpy(&u, &x, 4);
        u = ((u + 0x7fff + ((u >> 16) & 1)) >> 16) << 16;
        memcpy(&x, &u, 4);
        return x;
    }
    int64_t b = i / 32 * 32;
    float mx = 0;
    for (int k = 0; k < 32; k++)
        mx = fmaxf(mx, fabsf(src[b + k]));
    float d = f16_value(f16_bits(mx / 127.0f));
    return d > 0 ? d * (float)lrintf(x / d) : 0.0f;
}

static int gguf_weight_ok(gtype t, const hl_weight *w, const float *src, int64_t rows, int64_t cols, int heads) {
    float *got = malloc((size_t)(rows * cols) * 4);
    hl_weight_rows_to_f32(w, 0, rows, got);
    int bad = 0;
    for (int64_t r = 0; r < rows; r++) {
        int64_t from = r;
        if (heads) {
            int64_t h = r / HD, i = r % HD;
            from = h * HD + (i < HD / 2 ? 2 * i : 2 * (i - HD / 2) + 1);
        }
        for (int64_t c = 0; c < cols; c++)
            bad += got[r * cols + c] != gguf_expect(t, src, from * cols + c);
    }
    free(got);
    return bad;
}

static void test_gguf_types(void) {
    gtype types[3] = {G_F16, G_BF16, G_Q8_0};
    const char *names[3] = {"F16", "BF16", "Q8_0"};
    hl_dtype want[3] = {HL_DTYPE_F16, HL_DTYPE_BF16, HL_DTYPE_F32};
    for (int k = 0; k < 3; k++) {
        size_t len;
        unsigned char *img = write_gguf(types[k], &len);
        char p[512];
        /* Named .bin on purpose: the format comes from the contents. */
        snprintf(p, sizeof p, "%s/gguf-%s.bin", tmpdir, names[k]);
        write_file(p, img, len);
        free(img);
        hl_model m;
        CHECK(hl_model_load(&m, p) == HL_OK, "gguf %s: %s", names[k], hl_last_error());
        if (!m.layers)
            continue;
        CHECK(m.format == HL_FORMAT_GGUF && m.dtype == want[k], "gguf %s: format %d dtype %s", names[k], m.format,
              hl_dtype_name(m.dtype));
        check_config(&m, SEQ, 1, names[k]);
        int bad = gguf_weight_ok(types[k], &m.tok_embed, raw.tok, VOCAB, DIM, 0);
        for (int l = 0; l < NL; l++) {
            const hl_layer_weights *W = &m.layers[l];
            bad += gguf_weight_ok(types[k], &W->wq, raw.wq + l * DIM * DIM, DIM, DIM, NH);
            bad += gguf_weight_ok(types[k], &W->wk, raw.wk + l * KV * DIM, KV, DIM, NKV);
            bad += gguf_weight_ok(types[k], &W->wv, raw.wv + l * KV * DIM, KV, DIM, 0);
            /* 172-wide rows are not whole Q8_0 blocks: that file stores ffn_down as F16. */
            bad += gguf_weight_ok(types[k] == G_Q8_0 ? G_F16 : types[k], &W->w_down, raw.w2 + l * DIM * HID, DIM,
                                  HID, 0);
            bad += gguf_weight_ok(types[k], &W->w_up, raw.w3 + l * HID * DIM, HID, DIM, 0);
        }
        CHECK(bad == 0, "gguf %s: %d values differ from the expected conversion", names[k], bad);
        CHECK(m.vocab == NULL, "no vocabulary in this file");
        hl_model_free(&m);
    }
    /* And the llama2.c file under a .gguf name. */
    char src[1200], p[512];
    snprintf(src, sizeof src, "%s/stories260K/stories260K.bin", shared_models);
    snprintf(p, sizeof p, "%s/really-llama2c.gguf", tmpdir);
    damage_copy(src, p, (size_t)-1, 0, NULL, 0);
    hl_model m;
    CHECK(hl_model_load(&m, p) == HL_OK && m.format == HL_FORMAT_LLAMA2C_V0, "detected by contents: %s",
          hl_last_error());
    hl_model_free(&m);
}

static void test_param_count_7b(void) {
    /* docs/file-formats.md §6: LLaMA-2-7B has 6,738,415,616 parameters. */
    hl_llama_config c = {.dim = 4096, .hidden_dim = 11008, .n_layers = 32, .n_heads = 32, .n_kv_heads = 32,
                         .head_dim = 128, .vocab_size = 32000, .max_seq_len = 4096, .rms_norm_eps = 1e-5f,
                         .rope_theta = 10000.0f, .tie_word_embeddings = 0};
    CHECK(hl_model_param_count(&c) == 6738415616LL, "7B params %lld", (long long)hl_model_param_count(&c));
    CHECK(hl_llama_config_check(&c, "7b") == HL_OK, "%s", hl_last_error());
}

int main(void) {
    snprintf(shared_models, sizeof shared_models, "%s/models", hl_test_shared_dir());
    if (!load_raw()) {
        fprintf(stderr, "cannot read stories260K.bin under %s (set HL_SHARED)\n", shared_models);
        return 1;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/hl_test_model_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_shared_forms();
    test_written_forms();
    test_damaged();
    test_mixed_shards();
    test_gguf_types();
    test_param_count_7b();
    hl_test_remove_dir(tmpdir);
    free(raw.file);
    return hl_test_finish();
}
