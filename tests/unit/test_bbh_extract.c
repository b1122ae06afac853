/* BBH answer extraction: each branch of the three conventions on crafted generations, with
 * expected values worked out by hand from docs/bbh-eval.md §0, §3.4, §3.5, §4 (not from our output). */
#include "core/eval/bbh/bbh.h"
#include "tests/unit/hl_test.h"

static void expect_extract(hl_status (*fn)(const char *, size_t, char **), const char *in, const char *want,
                           const char *what) {
    char *out = NULL;
    hl_status st = fn(in, strlen(in), &out);
    CHECK(st == HL_OK && out && !strcmp(out, want), "%s: input [%s] gave [%s], expected [%s]", what, in,
          out ? out : "(null)", want);
    free(out);
}

static void expect_score(hl_bbh_rule rule, hl_bbh_mode mode, const char *task, const char *gen,
                         const char *target, const char *want_answer, int want_ok) {
    char *a = NULL;
    int ok = -1;
    hl_status st = hl_bbh_score_one(rule, mode, hl_bbh_task_index(task), gen, strlen(gen), target, &a, &ok);
    CHECK(st == HL_OK && a && !strcmp(a, want_answer) && ok == want_ok,
          "%s/%s %s: [%s] -> [%s] ok=%d, expected [%s] ok=%d", hl_bbh_rule_name(rule), hl_bbh_mode_name(mode), task,
          gen, a ? a : "(null)", ok, want_answer, want_ok);
    free(a);
}

static void test_paper(void) {
    /* last "So the answer is ", strip, drop ONE trailing '.' */
    expect_extract(hl_bbh_extract_paper_cot, "a. So the answer is (A). So the answer is (B).", "(B)", "paper last");
    expect_extract(hl_bbh_extract_paper_cot, "So the answer is 24..", "24.", "paper one dot");
    expect_extract(hl_bbh_extract_paper_cot, "  Yes  ", "Yes", "paper no phrase");
    expect_extract(hl_bbh_extract_paper_cot, "So the answer is  valid . ", "valid ", "paper strip then dot");
    expect_extract(hl_bbh_extract_paper_cot, "So the answer is", "So the answer is", "paper phrase needs space");
    expect_extract(hl_bbh_extract_paper_cot, "", "", "paper empty");
    /* Python strip() removes Unicode whitespace (NBSP, em space, ideographic space) */
    expect_extract(hl_bbh_extract_paper_cot, "So the answer is \xc2\xa0(C).\xe2\x80\x83", "(C)", "paper unicode ws");
    expect_score(HL_BBH_RULE_PAPER, HL_BBH_MODE_COT, "navigate", "x.\n\nQ: So the answer is Yes.", "No", "x", 0);
    /* answer-only: plain strip(), no '.' dropping */
    expect_score(HL_BBH_RULE_PAPER, HL_BBH_MODE_AO, "object_counting", " 7.", "7", "7.", 0);
    expect_score(HL_BBH_RULE_PAPER, HL_BBH_MODE_AO, "object_counting", " 7\n", "7", "7", 1);
}

