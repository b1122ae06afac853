/* libFuzzer target: the token-id list parser (core/text/idlist.c) on arbitrary bytes. Checks the
 * invariants of every successful parse. */
#include <stdint.h>
#include <stdlib.h>

#include "core/text/idlist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hl_idlist l;
    int min_len = size ? data[0] % 3 : 0;
    if (hl_idlist_parse(&l, (const char *)data, size, 512, min_len, 64, "fuzz") == HL_OK) {
        for (int64_t i = 0; i < l.n_ids; i++)
            if (l.ids[i] < 0 || l.ids[i] >= 512)
                abort();
        for (int s = 0; s < l.n_seqs; s++)
            if (l.start[s + 1] - l.start[s] < min_len || l.start[s + 1] - l.start[s] > 64)
                abort();
        if (l.start[l.n_seqs] != l.n_ids)
            abort();
        hl_idlist_free(&l);
    }
    return 0;
}
