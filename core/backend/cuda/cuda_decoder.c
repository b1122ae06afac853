/* The CUDA backend's KV-cache decoder (the seam's hl_decoder): generation, BIG-Bench Hard and
 * scoring by generation on the GPU.
 *
 * Weights, adapter parameters and the per-row scratch come from an eval session of the same
 * backend (batch 1, seq = max_rows rows): the weights are uploaded once in the model's dtype and
 * the adapters stay unmerged (router per token) through the same products as training, so the
 * decoder computes exactly the training forward's block. What is the decoder's own:
 *   - the KV cache: a pool of blocks of CU_KV_BLOCK positions per layer, keys and values in
 *     the activation dtype (bf16/f16 models: 16-bit; f32 models stay f32 so parity with the CPU
 *     engine is tight); slots hold block tables (core/backend/kv_pages.h), so prefixes are
 *     shared block by block and copied on write;
 *   - RoPE tables for max_seq positions;
 *   - prefill attention: the slot's earlier keys/values gathered next to the new rows and run
 *     through the flash kernels (tensor cores for 16-bit hd 64/128) with only the new rows as
 *     queries;
 *     Several sequences with different numbers of new tokens go in one call (batched prefill,
 *     hl_decoder_forward_varlen): one set of products over all their rows, attention per sequence;
 *   - decode attention (one new row per sequence): the split-K kernel over the pool
 *     (k_decode.cu), chunks sized so the GPU has work even at batch 1; rows whose slots hold the
 *     same prefix blocks (a task's few-shot prompt) are grouped and the shared part is done once
 *     per group (hlk_prefix_attn: each chunk of keys/values read once for all the group's rows),
 *     the per-row kernel covers the rest (HL_CUDA_CASCADE=0: per-row only);
 *   - greedy decode steps replay CUDA graphs of the whole step (HL_CUDA_GRAPHS=0: eager);
 *   - the logits of the last rows, and the greedy arg-max on the device (the host then gets B
 *     ids, not B·vocab floats). Sampling stays on the host (core/eval/sampler.c) from the
 *     logits, so temperature/top-p runs are the CPU's sampler bit for bit.
 * Optional: HL_CUDA_MERGE_LORA=1 in the environment merges a plain LoRA (one head, no router)
 * into a private copy of the frozen weights when the decoder is created (W += s·B·A), so
 * decoding runs at base-model cost; HydraLoRA (per-token router) cannot be merged and runs
 * unmerged. HL_KV_CACHE_MIB caps the pool (default: what is free, less a reserve). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend/cuda/cuda_check.h"
#include "core/backend/cuda/cuda_decode.h"
#include "core/backend/cuda/cuda_profile.h"
#include "core/backend/cuda/cuda_session.h"
#include "core/backend/kv_pages.h"

#define CU_KV_BLOCK 16                  /* positions per cache block */
#define CU_DEC_RESERVE ((size_t)1 << 30) /* left free after the pool (cuBLASLt, the context, other work) */

#define CU_GRAPHS 8 /* decode-step graphs kept (by batch and attention split) */
typedef struct {
    cudaGraphExec_t exec;
    int B, n_split, chunk, n_groups, npc;
    long last_use;
} cu_graph;

typedef struct {
    hl_session *ses;
    cu_session *cs;
    int has_ad, merged;
    hl_kv_pages kp;
    int bs, max_blocks;
    int64_t n_blocks;
    void *kpool, *vpool; /* [L][n_blocks][bs][Dkv] each */
    size_t pool_bytes;
    size_t layer_elems;  /* n_blocks·bs·Dkv */
    float *rope_cos, *rope_sin; /* [max_seq, hd/2] */
    void *cq, *co;       /* prefill: [max_seq, Dqkv], [max_seq, Dq] */
    float *lse;          /* [H, max_seq] */
    int32_t *geom;       /* pos[max_seq] send[max_seq] blk_start/len/off[nblk] */
    int geom_blk, S;
    float *part, *part_ml;
    int part_items;
    int cascade;          /* shared-prefix attention for decode steps (16-bit, hd 64/128) */
    float *pre_part, *pre_ml; /* [slots, H, npc_max, hd], [.., 2] */
    int npc_max;
    int32_t *d_ints, *h_ints; /* tok, pos, rows, slot, len, last [max_rows each], tables */
    int32_t *d_idx, *h_idx;
    float *d_val, *h_val;
    void *wcopy;         /* merged LoRA: private weights (replaces the session's) */
    size_t wcopy_bytes;
    void *own;           /* one allocation for everything above that is the decoder's */
    size_t own_bytes;
    hl_kv_copy *copies;
    int targ_blocks;
    int attn_wave; /* decode attention blocks the GPU holds at once (0: unknown, chunks from targ_blocks) */
    int attn_chunk; /* positions per decode attention block when set (HL_CUDA_ATTN_CHUNK, a multiple of 64) */
    int *h_off, *h_n; /* [slots] per-call row offsets and lengths (host) */
    cu_graph graphs[CU_GRAPHS];
    long graph_clock;
    int graphs_off;
    /* one-row decoding (k_gemv.cu): fused weight-streaming products (DEC_SMALL_ROWS rows) */
    int small;            /* the model's shapes and dtype allow it (HL_CUDA_GEMV=0: off) */
    float *ad_zw;         /* [3][HLK_GEMV_MAX_M][N·r] router-weighted adapter inputs */
    float *gu_pre;        /* [HLK_GEMV_MAX_M][2F] f32: gate/up before adapters and SwiGLU (gu_split) */
    float *ad_part;       /* hlk_addown partials */
    unsigned *ad_count;   /* hlk_addown's [3] or the routed product's [HLK_GEMV_SYNC] counters (zero between launches) */
    int ad_chunk, ad_max_chunks, ad_cmax;
    int route;            /* Zw made inside the products (else one hlk_addown launch per input) */
    int route_split;      /* ... with a routing job per row slice (hlk_gemv.route_split) */
    int fused_merge;      /* decode attention merges its chunks in its last block (merge_count) */
    unsigned *merge_count; /* [slots·H] decode attention counters (zero between launches) */
    int rope_kv;          /* hlk_rope_kv applies (16-bit, hd/2 % 8 == 0) */
    int attn_rope;        /* one-row decode: RoPE and the cache write inside the decode attention */
    int gu_split;         /* one-row decode: gate/up's adapter terms and SwiGLU in a launch after the product */
    int pdl;              /* one-row kernels overlap their start with the kernel before (sm_90+) */
    int tensor_cores;     /* compute capability 8.0 or later: the shared-prefix attention on WMMA */
    void *presplit;       /* 16-bit parts of every adapter's A, R, B (frozen: split once, not per call) */
    size_t presplit_bytes;
    size_t *presplit_off; /* [L·7] byte offset of each adapted projection's parts */
} cu_decoder;

static size_t al256(size_t b) { return (b + 255) / 256 * 256; }

static void *at(const cu_session *cs, const void *p, int64_t elems) { return (char *)p + (size_t)elems * cs->d.esz; }

/* Call layout of the integer staging (host pinned, device copy). */
typedef struct {
    int32_t *tok, *pos, *rows, *slot, *len, *last;
    int32_t *start, *pre_n, *members, *g_first, *g_count, *g_len, *g_slot; /* shared-prefix groups */
    int32_t *tables;
} dec_ints;

#define DEC_INT_ARRAYS 13 /* arrays of R entries before the tables */
static dec_ints ints_at(int32_t *base, int R, int slots, int max_blocks) {
    dec_ints d;
    int32_t **arr[DEC_INT_ARRAYS] = {&d.tok,   &d.pos,     &d.rows,    &d.slot,  &d.len,   &d.last,  &d.start,
                                     &d.pre_n, &d.members, &d.g_first, &d.g_count, &d.g_len, &d.g_slot};
    for (int i = 0; i < DEC_INT_ARRAYS; i++) {
        *arr[i] = base;
        base += R;
    }
    d.tables = base;
    (void)slots, (void)max_blocks;
    return d;
}
static size_t ints_count(int R, int slots, int max_blocks) {
    return (size_t)DEC_INT_ARRAYS * R + (size_t)slots * max_blocks;
}

