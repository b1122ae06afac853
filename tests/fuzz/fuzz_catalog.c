/* libFuzzer target: catalog parsing and validation from arbitrary bytes, then the path
 * and URL helpers on whatever entries survive. A catalog must never yield a path outside
 * the root. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/catalog.h"
#include "datasets/remote.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hl_catalog cat;
    if (hl_catalog_parse(&cat, (const char *)data, size, "fuzz") != HL_OK)
        return 0;
    for (size_t i = 0; i < cat.n_entries; i++) {
        const hl_catalog_entry *e = &cat.entries[i];
        for (size_t k = 0; k < e->n_files; k++) {
            char path[4096], url[4096];
            if (hl_catalog_file_path(path, sizeof path, "/root", e, &e->files[k]) == HL_OK &&
                (strncmp(path, "/root/", 6) != 0 || strstr(path, "/../") || strstr(path, "/./")))
                abort(); /* escaped the data directory */
            if (e->files[k].url)
                hl_remote_resolve(e->files[k].url, url, sizeof url);
        }
    }
    hl_catalog_free(&cat);
    return 0;
}
