/* Adapter export and import (see export.h). */
#include "core/train/export.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/train/checkpoint.h"
#include "core/formats/safetensors.h"
#include "core/formats/torchzip.h"

typedef struct {
    const char *name;
    int64_t rows, cols;
    const float *data;
} ex_tensor;

int hl_export_key_cmp(const char *a, const char *b) {
    while (*a && *b) {
        if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
            while (*a == '0' && isdigit((unsigned char)a[1]))
                a++;
            while (*b == '0' && isdigit((unsigned char)b[1]))
                b++;
            size_t la = 0, lb = 0;
            while (isdigit((unsigned char)a[la]))
                la++;
            while (isdigit((unsigned char)b[lb]))
                lb++;
            if (la != lb)
                return la < lb ? -1 : 1;
            int c = strncmp(a, b, la);
            if (c)
                return c;
            a += la;
            b += lb;
            continue;
        }
        if (*a != *b)
            return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
        a++;
        b++;
    }
    return *a ? 1 : *b ? -1 : 0;
}

static int cmp_tensor(const void *x, const void *y) {
    return hl_export_key_cmp(((const ex_tensor *)x)->name, ((const ex_tensor *)y)->name);
}

/* What adapter_config.json says about the adapter. */
typedef struct {
    const char *base_model;
    hl_variant variant; /* of the tensors written (LORA for collapsed) */
    unsigned targets;
    int r, n_heads;
    double alpha, dropout;
    int plain;          /* standard PEFT keys only */
    const char *note;   /* extra text for hydralora_export.json (may be NULL) */
} ex_meta;

static char *config_json(const ex_meta *m) {
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "base_model_name_or_path", m->base_model);
    cJSON_AddStringToObject(o, "bias", "none");
    cJSON_AddNullToObject(o, "enable_lora");
    cJSON_AddFalseToObject(o, "fan_in_fan_out");
    cJSON_AddTrueToObject(o, "inference_mode");
    char num[40];
    snprintf(num, sizeof num, "%.9g", m->alpha);
    cJSON_AddItemToObject(o, "lora_alpha", cJSON_CreateRaw(num));
    snprintf(num, sizeof num, "%.9g", m->dropout);
    cJSON_AddItemToObject(o, "lora_dropout", cJSON_CreateRaw(num));
    if (!m->plain)
        cJSON_AddNumberToObject(o, "lora_nums", m->n_heads);
    cJSON_AddFalseToObject(o, "merge_weights");
    cJSON_AddNullToObject(o, "modules_to_save");
    cJSON_AddStringToObject(o, "peft_type", "LORA");
    cJSON_AddNumberToObject(o, "r", m->r);
    cJSON *tm = cJSON_CreateArray();
    for (int t = 0; t < HL_TARGET_COUNT; t++)
        if (m->targets & (1u << t))
            cJSON_AddItemToArray(tm, cJSON_CreateString(hl_target_name(t)));
    cJSON_AddItemToObject(o, "target_modules", tm);
    cJSON_AddStringToObject(o, "task_type", "CAUSAL_LM");
    if (!m->plain) {
        cJSON_AddStringToObject(o, "hydralora_variant", hl_config_variant_name(m->variant));
        if (m->variant == HL_VARIANT_LORA_SPLIT)
            cJSON_AddNumberToObject(o, "hydralora_n_a", m->n_heads);
    }
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}

static hl_status write_file(const char *dir, const char *name, const char *text) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return hl_fail(errno == ENOSPC ? HL_ERR_DISK_FULL : HL_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    int bad = fputs(text, f) < 0 || fputc('\n', f) == EOF || fflush(f) != 0 || fsync(fileno(f)) != 0;
    int e = errno;
    bad |= fclose(f) != 0;
    if (bad)
        return hl_fail(e == ENOSPC ? HL_ERR_DISK_FULL : HL_ERR_IO, "cannot write %s: %s", path, strerror(e));
    return HL_OK;
}

