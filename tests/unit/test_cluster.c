/* Unit tests for the clustering library: tokenizer, TF-IDF formulas, k-means, elbow, Ward
 * (hand-computed dendrogram), record reader, t-SNE, adapter key parsing and grouping.
 * Expected values come from the documented formulas worked by hand, not from our output. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/analysis/cluster.h"
#include "core/base/rng.h"
#include "core/formats/safetensors.h"
#include "tests/unit/hl_test.h"

typedef struct {
    char toks[32][32];
    int n;
} tok_list;

static void collect(void *user, const char *tok, int len) {
    tok_list *t = user;
    if (t->n < 32 && len < 32) {
        memcpy(t->toks[t->n], tok, (size_t)len);
        t->toks[t->n][len] = 0;
        t->n++;
    }
}

static void test_tokenizer(void) {
    /* re.findall(r"(?u)\b\w\w+\b", s.lower()) */
    const char *s = "Hello, World! a_b c 42 x y7 don't \xc3\x89" "COLE caf\xc3\xa9 -- __ \xff\xfe bad";
    const char *want[] = {"hello", "world", "a_b", "42", "y7", "don", ("\xc3\xa9" "cole"), "caf\xc3\xa9", "__", "bad"};
    tok_list t = {.n = 0};
    hl_tfidf_tokenize(s, 1, collect, &t);
    CHECK(t.n == (int)(sizeof want / sizeof *want), "token count %d", t.n);
    for (int i = 0; i < t.n && i < (int)(sizeof want / sizeof *want); i++)
        CHECK(!strcmp(t.toks[i], want[i]), "token %d: '%s' want '%s'", i, t.toks[i], want[i]);
    tok_list u = {.n = 0};
    hl_tfidf_tokenize("MiXeD Case", 0, collect, &u);
    CHECK(u.n == 2 && !strcmp(u.toks[0], "MiXeD"), "no lowercasing keeps case");
    /* a long token is not cut */
    char longw[2000];
    memset(longw, 'a', sizeof longw - 1);
    longw[sizeof longw - 1] = 0;
    tok_list v = {.n = 0};
    hl_tfidf_tokenize(longw, 1, collect, &v); /* too long for collect's buffer: counted 0 */
    CHECK(v.n == 0, "long token delivered whole (not split into pieces)");
}

static void test_tfidf(void) {
    const char *docs[] = {"apple banana", "Apple apple cherry", "banana", "!!"};
    hl_tfidf_options o = hl_tfidf_defaults();
    hl_tfidf t;
    CHECK(hl_tfidf_fit_transform(docs, 4, &o, &t, NULL, NULL) == HL_OK, "fit: %s", hl_last_error());
    CHECK(t.n_terms == 3, "terms %lld", (long long)t.n_terms);
    CHECK(!strcmp(t.terms[0], "apple") && !strcmp(t.terms[1], "banana") && !strcmp(t.terms[2], "cherry"), "sorted");
    /* n = 4; idf = ln(5 / (1 + df)) + 1 */
    double ia = log(5.0 / 3.0) + 1, ic = log(5.0 / 2.0) + 1;
    CHECK_CLOSE(t.idf[0], ia, 1e-12, "idf apple");
    CHECK_CLOSE(t.idf[2], ic, 1e-12, "idf cherry");
    /* doc 1: apple tf 2, cherry tf 1 */
    double a = 2 * ia, c = ic, nn = sqrt(a * a + c * c);
    CHECK(t.X.row_ptr[2] - t.X.row_ptr[1] == 2, "doc 1 nnz");
    CHECK_CLOSE(t.X.val[t.X.row_ptr[1]], a / nn, 1e-6, "doc 1 apple");
    CHECK_CLOSE(t.X.val[t.X.row_ptr[1] + 1], c / nn, 1e-6, "doc 1 cherry");
    CHECK(t.X.row_ptr[4] == t.X.row_ptr[3], "empty document has an empty row");
    hl_tfidf_free(&t);

    /* sublinear tf and min_df */
    o.sublinear_tf = 1;
    o.min_df = 2;
    CHECK(hl_tfidf_fit_transform(docs, 4, &o, &t, NULL, NULL) == HL_OK, "fit 2");
    CHECK(t.n_terms == 2, "min_df 2 drops cherry: %lld", (long long)t.n_terms);
    CHECK(t.X.row_ptr[2] - t.X.row_ptr[1] == 1 && fabs(t.X.val[t.X.row_ptr[1]] - 1.0) < 1e-6,
          "doc 1 only apple, normalised to 1");
    hl_tfidf_free(&t);
    o.min_df = 3;
    CHECK(hl_tfidf_fit_transform(docs, 4, &o, &t, NULL, NULL) == HL_ERR_ARG, "nothing left after pruning");
    CHECK(strstr(hl_last_error(), "min-df") != NULL, "hint names --min-df: %s", hl_last_error());
    o.min_df = 5;
    CHECK(hl_tfidf_fit_transform(docs, 4, &o, &t, NULL, NULL) == HL_ERR_ARG, "min_df above the document count");
}

