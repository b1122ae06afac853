/* Routing statistics by source (see routing.h): loading (token-id lists or instruction records
 * with their source field), scoring source by source through the seam's eval accumulator, the
 * derived figures and their JSON. */
#include "core/train/routing.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/jsonout.h"
#include "core/model/model.h"
#include "core/text/idlist.h"
#include "core/train/export.h"
#include "core/train/private.h"

#define MAX_SOURCES 256 /* distinct source values: more means the field is not a label */

double hl_routing_load_cv(const hl_routing_stats *st, int layer, int target) {
    int N = st->N;
    if (N <= 0 || !st->tokens[layer * HL_TARGET_COUNT + target])
        return 0.0;
    double mean = 0, var = 0;
    for (int e = 0; e < N; e++)
        mean += hl_routing_mean_weight(st, layer, target, e);
    mean /= N;
    for (int e = 0; e < N; e++) {
        double d = hl_routing_mean_weight(st, layer, target, e) - mean;
        var += d * d;
    }
    return mean > 0 ? sqrt(var / N) / mean : 0.0;
}

double hl_routing_layer_mean(const hl_routing_report *rep, const hl_routing_stats *st, int m, int e) {
    double sum = 0;
    int n = 0;
    for (int mm = 0; mm < rep->n_modules; mm++) {
        if (m >= 0 && mm != m)
            continue;
        for (int l = 0; l < rep->n_layers; l++, n++)
            sum += hl_routing_mean_weight(st, l, rep->module_target[mm], e);
    }
    return n ? sum / n : 0.0;
}

void hl_routing_report_free(hl_routing_report *rep) {
    if (!rep)
        return;
    for (int i = 0; i < rep->n_sources; i++)
        hl_routing_stats_free(&rep->src[i].stats);
    free(rep->src);
    if (rep->all.tokens)
        hl_routing_stats_free(&rep->all);
    memset(rep, 0, sizeof *rep);
}

/* ---- scoring source by source ---------------------------------------------------------------- */

hl_status hl_routing_eval_groups(hl_session *s, hl_microbatch *mb, hl_packed *pk, const hl_examples *ex, const int *group,
                                 int n_sources, hl_routing_source *out, hl_routing_progress_fn progress, void *user) {
    /* packed: one source's examples are listed whole (which) and packed in order, up to one
     * example per token of the micro-batch; padded: up to cap_b examples at a time */
    int64_t cap = pk ? (ex->n > pk->cap_seq ? ex->n : pk->cap_seq) : mb->cap_b;
    cap = cap > 0 ? cap : 1;
    int64_t *which = malloc((size_t)cap * sizeof *which);
    int32_t *starts = malloc((size_t)cap * sizeof *starts), *lens = malloc((size_t)cap * sizeof *lens);
    double *sums = malloc((size_t)cap * sizeof *sums);
    int64_t *cnts = malloc((size_t)cap * sizeof *cnts);
    hl_status st = which && starts && lens && sums && cnts ? HL_OK : hl_fail(HL_ERR_NOMEM, "out of memory");
    int64_t done = 0;
    for (int g = 0; g < n_sources && st == HL_OK; g++) {
        hl_routing_source *o = &out[g];
        double loss_sum = 0;
        o->records = o->positions = o->targets = 0;
        st = hl_session_routing_reset(s, HL_STATS_EVAL);
        hl_session_collect_eval_stats(s, 1);
        int64_t i = 0, listed = 0, next = 0;
        if (pk) /* this source's examples, in file order */
            for (int64_t k = 0; k < ex->n; k++)
                if (group[k] == g)
                    which[listed++] = k;
        while (st == HL_OK) {
            int64_t n = 0;
            hl_batch b;
            if (pk) {
                if (next >= listed)
                    break;
                st = hl_packed_fill(pk, ex, which + next, listed - next, &n);
                if (st)
                    break;
                b = (hl_batch){pk->B, pk->T, pk->tokens, pk->labels, pk->n_seq, pk->seq_start, pk->seq_len};
            } else {
                for (; i < ex->n && n < cap; i++)
                    if (group[i] == g)
                        which[n++] = i;
                if (n == 0)
                    break;
                st = hl_microbatch_fill(mb, ex, which, (int)n);
                if (st)
                    break;
                hl_batch_padded(&b, mb->tokens, mb->labels, mb->lengths, mb->B, mb->T, starts, lens);
            }
            st = hl_session_eval(s, &b, NULL, NULL, sums, cnts);
            if (st)
                break;
            for (int64_t k = 0; k < n; k++) {
                loss_sum += sums[k];
                o->targets += cnts[k];
                o->positions += pk ? pk->seq_len[k] : mb->lengths[k];
            }
            next += n;
            o->records += n;
            done += n;
            if (progress && progress(user, "scoring", (double)done, (double)ex->n))
                st = hl_fail(HL_ERR_CANCELLED, "cancelled");
        }
        hl_session_collect_eval_stats(s, 0);
        if (st == HL_OK)
            st = hl_session_routing(s, HL_STATS_EVAL, &o->stats);
        o->loss = o->targets ? loss_sum / (double)o->targets : NAN;
    }
    free(which), free(starts), free(lens), free(sums), free(cnts);
    return st;
}

