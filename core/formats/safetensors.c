/* safetensors reader and writer. See safetensors.h for the contract and docs/file-formats.md §4.4. */
#include "core/base/jsonout.h"
#include "core/formats/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "core/base/convert.h"
#include "core/base/fileio.h"
#include "core/base/mapped_file.h"

/* The reference implementation refuses headers over 100 MB; a real header is a few
 * hundred KB even for 70B models, so anything bigger is corruption or an attack. */
#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

static const struct {
    const char *name;
    size_t size;
} st_dtypes[HL_ST_DTYPE_COUNT] = {
    [HL_ST_F32] = {"F32", 4},   [HL_ST_F16] = {"F16", 2},         [HL_ST_BF16] = {"BF16", 2},
    [HL_ST_F64] = {"F64", 8},   [HL_ST_I64] = {"I64", 8},         [HL_ST_I32] = {"I32", 4},
    [HL_ST_I16] = {"I16", 2},   [HL_ST_I8] = {"I8", 1},           [HL_ST_U64] = {"U64", 8},
    [HL_ST_U32] = {"U32", 4},   [HL_ST_U16] = {"U16", 2},         [HL_ST_U8] = {"U8", 1},
    [HL_ST_BOOL] = {"BOOL", 1}, [HL_ST_F8_E4M3] = {"F8_E4M3", 1}, [HL_ST_F8_E5M2] = {"F8_E5M2", 1},
};

const char *hl_st_dtype_name(hl_st_dtype d) {
    return (unsigned)d < HL_ST_DTYPE_COUNT ? st_dtypes[d].name : "?";
}

size_t hl_st_dtype_size(hl_st_dtype d) { return (unsigned)d < HL_ST_DTYPE_COUNT ? st_dtypes[d].size : 0; }

int hl_st_dtype_to_hl(hl_st_dtype d, hl_dtype *out) {
    switch (d) {
    case HL_ST_F32: *out = HL_DTYPE_F32; return 1;
    case HL_ST_F16: *out = HL_DTYPE_F16; return 1;
    case HL_ST_BF16: *out = HL_DTYPE_BF16; return 1;
    default: return 0;
    }
}

static int st_dtype_parse(const char *s, hl_st_dtype *out) {
    for (int i = 0; i < HL_ST_DTYPE_COUNT; i++)
        if (!strcmp(s, st_dtypes[i].name)) {
            *out = (hl_st_dtype)i;
            return 1;
        }
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* reader                                                                               */

struct hl_safetensors {
    hl_mapped_file mf; /* zeroed when parsed from a caller's buffer */
    const unsigned char *buf; /* byte buffer (file offset 8 + N) */
    size_t buf_len;
    char label[4096];
    hl_st_tensor *tensors; /* sorted by data offset */
    int n;
    int *by_name; /* indices into tensors, sorted by name */
    char **meta; /* key, value pairs */
    int n_meta;
    char *arena; /* names and metadata strings */
};

static int cmp_offset(const void *a, const void *b) {
    const hl_st_tensor *x = a, *y = b;
    const unsigned char *px = x->data, *py = y->data;
    if (px != py)
        return px < py ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

/* by-name index sort without a global: sort (name, index) pairs. */
typedef struct {
    const char *name;
    int index;
} name_ref;

static int cmp_name_ref(const void *a, const void *b) {
    return strcmp(((const name_ref *)a)->name, ((const name_ref *)b)->name);
}

/* A JSON number that is a non-negative integer exactly representable (≤ 2^53). */
static int json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j))
        return 0;
    double v = j->valuedouble;
    if (!isfinite(v) || v < 0 || v > 9007199254740992.0 || floor(v) != v)
        return 0;
    *out = (uint64_t)v;
    return 1;
}

void hl_st_close(hl_safetensors *st) {
    if (!st)
        return;
    hl_mapped_file_close(&st->mf);
    free(st->tensors);
    free(st->by_name);
    free(st->meta);
    free(st->arena);
    free(st);
}

