#include "cli/args.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void hl_args_print_help(const hl_args *args, FILE *out) {
    fprintf(out, "usage: %s\n", args->usage);
    if (args->summary)
        fprintf(out, "\n%s\n", args->summary);
    fprintf(out, "\noptions:\n");
    for (const hl_opt *o = args->opts; o && o->name; o++) {
        char left[96];
        int n = 0;
        if (o->short_name)
            n = snprintf(left, sizeof left, "-%c, --%s", o->short_name, o->name);
        else
            n = snprintf(left, sizeof left, "    --%s", o->name);
        if (o->metavar && n < (int)sizeof left)
            snprintf(left + n, sizeof left - (size_t)n, " %s", o->metavar);
        fprintf(out, "  %-28s %s\n", left, o->help ? o->help : "");
    }
    fprintf(out, "  %-28s %s\n", "-h, --help", "show this help and exit");
    if (args->epilog)
        fprintf(out, "\n%s\n", args->epilog);
}

static const hl_opt *find_long(const hl_opt *opts, const char *name, size_t len) {
    for (const hl_opt *o = opts; o && o->name; o++)
        if (strlen(o->name) == len && !strncmp(o->name, name, len))
            return o;
    return NULL;
}

static const hl_opt *find_short(const hl_opt *opts, char c) {
    for (const hl_opt *o = opts; o && o->name; o++)
        if (o->short_name == c)
            return o;
    return NULL;
}

static int usage_error(const hl_args *args, const char *cmd, const char *fmt, const char *what) {
    fprintf(stderr, "%s: ", cmd);
    fprintf(stderr, fmt, what);
    fprintf(stderr, "\nusage: %s\n(run with --help for all options)\n", args->usage);
    return 2;
}

static int store_value(const hl_args *args, const char *cmd, const hl_opt *o, const char *value) {
    char *end = NULL;
    errno = 0;
    switch (o->kind) {
    case HL_OPT_STRING:
        *(const char **)o->dest = value;
        return -1;
    case HL_OPT_MULTI: {
        hl_multi *m = o->dest;
        if (m->count >= (int)(sizeof m->items / sizeof m->items[0]))
            return usage_error(args, cmd, "too many --%s options", o->name);
        m->items[m->count++] = value;
        return -1;
    }
    case HL_OPT_INT: {
        long v = strtol(value, &end, 10);
        if (errno || !*value || *end || v < -2147483647L || v > 2147483647L) {
            fprintf(stderr, "%s: --%s expects an integer, got '%s'\n", cmd, o->name, value);
            return 2;
        }
        *(int *)o->dest = (int)v;
        return -1;
    }
    case HL_OPT_LONG: {
        long long v = strtoll(value, &end, 10);
        if (errno || !*value || *end) {
            fprintf(stderr, "%s: --%s expects an integer, got '%s'\n", cmd, o->name, value);
            return 2;
        }
        *(long long *)o->dest = v;
        return -1;
    }
    case HL_OPT_FLOAT: {
        double v = strtod(value, &end);
        if (errno || !*value || *end) {
            fprintf(stderr, "%s: --%s expects a number, got '%s'\n", cmd, o->name, value);
            return 2;
        }
        *(double *)o->dest = v;
        return -1;
    }
    case HL_OPT_FLAG:
        *(int *)o->dest = 1;
        return -1;
    }
    return -1;
}

/* The command's full name for messages ("hydralora data get"): the leading lower-case words
 * of the usage line, before the first option or placeholder. */
static void command_name(const hl_args *args, char *buf, size_t size) {
    const char *u = args->usage ? args->usage : "hydralora";
    size_t n = 0;
    for (const char *p = u; *p;) {
        const char *q = p;
        while (*q >= 'a' && *q <= 'z')
            q++;
        if (q == p || (*q && *q != ' '))
            break;
        n = (size_t)(q - u);
        if (!*q)
            break;
        p = q + 1;
    }
    snprintf(buf, size, "%.*s", (int)(n ? n : strlen("hydralora")), n ? u : "hydralora");
}

int hl_args_parse(hl_args *args, int argc, char **argv) {
    char cmd_buf[96];
    command_name(args, cmd_buf, sizeof cmd_buf);
    const char *cmd = cmd_buf;
    args->n_positional = 0;
    args->positional = args->positional_store;
    int only_positional = 0;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (!only_positional && !strcmp(a, "--")) {
            only_positional = 1;
            continue;
        }
        if (!only_positional && (!strcmp(a, "--help") || !strcmp(a, "-h"))) {
            hl_args_print_help(args, stdout);
            return 0;
        }
        if (!only_positional && a[0] == '-' && a[1] != '\0' && !(a[1] >= '0' && a[1] <= '9')) {
            const hl_opt *o;
            const char *inline_value = NULL;
            if (a[1] == '-') {
                const char *name = a + 2;
                const char *eq = strchr(name, '=');
                size_t len = eq ? (size_t)(eq - name) : strlen(name);
                o = find_long(args->opts, name, len);
                if (eq)
                    inline_value = eq + 1;
            } else {
                o = a[2] == '\0' ? find_short(args->opts, a[1]) : NULL;
            }
            if (!o)
                return usage_error(args, cmd, "unknown option '%s'", a);
            if (o->kind == HL_OPT_FLAG) {
                if (inline_value)
                    return usage_error(args, cmd, "option '%s' takes no value", a);
                *(int *)o->dest = 1;
                continue;
            }
            const char *value = inline_value;
            if (!value) {
                if (i + 1 >= argc)
                    return usage_error(args, cmd, "option '%s' needs a value", a);
                value = argv[++i];
            }
            int rc = store_value(args, cmd, o, value);
            if (rc >= 0)
                return rc;
            continue;
        }
        if (args->n_positional >= (int)(sizeof args->positional_store / sizeof args->positional_store[0]))
            return usage_error(args, cmd, "too many arguments (at '%s')", a);
        args->positional_store[args->n_positional++] = a;
    }
    if (args->n_positional < args->min_positional)
        return usage_error(args, cmd, "%s", "missing argument");
    if (args->max_positional >= 0 && args->n_positional > args->max_positional)
        return usage_error(args, cmd, "unexpected argument '%s'", args->positional[args->max_positional]);
    return -1;
}
