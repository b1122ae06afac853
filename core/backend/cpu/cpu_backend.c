/* The CPU backend: its table, device information and memory plan (see cpu.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/backend/cpu/cpu.h"
#include "core/backend/cpu/gemm.h"
#include "core/backend/cpu/llama.h"

static int cpu_count(void) { return 1; }

static hl_status cpu_probe(int index) {
    if (index != 0)
        return hl_fail(HL_ERR_NOT_FOUND, "there is one cpu device");
    return HL_OK;
}

static hl_status cpu_open(hl_backend *be) {
    be->impl = NULL;
    return HL_OK;
}

static void cpu_close(hl_backend *be) { (void)be; }

/* "model name : Intel(R) Xeon(R) ..." from /proc/cpuinfo ("" if not there). */
static void cpu_model_name(char *out, size_t size) {
    out[0] = '\0';
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10))
            continue;
        const char *v = strchr(line, ':');
        if (!v)
            break;
        v++;
        while (*v == ' ' || *v == '\t')
            v++;
        snprintf(out, size, "%s", v);
        size_t n = strlen(out);
        while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
            out[--n] = '\0';
        break;
    }
    fclose(f);
}

/* A "Key:   123 kB" line of /proc/meminfo, in bytes (-1 if absent). */
static int64_t meminfo(const char *key) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return -1;
    char line[256];
    int64_t v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            v = strtoll(line + kl + 1, NULL, 10) * 1024;
            break;
        }
    fclose(f);
    return v;
}

static int64_t self_rss(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    long long size = 0, res = 0;
    int k = fscanf(f, "%lld %lld", &size, &res);
    fclose(f);
    return k == 2 ? res * (int64_t)sysconf(_SC_PAGESIZE) : -1;
}

static hl_status cpu_get_info(hl_backend *be, hl_backend_info *info) {
    char model[96];
    cpu_model_name(model, sizeof model);
    info->threads = cpu_threads(be);
    snprintf(info->device, sizeof info->device, "%s (%d thread%s)", model[0] ? model : "CPU", info->threads,
             info->threads == 1 ? "" : "s");
    /* what bf16 compute runs here: oneDNN with the CPU's ISA, or the f32 fallback and why */
    hl_gemm_describe(HL_COMPUTE_BF16, HL_DTYPE_BF16, info->compute, sizeof info->compute);
    info->is_gpu = 0;
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    info->mem_total = pages > 0 && psize > 0 ? (int64_t)pages * psize : -1;
    info->mem_free = meminfo("MemAvailable");
    info->mem_used_self = self_rss();
    info->util_percent = -1;
    return HL_OK;
}

static hl_status cpu_set_threads(hl_backend *be, int n) {
    (void)be;
    (void)n; /* stored by backend.c; applied by cpu_enter at every call */
    return HL_OK;
}

static hl_status cpu_compute_path(hl_backend *be, hl_compute c, const hl_llama_config *cfg, hl_dtype weight_dtype,
                                  char *buf, size_t size) {
    (void)be;
    const int64_t big = (int64_t)1 << 20; /* no config: a large model */
    hl_gemm_describe_shape(c, weight_dtype, cfg ? cfg->hidden_dim : big, cfg ? cfg->dim : big, buf, size);
    return HL_OK;
}

static hl_status cpu_plan(hl_backend *be, const hl_llama_config *cfg, hl_dtype weight_dtype,
                          const hl_adapter_config *acfg, int batch, int seq, unsigned flags, hl_mem_plan *plan) {
    cpu_enter(be); /* attention scratch is planned per thread */
    HL_TRY(hl_llama_plan(cfg, acfg, batch, seq, flags, plan));
    plan->weights = (size_t)hl_model_param_count(cfg) * hl_dtype_size(weight_dtype);
    return HL_OK;
}

const hl_backend_ops hl_backend_cpu_ops = {
    .kind = "cpu",
    .count = cpu_count,
    .probe = cpu_probe,
    .open = cpu_open,
    .close = cpu_close,
    .get_info = cpu_get_info,
    .set_threads = cpu_set_threads,
    .compute_path = cpu_compute_path,
    .plan = cpu_plan,
    .session_init = cpu_session_init,
    .session_free = cpu_session_free,
    .train_microbatch = cpu_train_microbatch,
    .zero_grad = cpu_zero_grad,
    .eval = cpu_eval,
    .logits = cpu_logits,
    .reduce_grads = cpu_reduce_grads,
    .optim_step = cpu_optim_step,
    .routing = cpu_routing,
    .routing_reset = cpu_routing_reset,
    .collect_eval_stats = cpu_collect_eval_stats,
    .read_slab = cpu_read_slab,
    .write_slab = cpu_write_slab,
    .dropout_step = cpu_dropout_step,
    .set_dropout_step = cpu_set_dropout_step,
    .session_set_compute = cpu_session_set_compute,
    .decoder_init = cpu_decoder_init,
    .decoder_free = cpu_decoder_free,
    .decoder_bytes = cpu_decoder_bytes,
    .decoder_forward = cpu_decoder_forward,
    .decoder_share_prefix = cpu_decoder_share_prefix,
    .decoder_release = cpu_decoder_release,
    .decoder_set_compute = cpu_decoder_set_compute,
};
