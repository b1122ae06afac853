/* What a data file looks like: counts, field coverage, duplicates, lengths in characters
 * and tokens, and how many records a max length would cut. The CLI prints it
 * (`hydralora data inspect`); the workbench's Data screen draws it (histogram, field table). */
#ifndef HL_INSPECT_H
#define HL_INSPECT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/model/tokenizer/tokenizer.h"
#include "core/text/records.h"

#define HL_INSPECT_MAX_BINS 64

typedef struct {
    double min, p50, p95, max, mean;
} hl_len_summary;

typedef struct {
    size_t n_records, n_malformed;
    size_t n_duplicates;       /* records equal (instruction, input, output) to an earlier one */
    size_t n_duplicate_groups; /* distinct records that occur more than once */
    size_t n_empty_output;     /* records whose output is "" */
    /* lengths of the full example: prompt + output, in Unicode characters */
    hl_len_summary chars;
    uint32_t *char_len;        /* [n_records] */
    /* with a tokenizer: full token count [BOS] + prompt + [EOS] + output + [EOS] (before truncation) */
    int have_tokens;
    hl_len_summary tokens, prompt_tokens, output_tokens;
    uint32_t *tok_len;         /* [n_records] or NULL */
    int max_length;            /* the limit compared against */
    size_t n_over_max;         /* records longer than max_length tokens (0 without a tokenizer) */
} hl_inspect;

/* tok may be NULL (then no token statistics). max_length <= 0 means 1024. cancel (may be
 * NULL) stops tokenisation early with HL_ERR_CANCELLED. */
hl_status hl_inspect_dataset(const hl_dataset *ds, const hl_tokenizer *tok, int max_length, atomic_int *cancel,
                             hl_inspect *out);
void hl_inspect_free(hl_inspect *in);

/* Histogram of values[0..n) over n_bins equal bins spanning [lo, hi] (hi inclusive);
 * lo == hi == 0 picks the data's min and max. counts has n_bins entries. */
void hl_histogram(const uint32_t *values, size_t n, int n_bins, double lo, double hi, size_t *counts,
                  double *bin_lo, double *bin_width);

/* Summary (min / median / p95 / max / mean) of values (nearest-rank percentiles). */
hl_len_summary hl_len_summarize(const uint32_t *values, size_t n);

/* Number of Unicode code points in UTF-8 text (invalid bytes count one each). */
size_t hl_utf8_chars(const char *s, size_t len);

#endif
