/* Tokenised examples, the seeded data cursor and padded micro-batches (see batch.h). */
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

static void cursor_shuffle(hl_data_cursor *c) {
    for (int64_t i = 0; i < c->n; i++)
        c->perm[i] = i;
    c->rng = c->epoch_rng;
    if (!c->shuffle)
        return;
    /* Fisher-Yates from the back, with unbiased draws (64-bit indices). */
    for (int64_t i = c->n - 1; i > 0; i--) {
        int64_t j = (int64_t)hl_rng_below(&c->rng, (uint64_t)i + 1);
        int64_t t = c->perm[i];
        c->perm[i] = c->perm[j];
        c->perm[j] = t;
    }
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
    memset(c, 0, sizeof *c);
}

int64_t hl_cursor_next(hl_data_cursor *c) {
    if (c->pos >= c->n) {
        /* The next epoch continues the stream where this epoch's shuffle left it. */
        c->epoch++;
        c->pos = 0;
        c->epoch_rng = c->rng;
        cursor_shuffle(c);
    }
    c->consumed++;
    return c->perm[c->pos++];
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
