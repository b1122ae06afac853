/* Packed vs padded micro-batches on real data: GSM8K train tokenised with the model's
 * tokenizer (the training prompt layout, cut to max_len), micro-batch 4 × max_len 1024, one
 * optimizer step per micro-batch (forward + backward + AdamW), HydraLoRA r=8 N=4 on
 * gate/up/down with dropout 0.05, in the same run:
 *
 *   padded      4 examples padded to the longest of them (the trainer's batches without packing)
 *   packed 4x   4 rows of up to 1024 tokens, whole examples in order (hl_packed, rows = micro-batch)
 *   packed 1x   1 row of up to 4096 tokens, whole examples of up to 1024 (hl_packed, one long row:
 *               the trainer's layout with packing on)
 *
 * Models: stories260K-hf from shared/ (F32) with its own tokenizer, and a LLaMA-2-7B-shaped model
 * with 2 of its 32 layers (dim 4096, hidden 11008, 32 heads, vocab 32000, random BF16 weights)
 * with the LLaMA-2 tokenizer (shared/models/llama2c-tokenizer).
 *
 * Printed per model: over one whole epoch (no compute) the micro-batches each mode builds, its
 * padding share (tokens computed that are padding / tokens computed) and how much of the
 * micro-batch budget (micro × max_len tokens) real tokens use; then the timed
 * micro-batches (modes interleaved, so load from other processes hits all alike): real tokens/s
 * (padding not counted), the padding share of those micro-batches, useful GFLOP/s and their
 * share of the machine's matrix peak measured in the same run (OpenBLAS sgemm; the frozen-weight
 * bf16 path too). Useful FLOPs count real tokens only: forward matmuls, backward input-gradient
 * matmuls through the frozen weights, causal attention within each example (len²/2 keys
 * forward, twice that backward), adapters forward+backward, lm_head over targets.
 *
 *   bench_pack [--threads N] [--micro N] [--max-len N] [--batches N] [--batches-7b N] [--no-7b]
 *              [--no-stories] [--seed N] [--shared DIR]
 *
 * No PyTorch line: torch 1.13 on the CPU has no variable-length (packed) attention to compare
 * with; bench_train compares the engine with PyTorch on the same padded step. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "bench_model.h"
#include "core/adapter/adapter.h"
#include "core/text/batch.h"
#include "core/backend/backend.h"
#include "core/backend/cpu/gemm.h" /* the machine's matrix peak for scale (not the training path) */
#include "core/model/model.h"
#include "core/adapter/optim.h"
#include "core/model/tokenizer/tokenizer.h"
#include "core/text/records.h"

/* All timed through one session planned for micro x max_len (the seam takes rows longer than
 * max_len as long as the tokens fit and every example is <= max_len). "packed 1 row" is what the
 * trainer does with packing on. */
enum { MODE_PADDED, MODE_ROWS, MODE_ONE_ROW, N_MODES, N_TIMED = N_MODES };
static const char *const mode_name[N_MODES] = {"padded", "packed rows", "packed 1 row"};

typedef struct {
    int micro, max_len, batches, batches_7b, no_7b, no_stories;
    uint64_t seed;
    const char *shared;
} options;

static void die(const char *what) {
    fprintf(stderr, "bench_pack: %s: %s\n", what, hl_last_error());
    exit(1);
}

/* GSM8K train as training examples (records without targets after truncation are left out, as
 * the trainer does). */
static void load_examples(const hl_tokenizer *tok, const char *path, int max_len, hl_examples *ex) {
    hl_dataset ds;
    if (hl_records_load(&ds, path, NULL))
        die(path);
    hl_examples_init(ex);
    int64_t truncated = 0;
    for (size_t i = 0; i < ds.n_records; i++) {
        hl_tokenized t;
        if (hl_record_tokenize(tok, &ds.records[i], max_len, &t))
            die("tokenizing");
        truncated += t.truncated;
        int targets = 0;
        for (size_t k = 1; k < t.n; k++)
            targets += t.labels[k] != HL_IGNORE_LABEL;
        if (targets && hl_examples_add(ex, t.ids, t.labels, (int64_t)t.n, (int64_t)i))
            die("storing examples");
        hl_tokenized_free(&t);
    }
    if (ex->n < 1) {
        fprintf(stderr, "bench_pack: no usable examples in %s\n", path);
        exit(1);
    }
    int64_t *len = malloc((size_t)ex->n * sizeof *len);
    for (int64_t i = 0; i < ex->n; i++)
        len[i] = hl_examples_len(ex, i);
    int64_t lo = len[0], hi = len[0];
    for (int64_t i = 0; i < ex->n; i++)
        lo = len[i] < lo ? len[i] : lo, hi = len[i] > hi ? len[i] : hi;
    printf("data: %s, %lld examples, %lld tokens (mean %.0f, min %lld, max %lld; %lld cut to max_len %d)\n", path,
           (long long)ex->n, (long long)ex->n_tokens, (double)ex->n_tokens / (double)ex->n, (long long)lo,
           (long long)hi, (long long)truncated, max_len);
    free(len);
    hl_dataset_free(&ds);
}

