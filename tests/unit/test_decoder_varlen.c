/* hl_decoder_forward_varlen on the cpu backend (which runs the sequences one at a time): the
 * same logits and arg-max as separate hl_decoder_forward calls, cache contents that later
 * decode steps read the same way, and clear errors for bad calls. The generator's batched
 * prefill (core/eval/generate.c) relies on this contract on every backend. */
#include <stdlib.h>
#include <string.h>

#include "core/backend/backend.h"
#include "hl_test.h"
#include "tests/unit/hl_tiny_model.h"

int main(void) {
    hl_backend *be = NULL;
    CHECK(hl_backend_open(&be, "cpu") == HL_OK, "cpu backend");
    hl_backend_set_threads(be, 2);
    hl_llama_config c;
    memset(&c, 0, sizeof c);
    c.dim = 32, c.hidden_dim = 64, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 8;
    c.vocab_size = 50, c.max_seq_len = 64, c.rms_norm_eps = 1e-5f, c.rope_theta = 10000.0f, c.bos_id = 1, c.eos_id = 2;
    hl_tiny_model tm;
    hl_tiny_model_init(&tm, &c, HL_DTYPE_F32, 3);
    hl_decoder *a = NULL, *b = NULL;
    CHECK(hl_decoder_create(&a, be, &tm.m, NULL, 4, 40, 32) == HL_OK, "decoder a: %s", hl_last_error());
    CHECK(hl_decoder_create(&b, be, &tm.m, NULL, 4, 40, 32) == HL_OK, "decoder b: %s", hl_last_error());
    const int V = c.vocab_size;
    int32_t toks[64];
    for (int i = 0; i < 64; i++)
        toks[i] = (i * 7 + 3) % V;
    /* slots 2, 0, 3 get 5, 11 and 1 new tokens at positions 0, 0, 0 */
    int n_new[3] = {5, 11, 1}, pos0[3] = {0, 0, 0}, slot[3] = {2, 0, 3};
    float *la = malloc((size_t)3 * V * sizeof(float)), *lb = malloc((size_t)3 * V * sizeof(float));
    int32_t ama[3], amb[3];
    CHECK(hl_decoder_forward_varlen(a, toks, 3, n_new, pos0, slot, la, ama) == HL_OK, "varlen: %s", hl_last_error());
    int off = 0;
    for (int s = 0; s < 3; s++) {
        CHECK(hl_decoder_forward(b, toks + off, 1, n_new[s], &pos0[s], &slot[s], lb + (size_t)s * V, 0, &amb[s]) ==
                  HL_OK,
              "forward: %s", hl_last_error());
        off += n_new[s];
    }
    CHECK(memcmp(la, lb, (size_t)3 * V * sizeof(float)) == 0, "varlen logits equal separate calls");
    CHECK(memcmp(ama, amb, sizeof ama) == 0, "varlen arg-max equals separate calls");
    /* a second varlen call continuing two of the slots, then one decode step of all three */
    int n2[2] = {3, 2}, p2[2] = {11, 5}, s2[2] = {0, 2};
    CHECK(hl_decoder_forward_varlen(a, toks + 17, 2, n2, p2, s2, la, NULL) == HL_OK, "varlen 2");
    CHECK(hl_decoder_forward(b, toks + 17, 1, 3, &p2[0], &s2[0], lb, 0, NULL) == HL_OK, "forward 2a");
    CHECK(hl_decoder_forward(b, toks + 20, 1, 2, &p2[1], &s2[1], lb + V, 0, NULL) == HL_OK, "forward 2b");
    CHECK(memcmp(la, lb, (size_t)2 * V * sizeof(float)) == 0, "second varlen call equals separate calls");
    int32_t step[3] = {4, 5, 6};
    int ps[3] = {14, 7, 1}, ss[3] = {0, 2, 3};
    CHECK(hl_decoder_forward(a, step, 3, 1, ps, ss, la, 0, NULL) == HL_OK, "decode a");
    CHECK(hl_decoder_forward(b, step, 3, 1, ps, ss, lb, 0, NULL) == HL_OK, "decode b");
    CHECK(memcmp(la, lb, (size_t)3 * V * sizeof(float)) == 0, "the caches hold the same keys/values");
    /* errors */
    int bad_n[2] = {3, 0}, dup[2] = {1, 1}, big[2] = {20, 20}, far[2] = {38, 0};
    CHECK(hl_decoder_forward_varlen(a, toks, 2, bad_n, pos0, slot, la, NULL) == HL_ERR_ARG, "0 new tokens");
    CHECK(hl_decoder_forward_varlen(a, toks, 2, n2, pos0, dup, la, NULL) == HL_ERR_ARG, "a slot twice");
    CHECK(strstr(hl_last_error(), "twice") != NULL, "message: %s", hl_last_error());
    CHECK(hl_decoder_forward_varlen(a, toks, 2, big, pos0, slot, la, NULL) == HL_ERR_ARG, "40 rows > 32 planned");
    CHECK(hl_decoder_forward_varlen(a, toks, 2, n2, far, slot, la, NULL) == HL_ERR_RANGE, "past the context");
    CHECK(hl_decoder_forward_varlen(a, toks, 2, n2, pos0, slot, NULL, NULL) == HL_ERR_ARG, "no output asked");
    free(la), free(lb);
    hl_decoder_free(a), hl_decoder_free(b);
    hl_tiny_model_free(&tm);
    hl_backend_close(be);
    return hl_test_finish();
}
