/* SentencePiece BPE tokenizer (LLaMA / LLaMA-2 style), read from a SentencePiece
 * `tokenizer.model` protobuf, a Hugging Face `tokenizer.json`, a llama2.c
 * `tokenizer.bin`, or built from a vocabulary (e.g. one embedded in a GGUF file).
 * Encoding equals SentencePiece's own encoder id for id. Thread-safe after load. */
#ifndef HL_TOKENIZER_H
#define HL_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "core/base/status.h"

typedef struct hl_tokenizer hl_tokenizer;

typedef enum {
    HL_PIECE_NORMAL = 1,
    HL_PIECE_UNKNOWN = 2,
    HL_PIECE_CONTROL = 3,
    HL_PIECE_USER_DEFINED = 4,
    HL_PIECE_UNUSED = 5,
    HL_PIECE_BYTE = 6,
} hl_piece_type;

/* The one tokenizer-discovery rule, used by every command and the workbench (so --tokenizer
 * and --model accept the same forms everywhere). PATH may be:
 *   - a directory: tokenizer.model, else tokenizer.json, else tokenizer.bin inside it, else a
 *     single tok*.bin (llama2.c's tok512.bin), else a single .gguf (its embedded vocabulary);
 *   - a model file (llama2.c .bin, .safetensors, config.json, a safetensors index): the
 *     tokenizer in the same directory, found as above (never the model file itself);
 *   - a GGUF file: its embedded vocabulary (the file itself);
 *   - any other file: a tokenizer file.
 * `found` receives the file to load. HL_ERR_NOT_FOUND names where it looked; HL_ERR_ARG when a
 * directory holds several tok*.bin. */
hl_status hl_tokenizer_find(const char *path, char *found, size_t cap);

/* hl_tokenizer_find, then load what it found. The format is detected from the contents.
 * Supported:
 *   - SentencePiece tokenizer.model (ModelProto), model_type BPE, identity normalizer
 *     (no precompiled charsmap); byte_fallback, add_dummy_prefix, remove_extra_whitespaces
 *     and escape_whitespaces honoured; UNIGRAM/WORD/CHAR models are refused.
 *   - Hugging Face tokenizer.json with model.type "BPE" (vocab + merges as "a b" strings or
 *     ["a","b"] pairs, byte_fallback, unk_token), normalizer Sequence[Prepend("▁"),
 *     Replace(" ","▁")] or none with a Metaspace pre-tokenizer (its `split` is ignored:
 *     whitespace is handled the SentencePiece way). added_tokens marked special become
 *     control pieces (never produced from text, as in SentencePiece, whereas HF would match
 *     "<s>" typed in the text); other added tokens
 *     behave as user-defined pieces. Merges are applied by rank, as HF does. Unigram,
 *     WordPiece, WordLevel and byte-level BPE (GPT-2/LLaMA-3) files are refused with a
 *     message naming the type.
 *   - llama2.c tokenizer.bin / tok512.bin (pieces read to the end of the file).
 *   - A GGUF file's embedded vocabulary (tokenizer.ggml.model "llama").
 * Errors name the file: HL_ERR_NOT_FOUND / HL_ERR_IO for the file, HL_ERR_FORMAT for
 * corrupt, truncated or unsupported contents. */
hl_status hl_tokenizer_load(hl_tokenizer **out, const char *path);

/* The same from bytes in memory; `name` is used in messages (and may be NULL). */
hl_status hl_tokenizer_load_buffer(hl_tokenizer **out, const void *data, size_t size, const char *name);

/* The tokenizer that belongs to a model: the same rule as hl_tokenizer_load (kept as a name
 * that says what the caller means). */
hl_status hl_tokenizer_load_for_model(const char *model_path, hl_tokenizer **out);

/* HL_OK when the tokenizer fits a model with `model_vocab_size` embedding rows (equal, or
 * up to half smaller: embeddings are sometimes padded); otherwise HL_ERR_SHAPE with
 * "tokenizer X has 32000 pieces but the model expects 512 — wrong tokenizer for this model?" */
