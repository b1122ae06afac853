/* SHA-256 (FIPS 180-4), streaming. Used to verify downloads and to fingerprint files,
 * prompts, models and adapters (BBH results). Small and self-contained so that core/ needs no
 * crypto library. */
#ifndef HL_SHA256_H
#define HL_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "core/base/status.h"

typedef struct {
    uint32_t h[8];
    uint64_t n_bytes;     /* total bytes fed so far */
    uint8_t block[64];    /* pending partial block */
    size_t block_len;
} hl_sha256;

void hl_sha256_init(hl_sha256 *s);
void hl_sha256_update(hl_sha256 *s, const void *data, size_t len);
void hl_sha256_final(hl_sha256 *s, uint8_t digest[32]);

/* Lower-case hex of a digest; hex must hold 65 bytes. */
void hl_sha256_to_hex(const uint8_t digest[32], char hex[65]);
/* hl_sha256_final, then hl_sha256_to_hex. */
void hl_sha256_final_hex(hl_sha256 *s, char hex[65]);
/* One-shot helpers. */
void hl_sha256_hex(const void *data, size_t len, char hex[65]);
/* Hash a whole file (streamed in 1 MiB chunks); *n_bytes (may be NULL) gets its size. */
hl_status hl_sha256_file(const char *path, char hex[65], uint64_t *n_bytes);

/* 1 if s is 64 hex digits (either case). */
int hl_sha256_is_hex(const char *s);
/* Case-insensitive comparison of two hex digests: 1 if equal. */
int hl_sha256_hex_equal(const char *a, const char *b);

#endif
