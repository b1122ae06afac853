/* The one generation path (see generate.h): cache slots on an hl_decoder, prompts from a
 * source (a fixed list, or a callback), a loop of "fill free slots, pick every pending token,
 * one forward over the running sequences".
 *
 * Order of work inside the loop matters for what callers see and is kept stable:
 *  - a fill step prefills every free slot it may fill (all of them for a fixed list or in
 *    static batches; any free one in continuous mode), each prompt's last position giving its
 *    first token's logits in the slot's row;
 *  - a pick step then takes every pending token in slot order (sampling, stop checks,
 *    streaming, finishing); a finished sequence is reported at once;
 *  - in continuous mode fill and pick repeat until no slot frees up, then one forward call runs
 *    the running sequences in slot order, row i for the i-th of them.
 * Rows written by a fill are only read by the pick that follows it, so a refill never
 * overwrites a pending row. */
#include "core/eval/generate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/gguf.h"

const char *hl_gen_finish_name(hl_gen_finish f) {
    switch (f) {
    case HL_GEN_RUNNING: return "running";
    case HL_GEN_EOS: return "eos";
    case HL_GEN_BOS: return "bos";
    case HL_GEN_STOP_STRING: return "stop";
    case HL_GEN_LENGTH: return "length";
    case HL_GEN_CONTEXT: return "context";
    case HL_GEN_CALLBACK: return "callback";
    case HL_GEN_CANCELLED: return "cancelled";
    }
    return "?";
}

void hl_gen_params_default(hl_gen_params *p) {
    memset(p, 0, sizeof *p);
    p->max_new_tokens = 256;
    p->temperature = 0.0f;
    p->top_p = 0.9f;
    p->top_k = 0;
    p->stop_on_eos = 1;
    p->eos_id = -1;
    p->stop_on_bos = 1;
    p->add_bos = 1;
    p->prefill_chunk = 128;
}

void hl_gen_result_free(hl_gen_result *r) {
    if (!r)
        return;
    free(r->ids);
    free(r->text);
    memset(r, 0, sizeof *r);
}

/* ---- generator -------------------------------------------------------------------------- */

#define GEN_GPU_ROWS 2048 /* prompt positions per batched-prefill call on a GPU */

struct hl_generator {
    hl_backend *be;
    const hl_model *model;
    const hl_adapters *ad;
    const hl_tokenizer *tok;
    hl_decoder *dec;
    int dec_slots, dec_seq, dec_rows;
    float *logits;   /* [dec_slots, vocab] */
    int32_t *argmax; /* [dec_slots] */
    void *work;      /* sampler scratch */
    long prefilled, reused;
    hl_compute compute; /* for every decoder this generator makes */
};

hl_status hl_generator_create(hl_generator **out, hl_backend *be, const hl_model *model, const hl_adapters *ad,
                              const hl_tokenizer *tok) {
    *out = NULL;
    if (!be || !model || !model->layers)
        return hl_fail(HL_ERR_ARG, "generation needs a device and a loaded model");
    if (tok)
        HL_TRY(hl_tokenizer_check_vocab(tok, model->cfg.vocab_size));
    hl_generator *g = calloc(1, sizeof *g);
    if (!g)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    g->be = be;
    g->model = model;
    g->ad = ad;
    g->tok = tok;
    g->work = malloc(hl_sample_work_bytes(model->cfg.vocab_size));
    if (!g->work) {
        free(g);
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    }
    *out = g;
    return HL_OK;
}

void hl_generator_free(hl_generator *g) {
    if (!g)
        return;
    hl_decoder_free(g->dec);
    free(g->logits);
    free(g->argmax);
    free(g->work);
    free(g);
}

size_t hl_generator_bytes(const hl_generator *g) {
    size_t n = hl_sample_work_bytes(g->model->cfg.vocab_size);
    if (g->dec)
        n += hl_decoder_bytes(g->dec) +
             (size_t)g->dec_slots * ((size_t)g->model->cfg.vocab_size * sizeof(float) + sizeof(int32_t));
    return n;
}

void hl_generator_cache_use(const hl_generator *g, size_t *peak_bytes, size_t *pool_bytes) {
    hl_decoder_cache_use(g->dec, peak_bytes, pool_bytes);
}

const struct hl_decoder *hl_generator_decoder(const hl_generator *g) { return g->dec; }

