/* What a training job reports while it runs: its state, progress, plot histories, routing
 * statistics and events, gathered in one hl_snapshot. The job (core/train/loop.c) fills it;
 * the engine thread (core/engine/engine.h) publishes immutable copies to the CLI and the workbench. */
#ifndef HL_TRAIN_STATUS_H
#define HL_TRAIN_STATUS_H

#include <stdint.h>

#include "core/adapter/adapter.h"
#include "core/train/config.h"

typedef enum {
    HL_JOB_IDLE = 0,  /* no job started yet */
    HL_JOB_LOADING,   /* loading model, tokenizer, data; planning memory; first eval */
    HL_JOB_RUNNING,   /* training */
    HL_JOB_PAUSED,    /* waiting for hl_engine_resume (or stop) */
    HL_JOB_SAVING,    /* writing a checkpoint */
    HL_JOB_STOPPED,   /* stopped on request after a checkpoint (resumable) */
    HL_JOB_FINISHED,  /* all steps done, final checkpoint and adapter/ written */
    HL_JOB_FAILED,    /* error: see hl_snapshot.error (e.g. NaN loss at step k, disk full) */
} hl_job_state;

const char *hl_job_state_name(hl_job_state s); /* "idle", "loading", ... */
static inline int hl_job_state_is_final(hl_job_state s) {
    return s == HL_JOB_STOPPED || s == HL_JOB_FINISHED || s == HL_JOB_FAILED;
}

/* How hl_engine_start treats the run directory. */
typedef enum {
    HL_START_NEW = 0,    /* fresh run; fails if the run directory already holds checkpoints */
    HL_START_OVERWRITE,  /* fresh run; deletes earlier checkpoints/metrics of that directory */
    HL_START_RESUME,     /* continue from the newest complete checkpoint of the run directory
                            (cfg is normally hl_engine_load_run_config's result, maybe with
                            overrides; fields that change the math must equal the saved ones) */
} hl_start_mode;

/* ---- bounded, downsampled history (for plots) ----
 * A series keeps at most HL_SERIES_MAX buckets. Each bucket covers `width` consecutive
 * samples (by step) and keeps min/max/mean/last; when the buffer is full, neighbouring
 * buckets are merged pairwise and the width doubles. So a 100,000-step run costs the same
 * to copy as a 1,000-step one, and min/max show spikes that averaging would hide. */
#define HL_SERIES_MAX 512

typedef struct {
    int64_t step_first, step_last; /* steps covered (inclusive) */
    float min, max, mean, last;
    int32_t count;                 /* samples in the bucket */
} hl_series_bucket;

typedef struct {
    int n;         /* buckets in use, oldest first */
    int64_t width; /* samples per full bucket (1, 2, 4, ...) */
    hl_series_bucket b[HL_SERIES_MAX];
} hl_series;

void hl_series_init(hl_series *s);
void hl_series_add(hl_series *s, int64_t step, float value); /* non-finite values are skipped */

/* ---- routing statistics (HydraLoRA routers) ----
 * For every layer × adapted module × expert (head): the mean router weight ω̄ over the
 * measured tokens, and the share of tokens whose top-1 head it is; per layer × module the
 * mean per-token router entropy (nats; max ln N). Measured over the non-pad tokens of the
 * last optimizer step (source 0) and, at eval intervals, over the validation set (source 1).
 * Variants without a router (LoRA, uniform) report ω = 1/N and have n_experts as configured. */
#define HL_ROUTING_HIST 64
#define HL_ROUTING_PROBES 8

typedef struct {
    int n_layers, n_modules, n_experts;   /* all 0 when there is nothing yet */
    int module_target[HL_TARGET_COUNT];   /* target index 0..6 of module m (hl_target_name) */
    int64_t step;                         /* when measured */
    int source;                           /* 0 = training step, 1 = validation set */
    const float *weight_mean;             /* [n_layers][n_modules][n_experts] */
    const float *top1_share;              /* [n_layers][n_modules][n_experts] */
    const float *entropy;                 /* [n_layers][n_modules] */
    /* A short history for the drill-down (oldest first), one entry per eval (plus the
     * latest training step): hist_len <= HL_ROUTING_HIST. */
    int hist_len;
    const int64_t *hist_step;             /* [hist_len] */
    const float *hist_weight_mean;        /* [hist_len][n_layers][n_modules][n_experts] */
    const float *hist_entropy;            /* [hist_len][n_layers][n_modules] */
    /* Probe sets (run config probe_data), scored at every eval along with the history above: the
     * first probe_n of them, named by their file names; probe_load[t][p][m][e] is the mean router
     * weight of head e on module m, averaged over the layers, on probe p at history entry t (NaN
     * before the probe was first measured). metrics.jsonl has all of them in full ("probe" events). */
    int probe_n;
    char probe_name[HL_ROUTING_PROBES][64];
    const float *probe_load;              /* [hist_len][probe_n][n_modules][n_experts] */
} hl_snapshot_routing;

/* Index helpers. */
static inline int hl_routing_index(const hl_snapshot_routing *r, int layer, int module, int expert) {
    return (layer * r->n_modules + module) * r->n_experts + expert;
}

/* ---- event log (the last few notable things, for a status line) ---- */
#define HL_ENGINE_EVENTS 16
typedef struct {
    uint64_t seq;  /* increasing; 0 = empty slot */
    int64_t step;
    int is_error;
    char text[200]; /* "checkpoint step-200 saved", "eval loss 2.3141 at step 200", ... */
} hl_engine_event;

/* ---- the snapshot ---- */
typedef struct {
    uint64_t version;         /* increases with every publication */
    hl_job_state state;
    char error[512];          /* FAILED: what went wrong (e.g. "loss is nan at step 37 ...") */
    char run_dir[4096];
    hl_run_config cfg;        /* the config of the job (zeroed before the first start) */

    /* progress */
    int64_t step;             /* optimizer steps done */
    int64_t total_steps;
    double epoch;             /* fractional epochs done (records consumed / training records) */
    int64_t n_train, n_val;   /* records */
    int64_t tokens_seen;      /* non-pad tokens through forward/backward so far */
    int64_t trainable_params;

    /* latest values (NaN until known) */
    double loss;              /* mean loss of the last optimizer step */
    double loss_smooth;       /* EMA (0.9) of loss, for display */
    double eval_loss;         /* latest eval loss (token-weighted mean over the validation set) */
    int64_t eval_step;        /* step at which eval_loss was measured (-1 = none yet) */
    double eval_loss_first;   /* eval loss before training (step 0 of a new run) */
    double lr;                /* learning rate used by the last step */
    double grad_norm;         /* global gradient norm before clipping */
    double tokens_per_s;      /* over the last steps (EMA) */
    double padding_share;     /* of the tokens the last step computed, the share that was padding (0..1) */
    double elapsed_s;         /* training wall time of this job (excludes loading) */
    double eta_s;             /* estimated seconds to finish (NaN if unknown) */
    int64_t mem_bytes;        /* resident memory of the process */
    int64_t mem_planned;      /* bytes the trainer planned (activations + slabs), 0 if unknown */
    int64_t last_checkpoint_step; /* -1 = none */

    /* history (for plots) */
    hl_series loss_hist;      /* per step */
    hl_series eval_hist;      /* per eval */
    hl_series lr_hist;
    hl_series grad_norm_hist;
    hl_series tokens_per_s_hist;

    hl_snapshot_routing routing; /* arrays live inside the snapshot's allocation */

    hl_engine_event events[HL_ENGINE_EVENTS]; /* ring; sort by seq */
    uint64_t last_event_seq;
} hl_snapshot;

#endif
