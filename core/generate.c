/* KV-cache generation on hl_infer. See generate.h. */
#include "core/generate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gguf.h"
#include "core/llama.h"

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

/* ---- sampler (llama2.c run.c semantics) ---------------------------------------------- */

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

void hl_sampler_seed(hl_sampler_rng *r, uint64_t seed, int stream) {
    /* xorshift never leaves state 0, so 0 is replaced (llama2.c replaces it by the time). */
    uint64_t s = seed ? seed : 0x2545F4914F6CDD1Dull;
    if (stream > 0)
        s = splitmix64(s ^ splitmix64((uint64_t)stream));
    r->state = s ? s : 1;
}

uint32_t hl_sampler_u32(hl_sampler_rng *r) {
    r->state ^= r->state >> 12;
    r->state ^= r->state << 25;
    r->state ^= r->state >> 27;
    return (uint32_t)((r->state * 0x2545F4914F6CDD1Dull) >> 32);
}

float hl_sampler_f32(hl_sampler_rng *r) { return (float)(hl_sampler_u32(r) >> 8) / 16777216.0f; }

typedef struct {
    float prob;
    int index;
} prob_index;

/* Descending by probability, as llama2.c's compare(). */
static int cmp_prob_desc(const void *a, const void *b) {
    const prob_index *x = a, *y = b;
    if (x->prob > y->prob)
        return -1;
    if (x->prob < y->prob)
        return 1;
    return 0;
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

static void softmax_inplace(float *x, int n) {
    float mx = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > mx)
            mx = x[i];
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    for (int i = 0; i < n; i++)
        x[i] /= sum;
}

static int sample_mult(const float *p, int n, float coin) {
    float cdf = 0.0f;
    for (int i = 0; i < n; i++) {
        cdf += p[i];
        if (coin < cdf)
            return i;
    }
    return n - 1; /* rounding */
}

static int sample_topp(const float *p, int n, float topp, prob_index *work, float coin) {
    /* Tokens below (1 - p)/(n - 1) cannot be in the nucleus: drop them before sorting. */
    const float cutoff = (1.0f - topp) / (float)(n - 1);
    int n0 = 0;
    for (int i = 0; i < n; i++)
        if (p[i] >= cutoff) {
            work[n0].index = i;
            work[n0].prob = p[i];
            n0++;
        }
    qsort(work, (size_t)n0, sizeof *work, cmp_prob_desc);
    float cumulative = 0.0f;
    int last = n0 - 1;
    for (int i = 0; i < n0; i++) {
        cumulative += work[i].prob;
        if (cumulative > topp) {
            last = i;
            break;
        }
    }
    float r = coin * cumulative;
    float cdf = 0.0f;
    for (int i = 0; i <= last; i++) {
        cdf += work[i].prob;
        if (r < cdf)
            return work[i].index;
    }
    return work[last].index;
}

static int cmp_float_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x > y ? -1 : x < y;
}

int hl_sample(float *logits, int vocab, float temperature, int top_k, float top_p, hl_sampler_rng *rng,
              void *work) {
    if (!(temperature > 0.0f))
        return argmax(logits, vocab);
    for (int i = 0; i < vocab; i++)
        logits[i] /= temperature;
    if (top_k > 0 && top_k < vocab) {
        float *sorted = work;
        memcpy(sorted, logits, (size_t)vocab * sizeof(float));
        qsort(sorted, (size_t)vocab, sizeof(float), cmp_float_desc);
        float kth = sorted[top_k - 1];
        for (int i = 0; i < vocab; i++)
            if (logits[i] < kth)
                logits[i] = -INFINITY;
    }
    softmax_inplace(logits, vocab);
    float coin = hl_sampler_f32(rng);
    if (top_p <= 0.0f || top_p >= 1.0f)
        return sample_mult(logits, vocab, coin);
    return sample_topp(logits, vocab, top_p, work, coin);
}

/* ---- generator ------------------------------------------------------------------------- */

struct hl_generator {
    const hl_model *model;
    const hl_adapters *ad;
    const hl_tokenizer *tok;
    hl_infer *inf;
    int inf_slots, inf_seq, inf_rows;
    float *logits; /* [inf_slots, vocab] */
    void *work;    /* vocab × {float, int} */
};

