/* hydralora data: the catalog (list), downloads (get), and looking at data files
 * (inspect, show). */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/progress.h"
#include "core/base/jsonout.h"
#include "core/base/sha256.h"
#include "core/model/tokenizer/tokenizer.h"
#include "datasets/catalog.h"
#include "datasets/download.h"
#include "datasets/fetch.h"
#include "datasets/inspect.h"
#include "core/text/records.h"

#define ERR(sub, ...)                                       \
    do {                                                    \
        fprintf(stderr, "hydralora data %s: error: ", sub); \
        fprintf(stderr, __VA_ARGS__);                       \
        fputc('\n', stderr);                                \
    } while (0)

/* ---- Ctrl-C: stop the download cleanly, keep the .part for a resume ----------------- */

static atomic_int g_cancel;

static void on_sigint(int sig) {
    (void)sig;
    atomic_store(&g_cancel, 1);
}

static void install_sigint(struct sigaction *old) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, old);
    sigaction(SIGTERM, &sa, NULL);
}

/* ---- progress ----------------------------------------------------------------------- */

typedef struct {
    hl_progress bar;
    int started;
    char label[160];
    int quiet;
} cli_progress;

static void on_progress(void *user, const hl_download_progress *p) {
    cli_progress *cp = user;
    if (cp->quiet)
        return;
    if (!cp->started && p->done == 0 && !p->finished)
        return; /* no bar before the first byte (errors come without a 0% line) */
    if (!cp->started) {
        snprintf(cp->label, sizeof cp->label, "%s", p->label ? p->label : "download");
        hl_progress_begin(&cp->bar, cp->label);
        cp->started = 1;
    }
    char extra[48] = "";
    if (p->attempt > 1)
        snprintf(extra, sizeof extra, "attempt %d", p->attempt);
    hl_progress_update(&cp->bar, (double)p->done, (double)p->total, p->rows ? "rows" : "B", extra[0] ? extra : NULL,
                       p->finished);
}

static void progress_finish(cli_progress *cp) {
    if (cp->started)
        hl_progress_end(&cp->bar);
    cp->started = 0;
}

/* ---- list --------------------------------------------------------------------------- */

static int data_list(int argc, char **argv) {
    int json = 0;
    const char *dir = NULL;
    hl_opt opts[] = {
        {"dir", 'd', HL_OPT_STRING, &dir, "DIR", "data directory (default: $HYDRALORA_DATA, else ~/.local/share/hydralora)"},
        {"json", 0, HL_OPT_FLAG, &json, NULL, "print JSON"},
        {0}};
    hl_args args = {.usage = "hydralora data list [--dir DIR] [--json]",
                    .summary = "List the data sets and models of the catalog and whether they are downloaded.",
                    .opts = opts,
                    .max_positional = 0};
    int rc = hl_args_parse(&args, argc, argv);
    if (rc >= 0)
        return rc;
    hl_catalog cat;
    if (hl_catalog_load(&cat) != HL_OK) {
        ERR("list", "%s", hl_last_error());
        return 1;
    }
    char root[4096];
    if (dir)
        snprintf(root, sizeof root, "%s", dir);
    else if (hl_data_dir(root, sizeof root) != HL_OK) {
        ERR("list", "%s", hl_last_error());
        hl_catalog_free(&cat);
        return 1;
    }
    if (json)
        printf("[");
    else
        printf("%-16s %-8s %9s  %-9s %-14s %s\n", "ID", "KIND", "SIZE", "LOCAL", "LICENSE", "TITLE");
    for (size_t i = 0; i < cat.n_entries; i++) {
        const hl_catalog_entry *e = &cat.entries[i];
        size_t n_present;
        uint64_t bytes;
        hl_catalog_entry_local(e, root, &n_present, &bytes);
        char size[32];
        if (e->total_size >= 0)
            hl_format_bytes((double)e->total_size, size, sizeof size);
        else
            snprintf(size, sizeof size, "?");
        if (json) {
            printf("%s\n {\"id\": ", i ? "," : "");
            hl_json_write_string(stdout, e->id);
            printf(", \"kind\": \"%s\", \"title\": ", e->kind == HL_CATALOG_MODEL ? "model" : "dataset");
            hl_json_write_string(stdout, e->title);
            printf(", \"license\": ");
            hl_json_write_string(stdout, e->license);
            printf(", \"size\": %lld, \"files\": %zu, \"files_present\": %zu, \"gated\": %s}", (long long)e->total_size,
                   e->n_files, n_present, e->gated ? "true" : "false");
            continue;
        }
        char local[24];
        if (n_present == e->n_files)
            snprintf(local, sizeof local, "yes");
        else if (n_present == 0)
            snprintf(local, sizeof local, "no");
        else
            snprintf(local, sizeof local, "%zu/%zu", n_present, e->n_files);
        /* short licence: up to " (" or ":" (the catalog carries the details) */
        char lic[15];
        size_t ll = strcspn(e->license, "(:");
        while (ll > 0 && e->license[ll - 1] == ' ')
            ll--;
        snprintf(lic, sizeof lic, "%.*s", (int)ll, e->license);
        printf("%-16s %-8s %9s  %-9s %-14s %s%s\n", e->id, e->kind == HL_CATALOG_MODEL ? "model" : "dataset", size,
               local, lic, e->title, e->gated ? " [gated: needs HF_TOKEN]" : "");
    }
    if (json)
        printf("\n]\n");
    else
        printf("\ndata directory: %s\ncatalog: %s\n", root, cat.origin);
    hl_catalog_free(&cat);
    return 0;
}

