/* HydraLoRA adapters (docs/method.md §2-3): one shared A, N heads B_i and a per-token
 * fp32 softmax router per adapted projection; LoRA, LoRA-Split and uniform gate are the
 * same layer with switches.
 *
 * All trainable parameters live in one f32 slab (and their gradients and both Adam
 * moments in slabs of the same layout); hl_param_view names each tensor in it with its
 * export key (docs/method.md §8), so the optimizer, checkpoint writer and exporter walk
 * one table. */
#ifndef HL_ADAPTER_H
#define HL_ADAPTER_H

#include <stddef.h>
#include <stdint.h>

#include "core/model/model.h"
#include "core/base/status.h"

typedef enum {
    HL_VARIANT_HYDRA = 0,  /* 1 A, N B, softmax router */
    HL_VARIANT_LORA,       /* 1 A, 1 B, no router (N forced to 1) */
    HL_VARIANT_LORA_SPLIT, /* N A, N B, softmax router */
    HL_VARIANT_UNIFORM,    /* 1 A, N B, fixed weights 1/N (ablation "w/o gate") */
} hl_variant;

/* Projections that can be adapted (bit flags). */
enum {
    HL_TARGET_Q = 1u << 0,
    HL_TARGET_K = 1u << 1,
    HL_TARGET_V = 1u << 2,
    HL_TARGET_O = 1u << 3,
    HL_TARGET_GATE = 1u << 4,
    HL_TARGET_UP = 1u << 5,
    HL_TARGET_DOWN = 1u << 6,
};
#define HL_TARGET_COUNT 7
#define HL_TARGETS_DEFAULT (HL_TARGET_GATE | HL_TARGET_UP | HL_TARGET_DOWN)

/* The one range of the adapter's sizes: hl_adapter_config_check enforces it and the run
 * config's field table (core/train/config.c) shows and checks the same numbers, so --help-config,
 * --print-config, the workbench form and training agree. */
#define HL_ADAPTER_MAX_RANK 4096
#define HL_ADAPTER_MAX_HEADS 64

typedef struct {
    hl_variant variant;
    unsigned targets; /* HL_TARGET_* bits */
    int r;            /* rank */
    int n_heads;      /* N: number of B heads (forced to 1 for LoRA) */
    float alpha;      /* scaling s = alpha / r */
    float dropout;    /* p on the adapter path */
} hl_adapter_config;

/* One named tensor inside the parameter slab. */
typedef struct {
    char name[160];  /* export key, e.g. base_model.model.model.layers.3.mlp.up_proj.lora_B2.weight */
    int layer;       /* block index */
    int target;      /* index 0..6 of the target (q,k,v,o,gate,up,down) */
    int kind;        /* 0 = A, 1 = B, 2 = router */
    int head;        /* head index for B (and A in LoRA-Split); 0 otherwise */
    int64_t rows, cols;
    size_t offset;   /* in floats from the start of the slab */
} hl_param_view;

/* "q_proj", "k_proj", ..., "down_proj" for target index 0..6. */
const char *hl_target_name(int target);

/* ---------------------------------------------------------------------------------
 * Engine API (owned by the engine; core/adapter/adapter.c)
 * --------------------------------------------------------------------------------- */

/* Adapters of one projection (a view into the slabs; d_in == 0 when not adapted).
 * Layouts (contiguous, row-major):
 *   A:  [nA, r, d_in]   nA = N for LoRA-Split, else 1   (stacked = one [nA*r, d_in] matrix)
 *   B:  [N, d_out, r]   one [d_out, r] matrix per head
 *   R:  [N, d_in]       router (NULL for LoRA and uniform) */
typedef struct {
    int layer, target;
    int d_in, d_out;
    float *A, *B, *R;
    float *dA, *dB, *dR;
} hl_adapter_proj;

typedef struct {
    hl_adapter_config cfg; /* normalised: LoRA has n_heads 1 */
    int n_layers;
    int N;          /* heads B (cfg.n_heads) */
    int nA;         /* number of A matrices: N for LoRA-Split, 1 otherwise */
    int has_router; /* HYDRA, LORA_SPLIT */
    float scale;    /* alpha / r */
    hl_adapter_proj *proj; /* [n_layers * HL_TARGET_COUNT], index layer*HL_TARGET_COUNT + target */

    /* One slab each, same layout; n_params floats. The optimizer and the checkpoint
     * writer walk them flat; `views` names every tensor inside (export keys). */
    size_t n_params;
    float *params, *grads, *m, *v;
    hl_param_view *views;
    int n_views;

    /* Dropout (HL_RNG_STREAM_DROPOUT of `seed`): the mask of a projection in a
     * micro-batch is hash(key, dropout_step, layer, target, element). dropout_step is
     * advanced once per training micro-batch; a checkpoint must save it. One mask is
     * shared by all heads (docs/method.md §2: cheaper, same expectation). */
    uint64_t seed;
    uint64_t dropout_key;
    uint64_t dropout_step;
} hl_adapters;

