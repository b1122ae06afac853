/* Text generation: the one decoding path of hydralora (the generate command, the workbench's
 * prompt box, BIG-Bench Hard), on the backend seam's KV-cache decoder (core/backend/backend.h).
 *
 * Several prompts of different lengths decode together, one cache slot each: a prompt is
 * prefilled into its slot (in chunks), then every running sequence advances one token per
 * forward call. hl_generate/hl_generate_ids decode a fixed set of prompts; hl_generate_stream
 * takes prompts from a callback and refills a finished sequence's slot at once (continuous
 * batching), or in static batches. With share_prefix, a prompt starting with positions some
 * slot already holds (a few-shot prefix) takes their keys/values (hl_decoder_share_prefix)
 * instead of running them again. Greedy decoding takes the decoder's argmax (a GPU then
 * returns ids, not logits).
 * Sampling: greedy (temperature 0), or temperature + optional top-k + top-p with llama2.c's
 * sampler semantics (docs/file-formats.md §1.4): xorshift64* coin `(u32 >> 8) / 2^24`, top-p cut-off
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

#include "core/adapter/adapter.h"
#include "core/backend/backend.h"
#include "core/model/model.h"
#include "core/eval/sampler.h"
#include "core/base/status.h"
#include "core/model/tokenizer/tokenizer.h"

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
    int eos_id;           /* the EOS id to stop on; < 0 (default): the model's */
    int stop_on_bos;      /* default 1 (llama2.c's run.c stops on BOS) */
    const char *const *stop; /* stop strings (may be NULL) */
    int n_stop;
    int add_bos;          /* prepend BOS to text prompts (default 1) */
    int prefill_chunk;    /* prompt tokens per forward call (default 128) */
    int share_prefix;     /* 1: reuse the keys/values of a prompt prefix a slot already holds (default 0) */
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

/* Decoding on backend `be`. `ad` may be NULL (base model); `tok` may be NULL for
 * hl_generate_ids without stop strings (then no text is produced). The KV cache is sized per
 * call for the batch and the longest prompt + max_new_tokens (capped at model max_seq_len) and
 * kept for the next call. be, model, ad and tok must outlive the generator. */
hl_status hl_generator_create(hl_generator **out, hl_backend *be, const hl_model *model, const hl_adapters *ad,
                              const hl_tokenizer *tok);
void hl_generator_free(hl_generator *g);
/* Arithmetic of the base-weight products for this generator's decoding (default auto; see
 * hl_compute in core/backend/backend.h). */
hl_status hl_generator_set_compute(hl_generator *g, hl_compute c);
size_t hl_generator_bytes(const hl_generator *g); /* KV cache + scratch currently allocated */
/* KV cache in use at the peak and allocated (hl_decoder_cache_use of the current decoder). */
void hl_generator_cache_use(const hl_generator *g, size_t *peak_bytes, size_t *pool_bytes);
/* The current decoder (NULL before the first generation): for backend-specific reports (profiles). */
const struct hl_decoder *hl_generator_decoder(const hl_generator *g);

/* Generate for n text prompts. results[n] are filled (free each with hl_gen_result_free),
 * also on failure (then partially). */
hl_status hl_generate(hl_generator *g, const char *const *prompts, int n, const hl_gen_params *p,
                      hl_gen_result *results);
/* The same from token ids (prompts used as given: no BOS is added). */
hl_status hl_generate_ids(hl_generator *g, const int32_t *const *prompts, const int *n_ids, int n,
                          const hl_gen_params *p, hl_gen_result *results);

/* ---- streams: prompts from a callback, continuous batching ---- */

/* Supplies the next prompt: *ids (malloc'd; ownership passes to the generator), *n_ids
 * (>= 1, < max_seq) and a tag for the caller. Sets *more = 0 (and no prompt) when there is
 * none left. */
typedef hl_status (*hl_gen_next_fn)(void *ctx, int32_t **ids, int *n_ids, long *tag, int *more);
/* A finished sequence: r->ids holds the prompt followed by the generated ids (an EOS that
 * ended it included), r->text the streamed text (stop string cut). Valid during the call. */
typedef hl_status (*hl_gen_done_fn)(void *ctx, long tag, const hl_gen_result *r);

typedef struct {
    int slots;      /* sequences decoded together */
    int max_seq;    /* positions per sequence (prompt + generation), <= the model's context */
    int continuous; /* 1: a finished sequence's slot takes the next prompt at once;
                       0: static batches (the next prompts start when the whole batch finished) */
} hl_gen_stream_opts;

/* Generate until `next` has nothing left and every sequence has finished, calling `done` as
 * each finishes (in slot order within one decoding step). Sequence k (the k-th prompt) samples
 * from its own stream of p->seed. p->cancel is polled before every forward call:
 * HL_ERR_CANCELLED, unfinished sequences dropped. */
hl_status hl_generate_stream(hl_generator *g, const hl_gen_stream_opts *o, const hl_gen_params *p,
                             hl_gen_next_fn next, hl_gen_done_fn done, void *ctx);

/* Prompt tokens run through the model and prompt tokens whose keys/values were reused
 * (share_prefix), over the generator's life. */
void hl_generator_counts(const hl_generator *g, long *prefilled, long *reused);

/* The tokenizer for a model: `override` if given, else one found next to the model file or
 * directory, else the vocabulary embedded in the model (GGUF). */
hl_status hl_generate_load_tokenizer(hl_tokenizer **out, const hl_model *model, const char *model_path,
                                     const char *override);

#endif
