/* hydralora bbh: BIG-Bench Hard tasks, prompts, scoring of prediction files, comparisons,
 * and (through cmd_bbh_eval) evaluation of a model. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/bbh_report.h"
#include "cli/commands.h"
#include "core/base/fileio.h"
#include "core/base/jsonout.h"
#include "core/eval/bbh/bbh.h"
#include "core/base/sha256.h"

int cmd_bbh(int argc, char **argv);

/* The --data option of every bbh subcommand that reads the data set. */
#define BBH_OPT_DATA(var) {"data", 'd', HL_OPT_STRING, &(var), "DIR", "BBH folder (default: the catalog download dir)"}

static int read_whole(const char *cmd, const char *path, char **buf, size_t *len) {
    if (hl_file_read_all(path, 0, buf, len) != HL_OK) {
        fprintf(stderr, "hydralora %s: error: %s\n", cmd, hl_last_error());
        return 1;
    }
    return 0;
}

/* ---- bbh tasks ------------------------------------------------------------------------ */

static int bbh_tasks(int argc, char **argv) {
    const char *data = NULL;
    int json = 0;
    hl_opt opts[] = {BBH_OPT_DATA(data),
                     {"json", 0, HL_OPT_FLAG, &json, NULL, "print JSON"},
                     {0}};
    hl_args args = {.usage = "hydralora bbh tasks [--data DIR] [--json]",
                    .summary = "List the 27 BBH subtasks with their paper task, answer format and example count. "
                               "Counts come from the data folder when it is present.",
                    .opts = opts};
    int rc = hl_args_parse(&args, argc, argv);
    if (rc >= 0)
        return rc;
    hl_bbh_set set;
    int have = hl_bbh_cli_load(&set, data, NULL) == HL_OK;
    if (!have && data) {
        fprintf(stderr, "hydralora bbh tasks: error: %s\n", hl_last_error());
        return 1;
    }
    if (json)
        printf("[\n");
    for (int t = 0; t < HL_BBH_N_TASKS; t++) {
        int n = have ? set.tasks[t].n_examples : hl_bbh_task_expected_count(t);
        const char *kind = hl_bbh_task_is_multiple_choice(t) ? "multiple-choice" : "free-form";
        if (json)
            printf("  {\"task\": \"%s\", \"group\": \"%s\", \"type\": \"%s\", \"examples\": %d}%s\n",
                   hl_bbh_task_name(t), hl_bbh_group_name(hl_bbh_task_group(t)), kind, n,
                   t + 1 < HL_BBH_N_TASKS ? "," : "");
        else
            printf("%-42s %-34s %-16s %4d\n", hl_bbh_task_name(t), hl_bbh_group_name(hl_bbh_task_group(t)), kind, n);
    }
    if (json)
        printf("]\n");
    else if (!have)
        printf("(example counts are the upstream ones: no BBH data found in the default folder)\n");
    if (have)
        hl_bbh_free(&set);
    return 0;
}

/* ---- bbh prompt / prompts ------------------------------------------------------------ */

static int parse_mode_rule(const char *cmd, const char *mode_s, const char *rule_s, hl_bbh_mode *mode,
                           hl_bbh_rule *rule) {
    *mode = HL_BBH_MODE_COT;
    *rule = HL_BBH_RULE_PAPER;
    if ((mode_s && hl_bbh_mode_parse(mode_s, mode) != HL_OK) || (rule_s && hl_bbh_rule_parse(rule_s, rule) != HL_OK)) {
        fprintf(stderr, "hydralora %s: %s\n", cmd, hl_last_error());
        return 2;
    }
    return -1;
}

