/* TF-IDF: tokenizer, vocabulary (open-addressing hash), pruning, CSR assembly.
 * Definitions (token rule, idf formula, sort order) are in tfidf.h. */
#include "core/analysis/tfidf.h"

#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

/* ---------- code point classes ---------- */

/* Unicode classification comes from glibc's built-in C.UTF-8 locale, opened once and used
 * through the *_l functions so that the process locale (often "C" over ssh) does not matter. */
static locale_t utf8_locale = (locale_t)0;
static pthread_once_t utf8_once = PTHREAD_ONCE_INIT;

static void utf8_locale_open(void) {
    const char *names[] = {"C.UTF-8", "C.utf8", "en_US.UTF-8", "en_US.utf8"};
    for (size_t i = 0; i < sizeof names / sizeof *names && !utf8_locale; i++)
        utf8_locale = newlocale(LC_CTYPE_MASK, names[i], (locale_t)0);
}

/* Fallback when no UTF-8 locale exists: every code point above ASCII is a letter except the
 * common punctuation, symbol, space and combining-mark blocks; lowercase covers Latin-1,
 * Latin Extended-A, Greek and Cyrillic. */
static int fallback_is_word(uint32_t cp) {
    if (cp >= 0x80 && cp <= 0xBF)
        return cp == 0xAA || cp == 0xB2 || cp == 0xB3 || cp == 0xB5 || cp == 0xB9 || cp == 0xBA ||
               (cp >= 0xBC && cp <= 0xBE);
    if (cp == 0xD7 || cp == 0xF7)
        return 0;
    static const uint32_t not_word[][2] = {
        {0x0300, 0x036F}, {0x2000, 0x206F}, {0x20A0, 0x20FF}, {0x2190, 0x2BFF}, {0x2E00, 0x2E7F},
        {0x3000, 0x3004}, {0x3008, 0x3020}, {0xE000, 0xF8FF}, {0xFE30, 0xFE4F}, {0xFF00, 0xFF0F},
        {0xFF1A, 0xFF20}, {0xFF3B, 0xFF3E}, {0xFF40, 0xFF40}, {0xFF5B, 0xFF65}, {0x1F000, 0x1FAFF},
    };
    for (size_t i = 0; i < sizeof not_word / sizeof *not_word; i++)
        if (cp >= not_word[i][0] && cp <= not_word[i][1])
            return 0;
    return 1;
}

static uint32_t fallback_lower(uint32_t cp) {
    if ((cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) || (cp >= 0x391 && cp <= 0x3AB && cp != 0x3A2) ||
        (cp >= 0x410 && cp <= 0x42F))
        return cp + 0x20;
    if (cp >= 0x400 && cp <= 0x40F)
        return cp + 0x50;
    if ((cp >= 0x100 && cp <= 0x137 && !(cp & 1)) || (cp >= 0x14A && cp <= 0x177 && !(cp & 1)) ||
        (cp >= 0x139 && cp <= 0x148 && (cp & 1)))
        return cp + 1;
    return cp;
}

static int cp_is_word(uint32_t cp) {
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9') || cp == '_';
    if (utf8_locale)
        return iswalnum_l((wint_t)cp, utf8_locale) != 0;
    return fallback_is_word(cp);
}

static uint32_t cp_lower(uint32_t cp) {
    if (cp < 0x80)
        return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    if (utf8_locale)
        return (uint32_t)towlower_l((wint_t)cp, utf8_locale);
    return fallback_lower(cp);
}

/* Decode one UTF-8 sequence at s (NUL-terminated). Returns its byte length and sets *cp;
 * an invalid or overlong sequence, or a surrogate, yields length 1 and cp = 0xFFFFFFFF. */
static int utf8_decode(const unsigned char *s, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len;
    uint32_t v, min;
    if ((c & 0xE0) == 0xC0) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        *cp = 0xFFFFFFFFu;
        return 1;
    }
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) { /* also stops at the NUL terminator */
            *cp = 0xFFFFFFFFu;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        *cp = 0xFFFFFFFFu;
        return 1;
    }
    *cp = v;
    return len;
}

static int utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

