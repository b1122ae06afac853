/* Inference with a KV cache (see hl_infer_* in llama.h): the same block as training
 * (core/backend/cpu/ops.h + core/backend/cpu/gemm.h + hl_adapter_forward without dropout) run on a few new rows per
 * sequence, with keys/values of earlier positions read from the cache. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/backend/cpu/cpu_adapter.h"
#include "core/base/convert.h"
#include "core/backend/cpu/gemm.h"
#include "core/backend/cpu/llama.h"
#include "core/backend/cpu/ops.h"
#include "core/backend/cpu/profile.h"

/* Phase timers of a forward (tuning builds, -DHL_ENGINE_PROFILE; bench_decode prints them with
 * the weight bytes each product phase streamed). Off by default: no cost, no state. */
enum { PI_EMBED, PI_NORM, PI_QKV, PI_ROPE_KV, PI_ATTN, PI_O, PI_GATE_UP, PI_SWIGLU, PI_DOWN, PI_ADAPT, PI_HEAD,
       PI_COUNT };
#ifdef HL_ENGINE_PROFILE
static const char *const pi_names[PI_COUNT] = {
    "embedding rows", "rmsnorm",     "q/k/v products", "rope + cache write", "attention",       "o product",
    "gate/up products", "swiglu",    "down product",   "adapters + router",  "lm_head product"};
static double pi_sec[PI_COUNT], pi_bytes[PI_COUNT], pi_last;
#define PI_START() (pi_last = hl_prof_now())
#define PI(k) HL_PROF_ADD(pi_sec, pi_last, k)
#define PI_BYTES(k, W) (pi_bytes[k] += (double)(W)->rows * (double)(W)->cols * (double)hl_dtype_size((W)->dtype))
int hl_infer_profile(const char *const **names, double **seconds, double **bytes) {
    *names = pi_names;
    *seconds = pi_sec;
    *bytes = pi_bytes;
    return PI_COUNT;
}
#else
#define PI_START() ((void)0)
#define PI(k) ((void)0)
#define PI_BYTES(k, W) ((void)0)
#endif

struct hl_infer {
    const hl_model *model;
    const hl_adapters *ad;
    hl_llama_config cfg;
    int slots, max_seq, max_rows, lanes;
    int64_t D, Dq, Dkv, F, V;
    float *norms; /* [(2L+1), D] */
    hl_rope_table rope;
    float *kc, *vc; /* [L][slots][max_seq][Dkv], cache_bytes each (cache_alloc) */
    size_t cache_bytes;
    float *slab;    /* everything below */
    float *x, *xn, *q, *k, *v, *att, *g, *u, *h, *Z, *W, *tile, *attn_s, *ad_s, *last;
    hl_gemm_ws ws;
    int *pos;        /* [max_rows] position of each new row */
    int *bpos, *blen; /* [max_rows] per sequence of a call: first new position, positions after the call */
    size_t bytes;
};

static int64_t up16(int64_t n) { return (n + 15) / 16 * 16; }

/* The key or value cache: zeroed, committed page by page as positions are written (a cache
 * planned for long contexts costs only what is used), in transparent huge pages where the
 * kernel offers them: a decode step writes one new row per sequence and layer, each on a
 * different page, and with 4 KiB pages those first-touch faults (several µs each in a virtual
 * machine) were a visible part of a batched step. NULL when out of memory. */
static float *cache_alloc(size_t bytes) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, bytes, MADV_HUGEPAGE); /* a hint: without it (or THP off) small pages serve */
#endif
    return p;
}

static void cache_free(float *p, size_t bytes) {
    if (p)
        munmap(p, bytes);
}

void hl_infer_free(hl_infer *inf) {
    if (!inf)
        return;
    free(inf->norms);
    hl_rope_table_free(&inf->rope);
    cache_free(inf->kc, inf->cache_bytes);
    cache_free(inf->vc, inf->cache_bytes);
    free(inf->slab);
    free(inf->pos);
    free(inf);
}

size_t hl_infer_bytes(const hl_infer *inf) { return inf->bytes; }
void hl_infer_set_compute(hl_infer *inf, hl_compute compute) { inf->ws.compute = compute; }

static void norm_f32(float *dst, const hl_weight *w, int64_t D) {
    hl_weight flat = *w;
    flat.rows = 1;
    flat.cols = D;
    hl_weight_rows_to_f32(&flat, 0, 1, dst);
}

