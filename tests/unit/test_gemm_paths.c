/* Frozen-weight products on every path this build and CPU have, against a plain double
 * reference computed here:
 *   f32 path (fused kernel up to HL_GEMM_FUSED_ROWS rows, OpenBLAS tiles above): within f32
 *     rounding of the exact product;
 *   bf16 paths (oneDNN where the CPU has bf16, the fused AVX512-BF16 dot, and the reference path
 *     that any CPU runs): within f32 rounding of the product of the bf16-ROUNDED inputs (so the
 *     test knows exactly what they compute), and within bf16 rounding of the exact product.
 * Error bound per element: tol · Σ_k |x_k w_k| (the scale of the rounding errors of a sum).
 * Also: rows alone equal rows in a batch on the fused kernels, results repeat bit for bit, the
 * oneDNN matmul wrapper's strides / transposes / beta on f32 data (any CPU with oneDNN), small
 * workspaces, the `auto` rule and the names. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/convert.h"
#include "core/backend/cpu/gemm.h"
#include "core/backend/cpu/gemm_internal.h"
#include "core/base/rng.h"
#include "hl_test.h"

static hl_rng rng;
static float frand(void) { return 2.0f * hl_rng_uniform(&rng) - 1.0f; }

static float bf16_round(float f) { return hl_bf16_to_f32(hl_f32_to_bf16(f)); }

static float wval(const hl_weight *W, int64_t i) {
    if (W->dtype == HL_DTYPE_F32)
        return ((const float *)W->data)[i];
    uint16_t h = ((const uint16_t *)W->data)[i];
    return W->dtype == HL_DTYPE_BF16 ? hl_bf16_to_f32(h) : hl_f16_to_f32(h);
}

/* Worst |c - ref| / (Σ|x w| + tiny) over a product; `rounded`: the reference uses bf16-rounded
 * inputs. dx: C[M, K] += A[M, N] · W (beta 1), else C[M, N] = beta·C0 + A[M, K] · Wᵀ. */
static double worst_error(int dx, const float *C, int64_t ldc, const float *C0, const float *A, int64_t lda,
                          const hl_weight *W, int64_t M, float beta, int rounded) {
    const int64_t N = W->rows, K = W->cols;
    const int64_t cols = dx ? K : N, red = dx ? N : K;
    double worst = 0;
    for (int64_t m = 0; m < M; m++)
        for (int64_t c = 0; c < cols; c++) {
            double s = 0, mag = 0;
            for (int64_t r = 0; r < red; r++) {
                float a = A[m * lda + r], w = dx ? wval(W, r * K + c) : wval(W, c * K + r);
                if (rounded)
                    a = bf16_round(a), w = bf16_round(w);
                s += (double)a * w;
                mag += fabs((double)a * w);
            }
            double c0 = C0[m * ldc + c];
            double ref = dx ? c0 + s : (beta == 0.0f ? s : beta * c0 + s);
            double e = fabs(C[m * ldc + c] - ref) / (mag + fabs(c0) + 1e-30);
            worst = e > worst ? e : worst;
        }
    return worst;
}

typedef struct {
    const char *name;
    hl_compute compute;
    int bf16;               /* expected arithmetic: bf16 inputs */
    hl_gemm_path path;      /* what bf16 mode is set to run */
    hl_gemm_kernel kernel;  /* forced kernel family */
    int slices;             /* hl_gemm_set_dnnl_slices: -1 automatic, 0 oneDNN splits, 1 our column slices */
} path_case;

static hl_weight make_weight(hl_dtype dt, int64_t N, int64_t K, void **buf) {
    size_t n = (size_t)(N * K);
    *buf = malloc(n * hl_dtype_size(dt));
    for (size_t i = 0; i < n; i++) {
        float f = frand() / sqrtf((float)K);
        if (dt == HL_DTYPE_F32)
            ((float *)*buf)[i] = f;
        else if (dt == HL_DTYPE_F16)
            ((uint16_t *)*buf)[i] = hl_f32_to_f16(f);
        else
            ((uint16_t *)*buf)[i] = hl_f32_to_bf16(f);
    }
    hl_weight w = {dt, *buf, N, K};
    return w;
}

