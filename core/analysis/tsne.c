/* Exact t-SNE (see tsne.h for the definition, which follows scikit-learn's exact method). */
#include "core/analysis/tsne.h"

#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/rng.h"

#define TSNE_EXPLORATION_ITERS 250
#define TSNE_CHECK_EVERY 50
#define TSNE_NO_PROGRESS 300
#define TSNE_MIN_GRAD_NORM 1e-7
#define TSNE_MIN_GAIN 0.01
#define TSNE_PERPLEXITY_TOL 1e-5
#define TSNE_SEARCH_STEPS 100
/* Below this many multiply-adds a parallel region costs more than it saves. */
#define TSNE_PARALLEL_WORK 4000000

hl_tsne_options hl_tsne_defaults(void) {
    return (hl_tsne_options){.perplexity = 30.0, .n_iter = 1000, .early_exaggeration = 12.0, .learning_rate = 0,
                             .init_pca = 1, .seed = 41};
}

/* 4x4 tile of dot products between rows i..i+3 and k..k+3 of Xb [*, B] over w4 columns
 * (a multiple of 4; the padding is zero). GCC/clang vector extensions: 16 accumulators of
 * 4 doubles, 8 loads per 16 multiply-adds. */
typedef double hl_v4d __attribute__((vector_size(32)));

static inline hl_v4d load4(const double *p) {
    hl_v4d v;
    memcpy(&v, p, sizeof v);
    return v;
}

static void gram_tile(const double *Xb, int64_t B, int64_t w4, int64_t i, int64_t k, double out[4][4]) {
    hl_v4d acc[4][4];
    memset(acc, 0, sizeof acc);
    const double *a = Xb + (size_t)i * B, *b = Xb + (size_t)k * B;
    for (int64_t j = 0; j < w4; j += 4) {
        hl_v4d x0 = load4(a + j), x1 = load4(a + B + j), x2 = load4(a + 2 * B + j), x3 = load4(a + 3 * B + j);
        hl_v4d y0 = load4(b + j), y1 = load4(b + B + j), y2 = load4(b + 2 * B + j), y3 = load4(b + 3 * B + j);
        acc[0][0] += x0 * y0, acc[0][1] += x0 * y1, acc[0][2] += x0 * y2, acc[0][3] += x0 * y3;
        acc[1][0] += x1 * y0, acc[1][1] += x1 * y1, acc[1][2] += x1 * y2, acc[1][3] += x1 * y3;
        acc[2][0] += x2 * y0, acc[2][1] += x2 * y1, acc[2][2] += x2 * y2, acc[2][3] += x2 * y3;
        acc[3][0] += x3 * y0, acc[3][1] += x3 * y1, acc[3][2] += x3 * y2, acc[3][3] += x3 * y3;
    }
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++)
            out[r][c] = acc[r][c][0] + acc[r][c][1] + acc[r][c][2] + acc[r][c][3];
}

hl_status hl_tsne_gram(const float *X, int64_t n, int64_t d, double *G) {
    const int64_t B = 512;                 /* columns per block (a multiple of 4) */
    int64_t n4 = (n + 3) / 4 * 4;          /* rows padded to whole tiles with zeros */
    double *mean = calloc((size_t)(d ? d : 1), sizeof *mean);
    double *Xb = calloc((size_t)n4 * (size_t)B, sizeof *Xb);
    if (!mean || !Xb) {
        free(mean), free(Xb);
        return hl_fail(HL_ERR_NOMEM, "out of memory for the Gram matrix");
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++)
            mean[j] += X[(size_t)i * d + j];
    for (int64_t j = 0; j < d; j++)
        mean[j] /= (double)n;
    memset(G, 0, (size_t)n * (size_t)n * sizeof *G);
    int64_t tiles = n4 / 4;
    for (int64_t j0 = 0; j0 < d; j0 += B) {
        int64_t w = j0 + B < d ? B : d - j0, w4 = (w + 3) / 4 * 4;
        for (int64_t i = 0; i < n; i++) {
            double *row = Xb + (size_t)i * B;
            for (int64_t j = 0; j < w; j++)
                row[j] = (double)X[(size_t)i * d + j0 + j] - mean[j0 + j];
            for (int64_t j = w; j < w4; j++)
                row[j] = 0;
        }
#pragma omp parallel for schedule(dynamic, 1) if (n * n * w > TSNE_PARALLEL_WORK)
        for (int64_t ti = 0; ti < tiles; ti++) {
            for (int64_t tk = 0; tk <= ti; tk++) {
                double t[4][4];
                gram_tile(Xb, B, w4, ti * 4, tk * 4, t);
                for (int r = 0; r < 4; r++)
                    for (int c = 0; c < 4; c++) {
                        int64_t i = ti * 4 + r, k = tk * 4 + c;
                        if (i < n && k <= i)
                            G[(size_t)i * n + k] += t[r][c];
                    }
            }
        }
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < i; k++)
            G[(size_t)k * n + i] = G[(size_t)i * n + k];
    free(mean), free(Xb);
    return HL_OK;
}

