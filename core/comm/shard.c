/* The sharding rule (see shard.h). */
#include "core/comm/shard.h"

void hl_shard_microbatches(int grad_accum, int size, int rank, int *first, int *count) {
    *first = 0;
    *count = 0;
    if (grad_accum < 1 || size < 1 || rank < 0 || rank >= size)
        return;
    int base = grad_accum / size, extra = grad_accum % size;
    *count = base + (rank < extra);
    *first = rank * base + (rank < extra ? rank : extra);
}

int hl_shard_owner(int grad_accum, int size, int a) {
    if (grad_accum < 1 || size < 1 || a < 0 || a >= grad_accum)
        return -1;
    int base = grad_accum / size, extra = grad_accum % size;
    /* the first `extra` ranks hold base+1 micro-batches each */
    int big = extra * (base + 1);
    if (a < big)
        return a / (base + 1);
    return extra + (a - big) / base; /* base >= 1 here: a < grad_accum means the small blocks exist */
}

void hl_shard_examples(int micro_batch, int grad_accum, int size, int rank, int64_t *first, int64_t *count) {
    int f, c;
    hl_shard_microbatches(grad_accum, size, rank, &f, &c);
    if (micro_batch < 1)
        c = 0;
    *first = (int64_t)f * micro_batch;
    *count = (int64_t)c * (micro_batch > 0 ? micro_batch : 0);
}