/* One path on one weight: xwt with beta 0 and 1 (padded row strides) and dx, several row counts. */
static void check_path(const path_case *pc, hl_dtype dt, int64_t N, int64_t K) {
    void *wb;
    hl_weight W = make_weight(dt, N, K, &wb);
    static const int64_t ms[] = {1, 2, 3, 17, 40, HL_GEMM_FUSED_ROWS, HL_GEMM_FUSED_ROWS + 3, 530};
    const int64_t Mmax = 530, ldx = K + 5, ldy = N + 3;
    float *X = malloc(sizeof(float) * Mmax * ldx), *Y = malloc(sizeof(float) * Mmax * ldy);
    float *Y0 = malloc(sizeof(float) * Mmax * ldy), *G = malloc(sizeof(float) * Mmax * N);
    float *D = malloc(sizeof(float) * Mmax * K), *D0 = malloc(sizeof(float) * Mmax * K);
    for (int64_t i = 0; i < Mmax * ldx; i++)
        X[i] = frand();
    for (int64_t i = 0; i < Mmax * N; i++)
        G[i] = frand();
    for (int64_t i = 0; i < Mmax * ldy; i++)
        Y0[i] = frand();
    for (int64_t i = 0; i < Mmax * K; i++)
        D0[i] = frand();
    hl_gemm_ws ws = {malloc(hl_gemm_ws_floats(K > N ? K : N) * sizeof(float)),
                     (int64_t)hl_gemm_ws_floats(K > N ? K : N), pc->compute};
    /* exact arithmetic of the path: f32 rounding of its own inputs */
    const double tol_own = 1e-5, tol_bf16 = 8e-3; /* f32 sums of K terms; 2^-9 per bf16 input, two inputs */
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        int64_t M = ms[i];
        for (int b = 0; b < 2; b++) {
            float beta = b ? 1.0f : 0.0f;
            memcpy(Y, Y0, sizeof(float) * M * ldy);
            hl_gemm_xwt_ld(Y, ldy, X, ldx, &W, M, beta, &ws);
            double e_own = worst_error(0, Y, ldy, Y0, X, ldx, &W, M, beta, pc->bf16);
            double e_f32 = worst_error(0, Y, ldy, Y0, X, ldx, &W, M, beta, 0);
            CHECK(e_own <= tol_own, "%s %s %lldx%lld M=%lld beta=%g: x·Wᵀ error %.3g vs its own arithmetic",
                  pc->name, hl_dtype_name(dt), (long long)N, (long long)K, (long long)M, beta, e_own);
            CHECK(e_f32 <= (pc->bf16 ? tol_bf16 : tol_own), "%s %s M=%lld: x·Wᵀ error %.3g vs f32", pc->name,
                  hl_dtype_name(dt), (long long)M, e_f32);
        }
        memcpy(D, D0, sizeof(float) * M * K);
        hl_gemm_dx_acc(D, G, &W, M, &ws);
        double e_own = worst_error(1, D, K, D0, G, N, &W, M, 1.0f, pc->bf16);
        double e_f32 = worst_error(1, D, K, D0, G, N, &W, M, 1.0f, 0);
        CHECK(e_own <= tol_own, "%s %s %lldx%lld M=%lld: dY·W error %.3g vs its own arithmetic", pc->name,
              hl_dtype_name(dt), (long long)N, (long long)K, (long long)M, e_own);
        CHECK(e_f32 <= (pc->bf16 ? tol_bf16 : tol_own), "%s %s M=%lld: dY·W error %.3g vs f32", pc->name,
              hl_dtype_name(dt), (long long)M, e_f32);
    }
    /* same bits again, and (fused kernels) a row alone equals the row in the batch */
    int64_t M = 40;
    hl_gemm_xwt_ld(Y, ldy, X, ldx, &W, M, 0.0f, &ws);
    memcpy(Y0, Y, sizeof(float) * M * ldy);
    hl_gemm_xwt_ld(Y, ldy, X, ldx, &W, M, 0.0f, &ws);
    CHECK(!memcmp(Y, Y0, sizeof(float) * M * ldy), "%s %s: repeat gives the same bits", pc->name, hl_dtype_name(dt));
    /* the fused kernels serve 16-bit weights (f32 weights go to OpenBLAS; fused bf16: bf16 weights) */
    if (pc->kernel == HL_GEMM_KERNEL_FUSED && dt != HL_DTYPE_F32 && (!pc->bf16 || dt == HL_DTYPE_BF16)) {
        float *y1 = malloc(sizeof(float) * N);
        int same = 1;
        for (int64_t m = 0; m < M; m += 7) {
            hl_gemm_xwt_ld(y1, N, X + m * ldx, ldx, &W, 1, 0.0f, &ws);
            same &= !memcmp(y1, Y0 + m * ldy, sizeof(float) * N);
        }
        CHECK(same, "%s %s: a row alone has the bits it has in a batch of %lld", pc->name, hl_dtype_name(dt),
              (long long)M);
        free(y1);
    }
    free(X), free(Y), free(Y0), free(G), free(D), free(D0), free(ws.buf), free(wb);
}

