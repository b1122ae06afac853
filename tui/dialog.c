/* Modal dialogs: message, confirm, text input, choice list, file browser and help. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tui/app.h"
#include "tui/paths.h"

enum { DLG_NONE = 0, DLG_MSG, DLG_CONFIRM, DLG_INPUT, DLG_CHOICE, DLG_FILES, DLG_HELP };

typedef struct {
    char name[256];
    int is_dir;
    long long size;
} file_ent;

static struct {
    int kind;
    char title[192];
    char text[4096];
    int level;
    tui_dialog_cb cb;
    void *ctx;
    tui_edit edit;
    /* choice / files / help */
    char **items;
    int n_items;
    tui_list list;
    int view_h;
    /* files */
    char dir[4096];
    int dirs_ok;
    file_ent *ents;
    int n_ents;
    tui_rect box;
} D;

int dialog_active(void) { return D.kind != DLG_NONE; }

static void free_items(void) {
    for (int i = 0; i < D.n_items; i++)
        free(D.items[i]);
    free(D.items);
    D.items = NULL;
    D.n_items = 0;
    free(D.ents);
    D.ents = NULL;
    D.n_ents = 0;
}

void dialog_close(void) {
    free_items();
    D.kind = DLG_NONE;
    curs_set(0);
}

static void open_kind(int kind, const char *title, tui_dialog_cb cb, void *ctx) {
    dialog_close();
    memset(&D.list, 0, sizeof D.list);
    D.kind = kind;
    snprintf(D.title, sizeof D.title, "%s", title ? title : "");
    D.cb = cb;
    D.ctx = ctx;
    D.text[0] = 0;
}

/* Finish: close first (the callback may open another dialog), then call back. */
static void finish(tui_app *app, int ok, const char *text, int choice) {
    tui_dialog_cb cb = D.cb;
    void *ctx = D.ctx;
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", text ? text : "");
    dialog_close();
    if (cb)
        cb(app, ctx, ok, copy, choice);
}

void dialog_msg(tui_app *app, const char *title, const char *text, int level) {
    (void)app;
    /* a message still on screen is not lost to the next one: both show, the newer below */
    if (D.kind == DLG_MSG && strlen(D.text) + strlen(title ? title : "") + strlen(text ? text : "") + 8 < sizeof D.text) {
        size_t n = strlen(D.text);
        snprintf(D.text + n, sizeof D.text - n, "\n\n%s: %s", title ? title : "", text ? text : "");
        if (level > D.level)
            D.level = level;
        return;
    }
    open_kind(DLG_MSG, title, NULL, NULL);
    snprintf(D.text, sizeof D.text, "%s", text ? text : "");
    D.level = level;
}

void dialog_confirm(tui_app *app, const char *title, const char *text, tui_dialog_cb cb, void *ctx) {
    (void)app;
    open_kind(DLG_CONFIRM, title, cb, ctx);
    snprintf(D.text, sizeof D.text, "%s", text ? text : "");
}

void dialog_input(tui_app *app, const char *title, const char *prompt, const char *initial, int paths,
                  tui_dialog_cb cb, void *ctx) {
    (void)app;
    open_kind(DLG_INPUT, title, cb, ctx);
    snprintf(D.text, sizeof D.text, "%s", prompt ? prompt : "");
    edit_set(&D.edit, initial);
    D.edit.complete_paths = paths;
}

void dialog_choice(tui_app *app, const char *title, const char *const *items, int n, int sel, tui_dialog_cb cb,
                   void *ctx) {
    (void)app;
    open_kind(DLG_CHOICE, title, cb, ctx);
    D.items = calloc((size_t)n, sizeof(char *));
    for (int i = 0; D.items && i < n; i++)
        D.items[D.n_items++] = strdup(items[i]);
    list_set_n(&D.list, D.n_items);
    D.list.sel = sel >= 0 && sel < n ? sel : 0;
}

/* ---- files ---- */

static int ent_cmp(const void *a, const void *b) {
    const file_ent *x = a, *y = b;
    if (!strcmp(x->name, ".."))
        return -1;
    if (!strcmp(y->name, ".."))
        return 1;
    if (x->is_dir != y->is_dir)
        return y->is_dir - x->is_dir;
    return strcmp(x->name, y->name);
}

