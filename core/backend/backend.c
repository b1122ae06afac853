/* The seam's front (see backend.h): the registry of implementations, device names, the checks
 * that do not depend on the device, and dispatch through each implementation's table
 * (backend_impl.h). An implementation may therefore assume valid arguments. */
#include "core/backend/backend.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend/backend_impl.h"

/* ---- registry ---------------------------------------------------------------------------- */

/* GPU kinds first: "auto" picks the first usable device of the first GPU kind. */
static const hl_backend_ops *const registry[] = {
#ifdef HL_HAVE_CUDA
    &hl_backend_cuda_ops,
#endif
    &hl_backend_cpu_ops,
};
#define N_KINDS ((int)(sizeof registry / sizeof registry[0]))

static const hl_backend_ops *find_kind(const char *kind, size_t len) {
    for (int i = 0; i < N_KINDS; i++)
        if (strlen(registry[i]->kind) == len && !strncmp(registry[i]->kind, kind, len))
            return registry[i];
    return NULL;
}

static int is_gpu_kind(const hl_backend_ops *ops) { return strcmp(ops->kind, "cpu") != 0; }

/* Canonical name of device `index` of a kind ("cpu", "cuda:1"). */
static void canonical_name(const hl_backend_ops *ops, int index, char *out, size_t size) {
    if (is_gpu_kind(ops))
        snprintf(out, size, "%s:%d", ops->kind, index);
    else
        snprintf(out, size, "%s", ops->kind);
}

const char *hl_backend_available(void) {
    static _Thread_local char buf[512];
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; i < N_KINDS; i++) {
        const hl_backend_ops *ops = registry[i];
        int n = is_gpu_kind(ops) ? ops->count() : 1;
        for (int d = 0; d < n && k + 40 < sizeof buf; d++) {
            if (ops->probe(d) != HL_OK)
                continue;
            char name[32];
            canonical_name(ops, d, name, sizeof name);
            k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%s", k ? ", " : "", name);
        }
    }
    hl_clear_error(); /* probes of unusable devices leave their reasons behind */
    return buf;
}

/* HL_ERR_NOT_FOUND: `what`, then the devices there are (probing them only now, on failure). */
static hl_status not_found(const char *what) {
    char msg[600], avail[512];
    snprintf(msg, sizeof msg, "%s", what); /* `what` may be the current error detail itself */
    snprintf(avail, sizeof avail, "%s", hl_backend_available());
    return hl_fail(HL_ERR_NOT_FOUND, "%s; available: %s (or auto)", msg, avail);
}

/* Parse "cpu", "cuda", "cuda:N", "auto" (case-insensitive, surrounding blanks ignored) into a
 * kind and a device index. */
static hl_status parse_name(const char *given, const hl_backend_ops **ops_out, int *index) {
    char name[64], low[64], what[512];
    size_t n = 0;
    if (!given)
        given = "";
    while (isspace((unsigned char)*given))
        given++;
    for (; given[n] && n + 1 < sizeof name; n++)
        name[n] = given[n];
    while (n > 0 && isspace((unsigned char)name[n - 1]))
        n--;
    name[n] = '\0';
    for (size_t i = 0; i <= n; i++)
        low[i] = (char)tolower((unsigned char)name[i]);
    if (n == 0)
        return not_found("no device named");
    if (!strcmp(low, "auto")) {
        for (int i = 0; i < N_KINDS; i++) {
            const hl_backend_ops *ops = registry[i];
            if (!is_gpu_kind(ops) || ops->count() < 1 || ops->probe(0) != HL_OK)
                continue;
            *ops_out = ops;
            *index = 0;
            return HL_OK;
        }
        hl_clear_error(); /* the reasons why no GPU is usable */
        *ops_out = find_kind("cpu", 3);
        *index = 0;
        return HL_OK;
    }
    const char *colon = strchr(low, ':');
    size_t klen = colon ? (size_t)(colon - low) : n;
    long idx = 0;
    if (colon) {
        char *end = NULL;
        idx = strtol(colon + 1, &end, 10);
        if (!colon[1] || *end || idx < 0 || idx > 1023) {
            snprintf(what, sizeof what, "device '%s': expected a device number after ':'", name);
            return not_found(what);
        }
    }
    const hl_backend_ops *ops = find_kind(low, klen);
    if (!ops) {
        if (klen == 4 && !strncmp(low, "cuda", 4))
            snprintf(what, sizeof what, "device '%s' is not available: this build has no CUDA support", name);
        else
            snprintf(what, sizeof what, "unknown device '%s'", name);
        return not_found(what);
    }
    if (!is_gpu_kind(ops) && idx != 0) {
        snprintf(what, sizeof what, "device '%s': there is one cpu device, named cpu", name);
        return not_found(what);
    }
    if (is_gpu_kind(ops) && ops->probe((int)idx) != HL_OK) {
        char why[300];
        snprintf(why, sizeof why, "%s", hl_last_error());
        snprintf(what, sizeof what, "device '%s' is not usable: %s", name, why);
        return not_found(what);
    }
    *ops_out = ops;
    *index = (int)idx;
    return HL_OK;
}

