/* The backend seam: one engine, several backends. Everything that computes on model weights
 * goes through this header: training micro-batches, eval, logits, KV-cache decoding, gradient
 * reduction across processes, the optimizer step, routing statistics, and the transfer of the
 * adapter slabs (parameters, gradients, AdamW moments) for checkpoints and exports. Callers
 * (trainer, engine, score, generate, BBH, CLI, workbench) include only this header and never
 * see a backend's memory. Modelled on ggml-backend.h: opaque handles here, a function table in
 * the private core/backend/backend_impl.h that each implementation (cpu/, cuda/) fills.
 *
 * Device-independent pieces stay outside the backends: the model description (hl_model: config
 * + host weight views, core/model), the adapter layout (names, views, offsets, init with the
 * seed, the hash-based dropout key/step: core/adapter), the optimizer schedule (hl_lr_at) and
 * the routing-statistics container (hl_routing_stats).
 *
 * The CPU implementation is core/backend/cpu/ (OpenBLAS f32 tiles on OpenMP threads, oneDNN bf16
 * matmuls where the CPU has AMX or AVX512-BF16);
 * backend.c owns the registry, the name parsing and the device-independent argument checks.
 *
 * Threading: a session is used by one thread at a time. Backends may run work asynchronously
 * inside a call but every call returns with its results in place (host outputs written). */
#ifndef HL_BACKEND_H
#define HL_BACKEND_H

#include <stddef.h>
#include <stdint.h>

/* hl_adapter_config, hl_adapters (host layout + host slabs), hl_routing_stats */
#include "core/adapter/adapter.h"
/* hl_model, hl_llama_config */
#include "core/model/model.h"
/* hl_optim_config */
#include "core/adapter/optim.h"
#include "core/base/status.h"

/* ---- backends ------------------------------------------------------------------------- */

typedef struct hl_backend hl_backend;

/* Open a backend by name: "cpu", "cuda" (= "cuda:0"), "cuda:N", or "auto" (the first GPU when
 * one is usable, else cpu). An unknown or unavailable name fails with HL_ERR_NOT_FOUND and a
 * message listing what is available on this build and machine ("unknown device 'tpu'; available:
 * cpu, cuda:0"); a GPU that cannot be used says why in one line (no CUDA driver, driver too
 * old for this build, no device N, built without CUDA). */
hl_status hl_backend_open(hl_backend **out, const char *name);
void hl_backend_close(hl_backend *be);

/* Names usable with hl_backend_open on this build and machine, comma-separated ("cpu, cuda:0").
 * The string is per thread and valid until the next call on that thread. */
const char *hl_backend_available(void);

/* Check a name without opening anything and write its canonical form ("auto" resolves to
 * what hl_backend_open would pick, "cuda" to "cuda:0"). Same errors as hl_backend_open. For
 * validating a run config or a --device option before loading a model. */
hl_status hl_backend_resolve(const char *name, char *canonical, size_t size);

typedef struct {
    char name[32];          /* canonical: "cpu", "cuda:0" */
    char device[128];       /* "Intel(R) Xeon(R) ... (16 threads)", "NVIDIA H200" */
    char compute[96];       /* matrix path in use: "OpenBLAS f32", "oneDNN bf16 (avx512_core_amx)",
                               "cuBLASLt bf16, f32 accumulate" */
    int is_gpu;
    int threads;            /* CPU threads the backend computes with (GPU: host threads it uses) */
    int64_t mem_total;      /* bytes of the memory the backend allocates from (RAM or device memory) */
    int64_t mem_free;       /* bytes free now (-1 unknown) */
    int64_t mem_used_self;  /* bytes this process holds there (-1 unknown) */
    int util_percent;       /* device utilisation 0..100, -1 unknown (CPU: -1) */
} hl_backend_info;

hl_status hl_backend_get_info(hl_backend *be, hl_backend_info *info);

/* Compute threads for this backend's sessions (n <= 0: all cores). Replaces the process-wide
 * hl_set_threads for callers. */
hl_status hl_backend_set_threads(hl_backend *be, int n);

/* ---- arithmetic of the frozen-weight products -------------------------------------------
 * The run config's `compute`, set per session and per decoder (two sessions of one process may
 * differ). Only the products with the frozen base weights change: adapters, router, norms,
 * softmax, attention, the loss and the optimizer are f32 in every mode. */
