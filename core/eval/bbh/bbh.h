/* BIG-Bench Hard (BBH): task table, data loading, prompts, answer extraction, scoring
 * and (core/eval/bbh/eval.c) a batched greedy evaluation with progress and cancel.
 *
 * Everything here follows docs/bbh-eval.md (the spec):
 *   - 27 subtasks (23 tasks; logical_deduction and tracking_shuffled_objects come in
 *     3/5/7-object variants), data from DIR/data/<task>.json, 3-shot CoT exemplars from
 *     DIR/cot-prompts/<task>.txt (same layout as the upstream repository).
 *   - Three prompt modes (cot, answer-only, zero-shot) and three conventions ("rules")
 *     that fix prompt variant, stop strings, max new tokens and answer extraction:
 *       paper        Suzgun et al. 2022: original prompt, stop "\n\n" and "Q:", extract
 *                    after the LAST "So the answer is ", strip, drop one trailing '.'.
 *       lm-eval      lm-evaluation-harness bbh_cot_fewshot: prompt + "\n", until
 *                    "</s>", "Q", "\n\n" (+EOS), max 1024, regex (?<=the answer is )(.*)(?=.)
 *       opencompass  bbh_gen_5b92b0 / 98fba6 (2024): "Follow the given examples..." prefix,
 *                    max 512, stop "Q:", multiple-choice / free-form post-processing.
 *   - Three averages: the paper's 23-task macro mean, the unweighted 27-subtask mean
 *     (OpenCompass / HydraLoRA tables) and the micro mean over examples (lm-eval).
 *
 * Library rules: no printing, no exit; errors are hl_status with a detail message.
 * All strings returned through char** are malloc'd and owned by the caller. */
#ifndef HL_BBH_H
#define HL_BBH_H

#include <stddef.h>
#include <stdint.h>

#include "core/adapter/adapter.h"
#include "core/backend/backend.h"
#include "core/model/model.h"
#include "core/base/status.h"
#include "core/model/tokenizer/tokenizer.h"

#define HL_BBH_N_TASKS 27 /* subtask files */
#define HL_BBH_N_GROUPS 23 /* tasks of the paper's average */

/* ---- task table (core/eval/bbh/tasks.c) -------------------------------------------- */

typedef enum {
    HL_BBH_MODE_COT = 0,  /* 3-shot chain-of-thought (default, the standard protocol) */
    HL_BBH_MODE_AO,       /* 3-shot answer-only: exemplars "A: X", query ends "\nA:" */
    HL_BBH_MODE_ZEROSHOT, /* "Q: {input}\nA:" (lm-eval bbh_zeroshot doc_to_text), no exemplars */
    HL_BBH_MODE_COUNT
} hl_bbh_mode;

typedef enum {
    HL_BBH_RULE_PAPER = 0,
    HL_BBH_RULE_LMEVAL,
    HL_BBH_RULE_OPENCOMPASS,
    HL_BBH_RULE_COUNT
} hl_bbh_rule;

const char *hl_bbh_task_name(int task);       /* 0..26 in alphabetical order; NULL if out of range */
int hl_bbh_task_index(const char *name);      /* -1 if unknown */
int hl_bbh_task_group(int task);              /* 0..22: the paper task it belongs to */
const char *hl_bbh_group_name(int group);     /* "logical_deduction", "boolean_expressions", ... */
int hl_bbh_task_is_multiple_choice(int task); /* OpenCompass' 17 multiple-choice sets */
int hl_bbh_task_expected_count(int task);     /* examples upstream (250, 187, 146, 178) */

const char *hl_bbh_mode_name(hl_bbh_mode mode); /* "cot", "ao", "zeroshot" */
const char *hl_bbh_rule_name(hl_bbh_rule rule); /* "paper", "lm-eval", "opencompass" */
/* Parse names (also accept "answer-only", "lmeval", "lm-evaluation-harness", ...). */
hl_status hl_bbh_mode_parse(const char *s, hl_bbh_mode *mode);
hl_status hl_bbh_rule_parse(const char *s, hl_bbh_rule *rule);

/* Parse "a,b,c" (task names, or group names such as "logical_deduction" that select
 * all variants, or "all"). Writes a 0/1 mask of HL_BBH_N_TASKS entries. */
hl_status hl_bbh_tasks_parse(const char *list, unsigned char mask[HL_BBH_N_TASKS]);

