/* hydralora cluster: propose N (the number of HydraLoRA B heads) from the training texts.
 * TF-IDF -> k-means over a K range (or Ward's dendrogram cut at each K), scored by the mean
 * silhouette and the elbow of SSE(K) side by side; then a summary of each cluster. Text for people, --json for programs. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/progress.h"
#include "core/analysis/cluster.h"

typedef struct {
    hl_progress bar;
    char stage[64];
    int active, quiet;
} cli_progress;

/* One bar per phase (tfidf, kmeans, ward ...); the detailed stage ("kmeans K=4") goes after it. */
static int on_progress(void *user, const char *stage, double done, double total) {
    cli_progress *p = user;
    if (p->quiet)
        return 0;
    size_t plen = strcspn(stage, " ");
    if (!p->active || strlen(p->stage) != plen || strncmp(p->stage, stage, plen)) {
        if (p->active)
            hl_progress_end(&p->bar);
        snprintf(p->stage, sizeof p->stage, "%.*s", (int)plen, stage);
        hl_progress_begin(&p->bar, p->stage);
        p->active = 1;
    }
    const char *unit = !strcmp(p->stage, "kmeans")                                     ? "K"
                       : !strcmp(p->stage, "tfidf") || !strcmp(p->stage, "silhouette") ? "records"
                                                                                        : "steps";
    hl_progress_update(&p->bar, done, total, unit, stage[plen] ? stage + plen + 1 : NULL, 0);
    return 0;
}

static void progress_done(cli_progress *p) {
    if (p->active)
        hl_progress_end(&p->bar);
    p->active = 0;
}

/* "3" -> count 3; "0.5" -> fraction 0.5 (scikit-learn's int/float rule). */
static int parse_df(const char *s, int *count, double *frac, const char *name) {
    char *end = NULL;
    double v = strtod(s, &end);
    if (!*s || *end || !(v >= 0)) {
        fprintf(stderr, "hydralora cluster: --%s expects a count (e.g. 2) or a fraction (e.g. 0.5), got '%s'\n", name, s);
        return 0;
    }
    if (strchr(s, '.') || strchr(s, 'e')) {
        if (v > 1.0) {
            fprintf(stderr, "hydralora cluster: --%s fraction must be at most 1.0, got '%s'\n", name, s);
            return 0;
        }
        *frac = v, *count = 0;
    } else {
        if (v > 2147483647.0) {
            fprintf(stderr, "hydralora cluster: --%s is too large\n", name);
            return 0;
        }
        *count = (int)v, *frac = 0;
    }
    return 1;
}

