/* core/base/jsonout.c and core/base/fileio.c: expected values are written from RFC 8259 §7 (string
 * escapes) and POSIX dirname(3), not from our own output. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/base/fileio.h"
#include "core/base/jsonout.h"
#include "tests/unit/hl_test.h"

static char *json_of(const char *s) {
    static char out[256];
    FILE *f = tmpfile();
    hl_json_write_string(f, s);
    long n = ftell(f);
    rewind(f);
    size_t got = fread(out, 1, (size_t)n, f);
    out[got] = 0;
    fclose(f);
    return out;
}

int main(void) {
    CHECK(!strcmp(json_of("plain"), "\"plain\""), "plain");
    CHECK(!strcmp(json_of("a\"b\\c"), "\"a\\\"b\\\\c\""), "quote and backslash: %s", json_of("a\"b\\c"));
    CHECK(!strcmp(json_of("\n\t\r\b\f"), "\"\\n\\t\\r\\b\\f\""), "short escapes: %s", json_of("\n\t\r\b\f"));
    CHECK(!strcmp(json_of("\x01\x1f"), "\"\\u0001\\u001f\""), "other controls as \\u00xx: %s", json_of("\x01\x1f"));
    CHECK(!strcmp(json_of("caf\xc3\xa9 /\x7f"), "\"caf\xc3\xa9 /\x7f\""), "UTF-8, '/' and DEL kept");

    char d[64];
    hl_path_dirname(d, sizeof d, "a/b/c.json");
    CHECK(!strcmp(d, "a/b"), "dirname a/b/c.json: %s", d);
    hl_path_dirname(d, sizeof d, "c.json");
    CHECK(!strcmp(d, "."), "dirname c.json: %s", d);
    hl_path_dirname(d, sizeof d, "/c.json");
    CHECK(!strcmp(d, "/"), "dirname /c.json: %s", d);

    char tmpl[] = "/tmp/hl_fileio_XXXXXX";
    int fd = mkstemp(tmpl);
    CHECK(fd >= 0, "temp file");
    static char big[10000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    CHECK(write(fd, big, sizeof big) == (ssize_t)sizeof big, "write temp");
    close(fd);
    char *data = NULL;
    size_t len = 0;
    CHECK(hl_file_read_all(tmpl, 0, &data, &len) == HL_OK && len == sizeof big && !memcmp(data, big, len) &&
              data[len] == 0,
          "whole file read back, NUL-terminated");
    free(data);
    data = NULL;
    CHECK(hl_file_read_all(tmpl, 5000, &data, &len) == HL_ERR_FORMAT && !data, "size cap enforced");
    unlink(tmpl);
    CHECK(hl_file_read_all(tmpl, 0, &data, &len) == HL_ERR_NOT_FOUND, "missing file: NOT_FOUND");
    CHECK(hl_file_read_all("/tmp", 0, &data, &len) != HL_OK, "a directory is refused: %s", hl_last_error());
    return hl_test_finish();
}