/* The oneDNN wrapper itself on f32 data (runs wherever oneDNN is built in): transposed and plain
 * B, padded strides, beta 0 / 1 / 0.5, and one primitive per shape. */
static void check_dnnl_wrapper(void) {
    if (!hl_dnnl_available()) {
        printf("oneDNN not built in: wrapper checks skipped\n");
        return;
    }
    const int64_t M = 37, N = 53, K = 71, lda = 80, ldb = 90, ldc = 60;
    float *A = malloc(sizeof(float) * M * lda), *B = malloc(sizeof(float) * 90 * 90);
    float *C = malloc(sizeof(float) * M * ldc), *C0 = malloc(sizeof(float) * M * ldc);
    for (int64_t i = 0; i < M * lda; i++)
        A[i] = frand();
    for (int64_t i = 0; i < 90 * 90; i++)
        B[i] = frand();
    for (int64_t i = 0; i < M * ldc; i++)
        C0[i] = frand();
    int before = hl_dnnl_cached_primitives();
    for (int rep = 0; rep < 2; rep++)
        for (int tb = 0; tb < 2; tb++)
            for (int bi = 0; bi < 3; bi++) {
                float beta = bi == 0 ? 0.0f : bi == 1 ? 1.0f : 0.5f;
                memcpy(C, C0, sizeof(float) * M * ldc);
                int rc = hl_dnnl_matmul(0, M, N, K, A, lda, B, ldb, tb, beta, C, ldc);
                CHECK(rc == 0, "oneDNN f32 matmul runs (trans_b %d, beta %g)", tb, beta);
                double worst = 0;
                for (int64_t m = 0; m < M; m++)
                    for (int64_t n = 0; n < N; n++) {
                        double s = 0, mag = 0;
                        for (int64_t k = 0; k < K; k++) {
                            double p = (double)A[m * lda + k] * (tb ? B[n * ldb + k] : B[k * ldb + n]);
                            s += p, mag += fabs(p);
                        }
                        double ref = beta * C0[m * ldc + n] + s;
                        worst = fmax(worst, fabs(C[m * ldc + n] - ref) / (mag + fabs(C0[m * ldc + n])));
                    }
                CHECK(worst < 2e-6, "oneDNN f32 matmul trans_b %d beta %g: error %.3g", tb, beta, worst);
                int untouched = 1; /* the padding columns of C are left alone */
                for (int64_t m = 0; m < M; m++)
                    for (int64_t n = N; n < ldc; n++)
                        untouched &= C[m * ldc + n] == C0[m * ldc + n];
                CHECK(untouched, "oneDNN matmul writes only its N columns");
            }
    CHECK(hl_dnnl_cached_primitives() - before == 6, "one primitive per distinct product (%d new)",
          hl_dnnl_cached_primitives() - before);
    CHECK(hl_dnnl_matmul_ready(0, M, N, K, lda, ldb, 1, 0.0f, ldc, 0) == 0, "a cached primitive is ready");
    CHECK(hl_dnnl_matmul(1, M, N, K, A, lda, B, ldb, 1, 0.0f, C, ldc) == (hl_dnnl_bf16_native() ? 0 : -1),
          "bf16 matmul runs exactly when the CPU has native bf16");
    free(A), free(B), free(C), free(C0);
}

/* A workspace too small for one bf16 row falls back to the f32 path (same bits as f32 mode); a
 * small one still computes right, chunk by chunk. */
