/* The CUDA backend's function table (backend_impl.h): devices (cuda_device.c), plans
 * (cuda_plan.c), sessions (cuda_session.c), the forward/backward passes (cuda_forward.c).
 * KV-cache decoding is not on the GPU yet: its entries say so. */
#include "core/backend/cuda/cuda_session.h"

/* ---- decoding: not on the GPU yet ----------------------------------------------------------- */

static hl_status cu_decoder_init(hl_decoder *d, const hl_adapters *ad) {
    (void)d, (void)ad;
    return hl_fail(HL_ERR_STATE, "KV-cache decoding (generate, BBH, scoring by generation) is not yet on cuda: use "
                                 "device cpu for it");
}
static void cu_decoder_free(hl_decoder *d) { (void)d; }
static size_t cu_decoder_bytes(const hl_decoder *d) {
    (void)d;
    return 0;
}
static hl_status cu_decoder_forward(hl_decoder *d, const int32_t *tokens, int B, int Tq, const int *pos0,
                                    const int *slot, float *logits, int all_logits, int32_t *argmax) {
    (void)d, (void)tokens, (void)B, (void)Tq, (void)pos0, (void)slot, (void)logits, (void)all_logits, (void)argmax;
    return hl_fail(HL_ERR_STATE, "KV-cache decoding is not yet on cuda");
}
static hl_status cu_decoder_share_prefix(hl_decoder *d, int dst_slot, int src_slot, int n) {
    (void)d, (void)dst_slot, (void)src_slot, (void)n;
    return hl_fail(HL_ERR_STATE, "KV-cache decoding is not yet on cuda");
}
static hl_status cu_decoder_release(hl_decoder *d, int slot) {
    (void)d, (void)slot;
    return hl_fail(HL_ERR_STATE, "KV-cache decoding is not yet on cuda");
}

const hl_backend_ops hl_backend_cuda_ops = {
    .kind = "cuda",
    .count = cu_count,
    .probe = cu_probe,
    .open = cu_open,
    .close = cu_close,
    .get_info = cu_get_info,
    .set_threads = cu_set_threads,
    .plan = cu_backend_plan,
    .session_init = cu_session_init,
    .session_free = cu_session_free,
    .train_microbatch = cu_train_microbatch,
    .zero_grad = cu_zero_grad,
    .eval = cu_eval,
    .logits = cu_logits,
    .reduce_grads = cu_reduce_grads,
    .optim_step = cu_optim_step,
    .routing = cu_routing,
    .routing_reset = cu_routing_reset,
    .collect_eval_stats = cu_collect_eval_stats,
    .read_slab = cu_read_slab,
    .write_slab = cu_write_slab,
    .dropout_step = cu_dropout_step,
    .set_dropout_step = cu_set_dropout_step,
    .decoder_init = cu_decoder_init,
    .decoder_free = cu_decoder_free,
    .decoder_bytes = cu_decoder_bytes,
    .decoder_forward = cu_decoder_forward,
    .decoder_share_prefix = cu_decoder_share_prefix,
    .decoder_release = cu_decoder_release,
};
