/* The CUDA KV-cache decoder against the CPU engine's, through the public seam (decoders and the
 * generator on hl_backend_open("cuda:0") and ("cpu")):
 *   1. stories260K f32 (HF dir): 256 greedy ids from BOS, one token per call (split-K decode
 *      attention), equal the golden story (docs/file-formats.md §7.1) — and the logits' arg-max equals
 *      the decoder's arg-max at every step;
 *   2. stories260K in bf16 (weights rounded in memory): 8 prompts of different lengths decoded
 *      together (prefill in chunks through the flash kernels, continuous batching), first 64
 *      greedy ids equal the CPU engine's on the same bf16 weights;
 *   3. the same prompts with prefix sharing on (shared blocks, copy-on-write) equal the run without;
 *   4. HydraLoRA (N=4, r=8, router per token, unmerged) on stories260K f32: greedy ids equal the CPU's;
 *   5. a plain LoRA merged into the weights (HL_CUDA_MERGE_LORA=1) gives the CPU's unmerged logits
 *      (f32, ≤ 1e-4 relative);
 *   6. temperature 1.0 / top-p 0.9 sampling (the host sampler on device logits) equals the CPU's ids;
 *   2b. the same with HL_CUDA_GRAPHS=0 (eager launches instead of decode-step graphs);
 *   7. hd-128 and hd-64 bf16 models (tensor-core prefill, shared-prefix decode attention): decoder
 *      logits vs the CPU engine's (bf16 tolerance) and vs the GPU's per-row decode attention
 *      (HL_CUDA_CASCADE=0), prefill then 16 decode steps of slots sharing a prefix.
 *   8. one sequence on those models with HydraLoRA on all seven targets (the fused one-row
 *      kernels, routing inside the products): vs the CPU, and each switch of that path
 *      (HL_CUDA_ROUTE, HL_CUDA_ATTN_WAVE, HL_CUDA_ATTN_MERGE, HL_CUDA_ATTN_ROPE = 0) vs the
 *      default; attention blocks of 192 positions (HL_CUDA_ATTN_CHUNK) vs the default.
 * Each case prints its diagnostics (first differing token and the two ids, worst logits error)
 * and the test keeps going; exit 1 when any failed, 77 ("skipped: no CUDA device") without a GPU. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/convert.h" /* hl_weight_rows_to_f32 */
#include "core/backend/backend.h"
#include "core/base/rng.h"
#include "core/base/tensor.h"
#include "core/eval/generate.h"
#include "core/model/model.h"
#include "tests/gpu/gpu_util.h"
#include "tests/unit/hl_stories_golden.h"
#include "tests/unit/hl_tiny_model.h"

static hl_backend *cpu_be, *cuda_be;

static const char *shared_dir(void) {
    const char *s = getenv("HL_SHARED");
    return s ? s : "../shared";
}

static void verdict(const char *what, int ok, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    printf("%-44s %s  %s\n", what, ok ? "PASS" : "FAIL", buf);
    if (ok)
        gpu_passed++;
    else
        gpu_failed++;
}

/* ---- 1. golden story ------------------------------------------------------------------------ */

