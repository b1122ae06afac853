/* hydralora score: mean cross-entropy of token-id sequences under a model (and adapter).
 *
 * FILE holds one sequence of token ids per line (whitespace separated). For each line the
 * mean cross-entropy of predicting ids[1:] from ids[:-1] is printed, then one line
 * "mean_loss=<value> tokens=<count>" over all predicted tokens. The whole file is checked
 * before anything is computed, so a bad line fails fast with its line number.
 * With --routing: the adapter's router statistics per file or source (cli/score_routing.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/device.h"
#include "cli/progress.h"
#include "cli/score_data.h"
#include "cli/score_routing.h"
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

/* Score one token-id file (the output described at the top). */
static int score_ids(const char *model_path, const char *ids_path, const char *adapter_path, const char *device,
                     int threads, int batch, int quiet) {
    int rc;
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
    /* Packed: one row of up to B x maxlen tokens holding whole sequences in order (attention stays
     * within each sequence, nothing computed is padding); per-sequence sums come back per example. */
    const int64_t budget = (int64_t)B * maxlen;
    const int max_seqs = (int)(f.n_seqs < budget ? f.n_seqs : budget);
    int32_t *lengths = malloc(sizeof *lengths); /* unused (kept for the shared free below) */
    int32_t *starts = malloc((size_t)max_seqs * sizeof *starts), *lens = malloc((size_t)max_seqs * sizeof *lens);
    double *sums = malloc((size_t)max_seqs * sizeof(double));
    int64_t *counts = malloc((size_t)max_seqs * sizeof(int64_t));
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
    for (int i0 = 0, nb = 0; !rc && i0 < f.n_seqs; i0 += nb) {
        int T = 0;
        for (nb = 0; i0 + nb < f.n_seqs && nb < max_seqs; nb++) { /* whole sequences while they fit */
            int n = (int)(f.start[i0 + nb + 1] - f.start[i0 + nb]);
            if (T + n > budget)
                break;
            memcpy(tokens + T, f.ids + f.start[i0 + nb], (size_t)n * sizeof *tokens);
            starts[nb] = T;
            lens[nb] = n;
            T += n;
        }
        /* labels = ids: the engine predicts labels[t+1] from position t of the same sequence */
        hl_batch bt = {1, T, tokens, tokens, nb, starts, lens};
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

int cmd_score(int argc, char **argv) {
    const char *model_path = NULL, *adapter_path = NULL, *device = NULL, *source_field = NULL;
    hl_multi ids_m = {0}, data_m = {0};
    int threads = 0, batch = 0, quiet = 0, max_len = 0, routing = 0, json = 0;
    hl_opt opts[] = {
        {"model", 'm', HL_OPT_STRING, &model_path, "PATH", "model: a folder (HF, or one .bin/.gguf) or a llama2.c .bin / .gguf file (required)"},
        {"ids", 'i', HL_OPT_MULTI, &ids_m, "FILE", "token ids, one sequence per line (this or --data; repeatable)"},
        {"adapter", 'a', HL_OPT_STRING, &adapter_path, "DIR", "exported adapter directory (adapter_config.json + "
                                                              "adapter_model.safetensors)"},
        {"device", 0, HL_OPT_STRING, &device, "NAME", HL_CLI_DEVICE_HELP},
        {"threads", 't', HL_OPT_INT, &threads, "N", "compute threads (default: all cores)"},
        {"batch", 'b', HL_OPT_INT, &batch, "N", "sequences scored together (default: by a 4096-token budget)"},
        {"quiet", 'q', HL_OPT_FLAG, &quiet, NULL, "no progress bar"},
        {"data", 'd', HL_OPT_MULTI, &data_m, "FILE",
         "instead of --ids: instruction records (JSON lines), built and masked as in training "
         "([BOS] prompt [EOS] answer [EOS], loss on the answer); repeatable"},
        {"max-len", 0, HL_OPT_INT, &max_len, "N", "with --data: truncate records to N tokens (default 1024)"},
        {"routing", 'r', HL_OPT_FLAG, &routing, NULL,
         "router statistics of the adapter per file (or per source with --source-field), over EVERY non-padding "
         "token of each sequence (prompt and answer: the router sees them all): per layer x module x head the "
         "mean routing weight and top-1 share, per layer x module the mean entropy (nats) and the coefficient "
         "of variation of the heads' mean load; then a source x head table of the mean load"},
        {"json", 0, HL_OPT_FLAG, &json, NULL,
         "with --routing: one JSON object per file or source and line (arrays [layer][module][expert], module "
         "names in \"modules\")"},
        {"source-field", 0, HL_OPT_STRING, &source_field, "NAME",
         "with --routing --data: one source per value of this record field (e.g. source, task, category) in "
         "each file; every record must have it"},
        {0}};
    hl_args args = {.usage = "hydralora score --model PATH (--ids FILE | --data FILE)... [--adapter DIR] "
                             "[--routing [--json] [--source-field NAME]]",
                    .summary = "With --ids: print the mean cross-entropy of predicting ids[1:] from ids[:-1] for every "
                               "line of FILE, then mean_loss=<value> tokens=<count> over all predicted tokens.\n"
                               "With --data: the per-record and mean loss of instruction records, built and masked "
                               "exactly as in training (the quick way to compare base and adapter).\n"
                               "With --routing: which heads the adapter's routers choose on each file (or each "
                               "source inside a file), next to its loss. Statistics cover every non-padding token "
                               "the router sees; a malformed line or a record without the source field is an "
                               "error (the statistics must cover the whole file).",
                    .opts = opts,
                    .epilog = "examples:\n  hydralora score --model models/stories260K-hf --ids ids.txt\n"
                              "  hydralora score --model models/stories260K-hf --adapter runs/gsm8k/adapter --data test.jsonl\n"
                              "  hydralora score --model M --adapter A --routing --data gsm8k.jsonl --data code.jsonl\n"
                              "  hydralora score --model M --adapter A --routing --json --source-field task --data mix.jsonl\n",
                    .max_positional = 0};
    int rc = hl_args_parse(&args, argc, argv);
    if (rc >= 0)
        return rc;
    if (data_m.count && ids_m.count) {
        fprintf(stderr, "hydralora score: error: give either --ids or --data, not both\n");
        return 2;
    }
    if (!model_path || (!ids_m.count && !data_m.count)) {
        fprintf(stderr, "hydralora score: error: --model and one of --ids or --data are required (see --help)\n");
        return 2;
    }
    if (threads < 0 || batch < 0 || max_len < 0) {
        fprintf(stderr, "hydralora score: error: --threads, --batch and --max-len must be positive\n");
        return 2;
    }
    if (!routing && (json || source_field)) {
        fprintf(stderr, "hydralora score: error: %s goes with --routing\n", json ? "--json" : "--source-field");
        return 2;
    }
    if (routing) {
        if (!adapter_path) {
            fprintf(stderr, "hydralora score: error: --routing needs --adapter DIR (the base model has no router)\n");
            return 2;
        }
        if (source_field && ids_m.count) {
            fprintf(stderr, "hydralora score: error: --source-field needs --data (records with fields); token-id "
                            "files have none\n");
            return 2;
        }
        if (source_field && !source_field[0]) {
            fprintf(stderr, "hydralora score: error: --source-field needs a field name (e.g. source, task, category)\n");
            return 2;
        }
        hl_routing_request rq = {.model = model_path, .adapter = adapter_path, .device = device, .threads = threads,
                                 .micro_batch = batch, .max_len = max_len,
                                 .files = ids_m.count ? ids_m.items : data_m.items,
                                 .n_files = ids_m.count ? ids_m.count : data_m.count, .ids = ids_m.count > 0,
                                 .source_field = source_field};
        if (device && hl_backend_resolve(device, NULL, 0) != HL_OK) {
            fprintf(stderr, "hydralora score: error: %s\n", hl_last_error());
            return 2;
        }
        return hl_score_routing_run(&rq, json, quiet);
    }
    const hl_multi *files = ids_m.count ? &ids_m : &data_m;
    for (int f = 0; f < files->count; f++) {
        if (files->count > 1) {
            printf("== %s\n", files->items[f]);
            fflush(stdout);
        }
        rc = ids_m.count ? score_ids(model_path, files->items[f], adapter_path, device, threads, batch, quiet)
                         : hl_score_data_run(model_path, adapter_path, files->items[f], NULL, max_len, device, threads,
                                             batch);
        if (rc)
            return rc;
    }
    return 0;
}
