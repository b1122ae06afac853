/* bench_cluster: how long choosing N takes on a Dolly-sized corpus.
 *
 * databricks-dolly-15k is not in shared/, so a comparable corpus is synthesised from real
 * text: 15,000 records of 100-300 words, each built from one "topic" (GSM8K train questions,
 * GSM8K answers, or one of the 27 BIG-Bench Hard tasks) by concatenating random texts of
 * that topic. Prints TF-IDF time, k-means time per K and in total (K = 1..12), Ward on the
 * default 3,000-record sample, and exact t-SNE of 500 adapter-sized vectors, with ratios
 * against this machine's measured sgemm GFLOP/s and memory bandwidth.
 *
 * usage: bench_cluster [records (15000)] [shared dir (env HL_SHARED or ../shared)] */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/analysis/cluster.h"
#include "core/backend/cpu/gemm.h"
#include "core/base/rng.h"
#include "bench_common.h"

typedef struct {
    char **texts;
    int64_t n, cap;
} pool;

static void pool_add(pool *p, const char *s) {
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 256;
        p->texts = realloc(p->texts, (size_t)p->cap * sizeof *p->texts);
    }
    p->texts[p->n++] = strdup(s);
}

static int load_topic(pool *p, const char *path, const char *fields) {
    hl_text_set ts;
    if (hl_text_set_read(path, fields, &ts) != HL_OK) {
        fprintf(stderr, "bench_cluster: %s\n", hl_last_error());
        return 0;
    }
    for (int64_t i = 0; i < ts.n; i++)
        pool_add(p, ts.text[i]);
    hl_text_set_free(&ts);
    return 1;
}

static int count_words(const char *s) {
    int w = 0, in = 0;
    for (; *s; s++) {
        int sp = *s == ' ' || *s == '\n' || *s == '\t';
        if (!sp && !in)
            w++;
        in = !sp;
    }
    return w;
}