/* ---- the report -------------------------------------------------------------------------------- */

hl_status hl_routing_report_init(hl_routing_report *rep, const hl_adapters *ad, int n_sources) {
    rep->n_layers = ad->n_layers;
    rep->N = ad->N;
    rep->variant = ad->cfg.variant;
    rep->n_modules = 0;
    for (int tg = 0; tg < HL_TARGET_COUNT; tg++)
        if (ad->cfg.targets & (1u << tg))
            rep->module_target[rep->n_modules++] = tg;
    rep->src = calloc((size_t)n_sources, sizeof *rep->src);
    if (!rep->src)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    rep->n_sources = n_sources;
    for (int g = 0; g < n_sources; g++)
        HL_TRY(hl_routing_stats_init(&rep->src[g].stats, ad->n_layers, ad->N));
    HL_TRY(hl_routing_stats_init(&rep->all, ad->n_layers, ad->N));
    return HL_OK;
}

static void report_pool(hl_routing_report *rep) {
    hl_routing_stats *a = &rep->all;
    hl_routing_stats_reset(a);
    int n = rep->n_layers * HL_TARGET_COUNT, N = rep->N;
    for (int g = 0; g < rep->n_sources; g++) {
        const hl_routing_stats *s = &rep->src[g].stats;
        for (int i = 0; i < n; i++) {
            a->tokens[i] += s->tokens[i];
            a->entropy_sum[i] += s->entropy_sum[i];
            for (int e = 0; e < N; e++) {
                a->weight_sum[i * N + e] += s->weight_sum[i * N + e];
                a->top1[i * N + e] += s->top1[i * N + e];
            }
        }
    }
}

static hl_status need_router(const hl_adapters *ad, const char *dir) {
    if (ad->has_router)
        return HL_OK;
    return hl_fail(HL_ERR_ARG, "the adapter in %s is %s, which has no router (every position weighs its heads "
                   "equally): routing statistics need a hydra or lora-split adapter", dir,
                   ad->cfg.variant == HL_VARIANT_LORA ? "plain LoRA" : "a uniform gate");
}

/* ---- token-id files ---------------------------------------------------------------------------- */

