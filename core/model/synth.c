/* Random-weight LLaMA-2-shaped models (see model_synth.h). */
#include "core/model/synth.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/fileio.h"
#include "core/base/jsonout.h"
#include "core/model/build.h"
#include "core/base/rng.h"
#include "core/formats/safetensors.h"
#include "core/model/tokenizer/tokenizer.h"

#define SYNTH_STD 0.02 /* transformers' LlamaConfig.initializer_range */
#define SHARD_BYTES ((int64_t)4 << 30)

hl_status hl_synth_shape(const char *name, hl_llama_config *cfg) {
    static const struct {
        const char *name;
        int dim, hidden, layers, heads, kv, vocab, ctx;
    } shapes[] = {
        {"7b", 4096, 11008, 32, 32, 32, 32000, 4096},
        {"13b", 5120, 13824, 40, 40, 40, 32000, 4096},
        {"tiny", 128, 352, 2, 4, 2, 512, 512},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (!strcmp(name, shapes[i].name)) {
            memset(cfg, 0, sizeof *cfg);
            cfg->dim = shapes[i].dim;
            cfg->hidden_dim = shapes[i].hidden;
            cfg->n_layers = shapes[i].layers;
            cfg->n_heads = shapes[i].heads;
            cfg->n_kv_heads = shapes[i].kv;
            cfg->head_dim = shapes[i].dim / shapes[i].heads;
            cfg->vocab_size = shapes[i].vocab;
            cfg->max_seq_len = shapes[i].ctx;
            cfg->rms_norm_eps = 1e-5f;
            cfg->rope_theta = 10000.0f;
            cfg->bos_id = 1;
            cfg->eos_id = 2;
            return HL_OK;
        }
    return hl_fail(HL_ERR_ARG, "unknown model shape '%s': use 7b, 13b or tiny", name);
}

/* ---- the tensor list (the same order in memory and on disk) --------------------------------- */

typedef struct {
    char name[96];
    int64_t rows, cols;
    int norm; /* 1: filled with ones */
} synth_tensor;

static int tensor_list(const hl_llama_config *c, synth_tensor *t) {
    int n = 0;
    const int64_t D = c->dim, F = c->hidden_dim, Dq = (int64_t)c->n_heads * c->head_dim;
    const int64_t Dkv = (int64_t)c->n_kv_heads * c->head_dim, V = c->vocab_size;
#define ADD(r, cl, nm, ...)                                                                                           \
    do {                                                                                                              \
        if (t) {                                                                                                      \
            snprintf(t[n].name, sizeof t[n].name, nm, __VA_ARGS__);                                                   \
            t[n].rows = (r), t[n].cols = (cl), t[n].norm = (r) == 1;                                                  \
        }                                                                                                             \
        n++;                                                                                                          \
    } while (0)
    ADD(V, D, "model.embed_tokens.weight%s", "");
    for (int l = 0; l < c->n_layers; l++) {
        ADD(1, D, "model.layers.%d.input_layernorm.weight", l);
        ADD(Dq, D, "model.layers.%d.self_attn.q_proj.weight", l);
        ADD(Dkv, D, "model.layers.%d.self_attn.k_proj.weight", l);
        ADD(Dkv, D, "model.layers.%d.self_attn.v_proj.weight", l);
        ADD(D, Dq, "model.layers.%d.self_attn.o_proj.weight", l);
        ADD(1, D, "model.layers.%d.post_attention_layernorm.weight", l);
        ADD(F, D, "model.layers.%d.mlp.gate_proj.weight", l);
        ADD(F, D, "model.layers.%d.mlp.up_proj.weight", l);
        ADD(D, F, "model.layers.%d.mlp.down_proj.weight", l);
    }
    ADD(1, D, "model.norm.weight%s", "");
    if (!c->tie_word_embeddings)
        ADD(V, D, "lm_head.weight%s", "");
#undef ADD
    return n;
}

/* Tensor `index` of the list, element j: uniform with std SYNTH_STD (norms: 1). */
static void fill(void *dst, hl_dtype dt, const synth_tensor *t, uint64_t seed, uint64_t index) {
    const int64_t n = t->rows * t->cols;
    const uint64_t key = hl_rng_hash(seed, index);
    const float bound = (float)(SYNTH_STD * sqrt(3.0));
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t j = 0; j < n; j++) {
        float x = t->norm ? 1.0f : (2.0f * hl_rng_hash_uniform(key, (uint64_t)j) - 1.0f) * bound;
        if (dt == HL_DTYPE_F32)
            ((float *)dst)[j] = x;
        else if (dt == HL_DTYPE_BF16)
            ((uint16_t *)dst)[j] = hl_f32_to_bf16(x);
        else
            ((uint16_t *)dst)[j] = hl_f32_to_f16(x);
    }
}

