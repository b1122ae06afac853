/* Private to core/tokenizer*.c: the tokenizer's tables and the builder the file loaders
 * (tokenizer_load.c) share. Nothing outside the tokenizer should include this. */
#ifndef HL_TOKENIZER_INTERNAL_H
#define HL_TOKENIZER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/model/tokenizer/tokenizer.h"

/* One slot of the piece-string hash table. SentencePiece keeps two maps: "pieces_"
 * (NORMAL, USER_DEFINED, UNUSED: the pieces BPE may produce by merging) and
 * "reserved" (CONTROL, UNKNOWN, BYTE). A string may in principle be in both, so a slot
 * carries one id for each. */
typedef struct {
    uint32_t hash;
    int32_t normal;   /* mergeable piece with this string, -1 if none */
    int32_t reserved; /* reserved piece with this string, -1 if none */
} tok_slot;

/* (left id, right id) -> merged piece, open addressing. Either HF tokenizer.json merges
 * (score = -rank) or SentencePiece's rule precomputed (every split of a mergeable piece into
 * two mergeable pieces; score = the piece's score), which spares the string hashing in the
 * BPE loop. The loop is bound by cache misses on this table, so keys are l * n + r in 32
 * bits when the vocabulary has at most 65535 pieces (64 bits otherwise), apart from the
 * values, which are read only on a hit. */
typedef struct {
    uint32_t *k32;   /* UINT32_MAX = empty */
    uint64_t *k64;   /* used instead of k32 for larger vocabularies; UINT64_MAX = empty */
    int32_t *result; /* merged piece id */
    float *score;    /* merge priority: higher first */
    uint32_t mask;
    int count;
} tok_pairs;

struct hl_tokenizer {
    int n;              /* pieces */
    char *arena;        /* every piece, NUL-terminated, back to back */
    char **piece;       /* [n] into arena (SentencePiece spelling) */
    uint32_t *plen;     /* [n] byte length (pieces may hold NUL bytes in theory) */
    float *score;       /* [n] */
    uint8_t *type;      /* [n] hl_piece_type */
    int16_t *byte_val;  /* [n] byte value of a BYTE piece, else -1 */
    int32_t *final_id;  /* [n] id SentencePiece reports for a merged piece (reserved first) */

    tok_slot *slots;    /* open addressing, power-of-two size */
    uint32_t mask;

    tok_pairs pairs;        /* valid when has_pairs; else SentencePiece's rule by string lookups */
    int has_pairs;
    int hf_merges;          /* the pairs come from a tokenizer.json (ranks), not from the pieces */

    int unk_id, bos_id, eos_id, pad_id; /* -1 when absent */
    int32_t byte_id[256];               /* id emitted for a fallback byte */
    int32_t ascii_normal[128];          /* mergeable id of each ASCII character, -1 */
    int32_t ascii_final[128];           /* id SentencePiece reports for a lone ASCII character, -1 */

    int byte_fallback, add_dummy_prefix, remove_extra_ws, escape_ws;
    int n_user_defined, max_user_len, has_unused;
    uint32_t max_piece_len;
    int split_ok; /* no mergeable piece holds a whitespace symbol after other text: words are independent */

    char *unk_surface;
    char format[32];
    char source[512]; /* file path or "vocabulary", for messages */
};

#define TOK_WS "\xE2\x96\x81" /* U+2581, SentencePiece's escaped space */

/* UTF-8 helpers with SentencePiece's exact rules (util.h: DecodeUTF8, OneCharLen). */

static inline int tok_is_trail(unsigned char c) { return (c & 0xC0) == 0x80; }

/* Length of a structurally valid UTF-8 character at s (n bytes left), 0 if invalid.
 * A literal U+FFFD counts as valid (SentencePiece's IsValidDecodeUTF8 special case). */
