/* Decoding, exactly as SentencePiece's DecodeIds, and the streaming variant. */
#include <stdlib.h>
#include <string.h>

#include "core/model/tokenizer/tokenizer.h"
#include "core/model/tokenizer/internal.h"

typedef struct {
    char *p;
    size_t n, cap;
} tok_buf;

static int buf_put(tok_buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

/* Pending byte pieces become text one character at a time; an invalid byte becomes U+FFFD. */
static int flush_bytes(tok_buf *b, const unsigned char *bytes, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t l = tok_utf8_valid_len(bytes + i, n - i);
        if (l == 0) {
            if (buf_put(b, "\xEF\xBF\xBD", 3))
                return -1;
            i++;
        } else {
            if (buf_put(b, (const char *)bytes + i, l))
                return -1;
            i += l;
        }
    }
    return 0;
}

/* A piece with every U+2581 turned into a space. */
static int put_unescaped(tok_buf *b, const char *s, size_t n) {
    size_t i = 0, run = 0;
    while (i + run < n) {
        if (i + run + 3 <= n && !memcmp(s + i + run, TOK_WS, 3)) {
            if (buf_put(b, s + i, run) || buf_put(b, " ", 1))
                return -1;
            i += run + 3;
            run = 0;
        } else {
            run++;
        }
    }
    return buf_put(b, s + i, run);
}

hl_status hl_tokenizer_decode(const hl_tokenizer *t, const int32_t *ids, size_t n, char **text, size_t *len) {
    if (!text)
        return hl_fail(HL_ERR_ARG, "hl_tokenizer_decode: text is NULL");
    *text = NULL;
    if (len)
        *len = 0;
    if (!t)
        return hl_fail(HL_ERR_ARG, "hl_tokenizer_decode: no tokenizer");
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= t->n)
            return hl_fail(HL_ERR_RANGE, "token id %d (position %zu) is out of range: %s has %d pieces (0..%d)",
                           (int)ids[i], i, t->source, t->n, t->n - 1);
    tok_buf b = {0};
    unsigned char *bytes = malloc(n + 1);
    if (!bytes || buf_put(&b, "", 0)) {
        free(bytes);
        free(b.p);
        return hl_fail(HL_ERR_NOMEM, "out of memory decoding %zu tokens", n);
    }
    size_t nb = 0;
    int is_bos_ws = 1, bos_ws_seen = 0, rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        int id = ids[i];
        if (t->type[id] == HL_PIECE_BYTE) {
            bytes[nb++] = (unsigned char)t->byte_val[id];
            continue;
        }
        rc = flush_bytes(&b, bytes, nb);
        nb = 0;
        if (bos_ws_seen || b.n > 0)
            is_bos_ws = 0;
        bos_ws_seen = 0;
        if (t->type[id] == HL_PIECE_CONTROL)
            continue;
        if (t->type[id] == HL_PIECE_UNKNOWN) {
            rc = rc || buf_put(&b, t->unk_surface, strlen(t->unk_surface));
            continue;
        }
        const char *s = t->piece[id];
        size_t l = t->plen[id];
        if (is_bos_ws && (t->add_dummy_prefix || t->remove_extra_ws) && l >= 3 && !memcmp(s, TOK_WS, 3)) {
            s += 3;
            l -= 3;
            bos_ws_seen = !t->remove_extra_ws;
        }
        rc = rc || put_unescaped(&b, s, l);
    }
    rc = rc || flush_bytes(&b, bytes, nb);
    free(bytes);
    if (rc) {
        free(b.p);
        return hl_fail(HL_ERR_NOMEM, "out of memory decoding %zu tokens", n);
    }
    *text = b.p;
    if (len)
        *len = b.n;
    return HL_OK;
}

size_t hl_tokenizer_decode_piece(const hl_tokenizer *t, int prev_id, int id, char *out, size_t out_size) {
    if (!out || out_size == 0)
        return 0;
    out[0] = '\0';
    if (!t || id < 0 || id >= t->n)
        return 0;
    char tmp[8];
    const char *s;
    size_t l;
    int ty = t->type[id];
    if (ty == HL_PIECE_CONTROL)
        return 0;
    if (ty == HL_PIECE_BYTE) {
        tmp[0] = (char)t->byte_val[id];
        s = tmp;
        l = 1;
    } else if (ty == HL_PIECE_UNKNOWN) {
        s = t->unk_surface;
        l = strlen(s);
    } else {
        s = t->piece[id];
        l = t->plen[id];
        if ((prev_id < 0 || prev_id == t->bos_id) && t->add_dummy_prefix && l >= 3 && !memcmp(s, TOK_WS, 3)) {
            s += 3;
            l -= 3;
        }
    }
    size_t o = 0;
    for (size_t i = 0; i < l && o + 1 < out_size;) {
        if (ty != HL_PIECE_BYTE && i + 3 <= l && !memcmp(s + i, TOK_WS, 3)) {
            out[o++] = ' ';
            i += 3;
        } else {
            out[o++] = s[i++];
        }
    }
    out[o] = '\0';
    return o;
}