hl_status hl_backend_resolve(const char *name, char *canonical, size_t size) {
    const hl_backend_ops *ops;
    int index;
    HL_TRY(parse_name(name, &ops, &index));
    if (canonical && size)
        canonical_name(ops, index, canonical, size);
    return HL_OK;
}

hl_status hl_backend_open(hl_backend **out, const char *name) {
    if (!out)
        return hl_fail(HL_ERR_ARG, "hl_backend_open: no output handle");
    *out = NULL;
    const hl_backend_ops *ops;
    int index;
    HL_TRY(parse_name(name, &ops, &index));
    hl_backend *be = calloc(1, sizeof *be);
    if (!be)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    be->ops = ops;
    be->device = index;
    canonical_name(ops, index, be->name, sizeof be->name);
    hl_status st = ops->open(be);
    if (st != HL_OK) {
        free(be);
        return hl_fail_context(st, "opening device %s", name);
    }
    *out = be;
    return HL_OK;
}

void hl_backend_close(hl_backend *be) {
    if (!be)
        return;
    be->ops->close(be);
    free(be);
}

hl_status hl_backend_get_info(hl_backend *be, hl_backend_info *info) {
    if (!be || !info)
        return hl_fail(HL_ERR_ARG, "hl_backend_get_info: missing argument");
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "%s", be->name);
    info->mem_free = info->mem_used_self = -1;
    info->util_percent = -1;
    return be->ops->get_info(be, info);
}

hl_status hl_backend_set_threads(hl_backend *be, int n) {
    if (!be)
        return hl_fail(HL_ERR_ARG, "hl_backend_set_threads: no backend");
    if (n > 4096)
        return hl_fail(HL_ERR_RANGE, "threads: %d is more than 4096", n);
    HL_TRY(be->ops->set_threads(be, n));
    be->threads = n;
    return HL_OK;
}

/* ---- compute modes -------------------------------------------------------------------------- */

const char *hl_compute_name(hl_compute c) {
    switch (c) {
    case HL_COMPUTE_AUTO: return "auto";
    case HL_COMPUTE_F32: return "f32";
    case HL_COMPUTE_BF16: return "bf16";
    }
    return "?";
}

int hl_compute_parse(const char *s, hl_compute *out) {
    static const hl_compute all[] = {HL_COMPUTE_AUTO, HL_COMPUTE_F32, HL_COMPUTE_BF16};
    for (size_t i = 0; s && i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(s, hl_compute_name(all[i]))) {
            *out = all[i];
            return 0;
        }
    return -1;
}

static hl_status check_compute(hl_compute c) {
    if (c != HL_COMPUTE_AUTO && c != HL_COMPUTE_F32 && c != HL_COMPUTE_BF16)
        return hl_fail(HL_ERR_ARG, "unknown compute mode %d (auto, f32 or bf16)", (int)c);
    return HL_OK;
}

hl_status hl_backend_compute_path(hl_backend *be, hl_compute c, const hl_llama_config *cfg, hl_dtype weight_dtype,
                                  char *buf, size_t size) {
    if (!be || !buf || !size)
        return hl_fail(HL_ERR_ARG, "hl_backend_compute_path: missing argument");
    HL_TRY(check_compute(c));
    if (be->ops->compute_path)
        return be->ops->compute_path(be, c, cfg, weight_dtype, buf, size);
    hl_backend_info info;
    HL_TRY(hl_backend_get_info(be, &info));
    snprintf(buf, size, "%s", info.compute);
    return HL_OK;
}