/* Validate the header and fill st's table. `file`, `len`: the whole file image. */
static hl_status st_parse_into(hl_safetensors *st, const unsigned char *file, size_t len) {
    const char *L = st->label;
    if (len < 8)
        return hl_fail(HL_ERR_FORMAT, "%s: file is %zu bytes, too small for a safetensors file (truncated?)", L, len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | file[i];
    if (n > len - 8)
        return hl_fail(HL_ERR_FORMAT,
                       "%s: header length %llu exceeds the file size %zu (truncated or not a safetensors file)", L,
                       (unsigned long long)n, len);
    if (n > ST_MAX_HEADER)
        return hl_fail(HL_ERR_FORMAT, "%s: header length %llu is absurd (limit %llu)", L, (unsigned long long)n,
                       (unsigned long long)ST_MAX_HEADER);
    if (n < 2 || file[8] != '{')
        return hl_fail(HL_ERR_FORMAT, "%s: header is not a JSON object (not a safetensors file?)", L);
    const char *hdr = (const char *)file + 8;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)n, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        size_t at = end && end >= hdr ? (size_t)(end - hdr) : 0;
        cJSON_Delete(root);
        return hl_fail(HL_ERR_FORMAT, "%s: header is not valid JSON (error near byte %zu of %llu)", L, at,
                       (unsigned long long)n);
    }
    /* After the object only padding spaces (or NULs some writers use) may follow. */
    for (const char *p = end; p && p < hdr + n; p++)
        if (*p != ' ' && *p != '\0' && *p != '\n' && *p != '\t' && *p != '\r') {
            cJSON_Delete(root);
            return hl_fail(HL_ERR_FORMAT, "%s: junk after the JSON header at byte %zu", L, (size_t)(p - hdr));
        }
    st->buf = file + 8 + n;
    st->buf_len = len - 8 - (size_t)n;

    hl_status rc = HL_OK;
    size_t arena_size = 0;
    int nt = 0, nm = 0;
    const cJSON *meta_obj = NULL;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!e->string) {
            rc = hl_fail(HL_ERR_FORMAT, "%s: header entry without a name", L);
            goto out;
        }
        if (!strcmp(e->string, "__metadata__")) {
            if (meta_obj) {
                rc = hl_fail(HL_ERR_FORMAT, "%s: __metadata__ appears twice", L);
                goto out;
            }
            if (!cJSON_IsObject(e)) {
                rc = hl_fail(HL_ERR_FORMAT, "%s: __metadata__ must be an object of strings", L);
                goto out;
            }
            meta_obj = e;
            for (const cJSON *m = e->child; m; m = m->next) {
                if (!m->string || !cJSON_IsString(m)) {
                    rc = hl_fail(HL_ERR_FORMAT, "%s: __metadata__ value for \"%.100s\" is not a string", L,
                                 m->string ? m->string : "");
                    goto out;
                }
                arena_size += strlen(m->string) + strlen(m->valuestring) + 2;
                nm++;
            }
            continue;
        }
        arena_size += strlen(e->string) + 1;
        nt++;
    }
    st->tensors = calloc(nt ? (size_t)nt : 1, sizeof *st->tensors);
    st->by_name = calloc(nt ? (size_t)nt : 1, sizeof *st->by_name);
    st->meta = calloc(nm ? 2 * (size_t)nm : 1, sizeof *st->meta);
    st->arena = malloc(arena_size ? arena_size : 1);
    if (!st->tensors || !st->by_name || !st->meta || !st->arena) {
        rc = hl_fail(HL_ERR_NOMEM, "%s: out of memory for a header of %d tensors", L, nt);
        goto out;
    }
    char *ap = st->arena;
    if (meta_obj)
        for (const cJSON *m = meta_obj->child; m; m = m->next) {
            size_t kl = strlen(m->string) + 1, vl = strlen(m->valuestring) + 1;
            st->meta[2 * st->n_meta] = memcpy(ap, m->string, kl);
            ap += kl;
            st->meta[2 * st->n_meta + 1] = memcpy(ap, m->valuestring, vl);
            ap += vl;
            st->n_meta++;
        }

    for (const cJSON *e = root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__"))
            continue;
        const char *name = e->string;
        hl_st_tensor *t = &st->tensors[st->n];
        if (!cJSON_IsObject(e)) {
            rc = hl_fail(HL_ERR_FORMAT, "%s: tensor \"%.200s\": entry is not an object", L, name);
            goto out;
        }
        const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!cJSON_IsString(jd) || !cJSON_IsArray(js) || !cJSON_IsArray(jo)) {
            rc = hl_fail(HL_ERR_FORMAT, "%s: tensor \"%.200s\": needs \"dtype\" (string), \"shape\" and "
                         "\"data_offsets\" (arrays)", L, name);
            goto out;
        }
        if (!st_dtype_parse(jd->valuestring, &t->dtype)) {
            rc = hl_fail(HL_ERR_FORMAT, "%s: tensor \"%.200s\": unknown dtype \"%.40s\"", L, name, jd->valuestring);
            goto out;
        }
        int ndim = cJSON_GetArraySize(js);
        if (ndim > HL_ST_MAX_DIMS) {
            rc = hl_fail(HL_ERR_FORMAT, "%s: tensor \"%.200s\": %d dimensions (at most %d supported)", L, name, ndim,
                         HL_ST_MAX_DIMS);
            goto out;
        }
        t->ndim = ndim;
        uint64_t numel = 1;
        int k = 0;
        for (const cJSON *d = js->child; d; d = d->next, k++) {
            uint64_t v;
            if (!json_uint(d, &v)) {
                rc = hl_fail(HL_ERR_FORMAT, "%s: tensor \"%.200s\": shape[%d] is not a non-negative integer", L, name,
                             k);
                goto out;
            }
            t->shape[k] = (int64_t)v;
            if (v != 0 && numel > (uint64_t)INT64_MAX / v) {
                rc = hl_fail(HL_ERR_FORMAT, "%s: tensor \"%.200s\": shape is absurd (element count overflows)", L,
                             name);
                goto out;
            }
            numel *= v;
        }
        uint64_t esize = st_dtypes[t->dtype].size;
        if (numel > (uint64_t)INT64_MAX / esize) {
            rc = hl_fail(HL_ERR_FORMAT, "%s: tensor \"%.200s\": shape is absurd (byte size overflows)", L, name);
            goto out;
        }
        uint64_t begin, stop;
        if (cJSON_GetArraySize(jo) != 2 || !json_uint(jo->child, &begin) || !json_uint(jo->child->next, &stop)) {
            rc = hl_fail(HL_ERR_FORMAT, "%s: tensor \"%.200s\": data_offsets must be two non-negative integers", L,
                         name);
            goto out;
        }
        if (begin > stop || stop > st->buf_len) {
            rc = hl_fail(HL_ERR_FORMAT,
                         "%s: tensor \"%.200s\": data_offsets [%llu, %llu] outside the %zu-byte data buffer "
                         "(truncated file?)", L, name, (unsigned long long)begin, (unsigned long long)stop,
                         st->buf_len);
            goto out;
        }
        if (stop - begin != numel * esize) {
            rc = hl_fail(HL_ERR_FORMAT,
                         "%s: tensor \"%.200s\": %llu bytes at data_offsets but shape × %s needs %llu", L, name,
                         (unsigned long long)(stop - begin), st_dtypes[t->dtype].name,
                         (unsigned long long)(numel * esize));
            goto out;
        }
        t->numel = (int64_t)numel;
        t->nbytes = (size_t)(stop - begin);
        t->data = st->buf + begin;
        size_t nl = strlen(name) + 1;
        t->name = memcpy(ap, name, nl);
        ap += nl;
        st->n++;
    }

    /* No two tensors may share bytes; empty tensors overlap nothing. */
    qsort(st->tensors, (size_t)st->n, sizeof *st->tensors, cmp_offset);
    {
        const unsigned char *reach = st->buf;
        const char *reach_name = NULL;
        for (int i = 0; i < st->n; i++) {
            const hl_st_tensor *t = &st->tensors[i];
            if (t->nbytes == 0)
                continue;
            if ((const unsigned char *)t->data < reach) {
                rc = hl_fail(HL_ERR_FORMAT, "%s: tensors \"%.200s\" and \"%.200s\" overlap in the data buffer", L,
                             reach_name, t->name);
                goto out;
            }
            reach = (const unsigned char *)t->data + t->nbytes;
            reach_name = t->name;
        }
    }
    {
        name_ref *refs = malloc((st->n > 0 ? (size_t)st->n : 1) * sizeof *refs);
        if (!refs) {
            rc = hl_fail(HL_ERR_NOMEM, "%s: out of memory", L);
            goto out;
        }
        for (int i = 0; i < st->n; i++)
            refs[i] = (name_ref){st->tensors[i].name, i};
        qsort(refs, (size_t)st->n, sizeof *refs, cmp_name_ref);
        for (int i = 0; i < st->n; i++) {
            if (i > 0 && !strcmp(refs[i - 1].name, refs[i].name)) {
                rc = hl_fail(HL_ERR_FORMAT, "%s: tensor \"%.200s\" appears twice in the header", L, refs[i].name);
                free(refs);
                goto out;
            }
            st->by_name[i] = refs[i].index;
        }
        free(refs);
    }
