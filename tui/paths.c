#include "tui/paths.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void home_dir(char *out, size_t n) {
    const char *h = getenv("HOME");
    snprintf(out, n, "%s", h && *h ? h : "/tmp");
}

void paths_config_dir(char *out, size_t n) {
    const char *x = getenv("XDG_CONFIG_HOME");
    if (x && *x) {
        snprintf(out, n, "%s/hydralora", x);
    } else {
        char h[2048];
        home_dir(h, sizeof h);
        snprintf(out, n, "%s/.config/hydralora", h);
    }
}

void paths_data_dir(char *out, size_t n) {
    const char *d = getenv("HYDRALORA_DATA");
    if (d && *d) {
        snprintf(out, n, "%s", d);
        return;
    }
    const char *x = getenv("XDG_DATA_HOME");
    if (x && *x) {
        snprintf(out, n, "%s/hydralora", x);
    } else {
        char h[2048];
        home_dir(h, sizeof h);
        snprintf(out, n, "%s/.local/share/hydralora", h);
    }
}

void paths_exe_dir(char *out, size_t n) {
    char buf[4096];
    ssize_t len = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (len <= 0) {
        if (n)
            out[0] = 0;
        return;
    }
    buf[len] = 0;
    char *slash = strrchr(buf, '/');
    if (slash)
        *slash = 0;
    snprintf(out, n, "%s", buf);
}

int paths_mkdirs(const char *path) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    size_t len = strlen(tmp);
    if (len == 0)
        return -1;
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

int paths_exists(const char *path) {
    struct stat st;
    return path && *path && stat(path, &st) == 0;
}

int paths_is_dir(const char *path) {
    struct stat st;
    return path && *path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int paths_write_atomic(const char *path, const char *data, size_t len) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            close(fd);
            unlink(tmp);
            return -1;
        }
        off += (size_t)w;
    }
    /* fsync so that a crash right after rename() cannot leave an empty file behind. */
    if (fsync(fd) != 0 || close(fd) != 0) {
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

char *paths_read_file(const char *path, size_t max_bytes, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        fclose(f);
        return NULL;
    }
    for (;;) {
        if (n == cap) {
            if (cap >= max_bytes)
                break;
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        if (r == 0)
            break;
        n += r;
    }
    fclose(f);
    if (n > max_bytes)
        n = max_bytes;
    buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}

void paths_expand_home(const char *in, char *out, size_t n) {
    if (in[0] == '~' && (in[1] == '/' || in[1] == 0)) {
        char h[2048];
        home_dir(h, sizeof h);
        snprintf(out, n, "%s%s", h, in + 1);
    } else {
        snprintf(out, n, "%s", in);
    }
}

void paths_display(const char *in, char *out, size_t outsz, size_t width, int utf8) {
    char tmp[4096];
    char h[2048];
    home_dir(h, sizeof h);
    size_t hl = strlen(h);
    if (hl > 1 && !strncmp(in, h, hl) && (in[hl] == '/' || in[hl] == 0))
        snprintf(tmp, sizeof tmp, "~%s", in + hl);
    else
        snprintf(tmp, sizeof tmp, "%s", in);
    size_t len = strlen(tmp);
    if (width < 4 || len <= width) {
        snprintf(out, outsz, "%s", tmp);
        return;
    }
    /* keep the tail: the file name matters more than the root */
    const char *ell = utf8 ? "\xe2\x80\xa6" : "...";
    size_t ell_cols = utf8 ? 1 : 3;
    size_t keep = width - ell_cols;
    const char *tail = tmp + len - keep;
    /* do not start in the middle of a UTF-8 sequence */
    while (*tail && ((unsigned char)*tail & 0xC0) == 0x80)
        tail++;
    snprintf(out, outsz, "%s%s", ell, tail);
}

/* mtime of <dir>/adapter_model.safetensors when <dir> holds a complete adapter, else -1. */
static double adapter_mtime(const char *dir) {
    char p[4300];
    struct stat st;
    snprintf(p, sizeof p, "%.4200s/adapter_config.json", dir);
    if (stat(p, &st) != 0)
        return -1;
    snprintf(p, sizeof p, "%.4200s/adapter_model.safetensors", dir);
    if (stat(p, &st) != 0)
        return -1;
    return (double)st.st_mtim.tv_sec + 1e-9 * (double)st.st_mtim.tv_nsec;
}

int paths_run_adapter(const char *run_dir, char *out, size_t n) {
    char a[4200], e[4200];
    snprintf(a, sizeof a, "%.4000s/adapter", run_dir);
    snprintf(e, sizeof e, "%.4000s/export", run_dir);
    double ta = adapter_mtime(a), te = adapter_mtime(e);
    snprintf(out, n, "%s", te > ta ? e : a);
    return ta >= 0 || te >= 0;
}

void paths_absolute(const char *in, char *out, size_t n) {
    char tmp[8192];
    if (!n)
        return;
    if (!in || !*in) {
        out[0] = 0;
        return;
    }
    paths_expand_home(in, tmp, sizeof tmp);
    if (tmp[0] != '/') {
        char cwd[4096];
        if (!getcwd(cwd, sizeof cwd)) {
            snprintf(out, n, "%s", tmp);
            return;
        }
        char joined[8192];
        snprintf(joined, sizeof joined, "%.4095s/%.4000s", cwd, tmp);
        memcpy(tmp, joined, sizeof tmp);
    }
    /* fold the components: w is the end of what is kept */
    char res[8192];
    size_t w = 0;
    const char *p = tmp;
    while (*p) {
        while (*p == '/')
            p++;
        const char *q = p;
        while (*q && *q != '/')
            q++;
        size_t len = (size_t)(q - p);
        if (len == 0 || (len == 1 && p[0] == '.')) {
        } else if (len == 2 && p[0] == '.' && p[1] == '.') {
            while (w > 0 && res[w - 1] != '/')
                w--;
            if (w > 0)
                w--; /* the slash before the dropped component */
        } else if (w + 1 + len < sizeof res) {
            res[w++] = '/';
            memcpy(res + w, p, len);
            w += len;
        }
        p = q;
    }
    if (w == 0)
        res[w++] = '/';
    res[w] = 0;
    snprintf(out, n, "%s", res);
}
