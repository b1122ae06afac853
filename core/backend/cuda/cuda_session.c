/* CUDA sessions: planning against free device memory, allocation (once), weight upload, the
 * adapter slabs (parameters, gradients, AdamW moments), the optimizer step, routing statistics,
 * and the backend's function table. The forward/backward passes are in cuda_forward.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend/cuda/cuda_check.h"
#include "core/backend/cuda/cuda_session.h"
/* hl_comm_device_allreduce_f32: the gradient-reduction hook across processes (NCCL) */
#include "core/comm/comm.h"
#include "core/base/convert.h" /* hl_weight_rows_to_f32 */
#include "core/base/tensor.h"


static double gib(size_t b) { return (double)b / 1073741824.0; }

/* ---- weights -------------------------------------------------------------------------------- */

static hl_status check_weight(const hl_weight *w, int64_t rows, int64_t cols, const char *what, int layer) {
    if (!w->data || w->rows != rows || w->cols != cols)
        return hl_fail(HL_ERR_SHAPE, "layer %d %s is [%lld, %lld], expected [%lld, %lld]", layer, what,
                       (long long)w->rows, (long long)w->cols, (long long)rows, (long long)cols);
    return HL_OK;
}

static hl_status check_vec(const hl_weight *w, int64_t n, const char *what, int layer) {
    if (!w->data || w->rows * w->cols != n)
        return hl_fail(HL_ERR_SHAPE, "layer %d %s has %lld elements, expected %lld", layer, what,
                       (long long)(w->rows * w->cols), (long long)n);
    return HL_OK;
}

static hl_status check_model(const hl_model *m) {
    const hl_llama_config *c = &m->cfg;
    int64_t D = c->dim, F = c->hidden_dim, Dq = (int64_t)c->n_heads * c->head_dim;
    int64_t Dkv = (int64_t)c->n_kv_heads * c->head_dim;
    HL_TRY(check_weight(&m->tok_embed, c->vocab_size, D, "embedding", -1));
    HL_TRY(check_weight(&m->lm_head, c->vocab_size, D, "lm_head", -1));
    HL_TRY(check_vec(&m->final_norm, D, "final norm", -1));
    for (int l = 0; l < c->n_layers; l++) {
        const hl_layer_weights *w = &m->layers[l];
        HL_TRY(check_weight(&w->wq, Dq, D, "q_proj", l));
        HL_TRY(check_weight(&w->wk, Dkv, D, "k_proj", l));
        HL_TRY(check_weight(&w->wv, Dkv, D, "v_proj", l));
        HL_TRY(check_weight(&w->wo, D, Dq, "o_proj", l));
        HL_TRY(check_weight(&w->w_gate, F, D, "gate_proj", l));
        HL_TRY(check_weight(&w->w_up, F, D, "up_proj", l));
        HL_TRY(check_weight(&w->w_down, D, F, "down_proj", l));
        HL_TRY(check_vec(&w->attn_norm, D, "input_layernorm", l));
        HL_TRY(check_vec(&w->ffn_norm, D, "post_attention_layernorm", l));
    }
    return HL_OK;
}

/* Copies a weight to the device in dtype `dt` (as stored when the dtypes agree, else converted
 * through f32 on the host in blocks). */
