/* Paged KV-cache bookkeeping (core/backend/kv_pages.h) without a GPU: allocation, growth across
 * blocks, truncation on rewrite, prefix sharing by reference, copy-on-write of shared blocks
 * (only the written range, only once), release, pool exhaustion (clear error, nothing taken),
 * and a random workload shaped like BBH (continuous batching + shared few-shot prefixes)
 * against a shadow model of what every position holds. */
#include <stdlib.h>
#include <string.h>

#include "core/backend/kv_pages.h"
#include "core/base/rng.h"
#include "hl_test.h"

static int blocks_of(const hl_kv_pages *kp, int s) { return kp->n_table[s]; }

static void basics(void) {
    hl_kv_pages kp;
    CHECK(hl_kv_pages_init(&kp, 0, 16, 2, 64) == HL_ERR_ARG, "zero blocks is an error");
    CHECK(hl_kv_pages_init(&kp, 10, 16, 3, 100) == HL_OK, "init");
    CHECK(kp.max_blocks == 7, "100 positions in blocks of 16: 7 table entries (got %d)", kp.max_blocks);
    hl_kv_copy cp[8];
    int nc = -1;
    CHECK(hl_kv_prepare(&kp, 0, 0, 20, cp, &nc) == HL_OK && nc == 0, "prefill 20 positions");
    CHECK(blocks_of(&kp, 0) == 2 && hl_kv_used(&kp) == 2, "two blocks (got %d)", blocks_of(&kp, 0));
    CHECK(hl_kv_table(&kp, 0)[0] == 0 && hl_kv_table(&kp, 0)[1] == 1, "lowest ids first");
    CHECK(hl_kv_prepare(&kp, 0, 20, 1, cp, &nc) == HL_OK && blocks_of(&kp, 0) == 2, "position 20 fits block 1");
    CHECK(hl_kv_prepare(&kp, 0, 32, 1, cp, &nc) == HL_OK && blocks_of(&kp, 0) == 3, "position 32 opens block 2");
    CHECK(hl_kv_prepare(&kp, 1, 5, 1, cp, &nc) == HL_ERR_STATE, "a write past what the slot holds is a gap");
    CHECK(hl_kv_prepare(&kp, 0, 100, 20, cp, &nc) == HL_ERR_RANGE, "positions past the last block");
    /* rewrite from position 10: blocks after the written one are returned */
    CHECK(hl_kv_prepare(&kp, 0, 10, 3, cp, &nc) == HL_OK && blocks_of(&kp, 0) == 1 && hl_kv_used(&kp) == 1,
          "rewrite at 10 keeps one block (got %d, used %d)", blocks_of(&kp, 0), hl_kv_used(&kp));
    CHECK(hl_kv_check(&kp) == 0, "consistent");

    /* sharing: slot 1 takes slot 0's first 40 positions (3 blocks, the third partial) */
    CHECK(hl_kv_prepare(&kp, 0, 13, 35, cp, &nc) == HL_OK && blocks_of(&kp, 0) == 3, "slot 0 holds 48 positions");
    CHECK(hl_kv_share(&kp, 1, 0, 40) == HL_OK, "share 40");
    CHECK(blocks_of(&kp, 1) == 3 && hl_kv_used(&kp) == 3, "shared blocks are not new blocks (used %d)",
          hl_kv_used(&kp));
    CHECK(kp.ref[hl_kv_table(&kp, 0)[2]] == 2, "the partial block is shared too");
    /* slot 1 writes position 40 (block 2, shared): copy on write, one copy */
    CHECK(hl_kv_prepare(&kp, 1, 40, 10, cp, &nc) == HL_OK && nc == 1, "copy on write (%d copies)", nc);
    CHECK(nc == 1 && cp[0].src == hl_kv_table(&kp, 0)[2] && cp[0].dst == hl_kv_table(&kp, 1)[2],
          "the copy goes from the shared block to slot 1's new block");
    CHECK(hl_kv_table(&kp, 1)[0] == hl_kv_table(&kp, 0)[0] && hl_kv_table(&kp, 1)[1] == hl_kv_table(&kp, 0)[1],
          "blocks before the write stay shared");
    CHECK(hl_kv_prepare(&kp, 1, 50, 1, cp, &nc) == HL_OK && nc == 0, "a private block is not copied again");
    /* slot 0 writes into its block 2 (no longer shared): no copy */
    CHECK(hl_kv_prepare(&kp, 0, 48, 1, cp, &nc) == HL_OK && nc == 0, "unshared after slot 1's copy");
    /* slot 0 writes into block 1 (shared): copies, and truncates its blocks 2.. */
    CHECK(hl_kv_prepare(&kp, 0, 20, 1, cp, &nc) == HL_OK && nc == 1 && blocks_of(&kp, 0) == 2, "rewrite a shared block");
    CHECK(hl_kv_check(&kp) == 0, "consistent after copies");
    /* share onto a slot that already holds some of the source's blocks */
    CHECK(hl_kv_share(&kp, 0, 1, 16) == HL_OK && hl_kv_check(&kp) == 0, "share onto a slot holding shared blocks");
    CHECK(hl_kv_share(&kp, 2, 1, 200) == HL_ERR_STATE, "sharing more than the source holds");
    hl_kv_release(&kp, 0);
    hl_kv_release(&kp, 1);
    CHECK(hl_kv_used(&kp) == 0 && hl_kv_check(&kp) == 0, "all returned (used %d)", hl_kv_used(&kp));
    /* exhaustion: nothing taken, clear message */
    CHECK(hl_kv_prepare(&kp, 0, 0, 100, cp, &nc) == HL_OK && hl_kv_used(&kp) == 7, "7 blocks");
    CHECK(hl_kv_prepare(&kp, 1, 0, 64, cp, &nc) == HL_ERR_NOMEM, "4 more do not fit in 3");
    CHECK(strstr(hl_last_error(), "KV cache is full") != NULL, "message: %s", hl_last_error());
    CHECK(hl_kv_used(&kp) == 7 && blocks_of(&kp, 1) == 0 && hl_kv_check(&kp) == 0, "nothing taken");
    hl_kv_pages_free(&kp);
}

