/* Records from JSON / JSON lines: detection, per-element parsing with line numbers,
 * schema recognition and the field map. Prompt building and tokenisation live in
 * core/text/prompt.c; reading files (gzip too) in core/text/textfile.c. */
#include "core/text/records.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/text/textfile.h"

/* ---- string arena: records point into blocks that never move ---------------------- */

typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    char data[];
} arena_block;

static void arena_free(void *a) {
    arena_block *b = a;
    while (b) {
        arena_block *n = b->next;
        free(b);
        b = n;
    }
}

/* Copy n bytes + NUL. Blocks are 1 MiB (or the string's size if larger; the first block
 * no larger than the input needs), so the total is linear in the input and small files
 * stay small. */
static char *arena_copy(hl_dataset *ds, const char *s, size_t n, size_t hint) {
    arena_block *b = ds->arena_;
    if (!b || b->cap - b->used < n + 1) {
        size_t cap = (size_t)1 << 20;
        if (!b && hint < cap)
            cap = hint; /* the input size bounds the strings; if not, another block follows */
        if (cap < n + 1)
            cap = n + 1;
        arena_block *nb = malloc(sizeof *nb + cap);
        if (!nb)
            return NULL;
        nb->next = b;
        nb->used = 0;
        nb->cap = cap;
        ds->arena_ = b = nb;
    }
    char *d = b->data + b->used;
    memcpy(d, s, n);
    d[n] = '\0';
    b->used += n + 1;
    return d;
}

/* ---- field maps -------------------------------------------------------------------- */

static hl_status set_name(char dst[64], const char *src, const char *role) {
    size_t n = strlen(src);
    if (n >= 64)
        return hl_fail(HL_ERR_ARG, "field name for %s is too long (max 63 bytes)", role);
    memcpy(dst, src, n + 1);
    return HL_OK;
}

hl_status hl_field_map_set(hl_field_map *map, const char *instruction, const char *input, const char *output) {
    if (!instruction || !*instruction || !output || !*output)
        return hl_fail(HL_ERR_ARG, "a field map needs instruction and output field names");
    HL_TRY(set_name(map->instruction, instruction, "instruction"));
    HL_TRY(set_name(map->input, input ? input : "", "input"));
    HL_TRY(set_name(map->output, output, "output"));
    if (!strcmp(map->instruction, map->output))
        return hl_fail(HL_ERR_ARG, "instruction and output cannot be the same field ('%s')", map->output);
    return HL_OK;
}

hl_status hl_field_map_parse(hl_field_map *map, const char *spec) {
    hl_field_map m = *map;
    const char *p = spec;
    if (!p || !*p)
        return hl_fail(HL_ERR_ARG, "empty field map; expected e.g. instruction=question,output=answer");
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (!eq)
            return hl_fail(HL_ERR_ARG, "field map item '%.*s' has no '=' (expected ROLE=FIELD, e.g. output=answer)",
                           (int)len, p);
        size_t klen = (size_t)(eq - p), vlen = len - klen - 1;
        char val[64];
        if (vlen >= sizeof val)
            return hl_fail(HL_ERR_ARG, "field name '%.*s' is too long", (int)vlen, eq + 1);
        memcpy(val, eq + 1, vlen);
        val[vlen] = '\0';
        char *dst = NULL;
        if (klen == 11 && !strncmp(p, "instruction", 11))
            dst = m.instruction;
        else if (klen == 5 && !strncmp(p, "input", 5))
            dst = m.input;
        else if (klen == 6 && !strncmp(p, "output", 6))
            dst = m.output;
        else
            return hl_fail(HL_ERR_ARG, "unknown role '%.*s' in field map (roles: instruction, input, output)",
                           (int)klen, p);
        memcpy(dst, val, vlen + 1);
        p += len;
        if (*p == ',')
            p++;
    }
    if (!m.instruction[0] || !m.output[0])
        return hl_fail(HL_ERR_ARG, "field map needs instruction= and output= (got '%s')", spec);
    HL_TRY(hl_field_map_set(map, m.instruction, m.input, m.output));
    return HL_OK;
}

/* Known layouts, tried in order on the first object that matches one: the first two
 * names must be present, the third (input) is optional. */
