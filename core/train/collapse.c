/* export --collapse (see collapse.h): the checkpoint's parameters go into an evaluation session
 * of the run's trainer, whose eval pass measures the mean routing weights; the collapse itself
 * is host arithmetic on the checkpoint's values; the collapsed LoRA is evaluated in a second
 * session and exported. */
#include "core/train/collapse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/train/checkpoint.h"
#include "core/train/train.h"

/* One projection: A is copied (for LoRA-Split the N stacked A's are the collapsed [N r, d_in]);
 * B = Σ_i ω̄_i B_i (hydra, uniform) or [ω̄_0 B_0 | ... | ω̄_{N-1} B_{N-1}] (LoRA-Split). */
static void collapse_proj(const hl_adapters *ad, const hl_adapter_proj *p, const hl_adapter_proj *q, const double *w,
                          int r, int split) {
    int N = ad->N, din = p->d_in, dout = p->d_out, r2 = split ? r * N : r;
    memcpy(q->A, p->A, (size_t)ad->nA * r * din * sizeof(float));
    for (int o = 0; o < dout; o++) {
        if (split) {
            for (int i = 0; i < N; i++)
                for (int c = 0; c < r; c++)
                    q->B[(size_t)o * r2 + i * r + c] = (float)(w[i] * p->B[((size_t)i * dout + o) * r + c]);
        } else {
            for (int c = 0; c < r; c++) {
                double acc = 0;
                for (int i = 0; i < N; i++)
                    acc += w[i] * p->B[((size_t)i * dout + o) * r + c];
                q->B[(size_t)o * r + c] = (float)acc;
            }
        }
    }
}

hl_status hl_export_collapse(const char *run_dir, int64_t step, const hl_run_config *cfg_in, const char *out_dir,
                             hl_dtype dtype, hl_collapse_report *rep) {
    memset(rep, 0, sizeof *rep);
    char cdir[4300];
    int64_t picked = -1;
    HL_TRY(hl_checkpoint_pick(run_dir, step, cdir, sizeof cdir, &picked));
    hl_run_config cfg = *cfg_in;
    if (cfg.variant == HL_VARIANT_LORA)
        return hl_fail(HL_ERR_ARG, "this run is already a plain LoRA: collapsing would change nothing; export it as it is");
    if (!cfg.val_data[0] && !(cfg.val_split > 0))
        return hl_fail(HL_ERR_ARG, "collapsing needs validation records to measure the mean routing weights, and the "
                       "run has none (it was trained without val_split or val_data)");
    hl_trainer *t;
    HL_TRY(hl_trainer_open(&t, &cfg, HL_TRAINER_VAL_DATA));
    const hl_model *model = hl_trainer_model(t);
    hl_adapter_config acfg = hl_config_adapter(&cfg);
    hl_adapters ad, lad; /* host: the checkpoint's parameters, the collapsed LoRA */
    int ad_ok = 0, lad_ok = 0, rs_ok = 0;
    hl_routing_stats rs;
    hl_ckpt_state cs;
    hl_status st = hl_adapters_create(&ad, &model->cfg, &acfg, (uint64_t)cfg.seed);
    ad_ok = st == HL_OK;
    if (st == HL_OK)
        st = hl_checkpoint_load(cdir, &ad, &cs, 0);
    if (st == HL_OK)
        st = hl_trainer_use_adapters(t, &ad);
    if (st == HL_OK && ad.has_router) {
        st = hl_routing_stats_init(&rs, ad.n_layers, ad.N);
        rs_ok = st == HL_OK;
    }
    if (st == HL_OK) {
        rep->n_val = hl_trainer_val(t)->n;
        st = hl_trainer_eval(t, &rep->loss_adapter, NULL, rs_ok ? &rs : NULL);
    }
    int split = cfg.variant == HL_VARIANT_LORA_SPLIT;
    int r2 = split ? cfg.r * ad.N : cfg.r;
    if (st == HL_OK) {
        hl_adapter_config lc = acfg;
        lc.variant = HL_VARIANT_LORA;
        lc.n_heads = 1;
        lc.r = r2;
        lc.alpha = (float)(cfg.alpha * (double)r2 / (double)cfg.r); /* same alpha/r */
        st = hl_adapters_create(&lad, &model->cfg, &lc, (uint64_t)cfg.seed);
        lad_ok = st == HL_OK;
    }
    for (int l = 0; st == HL_OK && l < ad.n_layers; l++)
        for (int tg = 0; tg < HL_TARGET_COUNT; tg++) {
            const hl_adapter_proj *p = hl_adapters_proj(&ad, l, tg);
            const hl_adapter_proj *q = hl_adapters_proj(&lad, l, tg);
            if (!p || !q)
                continue;
            double w[256];
            for (int i = 0; i < ad.N; i++)
                w[i] = ad.has_router ? hl_routing_mean_weight(&rs, l, tg, i) : 1.0 / ad.N;
            collapse_proj(&ad, p, q, w, cfg.r, split);
        }
    if (st == HL_OK)
        st = hl_trainer_use_adapters(t, &lad);
    if (st == HL_OK)
        st = hl_trainer_eval(t, &rep->loss_collapsed, NULL, NULL);
    if (st == HL_OK) {
        char note[400];
        snprintf(note, sizeof note, "APPROXIMATE: collapsed from a %s adapter (N=%d, r=%d) at step %lld with mean "
                 "routing weights over %lld validation records; validation loss %.6f (adapter) vs %.6f (collapsed)",
                 hl_config_variant_name(cfg.variant), ad.N, cfg.r, (long long)picked, (long long)rep->n_val,
                 rep->loss_adapter, rep->loss_collapsed);
        st = hl_export_plain_lora(&lad, &cfg, r2, cfg.alpha * (double)r2 / (double)cfg.r, note, out_dir, dtype,
                                  &rep->info);
        rep->info.step = picked;
        rep->r_out = r2;
    }
    if (rs_ok)
        hl_routing_stats_free(&rs);
    hl_trainer_close(t);
    if (lad_ok)
        hl_adapters_free(&lad);
    if (ad_ok)
        hl_adapters_free(&ad);
    return st;
}