static void golden(const hl_model *m) {
    const int steps = 256, V = m->cfg.vocab_size;
    hl_decoder *dec = NULL;
    if (hl_decoder_create(&dec, cuda_be, m, NULL, 1, steps, 1) != HL_OK) {
        verdict("golden story f32 (decoder)", 0, "create: %s", hl_last_error());
        return;
    }
    float *logits = malloc((size_t)V * sizeof(float));
    int32_t tok = 1, am = -1;
    int bad = -1, am_bad = -1, got_bad = -1, exp_bad = -1;
    hl_status st = HL_OK;
    for (int t = 0; t < steps && st == HL_OK; t++) {
        st = hl_decoder_forward(dec, &tok, 1, 1, &t, NULL, logits, 0, &am);
        int best = 0;
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[best])
                best = i;
        if (am != best && am_bad < 0)
            am_bad = t;
        tok = am;
        if (tok != hl_story_ids[t + 1] && bad < 0) {
            bad = t + 1;
            got_bad = tok;
            exp_bad = hl_story_ids[t + 1];
            tok = hl_story_ids[t + 1]; /* keep following the golden path for the remaining checks */
        }
    }
    if (st != HL_OK)
        verdict("golden story f32 (256 ids, decode kernel)", 0, "error: %s", hl_last_error());
    else
        verdict("golden story f32 (256 ids, decode kernel)", bad < 0, "first mismatch at %d (got %d, expected %d)", bad,
                got_bad, exp_bad);
    verdict("golden story: device arg-max = logits arg-max", st == HL_OK && am_bad < 0, "first difference at step %d",
            am_bad);
    free(logits);
    hl_decoder_free(dec);

    /* the same through the generator (prefill of BOS, then the loop) */
    hl_generator *g = NULL;
    hl_gen_params p;
    hl_gen_params_default(&p);
    p.max_new_tokens = 256;
    p.stop_on_bos = 0;
    p.stop_on_eos = 0;
    const int32_t bos = 1, *pr = &bos;
    int n1 = 1;
    hl_gen_result r;
    memset(&r, 0, sizeof r);
    st = hl_generator_create(&g, cuda_be, m, NULL, NULL);
    if (st == HL_OK)
        st = hl_generate_ids(g, &pr, &n1, 1, &p, &r);
    int gbad = -1;
    for (int i = 1; st == HL_OK && i <= 255 && i < r.n_prompt + r.n_generated; i++)
        if (r.ids[i] != hl_story_ids[i]) {
            gbad = i;
            break;
        }
    verdict("golden story f32 (generator)", st == HL_OK && gbad < 0 && r.n_generated >= 255,
            "first mismatch at %d, %d generated %s", gbad, r.n_generated, st ? hl_last_error() : "");
    hl_gen_result_free(&r);
    hl_generator_free(g);
}

/* ---- generation on both backends ------------------------------------------------------------ */

#define NPROMPT 8

typedef struct {
    int32_t *ids[NPROMPT];
    int n[NPROMPT];
} prompts_t;

/* 8 prompts: BOS + pieces of the golden story of different lengths; with `shared` the first 100
 * tokens are common to all (a few-shot prefix) and the rest differ. */
static void make_prompts(prompts_t *pp, int shared) {
    static const int lens[NPROMPT] = {1, 5, 17, 33, 64, 90, 130, 200};
    for (int i = 0; i < NPROMPT; i++) {
        int n = shared ? 100 + lens[i] % 50 + 1 : lens[i];
        pp->n[i] = n;
        pp->ids[i] = malloc((size_t)n * sizeof(int32_t));
        for (int t = 0; t < n; t++) {
            int src = shared && t >= 100 ? (t + 13 * i) % 256 : t % 256;
            pp->ids[i][t] = t == 0 ? 1 : hl_story_ids[src == 0 ? 1 : src];
        }
    }
}
static void free_prompts(prompts_t *pp) {
    for (int i = 0; i < NPROMPT; i++)
        free(pp->ids[i]);
}

/* Generates for the prompts on `be` through a stream (continuous batching, `slots` slots) or a
 * fixed list; results[NPROMPT]. */
typedef struct {
    const prompts_t *pp;
    int next;
    hl_gen_result *res;
} stream_ctx;

static hl_status s_next(void *ctx, int32_t **ids, int *n, long *tag, int *more) {
    stream_ctx *c = ctx;
    if (c->next >= NPROMPT) {
        *more = 0;
        return HL_OK;
    }
    int k = c->next++;
    *n = c->pp->n[k];
    *ids = malloc((size_t)*n * sizeof(int32_t));
    memcpy(*ids, c->pp->ids[k], (size_t)*n * sizeof(int32_t));
    *tag = k;
    *more = 1;
    return HL_OK;
}
static hl_status s_done(void *ctx, long tag, const hl_gen_result *r) {
    stream_ctx *c = ctx;
    hl_gen_result *d = &c->res[tag];
    memset(d, 0, sizeof *d);
    d->n_prompt = r->n_prompt;
    d->n_generated = r->n_generated;
    d->finish = r->finish;
    d->ids = malloc((size_t)(r->n_prompt + r->n_generated + 1) * sizeof(int32_t));
    memcpy(d->ids, r->ids, (size_t)(r->n_prompt + r->n_generated) * sizeof(int32_t));
    return HL_OK;
}

