/* The Experts screen's "by source" view: which heads the adapter's routers choose on each of
 * two or more data files (catalog data sets, BBH task files, any JSON lines) or on each value of
 * a source field inside one file, computed in the background (core/train/routing.h) with a
 * progress bar; per source the layer x expert heat map of the chosen module, a source x expert
 * table of the mean load (averaged over layers, dominant head marked), the difference from the
 * overall mean, CSV export; and the run's probe sets (run config probe_data) over the evals. */
#ifndef HL_TUI_EXPERTS_SOURCES_H
#define HL_TUI_EXPERTS_SOURCES_H

#include "tui/app.h"

typedef struct src_view src_view;

src_view *srcview_create(tui_app *app);
void srcview_destroy(src_view *v);
void srcview_draw(src_view *v, tui_rect r);
/* 1 when the action was used; ACT_BACK leaves the view (srcview_shown turns 0). */
int srcview_action(src_view *v, tui_action a);
void srcview_tick(src_view *v);
void srcview_shutdown(src_view *v);
void srcview_show(src_view *v, int on);
int srcview_shown(const src_view *v);
int srcview_busy(const src_view *v);

#endif
