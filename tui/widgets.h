/* Small widgets: a scrolling selection list, a one-line text editor, a progress line and
 * a column table. Plots and heatmaps live in plot.h. */
#ifndef HL_TUI_WIDGETS_H
#define HL_TUI_WIDGETS_H

#include <stddef.h>
#include <wchar.h>

#include "tui/keys.h"
#include "tui/ui.h"

/* ---- list: selection + scroll offset over n rows ---- */
typedef struct {
    int n;   /* rows */
    int sel; /* selected row (0..n-1, or 0 when empty) */
    int top; /* first visible row */
} tui_list;

/* Applies a movement action for a view `h` rows tall; returns 1 if it was a movement. */
int list_move(tui_list *l, tui_action a, int h);
void list_set_n(tui_list *l, int n);
void list_clamp(tui_list *l, int h); /* keeps sel visible */
void list_scroll(tui_list *l, int delta, int h); /* wheel: moves the selection with the view */
/* Scrollbar in column x for rows y..y+h-1. */
void list_scrollbar(const tui_list *l, int y, int x, int h);

/* ---- one-line text editor (UTF-8) ---- */
typedef struct {
    char buf[4096];
    int len;    /* bytes */
    int cur;    /* byte offset of the cursor (on a character boundary) */
    int scroll; /* first visible column */
    int complete_paths; /* Tab completes file names */
} tui_edit;

enum { EDIT_NONE = 0, EDIT_CHANGED, EDIT_MOVED, EDIT_ENTER, EDIT_ESCAPE };

void edit_set(tui_edit *e, const char *text);
/* One key: ch is a character (is_code 0) or a KEY_* code. Returns EDIT_*. */
int edit_key(tui_edit *e, int ch, int is_code);
/* Draws the field in w columns; places the terminal cursor when focused. */
void edit_draw(tui_edit *e, int y, int x, int w, int style, int focused);

/* ---- progress line: "label  [■■■■■■    ] 42.0%  detail" ---- */
void progress_draw(int y, int x, int w, const char *label, double done, double total, const char *detail);

/* ---- word wrap: splits text into lines of at most w columns (by words, hard-breaking
 * long words; '\n' starts a new line). Calls fn for each line. Returns the line count. */
typedef void (*wrap_fn)(void *user, int line, const char *s, size_t len);
int wrap_text(const char *text, size_t len, int w, wrap_fn fn, void *user);

#endif
