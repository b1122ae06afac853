/* hydralora export: write a run's adapter in the form the reference HydraLoRA code and PEFT
 * tools load (adapter_config.json, adapter_model.safetensors, adapter_model.bin), or an
 * approximate plain LoRA (--collapse). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cli/args.h"
#include "core/engine/engine.h"
#include "core/train/collapse.h"
#include "core/train/export.h"

int cmd_export(int argc, char **argv) {
    const char *out = NULL, *dtype_s = "f32", *data = NULL;
    long long step = -1;
    int collapse = 0, threads = 0;
    hl_opt opts[] = {
        {"out", 'o', HL_OPT_STRING, &out, "DIR", "export directory (required; replaced atomically if it exists)"},
        {"step", 0, HL_OPT_LONG, &step, "N", "export checkpoint step-N (default: the newest)"},
        {"dtype", 0, HL_OPT_STRING, &dtype_s, "TYPE", "f32 (default, exact) | bf16 (as the reference) | f16"},
        {"collapse", 0, HL_OPT_FLAG, &collapse, NULL,
         "approximate plain LoRA: B = sum of mean-routing-weight x B_i (measured on the validation records)"},
        {"data", 'd', HL_OPT_STRING, &data, "FILE", "with --collapse: validation records to measure on (default: the run's)"},
        {"threads", 't', HL_OPT_INT, &threads, "N", "compute threads for --collapse (default: the run's)"},
        {0}};
    hl_args args = {.usage = "hydralora export RUNDIR --out DIR [--step N] [--dtype f32|bf16] [--collapse]",
                    .summary = "Export a run's adapter: adapter_config.json, adapter_model.safetensors and\n"
                               "adapter_model.bin (a torch.save archive), with the keys the reference HydraLoRA\n"
                               "code loads.",
                    .opts = opts,
                    .epilog = "examples:\n"
                              "  hydralora export runs/gsm8k --out export/gsm8k\n"
                              "  hydralora export runs/gsm8k --step 200 --dtype bf16 --out export/gsm8k-200\n"
                              "  hydralora export runs/gsm8k --collapse --out export/gsm8k-lora",
                    .min_positional = 1,
                    .max_positional = 1};
    int rc = hl_args_parse(&args, argc, argv);
    if (rc >= 0)
        return rc;
    if (!out) {
        fprintf(stderr, "hydralora export: --out DIR is required\n");
        return 2;
    }
    hl_dtype dtype;
    if (!strcasecmp(dtype_s, "f32") || !strcasecmp(dtype_s, "float32"))
        dtype = HL_DTYPE_F32;
    else if (!strcasecmp(dtype_s, "bf16") || !strcasecmp(dtype_s, "bfloat16"))
        dtype = HL_DTYPE_BF16;
    else if (!strcasecmp(dtype_s, "f16") || !strcasecmp(dtype_s, "float16"))
        dtype = HL_DTYPE_F16;
    else {
        fprintf(stderr, "hydralora export: --dtype must be f32, bf16 or f16 (got '%s')\n", dtype_s);
        return 2;
    }
    const char *run_dir = args.positional[0];
    if (!collapse) {
        if (data) {
            fprintf(stderr, "hydralora export: --data only applies with --collapse\n");
            return 2;
        }
        hl_export_info info;
        if (hl_export_checkpoint(run_dir, step, out, dtype, &info)) {
            fprintf(stderr, "hydralora export: error: %s\n", hl_last_error());
            return 1;
        }
        printf("exported checkpoint step-%lld of %s to %s: %d tensors, %lld parameters (%s); "
               "adapter_model.safetensors %lld bytes, adapter_model.bin %lld bytes\n",
               (long long)info.step, run_dir, info.dir, info.n_tensors, (long long)info.n_params, dtype_s,
               (long long)info.bytes_safetensors, (long long)info.bytes_bin);
        return 0;
    }
    hl_run_config cfg;
    if (hl_engine_load_run_config(run_dir, &cfg)) {
        fprintf(stderr, "hydralora export: error: %s\n", hl_last_error());
        return 1;
    }
    if (data) {
        if (strlen(data) >= sizeof cfg.val_data) {
            fprintf(stderr, "hydralora export: --data path too long\n");
            return 2;
        }
        snprintf(cfg.val_data, sizeof cfg.val_data, "%s", data);
    }
    if (threads > 0)
        cfg.threads = threads;
    if (!cfg.val_data[0] && !(cfg.val_split > 0) && cfg.variant != HL_VARIANT_LORA) {
        fprintf(stderr, "hydralora export: error: --collapse measures the mean routing weights on validation "
                        "records, and %s was trained without any: pass --data FILE\n", run_dir);
        return 2;
    }
    hl_collapse_report rep;
    if (hl_export_collapse(run_dir, step, &cfg, out, dtype, &rep)) {
        fprintf(stderr, "hydralora export: error: %s\n", hl_last_error());
        return 1;
    }
    printf("exported an APPROXIMATE plain LoRA (rank %d) collapsed from checkpoint step-%lld of %s to %s\n", rep.r_out,
           (long long)rep.info.step, run_dir, rep.info.dir);
    printf("validation loss over %lld records: adapter %.6f, collapsed %.6f, delta %+.6f\n", (long long)rep.n_val,
           rep.loss_adapter, rep.loss_collapsed, rep.loss_collapsed - rep.loss_adapter);
    return 0;
}