/* Eigen-decomposition of a small symmetric matrix by cyclic Jacobi: A [m, m] is destroyed,
 * V [m, m] gets the eigenvectors as columns, w[m] the eigenvalues (unsorted). */
static void jacobi_eigen(double *A, int m, double *V, double *w) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++)
            V[i * m + j] = i == j;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0;
        for (int p = 0; p < m; p++)
            for (int q = p + 1; q < m; q++)
                off += A[p * m + q] * A[p * m + q];
        if (off < 1e-30)
            break;
        for (int p = 0; p < m; p++)
            for (int q = p + 1; q < m; q++) {
                double apq = A[p * m + q];
                if (fabs(apq) < 1e-300)
                    continue;
                double theta = (A[q * m + q] - A[p * m + p]) / (2 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < m; k++) {
                    double akp = A[k * m + p], akq = A[k * m + q];
                    A[k * m + p] = c * akp - s * akq;
                    A[k * m + q] = s * akp + c * akq;
                }
                for (int k = 0; k < m; k++) {
                    double apk = A[p * m + k], aqk = A[q * m + k];
                    A[p * m + k] = c * apk - s * aqk;
                    A[q * m + k] = s * apk + c * aqk;
                }
                for (int k = 0; k < m; k++) {
                    double vkp = V[k * m + p], vkq = V[k * m + q];
                    V[k * m + p] = c * vkp - s * vkq;
                    V[k * m + q] = s * vkp + c * vkq;
                }
            }
    }
    for (int i = 0; i < m; i++)
        w[i] = A[i * m + i];
}

/* Orthonormalise the columns of V [n, b] (modified Gram-Schmidt, twice for stability). */
static void orthonormalise(double *V, int64_t n, int b) {
    for (int pass = 0; pass < 2; pass++)
        for (int c = 0; c < b; c++) {
            for (int e = 0; e < c; e++) {
                double dot = 0;
                for (int64_t i = 0; i < n; i++)
                    dot += V[(size_t)i * b + c] * V[(size_t)i * b + e];
                for (int64_t i = 0; i < n; i++)
                    V[(size_t)i * b + c] -= dot * V[(size_t)i * b + e];
            }
            double nn = 0;
            for (int64_t i = 0; i < n; i++)
                nn += V[(size_t)i * b + c] * V[(size_t)i * b + c];
            nn = sqrt(nn);
            for (int64_t i = 0; i < n; i++)
                V[(size_t)i * b + c] = nn > 0 ? V[(size_t)i * b + c] / nn : 0;
        }
}

/* Top-2 principal component scores from the centred Gram matrix: subspace iteration with
 * a few extra vectors and Rayleigh-Ritz. Y[i, c] = u_c[i] * sqrt(lambda_c); signs follow
 * scikit-learn's svd_flip (largest |u| entry of each component positive). */
