/* hl_model_load: format detection and the Hugging Face (config.json + safetensors) loader;
 * the llama2.c and GGUF loaders are core/model/llama2c.c and core/model/gguf_model.c, the model object and
 * the helpers every loader shares core/model/build.c. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/fileio.h"
#include "core/formats/gguf.h"
#include "core/model/gguf_model.h"
#include "core/model/llama2c.h"
#include "core/base/mapped_file.h"
#include "core/model/model.h"
#include "core/model/build.h"
#include "core/formats/safetensors.h"

/* ---- Hugging Face: config.json + safetensors --------------------------------------- */

static hl_status json_int(const cJSON *root, const char *key, int required, int dflt, int *out, const char *L) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) {
        if (required)
            return hl_fail(HL_ERR_FORMAT, "%s: \"%s\" is missing", L, key);
        *out = dflt;
        return HL_OK;
    }
    if (cJSON_IsArray(j) && j->child) /* e.g. eos_token_id: [2, 32000] → the first */
        j = j->child;
    if (!cJSON_IsNumber(j))
        return hl_fail(HL_ERR_FORMAT, "%s: \"%s\" must be an integer (it is not a number)", L, key);
    double v = j->valuedouble;
    if (floor(v) != v)
        return hl_fail(HL_ERR_FORMAT, "%s: \"%s\" must be an integer, not %g", L, key, v);
    if (!(v >= -2147483648.0 && v <= 2147483647.0))
        return hl_fail(HL_ERR_FORMAT, "%s: \"%s\" = %.0f is out of range (no LLaMA model is this large)", L, key, v);
    *out = (int)v;
    return HL_OK;
}

static hl_status json_float(const cJSON *root, const char *key, double dflt, double *out, const char *L) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) {
        *out = dflt;
        return HL_OK;
    }
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble))
        return hl_fail(HL_ERR_FORMAT, "%s: \"%s\" must be a number", L, key);
    *out = j->valuedouble;
    return HL_OK;
}

/* Parse a LlamaConfig (docs/file-formats.md §4.3). Defaults follow transformers' LlamaConfig. */
static hl_status hf_config_parse(const char *text, size_t len, const char *L, hl_llama_config *c, int *tie_given) {
    memset(c, 0, sizeof *c);
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return hl_fail(HL_ERR_FORMAT, "%s: not a JSON object", L);
    }
    hl_status rc = HL_OK;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (cJSON_IsString(mt) && strcmp(mt->valuestring, "llama") != 0) {
        rc = hl_fail(HL_ERR_FORMAT, "%s: model_type \"%.60s\" is not supported (LLaMA architecture only)", L,
                     mt->valuestring);
        goto out;
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (cJSON_IsString(act) && strcmp(act->valuestring, "silu") != 0) {
        rc = hl_fail(HL_ERR_FORMAT, "%s: hidden_act \"%.60s\" is not supported (silu only)", L, act->valuestring);
        goto out;
    }
    const char *bias_keys[] = {"attention_bias", "mlp_bias"};
    for (int i = 0; i < 2; i++)
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, bias_keys[i]))) {
            rc = hl_fail(HL_ERR_FORMAT, "%s: %s = true is not supported (LLaMA-2 has no biases)", L, bias_keys[i]);
            goto out;
        }
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (rs && !cJSON_IsNull(rs)) {
        rc = hl_fail(HL_ERR_FORMAT, "%s: rope_scaling is set; only plain RoPE (rope_scaling: null) is supported", L);
        goto out;
    }
    double eps, theta;
    if ((rc = json_int(root, "hidden_size", 1, 0, &c->dim, L)) || (rc = json_int(root, "intermediate_size", 1, 0,
                                                                                      &c->hidden_dim, L)) ||
        (rc = json_int(root, "num_hidden_layers", 1, 0, &c->n_layers, L)) ||
        (rc = json_int(root, "num_attention_heads", 1, 0, &c->n_heads, L)) ||
        (rc = json_int(root, "num_key_value_heads", 0, c->n_heads, &c->n_kv_heads, L)) ||
        (rc = json_int(root, "vocab_size", 1, 0, &c->vocab_size, L)) ||
        (rc = json_int(root, "max_position_embeddings", 0, 2048, &c->max_seq_len, L)) ||
        (rc = json_int(root, "bos_token_id", 0, 1, &c->bos_id, L)) ||
        (rc = json_int(root, "eos_token_id", 0, 2, &c->eos_id, L)) ||
        (rc = json_float(root, "rms_norm_eps", 1e-6, &eps, L)) ||
        (rc = json_float(root, "rope_theta", 10000.0, &theta, L)))
        goto out;
    if (c->n_heads <= 0) {
        rc = hl_fail(HL_ERR_FORMAT, "%s: num_attention_heads must be positive", L);
        goto out;
    }
    if ((rc = json_int(root, "head_dim", 0, c->dim / c->n_heads, &c->head_dim, L)))
        goto out;
    if (!cJSON_GetObjectItemCaseSensitive(root, "head_dim") && c->dim % c->n_heads) {
        rc = hl_fail(HL_ERR_FORMAT, "%s: hidden_size %d is not a multiple of num_attention_heads %d", L, c->dim,
                     c->n_heads);
        goto out;
    }
    c->rms_norm_eps = (float)eps;
    c->rope_theta = (float)theta;
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
    *tie_given = cJSON_IsBool(tie);
    c->tie_word_embeddings = cJSON_IsTrue(tie);
