/* Greedy decoding with continuous batching for BBH (see core/bbh_gen.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/bbh_gen.h"
#include "core/llama.h"

#define PREFILL_CHUNK 256 /* prompt tokens per forward call; bounds the scratch rows */

typedef struct {
    int active;
    long tag;
    int n_prompt;  /* prompt tokens (positions 0..n_prompt-1 are in the cache) */
    int n_gen;     /* generated tokens so far (EOS not counted) */
    int last_tok;  /* the newest generated token, not yet in the cache */
    int prev_id;   /* previous generated token for piece decoding (-1: none) */
    char *text;    /* incremental decode, only for finding stop strings */
    size_t len, cap;
    int32_t *ids;  /* generated ids [max_new]: the reported text is decoded from these */
    int ids_cap;
    int32_t *cached; /* prompt ids whose keys/values sit at positions [0, n_cached) of this slot */
    int n_cached;
} gen_slot;

struct bbh_gen {
    const hl_model *model;
    const hl_tokenizer *tok;
    hl_infer *inf;
    int slots, max_seq, vocab, eos;
    float *logits; /* [slots, vocab] */
    gen_slot *s;
    int *b_tok, *b_pos, *b_slot, *b_map; /* one decoding step's rows */
    long prefilled, reused; /* prompt tokens run through the model / taken from a slot's cache */
};

void bbh_gen_free(bbh_gen *g) {
    if (!g)
        return;
    hl_infer_free(g->inf);
    if (g->s)
        for (int i = 0; i < g->slots; i++) {
            free(g->s[i].text);
            free(g->s[i].ids);
            free(g->s[i].cached);
        }
    free(g->s);
    free(g->logits);
    free(g->b_tok);
    free(g->b_pos);
    free(g->b_slot);
    free(g->b_map);
    free(g);
}

long bbh_gen_prefilled(const bbh_gen *g) { return g->prefilled; }
long bbh_gen_reused(const bbh_gen *g) { return g->reused; }

size_t bbh_gen_bytes(const bbh_gen *g) {
    return hl_infer_bytes(g->inf) + (size_t)g->slots * (size_t)g->vocab * sizeof(float);
}

hl_status bbh_gen_create(bbh_gen **out, const hl_model *model, const hl_adapters *ad, const hl_tokenizer *tok,
                         int slots, int max_seq) {
    *out = NULL;
    if (slots < 1 || max_seq < 2)
        return hl_fail(HL_ERR_ARG, "generation needs at least 1 sequence and 2 positions (got %d, %d)", slots, max_seq);
    if (hl_tokenizer_vocab_size(tok) > model->cfg.vocab_size)
        return hl_fail(HL_ERR_SHAPE, "the tokenizer has %d pieces but the model only %d (wrong tokenizer for this "
                                     "model?)",
                       hl_tokenizer_vocab_size(tok), model->cfg.vocab_size);
    bbh_gen *g = calloc(1, sizeof *g);
    if (!g)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    g->model = model;
    g->tok = tok;
    g->slots = slots;
    g->max_seq = max_seq;
    g->vocab = model->cfg.vocab_size;
    g->eos = hl_tokenizer_eos_id(tok) >= 0 ? hl_tokenizer_eos_id(tok) : model->cfg.eos_id;
    int rows = slots > PREFILL_CHUNK ? slots : PREFILL_CHUNK;
    hl_status st = hl_infer_create(&g->inf, model, ad, slots, max_seq, rows);
    if (st != HL_OK) {
        bbh_gen_free(g);
        return st;
    }
    g->logits = malloc((size_t)slots * (size_t)g->vocab * sizeof(float));
    g->s = calloc((size_t)slots, sizeof *g->s);
    g->b_tok = malloc((size_t)slots * sizeof(int));
    g->b_pos = malloc((size_t)slots * sizeof(int));
    g->b_slot = malloc((size_t)slots * sizeof(int));
    g->b_map = malloc((size_t)slots * sizeof(int));
    if (!g->logits || !g->s || !g->b_tok || !g->b_pos || !g->b_slot || !g->b_map) {
        bbh_gen_free(g);
        return hl_fail(HL_ERR_NOMEM, "out of memory for %d decoding slots", slots);
    }
    *out = g;
    return HL_OK;
}