static void files_read(const char *dir) {
    char real[4096];
    if (!realpath(dir, real))
        snprintf(real, sizeof real, "%s", dir);
    snprintf(D.dir, sizeof D.dir, "%s", real);
    free(D.ents);
    D.ents = NULL;
    D.n_ents = 0;
    DIR *d = opendir(D.dir);
    int cap = 0;
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, "."))
                continue;
            if (e->d_name[0] == '.' && strcmp(e->d_name, ".."))
                continue; /* hidden */
            if (!strcmp(e->d_name, "..") && !strcmp(D.dir, "/"))
                continue;
            if (D.n_ents == cap) {
                cap = cap ? cap * 2 : 64;
                file_ent *ne = realloc(D.ents, (size_t)cap * sizeof *ne);
                if (!ne)
                    break;
                D.ents = ne;
            }
            file_ent *fe = &D.ents[D.n_ents++];
            snprintf(fe->name, sizeof fe->name, "%s", e->d_name);
            char full[8192];
            snprintf(full, sizeof full, "%s/%s", D.dir, e->d_name);
            struct stat st;
            fe->is_dir = stat(full, &st) == 0 && S_ISDIR(st.st_mode);
            fe->size = fe->is_dir ? 0 : (long long)st.st_size;
        }
        closedir(d);
    }
    if (D.n_ents > 1)
        qsort(D.ents, (size_t)D.n_ents, sizeof *D.ents, ent_cmp);
    memset(&D.list, 0, sizeof D.list);
    list_set_n(&D.list, D.n_ents);
}

void dialog_files(tui_app *app, const char *title, const char *dir, int dirs_ok, tui_dialog_cb cb, void *ctx) {
    (void)app;
    open_kind(DLG_FILES, title, cb, ctx);
    D.dirs_ok = dirs_ok;
    files_read(dir && *dir && paths_is_dir(dir) ? dir : ".");
}

/* ---- help ---- */

static const char *scope_title(unsigned sc) {
    switch (sc) {
    case SC_GLOBAL: return "Everywhere";
    case SC_MOVE: return "Moving around";
    case SC_DATA: return "1 Data";
    case SC_MODEL: return "2 Model";
    case SC_CONFIG: return "3 Config";
    case SC_TRAIN: return "4 Train";
    case SC_EXPERTS: return "5 Experts";
    case SC_EVAL: return "6 Eval";
    case SC_EXPORT: return "7 Export";
    default: return "";
    }
}

static void help_add(const char *line) {
    char **ni = realloc(D.items, (size_t)(D.n_items + 1) * sizeof(char *));
    if (!ni)
        return;
    D.items = ni;
    D.items[D.n_items++] = strdup(line);
}

void dialog_help(tui_app *app) {
    char title[160];
    snprintf(title, sizeof title, "Help - keys (theme %s, %s)", app->theme.name,
             ui_colors ? (ui_colors == 256 ? "256 colours" : ui_colors == 16 ? "16 colours" : "8 colours") : "monochrome");
    open_kind(DLG_HELP, title, NULL, NULL);
    /* the current screen first, then everything else: the table is the only source */
    unsigned order[9];
    int no = 0;
    unsigned cur = app->ops[app->cur]->scope;
    order[no++] = cur;
    order[no++] = SC_GLOBAL;
    order[no++] = SC_MOVE;
    for (int s = 0; s < SCR_COUNT; s++)
        if (app->ops[s]->scope != cur)
            order[no++] = app->ops[s]->scope;
    for (int o = 0; o < no; o++) {
        char line[512];
        snprintf(line, sizeof line, "\x01%s", scope_title(order[o]));
        help_add(line);
        for (int i = 0; i < tui_n_bindings; i++) {
            const tui_binding *b = &tui_bindings[i];
            if (!(b->scope & order[o]))
                continue;
            char keys[96];
            keys_names(b, keys, sizeof keys);
            snprintf(line, sizeof line, "  %-14s %s", keys, b->desc);
            help_add(line);
        }
        if (order[o] == SC_MOVE)
            help_add("  mouse          click tabs, the function bar and rows; wheel scrolls");
        help_add("");
    }
    help_add("Text fields: Enter sets, Esc cancels, ^A/^E start/end, ^U/^K kill, ^W word, Tab completes paths.");
    help_add("Ctrl-C quits like q: a running training job is stopped with a checkpoint first.");
    list_set_n(&D.list, D.n_items);
}