/* Copy at most max_bytes of s (cut at a UTF-8 boundary) with newlines/tabs as spaces. */
static void snippet(const char *s, size_t max_bytes, char *out, size_t out_size) {
    size_t w = 0, len = strlen(s);
    if (max_bytes + 4 > out_size)
        max_bytes = out_size - 4;
    size_t cut = len <= max_bytes ? len : max_bytes;
    while (cut < len && cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
        cut--;
    int space = 0;
    for (size_t i = 0; i < cut; i++) {
        char c = s[i];
        if (c == '\n' || c == '\t' || c == '\r' || c == ' ') {
            if (!space && w)
                out[w++] = ' ';
            space = 1;
            continue;
        }
        space = 0;
        if ((unsigned char)c < 0x20)
            continue;
        out[w++] = c;
    }
    if (cut < len) {
        memcpy(out + w, "\xe2\x80\xa6", 3); /* … */
        w += 3;
    }
    out[w] = 0;
}

static void print_text(const hl_cluster_report *r, const hl_text_set *ts, const char *data, const hl_cluster_options *o) {
    const hl_tfidf *t = &r->tfidf;
    printf("%lld records from %s (%s", (long long)ts->n, data, ts->format);
    if (ts->n_skipped)
        printf(", %lld skipped", (long long)ts->n_skipped);
    printf(")\n");
    printf("TF-IDF: %lld terms kept of %lld (min_df ", (long long)t->n_terms, (long long)t->n_raw_terms);
    if (o->tfidf.min_df_frac > 0)
        printf("%g", o->tfidf.min_df_frac);
    else
        printf("%d", o->tfidf.min_df);
    printf(", %s tf, %s idf, %s), %lld non-zeros (%.1f per record)\n", o->tfidf.sublinear_tf ? "sublinear" : "raw",
           !o->tfidf.use_idf ? "no" : o->tfidf.smooth_idf ? "smooth" : "plain", o->tfidf.norm_l2 ? "l2" : "no norm",
           (long long)t->X.nnz, (double)t->X.nnz / (double)(t->X.n_rows ? t->X.n_rows : 1));
    if (r->method == HL_CLUSTER_KMEANS)
        printf("\nk-means (k-means++ seeding, %d restarts, Lloyd), SSE by K:\n", o->n_init);
    else
        printf("\nWard linkage on %lld records%s, SSE of the cut by K:\n", (long long)r->ward_n,
               r->ward_n < r->n_records ? " (random sample; --ward-max)" : "");
    double top = r->n_k ? r->per_k[0].sse : 0;
    for (int i = 0; i < r->n_k; i++)
        if (r->per_k[i].sse > top)
            top = r->per_k[i].sse;
    printf("  %4s %12s %8s %10s  %-30s %s\n", "K", "SSE", "elbow", "silhouette", "",
           r->method == HL_CLUSTER_KMEANS ? "iters  time" : "");
    for (int i = 0; i < r->n_k; i++) {
        const hl_cluster_k *k = &r->per_k[i];
        char bar[31], sil[16];
        int fill = top > 0 ? (int)lround(30.0 * k->sse / top) : 0;
        for (int j = 0; j < 30; j++)
            bar[j] = j < fill ? '#' : ' ';
        bar[30] = 0;
        if (isfinite(k->silhouette))
            snprintf(sil, sizeof sil, "%.4f", k->silhouette);
        else
            snprintf(sil, sizeof sil, "-");
        printf("  %4d %12.4f %8.4f %10s  %s", k->k, k->sse, k->elbow_score, sil, bar);
        if (r->method == HL_CLUSTER_KMEANS)
            printf(" %5d %5.2fs", k->iterations, k->seconds);
        /* which criteria pick this K */
        const char *sep = "  <- ";
        if (k->k == r->elbow_n)
            printf("%selbow", sep), sep = ", ";
        if (k->k == r->silhouette_n)
            printf("%ssilhouette", sep), sep = ", ";
        if (k->k == r->silhouette_best_n && r->silhouette_best_n != r->silhouette_n)
            printf("%shighest silhouette", sep), sep = ", ";
        printf("\n");
    }
    if (r->silhouette_records && r->silhouette_records < r->n_records)
        printf("  (silhouette on a random sample of %lld records; --silhouette-max)\n", (long long)r->silhouette_records);
    if (r->method == HL_CLUSTER_WARD && r->ward_n > 1) {
        int64_t m = r->ward_n;
        int show = (int)(m - 1 < 12 ? m - 1 : 12);
        printf("\nTop of the dendrogram (last %d of %lld merges; height = Ward distance):\n", show, (long long)(m - 1));
        printf("  %8s %8s %8s %12s %7s\n", "clusters", "merge a", "merge b", "height", "size");
        for (int64_t j = m - 2; j >= m - 1 - show; j--)
            printf("  %3lld->%-4lld %8d %8d %12.4f %7d\n", (long long)(m - j), (long long)(m - j - 1), r->merges[j].a,
                   r->merges[j].b, r->merges[j].height, r->merges[j].size);
    }
    printf("\nchoosing N: elbow of SSE %d, silhouette (first peak) ", r->elbow_n);
    if (r->silhouette_n)
        printf("%d, highest silhouette %d\n", r->silhouette_n, r->silhouette_best_n);
    else
        printf("- (too few records)\n");
    printf("proposed N = %d  (--criterion %s: %s)\n", r->proposed_n, hl_cluster_criterion_name(r->criterion),
           r->proposal_method);
    if (r->method == HL_CLUSTER_WARD)
        printf("largest gap in merge heights cuts at K = %d (second opinion)\n", r->gap_n);
    if (r->chosen_k != r->proposed_n)
        printf("showing K = %d (--k)\n", r->chosen_k);
    for (int c = 0; c < r->chosen_k; c++) {
        const hl_cluster_summary *s = &r->clusters[c];
        printf("\ncluster %d: %lld records (%.1f%%)\n  top terms:", c, (long long)s->size,
               100.0 * (double)s->size / (double)r->n_records);
        for (int j = 0; j < s->n_top; j++)
            printf("%s %s", j ? "," : "", t->terms[s->top_term[j]]);
        printf("\n");
        for (int e = 0; e < s->n_examples; e++) {
            char buf[512];
            snippet(ts->text[s->example[e]], 110, buf, sizeof buf);
            printf("  line %-6lld %s\n", (long long)ts->line[s->example[e]], buf);
        }
    }
    printf("\n%.2f s in total\n", r->total_seconds);
}

static cJSON *build_json(const hl_cluster_report *r, const hl_text_set *ts, const char *data, const char *fields,
                         const hl_cluster_options *o) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "data", data);
    cJSON_AddStringToObject(root, "format", ts->format);
    if (fields)
        cJSON_AddStringToObject(root, "fields", fields);
    else
        cJSON_AddStringToObject(root, "fields", "instruction,input (or question/text/prompt)");
    cJSON_AddNumberToObject(root, "records", (double)ts->n);
    cJSON_AddNumberToObject(root, "skipped", (double)ts->n_skipped);
    cJSON *warn = cJSON_AddArrayToObject(root, "warnings");
    for (int i = 0; i < ts->n_warnings; i++)
        cJSON_AddItemToArray(warn, cJSON_CreateString(ts->warnings[i]));
    const hl_tfidf *t = &r->tfidf;
    cJSON *tf = cJSON_AddObjectToObject(root, "tfidf");
    cJSON_AddStringToObject(tf, "token_pattern", "(?u)\\b\\w\\w+\\b");
    cJSON_AddBoolToObject(tf, "lowercase", o->tfidf.lowercase);
    if (o->tfidf.min_df_frac > 0)
        cJSON_AddNumberToObject(tf, "min_df", o->tfidf.min_df_frac);
    else
        cJSON_AddNumberToObject(tf, "min_df", o->tfidf.min_df);
    if (o->tfidf.max_df_frac > 0)
        cJSON_AddNumberToObject(tf, "max_df", o->tfidf.max_df_frac);
    else if (o->tfidf.max_df > 0)
        cJSON_AddNumberToObject(tf, "max_df", o->tfidf.max_df);
    else
        cJSON_AddNumberToObject(tf, "max_df", 1.0);
    if (o->tfidf.max_features > 0)
        cJSON_AddNumberToObject(tf, "max_features", o->tfidf.max_features);
    cJSON_AddBoolToObject(tf, "sublinear_tf", o->tfidf.sublinear_tf);
    cJSON_AddStringToObject(tf, "idf", !o->tfidf.use_idf ? "none" : o->tfidf.smooth_idf ? "smooth" : "plain");
    cJSON_AddStringToObject(tf, "norm", o->tfidf.norm_l2 ? "l2" : "none");
    cJSON_AddNumberToObject(tf, "terms", (double)t->n_terms);
    cJSON_AddNumberToObject(tf, "terms_before_pruning", (double)t->n_raw_terms);
    cJSON_AddNumberToObject(tf, "tokens", (double)t->n_tokens);
    cJSON_AddNumberToObject(tf, "nnz", (double)t->X.nnz);
    cJSON_AddStringToObject(root, "method", r->method == HL_CLUSTER_KMEANS ? "kmeans" : "ward");
    cJSON_AddNumberToObject(root, "k_min", o->k_min);
    cJSON_AddNumberToObject(root, "k_max", o->k_max);
    cJSON_AddNumberToObject(root, "seed", (double)o->seed);
    if (r->method == HL_CLUSTER_KMEANS)
        cJSON_AddNumberToObject(root, "restarts", o->n_init);
    cJSON *sse = cJSON_AddArrayToObject(root, "sse");
    for (int i = 0; i < r->n_k; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "k", r->per_k[i].k);
        cJSON_AddNumberToObject(e, "sse", r->per_k[i].sse);
        cJSON_AddNumberToObject(e, "elbow_score", r->per_k[i].elbow_score);
        if (isfinite(r->per_k[i].silhouette))
            cJSON_AddNumberToObject(e, "silhouette", r->per_k[i].silhouette);
        else
            cJSON_AddNullToObject(e, "silhouette");
        if (r->method == HL_CLUSTER_KMEANS) {
            cJSON_AddNumberToObject(e, "iterations", r->per_k[i].iterations);
            cJSON_AddNumberToObject(e, "restarts", r->per_k[i].restarts);
            cJSON_AddNumberToObject(e, "seconds", r->per_k[i].seconds);
        }
        cJSON_AddItemToArray(sse, e);
    }
    cJSON_AddNumberToObject(root, "proposed_n", r->proposed_n);
    cJSON_AddStringToObject(root, "proposal_method", r->proposal_method);
    cJSON_AddStringToObject(root, "criterion", hl_cluster_criterion_name(r->criterion));
    cJSON *crit = cJSON_AddObjectToObject(root, "criteria");
    cJSON_AddNumberToObject(crit, "elbow", r->elbow_n);
    if (r->silhouette_n) {
        cJSON_AddNumberToObject(crit, "silhouette", r->silhouette_n);
        cJSON_AddNumberToObject(crit, "silhouette_max", r->silhouette_best_n);
    } else {
        cJSON_AddNullToObject(crit, "silhouette");
        cJSON_AddNullToObject(crit, "silhouette_max");
    }
    cJSON_AddNumberToObject(root, "silhouette_records", (double)r->silhouette_records);
    if (r->method == HL_CLUSTER_WARD)
        cJSON_AddNumberToObject(root, "gap_proposal", r->gap_n);
    cJSON_AddNumberToObject(root, "k", r->chosen_k);
    cJSON *cl = cJSON_AddArrayToObject(root, "clusters");
    for (int c = 0; c < r->chosen_k; c++) {
        const hl_cluster_summary *s = &r->clusters[c];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "id", c);
        cJSON_AddNumberToObject(e, "size", (double)s->size);
        cJSON *terms = cJSON_AddArrayToObject(e, "top_terms");
        for (int j = 0; j < s->n_top; j++) {
            cJSON *tt = cJSON_CreateObject();
            cJSON_AddStringToObject(tt, "term", t->terms[s->top_term[j]]);
            cJSON_AddNumberToObject(tt, "weight", (double)s->top_weight[j]);
            cJSON_AddItemToArray(terms, tt);
        }
        cJSON *ex = cJSON_AddArrayToObject(e, "examples");
        for (int j = 0; j < s->n_examples; j++) {
            char buf[1024];
            snippet(ts->text[s->example[j]], 400, buf, sizeof buf);
            cJSON *x = cJSON_CreateObject();
            cJSON_AddNumberToObject(x, "record", (double)ts->index[s->example[j]]);
            cJSON_AddNumberToObject(x, "line", (double)ts->line[s->example[j]]);
            cJSON_AddStringToObject(x, "text", buf);
            cJSON_AddItemToArray(ex, x);
        }
        cJSON_AddItemToArray(cl, e);
    }
    /* labels[i] belongs to the i-th usable record; record_index maps it back to the file. */
    cJSON *lab = cJSON_AddArrayToObject(root, "labels");
    for (int64_t i = 0; i < r->n_records; i++)
        cJSON_AddItemToArray(lab, cJSON_CreateNumber(r->labels[i]));
    if (ts->n_skipped) {
        cJSON *ri = cJSON_AddArrayToObject(root, "record_index");
        for (int64_t i = 0; i < ts->n; i++)
            cJSON_AddItemToArray(ri, cJSON_CreateNumber((double)ts->index[i]));
    }
    if (r->method == HL_CLUSTER_WARD) {
        cJSON *dg = cJSON_AddObjectToObject(root, "dendrogram");
        cJSON_AddNumberToObject(dg, "leaves", (double)r->ward_n);
        cJSON_AddBoolToObject(dg, "sampled", r->ward_n < r->n_records);
        cJSON_AddStringToObject(dg, "convention",
                                "scipy linkage: merge m makes cluster leaves+m; [a, b, height, size]");
        if (r->ward_n < r->n_records) {
            cJSON *lr = cJSON_AddArrayToObject(dg, "leaf_records");
            for (int64_t i = 0; i < r->ward_n; i++)
                cJSON_AddItemToArray(lr, cJSON_CreateNumber((double)r->ward_records[i]));
        }
        cJSON *mg = cJSON_AddArrayToObject(dg, "merges");
        for (int64_t m = 0; m + 1 < r->ward_n; m++) {
            cJSON *e = cJSON_CreateArray();
            cJSON_AddItemToArray(e, cJSON_CreateNumber(r->merges[m].a));
            cJSON_AddItemToArray(e, cJSON_CreateNumber(r->merges[m].b));
            cJSON_AddItemToArray(e, cJSON_CreateNumber(r->merges[m].height));
            cJSON_AddItemToArray(e, cJSON_CreateNumber(r->merges[m].size));
            cJSON_AddItemToArray(mg, e);
        }
    }
    cJSON_AddNumberToObject(root, "seconds", r->total_seconds);
    return root;
}

