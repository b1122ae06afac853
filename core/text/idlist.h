/* Lists of token-id sequences from text: one sequence per line, ids as decimal integers
 * separated by spaces or tabs (CR before LF is accepted). Used by `hydralora score`.
 * The parser is bounds-checked (the input need not be NUL-terminated) and every error names
 * the line: "ids.txt line 3: token id 600 is outside the vocabulary (0..511)". */
#ifndef HL_IDLIST_H
#define HL_IDLIST_H

#include <stddef.h>
#include <stdint.h>

#include "core/base/status.h"

typedef struct {
    int32_t *ids;   /* all ids back to back */
    int64_t n_ids;
    int64_t *start; /* [n_seqs + 1]: sequence i is ids[start[i] .. start[i+1]) */
    int n_seqs;
} hl_idlist;

/* Parse `len` bytes. Every id must be in [0, vocab); every line must hold between min_len and
 * max_len ids (an empty line is an error unless min_len is 0, then it is an empty sequence).
 * A final line break does not start another line. `label` names the input in errors. */
hl_status hl_idlist_parse(hl_idlist *out, const char *data, size_t len, int vocab, int min_len, int max_len,
                          const char *label);
/* Read a file (up to 1 GiB) and parse it; the label is the path. */
hl_status hl_idlist_load(hl_idlist *out, const char *path, int vocab, int min_len, int max_len);
void hl_idlist_free(hl_idlist *list);

#endif
