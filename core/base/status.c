#include "core/base/status.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[1024];

const char *hl_status_message(hl_status status) {
    static const char *const messages[] = {
#define HL_X_MSG(name, msg) msg,
        HL_STATUS_TABLE(HL_X_MSG)
#undef HL_X_MSG
    };
    if ((int)status < 0 || status >= HL_STATUS_COUNT)
        return "unknown status";
    return messages[status];
}

hl_status hl_vfail(hl_status status, const char *fmt, va_list ap) {
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    return status;
}

hl_status hl_fail(hl_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    hl_vfail(status, fmt, ap);
    va_end(ap);
    return status;
}

hl_status hl_fail_context(hl_status status, const char *fmt, ...) {
    char prefix[512];
    char old[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    /* Truncation is acceptable for a message; build it piecewise to keep -Wformat-truncation quiet. */
    const char *rest = old[0] ? old : hl_status_message(status);
    size_t n = strlen(prefix);
    memcpy(last_error, prefix, n);
    if (n + 2 < sizeof last_error) {
        last_error[n++] = ':';
        last_error[n++] = ' ';
    }
    size_t room = sizeof last_error - 1 - n;
    size_t len = strlen(rest);
    if (len > room)
        len = room;
    memcpy(last_error + n, rest, len);
    last_error[n + len] = '\0';
    return status;
}

const char *hl_last_error(void) { return last_error; }

void hl_clear_error(void) { last_error[0] = '\0'; }
