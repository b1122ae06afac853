/* LLaMA-2 + HydraLoRA forward and backward on the GPU: the structure of core/backend/cpu/llama.c, block by
 * block, over the session's device buffers.
 *
 * Per block, rows m of the flat batch (M = B·T):
 *   xn = rmsnorm(x)        qkv = xn·[Wq;Wk;Wv]ᵀ (+ adapters on the q, k, v column ranges)   rope(q, k)
 *   att = attention(q, k, v) over the packed examples       xmid = x + att·Woᵀ (+ adapter)
 *   xn2 = rmsnorm(xmid)    gu = xn2·[Wgate;Wup]ᵀ (+ adapters)   h = silu(g) ⊙ u
 *   x' = xmid + h·Wdownᵀ (+ adapter)
 * Stacking q/k/v and gate/up makes one wider product each, forward and backward (the three
 * input gradients are summed inside one product instead of three). Saved for backward: x, rstd1,
 * qkv, lse, att, xmid, rstd2, gu, adapter Z and ω; recomputed: the normed inputs, h, dropout
 * masks (a hash of the element), attention probabilities. With checkpointing only the block
 * inputs are kept and the block is re-run (same code, same masks) before its backward. The loss
 * runs over chunks of target rows: logits of a chunk, loss and dlogits in place, dX += dlogits·W. */
#include <math.h>
#include <string.h>

#include "core/backend/cuda/cuda_check.h"
#include "core/backend/cuda/cuda_session.h"

typedef struct {
    int B, T;
    int64_t M, n_tgt;
    int n_blk, has_pad;
    int dropout;   /* training forward: adapter dropout on */
    int stats;     /* routing statistics set to add to (-1: none) */
    cu_ints dev;   /* per-call index arrays on the device */
} fcall;

static void *off_at(const cu_session *cs, const void *p, int64_t elems) {
    return (char *)p + (size_t)elems * cs->d.esz;
}

static void *xbuf(cu_session *cs, int l) {
    int64_t i = cs->d.train ? l : (l & 1);
    return off_at(cs, cs->xs, i * cs->d.M * cs->d.D);
}

static cu_acts *acts_of(cu_session *cs, int l) { return cs->d.train && !cs->d.ckpt ? &cs->acts[l] : cs->acts; }

/* ---- the batch -------------------------------------------------------------------------------- */

