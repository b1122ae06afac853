/* Token sampling with llama2.c's run.c semantics (docs/file-formats.md §1.4): xorshift64* coin
 * `(u32 >> 8) / 2^24`, temperature, optional top-k, top-p with the (1 − p)/(n − 1) cut-off and a
 * descending sort; greedy (temperature 0) is the first index of the largest logit. */
#ifndef HL_SAMPLER_H
#define HL_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t state;
} hl_sampler_rng;

void hl_sampler_seed(hl_sampler_rng *r, uint64_t seed, int stream); /* stream 0: state = seed (llama2.c) */
uint32_t hl_sampler_u32(hl_sampler_rng *r);  /* xorshift64* as llama2.c random_u32 */
float hl_sampler_f32(hl_sampler_rng *r);     /* (u32 >> 8) / 16777216 */

/* Pick a token from logits[vocab] (modified in place: scaled, softmaxed). `work` holds
 * hl_sample_work_bytes(vocab) bytes of scratch (vocab entries of {float, int}). */
int hl_sample(float *logits, int vocab, float temperature, int top_k, float top_p, hl_sampler_rng *rng,
              void *work);
size_t hl_sample_work_bytes(int vocab);

#endif
