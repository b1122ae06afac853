/* LLaMA-2 forward/backward with HydraLoRA adapters (see llama.h).
 *
 * Per block, rows m = b*T + t (M = B*T rows):
 *   xn = rmsnorm(x)                         q,k,v = xn·W{q,k,v}ᵀ (+ adapters), rope(q, k)
 *   att = attention(q, k, v)                xmid = x + att·Woᵀ (+ adapter)
 *   xn2 = rmsnorm(xmid)                     g, u = xn2·W{gate,up}ᵀ (+ adapters)
 *   h = silu(g) ⊙ u                         x' = xmid + h·Wdownᵀ (+ adapter)
 * Saved for backward per block: x (block input), rstd1, q, k, v (after rope), lse, att,
 * xmid, rstd2, g, u, and per adapted projection Z, ω. Recomputed: xn, xn2, h, the dropout
 * masks and the attention probabilities. With checkpointing only the block inputs are kept
 * and each block is re-run (same code, same masks) just before its backward. */
#include "core/backend/cpu/llama.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend/cpu/cpu_adapter.h"
#include "core/base/convert.h"
#include "core/backend/cpu/gemm.h"
#include "core/backend/cpu/ops.h"
#include "core/backend/cpu/profile.h"

/* Optional phase timers for tuning (compile with -DHL_ENGINE_PROFILE; bench_train prints
 * them). Off by default: no cost, no state. */
#ifdef HL_ENGINE_PROFILE
enum { PF_BASE_FWD, PF_AD_FWD, PF_ATTN_FWD, PF_BASE_BWD, PF_AD_BWD, PF_ATTN_BWD, PF_HEAD, PF_OTHER, PF_COUNT };
static const char *const pf_names[PF_COUNT] = {"base matmuls fwd", "adapters fwd", "attention fwd",
                                               "base matmuls bwd", "adapters bwd", "attention bwd",
                                               "lm_head + loss",   "norms/rope/swiglu/copies"};
static double pf_sec[PF_COUNT], pf_last;
#define PF_START() (pf_last = hl_prof_now())
#define PF(k) HL_PROF_ADD(pf_sec, pf_last, k)
int hl_llama_profile(const char *const **names, double **seconds) {
    *names = pf_names;
    *seconds = pf_sec;
    return PF_COUNT;
}
#else
#define PF_START() ((void)0)
#define PF(k) ((void)0)
#endif

#define ALIGN_FLOATS 16 /* every carved buffer starts on a 64-byte boundary */

typedef struct {
    float *rstd1, *q, *k, *v, *lse, *att, *xmid, *rstd2, *g, *u;
    float *Z[HL_TARGET_COUNT], *W[HL_TARGET_COUNT]; /* adapter Z [M, nA*r], ω [M, N] */
} layer_acts;

/* Sizes of everything, from configs alone (shared by the planner and the allocator). */
typedef struct {
    int64_t B, T, M, D, Dq, Dkv, F, V, H, L;
    int64_t zr, N;     /* adapter: Z width nA*r and router width N (0 without adapters) */
    unsigned targets;  /* adapted targets */
    int64_t LC;        /* rows per logits chunk */
    int lanes;         /* attention heads in parallel (threads at planning time) */
    int train, ckpt;
} dims;

struct hl_llama {
    const hl_model *model;
    hl_adapters *ad;
    hl_llama_config cfg;
    dims d;
    unsigned flags;
    hl_mem_plan plan;
    float *norms; /* [(2L+1), D] f32 copies: attn_norm l at 2l, ffn_norm l at 2l+1, final at 2L */
    hl_rope_table rope;

    float *act_slab, *scratch_slab;
    float *x;           /* block inputs: [L+1][M, D] (train) or 2 ping-pong buffers (eval only) */
    layer_acts *acts;   /* L entries (train) or 1 (checkpointing / eval only) */
    float *rstd_f, *xf; /* final norm: [M], [M, D] */
    /* scratch */
    float *xn, *hbuf, *dres, *dxn, *datt, *dq, *dk, *dv, *dh;
    float *attn_s, *ad_s, *logits, *gx;
    hl_gemm_ws ws; /* weight-conversion workspace */
    int64_t *rows;       /* [M] target rows of the current call */
    int *tgt, *tseq;     /* [M] their labels and examples */
    int *pos;            /* [M] RoPE position of every row (0 on padding) */
    int32_t *pad_start, *pad_len; /* [batch] segments of a lengths-based (one example per row) call */
    unsigned char *valid; /* [M] row holds a token of an example */

    hl_routing_stats stats;
    int has_stats;
    hl_routing_stats *eval_stats; /* where hl_llama_eval adds its statistics (NULL: nowhere) */
};

static int64_t up16(int64_t n) { return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS; }

#define TAKE(ptr, n)                             \
    do {                                         \
        (ptr) = base ? base + off : NULL;        \
        off += up16(n);                          \
    } while (0)

static int target_din(const dims *d, int t) { return t == 3 ? (int)d->Dq : t == 6 ? (int)d->F : (int)d->D; }
static int target_dout(const dims *d, int t) {
    return t == 0 ? (int)d->Dq : t <= 2 ? (int)d->Dkv : t == 3 || t == 6 ? (int)d->D : (int)d->F;
}

static void dims_init(dims *d, const hl_llama_config *c, const hl_adapter_config *a, int B, int T, unsigned flags) {
    memset(d, 0, sizeof *d);
    d->B = B, d->T = T, d->M = (int64_t)B * T;
    d->D = c->dim, d->Dq = (int64_t)c->n_heads * c->head_dim, d->Dkv = (int64_t)c->n_kv_heads * c->head_dim;
    d->F = c->hidden_dim, d->V = c->vocab_size, d->H = c->n_heads, d->L = c->n_layers;
    if (a) {
        int N = a->variant == HL_VARIANT_LORA ? 1 : a->n_heads;
        int nA = a->variant == HL_VARIANT_LORA_SPLIT ? N : 1;
        d->zr = (int64_t)nA * a->r;
        d->N = N;
        d->targets = a->targets;
    }
    int64_t lc = ((int64_t)1 << 24) / (d->V > 0 ? d->V : 1); /* ~64 MiB of logits per chunk */
    d->LC = lc < 16 ? 16 : lc > d->M ? d->M : lc;
    if (d->LC < 1)
        d->LC = 1;
    d->lanes = hl_get_threads();
    d->lanes = d->lanes < 1 ? 1 : d->lanes > 64 ? 64 : d->lanes;
    d->train = !!(flags & HL_LLAMA_TRAIN);
    d->ckpt = d->train && (flags & HL_LLAMA_CHECKPOINT);
}