static hl_status upload_weight(cu_session *cs, void *dst, const hl_weight *w, int dt) {
    const int64_t n = w->rows * w->cols;
    const size_t esz = hl_dtype_size((hl_dtype)dt);
    if ((int)w->dtype == dt) {
        CU_TRY(cudaMemcpyAsync(dst, w->data, (size_t)n * esz, cudaMemcpyHostToDevice, cs->st));
        return HL_OK;
    }
    const int64_t rows_per = w->cols >= (1 << 20) ? 1 : ((int64_t)1 << 20) / w->cols;
    float *f = malloc((size_t)(rows_per * w->cols) * sizeof(float));
    uint16_t *h = malloc((size_t)(rows_per * w->cols) * sizeof(uint16_t));
    if (!f || !h) {
        free(f);
        free(h);
        return hl_fail(HL_ERR_NOMEM, "out of memory converting weights for the GPU");
    }
    hl_status st = HL_OK;
    for (int64_t r0 = 0; r0 < w->rows && !st; r0 += rows_per) {
        int64_t nr = w->rows - r0 < rows_per ? w->rows - r0 : rows_per, ne = nr * w->cols;
        hl_weight_rows_to_f32(w, r0, nr, f);
        const void *src = f;
        if (dt != HL_DTYPE_F32) {
            for (int64_t i = 0; i < ne; i++)
                h[i] = dt == HL_DTYPE_BF16 ? hl_f32_to_bf16(f[i]) : hl_f32_to_f16(f[i]);
            src = h;
        }
        cudaError_t e = cudaMemcpyAsync((char *)dst + (size_t)(r0 * w->cols) * esz, src, (size_t)ne * esz,
                                        cudaMemcpyHostToDevice, cs->st);
        if (e == cudaSuccess)
            e = cudaStreamSynchronize(cs->st); /* the staging buffers are reused */
        if (e != cudaSuccess)
            st = hl_cu_fail(e, "weight upload", __FILE__, __LINE__);
    }
    free(f);
    free(h);
    return st;
}

static hl_status upload_norm(cu_session *cs, float *dst, const hl_weight *w, int64_t D, float *host) {
    hl_weight flat = *w;
    flat.rows = 1;
    flat.cols = D;
    hl_weight_rows_to_f32(&flat, 0, 1, host);
    CU_TRY(cudaMemcpyAsync(dst, host, (size_t)D * sizeof(float), cudaMemcpyHostToDevice, cs->st));
    return cudaStreamSynchronize(cs->st) == cudaSuccess ? HL_OK : hl_fail(HL_ERR_INTERNAL, "norm upload failed");
}

static hl_status upload_model(cu_session *cs, const hl_model *m) {
    const cu_dims *d = &cs->d;
    const int dt = d->dt;
    const size_t e = d->esz;
    float *host = malloc((size_t)d->D * sizeof(float));
    if (!host)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    hl_status st = HL_OK;
    for (int l = 0; l < d->L && !st; l++) {
        const hl_layer_weights *w = &m->layers[l];
        const cu_layer_w *g = &cs->lw[l];
        st = upload_norm(cs, cs->norms + (2 * l) * d->D, &w->attn_norm, d->D, host);
        if (!st)
            st = upload_norm(cs, cs->norms + (2 * l + 1) * d->D, &w->ffn_norm, d->D, host);
        if (!st)
            st = upload_weight(cs, g->wqkv, &w->wq, dt);
        if (!st)
            st = upload_weight(cs, (char *)g->wqkv + (size_t)(d->Dq * d->D) * e, &w->wk, dt);
        if (!st)
            st = upload_weight(cs, (char *)g->wqkv + (size_t)((d->Dq + d->Dkv) * d->D) * e, &w->wv, dt);
        if (!st)
            st = upload_weight(cs, g->wo, &w->wo, dt);
        if (!st)
            st = upload_weight(cs, g->wgu, &w->w_gate, dt);
        if (!st)
            st = upload_weight(cs, (char *)g->wgu + (size_t)(d->F * d->D) * e, &w->w_up, dt);
        if (!st)
            st = upload_weight(cs, g->wdown, &w->w_down, dt);
    }
    if (!st)
        st = upload_norm(cs, cs->norms + 2 * d->L * d->D, &m->final_norm, d->D, host);
    if (!st)
        st = upload_weight(cs, cs->embed, &m->tok_embed, dt);
    if (!st && !d->tied)
        st = upload_weight(cs, cs->lm_head, &m->lm_head, dt);
    free(host);
    if (st)
        return st;
    /* RoPE tables [T, hd/2]: computed in double and rounded, the CPU backend's formula, so both
     * rotate by the same f32 values */
    const int64_t half = d->hd / 2, n = d->T * half;
    float *ct = malloc((size_t)n * 2 * sizeof(float));
    if (!ct)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    float *stab = ct + n;
    for (int64_t j = 0; j < half; j++) {
        double inv_freq = 1.0 / pow((double)m->cfg.rope_theta, (2.0 * (double)j) / (double)d->hd);
        for (int64_t p = 0; p < d->T; p++) {
            double a = (double)p * inv_freq;
            ct[p * half + j] = (float)cos(a);
            stab[p * half + j] = (float)sin(a);
        }
    }
    size_t nb = (size_t)n * sizeof(float);
    cudaError_t ce = cudaMemcpyAsync(cs->rope_cos, ct, nb, cudaMemcpyHostToDevice, cs->st);
    if (ce == cudaSuccess)
        ce = cudaMemcpyAsync(cs->rope_sin, stab, nb, cudaMemcpyHostToDevice, cs->st);
    if (ce == cudaSuccess)
        ce = cudaStreamSynchronize(cs->st);
    free(ct);
    if (ce != cudaSuccess)
        return hl_cu_fail(ce, "RoPE table upload", __FILE__, __LINE__);
    return HL_OK;
}

