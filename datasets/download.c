#include "datasets/download.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/base/sha256.h"
#include "datasets/remote.h"

/* ---- small helpers ------------------------------------------------------------------ */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void hl_format_bytes(double v, char *out, size_t size) {
    const char *units[] = {"B", "KB", "MB", "GB", "TB"};
    int u = 0;
    while (v >= 1000.0 && u < 4) {
        v /= 1000.0;
        u++;
    }
    snprintf(out, size, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static long env_long(const char *name, long fallback, long lo, long hi) {
    const char *v = getenv(name);
    if (!v || !*v)
        return fallback;
    char *end = NULL;
    long x = strtol(v, &end, 10);
    if (!end || *end || x < lo || x > hi)
        return fallback;
    return x;
}

void hl_download_opts_init(hl_download_opts *o) {
    memset(o, 0, sizeof *o);
    o->size = -1;
    long t = env_long("HYDRALORA_HTTP_TIMEOUT", 0, 1, 86400);
    o->connect_timeout_s = t ? t : 30;
    o->low_speed_time_s = t ? t : 60;
    o->low_speed_limit = 1;
    o->max_retries = (int)env_long("HYDRALORA_RETRIES", 5, 0, 100);
    o->retry_base_ms = env_long("HYDRALORA_RETRY_BASE_MS", 1000, 0, 3600000);
    o->retry_max_ms = env_long("HYDRALORA_RETRY_MAX_MS", 60000, 0, 3600000);
    o->send_hf_token = 1;
}

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static CURLcode g_curl_init_rc = CURLE_OK;
static void curl_init_once(void) { g_curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

static int cancelled(const hl_download_opts *o) { return o->cancel && atomic_load(o->cancel); }

/* mkdir -p of the directory part of `path`. */
static hl_status make_parent_dirs(const char *path) {
    char buf[4096];
    size_t n = strlen(path);
    if (n >= sizeof buf)
        return hl_fail(HL_ERR_RANGE, "path too long: %s", path);
    memcpy(buf, path, n + 1);
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf)
        return HL_OK;
    *slash = '\0';
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return hl_fail(HL_ERR_IO, "cannot create directory %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return hl_fail(HL_ERR_IO, "cannot create directory %s: %s", buf, strerror(errno));
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
        return hl_fail(HL_ERR_IO, "%s exists and is not a directory", buf);
    return HL_OK;
}

/* Sleep ms milliseconds in short slices so that a cancel request is honoured quickly. */
static int sleep_cancellable(const hl_download_opts *o, long ms) {
    double until = now_s() + (double)ms / 1000.0;
    while (now_s() < until) {
        if (cancelled(o))
            return 1;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return cancelled(o);
}

static long backoff_ms(const hl_download_opts *o, int retry, uint64_t *rng) {
    double d = (double)o->retry_base_ms;
    for (int i = 1; i < retry && d < (double)o->retry_max_ms; i++)
        d *= 2.0;
    if (d > (double)o->retry_max_ms)
        d = (double)o->retry_max_ms;
    /* jitter: uniform in [d/2, d] so that many clients do not retry in lock step */
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    double u = (double)(*rng >> 11) / 9007199254740992.0;
    return (long)(d * (0.5 + 0.5 * u));
}

/* ---- one transfer ------------------------------------------------------------------- */

typedef struct {
    const hl_download_opts *o;
    CURL *curl;
    const char *label;
    /* sink: a file (fd >= 0) or memory */
    int fd;
    char *mem;
    size_t mem_len, mem_cap, mem_max;
    uint64_t offset;  /* bytes already in the file when this attempt started */
    uint64_t written; /* bytes appended in this attempt */
    hl_sha256 sha;    /* running hash of the whole file */
    int is_file_scheme;
    /* response */
    int decided;
    long code;
    int http_error, range_bad, restarted, too_big, disk_error, disk_errno;
    char err_body[256];
    size_t err_body_len;
    int have_content_range;
    uint64_t cr_start;
    /* progress */
    int report_bytes;
    int attempt;
    double t_start, last_cb, rate_t, rate;
    uint64_t rate_done;
    char errbuf[CURL_ERROR_SIZE];
} xfer;

static int hash_prefix(xfer *x) {
    hl_sha256_init(&x->sha);
    if (x->offset == 0)
        return 0;
    unsigned char *buf = malloc(1 << 20);
    if (!buf)
        return -1;
    uint64_t pos = 0;
    while (pos < x->offset) {
        size_t want = (size_t)((x->offset - pos) < (1u << 20) ? (x->offset - pos) : (1u << 20));
        ssize_t got = pread(x->fd, buf, want, (off_t)pos);
        if (got <= 0) {
            free(buf);
            return -1;
        }
        hl_sha256_update(&x->sha, buf, (size_t)got);
        pos += (uint64_t)got;
    }
    free(buf);
    return 0;
}

static int truncate_part(xfer *x) {
    if (x->fd < 0)
        return 0;
    if (ftruncate(x->fd, 0) != 0)
        return -1;
    x->offset = 0;
    x->written = 0;
    hl_sha256_init(&x->sha);
    return 0;
}

static void report(xfer *x, int force, int finished) {
    const hl_download_opts *o = x->o;
    if (!o->progress || !x->report_bytes)
        return;
    double t = now_s();
    if (!force && t - x->last_cb < 0.1)
        return;
    x->last_cb = t;
    uint64_t done = x->offset + x->written;
    if (t - x->rate_t >= 0.5 || x->rate_t == 0) {
        if (x->rate_t > 0 && done >= x->rate_done) {
            double inst = (double)(done - x->rate_done) / (t - x->rate_t);
            x->rate = x->rate > 0 ? 0.7 * x->rate + 0.3 * inst : inst;
        }
        x->rate_t = t;
        x->rate_done = done;
    }
    int64_t total = o->size;
    if (total < 0 && x->decided && !x->http_error) {
        curl_off_t cl = -1;
        if (curl_easy_getinfo(x->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK && cl >= 0)
            total = (int64_t)(x->offset + (uint64_t)cl);
    }
    hl_download_progress p = {
        .label = x->label,
        .done = done,
        .total = total,
        .rate = x->rate,
        .eta = (total >= 0 && x->rate > 0) ? ((double)total - (double)done) / x->rate : -1,
        .elapsed = t - x->t_start,
        .attempt = x->attempt,
        .rows = 0,
        .finished = finished,
    };
    o->progress(o->user, &p);
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud) {
    xfer *x = ud;
    size_t n = size * nitems;
    if (n >= 5 && !strncmp(buf, "HTTP/", 5)) {
        x->have_content_range = 0; /* a new response (after a redirect or 100-continue) */
    } else if (n > 14 && !strncasecmp(buf, "content-range:", 14)) {
        char line[128];
        size_t m = n - 14 < sizeof line - 1 ? n - 14 : sizeof line - 1;
        memcpy(line, buf + 14, m);
        line[m] = '\0';
        unsigned long long start = 0;
        if (sscanf(line, " bytes %llu-", &start) == 1) {
            x->have_content_range = 1;
            x->cr_start = start;
        }
    }
    return n;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ud) {
    xfer *x = ud;
    size_t n = size * nmemb;
    if (!x->decided) {
        x->decided = 1;
        curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &x->code);
        if (x->is_file_scheme)
            x->code = x->offset ? 206 : 200; /* file:// has no status; it honours ranges */
        if (x->code >= 300) {
            x->http_error = 1;
        } else if (x->code == 200 && x->offset > 0) {
            /* The server ignored our Range header and sends the whole file: start over. */
            if (truncate_part(x) != 0) {
                x->disk_error = 1;
                x->disk_errno = errno;
                return 0;
            }
            x->restarted = 1;
        } else if (x->code == 206 && (!x->have_content_range || x->cr_start != x->offset)) {
            x->range_bad = 1; /* a range we did not ask for: never splice it in */
            return 0;
        }
    }
    if (x->http_error) {
        size_t room = sizeof x->err_body - 1 - x->err_body_len;
        size_t take = n < room ? n : room;
        memcpy(x->err_body + x->err_body_len, ptr, take);
        x->err_body_len += take;
        x->err_body[x->err_body_len] = '\0';
        return n;
    }
    if (x->fd < 0) {
        if (x->mem_len + n > x->mem_max) {
            x->too_big = 1;
            return 0;
        }
        if (x->mem_len + n + 1 > x->mem_cap) {
            size_t cap = x->mem_cap ? x->mem_cap : 65536;
            while (cap < x->mem_len + n + 1)
                cap *= 2;
            char *nb = realloc(x->mem, cap);
            if (!nb) {
                x->too_big = 1;
                return 0;
            }
            x->mem = nb;
            x->mem_cap = cap;
        }
        memcpy(x->mem + x->mem_len, ptr, n);
        x->mem_len += n;
        x->mem[x->mem_len] = '\0';
    } else {
        size_t off = 0;
        while (off < n) {
            ssize_t w = pwrite(x->fd, ptr + off, n - off, (off_t)(x->offset + x->written + off));
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                x->disk_error = 1;
                x->disk_errno = errno;
                return 0;
            }
            off += (size_t)w;
        }
        hl_sha256_update(&x->sha, ptr, n);
    }
    x->written += n;
    report(x, 0, 0);
    return n;
}

static int on_xferinfo(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    xfer *x = ud;
    if (cancelled(x->o))
        return 1; /* aborts the transfer with CURLE_ABORTED_BY_CALLBACK */
    report(x, 0, 0);
    return 0;
}

typedef enum { ATT_OK, ATT_RETRY, ATT_FATAL } att_result;

static int retryable_curl(CURLcode rc) {
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
        return 1;
    default:
        return 0;
    }
}

/* One line of the server's error body, for the message (never if it echoes the token). */
static void body_hint(const xfer *x, const char *token, char *out, size_t size) {
    out[0] = '\0';
    if (!x->err_body_len || (token && *token && strstr(x->err_body, token)))
        return;
    char clean[200];
    size_t k = 0;
    for (size_t i = 0; i < x->err_body_len && k + 1 < sizeof clean; i++) {
        unsigned char c = (unsigned char)x->err_body[i];
        if (c == '\n' || c == '\r' || c == '\t')
            c = ' ';
        if (c < 0x20 || c == 0x7f)
            continue;
        clean[k++] = (char)c;
    }
    clean[k] = '\0';
    while (k > 0 && clean[k - 1] == ' ')
        clean[--k] = '\0';
    if (k && clean[0] != '<') /* skip HTML pages */
        snprintf(out, size, " (server says: %.150s)", clean);
}

/* Classify a finished perform. On ATT_RETRY, msg says what went wrong (for the final
 * error if retries run out); on ATT_FATAL the hl_fail message is set and *st holds it. */
static att_result classify(xfer *x, CURLcode rc, const char *shown_url, const char *token, int token_sent,
                           hl_status *st, char *msg, size_t msgsz) {
    const hl_download_opts *o = x->o;
    if (cancelled(o) || rc == CURLE_ABORTED_BY_CALLBACK) {
        *st = hl_fail(HL_ERR_CANCELLED, "download of %s cancelled (partial data kept for resume)", shown_url);
        return ATT_FATAL;
    }
    if (x->disk_error) {
        *st = hl_fail(x->disk_errno == ENOSPC ? HL_ERR_DISK_FULL : HL_ERR_IO, "writing %s: %s", o->dest,
                      strerror(x->disk_errno));
        return ATT_FATAL;
    }
    if (x->too_big) {
        *st = hl_fail(HL_ERR_RANGE, "response from %s is larger than expected (%zu bytes max)", shown_url,
                      x->mem_max);
        return ATT_FATAL;
    }
    if (x->range_bad) {
        if (truncate_part(x) != 0) {
            *st = hl_fail(HL_ERR_IO, "cannot truncate %s.part: %s", o->dest, strerror(errno));
            return ATT_FATAL;
        }
        snprintf(msg, msgsz, "server answered a range request with the wrong range");
        return ATT_RETRY;
    }
    long code = 0;
    curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &code);
    if (x->is_file_scheme)
        code = 0;
    if (code >= 300) {
        char hint[200];
        body_hint(x, token, hint, sizeof hint);
        if (code == 401 || code == 403) {
            char ep[1024];
            hl_hf_endpoint(ep, sizeof ep);
            if (token_sent)
                *st = hl_fail(HL_ERR_HTTP,
                              "HTTP %ld from %s: the Hugging Face token was refused%s. Check that HF_TOKEN (or "
                              "~/.cache/huggingface/token) is valid and that your account accepted the licence "
                              "on the model's page",
                              code, shown_url, hint);
            else if (hl_url_same_origin(shown_url, ep))
                *st = hl_fail(HL_ERR_HTTP,
                              "HTTP %ld from %s: this file needs a Hugging Face token%s. Accept the licence on "
                              "the model's page, create a read token at https://huggingface.co/settings/tokens, "
                              "then set HF_TOKEN=<token> (or run `huggingface-cli login`)",
                              code, shown_url, hint);
            else
                *st = hl_fail(HL_ERR_HTTP,
                              "HTTP %ld from %s: access denied%s. If this is a gated Hugging Face file, set "
                              "HF_TOKEN=<token>; note that the token is only sent to %s (HF_ENDPOINT)",
                              code, shown_url, hint, ep);
            return ATT_FATAL;
        }
        if (code == 404 || code == 410) {
            *st = hl_fail(HL_ERR_NOT_FOUND, "HTTP %ld (not found): %s%s", code, shown_url, hint);
            return ATT_FATAL;
        }
        if (code == 416 && x->offset > 0) {
            if (truncate_part(x) != 0) {
                *st = hl_fail(HL_ERR_IO, "cannot truncate %s.part: %s", o->dest, strerror(errno));
                return ATT_FATAL;
            }
            snprintf(msg, msgsz, "HTTP 416 for a resumed download; restarting from zero");
            return ATT_RETRY;
        }
        if (code == 408 || code == 429 || code >= 500) {
            snprintf(msg, msgsz, "HTTP %ld from %s%s", code, shown_url, hint);
            return ATT_RETRY;
        }
        *st = hl_fail(HL_ERR_HTTP, "HTTP %ld from %s%s", code, shown_url, hint);
        return ATT_FATAL;
    }
    if (rc != CURLE_OK) {
        const char *what = x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);
        if (rc == CURLE_OPERATION_TIMEDOUT)
            snprintf(msg, msgsz, "timed out (%s; limits: connect %lds, < %ld B/s for %lds)", what,
                     o->connect_timeout_s, o->low_speed_limit, o->low_speed_time_s);
        else
            snprintf(msg, msgsz, "%s", what);
        if (retryable_curl(rc))
            return ATT_RETRY;
        *st = hl_fail(HL_ERR_NET, "downloading %s: %s", shown_url, msg);
        return ATT_FATAL;
    }
    if (!x->decided && code == 200 && x->offset > 0 && x->fd >= 0) {
        /* 200 with an empty body to a range request: the file is empty, not what we have */
        if (truncate_part(x) != 0) {
            *st = hl_fail(HL_ERR_IO, "cannot truncate %s.part: %s", o->dest, strerror(errno));
            return ATT_FATAL;
        }
    }
    return ATT_OK;
}

