/* GGUF (llama.cpp) container reader, v2 and v3 (docs/file-formats.md §5).
 *
 * hl_gguf_parse works on any (ptr, len) image: every length, count, offset and string is
 * checked against the buffer before it is used, so a corrupt or lying file gives
 * HL_ERR_FORMAT with a message, never an out-of-bounds read. The parsed handle points
 * into the image (tensor data, array payloads); the image must outlive it.
 *
 * GGUF lists dimensions innermost first: ne[0] is the row length. A PyTorch [out, in]
 * weight has ne = {in, out}. */
#ifndef HL_GGUF_H
#define HL_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "core/base/status.h"

/* Value types of key/value pairs. */
typedef enum {
    HL_GGUF_U8 = 0,
    HL_GGUF_I8 = 1,
    HL_GGUF_U16 = 2,
    HL_GGUF_I16 = 3,
    HL_GGUF_U32 = 4,
    HL_GGUF_I32 = 5,
    HL_GGUF_F32 = 6,
    HL_GGUF_BOOL = 7,
    HL_GGUF_STRING = 8,
    HL_GGUF_ARRAY = 9,
    HL_GGUF_U64 = 10,
    HL_GGUF_I64 = 11,
    HL_GGUF_F64 = 12,
} hl_gguf_type;

/* ggml tensor types this reader knows the block layout of. */
enum {
    HL_GGML_F32 = 0,
    HL_GGML_F16 = 1,
    HL_GGML_Q4_0 = 2,
    HL_GGML_Q4_1 = 3,
    HL_GGML_Q5_0 = 6,
    HL_GGML_Q5_1 = 7,
    HL_GGML_Q8_0 = 8,
    HL_GGML_Q8_1 = 9,
    HL_GGML_Q2_K = 10,
    HL_GGML_Q3_K = 11,
    HL_GGML_Q4_K = 12,
    HL_GGML_Q5_K = 13,
    HL_GGML_Q6_K = 14,
    HL_GGML_Q8_K = 15,
    HL_GGML_IQ4_NL = 20,
    HL_GGML_IQ4_XS = 23,
    HL_GGML_I8 = 24,
    HL_GGML_I16 = 25,
    HL_GGML_I32 = 26,
    HL_GGML_I64 = 27,
    HL_GGML_F64 = 28,
    HL_GGML_BF16 = 30,
};

const char *hl_ggml_type_name(uint32_t type); /* "F32", "Q8_0", ...; "?" if unknown */

#define HL_GGUF_MAX_DIMS 4

typedef struct {
    const char *name;            /* NUL-terminated copy */
    uint32_t n_dims;
    int64_t ne[HL_GGUF_MAX_DIMS]; /* innermost first; unused dims are 1 */
    uint32_t type;               /* ggml type */
    uint64_t offset;             /* relative to the data section */
    const void *data;            /* inside the image */
    size_t nbytes;
    int64_t numel;
} hl_gguf_tensor;

typedef struct {
    const char *key;     /* NUL-terminated copy */
    hl_gguf_type type;
    /* scalars */
    uint64_t u;          /* unsigned/bool value, or the bit pattern of a signed one */
    int64_t i;           /* signed view of integer types */
    double f;            /* F32/F64 value (and integer values converted) */
    const char *str;     /* STRING: NUL-terminated copy */
    /* arrays */
    hl_gguf_type elem_type;
    uint64_t count;
    const unsigned char *payload; /* first element in the image (validated) */
} hl_gguf_kv;

typedef struct hl_gguf hl_gguf;

hl_status hl_gguf_parse(hl_gguf **out, const void *data, size_t len, const char *label);
void hl_gguf_free(hl_gguf *g);

uint32_t hl_gguf_version(const hl_gguf *g);
const char *hl_gguf_label(const hl_gguf *g); /* the name given to hl_gguf_parse, for messages */
size_t hl_gguf_alignment(const hl_gguf *g);
size_t hl_gguf_data_offset(const hl_gguf *g); /* file offset of the data section */
int hl_gguf_kv_count(const hl_gguf *g);
const hl_gguf_kv *hl_gguf_kv_at(const hl_gguf *g, int i);
const hl_gguf_kv *hl_gguf_find_kv(const hl_gguf *g, const char *key);
int hl_gguf_tensor_count(const hl_gguf *g);
const hl_gguf_tensor *hl_gguf_tensor_at(const hl_gguf *g, int i);
const hl_gguf_tensor *hl_gguf_find_tensor(const hl_gguf *g, const char *name);

/* Typed getters: HL_ERR_NOT_FOUND when absent (message names the key), HL_ERR_FORMAT when the
 * type does not fit. Integer getters accept any integer type whose value fits. */
hl_status hl_gguf_get_int(const hl_gguf *g, const char *key, int64_t *out);
hl_status hl_gguf_get_float(const hl_gguf *g, const char *key, double *out); /* F32, F64 or integer */
hl_status hl_gguf_get_string(const hl_gguf *g, const char *key, const char **out);

/* Array element access (kv->type == HL_GGUF_ARRAY). Strings are copied to a malloc'd
 * NUL-terminated buffer owned by the caller. */
hl_status hl_gguf_array_string(const hl_gguf_kv *kv, uint64_t index, char **out);
hl_status hl_gguf_array_number(const hl_gguf_kv *kv, uint64_t index, double *out);

/* The tokenizer vocabulary embedded in the file (tokenizer.ggml.*), in SentencePiece
 * spelling (U+2581 for spaces), ready for hl_tokenizer_from_vocab. */
typedef struct hl_gguf_vocab {
    int n;
    char **tokens;   /* n NUL-terminated strings */
    float *scores;   /* n (zeros when the file has none) */
    int32_t *types;  /* n (hl_piece_type values); NULL when the file has none */
    int unk_id, bos_id, eos_id; /* -1 when absent */
    int add_bos;     /* tokenizer.ggml.add_bos_token, default 1 */
    char model[32];  /* tokenizer.ggml.model, e.g. "llama" */
} hl_gguf_vocab;

hl_status hl_gguf_vocab_load(const hl_gguf *g, hl_gguf_vocab **out); /* NOT_FOUND if no tokens */
void hl_gguf_vocab_free(hl_gguf_vocab *v);

/* Element size bookkeeping: bytes of `numel` elements of ggml type (numel must be a whole
 * number of blocks). 0 for unknown types or bad sizes. */
size_t hl_ggml_nbytes(uint32_t type, int64_t numel);

/* Dequantise / convert `numel` elements of a F32, F16, BF16 or Q8_0 tensor to f32. */
hl_status hl_ggml_to_f32(uint32_t type, const void *src, int64_t numel, float *dst);

#endif
