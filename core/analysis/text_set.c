/* Texts for clustering: pick fields from JSON-lines / JSON-array / BBH / single-object files.
 * Every position is bounds-checked against `len`; cJSON parses one value at a time from a
 * length-limited window, so a truncated or lying file gives a message with a line number. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/analysis/cluster.h"

typedef struct {
    char names[HL_TEXT_MAX_FIELDS][64];
    int n;
} field_list;

static const char *const default_primary[] = {"instruction", "input"};
static const char *const default_fallback[] = {"question", "text", "prompt"};

static hl_status parse_fields(const char *spec, field_list *fl) {
    fl->n = 0;
    const char *p = spec;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p)
            break;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *end = e;
        while (end > p && end[-1] == ' ')
            end--;
        size_t len = (size_t)(end - p);
        if (len >= sizeof fl->names[0])
            return hl_fail(HL_ERR_ARG, "field name too long: '%.*s'", (int)len, p);
        if (fl->n >= HL_TEXT_MAX_FIELDS)
            return hl_fail(HL_ERR_ARG, "at most %d fields", HL_TEXT_MAX_FIELDS);
        memcpy(fl->names[fl->n], p, len);
        fl->names[fl->n][len] = 0;
        fl->n++;
        p = e;
    }
    if (fl->n == 0)
        return hl_fail(HL_ERR_ARG, "empty field list '%s'", spec);
    return HL_OK;
}

static void warn(hl_text_set *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(hl_text_set *t, const char *fmt, ...) {
    if (t->n_warnings >= HL_TEXT_MAX_WARNINGS)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->warnings[t->n_warnings++], sizeof t->warnings[0], fmt, ap);
    va_end(ap);
}

typedef struct {
    hl_text_set *t;
    int64_t cap;
    const field_list *fields; /* NULL: defaults */
    int64_t record_no;        /* records/lines seen so far (0-based index of the next) */
} builder;

static int64_t line_of(const char *buf, const char *pos, int64_t *col) {
    int64_t line = 1;
    const char *ls = buf;
    for (const char *q = buf; q < pos; q++)
        if (*q == '\n')
            line++, ls = q + 1;
    if (col)
        *col = (int64_t)(pos - ls) + 1;
    return line;
}

/* Join the string fields of `obj` named in names[0..n) into a malloc'd string; NULL if none exists. */
static char *join_fields(const cJSON *obj, const char *const *names, int n, hl_status *st) {
    size_t total = 0;
    int found = 0;
    for (int i = 0; i < n; i++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, names[i]);
        if (cJSON_IsString(it) && it->valuestring) {
            total += strlen(it->valuestring) + 1;
            found++;
        }
    }
    if (!found)
        return NULL;
    char *s = malloc(total + 1);
    if (!s) {
        *st = hl_fail(HL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    size_t w = 0;
    for (int i = 0; i < n; i++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, names[i]);
        if (cJSON_IsString(it) && it->valuestring) {
            size_t l = strlen(it->valuestring);
            if (w)
                s[w++] = '\n';
            memcpy(s + w, it->valuestring, l);
            w += l;
        }
    }
    s[w] = 0;
    return s;
}

