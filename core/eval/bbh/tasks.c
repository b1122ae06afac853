/* The fixed BBH task table: names, paper task groups, OpenCompass split, convention settings. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/eval/bbh/bbh.h"

typedef struct {
    const char *name;
    int group;    /* index into group_names */
    int mcq;      /* OpenCompass bbh_multiple_choice_sets */
    int expected; /* examples in the upstream data file */
} task_row;

/* 23 paper tasks; the 3/5/7-object variants of two of them share a group. */
static const char *const group_names[HL_BBH_N_GROUPS] = {
    "boolean_expressions",      "causal_judgement",    "date_understanding",
    "disambiguation_qa",        "dyck_languages",      "formal_fallacies",
    "geometric_shapes",         "hyperbaton",          "logical_deduction",
    "movie_recommendation",     "multistep_arithmetic_two", "navigate",
    "object_counting",          "penguins_in_a_table", "reasoning_about_colored_objects",
    "ruin_names",               "salient_translation_error_detection", "snarks",
    "sports_understanding",     "temporal_sequences",  "tracking_shuffled_objects",
    "web_of_lies",              "word_sorting",
};

static const task_row tasks[HL_BBH_N_TASKS] = {
    {"boolean_expressions", 0, 0, 250},
    {"causal_judgement", 1, 0, 187},
    {"date_understanding", 2, 1, 250},
    {"disambiguation_qa", 3, 1, 250},
    {"dyck_languages", 4, 0, 250},
    {"formal_fallacies", 5, 0, 250},
    {"geometric_shapes", 6, 1, 250},
    {"hyperbaton", 7, 1, 250},
    {"logical_deduction_five_objects", 8, 1, 250},
    {"logical_deduction_seven_objects", 8, 1, 250},
    {"logical_deduction_three_objects", 8, 1, 250},
    {"movie_recommendation", 9, 1, 250},
    {"multistep_arithmetic_two", 10, 0, 250},
    {"navigate", 11, 0, 250},
    {"object_counting", 12, 0, 250},
    {"penguins_in_a_table", 13, 1, 146},
    {"reasoning_about_colored_objects", 14, 1, 250},
    {"ruin_names", 15, 1, 250},
    {"salient_translation_error_detection", 16, 1, 250},
    {"snarks", 17, 1, 178},
    {"sports_understanding", 18, 0, 250},
    {"temporal_sequences", 19, 1, 250},
    {"tracking_shuffled_objects_five_objects", 20, 1, 250},
    {"tracking_shuffled_objects_seven_objects", 20, 1, 250},
    {"tracking_shuffled_objects_three_objects", 20, 1, 250},
    {"web_of_lies", 21, 0, 250},
    {"word_sorting", 22, 0, 250},
};

const char *hl_bbh_task_name(int task) {
    return task >= 0 && task < HL_BBH_N_TASKS ? tasks[task].name : NULL;
}

int hl_bbh_task_index(const char *name) {
    if (!name)
        return -1;
    for (int t = 0; t < HL_BBH_N_TASKS; t++)
        if (!strcmp(tasks[t].name, name))
            return t;
    return -1;
}

int hl_bbh_task_group(int task) { return task >= 0 && task < HL_BBH_N_TASKS ? tasks[task].group : -1; }

const char *hl_bbh_group_name(int group) {
    return group >= 0 && group < HL_BBH_N_GROUPS ? group_names[group] : NULL;
}

int hl_bbh_task_is_multiple_choice(int task) {
    return task >= 0 && task < HL_BBH_N_TASKS ? tasks[task].mcq : 0;
}

int hl_bbh_task_expected_count(int task) {
    return task >= 0 && task < HL_BBH_N_TASKS ? tasks[task].expected : 0;
}

static const char *const mode_names[HL_BBH_MODE_COUNT] = {"cot", "ao", "zeroshot"};
static const char *const rule_names[HL_BBH_RULE_COUNT] = {"paper", "lm-eval", "opencompass"};

const char *hl_bbh_mode_name(hl_bbh_mode mode) {
    return (unsigned)mode < HL_BBH_MODE_COUNT ? mode_names[mode] : "?";
}

const char *hl_bbh_rule_name(hl_bbh_rule rule) {
    return (unsigned)rule < HL_BBH_RULE_COUNT ? rule_names[rule] : "?";
}

