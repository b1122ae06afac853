/* k-means on CSR rows: k-means++ seeding, Lloyd iterations with Hamerly bounds, restarts.
 * See kmeans.h for the definitions. Centres are dense doubles; two layouts are kept:
 * C [k, d] for the update and single-centre distances, Ct [d, k] so that one sparse row
 * against all centres is a run of contiguous k-wide updates (nnz(x) * k multiply-adds). */
#include "core/analysis/kmeans.h"

#include "core/base/rng.h"

#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Below this many multiply-adds a parallel region costs more than it saves (thread wake-up,
 * and on a busy machine a preempted thread stalls the barrier). */
#define KM_PARALLEL_WORK 400000

hl_kmeans_options hl_kmeans_defaults(int k, uint64_t seed) {
    return (hl_kmeans_options){.k = k, .n_init = 4, .max_iter = 300, .tol = 1e-4, .seed = seed};
}

void hl_kmeans_result_free(hl_kmeans_result *r) {
    if (!r)
        return;
    free(r->labels);
    free(r->centers);
    free(r->sizes);
    memset(r, 0, sizeof *r);
}

double hl_kmeans_total_sse(const hl_csr *X) {
    if (X->n_rows <= 0)
        return 0;
    double *colsum = calloc((size_t)(X->n_cols ? X->n_cols : 1), sizeof *colsum);
    double ss = 0;
    for (int64_t p = 0; p < X->nnz; p++) {
        ss += (double)X->val[p] * X->val[p];
        if (colsum)
            colsum[X->col[p]] += X->val[p];
    }
    double mean_ss = 0;
    if (colsum) {
        for (int64_t j = 0; j < X->n_cols; j++)
            mean_ss += colsum[j] * colsum[j];
        free(colsum);
    }
    double r = ss - mean_ss / (double)X->n_rows;
    return r > 0 ? r : 0;
}

/* Working memory of one fit, allocated once. */
typedef struct {
    int64_t n, d;
    int k;
    double *xn;      /* [n] squared row norms */
    double *C;       /* [k, d] current centres */
    double *Ct;      /* [d, k] transposed copy */
    double *cn;      /* [k] squared centre norms */
    double *sums;    /* [k, d] update accumulator */
    int64_t *counts; /* [k] */
    double *s;       /* [k] half distance to the nearest other centre */
    double *delta;   /* [k] centre movement */
    double *u, *l;   /* [n] Hamerly upper / lower bounds (distances, not squared) */
    int32_t *a;      /* [n] assignment */
    double *scratch; /* [threads, k] dot products */
    double *closest; /* [n] seeding: squared distance to the nearest chosen centre */
    double *cand;    /* [trials, n] seeding: candidate distances */
    double *cum;     /* [n] seeding: prefix sums */
    double *dense;   /* [d] seeding: scattered candidate row */
    int trials, threads;
} km_work;

static void km_work_free(km_work *w) {
    free(w->xn), free(w->C), free(w->Ct), free(w->cn), free(w->sums), free(w->counts), free(w->s);
    free(w->delta), free(w->u), free(w->l), free(w->a), free(w->scratch), free(w->closest), free(w->cand);
    free(w->cum), free(w->dense);
}

