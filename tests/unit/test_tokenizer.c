/* Tokenizer unit tests. Expected values come from outside our code: hand-worked examples of
 * SentencePiece's BPE rule on tiny vocabularies, the golden ids of docs/file-formats.md §7.1 (the
 * stories260K story), the published LLaMA-2 ids of "Hello world" / "I believe the meaning of
 * life is", and the facts in docs/file-formats.md §2/§3. (The id-for-id comparison with SentencePiece
 * over real data is tests/oracle/test_tokenizer_oracle.py.) */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/model/tokenizer/tokenizer.h"
#include "tests/unit/hl_test.h"
#include "tests/unit/hl_stories_golden.h"

#define WS "\xE2\x96\x81"

static int ids_equal(const int32_t *a, size_t n, const int32_t *b, size_t m) {
    return n == m && (n == 0 || !memcmp(a, b, n * sizeof *a));
}

static void print_ids(const char *label, const int32_t *a, size_t n) {
    fprintf(stderr, "  %s:", label);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %d", (int)a[i]);
    fputc('\n', stderr);
}

static void expect_encode(const hl_tokenizer *tok, const char *text, int bos, const int32_t *want, size_t n_want) {
    int32_t *ids = NULL;
    size_t n = 0;
    hl_status st = hl_tokenizer_encode(tok, text, strlen(text), bos, &ids, &n);
    CHECK(st == HL_OK, "encode '%s': %s", text, hl_last_error());
    int ok = ids_equal(ids, n, want, n_want);
    CHECK(ok, "encode '%.60s' gives the expected ids", text);
    if (!ok) {
        print_ids("got ", ids, n);
        print_ids("want", want, n_want);
    }
    free(ids);
}

static void expect_decode(const hl_tokenizer *tok, const int32_t *ids, size_t n, const char *want) {
    char *text = NULL;
    size_t len = 0;
    hl_status st = hl_tokenizer_decode(tok, ids, n, &text, &len);
    CHECK(st == HL_OK && text && len == strlen(want) && !memcmp(text, want, len), "decode: got '%s' want '%s' (%s)",
          text ? text : "(null)", want, hl_last_error());
    free(text);
}

#define ENC(tok, text, bos, ...)                                                           \
    do {                                                                                   \
        const int32_t want_[] = {__VA_ARGS__};                                             \
        expect_encode(tok, text, bos, want_, sizeof want_ / sizeof want_[0]);              \
    } while (0)

/* A hand-made vocabulary without byte fallback; every expected result below is worked out
 * by hand from SentencePiece's rule (merge the best-scoring adjacent pair, leftmost on ties;
 * a run of unknown characters becomes one <unk>). */