static int64_t carve_layer(const dims *d, layer_acts *la, float *base, int64_t off) {
    const int64_t M = d->M;
    TAKE(la->rstd1, M);
    TAKE(la->q, M * d->Dq);
    TAKE(la->k, M * d->Dkv);
    TAKE(la->v, M * d->Dkv);
    TAKE(la->lse, d->B * d->H * d->T);
    TAKE(la->att, M * d->Dq);
    TAKE(la->xmid, M * d->D);
    TAKE(la->rstd2, M);
    TAKE(la->g, M * d->F);
    TAKE(la->u, M * d->F);
    for (int t = 0; t < HL_TARGET_COUNT; t++) {
        la->Z[t] = la->W[t] = NULL;
        if (d->targets & (1u << t)) {
            TAKE(la->Z[t], M * d->zr);
            TAKE(la->W[t], M * d->N);
        }
    }
    return off;
}

/* Activations: block inputs + saved per-layer tensors + final norm. Returns floats. */
static int64_t carve_acts(const dims *d, struct hl_llama *ctx, float *base) {
    int64_t off = 0;
    float *x;
    TAKE(x, (d->train ? d->L + 1 : 2) * d->M * d->D);
    int nl = d->train && !d->ckpt ? (int)d->L : 1;
    for (int l = 0; l < nl; l++) {
        layer_acts tmp, *la = ctx ? &ctx->acts[l] : &tmp;
        off = carve_layer(d, la, base, off);
    }
    float *rf, *xf;
    TAKE(rf, d->M);
    TAKE(xf, d->M * d->D);
    if (ctx) {
        ctx->x = x;
        ctx->rstd_f = rf;
        ctx->xf = xf;
    }
    return off;
}

static int64_t adapter_scratch(const dims *d, const hl_adapter_config *a) {
    if (!a)
        return 0;
    hl_adapters fake; /* only the fields hl_adapter_scratch_floats reads */
    memset(&fake, 0, sizeof fake);
    fake.cfg = *a;
    fake.N = (int)d->N;
    fake.nA = (int)(d->zr / a->r);
    int64_t best = 0;
    for (int t = 0; t < HL_TARGET_COUNT; t++)
        if (d->targets & (1u << t)) {
            int64_t s = hl_adapter_scratch_floats(&fake, d->M, target_din(d, t), target_dout(d, t));
            best = s > best ? s : best;
        }
    return best;
}

static int64_t carve_scratch(const dims *d, const hl_adapter_config *a, struct hl_llama *ctx, float *base) {
    int64_t off = 0;
    const int64_t M = d->M;
    float *xn, *hbuf, *dres = NULL, *dxn = NULL, *datt = NULL, *dq = NULL, *dk = NULL, *dv = NULL, *dh = NULL;
    float *tile, *attn_s, *ad_s, *logits, *gx;
    TAKE(xn, M * d->D);
    TAKE(hbuf, M * d->F);
    if (d->train) {
        TAKE(dres, M * d->D);
        TAKE(dxn, M * d->D);
        TAKE(datt, M * d->Dq);
        TAKE(dq, M * d->Dq);
        TAKE(dk, M * d->Dkv);
        TAKE(dv, M * d->Dkv);
        TAKE(dh, M * d->F);
    }
    int64_t ts = (int64_t)hl_gemm_ws_floats(d->D);
    int64_t t2 = (int64_t)hl_gemm_ws_floats(d->F), t3 = (int64_t)hl_gemm_ws_floats(d->Dq);
    ts = t2 > ts ? t2 : ts;
    ts = t3 > ts ? t3 : ts;
    TAKE(tile, ts);
    hl_attn_dims ad = {.B = (int)d->B, .Tq = (int)d->T, .Tk = (int)d->T, .lanes = d->lanes};
    TAKE(attn_s, hl_attention_scratch_floats(&ad));
    TAKE(ad_s, adapter_scratch(d, a));
    TAKE(logits, d->LC * d->V);
    TAKE(gx, 2 * d->LC * d->D);
    if (ctx) {
        ctx->xn = xn, ctx->hbuf = hbuf, ctx->dres = dres, ctx->dxn = dxn, ctx->datt = datt;
        ctx->dq = dq, ctx->dk = dk, ctx->dv = dv, ctx->dh = dh;
        ctx->ws.buf = tile, ctx->ws.floats = ts;
        ctx->attn_s = attn_s, ctx->ad_s = ad_s, ctx->logits = logits, ctx->gx = gx;
    }
    return off;
}

static size_t weights_bytes(const hl_llama_config *c, hl_dtype dt) {
    /* computed from the config so the planner needs no loaded model; norms in dt too */
    int64_t D = c->dim, F = c->hidden_dim, Dq = (int64_t)c->n_heads * c->head_dim;
    int64_t Dkv = (int64_t)c->n_kv_heads * c->head_dim, V = c->vocab_size;
    int64_t per = D * Dq * 2 + D * Dkv * 2 + 3 * D * F + 2 * D;
    int64_t tot = V * D * (c->tie_word_embeddings ? 1 : 2) + c->n_layers * per + D;
    return (size_t)tot * hl_dtype_size(dt);
}

