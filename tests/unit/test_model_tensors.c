/* Every tensor of a checkpoint is used (issue 11, item 7): a GGUF whose llama.block_count
 * disagrees with its blk.<n>.* tensors is an error naming them, as a Hugging Face
 * config.json with the wrong num_hidden_layers is (tests/cli/test_newuser_cli.sh). The
 * stories260K GGUF holds 5 blocks; its block_count is patched in memory to 3 and 7. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/gguf.h"
#include "core/model/gguf_model.h"
#include "core/model/model.h"
#include "hl_test.h"

/* The u32 value of the key "llama.block_count": key bytes, then type (4 = u32), then value. */
static uint32_t *block_count_at(unsigned char *buf, size_t len) {
    static const char key[] = "llama.block_count";
    size_t k = sizeof key - 1;
    for (size_t i = 0; i + k + 8 <= len; i++)
        if (!memcmp(buf + i, key, k)) {
            uint32_t type;
            memcpy(&type, buf + i + k, 4);
            if (type == 4)
                return (uint32_t *)(void *)(buf + i + k + 4);
        }
    return NULL;
}

static hl_status load_with_blocks(unsigned char *buf, size_t len, uint32_t blocks, hl_model *m) {
    uint32_t *v = block_count_at(buf, len);
    if (!v)
        return HL_ERR_INTERNAL;
    memcpy(v, &blocks, 4);
    hl_gguf *g = NULL;
    hl_status st = hl_gguf_parse(&g, buf, len, "patched.gguf");
    if (st == HL_OK)
        st = hl_gguf_load_model(m, g, "patched.gguf");
    hl_gguf_free(g);
    return st;
}

int main(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/models/stories260K-gguf/stories260K.gguf", hl_test_shared_dir());
    size_t len = 0;
    unsigned char *buf = hl_test_read_file(path, &len);
    CHECK(buf != NULL, "read %s", path);
    if (!buf)
        return hl_test_finish();
    CHECK(block_count_at(buf, len) != NULL, "llama.block_count is a u32 key in the file");

    hl_model m;
    hl_status st = load_with_blocks(buf, len, 5, &m);
    CHECK(st == HL_OK && m.cfg.n_layers == 5, "the file as it is loads: %s", st ? hl_last_error() : "");
    if (st == HL_OK)
        hl_model_free(&m);

    st = load_with_blocks(buf, len, 3, &m);
    CHECK(st == HL_ERR_FORMAT, "block_count 3 with 5 blocks of tensors must fail (got %d)", (int)st);
    CHECK(strstr(hl_last_error(), "llama.block_count is 3, but the weights hold 5 layers") &&
              strstr(hl_last_error(), "blk.3.* to blk.4.* would be ignored"),
          "the message names the ignored blocks: %s", hl_last_error());

    st = load_with_blocks(buf, len, 7, &m);
    CHECK(st == HL_ERR_FORMAT, "block_count 7 with 5 blocks must fail (got %d)", (int)st);
    CHECK(strstr(hl_last_error(), "llama.block_count is 7, but the weights hold only 5 layers (no blk.5.* tensors)"),
          "the message names the missing block: %s", hl_last_error());

    st = load_with_blocks(buf, len, 4, &m);
    CHECK(st == HL_ERR_FORMAT && strstr(hl_last_error(), "blk.4.* would be ignored"),
          "one extra block is named alone: %s", hl_last_error());
    free(buf);
    return hl_test_finish();
}
