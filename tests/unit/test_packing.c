/* The packer (core/text/batch.h): whole examples, in the cursor's order, next row / next micro-batch
 * when one does not fit; the cursor peek; resuming from a saved cursor builds the same
 * micro-batches; the padding share; the step count of a packed run. Expected layouts below are
 * worked out by hand from the rule in batch.h. */
#include <stdlib.h>
#include <string.h>

#include "core/text/batch.h"
#include "core/base/rng.h"
#include "hl_test.h"

/* Example i has length len[i], ids 100*i + t, labels −100 on its first token, ids after. */
static void make(hl_examples *ex, const int *len, int n) {
    hl_examples_init(ex);
    for (int i = 0; i < n; i++) {
        int32_t ids[64], lab[64];
        for (int t = 0; t < len[i]; t++)
            ids[t] = 100 * i + t, lab[t] = t ? ids[t] : HL_IGNORE_LABEL;
        CHECK(hl_examples_add(ex, ids, lab, len[i], i) == HL_OK, "add");
    }
}

/* The layout invariants the engine checks, plus: rows packed from column 0 without gaps, tokens
 * and labels of each example copied (cut to max_len), padding id 0 / label −100. */
static int layout_ok(const hl_packed *pb, const hl_examples *ex) {
    int ok = pb->B >= 1 && pb->T >= 1 && pb->n_seq >= 1;
    int64_t real = 0;
    int row = -1, next_col = 0;
    char *covered = calloc((size_t)pb->B * pb->T, 1);
    for (int e = 0; e < pb->n_seq && ok; e++) {
        int a = pb->seq_start[e], n = pb->seq_len[e], r = a / pb->T;
        ok &= n >= 1 && n <= pb->max_len && a / pb->T == (a + n - 1) / pb->T;
        if (r != row)
            ok &= r == row + 1 && a % pb->T == 0, row = r; /* a new row starts at column 0 */
        else
            ok &= a % pb->T == next_col;                   /* no gap after the previous example */
        next_col = a % pb->T + n;
        int64_t i = pb->which[e];
        for (int t = 0; t < n; t++) {
            ok &= pb->tokens[a + t] == ex->ids[ex->off[i] + t] && pb->labels[a + t] == ex->labels[ex->off[i] + t];
            covered[a + t] = 1;
        }
        real += n;
    }
    ok &= row == pb->B - 1 && real == pb->n_tokens;
    for (int64_t p = 0; p < (int64_t)pb->B * pb->T; p++)
        if (!covered[p])
            ok &= pb->tokens[p] == 0 && pb->labels[p] == HL_IGNORE_LABEL;
    free(covered);
    return ok;
}