static void test_lmeval(void) {
    /* regex (?<=the answer is )(.*)(?=.): the last character of the line is always lost */
    expect_extract(hl_bbh_extract_lmeval_cot, "So the answer is ] ].", "] ]", "lm-eval period");
    expect_extract(hl_bbh_extract_lmeval_cot, "So the answer is ] ]", "]", "lm-eval missing period costs a char");
    expect_extract(hl_bbh_extract_lmeval_cot, "The answer is (A).", "[invalid]", "lm-eval capital T");
    expect_extract(hl_bbh_extract_lmeval_cot, "the answer is \nso the answer is (B).", "(B)",
                   "lm-eval empty rest-of-line skipped");
    expect_extract(hl_bbh_extract_lmeval_cot, "the answer is (A). So the answer is (B).",
                   "(A). So the answer is (B)", "lm-eval first match");
    expect_extract(hl_bbh_extract_lmeval_cot, "the answer is x", "", "lm-eval one char");
    expect_extract(hl_bbh_extract_lmeval_cot, "so the answer is caf\xc3\xa9", "caf", "lm-eval drops one code point");
    /* "Q" stop string: truncation at the first capital Q anywhere */
    expect_score(HL_BBH_RULE_LMEVAL, HL_BBH_MODE_COT, "reasoning_about_colored_objects",
                 "The thing is teal. So the answer is (Q).", "(Q)", "", 0);
    expect_score(HL_BBH_RULE_LMEVAL, HL_BBH_MODE_COT, "formal_fallacies",
                 "Qarabag fans... So the answer is invalid.", "invalid", "[invalid]", 0);
    expect_score(HL_BBH_RULE_LMEVAL, HL_BBH_MODE_COT, "navigate", "So the answer is Yes.\n\nQ: ...", "Yes", "Yes", 1);
    expect_score(HL_BBH_RULE_LMEVAL, HL_BBH_MODE_COT, "navigate", "So the answer is No.</s>junk", "No", "No", 1);
    /* answer-only: the raw continuation compared as is */
    expect_score(HL_BBH_RULE_LMEVAL, HL_BBH_MODE_AO, "navigate", "Yes\n\nQ: x", "Yes", "Yes", 1);
    expect_score(HL_BBH_RULE_LMEVAL, HL_BBH_MODE_AO, "navigate", " Yes", "Yes", " Yes", 0);
    /* zero-shot strict-match: ignore case, drop final '.', commas, newlines, backslashes, quotes */
    expect_score(HL_BBH_RULE_LMEVAL, HL_BBH_MODE_ZEROSHOT, "navigate", "\"YES\".", "Yes", "\"YES\".", 1);
    expect_score(HL_BBH_RULE_LMEVAL, HL_BBH_MODE_ZEROSHOT, "navigate", "yes.\n", "Yes", "yes.\n", 1);
    expect_score(HL_BBH_RULE_LMEVAL, HL_BBH_MODE_ZEROSHOT, "navigate", "yes..", "Yes", "yes..", 0);
}

static void test_opencompass(void) {
    /* multiple-choice: segment between the first and second "answer is ", stripped */
    expect_extract(hl_bbh_opencompass_mcq, "So the answer is (B).", "B", "oc mcq paren");
    expect_extract(hl_bbh_opencompass_mcq, "So the answer is (C", "C", "oc mcq unclosed paren");
    expect_extract(hl_bbh_opencompass_mcq, "the answer is not clear. So the answer is (B).", "S",
                   "oc mcq second occurrence cuts the segment");
    expect_extract(hl_bbh_opencompass_mcq, "So the answer is option d.", "option d.", "oc mcq no letter: segment");
    expect_extract(hl_bbh_opencompass_mcq, "maybe (a) or D", "D", "oc mcq first capital");
    expect_extract(hl_bbh_opencompass_mcq, "I think (a) or maybe D", "I", "oc mcq first capital anywhere");
    expect_extract(hl_bbh_opencompass_mcq, "  nothing here  ", "  nothing here  ", "oc mcq unstripped whole text");
    expect_extract(hl_bbh_opencompass_mcq, "answer is  dearth, wind, & fire ", "dearth, wind, & fire",
                   "oc mcq stripped segment");
    expect_extract(hl_bbh_opencompass_mcq, "(E) first. answer is x", "x", "oc mcq only the segment is searched");
    /* free-form */
    expect_extract(hl_bbh_opencompass_freeform, "So the answer is 24.", "24", "oc free dot");
    expect_extract(hl_bbh_opencompass_freeform, "So the answer is **valid**.", "valid", "oc free bold");
    expect_extract(hl_bbh_opencompass_freeform, "So the answer is **valid", "**valid", "oc free half bold");
    expect_extract(hl_bbh_opencompass_freeform, "So the answer is Yes .\nQ: more", "Yes", "oc free first line");
    expect_extract(hl_bbh_opencompass_freeform, "\n\nNo\nYes", "", "oc free whole text first line");
    expect_extract(hl_bbh_opencompass_freeform, "answer is a. answer is b", "a", "oc free segment");
    /* references are post-processed too for multiple-choice tasks */
    expect_score(HL_BBH_RULE_OPENCOMPASS, HL_BBH_MODE_COT, "movie_recommendation", "So the answer is Monsters, Inc.",
                 "Monsters, Inc", "M", 1);
    expect_score(HL_BBH_RULE_OPENCOMPASS, HL_BBH_MODE_COT, "snarks", "So the answer is (A).", "(A)", "A", 1);
    expect_score(HL_BBH_RULE_OPENCOMPASS, HL_BBH_MODE_COT, "web_of_lies", "So the answer is (Yes).", "Yes", "(Yes)",
                 0);
    /* stop "Q:" applied before extraction */
    expect_score(HL_BBH_RULE_OPENCOMPASS, HL_BBH_MODE_COT, "snarks", "Hmm.\n\nQ: (B) So the answer is (B).", "(A)",
                 "H", 0);
}