/* Common curl setup for every request of one download. */
static hl_status setup_curl(xfer *x, const char *url, struct curl_slist **headers, char *token, size_t token_size,
                            int *token_sent) {
    const hl_download_opts *o = x->o;
    pthread_once(&g_curl_once, curl_init_once);
    if (g_curl_init_rc != CURLE_OK)
        return hl_fail(HL_ERR_NET, "libcurl failed to initialise: %s", curl_easy_strerror(g_curl_init_rc));
    x->curl = curl_easy_init();
    if (!x->curl)
        return hl_fail(HL_ERR_NOMEM, "libcurl: cannot create a handle");
    CURL *c = x->curl;
    x->is_file_scheme = !strncasecmp(url, "file://", 7);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* safe in threaded programs */
    /* file:// only when the caller asked for a file URL (a mirror on disk); never by redirect */
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, x->is_file_scheme ? "file" : "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    /* Never send credentials to another host after a redirect (this is libcurl's default;
     * spelled out because the HF token depends on it). */
    curl_easy_setopt(c, CURLOPT_UNRESTRICTED_AUTH, 0L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, o->connect_timeout_s > 0 ? o->connect_timeout_s : 30L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, o->low_speed_limit > 0 ? o->low_speed_limit : 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, o->low_speed_time_s > 0 ? o->low_speed_time_s : 60L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "hydralora/0.1");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_xferinfo);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->errbuf);
    *token_sent = 0;
    token[0] = '\0';
    if (o->send_hf_token && !x->is_file_scheme) {
        char ep[1024];
        hl_hf_endpoint(ep, sizeof ep);
        if (hl_url_same_origin(url, ep) && hl_hf_token(token, token_size)) {
            char line[1200];
            int n = snprintf(line, sizeof line, "Authorization: Bearer %s", token);
            if (n > 0 && (size_t)n < sizeof line) {
                *headers = curl_slist_append(*headers, line);
                *token_sent = *headers != NULL;
            }
            memset(line, 0, sizeof line); /* the copy in the slist is freed with it */
        }
    }
    if (*headers)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, *headers);
    return HL_OK;
}