static hl_status km_work_alloc(km_work *w, const hl_csr *X, int k) {
    memset(w, 0, sizeof *w);
    w->n = X->n_rows, w->d = X->n_cols, w->k = k;
    w->threads = omp_get_max_threads();
    w->trials = 2 + (int)log((double)k);
    size_t n = (size_t)w->n, d = (size_t)w->d, kk = (size_t)k;
    w->xn = malloc(n * sizeof(double));
    w->C = malloc(kk * d * sizeof(double));
    w->Ct = malloc(kk * d * sizeof(double));
    w->cn = malloc(kk * sizeof(double));
    w->sums = malloc(kk * d * sizeof(double));
    w->counts = malloc(kk * sizeof(int64_t));
    w->s = malloc(kk * sizeof(double));
    w->delta = malloc(kk * sizeof(double));
    w->u = malloc(n * sizeof(double));
    w->l = malloc(n * sizeof(double));
    w->a = malloc(n * sizeof(int32_t));
    w->scratch = malloc((size_t)w->threads * kk * sizeof(double));
    w->closest = malloc(n * sizeof(double));
    w->cand = malloc((size_t)w->trials * n * sizeof(double));
    w->cum = malloc(n * sizeof(double));
    w->dense = calloc(d, sizeof(double));
    if (!w->xn || !w->C || !w->Ct || !w->cn || !w->sums || !w->counts || !w->s || !w->delta || !w->u || !w->l ||
        !w->a || !w->scratch || !w->closest || !w->cand || !w->cum || !w->dense) {
        km_work_free(w);
        return hl_fail(HL_ERR_NOMEM, "out of memory for k-means (n=%lld, d=%lld, k=%d: about %.0f MB)",
                       (long long)n, (long long)d, k, (3.0 * kk * d + (8.0 + w->trials) * n) * 8 / 1e6);
    }
    for (int64_t i = 0; i < w->n; i++) {
        double ss = 0;
        for (int64_t p = X->row_ptr[i]; p < X->row_ptr[i + 1]; p++)
            ss += (double)X->val[p] * X->val[p];
        w->xn[i] = ss;
    }
    return HL_OK;
}

/* After C changed: norms, transposed copy, and s[c] = half the distance to the nearest other centre. */
static void km_centres_changed(km_work *w) {
    int k = w->k;
    int64_t d = w->d;
    for (int c = 0; c < k; c++) {
        const double *cc = w->C + (size_t)c * d;
        double ss = 0;
        for (int64_t j = 0; j < d; j++)
            ss += cc[j] * cc[j];
        w->cn[c] = ss;
    }
#pragma omp parallel for schedule(static) if (d * k > KM_PARALLEL_WORK)
    for (int64_t j = 0; j < d; j++)
        for (int c = 0; c < k; c++)
            w->Ct[(size_t)j * k + c] = w->C[(size_t)c * d + j];
    for (int c = 0; c < k; c++)
        w->s[c] = INFINITY;
    for (int c = 0; c < k; c++)
        for (int e = c + 1; e < k; e++) {
            const double *x = w->C + (size_t)c * d, *y = w->C + (size_t)e * d;
            double ss = 0;
            for (int64_t j = 0; j < d; j++) {
                double t = x[j] - y[j];
                ss += t * t;
            }
            double h = 0.5 * sqrt(ss);
            if (h < w->s[c])
                w->s[c] = h;
            if (h < w->s[e])
                w->s[e] = h;
        }
}

/* Squared distances from row i to all centres into dist2[k]. */
static void km_row_all(const km_work *w, const hl_csr *X, int64_t i, double *dist2) {
    int k = w->k;
    for (int c = 0; c < k; c++)
        dist2[c] = 0;
    for (int64_t p = X->row_ptr[i]; p < X->row_ptr[i + 1]; p++) {
        double v = X->val[p];
        const double *ct = w->Ct + (size_t)X->col[p] * k;
        for (int c = 0; c < k; c++)
            dist2[c] += v * ct[c];
    }
    for (int c = 0; c < k; c++) {
        double t = w->xn[i] + w->cn[c] - 2.0 * dist2[c];
        dist2[c] = t > 0 ? t : 0;
    }
}

static double km_row_one(const km_work *w, const hl_csr *X, int64_t i, int c) {
    const double *cc = w->C + (size_t)c * w->d;
    double dot = 0;
    for (int64_t p = X->row_ptr[i]; p < X->row_ptr[i + 1]; p++)
        dot += X->val[p] * cc[X->col[p]];
    double t = w->xn[i] + w->cn[c] - 2.0 * dot;
    return t > 0 ? t : 0;
}

/* Set centre c to row i (dense). */
static void km_set_centre_row(km_work *w, const hl_csr *X, int c, int64_t i) {
    double *cc = w->C + (size_t)c * w->d;
    memset(cc, 0, (size_t)w->d * sizeof *cc);
    for (int64_t p = X->row_ptr[i]; p < X->row_ptr[i + 1]; p++)
        cc[X->col[p]] = X->val[p];
}