/* ---- memory plan --------------------------------------------------------------------------- */

static const unsigned all_flags = HL_SESSION_TRAIN | HL_SESSION_CHECKPOINT | HL_SESSION_STATS;

static hl_status check_shape(const hl_llama_config *cfg, const hl_adapter_config *acfg, int batch, int seq,
                             unsigned flags) {
    if (batch < 1 || seq < 1)
        return hl_fail(HL_ERR_ARG, "batch (%d) and sequence length (%d) must be at least 1", batch, seq);
    if (flags & ~all_flags)
        return hl_fail(HL_ERR_ARG, "unknown session flags 0x%x", flags & ~all_flags);
    if ((flags & HL_SESSION_TRAIN) && !acfg)
        return hl_fail(HL_ERR_STATE, "training needs adapters: the base model is frozen");
    HL_TRY(hl_llama_config_check(cfg, "model"));
    if (acfg)
        HL_TRY(hl_adapter_config_check(acfg));
    return HL_OK;
}

hl_status hl_backend_plan(hl_backend *be, const hl_llama_config *cfg, hl_dtype weight_dtype,
                          const hl_adapter_config *acfg, int batch, int seq, unsigned flags, hl_mem_plan *plan) {
    if (!be || !cfg || !plan)
        return hl_fail(HL_ERR_ARG, "hl_backend_plan: missing argument");
    memset(plan, 0, sizeof *plan);
    HL_TRY(check_shape(cfg, acfg, batch, seq, flags));
    return be->ops->plan(be, cfg, weight_dtype, acfg, batch, seq, flags, plan);
}

/* ---- batches ------------------------------------------------------------------------------- */

void hl_batch_padded(hl_batch *b, const int32_t *tokens, const int32_t *labels, const int32_t *lengths, int B, int T,
                     int32_t *starts, int32_t *lens) {
    for (int r = 0; r < B; r++) {
        starts[r] = (int32_t)((int64_t)r * T);
        lens[r] = lengths ? lengths[r] : T;
    }
    b->B = B;
    b->T = T;
    b->tokens = tokens;
    b->labels = labels;
    b->n_seq = B;
    b->seq_start = starts;
    b->seq_len = lens;
}

/* The batch fits the session and its examples tile each row from column 0 (see hl_batch). */
static hl_status check_batch(const hl_session *s, const hl_batch *b, int need_labels) {
    if (!b || !b->tokens || !b->seq_start || !b->seq_len)
        return hl_fail(HL_ERR_ARG, "batch: tokens and example table are required");
    if (need_labels && !b->labels)
        return hl_fail(HL_ERR_ARG, "batch: labels are required for a loss");
    if (b->B < 1 || b->T < 1 || (int64_t)b->B * b->T > (int64_t)s->batch * s->seq)
        return hl_fail(HL_ERR_ARG, "batch %d x %d does not fit the session planned for %d x %d", b->B, b->T,
                       s->batch, s->seq);
    if (b->n_seq < b->B || (int64_t)b->n_seq > (int64_t)b->B * b->T)
        return hl_fail(HL_ERR_ARG, "batch: %d examples for %d rows (every row holds at least one)", b->n_seq,
                       b->B);
    int64_t row_end = 0; /* flat position where the current row's next example must start */
    int row = -1;
    for (int e = 0; e < b->n_seq; e++) {
        int64_t st = b->seq_start[e], len = b->seq_len[e];
        if (len < 1 || st < 0 || st + len > (int64_t)b->B * b->T)
            return hl_fail(HL_ERR_ARG, "batch: example %d (start %lld, length %lld) is outside the %d x %d batch", e,
                           (long long)st, (long long)len, b->B, b->T);
        int r = (int)(st / b->T);
        if ((st + len - 1) / b->T != r)
            return hl_fail(HL_ERR_ARG, "batch: example %d crosses the end of row %d", e, r);
        if (len > s->seq)
            return hl_fail(HL_ERR_ARG, "batch: example %d has %lld tokens, the session was planned for examples of at "
                           "most %d", e, (long long)len, s->seq);
        if (r != row) {
            if (r != row + 1)
                return hl_fail(HL_ERR_ARG, "batch: row %d holds no example", row + 1);
            if (st != (int64_t)r * b->T)
                return hl_fail(HL_ERR_ARG, "batch: the first example of row %d does not start at column 0", r);
            row = r;
        } else if (st != row_end) {
            return hl_fail(HL_ERR_ARG, "batch: example %d does not follow example %d without a gap", e, e - 1);
        }
        row_end = st + len;
    }
    if (row != b->B - 1)
        return hl_fail(HL_ERR_ARG, "batch: row %d holds no example", row + 1);
    const int V = s->model->cfg.vocab_size;
    for (int e = 0; e < b->n_seq; e++)
        for (int64_t i = b->seq_start[e]; i < (int64_t)b->seq_start[e] + b->seq_len[e]; i++)
            if (b->tokens[i] < 0 || b->tokens[i] >= V)
                return hl_fail(HL_ERR_RANGE, "token id %d at row %lld position %lld is outside the vocabulary "
                               "(0..%d)", b->tokens[i], (long long)(i / b->T), (long long)(i % b->T), V - 1);
    return HL_OK;
}

