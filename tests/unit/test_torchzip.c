/* PyTorch zip writer: the zip structure (CRC, sizes, 64-byte alignment, central directory)
 * checked by a small independent reader here, the CRC against known vectors, and — when
 * Debian's python3 with torch is present — torch.load of the file must give back the exact
 * values (the independent oracle). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/formats/torchzip.h"
#include "tests/unit/hl_test.h"

static uint32_t rd16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t rd32(const unsigned char *p) { return rd16(p) | rd16(p + 2) << 16; }

/* Walk the central directory; check every local header against it. Returns the number of
 * records, or -1 on a structural error (reported). */
static int check_zip(const unsigned char *z, size_t n, const char *archive) {
    CHECK(n >= 22, "file too short");
    if (n < 22)
        return -1;
    const unsigned char *eocd = z + n - 22;
    CHECK(rd32(eocd) == 0x06054b50, "no end-of-central-directory record at the end");
    if (rd32(eocd) != 0x06054b50)
        return -1;
    uint32_t count = rd16(eocd + 10), cd_size = rd32(eocd + 12), cd_off = rd32(eocd + 16);
    CHECK(cd_off + cd_size == n - 22, "central directory must end where the EOCD starts");
    const unsigned char *c = z + cd_off;
    int ok = 1;
    for (uint32_t i = 0; i < count; i++) {
        if (rd32(c) != 0x02014b50) {
            CHECK(0, "central entry %u has a bad signature", i);
            return -1;
        }
        uint32_t crc = rd32(c + 16), csize = rd32(c + 20), usize = rd32(c + 24);
        uint32_t nl = rd16(c + 28), xl = rd16(c + 30), cl = rd16(c + 32), loff = rd32(c + 42);
        char name[256] = {0};
        memcpy(name, c + 46, nl < 255 ? nl : 255);
        CHECK(rd16(c + 10) == 0, "%s: must be stored (method 0)", name);
        CHECK(csize == usize, "%s: stored sizes differ", name);
        CHECK(!strncmp(name, archive, strlen(archive)) && name[strlen(archive)] == '/',
              "%s: not under %s/", name, archive);
        const unsigned char *l = z + loff;
        CHECK(rd32(l) == 0x04034b50, "%s: bad local header", name);
        CHECK(rd32(l + 14) == crc && rd32(l + 18) == csize, "%s: local header disagrees with central", name);
        uint32_t lnl = rd16(l + 26), lxl = rd16(l + 28);
        CHECK(lnl == nl && !memcmp(l + 30, c + 46, nl), "%s: local name differs", name);
        size_t data = loff + 30 + lnl + lxl;
        CHECK(data % 64 == 0, "%s: data at %zu is not 64-byte aligned", name, data);
        CHECK(data + csize <= cd_off, "%s: data runs into the central directory", name);
        if (data + csize <= n)
            CHECK(hl_crc32(0, z + data, csize) == crc, "%s: CRC mismatch", name);
        else
            ok = 0;
        c += 46 + nl + xl + cl;
    }
    return ok ? (int)count : -1;
}