out:
    cJSON_Delete(root);
    return rc;
}

static hl_status st_new(hl_safetensors **out, const char *label) {
    *out = NULL;
    hl_safetensors *st = calloc(1, sizeof *st);
    if (!st)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    snprintf(st->label, sizeof st->label, "%s", label ? label : "safetensors");
    *out = st;
    return HL_OK;
}

hl_status hl_st_parse(hl_safetensors **out, const void *data, size_t len, const char *label) {
    hl_safetensors *st;
    HL_TRY(st_new(&st, label));
    hl_status rc = st_parse_into(st, data, len);
    if (rc != HL_OK) {
        hl_st_close(st);
        return rc;
    }
    *out = st;
    return HL_OK;
}

hl_status hl_st_open(hl_safetensors **out, const char *path) {
    *out = NULL;
    hl_safetensors *st;
    HL_TRY(st_new(&st, path));
    hl_status rc = hl_mapped_file_open(&st->mf, path);
    if (rc == HL_OK)
        rc = st_parse_into(st, st->mf.data, st->mf.size);
    if (rc != HL_OK) {
        hl_st_close(st);
        return rc;
    }
    *out = st;
    return HL_OK;
}

int hl_st_count(const hl_safetensors *st) { return st ? st->n : 0; }

const hl_st_tensor *hl_st_at(const hl_safetensors *st, int i) {
    return st && i >= 0 && i < st->n ? &st->tensors[i] : NULL;
}