void hl_generator_counts(const hl_generator *g, long *prefilled, long *reused) {
    if (prefilled)
        *prefilled = g->prefilled;
    if (reused)
        *reused = g->reused;
}

hl_status hl_generator_set_compute(hl_generator *g, hl_compute c) {
    if (!g)
        return hl_fail(HL_ERR_ARG, "hl_generator_set_compute: no generator");
    if (g->dec)
        HL_TRY(hl_decoder_set_compute(g->dec, c));
    else if (hl_compute_name(c)[0] == '?')
        return hl_fail(HL_ERR_ARG, "unknown compute mode %d (auto, f32 or bf16)", (int)c);
    g->compute = c;
    return HL_OK;
}

/* Make sure the decoder holds `slots` sequences of `seq` positions and calls of `rows` rows;
 * a big enough one from an earlier call is reused. */
static hl_status ensure_decoder(hl_generator *g, int slots, int seq, int rows) {
    if (g->dec && g->dec_slots >= slots && g->dec_seq >= seq && g->dec_rows >= rows)
        return HL_OK;
    hl_decoder_free(g->dec);
    g->dec = NULL;
    free(g->logits);
    free(g->argmax);
    g->logits = malloc((size_t)slots * (size_t)g->model->cfg.vocab_size * sizeof(float));
    g->argmax = malloc((size_t)slots * sizeof *g->argmax);
    if (!g->logits || !g->argmax)
        return hl_fail(HL_ERR_NOMEM, "out of memory for %d logits rows", slots);
    HL_TRY(hl_decoder_create(&g->dec, g->be, g->model, g->ad, slots, seq, rows));
    HL_TRY(hl_decoder_set_compute(g->dec, g->compute));
    g->dec_slots = slots;
    g->dec_seq = seq;
    g->dec_rows = rows;
    return HL_OK;
}

/* ---- one sequence ------------------------------------------------------------------------ */

typedef struct {
    int busy;          /* holds a sequence (running, or finished and not yet reported) */
    int pending;       /* the logits/argmax of its next token are in row `row` */
    int row;
    long tag;
    int ordinal;       /* k for the k-th prompt: sampler stream and the on_token `seq` */
    int pos;           /* tokens in the cache */
    int prev;          /* previous token, for piece decoding */
    size_t emitted;    /* text bytes already streamed */
    size_t cap;        /* bytes allocated for r.text */
    hl_sampler_rng rng;
    hl_gen_result r;
    const int32_t *prompt; /* ids whose keys/values sit at positions [0, n_cached) of this slot */
    int n_cached;
    int fill_off, fill_n;  /* prompt positions [fill_off, fill_n) still to prefill (batched) */
    int32_t *owned;    /* the prompt when it came from a stream (freed on refill) */
} gen_slot;

static hl_status text_append(gen_slot *s, const char *p, size_t n) {
    hl_gen_result *r = &s->r;
    if (r->text_len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 256;
        while (cap < r->text_len + n + 1)
            cap *= 2;
        char *t = realloc(r->text, cap);
        if (!t)
            return hl_fail(HL_ERR_NOMEM, "out of memory");
        r->text = t;
        s->cap = cap;
    }
    memcpy(r->text + r->text_len, p, n);
    r->text_len += n;
    r->text[r->text_len] = '\0';
    return HL_OK;
}

/* Bytes at the end of the text that could still grow into a stop string: held back. */
static size_t stop_hold(const hl_gen_result *r, const hl_gen_params *p) {
    size_t hold = 0;
    for (int i = 0; i < p->n_stop; i++) {
        const char *s = p->stop[i];
        size_t sl = strlen(s);
        for (size_t k = sl > 1 ? sl - 1 : 0; k > hold; k--)
            if (k <= r->text_len && !memcmp(r->text + r->text_len - k, s, k)) {
                hold = k;
                break;
            }
    }
    return hold;
}

/* Stream text[emitted, upto) with `token`; returns non-zero if the callback asks to stop. */
static int stream(const hl_gen_params *p, gen_slot *s, int token, size_t upto) {
    int stop = 0;
    hl_gen_result *r = &s->r;
    if (p->on_token && (upto > s->emitted || token >= 0))
        stop = p->on_token(p->user, s->ordinal, token, r->text + s->emitted, upto > s->emitted ? upto - s->emitted : 0);
    if (upto > s->emitted)
        s->emitted = upto;
    return stop;
}

