/* HydraLoRA adapters (HYDRALORA.md §2-3): one shared A, N heads B_i and a per-token
 * fp32 softmax router per adapted projection; LoRA, LoRA-Split and uniform gate are the
 * same layer with switches.
 *
 * All trainable parameters live in one f32 slab (and their gradients and both Adam
 * moments in slabs of the same layout); hl_param_view names each tensor in it with its
 * export key (HYDRALORA.md §8), so the optimizer, checkpoint writer and exporter walk
 * one table. */
#ifndef HL_ADAPTER_H
#define HL_ADAPTER_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

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

#endif
