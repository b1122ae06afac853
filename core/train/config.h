/* The run configuration: one JSON object holding everything a training run needs.
 *
 * One table of fields (hl_config_fields) drives everything: JSON parsing, validation,
 * `--set key=value` overrides, printing, and the workbench's Config form. Each field has a
 * name, a type, a default (the reference values of docs/method.md §4), a range or a list of
 * choices, and a one-line help text. Validation errors name the field, the bad value and
 * the allowed range ("lr: 5 is out of range [0, 1]").
 *
 * Usage:
 *   hl_run_config cfg;
 *   hl_config_defaults(&cfg);
 *   HL_TRY(hl_config_load_file(&cfg, "run.json"));     // fields absent from the file keep defaults
 *   HL_TRY(hl_config_set(&cfg, "lr=1e-4"));             // overrides, same spelling as JSON
 *   HL_TRY(hl_config_validate(&cfg));                   // cross-field checks (model/data given, ...)
 *   char *json = hl_config_to_json(&cfg);               // full config, every field; free()
 *
 * Thread-safety: the table is constant; an hl_run_config is a plain value (copy it freely,
 * it holds no pointers). */
#ifndef HL_CONFIG_H
#define HL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "core/adapter/adapter.h"
#include "core/backend/backend.h" /* hl_compute */
#include "core/base/status.h"

#define HL_CONFIG_PATH_MAX 4096
#define HL_CONFIG_NAME_MAX 128

typedef enum {
    HL_SCHED_COSINE = 0, /* linear warmup, then cosine decay to 0 (reference) */
    HL_SCHED_LINEAR,     /* linear warmup, then linear decay to 0 */
    HL_SCHED_CONSTANT,   /* linear warmup, then constant */
} hl_schedule;

typedef struct {
    /* --- where things are --- */
    char name[HL_CONFIG_NAME_MAX];    /* run name; the run directory is <out_dir> or runs/<name> */
    char out_dir[HL_CONFIG_PATH_MAX]; /* run directory; "" = runs/<name> (relative to the cwd) */
    char model[HL_CONFIG_PATH_MAX];   /* base model: HF directory, llama2.c .bin or .gguf */
    char tokenizer[HL_CONFIG_PATH_MAX]; /* "" = found next to the model */

    /* --- data --- */
    char data[HL_CONFIG_PATH_MAX];     /* training records (JSON / JSON lines); several files
                                          separated by ',' (JSON: a string or an array of strings) */
    char field_instruction[64];        /* record field names; "" = detect (instruction/question/...) */
    char field_input[64];
    char field_output[64];
    char val_data[HL_CONFIG_PATH_MAX]; /* separate validation file; "" = split off the training data */
    double val_split;                  /* 0 = none; < 1: fraction of the training records;
                                          >= 1: number of records (seeded random pick) */
    int val_max;                       /* at most this many validation records (0 = all) */

    /* --- adapter --- */
    hl_variant variant;
    unsigned targets; /* HL_TARGET_* bits */
    int r;
    double alpha;
    int n_heads; /* N (forced to 1 for LoRA) */
    double dropout;

    /* --- optimisation --- */
    double lr;
    hl_schedule schedule;
    double warmup_ratio;
    int epochs;
    int max_steps;     /* > 0 overrides epochs */
    int micro_batch;
    int grad_accum;
    int max_len;
    double clip_norm;  /* 0 = no clipping */
    double weight_decay;
    double beta1, beta2, eps;
    int64_t seed;
    char device[32];   /* backend: "cpu", "cuda", "cuda:N" or "auto" (core/backend/backend.h) */
    int threads;       /* 0 = all cores */
    hl_compute compute; /* arithmetic of the frozen-weight products: auto (bf16 for bf16/f16 models), f32, bf16 */
    int grad_checkpoint; /* 1: recompute activations in backward (less memory) */
    int packing;       /* 1: rows of max_len tokens filled with whole examples (block-diagonal attention);
                          0: one example per row, padded to the longest of the micro-batch */

    /* --- bookkeeping --- */
    int eval_every;    /* steps between eval-loss measurements (0 = only at start and end) */
    int save_every;    /* steps between checkpoints (0 = only at the end / on stop) */
    int keep_last;     /* keep the newest N checkpoints (0 = keep all) */
    char probe_data[HL_CONFIG_PATH_MAX]; /* held-out probe sets, one source per file (',' list / JSON array):
                                            routing statistics per file at every eval ("" = none) */
} hl_run_config;

