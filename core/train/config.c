/* Run configuration: the field table and everything it drives (see config.h). */
#include "core/train/config.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/backend/backend.h"
#include "core/base/fileio.h"

static const char *const variant_choices[] = {"hydra", "lora", "lora-split", "uniform", NULL};
static const char *const schedule_choices[] = {"cosine", "linear", "constant", NULL};
/* index = hl_compute value (HL_COMPUTE_AUTO, _F32, _BF16) */
static const char *const compute_choices[] = {"auto", "f32", "bf16", NULL};
_Static_assert(HL_COMPUTE_AUTO == 0 && HL_COMPUTE_F32 == 1 && HL_COMPUTE_BF16 == 2, "compute_choices order");
_Static_assert(sizeof(hl_compute) == sizeof(int), "enum fields are int-sized");
/* Bit i of `targets` is HL_TARGET_* with the same index (q=0 ... down=6). */
static const char *const target_choices[] = {"q", "k", "v", "o", "gate", "up", "down", NULL};

#define F(member) offsetof(hl_run_config, member), sizeof(((hl_run_config *)0)->member)
#define UNBOUNDED 1, 0

const hl_config_field hl_config_fields[] = {
    /* run */
    {"name", HL_FIELD_STRING, F(name), "run", "run", UNBOUNDED, 0, 0, NULL,
     "run name; the run directory is runs/<name> unless out_dir is set"},
    {"out_dir", HL_FIELD_PATH, F(out_dir), "run", "", UNBOUNDED, 0, 0, NULL,
     "run directory (default runs/<name>)"},
    {"model", HL_FIELD_PATH, F(model), "run", "", UNBOUNDED, 0, 0, NULL,
     "base model: HF directory, llama2.c .bin or .gguf file"},
    {"tokenizer", HL_FIELD_PATH, F(tokenizer), "run", "", UNBOUNDED, 0, 0, NULL,
     "tokenizer file or directory (default: next to the model)"},
    /* data */
    {"data", HL_FIELD_PATH, F(data), "data", "", UNBOUNDED, 0, 0, NULL,
     "training records, JSON or JSON lines (several files: comma-separated)"},
    {"field_instruction", HL_FIELD_STRING, F(field_instruction), "data", "", UNBOUNDED, 0, 0, NULL,
     "record field holding the instruction (default: detect instruction/question/...)"},
    {"field_input", HL_FIELD_STRING, F(field_input), "data", "", UNBOUNDED, 0, 0, NULL,
     "record field holding the optional input (default: detect)"},
    {"field_output", HL_FIELD_STRING, F(field_output), "data", "", UNBOUNDED, 0, 0, NULL,
     "record field holding the answer (default: detect output/answer/...)"},
    {"val_data", HL_FIELD_PATH, F(val_data), "data", "", UNBOUNDED, 0, 0, NULL,
     "separate validation file (default: split off the training data)"},
    {"val_split", HL_FIELD_DOUBLE, F(val_split), "data", "0.02", 0, 1e9, 0, 0, NULL,
     "validation records split off the training data: fraction (<1) or count (>=1); 0 = none"},
    {"val_max", HL_FIELD_INT, F(val_max), "data", "0", 0, 1e9, 0, 0, NULL,
     "use at most this many validation records (0 = all)"},
    /* adapter */
    {"variant", HL_FIELD_ENUM, F(variant), "adapter", "hydra", UNBOUNDED, 0, 0, variant_choices,
     "adapter: hydra (shared A, N heads, router), lora, lora-split, uniform (no router)"},
    {"targets", HL_FIELD_FLAGS, F(targets), "adapter", "gate,up,down", UNBOUNDED, 0, 0, target_choices,
     "projections to adapt: any of q,k,v,o,gate,up,down"},
    {"r", HL_FIELD_INT, F(r), "adapter", "8", 1, HL_ADAPTER_MAX_RANK, 0, 0, NULL, "LoRA rank"},
    {"alpha", HL_FIELD_DOUBLE, F(alpha), "adapter", "32", 0, 1e6, 1, 0, NULL, "LoRA alpha (scaling alpha/r)"},
    {"n_heads", HL_FIELD_INT, F(n_heads), "adapter", "4", 1, HL_ADAPTER_MAX_HEADS, 0, 0, NULL,
     "N: number of B heads / experts (1 for lora)"},
    {"dropout", HL_FIELD_DOUBLE, F(dropout), "adapter", "0.05", 0, 1, 0, 1, NULL,
     "dropout on the adapter path"},
    /* optimisation */
    {"lr", HL_FIELD_DOUBLE, F(lr), "optim", "2e-4", 0, 10, 1, 0, NULL, "peak learning rate"},
    {"schedule", HL_FIELD_ENUM, F(schedule), "optim", "cosine", UNBOUNDED, 0, 0, schedule_choices,
     "learning-rate schedule after warmup: cosine, linear or constant"},
    {"warmup_ratio", HL_FIELD_DOUBLE, F(warmup_ratio), "optim", "0.03", 0, 1, 0, 0, NULL,
     "linear warmup over this fraction of the steps"},
    {"epochs", HL_FIELD_INT, F(epochs), "optim", "1", 1, 100000, 0, 0, NULL,
     "passes over the training data (unless max_steps is set)"},
    {"max_steps", HL_FIELD_INT, F(max_steps), "optim", "0", 0, 1e9, 0, 0, NULL,
     "optimizer steps to run (0 = from epochs)"},
    {"micro_batch", HL_FIELD_INT, F(micro_batch), "optim", "1", 1, 4096, 0, 0, NULL,
     "sequences per forward/backward pass"},
    {"grad_accum", HL_FIELD_INT, F(grad_accum), "optim", "8", 1, 1e6, 0, 0, NULL,
     "micro-batches accumulated per optimizer step"},
    {"max_len", HL_FIELD_INT, F(max_len), "optim", "1024", 2, 1e6, 0, 0, NULL,
     "maximum tokens per sequence (longer records are truncated)"},
    {"clip_norm", HL_FIELD_DOUBLE, F(clip_norm), "optim", "1.0", 0, 1e9, 0, 0, NULL,
     "clip the global gradient norm to this (0 = off)"},
    {"weight_decay", HL_FIELD_DOUBLE, F(weight_decay), "optim", "0", 0, 10, 0, 0, NULL, "AdamW weight decay"},
    {"beta1", HL_FIELD_DOUBLE, F(beta1), "optim", "0.9", 0, 1, 0, 1, NULL, "Adam beta1"},
    {"beta2", HL_FIELD_DOUBLE, F(beta2), "optim", "0.999", 0, 1, 0, 1, NULL, "Adam beta2"},
    {"eps", HL_FIELD_DOUBLE, F(eps), "optim", "1e-8", 0, 1, 1, 0, NULL, "Adam epsilon"},
    {"seed", HL_FIELD_INT64, F(seed), "optim", "41", 0, 9007199254740991.0, 0, 0, NULL,
     "random seed (init, dropout, shuffling, validation split)"},
    {"device", HL_FIELD_STRING, F(device), "optim", "auto", UNBOUNDED, 0, 0, NULL,
     "where to compute: cpu, cuda, cuda:N, or auto (the first usable GPU, else cpu)"},
    {"threads", HL_FIELD_INT, F(threads), "optim", "0", 0, 4096, 0, 0, NULL, "compute threads (0 = all cores)"},
    {"packing", HL_FIELD_BOOL, F(packing), "optim", "true", UNBOUNDED, 0, 0, NULL,
     "pack whole examples into one row of micro_batch x max_len tokens (attention stays within each "
     "example; no padding computed); false = one example per row, padded"},
    {"compute", HL_FIELD_ENUM, F(compute), "optim", "auto", UNBOUNDED, 0, 0, compute_choices,
     "base-weight matmuls: auto (bf16 for bf16/f16 models, f32 for f32), bf16 (bf16 inputs, f32 sums; "
     "f32 where the CPU has no bf16 unit) or f32 (exact)"},
    {"grad_checkpoint", HL_FIELD_BOOL, F(grad_checkpoint), "optim", "false", UNBOUNDED, 0, 0, NULL,
     "recompute activations in backward to save memory"},
    /* bookkeeping */
    {"eval_every", HL_FIELD_INT, F(eval_every), "log", "100", 0, 1e9, 0, 0, NULL,
     "steps between eval-loss measurements (0 = only at start and end)"},
    {"save_every", HL_FIELD_INT, F(save_every), "log", "200", 0, 1e9, 0, 0, NULL,
     "steps between checkpoints (0 = only at the end or on stop)"},
    {"keep_last", HL_FIELD_INT, F(keep_last), "log", "3", 0, 1e6, 0, 0, NULL,
     "keep the newest N checkpoints (0 = keep all)"},
    {"probe_data", HL_FIELD_PATH, F(probe_data), "log", "", UNBOUNDED, 0, 0, NULL,
     "probe sets, one source per file (comma list): routing statistics per file at every eval"},
};
const int hl_config_n_fields = (int)(sizeof hl_config_fields / sizeof hl_config_fields[0]);

