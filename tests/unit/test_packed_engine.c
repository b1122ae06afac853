/* Packed micro-batches through the whole engine: several examples per row, attention kept
 * within each example, positions restarting at 0, the loss shift never crossing an example
 * boundary.
 *
 * A tiny random model with grouped-query attention (4 query heads over 2 kv heads) and an
 * untied head, adapters on all seven projections, for each variant (HydraLoRA, LoRA, LoRA-Split,
 * uniform gate). Seven examples of uneven lengths (one of a single token, so without targets)
 * with masked prompt prefixes are packed into 3 rows of 20: a full row, a row ending in padding
 * and a row with one example. Against the same examples run ONE AT A TIME through the
 * lengths-based API:
 *  - eval: per-example loss sums and target counts, the mean loss;
 *  - training: the adapter gradients of the packed micro-batch (grad_scale 1: the gradient of the
 *    mean over all its targets) equal the sum of the single-example gradients each scaled by
 *    n_e / N (so they add up to the same mean): every tensor within 1e-6 relative, ‖Δ‖₂/‖g‖₂
 *    (f32: the products see the rows at other offsets and in other groupings, which moves
 *    activations by an ulp or so; measured here up to ~7e-7, the largest element error up to
 *    ~1e-6 of the tensor's largest magnitude);
 *  - logits of every example's rows; padding rows are 0;
 *  - routing statistics: the same token counts, top-1 counts and weight sums.
 * Also: gradient checkpointing gives the same bits on a packed batch (with dropout on); one row
 * of 60 holding the same examples gives the same numbers as 3 rows of 20; the padded special
 * case (one example per row from column 0) gives the bits of the lengths-based call; malformed
 * batches are refused with their reasons.
 * Adapter dropout is 0 in the comparisons with single examples: its masks are keyed by the row
 * index within a micro-batch, so a packed example draws other masks than it does alone. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/adapter/adapter.h"
#include "core/backend/cpu/gemm.h"
#include "core/backend/cpu/llama.h"
#include "core/base/rng.h"
#include "hl_test.h"
#include "hl_tiny_model.h"

#define NEX 7
#define ROWS 3
#define ROWLEN 20
#define V 29

static const int ex_len[NEX] = {5, 9, 3, 12, 1, 7, 6};
/* rows: {0,1,2} = 17 of 20, {3,4,5} = 20 of 20, {6} = 6 of 20 */
static const int ex_row[NEX] = {0, 0, 0, 1, 1, 1, 2};
static int32_t ex_ids[NEX][ROWLEN], ex_lab[NEX][ROWLEN];

static hl_rng rng;

static void make_examples(void) {
    for (int e = 0; e < NEX; e++) {
        /* even examples: a masked prompt prefix; odd ones are all target (like `score --ids`), so
         * their first label is a real id that a shift across the boundary would pick up */
        int prompt = e % 2 ? -1 : (int)hl_rng_below(&rng, (uint64_t)(ex_len[e] / 2 + 1));
        for (int t = 0; t < ex_len[e]; t++) {
            ex_ids[e][t] = (int32_t)hl_rng_below(&rng, V);
            ex_lab[e][t] = t <= prompt ? -100 : ex_ids[e][t];
        }
    }
}

typedef struct {
    int B, T;
    int32_t tokens[ROWS * ROWLEN * 3], labels[ROWS * ROWLEN * 3];
    int32_t start[NEX], len[NEX];
} packed;

/* The examples at their rows, B rows of T (row_of NULL: everything in one row). */
static void pack(packed *p, int B, int T, const int *row_of) {
    p->B = B, p->T = T;
    int fill[ROWS * 3] = {0};
    for (int i = 0; i < B * T; i++)
        p->tokens[i] = 0, p->labels[i] = -100;
    for (int e = 0; e < NEX; e++) {
        int r = row_of ? row_of[e] : 0;
        p->start[e] = r * T + fill[r];
        p->len[e] = ex_len[e];
        memcpy(p->tokens + p->start[e], ex_ids[e], (size_t)ex_len[e] * 4);
        memcpy(p->labels + p->start[e], ex_lab[e], (size_t)ex_len[e] * 4);
        fill[r] += ex_len[e];
    }
}

static hl_llama_batch as_batch(const packed *p) {
    hl_llama_batch b = {p->B, p->T, p->tokens, p->labels, NEX, p->start, p->len};
    return b;
}

