#include "tui/theme.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tui/paths.h"

static const char *const key_names[TK_COUNT] = {
#define TUI_X_NAME(id, name, fb) name,
    TUI_THEME_KEYS(TUI_X_NAME)
#undef TUI_X_NAME
};
static const char *const key_fallbacks[TK_COUNT] = {
#define TUI_X_FB(id, name, fb) fb,
    TUI_THEME_KEYS(TUI_X_FB)
#undef TUI_X_FB
};

/* The built-in look: terminal background, soft grey text, a blue accent and a
 * viridis-like heat ramp (perceptually ordered, readable when colour-blind). */
void theme_builtin(tui_theme *t) {
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "builtin");
    static const int def[TK_COUNT] = {
        [TK_MAIN_BG] = TUI_COLOR_DEFAULT, [TK_MAIN_FG] = 0xc6c6c6,     [TK_TITLE] = 0xeeeeee,
        [TK_HI_FG] = 0x5fafff,            [TK_SELECTED_BG] = 0x264f78, [TK_SELECTED_FG] = 0xffffff,
        [TK_INACTIVE_FG] = 0x767676,      [TK_GRAPH_TEXT] = 0xa8a8a8,  [TK_METER_BG] = 0x3a3a3a,
        [TK_DIV_LINE] = 0x4e4e4e,         [TK_BOX] = 0x5f87af,         [TK_BAR_BG] = 0x262626,
        [TK_PLOT_RAW] = 0x5f5f87,         [TK_PLOT_SMOOTH] = 0x5fd7ff, [TK_PLOT_EVAL] = 0xffaf5f,
        [TK_PLOT_AUX] = 0x87d787,         [TK_OK] = 0x87d75f,          [TK_WARN] = 0xffd75f,
        [TK_ERROR] = 0xff5f5f,            [TK_HEAT_START] = 0x3b0f70,  [TK_HEAT_MID] = 0x21918c,
        [TK_HEAT_END] = 0xfde725,         [TK_PROG_START] = 0x5fafff,  [TK_PROG_END] = 0x87d787,
    };
    memcpy(t->color, def, sizeof def);
}

/* "#rrggbb", "#gg" (grey), "r g b" decimal, "" (terminal default). Returns 1 if valid. */
static int parse_color(const char *v, int *out) {
    while (isspace((unsigned char)*v))
        v++;
    if (*v == 0) {
        *out = TUI_COLOR_DEFAULT;
        return 1;
    }
    if (*v == '#') {
        v++;
        size_t n = 0;
        while (isxdigit((unsigned char)v[n]))
            n++;
        if (v[n] != 0 && !isspace((unsigned char)v[n]))
            return 0;
        unsigned long x = strtoul(v, NULL, 16);
        if (n == 6) {
            *out = (int)x;
            return 1;
        }
        if (n == 2) {
            *out = (int)(x << 16 | x << 8 | x);
            return 1;
        }
        if (n == 3) {
            int r = (int)(x >> 8 & 15), g = (int)(x >> 4 & 15), b = (int)(x & 15);
            *out = (r * 17) << 16 | (g * 17) << 8 | (b * 17);
            return 1;
        }
        return 0;
    }
    int r, g, b;
    if (sscanf(v, "%d %d %d", &r, &g, &b) == 3 && r >= 0 && r < 256 && g >= 0 && g < 256 && b >= 0 && b < 256) {
        *out = r << 16 | g << 8 | b;
        return 1;
    }
    return 0;
}

typedef struct {
    char key[48];
    int color;
} kv;

int theme_parse(tui_theme *t, const char *text) {
    kv found[128];
    int nf = 0;
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char line[512];
        if (len >= sizeof line)
            len = sizeof line - 1;
        memcpy(line, p, len);
        line[len] = 0;
        p = eol ? eol + 1 : p + strlen(p);

        char *s = line;
        while (isspace((unsigned char)*s))
            s++;
        if (strncmp(s, "theme[", 6) != 0)
            continue; /* comments and anything else */
        s += 6;
        char *close = strchr(s, ']');
        if (!close || (size_t)(close - s) >= sizeof found[0].key)
            continue;
        *close = 0;
        char *eq = strchr(close + 1, '=');
        if (!eq)
            continue;
        char *val = eq + 1;
        while (isspace((unsigned char)*val))
            val++;
        char *q1 = (*val == '"' || *val == '\'') ? val : NULL;
        if (q1) {
            char *q2 = strchr(q1 + 1, *q1);
            if (!q2)
                continue;
            *q2 = 0;
            val = q1 + 1;
        }
        int c;
        if (!parse_color(val, &c) || nf >= 128)
            continue;
        snprintf(found[nf].key, sizeof found[nf].key, "%s", s);
        found[nf].color = c;
        nf++;
    }
    int known = 0;
    for (int k = 0; k < TK_COUNT; k++) {
        int hit = -1, fb = -1;
        for (int i = 0; i < nf; i++) {
            if (!strcmp(found[i].key, key_names[k]))
                hit = i;
            if (key_fallbacks[k] && !strcmp(found[i].key, key_fallbacks[k]))
                fb = i;
        }
        if (hit >= 0) {
            t->color[k] = found[hit].color;
            known++;
        } else if (fb >= 0) {
            t->color[k] = found[fb].color;
        }
    }
    return known + (nf > 0 && known == 0 ? 1 : 0); /* a btop theme with only its own keys still counts */
}

int theme_load_file(tui_theme *t, const char *path) {
    size_t len;
    char *text = paths_read_file(path, 1 << 20, &len);
    if (!text)
        return -1;
    tui_theme tmp;
    theme_builtin(&tmp);
    int n = theme_parse(&tmp, text);
    free(text);
    if (n <= 0)
        return -1;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(tmp.name, sizeof tmp.name, "%.*s", (int)strcspn(base, "."), base);
    snprintf(tmp.path, sizeof tmp.path, "%s", path);
    *t = tmp;
    return 0;
}

