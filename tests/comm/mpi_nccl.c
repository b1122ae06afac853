/* Started by tests/comm/test_comm_nccl.sh (and scripts/mpi_bench_device.sh), one rank per GPU:
 * the NCCL all-reduce of one contiguous f32 device buffer through hl_comm_device_* —
 *  - with one rank the buffer comes back bit for bit unchanged;
 *  - with two ranks each element is the correctly rounded a + b (order does not matter for two);
 *  - with more, within 1e-6 relative of the double sum;
 *  - the time per all-reduce of a gradient-sized buffer (printed, never asserted).
 * Exits 77 ("skipped: no CUDA device") without a GPU and 78 in a build without NCCL. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/comm/comm.h"

#ifdef HL_HAVE_NCCL
#include <cuda_runtime.h>

static float value(int r, size_t i) {
    uint64_t x = ((uint64_t)r << 40) ^ i;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    x ^= x >> 31;
    return (float)ldexp((double)((int)(x % 2000001) - 1000000) / 1e6, (int)((x >> 32) % 21) - 10);
}

int main(int argc, char **argv) {
    size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : ((size_t)32 << 20); /* 128 MiB */
    int reps = argc > 2 ? atoi(argv[2]) : 20;
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("skipped: no CUDA device\n");
        return 77;
    }
    hl_comm *c;
    if (hl_comm_open(&c)) {
        fprintf(stderr, "communicator: %s\n", hl_last_error());
        return 2;
    }
    int me = hl_comm_rank(c), K = hl_comm_size(c);
    int fails = 0;
    if (hl_comm_device_open(c, hl_comm_local_rank(c))) {
        fprintf(stderr, "rank %d: %s\n", me, hl_last_error());
        hl_comm_abort(c, 2);
    }
    float *h = malloc(n * sizeof(float)), *back = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        h[i] = value(me, i);
    float *d = NULL;
    if (cudaMalloc((void **)&d, n * sizeof(float)) != cudaSuccess) {
        fprintf(stderr, "rank %d: cudaMalloc of %zu floats failed\n", me, n);
        hl_comm_abort(c, 2);
    }
    cudaMemcpy(d, h, n * sizeof(float), cudaMemcpyHostToDevice);
    cudaStream_t s;
    cudaStreamCreate(&s);
    hl_status st = hl_comm_device_allreduce_f32(c, d, n, s);
    if (st) {
        fprintf(stderr, "rank %d: %s\n", me, hl_last_error());
        hl_comm_abort(c, 2);
    }
    cudaMemcpy(back, d, n * sizeof(float), cudaMemcpyDeviceToHost);
    size_t bad = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double sum = 0;
        for (int r = 0; r < K; r++)
            sum += (double)value(r, i);
        float want = (float)sum;
        if (K <= 2) {
            bad += memcmp(&want, &back[i], sizeof want) != 0;
        } else {
            double rel = fabs((double)back[i] - sum) / (fabs(sum) > 1e-30 ? fabs(sum) : 1e-30);
            if (rel > worst)
                worst = rel;
            bad += rel > 1e-6;
        }
    }
    if (bad) {
        fprintf(stderr, "rank %d: %zu of %zu elements wrong after the NCCL all-reduce (%d ranks, worst rel %.3g)\n", me,
                bad, n, K, worst);
        fails++;
    } else {
        printf("rank %d: NCCL all-reduce of %zu floats over %d rank%s: %s\n", me, n, K, K == 1 ? "" : "s",
               K == 1 ? "bit for bit unchanged" : K == 2 ? "bit-exact a+b" : "within 1e-6");
    }
    /* time per all-reduce */
    hl_comm_barrier(c);
    hl_comm_stats s0, s1;
    hl_comm_get_stats(c, &s0);
    for (int i = 0; i < reps && !fails; i++)
        if (hl_comm_device_allreduce_f32(c, d, n, s)) {
            fprintf(stderr, "rank %d: %s\n", me, hl_last_error());
            fails++;
        }
    hl_comm_get_stats(c, &s1);
    double per = (s1.seconds - s0.seconds) / (reps > 0 ? reps : 1);
    printf("rank %d: all-reduce of %.1f MiB: %.3f ms each (%d reps), algorithm bandwidth %.1f GB/s\n", me,
           n * 4.0 / 1048576.0, per * 1e3, reps, per > 0 ? n * 4.0 / per / 1e9 : 0.0);
    cudaFree(d);
    cudaStreamDestroy(s);
    free(h);
    free(back);
    printf("rank %d: %d passed, %d failed\n", me, fails ? 0 : 1, fails);
    hl_comm_close(c);
    return fails ? 1 : 0;
}

#else
int main(void) {
    printf("skipped: this build has no NCCL (HL_NCCL)\n");
    return 78;
}
#endif