const hl_st_tensor *hl_st_find(const hl_safetensors *st, const char *name) {
    if (!st || !name)
        return NULL;
    int lo = 0, hi = st->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const hl_st_tensor *t = &st->tensors[st->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0)
            return t;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *hl_st_metadata(const hl_safetensors *st, const char *key) {
    if (!st || !key)
        return NULL;
    for (int i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta[2 * i], key))
            return st->meta[2 * i + 1];
    return NULL;
}

const char *hl_st_path(const hl_safetensors *st) { return st ? st->label : ""; }

hl_status hl_st_tensor_weight(const hl_st_tensor *t, hl_weight *out) {
    hl_dtype d;
    if (!hl_st_dtype_to_hl(t->dtype, &d))
        return hl_fail(HL_ERR_FORMAT, "tensor \"%.200s\" has dtype %s; only F32, F16 and BF16 are supported", t->name,
                       hl_st_dtype_name(t->dtype));
    out->dtype = d;
    out->data = t->data;
    if (t->ndim == 0) {
        out->rows = 1;
        out->cols = 1;
    } else if (t->ndim == 1) {
        out->rows = 1;
        out->cols = t->shape[0];
    } else {
        out->rows = t->shape[0];
        out->cols = t->shape[0] ? t->numel / t->shape[0] : 0;
        if (t->shape[0] == 0) {
            int64_t c = 1;
            for (int i = 1; i < t->ndim; i++)
                c *= t->shape[i];
            out->cols = c;
        }
    }
    return HL_OK;
}

hl_status hl_st_tensor_to_f32(const hl_st_tensor *t, float *dst) {
    hl_weight w = {0};
    HL_TRY(hl_st_tensor_weight(t, &w));
    if (t->numel == 0)
        return HL_OK;
    size_t es = hl_dtype_size(w.dtype);
    if ((uintptr_t)t->data % es == 0) {
        hl_weight flat = {w.dtype, w.data, 1, t->numel};
        hl_weight_rows_to_f32(&flat, 0, 1, dst);
        return HL_OK;
    }
    /* Offsets need not be aligned (old writers did not pad the header): go through an aligned copy. */
    float chunk[1024];
    for (int64_t i0 = 0; i0 < t->numel; i0 += 1024) {
        int64_t m = t->numel - i0 < 1024 ? t->numel - i0 : 1024;
        memcpy(chunk, (const char *)t->data + (size_t)i0 * es, (size_t)m * es);
        hl_weight flat = {w.dtype, chunk, 1, m};
        hl_weight_rows_to_f32(&flat, 0, 1, dst + i0);
    }
    return HL_OK;
}

/* ------------------------------------------------------------------------------------ */
/* several files                                                                        */

struct hl_st_set {
    hl_safetensors **files;
    int n_files;
    const hl_st_tensor **all; /* every tensor, sorted by name */
    int n_all;
};

void hl_st_set_close(hl_st_set *set) {
    if (!set)
        return;
    for (int i = 0; i < set->n_files; i++)
        hl_st_close(set->files[i]);
    free(set->files);
    free(set->all);
    free(set);
}

static int cmp_tensor_ptr_name(const void *a, const void *b) {
    return strcmp((*(const hl_st_tensor *const *)a)->name, (*(const hl_st_tensor *const *)b)->name);
}