/* ---- sessions ------------------------------------------------------------------------------- */

hl_status hl_session_create(hl_session **out, hl_backend *be, const hl_model *model, const hl_adapter_config *acfg,
                            uint64_t seed, int batch, int seq, unsigned flags) {
    if (!out)
        return hl_fail(HL_ERR_ARG, "hl_session_create: no output handle");
    *out = NULL;
    if (!be || !model || !model->layers)
        return hl_fail(HL_ERR_ARG, "a session needs a backend and a loaded model");
    HL_TRY(check_shape(&model->cfg, acfg, batch, seq, flags));
    hl_session *s = calloc(1, sizeof *s);
    if (!s)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    s->ops = be->ops;
    s->be = be;
    s->model = model;
    s->batch = batch;
    s->seq = seq;
    s->flags = flags;
    if (acfg) {
        hl_status st = hl_adapters_create(&s->layout, &model->cfg, acfg, seed);
        if (st != HL_OK) {
            free(s);
            return st;
        }
        s->has_adapters = 1;
    }
    hl_status st = be->ops->session_init(s);
    if (st != HL_OK) {
        if (s->has_adapters)
            hl_adapters_free(&s->layout);
        free(s);
        return st;
    }
    *out = s;
    return HL_OK;
}

void hl_session_free(hl_session *s) {
    if (!s)
        return;
    s->ops->session_free(s);
    if (s->has_adapters)
        hl_adapters_free(&s->layout);
    free(s);
}

const hl_mem_plan *hl_session_mem_plan(const hl_session *s) { return s ? &s->plan : NULL; }

hl_status hl_session_set_compute(hl_session *s, hl_compute c) {
    if (!s)
        return hl_fail(HL_ERR_ARG, "hl_session_set_compute: no session");
    HL_TRY(check_compute(c));
    if (s->ops->session_set_compute)
        HL_TRY(s->ops->session_set_compute(s, c));
    s->compute = c;
    return HL_OK;
}

hl_compute hl_session_compute(const hl_session *s) { return s ? s->compute : HL_COMPUTE_AUTO; }

const hl_adapters *hl_session_layout(const hl_session *s) { return s && s->has_adapters ? &s->layout : NULL; }

static hl_status need_train(const hl_session *s, const char *what) {
    if (!(s->flags & HL_SESSION_TRAIN))
        return hl_fail(HL_ERR_STATE, "%s: this session was created for evaluation only (no HL_SESSION_TRAIN)", what);
    return HL_OK;
}

hl_status hl_session_train_microbatch(hl_session *s, const hl_batch *b, float grad_scale, float *loss,
                                      int64_t *n_targets) {
    if (!s)
        return hl_fail(HL_ERR_ARG, "no session");
    HL_TRY(need_train(s, "training micro-batch"));
    HL_TRY(check_batch(s, b, 1));
    return s->ops->train_microbatch(s, b, grad_scale, loss, n_targets);
}

hl_status hl_session_zero_grad(hl_session *s) {
    if (!s)
        return hl_fail(HL_ERR_ARG, "no session");
    HL_TRY(need_train(s, "zero_grad"));
    return s->ops->zero_grad(s);
}

hl_status hl_session_eval(hl_session *s, const hl_batch *b, float *loss, int64_t *n_targets, double *seq_loss_sum,
                          int64_t *seq_count) {
    if (!s)
        return hl_fail(HL_ERR_ARG, "no session");
    HL_TRY(check_batch(s, b, 1));
    return s->ops->eval(s, b, loss, n_targets, seq_loss_sum, seq_count);
}

