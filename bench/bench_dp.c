/* Data-parallel training-step benchmark: tokens/s of one optimizer step split over K processes
 * (mpirun -np K, each with T threads) and the communication time per step, through the same
 * pieces the trainer uses: the sharding rule (core/comm/shard.h), the seam's training
 * micro-batch, its gradient-reduction hook (hl_session_reduce_grads: the deterministic
 * rank-order all-reduce of core/comm) and the AdamW step.
 *
 *   mpirun -np K [--map-by slot:PE=T] bench_dp --shape stories|7b [--accum G] [--seq T] [--steps N]
 *                                            [--threads T] [--no-warmup]
 *
 * One optimizer step = G micro-batches of 1 x seq tokens (default 512; the global batch; default G = 4, so
 * K = 1, 2, 4 split it evenly); rank k computes its block of them. A first step warms caches and
 * threads up and is not counted (--no-warmup: every step counts, for slow shapes). Printed per step (rank 0):
 * wall time, compute (the slowest rank's micro-batches), wait (barrier before the reduction:
 * load imbalance), reduce (the gradient all-reduce itself) and the optimizer step; then
 * tokens/s = G*512 / mean step time, and the reduce time as a share of the step. The shapes
 * are bench_train's: stories260K (dim 64, 5 layers, f32) and LLaMA-2-7B blocks (2 of 32
 * layers, bf16 weights), HydraLoRA r=8 N=4 on gate/up/down, random weights (same on every
 * rank: the fill is a function of the position only). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "bench_model.h"
#include "core/adapter/adapter.h"
#include "core/adapter/optim.h"
#include "core/backend/backend.h"
#include "core/comm/comm.h"
#include "core/comm/shard.h"
#include "core/model/model.h"

static void die(hl_comm *c, const char *what) {
    fprintf(stderr, "bench_dp: rank %d: %s: %s\n", hl_comm_rank(c), what, hl_last_error());
    hl_comm_abort(c, 1);
}

/* max over ranks of a double (as the largest of the gathered values) */
static double max_over_ranks(hl_comm *c, double v) {
    int K = hl_comm_size(c);
    double *all = malloc((size_t)K * sizeof *all);
    if (!all || hl_comm_allgather(c, &v, sizeof v, all))
        die(c, "allgather");
    double m = all[0];
    for (int r = 1; r < K; r++)
        m = all[r] > m ? all[r] : m;
    free(all);
    return m;
}

