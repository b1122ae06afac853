/* Ward linkage by nearest-neighbour chain on a condensed squared-distance matrix.
 * See ward.h for conventions (scipy's). */
#include "core/analysis/ward.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

double hl_ward_memory_bytes(int64_t n) { return (double)n * (double)(n - 1) / 2.0 * sizeof(double); }

/* index of (i, j), i < j, in the condensed upper triangle */
static inline size_t cidx(int64_t n, int64_t i, int64_t j) {
    return (size_t)(n * i - i * (i + 1) / 2 + j - i - 1);
}

static double *alloc_condensed(int64_t n) {
    if (n < 2)
        return NULL;
    size_t count = (size_t)n * (size_t)(n - 1) / 2;
    return malloc(count * sizeof(double));
}

/* Exact squared distance of two sparse rows: merge of their sorted column lists. */
static double sparse_sqdist(const hl_csr *X, int64_t i, int64_t j) {
    int64_t p = X->row_ptr[i], pe = X->row_ptr[i + 1], q = X->row_ptr[j], qe = X->row_ptr[j + 1];
    double s = 0;
    while (p < pe && q < qe) {
        double t;
        if (X->col[p] == X->col[q])
            t = (double)X->val[p++] - (double)X->val[q++];
        else if (X->col[p] < X->col[q])
            t = X->val[p++];
        else
            t = X->val[q++];
        s += t * t;
    }
    for (; p < pe; p++)
        s += (double)X->val[p] * X->val[p];
    for (; q < qe; q++)
        s += (double)X->val[q] * X->val[q];
    return s;
}

static double dense_sqdist(const float *a, const float *b, int64_t d) {
    double s = 0;
    for (int64_t j = 0; j < d; j++) {
        double t = (double)a[j] - (double)b[j];
        s += t * t;
    }
    return s;
}

typedef struct {
    int32_t x, y;
    double d2;
    int32_t size;
} raw_merge;

typedef struct {
    double d2;
    int64_t idx;
} height_key;

static int cmp_height_key(const void *a, const void *b) {
    const height_key *p = a, *q = b;
    if (p->d2 != q->d2)
        return p->d2 < q->d2 ? -1 : 1;
    return (p->idx > q->idx) - (p->idx < q->idx);
}