/* Squared distances of every row to row `r` into out[n]; also returns their sum of min(out, closest). */
static double km_dist_to_row(km_work *w, const hl_csr *X, int64_t r, double *out, const double *closest) {
    for (int64_t p = X->row_ptr[r]; p < X->row_ptr[r + 1]; p++)
        w->dense[X->col[p]] = X->val[p];
    double pot = 0;
    const double xr = w->xn[r];
#pragma omp parallel for schedule(static) reduction(+ : pot) if (X->nnz > KM_PARALLEL_WORK)
    for (int64_t i = 0; i < w->n; i++) {
        double dot = 0;
        for (int64_t p = X->row_ptr[i]; p < X->row_ptr[i + 1]; p++)
            dot += X->val[p] * w->dense[X->col[p]];
        double t = w->xn[i] + xr - 2.0 * dot;
        t = t > 0 ? t : 0;
        if (closest && closest[i] < t)
            t = closest[i];
        out[i] = t;
        pot += t;
    }
    for (int64_t p = X->row_ptr[r]; p < X->row_ptr[r + 1]; p++)
        w->dense[X->col[p]] = 0;
    return pot;
}

/* Greedy k-means++ (scikit-learn's variant). */
static void km_seed(km_work *w, const hl_csr *X, hl_rng *rng) {
    int64_t n = w->n;
    int64_t first = (int64_t)hl_rng_below(rng, (uint64_t)n);
    km_set_centre_row(w, X, 0, first);
    double pot = km_dist_to_row(w, X, first, w->closest, NULL);
    for (int c = 1; c < w->k; c++) {
        double acc = 0;
        for (int64_t i = 0; i < n; i++)
            w->cum[i] = (acc += w->closest[i]);
        double best_pot = INFINITY;
        int best_t = 0;
        int64_t best_row = 0;
        for (int t = 0; t < w->trials; t++) {
            double r = hl_rng_uniform_double(rng) * pot;
            /* first index with cum >= r (numpy searchsorted, side left) */
            int64_t lo = 0, hi = n - 1;
            while (lo < hi) {
                int64_t mid = lo + (hi - lo) / 2;
                if (w->cum[mid] >= r)
                    hi = mid;
                else
                    lo = mid + 1;
            }
            double p = km_dist_to_row(w, X, lo, w->cand + (size_t)t * n, w->closest);
            if (p < best_pot) {
                best_pot = p, best_t = t, best_row = lo;
            }
        }
        memcpy(w->closest, w->cand + (size_t)best_t * n, (size_t)n * sizeof(double));
        pot = best_pot;
        km_set_centre_row(w, X, c, best_row);
    }
}

/* One restart of Lloyd from the current C. Returns iterations; sets *sse. */
/* Progress from inside a parallel region: only the calling thread (thread 0 of the team)
 * reports; a cancel request is shared through *cancel and every restart stops at its next
 * iteration. */
typedef struct {
    hl_cluster_progress_fn fn;
    void *user;
    const char *stage;
    double base, total;
    int report;
    volatile int *cancel;
} km_progress;

