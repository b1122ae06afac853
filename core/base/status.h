/* Status codes shared by every library in hydralora.
 *
 * Library functions return hl_status (HL_OK == 0) and never print or exit. On failure
 * they record a human-readable detail with a hint in a thread-local buffer via
 * hl_fail(); the caller (CLI or TUI) shows hl_last_error(). */
#ifndef HL_STATUS_H
#define HL_STATUS_H

#include <stdarg.h>

/* X-macro table: name, short message. */
#define HL_STATUS_TABLE(X)                                   \
    X(HL_OK, "ok")                                           \
    X(HL_ERR_ARG, "invalid argument")                        \
    X(HL_ERR_IO, "input/output error")                       \
    X(HL_ERR_NOT_FOUND, "not found")                         \
    X(HL_ERR_FORMAT, "malformed or unsupported file format")  \
    X(HL_ERR_SHAPE, "tensor shape mismatch")                 \
    X(HL_ERR_NOMEM, "out of memory")                         \
    X(HL_ERR_RANGE, "value out of range")                    \
    X(HL_ERR_NET, "network error")                           \
    X(HL_ERR_HTTP, "HTTP error")                             \
    X(HL_ERR_CHECKSUM, "checksum mismatch")                  \
    X(HL_ERR_CANCELLED, "cancelled")                         \
    X(HL_ERR_NUMERIC, "numerical error (NaN or inf)")        \
    X(HL_ERR_STATE, "operation not allowed in this state")   \
    X(HL_ERR_DISK_FULL, "no space left on device")           \
    X(HL_ERR_INTERNAL, "internal error")

typedef enum {
#define HL_X_ENUM(name, msg) name,
    HL_STATUS_TABLE(HL_X_ENUM)
#undef HL_X_ENUM
    HL_STATUS_COUNT
} hl_status;

/* Short fixed message for a code ("tensor shape mismatch"). */
const char *hl_status_message(hl_status status);

/* Record a detail message for the current thread and return `status` unchanged,
 * so callers can write `return hl_fail(HL_ERR_IO, "cannot open %s: %s", path, strerror(errno));`. */
hl_status hl_fail(hl_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
hl_status hl_vfail(hl_status status, const char *fmt, va_list ap);

/* Prefix the current detail with more context: "loading model: <old detail>". */
hl_status hl_fail_context(hl_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The detail recorded by the last hl_fail on this thread ("" if none). */
const char *hl_last_error(void);
void hl_clear_error(void);

#define HL_TRY(expr)                         \
    do {                                     \
        hl_status hl_try_status_ = (expr);   \
        if (hl_try_status_ != HL_OK)         \
            return hl_try_status_;           \
    } while (0)

#endif
