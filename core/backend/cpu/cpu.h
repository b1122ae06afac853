/* PRIVATE to core/backend/cpu/: what the CPU backend's files share.
 *
 * The CPU backend runs the engine of core/backend/cpu/llama.c (training, eval, logits) and
 * core/backend/cpu/llama_infer.c (KV-cache decoding) on OpenMP threads + single-threaded OpenBLAS tiles
 * or oneDNN bf16 matmuls (core/backend/cpu/gemm.h; the mode is per session/decoder, kept in the
 * engine context's gemm workspace). Weights stay views of the mmapped model; the adapter slabs are the host slabs
 * of the session's layout. OpenMP's thread count is a property of the calling thread, so every
 * entry point sets the backend's count first (cpu_enter): two backends with different counts
 * can compute in two threads of one process. */
#ifndef HL_BACKEND_CPU_H
#define HL_BACKEND_CPU_H

#include "core/backend/backend_impl.h"

/* Threads the backend computes with: hl_backend_set_threads' value, else OMP_NUM_THREADS, else
 * every core. */
int cpu_threads(const hl_backend *be);
/* Set the calling thread's OpenMP/OpenBLAS thread count to the backend's. */
void cpu_enter(const hl_backend *be);

/* Sessions (cpu_session.c) and decoders (cpu_decoder.c): the table entries. */
hl_status cpu_session_init(hl_session *s);
void cpu_session_free(hl_session *s);
hl_status cpu_train_microbatch(hl_session *s, const hl_batch *b, float grad_scale, float *loss, int64_t *n_targets);
hl_status cpu_zero_grad(hl_session *s);
hl_status cpu_eval(hl_session *s, const hl_batch *b, float *loss, int64_t *n_targets, double *seq_loss_sum,
                   int64_t *seq_count);
hl_status cpu_logits(hl_session *s, const hl_batch *b, float *logits);
hl_status cpu_reduce_grads(hl_session *s, struct hl_comm *comm);
hl_status cpu_optim_step(hl_session *s, int64_t t, float lr, const hl_optim_config *oc, double *grad_norm);
hl_status cpu_routing(hl_session *s, hl_stats_which which, hl_routing_stats *dst);
hl_status cpu_routing_reset(hl_session *s, hl_stats_which which);
void cpu_collect_eval_stats(hl_session *s, int on);
hl_status cpu_read_slab(hl_session *s, hl_slab which, size_t offset, size_t n, float *dst);
hl_status cpu_write_slab(hl_session *s, hl_slab which, size_t offset, size_t n, const float *src);
uint64_t cpu_dropout_step(const hl_session *s);
void cpu_set_dropout_step(hl_session *s, uint64_t step);
hl_status cpu_session_set_compute(hl_session *s, hl_compute c);

hl_status cpu_decoder_init(hl_decoder *d, const hl_adapters *ad);
void cpu_decoder_free(hl_decoder *d);
size_t cpu_decoder_bytes(const hl_decoder *d);
hl_status cpu_decoder_forward(hl_decoder *d, const int32_t *tokens, int B, int Tq, const int *pos0, const int *slot,
                              float *logits, int all_logits, int32_t *argmax);
hl_status cpu_decoder_share_prefix(hl_decoder *d, int dst_slot, int src_slot, int n);
hl_status cpu_decoder_release(hl_decoder *d, int slot);
hl_status cpu_decoder_set_compute(hl_decoder *d, hl_compute c);

#endif
