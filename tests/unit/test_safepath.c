#include "datasets/safepath.h"
#include "tests/unit/hl_test.h"

int main(void) {
    const char *good[] = {"a", "a/b.json", "bbh/data/snarks.json", "x..y", ".hidden", "a/.b"};
    const char *bad[] = {"", "/etc/passwd", "..", "../x", "a/../../x", "a/..", "./a", "a//b", "a/", "a\\b", "a\nb"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        CHECK(hl_path_is_safe_relative(good[i]), "'%s' should be safe", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK(!hl_path_is_safe_relative(bad[i]), "'%s' should be rejected", bad[i]);
    char out[32];
    CHECK(hl_path_join_safe(out, sizeof out, "/data", "gsm8k/test.jsonl") == HL_OK, "join");
    CHECK(!strcmp(out, "/data/gsm8k/test.jsonl"), "joined: %s", out);
    CHECK(hl_path_join_safe(out, sizeof out, "/data", "../x") == HL_ERR_ARG, "traversal refused");
    CHECK(hl_path_join_safe(out, 8, "/data", "long/name") == HL_ERR_RANGE, "overflow refused");
    return hl_test_finish();
}
