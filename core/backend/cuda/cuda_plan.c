/* The CUDA backend's memory plan: every device buffer's size from the configs alone, carved
 * from four allocations (see cuda_session.h). hl_backend_plan and session creation share this
 * code, so the figures a user sees before training are the bytes that get allocated. */
#include <string.h>

#include "core/backend/cuda/cuda_session.h"

#define CU_ALIGN 256 /* every carved buffer starts on a 256-byte boundary (cp.async, vector loads) */
#define CU_LOGITS_BUDGET ((int64_t)256 << 20) /* bytes for one chunk of logits (+ their gradient) */

static int target_din(const cu_dims *d, int t) { return t == 3 ? (int)d->Dq : t == 6 ? (int)d->F : (int)d->D; }
static int target_dout(const cu_dims *d, int t) {
    return t == 0 ? (int)d->Dq : t <= 2 ? (int)d->Dkv : t == 3 || t == 6 ? (int)d->D : (int)d->F;
}

hl_status cu_dims_init(cu_dims *d, const hl_llama_config *c, hl_dtype dt, const hl_adapter_config *a, int batch,
                       int seq, unsigned flags) {
    memset(d, 0, sizeof *d);
    if (batch < 1 || seq < 1)
        return hl_fail(HL_ERR_ARG, "batch (%d) and sequence length (%d) must be at least 1", batch, seq);
    if (c->dim < 1 || c->n_layers < 1 || c->n_heads < 1 || c->n_kv_heads < 1 || c->head_dim < 2 || c->head_dim % 2 ||
        c->n_heads % c->n_kv_heads || c->vocab_size < 1 || c->hidden_dim < 1)
        return hl_fail(HL_ERR_ARG,
                       "unsupported model shape (dim %d, heads %d, kv heads %d, head_dim %d): head_dim must be even "
                       "and heads a multiple of kv heads",
                       c->dim, c->n_heads, c->n_kv_heads, c->head_dim);
    if (c->head_dim > 256)
        return hl_fail(HL_ERR_ARG, "head size %d is larger than the CUDA backend supports (256)", c->head_dim);
    if ((int64_t)batch * seq > (int64_t)1 << 30)
        return hl_fail(HL_ERR_ARG, "batch %d x seq %d is too many rows", batch, seq);
    if (a)
        HL_TRY(hl_adapter_config_check(a));
    d->dt = (int)dt;
    d->esz = hl_dtype_size(dt);
    d->B = batch, d->T = seq, d->M = (int64_t)batch * seq;
    d->D = c->dim, d->H = c->n_heads, d->Hkv = c->n_kv_heads, d->hd = c->head_dim;
    d->Dq = d->H * d->hd, d->Dkv = d->Hkv * d->hd, d->Dqkv = d->Dq + 2 * d->Dkv;
    d->F = c->hidden_dim, d->V = c->vocab_size, d->L = c->n_layers;
    d->tied = !!c->tie_word_embeddings;
    d->train = !!(flags & HL_SESSION_TRAIN);
    d->ckpt = d->train && (flags & HL_SESSION_CHECKPOINT);
    if (a) {
        d->N = a->variant == HL_VARIANT_LORA ? 1 : a->n_heads;
        d->nA = a->variant == HL_VARIANT_LORA_SPLIT ? d->N : 1;
        d->r = a->r;
        d->zr = d->nA * d->r;
        d->targets = a->targets;
        d->has_router = a->variant == HL_VARIANT_HYDRA || a->variant == HL_VARIANT_LORA_SPLIT;
        d->n_params = hl_adapter_param_count(c, a);
    }
    int64_t per_row = d->V * (4 + (d->train && d->dt != HL_DTYPE_F32 ? (int64_t)d->esz : 0));
    int64_t lc = CU_LOGITS_BUDGET / per_row;
    lc = lc < 64 ? 64 : lc / 64 * 64;
    d->LC = lc > d->M ? d->M : lc;
    d->nblk_cap = d->M / HLK_ATTN_BLOCK + d->M + 1;
    return HL_OK;
}

size_t cu_ints_count(const cu_dims *d) { return (size_t)(5 * d->M + 3 * d->nblk_cap); }

cu_ints cu_ints_at(const cu_dims *d, int32_t *base) {
    cu_ints c;
    c.tok = base, base += d->M;
    c.pos = base, base += d->M;
    c.send = base, base += d->M;
    c.rows = base, base += d->M;
    c.tgt = base, base += d->M;
    c.blk_start = base, base += d->nblk_cap;
    c.blk_len = base, base += d->nblk_cap;
    c.blk_off = base;
    return c;
}

static size_t rnd256(size_t b) { return (b + CU_ALIGN - 1) / CU_ALIGN * CU_ALIGN; }

