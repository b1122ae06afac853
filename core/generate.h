/* Text generation with a KV cache (on the engine's hl_infer, core/llama.h).
 *
 * Several prompts of different lengths decode together: each is prefilled into its own cache
 * slot (in chunks), then every still-running sequence advances one token per forward call.
 * Sampling: greedy (temperature 0), or temperature + optional top-k + top-p with llama2.c's
 * sampler semantics (FORMATS.md §1.4): xorshift64* coin `(u32 >> 8) / 2^24`, top-p cut-off
 * (1 − p)/(n − 1), descending sort, cut after the cumulative mass exceeds p — so that
 * `-t 1.0 -p 0.9 -s 133742` runs reproduce llama2.c's run.c for sequence 0 (sequence b > 0
 * gets its own stream derived from the seed). Stops: EOS, BOS (llama2.c's TinyStories
 * convention, optional), stop strings (cut from the text, never streamed), max new tokens,
 * context full, callback request or cancel flag.
 *
 * Thread-safety: one generator per thread; the model, adapters and tokenizer may be shared
 * read-only between generators. */
#ifndef HL_GENERATE_H
#define HL_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "core/adapter.h"
#include "core/model.h"
#include "core/status.h"
#include "core/tokenizer.h"

typedef enum {
    HL_GEN_RUNNING = 0,
    HL_GEN_EOS,         /* sampled the EOS id */
    HL_GEN_BOS,         /* sampled BOS with stop_on_bos (llama2.c) */
    HL_GEN_STOP_STRING, /* a stop string appeared (it is cut from the text) */
    HL_GEN_LENGTH,      /* max_new_tokens generated */
    HL_GEN_CONTEXT,     /* the context window is full: the last position was run, so as in
                           run.c a sequence holds at most max_seq_len + 1 tokens */
    HL_GEN_CALLBACK,    /* the token callback asked to stop this sequence */
    HL_GEN_CANCELLED,   /* *cancel became non-zero */
} hl_gen_finish;

const char *hl_gen_finish_name(hl_gen_finish f); /* "eos", "bos", "stop", "length", ... */

/* Called for every streamed piece of text of sequence `seq` (`token` is the id that produced
 * it; text may be empty while a stop-string prefix is held back, or when the final flush
 * carries held-back text, token is -1). Return non-zero to stop that sequence. */
typedef int (*hl_gen_token_fn)(void *user, int seq, int token, const char *text, size_t len);

/* Called with the logits [vocab] a token of sequence `seq` at position `pos` was sampled from
 * (after the forward, before temperature). For tests and tools (e.g. log-probs). */
typedef void (*hl_gen_logits_fn)(void *user, int seq, int pos, const float *logits, int vocab);

typedef struct {
    int max_new_tokens;   /* default 256; stops earlier at the context limit */
    float temperature;    /* 0: greedy (argmax; ties → lowest id) */
    float top_p;          /* in (0, 1): nucleus sampling as llama2.c; <= 0 or >= 1: off */
    int top_k;            /* > 0: keep the k largest logits first (then top-p); 0: off */
    uint64_t seed;        /* sampler seed (0 is replaced by a fixed non-zero constant) */
    int stop_on_eos;      /* default 1 */
    int stop_on_bos;      /* default 1 (llama2.c's run.c stops on BOS) */
    const char *const *stop; /* stop strings (may be NULL) */
    int n_stop;
    int add_bos;          /* prepend BOS to text prompts (default 1) */
    int prefill_chunk;    /* prompt tokens per forward call (default 128) */
    hl_gen_token_fn on_token;   /* may be NULL */
    hl_gen_logits_fn on_logits; /* may be NULL */
    void *user;
    volatile int *cancel; /* polled before every forward call; may be NULL */
} hl_gen_params;

/* Defaults: max_new_tokens 256, temperature 0, top_p 0.9 (used only when temperature > 0),
 * top_k 0, seed 0, stop on EOS and BOS, add BOS, prefill chunk 128. */
void hl_gen_params_default(hl_gen_params *p);

typedef struct {
    int32_t *ids;        /* prompt ids followed by generated ids (malloc'd) */
    int n_prompt;
    int n_generated;
    char *text;          /* generated text (stop string and after removed), NUL-terminated */
    size_t text_len;
    hl_gen_finish finish;
} hl_gen_result;

void hl_gen_result_free(hl_gen_result *r); /* frees ids and text, zeroes */

typedef struct hl_generator hl_generator;

/* `ad` may be NULL (base model); `tok` may be NULL for hl_generate_ids without stop strings
 * (then no text is produced). The KV cache is sized per call for the batch and the longest
 * prompt + max_new_tokens (capped at model max_seq_len) and kept for the next call. */
hl_status hl_generator_create(hl_generator **out, const hl_model *model, const hl_adapters *ad,
                              const hl_tokenizer *tok);
void hl_generator_free(hl_generator *g);
size_t hl_generator_bytes(const hl_generator *g); /* KV cache + scratch currently allocated */

/* Generate for n text prompts. results[n] are filled (free each with hl_gen_result_free),
 * also on failure (then partially). */
hl_status hl_generate(hl_generator *g, const char *const *prompts, int n, const hl_gen_params *p,
                      hl_gen_result *results);
/* The same from token ids (prompts used as given: no BOS is added). */
hl_status hl_generate_ids(hl_generator *g, const int32_t *const *prompts, const int *n_ids, int n,
                          const hl_gen_params *p, hl_gen_result *results);

/* ---- sampling (exposed for tests and other decoders) ---- */

typedef struct {
    uint64_t state;
} hl_sampler_rng;

void hl_sampler_seed(hl_sampler_rng *r, uint64_t seed, int stream); /* stream 0: state = seed (llama2.c) */
uint32_t hl_sampler_u32(hl_sampler_rng *r);  /* xorshift64* as llama2.c random_u32 */
float hl_sampler_f32(hl_sampler_rng *r);     /* (u32 >> 8) / 16777216 */

/* Pick a token from logits[vocab] (modified in place: scaled, softmaxed). `work` holds
 * 2*vocab ints/floats of scratch (vocab entries of {float, int}). */
int hl_sample(float *logits, int vocab, float temperature, int top_k, float top_p, hl_sampler_rng *rng,
              void *work);

/* The tokenizer for a model: `override` if given, else one found next to the model file or
 * directory, else the vocabulary embedded in the model (GGUF). */
hl_status hl_generate_load_tokenizer(hl_tokenizer **out, const hl_model *model, const char *model_path,
                                     const char *override);

#endif
