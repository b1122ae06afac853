/* Tokenised examples, the seeded data cursor, padded and packed micro-batches (see batch.h). */
#include "core/text/batch.h"

#include <stdlib.h>
#include <string.h>

void hl_examples_init(hl_examples *ex) { memset(ex, 0, sizeof *ex); }

void hl_examples_free(hl_examples *ex) {
    free(ex->off);
    free(ex->ids);
    free(ex->labels);
    free(ex->source);
    memset(ex, 0, sizeof *ex);
}

hl_status hl_examples_add(hl_examples *ex, const int32_t *ids, const int32_t *labels, int64_t len, int64_t source) {
    if (len < 0 || len > INT32_MAX)
        return hl_fail(HL_ERR_ARG, "example length %lld out of range", (long long)len);
    if (ex->n + 1 >= ex->cap_n) {
        int64_t cap = ex->cap_n ? ex->cap_n * 2 : 1024;
        int64_t *off = realloc(ex->off, (size_t)(cap + 1) * sizeof *off);
        if (!off)
            return hl_fail(HL_ERR_NOMEM, "out of memory storing %lld examples", (long long)cap);
        ex->off = off;
        int64_t *src = realloc(ex->source, (size_t)cap * sizeof *src);
        if (!src)
            return hl_fail(HL_ERR_NOMEM, "out of memory storing %lld examples", (long long)cap);
        ex->source = src;
        if (ex->cap_n == 0)
            ex->off[0] = 0;
        ex->cap_n = cap;
    }
    if (ex->n_tokens + len > ex->cap_tokens) {
        int64_t cap = ex->cap_tokens ? ex->cap_tokens : 65536;
        while (cap < ex->n_tokens + len)
            cap *= 2;
        int32_t *ids2 = realloc(ex->ids, (size_t)cap * sizeof *ids2);
        if (!ids2)
            return hl_fail(HL_ERR_NOMEM, "out of memory storing %lld tokens", (long long)cap);
        ex->ids = ids2;
        int32_t *lab2 = realloc(ex->labels, (size_t)cap * sizeof *lab2);
        if (!lab2)
            return hl_fail(HL_ERR_NOMEM, "out of memory storing %lld tokens", (long long)cap);
        ex->labels = lab2;
        ex->cap_tokens = cap;
    }
    memcpy(ex->ids + ex->n_tokens, ids, (size_t)len * sizeof *ids);
    memcpy(ex->labels + ex->n_tokens, labels, (size_t)len * sizeof *labels);
    ex->n_tokens += len;
    ex->source[ex->n] = source;
    ex->n++;
    ex->off[ex->n] = ex->n_tokens;
    if (len > ex->max_len)
        ex->max_len = (int32_t)len;
    ex->n_targets += hl_examples_targets(ex, ex->n - 1);
    return HL_OK;
}

int64_t hl_examples_targets(const hl_examples *ex, int64_t i) {
    int64_t k = 0;
    for (int64_t t = ex->off[i] + 1; t < ex->off[i + 1]; t++)
        k += ex->labels[t] != HL_IGNORE_LABEL;
    return k;
}

/* ---- cursor ---- */