static const struct {
    const char *alias, *name;
} field_aliases[] = {
    {"N", "n_heads"},          {"n", "n_heads"},          {"lora_nums", "n_heads"},
    {"rank", "r"},             {"lora_r", "r"},           {"lora_alpha", "alpha"},
    {"lora_dropout", "dropout"}, {"accum", "grad_accum"}, {"gradient_accumulation", "grad_accum"},
    {"gradient_accumulation_steps", "grad_accum"},        {"batch_size", "micro_batch"},
    {"learning_rate", "lr"},   {"max_length", "max_len"}, {"cutoff_len", "max_len"},
    {"num_epochs", "epochs"},  {"warmup", "warmup_ratio"}, {"lr_scheduler", "schedule"},
    {"target_modules", "targets"}, {"output_dir", "out_dir"}, {"sample_packing", "packing"},
};

const hl_config_field *hl_config_field_find(const char *name) {
    if (!name)
        return NULL;
    for (int i = 0; i < hl_config_n_fields; i++)
        if (!strcmp(hl_config_fields[i].name, name))
            return &hl_config_fields[i];
    for (size_t i = 0; i < sizeof field_aliases / sizeof field_aliases[0]; i++)
        if (!strcmp(field_aliases[i].alias, name))
            return hl_config_field_find(field_aliases[i].name);
    return NULL;
}