/* ---- session ---------------------------------------------------------------------------------- */

/* ---- release ------------------------------------------------------------------------------------- */

static void release(hl_backend *be, cu_session *cs) {
    if (!cs)
        return;
    if (cs->st)
        cudaStreamSynchronize(cs->st);
    cu_prof_free(cs);
    hl_cu_gemm_free(cs->gemm);
    if (cs->st)
        cudaStreamDestroy(cs->st);
    cu_free(be, cs->wslab, cs->wbytes);
    cu_free(be, cs->pslab, cs->pbytes);
    cu_free(be, cs->aslab, cs->abytes);
    cu_free(be, cs->sslab, cs->sbytes);
    if (cs->h_ints)
        cudaFreeHost(cs->h_ints);
    if (cs->h_loss)
        cudaFreeHost(cs->h_loss);
    free(cs->h_tseg);
    free(cs->lw);
    free(cs->acts);
    free(cs->proj);
    free(cs);
}

static hl_status session_build(hl_session *s, cu_session *cs) {
    hl_backend *be = s->be;
    cu_backend *b = be->impl;
    const hl_model *model = s->model;
    const hl_llama_config *c = &model->cfg;
    const hl_adapters *ad = s->has_adapters ? &s->layout : NULL;
    HL_TRY(cu_dims_init(&cs->d, c, model->dtype, ad ? &ad->cfg : NULL, s->batch, s->seq, s->flags));
    cu_dims *d = &cs->d;
    if (ad && ad->n_layers != c->n_layers)
        return hl_fail(HL_ERR_SHAPE, "adapter has %d layers but the model has %d", ad->n_layers, c->n_layers);
    if (ad && ad->n_params != d->n_params)
        return hl_fail(HL_ERR_SHAPE, "adapter layout has %zu parameters, expected %zu", ad->n_params, d->n_params);
    HL_TRY(check_model(model));
    cu_plan_fill(d, &s->plan);
    cs->dev = b->dev;
    cs->eps = c->rms_norm_eps;
    CU_TRY(cudaSetDevice(b->dev));
    size_t fr = 0, tot = 0;
    CU_TRY(cudaMemGetInfo(&fr, &tot));
    if (s->plan.total + CU_RESERVE > fr)
        return hl_fail(HL_ERR_NOMEM,
                       "not enough GPU memory on %s (%s): this session needs %.2f GiB (weights %.2f, activations "
                       "%.2f, scratch %.2f, adapters %.2f) plus %.2f GiB headroom, %.2f GiB of %.2f are free; lower "
                       "micro_batch or max_len, or turn on gradient checkpointing",
                       be->name, b->prop.name, gib(s->plan.total), gib(s->plan.weights), gib(s->plan.activations),
                       gib(s->plan.scratch), gib(s->plan.params + s->plan.grads + s->plan.moments), gib(CU_RESERVE),
                       gib(fr), gib(tot));
    cs->lw = calloc((size_t)d->L, sizeof *cs->lw);
    cs->acts = calloc((size_t)(d->train && !d->ckpt ? d->L : 1), sizeof *cs->acts);
    cs->proj = calloc((size_t)d->L * 7, sizeof *cs->proj);
    cs->h_tseg = malloc((size_t)d->M * sizeof *cs->h_tseg);
    if (!cs->lw || !cs->acts || !cs->proj || !cs->h_tseg)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    cu_carve(d, NULL, &cs->wbytes, &cs->pbytes, &cs->abytes, &cs->sbytes);
    HL_TRY(cu_malloc(be, &cs->wslab, cs->wbytes, "the model weights"));
    HL_TRY(cu_malloc(be, (void **)&cs->pslab, cs->pbytes, "the adapter parameters"));
    HL_TRY(cu_malloc(be, &cs->aslab, cs->abytes, "activations"));
    HL_TRY(cu_malloc(be, &cs->sslab, cs->sbytes, "scratch buffers"));
    size_t w2, p2, a2, s2;
    cu_carve(d, cs, &w2, &p2, &a2, &s2);
    CU_TRY(cudaStreamCreateWithFlags(&cs->st, cudaStreamNonBlocking));
    cu_prof_from_env(cs);
    HL_TRY(hl_cu_gemm_create(&cs->gemm, cs->gemm_ws, HL_CU_GEMM_WORKSPACE));
    CU_TRY(cudaMallocHost((void **)&cs->h_ints, cu_ints_count(d) * sizeof(int32_t)));
    CU_TRY(cudaMallocHost((void **)&cs->h_loss, (size_t)d->M * sizeof(double)));
    HL_TRY(upload_model(cs, model));
    /* adapters: initial parameters from the layout (hl_adapters_create with the seed), zero
     * gradients and moments, zero statistics */
    CU_TRY(cudaMemsetAsync(cs->pslab, 0, cs->pbytes, cs->st));
    if (ad) {
        cs->ad_scale = ad->scale;
        cs->ad_dropout = ad->cfg.dropout;
        CU_TRY(cudaMemcpyAsync(cs->params, ad->params, d->n_params * sizeof(float), cudaMemcpyHostToDevice, cs->st));
        for (int l = 0; l < d->L; l++)
            for (int t = 0; t < 7; t++) {
                const hl_adapter_proj *p = hl_adapters_proj(ad, l, t);
                cu_proj *q = &cs->proj[l * 7 + t];
                if (!p)
                    continue;
                q->on = 1;
                q->d_in = p->d_in;
                q->d_out = p->d_out;
                q->offA = (size_t)(p->A - ad->params);
                q->offB = (size_t)(p->B - ad->params);
                q->offR = p->R ? (size_t)(p->R - ad->params) : 0;
            }
    }
    CU_TRY(cudaStreamSynchronize(cs->st));
    return HL_OK;
}

