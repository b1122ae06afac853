/* Choosing N (the number of HydraLoRA heads) from the training texts, and seeing adapters.
 *
 * 1. Texts: hl_text_set_read picks fields from JSON-lines / JSON-array / BBH files.
 * 2. hl_cluster_run: TF-IDF (tfidf.h) -> k-means for K = k_min..k_max (kmeans.h), or Ward's
 *    hierarchy (ward.h) cut at every K -> two criteria side by side: the elbow of SSE(K) and
 *    the mean silhouette s(K) (silhouette.h) -> proposed N (by the chosen criterion),
 *    labels of every record and a summary per cluster (size, top terms, examples).
 * 3. hl_tsne_adapters: t-SNE (tsne.h) of the flattened A and B matrices of exported adapters.
 *
 * Libraries never print: the CLI (cli/cmd_cluster.c, cli/cmd_tsne.c) and the workbench
 * show the reports. Long calls take an hl_cluster_progress_fn that may cancel. */
#ifndef HL_CLUSTER_H
#define HL_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "core/analysis/progress.h"
#include "core/analysis/kmeans.h"
#include "core/analysis/silhouette.h"
#include "core/base/status.h"
#include "core/analysis/tfidf.h"
#include "core/analysis/tsne.h"
#include "core/analysis/ward.h"

/* ---------- texts ---------- */

#define HL_TEXT_MAX_FIELDS 16
#define HL_TEXT_MAX_WARNINGS 20 /* problems kept with detail (all are counted) */

/* One text per usable record. Formats, detected from the bytes:
 *   JSON lines (one object per line; blank lines ignored),
 *   a JSON array of objects,
 *   a JSON object with an "examples" array (BIG-Bench Hard task files),
 *   a single JSON object (one record).
 * The text of a record is its string-valued fields from the list, in list order, joined
 * with "\n". Default list (fields == NULL or ""): instruction,input; a record that has
 * neither uses the first of question (GSM8K), text, prompt that it has. A record with no
 * usable field, a malformed line or a non-object element is skipped and counted; the first
 * few are described in `warnings` with their line numbers. */
typedef struct {
    int64_t n;
    char **text;        /* [n] NUL-terminated UTF-8 */
    int64_t *line;      /* [n] 1-based line where the record starts */
    int64_t *index;     /* [n] 0-based position of the record among all records/lines of the file */
    int64_t n_skipped;
    int n_warnings;     /* <= HL_TEXT_MAX_WARNINGS */
    char warnings[HL_TEXT_MAX_WARNINGS][160];
    const char *format; /* "jsonl", "json-array", "bbh-examples", "json-object" */
} hl_text_set;

hl_status hl_text_set_read(const char *path, const char *fields, hl_text_set *out);
/* Same, from bytes in memory; `label` names the source in messages. Never reads past len. */
hl_status hl_text_set_parse(const char *buf, size_t len, const char *fields, const char *label, hl_text_set *out);
void hl_text_set_free(hl_text_set *t);

/* ---------- clustering ---------- */

typedef enum { HL_CLUSTER_KMEANS = 0, HL_CLUSTER_WARD = 1 } hl_cluster_method;

/* How N is proposed from the K range.
 *   SILHOUETTE (default): the first peak of the mean silhouette s(K), i.e. the smallest K
 *     from k_min up with s(K) >= s(K + 1). On random mixtures of 2-6 sources (GSM8K, HumanEval,
 *     BBH tasks; 100 records each) that k-means can separate, it found the number of sources
 *     in 79% of 47 mixtures, the highest s(K) in 66%, the elbow in 32% (Ward: 80/68/32% of 25;
 *     tests/oracle/test_cluster_oracle.py prints the same rates for its own seeded batch).
 *     A later, higher peak usually splits one source by its templates.
 *   SILHOUETTE_MAX: the K with the highest s(K) (the textbook rule).
 *   ELBOW: the knee of SSE(K) (hl_elbow_index). SSE always falls with K, so its knee tends
 *     to sit early and merges similar sources (two kinds of word problems). */
typedef enum {
    HL_CRITERION_SILHOUETTE = 0,
    HL_CRITERION_SILHOUETTE_MAX = 1,
    HL_CRITERION_ELBOW = 2,
} hl_cluster_criterion;

const char *hl_cluster_criterion_name(hl_cluster_criterion c); /* "silhouette", "silhouette-max", "elbow" */
hl_status hl_cluster_criterion_parse(const char *s, hl_cluster_criterion *out);

#define HL_CLUSTER_MAX_TOP 32
#define HL_CLUSTER_MAX_EXAMPLES 10

typedef struct {
    hl_tfidf_options tfidf;
    hl_cluster_method method;
    int k_min, k_max;  /* range searched for N (default 2..12) */
    int n_init;        /* k-means restarts per K (default 4) */
    int max_iter;      /* k-means iterations per restart (default 300) */
    uint64_t seed;     /* default 41 */
    int force_k;       /* > 0: summarise this many clusters instead of the proposal */
    hl_cluster_criterion criterion; /* default HL_CRITERION_SILHOUETTE */
    int silhouette_max; /* score the silhouette on at most this many records (a seeded random
                         * sample, as scikit-learn's sample_size; Ward: of its leaves). Default 3000. */
    int ward_max;      /* Ward: cluster at most this many records (a seeded random sample; the
                        * others join their nearest cluster centroid). Default 3000 (36 MB). */
    int top_terms;     /* per cluster (default 8, at most HL_CLUSTER_MAX_TOP) */
    int examples;      /* per cluster (default 3, at most HL_CLUSTER_MAX_EXAMPLES) */
} hl_cluster_options;

