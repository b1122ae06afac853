/* Loading for training and evaluation: backend, model, tokenizer, records → tokenised
 * examples, the session; and the eval pass (see train.h). The job loop itself is in
 * train_loop.c. */
#include "core/train/train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/train/private.h"
#include "core/text/records.h"

hl_status hl_train_load_tokenizer(hl_tokenizer **out, const hl_run_config *cfg) {
    /* the one discovery rule (hl_tokenizer_find): "tokenizer" in any form, else the model's */
    hl_status st = hl_tokenizer_load(out, cfg->tokenizer[0] ? cfg->tokenizer : cfg->model);
    if (st == HL_ERR_NOT_FOUND && !cfg->tokenizer[0]) {
        char msg[1200];
        snprintf(msg, sizeof msg, "%s", hl_last_error());
        return hl_fail(st, "%s; set \"tokenizer\" in the run config", msg);
    }
    return st;
}

/* ---- records → examples ---- */

static hl_status field_map(const hl_run_config *cfg, hl_field_map *map, int *given) {
    *given = cfg->field_instruction[0] || cfg->field_output[0] || cfg->field_input[0];
    if (!*given)
        return HL_OK;
    return hl_field_map_set(map, cfg->field_instruction[0] ? cfg->field_instruction : "instruction", cfg->field_input,
                            cfg->field_output[0] ? cfg->field_output : "output");
}

/* Load every comma-separated file of `list` (at most HL_TRAIN_MAX_FILES). */
static hl_status load_files(trainer_data *td, const char *list, const hl_run_config *cfg, int *first, int *count) {
    hl_field_map map;
    int given = 0;
    HL_TRY(field_map(cfg, &map, &given));
    hl_records_options opts = {.map = given ? &map : NULL, .tag_field = td->tag_field[0] ? td->tag_field : NULL};
    *first = td->n_files;
    *count = 0;
    const char *p = list;
    while (*p) {
        const char *q = strchr(p, ',');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n > 0) {
            if (td->n_files >= HL_TRAIN_MAX_FILES)
                return hl_fail(HL_ERR_ARG, "data: more than %d files", HL_TRAIN_MAX_FILES);
            char path[HL_CONFIG_PATH_MAX];
            snprintf(path, sizeof path, "%.*s", (int)n, p);
            hl_dataset *ds = &td->files[td->n_files];
            hl_status st = hl_records_load(ds, path, &opts);
            if (st)
                return hl_fail_context(st, "loading %s", path);
            td->n_files++;
            (*count)++;
        }
        if (!q)
            break;
        p = q + 1;
    }
    if (*count == 0)
        return hl_fail(HL_ERR_ARG, "no data file named in '%s'", list);
    return HL_OK;
}

void trainer_data_free(trainer_data *td) {
    for (int i = 0; i < td->n_files; i++)
        hl_dataset_free(&td->files[i]);
    td->n_files = 0;
}

/* Record number k over files [first, first+count). */
static const hl_record *nth_record(trainer_data *td, int first, int count, size_t k, int *file) {
    for (int f = first; f < first + count; f++) {
        if (k < td->files[f].n_records) {
            *file = f;
            return hl_dataset_get(&td->files[f], k);
        }
        k -= td->files[f].n_records;
    }
    return NULL;
}

static size_t total_records(const trainer_data *td, int first, int count) {
    size_t n = 0;
    for (int f = first; f < first + count; f++)
        n += td->files[f].n_records;
    return n;
}

