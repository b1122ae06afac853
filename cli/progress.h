/* A one-line progress bar for headless commands, redrawn in place with '\r' on a
 * terminal and printed as plain periodic lines when stderr is not a terminal. */
#ifndef HL_CLI_PROGRESS_H
#define HL_CLI_PROGRESS_H

#include <stdint.h>

typedef struct {
    const char *label;
    double start_time;
    double last_draw;
    int is_tty;
    int drawn;
    double rate_t0, rate_done0; /* the first update: the rate is measured from there */
    int rate_started;
} hl_progress;

double hl_now_seconds(void); /* monotonic clock */

void hl_progress_begin(hl_progress *p, const char *label);
/* done/total in units (total <= 0: unknown); the rate and ETA count only the progress made
 * since the first update (a resumed download's earlier bytes took no time here) and show
 * "--" until a second has passed; `unit` is "B" (bytes, shown as KB/MB/GB) or a word
 * ("steps", "examples"); `extra` is appended (e.g. "loss 2.31"), may be NULL.
 * Redraws at most 10 times a second unless force != 0. */
void hl_progress_update(hl_progress *p, double done, double total, const char *unit, const char *extra, int force);
void hl_progress_end(hl_progress *p); /* finishes the line */

#endif
