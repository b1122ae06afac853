/* The CPU engine as the GPU tests' reference (see gpu_ref.h). */
#include "tests/gpu/gpu_ref.h"

#include <stdlib.h>

#include "core/llama.h"

struct gpu_ref {
    hl_adapters ad;
    hl_llama *ctx;
    int has_ad;
};

hl_status gpu_ref_create(gpu_ref **out, const hl_model *m, const hl_adapter_config *ac, uint64_t seed, int B, int T,
                         int train, int ckpt, int stats) {
    gpu_ref *r = calloc(1, sizeof *r);
    if (!r)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    if (ac) {
        hl_status st = hl_adapters_create(&r->ad, &m->cfg, ac, seed);
        if (st) {
            free(r);
            return st;
        }
        r->has_ad = 1;
    }
    unsigned flags = (train ? HL_LLAMA_TRAIN : 0) | (ckpt ? HL_LLAMA_CHECKPOINT : 0) | (stats ? HL_LLAMA_STATS : 0);
    hl_status st = hl_llama_create(&r->ctx, m, ac ? &r->ad : NULL, B, T, flags);
    if (st) {
        gpu_ref_free(r);
        return st;
    }
    *out = r;
    return HL_OK;
}

void gpu_ref_free(gpu_ref *r) {
    if (!r)
        return;
    hl_llama_free(r->ctx);
    if (r->has_ad)
        hl_adapters_free(&r->ad);
    free(r);
}

hl_adapters *gpu_ref_adapters(gpu_ref *r) { return r->has_ad ? &r->ad : NULL; }

hl_status gpu_ref_train(gpu_ref *r, const int *tokens, const int *labels, const int *lengths, int B, int T,
                        float scale, float *loss, int64_t *n) {
    return hl_llama_forward_backward(r->ctx, tokens, labels, lengths, B, T, scale, loss, n);
}

hl_status gpu_ref_eval(gpu_ref *r, const int *tokens, const int *labels, const int *lengths, int B, int T, float *loss,
                       int64_t *n, double *seq_sum, int64_t *seq_cnt) {
    return hl_llama_eval(r->ctx, tokens, labels, lengths, B, T, loss, n, seq_sum, seq_cnt);
}

hl_status gpu_ref_logits(gpu_ref *r, const int *tokens, const int *lengths, int B, int T, float *logits) {
    return hl_llama_logits(r->ctx, tokens, lengths, B, T, logits);
}

hl_routing_stats *gpu_ref_routing(gpu_ref *r) { return hl_llama_routing(r->ctx); }
void gpu_ref_eval_stats(gpu_ref *r, int on) { hl_llama_set_eval_stats(r->ctx, on); }