static inline size_t tok_utf8_valid_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    if (n >= 2 && (c & 0xE0) == 0xC0) {
        unsigned cp = ((c & 0x1Fu) << 6) | (s[1] & 0x3Fu);
        if (tok_is_trail(s[1]) && cp >= 0x80)
            return 2;
    } else if (n >= 3 && (c & 0xF0) == 0xE0) {
        unsigned cp = ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
        if (tok_is_trail(s[1]) && tok_is_trail(s[2]) && cp >= 0x800 && (cp < 0xD800 || cp >= 0xE000))
            return 3;
    } else if (n >= 4 && (c & 0xF8) == 0xF0) {
        unsigned cp = ((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
        if (tok_is_trail(s[1]) && tok_is_trail(s[2]) && tok_is_trail(s[3]) && cp >= 0x10000 && cp <= 0x10FFFF)
            return 4;
    }
    return 0;
}

/* SentencePiece's OneCharLen: from the lead byte only (input is already valid here). */
static inline size_t tok_one_char_len(const unsigned char *s, size_t n) {
    static const unsigned char len_of[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    size_t l = len_of[s[0] >> 4];
    return l < n ? l : n;
}

/* Piece-string hash map (tokenizer.c). */
uint32_t tok_hash(const char *s, size_t n);
const tok_slot *tok_find(const hl_tokenizer *t, const char *s, size_t n); /* NULL if no piece */
/* The id a symbol with this string gets in the output (reserved pieces first, except
 * CONTROL pieces, which are never produced from text); -1 = unknown. */
int32_t tok_slot_final(const hl_tokenizer *t, const tok_slot *sl);

/* Pair map lookup, inline: the BPE loop's hot path. */
static inline uint32_t tok_pair_hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (uint32_t)k;
}

/* The slot holding (l, r) (*found = 1) or the empty slot where it would go (*found = 0). */
static inline uint32_t tok_pairs_slot(const tok_pairs *p, int n, int32_t l, int32_t r, int *found) {
    uint64_t key = (uint64_t)(uint32_t)l * (uint64_t)n + (uint32_t)r;
    uint32_t i = tok_pair_hash(key) & p->mask;
    if (p->k32) {
        uint32_t k = (uint32_t)key;
        for (;; i = (i + 1) & p->mask) {
            if (p->k32[i] == k || p->k32[i] == UINT32_MAX) {
                *found = p->k32[i] == k;
                return i;
            }
        }
    }
    for (;; i = (i + 1) & p->mask) {
        if (p->k64[i] == key || p->k64[i] == UINT64_MAX) {
            *found = p->k64[i] == key;
            return i;
        }
    }
}

/* Everything a loader knows; tok_build copies what it needs. */
typedef struct {
    int n;
    const char *const *pieces;  /* SentencePiece spelling */
    const uint32_t *lens;       /* NULL: strlen */
    const float *scores;        /* NULL: 0 */
    const int32_t *types;       /* NULL: inferred (see hl_tokenizer_from_vocab) */
    int unk_id, bos_id, eos_id, pad_id;
    int byte_fallback, add_dummy_prefix, remove_extra_ws, escape_ws;
    const char *unk_surface;    /* NULL: " \xE2\x81\x87 " (SentencePiece's default) */
    const char *format;         /* "tokenizer.model", ... */
    const char *source;         /* path for messages */
} tok_spec;

hl_status tok_build(hl_tokenizer **out, const tok_spec *spec);

/* Install HF-style merges (rank = index). Pairs are piece ids; result = the id of the
 * concatenation. Call after tok_build; recomputes split_ok. */
hl_status tok_set_merges(hl_tokenizer *t, int n, const int32_t *left, const int32_t *right, const int32_t *result);

/* id of a piece string: the mergeable id, or -1 (normal map only / reserved map first). */
int32_t tok_lookup_normal(const hl_tokenizer *t, const char *s, size_t n);
int32_t tok_lookup_any(const hl_tokenizer *t, const char *s, size_t n);

/* Loaders over memory (tokenizer_load.c). */
hl_status tok_load_model_proto(hl_tokenizer **out, const unsigned char *data, size_t size, const char *source);
hl_status tok_load_json(hl_tokenizer **out, const char *text, size_t size, const char *source);
hl_status tok_load_llama2c(hl_tokenizer **out, const unsigned char *data, size_t size, const char *source);

#endif
