/* Loading BBH: DIR/data/<task>.json (examples) and DIR/cot-prompts/<task>.txt (exemplars).
 * Every byte comes from outside, so parsing is bounds-checked and errors name file and field. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/base/fileio.h"
#include "core/eval/bbh/bbh.h"
#include "core/base/datadir.h"

/* Larger than any real file (the biggest data file is ~0.5 MB); protects against
 * pointing --data at something huge. */
#define BBH_MAX_FILE_BYTES (64u << 20)

static char *dup_range(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* The data-folder rule lives in one place: core/base/datadir.c (hl_data_dir). */
hl_status hl_bbh_default_dir(char *out, size_t out_size) {
    char dir[4096];
    hl_status st = hl_data_dir(dir, sizeof dir);
    if (st)
        return hl_fail_context(st, "BBH data folder");
    int n = snprintf(out, out_size, "%s/bbh", dir);
    if (n < 0 || (size_t)n >= out_size)
        return hl_fail(HL_ERR_RANGE, "data directory path too long");
    return HL_OK;
}

static hl_status read_file(const char *path, char **buf, size_t *len) {
    return hl_file_read_all(path, BBH_MAX_FILE_BYTES, buf, len);
}

void hl_bbh_examples_free(hl_bbh_example *examples, int n) {
    if (!examples)
        return;
    for (int i = 0; i < n; i++) {
        free(examples[i].input);
        free(examples[i].target);
    }
    free(examples);
}

hl_status hl_bbh_parse_task_json(const char *buf, size_t len, const char *what, hl_bbh_example **examples,
                                 int *n_examples) {
    *examples = NULL;
    *n_examples = 0;
    cJSON *root = cJSON_ParseWithLength(buf, len);
    if (!root)
        return hl_fail(HL_ERR_FORMAT, "%s: not valid JSON (expected {\"examples\": [{\"input\", \"target\"}, ...]})",
                       what);
    hl_status st = HL_OK;
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(root, "examples");
    if (!cJSON_IsObject(root) || !cJSON_IsArray(ex)) {
        st = hl_fail(HL_ERR_FORMAT, "%s: no \"examples\" array at the top level", what);
        goto done;
    }
    int n = cJSON_GetArraySize(ex);
    if (n <= 0) {
        st = hl_fail(HL_ERR_FORMAT, "%s: \"examples\" is empty", what);
        goto done;
    }
    hl_bbh_example *out = calloc((size_t)n, sizeof *out);
    if (!out) {
        st = hl_fail(HL_ERR_NOMEM, "out of memory parsing %s", what);
        goto done;
    }
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, ex) {
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(e, "input");
        const cJSON *tg = cJSON_GetObjectItemCaseSensitive(e, "target");
        if (!cJSON_IsString(in) || !cJSON_IsString(tg)) {
            hl_bbh_examples_free(out, i);
            st = hl_fail(HL_ERR_FORMAT, "%s: examples[%d] needs string fields \"input\" and \"target\"", what, i);
            goto done;
        }
        out[i].input = strdup(in->valuestring);
        out[i].target = strdup(tg->valuestring);
        if (!out[i].input || !out[i].target) {
            hl_bbh_examples_free(out, i + 1);
            st = hl_fail(HL_ERR_NOMEM, "out of memory parsing %s", what);
            goto done;
        }
        i++;
    }
    *examples = out;
    *n_examples = i;
done:
    cJSON_Delete(root);
    return st;
}

static const char *find_bytes(const char *h, size_t hn, const char *needle) {
    size_t nn = strlen(needle);
    if (nn == 0 || nn > hn)
        return NULL;
    return memmem(h, hn, needle, nn);
}

static const char *find_last_bytes(const char *h, size_t hn, const char *needle) {
    size_t nn = strlen(needle);
    if (nn == 0 || nn > hn)
        return NULL;
    for (size_t i = hn - nn + 1; i-- > 0;)
        if (!memcmp(h + i, needle, nn))
            return h + i;
    return NULL;
}

/* Answer-only form of the exemplars (docs/bbh-eval.md §2): in each exemplar
 * "Q: ...\nA: Let's think step by step.<reasoning> So the answer is X." becomes "Q: ...\nA: X". */