typedef enum {
    HL_FIELD_STRING = 0, /* char[]; `size` bytes */
    HL_FIELD_PATH,       /* like STRING, but a file-system path (the form may offer a file picker) */
    HL_FIELD_INT,        /* int */
    HL_FIELD_INT64,      /* int64_t */
    HL_FIELD_DOUBLE,     /* double */
    HL_FIELD_BOOL,       /* int 0/1; JSON true/false; --set accepts true/false/1/0/yes/no/on/off */
    HL_FIELD_ENUM,       /* int-sized enum; one of `choices` (JSON: the string) */
    HL_FIELD_FLAGS,      /* unsigned bit set; comma list of `choices` (JSON: array or string) */
} hl_field_type;

typedef struct {
    const char *name;       /* JSON key and --set key, e.g. "lr" */
    hl_field_type type;
    size_t offset;          /* offsetof(hl_run_config, ...) */
    size_t size;            /* bytes of the member (string capacity) */
    const char *group;      /* "run", "data", "adapter", "optim", "log": for the form's sections */
    const char *def;        /* default in --set spelling ("2e-4", "cosine", "gate,up,down", "") */
    double min, max;        /* inclusive range for INT/INT64/DOUBLE (min > max: unbounded) */
    int min_open;           /* 1: min itself is not allowed (e.g. lr > 0) */
    int max_open;           /* 1: max itself is not allowed (e.g. dropout < 1) */
    const char *const *choices; /* ENUM/FLAGS: NULL-terminated names; value i is choice i
                                   (FLAGS: bit i) */
    const char *help;       /* one line */
} hl_config_field;

/* The table, in display order. */
extern const hl_config_field hl_config_fields[];
extern const int hl_config_n_fields;

/* Field by name (NULL if unknown). Accepts a few aliases: "N" for n_heads, "rank" for r,
 * "accum"/"gradient_accumulation" for grad_accum, "batch_size" for micro_batch. */
const hl_config_field *hl_config_field_find(const char *name);

/* Defaults of every field (never fails). */
void hl_config_defaults(hl_run_config *cfg);

/* Set one field from text ("2e-4", "hydra", "gate,up,down", "true"). Checks the type and the
 * range/choices of that field: HL_ERR_ARG or HL_ERR_RANGE with "<name>: <value> ... <allowed>". */
hl_status hl_config_set_field(hl_run_config *cfg, const hl_config_field *f, const char *text);
/* "key=value" (as `--set`); unknown keys are an error that lists close names. */
hl_status hl_config_set(hl_run_config *cfg, const char *key_eq_value);

/* Current value of a field in --set spelling, into buf (always NUL-terminated).
 * Doubles are printed with %.17g so that text round-trips exactly. */
void hl_config_get_field(const hl_run_config *cfg, const hl_config_field *f, char *buf, size_t size);

/* Apply a JSON object: every known key is set through hl_config_set_field; unknown keys are
 * an error (catches typos like "learning_rate"); JSON null keeps the current value. `label`
 * (a file name) prefixes error messages. */
hl_status hl_config_from_json(hl_run_config *cfg, const char *json, size_t len, const char *label);
/* Read a file and apply it on top of the current values. */
hl_status hl_config_load_file(hl_run_config *cfg, const char *path);

/* Cross-field validation before a run: every field in range, model and data given, the
 * device usable on this build and machine, warmup_ratio / steps consistent. Also re-checks each field (so a struct edited by
 * hand is caught). */
hl_status hl_config_validate(const hl_run_config *cfg);

/* The full config as pretty-printed JSON with every field (malloc'd, NUL-terminated;
 * NULL on out-of-memory). Feeding it back to hl_config_from_json gives the same struct. */
char *hl_config_to_json(const hl_run_config *cfg);
/* Write the JSON atomically (temporary file, fsync, rename). */
hl_status hl_config_save_file(const hl_run_config *cfg, const char *path);

/* The run directory: out_dir if set, else "runs/<name>". */
void hl_config_run_dir(const hl_run_config *cfg, char *buf, size_t size);

/* The adapter part of the config (variant, targets, r, N, alpha, dropout). For LoRA n_heads = 1. */
hl_adapter_config hl_config_adapter(const hl_run_config *cfg);

/* Names used by the ENUM fields ("hydra", "lora", "lora-split", "uniform"; "cosine", ...). */
const char *hl_config_variant_name(hl_variant v);
const char *hl_config_schedule_name(hl_schedule s);

#endif
