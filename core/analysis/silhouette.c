/* Mean silhouette of several clusterings of the same sparse rows. See silhouette.h. */
#include "core/analysis/silhouette.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Rows per block between progress reports (and cancellation checks). */
#define SIL_BLOCK 64

typedef struct {
    double *dense; /* [d] the current row, scattered */
    double *dist;  /* [m] its distances to every row */
    double *sums;  /* [k_max] distance sums per cluster */
} sil_scratch;

hl_status hl_silhouette_scores(const hl_csr *X, const int64_t *rows, int64_t m, const int32_t *const *labels,
                               const int *k, int n_sets, double *out, hl_cluster_progress_fn progress, void *user) {
    for (int s = 0; s < n_sets; s++)
        out[s] = NAN;
    if (m < 2 || n_sets <= 0)
        return HL_OK;
    int k_max = 1;
    for (int s = 0; s < n_sets; s++)
        if (k[s] > k_max)
            k_max = k[s];
    const int64_t d = X->n_cols;
    int threads = omp_get_max_threads();
    double *norm2 = malloc((size_t)m * sizeof *norm2);
    int64_t *sizes = calloc((size_t)n_sets * (size_t)k_max, sizeof *sizes);
    double *per_row = malloc((size_t)m * (size_t)n_sets * sizeof *per_row); /* [m][n_sets] s(i) */
    sil_scratch *scr = calloc((size_t)threads, sizeof *scr);
    hl_status st = HL_OK;
    if (!norm2 || !sizes || !per_row || !scr)
        st = hl_fail(HL_ERR_NOMEM, "out of memory for the silhouette scores");
    for (int t = 0; st == HL_OK && t < threads; t++) {
        scr[t].dense = calloc((size_t)(d > 0 ? d : 1), sizeof *scr[t].dense);
        scr[t].dist = malloc((size_t)m * sizeof *scr[t].dist);
        scr[t].sums = malloc((size_t)k_max * sizeof *scr[t].sums);
        if (!scr[t].dense || !scr[t].dist || !scr[t].sums)
            st = hl_fail(HL_ERR_NOMEM, "out of memory for the silhouette scores");
    }
    for (int s = 0; st == HL_OK && s < n_sets; s++)
        for (int64_t i = 0; i < m; i++) {
            int32_t c = labels[s][i];
            if (c < 0 || c >= k[s]) {
                st = hl_fail(HL_ERR_ARG, "silhouette: label %d of row %lld outside 0..%d", c, (long long)i, k[s] - 1);
                break;
            }
            sizes[(size_t)s * k_max + c]++;
        }
    if (st == HL_OK) {
        for (int64_t i = 0; i < m; i++) {
            int64_t r = rows ? rows[i] : i;
            double acc = 0;
            for (int64_t p = X->row_ptr[r]; p < X->row_ptr[r + 1]; p++)
                acc += (double)X->val[p] * X->val[p];
            norm2[i] = acc;
        }
    }
    for (int64_t b0 = 0; st == HL_OK && b0 < m; b0 += SIL_BLOCK) {
        int64_t b1 = b0 + SIL_BLOCK < m ? b0 + SIL_BLOCK : m;
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t i = b0; i < b1; i++) {
            sil_scratch *w = &scr[omp_get_thread_num()];
            int64_t ri = rows ? rows[i] : i;
            for (int64_t p = X->row_ptr[ri]; p < X->row_ptr[ri + 1]; p++)
                w->dense[X->col[p]] = X->val[p];
            for (int64_t j = 0; j < m; j++) {
                if (j == i) {
                    w->dist[j] = 0;
                    continue;
                }
                int64_t rj = rows ? rows[j] : j;
                double dot = 0;
                for (int64_t p = X->row_ptr[rj]; p < X->row_ptr[rj + 1]; p++)
                    dot += w->dense[X->col[p]] * (double)X->val[p];
                double d2 = norm2[i] + norm2[j] - 2 * dot;
                w->dist[j] = d2 > 0 ? sqrt(d2) : 0;
            }
            for (int64_t p = X->row_ptr[ri]; p < X->row_ptr[ri + 1]; p++)
                w->dense[X->col[p]] = 0;
            for (int s = 0; s < n_sets; s++) {
                const int32_t *lab = labels[s];
                const int64_t *sz = sizes + (size_t)s * k_max;
                memset(w->sums, 0, (size_t)k[s] * sizeof *w->sums);
                for (int64_t j = 0; j < m; j++)
                    w->sums[lab[j]] += w->dist[j];
                int own = lab[i];
                double sil = 0;
                if (sz[own] > 1) {
                    double a = w->sums[own] / (double)(sz[own] - 1), bmin = INFINITY;
                    for (int c = 0; c < k[s]; c++)
                        if (c != own && sz[c] > 0 && w->sums[c] / (double)sz[c] < bmin)
                            bmin = w->sums[c] / (double)sz[c];
                    double den = a > bmin ? a : bmin;
                    sil = isfinite(bmin) && den > 0 ? (bmin - a) / den : 0;
                }
                per_row[(size_t)i * n_sets + s] = sil;
            }
        }
        if (progress && progress(user, "silhouette", (double)b1, (double)m))
            st = hl_fail(HL_ERR_CANCELLED, "cancelled");
    }
    if (st == HL_OK) {
        /* summed in row order, so the score does not depend on the thread count */
        for (int s = 0; s < n_sets; s++) {
            int used = 0;
            for (int c = 0; c < k[s]; c++)
                used += sizes[(size_t)s * k_max + c] > 0;
            if (used < 2 || used >= m) /* scikit-learn: 2 <= labels <= samples - 1 */
                continue;
            double acc = 0;
            for (int64_t i = 0; i < m; i++)
                acc += per_row[(size_t)i * n_sets + s];
            out[s] = acc / (double)m;
        }
    }
    for (int t = 0; scr && t < threads; t++) {
        free(scr[t].dense);
        free(scr[t].dist);
        free(scr[t].sums);
    }
    free(scr), free(norm2), free(sizes), free(per_row);
    return st;
}