/* An epoch's order into perm[n] from the RNG state at its start; *rng ends after the shuffle. */
static void epoch_order(int64_t *perm, int64_t n, int shuffle, hl_rng *rng) {
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    if (!shuffle)
        return;
    /* Fisher-Yates from the back, with unbiased draws (64-bit indices). */
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)hl_rng_below(rng, (uint64_t)i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

static void cursor_shuffle(hl_data_cursor *c) {
    c->rng = c->epoch_rng;
    epoch_order(c->perm, c->n, c->shuffle, &c->rng);
}

hl_status hl_cursor_init(hl_data_cursor *c, int64_t n, uint64_t seed, int shuffle) {
    hl_rng r;
    hl_rng_seed(&r, seed, HL_RNG_STREAM_DATA);
    return hl_cursor_restore(c, n, shuffle, 0, 0, 0, &r);
}

hl_status hl_cursor_restore(hl_data_cursor *c, int64_t n, int shuffle, int64_t epoch, int64_t pos, int64_t consumed,
                            const hl_rng *epoch_rng) {
    memset(c, 0, sizeof *c);
    if (n <= 0)
        return hl_fail(HL_ERR_ARG, "no training examples");
    if (pos < 0 || pos > n || epoch < 0 || consumed < 0)
        return hl_fail(HL_ERR_FORMAT, "data cursor out of range (epoch %lld, position %lld of %lld)",
                       (long long)epoch, (long long)pos, (long long)n);
    c->perm = malloc((size_t)n * sizeof *c->perm);
    if (!c->perm)
        return hl_fail(HL_ERR_NOMEM, "out of memory for the data order");
    c->n = n;
    c->shuffle = shuffle;
    c->epoch = epoch;
    c->pos = pos;
    c->consumed = consumed;
    c->epoch_rng = *epoch_rng;
    cursor_shuffle(c);
    return HL_OK;
}

void hl_cursor_free(hl_data_cursor *c) {
    free(c->perm);
    free(c->next_perm);
    memset(c, 0, sizeof *c);
}

int64_t hl_cursor_next(hl_data_cursor *c) {
    if (c->pos >= c->n) {
        /* The next epoch continues the stream where this epoch's shuffle left it. */
        c->epoch++;
        c->pos = 0;
        c->epoch_rng = c->rng;
        if (c->next_ready) { /* peeked already: the same order, computed from the same state */
            int64_t *t = c->perm;
            c->perm = c->next_perm;
            c->next_perm = t;
            c->rng = c->next_rng;
            c->next_ready = 0;
        } else {
            cursor_shuffle(c);
        }
    }
    c->consumed++;
    return c->perm[c->pos++];
}

int64_t hl_cursor_peek(hl_data_cursor *c) {
    if (c->pos < c->n)
        return c->perm[c->pos];
    if (!c->next_ready) {
        if (!c->next_perm && !(c->next_perm = malloc((size_t)c->n * sizeof *c->next_perm)))
            return -1;
        c->next_rng = c->rng;
        epoch_order(c->next_perm, c->n, c->shuffle, &c->next_rng);
        c->next_ready = 1;
    }
    return c->next_perm[0];
}

/* ---- micro-batches ---- */

hl_status hl_microbatch_init(hl_microbatch *mb, int cap_b, int cap_t) {
    memset(mb, 0, sizeof *mb);
    if (cap_b < 1 || cap_t < 1)
        return hl_fail(HL_ERR_ARG, "micro-batch capacity %d x %d", cap_b, cap_t);
    size_t n = (size_t)cap_b * (size_t)cap_t;
    mb->tokens = malloc(n * sizeof *mb->tokens);
    mb->labels = malloc(n * sizeof *mb->labels);
    mb->lengths = malloc((size_t)cap_b * sizeof *mb->lengths);
    mb->which = malloc((size_t)cap_b * sizeof *mb->which);
    if (!mb->tokens || !mb->labels || !mb->lengths || !mb->which) {
        hl_microbatch_free(mb);
        return hl_fail(HL_ERR_NOMEM, "out of memory for a %d x %d micro-batch", cap_b, cap_t);
    }
    mb->cap_b = cap_b;
    mb->cap_t = cap_t;
    return HL_OK;
}

void hl_microbatch_free(hl_microbatch *mb) {
    free(mb->tokens);
    free(mb->labels);
    free(mb->lengths);
    free(mb->which);
    memset(mb, 0, sizeof *mb);
}

hl_status hl_microbatch_fill(hl_microbatch *mb, const hl_examples *ex, const int64_t *which, int n) {
    if (n < 1 || n > mb->cap_b)
        return hl_fail(HL_ERR_ARG, "micro-batch of %d sequences (capacity %d)", n, mb->cap_b);
    int T = 1;
    for (int b = 0; b < n; b++) {
        if (which[b] < 0 || which[b] >= ex->n)
            return hl_fail(HL_ERR_ARG, "example %lld out of range", (long long)which[b]);
        int64_t len = hl_examples_len(ex, which[b]);
        if (len > mb->cap_t)
            return hl_fail(HL_ERR_ARG, "example of %lld tokens exceeds the micro-batch length %d", (long long)len,
                           mb->cap_t);
        if (len > T)
            T = (int)len;
    }
    mb->B = n;
    mb->T = T;
    mb->n_tokens = 0;
    for (int b = 0; b < n; b++) {
        int64_t i = which[b], len = hl_examples_len(ex, i);
        int *tok = mb->tokens + (size_t)b * T, *lab = mb->labels + (size_t)b * T;
        for (int64_t t = 0; t < len; t++) {
            tok[t] = ex->ids[ex->off[i] + t];
            lab[t] = ex->labels[ex->off[i] + t];
        }
        for (int64_t t = len; t < T; t++) {
            tok[t] = 0; /* pad id 0 (= unk), right padding */
            lab[t] = HL_IGNORE_LABEL;
        }
        mb->lengths[b] = (int)len;
        mb->which[b] = i;
        mb->n_tokens += len;
    }
    return HL_OK;
}

/* ---- packed micro-batches ---- */

hl_status hl_packed_init(hl_packed *pb, int rows, int row_len, int max_len) {
    memset(pb, 0, sizeof *pb);
    if (rows < 1 || row_len < 1 || max_len < 1 || max_len > row_len)
        return hl_fail(HL_ERR_ARG, "packed micro-batch of %d rows x %d tokens for examples of up to %d tokens", rows,
                       row_len, max_len);
    size_t n = (size_t)rows * (size_t)row_len;
    pb->tokens = malloc(n * sizeof *pb->tokens);
    pb->labels = malloc(n * sizeof *pb->labels);
    pb->seq_start = malloc(n * sizeof *pb->seq_start);
    pb->seq_len = malloc(n * sizeof *pb->seq_len);
    pb->which = malloc(n * sizeof *pb->which);
    pb->row_fill = malloc((size_t)rows * sizeof *pb->row_fill);
    if (!pb->tokens || !pb->labels || !pb->seq_start || !pb->seq_len || !pb->which || !pb->row_fill) {
        hl_packed_free(pb);
        return hl_fail(HL_ERR_NOMEM, "out of memory for a packed %d x %d micro-batch", rows, row_len);
    }
    pb->cap_rows = rows;
    pb->row_len = row_len;
    pb->max_len = max_len;
    pb->cap_seq = (int64_t)n;
    return HL_OK;
}

void hl_packed_free(hl_packed *pb) {
    free(pb->tokens);
    free(pb->labels);
    free(pb->seq_start);
    free(pb->seq_len);
    free(pb->which);
    free(pb->row_fill);
    memset(pb, 0, sizeof *pb);
}

/* The placement rule, shared by the packer and the step count: the current row takes the
 * example if it fits, else the next row does (when there is one). */
typedef struct {
    int rows, row_len;
    int row, fill; /* current row and its tokens so far */
} pack_state;

static int pack_place(pack_state *ps, int len, int *row, int *col) {
    if (ps->fill + len > ps->row_len) {
        if (ps->row + 1 >= ps->rows)
            return 0;
        ps->row++;
        ps->fill = 0;
    }
    *row = ps->row;
    *col = ps->fill;
    ps->fill += len;
    return 1;
}

/* Length example i takes in a packed row (cut to max_len); 0 for an error. */
static int pack_len(const hl_packed *pb, const hl_examples *ex, int64_t i) {
    if (i < 0 || i >= ex->n) {
        hl_fail(HL_ERR_ARG, "example %lld out of range", (long long)i);
        return 0;
    }
    int64_t len = hl_examples_len(ex, i);
    if (len < 1) {
        hl_fail(HL_ERR_ARG, "example %lld is empty: nothing to pack", (long long)i);
        return 0;
    }
    return len > pb->max_len ? pb->max_len : (int)len;
}

static void pack_begin(hl_packed *pb, pack_state *ps) {
    ps->rows = pb->cap_rows;
    ps->row_len = pb->row_len;
    ps->row = ps->fill = 0;
    pb->n_seq = 0;
    pb->n_tokens = 0;
    memset(pb->row_fill, 0, (size_t)pb->cap_rows * sizeof *pb->row_fill);
}

/* Copy example i into the staging layout (row stride row_len); seq_start holds that layout's
 * flat start until pack_finish. */
static void pack_put(hl_packed *pb, const hl_examples *ex, int64_t i, int len, int row, int col) {
    int64_t at = (int64_t)row * pb->row_len + col;
    memcpy(pb->tokens + at, ex->ids + ex->off[i], (size_t)len * sizeof *pb->tokens);
    memcpy(pb->labels + at, ex->labels + ex->off[i], (size_t)len * sizeof *pb->labels);
    pb->seq_start[pb->n_seq] = (int32_t)at;
    pb->seq_len[pb->n_seq] = len;
    pb->which[pb->n_seq] = i;
    pb->n_seq++;
    pb->n_tokens += len;
    pb->row_fill[row] = col + len;
}

/* Rows used, T = the longest of them; rows moved to stride T (forward, so memmove in row order
 * is safe), padding written, starts converted. */
static void pack_finish(hl_packed *pb, const pack_state *ps) {
    int B = pb->n_seq ? ps->row + 1 : 0, T = 0;
    for (int b = 0; b < B; b++)
        T = pb->row_fill[b] > T ? pb->row_fill[b] : T;
    for (int b = 0; b < B; b++) {
        int32_t *tk = pb->tokens + (int64_t)b * T, *lb = pb->labels + (int64_t)b * T;
        memmove(tk, pb->tokens + (int64_t)b * pb->row_len, (size_t)pb->row_fill[b] * sizeof *tk);
        memmove(lb, pb->labels + (int64_t)b * pb->row_len, (size_t)pb->row_fill[b] * sizeof *lb);
        for (int t = pb->row_fill[b]; t < T; t++) {
            tk[t] = 0; /* pad id 0 (= unk), as the padded micro-batch */
            lb[t] = HL_IGNORE_LABEL;
        }
    }
    for (int e = 0; e < pb->n_seq; e++) {
        int32_t at = pb->seq_start[e];
        pb->seq_start[e] = (at / pb->row_len) * T + at % pb->row_len;
    }
    pb->B = B;
    pb->T = T;
}

hl_status hl_packed_fill(hl_packed *pb, const hl_examples *ex, const int64_t *which, int64_t n, int64_t *used) {
    pack_state ps;
    pack_begin(pb, &ps);
    int64_t k = 0;
    for (; k < n; k++) {
        int len = pack_len(pb, ex, which[k]), row, col;
        if (!len)
            return HL_ERR_ARG;
        if (!pack_place(&ps, len, &row, &col))
            break;
        pack_put(pb, ex, which[k], len, row, col);
    }
    pack_finish(pb, &ps);
    if (used)
        *used = k;
    return HL_OK;
}

hl_status hl_packed_next(hl_packed *pb, const hl_examples *ex, hl_data_cursor *c) {
    if (c->n != ex->n)
        return hl_fail(HL_ERR_ARG, "data cursor over %lld examples used with %lld examples", (long long)c->n,
                       (long long)ex->n);
    pack_state ps;
    pack_begin(pb, &ps);
    for (;;) {
        int64_t i = hl_cursor_peek(c);
        if (i < 0)
            return hl_fail(HL_ERR_NOMEM, "out of memory for the next epoch's data order");
        int len = pack_len(pb, ex, i), row, col;
        if (!len)
            return HL_ERR_ARG;
        if (!pack_place(&ps, len, &row, &col))
            break;
        hl_cursor_next(c);
        pack_put(pb, ex, i, len, row, col);
    }
    pack_finish(pb, &ps);
    return HL_OK;
}

hl_status hl_packed_count_steps(const hl_examples *ex, uint64_t seed, int rows, int row_len, int max_len,
                                int64_t n_examples, int grad_accum, int64_t *micro_batches, int64_t *steps) {
    if (rows < 1 || row_len < 1 || max_len < 1 || max_len > row_len || grad_accum < 1)
        return hl_fail(HL_ERR_ARG, "packed micro-batch of %d rows x %d tokens for examples of up to %d tokens, "
                                   "accumulation %d",
                       rows, row_len, max_len, grad_accum);
    hl_data_cursor c;
    HL_TRY(hl_cursor_init(&c, ex->n, seed, 1));
    hl_packed probe = {.cap_rows = rows, .row_len = row_len, .max_len = max_len}; /* pack_len reads these */
    int64_t mb = 0;
    hl_status st = HL_OK;
    while (c.consumed < n_examples && !st) {
        pack_state ps = {rows, row_len, 0, 0};
        for (;;) {
            int64_t i = hl_cursor_peek(&c);
            if (i < 0) {
                st = hl_fail(HL_ERR_NOMEM, "out of memory for the next epoch's data order");
                break;
            }
            int len = pack_len(&probe, ex, i), row, col;
            if (!len) {
                st = HL_ERR_ARG;
                break;
            }
            if (!pack_place(&ps, len, &row, &col))
                break;
            hl_cursor_next(&c);
        }
        mb++;
    }
    hl_cursor_free(&c);
    if (st)
        return st;
    if (micro_batches)
        *micro_batches = mb;
    if (steps)
        *steps = (mb + grad_accum - 1) / grad_accum;
    return HL_OK;
}