typedef enum {
    HL_COMPUTE_AUTO = 0, /* bf16 for models stored in bf16/f16 (their large weight matrices), f32 for f32
                            models; the default of every session and decoder */
    HL_COMPUTE_F32 = 1,  /* f32 arithmetic, weights widened exactly: the path the oracle tests check */
    HL_COMPUTE_BF16 = 2, /* activations rounded to bf16, bf16 x bf16 products, f32 accumulation (what
                            PyTorch does with bf16 weights) */
} hl_compute;

/* "auto", "f32", "bf16"; parse returns 0, or -1 for an unknown name (or NULL). */
const char *hl_compute_name(hl_compute c);
int hl_compute_parse(const char *s, hl_compute *out);

/* What the large products (the FFN matrices) of a model of config `cfg` (NULL: a large one) stored in
 * `weight_dtype` run under `c` on this backend and machine, in one line (< 96 bytes), the fallback
 * chosen at run time included: "oneDNN 2.6.3 bf16, f32 accumulate (avx512_core_amx)", "OpenBLAS f32
 * (no bf16 matmul on this CPU: oneDNN 2.6.3 sees avx2)". For `model info`, the workbench and logs. */
hl_status hl_backend_compute_path(hl_backend *be, hl_compute c, const hl_llama_config *cfg, hl_dtype weight_dtype,
                                  char *buf, size_t size);

/* ---- memory plan ------------------------------------------------------------------------ */

/* Bytes, for one (model, adapter config, batch, seq, flags) on one backend. */
typedef struct {
    size_t weights;     /* base weights as this backend holds them (CPU: mmapped views in file dtype,
                           not allocated by us; GPU: device copies, bf16/f16 as stored, f32 stays f32) */
    size_t params;      /* adapter parameters (f32) */
    size_t grads;       /* adapter gradients (f32) */
    size_t moments;     /* both AdamW moments (f32) */
    size_t activations; /* kept for backward (block inputs only with checkpointing) */
    size_t scratch;     /* temporaries (attention tiles, logits chunk, backward buffers, workspaces) */
    size_t total;       /* what the backend allocates (weights included on a GPU, excluded on the CPU) */
    size_t headroom;    /* left free beyond total (GPU: context, library workspaces): a session
                           refuses to start unless total + headroom are free on the device */
} hl_mem_plan;

enum {
    HL_SESSION_TRAIN = 1u << 0,      /* forward + backward + optimizer (else eval/logits only) */
    HL_SESSION_CHECKPOINT = 1u << 1, /* gradient checkpointing: keep block inputs, recompute in backward */
    HL_SESSION_STATS = 1u << 2,      /* gather routing statistics during training forwards */
};

/* Figures without allocating. `weight_dtype` is the model's storage dtype (what the backend
 * will hold). `acfg` NULL: base model only. */
hl_status hl_backend_plan(hl_backend *be, const hl_llama_config *cfg, hl_dtype weight_dtype,
                          const hl_adapter_config *acfg, int batch, int seq, unsigned flags, hl_mem_plan *plan);

/* ---- batches ----------------------------------------------------------------------------
 * B rows of T columns (row stride T). Each row holds one or more examples ("segments"), packed
 * from column 0 without gaps between them, the rest of the row is padding. Example e occupies
 * flat positions [seq_start[e], seq_start[e] + seq_len[e]) of one row (the cu_seqlens
 * convention with padding allowed at row ends). Inside an example: positions (RoPE) start at
 * 0, attention is causal and never crosses into another example, and labels follow Hugging
 * Face: labels[i] is the label OF token i, position i predicts labels[i + 1] of the same
 * example; the first token of an example is never a target, padding never is.
 * Padded (unpacked) batches have n_seq = B, seq_start[b] = b*T, seq_len[b] = lengths[b];
 * hl_batch_padded builds that.
 * Size limits against a session planned for `batch` x `seq`: B*T <= batch*seq tokens and every
 * example <= seq; rows themselves may be longer than seq (e.g. one row of batch*seq tokens holding
 * whole examples: the trainer's packed layout, a flat token stream with its cu_seqlens). A backend
 * sizes its buffers by tokens (batch*seq) and its per-example work (RoPE table, attention tiles) by
 * seq; positions restart at 0 in every example, so no position reaches seq. */
