/* The communicator in one process (core/comm/comm.h): launcher detection from the environment
 * variables of mpirun / mpiexec / srun, the one-process communicator (reductions leave buffers
 * bit for bit unchanged, gathers copy, agreement holds), the checksum, and the refusal to run
 * as one of several launched tasks in a build without MPI. Several ranks: tests/comm/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/comm/comm.h"
#include "hl_test.h"

static const char *const launch_vars[] = {"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMI_SIZE", "PMI_RANK",
                                          "PMIX_RANK", "SLURM_STEP_NUM_TASKS", "SLURM_PROCID", "SLURM_JOB_ID", NULL};

static void clear_launch(void) {
    for (int i = 0; launch_vars[i]; i++)
        unsetenv(launch_vars[i]);
}

static void test_detect(void) {
    hl_launch_env e;
    clear_launch();
    hl_comm_detect_launch(&e);
    CHECK(!e.launched && e.size == 1 && e.rank == 0, "no launcher: launched %d size %d", e.launched, e.size);

    setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
    setenv("OMPI_COMM_WORLD_RANK", "2", 1);
    hl_comm_detect_launch(&e);
    CHECK(e.launched && e.size == 4 && e.rank == 2 && strstr(e.launcher, "Open MPI"), "mpirun: %d %d %d '%s'",
          e.launched, e.size, e.rank, e.launcher);
    clear_launch();

    setenv("PMI_SIZE", "3", 1);
    setenv("PMI_RANK", "1", 1);
    hl_comm_detect_launch(&e);
    CHECK(e.launched && e.size == 3 && e.rank == 1 && strstr(e.launcher, "mpiexec"), "hydra: '%s'", e.launcher);
    setenv("SLURM_JOB_ID", "77", 1);
    hl_comm_detect_launch(&e);
    CHECK(strstr(e.launcher, "srun") != NULL, "srun with PMI: '%s'", e.launcher);
    clear_launch();

    setenv("PMIX_RANK", "5", 1);
    setenv("SLURM_STEP_NUM_TASKS", "8", 1);
    setenv("SLURM_JOB_ID", "77", 1);
    hl_comm_detect_launch(&e);
    CHECK(e.launched && e.rank == 5 && e.size == 8 && strstr(e.launcher, "PMIx"), "srun pmix: %d of %d '%s'", e.rank,
          e.size, e.launcher);
    clear_launch();

    /* srun without an MPI plugin: still recognised as a launch (MPI is asked, and a mismatch is an error) */
    setenv("SLURM_STEP_NUM_TASKS", "2", 1);
    setenv("SLURM_PROCID", "1", 1);
    hl_comm_detect_launch(&e);
    CHECK(e.launched && e.size == 2 && e.rank == 1, "bare srun: %d %d %d", e.launched, e.size, e.rank);
    clear_launch();
    /* one task of an sbatch script's own step is no launch */
    setenv("SLURM_STEP_NUM_TASKS", "1", 1);
    setenv("SLURM_PROCID", "0", 1);
    hl_comm_detect_launch(&e);
    CHECK(!e.launched, "a one-task Slurm step runs as one process");
    clear_launch();
    setenv("OMPI_COMM_WORLD_SIZE", "many", 1);
    hl_comm_detect_launch(&e);
    CHECK(!e.launched, "a malformed size is not a launch");
    clear_launch();
}

