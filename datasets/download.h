/* Downloads with libcurl: progress, resume, retries, timeouts, sha256, atomic rename.
 *
 * hl_download_file(o) fetches o->url into o->dest:
 *   - bytes go to "<dest>.part"; a .part left by an earlier attempt or run is resumed with
 *     an HTTP Range request; a server that answers 200 to it (ignores Range) makes us
 *     truncate and start over, and a 206 whose Content-Range does not start where we asked
 *     is thrown away too;
 *   - connection errors, timeouts, truncated bodies, 408/429 and 5xx are retried (each
 *     retry resumes) with exponential backoff plus jitter: delay_k = min(max, base * 2^(k-1)),
 *     slept for a uniformly random time in [delay_k/2, delay_k];
 *   - 401/403 stop at once with a hint about HF_TOKEN; 404/410 name the URL; other 4xx stop;
 *   - connect timeout, and a low-speed timeout (less than low_speed_limit B/s for
 *     low_speed_time seconds aborts the attempt);
 *   - when size / sha256 are known they are checked; a wrong checksum deletes the .part and
 *     the error says expected vs got;
 *   - only a complete, verified file is renamed onto dest (parent directories are created),
 *     so a partial or wrong file never sits where a complete one is expected;
 *   - *cancel (set from any thread, e.g. a SIGINT handler or the TUI) stops the transfer
 *     within about a second with HL_ERR_CANCELLED, keeping the .part for a later resume.
 * Redirects are followed (HF "resolve" URLs redirect to a CDN), http/https only; the
 * Authorization header is never sent to another host after a redirect (libcurl's rule
 * while CURLOPT_UNRESTRICTED_AUTH is off, which we never turn on). TLS verification is
 * always on; there is no option to disable it. URLs in messages carry no credentials.
 *
 * Environment defaults (for tests and slow links): HYDRALORA_HTTP_TIMEOUT (seconds, connect
 * and low-speed), HYDRALORA_RETRIES, HYDRALORA_RETRY_BASE_MS, HYDRALORA_RETRY_MAX_MS. */
#ifndef HL_DOWNLOAD_H
#define HL_DOWNLOAD_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/base/status.h"

typedef struct {
    const char *label; /* the file being fetched (o->label or the dest name) */
    uint64_t done;     /* bytes (rows for row downloads) on disk, incl. resumed ones */
    int64_t total;     /* -1 when unknown */
    double rate;       /* per second, smoothed over the last seconds */
    double eta;        /* seconds left, -1 when unknown */
    double elapsed;    /* seconds since hl_download_* started */
    int attempt;       /* 1 on the first try */
    int rows;          /* 1: done/total count rows, not bytes */
    int finished;      /* 1 on the last call for this file */
} hl_download_progress;

/* Called from the downloading thread, at most ~10 times a second plus a final call. */
typedef void (*hl_download_progress_fn)(void *user, const hl_download_progress *p);

typedef struct {
    const char *url;    /* what to fetch (already resolved: see hl_remote_resolve) */
    const char *dest;   /* final path */
    const char *sha256; /* expected hex digest or NULL */
    int64_t size;       /* expected size or -1 */
    const char *label;  /* for progress; NULL: dest's base name */
    hl_download_progress_fn progress;
    void *user;
    atomic_int *cancel; /* may be NULL */
    long connect_timeout_s; /* > 0 */
    long low_speed_time_s;  /* > 0 */
    long low_speed_limit;   /* bytes/s */
    int max_retries;        /* retries after the first attempt */
    long retry_base_ms, retry_max_ms;
    int send_hf_token;      /* attach the HF token on requests to the HF endpoint host */
} hl_download_opts;

/* Defaults (connect 30 s, low speed 1 B/s for 60 s, 5 retries, 1 s .. 60 s backoff, token
 * on), then the environment overrides listed above. */
void hl_download_opts_init(hl_download_opts *o);

hl_status hl_download_file(const hl_download_opts *o);

/* Fetch a whole split through the HF datasets-server rows API, page by page
 * (<endpoint>?dataset=D&config=C&split=S&offset=K&length=100), and store the "row" objects
 * as JSON lines in o->dest (via <dest>.part; an interrupted run resumes after the last
 * complete line). max_rows > 0 stops after that many rows. o->sha256/size are ignored.
 * Pages whose cells the server truncated are re-requested in smaller pages; a row that
 * is truncated on its own is an error (the data would be silently cut). */
hl_status hl_download_rows(const hl_download_opts *o, const char *endpoint, const char *dataset,
                           const char *config, const char *split, long max_rows);

/* Human-readable "12.3 MB" style size (decimal units, like the progress bar). */
void hl_format_bytes(double bytes, char *out, size_t size);

#endif