static void test_rule(void) {
    /* rows of 10: [4 5] [3 7] [2] then 9 does not fit row 2 (2 + 9 > 10) and there is no row 3 */
    const int len[] = {4, 5, 3, 7, 2, 9, 1, 12};
    hl_examples ex;
    make(&ex, len, 8);
    hl_packed pb;
    CHECK(hl_packed_init(&pb, 3, 10, 10) == HL_OK, "init");
    int64_t which[8] = {0, 1, 2, 3, 4, 5, 6, 7}, used;
    CHECK(hl_packed_fill(&pb, &ex, which, 8, &used) == HL_OK, "fill: %s", hl_last_error());
    CHECK(used == 5 && pb.n_seq == 5 && pb.B == 3 && pb.T == 10, "5 examples in 3 rows of 10 (used %lld, %d x %d)",
          (long long)used, pb.B, pb.T);
    const int32_t want_start[5] = {0, 4, 10, 13, 20};
    CHECK(!memcmp(pb.seq_start, want_start, sizeof want_start), "starts 0 4 | 10 13 | 20");
    CHECK(layout_ok(&pb, &ex), "layout");
    CHECK(pb.n_tokens == 21 && hl_packed_padding_share(&pb) == 9.0 / 30.0, "21 real of 30: padding share %g",
          hl_packed_padding_share(&pb));
    /* the next micro-batch starts with the one that did not fit: [9 1] [12→10] */
    CHECK(hl_packed_fill(&pb, &ex, which + 5, 3, &used) == HL_OK && used == 3 && pb.B == 2 && pb.T == 10,
          "second batch (used %lld, %d x %d)", (long long)used, pb.B, pb.T);
    CHECK(pb.seq_len[2] == 10 && pb.seq_start[2] == 10 && layout_ok(&pb, &ex), "an example of 12 is cut to 10");
    CHECK(hl_packed_padding_share(&pb) == 0.0, "no padding");
    /* T is the longest row: rows of 10 holding [4] [3] -> (4 + 7 > 10) ... */
    int64_t w2[3] = {0, 3, 2};
    CHECK(hl_packed_fill(&pb, &ex, w2, 3, &used) == HL_OK && used == 3 && pb.B == 2 && pb.T == 10, "[4] [7 3]");
    int64_t w3[2] = {2, 0};
    CHECK(hl_packed_fill(&pb, &ex, w3, 2, &used) == HL_OK && pb.B == 1 && pb.T == 7 && layout_ok(&pb, &ex),
          "columns every row would pad are not computed: [3 4] is 1 x 7 (%d x %d)", pb.B, pb.T);
    /* one long row (rows 1 x 30, examples up to 10) */
    hl_packed one;
    CHECK(hl_packed_init(&one, 1, 30, 10) == HL_OK, "init long row");
    CHECK(hl_packed_fill(&one, &ex, which, 8, &used) == HL_OK && used == 6 && one.B == 1 && one.T == 30 &&
              layout_ok(&one, &ex),
          "one row of 30: 4+5+3+7+2+9 = 30 (used %lld, %d x %d)", (long long)used, one.B, one.T);
    hl_packed_free(&one);
    /* errors */
    hl_examples bad;
    const int blen[2] = {3, 0};
    make(&bad, blen, 2);
    int64_t wb[2] = {0, 1};
    CHECK(hl_packed_fill(&pb, &bad, wb, 2, &used) == HL_ERR_ARG && strstr(hl_last_error(), "empty"),
          "an empty example is refused: %s", hl_last_error());
    int64_t wr[1] = {8};
    CHECK(hl_packed_fill(&pb, &ex, wr, 1, &used) == HL_ERR_ARG, "an index out of range is refused");
    CHECK(hl_packed_init(&one, 2, 8, 10) == HL_ERR_ARG, "max_len above the row length is refused");
    hl_examples_free(&bad);
    hl_packed_free(&pb);
    hl_examples_free(&ex);
}

/* Peeking never changes what the cursor hands out, nor its saved state. */
static void test_peek(void) {
    const int64_t n = 7;
    hl_data_cursor a, b;
    hl_cursor_init(&a, n, 5, 1);
    hl_cursor_init(&b, n, 5, 1);
    int same = 1, state = 1;
    for (int i = 0; i < 4 * n; i++) {
        int64_t e = a.epoch, p = a.pos, c = a.consumed;
        hl_rng r = a.epoch_rng;
        int64_t pk = hl_cursor_peek(&a), pk2 = hl_cursor_peek(&a);
        state &= a.epoch == e && a.pos == p && a.consumed == c && !memcmp(&r, &a.epoch_rng, sizeof r);
        int64_t x = hl_cursor_next(&a);
        same &= pk == x && pk2 == x && x == hl_cursor_next(&b);
    }
    CHECK(same, "peek returns what next returns, across 4 epochs, and next is unchanged by peeking");
    CHECK(state, "peek leaves epoch, pos, consumed and the epoch's RNG state as they were");
    /* a cursor saved at an epoch end right after a peek restores to the same stream */
    hl_cursor_free(&a);
    hl_cursor_free(&b);
    hl_cursor_init(&a, n, 5, 1);
    for (int i = 0; i < n; i++)
        hl_cursor_next(&a);
    hl_cursor_peek(&a); /* computes the next epoch's order */
    CHECK(hl_cursor_restore(&b, n, 1, a.epoch, a.pos, a.consumed, &a.epoch_rng) == HL_OK, "restore");
    for (int i = 0; i < 2 * n; i++)
        same &= hl_cursor_next(&a) == hl_cursor_next(&b);
    CHECK(same, "a cursor restored from the state saved at a peeked epoch end continues identically");
    hl_cursor_free(&a);
    hl_cursor_free(&b);
}