static int bbh_prompt(int argc, char **argv) {
    const char *data = NULL, *mode_s = NULL, *rule_s = NULL;
    hl_opt opts[] = {BBH_OPT_DATA(data),
                     {"mode", 0, HL_OPT_STRING, &mode_s, "MODE", "cot (default), ao or zeroshot"},
                     {"rule", 0, HL_OPT_STRING, &rule_s, "RULE", "paper (default), lm-eval or opencompass"},
                     {0}};
    hl_args args = {.usage = "hydralora bbh prompt TASK IDX [--mode cot|ao|zeroshot] [--rule R] [--data DIR]",
                    .summary = "Print the exact prompt text of example IDX (0-based) of TASK, without BOS.",
                    .opts = opts,
                    .min_positional = 2,
                    .max_positional = 2};
    int rc = hl_args_parse(&args, argc, argv);
    if (rc >= 0)
        return rc;
    hl_bbh_mode mode;
    hl_bbh_rule rule;
    if ((rc = parse_mode_rule("bbh prompt", mode_s, rule_s, &mode, &rule)) >= 0)
        return rc;
    int t = hl_bbh_task_index(args.positional[0]);
    char *end;
    long idx = strtol(args.positional[1], &end, 10);
    if (t < 0) {
        fprintf(stderr, "hydralora bbh prompt: unknown task '%s' (`hydralora bbh tasks` lists the 27 tasks)\n",
                args.positional[0]);
        return 2;
    }
    if (*end || end == args.positional[1] || idx < 0 || idx > 1000000) {
        fprintf(stderr, "hydralora bbh prompt: '%s' is not an example number (0-based, e.g. `%s 3`)\n",
                args.positional[1], args.positional[0]);
        return 2;
    }
    unsigned char mask[HL_BBH_N_TASKS] = {0};
    mask[t] = 1;
    hl_bbh_set set;
    if (hl_bbh_cli_load(&set, data, mask) != HL_OK) {
        fprintf(stderr, "hydralora bbh prompt: error: %s\n", hl_last_error());
        return 1;
    }
    char *p = NULL;
    size_t n = 0;
    rc = 0;
    if (hl_bbh_build_prompt(&set, t, (int)idx, mode, rule, &p, &n) != HL_OK) {
        fprintf(stderr, "hydralora bbh prompt: error: %s\n", hl_last_error());
        rc = 1;
    } else {
        fwrite(p, 1, n, stdout);
        if (isatty(1))
            fputc('\n', stdout);
    }
    free(p);
    hl_bbh_free(&set);
    return rc;
}

/* One line per example: task, idx, sha256 of the prompt bytes (or the whole prompt as JSON). */
static int bbh_prompts(int argc, char **argv) {
    const char *data = NULL, *mode_s = NULL, *rule_s = NULL, *tasks_s = NULL;
    int full = 0;
    hl_opt opts[] = {BBH_OPT_DATA(data),
                     {"tasks", 't', HL_OPT_STRING, &tasks_s, "LIST", "comma-separated tasks (default all)"},
                     {"mode", 0, HL_OPT_STRING, &mode_s, "MODE", "cot (default), ao or zeroshot"},
                     {"rule", 0, HL_OPT_STRING, &rule_s, "RULE", "paper (default), lm-eval or opencompass"},
                     {"full", 0, HL_OPT_FLAG, &full, NULL, "print {\"task\",\"idx\",\"prompt\"} JSON lines instead"},
                     {0}};
    hl_args args = {.usage = "hydralora bbh prompts [--tasks LIST] [--mode M] [--rule R] [--full] [--data DIR]",
                    .summary = "Print \"task<TAB>idx<TAB>sha256(prompt)\" for every example, to compare prompt "
                               "construction with other tools byte for byte.",
                    .opts = opts};
    int rc = hl_args_parse(&args, argc, argv);
    if (rc >= 0)
        return rc;
    hl_bbh_mode mode;
    hl_bbh_rule rule;
    if ((rc = parse_mode_rule("bbh prompts", mode_s, rule_s, &mode, &rule)) >= 0)
        return rc;
    unsigned char mask[HL_BBH_N_TASKS];
    if (hl_bbh_tasks_parse(tasks_s, mask) != HL_OK) {
        fprintf(stderr, "hydralora bbh prompts: %s\n", hl_last_error());
        return 2;
    }
    hl_bbh_set set;
    if (hl_bbh_cli_load(&set, data, mask) != HL_OK) {
        fprintf(stderr, "hydralora bbh prompts: error: %s\n", hl_last_error());
        return 1;
    }
    rc = 0;
    for (int t = 0; t < HL_BBH_N_TASKS && !rc; t++) {
        if (!set.tasks[t].loaded)
            continue;
        for (int i = 0; i < set.tasks[t].n_examples; i++) {
            char *p = NULL;
            size_t n = 0;
            if (hl_bbh_build_prompt(&set, t, i, mode, rule, &p, &n) != HL_OK) {
                fprintf(stderr, "hydralora bbh prompts: error: %s\n", hl_last_error());
                rc = 1;
                break;
            }
            if (full) {
                printf("{\"task\": \"%s\", \"idx\": %d, \"prompt\": \"", hl_bbh_task_name(t), i);
                hl_json_write_escaped(stdout, p, n);
                printf("\"}\n");
            } else {
                char hex[65];
                hl_sha256_hex(p, n, hex);
                printf("%s\t%d\t%s\n", hl_bbh_task_name(t), i, hex);
            }
            free(p);
        }
    }
    hl_bbh_free(&set);
    return rc;
}

