/* The backend seam (core/backend/backend.h) on the cpu backend:
 *  - names: "cpu", "auto", case and blanks; unknown or unavailable names fail listing what is
 *    available; hl_backend_resolve agrees with hl_backend_open;
 *  - info, threads, the memory plan (a session's plan equals hl_backend_plan's);
 *  - argument checks made before dispatch (batch shape, packed rows, token range, eval-only
 *    sessions, slab ranges);
 *  - a session's initial parameters equal hl_adapters_create's for the seed; slabs round-trip;
 *  - training through the seam: gradients equal central differences of the eval loss (read and
 *    perturbed through the slabs), accumulation with grad_scale, the dropout step, AdamW moves
 *    the parameters, a NaN gradient is refused with the parameters untouched;
 *  - routing statistics: training and eval accumulators are separate;
 *  - the decoder: prefill logits equal the session's logits, argmax equals the logits' argmax,
 *    a prefix shared from another slot gives the same continuation as running it, and the
 *    decoder keeps its own copy of the adapters. */
#include <math.h>
#include <string.h>

#include "core/backend/backend.h"
#include "hl_test.h"
#include "core/backend/cpu/gemm.h" /* whether this CPU multiplies bf16 natively */
#include "hl_tiny_model.h"

#define MB 2
#define MT 7

static const hl_llama_config tiny = {.dim = 16, .hidden_dim = 24, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                                     .head_dim = 4, .vocab_size = 29, .max_seq_len = 32, .rms_norm_eps = 1e-5f,
                                     .rope_theta = 10000.0f, .tie_word_embeddings = 0, .bos_id = 1, .eos_id = 2};

static void test_names(void) {
    hl_backend *be = NULL;
    CHECK(hl_backend_open(&be, "cpu") == HL_OK && be, "open cpu: %s", hl_last_error());
    hl_backend_close(be);
    CHECK(hl_backend_open(&be, "  CPU ") == HL_OK, "case and blanks: %s", hl_last_error());
    hl_backend_info info;
    CHECK(hl_backend_get_info(be, &info) == HL_OK && !strcmp(info.name, "cpu") && !info.is_gpu &&
              info.threads >= 1 && info.mem_total > 0 &&
              strstr(info.compute, hl_gemm_bf16_native() ? "oneDNN" : "OpenBLAS f32 ("),
          "info: %s %s %d", info.name, info.compute, info.threads);
    CHECK(hl_backend_set_threads(be, 1) == HL_OK && hl_backend_get_info(be, &info) == HL_OK && info.threads == 1 &&
              strstr(info.device, "1 thread"),
          "threads: %d (%s)", info.threads, info.device);
    hl_backend_close(be);
    CHECK(!strcmp(hl_backend_available(), "cpu"), "available: '%s'", hl_backend_available());
    char canon[32];
    CHECK(hl_backend_resolve("auto", canon, sizeof canon) == HL_OK && !strcmp(canon, "cpu"), "auto -> %s", canon);
    CHECK(hl_backend_open(&be, "auto") == HL_OK && be, "open auto");
    hl_backend_close(be);
    be = NULL;
    CHECK(hl_backend_open(&be, "tpu") == HL_ERR_NOT_FOUND && !be, "unknown device refused");
    CHECK(strstr(hl_last_error(), "tpu") && strstr(hl_last_error(), "available: cpu"), "message: %s",
          hl_last_error());
    CHECK(hl_backend_resolve("cuda:0", canon, sizeof canon) == HL_ERR_NOT_FOUND &&
              strstr(hl_last_error(), "CUDA") && strstr(hl_last_error(), "available: cpu"),
          "cuda without CUDA: %s", hl_last_error());
    CHECK(hl_backend_resolve("cpu:1", canon, sizeof canon) == HL_ERR_NOT_FOUND, "cpu:1 refused");
    CHECK(hl_backend_resolve("cuda:x", canon, sizeof canon) == HL_ERR_NOT_FOUND, "cuda:x refused");
    CHECK(hl_backend_resolve("", canon, sizeof canon) == HL_ERR_NOT_FOUND, "empty name refused");
}