/* Three groups of sparse rows on disjoint columns. */
static void make_blobs(hl_csr *X, int per, int dims_per) {
    int n = 3 * per;
    X->n_rows = n, X->n_cols = 3 * dims_per, X->nnz = (int64_t)n * dims_per;
    X->row_ptr = malloc((size_t)(n + 1) * sizeof *X->row_ptr);
    X->col = malloc((size_t)X->nnz * sizeof *X->col);
    X->val = malloc((size_t)X->nnz * sizeof *X->val);
    hl_rng rng;
    hl_rng_seed(&rng, 7, HL_RNG_STREAM_USER);
    int64_t w = 0;
    for (int i = 0; i < n; i++) {
        X->row_ptr[i] = w;
        int g = i % 3;
        for (int j = 0; j < dims_per; j++) {
            X->col[w] = g * dims_per + j;
            X->val[w] = 1.0f + 0.2f * (float)(hl_rng_uniform_double(&rng) - 0.5);
            w++;
        }
    }
    X->row_ptr[n] = w;
}

static void test_kmeans(void) {
    hl_csr X;
    make_blobs(&X, 20, 4);
    /* exact within-group SSE of the true partition */
    double want = 0;
    for (int g = 0; g < 3; g++)
        for (int j = 0; j < 4; j++) {
            double m = 0, s = 0;
            for (int i = g; i < 60; i += 3)
                m += X.val[X.row_ptr[i] + j];
            m /= 20;
            for (int i = g; i < 60; i += 3)
                s += (X.val[X.row_ptr[i] + j] - m) * (X.val[X.row_ptr[i] + j] - m);
            want += s;
        }
    hl_kmeans_options o = hl_kmeans_defaults(3, 1);
    hl_kmeans_result r;
    CHECK(hl_kmeans_fit(&X, &o, &r, NULL, NULL, NULL) == HL_OK, "kmeans: %s", hl_last_error());
    CHECK_CLOSE(r.sse, want, 1e-6, "SSE of the true partition");
    int ok = 1;
    for (int i = 3; i < 60; i++)
        ok &= r.labels[i] == r.labels[i % 3];
    CHECK(ok && r.labels[0] != r.labels[1] && r.labels[1] != r.labels[2], "labels follow the groups");
    CHECK(r.sizes[0] == 20 && r.sizes[1] == 20 && r.sizes[2] == 20, "sizes");
    hl_kmeans_result_free(&r);
    /* more clusters than distinct groups still works; k > n refused */
    o.k = 61;
    CHECK(hl_kmeans_fit(&X, &o, &r, NULL, NULL, NULL) == HL_ERR_ARG, "k > n refused");
    /* total SSE (K = 1) by hand: per column, values of 20 rows (others are 0 in 40 rows) */
    double tss = 0;
    for (int c = 0; c < 12; c++) {
        double s = 0, s2 = 0;
        for (int i = c / 4; i < 60; i += 3) {
            double v = X.val[X.row_ptr[i] + c % 4];
            s += v, s2 += v * v;
        }
        tss += s2 - s * s / 60;
    }
    CHECK_CLOSE(hl_kmeans_total_sse(&X), tss, 1e-9, "SSE(1)");
    hl_csr_free(&X);
}