/* ---- drawing ---- */

tui_rect app_center(int h, int w) {
    if (w > COLS - 2)
        w = COLS - 2;
    if (h > LINES - 2)
        h = LINES - 2;
    if (w < 10)
        w = 10;
    if (h < 3)
        h = 3;
    return (tui_rect){(LINES - h) / 2, (COLS - w) / 2, h, w};
}

typedef struct {
    int y, x, w, style, max;
} wrap_ctx;

static void wrap_draw(void *user, int line, const char *s, size_t len) {
    wrap_ctx *c = user;
    if (line < c->max)
        ui_textn(c->y + line, c->x, c->w, c->style, s, len);
}

static void draw_frame(tui_rect r, const char *title, int style) {
    ui_fill(r, ST_MAIN);
    ui_box(r, style, title, ST_TITLE);
}

static void draw_list_rows(tui_rect in, int help) {
    D.view_h = in.h;
    if (help) {
        if (D.list.top > D.list.n - in.h)
            D.list.top = D.list.n - in.h > 0 ? D.list.n - in.h : 0;
    } else {
        list_clamp(&D.list, in.h);
    }
    for (int i = 0; i < in.h; i++) {
        int row = D.list.top + i;
        if (row >= D.list.n)
            break;
        int y = in.y + i;
        if (D.kind == DLG_FILES) {
            file_ent *fe = &D.ents[row];
            int st = row == D.list.sel ? ST_SEL : fe->is_dir ? ST_HI : ST_MAIN;
            if (row == D.list.sel)
                ui_fill((tui_rect){y, in.x, 1, in.w - 1}, st);
            char name[300];
            snprintf(name, sizeof name, "%s%s", fe->name, fe->is_dir ? "/" : "");
            ui_text(y, in.x + 1, in.w - 14, st, name);
            if (!fe->is_dir) {
                char sz[32];
                fmt_bytes(sz, sizeof sz, (double)fe->size);
                ui_text_right(y, in.x + in.w - 13, 11, row == D.list.sel ? ST_SEL : ST_DIM, sz);
            }
        } else if (help) {
            const char *t = D.items[row];
            if (t[0] == 1)
                ui_text(y, in.x, in.w, ST_TITLE, t + 1);
            else {
                /* key column highlighted */
                ui_textn(y, in.x, 17, ST_HI, t, strlen(t) < 17 ? strlen(t) : 17);
                if (strlen(t) > 17)
                    ui_text(y, in.x + 17, in.w - 17, ST_MAIN, t + 17);
            }
        } else {
            int st = row == D.list.sel ? ST_SEL : ST_MAIN;
            if (row == D.list.sel)
                ui_fill((tui_rect){y, in.x, 1, in.w - 1}, st);
            ui_text(y, in.x + 1, in.w - 2, st, D.items[row]);
        }
    }
    list_scrollbar(&D.list, in.y, in.x + in.w - 1, in.h);
}

