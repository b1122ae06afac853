/* Joining names that come from outside (catalogs, servers, data files) onto a root
 * directory without ever leaving it. */
#ifndef HL_SAFEPATH_H
#define HL_SAFEPATH_H

#include <stddef.h>

#include "core/base/status.h"

/* 1 if `name` is a safe relative path: non-empty, not absolute, no "." or ".." component,
 * no empty component ("a//b"), no backslash, no control byte. */
int hl_path_is_safe_relative(const char *name);

/* out = root + "/" + name, after checking name with hl_path_is_safe_relative.
 * HL_ERR_ARG (with a message naming `name`) if unsafe, HL_ERR_RANGE if it does not fit. */
hl_status hl_path_join_safe(char *out, size_t out_size, const char *root, const char *name);

#endif
