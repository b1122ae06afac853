/* Fetching every file of a catalog entry into <data dir>/<id>/ (what `hydralora data get ID`
 * and the workbench's Data screen do). Files already present and verified are skipped:
 * with a known sha256 the file is hashed; with only a size the size must match; with
 * neither, presence is enough (reported as "present, unverified"). */
#ifndef HL_FETCH_H
#define HL_FETCH_H

#include "datasets/catalog.h"
#include "datasets/download.h"

typedef enum {
    HL_FETCH_START = 1,   /* about to download file i */
    HL_FETCH_SKIPPED,     /* already present and verified (or present with nothing to verify) */
    HL_FETCH_DONE,        /* downloaded (and verified when a sha256/size is known) */
    HL_FETCH_FAILED,      /* hl_last_error() on the calling thread says why */
} hl_fetch_event;

typedef struct {
    hl_fetch_event event;
    const hl_catalog_file *file;
    size_t index, count; /* file index in the entry, number of files */
    const char *path;    /* local path */
    int verified;        /* sha256 (or at least size) checked */
} hl_fetch_info;

typedef void (*hl_fetch_event_fn)(void *user, const hl_fetch_info *info);

typedef struct {
    const char *data_dir;      /* NULL: hl_data_dir() */
    hl_download_opts download; /* timeouts, retries, progress, cancel (url/dest/sha/size set per file) */
    long max_rows;             /* rows files: stop after this many rows (0: all) */
    int force;                 /* download again even when present */
    int keep_going;            /* on a failed file, continue with the next (the first error is returned) */
    hl_fetch_event_fn on_event;
    void *user;
} hl_fetch_opts;

/* Fetches all files of e; the first failure's status is returned (its message names the
 * file). Counts may be NULL. */
hl_status hl_fetch_entry(const hl_catalog_entry *e, const hl_fetch_opts *o, size_t *n_downloaded,
                         size_t *n_skipped);

#endif