hl_status hl_session_logits(hl_session *s, const hl_batch *b, float *logits) {
    if (!s || !logits)
        return hl_fail(HL_ERR_ARG, "hl_session_logits: missing argument");
    HL_TRY(check_batch(s, b, 0));
    return s->ops->logits(s, b, logits);
}

hl_status hl_session_reduce_grads(hl_session *s, struct hl_comm *comm) {
    if (!s)
        return hl_fail(HL_ERR_ARG, "no session");
    HL_TRY(need_train(s, "gradient reduction"));
    return s->ops->reduce_grads(s, comm);
}

hl_status hl_session_optim_step(hl_session *s, int64_t t, float lr, const hl_optim_config *oc, double *grad_norm) {
    if (!s || !oc)
        return hl_fail(HL_ERR_ARG, "hl_session_optim_step: missing argument");
    HL_TRY(need_train(s, "optimizer step"));
    if (t < 1)
        return hl_fail(HL_ERR_ARG, "AdamW step count must start at 1 (got %lld)", (long long)t);
    return s->ops->optim_step(s, t, lr, oc, grad_norm);
}

static hl_status check_stats(const hl_session *s, hl_stats_which which) {
    if (which != HL_STATS_TRAIN && which != HL_STATS_EVAL)
        return hl_fail(HL_ERR_ARG, "unknown routing statistics %d", (int)which);
    if (!s->has_adapters || !s->layout.has_router)
        return hl_fail(HL_ERR_STATE, "routing statistics: this session's adapter has no router");
    return HL_OK;
}

hl_status hl_session_routing(hl_session *s, hl_stats_which which, hl_routing_stats *dst) {
    if (!s || !dst)
        return hl_fail(HL_ERR_ARG, "hl_session_routing: missing argument");
    HL_TRY(check_stats(s, which));
    if (dst->n_layers != s->layout.n_layers || dst->N != s->layout.N || !dst->tokens)
        return hl_fail(HL_ERR_SHAPE, "routing statistics for %d layers x %d heads, the session has %d x %d",
                       dst->n_layers, dst->N, s->layout.n_layers, s->layout.N);
    return s->ops->routing(s, which, dst);
}

hl_status hl_session_routing_reset(hl_session *s, hl_stats_which which) {
    if (!s)
        return hl_fail(HL_ERR_ARG, "no session");
    HL_TRY(check_stats(s, which));
    return s->ops->routing_reset(s, which);
}

void hl_session_collect_eval_stats(hl_session *s, int on) {
    if (s && s->has_adapters && s->layout.has_router)
        s->ops->collect_eval_stats(s, on);
}

static hl_status check_slab(const hl_session *s, hl_slab which, size_t offset, size_t n, const void *buf) {
    if (!s->has_adapters)
        return hl_fail(HL_ERR_STATE, "a base-model session has no adapter slabs");
    if (which < HL_SLAB_PARAMS || which > HL_SLAB_ADAM_V)
        return hl_fail(HL_ERR_ARG, "unknown slab %d", (int)which);
    if (which != HL_SLAB_PARAMS && !(s->flags & HL_SESSION_TRAIN))
        return hl_fail(HL_ERR_STATE, "an evaluation session holds no gradients or moments");
    if (offset > s->layout.n_params || n > s->layout.n_params - offset)
        return hl_fail(HL_ERR_RANGE, "slab range [%zu, %zu) is outside the %zu adapter parameters", offset,
                       offset + n, s->layout.n_params);
    if (n && !buf)
        return hl_fail(HL_ERR_ARG, "slab copy: no host buffer");
    return HL_OK;
}

hl_status hl_session_read_slab(hl_session *s, hl_slab which, size_t offset, size_t n, float *dst) {
    if (!s)
        return hl_fail(HL_ERR_ARG, "no session");
    HL_TRY(check_slab(s, which, offset, n, dst));
    return n ? s->ops->read_slab(s, which, offset, n, dst) : HL_OK;
}

hl_status hl_session_write_slab(hl_session *s, hl_slab which, size_t offset, size_t n, const float *src) {
    if (!s)
        return hl_fail(HL_ERR_ARG, "no session");
    HL_TRY(check_slab(s, which, offset, n, src));
    return n ? s->ops->write_slab(s, which, offset, n, src) : HL_OK;
}

