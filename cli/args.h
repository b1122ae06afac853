/* One small option parser shared by every subcommand, so that all of them spell
 * options, --help and errors the same way.
 *
 *   const char *model = NULL; int steps = 10; int json = 0;
 *   hl_opt opts[] = {
 *       {"model", 'm', HL_OPT_STRING, &model, "DIR", "model directory or file (required)"},
 *       {"steps", 0,   HL_OPT_INT,    &steps, "N",   "number of steps (default 10)"},
 *       {"json",  0,   HL_OPT_FLAG,   &json,  NULL,  "print JSON"},
 *       {0}};
 *   hl_args args = {.usage = "hydralora foo --model DIR [--steps N]", .summary = "...", .opts = opts};
 *   int rc = hl_args_parse(&args, argc, argv);
 *   if (rc >= 0) return rc;     // --help printed (0) or usage error printed (2)
 *   // args.positional[0..args.n_positional) hold the positional arguments
 */
#ifndef HL_CLI_ARGS_H
#define HL_CLI_ARGS_H

#include <stdio.h>

typedef enum {
    HL_OPT_FLAG,   /* int*: set to 1 */
    HL_OPT_STRING, /* const char**: points into argv */
    HL_OPT_INT,    /* int* */
    HL_OPT_LONG,   /* long long* */
    HL_OPT_FLOAT,  /* double* */
    HL_OPT_MULTI,  /* hl_multi*: repeatable string option (e.g. --set k=v) */
} hl_opt_kind;

typedef struct {
    const char *items[64];
    int count;
} hl_multi;

typedef struct {
    const char *name;  /* long name without dashes */
    char short_name;   /* 0 if none */
    hl_opt_kind kind;
    void *dest;
    const char *metavar;
    const char *help;
} hl_opt;

typedef struct {
    const char *usage;   /* one-line synopsis, printed after "usage: " */
    const char *summary; /* a sentence or two, printed under the usage line */
    const hl_opt *opts;  /* terminated by an entry with name == NULL */
    const char *epilog;  /* optional text after the options (examples) */
    int min_positional, max_positional; /* max < 0: unlimited */
    /* outputs */
    char **positional;
    int n_positional;
    char *positional_store[64];
} hl_args;

/* Returns -1 when parsing succeeded and the command should run; otherwise the exit
 * code to return: 0 after printing --help to stdout, 2 after printing a usage error. */
int hl_args_parse(hl_args *args, int argc, char **argv);
void hl_args_print_help(const hl_args *args, FILE *out);

#endif