/* One mode's stream of micro-batches from its own cursor (same seed for all modes). */
typedef struct {
    int mode;
    hl_data_cursor cur;
    hl_microbatch mb;
    hl_packed pk;
    int32_t *start, *len; /* padded: one segment per row */
    hl_batch b;
    int64_t real, targets;
    double len_sq; /* Σ len² over the examples (attention work) */
} source;

static void source_init(source *s, int mode, const hl_examples *ex, const options *o) {
    memset(s, 0, sizeof *s);
    s->mode = mode;
    if (hl_cursor_init(&s->cur, ex->n, o->seed, 1))
        die("cursor");
    hl_status st = mode == MODE_PADDED ? hl_microbatch_init(&s->mb, o->micro, o->max_len)
                   : mode == MODE_ROWS ? hl_packed_init(&s->pk, o->micro, o->max_len, o->max_len)
                                       : hl_packed_init(&s->pk, 1, o->micro * o->max_len, o->max_len);
    if (st)
        die("micro-batch buffers");
    s->start = malloc((size_t)o->micro * sizeof *s->start);
    s->len = malloc((size_t)o->micro * sizeof *s->len);
}

static void source_free(source *s) {
    hl_cursor_free(&s->cur);
    if (s->mode == MODE_PADDED)
        hl_microbatch_free(&s->mb);
    else
        hl_packed_free(&s->pk);
    free(s->start);
    free(s->len);
}

/* The next micro-batch into s->b (and its real tokens, targets, Σ len²). */
static void source_next(source *s, const hl_examples *ex, int micro) {
    s->real = s->targets = 0;
    s->len_sq = 0;
    if (s->mode == MODE_PADDED) {
        int64_t which[256] = {0};
        for (int b = 0; b < micro; b++)
            which[b] = hl_cursor_next(&s->cur);
        if (hl_microbatch_fill(&s->mb, ex, which, micro))
            die("padded micro-batch");
        for (int b = 0; b < micro; b++) {
            s->start[b] = b * s->mb.T, s->len[b] = s->mb.lengths[b];
            s->targets += hl_examples_targets(ex, which[b]);
            s->len_sq += (double)s->len[b] * s->len[b];
        }
        s->real = s->mb.n_tokens;
        s->b = (hl_batch){s->mb.B, s->mb.T, s->mb.tokens, s->mb.labels, micro, s->start, s->len};
        return;
    }
    if (hl_packed_next(&s->pk, ex, &s->cur))
        die("packed micro-batch");
    for (int e = 0; e < s->pk.n_seq; e++) {
        s->targets += hl_examples_targets(ex, s->pk.which[e]);
        s->len_sq += (double)s->pk.seq_len[e] * s->pk.seq_len[e];
    }
    s->real = s->pk.n_tokens;
    s->b = (hl_batch){s->pk.B, s->pk.T, s->pk.tokens, s->pk.labels, s->pk.n_seq, s->pk.seq_start, s->pk.seq_len};
}

/* Useful FLOPs of forward + backward over `real` tokens (see the top of the file). */
static double useful_flops(const hl_llama_config *c, const hl_adapter_config *a, int64_t real, double len_sq,
                           int64_t targets) {
    double D = c->dim, F = c->hidden_dim, Dq = (double)c->n_heads * c->head_dim;
    double Dkv = (double)c->n_kv_heads * c->head_dim;
    double mm = 2.0 * (D * Dq + 2 * D * Dkv + Dq * D + 3 * D * F); /* per token per layer, forward */
    double ad = 0;
    int N = a->variant == HL_VARIANT_LORA ? 1 : a->n_heads;
    for (int t = 0; t < HL_TARGET_COUNT; t++) {
        if (!(a->targets & (1u << t)))
            continue;
        double di = t == 3 ? Dq : t == 6 ? F : D, dout = t <= 2 ? (t == 0 ? Dq : Dkv) : t == 3 || t == 6 ? D : F;
        ad += 3.0 * 2.0 * (di * a->r + di * N + N * a->r * dout); /* forward, parameter grads, input grad */
    }
    double att = 2.0 * 2.0 * (len_sq / 2.0) * Dq * 3.0; /* QKᵀ and PV over len/2 keys; backward twice */
    double per_layer = (double)real * (2.0 * mm + ad) + att;
    return per_layer * c->n_layers + (double)targets * 2.0 * D * c->vocab_size * 2.0;
}