/* ---- get ---------------------------------------------------------------------------- */

typedef struct {
    cli_progress *cp;
    int quiet;
} fetch_ctx;

static void on_fetch_event(void *user, const hl_fetch_info *in) {
    fetch_ctx *fc = user;
    char size[32] = "";
    if (in->file->size >= 0)
        hl_format_bytes((double)in->file->size, size, sizeof size);
    switch (in->event) {
    case HL_FETCH_START:
        fc->cp->started = 0;
        break;
    case HL_FETCH_SKIPPED:
        if (!fc->quiet)
            fprintf(stderr, "  [%zu/%zu] %s: present%s\n", in->index + 1, in->count, in->file->name,
                    in->verified ? (in->file->sha256[0] ? ", sha256 ok" : ", size ok") : " (nothing to verify)");
        break;
    case HL_FETCH_DONE:
        progress_finish(fc->cp);
        if (!fc->quiet)
            fprintf(stderr, "  [%zu/%zu] %s: downloaded%s%s%s\n", in->index + 1, in->count, in->file->name,
                    size[0] ? " (" : "", size, size[0] ? ")" : "");
        break;
    case HL_FETCH_FAILED:
        progress_finish(fc->cp);
        break;
    }
}

static int data_get(int argc, char **argv) {
    const char *dir = NULL, *url = NULL, *out = NULL, *sha = NULL;
    long long size = -1, max_rows = 0;
    int timeout = 0, retries = -1, force = 0, quiet = 0, keep_going = 0;
    hl_opt opts[] = {
        {"dir", 'd', HL_OPT_STRING, &dir, "DIR", "data directory (default: $HYDRALORA_DATA, else ~/.local/share/hydralora)"},
        {"url", 0, HL_OPT_STRING, &url, "URL", "download one URL instead of a catalog entry (needs --out)"},
        {"out", 'o', HL_OPT_STRING, &out, "PATH", "where --url goes"},
        {"sha256", 0, HL_OPT_STRING, &sha, "HEX", "expected sha256 of --url (checked; a mismatch deletes the file)"},
        {"size", 0, HL_OPT_LONG, &size, "BYTES", "expected size of --url"},
        {"max-rows", 0, HL_OPT_LONG, &max_rows, "N", "for data sets fetched through the rows API: stop after N rows"},
        {"force", 'f', HL_OPT_FLAG, &force, NULL, "download again even if the files are present and verified"},
        {"keep-going", 'k', HL_OPT_FLAG, &keep_going, NULL, "continue with the next file after a failure"},
        {"timeout", 0, HL_OPT_INT, &timeout, "S", "connect timeout, and abort when stalled for S seconds (default 30/60)"},
        {"retries", 0, HL_OPT_INT, &retries, "N", "retries on network errors and 5xx (default 5)"},
        {"quiet", 'q', HL_OPT_FLAG, &quiet, NULL, "no progress output"},
        {0}};
    hl_args args = {
        .usage = "hydralora data get ID [--dir DIR] | hydralora data get --url URL --out PATH [--sha256 HEX]",
        .summary = "Download every file of a catalog entry into <data dir>/<ID>/ (files already present with a "
                   "matching sha256 are skipped), or one URL. Downloads resume after an interruption (Ctrl-C "
                   "keeps the partial file) and are checked against the catalog's sha256.",
        .opts = opts,
        .epilog = "environment:\n"
                  "  HF_TOKEN            Hugging Face token for gated models (also HUGGING_FACE_HUB_TOKEN,\n"
                  "                      ~/.cache/huggingface/token); sent only to the HF endpoint\n"
                  "  HF_ENDPOINT         Hugging Face endpoint (default https://huggingface.co)\n"
                  "  HYDRALORA_MIRROR    fetch every catalog URL from MIRROR/<host>/<path> instead\n"
                  "  HYDRALORA_DATA      data directory\n"
                  "  HYDRALORA_CATALOG   use this catalog.json instead of the built-in one\n"
                  "examples:\n"
                  "  hydralora data get gsm8k\n"
                  "  HF_TOKEN=hf_... hydralora data get llama-2-7b-hf\n"
                  "  hydralora data get --url https://example.org/x.json --out x.json --sha256 <hex>",
        .max_positional = 1};
    int rc = hl_args_parse(&args, argc, argv);
    if (rc >= 0)
        return rc;
    if ((url != NULL) == (args.n_positional == 1)) {
        ERR("get", "give either a catalog ID or --url URL --out PATH (see `hydralora data list`)");
        return 2;
    }
    if (url && !out) {
        ERR("get", "--url needs --out PATH");
        return 2;
    }
    if (sha && !hl_sha256_is_hex(sha)) {
        ERR("get", "--sha256 must be 64 hex digits");
        return 2;
    }
    hl_download_opts d;
    hl_download_opts_init(&d);
    if (timeout > 0)
        d.connect_timeout_s = d.low_speed_time_s = timeout;
    if (retries >= 0)
        d.max_retries = retries;
    cli_progress cp = {.quiet = quiet};
    d.progress = on_progress;
    d.user = &cp;
    d.cancel = &g_cancel;
    struct sigaction old;
    install_sigint(&old);
    int status = 0;
    if (url) {
        d.url = url;
        d.dest = out;
        d.sha256 = sha;
        d.size = size;
        hl_status st = hl_download_file(&d);
        progress_finish(&cp);
        if (st != HL_OK) {
            ERR("get", "%s", hl_last_error());
            status = 1;
        } else if (!quiet) {
            fprintf(stderr, "saved %s%s\n", out, sha ? " (sha256 verified)" : "");
        }
    } else {
        hl_catalog cat;
        if (hl_catalog_load(&cat) != HL_OK) {
            ERR("get", "%s", hl_last_error());
            sigaction(SIGINT, &old, NULL);
            return 1;
        }
        const hl_catalog_entry *e = hl_catalog_find(&cat, args.positional[0]);
        if (!e) {
            ERR("get", "no entry '%s' in the catalog (%s); see `hydralora data list`", args.positional[0], cat.origin);
            hl_catalog_free(&cat);
            sigaction(SIGINT, &old, NULL);
            return 1;
        }
        char root[4096];
        if (dir)
            snprintf(root, sizeof root, "%s", dir);
        else if (hl_data_dir(root, sizeof root) != HL_OK) {
            ERR("get", "%s", hl_last_error());
            hl_catalog_free(&cat);
            sigaction(SIGINT, &old, NULL);
            return 1;
        }
        if (!quiet) {
            char total[32] = "size unknown";
            if (e->total_size >= 0)
                hl_format_bytes((double)e->total_size, total, sizeof total);
            fprintf(stderr, "%s: %zu file%s, %s -> %s/%s/\n", e->id, e->n_files, e->n_files == 1 ? "" : "s", total,
                    root, e->id);
            if (e->gated)
                fprintf(stderr, "note: %s is gated: %s\n", e->id,
                        e->note[0] ? e->note : "it needs a Hugging Face token (HF_TOKEN)");
        }
        fetch_ctx fc = {&cp, quiet};
        hl_fetch_opts fo = {.data_dir = root, .download = d, .max_rows = (long)max_rows, .force = force,
                            .keep_going = keep_going, .on_event = on_fetch_event, .user = &fc};
        size_t n_done = 0, n_skip = 0;
        hl_status st = hl_fetch_entry(e, &fo, &n_done, &n_skip);
        progress_finish(&cp);
        if (st != HL_OK) {
            ERR("get", "%s", hl_last_error());
            status = 1;
        } else if (!quiet) {
            fprintf(stderr, "%s: %zu downloaded, %zu already present, in %s/%s/\n", e->id, n_done, n_skip, root, e->id);
        }
        hl_catalog_free(&cat);
    }
    sigaction(SIGINT, &old, NULL);
    return status;
}

