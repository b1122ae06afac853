/* Private state of the CUDA backend (core/backend/cuda only).
 *
 * A session owns four device allocations, planned from (model config, adapter config, batch,
 * seq, flags) before anything is allocated and never resized:
 *   weights  : norms (f32), RoPE tables (f32), per layer [Wq;Wk;Wv], Wo, [Wgate;Wup], Wdown, the
 *              embedding and the untied head, in the model's dtype (f32 stays f32)
 *   params   : adapter parameters | gradients | AdamW m | AdamW v (f32, the host slab layout, so
 *              read/write_slab are plain copies) + routing statistics (train and eval sets)
 *   acts     : what backward needs (block inputs; per layer qkv, lse, att, xmid, gate|up, norms'
 *              rstd, adapter Z and ω), or only block inputs + one layer with checkpointing
 *   scratch  : temporaries (normed rows, backward buffers, adapter temporaries, logits chunk,
 *              cuBLASLt workspace, per-call index arrays)
 * Activations are in the model's dtype; statistics, adapters, loss and optimizer in f32. */
#ifndef HL_CUDA_SESSION_H
#define HL_CUDA_SESSION_H

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "core/backend/backend_impl.h"
#include "core/backend/cuda/cuda_kernels.h"
#include "core/backend/cuda/gemm_lt.h"

/* Per-backend state (hl_backend.impl). */
typedef struct {
    int dev;
    struct cudaDeviceProp prop;
    size_t self_bytes; /* device bytes this process allocated through this backend */
} cu_backend;

/* Sizes of everything, from configs alone (shared by the planner and the allocator). */
typedef struct {
    int dt;
    size_t esz;
    int64_t B, T, M, D, Dq, Dkv, Dqkv, F, V, H, Hkv, hd, L;
    int64_t zr, N, nA, r; /* adapter: Z width nA·r, heads, A matrices, rank (0 without adapters) */
    unsigned targets;
    int has_router;
    int64_t LC;  /* rows per logits chunk */
    int64_t nblk_cap; /* capacity of the attention block list */
    size_t n_params;
    int tied, train, ckpt;
} cu_dims;

typedef struct {
    void *wqkv, *wo, *wgu, *wdown;
} cu_layer_w;

typedef struct {
    float *rstd1, *lse, *rstd2;
    void *qkv, *att, *xmid, *gu;
    float *Z[7], *W[7];
} cu_acts;

/* One adapted projection's place in the slabs (offsets in floats). */
typedef struct {
    int on, d_in, d_out;
    size_t offA, offB, offR;
} cu_proj;

typedef struct {
    int64_t *tokens, *top1;
    double *wsum, *ent;
} cu_stats;

/* Optional phase timers (HL_CUDA_PROFILE=1 in the environment when the session is created):
 * an event at every change of phase on the stream, summed per phase after each call. */
enum { CU_P_MM_FWD, CU_P_MM_BWD, CU_P_ATT_FWD, CU_P_ATT_BWD, CU_P_AD_FWD, CU_P_AD_BWD, CU_P_ELEM, CU_P_HEAD,
       CU_P_OPTIM, CU_P_COUNT };
#define CU_PROF_EVENTS 16384
typedef struct {
    cudaEvent_t ev[CU_PROF_EVENTS + 1];
    int cat[CU_PROF_EVENTS];
    int n, cur;
    double ms[CU_P_COUNT];
} cu_prof;

typedef struct {
    cu_dims d;
    int dev;
    cu_prof *prof;
    cudaStream_t st;
    hl_cu_gemm *gemm;
    float eps;
    float ad_scale, ad_dropout;
    uint64_t dropout_key;

    /* the four allocations */
    void *wslab, *aslab, *sslab;
    float *pslab;
    size_t wbytes, abytes, sbytes, pbytes;

    /* weights */
    float *norms; /* [(2L+1), D]: attn_norm l at 2l, ffn_norm at 2l+1, final at 2L */
    float *rope_cos, *rope_sin; /* [T, hd/2] */
    cu_layer_w *lw;
    void *embed, *lm_head;

    /* adapter slabs and statistics */
    float *params, *grads, *adam_m, *adam_v;
    cu_stats stats[2]; /* HL_STATS_TRAIN, HL_STATS_EVAL */
    cu_proj *proj;     /* [L·7] */
    int eval_stats;

    /* activations */
    void *xs;      /* block inputs: (L+1) or 2 (eval only) buffers of [M, D] */
    cu_acts *acts; /* L (train without checkpointing) or 1 */
    float *rstd_f;
    void *xf;

    /* scratch */
    void *xn, *hbuf, *dres, *dxn, *dh, *datt, *dqkv;
    float *Dbuf;
    float *zw, *ap, *adz, *adl, *apart, *abt; /* adapters, f32 models (adl: both) */
    void *ah, *ahp, *awsp;                    /* adapters, 16-bit models (cuda_adapter.c) */
    float *afp, *agp;
    float *logits;
    void *dlogits, *gx, *dgx;
    double *row_loss;
    void *gemm_ws;
    double *norm_part, *norm_out;
    int32_t *ints; /* device copy of the per-call index arrays (layout: cu_ints) */

    /* host */
    int32_t *h_ints; /* pinned staging, same layout */
    double *h_loss;  /* pinned [M] */
    int32_t *h_tseg; /* [M] example of each target (eval sums) */
} cu_session;