static void reset_response(xfer *x) {
    x->decided = 0;
    x->code = 0;
    x->http_error = x->range_bad = x->restarted = x->too_big = x->disk_error = x->disk_errno = 0;
    x->err_body[0] = '\0';
    x->err_body_len = 0;
    x->have_content_range = 0;
    x->cr_start = 0;
    x->written = 0;
    x->errbuf[0] = '\0';
}

static void cleanup(xfer *x, struct curl_slist *headers, char *token, size_t token_size) {
    if (x->curl)
        curl_easy_cleanup(x->curl);
    x->curl = NULL;
    curl_slist_free_all(headers);
    memset(token, 0, token_size);
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* ---- files -------------------------------------------------------------------------- */

hl_status hl_download_file(const hl_download_opts *o) {
    if (!o || !o->url || !o->dest || !*o->url || !*o->dest)
        return hl_fail(HL_ERR_ARG, "download: url and dest are required");
    if (o->sha256 && *o->sha256 && !hl_sha256_is_hex(o->sha256))
        return hl_fail(HL_ERR_ARG, "expected sha256 must be 64 hex digits, got '%s'", o->sha256);
    char shown[2048];
    hl_url_redact(o->url, shown, sizeof shown);
    char part[4096];
    if (snprintf(part, sizeof part, "%s.part", o->dest) >= (int)sizeof part)
        return hl_fail(HL_ERR_RANGE, "path too long: %s", o->dest);
    HL_TRY(make_parent_dirs(o->dest));

    xfer x;
    memset(&x, 0, sizeof x);
    x.o = o;
    x.fd = -1;
    x.label = o->label ? o->label : base_name(o->dest);
    x.report_bytes = 1;
    x.t_start = now_s();
    char token[1024];
    struct curl_slist *headers = NULL;
    int token_sent = 0;
    hl_status st = setup_curl(&x, o->url, &headers, token, sizeof token, &token_sent);
    if (st != HL_OK) {
        cleanup(&x, headers, token, sizeof token);
        return st;
    }
    x.fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (x.fd < 0) {
        st = hl_fail(HL_ERR_IO, "cannot open %s: %s", part, strerror(errno));
        cleanup(&x, headers, token, sizeof token);
        return st;
    }
    uint64_t rng = (uint64_t)(now_s() * 1e9) ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ull;
    char last[512] = "";
    int ok = 0;
    for (int attempt = 1;; attempt++) {
        x.attempt = attempt;
        reset_response(&x);
        struct stat sb;
        if (fstat(x.fd, &sb) != 0) {
            st = hl_fail(HL_ERR_IO, "cannot stat %s: %s", part, strerror(errno));
            break;
        }
        x.offset = (uint64_t)sb.st_size;
        if (o->size >= 0 && x.offset > (uint64_t)o->size && truncate_part(&x) != 0) {
            st = hl_fail(HL_ERR_IO, "cannot truncate %s: %s", part, strerror(errno));
            break;
        }
        if (hash_prefix(&x) != 0) {
            st = hl_fail(HL_ERR_IO, "cannot read %s: %s", part, strerror(errno));
            break;
        }
        att_result r = ATT_OK;
        /* A .part that already has every expected byte needs no request, only checking. */
        int from_disk = o->size >= 0 && x.offset == (uint64_t)o->size && attempt == 1;
        if (!from_disk) {
            char range[32];
            snprintf(range, sizeof range, "%llu-", (unsigned long long)x.offset);
            curl_easy_setopt(x.curl, CURLOPT_RANGE, x.offset ? range : NULL);
            CURLcode rc = curl_easy_perform(x.curl);
            r = classify(&x, rc, shown, token, token_sent, &st, last, sizeof last);
        }
        if (r == ATT_OK) {
            uint64_t got = x.offset + x.written;
            if (o->size >= 0 && got < (uint64_t)o->size) {
                snprintf(last, sizeof last, "got %llu of %lld bytes", (unsigned long long)got, (long long)o->size);
                r = ATT_RETRY;
            } else if (o->size >= 0 && got > (uint64_t)o->size) {
                unlink(part);
                st = hl_fail(HL_ERR_CHECKSUM, "size mismatch for %s: expected %lld bytes, got %llu (file deleted)",
                             shown, (long long)o->size, (unsigned long long)got);
                break;
            } else {
                uint8_t d[32];
                char hex[65];
                hl_sha256_final(&x.sha, d);
                hl_sha256_to_hex(d, hex);
                if (o->sha256 && *o->sha256 && !hl_sha256_hex_equal(hex, o->sha256) && from_disk) {
                    /* a stale .part from an earlier run (another version?): fetch afresh */
                    if (truncate_part(&x) != 0) {
                        st = hl_fail(HL_ERR_IO, "cannot truncate %s: %s", part, strerror(errno));
                        break;
                    }
                    continue;
                }
                if (o->sha256 && *o->sha256 && !hl_sha256_hex_equal(hex, o->sha256)) {
                    unlink(part);
                    st = hl_fail(HL_ERR_CHECKSUM,
                                 "checksum mismatch for %s: expected sha256 %s, got %s (%llu bytes; file deleted)",
                                 shown, o->sha256, hex, (unsigned long long)got);
                    break;
                }
                if (fsync(x.fd) != 0 && errno != EINVAL) {
                    st = hl_fail(HL_ERR_IO, "cannot flush %s: %s", part, strerror(errno));
                    break;
                }
                ok = 1;
                break;
            }
        }
        if (r == ATT_FATAL)
            break;
        /* ATT_RETRY */
        if (attempt > o->max_retries) {
            st = hl_fail(HL_ERR_NET, "downloading %s failed after %d attempt%s: %s", shown, attempt,
                         attempt == 1 ? "" : "s", last);
            break;
        }
        report(&x, 1, 0);
        if (sleep_cancellable(o, backoff_ms(o, attempt, &rng))) {
            st = hl_fail(HL_ERR_CANCELLED, "download of %s cancelled (partial data kept for resume)", shown);
            break;
        }
    }
    if (!ok) {
        /* Keep a partial file for a later resume, but not an empty one, nor one whose
         * source no longer exists. */
        struct stat sb;
        if (st == HL_ERR_NOT_FOUND || (fstat(x.fd, &sb) == 0 && sb.st_size == 0))
            unlink(part);
    }
    close(x.fd);
    if (ok) {
        if (rename(part, o->dest) != 0) {
            st = hl_fail(HL_ERR_IO, "cannot rename %s to %s: %s", part, o->dest, strerror(errno));
            ok = 0;
        } else {
            st = HL_OK;
            report(&x, 1, 1);
        }
    }
    cleanup(&x, headers, token, sizeof token);
    return ok ? HL_OK : st;
}

/* ---- HF datasets-server rows -------------------------------------------------------- */

/* Percent-encode for a query value (RFC 3986 unreserved bytes pass). */
static int query_escape(const char *s, char *out, size_t size) {
    static const char hex[] = "0123456789ABCDEF";
    size_t k = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '_' || c == '.' || c == '~';
        if (k + (plain ? 1 : 3) >= size)
            return -1;
        if (plain) {
            out[k++] = (char)c;
        } else {
            out[k++] = '%';
            out[k++] = hex[c >> 4];
            out[k++] = hex[c & 15];
        }
    }
    out[k] = '\0';
    return 0;
}