static int64_t file_size(const char *dir, const char *name) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct stat sb;
    return stat(path, &sb) == 0 ? (int64_t)sb.st_size : -1;
}

static hl_status write_into(const char *dir, ex_tensor *ts, int n, const ex_meta *m, hl_dtype dtype) {
    qsort(ts, (size_t)n, sizeof *ts, cmp_tensor);
    hl_st_entry *se = calloc((size_t)n, sizeof *se);
    hl_tz_entry *te = calloc((size_t)n, sizeof *te);
    if (!se || !te) {
        free(se);
        free(te);
        return hl_fail(HL_ERR_NOMEM, "out of memory exporting");
    }
    for (int i = 0; i < n; i++) {
        se[i].name = te[i].name = ts[i].name;
        se[i].src_dtype = te[i].src_dtype = HL_DTYPE_F32;
        se[i].data = te[i].data = ts[i].data;
        se[i].ndim = te[i].ndim = 2;
        se[i].shape[0] = te[i].shape[0] = ts[i].rows;
        se[i].shape[1] = te[i].shape[1] = ts[i].cols;
    }
    char path[4400];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    hl_st_write_opts so = {.dtype = dtype, .format_pt = 1};
    hl_status st = hl_st_write(path, se, n, &so);
    if (st == HL_OK) {
        snprintf(path, sizeof path, "%s/adapter_model.bin", dir);
        st = hl_torchzip_write(path, "adapter_model", te, n, dtype);
    }
    free(se);
    free(te);
    if (st)
        return st;
    char *cj = config_json(m);
    if (!cj)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    st = write_file(dir, "adapter_config.json", cj);
    free(cj);
    if (st)
        return st;
    if (m->plain || m->note) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "hydralora_variant", hl_config_variant_name(m->variant));
        cJSON_AddNumberToObject(o, "n_tensors", n);
        if (m->note)
            cJSON_AddStringToObject(o, "note", m->note);
        char *s = cJSON_Print(o);
        cJSON_Delete(o);
        if (!s)
            return hl_fail(HL_ERR_NOMEM, "out of memory");
        st = write_file(dir, "hydralora_export.json", s);
        free(s);
        if (st)
            return st;
    }
    hl_fsync_dir(dir);
    return HL_OK;
}

/* Build in <out>.tmp-XXXXXX, then swap it in. */
static hl_status write_export(const char *out_dir, ex_tensor *ts, int n, const ex_meta *m, hl_dtype dtype,
                              hl_export_info *info) {
    if (dtype != HL_DTYPE_F32 && dtype != HL_DTYPE_BF16 && dtype != HL_DTYPE_F16)
        return hl_fail(HL_ERR_ARG, "export dtype must be f32, bf16 or f16");
    size_t ol = strlen(out_dir);
    while (ol > 1 && out_dir[ol - 1] == '/')
        ol--;
    if (ol == 0 || ol > 4000)
        return hl_fail(HL_ERR_ARG, "bad export directory '%s'", out_dir);
    char out[4096], tmp[4200], old[4200];
    snprintf(out, sizeof out, "%.*s", (int)ol, out_dir);
    char *parent = strdup(out);
    if (!parent)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = 0;
        hl_status st = hl_mkdir_p(parent);
        if (st) {
            free(parent);
            return st;
        }
    }
    snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", out);
    if (!mkdtemp(tmp)) {
        free(parent);
        return hl_fail(errno == ENOSPC ? HL_ERR_DISK_FULL : HL_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    }
    chmod(tmp, 0755);
    hl_status st = write_into(tmp, ts, n, m, dtype);
    if (st == HL_OK) {
        struct stat sb;
        int had_old = 0;
        if (stat(out, &sb) == 0) {
            if (!S_ISDIR(sb.st_mode)) {
                st = hl_fail(HL_ERR_IO, "%s exists and is not a directory", out);
            } else {
                snprintf(old, sizeof old, "%s.old-XXXXXX", out);
                if (!mkdtemp(old) || rename(out, old) != 0)
                    st = hl_fail(HL_ERR_IO, "cannot move the old %s aside: %s", out, strerror(errno));
                else
                    had_old = 1;
            }
        }
        if (st == HL_OK && rename(tmp, out) != 0) {
            st = hl_fail(HL_ERR_IO, "cannot rename %s to %s: %s", tmp, out, strerror(errno));
            if (had_old)
                rename(old, out);
            had_old = 0;
        }
        if (st == HL_OK) {
            hl_fsync_dir(slash && slash != parent ? parent : ".");
            if (had_old)
                hl_remove_tree(old);
        }
    }
    if (st) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", hl_last_error());
        hl_remove_tree(tmp);
        free(parent);
        return hl_fail(st, "%s", msg);
    }
    free(parent);
    if (info) {
        memset(info, 0, sizeof *info);
        snprintf(info->dir, sizeof info->dir, "%s", out);
        info->n_tensors = n;
        for (int i = 0; i < n; i++)
            info->n_params += ts[i].rows * ts[i].cols;
        info->bytes_safetensors = file_size(out, "adapter_model.safetensors");
        info->bytes_bin = file_size(out, "adapter_model.bin");
        info->step = -1;
    }
    return HL_OK;
}

