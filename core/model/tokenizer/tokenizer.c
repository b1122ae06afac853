/* SentencePiece BPE tokenizer: the vocabulary tables (piece hash map, merge-pair map,
 * special ids) built from any of the file formats, and the accessors. Encoding is in
 * tokenizer_encode.c, decoding in tokenizer_decode.c, the file formats in
 * tokenizer_load.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/model/tokenizer/tokenizer.h"
#include "core/model/tokenizer/internal.h"

#define TOK_DEFAULT_UNK_SURFACE " \xE2\x81\x87 "

/* ------------------------------------------------------------------------------------ */
/* Piece table                                                                           */

uint32_t tok_hash(const char *s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    if (n)
        memcpy(&w, s, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    h *= 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 32);
}

static int slot_id(const tok_slot *sl) { return sl->normal >= 0 ? sl->normal : sl->reserved; }

const tok_slot *tok_find(const hl_tokenizer *t, const char *s, size_t n) {
    if (n > t->max_piece_len)
        return NULL;
    uint32_t h = tok_hash(s, n);
    for (uint32_t i = h & t->mask;; i = (i + 1) & t->mask) {
        const tok_slot *sl = &t->slots[i];
        int id = slot_id(sl);
        if (id < 0)
            return NULL;
        if (sl->hash == h && t->plen[id] == n && !memcmp(t->piece[id], s, n))
            return sl;
    }
}

int32_t tok_lookup_normal(const hl_tokenizer *t, const char *s, size_t n) {
    const tok_slot *sl = tok_find(t, s, n);
    return sl ? sl->normal : -1;
}

int32_t tok_lookup_any(const hl_tokenizer *t, const char *s, size_t n) {
    const tok_slot *sl = tok_find(t, s, n);
    if (!sl)
        return -1;
    return sl->reserved >= 0 ? sl->reserved : sl->normal;
}

/* The id a symbol with this string gets in the output. SentencePiece looks reserved pieces
 * up first; a CONTROL piece matched from text makes its encoder fail ("all normalized
 * characters are not consumed"), so here control pieces are never produced from text: the
 * symbol keeps its normal piece, or is unknown (byte fallback). */
int32_t tok_slot_final(const hl_tokenizer *t, const tok_slot *sl) {
    if (!sl)
        return -1;
    if (sl->reserved >= 0 && t->type[sl->reserved] != HL_PIECE_CONTROL)
        return sl->reserved;
    return sl->normal;
}

static int is_mergeable_type(int type) {
    return type == HL_PIECE_NORMAL || type == HL_PIECE_USER_DEFINED || type == HL_PIECE_UNUSED;
}

/* "<0x0A>" -> 10; -1 unless exactly SentencePiece's spelling (upper-case hex). */
static int piece_to_byte(const char *s, size_t n) {
    static const char hex[] = "0123456789ABCDEF";
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>')
        return -1;
    const char *hi = memchr(hex, s[3], 16), *lo = memchr(hex, s[4], 16);
    if (!hi || !lo || !s[3] || !s[4])
        return -1;
    return (int)((hi - hex) * 16 + (lo - hex));
}

/* Words are independent when every whitespace symbol inside a mergeable string sits in its
 * leading run: then a string spanning "x▁" (x not ▁) is never a piece, so no merge crosses
 * the start of a word. */
static int ws_only_leading(const char *s, size_t n, const char *ws, size_t wsn) {
    size_t i = 0;
    while (i + wsn <= n && !memcmp(s + i, ws, wsn))
        i += wsn;
    for (; i + wsn <= n; i++)
        if (!memcmp(s + i, ws, wsn))
            return 0;
    return 1;
}

static void pairs_free(tok_pairs *p) {
    free(p->k32);
    free(p->k64);
    free(p->result);
    free(p->score);
    memset(p, 0, sizeof *p);
}

static int pairs_alloc(tok_pairs *p, size_t count, int n) {
    uint32_t size = 16;
    while (size < 2 * count + 16)
        size <<= 1;
    memset(p, 0, sizeof *p);
    if (n <= 65535) {
        p->k32 = malloc((size_t)size * sizeof *p->k32);
        if (p->k32)
            memset(p->k32, 0xff, (size_t)size * sizeof *p->k32);
    } else {
        p->k64 = malloc((size_t)size * sizeof *p->k64);
        if (p->k64)
            memset(p->k64, 0xff, (size_t)size * sizeof *p->k64);
    }
    p->result = malloc((size_t)size * sizeof *p->result);
    p->score = malloc((size_t)size * sizeof *p->score);
    if ((!p->k32 && !p->k64) || !p->result || !p->score) {
        pairs_free(p);
        return -1;
    }
    p->mask = size - 1;
    return 0;
}

