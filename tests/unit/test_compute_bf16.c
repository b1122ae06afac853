/* compute = bf16 against compute = f32 on the engine oracle's model configurations (the shapes,
 * dtypes, variants and targets of tests/oracle/test_engine_oracle.py, random weights here) and
 * one wider model: the training micro-batch's loss within 1e-2 relative and the whole adapter
 * gradient within cosine 0.999; KV-cache logits likewise. The bf16 side runs oneDNN where the
 * CPU has native bf16, else the reference bf16 path (same arithmetic: bf16 inputs, exact
 * products, f32 sums), so the tolerance claim is checked on every machine. The f32 side is the
 * exact path the oracles check against PyTorch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/adapter/adapter.h"
#include "core/backend/cpu/gemm.h"
#include "core/backend/cpu/llama.h"
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

/* One training micro-batch in `compute`; grads copied to g (n_params), loss returned. */
static float micro_batch(hl_llama *ctx, hl_adapters *ad, const model_case *c, const int *tok, int compute, float *g) {
    hl_llama_set_compute(ctx, compute);
    hl_adapters_zero_grad(ad);
    ad->dropout_step = 0;
    float loss = 0;
    int64_t n = 0;
    hl_status st = hl_llama_forward_backward(ctx, tok, tok, c->lengths, c->B, c->T, 1.0f, &loss, &n);
    CHECK(st == HL_OK && n > 0, "%s: forward/backward (%s): %s", c->name, hl_compute_name((hl_compute)compute),
          st ? hl_last_error() : "");
    memcpy(g, ad->grads, ad->n_params * sizeof(float));
    return loss;
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
    hl_adapters ad;
    if (hl_adapters_create(&ad, &mc, &ac, 5) != HL_OK) {
        CHECK(0, "%s: adapters: %s", c->name, hl_last_error());
        return;
    }
    hl_rng rng;
    hl_rng_seed(&rng, 99, HL_RNG_STREAM_USER);
    for (size_t i = 0; i < ad.n_params; i++) /* non-zero B (as the oracle), so every gradient is alive */
        if (ad.params[i] == 0.0f)
            ad.params[i] = 0.05f * (2.0f * hl_rng_uniform(&rng) - 1.0f);
    int *tok = malloc(sizeof(int) * (size_t)(c->B * c->T));
    for (int i = 0; i < c->B * c->T; i++)
        tok[i] = (int)(hl_rng_uniform(&rng) * (float)c->vocab) % c->vocab;
    unsigned flags = HL_LLAMA_TRAIN | (c->ckpt ? HL_LLAMA_CHECKPOINT : 0);
    hl_llama *ctx = NULL;
    if (hl_llama_create(&ctx, &tm.m, &ad, c->B, c->T, flags) != HL_OK) {
        CHECK(0, "%s: create: %s", c->name, hl_last_error());
        hl_adapters_free(&ad);
        hl_tiny_model_free(&tm);
        free(tok);
        return;
    }
    float *g32 = malloc(ad.n_params * sizeof(float)), *g16 = malloc(ad.n_params * sizeof(float));
    float l32 = micro_batch(ctx, &ad, c, tok, HL_COMPUTE_F32, g32);
    float l16 = micro_batch(ctx, &ad, c, tok, HL_COMPUTE_BF16, g16);
    double rel = fabs((double)l16 - l32) / fabs((double)l32);
    double cos_all = cosine(g16, g32, ad.n_params), cos_min = 1.0;
    const char *worst = "";
    for (int v = 0; v < ad.n_views; v++) {
        const hl_param_view *pv = &ad.views[v];
        double cv = cosine(g16 + pv->offset, g32 + pv->offset, (size_t)(pv->rows * pv->cols));
        if (cv < cos_min)
            cos_min = cv, worst = pv->name;
    }
    printf("%-24s %-4s loss f32 %.6f bf16 %.6f (rel %.2e); gradient cosine %.6f (lowest tensor %.5f: %s)\n", c->name,
           hl_dtype_name(c->dtype), l32, l16, rel, cos_all, cos_min, worst);
    CHECK(rel <= 1e-2, "%s: loss within 1e-2 relative (%.3g)", c->name, rel);
    CHECK(cos_all >= 0.999, "%s: gradient cosine >= 0.999 (%.6f)", c->name, cos_all);
    CHECK(memcmp(g16, g32, ad.n_params * sizeof(float)) != 0, "%s: bf16 compute did change the arithmetic", c->name);
    float l32b = micro_batch(ctx, &ad, c, tok, HL_COMPUTE_F32, g16);
    CHECK(l32b == l32 && !memcmp(g16, g32, ad.n_params * sizeof(float)), "%s: f32 again gives the same bits",
          c->name);
    hl_llama_free(ctx);

    /* KV-cache inference: logits of all new tokens, f32 vs bf16, and one row alone vs in the batch */
    hl_infer *inf = NULL;
    const int rows = c->B * c->T;
    if (hl_infer_create(&inf, &tm.m, &ad, c->B, c->T, rows) == HL_OK) {
        float *lf = malloc(sizeof(float) * (size_t)rows * c->vocab), *lb = malloc(sizeof(float) * (size_t)rows * c->vocab);
        int *pos0 = calloc((size_t)c->B, sizeof(int));
        hl_infer_set_compute(inf, HL_COMPUTE_F32);
        CHECK(hl_infer_forward(inf, tok, c->B, c->T, pos0, NULL, lf, 1) == HL_OK, "%s: infer f32", c->name);
        hl_infer_set_compute(inf, HL_COMPUTE_BF16);
        CHECK(hl_infer_forward(inf, tok, c->B, c->T, pos0, NULL, lb, 1) == HL_OK, "%s: infer bf16", c->name);
        double cl = cosine(lb, lf, (size_t)rows * c->vocab);
        CHECK(cl >= 0.999, "%s: logits cosine bf16 vs f32 %.6f", c->name, cl);
        free(lf), free(lb), free(pos0);
        hl_infer_free(inf);
    } else {
        CHECK(0, "%s: infer create: %s", c->name, hl_last_error());
    }
    free(g32), free(g16), free(tok);
    hl_adapters_free(&ad);
    hl_tiny_model_free(&tm);
}

int main(void) {
    hl_set_threads(0);
    if (!hl_gemm_bf16_native())
        CHECK(hl_gemm_set_bf16_path(HL_GEMM_PATH_REF_BF16) == 0, "the reference bf16 path can be chosen");
    char d[96];
    printf("bf16 compute runs: %s\n", hl_gemm_describe(HL_COMPUTE_BF16, HL_DTYPE_BF16, d, sizeof d));
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i]);
    return hl_test_finish();
}