/* Build the name index over all shards; a name in two shards is an error. */
static hl_status set_index(hl_st_set *set) {
    int total = 0;
    for (int i = 0; i < set->n_files; i++)
        total += set->files[i]->n;
    set->all = malloc((total ? (size_t)total : 1) * sizeof *set->all);
    if (!set->all)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    int k = 0;
    for (int i = 0; i < set->n_files; i++)
        for (int j = 0; j < set->files[i]->n; j++)
            set->all[k++] = &set->files[i]->tensors[j];
    set->n_all = total;
    qsort(set->all, (size_t)total, sizeof *set->all, cmp_tensor_ptr_name);
    for (int i = 1; i < total; i++)
        if (!strcmp(set->all[i - 1]->name, set->all[i]->name))
            return hl_fail(HL_ERR_FORMAT, "tensor \"%.200s\" is stored in two shards", set->all[i]->name);
    return HL_OK;
}

/* Shard names come from a file: a plain relative path that cannot leave the directory. */
static int shard_name_ok(const char *s) {
    if (!*s || s[0] == '/' || strchr(s, '\\'))
        return 0;
    const char *p = s;
    while (*p) {
        const char *q = strchr(p, '/');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return 0;
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)p[i] < 0x20)
                return 0;
        p += n;
        if (*p == '/')
            p++;
    }
    return 1;
}

static int path_is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int path_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static hl_status set_add_file(hl_st_set *set, const char *path) {
    hl_safetensors **nf = realloc(set->files, (size_t)(set->n_files + 1) * sizeof *nf);
    if (!nf)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    set->files = nf;
    hl_safetensors *st;
    HL_TRY(hl_st_open(&st, path));
    set->files[set->n_files++] = st;
    return HL_OK;
}

static hl_status set_open_index(hl_st_set *set, const char *index_path) {
    hl_mapped_file mf;
    HL_TRY(hl_mapped_file_open(&mf, index_path));
    cJSON *root = cJSON_ParseWithLength((const char *)mf.data, mf.size);
    hl_mapped_file_close(&mf);
    if (!root)
        return hl_fail(HL_ERR_FORMAT, "%s: not valid JSON", index_path);
    hl_status rc = HL_OK;
    char dir[4096], shard_path[8192];
    hl_path_dirname(dir, sizeof dir, index_path);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm) || !wm->child) {
        rc = hl_fail(HL_ERR_FORMAT, "%s: no \"weight_map\" object (not a safetensors index?)", index_path);
        goto out;
    }
    /* Open each distinct shard once, in order of first mention. */
    const char **names = NULL;
    int n_names = 0;
    for (const cJSON *e = wm->child; e; e = e->next) {
        if (!cJSON_IsString(e) || !e->string) {
            rc = hl_fail(HL_ERR_FORMAT, "%s: weight_map value for \"%.200s\" is not a file name", index_path,
                         e->string ? e->string : "");
            break;
        }
        if (!shard_name_ok(e->valuestring)) {
            rc = hl_fail(HL_ERR_FORMAT, "%s: shard name \"%.200s\" is not a plain relative file name", index_path,
                         e->valuestring);
            break;
        }
        int seen = 0;
        for (int i = 0; i < n_names && !seen; i++)
            seen = !strcmp(names[i], e->valuestring);
        if (seen)
            continue;
        const char **nn = realloc(names, (size_t)(n_names + 1) * sizeof *nn);
        if (!nn) {
            rc = hl_fail(HL_ERR_NOMEM, "out of memory");
            break;
        }
        names = nn;
        names[n_names++] = e->valuestring;
        snprintf(shard_path, sizeof shard_path, "%s/%s", dir, e->valuestring);
        rc = set_add_file(set, shard_path);
        if (rc != HL_OK) {
            hl_fail_context(rc, "shard listed in %s", index_path);
            break;
        }
    }
    /* Every weight_map entry must be in the shard it names. */
    for (const cJSON *e = wm->child; e && rc == HL_OK; e = e->next) {
        int fi = -1;
        for (int i = 0; i < n_names; i++)
            if (!strcmp(names[i], e->valuestring))
                fi = i;
        if (fi < 0 || !hl_st_find(set->files[fi], e->string))
            rc = hl_fail(HL_ERR_FORMAT, "%s: tensor \"%.200s\" is listed in weight_map but missing from %s",
                         index_path, e->string, e->valuestring);
    }
    free(names);
out:
    cJSON_Delete(root);
    return rc;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