static hl_status rope_tables(cu_decoder *cd, cudaStream_t st, const hl_llama_config *c, int max_seq) {
    const int64_t half = c->head_dim / 2, n = (int64_t)max_seq * half;
    float *t = malloc((size_t)n * 2 * sizeof(float));
    if (!t)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    for (int64_t j = 0; j < half; j++) { /* the CPU backend's formula (double, then rounded) */
        double inv_freq = 1.0 / pow((double)c->rope_theta, (2.0 * (double)j) / (double)c->head_dim);
        for (int64_t p = 0; p < max_seq; p++) {
            double a = (double)p * inv_freq;
            t[p * half + j] = (float)cos(a);
            t[n + p * half + j] = (float)sin(a);
        }
    }
    cudaError_t e = cudaMemcpyAsync(cd->rope_cos, t, (size_t)n * sizeof(float), cudaMemcpyHostToDevice, st);
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(cd->rope_sin, t + n, (size_t)n * sizeof(float), cudaMemcpyHostToDevice, st);
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(st);
    free(t);
    if (e != cudaSuccess)
        return hl_cu_fail(e, "RoPE table upload", __FILE__, __LINE__);
    return HL_OK;
}

static void session_close(hl_session *s);

static void dec_release(hl_decoder *d, cu_decoder *cd) {
    if (!cd)
        return;
    if (cd->cs && cd->cs->st)
        cudaStreamSynchronize(cd->cs->st);
    for (int i = 0; i < CU_GRAPHS; i++)
        if (cd->graphs[i].exec)
            cudaGraphExecDestroy(cd->graphs[i].exec);
    cu_free(d->be, cd->own, cd->own_bytes);
    cu_free(d->be, cd->kpool, cd->pool_bytes);
    cu_free(d->be, cd->vpool, cd->pool_bytes);
    cu_free(d->be, cd->wcopy, cd->wcopy_bytes);
    cu_free(d->be, cd->presplit, cd->presplit_bytes);
    free(cd->presplit_off);
    if (cd->h_ints)
        cudaFreeHost(cd->h_ints);
    if (cd->h_idx)
        cudaFreeHost(cd->h_idx);
    session_close(cd->ses);
    hl_kv_pages_free(&cd->kp);
    free(cd->copies);
    free(cd->h_off);
    free(cd->h_n);
    free(cd);
}

/* The weights' session, made directly on this backend's session code (the public seam calls
 * back into the backends: going through it from here would be a call circle). */
static hl_status session_open(hl_session **out, hl_decoder *d, const hl_adapters *ad) {
    hl_session *s = calloc(1, sizeof *s);
    if (!s)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    s->ops = d->be->ops;
    s->be = d->be;
    s->model = d->model;
    s->batch = 1;
    s->seq = d->max_rows;
    s->flags = 0;
    hl_status st = HL_OK;
    if (ad) {
        st = hl_adapters_create(&s->layout, &d->model->cfg, &ad->cfg, ad->seed);
        s->has_adapters = st == HL_OK;
    }
    if (st == HL_OK)
        st = cu_session_init(s);
    if (st != HL_OK) {
        if (s->has_adapters)
            hl_adapters_free(&s->layout);
        free(s);
        return st;
    }
    *out = s;
    return HL_OK;
}

static void session_close(hl_session *s) {
    if (!s)
        return;
    cu_session_free(s);
    if (s->has_adapters)
        hl_adapters_free(&s->layout);
    free(s);
}

/* Merge a plain LoRA into a private copy of the affected weights (HL_CUDA_MERGE_LORA=1). */
static hl_status merge_lora(hl_decoder *d, cu_decoder *cd) {
    cu_session *cs = cd->cs;
    const cu_dims *dm = &cs->d;
    if (dm->has_router || dm->N != 1)
        return HL_OK; /* HydraLoRA / split heads: the router is per token, nothing to merge */
    /* private copies of the weight slab: the session's stays as loaded */
    cd->wcopy_bytes = cs->wbytes;
    HL_TRY(cu_malloc(d->be, &cd->wcopy, cd->wcopy_bytes, "merged weights"));
    CU_TRY(cudaMemcpyAsync(cd->wcopy, cs->wslab, cs->wbytes, cudaMemcpyDeviceToDevice, cs->st));
    const ptrdiff_t shift = (char *)cd->wcopy - (char *)cs->wslab;
    for (int l = 0; l < dm->L; l++) {
        cu_layer_w *w = &cs->lw[l];
        w->wqkv = (char *)w->wqkv + shift;
        w->wo = (char *)w->wo + shift;
        w->wgu = (char *)w->wgu + shift;
        w->wdown = (char *)w->wdown + shift;
        for (int t = 0; t < 7; t++) {
            cu_proj *p = &cs->proj[l * 7 + t];
            if (!p->on)
                continue;
            /* the projection's rows inside the stacked weights */
            void *W = t == 0   ? w->wqkv
                      : t == 1 ? at(cs, w->wqkv, dm->Dq * dm->D)
                      : t == 2 ? at(cs, w->wqkv, (dm->Dq + dm->Dkv) * dm->D)
                      : t == 3 ? w->wo
                      : t == 4 ? w->wgu
                      : t == 5 ? at(cs, w->wgu, dm->F * dm->D)
                               : w->wdown;
            HL_TRY(hlk_merge_lora(cs->st, W, dm->dt, cs->params + p->offA, cs->params + p->offB, p->d_out, p->d_in,
                                  (int)dm->r, cs->ad_scale));
            p->on = 0; /* merged: no unmerged product any more */
        }
    }
    cs->embed = (char *)cs->embed + shift;
    cs->lm_head = (char *)cs->lm_head + shift;
    cs->norms = (float *)((char *)cs->norms + shift);
    CU_TRY(cudaStreamSynchronize(cs->st));
    cd->merged = 1;
    return HL_OK;
}

/* 16-bit models with unmerged adapters: the 16-bit parts of every adapted projection's A, R and B
 * (cuda_adapter.c), made once here instead of in every call (the parameters do not change while
 * decoding). Products with more rows than the one-row kernels take then read them. */
static hlk_adapter adapter_for(const cu_decoder *cd, cu_session *cs, int64_t M, int l, int t);

static hl_status presplit_adapters(hl_decoder *d, cu_decoder *cd) {
    cu_session *cs = cd->cs;
    const cu_dims *dm = &cs->d;
    if (!cd->has_ad || dm->dt == HL_DTYPE_F32)
        return HL_OK;
    const int n = (int)dm->L * 7;
    cd->presplit_off = calloc((size_t)n, sizeof *cd->presplit_off);
    if (!cd->presplit_off)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        const cu_proj *p = &cs->proj[i];
        if (!p->on)
            continue;
        size_t sz[5];
        hlk_adapter16_sizes(1, p->d_in, p->d_out, (int)dm->N, (int)dm->r, (int)dm->nA, dm->has_router, sz);
        cd->presplit_off[i] = total;
        total += al256(sz[3] * dm->esz);
    }
    if (!total)
        return HL_OK;
    HL_TRY(cu_malloc(d->be, &cd->presplit, total, "the adapters' 16-bit parts"));
    cd->presplit_bytes = total;
    for (int i = 0; i < n; i++) {
        if (!cs->proj[i].on)
            continue;
        hlk_adapter a = adapter_for(NULL, cs, 1, i / 7, i % 7);
        a.wsp = (char *)cd->presplit + cd->presplit_off[i];
        HL_TRY(hl_cu_adapter_presplit(cs->st, &a));
    }
    return HL_OK;
}