static void fill_batch(int32_t *tokens, int32_t *labels, int32_t *lens) {
    int32_t l[MB] = {MT, 5};
    for (int b = 0; b < MB; b++) {
        lens[b] = l[b];
        for (int t = 0; t < MT; t++) {
            tokens[b * MT + t] = t < l[b] ? (int32_t)((b * 7 + t * 5 + 3) % tiny.vocab_size) : 0;
            labels[b * MT + t] = t < l[b] ? tokens[b * MT + t] : -100;
        }
    }
    labels[2] = -100; /* one masked target */
}

static double eval_loss(hl_session *s, const hl_batch *b) {
    float loss = 0;
    int64_t n = 0;
    double sums[MB];
    int64_t cnt[MB];
    if (hl_session_eval(s, b, &loss, &n, sums, cnt) != HL_OK)
        return NAN;
    double tot = 0;
    int64_t nn = 0;
    for (int i = 0; i < MB; i++)
        tot += sums[i], nn += cnt[i];
    return tot / (double)nn; /* the double-precision mean, better for differences than the float */
}

static void test_session(hl_backend *be, const hl_model *m) {
    hl_adapter_config ac = {HL_VARIANT_HYDRA, HL_TARGET_Q | HL_TARGET_V | HL_TARGET_GATE | HL_TARGET_DOWN, 3, 3,
                            6.0f, 0.0f};
    unsigned flags = HL_SESSION_TRAIN | HL_SESSION_STATS;
    hl_session *s = NULL;
    CHECK(hl_session_create(&s, be, m, &ac, 11, MB, MT, flags) == HL_OK, "session: %s", hl_last_error());
    if (!s)
        return;
    hl_mem_plan plan;
    CHECK(hl_backend_plan(be, &m->cfg, m->dtype, &ac, MB, MT, flags, &plan) == HL_OK &&
              !memcmp(&plan, hl_session_mem_plan(s), sizeof plan),
          "session plan equals hl_backend_plan");
    CHECK(plan.params == plan.grads && plan.moments == 2 * plan.params && plan.total >= plan.params * 4, "plan parts");

    const hl_adapters *lay = hl_session_layout(s);
    hl_adapters ref;
    CHECK(hl_adapters_create(&ref, &m->cfg, &ac, 11) == HL_OK, "reference adapters");
    size_t n = lay->n_params;
    float *p = malloc(n * sizeof *p), *g = malloc(n * sizeof *g), *g2 = malloc(n * sizeof *g2);
    CHECK(n == ref.n_params && hl_session_read_slab(s, HL_SLAB_PARAMS, 0, n, p) == HL_OK &&
              !memcmp(p, ref.params, n * sizeof *p),
          "initial parameters are hl_adapters_create's for the seed");
    /* B heads start at 0: give them values so every gradient is non-trivial */
    for (int i = 0; i < lay->n_views; i++)
        if (lay->views[i].kind == 1)
            for (int64_t j = 0; j < lay->views[i].rows * lay->views[i].cols; j++)
                p[lay->views[i].offset + j] = 0.2f * sinf((float)(j + 3 * i));
    CHECK(hl_session_write_slab(s, HL_SLAB_PARAMS, 0, n, p) == HL_OK, "write params");

    int32_t tokens[MB * MT], labels[MB * MT], lens[MB], st[MB], sl[MB];
    fill_batch(tokens, labels, lens);
    hl_batch b;
    hl_batch_padded(&b, tokens, labels, lens, MB, MT, st, sl);
    CHECK(b.n_seq == MB && st[1] == MT && sl[1] == 5, "hl_batch_padded");

    /* gradients vs central differences of the eval loss */
    CHECK(hl_session_zero_grad(s) == HL_OK, "zero_grad");
    uint64_t step0 = hl_session_dropout_step(s);
    float loss = 0;
    int64_t nt = 0;
    CHECK(hl_session_train_microbatch(s, &b, 1.0f, &loss, &nt) == HL_OK, "train: %s", hl_last_error());
    CHECK(nt == (MT - 1) + (5 - 1) - 1, "targets: %lld", (long long)nt);
    CHECK(hl_session_dropout_step(s) == step0 + 1, "dropout step advances once per micro-batch");
    CHECK_CLOSE(loss, eval_loss(s, &b), 1e-5, "train loss == eval loss without dropout");
    hl_session_read_slab(s, HL_SLAB_GRADS, 0, n, g);
    int bad = 0, tried = 0;
    for (size_t i = 0; i < n; i += n / 23 + 1, tried++) {
        float keep = p[i], h = 1e-2f;
        p[i] = keep + h;
        hl_session_write_slab(s, HL_SLAB_PARAMS, i, 1, &p[i]);
        double lp = eval_loss(s, &b);
        p[i] = keep - h;
        hl_session_write_slab(s, HL_SLAB_PARAMS, i, 1, &p[i]);
        double lm = eval_loss(s, &b);
        p[i] = keep;
        hl_session_write_slab(s, HL_SLAB_PARAMS, i, 1, &p[i]);
        double fd = (lp - lm) / (2.0 * h);
        if (fabs(fd - g[i]) > 2e-3 + 2e-2 * fabs(fd)) {
            bad++;
            fprintf(stderr, "  param %zu: grad %.6g, central difference %.6g\n", i, (double)g[i], fd);
        }
    }
    CHECK(bad == 0 && tried > 10, "%d of %d gradients differ from central differences", bad, tried);

    /* accumulation: two half-scaled micro-batches give the same gradient */
    hl_session_zero_grad(s);
    hl_session_train_microbatch(s, &b, 0.5f, NULL, NULL);
    hl_session_train_microbatch(s, &b, 0.5f, NULL, NULL);
    hl_session_read_slab(s, HL_SLAB_GRADS, 0, n, g2);
    double md = 0;
    for (size_t i = 0; i < n; i++)
        md = fmax(md, fabs((double)g2[i] - g[i]));
    CHECK(md < 1e-5, "accumulated gradients differ by %g", md);

    /* routing statistics: training fills TRAIN, evaluation fills EVAL only when asked */
    hl_routing_stats tr, ev;
    hl_routing_stats_init(&tr, m->cfg.n_layers, lay->N);
    hl_routing_stats_init(&ev, m->cfg.n_layers, lay->N);
    hl_session_routing_reset(s, HL_STATS_TRAIN);
    hl_session_routing_reset(s, HL_STATS_EVAL);
    hl_session_train_microbatch(s, &b, 1.0f, NULL, NULL);
    eval_loss(s, &b);
    CHECK(hl_session_routing(s, HL_STATS_TRAIN, &tr) == HL_OK && hl_session_routing(s, HL_STATS_EVAL, &ev) == HL_OK,
          "routing: %s", hl_last_error());
    int gate = 0 * HL_TARGET_COUNT + 4;
    CHECK(tr.tokens[gate] == MT + 5 && ev.tokens[gate] == 0, "train %lld tokens, eval %lld before collecting",
          (long long)tr.tokens[gate], (long long)ev.tokens[gate]);
    hl_session_collect_eval_stats(s, 1);
    eval_loss(s, &b);
    hl_session_collect_eval_stats(s, 0);
    hl_session_routing(s, HL_STATS_TRAIN, &tr);
    hl_session_routing(s, HL_STATS_EVAL, &ev);
    CHECK(tr.tokens[gate] == MT + 5 && ev.tokens[gate] == MT + 5, "after collecting: train %lld, eval %lld",
          (long long)tr.tokens[gate], (long long)ev.tokens[gate]);
    hl_routing_stats bad_shape;
    hl_routing_stats_init(&bad_shape, m->cfg.n_layers, lay->N + 1);
    CHECK(hl_session_routing(s, HL_STATS_TRAIN, &bad_shape) == HL_ERR_SHAPE, "routing shape checked");
    hl_routing_stats_free(&bad_shape);
    hl_routing_stats_free(&tr);
    hl_routing_stats_free(&ev);

    /* AdamW: moves the parameters, fills the moments; a NaN gradient leaves them alone */
    hl_optim_config oc = hl_optim_defaults();
    double gn = 0;
    hl_session_read_slab(s, HL_SLAB_PARAMS, 0, n, p);
    CHECK(hl_session_optim_step(s, 1, 1e-2f, &oc, &gn) == HL_OK && gn > 0, "optim step: %s", hl_last_error());
    hl_session_read_slab(s, HL_SLAB_PARAMS, 0, n, g2);
    CHECK(memcmp(p, g2, n * sizeof *p) != 0, "parameters moved");
    hl_session_read_slab(s, HL_SLAB_ADAM_V, 0, n, g);
    double vs = 0;
    for (size_t i = 0; i < n; i++)
        vs += g[i];
    CHECK(vs > 0, "second moment filled");
    float nan = NAN;
    hl_session_write_slab(s, HL_SLAB_GRADS, 3, 1, &nan);
    CHECK(hl_session_optim_step(s, 2, 1e-2f, &oc, &gn) == HL_ERR_NUMERIC, "NaN gradient refused");
    hl_session_read_slab(s, HL_SLAB_PARAMS, 0, n, p);
    CHECK(!memcmp(p, g2, n * sizeof *p), "parameters untouched by the refused step");
    CHECK(hl_session_optim_step(s, 0, 1e-2f, &oc, &gn) == HL_ERR_ARG, "step count 0 refused");
    CHECK(hl_session_reduce_grads(s, NULL) == HL_OK, "one process: reduction is a no-op");

    /* argument checks before dispatch */
    hl_batch bb = b;
    bb.B = MB + 1;
    CHECK(hl_session_train_microbatch(s, &bb, 1.0f, NULL, NULL) == HL_ERR_ARG, "too many rows refused");
    bb = b;
    bb.T = MT + 1;
    CHECK(hl_session_eval(s, &bb, NULL, NULL, NULL, NULL) == HL_ERR_ARG, "too long rows refused");
    int32_t pst[3] = {0, 3, MT}, psl[3] = {3, 4, 5};
    bb = b;
    bb.n_seq = 3;
    bb.seq_start = pst;
    bb.seq_len = psl;
    { /* packed rows go through the seam: each example's eval sum equals that example run alone */
        double psum[3], one_sum;
        int64_t pcnt[3], one_cnt;
        CHECK(hl_session_eval(s, &bb, NULL, NULL, psum, pcnt) == HL_OK, "packed rows taken: %s", hl_last_error());
        for (int e = 0; e < 3; e++) {
            hl_batch ob;
            int32_t ol = psl[e], ost, osl;
            hl_batch_padded(&ob, tokens + pst[e], labels + pst[e], &ol, 1, psl[e], &ost, &osl);
            CHECK(hl_session_eval(s, &ob, NULL, NULL, &one_sum, &one_cnt) == HL_OK, "alone: %s", hl_last_error());
            CHECK(pcnt[e] == one_cnt && fabs(psum[e] - one_sum) <= 1e-6 * fabs(one_sum),
                  "packed example %d: sum %.9g over %lld targets, alone %.9g over %lld", e, psum[e],
                  (long long)pcnt[e], one_sum, (long long)one_cnt);
        }
        CHECK(hl_session_train_microbatch(s, &bb, 1.0f, NULL, NULL) == HL_OK, "packed training micro-batch: %s",
              hl_last_error());
    }
    { /* one row longer than the planned seq (the trainer's packed layout): taken while the tokens fit
       * (B*T <= batch*seq) and every example is <= seq; each example's sum equals it alone */
        int32_t rst[2] = {0, MT}, rsl[2] = {MT, 5};
        hl_batch rb = {1, MB * MT, tokens, labels, 2, rst, rsl};
        double rsum[2], one_sum;
        int64_t rcnt[2], one_cnt;
        CHECK(hl_session_eval(s, &rb, NULL, NULL, rsum, rcnt) == HL_OK, "one row of %d: %s", MB * MT, hl_last_error());
        for (int e = 0; e < 2; e++) {
            hl_batch ob;
            int32_t ol = rsl[e], ost, osl;
            hl_batch_padded(&ob, tokens + rst[e], labels + rst[e], &ol, 1, rsl[e], &ost, &osl);
            CHECK(hl_session_eval(s, &ob, NULL, NULL, &one_sum, &one_cnt) == HL_OK, "alone: %s", hl_last_error());
            CHECK(rcnt[e] == one_cnt && fabs(rsum[e] - one_sum) <= 1e-6 * fabs(one_sum),
                  "long-row example %d: sum %.9g over %lld targets, alone %.9g", e, rsum[e], (long long)rcnt[e],
                  one_sum);
        }
        int32_t lst[1] = {0}, lsl[1] = {MT + 1};
        hl_batch lb = {1, MB * MT, tokens, labels, 1, lst, lsl};
        CHECK(hl_session_eval(s, &lb, NULL, NULL, NULL, NULL) == HL_ERR_ARG && strstr(hl_last_error(), "at most"),
              "an example longer than the planned seq refused: %s", hl_last_error());
        rb.T = MB * MT + 1;
        CHECK(hl_session_eval(s, &rb, NULL, NULL, NULL, NULL) == HL_ERR_ARG, "more tokens than planned refused");
    }
    int32_t gap_st[3] = {0, 4, MT}, gap_sl[3] = {3, 3, 5};
    bb.seq_start = gap_st;
    bb.seq_len = gap_sl;
    CHECK(hl_session_train_microbatch(s, &bb, 1.0f, NULL, NULL) == HL_ERR_ARG && strstr(hl_last_error(), "gap"),
          "a gap between examples refused: %s", hl_last_error());
    tokens[3] = tiny.vocab_size;
    CHECK(hl_session_train_microbatch(s, &b, 1.0f, NULL, NULL) == HL_ERR_RANGE, "token outside the vocabulary");
    tokens[3] = 3;
    float x[4];
    CHECK(hl_session_read_slab(s, HL_SLAB_PARAMS, n - 2, 4, x) == HL_ERR_RANGE, "slab range checked");
    CHECK(hl_session_read_slab(s, (hl_slab)7, 0, 1, x) == HL_ERR_ARG, "unknown slab refused");

    /* an eval session: no training calls, no gradient slab */
    hl_session *e = NULL;
    CHECK(hl_session_create(&e, be, m, &ac, 11, MB, MT, 0) == HL_OK, "eval session: %s", hl_last_error());
    CHECK(e && hl_session_train_microbatch(e, &b, 1.0f, NULL, NULL) == HL_ERR_STATE, "train on an eval session");
    CHECK(e && hl_session_read_slab(e, HL_SLAB_GRADS, 0, 1, x) == HL_ERR_STATE, "eval session has no gradients");
    CHECK(e && hl_session_mem_plan(e)->grads == 0 && hl_session_mem_plan(e)->moments == 0, "eval plan");
    hl_session_free(e);
    CHECK(hl_session_create(&e, be, m, NULL, 0, MB, MT, HL_SESSION_TRAIN) == HL_ERR_STATE && !e,
          "training the base model refused");

    free(p), free(g), free(g2);
    hl_adapters_free(&ref);
    hl_session_free(s);
}

