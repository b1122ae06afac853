#include "cli/progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

double hl_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void hl_progress_begin(hl_progress *p, const char *label) {
    p->label = label;
    p->start_time = hl_now_seconds();
    p->last_draw = 0;
    p->is_tty = isatty(2);
    p->drawn = 0;
    p->rate_started = 0;
}

static void format_amount(char *buf, size_t size, double v, const char *unit) {
    if (unit[0] == 'B' && unit[1] == '\0') {
        const char *units[] = {"B", "KB", "MB", "GB", "TB"};
        int u = 0;
        while (v >= 1000.0 && u < 4) {
            v /= 1000.0;
            u++;
        }
        snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", v, units[u]);
    } else {
        snprintf(buf, size, "%.0f %s", v, unit);
    }
}

static void format_duration(char *buf, size_t size, double s) {
    if (s < 0 || s > 1e8) {
        snprintf(buf, size, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, size, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else
        snprintf(buf, size, "%02ld:%02ld", t / 60, t % 60);
}

void hl_progress_update(hl_progress *p, double done, double total, const char *unit, const char *extra, int force) {
    double now = hl_now_seconds();
    if (!p->rate_started) {
        p->rate_started = 1;
        p->rate_t0 = now;
        p->rate_done0 = done;
    }
    double interval = p->is_tty ? 0.1 : 5.0;
    if (!force && p->drawn && now - p->last_draw < interval)
        return;
    p->last_draw = now;
    p->drawn = 1;
    /* A rate over a few milliseconds (the first chunk of a download arrives right after the
     * start) is noise: "150 MB/s, ETA 00:00" at 8%. Show none until a second has passed. */
    double elapsed = now - p->rate_t0;
    double rate = elapsed >= 1.0 ? (done - p->rate_done0) / elapsed : 0;
    char d[32], t[32], r[40], eta[24];
    format_amount(d, sizeof d, done, unit);
    if (rate > 0)
        format_amount(r, sizeof r, rate, unit);
    else
        snprintf(r, sizeof r, "-- %s", unit);
    format_duration(eta, sizeof eta, done >= total && total > 0 ? 0 : (total > 0 && rate > 0) ? (total - done) / rate : -1);
    char bar[32];
    int width = 24;
    if (total > 0) {
        int fill = (int)(width * (done / total));
        if (fill > width)
            fill = width;
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '-';
        bar[width] = '\0';
        format_amount(t, sizeof t, total, unit);
        fprintf(stderr, "%s%s [%s] %5.1f%% %s/%s  %s/s  ETA %s%s%s%s", p->is_tty ? "\r" : "", p->label, bar,
                100.0 * done / total, d, t, r, eta, extra ? "  " : "", extra ? extra : "", p->is_tty ? "\033[K" : "\n");
    } else {
        fprintf(stderr, "%s%s %s  %s/s%s%s%s", p->is_tty ? "\r" : "", p->label, d, r, extra ? "  " : "",
                extra ? extra : "", p->is_tty ? "\033[K" : "\n");
    }
    fflush(stderr);
}

void hl_progress_end(hl_progress *p) {
    if (p->is_tty && p->drawn)
        fputc('\n', stderr);
    fflush(stderr);
}