hl_status cu_decoder_init(hl_decoder *d, const hl_adapters *ad) {
    const hl_model *model = d->model;
    const hl_llama_config *c = &model->cfg;
    cu_decoder *cd = calloc(1, sizeof *cd);
    if (!cd)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    hl_status st = HL_OK;
#define DTRY(x)                                                                                                       \
    do {                                                                                                              \
        st = (x);                                                                                                     \
        if (st != HL_OK) {                                                                                            \
            dec_release(d, cd);                                                                                       \
            return st;                                                                                                \
        }                                                                                                             \
    } while (0)
    const int R = d->max_rows, S = d->max_seq;
    /* weights + adapters + per-row scratch */
    DTRY(session_open(&cd->ses, d, ad));
    cd->cs = cd->ses->impl;
    cu_session *cs = cd->cs;
    const cu_dims *dm = &cs->d;
    if (ad) {
        if (ad->n_params != dm->n_params)
            DTRY(hl_fail(HL_ERR_SHAPE, "adapter has %zu parameters, its configuration implies %zu", ad->n_params,
                         dm->n_params));
        DTRY(cu_write_slab(cd->ses, HL_SLAB_PARAMS, 0, ad->n_params, ad->params));
        cd->has_ad = 1;
        const char *e = getenv("HL_CUDA_MERGE_LORA");
        if (e && !strcmp(e, "1"))
            DTRY(merge_lora(d, cd));
    }
    /* the decoder's own buffers, carved from one allocation */
    cu_backend *b = d->be->impl;
    const char *ge = getenv("HL_CUDA_GRAPHS");
    cd->graphs_off = ge && !strcmp(ge, "0");
    cd->targ_blocks = 4 * (b->prop.multiProcessorCount > 0 ? b->prop.multiProcessorCount : 100);
    cd->part_items = 2 * cd->targ_blocks + (int)dm->H;
    const char *ce = getenv("HL_CUDA_CASCADE");
    cd->cascade = hlk_prefix_supported(dm->dt, (int)dm->hd) && !(ce && !strcmp(ce, "0"));
    if (cd->cascade) {
        /* every row writes partials in cascade mode: room for one chunk of each (slot, head) at least */
        int64_t need = (int64_t)d->slots * dm->H + 2 * cd->targ_blocks;
        cd->part_items = need > cd->part_items ? (int)need : cd->part_items;
        cd->npc_max = (S + HLK_PREFIX_CHUNK - 1) / HLK_PREFIX_CHUNK;
    }
    cd->bs = CU_KV_BLOCK;
    cd->max_blocks = (S + cd->bs - 1) / cd->bs;
    cd->geom_blk = S / HLK_ATTN_BLOCK + 2;
    cd->S = S;
    const size_t e = dm->esz;
    size_t sz[] = {
        (size_t)S * (size_t)(dm->hd / 2) * 4, (size_t)S * (size_t)(dm->hd / 2) * 4, /* rope */
        (size_t)S * (size_t)dm->Dqkv * e, (size_t)S * (size_t)dm->Dq * e,             /* cq, co */
        (size_t)dm->H * (size_t)S * 4,                                                /* lse */
        ((size_t)2 * S + (size_t)3 * cd->geom_blk) * 4,                               /* geom */
        (size_t)cd->part_items * (size_t)dm->hd * 4, (size_t)cd->part_items * 2 * 4,  /* partials */
        ints_count(R, d->slots, cd->max_blocks) * 4,                                  /* call ints */
        (size_t)R * 4, (size_t)R * 4,                                                 /* idx, val */
        (size_t)d->slots * dm->H * cd->npc_max * dm->hd * 4,                          /* prefix partials */
        (size_t)d->slots * dm->H * cd->npc_max * 2 * 4,
        (size_t)3 * HLK_GEMV_MAX_M * (size_t)(dm->N > 0 ? dm->N * dm->r : 1) * 4,     /* one-row path: Zw */
        0,                                                                            /* addown partials */
        HLK_GEMV_SYNC * sizeof(unsigned), /* hlk_addown's 3 counters or the routed product's HLK_GEMV_SYNC */
        (size_t)d->slots * dm->H * sizeof(unsigned),                                  /* merge counters */
        (size_t)HLK_GEMV_MAX_M * 2 * (size_t)dm->F * 4,                               /* one-row gate/up, f32 */
    };
    /* one-row path: the adapters' down products split the widest input into chunks */
    const int64_t k_max = dm->D > dm->F ? dm->D : dm->F;
    cd->ad_chunk = 128;
    cd->ad_max_chunks = (int)((k_max + cd->ad_chunk - 1) / cd->ad_chunk);
    cd->ad_cmax = (int)(dm->nA * dm->r + dm->N);
    const int cmax = cd->ad_cmax > 0 ? cd->ad_cmax : 1;
    /* the same buffer holds the routed products' partials (up to three adapters on one input) */
    const size_t addown_part = hlk_addown_part_floats(3, cmax, cd->ad_max_chunks) * 4,
                 routed_part = hlk_gemv_route_part_floats(HLK_GEMV_MAX_M, 3 * cmax, (int)k_max, 1) * 4;
    sz[14] = addown_part > routed_part ? addown_part : routed_part;
    size_t total = 0;
    for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++)
        total += al256(sz[i]);
    cd->own_bytes = total;
    DTRY(cu_malloc(d->be, &cd->own, total, "the decoder's buffers"));
    char *p = cd->own;
    void **dst[] = {(void **)&cd->rope_cos, (void **)&cd->rope_sin, &cd->cq, &cd->co, (void **)&cd->lse,
                    (void **)&cd->geom, (void **)&cd->part, (void **)&cd->part_ml, (void **)&cd->d_ints,
                    (void **)&cd->d_idx, (void **)&cd->d_val, (void **)&cd->pre_part, (void **)&cd->pre_ml,
                    (void **)&cd->ad_zw, (void **)&cd->ad_part, (void **)&cd->ad_count, (void **)&cd->merge_count,
                    (void **)&cd->gu_pre};
    for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) {
        *dst[i] = p;
        p += al256(sz[i]);
    }
    if (cudaMemsetAsync(cd->cq, 0, sz[2], cs->st) != cudaSuccess ||
        cudaMemsetAsync(cd->ad_count, 0, sz[15], cs->st) != cudaSuccess ||
        cudaMemsetAsync(cd->merge_count, 0, sz[16], cs->st) != cudaSuccess)
        DTRY(hl_fail(HL_ERR_INTERNAL, "cannot clear the decoder's buffers"));
    {
        const char *ge2 = getenv("HL_CUDA_GEMV");
        const int dt16 = dm->dt == HL_DTYPE_BF16 || dm->dt == HL_DTYPE_F16;
        cd->rope_kv = dt16 && hlk_rope_kv_supported(dm->dt, (int)dm->hd, dm->Dqkv, cs->acts->qkv);
        cd->small = dt16 && cd->rope_kv && dm->D % 8 == 0 && dm->F % 8 == 0 && dm->Dq % 8 == 0 &&
                    dm->N <= HLK_ADDOWN_MAX_HEADS && !(ge2 && !strcmp(ge2, "0"));
        const char *re = getenv("HL_CUDA_ROUTE"), *me = getenv("HL_CUDA_ATTN_MERGE");
        cd->route = !(re && !strcmp(re, "0"));
        const char *rs = getenv("HL_CUDA_ROUTE_SPLIT");
        cd->route_split = !(rs && !strcmp(rs, "0"));
        cd->fused_merge = !(me && !strcmp(me, "0"));
        const char *ae = getenv("HL_CUDA_ATTN_ROPE"), *se = getenv("HL_CUDA_GU_SPLIT");
        cd->gu_split = !(se && !strcmp(se, "0"));
        cd->attn_rope = cd->small && (dm->hd == 64 || dm->hd == 128) && !(ae && !strcmp(ae, "0"));
        const char *ke = getenv("HL_CUDA_ATTN_CHUNK");
        cd->attn_chunk = ke && atoi(ke) > 0 && atoi(ke) <= 1 << 20 ? (atoi(ke) + 63) / 64 * 64 : 0;
        const char *we = getenv("HL_CUDA_ATTN_WAVE");
        if (!(we && !strcmp(we, "0")))
            cd->attn_wave = hlk_decode_attn_resident(dm->dt, (int)dm->hd) * b->prop.multiProcessorCount;
        const char *pe = getenv("HL_CUDA_PDL");
        cd->pdl = b->prop.major >= 9 && !(pe && !strcmp(pe, "0"));
        cd->tensor_cores = b->prop.major >= 8;
    }
    if (cudaMallocHost((void **)&cd->h_ints, sz[8]) != cudaSuccess ||
        cudaMallocHost((void **)&cd->h_idx, (size_t)R * 8) != cudaSuccess)
        DTRY(hl_fail(HL_ERR_NOMEM, "cannot allocate pinned host memory for the decoder"));
    cd->h_val = (float *)(cd->h_idx + R);
    DTRY(rope_tables(cd, cs->st, c, S));
    DTRY(presplit_adapters(d, cd));
    /* the pool: every slot at full length if that fits, else what the free memory allows */
    const size_t block_bytes = (size_t)2 * dm->L * cd->bs * dm->Dkv * e;
    int64_t worst = (int64_t)d->slots * cd->max_blocks;
    size_t fr = 0, tot = 0;
    if (cudaMemGetInfo(&fr, &tot) != cudaSuccess)
        DTRY(hl_fail(HL_ERR_INTERNAL, "cannot read the free GPU memory"));
    int64_t fit = fr > CU_DEC_RESERVE ? (int64_t)((fr - CU_DEC_RESERVE) / block_bytes) : 0;
    const char *cap = getenv("HL_KV_CACHE_MIB");
    if (cap && atol(cap) > 0) {
        int64_t capb = (int64_t)(((size_t)atol(cap) << 20) / block_bytes);
        fit = capb < fit ? capb : fit;
    }
    cd->n_blocks = worst < fit ? worst : fit;
    if (cd->n_blocks < cd->max_blocks || cd->n_blocks > INT32_MAX / cd->bs)
        DTRY(hl_fail(HL_ERR_NOMEM,
                     "not enough GPU memory for the KV cache: one sequence of %d positions needs %.2f GiB, %.2f GiB "
                     "are free; use a shorter context or free the GPU",
                     S, (double)block_bytes * cd->max_blocks / 1073741824.0, (double)fr / 1073741824.0));
    cd->layer_elems = (size_t)cd->n_blocks * cd->bs * dm->Dkv;
    cd->pool_bytes = (size_t)dm->L * cd->layer_elems * e;
    DTRY(cu_malloc(d->be, &cd->kpool, cd->pool_bytes, "the KV cache (keys)"));
    DTRY(cu_malloc(d->be, &cd->vpool, cd->pool_bytes, "the KV cache (values)"));
    DTRY(hl_kv_pages_init(&cd->kp, (int)cd->n_blocks, cd->bs, d->slots, S));
    cd->copies = malloc((size_t)cd->max_blocks * sizeof *cd->copies);
    cd->h_off = malloc((size_t)d->slots * sizeof *cd->h_off);
    cd->h_n = malloc((size_t)d->slots * sizeof *cd->h_n);
    if (!cd->copies || !cd->h_off || !cd->h_n)
        DTRY(hl_fail(HL_ERR_NOMEM, "out of memory"));
    if (cudaStreamSynchronize(cs->st) != cudaSuccess)
        DTRY(hl_fail(HL_ERR_INTERNAL, "decoder setup failed on the GPU: %s", cudaGetErrorString(cudaGetLastError())));
