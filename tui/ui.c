#include "tui/ui.h"

#include <langinfo.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <wchar.h>

int ui_utf8 = 0;
int ui_colors = 0;

static tui_theme g_theme;
static int g_pair_fg[1024], g_pair_bg[1024], g_npairs;
static int g_max_pairs;

const tui_theme *ui_theme(void) { return &g_theme; }

void ui_setup(const tui_theme *theme) {
    g_theme = *theme;
    const char *cs = nl_langinfo(CODESET);
    ui_utf8 = cs && (!strcasecmp(cs, "UTF-8") || !strcasecmp(cs, "utf8"));
    ui_colors = 0;
    g_npairs = 0;
    if (has_colors()) {
        start_color();
        use_default_colors();
        ui_colors = COLORS >= 256 ? 256 : COLORS >= 16 ? 16 : COLORS >= 8 ? 8 : 0;
        g_max_pairs = COLOR_PAIRS - 1;
        if (g_max_pairs > 1023)
            g_max_pairs = 1023;
        if (g_max_pairs > 32766)
            g_max_pairs = 32766;
    }
    /* The tty theme means "ANSI colours only": honour it even on a 256-colour terminal. */
    if (ui_colors > 16 && !strcmp(g_theme.name, "tty"))
        ui_colors = 16;
}

/* Terminal colour index for an RGB value; *bold set when an 8-colour terminal needs
 * bold to show a bright colour. */
static int term_color(int rgb, int *bold) {
    *bold = 0;
    if (rgb < 0)
        return -1;
    if (ui_colors >= 256)
        return color_nearest_256(rgb);
    int c = color_nearest_ansi(rgb, 16);
    if (ui_colors == 8 && c >= 8) {
        *bold = 1;
        c -= 8;
    }
    return c;
}

static short pair_for(int fg, int bg) {
    for (int i = 0; i < g_npairs; i++)
        if (g_pair_fg[i] == fg && g_pair_bg[i] == bg)
            return (short)(i + 1);
    if (g_npairs >= g_max_pairs)
        return 0; /* out of pairs: default colours rather than failing */
    g_pair_fg[g_npairs] = fg;
    g_pair_bg[g_npairs] = bg;
    init_pair((short)(g_npairs + 1), (short)fg, (short)bg);
    return (short)(++g_npairs);
}

int ui_style_rgb(int fg_rgb, int bg_rgb, int flags) {
    if (!ui_colors)
        return flags;
    int b1, b2;
    int fg = term_color(fg_rgb, &b1);
    int bg = term_color(bg_rgb, &b2);
    /* Never draw text invisible: with few colours fg and bg may collapse onto one index. */
    if (fg == bg && fg >= 0 && ui_colors < 256)
        fg = (bg == 7 || bg == 15) ? 0 : 7;
    return pair_for(fg, bg) | flags | (b1 ? S_BOLD : 0);
}

int ui_rgb(int key) { return g_theme.color[key]; }

int ui_style(int fg_key, int bg_key, int flags) {
    if (!ui_colors) {
        /* monochrome: selection is reverse video, dim text stays readable */
        if (bg_key == TK_SELECTED_BG)
            flags |= S_REV;
        if (fg_key == TK_INACTIVE_FG)
            flags |= S_DIM;
        if (fg_key == TK_ERROR || fg_key == TK_WARN || fg_key == TK_TITLE)
            flags |= S_BOLD;
        return flags;
    }
    return ui_style_rgb(g_theme.color[fg_key], g_theme.color[bg_key], flags);
}

static int grad3(int a, int m, int b, double t) {
    if (t < 0 || t != t)
        t = 0;
    if (t > 1)
        t = 1;
    return t < 0.5 ? color_lerp(a, m, t * 2) : color_lerp(m, b, (t - 0.5) * 2);
}

int ui_heat_rgb(double t) {
    return grad3(g_theme.color[TK_HEAT_START], g_theme.color[TK_HEAT_MID], g_theme.color[TK_HEAT_END], t);
}

int ui_prog_rgb(double t) {
    int a = g_theme.color[TK_PROG_START], b = g_theme.color[TK_PROG_END];
    return color_lerp(a, b, t);
}