/* ---- inspect ------------------------------------------------------------------------ */

static const char *format_name(const hl_dataset *ds) {
    switch (ds->format) {
    case HL_RECORDS_JSONL:
        return "JSON lines";
    case HL_RECORDS_JSON_ARRAY:
        return "JSON array";
    case HL_RECORDS_JSON_EXAMPLES:
        return "JSON object with an examples array";
    }
    return "?";
}

static int load_for_cli(const char *sub, const char *path, const char *fields, hl_dataset *ds) {
    hl_field_map map = {{0}, {0}, {0}};
    hl_records_options ro = {0};
    if (fields) {
        if (hl_field_map_parse(&map, fields) != HL_OK) {
            ERR(sub, "--fields: %s", hl_last_error());
            return 2;
        }
        ro.map = &map;
    }
    if (hl_records_load(ds, path, &ro) != HL_OK) {
        ERR(sub, "%s", hl_last_error());
        if (strstr(hl_last_error(), "unknown field layout"))
            fprintf(stderr, "hint: name the fields, e.g. --fields instruction=prompt,input=context,output=answer\n");
        return 1;
    }
    return 0;
}

static int load_tokenizer(const char *sub, const char *path, hl_tokenizer **tok) {
    *tok = NULL;
    if (!path)
        return 0;
    if (hl_tokenizer_load(tok, path) != HL_OK) {
        ERR(sub, "%s", hl_last_error());
        return 1;
    }
    return 0;
}