/* ---- bbh score ------------------------------------------------------------------------ */

static int write_details(const char *cmd, const char *path, const hl_bbh_set *set, const hl_bbh_pred_file *pf,
                         hl_bbh_rule rule, hl_bbh_mode mode) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "hydralora %s: error: cannot write %s: %s\n", cmd, path, strerror(errno));
        return 1;
    }
    for (size_t i = 0; i < pf->n; i++) {
        const hl_bbh_pred *p = &pf->preds[i];
        const hl_bbh_task_data *td = &set->tasks[p->task];
        if (!td->loaded || p->idx >= td->n_examples)
            continue;
        const char *target = td->examples[p->idx].target;
        char *a = NULL;
        int ok = 0;
        if (hl_bbh_score_one(rule, mode, p->task, p->prediction, p->prediction_len, target, &a, &ok) != HL_OK) {
            fclose(f);
            fprintf(stderr, "hydralora %s: error: %s\n", cmd, hl_last_error());
            return 1;
        }
        fprintf(f, "{\"task\": \"%s\", \"idx\": %d, \"extracted\": \"", hl_bbh_task_name(p->task), p->idx);
        hl_json_write_escaped(f, a, strlen(a));
        fputs("\", \"target\": \"", f);
        hl_json_write_escaped(f, target, strlen(target));
        fprintf(f, "\", \"correct\": %s}\n", ok ? "true" : "false");
        free(a);
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "hydralora %s: error: cannot write %s: %s\n", cmd, path, strerror(errno));
        return 1;
    }
    return 0;
}

