#include "tui/widgets.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- list ---------------------------------------------------------------------------- */

void list_set_n(tui_list *l, int n) {
    l->n = n < 0 ? 0 : n;
    if (l->sel >= l->n)
        l->sel = l->n ? l->n - 1 : 0;
    if (l->sel < 0)
        l->sel = 0;
}

void list_clamp(tui_list *l, int h) {
    if (h < 1)
        h = 1;
    if (l->sel >= l->n)
        l->sel = l->n - 1;
    if (l->sel < 0)
        l->sel = 0;
    if (l->sel < l->top)
        l->top = l->sel;
    if (l->sel >= l->top + h)
        l->top = l->sel - h + 1;
    if (l->top > l->n - h)
        l->top = l->n - h;
    if (l->top < 0)
        l->top = 0;
}

int list_move(tui_list *l, tui_action a, int h) {
    if (h < 1)
        h = 1;
    switch (a) {
    case ACT_UP: l->sel--; break;
    case ACT_DOWN: l->sel++; break;
    case ACT_PGUP: l->sel -= h; break;
    case ACT_PGDN: l->sel += h; break;
    case ACT_HALF_UP: l->sel -= h / 2 > 0 ? h / 2 : 1; break;
    case ACT_HALF_DN: l->sel += h / 2 > 0 ? h / 2 : 1; break;
    case ACT_TOP: l->sel = 0; break;
    case ACT_BOTTOM: l->sel = l->n - 1; break;
    default: return 0;
    }
    list_clamp(l, h);
    return 1;
}

void list_scroll(tui_list *l, int delta, int h) {
    l->sel += delta;
    list_clamp(l, h);
}

void list_scrollbar(const tui_list *l, int y, int x, int h) {
    if (l->n <= h || h < 2)
        return;
    int thumb = h * h / l->n;
    if (thumb < 1)
        thumb = 1;
    int pos = (int)((double)l->top / (l->n - h) * (h - thumb) + 0.5);
    int track = ui_style(TK_METER_BG, TK_MAIN_BG, 0), th = ui_style(TK_INACTIVE_FG, TK_MAIN_BG, 0);
    for (int i = 0; i < h; i++) {
        if (i >= pos && i < pos + thumb)
            ui_glyph(y + i, x, th, "\u2503", "#");
        else
            ui_glyph(y + i, x, track, "\u2502", "|");
    }
}

/* ---- text editor ------------------------------------------------------------------------ */

void edit_set(tui_edit *e, const char *text) {
    snprintf(e->buf, sizeof e->buf, "%s", text ? text : "");
    e->len = (int)strlen(e->buf);
    e->cur = e->len;
    e->scroll = 0;
}

static int prev_char(const tui_edit *e, int i) {
    if (i <= 0)
        return 0;
    i--;
    while (i > 0 && ((unsigned char)e->buf[i] & 0xC0) == 0x80)
        i--;
    return i;
}

static int next_char(const tui_edit *e, int i) {
    if (i >= e->len)
        return e->len;
    i++;
    while (i < e->len && ((unsigned char)e->buf[i] & 0xC0) == 0x80)
        i++;
    return i;
}

static void edit_delete(tui_edit *e, int from, int to) {
    if (from >= to)
        return;
    memmove(e->buf + from, e->buf + to, (size_t)(e->len - to + 1));
    e->len -= to - from;
    if (e->cur > to)
        e->cur -= to - from;
    else if (e->cur > from)
        e->cur = from;
}

static int edit_insert(tui_edit *e, const char *s, int n) {
    if (e->len + n >= (int)sizeof e->buf)
        return 0;
    memmove(e->buf + e->cur + n, e->buf + e->cur, (size_t)(e->len - e->cur + 1));
    memcpy(e->buf + e->cur, s, (size_t)n);
    e->len += n;
    e->cur += n;
    return 1;
}

/* Completes the last path component from the directory listing (common prefix of the
 * matches; a unique directory match gets a trailing '/'). */