hl_status hl_tsne_pca2(const double *G, int64_t n, uint64_t seed, double *Y) {
    int b = n < 10 ? (int)n : 10;
    double *V = malloc((size_t)n * b * sizeof *V), *W = malloc((size_t)n * b * sizeof *W);
    double *R = malloc((size_t)n * b * sizeof *R);
    double *H = malloc((size_t)b * b * sizeof *H), *E = malloc((size_t)b * b * sizeof *E);
    double *ev = malloc((size_t)b * sizeof *ev);
    if (!V || !W || !R || !H || !E || !ev) {
        free(V), free(W), free(R), free(H), free(E), free(ev);
        return hl_fail(HL_ERR_NOMEM, "out of memory for PCA");
    }
    hl_rng rng;
    hl_rng_seed(&rng, seed ^ 0x5ca1ab1eULL, HL_RNG_STREAM_USER);
    for (int64_t i = 0; i < (int64_t)n * b; i++)
        V[i] = hl_rng_uniform_double(&rng) - 0.5;
    orthonormalise(V, n, b);
    double prev[2] = {0, 0};
    int top[2] = {0, b > 1 ? 1 : 0};
    /* Subspace iteration, one product with G per step: W = G V; Ritz pairs of span(V) from
     * H = V^T W; next V = orth(W). Stops when the top two Ritz values settle. */
    for (int it = 0; it < 100; it++) {
#pragma omp parallel for schedule(static) if (n * n * b > TSNE_PARALLEL_WORK)
        for (int64_t i = 0; i < n; i++) {
            double acc[10] = {0};
            const double *gi = G + (size_t)i * n;
            for (int64_t k = 0; k < n; k++)
                for (int c = 0; c < b; c++)
                    acc[c] += gi[k] * V[(size_t)k * b + c];
            for (int c = 0; c < b; c++)
                W[(size_t)i * b + c] = acc[c];
        }
        for (int p = 0; p < b; p++)
            for (int q = 0; q < b; q++) {
                double sum = 0;
                for (int64_t i = 0; i < n; i++)
                    sum += V[(size_t)i * b + p] * W[(size_t)i * b + q];
                H[p * b + q] = sum;
            }
        for (int p = 0; p < b; p++) /* symmetrise rounding */
            for (int q = p + 1; q < b; q++)
                H[p * b + q] = H[q * b + p] = 0.5 * (H[p * b + q] + H[q * b + p]);
        jacobi_eigen(H, b, E, ev);
        /* R = V E: the Ritz vectors */
        for (int64_t i = 0; i < n; i++)
            for (int c = 0; c < b; c++) {
                double sum = 0;
                for (int e = 0; e < b; e++)
                    sum += V[(size_t)i * b + e] * E[e * b + c];
                R[(size_t)i * b + c] = sum;
            }
        top[0] = 0;
        for (int c = 1; c < b; c++)
            if (ev[c] > ev[top[0]])
                top[0] = c;
        top[1] = top[0] == 0 && b > 1 ? 1 : 0;
        for (int c = 0; c < b; c++)
            if (c != top[0] && ev[c] > ev[top[1]])
                top[1] = c;
        double l0 = ev[top[0]], l1 = ev[top[1]];
        if (it > 2 && fabs(l0 - prev[0]) <= 1e-12 * fabs(l0) && fabs(l1 - prev[1]) <= 1e-12 * fabs(l0) + 1e-300)
            break;
        prev[0] = l0, prev[1] = l1;
        memcpy(V, W, (size_t)n * b * sizeof *V);
        orthonormalise(V, n, b);
    }
    for (int c = 0; c < 2; c++) {
        int col = top[c < b ? c : 0];
        double lam = ev[col] > 0 ? ev[col] : 0;
        int64_t imax = 0;
        for (int64_t i = 1; i < n; i++)
            if (fabs(R[(size_t)i * b + col]) > fabs(R[(size_t)imax * b + col]))
                imax = i;
        double sign = R[(size_t)imax * b + col] < 0 ? -1.0 : 1.0;
        for (int64_t i = 0; i < n; i++)
            Y[i * 2 + c] = (b > c) ? sign * R[(size_t)i * b + col] * sqrt(lam) : 0;
    }
    free(V), free(W), free(R), free(H), free(E), free(ev);
    return HL_OK;
}