const char *hl_config_variant_name(hl_variant v) {
    return (unsigned)v < 4 ? variant_choices[v] : "?";
}

const char *hl_config_schedule_name(hl_schedule s) {
    return (unsigned)s < 3 ? schedule_choices[s] : "?";
}

static void *member(hl_run_config *cfg, const hl_config_field *f) { return (char *)cfg + f->offset; }
static const void *cmember(const hl_run_config *cfg, const hl_config_field *f) {
    return (const char *)cfg + f->offset;
}

/* "[0, 1)", "(0, 10]", ">= 0" */
static void range_text(const hl_config_field *f, char *buf, size_t size) {
    if (f->min > f->max) {
        snprintf(buf, size, "any");
        return;
    }
    snprintf(buf, size, "%s%.17g, %.17g%s", f->min_open ? "(" : "[", f->min, f->max, f->max_open ? ")" : "]");
}

static void choices_text(const hl_config_field *f, char *buf, size_t size) {
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; f->choices[i]; i++) {
        int k = snprintf(buf + n, size - n, "%s%s", i ? ", " : "", f->choices[i]);
        if (k < 0 || (size_t)k >= size - n)
            break;
        n += (size_t)k;
    }
}

static hl_status check_range(const hl_config_field *f, double v, const char *text) {
    if (f->min > f->max)
        return HL_OK;
    int below = f->min_open ? !(v > f->min) : !(v >= f->min);
    int above = f->max_open ? !(v < f->max) : !(v <= f->max);
    if (below || above || isnan(v)) {
        char r[96];
        range_text(f, r, sizeof r);
        return hl_fail(HL_ERR_RANGE, "%s: %s is out of range %s (%s)", f->name, text, r, f->help);
    }
    return HL_OK;
}