static void edit_complete_path(tui_edit *e) {
    char dir[4096], base[1024];
    e->buf[e->len] = 0;
    const char *slash = strrchr(e->buf, '/');
    if (slash) {
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - e->buf) + 1, e->buf);
        snprintf(base, sizeof base, "%.1000s", slash + 1);
    } else {
        snprintf(dir, sizeof dir, "./");
        snprintf(base, sizeof base, "%.1000s", e->buf);
    }
    char opendir_path[4096];
    if (dir[0] == '~' && dir[1] == '/') {
        const char *home = getenv("HOME");
        snprintf(opendir_path, sizeof opendir_path, "%s%s", home ? home : "", dir + 1);
    } else {
        snprintf(opendir_path, sizeof opendir_path, "%s", dir);
    }
    DIR *d = opendir(opendir_path);
    if (!d)
        return;
    char common[1024] = "";
    int matches = 0;
    char only[1024] = "";
    struct dirent *ent;
    size_t bl = strlen(base);
    while ((ent = readdir(d))) {
        if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, ".."))
            continue;
        if (strncmp(ent->d_name, base, bl))
            continue;
        if (bl == 0 && ent->d_name[0] == '.')
            continue;
        if (!matches)
            snprintf(common, sizeof common, "%s", ent->d_name);
        else {
            size_t k = 0;
            while (common[k] && common[k] == ent->d_name[k])
                k++;
            common[k] = 0;
        }
        snprintf(only, sizeof only, "%s", ent->d_name);
        matches++;
    }
    closedir(d);
    if (!matches)
        return;
    size_t cl = strlen(common);
    if (cl > bl) {
        e->cur = e->len;
        edit_insert(e, common + bl, (int)(cl - bl));
    }
    if (matches == 1) {
        char full[8192];
        snprintf(full, sizeof full, "%s%s", opendir_path, only);
        struct stat st;
        if (stat(full, &st) == 0 && S_ISDIR(st.st_mode)) {
            e->cur = e->len;
            edit_insert(e, "/", 1);
        }
    }
}