/* Packing from the cursor; stopping and resuming from a saved cursor builds the same batches. */
static void test_resume(void) {
    enum { N = 23, MB = 40 };
    int len[N];
    hl_rng r;
    hl_rng_seed(&r, 9, HL_RNG_STREAM_USER);
    for (int i = 0; i < N; i++)
        len[i] = 1 + (int)hl_rng_below(&r, 16);
    hl_examples ex;
    make(&ex, len, N);
    hl_packed pb;
    hl_packed_init(&pb, 2, 16, 16);
    hl_data_cursor c;
    hl_cursor_init(&c, N, 77, 1);
    /* reference run: MB micro-batches, keep what each held */
    int64_t which[MB][64];
    int nseq[MB];
    int64_t saved_epoch = 0, saved_pos = 0, saved_consumed = 0, handed = 0;
    hl_rng saved_rng = c.epoch_rng;
    int ok = 1;
    for (int m = 0; m < MB; m++) {
        if (m == 17) /* a "checkpoint" */
            saved_epoch = c.epoch, saved_pos = c.pos, saved_consumed = c.consumed, saved_rng = c.epoch_rng;
        ok &= hl_packed_next(&pb, &ex, &c) == HL_OK && layout_ok(&pb, &ex);
        nseq[m] = pb.n_seq;
        memcpy(which[m], pb.which, (size_t)pb.n_seq * sizeof(int64_t));
        handed += pb.n_seq;
    }
    CHECK(ok, "40 micro-batches from the cursor, each a valid layout");
    CHECK(c.consumed == handed, "the cursor handed out exactly the packed examples (%lld vs %lld)",
          (long long)c.consumed, (long long)handed);
    /* the examples come in the cursor's order */
    hl_data_cursor plain;
    hl_cursor_init(&plain, N, 77, 1);
    int order = 1;
    for (int m = 0; m < MB; m++)
        for (int e = 0; e < nseq[m]; e++)
            order &= which[m][e] == hl_cursor_next(&plain);
    CHECK(order, "packed examples follow the cursor's order exactly, across epochs");
    hl_cursor_free(&plain);
    hl_data_cursor d;
    CHECK(hl_cursor_restore(&d, N, 1, saved_epoch, saved_pos, saved_consumed, &saved_rng) == HL_OK, "restore");
    int same = 1;
    for (int m = 17; m < MB; m++) {
        hl_packed_next(&pb, &ex, &d);
        same &= pb.n_seq == nseq[m] && !memcmp(pb.which, which[m], (size_t)pb.n_seq * sizeof(int64_t));
    }
    CHECK(same, "resumed from the cursor saved before micro-batch 17: the same micro-batches");
    hl_cursor_free(&c);
    hl_cursor_free(&d);
    hl_packed_free(&pb);
    hl_examples_free(&ex);
}

/* hl_packed_count_steps against packing micro-batches from a fresh cursor. */
static void test_count(void) {
    int len[50];
    hl_rng r;
    hl_rng_seed(&r, 3, HL_RNG_STREAM_USER);
    for (int i = 0; i < 50; i++)
        len[i] = 1 + (int)hl_rng_below(&r, 30);
    hl_examples ex;
    make(&ex, len, 50);
    struct {
        int n, rows, row_len, max_len, accum;
        int64_t target;
    } cases[] = {{50, 4, 32, 32, 1, 50}, {50, 4, 32, 32, 3, 150}, {50, 1, 128, 32, 2, 100},
                 {3, 4, 64, 32, 1, 9} /* 3 examples: one micro-batch spans several epochs */};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        hl_examples sub;
        make(&sub, len, cases[k].n);
        int64_t mb = -1, steps = -1;
        CHECK(hl_packed_count_steps(&sub, 11, cases[k].rows, cases[k].row_len, cases[k].max_len, cases[k].target,
                                    cases[k].accum, &mb, &steps) == HL_OK,
              "count: %s", hl_last_error());
        hl_packed pb;
        hl_packed_init(&pb, cases[k].rows, cases[k].row_len, cases[k].max_len);
        hl_data_cursor c;
        hl_cursor_init(&c, sub.n, 11, 1);
        int64_t built = 0;
        while (c.consumed < cases[k].target) {
            hl_packed_next(&pb, &sub, &c);
            built++;
        }
        CHECK(mb == built && steps == (built + cases[k].accum - 1) / cases[k].accum,
              "case %zu: %lld micro-batches counted, %lld built; %lld steps", k, (long long)mb, (long long)built,
              (long long)steps);
        hl_cursor_free(&c);
        hl_packed_free(&pb);
        hl_examples_free(&sub);
    }
    int64_t s1, s2, s3;
    hl_packed_count_steps(&ex, 11, 4, 32, 32, 500, 1, NULL, &s1);
    hl_packed_count_steps(&ex, 11, 4, 32, 32, 500, 1, NULL, &s2);
    hl_packed_count_steps(&ex, 11, 1, 128, 32, 500, 1, NULL, &s3);
    CHECK(s1 == s2 && s3 <= s1, "deterministic (%lld, %lld); one long row needs no more micro-batches (%lld)",
          (long long)s1, (long long)s2, (long long)s3);
    hl_examples_free(&ex);
}

int main(void) {
    test_rule();
    test_peek();
    test_resume();
    test_count();
    return hl_test_finish();
}
