/* hl_cluster_run: TF-IDF -> k-means over a K range (elbow) or Ward (dendrogram cut) ->
 * labels and cluster summaries. See cluster.h. */
#include "core/analysis/cluster.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/base/rng.h"

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

hl_cluster_options hl_cluster_defaults(void) {
    hl_cluster_options o;
    memset(&o, 0, sizeof o);
    o.tfidf = hl_tfidf_defaults();
    o.tfidf.min_df = 2;
    o.tfidf.sublinear_tf = 1;
    o.method = HL_CLUSTER_KMEANS;
    o.k_min = 2;
    o.k_max = 12;
    o.n_init = 4;
    o.max_iter = 300;
    o.seed = 41;
    o.force_k = 0;
    o.criterion = HL_CRITERION_SILHOUETTE;
    o.silhouette_max = 3000;
    o.ward_max = 3000;
    o.top_terms = 8;
    o.examples = 3;
    return o;
}

static const char *const criterion_names[] = {"silhouette", "silhouette-max", "elbow"};

const char *hl_cluster_criterion_name(hl_cluster_criterion c) {
    return (unsigned)c < 3 ? criterion_names[c] : "?";
}

hl_status hl_cluster_criterion_parse(const char *s, hl_cluster_criterion *out) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, criterion_names[i])) {
            *out = (hl_cluster_criterion)i;
            return HL_OK;
        }
    return hl_fail(HL_ERR_ARG, "unknown criterion '%s' (silhouette, silhouette-max or elbow)", s);
}

void hl_cluster_report_free(hl_cluster_report *r) {
    if (!r)
        return;
    hl_tfidf_free(&r->tfidf);
    free(r->per_k);
    free(r->labels);
    free(r->clusters);
    free(r->ward_records);
    free(r->merges);
    memset(r, 0, sizeof *r);
}