/* Defaults described above; TF-IDF: scikit-learn's defaults except min_df = 2 and
 * sublinear_tf on (rare words and long records otherwise dominate short-text clusters). */
hl_cluster_options hl_cluster_defaults(void);

typedef struct {
    int k;
    double sse;
    int iterations;    /* k-means: of the best restart; Ward and K = 1: 0 */
    int restarts;
    double seconds;    /* wall time for this K */
    double elbow_score; /* distance below the chord (see hl_elbow_index) */
    double silhouette;  /* mean silhouette of the K clusters (NaN for K = 1) */
} hl_cluster_k;

typedef struct {
    int64_t size;
    int n_top;
    /* Distinctive terms: ranked by (mean weight in the cluster) - (mean weight over all records),
     * so words common everywhere ("the", "is") do not crowd out the ones that name the cluster. */
    int32_t top_term[HL_CLUSTER_MAX_TOP];   /* column in report->tfidf.terms */
    float top_weight[HL_CLUSTER_MAX_TOP];   /* mean TF-IDF weight in the cluster */
    int n_examples;
    int64_t example[HL_CLUSTER_MAX_EXAMPLES]; /* record numbers (into the text set), closest to the centroid first */
} hl_cluster_summary;

typedef struct {
    hl_cluster_method method;
    hl_tfidf tfidf;          /* features and vocabulary (terms for the summaries) */
    int64_t n_records;
    int n_k;
    hl_cluster_k *per_k;     /* [n_k], ascending K. Starts at k_min - 1 (K = 1 is exact)
                              * so that k_min itself can be proposed. */
    int proposed_n;          /* by opt->criterion: one of the three below */
    const char *proposal_method;
    hl_cluster_criterion criterion;
    int elbow_n;             /* elbow of SSE(K) (see hl_elbow_index); for Ward, SSE(K) of the dendrogram's cuts */
    int silhouette_n;        /* first peak of s(K) (0 when no K has a silhouette) */
    int silhouette_best_n;   /* highest s(K) (0 likewise) */
    int64_t silhouette_records; /* records the silhouette was measured on (<= silhouette_max) */
    int gap_n;               /* Ward only: the cut at the largest gap in merge heights (hl_ward_propose_gap).
                              * Reported as a second opinion: the top merges of a Ward tree are always
                              * tall, so the largest gap often sits at K = 2 even with more clear groups. */
    int chosen_k;            /* force_k if given, else proposed_n */
    int32_t *labels;         /* [n_records] cluster of each record at chosen_k (clusters by size) */
    hl_cluster_summary *clusters; /* [chosen_k], largest first */
    /* Ward only */
    int64_t ward_n;          /* leaves of the dendrogram (<= ward_max) */
    int64_t *ward_records;   /* [ward_n] record number of each leaf */
    hl_ward_merge *merges;   /* [ward_n - 1] */
    double total_seconds;
} hl_cluster_report;

hl_status hl_cluster_run(const char *const *texts, int64_t n, const hl_cluster_options *opt, hl_cluster_report *out,
                         hl_cluster_progress_fn progress, void *user);
void hl_cluster_report_free(hl_cluster_report *r);

/* Write the TF-IDF matrix as MatrixMarket coordinate text (1-based, "%.9g" values, so the
 * floats round-trip exactly), with the vocabulary as "%term <column> <term>" comment lines
 * after the banner. Written to a temporary name, then renamed. */
hl_status hl_tfidf_write_mtx(const hl_tfidf *t, const char *path);

/* ---------- t-SNE of adapters ---------- */

typedef enum { HL_TSNE_WHAT_A = 1, HL_TSNE_WHAT_B = 2, HL_TSNE_WHAT_ALL = 3 } hl_tsne_what;

/* One point: one matrix of one adapter. */
typedef struct {
    int adapter;        /* index into the adapter list */
    int layer;
    char module[24];    /* "gate_proj", "q_proj", ... */
    char kind;          /* 'A' or 'B' */
    int head;           /* B head index; -1 for A and for a plain LoRA's lora_B */
    int group;          /* embedding it belongs to (index into groups) */
    float x, y;
} hl_tsne_point;

/* Matrices can only share an embedding if their flattened lengths agree: points are
 * grouped by (kind, rows, cols) and each group is embedded on its own. */
typedef struct {
    char name[48];      /* "A 8x4096", "B 11008x8" */
    char kind;
    int64_t rows, cols;
    int64_t n_points;
    double kl;          /* final KL divergence */
    int iterations;
} hl_tsne_group;

typedef struct {
    int n_points;
    hl_tsne_point *points;
    int n_groups;
    hl_tsne_group *groups;
    int n_adapters;
    char **adapter_names; /* [n_adapters] as given */
} hl_tsne_report;

/* dirs[i]: an adapter directory holding adapter_model.safetensors (or the .safetensors
 * file itself). Groups with fewer than 3 points are left out (t-SNE needs neighbours);
 * groups above 5,000 points are refused (exact t-SNE is O(n^2)). */
hl_status hl_tsne_adapters(const char *const *dirs, int n_dirs, hl_tsne_what what, const hl_tsne_options *opt,
                           hl_tsne_report *out, hl_cluster_progress_fn progress, void *user);
void hl_tsne_report_free(hl_tsne_report *r);

#endif