void ui_apply(int style) {
    attr_t a = A_NORMAL;
    if (style & S_BOLD)
        a |= A_BOLD;
    if (style & S_REV)
        a |= A_REVERSE;
    if (style & S_UNDER)
        a |= A_UNDERLINE;
    if (style & S_DIM)
        a |= A_DIM;
    attr_set(a, (short)(style & 0xffff), NULL);
}

/* ---- UTF-8 text ------------------------------------------------------------------ */

/* Decode one code point; returns bytes consumed (>= 1), *cp = 0xFFFD on invalid input. */
static int utf8_decode(const unsigned char *s, size_t len, unsigned *cp) {
    unsigned c = s[0];
    int n;
    unsigned min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        n = 2;
        c &= 0x1F;
        min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3;
        c &= 0x0F;
        min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4;
        c &= 0x07;
        min = 0x10000;
    } else {
        *cp = 0xFFFD;
        return 1;
    }
    if ((size_t)n > len) {
        *cp = 0xFFFD;
        return 1;
    }
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = 0xFFFD;
            return 1;
        }
        c = c << 6 | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        c = 0xFFFD;
    *cp = c;
    return n;
}

/* Column width of one code point as we will draw it (after substitutions). */
static int cp_width(unsigned cp) {
    if (cp < 0x20 || cp == 0x7F)
        return 1; /* shown as '?' */
    if (cp < 0x80)
        return 1;
    if (!ui_utf8)
        return 1; /* shown as '?' */
    int w = wcwidth((wchar_t)cp);
    return w < 0 ? 1 : w; /* zero-width marks stay 0; unprintable become U+FFFD (1) */
}

int ui_widthn(const char *s, size_t len) {
    int w = 0;
    size_t i = 0;
    while (i < len && s[i]) {
        unsigned cp;
        i += (size_t)utf8_decode((const unsigned char *)s + i, len - i, &cp);
        w += cp_width(cp);
    }
    return w;
}

int ui_width(const char *s) { return ui_widthn(s, strlen(s)); }

size_t ui_fit_bytes(const char *s, size_t len, int cols) {
    int w = 0;
    size_t i = 0;
    while (i < len && s[i]) {
        unsigned cp;
        int n = utf8_decode((const unsigned char *)s + i, len - i, &cp);
        int cw = cp_width(cp);
        if (w + cw > cols)
            break;
        w += cw;
        i += (size_t)n;
    }
    return i;
}

int ui_textn(int y, int x, int maxw, int style, const char *s, size_t len) {
    if (maxw <= 0 || y < 0 || y >= LINES || x >= COLS)
        return 0;
    if (x < 0)
        return 0;
    if (x + maxw > COLS)
        maxw = COLS - x;
    wchar_t buf[1024];
    int nb = 0, w = 0;
    size_t i = 0;
    while (i < len && s[i] && nb < 1023) {
        unsigned cp;
        i += (size_t)utf8_decode((const unsigned char *)s + i, len - i, &cp);
        int cw = cp_width(cp);
        if (cp == '\t')
            cp = ' ';
        else if (cp < 0x20 || cp == 0x7F)
            cp = '?';
        else if (cp >= 0x80 && !ui_utf8)
            cp = '?';
        else if (cp >= 0x80 && wcwidth((wchar_t)cp) < 0)
            cp = 0xFFFD;
        if (w + cw > maxw)
            break;
        /* a zero-width mark cannot start the string */
        if (cw == 0 && nb == 0)
            continue;
        buf[nb++] = (wchar_t)cp;
        w += cw;
    }
    buf[nb] = 0;
    ui_apply(style);
    mvaddnwstr(y, x, buf, nb);
    return w;
}

int ui_text(int y, int x, int maxw, int style, const char *s) { return ui_textn(y, x, maxw, style, s, strlen(s)); }

int ui_textf(int y, int x, int maxw, int style, const char *fmt, ...) {
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return ui_text(y, x, maxw, style, buf);
}

