/* SentencePiece BPE tokenizer (LLaMA / LLaMA-2 style), read from a SentencePiece
 * `tokenizer.model` protobuf, a Hugging Face `tokenizer.json`, a llama2.c
 * `tokenizer.bin`, or built from a vocabulary (e.g. one embedded in a GGUF file).
 * Encoding equals SentencePiece's own encoder id for id. Thread-safe after load. */
#ifndef HL_TOKENIZER_H
#define HL_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct hl_tokenizer hl_tokenizer;

typedef enum {
    HL_PIECE_NORMAL = 1,
    HL_PIECE_UNKNOWN = 2,
    HL_PIECE_CONTROL = 3,
    HL_PIECE_USER_DEFINED = 4,
    HL_PIECE_UNUSED = 5,
    HL_PIECE_BYTE = 6,
} hl_piece_type;

/* Detects the format from the contents. For a directory, looks for tokenizer.model,
 * then tokenizer.json, then tokenizer.bin inside it. */
hl_status hl_tokenizer_load(hl_tokenizer **out, const char *path);

/* From a vocabulary in SentencePiece spelling (U+2581 for spaces, "<0x0A>" byte pieces).
 * `types` may be NULL (then inferred: <unk>/<s>/</s> control, <0xHH> bytes, rest normal). */
hl_status hl_tokenizer_from_vocab(hl_tokenizer **out, int n, const char *const *pieces, const float *scores,
                                  const int32_t *types, int unk_id, int bos_id, int eos_id, int add_dummy_prefix,
                                  int byte_fallback);
void hl_tokenizer_free(hl_tokenizer *tok);

int hl_tokenizer_vocab_size(const hl_tokenizer *tok);
int hl_tokenizer_bos_id(const hl_tokenizer *tok);
int hl_tokenizer_eos_id(const hl_tokenizer *tok);
int hl_tokenizer_unk_id(const hl_tokenizer *tok);
const char *hl_tokenizer_piece(const hl_tokenizer *tok, int id); /* SentencePiece spelling; NULL if out of range */
const char *hl_tokenizer_format(const hl_tokenizer *tok);         /* "tokenizer.model", "tokenizer.json", ... */

/* Encode `len` bytes of UTF-8 (invalid bytes go through byte fallback). With add_bos the
 * BOS id comes first. *ids is malloc'd and owned by the caller. */
hl_status hl_tokenizer_encode(const hl_tokenizer *tok, const char *text, size_t len, int add_bos, int32_t **ids,
                              size_t *n_ids);

/* Decode ids to bytes (byte pieces become raw bytes, U+2581 becomes a space, the dummy-prefix
 * space at the start is dropped, control tokens produce nothing). *text is malloc'd and
 * NUL-terminated; *len excludes the NUL. */
hl_status hl_tokenizer_decode(const hl_tokenizer *tok, const int32_t *ids, size_t n, char **text, size_t *len);

/* The bytes one token adds when streamed after `prev_id` (for incremental printing).
 * Writes up to out_size-1 bytes plus NUL; returns the byte count. */
size_t hl_tokenizer_decode_piece(const hl_tokenizer *tok, int prev_id, int id, char *out, size_t out_size);

#endif