static hl_status prepare(cu_session *cs, const hl_batch *b, int with_labels, fcall *fc) {
    const cu_dims *d = &cs->d;
    /* The seam's size rule: B·T tokens within the planned batch·seq, every example within seq (the
     * RoPE table and the attention tiles are per example); a packed row may be longer than seq. */
    if (b->B < 1 || b->T < 1 || (int64_t)b->B * b->T > d->M)
        return hl_fail(HL_ERR_ARG, "batch %d x %d does not fit the session planned for %lld x %lld", b->B, b->T,
                       (long long)d->B, (long long)d->T);
    memset(fc, 0, sizeof *fc);
    fc->B = b->B, fc->T = b->T, fc->M = (int64_t)b->B * b->T;
    fc->stats = -1;
    const int64_t M = fc->M, V = d->V;
    cu_ints h = cu_ints_at(d, cs->h_ints);
    for (int64_t m = 0; m < M; m++) {
        h.tok[m] = 0;
        h.pos[m] = -1;
        h.send[m] = (int32_t)(m + 1);
    }
    int64_t prev_end = 0, nb = 0, n = 0;
    for (int e = 0; e < b->n_seq; e++) {
        int64_t start = b->seq_start[e], len = b->seq_len[e];
        if (len > d->T)
            return hl_fail(HL_ERR_ARG, "example %d has %lld tokens, more than the session's sequence length %lld", e,
                           (long long)len, (long long)d->T);
        if (len < 1 || start < prev_end || start + len > M || start / b->T != (start + len - 1) / b->T)
            return hl_fail(HL_ERR_ARG, "example %d (start %lld, length %lld) must lie inside one row of %d, after "
                                       "the previous example",
                           e, (long long)start, (long long)len, b->T);
        prev_end = start + len;
        for (int64_t i = 0; i < len; i++) {
            int64_t m = start + i;
            int32_t id = b->tokens[m];
            if (id < 0 || id >= V)
                return hl_fail(HL_ERR_RANGE, "token id %d at row %lld column %lld is outside the vocabulary (0..%lld)",
                               id, (long long)(m / b->T), (long long)(m % b->T), (long long)(V - 1));
            h.tok[m] = id;
            h.pos[m] = (int32_t)i;
            h.send[m] = (int32_t)(start + len);
        }
        for (int64_t o = 0; o < len; o += HLK_ATTN_BLOCK) {
            h.blk_start[nb] = (int32_t)start;
            h.blk_len[nb] = (int32_t)len;
            h.blk_off[nb] = (int32_t)o;
            nb++;
        }
        if (with_labels && b->labels)
            for (int64_t i = 0; i + 1 < len; i++) { /* position i predicts the label of token i + 1 */
                int32_t y = b->labels[start + i + 1];
                if (y == -100)
                    continue;
                if (y < 0 || y >= V)
                    return hl_fail(HL_ERR_RANGE,
                                   "label %d at row %lld column %lld is neither -100 nor a token id (0..%lld)", y,
                                   (long long)((start + i + 1) / b->T), (long long)((start + i + 1) % b->T),
                                   (long long)(V - 1));
                h.rows[n] = (int32_t)(start + i);
                h.tgt[n] = y;
                cs->h_tseg[n] = e;
                n++;
            }
    }
    fc->n_tgt = n;
    fc->n_blk = (int)nb;
    for (int64_t m = 0; m < M && !fc->has_pad; m++)
        fc->has_pad = h.pos[m] < 0;
    CU_TRY(cudaMemcpyAsync(cs->ints, cs->h_ints, cu_ints_count(d) * sizeof(int32_t), cudaMemcpyHostToDevice, cs->st));
    fc->dev = cu_ints_at(d, cs->ints);
    return HL_OK;
}

/* ---- adapters ------------------------------------------------------------------------------- */

static hlk_drop drop_for(hl_session *s, const fcall *fc, int l, int t) {
    cu_session *cs = s->impl;
    hlk_drop dr = {0, 0.0f};
    if (fc->dropout && cs->ad_dropout > 0.0f) {
        dr.p = cs->ad_dropout;
        dr.key = hl_adapter_dropout_key(&s->layout, l, t);
    }
    return dr;
}

static hlk_adapter adapter_of(hl_session *s, const fcall *fc, int l, int t) {
    cu_session *cs = s->impl;
    const cu_dims *d = &cs->d;
    const cu_proj *p = &cs->proj[l * 7 + t];
    hlk_adapter a;
    memset(&a, 0, sizeof a);
    a.M = fc->M;
    a.d_in = p->d_in, a.d_out = p->d_out;
    a.N = (int)d->N, a.r = (int)d->r, a.nA = (int)d->nA, a.has_router = d->has_router, a.dt = d->dt;
    a.scale = cs->ad_scale;
    a.A = cs->params + p->offA, a.B = cs->params + p->offB, a.R = d->has_router ? cs->params + p->offR : NULL;
    if (cs->grads) {
        a.dA = cs->grads + p->offA, a.dB = cs->grads + p->offB;
        a.dR = d->has_router ? cs->grads + p->offR : NULL;
    }
    a.zw = cs->zw, a.p = cs->ap, a.dz = cs->adz, a.dl = cs->adl, a.partials = cs->apart, a.bt = cs->abt;
    a.gemm = cs->gemm, a.h = cs->ah, a.fp = cs->afp, a.hp = cs->ahp, a.wsp = cs->awsp, a.gp = cs->agp;
    return a;
}

