/* SHA-256 against the FIPS 180-4 / NIST example vectors, streaming in odd chunk sizes,
 * and against Python's hashlib (the sha256 columns of shared/ MANIFEST/README were written
 * with it; one more buffer is hashed by /usr/bin/python3 here). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/base/sha256.h"
#include "hl_test.h"

static void check_vector(const char *msg, size_t len, const char *want) {
    char hex[65];
    hl_sha256_hex(msg, len, hex);
    CHECK(!strcmp(hex, want), "sha256(%.20s... %zu bytes) = %s, want %s", msg, len, hex, want);
}

int main(void) {
    check_vector("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    check_vector("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    check_vector(m448, strlen(m448), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrst"
                       "nopqrstu";
    check_vector(m896, strlen(m896), "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    /* one million 'a', fed in uneven chunks */
    char *a = malloc(1000000);
    memset(a, 'a', 1000000);
    check_vector(a, 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    hl_sha256 s;
    hl_sha256_init(&s);
    size_t off = 0, step = 1;
    while (off < 1000000) {
        size_t n = step < 1000000 - off ? step : 1000000 - off;
        hl_sha256_update(&s, a + off, n);
        off += n;
        step = step * 7 % 1000 + 1; /* 1, 8, 57, 400, ... crosses block edges every way */
    }
    uint8_t d[32];
    char hex[65];
    hl_sha256_final(&s, d);
    hl_sha256_to_hex(d, hex);
    CHECK(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"), "chunked million a");
    free(a);
    /* lengths around the padding boundary (55, 56, 63, 64, 65 bytes): one-shot == byte-wise */
    for (size_t len = 50; len <= 130; len++) {
        char buf[130], h1[65], h2[65];
        for (size_t i = 0; i < len; i++)
            buf[i] = (char)(i * 31 + 7);
        hl_sha256_hex(buf, len, h1);
        hl_sha256_init(&s);
        for (size_t i = 0; i < len; i++)
            hl_sha256_update(&s, buf + i, 1);
        hl_sha256_final(&s, d);
        hl_sha256_to_hex(d, h2);
        CHECK(!strcmp(h1, h2), "byte-wise at length %zu", len);
    }

    /* shared files against MANIFEST.tsv (written with Python hashlib) */
    char path[1024], line[512];
    snprintf(path, sizeof path, "%s/datasets/bbh/MANIFEST.tsv", hl_test_shared_dir());
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "open %s", path);
    int n_files = 0;
    while (f && fgets(line, sizeof line, f)) {
        char name[256], kind[64], ex[32], want[80];
        long long bytes;
        if (line[0] == '#' || sscanf(line, "%255s %63s %31s %lld %79s", name, kind, ex, &bytes, want) != 5 ||
            !hl_sha256_is_hex(want))
            continue;
        char p[1024];
        uint64_t size = 0;
        snprintf(p, sizeof p, "%s/datasets/bbh/%s", hl_test_shared_dir(), name);
        CHECK(hl_sha256_file(p, hex, &size) == HL_OK && hl_sha256_hex_equal(hex, want) && size == (uint64_t)bytes,
              "%s: %s (%llu bytes), manifest %s (%lld)", name, hex, (unsigned long long)size, want, bytes);
        n_files++;
    }
    if (f)
        fclose(f);
    CHECK(n_files == 59, "manifest rows hashed: %d", n_files);
    /* models/README.md values */
    snprintf(path, sizeof path, "%s/models/stories260K/stories260K.bin", hl_test_shared_dir());
    CHECK(hl_sha256_file(path, hex, NULL) == HL_OK &&
              !strcmp(hex, "b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696"),
          "stories260K.bin %s", hex);
    snprintf(path, sizeof path, "%s/datasets/gsm8k/train.jsonl", hl_test_shared_dir());
    CHECK(hl_sha256_file(path, hex, NULL) == HL_OK &&
              !strcmp(hex, "17f347dc51477c50d4efb83959dbb7c56297aba886e5544ee2aaed3024813465"),
          "gsm8k train %s", hex);
    CHECK(hl_sha256_file("/nonexistent/file", hex, NULL) == HL_ERR_NOT_FOUND, "missing file");

    /* a pseudo-random buffer hashed by python3 hashlib */
    char tmp[] = "/tmp/hl_sha_XXXXXX";
    int fd = mkstemp(tmp);
    CHECK(fd >= 0, "mkstemp");
    if (fd >= 0) {
        size_t n = 3 * 1000 * 1000 + 17;
        unsigned char *buf = malloc(n);
        uint32_t x = 12345;
        for (size_t i = 0; i < n; i++) {
            x = x * 1664525u + 1013904223u;
            buf[i] = (unsigned char)(x >> 24);
        }
        CHECK(write(fd, buf, n) == (ssize_t)n, "write tmp");
        close(fd);
        free(buf);
        char cmd[512], py[80] = "";
        snprintf(cmd, sizeof cmd,
                 "/usr/bin/python3 -c \"import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],'rb').read())"
                 ".hexdigest())\" %s",
                 tmp);
        FILE *pp = popen(cmd, "r");
        if (pp) {
            if (!fgets(py, sizeof py, pp))
                py[0] = '\0';
            pclose(pp);
        }
        py[strcspn(py, "\n")] = '\0';
        CHECK(hl_sha256_is_hex(py), "python3 hashlib ran: '%s'", py);
        CHECK(hl_sha256_file(tmp, hex, NULL) == HL_OK && !strcmp(hex, py), "random 3 MB: ours %s python %s", hex, py);
        unlink(tmp);
    }
    CHECK(hl_sha256_is_hex("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855") &&
              hl_sha256_hex_equal("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
                                  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
          "hex case");
    CHECK(!hl_sha256_is_hex("e3b0") && !hl_sha256_is_hex(NULL), "short hex rejected");
    return hl_test_finish();
}