static hl_status by_source_ids(const hl_routing_request *rq, hl_routing_report *rep, hl_routing_progress_fn progress,
                               void *user) {
    hl_backend *be = NULL;
    hl_model model;
    int model_ok = 0, ad_ok = 0, mb_ok = 0;
    hl_adapters ad;
    hl_examples ex;
    hl_examples_init(&ex);
    hl_microbatch mb;
    hl_session *s = NULL;
    int *group = NULL;
    hl_status st = hl_backend_open(&be, rq->device && rq->device[0] ? rq->device : "auto");
    if (st == HL_OK)
        st = hl_backend_set_threads(be, rq->threads);
    if (st == HL_OK && (st = hl_model_load(&model, rq->model)) == HL_OK)
        model_ok = 1;
    if (st == HL_OK) {
        st = hl_export_load(rq->adapter, &model.cfg, 0, &ad);
        if (st)
            st = hl_fail_context(st, "loading adapter %s", rq->adapter);
        else
            ad_ok = 1;
    }
    if (st == HL_OK)
        st = need_router(&ad, rq->adapter);
    for (int f = 0; f < rq->n_files && st == HL_OK; f++) {
        hl_idlist il = {0};
        st = hl_idlist_load(&il, rq->files[f], model.cfg.vocab_size, 2, model.cfg.max_seq_len);
        if (st == HL_OK && il.n_seqs == 0)
            st = hl_fail(HL_ERR_ARG, "%s holds no sequences", rq->files[f]);
        for (int i = 0; st == HL_OK && i < il.n_seqs; i++) {
            const int32_t *ids = il.ids + il.start[i];
            st = hl_examples_add(&ex, ids, ids, il.start[i + 1] - il.start[i], f); /* labels = ids */
        }
        if (il.ids || il.start)
            hl_idlist_free(&il);
    }
    if (st == HL_OK) {
        group = malloc((size_t)ex.n * sizeof *group);
        if (!group)
            st = hl_fail(HL_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; st == HL_OK && i < ex.n; i++)
            group[i] = (int)ex.source[i];
    }
    if (st == HL_OK)
        st = hl_routing_report_init(rep, &ad, rq->n_files);
    for (int f = 0; st == HL_OK && f < rq->n_files; f++)
        snprintf(rep->src[f].file, sizeof rep->src[f].file, "%s", rq->files[f]);
    int B = rq->micro_batch;
    if (st == HL_OK) {
        if (B <= 0)
            B = 4096 / (ex.max_len > 0 ? ex.max_len : 1);
        B = B < 1 ? 1 : B > 64 ? 64 : B;
        B = B > ex.n ? (int)ex.n : B;
        st = hl_session_create(&s, be, &model, &ad.cfg, 0, B, ex.max_len, 0);
    }
    if (st == HL_OK)
        st = hl_session_write_slab(s, HL_SLAB_PARAMS, 0, ad.n_params, ad.params);
    if (st == HL_OK && (st = hl_microbatch_init(&mb, B, ex.max_len)) == HL_OK)
        mb_ok = 1;
    if (st == HL_OK)
        st = hl_routing_eval_groups(s, &mb, NULL, &ex, group, rq->n_files, rep->src, progress, user);
    if (st == HL_OK)
        report_pool(rep);
    if (mb_ok)
        hl_microbatch_free(&mb);
    hl_session_free(s);
    free(group);
    hl_examples_free(&ex);
    if (ad_ok)
        hl_adapters_free(&ad);
    if (model_ok)
        hl_model_free(&model);
    hl_backend_close(be);
    return st;
}

/* ---- instruction records ----------------------------------------------------------------------- */

static hl_status set_field(hl_run_config *cfg, const char *name, const char *value) {
    return hl_config_set_field(cfg, hl_config_field_find(name), value);
}

/* Group id of (file, value), adding it when new. */
static hl_status group_of(hl_routing_report *rep, int *n, const char *file, const char *value, int *g) {
    for (int k = 0; k < *n; k++)
        if (!strcmp(rep->src[k].file, file) && !strcmp(rep->src[k].value, value)) {
            *g = k;
            return HL_OK;
        }
    if (*n >= MAX_SOURCES)
        return hl_fail(HL_ERR_RANGE, "more than %d distinct sources: is the source field a label (a task or "
                       "category name) rather than a text?", MAX_SOURCES);
    snprintf(rep->src[*n].file, sizeof rep->src[*n].file, "%s", file);
    snprintf(rep->src[*n].value, sizeof rep->src[*n].value, "%s", value);
    *g = (*n)++;
    return HL_OK;
}