/* Y (ldy) += adapter(X) for projection (l, t); saves Z and ω in la; adds routing statistics. */
static hl_status adapter_fwd(hl_session *s, const fcall *fc, cu_acts *la, int l, int t, void *Y, int64_t ldy,
                             const void *X, int64_t ldx) {
    cu_session *cs = s->impl;
    const cu_dims *d = &cs->d;
    if (!cs->proj[l * 7 + t].on)
        return HL_OK;
    hlk_adapter a = adapter_of(s, fc, l, t);
    cu_prof_mark(cs, CU_P_AD_FWD);
    HL_TRY(hl_cu_adapter_fwd(cs->st, &a, drop_for(s, fc, l, t), Y, ldy, X, ldx, la->Z[t], la->W[t]));
    if (fc->stats >= 0 && d->has_router) {
        const cu_stats *st = &cs->stats[fc->stats];
        const int slot = l * 7 + t;
        HL_TRY(hlk_route_stats(cs->st, la->W[t], fc->dev.pos, fc->M, (int)d->N, st->tokens + slot,
                               st->wsum + (size_t)slot * d->N, st->top1 + (size_t)slot * d->N, st->ent + slot));
    }
    return HL_OK;
}

/* Given G = ∂/∂Y (ldg): adapter gradients +=, and dX (lddx) += the adapter's part when dX != NULL. */
static hl_status adapter_bwd(hl_session *s, const fcall *fc, cu_acts *la, int l, int t, void *dX, int64_t lddx,
                             const void *G, int64_t ldg, const void *X, int64_t ldx) {
    cu_session *cs = s->impl;
    if (!cs->proj[l * 7 + t].on)
        return HL_OK;
    hlk_adapter a = adapter_of(s, fc, l, t);
    cu_prof_mark(cs, CU_P_AD_BWD);
    return hl_cu_adapter_bwd(cs->st, &a, drop_for(s, fc, l, t), dX, lddx, G, ldg, X, ldx, la->Z[t], la->W[t]);
}

/* ---- blocks ------------------------------------------------------------------------------------ */

/* Products through the frozen weights, with the phase marked for the profile. */
static hl_status lin(cu_session *cs, int64_t M, int64_t N, int64_t K, const void *X, int64_t ldx, const void *W,
                     float beta, const void *C, void *Y, int64_t ldy) {
    cu_prof_mark(cs, CU_P_MM_FWD);
    return hl_cu_linear(cs->gemm, cs->st, M, N, K, X, ldx, W, cs->d.dt, beta, C, Y, ldy);
}
static hl_status lin_dx(cu_session *cs, int64_t M, int64_t N, int64_t K, const void *dY, int64_t lddy, const void *W,
                        void *dX, int64_t lddx) {
    cu_prof_mark(cs, CU_P_MM_BWD);
    return hl_cu_linear_dx(cs->gemm, cs->st, M, N, K, dY, lddy, W, cs->d.dt, 0.0f, dX, lddx);
}
#define ELEM(cs) cu_prof_mark((cs), CU_P_ELEM)

static hlk_attn attn_geom(cu_session *cs, const fcall *fc, cu_acts *la) {
    const cu_dims *d = &cs->d;
    hlk_attn a;
    memset(&a, 0, sizeof a);
    a.M = fc->M;
    a.H = (int)d->H, a.Hkv = (int)d->Hkv, a.hd = (int)d->hd, a.dt = d->dt;
    a.q = la->qkv;
    a.k = off_at(cs, la->qkv, d->Dq);
    a.v = off_at(cs, la->qkv, d->Dq + d->Dkv);
    a.ldq = a.ldk = a.ldv = d->Dqkv;
    a.pos = fc->dev.pos;
    a.send = fc->dev.send;
    a.n_blk = fc->n_blk;
    a.blk_start = fc->dev.blk_start;
    a.blk_len = fc->dev.blk_len;
    a.blk_off = fc->dev.blk_off;
    return a;
}

