/* hl_tsne_adapters: t-SNE of the flattened A / B matrices of exported HydraLoRA (or LoRA)
 * adapters. Keys (docs/method.md §8):
 *   base_model.model.model.layers.{l}.mlp.{proj}.lora_A.weight        [r, d_in]
 *   base_model.model.model.layers.{l}.mlp.{proj}.lora_B{i}.weight     [d_out, r]
 *   base_model.model.model.layers.{l}.self_attn.{proj}.lora_...       (attention targets)
 * A plain LoRA's "lora_B.weight" is head 0. Routers and other tensors are ignored.
 * Matrices of different shapes cannot share an embedding (their flattened lengths differ),
 * so points are grouped by (kind, rows, cols) and every group gets its own t-SNE. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/analysis/cluster.h"
#include "core/formats/safetensors.h"

#define TSNE_MAX_GROUP_POINTS 5000

typedef struct {
    int adapter, layer, head;
    char module[24];
    char kind;
    const hl_st_tensor *t;
    int64_t rows, cols;
    int group;
} mat_entry;

/* Parse an adapter key; returns 1 and fills e on a match. */
static int parse_key(const char *name, mat_entry *e) {
    static const char prefix[] = "base_model.model.model.layers.";
    if (strncmp(name, prefix, sizeof prefix - 1))
        return 0;
    const char *p = name + sizeof prefix - 1;
    if (*p < '0' || *p > '9')
        return 0;
    long layer = 0;
    while (*p >= '0' && *p <= '9') {
        layer = layer * 10 + (*p++ - '0');
        if (layer > 1000000)
            return 0;
    }
    if (*p++ != '.')
        return 0;
    if (!strncmp(p, "mlp.", 4))
        p += 4;
    else if (!strncmp(p, "self_attn.", 10))
        p += 10;
    else
        return 0;
    const char *dot = strchr(p, '.');
    if (!dot || dot == p || (size_t)(dot - p) >= sizeof e->module)
        return 0;
    memcpy(e->module, p, (size_t)(dot - p));
    e->module[dot - p] = 0;
    p = dot + 1;
    if (!strcmp(p, "lora_A.weight")) {
        e->kind = 'A', e->head = -1;
    } else if (!strcmp(p, "lora_B.weight")) {
        e->kind = 'B', e->head = 0;
    } else if (!strncmp(p, "lora_B", 6) && p[6] >= '0' && p[6] <= '9') {
        p += 6;
        long h = 0;
        while (*p >= '0' && *p <= '9') {
            h = h * 10 + (*p++ - '0');
            if (h > 100000)
                return 0;
        }
        if (strcmp(p, ".weight"))
            return 0;
        e->kind = 'B', e->head = (int)h;
    } else {
        return 0;
    }
    e->layer = (int)layer;
    return 1;
}

static int cmp_entry(const void *a, const void *b) {
    const mat_entry *x = a, *y = b;
    if (x->group != y->group)
        return x->group - y->group;
    if (x->adapter != y->adapter)
        return x->adapter - y->adapter;
    if (x->layer != y->layer)
        return x->layer - y->layer;
    int c = strcmp(x->module, y->module);
    if (c)
        return c;
    if (x->kind != y->kind)
        return x->kind - y->kind;
    return x->head - y->head;
}

void hl_tsne_report_free(hl_tsne_report *r) {
    if (!r)
        return;
    free(r->points);
    free(r->groups);
    for (int i = 0; i < r->n_adapters; i++)
        free(r->adapter_names ? r->adapter_names[i] : NULL);
    free(r->adapter_names);
    memset(r, 0, sizeof *r);
}

typedef struct {
    hl_cluster_progress_fn fn;
    void *user;
    int group, n_groups;
    char stage[64];
} group_progress;

static int forward_progress(void *u, const char *stage, double done, double total) {
    group_progress *g = u;
    (void)stage;
    return g->fn ? g->fn(g->user, g->stage, done, total) : 0;
}

