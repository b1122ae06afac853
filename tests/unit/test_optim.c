/* AdamW, the schedule, clipping and the PRNG against closed forms written out here in
 * double precision from the PyTorch / transformers documentation (the PyTorch oracle in
 * tests/oracle/test_engine_oracle.py checks 10 whole training steps as well). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/adapter/adapter.h"
#include "core/backend/cpu/cpu_adamw.h" /* the CPU backend's AdamW kernel, tested against torch's rules */
#include "core/backend/cpu/gemm.h"
#include "core/adapter/optim.h"
#include "core/base/rng.h"
#include "hl_test.h"

static void test_schedule(void) {
    hl_optim_config c = hl_optim_defaults();
    c.lr = 2.0f;
    c.warmup_steps = 4;
    c.total_steps = 12;
    CHECK_CLOSE(hl_lr_at(&c, 0), 0.0, 1e-7, "warmup starts at 0 (transformers LambdaLR)");
    CHECK_CLOSE(hl_lr_at(&c, 2), 1.0, 1e-7, "half way through warmup");
    CHECK_CLOSE(hl_lr_at(&c, 4), 2.0, 1e-7, "peak after warmup");
    CHECK_CLOSE(hl_lr_at(&c, 6), 2.0 * 0.5 * (1 + cos(M_PI * 2.0 / 8.0)), 1e-6, "cosine quarter");
    CHECK_CLOSE(hl_lr_at(&c, 8), 1.0, 1e-6, "cosine half way");
    CHECK_CLOSE(hl_lr_at(&c, 12), 0.0, 1e-7, "cosine reaches 0");
    CHECK_CLOSE(hl_lr_at(&c, 20), 0.0, 1e-7, "stays 0 after the end");
    c.warmup_steps = 0;
    CHECK_CLOSE(hl_lr_at(&c, 0), 2.0, 1e-7, "no warmup: full lr at step 0");
    hl_optim_config d = hl_optim_defaults();
    CHECK(d.beta1 == 0.9f && d.beta2 == 0.999f && d.eps == 1e-8f && d.weight_decay == 0.0f && d.clip_norm == 1.0f &&
              fabsf(d.lr - 2e-4f) < 1e-9f,
          "reference defaults (docs/method.md §4)");
}