/* Keeps the first entry for a pair (HF: the lowest rank wins). */
static void pairs_insert(tok_pairs *p, int n, int32_t l, int32_t r, int32_t result, float score) {
    int found;
    uint32_t i = tok_pairs_slot(p, n, l, r, &found);
    if (found)
        return;
    uint64_t key = (uint64_t)(uint32_t)l * (uint64_t)n + (uint32_t)r;
    if (p->k32)
        p->k32[i] = (uint32_t)key;
    else
        p->k64[i] = key;
    p->result[i] = result;
    p->score[i] = score;
    p->count++;
}

static int pairs_key_at(const tok_pairs *p, int n, uint32_t i, int32_t *l, int32_t *r) {
    uint64_t key;
    if (p->k32) {
        if (p->k32[i] == UINT32_MAX)
            return 0;
        key = p->k32[i];
    } else {
        if (p->k64[i] == UINT64_MAX)
            return 0;
        key = p->k64[i];
    }
    *l = (int32_t)(key / (uint64_t)n);
    *r = (int32_t)(key % (uint64_t)n);
    return 1;
}

static void tok_update_split_ok(hl_tokenizer *t) {
    const char *ws = t->escape_ws ? TOK_WS : " ";
    size_t wsn = strlen(ws);
    int ok = t->n_user_defined == 0 && !t->has_unused;
    if (ok && !t->hf_merges) {
        for (int i = 0; i < t->n && ok; i++)
            if (is_mergeable_type(t->type[i]) && !ws_only_leading(t->piece[i], t->plen[i], ws, wsn))
                ok = 0;
    }
    if (ok && t->hf_merges) {
        char buf[512];
        for (uint32_t i = 0; i <= t->pairs.mask && ok; i++) {
            int32_t l, r;
            if (!pairs_key_at(&t->pairs, t->n, i, &l, &r))
                continue;
            size_t ln = t->plen[l], rn = t->plen[r];
            if (ln + rn > sizeof buf) {
                ok = 0; /* be conservative with absurd pieces */
                break;
            }
            memcpy(buf, t->piece[l], ln);
            memcpy(buf + ln, t->piece[r], rn);
            if (!ws_only_leading(buf, ln + rn, ws, wsn))
                ok = 0;
        }
    }
    t->split_ok = ok;
}

void hl_tokenizer_free(hl_tokenizer *t) {
    if (!t)
        return;
    free(t->arena);
    free(t->piece);
    free(t->plen);
    free(t->score);
    free(t->type);
    free(t->byte_val);
    free(t->final_id);
    free(t->slots);
    pairs_free(&t->pairs);
    free(t->unk_surface);
    free(t);
}