static hl_status plan_fill(const hl_llama_config *cfg, const hl_adapter_config *acfg, int batch, int seq,
                           unsigned flags, hl_mem_plan *plan, dims *d) {
    if (batch < 1 || seq < 1)
        return hl_fail(HL_ERR_ARG, "batch (%d) and sequence length (%d) must be at least 1", batch, seq);
    if (cfg->dim < 1 || cfg->n_layers < 1 || cfg->n_heads < 1 || cfg->n_kv_heads < 1 || cfg->head_dim < 2 ||
        cfg->head_dim % 2 || cfg->n_heads % cfg->n_kv_heads || cfg->vocab_size < 1 || cfg->hidden_dim < 1)
        return hl_fail(HL_ERR_ARG,
                       "unsupported model shape (dim %d, heads %d, kv heads %d, head_dim %d): head_dim must be "
                       "even and heads a multiple of kv heads",
                       cfg->dim, cfg->n_heads, cfg->n_kv_heads, cfg->head_dim);
    if (acfg)
        HL_TRY(hl_adapter_config_check(acfg));
    dims_init(d, cfg, acfg, batch, seq, flags);
    memset(plan, 0, sizeof *plan);
    plan->weights = weights_bytes(cfg, HL_DTYPE_F32);
    if (acfg) {
        size_t np = hl_adapter_param_count(cfg, acfg) * sizeof(float);
        plan->params = np;
        if (d->train) {
            plan->grads = np;
            plan->moments = 2 * np;
        }
    }
    plan->activations = (size_t)carve_acts(d, NULL, NULL) * sizeof(float);
    int64_t sc = carve_scratch(d, acfg, NULL, NULL) * (int64_t)sizeof(float);
    sc += (int64_t)d->M * (int64_t)(sizeof(int64_t) + sizeof(int) + 1) + d->B * (int64_t)sizeof(int);
    sc += (2 * d->L + 1) * d->D * (int64_t)sizeof(float);                /* f32 norm weights */
    sc += (int64_t)seq * cfg->head_dim * (int64_t)sizeof(float);         /* rope tables */
    plan->scratch = (size_t)sc;
    plan->total = plan->params + plan->grads + plan->moments + plan->activations + plan->scratch;
    return HL_OK;
}

hl_status hl_llama_plan(const hl_llama_config *cfg, const hl_adapter_config *acfg, int batch, int seq,
                        unsigned flags, hl_mem_plan *plan) {
    dims d;
    return plan_fill(cfg, acfg, batch, seq, flags, plan, &d);
}

void hl_llama_free(hl_llama *ctx) {
    if (!ctx)
        return;
    free(ctx->norms);
    hl_rope_table_free(&ctx->rope);
    free(ctx->act_slab);
    free(ctx->scratch_slab);
    free(ctx->acts);
    free(ctx->rows);
    free(ctx->tgt);
    free(ctx->tseq);
    free(ctx->pos);
    free(ctx->pad_start);
    free(ctx->pad_len);
    free(ctx->valid);
    if (ctx->has_stats)
        hl_routing_stats_free(&ctx->stats);
    free(ctx);
}

/* f32 copy of a norm weight vector (norm weights are tiny; converting once saves work per step). */
static hl_status norm_copy(float *dst, const hl_weight *w, int64_t D, const char *what) {
    if (!w->data || w->rows * w->cols != D)
        return hl_fail(HL_ERR_SHAPE, "%s has %lld elements, expected %lld", what, (long long)(w->rows * w->cols),
                       (long long)D);
    hl_weight flat = *w;
    flat.rows = 1;
    flat.cols = D;
    hl_weight_rows_to_f32(&flat, 0, 1, dst);
    return HL_OK;
}

static hl_status check_weight(const hl_weight *w, int64_t rows, int64_t cols, const char *what, int layer) {
    if (!w->data || w->rows != rows || w->cols != cols)
        return hl_fail(HL_ERR_SHAPE, "layer %d %s is [%lld, %lld], expected [%lld, %lld]", layer, what,
                       (long long)w->rows, (long long)w->cols, (long long)rows, (long long)cols);
    return HL_OK;
}

static hl_status model_check(const hl_model *m, float *norms) {
    const hl_llama_config *c = &m->cfg;
    int64_t D = c->dim, F = c->hidden_dim, Dq = (int64_t)c->n_heads * c->head_dim;
    int64_t Dkv = (int64_t)c->n_kv_heads * c->head_dim;
    HL_TRY(check_weight(&m->tok_embed, c->vocab_size, D, "embedding", -1));
    HL_TRY(check_weight(&m->lm_head, c->vocab_size, D, "lm_head", -1));
    for (int l = 0; l < c->n_layers; l++) {
        const hl_layer_weights *w = &m->layers[l];
        HL_TRY(check_weight(&w->wq, Dq, D, "q_proj", l));
        HL_TRY(check_weight(&w->wk, Dkv, D, "k_proj", l));
        HL_TRY(check_weight(&w->wv, Dkv, D, "v_proj", l));
        HL_TRY(check_weight(&w->wo, D, Dq, "o_proj", l));
        HL_TRY(check_weight(&w->w_gate, F, D, "gate_proj", l));
        HL_TRY(check_weight(&w->w_up, F, D, "up_proj", l));
        HL_TRY(check_weight(&w->w_down, D, F, "down_proj", l));
        HL_TRY(norm_copy(norms + (2 * l) * D, &w->attn_norm, D, "input_layernorm"));
        HL_TRY(norm_copy(norms + (2 * l + 1) * D, &w->ffn_norm, D, "post_attention_layernorm"));
    }
    return norm_copy(norms + 2 * (int64_t)c->n_layers * D, &m->final_norm, D, "final norm");
}