/* ‖a − b‖₂ / ‖b‖₂ */
static double rel_l2(const float *a, const float *b, int64_t n) {
    double w = 0, m = 0;
    for (int64_t i = 0; i < n; i++)
        w += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), m += (double)b[i] * b[i];
    return m > 0 ? sqrt(w / m) : sqrt(w);
}

/* max |a - b| over max |b| */
static double rel_err(const float *a, const float *b, int64_t n) {
    double w = 0, m = 0;
    for (int64_t i = 0; i < n; i++)
        w = fmax(w, fabs((double)a[i] - b[i])), m = fmax(m, fabs((double)b[i]));
    return m > 0 ? w / m : w;
}

static void test_variant(const hl_tiny_model *tm, hl_variant variant, int N) {
    static const char *names[] = {"hydra", "lora", "lora-split", "uniform"};
    const char *vn = names[variant];
    const hl_llama_config *cfg = &tm->m.cfg;
    hl_adapter_config ac = {.variant = variant, .targets = 0x7f, .r = 3, .n_heads = N, .alpha = 6.0f, .dropout = 0};
    hl_adapters ad;
    CHECK(hl_adapters_create(&ad, cfg, &ac, 17) == HL_OK, "adapters: %s", hl_last_error());
    for (int i = 0; i < ad.n_views; i++) /* non-zero B so that A and router gradients are not zero */
        if (ad.views[i].kind == 1)
            for (int64_t j = 0; j < ad.views[i].rows * ad.views[i].cols; j++)
                ad.params[ad.views[i].offset + j] = 0.3f * (2.0f * hl_rng_uniform(&rng) - 1.0f);
    hl_llama *ctx, *ctx_ck;
    CHECK(hl_llama_create(&ctx, &tm->m, &ad, ROWS, ROWLEN, HL_LLAMA_TRAIN | HL_LLAMA_STATS) == HL_OK, "ctx: %s",
          hl_last_error());
    CHECK(hl_llama_create(&ctx_ck, &tm->m, &ad, ROWS, ROWLEN, HL_LLAMA_TRAIN | HL_LLAMA_CHECKPOINT) == HL_OK,
          "ctx ck: %s", hl_last_error());
    packed p;
    pack(&p, ROWS, ROWLEN, ex_row);
    hl_llama_batch pb = as_batch(&p);

    /* ---- one at a time ---- */
    double one_sum[NEX];
    int64_t one_cnt[NEX], n_all = 0;
    float *one_logits = calloc((size_t)ROWS * ROWLEN * V, 4), *lg = malloc((size_t)ROWLEN * V * 4);
    hl_routing_stats one_rs = {0};
    if (ad.has_router)
        hl_routing_stats_init(&one_rs, cfg->n_layers, ad.N);
    hl_routing_stats ev = {0}; /* eval's routing statistics (the engine adds to it) */
    if (ad.has_router)
        hl_routing_stats_init(&ev, cfg->n_layers, ad.N);
    hl_llama_set_eval_stats(ctx, ad.has_router ? &ev : NULL);
    for (int e = 0; e < NEX; e++) {
        int len = ex_len[e];
        float l;
        hl_routing_stats *rs = ad.has_router ? &ev : NULL;
        if (rs)
            hl_routing_stats_reset(rs);
        CHECK(hl_llama_eval(ctx, ex_ids[e], ex_lab[e], &len, 1, len, &l, NULL, &one_sum[e], &one_cnt[e]) == HL_OK,
              "eval alone: %s", hl_last_error());
        if (rs) {
            for (int i = 0; i < cfg->n_layers * HL_TARGET_COUNT; i++) {
                one_rs.tokens[i] += rs->tokens[i];
                one_rs.entropy_sum[i] += rs->entropy_sum[i];
            }
            for (int i = 0; i < cfg->n_layers * HL_TARGET_COUNT * ad.N; i++) {
                one_rs.weight_sum[i] += rs->weight_sum[i];
                one_rs.top1[i] += rs->top1[i];
            }
        }
        n_all += one_cnt[e];
        CHECK(hl_llama_logits(ctx, ex_ids[e], &len, 1, len, lg) == HL_OK, "logits alone");
        memcpy(one_logits + (size_t)p.start[e] * V, lg, (size_t)len * V * 4);
    }
    CHECK(one_cnt[4] == 0 && n_all > 10, "%s: the 1-token example has no targets; %lld targets in all", vn,
          (long long)n_all);
    hl_adapters_zero_grad(&ad);
    double one_loss = 0;
    for (int e = 0; e < NEX; e++) {
        if (!one_cnt[e])
            continue;
        int len = ex_len[e];
        float l;
        CHECK(hl_llama_forward_backward(ctx, ex_ids[e], ex_lab[e], &len, 1, len, (float)one_cnt[e] / (float)n_all, &l,
                                        NULL) == HL_OK,
              "train alone: %s", hl_last_error());
        one_loss += (double)l * (double)one_cnt[e];
    }
    one_loss /= (double)n_all;
    float *g_one = malloc(ad.n_params * 4);
    memcpy(g_one, ad.grads, ad.n_params * 4);

    /* ---- packed: eval, routing, logits ---- */
    double sum[NEX];
    int64_t cnt[NEX], nt;
    float loss;
    hl_routing_stats *rs = ad.has_router ? &ev : NULL;
    if (rs)
        hl_routing_stats_reset(rs);
    CHECK(hl_llama_eval_packed(ctx, &pb, &loss, &nt, sum, cnt) == HL_OK, "packed eval: %s", hl_last_error());
    CHECK(nt == n_all, "%s: packed eval counts %lld targets, one at a time %lld", vn, (long long)nt,
          (long long)n_all);
    double worst = 0, tot = 0;
    int counts_ok = 1;
    for (int e = 0; e < NEX; e++) {
        counts_ok &= cnt[e] == one_cnt[e];
        tot += sum[e];
        if (one_cnt[e])
            worst = fmax(worst, fabs(sum[e] / cnt[e] - one_sum[e] / one_cnt[e]) / (one_sum[e] / one_cnt[e]));
    }
    CHECK(counts_ok, "%s: per-example target counts equal the single-example counts", vn);
    CHECK(worst <= 1e-6, "%s: per-example mean losses of the packed batch vs one at a time: worst rel %.3g", vn,
          worst);
    CHECK(fabs(loss - tot / nt) <= 1e-6 * fabs(loss) && fabs(loss - one_loss) <= 1e-6 * one_loss,
          "%s: packed mean loss %.9g, from the per-example sums %.9g, one at a time %.9g", vn, loss, tot / nt,
          one_loss);
    if (ad.has_router) {
        int tok_ok = 1, top_ok = 1;
        double ws = 0;
        for (int i = 0; i < cfg->n_layers * HL_TARGET_COUNT; i++)
            tok_ok &= rs->tokens[i] == one_rs.tokens[i] && rs->tokens[i] == (int64_t)(5 + 9 + 3 + 12 + 1 + 7 + 6);
        for (int i = 0; i < cfg->n_layers * HL_TARGET_COUNT * ad.N; i++) {
            top_ok &= rs->top1[i] == one_rs.top1[i];
            ws = fmax(ws, fabs(rs->weight_sum[i] - one_rs.weight_sum[i]) / fmax(1e-9, one_rs.weight_sum[i]));
        }
        CHECK(tok_ok, "%s: routing statistics count every token of every example, as one at a time", vn);
        CHECK(top_ok && ws <= 1e-6, "%s: routing top-1 counts equal and weight sums within %.3g", vn, ws);
        hl_routing_stats_free(&one_rs);
    }
    float *logits = malloc((size_t)ROWS * ROWLEN * V * 4);
    CHECK(hl_llama_logits_packed(ctx, &pb, logits) == HL_OK, "packed logits: %s", hl_last_error());
    double le = rel_err(logits, one_logits, (int64_t)ROWS * ROWLEN * V);
    int pad0 = 1;
    for (int i = 17 * V; i < 20 * V; i++)
        pad0 &= logits[i] == 0.0f;
    for (int i = 46 * V; i < 60 * V; i++)
        pad0 &= logits[i] == 0.0f;
    CHECK(le <= 1e-6 && pad0, "%s: packed logits vs one at a time: rel %.3g; padding rows zero: %d", vn, le, pad0);
    hl_llama_set_eval_stats(ctx, NULL);
    if (ad.has_router)
        hl_routing_stats_free(&ev);

    /* ---- packed: training ---- */
    hl_adapters_zero_grad(&ad);
    int64_t ntr;
    CHECK(hl_llama_forward_backward_packed(ctx, &pb, 1.0f, &loss, &ntr) == HL_OK, "packed train: %s",
          hl_last_error());
    CHECK(ntr == n_all && fabs(loss - one_loss) <= 1e-6 * one_loss, "%s: packed training loss %.9g vs %.9g", vn,
          loss, one_loss);
    float *g_pk = malloc(ad.n_params * 4);
    memcpy(g_pk, ad.grads, ad.n_params * 4);
    double gw = 0;
    const char *gw_name = "";
    int nonzero = 1;
    for (int i = 0; i < ad.n_views; i++) {
        const hl_param_view *pv = &ad.views[i];
        int64_t n = pv->rows * pv->cols;
        double e = rel_l2(g_pk + pv->offset, g_one + pv->offset, n);
        double mx = 0;
        for (int64_t j = 0; j < n; j++)
            mx = fmax(mx, fabs(g_one[pv->offset + j]));
        nonzero &= mx > 0;
        if (e > gw)
            gw = e, gw_name = pv->name;
    }
    CHECK(nonzero, "%s: every adapter tensor has a non-zero gradient (the comparison means something)", vn);
    CHECK(gw <= 1e-6, "%s: packed adapter gradients vs one at a time: worst relative L2 error %.3g (%s)", vn, gw,
          gw_name);

    /* one row of 60 holding the same examples: the same numbers */
    {
        packed w;
        pack(&w, 1, ROWS * ROWLEN, NULL);
        hl_llama_batch wb = as_batch(&w);
        float lw;
        hl_adapters_zero_grad(&ad);
        CHECK(hl_llama_forward_backward_packed(ctx, &wb, 1.0f, &lw, NULL) == HL_OK, "one long row: %s",
              hl_last_error());
        double e = rel_l2(ad.grads, g_pk, (int64_t)ad.n_params);
        CHECK(fabs(lw - loss) <= 1e-6 * loss && e <= 1e-6, "%s: one row of 60 vs 3 rows of 20: loss %.9g vs %.9g, "
              "gradients rel %.3g", vn, lw, loss, e);
    }

    /* checkpointing: the same bits on the packed batch, dropout on */
    {
        ad.cfg.dropout = 0.2f;
        float l1, l2;
        ad.dropout_step = 5;
        hl_adapters_zero_grad(&ad);
        hl_llama_forward_backward_packed(ctx, &pb, 0.5f, &l1, NULL);
        memcpy(g_pk, ad.grads, ad.n_params * 4);
        ad.dropout_step = 5;
        hl_adapters_zero_grad(&ad);
        hl_llama_forward_backward_packed(ctx_ck, &pb, 0.5f, &l2, NULL);
        CHECK(l1 == l2 && !memcmp(g_pk, ad.grads, ad.n_params * 4),
              "%s: gradient checkpointing gives the same bits on a packed batch", vn);
        CHECK(l1 != loss, "%s: dropout changes the packed loss", vn);
        ad.cfg.dropout = 0.0f;
    }

    /* the padded special case: one example per row at column 0 = the lengths-based call */
    {
        int32_t tk[ROWS * ROWLEN] = {0}, lb[ROWS * ROWLEN], st[ROWS], ln[ROWS];
        int lens[ROWS] = {9, 12, 6};
        const int ex[ROWS] = {1, 3, 6};
        for (int i = 0; i < ROWS * ROWLEN; i++)
            lb[i] = -100;
        for (int b = 0; b < ROWS; b++) {
            memcpy(tk + b * 12, ex_ids[ex[b]], (size_t)lens[b] * 4);
            memcpy(lb + b * 12, ex_lab[ex[b]], (size_t)lens[b] * 4);
            st[b] = b * 12, ln[b] = lens[b];
        }
        hl_llama_batch b = {ROWS, 12, tk, lb, ROWS, st, ln};
        float la, lb2;
        double sa[ROWS], sb[ROWS];
        int64_t ca[ROWS], cb[ROWS];
        hl_adapters_zero_grad(&ad);
        hl_llama_forward_backward(ctx, tk, lb, lens, ROWS, 12, 1.0f, &la, NULL);
        memcpy(g_pk, ad.grads, ad.n_params * 4);
        hl_adapters_zero_grad(&ad);
        hl_llama_forward_backward_packed(ctx, &b, 1.0f, &lb2, NULL);
        CHECK(la == lb2 && !memcmp(g_pk, ad.grads, ad.n_params * 4),
              "%s: a padded batch given as segments gives the bits of the lengths-based call", vn);
        hl_llama_eval(ctx, tk, lb, lens, ROWS, 12, &la, NULL, sa, ca);
        hl_llama_eval_packed(ctx, &b, &lb2, NULL, sb, cb);
        CHECK(la == lb2 && !memcmp(sa, sb, sizeof sa) && !memcmp(ca, cb, sizeof ca),
              "%s: ... and the same eval sums", vn);
    }
    free(one_logits), free(lg), free(logits), free(g_one), free(g_pk);
    hl_llama_free(ctx);
    hl_llama_free(ctx_ck);
    hl_adapters_free(&ad);
}

