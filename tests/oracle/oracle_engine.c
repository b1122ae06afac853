/* Driver for tests/oracle/test_engine_oracle.py: runs the C engine on a case directory
 * written by the Python oracle and writes what it computed, for comparison with an
 * independent PyTorch implementation.
 *
 *   oracle_engine [--device NAME] CASE_DIR
 * opens the backend NAME (default cpu) through the seam (core/backend/backend.h), by name, and
 * runs everything there;
 * reads  CASE_DIR/model/ (HF dir), CASE_DIR/adapter_init.safetensors, CASE_DIR/job.json
 * writes CASE_DIR/out.safetensors (F32): "logits" [B*T, V], "loss" [1], "grad.<export key>"
 *        for every adapter tensor, "step_losses" [steps], "grad_norms" [steps], "lrs" [steps],
 *        "seq_loss_sum" [examples] and "seq_count" [examples] (eval's per-example sums).
 * A batch (the job's own, or one of train.batches) is right padded ("lengths": one example per
 * row) or packed ("seq_start" + "seq_len": examples as segments of the rows, hl_llama_batch). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/adapter/adapter.h"
#include "core/backend/backend.h"
#include "core/base/fileio.h"
#include "core/model/model.h"
#include "core/adapter/optim.h"
#include "core/formats/safetensors.h"

static int die(const char *what) {
    fprintf(stderr, "oracle_engine: %s: %s\n", what, hl_last_error());
    return 1;
}

static int32_t *int_array(const cJSON *a, int *n) {
    *n = cJSON_GetArraySize(a);
    int32_t *v = malloc(sizeof(int32_t) * (size_t)(*n > 0 ? *n : 1));
    for (int i = 0; i < *n; i++)
        v[i] = cJSON_GetArrayItem(a, i)->valueint;
    return v;
}

static double num(const cJSON *o, const char *k) { return cJSON_GetObjectItem(o, k)->valuedouble; }

/* One batch of the job, padded ("lengths": one example per row) or packed ("seq_start" +
 * "seq_len"), as the seam's hl_batch. */
typedef struct {
    int32_t *tokens, *labels, *start, *len;
    hl_batch b;
} job_batch;

static void batch_read(const cJSON *o, job_batch *jb) {
    int n;
    memset(jb, 0, sizeof *jb);
    int B = cJSON_GetObjectItem(o, "B")->valueint, T = cJSON_GetObjectItem(o, "T")->valueint;
    jb->tokens = int_array(cJSON_GetObjectItem(o, "tokens"), &n);
    jb->labels = int_array(cJSON_GetObjectItem(o, "labels"), &n);
    if (cJSON_GetObjectItem(o, "seq_start")) {
        int n_seq;
        jb->start = int_array(cJSON_GetObjectItem(o, "seq_start"), &n_seq);
        jb->len = int_array(cJSON_GetObjectItem(o, "seq_len"), &n);
        jb->b = (hl_batch){B, T, jb->tokens, jb->labels, n_seq, jb->start, jb->len};
    } else {
        int32_t *lengths = int_array(cJSON_GetObjectItem(o, "lengths"), &n);
        jb->start = malloc((size_t)B * sizeof *jb->start);
        jb->len = malloc((size_t)B * sizeof *jb->len);
        hl_batch_padded(&jb->b, jb->tokens, jb->labels, lengths, B, T, jb->start, jb->len);
        free(lengths);
    }
}

static void batch_free(job_batch *jb) { free(jb->tokens), free(jb->labels), free(jb->start), free(jb->len); }

static hl_status load_init(hl_adapters *ad, const char *path) {
    hl_safetensors *st;
    HL_TRY(hl_st_open(&st, path));
    for (int i = 0; i < ad->n_views; i++) {
        const hl_st_tensor *t = hl_st_find(st, ad->views[i].name);
        if (!t) {
            hl_st_close(st);
            return hl_fail(HL_ERR_NOT_FOUND, "init file lacks %s", ad->views[i].name);
        }
        float *buf = malloc((size_t)t->numel * sizeof(float));
        hl_st_tensor_to_f32(t, buf);
        hl_status s = hl_adapters_set_tensor(ad, t->name, buf, t->shape[0], t->ndim > 1 ? t->shape[1] : 1);
        free(buf);
        if (s) {
            hl_st_close(st);
            return s;
        }
    }
    if (hl_st_count(st) != ad->n_views) {
        hl_st_close(st);
        return hl_fail(HL_ERR_FORMAT, "init file has %d tensors, adapters have %d", hl_st_count(st), ad->n_views);
    }
    hl_st_close(st);
    return HL_OK;
}