hl_status hl_llama_create(hl_llama **out, const hl_model *model, hl_adapters *ad, int batch, int seq,
                          unsigned flags) {
    *out = NULL;
    const hl_llama_config *c = &model->cfg;
    if (ad && ad->n_layers != c->n_layers)
        return hl_fail(HL_ERR_SHAPE, "adapter has %d layers but the model has %d", ad->n_layers, c->n_layers);
    hl_llama *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    ctx->model = model;
    ctx->ad = ad;
    ctx->cfg = *c;
    ctx->flags = flags;
    hl_status st = plan_fill(c, ad ? &ad->cfg : NULL, batch, seq, flags, &ctx->plan, &ctx->d);
    if (st) {
        free(ctx);
        return st;
    }
    ctx->plan.weights = weights_bytes(c, model->dtype);
    const dims *d = &ctx->d;
    int nl = d->train && !d->ckpt ? (int)d->L : 1;
    ctx->acts = calloc((size_t)nl, sizeof *ctx->acts);
    ctx->norms = malloc((size_t)((2 * d->L + 1) * d->D) * sizeof(float));
    ctx->act_slab = malloc((size_t)carve_acts(d, NULL, NULL) * sizeof(float) + 64);
    ctx->scratch_slab = malloc((size_t)carve_scratch(d, ad ? &ad->cfg : NULL, NULL, NULL) * sizeof(float) + 64);
    ctx->rows = malloc((size_t)d->M * sizeof *ctx->rows);
    ctx->tgt = malloc((size_t)d->M * sizeof *ctx->tgt);
    ctx->tseq = malloc((size_t)d->M * sizeof *ctx->tseq);
    ctx->pos = malloc((size_t)d->M * sizeof *ctx->pos);
    ctx->valid = malloc((size_t)d->M);
    ctx->pad_start = malloc((size_t)d->B * sizeof *ctx->pad_start);
    ctx->pad_len = malloc((size_t)d->B * sizeof *ctx->pad_len);
    if (!ctx->acts || !ctx->norms || !ctx->act_slab || !ctx->scratch_slab || !ctx->rows || !ctx->tgt || !ctx->tseq ||
        !ctx->pos || !ctx->valid || !ctx->pad_start || !ctx->pad_len ||
        hl_rope_table_init(&ctx->rope, seq, c->head_dim, c->rope_theta)) {
        size_t want = ctx->plan.total;
        hl_llama_free(ctx);
        return hl_fail(HL_ERR_NOMEM, "cannot allocate %.1f MiB for batch %d x seq %d: lower the batch or sequence "
                                     "length, or enable gradient checkpointing",
                       (double)want / 1048576.0, batch, seq);
    }
    carve_acts(d, ctx, ctx->act_slab);
    carve_scratch(d, ad ? &ad->cfg : NULL, ctx, ctx->scratch_slab);
    st = model_check(model, ctx->norms);
    if (!st && ad && ad->has_router) {
        st = hl_routing_stats_init(&ctx->stats, ad->n_layers, ad->N);
        ctx->has_stats = !st;
    }
    if (st) {
        hl_llama_free(ctx);
        return st;
    }
    *out = ctx;
    return HL_OK;
}

const hl_mem_plan *hl_llama_mem_plan(const hl_llama *ctx) { return &ctx->plan; }
hl_routing_stats *hl_llama_routing(hl_llama *ctx) { return ctx->has_stats ? &ctx->stats : NULL; }
void hl_llama_set_eval_stats(hl_llama *ctx, hl_routing_stats *dst) { ctx->eval_stats = dst; }
void hl_llama_set_compute(hl_llama *ctx, hl_compute compute) { ctx->ws.compute = compute; }

/* ---- forward pieces -------------------------------------------------------------------- */

static float *xbuf(hl_llama *ctx, int l) {
    int64_t i = ctx->d.train ? l : (l & 1);
    return ctx->x + i * ctx->d.M * ctx->d.D;
}

static layer_acts *acts_of(hl_llama *ctx, int l) { return ctx->d.train && !ctx->d.ckpt ? &ctx->acts[l] : ctx->acts; }

/* Per-call state of a forward: B rows of T, examples as segments (see hl_llama_batch). */
typedef struct {
    int B, T;
    int64_t M;
    int n_seq;
    const int32_t *seq_start, *seq_len; /* [n_seq] */
    int seg_max;      /* bound on seq_len: min(T, planned seq) */
    int dropout;      /* training forward: adapter dropout on */
    hl_routing_stats *stats;
} fwd_call;

static hl_dropout drop_for(hl_llama *ctx, const fwd_call *fc, int l, int t) {
    hl_dropout dr = {0, 0.0f};
    if (fc->dropout && ctx->ad && ctx->ad->cfg.dropout > 0.0f) {
        dr.p = ctx->ad->cfg.dropout;
        dr.key = hl_adapter_dropout_key(ctx->ad, l, t);
    }
    return dr;
}

/* Y = beta·Y + X·Wᵀ, plus the adapter of (l, t) when there is one. */
static void project(hl_llama *ctx, const fwd_call *fc, layer_acts *la, int l, int t, const hl_weight *W, float *Y,
                    float beta, const float *X) {
    PF(PF_OTHER);
    hl_gemm_xwt(Y, X, W, fc->M, beta, &ctx->ws);
    PF(PF_BASE_FWD);
    const hl_adapter_proj *p = hl_adapters_proj(ctx->ad, l, t);
    if (p)
        hl_adapter_forward(ctx->ad, p, Y, X, fc->M, la->Z[t], la->W[t], drop_for(ctx, fc, l, t), fc->stats,
                           ctx->valid, ctx->ad_s);
    PF(PF_AD_FWD);
}

/* Attention over the call's segments (one per row for lengths-based calls, which then runs
 * exactly the products the per-row q_len form does). */
static hl_attn_dims attn_dims(hl_llama *ctx, const fwd_call *fc) {
    hl_attn_dims ad = {.B = fc->B, .Tq = fc->T, .Tk = fc->T, .n_heads = ctx->cfg.n_heads,
                       .n_kv_heads = ctx->cfg.n_kv_heads, .head_dim = ctx->cfg.head_dim, .lanes = ctx->d.lanes,
                       .n_seg = fc->n_seq, .seg_start = fc->seq_start, .seg_len = fc->seq_len,
                       .seg_max = fc->seg_max};
    return ad;
}