static hl_status gen_on(hl_backend *be, const hl_model *m, const hl_adapters *ad, const prompts_t *pp,
                        const hl_gen_params *p, int slots, hl_gen_result *res) {
    hl_generator *g = NULL;
    HL_TRY(hl_generator_create(&g, be, m, ad, NULL));
    stream_ctx c = {pp, 0, res};
    hl_gen_stream_opts o = {.slots = slots, .max_seq = 320, .continuous = 1};
    if (o.max_seq > m->cfg.max_seq_len)
        o.max_seq = m->cfg.max_seq_len;
    hl_status st = hl_generate_stream(g, &o, p, s_next, s_done, &c);
    long pre = 0, reu = 0;
    hl_generator_counts(g, &pre, &reu);
    if (p->share_prefix)
        printf("  (%s: %ld prompt tokens run, %ld reused)\n", be == cuda_be ? "cuda" : "cpu", pre, reu);
    hl_generator_free(g);
    return st;
}

/* The CPU engine's logits after ids[0, n) (last row), for judging a divergence. */
static hl_status cpu_last_logits(const hl_model *m, const hl_adapters *ad, const int32_t *ids, int n, float *out) {
    hl_decoder *d = NULL;
    HL_TRY(hl_decoder_create(&d, cpu_be, m, ad, 1, n + 1, n));
    int zero = 0;
    hl_status st = hl_decoder_forward(d, ids, 1, n, &zero, NULL, out, 0, NULL);
    hl_decoder_free(d);
    return st;
}

/* A divergence of greedy decoding between two runs is a near-tie when the CPU engine's logits at
 * that position put the two tokens within GEN_TIE of max|logit| of each other: 16-bit activations
 * round logits by about 2^-8 relative, so such a choice may go either way. */
#define GEN_TIE 1e-2

/* Compares the first `first` generated ids of every prompt (a: the reference run); a prompt that
 * differs is judged on the CPU engine's logits (model m, adapters ad) at its first difference.
 * Exact equality passes; with ties_ok, divergences that are all near-ties pass too (reported). */
static void compare_runs(const char *what, const hl_gen_result *a, const hl_gen_result *b, int first,
                         const hl_model *m, const hl_adapters *ad, int ties_ok) {
    int differ = 0, ties = 0;
    char detail[400] = "all equal";
    size_t dl = 0;
    const int V = m->cfg.vocab_size;
    float *lg = malloc((size_t)V * sizeof(float));
    for (int i = 0; i < NPROMPT; i++) {
        int na = a[i].n_generated, nb = b[i].n_generated, n = na < nb ? na : nb;
        n = n < first ? n : first;
        int d = -1;
        for (int t = 0; t < n; t++)
            if (a[i].ids[a[i].n_prompt + t] != b[i].ids[b[i].n_prompt + t]) {
                d = t;
                break;
            }
        if (d < 0 && n < first && na != nb)
            d = n;
        if (d < 0)
            continue;
        differ++;
        int ta = d < na ? a[i].ids[a[i].n_prompt + d] : -1, tb = d < nb ? b[i].ids[b[i].n_prompt + d] : -1;
        double margin = -1.0;
        if (ta >= 0 && tb >= 0 && lg && cpu_last_logits(m, ad, a[i].ids, a[i].n_prompt + d, lg) == HL_OK) {
            double mx = 0;
            for (int k = 0; k < V; k++)
                mx = fmax(mx, fabs(lg[k]));
            margin = fabs((double)lg[ta] - (double)lg[tb]) / (mx > 0 ? mx : 1);
        }
        int tie = margin >= 0 && margin <= GEN_TIE;
        ties += tie;
        if (dl < sizeof detail - 1)
            dl += (size_t)snprintf(detail + (differ == 1 ? 0 : dl), sizeof detail - (differ == 1 ? 0 : dl),
                                   "%sprompt %d (%d tokens): first difference at generated token %d (%d vs %d), cpu "
                                   "logit margin %.2g of max|logit|%s",
                                   differ == 1 ? "" : "; ", i, a[i].n_prompt, d, ta, tb, margin,
                                   tie ? " = near-tie" : "");
    }
    free(lg);
    int ok = differ == 0 || (ties_ok && ties == differ);
    char head[160];
    snprintf(head, sizeof head, "%d of %d prompts identical for %d tokens%s", NPROMPT - differ, NPROMPT, first,
             differ && ok ? " (the others diverge at near-ties)" : "");
    verdict(what, ok, "%s; %s", head, detail);
}

static void free_results(hl_gen_result *r) {
    for (int i = 0; i < NPROMPT; i++)
        hl_gen_result_free(&r[i]);
}