static ex_meta meta_from_cfg(const hl_run_config *cfg) {
    ex_meta m;
    memset(&m, 0, sizeof m);
    m.base_model = cfg->model;
    m.variant = cfg->variant;
    m.targets = cfg->targets;
    m.r = cfg->r;
    m.n_heads = cfg->variant == HL_VARIANT_LORA ? 1 : cfg->n_heads;
    m.alpha = cfg->alpha;
    m.dropout = cfg->dropout;
    m.plain = cfg->variant == HL_VARIANT_LORA;
    return m;
}

hl_status hl_export_adapters(const hl_adapters *ad, const hl_run_config *cfg, const char *out_dir, hl_dtype dtype,
                             hl_export_info *info) {
    ex_tensor *ts = calloc((size_t)ad->n_views + 1, sizeof *ts);
    if (!ts)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    for (int i = 0; i < ad->n_views; i++) {
        const hl_param_view *v = &ad->views[i];
        ts[i] = (ex_tensor){v->name, v->rows, v->cols, ad->params + v->offset};
    }
    ex_meta m = meta_from_cfg(cfg);
    hl_status st = write_export(out_dir, ts, ad->n_views, &m, dtype, info);
    free(ts);
    return st;
}

hl_status hl_export_checkpoint(const char *run_dir, int64_t step, const char *out_dir, hl_dtype dtype,
                               hl_export_info *info) {
    char cdir[4300], path[4400];
    int64_t picked = -1;
    HL_TRY(hl_checkpoint_pick(run_dir, step, cdir, sizeof cdir, &picked));
    hl_run_config cfg;
    hl_config_defaults(&cfg);
    snprintf(path, sizeof path, "%s/config.json", cdir);
    HL_TRY(hl_config_load_file(&cfg, path));
    snprintf(path, sizeof path, "%s/state.safetensors", cdir);
    hl_safetensors *sf;
    HL_TRY(hl_st_open(&sf, path));
    int n = hl_st_count(sf), k = 0;
    ex_tensor *ts = calloc((size_t)n + 1, sizeof *ts);
    float **bufs = calloc((size_t)n + 1, sizeof *bufs);
    hl_status st = ts && bufs ? HL_OK : hl_fail(HL_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n && st == HL_OK; i++) {
        const hl_st_tensor *t = hl_st_at(sf, i);
        if (!strncmp(t->name, "adam_", 5))
            continue;
        if (t->ndim != 2 || strncmp(t->name, "base_model.model.", 17)) {
            st = hl_fail(HL_ERR_FORMAT, "%s: unexpected tensor %s", path, t->name);
            break;
        }
        bufs[k] = malloc((size_t)t->numel * sizeof(float));
        if (!bufs[k]) {
            st = hl_fail(HL_ERR_NOMEM, "out of memory");
            break;
        }
        st = hl_st_tensor_to_f32(t, bufs[k]);
        ts[k] = (ex_tensor){t->name, t->shape[0], t->shape[1], bufs[k]};
        k++;
    }
    if (st == HL_OK && k == 0)
        st = hl_fail(HL_ERR_FORMAT, "%s holds no adapter tensors", path);
    if (st == HL_OK) {
        ex_meta m = meta_from_cfg(&cfg);
        st = write_export(out_dir, ts, k, &m, dtype, info);
        if (st == HL_OK && info)
            info->step = picked;
    }
    for (int i = 0; bufs && i < k; i++)
        free(bufs[i]);
    free(bufs);
    free(ts); /* names point into sf: free before closing is fine, write is done */
    hl_st_close(sf);
    return st;
}