static int parse_bool(const char *t, int *out) {
    static const char *const yes[] = {"true", "1", "yes", "on"}, *const no[] = {"false", "0", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(t, yes[i])) {
            *out = 1;
            return 1;
        }
        if (!strcasecmp(t, no[i])) {
            *out = 0;
            return 1;
        }
    }
    return 0;
}

/* Index of `t` in choices; also accepts "<choice>_proj" for targets and '_' for '-'. */
static int find_choice(const hl_config_field *f, const char *t, size_t len) {
    char buf[64];
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, t, len);
    buf[len] = 0;
    for (size_t i = 0; i < len; i++)
        if (buf[i] == '_' && f->choices == variant_choices)
            buf[i] = '-';
    if (f->choices == target_choices && len > 5 && !strcmp(buf + len - 5, "_proj"))
        buf[len - 5] = 0;
    for (int i = 0; f->choices[i]; i++)
        if (!strcasecmp(f->choices[i], buf))
            return i;
    return -1;
}

hl_status hl_config_set_field(hl_run_config *cfg, const hl_config_field *f, const char *text) {
    if (!cfg || !f || !text)
        return hl_fail(HL_ERR_ARG, "hl_config_set_field: NULL argument");
    void *dst = member(cfg, f);
    char *end = NULL;
    /* Values other than strings and paths may come with blanks around them (" 3e-4 " typed
     * into a form, --set 'lr= 3e-4 '): the same value for every caller. */
    char trimmed[256];
    if (f->type != HL_FIELD_STRING && f->type != HL_FIELD_PATH) {
        while (isspace((unsigned char)*text))
            text++;
        size_t n = strlen(text);
        while (n && isspace((unsigned char)text[n - 1]))
            n--;
        if (n >= sizeof trimmed)
            return hl_fail(HL_ERR_ARG, "%s: value too long", f->name);
        memcpy(trimmed, text, n);
        trimmed[n] = 0;
        text = trimmed;
    }
    switch (f->type) {
    case HL_FIELD_STRING:
    case HL_FIELD_PATH: {
        size_t n = strlen(text);
        if (n >= f->size)
            return hl_fail(HL_ERR_RANGE, "%s: value is %zu bytes long, at most %zu allowed", f->name, n, f->size - 1);
        memcpy(dst, text, n + 1);
        return HL_OK;
    }
    case HL_FIELD_INT:
    case HL_FIELD_INT64: {
        errno = 0;
        double d = strtod(text, &end);
        /* Integers may be written as 1e3 but must be whole numbers. */
        if (errno || end == text || *end || d != floor(d) || fabs(d) > 9007199254740992.0) {
            char r[96];
            range_text(f, r, sizeof r);
            return hl_fail(HL_ERR_ARG, "%s: '%s' is not an integer (allowed: %s; %s)", f->name, text, r, f->help);
        }
        HL_TRY(check_range(f, d, text));
        if (f->type == HL_FIELD_INT)
            *(int *)dst = (int)d;
        else
            *(int64_t *)dst = (int64_t)d;
        return HL_OK;
    }
    case HL_FIELD_DOUBLE: {
        errno = 0;
        double d = strtod(text, &end);
        if (end == text || *end || !isfinite(d)) {
            char r[96];
            range_text(f, r, sizeof r);
            return hl_fail(HL_ERR_ARG, "%s: '%s' is not a number (allowed: %s; %s)", f->name, text, r, f->help);
        }
        HL_TRY(check_range(f, d, text));
        *(double *)dst = d;
        return HL_OK;
    }
    case HL_FIELD_BOOL: {
        int b;
        if (!parse_bool(text, &b))
            return hl_fail(HL_ERR_ARG, "%s: '%s' is not a boolean (allowed: true, false)", f->name, text);
        *(int *)dst = b;
        return HL_OK;
    }
    case HL_FIELD_ENUM: {
        int i = find_choice(f, text, strlen(text));
        if (i < 0) {
            char c[256];
            choices_text(f, c, sizeof c);
            return hl_fail(HL_ERR_ARG, "%s: '%s' is not one of: %s", f->name, text, c);
        }
        *(int *)dst = i;
        return HL_OK;
    }
    case HL_FIELD_FLAGS: {
        unsigned bits = 0;
        const char *p = text;
        while (*p) {
            while (*p == ' ' || *p == ',')
                p++;
            if (!*p)
                break;
            const char *q = p;
            while (*q && *q != ',' && *q != ' ')
                q++;
            int i = find_choice(f, p, (size_t)(q - p));
            if (i < 0) {
                char c[256];
                choices_text(f, c, sizeof c);
                return hl_fail(HL_ERR_ARG, "%s: '%.*s' is not one of: %s", f->name, (int)(q - p), p, c);
            }
            bits |= 1u << i;
            p = q;
        }
        if (!bits) {
            char c[256];
            choices_text(f, c, sizeof c);
            return hl_fail(HL_ERR_ARG, "%s: empty; give at least one of: %s", f->name, c);
        }
        *(unsigned *)dst = bits;
        return HL_OK;
    }
    }
    return hl_fail(HL_ERR_INTERNAL, "%s: unknown field type", f->name);
}

