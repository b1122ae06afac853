/* The real stories260K model (F32 HF dir, F16 two-shard untied HF dir, and the llama2.c .bin
 * and GGUF forms) loads and greedy argmax decoding from BOS by full recompute (HF dirs)
 * reproduces the 256 token ids of FORMATS.md §7.1 (llama2.c's published story). The
 * KV-cache path must give the same ids for every form. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gemm.h"
#include "core/llama.h"
#include "core/model.h"
#include "hl_test.h"

/* FORMATS.md §7.1: BOS + 256 generated ids. */
static const int golden[257] = {
    1,   403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410,
    408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385, 328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388,
    426, 338, 391, 266, 267, 337, 335, 312, 432, 398, 312, 286, 267, 414, 270, 333, 415, 426, 13,  438, 310, 439,
    419, 357, 336, 432, 313, 438, 310, 432, 278, 316, 439, 419, 298, 414, 267, 265, 282, 295, 433, 426, 436, 317,
    286, 296, 418, 269, 279, 292, 416, 439, 413, 409, 416, 327, 263, 415, 294, 267, 400, 426, 338, 336, 432, 313,
    442, 391, 267, 337, 335, 364, 420, 268, 388, 432, 398, 359, 280, 303, 439, 413, 272, 417, 264, 312, 426, 436,
    13,  438, 310, 286, 296, 418, 269, 279, 292, 416, 439, 413, 409, 416, 327, 263, 415, 294, 267, 400, 426, 338,
    336, 432, 313, 442, 439, 423, 262, 304, 420, 422, 432, 317, 426, 359, 279, 292, 416, 439, 413, 409, 416, 327,
    263, 415, 294, 267, 400, 426, 436, 13,  438, 310, 279, 292, 416, 439, 413, 391, 267, 281, 421, 427, 311, 357,
    432, 384, 358, 336, 432, 313, 442, 439, 423, 262, 304, 420, 422, 432, 357, 426, 359, 279, 292, 416, 439, 413,
    409, 416, 327, 263, 415, 294, 267, 400, 426, 436, 320, 285, 357, 336, 432, 313, 455, 289, 439, 413, 263, 304,
    420, 422, 432, 317, 426, 410, 448, 411, 280, 303, 281, 421, 427, 364, 426};

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

static void run(const char *rel, int full) {
    char path[4096];
    snprintf(path, sizeof path, "%s/models/%s", hl_test_shared_dir(), rel);
    hl_model m;
    hl_status st = hl_model_load(&m, path);
    CHECK(st == HL_OK, "load %s: %s", path, hl_last_error());
    if (st)
        return;
    const int steps = 256, V = m.cfg.vocab_size;
    hl_llama *ctx;
    st = hl_llama_create(&ctx, &m, NULL, 1, steps, 0);
    CHECK(st == HL_OK, "context: %s", hl_last_error());
    int ids[257] = {1};
    float *logits = malloc((size_t)steps * V * sizeof(float));
    int first_bad = -1;
    for (int t = 1; t <= steps && !st && full; t++) { /* full recompute of the prefix, argmax of the last row */
        st = hl_llama_logits(ctx, ids, NULL, 1, t, logits);
        ids[t] = argmax(logits + (size_t)(t - 1) * V, V);
        if (ids[t] != golden[t] && first_bad < 0)
            first_bad = t;
    }
    if (full)
        CHECK(st == HL_OK && first_bad < 0, "%s: full-recompute greedy ids match FORMATS.md §7.1 (first mismatch at %d)",
          rel, first_bad);
    /* the KV-cache path */
    hl_infer *inf;
    st = hl_infer_create(&inf, &m, NULL, 1, steps, 1);
    CHECK(st == HL_OK, "infer: %s", hl_last_error());
    int tok = 1, bad = -1;
    for (int t = 0; t < steps && !st; t++) {
        st = hl_infer_forward(inf, &tok, 1, 1, &t, NULL, logits, 0);
        tok = argmax(logits, V);
        if (tok != golden[t + 1] && bad < 0)
            bad = t + 1;
    }
    CHECK(st == HL_OK && bad < 0, "%s: KV-cache greedy ids match (first mismatch at %d)", rel, bad);
    hl_infer_free(inf);
    free(logits);
    hl_llama_free(ctx);
    hl_model_free(&m);
}

int main(void) {
    run("stories260K-hf", 1);
    run("stories260K-hf-f16-sharded", 1);
    /* the other loaders' layouts (Meta q/k order permuted on load): KV-cache path only */
    run("stories260K/stories260K.bin", 0);
    run("stories260K-gguf/stories260K.gguf", 0);
    return hl_test_finish();
}