static void test_refusals(const hl_tiny_model *tm) {
    hl_llama *ctx;
    CHECK(hl_llama_create(&ctx, &tm->m, NULL, ROWS, ROWLEN, 0) == HL_OK, "eval ctx: %s", hl_last_error());
    packed p;
    pack(&p, ROWS, ROWLEN, ex_row);
    float loss;
    struct {
        const char *what, *needle;
        int B, T, e;
        int32_t start, len;
    } bad[] = {
        {"overlapping examples", "overlaps", ROWS, ROWLEN, 1, 3, 9},
        {"an example across a row end", "crosses the end of row 0", ROWS, ROWLEN, 2, 18, 3},
        {"an empty example", "is empty", ROWS, ROWLEN, 2, 14, 0},
        {"an example past the batch", "runs past", ROWS, ROWLEN, 6, 58, 6},
        {"more tokens than planned", "more than the 60 tokens", ROWS, ROWLEN + 1, -1, 0, 0},
        {"an example longer than the planned sequence", "at most 20", 1, ROWS * ROWLEN, 3, 17, 21},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        packed q = p;
        q.B = bad[i].B, q.T = bad[i].T;
        if (bad[i].e >= 0)
            q.start[bad[i].e] = bad[i].start, q.len[bad[i].e] = bad[i].len;
        hl_llama_batch b = as_batch(&q);
        hl_status st = hl_llama_eval_packed(ctx, &b, &loss, NULL, NULL, NULL);
        CHECK(st == HL_ERR_ARG && strstr(hl_last_error(), bad[i].needle), "%s refused: %d '%s'", bad[i].what, (int)st,
              hl_last_error());
    }
    packed q = p;
    q.tokens[p.start[5] + 2] = V;
    hl_llama_batch b = as_batch(&q);
    CHECK(hl_llama_eval_packed(ctx, &b, &loss, NULL, NULL, NULL) == HL_ERR_RANGE &&
              strstr(hl_last_error(), "sequence 5 position 2"),
          "a token outside the vocabulary names its example and position: '%s'", hl_last_error());
    q = p;
    q.labels[p.start[3] + 4] = -7;
    b = as_batch(&q);
    CHECK(hl_llama_eval_packed(ctx, &b, &loss, NULL, NULL, NULL) == HL_ERR_RANGE &&
              strstr(hl_last_error(), "sequence 3 position 4"),
          "a bad label names its example and position: '%s'", hl_last_error());
    /* the label of an example's first token is never read: anything there is accepted */
    q = p;
    q.labels[p.start[1]] = 12345; /* example 1 follows example 0 in row 0 */
    b = as_batch(&q);
    CHECK(hl_llama_eval_packed(ctx, &b, &loss, NULL, NULL, NULL) == HL_OK, "first-token label ignored: %s",
          hl_last_error());
    hl_llama_free(ctx);
}

int main(void) {
    hl_rng_seed(&rng, 2024, HL_RNG_STREAM_USER);
    make_examples();
    hl_llama_config cfg = {.dim = 24, .hidden_dim = 40, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                           .head_dim = 6, .vocab_size = V, .max_seq_len = 64, .rms_norm_eps = 1e-5f,
                           .rope_theta = 10000.0f, .tie_word_embeddings = 0};
    hl_tiny_model tm;
    hl_tiny_model_init(&tm, &cfg, HL_DTYPE_F32, 77);
    test_variant(&tm, HL_VARIANT_HYDRA, 3);
    test_variant(&tm, HL_VARIANT_LORA, 1);
    test_variant(&tm, HL_VARIANT_LORA_SPLIT, 3);
    test_variant(&tm, HL_VARIANT_UNIFORM, 3);
    test_refusals(&tm);
    hl_tiny_model_free(&tm);
    return hl_test_finish();
}
