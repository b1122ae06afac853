/* Following a run that another process writes — a run launched on a cluster with mpirun or
 * srun, or in another terminal — from its run directory alone (a local folder or a shared file
 * system): the engine's snapshot (core/engine/engine.h) rebuilt from
 *   config.json      the run config,
 *   metrics.jsonl    tailed as it grows: start/step/eval/checkpoint/resume/stop/error/finish
 *                    lines give progress, the loss/eval/lr/grad-norm/tokens-per-s histories, the
 *                    routing statistics of each eval and the events; a partly written last line
 *                    waits for its newline; a file that was rewritten (a resumed run trims it to
 *                    its checkpoint) or restarted is read again from the start;
 *   checkpoints/     the newest complete checkpoint when metrics.jsonl does not name one.
 * A thread polls every interval and publishes snapshots exactly like the engine (reference
 * counted, released with hl_snapshot_release), so a reader draws either alike. Read-only: the
 * follower never writes into the run directory.
 *
 * The state comes from the last lifecycle line (start/resume: running; stop: stopped; finish:
 * finished; error: failed with its message). A run killed without a last line stays "running";
 * the follower adds one event when nothing has been appended for a long time. */
#ifndef HL_FOLLOW_H
#define HL_FOLLOW_H

#include <stdint.h>

#include "core/engine/engine.h"
#include "core/base/status.h"

typedef struct hl_follow hl_follow;

/* Open `run_dir` (it must hold config.json: else HL_ERR_NOT_FOUND with a hint), read what is
 * there, and start polling every interval_ms (<= 0: 500 ms; HL_FOLLOW_INTERVAL_MS overrides). */
hl_status hl_follow_open(hl_follow **out, const char *run_dir, int interval_ms);
/* Stops the thread and frees (snapshots already taken stay valid until released). */
void hl_follow_close(hl_follow *f);

const char *hl_follow_run_dir(const hl_follow *f);

/* The latest snapshot (never NULL); release it when done. */
const hl_snapshot *hl_follow_snapshot(hl_follow *f);
/* Block until the version differs from `since` or timeout_ms passes (< 0: forever). */
uint64_t hl_follow_wait_change(hl_follow *f, uint64_t since, int timeout_ms);
/* Read the files now in the calling thread (tests; a UI "refresh" key). */
hl_status hl_follow_poll_now(hl_follow *f);

#endif