int ui_text_right(int y, int x, int maxw, int style, const char *s) {
    int w = ui_width(s);
    if (w > maxw)
        w = maxw;
    return ui_text(y, x + maxw - w, w, style, s);
}

void ui_glyph(int y, int x, int style, const char *utf8, const char *ascii) {
    if (y < 0 || y >= LINES || x < 0 || x >= COLS)
        return;
    ui_text(y, x, 1, style, ui_utf8 ? utf8 : ascii);
}

void ui_fill(tui_rect r, int style) {
    ui_apply(style);
    for (int y = r.y; y < r.y + r.h && y < LINES; y++) {
        if (y < 0)
            continue;
        int w = r.w;
        if (r.x + w > COLS)
            w = COLS - r.x;
        if (w > 0)
            mvhline(y, r.x, ' ', w);
    }
}

void ui_hline(int y, int x, int w, int style) {
    if (y < 0 || y >= LINES)
        return;
    if (x + w > COLS)
        w = COLS - x;
    if (w <= 0)
        return;
    ui_apply(style);
    if (ui_utf8) {
        for (int i = 0; i < w; i++)
            mvaddwstr(y, x + i, L"\u2500");
    } else {
        mvhline(y, x, '-', w);
    }
}

void ui_vline(int y, int x, int h, int style) {
    if (x < 0 || x >= COLS)
        return;
    ui_apply(style);
    for (int i = 0; i < h; i++) {
        if (y + i < 0 || y + i >= LINES)
            continue;
        if (ui_utf8)
            mvaddwstr(y + i, x, L"\u2502");
        else
            mvaddch(y + i, x, '|');
    }
}

void ui_box(tui_rect r, int style, const char *title, int title_style) {
    if (r.w < 2 || r.h < 2)
        return;
    ui_hline(r.y, r.x + 1, r.w - 2, style);
    ui_hline(r.y + r.h - 1, r.x + 1, r.w - 2, style);
    ui_vline(r.y + 1, r.x, r.h - 2, style);
    ui_vline(r.y + 1, r.x + r.w - 1, r.h - 2, style);
    ui_glyph(r.y, r.x, style, "\u256d", "+");
    ui_glyph(r.y, r.x + r.w - 1, style, "\u256e", "+");
    ui_glyph(r.y + r.h - 1, r.x, style, "\u2570", "+");
    ui_glyph(r.y + r.h - 1, r.x + r.w - 1, style, "\u256f", "+");
    if (title && *title && r.w > 6) {
        ui_glyph(r.y, r.x + 1, style, "\u2524", "[");
        int w = ui_text(r.y, r.x + 2, r.w - 5, title_style, title);
        ui_glyph(r.y, r.x + 2 + w, style, "\u251c", "]");
    }
}

void ui_box_note(tui_rect r, int style, const char *note) {
    if (!note || !*note || r.w < 12)
        return;
    int w = ui_width(note);
    if (w > r.w - 10)
        w = r.w - 10;
    int x = r.x + r.w - 3 - w;
    ui_glyph(r.y, x - 1, ui_style(TK_BOX, TK_MAIN_BG, 0), "\u2524", "[");
    ui_text(r.y, x, w, style, note);
    ui_glyph(r.y, x + w, ui_style(TK_BOX, TK_MAIN_BG, 0), "\u251c", "]");
}

void ui_bar(int y, int x, int w, double f, int fill_style, int empty_style) {
    if (w <= 0)
        return;
    if (!(f >= 0))
        f = 0;
    if (f > 1)
        f = 1;
    double cells = f * w;
    int full = (int)cells;
    for (int i = 0; i < w; i++) {
        if (i < full) {
            ui_glyph(y, x + i, fill_style, "\u2588", "#");
        } else if (i == full && ui_utf8) {
            static const char *const eighths[8] = {" ", "\u258f", "\u258e", "\u258d",
                                                   "\u258c", "\u258b", "\u258a", "\u2589"};
            int e = (int)((cells - full) * 8);
            if (e > 0)
                ui_glyph(y, x + i, fill_style, eighths[e], "#");
            else
                ui_glyph(y, x + i, empty_style, "\u2591", ".");
        } else {
            ui_glyph(y, x + i, empty_style, "\u2591", ".");
        }
    }
}

