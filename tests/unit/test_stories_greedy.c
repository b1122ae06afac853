/* The real stories260K model (F32 HF dir, F16 two-shard untied HF dir, and the llama2.c .bin
 * and GGUF forms) loads and greedy argmax decoding from BOS by full recompute (HF dirs)
 * reproduces the 256 token ids of docs/file-formats.md §7.1 (llama2.c's published story). The
 * KV-cache path must give the same ids for every form (its own argmax and the logits' argmax).
 * Both run through the backend seam on the cpu backend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend/backend.h"
#include "core/model/model.h"
#include "hl_test.h"
#include "tests/unit/hl_stories_golden.h"

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

static hl_backend *be;

static void run(const char *rel, int full) {
    char path[4096];
    snprintf(path, sizeof path, "%s/models/%s", hl_test_shared_dir(), rel);
    hl_model m;
    hl_status st = hl_model_load(&m, path);
    CHECK(st == HL_OK, "load %s: %s", path, hl_last_error());
    if (st)
        return;
    const int steps = 256, V = m.cfg.vocab_size;
    hl_session *ctx;
    st = hl_session_create(&ctx, be, &m, NULL, 0, 1, steps, 0);
    CHECK(st == HL_OK, "context: %s", hl_last_error());
    int32_t ids[257] = {1};
    float *logits = malloc((size_t)steps * V * sizeof(float));
    int first_bad = -1;
    for (int t = 1; t <= steps && !st && full; t++) { /* full recompute of the prefix, argmax of the last row */
        hl_batch b;
        int32_t len = t, start, slen;
        hl_batch_padded(&b, ids, NULL, &len, 1, t, &start, &slen);
        st = hl_session_logits(ctx, &b, logits);
        ids[t] = argmax(logits + (size_t)(t - 1) * V, V);
        if (ids[t] != hl_story_ids[t] && first_bad < 0)
            first_bad = t;
    }
    if (full)
        CHECK(st == HL_OK && first_bad < 0,
              "%s: full-recompute greedy ids match docs/file-formats.md §7.1 (first mismatch at %d)", rel,
              first_bad);
    /* the KV-cache path */
    hl_decoder *inf;
    st = hl_decoder_create(&inf, be, &m, NULL, 1, steps, 1);
    CHECK(st == HL_OK, "decoder: %s", hl_last_error());
    int32_t tok = 1, am = -1;
    int bad = -1, am_same = 1;
    for (int t = 0; t < steps && !st; t++) {
        st = hl_decoder_forward(inf, &tok, 1, 1, &t, NULL, logits, 0, &am);
        tok = argmax(logits, V);
        am_same &= am == tok;
        if (tok != hl_story_ids[t + 1] && bad < 0)
            bad = t + 1;
    }
    CHECK(st == HL_OK && bad < 0, "%s: KV-cache greedy ids match (first mismatch at %d)", rel, bad);
    CHECK(am_same, "%s: the decoder's argmax is the logits' argmax", rel);
    hl_decoder_free(inf);
    free(logits);
    hl_session_free(ctx);
    hl_model_free(&m);
}

int main(void) {
    if (hl_backend_open(&be, "cpu") != HL_OK) {
        fprintf(stderr, "cannot open the cpu backend: %s\n", hl_last_error());
        return 1;
    }
    run("stories260K-hf", 1);
    run("stories260K-hf-f16-sharded", 1);
    /* the other loaders' layouts (Meta q/k order permuted on load): KV-cache path only */
    run("stories260K/stories260K.bin", 0);
    run("stories260K-gguf/stories260K.gguf", 0);
    hl_backend_close(be);
    return hl_test_finish();
}
