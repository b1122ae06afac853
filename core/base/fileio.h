/* Small file-system helpers: read a whole file, directory of a path, mkdir -p, rm -rf of
 * our own trees, and the fsyncs that make renames durable. Used by every loader/writer so
 * that low-level modules (safetensors, config, torchzip) need not include checkpoint.h. */
#ifndef HL_FILEIO_H
#define HL_FILEIO_H

#include <stddef.h>
#include <stdio.h>

#include "core/base/status.h"

/* The whole file into a malloc'd buffer, NUL-terminated (*len excludes the NUL).
 * max_bytes > 0 caps the size (larger files give HL_ERR_FORMAT); 0 = no cap.
 * A missing file gives HL_ERR_NOT_FOUND. */
hl_status hl_file_read_all(const char *path, size_t max_bytes, char **data, size_t *len);
/* Same, from an open stream (e.g. stdin) until EOF; `name` labels errors; f is not closed. */
hl_status hl_file_read_stream(FILE *f, const char *name, size_t max_bytes, char **data, size_t *len);

/* Directory part of `path` ("a/b" -> "a", "b" -> ".", "/b" -> "/"), truncated to size. */
void hl_path_dirname(char *dir, size_t size, const char *path);

/* rm -rf of a directory tree we created (refuses "", "/" and symlinks at the top). */
hl_status hl_remove_tree(const char *path);

/* mkdir -p. */
hl_status hl_mkdir_p(const char *path);

/* fsync a directory (makes renames inside it durable). */
void hl_fsync_dir(const char *path);
/* fsync the directory that holds `path` (after renaming a file to path); best effort. */
void hl_fsync_parent(const char *path);

#endif