hl_status hl_st_set_open(hl_st_set **out, const char *path) {
    *out = NULL;
    hl_st_set *set = calloc(1, sizeof *set);
    if (!set)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    hl_status rc = HL_OK;
    char buf[8192];
    if (path_is_dir(path)) {
        snprintf(buf, sizeof buf, "%s/model.safetensors", path);
        if (path_exists(buf)) {
            rc = set_add_file(set, buf);
        } else {
            snprintf(buf, sizeof buf, "%s/model.safetensors.index.json", path);
            if (path_exists(buf)) {
                rc = set_open_index(set, buf);
            } else {
                /* Otherwise accept a directory holding exactly one *.safetensors file. */
                DIR *d = opendir(path);
                int found = 0;
                struct dirent *de;
                char one[8192] = "";
                while (d && (de = readdir(d)))
                    if (ends_with(de->d_name, ".safetensors") && de->d_name[0] != '.') {
                        found++;
                        snprintf(one, sizeof one, "%s/%s", path, de->d_name);
                    }
                if (d)
                    closedir(d);
                if (found == 1)
                    rc = set_add_file(set, one);
                else
                    rc = hl_fail(HL_ERR_NOT_FOUND,
                                 "%s: no model.safetensors or model.safetensors.index.json in this directory%s", path,
                                 found > 1 ? " (several .safetensors files and no index)" : "");
            }
        }
    } else if (ends_with(path, ".json")) {
        rc = set_open_index(set, path);
    } else {
        rc = set_add_file(set, path);
    }
    if (rc == HL_OK)
        rc = set_index(set);
    if (rc != HL_OK) {
        hl_st_set_close(set);
        return rc;
    }
    *out = set;
    return HL_OK;
}

const hl_st_tensor *hl_st_set_find(const hl_st_set *set, const char *name) {
    if (!set || !name)
        return NULL;
    int lo = 0, hi = set->n_all - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(name, set->all[mid]->name);
        if (c == 0)
            return set->all[mid];
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

int hl_st_set_count(const hl_st_set *set) { return set ? set->n_all : 0; }

const hl_st_tensor *hl_st_set_at(const hl_st_set *set, int i) {
    if (!set || i < 0)
        return NULL;
    for (int f = 0; f < set->n_files; f++) {
        if (i < set->files[f]->n)
            return &set->files[f]->tensors[i];
        i -= set->files[f]->n;
    }
    return NULL;
}

int hl_st_set_n_files(const hl_st_set *set) { return set ? set->n_files : 0; }

const hl_safetensors *hl_st_set_file(const hl_st_set *set, int i) {
    return set && i >= 0 && i < set->n_files ? set->files[i] : NULL;
}

hl_status hl_st_set_take_maps(hl_st_set *set, hl_mapped_file **maps, int *n) {
    *maps = NULL;
    *n = 0;
    hl_mapped_file *m = calloc(set->n_files ? (size_t)set->n_files : 1, sizeof *m);
    if (!m)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    for (int i = 0; i < set->n_files; i++) {
        m[i] = set->files[i]->mf;
        memset(&set->files[i]->mf, 0, sizeof set->files[i]->mf); /* closing the set no longer unmaps */
    }
    *maps = m;
    *n = set->n_files;
    return HL_OK;
}

/* ------------------------------------------------------------------------------------ */
/* writer                                                                               */

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t n) {
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(strbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_fmt_u64(strbuf *b, uint64_t v) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    sb_put(b, tmp, (size_t)n);
}

/* JSON string with the escapes JSON requires (quote, backslash, control bytes). */
static void sb_json_string(strbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    char esc[8];
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        sb_put(b, esc, hl_json_escape_byte(*p, esc));
    sb_put(b, "\"", 1);
}

static hl_status write_error(const char *tmp, int err) {
    if (err == ENOSPC || err == EDQUOT || err == EFBIG)
        return hl_fail(HL_ERR_DISK_FULL, "%s: no space left while writing (%s); nothing was replaced", tmp,
                       strerror(err));
    return hl_fail(HL_ERR_IO, "%s: write failed: %s", tmp, strerror(err));
}

static hl_status write_all(int fd, const void *buf, size_t n, const char *tmp) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return write_error(tmp, errno);
        }
        if (w == 0)
            return write_error(tmp, ENOSPC);
        p += w;
        n -= (size_t)w;
    }
    return HL_OK;
}

typedef struct {
    const hl_st_entry *e;
    uint64_t numel;
} write_item;

