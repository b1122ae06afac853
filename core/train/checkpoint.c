/* Checkpoint directories: atomic save, list, load, prune (see checkpoint.h). */
#include "core/train/checkpoint.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/fileio.h"
#include "core/formats/safetensors.h"

#define CKPT_FORMAT "hydralora-checkpoint"
#define CKPT_VERSION 1

void hl_checkpoint_path(const char *run_dir, int64_t step, char *buf, size_t size) {
    snprintf(buf, size, "%s/checkpoints/step-%lld", run_dir, (long long)step);
}

/* ---- state.json ---- */

static cJSON *hex64(uint64_t v) {
    char b[24];
    snprintf(b, sizeof b, "%016" PRIx64, v);
    return cJSON_CreateString(b);
}

static char *state_to_json(const hl_ckpt_state *st) {
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "format", CKPT_FORMAT);
    cJSON_AddNumberToObject(o, "version", CKPT_VERSION);
    cJSON_AddNumberToObject(o, "step", (double)st->step);
    cJSON_AddNumberToObject(o, "total_steps", (double)st->total_steps);
    cJSON_AddNumberToObject(o, "epoch", (double)st->epoch);
    cJSON_AddNumberToObject(o, "pos", (double)st->pos);
    cJSON_AddNumberToObject(o, "consumed", (double)st->consumed);
    cJSON *rng = cJSON_CreateArray();
    for (int i = 0; i < 4; i++)
        cJSON_AddItemToArray(rng, hex64(st->data_rng.s[i]));
    cJSON_AddItemToObject(o, "data_rng", rng);
    cJSON_AddItemToObject(o, "seed", hex64(st->seed));
    cJSON_AddItemToObject(o, "dropout_key", hex64(st->dropout_key));
    cJSON_AddItemToObject(o, "dropout_step", hex64(st->dropout_step));
    cJSON_AddNumberToObject(o, "n_params", (double)st->n_params);
    cJSON_AddNumberToObject(o, "tokens_seen", (double)st->tokens_seen);
    if (isfinite(st->loss)) {
        char b[40];
        snprintf(b, sizeof b, "%.17g", st->loss);
        cJSON_AddItemToObject(o, "loss", cJSON_CreateRaw(b));
    } else {
        cJSON_AddNullToObject(o, "loss");
    }
    cJSON_AddNumberToObject(o, "elapsed_s", st->elapsed_s);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}

static int get_hex64(const cJSON *o, const char *key, uint64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v))
        return 0;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v->valuestring, &end, 16);
    if (errno || *end || !v->valuestring[0])
        return 0;
    *out = x;
    return 1;
}

static int get_int(const cJSON *o, const char *key, int64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9007199254740992.0 ||
        v->valuedouble != floor(v->valuedouble))
        return 0;
    *out = (int64_t)v->valuedouble;
    return 1;
}

hl_status hl_checkpoint_read_state(const char *ckpt_dir, hl_ckpt_state *st) {
    char path[4200];
    snprintf(path, sizeof path, "%s/state.json", ckpt_dir);
    char *txt = NULL;
    size_t len = 0;
    HL_TRY(hl_file_read_all(path, 1 << 20, &txt, &len));
    hl_status res = hl_checkpoint_parse_state(txt, len, path, st);
    free(txt);
    return res;
}