static hl_status by_source_records(const hl_routing_request *rq, hl_routing_report *rep,
                                   hl_routing_progress_fn progress, void *user) {
    hl_run_config cfg;
    hl_config_defaults(&cfg);
    char list[HL_CONFIG_PATH_MAX], num[32];
    size_t k = 0;
    if (rq->n_files > HL_TRAIN_MAX_FILES)
        return hl_fail(HL_ERR_ARG, "more than %d data files", HL_TRAIN_MAX_FILES);
    for (int f = 0; f < rq->n_files; f++) {
        if (strchr(rq->files[f], ','))
            return hl_fail(HL_ERR_ARG, "%s: a file name with a comma cannot be scored (rename it)", rq->files[f]);
        int w = snprintf(list + k, sizeof list - k, "%s%s", f ? "," : "", rq->files[f]);
        if (w < 0 || (size_t)w >= sizeof list - k)
            return hl_fail(HL_ERR_RANGE, "the data file names are too long together");
        k += (size_t)w;
    }
    hl_status st = set_field(&cfg, "model", rq->model);
    if (!st)
        st = set_field(&cfg, "val_data", list);
    if (!st && rq->tokenizer)
        st = set_field(&cfg, "tokenizer", rq->tokenizer);
    if (!st && rq->device)
        st = set_field(&cfg, "device", rq->device);
    if (!st && rq->max_len > 0) {
        snprintf(num, sizeof num, "%d", rq->max_len);
        st = set_field(&cfg, "max_len", num);
    }
    if (!st && rq->micro_batch > 0) {
        snprintf(num, sizeof num, "%d", rq->micro_batch);
        st = set_field(&cfg, "micro_batch", num);
    }
    if (!st && rq->map) {
        snprintf(cfg.field_instruction, sizeof cfg.field_instruction, "%s", rq->map->instruction);
        snprintf(cfg.field_input, sizeof cfg.field_input, "%s", rq->map->input);
        snprintf(cfg.field_output, sizeof cfg.field_output, "%s", rq->map->output);
    }
    cfg.threads = rq->threads > 0 ? rq->threads : 0;
    cfg.val_split = 0;
    if (st)
        return st;
    const char *field = rq->source_field && rq->source_field[0] ? rq->source_field : NULL;
    if (field && strlen(field) >= sizeof((trainer_data *)0)->tag_field)
        return hl_fail(HL_ERR_ARG, "source field name '%.40s...' is too long (max 63 bytes)", field);

    hl_trainer *t = calloc(1, sizeof *t);
    if (!t)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    if (field)
        snprintf(t->data.tag_field, sizeof t->data.tag_field, "%s", field);
    if (progress)
        progress(user, "loading", 0, 0);
    int *group = NULL;
    hl_adapters ad;
    int ad_ok = 0;
    st = trainer_open_base(t, &cfg);
    if (st == HL_OK)
        st = trainer_load_examples(t, HL_TRAINER_VAL_DATA, NULL, NULL);
    /* statistics must cover the whole file: a line that is not a record is an error here */
    for (int f = 0; st == HL_OK && f < t->data.n_files; f++) {
        const hl_dataset *ds = &t->data.files[f];
        if (ds->n_malformed == 0)
            continue;
        const hl_record_issue *is = ds->n_issues ? &ds->issues[0] : NULL;
        st = hl_fail(HL_ERR_FORMAT, "%s%s%u: %s (%zu malformed line(s) or element(s) in all; fix or remove them: "
                     "the statistics must cover the whole file)", ds->path, is && is->line ? " line " : " element ",
                     is ? (is->line ? is->line : is->index + 1) : 0, is ? is->reason : "malformed", ds->n_malformed);
    }
    if (st == HL_OK && t->val.n == 0)
        st = hl_fail(HL_ERR_ARG, "%s: no record with target tokens to score", list);
    if (st == HL_OK)
        st = trainer_build_session(t, 0); /* base model session; the adapter goes into t->alt */
    if (st == HL_OK) {
        st = hl_export_load(rq->adapter, &t->model.cfg, 0, &ad);
        if (st)
            st = hl_fail_context(st, "loading adapter %s", rq->adapter);
        else
            ad_ok = 1;
    }
    if (st == HL_OK)
        st = need_router(&ad, rq->adapter);
    if (st == HL_OK)
        st = hl_trainer_use_adapters(t, &ad);
    if (st == HL_OK) {
        rep->src = calloc(field ? MAX_SOURCES : (size_t)rq->n_files, sizeof *rep->src);
        group = malloc((size_t)t->val.n * sizeof *group);
        if (!rep->src || !group)
            st = hl_fail(HL_ERR_NOMEM, "out of memory");
    }
    int n = 0;
    if (st == HL_OK && !field) /* every file is a source, in the order given, even one without records */
        for (int f = 0; f < rq->n_files && st == HL_OK; f++)
            st = group_of(rep, &n, rq->files[f], "", &(int){0});
    for (int64_t i = 0; st == HL_OK && i < t->val.n; i++) {
        int f = (int)(t->val_rec[i] >> 32);
        const hl_record *rec = &t->data.files[f].records[t->val_rec[i] & 0xffffffff];
        if (field && !rec->tag)
            st = hl_fail(HL_ERR_FORMAT, "%s line %u: the record has no '%s' field (or it is not a string or a "
                         "number); every record needs one with --source-field %s (or score per file without it)",
                         rq->files[f], rec->line, field, field);
        else
            st = group_of(rep, &n, rq->files[f], field ? rec->tag : "", &group[i]);
    }
    if (st == HL_OK) {
        /* report_init allocates src itself: hand over the names found */
        hl_routing_source *names = rep->src;
        rep->src = NULL;
        st = hl_routing_report_init(rep, &ad, n);
        for (int g = 0; st == HL_OK && g < n; g++) {
            memcpy(rep->src[g].file, names[g].file, sizeof names[g].file);
            memcpy(rep->src[g].value, names[g].value, sizeof names[g].value);
        }
        free(names);
    }
    if (st == HL_OK)
        st = hl_routing_eval_groups(hl_trainer_session(t), &t->mb, t->packing ? &t->pk : NULL, &t->val, group, n, rep->src, progress, user);
    if (st == HL_OK) {
        report_pool(rep);
        hl_trainer_skipped(t, NULL, &rep->n_skipped);
    }
    free(group);
    if (ad_ok)
        hl_adapters_free(&ad);
    hl_trainer_close(t);
    return st;
}