/* Take token `tok` for the sequence of slot s: record it, decode its text, check the stops.
 * *fin is RUNNING while the sequence goes on. `ctx` is the cache's positions per slot. */
static hl_status accept_token(hl_generator *g, const hl_gen_params *p, gen_slot *s, int tok, int ctx,
                              hl_gen_finish *fin) {
    const hl_llama_config *c = &g->model->cfg;
    hl_gen_result *r = &s->r;
    r->ids[r->n_prompt + r->n_generated++] = tok;
    *fin = HL_GEN_RUNNING;
    if (p->stop_on_eos && tok == (p->eos_id >= 0 ? p->eos_id : c->eos_id))
        *fin = HL_GEN_EOS;
    else if (p->stop_on_bos && tok == c->bos_id)
        *fin = HL_GEN_BOS;
    if (*fin != HL_GEN_RUNNING) {
        stream(p, s, -1, r->text_len); /* flush held-back text */
        return HL_OK;
    }
    size_t upto = r->text_len;
    if (g->tok) {
        char piece[1024];
        size_t before = r->text_len;
        size_t n = hl_tokenizer_decode_piece(g->tok, s->prev, tok, piece, sizeof piece);
        HL_TRY(text_append(s, piece, n));
        upto = r->text_len;
        if (p->n_stop > 0) {
            /* A stop string may start inside earlier text: search from where it could begin. */
            size_t found = (size_t)-1;
            for (int i = 0; i < p->n_stop; i++) {
                size_t sl = strlen(p->stop[i]);
                if (!sl)
                    continue;
                size_t from = before >= sl - 1 ? before - (sl - 1) : 0;
                const char *hit = memmem(r->text + from, r->text_len - from, p->stop[i], sl);
                if (hit && (size_t)(hit - r->text) < found)
                    found = (size_t)(hit - r->text);
            }
            if (found != (size_t)-1) {
                r->text_len = found;
                r->text[found] = '\0';
                if (s->emitted > found) /* cannot happen: a stop prefix is always held back */
                    s->emitted = found;
                stream(p, s, tok, found);
                *fin = HL_GEN_STOP_STRING;
                return HL_OK;
            }
            upto = r->text_len - stop_hold(r, p);
        }
    }
    s->prev = tok;
    if (stream(p, s, tok, upto)) {
        *fin = HL_GEN_CALLBACK;
        return HL_OK;
    }
    if (r->n_generated >= p->max_new_tokens)
        *fin = HL_GEN_LENGTH;
    else if (s->pos >= ctx) /* the new token would sit at position pos: no room */
        *fin = HL_GEN_CONTEXT;
    if (*fin != HL_GEN_RUNNING)
        stream(p, s, -1, r->text_len);
    return HL_OK;
}

/* ---- the loop ------------------------------------------------------------------------------ */

/* Where prompts come from and where finished sequences go. */
typedef struct {
    /* a fixed list (hl_generate_ids) ... */
    const int32_t *const *prompts;
    const int *n_ids;
    int n, next_index;
    hl_gen_result *results;
    /* ... or a stream */
    hl_gen_next_fn next;
    hl_gen_done_fn done;
    void *ctx;
    int more;
    int ordinal; /* prompts taken so far */
} gen_source;

typedef struct {
    hl_generator *g;
    const hl_gen_params *p;
    gen_source *src;
    gen_slot *slots;
    int n_slots;
    int seq;       /* cache positions per slot */
    int ctx;       /* the model's context */
    int chunk;     /* prompt tokens per prefill call */
    int greedy_ids;/* ask the decoder for argmax only (greedy, no logits callback) */
    int rows;      /* rows of one decoder call */
    int *b_tok, *b_pos, *b_slot;
    int32_t *v_tok, *v_argmax; /* batched prefill: [rows] ids, [slots] outputs */
    int *v_n, *v_idx;          /* [slots]: new tokens, slot of each sequence of the call */
    float *v_logits;           /* [slots, vocab] (not greedy) */
} gen_run;

static int cancelled(const hl_gen_params *p) { return p->cancel && *p->cancel; }