/* ---- 2/3. bf16 stories ------------------------------------------------------------------------ */

/* A copy of `src` whose weight matrices are rounded to bf16 (own buffers). */
typedef struct {
    hl_model m;
    void *bufs[512];
    int n;
} model16;

static hl_weight to_bf16(model16 *mm, const hl_weight *w) {
    size_t n = (size_t)(w->rows * w->cols);
    float *f = malloc(n * sizeof(float));
    uint16_t *h = malloc(n * sizeof(uint16_t));
    hl_weight_rows_to_f32(w, 0, w->rows, f);
    for (size_t i = 0; i < n; i++)
        h[i] = hl_f32_to_bf16(f[i]);
    free(f);
    mm->bufs[mm->n++] = h;
    hl_weight o = {HL_DTYPE_BF16, h, w->rows, w->cols};
    return o;
}

static void make_bf16(model16 *mm, const hl_model *src) {
    memset(mm, 0, sizeof *mm);
    mm->m.cfg = src->cfg;
    mm->m.dtype = HL_DTYPE_BF16;
    mm->m.tok_embed = to_bf16(mm, &src->tok_embed);
    mm->m.final_norm = src->final_norm;
    mm->m.lm_head = to_bf16(mm, &src->lm_head);
    mm->m.layers = calloc((size_t)src->cfg.n_layers, sizeof *mm->m.layers);
    for (int l = 0; l < src->cfg.n_layers; l++) {
        const hl_layer_weights *s = &src->layers[l];
        hl_layer_weights *d = &mm->m.layers[l];
        d->attn_norm = s->attn_norm;
        d->ffn_norm = s->ffn_norm;
        d->wq = to_bf16(mm, &s->wq);
        d->wk = to_bf16(mm, &s->wk);
        d->wv = to_bf16(mm, &s->wv);
        d->wo = to_bf16(mm, &s->wo);
        d->w_gate = to_bf16(mm, &s->w_gate);
        d->w_up = to_bf16(mm, &s->w_up);
        d->w_down = to_bf16(mm, &s->w_down);
    }
}
static void free_bf16(model16 *mm) {
    for (int i = 0; i < mm->n; i++)
        free(mm->bufs[i]);
    free(mm->m.layers);
}

static void bf16_cases(const hl_model *f32m) {
    model16 mm;
    make_bf16(&mm, f32m);
    prompts_t pp;
    make_prompts(&pp, 0);
    hl_gen_params p;
    hl_gen_params_default(&p);
    p.max_new_tokens = 64;
    p.stop_on_bos = 0;
    p.stop_on_eos = 0;
    p.prefill_chunk = 48; /* several chunks per long prompt: prefill over cached positions */
    hl_gen_result rc[NPROMPT], rg[NPROMPT], rs[NPROMPT];
    memset(rc, 0, sizeof rc), memset(rg, 0, sizeof rg), memset(rs, 0, sizeof rs);
    hl_status a = gen_on(cpu_be, &mm.m, NULL, &pp, &p, 3, rc);
    hl_status b = gen_on(cuda_be, &mm.m, NULL, &pp, &p, 3, rg);
    if (a || b)
        verdict("bf16 stories: 8 prompts x 64 ids", 0, "generation failed: %s", hl_last_error());
    else
        compare_runs("bf16 stories: 8 prompts x 64 ids (3 slots)", rc, rg, 64, &mm.m, NULL, 1);
    /* the same with eager launches (no decode-step graphs) */
    setenv("HL_CUDA_GRAPHS", "0", 1);
    b = gen_on(cuda_be, &mm.m, NULL, &pp, &p, 3, rs);
    unsetenv("HL_CUDA_GRAPHS");
    if (a || b)
        verdict("bf16 stories, no graphs", 0, "generation failed: %s", hl_last_error());
    else {
        compare_runs("bf16 stories: eager launches = cpu", rc, rs, 64, &mm.m, NULL, 1);
        compare_runs("bf16 stories: graphs = eager launches", rs, rg, 64, &mm.m, NULL, 0);
    }
    free_results(rc), free_results(rg), free_results(rs);
    free_prompts(&pp);

    /* prefix sharing: same ids with and without */
    make_prompts(&pp, 1);
    p.share_prefix = 0;
    a = gen_on(cuda_be, &mm.m, NULL, &pp, &p, 4, rg);
    p.share_prefix = 1;
    b = gen_on(cuda_be, &mm.m, NULL, &pp, &p, 4, rs);
    hl_status c = gen_on(cpu_be, &mm.m, NULL, &pp, &p, 4, rc);
    if (a || b || c)
        verdict("bf16 prefix sharing", 0, "generation failed: %s", hl_last_error());
    else {
        compare_runs("bf16 prefix sharing = no sharing (cuda)", rg, rs, 64, &mm.m, NULL, 1);
        compare_runs("bf16 prefix sharing: cuda = cpu", rc, rs, 64, &mm.m, NULL, 1);
    }
    free_results(rc), free_results(rg), free_results(rs);
    free_prompts(&pp);
    free_bf16(&mm);
}