int main(int argc, char **argv) {
    const char *device = "cpu";
    if (argc == 4 && !strcmp(argv[1], "--device")) {
        device = argv[2];
        argv += 2;
        argc -= 2;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: oracle_engine [--device NAME] CASE_DIR\n");
        return 2;
    }
    hl_backend *be;
    if (hl_backend_open(&be, device))
        return die("opening the device");
    char path[4096];
    snprintf(path, sizeof path, "%s/job.json", argv[1]);
    char *text = NULL;
    size_t text_len = 0;
    cJSON *job = hl_file_read_all(path, 0, &text, &text_len) == HL_OK ? cJSON_Parse(text) : NULL;
    if (!job) {
        fprintf(stderr, "oracle_engine: cannot read %s\n", path);
        return 1;
    }
    if (cJSON_GetObjectItem(job, "threads") &&
        hl_backend_set_threads(be, cJSON_GetObjectItem(job, "threads")->valueint))
        return die("threads");
    hl_model model;
    snprintf(path, sizeof path, "%s/model", argv[1]);
    if (hl_model_load(&model, path))
        return die("loading model");
    const char *vname = cJSON_GetObjectItem(job, "variant")->valuestring;
    hl_adapter_config ac = {0};
    ac.variant = !strcmp(vname, "hydra")        ? HL_VARIANT_HYDRA
                 : !strcmp(vname, "lora")       ? HL_VARIANT_LORA
                 : !strcmp(vname, "lora-split") ? HL_VARIANT_LORA_SPLIT
                                                : HL_VARIANT_UNIFORM;
    ac.n_heads = cJSON_GetObjectItem(job, "n_heads")->valueint;
    ac.r = cJSON_GetObjectItem(job, "r")->valueint;
    ac.alpha = (float)num(job, "alpha");
    ac.dropout = 0.0f;
    const cJSON *tg = cJSON_GetObjectItem(job, "targets");
    for (int i = 0; i < cJSON_GetArraySize(tg); i++)
        ac.targets |= 1u << hl_target_from_name(cJSON_GetArrayItem(tg, i)->valuestring);
    hl_adapters ad; /* host copy: the layout and the initial values */
    if (hl_adapters_create(&ad, &model.cfg, &ac, 1))
        return die("creating adapters");
    snprintf(path, sizeof path, "%s/adapter_init.safetensors", argv[1]);
    if (load_init(&ad, path))
        return die("loading initial adapter weights");
    const size_t np = ad.n_params;

    job_batch main_b;
    batch_read(job, &main_b);
    const int B = main_b.b.B, T = main_b.b.T;
    unsigned flags = HL_SESSION_TRAIN |
                     (cJSON_GetObjectItem(job, "checkpoint")->valueint ? HL_SESSION_CHECKPOINT : 0);
    hl_session *ctx;
    int max_T = T, max_B = B;
    const cJSON *tr = cJSON_GetObjectItem(job, "train");
    const cJSON *batches = cJSON_GetObjectItem(tr, "batches");
    for (int i = 0; i < cJSON_GetArraySize(batches); i++) { /* the session holds the largest micro-batch */
        const cJSON *mb = cJSON_GetArrayItem(batches, i);
        int mB = cJSON_GetObjectItem(mb, "B")->valueint, mT = cJSON_GetObjectItem(mb, "T")->valueint;
        max_B = mB > max_B ? mB : max_B;
        max_T = mT > max_T ? mT : max_T;
    }
    if (hl_session_create(&ctx, be, &model, &ac, 1, max_B, max_T, flags))
        return die("creating the session");
    if (hl_session_set_compute(ctx, HL_COMPUTE_F32)) /* the exact path is what PyTorch in f32 checks */
        return die("choosing f32 compute");
    if (hl_session_write_slab(ctx, HL_SLAB_PARAMS, 0, np, ad.params))
        return die("writing the initial parameters");
    const int64_t V = model.cfg.vocab_size;
    float *logits = malloc((size_t)(B * T * V) * sizeof(float));
    if (hl_session_logits(ctx, &main_b.b, logits))
        return die("logits");
    const int n_seq = main_b.b.n_seq;
    double *seq_sum = calloc((size_t)n_seq + 1, sizeof(double));
    int64_t *seq_cnt = calloc((size_t)n_seq + 1, sizeof(int64_t));
    float *seq_sum_f = calloc((size_t)n_seq + 1, sizeof(float)), *seq_cnt_f = calloc((size_t)n_seq + 1, sizeof(float));
    float eval_loss;
    if (hl_session_eval(ctx, &main_b.b, &eval_loss, NULL, seq_sum, seq_cnt))
        return die("eval");
    for (int e = 0; e < n_seq; e++)
        seq_sum_f[e] = (float)seq_sum[e], seq_cnt_f[e] = (float)seq_cnt[e];
    float loss;
    if (hl_session_zero_grad(ctx) || hl_session_train_microbatch(ctx, &main_b.b, 1.0f, &loss, NULL))
        return die("forward_backward");
    float *grads = malloc(np * sizeof(float));
    if (hl_session_read_slab(ctx, HL_SLAB_GRADS, 0, np, grads))
        return die("reading the gradients");

    /* training: AdamW with warmup + cosine, clipping, accumulation */
    hl_optim_config oc = hl_optim_defaults();
    oc.lr = (float)num(tr, "lr");
    oc.beta1 = (float)num(tr, "beta1");
    oc.beta2 = (float)num(tr, "beta2");
    oc.eps = (float)num(tr, "eps");
    oc.weight_decay = (float)num(tr, "weight_decay");
    oc.clip_norm = (float)num(tr, "clip");
    oc.warmup_steps = cJSON_GetObjectItem(tr, "warmup")->valueint;
    oc.total_steps = cJSON_GetObjectItem(tr, "steps")->valueint;
    int accum = cJSON_GetObjectItem(tr, "accum")->valueint, steps = (int)oc.total_steps;
    float *zeros = calloc(np, sizeof(float));
    if (hl_session_write_slab(ctx, HL_SLAB_PARAMS, 0, np, ad.params) ||
        hl_session_write_slab(ctx, HL_SLAB_ADAM_M, 0, np, zeros) || hl_session_write_slab(ctx, HL_SLAB_ADAM_V, 0, np, zeros))
        return die("resetting parameters and moments");
    float *step_losses = calloc((size_t)steps, sizeof(float)), *norms = calloc((size_t)steps, sizeof(float));
    float *lrs = calloc((size_t)steps, sizeof(float));
    for (int s = 0; s < steps; s++) {
        if (hl_session_zero_grad(ctx))
            return die("zero_grad");
        double acc = 0.0;
        for (int a = 0; a < accum; a++) {
            job_batch mb;
            batch_read(cJSON_GetArrayItem(batches, s * accum + a), &mb);
            float l;
            if (hl_session_train_microbatch(ctx, &mb.b, 1.0f / (float)accum, &l, NULL))
                return die("training micro-batch");
            acc += l;
            batch_free(&mb);
        }
        step_losses[s] = (float)(acc / accum);
        lrs[s] = hl_lr_at(&oc, s);
        double gn;
        if (hl_session_reduce_grads(ctx, NULL) || hl_session_optim_step(ctx, s + 1, lrs[s], &oc, &gn))
            return die("AdamW");
        norms[s] = (float)gn;
    }

    /* output */
    int ne = 0;
    hl_st_entry *e = calloc((size_t)ad.n_views + 8, sizeof *e);
    char(*names)[200] = calloc((size_t)ad.n_views, sizeof *names);
    e[ne++] = (hl_st_entry){.name = "logits", .data = logits, .ndim = 2, .shape = {B * T, V}};
    e[ne++] = (hl_st_entry){.name = "loss", .data = &loss, .ndim = 1, .shape = {1}};
    e[ne++] = (hl_st_entry){.name = "step_losses", .data = step_losses, .ndim = 1, .shape = {steps}};
    e[ne++] = (hl_st_entry){.name = "grad_norms", .data = norms, .ndim = 1, .shape = {steps}};
    e[ne++] = (hl_st_entry){.name = "lrs", .data = lrs, .ndim = 1, .shape = {steps}};
    e[ne++] = (hl_st_entry){.name = "seq_loss_sum", .data = seq_sum_f, .ndim = 1, .shape = {n_seq}};
    e[ne++] = (hl_st_entry){.name = "seq_count", .data = seq_cnt_f, .ndim = 1, .shape = {n_seq}};
    for (int i = 0; i < ad.n_views; i++) {
        snprintf(names[i], sizeof names[i], "grad.%s", ad.views[i].name);
        e[ne++] = (hl_st_entry){.name = names[i], .data = grads + ad.views[i].offset, .ndim = 2,
                                .shape = {ad.views[i].rows, ad.views[i].cols}};
    }
    snprintf(path, sizeof path, "%s/out.safetensors", argv[1]);
    if (hl_st_write(path, e, ne, NULL))
        return die("writing output");
    printf("oracle_engine: %s: device %s, loss %.7f, %zu adapter params, plan %.1f KiB\n", argv[1], device,
           (double)loss, np, (double)hl_session_mem_plan(ctx)->total / 1024.0);
    hl_session_free(ctx);
    hl_adapters_free(&ad);
    hl_model_free(&model);
    hl_backend_close(be);
    cJSON_Delete(job);
    free(text), free(logits), free(grads), free(step_losses), free(norms), free(lrs), free(e), free(names);
    free(seq_sum), free(seq_cnt), free(seq_sum_f), free(seq_cnt_f), free(zeros);
    batch_free(&main_b);
    return 0;
}
