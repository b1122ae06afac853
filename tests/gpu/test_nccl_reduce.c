/* The NCCL path of the gradient-reduction hook on one GPU, through the public seam only: two
 * training sessions on cuda:0 with the same model, seed and micro-batches; B sums its gradients
 * through a one-rank communicator with the GPU half open (hl_session_reduce_grads -> NCCL
 * all-reduce of the session's one contiguous gradient buffer), A does not (no communicator).
 * After every step the gradients and the parameters must be bit for bit the same (one rank's
 * sum is the buffer itself), and the communicator must really have gone through NCCL (the GPU
 * half open, its bytes counted). f32 and bf16 weights, HydraLoRA and plain LoRA, 6 steps of 3
 * micro-batches. Exit 77 ("skipped: ...") without a usable GPU or without NCCL in the build. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/adapter/optim.h"
#include "core/backend/backend.h"
#include "core/comm/comm.h"
#include "core/model/model.h"
#include "tests/unit/hl_tiny_model.h"

static int passed, failed;

static void report(int ok, const char *what) {
    printf("%s %s\n", ok ? "PASS" : "FAIL", what);
    if (ok)
        passed++;
    else
        failed++;
}

static int run_case(hl_backend *be, hl_comm *comm, hl_dtype dt, hl_variant variant) {
    hl_llama_config c = {.dim = 64, .hidden_dim = 172, .n_layers = 2, .n_heads = 8, .n_kv_heads = 4, .head_dim = 8,
                         .vocab_size = 256, .max_seq_len = 128, .rms_norm_eps = 1e-5f, .rope_theta = 10000.0f,
                         .tie_word_embeddings = 1};
    hl_tiny_model tm;
    hl_tiny_model_init(&tm, &c, dt, 7);
    hl_adapter_config ac = {.variant = variant, .targets = HL_TARGETS_DEFAULT, .r = 8, .n_heads = 4, .alpha = 16.0f,
                            .dropout = 0.05f};
    const int B = 2, T = 32, G = 3, STEPS = 6;
    hl_session *a = NULL, *b = NULL;
    if (hl_session_create(&a, be, &tm.m, &ac, 41, B, T, HL_SESSION_TRAIN | HL_SESSION_STATS) ||
        hl_session_create(&b, be, &tm.m, &ac, 41, B, T, HL_SESSION_TRAIN | HL_SESSION_STATS)) {
        printf("FAIL session: %s\n", hl_last_error());
        failed++;
        hl_session_free(a);
        hl_tiny_model_free(&tm);
        return 1;
    }
    size_t np = hl_session_layout(a)->n_params;
    float *pa = malloc(np * 4), *pb = malloc(np * 4);
    int32_t tok[64], lab[64], len[2] = {T, T - 5}, st[2], sl[2];
    hl_optim_config oc = hl_optim_defaults();
    oc.total_steps = STEPS;
    hl_comm_stats s0;
    hl_comm_get_stats(comm, &s0);
    int same_grads = 1, same_params = 1, bad = 0;
    char what[160];
    for (int step = 1; step <= STEPS && !bad; step++) {
        hl_session *ss[2] = {a, b};
        for (int k = 0; k < 2 && !bad; k++) {
            bad |= hl_session_zero_grad(ss[k]) != HL_OK;
            for (int m = 0; m < G && !bad; m++) {
                for (int i = 0; i < B * T; i++)
                    tok[i] = lab[i] = (int32_t)((i * 37 + m * 11 + step * 5) % c.vocab_size);
                hl_batch bt;
                hl_batch_padded(&bt, tok, lab, len, B, T, st, sl);
                float loss;
                bad |= hl_session_train_microbatch(ss[k], &bt, 1.0f / G, &loss, NULL) != HL_OK;
            }
        }
        /* the hook: B through NCCL (one rank), A without a communicator */
        bad |= hl_session_reduce_grads(a, NULL) != HL_OK;
        bad |= hl_session_reduce_grads(b, comm) != HL_OK;
        if (bad)
            break;
        hl_session_read_slab(a, HL_SLAB_GRADS, 0, np, pa);
        hl_session_read_slab(b, HL_SLAB_GRADS, 0, np, pb);
        same_grads &= memcmp(pa, pb, np * 4) == 0;
        double ga, gb;
        bad |= hl_session_optim_step(a, step, hl_lr_at(&oc, step - 1), &oc, &ga) != HL_OK;
        bad |= hl_session_optim_step(b, step, hl_lr_at(&oc, step - 1), &oc, &gb) != HL_OK;
        hl_session_read_slab(a, HL_SLAB_PARAMS, 0, np, pa);
        hl_session_read_slab(b, HL_SLAB_PARAMS, 0, np, pb);
        same_params &= memcmp(pa, pb, np * 4) == 0 && ga == gb;
    }
    const char *vn = variant == HL_VARIANT_HYDRA ? "hydra" : "lora";
    const char *dn = dt == HL_DTYPE_F32 ? "f32" : "bf16";
    if (bad) {
        snprintf(what, sizeof what, "%s %s: a seam call failed: %s", vn, dn, hl_last_error());
        report(0, what);
    } else {
        hl_comm_stats s1;
        hl_comm_get_stats(comm, &s1);
        snprintf(what, sizeof what, "%s %s weights: NCCL all-reduce used (%llu calls, %llu bytes for %d steps of %zu params)",
                 vn, dn, (unsigned long long)(s1.calls - s0.calls), (unsigned long long)(s1.bytes - s0.bytes), STEPS, np);
        report(hl_comm_device_ready(comm) && s1.calls - s0.calls == (uint64_t)STEPS &&
                   s1.bytes - s0.bytes == (uint64_t)STEPS * np * 4, what);
        snprintf(what, sizeof what, "%s %s weights: gradients after the NCCL sum bit-identical to the run without it", vn, dn);
        report(same_grads, what);
        snprintf(what, sizeof what, "%s %s weights: parameters and grad norms after %d AdamW steps bit-identical", vn, dn,
                 STEPS);
        report(same_params, what);
    }
    free(pa), free(pb);
    hl_session_free(a);
    hl_session_free(b);
    hl_tiny_model_free(&tm);
    return 0;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!hl_comm_have_nccl()) {
        printf("skipped: this build has no NCCL (HL_NCCL)\n");
        return 77;
    }
    hl_backend *be;
    if (hl_backend_open(&be, "cuda:0") != HL_OK) {
        printf("skipped: no CUDA device (%s)\n", hl_last_error());
        return 77;
    }
    hl_comm *comm;
    if (hl_comm_open_single(&comm) != HL_OK) {
        printf("FAIL communicator: %s\n", hl_last_error());
        return 1;
    }
    run_case(be, comm, HL_DTYPE_F32, HL_VARIANT_HYDRA);
    run_case(be, comm, HL_DTYPE_BF16, HL_VARIANT_HYDRA);
    run_case(be, comm, HL_DTYPE_BF16, HL_VARIANT_LORA);
    hl_comm_close(comm);
    hl_backend_close(be);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