hl_status hl_checkpoint_parse_state(const char *json, size_t len, const char *path, hl_ckpt_state *st) {
    cJSON *o = cJSON_ParseWithLength(json, len);
    if (!o)
        return hl_fail(HL_ERR_FORMAT, "%s: invalid JSON", path);
    memset(st, 0, sizeof *st);
    hl_status res = HL_OK;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(o, "format");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(o, "version");
    const cJSON *rng = cJSON_GetObjectItemCaseSensitive(o, "data_rng");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, CKPT_FORMAT))
        res = hl_fail(HL_ERR_FORMAT, "%s: not a hydralora checkpoint (format field)", path);
    else if (!cJSON_IsNumber(ver) || ver->valueint != CKPT_VERSION)
        res = hl_fail(HL_ERR_FORMAT, "%s: checkpoint version %d not supported (this build reads %d)", path,
                      cJSON_IsNumber(ver) ? ver->valueint : -1, CKPT_VERSION);
    else if (!get_int(o, "step", &st->step) || !get_int(o, "total_steps", &st->total_steps) ||
             !get_int(o, "epoch", &st->epoch) || !get_int(o, "pos", &st->pos) ||
             !get_int(o, "consumed", &st->consumed) || !get_int(o, "n_params", &st->n_params) ||
             !get_hex64(o, "seed", &st->seed) || !get_hex64(o, "dropout_key", &st->dropout_key) ||
             !get_hex64(o, "dropout_step", &st->dropout_step) || !cJSON_IsArray(rng) ||
             cJSON_GetArraySize(rng) != 4)
        res = hl_fail(HL_ERR_FORMAT, "%s: a required field is missing or malformed", path);
    else {
        for (int i = 0; i < 4 && res == HL_OK; i++) {
            const cJSON *it = cJSON_GetArrayItem(rng, i);
            char *end;
            if (!cJSON_IsString(it))
                res = hl_fail(HL_ERR_FORMAT, "%s: data_rng must hold 4 hex strings", path);
            else {
                errno = 0;
                st->data_rng.s[i] = strtoull(it->valuestring, &end, 16);
                if (errno || *end)
                    res = hl_fail(HL_ERR_FORMAT, "%s: data_rng must hold 4 hex strings", path);
            }
        }
        int64_t tk = 0;
        if (get_int(o, "tokens_seen", &tk))
            st->tokens_seen = tk;
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(o, "loss");
        st->loss = cJSON_IsNumber(l) ? l->valuedouble : NAN;
        const cJSON *el = cJSON_GetObjectItemCaseSensitive(o, "elapsed_s");
        st->elapsed_s = cJSON_IsNumber(el) ? el->valuedouble : 0;
    }
    cJSON_Delete(o);
    return res;
}

/* Write text to dir/name via a temporary file + fsync + rename. */
static hl_status write_text(const char *dir, const char *name, const char *text) {
    char path[4500], tmp[4600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return hl_fail(errno == ENOSPC ? HL_ERR_DISK_FULL : HL_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    size_t len = strlen(text), off = 0;
    int err = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            err = w < 0 ? errno : ENOSPC;
            break;
        }
        off += (size_t)w;
    }
    if (!err && fsync(fd) != 0)
        err = errno;
    if (close(fd) != 0 && !err)
        err = errno;
    if (!err && rename(tmp, path) != 0)
        err = errno;
    if (err) {
        unlink(tmp);
        return hl_fail(err == ENOSPC || err == EDQUOT ? HL_ERR_DISK_FULL : HL_ERR_IO, "cannot write %s: %s", path,
                       strerror(err));
    }
    return HL_OK;
}