hl_status cu_session_init(hl_session *s) {
    cu_session *cs = calloc(1, sizeof *cs);
    if (!cs)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    hl_status st = session_build(s, cs);
    if (st) {
        release(s->be, cs);
        return st;
    }
    /* The device slabs are the values now: the layout's host slabs would only go stale, so they
     * are released (the layout keeps names, shapes and offsets; read_slab gives values). */
    if (s->has_adapters) {
        hl_adapters *ad = &s->layout;
        free(ad->params);
        free(ad->grads);
        free(ad->m);
        free(ad->v);
        ad->params = ad->grads = ad->m = ad->v = NULL;
        for (int i = 0; i < ad->n_layers * HL_TARGET_COUNT; i++) {
            hl_adapter_proj *p = &ad->proj[i];
            p->A = p->B = p->R = p->dA = p->dB = p->dR = NULL;
        }
    }
    s->impl = cs;
    return HL_OK;
}

void cu_session_free(hl_session *s) {
    if (!s || !s->impl)
        return;
    release(s->be, s->impl);
    s->impl = NULL;
}

/* ---- slabs, optimizer, statistics ----------------------------------------------------------- */

static float *slab_ptr(cu_session *cs, hl_slab which) {
    switch (which) {
    case HL_SLAB_PARAMS: return cs->params;
    case HL_SLAB_GRADS: return cs->grads;
    case HL_SLAB_ADAM_M: return cs->adam_m;
    case HL_SLAB_ADAM_V: return cs->adam_v;
    }
    return NULL;
}

