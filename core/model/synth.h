/* Random-weight LLaMA-2-shaped models, for exercising training, memory plans and speed where
 * real weights cannot be downloaded. Everything here is clearly labelled random: the written
 * directory's config.json carries "hydralora_synthetic" and a README.txt says so.
 *
 * Weights are a pure function of (seed, tensor index, element): uniform with the standard
 * deviation of Hugging Face's LLaMA init (0.02) for matrices and embeddings, 1 for norms, so
 * generation runs on all cores in any order and gives the same bytes every time. */
#ifndef HL_MODEL_SYNTH_H
#define HL_MODEL_SYNTH_H

#include <stdint.h>

#include "core/model/model.h"
#include "core/base/status.h"
#include "core/base/tensor.h"

/* LLaMA-2 shapes: "7b" (dim 4096, 32 layers), "13b" (5120, 40), "tiny" (128, 2; vocab 512).
 * HL_ERR_ARG naming the known shapes otherwise. */
hl_status hl_synth_shape(const char *name, hl_llama_config *cfg);

/* An in-memory model with random weights in dtype `dt` (owned buffers; hl_model_free). */
hl_status hl_synth_model(hl_model *m, const hl_llama_config *cfg, hl_dtype dt, uint64_t seed);

typedef void (*hl_synth_progress_fn)(void *user, double done_bytes, double total_bytes);

/* Write a Hugging Face directory at out_dir (which must not exist): config.json, sharded
 * model-0000i-of-0000n.safetensors with model.safetensors.index.json, README.txt, and a
 * tokenizer: a copy of `tokenizer_path` under its format's standard name when given (its
 * vocabulary must match), else a synthetic llama2.c tokenizer.bin. Built in a temporary
 * directory next to out_dir and renamed at the end: out_dir is either absent or complete.
 * `shape_label` goes into config.json and the README ("7b", ...). */
hl_status hl_synth_write(const char *out_dir, const hl_llama_config *cfg, hl_dtype dt, uint64_t seed,
                         const char *tokenizer_path, const char *shape_label, hl_synth_progress_fn progress,
                         void *user);

#endif
