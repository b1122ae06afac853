/* HydraLoRA gradients.
 * 1. One adapted projection, every variant (HydraLoRA, LoRA, LoRA-Split, uniform gate), with
 *    and without dropout (a fixed mask key): forward against docs/method.md §2 evaluated
 *    directly in double, and every parameter / input gradient against central differences.
 * 2. A whole tiny model (GQA, untied head, right padding, −100 labels, all 7 targets):
 *    forward_backward's adapter gradients against central differences of hl_llama_eval's
 *    loss; gradient checkpointing gives bit-identical gradients; two runs are bit-identical;
 *    a BF16 model equals an F32 model holding the same rounded weights; the KV-cache path
 *    reproduces the full-recompute logits.
 * Tolerances: see test_ops_grad.c for the finite-difference budget (h = 1e-2, f32 forward);
 * through a whole model the f32 noise of the loss (~1e-6 abs.) over 2h adds ~1e-4 of the
 * largest gradient, so 5e-3 of that scale is used there. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/adapter/adapter.h"
#include "core/backend/cpu/cpu_adapter.h"
#include "core/backend/cpu/gemm.h"
#include "core/backend/cpu/llama.h"
#include "core/base/rng.h"
#include "hl_test.h"
#include "hl_tiny_model.h"

static hl_rng rng;
static float frand(void) { return 2.0f * hl_rng_uniform(&rng) - 1.0f; }
static void fill(float *x, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++)
        x[i] = scale * frand();
}

/* ---------------- 1. one projection ---------------- */

typedef struct {
    hl_adapters *ad;
    const hl_adapter_proj *p;
    float *X, *Y0, *Y, *Z, *W, *c, *scratch;
    int M;
    hl_dropout drop;
} layer_ctx;

static double layer_obj(layer_ctx *L) {
    int n = L->M * L->p->d_out;
    memcpy(L->Y, L->Y0, (size_t)n * 4);
    hl_adapter_forward(L->ad, L->p, L->Y, L->X, L->M, L->Z, L->W, L->drop, NULL, NULL, L->scratch);
    double s = 0;
    for (int i = 0; i < n; i++)
        s += (double)L->c[i] * L->Y[i];
    return s;
}

static void fd_compare(const char *what, float *x, const float *g, int64_t n, double (*f)(void *), void *ctx,
                       float h, double tol) {
    double scale = 1e-6;
    for (int64_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(g[i]));
    double worst = 0;
    int64_t wi = 0;
    for (int64_t i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + h;
        double lp = f(ctx);
        x[i] = keep - h;
        double lm = f(ctx);
        x[i] = keep;
        double err = fabs((lp - lm) / (2.0 * h) - g[i]) / scale;
        if (err > worst)
            worst = err, wi = i;
    }
    CHECK(worst <= tol, "%s: worst relative error %.3g at %lld (scale %.3g)", what, worst, (long long)wi, scale);
}
static double layer_obj_v(void *p) { return layer_obj(p); }