/* One epoch's micro-batches and padding share of each mode, without computing. */
static void epoch_table(const hl_examples *ex, const options *o) {
    printf("one epoch (%lld examples), no compute:\n", (long long)ex->n);
    printf("  %-14s %14s %14s %14s %9s %12s\n", "mode", "micro-batches", "tokens", "computed", "padding",
           "budget used");
    for (int m = 0; m < N_MODES; m++) {
        source s;
        source_init(&s, m, ex, o);
        int64_t mbs = 0, real = 0, comp = 0;
        while (s.cur.consumed < ex->n) {
            source_next(&s, ex, o->micro);
            mbs++;
            real += s.real;
            comp += (int64_t)s.b.B * s.b.T;
        }
        printf("  %-14s %14lld %14lld %14lld %8.1f%% %11.1f%%\n", mode_name[m], (long long)mbs, (long long)real,
               (long long)comp, 100.0 * (double)(comp - real) / (double)comp,
               100.0 * (double)real / ((double)mbs * o->micro * o->max_len));
        if (m != MODE_PADDED) { /* the step count a packed run computes up front says the same */
            int64_t counted;
            int rows = m == MODE_ROWS ? o->micro : 1, row_len = m == MODE_ROWS ? o->max_len : o->micro * o->max_len;
            if (hl_packed_count_steps(ex, o->seed, rows, row_len, o->max_len, ex->n, 1, &counted, NULL))
                die("counting steps");
            if (counted != mbs)
                printf("  (!) hl_packed_count_steps counted %lld micro-batches\n", (long long)counted);
        }
        source_free(&s);
    }
}

