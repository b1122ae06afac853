/* compute = bf16 against compute = f32 on the engine oracle's model configurations (the shapes,
 * dtypes, variants and targets of tests/oracle/test_engine_oracle.py, random weights here) and
 * one wider model, through the backend seam: two sessions of one process on the cpu backend, one
 * set to f32 and one to bf16 (the mode is per session), same seed and batch. The training
 * micro-batch's loss within 1e-2 relative and the whole adapter gradient within cosine 0.999;
 * KV-cache logits (two decoders) within cosine 0.999. The bf16 side runs oneDNN where the CPU
 * has native bf16, else the reference bf16 path (same arithmetic: bf16 inputs, exact products,
 * f32 sums), so the tolerance claim is checked on every machine. The f32 side is the exact path
 * the oracles check against PyTorch: switching a session back to f32 gives its bits again. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/adapter/adapter.h"
#include "core/backend/backend.h"
#include "core/backend/cpu/gemm.h" /* the reference bf16 path for CPUs without bf16 (test hook) */
#include "core/base/rng.h"
#include "hl_test.h"
#include "hl_tiny_model.h"

typedef struct {
    const char *name;
    int dim, hidden, layers, heads, kv_heads, head_dim, vocab, tie;
    hl_dtype dtype;
    hl_variant variant;
    int n_heads, r;
    float alpha;
    unsigned targets;
    int ckpt, B, T;
    int lengths[4];
} model_case;

static const model_case cases[] = {
    {"gqa_hydra_all_targets", 48, 100, 2, 4, 2, 12, 97, 0, HL_DTYPE_F32, HL_VARIANT_HYDRA, 4, 4, 8.0f, 0x7f, 0, 3, 9,
     {9, 6, 4}},
    {"lora_tied_f16_ckpt", 32, 64, 2, 4, 4, 8, 61, 1, HL_DTYPE_F16, HL_VARIANT_LORA, 1, 4, 16.0f,
     HL_TARGET_Q | HL_TARGET_V | HL_TARGET_DOWN, 1, 2, 8, {8, 5}},
    {"split_mqa_bf16", 48, 100, 2, 4, 1, 12, 97, 0, HL_DTYPE_BF16, HL_VARIANT_LORA_SPLIT, 3, 2, 4.0f,
     HL_TARGET_O | HL_TARGET_GATE | HL_TARGET_UP | HL_TARGET_DOWN, 1, 2, 10, {10, 7}},
    {"uniform_gate", 40, 72, 3, 5, 5, 8, 50, 0, HL_DTYPE_F32, HL_VARIANT_UNIFORM, 4, 3, 6.0f,
     HL_TARGET_K | HL_TARGET_GATE | HL_TARGET_UP, 0, 2, 7, {7, 7}},
    /* wider: 128-row products, bf16 weights, HydraLoRA on the FFN as in training defaults */
    {"wide_bf16_hydra", 256, 704, 2, 4, 4, 64, 1000, 0, HL_DTYPE_BF16, HL_VARIANT_HYDRA, 4, 8, 32.0f,
     HL_TARGETS_DEFAULT, 0, 2, 64, {64, 50}},
};

static double cosine(const float *a, const float *b, size_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++)
        ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : (aa == bb ? 1.0 : 0.0);
}

static hl_backend *be;

/* One training micro-batch; the gradient slab copied to g (n_params), the loss returned. */
static float micro_batch(hl_session *s, const model_case *c, const hl_batch *b, float *g) {
    hl_session_zero_grad(s);
    hl_session_set_dropout_step(s, 0);
    float loss = 0;
    int64_t n = 0;
    hl_status st = hl_session_train_microbatch(s, b, 1.0f, &loss, &n);
    CHECK(st == HL_OK && n > 0, "%s: micro-batch (compute %s): %s", c->name,
          hl_compute_name(hl_session_compute(s)), st ? hl_last_error() : "");
    hl_session_read_slab(s, HL_SLAB_GRADS, 0, hl_session_layout(s)->n_params, g);
    return loss;
}