static void test_single(void) {
    hl_comm *c = NULL;
    CHECK(hl_comm_open(&c) == HL_OK && c, "open without a launcher: %s", hl_last_error());
    if (!c)
        return;
    CHECK(hl_comm_rank(c) == 0 && hl_comm_size(c) == 1 && hl_comm_local_rank(c) == 0 && hl_comm_local_size(c) == 1,
          "one process");
    CHECK(!strcmp(hl_comm_kind(c), "single"), "kind %s", hl_comm_kind(c));
    float f[5] = {1.5f, -0.0f, 3e-38f, 1e30f, 0.1f}, f0[5];
    memcpy(f0, f, sizeof f);
    double d[2] = {0.1, -2.5}, d0[2];
    memcpy(d0, d, sizeof d);
    int64_t i[2] = {7, -9};
    CHECK(hl_comm_allreduce_f32(c, f, 5) == HL_OK && !memcmp(f, f0, sizeof f), "f32 reduction of one rank is a no-op");
    CHECK(hl_comm_allreduce_f64(c, d, 2) == HL_OK && !memcmp(d, d0, sizeof d), "f64 reduction of one rank is a no-op");
    CHECK(hl_comm_allreduce_i64(c, i, 2) == HL_OK && i[0] == 7 && i[1] == -9, "i64 sum of one rank");
    CHECK(hl_comm_allreduce_max_i64(c, i, 2) == HL_OK && i[0] == 7 && i[1] == -9, "max of one rank");
    char mine[8] = "abcdefg", all[8] = "";
    CHECK(hl_comm_allgather(c, mine, 8, all) == HL_OK && !strcmp(all, "abcdefg"), "allgather copies");
    CHECK(hl_comm_bcast(c, mine, 8, 0) == HL_OK, "broadcast from rank 0");
    CHECK(hl_comm_bcast(c, mine, 8, 1) == HL_ERR_ARG, "broadcast from rank 1 of 1 is an error");
    CHECK(hl_comm_barrier(c) == HL_OK, "barrier");
    CHECK(hl_comm_check_agree(c, 123, "x") == HL_OK, "one rank agrees with itself");
    char lost[64];
    CHECK(hl_comm_lost_ranks(c, lost, sizeof lost) == 0 && lost[0] == 0, "no lost ranks");
    CHECK(hl_comm_host(c, 0)[0] != 0 && hl_comm_host(c, 1)[0] == 0, "host names");
    hl_comm_set_timeout(c, 2.5);
    CHECK(hl_comm_timeout(c) == 2.5, "timeout");
    if (!hl_comm_have_nccl())
        CHECK(hl_comm_device_open(c, 0) == HL_ERR_STATE && strstr(hl_last_error(), "without NCCL"),
              "NCCL refused in a build without it: %s", hl_last_error());
    CHECK(hl_comm_device_allreduce_f32(c, NULL, 4, NULL) == HL_ERR_STATE, "device reduction before device_open");
    hl_comm_close(c);
    hl_comm_close(NULL);
}

static void test_launched_without_mpi(void) {
    if (hl_comm_have_mpi())
        return; /* with MPI the same environment would start MPI: tests/comm covers it */
    setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
    setenv("OMPI_COMM_WORLD_RANK", "1", 1);
    hl_comm *c = NULL;
    hl_status st = hl_comm_open(&c);
    CHECK(st == HL_ERR_STATE && !c, "2 launched tasks without MPI must not run as 2 copies");
    CHECK(strstr(hl_last_error(), "built without MPI") && strstr(hl_last_error(), "task 1 of 2"), "message: %s",
          hl_last_error());
    clear_launch();
}

static void test_checksum(void) {
    float a[1000];
    for (int i = 0; i < 1000; i++)
        a[i] = (float)i * 0.25f;
    uint64_t h = hl_checksum64(a, sizeof a);
    CHECK(h == hl_checksum64(a, sizeof a), "deterministic");
    a[517] = nextafterf(a[517], 1e9f);
    CHECK(h != hl_checksum64(a, sizeof a), "one ulp in one element changes it");
    a[517] = (float)517 * 0.25f;
    CHECK(h != hl_checksum64(a, sizeof a - 1), "length matters");
    float z = 0.0f, nz = -0.0f;
    CHECK(hl_checksum64(&z, 4) != hl_checksum64(&nz, 4), "bits, not values: +0 and -0 differ");
    unsigned char tail[11] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    uint64_t t = hl_checksum64(tail, 11);
    tail[10] = 12;
    CHECK(t != hl_checksum64(tail, 11), "bytes after the last whole word count");
}

int main(void) {
    test_detect();
    test_single();
    test_launched_without_mpi();
    test_checksum();
    return hl_test_finish();
}