/* Row i of the conditional P with entropy ln(perplexity), by binary search on the precision. */
static void conditional_row(const double *D2, int64_t n, int64_t i, double desired_entropy, double *P) {
    double beta_min = -INFINITY, beta_max = INFINITY, beta = 1.0;
    const double *d = D2 + (size_t)i * n;
    double *p = P + (size_t)i * n;
    for (int step = 0; step < TSNE_SEARCH_STEPS; step++) {
        double sum = 0;
        for (int64_t j = 0; j < n; j++) {
            p[j] = j == i ? 0.0 : exp(-d[j] * beta);
            sum += p[j];
        }
        if (sum == 0.0)
            sum = 1e-8;
        double sum_dp = 0;
        for (int64_t j = 0; j < n; j++) {
            p[j] /= sum;
            sum_dp += d[j] * p[j];
        }
        double entropy = log(sum) + beta * sum_dp;
        double diff = entropy - desired_entropy;
        if (fabs(diff) <= TSNE_PERPLEXITY_TOL)
            break;
        if (diff > 0) {
            beta_min = beta;
            beta = beta_max == INFINITY ? beta * 2.0 : (beta + beta_max) / 2.0;
        } else {
            beta_max = beta;
            beta = beta_min == -INFINITY ? beta / 2.0 : (beta + beta_min) / 2.0;
        }
    }
}

/* One KL gradient evaluation: grad[n, 2]; returns KL when want_error (else NaN). */
static double kl_gradient(const double *P, double exaggeration, const double *Y, int64_t n, double *grad,
                          int want_error) {
    double sum_num = 0;
#pragma omp parallel for schedule(static) reduction(+ : sum_num) if (n * n > TSNE_PARALLEL_WORK / 8)
    for (int64_t i = 0; i < n; i++) {
        double yi0 = Y[2 * i], yi1 = Y[2 * i + 1], s = 0;
        for (int64_t j = 0; j < n; j++) {
            if (j == i)
                continue;
            double a = yi0 - Y[2 * j], b = yi1 - Y[2 * j + 1];
            s += 1.0 / (1.0 + a * a + b * b);
        }
        sum_num += s;
    }
    double inv_sum = 1.0 / sum_num;
    double kl = 0;
#pragma omp parallel for schedule(static) reduction(+ : kl) if (n * n > TSNE_PARALLEL_WORK / 16)
    for (int64_t i = 0; i < n; i++) {
        double yi0 = Y[2 * i], yi1 = Y[2 * i + 1], g0 = 0, g1 = 0, e = 0;
        const double *pi = P + (size_t)i * n;
        for (int64_t j = 0; j < n; j++) {
            if (j == i)
                continue;
            double a = yi0 - Y[2 * j], b = yi1 - Y[2 * j + 1];
            double num = 1.0 / (1.0 + a * a + b * b);
            double q = num * inv_sum;
            if (q < DBL_EPSILON)
                q = DBL_EPSILON;
            double p = pi[j] * exaggeration;
            double m = (p - q) * num;
            g0 += m * a;
            g1 += m * b;
            if (want_error)
                e += p * log((p > DBL_EPSILON ? p : DBL_EPSILON) / q);
        }
        grad[2 * i] = 4.0 * g0;
        grad[2 * i + 1] = 4.0 * g1;
        kl += e;
    }
    return want_error ? kl : NAN;
}