/* ---- 4/5/6. adapters and sampling on f32 stories ----------------------------------------------- */

static void random_params(hl_adapters *ad, uint64_t seed, float scale) {
    hl_rng r;
    hl_rng_seed(&r, seed, HL_RNG_STREAM_USER);
    for (size_t i = 0; i < ad->n_params; i++)
        ad->params[i] = scale * (2.0f * hl_rng_uniform(&r) - 1.0f);
}

static void adapter_cases(const hl_model *m) {
    prompts_t pp;
    make_prompts(&pp, 1);
    hl_gen_params p;
    hl_gen_params_default(&p);
    p.max_new_tokens = 64;
    p.stop_on_bos = 0;
    p.stop_on_eos = 0;
    p.share_prefix = 1;
    hl_gen_result rc[NPROMPT], rg[NPROMPT];
    memset(rc, 0, sizeof rc), memset(rg, 0, sizeof rg);

    hl_adapter_config ac;
    memset(&ac, 0, sizeof ac);
    ac.variant = HL_VARIANT_HYDRA;
    ac.n_heads = 4;
    ac.r = 8;
    ac.alpha = 16.0f;
    ac.targets = HL_TARGET_GATE | HL_TARGET_UP | HL_TARGET_DOWN | HL_TARGET_Q | HL_TARGET_V;
    hl_adapters ad;
    if (hl_adapters_create(&ad, &m->cfg, &ac, 7) != HL_OK) {
        verdict("HydraLoRA adapters", 0, "create: %s", hl_last_error());
        free_prompts(&pp);
        return;
    }
    random_params(&ad, 11, 0.08f);
    hl_status a = gen_on(cpu_be, m, &ad, &pp, &p, 4, rc);
    hl_status b = gen_on(cuda_be, m, &ad, &pp, &p, 4, rg);
    if (a || b)
        verdict("HydraLoRA N=4 r=8 unmerged", 0, "generation failed: %s", hl_last_error());
    else
        compare_runs("HydraLoRA N=4 r=8 unmerged (f32, shared)", rc, rg, 64, m, &ad, 0);
    free_results(rc), free_results(rg);

    /* sampling: the host sampler on the device's logits */
    hl_gen_params ps = p;
    ps.temperature = 1.0f;
    ps.top_p = 0.9f;
    ps.seed = 133742;
    a = gen_on(cpu_be, m, &ad, &pp, &ps, 4, rc);
    b = gen_on(cuda_be, m, &ad, &pp, &ps, 4, rg);
    if (a || b)
        verdict("sampling t=1 top-p 0.9", 0, "generation failed: %s", hl_last_error());
    else
        compare_runs("sampling t=1.0 top-p 0.9 seed 133742", rc, rg, 64, m, &ad, 0);
    free_results(rc), free_results(rg);
    hl_adapters_free(&ad);

    /* a plain LoRA merged on the GPU vs unmerged on the CPU: logits of one prefill + 8 steps */
    ac.variant = HL_VARIANT_LORA;
    ac.n_heads = 1;
    if (hl_adapters_create(&ad, &m->cfg, &ac, 9) != HL_OK) {
        verdict("LoRA merged", 0, "create: %s", hl_last_error());
        free_prompts(&pp);
        return;
    }
    random_params(&ad, 12, 0.08f);
    setenv("HL_CUDA_MERGE_LORA", "1", 1);
    hl_decoder *dg = NULL, *dc = NULL;
    hl_status st = hl_decoder_create(&dg, cuda_be, m, &ad, 1, 128, 64);
    unsetenv("HL_CUDA_MERGE_LORA");
    if (st == HL_OK)
        st = hl_decoder_create(&dc, cpu_be, m, &ad, 1, 128, 64);
    const int V = m->cfg.vocab_size;
    float *lg = malloc((size_t)V * 4), *lc = malloc((size_t)V * 4);
    double worst = 0.0;
    int32_t tok = 1;
    for (int step = 0; step < 9 && st == HL_OK; step++) {
        int pos = step == 0 ? 0 : 40 + step - 1, n = step == 0 ? 40 : 1; /* the first 40 of prompt 3 */
        const int32_t *ids = step == 0 ? pp.ids[3] : &tok;
        st = hl_decoder_forward(dg, ids, 1, n, &pos, NULL, lg, 0, NULL);
        if (st == HL_OK)
            st = hl_decoder_forward(dc, ids, 1, n, &pos, NULL, lc, 0, NULL);
        double mx = 0, den = 0;
        for (int i = 0; i < V; i++) {
            mx = fmax(mx, fabs(lg[i] - lc[i]));
            den = fmax(den, fabs(lc[i]));
        }
        worst = fmax(worst, mx / (den > 0 ? den : 1));
        tok = hl_story_ids[1 + step];
    }
    verdict("plain LoRA merged (cuda) vs unmerged (cpu)", st == HL_OK && worst <= 1e-4,
            "worst logits max|d|/max|ref| %.3g (tolerance 1e-4) %s", worst, st ? hl_last_error() : "");
    free(lg), free(lc);
    hl_decoder_free(dg), hl_decoder_free(dc);
    hl_adapters_free(&ad);
    free_prompts(&pp);
}

