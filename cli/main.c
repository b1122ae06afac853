/* hydralora: with no arguments opens the workbench; otherwise runs a subcommand headless. */
#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

/* Subcommands. Add a line here and a cli/cmd_<name>.c file. */
#define HL_COMMAND_LIST(X) \
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
