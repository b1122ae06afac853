/* `hydralora score --routing` (see score_routing.h). */
#include "cli/score_routing.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/progress.h"

typedef struct {
    hl_progress bar;
    int started, quiet;
} progress_ctx;

static int on_progress(void *user, const char *stage, double done, double total) {
    progress_ctx *p = user;
    if (p->quiet || total <= 0)
        return 0;
    if (!p->started) {
        hl_progress_begin(&p->bar, stage);
        p->started = 1;
    }
    hl_progress_update(&p->bar, done, total, "sequences", NULL, done >= total);
    return 0;
}

static void source_label(const hl_routing_source *s, char *out, size_t n) {
    if (s->value[0])
        snprintf(out, n, "%s [%s]", s->value, s->file);
    else
        snprintf(out, n, "%s", s->file);
}

static void head_row(int N) {
    for (int e = 0; e < N; e++) {
        char h[16];
        snprintf(h, sizeof h, "E%d", e);
        printf(" %6s", h);
    }
}

/* One table per module: layer | mean weight per head | top-1 share per head | entropy | load CV. */
static void print_tables(const hl_routing_report *rep, const hl_routing_source *s) {
    const hl_routing_stats *st = &s->stats;
    int N = rep->N, pad = N * 7 - 12 > 0 ? N * 7 - 12 : 0;
    char label[1400];
    source_label(s, label, sizeof label);
    printf("== %s\n", label);
    printf("records %lld  positions %lld  targets %lld  loss %.6f\n", (long long)s->records, (long long)s->positions,
           (long long)s->targets, s->loss);
    for (int m = 0; m < rep->n_modules; m++) {
        int tg = rep->module_target[m];
        printf("%-9s mean weight%*s  | top-1 share%*s  | entropy  load CV\n", hl_target_name(tg), pad, "", pad, "");
        printf("  layer");
        head_row(N);
        printf(" |");
        head_row(N);
        printf(" |\n");
        for (int l = 0; l < rep->n_layers; l++) {
            printf("  L%-4d", l);
            for (int e = 0; e < N; e++)
                printf(" %6.4f", hl_routing_mean_weight(st, l, tg, e));
            printf(" |");
            for (int e = 0; e < N; e++)
                printf(" %6.4f", hl_routing_top1_share(st, l, tg, e));
            printf(" | %7.4f  %7.4f\n", hl_routing_mean_entropy(st, l, tg), hl_routing_load_cv(st, l, tg));
        }
    }
    printf("\n");
}

/* Source x head mean load (averaged over layers and modules), the dominant head marked '*',
 * and the difference from the pooled mean. */
static void print_summary(const hl_routing_report *rep) {
    int N = rep->N;
    size_t w = 6;
    char label[1400];
    for (int g = 0; g < rep->n_sources; g++) {
        source_label(&rep->src[g], label, sizeof label);
        size_t n = strlen(label);
        w = n > w ? n : w;
    }
    w = w > 60 ? 60 : w;
    printf("mean load by source (router weight averaged over layers and modules; * = the source's dominant head)\n");
    printf("%-*s", (int)w, "source");
    for (int e = 0; e < N; e++) {
        char h[16];
        snprintf(h, sizeof h, "E%d", e);
        printf("  %7s", h);
    }
    printf("  %9s  %s\n", "loss", "max |diff| from all");
    for (int g = 0; g <= rep->n_sources; g++) {
        const hl_routing_source *s = g < rep->n_sources ? &rep->src[g] : NULL;
        const hl_routing_stats *st = s ? &s->stats : &rep->all;
        if (s)
            source_label(s, label, sizeof label);
        else
            snprintf(label, sizeof label, "all");
        int best = 0;
        double v[HL_ADAPTER_MAX_HEADS], dmax = 0;
        for (int e = 0; e < N; e++) {
            v[e] = hl_routing_layer_mean(rep, st, -1, e);
            if (v[e] > v[best])
                best = e;
            double d = fabs(v[e] - hl_routing_layer_mean(rep, &rep->all, -1, e));
            dmax = d > dmax ? d : dmax;
        }
        printf("%-*.*s", (int)w, (int)w, label);
        for (int e = 0; e < N; e++)
            printf("  %6.4f%c", v[e], e == best ? '*' : ' ');
        if (s)
            printf("  %9.6f  %.4f\n", s->loss, dmax);
        else
            printf("\n");
    }
}

int hl_score_routing_run(const hl_routing_request *rq, int json, int quiet) {
    progress_ctx pc = {.quiet = quiet};
    hl_routing_report rep;
    hl_status st = hl_routing_by_source(rq, &rep, on_progress, &pc);
    if (pc.started)
        hl_progress_end(&pc.bar);
    if (st) {
        fprintf(stderr, "hydralora score: error: %s\n", hl_last_error());
        return 1;
    }
    if (rep.n_skipped)
        fprintf(stderr, "hydralora score: %lld record(s) without target tokens (after truncation) were left out\n",
                (long long)rep.n_skipped);
    int rc = 0;
    for (int g = 0; g < rep.n_sources && !rc; g++) {
        if (json) {
            char *j = hl_routing_source_json(&rep, &rep.src[g]);
            if (!j) {
                fprintf(stderr, "hydralora score: error: out of memory\n");
                rc = 1;
                break;
            }
            printf("%s\n", j);
            free(j);
        } else {
            print_tables(&rep, &rep.src[g]);
        }
    }
    if (!rc && !json)
        print_summary(&rep);
    hl_routing_report_free(&rep);
    if (fflush(stdout) != 0 && !rc) {
        fprintf(stderr, "hydralora score: error: writing output: %s\n", strerror(errno));
        rc = 1;
    }
    return rc;
}