static void test_strip_and_truncate(void) {
    size_t a, n;
    hl_bbh_py_strip("\x1c\x1d x \x85", 6, &a, &n); /* \x85 alone is invalid UTF-8: not a space */
    CHECK(a == 3 && n == 3, "strip ascii separators: a=%zu n=%zu", a, n);
    hl_bbh_py_strip("\xe3\x80\x80y\xe2\x80\xa8", 7, &a, &n);
    CHECK(a == 3 && n == 1, "strip U+3000 / U+2028: a=%zu n=%zu", a, n);
    const char *g = "abc\n\nQ: def";
    CHECK(hl_bbh_truncate(HL_BBH_RULE_PAPER, HL_BBH_MODE_COT, g, strlen(g)) == 3, "paper cut at blank line");
    g = "A Quick. Q: x";
    CHECK(hl_bbh_truncate(HL_BBH_RULE_LMEVAL, HL_BBH_MODE_COT, g, strlen(g)) == 2, "lm-eval cut at Q");
    CHECK(hl_bbh_truncate(HL_BBH_RULE_OPENCOMPASS, HL_BBH_MODE_COT, g, strlen(g)) == 9, "opencompass cut at Q:");
    hl_bbh_gen_settings gs;
    hl_bbh_rule_gen_settings(HL_BBH_RULE_LMEVAL, HL_BBH_MODE_COT, &gs);
    CHECK(gs.max_new_tokens == 1024 && gs.n_stop == 3, "lm-eval settings");
    hl_bbh_rule_gen_settings(HL_BBH_RULE_OPENCOMPASS, HL_BBH_MODE_COT, &gs);
    CHECK(gs.max_new_tokens == 512 && gs.n_stop == 1 && !strcmp(gs.stop[0], "Q:"), "opencompass settings");
}

static void test_tasks(void) {
    CHECK(hl_bbh_task_index("snarks") == 19, "snarks index");
    CHECK(hl_bbh_task_index("nope") < 0, "unknown task");
    int mcq = 0, total = 0;
    for (int t = 0; t < HL_BBH_N_TASKS; t++) {
        mcq += hl_bbh_task_is_multiple_choice(t);
        total += hl_bbh_task_expected_count(t);
    }
    CHECK(mcq == 17, "17 multiple-choice sets (got %d)", mcq);
    CHECK(total == 6511, "6511 examples (got %d)", total);
    unsigned char m[HL_BBH_N_TASKS];
    CHECK(hl_bbh_tasks_parse("logical_deduction,snarks", m) == HL_OK, "parse group list");
    int k = 0;
    for (int t = 0; t < HL_BBH_N_TASKS; t++)
        k += m[t];
    CHECK(k == 4 && m[19], "group selects 3 variants + snarks (got %d)", k);
    CHECK(hl_bbh_tasks_parse("snarks,bogus", m) == HL_ERR_ARG, "bad task rejected");
    hl_bbh_rule r;
    hl_bbh_mode md;
    CHECK(hl_bbh_rule_parse("lm-eval", &r) == HL_OK && r == HL_BBH_RULE_LMEVAL, "rule parse");
    CHECK(hl_bbh_mode_parse("answer-only", &md) == HL_OK && md == HL_BBH_MODE_AO, "mode parse");
    CHECK(hl_bbh_rule_parse("foo", &r) == HL_ERR_ARG, "bad rule");
}