/* Greedy choice: the first index of the maximum (torch.argmax's tie rule). */
static hl_status argmax(const float *x, int n, int *out) {
    int best = 0;
    float bv = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > bv) {
            bv = x[i];
            best = i;
        }
    if (!isfinite(bv))
        return hl_fail(HL_ERR_NUMERIC, "the model produced non-finite logits during generation");
    *out = best;
    return HL_OK;
}

static int text_has_stop(const gen_slot *s, size_t added, const char *const *stop, int n_stop) {
    for (int k = 0; k < n_stop; k++) {
        size_t sl = strlen(stop[k]);
        if (sl == 0 || sl > s->len)
            continue;
        size_t from = s->len > added + sl - 1 ? s->len - added - (sl - 1) : 0;
        if (memmem(s->text + from, s->len - from, stop[k], sl))
            return 1;
    }
    return 0;
}

/* Account for a newly chosen token of slot i. Returns 1 when the sequence has finished
 * (and reports it), 0 when it continues. */
static hl_status emit(bbh_gen *g, int i, int t, int max_new, const char *const *stop, int n_stop,
                      bbh_gen_done_fn done, void *ctx, int *finished) {
    gen_slot *s = &g->s[i];
    *finished = 0;
    bbh_stop_reason why;
    if (t == g->eos) {
        why = BBH_STOP_EOS;
    } else {
        char piece[256];
        size_t k = hl_tokenizer_decode_piece(g->tok, s->prev_id, t, piece, sizeof piece);
        if (s->len + k + 1 > s->cap) {
            size_t nc = (s->cap ? s->cap * 2 : 1024) + k;
            char *p = realloc(s->text, nc);
            if (!p)
                return hl_fail(HL_ERR_NOMEM, "out of memory during generation");
            s->text = p;
            s->cap = nc;
        }
        memcpy(s->text + s->len, piece, k);
        s->len += k;
        s->text[s->len] = '\0';
        s->prev_id = t;
        if (s->n_gen >= s->ids_cap) {
            int nc = s->ids_cap ? s->ids_cap * 2 : 256;
            int32_t *p = realloc(s->ids, (size_t)nc * sizeof *p);
            if (!p)
                return hl_fail(HL_ERR_NOMEM, "out of memory during generation");
            s->ids = p;
            s->ids_cap = nc;
        }
        s->ids[s->n_gen] = t;
        s->n_gen++;
        s->last_tok = t;
        if (text_has_stop(s, k, stop, n_stop))
            why = BBH_STOP_STRING;
        else if (s->n_gen >= max_new)
            why = BBH_STOP_LENGTH;
        else if (s->n_prompt + s->n_gen - 1 >= g->max_seq) /* position of last_tok */
            why = BBH_STOP_CONTEXT;
        else
            return HL_OK;
    }
    s->active = 0;
    *finished = 1;
    /* The continuation decoded on its own, as SentencePiece / Hugging Face decode it (the
     * streamed pieces differ after a mid-text BOS, and in the first piece's space). */
    char *text = NULL;
    size_t len = 0;
    HL_TRY(hl_tokenizer_decode(g->tok, s->ids, (size_t)s->n_gen, &text, &len));
    hl_status st = done(ctx, s->tag, text ? text : "", len, s->n_gen, why);
    free(text);
    return st;
}

/* Put the next prompt into free slot i and run its prefill; the first token follows.
 * Keys and values at position p depend only on tokens 0..p, so positions the new prompt
 * shares with the slot's previous prompt (in BBH: the task description and the three
 * exemplars, most of the prompt) are kept, and only the rest is run. */
