/* Paged KV-cache bookkeeping (device-independent, plain C): which fixed-size blocks of a
 * backend's key/value pool hold which positions of which cache slot. A GPU decoder keeps its
 * keys/values in one pool of `n_blocks` blocks of `block_size` positions (per layer); each slot
 * has a block table (logical block i of the slot -> physical block id). Sequences of different
 * lengths then share the pool without fragmentation, and a prefix that several slots hold (a
 * few-shot prompt) lives once: hl_kv_share makes the destination's table point at the source's
 * blocks (reference counts), and a later write into a shared block copies it first
 * (copy-on-write: hl_kv_prepare returns the block copies the backend must perform before it
 * writes). Nothing here touches device memory; the backend mirrors the tables to the device.
 *
 * Semantics of a slot: its table covers positions [0, covered) where covered = n_table ·
 * block_size; the positions the caller wrote are a prefix of that. hl_kv_prepare(slot, pos0, n)
 * makes positions [pos0, pos0 + n) writable: blocks are allocated up to the last one needed,
 * blocks after it are returned (the caller rewrote position pos0, so anything after is stale),
 * and shared blocks in the written range are replaced by private copies. */
#ifndef HL_KV_PAGES_H
#define HL_KV_PAGES_H

#include <stdint.h>

#include "core/base/status.h"

typedef struct {
    int32_t src, dst; /* copy every layer's keys and values of block src into block dst */
} hl_kv_copy;

typedef struct {
    int n_blocks, block_size, slots, max_blocks; /* max_blocks: table entries per slot */
    int32_t *table;    /* [slots, max_blocks] physical block ids (-1 past n_table) */
    int32_t *n_table;  /* [slots] blocks in each slot's table */
    int32_t *ref;      /* [n_blocks] slots referencing each block (0: free) */
    int32_t *free_ids; /* stack of free block ids */
    int n_free;
    int peak_used;     /* most blocks in use at once */
    long shared_blocks; /* block references taken by sharing (prefix reuse), over the life */
    long cow_copies;    /* copies made on write */
} hl_kv_pages;

/* All blocks free; tables empty. HL_ERR_ARG for non-positive sizes, HL_ERR_NOMEM. */
hl_status hl_kv_pages_init(hl_kv_pages *kp, int n_blocks, int block_size, int slots, int max_seq);
void hl_kv_pages_free(hl_kv_pages *kp);

/* Make positions [pos0, pos0 + n) of `slot` writable (see above). Positions [0, pos0) must be
 * covered (HL_ERR_STATE otherwise). Copies to perform (at most max_blocks) are written to
 * copies[0 .. *n_copies). When the pool lacks free blocks no block is taken (stale blocks past
 * the write are still returned) and HL_ERR_NOMEM says how many were needed and free. */
hl_status hl_kv_prepare(hl_kv_pages *kp, int slot, int pos0, int n, hl_kv_copy *copies, int *n_copies);

/* Positions [0, n) of dst become those of src (n <= what src covers): dst's old blocks are
 * returned, dst's table takes src's first ceil(n / block_size) blocks (shared, reference +1).
 * dst == src or n == 0: dst keeps (at most) those blocks of its own. */
hl_status hl_kv_share(hl_kv_pages *kp, int dst, int src, int n);

/* Every block of the slot is returned (shared ones when their last reference goes). */
void hl_kv_release(hl_kv_pages *kp, int slot);

static inline int hl_kv_used(const hl_kv_pages *kp) { return kp->n_blocks - kp->n_free; }
static inline const int32_t *hl_kv_table(const hl_kv_pages *kp, int slot) {
    return kp->table + (int64_t)slot * kp->max_blocks;
}

/* Internal consistency (reference counts equal table references, free stack = blocks with
 * ref 0, no duplicates): 0 when consistent. For tests. */
int hl_kv_check(const hl_kv_pages *kp);

#endif
