/* hydralora model info PATH: what a model file is, and how much memory training and
 * inference with it will need.
 *
 * Memory estimates (bytes):
 *   training  = weights as stored (mmapped; views, plus owned q/k copies for Meta-layout files)
 *             + adapter params + grads + 2 AdamW moments (f32 each: 16 B per trainable parameter)
 *             + activations + scratch of the chosen device's own plan (hl_backend_plan, --device) for a
 *               micro-batch of B × T tokens (default 1 × 1024), with and without gradient checkpointing
 *               (a GPU's plan counts the weights it uploads itself).
 *   inference = weights + KV cache (f32 keys and values: 2 · n_layers · n_kv_heads · head_dim ·
 *               context · 4 B for batch 1 at full context) + per-row scratch for a prefill chunk
 *               of 64 rows + the logits row.
 * The default adapter is HydraLoRA on gate/up/down, r = 8, N = 4 (docs/method.md §4). */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/device.h"
#include "core/backend/backend.h"
#include "core/formats/gguf.h"
#include "core/base/jsonout.h"
#include "core/model/model.h"
#include "core/model/tokenizer/tokenizer.h"

int cmd_model(int argc, char **argv);

static void human(char *out, size_t n, double bytes) {
    const char *u[] = {"B", "KB", "MB", "GB", "TB"};
    int i = 0;
    while (bytes >= 1000 && i < 4) {
        bytes /= 1000;
        i++;
    }
    snprintf(out, n, i ? "%.2f %s" : "%.0f %s", bytes, u[i]);
}

