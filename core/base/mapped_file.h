/* Read-only memory map of a whole file.
 *
 * Model weights stay in their files: the loaders hand out views into these maps, so a
 * 13.5 GB bf16 model costs page cache, not heap. Empty files are allowed (data == NULL,
 * size == 0). Errors name the path and say what went wrong ("no such file", "permission
 * denied", "is a directory"). */
#ifndef HL_MAPPED_FILE_H
#define HL_MAPPED_FILE_H

#include <stddef.h>

#include "core/base/status.h"

typedef struct hl_mapped_file {
    const unsigned char *data; /* size bytes, read-only; NULL when size == 0 */
    size_t size;
    char path[4096];
} hl_mapped_file;

/* Map `path` read-only. On failure *mf is zeroed and the detail names the path.
 * HL_ERR_NOT_FOUND (no such file), HL_ERR_IO (permission, directory, other). */
hl_status hl_mapped_file_open(hl_mapped_file *mf, const char *path);
void hl_mapped_file_close(hl_mapped_file *mf); /* safe on a zeroed struct; zeroes it */

/* Hint that the whole mapping will be read soon / sequentially (best effort). */
void hl_mapped_file_advise_willneed(const hl_mapped_file *mf);

#endif