static void run_model(hl_backend *be, const char *name, const hl_model *model, const hl_examples *ex, const options *o, int batches,
                      int warmup, double peak) {
    const hl_llama_config *c = &model->cfg;
    printf("\n== %s: dim %d, hidden %d, %d layers, %d/%d heads, vocab %d, %s weights; micro-batch %d x max_len %d\n",
           name, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size,
           hl_dtype_name(model->dtype), o->micro, o->max_len);
    epoch_table(ex, o);
    hl_adapter_config ac = {.variant = HL_VARIANT_HYDRA, .targets = HL_TARGETS_DEFAULT, .r = 8, .n_heads = 4,
                            .alpha = 32.0f, .dropout = 0.05f};
    /* through the backend seam, as the trainer: one session of micro x max_len for both modes */
    hl_session *ctx;
    if (hl_session_create(&ctx, be, model, &ac, 41, o->micro, o->max_len, HL_SESSION_TRAIN | HL_SESSION_STATS))
        die("session");
    size_t np = hl_session_layout(ctx)->n_params;
    float *params = malloc(np * sizeof *params);
    if (!params || hl_session_read_slab(ctx, HL_SLAB_PARAMS, 0, np, params))
        die("reading the parameters");
    for (size_t i = 0; i < np; i++) /* non-zero B so every product is real work */
        if (params[i] == 0.0f)
            params[i] = 1e-3f;
    if (hl_session_write_slab(ctx, HL_SLAB_PARAMS, 0, np, params))
        die("writing the parameters");
    free(params);
    const hl_mem_plan *p = hl_session_mem_plan(ctx);
    printf("memory plan (%d x %d, every timed mode): activations %.1f MiB, scratch %.1f MiB, total %.1f MiB\n",
           o->micro, o->max_len, p->activations / 1048576.0, p->scratch / 1048576.0, p->total / 1048576.0);
    hl_optim_config oc = hl_optim_defaults();
    oc.total_steps = 1000;
    source src[N_MODES];
    double sec[N_MODES] = {0}, flops[N_MODES] = {0};
    int64_t real[N_MODES] = {0}, comp[N_MODES] = {0}, steps[N_MODES] = {0};
    for (int m = 0; m < N_TIMED; m++)
        source_init(&src[m], m, ex, o);
    printf("timed: %d micro-batch%s per mode after %d warm-up, modes interleaved\n", batches,
           batches == 1 ? "" : "es", warmup);
    for (int r = 0; r < warmup + batches; r++)
        for (int m = 0; m < N_TIMED; m++) {
            source *s = &src[m];
            source_next(s, ex, o->micro);
            double t0 = bench_now_s();
            float loss;
            if (hl_session_zero_grad(ctx) || hl_session_train_microbatch(ctx, &s->b, 1.0f, &loss, NULL))
                die("training micro-batch");
            double gn;
            steps[m]++;
            if (hl_session_optim_step(ctx, steps[m], hl_lr_at(&oc, steps[m] - 1), &oc, &gn))
                die("AdamW");
            double dt = bench_now_s() - t0;
            printf("  %-14s %d x %4d, %2d examples, %4lld tokens, padding %5.1f%%: %.3f s, loss %.4f%s\n",
                   mode_name[m], s->b.B, s->b.T, s->b.n_seq, (long long)s->real,
                   100.0 * (1.0 - (double)s->real / ((double)s->b.B * s->b.T)), dt, (double)loss,
                   r < warmup ? " (warm-up)" : "");
            if (r < warmup)
                continue;
            sec[m] += dt;
            real[m] += s->real;
            comp[m] += (int64_t)s->b.B * s->b.T;
            flops[m] += useful_flops(c, &ac, s->real, s->len_sq, s->targets);
        }
    printf("  %-14s %12s %10s %9s %14s %11s\n", "mode", "tokens/s", "s/micro", "padding", "useful GFLOP/s",
           "% of peak");
    for (int m = 0; m < N_TIMED; m++)
        printf("  %-14s %12.1f %10.3f %8.1f%% %14.1f %10.1f%%\n", mode_name[m], (double)real[m] / sec[m],
               sec[m] / batches, 100.0 * (double)(comp[m] - real[m]) / (double)comp[m], flops[m] / sec[m] * 1e-9,
               100.0 * flops[m] / sec[m] * 1e-9 / peak);
    double base = (double)real[MODE_PADDED] / sec[MODE_PADDED];
    printf("%s: tokens/s packed 1 row / padded %.2fx, packed %d rows / padded %.2fx; padding share (timed) packed "
           "1 row %.1f%% (goal < 5%%), %d rows %.1f%%, padded %.1f%% (peak for scale: %.1f GFLOP/s)\n",
           name, (double)real[MODE_ONE_ROW] / sec[MODE_ONE_ROW] / base, o->micro,
           (double)real[MODE_ROWS] / sec[MODE_ROWS] / base,
           100.0 * (double)(comp[MODE_ONE_ROW] - real[MODE_ONE_ROW]) / (double)comp[MODE_ONE_ROW], o->micro,
           100.0 * (double)(comp[MODE_ROWS] - real[MODE_ROWS]) / (double)comp[MODE_ROWS],
           100.0 * (double)(comp[MODE_PADDED] - real[MODE_PADDED]) / (double)comp[MODE_PADDED], peak);
    for (int m = 0; m < N_TIMED; m++)
        source_free(&src[m]);
    hl_session_free(ctx);
}

/* The machine's matrix peak for scale: OpenBLAS sgemm (1024³ and the 7B FFN shape), and the
 * frozen bf16 weight path on that shape. Returns the larger sgemm figure. */
static double matrix_peak(void) {
    double g1 = hl_sgemm_gflops(1024, 3);
    const int M = 512, N = 11008, K = 4096;
    float *x = malloc((size_t)M * K * 4), *w = malloc((size_t)N * K * 4), *y = malloc((size_t)M * N * 4);
    for (size_t i = 0; i < (size_t)N * K; i++)
        w[i] = (float)(i % 13) * 1e-3f;
    for (size_t i = 0; i < (size_t)M * K; i++)
        x[i] = (float)(i % 7) * 1e-2f;
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double a = bench_now_s();
        hl_sgemm(0, 1, M, N, K, 1.0f, x, K, w, K, 0.0f, y, N);
        double t = bench_now_s() - a;
        best = t < best ? t : best;
    }
    double g2 = 2.0 * M * N * K / best * 1e-9;
    free(w);
    bench_model bm = {0};
    hl_weight wb = bench_rand_weight(&bm, N, K, HL_DTYPE_BF16, 0.0f, 0.01f);
    hl_gemm_ws ws = {malloc(hl_gemm_ws_floats(K) * 4), (int64_t)hl_gemm_ws_floats(K), HL_COMPUTE_AUTO}; /* as training */
    hl_gemm_xwt(y, x, &wb, M, 0.0f, &ws);
    double a = bench_now_s();
    hl_gemm_xwt(y, x, &wb, M, 0.0f, &ws);
    double g3 = 2.0 * M * N * K / (bench_now_s() - a) * 1e-9;
    free(x), free(y), free(ws.buf);
    bench_model_free(&bm);
    double peak = g1 > g2 ? g1 : g2;
    printf("matrix peak: OpenBLAS sgemm 1024^3 %.1f GFLOP/s, 512x4096·(11008x4096)ᵀ %.1f GFLOP/s (peak = %.1f); "
           "bf16 frozen-weight product on that shape %.1f GFLOP/s\n",
           g1, g2, peak, g3);
    return peak;
}

