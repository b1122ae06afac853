/* Generation: the stories260K greedy story of docs/file-formats.md §7.1 byte for byte (text and the
 * 257 ids) from each of the four model forms; the llama2.c sampled run (-t 1.0 -p 0.9
 * -s 133742, text prefix quoted in docs/file-formats.md §7.1); the BOS stop after 345 tokens; KV-cache
 * logits equal to a full recomputation (hl_session_logits) at every position for a batch of
 * prompts of different lengths, with and without an adapter; batching equals one-by-one;
 * stop strings, streaming and cancellation. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/adapter/adapter.h"
#include "core/backend/backend.h"
#include "core/eval/generate.h"
#include "core/model/model.h"
#include "core/model/tokenizer/tokenizer.h"
#include "hl_test.h"
#include "tests/unit/hl_stories_golden.h"

/* docs/file-formats.md §7.1 quotes the beginning of llama2.c's sampled story. */
static const char *SAMPLED_PREFIX =
    "Once upon a time, there was a little boy named Timmy. Timmy loved to play with his toys and eat sandwiches. One "
    "day, Timmy's mom told him it was time to rest for a while. Timmy's friend Billy came over and took him a down.";

static char models[1024];
static hl_backend *be; /* everything here computes on the cpu backend, opened by name */

typedef struct {
    char buf[8192];
    size_t len;
    int calls;
    int stop_after; /* callback returns 1 after this many calls (0: never) */
} stream_sink;

static int sink_token(void *user, int seq, int token, const char *text, size_t len) {
    stream_sink *s = user;
    if (len && s->len + len < sizeof s->buf) {
        memcpy(s->buf + s->len, text, len);
        s->len += len;
    }
    s->calls++;
    return s->stop_after && s->calls >= s->stop_after;
}

static int load(hl_model *m, hl_tokenizer **tok, const char *rel, const char *tok_rel) {
    char p[1200], t[1200];
    snprintf(p, sizeof p, "%s/%s", models, rel);
    if (hl_model_load(m, p) != HL_OK) {
        CHECK(0, "load %s: %s", rel, hl_last_error());
        return 0;
    }
    if (tok_rel)
        snprintf(t, sizeof t, "%s/%s", models, tok_rel);
    if (hl_generate_load_tokenizer(tok, m, p, tok_rel ? t : NULL) != HL_OK) {
        CHECK(0, "tokenizer for %s: %s", rel, hl_last_error());
        hl_model_free(m);
        return 0;
    }
    return 1;
}

