/* Writing JSON strings (RFC 8259): the one escaper every JSON/JSONL writer uses.
 * Escapes '"', '\\' and control bytes (\b \f \n \r \t short, others as \u00xx); every
 * other byte, UTF-8 included, is written as it is. */
#ifndef HL_JSONOUT_H
#define HL_JSONOUT_H

#include <stddef.h>
#include <stdio.h>

/* The escaped form of byte c into out (NUL-terminated); returns its length (1..6). */
size_t hl_json_escape_byte(unsigned char c, char out[8]);

/* s (NUL-terminated) as a quoted JSON string. */
void hl_json_write_string(FILE *f, const char *s);
/* n bytes of s escaped, WITHOUT the surrounding quotes (for strings written in pieces). */
void hl_json_write_escaped(FILE *f, const char *s, size_t n);

#endif
