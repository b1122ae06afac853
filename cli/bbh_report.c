/* BBH data folder and score table for the CLI (see bbh_report.h). */
#include "cli/bbh_report.h"

#include "core/base/datadir.h"

/* --data, else the data folder (core/base/datadir.h: hl_data_dir()) + "/bbh". */
const char *hl_bbh_cli_data_dir(const char *given, char *buf, size_t size) {
    if (given && *given)
        return given;
    char root[4096];
    if (hl_data_dir(root, sizeof root) != HL_OK)
        return NULL; /* the library falls back to the same rule itself */
    snprintf(buf, size, "%s/bbh", root);
    return buf;
}

hl_status hl_bbh_cli_load(hl_bbh_set *set, const char *given, const unsigned char *mask) {
    char buf[4200];
    hl_status st = hl_bbh_load(set, hl_bbh_cli_data_dir(given, buf, sizeof buf), mask);
    if (st == HL_ERR_NOT_FOUND) {
        char msg[1200];
        snprintf(msg, sizeof msg, "%s", hl_last_error());
        hl_fail(st, "%s; download it with `hydralora data get bbh`, or pass --data DIR", msg);
    }
    return st;
}

static const char *rule_title(hl_bbh_rule r) {
    switch (r) {
    case HL_BBH_RULE_PAPER:
        return "paper (Suzgun et al. 2022: last \"So the answer is\", exact match)";
    case HL_BBH_RULE_LMEVAL:
        return "lm-eval (lm-evaluation-harness bbh: until Q/\\n\\n, regex \"the answer is (.*)(?=.)\", exact match)";
    default:
        return "opencompass (2024 bbh postprocess: multiple-choice letter / free-form first line)";
    }
}

void hl_bbh_print_summary(FILE *out, const hl_bbh_summary *s, const hl_bbh_summary *cmp, const char *name_a,
                          const char *name_b) {
    fprintf(out, "rule: %s\nmode: %s\n\n", rule_title(s->rule), hl_bbh_mode_name(s->mode));
    if (cmp) {
        fprintf(out, "%-42s %6s %9s %9s %8s\n", "task", "n", name_a, name_b, "diff");
    } else {
        fprintf(out, "%-42s %6s %8s %9s\n", "task", "n", "correct", "accuracy");
    }
    for (int t = 0; t < HL_BBH_N_TASKS; t++) {
        int in_a = s->n[t] > 0, in_b = cmp && cmp->n[t] > 0;
        if (!in_a && !in_b)
            continue;
        char na[16] = "-", nb[16] = "-", d[16] = "";
        if (in_a)
            snprintf(na, sizeof na, "%.2f", s->acc[t]);
        if (cmp) {
            if (in_b)
                snprintf(nb, sizeof nb, "%.2f", cmp->acc[t]);
            if (in_a && in_b)
                snprintf(d, sizeof d, "%+.2f", cmp->acc[t] - s->acc[t]);
            fprintf(out, "%-42s %6d %9s %9s %8s\n", hl_bbh_task_name(t), in_a ? s->n[t] : cmp->n[t], na, nb, d);
        } else {
            const char *partial = s->expected[t] > 0 && s->n[t] != s->expected[t] ? " (partial)" : "";
            fprintf(out, "%-42s %6d %8d %9s%s\n", hl_bbh_task_name(t), s->n[t], s->correct[t], na, partial);
        }
    }
    char l1[96], l2[96], l3[96];
    snprintf(l1, sizeof l1, "macro over %d task%s (paper's average)", s->n_groups, s->n_groups == 1 ? "" : "s");
    snprintf(l2, sizeof l2, "mean over %d subtask%s (OpenCompass/HydraLoRA)", s->n_subtasks,
             s->n_subtasks == 1 ? "" : "s");
    snprintf(l3, sizeof l3, "micro over %ld example%s (lm-eval)", s->n_total, s->n_total == 1 ? "" : "s");
    fprintf(out, "\n");
    if (cmp) {
        fprintf(out, "%-49s %9.2f %9.2f %+8.2f\n", l1, s->macro_tasks, cmp->macro_tasks,
                cmp->macro_tasks - s->macro_tasks);
        fprintf(out, "%-49s %9.2f %9.2f %+8.2f\n", l2, s->mean_subtasks, cmp->mean_subtasks,
                cmp->mean_subtasks - s->mean_subtasks);
        fprintf(out, "%-49s %9.2f %9.2f %+8.2f\n", l3, s->micro, cmp->micro, cmp->micro - s->micro);
    } else {
        fprintf(out, "%-58s %9.2f\n", l1, s->macro_tasks);
        fprintf(out, "%-58s %9.2f\n", l2, s->mean_subtasks);
        fprintf(out, "%-58s %9.2f\n", l3, s->micro);
        if (!s->complete)
            fprintf(out, "(not every subtask is fully scored: the averages cover only what is shown)\n");
    }
}
