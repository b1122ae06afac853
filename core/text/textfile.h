/* Reading a whole data file into memory, gzip'd or not (zlib detects the gzip magic and
 * passes plain files through unchanged). */
#ifndef HL_TEXTFILE_H
#define HL_TEXTFILE_H

#include <stddef.h>

#include "core/base/status.h"

/* *data is malloc'd, NUL-terminated (the NUL is not counted in *len). *gzipped (may be
 * NULL) tells whether the file was gzip'd. Linear time: the buffer grows geometrically. */
hl_status hl_textfile_read(const char *path, char **data, size_t *len, int *gzipped);

#endif
