/* A minimal, bounds-checked reader of the protobuf wire format (enough for SentencePiece's
 * ModelProto): walk the fields of one message, read varints, fixed32/64 and
 * length-delimited payloads. No schema, no allocation. Every read checks the remaining
 * bytes first, so a truncated or lying buffer gives an error code, never an overread.
 *
 *   hl_pb_reader r = hl_pb_reader_init(data, size);
 *   hl_pb_field f;
 *   int rc;
 *   while ((rc = hl_pb_next(&r, &f)) == HL_PB_OK) {
 *       if (f.number == 1 && f.wire == HL_PB_LEN) { ... hl_pb_reader_init(f.data, f.len) ... }
 *   }
 *   if (rc != HL_PB_END) { ... hl_pb_error(rc) ... }
 */
#ifndef HL_PROTOBUF_H
#define HL_PROTOBUF_H

#include <stddef.h>
#include <stdint.h>

enum {
    HL_PB_OK = 0,
    HL_PB_END = 1,            /* no more fields (clean end of the message) */
    HL_PB_TRUNCATED = -1,     /* a field runs past the end of the buffer */
    HL_PB_BAD_VARINT = -2,    /* a varint longer than 10 bytes */
    HL_PB_BAD_WIRE_TYPE = -3, /* wire type 3/4 (groups), 6 or 7 */
    HL_PB_BAD_FIELD = -4,     /* field number 0 */
};

typedef enum { HL_PB_VARINT = 0, HL_PB_I64 = 1, HL_PB_LEN = 2, HL_PB_I32 = 5 } hl_pb_wire;

typedef struct {
    const uint8_t *p, *end;
} hl_pb_reader;

typedef struct {
    uint32_t number;     /* field number */
    hl_pb_wire wire;
    uint64_t varint;     /* VARINT: value; I32/I64: raw little-endian bits */
    const uint8_t *data; /* LEN: payload (inside the buffer) */
    size_t len;          /* LEN: payload size */
} hl_pb_field;

static inline hl_pb_reader hl_pb_reader_init(const void *data, size_t size) {
    hl_pb_reader r;
    r.p = (const uint8_t *)data;
    r.end = r.p + (data ? size : 0);
    return r;
}

/* Read the next field. Returns HL_PB_OK, HL_PB_END or a negative error. */
int hl_pb_next(hl_pb_reader *r, hl_pb_field *f);

/* Read one varint at r->p. */
int hl_pb_read_varint(hl_pb_reader *r, uint64_t *out);

/* Helpers to view a field's value. */
float hl_pb_as_float(const hl_pb_field *f);    /* I32 bits as IEEE float */
int32_t hl_pb_as_int32(const hl_pb_field *f);  /* VARINT as int32 (negative = 10-byte varint) */

const char *hl_pb_error(int rc); /* "truncated field", ... */

#endif
