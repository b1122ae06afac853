/* libFuzzer target for the run follower's reader of metrics.jsonl (core/engine/follow.c): the
 * input, split at a point chosen by its first byte, is written as a run directory's
 * metrics.jsonl in two parts (the second appended after the first poll, as a file that grows),
 * and the follower reads both. Any line — torn, foreign, malformed routing arrays of any shape —
 * must be skipped or read, never crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/train/config.h"
#include "core/engine/follow.h"

static char dir[64], metrics[128];

static int setup(void) {
    if (dir[0])
        return 0;
    snprintf(dir, sizeof dir, "/tmp/hl_fuzz_follow_XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    char cpath[128];
    snprintf(cpath, sizeof cpath, "%s/config.json", dir);
    hl_run_config cfg;
    hl_config_defaults(&cfg);
    if (hl_config_save_file(&cfg, cpath) != HL_OK)
        return -1;
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", dir);
    return 0;
}

static void write_part(const uint8_t *p, size_t n, const char *mode) {
    FILE *f = fopen(metrics, mode);
    if (!f)
        return;
    if (n)
        fwrite(p, 1, n, f);
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || setup() != 0)
        return 0;
    size_t len = size - 1, cut = len ? (size_t)data[0] * len / 255 : 0;
    const uint8_t *body = data + 1;
    write_part(body, cut, "wb");
    hl_follow *f = NULL;
    if (hl_follow_open(&f, dir, 3600 * 1000) != HL_OK)
        return 0;
    write_part(body + cut, len - cut, "ab");
    hl_follow_poll_now(f);
    const hl_snapshot *s = hl_follow_snapshot(f);
    /* touch what a reader draws */
    volatile double sink = s->loss + s->eval_loss + (double)s->loss_hist.n;
    const hl_snapshot_routing *r = &s->routing;
    if (r->n_layers > 0 && r->weight_mean)
        for (int i = 0; i < r->n_layers * r->n_modules * r->n_experts; i++)
            sink += r->weight_mean[i] + r->top1_share[i];
    (void)sink;
    hl_snapshot_release(s);
    hl_follow_close(f);
    return 0;
}
