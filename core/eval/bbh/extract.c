/* Answer extraction for the three BBH conventions (docs/bbh-eval.md §0, §3.4, §3.5, §4, §7).
 * Each extractor mirrors a Python reference exactly, quirks included, so it works on
 * bytes but treats UTF-8 the way Python's str does where that matters (strip, "last char"). */
#include <stdlib.h>
#include <string.h>

#include "core/eval/bbh/bbh.h"

static hl_status dup_out(const char *s, size_t n, char **out) {
    char *p = malloc(n + 1);
    if (!p)
        return hl_fail(HL_ERR_NOMEM, "out of memory extracting a BBH answer");
    memcpy(p, s, n);
    p[n] = '\0';
    *out = p;
    return HL_OK;
}

static const char *find_n(const char *h, size_t hn, const char *needle) {
    size_t nn = strlen(needle);
    if (nn > hn)
        return NULL;
    return memmem(h, hn, needle, nn);
}

/* Python str.isspace() for one code point. */
static int py_isspace(unsigned cp) {
    return (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f ||
           cp == 0x3000;
}

/* Decode the code point at s[0..n); returns its byte length (1 for invalid bytes, cp = 0xFFFD-ish). */
static size_t utf8_fwd(const unsigned char *s, size_t n, unsigned *cp) {
    unsigned c = s[0];
    size_t k;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        k = 2, c &= 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        k = 3, c &= 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        k = 4, c &= 0x07;
    } else {
        *cp = 0xfffd;
        return 1;
    }
    if (k > n) {
        *cp = 0xfffd;
        return 1;
    }
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            *cp = 0xfffd;
            return 1;
        }
        c = (c << 6) | (s[i] & 0x3f);
    }
    *cp = c;
    return k;
}

/* Byte length of the last code point of s[0..n) (n > 0). */
static size_t utf8_last_len(const unsigned char *s, size_t n) {
    size_t k = 1;
    while (k < 4 && k < n && (s[n - k] & 0xc0) == 0x80)
        k++;
    unsigned cp;
    if (k > 1 && utf8_fwd(s + n - k, k, &cp) == k)
        return k;
    return 1;
}

void hl_bbh_py_strip(const char *s, size_t len, size_t *start, size_t *n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t a = 0, b = len;
    while (a < b) {
        unsigned cp;
        size_t k = utf8_fwd(u + a, b - a, &cp);
        if (!py_isspace(cp))
            break;
        a += k;
    }
    while (b > a) {
        size_t k = utf8_last_len(u + a, b - a);
        unsigned cp;
        if (utf8_fwd(u + b - k, k, &cp) != k || !py_isspace(cp))
            break;
        b -= k;
    }
    *start = a;
    *n = b - a;
}

size_t hl_bbh_truncate(hl_bbh_rule rule, hl_bbh_mode mode, const char *gen, size_t len) {
    hl_bbh_gen_settings gs;
    hl_bbh_rule_gen_settings(rule, mode, &gs);
    size_t cut = len;
    for (int i = 0; i < gs.n_stop; i++) {
        const char *q = find_n(gen, cut, gs.stop[i]);
        if (q)
            cut = (size_t)(q - gen);
    }
    return cut;
}

/* Paper CoT: text after the LAST "So the answer is " (whole text if absent), Python strip(),
 * then drop one trailing '.'. */
hl_status hl_bbh_extract_paper_cot(const char *gen, size_t len, char **out) {
    static const char key[] = "So the answer is ";
    const size_t kn = sizeof key - 1;
    const char *s = gen;
    size_t n = len;
    if (len >= kn)
        for (size_t i = len - kn + 1; i-- > 0;)
            if (!memcmp(gen + i, key, kn)) {
                s = gen + i + kn;
                n = len - i - kn;
                break;
            }
    size_t a, m;
    hl_bbh_py_strip(s, n, &a, &m);
    if (m > 0 && s[a + m - 1] == '.')
        m--;
    return dup_out(s + a, m, out);
}

/* lm-eval: re.findall(r"(?<=the answer is )(.*)(?=.)", gen)[0].strip(), else "[invalid]".
 * '.' excludes only '\n'; the lookahead makes the group stop one code point before the end
 * of the line, and a position whose rest of line is empty does not match at all. */
hl_status hl_bbh_extract_lmeval_cot(const char *gen, size_t len, char **out) {
    static const char key[] = "the answer is ";
    const size_t kn = sizeof key - 1;
    const char *p = gen, *end = gen + len;
    for (;;) {
        const char *q = find_n(p, (size_t)(end - p), key);
        if (!q)
            return dup_out("[invalid]", 9, out);
        const char *s = q + kn, *e = s;
        while (e < end && *e != '\n')
            e++;
        if (e > s) {
            size_t rest = (size_t)(e - s);
            rest -= utf8_last_len((const unsigned char *)s, rest);
            size_t a, m;
            hl_bbh_py_strip(s, rest, &a, &m);
            return dup_out(s + a, m, out);
        }
        p = q + 1;
    }
}

/* Python text.split('answer is ') then "[1].strip()" if there was a split: the segment
 * between the first and the second occurrence. Returns 1 and the stripped segment, or 0. */
static int oc_answer_segment(const char *text, size_t len, const char **seg, size_t *seg_n) {
    static const char key[] = "answer is ";
    const char *q = find_n(text, len, key);
    if (!q)
        return 0;
    const char *s = q + sizeof key + -1;
    const char *e = find_n(s, (size_t)(text + len - s), key);
    if (!e)
        e = text + len;
    size_t a, m;
    hl_bbh_py_strip(s, (size_t)(e - s), &a, &m);
    *seg = s + a;
    *seg_n = m;
    return 1;
}