static const struct {
    const char *schema, *instruction, *output, *input;
} k_schemas[] = {
    {"alpaca", "instruction", "output", "input"},
    {"dolly", "instruction", "response", "context"},
    {"gsm8k", "question", "answer", ""},
    {"bbh", "input", "target", ""},
    {"flan", "inputs", "targets", ""},
    {"humaneval", "prompt", "canonical_solution", ""},
    {"prompt-completion", "prompt", "completion", ""},
    {"prompt-response", "prompt", "response", ""},
};

static int detect_schema(hl_dataset *ds, const cJSON *obj) {
    for (size_t i = 0; i < sizeof k_schemas / sizeof k_schemas[0]; i++) {
        if (cJSON_GetObjectItemCaseSensitive(obj, k_schemas[i].instruction) &&
            cJSON_GetObjectItemCaseSensitive(obj, k_schemas[i].output)) {
            hl_field_map_set(&ds->map, k_schemas[i].instruction, k_schemas[i].input, k_schemas[i].output);
            snprintf(ds->schema, sizeof ds->schema, "%s", k_schemas[i].schema);
            return 1;
        }
    }
    return 0;
}

/* ---- issues and field statistics --------------------------------------------------- */

static void add_issue(hl_dataset *ds, uint32_t line, uint32_t index, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void add_issue(hl_dataset *ds, uint32_t line, uint32_t index, const char *fmt, ...) {
    ds->n_malformed++;
    if (ds->n_issues >= HL_RECORDS_MAX_ISSUES)
        return;
    if (ds->n_issues == ds->issues_cap_) {
        size_t cap = ds->issues_cap_ ? ds->issues_cap_ * 4 : 16;
        if (cap > HL_RECORDS_MAX_ISSUES)
            cap = HL_RECORDS_MAX_ISSUES;
        hl_record_issue *ni = realloc(ds->issues, cap * sizeof *ni);
        if (!ni)
            return;
        ds->issues = ni;
        ds->issues_cap_ = cap;
    }
    hl_record_issue *is = &ds->issues[ds->n_issues++];
    memset(is, 0, sizeof *is);
    is->line = line;
    is->index = index;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(is->reason, sizeof is->reason, fmt, ap);
    va_end(ap);
}

static int is_empty_value(const cJSON *v) {
    if (cJSON_IsNull(v))
        return 1;
    if (cJSON_IsString(v))
        return !v->valuestring || !v->valuestring[0];
    if (cJSON_IsArray(v) || cJSON_IsObject(v))
        return v->child == NULL;
    return 0;
}

static void count_fields(hl_dataset *ds, const cJSON *obj) {
    for (const cJSON *c = obj->child; c; c = c->next) {
        if (!c->string)
            continue;
        int k;
        for (k = 0; k < ds->n_fields; k++)
            if (!strcmp(ds->fields[k].name, c->string))
                break;
        if (k == ds->n_fields) {
            if (ds->n_fields >= HL_RECORDS_MAX_FIELDS || strlen(c->string) >= sizeof ds->fields[0].name) {
                ds->n_other_field_keys++;
                continue;
            }
            snprintf(ds->fields[k].name, sizeof ds->fields[k].name, "%s", c->string);
            ds->n_fields++;
        }
        ds->fields[k].present++;
        if (is_empty_value(c))
            ds->fields[k].empty++;
    }
}

static const char *type_name(const cJSON *v) {
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsBool(v))
        return "a boolean";
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsArray(v))
        return "an array";
    if (cJSON_IsObject(v))
        return "an object";
    return "invalid";
}

/* ---- one parsed value → one record --------------------------------------------------- */

typedef struct {
    size_t cap;
} rec_store;

static int push_record(hl_dataset *ds, rec_store *rs, const hl_record *r) {
    if (ds->n_records == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 64;
        hl_record *nr = realloc(ds->records, cap * sizeof *nr);
        if (!nr)
            return 0;
        ds->records = nr;
        rs->cap = cap;
    }
    ds->records[ds->n_records++] = *r;
    return 1;
}