static void copy_str(char *dst, size_t cap, const char *src) {
    size_t n = src ? strlen(src) : 0;
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

static void tok_build_pair_table(hl_tokenizer *t);

hl_status tok_build(hl_tokenizer **out, const tok_spec *sp) {
    *out = NULL;
    const char *src = sp->source ? sp->source : "vocabulary";
    if (sp->n <= 0)
        return hl_fail(HL_ERR_FORMAT, "%s: the vocabulary is empty", src);
    if (sp->n > (1 << 26))
        return hl_fail(HL_ERR_FORMAT, "%s: %d pieces is more than any real tokenizer has (corrupt file?)", src, sp->n);
    if (!sp->pieces)
        return hl_fail(HL_ERR_ARG, "%s: no piece strings given", src);
    int n = sp->n;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (!sp->pieces[i])
            return hl_fail(HL_ERR_ARG, "%s: piece %d is NULL", src, i);
        size_t l = sp->lens ? sp->lens[i] : strlen(sp->pieces[i]);
        if (l == 0)
            return hl_fail(HL_ERR_FORMAT, "%s: piece %d is empty (SentencePiece does not allow empty pieces)", src, i);
        if (l > (1u << 24))
            return hl_fail(HL_ERR_FORMAT, "%s: piece %d is %zu bytes long (corrupt file?)", src, i, l);
        total += l + 1;
    }
    hl_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return hl_fail(HL_ERR_NOMEM, "%s: out of memory for the tokenizer", src);
    t->n = n;
    uint32_t cap = 16;
    while (cap < 2u * (uint32_t)n + 16)
        cap <<= 1;
    t->mask = cap - 1;
    t->arena = malloc(total);
    t->piece = malloc((size_t)n * sizeof *t->piece);
    t->plen = malloc((size_t)n * sizeof *t->plen);
    t->score = malloc((size_t)n * sizeof *t->score);
    t->type = malloc((size_t)n);
    t->byte_val = malloc((size_t)n * sizeof *t->byte_val);
    t->final_id = malloc((size_t)n * sizeof *t->final_id);
    t->slots = malloc((size_t)cap * sizeof *t->slots);
    t->unk_surface = strdup(sp->unk_surface ? sp->unk_surface : TOK_DEFAULT_UNK_SURFACE);
    if (!t->arena || !t->piece || !t->plen || !t->score || !t->type || !t->byte_val || !t->final_id || !t->slots ||
        !t->unk_surface) {
        hl_tokenizer_free(t);
        return hl_fail(HL_ERR_NOMEM, "%s: out of memory for %d pieces", src, n);
    }
    copy_str(t->format, sizeof t->format, sp->format ? sp->format : "vocabulary");
    copy_str(t->source, sizeof t->source, src);
    t->byte_fallback = sp->byte_fallback != 0;
    t->add_dummy_prefix = sp->add_dummy_prefix != 0;
    t->remove_extra_ws = sp->remove_extra_ws != 0;
    t->escape_ws = sp->escape_ws != 0;

    size_t off = 0;
    for (int i = 0; i < n; i++) {
        size_t l = sp->lens ? sp->lens[i] : strlen(sp->pieces[i]);
        t->piece[i] = t->arena + off;
        memcpy(t->arena + off, sp->pieces[i], l);
        t->arena[off + l] = '\0';
        t->plen[i] = (uint32_t)l;
        if (l > t->max_piece_len)
            t->max_piece_len = (uint32_t)l;
        off += l + 1;
        float s = sp->scores ? sp->scores[i] : 0.0f;
        t->score[i] = isnan(s) ? -INFINITY : s; /* a NaN would make the merge order undefined */
        int ty;
        if (sp->types) {
            ty = sp->types[i];
            if (ty < HL_PIECE_NORMAL || ty > HL_PIECE_BYTE)
                ty = HL_PIECE_NORMAL; /* protobuf: unknown enum values read as the default */
        } else if (i == sp->unk_id || (sp->unk_id < 0 && !strcmp(t->piece[i], "<unk>"))) {
            ty = HL_PIECE_UNKNOWN;
        } else if (i == sp->bos_id || i == sp->eos_id || !strcmp(t->piece[i], "<s>") || !strcmp(t->piece[i], "</s>")) {
            ty = HL_PIECE_CONTROL;
        } else if (piece_to_byte(t->piece[i], l) >= 0) {
            ty = HL_PIECE_BYTE;
        } else {
            ty = HL_PIECE_NORMAL;
        }
        t->type[i] = (uint8_t)ty;
        t->byte_val[i] = -1;
        if (ty == HL_PIECE_BYTE) {
            int b = piece_to_byte(t->piece[i], l);
            if (b < 0) {
                hl_status st = hl_fail(HL_ERR_FORMAT, "%s: piece %d '%.40s' has type BYTE but is not spelled <0xHH>",
                                       src, i, t->piece[i]);
                hl_tokenizer_free(t);
                return st;
            }
            t->byte_val[i] = (int16_t)b;
        }
        if (ty == HL_PIECE_USER_DEFINED) {
            t->n_user_defined++;
            if ((int)l > t->max_user_len)
                t->max_user_len = (int)l;
        }
        if (ty == HL_PIECE_UNUSED)
            t->has_unused = 1;
    }

    /* Special ids. */
    t->unk_id = -1;
    if (sp->unk_id >= 0 && sp->unk_id < n)
        t->unk_id = sp->unk_id;
    else
        for (int i = 0; i < n; i++)
            if (t->type[i] == HL_PIECE_UNKNOWN) {
                t->unk_id = i;
                break;
            }
    if (t->unk_id >= 0 && t->type[t->unk_id] != HL_PIECE_UNKNOWN) {
        if (t->type[t->unk_id] == HL_PIECE_USER_DEFINED)
            t->n_user_defined--;
        t->type[t->unk_id] = HL_PIECE_UNKNOWN; /* the algorithm needs it; GGUF files sometimes say otherwise */
        t->byte_val[t->unk_id] = -1;
    }
    t->bos_id = sp->bos_id >= 0 && sp->bos_id < n ? sp->bos_id : -1;
    t->eos_id = sp->eos_id >= 0 && sp->eos_id < n ? sp->eos_id : -1;
    t->pad_id = sp->pad_id >= 0 && sp->pad_id < n ? sp->pad_id : -1;

    /* Hash table. SentencePiece rejects a string defined twice in the same map; we keep the
     * first, which is what its lookups would return had it loaded. */
    for (uint32_t i = 0; i <= t->mask; i++)
        t->slots[i] = (tok_slot){0, -1, -1};
    for (int i = 0; i < n; i++) {
        uint32_t h = tok_hash(t->piece[i], t->plen[i]);
        tok_slot *sl;
        for (uint32_t j = h & t->mask;; j = (j + 1) & t->mask) {
            sl = &t->slots[j];
            int id = slot_id(sl);
            if (id < 0) {
                sl->hash = h;
                break;
            }
            if (sl->hash == h && t->plen[id] == t->plen[i] && !memcmp(t->piece[id], t->piece[i], t->plen[i]))
                break;
        }
        if (is_mergeable_type(t->type[i])) {
            if (sl->normal < 0)
                sl->normal = i;
        } else if (sl->reserved < 0) {
            sl->reserved = i;
        }
    }
    for (int i = 0; i < n; i++)
        t->final_id[i] = tok_slot_final(t, tok_find(t, t->piece[i], t->plen[i]));

    int n_bytes = 0;
    for (int b = 0; b < 256; b++) {
        char name[8];
        static const char hex[] = "0123456789ABCDEF";
        name[0] = '<', name[1] = '0', name[2] = 'x', name[3] = hex[b >> 4], name[4] = hex[b & 15], name[5] = '>';
        int id = tok_lookup_any(t, name, 6);
        if (id >= 0)
            n_bytes++;
        t->byte_id[b] = id >= 0 ? id : t->unk_id;
    }
    if (t->unk_id < 0 && !(t->byte_fallback && n_bytes == 256)) {
        hl_tokenizer_free(t);
        return hl_fail(HL_ERR_FORMAT,
                       "%s: the vocabulary has no unknown piece (<unk>), so text outside it cannot be encoded", src);
    }
    for (int c = 0; c < 128; c++) {
        char ch = (char)c;
        t->ascii_normal[c] = tok_lookup_normal(t, &ch, 1);
        t->ascii_final[c] = tok_slot_final(t, tok_find(t, &ch, 1));
    }
    tok_build_pair_table(t);
    tok_update_split_ok(t);
    *out = t;
    return HL_OK;
}