/* Count complete lines of an earlier partial download and cut any half-written last line. */
static hl_status resume_rows(int fd, const char *part, uint64_t *rows) {
    *rows = 0;
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        return hl_fail(HL_ERR_IO, "cannot stat %s: %s", part, strerror(errno));
    uint64_t size = (uint64_t)sb.st_size, pos = 0, keep = 0;
    char *buf = malloc(1 << 20);
    if (!buf)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    while (pos < size) {
        ssize_t got = pread(fd, buf, 1 << 20, (off_t)pos);
        if (got <= 0) {
            free(buf);
            return hl_fail(HL_ERR_IO, "cannot read %s: %s", part, strerror(errno));
        }
        for (ssize_t i = 0; i < got; i++)
            if (buf[i] == '\n') {
                (*rows)++;
                keep = pos + (uint64_t)i + 1;
            }
        pos += (uint64_t)got;
    }
    free(buf);
    if (keep != size && ftruncate(fd, (off_t)keep) != 0)
        return hl_fail(HL_ERR_IO, "cannot truncate %s: %s", part, strerror(errno));
    return HL_OK;
}

static hl_status write_all(int fd, const char *p, size_t n, const char *path) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return hl_fail(errno == ENOSPC ? HL_ERR_DISK_FULL : HL_ERR_IO, "writing %s: %s", path, strerror(errno));
        }
        p += w;
        n -= (size_t)w;
    }
    return HL_OK;
}