int edit_key(tui_edit *e, int ch, int is_code) {
    if (is_code) {
        switch (ch) {
        case KEY_LEFT: e->cur = prev_char(e, e->cur); return EDIT_MOVED;
        case KEY_RIGHT: e->cur = next_char(e, e->cur); return EDIT_MOVED;
        case KEY_HOME: e->cur = 0; return EDIT_MOVED;
        case KEY_END: e->cur = e->len; return EDIT_MOVED;
        case KEY_BACKSPACE: edit_delete(e, prev_char(e, e->cur), e->cur); return EDIT_CHANGED;
        case KEY_DC: edit_delete(e, e->cur, next_char(e, e->cur)); return EDIT_CHANGED;
        case KEY_ENTER: return EDIT_ENTER;
        default: return EDIT_NONE;
        }
    }
    switch (ch) {
    case '\n':
    case '\r': return EDIT_ENTER;
    case 27: return EDIT_ESCAPE;
    case 127:
    case 8: edit_delete(e, prev_char(e, e->cur), e->cur); return EDIT_CHANGED;
    case 1: e->cur = 0; return EDIT_MOVED;      /* ^A */
    case 5: e->cur = e->len; return EDIT_MOVED; /* ^E */
    case 2: e->cur = prev_char(e, e->cur); return EDIT_MOVED;
    case 6: e->cur = next_char(e, e->cur); return EDIT_MOVED;
    case 4: edit_delete(e, e->cur, next_char(e, e->cur)); return EDIT_CHANGED;
    case 11: edit_delete(e, e->cur, e->len); return EDIT_CHANGED; /* ^K */
    case 21: edit_delete(e, 0, e->cur); return EDIT_CHANGED;      /* ^U */
    case 23: {                                                     /* ^W: previous word */
        int i = e->cur;
        while (i > 0 && e->buf[i - 1] == ' ')
            i--;
        while (i > 0 && e->buf[i - 1] != ' ' && e->buf[i - 1] != '/')
            i--;
        edit_delete(e, i, e->cur);
        return EDIT_CHANGED;
    }
    case '\t':
        if (e->complete_paths) {
            edit_complete_path(e);
            return EDIT_CHANGED;
        }
        return EDIT_NONE;
    default: break;
    }
    if (ch < 32 || ch == 127)
        return EDIT_NONE;
    char u[4];
    int n;
    unsigned c = (unsigned)ch;
    if (c < 0x80) {
        u[0] = (char)c;
        n = 1;
    } else if (c < 0x800) {
        u[0] = (char)(0xC0 | c >> 6);
        u[1] = (char)(0x80 | (c & 0x3F));
        n = 2;
    } else if (c < 0x10000) {
        u[0] = (char)(0xE0 | c >> 12);
        u[1] = (char)(0x80 | (c >> 6 & 0x3F));
        u[2] = (char)(0x80 | (c & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | c >> 18);
        u[1] = (char)(0x80 | (c >> 12 & 0x3F));
        u[2] = (char)(0x80 | (c >> 6 & 0x3F));
        u[3] = (char)(0x80 | (c & 0x3F));
        n = 4;
    }
    return edit_insert(e, u, n) ? EDIT_CHANGED : EDIT_NONE;
}

void edit_draw(tui_edit *e, int y, int x, int w, int style, int focused) {
    if (w < 2)
        return;
    int curcol = ui_widthn(e->buf, (size_t)e->cur);
    if (curcol < e->scroll)
        e->scroll = curcol;
    if (curcol >= e->scroll + w - 1)
        e->scroll = curcol - w + 2;
    if (e->scroll < 0)
        e->scroll = 0;
    /* find the byte where column `scroll` starts */
    size_t start = ui_fit_bytes(e->buf, (size_t)e->len, e->scroll);
    ui_fill((tui_rect){y, x, 1, w}, style);
    ui_textn(y, x, w, style, e->buf + start, (size_t)e->len - start);
    if (focused) {
        int cx = x + curcol - e->scroll;
        if (cx >= x + w)
            cx = x + w - 1;
        move(y, cx);
        curs_set(1);
    }
}

/* ---- progress -------------------------------------------------------------------------- */

void progress_draw(int y, int x, int w, const char *label, double done, double total, const char *detail) {
    int lw = label ? ui_text(y, x, w, ST_MAIN, label) + 1 : 0;
    char pct[32];
    if (total > 0)
        snprintf(pct, sizeof pct, "%5.1f%%", 100.0 * done / total);
    else
        snprintf(pct, sizeof pct, "  ... ");
    int dw = detail ? ui_width(detail) : 0;
    int bw = w - lw - 8 - (dw ? dw + 1 : 0);
    if (bw < 6) {
        dw = 0;
        bw = w - lw - 8;
    }
    if (bw >= 3) {
        ui_bar_gradient(y, x + lw, bw, total > 0 ? done / total : 0);
        ui_text(y, x + lw + bw + 1, 7, ST_TITLE, pct);
    }
    if (dw)
        ui_text(y, x + lw + bw + 8, w - lw - bw - 8, ST_DIM, detail);
}

/* ---- wrap ------------------------------------------------------------------------------- */

int wrap_text(const char *text, size_t len, int w, wrap_fn fn, void *user) {
    if (w < 1)
        w = 1;
    int line = 0;
    size_t i = 0;
    while (i <= len) {
        size_t eol = i;
        while (eol < len && text[eol] != '\n')
            eol++;
        /* wrap [i, eol) */
        size_t s = i;
        if (s == eol) {
            if (fn)
                fn(user, line, text + s, 0);
            line++;
        }
        while (s < eol) {
            size_t fit = ui_fit_bytes(text + s, eol - s, w);
            if (fit == 0)
                fit = 1;
            size_t cut = s + fit;
            if (cut < eol) {
                size_t sp = cut;
                while (sp > s && text[sp] != ' ')
                    sp--;
                if (sp > s)
                    cut = sp;
            }
            if (fn)
                fn(user, line, text + s, cut - s);
            line++;
            s = cut;
            while (s < eol && text[s] == ' ')
                s++;
        }
        if (eol >= len)
            break;
        i = eol + 1;
    }
    return line;
}