static hl_status slab_check(cu_session *cs, hl_slab which, size_t offset, size_t n, float **p) {
    *p = slab_ptr(cs, which);
    if (!*p && cs->d.n_params)
        return hl_fail(HL_ERR_STATE, "this GPU session was created without training: it has no gradients or moments");
    if (offset > cs->d.n_params || n > cs->d.n_params - offset)
        return hl_fail(HL_ERR_RANGE, "slab range %zu + %zu is outside the %zu adapter parameters", offset, n,
                       cs->d.n_params);
    return HL_OK;
}

hl_status cu_read_slab(hl_session *s, hl_slab which, size_t offset, size_t n, float *dst) {
    cu_session *cs = s->impl;
    float *p;
    HL_TRY(slab_check(cs, which, offset, n, &p));
    if (!n)
        return HL_OK;
    CU_TRY(cudaMemcpyAsync(dst, p + offset, n * sizeof(float), cudaMemcpyDeviceToHost, cs->st));
    CU_TRY(cudaStreamSynchronize(cs->st));
    return HL_OK;
}

hl_status cu_write_slab(hl_session *s, hl_slab which, size_t offset, size_t n, const float *src) {
    cu_session *cs = s->impl;
    float *p;
    HL_TRY(slab_check(cs, which, offset, n, &p));
    if (!n)
        return HL_OK;
    CU_TRY(cudaMemcpyAsync(p + offset, src, n * sizeof(float), cudaMemcpyHostToDevice, cs->st));
    CU_TRY(cudaStreamSynchronize(cs->st));
    return HL_OK;
}

hl_status cu_zero_grad(hl_session *s) {
    cu_session *cs = s->impl;
    if (!cs->grads)
        return HL_OK;
    CU_TRY(cudaMemsetAsync(cs->grads, 0, cs->d.n_params * sizeof(float), cs->st));
    return HL_OK;
}

hl_status cu_reduce_grads(hl_session *s, struct hl_comm *comm) {
    cu_session *cs = s->impl;
    if (!comm || !cs->grads || !cs->d.n_params)
        return HL_OK;
    if (!hl_comm_have_nccl()) {
        if (hl_comm_size(comm) == 1)
            return HL_OK; /* one process: the buffer already holds the sum */
        return hl_fail(HL_ERR_STATE, "GPU gradients of %d processes need NCCL, and this hydralora was built without "
                       "it (install NCCL and rebuild with -DHL_NCCL=ON)", hl_comm_size(comm));
    }
    /* The one contiguous f32 gradient buffer, summed in place by NCCL on the session's stream
     * (the micro-batches queued on it come first); the communicator is made on first use, by
     * every rank at the same step, on this session's GPU. One rank sums too: the run then takes
     * the same path as with several, and NCCL leaves one rank's buffer as it is. */
    if (!hl_comm_device_ready(comm))
        HL_TRY(hl_comm_device_open(comm, s->be->device));
    return hl_comm_device_allreduce_f32(comm, cs->grads, cs->d.n_params, cs->st);
}