void dialog_draw(tui_app *app) {
    (void)app;
    if (!D.kind)
        return;
    curs_set(0);
    int boxst = ST_BOX;
    switch (D.kind) {
    case DLG_MSG:
    case DLG_CONFIRM: {
        int w = COLS - 10 < 72 ? COLS - 10 : 72;
        if (w < 20)
            w = COLS - 2;
        int lines = wrap_text(D.text, strlen(D.text), w - 4, NULL, NULL);
        int h = lines + 4;
        tui_rect r = app_center(h, w);
        D.box = r;
        int st = D.level == MSG_ERROR ? ST_ERR : D.level == MSG_WARN ? ST_WARN : boxst;
        draw_frame(r, D.title, st);
        wrap_ctx c = {r.y + 1, r.x + 2, r.w - 4, D.level == MSG_ERROR ? ST_ERR : ST_MAIN, r.h - 3};
        wrap_text(D.text, strlen(D.text), r.w - 4, wrap_draw, &c);
        const char *hint = D.kind == DLG_CONFIRM ? "[y] yes   [n] no" : "[Enter] close";
        ui_text(r.y + r.h - 2, r.x + (r.w - ui_width(hint)) / 2, r.w - 2, ST_HI, hint);
        break;
    }
    case DLG_INPUT: {
        int w = COLS - 6 < 90 ? COLS - 6 : 90;
        tui_rect r = app_center(6, w);
        D.box = r;
        draw_frame(r, D.title, boxst);
        ui_text(r.y + 1, r.x + 2, r.w - 4, ST_MAIN, D.text);
        ui_text(r.y + 4, r.x + 2, r.w - 4, ST_DIM,
                D.edit.complete_paths ? "Enter ok  Esc cancel  Tab complete" : "Enter ok  Esc cancel");
        edit_draw(&D.edit, r.y + 2, r.x + 2, r.w - 4, ui_style(TK_TITLE, TK_BAR_BG, 0), 1);
        break;
    }
    case DLG_CHOICE: {
        int w = 20;
        for (int i = 0; i < D.n_items; i++)
            if (ui_width(D.items[i]) + 6 > w)
                w = ui_width(D.items[i]) + 6;
        if (ui_width(D.title) + 8 > w)
            w = ui_width(D.title) + 8;
        tui_rect r = app_center(D.n_items + 2, w);
        D.box = r;
        draw_frame(r, D.title, boxst);
        draw_list_rows(ui_inset(r, 1), 0);
        break;
    }
    case DLG_FILES: {
        tui_rect r = app_center(LINES - 4, COLS - 8 < 100 ? COLS - 8 : 100);
        D.box = r;
        draw_frame(r, D.title, boxst);
        char shown[4096];
        paths_display(D.dir, shown, sizeof shown, (size_t)(r.w - 4), ui_utf8);
        ui_text(r.y + 1, r.x + 2, r.w - 4, ST_TITLE, shown);
        tui_rect in = {r.y + 2, r.x + 1, r.h - 4, r.w - 2};
        draw_list_rows(in, 0);
        ui_text(r.y + r.h - 2, r.x + 2, r.w - 4, ST_DIM,
                D.dirs_ok ? "Enter open/choose  Space choose dir  ~ home  Esc cancel"
                          : "Enter open/choose  ~ home  Esc cancel");
        break;
    }
    case DLG_HELP: {
        tui_rect r = app_center(LINES - 2, COLS - 4 < 110 ? COLS - 4 : 110);
        D.box = r;
        draw_frame(r, D.title, boxst);
        tui_rect in = {r.y + 1, r.x + 2, r.h - 2, r.w - 3};
        draw_list_rows(in, 1);
        break;
    }
    }
}

/* ---- input ---- */

static void files_choose(tui_app *app, int force_dir) {
    if (!D.n_ents) {
        if (force_dir && D.dirs_ok)
            finish(app, 1, D.dir, 0);
        return;
    }
    file_ent *fe = &D.ents[D.list.sel];
    char full[8192];
    snprintf(full, sizeof full, "%s/%s", strcmp(D.dir, "/") ? D.dir : "", fe->name);
    if (fe->is_dir) {
        char probe[8300];
        snprintf(probe, sizeof probe, "%s/config.json", full);
        if (force_dir && D.dirs_ok) {
            char real[4096];
            finish(app, 1, realpath(full, real) ? real : full, 0);
        } else if (D.dirs_ok && strcmp(fe->name, "..") && paths_exists(probe)) {
            finish(app, 1, full, 0); /* a model directory: choose it */
        } else {
            files_read(full);
        }
        return;
    }
    finish(app, 1, full, 0);
}