/* Returns 0 on out-of-memory (fatal), 1 otherwise (record added or issue noted). */
static int take_value(hl_dataset *ds, rec_store *rs, const cJSON *v, uint32_t line, uint32_t index,
                      int map_given, const char *where) {
    if (!cJSON_IsObject(v)) {
        add_issue(ds, line, index, "%sexpected a JSON object, got %s", where, type_name(v));
        return 1;
    }
    ds->n_objects++;
    count_fields(ds, v);
    if (!map_given && !ds->map.instruction[0] && !detect_schema(ds, v)) {
        char keys[80] = "";
        size_t used = 0;
        for (const cJSON *c = v->child; c && used + 1 < sizeof keys; c = c->next) {
            int w = snprintf(keys + used, sizeof keys - used, "%s%s", used ? "," : "", c->string ? c->string : "?");
            if (w < 0)
                break;
            used += (size_t)w;
        }
        add_issue(ds, line, index, "%sunknown field layout (keys: %.60s); give a field map", where, keys);
        return 1;
    }
    const char *roles[3] = {"instruction", "input", "output"};
    const char *names[3] = {ds->map.instruction, ds->map.input, ds->map.output};
    const char *vals[3] = {"", "", ""};
    size_t lens[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        if (!names[i][0])
            continue; /* no input field in this layout */
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(v, names[i]);
        if (!f || (i == 1 && cJSON_IsNull(f))) {
            if (i == 1)
                continue; /* input is optional */
            add_issue(ds, line, index, "%smissing field '%.40s' (%s)", where, names[i], roles[i]);
            return 1;
        }
        if (!cJSON_IsString(f) || !f->valuestring) {
            add_issue(ds, line, index, "%sfield '%.40s' is %s, expected a string", where, names[i], type_name(f));
            return 1;
        }
        vals[i] = f->valuestring;
        lens[i] = strlen(f->valuestring);
        if (lens[i] > UINT32_MAX - 1) {
            add_issue(ds, line, index, "%sfield '%.40s' is longer than 4 GiB", where, names[i]);
            return 1;
        }
    }
    hl_record r = {0};
    /* JSON escapes only shrink text, so the file size (+ NULs) bounds all strings */
    size_t hint = (size_t)ds->file_bytes + 3 * 64;
    r.instruction = arena_copy(ds, vals[0], lens[0], hint);
    r.input = arena_copy(ds, vals[1], lens[1], hint);
    r.output = arena_copy(ds, vals[2], lens[2], hint);
    if (!r.instruction || !r.input || !r.output)
        return 0;
    r.instruction_len = (uint32_t)lens[0];
    r.input_len = (uint32_t)lens[1];
    r.output_len = (uint32_t)lens[2];
    r.line = line;
    r.index = index;
    if (ds->tag_field[0]) {
        /* the label of a mixture: a string, or a number kept as the file spells it */
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(v, ds->tag_field);
        char num[64];
        const char *tv = NULL;
        if (cJSON_IsString(f) && f->valuestring) {
            tv = f->valuestring;
        } else if (cJSON_IsNumber(f)) {
            snprintf(num, sizeof num, "%.17g", f->valuedouble);
            tv = num;
        }
        if (tv) {
            size_t tl = strlen(tv);
            if (tl > 1024)
                tl = 1024; /* a label, not a text: longer values are cut */
            r.tag = arena_copy(ds, tv, tl, hint);
            if (!r.tag)
                return 0;
        }
    }
    return push_record(ds, rs, &r);
}

/* ---- the three layouts -------------------------------------------------------------- */

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Parse exactly one JSON value spanning [s, s+n) (surrounding whitespace allowed).
 * On failure *col gets the 1-based byte column of the error within the slice. */
static cJSON *parse_slice(const char *s, size_t n, size_t *col) {
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    if (!v) {
        *col = (end && end >= s && end <= s + n) ? (size_t)(end - s) + 1 : 1;
        return NULL;
    }
    const char *e = s + n;
    if (end && end >= s && end <= e) {
        for (const char *p = end; p < e; p++)
            if (!is_ws(*p)) {
                *col = (size_t)(p - s) + 1;
                cJSON_Delete(v);
                return NULL;
            }
    }
    return v;
}

static hl_status parse_lines(hl_dataset *ds, rec_store *rs, const char *data, size_t len, int map_given) {
    ds->format = HL_RECORDS_JSONL;
    const char *p = data, *end = data + len;
    uint32_t line = 0, index = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        line++;
        const char *a = p, *b = le;
        while (a < b && is_ws(*a))
            a++;
        while (b > a && is_ws(b[-1]))
            b--;
        if (a < b) {
            size_t col = 0;
            cJSON *v = parse_slice(a, (size_t)(b - a), &col);
            if (!v) {
                add_issue(ds, line, index, "bad JSON near column %zu", col + (size_t)(a - p));
            } else {
                int ok = take_value(ds, rs, v, line, index, map_given, "");
                cJSON_Delete(v);
                if (!ok)
                    return hl_fail(HL_ERR_NOMEM, "out of memory reading %s", ds->path);
            }
            index++;
        }
        p = nl ? nl + 1 : end;
    }
    return HL_OK;
}

