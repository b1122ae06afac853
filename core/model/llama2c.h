/* llama2.c checkpoints (docs/file-formats.md §1): legacy v0 (no magic; negative vocab = unshared
 * classifier), v1 ("ak42", version 1, fp32) and v2 ("ak42", version 2, Q8_0 groups).
 *
 * Everything works on a (ptr, len) image so the parser can be fuzzed without files. The
 * header is validated (positive sizes, heads divide, sane bounds) and the file length must
 * equal what the header implies exactly — a v0 file has no magic, so the exact size is what
 * tells it apart from random bytes. */
#ifndef HL_LLAMA2C_H
#define HL_LLAMA2C_H

#include <stddef.h>

#include "core/model/model.h"

typedef struct {
    int version;            /* 0, 1 or 2 */
    hl_llama_config cfg;    /* tie_word_embeddings = shared classifier */
    int group_size;         /* v2 only */
    size_t header_bytes;    /* 28 (v0) or 256 */
    size_t expected_size;   /* exact file size the header implies */
} hl_llama2c_header;

/* 1 if the image starts with the v1/v2 magic "ak42" (0x616b3432 little-endian). */
int hl_llama2c_has_magic(const void *data, size_t len);

/* Parse and validate the header and the implied size. */
hl_status hl_llama2c_read_header(const void *data, size_t len, const char *label, hl_llama2c_header *out);

/* Fill `m` with views into `data` (v0/v1; q/k rows permuted into owned copies) or owned
 * dequantised f32 (v2). Does not take ownership of `data`. On failure m is freed. */
hl_status hl_llama2c_load_memory(hl_model *m, const void *data, size_t len, const char *label);

#endif