out:
    cJSON_Delete(root);
    return rc;
}

hl_status hl_model_read_config(const char *dir, hl_llama_config *cfg, hl_dtype *dtype) {
    char cfg_path[4200];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    hl_mapped_file cf;
    HL_TRY(hl_mapped_file_open(&cf, cfg_path));
    int tie_given = 0;
    hl_status rc = hf_config_parse((const char *)cf.data, cf.size, cfg_path, cfg, &tie_given);
    *dtype = HL_DTYPE_F32;
    if (rc == HL_OK) {
        cJSON *root = cJSON_ParseWithLength((const char *)cf.data, cf.size);
        const cJSON *td = cJSON_GetObjectItemCaseSensitive(root, "torch_dtype");
        if (cJSON_IsString(td)) {
            if (!strcmp(td->valuestring, "float16"))
                *dtype = HL_DTYPE_F16;
            else if (!strcmp(td->valuestring, "bfloat16"))
                *dtype = HL_DTYPE_BF16;
        }
        cJSON_Delete(root);
        rc = hl_llama_config_check(cfg, cfg_path);
    }
    hl_mapped_file_close(&cf);
    return rc;
}

/* Expected shape of one HF tensor, checked exactly (rank included). */
static hl_status hf_weight(hl_model *m, const hl_st_set *set, const char *name, int64_t rows, int64_t cols, int rank,
                           hl_weight *dst, const char *L) {
    const hl_st_tensor *t = hl_st_set_find(set, name);
    if (!t) {
        if (rank == 1)
            return hl_fail(HL_ERR_FORMAT, "%s: tensor %s is missing (expected shape [%lld])", L, name,
                           (long long)cols);
        return hl_fail(HL_ERR_FORMAT, "%s: tensor %s is missing (expected shape [%lld, %lld])", L, name,
                       (long long)rows, (long long)cols);
    }
    int ok = t->ndim == rank && (rank == 1 ? t->shape[0] == cols : t->shape[0] == rows && t->shape[1] == cols);
    if (!ok) {
        char got[128] = "[";
        for (int i = 0; i < t->ndim; i++) {
            size_t n = strlen(got);
            snprintf(got + n, sizeof got - n, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        }
        strncat(got, "]", sizeof got - strlen(got) - 1);
        if (rank == 1)
            return hl_fail(HL_ERR_SHAPE, "%s: tensor %s has shape %s, expected [%lld]", L, name, got,
                           (long long)cols);
        return hl_fail(HL_ERR_SHAPE, "%s: tensor %s has shape %s, expected [%lld, %lld]", L, name, got,
                       (long long)rows, (long long)cols);
    }
    hl_status rc = hl_st_tensor_weight(t, dst);
    if (rc != HL_OK)
        return hl_fail_context(rc, "%s", L);
    return hl_model_align_weight(m, dst);
}

static const char *st_set_name(const void *set, int i) { return hl_st_set_at(set, i)->name; }

static hl_status load_hf(hl_model *m, const char *dir, const char *weights) {
    char cfg_path[4200];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    hl_mapped_file cf;
    hl_status rc = hl_mapped_file_open(&cf, cfg_path);
    if (rc != HL_OK)
        return hl_fail_context(rc, "a Hugging Face model directory needs config.json");
    hl_llama_config cfg;
    int tie_given = 0;
    rc = hf_config_parse((const char *)cf.data, cf.size, cfg_path, &cfg, &tie_given);
    hl_mapped_file_close(&cf);
    if (rc != HL_OK)
        return rc;
    HL_TRY(hl_llama_config_check(&cfg, cfg_path));

    hl_st_set *set = NULL;
    HL_TRY(hl_st_set_open(&set, weights ? weights : dir));
    const char *L = weights ? weights : dir;
    /* LlamaForCausalLM keys start with "model."; a bare LlamaModel's do not. */
    const char *pre = hl_st_set_find(set, "model.embed_tokens.weight") ? "model." : "";
    const hl_st_tensor *head = hl_st_set_find(set, "lm_head.weight");
    if (!head && !cfg.tie_word_embeddings)
        cfg.tie_word_embeddings = 1; /* no separate head stored: it is the embedding */
    {
        static const char *const layer_suffixes[] = {
            "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
            "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
            "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight", NULL};
        /* transformers' older checkpoints store RoPE's inverse frequencies: recomputed here */
        static const char *const ignore[] = {".rotary_emb.inv_freq", NULL};
        char layer_prefix[32], emb[64], norm[64], key[64];
        snprintf(layer_prefix, sizeof layer_prefix, "%slayers.", pre);
        snprintf(emb, sizeof emb, "%sembed_tokens.weight", pre);
        snprintf(norm, sizeof norm, "%snorm.weight", pre);
        snprintf(key, sizeof key, "num_hidden_layers in %s", "config.json");
        const char *const top[] = {emb, norm, "lm_head.weight", NULL};
        rc = hl_model_check_tensor_names(L, key, cfg.n_layers, hl_st_set_count(set), st_set_name, set, layer_prefix,
                                         layer_suffixes, top, ignore);
        if (rc != HL_OK)
            goto out;
    }
    rc = hl_model_begin(m, &cfg, HL_FORMAT_HF_SAFETENSORS, dir);
    if (rc != HL_OK)
        goto out;
    const hl_llama_config *c = &m->cfg;
    int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    char name[256];
#define HF(field, rank, rows, cols, ...)                                  \
    do {                                                                  \
        snprintf(name, sizeof name, __VA_ARGS__);                         \
        if ((rc = hf_weight(m, set, name, rows, cols, rank, field, L)))      \
            goto out;                                                     \
    } while (0)
    HF(&m->tok_embed, 2, c->vocab_size, c->dim, "%sembed_tokens.weight", pre);
    HF(&m->final_norm, 1, 1, c->dim, "%snorm.weight", pre);
    if (c->tie_word_embeddings)
        m->lm_head = m->tok_embed;
    else
        HF(&m->lm_head, 2, c->vocab_size, c->dim, "lm_head.weight");
    for (int l = 0; l < c->n_layers; l++) {
        hl_layer_weights *W = &m->layers[l];
        HF(&W->attn_norm, 1, 1, c->dim, "%slayers.%d.input_layernorm.weight", pre, l);
        HF(&W->wq, 2, q, c->dim, "%slayers.%d.self_attn.q_proj.weight", pre, l);
        HF(&W->wk, 2, kv, c->dim, "%slayers.%d.self_attn.k_proj.weight", pre, l);
        HF(&W->wv, 2, kv, c->dim, "%slayers.%d.self_attn.v_proj.weight", pre, l);
        HF(&W->wo, 2, c->dim, q, "%slayers.%d.self_attn.o_proj.weight", pre, l);
        HF(&W->ffn_norm, 1, 1, c->dim, "%slayers.%d.post_attention_layernorm.weight", pre, l);
        HF(&W->w_gate, 2, c->hidden_dim, c->dim, "%slayers.%d.mlp.gate_proj.weight", pre, l);
        HF(&W->w_up, 2, c->hidden_dim, c->dim, "%slayers.%d.mlp.up_proj.weight", pre, l);
        HF(&W->w_down, 2, c->dim, c->hidden_dim, "%slayers.%d.mlp.down_proj.weight", pre, l);
    }
#undef HF
    /* The views stay, the tables go: keep only the mappings. */
    hl_mapped_file *maps = NULL;
    int n_maps = 0;
    if ((rc = hl_st_set_take_maps(set, &maps, &n_maps)))
        goto out;
    for (int i = 0; i < n_maps; i++)
        if (rc == HL_OK)
            rc = hl_model_keep_map(m, &maps[i]);
        else
            hl_mapped_file_close(&maps[i]);
    free(maps);
    if (rc == HL_OK)
        rc = hl_model_finish(m);
out:
    hl_st_set_close(set);
    if (rc != HL_OK)
        hl_model_free(m);
    return rc;
}

/* ---- detection --------------------------------------------------------------------- */

static int looks_like_safetensors(const unsigned char *p, size_t len) {
    if (len < 10)
        return 0;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | p[i];
    return n >= 2 && n <= len - 8 && p[8] == '{';
}

static hl_status load_file(hl_model *m, const char *path) {
    hl_mapped_file mf;
    HL_TRY(hl_mapped_file_open(&mf, path));
    hl_status rc;
    if (mf.size >= 4 && !memcmp(mf.data, "GGUF", 4)) {
        hl_gguf *g = NULL;
        rc = hl_gguf_parse(&g, mf.data, mf.size, path);
        if (rc == HL_OK)
            rc = hl_gguf_load_model(m, g, path);
        hl_gguf_free(g);
    } else if (hl_llama2c_has_magic(mf.data, mf.size)) {
        rc = hl_llama2c_load_memory(m, mf.data, mf.size, path);
    } else if (looks_like_safetensors(mf.data, mf.size)) {
        hl_mapped_file_close(&mf);
        char dir[4096];
        hl_path_dirname(dir, sizeof dir, path);
        rc = load_hf(m, dir, path);
        if (rc == HL_OK)
            snprintf(m->path, sizeof m->path, "%s", path);
        return rc;
    } else {
        hl_llama2c_header h;
        rc = hl_llama2c_read_header(mf.data, mf.size, path, &h);
        if (rc != HL_OK) {
            hl_mapped_file_close(&mf);
            return hl_fail_context(HL_ERR_FORMAT,
                                   "%s: not a recognised model file (expected a GGUF, llama2.c .bin, safetensors "
                                   "file or a Hugging Face directory); as a llama2.c v0 file",
                                   path);
        }
        rc = hl_llama2c_load_memory(m, mf.data, mf.size, path);
    }
    if (rc == HL_OK) {
        hl_mapped_file_advise_willneed(&mf);
        rc = hl_model_keep_map(m, &mf);
        if (rc != HL_OK)
            hl_model_free(m);
    } else {
        hl_mapped_file_close(&mf);
    }
    return rc;
}

/* A folder without config.json may still hold one model file (a catalog download of a
 * llama2.c or GGUF model: stories260K/ holds stories260K.bin and tok512.bin). found[0] = 0
 * when there is not exactly one; *count says how many. */
static void single_model_file(const char *dir, char *found, size_t cap, int *count) {
    found[0] = '\0';
    *count = 0;
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        size_t l = strlen(n);
        int gguf = l > 5 && !strcmp(n + l - 5, ".gguf");
        int bin = l > 4 && !strcmp(n + l - 4, ".bin");
        if (!gguf && !bin)
            continue;
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", dir, n);
        struct stat sb;
        if (stat(p, &sb) != 0 || !S_ISREG(sb.st_mode))
            continue;
        if (bin) { /* a llama2.c checkpoint, not a tokenizer.bin / tok512.bin next to it */
            hl_mapped_file mf;
            if (hl_mapped_file_open(&mf, p) != HL_OK)
                continue;
            hl_llama2c_header h;
            int is_model = hl_llama2c_has_magic(mf.data, mf.size) ||
                           hl_llama2c_read_header(mf.data, mf.size, p, &h) == HL_OK;
            hl_mapped_file_close(&mf);
            if (!is_model)
                continue;
        }
        if ((*count)++ == 0)
            snprintf(found, cap, "%s", p);
    }
    closedir(d);
    hl_clear_error();
    if (*count != 1)
        found[0] = '\0';
}

