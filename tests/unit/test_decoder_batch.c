/* KV-cache decoding through the seam: a batch of sequences in consecutive cache slots attends in
 * one call, sequences elsewhere in groups; either way each sequence's logits are bit-identical to
 * decoding it alone (same prompt, same slot) in f32 compute, with the prompt prefilled in one call
 * and then token by token. In bf16 compute the batch's row count may pick another matrix kernel
 * (oneDNN from 8 rows on AMX), so there the logits agree to bf16 precision instead. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend/backend.h"
#include "core/base/rng.h"
#include "hl_test.h"
#include "hl_tiny_model.h"

enum { SLOTS = 6, SEQ = 24, V = 61, PROMPT = 5, STEPS = 4 };

/* Prefill `n` sequences (slot[i], prompts[i]) in one call, then STEPS single-token calls on all of
 * them; logits of every call's rows appended to out ([n * (1 + STEPS), V]). */
static void decode(hl_decoder *d, int n, const int *slot, const int32_t prompts[][PROMPT], float *out) {
    int32_t tok[SLOTS * PROMPT];
    int pos0[SLOTS];
    for (int i = 0; i < n; i++) {
        memcpy(tok + i * PROMPT, prompts[i], sizeof prompts[i]);
        pos0[i] = 0;
    }
    float *lg = malloc(sizeof(float) * SLOTS * PROMPT * V);
    CHECK(hl_decoder_forward(d, tok, n, PROMPT, pos0, slot, lg, 0, NULL) == HL_OK, "prefill: %s", hl_last_error());
    memcpy(out, lg, sizeof(float) * (size_t)n * V);
    for (int s = 0; s < STEPS; s++) {
        for (int i = 0; i < n; i++) {
            tok[i] = (int32_t)((prompts[i][0] * 7 + prompts[i][1] + s * 13) % V);
            pos0[i] = PROMPT + s;
        }
        CHECK(hl_decoder_forward(d, tok, n, 1, pos0, slot, lg, 0, NULL) == HL_OK, "step %d: %s", s, hl_last_error());
        memcpy(out + (size_t)(1 + s) * n * V, lg, sizeof(float) * (size_t)n * V);
    }
    free(lg);
}

static void run(hl_backend *be, const hl_model *m, hl_compute compute) {
    hl_decoder *batch = NULL, *alone = NULL;
    CHECK(hl_decoder_create(&batch, be, m, NULL, SLOTS, SEQ, SLOTS * PROMPT) == HL_OK, "decoder");
    CHECK(hl_decoder_create(&alone, be, m, NULL, SLOTS, SEQ, SLOTS * PROMPT) == HL_OK, "decoder");
    if (!batch || !alone)
        return;
    hl_decoder_set_compute(batch, compute);
    hl_decoder_set_compute(alone, compute);
    int32_t prompts[SLOTS][PROMPT];
    for (int i = 0; i < SLOTS; i++)
        for (int t = 0; t < PROMPT; t++)
            prompts[i][t] = (int32_t)((i * 17 + t * 5 + 3) % V);
    /* slots: a consecutive run (1, 2, 3), then 5, then 0: three groups */
    const int slot[5] = {1, 2, 3, 5, 0};
    const int n = 5;
    float *got = malloc(sizeof(float) * n * (1 + STEPS) * V), *want = malloc(sizeof(float) * (1 + STEPS) * V);
    decode(batch, n, slot, prompts, got);
    for (int i = 0; i < n; i++) {
        decode(alone, 1, &slot[i], &prompts[i], want);
        int same = 1;
        double diff = 0, big = 0;
        for (int s = 0; s <= STEPS; s++) {
            const float *a = got + ((size_t)s * n + i) * V, *b = want + (size_t)s * V;
            same &= !memcmp(a, b, sizeof(float) * V);
            for (int j = 0; j < V; j++) {
                diff = fmax(diff, fabs((double)a[j] - b[j]));
                big = fmax(big, fabs((double)b[j]));
            }
        }
        if (compute == HL_COMPUTE_F32)
            CHECK(same, "f32: sequence %d (slot %d) in the batch = alone, bit for bit", i, slot[i]);
        else
            CHECK(diff <= 1e-2 * big, "bf16: sequence %d (slot %d) in the batch = alone to bf16 precision (%.3g of %.3g)",
                  i, slot[i], diff, big);
    }
    free(got), free(want);
    hl_decoder_free(batch);
    hl_decoder_free(alone);
}

int main(void) {
    hl_backend *be = NULL;
    if (hl_backend_open(&be, "cpu") != HL_OK || hl_backend_set_threads(be, 0) != HL_OK) {
        fprintf(stderr, "cpu backend: %s\n", hl_last_error());
        return 1;
    }
    hl_llama_config mc = {.dim = 32, .hidden_dim = 64, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .head_dim = 8,
                          .vocab_size = V, .max_seq_len = SEQ, .rms_norm_eps = 1e-5f, .rope_theta = 10000.0f};
    hl_tiny_model tm;
    hl_tiny_model_init(&tm, &mc, HL_DTYPE_BF16, 3);
    run(be, &tm.m, HL_COMPUTE_F32);
    run(be, &tm.m, HL_COMPUTE_BF16);
    hl_tiny_model_free(&tm);
    hl_backend_close(be);
    return hl_test_finish();
}