static void test_elbow(void) {
    double x[] = {1, 2, 3, 4, 5, 6}, y[] = {100, 50, 10, 9, 8, 7}, s[6];
    CHECK(hl_elbow_index(x, y, 6, s) == 2, "knee at K=3");
    /* by hand: x_n = 0.4, y_n = 3/93 */
    CHECK_CLOSE(s[2], 0.6 - 3.0 / 93.0, 1e-12, "score");
    double y2[] = {100, 80, 60, 40, 20, 0};
    CHECK(hl_elbow_index(x, y2, 6, NULL) == 0, "straight line: no knee");
    double y3[] = {100, 50, 60, 9, 8, 7}; /* a bad restart at K=3 is smoothed by the running minimum */
    CHECK(hl_elbow_index(x, y3, 6, NULL) == 3, "running minimum");
}

static void test_ward(void) {
    float X[] = {0, 1, 5, 7, 20};
    hl_ward_merge m[4];
    CHECK(hl_ward_fit_dense(X, 5, 1, m, NULL, NULL) == HL_OK, "ward");
    /* by hand: {0,1} at 1; {5,7} at 2; {0,1}+{5,7} at sqrt(2*2*2/4)*5.5; all at sqrt(2*4*1/5)*16.75 */
    CHECK(m[0].a == 0 && m[0].b == 1 && fabs(m[0].height - 1) < 1e-12 && m[0].size == 2, "merge 0");
    CHECK(m[1].a == 2 && m[1].b == 3 && fabs(m[1].height - 2) < 1e-12, "merge 1");
    CHECK(m[2].a == 5 && m[2].b == 6 && fabs(m[2].height - sqrt(2.0) * 5.5) < 1e-9 && m[2].size == 4, "merge 2");
    CHECK(m[3].a == 4 && m[3].b == 7 && fabs(m[3].height - sqrt(1.6) * 16.75) < 1e-9 && m[3].size == 5, "merge 3");
    int32_t lab[5];
    CHECK(hl_ward_cut(m, 5, 3, lab) == HL_OK, "cut");
    CHECK(lab[0] == 0 && lab[1] == 0 && lab[2] == 1 && lab[3] == 1 && lab[4] == 2, "cut into 3");
    double sse[5];
    hl_ward_sse_curve(m, 5, sse);
    CHECK_CLOSE(sse[0], 257.2, 1e-9, "SSE(1) = total sum of squares");
    CHECK_CLOSE(sse[2], 0.5 * 1 + 0.5 * 4 + 0, 1e-9, "SSE(3) = 0.5 + 2");
    CHECK(hl_ward_propose_gap(m, 5, 2, 4, NULL) == 2, "largest gap at K=2");
    /* sparse input gives the same tree */
    hl_csr S = {0};
    S.n_rows = 5, S.n_cols = 1, S.nnz = 4;
    int64_t rp[] = {0, 0, 1, 2, 3, 4};
    int32_t col[] = {0, 0, 0, 0};
    float val[] = {1, 5, 7, 20};
    S.row_ptr = rp, S.col = col, S.val = val;
    hl_ward_merge m2[4];
    CHECK(hl_ward_fit_csr(&S, m2, NULL, NULL) == HL_OK, "ward csr");
    int same = 1;
    for (int i = 0; i < 4; i++)
        same &= m2[i].a == m[i].a && m2[i].b == m[i].b && fabs(m2[i].height - m[i].height) < 1e-9;
    CHECK(same, "sparse and dense trees agree");
}

