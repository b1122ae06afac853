/* hydralora eval bbh: generate with a model (optionally with an adapter) and score BBH.
 * Results go to an output folder (settings.json, samples.jsonl, summary.json); an
 * interrupted run resumes where it stopped. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/args.h"
#include "cli/bbh_report.h"
#include "cli/commands.h"
#include "cli/device.h"
#include "cli/progress.h"
#include "core/eval/bbh/bbh.h"
#include "core/train/export.h"
#include "core/eval/generate.h"

int cmd_eval(int argc, char **argv);

static volatile int g_cancel;
static volatile sig_atomic_t g_signal;

static void on_signal(int sig) {
    g_signal = sig;
    g_cancel = 1; /* polled by the generator between steps; results so far are kept */
}

typedef struct {
    hl_progress bar;
    const char *label;
    int announced, quiet;
    long truncated, total;
    int context, max_new;
} progress_state;

static void on_progress(const hl_bbh_progress *p, void *user) {
    progress_state *ps = user;
    char extra[160];
    ps->truncated = p->prompts_truncated;
    ps->total = p->total;
    ps->context = p->context;
    ps->max_new = p->max_new_tokens;
    if (!p->last && !ps->announced) {
        /* Said even with --quiet: these change what the scores mean. */
        if (p->max_new_lowered)
            fprintf(stderr, "hydralora eval %s: the model's context is %d tokens: generating at most %d new tokens, not the rule's "
                            "cap (set it with --max-new-tokens)\n", ps->label, p->context, p->max_new_tokens);
        if (p->prompts_truncated > 0)
            fprintf(stderr, "hydralora eval %s: warning: %ld of %ld prompts are longer than the %d tokens the context leaves them "
                            "and are cut on the left: a cut few-shot prompt is not the published benchmark\n",
                    ps->label, p->prompts_truncated, p->total, p->context - p->max_new_tokens);
    }
    if (ps->quiet) {
        ps->announced = 1;
        return;
    }
    if (!p->last && !ps->announced) {
        ps->announced = 1;
        if (p->resumed)
            fprintf(stderr, "%s: %ld of %ld examples already done in the output folder (resuming)\n", ps->label,
                    p->resumed, p->total);
        if (p->done < p->total)
            fprintf(stderr, "%s: %ld examples to generate, batch %d\n", ps->label, p->total - p->done, p->batch);
    }
    double tps = p->elapsed_s > 0 ? (double)(p->generated_tokens + p->prompt_tokens) / p->elapsed_s : 0;
    snprintf(extra, sizeof extra, "acc %.1f%% | %.0f tok/s%s%s", p->running ? p->running->micro : 0.0, tps,
             p->last ? " | " : "", p->last ? hl_bbh_task_name(p->last->task) : "");
    /* Rate and ETA over this run's examples only: resumed ones took no time. */
    hl_progress_update(&ps->bar, (double)(p->done - p->resumed), (double)(p->total - p->resumed), "examples", extra,
                       p->done == p->total);
}

typedef struct {
    const char *model, *adapter, *tokenizer, *tasks, *mode, *rule, *data, *out;
    const char *decoder;
    int limit, batch, max_new, max_seq, threads, compare_base, json, quiet;
    const char *device;
    hl_backend *be;
} eval_args;