static int cmp_write_item(const void *a, const void *b) {
    return strcmp(((const write_item *)a)->e->name, ((const write_item *)b)->e->name);
}

/* Write one tensor's data converted from its source dtype to `dst`, in chunks. */
static hl_status write_tensor(int fd, const write_item *it, hl_dtype dst, void *scratch, size_t chunk,
                              const char *tmp) {
    const hl_st_entry *e = it->e;
    size_t ssize = hl_dtype_size(e->src_dtype), dsize = hl_dtype_size(dst);
    if (e->src_dtype == dst)
        return write_all(fd, e->data, it->numel * ssize, tmp);
    float *f = scratch;                              /* chunk floats */
    uint16_t *h = (uint16_t *)((float *)scratch + chunk); /* chunk halves */
    for (uint64_t i0 = 0; i0 < it->numel; i0 += chunk) {
        size_t m = it->numel - i0 < chunk ? (size_t)(it->numel - i0) : chunk;
        hl_weight src = {e->src_dtype, (const char *)e->data + i0 * ssize, 1, (int64_t)m};
        hl_weight_rows_to_f32(&src, 0, 1, f);
        const void *out = f;
        if (dst == HL_DTYPE_F16) {
            for (size_t i = 0; i < m; i++)
                h[i] = hl_f32_to_f16(f[i]);
            out = h;
        } else if (dst == HL_DTYPE_BF16) {
            for (size_t i = 0; i < m; i++)
                h[i] = hl_f32_to_bf16(f[i]);
            out = h;
        }
        HL_TRY(write_all(fd, out, m * dsize, tmp));
    }
    return HL_OK;
}

