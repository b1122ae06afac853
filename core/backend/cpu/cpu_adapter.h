/* PRIVATE to the CPU backend (and its tests): one adapted projection, forward and backward
 * (docs/method.md §2), used by core/backend/cpu/llama.c and core/backend/cpu/llama_infer.c. */
#ifndef HL_BACKEND_CPU_ADAPTER_H
#define HL_BACKEND_CPU_ADAPTER_H

#include <stdint.h>

#include "core/adapter/adapter.h"

/* Rows are tokens; X [M, d_in] is the projection input (un-dropped), Y [M, d_out] already
 * holds X·W0ᵀ. Saved for backward: Z [M, nA*r] (A·dropout(x), per A for LoRA-Split) and
 * W [M, N] router weights ω. */
typedef struct {
    uint64_t key; /* dropout mask key for this projection and micro-batch; ignored when p == 0 */
    float p;      /* dropout probability in effect (0 in eval) */
} hl_dropout;

/* Scratch floats for a projection with rows M (covers forward and backward). */
int64_t hl_adapter_scratch_floats(const hl_adapters *ad, int64_t M, int d_in, int d_out);

/* Y += s · Σ_i ω_i B_i A_(i) dropout(x); writes Z and W. When stats != NULL, adds the
 * routing statistics of rows with valid[m] != 0 (valid may be NULL: all rows). */
void hl_adapter_forward(const hl_adapters *ad, const hl_adapter_proj *p, float *Y, const float *X, int64_t M,
                        float *Z, float *W, hl_dropout drop, hl_routing_stats *st, const unsigned char *valid,
                        float *scratch);
/* Given G = ∂loss/∂Y [M, d_out]: dA, dB, dR += (into p's grad pointers), dX += adapter part
 * (not the G·W0 part, which the caller adds). dX may be NULL (first layer input is frozen). */
void hl_adapter_backward(const hl_adapters *ad, const hl_adapter_proj *p, float *dX, const float *G, const float *X,
                         int64_t M, const float *Z, const float *W, hl_dropout drop, float *scratch);

#endif