typedef struct {
    int B, T;
    const int32_t *tokens;    /* [B*T] ids (padding: any valid id) */
    const int32_t *labels;    /* [B*T] (-100 = no loss) or NULL (logits / decode) */
    int n_seq;
    const int32_t *seq_start; /* [n_seq] ascending */
    const int32_t *seq_len;   /* [n_seq] >= 1 */
} hl_batch;

/* Fill `b` for B right-padded rows of T with one example each; starts/lens are caller arrays of B. */
void hl_batch_padded(hl_batch *b, const int32_t *tokens, const int32_t *labels, const int32_t *lengths, int B, int T,
                     int32_t *starts, int32_t *lens);

/* ---- sessions (training / eval / logits) ------------------------------------------------ */

typedef struct hl_session hl_session;

/* A session holds, on its backend: the model's weights as the backend wants them (CPU: views of
 * the mmapped model; GPU: uploaded once), the adapter parameters, gradients and AdamW moments
 * (when acfg != NULL; initialised from `seed` exactly as hl_adapters_create does), and the
 * activations/scratch for up to `batch` rows of `seq` columns. Nothing large is allocated after
 * this call. On a GPU the plan is compared with free device memory first: not enough memory
 * is HL_ERR_NOMEM with both figures and a hint (smaller micro_batch/max_len, gradient
 * checkpointing). `model` must outlive the session. */
hl_status hl_session_create(hl_session **out, hl_backend *be, const hl_model *model, const hl_adapter_config *acfg,
                            uint64_t seed, int batch, int seq, unsigned flags);
void hl_session_free(hl_session *s);
const hl_mem_plan *hl_session_mem_plan(const hl_session *s);

/* The session's compute mode (HL_COMPUTE_AUTO until set); takes effect from the next call. An
 * unknown mode is HL_ERR_ARG. A mode the machine cannot run natively falls back as
 * hl_backend_compute_path says (never an error). */
hl_status hl_session_set_compute(hl_session *s, hl_compute c);
hl_compute hl_session_compute(const hl_session *s);

/* The adapter layout (config, views with export keys, offsets, N, n_params, dropout seed/key):
 * the host structure whose slab pointers are NOT to be read for current values — use
 * hl_session_read_slab. NULL for a base-model session. */
const hl_adapters *hl_session_layout(const hl_session *s);

/* Training micro-batch: forward with adapter dropout, loss, backward; gradients of every adapter
 * parameter ACCUMULATE into the session's gradient slab scaled by grad_scale (1/accumulation).
 * *loss = mean target CE of this micro-batch (0 without targets), *n_targets its target count
 * (either may be NULL). Advances the dropout step by one. Needs HL_SESSION_TRAIN. */
hl_status hl_session_train_microbatch(hl_session *s, const hl_batch *b, float grad_scale, float *loss,
                                      int64_t *n_targets);
hl_status hl_session_zero_grad(hl_session *s);

/* Forward without dropout or gradients. Per-example sums (index = example e of the batch) go
 * to seq_loss_sum[e] / seq_count[e] when non-NULL; *loss = mean over all targets. Routing
 * statistics are added to the session's eval accumulator when hl_session_collect_eval_stats(s, 1). */
hl_status hl_session_eval(hl_session *s, const hl_batch *b, float *loss, int64_t *n_targets, double *seq_loss_sum,
                          int64_t *seq_count);

/* Logits [B*T, vocab] (f32, host) of every position; padding rows are 0. */
hl_status hl_session_logits(hl_session *s, const hl_batch *b, float *logits);

/* Sum the gradient slab over the processes of `comm` (core/comm; NULL or one process: no-op).
 * The hook for data-parallel training: called once per optimizer step, before the step. */
struct hl_comm;
hl_status hl_session_reduce_grads(hl_session *s, struct hl_comm *comm);

/* One AdamW step (clipping to oc->clip_norm first) over the whole slab; `t` 1-based step count,
 * `lr` this step's rate (hl_lr_at). *grad_norm = global norm before clipping. Deterministic:
 * fixed-order reductions. HL_ERR_NUMERIC (parameters untouched) when the norm is not finite. */
hl_status hl_session_optim_step(hl_session *s, int64_t t, float lr, const hl_optim_config *oc, double *grad_norm);

