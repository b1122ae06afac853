/* Storage dtypes and read-only weight views.
 *
 * Frozen base weights stay in their file dtype (usually mmapped); compute is f32.
 * An hl_weight is a row-major [rows, cols] view (PyTorch nn.Linear layout [out, in]);
 * a vector is rows == 1. The view never owns its bytes. */
#ifndef HL_TENSOR_H
#define HL_TENSOR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum {
    HL_DTYPE_F32 = 0,
    HL_DTYPE_F16,
    HL_DTYPE_BF16,
} hl_dtype;

typedef struct {
    hl_dtype dtype;
    const void *data; /* rows*cols elements of dtype; not owned */
    int64_t rows;
    int64_t cols;
} hl_weight;

static inline size_t hl_dtype_size(hl_dtype dtype) { return dtype == HL_DTYPE_F32 ? 4 : 2; }
const char *hl_dtype_name(hl_dtype dtype); /* "F32", "F16", "BF16" (safetensors spelling) */

static inline float hl_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Round to nearest even; NaN stays NaN. */
static inline uint16_t hl_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float hl_f16_to_f32(uint16_t h);
uint16_t hl_f32_to_f16(float f); /* round to nearest even, overflow to inf */

/* hl_weight_rows_to_f32 (a block of weight rows to f32) is in core/base/convert.h. */

/* Pointer to the first byte of row `row`. */
static inline const void *hl_weight_row_ptr(const hl_weight *w, int64_t row) {
    return (const char *)w->data + (size_t)row * (size_t)w->cols * hl_dtype_size(w->dtype);
}

#endif