static int run_one(const eval_args *a, const hl_bbh_set *set, const hl_model *model, const hl_tokenizer *tok,
                   const hl_bbh_eval_opts *opts, const char *adapter, const char *out_dir, const char *label,
                   hl_bbh_summary *sum) {
    hl_bbh_eval_target tg;
    memset(&tg, 0, sizeof tg);
    tg.backend = a->be;
    tg.model = model;
    tg.tok = tok;
    snprintf(tg.model_label, sizeof tg.model_label, "%s", a->model);
    hl_bbh_model_fingerprint(model, tg.model_fingerprint);
    hl_adapters ad;
    int have_ad = 0;
    if (adapter) {
        if (hl_export_load(adapter, &model->cfg, 0, &ad) != HL_OK) {
            fprintf(stderr, "hydralora eval bbh: error: loading adapter %s: %s\n", adapter, hl_last_error());
            return 1;
        }
        have_ad = 1;
        tg.adapters = &ad;
        snprintf(tg.adapter_label, sizeof tg.adapter_label, "%s", adapter);
        if (hl_bbh_path_fingerprint(adapter, tg.adapter_fingerprint) != HL_OK) {
            fprintf(stderr, "hydralora eval bbh: error: %s\n", hl_last_error());
            hl_adapters_free(&ad);
            return 1;
        }
    }
    progress_state ps;
    memset(&ps, 0, sizeof ps);
    ps.label = label;
    ps.quiet = a->quiet;
    if (!a->quiet)
        hl_progress_begin(&ps.bar, label);
    hl_status st = hl_bbh_eval_run(out_dir, set, &tg, opts, on_progress, &ps, &g_cancel, sum);
    if (!a->quiet)
        hl_progress_end(&ps.bar);
    if (ps.truncated > 0 && (st == HL_OK || st == HL_ERR_CANCELLED))
        fprintf(stderr, "hydralora eval %s: warning: %ld of %ld prompts were cut on the left to fit the context of %d tokens "
                        "(prompts_truncated in %s/summary.json)\n",
                label, ps.truncated, ps.total, ps.context, out_dir);
    if (have_ad)
        hl_adapters_free(&ad);
    if (st == HL_ERR_CANCELLED) {
        fprintf(stderr,
                "hydralora eval bbh: interrupted; %s/samples.jsonl keeps what was finished. Run the same command "
                "again to resume.\n",
                out_dir);
        return 128 + (g_signal ? (int)g_signal : SIGINT); /* 130 for Ctrl-C, 143 for SIGTERM */
    }
    if (st != HL_OK) {
        fprintf(stderr, "hydralora eval bbh: error: %s\n", hl_last_error());
        return 1;
    }
    return 0;
}

