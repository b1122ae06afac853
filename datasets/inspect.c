#include "datasets/inspect.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

size_t hl_utf8_chars(const char *s, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80; /* count every byte that is not a continuation */
    return n;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

hl_len_summary hl_len_summarize(const uint32_t *values, size_t n) {
    hl_len_summary s = {0, 0, 0, 0, 0};
    if (!n)
        return s;
    uint32_t *v = malloc(n * sizeof *v);
    if (!v)
        return s;
    memcpy(v, values, n * sizeof *v);
    qsort(v, n, sizeof *v, cmp_u32);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    /* nearest-rank percentile: the smallest value with at least p% of the data at or below */
    size_t r50 = (size_t)ceil(0.50 * (double)n), r95 = (size_t)ceil(0.95 * (double)n);
    s.min = v[0];
    s.max = v[n - 1];
    s.p50 = v[(r50 ? r50 : 1) - 1];
    s.p95 = v[(r95 ? r95 : 1) - 1];
    s.mean = sum / (double)n;
    free(v);
    return s;
}

void hl_histogram(const uint32_t *values, size_t n, int n_bins, double lo, double hi, size_t *counts,
                  double *bin_lo, double *bin_width) {
    if (n_bins < 1)
        n_bins = 1;
    memset(counts, 0, (size_t)n_bins * sizeof *counts);
    if (lo == 0 && hi == 0 && n) {
        lo = hi = values[0];
        for (size_t i = 1; i < n; i++) {
            if (values[i] < lo)
                lo = values[i];
            if (values[i] > hi)
                hi = values[i];
        }
    }
    double w = (hi - lo) / n_bins;
    if (w <= 0)
        w = 1;
    for (size_t i = 0; i < n; i++) {
        double x = values[i];
        if (x < lo || x > hi)
            continue;
        int b = (int)((x - lo) / w);
        if (b >= n_bins)
            b = n_bins - 1;
        counts[b]++;
    }
    if (bin_lo)
        *bin_lo = lo;
    if (bin_width)
        *bin_width = w;
}

/* FNV-1a over the three fields with separators, for duplicate detection (equal hashes are
 * then compared byte for byte, so a collision cannot produce a false duplicate). */
static uint64_t record_hash(const hl_record *r) {
    uint64_t h = 0xcbf29ce484222325ull;
    const char *parts[3] = {r->instruction, r->input, r->output};
    uint32_t lens[3] = {r->instruction_len, r->input_len, r->output_len};
    for (int k = 0; k < 3; k++) {
        for (uint32_t i = 0; i < lens[k]; i++) {
            h ^= (unsigned char)parts[k][i];
            h *= 0x100000001b3ull;
        }
        h ^= 0xff; /* separator that cannot be confused with text (0xff is never valid UTF-8) */
        h *= 0x100000001b3ull;
    }
    return h;
}

static int same_record(const hl_record *a, const hl_record *b) {
    return a->instruction_len == b->instruction_len && a->input_len == b->input_len &&
           a->output_len == b->output_len && !memcmp(a->instruction, b->instruction, a->instruction_len) &&
           !memcmp(a->input, b->input, a->input_len) && !memcmp(a->output, b->output, a->output_len);
}

typedef struct {
    uint64_t h;
    size_t i;
} hash_idx;

/* Order by hash, then content, then file position: equal records end up adjacent. */
static int cmp_hash_idx(const void *a, const void *b, void *ctx) {
    const hash_idx *x = a, *y = b;
    const hl_record *recs = ctx;
    if (x->h != y->h)
        return (x->h > y->h) - (x->h < y->h);
    const hl_record *r = &recs[x->i], *q = &recs[y->i];
    if (!same_record(r, q)) {
        /* any total order on content will do */
        if (r->instruction_len != q->instruction_len)
            return r->instruction_len < q->instruction_len ? -1 : 1;
        if (r->input_len != q->input_len)
            return r->input_len < q->input_len ? -1 : 1;
        if (r->output_len != q->output_len)
            return r->output_len < q->output_len ? -1 : 1;
        int c = memcmp(r->instruction, q->instruction, r->instruction_len);
        if (!c)
            c = memcmp(r->input, q->input, r->input_len);
        if (!c)
            c = memcmp(r->output, q->output, r->output_len);
        return c;
    }
    return (x->i > y->i) - (x->i < y->i);
}

static void count_duplicates(const hl_dataset *ds, hl_inspect *out, hash_idx *hi) {
    size_t n = ds->n_records;
    for (size_t i = 0; i < n; i++) {
        hi[i].h = record_hash(&ds->records[i]);
        hi[i].i = i;
    }
    qsort_r(hi, n, sizeof *hi, cmp_hash_idx, ds->records);
    for (size_t a = 0; a < n;) {
        size_t b = a + 1;
        while (b < n && hi[b].h == hi[a].h && same_record(&ds->records[hi[a].i], &ds->records[hi[b].i]))
            b++;
        if (b - a > 1) {
            out->n_duplicates += b - a - 1; /* all but the first occurrence */
            out->n_duplicate_groups++;
        }
        a = b;
    }
}

void hl_inspect_free(hl_inspect *in) {
    if (!in)
        return;
    free(in->char_len);
    free(in->tok_len);
    memset(in, 0, sizeof *in);
}

hl_status hl_inspect_dataset(const hl_dataset *ds, const hl_tokenizer *tok, int max_length, atomic_int *cancel,
                             hl_inspect *out) {
    memset(out, 0, sizeof *out);
    size_t n = ds->n_records;
    out->n_records = n;
    out->n_malformed = ds->n_malformed;
    out->max_length = max_length > 0 ? max_length : 1024;
    out->char_len = malloc((n ? n : 1) * sizeof *out->char_len);
    hash_idx *hi = malloc((n ? n : 1) * sizeof *hi);
    uint32_t *ptok = NULL, *otok = NULL;
    if (tok) {
        out->tok_len = malloc((n ? n : 1) * sizeof *out->tok_len);
        ptok = malloc((n ? n : 1) * sizeof *ptok);
        otok = malloc((n ? n : 1) * sizeof *otok);
    }
    if (!out->char_len || !hi || (tok && (!out->tok_len || !ptok || !otok))) {
        free(hi);
        free(ptok);
        free(otok);
        hl_inspect_free(out);
        return hl_fail(HL_ERR_NOMEM, "out of memory inspecting %zu records", n);
    }
    for (size_t i = 0; i < n; i++) {
        const hl_record *r = &ds->records[i];
        size_t c = hl_utf8_chars(r->instruction, r->instruction_len) + hl_utf8_chars(r->input, r->input_len) +
                   (r->input_len ? 1 : 0) + hl_utf8_chars(r->output, r->output_len);
        out->char_len[i] = c > UINT32_MAX ? UINT32_MAX : (uint32_t)c;
        out->n_empty_output += r->output_len == 0;
    }
    out->chars = hl_len_summarize(out->char_len, n);
    count_duplicates(ds, out, hi);
    free(hi);
    if (tok) {
        for (size_t i = 0; i < n; i++) {
            if (cancel && atomic_load(cancel)) {
                free(ptok);
                free(otok);
                hl_inspect_free(out);
                return hl_fail(HL_ERR_CANCELLED, "inspection cancelled");
            }
            hl_tokenized t;
            hl_status st = hl_record_tokenize(tok, &ds->records[i], 0, &t);
            if (st != HL_OK) {
                free(ptok);
                free(otok);
                hl_inspect_free(out);
                return st;
            }
            out->tok_len[i] = (uint32_t)t.n_full;
            ptok[i] = (uint32_t)t.n_source;
            otok[i] = (uint32_t)(t.n_full - t.n_source);
            out->n_over_max += t.n_full > (size_t)out->max_length;
            hl_tokenized_free(&t);
        }
        out->have_tokens = 1;
        out->tokens = hl_len_summarize(out->tok_len, n);
        out->prompt_tokens = hl_len_summarize(ptok, n);
        out->output_tokens = hl_len_summarize(otok, n);
    }
    free(ptok);
    free(otok);
    return HL_OK;
}