hl_status hl_routing_by_source(const hl_routing_request *rq, hl_routing_report *rep, hl_routing_progress_fn progress,
                               void *user) {
    memset(rep, 0, sizeof *rep);
    if (!rq || !rq->model || !rq->files || rq->n_files <= 0)
        return hl_fail(HL_ERR_ARG, "routing statistics need a model and at least one data file");
    if (!rq->adapter)
        return hl_fail(HL_ERR_ARG, "routing statistics need an adapter (the base model has no router)");
    if (rq->ids && rq->source_field && rq->source_field[0])
        return hl_fail(HL_ERR_ARG, "a source field needs records (JSON): token-id files have no fields");
    hl_status st = rq->ids ? by_source_ids(rq, rep, progress, user) : by_source_records(rq, rep, progress, user);
    if (st)
        hl_routing_report_free(rep);
    return st;
}

/* ---- JSON ---------------------------------------------------------------------------------------- */

static void json_num(FILE *f, double v) {
    if (isfinite(v))
        fprintf(f, "%.9g", v);
    else
        fputs("null", f);
}

char *hl_routing_source_json(const hl_routing_report *rep, const hl_routing_source *src) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    const hl_routing_stats *st = &src->stats;
    int L = rep->n_layers, M = rep->n_modules, N = rep->N;
    fputs("{\"file\":", f);
    hl_json_write_string(f, src->file);
    fputs(",\"source\":", f);
    if (src->value[0])
        hl_json_write_string(f, src->value);
    else
        fputs("null", f);
    fprintf(f, ",\"records\":%lld,\"positions\":%lld,\"targets\":%lld,\"loss\":", (long long)src->records,
            (long long)src->positions, (long long)src->targets);
    json_num(f, src->loss);
    fputs(",\"modules\":[", f);
    for (int m = 0; m < M; m++)
        fprintf(f, "%s\"%s\"", m ? "," : "", hl_target_name(rep->module_target[m]));
    fprintf(f, "],\"n_layers\":%d,\"n_experts\":%d", L, N);
    for (int a = 0; a < 2; a++) {
        fprintf(f, ",\"%s\":[", a ? "top1_share" : "weight_mean");
        for (int l = 0; l < L; l++) {
            fputs(l ? ",[" : "[", f);
            for (int m = 0; m < M; m++) {
                fputs(m ? ",[" : "[", f);
                for (int e = 0; e < N; e++) {
                    int tg = rep->module_target[m];
                    fputs(e ? "," : "", f);
                    json_num(f, a ? hl_routing_top1_share(st, l, tg, e) : hl_routing_mean_weight(st, l, tg, e));
                }
                fputc(']', f);
            }
            fputc(']', f);
        }
        fputc(']', f);
    }
    for (int a = 0; a < 2; a++) {
        fprintf(f, ",\"%s\":[", a ? "load_cv" : "entropy");
        for (int l = 0; l < L; l++) {
            fputs(l ? ",[" : "[", f);
            for (int m = 0; m < M; m++) {
                int tg = rep->module_target[m];
                fputs(m ? "," : "", f);
                json_num(f, a ? hl_routing_load_cv(st, l, tg) : hl_routing_mean_entropy(st, l, tg));
            }
            fputc(']', f);
        }
        fputc(']', f);
    }
    fputc('}', f);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* ---- CSV ----------------------------------------------------------------------------------------- */