static void test_tiny_vocab(void) {
    const char *pieces[] = {"<unk>", "<s>", "</s>", WS, "a", "b", "c", WS "a", "ab", WS "ab", "bc"};
    const float scores[] = {0, 0, 0, -5, -6, -7, -8, -1, -2, -3, -0.5f};
    hl_tokenizer *tok = NULL;
    CHECK(hl_tokenizer_from_vocab(&tok, 11, pieces, scores, NULL, 0, 1, 2, 1, 0) == HL_OK, "from_vocab: %s",
          hl_last_error());
    if (!tok)
        return;
    CHECK(hl_tokenizer_vocab_size(tok) == 11 && hl_tokenizer_bos_id(tok) == 1 && hl_tokenizer_eos_id(tok) == 2 &&
              hl_tokenizer_unk_id(tok) == 0,
          "special ids");
    CHECK(hl_tokenizer_piece_type(tok, 0) == HL_PIECE_UNKNOWN && hl_tokenizer_piece_type(tok, 1) == HL_PIECE_CONTROL &&
              hl_tokenizer_piece_type(tok, 7) == HL_PIECE_NORMAL,
          "inferred types");
    ENC(tok, "abc", 0, 7, 10);     /* ▁ a b c -> bc (-0.5) -> ▁a (-1); "▁abc" is no piece */
    ENC(tok, "ab", 1, 1, 9);       /* ▁ a b -> ▁a -> ▁ab */
    ENC(tok, "xyz", 0, 3, 0);      /* unknown run -> one <unk> */
    ENC(tok, "ax b", 0, 7, 0, 3, 5);
    ENC(tok, "xx yy", 0, 3, 0, 3, 0);
    ENC(tok, "<s>", 0, 3, 0);      /* control pieces never come from text */
    int32_t empty_bos[] = {1};
    expect_encode(tok, "", 1, empty_bos, 1);
    expect_encode(tok, "", 0, NULL, 0);
    expect_decode(tok, (const int32_t[]){7, 0, 3, 5}, 4, "a \xE2\x81\x87  b");
    expect_decode(tok, (const int32_t[]){1, 9, 2}, 3, "ab");
    expect_decode(tok, (const int32_t[]){3, 3, 4}, 3, " a"); /* only the first ▁ is the dummy prefix */
    int32_t bad[] = {1, 11};
    char *text = NULL;
    size_t len;
    CHECK(hl_tokenizer_decode(tok, bad, 2, &text, &len) == HL_ERR_RANGE && !text, "id 11 is out of range");
    CHECK(strstr(hl_last_error(), "11") != NULL, "message names the id: %s", hl_last_error());
    char buf[32];
    CHECK(hl_tokenizer_decode_piece(tok, 1, 9, buf, sizeof buf) == 2 && !strcmp(buf, "ab"), "stream after BOS: '%s'",
          buf);
    CHECK(hl_tokenizer_decode_piece(tok, 4, 9, buf, sizeof buf) == 3 && !strcmp(buf, " ab"), "stream mid-text: '%s'",
          buf);
    CHECK(hl_tokenizer_decode_piece(tok, 4, 2, buf, sizeof buf) == 0, "EOS streams nothing");
    CHECK(hl_tokenizer_piece_to_id(tok, WS "ab") == 9 && hl_tokenizer_piece_to_id(tok, "zz") == -1, "piece_to_id");
    CHECK(hl_tokenizer_check_vocab(tok, 11) == HL_OK, "check_vocab equal");
    CHECK(hl_tokenizer_check_vocab(tok, 10) == HL_ERR_SHAPE, "check_vocab: more pieces than the model has");
    hl_tokenizer_free(tok);

    /* ties go to the leftmost pair: ▁ a b c with ab and bc both -1 -> ▁ ab c */
    const char *p2[] = {"<unk>", WS, "a", "b", "c", "ab", "bc"};
    const float s2[] = {0, -3, -3, -3, -3, -1, -1};
    CHECK(hl_tokenizer_from_vocab(&tok, 7, p2, s2, NULL, 0, -1, -1, 1, 0) == HL_OK, "from_vocab 2");
    if (tok) {
        ENC(tok, "abc", 0, 1, 5, 4);
        ENC(tok, "bcab", 0, 1, 6, 5);
        CHECK(hl_tokenizer_encode(tok, "a", 1, 1, &(int32_t *){NULL}, &(size_t){0}) == HL_ERR_ARG,
              "BOS requested but none in the vocabulary");
        hl_tokenizer_free(tok);
    }

    /* explicit types: UNUSED pieces are split back into the pair that formed them,
     * USER_DEFINED pieces match first (longest) and never merge */
    const char *p3[] = {"<unk>", "<s>", "</s>", WS, "a", "b", "c", WS "a", "ab", WS "ab", "bc", "ca"};
    const float s3[] = {0, 0, 0, -5, -6, -7, -8, -1, -2, -3, -0.5f, 0};
    const int32_t t3[] = {HL_PIECE_UNKNOWN, HL_PIECE_CONTROL, HL_PIECE_CONTROL, 1, 1, 1, 1, 1, HL_PIECE_UNUSED, 1, 1,
                          HL_PIECE_NORMAL};
    CHECK(hl_tokenizer_from_vocab(&tok, 12, p3, s3, t3, 0, 1, 2, 1, 0) == HL_OK, "from_vocab 3");
    if (tok) {
        ENC(tok, "cab", 0, 3, 11, 5); /* "ca" is a normal piece here: ▁ c a b -> ca (0) -> ▁ ca b */
        hl_tokenizer_free(tok);
    }
    int32_t t4[12];
    memcpy(t4, t3, sizeof t4);
    t4[11] = HL_PIECE_NORMAL;
    t4[8] = HL_PIECE_UNUSED;
    const float s4[] = {0, 0, 0, -5, -6, -7, -8, -1, -2, -3, -0.5f, -9};
    CHECK(hl_tokenizer_from_vocab(&tok, 12, p3, s4, t4, 0, 1, 2, 1, 0) == HL_OK, "from_vocab 4");
    if (tok) {
        ENC(tok, "cab", 0, 3, 6, 4, 5); /* ▁ c a b -> ab (unused) -> resegmented into a b */
        hl_tokenizer_free(tok);
    }
    t4[11] = HL_PIECE_USER_DEFINED;
    CHECK(hl_tokenizer_from_vocab(&tok, 12, p3, s4, t4, 0, 1, 2, 1, 0) == HL_OK, "from_vocab 5");
    if (tok) {
        ENC(tok, "cab", 0, 3, 11, 5); /* ▁ [ca] b: the user-defined piece is frozen */
        hl_tokenizer_free(tok);
    }
}