static hl_status add_record(builder *b, const cJSON *obj, int64_t line, const char *where) {
    hl_text_set *t = b->t;
    int64_t idx = b->record_no++;
    if (!cJSON_IsObject(obj)) {
        t->n_skipped++;
        warn(t, "%s: not a JSON object, skipped", where);
        return HL_OK;
    }
    hl_status st = HL_OK;
    char *text = NULL;
    if (b->fields) {
        const char *names[HL_TEXT_MAX_FIELDS];
        for (int i = 0; i < b->fields->n; i++)
            names[i] = b->fields->names[i];
        text = join_fields(obj, names, b->fields->n, &st);
    } else {
        text = join_fields(obj, default_primary, 2, &st);
        for (int i = 0; !text && st == HL_OK && i < 3; i++)
            text = join_fields(obj, &default_fallback[i], 1, &st);
    }
    if (st != HL_OK)
        return st;
    if (!text) {
        t->n_skipped++;
        if (b->fields)
            warn(t, "%s: none of the fields (%s%s) is a string, skipped", where, b->fields->names[0],
                 b->fields->n > 1 ? ", ..." : "");
        else
            warn(t, "%s: no instruction/input/question/text/prompt string field, skipped", where);
        return HL_OK;
    }
    if (t->n == b->cap) {
        int64_t ncap = b->cap ? b->cap * 2 : 1024;
        char **nt = realloc(t->text, (size_t)ncap * sizeof *nt);
        if (nt)
            t->text = nt;
        int64_t *nl = realloc(t->line, (size_t)ncap * sizeof *nl);
        if (nl)
            t->line = nl;
        int64_t *ni = realloc(t->index, (size_t)ncap * sizeof *ni);
        if (ni)
            t->index = ni;
        if (!nt || !nl || !ni) {
            free(text);
            return hl_fail(HL_ERR_NOMEM, "out of memory reading records");
        }
        b->cap = ncap;
    }
    t->text[t->n] = text;
    t->line[t->n] = line;
    t->index[t->n] = idx;
    t->n++;
    return HL_OK;
}

static const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static hl_status parse_lines(builder *b, const char *buf, size_t len, const char *label) {
    const char *p = buf, *end = buf + len;
    int64_t line = 0;
    while (p < end) {
        line++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *s = skip_ws(p, le);
        if (s < le) {
            const char *pe = NULL;
            cJSON *obj = cJSON_ParseWithLengthOpts(s, (size_t)(le - s), &pe, 0);
            char where[320];
            snprintf(where, sizeof where, "%.256s:%lld", label, (long long)line);
            if (!obj) {
                b->record_no++;
                b->t->n_skipped++;
                long long col = pe && pe >= p && pe <= le ? (long long)(pe - p) + 1 : 0;
                warn(b->t, "%s:%lld: malformed JSON near column %lld, skipped", label, (long long)line, col);
            } else {
                const char *rest = skip_ws(pe ? pe : le, le);
                if (rest < le) {
                    b->record_no++;
                    b->t->n_skipped++;
                    warn(b->t, "%s:%lld: extra bytes after the JSON value (column %lld), skipped", label,
                         (long long)line, (long long)(rest - p) + 1);
                } else {
                    hl_status st = add_record(b, obj, line, where);
                    if (st != HL_OK) {
                        cJSON_Delete(obj);
                        return st;
                    }
                }
                cJSON_Delete(obj);
            }
        }
        p = nl ? nl + 1 : end;
    }
    return HL_OK;
}

/* [ value, value, ... ] parsed one element at a time so each element's line is known. */
static hl_status parse_array(builder *b, const char *buf, size_t len, const char *start, const char *label) {
    const char *end = buf + len;
    const char *p = skip_ws(start + 1, end);
    if (p < end && *p == ']')
        return HL_OK;
    for (;;) {
        if (p >= end)
            return hl_fail(HL_ERR_FORMAT, "%s: the JSON array is not closed (truncated file?)", label);
        const char *pe = NULL;
        cJSON *v = cJSON_ParseWithLengthOpts(p, (size_t)(end - p), &pe, 0);
        int64_t col;
        if (!v) {
            int64_t line = line_of(buf, pe && pe >= p && pe <= end ? pe : p, &col);
            return hl_fail(HL_ERR_FORMAT, "%s:%lld:%lld: malformed JSON in array element %lld%s", label,
                           (long long)line, (long long)col, (long long)b->record_no + 1,
                           pe && pe >= end ? " (truncated file?)" : "");
        }
        char where[320];
        int64_t line = line_of(buf, p, NULL);
        snprintf(where, sizeof where, "%.256s:%lld (element %lld)", label, (long long)line, (long long)b->record_no + 1);
        hl_status st = add_record(b, v, line, where);
        cJSON_Delete(v);
        if (st != HL_OK)
            return st;
        p = skip_ws(pe, end);
        if (p < end && *p == ',') {
            p = skip_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == ']') {
            p = skip_ws(p + 1, end);
            if (p < end) {
                line = line_of(buf, p, &col);
                return hl_fail(HL_ERR_FORMAT, "%s:%lld:%lld: extra bytes after the JSON array", label, (long long)line,
                               (long long)col);
            }
            return HL_OK;
        }
        line = line_of(buf, p < end ? p : end, &col);
        return hl_fail(HL_ERR_FORMAT, "%s:%lld:%lld: expected ',' or ']' in the JSON array%s", label, (long long)line,
                       (long long)col, p >= end ? " (truncated file?)" : "");
    }
}

