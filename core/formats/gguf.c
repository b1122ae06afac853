/* GGUF reader. See gguf.h; layout in docs/file-formats.md §5. */
#include "core/formats/gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/tensor.h"

struct hl_gguf {
    const unsigned char *base;
    size_t len;
    char label[512];
    uint32_t version;
    size_t alignment;
    size_t data_offset;
    hl_gguf_kv *kvs;
    int n_kv;
    hl_gguf_tensor *tensors;
    int n_tensors;
    int *by_name; /* tensor indices sorted by name */
};

/* ---- ggml type table ------------------------------------------------------------- */

static const struct {
    uint32_t type;
    const char *name;
    int block;     /* elements per block */
    int type_size; /* bytes per block */
} ggml_types[] = {
    {HL_GGML_F32, "F32", 1, 4},         {HL_GGML_F16, "F16", 1, 2},        {HL_GGML_Q4_0, "Q4_0", 32, 18},
    {HL_GGML_Q4_1, "Q4_1", 32, 20},     {HL_GGML_Q5_0, "Q5_0", 32, 22},    {HL_GGML_Q5_1, "Q5_1", 32, 24},
    {HL_GGML_Q8_0, "Q8_0", 32, 34},     {HL_GGML_Q8_1, "Q8_1", 32, 36},    {HL_GGML_Q2_K, "Q2_K", 256, 84},
    {HL_GGML_Q3_K, "Q3_K", 256, 110},   {HL_GGML_Q4_K, "Q4_K", 256, 144},  {HL_GGML_Q5_K, "Q5_K", 256, 176},
    {HL_GGML_Q6_K, "Q6_K", 256, 210},   {HL_GGML_Q8_K, "Q8_K", 256, 292},  {HL_GGML_IQ4_NL, "IQ4_NL", 32, 18},
    {HL_GGML_IQ4_XS, "IQ4_XS", 256, 136}, {HL_GGML_I8, "I8", 1, 1},        {HL_GGML_I16, "I16", 1, 2},
    {HL_GGML_I32, "I32", 1, 4},         {HL_GGML_I64, "I64", 1, 8},        {HL_GGML_F64, "F64", 1, 8},
    {HL_GGML_BF16, "BF16", 1, 2},
};
#define N_GGML_TYPES ((int)(sizeof ggml_types / sizeof ggml_types[0]))

static int ggml_type_index(uint32_t type) {
    for (int i = 0; i < N_GGML_TYPES; i++)
        if (ggml_types[i].type == type)
            return i;
    return -1;
}

const char *hl_ggml_type_name(uint32_t type) {
    int i = ggml_type_index(type);
    return i < 0 ? "?" : ggml_types[i].name;
}

size_t hl_ggml_nbytes(uint32_t type, int64_t numel) {
    int i = ggml_type_index(type);
    if (i < 0 || numel < 0 || numel % ggml_types[i].block)
        return 0;
    uint64_t blocks = (uint64_t)numel / (uint64_t)ggml_types[i].block;
    if (blocks > (uint64_t)SIZE_MAX / 2 / (uint64_t)ggml_types[i].type_size)
        return 0;
    return (size_t)(blocks * (uint64_t)ggml_types[i].type_size);
}

hl_status hl_ggml_to_f32(uint32_t type, const void *src, int64_t numel, float *dst) {
    const unsigned char *s = src;
    switch (type) {
    case HL_GGML_F32:
        memcpy(dst, src, (size_t)numel * 4);
        return HL_OK;
    case HL_GGML_F16:
    case HL_GGML_BF16:
        for (int64_t i = 0; i < numel; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = type == HL_GGML_F16 ? hl_f16_to_f32(h) : hl_bf16_to_f32(h);
        }
        return HL_OK;
    case HL_GGML_Q8_0:
        /* block: f16 scale d, 32 × int8 q; value = d · q */
        if (numel % 32)
            return hl_fail(HL_ERR_FORMAT, "Q8_0 tensor of %lld elements is not whole blocks", (long long)numel);
        for (int64_t b = 0; b < numel / 32; b++) {
            const unsigned char *blk = s + 34 * b;
            uint16_t h;
            memcpy(&h, blk, 2);
            float d = hl_f16_to_f32(h);
            for (int j = 0; j < 32; j++)
                dst[32 * b + j] = d * (float)(int8_t)blk[2 + j];
        }
        return HL_OK;
    default:
        return hl_fail(HL_ERR_FORMAT, "ggml type %s (%u) cannot be converted (supported: F32, F16, BF16, Q8_0)",
                       hl_ggml_type_name(type), type);
    }
}

