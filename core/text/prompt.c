/* Prompt text, token ids + labels for one record, and the validation split.
 *
 * Layout (docs/method.md §5):
 *     prompt = instruction                    (input empty)
 *            = instruction + "\n" + input     (input non-empty)
 *     source = [BOS] + tok(prompt) + [EOS]    labels HL_LABEL_IGNORE
 *     target = tok(output) + [EOS]            labels = ids
 *     ids    = (source + target)[:max_len]    truncated from the right
 *
 * How this relates to the reference code. HydraLoRA's fine-tuning.py takes its data
 * pipeline (build_dataset.build_instruction_dataset) from the Chinese-LLaMA-Alpaca-2
 * training scripts, which tokenise `source` with the HF LlamaTokenizer defaults (BOS
 * prepended) and `target = output + "</s>"` separately with add_special_tokens=False, then
 * concatenate and cut at max_seq_length. We follow that: the prompt and the output are two
 * separate encode calls, so each starts with SentencePiece's dummy-prefix space when the
 * tokenizer has add_dummy_prefix (as LlamaTokenizer does), the target carries no BOS, and
 * the target ends with EOS. docs/method.md §5 additionally closes the source with EOS; this
 * project's spec is §5, so we emit that EOS (masked, so it changes the context the target
 * is conditioned on, not which tokens are scored). Truncation keeps the first max_len
 * positions of ids and labels alike, as `(s + t)[:max_seq_length]` does. */
#include <stdlib.h>
#include <string.h>

#include "core/text/records.h"

hl_status hl_record_prompt(const hl_record *rec, char **out, size_t *len) {
    size_t n = rec->instruction_len + (rec->input_len ? 1 + (size_t)rec->input_len : 0);
    char *s = malloc(n + 1);
    if (!s)
        return hl_fail(HL_ERR_NOMEM, "out of memory building a prompt");
    memcpy(s, rec->instruction, rec->instruction_len);
    if (rec->input_len) {
        s[rec->instruction_len] = '\n';
        memcpy(s + rec->instruction_len + 1, rec->input, rec->input_len);
    }
    s[n] = '\0';
    *out = s;
    if (len)
        *len = n;
    return HL_OK;
}

void hl_tokenized_free(hl_tokenized *t) {
    if (!t)
        return;
    free(t->ids);
    free(t->labels);
    memset(t, 0, sizeof *t);
}

hl_status hl_record_tokenize(const hl_tokenizer *tok, const hl_record *rec, int max_len, hl_tokenized *out) {
    memset(out, 0, sizeof *out);
    if (!tok || !rec)
        return hl_fail(HL_ERR_ARG, "hl_record_tokenize: tokenizer and record are required");
    int bos = hl_tokenizer_bos_id(tok), eos = hl_tokenizer_eos_id(tok);
    if (bos < 0 || eos < 0)
        return hl_fail(HL_ERR_ARG, "the tokenizer has no BOS/EOS token; cannot build training examples");
    char *prompt = NULL;
    size_t plen = 0;
    HL_TRY(hl_record_prompt(rec, &prompt, &plen));
    int32_t *src = NULL, *tgt = NULL;
    size_t n_src = 0, n_tgt = 0;
    hl_status st = hl_tokenizer_encode(tok, prompt, plen, 1, &src, &n_src);
    free(prompt);
    if (st != HL_OK)
        return hl_fail_context(st, "tokenizing the prompt of record at line %u", rec->line);
    st = hl_tokenizer_encode(tok, rec->output, rec->output_len, 0, &tgt, &n_tgt);
    if (st != HL_OK) {
        free(src);
        return hl_fail_context(st, "tokenizing the output of record at line %u", rec->line);
    }
    size_t n_source = n_src + 1; /* + EOS closing the source */
    size_t n_full = n_source + n_tgt + 1;
    size_t n = (max_len > 0 && n_full > (size_t)max_len) ? (size_t)max_len : n_full;
    out->ids = malloc(n * sizeof *out->ids);
    out->labels = malloc(n * sizeof *out->labels);
    if (!out->ids || !out->labels) {
        free(src);
        free(tgt);
        hl_tokenized_free(out);
        return hl_fail(HL_ERR_NOMEM, "out of memory tokenizing a record");
    }
    size_t k = 0;
    for (size_t i = 0; i < n_src && k < n; i++, k++) {
        out->ids[k] = src[i];
        out->labels[k] = HL_LABEL_IGNORE;
    }
    if (k < n) {
        out->ids[k] = eos;
        out->labels[k++] = HL_LABEL_IGNORE;
    }
    for (size_t i = 0; i < n_tgt && k < n; i++, k++)
        out->ids[k] = out->labels[k] = tgt[i];
    if (k < n) {
        out->ids[k] = out->labels[k] = eos;
        k++;
    }
    free(src);
    free(tgt);
    out->n = n;
    out->n_source = n_source < n ? n_source : n;
    out->n_full = n_full;
    out->truncated = n_full > n;
    return HL_OK;
}

/* splitmix64: tiny, well-mixed, and fully specified, so a split is reproducible
 * across platforms and versions. */
static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform integer in [0, bound) without modulo bias (rejection sampling). */
static uint64_t uniform_below(uint64_t *s, uint64_t bound) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t r;
    do
        r = splitmix64(s);
    while (r >= limit);
    return r % bound;
}

hl_status hl_records_split(size_t n, double val_fraction, size_t val_count, uint64_t seed, size_t **train_idx,
                           size_t *n_train, size_t **val_idx, size_t *n_val) {
    *train_idx = *val_idx = NULL;
    *n_train = *n_val = 0;
    if (n == 0)
        return hl_fail(HL_ERR_ARG, "cannot split an empty data set");
    if (!(val_fraction >= 0.0 && val_fraction < 1.0))
        return hl_fail(HL_ERR_RANGE, "validation fraction must be in [0, 1), got %g", val_fraction);
    size_t k = val_count;
    if (k == 0 && val_fraction > 0.0) {
        k = (size_t)(val_fraction * (double)n + 0.5);
        if (k == 0 && n >= 2)
            k = 1;
    }
    if (k >= n) {
        if (val_count)
            return hl_fail(HL_ERR_RANGE, "validation count %zu leaves no training record (data set has %zu)",
                           val_count, n);
        k = n - 1;
    }
    size_t *perm = malloc(n * sizeof *perm);
    size_t *tr = malloc((n - k ? n - k : 1) * sizeof *tr);
    size_t *va = malloc((k ? k : 1) * sizeof *va);
    unsigned char *is_val = calloc(n, 1);
    if (!perm || !tr || !va || !is_val) {
        free(perm);
        free(tr);
        free(va);
        free(is_val);
        return hl_fail(HL_ERR_NOMEM, "out of memory splitting %zu records", n);
    }
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    /* Partial Fisher-Yates: the first k slots become a uniform random k-subset. */
    uint64_t s = seed;
    for (size_t i = 0; i < k; i++) {
        size_t j = i + (size_t)uniform_below(&s, (uint64_t)(n - i));
        size_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        is_val[perm[i]] = 1;
    }
    size_t a = 0, b = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_val[i])
            va[b++] = i;
        else
            tr[a++] = i;
    }
    free(perm);
    free(is_val);
    *train_idx = tr;
    *n_train = a;
    *val_idx = va;
    *n_val = b;
    return HL_OK;
}