/* ---- 7. hd 64/128 bf16 models: logits ------------------------------------------------------- */

/* Slot 0 prefills P0 random tokens (chunks of 100); slots 1.. share its first `share` positions
 * and prefill their own 30 tokens; then 16 decode steps of every slot together. Writes the last
 * logits of every step ([(1 + 16) * ns * V] floats, row of slot k at step t: (t * ns + k) * V)
 * and returns the status. The decode steps take the shared-prefix attention on a GPU when the
 * shape allows it (16-bit, hd 64/128, a group of >= 2 rows sharing >= 64 positions). */
static hl_status logits_trace(hl_backend *be, const hl_model *m, const hl_adapters *ad, int ns, int P0, int share,
                              float *out) {
    const int V = m->cfg.vocab_size;
    hl_decoder *d = NULL;
    HL_TRY(hl_decoder_create(&d, be, m, ad, ns, 400, 160));
    hl_rng r;
    hl_rng_seed(&r, 99, HL_RNG_STREAM_USER);
    int32_t ids[400];
    for (int i = 0; i < 400; i++)
        ids[i] = (int32_t)(hl_rng_uniform(&r) * V) % V;
    hl_status st = HL_OK;
    int zero = 0;
    for (int off = 0; off < P0 && st == HL_OK; off += 100) {
        int n = P0 - off < 100 ? P0 - off : 100;
        st = hl_decoder_forward(d, ids + off, 1, n, &off, &zero, out, 0, NULL);
    }
    int len[16];
    len[0] = P0;
    for (int k = 1; k < ns && st == HL_OK; k++) {
        st = hl_decoder_share_prefix(d, k, 0, share);
        int32_t own[30];
        for (int i = 0; i < 30; i++)
            own[i] = (ids[share + i] + 7 * k) % V;
        if (st == HL_OK)
            st = hl_decoder_forward(d, own, 1, 30, &share, &k, out + (size_t)k * V, 0, NULL);
        len[k] = share + 30;
    }
    for (int step = 0; step < 16 && st == HL_OK; step++) {
        int32_t nt[16];
        int pos[16], sl[16];
        for (int k = 0; k < ns; k++) {
            nt[k] = (int32_t)((step * 7 + k * 3) % V);
            pos[k] = len[k] + step;
            sl[k] = k;
        }
        st = hl_decoder_forward(d, nt, ns, 1, pos, sl, out + (size_t)(step + 1) * ns * V, 0, NULL);
    }
    hl_decoder_free(d);
    return st;
}