/* Tokenise records idx[0..n) into ex; count truncations and skipped (no target) ones. */
/* recs (may be NULL): grown to hold (file << 32) | record index of every example added. */
static hl_status tokenize_into(hl_examples *ex, trainer_data *td, int first, int count, const size_t *idx, size_t n,
                               const hl_tokenizer *tok, int max_len, int64_t *n_truncated, int64_t *n_skipped,
                               void (*progress)(void *, size_t, size_t), void *pctx, int64_t **recs) {
    if (recs) {
        free(*recs);
        *recs = malloc((n ? n : 1) * sizeof **recs); /* one per record at most */
        if (!*recs)
            return hl_fail(HL_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        int file = 0;
        const hl_record *rec = nth_record(td, first, count, idx ? idx[i] : i, &file);
        if (!rec)
            return hl_fail(HL_ERR_INTERNAL, "record %zu out of range", idx ? idx[i] : i);
        hl_tokenized tk;
        HL_TRY(hl_record_tokenize(tok, rec, max_len, &tk));
        int64_t targets = 0;
        for (size_t t = 1; t < tk.n; t++)
            targets += tk.labels[t] != HL_LABEL_IGNORE;
        *n_truncated += tk.truncated != 0;
        hl_status st = HL_OK;
        if (targets == 0)
            (*n_skipped)++;
        else {
            if (recs)
                (*recs)[ex->n] = ((int64_t)file << 32) | (int64_t)(rec - td->files[file].records);
            st = hl_examples_add(ex, tk.ids, tk.labels, (int64_t)tk.n, ((int64_t)file << 32) | rec->line);
        }
        hl_tokenized_free(&tk);
        if (st)
            return st;
        if (progress && (i % 256 == 255 || i + 1 == n))
            progress(pctx, i + 1, n);
    }
    return HL_OK;
}

hl_status trainer_load_examples(hl_trainer *t, unsigned what, void (*progress)(void *, size_t, size_t), void *pctx) {
    const hl_run_config *cfg = &t->cfg;
    trainer_data *td = &t->data;
    int tf = 0, tc = 0, vf = 0, vc = 0;
    size_t *train_idx = NULL, *val_idx = NULL, n_train = 0, n_val = 0;
    hl_status st = HL_OK;
    int want_train = !!(what & HL_TRAINER_TRAIN_DATA), want_val = !!(what & HL_TRAINER_VAL_DATA);
    int split = !cfg->val_data[0] && cfg->val_split > 0;
    if (want_train || (want_val && !cfg->val_data[0]))
        HL_TRY(load_files(td, cfg->data, cfg, &tf, &tc));
    if (want_val && cfg->val_data[0])
        HL_TRY(load_files(td, cfg->val_data, cfg, &vf, &vc));
    size_t n_all = tc ? total_records(td, tf, tc) : 0;
    if (tc && split) {
        double frac = cfg->val_split < 1 ? cfg->val_split : 0;
        size_t cnt = cfg->val_split >= 1 ? (size_t)cfg->val_split : 0;
        if (n_all < 2)
            return hl_fail(HL_ERR_ARG, "val_split: the training data has %zu record(s); nothing to split off "
                           "(set val_split=0 or give val_data)", n_all);
        HL_TRY(hl_records_split(n_all, frac, cnt, (uint64_t)cfg->seed, &train_idx, &n_train, &val_idx, &n_val));
    } else if (tc) {
        n_train = n_all; /* identity order; idx NULL */
    }
    t->n_records_train = tc ? (int64_t)n_train : 0;
    for (int f = 0; f < td->n_files; f++) {
        t->n_malformed += (int64_t)td->files[f].n_malformed;
        t->n_loaded += (int64_t)td->files[f].n_records;
    }
    if (want_train) {
        st = tokenize_into(&t->train, td, tf, tc, train_idx, n_train, t->tok, cfg->max_len, &t->n_truncated,
                           &t->n_skipped, progress, pctx, NULL);
        if (st == HL_OK && t->train.n == 0)
            st = hl_fail(HL_ERR_ARG, "data: no usable training example in %s (%zu records, all without target "
                         "tokens after truncation to max_len %d?)", cfg->data, n_train, cfg->max_len);
    }
    if (st == HL_OK && want_val) {
        if (cfg->val_data[0]) {
            size_t n = total_records(td, vf, vc);
            if (cfg->val_max > 0 && n > (size_t)cfg->val_max)
                n = (size_t)cfg->val_max;
            st = tokenize_into(&t->val, td, vf, vc, NULL, n, t->tok, cfg->max_len, &t->n_truncated, &t->n_skipped,
                               NULL, NULL, &t->val_rec);
        } else if (split) {
            if (cfg->val_max > 0 && n_val > (size_t)cfg->val_max)
                n_val = (size_t)cfg->val_max;
            st = tokenize_into(&t->val, td, tf, tc, val_idx, n_val, t->tok, cfg->max_len, &t->n_truncated,
                               &t->n_skipped, NULL, NULL, &t->val_rec);
        }
    }
    /* probe sets (run config probe_data): one source per file, with training only */
    if (st == HL_OK && want_train && cfg->probe_data[0]) {
        int64_t trunc = 0, skipped = 0;
        st = load_files(td, cfg->probe_data, cfg, &t->probe_first, &t->probe_count);
        if (st)
            st = hl_fail_context(st, "probe_data");
        if (st == HL_OK)
            st = tokenize_into(&t->probe, td, t->probe_first, t->probe_count, NULL,
                               total_records(td, t->probe_first, t->probe_count), t->tok, cfg->max_len, &trunc,
                               &skipped, NULL, NULL, &t->probe_rec);
    }
    free(train_idx);
    free(val_idx);
    return st;
}

/* ---- the trainer object ---- */

static int longest(const hl_trainer *t) {
    int T = t->train.max_len > t->val.max_len ? t->train.max_len : t->val.max_len;
    T = t->probe.max_len > T ? t->probe.max_len : T;
    return T < 2 ? 2 : T;
}

/* Columns of a session's rows: packed rows take up to max_len tokens (several examples), padded
 * rows the longest example. Examples are already cut to max_len when tokenised. */
static int session_seq(const hl_trainer *t) {
    int T = longest(t);
    return t->cfg.packing && t->cfg.max_len > T ? t->cfg.max_len : T;
}

hl_status trainer_build_session(hl_trainer *t, unsigned flags) {
    hl_session_free(t->sess);
    t->sess = NULL;
    int T = session_seq(t);
    t->sess_flags = flags;
    HL_TRY(hl_session_create(&t->sess, t->be, &t->model, t->with_adapters ? &t->acfg : NULL, (uint64_t)t->cfg.seed,
                             t->cfg.micro_batch, T, flags));
    HL_TRY(hl_session_set_compute(t->sess, t->cfg.compute));
    hl_microbatch_free(&t->mb);
    free(t->row_start);
    free(t->row_len);
    t->row_start = malloc((size_t)t->cfg.micro_batch * sizeof *t->row_start);
    t->row_len = malloc((size_t)t->cfg.micro_batch * sizeof *t->row_len);
    if (!t->row_start || !t->row_len)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    hl_packed_free(&t->pk);
    t->packing = t->cfg.packing != 0;
    /* one row of micro_batch x max_len tokens (the session's token budget) filled with whole examples:
     * the row ends where its last example ends, so nothing computed is padding; only the space
     * the next example did not fit into is left unused */
    if (t->packing && (int64_t)t->cfg.micro_batch * T > INT32_MAX)
        return hl_fail(HL_ERR_ARG, "packing: micro_batch x max_len = %lld tokens is too many for one packed row "
                       "(lower micro_batch or max_len)", (long long)t->cfg.micro_batch * T);
    if (t->packing)
        return hl_packed_init(&t->pk, 1, t->cfg.micro_batch * T, longest(t));
    return hl_microbatch_init(&t->mb, t->cfg.micro_batch, T);
}

hl_batch trainer_batch(hl_trainer *t) {
    hl_batch b;
    if (t->packing) {
        b = (hl_batch){t->pk.B, t->pk.T, t->pk.tokens, t->pk.labels, t->pk.n_seq, t->pk.seq_start, t->pk.seq_len};
        return b;
    }
    hl_batch_padded(&b, t->mb.tokens, t->mb.labels, t->mb.lengths, t->mb.B, t->mb.T, t->row_start, t->row_len);
    return b;
}

hl_status trainer_open_base(hl_trainer *t, const hl_run_config *cfg) {
    t->cfg = *cfg;
    hl_examples_init(&t->train);
    hl_examples_init(&t->val);
    hl_examples_init(&t->probe);
    HL_TRY(hl_backend_open(&t->be, cfg->device[0] ? cfg->device : "auto"));
    HL_TRY(hl_backend_set_threads(t->be, cfg->threads));
    HL_TRY(hl_model_load(&t->model, cfg->model));
    t->model_loaded = 1;
    /* Positions past the model's context were never trained: a longer max_len would fit the
     * adapter to what the base model cannot do. Clamp (the job says so) rather than refuse,
     * so that the reference default 1024 works on small models too. */
    int context = t->model.cfg.max_seq_len;
    if (context > 0 && t->cfg.max_len > context) {
        t->max_len_requested = t->cfg.max_len;
        t->cfg.max_len = context;
    }
    HL_TRY(hl_train_load_tokenizer(&t->tok, cfg));
    int tv = hl_tokenizer_vocab_size(t->tok);
    if (tv > t->model.cfg.vocab_size)
        return hl_fail(HL_ERR_SHAPE, "the tokenizer has %d pieces but the model's vocabulary is %d: wrong tokenizer "
                       "for %s?", tv, t->model.cfg.vocab_size, cfg->model);
    return HL_OK;
}

hl_status trainer_create_adapters(hl_trainer *t) {
    t->acfg = hl_config_adapter(&t->cfg);
    HL_TRY(hl_adapter_config_check(&t->acfg));
    t->with_adapters = 1;
    return HL_OK;
}

hl_status hl_trainer_open(hl_trainer **out, const hl_run_config *cfg, unsigned what) {
    *out = NULL;
    hl_trainer *t = calloc(1, sizeof *t);
    if (!t)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    hl_status st = trainer_open_base(t, cfg);
    if (st == HL_OK)
        st = trainer_load_examples(t, what, NULL, NULL);
    if (st == HL_OK && !(what & HL_TRAINER_NO_ADAPTER))
        st = trainer_create_adapters(t);
    if (st == HL_OK)
        st = trainer_build_session(t, 0);
    if (st) {
        hl_trainer_close(t);
        return st;
    }
    *out = t;
    return HL_OK;
}

void hl_trainer_close(hl_trainer *t) {
    if (!t)
        return;
    hl_session_free(t->alt);
    hl_session_free(t->sess);
    hl_microbatch_free(&t->mb);
    hl_packed_free(&t->pk);
    free(t->row_start);
    free(t->row_len);
    hl_examples_free(&t->train);
    hl_examples_free(&t->val);
    hl_examples_free(&t->probe);
    free(t->val_rec);
    free(t->probe_rec);
    trainer_data_free(&t->data);
    if (t->tok)
        hl_tokenizer_free(t->tok);
    if (t->model_loaded)
        hl_model_free(&t->model);
    hl_backend_close(t->be);
    free(t);
}

hl_session *hl_trainer_session(hl_trainer *t) { return t->alt ? t->alt : t->sess; }
const hl_adapters *hl_trainer_layout(const hl_trainer *t) { return hl_session_layout(t->alt ? t->alt : t->sess); }
const hl_model *hl_trainer_model(const hl_trainer *t) { return &t->model; }
const hl_tokenizer *hl_trainer_tokenizer(const hl_trainer *t) { return t->tok; }
const hl_examples *hl_trainer_val(const hl_trainer *t) { return &t->val; }
const hl_examples *hl_trainer_train(const hl_trainer *t) { return &t->train; }

void hl_trainer_skipped(const hl_trainer *t, int64_t *n_malformed, int64_t *n_no_target) {
    if (n_malformed)
        *n_malformed = t->n_malformed;
    if (n_no_target)
        *n_no_target = t->n_skipped;
}

hl_status hl_trainer_use_adapters(hl_trainer *t, const hl_adapters *ad) {
    hl_session_free(t->alt);
    t->alt = NULL;
    if (!ad)
        return HL_OK;
    HL_TRY(hl_session_create(&t->alt, t->be, &t->model, &ad->cfg, ad->seed, t->cfg.micro_batch, session_seq(t), 0));
    HL_TRY(hl_session_set_compute(t->alt, t->cfg.compute));
    const hl_adapters *lay = hl_session_layout(t->alt);
    if (lay->n_params != ad->n_params) {
        hl_session_free(t->alt);
        t->alt = NULL;
        return hl_fail(HL_ERR_SHAPE, "adapter has %zu parameters, its configuration implies %zu", ad->n_params,
                       lay->n_params);
    }
    return hl_session_write_slab(t->alt, HL_SLAB_PARAMS, 0, ad->n_params, ad->params);
}

/* Add src's routing statistics into dst (same layer count and N). */
static void add_routing(hl_routing_stats *dst, const hl_routing_stats *src) {
    int n = dst->n_layers * HL_TARGET_COUNT;
    for (int i = 0; i < n; i++) {
        dst->tokens[i] += src->tokens[i];
        dst->entropy_sum[i] += src->entropy_sum[i];
        for (int h = 0; h < dst->N; h++) {
            dst->weight_sum[i * dst->N + h] += src->weight_sum[i * dst->N + h];
            dst->top1[i * dst->N + h] += src->top1[i * dst->N + h];
        }
    }
}

hl_status hl_trainer_eval(hl_trainer *t, double *loss, double *per_example, hl_routing_stats *routing) {
    const hl_examples *ex = &t->val;
    *loss = NAN;
    if (ex->n == 0)
        return hl_fail(HL_ERR_ARG, "no validation examples (set val_split or val_data)");
    hl_session *s = hl_trainer_session(t);
    const hl_adapters *lay = hl_session_layout(s);
    /* per-example sums of one micro-batch: up to micro_batch examples padded, up to one per token packed */
    int64_t B = t->packing ? t->pk.cap_seq : t->cfg.micro_batch;
    double *sums = malloc((size_t)B * sizeof *sums);
    int64_t *cnts = malloc((size_t)B * sizeof *cnts);
    int64_t *which = malloc((size_t)(t->packing ? ex->n : B) * sizeof *which);
    hl_routing_stats pass;
    int stats = routing && lay && lay->has_router && routing->N == lay->N && routing->n_layers == lay->n_layers;
    hl_status st = sums && cnts && which ? HL_OK : hl_fail(HL_ERR_NOMEM, "out of memory");
    if (st == HL_OK && stats)
        st = hl_routing_stats_init(&pass, lay->n_layers, lay->N);
    if (st != HL_OK) {
        free(sums);
        free(cnts);
        free(which);
        return st;
    }
    if (stats) {
        hl_session_routing_reset(s, HL_STATS_EVAL);
        hl_session_collect_eval_stats(s, 1);
    }
    double total = 0;
    int64_t count = 0;
    if (t->packing)
        for (int64_t i = 0; i < ex->n; i++)
            which[i] = i;
    for (int64_t i = 0, n = 0; i < ex->n && st == HL_OK; i += n) {
        if (t->packing) { /* whole examples in file order, as many as fit the micro-batch's rows */
            st = hl_packed_fill(&t->pk, ex, which + i, ex->n - i, &n);
        } else {
            n = ex->n - i < B ? ex->n - i : B;
            for (int b = 0; b < n; b++)
                which[b] = i + b;
            st = hl_microbatch_fill(&t->mb, ex, which, (int)n);
        }
        if (st)
            break;
        float l = 0;
        int64_t nt = 0;
        hl_batch batch = trainer_batch(t);
        st = hl_session_eval(s, &batch, &l, &nt, sums, cnts);
        if (st)
            break;
        for (int b = 0; b < n; b++) {
            total += sums[b];
            count += cnts[b];
            if (per_example)
                per_example[i + b] = cnts[b] ? sums[b] / (double)cnts[b] : NAN;
        }
    }
    if (stats) {
        hl_session_collect_eval_stats(s, 0);
        if (st == HL_OK)
            st = hl_session_routing(s, HL_STATS_EVAL, &pass);
        if (st == HL_OK)
            add_routing(routing, &pass);
        hl_routing_stats_free(&pass);
    }
    free(sums);
    free(cnts);
    free(which);
    if (st)
        return st;
    *loss = count ? total / (double)count : NAN;
    return HL_OK;
}