static void block_forward(hl_llama *ctx, const fwd_call *fc, int l) {
    const hl_layer_weights *w = &ctx->model->layers[l];
    const dims *d = &ctx->d;
    layer_acts *la = acts_of(ctx, l);
    float *x = xbuf(ctx, l), *xo = xbuf(ctx, l + 1);
    const int64_t M = fc->M;
    hl_rmsnorm_forward(ctx->xn, la->rstd1, x, ctx->norms + 2 * l * d->D, M, (int)d->D, ctx->cfg.rms_norm_eps);
    project(ctx, fc, la, l, 0, &w->wq, la->q, 0.0f, ctx->xn);
    project(ctx, fc, la, l, 1, &w->wk, la->k, 0.0f, ctx->xn);
    project(ctx, fc, la, l, 2, &w->wv, la->v, 0.0f, ctx->xn);
    hl_rope_forward(la->q, M, ctx->cfg.n_heads, ctx->cfg.head_dim, ctx->pos, &ctx->rope);
    hl_rope_forward(la->k, M, ctx->cfg.n_kv_heads, ctx->cfg.head_dim, ctx->pos, &ctx->rope);
    hl_attn_dims ad = attn_dims(ctx, fc);
    PF(PF_OTHER);
    hl_attention_forward(la->att, la->lse, la->q, la->k, la->v, &ad, ctx->attn_s);
    PF(PF_ATTN_FWD);
    memcpy(la->xmid, x, (size_t)(M * d->D) * sizeof(float));
    project(ctx, fc, la, l, 3, &w->wo, la->xmid, 1.0f, la->att); /* xmid = x + att·Woᵀ */
    hl_rmsnorm_forward(ctx->xn, la->rstd2, la->xmid, ctx->norms + (2 * l + 1) * d->D, M, (int)d->D,
                       ctx->cfg.rms_norm_eps);
    project(ctx, fc, la, l, 4, &w->w_gate, la->g, 0.0f, ctx->xn);
    project(ctx, fc, la, l, 5, &w->w_up, la->u, 0.0f, ctx->xn);
    hl_swiglu_forward(ctx->hbuf, la->g, la->u, M * d->F);
    memcpy(xo, la->xmid, (size_t)(M * d->D) * sizeof(float));
    project(ctx, fc, la, l, 6, &w->w_down, xo, 1.0f, ctx->hbuf); /* x' = xmid + h·Wdownᵀ */
}

/* Backward through a frozen projection and its adapter: dX += G·W (+ adapter part),
 * adapter grads += . dX == NULL: nobody needs the input gradient (nothing trainable below it),
 * so only the adapter's parameter gradients are computed. */
static void project_backward(hl_llama *ctx, const fwd_call *fc, layer_acts *la, int l, int t, const hl_weight *W,
                             float *dX, const float *G, const float *X) {
    PF(PF_OTHER);
    if (dX)
        hl_gemm_dx_acc(dX, G, W, fc->M, &ctx->ws);
    PF(PF_BASE_BWD);
    const hl_adapter_proj *p = hl_adapters_proj(ctx->ad, l, t);
    if (p)
        hl_adapter_backward(ctx->ad, p, dX, G, X, fc->M, la->Z[t], la->W[t], drop_for(ctx, fc, l, t), ctx->ad_s);
    PF(PF_AD_BWD);
}

/* Targets of layer l with an adapter, as a bit set (bit t: target t). */
static unsigned adapted_targets(const hl_llama *ctx, int l) {
    unsigned m = 0;
    for (int t = 0; t < HL_TARGET_COUNT; t++)
        if (hl_adapters_proj(ctx->ad, l, t))
            m |= 1u << t;
    return m;
}

/* 1 when a layer below l has an adapter (so ∂loss/∂(input of layer l) is needed). */
static int adapters_below(const hl_llama *ctx, int l) {
    for (int k = 0; k < l; k++)
        if (adapted_targets(ctx, k))
            return 1;
    return 0;
}

/* dres: ∂loss/∂(block output) on entry, ∂loss/∂(block input) on return when a layer below has
 * adapters. The base weights are frozen, so an input gradient is computed only where a
 * trainable parameter lies below it (as autograd does): the backward walks down the block and
 * stops after the last (lowest) adapter it still has to reach; the adapter gradients are the
 * same bits either way. */