hl_status hl_generator_create(hl_generator **out, const hl_model *model, const hl_adapters *ad,
                              const hl_tokenizer *tok) {
    *out = NULL;
    if (!model || !model->layers)
        return hl_fail(HL_ERR_ARG, "generation needs a loaded model");
    if (tok)
        HL_TRY(hl_tokenizer_check_vocab(tok, model->cfg.vocab_size));
    hl_generator *g = calloc(1, sizeof *g);
    if (!g)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    g->model = model;
    g->ad = ad;
    g->tok = tok;
    g->work = malloc((size_t)model->cfg.vocab_size * sizeof(prob_index));
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
    hl_infer_free(g->inf);
    free(g->logits);
    free(g->work);
    free(g);
}

size_t hl_generator_bytes(const hl_generator *g) {
    size_t n = (size_t)g->model->cfg.vocab_size * sizeof(prob_index);
    if (g->inf)
        n += hl_infer_bytes(g->inf) + (size_t)g->inf_slots * (size_t)g->model->cfg.vocab_size * sizeof(float);
    return n;
}

/* Make sure the cache holds `slots` sequences of `seq` positions and calls of `rows` rows;
 * a big enough cache from an earlier call is reused. */
static hl_status ensure_infer(hl_generator *g, int slots, int seq, int rows) {
    if (g->inf && g->inf_slots >= slots && g->inf_seq >= seq && g->inf_rows >= rows)
        return HL_OK;
    hl_infer_free(g->inf);
    g->inf = NULL;
    free(g->logits);
    g->logits = malloc((size_t)slots * (size_t)g->model->cfg.vocab_size * sizeof(float));
    if (!g->logits)
        return hl_fail(HL_ERR_NOMEM, "out of memory for %d logits rows", slots);
    hl_status st = hl_infer_create(&g->inf, g->model, g->ad, slots, seq, rows);
    if (st != HL_OK)
        return st;
    g->inf_slots = slots;
    g->inf_seq = seq;
    g->inf_rows = rows;
    return HL_OK;
}

/* Per-sequence decoding state. */
typedef struct {
    int pos;         /* tokens in the cache */
    int last;        /* last token (input of the next forward) */
    int prev;        /* previous token, for piece decoding */
    int row;         /* row of g->logits holding this sequence's next-token logits */
    size_t emitted;  /* text bytes already streamed */
    size_t cap;
    hl_sampler_rng rng;
} seq_state;

