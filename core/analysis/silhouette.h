/* Mean silhouette coefficient (Rousseeuw 1987) of clusterings of sparse rows: the second
 * way to choose N next to the elbow of SSE(K).
 *
 * For a point i in cluster A: a(i) = mean Euclidean distance to the other members of A,
 * b(i) = the smallest mean distance to the members of another cluster, and
 * s(i) = (b - a) / max(a, b), or 0 when A holds only i. The score of a clustering is the mean
 * of s(i) over the points (-1..1; higher = tighter, better separated clusters). This is
 * scikit-learn's silhouette_score(X, labels) with the default metric (Euclidean, not squared;
 * distances as sqrt(max(0, |x|^2 + |y|^2 - 2 x.y)) like its euclidean_distances).
 *
 * Cost: O(m * nnz) for the distances (each row's distances to all m rows are computed once
 * and shared by every clustering) plus O(m^2) per clustering; memory O(d + m) per thread, no
 * m x m matrix. Callers sample m rows of a large set (scikit-learn's sample_size). */
#ifndef HL_SILHOUETTE_H
#define HL_SILHOUETTE_H

#include <stdint.h>

#include "core/analysis/progress.h"
#include "core/base/status.h"
#include "core/analysis/tfidf.h"

/* Scores the n_sets clusterings of the m rows rows[0..m) of X (rows NULL: the first m rows).
 * labels[s][i] in 0..k[s]-1 is the cluster of rows[i] in clustering s. out[s] gets the mean
 * silhouette, NaN when it is undefined (fewer than 2 clusters in use, or as many
 * clusters as rows: scikit-learn refuses those).
 * progress (may be NULL) sees stage "silhouette" with done/total in rows; nonzero cancels
 * (HL_ERR_CANCELLED). */
hl_status hl_silhouette_scores(const hl_csr *X, const int64_t *rows, int64_t m, const int32_t *const *labels,
                               const int *k, int n_sets, double *out, hl_cluster_progress_fn progress, void *user);

#endif
