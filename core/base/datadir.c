/* Where hydralora keeps downloaded data (see datadir.h). */
#include "core/base/datadir.h"

#include <stdio.h>
#include <stdlib.h>

hl_status hl_data_dir(char *out, size_t size) {
    const char *v = getenv("HYDRALORA_DATA");
    int n;
    if (v && *v) {
        n = snprintf(out, size, "%s", v);
    } else if ((v = getenv("XDG_DATA_HOME")) && *v == '/') {
        /* XDG base-dir spec: relative values are invalid and must be ignored. */
        n = snprintf(out, size, "%s/hydralora", v);
    } else if ((v = getenv("HOME")) && *v) {
        n = snprintf(out, size, "%s/.local/share/hydralora", v);
    } else {
        return hl_fail(HL_ERR_NOT_FOUND, "no data directory: set HYDRALORA_DATA (or HOME)");
    }
    if (n < 0 || (size_t)n >= size)
        return hl_fail(HL_ERR_RANGE, "data directory path too long");
    /* Drop trailing slashes so joined paths look clean ("/" itself stays). */
    while (n > 1 && out[n - 1] == '/')
        out[--n] = '\0';
    return HL_OK;
}