static int theme_dirs(char dirs[4][1024]) {
    int n = 0;
    const char *env = getenv("HYDRALORA_THEMES");
    if (env && *env)
        snprintf(dirs[n++], 1024, "%s", env);
    char cfg[1024];
    paths_config_dir(cfg, sizeof cfg);
    snprintf(dirs[n++], 1024, "%.1000s/themes", cfg);
    char exe[1024];
    paths_exe_dir(exe, sizeof exe);
    if (*exe)
        snprintf(dirs[n++], 1024, "%.980s/../share/hydralora/themes", exe);
#ifdef HL_THEMES_SOURCE_DIR
    snprintf(dirs[n++], 1024, "%s", HL_THEMES_SOURCE_DIR);
#endif
    return n;
}

static int cmp_names(const void *a, const void *b) { return strcmp((const char *)a, (const char *)b); }

void theme_list_all(tui_theme_list *out) {
    memset(out, 0, sizeof *out);
    char dirs[4][1024];
    int nd = theme_dirs(dirs);
    for (int d = 0; d < nd; d++) {
        DIR *dir = opendir(dirs[d]);
        if (!dir)
            continue;
        struct dirent *e;
        while ((e = readdir(dir)) && out->n < 64) {
            size_t len = strlen(e->d_name);
            if (len <= 6 || len > 60 || strcmp(e->d_name + len - 6, ".theme"))
                continue;
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)(len - 6), e->d_name);
            int dup = 0;
            for (int i = 0; i < out->n; i++)
                dup |= !strcmp(out->name[i], name);
            if (dup)
                continue;
            snprintf(out->name[out->n], 64, "%s", name);
            snprintf(out->path[out->n], 1024, "%.900s/%s", dirs[d], e->d_name);
            out->n++;
        }
        closedir(dir);
    }
    /* sort by name, keeping path alongside */
    for (int i = 1; i < out->n; i++)
        for (int j = i; j > 0 && cmp_names(out->name[j - 1], out->name[j]) > 0; j--) {
            char tn[64], tp[1024];
            memcpy(tn, out->name[j], 64);
            memcpy(out->name[j], out->name[j - 1], 64);
            memcpy(out->name[j - 1], tn, 64);
            memcpy(tp, out->path[j], 1024);
            memcpy(out->path[j], out->path[j - 1], 1024);
            memcpy(out->path[j - 1], tp, 1024);
        }
}

int theme_load_named(tui_theme *t, const char *name) {
    if (name && *name && strcmp(name, "builtin")) {
        tui_theme_list *list = malloc(sizeof *list);
        if (list) {
            theme_list_all(list);
            for (int i = 0; i < list->n; i++)
                if (!strcmp(list->name[i], name) && theme_load_file(t, list->path[i]) == 0) {
                    free(list);
                    return 0;
                }
            free(list);
        }
    }
    theme_builtin(t);
    return -1;
}

/* ---- nearest colours ---------------------------------------------------------------- */

/* "Redmean" weighted distance: cheap and closer to perception than plain RGB. */
static long color_dist(int a, int b) {
    long r1 = a >> 16 & 255, g1 = a >> 8 & 255, b1 = a & 255;
    long r2 = b >> 16 & 255, g2 = b >> 8 & 255, b2 = b & 255;
    long rm = (r1 + r2) / 2, dr = r1 - r2, dg = g1 - g2, db = b1 - b2;
    return ((512 + rm) * dr * dr >> 8) + 4 * dg * dg + ((767 - rm) * db * db >> 8);
}

static int xterm_rgb(int idx) {
    static const int ansi[16] = {0x000000, 0xcd0000, 0x00cd00, 0xcdcd00, 0x0000ee, 0xcd00cd, 0x00cdcd, 0xe5e5e5,
                                 0x7f7f7f, 0xff0000, 0x00ff00, 0xffff00, 0x5c5cff, 0xff00ff, 0x00ffff, 0xffffff};
    if (idx < 16)
        return ansi[idx];
    if (idx < 232) {
        static const int lv[6] = {0, 95, 135, 175, 215, 255};
        int i = idx - 16;
        return lv[i / 36] << 16 | lv[i / 6 % 6] << 8 | lv[i % 6];
    }
    int g = 8 + 10 * (idx - 232);
    return g << 16 | g << 8 | g;
}

int color_nearest_256(int rgb) {
    int best = 16;
    long bd = -1;
    for (int i = 16; i < 256; i++) {
        long d = color_dist(rgb, xterm_rgb(i));
        if (bd < 0 || d < bd) {
            bd = d;
            best = i;
        }
    }
    return best;
}

int color_nearest_ansi(int rgb, int n) {
    int best = 0;
    long bd = -1;
    for (int i = 0; i < n && i < 16; i++) {
        long d = color_dist(rgb, xterm_rgb(i));
        if (bd < 0 || d < bd) {
            bd = d;
            best = i;
        }
    }
    return best;
}

int color_lerp(int a, int b, double t) {
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    if (t < 0)
        t = 0;
    if (t > 1)
        t = 1;
    int r = (int)((a >> 16 & 255) + t * ((b >> 16 & 255) - (a >> 16 & 255)) + 0.5);
    int g = (int)((a >> 8 & 255) + t * ((b >> 8 & 255) - (a >> 8 & 255)) + 0.5);
    int bb = (int)((a & 255) + t * ((b & 255) - (a & 255)) + 0.5);
    return r << 16 | g << 8 | bb;
}
