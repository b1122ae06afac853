/* libFuzzer target: the Hugging Face tokenizer.json loader (cJSON + BPE vocab/merges), then
 * the tokenizer built from whatever it accepted. */
#include <stddef.h>
#include <stdint.h>

#include "core/model/tokenizer/internal.h"
#include "tests/fuzz/fuzz_tokenizer_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hl_tokenizer *tok = NULL;
    if (tok_load_json(&tok, (const char *)data, size, "fuzz.json") == HL_OK) {
        fuzz_exercise_tokenizer(tok, data, size);
        hl_tokenizer_free(tok);
    }
    return 0;
}
