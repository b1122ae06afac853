/* Tokenised examples and the micro-batches built from them (docs/method.md §5).
 *
 * hl_examples stores every example's ids and labels back to back (one allocation each,
 * grown geometrically while loading). hl_data_cursor walks the training examples in a
 * seeded shuffled order, epoch after epoch; its whole state is (epoch, position, the data
 * RNG state at the start of the epoch), so a checkpoint can store it and a resumed run
 * sees exactly the same order. hl_microbatch pads a few examples to the longest of them:
 * pad id 0, right padding, labels −100 on pads. */
#ifndef HL_BATCH_H
#define HL_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "core/base/rng.h"
#include "core/base/status.h"

#define HL_IGNORE_LABEL (-100)

typedef struct {
    int64_t n;            /* examples */
    int64_t *off;         /* [n + 1]: example i is ids[off[i] .. off[i+1]) */
    int32_t *ids;         /* token ids */
    int32_t *labels;      /* HL_IGNORE_LABEL or = ids (HF convention: label of token t) */
    int64_t *source;      /* [n]: caller's tag (e.g. record index in its file) */
    int64_t n_tokens;     /* total ids */
    int64_t n_targets;    /* total non-ignored labels */
    int32_t max_len;      /* longest example */
    int64_t cap_n, cap_tokens;
} hl_examples;

void hl_examples_init(hl_examples *ex);
void hl_examples_free(hl_examples *ex);
/* Append one example (copied). */
hl_status hl_examples_add(hl_examples *ex, const int32_t *ids, const int32_t *labels, int64_t len, int64_t source);
static inline int64_t hl_examples_len(const hl_examples *ex, int64_t i) { return ex->off[i + 1] - ex->off[i]; }
/* Targets of example i as the loss counts them: labels at positions 1..len-1 that are not ignored. */
int64_t hl_examples_targets(const hl_examples *ex, int64_t i);

/* ---- the data cursor ---- */
typedef struct {
    int64_t n;            /* examples per epoch */
    int shuffle;          /* 0: file order (eval) */
    int64_t epoch;        /* 0-based */
    int64_t pos;          /* next index into perm within this epoch */
    int64_t consumed;     /* examples handed out since the start of the run */
    hl_rng epoch_rng;     /* data RNG state at the start of `epoch` (before its shuffle) */
    hl_rng rng;           /* state after this epoch's shuffle */
    int64_t *perm;        /* [n] this epoch's order */
} hl_data_cursor;

/* A cursor at epoch 0, position 0, with the HL_RNG_STREAM_DATA stream of `seed`. */
hl_status hl_cursor_init(hl_data_cursor *c, int64_t n, uint64_t seed, int shuffle);
/* Restore a saved cursor (epoch, pos, consumed, epoch_rng): rebuilds that epoch's order. */
hl_status hl_cursor_restore(hl_data_cursor *c, int64_t n, int shuffle, int64_t epoch, int64_t pos, int64_t consumed,
                            const hl_rng *epoch_rng);
void hl_cursor_free(hl_data_cursor *c);
/* Next example index; starts a new (reshuffled) epoch when the current one is used up. */
int64_t hl_cursor_next(hl_data_cursor *c);

/* ---- micro-batches ---- */
typedef struct {
    int cap_b, cap_t;     /* capacity */
    int B, T;             /* this batch: B sequences padded to T (the longest) */
    int *tokens;          /* [B*T] (row stride T) */
    int *labels;          /* [B*T] */
    int *lengths;         /* [B] */
    int64_t *which;       /* [B] example indices */
    int64_t n_tokens;     /* real (non-pad) tokens */
} hl_microbatch;

hl_status hl_microbatch_init(hl_microbatch *mb, int cap_b, int cap_t);
void hl_microbatch_free(hl_microbatch *mb);
/* Fill with examples which[0..n) (n <= cap_b; every length <= cap_t). */
hl_status hl_microbatch_fill(hl_microbatch *mb, const hl_examples *ex, const int64_t *which, int n);

#endif