void hl_config_defaults(hl_run_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    for (int i = 0; i < hl_config_n_fields; i++) {
        hl_status st = hl_config_set_field(cfg, &hl_config_fields[i], hl_config_fields[i].def);
        (void)st; /* defaults are valid by construction (test_config checks every one) */
    }
}

/* Levenshtein distance, for "did you mean". */
static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    int d[64][64];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c)
                c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c)
                c = d[i][j - 1] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

static hl_status unknown_key(const char *label, const char *key) {
    /* The closest field name or alias; suggested only when it is a plausible typo: at most
     * one edit in a name of up to 4 letters, two up to 8, three beyond, and never a name
     * that would have to be replaced wholesale ("foo" is not a typo of "r"). A key that
     * begins a field name ("drop" for dropout) is suggested too. */
    const char *best = NULL;
    int bd = 99;
    size_t kl = strlen(key);
    for (int i = 0; i < hl_config_n_fields; i++) {
        const char *name = hl_config_fields[i].name;
        int d = edit_distance(key, name);
        if (kl >= 3 && !strncmp(name, key, kl))
            d = 1;
        if (d < bd && d < (int)strlen(name)) {
            bd = d;
            best = name;
        }
    }
    for (size_t i = 0; i < sizeof field_aliases / sizeof field_aliases[0]; i++) {
        int d = edit_distance(key, field_aliases[i].alias);
        if (d < bd && d < (int)strlen(field_aliases[i].alias)) {
            bd = d;
            best = field_aliases[i].name;
        }
    }
    int allow = kl <= 4 ? 1 : kl <= 8 ? 2 : 3;
    if (best && bd <= allow)
        return hl_fail(HL_ERR_ARG, "%s%sunknown config field '%s' (did you mean '%s'?)", label ? label : "",
                       label ? ": " : "", key, best);
    return hl_fail(HL_ERR_ARG, "%s%sunknown config field '%s' (run `hydralora train --help-config` for the list)",
                   label ? label : "", label ? ": " : "", key);
}

hl_status hl_config_set(hl_run_config *cfg, const char *kv) {
    if (!kv)
        return hl_fail(HL_ERR_ARG, "--set: missing key=value");
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv)
        return hl_fail(HL_ERR_ARG, "--set '%s': expected key=value (e.g. lr=1e-4)", kv);
    char key[64];
    size_t n = (size_t)(eq - kv);
    if (n >= sizeof key)
        return unknown_key(NULL, "(too long)");
    memcpy(key, kv, n);
    key[n] = 0;
    const hl_config_field *f = hl_config_field_find(key);
    if (!f)
        return unknown_key(NULL, key);
    return hl_config_set_field(cfg, f, eq + 1);
}