hl_status hl_st_write(const char *path, const hl_st_entry *entries, int n, const hl_st_write_opts *opts) {
    hl_st_write_opts defaults = {HL_DTYPE_F32, 1, NULL, 0};
    if (!opts)
        opts = &defaults;
    if (!path || !*path)
        return hl_fail(HL_ERR_ARG, "safetensors writer: empty path");
    if (n < 0 || (n > 0 && !entries))
        return hl_fail(HL_ERR_ARG, "safetensors writer: no tensors given");
    if (opts->dtype != HL_DTYPE_F32 && opts->dtype != HL_DTYPE_F16 && opts->dtype != HL_DTYPE_BF16)
        return hl_fail(HL_ERR_ARG, "safetensors writer: file dtype must be F32, F16 or BF16");
    if (opts->n_meta < 0 || (opts->n_meta > 0 && !opts->meta))
        return hl_fail(HL_ERR_ARG, "safetensors writer: bad metadata list");
    for (int i = 0; i < opts->n_meta; i++)
        if (!opts->meta[2 * i] || !opts->meta[2 * i + 1])
            return hl_fail(HL_ERR_ARG, "safetensors writer: metadata pair %d has a NULL key or value", i);

    write_item *items = calloc(n ? (size_t)n : 1, sizeof *items);
    if (!items)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    hl_status rc = HL_OK;
    strbuf hb = {0};
    char *tmp = NULL;
    void *scratch = NULL;
    int fd = -1;

    for (int i = 0; i < n; i++) {
        const hl_st_entry *e = &entries[i];
        items[i].e = e;
        if (!e->name || !*e->name || !strcmp(e->name, "__metadata__")) {
            rc = hl_fail(HL_ERR_ARG, "safetensors writer: tensor %d has an empty or reserved name", i);
            goto out;
        }
        if (e->ndim < 0 || e->ndim > HL_ST_MAX_DIMS) {
            rc = hl_fail(HL_ERR_ARG, "safetensors writer: tensor \"%s\" has %d dimensions", e->name, e->ndim);
            goto out;
        }
        if (e->src_dtype != HL_DTYPE_F32 && e->src_dtype != HL_DTYPE_F16 && e->src_dtype != HL_DTYPE_BF16) {
            rc = hl_fail(HL_ERR_ARG, "safetensors writer: tensor \"%s\" has an unknown source dtype", e->name);
            goto out;
        }
        uint64_t numel = 1;
        for (int d = 0; d < e->ndim; d++) {
            if (e->shape[d] < 0 || (e->shape[d] > 0 && numel > ((uint64_t)1 << 60) / (uint64_t)e->shape[d])) {
                rc = hl_fail(HL_ERR_ARG, "safetensors writer: tensor \"%s\" has a bad shape", e->name);
                goto out;
            }
            numel *= (uint64_t)e->shape[d];
        }
        if (numel > 0 && !e->data) {
            rc = hl_fail(HL_ERR_ARG, "safetensors writer: tensor \"%s\" has no data", e->name);
            goto out;
        }
        items[i].numel = numel;
    }
    qsort(items, (size_t)n, sizeof *items, cmp_write_item);
    for (int i = 1; i < n; i++)
        if (!strcmp(items[i - 1].e->name, items[i].e->name)) {
            rc = hl_fail(HL_ERR_ARG, "safetensors writer: tensor name \"%s\" given twice", items[i].e->name);
            goto out;
        }

    /* Header: {"__metadata__":{...},"name":{"dtype":..,"shape":[..],"data_offsets":[b,e]},...} */
    const char *dname = hl_dtype_name(opts->dtype);
    size_t dsize = hl_dtype_size(opts->dtype);
    sb_str(&hb, "{");
    int first = 1;
    if (opts->format_pt || opts->n_meta > 0) {
        sb_str(&hb, "\"__metadata__\":{");
        int mfirst = 1;
        if (opts->format_pt) {
            sb_str(&hb, "\"format\":\"pt\"");
            mfirst = 0;
        }
        for (int i = 0; i < opts->n_meta; i++) {
            if (opts->format_pt && !strcmp(opts->meta[2 * i], "format"))
                continue;
            if (!mfirst)
                sb_str(&hb, ",");
            sb_json_string(&hb, opts->meta[2 * i]);
            sb_str(&hb, ":");
            sb_json_string(&hb, opts->meta[2 * i + 1]);
            mfirst = 0;
        }
        sb_str(&hb, "}");
        first = 0;
    }
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        const hl_st_entry *e = items[i].e;
        if (!first)
            sb_str(&hb, ",");
        first = 0;
        sb_json_string(&hb, e->name);
        sb_str(&hb, ":{\"dtype\":\"");
        sb_str(&hb, dname);
        sb_str(&hb, "\",\"shape\":[");
        for (int d = 0; d < e->ndim; d++) {
            if (d)
                sb_str(&hb, ",");
            sb_fmt_u64(&hb, (uint64_t)e->shape[d]);
        }
        sb_str(&hb, "],\"data_offsets\":[");
        sb_fmt_u64(&hb, offset);
        sb_str(&hb, ",");
        offset += items[i].numel * dsize;
        sb_fmt_u64(&hb, offset);
        sb_str(&hb, "]}");
    }
    sb_str(&hb, "}");
    while (!hb.oom && (8 + hb.len) % 8 != 0)
        sb_str(&hb, " ");
    if (hb.oom) {
        rc = hl_fail(HL_ERR_NOMEM, "out of memory building a safetensors header");
        goto out;
    }

    size_t plen = strlen(path);
    tmp = malloc(plen + 16);
    const size_t chunk = 1 << 16;
    scratch = malloc(chunk * (sizeof(float) + sizeof(uint16_t)));
    if (!tmp || !scratch) {
        rc = hl_fail(HL_ERR_NOMEM, "out of memory");
        goto out;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp-XXXXXX", 12);
    fd = mkstemp(tmp);
    if (fd >= 0)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        free(tmp);
        tmp = NULL; /* nothing to remove */
        if (err == ENOSPC || err == EDQUOT)
            rc = hl_fail(HL_ERR_DISK_FULL, "%s: no space left to create a file", path);
        else
            rc = hl_fail(err == ENOENT ? HL_ERR_NOT_FOUND : HL_ERR_IO, "%s: cannot create a temporary file: %s",
                         path, strerror(err));
        goto out;
    }
    fchmod(fd, 0644); /* mkstemp makes 0600; exports are meant to be shared */

    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)hb.len >> (8 * i));
    rc = write_all(fd, len8, 8, tmp);
    if (rc == HL_OK)
        rc = write_all(fd, hb.p, hb.len, tmp);
    for (int i = 0; i < n && rc == HL_OK; i++)
        rc = write_tensor(fd, &items[i], opts->dtype, scratch, chunk, tmp);
    if (rc == HL_OK && fsync(fd) != 0)
        rc = write_error(tmp, errno);
    if (close(fd) != 0 && rc == HL_OK)
        rc = write_error(tmp, errno);
    fd = -1;
    if (rc == HL_OK && rename(tmp, path) != 0)
        rc = hl_fail(HL_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (rc == HL_OK) {
        hl_fsync_parent(path); /* make the rename itself durable (best effort) */
        free(tmp);
        tmp = NULL;
    }
out:
    if (fd >= 0)
        close(fd);
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    free(scratch);
    free(hb.p);
    free(items);
    return rc;
}