static void test_byte_fallback_vocab(void) {
    /* <unk> <s> </s> <0x00>..<0xFF> ▁ h i ▁h ▁hi */
    const char *pieces[259 + 5];
    char names[256][8];
    pieces[0] = "<unk>", pieces[1] = "<s>", pieces[2] = "</s>";
    for (int b = 0; b < 256; b++) {
        snprintf(names[b], sizeof names[b], "<0x%02X>", b);
        pieces[3 + b] = names[b];
    }
    pieces[259] = WS, pieces[260] = "h", pieces[261] = "i", pieces[262] = WS "h", pieces[263] = WS "hi";
    float scores[264] = {0};
    scores[262] = -1, scores[263] = -2, scores[259] = -10, scores[260] = -11, scores[261] = -12;
    hl_tokenizer *tok = NULL;
    CHECK(hl_tokenizer_from_vocab(&tok, 264, pieces, scores, NULL, 0, 1, 2, 1, 1) == HL_OK, "byte vocab: %s",
          hl_last_error());
    if (!tok)
        return;
    CHECK(hl_tokenizer_piece_type(tok, 3 + 0x41) == HL_PIECE_BYTE, "<0x41> inferred as a byte piece");
    ENC(tok, "hi", 1, 1, 263);
    ENC(tok, "hi\n", 0, 263, 3 + 0x0A);
    ENC(tok, "h\xC3\xA9", 0, 262, 3 + 0xC3, 3 + 0xA9);           /* é is not a piece: its UTF-8 bytes */
    ENC(tok, "\xFF", 0, 259, 3 + 0xEF, 3 + 0xBF, 3 + 0xBD);     /* invalid byte -> U+FFFD -> its bytes */
    ENC(tok, "<0x41>", 0, 259, 3 + '<', 3 + '0', 3 + 'x', 3 + '4', 3 + '1', 3 + '>');
    expect_decode(tok, (const int32_t[]){1, 263, 3 + 0xC3, 3 + 0xA9}, 4, "hi\xC3\xA9");
    expect_decode(tok, (const int32_t[]){3 + 0xC3, 263}, 2, "\xEF\xBF\xBD hi"); /* lone lead byte -> U+FFFD */
    char buf[8];
    CHECK(hl_tokenizer_decode_piece(tok, 263, 3 + 0xC3, buf, sizeof buf) == 1 && (unsigned char)buf[0] == 0xC3,
          "streaming a byte piece gives the raw byte");
    hl_tokenizer_free(tok);
}

