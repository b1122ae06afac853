#include "core/formats/protobuf.h"

#include <string.h>

int hl_pb_read_varint(hl_pb_reader *r, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end)
            return HL_PB_TRUNCATED;
        uint8_t b = *r->p++;
        if (shift < 64)
            v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return HL_PB_OK;
        }
    }
    return HL_PB_BAD_VARINT;
}

int hl_pb_next(hl_pb_reader *r, hl_pb_field *f) {
    if (r->p >= r->end)
        return HL_PB_END;
    memset(f, 0, sizeof *f);
    uint64_t key;
    int rc = hl_pb_read_varint(r, &key);
    if (rc)
        return rc;
    if ((key >> 3) == 0 || (key >> 3) > 0x1fffffff)
        return HL_PB_BAD_FIELD;
    f->number = (uint32_t)(key >> 3);
    f->wire = (hl_pb_wire)(key & 7);
    size_t avail;
    switch (key & 7) {
    case HL_PB_VARINT:
        return hl_pb_read_varint(r, &f->varint);
    case HL_PB_I64:
        if ((size_t)(r->end - r->p) < 8)
            return HL_PB_TRUNCATED;
        for (int i = 7; i >= 0; i--)
            f->varint = (f->varint << 8) | r->p[i];
        r->p += 8;
        return HL_PB_OK;
    case HL_PB_I32:
        if ((size_t)(r->end - r->p) < 4)
            return HL_PB_TRUNCATED;
        f->varint = (uint64_t)r->p[0] | (uint64_t)r->p[1] << 8 | (uint64_t)r->p[2] << 16 | (uint64_t)r->p[3] << 24;
        r->p += 4;
        return HL_PB_OK;
    case HL_PB_LEN: {
        uint64_t len;
        rc = hl_pb_read_varint(r, &len);
        if (rc)
            return rc;
        avail = (size_t)(r->end - r->p);
        if (len > avail)
            return HL_PB_TRUNCATED;
        f->data = r->p;
        f->len = (size_t)len;
        r->p += len;
        return HL_PB_OK;
    }
    default:
        return HL_PB_BAD_WIRE_TYPE;
    }
}

float hl_pb_as_float(const hl_pb_field *f) {
    uint32_t bits = (uint32_t)f->varint;
    float x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

int32_t hl_pb_as_int32(const hl_pb_field *f) {
    /* int32 fields are sign-extended to 64 bits on the wire; keep the low 32 bits. */
    uint32_t low = (uint32_t)f->varint;
    int32_t v;
    memcpy(&v, &low, sizeof v);
    return v;
}

const char *hl_pb_error(int rc) {
    switch (rc) {
    case HL_PB_OK:
        return "ok";
    case HL_PB_END:
        return "end of message";
    case HL_PB_TRUNCATED:
        return "a field runs past the end of the data (truncated file?)";
    case HL_PB_BAD_VARINT:
        return "malformed varint";
    case HL_PB_BAD_WIRE_TYPE:
        return "unknown wire type";
    case HL_PB_BAD_FIELD:
        return "field number 0";
    default:
        return "unknown protobuf error";
    }
}