/* scikit-learn's _gradient_descent: iterations [it0, n_iter). Returns the last iteration index. */
static hl_status descend(const double *P, double exaggeration, double *Y, int64_t n, int it0, int n_iter,
                         double momentum, double lr, int no_progress, double *update, double *gains, double *grad,
                         int *last_it, double *kl_out, hl_cluster_progress_fn progress, void *user, int total_iter) {
    for (int64_t i = 0; i < 2 * n; i++)
        update[i] = 0, gains[i] = 1;
    double best_error = DBL_MAX, error = DBL_MAX;
    int best_iter = it0, i = it0;
    *last_it = it0;
    for (i = it0; i < n_iter; i++) {
        int check = (i + 1) % TSNE_CHECK_EVERY == 0;
        double e = kl_gradient(P, exaggeration, Y, n, grad, check || i == n_iter - 1);
        if (check || i == n_iter - 1)
            error = e;
        for (int64_t k = 0; k < 2 * n; k++) {
            if (update[k] * grad[k] < 0.0)
                gains[k] += 0.2;
            else
                gains[k] *= 0.8;
            if (gains[k] < TSNE_MIN_GAIN)
                gains[k] = TSNE_MIN_GAIN;
            grad[k] *= gains[k];
            update[k] = momentum * update[k] - lr * grad[k];
            Y[k] += update[k];
        }
        *last_it = i;
        if (check) {
            double gn = 0;
            for (int64_t k = 0; k < 2 * n; k++)
                gn += grad[k] * grad[k];
            gn = sqrt(gn);
            if (!isfinite(error) || !isfinite(gn))
                return hl_fail(HL_ERR_NUMERIC, "t-SNE diverged at iteration %d (KL %g)", i + 1, error);
            if (progress && progress(user, "tsne", (double)(i + 1), (double)total_iter))
                return hl_fail(HL_ERR_CANCELLED, "t-SNE cancelled");
            if (error < best_error) {
                best_error = error;
                best_iter = i;
            } else if (i - best_iter > no_progress) {
                break;
            }
            if (gn <= TSNE_MIN_GRAD_NORM)
                break;
        }
    }
    *kl_out = error;
    return HL_OK;
}