/* The generation settings each convention uses (docs/bbh-eval.md §2-§4, §7). */
typedef struct {
    const char *stop[4]; /* stop strings, NULL-terminated; generation is cut before the first hit */
    int n_stop;
    int max_new_tokens;
} hl_bbh_gen_settings;
void hl_bbh_rule_gen_settings(hl_bbh_rule rule, hl_bbh_mode mode, hl_bbh_gen_settings *out);

/* ---- data (core/eval/bbh/data.c) ---------------------------------------------------- */

typedef struct {
    char *input;
    char *target;
} hl_bbh_example;

typedef struct {
    int loaded;              /* 0: not part of this set */
    char *cot_body;          /* the cot-prompt file minus its canary and "-----" lines */
    char *ao_body;           /* the same exemplars in answer-only form (docs/bbh-eval.md §2 rule) */
    hl_bbh_example *examples;
    int n_examples;
} hl_bbh_task_data;

typedef struct {
    char dir[4096];
    hl_bbh_task_data tasks[HL_BBH_N_TASKS];
} hl_bbh_set;

/* Where BBH lives by default: <data dir>/bbh, with the data dir of hl_data_dir()
 * (core/base/datadir.h). Does not check existence. */
hl_status hl_bbh_default_dir(char *out, size_t out_size);

/* Load the tasks whose mask entry is non-zero (mask NULL: all 27) from `dir`
 * (NULL: hl_bbh_default_dir). HL_ERR_NOT_FOUND with a hint if the folder or a file is missing;
 * HL_ERR_FORMAT naming file and field for malformed JSON / prompt files. */
hl_status hl_bbh_load(hl_bbh_set *set, const char *dir, const unsigned char *mask);
void hl_bbh_free(hl_bbh_set *set);

/* Parse one task's JSON file / prompt file from memory (used by hl_bbh_load and the fuzzer).
 * `what` names the source in error messages. */
hl_status hl_bbh_parse_task_json(const char *buf, size_t len, const char *what, hl_bbh_example **examples,
                                 int *n_examples);
hl_status hl_bbh_parse_cot_prompt(const char *buf, size_t len, const char *what, char **cot_body, char **ao_body);
void hl_bbh_examples_free(hl_bbh_example *examples, int n);

/* ---- prompts (core/eval/bbh/prompt.c) ------------------------------------------------ */

/* Prompt for example `idx` of `task` (text only; BOS is added at tokenization):
 *   cot:      body + "\n\nQ: " + input + "\nA: Let's think step by step."
 *   ao:       ao_body + "\n\nQ: " + input + "\nA:"
 *   zeroshot: "Q: " + input + "\nA:"
 * Rule variants: lm-eval appends "\n" to cot prompts (v0.4.1-0.4.2 / >=0.4.9.1, except that
 * v0.4.9.1+ also changes sports_understanding's "step. " to "step.\n", not reproduced);
 * opencompass prefixes few-shot prompts with "Follow the given examples and answer the
 * question.\n". The paper rule gives the original prompts byte for byte. */
hl_status hl_bbh_build_prompt(const hl_bbh_set *set, int task, int idx, hl_bbh_mode mode, hl_bbh_rule rule,
                              char **prompt, size_t *len);

/* ---- extraction (core/eval/bbh/extract.c) ------------------------------------------- */

/* Cut `gen` at the first occurrence of any of the rule's stop strings (what the
 * generation would have been under that convention). Returns the new length. */
size_t hl_bbh_truncate(hl_bbh_rule rule, hl_bbh_mode mode, const char *gen, size_t len);

/* Extract the answer from a generation (already truncated or not: truncation is applied
 * first) and decide whether it matches `target`. *answer (may be NULL if not wanted) is the
 * extracted string as the convention compares it (OpenCompass multiple-choice: the letter).
 * Returns HL_ERR_NOMEM only. */
hl_status hl_bbh_score_one(hl_bbh_rule rule, hl_bbh_mode mode, int task, const char *gen, size_t len,
                           const char *target, char **answer, int *correct);

/* Individual extractors (exposed for tests; `out` gets a malloc'd string). */
hl_status hl_bbh_extract_paper_cot(const char *gen, size_t len, char **out);
hl_status hl_bbh_extract_lmeval_cot(const char *gen, size_t len, char **out); /* no truncation here */
hl_status hl_bbh_opencompass_mcq(const char *text, size_t len, char **out);
hl_status hl_bbh_opencompass_freeform(const char *text, size_t len, char **out);
/* Python str.strip() (Unicode whitespace, UTF-8): returns [*start, *start + *n) within s. */
void hl_bbh_py_strip(const char *s, size_t len, size_t *start, size_t *n);

/* ---- scoring (core/eval/bbh/score.c) ------------------------------------------------- */