/* A plain LoRA made outside a run (the collapse, core/train/collapse.c): the run's metadata with
 * variant lora, rank r, alpha, and a note for hydralora_export.json. */
hl_status hl_export_plain_lora(const hl_adapters *lora, const hl_run_config *cfg, int r, double alpha,
                               const char *note, const char *out_dir, hl_dtype dtype, hl_export_info *info) {
    ex_tensor *ts = calloc((size_t)lora->n_views + 1, sizeof *ts);
    if (!ts)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    for (int i = 0; i < lora->n_views; i++) {
        const hl_param_view *v = &lora->views[i];
        ts[i] = (ex_tensor){v->name, v->rows, v->cols, lora->params + v->offset};
    }
    ex_meta m = meta_from_cfg(cfg);
    m.variant = HL_VARIANT_LORA;
    m.plain = 1;
    m.r = r;
    m.n_heads = 1;
    m.alpha = alpha;
    m.note = note;
    hl_status st = write_export(out_dir, ts, lora->n_views, &m, dtype, info);
    free(ts);
    return st;
}

/* ---- reading an export ---- */

hl_status hl_export_read_config(const char *dir, hl_adapter_config *acfg, char *base_model, size_t size) {
    char path[4400];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f)
        return hl_fail(errno == ENOENT ? HL_ERR_NOT_FOUND : HL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (!buf)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    hl_status st = hl_export_parse_config(buf, n, path, acfg, base_model, size);
    free(buf);
    return st;
}