/* ---- cursor over the image ----------------------------------------------------------- */

typedef struct {
    const unsigned char *p;
    size_t len, pos;
    const char *label;
} cursor;

static size_t cur_left(const cursor *c) { return c->len - c->pos; }

static hl_status cur_need(cursor *c, size_t n, const char *what) {
    if (n > cur_left(c))
        return hl_fail(HL_ERR_FORMAT, "%s: truncated: %s needs %zu bytes at offset %zu but only %zu remain", c->label,
                       what, n, c->pos, cur_left(c));
    return HL_OK;
}

static hl_status cur_u32(cursor *c, uint32_t *v, const char *what) {
    HL_TRY(cur_need(c, 4, what));
    const unsigned char *b = c->p + c->pos;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    c->pos += 4;
    return HL_OK;
}

static hl_status cur_u64(cursor *c, uint64_t *v, const char *what) {
    HL_TRY(cur_need(c, 8, what));
    uint64_t x = 0;
    for (int i = 7; i >= 0; i--)
        x = (x << 8) | c->p[c->pos + (size_t)i];
    *v = x;
    c->pos += 8;
    return HL_OK;
}

/* gguf_string: uint64 length + bytes. Returns a malloc'd NUL-terminated copy. */
static hl_status cur_string(cursor *c, char **out, const char *what) {
    uint64_t n;
    *out = NULL;
    HL_TRY(cur_u64(c, &n, what));
    if (n > cur_left(c))
        return hl_fail(HL_ERR_FORMAT, "%s: %s: string of %llu bytes runs past the end of the file (offset %zu)",
                       c->label, what, (unsigned long long)n, c->pos);
    char *s = malloc((size_t)n + 1);
    if (!s)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    memcpy(s, c->p + c->pos, (size_t)n);
    s[n] = '\0';
    c->pos += (size_t)n;
    *out = s;
    return HL_OK;
}

static size_t scalar_size(uint32_t t) {
    switch (t) {
    case HL_GGUF_U8: case HL_GGUF_I8: case HL_GGUF_BOOL: return 1;
    case HL_GGUF_U16: case HL_GGUF_I16: return 2;
    case HL_GGUF_U32: case HL_GGUF_I32: case HL_GGUF_F32: return 4;
    case HL_GGUF_U64: case HL_GGUF_I64: case HL_GGUF_F64: return 8;
    default: return 0;
    }
}

static void read_scalar(const unsigned char *b, uint32_t t, hl_gguf_kv *kv) {
    uint64_t u = 0;
    size_t n = scalar_size(t);
    for (size_t i = n; i-- > 0;)
        u = (u << 8) | b[i];
    kv->u = u;
    switch (t) {
    case HL_GGUF_I8: kv->i = (int8_t)u; kv->f = (double)kv->i; break;
    case HL_GGUF_I16: kv->i = (int16_t)u; kv->f = (double)kv->i; break;
    case HL_GGUF_I32: kv->i = (int32_t)u; kv->f = (double)kv->i; break;
    case HL_GGUF_I64: kv->i = (int64_t)u; kv->f = (double)kv->i; break;
    case HL_GGUF_F32: {
        uint32_t w = (uint32_t)u;
        float f;
        memcpy(&f, &w, 4);
        kv->f = f;
        kv->i = 0;
        break;
    }
    case HL_GGUF_F64: memcpy(&kv->f, &u, 8); kv->i = 0; break;
    default: kv->i = (int64_t)u; kv->f = (double)u; break;
    }
}