int cmd_bbh_eval(int argc, char **argv) {
    eval_args a = {.batch = 0};
    hl_opt opts[] = {
        {"model", 'm', HL_OPT_STRING, &a.model, "PATH", "model: a folder (HF, or one .bin/.gguf) or a llama2.c .bin / .gguf file (required)"},
        {"adapter", 'a', HL_OPT_STRING, &a.adapter, "DIR", "exported adapter folder (adapter_model.safetensors)"},
        {"tokenizer", 0, HL_OPT_STRING, &a.tokenizer, "PATH", "tokenizer: file, model folder or model file (default: the model's own)"},
        {"out", 'o', HL_OPT_STRING, &a.out, "DIR", "result folder (required; an existing one is resumed)"},
        {"tasks", 't', HL_OPT_STRING, &a.tasks, "LIST", "comma-separated subtasks or task groups (default all 27)"},
        {"limit", 'n', HL_OPT_INT, &a.limit, "N", "only the first N examples of each subtask"},
        {"mode", 0, HL_OPT_STRING, &a.mode, "MODE", "cot (3-shot CoT, default), ao (3-shot answer-only), zeroshot"},
        {"rule", 'r', HL_OPT_STRING, &a.rule, "RULE",
         "paper (default), lm-eval or opencompass: prompt variant, stops, token cap, extraction"},
        {"batch", 'b', HL_OPT_INT, &a.batch, "N", "sequences decoded together (default: as many as memory allows, <= 16)"},
        {"max-new-tokens", 0, HL_OPT_INT, &a.max_new, "N",
         "cap on generated tokens (default: the rule's, 1024/512, at most half the model's context)"},
        {"max-seq", 0, HL_OPT_INT, &a.max_seq, "N", "context length cap (default: the model's)"},
        {"decoder", 0, HL_OPT_STRING, &a.decoder, "D",
         "continuous (default: slot refill + few-shot prefix reuse) or static (fixed batches, every prompt in full)"},
        {"device", 0, HL_OPT_STRING, &a.device, "NAME", HL_CLI_DEVICE_HELP},
        {"threads", 'j', HL_OPT_INT, &a.threads, "N", "compute threads (default: all cores)"},
        {"data", 'd', HL_OPT_STRING, &a.data, "DIR", "BBH folder (default: the catalog download dir)"},
        {"compare-base", 0, HL_OPT_FLAG, &a.compare_base, NULL,
         "with --adapter: also evaluate the base model (OUT/base, OUT/adapter) and print both"},
        {"json", 0, HL_OPT_FLAG, &a.json, NULL, "print the scores as JSON at the end"},
        {"quiet", 'q', HL_OPT_FLAG, &a.quiet, NULL, "no progress bar"},
        {0}};
    hl_args args = {
        .usage = "hydralora eval bbh --model PATH [--adapter DIR] --out DIR [--tasks a,b] [--limit N] "
                 "[--mode cot|ao|zeroshot] [--rule paper|lm-eval|opencompass] [--batch N] [--max-new-tokens N]",
        .summary = "Evaluate a model (and an adapter) on BIG-Bench Hard with greedy decoding (BOS first, KV cache, "
                   "continuous batching that reuses each task's few-shot prefix). Every finished example is appended to OUT/samples.jsonl at once, so an "
                   "interrupted run (Ctrl-C, crash) continues where it stopped when run again with the same "
                   "settings; --tasks and --limit may grow between runs. OUT/summary.json has the settings, model "
                   "and adapter fingerprints, per-task accuracy and the three averages. Ctrl-C stops after writing "
                   "what is done and exits with status 130 (SIGTERM: 143).",
        .opts = opts,
        .epilog = "conventions (--rule):\n"
                  "  paper        original prompts; stop \"\\n\\n\", \"Q:\"; max 1024; last \"So the answer is X\"\n"
                  "  lm-eval      prompt + \"\\n\"; stop \"</s>\", \"Q\", \"\\n\\n\"; max 1024; regex, first match\n"
                  "  opencompass  \"Follow the given examples...\" prefix; stop \"Q:\"; max 512; letter / first line\n"
                  "zero-shot prompt: \"Q: {input}\\nA:\" (lm-eval bbh_zeroshot)\n\n"
                  "examples:\n"
                  "  hydralora eval bbh -m llama-2-7b-hf -o runs/base-bbh\n"
                  "  hydralora eval bbh -m llama-2-7b-hf -a runs/x/adapter -o runs/x/eval --compare-base\n"
                  "  hydralora bbh compare runs/base-bbh/summary.json runs/x/eval/summary.json"};
    int rc = hl_args_parse(&args, argc, argv);
    if (rc >= 0)
        return rc;
    if (!a.model || !a.out) {
        fprintf(stderr, "hydralora eval bbh: --model and --out are required\nusage: %s\n", args.usage);
        return 2;
    }
    if (a.compare_base && !a.adapter) {
        fprintf(stderr, "hydralora eval bbh: --compare-base needs --adapter\n");
        return 2;
    }
    if (a.batch < 0 || a.batch > 256 || a.limit < 0 || a.max_new < 0 || a.max_seq < 0) {
        fprintf(stderr, "hydralora eval bbh: --batch must be 0..256 (0: automatic); --limit, --max-new-tokens, "
                        "--max-seq >= 0\n");
        return 2;
    }
    hl_bbh_eval_opts o;
    hl_bbh_eval_opts_default(&o);
    if ((a.mode && hl_bbh_mode_parse(a.mode, &o.mode) != HL_OK) ||
        (a.rule && hl_bbh_rule_parse(a.rule, &o.rule) != HL_OK) || hl_bbh_tasks_parse(a.tasks, o.tasks) != HL_OK) {
        fprintf(stderr, "hydralora eval bbh: %s\n", hl_last_error());
        return 2;
    }
    o.limit = a.limit;
    o.batch = a.batch;
    o.max_new_tokens = a.max_new;
    o.max_seq = a.max_seq;
    if (a.decoder && !strcmp(a.decoder, "static"))
        o.decoder = HL_BBH_DECODER_GENERATE;
    else if (a.decoder && strcmp(a.decoder, "continuous")) {
        fprintf(stderr, "hydralora eval bbh: --decoder is continuous or static, not '%s'\n", a.decoder);
        return 2;
    }
    if (a.threads < 0) {
        fprintf(stderr, "hydralora eval bbh: --threads must not be negative\n");
        return 2;
    }
    a.be = hl_cli_open_device("eval bbh", a.device, a.threads);
    if (!a.be)
        return 1;

    hl_bbh_set set;
    if (hl_bbh_cli_load(&set, a.data, o.tasks) != HL_OK) {
        fprintf(stderr, "hydralora eval bbh: error: %s\n", hl_last_error());
        hl_backend_close(a.be);
        return 1;
    }
    hl_model model;
    memset(&model, 0, sizeof model);
    if (hl_model_load(&model, a.model) != HL_OK) {
        fprintf(stderr, "hydralora eval bbh: error: loading model %s: %s\n", a.model, hl_last_error());
        hl_bbh_free(&set);
        hl_backend_close(a.be);
        return 1;
    }
    hl_tokenizer *tok = NULL;
    hl_status ts = hl_generate_load_tokenizer(&tok, &model, a.model, a.tokenizer);
    if (ts != HL_OK) {
        fprintf(stderr, "hydralora eval bbh: error: %s\n", hl_last_error());
        if (ts == HL_ERR_NOT_FOUND && !a.tokenizer)
            fprintf(stderr, "hydralora eval bbh: hint: name the tokenizer with --tokenizer PATH\n");
        hl_tokenizer_free(tok);
        hl_model_free(&model);
        hl_bbh_free(&set);
        hl_backend_close(a.be);
        return 1;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    hl_bbh_summary base, adapted;
    if (a.compare_base) {
        char dir_b[4200], dir_a[4200];
        snprintf(dir_b, sizeof dir_b, "%s/base", a.out);
        snprintf(dir_a, sizeof dir_a, "%s/adapter", a.out);
        rc = run_one(&a, &set, &model, tok, &o, NULL, dir_b, "bbh base", &base);
        if (rc == 0)
            rc = run_one(&a, &set, &model, tok, &o, a.adapter, dir_a, "bbh adapter", &adapted);
        if (rc == 0) {
            printf("results: %s/summary.json, %s/summary.json\n\n", dir_b, dir_a);
            hl_bbh_print_summary(stdout, &base, &adapted, "base", "adapter");
        }
    } else {
        rc = run_one(&a, &set, &model, tok, &o, a.adapter, a.out, "bbh", &adapted);
        if (rc == 0) {
            if (a.json) {
                char *js = NULL;
                if (hl_bbh_summary_to_json(&adapted, &js) == HL_OK)
                    printf("%s\n", js);
                free(js);
            } else {
                printf("results: %s/summary.json (per example: %s/samples.jsonl)\n\n", a.out, a.out);
                hl_bbh_print_summary(stdout, &adapted, NULL, NULL, NULL);
            }
        }
    }
    hl_tokenizer_free(tok);
    hl_model_free(&model);
    hl_bbh_free(&set);
    hl_backend_close(a.be);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "bbh")) {
        static char name[] = "eval bbh";
        argv[1] = name;
        return cmd_bbh_eval(argc - 1, argv + 1);
    }
    int help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
    if (argc >= 2 && !help)
        fprintf(stderr, "hydralora eval: unknown benchmark '%s' (available: bbh)\n\n", argv[1]);
    else if (argc < 2)
        fprintf(stderr, "hydralora eval: which benchmark? (available: bbh)\n\n");
    fprintf(help ? stdout : stderr,
            "usage: hydralora eval BENCHMARK [ARGS]\n\n"
            "benchmarks:\n"
            "  bbh   BIG-Bench Hard (27 subtasks, 3-shot CoT): hydralora eval bbh --model PATH --out DIR\n"
            "(run `hydralora eval bbh --help` for all options)\n");
    return help ? 0 : 2;
}
