/* Routing statistics by source: which B heads an adapter's routers choose on each data file, or
 * on each value of a source field ("source", "task", "category") inside one file — the question
 * whether the heads split a mixture (docs/method.md §9). Used by `hydralora score --routing`,
 * the Experts screen's "by source" view and the trainer's probe sets (run config probe_data).
 *
 * What is measured: for every layer × adapted module, over EVERY non-padding position of every
 * scored sequence (prompt and answer tokens alike: the router sees them all), the sums of the
 * backend's eval accumulator (core/backend/backend.h, hl_session_routing): Σ ω_i, the count of
 * positions whose arg-max head is i, Σ entropy. The derived figures are:
 *   mean weight ω̄_i = Σ ω_i / n            top-1 share = #(argmax = i) / n (lowest index on ties)
 *   mean entropy   = Σ_t (−Σ_i ω_ti ln ω_ti) / n   (nats, max ln N)
 *   load CV        = std_i(ω̄_i) / mean_i(ω̄_i)      (population std over the N heads; 0 = even load,
 *                                                     sqrt(N−1) = every position on one head)
 * Sources are scored one after the other (a micro-batch never mixes two), so each source's
 * statistics are exactly the accumulator's sums over its own positions. */
#ifndef HL_TRAIN_ROUTING_H
#define HL_TRAIN_ROUTING_H

#include <stdint.h>

#include "core/adapter/adapter.h"
#include "core/backend/backend.h"
#include "core/base/status.h"
#include "core/text/batch.h"
#include "core/text/records.h"
#include "core/train/config.h"

/* Coefficient of variation of the mean router weight across the N heads of (layer, target)
 * (0 without positions). */
double hl_routing_load_cv(const hl_routing_stats *st, int layer, int target);

typedef struct {
    char file[1024];        /* the data file */
    char value[256];        /* the source field's value; "" when the whole file is the source */
    int64_t records;        /* sequences scored */
    int64_t positions;      /* non-padding positions (router inputs per module) */
    int64_t targets;        /* loss targets */
    double loss;            /* Σ CE / Σ targets (NaN without targets) */
    hl_routing_stats stats; /* sums over this source's positions */
} hl_routing_source;

typedef struct {
    int n_layers, N;
    hl_variant variant;
    int n_modules, module_target[HL_TARGET_COUNT]; /* adapted modules, in target order */
    int n_sources;
    hl_routing_source *src;
    hl_routing_stats all;                          /* pooled over every source */
    int64_t n_skipped;                             /* records without a target after truncation */
} hl_routing_report;

void hl_routing_report_free(hl_routing_report *rep);
/* Sizes and modules from an adapter layout, n_sources zeroed sources with statistics allocated. */
hl_status hl_routing_report_init(hl_routing_report *rep, const hl_adapters *layout, int n_sources);

/* Progress (stage, done, total); nonzero cancels with HL_ERR_CANCELLED. Called on the caller's thread. */
typedef int (*hl_routing_progress_fn)(void *user, const char *stage, double done, double total);

typedef struct {
    const char *model;        /* base model (required) */
    const char *adapter;      /* exported adapter directory (required: a router is what is measured) */
    const char *tokenizer;    /* NULL: the model's (records only) */
    const char *device;       /* NULL: auto */
    int threads;              /* <= 0: all cores */
    int micro_batch;          /* <= 0: by a 4096-token budget (ids) / 4 (records) */
    int max_len;              /* records: truncate to this many tokens (<= 0: 1024, clamped to the context) */
    const char *const *files; /* data files */
    int n_files;
    int ids;                  /* 1: files hold token ids, one sequence per line (hydralora score --ids) */
    const char *source_field; /* records: one source per value of this field in each file; NULL/"": per file */
    const hl_field_map *map;  /* records: field map (NULL: detect) */
} hl_routing_request;

/* Load, score and gather. Errors (clear, with the file and line): a missing file, a malformed
 * line or element (statistics must cover the whole file), a record without the source field, an
 * adapter without a router (LoRA, uniform gate: every position weighs the heads equally). */
hl_status hl_routing_by_source(const hl_routing_request *rq, hl_routing_report *rep, hl_routing_progress_fn progress,
                               void *user);

/* The engine of it, shared with the trainer's probe sets: score examples ex on session s, source by
 * source (group[i] in [0, n_sources) for example i), with packed micro-batches from pk when pk
 * is not NULL (whole examples in order, as the trainer packs them), else padded ones from mb
 * (capacity: rows and the longest example). Fills out[g].records/positions/targets/loss/stats (stats initialised
 * by the caller; REPLACED). The session's eval accumulator is reset and left off. */
hl_status hl_routing_eval_groups(hl_session *s, hl_microbatch *mb, hl_packed *pk, const hl_examples *ex, const int *group,
                                 int n_sources, hl_routing_source *out, hl_routing_progress_fn progress, void *user);

/* JSON of one source (one line, no newline): {"file","source","records","positions","targets","loss",
 * "modules":[...],"n_layers","n_experts","weight_mean":[l][m][e],"top1_share":[l][m][e],
 * "entropy":[l][m],"load_cv":[l][m]}. Returns a malloc'd string or NULL (out of memory). */
char *hl_routing_source_json(const hl_routing_report *rep, const hl_routing_source *src);

/* CSV of the whole report (malloc'd, NULL when out of memory): a header line, then one row per
 * source x module x layer x head (the pooled "all" rows last, source "all"):
 *   source,file,records,loss,module,layer,expert,mean_weight,top1_share,entropy,load_cv,
 *   mean_weight_minus_all
 * entropy and load_cv belong to (module, layer) and repeat on its heads' rows. Text fields are
 * quoted (RFC 4180) when they hold a comma, a quote or a line break. */
char *hl_routing_report_csv(const hl_routing_report *rep);

/* Mean over layers of the mean weight of head e for module m (index into module_target); m < 0: also
 * averaged over the modules. */
double hl_routing_layer_mean(const hl_routing_report *rep, const hl_routing_stats *st, int m, int e);

#endif