#undef DTRY
    d->impl = cd;
    return HL_OK;
}

void cu_decoder_free(hl_decoder *d) {
    dec_release(d, d->impl);
    d->impl = NULL;
}

size_t cu_decoder_bytes(const hl_decoder *d) {
    const cu_decoder *cd = d->impl;
    return cd->ses->plan.total + cd->own_bytes + 2 * cd->pool_bytes + cd->wcopy_bytes;
}

void cu_decoder_cache_use(const hl_decoder *d, size_t *peak_bytes, size_t *pool_bytes) {
    const cu_decoder *cd = d->impl;
    const size_t block = (size_t)2 * cd->cs->d.L * cd->bs * cd->cs->d.Dkv * cd->cs->d.esz;
    *peak_bytes = (size_t)cd->kp.peak_used * block;
    *pool_bytes = 2 * cd->pool_bytes;
}

/* ---- one forward call ------------------------------------------------------------------------ */

static hlk_adapter adapter_for(const cu_decoder *cd, cu_session *cs, int64_t M, int l, int t) {
    const cu_dims *d = &cs->d;
    const cu_proj *p = &cs->proj[l * 7 + t];
    hlk_adapter a;
    memset(&a, 0, sizeof a);
    a.M = M;
    a.d_in = p->d_in, a.d_out = p->d_out;
    a.N = (int)d->N, a.r = (int)d->r, a.nA = (int)d->nA, a.has_router = d->has_router, a.dt = d->dt;
    a.scale = cs->ad_scale;
    a.A = cs->params + p->offA, a.B = cs->params + p->offB, a.R = d->has_router ? cs->params + p->offR : NULL;
    a.zw = cs->zw, a.p = cs->ap, a.dz = cs->adz, a.dl = cs->adl, a.partials = cs->apart, a.bt = cs->abt;
    a.gemm = cs->gemm, a.h = cs->ah, a.fp = cs->afp, a.hp = cs->ahp, a.wsp = cs->awsp, a.gp = cs->agp;
    if (cd && cd->presplit) {
        a.wsp = (char *)cd->presplit + cd->presplit_off[l * 7 + t];
        a.wsp_ready = 1;
    }
    return a;
}

static hl_status adapt(const cu_decoder *cd, int64_t M, int l, int t, void *Y, int64_t ldy, const void *X,
                       int64_t ldx) {
    cu_session *cs = cd->cs;
    if (!cs->proj[l * 7 + t].on)
        return HL_OK;
    hlk_adapter a = adapter_for(cd, cs, M, l, t);
    hlk_drop none = {0, 0.0f};
    cu_prof_mark(cs, CU_P_AD_FWD);
    return hl_cu_adapter_fwd(cs->st, &a, none, Y, ldy, X, ldx, cs->acts->Z[t], cs->acts->W[t]);
}

typedef struct {
    int B, Tq; /* Tq: new tokens of every sequence, or 0 when they differ (n[b]) */
    int64_t M;
    const int *off, *n; /* [B] first row and new tokens of each sequence (host) */
    const int *pos0, *slot;
    dec_ints dev;
    int n_split, chunk;
    int n_groups, npc; /* shared-prefix groups of this decode step (0: none) */
} dcall;

/* Prefill attention of sequence b (more than one new row): its cached positions gathered before its new rows,
 * the flash kernels with the new rows as queries, the outputs copied to att. */
static hl_status prefill_attn(cu_decoder *cd, const dcall *fc, int l, int b, const void *qkv, void *att) {
    cu_session *cs = cd->cs;
    const cu_dims *d = &cs->d;
    const int pos0 = fc->pos0 ? fc->pos0[b] : 0, slot = fc->slot ? fc->slot[b] : b, nb = fc->n[b], n = pos0 + nb;
    const int64_t row0 = fc->off[b];
    const size_t e = d->esz;
    const void *kpool = at(cs, cd->kpool, (int64_t)l * (int64_t)cd->layer_elems);
    const void *vpool = at(cs, cd->vpool, (int64_t)l * (int64_t)cd->layer_elems);
    HL_TRY(hlk_kv_gather(cs->st, at(cs, cd->cq, d->Dq), at(cs, cd->cq, d->Dq + d->Dkv), d->Dqkv, kpool, vpool,
                         fc->dev.tables + (int64_t)slot * cd->max_blocks, cd->bs, pos0, (int)d->Dkv, d->dt));
    CU_TRY(cudaMemcpyAsync(at(cs, cd->cq, (int64_t)pos0 * d->Dqkv), at(cs, qkv, row0 * d->Dqkv),
                           (size_t)nb * (size_t)d->Dqkv * e, cudaMemcpyDeviceToDevice, cs->st));
    int32_t *pos = cd->geom, *send = pos + cd->S, *blk = send + cd->S;
    HL_TRY(hlk_prefill_geom(cs->st, pos, send, blk, blk + cd->geom_blk, blk + 2 * cd->geom_blk, pos0, n));
    hlk_attn a;
    memset(&a, 0, sizeof a);
    a.M = n;
    a.H = (int)d->H, a.Hkv = (int)d->Hkv, a.hd = (int)d->hd, a.dt = d->dt;
    a.q = cd->cq;
    a.k = at(cs, cd->cq, d->Dq);
    a.v = at(cs, cd->cq, d->Dq + d->Dkv);
    a.ldq = a.ldk = a.ldv = d->Dqkv;
    a.pos = pos;
    a.send = send;
    a.n_blk = hlk_prefill_blocks(pos0, n);
    a.blk_start = blk;
    a.blk_len = blk + cd->geom_blk;
    a.blk_off = blk + 2 * cd->geom_blk;
    HL_TRY(hlk_attn_fwd(cs->st, &a, cd->co, d->Dq, cd->lse));
    CU_TRY(cudaMemcpyAsync(at(cs, att, row0 * d->Dq), at(cs, cd->co, (int64_t)pos0 * d->Dq),
                           (size_t)nb * (size_t)d->Dq * e, cudaMemcpyDeviceToDevice, cs->st));
    return HL_OK;
}