static void test_decoder(hl_backend *be, const hl_model *m) {
    const int V = tiny.vocab_size;
    hl_adapter_config ac = {HL_VARIANT_HYDRA, HL_TARGET_K | HL_TARGET_O | HL_TARGET_UP, 2, 2, 4.0f, 0.0f};
    hl_adapters *ad = calloc(1, sizeof *ad);
    CHECK(hl_adapters_create(ad, &m->cfg, &ac, 5) == HL_OK, "adapters");
    for (size_t i = 0; i < ad->n_params; i++)
        ad->params[i] += 0.05f * cosf((float)i);
    /* the session's logits for one row of MT tokens */
    hl_session *s = NULL;
    CHECK(hl_session_create(&s, be, m, &ac, 5, 1, MT, 0) == HL_OK, "session: %s", hl_last_error());
    hl_session_write_slab(s, HL_SLAB_PARAMS, 0, ad->n_params, ad->params);
    int32_t tokens[MT] = {1, 7, 3, 9, 11, 4, 20}, len = MT, st0, sl0;
    hl_batch b;
    hl_batch_padded(&b, tokens, NULL, &len, 1, MT, &st0, &sl0);
    float *full = malloc((size_t)MT * V * sizeof *full), *dl = malloc((size_t)MT * V * sizeof *dl);
    CHECK(hl_session_logits(s, &b, full) == HL_OK, "session logits: %s", hl_last_error());

    hl_decoder *d = NULL;
    CHECK(hl_decoder_create(&d, be, m, ad, 3, MT, MT) == HL_OK, "decoder: %s", hl_last_error());
    hl_adapters_free(ad); /* the decoder holds its own copy */
    free(ad);
    if (!d)
        return;
    CHECK(hl_decoder_bytes(d) > 0, "decoder bytes");
    int p0 = 0, sl = 0;
    CHECK(hl_decoder_forward(d, tokens, 1, MT, &p0, &sl, dl, 1, NULL) == HL_OK, "prefill: %s", hl_last_error());
    double md = 0;
    for (int i = 0; i < MT * V; i++)
        md = fmax(md, fabs((double)dl[i] - full[i]));
    CHECK(md < 1e-4, "decoder prefill logits equal the session's (max diff %g)", md);

    /* slot 1: positions 0..3 shared from slot 0, then positions 4..6 run one by one */
    CHECK(hl_decoder_share_prefix(d, 1, 0, 4) == HL_OK, "share prefix");
    float step[2 * 29];
    int32_t am[2];
    md = 0;
    int am_ok = 1;
    for (int t = 4; t < MT; t++) {
        int slot = 1, pos = t;
        CHECK(hl_decoder_forward(d, tokens + t, 1, 1, &pos, &slot, step, 0, am) == HL_OK, "step %d", t);
        int best = 0;
        for (int v = 1; v < V; v++)
            if (step[v] > step[best])
                best = v;
        am_ok &= am[0] == best;
        for (int v = 0; v < V; v++)
            md = fmax(md, fabs((double)step[v] - full[t * V + v]));
    }
    CHECK(md < 1e-4, "continuation after a shared prefix equals the full run (max diff %g)", md);
    CHECK(am_ok, "argmax is the first index of the largest logit");
    /* argmax without logits; two sequences in one call */
    int32_t two[2] = {5, 6};
    int pos2[2] = {MT - 1, 0}, slots2[2] = {0, 2};
    CHECK(hl_decoder_forward(d, two, 2, 1, pos2, slots2, NULL, 0, am) == HL_OK && am[0] >= 0 && am[0] < V,
          "argmax only: %s", hl_last_error());
    int dup[2] = {2, 2};
    CHECK(hl_decoder_forward(d, two, 2, 1, pos2, dup, NULL, 0, am) == HL_ERR_ARG, "a slot twice in one call");
    int far = MT;
    CHECK(hl_decoder_forward(d, two, 1, 1, &far, NULL, NULL, 0, am) == HL_ERR_RANGE, "position past the context");
    CHECK(hl_decoder_forward(d, two, 1, 1, &p0, NULL, NULL, 0, NULL) == HL_ERR_ARG, "no output asked");
    CHECK(hl_decoder_release(d, 1) == HL_OK && hl_decoder_release(d, 3) == HL_ERR_ARG, "release");
    hl_decoder_free(d);
    hl_session_free(s);
    free(full);
    free(dl);
}

int main(void) {
    test_names();
    hl_backend *be = NULL;
    if (hl_backend_open(&be, "cpu") != HL_OK)
        return 1;
    hl_tiny_model tm;
    hl_tiny_model_init(&tm, &tiny, HL_DTYPE_F32, 3);
    test_session(be, &tm.m);
    test_decoder(be, &tm.m);
    hl_tiny_model_free(&tm);
    hl_backend_close(be);
    return hl_test_finish();
}