/* The next prompt, or *got = 0. */
static hl_status source_next(gen_source *src, const int32_t **ids, int *n, int32_t **owned, long *tag, int *got) {
    *got = 0;
    *owned = NULL;
    if (src->prompts) {
        if (src->next_index >= src->n)
            return HL_OK;
        *ids = src->prompts[src->next_index];
        *n = src->n_ids[src->next_index];
        *tag = src->next_index++;
        *got = 1;
        return HL_OK;
    }
    if (!src->more)
        return HL_OK;
    int32_t *p = NULL;
    int cnt = 0, more = 1;
    HL_TRY(src->next(src->ctx, &p, &cnt, tag, &more));
    if (!more) {
        free(p);
        src->more = 0;
        return HL_OK;
    }
    *ids = p;
    *owned = p;
    *n = cnt;
    *got = 1;
    return HL_OK;
}

static int source_empty(const gen_source *src) {
    return src->prompts ? src->next_index >= src->n : !src->more;
}

/* The finished sequence of slot s goes to its caller; the slot becomes free. */
static hl_status finish_slot(gen_run *run, gen_slot *s) {
    gen_source *src = run->src;
    hl_status st = HL_OK;
    s->busy = 0;
    s->pending = 0;
    if (src->results) {
        src->results[s->tag] = s->r; /* ownership moves to the caller's array */
        memset(&s->r, 0, sizeof s->r);
        s->cap = 0;
    } else {
        st = src->done(src->ctx, s->tag, &s->r);
    }
    return st;
}

/* Start prompt (ids, n) in free slot i: keys/values shared from the slot holding the longest
 * common prefix (share_prefix; the slot's own previous prompt first), the rest prefilled in
 * chunks; the last position's output becomes the slot's pending token. */
static hl_status prefill_pending(gen_run *run);

/* The slot (own slot first: no copy) whose computed keys/values share the longest prefix with
 * ids[0, n); with `pending`, prompts still waiting for their batched prefill count too. */
static int best_share(const gen_run *run, int i, const int32_t *ids, int n, int pending, int *from) {
    int keep = 0;
    *from = i;
    for (int k = 0; k < run->n_slots; k++) {
        const gen_slot *o = &run->slots[(i + k) % run->n_slots];
        int avail = o->n_cached;
        if (pending && o->fill_off < o->fill_n)
            avail = o->fill_n;
        int m = 0;
        while (m < avail && m < n && o->prompt[m] == ids[m])
            m++;
        if (m > keep) {
            keep = m;
            *from = (i + k) % run->n_slots;
        }
    }
    return keep;
}

/* Prompt positions a waiting prefill must offer beyond what is already computed before it is
 * worth running the waiting prefills first (so the new prompt can share them). */
#define GEN_SHARE_SLACK 64

static hl_status fill_slot(gen_run *run, int i, const int32_t *ids, int n, int32_t *owned, long tag) {
    hl_generator *g = run->g;
    const hl_gen_params *p = run->p;
    gen_slot *s = &run->slots[i];
    int keep = 0, from = i;
    if (p->share_prefix) {
        int from_p = i;
        keep = best_share(run, i, ids, n, 0, &from);
        /* a prompt waiting for its prefill would give a much longer prefix (e.g. a task's
         * few-shot prompt): run the waiting prefills now, then share */
        if (best_share(run, i, ids, n, 1, &from_p) > keep + GEN_SHARE_SLACK) {
            HL_TRY(prefill_pending(run));
            keep = best_share(run, i, ids, n, 0, &from);
        }
        if (keep == n)
            keep = n - 1; /* the last prompt token must run to give the next-token logits */
    }
    /* The slot's old prompt is replaced: nobody may share from it until the prefill is done. */
    free(s->owned);
    s->owned = owned;
    s->prompt = ids;
    s->n_cached = 0;
    if (keep > 0 && from != i)
        HL_TRY(hl_decoder_share_prefix(g->dec, i, from, keep));
    hl_gen_result *r = &s->r;
    char *text = r->text; /* the text buffer of the slot's previous sequence is reused */
    free(r->ids);
    memset(r, 0, sizeof *r);
    if (!text) {
        text = malloc(256);
        s->cap = text ? 256 : 0;
    }
    r->text = text;
    r->ids = malloc((size_t)(n + p->max_new_tokens + 1) * sizeof *r->ids);
    if (!r->ids || !r->text)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    r->text[0] = '\0';
    memcpy(r->ids, ids, (size_t)n * sizeof *r->ids);
    r->n_prompt = n;
    s->busy = 1;
    s->pending = 0;
    s->tag = tag;
    s->ordinal = run->src->ordinal++;
    s->prev = ids[n - 1];
    s->emitted = 0;
    hl_sampler_seed(&s->rng, p->seed, s->ordinal);
    /* the prefill itself runs batched with the other new prompts (prefill_pending) */
    s->fill_off = keep;
    s->fill_n = n;
    g->prefilled += n - keep;
    g->reused += keep;
    return HL_OK;
}

