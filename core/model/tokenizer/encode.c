/* Encoding, exactly as SentencePiece (normalizer.cc, bpe_model.cc,
 * sentencepiece_processor.cc) does it, because "nearly the same ids" is a silent training bug:
 *   1. normalise: invalid UTF-8 bytes become U+FFFD one byte at a time; optional removal of
 *      extra whitespace; ' ' -> U+2581 ("▁"); a "▁" dummy prefix when the text is non-empty;
 *   2. split into characters (user-defined pieces match first, longest, and never merge);
 *   3. BPE: repeatedly merge the adjacent pair whose concatenation is a mergeable piece with
 *      the highest score, leftmost on ties (a heap with lazy deletion, O(n log n));
 *   4. output: a symbol's id is looked up reserved-first (control pieces excepted); UNUSED
 *      pieces are split back into the pair that formed them; unknown symbols become <0xHH>
 *      byte pieces (byte_fallback) or one <unk> per run of unknown symbols.
 * Speed: when no mergeable piece contains "▁" after other characters (true for every
 * SentencePiece model trained with split_by_whitespace, LLaMA included), no merge can cross
 * the start of a "▁"-word, so each word is merged on its own and repeated words are served
 * from a per-call cache. The result is identical; only the work is smaller. */
#include <stdlib.h>
#include <string.h>

#include "core/model/tokenizer/tokenizer.h"
#include "core/model/tokenizer/internal.h"

/* Normalizer::Normalize for the identity rule set. out needs 3 * len + 3 bytes. */
static size_t normalize(const hl_tokenizer *t, const unsigned char *in, size_t len, char *out) {
    const char *ws = t->escape_ws ? TOK_WS : " ";
    size_t wsn = t->escape_ws ? 3 : 1;
    size_t o = 0, i = 0;
    if (t->remove_extra_ws)
        while (i < len && in[i] == ' ')
            i++;
    if (i >= len)
        return 0;
    if (t->add_dummy_prefix) {
        memcpy(out, ws, wsn);
        o = wsn;
    }
    int prev_space = t->remove_extra_ws;
    while (i < len) {
        size_t cl = tok_utf8_valid_len(in + i, len - i);
        const unsigned char *c = in + i;
        size_t clen = cl;
        if (cl == 0) { /* malformed: U+FFFD for this one byte */
            c = (const unsigned char *)"\xEF\xBF\xBD";
            clen = 3;
            cl = 1;
        }
        if (clen == 1 && c[0] == ' ') {
            if (!prev_space) {
                memcpy(out + o, ws, wsn);
                o += wsn;
            }
            prev_space = t->remove_extra_ws;
        } else {
            memcpy(out + o, c, clen);
            o += clen;
            prev_space = 0;
        }
        i += cl;
    }
    if (t->remove_extra_ws)
        while (o >= wsn && !memcmp(out + o - wsn, ws, wsn))
            o -= wsn;
    return o;
}

typedef struct {
    int32_t start, len;  /* bytes of the normalized text */
    int32_t prev, next;  /* linked list; -1 at the ends */
    int32_t id;          /* mergeable id of this string (for HF merges), -1 */
    int32_t fin;         /* id SentencePiece reports for this string, -1 = unknown */
    int32_t freeze;      /* user-defined: never merged */
} tok_sym;

typedef struct {
    float score;
    int32_t left, right, size, id;
} tok_pair;

typedef struct {
    const hl_tokenizer *t;
    const char *norm;
    tok_sym *sym; /* room for sym_cap symbols */
    size_t sym_cap;
    tok_pair *heap;
    size_t heap_n, heap_cap;
    int32_t *rev;  /* UNUSED pieces: left length of the last pair seen forming it (per call) */
    int32_t *out;
    size_t n_out, out_cap;
    int prev_unk;
} tok_enc;

static int pair_before(const tok_pair *a, const tok_pair *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int heap_push(tok_enc *e, tok_pair p) {
    if (e->heap_n == e->heap_cap) {
        size_t cap = e->heap_cap ? e->heap_cap * 2 : 256;
        tok_pair *h = realloc(e->heap, cap * sizeof *h);
        if (!h)
            return -1;
        e->heap = h;
        e->heap_cap = cap;
    }
    size_t i = e->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_before(&p, &e->heap[parent]))
            break;
        e->heap[i] = e->heap[parent];
        i = parent;
    }
    e->heap[i] = p;
    return 0;
}

static tok_pair heap_pop(tok_enc *e) {
    tok_pair top = e->heap[0];
    tok_pair last = e->heap[--e->heap_n];
    size_t n = e->heap_n, i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && pair_before(&e->heap[c + 1], &e->heap[c]))
            c++;
        if (!pair_before(&e->heap[c], &last))
            break;
        e->heap[i] = e->heap[c];
        i = c;
    }
    if (n)
        e->heap[i] = last;
    return top;
}