/* Layout of the per-call integer arrays (host staging and device copy). */
typedef struct {
    int32_t *tok, *pos, *send, *rows, *tgt, *blk_start, *blk_len, *blk_off;
} cu_ints;
cu_ints cu_ints_at(const cu_dims *d, int32_t *base);
size_t cu_ints_count(const cu_dims *d);

/* cuda_plan.c */
hl_status cu_dims_init(cu_dims *d, const hl_llama_config *c, hl_dtype dt, const hl_adapter_config *a, int batch,
                       int seq, unsigned flags);
/* Carves the four blocks (base pointers NULL: only sizes); fills s's pointers when s != NULL. */
void cu_carve(const cu_dims *d, cu_session *s, size_t *wbytes, size_t *pbytes, size_t *abytes, size_t *sbytes);
/* Left free beyond a session's plan for the CUDA context, cuBLASLt and the allocator (the plan's
 * headroom). */
#define CU_RESERVE ((size_t)768 << 20)
void cu_plan_fill(const cu_dims *d, hl_mem_plan *plan);
hl_status cu_backend_plan(hl_backend *be, const hl_llama_config *cfg, hl_dtype weight_dtype,
                          const hl_adapter_config *acfg, int batch, int seq, unsigned flags, hl_mem_plan *plan);

/* cuda_device.c */
int cu_count(void);
hl_status cu_probe(int index);
hl_status cu_open(hl_backend *be);
void cu_close(hl_backend *be);
hl_status cu_get_info(hl_backend *be, hl_backend_info *info);
hl_status cu_set_threads(hl_backend *be, int n);
/* Device memory accounted to the backend (info.mem_used_self). */
hl_status cu_malloc(hl_backend *be, void **p, size_t bytes, const char *what);
void cu_free(hl_backend *be, void *p, size_t bytes);

/* cuda_session.c */
hl_status cu_session_init(hl_session *s);
void cu_session_free(hl_session *s);
hl_status cu_zero_grad(hl_session *s);
hl_status cu_reduce_grads(hl_session *s, struct hl_comm *comm);
hl_status cu_optim_step(hl_session *s, int64_t t, float lr, const hl_optim_config *oc, double *grad_norm);
hl_status cu_routing(hl_session *s, hl_stats_which which, hl_routing_stats *dst);
hl_status cu_routing_reset(hl_session *s, hl_stats_which which);
void cu_collect_eval_stats(hl_session *s, int on);
hl_status cu_read_slab(hl_session *s, hl_slab which, size_t offset, size_t n, float *dst);
hl_status cu_write_slab(hl_session *s, hl_slab which, size_t offset, size_t n, const float *src);
uint64_t cu_dropout_step(const hl_session *s);
void cu_set_dropout_step(hl_session *s, uint64_t step);

/* cuda_profile.c: phase timers (no-ops without a profile) */
void cu_prof_mark(cu_session *cs, int cat);
void cu_prof_flush(cu_session *cs); /* after a stream synchronisation */
void cu_prof_from_env(cu_session *cs); /* HL_CUDA_PROFILE=1: start the timers */
void cu_prof_free(cu_session *cs);

/* cuda_forward.c */
hl_status cu_train_microbatch(hl_session *s, const hl_batch *b, float grad_scale, float *loss, int64_t *n_targets);
hl_status cu_eval(hl_session *s, const hl_batch *b, float *loss, int64_t *n_targets, double *seq_loss_sum,
                  int64_t *seq_count);
hl_status cu_logits(hl_session *s, const hl_batch *b, float *logits);

#endif
