#include "core/base/mapped_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static hl_status open_error(const char *path, int err) {
    if (err == ENOENT || err == ENOTDIR)
        return hl_fail(HL_ERR_NOT_FOUND, "%s: no such file", path);
    if (err == EACCES || err == EPERM)
        return hl_fail(HL_ERR_IO, "%s: permission denied (check the file's read permission)", path);
    return hl_fail(HL_ERR_IO, "%s: cannot open: %s", path, strerror(err));
}

hl_status hl_mapped_file_open(hl_mapped_file *mf, const char *path) {
    memset(mf, 0, sizeof *mf);
    if (!path || !*path)
        return hl_fail(HL_ERR_ARG, "empty file path");
    if (strlen(path) >= sizeof mf->path)
        return hl_fail(HL_ERR_ARG, "file path too long (%zu bytes)", strlen(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return open_error(path, errno);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return hl_fail(HL_ERR_IO, "%s: cannot stat: %s", path, strerror(err));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return hl_fail(HL_ERR_IO, "%s: is a directory, expected a file", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return hl_fail(HL_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX) {
        close(fd);
        return hl_fail(HL_ERR_RANGE, "%s: file too large to map", path);
    }
    size_t size = (size_t)st.st_size;
    void *p = NULL;
    if (size > 0) {
        p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int err = errno;
            close(fd);
            return hl_fail(err == ENOMEM ? HL_ERR_NOMEM : HL_ERR_IO, "%s: cannot mmap %zu bytes: %s", path, size,
                           strerror(err));
        }
    }
    close(fd); /* the mapping keeps the file alive */
    mf->data = p;
    mf->size = size;
    snprintf(mf->path, sizeof mf->path, "%s", path);
    return HL_OK;
}

void hl_mapped_file_close(hl_mapped_file *mf) {
    if (!mf)
        return;
    if (mf->data && mf->size)
        munmap((void *)mf->data, mf->size);
    memset(mf, 0, sizeof *mf);
}

void hl_mapped_file_advise_willneed(const hl_mapped_file *mf) {
    if (mf && mf->data && mf->size)
        madvise((void *)mf->data, mf->size, MADV_WILLNEED);
}
