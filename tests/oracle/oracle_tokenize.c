/* Helper for tests/oracle/test_tokenizer_oracle.py: runs hydralora's tokenizer over many
 * strings through a pipe, so the test can compare with SentencePiece id for id.
 *
 *   oracle_tokenize TOKENIZER [--bos] [--decode-ids] [--stream]
 *
 * stdin holds records: u32 byte length + bytes (little-endian). For each record stdout gets
 * u32 n + n x i32 ids (encode, BOS first with --bos), then u32 len + bytes of decode(ids).
 * With --decode-ids a record is instead u32 n + n x i32 ids and stdout gets u32 len + the
 * decoded bytes, or 0xFFFFFFFF when decode refuses the ids (out of range).
 * With --stream the decoded text is built from hl_tokenizer_decode_piece instead. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/model/tokenizer/tokenizer.h"

static int read_u32(uint32_t *v) {
    unsigned char b[4];
    if (fread(b, 1, 4, stdin) != 4)
        return 0;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 1;
}

static void write_u32(uint32_t v) {
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
    fwrite(b, 1, 4, stdout);
}

static int write_text(const hl_tokenizer *tok, const int32_t *ids, size_t n, int stream) {
    char *text = NULL;
    size_t len = 0;
    if (stream) {
        size_t cap = 64 + n * 64;
        text = malloc(cap);
        if (!text)
            return 1;
        int prev = -1;
        for (size_t i = 0; i < n; i++) {
            len += hl_tokenizer_decode_piece(tok, prev, ids[i], text + len, cap - len);
            prev = ids[i];
        }
    } else if (hl_tokenizer_decode(tok, ids, n, &text, &len) != HL_OK) {
        write_u32(0xFFFFFFFFu);
        return 0;
    }
    write_u32((uint32_t)len);
    fwrite(text, 1, len, stdout);
    free(text);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: oracle_tokenize TOKENIZER [--bos] [--decode-ids] [--stream]\n");
        return 2;
    }
    int bos = 0, decode_ids = 0, stream = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--bos"))
            bos = 1;
        else if (!strcmp(argv[i], "--decode-ids"))
            decode_ids = 1;
        else if (!strcmp(argv[i], "--stream"))
            stream = 1;
    }
    hl_tokenizer *tok = NULL;
    if (hl_tokenizer_load(&tok, argv[1]) != HL_OK) {
        fprintf(stderr, "oracle_tokenize: %s\n", hl_last_error());
        return 1;
    }
    uint32_t len;
    while (read_u32(&len)) {
        if (decode_ids) {
            int32_t *ids = malloc(((size_t)len + 1) * sizeof *ids);
            if (!ids || fread(ids, 4, len, stdin) != len) {
                fprintf(stderr, "oracle_tokenize: truncated input\n");
                return 1;
            }
            write_text(tok, ids, len, stream);
            free(ids);
            continue;
        }
        char *buf = malloc((size_t)len + 1);
        if (!buf || fread(buf, 1, len, stdin) != len) {
            fprintf(stderr, "oracle_tokenize: truncated input\n");
            return 1;
        }
        int32_t *ids = NULL;
        size_t n = 0;
        if (hl_tokenizer_encode(tok, buf, len, bos, &ids, &n) != HL_OK) {
            fprintf(stderr, "oracle_tokenize: %s\n", hl_last_error());
            return 1;
        }
        write_u32((uint32_t)n);
        fwrite(ids, 4, n, stdout);
        write_text(tok, ids, n, stream);
        free(ids);
        free(buf);
    }
    hl_tokenizer_free(tok);
    return fflush(stdout) ? 1 : 0;
}
