#include "datasets/remote.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Splits "scheme://authority/rest": returns pointers into url. The authority excludes
 * any userinfo. Returns 0 if url has no "://". */
typedef struct {
    const char *scheme;
    size_t scheme_len;
    const char *host; /* host[:port] without userinfo */
    size_t host_len;
    const char *rest; /* "/path?query" or "" */
} url_parts;

static int url_split(const char *url, url_parts *p) {
    const char *sep = strstr(url, "://");
    if (!sep || sep == url)
        return 0;
    for (const char *c = url; c < sep; c++)
        if (!isalnum((unsigned char)*c) && *c != '+' && *c != '-' && *c != '.')
            return 0;
    p->scheme = url;
    p->scheme_len = (size_t)(sep - url);
    const char *a = sep + 3;
    const char *end = a + strcspn(a, "/?#");
    const char *at = NULL;
    for (const char *c = a; c < end; c++)
        if (*c == '@')
            at = c;
    if (at)
        a = at + 1;
    p->host = a;
    p->host_len = (size_t)(end - a);
    p->rest = end;
    return 1;
}

void hl_url_redact(const char *url, char *out, size_t size) {
    url_parts p;
    if (!url_split(url, &p)) {
        snprintf(out, size, "%s", url);
        return;
    }
    snprintf(out, size, "%.*s://%.*s%s", (int)p.scheme_len, p.scheme, (int)p.host_len, p.host, p.rest);
}

const char *hl_hf_endpoint(char *buf, size_t size) {
    const char *e = getenv("HF_ENDPOINT");
    snprintf(buf, size, "%s", (e && *e) ? e : "https://huggingface.co");
    size_t n = strlen(buf);
    while (n > 0 && buf[n - 1] == '/')
        buf[--n] = '\0';
    return buf;
}

static int starts_with_ci(const char *s, const char *prefix) {
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

hl_status hl_remote_resolve(const char *url, char *out, size_t size) {
    url_parts p;
    if (!url || !url_split(url, &p))
        return hl_fail(HL_ERR_ARG, "not a URL: '%s'", url ? url : "(null)");
    const char *mirror = getenv("HYDRALORA_MIRROR");
    int n;
    if (mirror && *mirror) {
        if (!starts_with_ci(mirror, "http://") && !starts_with_ci(mirror, "https://") &&
            !starts_with_ci(mirror, "file://"))
            return hl_fail(HL_ERR_ARG, "HYDRALORA_MIRROR must be an http://, https:// or file:// URL, got '%s'",
                           mirror);
        size_t m = strlen(mirror);
        while (m > 0 && mirror[m - 1] == '/')
            m--;
        n = snprintf(out, size, "%.*s/%.*s%s", (int)m, mirror, (int)p.host_len, p.host, p.rest);
    } else if (p.scheme_len == 5 && !strncasecmp(p.scheme, "https", 5) && p.host_len == 14 &&
               !strncasecmp(p.host, "huggingface.co", 14)) {
        char ep[1024];
        hl_hf_endpoint(ep, sizeof ep);
        n = snprintf(out, size, "%s%s", ep, p.rest);
    } else {
        n = snprintf(out, size, "%s", url);
    }
    if (n < 0 || (size_t)n >= size)
        return hl_fail(HL_ERR_RANGE, "URL too long after rewriting: %s", url);
    return HL_OK;
}

static int token_ok(const char *t) {
    if (!*t)
        return 0;
    for (; *t; t++)
        if ((unsigned char)*t <= 0x20 || *t == 0x7f)
            return 0; /* CR/LF/space would break (or inject into) the header */
    return 1;
}

static int read_token_file(const char *path, char *out, size_t size) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t n = fread(out, 1, size - 1, f);
    fclose(f);
    out[n] = '\0';
    /* trim surrounding whitespace (huggingface-cli writes no newline, editors do) */
    size_t a = 0;
    while (a < n && isspace((unsigned char)out[a]))
        a++;
    while (n > a && isspace((unsigned char)out[n - 1]))
        n--;
    memmove(out, out + a, n - a);
    out[n - a] = '\0';
    return token_ok(out);
}

int hl_hf_token(char *out, size_t size) {
    if (size < 2)
        return 0;
    const char *vars[] = {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"};
    for (size_t i = 0; i < 2; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) {
            /* trim like the file case */
            while (isspace((unsigned char)*v))
                v++;
            size_t n = strlen(v);
            while (n > 0 && isspace((unsigned char)v[n - 1]))
                n--;
            if (n == 0 || n >= size)
                continue;
            memcpy(out, v, n);
            out[n] = '\0';
            if (token_ok(out))
                return 1;
        }
    }
    char path[4096];
    const char *v = getenv("HF_TOKEN_PATH");
    if (v && *v && read_token_file(v, out, size))
        return 1;
    if ((v = getenv("HF_HOME")) && *v) {
        snprintf(path, sizeof path, "%s/token", v);
        if (read_token_file(path, out, size))
            return 1;
    }
    if ((v = getenv("XDG_CACHE_HOME")) && *v) {
        snprintf(path, sizeof path, "%s/huggingface/token", v);
        if (read_token_file(path, out, size))
            return 1;
    }
    if ((v = getenv("HOME")) && *v) {
        snprintf(path, sizeof path, "%s/.cache/huggingface/token", v);
        if (read_token_file(path, out, size))
            return 1;
    }
    out[0] = '\0';
    return 0;
}

static int default_port(const char *scheme, size_t len) {
    if (len == 5 && !strncasecmp(scheme, "https", 5))
        return 443;
    if (len == 4 && !strncasecmp(scheme, "http", 4))
        return 80;
    return -1;
}

/* host part and port of "host[:port]" (IPv6 "[::1]:80" handled). */
static void host_port(const url_parts *p, const char **host, size_t *host_len, int *port) {
    const char *h = p->host;
    size_t n = p->host_len;
    *port = default_port(p->scheme, p->scheme_len);
    const char *colon = NULL;
    if (n && h[0] == '[') {
        const char *rb = memchr(h, ']', n);
        if (rb && rb + 1 < h + n && rb[1] == ':')
            colon = rb + 1;
    } else {
        colon = memchr(h, ':', n);
    }
    if (colon) {
        *port = atoi(colon + 1);
        n = (size_t)(colon - h);
    }
    *host = h;
    *host_len = n;
}

int hl_url_same_origin(const char *a, const char *b) {
    url_parts pa, pb;
    if (!a || !b || !url_split(a, &pa) || !url_split(b, &pb))
        return 0;
    if (pa.scheme_len != pb.scheme_len || strncasecmp(pa.scheme, pb.scheme, pa.scheme_len))
        return 0;
    const char *ha, *hb;
    size_t la, lb;
    int porta, portb;
    host_port(&pa, &ha, &la, &porta);
    host_port(&pb, &hb, &lb, &portb);
    return la == lb && !strncasecmp(ha, hb, la) && porta == portb;
}