/* Skip (and bounds-check) an array value of elem type `et` and `count` elements. */
static hl_status skip_array(cursor *c, uint32_t et, uint64_t count, int depth) {
    size_t es = scalar_size(et);
    if (es) {
        if (count > cur_left(c) / es)
            return hl_fail(HL_ERR_FORMAT, "%s: array of %llu elements runs past the end of the file (offset %zu)",
                           c->label, (unsigned long long)count, c->pos);
        c->pos += (size_t)count * es;
        return HL_OK;
    }
    if (et == HL_GGUF_STRING) {
        if (count > cur_left(c) / 8)
            return hl_fail(HL_ERR_FORMAT, "%s: array of %llu strings runs past the end of the file (offset %zu)",
                           c->label, (unsigned long long)count, c->pos);
        for (uint64_t i = 0; i < count; i++) {
            uint64_t n;
            HL_TRY(cur_u64(c, &n, "array string length"));
            if (n > cur_left(c))
                return hl_fail(HL_ERR_FORMAT, "%s: string %llu of an array runs past the end of the file", c->label,
                               (unsigned long long)i);
            c->pos += (size_t)n;
        }
        return HL_OK;
    }
    if (et == HL_GGUF_ARRAY) {
        if (depth >= 4)
            return hl_fail(HL_ERR_FORMAT, "%s: arrays nested too deeply", c->label);
        if (count > cur_left(c) / 12)
            return hl_fail(HL_ERR_FORMAT, "%s: array of %llu arrays runs past the end of the file", c->label,
                           (unsigned long long)count);
        for (uint64_t i = 0; i < count; i++) {
            uint32_t et2;
            uint64_t n2;
            HL_TRY(cur_u32(c, &et2, "nested array type"));
            HL_TRY(cur_u64(c, &n2, "nested array count"));
            HL_TRY(skip_array(c, et2, n2, depth + 1));
        }
        return HL_OK;
    }
    return hl_fail(HL_ERR_FORMAT, "%s: unknown array element type %u", c->label, et);
}

static hl_status read_kv(cursor *c, hl_gguf_kv *kv) {
    char *key = NULL;
    HL_TRY(cur_string(c, &key, "metadata key"));
    kv->key = key;
    uint32_t t;
    HL_TRY(cur_u32(c, &t, "metadata value type"));
    kv->type = (hl_gguf_type)t;
    size_t ss = scalar_size(t);
    if (ss) {
        HL_TRY(cur_need(c, ss, "metadata value"));
        read_scalar(c->p + c->pos, t, kv);
        c->pos += ss;
        return HL_OK;
    }
    if (t == HL_GGUF_STRING) {
        char *s = NULL;
        HL_TRY(cur_string(c, &s, kv->key));
        kv->str = s;
        return HL_OK;
    }
    if (t == HL_GGUF_ARRAY) {
        uint32_t et;
        uint64_t n;
        HL_TRY(cur_u32(c, &et, "array element type"));
        HL_TRY(cur_u64(c, &n, "array count"));
        kv->elem_type = (hl_gguf_type)et;
        kv->count = n;
        kv->payload = c->p + c->pos;
        hl_status rc = skip_array(c, et, n, 0);
        if (rc != HL_OK)
            return hl_fail_context(rc, "key \"%.100s\"", kv->key);
        return HL_OK;
    }
    return hl_fail(HL_ERR_FORMAT, "%s: key \"%.100s\" has unknown value type %u", c->label, kv->key, t);
}

void hl_gguf_free(hl_gguf *g) {
    if (!g)
        return;
    for (int i = 0; i < g->n_kv; i++) {
        free((char *)g->kvs[i].key);
        free((char *)g->kvs[i].str);
    }
    for (int i = 0; i < g->n_tensors; i++)
        free((char *)g->tensors[i].name);
    free(g->kvs);
    free(g->tensors);
    free(g->by_name);
    free(g);
}

typedef struct {
    const char *name;
    int index;
} name_ref;

static int cmp_name_ref(const void *a, const void *b) {
    return strcmp(((const name_ref *)a)->name, ((const name_ref *)b)->name);
}

typedef struct {
    uint64_t begin, end;
    int index;
} range_ref;

