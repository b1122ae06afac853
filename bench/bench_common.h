/* Helpers every benchmark needs: where shared/ is, clocks and the machine's read bandwidth, measured in the
 * same run as the figure it is the limit for. Header-only, for bench/ programs only (each
 * benchmark is one program, so static functions are fine). The sgemm peak is
 * hl_sgemm_gflops() in core/backend/cpu/gemm.h. */
#ifndef HL_BENCH_COMMON_H
#define HL_BENCH_COMMON_H

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Where the read-only shared test data is: $HL_SHARED, else ../shared (a flag may override). */
static inline const char *bench_shared_dir(void) {
    const char *s = getenv("HL_SHARED");
    return s ? s : "../shared";
}

/* Wall-clock seconds (monotonic). */
static inline double bench_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds of this process, all threads together (wall vs CPU shows the parallel gain). */
static inline double bench_cpu_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Read bandwidth (GB/s): best of `reps` parallel passes summing a `bytes` buffer; pick a
 * buffer far larger than the caches. 0 when the buffer cannot be allocated. */
static inline double bench_read_bandwidth(size_t bytes, int reps) {
    size_t n = bytes / sizeof(uint64_t);
    uint64_t *buf = malloc(n * sizeof *buf);
    if (!buf)
        return 0;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        buf[i] = i * 0x9E3779B97F4A7C15ull; /* touch every page first, in parallel */
    double best = 0;
    volatile uint64_t sink = 0; /* keeps the summing loop alive */
    for (int rep = 0; rep < reps; rep++) {
        double t0 = bench_now_s();
        uint64_t s = 0;
#pragma omp parallel for schedule(static) reduction(+ : s)
        for (size_t i = 0; i < n; i++)
            s += buf[i];
        double gbs = (double)bytes / (bench_now_s() - t0) / 1e9;
        sink += s;
        best = gbs > best ? gbs : best;
    }
    (void)sink;
    free(buf);
    return best;
}

/* Peak f32 multiply-add rate of this CPU (GFLOP/s, all OpenMP threads at once): independent
 * fused multiply-adds on registers only, in the widest vectors the build targets (AVX-512 or
 * 256-bit; bench/ is built with -march=native). No f32 matrix product can pass it: the ceiling
 * behind the sgemm reference. Best of `reps` rounds of ~30 ms (on a busy machine a round
 * loses the cores now and then: take many). */
static inline double bench_fma_peak_gflops(int reps) {
#if defined(__AVX512F__)
    typedef float vf __attribute__((vector_size(64)));
#else
    typedef float vf __attribute__((vector_size(32)));
#endif
    enum { ACC = 12, LANES = (int)(sizeof(vf) / sizeof(float)) }; /* 12 chains cover latency x ports */
    const long iters = 3000000;
    volatile float vb = 0.999999f, vc = 1e-7f; /* not constants: the loop must run */
    double best = 0;
    for (int r = 0; r < reps; r++) {
        int nt = 1;
        double t0 = bench_now_s();
        float sink = 0;
#pragma omp parallel reduction(+ : sink)
        {
#ifdef _OPENMP
#pragma omp single
            nt = omp_get_num_threads();
#endif
            vf b, c, a[ACC];
            for (int l = 0; l < LANES; l++)
                b[l] = vb, c[l] = vc;
            for (int i = 0; i < ACC; i++)
                for (int l = 0; l < LANES; l++)
                    a[i][l] = (float)(i + l);
            for (long it = 0; it < iters; it++)
                for (int i = 0; i < ACC; i++)
                    a[i] = a[i] * b + c; /* one vfmadd each (-ffp-contract=fast, GCC's default) */
            for (int i = 0; i < ACC; i++)
                for (int l = 0; l < LANES; l++)
                    sink += a[i][l];
        }
        double dt = bench_now_s() - t0;
        double g = 2.0 * ACC * LANES * (double)iters * nt / dt * 1e-9;
        best = g > best && sink == sink ? g : best;
    }
    return best;
}

#endif