static void block_backward(hl_llama *ctx, const fwd_call *fc, int l) {
    const hl_layer_weights *w = &ctx->model->layers[l];
    const dims *d = &ctx->d;
    /* the stages of the backward in order: down (6) → gate, up (4, 5) → o (3) → q, k, v (0..2) →
     * the layer below; a stage's input gradient is needed when an adapter follows it */
    const unsigned here = adapted_targets(ctx, l);
    const int below = adapters_below(ctx, l);
    const int need_dh = below || (here & 0x3Fu);  /* any of targets 0..5 */
    const int need_dxn2 = below || (here & 0x0Fu); /* targets 0..3 */
    const int need_datt = below || (here & 0x07u); /* targets 0..2 */
    if (!need_dh && !(here & 0x40u))
        return; /* nothing trainable in or below this block */
    if (d->ckpt) {
        fwd_call re = *fc;
        re.stats = NULL; /* statistics were counted by the first pass */
        block_forward(ctx, &re, l);
    }
    layer_acts *la = acts_of(ctx, l);
    float *x = xbuf(ctx, l);
    const int64_t M = fc->M;
    const size_t nD = (size_t)(M * d->D) * sizeof(float);
    /* FFN: x' = xmid + down(h) */
    hl_swiglu_forward(ctx->hbuf, la->g, la->u, M * d->F);
    if (need_dh)
        memset(ctx->dh, 0, (size_t)(M * d->F) * sizeof(float));
    project_backward(ctx, fc, la, l, 6, &w->w_down, need_dh ? ctx->dh : NULL, ctx->dres, ctx->hbuf);
    if (!need_dh)
        return;
    hl_swiglu_backward_inplace(la->g, la->u, ctx->dh, M * d->F); /* g, u now hold dg, du */
    hl_rmsnorm_forward(ctx->xn, NULL, la->xmid, ctx->norms + (2 * l + 1) * d->D, M, (int)d->D, ctx->cfg.rms_norm_eps);
    if (need_dxn2)
        memset(ctx->dxn, 0, nD);
    project_backward(ctx, fc, la, l, 4, &w->w_gate, need_dxn2 ? ctx->dxn : NULL, la->g, ctx->xn);
    project_backward(ctx, fc, la, l, 5, &w->w_up, need_dxn2 ? ctx->dxn : NULL, la->u, ctx->xn);
    if (!need_dxn2)
        return;
    hl_rmsnorm_backward(ctx->dres, NULL, ctx->dxn, la->xmid, ctx->norms + (2 * l + 1) * d->D, la->rstd2, M,
                        (int)d->D);
    /* attention: xmid = x + o(att) */
    if (need_datt)
        memset(ctx->datt, 0, (size_t)(M * d->Dq) * sizeof(float));
    project_backward(ctx, fc, la, l, 3, &w->wo, need_datt ? ctx->datt : NULL, ctx->dres, la->att);
    if (!need_datt)
        return;
    memset(ctx->dk, 0, (size_t)(M * d->Dkv) * sizeof(float));
    memset(ctx->dv, 0, (size_t)(M * d->Dkv) * sizeof(float));
    hl_attn_dims ad = attn_dims(ctx, fc);
    PF(PF_OTHER);
    hl_attention_backward(ctx->dq, ctx->dk, ctx->dv, ctx->datt, la->att, la->lse, la->q, la->k, la->v, &ad,
                          ctx->attn_s);
    PF(PF_ATTN_BWD);
    hl_rope_backward(ctx->dq, M, ctx->cfg.n_heads, ctx->cfg.head_dim, ctx->pos, &ctx->rope);
    hl_rope_backward(ctx->dk, M, ctx->cfg.n_kv_heads, ctx->cfg.head_dim, ctx->pos, &ctx->rope);
    hl_rmsnorm_forward(ctx->xn, NULL, x, ctx->norms + 2 * l * d->D, M, (int)d->D, ctx->cfg.rms_norm_eps);
    if (below)
        memset(ctx->dxn, 0, nD);
    project_backward(ctx, fc, la, l, 0, &w->wq, below ? ctx->dxn : NULL, ctx->dq, ctx->xn);
    project_backward(ctx, fc, la, l, 1, &w->wk, below ? ctx->dxn : NULL, ctx->dk, ctx->xn);
    project_backward(ctx, fc, la, l, 2, &w->wv, below ? ctx->dxn : NULL, ctx->dv, ctx->xn);
    if (below)
        hl_rmsnorm_backward(ctx->dres, NULL, ctx->dxn, x, ctx->norms + 2 * l * d->D, la->rstd1, M, (int)d->D);
}

/* A lengths-based call (B right-padded rows, one example each): the old checks and messages,
 * then one segment per row. */
static hl_status padded_call(hl_llama *ctx, fwd_call *fc, const int *lengths, int B, int T) {
    const dims *d = &ctx->d;
    if (B < 1 || T < 1 || B > d->B || T > d->T || (int64_t)B * T > d->M)
        return hl_fail(HL_ERR_ARG, "batch %d x %d does not fit the context planned for %lld x %lld", B, T,
                       (long long)d->B, (long long)d->T);
    for (int b = 0; b < B; b++) {
        int n = lengths ? lengths[b] : T;
        if (n < 0 || n > T)
            return hl_fail(HL_ERR_ARG, "sequence %d has length %d, outside 0..%d", b, n, T);
        ctx->pad_start[b] = b * T;
        ctx->pad_len[b] = n;
    }
    fc->B = B, fc->T = T, fc->M = (int64_t)B * T;
    fc->n_seq = B, fc->seq_start = ctx->pad_start, fc->seq_len = ctx->pad_len;
    fc->seg_max = T;
    return HL_OK;
}

/* A packed batch: rows within the planned tokens, segments ascending, each inside one row and
 * no longer than the planned sequence length (the RoPE table and attention scratch). */
static hl_status packed_call(hl_llama *ctx, fwd_call *fc, const hl_llama_batch *bt) {
    const dims *d = &ctx->d;
    const int B = bt->B, T = bt->T;
    if (B < 1 || T < 1 || (int64_t)B * T > d->M)
        return hl_fail(HL_ERR_ARG, "packed batch %d x %d holds more than the %lld tokens the context was planned for "
                                   "(%lld x %lld)",
                       B, T, (long long)d->M, (long long)d->B, (long long)d->T);
    if (bt->n_seq < 0 || bt->n_seq > (int64_t)B * T || (bt->n_seq && (!bt->seq_start || !bt->seq_len)))
        return hl_fail(HL_ERR_ARG, "packed batch %d x %d: %d examples", B, T, bt->n_seq);
    int64_t end = 0;
    for (int e = 0; e < bt->n_seq; e++) {
        int64_t a = bt->seq_start[e], n = bt->seq_len[e];
        if (n < 1)
            return hl_fail(HL_ERR_ARG, "example %d of the packed batch is empty (length %lld)", e, (long long)n);
        if (a < end)
            return hl_fail(HL_ERR_ARG, "example %d of the packed batch (start %lld) overlaps the one before (which "
                                       "ends at %lld), or the starts are not ascending",
                           e, (long long)a, (long long)end);
        if (a < 0 || a + n > (int64_t)B * T)
            return hl_fail(HL_ERR_ARG, "example %d of the packed batch (start %lld, length %lld) runs past the batch "
                                       "(%d x %d)",
                           e, (long long)a, (long long)n, B, T);
        if (a / T != (a + n - 1) / T)
            return hl_fail(HL_ERR_ARG, "example %d of the packed batch (start %lld, length %lld) crosses the end of "
                                       "row %lld (rows of %d)",
                           e, (long long)a, (long long)n, (long long)(a / T), T);
        if (n > d->T)
            return hl_fail(HL_ERR_ARG, "example %d of the packed batch has %lld tokens; the context was planned for "
                                       "sequences of at most %lld",
                           e, (long long)n, (long long)d->T);
        end = a + n;
    }
    fc->B = B, fc->T = T, fc->M = (int64_t)B * T;
    fc->n_seq = bt->n_seq, fc->seq_start = bt->seq_start, fc->seq_len = bt->seq_len;
    fc->seg_max = T < d->T ? T : (int)d->T;
    return HL_OK;
}