static void test_reader(void) {
    hl_text_set t;
    const char *jl = "{\"instruction\":\"one\",\"input\":\"two\"}\n\n  \n{bad json\n[1]\n{\"question\":\"q?\"}\n"
                     "{\"other\":1}\n{\"input\":\"only input\"}";
    CHECK(hl_text_set_parse(jl, strlen(jl), NULL, "t.jsonl", &t) == HL_OK, "jsonl: %s", hl_last_error());
    CHECK(t.n == 3 && t.n_skipped == 3, "kept %lld skipped %lld", (long long)t.n, (long long)t.n_skipped);
    if (t.n == 3) {
        CHECK(!strcmp(t.text[0], "one\ntwo"), "joined fields: '%s'", t.text[0]);
        CHECK(!strcmp(t.text[1], "q?") && t.line[1] == 6, "question fallback, line 6 (got %lld)", (long long)t.line[1]);
        CHECK(!strcmp(t.text[2], "only input") && t.line[2] == 8 && t.index[2] == 5, "last line without newline");
    }
    CHECK(t.n_warnings == 3 && strstr(t.warnings[0], "t.jsonl:4") != NULL, "warning names line 4: %s",
          t.n_warnings ? t.warnings[0] : "");
    hl_text_set_free(&t);

    const char *arr = "\xef\xbb\xbf[\n {\"text\": \"a\"},\n {\"text\": \"b\", \"prompt\": \"p\"}\n]\n";
    CHECK(hl_text_set_parse(arr, strlen(arr), "prompt, text", "a.json", &t) == HL_OK, "array");
    CHECK(t.n == 2 && !strcmp(t.text[1], "p\nb") && t.line[1] == 3, "fields in list order");
    hl_text_set_free(&t);

    const char *bbh = "{\"canary\": \"x\", \"examples\": [{\"input\": \"i1\", \"target\": \"t\"}, {\"input\": \"i2\"}]}";
    CHECK(hl_text_set_parse(bbh, strlen(bbh), NULL, "b.json", &t) == HL_OK && t.n == 2 &&
              !strcmp(t.format, "bbh-examples"),
          "bbh file");
    hl_text_set_free(&t);

    const char *trunc = "[{\"text\": \"a\"},\n {\"text\": \"b";
    CHECK(hl_text_set_parse(trunc, strlen(trunc), "text", "tr.json", &t) == HL_ERR_FORMAT, "truncated array");
    CHECK(strstr(hl_last_error(), "tr.json:2") != NULL, "error names line 2: %s", hl_last_error());
    CHECK(hl_text_set_parse("", 0, NULL, "e", &t) == HL_ERR_FORMAT, "empty file");
    CHECK(hl_text_set_parse("{\"x\":1}\n", 8, NULL, "e", &t) == HL_ERR_FORMAT, "no usable record");
}

static void test_cluster_run(void) {
    /* Three topics with disjoint vocabularies: the elbow must find 3. */
    const char *vocab[3][6] = {{"apple", "banana", "cherry", "grape", "lemon", "mango"},
                               {"engine", "wheel", "brake", "piston", "clutch", "gear"},
                               {"violin", "piano", "guitar", "drum", "flute", "cello"}};
    char *docs[90];
    hl_rng rng;
    hl_rng_seed(&rng, 3, HL_RNG_STREAM_USER);
    for (int i = 0; i < 90; i++) {
        char buf[256] = "";
        for (int w = 0; w < 6; w++) {
            strcat(buf, vocab[i % 3][hl_rng_below(&rng, 6)]);
            strcat(buf, " ");
        }
        strcat(buf, "the common words");
        docs[i] = strdup(buf);
    }
    hl_cluster_options o = hl_cluster_defaults();
    o.k_max = 8;
    hl_cluster_report r;
    CHECK(hl_cluster_run((const char *const *)docs, 90, &o, &r, NULL, NULL) == HL_OK, "run: %s", hl_last_error());
    CHECK(r.proposed_n == 3, "proposed %d", r.proposed_n);
    CHECK(r.n_k == 8 && r.per_k[0].k == 1, "curve starts at K = 1");
    int pure = 1;
    for (int i = 3; i < 90; i++)
        pure &= r.labels[i] == r.labels[i % 3];
    CHECK(pure, "labels follow topics");
    if (r.chosen_k == 3) {
        const char *top = r.tfidf.terms[r.clusters[0].top_term[0]];
        int in_topic = 0;
        for (int g = 0; g < 3; g++)
            for (int w = 0; w < 6; w++)
                in_topic |= !strcmp(top, vocab[g][w]);
        CHECK(in_topic, "top term is a topic word, not a common one: %s", top);
        CHECK(r.clusters[0].n_examples == 3, "three examples");
    }
    hl_cluster_report_free(&r);
    o.method = HL_CLUSTER_WARD;
    o.ward_max = 40; /* sample, the rest join the nearest centroid */
    CHECK(hl_cluster_run((const char *const *)docs, 90, &o, &r, NULL, NULL) == HL_OK, "ward run");
    CHECK(r.proposed_n == 3 && r.ward_n == 40, "ward proposed %d on %lld leaves", r.proposed_n, (long long)r.ward_n);
    pure = 1;
    for (int i = 3; i < 90; i++)
        pure &= r.labels[i] == r.labels[i % 3];
    CHECK(pure, "ward labels (sampled + assigned) follow topics");
    hl_cluster_report_free(&r);
    for (int i = 0; i < 90; i++)
        free(docs[i]);
}