hl_status tok_set_merges(hl_tokenizer *t, int n, const int32_t *left, const int32_t *right, const int32_t *result) {
    for (int i = 0; i < n; i++)
        if (left[i] < 0 || left[i] >= t->n || right[i] < 0 || right[i] >= t->n || result[i] < 0 || result[i] >= t->n)
            return hl_fail(HL_ERR_FORMAT, "%s: merge %d refers to a piece outside the vocabulary", t->source, i);
    pairs_free(&t->pairs);
    t->has_pairs = 0;
    if (pairs_alloc(&t->pairs, (size_t)n, t->n))
        return hl_fail(HL_ERR_NOMEM, "%s: out of memory for %d merges", t->source, n);
    for (int i = 0; i < n; i++)
        pairs_insert(&t->pairs, t->n, left[i], right[i], result[i], -(float)i);
    t->has_pairs = 1;
    t->hf_merges = 1;
    tok_update_split_ok(t);
    return HL_OK;
}

/* SentencePiece's merge rule as a pair table. Exact only when every character of every
 * mergeable piece is itself a mergeable piece: then a symbol is always a mergeable piece or
 * a character that occurs in none, and "left + right is a piece" is a lookup by ids. */
static void tok_build_pair_table(hl_tokenizer *t) {
    /* one pass: check the characters and collect (left, right, result) triples */
    size_t cap = 1024, count = 0;
    int32_t *trip = malloc(cap * 3 * sizeof *trip);
    if (!trip)
        return; /* the string rule still works */
    for (int i = 0; i < t->n; i++) {
        if (!is_mergeable_type(t->type[i]))
            continue;
        const char *s = t->piece[i];
        size_t n = t->plen[i];
        for (size_t k = 0; k < n;) {
            size_t l = tok_one_char_len((const unsigned char *)s + k, n - k);
            if (l == n ? 0 : tok_lookup_normal(t, s + k, l) < 0) {
                free(trip);
                return; /* a character that is no piece: keep the string rule */
            }
            k += l;
        }
        /* the result SentencePiece finds is the first mergeable piece with this string */
        if (tok_lookup_normal(t, s, n) != i)
            continue;
        for (size_t k = 1; k < n; k++) {
            int32_t l = tok_lookup_normal(t, s, k);
            if (l < 0)
                continue;
            int32_t r = tok_lookup_normal(t, s + k, n - k);
            if (r < 0)
                continue;
            if (count == cap) {
                int32_t *g = cap < (1u << 26) ? realloc(trip, cap * 2 * 3 * sizeof *trip) : NULL;
                if (!g) {
                    free(trip);
                    return;
                }
                trip = g;
                cap *= 2;
            }
            trip[3 * count] = l, trip[3 * count + 1] = r, trip[3 * count + 2] = i;
            count++;
        }
    }
    if (pairs_alloc(&t->pairs, count, t->n)) {
        free(trip);
        return;
    }
    for (size_t c = 0; c < count; c++)
        pairs_insert(&t->pairs, t->n, trip[3 * c], trip[3 * c + 1], trip[3 * c + 2], t->score[trip[3 * c + 2]]);
    t->has_pairs = 1;
    free(trip);
}