static int bbh_score(int argc, char **argv) {
    const char *data = NULL, *mode_s = NULL, *rule_s = NULL, *pred_path = NULL, *out_path = NULL, *details = NULL;
    int json = 0, strict = 0;
    hl_opt opts[] = {
        {"predictions", 'p', HL_OPT_STRING, &pred_path, "FILE",
         "JSON lines {\"task\",\"idx\",\"prediction\"} (required)"},
        {"rule", 'r', HL_OPT_STRING, &rule_s, "RULE", "paper (default), lm-eval or opencompass"},
        {"mode", 0, HL_OPT_STRING, &mode_s, "MODE", "how the predictions were made: cot (default), ao or zeroshot"},
        {"data", 'd', HL_OPT_STRING, &data, "DIR", "BBH folder with the targets (default: the catalog download dir)"},
        {"json", 0, HL_OPT_FLAG, &json, NULL, "print the summary as JSON"},
        {"out", 'o', HL_OPT_STRING, &out_path, "FILE", "also write the JSON summary to FILE"},
        {"details", 0, HL_OPT_STRING, &details, "FILE",
         "write one JSON line per scored prediction: task, idx, extracted, target, correct"},
        {"strict", 0, HL_OPT_FLAG, &strict, NULL, "exit 1 if any line is malformed, duplicated or out of range"},
        {0}};
    hl_args args = {
        .usage = "hydralora bbh score --predictions FILE.jsonl [--rule paper|lm-eval|opencompass] [--mode M] "
                 "[--data DIR] [--json]",
        .summary = "Score generations made elsewhere, on the same terms as `hydralora eval bbh`. Targets come from "
                   "the data folder by (task, idx). The rule's stop strings are applied first (lm-eval: cut at "
                   "\"</s>\", \"Q\", \"\\n\\n\"; paper: \"\\n\\n\", \"Q:\"; opencompass: \"Q:\"), so raw, untruncated "
                   "generations score as the harness would have seen them. Malformed lines are reported with their "
                   "line number and skipped.",
        .opts = opts,
        .epilog = "averages: macro over the 23 paper tasks (logical_deduction and tracking_shuffled_objects variants\n"
                  "averaged first), unweighted mean over the 27 subtasks, and micro mean over examples.\n\n"
                  "example:\n  hydralora bbh score -p codex_cot_predictions.jsonl --rule lm-eval --json"};
    int rc = hl_args_parse(&args, argc, argv);
    if (rc >= 0)
        return rc;
    if (!pred_path) {
        fprintf(stderr, "hydralora bbh score: --predictions FILE is required\nusage: %s\n", args.usage);
        return 2;
    }
    hl_bbh_mode mode;
    hl_bbh_rule rule;
    if ((rc = parse_mode_rule("bbh score", mode_s, rule_s, &mode, &rule)) >= 0)
        return rc;
    char *buf = NULL;
    size_t len = 0;
    if (read_whole("bbh score", pred_path, &buf, &len))
        return 1;
    hl_bbh_pred_file pf;
    if (hl_bbh_predictions_parse(buf, len, &pf) != HL_OK) {
        free(buf);
        fprintf(stderr, "hydralora bbh score: error: %s\n", hl_last_error());
        return 1;
    }
    free(buf);
    /* Load only the tasks that appear in the file. */
    unsigned char mask[HL_BBH_N_TASKS] = {0};
    for (size_t i = 0; i < pf.n; i++)
        mask[pf.preds[i].task] = 1;
    hl_bbh_set set;
    if (hl_bbh_cli_load(&set, data, mask) != HL_OK) {
        fprintf(stderr, "hydralora bbh score: error: %s\n", hl_last_error());
        hl_bbh_predictions_free(&pf);
        return 1;
    }
    hl_bbh_summary s;
    rc = 0;
    if (hl_bbh_score_predictions(&set, &pf, rule, mode, &s, NULL) != HL_OK) {
        fprintf(stderr, "hydralora bbh score: error: %s\n", hl_last_error());
        rc = 1;
        goto done;
    }
    if (details && write_details("bbh score", details, &set, &pf, rule, mode)) {
        rc = 1;
        goto done;
    }
    for (size_t i = 0; i < pf.n_issues && i < 20; i++)
        fprintf(stderr, "hydralora bbh score: warning: %s:%ld: %s\n", pred_path, pf.issues[i].line, pf.issues[i].msg);
    if (pf.n_issues > 20)
        fprintf(stderr, "hydralora bbh score: warning: ... and %zu more problem lines\n", pf.n_issues - 20);
    if (s.n_total == 0) {
        fprintf(stderr, "hydralora bbh score: error: no usable predictions in %s\n", pred_path);
        rc = 1;
        goto done;
    }
    char *js = NULL;
    if ((json || out_path) && hl_bbh_summary_to_json(&s, &js) != HL_OK) {
        fprintf(stderr, "hydralora bbh score: error: %s\n", hl_last_error());
        rc = 1;
        goto done;
    }
    if (out_path) {
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s.tmp", out_path);
        FILE *f = fopen(tmp, "wb");
        if (!f || fprintf(f, "%s\n", js) < 0 || fclose(f) != 0 || rename(tmp, out_path) != 0) {
            fprintf(stderr, "hydralora bbh score: error: cannot write %s: %s\n", out_path, strerror(errno));
            rc = 1;
        }
    }
    if (json)
        printf("%s\n", js);
    else
        hl_bbh_print_summary(stdout, &s, NULL, NULL, NULL);
    free(js);
    if (strict && pf.n_issues) {
        fprintf(stderr, "hydralora bbh score: error: %zu problem line%s in %s (--strict)\n", pf.n_issues,
                pf.n_issues == 1 ? "" : "s", pred_path);
        rc = 1;
    }
done:
    hl_bbh_free(&set);
    hl_bbh_predictions_free(&pf);
    return rc;
}

/* ---- bbh compare ---------------------------------------------------------------------- */

