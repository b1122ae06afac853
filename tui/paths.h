/* Where the workbench keeps and finds things (XDG base directories). */
#ifndef HL_TUI_PATHS_H
#define HL_TUI_PATHS_H

#include <stddef.h>

/* $XDG_CONFIG_HOME/hydralora (default ~/.config/hydralora). */
void paths_config_dir(char *out, size_t n);
/* $HYDRALORA_DATA, else $XDG_DATA_HOME/hydralora (default ~/.local/share/hydralora). */
void paths_data_dir(char *out, size_t n);
/* Directory of the running executable ("" if unknown). */
void paths_exe_dir(char *out, size_t n);
/* mkdir -p; returns 0 on success. */
int paths_mkdirs(const char *path);
/* 1 if the path exists (file or directory). */
int paths_exists(const char *path);
int paths_is_dir(const char *path);
/* Atomic write: path.tmp.<pid> then rename(). Returns 0 on success. */
int paths_write_atomic(const char *path, const char *data, size_t len);
/* Reads a whole small file (malloc'd, NUL-terminated); NULL on failure. */
char *paths_read_file(const char *path, size_t max_bytes, size_t *len);
/* Replace a leading "~/" with $HOME. */
void paths_expand_home(const char *in, char *out, size_t n);
/* An absolute form of a path (after "~/" expansion): relative paths are joined to the
 * current directory and "." / ".." / "//" are folded lexically (symlinks are kept, so a
 * linked data folder keeps its name). "" stays "". */
void paths_absolute(const char *in, char *out, size_t n);
/* The adapter of a run directory: <run>/adapter (written when a run finishes) or <run>/export
 * (what the Export screen writes by default), the newer of the two when both hold one.
 * Returns 1 with its directory in out; 0 when neither holds an adapter (out: <run>/adapter). */
int paths_run_adapter(const char *run_dir, char *out, size_t n);
/* Shortens a path for display: $HOME -> ~, then keeps the tail with "…" (or "..."). */
void paths_display(const char *in, char *out, size_t outsz, size_t width, int utf8);

#endif