void hl_config_get_field(const hl_run_config *cfg, const hl_config_field *f, char *buf, size_t size) {
    const void *src = cmember(cfg, f);
    if (!size)
        return;
    buf[0] = 0;
    switch (f->type) {
    case HL_FIELD_STRING:
    case HL_FIELD_PATH:
        snprintf(buf, size, "%s", (const char *)src);
        break;
    case HL_FIELD_INT:
        snprintf(buf, size, "%d", *(const int *)src);
        break;
    case HL_FIELD_INT64:
        snprintf(buf, size, "%lld", (long long)*(const int64_t *)src);
        break;
    case HL_FIELD_DOUBLE: {
        /* Shortest text that reads back to the same double. */
        double v = *(const double *)src;
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(buf, size, "%.*g", prec, v);
            if (strtod(buf, NULL) == v)
                break;
        }
        break;
    }
    case HL_FIELD_BOOL:
        snprintf(buf, size, "%s", *(const int *)src ? "true" : "false");
        break;
    case HL_FIELD_ENUM: {
        int v = *(const int *)src, n = 0;
        while (f->choices[n])
            n++;
        snprintf(buf, size, "%s", v >= 0 && v < n ? f->choices[v] : "?");
        break;
    }
    case HL_FIELD_FLAGS: {
        unsigned v = *(const unsigned *)src;
        size_t k = 0;
        for (int i = 0; f->choices[i]; i++)
            if (v & (1u << i)) {
                int w = snprintf(buf + k, size - k, "%s%s", k ? "," : "", f->choices[i]);
                if (w < 0 || (size_t)w >= size - k)
                    break;
                k += (size_t)w;
            }
        break;
    }
    }
}

/* Text of a JSON scalar for hl_config_set_field. */
static hl_status json_value_text(const hl_config_field *f, const cJSON *v, char *buf, size_t size,
                                 const char *label) {
    const char *lp = label ? label : "", *sep = label ? ": " : "";
    if (cJSON_IsString(v)) {
        snprintf(buf, size, "%s", v->valuestring);
        if (strlen(v->valuestring) >= size)
            return hl_fail(HL_ERR_RANGE, "%s%s%s: value too long", lp, sep, f->name);
        return HL_OK;
    }
    if (cJSON_IsBool(v)) {
        snprintf(buf, size, "%s", cJSON_IsTrue(v) ? "true" : "false");
        return HL_OK;
    }
    if (cJSON_IsNumber(v)) {
        snprintf(buf, size, "%.17g", v->valuedouble);
        return HL_OK;
    }
    if (cJSON_IsArray(v) && (f->type == HL_FIELD_FLAGS || f->type == HL_FIELD_PATH)) {
        size_t k = 0;
        buf[0] = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, v) {
            if (!cJSON_IsString(it))
                return hl_fail(HL_ERR_ARG, "%s%s%s: array items must be strings", lp, sep, f->name);
            if (strchr(it->valuestring, ','))
                return hl_fail(HL_ERR_ARG, "%s%s%s: '%s' contains a comma, which separates list items", lp,
                               sep, f->name, it->valuestring);
            int w = snprintf(buf + k, size - k, "%s%s", k ? "," : "", it->valuestring);
            if (w < 0 || (size_t)w >= size - k)
                return hl_fail(HL_ERR_RANGE, "%s%s%s: list too long", lp, sep, f->name);
            k += (size_t)w;
        }
        return HL_OK;
    }
    return hl_fail(HL_ERR_ARG, "%s%s%s: wrong JSON type (expected %s)", lp, sep, f->name,
                   f->type == HL_FIELD_BOOL ? "true/false"
                   : f->type == HL_FIELD_INT || f->type == HL_FIELD_INT64 || f->type == HL_FIELD_DOUBLE
                       ? "a number"
                       : "a string");
}

