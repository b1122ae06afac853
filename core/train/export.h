/* Adapter export in the form the reference HydraLoRA code (and PEFT tools) load
 * (docs/method.md §8), and reading such a directory back.
 *
 * An export directory holds:
 *   adapter_config.json          PEFT-style config: base_model_name_or_path, bias "none",
 *                                enable_lora null, fan_in_fan_out false, inference_mode true,
 *                                lora_alpha, lora_dropout, lora_nums (= N), merge_weights false,
 *                                modules_to_save null, peft_type "LORA", r, target_modules,
 *                                task_type "CAUSAL_LM", plus "hydralora_variant" (and for
 *                                LoRA-Split "hydralora_n_a") for our own reader. Plain-LoRA
 *                                exports (variant lora, or --collapse) carry only the standard
 *                                PEFT keys, so strict PEFT versions accept them; our extras then
 *                                go to hydralora_export.json.
 *   adapter_model.safetensors    the tensors, keys sorted, {"format": "pt"} metadata
 *   adapter_model.bin            the same tensors as a torch.save zip (core/formats/torchzip.h), keys in
 *                                natural order (layers.2 before layers.10)
 * Keys: base_model.model.model.layers.{l}.{mlp|self_attn}.{proj}.lora_A.weight [r, d_in],
 * .lora_B{i}.weight [d_out, r] (i = 0..N-1), .lora_route.weight [N, d_in]; plain LoRA uses
 * .lora_A.weight / .lora_B.weight; LoRA-Split uses lora_A{i} as well.
 * The directory is written as <out>.tmp-XXXXXX and renamed over <out> when complete. */
#ifndef HL_EXPORT_H
#define HL_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "core/adapter/adapter.h"
#include "core/train/config.h"
#include "core/base/status.h"
#include "core/base/tensor.h"

typedef struct {
    char dir[4096];
    int n_tensors;
    int64_t n_params;
    int64_t bytes_safetensors, bytes_bin;
    int64_t step;          /* checkpoint step exported (-1 when exported from memory) */
} hl_export_info;

/* Export adapters from host copies (ad->params, e.g. read from a session's slab; the run config
 * supplies base model path, variant, r, alpha, ...). */
hl_status hl_export_adapters(const hl_adapters *ad, const hl_run_config *cfg, const char *out_dir, hl_dtype dtype,
                             hl_export_info *info);

/* Export the adapter parameters of checkpoint `step` (< 0: the newest) of a run directory.
 * Needs neither the model nor the data. */
hl_status hl_export_checkpoint(const char *run_dir, int64_t step, const char *out_dir, hl_dtype dtype,
                               hl_export_info *info);

/* Export a plain LoRA built outside a run (core/train/collapse.c): the run's metadata (base model,
 * targets, dropout) with variant lora, rank r and alpha, and `note` in hydralora_export.json. */
hl_status hl_export_plain_lora(const hl_adapters *lora, const hl_run_config *cfg, int r, double alpha,
                               const char *note, const char *out_dir, hl_dtype dtype, hl_export_info *info);

/* ---- reading an export back ---- */

/* Parse <dir>/adapter_config.json into an adapter config (variant from hydralora_variant,
 * else lora_nums > 1 → hydra, else lora). base_model may be NULL. */
hl_status hl_export_read_config(const char *dir, hl_adapter_config *acfg, char *base_model, size_t size);
/* The same from bytes (bounds-checked; `label` names them in errors). */
hl_status hl_export_parse_config(const char *json, size_t len, const char *label, hl_adapter_config *acfg,
                                 char *base_model, size_t size);

/* Create adapters for a model from an export directory and load its tensors
 * (adapter_model.safetensors; F32/F16/BF16). Every adapter tensor must be present. */
hl_status hl_export_load(const char *dir, const hl_llama_config *mcfg, uint64_t seed, hl_adapters *ad);

/* Natural-order comparison of tensor keys (digit runs compared as numbers). */
int hl_export_key_cmp(const char *a, const char *b);

#endif