/* OpenCompass bbh_mcq_postprocess (2024): first "(X)" letter via \(([A-Z])\)*, else the
 * first capital letter, else the (segment or unstripped whole) text. */
hl_status hl_bbh_opencompass_mcq(const char *text, size_t len, char **out) {
    const char *s = text;
    size_t n = len;
    oc_answer_segment(text, len, &s, &n);
    for (size_t i = 0; i + 1 < n; i++)
        if (s[i] == '(' && s[i + 1] >= 'A' && s[i + 1] <= 'Z')
            return dup_out(s + i + 1, 1, out);
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 'A' && s[i] <= 'Z')
            return dup_out(s + i, 1, out);
    return dup_out(s, n, out);
}

/* OpenCompass bbh_freeform_postprocess (2024): segment after "answer is " (or whole text),
 * first line, strip, drop one trailing '.', strip; text between the first "**" pair if any. */
hl_status hl_bbh_opencompass_freeform(const char *text, size_t len, char **out) {
    const char *s = text;
    size_t n = len;
    oc_answer_segment(text, len, &s, &n);
    const char *nl = memchr(s, '\n', n);
    if (nl)
        n = (size_t)(nl - s);
    size_t a, m;
    hl_bbh_py_strip(s, n, &a, &m);
    s += a, n = m;
    if (n > 0 && s[n - 1] == '.') {
        hl_bbh_py_strip(s, n - 1, &a, &m);
        s += a, n = m;
    }
    const char *o = find_n(s, n, "**");
    if (o) {
        const char *c = find_n(o + 2, (size_t)(s + n - o - 2), "**");
        if (c)
            return dup_out(o + 2, (size_t)(c - o - 2), out);
    }
    return dup_out(s, n, out);
}

/* lm-eval bbh_zeroshot strict-match: exact_match with regexes_to_ignore
 * ["\.$", ",", "\n", "\\", "\""] applied in order, then ignore_case. Writes the normalized
 * form of s into a new buffer. */
static char *lmeval_zs_normalize(const char *s, size_t n) {
    char *o = malloc(n + 1);
    if (!o)
        return NULL;
    memcpy(o, s, n);
    /* \.$ without MULTILINE: a '.' at the very end, or just before one final '\n'. */
    if (n >= 1 && o[n - 1] == '.') {
        n--;
    } else if (n >= 2 && o[n - 1] == '\n' && o[n - 2] == '.') {
        o[n - 2] = '\n';
        n--;
    }
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        char c = o[i];
        if (c == ',' || c == '\n' || c == '\\' || c == '"')
            continue;
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        o[w++] = c;
    }
    o[w] = '\0';
    return o;
}

hl_status hl_bbh_score_one(hl_bbh_rule rule, hl_bbh_mode mode, int task, const char *gen, size_t len,
                           const char *target, char **answer, int *correct) {
    char *a = NULL;
    hl_status st = HL_OK;
    int ok = 0;
    /* Text from JSON never holds NUL; a decoded <0x00> byte piece would, and would make the
     * C string comparisons below see a shorter answer, so the generation ends there. */
    len = strnlen(gen, len);
    size_t n = hl_bbh_truncate(rule, mode, gen, len);
    switch (rule) {
    case HL_BBH_RULE_PAPER:
        if (mode == HL_BBH_MODE_COT) {
            st = hl_bbh_extract_paper_cot(gen, n, &a);
        } else { /* answer-only outputs were scored after a plain strip() */
            size_t s0, m;
            hl_bbh_py_strip(gen, n, &s0, &m);
            st = dup_out(gen + s0, m, &a);
        }
        if (st == HL_OK)
            ok = !strcmp(a, target);
        break;
    case HL_BBH_RULE_LMEVAL:
        if (mode == HL_BBH_MODE_COT) {
            st = hl_bbh_extract_lmeval_cot(gen, n, &a);
            if (st == HL_OK)
                ok = !strcmp(a, target);
        } else {
            st = dup_out(gen, n, &a); /* take_first: the raw truncated continuation */
            if (st != HL_OK)
                break;
            if (mode == HL_BBH_MODE_AO) {
                ok = strlen(a) == n && !strcmp(a, target);
            } else {
                char *x = lmeval_zs_normalize(a, n), *y = lmeval_zs_normalize(target, strlen(target));
                if (!x || !y)
                    st = hl_fail(HL_ERR_NOMEM, "out of memory scoring");
                else
                    ok = !strcmp(x, y);
                free(x);
                free(y);
            }
        }
        break;
    case HL_BBH_RULE_OPENCOMPASS:
    default:
        if (hl_bbh_task_is_multiple_choice(task)) {
            char *ref = NULL;
            st = hl_bbh_opencompass_mcq(gen, n, &a);
            if (st == HL_OK)
                st = hl_bbh_opencompass_mcq(target, strlen(target), &ref); /* dataset_postprocessor */
            if (st == HL_OK)
                ok = !strcmp(a, ref);
            free(ref);
        } else {
            st = hl_bbh_opencompass_freeform(gen, n, &a);
            if (st == HL_OK)
                ok = !strcmp(a, target);
        }
        break;
    }
    if (st != HL_OK) {
        free(a);
        return st;
    }
    if (correct)
        *correct = ok;
    if (answer)
        *answer = a;
    else
        free(a);
    return HL_OK;
}