static void test_golden_forms(void) {
    const char *forms[4][2] = {{"stories260K/stories260K.bin", "stories260K/tok512.bin"},
                               {"stories260K-hf", NULL},
                               {"stories260K-hf-f16-sharded", NULL},
                               {"stories260K-gguf/stories260K.gguf", NULL}};
    for (int f = 0; f < 4; f++) {
        hl_model m;
        hl_tokenizer *tok = NULL;
        if (!load(&m, &tok, forms[f][0], forms[f][1]))
            continue;
        hl_generator *g = NULL;
        CHECK(hl_generator_create(&g, be, &m, NULL, tok) == HL_OK, "%s", hl_last_error());
        hl_gen_params p;
        hl_gen_params_default(&p);
        stream_sink sink = {.len = 0};
        p.on_token = sink_token;
        p.user = &sink;
        hl_gen_result r;
        const char *prompt = "";
        CHECK(hl_generate(g, &prompt, 1, &p, &r) == HL_OK, "%s: %s", forms[f][0], hl_last_error());
        CHECK(r.text && !strcmp(r.text, hl_story_text), "%s: greedy text differs:\n%s", forms[f][0],
              r.text ? r.text : "");
        CHECK(strlen(hl_story_text) == 565, "golden has 565 characters");
        CHECK(r.n_prompt + r.n_generated == 257, "%s: %d ids", forms[f][0], r.n_prompt + r.n_generated);
        int first_bad = -1;
        for (int i = 0; i < 257 && i < r.n_prompt + r.n_generated; i++)
            if (r.ids[i] != hl_story_ids[i] && first_bad < 0)
                first_bad = i;
        CHECK(first_bad < 0, "%s: id %d is %d, expected %d", forms[f][0], first_bad,
              first_bad >= 0 ? r.ids[first_bad] : 0, first_bad >= 0 ? hl_story_ids[first_bad] : 0);
        CHECK(r.finish == HL_GEN_LENGTH, "%s: finish %s", forms[f][0], hl_gen_finish_name(r.finish));
        CHECK(sink.len == r.text_len && !memcmp(sink.buf, r.text, r.text_len), "%s: streamed text equals the result",
              forms[f][0]);
        hl_gen_result_free(&r);

        if (f == 0) {
            /* llama2.c: run -t 1.0 -p 0.9 -s 133742. */
            p.temperature = 1.0f;
            p.top_p = 0.9f;
            p.seed = 133742;
            p.on_token = NULL;
            CHECK(hl_generate(g, &prompt, 1, &p, &r) == HL_OK, "%s", hl_last_error());
            CHECK(r.text && !strncmp(r.text, SAMPLED_PREFIX, strlen(SAMPLED_PREFIX)),
                  "sampled text differs from llama2.c's:\n%s", r.text ? r.text : "");
            hl_gen_result_free(&r);
            /* Left to run, greedy samples BOS (run.c's stop) on the 346th forward. */
            hl_gen_params_default(&p);
            p.max_new_tokens = 400;
            CHECK(hl_generate(g, &prompt, 1, &p, &r) == HL_OK, "%s", hl_last_error());
            CHECK(r.finish == HL_GEN_BOS && r.n_generated == 346 && r.ids[r.n_prompt + r.n_generated - 1] == 1,
                  "BOS stop: finish %s after %d tokens", hl_gen_finish_name(r.finish), r.n_generated);
            CHECK(r.text && !strncmp(r.text, hl_story_text, strlen(hl_story_text)),
                  "long run starts with the golden story");
            hl_gen_result_free(&r);
            /* With stop_on_bos off it runs into the length limit instead. */
            p.stop_on_bos = 0;
            p.max_new_tokens = 350;
            CHECK(hl_generate(g, &prompt, 1, &p, &r) == HL_OK && r.finish == HL_GEN_LENGTH && r.n_generated == 350,
                  "no BOS stop: %s %d", hl_gen_finish_name(r.finish), r.n_generated);
            hl_gen_result_free(&r);
        }
        hl_generator_free(g);
        hl_tokenizer_free(tok);
        hl_model_free(&m);
    }
}

/* ---- KV cache vs full recomputation ---- */

typedef struct {
    int n_seq;
    float *rec[4];   /* [max_pos][vocab] logits recorded by position */
    int max_pos, vocab;
    int seen[4][600];
} logit_rec;

static void rec_logits(void *user, int seq, int pos, const float *logits, int vocab) {
    logit_rec *r = user;
    if (seq < r->n_seq && pos < r->max_pos) {
        memcpy(r->rec[seq] + (size_t)pos * vocab, logits, (size_t)vocab * sizeof(float));
        r->seen[seq][pos] = 1;
    }
}

