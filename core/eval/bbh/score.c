/* BBH scoring: per-subtask accuracy and the three averages, summaries as JSON, and
 * scoring of prediction files made elsewhere (JSON lines {"task","idx","prediction"}). */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/eval/bbh/bbh.h"

void hl_bbh_summary_init(hl_bbh_summary *s, hl_bbh_rule rule, hl_bbh_mode mode) {
    memset(s, 0, sizeof *s);
    s->rule = rule;
    s->mode = mode;
}

void hl_bbh_summary_add(hl_bbh_summary *s, int task, int correct) {
    if (task < 0 || task >= HL_BBH_N_TASKS)
        return;
    s->n[task]++;
    s->correct[task] += correct ? 1 : 0;
}

void hl_bbh_summary_finish(hl_bbh_summary *s, const hl_bbh_set *set) {
    double gsum[HL_BBH_N_GROUPS] = {0};
    int gcnt[HL_BBH_N_GROUPS] = {0};
    double sum = 0;
    s->n_subtasks = 0;
    s->n_groups = 0;
    s->n_total = 0;
    s->correct_total = 0;
    s->complete = 1;
    for (int t = 0; t < HL_BBH_N_TASKS; t++) {
        if (set)
            s->expected[t] = set->tasks[t].loaded ? set->tasks[t].n_examples : 0;
        if (s->n[t] <= 0) {
            s->acc[t] = 0;
            s->complete = 0;
            continue;
        }
        s->acc[t] = 100.0 * s->correct[t] / s->n[t];
        sum += s->acc[t];
        s->n_subtasks++;
        s->n_total += s->n[t];
        s->correct_total += s->correct[t];
        int g = hl_bbh_task_group(t);
        gsum[g] += s->acc[t];
        gcnt[g]++;
        if (s->expected[t] > 0 ? s->n[t] != s->expected[t] : s->n[t] != hl_bbh_task_expected_count(t))
            s->complete = 0;
    }
    double gtotal = 0;
    for (int g = 0; g < HL_BBH_N_GROUPS; g++)
        if (gcnt[g]) {
            gtotal += gsum[g] / gcnt[g];
            s->n_groups++;
        }
    s->mean_subtasks = s->n_subtasks ? sum / s->n_subtasks : 0;
    s->macro_tasks = s->n_groups ? gtotal / s->n_groups : 0;
    s->micro = s->n_total ? 100.0 * (double)s->correct_total / (double)s->n_total : 0;
}

hl_status hl_bbh_summary_to_json(const hl_bbh_summary *s, char **json) {
    *json = NULL;
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    cJSON_AddStringToObject(root, "rule", hl_bbh_rule_name(s->rule));
    cJSON_AddStringToObject(root, "mode", hl_bbh_mode_name(s->mode));
    cJSON *per = cJSON_AddObjectToObject(root, "per_task");
    cJSON *counts = cJSON_AddObjectToObject(root, "counts");
    for (int t = 0; per && counts && t < HL_BBH_N_TASKS; t++) {
        if (s->n[t] <= 0)
            continue;
        cJSON_AddNumberToObject(per, hl_bbh_task_name(t), s->acc[t]);
        cJSON *c = cJSON_AddObjectToObject(counts, hl_bbh_task_name(t));
        if (c) {
            cJSON_AddNumberToObject(c, "correct", s->correct[t]);
            cJSON_AddNumberToObject(c, "n", s->n[t]);
            cJSON_AddNumberToObject(c, "expected", s->expected[t]);
        }
    }
    cJSON *av = cJSON_AddObjectToObject(root, "averages");
    if (av) {
        cJSON_AddNumberToObject(av, "macro_23_tasks", s->macro_tasks);
        cJSON_AddNumberToObject(av, "mean_27_subtasks", s->mean_subtasks);
        cJSON_AddNumberToObject(av, "micro_examples", s->micro);
    }
    cJSON_AddNumberToObject(root, "n_subtasks", s->n_subtasks);
    cJSON_AddNumberToObject(root, "n_tasks", s->n_groups);
    cJSON_AddNumberToObject(root, "n_examples", (double)s->n_total);
    cJSON_AddNumberToObject(root, "n_correct", (double)s->correct_total);
    cJSON_AddBoolToObject(root, "complete", s->complete);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    *json = text;
    return HL_OK;
}

static int json_int(const cJSON *o, const char *key, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e9 || v->valuedouble != (int)v->valuedouble)
        return 0;
    *out = (int)v->valuedouble;
    return 1;
}