hl_status hl_config_from_json(hl_run_config *cfg, const char *json, size_t len, const char *label) {
    const char *lp = label ? label : "config", *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        size_t off = end && end >= json ? (size_t)(end - json) : 0;
        int line = 1;
        for (size_t i = 0; i < off && i < len; i++)
            line += json[i] == '\n';
        return hl_fail(HL_ERR_FORMAT, "%s: invalid JSON near line %d (byte %zu)", lp, line, off);
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return hl_fail(HL_ERR_FORMAT, "%s: expected a JSON object {\"model\": ..., \"data\": ...}", lp);
    }
    hl_run_config tmp = *cfg;
    const cJSON *it;
    hl_status st = HL_OK;
    char *buf = malloc(HL_CONFIG_PATH_MAX * 2);
    if (!buf) {
        cJSON_Delete(root);
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    }
    cJSON_ArrayForEach(it, root) {
        if (!it->string)
            continue;
        if (it->string[0] == '_' || !strcmp(it->string, "comment"))
            continue; /* comments: "_note": "..." */
        const hl_config_field *f = hl_config_field_find(it->string);
        if (!f) {
            st = unknown_key(lp, it->string);
            break;
        }
        if (cJSON_IsNull(it))
            continue;
        st = json_value_text(f, it, buf, HL_CONFIG_PATH_MAX * 2, lp);
        if (st)
            break;
        st = hl_config_set_field(&tmp, f, buf);
        if (st) {
            hl_fail_context(st, "%s", lp);
            break;
        }
    }
    free(buf);
    cJSON_Delete(root);
    if (st == HL_OK)
        *cfg = tmp;
    return st;
}

hl_status hl_config_load_file(hl_run_config *cfg, const char *path) {
    char *buf = NULL;
    size_t len = 0;
    HL_TRY(hl_file_read_all(path, 64u << 20, &buf, &len)); /* a config is a few KB; 64 MiB is a wrong path */
    hl_status st = hl_config_from_json(cfg, buf, len, path);
    free(buf);
    return st;
}

hl_status hl_config_validate(const hl_run_config *cfg) {
    /* Every field against its own table entry (the struct may have been edited directly). */
    char *buf = malloc(HL_CONFIG_PATH_MAX * 2);
    if (!buf)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    hl_run_config tmp = *cfg;
    for (int i = 0; i < hl_config_n_fields; i++) {
        const hl_config_field *f = &hl_config_fields[i];
        if (f->type == HL_FIELD_STRING || f->type == HL_FIELD_PATH) {
            if (!memchr(cmember(cfg, f), 0, f->size)) {
                free(buf);
                return hl_fail(HL_ERR_RANGE, "%s: not NUL-terminated", f->name);
            }
            continue;
        }
        hl_config_get_field(cfg, f, buf, HL_CONFIG_PATH_MAX * 2);
        if (f->type == HL_FIELD_ENUM && !strcmp(buf, "?")) {
            free(buf);
            return hl_fail(HL_ERR_RANGE, "%s: invalid value %d", f->name, *(const int *)cmember(cfg, f));
        }
        hl_status st = hl_config_set_field(&tmp, f, buf);
        if (st) {
            free(buf);
            return st;
        }
    }
    free(buf);
    if (!cfg->model[0])
        return hl_fail(HL_ERR_ARG, "model: no base model given");
    if (!cfg->data[0])
        return hl_fail(HL_ERR_ARG, "data: no training data given");
    if (!cfg->name[0] && !cfg->out_dir[0])
        return hl_fail(HL_ERR_ARG, "name: empty, and no out_dir given: the run needs a directory");
    if (cfg->name[0] && (strchr(cfg->name, '/') || !strcmp(cfg->name, ".") || !strcmp(cfg->name, "..")))
        return hl_fail(HL_ERR_ARG, "name: '%s' must be a plain name (no '/'); use out_dir for a path", cfg->name);
    if (hl_backend_resolve(cfg->device, NULL, 0) != HL_OK)
        return hl_fail_context(HL_ERR_ARG, "device");
    if (cfg->variant == HL_VARIANT_LORA && cfg->n_heads != 1) {
        /* Not an error: LoRA has one head by definition; hl_config_adapter forces N = 1. */
    }
    return HL_OK;
}