static void compare_trace(const char *what, const float *got, const float *ref, int ns, int V, double tol) {
    double worst = 0.0;
    int top1 = 0, n = 0;
    for (int t = 0; t < 17; t++)
        for (int k = 0; k < ns; k++) {
            const float *g = got + ((size_t)t * ns + k) * V, *c = ref + ((size_t)t * ns + k) * V;
            if (t == 0 && k > 0 && 0)
                continue;
            double mx = 0, den = 0;
            int ag = 0, ac = 0;
            for (int i = 0; i < V; i++) {
                mx = fmax(mx, fabs(g[i] - c[i]));
                den = fmax(den, fabs(c[i]));
                ag = g[i] > g[ag] ? i : ag;
                ac = c[i] > c[ac] ? i : ac;
            }
            worst = fmax(worst, mx / (den > 0 ? den : 1));
            top1 += ag == ac;
            n++;
        }
    verdict(what, worst <= tol, "worst max|d|/max|ref| %.3g (tolerance %.0e), top-1 agree %d/%d", worst, tol, top1, n);
}

/* A tiny bf16 model (dim 256, 2 layers, head size hd) with HydraLoRA (N = 4, r = 8) on `targets`. */
static int tiny_setup(int hd, unsigned targets, hl_tiny_model *tm, hl_adapters *ad, hl_llama_config *c) {
    memset(c, 0, sizeof *c);
    c->dim = 256, c->hidden_dim = 512, c->n_layers = 2, c->n_heads = 256 / hd, c->n_kv_heads = 256 / hd / (hd == 64 ? 2 : 1);
    c->head_dim = hd;
    c->vocab_size = 300, c->max_seq_len = 512, c->rms_norm_eps = 1e-5f, c->rope_theta = 10000.0f;
    c->bos_id = 1, c->eos_id = 2;
    hl_tiny_model_init(tm, c, HL_DTYPE_BF16, 5);
    hl_adapter_config ac;
    memset(&ac, 0, sizeof ac);
    ac.variant = HL_VARIANT_HYDRA;
    ac.n_heads = 4;
    ac.r = 8;
    ac.alpha = 16.0f;
    ac.targets = targets;
    if (hl_adapters_create(ad, c, &ac, 3) != HL_OK) {
        verdict("tiny bf16 adapters", 0, "%s", hl_last_error());
        hl_tiny_model_free(tm);
        return 0;
    }
    random_params(ad, 21, 0.05f);
    return 1;
}

static void tiny_logits(int hd, int ns, int P0, int share) {
    hl_llama_config c;
    hl_tiny_model tm;
    hl_adapters ad;
    char what[160];
    if (!tiny_setup(hd, HL_TARGET_GATE | HL_TARGET_UP | HL_TARGET_DOWN, &tm, &ad, &c))
        return;
    const size_t n = (size_t)17 * ns * c.vocab_size;
    float *gc = calloc(n, 4), *gg = calloc(n, 4), *ge = calloc(n, 4);
    hl_status a = logits_trace(cpu_be, &tm.m, &ad, ns, P0, share, gc);
    hl_status b = logits_trace(cuda_be, &tm.m, &ad, ns, P0, share, gg);
    setenv("HL_CUDA_CASCADE", "0", 1);
    hl_status e = logits_trace(cuda_be, &tm.m, &ad, ns, P0, share, ge);
    unsetenv("HL_CUDA_CASCADE");
    snprintf(what, sizeof what, "hd%d bf16 Hydra %d slots share %d: cuda vs cpu", hd, ns, share);
    if (a || b || e)
        verdict(what, 0, "failed: %s", hl_last_error());
    else {
        compare_trace(what, gg, gc, ns, c.vocab_size, 3e-2);
        snprintf(what, sizeof what, "hd%d: shared-prefix attention vs per-row (cuda)", hd);
        compare_trace(what, gg, ge, ns, c.vocab_size, 1e-2);
        snprintf(what, sizeof what, "hd%d: per-row decode attention vs cpu", hd);
        compare_trace(what, ge, gc, ns, c.vocab_size, 3e-2);
    }
    free(gc), free(gg), free(ge);
    hl_adapters_free(&ad);
    hl_tiny_model_free(&tm);
}