uint64_t hl_session_dropout_step(const hl_session *s) { return s && s->has_adapters ? s->ops->dropout_step(s) : 0; }

void hl_session_set_dropout_step(hl_session *s, uint64_t step) {
    if (s && s->has_adapters)
        s->ops->set_dropout_step(s, step);
}

/* ---- decoder -------------------------------------------------------------------------------- */

hl_status hl_decoder_create(hl_decoder **out, hl_backend *be, const hl_model *model, const hl_adapters *ad,
                            int slots, int max_seq, int max_rows) {
    if (!out)
        return hl_fail(HL_ERR_ARG, "hl_decoder_create: no output handle");
    *out = NULL;
    if (!be || !model || !model->layers)
        return hl_fail(HL_ERR_ARG, "a decoder needs a backend and a loaded model");
    if (slots < 1 || max_seq < 1 || max_rows < 1)
        return hl_fail(HL_ERR_ARG, "a decoder needs at least one slot, position and row (got %d, %d, %d)", slots,
                       max_seq, max_rows);
    HL_TRY(hl_llama_config_check(&model->cfg, "model"));
    if (ad && ad->n_layers != model->cfg.n_layers)
        return hl_fail(HL_ERR_SHAPE, "adapter has %d layers but the model has %d", ad->n_layers,
                       model->cfg.n_layers);
    hl_decoder *d = calloc(1, sizeof *d);
    if (!d)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    d->ops = be->ops;
    d->be = be;
    d->model = model;
    d->slots = slots;
    d->max_seq = max_seq;
    d->max_rows = max_rows;
    hl_status st = be->ops->decoder_init(d, ad);
    if (st != HL_OK) {
        free(d);
        return st;
    }
    *out = d;
    return HL_OK;
}

void hl_decoder_free(hl_decoder *d) {
    if (!d)
        return;
    d->ops->decoder_free(d);
    free(d);
}

size_t hl_decoder_bytes(const hl_decoder *d) { return d ? d->ops->decoder_bytes(d) : 0; }

void hl_decoder_cache_use(const hl_decoder *d, size_t *peak_bytes, size_t *pool_bytes) {
    size_t peak = 0, pool = 0;
    if (d && d->ops->decoder_cache_use)
        d->ops->decoder_cache_use(d, &peak, &pool);
    else if (d)
        peak = pool = d->ops->decoder_bytes(d);
    if (peak_bytes)
        *peak_bytes = peak;
    if (pool_bytes)
        *pool_bytes = pool;
}

hl_status hl_decoder_set_compute(hl_decoder *d, hl_compute c) {
    if (!d)
        return hl_fail(HL_ERR_ARG, "hl_decoder_set_compute: no decoder");
    HL_TRY(check_compute(c));
    if (d->ops->decoder_set_compute)
        HL_TRY(d->ops->decoder_set_compute(d, c));
    d->compute = c;
    return HL_OK;
}

hl_status hl_decoder_forward(hl_decoder *d, const int32_t *tokens, int B, int Tq, const int *pos0, const int *slot,
                             float *logits, int all_logits, int32_t *argmax) {
    if (!d || !tokens)
        return hl_fail(HL_ERR_ARG, "hl_decoder_forward: missing argument");
    if (B < 1 || Tq < 1 || (int64_t)B * Tq > d->max_rows)
        return hl_fail(HL_ERR_ARG, "%d x %d new tokens exceed the %d rows planned for one call", B, Tq, d->max_rows);
    if (B > d->slots)
        return hl_fail(HL_ERR_ARG, "%d sequences in one call, the decoder has %d slots", B, d->slots);
    const int V = d->model->cfg.vocab_size;
    for (int b = 0; b < B; b++) {
        int s = slot ? slot[b] : b, p = pos0 ? pos0[b] : 0;
        if (s < 0 || s >= d->slots)
            return hl_fail(HL_ERR_ARG, "cache slot %d out of range (0..%d)", s, d->slots - 1);
        for (int c = 0; c < b; c++)
            if ((slot ? slot[c] : c) == s)
                return hl_fail(HL_ERR_ARG, "cache slot %d appears twice in one call", s);
        if (p < 0 || p + Tq > d->max_seq)
            return hl_fail(HL_ERR_RANGE, "positions %d..%d exceed the context of %d tokens", p, p + Tq - 1,
                           d->max_seq);
        for (int t = 0; t < Tq; t++) {
            int id = tokens[b * Tq + t];
            if (id < 0 || id >= V)
                return hl_fail(HL_ERR_RANGE, "token id %d is outside the vocabulary (0..%d)", id, V - 1);
        }
    }
    if (!logits && !argmax)
        return hl_fail(HL_ERR_ARG, "hl_decoder_forward: ask for logits, argmax or both");
    return d->ops->decoder_forward(d, tokens, B, Tq, pos0, slot, logits, all_logits, argmax);
}

