/* Instruction records from JSON / JSON-lines files, and the prompt + label layout
 * the trainer consumes (docs/method.md §5).
 *
 * Accepted files (detected from the bytes, gzip'd or not):
 *   - JSON lines: one object per line (GSM8K, Dolly, HumanEval, rows-API downloads);
 *   - a JSON array of objects (Alpaca, CodeAlpaca, HydraLoRA's example_data);
 *   - a JSON object holding an array under "examples" (BIG-Bench Hard task files).
 * Each object becomes one record {instruction, input, output} through a field map.
 * Without an explicit map the schema is recognised from the first good object:
 *   instruction/input/output (Alpaca, HydraLoRA)   instruction/context/response (Dolly)
 *   question/answer (GSM8K)                         input/target (BBH)
 *   inputs/targets (Flan)                           prompt/canonical_solution (HumanEval)
 *   prompt/completion, prompt/response
 * A malformed line or element (bad JSON, not an object, missing field, wrong type) is
 * recorded with its line number and reason, skipped and counted; a file without a
 * single usable record is an error.
 *
 * Ownership: an hl_dataset owns every string its records point to; records stay valid
 * until hl_dataset_free. Loading is linear in the file size (one read, elements parsed
 * one at a time, strings copied once into an arena). A loaded dataset is read-only and
 * may be shared between threads. */
#ifndef HL_RECORDS_H
#define HL_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#include "core/base/status.h"
#include "core/model/tokenizer/tokenizer.h"

/* Label value of masked positions (PyTorch's CrossEntropyLoss ignore_index). */
#define HL_LABEL_IGNORE (-100)

typedef struct {
    const char *instruction; /* NUL-terminated UTF-8, never NULL */
    const char *input;       /* "" when absent or null */
    const char *output;
    uint32_t instruction_len, input_len, output_len; /* bytes, without the NUL */
    uint32_t line;  /* 1-based line in the file where the record starts */
    uint32_t index; /* 0-based position among all elements/lines of the file (incl. skipped) */
    const char *tag; /* value of the options' tag_field (a string, or a number as written in the file);
                        NULL when no tag field was asked for or the record has none usable */
} hl_record;

/* Names of the source fields that feed instruction / input / output. input may be ""
 * (no input field); the others must be non-empty. */
typedef struct {
    char instruction[64];
    char input[64];
    char output[64];
} hl_field_map;

typedef enum {
    HL_RECORDS_JSONL = 1,    /* one object per line */
    HL_RECORDS_JSON_ARRAY,   /* [ {...}, {...} ] */
    HL_RECORDS_JSON_EXAMPLES /* { ..., "examples": [ {...} ] } (BBH) */
} hl_records_format;

typedef struct {
    uint32_t line;    /* 1-based line in the file (0 if unknown) */
    uint32_t index;   /* 0-based element / line index */
    char reason[120]; /* "bad JSON near column 17", "missing field 'output'", ... */
} hl_record_issue;

/* How often each top-level key appears in the well-formed objects of the file. */
typedef struct {
    char name[64];
    size_t present; /* objects that have the key */
    size_t empty;   /* ... with value "" or null or [] or {} */
} hl_field_stat;

#define HL_RECORDS_MAX_FIELDS 32      /* distinct keys tracked (more are counted as "other") */
#define HL_RECORDS_MAX_ISSUES 1000    /* issues kept with detail (all are counted) */

typedef struct hl_dataset {
    char *path;                  /* as given to hl_records_load (or the name given to parse) */
    hl_records_format format;
    int gzipped;
    hl_field_map map;            /* the map in effect (given or detected) */
    char tag_field[64];          /* the options' tag_field ("" none) */
    char schema[32];             /* "alpaca", "gsm8k", "bbh", ... or "custom" */
    hl_record *records;          /* [n_records] */
    size_t n_records;
    size_t n_objects;            /* well-formed JSON objects seen (usable or not) */
    size_t n_malformed;          /* lines/elements skipped */
    hl_record_issue *issues;     /* first HL_RECORDS_MAX_ISSUES of them */
    size_t n_issues;
    hl_field_stat fields[HL_RECORDS_MAX_FIELDS];
    int n_fields;
    size_t n_other_field_keys;   /* key occurrences beyond the tracked table */
    uint64_t file_bytes;         /* decompressed size */
    void *arena_;                /* private */
    size_t issues_cap_;          /* private */
} hl_dataset;

typedef struct {
    const hl_field_map *map; /* NULL: detect the schema */
    const char *tag_field;   /* NULL/"": none; else each record's `tag` takes this field's value
                                (e.g. "source", "task", "category": the labels of a mixture) */
} hl_records_options;

/* Parse a "instruction=FIELD,input=FIELD,output=FIELD" spec (any order; input optional,
 * "input=" for none). Unspecified instruction/output keep the value already in *map. */
hl_status hl_field_map_parse(hl_field_map *map, const char *spec);
/* Fill a map from literal names (input may be NULL or ""). */
hl_status hl_field_map_set(hl_field_map *map, const char *instruction, const char *input, const char *output);

/* Read and parse a file (gzip detected by its magic bytes). opts may be NULL. */
hl_status hl_records_load(hl_dataset *ds, const char *path, const hl_records_options *opts);
/* Parse bytes already in memory; `name` is used in messages. */
hl_status hl_records_parse(hl_dataset *ds, const char *data, size_t len, const char *name,
                           const hl_records_options *opts);
void hl_dataset_free(hl_dataset *ds);

/* Record i, or NULL when out of range. */
const hl_record *hl_dataset_get(const hl_dataset *ds, size_t i);

/* prompt = instruction, plus "\n" + input when input is non-empty (docs/method.md §5).
 * *out is malloc'd, NUL-terminated; *len (may be NULL) excludes the NUL. */
hl_status hl_record_prompt(const hl_record *rec, char **out, size_t *len);

/* One tokenised training example. ids and labels have n entries (malloc'd). */
typedef struct {
    int32_t *ids;
    int32_t *labels;     /* HL_LABEL_IGNORE on the source part, = ids on the target part */
    size_t n;            /* after truncation */
    size_t n_source;     /* source tokens kept ([BOS] + prompt + [EOS], truncated) */
    size_t n_full;       /* length before truncation */
    int truncated;       /* n_full > n */
} hl_tokenized;

/* ids = [BOS] + tok(prompt) + [EOS] (labels masked) followed by tok(output) + [EOS]
 * (labels = ids), truncated from the right to max_len (max_len <= 0: no limit).
 * The prompt and the output are encoded separately (each gets SentencePiece's dummy
 * prefix when the tokenizer uses one). See records.c for the reference semantics. */
hl_status hl_record_tokenize(const hl_tokenizer *tok, const hl_record *rec, int max_len, hl_tokenized *out);
void hl_tokenized_free(hl_tokenized *t);

/* Deterministic validation split of n records. val_count > 0 takes that many; otherwise
 * round(val_fraction * n) (at least 1 when val_fraction > 0 and n >= 2). At least one record
 * always stays in training. Both index lists are ascending (malloc'd; free with free()).
 * The same (n, seed, size) always gives the same split. */
hl_status hl_records_split(size_t n, double val_fraction, size_t val_count, uint64_t seed, size_t **train_idx,
                           size_t *n_train, size_t **val_idx, size_t *n_val);

#endif
