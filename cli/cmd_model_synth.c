/* hydralora model synth: a random-weight Hugging Face model directory of a LLaMA-2 shape, clearly
 * labelled random, so that 7B-shaped training and measurements run where real weights cannot be
 * downloaded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/progress.h"
#include "core/model/synth.h"

static void on_progress(void *user, double done, double total) {
    hl_progress_update(user, done, total, "B", NULL, 0);
}

int cmd_model_synth(int argc, char **argv) {
    const char *shape = NULL, *dtype = "bf16", *out = NULL, *tokenizer = NULL;
    int layers = 0;
    long long seed = 0;
    hl_opt opts[] = {
        {"shape", 0, HL_OPT_STRING, &shape, "NAME", "7b, 13b or tiny (LLaMA-2 shapes; tiny: dim 128, vocab 512)"},
        {"layers", 'l', HL_OPT_INT, &layers, "L", "number of layers (default: the shape's, 32 for 7b)"},
        {"dtype", 0, HL_OPT_STRING, &dtype, "T", "bf16 (default), f16 or f32"},
        {"out", 'o', HL_OPT_STRING, &out, "DIR", "directory to create (must not exist)"},
        {"tokenizer", 'z', HL_OPT_STRING, &tokenizer, "FILE",
         "copy this tokenizer in (its vocabulary must match; default: a synthetic one)"},
        {"seed", 's', HL_OPT_LONG, &seed, "S", "random seed (default 0; the same seed gives the same bytes)"},
        {0}};
    hl_args args = {
        .usage = "hydralora model synth --shape 7b|13b|tiny --out DIR [--layers L] [--dtype bf16|f16|f32] "
                 "[--tokenizer FILE] [--seed S]",
        .summary = "Write a Hugging Face model directory with RANDOM weights of a LLaMA-2 shape: config.json "
                   "(marked \"hydralora_synthetic\"), sharded safetensors with an index, a tokenizer and a "
                   "README.txt saying the weights are random. For exercising training, memory plans and speed "
                   "where real weights cannot be downloaded; its outputs mean nothing.",
        .opts = opts,
        .epilog = "Example: hydralora model synth --shape 7b --out /tmp/llama2-7b-random   (13.5 GB, bf16)",
        .min_positional = 0,
        .max_positional = 0,
    };
    int rc = hl_args_parse(&args, argc, argv);
    if (rc >= 0)
        return rc;
    if (!shape || !out) {
        fprintf(stderr, "hydralora model synth: error: --shape and --out are required (see --help)\n");
        return 2;
    }
    hl_dtype dt;
    if (!strcmp(dtype, "bf16"))
        dt = HL_DTYPE_BF16;
    else if (!strcmp(dtype, "f16"))
        dt = HL_DTYPE_F16;
    else if (!strcmp(dtype, "f32"))
        dt = HL_DTYPE_F32;
    else {
        fprintf(stderr, "hydralora model synth: error: --dtype must be bf16, f16 or f32 (got '%s')\n", dtype);
        return 2;
    }
    hl_llama_config cfg;
    if (hl_synth_shape(shape, &cfg) != HL_OK) {
        fprintf(stderr, "hydralora model synth: error: %s\n", hl_last_error());
        return 2;
    }
    if (layers) {
        if (layers < 1 || layers > 1024) {
            fprintf(stderr, "hydralora model synth: error: --layers must be 1..1024\n");
            return 2;
        }
        cfg.n_layers = layers;
    }
    if (seed < 0) {
        fprintf(stderr, "hydralora model synth: error: --seed must not be negative\n");
        return 2;
    }
    hl_progress bar;
    char label[64];
    snprintf(label, sizeof label, "writing %s-shaped %s weights", shape, dtype);
    hl_progress_begin(&bar, label);
    hl_status st = hl_synth_write(out, &cfg, dt, (uint64_t)seed, tokenizer, shape, on_progress, &bar);
    if (!st) {
        double total = (double)hl_model_param_count(&cfg) * (double)hl_dtype_size(dt);
        hl_progress_update(&bar, total, total, "B", NULL, 1);
    }
    hl_progress_end(&bar);
    if (st) {
        fprintf(stderr, "hydralora model synth: error: %s\n", hl_last_error());
        return 1;
    }
    printf("wrote %s: %s shape, %d layers, %s, RANDOM weights (seed %lld)\n", out, shape, cfg.n_layers, dtype, seed);
    return 0;
}