static void print_summary_row(const char *what, const hl_len_summary *s) {
    printf("  %-22s min %-7.0f median %-7.0f p95 %-7.0f max %-7.0f mean %.1f\n", what, s->min, s->p50, s->p95, s->max,
           s->mean);
}

static void print_histogram(const uint32_t *v, size_t n, int bins, const char *unit, int max_length) {
    if (bins < 1 || bins > HL_INSPECT_MAX_BINS)
        bins = 16;
    size_t counts[HL_INSPECT_MAX_BINS];
    double lo, w;
    hl_histogram(v, n, bins, 0, 0, counts, &lo, &w);
    size_t peak = 1;
    for (int i = 0; i < bins; i++)
        if (counts[i] > peak)
            peak = counts[i];
    printf("\nhistogram of lengths in %s (%d bins):\n", unit, bins);
    for (int i = 0; i < bins; i++) {
        double a = lo + w * i, b = lo + w * (i + 1);
        int width = (int)((50.0 * (double)counts[i]) / (double)peak + 0.5);
        if (counts[i] && width == 0)
            width = 1;
        char bar[64];
        memset(bar, '#', (size_t)width);
        bar[width] = '\0';
        const char *mark = (max_length > 0 && a <= max_length && max_length < b) ? "  <- max length" : "";
        printf("  %7.0f - %-7.0f | %-50s %zu%s\n", a, b, bar, counts[i], mark);
    }
}

