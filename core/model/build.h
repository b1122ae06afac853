/* Internal helpers shared by the model loaders (model_load.c, llama2c.c, gguf.c).
 * Not a public API: a loader fills an hl_model through these so that every format gets
 * the same config checks, shape checks (errors name the tensor and the expected shape),
 * ownership bookkeeping and q/k row permutation. */
#ifndef HL_MODEL_BUILD_H
#define HL_MODEL_BUILD_H

#include "core/base/mapped_file.h"
#include "core/model/model.h"

/* Zero *m, check cfg, store it with format and path, allocate the layer table. */
hl_status hl_model_begin(hl_model *m, const hl_llama_config *cfg, hl_model_format format, const char *path);

/* Take ownership of a heap buffer (freed by hl_model_free). On failure `buf` is freed. */
hl_status hl_model_keep(hl_model *m, void *buf);
/* Take ownership of a mapping (moved: *mf is zeroed). */
hl_status hl_model_keep_map(hl_model *m, hl_mapped_file *mf);

/* *dst = src after checking src is [rows, cols]; the error names `name` and both shapes. */
hl_status hl_model_set_weight(hl_weight *dst, hl_weight src, int64_t rows, int64_t cols, const char *name,
                              const char *label);

/* Replace *w by an owned copy whose rows are reordered from Meta's interleaved RoPE layout
 * to the rotate_half layout (docs/file-formats.md §4.2): within each head of `head_dim` rows, new row
 * r = old row 2r for r < head_dim/2 and old row 2(r - head_dim/2) + 1 otherwise. Works on
 * raw row bytes, any dtype. If w is already owned by m (`in_place`), it is permuted in place. */
hl_status hl_model_permute_meta_rows(hl_model *m, hl_weight *w, int n_heads, int head_dim);

/* Copy `numel` f32 values into an owned buffer and return it (for dequantised tensors). */
hl_status hl_model_alloc_f32(hl_model *m, int64_t numel, float **out);

/* If w->data is not aligned for its dtype (files may put tensors at odd offsets), replace it
 * by an owned aligned copy, so compute code can read it as float / uint16_t. */
hl_status hl_model_align_weight(hl_model *m, hl_weight *w);

/* Every tensor of a checkpoint must be used: a config that names fewer layers than the
 * weights hold (or a tensor a LLaMA does not have, such as a bias) would otherwise load
 * silently and compute something else. names(src, i), i < n, are the file's tensor names.
 * A name is a layer tensor when it reads <layer_prefix><k>.<suffix> with suffix one of
 * `layer_suffixes`, a top-level tensor when it is one of `top`, and is skipped when it ends
 * with one of `ignore` (NULL: none). All lists are NULL-terminated. Errors (HL_ERR_FORMAT)
 * say what `layers_key` ("num_hidden_layers in config.json") claims and what the weights
 * hold, or name the unknown tensor. Call it before loading the layers. */
hl_status hl_model_check_tensor_names(const char *label, const char *layers_key, int n_layers, int n,
                                      const char *(*names)(const void *src, int i), const void *src,
                                      const char *layer_prefix, const char *const *layer_suffixes,
                                      const char *const *top, const char *const *ignore);

/* Final checks (every view set, shapes) and the storage dtype summary. */
hl_status hl_model_finish(hl_model *m);

#endif