/* RoPE of the new rows' queries and keys, their keys and values into layer l's cache rows. */
static hl_status rope_and_cache(cu_decoder *cd, const dcall *fc, int l) {
    cu_session *cs = cd->cs;
    const cu_dims *d = &cs->d;
    cu_acts *la = cs->acts;
    void *kpool = at(cs, cd->kpool, (int64_t)l * (int64_t)cd->layer_elems);
    void *vpool = at(cs, cd->vpool, (int64_t)l * (int64_t)cd->layer_elems);
    cu_prof_mark(cs, CU_P_ELEM);
    if (cd->rope_kv)
        return hlk_rope_kv(cs->st, la->qkv, d->Dqkv, fc->M, (int)d->H, (int)d->Hkv, (int)d->hd, fc->dev.pos,
                           cd->rope_cos, cd->rope_sin, kpool, vpool, fc->dev.rows, d->dt, cd->pdl);
    HL_TRY(hlk_rope(cs->st, la->qkv, d->Dqkv, fc->M, (int)d->H, (int)d->hd, fc->dev.pos, cd->rope_cos, cd->rope_sin,
                    0, d->dt));
    HL_TRY(hlk_rope(cs->st, at(cs, la->qkv, d->Dq), d->Dqkv, fc->M, (int)d->Hkv, (int)d->hd, fc->dev.pos,
                    cd->rope_cos, cd->rope_sin, 0, d->dt));
    return hlk_kv_write(cs->st, kpool, vpool, at(cs, la->qkv, d->Dq), at(cs, la->qkv, d->Dq + d->Dkv), d->Dqkv,
                        fc->dev.rows, fc->M, (int)d->Dkv, d->dt);
}

/* Attention of the call's new rows (qkv, after RoPE) into la->att: the decode kernels (one new
 * row per sequence, shared prefixes grouped) or per-sequence prefill. rope (decode rows, no
 * shared prefix): qkv is before RoPE; the decode kernel applies it and writes the new keys and
 * values to the cache, as rope_and_cache would. */
static hl_status attend(cu_decoder *cd, const dcall *fc, int l, int rope) {
    cu_session *cs = cd->cs;
    const cu_dims *d = &cs->d;
    cu_acts *la = cs->acts;
    const int dt = d->dt;
    void *kpool = at(cs, cd->kpool, (int64_t)l * (int64_t)cd->layer_elems);
    void *vpool = at(cs, cd->vpool, (int64_t)l * (int64_t)cd->layer_elems);
    cu_prof_mark(cs, CU_P_ATT_FWD);
    if (fc->Tq != 1) {
        for (int b = 0; b < fc->B; b++)
            HL_TRY(prefill_attn(cd, fc, l, b, la->qkv, la->att));
        return HL_OK;
    }
    hlk_decode a;
    memset(&a, 0, sizeof a);
    a.B = fc->B, a.H = (int)d->H, a.Hkv = (int)d->Hkv, a.hd = (int)d->hd, a.dt = dt, a.Dkv = (int)d->Dkv;
    a.q = la->qkv, a.ldq = d->Dqkv;
    a.out = la->att, a.ldo = d->Dq;
    a.kpool = kpool, a.vpool = vpool;
    a.tables = fc->dev.tables, a.max_blocks = cd->max_blocks, a.bs = cd->bs;
    a.slot = fc->dev.slot, a.len = fc->dev.len;
    a.n_split = fc->n_split, a.chunk = fc->chunk;
    a.part = cd->part, a.part_ml = cd->part_ml;
    a.pdl = cd->pdl;
    a.merge_count = cd->fused_merge ? cd->merge_count : NULL;
    if (rope) {
        a.rope_cos = cd->rope_cos, a.rope_sin = cd->rope_sin, a.pos = fc->dev.pos;
        a.knew = at(cs, la->qkv, d->Dq), a.vnew = at(cs, la->qkv, d->Dq + d->Dkv);
    }
    if (fc->n_groups > 0) {
        hlk_prefix pa;
        memset(&pa, 0, sizeof pa);
        pa.H = (int)d->H, pa.Hkv = (int)d->Hkv, pa.hd = (int)d->hd, pa.dt = dt, pa.Dkv = (int)d->Dkv;
        pa.n_groups = fc->n_groups, pa.npc = fc->npc;
        pa.q = la->qkv, pa.ldq = d->Dqkv;
        pa.kpool = kpool, pa.vpool = vpool;
        pa.tables = fc->dev.tables, pa.max_blocks = cd->max_blocks, pa.bs = cd->bs;
        pa.members = fc->dev.members, pa.first = fc->dev.g_first, pa.count = fc->dev.g_count;
        pa.plen = fc->dev.g_len, pa.gslot = fc->dev.g_slot;
        pa.pre_part = cd->pre_part, pa.pre_ml = cd->pre_ml;
        pa.tensor_cores = cd->tensor_cores;
        HL_TRY(hlk_prefix_attn(cs->st, &pa));
        a.start = fc->dev.start, a.pre_n = fc->dev.pre_n;
        a.pre_part = cd->pre_part, a.pre_ml = cd->pre_ml, a.npc = fc->npc;
    }
    return hlk_decode_attn(cs->st, &a);
}

/* Products through the frozen weights, marked for the profile. */
static hl_status dlin(cu_session *cs, int64_t M, int64_t N, int64_t K, const void *X, int64_t ldx, const void *W,
                      float beta, const void *C, void *Y, int64_t ldy) {
    cu_prof_mark(cs, CU_P_MM_FWD);
    return hl_cu_linear(cs->gemm, cs->st, M, N, K, X, ldx, W, cs->d.dt, beta, C, Y, ldy);
}

static hl_status layer_forward(cu_decoder *cd, const dcall *fc, int l) {
    cu_session *cs = cd->cs;
    const cu_dims *d = &cs->d;
    const cu_layer_w *w = &cs->lw[l];
    cu_acts *la = cs->acts;
    const int64_t M = fc->M, D = d->D, F = d->F;
    const int dt = d->dt;
    void *x = at(cs, cs->xs, (int64_t)(l & 1) * d->M * D), *xo = at(cs, cs->xs, (int64_t)((l + 1) & 1) * d->M * D);
    cu_prof_mark(cs, CU_P_ELEM);
    HL_TRY(hlk_rmsnorm_fwd(cs->st, cs->xn, NULL, x, cs->norms + 2 * l * D, M, (int)D, cs->eps, dt));
    HL_TRY(dlin(cs, M, d->Dqkv, D, cs->xn, D, w->wqkv, 0.0f, NULL, la->qkv, d->Dqkv));
    HL_TRY(adapt(cd, M, l, 0, la->qkv, d->Dqkv, cs->xn, D));
    HL_TRY(adapt(cd, M, l, 1, at(cs, la->qkv, d->Dq), d->Dqkv, cs->xn, D));
    HL_TRY(adapt(cd, M, l, 2, at(cs, la->qkv, d->Dq + d->Dkv), d->Dqkv, cs->xn, D));
    HL_TRY(rope_and_cache(cd, fc, l));
    HL_TRY(attend(cd, fc, l, 0));
    HL_TRY(dlin(cs, M, D, d->Dq, la->att, d->Dq, w->wo, 1.0f, x, la->xmid, D));
    HL_TRY(adapt(cd, M, l, 3, la->xmid, D, la->att, d->Dq));
    cu_prof_mark(cs, CU_P_ELEM);
    HL_TRY(hlk_rmsnorm_fwd(cs->st, cs->xn, NULL, la->xmid, cs->norms + (2 * l + 1) * D, M, (int)D, cs->eps, dt));
    HL_TRY(dlin(cs, M, 2 * F, D, cs->xn, D, w->wgu, 0.0f, NULL, la->gu, 2 * F));
    HL_TRY(adapt(cd, M, l, 4, la->gu, 2 * F, cs->xn, D));
    HL_TRY(adapt(cd, M, l, 5, at(cs, la->gu, F), 2 * F, cs->xn, D));
    cu_prof_mark(cs, CU_P_ELEM);
    HL_TRY(hlk_swiglu_fwd(cs->st, cs->hbuf, la->gu, M, (int)F, dt));
    HL_TRY(dlin(cs, M, D, F, cs->hbuf, F, w->wdown, 1.0f, la->xmid, xo, D));
    return adapt(cd, M, l, 6, xo, D, cs->hbuf, F);
}

/* ---- one-row decoding: the fused kernels of k_gemv.cu ----------------------------------------- */

_Static_assert(HLK_GEMV_SYNC >= 3, "ad_count also holds hlk_addown's three counters");

/* The router-weighted inputs Zw of the adapters on targets t[0 .. n) (which read the product g's
 * input x, RMSNorm'ed with `norm` when not NULL) and their terms in g (g->ad[i]; targets without
 * an adapter leave ad[i].B NULL): made inside the product (g->route), or by one hlk_addown launch
 * before it when cd->route is off. */