hl_status hl_model_load(hl_model *model, const char *path) {
    memset(model, 0, sizeof *model);
    if (!path || !*path)
        return hl_fail(HL_ERR_ARG, "no model path given");
    struct stat sb;
    if (stat(path, &sb) != 0)
        return hl_fail(HL_ERR_NOT_FOUND, "%s: no such file or directory", path);
    if (S_ISDIR(sb.st_mode)) {
        char cfg_path[4200];
        snprintf(cfg_path, sizeof cfg_path, "%s/config.json", path);
        if (access(cfg_path, F_OK) != 0) {
            char file[4400];
            int count = 0;
            single_model_file(path, file, sizeof file, &count);
            if (file[0])
                return load_file(model, file);
            if (count > 1)
                return hl_fail(HL_ERR_ARG, "%s holds %d model files and no config.json: name the file to use", path,
                               count);
        }
        return load_hf(model, path, NULL);
    }
    size_t n = strlen(path);
    if (n >= 11 && !strcmp(path + n - 11, "config.json")) {
        char dir[4096];
        hl_path_dirname(dir, sizeof dir, path);
        return load_hf(model, dir, NULL);
    }
    if (n >= 5 && !strcmp(path + n - 5, ".json")) {
        char dir[4096];
        hl_path_dirname(dir, sizeof dir, path);
        return load_hf(model, dir, path); /* a model.safetensors.index.json */
    }
    return load_file(model, path);
}