static void commas(char *out, size_t n, long long v) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%lld", v);
    size_t len = strlen(tmp), o = 0;
    for (size_t i = 0; i < len && o + 2 < n; i++) {
        if (i && (len - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = tmp[i];
    }
    out[o] = '\0';
}

typedef struct {
    size_t weights;
    hl_mem_plan train, train_ckpt;
    size_t kv_cache, infer_scratch, infer_total;
    int ok_plan;
} estimate;

static void estimate_memory(hl_backend *be, const hl_llama_config *c, hl_dtype dtype, size_t weights,
                            const hl_adapter_config *ac, int batch, int seq, estimate *e) {
    memset(e, 0, sizeof *e);
    e->weights = weights;
    e->ok_plan = hl_backend_plan(be, c, dtype, ac, batch, seq, HL_SESSION_TRAIN, &e->train) == HL_OK &&
                 hl_backend_plan(be, c, dtype, ac, batch, seq, HL_SESSION_TRAIN | HL_SESSION_CHECKPOINT,
                                 &e->train_ckpt) == HL_OK;
    int64_t kv = (int64_t)c->n_kv_heads * c->head_dim, q = (int64_t)c->n_heads * c->head_dim;
    e->kv_cache = (size_t)(2 * (int64_t)c->n_layers * kv * c->max_seq_len * 4);
    /* Per-row activations (x, xn, q, k, v, att, gate, up, h, residual) for a 64-row prefill chunk,
     * attention scores of one chunk over the full context, logits, norms. */
    int64_t rows = 64;
    int64_t per_row = 3 * c->dim + 2 * q + 2 * kv + 3 * (int64_t)c->hidden_dim;
    e->infer_scratch = (size_t)((rows * per_row + rows * c->max_seq_len + c->vocab_size +
                                 (2 * (int64_t)c->n_layers + 1) * c->dim) * 4);
    e->infer_total = weights + e->kv_cache + e->infer_scratch;
}

static int model_info(int argc, char **argv) {
    int json = 0, seq = 0, batch = 1, rank = 8, experts = 4, threads = 0;
    const char *device = NULL;
    hl_opt opts[] = {
        {"json", 0, HL_OPT_FLAG, &json, NULL, "print one JSON object (sizes in bytes)"},
        {"seq", 0, HL_OPT_INT, &seq, "T", "tokens per training sequence for the estimate (default 1024, at most the model's context, as training)"},
        {"batch", 0, HL_OPT_INT, &batch, "B", "training micro-batch for the estimate (default 1)"},
        {"rank", 'r', HL_OPT_INT, &rank, "R", "adapter rank for the estimate (default 8)"},
        {"experts", 'n', HL_OPT_INT, &experts, "N", "HydraLoRA heads B for the estimate (default 4)"},
        {"device", 0, HL_OPT_STRING, &device, "NAME", "plan for this device: cpu, cuda, cuda:N or auto (default)"},
        {"threads", 0, HL_OPT_INT, &threads, "N", "cpu threads the plan assumes (default: all cores)"},
        {0}};
    hl_args args = {
        .usage = "hydralora model info PATH [--json]",
        .summary = "Show a model's format, configuration, storage dtype, parameter count and the memory that "
                   "training (HydraLoRA gate/up/down, r=8, N=4, micro-batch 1 x 1024 tokens or the model's context) and "
                   "inference "
                   "(batch 1, full context) would need. PATH: a Hugging Face directory (config.json + "
                   "safetensors; config.json alone gives estimates before a download), a llama2.c .bin or a "
                   ".gguf file.",
        .opts = opts,
        .epilog = "Training = weights as stored + 16 B per adapter parameter (f32 params, grads, 2 AdamW moments)\n"
                  "  + activations and scratch from the engine's plan (with and without gradient checkpointing).\n"
                  "Inference = weights + f32 KV cache (2 x layers x kv_heads x head_dim x context x 4 B) + scratch.\n"
                  "Example: hydralora model info ~/models/Llama-2-7b-hf",
        .min_positional = 1,
        .max_positional = 1,
    };
    int rc = hl_args_parse(&args, argc, argv);
    if (rc >= 0)
        return rc;
    if (seq < 0 || batch < 1 || rank < 1 || experts < 1 || threads < 0) {
        fprintf(stderr, "hydralora model info: error: --seq, --batch, --rank and --experts must be positive\n");
        return 2;
    }
    hl_backend *be = hl_cli_open_device("model info", device, threads);
    if (!be)
        return 1;
    hl_backend_info bi;
    if (hl_backend_get_info(be, &bi) != HL_OK) {
        fprintf(stderr, "hydralora model info: error: %s\n", hl_last_error());
        hl_backend_close(be);
        return 1;
    }
    const char *path = args.positional[0];
    hl_model m;
    hl_llama_config cfg;
    hl_dtype dtype;
    size_t weights;
    int config_only = 0, n_files = 0, vocab_n = 0;
    const char *format;
    hl_status st = hl_model_load(&m, path);
    if (st != HL_OK) {
        struct stat sb;
        char saved[1024];
        snprintf(saved, sizeof saved, "%s", hl_last_error());
        /* A directory with config.json but no weights yet: estimates from the config. */
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode) && st == HL_ERR_NOT_FOUND &&
            hl_model_read_config(path, &cfg, &dtype) == HL_OK) {
            config_only = 1;
            weights = (size_t)hl_model_param_count(&cfg) * hl_dtype_size(dtype);
            format = "hf-config-only";
        } else {
            fprintf(stderr, "hydralora model info: error: %s\n", saved);
            hl_backend_close(be);
            return 1;
        }
    } else {
        cfg = m.cfg;
        dtype = m.dtype;
        weights = hl_model_weight_bytes(&m);
        format = hl_model_format_name(m.format);
        n_files = m.n_maps;
        vocab_n = m.vocab ? m.vocab->n : 0;
    }
    int64_t params = hl_model_param_count(&cfg);
    hl_adapter_config ac = {HL_VARIANT_HYDRA, HL_TARGETS_DEFAULT, rank, experts, 32.0f, 0.05f};
    estimate e;
    if (seq == 0) /* training's default max_len, clamped to the context as training does */
        seq = cfg.max_seq_len > 0 && cfg.max_seq_len < 1024 ? cfg.max_seq_len : 1024;
    estimate_memory(be, &cfg, dtype, weights, &ac, batch, seq, &e);
    /* the base-weight matmuls under each compute mode, as chosen on this machine at run time */
    static const hl_compute modes[3] = {HL_COMPUTE_AUTO, HL_COMPUTE_F32, HL_COMPUTE_BF16};
    char paths[3][96];
    for (int i = 0; i < 3; i++)
        if (hl_backend_compute_path(be, modes[i], &cfg, dtype, paths[i], sizeof paths[i]) != HL_OK)
            snprintf(paths[i], sizeof paths[i], "unknown (%s)", hl_last_error());
    size_t ad_bytes = e.train.params + e.train.grads + e.train.moments;
    /* the CPU maps the weights (not in its plan's total); a GPU's total holds its copy */
    size_t outside = bi.is_gpu ? 0 : weights;
    size_t train_total = outside + e.train.total, train_ckpt_total = outside + e.train_ckpt.total;
    /* the same discovery rule as every other command (hl_tokenizer_find) */
    char tokp[4200], tok_why[600] = "";
    const char *tok = NULL;
    if (!vocab_n) {
        if (hl_tokenizer_find(path, tokp, sizeof tokp) == HL_OK)
            tok = tokp;
        else
            snprintf(tok_why, sizeof tok_why, "%s", hl_last_error());
    }

    if (json) {
        printf("{\"path\":");
        hl_json_write_string(stdout, path);
        printf(",\"format\":\"%s\",\"files\":%d,\"dtype\":\"%s\",\"params\":%lld,\"weight_bytes\":%zu,", format,
               n_files, hl_dtype_name(dtype), (long long)params, weights);
        printf("\"config\":{\"dim\":%d,\"hidden_dim\":%d,\"n_layers\":%d,\"n_heads\":%d,\"n_kv_heads\":%d,"
               "\"head_dim\":%d,\"vocab_size\":%d,\"max_seq_len\":%d,\"rms_norm_eps\":%g,\"rope_theta\":%g,"
               "\"tie_word_embeddings\":%s,\"bos_id\":%d,\"eos_id\":%d},",
               cfg.dim, cfg.hidden_dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.vocab_size,
               cfg.max_seq_len, cfg.rms_norm_eps, cfg.rope_theta, cfg.tie_word_embeddings ? "true" : "false",
               cfg.bos_id, cfg.eos_id);
        printf("\"tokenizer\":");
        if (vocab_n)
            printf("{\"embedded\":true,\"pieces\":%d},", vocab_n);
        else if (tok) {
            printf("{\"path\":");
            hl_json_write_string(stdout, tok);
            printf("},");
        } else
            printf("null,");
        printf("\"training\":{\"adapter\":{\"variant\":\"hydra\",\"targets\":[\"gate_proj\",\"up_proj\",\"down_proj\"],"
               "\"r\":%d,\"n\":%d,\"params\":%zu},\"batch\":%d,\"seq\":%d,\"weights\":%zu,\"adapter_bytes\":%zu,"
               "\"activations\":%zu,\"scratch\":%zu,\"total\":%zu,\"activations_checkpointing\":%zu,"
               "\"total_checkpointing\":%zu},",
               rank, experts, e.train.params / 4, batch, seq, weights, ad_bytes, e.train.activations, e.train.scratch,
               train_total, e.train_ckpt.activations, train_ckpt_total);
        printf("\"inference\":{\"batch\":1,\"context\":%d,\"weights\":%zu,\"kv_cache\":%zu,\"scratch\":%zu,"
               "\"total\":%zu},",
               cfg.max_seq_len, weights, e.kv_cache, e.infer_scratch, e.infer_total);
        printf("\"device\":{\"name\":");
        hl_json_write_string(stdout, bi.name);
        printf(",\"device\":");
        hl_json_write_string(stdout, bi.device);
        printf(",\"compute\":");
        hl_json_write_string(stdout, bi.compute);
        printf(",\"matmuls\":{"); /* what each compute mode runs for this model here */
        for (int i = 0; i < 3; i++) {
            printf("%s\"%s\":", i ? "," : "", hl_compute_name(modes[i]));
            hl_json_write_string(stdout, paths[i]);
        }
        printf("},\"memory\":%lld,\"memory_free\":%lld}}\n", (long long)bi.mem_total, (long long)bi.mem_free);
        if (st == HL_OK)
            hl_model_free(&m);
        hl_backend_close(be);
        return 0;
    }

    char a[32], b[32], c[32], d[32];
    printf("model        %s\n", path);
    printf("format       %s", format);
    if (n_files > 1)
        printf(" (%d files)", n_files);
    if (config_only)
        printf(" (no weights found: estimates from config.json, dtype from torch_dtype)");
    printf("\n");
    printf("config       dim %d, ffn %d, layers %d, heads %d (kv %d), head_dim %d, vocab %d, context %d\n", cfg.dim,
           cfg.hidden_dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.vocab_size,
           cfg.max_seq_len);
    printf("             rms_norm_eps %g, rope_theta %g, embeddings %s, bos %d, eos %d\n", cfg.rms_norm_eps,
           cfg.rope_theta, cfg.tie_word_embeddings ? "tied" : "untied", cfg.bos_id, cfg.eos_id);
    commas(a, sizeof a, (long long)params);
    human(b, sizeof b, (double)weights);
    if (params >= 1000000000)
        printf("parameters   %s (%.2f B)\n", a, (double)params / 1e9);
    else
        printf("parameters   %s (%.2f M)\n", a, (double)params / 1e6);
    printf("dtype        %s (weights in memory: %s%s)\n", hl_dtype_name(dtype), b,
           st == HL_OK && m.format != HL_FORMAT_HF_SAFETENSORS ? ", q/k rows permuted into owned copies" : "");
    if (vocab_n)
        printf("tokenizer    embedded in the file (%d pieces)\n", vocab_n);
    else if (tok)
        printf("tokenizer    %s\n", tok);
    else
        printf("tokenizer    none: %s; name one with --tokenizer (commands) or \"tokenizer\" (run config)\n", tok_why);
    human(a, sizeof a, (double)bi.mem_total);
    printf("device       %s: %s, %s %s\n", bi.name, bi.device, a, bi.is_gpu ? "memory" : "RAM");
    printf("matmuls      compute auto (default): %s\n", paths[0]);
    printf("             compute bf16: %s; f32: %s\n", paths[2], paths[1]);
    printf("\nmemory estimate: training (HydraLoRA gate/up/down, r=%d, N=%d, micro-batch %d x %d tokens) on %s\n",
           rank, experts, batch, seq, bi.name);
    human(a, sizeof a, (double)(bi.is_gpu ? e.train.weights : weights));
    printf("  base weights           %12s   %s\n", a, bi.is_gpu ? "copied to the device" : "as stored, mmapped");
    commas(c, sizeof c, (long long)(e.train.params / 4));
    human(a, sizeof a, (double)ad_bytes);
    printf("  adapter + grads + Adam %12s   %s params x 16 B\n", a, c);
    if (e.ok_plan) {
        human(a, sizeof a, (double)e.train.activations);
        human(b, sizeof b, (double)e.train_ckpt.activations);
        printf("  activations            %12s   (%s with gradient checkpointing)\n", a, b);
        human(a, sizeof a, (double)e.train.scratch);
        printf("  scratch                %12s\n", a);
        human(a, sizeof a, (double)train_total);
        human(b, sizeof b, (double)train_ckpt_total);
        printf("  total                  %12s   (%s with gradient checkpointing)\n", a, b);
        if (bi.is_gpu && bi.mem_free >= 0) {
            /* what a session compares before it allocates anything: plan + headroom vs free */
            size_t fr = (size_t)bi.mem_free;
            human(a, sizeof a, (double)bi.mem_free);
            human(b, sizeof b, (double)e.train.headroom);
            const char *verdict = train_total + e.train.headroom <= fr ? "fits"
                                  : train_ckpt_total + e.train_ckpt.headroom <= fr
                                      ? "fits only with gradient checkpointing"
                                      : "does NOT fit: lower --batch or --seq";
            printf("  free on %-14s %12s   the plan + %s headroom %s\n", bi.name, a, b, verdict);
        }
    } else {
        printf("  activations            (no plan: %s)\n", hl_last_error());
    }
    printf("memory estimate: inference (batch 1, full context %d)\n", cfg.max_seq_len);
    human(a, sizeof a, (double)weights);
    human(b, sizeof b, (double)e.kv_cache);
    human(c, sizeof c, (double)e.infer_scratch);
    human(d, sizeof d, (double)e.infer_total);
    printf("  weights                %12s\n  KV cache (f32)         %12s\n  scratch                %12s\n"
           "  total                  %12s\n",
           a, b, c, d);
    if (st == HL_OK)
        hl_model_free(&m);
    hl_backend_close(be);
    return 0;
}

int cmd_model(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "info")) {
        static char name[] = "model info";
        argv[1] = name;
        return model_info(argc - 1, argv + 1);
    }
    if (argc >= 2 && !strcmp(argv[1], "synth")) {
        static char name[] = "model synth";
        argv[1] = name;
        return cmd_model_synth(argc - 1, argv + 1);
    }
    int help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
    fprintf(help ? stdout : stderr, "usage: hydralora model info PATH [--json]\n"
                                    "  show a model's format, configuration, parameters and memory estimates\n"
                                    "  (run `hydralora model info --help` for all options)\n"
                                    "usage: hydralora model synth --shape 7b|13b|tiny --out DIR [options]\n"
                                    "  write a RANDOM-weight model directory of a LLaMA-2 shape (for testing)\n");
    return help ? 0 : 2;
}
