/* Agglomerative clustering with Ward linkage (exact), a dendrogram and a proposed cut.
 *
 * Algorithm: nearest-neighbour chain with the Lance-Williams update for Ward on a condensed
 * matrix of squared Euclidean distances (n(n-1)/2 doubles: 3,000 points = 36 MB, 10,000
 * points = 400 MB; callers cap n, see hl_ward_memory_bytes). O(n^2) time after the O(n^2 nnz)
 * distance pass. Distances between sparse rows use |a|^2 + |b|^2 - 2 a.b, and are recomputed
 * exactly as sum (a_j - b_j)^2 over the union of non-zeros when cancellation could have cost
 * digits, so identical rows are at distance exactly 0.
 *
 * Conventions follow scipy.cluster.hierarchy.linkage(method='ward') (which scikit-learn's
 * AgglomerativeClustering(linkage='ward') uses): merges are sorted by height (stable);
 * merge m creates cluster id n + m; the two ids of a merge are in increasing order; the
 * height of merging clusters A and B is sqrt(2 |A||B| / (|A|+|B|)) * ||mean_A - mean_B||,
 * which is the Euclidean distance for two single points. The increase in within-cluster
 * sum of squares caused by a merge is height^2 / 2, so cutting the tree after the first
 * n - k merges leaves SSE(k) = sum of those height^2 / 2. */
#ifndef HL_WARD_H
#define HL_WARD_H

#include <stdint.h>

#include "core/analysis/progress.h"
#include "core/base/status.h"
#include "core/analysis/tfidf.h"

typedef struct {
    int32_t a, b;   /* cluster ids: < n leaves, n + m the cluster made by merge m; a < b */
    double height;
    int32_t size;   /* points in the new cluster */
} hl_ward_merge;

/* Bytes the distance matrix takes for n points. */
double hl_ward_memory_bytes(int64_t n);

/* merges[n - 1] for the rows of X (sparse) or of a dense row-major [n, d] float matrix. */
hl_status hl_ward_fit_csr(const hl_csr *X, hl_ward_merge *merges, hl_cluster_progress_fn progress, void *user);
hl_status hl_ward_fit_dense(const float *X, int64_t n, int64_t d, hl_ward_merge *merges,
                            hl_cluster_progress_fn progress, void *user);

/* Labels 0..k-1 after cutting the tree into k clusters (the first n - k merges performed);
 * clusters are numbered in order of their first member. */
hl_status hl_ward_cut(const hl_ward_merge *merges, int64_t n, int k, int32_t *labels);

/* Within-cluster SSE when the tree is cut into k clusters, for k = 1..n: sse[k-1]. */
void hl_ward_sse_curve(const hl_ward_merge *merges, int64_t n, double *sse);

/* Proposed number of clusters in [k_min, k_max] (clamped to [1, n]).
 * Largest gap: the k whose cut sits in the largest jump between consecutive merge heights,
 * i.e. maximises height[n-k] - height[n-k-1] (the merge that would reduce k clusters to
 * k-1 costs much more than every merge made so far). gaps[k - k_min] gets each gap (may be NULL). */
int hl_ward_propose_gap(const hl_ward_merge *merges, int64_t n, int k_min, int k_max, double *gaps);

#endif