/* Validate a config (1 <= r <= HL_ADAPTER_MAX_RANK, 1 <= N <= HL_ADAPTER_MAX_HEADS, 0 <= dropout < 1, alpha finite, targets non-empty). */
hl_status hl_adapter_config_check(const hl_adapter_config *cfg);

/* Number of trainable floats for a model/config (no allocation). */
size_t hl_adapter_param_count(const hl_llama_config *mcfg, const hl_adapter_config *cfg);

/* Allocate the four slabs and the view table, and initialise with `seed`
 * (docs/method.md §2: A and router uniform(±1/√d_in), B zeros; draws in view-table order from
 * HL_RNG_STREAM_INIT). Grads and moments start at zero. */
hl_status hl_adapters_create(hl_adapters *ad, const hl_llama_config *mcfg, const hl_adapter_config *cfg,
                             uint64_t seed);
void hl_adapters_free(hl_adapters *ad);

/* Release slabs an adapter set will not use: an evaluation copy needs the parameters only,
 * a checkpoint's host copy no gradients. The released pointers (and the projections' gradient
 * pointers with the gradients) become NULL. */
enum { HL_ADAPTER_GRADS = 1u << 0, HL_ADAPTER_MOMENTS = 1u << 1 };
void hl_adapters_release(hl_adapters *ad, unsigned which);

void hl_adapters_zero_grad(hl_adapters *ad);

/* The projection for (layer, target) or NULL when that projection is not adapted. */
static inline const hl_adapter_proj *hl_adapters_proj(const hl_adapters *ad, int layer, int target) {
    if (!ad || layer < 0 || layer >= ad->n_layers || target < 0 || target >= HL_TARGET_COUNT)
        return NULL;
    const hl_adapter_proj *p = &ad->proj[layer * HL_TARGET_COUNT + target];
    return p->d_in ? p : NULL;
}

/* Find a view by export key; NULL if absent. */
const hl_param_view *hl_adapters_find(const hl_adapters *ad, const char *name);

/* Copy one tensor (f32, row-major rows×cols) into the parameter slab by export key
 * (loading checkpoints and exported adapters). Errors name the key and the shapes. */
hl_status hl_adapters_set_tensor(hl_adapters *ad, const char *name, const float *data, int64_t rows, int64_t cols);

/* Target index from "q_proj", "gate_proj", ... (also accepts "q", "gate", ...); -1 if unknown. */
int hl_target_from_name(const char *name);

/* ---- Routing statistics, gathered during forward over non-pad tokens -------------- */
typedef struct {
    int n_layers, N;
    int64_t *tokens;    /* [n_layers*7]: tokens seen per (layer, target) */
    double *weight_sum; /* [n_layers*7*N]: Σ ω_i */
    int64_t *top1;      /* [n_layers*7*N]: tokens whose arg-max head is i (lowest index on ties) */
    double *entropy_sum;/* [n_layers*7]: Σ −Σ_i ω_i ln ω_i */
} hl_routing_stats;

hl_status hl_routing_stats_init(hl_routing_stats *st, int n_layers, int N);
void hl_routing_stats_reset(hl_routing_stats *st);
void hl_routing_stats_free(hl_routing_stats *st);
/* Means for one (layer, target); return 0 when no tokens were seen. */
static inline double hl_routing_mean_weight(const hl_routing_stats *st, int layer, int target, int head) {
    int64_t n = st->tokens[layer * HL_TARGET_COUNT + target];
    return n ? st->weight_sum[(layer * HL_TARGET_COUNT + target) * st->N + head] / (double)n : 0.0;
}
static inline double hl_routing_top1_share(const hl_routing_stats *st, int layer, int target, int head) {
    int64_t n = st->tokens[layer * HL_TARGET_COUNT + target];
    return n ? (double)st->top1[(layer * HL_TARGET_COUNT + target) * st->N + head] / (double)n : 0.0;
}
static inline double hl_routing_mean_entropy(const hl_routing_stats *st, int layer, int target) {
    int64_t n = st->tokens[layer * HL_TARGET_COUNT + target];
    return n ? st->entropy_sum[layer * HL_TARGET_COUNT + target] / (double)n : 0.0;
}

/* Dropout mask key for (layer, target) in the current micro-batch (the mask of element i is
 * hash(key, i) >= p: the same bits on every backend). */
uint64_t hl_adapter_dropout_key(const hl_adapters *ad, int layer, int target);

#endif