static void test_adamw(void) {
    enum { N = 5 };
    const float g1[N] = {0.3f, -0.02f, 0.0f, 1.5f, -2.0f}, g2[N] = {-0.1f, 0.05f, 0.2f, 1.0f, -0.5f};
    float p[N] = {1.0f, -1.0f, 0.5f, 0.0f, 2.0f}, m[N] = {0}, v[N] = {0}, g[N];
    double p0[N];
    for (int i = 0; i < N; i++)
        p0[i] = p[i];
    hl_optim_config c = hl_optim_defaults();
    c.weight_decay = 0.1f;
    c.clip_norm = 0.0f;
    const double lr = 0.01, b1 = c.beta1, b2 = c.beta2, eps = c.eps, wd = c.weight_decay;
    memcpy(g, g1, sizeof g);
    double norm;
    CHECK(hl_adamw_step(p, g, m, v, N, 1, (float)lr, &c, &norm) == HL_OK, "step 1");
    double expect_norm = 0;
    for (int i = 0; i < N; i++)
        expect_norm += (double)g1[i] * g1[i];
    CHECK_CLOSE(norm, sqrt(expect_norm), 1e-9, "gradient norm");
    double p1[N];
    for (int i = 0; i < N; i++) { /* first step: m̂ = g, v̂ = g² → update lr·g/(|g| + eps) */
        p1[i] = p0[i] * (1 - lr * wd) - lr * g1[i] / (fabs(g1[i]) + eps);
        CHECK_CLOSE(p[i], p1[i], 1e-6, "AdamW step 1");
    }
    memcpy(g, g2, sizeof g);
    hl_adamw_step(p, g, m, v, N, 2, (float)lr, &c, NULL);
    for (int i = 0; i < N; i++) {
        double mm = b1 * (1 - b1) * g1[i] + (1 - b1) * g2[i];
        double vv = b2 * (1 - b2) * g1[i] * g1[i] + (1 - b2) * g2[i] * g2[i];
        double e = p1[i] * (1 - lr * wd) - lr / (1 - b1 * b1) * mm / (sqrt(vv) / sqrt(1 - b2 * b2) + eps);
        CHECK_CLOSE(p[i], e, 1e-6, "AdamW step 2 (bias corrections)");
    }
    /* clipping: norm 5 clipped to 1 → grads scaled by 1/(5 + 1e-6) before the moments */
    float q[2] = {0, 0}, gq[2] = {3.0f, 4.0f}, mq[2] = {0}, vq[2] = {0};
    c.clip_norm = 1.0f;
    hl_adamw_step(q, gq, mq, vq, 2, 1, 0.1f, &c, &norm);
    CHECK_CLOSE(norm, 5.0, 1e-7, "pre-clip norm returned");
    CHECK_CLOSE(gq[0], 3.0 / (5.0 + 1e-6), 1e-7, "clipped gradient (torch clip_grad_norm_)");
    CHECK_CLOSE(mq[1], 0.1 * 4.0 / (5.0 + 1e-6), 1e-7, "moment from the clipped gradient");
    float gs[2] = {0.3f, 0.4f};
    hl_adamw_step(q, gs, mq, vq, 2, 2, 0.1f, &c, &norm);
    CHECK(gs[0] == 0.3f && gs[1] == 0.4f, "no clipping below the threshold");
    /* non-finite gradients are refused and the parameters stay */
    float r[2] = {1, 2}, gr[2] = {NAN, 1}, mr[2] = {0}, vr[2] = {0};
    CHECK(hl_adamw_step(r, gr, mr, vr, 2, 1, 0.1f, &c, NULL) == HL_ERR_NUMERIC && r[0] == 1 && r[1] == 2,
          "NaN gradient: HL_ERR_NUMERIC, parameters untouched");
    /* the norm does not depend on the thread count */
    size_t n = 1 << 20;
    float *big = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        big[i] = sinf((float)i) * 1e-3f;
    hl_set_threads(1);
    double a = hl_grad_norm(big, n);
    hl_set_threads(2);
    double b = hl_grad_norm(big, n);
    CHECK(a == b, "grad norm bit-identical for 1 and 2 threads");
    free(big);
}

static void test_rng(void) {
    hl_rng a, b, c;
    hl_rng_seed(&a, 41, HL_RNG_STREAM_INIT);
    hl_rng_seed(&b, 41, HL_RNG_STREAM_INIT);
    hl_rng_seed(&c, 41, HL_RNG_STREAM_DATA);
    int same = 1, diff = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = hl_rng_next(&a), y = hl_rng_next(&b), z = hl_rng_next(&c);
        same &= x == y;
        diff += x != z;
    }
    CHECK(same, "same seed and stream: same sequence");
    CHECK(diff == 100, "streams are independent");
    hl_rng saved = a; /* the state is plain bytes */
    uint64_t x1 = hl_rng_next(&a), x2 = hl_rng_next(&a);
    CHECK(hl_rng_next(&saved) == x1 && hl_rng_next(&saved) == x2, "a saved state continues identically");
    double sum = 0;
    int in_range = 1;
    for (int i = 0; i < 100000; i++) {
        float u = hl_rng_uniform(&a);
        in_range &= u >= 0.0f && u < 1.0f;
        sum += u;
        in_range &= hl_rng_below(&a, 7) < 7;
    }
    CHECK(in_range, "uniform in [0, 1), below(n) < n");
    CHECK(fabs(sum / 100000 - 0.5) < 0.005, "uniform mean %g", sum / 100000);
    int perm[50], seen[50] = {0}, moved = 0;
    for (int i = 0; i < 50; i++)
        perm[i] = i;
    hl_rng_shuffle_int(&a, perm, 50);
    for (int i = 0; i < 50; i++)
        seen[perm[i]]++, moved += perm[i] != i;
    int ok = 1;
    for (int i = 0; i < 50; i++)
        ok &= seen[i] == 1;
    CHECK(ok && moved > 30, "shuffle is a permutation that moves things");
    /* counter hash: deterministic, roughly uniform */
    double hs = 0;
    for (uint64_t i = 0; i < 100000; i++)
        hs += hl_rng_hash_uniform(12345, i);
    CHECK(fabs(hs / 100000 - 0.5) < 0.005 && hl_rng_hash(1, 2) == hl_rng_hash(1, 2) && hl_rng_hash(1, 2) != hl_rng_hash(1, 3),
          "hash uniform and deterministic");
}

