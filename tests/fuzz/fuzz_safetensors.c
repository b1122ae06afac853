/* libFuzzer target: the safetensors header parser on arbitrary bytes. Every tensor it
 * accepts must lie inside the buffer: touch its first and last byte. */
#include <stddef.h>
#include <stdint.h>

#include "core/formats/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hl_safetensors *st = NULL;
    if (hl_st_parse(&st, data, size, "fuzz") != HL_OK)
        return 0;
    volatile unsigned sink = 0;
    for (int i = 0; i < hl_st_count(st); i++) {
        const hl_st_tensor *t = hl_st_at(st, i);
        if (t->nbytes) {
            const unsigned char *p = t->data;
            sink += p[0] + p[t->nbytes - 1];
        }
        if (hl_st_find(st, t->name) == NULL)
            __builtin_trap();
        hl_weight w;
        if (hl_st_tensor_weight(t, &w) == HL_OK && t->numel > 0 && t->numel < 4096) {
            float buf[4096];
            hl_st_tensor_to_f32(t, buf);
            sink += buf[0] != 0.0f;
        }
    }
    (void)hl_st_metadata(st, "format");
    hl_st_close(st);
    (void)sink;
    return 0;
}
