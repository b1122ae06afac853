/* The communicator: the processes of one data-parallel run and the few collective operations
 * the trainer needs. Over MPI when the program was started by an MPI launcher (mpirun, mpiexec,
 * srun) and built with MPI (CMake HL_MPI); otherwise one process, where every reduction is a
 * no-op. GPU gradients go through NCCL, bootstrapped through MPI (hl_comm_device_open).
 *
 *   hl_comm *c;  HL_TRY(hl_comm_open(&c));             // MPI_Init_thread under a launcher
 *   rank = hl_comm_rank(c); size = hl_comm_size(c);
 *   HL_TRY(hl_comm_allreduce_f32(c, grads, n));         // Σ over ranks, same bits on every rank
 *   HL_TRY(hl_comm_check_agree(c, checksum, "adapter checksum at step 40"));
 *   hl_comm_close(c);                                   // MPI_Finalize (or hl_comm_abort after a failure)
 *
 * Determinism. hl_comm_allreduce_f32/_f64 do not use MPI_SUM (whose order of additions MPI
 * leaves to the library and which may differ between ranks and between runs). Each rank owns
 * one slice of the buffer, receives that slice from every rank (MPI_Alltoallv), adds the K
 * copies in rank order 0, 1, ..., K-1 in double precision, rounds once, and the slices are
 * gathered back (MPI_Allgatherv). So:
 *  - every rank gets exactly the same bits (the precondition for every rank taking the same
 *    optimizer step);
 *  - the result does not depend on the MPI library, its algorithm choice or the network;
 *    a run repeated with the same K gives the same bits;
 *  - for K = 2 the result is the correctly rounded f32 sum (a + b in double is exact); for any
 *    K it is the correctly rounded sum whenever the double sum is exact (always, unless the
 *    K values span more than ~29 binary orders of magnitude);
 *  - it is NOT bit-identical to one process adding the same micro-batch gradients one after
 *    the other in f32: a K-rank run forms K partial sums first. The difference is f32 rounding
 *    of the gradient (~1e-7 relative per element); tests/cli/test_mpi_train.sh bounds what it
 *    does to the adapter after 20 steps.
 * Integer sums (hl_comm_allreduce_i64) are exact in any order.
 *
 * Failures. Collectives wait at most hl_comm_timeout seconds (HL_COMM_TIMEOUT_S, default 600)
 * and then fail with HL_ERR_IO naming the ranks on this host whose process is gone; after a
 * failed collective the communicator is unusable: call hl_comm_abort (MPI_Abort ends every
 * rank; mpirun also ends all ranks by itself when one dies). hl_comm_lost_ranks is safe in a
 * signal handler, for the message a rank prints when the launcher terminates it.
 *
 * Threading: one thread at a time may call into a communicator (MPI_THREAD_SERIALIZED). */
#ifndef HL_COMM_H
#define HL_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "core/base/status.h"

typedef struct hl_comm hl_comm;

/* What the environment says about how this process was started (environment variables of
 * Open MPI's mpirun, MPICH/Hydra's mpiexec (PMI), PMIx and Slurm). Only used to decide whether
 * to start MPI and to give good errors; ranks always come from MPI itself. */
typedef struct {
    int launched;       /* started as one of several tasks by a launcher */
    int size;           /* the number of tasks it announces (1 when not launched) */
    int rank;           /* this task's number as announced (0 when not launched) */
    char launcher[48];  /* "mpirun (Open MPI)", "srun (Slurm)", "mpiexec (PMI)", "PMIx", "" */
} hl_launch_env;

void hl_comm_detect_launch(hl_launch_env *env);

/* Built with MPI support (HL_MPI) / with NCCL (HL_NCCL)? */
int hl_comm_have_mpi(void);
int hl_comm_have_nccl(void);

/* The communicator for this process: over MPI when launched by an MPI launcher (needs HL_MPI;
 * a launched process without MPI support fails with a hint instead of running K copies of the
 * same job into one run directory), else a one-process communicator. Call once per process,
 * from the main thread, before other threads exist. */
hl_status hl_comm_open(hl_comm **out);
/* A one-process communicator (tests, tools that never distribute). */
hl_status hl_comm_open_single(hl_comm **out);
/* Frees; finalizes MPI when hl_comm_open initialised it. NULL is fine. */
void hl_comm_close(hl_comm *c);
/* Ends every rank of the run at once (MPI_Abort; one process: exit(code)). For the CLI after a
 * failed collective or an error that only some ranks saw; never returns. */
