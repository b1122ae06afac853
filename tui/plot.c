#include "tui/plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int canvas_init(tui_canvas *c, int w, int h) {
    if (w < 1)
        w = 1;
    if (h < 1)
        h = 1;
    c->w = w;
    c->h = h;
    c->dots = calloc((size_t)w * h, 1);
    c->style = calloc((size_t)w * h, sizeof(int));
    if (!c->dots || !c->style) {
        canvas_free(c);
        return -1;
    }
    return 0;
}

void canvas_free(tui_canvas *c) {
    free(c->dots);
    free(c->style);
    c->dots = NULL;
    c->style = NULL;
}

void canvas_dot(tui_canvas *c, int px, int py, int style) {
    if (px < 0 || py < 0 || px >= 2 * c->w || py >= 4 * c->h)
        return;
    static const unsigned char bit[4][2] = {{0x01, 0x08}, {0x02, 0x10}, {0x04, 0x20}, {0x40, 0x80}};
    int cx = px / 2, cy = py / 4;
    c->dots[cy * c->w + cx] |= bit[py % 4][px % 2];
    c->style[cy * c->w + cx] = style;
}

void canvas_line(tui_canvas *c, int x0, int y0, int x1, int y1, int style) {
    int dx = abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
    int dy = -abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    for (int guard = 0; guard < 100000; guard++) {
        canvas_dot(c, x0, y0, style);
        if (x0 == x1 && y0 == y1)
            break;
        int e2 = 2 * err;
        if (e2 >= dy) {
            err += dy;
            x0 += sx;
        }
        if (e2 <= dx) {
            err += dx;
            y0 += sy;
        }
    }
}

/* ASCII stand-in for a 2×4 dot pattern: where in the cell the dots sit. */
static char ascii_mark(unsigned char d) {
    static const unsigned char row_bits[4] = {0x01 | 0x08, 0x02 | 0x10, 0x04 | 0x20, 0x40 | 0x80};
    int r0 = -1, r1 = -1;
    for (int r = 0; r < 4; r++)
        if (d & row_bits[r]) {
            if (r0 < 0)
                r0 = r;
            r1 = r;
        }
    if (r0 < 0)
        return ' ';
    if (r1 - r0 >= 2)
        return '|';
    int m = r0 + r1; /* 0..6 */
    return m <= 0 ? '\'' : m <= 2 ? '-' : m <= 4 ? '.' : '_';
}

void canvas_blit(const tui_canvas *c, int y, int x) {
    for (int cy = 0; cy < c->h; cy++)
        for (int cx = 0; cx < c->w; cx++) {
            unsigned char d = c->dots[cy * c->w + cx];
            if (!d)
                continue;
            if (y + cy >= LINES || x + cx >= COLS)
                continue;
            ui_apply(c->style[cy * c->w + cx]);
            if (ui_utf8) {
                wchar_t wc[2] = {(wchar_t)(0x2800 + d), 0};
                mvaddnwstr(y + cy, x + cx, wc, 1);
            } else {
                mvaddch(y + cy, x + cx, (chtype)ascii_mark(d));
            }
        }
}

/* ---- line plot ------------------------------------------------------------------------ */

static double ymap(double v, int logy) { return logy ? (v > 0 ? log10(v) : NAN) : v; }

