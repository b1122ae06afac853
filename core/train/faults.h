/* Fault injection for tests: a plan that makes a training job fail on purpose, so that tests
 * can check what a user would see (a NaN loss at step k, a checkpoint on a full disk, a run
 * slow enough to interrupt). The product never fills one: tests pass it to hl_train_run (the
 * hooks), to the engine (hl_engine_set_faults) or to hl_checkpoint_save, and the CLI tests
 * use the separate hydralora-testhooks program (tests/hooks/), which reads them from its
 * environment. A zeroed plan injects nothing. */
#ifndef HL_FAULTS_H
#define HL_FAULTS_H

#include <stdint.h>

typedef struct {
    int64_t nan_loss_step;    /* > 0: the loss of this optimizer step (1-based) reads NaN */
    int step_delay_ms;        /* > 0: sleep this long after every optimizer step */
    int64_t ckpt_enospc_step; /* > 0: writing the checkpoint of this step fails as if the disk were
                                 full, after part of its temporary directory was written */
} hl_faults;

#endif
