/* Tokenised examples and the micro-batches built from them (docs/method.md §5).
 *
 * hl_examples stores every example's ids and labels back to back (one allocation each,
 * grown geometrically while loading). hl_data_cursor walks the training examples in a
 * seeded shuffled order, epoch after epoch; its whole state is (epoch, position, the data
 * RNG state at the start of the epoch), so a checkpoint can store it and a resumed run
 * sees exactly the same order. hl_microbatch pads a few examples to the longest of them:
 * pad id 0, right padding, labels −100 on pads. hl_packed packs whole examples several to a
 * row instead (the layout of hl_llama_batch / the seam's hl_batch), so that little of what is
 * computed is padding. */
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
    /* A cache, not state: the next epoch's order once hl_cursor_peek has looked past the end of
     * this one (a checkpoint still needs only epoch, pos, consumed, epoch_rng). */
    int64_t *next_perm;   /* [n] or NULL */
    hl_rng next_rng;      /* rng after the next epoch's shuffle */
    int next_ready;
} hl_data_cursor;

/* A cursor at epoch 0, position 0, with the HL_RNG_STREAM_DATA stream of `seed`. */
hl_status hl_cursor_init(hl_data_cursor *c, int64_t n, uint64_t seed, int shuffle);
/* Restore a saved cursor (epoch, pos, consumed, epoch_rng): rebuilds that epoch's order. */
hl_status hl_cursor_restore(hl_data_cursor *c, int64_t n, int shuffle, int64_t epoch, int64_t pos, int64_t consumed,
                            const hl_rng *epoch_rng);
void hl_cursor_free(hl_data_cursor *c);
/* Next example index; starts a new (reshuffled) epoch when the current one is used up. */
int64_t hl_cursor_next(hl_data_cursor *c);
/* The index hl_cursor_next would return now, without taking it: epoch, pos, consumed and the
 * RNG states stay as they are (at the end of an epoch the next epoch's order is computed and
 * kept for hl_cursor_next). -1 only when the memory for that order cannot be had. */
int64_t hl_cursor_peek(hl_data_cursor *c);

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
/* Share of the computed tokens (B·T) that are padding. */
static inline double hl_microbatch_padding_share(const hl_microbatch *mb) {
    int64_t all = (int64_t)mb->B * mb->T;
    return all > 0 ? (double)(all - mb->n_tokens) / (double)all : 0.0;
}

/* ---- packed micro-batches ----
 * Up to `rows` rows of up to `row_len` tokens, filled with WHOLE examples in the order they
 * come (the data cursor's order): an example longer than max_len (<= row_len) is cut to its
 * first max_len tokens, as tokenisation already does for training examples; an example never
 * spans two rows; one that does not fit the space left in the current row starts the next row,
 * and when there is no next row it starts the next micro-batch (so the order of the examples is
 * never changed and no example is held back). The built batch is B rows of T = the longest row
 * (columns that would be padding in every row are not computed), each row packed from column 0,
 * pad id 0 and label −100 after its last example, examples as segments: the layout the engine
 * takes (hl_llama_batch; the backend seam's hl_batch).
 *
 * Geometry: rows = micro_batch, row_len = max_len gives rows like the padded micro-batch's;
 * rows = 1, row_len = micro_batch × max_len is one long row of whole examples with the same
 * token budget (less left over at row ends, the same memory; the engine allows rows longer than
 * its planned sequence as long as every example fits it). */
typedef struct {
    int cap_rows, row_len, max_len;
    int B, T;                 /* this batch: B rows of T (row stride T) */
    int32_t *tokens;          /* [B*T] */
    int32_t *labels;          /* [B*T] */
    int n_seq;                /* examples packed */
    int32_t *seq_start;       /* [n_seq] flat start (row·T + column) */
    int32_t *seq_len;         /* [n_seq] */
    int64_t *which;           /* [n_seq] example indices */
    int64_t n_tokens;         /* real (non-pad) tokens */
    int64_t cap_seq;          /* capacity of the per-example arrays (rows × row_len) */
    int32_t *row_fill;        /* [cap_rows] scratch */
} hl_packed;

hl_status hl_packed_init(hl_packed *pb, int rows, int row_len, int max_len);
void hl_packed_free(hl_packed *pb);
/* Pack examples which[0..n) in order, stopping at the first one that does not fit; *used = how
 * many were packed (>= 1 when n >= 1). An empty example is an error. */
hl_status hl_packed_fill(hl_packed *pb, const hl_examples *ex, const int64_t *which, int64_t n, int64_t *used);
/* Pack the cursor's next examples: peeks at each, takes it only once it is placed, so the
 * cursor ends right after the last example packed (the one that did not fit comes first in the
 * next micro-batch) and a checkpoint of the cursor resumes the same micro-batches. */
hl_status hl_packed_next(hl_packed *pb, const hl_examples *ex, hl_data_cursor *c);
/* Share of the computed tokens (B·T) that are padding. */
static inline double hl_packed_padding_share(const hl_packed *pb) {
    int64_t all = (int64_t)pb->B * pb->T;
    return all > 0 ? (double)(all - pb->n_tokens) / (double)all : 0.0;
}

/* Optimizer steps of a packed run. The micro-batches counted are those hl_packed_next builds
 * from a fresh cursor (n = ex->n, `seed`, shuffled) until `n_examples` examples (epochs × n for
 * a run of whole epochs) have been handed out; the last of them is packed full as usual (it may
 * hold examples of the following epoch, as a padded run's last step may). Steps =
 * ceil(micro-batches / grad_accum). Computed from the lengths and the seeded order alone, so
 * total steps and the learning-rate schedule are known before the first step; O(n_examples). */
hl_status hl_packed_count_steps(const hl_examples *ex, uint64_t seed, int rows, int row_len, int max_len,
                                int64_t n_examples, int grad_accum, int64_t *micro_batches, int64_t *steps);

#endif