hl_status hl_bbh_summary_from_json(const char *json, size_t len, hl_bbh_summary *s) {
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root)
        return hl_fail(HL_ERR_FORMAT, "not valid JSON (expected a BBH summary)");
    hl_status st = HL_OK;
    const cJSON *o = root;
    const cJSON *nested = cJSON_GetObjectItemCaseSensitive(root, "scores");
    if (cJSON_IsObject(nested))
        o = nested;
    const cJSON *rule = cJSON_GetObjectItemCaseSensitive(o, "rule");
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(o, "mode");
    const cJSON *counts = cJSON_GetObjectItemCaseSensitive(o, "counts");
    hl_bbh_rule r;
    hl_bbh_mode m;
    if (!cJSON_IsString(rule) || !cJSON_IsString(mode) || !cJSON_IsObject(counts)) {
        st = hl_fail(HL_ERR_FORMAT, "not a BBH summary: needs \"rule\", \"mode\" and \"counts\"");
        goto done;
    }
    if ((st = hl_bbh_rule_parse(rule->valuestring, &r)) != HL_OK ||
        (st = hl_bbh_mode_parse(mode->valuestring, &m)) != HL_OK)
        goto done;
    hl_bbh_summary_init(s, r, m);
    const cJSON *c;
    cJSON_ArrayForEach(c, counts) {
        int t = hl_bbh_task_index(c->string);
        int n = 0, k = 0, e = 0;
        if (t < 0 || !cJSON_IsObject(c) || !json_int(c, "n", &n) || !json_int(c, "correct", &k) || k > n) {
            st = hl_fail(HL_ERR_FORMAT, "bad \"counts\" entry \"%s\" in BBH summary", c->string ? c->string : "?");
            goto done;
        }
        json_int(c, "expected", &e);
        s->n[t] = n;
        s->correct[t] = k;
        s->expected[t] = e;
    }
    hl_bbh_summary_finish(s, NULL);
done:
    cJSON_Delete(root);
    return st;
}

/* ---- prediction files --------------------------------------------------------------- */