static void test_layer(hl_variant variant, int N, float p_drop) {
    const char *names[] = {"hydra", "lora", "lora-split", "uniform"};
    char what[128];
    hl_llama_config mc = {.dim = 6, .hidden_dim = 5, .n_layers = 1, .n_heads = 1, .n_kv_heads = 1,
                          .head_dim = 6, .vocab_size = 4, .max_seq_len = 8, .rms_norm_eps = 1e-5f,
                          .rope_theta = 10000.0f};
    hl_adapter_config ac = {.variant = variant, .targets = HL_TARGET_GATE, .r = 2, .n_heads = N, .alpha = 3.0f,
                            .dropout = p_drop};
    hl_adapters ad;
    CHECK(hl_adapters_create(&ad, &mc, &ac, 7) == HL_OK, "create: %s", hl_last_error());
    const hl_adapter_proj *p = hl_adapters_proj(&ad, 0, 4);
    CHECK(p && p->d_in == 6 && p->d_out == 5, "gate projection dims");
    /* B starts at zero (reference init); random B makes A and router gradients non-trivial */
    for (int i = 0; i < ad.N * p->d_out * ac.r; i++)
        p->B[i] = 0.5f * frand();
    const int M = 4, di = p->d_in, dout = p->d_out, r = ac.r, nA = ad.nA;
    float X[4 * 6], Y0[4 * 5], Y[4 * 5], Z[4 * 16], W[4 * 8], c[4 * 5], dX[4 * 6] = {0};
    fill(X, M * di, 1.0f);
    fill(Y0, M * dout, 1.0f);
    fill(c, M * dout, 1.0f);
    float *scratch = malloc((size_t)hl_adapter_scratch_floats(&ad, M, di, dout) * 4);
    layer_ctx L = {&ad, p, X, Y0, Y, Z, W, c, scratch, M, {0x1234567ull, p_drop}};
    layer_obj(&L);
    /* forward against the formula, in double */
    double worst = 0;
    for (int m = 0; m < M; m++) {
        double h[6], om[8];
        for (int j = 0; j < di; j++) {
            int keep = p_drop <= 0 || hl_rng_hash_uniform(L.drop.key, (uint64_t)m * di + j) >= p_drop;
            h[j] = keep ? X[m * di + j] / (1.0 - p_drop) : 0.0;
        }
        if (variant == HL_VARIANT_HYDRA || variant == HL_VARIANT_LORA_SPLIT) {
            double lg[8], mx = -1e30, s = 0;
            for (int i = 0; i < ad.N; i++) {
                lg[i] = 0;
                for (int j = 0; j < di; j++)
                    lg[i] += (double)p->R[i * di + j] * X[m * di + j]; /* router reads un-dropped x */
                mx = fmax(mx, lg[i]);
            }
            for (int i = 0; i < ad.N; i++)
                s += exp(lg[i] - mx);
            for (int i = 0; i < ad.N; i++)
                om[i] = exp(lg[i] - mx) / s;
        } else {
            for (int i = 0; i < ad.N; i++)
                om[i] = 1.0 / ad.N;
        }
        for (int o = 0; o < dout; o++) {
            double y = Y0[m * dout + o];
            for (int i = 0; i < ad.N; i++) {
                const float *A = p->A + (nA > 1 ? i : 0) * r * di;
                for (int k = 0; k < r; k++) {
                    double z = 0;
                    for (int j = 0; j < di; j++)
                        z += (double)A[k * di + j] * h[j];
                    y += ad.scale * om[i] * p->B[(i * dout + o) * r + k] * z;
                }
            }
            worst = fmax(worst, fabs(y - Y[m * dout + o]));
        }
    }
    snprintf(what, sizeof what, "%s N=%d p=%.1f forward matches docs/method.md §2", names[variant], ad.N,
             (double)p_drop);
    CHECK(worst < 1e-5, "%s (max diff %g)", what, worst);
    hl_adapter_backward(&ad, p, dX, c, X, M, Z, W, L.drop, scratch);
    snprintf(what, sizeof what, "%s N=%d p=%.1f: all parameter gradients", names[variant], ad.N, (double)p_drop);
    fd_compare(what, ad.params, ad.grads, (int64_t)ad.n_params, layer_obj_v, &L, 1e-2f, 2e-3);
    snprintf(what, sizeof what, "%s N=%d p=%.1f: input gradient", names[variant], ad.N, (double)p_drop);
    fd_compare(what, X, dX, M * di, layer_obj_v, &L, 1e-2f, 2e-3);
    /* views: names per docs/method.md §8 */
    if (variant == HL_VARIANT_HYDRA && ad.N >= 3)
        CHECK(hl_adapters_find(&ad, "base_model.model.model.layers.0.mlp.gate_proj.lora_B2.weight") &&
                  hl_adapters_find(&ad, "base_model.model.model.layers.0.mlp.gate_proj.lora_route.weight") &&
                  hl_adapters_find(&ad, "base_model.model.model.layers.0.mlp.gate_proj.lora_A.weight"),
              "hydra export keys");
    if (variant == HL_VARIANT_LORA)
        CHECK(hl_adapters_find(&ad, "base_model.model.model.layers.0.mlp.gate_proj.lora_B.weight") && ad.n_views == 2,
              "lora export keys (PEFT names)");
    if (variant == HL_VARIANT_LORA_SPLIT)
        CHECK(hl_adapters_find(&ad, "base_model.model.model.layers.0.mlp.gate_proj.lora_A1.weight") &&
                  hl_adapters_find(&ad, "base_model.model.model.layers.0.mlp.gate_proj.lora_route.weight"),
              "lora-split export keys");
    if (variant == HL_VARIANT_UNIFORM)
        CHECK(!hl_adapters_find(&ad, "base_model.model.model.layers.0.mlp.gate_proj.lora_route.weight") &&
                  ad.n_views == 1 + ad.N,
              "uniform has no router");
    free(scratch);
    hl_adapters_free(&ad);
}

