/* The data-parallel sharding rule (core/comm/shard.h): for every K ranks and G micro-batches
 * per step, the ranks' blocks read in rank order are micro-batches 0..G-1 exactly once —
 * the one-process data order — with sizes differing by at most one; and a simulated K-rank
 * step over a cursor visits the same examples with the same dropout counters as one process. */
#include <stdint.h>
#include <stdlib.h>

#include "core/comm/shard.h"
#include "hl_test.h"

static void test_blocks(void) {
    int bad_cover = 0, bad_balance = 0, bad_owner = 0, bad_order = 0;
    for (int G = 1; G <= 40; G++)
        for (int K = 1; K <= 48; K++) {
            int next = 0, lo = G, hi = 0;
            for (int k = 0; k < K; k++) {
                int first, count;
                hl_shard_microbatches(G, K, k, &first, &count);
                if (first != next)
                    bad_order++;
                next = first + count;
                if (count < lo)
                    lo = count;
                if (count > hi)
                    hi = count;
                for (int a = first; a < first + count; a++)
                    if (hl_shard_owner(G, K, a) != k)
                        bad_owner++;
                /* larger blocks first: count never grows with the rank */
                if (k > 0) {
                    int pf, pc;
                    hl_shard_microbatches(G, K, k - 1, &pf, &pc);
                    if (pc < count)
                        bad_balance++;
                }
            }
            if (next != G)
                bad_cover++;
            if (hi - lo > 1)
                bad_balance++;
        }
    CHECK(bad_order == 0, "%d (G, K) pairs where a rank's block does not start where the previous ended", bad_order);
    CHECK(bad_cover == 0, "%d (G, K) pairs whose blocks do not cover 0..G-1", bad_cover);
    CHECK(bad_balance == 0, "%d (G, K) pairs with unbalanced blocks", bad_balance);
    CHECK(bad_owner == 0, "%d micro-batches whose owner disagrees with the blocks", bad_owner);
}

static void test_examples(void) {
    int64_t f, c;
    /* written out: G = 5 micro-batches of 3 over K = 2 ranks: 3 + 2 micro-batches */
    hl_shard_examples(3, 5, 2, 0, &f, &c);
    CHECK(f == 0 && c == 9, "rank 0 of 2, G=5, B=3: entries %lld + %lld (want 0 + 9)", (long long)f, (long long)c);
    hl_shard_examples(3, 5, 2, 1, &f, &c);
    CHECK(f == 9 && c == 6, "rank 1 of 2: entries %lld + %lld (want 9 + 6)", (long long)f, (long long)c);
    /* K > G: the last ranks compute nothing */
    hl_shard_examples(4, 2, 3, 2, &f, &c);
    CHECK(c == 0, "rank 2 of 3 with G=2 gets %lld entries (want 0)", (long long)c);
    int first, count;
    hl_shard_microbatches(4, 2, 2, &first, &count);
    CHECK(count == 0, "a rank outside 0..size-1 gets nothing");
    hl_shard_microbatches(0, 2, 0, &first, &count);
    CHECK(count == 0, "grad_accum 0 gives nothing");
    CHECK(hl_shard_owner(4, 2, 4) == -1 && hl_shard_owner(4, 2, -1) == -1, "owner of a micro-batch outside the step");
}

/* A cursor that hands out a fixed pseudo-random permutation; each "rank" walks the whole step
 * and records the (example, dropout step) pairs of its own micro-batches. */
static void test_simulated_steps(void) {
    enum { N = 97, B = 3, STEPS = 7 };
    int perm[N];
    for (int i = 0; i < N; i++)
        perm[i] = i;
    uint64_t x = 12345;
    for (int i = N - 1; i > 0; i--) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int j = (int)((x >> 33) % (uint64_t)(i + 1));
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    int mismatches = 0;
    for (int G = 1; G <= 6; G++) {
        int n_ref = STEPS * G * B;
        int *ref_ex = malloc(sizeof(int) * (size_t)n_ref), *ref_d = malloc(sizeof(int) * (size_t)n_ref);
        /* one process */
        int pos = 0, k = 0, dropout = 0;
        for (int s = 0; s < STEPS; s++)
            for (int a = 0; a < G; a++, dropout++)
                for (int b = 0; b < B; b++, k++) {
                    ref_ex[k] = perm[pos++ % N];
                    ref_d[k] = dropout;
                }
        for (int K = 1; K <= 8; K++) {
            /* every rank walks the cursor; concatenate what each computes, step by step in rank order */
            int *seen_ex = malloc(sizeof(int) * (size_t)n_ref), *seen_d = malloc(sizeof(int) * (size_t)n_ref);
            int n_seen = 0;
            int *cur = calloc((size_t)K, sizeof(int)), *drop = calloc((size_t)K, sizeof(int));
            for (int s = 0; s < STEPS; s++)
                for (int r = 0; r < K; r++) {
                    int first, count;
                    hl_shard_microbatches(G, K, r, &first, &count);
                    for (int a = 0; a < G; a++)
                        for (int b = 0; b < B; b++) {
                            int e = perm[cur[r]++ % N]; /* the cursor advances over the whole step */
                            if (a >= first && a < first + count) {
                                seen_ex[n_seen] = e;
                                seen_d[n_seen] = drop[r] + a;
                                n_seen++;
                            }
                        }
                    drop[r] += G;
                }
            if (n_seen != n_ref)
                mismatches++;
            for (int i = 0; i < n_ref && i < n_seen; i++)
                mismatches += seen_ex[i] != ref_ex[i] || seen_d[i] != ref_d[i];
            for (int r = 1; r < K; r++)
                mismatches += cur[r] != cur[0] || drop[r] != drop[0]; /* every rank's cursor state agrees */
            free(seen_ex), free(seen_d), free(cur), free(drop);
        }
        free(ref_ex), free(ref_d);
    }
    CHECK(mismatches == 0, "%d differences between K-rank steps and one process", mismatches);
}

int main(void) {
    test_blocks();
    test_examples();
    test_simulated_steps();
    return hl_test_finish();
}
