/* hydralora tsne: 2-D exact t-SNE of the flattened A and B matrices of exported adapters,
 * several adapters in one picture (the HydraLoRA paper's figure: A's overlap, B's separate).
 * Writes CSV: adapter,layer,module,kind,head,group,x,y. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/progress.h"
#include "core/analysis/cluster.h"

typedef struct {
    hl_progress bar;
    char stage[64];
    int active, quiet;
} tsne_progress;

static int on_progress(void *user, const char *stage, double done, double total) {
    tsne_progress *p = user;
    if (p->quiet)
        return 0;
    if (!p->active || strcmp(p->stage, stage)) {
        if (p->active)
            hl_progress_end(&p->bar);
        snprintf(p->stage, sizeof p->stage, "%s", stage);
        hl_progress_begin(&p->bar, p->stage);
        p->active = 1;
    }
    hl_progress_update(&p->bar, done, total, "iter", NULL, 0);
    return 0;
}

/* CSV field: quoted when it holds a comma, quote or newline. */
static void csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static int write_csv(const char *path, const hl_tsne_report *r) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (!tmp)
        return ENOMEM;
    snprintf(tmp, plen + 32, "%s.tmp-%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        int e = errno;
        free(tmp);
        return e;
    }
    fprintf(f, "adapter,layer,module,kind,head,group,x,y\n");
    for (int i = 0; i < r->n_points; i++) {
        const hl_tsne_point *p = &r->points[i];
        csv_field(f, r->adapter_names[p->adapter]);
        fprintf(f, ",%d,%s,%c,", p->layer, p->module, p->kind);
        if (p->head >= 0)
            fprintf(f, "%d", p->head);
        fputc(',', f);
        csv_field(f, r->groups[p->group].name);
        fprintf(f, ",%.9g,%.9g\n", (double)p->x, (double)p->y);
    }
    int e = ferror(f) ? EIO : 0;
    if (fflush(f) != 0 && !e)
        e = errno;
    if (fclose(f) != 0 && !e)
        e = errno;
    if (!e && rename(tmp, path) != 0)
        e = errno;
    if (e)
        unlink(tmp);
    free(tmp);
    return e;
}

int cmd_tsne(int argc, char **argv) {
    hl_multi adapters = {0};
    const char *what = "all", *out = NULL;
    double perplexity = 30;
    long long seed = 41;
    int iters = 1000, quiet = 0, random_init = 0;
    hl_opt opts[] = {
        {"adapter", 'a', HL_OPT_MULTI, &adapters, "DIR",
         "adapter directory (adapter_model.safetensors) or .safetensors file; repeat for several (required)"},
        {"what", 'w', HL_OPT_STRING, &what, "A|B|all", "which matrices to embed (default all)"},
        {"perplexity", 'p', HL_OPT_FLOAT, &perplexity, "P", "t-SNE perplexity (default 30; capped at (n-1)/3)"},
        {"iterations", 0, HL_OPT_INT, &iters, "N", "gradient steps (default 1000, at least 250)"},
        {"seed", 's', HL_OPT_LONG, &seed, "S", "seed (used by PCA's start vectors and --random-init; default 41)"},
        {"random-init", 0, HL_OPT_FLAG, &random_init, NULL, "start from random points instead of PCA"},
        {"out", 'o', HL_OPT_STRING, &out, "FILE", "CSV to write: adapter,layer,module,kind,head,group,x,y (required)"},
        {"quiet", 'q', HL_OPT_FLAG, &quiet, NULL, "no progress bar"},
        {0}};
    hl_args args = {
        .usage = "hydralora tsne --adapter DIR [--adapter DIR2 ...] [--what A|B|all] [--perplexity P] [--seed S] "
                 "--out FILE",
        .summary = "Exact t-SNE (PCA start, perplexity by binary search, early exaggeration, momentum and gains) of "
                   "the flattened LoRA matrices: every A and every head B_i of every layer and module. Matrices "
                   "of different shapes cannot share an embedding, so each (kind, shape) group - e.g. \"A 8x4096\", "
                   "\"B 11008x8\" - is embedded separately; the CSV's group column says which.",
        .opts = opts,
        .epilog = "example:\n  hydralora tsne --adapter runs/math/adapter --adapter runs/code/adapter --what all "
                  "--out tsne.csv"};
    int rc = hl_args_parse(&args, argc, argv);
    if (rc >= 0)
        return rc;
    if (adapters.count == 0 || !out) {
        fprintf(stderr, "hydralora tsne: --adapter DIR and --out FILE are required\nusage: %s\n", args.usage);
        return 2;
    }
    hl_tsne_what w;
    if (!strcmp(what, "A") || !strcmp(what, "a"))
        w = HL_TSNE_WHAT_A;
    else if (!strcmp(what, "B") || !strcmp(what, "b"))
        w = HL_TSNE_WHAT_B;
    else if (!strcmp(what, "all"))
        w = HL_TSNE_WHAT_ALL;
    else {
        fprintf(stderr, "hydralora tsne: --what must be A, B or all (got '%s')\n", what);
        return 2;
    }
    if (!(perplexity > 0) || iters < 1) {
        fprintf(stderr, "hydralora tsne: --perplexity and --iterations must be positive\n");
        return 2;
    }
    hl_tsne_options o = hl_tsne_defaults();
    o.perplexity = perplexity;
    o.n_iter = iters;
    o.seed = (uint64_t)seed;
    o.init_pca = !random_init;
    tsne_progress prog = {.quiet = quiet};
    hl_tsne_report rep;
    hl_status st = hl_tsne_adapters(adapters.items, adapters.count, w, &o, &rep, on_progress, &prog);
    if (prog.active)
        hl_progress_end(&prog.bar);
    if (st != HL_OK) {
        fprintf(stderr, "hydralora tsne: error: %s\n", hl_last_error());
        return 1;
    }
    int e = write_csv(out, &rep);
    if (e) {
        fprintf(stderr, "hydralora tsne: error: cannot write %s: %s\n", out, strerror(e));
        hl_tsne_report_free(&rep);
        return 1;
    }
    printf("%d points from %d adapter(s) in %d embedding(s) -> %s\n", rep.n_points, rep.n_adapters, rep.n_groups, out);
    for (int g = 0; g < rep.n_groups; g++) {
        if (rep.groups[g].n_points < 3)
            printf("  %-14s %5lld points: too few to embed, left out\n", rep.groups[g].name,
                   (long long)rep.groups[g].n_points);
        else
            printf("  %-14s %5lld points, KL %.4f after %d iterations\n", rep.groups[g].name,
                   (long long)rep.groups[g].n_points, rep.groups[g].kl, rep.groups[g].iterations);
    }
    hl_tsne_report_free(&rep);
    return 0;
}