static hl_session *make_session(const model_case *c, const hl_model *m, const hl_adapter_config *ac,
                                const float *params, hl_compute compute) {
    unsigned flags = HL_SESSION_TRAIN | (c->ckpt ? HL_SESSION_CHECKPOINT : 0);
    hl_session *s = NULL;
    if (hl_session_create(&s, be, m, ac, 5, c->B, c->T, flags) != HL_OK) {
        CHECK(0, "%s: session: %s", c->name, hl_last_error());
        return NULL;
    }
    hl_session_write_slab(s, HL_SLAB_PARAMS, 0, hl_session_layout(s)->n_params, params);
    CHECK(hl_session_set_compute(s, compute) == HL_OK && hl_session_compute(s) == compute, "%s: set compute %s",
          c->name, hl_compute_name(compute));
    return s;
}

static void run_case(const model_case *c) {
    hl_llama_config mc = {.dim = c->dim, .hidden_dim = c->hidden, .n_layers = c->layers, .n_heads = c->heads,
                          .n_kv_heads = c->kv_heads, .head_dim = c->head_dim, .vocab_size = c->vocab,
                          .max_seq_len = 512, .rms_norm_eps = 1e-5f, .rope_theta = 10000.0f,
                          .tie_word_embeddings = c->tie};
    hl_tiny_model tm;
    hl_tiny_model_init(&tm, &mc, c->dtype, 11);
    hl_adapter_config ac = {.variant = c->variant, .targets = c->targets, .r = c->r, .n_heads = c->n_heads,
                            .alpha = c->alpha, .dropout = 0.0f};
    hl_adapters ad; /* the layout and the parameters both sessions and decoders get */
    if (hl_adapters_create(&ad, &mc, &ac, 5) != HL_OK) {
        CHECK(0, "%s: adapters: %s", c->name, hl_last_error());
        hl_tiny_model_free(&tm);
        return;
    }
    hl_rng rng;
    hl_rng_seed(&rng, 99, HL_RNG_STREAM_USER);
    for (size_t i = 0; i < ad.n_params; i++) /* non-zero B (as the oracle), so every gradient is alive */
        if (ad.params[i] == 0.0f)
            ad.params[i] = 0.05f * (2.0f * hl_rng_uniform(&rng) - 1.0f);
    const int rows = c->B * c->T;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)rows), starts[4], lens[4];
    for (int i = 0; i < rows; i++)
        tok[i] = (int32_t)((int)(hl_rng_uniform(&rng) * (float)c->vocab) % c->vocab);
    hl_batch b;
    hl_batch_padded(&b, tok, tok, c->lengths, c->B, c->T, starts, lens);

    hl_session *s32 = make_session(c, &tm.m, &ac, ad.params, HL_COMPUTE_F32);
    hl_session *s16 = make_session(c, &tm.m, &ac, ad.params, HL_COMPUTE_BF16);
    float *g32 = malloc(ad.n_params * sizeof(float)), *g16 = malloc(ad.n_params * sizeof(float));
    if (s32 && s16) {
        /* interleaved: each session keeps its own mode */
        float l32 = micro_batch(s32, c, &b, g32);
        float l16 = micro_batch(s16, c, &b, g16);
        double rel = fabs((double)l16 - l32) / fabs((double)l32);
        double cos_all = cosine(g16, g32, ad.n_params), cos_min = 1.0;
        const char *worst = "";
        for (int v = 0; v < ad.n_views; v++) {
            const hl_param_view *pv = &ad.views[v];
            double cv = cosine(g16 + pv->offset, g32 + pv->offset, (size_t)(pv->rows * pv->cols));
            if (cv < cos_min)
                cos_min = cv, worst = pv->name;
        }
        printf("%-24s %-4s loss f32 %.6f bf16 %.6f (rel %.2e); gradient cosine %.6f (lowest tensor %.5f: %s)\n",
               c->name, hl_dtype_name(c->dtype), l32, l16, rel, cos_all, cos_min, worst);
        CHECK(rel <= 1e-2, "%s: loss within 1e-2 relative (%.3g)", c->name, rel);
        CHECK(cos_all >= 0.999, "%s: gradient cosine >= 0.999 (%.6f)", c->name, cos_all);
        CHECK(memcmp(g16, g32, ad.n_params * sizeof(float)) != 0, "%s: bf16 compute did change the arithmetic",
              c->name);
        float l32b = micro_batch(s32, c, &b, g16);
        CHECK(l32b == l32 && !memcmp(g16, g32, ad.n_params * sizeof(float)),
              "%s: the f32 session gives the same bits after the bf16 one ran", c->name);
        hl_session_set_compute(s16, HL_COMPUTE_F32);
        float l16b = micro_batch(s16, c, &b, g16);
        CHECK(l16b == l32 && !memcmp(g16, g32, ad.n_params * sizeof(float)),
              "%s: the bf16 session switched to f32 gives the f32 bits", c->name);
    }
    hl_session_free(s32);
    hl_session_free(s16);

    /* KV-cache decoding: logits of every new token, an f32 decoder against a bf16 one */
    hl_decoder *d32 = NULL, *d16 = NULL;
    if (hl_decoder_create(&d32, be, &tm.m, &ad, c->B, c->T, rows) == HL_OK &&
        hl_decoder_create(&d16, be, &tm.m, &ad, c->B, c->T, rows) == HL_OK) {
        float *lf = malloc(sizeof(float) * (size_t)rows * c->vocab);
        float *lb = malloc(sizeof(float) * (size_t)rows * c->vocab);
        int *pos0 = calloc((size_t)c->B, sizeof(int));
        CHECK(hl_decoder_set_compute(d32, HL_COMPUTE_F32) == HL_OK, "%s: decoder f32", c->name);
        CHECK(hl_decoder_set_compute(d16, HL_COMPUTE_BF16) == HL_OK, "%s: decoder bf16", c->name);
        CHECK(hl_decoder_forward(d32, tok, c->B, c->T, pos0, NULL, lf, 1, NULL) == HL_OK, "%s: decode f32",
              c->name);
        CHECK(hl_decoder_forward(d16, tok, c->B, c->T, pos0, NULL, lb, 1, NULL) == HL_OK, "%s: decode bf16",
              c->name);
        double cl = cosine(lb, lf, (size_t)rows * c->vocab);
        printf("%-24s      decoder logits cosine bf16 vs f32 %.6f\n", c->name, cl);
        CHECK(cl >= 0.999, "%s: logits cosine bf16 vs f32 %.6f", c->name, cl);
        CHECK(memcmp(lb, lf, sizeof(float) * (size_t)rows * c->vocab) != 0, "%s: bf16 decoding differs from f32",
              c->name);
        free(lf), free(lb), free(pos0);
    } else {
        CHECK(0, "%s: decoder create: %s", c->name, hl_last_error());
    }
    hl_decoder_free(d32);
    hl_decoder_free(d16);
    free(g32), free(g16), free(tok);
    hl_adapters_free(&ad);
    hl_tiny_model_free(&tm);
}

int main(void) {
    if (hl_backend_open(&be, "cpu") != HL_OK || hl_backend_set_threads(be, 0) != HL_OK) {
        fprintf(stderr, "cpu backend: %s\n", hl_last_error());
        return 1;
    }
    if (!hl_gemm_bf16_native())
        CHECK(hl_gemm_set_bf16_path(HL_GEMM_PATH_REF_BF16) == 0, "the reference bf16 path can be chosen");
    char d[96];
    CHECK(hl_backend_compute_path(be, HL_COMPUTE_BF16, NULL, HL_DTYPE_BF16, d, sizeof d) == HL_OK, "compute path");
    printf("bf16 compute runs: %s\n", d);
    CHECK(hl_session_set_compute(NULL, HL_COMPUTE_F32) == HL_ERR_ARG, "no session: refused");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i]);
    hl_backend_close(be);
    return hl_test_finish();
}