hl_status hl_export_parse_config(const char *json, size_t len, const char *path, hl_adapter_config *acfg,
                                 char *base_model, size_t size) {
    cJSON *o = cJSON_ParseWithLength(json, len);
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return hl_fail(HL_ERR_FORMAT, "%s: not a JSON object", path);
    }
    memset(acfg, 0, sizeof *acfg);
    hl_status st = HL_OK;
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "r");
    const cJSON *al = cJSON_GetObjectItemCaseSensitive(o, "lora_alpha");
    const cJSON *dr = cJSON_GetObjectItemCaseSensitive(o, "lora_dropout");
    const cJSON *nn = cJSON_GetObjectItemCaseSensitive(o, "lora_nums");
    const cJSON *tm = cJSON_GetObjectItemCaseSensitive(o, "target_modules");
    const cJSON *va = cJSON_GetObjectItemCaseSensitive(o, "hydralora_variant");
    const cJSON *bm = cJSON_GetObjectItemCaseSensitive(o, "base_model_name_or_path");
    if (!cJSON_IsNumber(r) || r->valuedouble < 1 || r->valuedouble > 65536)
        st = hl_fail(HL_ERR_FORMAT, "%s: \"r\" missing or out of range", path);
    else if (!cJSON_IsNumber(al))
        st = hl_fail(HL_ERR_FORMAT, "%s: \"lora_alpha\" missing", path);
    else if (!cJSON_IsArray(tm) || cJSON_GetArraySize(tm) == 0)
        st = hl_fail(HL_ERR_FORMAT, "%s: \"target_modules\" must be a non-empty list", path);
    if (st == HL_OK) {
        acfg->r = r->valueint;
        acfg->alpha = (float)al->valuedouble;
        acfg->dropout = cJSON_IsNumber(dr) ? (float)dr->valuedouble : 0.0f;
        int N = cJSON_IsNumber(nn) ? nn->valueint : 1;
        if (N < 1 || N > 256)
            st = hl_fail(HL_ERR_FORMAT, "%s: lora_nums %d out of range", path, N);
        acfg->n_heads = N;
        acfg->variant = N > 1 ? HL_VARIANT_HYDRA : HL_VARIANT_LORA;
        if (cJSON_IsString(va)) {
            const hl_config_field *fv = hl_config_field_find("variant");
            hl_run_config tmp;
            hl_config_defaults(&tmp);
            if (hl_config_set_field(&tmp, fv, va->valuestring) == HL_OK)
                acfg->variant = tmp.variant;
            else
                st = hl_fail(HL_ERR_FORMAT, "%s: unknown hydralora_variant '%s'", path, va->valuestring);
        }
        const cJSON *it;
        cJSON_ArrayForEach(it, tm) {
            int t = cJSON_IsString(it) ? hl_target_from_name(it->valuestring) : -1;
            if (t < 0) {
                st = hl_fail(HL_ERR_FORMAT, "%s: unsupported target module %s", path,
                             cJSON_IsString(it) ? it->valuestring : "(not a string)");
                break;
            }
            acfg->targets |= 1u << t;
        }
    }
    if (st == HL_OK && base_model && size)
        snprintf(base_model, size, "%s", cJSON_IsString(bm) ? bm->valuestring : "");
    cJSON_Delete(o);
    return st;
}

hl_status hl_export_load(const char *dir, const hl_llama_config *mcfg, uint64_t seed, hl_adapters *ad) {
    hl_adapter_config acfg;
    HL_TRY(hl_export_read_config(dir, &acfg, NULL, 0));
    acfg.dropout = 0; /* loaded adapters are for inference / scoring */
    HL_TRY(hl_adapters_create(ad, mcfg, &acfg, seed));
    char path[4400];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    hl_safetensors *sf;
    hl_status st = hl_st_open(&sf, path);
    if (st) {
        hl_adapters_free(ad);
        return st;
    }
    float *buf = NULL;
    size_t cap = 0;
    for (int i = 0; i < ad->n_views && st == HL_OK; i++) {
        const hl_param_view *v = &ad->views[i];
        const hl_st_tensor *t = hl_st_find(sf, v->name);
        if (!t) {
            st = hl_fail(HL_ERR_FORMAT, "%s: tensor %s is missing (adapter_config.json and the weights disagree)",
                         path, v->name);
            break;
        }
        if (t->numel != v->rows * v->cols) {
            st = hl_fail(HL_ERR_SHAPE, "%s: %s has %lld elements, expected [%lld, %lld]", path, v->name,
                         (long long)t->numel, (long long)v->rows, (long long)v->cols);
            break;
        }
        if ((size_t)t->numel > cap) {
            cap = (size_t)t->numel;
            float *nb = realloc(buf, cap * sizeof *nb);
            if (!nb) {
                st = hl_fail(HL_ERR_NOMEM, "out of memory");
                break;
            }
            buf = nb;
        }
        st = hl_st_tensor_to_f32(t, buf);
        if (st == HL_OK)
            st = hl_adapters_set_tensor(ad, v->name, buf, v->rows, v->cols);
    }
    free(buf);
    if (st == HL_OK && hl_st_count(sf) != ad->n_views)
        st = hl_fail(HL_ERR_FORMAT, "%s holds %d tensors, the adapter config implies %d", path, hl_st_count(sf),
                     ad->n_views);
    hl_st_close(sf);
    if (st)
        hl_adapters_free(ad);
    return st;
}