void plot_draw(tui_rect r, const plot_series *s, int ns, const plot_opts *o) {
    if (r.w < 12 || r.h < 3)
        return;
    /* data ranges */
    double xmin = o->xmin, xmax = o->xmax, ymin = INFINITY, ymax = -INFINITY;
    int auto_x = !(xmin < xmax);
    if (auto_x) {
        xmin = INFINITY;
        xmax = -INFINITY;
    }
    int any = 0;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n; i++) {
            double xv = s[k].x[i];
            if (!isfinite(xv))
                continue;
            if (!auto_x && (xv < xmin || xv > xmax))
                continue;
            double vals[3] = {s[k].y ? s[k].y[i] : NAN, s[k].lo ? s[k].lo[i] : NAN, s[k].hi ? s[k].hi[i] : NAN};
            for (int j = 0; j < 3; j++) {
                double yv = ymap(vals[j], o->logy);
                if (!isfinite(yv))
                    continue;
                any = 1;
                if (yv < ymin)
                    ymin = yv;
                if (yv > ymax)
                    ymax = yv;
                if (auto_x) {
                    if (xv < xmin)
                        xmin = xv;
                    if (xv > xmax)
                        xmax = xv;
                }
            }
        }
    int axis = ST_GRAPH, dim = ST_DIM;
    if (!any) {
        const char *t = o->empty_text ? o->empty_text : "no data yet";
        ui_text(r.y + r.h / 2, r.x + (r.w - ui_width(t)) / 2, r.w, dim, t);
        return;
    }
    int fixed_y = o->ymin < o->ymax;
    if (fixed_y) {
        ymin = ymap(o->ymin, o->logy);
        ymax = ymap(o->ymax, o->logy);
    }
    if (o->y_from_zero && !o->logy && ymin > 0)
        ymin = 0;
    if (fixed_y) {
        /* the caller's range, as given */
    } else if (ymax - ymin < 1e-12) {
        double pad = fabs(ymax) * 0.05 + 1e-6;
        ymin -= pad;
        ymax += pad;
    } else {
        double pad = (ymax - ymin) * 0.04;
        ymax += pad;
        if (!(o->y_from_zero && ymin == 0))
            ymin -= pad;
    }
    if (!(xmax > xmin))
        xmax = xmin + 1;

    /* y labels: top, middle, bottom */
    char lab[3][24];
    double yv[3] = {ymax, (ymax + ymin) / 2, ymin};
    int lw = 0;
    for (int i = 0; i < 3; i++) {
        fmt_float(lab[i], sizeof lab[i], o->logy ? pow(10, yv[i]) : yv[i]);
        int w = (int)strlen(lab[i]);
        if (w > lw)
            lw = w;
    }
    int pw = r.w - lw - 1, ph = r.h - 1;
    if (pw < 4 || ph < 1)
        return;
    int px0 = r.x + lw + 1;
    for (int i = 0; i < 3; i++) {
        int row = i == 0 ? r.y : i == 1 ? r.y + (ph - 1) / 2 : r.y + ph - 1;
        ui_text_right(row, r.x, lw, axis, lab[i]);
    }
    ui_vline(r.y, px0 - 1, ph, dim);
    /* gridline hints: dotted middle row */
    /* x axis */
    ui_hline(r.y + ph, px0, pw, dim);
    ui_glyph(r.y + ph, px0 - 1, dim, "\u2514", "+");
    char xl[3][24];
    double xv3[3] = {xmin, (xmin + xmax) / 2, xmax};
    for (int i = 0; i < 3; i++) {
        if (o->integer_x)
            fmt_si(xl[i], sizeof xl[i], floor(xv3[i] + 0.5));
        else
            fmt_float(xl[i], sizeof xl[i], xv3[i]);
    }
    ui_text(r.y + ph, px0, pw, axis, xl[0]);
    int mw = (int)strlen(xl[1]);
    if (pw > 3 * mw + 6)
        ui_text(r.y + ph, px0 + (pw - mw) / 2, mw, axis, xl[1]);
    ui_text_right(r.y + ph, px0, pw, axis, xl[2]);

    tui_canvas c;
    if (canvas_init(&c, pw, ph) != 0)
        return;
    int W = 2 * pw, H = 4 * ph;
#define PX(xx) ((int)floor(((xx)-xmin) / (xmax - xmin) * (W - 1) + 0.5))
#define PY(yy) ((int)floor((ymax - (yy)) / (ymax - ymin) * (H - 1) + 0.5))
    for (int k = 0; k < ns; k++) {
        const plot_series *sr = &s[k];
        int have_prev = 0, lx = 0, ly = 0;
        for (int i = 0; i < sr->n; i++) {
            double xv = sr->x[i];
            if (!isfinite(xv) || xv < xmin || xv > xmax)
                continue;
            int px = PX(xv);
            if (sr->kind == PLOT_BAND) {
                double lo = ymap(sr->lo[i], o->logy), hi = ymap(sr->hi[i], o->logy);
                if (!isfinite(lo) || !isfinite(hi))
                    continue;
                canvas_line(&c, px, PY(hi), px, PY(lo), sr->style);
                continue;
            }
            double yy = ymap(sr->y[i], o->logy);
            if (!isfinite(yy)) {
                have_prev = 0;
                continue;
            }
            int py = PY(yy);
            if (sr->kind == PLOT_POINTS) {
                canvas_dot(&c, px, py, sr->style);
                canvas_dot(&c, px + 1, py, sr->style);
                canvas_dot(&c, px, py + 1, sr->style);
                canvas_dot(&c, px + 1, py + 1, sr->style);
            } else if (have_prev) {
                canvas_line(&c, lx, ly, px, py, sr->style);
            } else {
                canvas_dot(&c, px, py, sr->style);
            }
            have_prev = 1;
            lx = px;
            ly = py;
        }
    }
