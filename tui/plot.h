/* Plots on a dot canvas: braille cells (2×4 dots per cell, U+2800..U+28FF) with a UTF-8
 * locale, ASCII marks ('\'', '-', '.', '_', '|') otherwise; plus heat-map cells. */
#ifndef HL_TUI_PLOT_H
#define HL_TUI_PLOT_H

#include "tui/ui.h"

typedef struct {
    int w, h;             /* cells */
    unsigned char *dots;  /* [h*w] braille bit patterns */
    int *style;           /* [h*w] style of the last series that touched the cell */
} tui_canvas;

int canvas_init(tui_canvas *c, int w, int h);
void canvas_free(tui_canvas *c);
void canvas_dot(tui_canvas *c, int px, int py, int style); /* px < 2w, py < 4h, py 0 = top */
void canvas_line(tui_canvas *c, int x0, int y0, int x1, int y1, int style);
void canvas_blit(const tui_canvas *c, int y, int x);

enum { PLOT_LINE = 0, PLOT_POINTS, PLOT_BAND };

typedef struct {
    const double *x, *y;    /* n points, x ascending */
    const double *lo, *hi;  /* PLOT_BAND: vertical extent at each x */
    int n;
    int kind;
    int style;
    const char *name;       /* legend */
} plot_series;

typedef struct {
    double xmin, xmax;      /* xmin >= xmax: from the data */
    double ymin, ymax;      /* ymin >= ymax: from the data */
    int logy;
    int y_from_zero;        /* include 0 in the y range */
    int integer_x;          /* x labels as integers (steps) */
    const char *empty_text; /* shown when there is nothing to draw */
} plot_opts;

/* Axes with labels on the left and at the bottom, series drawn in order (later on top),
 * legend in the top-right corner. */
void plot_draw(tui_rect r, const plot_series *s, int ns, const plot_opts *o);

/* Sparkline of n values in w cells (one row, braille or ASCII levels). */
void plot_sparkline(int y, int x, int w, const double *v, int n, int style);

/* One heat-map cell of `w` columns for t in [0,1] (NaN: empty). With colours the
 * background carries the value; without, shade characters do. `text` (may be NULL) is
 * centred in the cell. */
void heat_cell(int y, int x, int w, double t, const char *text, int selected);

#endif