static void test_tsne(void) {
    /* Three well separated Gaussian blobs in 20-D: every point's nearest neighbour in the
     * embedding must come from its own blob. */
    int n = 60, d = 20;
    float *X = malloc((size_t)n * d * sizeof *X), Y[120], Y2[120];
    hl_rng rng;
    hl_rng_seed(&rng, 5, HL_RNG_STREAM_USER);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++)
            X[i * d + j] = (float)((j == i % 3 ? 10.0 : 0.0) + hl_rng_uniform_double(&rng) - 0.5);
    hl_tsne_options o = hl_tsne_defaults();
    o.perplexity = 10;
    hl_tsne_info info;
    CHECK(hl_tsne_run(X, n, d, &o, Y, &info, NULL, NULL) == HL_OK, "tsne: %s", hl_last_error());
    CHECK(isfinite(info.kl) && info.kl > 0, "KL %g", info.kl);
    int good = 0;
    for (int i = 0; i < n; i++) {
        int best = -1;
        double bd = INFINITY;
        for (int j = 0; j < n; j++) {
            double dx = Y[2 * i] - Y[2 * j], dy = Y[2 * i + 1] - Y[2 * j + 1];
            if (j != i && dx * dx + dy * dy < bd)
                bd = dx * dx + dy * dy, best = j;
        }
        good += best % 3 == i % 3;
    }
    CHECK(good == n, "nearest neighbours in the same blob: %d of %d", good, n);
    CHECK(hl_tsne_run(X, n, d, &o, Y2, NULL, NULL, NULL) == HL_OK && !memcmp(Y, Y2, sizeof Y), "deterministic");
    CHECK(hl_tsne_run(X, 2, d, &o, Y2, NULL, NULL, NULL) == HL_ERR_ARG, "too few points refused");
    free(X);
}

static void test_pca(void) {
    /* Points a*u + b*v in R^5 with u, v orthonormal: the PCA scores are the centred (a, b)
     * when var(a) > var(b), up to sign. */
    int n = 40, d = 5;
    double u[5] = {0.6, 0.8, 0, 0, 0}, v[5] = {0, 0, 0, 0.28, 0.96};
    float X[200];
    double a[40], b[40], ma = 0, mb = 0;
    for (int i = 0; i < n; i++) {
        a[i] = 3.0 * sin(0.7 * i) + 0.1 * i;
        b[i] = cos(1.3 * i);
        ma += a[i] / n, mb += b[i] / n;
    }
    /* make b exactly uncorrelated with a, so that u and v are the principal axes */
    double cab = 0, caa = 0;
    for (int i = 0; i < n; i++)
        cab += (a[i] - ma) * (b[i] - mb), caa += (a[i] - ma) * (a[i] - ma);
    for (int i = 0; i < n; i++)
        b[i] -= cab / caa * (a[i] - ma);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++)
            X[i * d + j] = (float)(a[i] * u[j] + b[i] * v[j]);
    double G[1600], Y[80];
    CHECK(hl_tsne_gram(X, n, d, G) == HL_OK && hl_tsne_pca2(G, n, 1, Y) == HL_OK, "pca");
    double s0 = Y[0] * (a[0] - ma) >= 0 ? 1 : -1, s1 = Y[1] * (b[0] - mb) >= 0 ? 1 : -1, err = 0;
    for (int i = 0; i < n; i++) {
        err = fmax(err, fabs(s0 * Y[2 * i] - (a[i] - ma)));
        err = fmax(err, fabs(s1 * Y[2 * i + 1] - (b[i] - mb)));
    }
    CHECK(err < 1e-5, "PCA scores off by %g", err); /* float input: ~1e-7 relative */
}

