/* BBH data loading and prompt construction against facts stated in docs/bbh-eval.md §1-§4
 * (exact strings written out by hand), plus error handling of broken folders/files. */
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/eval/bbh/bbh.h"
#include "tests/unit/hl_test.h"

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !memcmp(s + a - b, suf, b);
}

static int starts_with(const char *s, const char *pre) { return !strncmp(s, pre, strlen(pre)); }

static void test_prompts(const char *dir) {
    hl_bbh_set set;
    hl_status st = hl_bbh_load(&set, dir, NULL);
    CHECK(st == HL_OK, "load all 27 from %s: %s", dir, hl_last_error());
    if (st != HL_OK)
        return;
    int total = 0;
    for (int t = 0; t < HL_BBH_N_TASKS; t++) {
        total += set.tasks[t].n_examples;
        CHECK(set.tasks[t].n_examples == hl_bbh_task_expected_count(t), "%s count", hl_bbh_task_name(t));
    }
    CHECK(total == 6511, "6511 examples (got %d)", total);

    int sp = hl_bbh_task_index("sports_understanding");
    const char *body = set.tasks[sp].cot_body;
    /* sports_understanding exemplars: "step. " (space), never "step.\n" */
    CHECK(strstr(body, "A: Let's think step by step. Bam Adebayo is an American basketball player.") != NULL,
          "sports 'step. ' exemplar");
    CHECK(strstr(body, "step.\n") == NULL, "sports has no 'step.\\n'");
    CHECK(starts_with(body, "Determine whether an artificially constructed sentence relating to sports is "
                            "plausible or not.\n\nQ: Is the following sentence plausible? \"Bam Adebayo"),
          "canary and ----- dropped");

    char *p = NULL;
    size_t n = 0;
    CHECK(hl_bbh_build_prompt(&set, sp, 0, HL_BBH_MODE_COT, HL_BBH_RULE_PAPER, &p, &n) == HL_OK, "build");
    CHECK(p && n == strlen(p) && n == strlen(body) + strlen("\n\nQ: ") +
                                        strlen("Is the following sentence plausible? \"Elias Lindholm beat the "
                                               "buzzer.\"") +
                                        strlen("\nA: Let's think step by step."),
          "paper CoT length");
    CHECK(p && ends_with(p, "So the answer is yes.\n\nQ: Is the following sentence plausible? \"Elias Lindholm beat "
                            "the buzzer.\"\nA: Let's think step by step."),
          "paper CoT tail: %s", p ? p + n - 120 : "");
    free(p);
    /* lm-eval: the same + "\n" */
    CHECK(hl_bbh_build_prompt(&set, sp, 0, HL_BBH_MODE_COT, HL_BBH_RULE_LMEVAL, &p, &n) == HL_OK &&
              ends_with(p, "buzzer.\"\nA: Let's think step by step.\n"),
          "lm-eval prompt ends with step.\\n");
    free(p);
    /* OpenCompass prefix */
    CHECK(hl_bbh_build_prompt(&set, sp, 0, HL_BBH_MODE_COT, HL_BBH_RULE_OPENCOMPASS, &p, &n) == HL_OK &&
              starts_with(p, "Follow the given examples and answer the question.\nDetermine whether an"),
          "opencompass prefix");
    free(p);
    /* answer-only: exemplars "A: yes" / "A: no", query ends "\nA:" */
    CHECK(hl_bbh_build_prompt(&set, sp, 0, HL_BBH_MODE_AO, HL_BBH_RULE_PAPER, &p, &n) == HL_OK, "ao build");
    CHECK(p && starts_with(p, "Determine whether an artificially constructed sentence relating to sports is "
                              "plausible or not.\n\nQ: Is the following sentence plausible? \"Bam Adebayo scored a "
                              "reverse layup in the Western Conference Finals.\"\nA: yes\n\nQ: Is the following "
                              "sentence plausible? \"Santi Cazorla scored a touchdown.\"\nA: no\n\nQ: "),
          "ao exemplars: %.400s", p ? p : "");
    CHECK(p && ends_with(p, "buzzer.\"\nA:") && !strstr(p, "think step"), "ao query");
    free(p);
    /* zero-shot */
    CHECK(hl_bbh_build_prompt(&set, sp, 0, HL_BBH_MODE_ZEROSHOT, HL_BBH_RULE_PAPER, &p, &n) == HL_OK && p &&
              !strcmp(p, "Q: Is the following sentence plausible? \"Elias Lindholm beat the buzzer.\"\nA:"),
          "zeroshot prompt: %s", p ? p : "");
    free(p);

    /* snarks: two-paragraph description, kept in CoT; example 88 truncated upstream */
    int sn = hl_bbh_task_index("snarks");
    const char *sb = set.tasks[sn].cot_body;
    const char *q = strstr(sb, "\n\nQ: ");
    const char *para = strstr(sb, "\n\n");
    CHECK(q && para && para < q && starts_with(sb, "Determine which of two sentences is sarcastic.\n\nAccording to "
                                                   "Cambridge University Dictionary"),
          "snarks description spans two paragraphs");
    CHECK(!strcmp(set.tasks[sn].examples[88].input, "Which statement is sarcastic?\nOptions:\n(A) The NB"),
          "snarks #88 truncated input");
    CHECK(hl_bbh_build_prompt(&set, sn, 88, HL_BBH_MODE_COT, HL_BBH_RULE_PAPER, &p, &n) == HL_OK && p &&
              ends_with(p, "\n\nQ: Which statement is sarcastic?\nOptions:\n(A) The NB\nA: Let's think step by step."),
          "snarks #88 prompt");
    free(p);
    /* the 3 logical_deduction prompt files are identical */
    CHECK(!strcmp(set.tasks[hl_bbh_task_index("logical_deduction_three_objects")].cot_body,
                  set.tasks[hl_bbh_task_index("logical_deduction_seven_objects")].cot_body),
          "logical_deduction bodies identical");
    /* every AO body has 3 exemplars with "A: <answer>" and nothing of the reasoning */
    for (int t = 0; t < HL_BBH_N_TASKS; t++) {
        const char *ao = set.tasks[t].ao_body;
        int k = 0;
        for (const char *s = ao; (s = strstr(s, "\nA: ")); s++)
            k++;
        CHECK(k == 3 && !strstr(ao, "So the answer is") && !strstr(ao, "think step"), "%s ao body (%d answers)",
              hl_bbh_task_name(t), k);
    }
    CHECK(hl_bbh_build_prompt(&set, sn, 178, HL_BBH_MODE_COT, HL_BBH_RULE_PAPER, &p, &n) == HL_ERR_RANGE,
          "index out of range");
    hl_bbh_free(&set);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_errors(void) {
    hl_bbh_set set;
    CHECK(hl_bbh_load(&set, "/nonexistent/bbh", NULL) == HL_ERR_NOT_FOUND, "missing dir");
    /* The library says what is missing and where; each front end adds how to get it (the
     * CLI's `data get bbh` / --data hint is checked in tests/cli/test_newuser_cli.sh, the
     * workbench's in tests/tui/test_tui_newuser.sh). */
    CHECK(strstr(hl_last_error(), "/nonexistent/bbh/data/<task>.json") != NULL &&
              strstr(hl_last_error(), "not downloaded") != NULL,
          "says what is missing: %s", hl_last_error());
    char dir[] = "/tmp/hl_bbh_test_XXXXXX";
    if (!mkdtemp(dir))
        return;
    char path[256];
    snprintf(path, sizeof path, "%s/data", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/cot-prompts", dir);
    mkdir(path, 0755);
    unsigned char mask[HL_BBH_N_TASKS] = {0};
    mask[hl_bbh_task_index("navigate")] = 1;
    CHECK(hl_bbh_load(&set, dir, mask) == HL_ERR_NOT_FOUND, "missing task file");
    snprintf(path, sizeof path, "%s/data/navigate.json", dir);
    write_file(path, "{\"examples\": [{\"input\": \"x\"}]}");
    CHECK(hl_bbh_load(&set, dir, mask) == HL_ERR_FORMAT && strstr(hl_last_error(), "examples[0]"),
          "missing target named: %s", hl_last_error());
    write_file(path, "{\"examples\": [{\"input\": \"x\", \"target\": \"Yes\"}]}");
    snprintf(path, sizeof path, "%s/cot-prompts/navigate.txt", dir);
    write_file(path, "canary\nno separator\n");
    CHECK(hl_bbh_load(&set, dir, mask) == HL_ERR_FORMAT, "prompt without -----");
    write_file(path, "canary\n-----\nDesc.\n\nQ: q1\nA: Let's think step by step.\nr. So the answer is Yes.");
    CHECK(hl_bbh_load(&set, dir, mask) == HL_OK, "minimal folder loads: %s", hl_last_error());
    char *p = NULL;
    size_t n;
    if (set.tasks[hl_bbh_task_index("navigate")].loaded) {
        CHECK(hl_bbh_build_prompt(&set, hl_bbh_task_index("navigate"), 0, HL_BBH_MODE_AO, HL_BBH_RULE_PAPER, &p, &n) ==
                      HL_OK &&
                  !strcmp(p, "Desc.\n\nQ: q1\nA: Yes\n\nQ: x\nA:"),
              "ao from minimal: %s", p ? p : "");
        free(p);
        hl_bbh_free(&set);
    }
    snprintf(path, sizeof path, "%s/cot-prompts/navigate.txt", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/data/navigate.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/data", dir);
    rmdir(path);
    snprintf(path, sizeof path, "%s/cot-prompts", dir);
    rmdir(path);
    rmdir(dir);
    /* default dir honours HYDRALORA_DATA */
    setenv("HYDRALORA_DATA", "/x/y", 1);
    char d[256];
    CHECK(hl_bbh_default_dir(d, sizeof d) == HL_OK && !strcmp(d, "/x/y/bbh"), "default dir %s", d);
    unsetenv("HYDRALORA_DATA");
    setenv("XDG_DATA_HOME", "/xdg", 1);
    CHECK(hl_bbh_default_dir(d, sizeof d) == HL_OK && !strcmp(d, "/xdg/hydralora/bbh"), "xdg dir %s", d);
}

int main(void) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/datasets/bbh", hl_test_shared_dir());
    test_prompts(dir);
    test_errors();
    return hl_test_finish();
}