/* cJSON number for a field value: integers exactly, doubles via their shortest text. */
static cJSON *field_to_json(const hl_run_config *cfg, const hl_config_field *f) {
    char buf[HL_CONFIG_PATH_MAX + 64];
    const void *src = cmember(cfg, f);
    switch (f->type) {
    case HL_FIELD_STRING:
    case HL_FIELD_PATH:
        return cJSON_CreateString((const char *)src);
    case HL_FIELD_INT:
        return cJSON_CreateNumber(*(const int *)src);
    case HL_FIELD_INT64: /* as text: cJSON's %.15g would round large seeds */
        snprintf(buf, sizeof buf, "%lld", (long long)*(const int64_t *)src);
        return cJSON_CreateRaw(buf);
    case HL_FIELD_DOUBLE:
        hl_config_get_field(cfg, f, buf, sizeof buf);
        return cJSON_CreateRaw(buf);
    case HL_FIELD_BOOL:
        return cJSON_CreateBool(*(const int *)src);
    case HL_FIELD_ENUM:
        hl_config_get_field(cfg, f, buf, sizeof buf);
        return cJSON_CreateString(buf);
    case HL_FIELD_FLAGS: {
        cJSON *arr = cJSON_CreateArray();
        unsigned v = *(const unsigned *)src;
        for (int i = 0; arr && f->choices[i]; i++)
            if (v & (1u << i))
                cJSON_AddItemToArray(arr, cJSON_CreateString(f->choices[i]));
        return arr;
    }
    }
    return cJSON_CreateNull();
}

char *hl_config_to_json(const hl_run_config *cfg) {
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return NULL;
    for (int i = 0; i < hl_config_n_fields; i++) {
        cJSON *v = field_to_json(cfg, &hl_config_fields[i]);
        if (!v) {
            cJSON_Delete(root);
            return NULL;
        }
        cJSON_AddItemToObject(root, hl_config_fields[i].name, v);
    }
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    return s;
}

/* Write `len` bytes to path atomically: tmp file in the same dir, fsync, rename, fsync dir. */
static hl_status write_atomic(const char *path, const char *data, size_t len) {
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16);
    if (!tmp)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    snprintf(tmp, pl + 16, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        hl_status st = hl_fail(HL_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : ENOSPC;
            close(fd);
            unlink(tmp);
            free(tmp);
            return hl_fail(e == ENOSPC ? HL_ERR_DISK_FULL : HL_ERR_IO, "cannot write %s: %s", path, strerror(e));
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        free(tmp);
        return hl_fail(e == ENOSPC ? HL_ERR_DISK_FULL : HL_ERR_IO, "cannot write %s: %s", path, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        hl_status st = hl_fail(HL_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(e));
        unlink(tmp);
        free(tmp);
        return st;
    }
    free(tmp);
    hl_fsync_parent(path); /* make the rename durable */
    return HL_OK;
}

hl_status hl_config_save_file(const hl_run_config *cfg, const char *path) {
    char *s = hl_config_to_json(cfg);
    if (!s)
        return hl_fail(HL_ERR_NOMEM, "out of memory writing %s", path);
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) {
        free(s);
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    }
    t[n] = '\n';
    t[n + 1] = 0;
    hl_status st = write_atomic(path, t, n + 1);
    free(t);
    return st;
}

void hl_config_run_dir(const hl_run_config *cfg, char *buf, size_t size) {
    if (cfg->out_dir[0])
        snprintf(buf, size, "%s", cfg->out_dir);
    else
        snprintf(buf, size, "runs/%s", cfg->name);
}

hl_adapter_config hl_config_adapter(const hl_run_config *cfg) {
    hl_adapter_config a;
    memset(&a, 0, sizeof a);
    a.variant = cfg->variant;
    a.targets = cfg->targets;
    a.r = cfg->r;
    a.n_heads = cfg->variant == HL_VARIANT_LORA ? 1 : cfg->n_heads;
    a.alpha = (float)cfg->alpha;
    a.dropout = (float)cfg->dropout;
    return a;
}