hl_status hl_bbh_mode_parse(const char *s, hl_bbh_mode *mode) {
    if (s && (!strcasecmp(s, "cot") || !strcasecmp(s, "cot-fewshot") || !strcasecmp(s, "3-shot-cot")))
        *mode = HL_BBH_MODE_COT;
    else if (s && (!strcasecmp(s, "ao") || !strcasecmp(s, "answer-only") || !strcasecmp(s, "direct") ||
                   !strcasecmp(s, "fewshot")))
        *mode = HL_BBH_MODE_AO;
    else if (s && (!strcasecmp(s, "zeroshot") || !strcasecmp(s, "zero-shot") || !strcasecmp(s, "0-shot")))
        *mode = HL_BBH_MODE_ZEROSHOT;
    else
        return hl_fail(HL_ERR_ARG, "unknown BBH mode '%s' (choose cot, ao or zeroshot)", s ? s : "(null)");
    return HL_OK;
}

hl_status hl_bbh_rule_parse(const char *s, hl_bbh_rule *rule) {
    if (s && !strcasecmp(s, "paper"))
        *rule = HL_BBH_RULE_PAPER;
    else if (s && (!strcasecmp(s, "lm-eval") || !strcasecmp(s, "lmeval") || !strcasecmp(s, "lm_eval") ||
                   !strcasecmp(s, "lm-evaluation-harness")))
        *rule = HL_BBH_RULE_LMEVAL;
    else if (s && (!strcasecmp(s, "opencompass") || !strcasecmp(s, "open-compass")))
        *rule = HL_BBH_RULE_OPENCOMPASS;
    else
        return hl_fail(HL_ERR_ARG, "unknown BBH rule '%s' (choose paper, lm-eval or opencompass)", s ? s : "(null)");
    return HL_OK;
}

hl_status hl_bbh_tasks_parse(const char *list, unsigned char mask[HL_BBH_N_TASKS]) {
    memset(mask, 0, HL_BBH_N_TASKS);
    if (!list || !*list || !strcmp(list, "all")) {
        memset(mask, 1, HL_BBH_N_TASKS);
        return HL_OK;
    }
    const char *p = list;
    int any = 0;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char name[128];
        if (n >= sizeof name)
            return hl_fail(HL_ERR_ARG, "task name too long in '%s'", list);
        memcpy(name, p, n);
        name[n] = '\0';
        if (n > 0) {
            int t = hl_bbh_task_index(name);
            if (t >= 0) {
                mask[t] = 1;
            } else {
                int hit = 0;
                for (int k = 0; k < HL_BBH_N_TASKS; k++)
                    if (!strcmp(group_names[tasks[k].group], name))
                        mask[k] = 1, hit = 1;
                if (!hit && strcmp(name, "all"))
                    return hl_fail(HL_ERR_ARG,
                                   "unknown BBH task '%s' (names are like boolean_expressions or "
                                   "logical_deduction_three_objects; `hydralora bbh tasks` lists them)",
                                   name);
                if (!strcmp(name, "all"))
                    memset(mask, 1, HL_BBH_N_TASKS);
            }
            any = 1;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    if (!any)
        return hl_fail(HL_ERR_ARG, "empty task list '%s'", list);
    return HL_OK;
}

void hl_bbh_rule_gen_settings(hl_bbh_rule rule, hl_bbh_mode mode, hl_bbh_gen_settings *out) {
    memset(out, 0, sizeof *out);
    switch (rule) {
    case HL_BBH_RULE_LMEVAL:
        /* bbh_cot_fewshot / bbh_fewshot: until ["</s>", "Q", "\n\n"] (+EOS); bbh_zeroshot:
         * ["</s>", "Q:", "<|im_end|>"]. max_gen_toks 1024 for all. */
        if (mode == HL_BBH_MODE_ZEROSHOT) {
            out->stop[0] = "</s>";
            out->stop[1] = "Q:";
            out->stop[2] = "<|im_end|>";
            out->n_stop = 3;
        } else {
            out->stop[0] = "</s>";
            out->stop[1] = "Q";
            out->stop[2] = "\n\n";
            out->n_stop = 3;
        }
        out->max_new_tokens = 1024;
        break;
    case HL_BBH_RULE_OPENCOMPASS:
        /* bbh_gen_98fba6: stopping_criteria ['Q:'], max_out_len 512. */
        out->stop[0] = "Q:";
        out->n_stop = 1;
        out->max_new_tokens = 512;
        break;
    case HL_BBH_RULE_PAPER:
    default:
        /* The published Codex generations end where the next exemplar would begin. The
         * paper gives no token cap; Codex never needed more than ~3.7k characters. */
        out->stop[0] = "\n\n";
        out->stop[1] = "Q:";
        out->n_stop = 2;
        out->max_new_tokens = 1024;
        break;
    }
}