#undef PX
#undef PY
    canvas_blit(&c, r.y, px0);
    canvas_free(&c);

    /* legend, top right, over the plot */
    int lx = r.x + r.w;
    for (int k = ns - 1; k >= 0; k--) {
        if (!s[k].name || !*s[k].name)
            continue;
        int w = ui_width(s[k].name) + 3;
        lx -= w;
        if (lx < px0 + 2)
            break;
        ui_glyph(r.y, lx, s[k].style, "\u2501", "-");
        ui_text(r.y, lx + 1, w - 2, s[k].style, s[k].name);
    }
}

void plot_sparkline(int y, int x, int w, const double *v, int n, int style) {
    if (w <= 0 || n <= 0)
        return;
    double mn = INFINITY, mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) {
            if (v[i] < mn)
                mn = v[i];
            if (v[i] > mx)
                mx = v[i];
        }
    if (!(mx >= mn))
        return;
    static const char *const lv[8] = {"\u2581", "\u2582", "\u2583", "\u2584", "\u2585", "\u2586", "\u2587", "\u2588"};
    static const char asc[8] = {'_', '_', '.', '-', '-', '=', '#', '#'};
    int start = n > w ? n - w : 0;
    for (int i = start; i < n; i++) {
        double t = mx > mn ? (v[i] - mn) / (mx - mn) : 0.5;
        int k = (int)(t * 7 + 0.5);
        if (k < 0)
            k = 0;
        if (k > 7)
            k = 7;
        char a[2] = {asc[k], 0};
        ui_glyph(y, x + i - start, style, lv[k], a);
    }
}

void heat_cell(int y, int x, int w, double t, const char *text, int selected) {
    if (w <= 0)
        return;
    int has_val = t == t;
    if (t < 0)
        t = 0;
    if (t > 1)
        t = 1;
    if (ui_colors >= 8) {
        int bg = has_val ? ui_heat_rgb(t) : ui_rgb(TK_METER_BG);
        /* dark text on bright cells, bright text on dark ones */
        int lum = ((bg >> 16 & 255) * 299 + (bg >> 8 & 255) * 587 + (bg & 255) * 114) / 1000;
        int fg = lum > 140 ? 0x101010 : 0xf0f0f0;
        int st = ui_style_rgb(fg, bg, selected ? S_BOLD | S_UNDER : 0);
        ui_fill((tui_rect){y, x, 1, w}, st);
        if (ui_colors < 256 && has_val) {
            /* 8/16 colours cannot show fine steps: add shade glyphs */
            static const char *const sh[4] = {" ", "\u2591", "\u2592", "\u2593"};
            static const char ash[4] = {' ', '.', ':', '#'};
            int k = (int)(t * 3.99);
            for (int i = 0; i < w; i++) {
                char a[2] = {ash[k], 0};
                ui_glyph(y, x + i, st, sh[k], a);
            }
        }
        if (text) {
            int tw = ui_width(text);
            if (tw <= w)
                ui_text(y, x + (w - tw) / 2, tw, st, text);
        }
        return;
    }
    /* monochrome: shades carry the value */
    static const char *const sh[5] = {" ", "\u2591", "\u2592", "\u2593", "\u2588"};
    static const char ash[10] = {' ', '.', ':', '-', '=', '+', '*', '#', '%', '@'};
    int st = selected ? S_REV : 0;
    for (int i = 0; i < w; i++) {
        if (!has_val) {
            ui_glyph(y, x + i, st, " ", " ");
            continue;
        }
        char a[2] = {ash[(int)(t * 9.99)], 0};
        ui_glyph(y, x + i, st, sh[(int)(t * 4.99)], a);
    }
    if (text && selected) {
        int tw = ui_width(text);
        if (tw <= w)
            ui_text(y, x + (w - tw) / 2, tw, S_REV | S_BOLD, text);
    }
}