static hl_status small_adapters(cu_decoder *cd, const dcall *fc, int l, const int *t, int n, hlk_gemv *g) {
    cu_session *cs = cd->cs;
    const cu_dims *d = &cs->d;
    hlk_addown a;
    memset(&a, 0, sizeof a);
    a.M = (int)fc->M, a.K = g->K, a.dt = d->dt, a.x = g->x, a.ldx = g->ldx, a.norm = g->norm, a.eps = cs->eps;
    a.part = cd->ad_part, a.count = cd->ad_count;
    a.chunk = cd->ad_chunk, a.max_chunks = cd->ad_max_chunks, a.cmax = cd->ad_cmax;
    a.pdl = cd->pdl;
    const int nr = (int)(d->N * d->r);
    for (int i = 0; i < n; i++) {
        hlk_gemv_ad *ad = &g->ad[i];
        memset(ad, 0, sizeof *ad);
        if (!cd->has_ad || !cs->proj[l * 7 + t[i]].on)
            continue;
        const cu_proj *p = &cs->proj[l * 7 + t[i]];
        hlk_addown_ad *q = &a.ad[a.n_ad];
        q->A = cs->params + p->offA;
        q->R = d->has_router ? cs->params + p->offR : NULL;
        q->nA = (int)d->nA, q->N = (int)d->N, q->r = (int)d->r, q->s = cs->ad_scale;
        q->zw = cd->ad_zw + (size_t)a.n_ad * HLK_GEMV_MAX_M * nr;
        q->omega = cs->acts->W[t[i]];
        ad->zw = q->zw, ad->B = cs->params + p->offB;
        ad->nr = nr, ad->r = (int)d->r, ad->d_out = p->d_out, ad->ldz = nr;
        a.n_ad++;
    }
    if (!a.n_ad)
        return HL_OK;
    if (cd->route) {
        g->n_route = a.n_ad;
        memcpy(g->route, a.ad, sizeof g->route);
        g->route_part = cd->ad_part, g->route_sync = cd->ad_count;
        g->route_split = cd->route_split;
        return HL_OK;
    }
    cu_prof_mark(cs, CU_P_AD_FWD);
    return hlk_addown_run(cs->st, &a);
}

static hlk_gemv small_product(cu_decoder *cd, const dcall *fc, int64_t N, int K, const void *x, int64_t ldx,
                              const float *norm, const void *W, void *y, int64_t ldy) {
    cu_session *cs = cd->cs;
    hlk_gemv g;
    memset(&g, 0, sizeof g);
    g.M = (int)fc->M, g.K = K, g.dt = cs->d.dt, g.N = N;
    g.x = x, g.ldx = ldx, g.norm = norm, g.eps = cs->eps, g.W = W;
    g.seg[0] = g.seg[1] = N;
    g.y = y, g.ldy = ldy;
    g.pdl = cd->pdl;
    return g;
}

/* The block for M <= DEC_SMALL_ROWS rows (16-bit): per layer, RMSNorms inside the products,
 * adapters as one routing launch per input plus a term in the product, SwiGLU inside the gate/up
 * product, RoPE and the cache writes in one launch, the residual adds inside the products. */
static hl_status layer_forward_small(cu_decoder *cd, const dcall *fc, int l) {
    cu_session *cs = cd->cs;
    const cu_dims *d = &cs->d;
    const cu_layer_w *w = &cs->lw[l];
    cu_acts *la = cs->acts;
    const int64_t D = d->D, F = d->F;
    void *x = at(cs, cs->xs, (int64_t)(l & 1) * d->M * D), *xo = at(cs, cs->xs, (int64_t)((l + 1) & 1) * d->M * D);
    const float *n1 = cs->norms + 2 * l * D, *n2 = cs->norms + (2 * l + 1) * D;
    /* q, k, v */
    static const int t_qkv[3] = {0, 1, 2}, t_o[1] = {3}, t_gu[2] = {4, 5}, t_down[1] = {6};
    hlk_gemv g = small_product(cd, fc, d->Dqkv, (int)D, x, D, n1, w->wqkv, la->qkv, d->Dqkv);
    HL_TRY(small_adapters(cd, fc, l, t_qkv, 3, &g));
    g.seg[0] = d->Dq, g.seg[1] = d->Dq + d->Dkv;
    cu_prof_mark(cs, CU_P_MM_FWD);
    HL_TRY(hlk_gemv_run(cs->st, &g));
    /* RoPE and the cache write inside the decode attention: one launch less per layer, whose
     * ramp-down and ramp-up the step paid for (H200, 7B shape: 4.17 against 4.21 ms per token) */
    const int roped = cd->attn_rope && fc->Tq == 1 && fc->n_groups == 0;
    if (!roped)
        HL_TRY(rope_and_cache(cd, fc, l));
    HL_TRY(attend(cd, fc, l, roped));
    /* o, + x */
    g = small_product(cd, fc, D, (int)d->Dq, la->att, d->Dq, NULL, w->wo, la->xmid, D);
    HL_TRY(small_adapters(cd, fc, l, t_o, 1, &g));
    g.res = x, g.ldres = D;
    cu_prof_mark(cs, CU_P_MM_FWD);
    HL_TRY(hlk_gemv_run(cs->st, &g));
    /* silu(gate) · up */
    g = small_product(cd, fc, F, (int)D, la->xmid, D, n2, w->wgu, cs->hbuf, F);
    HL_TRY(small_adapters(cd, fc, l, t_gu, 2, &g));
    g.swiglu = 1;
    if (cd->gu_split && (g.ad[0].B || g.ad[1].B)) {
        /* The adapter terms and SwiGLU in a launch after the product: its blocks then carry no
         * routing wait and no terms at their ends. Measured on the H200 (bench_bbh_gpu): the
         * terms and the routing inside took the plain gate/up product from 49.5 to 60.1 us;
         * split, batch-1 decode with HydraLoRA ran 4.54-4.57 against 4.69 ms per token. */
        hlk_swiglu_ad sa;
        memset(&sa, 0, sizeof sa);
        sa.M = (int)fc->M, sa.dt = d->dt, sa.N = F, sa.pre = cd->gu_pre, sa.ldp = 2 * F;
        sa.ad[0] = g.ad[0], sa.ad[1] = g.ad[1];
        sa.h = cs->hbuf, sa.ldh = F;
        g.ad[0].B = g.ad[1].B = NULL;
        g.pre = 1, g.y = cd->gu_pre, g.ldy = 2 * F;
        cu_prof_mark(cs, CU_P_MM_FWD);
        HL_TRY(hlk_gemv_run(cs->st, &g));
        cu_prof_mark(cs, CU_P_AD_FWD);
        HL_TRY(hlk_swiglu_ad_run(cs->st, &sa));
    } else {
        cu_prof_mark(cs, CU_P_MM_FWD);
        HL_TRY(hlk_gemv_run(cs->st, &g));
    }
    /* down, + xmid */
    g = small_product(cd, fc, D, (int)F, cs->hbuf, F, NULL, w->wdown, xo, D);
    HL_TRY(small_adapters(cd, fc, l, t_down, 1, &g));
    g.res = la->xmid, g.ldres = D;
    cu_prof_mark(cs, CU_P_MM_FWD);
    return hlk_gemv_run(cs->st, &g);
}

/* Rows the fused path takes. Measured on an H200 (bench_bbh_gpu --kernels, 7B shapes): at one row
 * the fused products stream weights as fast as cuBLASLt and save the separate norm, SwiGLU, residual
 * and adapter launches; at two rows the register kernel already trails cuBLASLt on the wide products,
 * so more rows take the general path. */
#define DEC_SMALL_ROWS 1

static int use_small(const cu_decoder *cd, int64_t M) {
    const cu_session *cs = cd->cs;
    const cu_dims *d = &cs->d;
    return cd->small && M <= DEC_SMALL_ROWS &&
           hlk_gemv_supported(d->dt, M, (int)(d->F > d->D ? d->F : d->D), cs->hbuf, d->F, cs->lw[0].wdown);
}

/* Block copies (copy-on-write) of every layer, keys and values. */
static hl_status do_copies(cu_decoder *cd, const hl_kv_copy *cp, int n) {
    cu_session *cs = cd->cs;
    const size_t e = cs->d.esz, blk = (size_t)cd->bs * cs->d.Dkv * e, layer = cd->layer_elems * e;
    for (int i = 0; i < n; i++)
        HL_TRY(hlk_kv_copy_block(cs->st, cd->kpool, cd->vpool, layer, blk, (int)cs->d.L, cp[i].src, cp[i].dst));
    return HL_OK;
}