typedef struct {
    hl_bbh_rule rule;
    hl_bbh_mode mode;
    int n[HL_BBH_N_TASKS];        /* examples scored per subtask (0: not scored) */
    int correct[HL_BBH_N_TASKS];
    int expected[HL_BBH_N_TASKS]; /* examples in the loaded data (0 if not loaded) */
    double acc[HL_BBH_N_TASKS];   /* percent; valid where n > 0 */
    int n_subtasks;               /* subtasks with n > 0 */
    int n_groups;                 /* paper tasks with at least one scored variant */
    long n_total, correct_total;
    double mean_subtasks; /* unweighted mean over scored subtasks (27 when complete) */
    double macro_tasks;   /* paper: variants averaged first, then mean over tasks (23) */
    double micro;         /* lm-eval: correct / examples */
    int complete;         /* every subtask present with all examples scored */
} hl_bbh_summary;

void hl_bbh_summary_init(hl_bbh_summary *s, hl_bbh_rule rule, hl_bbh_mode mode);
void hl_bbh_summary_add(hl_bbh_summary *s, int task, int correct);
/* Compute accuracies and the three averages; `set` (may be NULL) supplies expected counts. */
void hl_bbh_summary_finish(hl_bbh_summary *s, const hl_bbh_set *set);

/* A summary as JSON text (malloc'd):
 * {"rule","mode","per_task":{task:acc},"counts":{task:{"correct","n","expected"}},
 *  "averages":{"macro_23_tasks","mean_27_subtasks","micro_examples"}, "n_examples", "complete"} */
hl_status hl_bbh_summary_to_json(const hl_bbh_summary *s, char **json);
/* Read back the fields written above (for `bbh compare`); `json` is a whole summary file
 * (or an eval summary containing such an object under "scores"). */
hl_status hl_bbh_summary_from_json(const char *json, size_t len, hl_bbh_summary *s);

/* One prediction from a JSON-lines file: {"task": str, "idx": int, "prediction": str, ...}. */
typedef struct {
    int task, idx;
    long line; /* 1-based line in the file */
    char *prediction;
    size_t prediction_len;
    char *target; /* optional "target" field in the line (NULL if absent) */
} hl_bbh_pred;

/* A problem found in a predictions file: 1-based line number and message. */
typedef struct {
    long line;
    char msg[200];
} hl_bbh_pred_issue;

typedef struct {
    hl_bbh_pred *preds;
    size_t n;
    hl_bbh_pred_issue *issues; /* malformed lines, skipped */
    size_t n_issues;
    size_t cap_issues; /* internal: allocated entries of issues */
} hl_bbh_pred_file;

/* Parse JSON lines (blank lines ignored). Malformed lines are recorded in issues and
 * skipped; only allocation failure is an error. */
hl_status hl_bbh_predictions_parse(const char *buf, size_t len, hl_bbh_pred_file *out);
void hl_bbh_predictions_free(hl_bbh_pred_file *pf);

/* Score predictions against the targets of `set` (by task, idx). Predictions naming an
 * unloaded task, an idx out of range, or a duplicate (task, idx) are appended to pf->issues.
 * Fills `summary` (finished). `correct_out` (may be NULL) receives pf->n flags (-1: skipped). */
hl_status hl_bbh_score_predictions(const hl_bbh_set *set, hl_bbh_pred_file *pf, hl_bbh_rule rule,
                                   hl_bbh_mode mode, hl_bbh_summary *summary, signed char *correct_out);

/* ---- evaluation (core/eval/bbh/eval.c) ------------------------------------------------ */

/* Both run on the one generation path (core/eval/generate.h). */
typedef enum {
    /* A finished sequence's cache slot takes the next prompt at once, and the prompt positions
     * it shares with a prompt some slot holds (the task's few-shot prefix) take their
     * keys/values. About 2x the examples/s of static batches on BBH. */
    HL_BBH_DECODER_CONTINUOUS = 0,
    /* Static batches, every prompt prefilled in full. */
    HL_BBH_DECODER_GENERATE,
} hl_bbh_decoder;

typedef struct {
    hl_bbh_mode mode;
    hl_bbh_rule rule;
    unsigned char tasks[HL_BBH_N_TASKS]; /* 1 = evaluate this subtask */
    int limit;          /* first N examples of each subtask (<= 0: all) */
    int batch;          /* sequences decoded together (<= 0: as many as fit in memory, at most 16) */
    int max_new_tokens; /* <= 0: the rule's default (1024 paper/lm-eval, 512 opencompass), at most
                           half the context (a small model keeps room for its prompt) */
    int max_seq;        /* context length to use (<= 0: the model's max_seq_len) */
    hl_bbh_decoder decoder; /* default HL_BBH_DECODER_CONTINUOUS */
} hl_bbh_eval_opts;

