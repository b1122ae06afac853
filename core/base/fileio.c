/* Small file-system helpers shared by the loaders and writers (see fileio.h). */
#include "core/base/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

hl_status hl_file_read_stream(FILE *f, const char *name, size_t max_bytes, char **data, size_t *len) {
    /* Grow geometrically: works for pipes and stdin, where the size is unknown up front. */
    size_t cap = 4096, n = 0;
    char *b = malloc(cap + 1);
    while (b) {
        size_t k = fread(b + n, 1, cap - n, f);
        n += k;
        if (n < cap)
            break;
        if (max_bytes && cap >= max_bytes) {
            free(b);
            return hl_fail(HL_ERR_FORMAT, "%s is larger than %zu bytes", name, max_bytes);
        }
        cap *= 2;
        char *nb = realloc(b, cap + 1);
        if (!nb) {
            free(b);
            b = NULL;
        } else
            b = nb;
    }
    if (!b)
        return hl_fail(HL_ERR_NOMEM, "out of memory reading %s", name);
    if (ferror(f)) {
        free(b);
        return hl_fail(HL_ERR_IO, "error reading %s", name);
    }
    if (max_bytes && n > max_bytes) {
        free(b);
        return hl_fail(HL_ERR_FORMAT, "%s is larger than %zu bytes", name, max_bytes);
    }
    b[n] = 0;
    *data = b;
    *len = n;
    return HL_OK;
}

hl_status hl_file_read_all(const char *path, size_t max_bytes, char **data, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return hl_fail(errno == ENOENT ? HL_ERR_NOT_FOUND : HL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fclose(f);
        return hl_fail(HL_ERR_IO, "%s is a directory, not a file", path);
    }
    hl_status st = hl_file_read_stream(f, path, max_bytes, data, len);
    fclose(f);
    return st;
}

void hl_path_dirname(char *dir, size_t size, const char *path) {
    snprintf(dir, size, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, size, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
}

hl_status hl_mkdir_p(const char *path) {
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp)
        return hl_fail(HL_ERR_ARG, "bad directory path '%s'", path);
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return hl_fail(errno == ENOSPC ? HL_ERR_DISK_FULL : HL_ERR_IO, "cannot create directory %s: %s", tmp,
                           strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return hl_fail(errno == ENOSPC ? HL_ERR_DISK_FULL : HL_ERR_IO, "cannot create directory %s: %s", tmp,
                       strerror(errno));
    struct stat sb;
    if (stat(tmp, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return hl_fail(HL_ERR_IO, "%s exists and is not a directory", tmp);
    return HL_OK;
}

void hl_fsync_dir(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

void hl_fsync_parent(const char *path) {
    char *dir = strdup(path);
    if (!dir)
        return;
    char *slash = strrchr(dir, '/');
    const char *d = ".";
    if (slash) {
        *slash = 0;
        d = slash == dir ? "/" : dir;
    }
    hl_fsync_dir(d);
    free(dir);
}

static hl_status remove_rec(const char *path, int depth) {
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return errno == ENOENT ? HL_OK : hl_fail(HL_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) {
        if (depth > 16)
            return hl_fail(HL_ERR_IO, "%s: directory tree too deep to remove", path);
        DIR *d = opendir(path);
        if (!d)
            return hl_fail(HL_ERR_IO, "cannot open directory %s: %s", path, strerror(errno));
        struct dirent *de;
        hl_status st = HL_OK;
        while ((de = readdir(d)) && st == HL_OK) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            char sub[4096];
            if ((size_t)snprintf(sub, sizeof sub, "%s/%s", path, de->d_name) >= sizeof sub) {
                st = hl_fail(HL_ERR_IO, "path too long under %s", path);
                break;
            }
            st = remove_rec(sub, depth + 1);
        }
        closedir(d);
        if (st)
            return st;
        if (rmdir(path) != 0)
            return hl_fail(HL_ERR_IO, "cannot remove directory %s: %s", path, strerror(errno));
        return HL_OK;
    }
    if (unlink(path) != 0)
        return hl_fail(HL_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
    return HL_OK;
}

hl_status hl_remove_tree(const char *path) {
    if (!path || !path[0] || !strcmp(path, "/"))
        return hl_fail(HL_ERR_ARG, "refusing to remove '%s'", path ? path : "(null)");
    struct stat sb;
    if (lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode))
        return hl_fail(HL_ERR_ARG, "refusing to remove through the symlink %s", path);
    return remove_rec(path, 0);
}