/* ---- in memory ------------------------------------------------------------------------------------ */

hl_status hl_synth_model(hl_model *m, const hl_llama_config *cfg, hl_dtype dt, uint64_t seed) {
    HL_TRY(hl_model_begin(m, cfg, HL_FORMAT_HF_SAFETENSORS, "(random weights)"));
    int n = tensor_list(cfg, NULL);
    synth_tensor *t = malloc((size_t)n * sizeof *t);
    if (!t) {
        hl_model_free(m);
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    }
    tensor_list(cfg, t);
    m->dtype = dt;
    hl_status st = HL_OK;
    for (int i = 0; i < n && !st; i++) {
        void *buf = malloc((size_t)(t[i].rows * t[i].cols) * hl_dtype_size(dt));
        if (!buf) {
            st = hl_fail(HL_ERR_NOMEM, "cannot allocate %.1f MiB for %s",
                         (double)(t[i].rows * t[i].cols * (int64_t)hl_dtype_size(dt)) / 1048576.0, t[i].name);
            break;
        }
        fill(buf, dt, &t[i], seed, (uint64_t)i);
        st = hl_model_keep(m, buf);
        if (st)
            break;
        hl_weight w = {dt, buf, t[i].rows, t[i].cols};
        /* the list order: embed, per layer 9 tensors, final norm, head */
        if (i == 0) {
            m->tok_embed = w;
            if (cfg->tie_word_embeddings)
                m->lm_head = w;
        } else if (i <= 9 * cfg->n_layers) {
            hl_layer_weights *L = &m->layers[(i - 1) / 9];
            hl_weight *slot[9] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo, &L->ffn_norm, &L->w_gate, &L->w_up,
                                  &L->w_down};
            *slot[(i - 1) % 9] = w;
        } else if (i == 9 * cfg->n_layers + 1) {
            m->final_norm = w;
        } else {
            m->lm_head = w;
        }
    }
    free(t);
    if (!st)
        st = hl_model_finish(m);
    if (st)
        hl_model_free(m);
    return st;
}

/* ---- on disk --------------------------------------------------------------------------------------- */

/* A llama2.c tokenizer.bin labelled synthetic: <unk>, BOS, EOS, the 256 byte pieces, every
 * printable ASCII character alone and after a space, then "<synthetic_NNNNN>" fillers. */
