#include "core/text/textfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

hl_status hl_textfile_read(const char *path, char **data, size_t *len, int *gzipped) {
    *data = NULL;
    *len = 0;
    struct stat st;
    if (stat(path, &st) != 0)
        return hl_fail(errno == ENOENT ? HL_ERR_NOT_FOUND : HL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return hl_fail(HL_ERR_ARG, "%s is a directory, expected a JSON or JSON lines file", path);
    FILE *f = fopen(path, "rb");
    if (!f)
        return hl_fail(HL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    unsigned char magic[2] = {0, 0};
    size_t nm = fread(magic, 1, 2, f);
    fclose(f);
    int gz = nm == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    if (gzipped)
        *gzipped = gz;

    gzFile g = gzopen(path, "rb");
    if (!g)
        return hl_fail(HL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    gzbuffer(g, 1 << 17);
    /* Plain files: exact size up front. gzip: start at 4x the compressed size and double. */
    size_t cap = (size_t)st.st_size * (gz ? 4 : 1) + 1;
    if (cap < 4096)
        cap = 4096;
    char *buf = malloc(cap);
    size_t n = 0;
    hl_status status = HL_OK;
    while (buf) {
        if (cap - n < 2) {
            size_t ncap = cap * 2;
            char *nb = ncap > cap ? realloc(buf, ncap) : NULL;
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap = ncap;
        }
        size_t want = cap - n - 1;
        if (want > (1u << 30))
            want = 1u << 30; /* gzread takes an unsigned int */
        int got = gzread(g, buf + n, (unsigned)want);
        if (got < 0) {
            int zerr = 0;
            const char *msg = gzerror(g, &zerr);
            status = hl_fail(HL_ERR_FORMAT, "%s: %s%s", path, gz ? "corrupt gzip data: " : "read error: ",
                             msg ? msg : "?");
            break;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    gzclose(g);
    if (!buf)
        return hl_fail(HL_ERR_NOMEM, "out of memory reading %s", path);
    if (status != HL_OK) {
        free(buf);
        return status;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return HL_OK;
}
