/* Training checkpoints: everything needed to continue a run bit for bit.
 *
 * <run>/checkpoints/step-<n>/
 *   state.safetensors  every adapter tensor under its export key (f32), and both AdamW
 *                      moments under "adam_m.<key>" / "adam_v.<key>"
 *   state.json         step, scheduler position, data cursor (epoch, position, examples
 *                      consumed, data-RNG state at the start of the epoch), dropout key and
 *                      counter, seed, parameter count, last loss; 64-bit values as hex strings
 *   config.json        the run config at the time of the checkpoint
 * A checkpoint is built in checkpoints/.tmp-step-<n>-XXXXXX/ (each file written to a
 * temporary name, fsync'ed, renamed), the directory is fsync'ed and renamed to step-<n>,
 * and checkpoints/ is fsync'ed: a directory named step-<n> is complete, whatever happens
 * (kill -9, power loss, full disk). Leftover .tmp-* directories are removed by
 * hl_checkpoint_clean_tmp (on resume).
 *
 * Tests make saving step <n> fail as if the disk were full, after part of the temporary
 * directory was written, with hl_faults.ckpt_enospc_step (core/train/faults.h); the real thing is
 * exercised with a small tmpfs in tests/cli/test_train_diskfull.sh. */
#ifndef HL_CHECKPOINT_H
#define HL_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "core/adapter/adapter.h"
#include "core/train/config.h"
#include "core/train/faults.h"
#include "core/base/fileio.h" /* hl_mkdir_p, hl_remove_tree, hl_fsync_* (moved there) */
#include "core/base/rng.h"
#include "core/base/status.h"

typedef struct {
    int64_t step;          /* optimizer steps done */
    int64_t total_steps;
    int64_t epoch, pos, consumed; /* data cursor */
    hl_rng data_rng;       /* data RNG at the start of `epoch` */
    uint64_t seed;
    uint64_t dropout_key, dropout_step;
    int64_t n_params;
    int64_t tokens_seen;
    double loss;           /* loss of step `step` (NaN if none) */
    double elapsed_s;      /* training time so far */
} hl_ckpt_state;

/* Path of checkpoint `step` in a run directory. */
void hl_checkpoint_path(const char *run_dir, int64_t step, char *buf, size_t size);

/* Write checkpoint st->step (see top) from host copies: ad->params, ad->m and ad->v (read from
 * a session with hl_session_read_slab), laid out as ad->views says. If step-<n> already exists
 * it is replaced only after the new one is complete. On failure nothing named step-<n> changes
 * and older checkpoints are untouched; HL_ERR_DISK_FULL says so. `out_dir` (may be NULL)
 * receives the path. */
hl_status hl_checkpoint_save(const char *run_dir, const hl_adapters *ad, const hl_ckpt_state *st,
                             const hl_run_config *cfg, char *out_dir, size_t out_size);
/* The same with failures injected by a test (faults may be NULL). */
hl_status hl_checkpoint_save_faults(const char *run_dir, const hl_adapters *ad, const hl_ckpt_state *st,
                                    const hl_run_config *cfg, const hl_faults *faults, char *out_dir,
                                    size_t out_size);

/* Steps of the complete checkpoints (directories step-<n> holding state.json), ascending.
 * *steps is malloc'd (NULL when *n == 0). A missing checkpoints/ is not an error. */
hl_status hl_checkpoint_list(const char *run_dir, int64_t **steps, int *n);

/* The directory of checkpoint `step` of a run (step < 0: the newest complete one) into dir;
 * the step into *picked. HL_ERR_NOT_FOUND lists the steps there are. */
hl_status hl_checkpoint_pick(const char *run_dir, int64_t step, char *dir, size_t size, int64_t *picked);

/* Read a checkpoint directory into the host slabs of `ad` (params always; moments when
 * load_moments; a session takes them with hl_session_write_slab) and `st`. Every adapter tensor must be present with its shape; extra tensors are an error. */
hl_status hl_checkpoint_load(const char *ckpt_dir, hl_adapters *ad, hl_ckpt_state *st, int load_moments);

/* Only state.json (no tensors). */
hl_status hl_checkpoint_read_state(const char *ckpt_dir, hl_ckpt_state *st);
/* Parse state.json bytes (bounds-checked; `label` names them in errors). */
hl_status hl_checkpoint_parse_state(const char *json, size_t len, const char *label, hl_ckpt_state *st);

/* Delete the oldest complete checkpoints so that at most keep_last remain (keep_last <= 0:
 * keep all); never deletes `protect_step`. */
hl_status hl_checkpoint_prune(const char *run_dir, int keep_last, int64_t protect_step);

/* Remove checkpoints/.tmp-* left by an interrupted save. Returns how many via *removed. */
hl_status hl_checkpoint_clean_tmp(const char *run_dir, int *removed);

#endif