static hl_status block_forward(hl_session *s, const fcall *fc, int l) {
    cu_session *cs = s->impl;
    const cu_dims *d = &cs->d;
    const cu_layer_w *w = &cs->lw[l];
    cu_acts *la = acts_of(cs, l);
    void *x = xbuf(cs, l), *xo = xbuf(cs, l + 1);
    const int64_t M = fc->M, D = d->D, F = d->F;
    const int dt = d->dt;
    ELEM(cs);
    HL_TRY(hlk_rmsnorm_fwd(cs->st, cs->xn, la->rstd1, x, cs->norms + 2 * l * D, M, (int)D, cs->eps, dt));
    HL_TRY(lin(cs, M, d->Dqkv, D, cs->xn, D, w->wqkv, 0.0f, NULL, la->qkv, d->Dqkv));
    HL_TRY(adapter_fwd(s, fc, la, l, 0, la->qkv, d->Dqkv, cs->xn, D));
    HL_TRY(adapter_fwd(s, fc, la, l, 1, off_at(cs, la->qkv, d->Dq), d->Dqkv, cs->xn, D));
    HL_TRY(adapter_fwd(s, fc, la, l, 2, off_at(cs, la->qkv, d->Dq + d->Dkv), d->Dqkv, cs->xn, D));
    ELEM(cs);
    HL_TRY(hlk_rope(cs->st, la->qkv, d->Dqkv, M, (int)d->H, (int)d->hd, fc->dev.pos, cs->rope_cos, cs->rope_sin, 0,
                    dt));
    ELEM(cs);
    HL_TRY(hlk_rope(cs->st, off_at(cs, la->qkv, d->Dq), d->Dqkv, M, (int)d->Hkv, (int)d->hd, fc->dev.pos,
                    cs->rope_cos, cs->rope_sin, 0, dt));
    cu_prof_mark(cs, CU_P_ATT_FWD);
    if (fc->has_pad) /* padding rows of att are 0, as on the CPU */
        CU_TRY(cudaMemsetAsync(la->att, 0, (size_t)(M * d->Dq) * d->esz, cs->st));
    hlk_attn a = attn_geom(cs, fc, la);
    HL_TRY(hlk_attn_fwd(cs->st, &a, la->att, d->Dq, la->lse));
    HL_TRY(lin(cs, M, D, d->Dq, la->att, d->Dq, w->wo, 1.0f, x, la->xmid, D));
    HL_TRY(adapter_fwd(s, fc, la, l, 3, la->xmid, D, la->att, d->Dq));
    ELEM(cs);
    HL_TRY(hlk_rmsnorm_fwd(cs->st, cs->xn, la->rstd2, la->xmid, cs->norms + (2 * l + 1) * D, M, (int)D, cs->eps, dt));
    HL_TRY(lin(cs, M, 2 * F, D, cs->xn, D, w->wgu, 0.0f, NULL, la->gu, 2 * F));
    HL_TRY(adapter_fwd(s, fc, la, l, 4, la->gu, 2 * F, cs->xn, D));
    HL_TRY(adapter_fwd(s, fc, la, l, 5, off_at(cs, la->gu, F), 2 * F, cs->xn, D));
    ELEM(cs);
    HL_TRY(hlk_swiglu_fwd(cs->st, cs->hbuf, la->gu, M, (int)F, dt));
    HL_TRY(lin(cs, M, D, F, cs->hbuf, F, w->wdown, 1.0f, la->xmid, xo, D));
    return adapter_fwd(s, fc, la, l, 6, xo, D, cs->hbuf, F);
}

/* dres: ∂loss/∂(block output) on entry, ∂loss/∂(block input) on return (not for layer 0,
 * whose input is the frozen embedding). */