static int load_summary(const char *path, hl_bbh_summary *s) {
    char *buf = NULL;
    size_t len = 0;
    if (read_whole("bbh compare", path, &buf, &len))
        return 1;
    hl_status st = hl_bbh_summary_from_json(buf, len, s);
    free(buf);
    if (st != HL_OK) {
        fprintf(stderr, "hydralora bbh compare: error: %s: %s\n", path, hl_last_error());
        return 1;
    }
    return 0;
}

static int bbh_compare(int argc, char **argv) {
    const char *name_a = "A";
    hl_opt opts[] = {{"names", 0, HL_OPT_STRING, &name_a, "A,B", "column names (default A,B)"}, {0}};
    hl_args args = {.usage = "hydralora bbh compare SUMMARY_A.json SUMMARY_B.json [--names base,adapter]",
                    .summary = "Print two BBH results side by side with the difference B - A per task and for "
                               "each average. Takes `bbh score --out` files or `eval bbh` summary.json files.",
                    .opts = opts,
                    .min_positional = 2,
                    .max_positional = 2};
    int rc = hl_args_parse(&args, argc, argv);
    if (rc >= 0)
        return rc;
    char na[32] = "A", nb[32] = "B";
    if (name_a && strcmp(name_a, "A")) {
        const char *c = strchr(name_a, ',');
        if (!c) {
            fprintf(stderr, "hydralora bbh compare: --names expects A,B\n");
            return 2;
        }
        snprintf(na, sizeof na, "%.*s", (int)(c - name_a), name_a);
        snprintf(nb, sizeof nb, "%s", c + 1);
    }
    hl_bbh_summary a, b;
    if (load_summary(args.positional[0], &a) || load_summary(args.positional[1], &b))
        return 1;
    if (a.rule != b.rule || a.mode != b.mode)
        fprintf(stderr,
                "hydralora bbh compare: warning: the summaries differ in convention (%s/%s vs %s/%s); the numbers "
                "are not directly comparable\n",
                hl_bbh_rule_name(a.rule), hl_bbh_mode_name(a.mode), hl_bbh_rule_name(b.rule),
                hl_bbh_mode_name(b.mode));
    int same = 1;
    for (int t = 0; t < HL_BBH_N_TASKS; t++)
        if (a.n[t] != b.n[t])
            same = 0;
    if (!same)
        fprintf(stderr, "hydralora bbh compare: warning: the two results cover different tasks or example counts\n");
    hl_bbh_print_summary(stdout, &a, &b, na, nb);
    return 0;
}

/* ---- dispatcher ----------------------------------------------------------------------- */

static void bbh_usage(FILE *out) {
    fprintf(out, "usage: hydralora bbh SUBCOMMAND [ARGS]   (SUBCOMMAND --help for details)\n\n"
                 "BIG-Bench Hard: 27 subtasks, 3-shot chain-of-thought prompts, three scoring conventions.\n\n"
                 "subcommands:\n"
                 "  tasks     list the subtasks\n"
                 "  prompt    print the exact prompt of one example\n"
                 "  prompts   sha256 of every prompt (to compare with other tools)\n"
                 "  score     score a predictions JSON-lines file (paper, lm-eval or opencompass rule)\n"
                 "  compare   two summaries side by side with differences\n"
                 "  eval      generate with a model and score (same as `hydralora eval bbh`)\n");
}

int cmd_bbh(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        bbh_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    /* Name the subcommand in the parser's messages ("bbh score: --rule expects ..."). */
    static char names[][16] = {"bbh tasks", "bbh prompt", "bbh prompts", "bbh score", "bbh compare", "bbh eval"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(sub, names[i] + 4))
            argv[1] = names[i];
    if (!strcmp(sub, "tasks"))
        return bbh_tasks(argc - 1, argv + 1);
    if (!strcmp(sub, "prompt"))
        return bbh_prompt(argc - 1, argv + 1);
    if (!strcmp(sub, "prompts"))
        return bbh_prompts(argc - 1, argv + 1);
    if (!strcmp(sub, "score"))
        return bbh_score(argc - 1, argv + 1);
    if (!strcmp(sub, "compare"))
        return bbh_compare(argc - 1, argv + 1);
    if (!strcmp(sub, "eval"))
        return cmd_bbh_eval(argc - 1, argv + 1);
    fprintf(stderr, "hydralora bbh: unknown subcommand '%s'\n\n", sub);
    bbh_usage(stderr);
    return 2;
}
