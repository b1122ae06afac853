/* Writer for the PyTorch zip checkpoint format (what torch.save writes since PyTorch 1.6,
 * and what torch.load reads): the format of `adapter_model.bin` that the reference
 * HydraLoRA code loads (docs/method.md §8).
 *
 * The archive is an uncompressed ("stored") zip with records under one folder <archive>/:
 *   <archive>/data.pkl    pickle (protocol 2) of an OrderedDict name → tensor; each tensor is
 *                         torch._utils._rebuild_tensor_v2((persistent id), offset 0, size,
 *                         stride, requires_grad False, OrderedDict()) where the persistent id
 *                         is ('storage', torch.FloatStorage|BFloat16Storage|HalfStorage,
 *                         '<key>', 'cpu', numel)
 *   <archive>/data/<key>  the raw little-endian storage of tensor number <key> (0, 1, ...)
 *   <archive>/version     "3\n"
 *   <archive>/byteorder   "little" (newer torch writes it; older torch ignores unknown records)
 * As torch does, every record's data starts at a multiple of 64 bytes (padding lives in a
 * zip "extra" field with id "FB"), so readers may mmap storages directly. Unlike torch we
 * write CRC and sizes in the local headers (no data descriptors): any zip tool can check it.
 * Archives above 4 GiB (zip64) are refused with a clear error (an adapter is far smaller).
 *
 * Written to "<path>.tmp-XXXXXX", fsync'ed and renamed: the target is either absent/old or
 * complete. ENOSPC gives HL_ERR_DISK_FULL and removes the temporary file. */
#ifndef HL_TORCHZIP_H
#define HL_TORCHZIP_H

#include <stddef.h>
#include <stdint.h>

#include "core/base/status.h"
#include "core/base/tensor.h"

#define HL_TZ_MAX_DIMS 8

typedef struct {
    const char *name;       /* dict key, e.g. "base_model.model.model.layers.0.mlp.up_proj.lora_A.weight" */
    hl_dtype src_dtype;     /* dtype of `data` (HL_DTYPE_F32 = 0 unless set) */
    const void *data;       /* numel elements, row-major (contiguous) */
    int ndim;               /* 0..HL_TZ_MAX_DIMS */
    int64_t shape[HL_TZ_MAX_DIMS];
} hl_tz_entry;

/* Write the tensors, converted to `dtype` (F32, F16 or BF16; round to nearest even), in the
 * given order. `archive` is the folder name inside the zip (torch uses the file's base name
 * without extension; e.g. "adapter_model"); it must be a plain name. */
hl_status hl_torchzip_write(const char *path, const char *archive, const hl_tz_entry *entries, int n,
                            hl_dtype dtype);

/* The pickle alone (for tests): malloc'd bytes in *out, length in *len. */
hl_status hl_torchzip_pickle(const hl_tz_entry *entries, int n, hl_dtype dtype, unsigned char **out, size_t *len);

/* CRC-32 (zip / IEEE 802.3), continuing from `crc` (start with 0). */
uint32_t hl_crc32(uint32_t crc, const void *data, size_t len);

#endif
