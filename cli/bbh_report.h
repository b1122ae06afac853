/* What the bbh and eval bbh commands share: where the BBH data is, and the score table. */
#ifndef HL_CLI_BBH_REPORT_H
#define HL_CLI_BBH_REPORT_H

#include <stddef.h>
#include <stdio.h>

#include "core/eval/bbh/bbh.h"

/* --data, else the catalog's download folder + "/bbh" (NULL: let the library decide). */
const char *hl_bbh_cli_data_dir(const char *given, char *buf, size_t size);

/* hl_bbh_load with --data (or the download folder); a missing data set gets the CLI's hint. */
hl_status hl_bbh_cli_load(hl_bbh_set *set, const char *given, const unsigned char *mask);

/* The per-task table and the three labelled averages. `cmp` (may be NULL) adds a second
 * column and the difference (cmp - s). */
void hl_bbh_print_summary(FILE *out, const hl_bbh_summary *s, const hl_bbh_summary *cmp, const char *name_a,
                          const char *name_b);

#endif
