/* libFuzzer target for every BBH parser of outside bytes: prediction JSON lines, task JSON
 * files, cot-prompt files, summary JSON, and the answer extractors on arbitrary text.
 * The first input byte selects the parser; the rest is the file. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/eval/bbh/bbh.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    unsigned sel = data[0];
    const char *buf = (const char *)data + 1;
    size_t len = size - 1;
    switch (sel % 5) {
    case 0: {
        hl_bbh_pred_file pf;
        if (hl_bbh_predictions_parse(buf, len, &pf) == HL_OK) {
            /* score against a tiny synthetic set so the scoring path sees fuzzed text too */
            hl_bbh_set set;
            memset(&set, 0, sizeof set);
            hl_bbh_example ex[2] = {{"q", "(A)"}, {"q", "Yes"}};
            for (int t = 0; t < HL_BBH_N_TASKS; t++) {
                set.tasks[t].loaded = t % 3 != 0;
                set.tasks[t].examples = ex;
                set.tasks[t].n_examples = 2;
            }
            hl_bbh_summary s;
            hl_bbh_score_predictions(&set, &pf, (hl_bbh_rule)(sel / 5 % 3), (hl_bbh_mode)(sel / 15 % 3), &s, NULL);
            hl_bbh_predictions_free(&pf);
        }
        break;
    }
    case 1: {
        hl_bbh_example *ex = NULL;
        int n = 0;
        if (hl_bbh_parse_task_json(buf, len, "fuzz", &ex, &n) == HL_OK)
            hl_bbh_examples_free(ex, n);
        break;
    }
    case 2: {
        char *cot = NULL, *ao = NULL;
        if (hl_bbh_parse_cot_prompt(buf, len, "fuzz", &cot, &ao) == HL_OK) {
            free(cot);
            free(ao);
        }
        break;
    }
    case 3: {
        hl_bbh_summary s;
        hl_bbh_summary_from_json(buf, len, &s);
        break;
    }
    default: {
        /* extraction on raw bytes (not NUL-terminated: copy with a terminator only for the target) */
        for (int rule = 0; rule < HL_BBH_RULE_COUNT; rule++)
            for (int mode = 0; mode < HL_BBH_MODE_COUNT; mode++) {
                char *a = NULL;
                int ok;
                int task = (int)(sel / 5) % HL_BBH_N_TASKS;
                if (hl_bbh_score_one((hl_bbh_rule)rule, (hl_bbh_mode)mode, task, buf, len, "(A)", &a, &ok) == HL_OK)
                    free(a);
            }
        size_t a, n;
        hl_bbh_py_strip(buf, len, &a, &n);
        break;
    }
    }
    return 0;
}