static void path_in_shared(char *out, size_t cap, const char *rel) {
    snprintf(out, cap, "%s/%s", hl_test_shared_dir(), rel);
}


static void test_stories260k(const char *rel, const char *format) {
    char path[4096];
    path_in_shared(path, sizeof path, rel);
    hl_tokenizer *tok = NULL;
    hl_status st = hl_tokenizer_load(&tok, path);
    CHECK(st == HL_OK, "load %s: %s", path, hl_last_error());
    if (!tok)
        return;
    CHECK(!strcmp(hl_tokenizer_format(tok), format), "%s format '%s'", rel, hl_tokenizer_format(tok));
    CHECK(hl_tokenizer_vocab_size(tok) == 512, "%s: 512 pieces", rel);
    CHECK(hl_tokenizer_bos_id(tok) == 1 && hl_tokenizer_eos_id(tok) == 2 && hl_tokenizer_unk_id(tok) == 0,
          "%s: unk 0 bos 1 eos 2", rel);
    CHECK(hl_tokenizer_piece_to_id(tok, WS) == 410, "%s: the dummy-prefix piece is 410 (docs/file-formats.md §2)",
          rel);
    CHECK(hl_tokenizer_piece_to_id(tok, WS "t") == 259, "%s: piece 259 is '▁t'", rel);
    CHECK(strlen(hl_story_text) == 565, "story is 565 characters");
    expect_encode(tok, hl_story_text, 1, hl_story_ids, sizeof hl_story_ids / sizeof hl_story_ids[0]);
    expect_decode(tok, hl_story_ids, sizeof hl_story_ids / sizeof hl_story_ids[0], hl_story_text);
    /* streamed decoding reproduces the text too */
    char *acc = calloc(1, 4096);
    size_t n = 0;
    int prev = -1;
    for (size_t i = 0; i < sizeof hl_story_ids / sizeof hl_story_ids[0]; i++) {
        n += hl_tokenizer_decode_piece(tok, prev, hl_story_ids[i], acc + n, 4096 - n);
        prev = hl_story_ids[i];
    }
    CHECK(n == 565 && !strcmp(acc, hl_story_text), "%s: streamed decode of the story", rel);
    free(acc);
    hl_tokenizer_free(tok);
}

static void test_llama2(const char *rel, const char *format) {
    char path[4096];
    path_in_shared(path, sizeof path, rel);
    hl_tokenizer *tok = NULL;
    CHECK(hl_tokenizer_load(&tok, path) == HL_OK, "load %s: %s", path, hl_last_error());
    if (!tok)
        return;
    CHECK(!strcmp(hl_tokenizer_format(tok), format), "%s format", rel);
    CHECK(hl_tokenizer_vocab_size(tok) == 32000, "%s: 32000 pieces", rel);
    CHECK(hl_tokenizer_bos_id(tok) == 1 && hl_tokenizer_eos_id(tok) == 2 && hl_tokenizer_unk_id(tok) == 0, "ids");
    CHECK(hl_tokenizer_piece_to_id(tok, WS) == 29871, "%s: '▁' is 29871 (docs/file-formats.md §2)", rel);
    CHECK(hl_tokenizer_score(tok, 259) == -1e9f && hl_tokenizer_score(tok, 260) == -1.0f &&
              hl_tokenizer_score(tok, 31999) == -31740.0f,
          "%s: scores of 259, 260, 31999", rel);
    CHECK(hl_tokenizer_piece_type(tok, 3) == HL_PIECE_BYTE && hl_tokenizer_piece_type(tok, 258) == HL_PIECE_BYTE &&
              !strcmp(hl_tokenizer_piece(tok, 13), "<0x0A>"),
          "%s: byte pieces 3..258", rel);
    CHECK(!strcmp(hl_tokenizer_piece(tok, 1), "<s>") && hl_tokenizer_piece(tok, 32000) == NULL, "%s: pieces", rel);
    ENC(tok, "Hello world", 1, 1, 15043, 3186);
    ENC(tok, "I believe the meaning of life is", 1, 1, 306, 4658, 278, 6593, 310, 2834, 338);
    ENC(tok, "\n", 0, 29871, 13);
    CHECK(hl_tokenizer_check_vocab(tok, 32000) == HL_OK, "check_vocab 32000");
    CHECK(hl_tokenizer_check_vocab(tok, 512) == HL_ERR_SHAPE, "check_vocab 512 fails");
    CHECK(strstr(hl_last_error(), "32000 pieces but the model expects 512") != NULL, "message: %s", hl_last_error());
    hl_tokenizer_free(tok);
}

