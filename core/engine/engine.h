/* The engine: runs one training job in its own thread; the CLI and the workbench drive it
 * through this API only. The engine never draws and never prints.
 *
 *   hl_engine *e;  HL_TRY(hl_engine_create(&e));
 *   HL_TRY(hl_engine_start(e, &cfg, HL_START_NEW));     // returns at once; the job loads, then trains
 *   uint64_t seen = 0;
 *   for (;;) {
 *       hl_engine_wait_change(e, seen, 200);            // block until something changed (or 200 ms)
 *       const hl_snapshot *s = hl_engine_snapshot(e);   // immutable; valid until released
 *       seen = s->version;
 *       ... draw s->step, s->loss, s->routing ...
 *       int done = hl_job_state_is_final(s->state);
 *       hl_snapshot_release(s);
 *       if (done) break;
 *   }
 *   hl_engine_free(e);
 *
 * Commands (pause, resume, stop, save-now) go through a small queue and are acted on by the
 * job thread between micro-batches (pause, stop, save) — a step in progress always finishes,
 * so "stop" means: finish the step, write a checkpoint, end in state STOPPED.
 * Snapshots are reference-counted immutable copies published under a mutex (after every
 * optimizer step, eval, checkpoint and state change); taking one is O(1) and never blocks
 * the job for long. All functions are thread-safe; the signal-safe way to stop from a
 * signal handler is to set a flag and call hl_engine_stop from the main loop.
 *
 * The run directory (docs/architecture.md §5):
 *   <run>/config.json            the full validated run config (hl_config_to_json)
 *   <run>/metrics.jsonl          one JSON object per line: {"event":"step",...} for every optimizer
 *                                step (step, epoch, loss, lr, grad_norm, tokens, tokens_per_s, ...;
 *                                loss also as "loss_hex" = the exact float bits, for bitwise compares),
 *                                {"event":"eval",...} with the eval loss and the routing statistics,
 *                                and {"event":"checkpoint"|"start"|"resume"|"stop"|"error"|"finish"}.
 *   <run>/checkpoints/step-<n>/  adapter params + Adam moments (state.safetensors) and
 *                                step/scheduler/data-cursor/RNG state (state.json); written to
 *                                checkpoints/.tmp-step-<n>-* and renamed, so a directory named
 *                                step-<n> is always complete. Temporary dirs are removed on resume.
 *   <run>/adapter/               the final adapter, exported (docs/method.md §8) when a run finishes. */
#ifndef HL_ENGINE_H
#define HL_ENGINE_H

#include <stdint.h>

#include "core/train/config.h"
#include "core/train/faults.h"
#include "core/base/status.h"
#include "core/train/status.h" /* hl_snapshot, hl_job_state, hl_start_mode, hl_series */

typedef struct hl_engine hl_engine;

hl_status hl_engine_create(hl_engine **out);
/* Stops a running job (as hl_engine_stop: finish the step, checkpoint), waits for it, frees. */
void hl_engine_free(hl_engine *e);

/* Start a training job in a new thread and return at once. The config is copied and
 * validated first (errors come back here, before any thread starts). HL_ERR_STATE if a job
 * is still running. A finished/failed/stopped job may be followed by a new start. */
hl_status hl_engine_start(hl_engine *e, const hl_run_config *cfg, hl_start_mode mode);

/* Failures the next started jobs inject (tests only; NULL: none). The plan is copied. */
void hl_engine_set_faults(hl_engine *e, const hl_faults *faults);

/* Read <run_dir>/config.json into cfg (defaults first) and point cfg->out_dir at run_dir:
 * the first half of resuming a run. */
hl_status hl_engine_load_run_config(const char *run_dir, hl_run_config *cfg);

/* Commands. Each returns HL_ERR_STATE when no job is running (or it already ended). */
hl_status hl_engine_pause(hl_engine *e);   /* after the current micro-batch */
hl_status hl_engine_resume(hl_engine *e);  /* un-pause */
hl_status hl_engine_stop(hl_engine *e);    /* finish the step, checkpoint, end as STOPPED */
hl_status hl_engine_save_now(hl_engine *e);/* checkpoint after the current step */

/* The latest snapshot (never NULL; an idle engine gives state IDLE). Release it when done;
 * it stays valid and unchanged until then. */
const hl_snapshot *hl_engine_snapshot(hl_engine *e);
void hl_snapshot_release(const hl_snapshot *s);

/* Block until the published version differs from `since` or timeout_ms passes
 * (timeout_ms < 0: forever). Returns the current version. */
uint64_t hl_engine_wait_change(hl_engine *e, uint64_t since, int timeout_ms);

/* Wait for the job thread to end (timeout_ms < 0: forever). Returns 1 if no job is
 * running afterwards, 0 on timeout. */
int hl_engine_join(hl_engine *e, int timeout_ms);

/* Status of the finished job: HL_OK for FINISHED/STOPPED, otherwise the failure code (the
 * message is in the snapshot's error, and in hl_last_error() of the calling thread). */
hl_status hl_engine_result(hl_engine *e);

#endif
