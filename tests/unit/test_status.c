#include <string.h>

#include "core/base/status.h"
#include "core/base/tensor.h"
#include "tests/unit/hl_test.h"

static hl_status inner(void) { return hl_fail(HL_ERR_SHAPE, "tensor %s expected [%d, %d]", "wq", 64, 64); }

int main(void) {
    CHECK(inner() == HL_ERR_SHAPE, "status passes through");
    CHECK(!strcmp(hl_last_error(), "tensor wq expected [64, 64]"), "detail kept: %s", hl_last_error());
    hl_fail_context(HL_ERR_SHAPE, "loading %s", "model");
    CHECK(!strcmp(hl_last_error(), "loading model: tensor wq expected [64, 64]"), "context prefixed: %s", hl_last_error());
    CHECK(!strcmp(hl_status_message(HL_ERR_NOMEM), "out of memory"), "message table");
    hl_clear_error();
    CHECK(hl_last_error()[0] == '\0', "cleared");

    /* f16 and bf16 round trips against values with known encodings (IEEE 754). */
    CHECK(hl_f32_to_f16(1.0f) == 0x3c00, "f16(1.0)");
    CHECK(hl_f32_to_f16(-2.0f) == 0xc000, "f16(-2.0)");
    CHECK(hl_f32_to_f16(65504.0f) == 0x7bff, "f16 max");
    CHECK(hl_f32_to_f16(1e6f) == 0x7c00, "f16 overflow to inf");
    CHECK(hl_f32_to_f16(5.9604645e-08f) == 0x0001, "f16 smallest subnormal");
    CHECK(hl_f16_to_f32(0x0001) == 5.9604645e-08f, "f16 subnormal decode");
    CHECK(hl_f16_to_f32(0x3555) == 0.333251953125f, "f16 1/3 decode");
    CHECK(hl_f32_to_bf16(1.0f) == 0x3f80, "bf16(1.0)");
    CHECK(hl_bf16_to_f32(0x4049) == 3.140625f, "bf16 pi decode");
    CHECK(hl_f32_to_bf16(3.14159265f) == 0x4049, "bf16 pi rounds to nearest");
    int exact = 1;
    for (uint32_t h = 0; h < 0x7c00; h++) /* every finite positive f16 survives a round trip */
        if (hl_f32_to_f16(hl_f16_to_f32((uint16_t)h)) != h)
            exact = 0;
    CHECK(exact, "f16 round trip over all finite values");
    return hl_test_finish();
}