hl_status hl_decoder_forward_varlen(hl_decoder *d, const int32_t *tokens, int B, const int *n_new, const int *pos0,
                                    const int *slot, float *logits, int32_t *argmax) {
    if (!d || !tokens || !n_new || !pos0 || !slot)
        return hl_fail(HL_ERR_ARG, "hl_decoder_forward_varlen: missing argument");
    if (!logits && !argmax)
        return hl_fail(HL_ERR_ARG, "hl_decoder_forward_varlen: ask for logits, argmax or both");
    if (B < 1 || B > d->slots)
        return hl_fail(HL_ERR_ARG, "%d sequences in one call, the decoder has %d slots", B, d->slots);
    const int V = d->model->cfg.vocab_size;
    int64_t rows = 0;
    for (int b = 0; b < B; b++) {
        int s = slot[b], p = pos0[b], n = n_new[b];
        if (n < 1)
            return hl_fail(HL_ERR_ARG, "sequence %d of the call has %d new tokens", b, n);
        if (s < 0 || s >= d->slots)
            return hl_fail(HL_ERR_ARG, "cache slot %d out of range (0..%d)", s, d->slots - 1);
        for (int c = 0; c < b; c++)
            if (slot[c] == s)
                return hl_fail(HL_ERR_ARG, "cache slot %d appears twice in one call", s);
        if (p < 0 || p + n > d->max_seq)
            return hl_fail(HL_ERR_RANGE, "positions %d..%d exceed the context of %d tokens", p, p + n - 1, d->max_seq);
        for (int t = 0; t < n; t++)
            if (tokens[rows + t] < 0 || tokens[rows + t] >= V)
                return hl_fail(HL_ERR_RANGE, "token id %d is outside the vocabulary (0..%d)", tokens[rows + t], V - 1);
        rows += n;
    }
    if (rows > d->max_rows)
        return hl_fail(HL_ERR_ARG, "%lld new tokens exceed the %d rows planned for one call", (long long)rows,
                       d->max_rows);
    if (d->ops->decoder_forward_varlen)
        return d->ops->decoder_forward_varlen(d, tokens, B, n_new, pos0, slot, logits, argmax);
    rows = 0;
    for (int b = 0; b < B; b++) {
        HL_TRY(d->ops->decoder_forward(d, tokens + rows, 1, n_new[b], &pos0[b], &slot[b],
                                       logits ? logits + (size_t)b * V : NULL, 0, argmax ? argmax + b : NULL));
        rows += n_new[b];
    }
    return HL_OK;
}

hl_status hl_decoder_share_prefix(hl_decoder *d, int dst_slot, int src_slot, int n) {
    if (!d)
        return hl_fail(HL_ERR_ARG, "no decoder");
    if (dst_slot < 0 || dst_slot >= d->slots || src_slot < 0 || src_slot >= d->slots)
        return hl_fail(HL_ERR_ARG, "cache slots %d, %d out of range (0..%d)", dst_slot, src_slot, d->slots - 1);
    if (n < 0 || n > d->max_seq)
        return hl_fail(HL_ERR_RANGE, "prefix of %d positions outside the context of %d", n, d->max_seq);
    if (dst_slot == src_slot || n == 0)
        return HL_OK;
    return d->ops->decoder_share_prefix(d, dst_slot, src_slot, n);
}

hl_status hl_decoder_release(hl_decoder *d, int slot) {
    if (!d)
        return hl_fail(HL_ERR_ARG, "no decoder");
    if (slot < 0 || slot >= d->slots)
        return hl_fail(HL_ERR_ARG, "cache slot %d out of range (0..%d)", slot, d->slots - 1);
    return d->ops->decoder_release(d, slot);
}
