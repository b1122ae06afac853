/* BBH evaluation benchmark: examples/s of `eval bbh` (prompt build + tokenize + prefill +
 * greedy decode + extraction + fsynced result lines) through hl_bbh_eval_run, at batch 1 and
 * larger batches, on the one generation path (core/eval/generate.h) in static batches and with
 * continuous batching (slot refill + few-shot prefix reuse).
 *
 *   bench_bbh [--threads N] [--layers L] [--examples N] [--max-new N] [--quick] [--no-7b] [--no-stories]
 *             [--shared DIR]
 *
 * Models: stories260K (HF folder from the shared test data) on 3-shot CoT prompts of four
 * tasks; and a LLaMA-2-7B-shaped model (dim 4096, hidden 11008, 32 heads, vocab 32000) with L
 * layers (default 1) of random BF16 weights and the LLaMA-2 tokenizer, on the two tasks with
 * the shortest prompts. Random weights never produce a stop string, so every 7B example
 * generates exactly --max-new tokens.
 *
 * Machine limits measured in the same run: OpenBLAS sgemm GFLOP/s (prefill is compute bound)
 * and read bandwidth (decode is bandwidth bound). Printed: the prefill FLOPs achieved vs sgemm,
 * and the 7B figures scaled to 32 layers. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/backend/backend.h"
#include "core/eval/bbh/bbh.h"
#include "core/backend/cpu/gemm.h" /* the machine's sgemm reference only; the evaluation runs through the seam */
#include "core/model/model.h"
#include "core/formats/safetensors.h"
#include "core/model/tokenizer/tokenizer.h"
#include "bench_common.h"

static hl_backend *bench_be; /* the cpu backend every evaluation here runs on */

typedef struct {
    long prompt_tokens, reused, gen_tokens, done;
    double elapsed;
} run_stats;

static void on_progress(const hl_bbh_progress *p, void *user) {
    run_stats *r = user;
    r->prompt_tokens = p->prompt_tokens;
    r->reused = p->prompt_tokens_reused;
    r->gen_tokens = p->generated_tokens;
    r->done = p->done - p->resumed;
    r->elapsed = p->elapsed_s;
}

static void rm_dir(const char *dir) {
    char p[4200];
    const char *files[] = {"settings.json", "samples.jsonl", "summary.json"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* One timed eval into a fresh folder; returns examples/s. */
static double run_eval(const hl_bbh_set *set, const hl_model *m, const hl_tokenizer *tok, const char *tasks,
                       int limit, int max_new, int batch, int continuous, run_stats *rs) {
    hl_bbh_eval_target tg;
    memset(&tg, 0, sizeof tg);
    tg.backend = bench_be;
    tg.model = m;
    tg.tok = tok;
    strcpy(tg.model_label, "bench");
    hl_bbh_model_fingerprint(m, tg.model_fingerprint);
    hl_bbh_eval_opts o;
    hl_bbh_eval_opts_default(&o);
    hl_bbh_tasks_parse(tasks, o.tasks);
    o.limit = limit;
    o.batch = batch;
    o.max_new_tokens = max_new;
    o.decoder = continuous ? HL_BBH_DECODER_CONTINUOUS : HL_BBH_DECODER_GENERATE;
    char dir[] = "/tmp/hl_bench_bbh_XXXXXX";
    if (!mkdtemp(dir))
        return 0;
    memset(rs, 0, sizeof *rs);
    double t0 = bench_now_s();
    hl_status st = hl_bbh_eval_run(dir, set, &tg, &o, on_progress, rs, NULL, NULL);
    double dt = bench_now_s() - t0;
    rm_dir(dir);
    if (st != HL_OK) {
        fprintf(stderr, "bench_bbh: %s\n", hl_last_error());
        exit(1);
    }
    rs->elapsed = dt;
    return rs->done / dt;
}

static void bench_model(const char *name, const hl_bbh_set *set, const hl_model *m, const hl_tokenizer *tok,
                        const char *tasks, int limit, int max_new, const int *batches, int nb, double gflops) {
    /* prefill FLOPs per token ~ 2 x (layer matrices); the head runs for one row per prompt */
    double layer_params = 0;
    const hl_llama_config *c = &m->cfg;
    layer_params = (double)c->n_layers * ((double)c->dim * (c->n_heads * c->head_dim) * 2 +
                                          (double)c->dim * (c->n_kv_heads * c->head_dim) * 2 +
                                          3.0 * c->dim * c->hidden_dim);
    printf("\n%s: tasks %s, %d examples each, max %d new tokens\n", name, tasks, limit, max_new);
    printf("  %-12s %5s %10s %12s %8s %12s %10s %14s\n", "decoder", "batch", "ex/s", "prompt tok/s", "reused",
           "gen tok/s", "seconds", "matmul/sgemm");
    double best = 0;
    int best_b = 1;
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < nb; i++) {
            run_stats rs;
            double eps = run_eval(set, m, tok, tasks, limit, max_new, batches[i], k, &rs);
            /* matrix FLOPs actually run: reused prompt positions cost nothing */
            double flops = 2.0 * layer_params * (double)(rs.prompt_tokens - rs.reused + rs.gen_tokens);
            printf("  %-12s %5d %10.3f %12.1f %7.0f%% %12.1f %10.2f %13.1f%%\n", k ? "continuous" : "static",
                   batches[i], eps, rs.prompt_tokens / rs.elapsed,
                   rs.prompt_tokens ? 100.0 * rs.reused / rs.prompt_tokens : 0.0, rs.gen_tokens / rs.elapsed,
                   rs.elapsed, 100.0 * flops / rs.elapsed / 1e9 / gflops);
            if (eps > best)
                best = eps, best_b = batches[i];
        }
    }
    printf("  best: %.3f examples/s at batch %d\n", best, best_b);
}