static int data_inspect(int argc, char **argv) {
    const char *tokp = NULL, *fields = NULL;
    int max_length = 1024, bins = 16, max_issues = 20;
    hl_opt opts[] = {
        {"tokenizer", 't', HL_OPT_STRING, &tokp, "PATH", "tokenizer for token lengths: a tokenizer file, a model folder or model file"},
        {"max-length", 0, HL_OPT_INT, &max_length, "N", "count records longer than N tokens (default 1024)"},
        {"fields", 0, HL_OPT_STRING, &fields, "MAP", "field map, e.g. instruction=question,output=answer (default: detect)"},
        {"bins", 0, HL_OPT_INT, &bins, "N", "histogram bins (default 16, max 64)"},
        {"errors", 0, HL_OPT_INT, &max_issues, "N", "malformed lines to list (default 20)"},
        {0}};
    hl_args args = {.usage = "hydralora data inspect FILE [--tokenizer PATH] [--max-length N] [--fields MAP]",
                    .summary = "Summarise a JSON / JSON lines data file (gzip'd or not): records, fields, "
                               "duplicates, length statistics and histogram, malformed lines.",
                    .opts = opts,
                    .min_positional = 1,
                    .max_positional = 1};
    int rc = hl_args_parse(&args, argc, argv);
    if (rc >= 0)
        return rc;
    hl_tokenizer *tok = NULL;
    if ((rc = load_tokenizer("inspect", tokp, &tok)) != 0)
        return rc;
    hl_dataset ds;
    if ((rc = load_for_cli("inspect", args.positional[0], fields, &ds)) != 0) {
        hl_tokenizer_free(tok);
        return rc;
    }
    hl_inspect in;
    struct sigaction old;
    install_sigint(&old);
    hl_status st = hl_inspect_dataset(&ds, tok, max_length, &g_cancel, &in);
    sigaction(SIGINT, &old, NULL);
    if (st != HL_OK) {
        ERR("inspect", "%s", hl_last_error());
        hl_dataset_free(&ds);
        hl_tokenizer_free(tok);
        return 1;
    }
    char size[32];
    hl_format_bytes((double)ds.file_bytes, size, sizeof size);
    printf("file:     %s\n", ds.path);
    printf("format:   %s%s, %s\n", format_name(&ds), ds.gzipped ? " (gzip)" : "", size);
    printf("fields:   %s: instruction=%s input=%s output=%s\n", ds.schema, ds.map.instruction,
           ds.map.input[0] ? ds.map.input : "(none)", ds.map.output);
    printf("records:  %zu usable, %zu malformed/skipped, %zu duplicates (%zu distinct records repeated), %zu empty "
           "outputs\n",
           in.n_records, ds.n_malformed, in.n_duplicates, in.n_duplicate_groups, in.n_empty_output);
    size_t n_obj = ds.n_objects;
    printf("\n  %-24s %9s %9s %9s\n", "field", "present", "empty", "missing");
    for (int i = 0; i < ds.n_fields; i++)
        printf("  %-24s %9zu %9zu %9zu\n", ds.fields[i].name, ds.fields[i].present, ds.fields[i].empty,
               n_obj - ds.fields[i].present);
    if (ds.n_other_field_keys)
        printf("  (%zu more keys not tracked)\n", ds.n_other_field_keys);
    printf("\nlengths:\n");
    print_summary_row("characters", &in.chars);
    if (in.have_tokens) {
        print_summary_row("tokens (full example)", &in.tokens);
        print_summary_row("tokens (source)", &in.prompt_tokens);
        print_summary_row("tokens (target)", &in.output_tokens);
        printf("  longer than %d tokens: %zu records (%.1f%%) would be truncated\n", in.max_length, in.n_over_max,
               in.n_records ? 100.0 * (double)in.n_over_max / (double)in.n_records : 0.0);
        print_histogram(in.tok_len, in.n_records, bins, "tokens", in.max_length);
    } else {
        printf("  (token lengths: pass --tokenizer PATH)\n");
        print_histogram(in.char_len, in.n_records, bins, "characters", 0);
    }
    if (ds.n_malformed) {
        printf("\nmalformed (%zu):\n", ds.n_malformed);
        for (size_t i = 0; i < ds.n_issues && (int)i < max_issues; i++) {
            if (ds.issues[i].line)
                printf("  line %u: %s\n", ds.issues[i].line, ds.issues[i].reason);
            else
                printf("  %s\n", ds.issues[i].reason);
        }
        if (ds.n_malformed > (size_t)max_issues)
            printf("  ... (%zu more)\n", ds.n_malformed - (size_t)(max_issues < 0 ? 0 : max_issues));
    }
    hl_inspect_free(&in);
    hl_dataset_free(&ds);
    hl_tokenizer_free(tok);
    return 0;
}