/* The device work of one call after the inputs are on the device: embedding, blocks, final norm,
 * the logits of the wanted rows (chunks of LC rows) and the arg-max. With `graph` set this is
 * being captured into a CUDA graph: then rows <= LC (one chunk, no host synchronisation) and
 * nothing goes to the host here. */
static hl_status enqueue_forward(cu_decoder *cd, const dcall *fc, int all_logits, float *logits, int argmax) {
    cu_session *cs = cd->cs;
    const cu_dims *dm = &cs->d;
    const int B = fc->B, Tq = fc->Tq;
    const int64_t M = fc->M, D = dm->D, V = dm->V;
    cu_prof_mark(cs, CU_P_ELEM);
    HL_TRY(hlk_embed(cs->st, cs->xs, cs->embed, dm->dt, fc->dev.tok, M, (int)D));
    const int small = use_small(cd, M);
    for (int l = 0; l < dm->L; l++)
        HL_TRY(small ? layer_forward_small(cd, fc, l) : layer_forward(cd, fc, l));
    void *xL = at(cs, cs->xs, (int64_t)(dm->L & 1) * dm->M * D);
    /* rows whose logits are wanted: all, or the last of each sequence */
    int64_t rows = all_logits ? M : B;
    const void *src = xL;
    if (!all_logits && Tq != 1) {
        HL_TRY(hlk_gather_rows(cs->st, cs->xn, xL, fc->dev.last, B, (int)D, dm->dt));
        src = cs->xn;
    }
    /* one-row path: the final RMSNorm inside the lm_head product */
    const int small_head = small && rows <= dm->LC && hlk_gemv_supported(dm->dt, rows, (int)D, src, D, cs->lm_head);
    cu_prof_mark(cs, CU_P_ELEM);
    if (!small_head)
        HL_TRY(hlk_rmsnorm_fwd(cs->st, cs->xf, NULL, src, cs->norms + 2 * dm->L * D, rows, (int)D, cs->eps, dm->dt));
    for (int64_t c0 = 0; c0 < rows; c0 += dm->LC) {
        int64_t nc = rows - c0 < dm->LC ? rows - c0 : dm->LC;
        cu_prof_mark(cs, CU_P_HEAD);
        if (small_head) {
            hlk_gemv g = small_product(cd, fc, V, (int)D, src, D, cs->norms + 2 * dm->L * D, cs->lm_head, cs->logits, V);
            g.M = (int)nc;
            g.y_f32 = 1;
            HL_TRY(hlk_gemv_run(cs->st, &g));
        } else {
            hl_cu_mat A = {at(cs, cs->xf, c0 * D), dm->dt, D, 0}, Bm = {cs->lm_head, dm->dt, D, 1};
            HL_TRY(hl_cu_gemm_run(cs->gemm, cs->st, nc, V, D, 1.0f, A, Bm, 0.0f, NULL, cs->logits, HL_DTYPE_F32, V));
        }
        if (logits)
            CU_TRY(cudaMemcpyAsync(logits + c0 * V, cs->logits, (size_t)(nc * V) * sizeof(float),
                                   cudaMemcpyDeviceToHost, cs->st));
        if (argmax && !all_logits) /* every row of the chunk is a last row */
            HL_TRY(hlk_argmax(cs->st, cs->logits, V, nc, (int)V, cd->d_idx + c0, cd->d_val + c0));
        for (int64_t r = c0; argmax && all_logits && r < c0 + nc; r++)
            if (r % Tq == Tq - 1) /* sequence r / Tq's last row */
                HL_TRY(hlk_argmax(cs->st, cs->logits + (r - c0) * V, V, 1, (int)V, cd->d_idx + r / Tq,
                                  cd->d_val + r / Tq));
        if (c0 + nc < rows)
            CU_TRY(cudaStreamSynchronize(cs->st)); /* the chunk buffer is reused */
    }
    return HL_OK;
}

/* Greedy decode steps (one new row per sequence, ids only) replay a CUDA graph of
 * enqueue_forward: every input sits in device buffers at fixed addresses (ids, positions, pool
 * rows, block tables, lengths), so a graph depends only on (B, n_split, chunk). Several hundred
 * launches per step become one, which matters most at small batches. HL_CUDA_GRAPHS=0 turns
 * this off; a capture that fails turns it off for the decoder's life (eager launches instead). */
static hl_status step_graph(cu_decoder *cd, const dcall *fc, int *used) {
    cu_session *cs = cd->cs;
    *used = 0;
    if (cd->graphs_off || fc->B > cd->cs->d.LC || cs->prof) /* profiled: events need eager launches */
        return HL_OK;
    cu_graph *g = NULL;
    for (int i = 0; i < CU_GRAPHS; i++)
        if (cd->graphs[i].exec && cd->graphs[i].B == fc->B && cd->graphs[i].n_split == fc->n_split &&
            cd->graphs[i].chunk == fc->chunk && cd->graphs[i].n_groups == fc->n_groups && cd->graphs[i].npc == fc->npc)
            g = &cd->graphs[i];
    if (!g) {
        /* least recently used slot */
        g = &cd->graphs[0];
        for (int i = 1; i < CU_GRAPHS; i++)
            if (cd->graphs[i].last_use < g->last_use)
                g = &cd->graphs[i];
        if (g->exec)
            cudaGraphExecDestroy(g->exec);
        memset(g, 0, sizeof *g);
        cudaGraph_t graph = NULL;
        CU_TRY(cudaStreamBeginCapture(cs->st, cudaStreamCaptureModeThreadLocal));
        hl_status st = enqueue_forward(cd, fc, 0, NULL, 1);
        cudaError_t e = cudaStreamEndCapture(cs->st, &graph);
        cudaGraphExec_t exec = NULL;
        if (st == HL_OK && e == cudaSuccess)
            e = cudaGraphInstantiate(&exec, graph, 0);
        if (graph)
            cudaGraphDestroy(graph);
        if (st != HL_OK || e != cudaSuccess) {
            (void)cudaGetLastError(); /* clear the capture's error; the eager path runs instead */
            cd->graphs_off = 1;
            return HL_OK;
        }
        g->exec = exec;
        g->B = fc->B, g->n_split = fc->n_split, g->chunk = fc->chunk;
        g->n_groups = fc->n_groups, g->npc = fc->npc;
    }
    g->last_use = ++cd->graph_clock;
    CU_TRY(cudaGraphLaunch(g->exec, cs->st));
    *used = 1;
    return HL_OK;
}

/* Decode rows whose slots hold the same first cache blocks share a prefix (a task's few-shot
 * prompt): group them, and let hlk_prefix_attn read those blocks once per group. A group needs
 * two rows and at least one prefix chunk of shared positions; its shared span ends at the first
 * block where the members' tables differ (copy-on-write makes every block a row has written past
 * the shared prompt its own) and before every member's newest position. Fills start/pre_n for
 * every row and the group arrays; the group count and chunk count are rounded up (empty groups,
 * chunks past plen: no work) so decode-step graphs see few distinct shapes. Returns the longest
 * span left to the per-row kernel. */