static void compare_with_full(const hl_model *m, hl_adapters *ad, const hl_gen_params *base, const char *label) {
    const int V = m->cfg.vocab_size;
    int lens[3] = {1, 7, 23};
    const int32_t *prompts[3] = {hl_story_ids + 0, hl_story_ids + 0, hl_story_ids + 0};
    int32_t p2[23];
    for (int i = 0; i < 23; i++) /* a third prompt that is not a prefix of the story */
        p2[i] = i == 0 ? 1 : hl_story_ids[(i * 37) % 200 + 1];
    prompts[2] = p2;
    logit_rec rec = {.n_seq = 3, .max_pos = 600, .vocab = V};
    for (int b = 0; b < 3; b++)
        rec.rec[b] = calloc((size_t)600 * V, sizeof(float));
    hl_generator *g = NULL;
    CHECK(hl_generator_create(&g, be, m, ad, NULL) == HL_OK, "%s", hl_last_error());
    hl_gen_params p = *base;
    p.on_logits = rec_logits;
    p.user = &rec;
    p.prefill_chunk = 5; /* several prefill chunks per prompt */
    p.stop_on_bos = 0;
    hl_gen_result r[3];
    CHECK(hl_generate_ids(g, prompts, lens, 3, &p, r) == HL_OK, "%s: %s", label, hl_last_error());
    /* Full forward over each final sequence, right padded, in one batch. */
    int T = 0;
    int32_t L[3];
    for (int b = 0; b < 3; b++) {
        L[b] = r[b].n_prompt + r[b].n_generated;
        T = L[b] > T ? L[b] : T;
    }
    int32_t *tokens = calloc((size_t)3 * T, sizeof *tokens), st[3], sl[3];
    for (int b = 0; b < 3; b++)
        for (int t = 0; t < L[b]; t++)
            tokens[b * T + t] = r[b].ids[t];
    float *full = malloc((size_t)3 * T * V * sizeof(float));
    hl_session *ctx = NULL;
    CHECK(hl_session_create(&ctx, be, m, ad ? &ad->cfg : NULL, ad ? ad->seed : 0, 3, T, 0) == HL_OK, "%s",
          hl_last_error());
    CHECK(ctx && (!ad || hl_session_write_slab(ctx, HL_SLAB_PARAMS, 0, ad->n_params, ad->params) == HL_OK), "%s",
          hl_last_error());
    hl_batch batch;
    hl_batch_padded(&batch, tokens, NULL, L, 3, T, st, sl);
    CHECK(ctx && hl_session_logits(ctx, &batch, full) == HL_OK, "%s", hl_last_error());
    double worst = 0;
    int checked = 0;
    for (int b = 0; b < 3; b++)
        for (int pos = r[b].n_prompt; pos < L[b]; pos++) {
            if (!rec.seen[b][pos]) {
                CHECK(0, "%s: no logits recorded for seq %d pos %d", label, b, pos);
                continue;
            }
            /* Rounding of a dot product scales with its terms, not its result: errors are measured
             * against the row's logit scale (one-token calls take other BLAS kernels than a full
             * batch, so bit equality is not expected). */
            const float *kv = rec.rec[b] + (size_t)pos * V, *fr = full + ((size_t)b * T + pos - 1) * V;
            double scale = 1.0;
            for (int v = 0; v < V; v++)
                scale = fmax(scale, fabs(fr[v]));
            for (int v = 0; v < V; v++) {
                double d = fabs((double)kv[v] - fr[v]) / scale;
                worst = d > worst ? d : worst;
            }
            checked++;
        }
    CHECK(worst <= 1e-5, "%s: KV-cache logits differ from full recomputation by %.3g (of the row's max |logit|)", label, worst);
    CHECK(checked >= 3 * (base->max_new_tokens - 1), "%s: %d positions checked", label, checked);
    printf("%s: %d positions, max |kv - full| / max(1, max|full|) = %.3g\n", label, checked, worst);
    hl_session_free(ctx);
    free(full);
    free(tokens);
    for (int b = 0; b < 3; b++) {
        hl_gen_result_free(&r[b]);
        free(rec.rec[b]);
    }
    hl_generator_free(g);
}

static void test_kv_cache(void) {
    hl_model m;
    char p[1200];
    snprintf(p, sizeof p, "%s/stories260K/stories260K.bin", models);
    if (hl_model_load(&m, p) != HL_OK) {
        CHECK(0, "%s", hl_last_error());
        return;
    }
    hl_gen_params gp;
    hl_gen_params_default(&gp);
    gp.max_new_tokens = 40;
    compare_with_full(&m, NULL, &gp, "greedy, base");
    gp.temperature = 0.9f;
    gp.top_k = 40;
    gp.top_p = 0.95f;
    gp.seed = 7;
    compare_with_full(&m, NULL, &gp, "sampled, base");

    /* With a HydraLoRA adapter whose B heads are made non-zero (at init B = 0: no change). */
    hl_adapter_config ac = {HL_VARIANT_HYDRA, HL_TARGETS_DEFAULT | HL_TARGET_Q | HL_TARGET_V, 4, 3, 8.0f, 0.05f};
    hl_adapters ad;
    if (hl_adapters_create(&ad, &m.cfg, &ac, 11) != HL_OK) {
        CHECK(0, "%s", hl_last_error());
        hl_model_free(&m);
        return;
    }
    for (int i = 0; i < ad.n_views; i++)
        if (ad.views[i].kind == 1) {
            float *b = ad.params + ad.views[i].offset;
            for (int64_t j = 0; j < ad.views[i].rows * ad.views[i].cols; j++)
                b[j] = 0.02f * (float)(((j * 7919 + i * 104729) % 201) - 100) / 100.0f;
        }
    hl_gen_params_default(&gp);
    gp.max_new_tokens = 30;
    compare_with_full(&m, &ad, &gp, "greedy, adapter");
    hl_adapters_free(&ad);
    hl_model_free(&m);
}