hl_status hl_infer_create(hl_infer **out, const hl_model *model, const hl_adapters *ad, int slots, int max_seq,
                          int max_rows) {
    *out = NULL;
    const hl_llama_config *c = &model->cfg;
    if (slots < 1 || max_seq < 1 || max_rows < 1)
        return hl_fail(HL_ERR_ARG, "inference needs at least one slot, position and row (got %d, %d, %d)", slots,
                       max_seq, max_rows);
    if (ad && ad->n_layers != c->n_layers)
        return hl_fail(HL_ERR_SHAPE, "adapter has %d layers but the model has %d", ad->n_layers, c->n_layers);
    /* Validates shapes (and gives the same errors as training) without keeping the plan. */
    hl_mem_plan plan;
    HL_TRY(hl_llama_plan(c, ad ? &ad->cfg : NULL, 1, 1, 0, &plan));
    for (int l = 0; l < c->n_layers; l++) {
        const hl_layer_weights *w = &model->layers[l];
        if (!w->wq.data || !w->wk.data || !w->wv.data || !w->wo.data || !w->w_gate.data || !w->w_up.data ||
            !w->w_down.data || w->attn_norm.rows * w->attn_norm.cols != c->dim ||
            w->ffn_norm.rows * w->ffn_norm.cols != c->dim)
            return hl_fail(HL_ERR_SHAPE, "layer %d of the model is incomplete", l);
    }
    hl_infer *inf = calloc(1, sizeof *inf);
    if (!inf)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    inf->model = model;
    inf->ad = ad;
    inf->cfg = *c;
    inf->slots = slots, inf->max_seq = max_seq, inf->max_rows = max_rows;
    inf->D = c->dim, inf->Dq = (int64_t)c->n_heads * c->head_dim, inf->Dkv = (int64_t)c->n_kv_heads * c->head_dim;
    inf->F = c->hidden_dim, inf->V = c->vocab_size;
    const int64_t R = max_rows, D = inf->D, L = c->n_layers;
    size_t cache = (size_t)L * (size_t)slots * (size_t)max_seq * (size_t)inf->Dkv;
    int64_t zr = 0, N = 0, ads = 0;
    if (ad) {
        zr = (int64_t)ad->nA * ad->cfg.r;
        N = ad->N;
        for (int t = 0; t < HL_TARGET_COUNT; t++) {
            const hl_adapter_proj *p = hl_adapters_proj(ad, 0, t);
            if (p) {
                int64_t s = hl_adapter_scratch_floats(ad, R, p->d_in, p->d_out);
                ads = s > ads ? s : ads;
            }
        }
    }
    int64_t ts = (int64_t)hl_gemm_ws_floats(D), t2 = (int64_t)hl_gemm_ws_floats(inf->F);
    int64_t t3 = (int64_t)hl_gemm_ws_floats(inf->Dq);
    ts = t2 > ts ? t2 : ts;
    ts = t3 > ts ? t3 : ts;
    inf->lanes = hl_get_threads();
    inf->lanes = inf->lanes < 1 ? 1 : inf->lanes > 64 ? 64 : inf->lanes;
    hl_attn_dims adims = {.B = 1, .Tq = max_rows, .Tk = max_seq, .lanes = inf->lanes};
    int64_t sizes[] = {R * D,       R * D,      R * inf->Dq, R * inf->Dkv, R * inf->Dkv, R * inf->Dq,
                       R * inf->F,  R * inf->F, R * inf->F,  R * zr + 1,   R * N + 1,    ts,
                       hl_attention_scratch_floats(&adims),  ads + 1,      R * D};
    float **ptrs[] = {&inf->x, &inf->xn, &inf->q,  &inf->k,    &inf->v,      &inf->att,  &inf->g,   &inf->u,
                      &inf->h, &inf->Z,  &inf->W,  &inf->tile, &inf->attn_s, &inf->ad_s, &inf->last};
    int64_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        total += up16(sizes[i]);
    inf->slab = malloc((size_t)total * sizeof(float));
    inf->cache_bytes = (cache ? cache : 1) * sizeof(float);
    inf->kc = cache_alloc(inf->cache_bytes);
    inf->vc = cache_alloc(inf->cache_bytes);
    inf->norms = malloc((size_t)((2 * L + 1) * D) * sizeof(float));
    inf->pos = malloc((size_t)R * 3 * sizeof(int));
    inf->bytes = ((size_t)total + 2 * cache + (size_t)((2 * L + 1) * D)) * sizeof(float);
    if (!inf->slab || !inf->kc || !inf->vc || !inf->norms || !inf->pos ||
        hl_rope_table_init(&inf->rope, max_seq, c->head_dim, c->rope_theta)) {
        size_t want = inf->bytes;
        hl_infer_free(inf);
        return hl_fail(HL_ERR_NOMEM, "cannot allocate %.1f MiB for the KV cache (%d slots x %d positions)",
                       (double)want / 1048576.0, slots, max_seq);
    }
    inf->bpos = inf->pos + R;
    inf->blen = inf->pos + 2 * R;
    int64_t off = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        *ptrs[i] = inf->slab + off;
        off += up16(sizes[i]);
    }
    inf->ws.buf = inf->tile;
    inf->ws.floats = ts;
    for (int l = 0; l < c->n_layers; l++) {
        norm_f32(inf->norms + 2 * l * D, &model->layers[l].attn_norm, D);
        norm_f32(inf->norms + (2 * l + 1) * D, &model->layers[l].ffn_norm, D);
    }
    norm_f32(inf->norms + 2 * L * D, &model->final_norm, D);
    *out = inf;
    return HL_OK;
}

