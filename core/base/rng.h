/* A small seeded PRNG with savable state (xoshiro256**, seeded through splitmix64),
 * plus a stateless counter-based hash for dropout masks.
 *
 * One run seed drives everything, split into independent streams so that changing one
 * use (e.g. the number of dropout draws) never shifts another (e.g. data order):
 *
 *   HL_RNG_STREAM_INIT     adapter initialisation (A and router uniform draws, in the
 *                          order of the parameter table)
 *   HL_RNG_STREAM_DROPOUT  dropout: the stream only provides a 64-bit key; masks are a pure
 *                          function hash(key, micro-batch counter, layer, target, element)
 *                          (see hl_rng_hash), so they do not depend on the thread count and
 *                          can be recomputed bit for bit in backward / checkpoint recompute
 *   HL_RNG_STREAM_DATA     data order (shuffling), owned by the training loop
 *   HL_RNG_STREAM_USER     free for other uses (e.g. sampling in generation)
 *
 * The state of a stream is four uint64 words; save and restore hl_rng as plain bytes. */
#ifndef HL_RNG_H
#define HL_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} hl_rng;

enum {
    HL_RNG_STREAM_INIT = 1,
    HL_RNG_STREAM_DROPOUT = 2,
    HL_RNG_STREAM_DATA = 3,
    HL_RNG_STREAM_USER = 4,
};

/* Seed stream `stream` of run seed `seed`. Different (seed, stream) pairs give
 * statistically independent sequences. */
void hl_rng_seed(hl_rng *rng, uint64_t seed, uint64_t stream);

/* Next 64 random bits (xoshiro256**). */
uint64_t hl_rng_next(hl_rng *rng);

/* Uniform float in [0, 1) with 24 random bits. */
float hl_rng_uniform(hl_rng *rng);

/* Uniform double in [0, 1) with 53 random bits. */
double hl_rng_uniform_double(hl_rng *rng);

/* Uniform integer in [0, n) without modulo bias; n >= 1. */
uint64_t hl_rng_below(hl_rng *rng, uint64_t n);

/* Fisher-Yates shuffle of perm[0..n) with this stream (deterministic for a given state). */
void hl_rng_shuffle_int(hl_rng *rng, int *perm, int64_t n);

/* Stateless mixing (splitmix64 finaliser of key + golden-ratio * idx): a counter-based
 * generator. hl_rng_hash_uniform maps it to a float in [0, 1) with 24 bits. Inline so that the
 * dropout loops, which call it once per element (millions per layer), are vectorised. */
static inline uint64_t hl_rng_hash(uint64_t key, uint64_t idx) {
    uint64_t z = key + (idx + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline float hl_rng_hash_uniform(uint64_t key, uint64_t idx) {
    return (float)(hl_rng_hash(key, idx) >> 40) * (1.0f / 16777216.0f);
}

#endif