static hl_status add_issue(hl_bbh_pred_file *pf, size_t *cap, long line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static hl_status add_issue(hl_bbh_pred_file *pf, size_t *cap, long line, const char *fmt, ...) {
    if (pf->n_issues == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        void *p = realloc(pf->issues, nc * sizeof *pf->issues);
        if (!p)
            return hl_fail(HL_ERR_NOMEM, "out of memory");
        pf->issues = p;
        *cap = nc;
    }
    hl_bbh_pred_issue *is = &pf->issues[pf->n_issues++];
    is->line = line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(is->msg, sizeof is->msg, fmt, ap);
    va_end(ap);
    return HL_OK;
}

void hl_bbh_predictions_free(hl_bbh_pred_file *pf) {
    for (size_t i = 0; i < pf->n; i++) {
        free(pf->preds[i].prediction);
        free(pf->preds[i].target);
    }
    free(pf->preds);
    free(pf->issues);
    memset(pf, 0, sizeof *pf);
}

typedef struct {
    size_t cap_preds, cap_issues;
} parse_caps;

hl_status hl_bbh_predictions_parse(const char *buf, size_t len, hl_bbh_pred_file *out) {
    memset(out, 0, sizeof *out);
    parse_caps caps = {0, 0};
    size_t pos = 0;
    long line = 0;
    while (pos < len) {
        line++;
        const char *s = buf + pos;
        const char *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        pos += n + (nl ? 1 : 0);
        size_t a = 0;
        while (a < n && (s[a] == ' ' || s[a] == '\t' || s[a] == '\r'))
            a++;
        if (a == n)
            continue; /* blank line */
        cJSON *o = cJSON_ParseWithLength(s, n);
        hl_status st = HL_OK;
        if (!o || !cJSON_IsObject(o)) {
            st = add_issue(out, &caps.cap_issues, line, "not a JSON object");
        } else {
            const cJSON *task = cJSON_GetObjectItemCaseSensitive(o, "task");
            const cJSON *idx = cJSON_GetObjectItemCaseSensitive(o, "idx");
            const cJSON *pred = cJSON_GetObjectItemCaseSensitive(o, "prediction");
            if (!pred) /* samples.jsonl of `eval bbh` names it "generation": rescoring with another rule */
                pred = cJSON_GetObjectItemCaseSensitive(o, "generation");
            const cJSON *tgt = cJSON_GetObjectItemCaseSensitive(o, "target");
            int t = cJSON_IsString(task) ? hl_bbh_task_index(task->valuestring) : -1;
            if (!cJSON_IsString(task))
                st = add_issue(out, &caps.cap_issues, line, "missing string field \"task\"");
            else if (t < 0)
                st = add_issue(out, &caps.cap_issues, line, "unknown task \"%.60s\"", task->valuestring);
            else if (!cJSON_IsNumber(idx) || idx->valuedouble < 0 || idx->valuedouble > 1e7 ||
                     idx->valuedouble != (double)(int)idx->valuedouble)
                st = add_issue(out, &caps.cap_issues, line, "\"idx\" must be a non-negative integer");
            else if (!cJSON_IsString(pred))
                st = add_issue(out, &caps.cap_issues, line, "missing string field \"prediction\" (or \"generation\")");
            else {
                if (out->n == caps.cap_preds) {
                    size_t nc = caps.cap_preds ? caps.cap_preds * 2 : 256;
                    void *p = realloc(out->preds, nc * sizeof *out->preds);
                    if (!p) {
                        cJSON_Delete(o);
                        hl_bbh_predictions_free(out);
                        return hl_fail(HL_ERR_NOMEM, "out of memory reading predictions");
                    }
                    out->preds = p;
                    caps.cap_preds = nc;
                }
                hl_bbh_pred *pr = &out->preds[out->n];
                memset(pr, 0, sizeof *pr);
                pr->task = t;
                pr->idx = (int)idx->valuedouble;
                pr->line = line;
                pr->prediction = strdup(pred->valuestring);
                pr->prediction_len = pr->prediction ? strlen(pr->prediction) : 0;
                if (cJSON_IsString(tgt))
                    pr->target = strdup(tgt->valuestring);
                if (!pr->prediction || (cJSON_IsString(tgt) && !pr->target)) {
                    free(pr->prediction);
                    free(pr->target);
                    cJSON_Delete(o);
                    hl_bbh_predictions_free(out);
                    return hl_fail(HL_ERR_NOMEM, "out of memory reading predictions");
                }
                out->n++;
            }
        }
        cJSON_Delete(o);
        if (st != HL_OK) {
            hl_bbh_predictions_free(out);
            return st;
        }
    }
    out->cap_issues = caps.cap_issues;
    return HL_OK;
}

hl_status hl_bbh_score_predictions(const hl_bbh_set *set, hl_bbh_pred_file *pf, hl_bbh_rule rule,
                                   hl_bbh_mode mode, hl_bbh_summary *summary, signed char *correct_out) {
    hl_bbh_summary_init(summary, rule, mode);
    unsigned char *seen[HL_BBH_N_TASKS] = {0};
    hl_status st = HL_OK;
    size_t cap = pf->cap_issues;
    for (int t = 0; t < HL_BBH_N_TASKS; t++)
        if (set->tasks[t].loaded && !(seen[t] = calloc((size_t)set->tasks[t].n_examples + 1, 1))) {
            st = hl_fail(HL_ERR_NOMEM, "out of memory");
            goto done;
        }
    for (size_t i = 0; i < pf->n; i++) {
        hl_bbh_pred *p = &pf->preds[i];
        const hl_bbh_task_data *td = &set->tasks[p->task];
        if (correct_out)
            correct_out[i] = -1;
        if (!td->loaded) {
            st = add_issue(pf, &cap, p->line, "task \"%s\" is not loaded", hl_bbh_task_name(p->task));
        } else if (p->idx >= td->n_examples) {
            st = add_issue(pf, &cap, p->line, "%s has %d examples; idx %d is out of range", hl_bbh_task_name(p->task),
                           td->n_examples, p->idx);
        } else if (seen[p->task][p->idx]) {
            st = add_issue(pf, &cap, p->line, "duplicate prediction for %s idx %d (first one kept)",
                           hl_bbh_task_name(p->task), p->idx);
        } else {
            const char *target = td->examples[p->idx].target;
            seen[p->task][p->idx] = 1;
            if (p->target && strcmp(p->target, target))
                st = add_issue(pf, &cap, p->line,
                               "its \"target\" differs from the data file's for %s idx %d (scored against the data "
                               "file)",
                               hl_bbh_task_name(p->task), p->idx);
            int ok = 0;
            if (st == HL_OK)
                st = hl_bbh_score_one(rule, mode, p->task, p->prediction, p->prediction_len, target, NULL, &ok);
            if (st == HL_OK) {
                hl_bbh_summary_add(summary, p->task, ok);
                if (correct_out)
                    correct_out[i] = (signed char)ok;
            }
        }
        if (st != HL_OK)
            goto done;
    }
    hl_bbh_summary_finish(summary, set);
done:
    pf->cap_issues = cap;
    for (int t = 0; t < HL_BBH_N_TASKS; t++)
        free(seen[t]);
    return st;
}