static void expect_load_error(const void *data, size_t size, const char *name, const char *needle) {
    hl_tokenizer *tok = NULL;
    hl_status st = hl_tokenizer_load_buffer(&tok, data, size, name);
    CHECK(st != HL_OK && tok == NULL, "%s must be refused", name);
    CHECK(strstr(hl_last_error(), name) != NULL, "the message names %s: %s", name, hl_last_error());
    if (needle)
        CHECK(strstr(hl_last_error(), needle) != NULL, "%s: message mentions '%s': %s", name, needle, hl_last_error());
    hl_tokenizer_free(tok);
}

static void test_errors(void) {
    char path[4096];
    path_in_shared(path, sizeof path, "models/stories260K-hf/tokenizer.model");
    size_t len = 0;
    unsigned char *model = hl_test_read_file(path, &len);
    CHECK(model != NULL, "read %s", path);
    if (model) {
        /* every truncation of the protobuf is refused (or, cut exactly between pieces, loads
         * fewer pieces), never a crash */
        int refused = 0;
        for (size_t cut = 1; cut < len; cut += 37) {
            hl_tokenizer *tok = NULL;
            if (hl_tokenizer_load_buffer(&tok, model, cut, "cut.model") != HL_OK)
                refused++;
            hl_tokenizer_free(tok);
        }
        CHECK(refused > 0, "truncated tokenizer.model files are refused (%d)", refused);
        expect_load_error(model, len / 2, "half.model", NULL);
        unsigned char *bad = malloc(len);
        memcpy(bad, model, len);
        bad[1] = 0x7f; /* first piece's length now runs past its contents */
        hl_tokenizer *tok = NULL;
        hl_status st = hl_tokenizer_load_buffer(&tok, bad, len, "lying.model");
        CHECK(st != HL_OK || tok != NULL, "a lying length is handled");
        hl_tokenizer_free(tok);
        free(bad);
        free(model);
    }
    path_in_shared(path, sizeof path, "models/stories260K/tok512.bin");
    unsigned char *bin = hl_test_read_file(path, &len);
    if (bin) {
        expect_load_error(bin, len - 3, "short.bin", "truncated");
        free(bin);
    }
    expect_load_error("", 0, "empty.model", "empty");
    expect_load_error("{\"model\": ", 10, "bad.json", "JSON");
    const char *uni = "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"<unk>\", 0.0]]}}";
    expect_load_error(uni, strlen(uni), "unigram.json", "Unigram");
    const char *wp = "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}";
    expect_load_error(wp, strlen(wp), "wordpiece.json", "WordPiece");
    const char *bl = "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, "
                     "\"merges\": []}}";
    expect_load_error(bl, strlen(bl), "gpt2.json", "byte-level");
    const char *gap = "{\"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"vocab\": {\"<unk>\": 0, \"a\": 2}, "
                      "\"merges\": []}}";
    expect_load_error(gap, strlen(gap), "gap.json", "contiguous");
    const char *badmerge = "{\"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"vocab\": {\"<unk>\": 0, \"a\": 1}, "
                           "\"merges\": [\"a a\"]}}";
    expect_load_error(badmerge, strlen(badmerge), "merge.json", "merge 0");
    /* a small valid tokenizer.json in the LLaMA form */
    const char *ok = "{\"added_tokens\": [{\"id\": 0, \"content\": \"<unk>\", \"special\": true},"
                     " {\"id\": 1, \"content\": \"<s>\", \"special\": true}],"
                     " \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Prepend\", \"prepend\": "
                     "\"\\u2581\"}, {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\\u2581\"}]},"
                     " \"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"byte_fallback\": false,"
                     " \"vocab\": {\"<unk>\": 0, \"<s>\": 1, \"\\u2581\": 2, \"a\": 3, \"b\": 4, \"\\u2581a\": 5, \"ab\": 6},"
                     " \"merges\": [\"\\u2581 a\", [\"a\", \"b\"]]}}";
    hl_tokenizer *tok = NULL;
    CHECK(hl_tokenizer_load_buffer(&tok, ok, strlen(ok), "ok.json") == HL_OK, "small tokenizer.json: %s",
          hl_last_error());
    if (tok) {
        CHECK(!strcmp(hl_tokenizer_format(tok), "tokenizer.json"), "format");
        ENC(tok, "ab ab", 1, 1, 5, 4, 5, 4); /* ▁a (rank 0) before ab (rank 1) */
        ENC(tok, "b ab c", 0, 2, 4, 5, 4, 2, 0);
        hl_tokenizer_free(tok);
    }
    /* files */
    CHECK(hl_tokenizer_load(&tok, "/nonexistent/tokenizer.model") == HL_ERR_NOT_FOUND && !tok, "missing file");
    CHECK(strstr(hl_last_error(), "/nonexistent/tokenizer.model") != NULL, "names the path: %s", hl_last_error());
    /* A file that is neither a tokenizer nor a model is refused, saying so. */
    path_in_shared(path, sizeof path, "datasets/gsm8k/LICENSE");
    CHECK(hl_tokenizer_load(&tok, path) == HL_ERR_FORMAT && !tok, "a licence text is not a tokenizer");
    CHECK(strstr(hl_last_error(), "not a tokenizer") != NULL, "message: %s", hl_last_error());
    /* A model checkpoint given as the tokenizer means the tokenizer that belongs to it (one
     * discovery rule for --tokenizer and --model): tok512.bin next to stories260K.bin. */
    path_in_shared(path, sizeof path, "models/stories260K/stories260K.bin");
    CHECK(hl_tokenizer_load(&tok, path) == HL_OK && tok && hl_tokenizer_vocab_size(tok) == 512,
          "a model file as the tokenizer: %s", hl_last_error());
    char found[4096];
    CHECK(hl_tokenizer_find(path, found, sizeof found) == HL_OK && strstr(found, "/tok512.bin"),
          "found %s next to stories260K.bin", found);
    hl_tokenizer_free(tok);
    tok = NULL;
}