static hl_status fill_slot(bbh_gen *g, int i, int32_t *ids, int n, long tag, int max_new, const char *const *stop,
                           int n_stop, bbh_gen_done_fn done, void *ctx, volatile int *cancel) {
    gen_slot *s = &g->s[i];
    hl_status st = HL_OK;
    if (n < 1 || n > g->max_seq) {
        free(ids);
        return hl_fail(HL_ERR_RANGE, "a prompt of %d tokens does not fit a context of %d", n, g->max_seq);
    }
    int keep = 0;
    while (keep < s->n_cached && keep < n && s->cached[keep] == ids[keep])
        keep++;
    if (keep == n)
        keep = n - 1; /* the last prompt token must run to give the next-token logits */
    s->active = 1;
    s->tag = tag;
    s->n_prompt = n;
    s->n_gen = 0;
    s->prev_id = -1;
    s->len = 0;
    if (s->text)
        s->text[0] = '\0';
    free(s->cached);
    s->cached = ids; /* valid once the prefill below has run */
    s->n_cached = 0;
    for (int off = keep; off < n && st == HL_OK; off += PREFILL_CHUNK) {
        if (cancel && *cancel) {
            st = hl_fail(HL_ERR_CANCELLED, "evaluation cancelled");
            break;
        }
        int tq = n - off < PREFILL_CHUNK ? n - off : PREFILL_CHUNK;
        int pos0 = off, slot = i;
        st = hl_infer_forward(g->inf, ids + off, 1, tq, &pos0, &slot, g->logits, 0);
    }
    if (st != HL_OK) {
        s->active = 0;
        return st;
    }
    s->n_cached = n;
    g->prefilled += n - keep;
    g->reused += keep;
    int t = 0, fin;
    HL_TRY(argmax(g->logits, g->vocab, &t));
    return emit(g, i, t, max_new, stop, n_stop, done, ctx, &fin);
}

hl_status bbh_gen_run(bbh_gen *g, int max_new, const char *const *stop, int n_stop, bbh_gen_next_fn next,
                      bbh_gen_done_fn done, void *ctx, volatile int *cancel) {
    if (max_new < 1)
        return hl_fail(HL_ERR_ARG, "max new tokens must be at least 1");
    int more = 1;
    hl_status st = HL_OK;
    for (int i = 0; i < g->slots; i++)
        g->s[i].active = 0;
    for (;;) {
        /* refill free slots (a filled slot may finish at once, so loop until stable) */
        for (int i = 0; i < g->slots && more && st == HL_OK; i++) {
            while (!g->s[i].active && more) {
                int32_t *ids = NULL;
                int n = 0;
                long tag = 0;
                st = next(ctx, &ids, &n, &tag, &more);
                if (st != HL_OK || !more) {
                    free(ids);
                    break;
                }
                st = fill_slot(g, i, ids, n, tag, max_new, stop, n_stop, done, ctx, cancel);
                if (st != HL_OK)
                    break;
            }
        }
        if (st != HL_OK)
            break;
        int B = 0;
        for (int i = 0; i < g->slots; i++)
            if (g->s[i].active) {
                g->b_tok[B] = g->s[i].last_tok;
                g->b_pos[B] = g->s[i].n_prompt + g->s[i].n_gen - 1;
                g->b_slot[B] = i;
                g->b_map[B] = i;
                B++;
            }
        if (B == 0)
            break; /* nothing active and nothing more to fill */
        if (cancel && *cancel) {
            st = hl_fail(HL_ERR_CANCELLED, "evaluation cancelled");
            break;
        }
        st = hl_infer_forward(g->inf, g->b_tok, B, 1, g->b_pos, g->b_slot, g->logits, 0);
        if (st != HL_OK)
            break;
        for (int b = 0; b < B && st == HL_OK; b++) {
            int t = 0, fin;
            st = argmax(g->logits + (size_t)b * g->vocab, g->vocab, &t);
            if (st == HL_OK)
                st = emit(g, g->b_map[b], t, max_new, stop, n_stop, done, ctx, &fin);
        }
        if (st != HL_OK)
            break;
    }
    for (int i = 0; i < g->slots; i++)
        g->s[i].active = 0;
    return st;
}
