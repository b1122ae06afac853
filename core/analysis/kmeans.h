/* k-means (Euclidean, Lloyd) on sparse rows with dense centroids, and an elbow detector.
 *
 * Seeding: greedy k-means++ as in scikit-learn (first centre uniform; then for each new
 * centre 2 + floor(ln k) candidates drawn with probability proportional to the squared
 * distance to the nearest chosen centre; keep the candidate that lowers the total most).
 * Iterations: Lloyd's algorithm. The assignment step uses Hamerly's bounds to skip points
 * whose nearest centre provably did not change, so each iteration gives the same
 * assignment as plain Lloyd (up to floating-point ties) at a fraction of the cost.
 * Stopping: labels unchanged, or total squared centre shift <= tol * mean column variance
 * (scikit-learn's rule), or max_iter. A cluster that becomes empty is re-seeded with the
 * point farthest from its centre. Several restarts (n_init) keep the lowest SSE.
 * SSE (inertia) = sum over points of the squared distance to the assigned centre. */
#ifndef HL_KMEANS_H
#define HL_KMEANS_H

#include <stdint.h>

#include "core/analysis/progress.h"
#include "core/base/status.h"
#include "core/analysis/tfidf.h"

typedef struct {
    int k;
    int n_init;     /* restarts, default 4 */
    int max_iter;   /* per restart, default 300 */
    double tol;     /* default 1e-4 (relative, see above) */
    uint64_t seed;
} hl_kmeans_options;

hl_kmeans_options hl_kmeans_defaults(int k, uint64_t seed);

typedef struct {
    int k;
    int64_t n, d;
    double sse;      /* best over restarts */
    int n_iter;      /* iterations of the best restart */
    int restarts;    /* restarts run */
    int32_t *labels; /* [n] in 0..k-1 */
    float *centers;  /* [k, d] */
    int32_t *sizes;  /* [k] */
} hl_kmeans_result;

/* Cluster the rows of X. `progress` (may be NULL) is called between iterations with
 * stage `stage_name` (e.g. "kmeans K=4"). */
hl_status hl_kmeans_fit(const hl_csr *X, const hl_kmeans_options *opt, hl_kmeans_result *out,
                        hl_cluster_progress_fn progress, void *user, const char *stage_name);
void hl_kmeans_result_free(hl_kmeans_result *r);

/* SSE of X around its column mean (= k-means with K = 1, exact). */
double hl_kmeans_total_sse(const hl_csr *X);

/* Elbow ("knee") of a decreasing curve y(x), x increasing, n >= 3 points.
 * Method: Kneedle's difference curve, i.e. the point farthest below the chord from the
 * first to the last point after scaling x and y to [0, 1]. Before that, y is replaced by
 * its running minimum (a bigger K can always do at least as well, so a rise is a bad local
 * optimum, not signal). Returns the index of the knee (never the first or last point
 * unless n < 3 or the curve is flat); scores[i] (may be NULL) gets each point's distance
 * below the chord. */
int hl_elbow_index(const double *x, const double *y, int n, double *scores);

#endif
