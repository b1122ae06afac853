/* Where a catalog URL is really fetched from, and the Hugging Face token.
 *
 * URL rewriting (hl_remote_resolve), in this order:
 *   1. HYDRALORA_MIRROR=M (http://, https:// or file:// URL; trailing '/' ignored):
 *        <scheme>://<host>[:port]/<path>[?query]  ->  M/<host>[:port]/<path>[?query]
 *      e.g. M=http://127.0.0.1:8000/mirror and
 *        https://raw.githubusercontent.com/openai/grade-school-math/3101c7d/grade_school_math/data/test.jsonl
 *      -> http://127.0.0.1:8000/mirror/raw.githubusercontent.com/openai/grade-school-math/3101c7d/grade_school_math/data/test.jsonl
 *      Every catalog URL is rewritten (GitHub, Hugging Face, the datasets-server), so a
 *      directory tree laid out as <host>/<path> serves an air-gapped machine.
 *   2. otherwise, for URLs on https://huggingface.co: HF_ENDPOINT (default
 *      https://huggingface.co) replaces the scheme and host, as huggingface_hub does.
 *   3. otherwise the URL is used as is.
 *
 * The Hugging Face token: HF_TOKEN, else HUGGING_FACE_HUB_TOKEN, else the file
 * $HF_TOKEN_PATH, else $HF_HOME/token, else $XDG_CACHE_HOME/huggingface/token, else
 * ~/.cache/huggingface/token (huggingface_hub's order). It is sent only as
 * "Authorization: Bearer ..." on requests whose scheme://host:port equals the HF endpoint's,
 * never after a redirect to another host, and it is never written anywhere. */
#ifndef HL_REMOTE_H
#define HL_REMOTE_H

#include <stddef.h>

#include "core/base/status.h"

hl_status hl_remote_resolve(const char *url, char *out, size_t size);

/* The HF endpoint without a trailing '/': $HF_ENDPOINT or https://huggingface.co. */
const char *hl_hf_endpoint(char *buf, size_t size);

/* Copies the token into out (NUL-terminated) and returns 1, or returns 0 when there is none
 * (or it contains bytes that cannot go into an HTTP header). */
int hl_hf_token(char *out, size_t size);

/* 1 if both URLs have the same scheme, host and port (default ports filled in). */
int hl_url_same_origin(const char *a, const char *b);

/* Copy of url with any "user:password@" removed, for messages. */
void hl_url_redact(const char *url, char *out, size_t size);

#endif
