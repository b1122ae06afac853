/* A CUDA session opened through the backend table, the way core/backend/backend.c does it
 * (see gpu_ref.h). */
#include <stdlib.h>
#include <string.h>

#include "core/backend/backend_impl.h"
#include "tests/gpu/gpu_ref.h"

hl_status gpu_session_open(hl_backend **be_out, hl_session **s_out, const hl_model *m, const hl_adapter_config *ac,
                           uint64_t seed, int B, int T, unsigned flags) {
    *be_out = NULL;
    *s_out = NULL;
    HL_TRY(hl_backend_cuda_ops.probe(0));
    hl_backend *be = calloc(1, sizeof *be);
    hl_session *s = calloc(1, sizeof *s);
    if (!be || !s) {
        free(be);
        free(s);
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    }
    be->ops = &hl_backend_cuda_ops;
    strcpy(be->name, "cuda:0");
    hl_status st = be->ops->open(be);
    if (st) {
        free(be);
        free(s);
        return st;
    }
    s->ops = be->ops;
    s->be = be;
    s->model = m;
    s->batch = B;
    s->seq = T;
    s->flags = flags;
    if (ac) {
        st = hl_adapters_create(&s->layout, &m->cfg, ac, seed);
        s->has_adapters = !st;
    }
    if (!st)
        st = be->ops->session_init(s);
    if (st) {
        if (s->has_adapters)
            hl_adapters_free(&s->layout);
        free(s);
        be->ops->close(be);
        free(be);
        return st;
    }
    *be_out = be;
    *s_out = s;
    return HL_OK;
}

void gpu_session_close(hl_backend *be, hl_session *s) {
    if (s) {
        s->ops->session_free(s);
        if (s->has_adapters)
            hl_adapters_free(&s->layout);
        free(s);
    }
    if (be) {
        be->ops->close(be);
        free(be);
    }
}
