/* Run config: defaults are docs/method.md §4's reference values, every field parses and
 * validates through the table, errors name field/value/range, JSON round-trips exactly. */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "core/train/config.h"
#include "tests/unit/hl_test.h"

static int has(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

int main(void) {
    hl_run_config c;
    hl_config_defaults(&c);
    /* docs/method.md §4 reference defaults (the independent source). */
    CHECK(c.lr == 2e-4, "lr default %g", c.lr);
    CHECK(c.warmup_ratio == 0.03, "warmup 3%%");
    CHECK(c.schedule == HL_SCHED_COSINE, "cosine");
    CHECK(c.epochs == 1 && c.max_steps == 0, "1 epoch");
    CHECK(c.micro_batch == 1 && c.grad_accum == 8, "micro-batch 1, accumulation 8");
    CHECK(c.clip_norm == 1.0, "clip 1.0");
    CHECK(c.max_len == 1024, "max length 1024");
    CHECK(c.seed == 41, "seed 41");
    CHECK(c.dropout == 0.05 && c.alpha == 32 && c.r == 8 && c.n_heads == 4, "dropout/alpha/r/N");
    CHECK(c.targets == (HL_TARGET_GATE | HL_TARGET_UP | HL_TARGET_DOWN), "targets gate,up,down");
    CHECK(c.weight_decay == 0 && c.beta1 == 0.9 && c.beta2 == 0.999 && c.eps == 1e-8, "AdamW defaults");
    CHECK(c.variant == HL_VARIANT_HYDRA, "variant hydra");

    /* Every field: its default passes its own parser; its help and group are set. */
    for (int i = 0; i < hl_config_n_fields; i++) {
        const hl_config_field *f = &hl_config_fields[i];
        hl_run_config t = c;
        CHECK(hl_config_set_field(&t, f, f->def) == HL_OK, "default of %s: %s", f->name, hl_last_error());
        CHECK(f->help && f->help[0] && f->group && f->group[0], "%s has help and group", f->name);
        CHECK(hl_config_field_find(f->name) == f, "find %s", f->name);
        char buf[64];
        hl_config_get_field(&c, f, buf, sizeof buf);
        if (f->type != HL_FIELD_DOUBLE)
            CHECK(!strcmp(buf, f->def), "%s prints its default: '%s' vs '%s'", f->name, buf, f->def);
    }

    /* --set and errors that name the field, the value and the range. */
    CHECK(hl_config_set(&c, "lr=1e-4") == HL_OK && c.lr == 1e-4, "set lr");
    CHECK(hl_config_set(&c, "N=6") == HL_OK && c.n_heads == 6, "alias N");
    CHECK(hl_config_set(&c, "rank=16") == HL_OK && c.r == 16, "alias rank");
    CHECK(hl_config_set(&c, "targets=q_proj,v") == HL_OK && c.targets == (HL_TARGET_Q | HL_TARGET_V), "targets");
    CHECK(hl_config_set(&c, "variant=lora_split") == HL_OK && c.variant == HL_VARIANT_LORA_SPLIT, "variant spelling");
    CHECK(hl_config_set(&c, "grad_checkpoint=yes") == HL_OK && c.grad_checkpoint == 1, "bool");
    CHECK(hl_config_set(&c, "max_steps=1e3") == HL_OK && c.max_steps == 1000, "integer written as 1e3");
    CHECK(hl_config_set(&c, "lr=0") == HL_ERR_RANGE && has(hl_last_error(), "lr: 0 is out of range (0, 10]"),
          "lr=0: %s", hl_last_error());
    CHECK(hl_config_set(&c, "dropout=1") == HL_ERR_RANGE && has(hl_last_error(), "[0, 1)"), "dropout=1: %s",
          hl_last_error());
    CHECK(hl_config_set(&c, "r=2.5") == HL_ERR_ARG && has(hl_last_error(), "r: '2.5' is not an integer"), "r=2.5: %s",
          hl_last_error());
    CHECK(hl_config_set(&c, "micro_batch=0") == HL_ERR_RANGE && has(hl_last_error(), "micro_batch: 0"), "mb=0");
    CHECK(hl_config_set(&c, "schedule=step") == HL_ERR_ARG && has(hl_last_error(), "cosine, linear, constant"),
          "schedule: %s", hl_last_error());
    CHECK(c.compute == HL_COMPUTE_AUTO, "compute defaults to auto");
    CHECK(hl_config_set(&c, "compute=bf16") == HL_OK && c.compute == HL_COMPUTE_BF16, "compute=bf16");
    CHECK(hl_config_set(&c, "compute=f32") == HL_OK && c.compute == HL_COMPUTE_F32, "compute=f32");
    CHECK(hl_config_set(&c, "compute=fp8") == HL_ERR_ARG && has(hl_last_error(), "auto, f32, bf16"), "compute: %s",
          hl_last_error());
    CHECK(c.compute == HL_COMPUTE_F32, "a refused compute value leaves the field alone");
    hl_config_set(&c, "compute=auto");
    CHECK(hl_config_set(&c, "targets=gate,ffn") == HL_ERR_ARG && has(hl_last_error(), "'ffn'"), "targets: %s",
          hl_last_error());
    CHECK(hl_config_set(&c, "targets=") == HL_ERR_ARG, "empty targets");
    CHECK(hl_config_set(&c, "lr=abc") == HL_ERR_ARG && has(hl_last_error(), "not a number"), "lr=abc");
    CHECK(hl_config_set(&c, "lr=nan") == HL_ERR_ARG, "lr=nan");
    CHECK(hl_config_set(&c, "lrr=1") == HL_ERR_ARG && has(hl_last_error(), "did you mean 'lr'"), "typo: %s",
          hl_last_error());
    CHECK(hl_config_set(&c, "lr") == HL_ERR_ARG && has(hl_last_error(), "key=value"), "missing =");
    CHECK(c.lr == 1e-4 && c.r == 16, "failed sets leave values unchanged");

    /* JSON round trip: every field, exact doubles. */
    hl_config_defaults(&c);
    CHECK(hl_config_set(&c, "model=/m/llama") == HL_OK && hl_config_set(&c, "data=a.jsonl,b.json") == HL_OK, "set");
    c.lr = 1.0 / 3.0 * 1e-3;
    c.warmup_ratio = 0.1 + 0.2;
    c.seed = 9007199254740991LL;
    char *js = hl_config_to_json(&c);
    CHECK(js != NULL, "to_json");
    hl_run_config d;
    hl_config_defaults(&d);
    CHECK(js && hl_config_from_json(&d, js, strlen(js), "t") == HL_OK, "from_json: %s", hl_last_error());
    CHECK(!memcmp(&c, &d, sizeof c), "JSON round trip is exact");
    free(js);

    /* JSON forms: arrays for targets/data, null keeps, "_comment" ignored, unknown key fails. */
    hl_config_defaults(&d);
    const char *j1 = "{\"_note\": \"x\", \"targets\": [\"q_proj\", \"down_proj\"], \"data\": [\"a.jsonl\", \"b.jsonl\"],"
                     " \"lr\": null, \"N\": 3, \"grad_checkpoint\": true}";
    CHECK(hl_config_from_json(&d, j1, strlen(j1), "j1") == HL_OK, "j1: %s", hl_last_error());
    CHECK(d.targets == (HL_TARGET_Q | HL_TARGET_DOWN) && !strcmp(d.data, "a.jsonl,b.jsonl") && d.lr == 2e-4 &&
              d.n_heads == 3 && d.grad_checkpoint == 1,
          "j1 values");
    const char *j2 = "{\"learning_rat\": 1}";
    CHECK(hl_config_from_json(&d, j2, strlen(j2), "cfg.json") == HL_ERR_ARG && has(hl_last_error(), "cfg.json") &&
              has(hl_last_error(), "learning_rat"),
          "unknown key: %s", hl_last_error());
    const char *j3 = "{\"r\": \"eight\"}";
    CHECK(hl_config_from_json(&d, j3, strlen(j3), "cfg.json") != HL_OK && has(hl_last_error(), "r:"), "r string: %s",
          hl_last_error());
    const char *j4 = "{\"r\": 4,\n \"alpha\": }";
    CHECK(hl_config_from_json(&d, j4, strlen(j4), "cfg.json") == HL_ERR_FORMAT && has(hl_last_error(), "line 2"),
          "bad JSON names the line: %s", hl_last_error());
    const char *j5 = "[1, 2]";
    CHECK(hl_config_from_json(&d, j5, strlen(j5), "cfg.json") == HL_ERR_FORMAT, "array is not a config");
    const char *j6 = "{\"r\": 4, \"lr\": 99}";
    hl_config_defaults(&d);
    CHECK(hl_config_from_json(&d, j6, strlen(j6), "cfg.json") == HL_ERR_RANGE && d.r == 8,
          "a failing file changes nothing");
    const char *j7 = "{\"targets\": true}";
    CHECK(hl_config_from_json(&d, j7, strlen(j7), "cfg.json") != HL_OK, "targets: true rejected");

    /* Cross-field validation. */
    hl_config_defaults(&d);
    CHECK(hl_config_validate(&d) == HL_ERR_ARG && has(hl_last_error(), "model"), "model required");
    hl_config_set(&d, "model=m");
    CHECK(hl_config_validate(&d) == HL_ERR_ARG && has(hl_last_error(), "data"), "data required");
    hl_config_set(&d, "data=x.jsonl");
    CHECK(hl_config_validate(&d) == HL_OK, "valid: %s", hl_last_error());
    d.r = 0; /* edited by hand */
    CHECK(hl_config_validate(&d) == HL_ERR_RANGE && has(hl_last_error(), "r: 0"), "validate re-checks fields");
    d.r = 8;
    hl_config_set(&d, "name=a/b");
    CHECK(hl_config_validate(&d) == HL_ERR_ARG, "name with a slash");

    /* Run dir and adapter config. */
    hl_config_defaults(&d);
    hl_config_set(&d, "name=gsm");
    char rd[256];
    hl_config_run_dir(&d, rd, sizeof rd);
    CHECK(!strcmp(rd, "runs/gsm"), "run dir %s", rd);
    hl_config_set(&d, "out_dir=/tmp/x");
    hl_config_run_dir(&d, rd, sizeof rd);
    CHECK(!strcmp(rd, "/tmp/x"), "out_dir wins");
    hl_config_set(&d, "variant=lora");
    hl_adapter_config a = hl_config_adapter(&d);
    CHECK(a.n_heads == 1 && a.r == 8 && a.alpha == 32.0f, "lora forces N=1");

    /* Saving writes a file that loads back to the same struct. */
    char path[] = "/tmp/hl_test_config_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd >= 0) {
        close(fd);
        CHECK(hl_config_save_file(&c, path) == HL_OK, "save: %s", hl_last_error());
        hl_config_defaults(&d);
        CHECK(hl_config_load_file(&d, path) == HL_OK && !memcmp(&c, &d, sizeof c), "save/load round trip");
        unlink(path);
    }
    CHECK(hl_config_load_file(&d, "/nonexistent/run.json") == HL_ERR_NOT_FOUND, "missing file");
    return hl_test_finish();
}
