/* Token-id list parser (see idlist.h). */
#include "core/text/idlist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void hl_idlist_free(hl_idlist *list) {
    free(list->ids);
    free(list->start);
    memset(list, 0, sizeof *list);
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

hl_status hl_idlist_parse(hl_idlist *out, const char *data, size_t len, int vocab, int min_len, int max_len,
                          const char *label) {
    memset(out, 0, sizeof *out);
    /* Upper bounds for one allocation each: ids ≤ (len+1)/2, lines ≤ len+1. */
    size_t max_ids = len / 2 + 1, max_lines = len + 1;
    out->ids = malloc(max_ids * sizeof *out->ids);
    out->start = malloc((max_lines + 1) * sizeof *out->start);
    if (!out->ids || !out->start) {
        hl_idlist_free(out);
        return hl_fail(HL_ERR_NOMEM, "%s: out of memory for %zu bytes of token ids", label, len);
    }
    out->start[0] = 0;
    size_t i = 0;
    int line = 0;
    while (i < len) {
        line++;
        int64_t n_before = out->n_ids;
        while (i < len && data[i] != '\n') {
            if (is_space(data[i])) {
                i++;
                continue;
            }
            size_t a = i;
            while (i < len && data[i] != '\n' && !is_space(data[i]))
                i++;
            /* the token is data[a .. i) */
            int64_t v = 0;
            int ok = 1;
            for (size_t k = a; k < i; k++) {
                if (data[k] < '0' || data[k] > '9') {
                    ok = 0;
                    break;
                }
                if (v <= (int64_t)vocab) /* saturate: anything above vocab is out of range anyway */
                    v = v * 10 + (data[k] - '0');
            }
            int show = (int)(i - a > 40 ? 40 : i - a);
            char tok[48];
            for (int k = 0; k < show; k++) /* printable copy for the message */
                tok[k] = (data[a + k] >= 32 && data[a + k] < 127) ? data[a + k] : '?';
            tok[show] = '\0';
            if (!ok) {
                hl_idlist_free(out);
                return hl_fail(HL_ERR_FORMAT, "%s line %d: '%s%s' is not a token id (expected whitespace-separated "
                                              "non-negative integers)",
                               label, line, tok, i - a > 40 ? "..." : "");
            }
            if (v >= vocab) {
                hl_idlist_free(out);
                return hl_fail(HL_ERR_RANGE, "%s line %d: token id %s%s is outside the vocabulary (0..%d)", label,
                               line, tok, i - a > 40 ? "..." : "", vocab - 1);
            }
            out->ids[out->n_ids++] = (int32_t)v;
        }
        int64_t n = out->n_ids - n_before;
        if (n < min_len) {
            hl_idlist_free(out);
            if (n == 0)
                return hl_fail(HL_ERR_FORMAT, "%s line %d: the line is empty; each line needs at least %d token ids",
                               label, line, min_len);
            return hl_fail(HL_ERR_FORMAT, "%s line %d: %lld token id%s; each line needs at least %d", label, line,
                           (long long)n, n == 1 ? "" : "s", min_len);
        }
        if (n > max_len) {
            hl_idlist_free(out);
            return hl_fail(HL_ERR_RANGE, "%s line %d: %lld tokens exceed the model context of %d", label, line,
                           (long long)n, max_len);
        }
        out->start[++out->n_seqs] = out->n_ids;
        if (i < len) /* skip the '\n'; a final line break starts no new line */
            i++;
    }
    return HL_OK;
}

hl_status hl_idlist_load(hl_idlist *out, const char *path, int vocab, int min_len, int max_len) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return hl_fail(errno == ENOENT ? HL_ERR_NOT_FOUND : HL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    hl_status st = buf ? HL_OK : hl_fail(HL_ERR_NOMEM, "out of memory reading %s", path);
    while (!st) {
        if (len == cap) {
            if (cap >= ((size_t)1 << 30)) {
                st = hl_fail(HL_ERR_RANGE, "%s is larger than 1 GiB", path);
                break;
            }
            char *p = realloc(buf, cap * 2);
            if (!p) {
                st = hl_fail(HL_ERR_NOMEM, "out of memory reading %s", path);
                break;
            }
            buf = p, cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f))
                st = hl_fail(HL_ERR_IO, "reading %s: %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (!st && memchr(buf, '\0', len))
        st = hl_fail(HL_ERR_FORMAT, "%s contains NUL bytes: not a text file of token ids", path);
    if (!st)
        st = hl_idlist_parse(out, buf, len, vocab, min_len, max_len, path);
    free(buf);
    return st;
}