int main(int argc, char **argv) {
    options o = {.micro = 4, .max_len = 1024, .batches = 4, .batches_7b = 1, .seed = 42, .shared = NULL};
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--threads") && more)
            threads = atoi(argv[++i]);
        else if (!strcmp(a, "--micro") && more)
            o.micro = atoi(argv[++i]);
        else if (!strcmp(a, "--max-len") && more)
            o.max_len = atoi(argv[++i]);
        else if (!strcmp(a, "--batches") && more)
            o.batches = atoi(argv[++i]);
        else if (!strcmp(a, "--batches-7b") && more)
            o.batches_7b = atoi(argv[++i]);
        else if (!strcmp(a, "--seed") && more)
            o.seed = (uint64_t)strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--shared") && more)
            o.shared = argv[++i];
        else if (!strcmp(a, "--no-7b"))
            o.no_7b = 1;
        else if (!strcmp(a, "--no-stories"))
            o.no_stories = 1;
        else {
            int help = !strcmp(a, "--help") || !strcmp(a, "-h");
            fprintf(help ? stdout : stderr,
                    "usage: bench_pack [--threads N] [--micro N (4)] [--max-len N (1024)] [--batches N (4)]\n"
                    "                  [--batches-7b N (1)] [--no-7b] [--no-stories] [--seed N] [--shared DIR]\n");
            return help ? 0 : 2;
        }
    }
    if (o.micro < 1 || o.micro > 256 || o.max_len < 2 || o.batches < 1 || o.batches_7b < 1) {
        fprintf(stderr, "bench_pack: --micro 1..256, --max-len >= 2, --batches >= 1\n");
        return 2;
    }
    if (!o.shared)
        o.shared = bench_shared_dir();
    setvbuf(stdout, NULL, _IOLBF, 0);
    hl_set_threads(threads); /* the sgemm peak below */
    hl_backend *be;
    if (hl_backend_open(&be, "cpu") || hl_backend_set_threads(be, threads))
        die("opening the cpu backend");
    hl_backend_info bi;
    if (hl_backend_get_info(be, &bi))
        die("backend info");
    printf("backend %s: %s, %s, %d threads\n", bi.name, bi.device, bi.compute, bi.threads);
    double peak = matrix_peak();
    char data[4096], path[4096];
    snprintf(data, sizeof data, "%s/datasets/gsm8k/train.jsonl", o.shared);

    if (!o.no_stories) {
        hl_model m;
        hl_tokenizer *tok;
        snprintf(path, sizeof path, "%s/models/stories260K-hf", o.shared);
        if (hl_model_load(&m, path))
            die(path);
        if (hl_tokenizer_load_for_model(path, &tok))
            die("stories260K tokenizer");
        hl_examples ex;
        load_examples(tok, data, o.max_len, &ex);
        run_model(be, "stories260K-hf", &m, &ex, &o, o.batches, 1, peak);
        hl_examples_free(&ex);
        hl_tokenizer_free(tok);
        hl_model_free(&m);
    }
    if (!o.no_7b) {
        hl_tokenizer *tok;
        snprintf(path, sizeof path, "%s/models/llama2c-tokenizer/tokenizer.model", o.shared);
        if (hl_tokenizer_load(&tok, path))
            die(path);
        hl_examples ex;
        load_examples(tok, data, o.max_len, &ex);
        hl_llama_config l7 = {.dim = 4096, .hidden_dim = 11008, .n_layers = 2, .n_heads = 32, .n_kv_heads = 32,
                              .head_dim = 128, .vocab_size = 32000, .max_seq_len = 4096, .rms_norm_eps = 1e-5f,
                              .rope_theta = 10000.0f, .tie_word_embeddings = 0};
        bench_model bm;
        double t0 = bench_now_s();
        bench_model_build(&bm, &l7, HL_DTYPE_BF16);
        printf("\n7B-shaped model built in %.1f s\n", bench_now_s() - t0);
        run_model(be, "LLaMA-2-7B-shaped (2 of 32 layers)", &bm.m, &ex, &o, o.batches_7b, 0, peak);
        bench_model_free(&bm);
        hl_examples_free(&ex);
        hl_tokenizer_free(tok);
    }
    hl_backend_close(be);
    return 0;
}