static void test_load_for_model(void) {
    static const struct {
        const char *model;
        const char *format;
        int n;
    } cases[] = {
        {"models/stories260K/stories260K.bin", "tokenizer.bin", 512},           /* tok512.bin next to it */
        {"models/stories260K-hf", "tokenizer.model", 512},                      /* HF directory */
        {"models/stories260K-hf-f16-sharded", "tokenizer.model", 512},          /* sharded HF directory */
        {"models/stories260K-gguf/stories260K.gguf", "gguf", 512},              /* embedded vocabulary */
        {"models/llama2c-tokenizer", "tokenizer.model", 32000},                 /* a directory of tokenizers */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[4096];
        path_in_shared(path, sizeof path, cases[i].model);
        hl_tokenizer *tok = NULL;
        hl_status st = hl_tokenizer_load_for_model(path, &tok);
        CHECK(st == HL_OK, "load_for_model %s: %s", cases[i].model, hl_last_error());
        if (!tok)
            continue;
        CHECK(!strcmp(hl_tokenizer_format(tok), cases[i].format), "%s: format %s, want %s", cases[i].model,
              hl_tokenizer_format(tok), cases[i].format);
        CHECK(hl_tokenizer_vocab_size(tok) == cases[i].n, "%s: %d pieces", cases[i].model, hl_tokenizer_vocab_size(tok));
        if (cases[i].n == 512)
            expect_encode(tok, hl_story_text, 1, hl_story_ids, sizeof hl_story_ids / sizeof hl_story_ids[0]);
        hl_tokenizer_free(tok);
    }
    hl_tokenizer *tok = NULL;
    CHECK(hl_tokenizer_load_for_model("/nonexistent-dir/model.bin", &tok) == HL_ERR_NOT_FOUND && !tok,
          "missing model");
    char path[4096];
    path_in_shared(path, sizeof path, "datasets/gsm8k");
    CHECK(hl_tokenizer_load_for_model(path, &tok) == HL_ERR_NOT_FOUND && !tok, "a directory without a tokenizer");
    /* The library says where it looked; each front end adds how to name one (the CLI's
     * --tokenizer hint is checked in tests/cli/test_newuser_cli.sh). */
    CHECK(strstr(hl_last_error(), "tokenizer.model") != NULL && strstr(hl_last_error(), path) != NULL,
          "says where it looked: %s", hl_last_error());
    /* Every form of a model names the same tokenizer: the folder, the model file, a GGUF folder. */
    static const struct {
        const char *path, *want;
    } forms[] = {
        {"models/stories260K", "/tok512.bin"},
        {"models/stories260K/stories260K.bin", "/tok512.bin"},
        {"models/stories260K/tok512.bin", "/tok512.bin"},
        {"models/stories260K-hf/model.safetensors", "/tokenizer.model"},
        {"models/stories260K-hf/config.json", "/tokenizer.model"},
        {"models/stories260K-hf-f16-sharded/model.safetensors.index.json", "/tokenizer.model"},
        {"models/stories260K-gguf", "/stories260K.gguf"},
        {"models/stories260K-gguf/stories260K.gguf", "/stories260K.gguf"},
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        char found[4096] = "";
        path_in_shared(path, sizeof path, forms[i].path);
        hl_status st = hl_tokenizer_find(path, found, sizeof found);
        size_t fl = strlen(found), wl = strlen(forms[i].want);
        CHECK(st == HL_OK && fl >= wl && !strcmp(found + fl - wl, forms[i].want), "%s -> %s (%s), want *%s",
              forms[i].path, found, st ? hl_last_error() : "ok", forms[i].want);
    }
}