hl_status hl_tokenizer_from_vocab(hl_tokenizer **out, int n, const char *const *pieces, const float *scores,
                                  const int32_t *types, int unk_id, int bos_id, int eos_id, int add_dummy_prefix,
                                  int byte_fallback) {
    if (!out)
        return hl_fail(HL_ERR_ARG, "hl_tokenizer_from_vocab: out is NULL");
    tok_spec sp = {.n = n,
                   .pieces = pieces,
                   .scores = scores,
                   .types = types,
                   .unk_id = unk_id,
                   .bos_id = bos_id,
                   .eos_id = eos_id,
                   .pad_id = -1,
                   .byte_fallback = byte_fallback,
                   .add_dummy_prefix = add_dummy_prefix,
                   .remove_extra_ws = 0,
                   .escape_ws = 1,
                   .format = "vocabulary",
                   .source = "vocabulary"};
    /* Without types, <s>/</s> found by name give the ids when none were passed. */
    if (!types && pieces && n > 0) {
        for (int i = 0; i < n; i++) {
            if (!pieces[i])
                continue;
            if (sp.bos_id < 0 && !strcmp(pieces[i], "<s>"))
                sp.bos_id = i;
            if (sp.eos_id < 0 && !strcmp(pieces[i], "</s>"))
                sp.eos_id = i;
        }
    }
    return tok_build(out, &sp);
}

/* ------------------------------------------------------------------------------------ */
/* Accessors                                                                             */

int hl_tokenizer_vocab_size(const hl_tokenizer *t) { return t ? t->n : 0; }
int hl_tokenizer_bos_id(const hl_tokenizer *t) { return t ? t->bos_id : -1; }
int hl_tokenizer_eos_id(const hl_tokenizer *t) { return t ? t->eos_id : -1; }
int hl_tokenizer_unk_id(const hl_tokenizer *t) { return t ? t->unk_id : -1; }
int hl_tokenizer_pad_id(const hl_tokenizer *t) { return t ? t->pad_id : -1; }

const char *hl_tokenizer_piece(const hl_tokenizer *t, int id) {
    if (!t || id < 0 || id >= t->n)
        return NULL;
    return t->piece[id];
}

float hl_tokenizer_score(const hl_tokenizer *t, int id) {
    if (!t || id < 0 || id >= t->n)
        return 0.0f;
    return t->score[id];
}

int hl_tokenizer_piece_type(const hl_tokenizer *t, int id) {
    if (!t || id < 0 || id >= t->n)
        return 0;
    return t->type[id];
}

int hl_tokenizer_piece_to_id(const hl_tokenizer *t, const char *piece) {
    if (!t || !piece)
        return -1;
    return tok_lookup_any(t, piece, strlen(piece));
}

const char *hl_tokenizer_format(const hl_tokenizer *t) { return t ? t->format : ""; }
const char *hl_tokenizer_source(const hl_tokenizer *t) { return t ? t->source : ""; }
int hl_tokenizer_add_dummy_prefix(const hl_tokenizer *t) { return t ? t->add_dummy_prefix : 0; }
int hl_tokenizer_byte_fallback(const hl_tokenizer *t) { return t ? t->byte_fallback : 0; }