static void check_small_workspace(const path_case *pc) {
    const int64_t M = 300, N = 200, K = 96;
    void *wb;
    hl_weight W = make_weight(HL_DTYPE_F16, N, K, &wb);
    float *X = malloc(sizeof(float) * M * K), *Y = malloc(sizeof(float) * M * N), *Yf = malloc(sizeof(float) * M * N);
    float *Z = calloc((size_t)(M * N), sizeof(float));
    for (int64_t i = 0; i < M * K; i++)
        X[i] = frand();
    float tiny[16];
    hl_gemm_ws t = {tiny, 16, pc->compute}, f32 = {tiny, 16, HL_COMPUTE_F32};
    hl_gemm_set_kernel(HL_GEMM_KERNEL_AUTO);
    hl_gemm_xwt(Y, X, &W, 8, 0.0f, &t); /* few rows: fused kernel, needs no workspace */
    hl_gemm_xwt(Yf, X, &W, 8, 0.0f, &f32);
    CHECK(!memcmp(Y, Yf, sizeof(float) * 8 * N), "%s: no room for bf16 rows means the f32 path, same bits", pc->name);
    int64_t small = 3 * K; /* a few activation rows and weight rows at a time */
    float *sbuf = malloc(sizeof(float) * (size_t)small);
    hl_gemm_ws s = {sbuf, small, pc->compute};
    hl_gemm_xwt(Y, X, &W, M, 0.0f, &s);
    double e = worst_error(0, Y, N, Z, X, K, &W, M, 0.0f, pc->bf16);
    CHECK(e <= 1e-5, "%s with a %lld-float workspace: error %.3g vs its arithmetic", pc->name, (long long)small, e);
    free(X), free(Y), free(Yf), free(Z), free(sbuf), free(wb);
}

static void check_rules(void) {
    hl_compute c;
    CHECK(hl_compute_parse("bf16", &c) == 0 && c == HL_COMPUTE_BF16, "parse bf16");
    CHECK(hl_compute_parse("f32", &c) == 0 && c == HL_COMPUTE_F32, "parse f32");
    CHECK(hl_compute_parse("auto", &c) == 0 && c == HL_COMPUTE_AUTO, "parse auto");
    CHECK(hl_compute_parse("fp8", &c) == -1 && hl_compute_parse(NULL, &c) == -1, "unknown names are refused");
    CHECK(!strcmp(hl_compute_name(HL_COMPUTE_BF16), "bf16"), "name bf16");
    hl_gemm_set_bf16_path(HL_GEMM_PATH_F32); /* the default choice */
    hl_gemm_path native = hl_gemm_bf16_native() ? HL_GEMM_PATH_DNNL_BF16 : HL_GEMM_PATH_F32;
    CHECK(hl_gemm_path_for(HL_COMPUTE_F32, HL_DTYPE_BF16, 4096, 4096) == HL_GEMM_PATH_F32, "f32 mode is f32");
    CHECK(hl_gemm_path_for(HL_COMPUTE_AUTO, HL_DTYPE_F32, 4096, 4096) == HL_GEMM_PATH_F32, "auto: f32 weights f32");
    CHECK(hl_gemm_path_for(HL_COMPUTE_AUTO, HL_DTYPE_BF16, 64, 172) == HL_GEMM_PATH_F32, "auto: tiny weights f32");
    CHECK(hl_gemm_path_for(HL_COMPUTE_AUTO, HL_DTYPE_F16, 4096, 4096) == native, "auto: large 16-bit weights");
    CHECK(hl_gemm_path_for(HL_COMPUTE_BF16, HL_DTYPE_F32, 8, 8) == native, "bf16 mode: every weight");
    char buf[96];
    hl_gemm_describe(HL_COMPUTE_F32, HL_DTYPE_BF16, buf, sizeof buf);
    CHECK(!strcmp(buf, "OpenBLAS f32"), "f32 mode described as '%s'", buf);
    hl_gemm_describe(HL_COMPUTE_AUTO, HL_DTYPE_BF16, buf, sizeof buf);
    CHECK(strstr(buf, native == HL_GEMM_PATH_F32 ? "OpenBLAS f32 (" : "oneDNN") == buf, "auto on bf16 weights: '%s'",
          buf);
    printf("bf16 weights, auto: %s\n", buf);
    hl_gemm_describe(HL_COMPUTE_AUTO, HL_DTYPE_F32, buf, sizeof buf);
    CHECK(!strcmp(buf, "OpenBLAS f32"), "auto on f32 weights described as '%s'", buf);
    hl_gemm_describe(HL_COMPUTE_BF16, HL_DTYPE_F32, buf, sizeof buf);
    CHECK(strstr(buf, native == HL_GEMM_PATH_F32 ? "OpenBLAS f32 (" : "oneDNN") == buf,
          "bf16 on f32 weights names the fallback and why: '%s'", buf);
    CHECK(hl_gemm_set_bf16_path(HL_GEMM_PATH_DNNL_BF16) == (hl_gemm_bf16_native() ? 0 : -1),
          "oneDNN bf16 can be chosen exactly when the CPU has it");
    hl_gemm_set_bf16_path(HL_GEMM_PATH_F32);
}