hl_status hl_tsne_adapters(const char *const *dirs, int n_dirs, hl_tsne_what what, const hl_tsne_options *opt,
                           hl_tsne_report *out, hl_cluster_progress_fn progress, void *user) {
    memset(out, 0, sizeof *out);
    if (n_dirs < 1)
        return hl_fail(HL_ERR_ARG, "no adapter given");
    hl_safetensors **files = calloc((size_t)n_dirs, sizeof *files);
    mat_entry *ents = NULL;
    int n_ents = 0, cap = 0;
    float *X = NULL, *Y = NULL;
    hl_status st = HL_OK;
    out->adapter_names = calloc((size_t)n_dirs, sizeof *out->adapter_names);
    if (!files || !out->adapter_names) {
        st = hl_fail(HL_ERR_NOMEM, "out of memory");
        goto done;
    }
    out->n_adapters = n_dirs;
    for (int a = 0; a < n_dirs; a++) {
        out->adapter_names[a] = strdup(dirs[a]);
        if (!out->adapter_names[a]) {
            st = hl_fail(HL_ERR_NOMEM, "out of memory");
            goto done;
        }
        struct stat sb;
        char path[4096];
        if (stat(dirs[a], &sb) == 0 && S_ISDIR(sb.st_mode)) {
            if (snprintf(path, sizeof path, "%s/adapter_model.safetensors", dirs[a]) >= (int)sizeof path) {
                st = hl_fail(HL_ERR_ARG, "path too long: %s", dirs[a]);
                goto done;
            }
        } else {
            snprintf(path, sizeof path, "%s", dirs[a]);
        }
        st = hl_st_open(&files[a], path);
        if (st != HL_OK) {
            hl_fail_context(st, "adapter %s", dirs[a]);
            goto done;
        }
        int found = 0;
        for (int i = 0; i < hl_st_count(files[a]); i++) {
            const hl_st_tensor *t = hl_st_at(files[a], i);
            mat_entry e;
            memset(&e, 0, sizeof e);
            if (!parse_key(t->name, &e))
                continue;
            found++;
            if ((e.kind == 'A' && !(what & HL_TSNE_WHAT_A)) || (e.kind == 'B' && !(what & HL_TSNE_WHAT_B)))
                continue;
            hl_dtype dt;
            if (t->ndim != 2 || !hl_st_dtype_to_hl(t->dtype, &dt)) {
                st = hl_fail(HL_ERR_FORMAT, "%s: tensor %s should be a 2-D F32/F16/BF16 matrix (it is %d-D %s)", path,
                             t->name, t->ndim, hl_st_dtype_name(t->dtype));
                goto done;
            }
            e.adapter = a, e.t = t, e.rows = t->shape[0], e.cols = t->shape[1];
            if (n_ents == cap) {
                cap = cap ? cap * 2 : 256;
                mat_entry *ne = realloc(ents, (size_t)cap * sizeof *ne);
                if (!ne) {
                    st = hl_fail(HL_ERR_NOMEM, "out of memory");
                    goto done;
                }
                ents = ne;
            }
            ents[n_ents++] = e;
        }
        if (!found) {
            st = hl_fail(HL_ERR_FORMAT,
                         "%s: no LoRA matrices (expected keys like "
                         "base_model.model.model.layers.0.mlp.gate_proj.lora_A.weight)",
                         path);
            goto done;
        }
    }
    if (n_ents == 0) {
        st = hl_fail(HL_ERR_NOT_FOUND, "the adapters hold no %s matrices", what == HL_TSNE_WHAT_A ? "A" : "B");
        goto done;
    }
    /* Groups by (kind, rows, cols), ordered A before B, then by shape. */
    out->groups = calloc((size_t)n_ents, sizeof *out->groups);
    if (!out->groups) {
        st = hl_fail(HL_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < n_ents; i++) {
        int g = 0;
        for (; g < out->n_groups; g++)
            if (out->groups[g].kind == ents[i].kind && out->groups[g].rows == ents[i].rows &&
                out->groups[g].cols == ents[i].cols)
                break;
        if (g == out->n_groups) {
            hl_tsne_group *ng = &out->groups[out->n_groups++];
            ng->kind = ents[i].kind, ng->rows = ents[i].rows, ng->cols = ents[i].cols;
            snprintf(ng->name, sizeof ng->name, "%c %lldx%lld", ng->kind, (long long)ng->rows, (long long)ng->cols);
        }
        out->groups[g].n_points++;
        ents[i].group = g;
    }
    /* canonical group order */
    for (int g = 0; g < out->n_groups; g++)
        for (int h = g + 1; h < out->n_groups; h++) {
            hl_tsne_group *x = &out->groups[g], *y = &out->groups[h];
            int swap = x->kind != y->kind ? x->kind > y->kind : x->rows != y->rows ? x->rows > y->rows : x->cols > y->cols;
            if (swap) {
                hl_tsne_group t = *x;
                *x = *y;
                *y = t;
                for (int i = 0; i < n_ents; i++)
                    ents[i].group = ents[i].group == g ? h : ents[i].group == h ? g : ents[i].group;
            }
        }
    qsort(ents, (size_t)n_ents, sizeof *ents, cmp_entry);
    out->points = calloc((size_t)n_ents, sizeof *out->points);
    if (!out->points) {
        st = hl_fail(HL_ERR_NOMEM, "out of memory");
        goto done;
    }
    int start = 0;
    for (int g = 0; g < out->n_groups; g++) {
        hl_tsne_group *grp = &out->groups[g];
        int np = (int)grp->n_points;
        const mat_entry *ge = ents + start;
        start += np;
        if (np < 3)
            continue; /* too few to embed; reported with n_points but no coordinates */
        if (np > TSNE_MAX_GROUP_POINTS) {
            st = hl_fail(HL_ERR_RANGE, "%d %s matrices: exact t-SNE is limited to %d points per embedding "
                         "(choose --what A or B, or fewer adapters)", np, grp->name, TSNE_MAX_GROUP_POINTS);
            goto done;
        }
        int64_t d = grp->rows * grp->cols;
        X = malloc((size_t)np * (size_t)d * sizeof *X);
        Y = malloc((size_t)np * 2 * sizeof *Y);
        if (!X || !Y) {
            st = hl_fail(HL_ERR_NOMEM, "out of memory for %d matrices of %s (%.0f MB)", np, grp->name,
                         (double)np * (double)d * 4 / 1e6);
            goto done;
        }
        for (int i = 0; i < np; i++) {
            st = hl_st_tensor_to_f32(ge[i].t, X + (size_t)i * d);
            if (st != HL_OK)
                goto done;
        }
        group_progress gp = {.fn = progress, .user = user, .group = g, .n_groups = out->n_groups};
        snprintf(gp.stage, sizeof gp.stage, "tsne %s", grp->name);
        hl_tsne_info info;
        st = hl_tsne_run(X, np, d, opt, Y, &info, forward_progress, &gp);
        if (st != HL_OK) {
            hl_fail_context(st, "t-SNE of %s", grp->name);
            goto done;
        }
        grp->kl = info.kl;
        grp->iterations = info.iterations;
        for (int i = 0; i < np; i++) {
            hl_tsne_point *p = &out->points[out->n_points++];
            p->adapter = ge[i].adapter, p->layer = ge[i].layer, p->kind = ge[i].kind, p->head = ge[i].head;
            p->group = g;
            memcpy(p->module, ge[i].module, sizeof p->module);
            p->x = Y[2 * i], p->y = Y[2 * i + 1];
        }
        free(X), free(Y);
        X = Y = NULL;
    }
    if (out->n_points == 0)
        st = hl_fail(HL_ERR_ARG, "every group of equal-shape matrices has fewer than 3 members; "
                     "give more adapters or layers");
done:
    free(X), free(Y);
    free(ents);
    for (int a = 0; files && a < n_dirs; a++)
        if (files[a])
            hl_st_close(files[a]);
    free(files);
    if (st != HL_OK)
        hl_tsne_report_free(out);
    return st;
}