/* Checks the token ids, embeds them into x[0] and fills the valid-row mask and the positions
 * (restarting at 0 in every example; padding rows: id 0 at position 0, never read by a
 * valid row). */
static hl_status begin_call(hl_llama *ctx, const fwd_call *fc, const int *tokens) {
    const int V = ctx->cfg.vocab_size;
    for (int e = 0; e < fc->n_seq; e++)
        for (int t = 0; t < fc->seq_len[e]; t++) {
            int id = tokens[fc->seq_start[e] + t];
            if (id < 0 || id >= V)
                return hl_fail(HL_ERR_RANGE, "token id %d at sequence %d position %d is outside the vocabulary "
                                             "(0..%d)",
                               id, e, t, V - 1);
        }
    memset(ctx->valid, 0, (size_t)fc->M);
    memset(ctx->pos, 0, (size_t)fc->M * sizeof *ctx->pos);
    for (int e = 0; e < fc->n_seq; e++)
        for (int t = 0; t < fc->seq_len[e]; t++) {
            ctx->valid[fc->seq_start[e] + t] = 1;
            ctx->pos[fc->seq_start[e] + t] = t;
        }
    float *x = xbuf(ctx, 0);
    const int64_t D = ctx->d.D;
#pragma omp parallel for schedule(static) if (fc->M * D > 131072)
    for (int64_t m = 0; m < fc->M; m++)
        hl_weight_rows_to_f32(&ctx->model->tok_embed, ctx->valid[m] ? tokens[m] : 0, 1, x + m * D);
    return HL_OK;
}

/* Target rows: position t of example e predicts the label of its position t + 1 (never across
 * the end of the example, so an example's first token is never a target). */
static hl_status collect_targets(hl_llama *ctx, const fwd_call *fc, const int *labels, int64_t *n_out) {
    const int V = ctx->cfg.vocab_size;
    int64_t n = 0;
    for (int e = 0; e < fc->n_seq; e++)
        for (int t = 0; t + 1 < fc->seq_len[e]; t++) {
            int y = labels[fc->seq_start[e] + t + 1];
            if (y == -100)
                continue;
            if (y < 0 || y >= V)
                return hl_fail(HL_ERR_RANGE, "label %d at sequence %d position %d is neither -100 nor a token id "
                                             "(0..%d)",
                               y, e, t + 1, V - 1);
            ctx->rows[n] = (int64_t)fc->seq_start[e] + t;
            ctx->tgt[n] = y;
            ctx->tseq[n] = e;
            n++;
        }
    *n_out = n;
    return HL_OK;
}

static void forward_all(hl_llama *ctx, const fwd_call *fc) {
    for (int l = 0; l < ctx->cfg.n_layers; l++)
        block_forward(ctx, fc, l);
    hl_rmsnorm_forward(ctx->xf, ctx->rstd_f, xbuf(ctx, ctx->cfg.n_layers), ctx->norms + 2 * ctx->d.L * ctx->d.D,
                       fc->M, (int)ctx->d.D, ctx->cfg.rms_norm_eps);
}

/* Loss over the target rows, chunk by chunk; with grads, dres = ∂(scale·mean loss)/∂x_L. */
static double head_loss(hl_llama *ctx, const fwd_call *fc, int64_t n, float grad_scale, int with_grad,
                        double *seq_sum, int64_t *seq_cnt) {
    const dims *d = &ctx->d;
    const int64_t D = d->D, V = d->V;
    double total = 0.0;
    if (with_grad)
        memset(ctx->dxn, 0, (size_t)(fc->M * D) * sizeof(float));
    float *gx = ctx->gx, *dgx = ctx->gx + d->LC * D;
    for (int64_t c0 = 0; c0 < n; c0 += d->LC) {
        int64_t nc = n - c0 < d->LC ? n - c0 : d->LC;
        for (int64_t i = 0; i < nc; i++)
            memcpy(gx + i * D, ctx->xf + ctx->rows[c0 + i] * D, (size_t)D * sizeof(float));
        hl_gemm_xwt(ctx->logits, gx, &ctx->model->lm_head, nc, 0.0f, &ctx->ws);
        if (with_grad) {
            total += hl_cross_entropy(ctx->logits, ctx->logits, ctx->tgt + c0, nc, (int)V,
                                      grad_scale / (float)n, NULL);
            memset(dgx, 0, (size_t)(nc * D) * sizeof(float));
            hl_gemm_dx_acc(dgx, ctx->logits, &ctx->model->lm_head, nc, &ctx->ws);
            for (int64_t i = 0; i < nc; i++) {
                float *dst = ctx->dxn + ctx->rows[c0 + i] * D;
                for (int64_t j = 0; j < D; j++)
                    dst[j] += dgx[i * D + j];
            }
        } else {
            /* runs of rows of one example, so per-example sums come out too */
            for (int64_t i = 0; i < nc;) {
                int b = ctx->tseq[c0 + i];
                int64_t j = i;
                while (j < nc && ctx->tseq[c0 + j] == b)
                    j++;
                double s = hl_cross_entropy(NULL, ctx->logits + i * V, ctx->tgt + c0 + i, j - i, (int)V, 1.0f, NULL);
                total += s;
                if (seq_sum)
                    seq_sum[b] += s;
                if (seq_cnt)
                    seq_cnt[b] += j - i;
                i = j;
            }
        }
    }
    if (with_grad) {
        memset(ctx->dres, 0, (size_t)(fc->M * D) * sizeof(float));
        hl_rmsnorm_backward(ctx->dres, NULL, ctx->dxn, xbuf(ctx, ctx->cfg.n_layers), ctx->norms + 2 * d->L * D,
                            ctx->rstd_f, fc->M, (int)D);
    }
    return total;
}

