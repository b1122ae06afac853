/* --device / --threads (see device.h). */
#include "cli/device.h"

#include <stdio.h>

hl_backend *hl_cli_open_device(const char *cmd, const char *name, int threads) {
    hl_backend *be = NULL;
    hl_status st = hl_backend_open(&be, name ? name : "auto");
    if (st == HL_OK)
        st = hl_backend_set_threads(be, threads);
    if (st != HL_OK) {
        fprintf(stderr, "hydralora %s: error: %s\n", cmd, hl_last_error());
        hl_backend_close(be);
        return NULL;
    }
    return be;
}
