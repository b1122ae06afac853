/* libFuzzer target: the clustering text reader (JSON lines / JSON array / BBH object) and
 * the TF-IDF tokenizer on whatever it yields. The first byte picks the field list so that
 * both the default fields and an explicit list are exercised. */
#include <stddef.h>
#include <stdint.h>

#include "core/analysis/cluster.h"

static void count_token(void *user, const char *tok, int len) {
    (void)tok;
    *(int64_t *)user += len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    static const char *const field_lists[] = {NULL, "instruction,input", "text", "question, prompt ,,text", "input"};
    const char *fields = field_lists[data[0] % 5];
    hl_text_set t;
    /* copy without a terminator: the parser must respect `len` */
    if (hl_text_set_parse((const char *)data + 1, size - 1, fields, "fuzz", &t) == HL_OK) {
        int64_t total = 0;
        for (int64_t i = 0; i < t.n; i++)
            hl_tfidf_tokenize(t.text[i], 1, count_token, &total);
        if (t.n >= 2 && t.n <= 64) {
            hl_tfidf tf;
            hl_tfidf_options o = hl_tfidf_defaults();
            if (hl_tfidf_fit_transform((const char *const *)t.text, t.n, &o, &tf, NULL, NULL) == HL_OK)
                hl_tfidf_free(&tf);
        }
        hl_text_set_free(&t);
    }
    return 0;
}