/* Nearest-neighbour chain over D (destroyed). Writes merges in scipy's convention. */
static hl_status ward_chain(double *D, int64_t n, hl_ward_merge *out, hl_cluster_progress_fn progress, void *user) {
    int32_t *size = malloc((size_t)n * sizeof *size);
    int32_t *chain = malloc((size_t)n * sizeof *chain);
    raw_merge *raw = malloc((size_t)(n - 1) * sizeof *raw);
    int64_t *uf = malloc((size_t)(2 * n - 1) * sizeof *uf);
    hl_status st = HL_OK;
    if (!size || !chain || !raw || !uf) {
        st = hl_fail(HL_ERR_NOMEM, "out of memory for Ward linkage");
        goto done;
    }
    for (int64_t i = 0; i < n; i++)
        size[i] = 1;
    int64_t chain_len = 0;
    for (int64_t m = 0; m < n - 1; m++) {
        if (chain_len == 0) {
            chain[0] = 0;
            for (int64_t i = 0; i < n; i++)
                if (size[i] > 0) {
                    chain[0] = (int32_t)i;
                    break;
                }
            chain_len = 1;
        }
        int64_t x, y;
        double cur;
        for (;;) {
            x = chain[chain_len - 1];
            if (chain_len > 1) {
                y = chain[chain_len - 2];
                cur = x < y ? D[cidx(n, x, y)] : D[cidx(n, y, x)];
            } else {
                y = -1;
                cur = INFINITY;
            }
            for (int64_t i = 0; i < n; i++) {
                if (size[i] == 0 || i == x)
                    continue;
                double dd = i < x ? D[cidx(n, i, x)] : D[cidx(n, x, i)];
                if (dd < cur) {
                    cur = dd;
                    y = i;
                }
            }
            if (chain_len > 1 && y == chain[chain_len - 2])
                break;
            chain[chain_len++] = (int32_t)y;
        }
        chain_len -= 2;
        if (x > y) {
            int64_t t = x;
            x = y;
            y = t;
        }
        int32_t nx = size[x], ny = size[y];
        raw[m] = (raw_merge){(int32_t)x, (int32_t)y, cur, nx + ny};
        size[x] = 0;
        size[y] = nx + ny;
        /* Lance-Williams for Ward on squared distances; the merged cluster lives at y. */
        double dxy = cur;
        for (int64_t i = 0; i < n; i++) {
            int32_t ni = size[i];
            if (ni == 0 || i == y)
                continue;
            double *dyi = i < y ? &D[cidx(n, i, y)] : &D[cidx(n, y, i)];
            double dxi = i < x ? D[cidx(n, i, x)] : D[cidx(n, x, i)];
            double t = 1.0 / (double)(nx + ny + ni);
            double v = ((double)(ni + nx) * dxi + (double)(ni + ny) * *dyi - (double)ni * dxy) * t;
            *dyi = v > 0 ? v : 0;
        }
        if (progress && (m % 256 == 0) && progress(user, "ward linkage", (double)m, (double)(n - 1))) {
            st = hl_fail(HL_ERR_CANCELLED, "Ward clustering cancelled");
            goto done;
        }
    }
    /* Stable sort by height: qsort is not stable, so the key includes the original index. */
    {
        height_key *keys = malloc((size_t)(n - 1) * sizeof *keys);
        raw_merge *sorted = malloc((size_t)(n - 1) * sizeof *sorted);
        if (!keys || !sorted) {
            free(keys), free(sorted);
            st = hl_fail(HL_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (int64_t m = 0; m < n - 1; m++)
            keys[m] = (height_key){raw[m].d2, m};
        qsort(keys, (size_t)(n - 1), sizeof *keys, cmp_height_key);
        for (int64_t m = 0; m < n - 1; m++)
            sorted[m] = raw[keys[m].idx];
        memcpy(raw, sorted, (size_t)(n - 1) * sizeof *raw);
        free(keys), free(sorted);
    }
    /* Relabel matrix indices into cluster ids with union-find (scipy's label step). */
    for (int64_t i = 0; i < 2 * n - 1; i++)
        uf[i] = i;
    for (int64_t m = 0; m < n - 1; m++) {
        int64_t a = raw[m].x, b = raw[m].y;
        while (uf[a] != a)
            a = uf[a] = uf[uf[a]];
        while (uf[b] != b)
            b = uf[b] = uf[uf[b]];
        if (a > b) {
            int64_t t = a;
            a = b;
            b = t;
        }
        out[m] = (hl_ward_merge){(int32_t)a, (int32_t)b, sqrt(raw[m].d2), raw[m].size};
        uf[a] = n + m;
        uf[b] = n + m;
    }
done:
    free(size), free(chain), free(raw), free(uf);
    return st;
}

static hl_status ward_fit(const hl_csr *Xs, const float *Xd, int64_t n, int64_t d, hl_ward_merge *merges,
                          hl_cluster_progress_fn progress, void *user) {
    if (n < 2)
        return hl_fail(HL_ERR_ARG, "Ward clustering needs at least 2 records (have %lld)", (long long)n);
    if (n > INT32_MAX / 2)
        return hl_fail(HL_ERR_RANGE, "too many records for Ward clustering (%lld)", (long long)n);
    double *D = alloc_condensed(n);
    if (!D)
        return hl_fail(HL_ERR_NOMEM, "out of memory for the Ward distance matrix (%lld points need %.0f MB); "
                       "cluster a sample (--ward-max)", (long long)n, hl_ward_memory_bytes(n) / 1e6);
    /* Sparse rows: d(i,j) = |x_i|^2 + |x_j|^2 - 2 x_i.x_j with x_i scattered into a dense
     * buffer (one gather per non-zero of x_j). When that difference is small next to the
     * norms it has lost digits to cancellation, so it is recomputed exactly by merging the
     * two rows (identical rows then get exactly 0, as scipy gives). */
    int threads = omp_get_max_threads();
    double *xn = NULL, *dense = NULL;
    if (Xs) {
        xn = malloc((size_t)n * sizeof *xn);
        dense = calloc((size_t)threads * (size_t)(d ? d : 1), sizeof *dense);
        if (!xn || !dense) {
            free(D), free(xn), free(dense);
            return hl_fail(HL_ERR_NOMEM, "out of memory for Ward distances");
        }
        for (int64_t i = 0; i < n; i++) {
            double s = 0;
            for (int64_t p = Xs->row_ptr[i]; p < Xs->row_ptr[i + 1]; p++)
                s += (double)Xs->val[p] * Xs->val[p];
            xn[i] = s;
        }
    }
    /* Rows in blocks so that progress is reported from the calling thread between blocks. */
    const int64_t block = 64;
    for (int64_t i0 = 0; i0 < n; i0 += block) {
        int64_t i1 = i0 + block < n ? i0 + block : n;
#pragma omp parallel for schedule(dynamic, 1) if (n > 512)
        for (int64_t i = i0; i < i1; i++) {
            double *row = D + cidx(n, i, i + 1);
            if (!Xs) {
                for (int64_t j = i + 1; j < n; j++)
                    row[j - i - 1] = dense_sqdist(Xd + (size_t)i * d, Xd + (size_t)j * d, d);
                continue;
            }
            double *v = dense + (size_t)omp_get_thread_num() * d;
            for (int64_t p = Xs->row_ptr[i]; p < Xs->row_ptr[i + 1]; p++)
                v[Xs->col[p]] = Xs->val[p];
            for (int64_t j = i + 1; j < n; j++) {
                double dot = 0;
                for (int64_t p = Xs->row_ptr[j]; p < Xs->row_ptr[j + 1]; p++)
                    dot += Xs->val[p] * v[Xs->col[p]];
                double t = xn[i] + xn[j] - 2.0 * dot;
                if (t < 1e-6 * (xn[i] + xn[j]))
                    t = sparse_sqdist(Xs, i, j);
                row[j - i - 1] = t;
            }
            for (int64_t p = Xs->row_ptr[i]; p < Xs->row_ptr[i + 1]; p++)
                v[Xs->col[p]] = 0;
        }
        /* rows get shorter: weight progress by pairs done */
        double done = (double)i1 * (double)n - (double)i1 * (double)(i1 + 1) / 2.0;
        if (progress && progress(user, "ward distances", done, (double)n * (double)(n - 1) / 2.0)) {
            free(D), free(xn), free(dense);
            return hl_fail(HL_ERR_CANCELLED, "Ward clustering cancelled");
        }
    }
    free(xn), free(dense);
    hl_status st = ward_chain(D, n, merges, progress, user);
    free(D);
    return st;
}

hl_status hl_ward_fit_csr(const hl_csr *X, hl_ward_merge *merges, hl_cluster_progress_fn progress, void *user) {
    return ward_fit(X, NULL, X->n_rows, X->n_cols, merges, progress, user);
}

hl_status hl_ward_fit_dense(const float *X, int64_t n, int64_t d, hl_ward_merge *merges,
                            hl_cluster_progress_fn progress, void *user) {
    return ward_fit(NULL, X, n, d, merges, progress, user);
}

hl_status hl_ward_cut(const hl_ward_merge *merges, int64_t n, int k, int32_t *labels) {
    if (k < 1 || k > n)
        return hl_fail(HL_ERR_ARG, "cannot cut %lld points into %d clusters", (long long)n, k);
    int64_t *parent = malloc((size_t)(2 * n) * sizeof *parent);
    int64_t *label_of = malloc((size_t)(2 * n) * sizeof *label_of);
    if (!parent || !label_of) {
        free(parent), free(label_of);
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    }
    for (int64_t i = 0; i < 2 * n; i++)
        parent[i] = -1, label_of[i] = -1;
    for (int64_t m = 0; m < n - k; m++) {
        if (merges[m].a < 0 || merges[m].b < 0 || merges[m].a >= n + m || merges[m].b >= n + m) {
            free(parent), free(label_of);
            return hl_fail(HL_ERR_FORMAT, "merge %lld refers to a cluster that does not exist yet", (long long)m);
        }
        parent[merges[m].a] = n + m;
        parent[merges[m].b] = n + m;
    }
    int32_t next = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t r = i;
        while (parent[r] >= 0)
            r = parent[r];
        if (label_of[r] < 0)
            label_of[r] = next++;
        labels[i] = (int32_t)label_of[r];
    }
    free(parent), free(label_of);
    return HL_OK;
}

void hl_ward_sse_curve(const hl_ward_merge *merges, int64_t n, double *sse) {
    /* k clusters = first n - k merges: SSE(n) = 0, SSE(k) = SSE(k + 1) + h[n - k - 1]^2 / 2 */
    sse[n - 1] = 0;
    for (int64_t k = n - 1; k >= 1; k--) {
        double h = merges[n - k - 1].height;
        sse[k - 1] = sse[k] + 0.5 * h * h;
    }
}

int hl_ward_propose_gap(const hl_ward_merge *merges, int64_t n, int k_min, int k_max, double *gaps) {
    if (k_min < 1)
        k_min = 1;
    if (k_max > n)
        k_max = (int)n;
    int best = k_min;
    double best_gap = -1;
    for (int k = k_min; k <= k_max; k++) {
        double gap = 0;
        if (k >= 2) {
            double next = merges[n - k].height;               /* the merge not made */
            double last = k < n ? merges[n - k - 1].height : 0; /* the last merge made */
            gap = next - last;
        }
        if (gaps)
            gaps[k - k_min] = gap;
        if (gap > best_gap) {
            best_gap = gap;
            best = k;
        }
    }
    return best;
}