int main(int argc, char **argv) {
    int threads = 0, layers = 1, examples = 0, max_new = 0, quick = 0, no7b = 0, nostories = 0;
    const char *shared = bench_shared_dir();
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--layers") && i + 1 < argc)
            layers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--examples") && i + 1 < argc)
            examples = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--max-new") && i + 1 < argc)
            max_new = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--shared") && i + 1 < argc)
            shared = argv[++i];
        else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--no-7b"))
            no7b = 1;
        else if (!strcmp(argv[i], "--no-stories"))
            nostories = 1;
        else {
            fprintf(stderr, "usage: bench_bbh [--threads N] [--layers L] [--examples N] [--max-new N] [--quick] "
                            "[--no-7b] [--no-stories] [--shared DIR]\n");
            return 2;
        }
    }
    if (hl_backend_open(&bench_be, "cpu") != HL_OK || hl_backend_set_threads(bench_be, threads) != HL_OK) {
        fprintf(stderr, "bench_bbh: %s\n", hl_last_error());
        return 1;
    }
    hl_backend_info bi;
    hl_backend_get_info(bench_be, &bi);
    hl_set_threads(bi.threads); /* the sgemm reference uses the same count */
    printf("bench_bbh: %d threads\n", hl_get_threads());
    double gf = hl_sgemm_gflops(quick ? 512 : 1024, 3);
    double bw = bench_read_bandwidth(quick ? ((size_t)128 << 20) : ((size_t)512 << 20), 3);
    printf("machine: OpenBLAS sgemm %.1f GFLOP/s, read bandwidth %.1f GB/s\n", gf, bw);

    char p[4096];
    snprintf(p, sizeof p, "%s/datasets/bbh", shared);
    hl_bbh_set set;
    if (hl_bbh_load(&set, p, NULL) != HL_OK) {
        fprintf(stderr, "bench_bbh: %s\n", hl_last_error());
        return 1;
    }
    int batches[] = {1, 4, 8, 16};
    int nb = quick ? 3 : 4;

    snprintf(p, sizeof p, "%s/models/stories260K-hf", shared);
    hl_model m;
    hl_tokenizer *tok = NULL;
    if (nostories) {
        printf("stories260K: skipped (--no-stories)\n");
    } else if (hl_model_load(&m, p) == HL_OK && hl_tokenizer_load(&tok, p) == HL_OK) {
        bench_model("stories260K (F32, context 512: prompts left-truncated)", &set, &m, tok,
                    "boolean_expressions,navigate,date_understanding,word_sorting", examples ? examples : 16,
                    max_new ? max_new : 128, batches, nb, gf);
        hl_tokenizer_free(tok);
        hl_model_free(&m);
    } else {
        printf("stories260K: not found under %s (skipped): %s\n", shared, hl_last_error());
    }
    if (no7b) {
        hl_bbh_free(&set);
        return 0;
    }

    /* LLaMA-2-7B-shaped, random BF16, through a real safetensors file (mmapped as a user's). */
    const int D = 4096, F = 11008, V = 32000;
    char dir[] = "/tmp/hl_bench_bbh7b_XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *f = fopen(p, "w");
    fprintf(f, "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"hidden_size\":%d,"
               "\"intermediate_size\":%d,\"num_hidden_layers\":%d,\"num_attention_heads\":32,"
               "\"num_key_value_heads\":32,\"vocab_size\":%d,\"max_position_embeddings\":4096,"
               "\"rms_norm_eps\":1e-05,\"rope_theta\":10000.0,\"tie_word_embeddings\":false,"
               "\"torch_dtype\":\"bfloat16\",\"bos_token_id\":1,\"eos_token_id\":2}\n",
            D, F, layers, V);
    fclose(f);
    size_t big = (size_t)V * D;
    uint16_t *rnd = malloc(big * sizeof *rnd), *ones = malloc((size_t)D * sizeof *ones);
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < big; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        rnd[i] = hl_f32_to_bf16(0.02f * ((float)(s >> 40) * (2.0f / 16777216.0f) - 1.0f));
    }
    for (int i = 0; i < D; i++)
        ones[i] = hl_f32_to_bf16(1.0f);
    int nt = 3 + 9 * layers, k = 0;
    hl_st_entry *e = calloc((size_t)nt, sizeof *e);
    char (*names)[96] = calloc((size_t)nt, sizeof *names);