/* One sequence (decode steps of one row: the fused one-row kernels, split attention) with
 * HydraLoRA on all seven targets (three routed adapters over q/k/v's input): cuda vs cpu; then
 * each switch of the one-row path against the default on the GPU — routing as its own launch
 * (HL_CUDA_ROUTE=0: other summation order, bf16 tolerance), attention chunks from a fixed block
 * target (HL_CUDA_ATTN_WAVE=0: other chunks, bf16 tolerance), the attention merge as its own
 * launch (HL_CUDA_ATTN_MERGE=0) and RoPE with the cache write as its own launch
 * (HL_CUDA_ATTN_ROPE=0; both the same arithmetic, the same bits); and blocks of 192 positions
 * (HL_CUDA_ATTN_CHUNK=192: three pieces of 64 a block, where this small model's own chunks hold
 * one, as the 7B shape's hold two at about 1,000 positions: 9 chunks of 128 a head) vs the
 * default chunks (another merge order, bf16 tolerance). */
static void one_row_logits(int hd, int P0) {
    hl_llama_config c;
    hl_tiny_model tm;
    hl_adapters ad;
    char what[160];
    if (!tiny_setup(hd, (1u << HL_TARGET_COUNT) - 1, &tm, &ad, &c))
        return;
    const size_t n = (size_t)17 * c.vocab_size;
    float *gc = calloc(n, 4), *gg = calloc(n, 4), *gv = calloc(n, 4);
    hl_status a = logits_trace(cpu_be, &tm.m, &ad, 1, P0, 0, gc);
    hl_status b = logits_trace(cuda_be, &tm.m, &ad, 1, P0, 0, gg);
    snprintf(what, sizeof what, "hd%d bf16 Hydra x7, one row: cuda vs cpu", hd);
    if (a || b)
        verdict(what, 0, "failed: %s", hl_last_error());
    else
        compare_trace(what, gg, gc, 1, c.vocab_size, 3e-2);
    static const struct {
        const char *env;
        double tol;
    } sw[] = {{"HL_CUDA_ROUTE", 1e-2}, {"HL_CUDA_ATTN_WAVE", 1e-2}, {"HL_CUDA_ATTN_MERGE", 0.0},
              {"HL_CUDA_ATTN_ROPE", 0.0}};
    for (size_t i = 0; i < sizeof sw / sizeof sw[0] && !b; i++) {
        setenv(sw[i].env, "0", 1);
        hl_status e = logits_trace(cuda_be, &tm.m, &ad, 1, P0, 0, gv);
        unsetenv(sw[i].env);
        snprintf(what, sizeof what, "hd%d one row: %s=0 vs default", hd, sw[i].env);
        if (e)
            verdict(what, 0, "failed: %s", hl_last_error());
        else
            compare_trace(what, gv, gg, 1, c.vocab_size, sw[i].tol);
    }
    setenv("HL_CUDA_ATTN_CHUNK", "192", 1);
    hl_status e1 = b ? b : logits_trace(cuda_be, &tm.m, &ad, 1, P0, 0, gv);
    unsetenv("HL_CUDA_ATTN_CHUNK");
    snprintf(what, sizeof what, "hd%d one row: 192-position chunks vs default", hd);
    if (e1)
        verdict(what, 0, "failed: %s", hl_last_error());
    else
        compare_trace(what, gv, gg, 1, c.vocab_size, 1e-2);
    free(gc), free(gg), free(gv);
    hl_adapters_free(&ad);
    hl_tiny_model_free(&tm);
}

int main(void) {
    const char *dev = getenv("HL_GPU_TEST_SELFCHECK") ? "cpu" : "cuda:0";
    if (hl_backend_open(&cuda_be, dev) != HL_OK) {
        printf("skipped: no CUDA device (%s)\n", hl_last_error());
        return 77;
    }
    if (hl_backend_open(&cpu_be, "cpu") != HL_OK) {
        printf("cannot open the cpu backend: %s\n", hl_last_error());
        return 1;
    }
    hl_backend_set_threads(cpu_be, 4);
    char path[4096];
    snprintf(path, sizeof path, "%s/models/stories260K-hf", shared_dir());
    hl_model m;
    if (hl_model_load(&m, path) != HL_OK) {
        printf("cannot load %s: %s\n", path, hl_last_error());
        return 1;
    }
    golden(&m);
    bf16_cases(&m);
    adapter_cases(&m);
    tiny_logits(128, 2, 150, 120);
    tiny_logits(64, 5, 260, 200);
    tiny_logits(128, 12, 150, 130); /* more rows than the small-batch kernels take: the general products */
    one_row_logits(128, 300);
    one_row_logits(64, 170);
    hl_model_free(&m);
    hl_backend_close(cpu_be);
    hl_backend_close(cuda_be);
    return gpu_finish();
}