/* Carve `bytes` from the current block (base NULL while only measuring). */
static void *take(char *base, size_t *off, size_t bytes) {
    void *p = base ? (void *)(base + *off) : NULL;
    *off += (bytes + CU_ALIGN - 1) / CU_ALIGN * CU_ALIGN;
    return p;
}
/* TAKE(x, bytes) into a local; TK(field, bytes) into s->field when there is a session. */
#define TAKE(x, bytes) ((x) = take(base, &off, (size_t)(bytes)))
#define TK(field, bytes)                                                                                              \
    do {                                                                                                              \
        void *tk_ = take(base, &off, (size_t)(bytes));                                                                \
        if (s)                                                                                                        \
            s->field = tk_;                                                                                           \
    } while (0)

static size_t adapter_partials(const cu_dims *d) {
    size_t best = 0;
    for (int t = 0; t < 7; t++) {
        if (!(d->targets & (1u << t)))
            continue;
        size_t a = hlk_ad_wgrad_partial_floats(d->M, target_dout(d, t), (int)(d->N * d->r));
        size_t b = hlk_ad_wgrad_partial_floats(d->M, target_din(d, t), (int)(d->zr + (d->has_router ? d->N : 0)));
        best = a > best ? a : best;
        best = b > best ? b : best;
    }
    return best;
}

