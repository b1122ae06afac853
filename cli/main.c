/* hydralora: with no arguments opens the workbench; otherwise runs a subcommand headless. */
#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

/* Subcommands. Add a line here and a cli/cmd_<name>.c file. */
#define HL_COMMAND_LIST(X) \
    X("bbh", cmd_bbh, "BIG-Bench Hard: tasks, prompts, score prediction files, compare results") \
    X("eval", cmd_eval, "evaluate a model (and adapter) on BIG-Bench Hard: eval bbh ...") \
    X("cluster", cmd_cluster, "propose N (number of heads): TF-IDF + k-means elbow or Ward dendrogram") \
    X("tsne", cmd_tsne, "t-SNE of adapters' flattened A/B matrices to CSV") \
    X("data", cmd_data, "data sets and models: list, get (download), inspect, show") \
    X("model", cmd_model, "inspect a model: model info PATH (format, config, parameters, memory estimate)") \
    X("train", cmd_train, "train an adapter (HydraLoRA, LoRA, ...): --config FILE | --model DIR --data FILE | --resume RUNDIR") \
    X("export", cmd_export, "export a run's adapter for PyTorch/PEFT (adapter_model.bin + .safetensors + config)") \
    X("workbench", cmd_workbench, "open the workbench (also: no arguments); --model, --data, --config, --theme") \
    X("generate", cmd_generate, "generate text from a prompt (KV cache, greedy/top-p/top-k, streaming)") \
    X("score", cmd_score, "mean cross-entropy of token-id sequences: score --model DIR --ids FILE [--adapter DIR]") \
    X("tokenize", cmd_tokenize, "text to token ids and back (SentencePiece-exact): --tokenizer PATH --text STR [--decode]") \
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

int main(int argc, char **argv) {
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