static hl_status build_ao_body(const char *body, size_t n, const char *what, char **ao_body) {
    static const char sep[] = "\n\nQ: ";
    static const char cot_a[] = "\nA: Let's think step by step.";
    static const char ans[] = "So the answer is ";
    const char *first = find_bytes(body, n, sep);
    if (!first)
        return hl_fail(HL_ERR_FORMAT, "%s: no exemplar found (expected \"\\n\\nQ: \" after the task description)", what);
    char *out = malloc(n + 1); /* the AO text is never longer than the CoT text */
    if (!out)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    size_t o = (size_t)(first - body);
    memcpy(out, body, o);
    const char *p = first;
    const char *end = body + n;
    int k = 0;
    while (p < end) {
        /* exemplar k spans [p, next) where p points at "\n\nQ: " */
        const char *next = find_bytes(p + 2, (size_t)(end - p - 2), sep);
        if (!next)
            next = end;
        const char *a = find_bytes(p, (size_t)(next - p), cot_a);
        const char *s = find_last_bytes(p, (size_t)(next - p), ans);
        if (!a || !s || s < a) {
            free(out);
            return hl_fail(HL_ERR_FORMAT,
                           "%s: exemplar %d lacks \"A: Let's think step by step.\" or \"So the answer is \"", what, k + 1);
        }
        size_t qa = (size_t)(a - p) + 4; /* through "\nA: " minus the trailing space */
        memcpy(out + o, p, qa - 1);      /* "\n\nQ: ...\nA:" */
        o += qa - 1;
        const char *x = s + strlen(ans);
        size_t xs, xn;
        hl_bbh_py_strip(x, (size_t)(next - x), &xs, &xn);
        x += xs;
        if (xn > 0 && x[xn - 1] == '.')
            xn--;
        out[o++] = ' ';
        memcpy(out + o, x, xn);
        o += xn;
        p = next;
        k++;
    }
    out[o] = '\0';
    *ao_body = out;
    return HL_OK;
}

hl_status hl_bbh_parse_cot_prompt(const char *buf, size_t len, const char *what, char **cot_body, char **ao_body) {
    *cot_body = NULL;
    *ao_body = NULL;
    /* Drop everything up to and including the first "-----\n" (canary line + separator). */
    const char *dash = find_bytes(buf, len, "-----\n");
    if (!dash)
        return hl_fail(HL_ERR_FORMAT, "%s: no \"-----\" line after the canary (is this a BBH cot-prompts file?)", what);
    const char *b = dash + 6;
    size_t n = len - (size_t)(b - buf);
    if (memchr(b, '\0', n))
        return hl_fail(HL_ERR_FORMAT, "%s: contains a NUL byte", what);
    char *cot = dup_range(b, n);
    if (!cot)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    hl_status st = build_ao_body(cot, n, what, ao_body);
    if (st != HL_OK) {
        free(cot);
        return st;
    }
    *cot_body = cot;
    return HL_OK;
}

static void task_free(hl_bbh_task_data *td) {
    free(td->cot_body);
    free(td->ao_body);
    hl_bbh_examples_free(td->examples, td->n_examples);
    memset(td, 0, sizeof *td);
}

void hl_bbh_free(hl_bbh_set *set) {
    for (int t = 0; t < HL_BBH_N_TASKS; t++)
        task_free(&set->tasks[t]);
}

static hl_status load_task(hl_bbh_set *set, int t) {
    hl_bbh_task_data *td = &set->tasks[t];
    const char *name = hl_bbh_task_name(t);
    char path[4600];
    char *buf = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/data/%s.json", set->dir, name);
    HL_TRY(read_file(path, &buf, &len));
    hl_status st = hl_bbh_parse_task_json(buf, len, path, &td->examples, &td->n_examples);
    free(buf);
    if (st != HL_OK)
        return st;
    snprintf(path, sizeof path, "%s/cot-prompts/%s.txt", set->dir, name);
    st = read_file(path, &buf, &len);
    if (st != HL_OK)
        return st;
    st = hl_bbh_parse_cot_prompt(buf, len, path, &td->cot_body, &td->ao_body);
    free(buf);
    if (st != HL_OK)
        return st;
    td->loaded = 1;
    return HL_OK;
}

hl_status hl_bbh_load(hl_bbh_set *set, const char *dir, const unsigned char *mask) {
    memset(set, 0, sizeof *set);
    if (dir && *dir) {
        if (strlen(dir) >= sizeof set->dir)
            return hl_fail(HL_ERR_RANGE, "BBH directory path too long");
        strcpy(set->dir, dir);
    } else {
        HL_TRY(hl_bbh_default_dir(set->dir, sizeof set->dir));
    }
    char probe[4200];
    struct stat st;
    snprintf(probe, sizeof probe, "%s/data", set->dir);
    if (stat(probe, &st) != 0 || !S_ISDIR(st.st_mode))
        return hl_fail(HL_ERR_NOT_FOUND,
                       "no BBH data in %s (expected %s/data/<task>.json and %s/cot-prompts/<task>.txt): "
                       "the catalog's bbh entry is not downloaded",
                       set->dir, set->dir, set->dir);
    for (int t = 0; t < HL_BBH_N_TASKS; t++) {
        if (mask && !mask[t])
            continue;
        hl_status s = load_task(set, t);
        if (s != HL_OK) {
            hl_bbh_free(set);
            return s;
        }
    }
    return HL_OK;
}