int dialog_key(tui_app *app, int ch, int is_code) {
    if (!D.kind)
        return 0;
    if (D.kind == DLG_INPUT) {
        int r = edit_key(&D.edit, ch, is_code);
        if (r == EDIT_ENTER)
            finish(app, 1, D.edit.buf, 0);
        else if (r == EDIT_ESCAPE)
            finish(app, 0, D.edit.buf, 0);
        return 1;
    }
    if (D.kind == DLG_MSG) {
        if ((!is_code && (ch == '\n' || ch == '\r' || ch == 27 || ch == ' ' || ch == 'q')) ||
            (is_code && ch == KEY_ENTER))
            finish(app, 1, NULL, 0);
        return 1;
    }
    if (D.kind == DLG_CONFIRM) {
        if (!is_code && (ch == 'y' || ch == 'Y' || ch == '\n' || ch == '\r'))
            finish(app, 1, NULL, 0);
        else if (!is_code && (ch == 'n' || ch == 'N' || ch == 27 || ch == 'q'))
            finish(app, 0, NULL, 0);
        return 1;
    }
    const tui_binding *b = NULL;
    tui_action a = keys_lookup(SC_MOVE, ch, is_code, &b);
    if (D.kind == DLG_HELP) {
        if (a == ACT_BACK || a == ACT_ENTER || (!is_code && (ch == 'q' || ch == '?')) || (is_code && ch == KEY_F(1))) {
            dialog_close();
            return 1;
        }
        /* help is a page of text: keys move the view, not a selection */
        int h = D.view_h > 0 ? D.view_h : 1, top = D.list.top;
        switch (a) {
        case ACT_UP: top--; break;
        case ACT_DOWN: top++; break;
        case ACT_PGUP: top -= h; break;
        case ACT_PGDN: top += h; break;
        case ACT_HALF_UP: top -= h / 2; break;
        case ACT_HALF_DN: top += h / 2; break;
        case ACT_TOP: top = 0; break;
        case ACT_BOTTOM: top = D.list.n; break;
        default: break;
        }
        if (top > D.list.n - h)
            top = D.list.n - h;
        if (top < 0)
            top = 0;
        D.list.top = top;
        D.list.sel = top;
        return 1;
    }
    if (D.kind == DLG_FILES && !is_code) {
        if (ch == '~') {
            const char *home = getenv("HOME");
            files_read(home ? home : "/");
            return 1;
        }
        if (ch == ' ' || ch == '.') {
            files_choose(app, 1);
            return 1;
        }
    }
    if (a == ACT_BACK || (!is_code && ch == 'q')) {
        if (D.kind == DLG_FILES && is_code && ch == KEY_BACKSPACE) {
            char up[4200];
            snprintf(up, sizeof up, "%s/..", D.dir);
            files_read(up);
            return 1;
        }
        finish(app, 0, NULL, -1);
        return 1;
    }
    if (a == ACT_ENTER || (a == ACT_RIGHT && D.kind == DLG_FILES)) {
        if (D.kind == DLG_FILES)
            files_choose(app, 0);
        else if (D.n_items)
            finish(app, 1, D.items[D.list.sel], D.list.sel);
        return 1;
    }
    if (a == ACT_LEFT && D.kind == DLG_FILES) {
        char up[4200];
        snprintf(up, sizeof up, "%s/..", D.dir);
        files_read(up);
        return 1;
    }
    list_move(&D.list, a, D.view_h);
    return 1;
}

int dialog_click(tui_app *app, int y, int x) {
    if (!D.kind)
        return 0;
    if (!ui_in_rect(D.box, y, x)) {
        if (D.kind == DLG_MSG || D.kind == DLG_HELP)
            dialog_close();
        return 1;
    }
    if (D.kind == DLG_CHOICE || D.kind == DLG_FILES) {
        int top = D.kind == DLG_FILES ? D.box.y + 2 : D.box.y + 1;
        int row = D.list.top + (y - top);
        if (y >= top && row >= 0 && row < D.list.n) {
            if (row == D.list.sel) {
                if (D.kind == DLG_FILES)
                    files_choose(app, 0);
                else
                    finish(app, 1, D.items[row], row);
            } else {
                D.list.sel = row;
            }
        }
    } else if (D.kind == DLG_CONFIRM && y == D.box.y + D.box.h - 2) {
        int mid = D.box.x + D.box.w / 2;
        finish(app, x < mid, NULL, 0);
    } else if (D.kind == DLG_MSG && y == D.box.y + D.box.h - 2) {
        finish(app, 1, NULL, 0);
    }
    return 1;
}

int dialog_wheel(tui_app *app, int dy) {
    (void)app;
    if (!D.kind)
        return 0;
    if (D.kind == DLG_HELP) {
        D.list.top += dy * 3;
        if (D.list.top > D.list.n - D.view_h)
            D.list.top = D.list.n - D.view_h;
        if (D.list.top < 0)
            D.list.top = 0;
        D.list.sel = dy > 0 ? D.list.top + D.view_h - 1 : D.list.top;
        return 1;
    }
    list_scroll(&D.list, dy * 3, D.view_h);
    return 1;
}