/* Routing statistics: the training accumulator (filled by train micro-batches with
 * HL_SESSION_STATS) and the eval accumulator. `dst` is initialised by the caller for the
 * model's layers and the adapter's N; its contents are REPLACED. */
typedef enum { HL_STATS_TRAIN = 0, HL_STATS_EVAL = 1 } hl_stats_which;
hl_status hl_session_routing(hl_session *s, hl_stats_which which, hl_routing_stats *dst);
hl_status hl_session_routing_reset(hl_session *s, hl_stats_which which);
void hl_session_collect_eval_stats(hl_session *s, int on);

/* The four f32 slabs (layout: hl_session_layout(s)->views). Read copies n floats starting at
 * float `offset` into host memory; write copies them in. For checkpoints (params, m, v),
 * exports (params), resume, loading an exported adapter into an eval session, and tests. */
typedef enum { HL_SLAB_PARAMS = 0, HL_SLAB_GRADS, HL_SLAB_ADAM_M, HL_SLAB_ADAM_V } hl_slab;
hl_status hl_session_read_slab(hl_session *s, hl_slab which, size_t offset, size_t n, float *dst);
hl_status hl_session_write_slab(hl_session *s, hl_slab which, size_t offset, size_t n, const float *src);

/* Dropout counter (checkpointed with the run; the key derives from the seed). */
uint64_t hl_session_dropout_step(const hl_session *s);
void hl_session_set_dropout_step(hl_session *s, uint64_t step);

/* ---- KV-cache decoding ------------------------------------------------------------------
 * `slots` sequences of up to max_seq positions. A call runs Tq new tokens for each of B
 * sequences: tokens[b*Tq + t] sits at position pos0[b] + t of slot slot[b] (slot NULL: slot b);
 * keys/values of positions < pos0[b] must exist in that slot. Outputs (either may be NULL):
 * logits [B, vocab] of each sequence's last new token ([B*Tq, vocab] with all_logits), and
 * argmax [B] (greedy id of the last new token; ties → lowest id) — a GPU returns only the ids
 * when logits is NULL. A row whose largest logit is not finite (NaN, inf) fails the call with
 * HL_ERR_NUMERIC when argmax is asked for. Adapters (host layout + parameters, e.g. from an
 * export) are applied unmerged, router per token; NULL: base model. The decoder takes its own
 * copy of the adapter parameters at creation (`ad` may be freed afterwards). */
typedef struct hl_decoder hl_decoder;

hl_status hl_decoder_create(hl_decoder **out, hl_backend *be, const hl_model *model, const hl_adapters *ad,
                            int slots, int max_seq, int max_rows);
void hl_decoder_free(hl_decoder *d);
size_t hl_decoder_bytes(const hl_decoder *d);
/* KV-cache bytes: the most in use at once so far (a paged cache: blocks; a fixed cache: all of it)
 * and what the cache holds allocated. */
void hl_decoder_cache_use(const hl_decoder *d, size_t *peak_bytes, size_t *pool_bytes);
/* As hl_session_set_compute, for this decoder. */
hl_status hl_decoder_set_compute(hl_decoder *d, hl_compute c);
hl_status hl_decoder_forward(hl_decoder *d, const int32_t *tokens, int B, int Tq, const int *pos0, const int *slot,
                             float *logits, int all_logits, int32_t *argmax);
/* Several sequences with different numbers of new tokens in one call (batched prefill):
 * sequence b has n_new[b] >= 1 tokens, stored one after another in `tokens`, at positions
 * pos0[b] .. pos0[b] + n_new[b] − 1 of slot slot[b] (distinct slots); Σ n_new <= max_rows.
 * Outputs are those of each sequence's last new token: logits [B, vocab] and/or argmax [B].
 * A backend without a batched path runs the sequences one at a time (the same results). */
hl_status hl_decoder_forward_varlen(hl_decoder *d, const int32_t *tokens, int B, const int *n_new, const int *pos0,
                                    const int *slot, float *logits, int32_t *argmax);
/* Make positions [0, n) of dst_slot hold what positions [0, n) of src_slot hold (prefix reuse:
 * a CPU copies; a paged GPU cache shares blocks and copies on write). */
hl_status hl_decoder_share_prefix(hl_decoder *d, int dst_slot, int src_slot, int n);
/* The slot's positions are no longer needed (a paged cache returns its blocks). */
hl_status hl_decoder_release(hl_decoder *d, int slot);

#endif