void ui_bar_gradient(int y, int x, int w, double f) {
    if (w <= 0)
        return;
    if (!(f >= 0))
        f = 0;
    if (f > 1)
        f = 1;
    int full = (int)(f * w + 0.5);
    int empty = ui_style(TK_METER_BG, TK_MAIN_BG, 0);
    for (int i = 0; i < w; i++) {
        if (i < full)
            ui_glyph(y, x + i, ui_style_rgb(ui_prog_rgb(w > 1 ? (double)i / (w - 1) : 1), ui_rgb(TK_MAIN_BG), 0),
                     "\u25a0", "#");
        else if (ui_colors)
            ui_glyph(y, x + i, empty, "\u25a0", ".");
        else
            ui_glyph(y, x + i, empty, "\u00b7", ".");
    }
}

tui_rect ui_inset(tui_rect r, int d) {
    tui_rect o = {r.y + d, r.x + d, r.h - 2 * d, r.w - 2 * d};
    if (o.h < 0)
        o.h = 0;
    if (o.w < 0)
        o.w = 0;
    return o;
}

int ui_in_rect(tui_rect r, int y, int x) { return y >= r.y && y < r.y + r.h && x >= r.x && x < r.x + r.w; }

/* ---- formatting ------------------------------------------------------------------- */

char *fmt_count(char *buf, size_t n, int64_t v) {
    char tmp[32];
    int neg = v < 0;
    uint64_t u = neg ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v;
    snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)u);
    char out[48];
    int len = (int)strlen(tmp), o = 0;
    if (neg)
        out[o++] = '-';
    for (int i = 0; i < len; i++) {
        out[o++] = tmp[i];
        int rest = len - 1 - i;
        if (rest > 0 && rest % 3 == 0)
            out[o++] = ',';
    }
    out[o] = 0;
    snprintf(buf, n, "%s", out);
    return buf;
}

char *fmt_si(char *buf, size_t n, double v) {
    const char *suf[] = {"", "K", "M", "G", "T", "P"};
    int i = 0;
    double a = fabs(v);
    while (a >= 999.5 && i < 5) {
        a /= 1000;
        v /= 1000;
        i++;
    }
    if (i == 0)
        snprintf(buf, n, "%.0f", v);
    else
        snprintf(buf, n, a < 9.995 ? "%.2f%s" : a < 99.95 ? "%.1f%s" : "%.0f%s", v, suf[i]);
    return buf;
}

char *fmt_bytes(char *buf, size_t n, double b) {
    const char *suf[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1023.5 && i < 4) {
        b /= 1024;
        i++;
    }
    if (i == 0)
        snprintf(buf, n, "%.0f B", b);
    else
        snprintf(buf, n, b < 9.995 ? "%.2f %s" : b < 99.95 ? "%.1f %s" : "%.0f %s", b, suf[i]);
    return buf;
}

char *fmt_duration(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 1e9) {
        snprintf(buf, n, "--");
        return buf;
    }
    long t = (long)(s + 0.5);
    if (t >= 86400)
        snprintf(buf, n, "%ldd%02ldh", t / 86400, t % 86400 / 3600);
    else if (t >= 3600)
        snprintf(buf, n, "%ldh%02ldm", t / 3600, t % 3600 / 60);
    else if (t >= 60)
        snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, n, "%lds", t);
    return buf;
}

char *fmt_float(char *buf, size_t n, double v) {
    if (v != v) {
        snprintf(buf, n, "nan");
        return buf;
    }
    double a = fabs(v);
    if (a != 0 && (a < 1e-3 || a >= 1e6))
        snprintf(buf, n, "%.2e", v);
    else if (a >= 1000)
        snprintf(buf, n, "%.0f", v);
    else if (a >= 100)
        snprintf(buf, n, "%.1f", v);
    else if (a >= 10)
        snprintf(buf, n, "%.2f", v);
    else
        snprintf(buf, n, "%.3f", v);
    return buf;
}

double ui_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
