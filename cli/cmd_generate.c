/* hydralora generate: stream a completion of a prompt from a model (optionally with a
 * HydraLoRA adapter), llama2.c-compatible sampling. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/progress.h"
#include "core/train/export.h"
#include "cli/device.h"
#include "core/eval/generate.h"
#include "core/model/model.h"

int cmd_generate(int argc, char **argv);

static int on_token(void *user, int seq, int token, const char *text, size_t len) {
    (void)user, (void)seq, (void)token;
    if (len) {
        fwrite(text, 1, len, stdout);
        fflush(stdout);
    }
    return 0;
}

int cmd_generate(int argc, char **argv) {
    const char *model_path = NULL, *adapter = NULL, *tok_path = NULL, *prompt = NULL, *device = NULL,
               *compute_name = "auto";
    int max_tokens = 256, top_k = 0, no_stop_bos = 0, quiet = 0, show_ids = 0, threads = 0;
    double temperature = 0.0, top_p = 0.9;
    long long seed = -1;
    hl_multi stops = {0};
    hl_opt opts[] = {
        {"model", 'm', HL_OPT_STRING, &model_path, "PATH", "model: a folder (HF, or one .bin/.gguf) or a llama2.c .bin / .gguf file (required)"},
        {"adapter", 'a', HL_OPT_STRING, &adapter, "DIR", "apply an exported HydraLoRA adapter directory"},
        {"tokenizer", 'z', HL_OPT_STRING, &tok_path, "PATH",
         "tokenizer: file, model folder or model file (default: the model's own: beside it, or a GGUF's)"},
        {"prompt", 'p', HL_OPT_STRING, &prompt, "STR", "prompt text (default: empty, i.e. start from BOS)"},
        {"max-tokens", 'n', HL_OPT_INT, &max_tokens, "N", "new tokens at most (default 256)"},
        {"temperature", 't', HL_OPT_FLOAT, &temperature, "T", "0 = greedy (default 0)"},
        {"top-p", 0, HL_OPT_FLOAT, &top_p, "P", "nucleus sampling mass, with T > 0 (default 0.9; 1 = off)"},
        {"top-k", 'k', HL_OPT_INT, &top_k, "K", "keep the K most likely tokens, with T > 0 (default 0 = off)"},
        {"seed", 's', HL_OPT_LONG, &seed, "S", "sampler seed (default: time; printed at the end)"},
        {"stop", 0, HL_OPT_MULTI, &stops, "STR", "stop when this text appears (repeatable)"},
        {"no-stop-bos", 0, HL_OPT_FLAG, &no_stop_bos, NULL, "do not stop when BOS is sampled (llama2.c does)"},
        {"ids", 0, HL_OPT_FLAG, &show_ids, NULL, "print the token ids after the text"},
        {"device", 0, HL_OPT_STRING, &device, "NAME", HL_CLI_DEVICE_HELP},
        {"threads", 0, HL_OPT_INT, &threads, "N", "compute threads on the cpu (default: all cores)"},
        {"compute", 0, HL_OPT_STRING, &compute_name, "MODE",
         "base-weight matmuls: auto (default: bf16 for bf16/f16 models), bf16 or f32 (exact)"},
        {"quiet", 'q', HL_OPT_FLAG, &quiet, NULL, "no statistics line on stderr"},
        {0}};
    hl_args args = {
        .usage = "hydralora generate --model PATH [--adapter DIR] [--tokenizer PATH] --prompt STR [--max-tokens N] "
                 "[--temperature T] [--top-p P] [--top-k K] [--seed S]",
        .summary = "Generate text with a KV cache and stream it to stdout as it is produced. Sampling follows "
                   "llama2.c's run.c (xorshift sampler, top-p), so `-t 1.0 --top-p 0.9 -s 133742` reproduces its "
                   "runs. Stops at EOS, BOS, a --stop string, --max-tokens or the end of the context.",
        .opts = opts,
        .epilog = "Examples:\n"
                  "  hydralora generate -m stories260K.bin -z tok512.bin -p \"Once upon a time\"\n"
                  "  hydralora generate -m Llama-2-7b-hf -a runs/r1/adapter -p \"Q: ...\" -t 0.6 --stop \"\\n\\n\"",
        .max_positional = 0,
    };
    int rc = hl_args_parse(&args, argc, argv);
    if (rc >= 0)
        return rc;
    if (!model_path) {
        fprintf(stderr, "hydralora generate: error: --model is required\n");
        return 2;
    }
    if (max_tokens < 0 || temperature < 0 || top_k < 0 || threads < 0) {
        fprintf(stderr, "hydralora generate: error: --max-tokens, --temperature, --top-k and --threads must not be "
                        "negative\n");
        return 2;
    }
    hl_compute compute;
    if (hl_compute_parse(compute_name, &compute) != 0) {
        fprintf(stderr, "hydralora generate: error: --compute: '%s' is not one of auto, bf16, f32\n", compute_name);
        return 2;
    }
    hl_backend *be = hl_cli_open_device("generate", device, threads);
    if (!be)
        return 1;
    hl_model model;
    hl_status st = hl_model_load(&model, model_path);
    if (st != HL_OK) {
        fprintf(stderr, "hydralora generate: error: %s\n", hl_last_error());
        hl_backend_close(be);
        return 1;
    }
    hl_tokenizer *tok = NULL;
    st = hl_generate_load_tokenizer(&tok, &model, model_path, tok_path);
    if (st != HL_OK) {
        fprintf(stderr, "hydralora generate: error: %s\n", hl_last_error());
        if (!tok_path)
            fprintf(stderr, "hydralora generate: hint: name the tokenizer with --tokenizer PATH\n");
        hl_model_free(&model);
        hl_backend_close(be);
        return 1;
    }
    hl_adapters ad;
    int have_ad = 0;
    if (adapter) {
        st = hl_export_load(adapter, &model.cfg, 0, &ad);
        if (st != HL_OK) {
            fprintf(stderr, "hydralora generate: error: adapter %s: %s\n", adapter, hl_last_error());
            hl_tokenizer_free(tok);
            hl_model_free(&model);
            hl_backend_close(be);
            return 1;
        }
        have_ad = 1;
    }
    hl_generator *g = NULL;
    st = hl_generator_create(&g, be, &model, have_ad ? &ad : NULL, tok);
    if (st == HL_OK)
        st = hl_generator_set_compute(g, compute);
    hl_gen_params p;
    hl_gen_params_default(&p);
    p.max_new_tokens = max_tokens;
    p.temperature = (float)temperature;
    p.top_p = (float)top_p;
    p.top_k = top_k;
    p.seed = seed >= 0 ? (uint64_t)seed : (uint64_t)time(NULL);
    p.stop_on_bos = !no_stop_bos;
    p.stop = stops.items;
    p.n_stop = stops.count;
    p.on_token = on_token;
    hl_gen_result res = {0};
    double t0 = hl_now_seconds();
    const char *text = prompt ? prompt : "";
    if (st == HL_OK) {
        fputs(text, stdout); /* as run.c: the prompt, then the continuation */
        fflush(stdout);
    }
    if (st == HL_OK)
        st = hl_generate(g, &text, 1, &p, &res);
    double dt = hl_now_seconds() - t0;
    fputc('\n', stdout);
    if (st == HL_OK && show_ids) {
        for (int i = 0; i < res.n_prompt + res.n_generated; i++)
            printf("%s%d", i ? " " : "", res.ids[i]);
        printf("\n");
    }
    fflush(stdout);
    int exit_code = 0;
    if (st != HL_OK) {
        fprintf(stderr, "hydralora generate: error: %s\n", hl_last_error());
        exit_code = 1;
    } else if (!quiet) {
        fprintf(stderr, "[%d prompt + %d generated tokens, stop: %s, %.1f tok/s, seed %llu]\n", res.n_prompt,
                res.n_generated, hl_gen_finish_name(res.finish), dt > 0 ? res.n_generated / dt : 0.0,
                (unsigned long long)p.seed);
    }
    hl_gen_result_free(&res);
    hl_generator_free(g);
    if (have_ad)
        hl_adapters_free(&ad);
    hl_tokenizer_free(tok);
    hl_model_free(&model);
    hl_backend_close(be);
    return exit_code;
}