/* Rows `rows[0..m)` of X as a new CSR. */
static hl_status csr_select(const hl_csr *X, const int64_t *rows, int64_t m, hl_csr *out) {
    memset(out, 0, sizeof *out);
    int64_t nnz = 0;
    for (int64_t i = 0; i < m; i++)
        nnz += X->row_ptr[rows[i] + 1] - X->row_ptr[rows[i]];
    out->n_rows = m, out->n_cols = X->n_cols, out->nnz = nnz;
    out->row_ptr = malloc(((size_t)m + 1) * sizeof *out->row_ptr);
    out->col = malloc((size_t)(nnz ? nnz : 1) * sizeof *out->col);
    out->val = malloc((size_t)(nnz ? nnz : 1) * sizeof *out->val);
    if (!out->row_ptr || !out->col || !out->val) {
        hl_csr_free(out);
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    }
    int64_t w = 0;
    out->row_ptr[0] = 0;
    for (int64_t i = 0; i < m; i++) {
        int64_t a = X->row_ptr[rows[i]], b = X->row_ptr[rows[i] + 1];
        memcpy(out->col + w, X->col + a, (size_t)(b - a) * sizeof *out->col);
        memcpy(out->val + w, X->val + a, (size_t)(b - a) * sizeof *out->val);
        w += b - a;
        out->row_ptr[i + 1] = w;
    }
    return HL_OK;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

typedef struct {
    int64_t size;
    int label;
} size_label;
static int cmp_size_desc(const void *a, const void *b) {
    const size_label *x = a, *y = b;
    if (x->size != y->size)
        return x->size > y->size ? -1 : 1;
    return (x->label > y->label) - (x->label < y->label);
}

typedef struct {
    double w;
    int32_t term;
} weight_term;
static int cmp_weight_desc(const void *a, const void *b) {
    const weight_term *x = a, *y = b;
    if (x->w != y->w)
        return x->w > y->w ? -1 : 1;
    return (x->term > y->term) - (x->term < y->term);
}

/* Given labels (any numbering 0..k-1) for every record: renumber clusters by size (largest
 * first), compute centroids, top terms and the examples closest to each centroid. */
static hl_status summarise(hl_cluster_report *r, const hl_cluster_options *opt, int k) {
    const hl_csr *X = &r->tfidf.X;
    int64_t n = X->n_rows, d = X->n_cols;
    size_label *sl = calloc((size_t)k, sizeof *sl);
    int *relabel = malloc((size_t)k * sizeof *relabel);
    double *cent = calloc((size_t)k * (size_t)d, sizeof *cent);
    double *cn = calloc((size_t)k, sizeof *cn);
    double *gmean = calloc((size_t)(d ? d : 1), sizeof *gmean);
    double *best_d = malloc((size_t)k * HL_CLUSTER_MAX_EXAMPLES * sizeof *best_d);
    weight_term *wt = malloc((size_t)(d ? d : 1) * sizeof *wt);
    r->clusters = calloc((size_t)k, sizeof *r->clusters);
    hl_status st = HL_OK;
    if (!sl || !relabel || !cent || !cn || !gmean || !best_d || !wt || !r->clusters) {
        st = hl_fail(HL_ERR_NOMEM, "out of memory for cluster summaries");
        goto done;
    }
    for (int c = 0; c < k; c++)
        sl[c].label = c;
    for (int64_t i = 0; i < n; i++)
        sl[r->labels[i]].size++;
    qsort(sl, (size_t)k, sizeof *sl, cmp_size_desc);
    for (int c = 0; c < k; c++)
        relabel[sl[c].label] = c;
    for (int64_t i = 0; i < n; i++)
        r->labels[i] = relabel[r->labels[i]];
    for (int64_t i = 0; i < n; i++) {
        double *cc = cent + (size_t)r->labels[i] * d;
        for (int64_t p = X->row_ptr[i]; p < X->row_ptr[i + 1]; p++) {
            cc[X->col[p]] += X->val[p];
            gmean[X->col[p]] += X->val[p];
        }
    }
    for (int64_t j = 0; j < d; j++)
        gmean[j] /= (double)n;
    int n_top = opt->top_terms < 0 ? 0 : opt->top_terms > HL_CLUSTER_MAX_TOP ? HL_CLUSTER_MAX_TOP : opt->top_terms;
    int n_ex = opt->examples < 0 ? 0 : opt->examples > HL_CLUSTER_MAX_EXAMPLES ? HL_CLUSTER_MAX_EXAMPLES : opt->examples;
    for (int c = 0; c < k; c++) {
        hl_cluster_summary *s = &r->clusters[c];
        s->size = sl[c].size;
        double *cc = cent + (size_t)c * d;
        double inv = s->size ? 1.0 / (double)s->size : 0;
        double ss = 0;
        for (int64_t j = 0; j < d; j++) {
            cc[j] *= inv;
            ss += cc[j] * cc[j];
            wt[j] = (weight_term){k > 1 ? cc[j] - gmean[j] : cc[j], (int32_t)j};
        }
        cn[c] = ss;
        int top = n_top < d ? n_top : (int)d;
        /* partial selection would do; d log d once per cluster is a few ms */
        qsort(wt, (size_t)d, sizeof *wt, cmp_weight_desc);
        s->n_top = 0;
        for (int t = 0; t < top && wt[t].w > 0; t++) {
            s->top_term[s->n_top] = wt[t].term;
            s->top_weight[s->n_top] = (float)cc[wt[t].term];
            s->n_top++;
        }
        for (int e = 0; e < HL_CLUSTER_MAX_EXAMPLES; e++)
            best_d[(size_t)c * HL_CLUSTER_MAX_EXAMPLES + e] = INFINITY;
    }
    /* Examples: the n_ex members nearest their centroid (insertion into a short sorted list). */
    for (int64_t i = 0; i < n && n_ex > 0; i++) {
        int c = r->labels[i];
        const double *cc = cent + (size_t)c * d;
        double dot = 0, xn = 0;
        for (int64_t p = X->row_ptr[i]; p < X->row_ptr[i + 1]; p++) {
            dot += X->val[p] * cc[X->col[p]];
            xn += (double)X->val[p] * X->val[p];
        }
        double dist = xn + cn[c] - 2 * dot;
        hl_cluster_summary *s = &r->clusters[c];
        double *bd = best_d + (size_t)c * HL_CLUSTER_MAX_EXAMPLES;
        int pos = s->n_examples;
        while (pos > 0 && dist < bd[pos - 1])
            pos--;
        if (pos >= n_ex)
            continue;
        int last = s->n_examples < n_ex ? s->n_examples : n_ex - 1;
        for (int e = last; e > pos; e--) {
            bd[e] = bd[e - 1];
            s->example[e] = s->example[e - 1];
        }
        bd[pos] = dist;
        s->example[pos] = i;
        if (s->n_examples < n_ex)
            s->n_examples++;
    }
done:
    free(sl), free(relabel), free(cent), free(cn), free(gmean), free(best_d), free(wt);
    return st;
}

/* m of the n indices 0..n-1 (all when m >= n), a seeded sample without replacement
 * (partial Fisher-Yates), in increasing order. Returns the count written. */
static int64_t sample_indices(int64_t n, int64_t m, uint64_t seed, int64_t *out) {
    if (m >= n) {
        for (int64_t i = 0; i < n; i++)
            out[i] = i;
        return n;
    }
    int64_t *perm = malloc((size_t)n * sizeof *perm);
    if (!perm)
        return -1;
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    hl_rng rng;
    hl_rng_seed(&rng, seed, HL_RNG_STREAM_USER);
    for (int64_t i = 0; i < m; i++) {
        int64_t j = i + (int64_t)hl_rng_below(&rng, (uint64_t)(n - i));
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    qsort(perm, (size_t)m, sizeof *perm, cmp_i64);
    memcpy(out, perm, (size_t)m * sizeof *perm);
    free(perm);
    return m;
}

/* Silhouette of every K >= 2 of r->per_k. full_labels(ctx, K, out) writes the labels of all
 * `n` rows of X (rows indexed 0..n-1 of X here) for K clusters; a sample of at most
 * opt->silhouette_max rows is scored. */
typedef hl_status (*labels_fn)(void *ctx, int k, int32_t *out);

static hl_status score_silhouettes(hl_cluster_report *r, const hl_cluster_options *opt, const hl_csr *X, labels_fn fn,
                                   void *ctx, hl_cluster_progress_fn progress, void *user) {
    int64_t n = X->n_rows;
    int64_t cap = opt->silhouette_max > 1 ? opt->silhouette_max : 3000;
    int64_t m = n < cap ? n : cap;
    for (int i = 0; i < r->n_k; i++)
        r->per_k[i].silhouette = NAN;
    int n_sets = 0;
    for (int i = 0; i < r->n_k; i++)
        n_sets += r->per_k[i].k >= 2;
    if (n_sets == 0 || m < 3)
        return HL_OK;
    int64_t *rows = malloc((size_t)m * sizeof *rows);
    int32_t *all = malloc((size_t)n * sizeof *all);
    int32_t *lab = malloc((size_t)n_sets * (size_t)m * sizeof *lab);
    const int32_t **sets = malloc((size_t)n_sets * sizeof *sets);
    int *ks = malloc((size_t)n_sets * sizeof *ks);
    double *sc = malloc((size_t)n_sets * sizeof *sc);
    hl_status st = HL_OK;
    if (!rows || !all || !lab || !sets || !ks || !sc || sample_indices(n, m, opt->seed, rows) != m)
        st = hl_fail(HL_ERR_NOMEM, "out of memory for the silhouette scores");
    int s = 0;
    for (int i = 0; st == HL_OK && i < r->n_k; i++) {
        if (r->per_k[i].k < 2)
            continue;
        st = fn(ctx, r->per_k[i].k, all);
        int32_t *dst = lab + (size_t)s * m;
        for (int64_t j = 0; st == HL_OK && j < m; j++)
            dst[j] = all[rows[j]];
        sets[s] = dst;
        ks[s] = r->per_k[i].k;
        s++;
    }
    if (st == HL_OK)
        st = hl_silhouette_scores(X, rows, m, sets, ks, n_sets, sc, progress, user);
    if (st == HL_OK) {
        s = 0;
        for (int i = 0; i < r->n_k; i++)
            if (r->per_k[i].k >= 2)
                r->per_k[i].silhouette = sc[s++];
        r->silhouette_records = m;
    }
    free(rows), free(all), free(lab), free(sets), free(ks), free(sc);
    return st;
}

/* The three proposals from per_k (SSE, elbow scores and silhouettes filled in), and
 * proposed_n by the chosen criterion. */
static void propose(hl_cluster_report *r, const hl_cluster_options *opt, int k_hi) {
    int lo = opt->k_min < k_hi ? opt->k_min : k_hi;
    double *x = malloc((size_t)r->n_k * sizeof *x), *y = malloc((size_t)r->n_k * sizeof *y);
    double *sc = malloc((size_t)r->n_k * sizeof *sc);
    int knee = 0;
    if (x && y && sc) {
        for (int i = 0; i < r->n_k; i++)
            x[i] = r->per_k[i].k, y[i] = r->per_k[i].sse;
        knee = hl_elbow_index(x, y, r->n_k, sc);
        for (int i = 0; i < r->n_k; i++)
            r->per_k[i].elbow_score = sc[i];
    }
    free(x), free(y), free(sc);
    r->elbow_n = r->per_k[knee].k;
    int elbow_fallback = r->elbow_n < opt->k_min;
    if (elbow_fallback)
        r->elbow_n = lo;
    /* silhouette: first peak and best, over K >= k_min with a score */
    r->silhouette_n = r->silhouette_best_n = 0;
    double best = -INFINITY;
    int climbing = 1;
    for (int i = 0; i < r->n_k; i++) {
        const hl_cluster_k *pk = &r->per_k[i];
        if (pk->k < opt->k_min || !isfinite(pk->silhouette))
            continue;
        if (pk->silhouette > best) {
            best = pk->silhouette;
            r->silhouette_best_n = pk->k;
            if (climbing)
                r->silhouette_n = pk->k;
        } else {
            climbing = 0;
        }
    }
    r->criterion = opt->criterion;
    int want = opt->criterion == HL_CRITERION_ELBOW            ? r->elbow_n
               : opt->criterion == HL_CRITERION_SILHOUETTE_MAX ? r->silhouette_best_n
                                                              : r->silhouette_n;
    if (opt->criterion == HL_CRITERION_ELBOW || want == 0) {
        r->proposed_n = r->elbow_n;
        r->proposal_method = elbow_fallback ? "no elbow in SSE(K) (too few K values or a straight curve): k-min"
                             : opt->criterion != HL_CRITERION_ELBOW
                                 ? "elbow of SSE(K) (no silhouette: too few records or clusters)"
                             : r->method == HL_CLUSTER_WARD
                                 ? "elbow of SSE(K) of the dendrogram's cuts: max distance below the chord"
                                 : "elbow of SSE(K): max distance below the chord";
    } else {
        r->proposed_n = want;
        r->proposal_method = opt->criterion == HL_CRITERION_SILHOUETTE_MAX
                                 ? "highest mean silhouette s(K)"
                                 : "first peak of the mean silhouette s(K): smallest K with s(K) >= s(K+1)";
    }
}

typedef struct {
    const hl_ward_merge *merges;
    int64_t n;
} ward_cut_ctx;

static hl_status ward_cut_labels(void *ctx, int k, int32_t *out) {
    ward_cut_ctx *c = ctx;
    return hl_ward_cut(c->merges, c->n, k, out);
}

/* Ward on (a sample of) the records; labels for all records at r->chosen_k. */
static hl_status run_ward(hl_cluster_report *r, const hl_cluster_options *opt, int k_lo, int k_hi,
                          hl_cluster_progress_fn progress, void *user) {
    const hl_csr *X = &r->tfidf.X;
    int64_t n = X->n_rows;
    int64_t m = opt->ward_max > 1 && n > opt->ward_max ? opt->ward_max : n;
    r->ward_n = m;
    r->ward_records = malloc((size_t)m * sizeof *r->ward_records);
    r->merges = malloc((size_t)(m > 1 ? m - 1 : 1) * sizeof *r->merges);
    if (!r->ward_records || !r->merges)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    if (sample_indices(n, m, opt->seed, r->ward_records) != m)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    hl_csr S;
    HL_TRY(csr_select(X, r->ward_records, m, &S));
    double t0 = now_seconds();
    hl_status st = hl_ward_fit_csr(&S, r->merges, progress, user);
    double secs = now_seconds() - t0;
    if (st != HL_OK) {
        hl_csr_free(&S);
        return st;
    }
    if (k_hi > m)
        k_hi = (int)m;
    if (k_lo > k_hi)
        k_lo = k_hi;
    /* SSE per K from the merge heights, for the same picture as k-means. */
    double *sse = malloc((size_t)m * sizeof *sse);
    r->per_k = calloc((size_t)(k_hi - k_lo + 1), sizeof *r->per_k);
    if (!sse || !r->per_k) {
        free(sse);
        hl_csr_free(&S);
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    }
    hl_ward_sse_curve(r->merges, m, sse);
    r->n_k = k_hi - k_lo + 1;
    for (int k = k_lo; k <= k_hi; k++)
        r->per_k[k - k_lo] = (hl_cluster_k){.k = k, .sse = sse[k - 1], .seconds = k == k_lo ? secs : 0};
    free(sse);
    int lo = opt->k_min < 2 ? 2 : opt->k_min; /* a cut into one cluster is not a proposal */
    r->gap_n = hl_ward_propose_gap(r->merges, m, lo, k_hi, NULL);
    ward_cut_ctx wc = {r->merges, m};
    st = score_silhouettes(r, opt, &S, ward_cut_labels, &wc, progress, user);
    if (st != HL_OK) {
        hl_csr_free(&S);
        return st;
    }
    propose(r, opt, k_hi);
    r->chosen_k = opt->force_k > 0 ? opt->force_k : r->proposed_n;
    if (r->chosen_k > m) {
        hl_csr_free(&S);
        return hl_fail(HL_ERR_ARG, "cannot make %d clusters from %lld records", r->chosen_k, (long long)m);
    }
    int32_t *leaf_labels = malloc((size_t)m * sizeof *leaf_labels);
    if (!leaf_labels) {
        hl_csr_free(&S);
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    }
    st = hl_ward_cut(r->merges, m, r->chosen_k, leaf_labels);
    if (st == HL_OK && m == n) {
        memcpy(r->labels, leaf_labels, (size_t)n * sizeof *leaf_labels);
    } else if (st == HL_OK) {
        /* Records outside the sample join the cluster with the nearest centroid. */
        int k = r->chosen_k;
        int64_t d = X->n_cols;
        double *cent = calloc((size_t)k * (size_t)d, sizeof *cent), *cn = calloc((size_t)k, sizeof *cn);
        int64_t *cnt = calloc((size_t)k, sizeof *cnt);
        if (!cent || !cn || !cnt) {
            st = hl_fail(HL_ERR_NOMEM, "out of memory");
        } else {
            for (int64_t i = 0; i < m; i++) {
                double *cc = cent + (size_t)leaf_labels[i] * d;
                cnt[leaf_labels[i]]++;
                for (int64_t p = S.row_ptr[i]; p < S.row_ptr[i + 1]; p++)
                    cc[S.col[p]] += S.val[p];
            }
            for (int c = 0; c < k; c++)
                for (int64_t j = 0; j < d; j++) {
                    cent[(size_t)c * d + j] /= (double)cnt[c];
                    cn[c] += cent[(size_t)c * d + j] * cent[(size_t)c * d + j];
                }
            int64_t s = 0;
            for (int64_t i = 0; i < n; i++) {
                if (s < m && r->ward_records[s] == i) {
                    r->labels[i] = leaf_labels[s++];
                    continue;
                }
                int best = 0;
                double bestd = INFINITY;
                for (int c = 0; c < k; c++) {
                    const double *cc = cent + (size_t)c * d;
                    double dot = 0;
                    for (int64_t p = X->row_ptr[i]; p < X->row_ptr[i + 1]; p++)
                        dot += X->val[p] * cc[X->col[p]];
                    double dist = cn[c] - 2 * dot;
                    if (dist < bestd)
                        bestd = dist, best = c;
                }
                r->labels[i] = best;
            }
        }
        free(cent), free(cn), free(cnt);
    }
    free(leaf_labels);
    hl_csr_free(&S);
    return st;
}

typedef struct {
    const hl_kmeans_result *best; /* [n_k] */
    int k_lo, n_k;
} kmeans_labels_ctx;

static hl_status kmeans_labels(void *ctx, int k, int32_t *out) {
    kmeans_labels_ctx *c = ctx;
    int i = k - c->k_lo;
    if (i < 0 || i >= c->n_k || !c->best[i].labels)
        return hl_fail(HL_ERR_INTERNAL, "no k-means labels for K = %d", k);
    memcpy(out, c->best[i].labels, (size_t)c->best[i].n * sizeof *out);
    return HL_OK;
}

/* k-means reports per restart; the caller sees one phase "kmeans K=<k>" whose done/total
 * run over the whole K range (done = K values finished + fraction of the current one). */
typedef struct {
    hl_cluster_progress_fn fn;
    void *user;
    int i, n_k;
} range_progress;

static int range_forward(void *u, const char *stage, double done, double total) {
    range_progress *p = u;
    double frac = total > 0 ? done / total : 0;
    return p->fn ? p->fn(p->user, stage, (double)p->i + (frac < 1 ? frac : 1), (double)p->n_k) : 0;
}

hl_status hl_cluster_run(const char *const *texts, int64_t n, const hl_cluster_options *opt_in, hl_cluster_report *out,
                         hl_cluster_progress_fn progress, void *user) {
    memset(out, 0, sizeof *out);
    hl_cluster_options opt = opt_in ? *opt_in : hl_cluster_defaults();
    double t_start = now_seconds();
    if (opt.k_min < 1)
        opt.k_min = 1;
    if (opt.k_max < opt.k_min)
        return hl_fail(HL_ERR_ARG, "k-max (%d) is below k-min (%d)", opt.k_max, opt.k_min);
    if (n < 2)
        return hl_fail(HL_ERR_ARG, "need at least 2 records to cluster (have %lld)", (long long)n);
    out->method = opt.method;
    out->n_records = n;
    hl_status st = hl_tfidf_fit_transform(texts, n, &opt.tfidf, &out->tfidf, progress, user);
    if (st != HL_OK)
        return st;
    const hl_csr *X = &out->tfidf.X;
    out->labels = malloc((size_t)n * sizeof *out->labels);
    if (!out->labels) {
        hl_cluster_report_free(out);
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    }
    /* The curve starts one K below k_min so that k_min itself can be the knee. */
    int k_lo = opt.k_min > 1 ? opt.k_min - 1 : 1;
    int k_hi = opt.k_max < n ? opt.k_max : (int)n;
    if (k_lo > k_hi)
        k_lo = k_hi;

    if (opt.method == HL_CLUSTER_WARD) {
        st = run_ward(out, &opt, k_lo, k_hi, progress, user);
    } else {
        int n_k = k_hi - k_lo + 1;
        out->per_k = calloc((size_t)n_k, sizeof *out->per_k);
        hl_kmeans_result *best = calloc((size_t)n_k, sizeof *best);
        if (!out->per_k || !best)
            st = hl_fail(HL_ERR_NOMEM, "out of memory");
        out->n_k = n_k;
        for (int i = 0; i < n_k && st == HL_OK; i++) {
            int k = k_lo + i;
            double t0 = now_seconds();
            hl_cluster_k *pk = &out->per_k[i];
            pk->k = k;
            if (k == 1) {
                pk->sse = hl_kmeans_total_sse(X);
                pk->restarts = 1;
            } else {
                hl_kmeans_options ko = hl_kmeans_defaults(k, opt.seed);
                ko.n_init = opt.n_init > 0 ? opt.n_init : ko.n_init;
                ko.max_iter = opt.max_iter > 0 ? opt.max_iter : ko.max_iter;
                char stage[32];
                snprintf(stage, sizeof stage, "kmeans K=%d", k);
                range_progress rp = {progress, user, i, n_k};
                st = hl_kmeans_fit(X, &ko, &best[i], progress ? range_forward : NULL, &rp, stage);
                if (st != HL_OK)
                    break;
                pk->sse = best[i].sse;
                pk->iterations = best[i].n_iter;
                pk->restarts = best[i].restarts;
            }
            pk->seconds = now_seconds() - t0;
        }
        if (st == HL_OK) {
            kmeans_labels_ctx kc = {best, k_lo, n_k};
            st = score_silhouettes(out, &opt, X, kmeans_labels, &kc, progress, user);
        }
        if (st == HL_OK) {
            propose(out, &opt, k_hi);
            out->chosen_k = opt.force_k > 0 ? opt.force_k : out->proposed_n;
            if (out->chosen_k > n)
                st = hl_fail(HL_ERR_ARG, "cannot make %d clusters from %lld records", out->chosen_k, (long long)n);
        }
        if (st == HL_OK) {
            int ci = out->chosen_k - k_lo;
            if (out->chosen_k == 1) {
                memset(out->labels, 0, (size_t)n * sizeof *out->labels);
            } else if (ci >= 0 && ci < n_k) {
                memcpy(out->labels, best[ci].labels, (size_t)n * sizeof *out->labels);
            } else {
                hl_kmeans_result extra;
                hl_kmeans_options ko = hl_kmeans_defaults(out->chosen_k, opt.seed);
                ko.n_init = opt.n_init > 0 ? opt.n_init : ko.n_init;
                ko.max_iter = opt.max_iter > 0 ? opt.max_iter : ko.max_iter;
                st = hl_kmeans_fit(X, &ko, &extra, progress, user, "kmeans (chosen K)");
                if (st == HL_OK) {
                    memcpy(out->labels, extra.labels, (size_t)n * sizeof *out->labels);
                    hl_kmeans_result_free(&extra);
                }
            }
        }
        for (int i = 0; best && i < n_k; i++)
            hl_kmeans_result_free(&best[i]);
        free(best);
    }
    if (st == HL_OK)
        st = summarise(out, &opt, out->chosen_k);
    if (st != HL_OK) {
        hl_cluster_report_free(out);
        return st;
    }
    out->total_seconds = now_seconds() - t_start;
    return HL_OK;
}

hl_status hl_tfidf_write_mtx(const hl_tfidf *t, const char *path) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (!tmp)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    snprintf(tmp, plen + 32, "%s.tmp-%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        hl_status st = hl_fail(HL_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    const hl_csr *X = &t->X;
    fprintf(f, "%%%%MatrixMarket matrix coordinate real general\n");
    fprintf(f, "%% TF-IDF features written by hydralora (rows: records, columns: terms)\n");
    for (int64_t j = 0; j < t->n_terms; j++)
        fprintf(f, "%%term %lld %s\n", (long long)j + 1, t->terms[j]);
    fprintf(f, "%lld %lld %lld\n", (long long)X->n_rows, (long long)X->n_cols, (long long)X->nnz);
    for (int64_t i = 0; i < X->n_rows; i++)
        for (int64_t p = X->row_ptr[i]; p < X->row_ptr[i + 1]; p++)
            fprintf(f, "%lld %d %.9g\n", (long long)i + 1, X->col[p] + 1, (double)X->val[p]);
    int bad = ferror(f);
    int e = errno;
    if (fflush(f) != 0)
        bad = 1, e = errno;
    if (fsync(fileno(f)) != 0)
        bad = 1, e = errno;
    if (fclose(f) != 0)
        bad = 1, e = errno;
    if (bad) {
        unlink(tmp);
        free(tmp);
        return hl_fail(e == ENOSPC ? HL_ERR_DISK_FULL : HL_ERR_IO, "cannot write %s: %s", path, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        free(tmp);
        return hl_fail(HL_ERR_IO, "cannot rename to %s: %s", path, strerror(e));
    }
    free(tmp);
    return HL_OK;
}
