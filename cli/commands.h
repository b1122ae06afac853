/* Every subcommand of `hydralora` is a function in its own cli/cmd_*.c file.
 * Each returns the process exit code (0 ok, 1 error, 2 usage error) and handles --help. */
#ifndef HL_CLI_COMMANDS_H
#define HL_CLI_COMMANDS_H

#include "core/train/faults.h"

typedef int (*hl_command_fn)(int argc, char **argv);

typedef struct {
    const char *name;     /* "score", "model", "data", ... */
    hl_command_fn run;    /* argv[0] is the subcommand name */
    const char *summary;  /* one line for `hydralora --help` */
} hl_command;

/* Defined in cli/main.c; the table lists every command. */
extern const hl_command hl_commands[];

int cmd_workbench(int argc, char **argv); /* no arguments: the curses workbench */
int cmd_model_synth(int argc, char **argv); /* `model synth` (cli/cmd_model_synth.c) */
int cmd_bbh_eval(int argc, char **argv);  /* `eval bbh` and `bbh eval` (cli/cmd_eval.c) */

/* Failures for training runs to inject: always NULL in `hydralora`; the test-only program
 * `hydralora-testhooks` (tests/hooks/testhooks.c) sets it from its environment. */
extern const hl_faults *hl_cli_faults;

#endif