static hl_status block_backward(hl_session *s, const fcall *fc, int l) {
    cu_session *cs = s->impl;
    const cu_dims *d = &cs->d;
    const cu_layer_w *w = &cs->lw[l];
    if (d->ckpt) {
        fcall re = *fc;
        re.stats = -1; /* statistics were counted by the first pass */
        HL_TRY(block_forward(s, &re, l));
    }
    cu_acts *la = acts_of(cs, l);
    void *x = xbuf(cs, l);
    const int64_t M = fc->M, D = d->D, F = d->F;
    const int dt = d->dt;
    /* FFN: x' = xmid + down(h) */
    ELEM(cs);
    HL_TRY(hlk_swiglu_fwd(cs->st, cs->hbuf, la->gu, M, (int)F, dt));
    HL_TRY(lin_dx(cs, M, D, F, cs->dres, D, w->wdown, cs->dh, F));
    HL_TRY(adapter_bwd(s, fc, la, l, 6, cs->dh, F, cs->dres, D, cs->hbuf, F));
    ELEM(cs);
    HL_TRY(hlk_swiglu_bwd(cs->st, la->gu, cs->dh, M, (int)F, dt)); /* gu now holds dg | du */
    ELEM(cs);
    HL_TRY(hlk_rmsnorm_fwd(cs->st, cs->xn, NULL, la->xmid, cs->norms + (2 * l + 1) * D, M, (int)D, cs->eps, dt));
    HL_TRY(lin_dx(cs, M, 2 * F, D, la->gu, 2 * F, w->wgu, cs->dxn, D));
    HL_TRY(adapter_bwd(s, fc, la, l, 4, cs->dxn, D, la->gu, 2 * F, cs->xn, D));
    HL_TRY(adapter_bwd(s, fc, la, l, 5, cs->dxn, D, off_at(cs, la->gu, F), 2 * F, cs->xn, D));
    ELEM(cs);
    HL_TRY(hlk_rmsnorm_bwd(cs->st, cs->dres, 1, cs->dxn, la->xmid, cs->norms + (2 * l + 1) * D, la->rstd2, M, (int)D,
                           dt));
    /* attention: xmid = x + o(att) */
    HL_TRY(lin_dx(cs, M, D, d->Dq, cs->dres, D, w->wo, cs->datt, d->Dq));
    HL_TRY(adapter_bwd(s, fc, la, l, 3, cs->datt, d->Dq, cs->dres, D, la->att, d->Dq));
    cu_prof_mark(cs, CU_P_ATT_BWD);
    if (fc->has_pad)
        CU_TRY(cudaMemsetAsync(cs->dqkv, 0, (size_t)(M * d->Dqkv) * d->esz, cs->st));
    hlk_attn a = attn_geom(cs, fc, la);
    void *dq = cs->dqkv, *dk = off_at(cs, cs->dqkv, d->Dq), *dv = off_at(cs, cs->dqkv, d->Dq + d->Dkv);
    HL_TRY(hlk_attn_bwd(cs->st, &a, la->att, d->Dq, cs->datt, d->Dq, la->lse, cs->Dbuf, dq, d->Dqkv, dk, d->Dqkv, dv,
                        d->Dqkv));
    ELEM(cs);
    HL_TRY(hlk_rope(cs->st, dq, d->Dqkv, M, (int)d->H, (int)d->hd, fc->dev.pos, cs->rope_cos, cs->rope_sin, 1, dt));
    ELEM(cs);
    HL_TRY(hlk_rope(cs->st, dk, d->Dqkv, M, (int)d->Hkv, (int)d->hd, fc->dev.pos, cs->rope_cos, cs->rope_sin, 1, dt));
    ELEM(cs);
    HL_TRY(hlk_rmsnorm_fwd(cs->st, cs->xn, NULL, x, cs->norms + 2 * l * D, M, (int)D, cs->eps, dt));
    const int need_dx = l > 0;
    if (need_dx)
        HL_TRY(lin_dx(cs, M, d->Dqkv, D, cs->dqkv, d->Dqkv, w->wqkv, cs->dxn, D));
    void *dxn = need_dx ? cs->dxn : NULL;
    HL_TRY(adapter_bwd(s, fc, la, l, 0, dxn, D, dq, d->Dqkv, cs->xn, D));
    HL_TRY(adapter_bwd(s, fc, la, l, 1, dxn, D, dk, d->Dqkv, cs->xn, D));
    HL_TRY(adapter_bwd(s, fc, la, l, 2, dxn, D, dv, d->Dqkv, cs->xn, D));
    if (need_dx) {
        ELEM(cs);
        HL_TRY(hlk_rmsnorm_bwd(cs->st, cs->dres, 1, cs->dxn, x, cs->norms + 2 * l * D, la->rstd1, M, (int)D, dt));
    }
    return HL_OK;
}

