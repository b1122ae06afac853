/* The sampler of llama2.c's run.c (see sampler.h). */
#include "core/eval/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

void hl_sampler_seed(hl_sampler_rng *r, uint64_t seed, int stream) {
    /* xorshift never leaves state 0, so 0 is replaced (llama2.c replaces it by the time). */
    uint64_t s = seed ? seed : 0x2545F4914F6CDD1Dull;
    if (stream > 0)
        s = splitmix64(s ^ splitmix64((uint64_t)stream));
    r->state = s ? s : 1;
}

uint32_t hl_sampler_u32(hl_sampler_rng *r) {
    r->state ^= r->state >> 12;
    r->state ^= r->state << 25;
    r->state ^= r->state >> 27;
    return (uint32_t)((r->state * 0x2545F4914F6CDD1Dull) >> 32);
}

float hl_sampler_f32(hl_sampler_rng *r) { return (float)(hl_sampler_u32(r) >> 8) / 16777216.0f; }

typedef struct {
    float prob;
    int index;
} prob_index;

/* Descending by probability, as llama2.c's compare(). */
static int cmp_prob_desc(const void *a, const void *b) {
    const prob_index *x = a, *y = b;
    if (x->prob > y->prob)
        return -1;
    if (x->prob < y->prob)
        return 1;
    return 0;
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

static void softmax_inplace(float *x, int n) {
    float mx = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > mx)
            mx = x[i];
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    for (int i = 0; i < n; i++)
        x[i] /= sum;
}

static int sample_mult(const float *p, int n, float coin) {
    float cdf = 0.0f;
    for (int i = 0; i < n; i++) {
        cdf += p[i];
        if (coin < cdf)
            return i;
    }
    return n - 1; /* rounding */
}

static int sample_topp(const float *p, int n, float topp, prob_index *work, float coin) {
    /* Tokens below (1 - p)/(n - 1) cannot be in the nucleus: drop them before sorting. */
    const float cutoff = (1.0f - topp) / (float)(n - 1);
    int n0 = 0;
    for (int i = 0; i < n; i++)
        if (p[i] >= cutoff) {
            work[n0].index = i;
            work[n0].prob = p[i];
            n0++;
        }
    qsort(work, (size_t)n0, sizeof *work, cmp_prob_desc);
    float cumulative = 0.0f;
    int last = n0 - 1;
    for (int i = 0; i < n0; i++) {
        cumulative += work[i].prob;
        if (cumulative > topp) {
            last = i;
            break;
        }
    }
    float r = coin * cumulative;
    float cdf = 0.0f;
    for (int i = 0; i <= last; i++) {
        cdf += work[i].prob;
        if (r < cdf)
            return work[i].index;
    }
    return work[last].index;
}

size_t hl_sample_work_bytes(int vocab) { return (size_t)vocab * sizeof(prob_index); }

static int cmp_float_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x > y ? -1 : x < y;
}

int hl_sample(float *logits, int vocab, float temperature, int top_k, float top_p, hl_sampler_rng *rng,
              void *work) {
    if (!(temperature > 0.0f))
        return argmax(logits, vocab);
    for (int i = 0; i < vocab; i++)
        logits[i] /= temperature;
    if (top_k > 0 && top_k < vocab) {
        float *sorted = work;
        memcpy(sorted, logits, (size_t)vocab * sizeof(float));
        qsort(sorted, (size_t)vocab, sizeof(float), cmp_float_desc);
        float kth = sorted[top_k - 1];
        for (int i = 0; i < vocab; i++)
            if (logits[i] < kth)
                logits[i] = -INFINITY;
    }
    softmax_inplace(logits, vocab);
    float coin = hl_sampler_f32(rng);
    if (top_p <= 0.0f || top_p >= 1.0f)
        return sample_mult(logits, vocab, coin);
    return sample_topp(logits, vocab, top_p, work, coin);
}