/* ---------------- 2. whole model ---------------- */

enum { MB = 2, MT = 6 };
static const int tokens[MB * MT] = {1, 5, 9, 3, 16, 2, 1, 7, 7, 12, 0, 0};
static const int labels[MB * MT] = {-100, -100, 9, 3, 16, 2, -100, 7, -100, 12, -100, -100};
static const int lens[MB] = {6, 4};

typedef struct {
    hl_llama *ctx;
} model_ctx;
static double model_obj(void *p) {
    model_ctx *mc = p;
    float loss;
    hl_llama_eval(mc->ctx, tokens, labels, lens, MB, MT, &loss, NULL, NULL, NULL);
    /* re-evaluate the mean in double from the per-sequence sums for less rounding */
    double s[MB];
    int64_t c[MB];
    hl_llama_eval(mc->ctx, tokens, labels, lens, MB, MT, &loss, NULL, s, c);
    return (s[0] + s[1]) / (double)(c[0] + c[1]);
}

/* targets: the adapted projections (HL_TARGET_* bits). A single target stops the engine's
 * backward early in the lowest layer (no input gradient below the lowest adapter): down alone
 * after the down projection, gate after gate/up, o after o, v after q/k/v; finite differences
 * then check that nothing an adapter needs was skipped. */
static void test_model(hl_variant variant, int N, unsigned targets) {
    hl_llama_config cfg = {.dim = 12, .hidden_dim = 20, .n_layers = 2, .n_heads = 3, .n_kv_heads = 1,
                           .head_dim = 4, .vocab_size = 17, .max_seq_len = 16, .rms_norm_eps = 1e-5f,
                           .rope_theta = 10000.0f, .tie_word_embeddings = 0};
    hl_tiny_model tm;
    hl_tiny_model_init(&tm, &cfg, HL_DTYPE_F32, 99);
    hl_adapter_config ac = {.variant = variant, .targets = targets, .r = 2, .n_heads = N, .alpha = 4.0f,
                            .dropout = 0};
    hl_adapters ad;
    CHECK(hl_adapters_create(&ad, &cfg, &ac, 5) == HL_OK, "create: %s", hl_last_error());
    for (int i = 0; i < ad.n_views; i++)
        if (ad.views[i].kind == 1)
            fill(ad.params + ad.views[i].offset, ad.views[i].rows * ad.views[i].cols, 0.3f);
    hl_llama *ctx, *ctx_ck;
    CHECK(hl_llama_create(&ctx, &tm.m, &ad, MB, MT, HL_LLAMA_TRAIN | HL_LLAMA_STATS) == HL_OK, "ctx: %s",
          hl_last_error());
    CHECK(hl_llama_create(&ctx_ck, &tm.m, &ad, MB, MT, HL_LLAMA_TRAIN | HL_LLAMA_CHECKPOINT) == HL_OK, "ctx ck: %s",
          hl_last_error());
    float loss, loss_eval;
    int64_t n;
    hl_adapters_zero_grad(&ad);
    CHECK(hl_llama_forward_backward(ctx, tokens, labels, lens, MB, MT, 1.0f, &loss, &n) == HL_OK, "fb: %s",
          hl_last_error());
    CHECK(n == 6, "6 targets (got %lld)", (long long)n);
    hl_llama_eval(ctx, tokens, labels, lens, MB, MT, &loss_eval, NULL, NULL, NULL);
    CHECK(loss == loss_eval, "training loss without dropout equals eval loss (%.9g vs %.9g)", loss, loss_eval);
    float *g = malloc(ad.n_params * 4);
    memcpy(g, ad.grads, ad.n_params * 4);
    /* finite differences on one element of every tensor plus 30 random elements */
    model_ctx mc = {ctx};
    double scale = 1e-6, worst = 0;
    for (size_t i = 0; i < ad.n_params; i++)
        scale = fmax(scale, fabs(g[i]));
    int checked = 0;
    for (int k = 0; k < ad.n_views + 30; k++) {
        size_t i = k < ad.n_views ? ad.views[k].offset + (size_t)(ad.views[k].rows * ad.views[k].cols) / 2
                                  : (size_t)hl_rng_below(&rng, ad.n_params);
        float keep = ad.params[i];
        ad.params[i] = keep + 1e-2f;
        double lp = model_obj(&mc);
        ad.params[i] = keep - 1e-2f;
        double lm = model_obj(&mc);
        ad.params[i] = keep;
        worst = fmax(worst, fabs((lp - lm) / 2e-2 - g[i]) / scale);
        checked++;
    }
    CHECK(worst < 5e-3,
          "variant %d targets 0x%x: whole-model gradients vs finite differences: worst %.3g of scale %.3g (%d checked)",
          (int)variant, targets, worst, scale, checked);
    /* gradient checkpointing and repeatability, with dropout on */
    ad.cfg.dropout = 0.2f;
    ad.dropout_step = 11;
    hl_adapters_zero_grad(&ad);
    float l1, l2, l3;
    hl_llama_forward_backward(ctx, tokens, labels, lens, MB, MT, 0.5f, &l1, NULL);
    memcpy(g, ad.grads, ad.n_params * 4);
    ad.dropout_step = 11;
    hl_adapters_zero_grad(&ad);
    hl_llama_forward_backward(ctx_ck, tokens, labels, lens, MB, MT, 0.5f, &l2, NULL);
    CHECK(l1 == l2 && !memcmp(g, ad.grads, ad.n_params * 4), "checkpointing gives bit-identical loss and gradients");
    ad.dropout_step = 11;
    hl_adapters_zero_grad(&ad);
    hl_llama_forward_backward(ctx, tokens, labels, lens, MB, MT, 0.5f, &l3, NULL);
    CHECK(l1 == l3 && !memcmp(g, ad.grads, ad.n_params * 4), "a second run is bit-identical");
    CHECK(ad.dropout_step == 12, "dropout step advances per micro-batch");
    CHECK(l1 != loss, "dropout changes the training loss");
    if (ad.has_router && targets == 0x7f) {
        hl_routing_stats *st = hl_llama_routing(ctx);
        CHECK(st && st->tokens[0] == 3 * 10, "routing stats count non-pad tokens (%lld)",
              st ? (long long)st->tokens[0] : -1LL);
        double wsum = 0;
        int64_t tsum = 0;
        for (int i = 0; i < ad.N; i++)
            wsum += hl_routing_mean_weight(st, 1, 6, i), tsum += st->top1[(1 * 7 + 6) * ad.N + i];
        CHECK(fabs(wsum - 1.0) < 1e-6 && tsum == 30, "router weights average to a distribution");
        double e = hl_routing_mean_entropy(st, 1, 6);
        CHECK(e > 0 && e <= log((double)ad.N) + 1e-9, "entropy within (0, ln N]: %g", e);
    }
    /* KV-cache inference reproduces the full recompute (sequence 0, prefill 3 then 1 by 1) */
    {
        float full[MB * MT * 17], step[17];
        hl_llama_logits(ctx, tokens, lens, MB, MT, full);
        hl_infer *inf;
        CHECK(hl_infer_create(&inf, &tm.m, &ad, 2, MT, 4) == HL_OK, "infer: %s", hl_last_error());
        int p0 = 0, slot = 1;
        float pre[3 * 17];
        hl_infer_forward(inf, tokens, 1, 3, &p0, &slot, pre, 1);
        double w = 0;
        for (int i = 0; i < 3 * 17; i++)
            w = fmax(w, fabs(pre[i] - full[i]));
        for (int t = 3; t < MT; t++) {
            p0 = t;
            hl_infer_forward(inf, tokens + t, 1, 1, &p0, &slot, step, 0);
            for (int i = 0; i < 17; i++)
                w = fmax(w, fabs(step[i] - full[t * 17 + i]));
        }
        CHECK(w < 1e-5, "KV-cache logits equal full recompute (max diff %g)", w);
        hl_infer_free(inf);
    }
    /* batched decoding: both sequences in one call, at different positions, in slots 1 and 0 */
    {
        float full[MB * MT * 17], two[2 * 17];
        hl_llama_logits(ctx, tokens, lens, MB, MT, full);
        hl_infer *inf;
        CHECK(hl_infer_create(&inf, &tm.m, &ad, 2, MT, 4) == HL_OK, "infer: %s", hl_last_error());
        int p0[2] = {0, 0}, slot[2] = {1, 0};
        float pre[2 * 17];
        hl_infer_forward(inf, tokens, 1, 2, &p0[0], &slot[0], pre, 0);           /* seq 0: 2-token prefill */
        hl_infer_forward(inf, tokens + MT, 1, 1, &p0[1], &slot[1], pre + 17, 0); /* seq 1: 1 token */
        double w = 0;
        for (int step = 0; step < 2; step++) { /* then both advance together */
            int tk[2] = {tokens[2 + step], tokens[MT + 1 + step]};
            int pp[2] = {2 + step, 1 + step};
            hl_infer_forward(inf, tk, 2, 1, pp, slot, two, 0);
            for (int i = 0; i < 17; i++) {
                w = fmax(w, fabs(two[i] - full[(2 + step) * 17 + i]));
                w = fmax(w, fabs(two[17 + i] - full[(MT + 1 + step) * 17 + i]));
            }
        }
        CHECK(w < 1e-5, "batched KV-cache decoding at different positions matches (max diff %g)", w);
        hl_infer_free(inf);
    }
    /* a context planned for a bigger batch gives the same numbers on a smaller one */
    {
        hl_llama *big = NULL, *exact = NULL;
        CHECK(hl_llama_create(&big, &tm.m, &ad, 3, 9, HL_LLAMA_TRAIN) == HL_OK &&
                  hl_llama_create(&exact, &tm.m, &ad, MB, MT, HL_LLAMA_TRAIN) == HL_OK,
              "contexts");
        float la, lb;
        ad.dropout_step = 3;
        hl_adapters_zero_grad(&ad);
        hl_llama_forward_backward(big, tokens, labels, lens, MB, MT, 1.0f, &la, NULL);
        memcpy(g, ad.grads, ad.n_params * 4);
        ad.dropout_step = 3;
        hl_adapters_zero_grad(&ad);
        hl_llama_forward_backward(exact, tokens, labels, lens, MB, MT, 1.0f, &lb, NULL);
        CHECK(la == lb && !memcmp(g, ad.grads, ad.n_params * 4), "smaller batch in a bigger context: same bits");
        CHECK(hl_llama_forward_backward(exact, tokens, labels, lens, MB, MT + 1, 1.0f, &lb, NULL) == HL_ERR_ARG,
              "a batch longer than planned is refused");
        int badtok[MB * MT];
        memcpy(badtok, tokens, sizeof badtok);
        badtok[3] = 17;
        CHECK(hl_llama_forward_backward(exact, badtok, labels, lens, MB, MT, 1.0f, &lb, NULL) == HL_ERR_RANGE,
              "token id out of range is refused");
        hl_llama_free(big);
        hl_llama_free(exact);
    }
    free(g);
    hl_llama_free(ctx);
    hl_llama_free(ctx_ck);
    hl_adapters_free(&ad);
    hl_tiny_model_free(&tm);
}

