/* hydralora score: mean cross-entropy of token-id sequences under a model (and adapter).
 *
 * FILE holds one sequence of token ids per line (whitespace separated). For each line the
 * mean cross-entropy of predicting ids[1:] from ids[:-1] is printed, then one line
 * "mean_loss=<value> tokens=<count>" over all predicted tokens. The whole file is checked
 * before anything is computed, so a bad line fails fast with its line number. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/device.h"
#include "cli/progress.h"
#include "cli/score_data.h"
#include "core/adapter/adapter.h"
#include "core/backend/backend.h"
#include "core/train/export.h"
#include "core/text/idlist.h"
#include "core/model/model.h"

int cmd_score(int argc, char **argv);

#define ERR(...)                                                                                                      \
    do {                                                                                                              \
        fprintf(stderr, "hydralora score: error: " __VA_ARGS__);                                                     \
        fputc('\n', stderr);                                                                                          \
    } while (0)

int cmd_score(int argc, char **argv) {
    const char *model_path = NULL, *ids_path = NULL, *adapter_path = NULL, *data_path = NULL, *device = NULL;
    int threads = 0, batch = 0, quiet = 0, max_len = 0;
    hl_opt opts[] = {
        {"model", 'm', HL_OPT_STRING, &model_path, "PATH", "model: a folder (HF, or one .bin/.gguf) or a llama2.c .bin / .gguf file (required)"},
        {"ids", 'i', HL_OPT_STRING, &ids_path, "FILE", "token ids, one sequence per line (this or --data)"},
        {"adapter", 'a', HL_OPT_STRING, &adapter_path, "DIR", "exported adapter directory (adapter_config.json + "
                                                              "adapter_model.safetensors)"},
        {"device", 0, HL_OPT_STRING, &device, "NAME", HL_CLI_DEVICE_HELP},
        {"threads", 't', HL_OPT_INT, &threads, "N", "compute threads (default: all cores)"},
        {"batch", 'b', HL_OPT_INT, &batch, "N", "sequences scored together (default: by a 4096-token budget)"},
        {"quiet", 'q', HL_OPT_FLAG, &quiet, NULL, "no progress bar"},
        {"data", 'd', HL_OPT_STRING, &data_path, "FILE",
         "instead of --ids: instruction records (JSON lines), built and masked as in training "
         "([BOS] prompt [EOS] answer [EOS], loss on the answer)"},
        {"max-len", 0, HL_OPT_INT, &max_len, "N", "with --data: truncate records to N tokens (default 1024)"},
        {0}};
    hl_args args = {.usage = "hydralora score --model PATH (--ids FILE | --data FILE) [--adapter DIR]",
                    .summary = "With --ids: print the mean cross-entropy of predicting ids[1:] from ids[:-1] for every "
                               "line of FILE, then mean_loss=<value> tokens=<count> over all predicted tokens.\n"
                               "With --data: the per-record and mean loss of instruction records, built and masked "
                               "exactly as in training (the quick way to compare base and adapter).",
                    .opts = opts,
                    .epilog = "examples:\n  hydralora score --model models/stories260K-hf --ids ids.txt\n"
                              "  hydralora score --model models/stories260K-hf --adapter runs/gsm8k/adapter --data test.jsonl\n",
                    .max_positional = 0};
    int rc = hl_args_parse(&args, argc, argv);
    if (rc >= 0)
        return rc;
    if (data_path && ids_path) {
        fprintf(stderr, "hydralora score: error: give either --ids or --data, not both\n");
        return 2;
    }
    if (model_path && data_path)
        return hl_score_data_run(model_path, adapter_path, data_path, NULL, max_len, device, threads, batch);
    if (!model_path || !ids_path) {
        fprintf(stderr, "hydralora score: error: --model and one of --ids or --data are required (see --help)\n");
        return 2;
    }
    if (threads < 0 || batch < 0) {
        fprintf(stderr, "hydralora score: error: --threads and --batch must be positive\n");
        return 2;
    }
    hl_backend *be = hl_cli_open_device("score", device, threads);
    if (!be)
        return 1;
    hl_model model;
    if (hl_model_load(&model, model_path) != HL_OK) {
        ERR("loading model %s: %s", model_path, hl_last_error());
        hl_backend_close(be);
        return 1;
    }
    hl_idlist f;
    if (hl_idlist_load(&f, ids_path, model.cfg.vocab_size, 2, model.cfg.max_seq_len) != HL_OK) {
        ERR("%s", hl_last_error());
        hl_model_free(&model);
        hl_backend_close(be);
        return 1;
    }
    if (f.n_seqs == 0) {
        ERR("%s holds no sequences", ids_path);
        hl_idlist_free(&f);
        hl_model_free(&model);
        hl_backend_close(be);
        return 1;
    }
    hl_adapters ad;
    int have_ad = 0;
    if (adapter_path) {
        if (hl_export_load(adapter_path, &model.cfg, 0, &ad) != HL_OK) {
            ERR("loading adapter %s: %s", adapter_path, hl_last_error());
            hl_idlist_free(&f);
            hl_model_free(&model);
            hl_backend_close(be);
            return 1;
        }
        have_ad = 1;
    }
    int maxlen = 0;
    for (int i = 0; i < f.n_seqs; i++) {
        int n = (int)(f.start[i + 1] - f.start[i]);
        maxlen = n > maxlen ? n : maxlen;
    }
    /* Sequences per batch: a token budget keeps activations modest for long contexts. */
    int B = batch > 0 ? batch : 4096 / maxlen;
    B = B < 1 ? 1 : B > 64 ? 64 : B;
    B = B > f.n_seqs ? f.n_seqs : B;
    hl_session *sess = NULL;
    int32_t *tokens = malloc((size_t)B * (size_t)maxlen * sizeof *tokens);
    int32_t *lengths = malloc((size_t)B * sizeof *lengths);
    int32_t *starts = malloc((size_t)B * sizeof *starts), *lens = malloc((size_t)B * sizeof *lens);
    double *sums = malloc((size_t)B * sizeof(double));
    int64_t *counts = malloc((size_t)B * sizeof(int64_t));
    rc = 0;
    if (!tokens || !lengths || !starts || !lens || !sums || !counts) {
        ERR("out of memory");
        rc = 1;
    } else if (hl_session_create(&sess, be, &model, have_ad ? &ad.cfg : NULL, 0, B, maxlen, 0) != HL_OK ||
               (have_ad && hl_session_write_slab(sess, HL_SLAB_PARAMS, 0, ad.n_params, ad.params) != HL_OK)) {
        ERR("%s", hl_last_error());
        rc = 1;
    }
    hl_progress bar;
    int show = !quiet && f.n_seqs > B;
    if (show)
        hl_progress_begin(&bar, "scoring");
    double total = 0.0;
    int64_t total_n = 0;
    for (int i0 = 0; !rc && i0 < f.n_seqs; i0 += B) {
        int nb = f.n_seqs - i0 < B ? f.n_seqs - i0 : B, T = 0;
        for (int b = 0; b < nb; b++) {
            lengths[b] = (int)(f.start[i0 + b + 1] - f.start[i0 + b]);
            T = lengths[b] > T ? lengths[b] : T;
        }
        for (int b = 0; b < nb; b++) { /* right padding with id 0 */
            for (int t = 0; t < lengths[b]; t++)
                tokens[(size_t)b * T + t] = f.ids[f.start[i0 + b] + t];
            for (int t = lengths[b]; t < T; t++)
                tokens[(size_t)b * T + t] = 0;
        }
        /* labels = ids: the engine predicts labels[t+1] from position t */
        hl_batch bt;
        hl_batch_padded(&bt, tokens, tokens, lengths, nb, T, starts, lens);
        if (hl_session_eval(sess, &bt, NULL, NULL, sums, counts) != HL_OK) {
            ERR("scoring lines %d..%d: %s", i0 + 1, i0 + nb, hl_last_error());
            rc = 1;
            break;
        }
        for (int b = 0; b < nb; b++) {
            printf("%.6f\n", sums[b] / (double)counts[b]);
            total += sums[b];
            total_n += counts[b];
        }
        if (show)
            hl_progress_update(&bar, i0 + nb, f.n_seqs, "lines", NULL, i0 + nb == f.n_seqs);
    }
    if (show)
        hl_progress_end(&bar);
    if (!rc)
        printf("mean_loss=%.6f tokens=%lld\n", total / (double)total_n, (long long)total_n);
    if (fflush(stdout) != 0 && !rc) {
        ERR("writing output: %s", strerror(errno));
        rc = 1;
    }
    hl_session_free(sess);
    free(tokens), free(lengths), free(starts), free(lens), free(sums), free(counts);
    hl_idlist_free(&f);
    if (have_ad)
        hl_adapters_free(&ad);
    hl_model_free(&model);
    hl_backend_close(be);
    return rc;
}