/* One tokenizer, several threads encoding at once: every result equals the serial one. */
typedef struct {
    const hl_tokenizer *tok;
    int ok;
} thread_arg;

static void *encode_many(void *p) {
    thread_arg *a = p;
    a->ok = 1;
    for (int rep = 0; rep < 50 && a->ok; rep++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (hl_tokenizer_encode(a->tok, hl_story_text, strlen(hl_story_text), 1, &ids, &n) != HL_OK ||
            !ids_equal(ids, n, hl_story_ids, sizeof hl_story_ids / sizeof hl_story_ids[0]))
            a->ok = 0;
        free(ids);
    }
    return NULL;
}

static void test_threads(void) {
    char path[4096];
    path_in_shared(path, sizeof path, "models/stories260K/tok512.bin");
    hl_tokenizer *tok = NULL;
    if (hl_tokenizer_load(&tok, path) != HL_OK)
        return;
    pthread_t th[4];
    thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i].tok = tok;
        pthread_create(&th[i], NULL, encode_many, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(args[i].ok, "thread %d encoded the story correctly every time", i);
    }
    hl_tokenizer_free(tok);
}

int main(void) {
    test_tiny_vocab();
    test_byte_fallback_vocab();
    test_stories260k("models/stories260K/tok512.bin", "tokenizer.bin");
    test_stories260k("models/stories260K-hf/tokenizer.model", "tokenizer.model");
    test_stories260k("models/stories260K-gguf/stories260K.gguf", "gguf");
    test_llama2("models/llama2c-tokenizer/tokenizer.model", "tokenizer.model");
    test_llama2("models/llama2c-tokenizer/tokenizer.bin", "tokenizer.bin");
    test_errors();
    test_load_for_model();
    test_threads();
    return hl_test_finish();
}
