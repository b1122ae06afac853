/* TF-IDF features of short texts, as a sparse CSR matrix.
 *
 * Defined to agree with scikit-learn's TfidfVectorizer when given the same settings:
 *
 *   tokens  maximal runs of two or more "word characters" (the regex (?u)\b\w\w+\b), taken
 *           after lowercasing. A word character is a letter, a digit/number or '_'. For ASCII
 *           this is exactly [A-Za-z0-9_]; for other code points we ask the C library's
 *           C.UTF-8 locale (iswalnum/towlower), which agrees with Python on Latin, Greek,
 *           Cyrillic, CJK etc. (Python's full case mappings such as 'İ' -> "i̇" and a few
 *           marks differ). Invalid UTF-8 bytes separate tokens.
 *   terms   sorted by byte order of their UTF-8 spelling (= code point order, as Python sorts).
 *   df      number of documents that contain the term. Terms are kept when
 *           min_df <= df <= max_df (each either an absolute count, or a fraction of the
 *           number of documents when given as 0 < x < 1 via the *_frac fields), then at most
 *           max_features terms with the largest total count (ties: alphabetical).
 *   tf      raw count in the document, or 1 + ln(count) with sublinear_tf.
 *   idf     smooth_idf: ln((1 + n) / (1 + df)) + 1;  otherwise ln(n / df) + 1; n = documents.
 *   value   tf * idf (or tf alone without use_idf), then each row scaled to unit L2 norm
 *           (rows without any kept term stay all-zero).
 *
 * Memory: one pass keeps every document's (term, count) pairs (8 bytes per distinct term
 * per document) plus the vocabulary; the result holds nnz * 8 bytes + row pointers. */
#ifndef HL_TFIDF_H
#define HL_TFIDF_H

#include <stdint.h>

#include "core/analysis/progress.h"
#include "core/base/status.h"

typedef struct {
    int lowercase;      /* default 1 */
    int min_df;         /* absolute document count, default 1 (used when min_df_frac <= 0) */
    double min_df_frac; /* in (0, 1): fraction of documents instead of min_df; 0 = unused */
    int max_df;         /* absolute count; <= 0 = no limit (used when max_df_frac <= 0) */
    double max_df_frac; /* in (0, 1]: fraction of documents; 0 = unused (1.0 = sklearn default) */
    int max_features;   /* <= 0: no limit */
    int sublinear_tf;   /* default 0 */
    int smooth_idf;     /* default 1 */
    int use_idf;        /* default 1 */
    int norm_l2;        /* default 1 */
} hl_tfidf_options;

/* scikit-learn's defaults (min_df 1, no max_df, raw tf, smooth idf, l2). */
hl_tfidf_options hl_tfidf_defaults(void);

/* Compressed sparse rows, column indices strictly increasing within a row. */
typedef struct {
    int64_t n_rows, n_cols, nnz;
    int64_t *row_ptr; /* [n_rows + 1] */
    int32_t *col;     /* [nnz] */
    float *val;       /* [nnz] */
} hl_csr;

void hl_csr_free(hl_csr *m);

typedef struct {
    hl_csr X;          /* [n_docs, n_terms] */
    int64_t n_terms;
    char **terms;      /* [n_terms] NUL-terminated, sorted; point into term_bytes */
    char *term_bytes;
    double *idf;       /* [n_terms] (all 1 when use_idf is off) */
    int32_t *df;       /* [n_terms] document frequency */
    int64_t n_tokens;  /* tokens seen in all documents (before pruning) */
    int64_t n_raw_terms; /* distinct terms before pruning */
} hl_tfidf;

/* Fit the vocabulary on docs[0..n) and transform them. `progress` may be NULL.
 * Fails with HL_ERR_ARG if no term survives pruning (with a hint to lower --min-df). */
hl_status hl_tfidf_fit_transform(const char *const *docs, int64_t n, const hl_tfidf_options *opt,
                                 hl_tfidf *out, hl_cluster_progress_fn progress, void *user);
void hl_tfidf_free(hl_tfidf *t);

/* Split one text into tokens as above, calling emit(user, token, length) for each token
 * (token is lowercased when `lowercase`; it is not NUL-terminated). Exposed for tests. */
typedef void (*hl_token_fn)(void *user, const char *tok, int len);
void hl_tfidf_tokenize(const char *text, int lowercase, hl_token_fn emit, void *user);

#endif