/* Prefill every slot with prompt positions waiting, several sequences per decoder call (pieces
 * of at most `chunk` positions each, at most `rows` positions per call), in slot order. A slot
 * whose prompt is complete gets its first token's logits/argmax in its row and is pending. */
static hl_status prefill_pending(gen_run *run) {
    hl_generator *g = run->g;
    const hl_gen_params *p = run->p;
    const int V = g->model->cfg.vocab_size;
    for (;;) {
        int B = 0, rows = 0;
        for (int i = 0; i < run->n_slots; i++) {
            gen_slot *s = &run->slots[i];
            if (s->fill_off >= s->fill_n)
                continue;
            int piece = s->fill_n - s->fill_off < run->chunk ? s->fill_n - s->fill_off : run->chunk;
            if (B > 0 && rows + piece > run->rows)
                continue; /* the next call takes it */
            if (piece > run->rows)
                piece = run->rows;
            memcpy(run->v_tok + rows, s->prompt + s->fill_off, (size_t)piece * sizeof(int32_t));
            run->v_n[B] = piece;
            run->b_pos[B] = s->fill_off;
            run->b_slot[B] = i;
            run->v_idx[B] = i;
            rows += piece;
            B++;
        }
        if (B == 0)
            return HL_OK;
        if (cancelled(p))
            return HL_ERR_CANCELLED;
        HL_TRY(hl_decoder_forward_varlen(g->dec, run->v_tok, B, run->v_n, run->b_pos, run->b_slot,
                                         run->greedy_ids ? NULL : run->v_logits,
                                         p->temperature > 0.0f ? NULL : run->v_argmax));
        for (int b = 0; b < B; b++) {
            int i = run->v_idx[b];
            gen_slot *s = &run->slots[i];
            s->fill_off += run->v_n[b];
            if (s->fill_off < s->fill_n)
                continue;
            if (!run->greedy_ids)
                memcpy(g->logits + (size_t)i * V, run->v_logits + (size_t)b * V, (size_t)V * sizeof(float));
            if (!(p->temperature > 0.0f))
                g->argmax[i] = run->v_argmax[b];
            s->n_cached = s->fill_n;
            s->pos = s->fill_n;
            s->pending = 1;
            s->row = i;
        }
    }
}

/* Pick the pending token of every slot in slot order; report the ones that finish. */
static hl_status pick_all(gen_run *run, int *freed) {
    hl_generator *g = run->g;
    const hl_gen_params *p = run->p;
    const int V = g->model->cfg.vocab_size;
    *freed = 0;
    for (int i = 0; i < run->n_slots; i++) {
        gen_slot *s = &run->slots[i];
        if (!s->pending)
            continue;
        s->pending = 0;
        int tok;
        if (p->temperature > 0.0f) {
            float *lg = g->logits + (size_t)s->row * V;
            if (p->on_logits)
                p->on_logits(p->user, s->ordinal, s->pos, lg, V);
            tok = hl_sample(lg, V, p->temperature, p->top_k, p->top_p, &s->rng, g->work);
        } else {
            if (p->on_logits)
                p->on_logits(p->user, s->ordinal, s->pos, g->logits + (size_t)s->row * V, V);
            tok = g->argmax[s->row];
        }
        hl_gen_finish fin;
        HL_TRY(accept_token(g, p, s, tok, run->seq, &fin));
        if (fin == HL_GEN_CONTEXT && run->seq < run->ctx)
            fin = HL_GEN_LENGTH; /* the cache was sized for max_new_tokens */
        s->r.finish = fin;
        if (fin != HL_GEN_RUNNING) {
            HL_TRY(finish_slot(run, s));
            (*freed)++;
        }
    }
    return HL_OK;
}

