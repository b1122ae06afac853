/* libFuzzer target: the llama2.c tokenizer.bin parser and the format detection of
 * hl_tokenizer_load_buffer, then the tokenizer built from whatever they accepted. */
#include <stddef.h>
#include <stdint.h>

#include "core/model/tokenizer/internal.h"
#include "tests/fuzz/fuzz_tokenizer_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hl_tokenizer *tok = NULL;
    if (tok_load_llama2c(&tok, data, size, "fuzz.bin") == HL_OK) {
        fuzz_exercise_tokenizer(tok, data, size);
        hl_tokenizer_free(tok);
    }
    if (hl_tokenizer_load_buffer(&tok, data, size, "fuzz") == HL_OK) {
        fuzz_exercise_tokenizer(tok, data, size);
        hl_tokenizer_free(tok);
    }
    return 0;
}