void hl_tfidf_tokenize(const char *text, int lowercase, hl_token_fn emit, void *user) {
    pthread_once(&utf8_once, utf8_locale_open);
    const unsigned char *s = (const unsigned char *)text;
    /* Tokens are re-encoded (lowercased) into buf; a token longer than the buffer is rare
     * (a URL or base64 blob) and is emitted from a heap copy. */
    char stack_buf[512];
    char *buf = stack_buf;
    size_t cap = sizeof stack_buf;
    while (*s) {
        uint32_t cp;
        int n = utf8_decode(s, &cp);
        if (cp == 0xFFFFFFFFu || !cp_is_word(cp)) {
            s += n;
            continue;
        }
        /* A maximal run of word characters: [start, s). */
        size_t len = 0;
        int chars = 0;
        while (*s) {
            n = utf8_decode(s, &cp);
            if (cp == 0xFFFFFFFFu || !cp_is_word(cp))
                break;
            if (len + 4 > cap) {
                size_t ncap = cap * 2;
                char *nb = malloc(ncap);
                if (!nb)
                    break; /* out of memory: cut the token here rather than fail the whole run */
                memcpy(nb, buf, len);
                if (buf != stack_buf)
                    free(buf);
                buf = nb;
                cap = ncap;
            }
            len += (size_t)utf8_encode(lowercase ? cp_lower(cp) : cp, buf + len);
            chars++;
            s += n;
        }
        if (chars >= 2 && len < (size_t)INT32_MAX)
            emit(user, buf, (int)len);
        /* skip the rest of a run cut short by a failed allocation */
        while (*s) {
            n = utf8_decode(s, &cp);
            if (cp == 0xFFFFFFFFu || !cp_is_word(cp))
                break;
            s += n;
        }
    }
    if (buf != stack_buf)
        free(buf);
}

/* ---------- vocabulary ---------- */

typedef struct {
    int64_t off;   /* into bytes */
    int32_t len;
    int32_t df;
    int64_t total; /* total count over all documents */
    uint64_t hash;
} vocab_entry;

typedef struct {
    vocab_entry *e;  /* [n] in order of first appearance */
    int64_t n, cap;
    int32_t *slots;  /* [n_slots] entry index or -1 */
    int64_t n_slots;
    char *bytes;
    int64_t n_bytes, cap_bytes;
    /* the current document's term ids */
    int32_t *doc_ids;
    int64_t n_doc_ids, cap_doc_ids;
    hl_status err;
    int64_t n_tokens;
} vocab;

static uint64_t hash_bytes(const char *p, int len) {
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < len; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h ^ (h >> 29);
}

static int grow(void **p, int64_t *cap, int64_t need, size_t elem) {
    if (need <= *cap)
        return 1;
    int64_t ncap = *cap ? *cap : 1024;
    while (ncap < need)
        ncap *= 2;
    void *np = realloc(*p, (size_t)ncap * elem);
    if (!np)
        return 0;
    *p = np;
    *cap = ncap;
    return 1;
}

static int vocab_rehash(vocab *v, int64_t n_slots) {
    int32_t *slots = malloc((size_t)n_slots * sizeof *slots);
    if (!slots)
        return 0;
    memset(slots, 0xff, (size_t)n_slots * sizeof *slots);
    for (int64_t i = 0; i < v->n; i++) {
        uint64_t j = v->e[i].hash & (uint64_t)(n_slots - 1);
        while (slots[j] >= 0)
            j = (j + 1) & (uint64_t)(n_slots - 1);
        slots[j] = (int32_t)i;
    }
    free(v->slots);
    v->slots = slots;
    v->n_slots = n_slots;
    return 1;
}