/* ---- show --------------------------------------------------------------------------- */

static int data_show(int argc, char **argv) {
    const char *tokp = NULL, *fields = NULL;
    int max_length = 0, tokens = 0, plain = 0;
    hl_opt opts[] = {
        {"tokenizer", 't', HL_OPT_STRING, &tokp, "PATH", "tokenizer (file, model folder or model file): token counts and the truncation point"},
        {"max-length", 0, HL_OPT_INT, &max_length, "N", "truncate to N tokens as training does (needs --tokenizer)"},
        {"fields", 0, HL_OPT_STRING, &fields, "MAP", "field map, e.g. instruction=question,output=answer"},
        {"tokens", 0, HL_OPT_FLAG, &tokens, NULL, "also list every token: position, id, piece, label"},
        {"plain", 0, HL_OPT_FLAG, &plain, NULL, "no colours; mark the masked part with [[ ]]"},
        {0}};
    hl_args args = {.usage = "hydralora data show FILE N [--tokenizer PATH] [--max-length N] [--tokens]",
                    .summary = "Print record N (0-based) as the model sees it: the source (prompt, masked: no "
                               "loss) and the target (trained).",
                    .opts = opts,
                    .min_positional = 2,
                    .max_positional = 2};
    int rc = hl_args_parse(&args, argc, argv);
    if (rc >= 0)
        return rc;
    char *end = NULL;
    long long idx = strtoll(args.positional[1], &end, 10);
    if (!end || *end || idx < 0) {
        ERR("show", "N must be a record index (0, 1, ...), got '%s'", args.positional[1]);
        return 2;
    }
    hl_tokenizer *tok = NULL;
    if ((rc = load_tokenizer("show", tokp, &tok)) != 0)
        return rc;
    hl_dataset ds;
    if ((rc = load_for_cli("show", args.positional[0], fields, &ds)) != 0) {
        hl_tokenizer_free(tok);
        return rc;
    }
    const hl_record *r = hl_dataset_get(&ds, (size_t)idx);
    if (!r) {
        ERR("show", "record %lld does not exist: %s has %zu usable records (0..%zu)", idx, ds.path, ds.n_records,
            ds.n_records - 1);
        hl_dataset_free(&ds);
        hl_tokenizer_free(tok);
        return 1;
    }
    int color = !plain && isatty(1) && getenv("NO_COLOR") == NULL;
    const char *dim = color ? "\033[2m" : "[[", *undim = color ? "\033[0m" : "]]";
    const char *bold = color ? "\033[1m" : "", *unbold = color ? "\033[0m" : "";
    printf("%srecord %lld of %zu%s (%s %u of %s)\n", bold, idx, ds.n_records, unbold,
           r->line ? "line" : "element", r->line ? r->line : r->index, ds.path);
    char *prompt = NULL;
    size_t plen = 0;
    if (hl_record_prompt(r, &prompt, &plen) != HL_OK) {
        ERR("show", "%s", hl_last_error());
        hl_dataset_free(&ds);
        hl_tokenizer_free(tok);
        return 1;
    }
    hl_tokenized t = {0};
    if (tok && hl_record_tokenize(tok, r, max_length, &t) != HL_OK) {
        ERR("show", "%s", hl_last_error());
        free(prompt);
        hl_dataset_free(&ds);
        hl_tokenizer_free(tok);
        return 1;
    }
    if (tok) {
        size_t src_full = 0, tgt_full;
        /* n_source is after truncation; recompute the full split from n_full */
        int32_t *ids = NULL;
        size_t n = 0;
        if (hl_tokenizer_encode(tok, prompt, plen, 1, &ids, &n) == HL_OK)
            src_full = n + 1;
        free(ids);
        tgt_full = t.n_full - src_full;
        printf("%s--- source: masked, no loss --- %zu tokens ([BOS] + prompt + [EOS])%s\n", bold, src_full, unbold);
        printf("%s<s>%s</s>%s\n", dim, prompt, undim);
        printf("%s--- target: trained --- %zu tokens (output + [EOS])%s\n", bold, tgt_full, unbold);
        printf("%s</s>\n", r->output);
        printf("%s--- %zu tokens", bold, t.n_full);
        if (t.truncated)
            printf(", truncated to %zu (max length %d): %zu target tokens are lost%s", t.n,
                   max_length, t.n_full - t.n > tgt_full ? tgt_full : t.n_full - t.n,
                   t.n <= t.n_source ? " -- NOTHING of the target is trained!" : "");
        printf(" ---%s\n", unbold);
        if (tokens) {
            printf("\n  %5s %7s %7s  %s\n", "pos", "id", "label", "piece");
            for (size_t i = 0; i < t.n; i++) {
                const char *piece = hl_tokenizer_piece(tok, t.ids[i]);
                if (t.labels[i] == HL_LABEL_IGNORE)
                    printf("  %5zu %7d %7s  %s%s%s\n", i, t.ids[i], "-100", dim, piece ? piece : "?", undim);
                else
                    printf("  %5zu %7d %7d  %s\n", i, t.ids[i], t.labels[i], piece ? piece : "?");
            }
        }
    } else {
        printf("%s--- source: masked, no loss --- [BOS] + prompt + [EOS]%s\n", bold, unbold);
        printf("%s%s%s\n", dim, prompt, undim);
        printf("%s--- target: trained --- output + [EOS]%s\n", bold, unbold);
        printf("%s\n", r->output);
        printf("%s--- (token counts: pass --tokenizer PATH) ---%s\n", bold, unbold);
    }
    hl_tokenized_free(&t);
    free(prompt);
    hl_dataset_free(&ds);
    hl_tokenizer_free(tok);
    return 0;
}

