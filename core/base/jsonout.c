/* JSON string escaping (see jsonout.h). */
#include "core/base/jsonout.h"

#include <string.h>

size_t hl_json_escape_byte(unsigned char c, char out[8]) {
    const char *shortform = NULL;
    switch (c) {
    case '"': shortform = "\\\""; break;
    case '\\': shortform = "\\\\"; break;
    case '\b': shortform = "\\b"; break;
    case '\f': shortform = "\\f"; break;
    case '\n': shortform = "\\n"; break;
    case '\r': shortform = "\\r"; break;
    case '\t': shortform = "\\t"; break;
    default: break;
    }
    if (shortform) {
        out[0] = shortform[0], out[1] = shortform[1], out[2] = '\0';
        return 2;
    }
    if (c < 0x20)
        return (size_t)snprintf(out, 8, "\\u%04x", c);
    out[0] = (char)c, out[1] = '\0';
    return 1;
}

void hl_json_write_escaped(FILE *f, const char *s, size_t n) {
    char esc[8];
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            fputc(c, f);
            continue;
        }
        fwrite(esc, 1, hl_json_escape_byte(c, esc), f);
    }
}

void hl_json_write_string(FILE *f, const char *s) {
    fputc('"', f);
    hl_json_write_escaped(f, s, strlen(s));
    fputc('"', f);
}
