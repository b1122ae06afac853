/* hydralora: with no arguments opens the workbench; otherwise runs a subcommand headless. */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"

/* Subcommands. Add a line here and a cli/cmd_<name>.c file. */
#define HL_COMMAND_LIST(X) \
    X("data", cmd_data, "data sets and models: list, get (download), inspect, show") \
    X("model", cmd_model, "inspect a model: model info PATH (format, config, memory estimate); model synth (random weights)") \
    X("tokenize", cmd_tokenize, "text to token ids and back (SentencePiece-exact): --tokenizer PATH --text STR [--decode]") \
    X("cluster", cmd_cluster, "propose N (number of heads): TF-IDF + k-means elbow or Ward dendrogram") \
    X("train", cmd_train, "train an adapter (HydraLoRA, LoRA, ...): --config FILE | --model PATH --data FILE | --resume RUNDIR") \
    X("score", cmd_score, "loss of token-id sequences (--ids) or records (--data), with or without an adapter") \
    X("export", cmd_export, "export a run's adapter for PyTorch/PEFT (adapter_model.bin + .safetensors + config)") \
    X("generate", cmd_generate, "generate text from a prompt (KV cache, greedy/top-p/top-k, streaming)") \
    X("eval", cmd_eval, "evaluate a model (and adapter) on BIG-Bench Hard: eval bbh ...") \
    X("bbh", cmd_bbh, "BIG-Bench Hard: tasks, prompts, score prediction files, compare results") \
    X("tsne", cmd_tsne, "t-SNE of adapters' flattened A/B matrices to CSV") \
    X("workbench", cmd_workbench, "open the workbench (also: no arguments); --model, --data, --config, --theme") \
    /* HL_COMMANDS_END */

#define HL_X_DECL(name, fn, summary) int fn(int argc, char **argv);
HL_COMMAND_LIST(HL_X_DECL)
#undef HL_X_DECL

const hl_command hl_commands[] = {
#define HL_X_ROW(name, fn, summary) {name, fn, summary},
    HL_COMMAND_LIST(HL_X_ROW)
#undef HL_X_ROW
    {NULL, NULL, NULL},
};

static void print_usage(FILE *out) {
    fprintf(out,
            "hydralora - fine-tune LLaMA-2 models with HydraLoRA from the terminal\n"
            "\n"
            "usage: hydralora                 open the workbench\n"
            "       hydralora COMMAND [ARGS]  run a command headless (COMMAND --help for details)\n"
            "\n"
            "commands:\n");
    for (const hl_command *c = hl_commands; c->name; c++)
        fprintf(out, "  %-10s %s\n", c->name, c->summary);
}

/* OpenMP worker threads spin between parallel regions by default. On a busy or shared box
 * (and inside the workbench, where the UI thread must stay responsive) that spinning steals
 * the cores the work needs: measured on the 2-core dev machine under load, a greedy decode
 * took 2 min 23 s spinning and 14 s passive. libgomp reads its settings before main(), so
 * set a passive policy and re-exec once, unless the user chose a policy. */
static void prefer_passive_openmp(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT"))
        return;
    if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0)
        return;
    execv("/proc/self/exe", argv);
    /* exec failed (no /proc?): carry on with the default policy */
}

int main(int argc, char **argv) {
    prefer_passive_openmp(argv);
    setlocale(LC_ALL, "");
    if (argc < 2)
        return cmd_workbench(argc, argv);
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        print_usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("hydralora 0.1.0\n");
        return 0;
    }
    for (const hl_command *c = hl_commands; c->name; c++)
        if (!strcmp(argv[1], c->name))
            return c->run(argc - 1, argv + 1);
    fprintf(stderr, "hydralora: unknown command '%s'\n\n", argv[1]);
    print_usage(stderr);
    return 2;
}