static hl_status train_call(hl_llama *ctx, fwd_call *fc, const int *tokens, const int *labels, float grad_scale,
                            float *loss, int64_t *n_targets) {
    HL_TRY(begin_call(ctx, fc, tokens));
    int64_t n;
    HL_TRY(collect_targets(ctx, fc, labels, &n));
    fc->dropout = 1;
    fc->stats = (ctx->flags & HL_LLAMA_STATS) && ctx->has_stats ? &ctx->stats : NULL;
    PF_START();
    forward_all(ctx, fc);
    double sum = 0.0;
    if (n > 0) {
        PF(PF_OTHER);
        sum = head_loss(ctx, fc, n, grad_scale, 1, NULL, NULL);
        PF(PF_HEAD);
        for (int l = ctx->cfg.n_layers - 1; l >= 0; l--)
            block_backward(ctx, fc, l);
        PF(PF_OTHER);
    }
    ctx->ad->dropout_step++; /* next micro-batch, next masks (after backward: recompute uses the same) */
    if (loss)
        *loss = n ? (float)(sum / (double)n) : 0.0f;
    if (n_targets)
        *n_targets = n;
    if (n && !isfinite(sum))
        return hl_fail(HL_ERR_NUMERIC, "loss is not finite (NaN or inf)");
    return HL_OK;
}

static hl_status train_ready(const hl_llama *ctx) {
    if (!ctx->d.train)
        return hl_fail(HL_ERR_STATE, "this compute context was created for evaluation only (no HL_LLAMA_TRAIN)");
    if (!ctx->ad)
        return hl_fail(HL_ERR_STATE, "training needs adapters: the base model is frozen");
    return HL_OK;
}

hl_status hl_llama_forward_backward(hl_llama *ctx, const int *tokens, const int *labels, const int *lengths, int B,
                                    int T, float grad_scale, float *loss, int64_t *n_targets) {
    HL_TRY(train_ready(ctx));
    fwd_call fc = {0};
    HL_TRY(padded_call(ctx, &fc, lengths, B, T));
    return train_call(ctx, &fc, tokens, labels, grad_scale, loss, n_targets);
}

hl_status hl_llama_forward_backward_packed(hl_llama *ctx, const hl_llama_batch *b, float grad_scale, float *loss,
                                           int64_t *n_targets) {
    HL_TRY(train_ready(ctx));
    if (!b->labels)
        return hl_fail(HL_ERR_ARG, "a training batch needs labels");
    fwd_call fc = {0};
    HL_TRY(packed_call(ctx, &fc, b));
    return train_call(ctx, &fc, b->tokens, b->labels, grad_scale, loss, n_targets);
}

static hl_status eval_call(hl_llama *ctx, fwd_call *fc, const int *tokens, const int *labels, float *loss,
                           int64_t *n_targets, double *seq_loss_sum, int64_t *seq_count) {
    HL_TRY(begin_call(ctx, fc, tokens));
    int64_t n;
    HL_TRY(collect_targets(ctx, fc, labels, &n));
    fc->stats = ctx->has_stats ? ctx->eval_stats : NULL;
    if (seq_loss_sum)
        memset(seq_loss_sum, 0, (size_t)fc->n_seq * sizeof *seq_loss_sum);
    if (seq_count)
        memset(seq_count, 0, (size_t)fc->n_seq * sizeof *seq_count);
    forward_all(ctx, fc);
    double sum = n ? head_loss(ctx, fc, n, 1.0f, 0, seq_loss_sum, seq_count) : 0.0;
    if (loss)
        *loss = n ? (float)(sum / (double)n) : 0.0f;
    if (n_targets)
        *n_targets = n;
    return HL_OK;
}

hl_status hl_llama_eval(hl_llama *ctx, const int *tokens, const int *labels, const int *lengths, int B, int T,
                        float *loss, int64_t *n_targets, double *seq_loss_sum, int64_t *seq_count) {
    fwd_call fc = {0};
    HL_TRY(padded_call(ctx, &fc, lengths, B, T));
    return eval_call(ctx, &fc, tokens, labels, loss, n_targets, seq_loss_sum, seq_count);
}

hl_status hl_llama_eval_packed(hl_llama *ctx, const hl_llama_batch *b, float *loss, int64_t *n_targets,
                               double *seq_loss_sum, int64_t *seq_count) {
    if (!b->labels)
        return hl_fail(HL_ERR_ARG, "an eval batch needs labels");
    fwd_call fc = {0};
    HL_TRY(packed_call(ctx, &fc, b));
    return eval_call(ctx, &fc, b->tokens, b->labels, loss, n_targets, seq_loss_sum, seq_count);
}

static hl_status logits_call(hl_llama *ctx, fwd_call *fc, const int *tokens, float *logits) {
    HL_TRY(begin_call(ctx, fc, tokens));
    forward_all(ctx, fc);
    hl_gemm_xwt(logits, ctx->xf, &ctx->model->lm_head, fc->M, 0.0f, &ctx->ws);
    const int64_t V = ctx->d.V;
    for (int64_t m = 0; m < fc->M; m++)
        if (!ctx->valid[m])
            memset(logits + m * V, 0, (size_t)V * sizeof(float));
    return HL_OK;
}

hl_status hl_llama_logits(hl_llama *ctx, const int *tokens, const int *lengths, int B, int T, float *logits) {
    fwd_call fc = {0};
    HL_TRY(padded_call(ctx, &fc, lengths, B, T));
    return logits_call(ctx, &fc, tokens, logits);
}

hl_status hl_llama_logits_packed(hl_llama *ctx, const hl_llama_batch *b, float *logits) {
    fwd_call fc = {0};
    HL_TRY(packed_call(ctx, &fc, b));
    return logits_call(ctx, &fc, b->tokens, logits);
}
