/* Colour themes in btop's file form: lines `theme[key]="#rrggbb"` (also "#gg" grey,
 * "r g b" decimal, or "" for the terminal's default colour). Unknown keys are ignored,
 * so btop theme files load too (their cpu_* gradient feeds ours when ours is unset).
 *
 * Colours are kept as 0xRRGGBB; the curses layer maps them to the nearest colour the
 * terminal has (xterm-256 cube and grey ramp, the 16 ANSI colours, or the 8 basic ones). */
#ifndef HL_TUI_THEME_H
#define HL_TUI_THEME_H

#include <stddef.h>

#define TUI_THEME_KEYS(X)                                         \
    X(TK_MAIN_BG, "main_bg", NULL)                                \
    X(TK_MAIN_FG, "main_fg", NULL)                                \
    X(TK_TITLE, "title", NULL)                                    \
    X(TK_HI_FG, "hi_fg", NULL)                                    \
    X(TK_SELECTED_BG, "selected_bg", NULL)                        \
    X(TK_SELECTED_FG, "selected_fg", NULL)                        \
    X(TK_INACTIVE_FG, "inactive_fg", NULL)                        \
    X(TK_GRAPH_TEXT, "graph_text", NULL)                          \
    X(TK_METER_BG, "meter_bg", NULL)                              \
    X(TK_DIV_LINE, "div_line", NULL)                              \
    X(TK_BOX, "box", "cpu_box")                                   \
    X(TK_BAR_BG, "bar_bg", "meter_bg")                            \
    X(TK_PLOT_RAW, "plot_raw", "inactive_fg")                     \
    X(TK_PLOT_SMOOTH, "plot_smooth", "cpu_mid")                   \
    X(TK_PLOT_EVAL, "plot_eval", "mem_box")                       \
    X(TK_PLOT_AUX, "plot_aux", "net_box")                         \
    X(TK_OK, "ok", "free_end")                                    \
    X(TK_WARN, "warn", "temp_mid")                                \
    X(TK_ERROR, "error", "temp_end")                              \
    X(TK_HEAT_START, "heat_start", "cpu_start")                   \
    X(TK_HEAT_MID, "heat_mid", "cpu_mid")                         \
    X(TK_HEAT_END, "heat_end", "cpu_end")                         \
    X(TK_PROG_START, "progress_start", "used_start")              \
    X(TK_PROG_END, "progress_end", "used_end")

typedef enum {
#define TUI_X_ENUM(id, name, fb) id,
    TUI_THEME_KEYS(TUI_X_ENUM)
#undef TUI_X_ENUM
    TK_COUNT
} tui_theme_key;

#define TUI_COLOR_DEFAULT (-1) /* the terminal's own foreground/background */

typedef struct {
    char name[64];
    char path[1024]; /* "" for the built-in theme */
    int color[TK_COUNT]; /* 0xRRGGBB or TUI_COLOR_DEFAULT */
} tui_theme;

/* The built-in default (used when no theme file is found). */
void theme_builtin(tui_theme *t);

/* Parse theme text over the built-in defaults. Returns the number of keys recognised
 * (0 means "not a theme"). */
int theme_parse(tui_theme *t, const char *text);

/* Load a file; returns 0 on success, -1 if unreadable or not a theme. */
int theme_load_file(tui_theme *t, const char *path);

/* Theme search path, in priority order: $HYDRALORA_THEMES, the user dir
 * ($XDG_CONFIG_HOME/hydralora/themes), <exe dir>/../share/hydralora/themes and the source
 * tree's themes/. Lists unique theme names (first found wins). */
typedef struct {
    int n;
    char name[64][64];
    char path[64][1024];
} tui_theme_list;
void theme_list_all(tui_theme_list *out);

/* Finds `name` on the search path and loads it; falls back to the built-in theme
 * (returns -1 in that case). */
int theme_load_named(tui_theme *t, const char *name);

/* Nearest terminal colours. */
int color_nearest_256(int rgb);          /* index 16..255 */
int color_nearest_ansi(int rgb, int n);  /* index 0..n-1, n = 8 or 16 */
int color_lerp(int a, int b, double t);  /* blend in RGB */

#endif