int main(void) {
    /* CRC-32 check value of the standard ("123456789" → 0xCBF43926). */
    CHECK(hl_crc32(0, "123456789", 9) == 0xCBF43926u, "crc32 check value");
    CHECK(hl_crc32(hl_crc32(0, "1234", 4), "56789", 5) == 0xCBF43926u, "crc32 continuation");

    char dir[] = "/tmp/hl_test_torchzip_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return hl_test_finish();
    }
    float a[6] = {0.f, 1.f, -2.5f, 3.25f, 1e-3f, 65504.f};
    float b[4 * 3 * 2];
    for (int i = 0; i < 24; i++)
        b[i] = (float)(i - 7) / 3.0f;
    float s = 3.0f;
    hl_tz_entry e[4] = {
        {.name = "base_model.model.model.layers.0.mlp.up_proj.lora_A.weight", .data = a, .ndim = 2, .shape = {2, 3}},
        {.name = "b3d", .data = b, .ndim = 3, .shape = {4, 3, 2}},
        {.name = "scalar", .data = &s, .ndim = 0},
        {.name = "empty", .data = NULL, .ndim = 2, .shape = {0, 5}},
    };
    char p32[512], p16[512];
    snprintf(p32, sizeof p32, "%s/f32.bin", dir);
    snprintf(p16, sizeof p16, "%s/bf16.bin", dir);
    hl_status st = hl_torchzip_write(p32, "f32", e, 4, HL_DTYPE_F32);
    CHECK(st == HL_OK, "write f32: %s", hl_last_error());
    st = hl_torchzip_write(p16, "bf16", e, 4, HL_DTYPE_BF16);
    CHECK(st == HL_OK, "write bf16: %s", hl_last_error());

    size_t n = 0;
    unsigned char *z = hl_test_read_file(p32, &n);
    CHECK(z != NULL, "read back");
    if (z) {
        int k = check_zip(z, n, "f32");
        CHECK(k == 4 + 3, "records: got %d, expected data.pkl + 4 storages + version + byteorder", k);
        free(z);
    }
    z = hl_test_read_file(p16, &n);
    if (z) {
        CHECK(check_zip(z, n, "bf16") == 7, "bf16 archive structure");
        free(z);
    }

    /* Bad input is refused, and leaves no file behind. */
    hl_tz_entry dup[2] = {{.name = "x", .data = a, .ndim = 1, .shape = {1}}, {.name = "x", .data = a, .ndim = 1, .shape = {1}}};
    char pbad[512];
    snprintf(pbad, sizeof pbad, "%s/bad.bin", dir);
    CHECK(hl_torchzip_write(pbad, "bad", dup, 2, HL_DTYPE_F32) == HL_ERR_ARG, "duplicate names refused");
    CHECK(access(pbad, F_OK) != 0, "no file after a refused write");
    CHECK(hl_torchzip_write(pbad, "a/b", e, 1, HL_DTYPE_F32) == HL_ERR_ARG, "archive name with '/' refused");
    char pnodir[512];
    snprintf(pnodir, sizeof pnodir, "%s/missing/x.bin", dir);
    CHECK(hl_torchzip_write(pnodir, "x", e, 1, HL_DTYPE_F32) == HL_ERR_IO, "missing directory is an I/O error");

    /* The oracle: torch.load must read both files and give back the exact values. */
    if (access("/usr/bin/python3", X_OK) == 0 &&
        system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0) {
        char cmd[4096];
        snprintf(cmd, sizeof cmd,
                 "/usr/bin/python3 - <<'EOF'\n"
                 "import torch, sys\n"
                 "ok = True\n"
                 "a = torch.tensor([0., 1., -2.5, 3.25, 1e-3, 65504.]).reshape(2, 3)\n"
                 "b = ((torch.arange(24, dtype=torch.float32) - 7) / 3.0).reshape(4, 3, 2)\n"
                 "for path, dt in (('%s', torch.float32), ('%s', torch.bfloat16)):\n"
                 "    d = torch.load(path)\n"
                 "    keys = list(d.keys())\n"
                 "    exp = ['base_model.model.model.layers.0.mlp.up_proj.lora_A.weight', 'b3d', 'scalar', 'empty']\n"
                 "    if keys != exp: print('keys', keys); ok = False\n"
                 "    want = [a.to(dt), b.to(dt), torch.tensor(3.0).to(dt), torch.zeros(0, 5, dtype=dt)]\n"
                 "    for k, w in zip(exp, want):\n"
                 "        t = d[k]\n"
                 "        if t.dtype != dt or t.shape != w.shape or not torch.equal(t, w) or t.requires_grad:\n"
                 "            print('mismatch', path, k, t.dtype, t.shape, t); ok = False\n"
                 "        if t.numel() and not t.is_contiguous(): print('not contiguous', k); ok = False\n"
                 "sys.exit(0 if ok else 1)\n"
                 "EOF\n",
                 p32, p16);
        int rc = system(cmd);
        CHECK(rc == 0, "torch.load oracle failed (rc %d)", rc);
    } else {
        printf("note: /usr/bin/python3 with torch not found; skipping the torch.load oracle\n");
    }

    hl_test_remove_dir(dir);
    return hl_test_finish();
}