static void vocab_add_token(void *user, const char *tok, int len) {
    vocab *v = user;
    if (v->err)
        return;
    v->n_tokens++;
    uint64_t h = hash_bytes(tok, len);
    uint64_t mask = (uint64_t)(v->n_slots - 1);
    uint64_t j = h & mask;
    int32_t id = -1;
    while (v->slots[j] >= 0) {
        vocab_entry *e = &v->e[v->slots[j]];
        if (e->hash == h && e->len == len && !memcmp(v->bytes + e->off, tok, (size_t)len)) {
            id = v->slots[j];
            break;
        }
        j = (j + 1) & mask;
    }
    if (id < 0) {
        if (v->n >= INT32_MAX - 1) {
            v->err = hl_fail(HL_ERR_RANGE, "more than 2^31 distinct terms");
            return;
        }
        if (!grow((void **)&v->e, &v->cap, v->n + 1, sizeof *v->e) ||
            !grow((void **)&v->bytes, &v->cap_bytes, v->n_bytes + len + 1, 1)) {
            v->err = hl_fail(HL_ERR_NOMEM, "out of memory growing the vocabulary (%lld terms)", (long long)v->n);
            return;
        }
        memcpy(v->bytes + v->n_bytes, tok, (size_t)len);
        v->bytes[v->n_bytes + len] = 0;
        id = (int32_t)v->n;
        v->e[v->n++] = (vocab_entry){.off = v->n_bytes, .len = len, .df = 0, .total = 0, .hash = h};
        v->n_bytes += len + 1;
        v->slots[j] = id;
        if (v->n * 2 > v->n_slots && !vocab_rehash(v, v->n_slots * 2)) {
            v->err = hl_fail(HL_ERR_NOMEM, "out of memory growing the vocabulary hash");
            return;
        }
    }
    if (!grow((void **)&v->doc_ids, &v->cap_doc_ids, v->n_doc_ids + 1, sizeof *v->doc_ids)) {
        v->err = hl_fail(HL_ERR_NOMEM, "out of memory");
        return;
    }
    v->doc_ids[v->n_doc_ids++] = id;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* qsort has no context argument: the comparator reads the vocabulary through this pointer.
 * Only used inside hl_tfidf_fit_transform under a lock, see below. */
static const vocab *sort_vocab;
static pthread_mutex_t sort_lock = PTHREAD_MUTEX_INITIALIZER;

static int cmp_term_bytes(const void *a, const void *b) {
    const vocab_entry *x = &sort_vocab->e[*(const int32_t *)a], *y = &sort_vocab->e[*(const int32_t *)b];
    int m = x->len < y->len ? x->len : y->len;
    int c = memcmp(sort_vocab->bytes + x->off, sort_vocab->bytes + y->off, (size_t)m);
    if (c)
        return c;
    return (x->len > y->len) - (x->len < y->len);
}

/* Stable order by descending total count: ties keep their (alphabetical) position. */
typedef struct {
    int64_t total;
    int32_t pos;
} total_pos;
static int cmp_total_desc(const void *a, const void *b) {
    const total_pos *x = a, *y = b;
    if (x->total != y->total)
        return x->total > y->total ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

typedef struct {
    int32_t col;
    double val;
} col_val;
static int cmp_col(const void *a, const void *b) {
    const col_val *x = a, *y = b;
    return (x->col > y->col) - (x->col < y->col);
}

hl_tfidf_options hl_tfidf_defaults(void) {
    return (hl_tfidf_options){.lowercase = 1, .min_df = 1, .min_df_frac = 0, .max_df = 0, .max_df_frac = 0,
                              .max_features = 0, .sublinear_tf = 0, .smooth_idf = 1, .use_idf = 1, .norm_l2 = 1};
}

void hl_csr_free(hl_csr *m) {
    if (!m)
        return;
    free(m->row_ptr);
    free(m->col);
    free(m->val);
    memset(m, 0, sizeof *m);
}

void hl_tfidf_free(hl_tfidf *t) {
    if (!t)
        return;
    hl_csr_free(&t->X);
    free(t->terms);
    free(t->term_bytes);
    free(t->idf);
    free(t->df);
    memset(t, 0, sizeof *t);
}

hl_status hl_tfidf_fit_transform(const char *const *docs, int64_t n, const hl_tfidf_options *opt_in,
                                 hl_tfidf *out, hl_cluster_progress_fn progress, void *user) {
    memset(out, 0, sizeof *out);
    hl_tfidf_options opt = opt_in ? *opt_in : hl_tfidf_defaults();
    if (n <= 0)
        return hl_fail(HL_ERR_ARG, "no documents to vectorise");
    if (n > INT32_MAX)
        return hl_fail(HL_ERR_RANGE, "too many documents (%lld)", (long long)n);
    if (opt.min_df_frac < 0 || opt.min_df_frac >= 1 || opt.max_df_frac < 0 || opt.max_df_frac > 1)
        return hl_fail(HL_ERR_ARG, "min_df/max_df fractions must lie in (0, 1)");

    hl_status st = HL_OK;
    vocab v = {0};
    /* Document-term pairs, old (first-appearance) ids, grouped by document. */
    int32_t *pair_id = NULL, *pair_count = NULL;
    int64_t n_pairs = 0, cap_id = 0, cap_count = 0;
    int64_t *doc_ptr = calloc((size_t)n + 1, sizeof *doc_ptr);
    int32_t *order = NULL, *remap = NULL;
    total_pos *tp = NULL;
    int32_t *keep_pos = NULL;
    col_val *row = NULL;
    if (!doc_ptr || !vocab_rehash(&v, 1 << 14)) {
        st = hl_fail(HL_ERR_NOMEM, "out of memory");
        goto done;
    }

    for (int64_t d = 0; d < n; d++) {
        v.n_doc_ids = 0;
        hl_tfidf_tokenize(docs[d] ? docs[d] : "", opt.lowercase, vocab_add_token, &v);
        if (v.err) {
            st = v.err;
            goto done;
        }
        qsort(v.doc_ids, (size_t)v.n_doc_ids, sizeof *v.doc_ids, cmp_i32);
        for (int64_t i = 0; i < v.n_doc_ids;) {
            int64_t j = i;
            while (j < v.n_doc_ids && v.doc_ids[j] == v.doc_ids[i])
                j++;
            if (!grow((void **)&pair_id, &cap_id, n_pairs + 1, sizeof *pair_id) ||
                !grow((void **)&pair_count, &cap_count, n_pairs + 1, sizeof *pair_count)) {
                st = hl_fail(HL_ERR_NOMEM, "out of memory storing term counts");
                goto done;
            }
            pair_id[n_pairs] = v.doc_ids[i];
            pair_count[n_pairs] = (int32_t)(j - i);
            n_pairs++;
            v.e[v.doc_ids[i]].df++;
            v.e[v.doc_ids[i]].total += j - i;
            i = j;
        }
        doc_ptr[d + 1] = n_pairs;
        if (progress && (d % 1024 == 0 || d == n - 1) && progress(user, "tfidf", (double)(d + 1), (double)n)) {
            st = hl_fail(HL_ERR_CANCELLED, "TF-IDF cancelled");
            goto done;
        }
    }
    out->n_tokens = v.n_tokens;
    out->n_raw_terms = v.n;

    /* Alphabetical order of all terms, then the df window, then max_features. */
    order = malloc((size_t)(v.n ? v.n : 1) * sizeof *order);
    remap = malloc((size_t)(v.n ? v.n : 1) * sizeof *remap);
    if (!order || !remap) {
        st = hl_fail(HL_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < v.n; i++)
        order[i] = (int32_t)i;
    pthread_mutex_lock(&sort_lock);
    sort_vocab = &v;
    qsort(order, (size_t)v.n, sizeof *order, cmp_term_bytes);
    sort_vocab = NULL;
    pthread_mutex_unlock(&sort_lock);

    double min_count = opt.min_df_frac > 0 ? opt.min_df_frac * (double)n : (double)(opt.min_df > 0 ? opt.min_df : 1);
    double max_count = opt.max_df_frac > 0 ? opt.max_df_frac * (double)n : (opt.max_df > 0 ? (double)opt.max_df : (double)n);
    if (max_count < min_count) {
        st = hl_fail(HL_ERR_ARG, "max_df (%g documents) is below min_df (%g documents)", max_count, min_count);
        goto done;
    }
    int64_t kept = 0;
    for (int64_t i = 0; i < v.n; i++) {
        const vocab_entry *e = &v.e[order[i]];
        remap[order[i]] = -1;
        if ((double)e->df >= min_count && (double)e->df <= max_count)
            order[kept++] = order[i]; /* compacts in place, still alphabetical */
    }
    if (opt.max_features > 0 && kept > opt.max_features) {
        tp = malloc((size_t)kept * sizeof *tp);
        if (!tp) {
            st = hl_fail(HL_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (int64_t i = 0; i < kept; i++)
            tp[i] = (total_pos){v.e[order[i]].total, (int32_t)i};
        qsort(tp, (size_t)kept, sizeof *tp, cmp_total_desc);
        /* keep the first max_features positions, restore alphabetical order */
        keep_pos = malloc((size_t)opt.max_features * sizeof *keep_pos);
        if (!keep_pos) {
            st = hl_fail(HL_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (int i = 0; i < opt.max_features; i++)
            keep_pos[i] = tp[i].pos;
        qsort(keep_pos, (size_t)opt.max_features, sizeof *keep_pos, cmp_i32);
        for (int i = 0; i < opt.max_features; i++)
            order[i] = order[keep_pos[i]];
        kept = opt.max_features;
    }
    if (v.n == 0) {
        st = hl_fail(HL_ERR_ARG, "the %lld texts hold no word (tokens are runs of 2+ letters, digits or '_'); "
                     "wrong --fields?", (long long)n);
        goto done;
    }
    if (kept == 0) {
        st = hl_fail(HL_ERR_ARG,
                     "no term is left after pruning (%lld distinct terms, document frequency window [%g, %g]); "
                     "lower --min-df or raise --max-df",
                     (long long)v.n, min_count, max_count);
        goto done;
    }
    for (int64_t i = 0; i < kept; i++)
        remap[order[i]] = (int32_t)i;

    /* Vocabulary of the result. */
    int64_t bytes = 0;
    for (int64_t i = 0; i < kept; i++)
        bytes += v.e[order[i]].len + 1;
    out->n_terms = kept;
    out->terms = malloc((size_t)kept * sizeof *out->terms);
    out->term_bytes = malloc((size_t)bytes);
    out->idf = malloc((size_t)kept * sizeof *out->idf);
    out->df = malloc((size_t)kept * sizeof *out->df);
    if (!out->terms || !out->term_bytes || !out->idf || !out->df) {
        st = hl_fail(HL_ERR_NOMEM, "out of memory");
        goto done;
    }
    bytes = 0;
    for (int64_t i = 0; i < kept; i++) {
        const vocab_entry *e = &v.e[order[i]];
        memcpy(out->term_bytes + bytes, v.bytes + e->off, (size_t)e->len + 1);
        out->terms[i] = out->term_bytes + bytes;
        bytes += e->len + 1;
        out->df[i] = e->df;
        if (!opt.use_idf)
            out->idf[i] = 1.0;
        else if (opt.smooth_idf)
            out->idf[i] = log((1.0 + (double)n) / (1.0 + (double)e->df)) + 1.0;
        else
            out->idf[i] = log((double)n / (double)e->df) + 1.0;
    }

    /* CSR of kept terms. */
    int64_t nnz = 0;
    for (int64_t p = 0; p < n_pairs; p++)
        nnz += remap[pair_id[p]] >= 0;
    hl_csr *X = &out->X;
    X->n_rows = n;
    X->n_cols = kept;
    X->nnz = nnz;
    X->row_ptr = malloc(((size_t)n + 1) * sizeof *X->row_ptr);
    X->col = malloc((size_t)(nnz ? nnz : 1) * sizeof *X->col);
    X->val = malloc((size_t)(nnz ? nnz : 1) * sizeof *X->val);
    int64_t max_row = 0;
    for (int64_t d = 0; d < n; d++)
        if (doc_ptr[d + 1] - doc_ptr[d] > max_row)
            max_row = doc_ptr[d + 1] - doc_ptr[d];
    row = malloc((size_t)(max_row ? max_row : 1) * sizeof *row);
    if (!X->row_ptr || !X->col || !X->val || !row) {
        st = hl_fail(HL_ERR_NOMEM, "out of memory for the TF-IDF matrix (%lld non-zeros)", (long long)nnz);
        goto done;
    }
    X->row_ptr[0] = 0;
    int64_t w = 0;
    for (int64_t d = 0; d < n; d++) {
        int64_t m = 0;
        double ss = 0;
        for (int64_t p = doc_ptr[d]; p < doc_ptr[d + 1]; p++) {
            int32_t c = remap[pair_id[p]];
            if (c < 0)
                continue;
            double tf = opt.sublinear_tf ? 1.0 + log((double)pair_count[p]) : (double)pair_count[p];
            double x = tf * out->idf[c];
            row[m++] = (col_val){c, x};
            ss += x * x;
        }
        qsort(row, (size_t)m, sizeof *row, cmp_col);
        /* Normalise in double, round to float once. */
        double inv = (opt.norm_l2 && ss > 0) ? 1.0 / sqrt(ss) : 1.0;
        for (int64_t i = 0; i < m; i++) {
            X->col[w] = row[i].col;
            X->val[w] = (float)(row[i].val * inv);
            w++;
        }
        X->row_ptr[d + 1] = w;
    }

done:
    free(v.e);
    free(v.slots);
    free(v.bytes);
    free(v.doc_ids);
    free(pair_id);
    free(pair_count);
    free(doc_ptr);
    free(order);
    free(remap);
    free(tp);
    free(keep_pos);
    free(row);
    if (st != HL_OK)
        hl_tfidf_free(out);
    return st;
}