hl_status cu_optim_step(hl_session *s, int64_t t, float lr, const hl_optim_config *cfg, double *grad_norm) {
    cu_session *cs = s->impl;
    const size_t n = cs->d.n_params;
    if (!cs->grads)
        return hl_fail(HL_ERR_STATE, "this GPU session was created without training");
    double ss = 0.0;
    if (n) {
        cu_prof_mark(cs, CU_P_OPTIM);
        HL_TRY(hlk_sumsq(cs->st, cs->grads, n, cs->norm_part, cs->norm_out));
        CU_TRY(cudaMemcpyAsync(&ss, cs->norm_out, sizeof ss, cudaMemcpyDeviceToHost, cs->st));
        CU_TRY(cudaStreamSynchronize(cs->st));
    }
    /* from here on, core/adapter/optim.c hl_adamw_step line by line */
    double norm = sqrt(ss);
    if (grad_norm)
        *grad_norm = norm;
    if (!isfinite(norm))
        return hl_fail(HL_ERR_NUMERIC, "gradient norm is %g at step %lld (NaN or inf): lower the learning rate?", norm,
                       (long long)t);
    if (t < 1)
        return hl_fail(HL_ERR_ARG, "AdamW step count must start at 1 (got %lld)", (long long)t);
    float gscale = 1.0f;
    if (cfg->clip_norm > 0.0f) {
        double coef = (double)cfg->clip_norm / (norm + 1e-6);
        if (coef < 1.0)
            gscale = (float)coef;
    }
    const float b1 = cfg->beta1, b2 = cfg->beta2;
    const double bc1 = 1.0 - pow((double)b1, (double)t), bc2 = 1.0 - pow((double)b2, (double)t);
    const float step_size = (float)((double)lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    const float decay = 1.0f - lr * cfg->weight_decay;
    cu_prof_mark(cs, CU_P_OPTIM);
    HL_TRY(hlk_adamw(cs->st, cs->params, cs->grads, cs->adam_m, cs->adam_v, n, gscale, decay, b1, b2, step_size,
                     bc2_sqrt, cfg->eps));
    CU_TRY(cudaStreamSynchronize(cs->st));
    cu_prof_flush(cs);
    return HL_OK;
}

hl_status cu_routing(hl_session *s, hl_stats_which which, hl_routing_stats *dst) {
    cu_session *cs = s->impl;
    const cu_dims *d = &cs->d;
    if (dst->n_layers != d->L || (d->N && dst->N != d->N))
        return hl_fail(HL_ERR_SHAPE, "routing statistics for %d layers x %d heads requested, the session has %lld x %lld",
                       dst->n_layers, dst->N, (long long)d->L, (long long)d->N);
    if (!d->has_router) {
        hl_routing_stats_reset(dst);
        return HL_OK;
    }
    const cu_stats *st = &cs->stats[which == HL_STATS_EVAL];
    const size_t np = (size_t)d->L * 7;
    CU_TRY(cudaMemcpyAsync(dst->tokens, st->tokens, np * 8, cudaMemcpyDeviceToHost, cs->st));
    CU_TRY(cudaMemcpyAsync(dst->entropy_sum, st->ent, np * 8, cudaMemcpyDeviceToHost, cs->st));
    CU_TRY(cudaMemcpyAsync(dst->weight_sum, st->wsum, np * (size_t)d->N * 8, cudaMemcpyDeviceToHost, cs->st));
    CU_TRY(cudaMemcpyAsync(dst->top1, st->top1, np * (size_t)d->N * 8, cudaMemcpyDeviceToHost, cs->st));
    CU_TRY(cudaStreamSynchronize(cs->st));
    return HL_OK;
}

hl_status cu_routing_reset(hl_session *s, hl_stats_which which) {
    cu_session *cs = s->impl;
    const cu_dims *d = &cs->d;
    if (!d->has_router)
        return HL_OK;
    const cu_stats *st = &cs->stats[which == HL_STATS_EVAL];
    const size_t np = (size_t)d->L * 7;
    CU_TRY(cudaMemsetAsync(st->tokens, 0, np * 8, cs->st));
    CU_TRY(cudaMemsetAsync(st->ent, 0, np * 8, cs->st));
    CU_TRY(cudaMemsetAsync(st->wsum, 0, np * (size_t)d->N * 8, cs->st));
    CU_TRY(cudaMemsetAsync(st->top1, 0, np * (size_t)d->N * 8, cs->st));
    CU_TRY(cudaStreamSynchronize(cs->st));
    return HL_OK;
}

void cu_collect_eval_stats(hl_session *s, int on) { ((cu_session *)s->impl)->eval_stats = on; }
uint64_t cu_dropout_step(const hl_session *s) { return s->layout.dropout_step; }
void cu_set_dropout_step(hl_session *s, uint64_t step) { s->layout.dropout_step = step; }

