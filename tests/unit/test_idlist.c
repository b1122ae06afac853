/* The token-id list parser behind `hydralora score`: valid inputs, and every error names its line. */
#include <string.h>

#include "core/text/idlist.h"
#include "hl_test.h"

static hl_status parse(const char *text, hl_idlist *l) {
    return hl_idlist_parse(l, text, strlen(text), 100, 2, 5, "ids.txt");
}

int main(void) {
    hl_idlist l;
    CHECK(parse("1 2 3\n4\t5\r\n  6 7  \n", &l) == HL_OK, "valid: %s", hl_last_error());
    CHECK(l.n_seqs == 3 && l.n_ids == 7 && l.start[1] == 3 && l.start[2] == 5 && l.ids[6] == 7, "three sequences");
    hl_idlist_free(&l);
    CHECK(parse("10 20", &l) == HL_OK && l.n_seqs == 1 && l.ids[1] == 20, "no final line break");
    hl_idlist_free(&l);
    CHECK(parse("", &l) == HL_OK && l.n_seqs == 0, "empty input: no sequences");
    hl_idlist_free(&l);
    struct {
        const char *text, *want;
        hl_status st;
    } bad[] = {
        {"1 2\n1 x 3\n", "ids.txt line 2: 'x' is not a token id", HL_ERR_FORMAT},
        {"1 2\n1 -3\n", "line 2: '-3' is not a token id", HL_ERR_FORMAT},
        {"1 2\n3 4\n5 100\n", "line 3: token id 100 is outside the vocabulary (0..99)", HL_ERR_RANGE},
        {"1 99999999999999999999999\n", "line 1: token id 99999999999999999999999 is outside", HL_ERR_RANGE},
        {"1 2\n\n3 4\n", "line 2: the line is empty", HL_ERR_FORMAT},
        {"1 2\n7\n", "line 2: 1 token id; each line needs at least 2", HL_ERR_FORMAT},
        {"1 2 3 4 5 6\n", "line 1: 6 tokens exceed the model context of 5", HL_ERR_RANGE},
        {"1 2.5\n", "'2.5' is not a token id", HL_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hl_status st = parse(bad[i].text, &l);
        CHECK(st == bad[i].st && strstr(hl_last_error(), bad[i].want), "case %zu: got %d '%s'", i, (int)st,
              hl_last_error());
    }
    /* not NUL-terminated: the parser must stop at len */
    char buf[4] = {'1', ' ', '2', '9'};
    CHECK(hl_idlist_parse(&l, buf, 3, 100, 2, 5, "buf") == HL_OK && l.n_ids == 2 && l.ids[1] == 2,
          "stops at the given length");
    hl_idlist_free(&l);
    CHECK(hl_idlist_load(&l, "/nonexistent/ids.txt", 100, 2, 5) == HL_ERR_NOT_FOUND &&
              strstr(hl_last_error(), "/nonexistent/ids.txt"),
          "missing file named");
    return hl_test_finish();
}