/* ---- dispatch ----------------------------------------------------------------------- */

static void data_usage(FILE *f) {
    fprintf(f, "usage: hydralora data COMMAND [ARGS]   (COMMAND --help for details)\n\n"
               "commands:\n"
               "  list                     data sets and models in the catalog, and what is downloaded\n"
               "  get ID                   download a catalog entry (resumable, sha256-checked)\n"
               "  get --url URL --out P    download one URL\n"
               "  inspect FILE             records, fields, duplicates, lengths, malformed lines\n"
               "  show FILE N              record N as the model sees it (masked source, trained target)\n"
               "  dir                      print the data directory\n");
}

int cmd_data(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        data_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "list"))
        return data_list(argc - 1, argv + 1);
    if (!strcmp(sub, "get"))
        return data_get(argc - 1, argv + 1);
    if (!strcmp(sub, "inspect"))
        return data_inspect(argc - 1, argv + 1);
    if (!strcmp(sub, "show"))
        return data_show(argc - 1, argv + 1);
    if (!strcmp(sub, "dir")) {
        hl_opt opts[] = {{0}};
        hl_args args = {.usage = "hydralora data dir",
                        .summary = "Print the data directory: $HYDRALORA_DATA, else $XDG_DATA_HOME/hydralora, else "
                                   "~/.local/share/hydralora.",
                        .opts = opts,
                        .max_positional = 0};
        int rc = hl_args_parse(&args, argc - 1, argv + 1);
        if (rc >= 0)
            return rc;
        char root[4096];
        if (hl_data_dir(root, sizeof root) != HL_OK) {
            ERR("dir", "%s", hl_last_error());
            return 1;
        }
        printf("%s\n", root);
        return 0;
    }
    fprintf(stderr, "hydralora data: unknown command '%s'\n\n", sub);
    data_usage(stderr);
    return 2;
}
