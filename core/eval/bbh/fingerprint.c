/* Fingerprints that tie BBH results to what produced them: the base model (config, shapes
 * and sampled weight bytes) and an adapter file or folder (sha256 of its files). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/eval/bbh/bbh.h"
#include "core/base/sha256.h"

#define SAMPLE_BYTES 4096

static void hash_weight(hl_sha256 *c, const char *name, const hl_weight *w) {
    char line[256];
    int n = snprintf(line, sizeof line, "%s %s %lld %lld\n", name, hl_dtype_name(w->dtype), (long long)w->rows,
                     (long long)w->cols);
    hl_sha256_update(c, line, (size_t)n);
    if (!w->data || w->rows <= 0 || w->cols <= 0)
        return;
    size_t bytes = (size_t)w->rows * (size_t)w->cols * hl_dtype_size(w->dtype);
    const unsigned char *p = w->data;
    if (bytes <= 2 * SAMPLE_BYTES) {
        hl_sha256_update(c, p, bytes);
    } else {
        hl_sha256_update(c, p, SAMPLE_BYTES);
        hl_sha256_update(c, p + bytes / 2, SAMPLE_BYTES); /* middle too: catches fine-tuned interiors */
        hl_sha256_update(c, p + bytes - SAMPLE_BYTES, SAMPLE_BYTES);
    }
}

hl_status hl_bbh_model_fingerprint(const hl_model *m, char out[65]) {
    hl_sha256 c;
    hl_sha256_init(&c);
    const hl_llama_config *k = &m->cfg;
    char line[512];
    int n = snprintf(line, sizeof line,
                     "llama dim=%d hidden=%d layers=%d heads=%d kv_heads=%d head_dim=%d vocab=%d max_seq=%d "
                     "eps=%.9g theta=%.9g tied=%d bos=%d eos=%d\n",
                     k->dim, k->hidden_dim, k->n_layers, k->n_heads, k->n_kv_heads, k->head_dim, k->vocab_size,
                     k->max_seq_len, (double)k->rms_norm_eps, (double)k->rope_theta, k->tie_word_embeddings, k->bos_id,
                     k->eos_id);
    hl_sha256_update(&c, line, (size_t)n);
    hash_weight(&c, "tok_embed", &m->tok_embed);
    hash_weight(&c, "final_norm", &m->final_norm);
    hash_weight(&c, "lm_head", &m->lm_head);
    for (int l = 0; m->layers && l < k->n_layers; l++) {
        const hl_layer_weights *w = &m->layers[l];
        const hl_weight *ws[9] = {&w->attn_norm, &w->wq, &w->wk, &w->wv, &w->wo,
                                  &w->ffn_norm, &w->w_gate, &w->w_up, &w->w_down};
        static const char *names[9] = {"attn_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w_gate", "w_up", "w_down"};
        for (int j = 0; j < 9; j++) {
            char nm[64];
            snprintf(nm, sizeof nm, "layers.%d.%s", l, names[j]);
            hash_weight(&c, nm, ws[j]);
        }
    }
    hl_sha256_final_hex(&c, out);
    return HL_OK;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

hl_status hl_bbh_path_fingerprint(const char *path, char out[65]) {
    struct stat st;
    if (stat(path, &st) != 0)
        return hl_fail(HL_ERR_NOT_FOUND, "cannot stat %s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return hl_sha256_file(path, out, NULL);
    DIR *d = opendir(path);
    if (!d)
        return hl_fail(HL_ERR_IO, "cannot open folder %s: %s", path, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    hl_status s = HL_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn) {
                s = hl_fail(HL_ERR_NOMEM, "out of memory");
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name))) {
            s = hl_fail(HL_ERR_NOMEM, "out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (s == HL_OK)
        qsort(names, n, sizeof *names, cmp_names);
    hl_sha256 c;
    hl_sha256_init(&c);
    for (size_t i = 0; i < n && s == HL_OK; i++) {
        char fp[8192];
        snprintf(fp, sizeof fp, "%s/%s", path, names[i]);
        struct stat fs;
        if (stat(fp, &fs) != 0 || !S_ISREG(fs.st_mode))
            continue;
        char hex[65];
        uint64_t size = 0;
        s = hl_sha256_file(fp, hex, &size);
        if (s == HL_OK) {
            char line[8400];
            int k = snprintf(line, sizeof line, "%s %llu %s\n", names[i], (unsigned long long)size, hex);
            hl_sha256_update(&c, line, (size_t)k);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (s == HL_OK)
        hl_sha256_final_hex(&c, out);
    return s;
}