static hl_status text_append(hl_gen_result *r, seq_state *s, const char *p, size_t n) {
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
static int stream(const hl_gen_params *p, int seq, int token, hl_gen_result *r, seq_state *s, size_t upto) {
    int stop = 0;
    if (p->on_token && (upto > s->emitted || token >= 0))
        stop = p->on_token(p->user, seq, token, r->text + s->emitted, upto > s->emitted ? upto - s->emitted : 0);
    if (upto > s->emitted)
        s->emitted = upto;
    return stop;
}

/* Handle one sampled token of sequence b. Returns the finish state (RUNNING to go on). */
static hl_status accept_token(hl_generator *g, const hl_gen_params *p, int b, int tok, hl_gen_result *r,
                              seq_state *s, int ctx, hl_gen_finish *fin) {
    const hl_llama_config *c = &g->model->cfg;
    r->ids[r->n_prompt + r->n_generated++] = tok;
    *fin = HL_GEN_RUNNING;
    if (p->stop_on_eos && tok == c->eos_id)
        *fin = HL_GEN_EOS;
    else if (p->stop_on_bos && tok == c->bos_id)
        *fin = HL_GEN_BOS;
    if (*fin != HL_GEN_RUNNING) {
        stream(p, b, -1, r, s, r->text_len); /* flush held-back text */
        return HL_OK;
    }
    size_t upto = r->text_len;
    if (g->tok) {
        char piece[1024];
        size_t before = r->text_len;
        size_t n = hl_tokenizer_decode_piece(g->tok, s->prev, tok, piece, sizeof piece);
        HL_TRY(text_append(r, s, piece, n));
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
                stream(p, b, tok, r, s, found);
                *fin = HL_GEN_STOP_STRING;
                return HL_OK;
            }
            upto = r->text_len - stop_hold(r, p);
        }
    }
    s->prev = tok;
    if (stream(p, b, tok, r, s, upto)) {
        *fin = HL_GEN_CALLBACK;
        return HL_OK;
    }
    if (r->n_generated >= p->max_new_tokens)
        *fin = HL_GEN_LENGTH;
    else if (s->pos >= ctx) /* the new token would sit at position pos: no room */
        *fin = HL_GEN_CONTEXT;
    if (*fin != HL_GEN_RUNNING)
        stream(p, b, -1, r, s, r->text_len);
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
    if (p->max_new_tokens < 0)
        return hl_fail(HL_ERR_ARG, "max_new_tokens must be >= 0");
    if (p->n_stop > 0 && !g->tok)
        return hl_fail(HL_ERR_ARG, "stop strings need a tokenizer");
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
    int seq = longest + p->max_new_tokens;
    if (seq > ctx)
        seq = ctx;
    int chunk = p->prefill_chunk > 0 ? p->prefill_chunk : 128;
    if (chunk > longest)
        chunk = longest;
    int rows = chunk > n ? chunk : n;
    seq_state *st = calloc((size_t)n, sizeof *st);
    int *tokens = malloc((size_t)n * sizeof *tokens), *pos0 = malloc((size_t)n * sizeof *pos0),
        *slot = malloc((size_t)n * sizeof *slot);
    hl_status rc = HL_OK;
    if (!st || !tokens || !pos0 || !slot) {
        rc = hl_fail(HL_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int b = 0; b < n && rc == HL_OK; b++) {
        hl_gen_result *r = &results[b];
        r->ids = malloc((size_t)(n_ids[b] + p->max_new_tokens + 1) * sizeof *r->ids);
        r->text = calloc(1, 1);
        if (!r->ids || !r->text) {
            rc = hl_fail(HL_ERR_NOMEM, "out of memory");
            break;
        }
        memcpy(r->ids, prompts[b], (size_t)n_ids[b] * sizeof *r->ids);
        r->n_prompt = n_ids[b];
        st[b].cap = 1;
        st[b].prev = prompts[b][n_ids[b] - 1];
        hl_sampler_seed(&st[b].rng, p->seed, b);
    }
    if (rc != HL_OK)
        goto out;
    if (p->max_new_tokens == 0) {
        for (int b = 0; b < n; b++)
            results[b].finish = HL_GEN_LENGTH;
        goto out;
    }
    if ((rc = ensure_infer(g, n, seq, rows)) != HL_OK)
        goto out;

    /* Prefill: each prompt into its own slot, in chunks; keep the last row's logits. */
    for (int b = 0; b < n && rc == HL_OK; b++) {
        for (int off = 0; off < n_ids[b] && rc == HL_OK; off += chunk) {
            if (p->cancel && *p->cancel) {
                rc = HL_ERR_CANCELLED;
                break;
            }
            int len = n_ids[b] - off < chunk ? n_ids[b] - off : chunk;
            rc = hl_infer_forward(g->inf, prompts[b] + off, 1, len, &off, &b, g->logits + (size_t)b * V, 0);
        }
        st[b].pos = n_ids[b];
        st[b].row = b;
    }
    /* Decode: sample for every running sequence, then one forward over those still running. */
    while (rc == HL_OK) {
        int active = 0;
        for (int b = 0; b < n && rc == HL_OK; b++) {
            hl_gen_result *r = &results[b];
            if (r->finish != HL_GEN_RUNNING)
                continue;
            float *lg = g->logits + (size_t)st[b].row * V;
            if (p->on_logits)
                p->on_logits(p->user, b, st[b].pos, lg, V);
            int tok = hl_sample(lg, V, p->temperature, p->top_k, p->top_p, &st[b].rng, g->work);
            hl_gen_finish fin;
            rc = accept_token(g, p, b, tok, r, &st[b], seq, &fin);
            r->finish = fin;
            if (fin == HL_GEN_CONTEXT && seq < ctx)
                r->finish = HL_GEN_LENGTH; /* the cache was sized for max_new_tokens */
            if (fin == HL_GEN_RUNNING) {
                tokens[active] = tok;
                pos0[active] = st[b].pos;
                slot[active] = b;
                active++;
            }
        }
        if (rc != HL_OK || active == 0)
            break;
        if (p->cancel && *p->cancel) {
            rc = HL_ERR_CANCELLED;
            break;
        }
        /* Row i of the logits belongs to the i-th running sequence (rows < n <= slots). */
        rc = hl_infer_forward(g->inf, tokens, active, 1, pos0, slot, g->logits, 0);
        for (int i = 0; i < active && rc == HL_OK; i++) {
            st[slot[i]].pos++;
            st[slot[i]].row = i;
        }
    }
    if (rc == HL_ERR_CANCELLED) {
        for (int b = 0; b < n; b++)
            if (results[b].finish == HL_GEN_RUNNING)
                results[b].finish = HL_GEN_CANCELLED;
        hl_fail(HL_ERR_CANCELLED, "generation cancelled");
    }
out:
    free(st);
    free(tokens);
    free(pos0);
    free(slot);
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