int main(int argc, char **argv) {
    int64_t n_records = argc > 1 ? atoll(argv[1]) : 15000;
    const char *shared = argc > 2 ? argv[2] : bench_shared_dir();
    char path[4096];

    /* Topics. */
    pool topics[40];
    int n_topics = 0;
    memset(topics, 0, sizeof topics);
    snprintf(path, sizeof path, "%s/datasets/gsm8k/train.jsonl", shared);
    if (load_topic(&topics[n_topics], path, "question"))
        n_topics++;
    if (load_topic(&topics[n_topics], path, "answer"))
        n_topics++;
    snprintf(path, sizeof path, "%s/datasets/bbh/data", shared);
    DIR *dir = opendir(path);
    if (dir) {
        struct dirent *de;
        char *names[64];
        int nn = 0;
        while ((de = readdir(dir)) && nn < 64)
            if (strstr(de->d_name, ".json"))
                names[nn++] = strdup(de->d_name);
        closedir(dir);
        for (int i = 0; i < nn; i++)
            for (int j = i + 1; j < nn; j++)
                if (strcmp(names[i], names[j]) > 0) {
                    char *t = names[i];
                    names[i] = names[j];
                    names[j] = t;
                }
        for (int i = 0; i < nn && n_topics < 40; i++) {
            snprintf(path, sizeof path, "%s/datasets/bbh/data/%s", shared, names[i]);
            if (load_topic(&topics[n_topics], path, "input"))
                n_topics++;
            free(names[i]);
        }
    }
    if (n_topics < 2) {
        fprintf(stderr, "bench_cluster: cannot read the shared data sets under %s (set HL_SHARED)\n", shared);
        return 1;
    }

    /* Corpus: each record one topic, 100-300 words. */
    hl_rng rng;
    hl_rng_seed(&rng, 2024, HL_RNG_STREAM_USER);
    char **docs = malloc((size_t)n_records * sizeof *docs);
    int64_t words = 0, bytes = 0;
    for (int64_t i = 0; i < n_records; i++) {
        pool *p = &topics[hl_rng_below(&rng, (uint64_t)n_topics)];
        int target = 100 + (int)hl_rng_below(&rng, 201);
        size_t cap = 4096, len = 0;
        char *s = malloc(cap);
        s[0] = 0;
        int w = 0;
        while (w < target) {
            const char *t = p->texts[hl_rng_below(&rng, (uint64_t)p->n)];
            size_t l = strlen(t);
            while (len + l + 2 > cap)
                s = realloc(s, cap *= 2);
            if (len)
                s[len++] = '\n';
            memcpy(s + len, t, l + 1);
            len += l;
            w += count_words(t);
        }
        docs[i] = s;
        words += w;
        bytes += (int64_t)len;
    }

    printf("bench_cluster: %lld records synthesised from %d topics (GSM8K questions/answers + BBH tasks)\n",
           (long long)n_records, n_topics);
    printf("  %.1f words/record on average, %.1f MB of text\n", (double)words / (double)n_records, (double)bytes / 1e6);
    double gflops = hl_sgemm_gflops(1024, 3);
    double bw = bench_read_bandwidth((size_t)256 << 20, 3);
    printf("machine: sgemm %.1f GFLOP/s (OpenBLAS, 1024^3), read bandwidth %.1f GB/s\n\n", gflops, bw);

    /* TF-IDF and k-means over K = 1..12 with the CLI's defaults, phase by phase. Wall and
     * process CPU time are both shown: on a shared machine the wall time mostly measures
     * the neighbours. */
    hl_cluster_options o = hl_cluster_defaults();
    hl_tfidf tf;
    double t0 = bench_now_s(), c0 = bench_cpu_now_s();
    if (hl_tfidf_fit_transform((const char *const *)docs, n_records, &o.tfidf, &tf, NULL, NULL) != HL_OK) {
        fprintf(stderr, "bench_cluster: %s\n", hl_last_error());
        return 1;
    }
    double tfidf_wall = bench_now_s() - t0, tfidf_cpu = bench_cpu_now_s() - c0;
    printf("TF-IDF (min_df 2, sublinear tf, l2): %lld terms, %lld non-zeros (%.0f per record): %.2f s wall, "
           "%.2f s CPU (%.1f MB/s of text)\n",
           (long long)tf.n_terms, (long long)tf.X.nnz, (double)tf.X.nnz / (double)n_records, tfidf_wall, tfidf_cpu,
           (double)bytes / 1e6 / tfidf_wall);
    printf("k-means (k-means++, %d restarts run in parallel, Lloyd with Hamerly bounds):\n", o.n_init);
    printf("  %3s %12s %6s %8s %8s %14s\n", "K", "SSE", "iters", "wall s", "CPU s", "Lloyd-eq GF/s");
    double ks[12], sse[12], eq_total = 0, passes = 0, km_wall = 0, km_cpu = 0;
    int iters[12];
    double walls[12], cpus[12];
    for (int k = 1; k <= 12; k++) {
        t0 = bench_now_s(), c0 = bench_cpu_now_s();
        hl_kmeans_result r;
        if (k == 1) {
            sse[0] = hl_kmeans_total_sse(&tf.X);
            iters[0] = 0;
        } else {
            hl_kmeans_options ko = hl_kmeans_defaults(k, o.seed);
            if (hl_kmeans_fit(&tf.X, &ko, &r, NULL, NULL, NULL) != HL_OK) {
                fprintf(stderr, "bench_cluster: %s\n", hl_last_error());
                return 1;
            }
            sse[k - 1] = r.sse;
            iters[k - 1] = r.n_iter;
            hl_kmeans_result_free(&r);
        }
        walls[k - 1] = bench_now_s() - t0, cpus[k - 1] = bench_cpu_now_s() - c0;
        ks[k - 1] = k;
        km_wall += walls[k - 1], km_cpu += cpus[k - 1];
    }
    int knee = hl_elbow_index(ks, sse, 12, NULL);
    for (int k = 1; k <= 12; k++) {
        /* work plain Lloyd would do for the best restart's iterations times the restarts:
         * 2 flops per non-zero per centre per iteration (+1 pass for the final assignment) */
        double it = k > 1 ? (double)(iters[k - 1] + 1) * o.n_init : 0;
        double eq = 2.0 * (double)tf.X.nnz * k * it;
        eq_total += eq, passes += it;
        printf("  %3d %12.2f %6d %8.3f %8.3f %14.2f%s\n", k, sse[k - 1], iters[k - 1], walls[k - 1], cpus[k - 1],
               walls[k - 1] > 0 ? eq / walls[k - 1] / 1e9 : 0.0, k - 1 == knee ? "  <- proposed" : "");
    }
    printf("  k-means total for K = 1..12: %.2f s wall (%.2f s per K), %.2f s CPU; with TF-IDF: %.2f s wall, "
           "%.2f s CPU; proposed N = %d\n",
           km_wall, km_wall / 12, km_cpu, km_wall + tfidf_wall, km_cpu + tfidf_cpu, knee + 1);
    double xbytes = (double)tf.X.nnz * 8;
    printf("  ratios: Lloyd-equivalent %.2f GF/s = %.3fx sgemm peak; X (%.1f MB) streamed at the equivalent of "
           "%.2f GB/s = %.3fx read bandwidth (Hamerly bounds skip most of that work)\n\n",
           eq_total / km_wall / 1e9, eq_total / km_wall / 1e9 / gflops, xbytes / 1e6, passes * xbytes / km_wall / 1e9,
           passes * xbytes / km_wall / 1e9 / bw);
    hl_tfidf_free(&tf);
    hl_cluster_report r;
    double total;

    /* Ward on the default sample. */
    o.method = HL_CLUSTER_WARD;
    t0 = bench_now_s(), c0 = bench_cpu_now_s();
    if (hl_cluster_run((const char *const *)docs, n_records, &o, &r, NULL, NULL) != HL_OK) {
        fprintf(stderr, "bench_cluster: %s\n", hl_last_error());
        return 1;
    }
    total = bench_now_s() - t0;
    double total_cpu = bench_cpu_now_s() - c0;
    double ward_time = r.per_k[0].seconds;
    double pairs = (double)r.ward_n * (double)(r.ward_n - 1) / 2;
    printf("Ward on a %lld-record sample (--ward-max %d): %.2f s for distances + linkage "
           "(%.0f M pairs, %.0f MB matrix, %.1f M pairs/s); whole run (TF-IDF, sample, Ward, assign the rest) "
           "%.2f s wall, %.2f s CPU; proposed N = %d\n",
           (long long)r.ward_n, o.ward_max, ward_time, pairs / 1e6, hl_ward_memory_bytes(r.ward_n) / 1e6,
           pairs / ward_time / 1e6, total, total_cpu, r.proposed_n);
    hl_cluster_report_free(&r);

    /* t-SNE of 500 adapter-sized vectors (r=8 x d_in=4096), 5 groups. */
    int64_t tn = 500, td = 8 * 4096;
    float *X = malloc((size_t)tn * (size_t)td * sizeof *X), *Y = malloc((size_t)tn * 2 * sizeof *Y);
    float *centre = malloc((size_t)5 * td * sizeof *centre);
    for (int64_t i = 0; i < 5 * td; i++)
        centre[i] = (float)(hl_rng_uniform_double(&rng) - 0.5);
    for (int64_t i = 0; i < tn; i++)
        for (int64_t j = 0; j < td; j++)
            X[i * td + j] = centre[(i % 5) * td + j] + 0.5f * (float)(hl_rng_uniform_double(&rng) - 0.5);
    hl_tsne_options to = hl_tsne_defaults();
    hl_tsne_info info;
    double *G = malloc((size_t)tn * tn * sizeof *G);
    t0 = bench_now_s(), c0 = bench_cpu_now_s();
    hl_tsne_gram(X, tn, td, G);
    double tg = bench_now_s() - t0, tg_cpu = bench_cpu_now_s() - c0;
    t0 = bench_now_s(), c0 = bench_cpu_now_s();
    hl_status st = hl_tsne_run_gram(G, tn, &to, Y, &info, NULL, NULL);
    double ts = bench_now_s() - t0, ts_cpu = bench_cpu_now_s() - c0;
    if (st != HL_OK) {
        fprintf(stderr, "bench_cluster: %s\n", hl_last_error());
        return 1;
    }
    double gram_flops = (double)tn * (tn + 1) / 2 * td * 2;
    printf("t-SNE of %lld vectors of %lld floats: Gram matrix %.2f s wall / %.2f s CPU (%.1f GFLOP/s double = "
           "%.2fx sgemm peak), exact t-SNE %.2f s wall / %.2f s CPU for %d iterations (%.1f M pair-updates/s), "
           "KL %.3f\n",
           (long long)tn, (long long)td, tg, tg_cpu, gram_flops / tg / 1e9, gram_flops / tg / 1e9 / gflops, ts, ts_cpu,
           info.iterations, (double)tn * tn * info.iterations / ts / 1e6, info.kl);
    free(X), free(Y), free(centre), free(G);
    for (int64_t i = 0; i < n_records; i++)
        free(docs[i]);
    free(docs);
    for (int t = 0; t < n_topics; t++) {
        for (int64_t i = 0; i < topics[t].n; i++)
            free(topics[t].texts[i]);
        free(topics[t].texts);
    }
    return 0;
}