static hl_status forward_all(hl_session *s, const fcall *fc) {
    cu_session *cs = s->impl;
    const cu_dims *d = &cs->d;
    ELEM(cs);
    HL_TRY(hlk_embed(cs->st, xbuf(cs, 0), cs->embed, d->dt, fc->dev.tok, fc->M, (int)d->D));
    for (int l = 0; l < d->L; l++)
        HL_TRY(block_forward(s, fc, l));
    ELEM(cs);
    return hlk_rmsnorm_fwd(cs->st, cs->xf, cs->rstd_f, xbuf(cs, (int)d->L), cs->norms + 2 * d->L * d->D, fc->M,
                           (int)d->D, cs->eps, d->dt);
}

/* Loss over the target rows, chunk by chunk (row losses to h_loss); with gradients, dres =
 * ∂(scale · mean loss)/∂x_L. */
static hl_status head_loss(hl_session *s, const fcall *fc, float grad_scale, int with_grad) {
    cu_session *cs = s->impl;
    const cu_dims *d = &cs->d;
    const int64_t D = d->D, V = d->V, n = fc->n_tgt;
    const int dt = d->dt;
    cu_prof_mark(cs, CU_P_HEAD);
    if (with_grad)
        CU_TRY(cudaMemsetAsync(cs->dxn, 0, (size_t)(fc->M * D) * d->esz, cs->st));
    const float scale = grad_scale / (float)n;
    for (int64_t c0 = 0; c0 < n; c0 += d->LC) {
        int64_t nc = n - c0 < d->LC ? n - c0 : d->LC;
        HL_TRY(hlk_gather_rows(cs->st, cs->gx, cs->xf, fc->dev.rows + c0, nc, (int)D, dt));
        hl_cu_mat A = {cs->gx, dt, D, 0}, B = {cs->lm_head, dt, D, 1};
        HL_TRY(hl_cu_gemm_run(cs->gemm, cs->st, nc, V, D, 1.0f, A, B, 0.0f, NULL, cs->logits, HL_DTYPE_F32, V));
        HL_TRY(hlk_cross_entropy(cs->st, cs->logits, with_grad ? cs->dlogits : NULL, dt, fc->dev.tgt + c0, nc, (int)V,
                                 scale, cs->row_loss + c0));
        if (with_grad) {
            HL_TRY(hl_cu_linear_dx(cs->gemm, cs->st, nc, V, D, cs->dlogits, V, cs->lm_head, dt, 0.0f, cs->dgx, D));
            HL_TRY(hlk_scatter_rows(cs->st, cs->dxn, cs->dgx, fc->dev.rows + c0, nc, (int)D, dt));
        }
    }
    if (with_grad)
        HL_TRY(hlk_rmsnorm_bwd(cs->st, cs->dres, 0, cs->dxn, xbuf(cs, (int)d->L), cs->norms + 2 * d->L * D, cs->rstd_f,
                               fc->M, (int)D, dt));
    if (n)
        CU_TRY(cudaMemcpyAsync(cs->h_loss, cs->row_loss, (size_t)n * sizeof(double), cudaMemcpyDeviceToHost, cs->st));
    return HL_OK;
}

/* ---- entry points ------------------------------------------------------------------------------ */

