/* Drawing primitives over ncursesw: styles from the theme, clipped UTF-8 text, boxes,
 * and number formatting. Everything here runs on the UI thread only. */
#ifndef HL_TUI_UI_H
#define HL_TUI_UI_H

#ifndef NCURSES_WIDECHAR
#define NCURSES_WIDECHAR 1
#endif
#include <curses.h>
#include <stddef.h>
#include <stdint.h>

#include "tui/theme.h"

typedef struct {
    int y, x, h, w;
} tui_rect;

/* A style packs a colour pair (low 16 bits) and flags (S_*) above it. */
enum { S_BOLD = 1 << 16, S_REV = 1 << 17, S_UNDER = 1 << 18, S_DIM = 1 << 19 };

/* 1 when the locale is UTF-8: braille plots, rounded boxes, shades; else plain ASCII. */
extern int ui_utf8;
/* Colour depth in use: 256, 16, 8 or 0 (monochrome). */
extern int ui_colors;

void ui_setup(const tui_theme *theme); /* after initscr(); may be called again to switch themes */
const tui_theme *ui_theme(void);

int ui_style(int fg_key, int bg_key, int flags);   /* theme keys */
int ui_style_rgb(int fg_rgb, int bg_rgb, int flags); /* arbitrary colours (gradients) */
int ui_rgb(int key);                                 /* theme colour (may be TUI_COLOR_DEFAULT) */
/* Heat/progress gradients, t in [0,1]. */
int ui_heat_rgb(double t);
int ui_prog_rgb(double t);

/* Common styles. */
#define ST_MAIN ui_style(TK_MAIN_FG, TK_MAIN_BG, 0)
#define ST_DIM ui_style(TK_INACTIVE_FG, TK_MAIN_BG, 0)
#define ST_TITLE ui_style(TK_TITLE, TK_MAIN_BG, S_BOLD)
#define ST_HI ui_style(TK_HI_FG, TK_MAIN_BG, S_BOLD)
#define ST_SEL ui_style(TK_SELECTED_FG, TK_SELECTED_BG, S_BOLD)
#define ST_BOX ui_style(TK_BOX, TK_MAIN_BG, 0)
#define ST_OK ui_style(TK_OK, TK_MAIN_BG, 0)
#define ST_WARN ui_style(TK_WARN, TK_MAIN_BG, S_BOLD)
#define ST_ERR ui_style(TK_ERROR, TK_MAIN_BG, S_BOLD)
#define ST_GRAPH ui_style(TK_GRAPH_TEXT, TK_MAIN_BG, 0)

void ui_apply(int style);

/* Text clipped to `maxw` columns; control characters are shown as '?', invalid UTF-8 as
 * U+FFFD (or '?'). Returns the number of columns drawn. */
int ui_text(int y, int x, int maxw, int style, const char *s);
int ui_textn(int y, int x, int maxw, int style, const char *s, size_t len);
int ui_textf(int y, int x, int maxw, int style, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Right-aligned so that the text ends at column x+maxw-1. */
int ui_text_right(int y, int x, int maxw, int style, const char *s);
/* Display width in columns of UTF-8 text. */
int ui_width(const char *s);
int ui_widthn(const char *s, size_t len);
/* Byte length of the longest prefix of s that fits in `cols` columns. */
size_t ui_fit_bytes(const char *s, size_t len, int cols);

/* A glyph: the UTF-8 form when ui_utf8, else the ASCII form. */
void ui_glyph(int y, int x, int style, const char *utf8, const char *ascii);
void ui_fill(tui_rect r, int style);
void ui_hline(int y, int x, int w, int style);
void ui_vline(int y, int x, int h, int style);
/* Rounded box with an optional title ("┤ title ├") and an optional right-side note. */
void ui_box(tui_rect r, int style, const char *title, int title_style);
void ui_box_note(tui_rect r, int style, const char *note);
/* A horizontal bar of `w` cells filled to fraction f (sub-cell precision with UTF-8). */
void ui_bar(int y, int x, int w, double f, int fill_style, int empty_style);
/* Gradient bar (progress colours) */
void ui_bar_gradient(int y, int x, int w, double f);

tui_rect ui_inset(tui_rect r, int d);
int ui_in_rect(tui_rect r, int y, int x);

/* Formatting into caller buffers; return buf. */
char *fmt_count(char *buf, size_t n, int64_t v);      /* 1,234,567 */
char *fmt_si(char *buf, size_t n, double v);          /* 1.23M */
char *fmt_bytes(char *buf, size_t n, double bytes);   /* 1.5 GiB */
char *fmt_duration(char *buf, size_t n, double secs); /* 1h02m / 3m05s / 12s */
char *fmt_float(char *buf, size_t n, double v);       /* compact %g-ish with 4 significant digits */

double ui_now(void); /* monotonic seconds */

#endif