/* Batching: three text prompts together give the same ids as one at a time; the adapter at
 * init (B = 0) changes nothing. */
static void test_batch_and_stops(void) {
    hl_model m;
    hl_tokenizer *tok = NULL;
    if (!load(&m, &tok, "stories260K-hf", NULL))
        return;
    hl_generator *g = NULL;
    CHECK(hl_generator_create(&g, be, &m, NULL, tok) == HL_OK, "%s", hl_last_error());
    const char *prompts[3] = {"Once upon a time", "The dog", "Tom and Sue went to the big park with a red ball and"};
    hl_gen_params p;
    hl_gen_params_default(&p);
    p.max_new_tokens = 60;
    hl_gen_result batch[3], one;
    CHECK(hl_generate(g, prompts, 3, &p, batch) == HL_OK, "%s", hl_last_error());
    for (int b = 0; b < 3; b++) {
        CHECK(hl_generate(g, &prompts[b], 1, &p, &one) == HL_OK, "%s", hl_last_error());
        int same = one.n_generated == batch[b].n_generated && one.n_prompt == batch[b].n_prompt &&
                   !memcmp(one.ids, batch[b].ids, (size_t)(one.n_prompt + one.n_generated) * sizeof(int32_t));
        CHECK(same, "prompt %d: batched generation differs from a single one", b);
        CHECK(!strcmp(one.text, batch[b].text), "prompt %d text", b);
        hl_gen_result_free(&one);
    }
    /* The prompt itself is encoded with BOS and forced, as run.c does. */
    CHECK(batch[0].n_prompt >= 2 && batch[0].ids[0] == 1, "prompt starts with BOS");
    for (int b = 0; b < 3; b++)
        hl_gen_result_free(&batch[b]);

    /* Adapter at initialisation: B = 0, so the output is the base model's. */
    hl_adapter_config ac = {HL_VARIANT_HYDRA, HL_TARGETS_DEFAULT, 8, 4, 32.0f, 0.05f};
    hl_adapters ad;
    if (hl_adapters_create(&ad, &m.cfg, &ac, 3) == HL_OK) {
        hl_generator *ga = NULL;
        CHECK(hl_generator_create(&ga, be, &m, &ad, tok) == HL_OK, "%s", hl_last_error());
        const char *empty = "";
        hl_gen_params_default(&p);
        CHECK(ga && hl_generate(ga, &empty, 1, &p, &one) == HL_OK && !strcmp(one.text, hl_story_text),
              "zero-B adapter leaves the golden story unchanged");
        hl_gen_result_free(&one);
        hl_generator_free(ga);
        hl_adapters_free(&ad);
    }

    /* Stop strings: cut from the text, never streamed, even when split across tokens. */
    const char *empty = "";
    struct {
        const char *stop;
        const char *expect;
    } cases[] = {
        {"Lily", "Once upon a time, there was a little girl named "},
        {"a little girl", "Once upon a time, there was "},
        {"\n", "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One "
               "day, she saw a big, red ball. She wanted to play with it, but it was too high."},
        {"ce up", "On"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        stream_sink sink = {.len = 0};
        hl_gen_params_default(&p);
        const char *stops[2] = {"zzz-never", cases[i].stop};
        p.stop = stops;
        p.n_stop = 2;
        p.on_token = sink_token;
        p.user = &sink;
        CHECK(hl_generate(g, &empty, 1, &p, &one) == HL_OK, "%s", hl_last_error());
        CHECK(one.finish == HL_GEN_STOP_STRING && !strcmp(one.text, cases[i].expect),
              "stop \"%s\": finish %s, text \"%s\"", cases[i].stop, hl_gen_finish_name(one.finish), one.text);
        CHECK(sink.len == strlen(cases[i].expect) && !memcmp(sink.buf, cases[i].expect, sink.len),
              "stop \"%s\": streamed \"%.*s\"", cases[i].stop, (int)sink.len, sink.buf);
        hl_gen_result_free(&one);
    }
    /* The callback can stop a sequence; a cancel flag stops everything. */
    stream_sink sink = {.stop_after = 5};
    hl_gen_params_default(&p);
    p.on_token = sink_token;
    p.user = &sink;
    CHECK(hl_generate(g, &empty, 1, &p, &one) == HL_OK && one.finish == HL_GEN_CALLBACK && one.n_generated == 5,
          "callback stop: %s after %d", hl_gen_finish_name(one.finish), one.n_generated);
    hl_gen_result_free(&one);
    volatile int cancel = 1;
    hl_gen_params_default(&p);
    p.cancel = &cancel;
    CHECK(hl_generate(g, &empty, 1, &p, &one) == HL_ERR_CANCELLED && one.finish == HL_GEN_CANCELLED, "cancel");
    hl_gen_result_free(&one);
    hl_gen_params_default(&p);
    p.max_new_tokens = 0;
    CHECK(hl_generate(g, &empty, 1, &p, &one) == HL_OK && one.n_generated == 0 && one.finish == HL_GEN_LENGTH,
          "zero new tokens");
    hl_gen_result_free(&one);
    /* Context limit: stories260K has 512 positions. As in run.c (steps clamped to seq_len), the
     * forward at the last position 511 still yields a token: BOS + 512 tokens. */
    hl_gen_params_default(&p);
    p.max_new_tokens = 1000;
    p.stop_on_bos = 0;
    CHECK(hl_generate(g, &empty, 1, &p, &one) == HL_OK && one.finish == HL_GEN_CONTEXT &&
              one.n_prompt + one.n_generated == 513,
          "context full: %s at %d", hl_gen_finish_name(one.finish), one.n_prompt + one.n_generated);
    hl_gen_result_free(&one);

    /* Errors. */
    int32_t bad = 9999;
    const int32_t *bp = &bad;
    int one_len = 1;
    CHECK(hl_generate_ids(g, &bp, &one_len, 1, NULL, &one) == HL_ERR_RANGE, "token outside the vocabulary");
    hl_gen_result_free(&one);
    hl_generator_free(g);
    hl_tokenizer_free(tok);
    hl_model_free(&m);
}

static void test_sampler(void) {
    /* xorshift64* exactly as docs/file-formats.md §1.4 spells it, computed independently here. */
    uint64_t s = 133742;
    hl_sampler_rng r;
    hl_sampler_seed(&r, 133742, 0);
    for (int i = 0; i < 1000; i++) {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        uint32_t want = (uint32_t)((s * 0x2545F4914F6CDD1Dull) >> 32);
        uint32_t got = hl_sampler_u32(&r);
        if (got != want) {
            CHECK(0, "xorshift step %d: %u vs %u", i, got, want);
            break;
        }
    }
    /* top-p keeps the smallest set whose mass exceeds p: with probs .5 .3 .2 and p = .7 only
     * tokens 0 and 1 can come out; with top-k 1 only the argmax. */
    float work[64];
    int counts[3] = {0};
    hl_sampler_seed(&r, 5, 0);
    for (int i = 0; i < 3000; i++) {
        float lg[3] = {logf(0.5f), logf(0.3f), logf(0.2f)};
        counts[hl_sample(lg, 3, 1.0f, 0, 0.7f, &r, work)]++;
    }
    CHECK(counts[2] == 0 && counts[0] > counts[1] && counts[1] > 0, "top-p counts %d %d %d", counts[0], counts[1],
          counts[2]);
    for (int i = 0; i < 100; i++) {
        float lg[3] = {0.1f, 2.0f, 1.9f};
        CHECK(hl_sample(lg, 3, 1.0f, 1, 1.0f, &r, work) == 1, "top-k 1 is the argmax");
    }
    float lg[4] = {1, 3, 3, 2};
    CHECK(hl_sample(lg, 4, 0.0f, 0, 0.9f, &r, work) == 1, "greedy ties go to the lowest id");
}

int main(void) {
    snprintf(models, sizeof models, "%s/models", hl_test_shared_dir());
    if (hl_backend_open(&be, "cpu") != HL_OK) {
        fprintf(stderr, "cannot open the cpu backend: %s\n", hl_last_error());
        return 1;
    }
    test_sampler();
    test_golden_forms();
    test_kv_cache();
    test_batch_and_stops();
    hl_backend_close(be);
    return hl_test_finish();
}
