/* Paged KV-cache bookkeeping (see kv_pages.h): a free stack, reference counts, per-slot tables. */
#include "core/backend/kv_pages.h"

#include <stdlib.h>
#include <string.h>

hl_status hl_kv_pages_init(hl_kv_pages *kp, int n_blocks, int block_size, int slots, int max_seq) {
    memset(kp, 0, sizeof *kp);
    if (n_blocks < 1 || block_size < 1 || slots < 1 || max_seq < 1)
        return hl_fail(HL_ERR_ARG, "a paged cache needs blocks, a block size, slots and positions (got %d, %d, %d, %d)",
                       n_blocks, block_size, slots, max_seq);
    kp->n_blocks = n_blocks;
    kp->block_size = block_size;
    kp->slots = slots;
    kp->max_blocks = (max_seq + block_size - 1) / block_size;
    kp->table = malloc((size_t)slots * (size_t)kp->max_blocks * sizeof *kp->table);
    kp->n_table = calloc((size_t)slots, sizeof *kp->n_table);
    kp->ref = calloc((size_t)n_blocks, sizeof *kp->ref);
    kp->free_ids = malloc((size_t)n_blocks * sizeof *kp->free_ids);
    if (!kp->table || !kp->n_table || !kp->ref || !kp->free_ids) {
        hl_kv_pages_free(kp);
        return hl_fail(HL_ERR_NOMEM, "out of memory for the KV block tables");
    }
    for (size_t i = 0; i < (size_t)slots * (size_t)kp->max_blocks; i++)
        kp->table[i] = -1;
    /* lowest ids on top of the stack: a fresh cache fills the pool from its start */
    for (int i = 0; i < n_blocks; i++)
        kp->free_ids[i] = n_blocks - 1 - i;
    kp->n_free = n_blocks;
    return HL_OK;
}

void hl_kv_pages_free(hl_kv_pages *kp) {
    free(kp->table);
    free(kp->n_table);
    free(kp->ref);
    free(kp->free_ids);
    memset(kp, 0, sizeof *kp);
}

static int32_t take_block(hl_kv_pages *kp) {
    int32_t b = kp->free_ids[--kp->n_free];
    kp->ref[b] = 1;
    int used = hl_kv_used(kp);
    if (used > kp->peak_used)
        kp->peak_used = used;
    return b;
}

static void drop_ref(hl_kv_pages *kp, int32_t b) {
    if (--kp->ref[b] == 0)
        kp->free_ids[kp->n_free++] = b;
}

/* Return the slot's blocks from logical index `keep` on. */
static void truncate_to(hl_kv_pages *kp, int slot, int keep) {
    int32_t *t = kp->table + (int64_t)slot * kp->max_blocks;
    for (int i = keep; i < kp->n_table[slot]; i++) {
        drop_ref(kp, t[i]);
        t[i] = -1;
    }
    if (kp->n_table[slot] > keep)
        kp->n_table[slot] = keep;
}

hl_status hl_kv_prepare(hl_kv_pages *kp, int slot, int pos0, int n, hl_kv_copy *copies, int *n_copies) {
    *n_copies = 0;
    if (slot < 0 || slot >= kp->slots || pos0 < 0 || n < 1)
        return hl_fail(HL_ERR_ARG, "KV cache slot %d positions %d+%d out of range", slot, pos0, n);
    const int bs = kp->block_size, first = pos0 / bs, last = (pos0 + n - 1) / bs;
    if (last >= kp->max_blocks)
        return hl_fail(HL_ERR_RANGE, "positions %d..%d exceed the cache's %d positions per sequence", pos0, pos0 + n - 1,
                       kp->max_blocks * bs);
    if (pos0 > kp->n_table[slot] * bs)
        return hl_fail(HL_ERR_STATE, "KV cache slot %d holds %d positions; a write at position %d leaves a gap", slot,
                       kp->n_table[slot] * bs, pos0);
    int32_t *t = kp->table + (int64_t)slot * kp->max_blocks;
    /* blocks after the last written one are stale */
    truncate_to(kp, slot, last + 1);
    int have = kp->n_table[slot];
    int need = last + 1 - have; /* new blocks at the end */
    for (int i = first; i < have; i++)
        need += kp->ref[t[i]] > 1; /* shared blocks in the written range: copies */
    if (need > kp->n_free)
        return hl_fail(HL_ERR_NOMEM,
                       "the KV cache is full: %d more blocks of %d positions needed, %d free of %d (use fewer "
                       "sequences at once or shorter generations)",
                       need, bs, kp->n_free, kp->n_blocks);
    for (int i = first; i < have; i++)
        if (kp->ref[t[i]] > 1) {
            int32_t nb = take_block(kp);
            copies[(*n_copies)++] = (hl_kv_copy){t[i], nb};
            drop_ref(kp, t[i]);
            t[i] = nb;
            kp->cow_copies++;
        }
    for (int i = have; i <= last; i++)
        t[i] = take_block(kp);
    kp->n_table[slot] = last + 1;
    return HL_OK;
}

hl_status hl_kv_share(hl_kv_pages *kp, int dst, int src, int n) {
    if (dst < 0 || dst >= kp->slots || src < 0 || src >= kp->slots || n < 0)
        return hl_fail(HL_ERR_ARG, "KV share from slot %d to slot %d of %d positions out of range", src, dst, n);
    const int bs = kp->block_size, nb = (n + bs - 1) / bs;
    if (nb > kp->n_table[src])
        return hl_fail(HL_ERR_STATE, "KV cache slot %d holds %d positions, %d were to be shared", src,
                       kp->n_table[src] * bs, n);
    if (dst == src) {
        truncate_to(kp, dst, nb);
        return HL_OK;
    }
    const int32_t *s = kp->table + (int64_t)src * kp->max_blocks;
    int32_t *t = kp->table + (int64_t)dst * kp->max_blocks;
    /* take the references first: dst may already hold some of src's blocks */
    for (int i = 0; i < nb; i++)
        kp->ref[s[i]]++;
    truncate_to(kp, dst, 0);
    for (int i = 0; i < nb; i++)
        t[i] = s[i];
    kp->n_table[dst] = nb;
    kp->shared_blocks += nb;
    return HL_OK;
}

void hl_kv_release(hl_kv_pages *kp, int slot) {
    if (slot >= 0 && slot < kp->slots)
        truncate_to(kp, slot, 0);
}

int hl_kv_check(const hl_kv_pages *kp) {
    int32_t *cnt = calloc((size_t)kp->n_blocks, sizeof *cnt);
    if (!cnt)
        return -1;
    int bad = 0;
    for (int s = 0; s < kp->slots; s++) {
        const int32_t *t = hl_kv_table(kp, s);
        for (int i = 0; i < kp->max_blocks; i++) {
            if (i < kp->n_table[s]) {
                if (t[i] < 0 || t[i] >= kp->n_blocks)
                    bad |= 1;
                else
                    cnt[t[i]]++;
            } else if (t[i] != -1) {
                bad |= 2;
            }
        }
    }
    int free_seen = 0;
    for (int b = 0; b < kp->n_blocks; b++) {
        if (cnt[b] != kp->ref[b])
            bad |= 4;
        free_seen += kp->ref[b] == 0;
    }
    if (free_seen != kp->n_free)
        bad |= 8;
    for (int i = 0; i < kp->n_free; i++) {
        int32_t b = kp->free_ids[i];
        if (b < 0 || b >= kp->n_blocks || kp->ref[b] != 0 || cnt[b] < 0)
            bad |= 16;
        else
            cnt[b] = -1; /* seen: a duplicate fails */
    }
    free(cnt);
    return bad;
}
