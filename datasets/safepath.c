#include "datasets/safepath.h"

#include <stdio.h>
#include <string.h>

int hl_path_is_safe_relative(const char *name) {
    if (!name || !*name || name[0] == '/')
        return 0;
    const char *seg = name;
    for (const char *p = name;; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '/' || c == '\0') {
            size_t len = (size_t)(p - seg);
            if (len == 0)
                return 0;
            if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
                return 0;
            if (c == '\0')
                return 1;
            seg = p + 1;
        } else if (c == '\\' || c < 0x20 || c == 0x7f) {
            return 0;
        }
    }
}

hl_status hl_path_join_safe(char *out, size_t out_size, const char *root, const char *name) {
    if (!hl_path_is_safe_relative(name))
        return hl_fail(HL_ERR_ARG, "refusing unsafe file name '%s' (absolute, '..' or control characters)",
                       name ? name : "(null)");
    int n = snprintf(out, out_size, "%s/%s", root, name);
    if (n < 0 || (size_t)n >= out_size)
        return hl_fail(HL_ERR_RANGE, "path too long: %s/%s", root, name);
    return HL_OK;
}
