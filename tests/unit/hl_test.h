/* A tiny test harness: CHECK macros that count, and a closing line
 * "N passed, N failed" that CI reads. Each test program includes this once. */
#ifndef HL_TEST_H
#define HL_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static inline int hl_test_finish(void) {
    printf("%d passed, %d failed\n", hl_test_passed, hl_test_failed);
    return hl_test_failed ? 1 : 0;
}

#endif
