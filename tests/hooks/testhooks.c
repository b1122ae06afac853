/* Test-only part of the `hydralora-testhooks` program: the whole CLI plus this file, which
 * reads a fault plan from the environment before main() and hands it to the train command
 * (cli/commands.h: hl_cli_faults). The CLI tests run this program where they need a failure
 * at a chosen moment; the product `hydralora` has no such switches.
 *   HL_TEST_NAN_STEP=<k>       the loss of optimizer step k reads NaN
 *   HL_TEST_STEP_DELAY_MS=<ms> sleep after every optimizer step (to interrupt a run mid-way)
 *   HL_TEST_CKPT_ENOSPC=<k>    saving checkpoint k fails as if the disk were full */
#include <stdlib.h>

#include "cli/commands.h"

static hl_faults plan;

static long long env_number(const char *name) {
    const char *e = getenv(name);
    return e && *e ? strtoll(e, NULL, 10) : 0;
}

__attribute__((constructor)) static void install_faults(void) {
    plan.nan_loss_step = env_number("HL_TEST_NAN_STEP");
    plan.step_delay_ms = (int)env_number("HL_TEST_STEP_DELAY_MS");
    plan.ckpt_enospc_step = env_number("HL_TEST_CKPT_ENOSPC");
    hl_cli_faults = &plan;
}
