/* LLaMA-2 forward and backward over a batch, with HydraLoRA adapters, and a KV-cache
 * inference path.
 *
 * Batches are B sequences of T token ids, right padded: sequence b holds lengths[b]
 * real tokens, positions t >= lengths[b] are padding (any valid id, e.g. 0).
 * Labels follow Hugging Face: labels[b*T + t] is the label OF token t (labels = input
 * ids with −100 where no loss is wanted); the engine shifts internally, position t
 * predicts labels[b*T + t + 1]. labels[b*T + 0] is never a target, padding positions
 * never are. The loss of a micro-batch is the mean cross-entropy over its targets.
 *
 * Memory: hl_llama_create plans every activation and scratch buffer from (batch, seq)
 * and allocates them once; hl_llama_plan gives the same figures without allocating.
 * Frozen base weights are read in their file dtype through core/gemm.h.
 *
 * Threads: OpenMP loops + OpenBLAS; set the count with hl_set_threads (core/gemm.h).
 * Bit-for-bit reproducible for a fixed thread count. */
#ifndef HL_LLAMA_H
#define HL_LLAMA_H

#include <stddef.h>
#include <stdint.h>

#include "core/adapter.h"
#include "core/model.h"
#include "core/status.h"

/* Memory plan in bytes. */
typedef struct {
    size_t weights;     /* base weights: as stored for hl_llama_create (usually mmapped, not allocated
                           here); hl_llama_plan knows no dtype and counts them as F32 */
    size_t params;      /* adapter parameters (f32 slab) */
    size_t grads;       /* adapter gradients */
    size_t moments;     /* both AdamW moments */
    size_t activations; /* saved for backward (or one layer's worth + layer inputs with checkpointing) */
    size_t scratch;     /* temporaries: tiles, attention scores, logits chunk, backward buffers */
    size_t total;       /* everything this process allocates (weights excluded) */
} hl_mem_plan;

enum {
    HL_LLAMA_TRAIN = 1u << 0,      /* plan and allow forward+backward (else eval/score only) */
    HL_LLAMA_CHECKPOINT = 1u << 1, /* gradient checkpointing: keep only block inputs, recompute in backward */
    HL_LLAMA_STATS = 1u << 2,      /* gather routing statistics during training forward */
};

/* Figures for (model config, adapter config or NULL, batch, seq, flags) without allocating.
 * Attention scratch is sized for the current thread count (hl_set_threads first). */
hl_status hl_llama_plan(const hl_llama_config *cfg, const hl_adapter_config *acfg, int batch, int seq,
                        unsigned flags, hl_mem_plan *plan);

typedef struct hl_llama hl_llama;

/* A compute context for up to `batch` sequences of up to `seq` tokens. `ad` may be NULL
 * (base model only) and stays owned by the caller; it must outlive the context. */
hl_status hl_llama_create(hl_llama **out, const hl_model *model, hl_adapters *ad, int batch, int seq,
                          unsigned flags);
void hl_llama_free(hl_llama *ctx);
const hl_mem_plan *hl_llama_mem_plan(const hl_llama *ctx);

/* Training micro-batch: forward with dropout, loss, backward. Gradients of every adapter
 * parameter are ACCUMULATED into ad->grads, scaled by `grad_scale` (1/accumulation steps
 * gives "loss averaged over accumulation steps"). *loss = mean CE of this micro-batch
 * (unscaled; 0 when it has no targets), *n_targets its target count (either may be NULL).
 * Advances ad->dropout_step. B <= batch, T <= seq of the context. */
hl_status hl_llama_forward_backward(hl_llama *ctx, const int *tokens, const int *labels, const int *lengths, int B,
                                    int T, float grad_scale, float *loss, int64_t *n_targets);

/* Evaluation: forward without dropout and without gradients. Sums per sequence go to
 * seq_loss_sum[b] / seq_count[b] when non-NULL; *loss = mean over all targets. */
hl_status hl_llama_eval(hl_llama *ctx, const int *tokens, const int *labels, const int *lengths, int B, int T,
                        float *loss, int64_t *n_targets, double *seq_loss_sum, int64_t *seq_count);

/* Full logits [B*T, vocab] of every position (padding rows are 0), no dropout. */
hl_status hl_llama_logits(hl_llama *ctx, const int *tokens, const int *lengths, int B, int T, float *logits);

/* Arithmetic of the frozen-weight products (core/gemm.h: HL_COMPUTE_AUTO by default, F32 for
 * the exact path). Takes effect from the next call. */
void hl_llama_set_compute(hl_llama *ctx, int compute);

/* Routing statistics gathered by training forwards (flag HL_LLAMA_STATS) and by
 * hl_llama_eval when `collect` was switched on; NULL without a router. */
hl_routing_stats *hl_llama_routing(hl_llama *ctx);
void hl_llama_set_eval_stats(hl_llama *ctx, int collect);

/* ---- Inference with a KV cache (generation) -----------------------------------------
 * The cache has `slots` sequences of up to max_seq positions per layer. A call runs Tq new
 * tokens for each of B sequences: tokens[b*Tq + t] sits at position pos0[b] + t of cache
 * slot slot[b] (slot may be NULL: slot b). Keys/values of positions < pos0[b] must have
 * been produced by earlier calls for that slot. Logits [B, vocab] of each sequence's last
 * new token are written (or [B*Tq, vocab] for all new tokens when all_logits). */
typedef struct hl_infer hl_infer;

hl_status hl_infer_create(hl_infer **out, const hl_model *model, const hl_adapters *ad, int slots, int max_seq,
                          int max_rows);
/* max_rows: the most B*Tq rows of one call (prefill chunk size times batch). */
hl_status hl_infer_forward(hl_infer *inf, const int *tokens, int B, int Tq, const int *pos0, const int *slot,
                           float *logits, int all_logits);
size_t hl_infer_bytes(const hl_infer *inf);
void hl_infer_set_compute(hl_infer *inf, int compute); /* as hl_llama_set_compute */
void hl_infer_free(hl_infer *inf);

#endif
