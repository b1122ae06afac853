/* A tiny test harness: CHECK macros that count, and a closing line
 * "N passed, N failed" that CI reads. Each test program includes this once. */
#ifndef HL_TEST_H
#define HL_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/fileio.h"

static int hl_test_passed, hl_test_failed;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (cond) {                                                             \
            hl_test_passed++;                                                   \
        } else {                                                                \
            hl_test_failed++;                                                   \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
        }                                                                       \
    } while (0)

/* |a - b| <= tol * max(1, |b|) */
#define CHECK_CLOSE(a, b, tol, what)                                            \
    do {                                                                        \
        double hl_a_ = (a), hl_b_ = (b);                                        \
        double hl_s_ = fabs(hl_b_) > 1.0 ? fabs(hl_b_) : 1.0;                   \
        CHECK(fabs(hl_a_ - hl_b_) <= (tol) * hl_s_, "%s: got %.9g expected %.9g", \
              (what), hl_a_, hl_b_);                                            \
    } while (0)

/* Where the read-only shared/ folder is (tests only). */
static inline const char *hl_test_shared_dir(void) {
    const char *s = getenv("HL_SHARED");
    return s ? s : "../shared";
}

/* The whole file, malloc'd and NUL-terminated (*len excludes the NUL); NULL if it cannot be
 * read. void * so byte and text callers both take it without a cast. */
static inline void *hl_test_read_file(const char *path, size_t *len) {
    char *data = NULL;
    size_t n = 0;
    if (hl_file_read_all(path, 0, &data, &n) != HL_OK)
        return NULL;
    *len = n;
    return data;
}

/* rm -rf of a test's own temporary folder; a note on stderr if that fails (not a failure). */
static inline void hl_test_remove_dir(const char *dir) {
    if (hl_remove_tree(dir) != HL_OK)
        fprintf(stderr, "could not remove %s: %s\n", dir, hl_last_error());
}

static inline int hl_test_finish(void) {
    printf("%d passed, %d failed\n", hl_test_passed, hl_test_failed);
    return hl_test_failed ? 1 : 0;
}

#endif