static void test_tsne_adapters(void) {
    /* Two adapters: HydraLoRA (q_proj A + 2 heads, gate_proj A + heads) and a plain LoRA. */
    char dir[] = "/tmp/hl_test_cluster_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    char p1[256], p2[256];
    snprintf(p1, sizeof p1, "%s/a.safetensors", dir);
    snprintf(p2, sizeof p2, "%s/b.safetensors", dir);
    float data[4 * 16];
    hl_rng rng;
    hl_rng_seed(&rng, 9, HL_RNG_STREAM_USER);
    for (int i = 0; i < 64; i++)
        data[i] = (float)hl_rng_uniform_double(&rng);
    char names[16][96];
    hl_st_entry e[16];
    int ne = 0;
    for (int l = 0; l < 3; l++) {
        snprintf(names[ne], 96, "base_model.model.model.layers.%d.self_attn.q_proj.lora_A.weight", l);
        e[ne] = (hl_st_entry){.name = names[ne], .data = data + l, .ndim = 2, .shape = {4, 8}};
        ne++;
        for (int h = 0; h < 2; h++) {
            snprintf(names[ne], 96, "base_model.model.model.layers.%d.self_attn.q_proj.lora_B%d.weight", l, h);
            e[ne] = (hl_st_entry){.name = names[ne], .data = data + 2 * l + h, .ndim = 2, .shape = {8, 4}};
            ne++;
        }
    }
    snprintf(names[ne], 96, "base_model.model.model.layers.0.self_attn.q_proj.lora_route.weight");
    e[ne] = (hl_st_entry){.name = names[ne], .data = data, .ndim = 2, .shape = {2, 8}};
    ne++;
    CHECK(hl_st_write(p1, e, ne, NULL) == HL_OK, "write a: %s", hl_last_error());
    ne = 0;
    for (int l = 0; l < 3; l++) {
        snprintf(names[ne], 96, "base_model.model.model.layers.%d.self_attn.q_proj.lora_A.weight", l);
        e[ne] = (hl_st_entry){.name = names[ne], .data = data + 10 + l, .ndim = 2, .shape = {4, 8}};
        ne++;
        snprintf(names[ne], 96, "base_model.model.model.layers.%d.self_attn.q_proj.lora_B.weight", l);
        e[ne] = (hl_st_entry){.name = names[ne], .data = data + 20 + l, .ndim = 2, .shape = {8, 4}};
        ne++;
    }
    CHECK(hl_st_write(p2, e, ne, NULL) == HL_OK, "write b");
    const char *dirs[] = {p1, p2};
    hl_tsne_options o = hl_tsne_defaults();
    hl_tsne_report r;
    CHECK(hl_tsne_adapters(dirs, 2, HL_TSNE_WHAT_ALL, &o, &r, NULL, NULL) == HL_OK, "tsne adapters: %s",
          hl_last_error());
    /* A 4x8: 3 + 3 points; B 8x4: 6 heads + 3 plain B */
    CHECK(r.n_groups == 2 && !strcmp(r.groups[0].name, "A 4x8") && r.groups[0].n_points == 6 &&
              !strcmp(r.groups[1].name, "B 8x4") && r.groups[1].n_points == 9,
          "groups");
    CHECK(r.n_points == 15, "points %d", r.n_points);
    int heads_ok = 1, plain = 0;
    for (int i = 0; i < r.n_points; i++) {
        const hl_tsne_point *p = &r.points[i];
        heads_ok &= !strcmp(p->module, "q_proj") && (p->kind == 'A' ? p->head == -1 : p->head >= 0);
        plain += p->adapter == 1 && p->kind == 'B' && p->head == 0;
    }
    CHECK(heads_ok && plain == 3, "labels (plain LoRA B is head 0)");
    hl_tsne_report_free(&r);
    CHECK(hl_tsne_adapters(dirs, 2, HL_TSNE_WHAT_A, &o, &r, NULL, NULL) == HL_OK && r.n_points == 6, "--what A");
    hl_tsne_report_free(&r);
    const char *missing[] = {dir};
    CHECK(hl_tsne_adapters(missing, 1, HL_TSNE_WHAT_ALL, &o, &r, NULL, NULL) != HL_OK, "directory without adapter");
    unlink(p1);
    unlink(p2);
    rmdir(dir);
}

int main(void) {
    test_tokenizer();
    test_tfidf();
    test_kmeans();
    test_elbow();
    test_ward();
    test_reader();
    test_cluster_run();
    test_tsne();
    test_pca();
    test_tsne_adapters();
    return hl_test_finish();
}