/* Fill free slots: any of them in continuous mode, else only when all are free. */
static hl_status fill_free(gen_run *run, int continuous) {
    int busy = 0;
    for (int i = 0; i < run->n_slots; i++)
        busy += run->slots[i].busy;
    if (busy && !continuous)
        return HL_OK;
    for (int i = 0; i < run->n_slots && !source_empty(run->src); i++) {
        if (run->slots[i].busy)
            continue;
        const int32_t *ids = NULL;
        int n = 0, got = 0;
        int32_t *owned = NULL;
        long tag = 0;
        HL_TRY(source_next(run->src, &ids, &n, &owned, &tag, &got));
        if (!got)
            break;
        if (n < 1 || n > run->seq) {
            free(owned);
            return hl_fail(HL_ERR_RANGE, "a prompt of %d tokens does not fit a context of %d", n, run->seq);
        }
        HL_TRY(fill_slot(run, i, ids, n, owned, tag));
    }
    return prefill_pending(run);
}

static hl_status run_loop(gen_run *run, int continuous) {
    hl_generator *g = run->g;
    const hl_gen_params *p = run->p;
    for (;;) {
        int freed;
        do {
            HL_TRY(fill_free(run, continuous));
            HL_TRY(pick_all(run, &freed));
        } while (continuous && freed && !source_empty(run->src));
        int B = 0;
        for (int i = 0; i < run->n_slots; i++) {
            gen_slot *s = &run->slots[i];
            if (!s->busy)
                continue;
            run->b_tok[B] = s->r.ids[s->r.n_prompt + s->r.n_generated - 1];
            run->b_pos[B] = s->pos;
            run->b_slot[B] = i;
            B++;
        }
        if (B == 0) {
            if (source_empty(run->src))
                return HL_OK;
            continue; /* static batches: the next batch */
        }
        if (cancelled(p))
            return HL_ERR_CANCELLED;
        HL_TRY(hl_decoder_forward(g->dec, run->b_tok, B, 1, run->b_pos, run->b_slot,
                                  run->greedy_ids ? NULL : g->logits, 0, p->temperature > 0.0f ? NULL : g->argmax));
        for (int b = 0; b < B; b++) {
            gen_slot *s = &run->slots[run->b_slot[b]];
            s->pos++;
            s->row = b;
            s->pending = 1;
        }
    }
}

static void run_free(gen_run *run) {
    for (int i = 0; run->slots && i < run->n_slots; i++) {
        hl_gen_result_free(&run->slots[i].r);
        free(run->slots[i].owned);
    }
    free(run->slots);
    free(run->b_tok);
    free(run->b_pos);
    free(run->b_slot);
    free(run->v_tok);
    free(run->v_argmax);
    free(run->v_n);
    free(run->v_idx);
    free(run->v_logits);
}

static hl_status run_init(gen_run *run, hl_generator *g, const hl_gen_params *p, gen_source *src, int slots, int seq,
                          int chunk) {
    memset(run, 0, sizeof *run);
    run->g = g;
    run->p = p;
    run->src = src;
    run->n_slots = slots;
    run->seq = seq;
    run->ctx = g->model->cfg.max_seq_len;
    run->chunk = chunk;
    run->greedy_ids = !(p->temperature > 0.0f) && !p->on_logits;
    run->slots = calloc((size_t)slots, sizeof *run->slots);
    run->b_tok = malloc((size_t)slots * sizeof(int));
    run->b_pos = malloc((size_t)slots * sizeof(int));
    run->b_slot = malloc((size_t)slots * sizeof(int));
    int rows = chunk > slots ? chunk : slots;
    /* A GPU prefills many prompts per call (batched prefill): give its calls room for several
     * prompt pieces; the CPU keeps the smaller scratch. */
    hl_backend_info info;
    if (hl_backend_get_info(g->be, &info) == HL_OK && info.is_gpu) {
        int64_t want = (int64_t)slots * chunk;
        want = want < GEN_GPU_ROWS ? want : GEN_GPU_ROWS;
        rows = want > rows ? (int)want : rows;
    }
    if (g->dec && g->dec_rows > rows)
        rows = g->dec_rows; /* a bigger decoder kept from an earlier call */
    run->rows = rows;
    run->v_tok = malloc((size_t)rows * sizeof(int32_t));
    run->v_argmax = malloc((size_t)slots * sizeof(int32_t));
    run->v_n = malloc((size_t)slots * sizeof(int));
    run->v_idx = malloc((size_t)slots * sizeof(int));
    if (!run->greedy_ids)
        run->v_logits = malloc((size_t)slots * (size_t)g->model->cfg.vocab_size * sizeof(float));
    if (!run->slots || !run->b_tok || !run->b_pos || !run->b_slot || !run->v_tok || !run->v_argmax || !run->v_n ||
        !run->v_idx || (!run->greedy_ids && !run->v_logits))
        return hl_fail(HL_ERR_NOMEM, "out of memory for %d decoding slots", slots);
    return ensure_decoder(g, slots, seq, rows);
}

