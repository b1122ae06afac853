/* Exact t-SNE in 2-D, following scikit-learn's TSNE(method='exact', init='pca') and the
 * reference implementation (van der Maaten):
 *
 *   distances  squared Euclidean between the input rows (computed in double after centring,
 *              through the Gram matrix, so nearly identical high-dimensional rows keep their
 *              small distances).
 *   P          conditional Gaussians, each row's precision found by binary search so that its
 *              entropy equals ln(perplexity) (100 steps, tolerance 1e-5); then symmetrised,
 *              P = (P + P^T) / sum, floored at DBL_EPSILON.
 *   init       PCA: the top-2 principal components (scaled scores), divided by the standard
 *              deviation of the first and multiplied by 1e-4; or random N(0, 1e-4^2).
 *   Q          Student t with one degree of freedom.
 *   descent    gradient 4 * sum_j (p_ij - q_ij) (y_i - y_j) / (1 + |y_i - y_j|^2); per-parameter
 *              gains (+0.2 when the gradient's sign flips against the update, *0.8 otherwise,
 *              floor 0.01); momentum 0.5 with P multiplied by early_exaggeration (12) for the
 *              first 250 iterations, then momentum 0.8 up to n_iter (1000); learning rate
 *              "auto" = max(n / early_exaggeration / 4, 50). Every 50 iterations the KL
 *              divergence is checked: stop when the gradient norm is below 1e-7 or there was
 *              no progress for 300 iterations (250 in the first phase).
 * Cost: O(n^2) memory and O(n^2) per iteration; n up to a few thousand. */
#ifndef HL_TSNE_H
#define HL_TSNE_H

#include <stdint.h>

#include "core/analysis/progress.h"
#include "core/base/status.h"

typedef struct {
    double perplexity;          /* default 30; clamped to (n - 1) / 3 for small n */
    int n_iter;                 /* default 1000 (>= 250) */
    double early_exaggeration;  /* default 12 */
    double learning_rate;       /* <= 0: auto */
    int init_pca;               /* default 1; 0 = random (uses seed) */
    uint64_t seed;
} hl_tsne_options;

hl_tsne_options hl_tsne_defaults(void);

typedef struct {
    double kl;        /* KL divergence at the end */
    int iterations;   /* iterations run */
    double perplexity; /* perplexity actually used */
} hl_tsne_info;

/* Embed the rows of X [n, d] (row-major floats) into Y [n, 2]. info may be NULL. */
hl_status hl_tsne_run(const float *X, int64_t n, int64_t d, const hl_tsne_options *opt, float *Y, hl_tsne_info *info,
                      hl_cluster_progress_fn progress, void *user);

/* Same from a centred Gram matrix G [n, n] (G_ij = <x_i - m, x_j - m>, double), which is
 * all t-SNE needs: distances and PCA both come from it. G is not modified. */
hl_status hl_tsne_run_gram(const double *G, int64_t n, const hl_tsne_options *opt, float *Y, hl_tsne_info *info,
                           hl_cluster_progress_fn progress, void *user);

/* Top-2 principal component scores Y [n, 2] (double) from a centred Gram matrix: subspace
 * iteration (10 vectors, seeded start) with Rayleigh-Ritz; Y[:, c] = u_c * sqrt(lambda_c),
 * signs as scikit-learn's svd_flip (largest |u_c| entry positive). Used for the PCA start. */
hl_status hl_tsne_pca2(const double *G, int64_t n, uint64_t seed, double *Y);

/* The centred Gram matrix of X [n, d] into G [n, n] (double accumulation, blocked, OpenMP). */
hl_status hl_tsne_gram(const float *X, int64_t n, int64_t d, double *G);

#endif
