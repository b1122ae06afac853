/* BBH prompt text for one example, per mode and convention (docs/bbh-eval.md §2, §3.3, §4). */
#include <stdlib.h>
#include <string.h>

#include "core/eval/bbh/bbh.h"

/* OpenCompass bbh_gen_5b92b0 / 98fba6 template prefix. */
static const char oc_prefix[] = "Follow the given examples and answer the question.\n";

hl_status hl_bbh_build_prompt(const hl_bbh_set *set, int task, int idx, hl_bbh_mode mode, hl_bbh_rule rule,
                              char **prompt, size_t *len) {
    *prompt = NULL;
    if (len)
        *len = 0;
    if (task < 0 || task >= HL_BBH_N_TASKS || !set->tasks[task].loaded)
        return hl_fail(HL_ERR_ARG, "BBH task %d is not loaded", task);
    const hl_bbh_task_data *td = &set->tasks[task];
    if (idx < 0 || idx >= td->n_examples)
        return hl_fail(HL_ERR_RANGE, "%s has %d examples; index %d is out of range", hl_bbh_task_name(task),
                       td->n_examples, idx);
    const char *input = td->examples[idx].input;
    const char *head = "", *body = "", *mid = "", *tail = "";
    switch (mode) {
    case HL_BBH_MODE_COT:
        body = td->cot_body;
        mid = "\n\nQ: ";
        tail = rule == HL_BBH_RULE_LMEVAL ? "\nA: Let's think step by step.\n" : "\nA: Let's think step by step.";
        break;
    case HL_BBH_MODE_AO:
        body = td->ao_body;
        mid = "\n\nQ: ";
        tail = "\nA:";
        break;
    case HL_BBH_MODE_ZEROSHOT:
    default:
        mid = "Q: ";
        tail = "\nA:";
        break;
    }
    if (rule == HL_BBH_RULE_OPENCOMPASS && mode != HL_BBH_MODE_ZEROSHOT)
        head = oc_prefix;
    size_t lh = strlen(head), lb = strlen(body), lm = strlen(mid), li = strlen(input), lt = strlen(tail);
    size_t n = lh + lb + lm + li + lt;
    char *p = malloc(n + 1);
    if (!p)
        return hl_fail(HL_ERR_NOMEM, "out of memory building a BBH prompt");
    char *w = p;
    memcpy(w, head, lh), w += lh;
    memcpy(w, body, lb), w += lb;
    memcpy(w, mid, lm), w += lm;
    memcpy(w, input, li), w += li;
    memcpy(w, tail, lt), w += lt;
    *w = '\0';
    *prompt = p;
    if (len)
        *len = n;
    return HL_OK;
}
