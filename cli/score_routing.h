/* `hydralora score --routing`: the router statistics of an adapter per data file or per source
 * value (core/train/routing.h), as plain tables or one JSON object per source; called from
 * cli/cmd_score.c. */
#ifndef HL_CLI_SCORE_ROUTING_H
#define HL_CLI_SCORE_ROUTING_H

#include "core/train/routing.h"

/* Runs the request and prints; quiet: no progress bar. Returns the exit code. */
int hl_score_routing_run(const hl_routing_request *rq, int json, int quiet);

#endif
