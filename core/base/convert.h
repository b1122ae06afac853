/* Dtype conversions of whole spans, written for the hot loops of the frozen-weight products
 * (weights to f32, activations to bf16) and the loaders. Single-threaded: callers parallelise
 * over rows. Every function gives the same values as the scalar helpers in core/base/tensor.h
 * (round to nearest even; NaN stays NaN). */
#ifndef HL_CONVERT_H
#define HL_CONVERT_H

#include <stdint.h>

#include "core/base/tensor.h"

void hl_bf16_to_f32_n(float *dst, const uint16_t *src, int64_t n);
void hl_f16_to_f32_n(float *dst, const uint16_t *src, int64_t n);
void hl_f32_to_bf16_n(uint16_t *dst, const float *src, int64_t n);

/* n elements of `src` in dtype `dt` to f32 / to bf16 (F16 goes through f32: exact, then one
 * rounding to bf16). */
void hl_to_f32_n(float *dst, const void *src, hl_dtype dt, int64_t n);
void hl_to_bf16_n(uint16_t *dst, const void *src, hl_dtype dt, int64_t n);

/* dst[i*cols + j] = (float) w[(row0+i), j] for i < nrows: converts a block of weight rows to f32. */
void hl_weight_rows_to_f32(const hl_weight *w, int64_t row0, int64_t nrows, float *dst);

/* dst = src rounded to bf16 precision, kept in f32 (the reference bf16 path; dst may be src). */
void hl_round_bf16_n(float *dst, const float *src, int64_t n);

#endif