static hl_status write_synthetic_tokenizer(const char *path, int V) {
    FILE *f = fopen(path, "wb");
    if (!f)
        return hl_fail(HL_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    int32_t maxlen = 24, n = 0;
    fwrite(&maxlen, 4, 1, f);
    char piece[32];
    float score = 0.0f;
#define PUT(s)                                                                                                        \
    do {                                                                                                              \
        int32_t l_ = (int32_t)strlen(s);                                                                              \
        fwrite(&score, 4, 1, f);                                                                                      \
        fwrite(&l_, 4, 1, f);                                                                                         \
        fwrite((s), 1, (size_t)l_, f);                                                                                \
        n++;                                                                                                          \
    } while (0)
    PUT("<unk>");
    PUT("\n<s>\n");
    PUT("\n</s>\n");
    for (int b = 0; b < 256; b++) {
        snprintf(piece, sizeof piece, "<0x%02X>", b);
        PUT(piece);
    }
    for (int ch = 32; ch < 127 && n < V; ch++) {
        score -= 1.0f;
        piece[0] = (char)ch, piece[1] = 0;
        PUT(piece);
        if (ch != ' ' && n < V) {
            piece[0] = ' ', piece[1] = (char)ch, piece[2] = 0;
            PUT(piece);
        }
    }
    while (n < V) {
        score -= 1.0f;
        snprintf(piece, sizeof piece, "<synthetic_%05d>", n);
        PUT(piece);
    }
#undef PUT
    int bad = ferror(f);
    if (fclose(f) || bad)
        return hl_fail(errno == ENOSPC ? HL_ERR_DISK_FULL : HL_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    if (n > V)
        return hl_fail(HL_ERR_ARG, "vocabulary %d is too small for a synthetic tokenizer (needs %d)", V, n);
    return HL_OK;
}

static hl_status copy_file(const char *src, const char *dst) {
    char *data = NULL;
    size_t len = 0;
    HL_TRY(hl_file_read_all(src, 0, &data, &len));
    FILE *f = fopen(dst, "wb");
    if (!f) {
        free(data);
        return hl_fail(HL_ERR_IO, "cannot create %s: %s", dst, strerror(errno));
    }
    size_t w = fwrite(data, 1, len, f);
    free(data);
    if (fclose(f) || w != len)
        return hl_fail(errno == ENOSPC ? HL_ERR_DISK_FULL : HL_ERR_IO, "cannot write %s: %s", dst, strerror(errno));
    return HL_OK;
}

static hl_status write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f)
        return hl_fail(HL_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    fputs(text, f);
    if (fclose(f))
        return hl_fail(errno == ENOSPC ? HL_ERR_DISK_FULL : HL_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    return HL_OK;
}

static hl_status write_config(const char *dir, const hl_llama_config *c, hl_dtype dt, uint64_t seed,
                              const char *label) {
    char path[4300];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return hl_fail(HL_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    const char *td = dt == HL_DTYPE_F32 ? "float32" : dt == HL_DTYPE_F16 ? "float16" : "bfloat16";
    fprintf(f,
            "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"model_type\": \"llama\",\n"
            "  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n"
            "  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n  \"vocab_size\": %d,\n"
            "  \"max_position_embeddings\": %d,\n  \"rms_norm_eps\": %g,\n  \"rope_theta\": %g,\n"
            "  \"tie_word_embeddings\": %s,\n  \"bos_token_id\": %d,\n  \"eos_token_id\": %d,\n"
            "  \"hidden_act\": \"silu\",\n  \"initializer_range\": %g,\n  \"torch_dtype\": \"%s\",\n"
            "  \"hydralora_synthetic\": {\"random_weights\": true, \"shape\": ",
            c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->max_seq_len,
            (double)c->rms_norm_eps, (double)c->rope_theta, c->tie_word_embeddings ? "true" : "false", c->bos_id,
            c->eos_id, SYNTH_STD, td);
    hl_json_write_string(f, label);
    fprintf(f, ", \"seed\": %llu, \"note\": \"random weights for testing and measurement, not a trained model\"}\n}\n",
            (unsigned long long)seed);
    if (fclose(f))
        return hl_fail(errno == ENOSPC ? HL_ERR_DISK_FULL : HL_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    return HL_OK;
}

static hl_status write_dir(const char *dir, const hl_llama_config *cfg, hl_dtype dt, uint64_t seed,
                           const char *tokenizer_path, const char *label, hl_synth_progress_fn progress, void *user) {
    int n = tensor_list(cfg, NULL);
    synth_tensor *t = malloc((size_t)n * sizeof *t);
    int *shard = malloc((size_t)n * sizeof *shard);
    if (!t || !shard) {
        free(t), free(shard);
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    }
    tensor_list(cfg, t);
    const size_t es = hl_dtype_size(dt);
    /* shards of at most SHARD_BYTES, in list order */
    int n_shards = 1;
    int64_t in_shard = 0, total = 0;
    for (int i = 0; i < n; i++) {
        int64_t b = t[i].rows * t[i].cols * (int64_t)es;
        if (in_shard > 0 && in_shard + b > SHARD_BYTES)
            n_shards++, in_shard = 0;
        shard[i] = n_shards - 1;
        in_shard += b;
        total += b;
    }
    hl_status st = HL_OK;
    char path[4300];
    int64_t done = 0;
    for (int s = 0; s < n_shards && !st; s++) {
        int first = -1, cnt = 0;
        size_t bytes = 0;
        for (int i = 0; i < n; i++)
            if (shard[i] == s) {
                first = first < 0 ? i : first;
                cnt++;
                bytes += (size_t)(t[i].rows * t[i].cols) * es;
            }
        char *buf = malloc(bytes ? bytes : 1);
        hl_st_entry *e = calloc((size_t)cnt, sizeof *e);
        if (!buf || !e) {
            free(buf), free(e);
            st = hl_fail(HL_ERR_NOMEM, "cannot allocate %.2f GiB for a shard of weights", (double)bytes / 1073741824.0);
            break;
        }
        size_t off = 0;
        for (int k = 0; k < cnt; k++) {
            const synth_tensor *ti = &t[first + k];
            fill(buf + off, dt, ti, seed, (uint64_t)(first + k));
            e[k].name = ti->name;
            e[k].src_dtype = dt;
            e[k].data = buf + off;
            e[k].ndim = ti->norm ? 1 : 2;
            e[k].shape[0] = ti->norm ? ti->cols : ti->rows;
            e[k].shape[1] = ti->cols;
            off += (size_t)(ti->rows * ti->cols) * es;
            if (progress)
                progress(user, (double)(done + (int64_t)off) * 0.5, (double)total);
        }
        const char *meta[4] = {"hydralora", "random weights (hydralora model synth), not a trained model", "shape",
                               label};
        hl_st_write_opts o = {dt, 1, meta, 2};
        snprintf(path, sizeof path, "%s/model-%05d-of-%05d.safetensors", dir, s + 1, n_shards);
        st = hl_st_write(path, e, cnt, &o);
        done += (int64_t)bytes;
        if (progress)
            progress(user, (double)done, (double)total);
        free(buf), free(e);
    }
    if (!st) { /* the index */
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        FILE *f = fopen(path, "w");
        if (!f) {
            st = hl_fail(HL_ERR_IO, "cannot create %s: %s", path, strerror(errno));
        } else {
            fprintf(f, "{\n  \"metadata\": {\"total_size\": %lld},\n  \"weight_map\": {\n", (long long)total);
            for (int i = 0; i < n; i++) {
                char file[64];
                snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", shard[i] + 1, n_shards);
                fprintf(f, "    ");
                hl_json_write_string(f, t[i].name);
                fprintf(f, ": \"%s\"%s\n", file, i + 1 < n ? "," : "");
            }
            fprintf(f, "  }\n}\n");
            if (fclose(f))
                st = hl_fail(errno == ENOSPC ? HL_ERR_DISK_FULL : HL_ERR_IO, "cannot write %s: %s", path,
                             strerror(errno));
        }
    }
    free(t), free(shard);
    if (!st)
        st = write_config(dir, cfg, dt, seed, label);
    const char *tok_note = "a SYNTHETIC tokenizer (tokenizer.bin: bytes, ASCII characters and <synthetic_N> fillers)";
    char tok_line[4400];
    if (!st && tokenizer_path) {
        hl_tokenizer *tok = NULL;
        st = hl_tokenizer_load(&tok, tokenizer_path);
        if (!st)
            st = hl_tokenizer_check_vocab(tok, cfg->vocab_size);
        if (!st) {
            snprintf(path, sizeof path, "%s/%s", dir, hl_tokenizer_format(tok));
            st = copy_file(tokenizer_path, path);
            snprintf(tok_line, sizeof tok_line, "a copy of %s", tokenizer_path);
            tok_note = tok_line;
        }
        hl_tokenizer_free(tok);
    } else if (!st) {
        snprintf(path, sizeof path, "%s/tokenizer.bin", dir);
        st = write_synthetic_tokenizer(path, cfg->vocab_size);
    }
    if (!st) {
        char readme[6000];
        snprintf(readme, sizeof readme,
                 "RANDOM WEIGHTS - THIS IS NOT A TRAINED MODEL.\n\n"
                 "Written by `hydralora model synth` with the %s LLaMA-2 shape (%d layers, hidden size %d,\n"
                 "%s storage, seed %llu): every weight is a uniform random number (std %.2f; norms 1).\n"
                 "It exists to exercise training, memory plans and speed where real weights cannot be\n"
                 "downloaded. Its outputs and losses mean nothing.\n\nTokenizer: %s.\n",
                 label, cfg->n_layers, cfg->dim, hl_dtype_name(dt), (unsigned long long)seed, SYNTH_STD, tok_note);
        snprintf(path, sizeof path, "%s/README.txt", dir);
        st = write_text(path, readme);
    }
    return st;
}

hl_status hl_synth_write(const char *out_dir, const hl_llama_config *cfg, hl_dtype dt, uint64_t seed,
                         const char *tokenizer_path, const char *shape_label, hl_synth_progress_fn progress,
                         void *user) {
    HL_TRY(hl_llama_config_check(cfg, shape_label));
    struct stat sb;
    if (stat(out_dir, &sb) == 0)
        return hl_fail(HL_ERR_ARG, "%s already exists: choose a new output directory (nothing was written)", out_dir);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", out_dir);
    if (!mkdtemp(tmp))
        return hl_fail(errno == ENOSPC ? HL_ERR_DISK_FULL : HL_ERR_IO, "cannot create a directory next to %s: %s",
                       out_dir, strerror(errno));
    mode_t um = umask(0);
    umask(um);
    chmod(tmp, 0777 & ~um); /* mkdtemp made it private; the model directory is an ordinary one */
    hl_status st = write_dir(tmp, cfg, dt, seed, tokenizer_path, shape_label, progress, user);
    if (!st) {
        hl_fsync_dir(tmp);
        if (rename(tmp, out_dir) != 0)
            st = hl_fail(HL_ERR_IO, "cannot rename %s to %s: %s", tmp, out_dir, strerror(errno));
        else
            hl_fsync_parent(out_dir);
    }
    if (st) {
        char saved[2048];
        snprintf(saved, sizeof saved, "%s", hl_last_error());
        hl_remove_tree(tmp);
        hl_fail(st, "%s", saved);
    }
    return st;
}
