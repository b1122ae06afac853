#include "core/base/rng.h"

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void hl_rng_seed(hl_rng *rng, uint64_t seed, uint64_t stream) {
    /* Mix the stream number in through one splitmix round of its own so that nearby
     * (seed, stream) pairs do not give overlapping splitmix sequences. */
    uint64_t t = stream * 0xD1B54A32D192ED03ull;
    uint64_t x = seed ^ splitmix64(&t);
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&x);
    if (!(rng->s[0] | rng->s[1] | rng->s[2] | rng->s[3])) /* the one forbidden state */
        rng->s[0] = 1;
}

uint64_t hl_rng_next(hl_rng *rng) {
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float hl_rng_uniform(hl_rng *rng) { return (float)(hl_rng_next(rng) >> 40) * (1.0f / 16777216.0f); }

double hl_rng_uniform_double(hl_rng *rng) { return (double)(hl_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0); }

uint64_t hl_rng_below(hl_rng *rng, uint64_t n) {
    if (n <= 1)
        return 0;
    /* Rejection: accept only draws below the largest multiple of n. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do {
        x = hl_rng_next(rng);
    } while (x >= limit);
    return x % n;
}

void hl_rng_shuffle_int(hl_rng *rng, int *perm, int64_t n) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)hl_rng_below(rng, (uint64_t)i + 1);
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}
