/* GPU tests' two helpers (phase 1, before the seam's registry lands): the CPU engine as the
 * reference (gpu_ref_*: core/llama.h behind a small interface, so test files can include the
 * backend headers too), and a CUDA session opened the way core/backend/backend.c does it
 * (gpu_session_*: fill the common fields, build the layout with hl_adapters_create, call the
 * table). */
#ifndef HL_GPU_REF_H
#define HL_GPU_REF_H

#include <stdint.h>

#include "core/adapter.h"
#include "core/model.h"
#include "core/status.h"

typedef struct gpu_ref gpu_ref;
hl_status gpu_ref_create(gpu_ref **out, const hl_model *m, const hl_adapter_config *ac, uint64_t seed, int B, int T,
                         int train, int ckpt, int stats);
void gpu_ref_free(gpu_ref *r);
hl_adapters *gpu_ref_adapters(gpu_ref *r);
hl_status gpu_ref_train(gpu_ref *r, const int *tokens, const int *labels, const int *lengths, int B, int T,
                        float scale, float *loss, int64_t *n);
hl_status gpu_ref_eval(gpu_ref *r, const int *tokens, const int *labels, const int *lengths, int B, int T, float *loss,
                       int64_t *n, double *seq_sum, int64_t *seq_cnt);
hl_status gpu_ref_logits(gpu_ref *r, const int *tokens, const int *lengths, int B, int T, float *logits);
hl_routing_stats *gpu_ref_routing(gpu_ref *r);
void gpu_ref_eval_stats(gpu_ref *r, int on);

struct hl_backend;
struct hl_session;
hl_status gpu_session_open(struct hl_backend **be, struct hl_session **s, const hl_model *m,
                           const hl_adapter_config *ac, uint64_t seed, int B, int T, unsigned flags);
void gpu_session_close(struct hl_backend *be, struct hl_session *s);

#endif
