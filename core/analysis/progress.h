/* The progress callback shared by the clustering modules (tfidf, kmeans, ward, tsne, cluster).
 * Random numbers come from core/base/rng.h (stream HL_RNG_STREAM_USER), so a run with the same
 * seed gives the same result on every machine. */
#ifndef HL_CLUSTER_BASE_H
#define HL_CLUSTER_BASE_H

/* Progress report from a long computation. `stage` names the phase ("tfidf", "kmeans K=4",
 * "ward distances", "tsne"), done/total count units of work in that stage (total <= 0:
 * unknown). Return nonzero to cancel: the running function then returns HL_ERR_CANCELLED.
 * Called from the thread that called the library function, never from a worker thread. */
typedef int (*hl_cluster_progress_fn)(void *user, const char *stage, double done, double total);

#endif