/* mode cot, rule paper, all tasks, no limit, automatic batch, rule's max_new_tokens,
 * continuous decoder. */
void hl_bbh_eval_opts_default(hl_bbh_eval_opts *o);

/* What is evaluated, and where. Backend, model, adapters and tokenizer stay owned by the caller. */
typedef struct {
    hl_backend *backend;                   /* the device that computes (hl_backend_open) */
    const hl_model *model;
    const hl_adapters *adapters;           /* NULL: base model */
    const hl_tokenizer *tok;
    char model_fingerprint[65];            /* hl_bbh_model_fingerprint */
    char adapter_fingerprint[65];          /* hl_bbh_path_fingerprint of the adapter, "" without one */
    char model_label[512], adapter_label[512]; /* shown in the summary (paths) */
} hl_bbh_eval_target;

/* One finished example, as written to samples.jsonl. */
typedef struct {
    int task, idx;
    char prompt_sha256[65];
    const char *generation; /* the continuation decoded on its own, cut at the rule's stop strings */
    size_t generation_len;
    const char *extracted;
    const char *target;
    int correct;
    int prompt_tokens;    /* including BOS, after any left truncation */
    int generated_tokens;
    int prompt_truncated; /* 1: the prompt was cut on the left to fit the context */
    const char *stop;     /* "stop" (a stop string), "eos", "length" (max new tokens), "context" */
} hl_bbh_sample;

typedef struct {
    long done, total;     /* examples finished (including resumed) / to do */
    long resumed;         /* examples taken from an earlier, interrupted run */
    long prompts_truncated; /* of `total`: prompts cut on the left to fit the context (known from
                               the start: every prompt is tokenized first). A cut few-shot prompt
                               is a different benchmark: front ends must show this count. */
    int max_new_tokens;   /* the cap in use */
    int context;          /* the context length in use */
    int max_new_lowered;  /* 1: the rule's cap was lowered to half the context (none was given) */
    long generated_tokens, prompt_tokens; /* in this run */
    long prompt_tokens_reused; /* of prompt_tokens: keys/values reused, not run (continuous decoder) */
    double elapsed_s;     /* in this run */
    int batch;            /* sequences decoded together (0 when nothing is left to generate) */
    const hl_bbh_sample *last; /* the example just finished (NULL on the first call) */
    const hl_bbh_summary *running; /* scores so far (finished with the data set) */
} hl_bbh_progress;

/* Called once at the start and after every finished example (from the evaluating thread;
 * with static batches the examples of a batch finish together). */
typedef void (*hl_bbh_progress_fn)(const hl_bbh_progress *p, void *user);

/* Evaluate (or resume) into out_dir, which holds:
 *   settings.json   mode, rule, stop strings, max_new_tokens, context, decoding, BOS, model and
 *                   adapter fingerprints; written first. A resume with different settings is
 *                   HL_ERR_STATE naming the differing keys (tasks, limit, batch and the decoder
 *                   may change: greedy results do not depend on them).
 *   samples.jsonl   one line per example (hl_bbh_sample fields), appended and fsynced as each
 *                   example finishes; (task, idx) pairs already there are not generated again
 *                   (their prompt hash is checked); a torn last line is cut away.
 *   summary.json    settings + "scores" (hl_bbh_summary_to_json) + counts and timing; written
 *                   (tmp + rename) at the end, and also when cancelled.
 * *cancel (may be NULL) is polled between decoding steps: HL_ERR_CANCELLED after writing what
 * is done. `summary` (may be NULL) receives the scores over every example in samples.jsonl
 * that belongs to the selected tasks/limit. */
hl_status hl_bbh_eval_run(const char *out_dir, const hl_bbh_set *set, const hl_bbh_eval_target *target,
                          const hl_bbh_eval_opts *opts, hl_bbh_progress_fn progress, void *user,
                          volatile int *cancel, hl_bbh_summary *summary);

/* sha256 over the model config, every weight's dtype and shape and a sample of its bytes
 * (first, middle and last 4 KiB of each tensor): cheap, and it changes when the weights do. */
hl_status hl_bbh_model_fingerprint(const hl_model *model, char out[65]);
/* A file: sha256 of its bytes. A directory: sha256 over the sorted names, sizes and sha256 of
 * its regular files (not recursive). */
hl_status hl_bbh_path_fingerprint(const char *path, char out[65]);

#endif