int cmd_cluster(int argc, char **argv) {
    const char *data = NULL, *fields = NULL, *method = "kmeans", *min_df = "2", *max_df = "1.0";
    const char *tf = "sublinear", *idf = "smooth", *norm = "l2", *save = NULL;
    int k_min = 2, k_max = 12, k = 0, restarts = 4, max_iter = 300, ward_max = 3000, top_terms = 8, examples = 3;
    int sil_max = 3000;
    const char *criterion = "silhouette";
    int max_features = 0, json = 0, quiet = 0, no_lower = 0;
    long long seed = 41;
    hl_opt opts[] = {
        {"data", 'd', HL_OPT_STRING, &data, "FILE", "records: JSON lines, a JSON array, or a BBH task file (required)"},
        {"fields", 'f', HL_OPT_STRING, &fields, "LIST",
         "comma-separated text fields (default instruction,input; falls back to question/text/prompt)"},
        {"method", 'm', HL_OPT_STRING, &method, "kmeans|ward", "clustering method (default kmeans)"},
        {"k-min", 0, HL_OPT_INT, &k_min, "N", "smallest N considered (default 2)"},
        {"k-max", 0, HL_OPT_INT, &k_max, "N", "largest N considered (default 12)"},
        {"k", 'k', HL_OPT_INT, &k, "N", "summarise N clusters instead of the proposed N"},
        {"criterion", 'c', HL_OPT_STRING, &criterion, "NAME",
         "how N is proposed: silhouette (first peak of the mean silhouette, default), silhouette-max (its "
         "highest value) or elbow (knee of SSE); all three are shown"},
        {"silhouette-max", 0, HL_OPT_INT, &sil_max, "N",
         "score the silhouette on a random sample of at most N records (default 3000)"},
        {"seed", 's', HL_OPT_LONG, &seed, "S", "random seed (default 41)"},
        {"restarts", 0, HL_OPT_INT, &restarts, "N", "k-means restarts per K, best kept (default 4)"},
        {"max-iter", 0, HL_OPT_INT, &max_iter, "N", "k-means iterations per restart (default 300)"},
        {"ward-max", 0, HL_OPT_INT, &ward_max, "N",
         "Ward: cluster a random sample of at most N records, the rest join the nearest cluster (default 3000)"},
        {"min-df", 0, HL_OPT_STRING, &min_df, "X", "drop terms in fewer documents: count (2) or fraction (0.01); default 2"},
        {"max-df", 0, HL_OPT_STRING, &max_df, "X", "drop terms in more documents: count or fraction; default 1.0"},
        {"max-features", 0, HL_OPT_INT, &max_features, "N", "keep the N most frequent terms (default all)"},
        {"tf", 0, HL_OPT_STRING, &tf, "sublinear|raw", "term frequency: 1+ln(count) or count (default sublinear)"},
        {"idf", 0, HL_OPT_STRING, &idf, "smooth|plain|none", "idf: ln((1+n)/(1+df))+1, ln(n/df)+1, or 1 (default smooth)"},
        {"norm", 0, HL_OPT_STRING, &norm, "l2|none", "row normalisation (default l2)"},
        {"no-lowercase", 0, HL_OPT_FLAG, &no_lower, NULL, "keep case when tokenising"},
        {"top-terms", 0, HL_OPT_INT, &top_terms, "N", "terms shown per cluster (default 8)"},
        {"examples", 0, HL_OPT_INT, &examples, "N", "example records per cluster (default 3)"},
        {"save-features", 0, HL_OPT_STRING, &save, "FILE",
         "also write the TF-IDF matrix (MatrixMarket, vocabulary in %term comment lines)"},
        {"json", 0, HL_OPT_FLAG, &json, NULL,
         "print JSON (proposed_n, criteria, sse and silhouette per k, clusters, labels, dendrogram)"},
        {"quiet", 'q', HL_OPT_FLAG, &quiet, NULL, "no progress bar"},
        {0}};
    hl_args args = {
        .usage = "hydralora cluster --data FILE [--fields instruction,input] [--k-min 2 --k-max 12] "
                 "[--method kmeans|ward] [--seed S] [--json]",
        .summary = "Propose N, the number of HydraLoRA heads: TF-IDF features of the training texts, then k-means "
                   "(or Ward's hierarchy) for each K, scored two ways side by side: the mean silhouette s(K) "
                   "(how much closer each record is to its own cluster than to the next; the default proposal is "
                   "its first peak, which recovers distinct sources best) and the elbow of SSE(K) - the K "
                   "farthest below the chord from the first to the last point. "
                   "Tokens are runs of 2+ letters/digits/_ after lowercasing (scikit-learn's (?u)\\b\\w\\w+\\b).",
        .opts = opts,
        .epilog = "examples:\n"
                  "  hydralora cluster --data train.jsonl\n"
                  "  hydralora cluster --data dolly.jsonl --fields instruction,context --k-max 16 --json\n"
                  "  hydralora cluster --data gsm8k/train.jsonl --fields question --method ward"};
    int rc = hl_args_parse(&args, argc, argv);
    if (rc >= 0)
        return rc;
    if (!data) {
        fprintf(stderr, "hydralora cluster: --data FILE is required\nusage: %s\n", args.usage);
        return 2;
    }
    hl_cluster_options o = hl_cluster_defaults();
    if (!strcmp(method, "kmeans") || !strcmp(method, "k-means"))
        o.method = HL_CLUSTER_KMEANS;
    else if (!strcmp(method, "ward"))
        o.method = HL_CLUSTER_WARD;
    else {
        fprintf(stderr, "hydralora cluster: --method must be kmeans or ward, got '%s'\n", method);
        return 2;
    }
    if (k_min < 1 || k_max < k_min) {
        fprintf(stderr, "hydralora cluster: need 1 <= --k-min <= --k-max (got %d, %d)\n", k_min, k_max);
        return 2;
    }
    if (k < 0 || restarts < 1 || max_iter < 1 || ward_max < 2 || top_terms < 0 || examples < 0 || max_features < 0 ||
        sil_max < 3) {
        fprintf(stderr, "hydralora cluster: --k, --restarts, --max-iter, --ward-max, --silhouette-max, --top-terms, "
                        "--examples and --max-features must be positive\n");
        return 2;
    }
    if (hl_cluster_criterion_parse(criterion, &o.criterion) != HL_OK) {
        fprintf(stderr, "hydralora cluster: --criterion must be silhouette, silhouette-max or elbow, got '%s'\n",
                criterion);
        return 2;
    }
    if (!parse_df(min_df, &o.tfidf.min_df, &o.tfidf.min_df_frac, "min-df") ||
        !parse_df(max_df, &o.tfidf.max_df, &o.tfidf.max_df_frac, "max-df"))
        return 2;
    if (o.tfidf.min_df_frac == 0 && o.tfidf.min_df < 1)
        o.tfidf.min_df = 1;
    if (o.tfidf.max_df_frac == 0 && o.tfidf.max_df < 1) {
        fprintf(stderr, "hydralora cluster: --max-df count must be at least 1\n");
        return 2;
    }
    if (!strcmp(tf, "sublinear"))
        o.tfidf.sublinear_tf = 1;
    else if (!strcmp(tf, "raw"))
        o.tfidf.sublinear_tf = 0;
    else {
        fprintf(stderr, "hydralora cluster: --tf must be sublinear or raw\n");
        return 2;
    }
    if (!strcmp(idf, "smooth"))
        o.tfidf.use_idf = 1, o.tfidf.smooth_idf = 1;
    else if (!strcmp(idf, "plain"))
        o.tfidf.use_idf = 1, o.tfidf.smooth_idf = 0;
    else if (!strcmp(idf, "none"))
        o.tfidf.use_idf = 0;
    else {
        fprintf(stderr, "hydralora cluster: --idf must be smooth, plain or none\n");
        return 2;
    }
    if (!strcmp(norm, "l2") || !strcmp(norm, "none"))
        o.tfidf.norm_l2 = !strcmp(norm, "l2");
    else {
        fprintf(stderr, "hydralora cluster: --norm must be l2 or none\n");
        return 2;
    }
    o.tfidf.lowercase = !no_lower;
    o.tfidf.max_features = max_features;
    o.k_min = k_min, o.k_max = k_max, o.force_k = k, o.seed = (uint64_t)seed;
    o.n_init = restarts, o.max_iter = max_iter, o.ward_max = ward_max, o.silhouette_max = sil_max;
    o.top_terms = top_terms, o.examples = examples;

    hl_text_set ts;
    hl_status st = hl_text_set_read(data, fields, &ts);
    if (st != HL_OK) {
        fprintf(stderr, "hydralora cluster: error: %s\n", hl_last_error());
        for (int i = 0; i < ts.n_warnings; i++)
            fprintf(stderr, "  %s\n", ts.warnings[i]);
        return 1;
    }
    if (ts.n_skipped) {
        fprintf(stderr, "hydralora cluster: %lld record(s) skipped:\n", (long long)ts.n_skipped);
        for (int i = 0; i < ts.n_warnings; i++)
            fprintf(stderr, "  %s\n", ts.warnings[i]);
        if (ts.n_skipped > ts.n_warnings)
            fprintf(stderr, "  ... and %lld more\n", (long long)(ts.n_skipped - ts.n_warnings));
    }
    if (o.method == HL_CLUSTER_WARD && ts.n > ward_max)
        fprintf(stderr,
                "hydralora cluster: Ward needs n^2/2 distances (%lld records: %.0f MB); clustering a random sample of "
                "%d records (--ward-max), the others join their nearest cluster\n",
                (long long)ts.n, hl_ward_memory_bytes(ts.n) / 1e6, ward_max);
    cli_progress prog = {.quiet = quiet};
    hl_cluster_report rep;
    st = hl_cluster_run((const char *const *)ts.text, ts.n, &o, &rep, on_progress, &prog);
    progress_done(&prog);
    if (st != HL_OK) {
        fprintf(stderr, "hydralora cluster: error: %s\n", hl_last_error());
        hl_text_set_free(&ts);
        return 1;
    }
    rc = 0;
    if (save) {
        st = hl_tfidf_write_mtx(&rep.tfidf, save);
        if (st != HL_OK) {
            fprintf(stderr, "hydralora cluster: error: %s\n", hl_last_error());
            rc = 1;
        }
    }
    if (json) {
        cJSON *root = build_json(&rep, &ts, data, fields, &o);
        char *s = root ? cJSON_Print(root) : NULL;
        if (!s) {
            fprintf(stderr, "hydralora cluster: error: out of memory formatting JSON\n");
            rc = 1;
        } else {
            printf("%s\n", s);
        }
        free(s);
        cJSON_Delete(root);
    } else {
        print_text(&rep, &ts, data, &o);
    }
    hl_cluster_report_free(&rep);
    hl_text_set_free(&ts);
    return rc;
}