static int cmp_range(const void *a, const void *b) {
    const range_ref *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

hl_status hl_gguf_parse(hl_gguf **out, const void *data, size_t len, const char *label) {
    *out = NULL;
    hl_gguf *g = calloc(1, sizeof *g);
    if (!g)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    snprintf(g->label, sizeof g->label, "%s", label ? label : "gguf");
    g->base = data;
    g->len = len;
    cursor c = {data, len, 0, g->label};
    hl_status rc = HL_OK;
    uint64_t n_tensors = 0, n_kv = 0;

    if (len < 4 || memcmp(data, "GGUF", 4) != 0) {
        rc = hl_fail(HL_ERR_FORMAT, "%s: not a GGUF file (no \"GGUF\" magic)", g->label);
        goto fail;
    }
    c.pos = 4;
    if ((rc = cur_u32(&c, &g->version, "version")) != HL_OK)
        goto fail;
    if (g->version != 2 && g->version != 3) {
        rc = hl_fail(HL_ERR_FORMAT, "%s: GGUF version %u is not supported (2 and 3 are)", g->label, g->version);
        goto fail;
    }
    if ((rc = cur_u64(&c, &n_tensors, "tensor count")) != HL_OK || (rc = cur_u64(&c, &n_kv, "key count")) != HL_OK)
        goto fail;
    /* Each entry takes at least 13 (kv) / 24 (tensor info) bytes: counts beyond that are lies. */
    if (n_kv > cur_left(&c) / 13 || n_tensors > cur_left(&c) / 24 || n_kv > 1000000 || n_tensors > 1000000) {
        rc = hl_fail(HL_ERR_FORMAT, "%s: header claims %llu tensors and %llu keys, more than the %zu-byte file can hold",
                     g->label, (unsigned long long)n_tensors, (unsigned long long)n_kv, len);
        goto fail;
    }
    g->kvs = calloc(n_kv ? (size_t)n_kv : 1, sizeof *g->kvs);
    g->tensors = calloc(n_tensors ? (size_t)n_tensors : 1, sizeof *g->tensors);
    g->by_name = calloc(n_tensors ? (size_t)n_tensors : 1, sizeof *g->by_name);
    if (!g->kvs || !g->tensors || !g->by_name) {
        rc = hl_fail(HL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (uint64_t i = 0; i < n_kv; i++) {
        g->n_kv++;
        if ((rc = read_kv(&c, &g->kvs[i])) != HL_OK)
            goto fail;
    }
    g->alignment = 32;
    const hl_gguf_kv *al = hl_gguf_find_kv(g, "general.alignment");
    if (al) {
        if (!scalar_size(al->type) || al->type == HL_GGUF_F32 || al->type == HL_GGUF_F64 || al->u == 0 ||
            (al->u & (al->u - 1)) || al->u > (1u << 20)) {
            rc = hl_fail(HL_ERR_FORMAT, "%s: general.alignment must be a power of two integer ≤ 1 MiB", g->label);
            goto fail;
        }
        g->alignment = (size_t)al->u;
    }
    for (uint64_t i = 0; i < n_tensors; i++) {
        hl_gguf_tensor *t = &g->tensors[i];
        char *name = NULL;
        g->n_tensors++;
        if ((rc = cur_string(&c, &name, "tensor name")) != HL_OK)
            goto fail;
        t->name = name;
        if ((rc = cur_u32(&c, &t->n_dims, "tensor rank")) != HL_OK)
            goto fail;
        if (t->n_dims == 0 || t->n_dims > HL_GGUF_MAX_DIMS) {
            rc = hl_fail(HL_ERR_FORMAT, "%s: tensor \"%.200s\" has %u dimensions (1..%d allowed)", g->label, t->name,
                         t->n_dims, HL_GGUF_MAX_DIMS);
            goto fail;
        }
        uint64_t numel = 1;
        for (int d = 0; d < HL_GGUF_MAX_DIMS; d++)
            t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            uint64_t v;
            if ((rc = cur_u64(&c, &v, "tensor dimension")) != HL_OK)
                goto fail;
            if (v > ((uint64_t)1 << 62) || (v && numel > ((uint64_t)1 << 62) / v)) {
                rc = hl_fail(HL_ERR_FORMAT, "%s: tensor \"%.200s\" has an absurd shape (dimension %u = %llu)",
                             g->label, t->name, d, (unsigned long long)v);
                goto fail;
            }
            t->ne[d] = (int64_t)v;
            numel *= v;
        }
        t->numel = (int64_t)numel;
        if ((rc = cur_u32(&c, &t->type, "tensor type")) != HL_OK || (rc = cur_u64(&c, &t->offset, "tensor offset")))
            goto fail;
        if (ggml_type_index(t->type) < 0) {
            rc = hl_fail(HL_ERR_FORMAT, "%s: tensor \"%.200s\" has unsupported ggml type %u", g->label, t->name,
                         t->type);
            goto fail;
        }
        t->nbytes = hl_ggml_nbytes(t->type, t->numel);
        if (t->nbytes == 0 && t->numel != 0) {
            rc = hl_fail(HL_ERR_FORMAT, "%s: tensor \"%.200s\": %lld elements are not whole %s blocks or too many",
                         g->label, t->name, (long long)t->numel, hl_ggml_type_name(t->type));
            goto fail;
        }
        if (ggml_types[ggml_type_index(t->type)].block > 1 && t->ne[0] % ggml_types[ggml_type_index(t->type)].block) {
            rc = hl_fail(HL_ERR_FORMAT, "%s: tensor \"%.200s\": row length %lld is not a multiple of the %s block",
                         g->label, t->name, (long long)t->ne[0], hl_ggml_type_name(t->type));
            goto fail;
        }
        if (t->offset % g->alignment) {
            rc = hl_fail(HL_ERR_FORMAT, "%s: tensor \"%.200s\": offset %llu is not aligned to %zu", g->label, t->name,
                         (unsigned long long)t->offset, g->alignment);
            goto fail;
        }
    }
    /* Data section starts at the next multiple of the alignment. */
    size_t data_off = c.pos + (g->alignment - c.pos % g->alignment) % g->alignment;
    g->data_offset = data_off;
    if (n_tensors > 0 && data_off > len) {
        rc = hl_fail(HL_ERR_FORMAT, "%s: truncated: the data section would start at %zu but the file has %zu bytes",
                     g->label, data_off, len);
        goto fail;
    }
    size_t data_len = data_off <= len ? len - data_off : 0;
    for (int i = 0; i < g->n_tensors; i++) {
        hl_gguf_tensor *t = &g->tensors[i];
        if (t->offset > data_len || t->nbytes > data_len - t->offset) {
            rc = hl_fail(HL_ERR_FORMAT,
                         "%s: tensor \"%.200s\" (%zu bytes at data offset %llu) runs past the end of the file "
                         "(%zu data bytes; truncated?)", g->label, t->name, t->nbytes,
                         (unsigned long long)t->offset, data_len);
            goto fail;
        }
        t->data = g->base + data_off + t->offset;
    }
    /* Duplicate names and overlapping tensors are corruption. */
    if (g->n_tensors > 0) {
        name_ref *refs = malloc((size_t)g->n_tensors * sizeof *refs);
        range_ref *ranges = malloc((size_t)g->n_tensors * sizeof *ranges);
        if (!refs || !ranges) {
            free(refs);
            free(ranges);
            rc = hl_fail(HL_ERR_NOMEM, "out of memory");
            goto fail;
        }
        for (int i = 0; i < g->n_tensors; i++) {
            refs[i] = (name_ref){g->tensors[i].name, i};
            ranges[i] = (range_ref){g->tensors[i].offset, g->tensors[i].offset + g->tensors[i].nbytes, i};
        }
        qsort(refs, (size_t)g->n_tensors, sizeof *refs, cmp_name_ref);
        qsort(ranges, (size_t)g->n_tensors, sizeof *ranges, cmp_range);
        uint64_t reach = 0;
        int reach_i = -1;
        for (int i = 0; i < g->n_tensors && rc == HL_OK; i++) {
            if (i > 0 && !strcmp(refs[i - 1].name, refs[i].name))
                rc = hl_fail(HL_ERR_FORMAT, "%s: tensor \"%.200s\" appears twice", g->label, refs[i].name);
            g->by_name[i] = refs[i].index;
            if (ranges[i].end == ranges[i].begin)
                continue;
            if (rc == HL_OK && reach_i >= 0 && ranges[i].begin < reach)
                rc = hl_fail(HL_ERR_FORMAT, "%s: tensors \"%.200s\" and \"%.200s\" overlap", g->label,
                             g->tensors[reach_i].name, g->tensors[ranges[i].index].name);
            if (ranges[i].end > reach) {
                reach = ranges[i].end;
                reach_i = ranges[i].index;
            }
        }
        free(refs);
        free(ranges);
        if (rc != HL_OK)
            goto fail;
    }
    *out = g;
    return HL_OK;
fail:
    hl_gguf_free(g);
    return rc;
}

uint32_t hl_gguf_version(const hl_gguf *g) { return g->version; }
const char *hl_gguf_label(const hl_gguf *g) { return g->label; }
size_t hl_gguf_alignment(const hl_gguf *g) { return g->alignment; }
size_t hl_gguf_data_offset(const hl_gguf *g) { return g->data_offset; }
int hl_gguf_kv_count(const hl_gguf *g) { return g->n_kv; }
const hl_gguf_kv *hl_gguf_kv_at(const hl_gguf *g, int i) { return i >= 0 && i < g->n_kv ? &g->kvs[i] : NULL; }
int hl_gguf_tensor_count(const hl_gguf *g) { return g->n_tensors; }

const hl_gguf_tensor *hl_gguf_tensor_at(const hl_gguf *g, int i) {
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const hl_gguf_kv *hl_gguf_find_kv(const hl_gguf *g, const char *key) {
    for (int i = 0; i < g->n_kv; i++)
        if (g->kvs[i].key && !strcmp(g->kvs[i].key, key))
            return &g->kvs[i];
    return NULL;
}

const hl_gguf_tensor *hl_gguf_find_tensor(const hl_gguf *g, const char *name) {
    int lo = 0, hi = g->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const hl_gguf_tensor *t = &g->tensors[g->by_name[mid]];
        int c = strcmp(name, t->name);
        if (!c)
            return t;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

static int is_int_type(hl_gguf_type t) {
    return t == HL_GGUF_U8 || t == HL_GGUF_I8 || t == HL_GGUF_U16 || t == HL_GGUF_I16 || t == HL_GGUF_U32 ||
           t == HL_GGUF_I32 || t == HL_GGUF_U64 || t == HL_GGUF_I64 || t == HL_GGUF_BOOL;
}

hl_status hl_gguf_get_int(const hl_gguf *g, const char *key, int64_t *out) {
    const hl_gguf_kv *kv = hl_gguf_find_kv(g, key);
    if (!kv)
        return hl_fail(HL_ERR_NOT_FOUND, "%s: key %s is missing", g->label, key);
    if (!is_int_type(kv->type))
        return hl_fail(HL_ERR_FORMAT, "%s: key %s is not an integer", g->label, key);
    if (kv->type == HL_GGUF_U64 && kv->u > (uint64_t)INT64_MAX)
        return hl_fail(HL_ERR_FORMAT, "%s: key %s = %llu is out of range", g->label, key, (unsigned long long)kv->u);
    *out = kv->i;
    return HL_OK;
}

hl_status hl_gguf_get_float(const hl_gguf *g, const char *key, double *out) {
    const hl_gguf_kv *kv = hl_gguf_find_kv(g, key);
    if (!kv)
        return hl_fail(HL_ERR_NOT_FOUND, "%s: key %s is missing", g->label, key);
    if (kv->type != HL_GGUF_F32 && kv->type != HL_GGUF_F64 && !is_int_type(kv->type))
        return hl_fail(HL_ERR_FORMAT, "%s: key %s is not a number", g->label, key);
    *out = kv->f;
    return HL_OK;
}

hl_status hl_gguf_get_string(const hl_gguf *g, const char *key, const char **out) {
    const hl_gguf_kv *kv = hl_gguf_find_kv(g, key);
    if (!kv)
        return hl_fail(HL_ERR_NOT_FOUND, "%s: key %s is missing", g->label, key);
    if (kv->type != HL_GGUF_STRING)
        return hl_fail(HL_ERR_FORMAT, "%s: key %s is not a string", g->label, key);
    *out = kv->str;
    return HL_OK;
}

/* Arrays were bounds-checked at parse time, so walking them again cannot leave the image. */
hl_status hl_gguf_array_string(const hl_gguf_kv *kv, uint64_t index, char **out) {
    *out = NULL;
    if (kv->type != HL_GGUF_ARRAY || kv->elem_type != HL_GGUF_STRING || index >= kv->count)
        return hl_fail(HL_ERR_FORMAT, "key %s: no string element %llu", kv->key, (unsigned long long)index);
    const unsigned char *p = kv->payload;
    for (uint64_t i = 0;; i++) {
        uint64_t n = 0;
        for (int b = 7; b >= 0; b--)
            n = (n << 8) | p[b];
        p += 8;
        if (i == index) {
            char *s = malloc((size_t)n + 1);
            if (!s)
                return hl_fail(HL_ERR_NOMEM, "out of memory");
            memcpy(s, p, (size_t)n);
            s[n] = '\0';
            *out = s;
            return HL_OK;
        }
        p += n;
    }
}

hl_status hl_gguf_array_number(const hl_gguf_kv *kv, uint64_t index, double *out) {
    size_t es = kv->type == HL_GGUF_ARRAY ? scalar_size(kv->elem_type) : 0;
    if (!es || index >= kv->count)
        return hl_fail(HL_ERR_FORMAT, "key %s: no numeric element %llu", kv->key, (unsigned long long)index);
    hl_gguf_kv tmp = {0};
    read_scalar(kv->payload + index * es, kv->elem_type, &tmp);
    *out = tmp.f;
    return HL_OK;
}

/* ---- tokenizer vocabulary ------------------------------------------------------------- */

void hl_gguf_vocab_free(hl_gguf_vocab *v) {
    if (!v)
        return;
    if (v->tokens)
        for (int i = 0; i < v->n; i++)
            free(v->tokens[i]);
    free(v->tokens);
    free(v->scores);
    free(v->types);
    free(v);
}

static int vocab_id(const hl_gguf *g, const char *key, int n) {
    int64_t v;
    if (hl_gguf_get_int(g, key, &v) != HL_OK || v < 0 || v >= n)
        return -1;
    return (int)v;
}

hl_status hl_gguf_vocab_load(const hl_gguf *g, hl_gguf_vocab **out) {
    *out = NULL;
    const hl_gguf_kv *tk = hl_gguf_find_kv(g, "tokenizer.ggml.tokens");
    if (!tk)
        return hl_fail(HL_ERR_NOT_FOUND, "%s: no tokenizer vocabulary (tokenizer.ggml.tokens) in this file", g->label);
    if (tk->type != HL_GGUF_ARRAY || tk->elem_type != HL_GGUF_STRING || tk->count == 0 || tk->count > (1u << 24))
        return hl_fail(HL_ERR_FORMAT, "%s: tokenizer.ggml.tokens must be a non-empty array of strings", g->label);
    int n = (int)tk->count;
    const hl_gguf_kv *sc = hl_gguf_find_kv(g, "tokenizer.ggml.scores");
    const hl_gguf_kv *ty = hl_gguf_find_kv(g, "tokenizer.ggml.token_type");
    if (sc && (sc->type != HL_GGUF_ARRAY || !scalar_size(sc->elem_type) || sc->count != tk->count))
        return hl_fail(HL_ERR_FORMAT, "%s: tokenizer.ggml.scores must be %d numbers", g->label, n);
    if (ty && (ty->type != HL_GGUF_ARRAY || !is_int_type(ty->elem_type) || ty->count != tk->count))
        return hl_fail(HL_ERR_FORMAT, "%s: tokenizer.ggml.token_type must be %d integers", g->label, n);
    hl_gguf_vocab *v = calloc(1, sizeof *v);
    if (!v)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    v->tokens = calloc((size_t)n, sizeof *v->tokens);
    v->scores = calloc((size_t)n, sizeof *v->scores);
    v->types = ty ? calloc((size_t)n, sizeof *v->types) : NULL;
    if (!v->tokens || !v->scores || (ty && !v->types)) {
        hl_gguf_vocab_free(v);
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    }
    v->n = n;
    /* Walk the string array once (hl_gguf_array_string per element would be quadratic). */
    const unsigned char *p = tk->payload;
    for (int i = 0; i < n; i++) {
        uint64_t len = 0;
        for (int b = 7; b >= 0; b--)
            len = (len << 8) | p[b];
        p += 8;
        v->tokens[i] = malloc((size_t)len + 1);
        if (!v->tokens[i]) {
            hl_gguf_vocab_free(v);
            return hl_fail(HL_ERR_NOMEM, "out of memory");
        }
        memcpy(v->tokens[i], p, (size_t)len);
        v->tokens[i][len] = '\0';
        p += len;
    }
    for (int i = 0; i < n; i++) {
        double d = 0;
        if (sc)
            hl_gguf_array_number(sc, (uint64_t)i, &d);
        v->scores[i] = (float)d;
        if (ty) {
            hl_gguf_kv tmp = {0};
            read_scalar(ty->payload + (size_t)i * scalar_size(ty->elem_type), ty->elem_type, &tmp);
            v->types[i] = (int32_t)tmp.i;
        }
    }
    v->unk_id = vocab_id(g, "tokenizer.ggml.unknown_token_id", n);
    v->bos_id = vocab_id(g, "tokenizer.ggml.bos_token_id", n);
    v->eos_id = vocab_id(g, "tokenizer.ggml.eos_token_id", n);
    int64_t ab;
    v->add_bos = hl_gguf_get_int(g, "tokenizer.ggml.add_bos_token", &ab) == HL_OK ? (ab != 0) : 1;
    const char *model = NULL;
    if (hl_gguf_get_string(g, "tokenizer.ggml.model", &model) == HL_OK)
        snprintf(v->model, sizeof v->model, "%s", model);
    hl_clear_error();
    *out = v;
    return HL_OK;
}
