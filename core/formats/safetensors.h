/* safetensors reader (mmap, single file or sharded index) and writer (docs/file-formats.md §4.4-4.5).
 *
 * Reader: every byte of the header is validated before any tensor is handed out (header
 * length, JSON shape, dtype, shape overflow, offsets inside the byte buffer, size ==
 * numel * dtype size, no overlaps, no duplicate names), so a corrupt or lying file gives an
 * HL_ERR_FORMAT naming the file and the tensor, never a crash. Tensors are views into the
 * mapping; the reader owns the mapping and the parsed table.
 *
 * Writer: named f32 (or f16/bf16) tensors converted to one file dtype, keys sorted, compact
 * JSON header padded with spaces so that 8 + N is a multiple of 8, data packed in key order.
 * Written to "<path>.tmp-XXXXXX", fsync'ed, then renamed over <path>: the target is either
 * the old file or the complete new one. ENOSPC → HL_ERR_DISK_FULL (temporary file removed). */
#ifndef HL_SAFETENSORS_H
#define HL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/base/status.h"
#include "core/base/tensor.h"

#define HL_ST_MAX_DIMS 8

/* Every dtype of the format. Only F32/F16/BF16 convert to hl_dtype; the others are
 * recognised (and sized) so that a file holding them still opens and can be listed. */
typedef enum {
    HL_ST_F32 = 0,
    HL_ST_F16,
    HL_ST_BF16,
    HL_ST_F64,
    HL_ST_I64,
    HL_ST_I32,
    HL_ST_I16,
    HL_ST_I8,
    HL_ST_U64,
    HL_ST_U32,
    HL_ST_U16,
    HL_ST_U8,
    HL_ST_BOOL,
    HL_ST_F8_E4M3,
    HL_ST_F8_E5M2,
    HL_ST_DTYPE_COUNT
} hl_st_dtype;

const char *hl_st_dtype_name(hl_st_dtype d); /* "F32", "BF16", ... */
size_t hl_st_dtype_size(hl_st_dtype d);      /* bytes per element */
/* F32/F16/BF16 → hl_dtype (returns 1); others return 0. */
int hl_st_dtype_to_hl(hl_st_dtype d, hl_dtype *out);

typedef struct {
    const char *name;               /* NUL-terminated, owned by the reader */
    hl_st_dtype dtype;
    int ndim;                       /* 0 (scalar) .. HL_ST_MAX_DIMS */
    int64_t shape[HL_ST_MAX_DIMS];  /* PyTorch order (outermost first) */
    int64_t numel;
    const void *data;               /* numel * dtype size bytes inside the mapping */
    size_t nbytes;
} hl_st_tensor;

typedef struct hl_safetensors hl_safetensors;

/* Open and validate one .safetensors file (mmapped read-only). */
hl_status hl_st_open(hl_safetensors **out, const char *path);
/* Validate a file image already in memory (not copied: `data` must outlive the handle).
 * `label` names it in error messages. Used by the fuzzer and tests. */
hl_status hl_st_parse(hl_safetensors **out, const void *data, size_t len, const char *label);
void hl_st_close(hl_safetensors *st);

int hl_st_count(const hl_safetensors *st);
const hl_st_tensor *hl_st_at(const hl_safetensors *st, int i); /* in file order (by offset) */
const hl_st_tensor *hl_st_find(const hl_safetensors *st, const char *name); /* NULL if absent */
/* __metadata__ value for `key`, or NULL. */
const char *hl_st_metadata(const hl_safetensors *st, const char *key);
const char *hl_st_path(const hl_safetensors *st);

/* A 2-D read-only view of an F32/F16/BF16 tensor (the bytes may be misaligned for the dtype when
 * the file's offsets are; the model loader copies such tensors): rank 2 → [d0, d1]; rank 1 → [1, d0];
 * rank 0 → [1, 1]; higher ranks → [d0, d1*...*dn]. HL_ERR_FORMAT for other dtypes. */
hl_status hl_st_tensor_weight(const hl_st_tensor *t, hl_weight *out);
/* Copy any F32/F16/BF16 tensor to f32 (dst holds t->numel floats). */
hl_status hl_st_tensor_to_f32(const hl_st_tensor *t, float *dst);

/* ---- several files as one: a directory or a sharded checkpoint ---- */

typedef struct hl_st_set hl_st_set;

/* `path` may be: a .safetensors file; a model.safetensors.index.json; or a directory
 * holding model.safetensors or model.safetensors.index.json (the index wins only when
 * there is no model.safetensors). For an index, each distinct shard in weight_map is
 * opened once; every weight_map entry must exist in the shard it names. Shard names are
 * checked to stay inside the directory. A tensor name present in two shards is an error. */
hl_status hl_st_set_open(hl_st_set **out, const char *path);
void hl_st_set_close(hl_st_set *set);
const hl_st_tensor *hl_st_set_find(const hl_st_set *set, const char *name);
int hl_st_set_count(const hl_st_set *set);                        /* tensors over all shards */
const hl_st_tensor *hl_st_set_at(const hl_st_set *set, int i);  /* shard by shard */
int hl_st_set_n_files(const hl_st_set *set);
const hl_safetensors *hl_st_set_file(const hl_st_set *set, int i);
/* Move the shards' mappings out of the set: *maps becomes a malloc'd array of *n mapped
 * files that the caller now owns (hl_mapped_file_close each, then free the array). Tensor
 * views found before stay valid as long as those mappings live; afterwards the set must
 * only be closed. Used by the model loader, which keeps views and drops the tables. */
struct hl_mapped_file;
hl_status hl_st_set_take_maps(hl_st_set *set, struct hl_mapped_file **maps, int *n);

/* ---- writer ---- */

typedef struct {
    const char *name;
    hl_dtype src_dtype;            /* dtype of `data`; HL_DTYPE_F32 (0) unless set */
    const void *data;              /* numel elements of src_dtype, row-major */
    int ndim;                      /* 0..HL_ST_MAX_DIMS */
    int64_t shape[HL_ST_MAX_DIMS];
} hl_st_entry;

typedef struct {
    hl_dtype dtype;           /* file dtype of every tensor (F32, F16 or BF16) */
    int format_pt;            /* write __metadata__ {"format":"pt"} (PEFT/transformers expect it) */
    const char *const *meta;  /* extra metadata as key, value pairs: meta[2i], meta[2i+1] */
    int n_meta;               /* number of pairs */
} hl_st_write_opts;

/* Write `n` tensors to `path` atomically (see top). Names must be unique and non-empty.
 * opts may be NULL (F32, with {"format":"pt"}). */
hl_status hl_st_write(const char *path, const hl_st_entry *entries, int n, const hl_st_write_opts *opts);

#endif
