/* Scoring the BBH authors' published Codex generations must reproduce their 54 official
 * per-task accuracies (shared/datasets/bbh/reference/codex_official_metrics.tsv) with the
 * paper rule, and the lm-eval rule must give exactly the changes listed in docs/bbh-eval.md §7. */
#include <stdio.h>

#include "core/eval/bbh/bbh.h"
#include "tests/unit/hl_test.h"

static int score_file(const hl_bbh_set *set, const char *path, hl_bbh_rule rule, hl_bbh_mode mode,
                      hl_bbh_summary *s) {
    size_t len = 0;
    char *buf = hl_test_read_file(path, &len);
    CHECK(buf != NULL, "read %s", path);
    if (!buf)
        return 0;
    hl_bbh_pred_file pf;
    hl_status st = hl_bbh_predictions_parse(buf, len, &pf);
    free(buf);
    CHECK(st == HL_OK && pf.n == 6511 && pf.n_issues == 0, "parse %s: %zu preds %zu issues", path, pf.n, pf.n_issues);
    if (st != HL_OK)
        return 0;
    st = hl_bbh_score_predictions(set, &pf, rule, mode, s, NULL);
    CHECK(st == HL_OK && pf.n_issues == 0, "score %s: %s (%zu issues)", path, hl_last_error(), pf.n_issues);
    hl_bbh_predictions_free(&pf);
    return st == HL_OK;
}

int main(void) {
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/datasets/bbh", hl_test_shared_dir());
    hl_bbh_set set;
    if (hl_bbh_load(&set, dir, NULL) != HL_OK) {
        CHECK(0, "load %s: %s", dir, hl_last_error());
        return hl_test_finish();
    }
    hl_bbh_summary cot, ao, lm;
    snprintf(path, sizeof path, "%s/reference/codex_cot_predictions.jsonl", dir);
    int ok = score_file(&set, path, HL_BBH_RULE_PAPER, HL_BBH_MODE_COT, &cot);
    ok &= score_file(&set, path, HL_BBH_RULE_LMEVAL, HL_BBH_MODE_COT, &lm);
    snprintf(path, sizeof path, "%s/reference/codex_direct_predictions.jsonl", dir);
    ok &= score_file(&set, path, HL_BBH_RULE_PAPER, HL_BBH_MODE_AO, &ao);
    if (!ok) {
        hl_bbh_free(&set);
        return hl_test_finish();
    }

    /* 54 official accuracies */
    snprintf(path, sizeof path, "%s/reference/codex_official_metrics.tsv", dir);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "open %s", path);
    char line[512];
    int rows = 0;
    while (f && fgets(line, sizeof line, f)) {
        char mode[32], task[128];
        int n;
        double acc, acc_calc;
        if (sscanf(line, "%31s %127s %d %lf %lf", mode, task, &n, &acc, &acc_calc) != 5)
            continue; /* header */
        int t = hl_bbh_task_index(task);
        CHECK(t >= 0, "task %s", task);
        if (t < 0)
            continue;
        const hl_bbh_summary *s = !strcmp(mode, "cot") ? &cot : &ao;
        CHECK(s->n[t] == n, "%s %s n %d vs %d", mode, task, s->n[t], n);
        CHECK(fabs(s->acc[t] - acc) < 1e-9, "%s %s accuracy %.12f vs official %.12f", mode, task, s->acc[t], acc);
        rows++;
    }
    if (f)
        fclose(f);
    CHECK(rows == 54, "54 official rows (got %d)", rows);

    /* averages, docs/bbh-eval.md §1 (to 2 decimals) */
    CHECK_CLOSE(round(cot.mean_subtasks * 100) / 100, 73.71, 1e-12, "CoT 27-subtask mean");
    CHECK_CLOSE(round(cot.macro_tasks * 100) / 100, 73.93, 1e-12, "CoT 23-task macro");
    CHECK_CLOSE(round(cot.micro * 100) / 100, 73.97, 1e-12, "CoT micro");
    CHECK_CLOSE(round(ao.mean_subtasks * 100) / 100, 52.76, 1e-12, "AO 27-subtask mean");
    CHECK_CLOSE(round(ao.macro_tasks * 100) / 100, 56.61, 1e-12, "AO 23-task macro");
    CHECK_CLOSE(round(ao.micro * 100) / 100, 52.34, 1e-12, "AO micro");
    CHECK(cot.complete && ao.complete && cot.n_groups == 23 && cot.n_subtasks == 27 && cot.n_total == 6511,
          "complete summaries");

    /* lm-eval rule, docs/bbh-eval.md §7: 73.78 micro; three tasks change, all others unchanged */
    CHECK_CLOSE(round(lm.micro * 100) / 100, 73.78, 1e-12, "lm-eval micro");
    for (int t = 0; t < HL_BBH_N_TASKS; t++) {
        const char *name = hl_bbh_task_name(t);
        if (!strcmp(name, "dyck_languages"))
            CHECK_CLOSE(lm.acc[t], 55.60, 1e-9, "lm-eval dyck_languages");
        else if (!strcmp(name, "formal_fallacies"))
            CHECK_CLOSE(lm.acc[t], 49.60, 1e-9, "lm-eval formal_fallacies");
        else if (!strcmp(name, "reasoning_about_colored_objects"))
            CHECK_CLOSE(lm.acc[t], 88.80, 1e-9, "lm-eval reasoning_about_colored_objects");
        else
            CHECK(lm.correct[t] == cot.correct[t], "lm-eval leaves %s unchanged (%d vs %d)", name, lm.correct[t],
                  cot.correct[t]);
    }
    hl_bbh_free(&set);
    return hl_test_finish();
}