static void test_summary(void) {
    hl_bbh_summary s;
    hl_bbh_summary_init(&s, HL_BBH_RULE_PAPER, HL_BBH_MODE_COT);
    int ld3 = hl_bbh_task_index("logical_deduction_three_objects");
    int ld5 = hl_bbh_task_index("logical_deduction_five_objects");
    int nav = hl_bbh_task_index("navigate");
    /* ld3: 1/2 = 50%, ld5: 1/1 = 100%, navigate 0/1 = 0% */
    hl_bbh_summary_add(&s, ld3, 1);
    hl_bbh_summary_add(&s, ld3, 0);
    hl_bbh_summary_add(&s, ld5, 1);
    hl_bbh_summary_add(&s, nav, 0);
    hl_bbh_summary_finish(&s, NULL);
    CHECK_CLOSE(s.mean_subtasks, 50.0, 1e-12, "mean over subtasks (50+100+0)/3");
    CHECK_CLOSE(s.macro_tasks, 37.5, 1e-12, "macro ((50+100)/2 + 0)/2");
    CHECK_CLOSE(s.micro, 50.0, 1e-12, "micro 2/4");
    CHECK(s.n_groups == 2 && s.n_subtasks == 3 && !s.complete, "counts");
    char *js = NULL;
    CHECK(hl_bbh_summary_to_json(&s, &js) == HL_OK, "to json");
    hl_bbh_summary b;
    CHECK(js && hl_bbh_summary_from_json(js, strlen(js), &b) == HL_OK, "from json");
    CHECK_CLOSE(b.macro_tasks, 37.5, 1e-12, "round trip macro");
    CHECK(b.n[ld3] == 2 && b.correct[ld3] == 1, "round trip counts");
    free(js);
    CHECK(hl_bbh_summary_from_json("{\"rule\":\"paper\"}", 16, &b) == HL_ERR_FORMAT, "bad summary");
}

static void test_predictions_parse(void) {
    const char *text = "{\"task\":\"navigate\",\"idx\":0,\"prediction\":\"So the answer is Yes.\"}\n"
                       "\n"
                       "not json\n"
                       "{\"task\":\"nope\",\"idx\":0,\"prediction\":\"x\"}\n"
                       "{\"task\":\"navigate\",\"idx\":-1,\"prediction\":\"x\"}\n"
                       "{\"task\":\"navigate\",\"idx\":1.5,\"prediction\":\"x\"}\n"
                       "{\"task\":\"navigate\",\"idx\":2}\n"
                       "{\"task\":\"snarks\",\"idx\":3,\"prediction\":\"y\",\"target\":\"(A)\"}";
    hl_bbh_pred_file pf;
    CHECK(hl_bbh_predictions_parse(text, strlen(text), &pf) == HL_OK, "parse");
    CHECK(pf.n == 2, "2 good lines (got %zu)", pf.n);
    CHECK(pf.n_issues == 5, "5 bad lines (got %zu)", pf.n_issues);
    long want[] = {3, 4, 5, 6, 7};
    for (size_t i = 0; i < pf.n_issues && i < 5; i++)
        CHECK(pf.issues[i].line == want[i], "issue %zu on line %ld (want %ld): %s", i, pf.issues[i].line, want[i],
              pf.issues[i].msg);
    CHECK(pf.n == 2 && pf.preds[1].line == 8 && pf.preds[1].target && !strcmp(pf.preds[1].target, "(A)"),
          "target kept");
    hl_bbh_predictions_free(&pf);
}

int main(void) {
    test_paper();
    test_lmeval();
    test_opencompass();
    test_strip_and_truncate();
    test_tasks();
    test_summary();
    test_predictions_parse();
    return hl_test_finish();
}