void hl_comm_abort(hl_comm *c, int code) __attribute__((noreturn));

int hl_comm_rank(const hl_comm *c);
int hl_comm_size(const hl_comm *c);
int hl_comm_local_rank(const hl_comm *c);  /* rank among the processes of this host */
int hl_comm_local_size(const hl_comm *c);  /* processes of the run on this host */
const char *hl_comm_kind(const hl_comm *c); /* "mpi" or "single" */
/* Host name of a rank ("" when unknown). */
const char *hl_comm_host(const hl_comm *c, int rank);

/* Seconds a collective may wait for the other ranks (<= 0: HL_COMM_TIMEOUT_S or 600). */
void hl_comm_set_timeout(hl_comm *c, double seconds);
double hl_comm_timeout(const hl_comm *c);

/* Time spent inside collectives (waiting for the other ranks included), payload bytes and calls,
 * since the communicator opened: the communication cost per step is the difference between two
 * readings. */
typedef struct {
    double seconds;
    uint64_t bytes;
    uint64_t calls;
} hl_comm_stats;
void hl_comm_get_stats(const hl_comm *c, hl_comm_stats *st);

/* ---- collectives (every rank calls them in the same order with the same sizes) ---- */

/* buf[i] = Σ over ranks of buf[i], deterministic and identical on every rank (see top). */
hl_status hl_comm_allreduce_f32(hl_comm *c, float *buf, size_t n);
hl_status hl_comm_allreduce_f64(hl_comm *c, double *buf, size_t n);
/* Exact integer sum. */
hl_status hl_comm_allreduce_i64(hl_comm *c, int64_t *buf, size_t n);
/* Largest value over ranks (a "any rank wants to stop" flag is the max of 0/1). */
hl_status hl_comm_allreduce_max_i64(hl_comm *c, int64_t *buf, size_t n);
/* all[r * bytes ...] = rank r's `mine` (bytes per rank, the same on every rank). */
hl_status hl_comm_allgather(hl_comm *c, const void *mine, size_t bytes, void *all);
/* Root's buf to every rank. */
hl_status hl_comm_bcast(hl_comm *c, void *buf, size_t bytes, int root);
hl_status hl_comm_barrier(hl_comm *c);

/* Every rank passes its value (e.g. a checksum of its adapter parameters); when they differ,
 * HL_ERR_NUMERIC on every rank with a message naming the groups of ranks and their values:
 * "<what> differs between ranks: ranks 0,2 have 0x..., rank 1 has 0x...". */
hl_status hl_comm_check_agree(hl_comm *c, uint64_t value, const char *what);

/* A 64-bit checksum of bytes (not cryptographic; for the agreement check). */
uint64_t hl_checksum64(const void *data, size_t bytes);

/* ---- lost ranks ----
 * Writes "rank 1 (pid 4242 on node7)" for each rank on this host whose process no longer
 * exists, comma-separated, and returns how many (0: none found; ranks on other hosts cannot be
 * checked from here). Async-signal-safe (kill(pid, 0) and plain formatting only). */
int hl_comm_lost_ranks(const hl_comm *c, char *buf, size_t n);

/* ---- GPU gradients through NCCL ----
 * One rank per GPU. device_open makes an NCCL communicator over the same ranks on CUDA device
 * `device` (normally the local rank): rank 0 creates the unique id, MPI broadcasts it, every
 * rank calls ncclCommInitRank. HL_ERR_STATE when built without NCCL. Set NCCL_NVLS_ENABLE=0 in
 * the launch where the machine requires NVLink multicast off. */
hl_status hl_comm_device_open(hl_comm *c, int device);
int hl_comm_device_ready(const hl_comm *c);
/* In place Σ over ranks of a contiguous f32 buffer in device memory, on CUDA stream `stream`
 * (a cudaStream_t; NULL = the default stream). Returns when the sum is in place (or fails after
 * the timeout). With one rank it leaves the buffer bit for bit as it was. */
hl_status hl_comm_device_allreduce_f32(hl_comm *c, float *dev_buf, size_t n, void *stream);

#endif
