/* PyTorch zip archive writer (see torchzip.h for the layout). */
#include "core/formats/torchzip.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/fileio.h"

/* ---------------- CRC-32 ---------------- */

static uint32_t crc_table[256];
static int crc_ready;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
    crc_ready = 1;
}

uint32_t hl_crc32(uint32_t crc, const void *data, size_t len) {
    if (!crc_ready)
        crc_init(); /* idempotent: racing threads write identical values */
    const unsigned char *p = data;
    crc = ~crc;
    for (size_t i = 0; i < len; i++)
        crc = crc_table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

/* ---------------- growable byte buffer ---------------- */

typedef struct {
    unsigned char *p;
    size_t n, cap;
    int oom;
} buf;

static void put(buf *b, const void *d, size_t n) {
    if (b->oom)
        return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        unsigned char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void put8(buf *b, unsigned v) {
    unsigned char c = (unsigned char)v;
    put(b, &c, 1);
}
static void put16(buf *b, unsigned v) {
    unsigned char c[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
    put(b, c, 2);
}
static void put32(buf *b, uint32_t v) {
    unsigned char c[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    put(b, c, 4);
}

/* ---------------- pickle (protocol 2) ---------------- */

static void pk_global(buf *b, const char *module, const char *name) {
    put8(b, 'c');
    put(b, module, strlen(module));
    put8(b, '\n');
    put(b, name, strlen(name));
    put8(b, '\n');
}
static void pk_str(buf *b, const char *s) {
    size_t n = strlen(s);
    put8(b, 'X'); /* BINUNICODE: 4-byte little-endian length + UTF-8 */
    put32(b, (uint32_t)n);
    put(b, s, n);
}
static void pk_int(buf *b, int64_t v) {
    if (v >= 0 && v < 256) {
        put8(b, 'K'); /* BININT1 */
        put8(b, (unsigned)v);
    } else if (v >= -2147483647LL - 1 && v <= 2147483647LL) {
        put8(b, 'J'); /* BININT: signed 32-bit */
        put32(b, (uint32_t)(int32_t)v);
    } else {
        put8(b, 0x8a); /* LONG1: little-endian two's complement, 8 bytes is always enough */
        put8(b, 8);
        for (int i = 0; i < 8; i++)
            put8(b, (unsigned)(((uint64_t)v >> (8 * i)) & 0xFF));
    }
}
static void pk_int_tuple(buf *b, const int64_t *v, int n) {
    if (n == 0) {
        put8(b, ')'); /* EMPTY_TUPLE */
        return;
    }
    put8(b, '('); /* MARK */
    for (int i = 0; i < n; i++)
        pk_int(b, v[i]);
    put8(b, 't'); /* TUPLE */
}

static const char *storage_class(hl_dtype d) {
    return d == HL_DTYPE_BF16 ? "BFloat16Storage" : d == HL_DTYPE_F16 ? "HalfStorage" : "FloatStorage";
}

static int64_t entry_numel(const hl_tz_entry *e) {
    int64_t n = 1;
    for (int i = 0; i < e->ndim; i++)
        n *= e->shape[i];
    return n;
}

static hl_status check_entries(const hl_tz_entry *entries, int n, hl_dtype dtype) {
    if (n < 0 || (n > 0 && !entries))
        return hl_fail(HL_ERR_ARG, "torchzip: bad tensor list");
    if (dtype != HL_DTYPE_F32 && dtype != HL_DTYPE_F16 && dtype != HL_DTYPE_BF16)
        return hl_fail(HL_ERR_ARG, "torchzip: unsupported file dtype %d", (int)dtype);
    for (int i = 0; i < n; i++) {
        const hl_tz_entry *e = &entries[i];
        if (!e->name || !e->name[0])
            return hl_fail(HL_ERR_ARG, "torchzip: tensor %d has no name", i);
        if (e->ndim < 0 || e->ndim > HL_TZ_MAX_DIMS)
            return hl_fail(HL_ERR_ARG, "torchzip: tensor %s has %d dims (0..%d allowed)", e->name, e->ndim,
                           HL_TZ_MAX_DIMS);
        for (int k = 0; k < e->ndim; k++)
            if (e->shape[k] < 0 || e->shape[k] > (1LL << 40))
                return hl_fail(HL_ERR_ARG, "torchzip: tensor %s has a bad dimension %lld", e->name,
                               (long long)e->shape[k]);
        if (entry_numel(e) > 0 && !e->data)
            return hl_fail(HL_ERR_ARG, "torchzip: tensor %s has no data", e->name);
        for (int j = 0; j < i; j++)
            if (!strcmp(entries[j].name, e->name))
                return hl_fail(HL_ERR_ARG, "torchzip: duplicate tensor name %s", e->name);
    }
    return HL_OK;
}

static hl_status build_pickle(const hl_tz_entry *entries, int n, hl_dtype dtype, buf *b) {
    put8(b, 0x80); /* PROTO 2 */
    put8(b, 2);
    pk_global(b, "collections", "OrderedDict");
    put8(b, ')');
    put8(b, 'R'); /* REDUCE: OrderedDict() */
    if (n > 0)
        put8(b, '('); /* MARK for SETITEMS */
    for (int i = 0; i < n; i++) {
        const hl_tz_entry *e = &entries[i];
        char key[24];
        snprintf(key, sizeof key, "%d", i);
        pk_str(b, e->name);
        pk_global(b, "torch._utils", "_rebuild_tensor_v2");
        put8(b, '('); /* args of _rebuild_tensor_v2 */
        put8(b, '('); /* persistent id tuple */
        pk_str(b, "storage");
        pk_global(b, "torch", storage_class(dtype));
        pk_str(b, key);
        pk_str(b, "cpu");
        pk_int(b, entry_numel(e));
        put8(b, 't');
        put8(b, 'Q'); /* BINPERSID */
        pk_int(b, 0); /* storage offset */
        pk_int_tuple(b, e->shape, e->ndim);
        int64_t stride[HL_TZ_MAX_DIMS];
        int64_t s = 1;
        for (int k = e->ndim - 1; k >= 0; k--) {
            stride[k] = s;
            s *= e->shape[k];
        }
        pk_int_tuple(b, stride, e->ndim);
        put8(b, 0x89); /* NEWFALSE: requires_grad */
        pk_global(b, "collections", "OrderedDict");
        put8(b, ')');
        put8(b, 'R'); /* backward_hooks = OrderedDict() */
        put8(b, 't'); /* TUPLE (args) */
        put8(b, 'R'); /* REDUCE */
    }
    if (n > 0)
        put8(b, 'u'); /* SETITEMS */
    put8(b, '.');     /* STOP */
    if (b->oom)
        return hl_fail(HL_ERR_NOMEM, "torchzip: out of memory building the pickle");
    return HL_OK;
}

hl_status hl_torchzip_pickle(const hl_tz_entry *entries, int n, hl_dtype dtype, unsigned char **out, size_t *len) {
    HL_TRY(check_entries(entries, n, dtype));
    buf b = {0};
    hl_status st = build_pickle(entries, n, dtype, &b);
    if (st) {
        free(b.p);
        return st;
    }
    *out = b.p;
    *len = b.n;
    return HL_OK;
}

/* ---------------- zip writer ---------------- */

#define TZ_ALIGN 64
#define TZ_LIMIT 0xFFFFFFF0ull /* stay clear of the zip64 markers */

typedef struct {
    char name[300];
    uint32_t crc;
    uint64_t size;
    uint64_t offset; /* of the local header */
} tz_record;

typedef struct {
    int fd;
    const char *path; /* final path, for messages */
    uint64_t pos;
    tz_record *recs;
    int n_recs, cap_recs;
} tz_writer;

static hl_status wr_fail(const tz_writer *w, int err) {
    return hl_fail(err == ENOSPC || err == EDQUOT ? HL_ERR_DISK_FULL : HL_ERR_IO, "cannot write %s: %s", w->path,
                   strerror(err));
}

static hl_status wr_all(tz_writer *w, const void *data, size_t n) {
    const char *p = data;
    while (n) {
        ssize_t k = write(w->fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return wr_fail(w, k < 0 ? errno : ENOSPC);
        p += k;
        n -= (size_t)k;
        w->pos += (uint64_t)k;
    }
    return HL_OK;
}

/* DOS date 1980-01-01, time 00:00: fixed so that identical tensors give identical files. */
#define TZ_DOS_TIME 0
#define TZ_DOS_DATE 0x21

/* Local header with CRC and sizes; padding in an "FB" extra field so that the data
 * starts at a multiple of 64. */
static hl_status begin_record(tz_writer *w, const char *name, uint32_t crc, uint64_t size) {
    if (w->n_recs == w->cap_recs) {
        int cap = w->cap_recs ? w->cap_recs * 2 : 64;
        tz_record *nr = realloc(w->recs, (size_t)cap * sizeof *nr);
        if (!nr)
            return hl_fail(HL_ERR_NOMEM, "torchzip: out of memory");
        w->recs = nr;
        w->cap_recs = cap;
    }
    size_t nl = strlen(name);
    if (nl >= sizeof w->recs[0].name)
        return hl_fail(HL_ERR_ARG, "torchzip: record name too long: %s", name);
    if (w->pos + size + 4096 > TZ_LIMIT)
        return hl_fail(HL_ERR_RANGE, "%s would exceed 4 GiB (zip64 is not supported): export safetensors instead",
                       w->path);
    tz_record *r = &w->recs[w->n_recs++];
    memcpy(r->name, name, nl + 1);
    r->crc = crc;
    r->size = size;
    r->offset = w->pos;

    uint64_t data_at = w->pos + 30 + nl;
    size_t pad = 0;
    if (data_at % TZ_ALIGN) {
        pad = TZ_ALIGN - data_at % TZ_ALIGN;
        if (pad < 4)
            pad += TZ_ALIGN; /* the extra field needs its 4-byte header */
    }
    buf b = {0};
    put32(&b, 0x04034b50);
    put16(&b, 20);      /* version needed: 2.0 */
    put16(&b, 0x0800);  /* flags: UTF-8 names */
    put16(&b, 0);       /* stored */
    put16(&b, TZ_DOS_TIME);
    put16(&b, TZ_DOS_DATE);
    put32(&b, crc);
    put32(&b, (uint32_t)size);
    put32(&b, (uint32_t)size);
    put16(&b, (unsigned)nl);
    put16(&b, (unsigned)pad);
    put(&b, name, nl);
    if (pad) {
        put16(&b, 0x4246); /* "FB", as torch */
        put16(&b, (unsigned)(pad - 4));
        for (size_t i = 4; i < pad; i++)
            put8(&b, 'Z');
    }
    if (b.oom) {
        free(b.p);
        return hl_fail(HL_ERR_NOMEM, "torchzip: out of memory");
    }
    hl_status st = wr_all(w, b.p, b.n);
    free(b.p);
    return st;
}

static hl_status write_small_record(tz_writer *w, const char *name, const void *data, size_t n) {
    HL_TRY(begin_record(w, name, hl_crc32(0, data, n), n));
    return wr_all(w, data, n);
}

/* Convert elements [i0, i0+cnt) of an entry to the file dtype into dst. */
static void convert_chunk(const hl_tz_entry *e, int64_t i0, int64_t cnt, hl_dtype dtype, unsigned char *dst) {
    size_t ss = hl_dtype_size(e->src_dtype);
    const unsigned char *src = (const unsigned char *)e->data + (size_t)i0 * ss;
    if (e->src_dtype == dtype) {
        memcpy(dst, src, (size_t)cnt * ss);
        return;
    }
    for (int64_t i = 0; i < cnt; i++) {
        float f;
        if (e->src_dtype == HL_DTYPE_F32)
            memcpy(&f, src + 4 * i, 4);
        else {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            f = e->src_dtype == HL_DTYPE_BF16 ? hl_bf16_to_f32(h) : hl_f16_to_f32(h);
        }
        if (dtype == HL_DTYPE_F32)
            memcpy(dst + 4 * i, &f, 4);
        else {
            uint16_t h = dtype == HL_DTYPE_BF16 ? hl_f32_to_bf16(f) : hl_f32_to_f16(f);
            memcpy(dst + 2 * i, &h, 2);
        }
    }
}

#define TZ_CHUNK 65536 /* elements converted at a time */

static hl_status write_tensor_record(tz_writer *w, const char *name, const hl_tz_entry *e, hl_dtype dtype,
                                     unsigned char *scratch) {
    int64_t numel = entry_numel(e);
    size_t es = hl_dtype_size(dtype);
    /* First pass: CRC of the converted bytes (conversion is cheap next to the write). */
    uint32_t crc = 0;
    for (int64_t i = 0; i < numel; i += TZ_CHUNK) {
        int64_t cnt = numel - i < TZ_CHUNK ? numel - i : TZ_CHUNK;
        convert_chunk(e, i, cnt, dtype, scratch);
        crc = hl_crc32(crc, scratch, (size_t)cnt * es);
    }
    HL_TRY(begin_record(w, name, crc, (uint64_t)numel * es));
    for (int64_t i = 0; i < numel; i += TZ_CHUNK) {
        int64_t cnt = numel - i < TZ_CHUNK ? numel - i : TZ_CHUNK;
        convert_chunk(e, i, cnt, dtype, scratch);
        HL_TRY(wr_all(w, scratch, (size_t)cnt * es));
    }
    return HL_OK;
}

static hl_status write_central(tz_writer *w) {
    buf b = {0};
    uint64_t cd_start = w->pos;
    for (int i = 0; i < w->n_recs; i++) {
        const tz_record *r = &w->recs[i];
        size_t nl = strlen(r->name);
        put32(&b, 0x02014b50);
        put16(&b, (3u << 8) | 20); /* made by: Unix, 2.0 */
        put16(&b, 20);
        put16(&b, 0x0800);
        put16(&b, 0);
        put16(&b, TZ_DOS_TIME);
        put16(&b, TZ_DOS_DATE);
        put32(&b, r->crc);
        put32(&b, (uint32_t)r->size);
        put32(&b, (uint32_t)r->size);
        put16(&b, (unsigned)nl);
        put16(&b, 0); /* extra */
        put16(&b, 0); /* comment */
        put16(&b, 0); /* disk */
        put16(&b, 0); /* internal attributes */
        put32(&b, 0100644u << 16); /* external: regular file rw-r--r-- */
        put32(&b, (uint32_t)r->offset);
        put(&b, r->name, nl);
    }
    uint64_t cd_size = b.n;
    if (w->n_recs > 0xFFFF || cd_start + cd_size > TZ_LIMIT) {
        free(b.p);
        return hl_fail(HL_ERR_RANGE, "%s: too many records or too large for a non-zip64 archive", w->path);
    }
    put32(&b, 0x06054b50);
    put16(&b, 0);
    put16(&b, 0);
    put16(&b, (unsigned)w->n_recs);
    put16(&b, (unsigned)w->n_recs);
    put32(&b, (uint32_t)cd_size);
    put32(&b, (uint32_t)cd_start);
    put16(&b, 0);
    if (b.oom) {
        free(b.p);
        return hl_fail(HL_ERR_NOMEM, "torchzip: out of memory");
    }
    hl_status st = wr_all(w, b.p, b.n);
    free(b.p);
    return st;
}

static hl_status write_body(tz_writer *w, const char *archive, const hl_tz_entry *entries, int n, hl_dtype dtype) {
    char name[300];
    buf pk = {0};
    hl_status st = build_pickle(entries, n, dtype, &pk);
    if (st == HL_OK) {
        snprintf(name, sizeof name, "%s/data.pkl", archive);
        st = write_small_record(w, name, pk.p, pk.n);
    }
    free(pk.p);
    if (st)
        return st;
    unsigned char *scratch = malloc((size_t)TZ_CHUNK * 4);
    if (!scratch)
        return hl_fail(HL_ERR_NOMEM, "torchzip: out of memory");
    for (int i = 0; i < n && st == HL_OK; i++) {
        snprintf(name, sizeof name, "%s/data/%d", archive, i);
        st = write_tensor_record(w, name, &entries[i], dtype, scratch);
    }
    free(scratch);
    if (st)
        return st;
    snprintf(name, sizeof name, "%s/version", archive);
    HL_TRY(write_small_record(w, name, "3\n", 2));
    snprintf(name, sizeof name, "%s/byteorder", archive);
    HL_TRY(write_small_record(w, name, "little", 6));
    return write_central(w);
}

hl_status hl_torchzip_write(const char *path, const char *archive, const hl_tz_entry *entries, int n,
                            hl_dtype dtype) {
    if (!path || !archive || !archive[0] || strchr(archive, '/') || strlen(archive) > 200)
        return hl_fail(HL_ERR_ARG, "torchzip: bad path or archive name");
    HL_TRY(check_entries(entries, n, dtype));
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16);
    if (!tmp)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    snprintf(tmp, pl + 16, "%s.tmp-XXXXXX", path);
    tz_writer w = {.fd = mkstemp(tmp), .path = path};
    if (w.fd < 0) {
        hl_status st = hl_fail(errno == ENOSPC ? HL_ERR_DISK_FULL : HL_ERR_IO, "cannot create %s: %s", tmp,
                               strerror(errno));
        free(tmp);
        return st;
    }
    fchmod(w.fd, 0644);
    hl_status st = write_body(&w, archive, entries, n, dtype);
    if (st == HL_OK && fsync(w.fd) != 0)
        st = wr_fail(&w, errno);
    if (close(w.fd) != 0 && st == HL_OK)
        st = wr_fail(&w, errno);
    if (st == HL_OK && rename(tmp, path) != 0)
        st = hl_fail(HL_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (st)
        unlink(tmp);
    else
        hl_fsync_parent(path);
    free(tmp);
    free(w.recs);
    return st;
}
