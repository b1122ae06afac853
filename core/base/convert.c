/* Span conversions (see convert.h). The bf16 ones are integer shifts and adds that gcc turns
 * into vector code at any -march; f16 uses the F16C instruction when the build targets it
 * (every AVX2 CPU has it), else the scalar helper. */
#include "core/base/convert.h"

#include <string.h>
#if defined(__F16C__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

void hl_bf16_to_f32_n(float *dst, const uint16_t *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)src[i] << 16;
        memcpy(&dst[i], &u, 4);
    }
}

void hl_f16_to_f32_n(float *dst, const uint16_t *src, int64_t n) {
    int64_t i = 0;
#if defined(__AVX512F__)
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
#endif
#if defined(__F16C__)
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
#endif
    for (; i < n; i++)
        dst[i] = hl_f16_to_f32(src[i]);
}

/* Round to nearest even on the bit pattern; a NaN keeps its top bits and gets the quiet bit
 * (as hl_f32_to_bf16). Branch-free so the loop vectorises. */
static inline uint32_t bf16_bits(uint32_t u) {
    uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    uint32_t q = (u >> 16) | 0x40u;
    return (u & 0x7fffffffu) > 0x7f800000u ? q : r;
}

void hl_f32_to_bf16_n(uint16_t *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &src[i], 4);
        dst[i] = (uint16_t)bf16_bits(u);
    }
}

void hl_round_bf16_n(float *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &src[i], 4);
        u = bf16_bits(u) << 16;
        memcpy(&dst[i], &u, 4);
    }
}

void hl_to_f32_n(float *dst, const void *src, hl_dtype dt, int64_t n) {
    switch (dt) {
    case HL_DTYPE_F32: memcpy(dst, src, (size_t)n * sizeof(float)); break;
    case HL_DTYPE_F16: hl_f16_to_f32_n(dst, src, n); break;
    case HL_DTYPE_BF16: hl_bf16_to_f32_n(dst, src, n); break;
    }
}

void hl_to_bf16_n(uint16_t *dst, const void *src, hl_dtype dt, int64_t n) {
    switch (dt) {
    case HL_DTYPE_F32: hl_f32_to_bf16_n(dst, src, n); break;
    case HL_DTYPE_BF16: memcpy(dst, src, (size_t)n * sizeof(uint16_t)); break;
    case HL_DTYPE_F16: {
        float tmp[256]; /* through f32 in L1-sized pieces */
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i += 256) {
            int64_t k = n - i < 256 ? n - i : 256;
            hl_f16_to_f32_n(tmp, s + i, k);
            hl_f32_to_bf16_n(dst + i, tmp, k);
        }
        break;
    }
    }
}

void hl_weight_rows_to_f32(const hl_weight *w, int64_t row0, int64_t nrows, float *dst) {
    hl_to_f32_n(dst, hl_weight_row_ptr(w, row0), w->dtype, nrows * w->cols);
}