/* bpe_model.cc MaybeAddNewSymbolPair. */
static int maybe_add_pair(tok_enc *e, int left, int right) {
    if (left < 0 || right < 0)
        return 0;
    const tok_sym *l = &e->sym[left], *r = &e->sym[right];
    if (l->freeze || r->freeze)
        return 0;
    const hl_tokenizer *t = e->t;
    int32_t id;
    float score;
    if (t->has_pairs) {
        if (l->id < 0 || r->id < 0)
            return 0;
        int found;
        uint32_t slot = tok_pairs_slot(&t->pairs, t->n, l->id, r->id, &found);
        if (!found)
            return 0;
        id = t->pairs.result[slot];
        score = t->pairs.score[slot];
    } else {
        size_t n = (size_t)l->len + (size_t)r->len;
        if (n > t->max_piece_len)
            return 0;
        id = tok_lookup_normal(t, e->norm + l->start, n);
        if (id < 0)
            return 0;
        score = t->score[id];
    }
    if (e->rev && t->type[id] == HL_PIECE_UNUSED)
        e->rev[id] = l->len;
    return heap_push(e, (tok_pair){score, left, right, l->len + r->len, id});
}

static int out_push(tok_enc *e, int32_t id) {
    if (e->n_out == e->out_cap) {
        size_t cap = e->out_cap ? e->out_cap * 2 : 64;
        int32_t *o = realloc(e->out, cap * sizeof *o);
        if (!o)
            return -1;
        e->out = o;
        e->out_cap = cap;
    }
    e->out[e->n_out++] = id;
    return 0;
}

/* sentencepiece_processor.cc PopulateSentencePieceText for one final piece. */
static int emit_piece(tok_enc *e, const char *s, size_t n, int32_t id) {
    const hl_tokenizer *t = e->t;
    int is_unk = id < 0 || t->type[id] == HL_PIECE_UNKNOWN;
    if (id >= 0 && t->type[id] == HL_PIECE_CONTROL) {
        if (out_push(e, id))
            return -1;
    } else if (is_unk && t->byte_fallback) {
        for (size_t i = 0; i < n; i++)
            if (out_push(e, t->byte_id[(unsigned char)s[i]]))
                return -1;
    } else if (!(is_unk && e->prev_unk)) { /* a run of unknown pieces becomes one <unk> */
        if (out_push(e, is_unk ? t->unk_id : id))
            return -1;
    }
    e->prev_unk = is_unk;
    return 0;
}

/* bpe_model.cc resegment: an UNUSED piece is replaced by the pair that formed it. */
static int emit_resegment(tok_enc *e, const char *s, size_t n, int32_t fin) {
    const hl_tokenizer *t = e->t;
    if (!e->rev || fin < 0 || t->type[fin] != HL_PIECE_UNUSED)
        return emit_piece(e, s, n, fin);
    /* Explicit stack of (offset, length): depth is bounded by the piece length. */
    size_t cap = n + 1, top = 0;
    size_t *st = malloc(2 * cap * sizeof *st);
    if (!st)
        return -1;
    st[0] = 0, st[1] = n, top = 1;
    int rc = 0;
    while (top && !rc) {
        top--;
        size_t o = st[2 * top], l = st[2 * top + 1];
        int32_t id = tok_lookup_any(t, s + o, l);
        int32_t split = (id >= 0 && t->type[id] == HL_PIECE_UNUSED) ? e->rev[id] : 0;
        if (split <= 0 || (size_t)split >= l) {
            rc = emit_piece(e, s + o, l, id);
            continue;
        }
        /* push right first so that left is emitted first */
        st[2 * top] = o + (size_t)split, st[2 * top + 1] = l - (size_t)split, top++;
        st[2 * top] = o, st[2 * top + 1] = (size_t)split, top++;
    }
    free(st);
    return rc;
}