/* A JSON array of objects, scanned element by element so that each element is parsed on
 * its own (bounded memory per element, a line number for every error, and a bad element
 * does not lose the rest of the file). */
static hl_status parse_array(hl_dataset *ds, rec_store *rs, const char *data, size_t len, const char *open,
                             int map_given) {
    ds->format = HL_RECORDS_JSON_ARRAY;
    const char *p = open + 1, *end = data + len;
    uint32_t line = 1, index = 0;
    for (const char *q = data; q < open; q++)
        line += (*q == '\n');
    for (;;) {
        while (p < end && is_ws(*p))
            line += (*p++ == '\n');
        if (p >= end) {
            add_issue(ds, line, index, "the array is not closed (missing ']')");
            return HL_OK;
        }
        if (*p == ']') {
            p++;
            break;
        }
        const char *s = p;
        uint32_t s_line = line;
        int depth = 0, in_str = 0, done = 0;
        while (p < end && !done) {
            char c = *p;
            if (in_str) {
                if (c == '\\')
                    p++; /* skip the escaped byte (bounds-checked by the loop condition) */
                else if (c == '"')
                    in_str = 0;
                else if (c == '\n')
                    line++;
            } else if (c == '"') {
                in_str = 1;
            } else if (c == '{' || c == '[') {
                depth++;
            } else if (c == '}' || c == ']') {
                if (depth == 0)
                    done = 1; /* the closing ']' of the outer array */
                else
                    depth--;
            } else if (c == ',' && depth == 0) {
                done = 1;
            } else if (c == '\n') {
                line++;
            }
            if (!done)
                p++;
        }
        if (p > end)
            p = end;
        if (!done) {
            add_issue(ds, s_line, index, "element is not terminated before the end of the file");
            return HL_OK;
        }
        const char *e = p;
        while (e > s && is_ws(e[-1]))
            e--;
        if (e == s) {
            add_issue(ds, s_line, index, "empty array element");
        } else {
            size_t col = 0;
            cJSON *v = parse_slice(s, (size_t)(e - s), &col);
            if (!v) {
                add_issue(ds, s_line, index, "bad JSON in array element (byte %zu of the element)", col);
            } else {
                int ok = take_value(ds, rs, v, s_line, index, map_given, "");
                cJSON_Delete(v);
                if (!ok)
                    return hl_fail(HL_ERR_NOMEM, "out of memory reading %s", ds->path);
            }
        }
        index++;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == ']') {
            p++;
            break;
        }
        /* '}' at depth 0: a stray closer */
        add_issue(ds, line, index, "unexpected '%c' in the array", *p);
        return HL_OK;
    }
    while (p < end && is_ws(*p))
        p++;
    if (p < end)
        add_issue(ds, line, index, "unexpected bytes after the closing ']'");
    return HL_OK;
}

static hl_status parse_examples(hl_dataset *ds, rec_store *rs, const cJSON *root, int map_given) {
    ds->format = HL_RECORDS_JSON_EXAMPLES;
    const cJSON *ex = NULL;
    const char *keys[] = {"examples", "data", "instances", "rows"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0] && !ex; i++) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, keys[i]);
        if (cJSON_IsArray(c))
            ex = c;
    }
    if (!ex) {
        /* a single object: one record (a one-line JSON lines file) */
        ds->format = HL_RECORDS_JSONL;
        if (!take_value(ds, rs, root, 1, 0, map_given, ""))
            return hl_fail(HL_ERR_NOMEM, "out of memory reading %s", ds->path);
        return HL_OK;
    }
    uint32_t index = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, ex) {
        char where[48];
        snprintf(where, sizeof where, "%s[%u]: ", ex->string ? ex->string : "examples", index);
        /* rows-API pages wrap each record as {"row_idx": i, "row": {...}} */
        const cJSON *inner = cJSON_GetObjectItemCaseSensitive(v, "row");
        if (cJSON_IsObject(inner) && cJSON_GetObjectItemCaseSensitive(v, "row_idx"))
            v = inner;
        if (!take_value(ds, rs, v, 0, index, map_given, where))
            return hl_fail(HL_ERR_NOMEM, "out of memory reading %s", ds->path);
        index++;
    }
    return HL_OK;
}

