/* The data directory: where downloads land (datasets/) and where BIG-Bench Hard is looked
 * for. One rule for every part of hydralora: $HYDRALORA_DATA, else $XDG_DATA_HOME/hydralora
 * (absolute values only, as the XDG spec says), else ~/.local/share/hydralora. */
#ifndef HL_DATADIR_H
#define HL_DATADIR_H

#include <stddef.h>

#include "core/base/status.h"

/* The data directory, trailing slashes dropped; not created. HL_ERR_NOT_FOUND if no variable
 * gives one. */
hl_status hl_data_dir(char *out, size_t size);

#endif
