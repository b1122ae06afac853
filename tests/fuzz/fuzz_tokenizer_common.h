/* Shared by the tokenizer fuzz targets: once a tokenizer loaded from fuzzed bytes, exercise
 * its tables: encode fixed strings and a slice of the input, decode the ids, stream them,
 * and decode arbitrary ids. Everything must stay in bounds (ASan/UBSan). */
#ifndef HL_FUZZ_TOKENIZER_COMMON_H
#define HL_FUZZ_TOKENIZER_COMMON_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/model/tokenizer/tokenizer.h"

static void fuzz_exercise_tokenizer(const hl_tokenizer *tok, const uint8_t *data, size_t size) {
    static const char *const texts[] = {"", "Hello world", "  two  spaces\n\tand a tab", "\xE2\x96\x81x \xFF\xC3",
                                        "<s>abc</s><0x41>\xF0\x9F\x98\x80"};
    volatile unsigned sink = 0;
    int n = hl_tokenizer_vocab_size(tok);
    for (size_t k = 0; k < sizeof texts / sizeof texts[0] + 1; k++) {
        const char *s = k < sizeof texts / sizeof texts[0] ? texts[k] : (const char *)data;
        size_t len = k < sizeof texts / sizeof texts[0] ? strlen(s) : (size > 256 ? 256 : size);
        int32_t *ids = NULL;
        size_t m = 0;
        if (hl_tokenizer_encode(tok, s, len, k & 1, &ids, &m) != HL_OK)
            continue;
        for (size_t i = 0; i < m; i++)
            if (ids[i] < 0 || ids[i] >= n)
                abort(); /* encode must only produce ids of the vocabulary */
        char *text = NULL;
        size_t tl = 0;
        if (hl_tokenizer_decode(tok, ids, m, &text, &tl) == HL_OK)
            sink += tl ? (unsigned char)text[tl - 1] : 0;
        free(text);
        char buf[64];
        int prev = -1;
        for (size_t i = 0; i < m; i++) {
            sink += (unsigned)hl_tokenizer_decode_piece(tok, prev, ids[i], buf, sizeof buf);
            prev = ids[i];
        }
        free(ids);
    }
    /* arbitrary ids (in and out of range) from the input bytes */
    int32_t any[16];
    size_t k = size / 4 < 16 ? size / 4 : 16;
    for (size_t i = 0; i < k; i++) {
        uint32_t v;
        memcpy(&v, data + 4 * i, 4);
        any[i] = n > 0 ? (int32_t)(v % (uint32_t)(n + 2)) - 1 : 0;
    }
    char *text = NULL;
    size_t tl = 0;
    if (hl_tokenizer_decode(tok, any, k, &text, &tl) == HL_OK)
        sink += (unsigned)tl;
    free(text);
    for (int i = 0; i < n && i < 64; i++) {
        const char *p = hl_tokenizer_piece(tok, i);
        sink += p ? (unsigned char)p[0] : 0;
        sink += (unsigned)hl_tokenizer_piece_to_id(tok, p);
    }
    (void)sink;
}

#endif