static hl_status save_into(const char *tmpdir, const hl_adapters *ad, const hl_ckpt_state *st,
                           const hl_run_config *cfg, const hl_faults *faults) {
    int nv = ad->n_views;
    hl_st_entry *ents = calloc((size_t)nv * 3, sizeof *ents);
    char(*names)[200] = calloc((size_t)nv * 2, sizeof *names);
    if (!ents || !names) {
        free(ents);
        free(names);
        return hl_fail(HL_ERR_NOMEM, "out of memory preparing a checkpoint");
    }
    for (int i = 0; i < nv; i++) {
        const hl_param_view *v = &ad->views[i];
        const float *slabs[3] = {ad->params, ad->m, ad->v};
        for (int k = 0; k < 3; k++) {
            hl_st_entry *e = &ents[k * nv + i];
            if (k == 0)
                e->name = v->name;
            else {
                char *nm = names[(k - 1) * nv + i];
                snprintf(nm, 200, "%s.%s", k == 1 ? "adam_m" : "adam_v", v->name);
                e->name = nm;
            }
            e->src_dtype = HL_DTYPE_F32;
            e->data = slabs[k] + v->offset;
            e->ndim = 2;
            e->shape[0] = v->rows;
            e->shape[1] = v->cols;
        }
    }
    char path[4400];
    snprintf(path, sizeof path, "%s/state.safetensors", tmpdir);
    const char *meta[] = {"format", "pt", "content", "hydralora checkpoint: adapter params + AdamW moments"};
    hl_st_write_opts opts = {.dtype = HL_DTYPE_F32, .format_pt = 0, .meta = meta, .n_meta = 2};
    hl_status s = hl_st_write(path, ents, nv * 3, &opts);
    free(ents);
    free(names);
    if (s)
        return s;
    if (faults && faults->ckpt_enospc_step > 0 && faults->ckpt_enospc_step == st->step)
        return hl_fail(HL_ERR_DISK_FULL, "cannot write %s/state.json: No space left on device (injected by a "
                       "test)", tmpdir);
    char *js = state_to_json(st);
    if (!js)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    s = write_text(tmpdir, "state.json", js);
    free(js);
    if (s)
        return s;
    char *cj = hl_config_to_json(cfg);
    if (!cj)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    s = write_text(tmpdir, "config.json", cj);
    free(cj);
    if (s)
        return s;
    hl_fsync_dir(tmpdir);
    return HL_OK;
}

hl_status hl_checkpoint_save(const char *run_dir, const hl_adapters *ad, const hl_ckpt_state *st,
                             const hl_run_config *cfg, char *out_dir, size_t out_size) {
    return hl_checkpoint_save_faults(run_dir, ad, st, cfg, NULL, out_dir, out_size);
}

hl_status hl_checkpoint_save_faults(const char *run_dir, const hl_adapters *ad, const hl_ckpt_state *st,
                                    const hl_run_config *cfg, const hl_faults *faults, char *out_dir,
                                    size_t out_size) {
    char cdir[4200], tmpdir[4300], final[4300], old[4400];
    snprintf(cdir, sizeof cdir, "%s/checkpoints", run_dir);
    HL_TRY(hl_mkdir_p(cdir));
    snprintf(tmpdir, sizeof tmpdir, "%s/.tmp-step-%lld-XXXXXX", cdir, (long long)st->step);
    if (!mkdtemp(tmpdir))
        return hl_fail(errno == ENOSPC ? HL_ERR_DISK_FULL : HL_ERR_IO, "cannot create %s: %s", tmpdir,
                       strerror(errno));
    chmod(tmpdir, 0755); /* mkdtemp makes it 0700 */
    hl_status s = save_into(tmpdir, ad, st, cfg, faults);
    if (s) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", hl_last_error());
        hl_remove_tree(tmpdir);
        return hl_fail(s, "%s", msg);
    }
    hl_checkpoint_path(run_dir, st->step, final, sizeof final);
    struct stat sb;
    int had_old = 0;
    if (stat(final, &sb) == 0) {
        /* Same step saved before (e.g. resumed from an older one): move it aside first, so
         * step-<n> is never missing a complete version for longer than one rename. */
        snprintf(old, sizeof old, "%s/.tmp-old-step-%lld", cdir, (long long)st->step);
        hl_remove_tree(old);
        if (rename(final, old) != 0) {
            hl_remove_tree(tmpdir);
            return hl_fail(HL_ERR_IO, "cannot move the old %s aside: %s", final, strerror(errno));
        }
        had_old = 1;
    }
    if (rename(tmpdir, final) != 0) {
        int e = errno;
        hl_remove_tree(tmpdir);
        if (had_old)
            rename(old, final);
        return hl_fail(HL_ERR_IO, "cannot rename %s to %s: %s", tmpdir, final, strerror(e));
    }
    hl_fsync_dir(cdir);
    if (had_old)
        hl_remove_tree(old);
    if (out_dir)
        snprintf(out_dir, out_size, "%s", final);
    return HL_OK;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

