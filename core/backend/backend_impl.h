/* PRIVATE to core/backend/: what an implementation provides. Callers include
 * core/backend/backend.h only (tests/check_layers.sh enforces it).
 *
 * Each backend fills one const table. backend.c owns the registry (cpu always; cuda when built
 * with HL_HAVE_CUDA), parses names, and dispatches every public call through the table after
 * checking arguments that do not depend on the device (NULL handles, B/T within the session's
 * capacity, slab ranges within n_params, a TRAIN call on an eval session...), so an
 * implementation may assume valid arguments. Implementations never print or exit; they return
 * hl_status with hl_fail() details. */
#ifndef HL_BACKEND_IMPL_H
#define HL_BACKEND_IMPL_H

#include "core/backend/backend.h"

typedef struct hl_backend_ops hl_backend_ops;

struct hl_backend {
    const hl_backend_ops *ops;
    char name[32];  /* canonical name ("cpu", "cuda:1") */
    int device;     /* device index for GPUs, 0 for cpu */
    int threads;    /* set by hl_backend_set_threads (<= 0: all cores) */
    void *impl;     /* the implementation's per-backend state */
};

struct hl_session {
    const hl_backend_ops *ops;
    hl_backend *be;
    const hl_model *model;
    hl_adapters layout;   /* adapter layout; its slab pointers belong to the implementation (CPU: the real
                             slabs; GPU: NULL or host staging) — callers go through read/write_slab */
    int has_adapters;
    int batch, seq;
    unsigned flags;
    hl_compute compute; /* hl_session_set_compute (backend.c stores it after the backend accepted it) */
    hl_mem_plan plan;
    void *impl;
};

struct hl_decoder {
    const hl_backend_ops *ops;
    hl_backend *be;
    const hl_model *model;
    int slots, max_seq, max_rows;
    hl_compute compute;
    void *impl;
};

struct hl_backend_ops {
    const char *kind; /* "cpu", "cuda" */

    /* Backend: `index` is N of "cuda:N" (0 for cpu). probe() says whether index exists and is
     * usable (HL_OK) or why not (HL_ERR_NOT_FOUND + message); count() how many devices. */
    int (*count)(void);
    hl_status (*probe)(int index);
    hl_status (*open)(hl_backend *be);
    void (*close)(hl_backend *be);
    hl_status (*get_info)(hl_backend *be, hl_backend_info *info);
    hl_status (*set_threads)(hl_backend *be, int n);
    /* Compute modes (optional: NULL = the backend has one arithmetic; set_compute then accepts
     * every mode and compute_path reports nothing more than get_info's `compute`). */
    hl_status (*compute_path)(hl_backend *be, hl_compute c, const hl_llama_config *cfg, hl_dtype weight_dtype,
                              char *buf, size_t size);
    hl_status (*plan)(hl_backend *be, const hl_llama_config *cfg, hl_dtype weight_dtype, const hl_adapter_config *acfg,
                      int batch, int seq, unsigned flags, hl_mem_plan *plan);

    /* Session: backend.c fills the common fields (incl. `layout` via hl_adapters_create with the seed,
     * host slabs initialised) before calling session_init; the implementation takes the initial
     * parameters from layout.params (and may free/replace the host slabs), allocates everything,
     * sets s->plan. session_free releases only what session_init made. */
    hl_status (*session_init)(hl_session *s);
    void (*session_free)(hl_session *s);
    hl_status (*train_microbatch)(hl_session *s, const hl_batch *b, float grad_scale, float *loss, int64_t *n_targets);
    hl_status (*zero_grad)(hl_session *s);
    hl_status (*eval)(hl_session *s, const hl_batch *b, float *loss, int64_t *n_targets, double *seq_loss_sum,
                      int64_t *seq_count);
    hl_status (*logits)(hl_session *s, const hl_batch *b, float *logits);
    hl_status (*reduce_grads)(hl_session *s, struct hl_comm *comm);
    hl_status (*optim_step)(hl_session *s, int64_t t, float lr, const hl_optim_config *oc, double *grad_norm);
    /* Routing statistics: the hook every "which head fires" feature rests on (training snapshots,
     * `score --routing`, the Experts screen's by-source view, probe sets; core/train/routing.h).
     * A session with a router keeps two accumulators in the layout of hl_routing_stats:
     *   HL_STATS_TRAIN: added to by train_microbatch when s->flags has HL_SESSION_STATS;
     *   HL_STATS_EVAL:  added to by eval while collect_eval_stats(s, 1) is in effect (off at creation).
     * For each adapted (layer, target) and each NON-PADDING position m of the batch (the positions of
     * its examples; padding never counts), with ω = the router softmax in f32 as the forward uses it
     * (the router reads x itself, never the dropped-out adapter input):
     *   tokens[l*7+t] += 1;  weight_sum[(l*7+t)*N + i] += ω_i;  top1[(l*7+t)*N + argmax_i ω_i] += 1
     *   (ties: the lowest index);  entropy_sum[l*7+t] += −Σ_{i: ω_i > 0} ω_i ln ω_i.
     * Sums in f64 (a GPU may reduce per batch in f32 and add the batch totals in f64, as long as the
     * result agrees with the CPU within 1e-6 relative on the oracle's cases). routing() copies an
     * accumulator into dst (same n_layers and N: backend.c checks), routing_reset() zeroes it. Both
     * are called between batches only, so a backend may keep the sums on the device and copy them
     * out here. Without a router (backend.c refuses the calls) nothing is gathered. */
    hl_status (*routing)(hl_session *s, hl_stats_which which, hl_routing_stats *dst);
    hl_status (*routing_reset)(hl_session *s, hl_stats_which which);
    void (*collect_eval_stats)(hl_session *s, int on);
    hl_status (*read_slab)(hl_session *s, hl_slab which, size_t offset, size_t n, float *dst);
    hl_status (*write_slab)(hl_session *s, hl_slab which, size_t offset, size_t n, const float *src);
    uint64_t (*dropout_step)(const hl_session *s);
    void (*set_dropout_step)(hl_session *s, uint64_t step);
    hl_status (*session_set_compute)(hl_session *s, hl_compute c); /* optional */

    /* Decoder: backend.c fills the common fields first. */
    hl_status (*decoder_init)(hl_decoder *d, const hl_adapters *ad);
    void (*decoder_free)(hl_decoder *d);
    size_t (*decoder_bytes)(const hl_decoder *d);
    hl_status (*decoder_forward)(hl_decoder *d, const int32_t *tokens, int B, int Tq, const int *pos0, const int *slot,
                                 float *logits, int all_logits, int32_t *argmax);
    hl_status (*decoder_share_prefix)(hl_decoder *d, int dst_slot, int src_slot, int n);
    /* Optional (NULL: the whole cache is in use, peak = pool = decoder_bytes). */
    void (*decoder_cache_use)(const hl_decoder *d, size_t *peak_bytes, size_t *pool_bytes);
    /* Optional (NULL: backend.c runs the sequences one by one through decoder_forward). */
    hl_status (*decoder_forward_varlen)(hl_decoder *d, const int32_t *tokens, int B, const int *n_new,
                                        const int *pos0, const int *slot, float *logits, int32_t *argmax);
    hl_status (*decoder_release)(hl_decoder *d, int slot);
    hl_status (*decoder_set_compute)(hl_decoder *d, hl_compute c); /* optional */
};

/* The tables (backend.c registers them). */
extern const hl_backend_ops hl_backend_cpu_ops;
#ifdef HL_HAVE_CUDA
extern const hl_backend_ops hl_backend_cuda_ops;
#endif

#endif