hl_status hl_tsne_run_gram(const double *G, int64_t n, const hl_tsne_options *opt_in, float *Yout, hl_tsne_info *info,
                           hl_cluster_progress_fn progress, void *user) {
    hl_tsne_options opt = opt_in ? *opt_in : hl_tsne_defaults();
    if (n < 3)
        return hl_fail(HL_ERR_ARG, "t-SNE needs at least 3 points (have %lld)", (long long)n);
    if (n > 20000)
        return hl_fail(HL_ERR_RANGE, "exact t-SNE of %lld points would need %.1f GB; use fewer points",
                       (long long)n, 2.0 * (double)n * (double)n * 8 / 1e9);
    if (opt.n_iter < TSNE_EXPLORATION_ITERS)
        opt.n_iter = TSNE_EXPLORATION_ITERS;
    if (!(opt.perplexity > 0))
        opt.perplexity = 30;
    if (opt.perplexity > (double)(n - 1) / 3.0)
        opt.perplexity = (double)(n - 1) / 3.0; /* each point needs ~3 * perplexity neighbours */
    if (opt.perplexity < 1)
        opt.perplexity = 1;
    if (!(opt.early_exaggeration >= 1))
        opt.early_exaggeration = 12;
    double lr = opt.learning_rate > 0 ? opt.learning_rate : fmax((double)n / opt.early_exaggeration / 4.0, 50.0);

    size_t nn = (size_t)n * (size_t)n;
    double *D2 = malloc(nn * sizeof *D2), *P = malloc(nn * sizeof *P);
    double *Y = malloc((size_t)n * 2 * sizeof *Y), *update = malloc((size_t)n * 2 * sizeof *update);
    double *gains = malloc((size_t)n * 2 * sizeof *gains), *grad = malloc((size_t)n * 2 * sizeof *grad);
    hl_status st = HL_OK;
    if (!D2 || !P || !Y || !update || !gains || !grad) {
        st = hl_fail(HL_ERR_NOMEM, "out of memory for t-SNE of %lld points", (long long)n);
        goto done;
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double v = G[(size_t)i * n + i] + G[(size_t)j * n + j] - 2 * G[(size_t)i * n + j];
            D2[(size_t)i * n + j] = i == j || v < 0 ? 0 : v;
        }
    double desired = log(opt.perplexity);
#pragma omp parallel for schedule(dynamic, 8) if (n > 64)
    for (int64_t i = 0; i < n; i++)
        conditional_row(D2, n, i, desired, P);
    /* symmetrise and normalise; D2 is no longer needed */
    double total = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) {
            double v = P[(size_t)i * n + j] + P[(size_t)j * n + i];
            P[(size_t)i * n + j] = P[(size_t)j * n + i] = v;
            total += 2 * v;
        }
    if (total < DBL_EPSILON)
        total = DBL_EPSILON;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double v = i == j ? 0 : P[(size_t)i * n + j] / total;
            P[(size_t)i * n + j] = i == j ? 0 : (v > DBL_EPSILON ? v : DBL_EPSILON);
        }
    free(D2);
    D2 = NULL;

    if (opt.init_pca) {
        st = hl_tsne_pca2(G, n, opt.seed, Y);
        if (st != HL_OK)
            goto done;
        double m = 0, v = 0;
        for (int64_t i = 0; i < n; i++)
            m += Y[2 * i];
        m /= (double)n;
        for (int64_t i = 0; i < n; i++)
            v += (Y[2 * i] - m) * (Y[2 * i] - m);
        double sd = sqrt(v / (double)n);
        double scale = sd > 0 ? 1e-4 / sd : 1.0;
        for (int64_t i = 0; i < 2 * n; i++)
            Y[i] = (double)(float)(Y[i] * scale); /* scikit-learn keeps the embedding in float32 */
    } else {
        hl_rng rng;
        hl_rng_seed(&rng, opt.seed, HL_RNG_STREAM_USER);
        for (int64_t i = 0; i < 2 * n; i++) {
            double u1 = 1.0 - hl_rng_uniform_double(&rng), u2 = hl_rng_uniform_double(&rng);
            Y[i] = 1e-4 * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
        }
    }
    int it = 0;
    double kl = 0;
    st = descend(P, opt.early_exaggeration, Y, n, 0, TSNE_EXPLORATION_ITERS, 0.5, lr, TSNE_EXPLORATION_ITERS, update,
                 gains, grad, &it, &kl, progress, user, opt.n_iter);
    if (st != HL_OK)
        goto done;
    if (it < TSNE_EXPLORATION_ITERS || opt.n_iter > TSNE_EXPLORATION_ITERS) {
        st = descend(P, 1.0, Y, n, it + 1, opt.n_iter, 0.8, lr, TSNE_NO_PROGRESS, update, gains, grad, &it, &kl,
                     progress, user, opt.n_iter);
        if (st != HL_OK)
            goto done;
    }
    for (int64_t i = 0; i < 2 * n; i++)
        Yout[i] = (float)Y[i];
    if (info) {
        info->kl = kl;
        info->iterations = it + 1;
        info->perplexity = opt.perplexity;
    }
done:
    free(D2), free(P), free(Y), free(update), free(gains), free(grad);
    return st;
}

hl_status hl_tsne_run(const float *X, int64_t n, int64_t d, const hl_tsne_options *opt, float *Y, hl_tsne_info *info,
                      hl_cluster_progress_fn progress, void *user) {
    if (n < 3)
        return hl_fail(HL_ERR_ARG, "t-SNE needs at least 3 points (have %lld)", (long long)n);
    if (n > 20000)
        return hl_fail(HL_ERR_RANGE, "exact t-SNE of %lld points is too large", (long long)n);
    double *G = malloc((size_t)n * (size_t)n * sizeof *G);
    if (!G)
        return hl_fail(HL_ERR_NOMEM, "out of memory for the Gram matrix of %lld points", (long long)n);
    hl_status st = hl_tsne_gram(X, n, d, G);
    if (st == HL_OK)
        st = hl_tsne_run_gram(G, n, opt, Y, info, progress, user);
    free(G);
    return st;
}