hl_status hl_checkpoint_list(const char *run_dir, int64_t **steps, int *n) {
    *steps = NULL;
    *n = 0;
    char cdir[4200];
    snprintf(cdir, sizeof cdir, "%s/checkpoints", run_dir);
    DIR *d = opendir(cdir);
    if (!d)
        return errno == ENOENT ? HL_OK : hl_fail(HL_ERR_IO, "cannot open %s: %s", cdir, strerror(errno));
    int cap = 0, cnt = 0;
    int64_t *v = NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "step-", 5))
            continue;
        char *end;
        errno = 0;
        long long s = strtoll(de->d_name + 5, &end, 10);
        if (errno || *end || s < 0 || end == de->d_name + 5)
            continue;
        char st[4600];
        snprintf(st, sizeof st, "%s/%s/state.json", cdir, de->d_name);
        if (access(st, R_OK) != 0)
            continue;
        if (cnt == cap) {
            cap = cap ? cap * 2 : 16;
            int64_t *nv = realloc(v, (size_t)cap * sizeof *nv);
            if (!nv) {
                free(v);
                closedir(d);
                return hl_fail(HL_ERR_NOMEM, "out of memory listing checkpoints");
            }
            v = nv;
        }
        v[cnt++] = s;
    }
    closedir(d);
    if (cnt)
        qsort(v, (size_t)cnt, sizeof *v, cmp_i64);
    *steps = v;
    *n = cnt;
    return HL_OK;
}

hl_status hl_checkpoint_load(const char *ckpt_dir, hl_adapters *ad, hl_ckpt_state *st, int load_moments) {
    HL_TRY(hl_checkpoint_read_state(ckpt_dir, st));
    if ((size_t)st->n_params != ad->n_params)
        return hl_fail(HL_ERR_SHAPE, "%s holds %lld adapter parameters, this configuration has %zu "
                       "(different model, targets, r or N?)", ckpt_dir, (long long)st->n_params, ad->n_params);
    char path[4200];
    snprintf(path, sizeof path, "%s/state.safetensors", ckpt_dir);
    hl_safetensors *sf;
    HL_TRY(hl_st_open(&sf, path));
    hl_status s = HL_OK;
    int found = 0;
    for (int i = 0; i < hl_st_count(sf) && s == HL_OK; i++) {
        const hl_st_tensor *t = hl_st_at(sf, i);
        const char *name = t->name;
        float *slab = ad->params;
        if (!strncmp(name, "adam_m.", 7)) {
            name += 7;
            slab = ad->m;
        } else if (!strncmp(name, "adam_v.", 7)) {
            name += 7;
            slab = ad->v;
        }
        const hl_param_view *v = hl_adapters_find(ad, name);
        if (!v) {
            s = hl_fail(HL_ERR_FORMAT, "%s: tensor %s is not part of this adapter configuration", path, t->name);
            break;
        }
        if (t->dtype != HL_ST_F32 || t->numel != v->rows * v->cols ||
            (t->ndim == 2 && (t->shape[0] != v->rows || t->shape[1] != v->cols))) {
            s = hl_fail(HL_ERR_SHAPE, "%s: tensor %s has the wrong dtype or shape (expected F32 [%lld, %lld])", path,
                        t->name, (long long)v->rows, (long long)v->cols);
            break;
        }
        if (slab != ad->params && !load_moments)
            continue;
        memcpy(slab + v->offset, t->data, (size_t)t->numel * sizeof(float));
        found++;
    }
    int want = ad->n_views * (load_moments ? 3 : 1);
    if (s == HL_OK && found != want)
        s = hl_fail(HL_ERR_FORMAT, "%s: %d of %d expected tensors present (incomplete checkpoint?)", path, found, want);
    hl_st_close(sf);
    if (s == HL_OK) {
        ad->dropout_step = st->dropout_step;
        if (st->dropout_key != ad->dropout_key)
            s = hl_fail(HL_ERR_FORMAT, "%s: dropout key differs from this run's seed (was the seed changed?)",
                        ckpt_dir);
    }
    return s;
}

