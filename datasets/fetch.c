#include "datasets/fetch.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/base/sha256.h"
#include "datasets/remote.h"

static void emit(const hl_fetch_opts *o, hl_fetch_event ev, const hl_catalog_file *f, size_t i, size_t n,
                 const char *path, int verified) {
    if (!o->on_event)
        return;
    hl_fetch_info info = {ev, f, i, n, path, verified};
    o->on_event(o->user, &info);
}

/* 1 = present and acceptable (*verified says how strongly), 0 = (re)download. */
static int already_there(const hl_catalog_file *f, const char *path, int *verified) {
    struct stat st;
    *verified = 0;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    if (f->size >= 0 && (int64_t)st.st_size != f->size)
        return 0;
    if (f->sha256[0]) {
        char hex[65];
        if (hl_sha256_file(path, hex, NULL) != HL_OK || !hl_sha256_hex_equal(hex, f->sha256))
            return 0;
        *verified = 1;
        return 1;
    }
    *verified = f->size >= 0;
    return 1;
}

hl_status hl_fetch_entry(const hl_catalog_entry *e, const hl_fetch_opts *o, size_t *n_downloaded,
                         size_t *n_skipped) {
    size_t done = 0, skipped = 0;
    hl_status first = HL_OK;
    char first_msg[1024] = "";
    for (size_t i = 0; i < e->n_files; i++) {
        const hl_catalog_file *f = &e->files[i];
        char path[4096];
        hl_status st = hl_catalog_file_path(path, sizeof path, o->data_dir, e, f);
        int verified = 0;
        if (st == HL_OK && !o->force && already_there(f, path, &verified)) {
            skipped++;
            emit(o, HL_FETCH_SKIPPED, f, i, e->n_files, path, verified);
            continue;
        }
        if (st == HL_OK) {
            emit(o, HL_FETCH_START, f, i, e->n_files, path, 0);
            hl_download_opts d = o->download;
            d.dest = path;
            d.label = f->name;
            if (f->url) {
                char url[4096];
                st = hl_remote_resolve(f->url, url, sizeof url);
                if (st == HL_OK) {
                    d.url = url;
                    d.sha256 = f->sha256[0] ? f->sha256 : NULL;
                    d.size = f->size;
                    st = hl_download_file(&d);
                }
            } else {
                d.sha256 = NULL;
                d.size = -1;
                st = hl_download_rows(&d, f->rows_endpoint, f->rows_dataset, f->rows_config, f->rows_split,
                                      o->max_rows);
            }
        }
        if (st == HL_OK) {
            done++;
            emit(o, HL_FETCH_DONE, f, i, e->n_files, path, f->sha256[0] || f->size >= 0);
            continue;
        }
        hl_fail_context(st, "%s/%s", e->id, f->name);
        emit(o, HL_FETCH_FAILED, f, i, e->n_files, path, 0);
        if (first == HL_OK) {
            first = st;
            snprintf(first_msg, sizeof first_msg, "%s", hl_last_error());
        }
        if (!o->keep_going || st == HL_ERR_CANCELLED)
            break;
    }
    if (n_downloaded)
        *n_downloaded = done;
    if (n_skipped)
        *n_skipped = skipped;
    if (first != HL_OK)
        return hl_fail(first, "%s", first_msg);
    return HL_OK;
}