hl_status cu_train_microbatch(hl_session *s, const hl_batch *b, float grad_scale, float *loss, int64_t *n_targets) {
    cu_session *cs = s->impl;
    if (!cs->d.train)
        return hl_fail(HL_ERR_STATE, "this session was created for evaluation only (no HL_SESSION_TRAIN)");
    if (!s->has_adapters)
        return hl_fail(HL_ERR_STATE, "training needs adapters: the base model is frozen");
    if (!b->labels)
        return hl_fail(HL_ERR_ARG, "a training batch needs labels");
    fcall fc;
    HL_TRY(prepare(cs, b, 1, &fc));
    fc.dropout = 1;
    fc.stats = (s->flags & HL_SESSION_STATS) ? HL_STATS_TRAIN : -1;
    HL_TRY(forward_all(s, &fc));
    if (fc.n_tgt > 0) {
        HL_TRY(head_loss(s, &fc, grad_scale, 1));
        for (int l = (int)cs->d.L - 1; l >= 0; l--)
            HL_TRY(block_backward(s, &fc, l));
    }
    s->layout.dropout_step++; /* next micro-batch, next masks (after backward: recompute used the same) */
    CU_TRY(cudaStreamSynchronize(cs->st));
    cu_prof_flush(cs);
    double sum = 0.0;
    for (int64_t i = 0; i < fc.n_tgt; i++)
        sum += cs->h_loss[i];
    if (loss)
        *loss = fc.n_tgt ? (float)(sum / (double)fc.n_tgt) : 0.0f;
    if (n_targets)
        *n_targets = fc.n_tgt;
    if (fc.n_tgt && !isfinite(sum))
        return hl_fail(HL_ERR_NUMERIC, "loss is not finite (NaN or inf)");
    return HL_OK;
}

hl_status cu_eval(hl_session *s, const hl_batch *b, float *loss, int64_t *n_targets, double *seq_loss_sum,
                  int64_t *seq_count) {
    cu_session *cs = s->impl;
    fcall fc;
    HL_TRY(prepare(cs, b, 1, &fc));
    fc.stats = cs->eval_stats ? HL_STATS_EVAL : -1;
    if (seq_loss_sum)
        memset(seq_loss_sum, 0, (size_t)b->n_seq * sizeof *seq_loss_sum);
    if (seq_count)
        memset(seq_count, 0, (size_t)b->n_seq * sizeof *seq_count);
    HL_TRY(forward_all(s, &fc));
    if (fc.n_tgt > 0)
        HL_TRY(head_loss(s, &fc, 1.0f, 0));
    CU_TRY(cudaStreamSynchronize(cs->st));
    double sum = 0.0;
    for (int64_t i = 0; i < fc.n_tgt; i++) {
        sum += cs->h_loss[i];
        if (seq_loss_sum)
            seq_loss_sum[cs->h_tseg[i]] += cs->h_loss[i];
        if (seq_count)
            seq_count[cs->h_tseg[i]]++;
    }
    if (loss)
        *loss = fc.n_tgt ? (float)(sum / (double)fc.n_tgt) : 0.0f;
    if (n_targets)
        *n_targets = fc.n_tgt;
    return HL_OK;
}

hl_status cu_logits(hl_session *s, const hl_batch *b, float *logits) {
    cu_session *cs = s->impl;
    const cu_dims *d = &cs->d;
    fcall fc;
    HL_TRY(prepare(cs, b, 0, &fc));
    HL_TRY(forward_all(s, &fc));
    const int64_t D = d->D, V = d->V;
    for (int64_t c0 = 0; c0 < fc.M; c0 += d->LC) {
        int64_t nc = fc.M - c0 < d->LC ? fc.M - c0 : d->LC;
        hl_cu_mat A = {off_at(cs, cs->xf, c0 * D), d->dt, D, 0}, B = {cs->lm_head, d->dt, D, 1};
        HL_TRY(hl_cu_gemm_run(cs->gemm, cs->st, nc, V, D, 1.0f, A, B, 0.0f, NULL, cs->logits, HL_DTYPE_F32, V));
        CU_TRY(cudaMemcpyAsync(logits + c0 * V, cs->logits, (size_t)(nc * V) * sizeof(float), cudaMemcpyDeviceToHost,
                               cs->st));
        CU_TRY(cudaStreamSynchronize(cs->st));
    }
    const int32_t *pos = cu_ints_at(d, cs->h_ints).pos;
    for (int64_t m = 0; m < fc.M; m++)
        if (pos[m] < 0)
            memset(logits + m * V, 0, (size_t)V * sizeof(float));
    return HL_OK;
}