/* ---- entry points ------------------------------------------------------------------- */

void hl_dataset_free(hl_dataset *ds) {
    if (!ds)
        return;
    free(ds->path);
    free(ds->records);
    free(ds->issues);
    arena_free(ds->arena_);
    memset(ds, 0, sizeof *ds);
}

const hl_record *hl_dataset_get(const hl_dataset *ds, size_t i) {
    return (ds && i < ds->n_records) ? &ds->records[i] : NULL;
}

hl_status hl_records_parse(hl_dataset *ds, const char *data, size_t len, const char *name,
                           const hl_records_options *opts) {
    memset(ds, 0, sizeof *ds);
    name = name ? name : "(memory)";
    ds->path = malloc(strlen(name) + 1);
    if (!ds->path)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    strcpy(ds->path, name);
    ds->file_bytes = len;
    int map_given = opts && opts->map;
    if (opts && opts->tag_field && opts->tag_field[0]) {
        if (strlen(opts->tag_field) >= sizeof ds->tag_field) {
            hl_dataset_free(ds);
            return hl_fail(HL_ERR_ARG, "source field name '%.40s...' is too long (max 63 bytes)", opts->tag_field);
        }
        snprintf(ds->tag_field, sizeof ds->tag_field, "%s", opts->tag_field);
    }
    if (map_given) {
        ds->map = *opts->map;
        snprintf(ds->schema, sizeof ds->schema, "custom");
    }
    rec_store rs = {0};

    const char *p = data, *end = data + len;
    if (len >= 3 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB && (unsigned char)p[2] == 0xBF)
        p += 3; /* UTF-8 byte order mark */
    const char *first = p;
    while (first < end && is_ws(*first))
        first++;
    hl_status st = HL_OK;
    if (first == end) {
        st = hl_fail(HL_ERR_FORMAT, "%s: no records: the file is empty", name);
    } else if (*first == '[') {
        st = parse_array(ds, &rs, data, len, first, map_given);
    } else if (*first == '{') {
        /* One JSON value for the whole file (BBH task file, single record)? Otherwise
         * JSON lines: the first value then ends before the end of the file. */
        const char *vend = NULL;
        cJSON *root = cJSON_ParseWithLengthOpts(first, (size_t)(end - first), &vend, 0);
        int whole = 0;
        if (root && vend && vend >= first && vend <= end) {
            whole = 1;
            for (const char *q = vend; q < end; q++)
                if (!is_ws(*q)) {
                    whole = 0;
                    break;
                }
        }
        if (whole)
            st = parse_examples(ds, &rs, root, map_given);
        else
            st = parse_lines(ds, &rs, p, (size_t)(end - p), map_given);
        cJSON_Delete(root);
    } else {
        st = parse_lines(ds, &rs, p, (size_t)(end - p), map_given);
    }
    if (st == HL_OK && ds->n_records == 0) {
        if (ds->n_issues > 0) {
            const hl_record_issue *is = &ds->issues[0];
            if (is->line)
                st = hl_fail(HL_ERR_FORMAT, "%s: no usable record (%zu malformed; first at line %u: %s)", name,
                             ds->n_malformed, is->line, is->reason);
            else
                st = hl_fail(HL_ERR_FORMAT, "%s: no usable record (%zu malformed; first: %s)", name,
                             ds->n_malformed, is->reason);
        } else {
            st = hl_fail(HL_ERR_FORMAT, "%s: no records (an empty list?)", name);
        }
    }
    if (st != HL_OK) {
        hl_dataset_free(ds);
        return st;
    }
    /* Shrink the record array to its size: datasets live for a whole training run. */
    hl_record *fit = realloc(ds->records, ds->n_records * sizeof *fit);
    if (fit)
        ds->records = fit;
    return HL_OK;
}

hl_status hl_records_load(hl_dataset *ds, const char *path, const hl_records_options *opts) {
    char *data = NULL;
    size_t len = 0;
    int gz = 0;
    memset(ds, 0, sizeof *ds);
    HL_TRY(hl_textfile_read(path, &data, &len, &gz));
    hl_status st = hl_records_parse(ds, data, len, path, opts);
    free(data);
    if (st == HL_OK)
        ds->gzipped = gz;
    return st;
}
