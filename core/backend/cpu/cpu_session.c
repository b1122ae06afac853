/* CPU sessions: the seam's training/eval/logits calls on core/backend/cpu/llama.c (see cpu.h).
 *
 * The adapter slabs are the host slabs of s->layout (allocated by backend.c with the seed's
 * initialisation); the optimizer is core/adapter/optim.c on them. Routing statistics: the engine
 * gathers training statistics in its own accumulator; evaluation adds to the session's
 * separate one. */
#include <stdlib.h>
#include <string.h>

#include "core/backend/cpu/cpu.h"
#include "core/backend/cpu/llama.h"
#include "core/backend/cpu/cpu_adamw.h"
/* hl_comm_allreduce_f32: the gradient-reduction hook across processes */
#include "core/comm/comm.h"

typedef struct {
    hl_llama *ctx;
    hl_routing_stats eval_stats; /* the eval accumulator (with a router) */
    int has_eval_stats;
    int collect_eval;
} cpu_session;

_Static_assert(sizeof(int32_t) == sizeof(int), "token ids are passed to the engine as int");

hl_status cpu_session_init(hl_session *s) {
    cpu_enter(s->be);
    cpu_session *cs = calloc(1, sizeof *cs);
    if (!cs)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    hl_adapters *ad = s->has_adapters ? &s->layout : NULL;
    if (ad && !(s->flags & HL_SESSION_TRAIN))
        hl_adapters_release(ad, HL_ADAPTER_GRADS | HL_ADAPTER_MOMENTS);
    hl_status st = hl_llama_create(&cs->ctx, s->model, ad, s->batch, s->seq, s->flags);
    if (st == HL_OK && ad && ad->has_router) {
        st = hl_routing_stats_init(&cs->eval_stats, ad->n_layers, ad->N);
        cs->has_eval_stats = st == HL_OK;
    }
    if (st != HL_OK) {
        hl_llama_free(cs->ctx);
        free(cs);
        return st;
    }
    s->plan = *hl_llama_mem_plan(cs->ctx);
    s->impl = cs;
    return HL_OK;
}

void cpu_session_free(hl_session *s) {
    cpu_session *cs = s->impl;
    if (!cs)
        return;
    hl_llama_free(cs->ctx);
    if (cs->has_eval_stats)
        hl_routing_stats_free(&cs->eval_stats);
    free(cs);
    s->impl = NULL;
}

/* The seam's batch is the engine's packed layout (hl_llama_batch: rows of whole examples in
 * the cu_seqlens convention); backend.c has checked it against the session's plan. A padded
 * batch (one example per row) runs the same products as the lengths-based engine calls. */
static hl_llama_batch engine_batch(const hl_batch *b) {
    hl_llama_batch lb = {b->B, b->T, b->tokens, b->labels, b->n_seq, b->seq_start, b->seq_len};
    return lb;
}

hl_status cpu_train_microbatch(hl_session *s, const hl_batch *b, float grad_scale, float *loss, int64_t *n_targets) {
    cpu_session *cs = s->impl;
    hl_llama_batch lb = engine_batch(b);
    cpu_enter(s->be);
    return hl_llama_forward_backward_packed(cs->ctx, &lb, grad_scale, loss, n_targets);
}

hl_status cpu_zero_grad(hl_session *s) {
    hl_adapters_zero_grad(&s->layout);
    return HL_OK;
}

hl_status cpu_eval(hl_session *s, const hl_batch *b, float *loss, int64_t *n_targets, double *seq_loss_sum,
                   int64_t *seq_count) {
    cpu_session *cs = s->impl;
    hl_llama_batch lb = engine_batch(b);
    cpu_enter(s->be);
    hl_llama_set_eval_stats(cs->ctx, cs->collect_eval && cs->has_eval_stats ? &cs->eval_stats : NULL);
    hl_status st = hl_llama_eval_packed(cs->ctx, &lb, loss, n_targets, seq_loss_sum, seq_count);
    hl_llama_set_eval_stats(cs->ctx, NULL);
    return st;
}

hl_status cpu_logits(hl_session *s, const hl_batch *b, float *logits) {
    cpu_session *cs = s->impl;
    hl_llama_batch lb = engine_batch(b);
    cpu_enter(s->be);
    return hl_llama_logits_packed(cs->ctx, &lb, logits);
}

hl_status cpu_reduce_grads(hl_session *s, struct hl_comm *comm) {
    if (!comm || hl_comm_size(comm) == 1)
        return HL_OK; /* one process: the slab already holds the sum */
    /* The one contiguous f32 gradient slab, summed in rank order (identical bits everywhere). */
    return hl_comm_allreduce_f32(comm, s->layout.grads, s->layout.n_params);
}

hl_status cpu_optim_step(hl_session *s, int64_t t, float lr, const hl_optim_config *oc, double *grad_norm) {
    cpu_enter(s->be);
    return hl_adapters_adamw_step(&s->layout, t, lr, oc, grad_norm);
}

static hl_routing_stats *stats_of(hl_session *s, hl_stats_which which) {
    cpu_session *cs = s->impl;
    if (which == HL_STATS_TRAIN)
        return hl_llama_routing(cs->ctx);
    return cs->has_eval_stats ? &cs->eval_stats : NULL;
}

hl_status cpu_routing(hl_session *s, hl_stats_which which, hl_routing_stats *dst) {
    const hl_routing_stats *src = stats_of(s, which);
    if (!src)
        return hl_fail(HL_ERR_STATE, "no routing statistics in this session");
    size_t np = (size_t)src->n_layers * HL_TARGET_COUNT;
    memcpy(dst->tokens, src->tokens, np * sizeof *dst->tokens);
    memcpy(dst->entropy_sum, src->entropy_sum, np * sizeof *dst->entropy_sum);
    memcpy(dst->weight_sum, src->weight_sum, np * (size_t)src->N * sizeof *dst->weight_sum);
    memcpy(dst->top1, src->top1, np * (size_t)src->N * sizeof *dst->top1);
    return HL_OK;
}

hl_status cpu_routing_reset(hl_session *s, hl_stats_which which) {
    hl_routing_stats *st = stats_of(s, which);
    if (st)
        hl_routing_stats_reset(st);
    return HL_OK;
}

void cpu_collect_eval_stats(hl_session *s, int on) {
    cpu_session *cs = s->impl;
    cs->collect_eval = on;
}

static float *slab_of(hl_session *s, hl_slab which) {
    switch (which) {
    case HL_SLAB_PARAMS: return s->layout.params;
    case HL_SLAB_GRADS: return s->layout.grads;
    case HL_SLAB_ADAM_M: return s->layout.m;
    case HL_SLAB_ADAM_V: return s->layout.v;
    }
    return NULL;
}

hl_status cpu_read_slab(hl_session *s, hl_slab which, size_t offset, size_t n, float *dst) {
    memcpy(dst, slab_of(s, which) + offset, n * sizeof(float));
    return HL_OK;
}

hl_status cpu_write_slab(hl_session *s, hl_slab which, size_t offset, size_t n, const float *src) {
    memcpy(slab_of(s, which) + offset, src, n * sizeof(float));
    return HL_OK;
}

uint64_t cpu_dropout_step(const hl_session *s) { return s->layout.dropout_step; }

void cpu_set_dropout_step(hl_session *s, uint64_t step) { s->layout.dropout_step = step; }

hl_status cpu_session_set_compute(hl_session *s, hl_compute c) {
    cpu_session *cs = s->impl;
    hl_llama_set_compute(cs->ctx, c);
    return HL_OK;
}