/* Split norm[a, b) into symbols starting at e->sym[0]; returns the count, -1 if out of memory. */
static int32_t make_symbols(tok_enc *e, size_t a, size_t b) {
    const hl_tokenizer *t = e->t;
    const int32_t base = 0;
    if (b - a > e->sym_cap) { /* at most one symbol per byte */
        size_t cap = b - a > 2 * e->sym_cap ? b - a : 2 * e->sym_cap;
        tok_sym *y = realloc(e->sym, cap * sizeof *y);
        if (!y)
            return -1;
        e->sym = y;
        e->sym_cap = cap;
    }
    const unsigned char *s = (const unsigned char *)e->norm;
    int32_t k = base;
    size_t i = a;
    while (i < b) {
        tok_sym *y = &e->sym[k];
        size_t l = 0;
        y->freeze = 0;
        if (t->n_user_defined) { /* PrefixMatcher: longest user-defined piece */
            size_t maxl = (size_t)t->max_user_len < b - i ? (size_t)t->max_user_len : b - i;
            for (size_t m = maxl; m >= 1; m--) {
                int32_t id = tok_lookup_normal(t, e->norm + i, m);
                if (id >= 0 && t->type[id] == HL_PIECE_USER_DEFINED) {
                    l = m;
                    y->freeze = 1;
                    break;
                }
            }
        }
        if (!l)
            l = tok_one_char_len(s + i, b - i);
        y->start = (int32_t)i;
        y->len = (int32_t)l;
        y->prev = k - 1;
        y->next = k + 1;
        if (l == 1 && s[i] < 128) {
            y->id = t->ascii_normal[s[i]];
            y->fin = t->ascii_final[s[i]];
        } else {
            const tok_slot *sl = tok_find(t, e->norm + i, l);
            y->id = sl ? sl->normal : -1;
            y->fin = tok_slot_final(t, sl);
        }
        i += l;
        k++;
    }
    if (k > base) {
        e->sym[base].prev = -1;
        e->sym[k - 1].next = -1;
    }
    return k - base;
}

/* Merge the symbols sym[base .. base+count) and emit their ids. */
static int bpe_run(tok_enc *e, int32_t base, int32_t count) {
    if (count <= 0)
        return 0;
    tok_sym *sym = e->sym;
    const hl_tokenizer *t = e->t;
    e->heap_n = 0;
    for (int32_t i = base + 1; i < base + count; i++)
        if (maybe_add_pair(e, i - 1, i))
            return -1;
    while (e->heap_n) {
        tok_pair top = heap_pop(e);
        tok_sym *l = &sym[top.left], *r = &sym[top.right];
        /* stale: one side merged away or grown since the pair was queued */
        if (l->len == 0 || r->len == 0 || l->len + r->len != top.size)
            continue;
        l->len += r->len;
        l->id = top.id;
        l->fin = t->final_id[top.id];
        l->next = r->next;
        if (r->next >= 0)
            sym[r->next].prev = top.left;
        r->len = 0;
        if (maybe_add_pair(e, l->prev, top.left) || maybe_add_pair(e, top.left, l->next))
            return -1;
    }
    for (int32_t i = base; i >= 0; i = sym[i].next)
        if (emit_resegment(e, e->norm + sym[i].start, (size_t)sym[i].len, sym[i].fin))
            return -1;
    return 0;
}

/* Per-call cache of words already encoded: word bytes -> ids in e->out. */
typedef struct {
    uint32_t hash;
    int32_t start, len;    /* word in the normalized text */
    uint32_t out_off, n;   /* its ids in e->out (encoded with prev_unk == 0) */
    uint8_t first_unk, last_unk;
} tok_word;

typedef struct {
    tok_word *w;
    uint32_t mask, used;
} tok_cache;