static hl_status km_lloyd(km_work *w, const hl_csr *X, int max_iter, double tol_abs, int *iters, double *sse,
                          km_progress *pr) {
    int64_t n = w->n, d = w->d;
    int k = w->k;
    km_centres_changed(w);
    /* First assignment: full. */
    for (int64_t i = 0; i < n; i++)
        w->u[i] = INFINITY, w->l[i] = 0, w->a[i] = -1;
    int it = 0;
    for (; it < max_iter; it++) {
        int64_t changed = 0;
#pragma omp parallel reduction(+ : changed) if (X->nnz * k > KM_PARALLEL_WORK)
        {
            double *dist2 = w->scratch + (size_t)omp_get_thread_num() * k;
#pragma omp for schedule(dynamic, 256)
            for (int64_t i = 0; i < n; i++) {
                int a = w->a[i];
                if (a >= 0) {
                    double m = w->s[a] > w->l[i] ? w->s[a] : w->l[i];
                    m *= 1.0 - 1e-9; /* slack for rounding in the bounds */
                    if (w->u[i] <= m)
                        continue;
                    w->u[i] = sqrt(km_row_one(w, X, i, a));
                    if (w->u[i] <= m)
                        continue;
                }
                km_row_all(w, X, i, dist2);
                int b1 = 0;
                double d1 = INFINITY, d2 = INFINITY;
                for (int c = 0; c < k; c++) {
                    if (dist2[c] < d1) {
                        d2 = d1, d1 = dist2[c], b1 = c;
                    } else if (dist2[c] < d2) {
                        d2 = dist2[c];
                    }
                }
                if (b1 != a)
                    changed++;
                w->a[i] = b1;
                w->u[i] = sqrt(d1);
                w->l[i] = k > 1 ? sqrt(d2) : INFINITY;
            }
        }
        if (it > 0 && changed == 0)
            break; /* strict convergence: centres are already the means of these labels */

        /* Update: means of the assigned rows. */
        memset(w->sums, 0, (size_t)k * d * sizeof(double));
        memset(w->counts, 0, (size_t)k * sizeof(int64_t));
        for (int64_t i = 0; i < n; i++) {
            double *sc = w->sums + (size_t)w->a[i] * d;
            w->counts[w->a[i]]++;
            for (int64_t p = X->row_ptr[i]; p < X->row_ptr[i + 1]; p++)
                sc[X->col[p]] += X->val[p];
        }
        int relocated = 0;
        for (int c = 0; c < k; c++) {
            if (w->counts[c] > 0)
                continue;
            /* Empty cluster: take the point farthest from its own centre (exact distances). */
            int64_t far = -1;
            double far_d = -1;
            for (int64_t i = 0; i < n; i++) {
                if (w->counts[w->a[i]] <= 1)
                    continue;
                double t = km_row_one(w, X, i, w->a[i]);
                if (t > far_d)
                    far_d = t, far = i;
            }
            if (far < 0)
                break; /* fewer distinct points than clusters: leave it empty */
            double *from = w->sums + (size_t)w->a[far] * d, *to = w->sums + (size_t)c * d;
            for (int64_t p = X->row_ptr[far]; p < X->row_ptr[far + 1]; p++) {
                from[X->col[p]] -= X->val[p];
                to[X->col[p]] += X->val[p];
            }
            w->counts[w->a[far]]--;
            w->counts[c] = 1;
            w->a[far] = c;
            relocated = 1;
        }
        double shift_tot = 0, dmax1 = 0, dmax2 = 0;
        int cmax = -1;
        for (int c = 0; c < k; c++) {
            double *cc = w->C + (size_t)c * d;
            const double *sc = w->sums + (size_t)c * d;
            double inv = w->counts[c] ? 1.0 / (double)w->counts[c] : 0.0, ss = 0;
            for (int64_t j = 0; j < d; j++) {
                double v = w->counts[c] ? sc[j] * inv : cc[j];
                double t = v - cc[j];
                ss += t * t;
                cc[j] = v;
            }
            shift_tot += ss;
            w->delta[c] = sqrt(ss);
            if (w->delta[c] > dmax1)
                dmax2 = dmax1, dmax1 = w->delta[c], cmax = c;
            else if (w->delta[c] > dmax2)
                dmax2 = w->delta[c];
        }
        km_centres_changed(w);
        for (int64_t i = 0; i < n; i++) {
            if (relocated) { /* bounds are void: recompute everything next round */
                w->u[i] = INFINITY, w->l[i] = 0;
                continue;
            }
            w->u[i] += w->delta[w->a[i]];
            w->l[i] -= w->a[i] == cmax ? dmax2 : dmax1;
        }
        if (pr->report && pr->fn && pr->fn(pr->user, pr->stage, pr->base + it + 1, pr->total))
            *pr->cancel = 1;
        if (*pr->cancel)
            return HL_ERR_CANCELLED; /* the message is set by the caller's thread */
        if (!relocated && shift_tot <= tol_abs) {
            it++;
            break;
        }
    }
    /* Final exact assignment against the final centres, and the SSE. */
    double total = 0;
#pragma omp parallel reduction(+ : total) if (X->nnz * k > KM_PARALLEL_WORK)
    {
        double *dist2 = w->scratch + (size_t)omp_get_thread_num() * k;
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            km_row_all(w, X, i, dist2);
            int b = 0;
            for (int c = 1; c < k; c++)
                if (dist2[c] < dist2[b])
                    b = c;
            w->a[i] = b;
            total += dist2[b];
        }
    }
    *iters = it;
    *sse = total;
    return HL_OK;
}