int main(int argc, char **argv) {
    const char *shape = "stories";
    int G = 4, steps = 4, threads = 0, T = 512, warmup = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--shape") && i + 1 < argc)
            shape = argv[++i];
        else if (!strcmp(argv[i], "--accum") && i + 1 < argc)
            G = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seq") && i + 1 < argc)
            T = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-warmup"))
            warmup = 0;
        else {
            int help = !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
            fprintf(help ? stdout : stderr,
                    "usage: [mpirun -np K] bench_dp [--shape stories|7b] [--accum G] [--seq T] [--steps N] [--threads T] "
                    "[--no-warmup]\n");
            return help ? 0 : 2;
        }
    }
    if (G < 1 || steps < 1 || T < 2 || T > 512 || (strcmp(shape, "stories") && strcmp(shape, "7b"))) {
        fprintf(stderr, "bench_dp: --shape stories|7b, --accum >= 1, --steps >= 1, --seq 2..512\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    hl_comm *comm;
    if (hl_comm_open(&comm) != HL_OK) {
        fprintf(stderr, "bench_dp: %s\n", hl_last_error());
        return 1;
    }
    int rank = hl_comm_rank(comm), K = hl_comm_size(comm);
    hl_backend *be = NULL;
    if (hl_backend_open(&be, "cpu") != HL_OK || hl_backend_set_threads(be, threads) != HL_OK)
        die(comm, "cpu backend");
    hl_backend_info bi;
    hl_backend_get_info(be, &bi);

    hl_llama_config stories = {.dim = 64, .hidden_dim = 172, .n_layers = 5, .n_heads = 8, .n_kv_heads = 4,
                               .head_dim = 8, .vocab_size = 512, .max_seq_len = 512, .rms_norm_eps = 1e-5f,
                               .rope_theta = 10000.0f, .tie_word_embeddings = 1};
    hl_llama_config l7 = {.dim = 4096, .hidden_dim = 11008, .n_layers = 2, .n_heads = 32, .n_kv_heads = 32,
                          .head_dim = 128, .vocab_size = 32000, .max_seq_len = 4096, .rms_norm_eps = 1e-5f,
                          .rope_theta = 10000.0f, .tie_word_embeddings = 0};
    int is7 = !strcmp(shape, "7b");
    const hl_llama_config *c = is7 ? &l7 : &stories;
    hl_dtype dt = is7 ? HL_DTYPE_BF16 : HL_DTYPE_F32;
    const int B = 1;
    bench_model bm;
    bench_model_build(&bm, c, dt);
    hl_adapter_config ac = {.variant = HL_VARIANT_HYDRA, .targets = HL_TARGETS_DEFAULT, .r = 8, .n_heads = 4,
                            .alpha = 32.0f, .dropout = 0.05f};
    hl_session *sess;
    if (hl_session_create(&sess, be, &bm.m, &ac, 41, B, T, HL_SESSION_TRAIN | HL_SESSION_STATS) != HL_OK)
        die(comm, "session");
    size_t np = hl_session_layout(sess)->n_params;
    float *buf = malloc(np * sizeof *buf);
    hl_session_read_slab(sess, HL_SLAB_PARAMS, 0, np, buf);
    for (size_t i = 0; i < np; i++) /* non-zero B so every product is real work */
        if (buf[i] == 0.0f)
            buf[i] = 1e-3f;
    hl_session_write_slab(sess, HL_SLAB_PARAMS, 0, np, buf);
    int first, count;
    hl_shard_microbatches(G, K, rank, &first, &count);
    if (rank == 0)
        printf("bench_dp %s: %d rank%s x %d threads (%s), global batch %d micro-batches of %dx%d, this rank %d..%d; "
               "adapter %zu params (%.2f MiB of gradients reduced per step)\n",
               shape, K, K == 1 ? "" : "s", bi.threads, bi.device, G, B, T, first, first + count - 1, np,
               np * 4.0 / 1048576.0);

    int32_t *tokens = malloc(sizeof(int32_t) * B * T), *labels = malloc(sizeof(int32_t) * B * T), len = T, st0, sl0;
    hl_batch batch;
    hl_optim_config oc = hl_optim_defaults();
    oc.total_steps = steps + 1;
    double sum_step = 0, sum_comp = 0, sum_wait = 0, sum_red = 0, sum_opt = 0;
    for (int s = 1 - warmup; s <= steps; s++) { /* step 0 warms caches and threads up */
        if (hl_comm_barrier(comm))
            die(comm, "barrier");
        double t0 = bench_now_s();
        hl_session_zero_grad(sess);
        hl_session_set_dropout_step(sess, (uint64_t)s * G + (uint64_t)first);
        float loss = 0;
        for (int a = first; a < first + count; a++) {
            for (int i = 0; i < B * T; i++) /* micro-batch a of step s: the same tokens whoever computes it */
                tokens[i] = labels[i] = (int32_t)(((unsigned)i * 7919u + 13u * (unsigned)(a + s * G + 1)) %
                                                  (unsigned)c->vocab_size);
            hl_batch_padded(&batch, tokens, labels, &len, B, T, &st0, &sl0);
            int64_t ntg;
            if (hl_session_train_microbatch(sess, &batch, 1.0f / (float)G, &loss, &ntg))
                die(comm, "micro-batch");
        }
        double t1 = bench_now_s();
        if (hl_comm_barrier(comm)) /* (the bench only: separates waiting for the slowest rank from the reduction) */
            die(comm, "barrier");
        double t2 = bench_now_s();
        if (hl_session_reduce_grads(sess, comm))
            die(comm, "gradient reduction");
        double t3 = bench_now_s();
        double gn;
        if (hl_session_optim_step(sess, s + 1, hl_lr_at(&oc, s), &oc, &gn))
            die(comm, "optimizer step");
        double t4 = bench_now_s();
        double comp = max_over_ranks(comm, t1 - t0), red = max_over_ranks(comm, t3 - t2);
        double step = max_over_ranks(comm, t4 - t0), wait = max_over_ranks(comm, t2 - t1);
        double opt = max_over_ranks(comm, t4 - t3);
        if (rank == 0)
            printf("  step %d: %.4f s = compute %.4f + wait %.4f + reduce %.4f + adamw %.4f%s\n", s, step, comp,
                   wait, red, opt, s == 0 ? " (warm-up, not counted)" : "");
        if (s > 0) {
            sum_step += step, sum_comp += comp, sum_wait += wait, sum_red += red, sum_opt += opt;
        }
    }
    /* the ranks' parameters must agree bit for bit after the identical steps */
    hl_session_read_slab(sess, HL_SLAB_PARAMS, 0, np, buf);
    if (hl_comm_check_agree(comm, hl_checksum64(buf, np * sizeof *buf), "adapter checksum"))
        die(comm, "agreement");
    if (rank == 0) {
        double m = sum_step / steps;
        printf("RESULT shape=%s ranks=%d threads=%d tokens_per_s=%.1f step_s=%.4f compute_s=%.4f wait_s=%.4f "
               "reduce_s=%.5f adamw_s=%.4f reduce_share=%.2f%% grad_mib=%.2f agree=yes\n",
               shape, K, bi.threads, (double)G * B * T / m, m, sum_comp / steps, sum_wait / steps, sum_red / steps,
               sum_opt / steps, 100.0 * sum_red / sum_step, np * 4.0 / 1048576.0);
    }
    free(buf), free(tokens), free(labels);
    hl_session_free(sess);
    bench_model_free(&bm);
    hl_backend_close(be);
    hl_comm_close(comm);
    return 0;
}
