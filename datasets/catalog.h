/* The catalog of data sets and models hydralora can fetch (datasets/catalog.json).
 *
 * Where it comes from: datasets/catalog.json is compiled into the binary at build time
 * (CMake turns it into a C array, see datasets/embed_catalog.cmake), so the product finds
 * it without the source tree; `HYDRALORA_CATALOG=/path/catalog.json` replaces it at run time.
 *
 * Shape (catalog_version 1):
 *   {"catalog_version": 1, "entries": [
 *     {"id": "gsm8k", "kind": "dataset"|"model", "title": "...", "license": "...",
 *      "homepage": "...", "revision": "...", "format": "jsonl", "use": "...", "note": "...",
 *      "gated": false,
 *      "fields": {"instruction": "question", "input": "", "output": "answer"},
 *      "files": [ {"name": "train.jsonl", "url": "https://...", "size": 4166206, "sha256": "17f3..."},
 *                 {"name": "train.jsonl", "rows": {"endpoint": "https://datasets-server.huggingface.co/rows",
 *                                                  "dataset": "lorahub/flanv2", "config": "default",
 *                                                  "split": "train"}} ] } ] }
 * Every file has either "url" (http/https) or "rows" (paged HF datasets-server JSON rows,
 * stored as JSON lines of the row objects). size and sha256 appear only where known.
 * Ids and file names are checked to be safe relative names (no "..", not absolute):
 * a catalog can never make hydralora write outside the data directory.
 *
 * Where files land: <data dir>/<id>/<name>, with the data dir from hl_data_dir():
 * $HYDRALORA_DATA, else $XDG_DATA_HOME/hydralora, else ~/.local/share/hydralora. */
#ifndef HL_CATALOG_H
#define HL_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#include "core/base/datadir.h" /* hl_data_dir */
#include "core/base/status.h"
#include "core/text/records.h"

typedef enum { HL_CATALOG_DATASET = 1, HL_CATALOG_MODEL = 2 } hl_catalog_kind;

typedef struct {
    char *name;      /* local relative path under <data dir>/<id>/ (safe) */
    char *url;       /* canonical URL, NULL for rows files */
    int64_t size;    /* bytes, -1 when unknown */
    char sha256[65]; /* lower-case hex, "" when unknown */
    /* rows files (url == NULL) */
    char *rows_endpoint, *rows_dataset, *rows_config, *rows_split;
} hl_catalog_file;

typedef struct {
    char *id;
    hl_catalog_kind kind;
    char *title, *license, *homepage, *revision, *format, *use, *note; /* "" when absent */
    int gated;          /* needs a Hugging Face token */
    int has_fields;     /* fields holds a default mapping */
    hl_field_map fields;
    hl_catalog_file *files;
    size_t n_files;
    int64_t total_size; /* sum of sizes, -1 if any is unknown */
} hl_catalog_entry;

typedef struct {
    hl_catalog_entry *entries;
    size_t n_entries;
    char origin[512]; /* "built-in" or the HYDRALORA_CATALOG path */
} hl_catalog;

/* Parse and validate catalog JSON (bounds-checked; any error names the entry and field). */
hl_status hl_catalog_parse(hl_catalog *cat, const char *json, size_t len, const char *origin);
/* $HYDRALORA_CATALOG if set, else the built-in copy. */
hl_status hl_catalog_load(hl_catalog *cat);
void hl_catalog_free(hl_catalog *cat);
const hl_catalog_entry *hl_catalog_find(const hl_catalog *cat, const char *id);
/* The built-in catalog.json bytes (not NUL-terminated by contract; *len set). */
const char *hl_catalog_builtin(size_t *len);

/* <root>/<id>/<file->name>, checked with hl_path_join_safe. root NULL: hl_data_dir(). */
hl_status hl_catalog_file_path(char *out, size_t size, const char *root, const hl_catalog_entry *e,
                               const hl_catalog_file *f);

/* How much of an entry is on disk: files present with the expected size (or present at all
 * when the size is unknown). Cheap: no hashing. */
void hl_catalog_entry_local(const hl_catalog_entry *e, const char *root, size_t *n_present, uint64_t *bytes_present);

#endif