void hl_text_set_free(hl_text_set *t) {
    if (!t)
        return;
    for (int64_t i = 0; i < t->n; i++)
        free(t->text[i]);
    free(t->text);
    free(t->line);
    free(t->index);
    memset(t, 0, sizeof *t);
}

hl_status hl_text_set_parse(const char *buf, size_t len, const char *fields, const char *label, hl_text_set *out) {
    memset(out, 0, sizeof *out);
    if (!label)
        label = "<memory>";
    field_list fl;
    builder b = {.t = out, .cap = 0, .fields = NULL, .record_no = 0};
    if (fields && *fields) {
        HL_TRY(parse_fields(fields, &fl));
        b.fields = &fl;
    }
    const char *p = buf, *end = buf + len;
    if (len >= 3 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB && (unsigned char)p[2] == 0xBF)
        p += 3; /* UTF-8 byte order mark */
    const char *s = skip_ws(p, end);
    hl_status st = HL_OK;
    if (s >= end) {
        st = hl_fail(HL_ERR_FORMAT, "%s: the file is empty", label);
    } else if (*s == '[') {
        out->format = "json-array";
        st = parse_array(&b, buf, len, s, label);
    } else {
        /* One object spanning the whole file (BBH task file, a pretty-printed record), or lines. */
        const char *pe = NULL;
        cJSON *v = *s == '{' ? cJSON_ParseWithLengthOpts(s, (size_t)(end - s), &pe, 0) : NULL;
        if (v && skip_ws(pe, end) >= end) {
            const cJSON *ex = cJSON_GetObjectItemCaseSensitive(v, "examples");
            if (cJSON_IsArray(ex)) {
                out->format = "bbh-examples";
                const cJSON *e;
                cJSON_ArrayForEach(e, ex) {
                    char where[320];
                    snprintf(where, sizeof where, "%.256s: example %lld", label, (long long)b.record_no + 1);
                    st = add_record(&b, e, 0, where);
                    if (st != HL_OK)
                        break;
                }
            } else {
                out->format = "json-object";
                char where[320];
                snprintf(where, sizeof where, "%.256s:1", label);
                st = add_record(&b, v, 1, where);
            }
            cJSON_Delete(v);
        } else {
            cJSON_Delete(v);
            out->format = "jsonl";
            st = parse_lines(&b, p, (size_t)(end - p), label);
        }
    }
    if (st == HL_OK && out->n == 0)
        st = hl_fail(HL_ERR_FORMAT, "%s: no usable record (%lld skipped%s%s)", label, (long long)out->n_skipped,
                     out->n_warnings ? "; first problem: " : "", out->n_warnings ? out->warnings[0] : "");
    if (st != HL_OK) {
        hl_text_set tmp = *out;
        hl_text_set_free(&tmp);
        /* keep the warnings for the caller */
        out->n = 0, out->text = NULL, out->line = NULL, out->index = NULL;
    }
    return st;
}

hl_status hl_text_set_read(const char *path, const char *fields, hl_text_set *out) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return hl_fail(HL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return hl_fail(HL_ERR_IO, "%s is not a regular file", path);
    }
    size_t len = (size_t)sb.st_size;
    char *buf = malloc(len + 1);
    if (!buf) {
        fclose(f);
        return hl_fail(HL_ERR_NOMEM, "out of memory reading %s (%zu bytes)", path, len);
    }
    size_t got = len ? fread(buf, 1, len, f) : 0;
    int err = ferror(f);
    fclose(f);
    if (got != len || err) {
        free(buf);
        return hl_fail(HL_ERR_IO, "cannot read %s", path);
    }
    buf[len] = 0;
    hl_status st = hl_text_set_parse(buf, len, fields, path, out);
    free(buf);
    return st;
}