/* A shadow of the cache: what (sequence id, position) each slot's position holds, and what every
 * physical block row holds; after every step each slot's visible positions must read back what
 * was written for that slot (through shared blocks too). */
#define SLOTS 6
#define MAXSEQ 120
#define BS 8
#define NBLK 200
static int32_t phys[NBLK][BS];         /* tag written to each physical row */
static int32_t want[SLOTS][MAXSEQ];    /* tag each slot expects at each position */
static int len_of[SLOTS];

static void apply_copies(const hl_kv_copy *cp, int n) {
    for (int i = 0; i < n; i++)
        memcpy(phys[cp[i].dst], phys[cp[i].src], sizeof phys[0]);
}

static int verify(const hl_kv_pages *kp) {
    for (int s = 0; s < SLOTS; s++)
        for (int p = 0; p < len_of[s]; p++) {
            int32_t b = hl_kv_table(kp, s)[p / BS];
            if (b < 0 || phys[b][p % BS] != want[s][p])
                return s * 1000 + p + 1;
        }
    return 0;
}

static void random_workload(void) {
    hl_kv_pages kp;
    CHECK(hl_kv_pages_init(&kp, NBLK, BS, SLOTS, MAXSEQ) == HL_OK, "init");
    hl_rng r;
    hl_rng_seed(&r, 5, HL_RNG_STREAM_USER);
    hl_kv_copy cp[MAXSEQ / BS + 1];
    int bad = 0, steps = 0, shares = 0, copies = 0;
    int32_t tag = 1;
    /* prefixes of 3 "tasks": positions [0, 37) of a task hold the task's tags */
    for (int it = 0; it < 4000 && !bad; it++) {
        int s = (int)(hl_rng_uniform(&r) * SLOTS) % SLOTS;
        float u = hl_rng_uniform(&r);
        int nc = 0;
        if (u < 0.15f || len_of[s] == 0) {
            /* a new sequence in slot s: share a prefix from a slot of the same "task" if any */
            int from = (int)(hl_rng_uniform(&r) * SLOTS) % SLOTS;
            int keep = len_of[from] < 37 ? len_of[from] : 37;
            keep = (int)(hl_rng_uniform(&r) * (keep + 1));
            if (from != s && keep > 0) {
                CHECK(hl_kv_share(&kp, s, from, keep) == HL_OK, "share");
                memcpy(want[s], want[from], (size_t)keep * sizeof(int32_t));
                shares++;
            } else if (from == s) {
                CHECK(hl_kv_share(&kp, s, s, keep) == HL_OK, "own prefix");
            } else {
                hl_kv_release(&kp, s);
                keep = 0;
            }
            len_of[s] = keep;
            int n = 1 + (int)(hl_rng_uniform(&r) * 30);
            if (keep + n > MAXSEQ)
                n = MAXSEQ - keep;
            if (n < 1)
                continue;
            hl_status st = hl_kv_prepare(&kp, s, keep, n, cp, &nc);
            if (st == HL_ERR_NOMEM) {
                hl_kv_release(&kp, s);
                len_of[s] = 0;
                continue;
            }
            CHECK(st == HL_OK, "prefill: %s", hl_last_error());
            apply_copies(cp, nc);
            copies += nc;
            for (int t = 0; t < n; t++) {
                int p = keep + t;
                int32_t b = hl_kv_table(&kp, s)[p / BS];
                phys[b][p % BS] = want[s][p] = tag++;
            }
            len_of[s] = keep + n;
        } else if (len_of[s] < MAXSEQ) {
            int p = len_of[s];
            hl_status st = hl_kv_prepare(&kp, s, p, 1, cp, &nc);
            if (st == HL_ERR_NOMEM) {
                hl_kv_release(&kp, s);
                len_of[s] = 0;
                continue;
            }
            CHECK(st == HL_OK, "decode: %s", hl_last_error());
            apply_copies(cp, nc);
            copies += nc;
            int32_t b = hl_kv_table(&kp, s)[p / BS];
            phys[b][p % BS] = want[s][p] = tag++;
            len_of[s] = p + 1;
        }
        steps++;
        bad = verify(&kp);
        if (!bad && hl_kv_check(&kp) != 0)
            bad = -1;
    }
    CHECK(bad == 0, "every slot reads back what it wrote (first bad: slot %d position %d, code %d)", bad / 1000,
          bad % 1000 - 1, bad);
    CHECK(shares > 100 && copies > 10, "the workload exercised sharing (%d) and copy-on-write (%d)", shares, copies);
    CHECK(kp.peak_used <= NBLK, "peak %d", kp.peak_used);
    for (int s = 0; s < SLOTS; s++)
        hl_kv_release(&kp, s);
    CHECK(hl_kv_used(&kp) == 0 && hl_kv_check(&kp) == 0, "all blocks back after %d steps", steps);
    hl_kv_pages_free(&kp);
}

int main(void) {
    basics();
    random_workload();
    return hl_test_finish();
}