int main(void) {
    hl_rng_seed(&rng, 77, HL_RNG_STREAM_USER);
    hl_set_threads(0);
    check_rules();
    check_dnnl_wrapper();
    path_case cases[8];
    int n = 0;
    cases[n++] = (path_case){"f32 fused", HL_COMPUTE_F32, 0, HL_GEMM_PATH_F32, HL_GEMM_KERNEL_FUSED, -1};
    cases[n++] = (path_case){"f32 blocked", HL_COMPUTE_F32, 0, HL_GEMM_PATH_F32, HL_GEMM_KERNEL_BLOCKED, -1};
    cases[n++] = (path_case){"bf16 reference", HL_COMPUTE_BF16, 1, HL_GEMM_PATH_REF_BF16, HL_GEMM_KERNEL_AUTO, -1};
    if (hl_gemm_bf16_native()) {
        /* oneDNN splitting each product over the threads itself, and each thread running a
         * one-thread primitive on its own slice of the output columns (the test's shapes make
         * uneven slices: 200 -> 128 + 72, 77 -> 64 + 13, 133 -> 128 + 5 columns on 2 threads) */
        cases[n++] = (path_case){"oneDNN bf16", HL_COMPUTE_BF16, 1, HL_GEMM_PATH_DNNL_BF16, HL_GEMM_KERNEL_BLOCKED,
                                 0};
        if (hl_get_threads() > 1)
            cases[n++] = (path_case){"oneDNN bf16, column slices per thread", HL_COMPUTE_BF16, 1,
                                     HL_GEMM_PATH_DNNL_BF16, HL_GEMM_KERNEL_BLOCKED, 1};
        else
            printf("one thread: the per-thread column slices of oneDNN products are not run here\n");
        if (hl_gemm_fused_bf16_built())
            cases[n++] = (path_case){"fused bf16 dot", HL_COMPUTE_BF16, 1, HL_GEMM_PATH_DNNL_BF16,
                                     HL_GEMM_KERNEL_FUSED, -1};
        cases[n++] = (path_case){"bf16 auto", HL_COMPUTE_BF16, 1, HL_GEMM_PATH_DNNL_BF16, HL_GEMM_KERNEL_AUTO, -1};
    } else {
        printf("no native bf16 on this CPU: oneDNN bf16 and the fused bf16 dot are not run here\n");
    }
    for (int i = 0; i < n; i++) {
        CHECK(hl_gemm_set_bf16_path(cases[i].path) == 0, "choose %s", cases[i].name);
        hl_gemm_set_kernel(cases[i].kernel);
        hl_gemm_set_dnnl_slices(cases[i].slices);
        const hl_dtype dts[] = {HL_DTYPE_BF16, HL_DTYPE_F16, HL_DTYPE_F32};
        for (int d = 0; d < 3; d++) {
            check_path(&cases[i], dts[d], 200, 96);  /* K a multiple of every lane count */
            check_path(&cases[i], dts[d], 77, 133);  /* odd sizes: tails everywhere */
        }
        check_small_workspace(&cases[i]);
        printf("%s: checked\n", cases[i].name);
    }
    hl_gemm_set_kernel(HL_GEMM_KERNEL_AUTO);
    hl_gemm_set_dnnl_slices(-1);
    hl_gemm_set_bf16_path(HL_GEMM_PATH_F32);
    return hl_test_finish();
}