hl_status hl_tokenizer_check_vocab(const hl_tokenizer *tok, int model_vocab_size);

/* From a vocabulary in SentencePiece spelling (U+2581 for spaces, "<0x0A>" byte pieces).
 * `types` may be NULL (then inferred: the piece at unk_id, or "<unk>", unknown; bos_id,
 * eos_id, "<s>" and "</s>" control; <0xHH> bytes; the rest normal; and with types NULL a
 * bos_id/eos_id of -1 is found by name). `scores` may be NULL (all 0). The piece at unk_id
 * is always treated as unknown. Pieces are copied. */
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
const char *hl_tokenizer_source(const hl_tokenizer *tok);         /* the file it came from ("vocabulary" if built) */
int hl_tokenizer_pad_id(const hl_tokenizer *tok);                 /* -1 when none */
float hl_tokenizer_score(const hl_tokenizer *tok, int id);        /* 0 if out of range */
int hl_tokenizer_piece_type(const hl_tokenizer *tok, int id);      /* hl_piece_type; 0 if out of range */
int hl_tokenizer_piece_to_id(const hl_tokenizer *tok, const char *piece); /* exact piece string; -1 if none */
int hl_tokenizer_add_dummy_prefix(const hl_tokenizer *tok);
int hl_tokenizer_byte_fallback(const hl_tokenizer *tok);

/* Encode `len` bytes of UTF-8 (invalid bytes go through byte fallback). With add_bos the
 * BOS id comes first. *ids is malloc'd and owned by the caller.
 * Equal to SentencePiece's EncodeAsIds id for id (tests/oracle/test_tokenizer_oracle.py):
 * invalid UTF-8 bytes become U+FFFD first (as SentencePiece's normalizer does), characters
 * outside the vocabulary become <0xHH> byte pieces (or one <unk> per run without byte
 * fallback). Control pieces (<s>, </s>, ...) are never produced from text: "<s>" in the text
 * is just characters. (SentencePiece itself fails on text containing a one-character control
 * piece; here that character falls back to bytes.) HL_ERR_ARG if add_bos and the vocabulary
 * has no BOS; texts over 512 MiB are refused. Thread-safe: any number of threads may encode
 * with one tokenizer at once. */
hl_status hl_tokenizer_encode(const hl_tokenizer *tok, const char *text, size_t len, int add_bos, int32_t **ids,
                              size_t *n_ids);

/* Decode ids to bytes (byte pieces become raw bytes, U+2581 becomes a space, the dummy-prefix
 * space at the start is dropped, control tokens produce nothing). *text is malloc'd and
 * NUL-terminated; *len excludes the NUL. Exactly SentencePiece's DecodeIds: a run of byte
 * pieces that is not valid UTF-8 gives U+FFFD per bad byte, <unk> gives the model's
 * unk_surface (" \u2047 "). An id outside the vocabulary is HL_ERR_RANGE.
 * Note: encoding replaces invalid UTF-8 input bytes with U+FFFD (as SentencePiece does),
 * and a literal U+2581 in the input encodes like a space, so decode(encode(x)) == x holds
 * for valid UTF-8 without U+2581. */
hl_status hl_tokenizer_decode(const hl_tokenizer *tok, const int32_t *ids, size_t n, char **text, size_t *len);

/* The bytes one token adds when streamed after `prev_id` (for incremental printing; pass
 * prev_id = -1 or the BOS id at the start, where the dummy-prefix space is dropped). Byte
 * pieces give their raw byte (a character may span several tokens), control tokens
 * nothing. Writes up to out_size-1 bytes plus NUL; returns the byte count. */
size_t hl_tokenizer_decode_piece(const hl_tokenizer *tok, int prev_id, int id, char *out, size_t out_size);

#endif