static void csv_text(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

char *hl_routing_report_csv(const hl_routing_report *rep) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    fputs("source,file,records,loss,module,layer,expert,mean_weight,top1_share,entropy,load_cv,"
          "mean_weight_minus_all\n", f);
    for (int g = 0; g <= rep->n_sources; g++) {
        const hl_routing_source *src = g < rep->n_sources ? &rep->src[g] : NULL;
        const hl_routing_stats *st = src ? &src->stats : &rep->all;
        int64_t records = 0;
        double loss_sum = 0, targets = 0;
        for (int k = 0; !src && k < rep->n_sources; k++) {
            records += rep->src[k].records;
            if (rep->src[k].targets) {
                loss_sum += rep->src[k].loss * (double)rep->src[k].targets;
                targets += (double)rep->src[k].targets;
            }
        }
        for (int m = 0; m < rep->n_modules; m++) {
            int tg = rep->module_target[m];
            for (int l = 0; l < rep->n_layers; l++)
                for (int e = 0; e < rep->N; e++) {
                    const char *base = src ? strrchr(src->file, '/') : NULL;
                    csv_text(f, src ? (src->value[0] ? src->value : base ? base + 1 : src->file) : "all");
                    fputc(',', f);
                    csv_text(f, src ? src->file : "");
                    fprintf(f, ",%lld,", (long long)(src ? src->records : records));
                    double loss = src ? src->loss : targets > 0 ? loss_sum / targets : NAN;
                    if (isfinite(loss)) /* empty field when unknown */
                        fprintf(f, "%.9g", loss);
                    fprintf(f, ",%s,%d,%d,%.9g,%.9g,%.9g,%.9g,%.9g\n", hl_target_name(tg), l, e,
                            hl_routing_mean_weight(st, l, tg, e), hl_routing_top1_share(st, l, tg, e),
                            hl_routing_mean_entropy(st, l, tg), hl_routing_load_cv(st, l, tg),
                            hl_routing_mean_weight(st, l, tg, e) - hl_routing_mean_weight(&rep->all, l, tg, e));
                }
        }
    }
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
