/* LLaMA-2 forward and backward over a batch, with HydraLoRA adapters, and a KV-cache
 * inference path: the CPU backend's engine. PRIVATE to the CPU backend (core/backend/cpu/),
 * which exposes it through the seam (core/backend/backend.h); nothing else includes it.
 *
 * Batches are B sequences of T token ids, right padded: sequence b holds lengths[b]
 * real tokens, positions t >= lengths[b] are padding (any valid id, e.g. 0); or packed
 * batches, several examples per row (hl_llama_batch below).
 * Labels follow Hugging Face: labels[b*T + t] is the label OF token t (labels = input
 * ids with −100 where no loss is wanted); the engine shifts internally, position t
 * predicts labels[b*T + t + 1]. labels[b*T + 0] is never a target, padding positions
 * never are. The loss of a micro-batch is the mean cross-entropy over its targets.
 *
 * Memory: hl_llama_create plans every activation and scratch buffer from (batch, seq)
 * and allocates them once; hl_llama_plan gives the same figures without allocating.
 * Frozen base weights are read in their file dtype through core/backend/cpu/gemm.h.
 *
 * Threads: OpenMP loops + OpenBLAS; set the count with hl_set_threads (core/backend/cpu/gemm.h).
 * Bit-for-bit reproducible for a fixed thread count. */
#ifndef HL_LLAMA_H
#define HL_LLAMA_H

#include <stddef.h>
#include <stdint.h>

#include "core/adapter/adapter.h"
#include "core/backend/backend.h" /* hl_mem_plan, HL_SESSION_* */
#include "core/model/model.h"
#include "core/base/status.h"

/* The seam's session flags, same bits. */
enum {
    HL_LLAMA_TRAIN = HL_SESSION_TRAIN,           /* plan and allow forward+backward (else eval/score only) */
    HL_LLAMA_CHECKPOINT = HL_SESSION_CHECKPOINT, /* gradient checkpointing: keep only block inputs */
    HL_LLAMA_STATS = HL_SESSION_STATS,           /* gather routing statistics during training forward */
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

/* Arithmetic of the frozen-weight products (gemm.h: HL_COMPUTE_AUTO by default, F32 for the
 * exact path). Takes effect from the next call. */
void hl_llama_set_compute(hl_llama *ctx, hl_compute compute);
/* ---- Packed batches (the layout of hl_batch in the backend seam) ----------------------
 * B rows of T columns (row stride T). Each row holds one or more examples ("segments")
 * packed from column 0, the rest of the row is padding. Example e occupies the flat positions
 * [seq_start[e], seq_start[e] + seq_len[e]) of one row (the cu_seqlens convention with padding
 * allowed at row ends). Inside an example positions (RoPE) start at 0, attention is causal and
 * never crosses into another example, and labels follow Hugging Face as above: position i
 * predicts the label of position i + 1 OF THE SAME EXAMPLE, so an example's first token is
 * never a target and padding never is. Routing statistics count every token of every example.
 * Limits: B·T <= batch·seq of the context and every seq_len <= seq (a row may be longer than
 * seq, e.g. one row of batch·seq tokens). Right-padded batches are the special case n_seq = B,
 * seq_start[b] = b·T, seq_len[b] = lengths[b], and give the same bits as the lengths-based
 * functions. */
typedef struct {
    int B, T;
    const int32_t *tokens;    /* [B*T] ids (padding: any valid id) */
    const int32_t *labels;    /* [B*T] (-100 = no loss); may be NULL for logits */
    int n_seq;
    const int32_t *seq_start; /* [n_seq] ascending, not overlapping */
    const int32_t *seq_len;   /* [n_seq] >= 1 */
} hl_llama_batch;

/* As hl_llama_forward_backward / hl_llama_eval / hl_llama_logits over a packed batch. Eval's
 * per-example sums: seq_loss_sum[e], seq_count[e] for e < n_seq (index = example). */
hl_status hl_llama_forward_backward_packed(hl_llama *ctx, const hl_llama_batch *b, float grad_scale, float *loss,
                                           int64_t *n_targets);
hl_status hl_llama_eval_packed(hl_llama *ctx, const hl_llama_batch *b, float *loss, int64_t *n_targets,
                               double *seq_loss_sum, int64_t *seq_count);
hl_status hl_llama_logits_packed(hl_llama *ctx, const hl_llama_batch *b, float *logits);

/* Routing statistics gathered by training forwards (flag HL_LLAMA_STATS); NULL without a
 * router. hl_llama_eval adds its statistics to `dst` while one is set (NULL: none). */
hl_routing_stats *hl_llama_routing(hl_llama *ctx);
void hl_llama_set_eval_stats(hl_llama *ctx, hl_routing_stats *dst);

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
/* Positions [0, n) of slot dst get the keys/values of positions [0, n) of slot src. */
void hl_infer_copy_prefix(hl_infer *inf, int dst, int src, int n);
void hl_infer_set_compute(hl_infer *inf, hl_compute compute); /* as hl_llama_set_compute */
void hl_infer_free(hl_infer *inf);

#endif