static int prefix_groups(cu_decoder *cd, dec_ints *h, int B, int R, dcall *fc) {
    const hl_kv_pages *kp = &cd->kp;
    int ng = 0, nm = 0, npc = 0, sfx = 0;
    for (int b = 0; b < B; b++)
        h->start[b] = -1; /* not yet placed */
    for (int b = 0; b < B; b++) {
        if (h->start[b] >= 0)
            continue;
        const int sb = h->slot[b];
        const int32_t *tb = hl_kv_table(kp, sb);
        int first_nm = nm, common = kp->n_table[sb], minlen = h->len[b];
        h->members[nm++] = b;
        h->start[b] = 0;
        for (int c = b + 1; c < B; c++) {
            if (h->start[c] >= 0)
                continue;
            const int32_t *tc = hl_kv_table(kp, h->slot[c]);
            if (kp->n_table[h->slot[c]] < 1 || kp->n_table[sb] < 1 || tc[0] != tb[0])
                continue;
            int k = 0;
            while (k < common && k < kp->n_table[h->slot[c]] && tc[k] == tb[k])
                k++;
            common = k;
            minlen = h->len[c] < minlen ? h->len[c] : minlen;
            h->members[nm++] = c;
            h->start[c] = 0;
        }
        int G = nm - first_nm;
        int P = common * cd->bs;
        P = P < minlen - 1 ? P : minlen - 1;
        if (G < 2 || P < HLK_PREFIX_CHUNK) {
            nm = first_nm; /* no group: the rows stay with the per-row kernel alone */
            for (int i = 0; i < G; i++) {
                int r = h->members[first_nm + i];
                h->pre_n[r] = 0;
                h->start[r] = 0;
                sfx = h->len[r] > sfx ? h->len[r] : sfx;
            }
            continue; /* placed, without a group (start 0) */
        }
        const int nc = (P + HLK_PREFIX_CHUNK - 1) / HLK_PREFIX_CHUNK;
        h->g_first[ng] = first_nm;
        h->g_count[ng] = G;
        h->g_len[ng] = P;
        h->g_slot[ng] = sb;
        ng++;
        npc = nc > npc ? nc : npc;
        for (int i = 0; i < G; i++) {
            int r = h->members[first_nm + i];
            h->start[r] = P;
            h->pre_n[r] = nc;
            sfx = h->len[r] - P > sfx ? h->len[r] - P : sfx;
        }
    }
    if (ng == 0) {
        fc->n_groups = fc->npc = 0;
        for (int b = 0; b < B; b++)
            h->start[b] = 0;
        return sfx;
    }
    int ngp = (ng + 3) / 4 * 4, npcp = (npc + 3) / 4 * 4;
    ngp = ngp > R ? R : ngp;
    npcp = npcp > cd->npc_max ? cd->npc_max : npcp;
    for (int g = ng; g < ngp; g++) { /* padding groups: no members */
        h->g_first[g] = 0;
        h->g_count[g] = 0;
        h->g_len[g] = 0;
        h->g_slot[g] = 0;
    }
    fc->n_groups = ngp;
    fc->npc = npcp;
    return sfx;
}

/* One call: B sequences, sequence b with n_new[b] new tokens (rows off[b] .. of the call). */
static hl_status forward_core(hl_decoder *d, const int32_t *tokens, int B, const int *n_new, int Tq, const int *pos0,
                              const int *slot, float *logits, int all_logits, int32_t *argmax) {
    cu_decoder *cd = d->impl;
    cu_session *cs = cd->cs;
    const cu_dims *dm = &cs->d;
    const int R = d->max_rows;
    CU_TRY(cudaSetDevice(cs->dev));
    /* cache blocks for the new positions (copies first: a shared block is copied before the write) */
    dec_ints h = ints_at(cd->h_ints, R, d->slots, cd->max_blocks);
    CU_TRY(cudaStreamSynchronize(cs->st)); /* the staging buffer is free again */
    int maxlen = 0;
    int64_t M = 0;
    for (int b = 0; b < B; b++) {
        int s = slot ? slot[b] : b, p = pos0 ? pos0[b] : 0, nc = 0, nb = n_new[b];
        HL_TRY(hl_kv_prepare(&cd->kp, s, p, nb, cd->copies, &nc));
        HL_TRY(do_copies(cd, cd->copies, nc));
        const int32_t *tab = hl_kv_table(&cd->kp, s);
        cd->h_off[b] = (int)M;
        for (int t = 0; t < nb; t++) {
            int64_t m = M + t;
            int q = p + t;
            h.tok[m] = tokens[m];
            h.pos[m] = q;
            h.rows[m] = tab[q / cd->bs] * cd->bs + q % cd->bs;
        }
        M += nb;
        h.slot[b] = s;
        h.len[b] = p + nb;
        h.last[b] = (int32_t)(M - 1);
        maxlen = p + nb > maxlen ? p + nb : maxlen;
    }
    memcpy(h.tables, cd->kp.table, (size_t)d->slots * cd->max_blocks * sizeof(int32_t));
    dcall fc;
    memset(&fc, 0, sizeof fc);
    int sfx_max = maxlen; /* the longest span the per-row decode kernel covers */
    if (Tq == 1 && cd->cascade)
        sfx_max = prefix_groups(cd, &h, B, R, &fc);
    CU_TRY(cudaMemcpyAsync(cd->d_ints, cd->h_ints, ints_count(R, d->slots, cd->max_blocks) * sizeof(int32_t),
                           cudaMemcpyHostToDevice, cs->st));
    fc.B = B, fc.Tq = Tq, fc.M = M, fc.pos0 = pos0, fc.slot = slot;
    fc.off = cd->h_off, fc.n = n_new;
    fc.dev = ints_at(cd->d_ints, R, d->slots, cd->max_blocks);
    if (Tq == 1) {
        /* chunks: enough blocks for the GPU; one chunk (the whole context) once the batch alone
         * fills it. Chunk sizes are rounded coarsely so decode graphs are seldom re-captured.
         * With the 16-bit kernel's residency known, no more blocks than it holds at once: one
         * block past a wave is a whole load-to-merge latency more (17 chunks a head of the 7B
         * shape, 544 blocks on 528 places, added 5 us a layer at batch 1 on the H200). */
        int64_t items = (int64_t)B * dm->H;
        int ns = cd->attn_wave > 0 ? (int)(cd->attn_wave / items) : (int)((cd->targ_blocks + items - 1) / items);
        maxlen = sfx_max;
        int most = (maxlen + cd->bs - 1) / cd->bs;
        ns = ns < 1 ? 1 : ns > most ? most : ns;
        while (ns > 1 && items * ns > cd->part_items)
            ns--;
        if (cd->attn_chunk > 0 && items * ((maxlen + cd->attn_chunk - 1) / cd->attn_chunk) <= cd->part_items) {
            fc.chunk = cd->attn_chunk; /* HL_CUDA_ATTN_CHUNK */
            fc.n_split = (maxlen + fc.chunk - 1) / fc.chunk;
        } else if (ns == 1) {
            fc.n_split = 1;
            fc.chunk = d->max_seq;
        } else {
            int chunk = (maxlen + ns - 1) / ns;
            chunk = (chunk + 63) / 64 * 64;
            fc.n_split = (maxlen + chunk - 1) / chunk;
            fc.chunk = chunk;
        }
    }
    int graphed = 0;
    if (Tq == 1 && !logits && argmax)
        HL_TRY(step_graph(cd, &fc, &graphed));
    if (!graphed)
        HL_TRY(enqueue_forward(cd, &fc, all_logits, logits, argmax != NULL));
    if (argmax) {
        CU_TRY(cudaMemcpyAsync(cd->h_idx, cd->d_idx, (size_t)B * sizeof(int32_t), cudaMemcpyDeviceToHost, cs->st));
        CU_TRY(cudaMemcpyAsync(cd->h_val, cd->d_val, (size_t)B * sizeof(float), cudaMemcpyDeviceToHost, cs->st));
    }
    CU_TRY(cudaStreamSynchronize(cs->st));
    cu_prof_flush(cs);
    if (argmax)
        for (int b = 0; b < B; b++) {
            if (!isfinite(cd->h_val[b]))
                return hl_fail(HL_ERR_NUMERIC, "the model produced non-finite logits during generation");
            argmax[b] = cd->h_idx[b];
        }
    return HL_OK;
}

hl_status cu_decoder_forward(hl_decoder *d, const int32_t *tokens, int B, int Tq, const int *pos0, const int *slot,
                             float *logits, int all_logits, int32_t *argmax) {
    cu_decoder *cd = d->impl;
    for (int b = 0; b < B; b++)
        cd->h_n[b] = Tq;
    return forward_core(d, tokens, B, cd->h_n, Tq, pos0, slot, logits, all_logits, argmax);
}

hl_status cu_decoder_forward_varlen(hl_decoder *d, const int32_t *tokens, int B, const int *n_new, const int *pos0,
                                    const int *slot, float *logits, int32_t *argmax) {
    int Tq = n_new[0];
    for (int b = 1; b < B; b++)
        if (n_new[b] != Tq)
            Tq = 0;
    return forward_core(d, tokens, B, n_new, Tq, pos0, slot, logits, 0, argmax);
}

int hl_cuda_decoder_profile(const hl_decoder *d, const char *const **names, double *ms, int reset) {
    const cu_decoder *cd = d->impl;
    return cd && cd->ses ? hl_cuda_profile(cd->ses, names, ms, reset) : 0;
}

hl_status cu_decoder_share_prefix(hl_decoder *d, int dst_slot, int src_slot, int n) {
    cu_decoder *cd = d->impl;
    return hl_kv_share(&cd->kp, dst_slot, src_slot, n);
}

hl_status cu_decoder_release(hl_decoder *d, int slot) {
    cu_decoder *cd = d->impl;
    hl_kv_release(&cd->kp, slot);
    return HL_OK;
}