hl_status hl_checkpoint_prune(const char *run_dir, int keep_last, int64_t protect_step) {
    if (keep_last <= 0)
        return HL_OK;
    int64_t *steps;
    int n;
    HL_TRY(hl_checkpoint_list(run_dir, &steps, &n));
    hl_status s = HL_OK;
    int to_remove = n - keep_last;
    for (int i = 0; i < n && to_remove > 0; i++) {
        if (steps[i] == protect_step)
            continue;
        char p[4200];
        hl_checkpoint_path(run_dir, steps[i], p, sizeof p);
        /* Rename first so that a crash mid-delete leaves a .tmp-* (cleaned later), never a
         * half-deleted step-<n> that looks complete. */
        char tmp[4300];
        snprintf(tmp, sizeof tmp, "%s/checkpoints/.tmp-del-step-%lld", run_dir, (long long)steps[i]);
        if (rename(p, tmp) == 0)
            s = hl_remove_tree(tmp);
        else
            s = hl_fail(HL_ERR_IO, "cannot remove old checkpoint %s: %s", p, strerror(errno));
        if (s)
            break;
        to_remove--;
    }
    free(steps);
    return s;
}

hl_status hl_checkpoint_clean_tmp(const char *run_dir, int *removed) {
    if (removed)
        *removed = 0;
    char cdir[4200];
    snprintf(cdir, sizeof cdir, "%s/checkpoints", run_dir);
    DIR *d = opendir(cdir);
    if (!d)
        return errno == ENOENT ? HL_OK : hl_fail(HL_ERR_IO, "cannot open %s: %s", cdir, strerror(errno));
    struct dirent *de;
    hl_status s = HL_OK;
    char **names = NULL;
    int n = 0, cap = 0;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, ".tmp-", 5))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            char **nn = realloc(names, (size_t)cap * sizeof *nn);
            if (!nn)
                break;
            names = nn;
        }
        names[n] = strdup(de->d_name);
        if (names[n])
            n++;
    }
    closedir(d);
    for (int i = 0; i < n; i++) {
        char p[4500];
        snprintf(p, sizeof p, "%s/%s", cdir, names[i]);
        if (s == HL_OK) {
            s = hl_remove_tree(p);
            if (s == HL_OK && removed)
                (*removed)++;
        }
        free(names[i]);
    }
    free(names);
    return s;
}

hl_status hl_checkpoint_pick(const char *run_dir, int64_t step, char *dir, size_t size, int64_t *picked) {
    int64_t *steps;
    int n;
    HL_TRY(hl_checkpoint_list(run_dir, &steps, &n));
    hl_status st = HL_OK;
    if (n == 0)
        st = hl_fail(HL_ERR_NOT_FOUND, "%s has no complete checkpoint (is it a run directory?)", run_dir);
    else if (step < 0)
        *picked = steps[n - 1];
    else {
        int found = 0;
        for (int i = 0; i < n; i++)
            found |= steps[i] == step;
        if (!found) {
            char list[256] = "";
            size_t k = 0;
            for (int i = 0; i < n && k < sizeof list - 24; i++)
                k += (size_t)snprintf(list + k, sizeof list - k, "%s%lld", i ? ", " : "", (long long)steps[i]);
            st = hl_fail(HL_ERR_NOT_FOUND, "%s has no checkpoint at step %lld (available: %s)", run_dir,
                         (long long)step, list);
        } else
            *picked = step;
    }
    free(steps);
    if (st == HL_OK)
        hl_checkpoint_path(run_dir, *picked, dir, size);
    return st;
}
