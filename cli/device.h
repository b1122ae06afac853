/* The --device and --threads options every computing command shares. */
#ifndef HL_CLI_DEVICE_H
#define HL_CLI_DEVICE_H

#include "core/backend/backend.h"

#define HL_CLI_DEVICE_HELP "where to compute: cpu, cuda, cuda:N or auto (default: auto, the first GPU, else cpu)"

/* Open the backend `name` (NULL: auto) with `threads` (<= 0: all cores). On failure prints
 * "hydralora <cmd>: error: ..." (naming the available devices) and returns NULL. */
hl_backend *hl_cli_open_device(const char *cmd, const char *name, int threads);

#endif