/* GET one page into x->mem, with the retry policy. */
static hl_status fetch_page(xfer *x, const char *url, const char *shown, const char *token, int token_sent,
                            uint64_t *rng) {
    const hl_download_opts *o = x->o;
    char last[512] = "";
    hl_status st = HL_OK;
    curl_easy_setopt(x->curl, CURLOPT_URL, url);
    for (int attempt = 1;; attempt++) {
        x->attempt = attempt;
        reset_response(x);
        x->mem_len = 0;
        CURLcode rc = curl_easy_perform(x->curl);
        att_result r = classify(x, rc, shown, token, token_sent, &st, last, sizeof last);
        if (r == ATT_OK)
            return HL_OK;
        if (r == ATT_FATAL)
            return st;
        if (attempt > o->max_retries)
            return hl_fail(HL_ERR_NET, "fetching %s failed after %d attempts: %s", shown, attempt, last);
        if (sleep_cancellable(o, backoff_ms(o, attempt, rng)))
            return hl_fail(HL_ERR_CANCELLED, "download of %s cancelled (rows so far kept for resume)", shown);
    }
}

hl_status hl_download_rows(const hl_download_opts *o, const char *endpoint, const char *dataset,
                           const char *config, const char *split, long max_rows) {
    if (!o || !o->dest || !endpoint || !dataset || !config || !split)
        return hl_fail(HL_ERR_ARG, "rows download: dest, endpoint, dataset, config and split are required");
    char base[2048], q_ds[512], q_cfg[256], q_split[256];
    HL_TRY(hl_remote_resolve(endpoint, base, sizeof base));
    if (query_escape(dataset, q_ds, sizeof q_ds) || query_escape(config, q_cfg, sizeof q_cfg) ||
        query_escape(split, q_split, sizeof q_split))
        return hl_fail(HL_ERR_RANGE, "dataset/config/split names too long");
    char part[4096];
    if (snprintf(part, sizeof part, "%s.part", o->dest) >= (int)sizeof part)
        return hl_fail(HL_ERR_RANGE, "path too long: %s", o->dest);
    HL_TRY(make_parent_dirs(o->dest));

    xfer x;
    memset(&x, 0, sizeof x);
    x.o = o;
    x.fd = -1; /* pages go to memory; rows are appended to the .part by us */
    x.mem_max = (size_t)64 << 20;
    x.label = o->label ? o->label : base_name(o->dest);
    x.t_start = now_s();
    char token[1024];
    struct curl_slist *headers = NULL;
    int token_sent = 0;
    hl_status st = setup_curl(&x, base, &headers, token, sizeof token, &token_sent);
    if (st != HL_OK) {
        cleanup(&x, headers, token, sizeof token);
        return st;
    }
    int fd = open(part, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        st = hl_fail(HL_ERR_IO, "cannot open %s: %s", part, strerror(errno));
        cleanup(&x, headers, token, sizeof token);
        return st;
    }
    uint64_t rows = 0;
    st = resume_rows(fd, part, &rows);
    uint64_t rng = (uint64_t)(now_s() * 1e9) ^ ((uint64_t)getpid() << 32) ^ 0xD1B54A32D192ED03ull;
    int64_t total = -1;
    int page = 100;
    double last_cb = 0, rate = 0, rate_t = now_s();
    uint64_t rate_rows = rows;
    while (st == HL_OK) {
        if (max_rows > 0 && rows >= (uint64_t)max_rows)
            break;
        if (total >= 0 && rows >= (uint64_t)total)
            break;
        long len = page;
        if (max_rows > 0 && (uint64_t)max_rows - rows < (uint64_t)len)
            len = (long)((uint64_t)max_rows - rows);
        char url[4096], shown[4096];
        snprintf(url, sizeof url, "%s%sdataset=%s&config=%s&split=%s&offset=%llu&length=%ld", base,
                 strchr(base, '?') ? "&" : "?", q_ds, q_cfg, q_split, (unsigned long long)rows, len);
        hl_url_redact(url, shown, sizeof shown);
        st = fetch_page(&x, url, shown, token, token_sent, &rng);
        if (st != HL_OK)
            break;
        cJSON *root = cJSON_ParseWithLength(x.mem ? x.mem : "", x.mem_len);
        const cJSON *jrows = cJSON_GetObjectItemCaseSensitive(root, "rows");
        const cJSON *jtotal = cJSON_GetObjectItemCaseSensitive(root, "num_rows_total");
        if (!cJSON_IsObject(root) || !cJSON_IsArray(jrows)) {
            cJSON_Delete(root);
            st = hl_fail(HL_ERR_FORMAT, "unexpected answer from %s: no \"rows\" array (is this a datasets-server "
                                        "rows endpoint?)",
                         shown);
            break;
        }
        if (cJSON_IsNumber(jtotal) && jtotal->valuedouble >= 0)
            total = (int64_t)jtotal->valuedouble;
        if (max_rows > 0 && (total < 0 || total > max_rows))
            total = max_rows;
        /* Truncated cells mean the server cut long values to fit its response size: ask
         * again in smaller pages; a single row that still does not fit cannot be fetched. */
        int truncated = 0;
        const cJSON *r;
        cJSON_ArrayForEach(r, jrows) {
            const cJSON *tc = cJSON_GetObjectItemCaseSensitive(r, "truncated_cells");
            if (cJSON_IsArray(tc) && cJSON_GetArraySize(tc) > 0)
                truncated = 1;
        }
        if (truncated) {
            cJSON_Delete(root);
            if (page == 1) {
                st = hl_fail(HL_ERR_FORMAT,
                             "row %llu of %s is too large for the datasets-server rows API (its cells come back "
                             "truncated); download the data set's files instead",
                             (unsigned long long)rows, dataset);
                break;
            }
            page = page / 10 > 1 ? page / 10 : 1;
            continue;
        }
        size_t n_got = 0;
        cJSON_ArrayForEach(r, jrows) {
            const cJSON *row = cJSON_GetObjectItemCaseSensitive(r, "row");
            if (!cJSON_IsObject(row)) {
                st = hl_fail(HL_ERR_FORMAT, "unexpected answer from %s: a row without a \"row\" object", shown);
                break;
            }
            char *line = cJSON_PrintUnformatted(row);
            if (!line) {
                st = hl_fail(HL_ERR_NOMEM, "out of memory");
                break;
            }
            size_t ln = strlen(line);
            st = write_all(fd, line, ln, part);
            if (st == HL_OK)
                st = write_all(fd, "\n", 1, part);
            free(line);
            if (st != HL_OK)
                break;
            n_got++;
        }
        cJSON_Delete(root);
        if (st != HL_OK)
            break;
        rows += n_got;
        page = 100;
        if (o->progress) {
            double t = now_s();
            if (t - rate_t >= 0.5) {
                double inst = (double)(rows - rate_rows) / (t - rate_t);
                rate = rate > 0 ? 0.7 * rate + 0.3 * inst : inst;
                rate_t = t;
                rate_rows = rows;
            }
            if (t - last_cb >= 0.1) {
                last_cb = t;
                hl_download_progress p = {.label = x.label, .done = rows, .total = total, .rate = rate,
                                          .eta = (total >= 0 && rate > 0) ? ((double)total - (double)rows) / rate : -1,
                                          .elapsed = t - x.t_start, .attempt = x.attempt, .rows = 1};
                o->progress(o->user, &p);
            }
        }
        if (n_got == 0 || (total < 0 && n_got < (size_t)len))
            break; /* past the end (a short page when the server gives no total) */
    }
    if (st == HL_OK && rows == 0)
        st = hl_fail(HL_ERR_FORMAT, "the datasets-server returned no rows for %s (config %s, split %s)", dataset,
                     config, split);
    if (st == HL_OK && fsync(fd) != 0 && errno != EINVAL)
        st = hl_fail(HL_ERR_IO, "cannot flush %s: %s", part, strerror(errno));
    close(fd);
    if (st != HL_OK && rows == 0)
        unlink(part); /* nothing worth resuming */
    if (st == HL_OK && rename(part, o->dest) != 0)
        st = hl_fail(HL_ERR_IO, "cannot rename %s to %s: %s", part, o->dest, strerror(errno));
    if (st == HL_OK && o->progress) {
        hl_download_progress p = {.label = x.label, .done = rows, .total = (int64_t)rows, .rate = rate, .eta = 0,
                                  .elapsed = now_s() - x.t_start, .attempt = x.attempt, .rows = 1, .finished = 1};
        o->progress(o->user, &p);
    }
    free(x.mem);
    cleanup(&x, headers, token, sizeof token);
    return st;
}
