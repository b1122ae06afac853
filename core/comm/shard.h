/* The data-parallel sharding rule: which part of an optimizer step each rank computes.
 *
 * One optimizer step consumes micro_batch × grad_accum examples (or packed rows) from the ONE
 * global data cursor, as micro-batches a = 0 .. grad_accum-1; micro-batch a holds the cursor's
 * entries [a·micro_batch, (a+1)·micro_batch) of the step, and its dropout masks use the global
 * micro-batch counter (dropout step) d0 + a, where d0 is the counter at the start of the step.
 * With K ranks, rank k computes a contiguous block of those micro-batches:
 *
 *     count_k = floor(G / K) + (k < G mod K),   first_k = Σ_{j<k} count_j        (G = grad_accum)
 *
 * so ranks hold consecutive, disjoint blocks in rank order whose sizes differ by at most one,
 * and reading the ranks' blocks in rank order gives micro-batches 0..G-1: the same examples,
 * the same order, the same dropout masks as one process. Every rank advances the cursor over the
 * whole step (all G × micro_batch entries) and sets its dropout counter to d0 + G afterwards, so
 * the data cursor and the counter — what a checkpoint saves — are identical on every rank and
 * independent of K; a checkpoint resumes with any K. K need not divide G (the larger blocks go
 * to the lower ranks and the step waits for them); with K > G, ranks k >= G compute nothing and
 * only take part in the reductions. The step's loss is the mean of the G micro-batch losses
 * added in order a = 0..G-1 after the per-micro-batch values are gathered (bit-identical to one
 * process given the same micro-batch losses); gradients and routing statistics are summed over
 * ranks (core/comm/comm.h). */
#ifndef HL_SHARD_H
#define HL_SHARD_H

#include <stdint.h>

/* Rank `rank` of `size`: micro-batches [*first, *first + *count) of 0..grad_accum-1. Arguments
 * out of range (grad_accum < 1, size < 1, rank outside 0..size-1) give an empty block. */
void hl_shard_microbatches(int grad_accum, int size, int rank, int *first, int *count);

/* The rank that computes micro-batch a (0 <= a < grad_accum). */
int hl_shard_owner(int grad_accum, int size, int a);

/* Entries of the step's slice of the data cursor for rank `rank`: [*first, *first + *count)
 * of 0 .. micro_batch·grad_accum - 1. */
void hl_shard_examples(int micro_batch, int grad_accum, int size, int rank, int64_t *first, int64_t *count);

#endif
