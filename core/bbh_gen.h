/* Private to core/bbh_*.c: greedy decoding with a KV cache and continuous batching for the
 * BBH evaluator. Up to `slots` sequences decode together; when one stops, the next prompt
 * takes its cache slot at once, so one long generation never holds a whole batch back, and
 * the prompt positions it shares with the slot's previous prompt (the few-shot exemplars of
 * the same task) keep their keys/values instead of being run again.
 *
 * Written on hl_infer (core/llama.h) because core/generate.h did not exist yet when the
 * evaluator was written; it needs only prefill, one-token steps and stop strings. */
#ifndef HL_BBH_GEN_H
#define HL_BBH_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "core/adapter.h"
#include "core/model.h"
#include "core/status.h"
#include "core/tokenizer.h"

typedef enum {
    BBH_STOP_STRING = 0, /* a stop string appeared in the decoded text */
    BBH_STOP_EOS,        /* the model emitted EOS */
    BBH_STOP_LENGTH,     /* max_new tokens generated */
    BBH_STOP_CONTEXT,    /* the context (max_seq) is full */
} bbh_stop_reason;

typedef struct bbh_gen bbh_gen;

/* slots: sequences decoded together; max_seq: context per sequence (prompt + generation). */
hl_status bbh_gen_create(bbh_gen **out, const hl_model *model, const hl_adapters *ad, const hl_tokenizer *tok,
                         int slots, int max_seq);
void bbh_gen_free(bbh_gen *g);
size_t bbh_gen_bytes(const bbh_gen *g);
/* Prompt tokens run through the model, and prompt tokens whose keys/values were reused from
 * the slot's previous prompt (the shared few-shot prefix). */
long bbh_gen_prefilled(const bbh_gen *g);
long bbh_gen_reused(const bbh_gen *g);

/* Supplies the next prompt: *ids (malloc'd, ownership passes to the generator), *n_ids
 * (> 0, <= max_seq - 1) and an opaque tag. Returns 0 when there is none left. */
typedef hl_status (*bbh_gen_next_fn)(void *ctx, int32_t **ids, int *n_ids, long *tag, int *more);
/* A finished generation: the decoded continuation (stop strings included, for the caller
 * to cut), its token count and why it stopped. */
typedef hl_status (*bbh_gen_done_fn)(void *ctx, long tag, const char *text, size_t len, int n_tokens,
                                     bbh_stop_reason why);

/* Run until `next` has nothing left and every sequence has finished. *cancel (may be
 * NULL) is polled before every forward call: HL_ERR_CANCELLED, unfinished sequences dropped. */
hl_status bbh_gen_run(bbh_gen *g, int max_new, const char *const *stop, int n_stop, bbh_gen_next_fn next,
                      bbh_gen_done_fn done, void *ctx, volatile int *cancel);

#endif
