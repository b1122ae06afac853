/* A loaded LLaMA-family base model: configuration plus read-only weight views.
 *
 * Engine layout (whatever the file format): every matrix is row-major [out, in]
 * (nn.Linear), and q/k rows are in the Hugging Face "rotate_half" order (docs/file-formats.md §4.2).
 * Loaders of Meta-layout files (llama2.c .bin, GGUF) permute q/k rows into this order.
 * Weights stay in their file dtype; views usually point into mmapped files. */
#ifndef HL_MODEL_H
#define HL_MODEL_H

#include "core/base/status.h"
#include "core/base/tensor.h"

typedef struct {
    int dim;          /* hidden_size */
    int hidden_dim;   /* intermediate_size (FFN) */
    int n_layers;
    int n_heads;
    int n_kv_heads;   /* == n_heads when there is no grouped-query attention */
    int head_dim;     /* dim / n_heads unless the config says otherwise */
    int vocab_size;
    int max_seq_len;  /* max_position_embeddings / seq_len / context_length */
    float rms_norm_eps;
    float rope_theta;
    int tie_word_embeddings; /* 1: lm_head is the embedding table */
    int bos_id, eos_id;
} hl_llama_config;

typedef struct {
    hl_weight attn_norm; /* [1, dim] */
    hl_weight wq;        /* [n_heads*head_dim, dim] (rotate_half row order) */
    hl_weight wk;        /* [n_kv_heads*head_dim, dim] (rotate_half row order) */
    hl_weight wv;        /* [n_kv_heads*head_dim, dim] */
    hl_weight wo;        /* [dim, n_heads*head_dim] */
    hl_weight ffn_norm;  /* [1, dim] */
    hl_weight w_gate;    /* [hidden_dim, dim]  (w1) */
    hl_weight w_up;      /* [hidden_dim, dim]  (w3) */
    hl_weight w_down;    /* [dim, hidden_dim]  (w2) */
} hl_layer_weights;

typedef enum {
    HL_FORMAT_HF_SAFETENSORS = 0,
    HL_FORMAT_LLAMA2C_V0,
    HL_FORMAT_LLAMA2C_V1,
    HL_FORMAT_GGUF,
    HL_FORMAT_LLAMA2C_V2, /* Q8_0 groups (runq.c); dequantised to owned f32 on load */
} hl_model_format;

typedef struct hl_model {
    hl_llama_config cfg;
    hl_model_format format;
    hl_dtype dtype;            /* storage dtype of the large matrices */
    char path[4096];           /* what was opened (directory or file) */
    hl_weight tok_embed;       /* [vocab, dim] */
    hl_weight final_norm;      /* [1, dim] */
    hl_weight lm_head;         /* [vocab, dim]; same data as tok_embed when tied */
    hl_layer_weights *layers;  /* n_layers entries, owned */

    /* Resources behind the views (owned; released by hl_model_free). */
    struct hl_mapped_file *maps; /* mmapped files */
    int n_maps;
    void **owned;                /* heap buffers (e.g. permuted q/k copies) */
    int n_owned;

    /* Tokenizer vocabulary embedded in the file (GGUF), else NULL; owned. Build a tokenizer
     * from it with hl_tokenizer_from_vocab (see core/formats/gguf.h). */
    struct hl_gguf_vocab *vocab;
} hl_model;

/* Open a model: a directory with config.json + (model.safetensors |
 * model.safetensors.index.json) (or that config.json / index / a .safetensors file inside
 * it), a llama2.c .bin file (v0, v1, v2), or a .gguf file (llama architecture; F32, F16, BF16
 * views, Q8_0 dequantised). The format is detected from the contents, not the name.
 * F32/F16/BF16 weights stay views into the mapped files (a 13.5 GB bf16 model is not copied);
 * Meta-layout files (llama2.c, GGUF) get owned, row-permuted copies of wq/wk. Errors name the
 * file and, for a missing or mis-shaped tensor, the tensor and its expected shape.
 * On failure *model is zeroed (hl_model_free is still safe). */
hl_status hl_model_load(hl_model *model, const char *path);
void hl_model_free(hl_model *model);

/* Total number of base-model parameters (embedding + layers + norms + untied head). */
int64_t hl_model_param_count(const hl_llama_config *cfg);

/* Bytes of the weights as stored in memory (views: their dtype; owned copies included). */
size_t hl_model_weight_bytes(const hl_model *model);

/* "hf-safetensors", "llama2c-v0", "llama2c-v1", "llama2c-v2", "gguf". */
const char *hl_model_format_name(hl_model_format format);

/* Read only the configuration of a Hugging Face directory (config.json), without weights:
 * for planning before a download. *dtype comes from "torch_dtype" (F32 if absent). */
hl_status hl_model_read_config(const char *dir, hl_llama_config *cfg, hl_dtype *dtype);

/* Check a configuration for consistency and sane sizes (positive, heads divide, head_dim even,
 * products fit). `label` prefixes the message. Used by every loader. */
hl_status hl_llama_config_check(const hl_llama_config *cfg, const char *label);

#endif