static hl_status check_params(const hl_generator *g, const hl_gen_params *p) {
    if (p->max_new_tokens < 0)
        return hl_fail(HL_ERR_ARG, "max_new_tokens must be >= 0");
    if (p->n_stop > 0 && !g->tok)
        return hl_fail(HL_ERR_ARG, "stop strings need a tokenizer");
    return HL_OK;
}

hl_status hl_generate_ids(hl_generator *g, const int32_t *const *prompts, const int *n_ids, int n,
                          const hl_gen_params *params, hl_gen_result *results) {
    hl_gen_params defaults;
    hl_gen_params_default(&defaults);
    const hl_gen_params *p = params ? params : &defaults;
    const hl_llama_config *c = &g->model->cfg;
    const int V = c->vocab_size;
    if (n < 1)
        return hl_fail(HL_ERR_ARG, "nothing to generate (no prompts)");
    for (int b = 0; b < n; b++)
        memset(&results[b], 0, sizeof results[b]);
    HL_TRY(check_params(g, p));
    int ctx = c->max_seq_len, longest = 0;
    for (int b = 0; b < n; b++) {
        if (n_ids[b] < 1)
            return hl_fail(HL_ERR_ARG, "prompt %d is empty (it needs at least BOS)", b);
        if (n_ids[b] >= ctx)
            return hl_fail(HL_ERR_RANGE, "prompt %d has %d tokens; the model's context is %d", b, n_ids[b], ctx);
        for (int t = 0; t < n_ids[b]; t++)
            if (prompts[b][t] < 0 || prompts[b][t] >= V)
                return hl_fail(HL_ERR_RANGE, "prompt %d: token id %d outside the vocabulary of %d", b, prompts[b][t],
                               V);
        longest = n_ids[b] > longest ? n_ids[b] : longest;
    }
    if (p->max_new_tokens == 0) {
        for (int b = 0; b < n; b++) {
            hl_gen_result *r = &results[b];
            r->ids = malloc((size_t)(n_ids[b] + 1) * sizeof *r->ids);
            r->text = calloc(1, 1);
            if (!r->ids || !r->text)
                return hl_fail(HL_ERR_NOMEM, "out of memory");
            memcpy(r->ids, prompts[b], (size_t)n_ids[b] * sizeof *r->ids);
            r->n_prompt = n_ids[b];
            r->finish = HL_GEN_LENGTH;
        }
        return HL_OK;
    }
    int seq = longest + p->max_new_tokens;
    if (seq > ctx)
        seq = ctx;
    int chunk = p->prefill_chunk > 0 ? p->prefill_chunk : 128;
    if (chunk > longest)
        chunk = longest;
    gen_source src = {.prompts = prompts, .n_ids = n_ids, .n = n, .results = results};
    gen_run run;
    hl_status rc = run_init(&run, g, p, &src, n, seq, chunk);
    if (rc == HL_OK)
        rc = run_loop(&run, 0);
    /* Sequences still in a slot (an error or a cancel): their partial results go back too. */
    for (int i = 0; i < run.n_slots && run.slots; i++) {
        gen_slot *s = &run.slots[i];
        if (!s->busy)
            continue;
        if (rc == HL_ERR_CANCELLED)
            s->r.finish = HL_GEN_CANCELLED;
        results[s->tag] = s->r;
        memset(&s->r, 0, sizeof s->r);
        s->busy = 0;
    }
    /* Prompts never started (an error before their turn) still get their prompt ids. */
    for (int b = 0; b < n; b++) {
        hl_gen_result *r = &results[b];
        if (r->ids)
            continue;
        r->ids = malloc((size_t)(n_ids[b] + 1) * sizeof *r->ids);
        r->text = calloc(1, 1);
        if (r->ids)
            memcpy(r->ids, prompts[b], (size_t)n_ids[b] * sizeof *r->ids);
        r->n_prompt = n_ids[b];
        if (rc == HL_ERR_CANCELLED)
            r->finish = HL_GEN_CANCELLED;
    }
    run_free(&run);
    if (rc == HL_ERR_CANCELLED)
        hl_fail(HL_ERR_CANCELLED, "generation cancelled");
    return rc;
}