#define ENTRY(r, c, src, ...)                                                                                      \
    do {                                                                                                           \
        snprintf(names[k], sizeof names[k], __VA_ARGS__);                                                          \
        e[k] = (hl_st_entry){.name = names[k], .src_dtype = HL_DTYPE_BF16, .data = (src), .ndim = (r) ? 2 : 1}; \
        if (r) {                                                                                                   \
            e[k].shape[0] = (r);                                                                                   \
            e[k].shape[1] = (c);                                                                                   \
        } else {                                                                                                   \
            e[k].shape[0] = (c);                                                                                   \
        }                                                                                                          \
        k++;                                                                                                       \
    } while (0)
    ENTRY(V, D, rnd, "model.embed_tokens.weight");
    ENTRY(V, D, rnd + 11, "lm_head.weight");
    ENTRY(0, D, ones, "model.norm.weight");
    for (int l = 0; l < layers; l++) {
        ENTRY(0, D, ones, "model.layers.%d.input_layernorm.weight", l);
        ENTRY(0, D, ones, "model.layers.%d.post_attention_layernorm.weight", l);
        ENTRY(D, D, rnd, "model.layers.%d.self_attn.q_proj.weight", l);
        ENTRY(D, D, rnd + 1, "model.layers.%d.self_attn.k_proj.weight", l);
        ENTRY(D, D, rnd + 2, "model.layers.%d.self_attn.v_proj.weight", l);
        ENTRY(D, D, rnd + 3, "model.layers.%d.self_attn.o_proj.weight", l);
        ENTRY(F, D, rnd, "model.layers.%d.mlp.gate_proj.weight", l);
        ENTRY(F, D, rnd + 5, "model.layers.%d.mlp.up_proj.weight", l);
        ENTRY(D, F, rnd + 7, "model.layers.%d.mlp.down_proj.weight", l);
    }
#undef ENTRY
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    hl_st_write_opts wo = {HL_DTYPE_BF16, 1, NULL, 0};
    if (hl_st_write(p, e, nt, &wo) != HL_OK) {
        fprintf(stderr, "bench_bbh: writing %s: %s\n", p, hl_last_error());
        return 1;
    }
    free(rnd), free(ones), free(e), free(names);
    char tp[4096];
    snprintf(tp, sizeof tp, "%s/models/llama2c-tokenizer/tokenizer.model", shared);
    if (hl_model_load(&m, dir) != HL_OK || hl_tokenizer_load(&tok, tp) != HL_OK) {
        fprintf(stderr, "bench_bbh: %s\n", hl_last_error());
        return 1;
    }
    char name[96];
    snprintf(name, sizeof name, "LLaMA-2-7B-shaped, %d layer%s, random BF16", layers, layers == 1 ? "" : "s");
    int bat7[] = {1, 4};
    bench_model(name, &set, &m, tok, "sports_understanding,boolean_expressions", examples ? examples : 4,
                max_new ? max_new : 16, bat7, 2, gf);
    printf("  (full 32-layer LLaMA-2-7B: divide by about %.0f; a real CoT example generates ~150-300 tokens)\n",
           32.0 / layers);
    hl_tokenizer_free(tok);
    hl_model_free(&m);
    unlink(p);
    snprintf(p, sizeof p, "%s/config.json", dir);
    unlink(p);
    rmdir(dir);
    hl_bbh_free(&set);
    return 0;
}