/* BF16 storage: same logits as F32 storage of the same rounded values. */
static void test_bf16_model(void) {
    hl_llama_config cfg = {.dim = 16, .hidden_dim = 24, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                           .head_dim = 4, .vocab_size = 17, .max_seq_len = 16, .rms_norm_eps = 1e-5f,
                           .rope_theta = 10000.0f, .tie_word_embeddings = 1};
    hl_tiny_model a, b;
    hl_tiny_model_init(&a, &cfg, HL_DTYPE_BF16, 3);
    hl_tiny_model_init(&b, &cfg, HL_DTYPE_F32, 3); /* same draws; now overwrite with a's rounded values */
    hl_weight *wa[64], *wb[64];
    int n = 0;
    wa[n] = &a.m.tok_embed, wb[n++] = &b.m.tok_embed;
    wa[n] = &a.m.final_norm, wb[n++] = &b.m.final_norm;
    for (int l = 0; l < cfg.n_layers; l++) {
        hl_layer_weights *x = &a.m.layers[l], *y = &b.m.layers[l];
        hl_weight *xa[] = {&x->attn_norm, &x->wq, &x->wk, &x->wv, &x->wo, &x->ffn_norm, &x->w_gate, &x->w_up, &x->w_down};
        hl_weight *ya[] = {&y->attn_norm, &y->wq, &y->wk, &y->wv, &y->wo, &y->ffn_norm, &y->w_gate, &y->w_up, &y->w_down};
        for (int j = 0; j < 9; j++)
            wa[n] = xa[j], wb[n++] = ya[j];
    }
    for (int i = 0; i < n; i++) /* the f32 model gets the bf16 model's rounded values */
        for (int64_t j = 0; j < wa[i]->rows * wa[i]->cols; j++)
            ((float *)wb[i]->data)[j] = hl_bf16_to_f32(((const uint16_t *)wa[i]->data)[j]);
    hl_llama *ca, *cb;
    CHECK(hl_llama_create(&ca, &a.m, NULL, MB, MT, 0) == HL_OK, "bf16 ctx: %s", hl_last_error());
    CHECK(hl_llama_create(&cb, &b.m, NULL, MB, MT, 0) == HL_OK, "f32 ctx: %s", hl_last_error());
    float la[MB * MT * 17], lb[MB * MT * 17];
    hl_llama_logits(ca, tokens, lens, MB, MT, la);
    hl_llama_logits(cb, tokens, lens, MB, MT, lb);
    double w = 0;
    for (int i = 0; i < MB * MT * 17; i++)
        w = fmax(w, fabs(la[i] - lb[i]));
    CHECK(w < 1e-5, "bf16-stored model equals f32 model with the same values (max diff %g)", w);
    hl_llama_free(ca);
    hl_llama_free(cb);
    hl_tiny_model_free(&a);
    hl_tiny_model_free(&b);
}

int main(void) {
    hl_rng_seed(&rng, 42, HL_RNG_STREAM_USER);
    for (int pd = 0; pd < 2; pd++) {
        float p = pd ? 0.3f : 0.0f;
        test_layer(HL_VARIANT_HYDRA, 3, p);
        test_layer(HL_VARIANT_LORA, 1, p);
        test_layer(HL_VARIANT_LORA_SPLIT, 3, p);
        test_layer(HL_VARIANT_UNIFORM, 3, p);
    }
    test_layer(HL_VARIANT_HYDRA, 1, 0.0f);
    test_model(HL_VARIANT_HYDRA, 3, 0x7f);
    test_model(HL_VARIANT_LORA_SPLIT, 2, 0x7f);
    static const unsigned alone[] = {HL_TARGET_DOWN, HL_TARGET_GATE, HL_TARGET_O, HL_TARGET_V};
    for (size_t i = 0; i < sizeof alone / sizeof alone[0]; i++)
        test_model(HL_VARIANT_HYDRA, 3, alone[i]);
    test_bf16_model();
    return hl_test_finish();
}