static void test_adapter_init(void) {
    hl_llama_config mc = {.dim = 64, .hidden_dim = 96, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .head_dim = 16,
                          .vocab_size = 10, .max_seq_len = 16};
    hl_adapter_config ac = {.variant = HL_VARIANT_HYDRA, .targets = HL_TARGETS_DEFAULT | HL_TARGET_Q, .r = 8,
                            .n_heads = 3, .alpha = 16, .dropout = 0.05f};
    hl_adapters a, b, c;
    CHECK(hl_adapters_create(&a, &mc, &ac, 41) == HL_OK && hl_adapters_create(&b, &mc, &ac, 41) == HL_OK &&
              hl_adapters_create(&c, &mc, &ac, 42) == HL_OK,
          "create");
    CHECK(a.n_params == hl_adapter_param_count(&mc, &ac), "param count");
    /* per layer: q (64→64), gate/up (64→96), down (96→64): A r·d_in, B N·d_out·r, router N·d_in */
    size_t per = (8 * 64 + 3 * 64 * 8 + 3 * 64) + 2 * (8 * 64 + 3 * 96 * 8 + 3 * 64) + (8 * 96 + 3 * 64 * 8 + 3 * 96);
    CHECK(a.n_params == 2 * per, "param count %zu vs %zu", a.n_params, 2 * per);
    CHECK(!memcmp(a.params, b.params, a.n_params * 4) && memcmp(a.params, c.params, a.n_params * 4),
          "same seed, same init; other seed, other init");
    int ok = 1;
    double sumA = 0, cntA = 0;
    for (int i = 0; i < a.n_views; i++) {
        const hl_param_view *v = &a.views[i];
        const float *x = a.params + v->offset;
        double bound = 1.0 / sqrt((double)v->cols);
        for (int64_t j = 0; j < v->rows * v->cols; j++) {
            if (v->kind == 1)
                ok &= x[j] == 0.0f;
            else
                ok &= fabs(x[j]) <= bound, sumA += fabs(x[j]) / bound, cntA++;
        }
        ok &= v->offset + (size_t)(v->rows * v->cols) <= a.n_params;
    }
    CHECK(ok, "A and router within ±1/sqrt(d_in), B zero");
    CHECK(fabs(sumA / cntA - 0.5) < 0.02, "A/router |x|/bound averages 1/2 (uniform): %g", sumA / cntA);
    /* views tile the slab exactly, in order */
    size_t off = 0;
    for (int i = 0; i < a.n_views; i++) {
        ok &= a.views[i].offset == off;
        off += (size_t)(a.views[i].rows * a.views[i].cols);
    }
    CHECK(ok && off == a.n_params, "views tile the slab");
    float bad[3] = {0};
    CHECK(hl_adapters_set_tensor(&a, "nope", bad, 1, 3) == HL_ERR_NOT_FOUND, "unknown key refused");
    CHECK(hl_adapters_set_tensor(&a, a.views[0].name, bad, 1, 3) == HL_ERR_SHAPE, "wrong shape refused");
    hl_adapter_config badc = ac;
    badc.dropout = 1.0f;
    CHECK(hl_adapter_config_check(&badc) == HL_ERR_ARG, "dropout 1 refused");
    badc = ac;
    badc.targets = 0;
    CHECK(hl_adapter_config_check(&badc) == HL_ERR_ARG, "no targets refused");
    CHECK(hl_target_from_name("down_proj") == 6 && hl_target_from_name("q") == 0 && hl_target_from_name("x") == -1,
          "target names");
    hl_adapters_free(&a);
    hl_adapters_free(&b);
    hl_adapters_free(&c);
}

int main(void) {
    test_schedule();
    test_adamw();
    test_rng();
    test_adapter_init();
    return hl_test_finish();
}