hl_status hl_generate_stream(hl_generator *g, const hl_gen_stream_opts *o, const hl_gen_params *params,
                             hl_gen_next_fn next, hl_gen_done_fn done, void *ctx) {
    hl_gen_params defaults;
    hl_gen_params_default(&defaults);
    const hl_gen_params *p = params ? params : &defaults;
    if (!o || !next || !done)
        return hl_fail(HL_ERR_ARG, "hl_generate_stream: missing argument");
    HL_TRY(check_params(g, p));
    if (p->max_new_tokens < 1)
        return hl_fail(HL_ERR_ARG, "max new tokens must be at least 1");
    if (o->slots < 1 || o->max_seq < 2)
        return hl_fail(HL_ERR_ARG, "generation needs at least 1 sequence and 2 positions (got %d, %d)", o->slots,
                       o->max_seq);
    int chunk = p->prefill_chunk > 0 ? p->prefill_chunk : 128;
    gen_source src = {.next = next, .done = done, .ctx = ctx, .more = 1};
    gen_run run;
    hl_status rc = run_init(&run, g, p, &src, o->slots, o->max_seq, chunk);
    if (rc == HL_OK)
        rc = run_loop(&run, o->continuous);
    run_free(&run);
    if (rc == HL_ERR_CANCELLED)
        hl_fail(HL_ERR_CANCELLED, "generation cancelled");
    return rc;
}

hl_status hl_generate(hl_generator *g, const char *const *prompts, int n, const hl_gen_params *params,
                      hl_gen_result *results) {
    hl_gen_params defaults;
    hl_gen_params_default(&defaults);
    const hl_gen_params *p = params ? params : &defaults;
    if (!g->tok)
        return hl_fail(HL_ERR_ARG, "text generation needs a tokenizer");
    if (n < 1)
        return hl_fail(HL_ERR_ARG, "nothing to generate (no prompts)");
    int32_t **ids = calloc((size_t)n, sizeof *ids);
    int *lens = calloc((size_t)n, sizeof *lens);
    hl_status rc = HL_OK;
    if (!ids || !lens)
        rc = hl_fail(HL_ERR_NOMEM, "out of memory");
    for (int b = 0; b < n && rc == HL_OK; b++) {
        size_t cnt = 0;
        const char *text = prompts[b] ? prompts[b] : "";
        rc = hl_tokenizer_encode(g->tok, text, strlen(text), p->add_bos, &ids[b], &cnt);
        lens[b] = (int)cnt;
    }
    if (rc == HL_OK)
        rc = hl_generate_ids(g, (const int32_t *const *)ids, lens, n, p, results);
    for (int b = 0; ids && b < n; b++)
        free(ids[b]);
    free(ids);
    free(lens);
    return rc;
}

hl_status hl_generate_load_tokenizer(hl_tokenizer **out, const hl_model *model, const char *model_path,
                                     const char *override) {
    *out = NULL;
    hl_status rc;
    if (override && *override) {
        rc = hl_tokenizer_load(out, override);
    } else {
        rc = hl_tokenizer_load_for_model(model_path, out);
        if (rc != HL_OK && model->vocab) {
            const hl_gguf_vocab *v = model->vocab;
            rc = hl_tokenizer_from_vocab(out, v->n, (const char *const *)v->tokens, v->scores, v->types, v->unk_id,
                                         v->bos_id, v->eos_id, 1, 1);
        }
    }
    if (rc != HL_OK)
        return rc;
    rc = hl_tokenizer_check_vocab(*out, model->cfg.vocab_size);
    if (rc != HL_OK) {
        hl_tokenizer_free(*out);
        *out = NULL;
    }
    return rc;
}