hl_status hl_kmeans_fit(const hl_csr *X, const hl_kmeans_options *opt_in, hl_kmeans_result *out,
                        hl_cluster_progress_fn progress, void *user, const char *stage_name) {
    memset(out, 0, sizeof *out);
    hl_kmeans_options opt = *opt_in;
    if (opt.k < 1)
        return hl_fail(HL_ERR_ARG, "k-means needs k >= 1 (got %d)", opt.k);
    if (X->n_rows < opt.k)
        return hl_fail(HL_ERR_ARG, "k-means with k=%d needs at least %d records (have %lld)", opt.k, opt.k,
                       (long long)X->n_rows);
    if (opt.n_init < 1)
        opt.n_init = 1;
    if (opt.max_iter < 1)
        opt.max_iter = 1;
    const char *stage = stage_name ? stage_name : "kmeans";
    int64_t n = X->n_rows, d = X->n_cols;
    /* Restarts run in parallel, one per thread, each single-threaded inside (nested regions
     * are inactive): one parallel region per K instead of several per iteration, which
     * matters on a busy machine where every barrier can wait for a preempted thread.
     * Restart r always uses the same random stream, so the result does not depend on
     * which thread ran it. With one restart the loops inside are parallel instead. */
    int n_par = opt.n_init < omp_get_max_threads() ? opt.n_init : omp_get_max_threads();
    if (n_par < 1)
        n_par = 1;
    km_work *works = calloc((size_t)n_par, sizeof *works);
    double *best_sse = malloc((size_t)n_par * sizeof *best_sse);
    int *best_iter = calloc((size_t)n_par, sizeof *best_iter), *done = calloc((size_t)n_par, sizeof *done);
    int32_t **best_labels = calloc((size_t)n_par, sizeof *best_labels);
    float **best_centers = calloc((size_t)n_par, sizeof *best_centers);
    hl_status st = HL_OK;
    if (!works || !best_sse || !best_iter || !done || !best_labels || !best_centers)
        st = hl_fail(HL_ERR_NOMEM, "out of memory for k-means");
    int n_alloc = 0;
    for (int t = 0; t < n_par && st == HL_OK; t++) {
        st = km_work_alloc(&works[t], X, opt.k);
        if (st != HL_OK)
            break;
        n_alloc++;
        best_sse[t] = INFINITY;
        best_labels[t] = malloc((size_t)n * sizeof **best_labels);
        best_centers[t] = malloc((size_t)opt.k * (size_t)(d ? d : 1) * sizeof **best_centers);
        if (!best_labels[t] || !best_centers[t])
            st = hl_fail(HL_ERR_NOMEM, "out of memory for k-means results");
    }
    out->k = opt.k, out->n = n, out->d = d, out->sse = INFINITY;
    out->labels = malloc((size_t)n * sizeof *out->labels);
    out->centers = malloc((size_t)opt.k * (size_t)(d ? d : 1) * sizeof *out->centers);
    out->sizes = calloc((size_t)opt.k, sizeof *out->sizes);
    if (st == HL_OK && (!out->labels || !out->centers || !out->sizes))
        st = hl_fail(HL_ERR_NOMEM, "out of memory for k-means results");

    /* tol is relative to the data: mean over columns of the column variance (scikit-learn). */
    double var_sum = 0;
    if (st == HL_OK) {
        double *mean = calloc((size_t)d * 2 + 1, sizeof *mean), *sq = mean ? mean + d : NULL;
        if (!mean) {
            st = hl_fail(HL_ERR_NOMEM, "out of memory");
        } else {
            for (int64_t p = 0; p < X->nnz; p++) {
                mean[X->col[p]] += X->val[p];
                sq[X->col[p]] += (double)X->val[p] * X->val[p];
            }
            for (int64_t j = 0; j < d; j++) {
                double m = mean[j] / (double)n;
                var_sum += sq[j] / (double)n - m * m;
            }
            free(mean);
        }
    }
    double tol_abs = d > 0 ? opt.tol * var_sum / (double)d : 0;

    volatile int cancel = 0;
    if (st == HL_OK) {
#pragma omp parallel num_threads(n_par) if (n_par > 1)
        {
            int t = omp_get_thread_num();
            km_work *w = &works[t];
            for (int r = t; r < opt.n_init && !cancel; r += n_par) {
                hl_rng rng;
                /* one independent stream per (seed, K, restart) */
                hl_rng_seed(&rng,
                            opt.seed * 0x9E3779B97F4A7C15ULL + (uint64_t)r * 0xD1B54A32D192ED03ULL + (uint64_t)opt.k,
                            HL_RNG_STREAM_USER);
                km_seed(w, X, &rng);
                int iters = 0;
                double sse = 0;
                /* thread 0 is the caller: it reports, scaled to the restarts it runs itself */
                km_progress pr = {progress, user, stage, (double)(r / n_par) * opt.max_iter,
                                  (double)((opt.n_init + n_par - 1) / n_par) * opt.max_iter, t == 0, &cancel};
                if (km_lloyd(w, X, opt.max_iter, tol_abs, &iters, &sse, &pr) != HL_OK)
                    break;
                done[t]++;
                if (sse < best_sse[t]) { /* strict: the earliest restart wins a tie */
                    best_sse[t] = sse;
                    best_iter[t] = iters;
                    memcpy(best_labels[t], w->a, (size_t)n * sizeof **best_labels);
                    for (size_t j = 0; j < (size_t)opt.k * (size_t)d; j++)
                        best_centers[t][j] = (float)w->C[j];
                }
            }
        }
        if (cancel)
            st = hl_fail(HL_ERR_CANCELLED, "k-means cancelled");
    }
    if (st == HL_OK) {
        /* best over threads; ties go to the lowest restart index, i.e. the lowest thread
         * holding that SSE among restarts 0..n_par-1 (restart r ran on thread r % n_par). */
        int bt = -1;
        for (int t = 0; t < n_par; t++) {
            out->restarts += done[t];
            if (bt < 0 || best_sse[t] < best_sse[bt])
                bt = t;
        }
        out->sse = best_sse[bt];
        out->n_iter = best_iter[bt];
        memcpy(out->labels, best_labels[bt], (size_t)n * sizeof *out->labels);
        memcpy(out->centers, best_centers[bt], (size_t)opt.k * (size_t)d * sizeof *out->centers);
        for (int64_t i = 0; i < n; i++)
            out->sizes[out->labels[i]]++;
        if (progress && progress(user, stage, 1, 1))
            st = hl_fail(HL_ERR_CANCELLED, "k-means cancelled");
    }
    for (int t = 0; t < n_alloc; t++)
        km_work_free(&works[t]);
    for (int t = 0; best_labels && t < n_par; t++)
        free(best_labels[t]);
    for (int t = 0; best_centers && t < n_par; t++)
        free(best_centers[t]);
    free(works), free(best_sse), free(best_iter), free(done), free(best_labels), free(best_centers);
    if (st != HL_OK)
        hl_kmeans_result_free(out);
    return st;
}

int hl_elbow_index(const double *x, const double *y, int n, double *scores) {
    if (scores)
        for (int i = 0; i < n; i++)
            scores[i] = 0;
    if (n < 3)
        return 0;
    double *ym = malloc((size_t)n * sizeof *ym);
    if (!ym)
        return 0;
    ym[0] = y[0];
    for (int i = 1; i < n; i++)
        ym[i] = y[i] < ym[i - 1] ? y[i] : ym[i - 1];
    double xr = x[n - 1] - x[0], yr = ym[0] - ym[n - 1];
    int best = 0;
    if (xr > 0 && yr > 0) {
        double best_s = 0;
        for (int i = 1; i < n - 1; i++) {
            double xn = (x[i] - x[0]) / xr, yn = (ym[i] - ym[n - 1]) / yr;
            double s = (1.0 - xn) - yn; /* how far below the chord from (0,1) to (1,0) */
            if (scores)
                scores[i] = s;
            if (s > best_s + 1e-12)
                best_s = s, best = i;
        }
    }
    free(ym);
    return best;
}