/* Y = beta·Y + X·Wᵀ (+ the adapter of (l, t)); `phase`: the profile entry of the product. */
static void proj(hl_infer *inf, int l, int t, const hl_weight *W, float *Y, float beta, const float *X, int64_t M,
                 int phase) {
    (void)phase;
    hl_gemm_xwt(Y, X, W, M, beta, &inf->ws);
    PI(phase);
    PI_BYTES(phase, W);
    const hl_adapter_proj *p = hl_adapters_proj(inf->ad, l, t);
    if (p) {
        hl_dropout none = {0, 0.0f};
        hl_adapter_forward(inf->ad, p, Y, X, M, inf->Z, inf->W, none, NULL, NULL, inf->ad_s);
        PI(PI_ADAPT);
    }
}

hl_status hl_infer_forward(hl_infer *inf, const int *tokens, int B, int Tq, const int *pos0, const int *slot,
                           float *logits, int all_logits) {
    const hl_llama_config *c = &inf->cfg;
    if (B < 1 || Tq < 1 || (int64_t)B * Tq > inf->max_rows)
        return hl_fail(HL_ERR_ARG, "%d x %d new tokens exceed the %d rows planned for one call", B, Tq,
                       inf->max_rows);
    for (int b = 0; b < B; b++) {
        int s = slot ? slot[b] : b, p = pos0 ? pos0[b] : 0;
        if (s < 0 || s >= inf->slots)
            return hl_fail(HL_ERR_ARG, "cache slot %d out of range (0..%d)", s, inf->slots - 1);
        if (p < 0 || p + Tq > inf->max_seq)
            return hl_fail(HL_ERR_RANGE, "positions %d..%d exceed the context of %d tokens", p, p + Tq - 1,
                           inf->max_seq);
        for (int t = 0; t < Tq; t++) {
            int id = tokens[b * Tq + t];
            if (id < 0 || id >= c->vocab_size)
                return hl_fail(HL_ERR_RANGE, "token id %d is outside the vocabulary (0..%d)", id,
                               c->vocab_size - 1);
            inf->pos[b * Tq + t] = p + t;
        }
    }
    const int64_t M = (int64_t)B * Tq, D = inf->D, Dkv = inf->Dkv;
    PI_START();
    for (int64_t m = 0; m < M; m++)
        hl_weight_rows_to_f32(&inf->model->tok_embed, tokens[m], 1, inf->x + m * D);
    PI(PI_EMBED);
    for (int l = 0; l < c->n_layers; l++) {
        const hl_layer_weights *w = &inf->model->layers[l];
        hl_rmsnorm_forward(inf->xn, NULL, inf->x, inf->norms + 2 * l * D, M, (int)D, c->rms_norm_eps);
        PI(PI_NORM);
        proj(inf, l, 0, &w->wq, inf->q, 0.0f, inf->xn, M, PI_QKV);
        proj(inf, l, 1, &w->wk, inf->k, 0.0f, inf->xn, M, PI_QKV);
        proj(inf, l, 2, &w->wv, inf->v, 0.0f, inf->xn, M, PI_QKV);
        hl_rope_forward(inf->q, M, c->n_heads, c->head_dim, inf->pos, &inf->rope);
        hl_rope_forward(inf->k, M, c->n_kv_heads, c->head_dim, inf->pos, &inf->rope);
        const int64_t slot_floats = (int64_t)inf->max_seq * Dkv;
        float *kl = inf->kc + (int64_t)l * inf->slots * slot_floats, *vl = inf->vc + (int64_t)l * inf->slots * slot_floats;
        /* k and v rows into the cache, in parallel over the rows of a batch: the cache rows a step
         * writes are often fresh pages of the lazily committed cache, whose faults then run on all
         * threads instead of one. */
#pragma omp parallel for schedule(static) if (M > 1 && M * Dkv >= 16384)
        for (int64_t m = 0; m < M; m++) {
            int b = (int)(m / Tq), t = (int)(m % Tq);
            int s = slot ? slot[b] : b, p = pos0 ? pos0[b] : 0;
            memcpy(kl + s * slot_floats + (int64_t)(p + t) * Dkv, inf->k + m * Dkv, (size_t)Dkv * sizeof(float));
            memcpy(vl + s * slot_floats + (int64_t)(p + t) * Dkv, inf->v + m * Dkv, (size_t)Dkv * sizeof(float));
        }
        for (int b = 0; b < B; b++) {
            int p = pos0 ? pos0[b] : 0;
            inf->bpos[b] = p;
            inf->blen[b] = p + Tq;
        }
        PI(PI_ROPE_KV);
        /* Sequences in consecutive slots (slot[b + 1] = slot[b] + 1: the usual batch) attend in one
         * call, so the (sequence, head) items of a whole decode step share one parallel loop; each
         * item's arithmetic is the same as alone, so the bits do not depend on the grouping. */
        for (int b0 = 0, n; b0 < B; b0 += n) {
            int s0 = slot ? slot[b0] : b0;
            for (n = 1; b0 + n < B && (slot ? slot[b0 + n] : b0 + n) == s0 + n;)
                n++;
            hl_attn_dims ad = {.B = n, .Tq = Tq, .Tk = inf->max_seq, .n_heads = c->n_heads,
                               .n_kv_heads = c->n_kv_heads, .head_dim = c->head_dim, .pos0 = inf->bpos + b0,
                               .q_len = inf->blen + b0, .kv_len = inf->blen + b0, .lanes = inf->lanes};
            hl_attention_forward(inf->att + (int64_t)b0 * Tq * inf->Dq, NULL, inf->q + (int64_t)b0 * Tq * inf->Dq,
                                 kl + s0 * slot_floats, vl + s0 * slot_floats, &ad, inf->attn_s);
        }
        PI(PI_ATTN);
        proj(inf, l, 3, &w->wo, inf->x, 1.0f, inf->att, M, PI_O); /* x += o(att) */
        hl_rmsnorm_forward(inf->xn, NULL, inf->x, inf->norms + (2 * l + 1) * D, M, (int)D, c->rms_norm_eps);
        PI(PI_NORM);
        proj(inf, l, 4, &w->w_gate, inf->g, 0.0f, inf->xn, M, PI_GATE_UP);
        proj(inf, l, 5, &w->w_up, inf->u, 0.0f, inf->xn, M, PI_GATE_UP);
        hl_swiglu_forward(inf->h, inf->g, inf->u, M * inf->F);
        PI(PI_SWIGLU);
        proj(inf, l, 6, &w->w_down, inf->x, 1.0f, inf->h, M, PI_DOWN); /* x += down(h) */
    }
    const float *fin = inf->norms + 2 * (int64_t)c->n_layers * D;
    if (all_logits) {
        hl_rmsnorm_forward(inf->xn, NULL, inf->x, fin, M, (int)D, c->rms_norm_eps);
        hl_gemm_xwt(logits, inf->xn, &inf->model->lm_head, M, 0.0f, &inf->ws);
    } else {
        for (int b = 0; b < B; b++)
            memcpy(inf->last + (int64_t)b * D, inf->x + ((int64_t)b * Tq + Tq - 1) * D, (size_t)D * sizeof(float));
        hl_rmsnorm_forward(inf->xn, NULL, inf->last, fin, B, (int)D, c->rms_norm_eps);
        PI(PI_NORM);
        hl_gemm_xwt(logits, inf->xn, &inf->model->lm_head, B, 0.0f, &inf->ws);
    }
    PI(PI_HEAD);
    PI_BYTES(PI_HEAD, &inf->model->lm_head);
    return HL_OK;
}

void hl_infer_copy_prefix(hl_infer *inf, int dst, int src, int n) {
    const size_t row = (size_t)inf->Dkv * sizeof(float);
    for (int l = 0; l < inf->cfg.n_layers; l++) {
        size_t a = (((size_t)l * inf->slots + dst) * inf->max_seq) * inf->Dkv;
        size_t b = (((size_t)l * inf->slots + src) * inf->max_seq) * inf->Dkv;
        memcpy(inf->kc + a, inf->kc + b, (size_t)n * row);
        memcpy(inf->vc + a, inf->vc + b, (size_t)n * row);
    }
}
