/* The one key-binding table. Every key the workbench understands is a row here; the help
 * screen and the function bar are generated from it, and screens receive actions, not
 * raw keys (except while a text field is being edited). */
#ifndef HL_TUI_KEYS_H
#define HL_TUI_KEYS_H

/* Scopes: where a binding applies. */
enum {
    SC_GLOBAL = 1 << 0,
    SC_DATA = 1 << 1,
    SC_MODEL = 1 << 2,
    SC_CONFIG = 1 << 3,
    SC_TRAIN = 1 << 4,
    SC_EXPERTS = 1 << 5,
    SC_EVAL = 1 << 6,
    SC_EXPORT = 1 << 7,
    SC_MOVE = 1 << 8, /* movement keys: global, handed to the focused widget */
};

typedef enum {
    ACT_NONE = 0,
    /* global */
    ACT_HELP, ACT_QUIT, ACT_SCREEN, ACT_NEXT_SCREEN, ACT_PREV_SCREEN, ACT_THEME, ACT_REDRAW,
    /* movement */
    ACT_UP, ACT_DOWN, ACT_LEFT, ACT_RIGHT, ACT_PGUP, ACT_PGDN, ACT_HALF_UP, ACT_HALF_DN, ACT_TOP, ACT_BOTTOM,
    ACT_ENTER, ACT_BACK, ACT_FOCUS, ACT_FOCUS_BACK,
    /* screen actions (meaning depends on the screen; the table says which) */
    ACT_RUN, ACT_STOP, ACT_PAUSE, ACT_SAVE_NOW, ACT_DOWNLOAD, ACT_CANCEL, ACT_USE, ACT_SEARCH, ACT_NEXT_MATCH,
    ACT_PREV_MATCH, ACT_VIEW, ACT_CLUSTER, ACT_APPLY_N, ACT_MORE, ACT_LESS, ACT_OPEN, ACT_BROWSE, ACT_PROMPT,
    ACT_ADAPTER, ACT_TOGGLE, ACT_SAVE, ACT_LOAD, ACT_RESET, ACT_LOGY, ACT_ZOOM, ACT_MODULE, ACT_MODULE_BACK,
    ACT_METRIC, ACT_QUICK, ACT_WARD, ACT_ALL, ACT_MODE, ACT_RULE, ACT_LIMIT, ACT_FORMAT, ACT_DEST, ACT_RESUME_RUN, ACT_DELETE,
    ACT_COUNT
} tui_action;

#define TUI_MAX_KEYS 8

typedef struct {
    tui_action action;
    unsigned scope;
    int keys[TUI_MAX_KEYS]; /* curses key codes or ASCII; 0-terminated */
    const char *label;      /* function-bar label ("" = not on the bar) */
    const char *desc;       /* help text */
} tui_binding;

extern const tui_binding tui_bindings[];
extern const int tui_n_bindings;

/* The action for a key in a screen scope (screen bindings win over global ones).
 * is_code: the key came as a curses KEY_* code (not a character). *binding receives the row. */
tui_action keys_lookup(unsigned screen_scope, int key, int is_code, const tui_binding **binding);

/* "q", "F10", "Enter", "^D", "PgDn", "↑" (ASCII arrows without UTF-8) */
const char *keys_name(int key, char *buf, int n);
/* All keys of a binding joined with '/': "j/↓". */
const char *keys_names(const tui_binding *b, char *buf, int n);

#endif