void cu_carve(const cu_dims *d, cu_session *s, size_t *wbytes, size_t *pbytes, size_t *abytes, size_t *sbytes) {
    const int64_t M = d->M, D = d->D, L = d->L;
    const size_t e = d->esz;
    char *base;
    size_t off;

    /* weights */
    base = s ? (char *)s->wslab : NULL, off = 0;
    TK(norms, (size_t)((2 * L + 1) * D) * 4);
    TK(rope_cos, (size_t)(d->T * (d->hd / 2)) * 4);
    TK(rope_sin, (size_t)(d->T * (d->hd / 2)) * 4);
    for (int64_t l = 0; l < L; l++) {
        cu_layer_w w;
        TAKE(w.wqkv, (size_t)(d->Dqkv * D) * e);
        TAKE(w.wo, (size_t)(D * d->Dq) * e);
        TAKE(w.wgu, (size_t)(2 * d->F * D) * e);
        TAKE(w.wdown, (size_t)(D * d->F) * e);
        if (s)
            s->lw[l] = w;
    }
    TK(embed, (size_t)(d->V * D) * e);
    if (!d->tied)
        TK(lm_head, (size_t)(d->V * D) * e);
    else if (s)
        s->lm_head = s->embed;
    *wbytes = off;

    /* adapter slabs + routing statistics */
    base = s ? (char *)s->pslab : NULL, off = 0;
    const size_t np = d->n_params * 4;
    TK(params, np);
    if (d->train) {
        TK(grads, np);
        TK(adam_m, np);
        TK(adam_v, np);
    }
    if (d->has_router)
        for (int w = 0; w < 2; w++) {
            cu_stats st;
            TAKE(st.tokens, (size_t)(L * 7) * 8);
            TAKE(st.ent, (size_t)(L * 7) * 8);
            TAKE(st.wsum, (size_t)(L * 7 * d->N) * 8);
            TAKE(st.top1, (size_t)(L * 7 * d->N) * 8);
            if (s)
                s->stats[w] = st;
        }
    *pbytes = off;

    /* activations */
    base = s ? (char *)s->aslab : NULL, off = 0;
    TK(xs, (size_t)((d->train ? L + 1 : 2) * M * D) * e);
    const int64_t nl = d->train && !d->ckpt ? L : 1;
    for (int64_t l = 0; l < nl; l++) {
        cu_acts a;
        memset(&a, 0, sizeof a);
        TAKE(a.rstd1, (size_t)M * 4);
        TAKE(a.rstd2, (size_t)M * 4);
        TAKE(a.lse, (size_t)(d->H * M) * 4);
        TAKE(a.qkv, (size_t)(M * d->Dqkv) * e);
        TAKE(a.att, (size_t)(M * d->Dq) * e);
        TAKE(a.xmid, (size_t)(M * D) * e);
        TAKE(a.gu, (size_t)(M * 2 * d->F) * e);
        for (int t = 0; t < 7; t++)
            if (d->targets & (1u << t)) {
                TAKE(a.Z[t], (size_t)(M * d->zr) * 4);
                TAKE(a.W[t], (size_t)(M * d->N) * 4);
            }
        if (s)
            s->acts[l] = a;
    }
    TK(rstd_f, (size_t)M * 4);
    TK(xf, (size_t)(M * D) * e);
    *abytes = off;

    /* scratch */
    base = s ? (char *)s->sslab : NULL, off = 0;
    TK(xn, (size_t)(M * D) * e);
    TK(hbuf, (size_t)(M * d->F) * e);
    if (d->train) {
        TK(dres, (size_t)(M * D) * e);
        TK(dxn, (size_t)(M * D) * e);
        /* One region for what is never live at the same time: dh (until SwiGLU's backward), datt and
         * dqkv (after it), and the loss head's chunk buffers (before the blocks' backward). */
        int64_t u1 = M * d->F, u2 = M * d->Dq + M * d->Dqkv;
        size_t ub = (size_t)(u1 > u2 ? u1 : u2) * e, hb = 0;
        size_t h_logits = 0, h_dlogits = 0, h_gx = 0, h_dgx = 0;
        h_logits = hb, hb += rnd256((size_t)(d->LC * d->V) * 4);
        if (d->dt != HL_DTYPE_F32)
            h_dlogits = hb, hb += rnd256((size_t)(d->LC * d->V) * e);
        h_gx = hb, hb += rnd256((size_t)(d->LC * D) * e);
        h_dgx = hb, hb += rnd256((size_t)(d->LC * D) * e);
        char *region;
        TAKE(region, ub > hb ? ub : hb);
        if (s) {
            s->dh = region;
            s->datt = region;
            s->dqkv = region + (size_t)(M * d->Dq) * e;
            s->logits = (float *)(region + h_logits);
            s->dlogits = d->dt != HL_DTYPE_F32 ? (void *)(region + h_dlogits) : (void *)s->logits;
            s->gx = region + h_gx;
            s->dgx = region + h_dgx;
        }
        TK(Dbuf, (size_t)(d->H * M) * 4);
        TK(norm_part, (size_t)(HLK_NORM_PARTS + 1) * 8);
        if (s)
            s->norm_out = s->norm_part + HLK_NORM_PARTS;
    }
    if (d->targets) {
        if (d->dt == HL_DTYPE_F32) { /* exact f32 kernels */
            TK(zw, (size_t)(M * d->N * d->r) * 4);
            int64_t dmax = 0;
            for (int t = 0; t < 7; t++)
                if (d->targets & (1u << t))
                    dmax = target_dout(d, t) > dmax ? target_dout(d, t) : dmax;
            TK(abt, (size_t)(d->N * d->r * dmax) * 4);
            if (d->train) {
                TK(ap, (size_t)(M * d->N * d->r) * 4);
                TK(adz, (size_t)(M * d->zr) * 4);
                TK(apart, adapter_partials(d) * 4);
            }
        } else { /* tensor-core products on 16-bit parts: the largest projection's needs */
            size_t mx[5] = {0, 0, 0, 0, 0};
            for (int t = 0; t < 7; t++)
                if (d->targets & (1u << t)) {
                    size_t sz[5];
                    hlk_adapter16_sizes(M, target_din(d, t), target_dout(d, t), (int)d->N, (int)d->r, (int)d->nA,
                                        d->has_router, sz);
                    for (int k = 0; k < 5; k++)
                        mx[k] = sz[k] > mx[k] ? sz[k] : mx[k];
                }
            TK(ah, mx[0] * e);
            TK(afp, mx[1] * 4);
            TK(ahp, mx[2] * e);
            TK(awsp, mx[3] * e);
            if (d->train)
                TK(agp, mx[4] * 4);
        }
        if (d->train)
            TK(adl, (size_t)(M * d->N) * 4);
    }
    if (!d->train) { /* training sessions keep these in the region above */
        TK(logits, (size_t)(d->LC * d->V) * 4);
        if (s)
            s->dlogits = s->logits;
        TK(gx, (size_t)(d->LC * D) * e);
    }
    TK(row_loss, (size_t)M * 8);
    TK(gemm_ws, HL_CU_GEMM_WORKSPACE);
    TK(ints, cu_ints_count(d) * 4);
    *sbytes = off;
}

void cu_plan_fill(const cu_dims *d, hl_mem_plan *plan) {
    size_t w, p, a, sc;
    cu_carve(d, NULL, &w, &p, &a, &sc);
    memset(plan, 0, sizeof *plan);
    plan->weights = w;
    plan->params = d->n_params * 4;
    if (d->train) {
        plan->grads = d->n_params * 4;
        plan->moments = 2 * d->n_params * 4;
    }
    plan->activations = a;
    plan->scratch = sc + (p - plan->params - plan->grads - plan->moments); /* + routing statistics */
    plan->total = w + p + a + sc;
    plan->headroom = CU_RESERVE;
}

hl_status cu_backend_plan(hl_backend *be, const hl_llama_config *cfg, hl_dtype weight_dtype,
                          const hl_adapter_config *acfg, int batch, int seq, unsigned flags, hl_mem_plan *plan) {
    (void)be;
    cu_dims d;
    HL_TRY(cu_dims_init(&d, cfg, weight_dtype, acfg, batch, seq, flags));
    cu_plan_fill(&d, plan);
    return HL_OK;
}