static int encode_words(tok_enc *e, size_t norm_len) {
    const hl_tokenizer *t = e->t;
    const char *ws = t->escape_ws ? TOK_WS : " ";
    size_t wsn = t->escape_ws ? 3 : 1;
    tok_cache c = {0};
    c.mask = norm_len < 2048 ? 63 : 1023; /* grows with use */
    c.w = calloc(c.mask + 1, sizeof *c.w);
    if (!c.w)
        return -1;
    int rc = 0;
    size_t a = 0;
    while (a < norm_len && !rc) {
        /* the word: a leading run of ws symbols, then up to the next ws symbol */
        size_t b = a;
        while (b + wsn <= norm_len && !memcmp(e->norm + b, ws, wsn))
            b += wsn;
        for (const char *p = e->norm + b;; p++) {
            p = memchr(p, ws[0], norm_len - (size_t)(p - e->norm));
            if (!p) {
                b = norm_len;
                break;
            }
            if ((size_t)(p - e->norm) + wsn <= norm_len && !memcmp(p, ws, wsn)) {
                b = (size_t)(p - e->norm);
                break;
            }
        }
        uint32_t h = tok_hash(e->norm + a, b - a);
        tok_word *slot = NULL;
        for (uint32_t i = h & c.mask;; i = (i + 1) & c.mask) {
            tok_word *w = &c.w[i];
            if (w->len == 0) {
                slot = w;
                break;
            }
            if (w->hash == h && (size_t)w->len == b - a && !memcmp(e->norm + w->start, e->norm + a, b - a)) {
                /* replay the cached ids, with the unknown-run rule across the boundary */
                uint32_t skip = (e->prev_unk && w->first_unk) ? 1 : 0;
                for (uint32_t k = skip; k < w->n && !rc; k++)
                    rc = out_push(e, e->out[w->out_off + k]);
                if (w->n)
                    e->prev_unk = w->last_unk;
                goto next_word;
            }
        }
        {
            int saved_prev = e->prev_unk;
            e->prev_unk = 0;
            size_t off = e->n_out;
            int32_t cnt = make_symbols(e, a, b);
            rc = cnt < 0 ? -1 : bpe_run(e, 0, cnt);
            if (rc)
                break;
            size_t n_new = e->n_out - off;
            int first_unk = n_new && t->unk_id >= 0 && !t->byte_fallback && e->out[off] == t->unk_id &&
                            t->type[t->unk_id] == HL_PIECE_UNKNOWN;
            int last_unk = e->prev_unk;
            if (saved_prev && first_unk) { /* this occurrence continues a run of unknowns */
                memmove(e->out + off, e->out + off + 1, (n_new - 1) * sizeof *e->out);
                e->n_out--;
                /* the cache must hold the unmerged form: store it from a fresh copy below */
            }
            e->prev_unk = n_new ? last_unk : saved_prev;
            if (!(saved_prev && first_unk) && c.used * 2 < c.mask) {
                slot->hash = h;
                slot->start = (int32_t)a;
                slot->len = (int32_t)(b - a);
                slot->out_off = (uint32_t)off;
                slot->n = (uint32_t)n_new;
                slot->first_unk = (uint8_t)first_unk;
                slot->last_unk = (uint8_t)last_unk;
                c.used++;
                if (c.used * 2 >= c.mask && c.mask < (1u << 24)) { /* grow */
                    uint32_t nm = c.mask * 2 + 1;
                    tok_word *nw = calloc((size_t)nm + 1, sizeof *nw);
                    if (nw) {
                        for (uint32_t i = 0; i <= c.mask; i++) {
                            if (!c.w[i].len)
                                continue;
                            uint32_t j = c.w[i].hash & nm;
                            while (nw[j].len)
                                j = (j + 1) & nm;
                            nw[j] = c.w[i];
                        }
                        free(c.w);
                        c.w = nw;
                        c.mask = nm;
                    }
                }
            }
        }
    next_word:
        a = b;
    }
    free(c.w);
    return rc;
}

hl_status hl_tokenizer_encode(const hl_tokenizer *t, const char *text, size_t len, int add_bos, int32_t **ids,
                              size_t *n_ids) {
    if (!ids || !n_ids)
        return hl_fail(HL_ERR_ARG, "hl_tokenizer_encode: ids or n_ids is NULL");
    *ids = NULL;
    *n_ids = 0;
    if (!t)
        return hl_fail(HL_ERR_ARG, "hl_tokenizer_encode: no tokenizer");
    if (!text && len)
        return hl_fail(HL_ERR_ARG, "hl_tokenizer_encode: text is NULL");
    if (add_bos && t->bos_id < 0)
        return hl_fail(HL_ERR_ARG, "%s has no BOS piece (<s>); encode without BOS", t->source);
    if (len > ((size_t)1 << 29)) /* symbol offsets are int32 and text may grow 3x when normalized */
        return hl_fail(HL_ERR_RANGE, "text of %zu bytes is too long to tokenize in one call (limit 512 MiB)", len);

    tok_enc e = {0};
    e.t = t;
    char *norm = malloc(3 * len + 4);
    e.out_cap = len + 8;
    e.out = malloc(e.out_cap * sizeof *e.out);
    if (!norm || !e.out) {
        free(norm);
        free(e.out);
        return hl_fail(HL_ERR_NOMEM, "out of memory tokenizing %zu bytes", len);
    }
    e.norm = norm;
    int rc = 0;
    if (add_bos)
        e.out[e.n_out++] = t->bos_id;
    size_t nlen = len ? normalize(t, (const unsigned char *)text, len, norm) : 0;
    if (nlen) {
        if (t->has_unused)
            e.rev = calloc((size_t)t->n, sizeof *e.rev);
        if (t->has_unused && !e.rev) {
            rc = -1;
        } else if (t->split_ok) {
            rc = encode_words(&e, nlen);
        } else {
            int32_t cnt = make_symbols(&e, 0, nlen);
            rc = cnt < 0 ? -1 : bpe_run(&e, 0, cnt);
        }
    }
    free(e.sym);
    free(e.heap);
    free(e.rev);
    free(norm);
    if (rc) {
        free(e.out);
        return hl_fail(HL_ERR_NOMEM, "out of memory tokenizing %zu bytes", len);
    }
    *ids = e.out;
    *n_ids = e.n_out;
    return HL_OK;
}

