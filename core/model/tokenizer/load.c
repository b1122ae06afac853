/* Tokenizer files: SentencePiece tokenizer.model (protobuf), Hugging Face tokenizer.json,
 * llama2.c tokenizer.bin, and the vocabulary embedded in a GGUF file. Every parser checks
 * each length against the bytes it has, and every error names the file. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/formats/gguf.h"
#include "core/base/mapped_file.h"
#include "core/formats/protobuf.h"
#include "core/model/llama2c.h"
#include "core/model/tokenizer/tokenizer.h"
#include "core/model/tokenizer/internal.h"


/* ------------------------------------------------------------------------------------ */
/* SentencePiece ModelProto (docs/file-formats.md §3)                                              */

typedef struct {
    const char *data;
    size_t len;
    int present;
} pb_str;

static hl_status pb_fail(const char *src, const char *what, int rc) {
    return hl_fail(HL_ERR_FORMAT, "%s: not a valid SentencePiece model: %s: %s", src, what, hl_pb_error(rc));
}

hl_status tok_load_model_proto(hl_tokenizer **out, const unsigned char *data, size_t size, const char *src) {
    *out = NULL;
    /* proto2 defaults (sentencepiece_model.proto) */
    int model_type = 1, byte_fallback = 0, treat_ws_suffix = 0;
    int add_dummy_prefix = 1, remove_extra_ws = 1, escape_ws = 1;
    pb_str unk_surface = {0}, bos_piece = {"<s>", 3, 1}, eos_piece = {"</s>", 4, 1}, pad_piece = {"<pad>", 5, 1};
    pb_str norm_name = {0};
    size_t charsmap_len = 0;
    int n = 0;

    /* Pass 1: count pieces and read the specs. */
    hl_pb_reader r = hl_pb_reader_init(data, size);
    hl_pb_field f;
    int rc;
    while ((rc = hl_pb_next(&r, &f)) == HL_PB_OK) {
        if (f.number == 1 && f.wire == HL_PB_LEN) {
            n++;
        } else if (f.number == 2 && f.wire == HL_PB_LEN) { /* TrainerSpec */
            hl_pb_reader s = hl_pb_reader_init(f.data, f.len);
            hl_pb_field g;
            while ((rc = hl_pb_next(&s, &g)) == HL_PB_OK) {
                if (g.wire == HL_PB_VARINT) {
                    if (g.number == 3)
                        model_type = hl_pb_as_int32(&g);
                    else if (g.number == 24)
                        treat_ws_suffix = g.varint != 0;
                    else if (g.number == 35)
                        byte_fallback = g.varint != 0;
                } else if (g.wire == HL_PB_LEN) {
                    pb_str v = {(const char *)g.data, g.len, 1};
                    if (g.number == 44)
                        unk_surface = v;
                    else if (g.number == 46)
                        bos_piece = v;
                    else if (g.number == 47)
                        eos_piece = v;
                    else if (g.number == 48)
                        pad_piece = v;
                }
            }
            if (rc != HL_PB_END)
                return pb_fail(src, "trainer_spec", rc);
        } else if (f.number == 3 && f.wire == HL_PB_LEN) { /* NormalizerSpec */
            hl_pb_reader s = hl_pb_reader_init(f.data, f.len);
            hl_pb_field g;
            while ((rc = hl_pb_next(&s, &g)) == HL_PB_OK) {
                if (g.number == 1 && g.wire == HL_PB_LEN)
                    norm_name = (pb_str){(const char *)g.data, g.len, 1};
                else if (g.number == 2 && g.wire == HL_PB_LEN)
                    charsmap_len = g.len;
                else if (g.number == 3 && g.wire == HL_PB_VARINT)
                    add_dummy_prefix = g.varint != 0;
                else if (g.number == 4 && g.wire == HL_PB_VARINT)
                    remove_extra_ws = g.varint != 0;
                else if (g.number == 5 && g.wire == HL_PB_VARINT)
                    escape_ws = g.varint != 0;
            }
            if (rc != HL_PB_END)
                return pb_fail(src, "normalizer_spec", rc);
        }
    }
    if (rc != HL_PB_END)
        return pb_fail(src, "top-level message", rc);
    if (n == 0)
        return hl_fail(HL_ERR_FORMAT, "%s: not a SentencePiece model: it holds no pieces (truncated or not a tokenizer.model?)",
                       src);
    if (model_type != 2)
        return hl_fail(HL_ERR_FORMAT,
                       "%s: unsupported SentencePiece model type %s: hydralora implements BPE models "
                       "(LLaMA / LLaMA-2 tokenizers)",
                       src,
                       model_type == 1   ? "UNIGRAM"
                       : model_type == 3 ? "WORD"
                       : model_type == 4 ? "CHAR"
                                         : "(unknown)");
    if (treat_ws_suffix)
        return hl_fail(HL_ERR_FORMAT, "%s: treat_whitespace_as_suffix models are not supported", src);
    if (charsmap_len > 0)
        return hl_fail(HL_ERR_FORMAT,
                       "%s: normalizer '%.*s' uses a precompiled character map, which is not supported "
                       "(only the 'identity' normalizer of LLaMA-style tokenizers is)",
                       src, norm_name.present ? (int)(norm_name.len > 64 ? 64 : norm_name.len) : 1,
                       norm_name.present ? norm_name.data : "?");

    /* Pass 2: the pieces. */
    const char **pieces = calloc((size_t)n, sizeof *pieces);
    uint32_t *lens = calloc((size_t)n, sizeof *lens);
    float *scores = calloc((size_t)n, sizeof *scores);
    int32_t *types = calloc((size_t)n, sizeof *types);
    char *unk_buf = NULL;
    hl_status st = HL_OK;
    if (!pieces || !lens || !scores || !types) {
        st = hl_fail(HL_ERR_NOMEM, "%s: out of memory for %d pieces", src, n);
        goto done;
    }
    r = hl_pb_reader_init(data, size);
    int i = 0;
    while (hl_pb_next(&r, &f) == HL_PB_OK) {
        if (!(f.number == 1 && f.wire == HL_PB_LEN))
            continue;
        hl_pb_reader s = hl_pb_reader_init(f.data, f.len);
        hl_pb_field g;
        types[i] = HL_PIECE_NORMAL;
        pieces[i] = "";
        while ((rc = hl_pb_next(&s, &g)) == HL_PB_OK) {
            if (g.number == 1 && g.wire == HL_PB_LEN) {
                pieces[i] = (const char *)g.data;
                lens[i] = (uint32_t)(g.len > UINT32_MAX ? UINT32_MAX : g.len);
            } else if (g.number == 2 && g.wire == HL_PB_I32) {
                scores[i] = hl_pb_as_float(&g);
            } else if (g.number == 3 && g.wire == HL_PB_VARINT) {
                types[i] = hl_pb_as_int32(&g);
            }
        }
        if (rc != HL_PB_END) {
            char what[64];
            snprintf(what, sizeof what, "piece %d", i);
            st = pb_fail(src, what, rc);
            goto done;
        }
        if (lens[i] == 0) {
            st = hl_fail(HL_ERR_FORMAT, "%s: piece %d is empty (corrupt tokenizer.model?)", src, i);
            goto done;
        }
        if (types[i] == HL_PIECE_BYTE && !byte_fallback) {
            st = hl_fail(HL_ERR_FORMAT, "%s: byte piece %d found although byte_fallback is off (corrupt model?)", src, i);
            goto done;
        }
        i++;
    }
    /* SentencePiece: exactly one UNKNOWN piece; bos/eos are the CONTROL pieces named in the
     * trainer spec (bos_piece, default "<s>"). */
    int unk = -1, bos = -1, eos = -1, pad = -1;
    for (int k = 0; k < n; k++) {
        if (types[k] == HL_PIECE_UNKNOWN) {
            if (unk >= 0) {
                st = hl_fail(HL_ERR_FORMAT, "%s: two unknown pieces (%d and %d)", src, unk, k);
                goto done;
            }
            unk = k;
        }
    }
    if (unk < 0) {
        st = hl_fail(HL_ERR_FORMAT, "%s: no unknown piece (<unk>) is defined (corrupt model?)", src);
        goto done;
    }
    for (int k = 0; k < n; k++) {
        if (types[k] != HL_PIECE_CONTROL)
            continue;
        if (bos < 0 && lens[k] == bos_piece.len && !memcmp(pieces[k], bos_piece.data, lens[k]))
            bos = k;
        if (eos < 0 && lens[k] == eos_piece.len && !memcmp(pieces[k], eos_piece.data, lens[k]))
            eos = k;
        if (pad < 0 && lens[k] == pad_piece.len && !memcmp(pieces[k], pad_piece.data, lens[k]))
            pad = k;
    }
    if (unk_surface.present) {
        unk_buf = malloc(unk_surface.len + 1);
        if (!unk_buf) {
            st = hl_fail(HL_ERR_NOMEM, "%s: out of memory", src);
            goto done;
        }
        memcpy(unk_buf, unk_surface.data, unk_surface.len);
        unk_buf[unk_surface.len] = '\0';
    }
    tok_spec sp = {.n = n,
                   .pieces = pieces,
                   .lens = lens,
                   .scores = scores,
                   .types = types,
                   .unk_id = unk,
                   .bos_id = bos,
                   .eos_id = eos,
                   .pad_id = pad,
                   .byte_fallback = byte_fallback,
                   .add_dummy_prefix = add_dummy_prefix,
                   .remove_extra_ws = remove_extra_ws,
                   .escape_ws = escape_ws,
                   .unk_surface = unk_buf,
                   .format = "tokenizer.model",
                   .source = src};
    st = tok_build(out, &sp);
done:
    free(pieces);
    free(lens);
    free(scores);
    free(types);
    free(unk_buf);
    return st;
}

/* ------------------------------------------------------------------------------------ */
/* llama2.c tokenizer.bin (docs/file-formats.md §2)                                                */

static uint32_t rd_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

hl_status tok_load_llama2c(hl_tokenizer **out, const unsigned char *data, size_t size, const char *src) {
    *out = NULL;
    if (size < 4)
        return hl_fail(HL_ERR_FORMAT, "%s: too short for a llama2.c tokenizer (%zu bytes)", src, size);
    uint32_t max_len = rd_u32(data);
    if (max_len == 0 || max_len > (1u << 16))
        return hl_fail(HL_ERR_FORMAT,
                       "%s: not a llama2.c tokenizer.bin (header max_token_length = %u; a model checkpoint or "
                       "another file?)",
                       src, max_len);
    /* Count first, so memory is planned once. */
    size_t pos = 4;
    int n = 0;
    size_t text_bytes = 0;
    while (pos < size) {
        if (size - pos < 8)
            return hl_fail(HL_ERR_FORMAT, "%s: truncated llama2.c tokenizer: %zu stray bytes after piece %d", src,
                           size - pos, n - 1);
        uint32_t l = rd_u32(data + pos + 4);
        if (l == 0 || l > max_len)
            return hl_fail(HL_ERR_FORMAT,
                           "%s: not a llama2.c tokenizer.bin: piece %d has length %d but the header says pieces are "
                           "at most %u bytes",
                           src, n, (int32_t)l, max_len);
        if (l > size - pos - 8)
            return hl_fail(HL_ERR_FORMAT, "%s: truncated llama2.c tokenizer: piece %d runs past the end of the file", src,
                           n);
        pos += 8 + l;
        text_bytes += 3 * (size_t)l + 1; /* spaces become 3-byte U+2581 */
        if (++n > (1 << 24))
            return hl_fail(HL_ERR_FORMAT, "%s: implausibly many pieces (not a tokenizer?)", src);
    }
    if (n == 0)
        return hl_fail(HL_ERR_FORMAT, "%s: a llama2.c tokenizer with no pieces", src);
    char *arena = malloc(text_bytes);
    const char **pieces = malloc((size_t)n * sizeof *pieces);
    uint32_t *lens = malloc((size_t)n * sizeof *lens);
    float *scores = malloc((size_t)n * sizeof *scores);
    if (!arena || !pieces || !lens || !scores) {
        free(arena), free(pieces), free(lens), free(scores);
        return hl_fail(HL_ERR_NOMEM, "%s: out of memory for %d pieces", src, n);
    }
    pos = 4;
    size_t o = 0;
    int unk = -1, bos = -1, eos = -1, n_bytes = 0;
    for (int i = 0; i < n; i++) {
        uint32_t bits = rd_u32(data + pos);
        memcpy(&scores[i], &bits, sizeof bits);
        uint32_t l = rd_u32(data + pos + 4);
        const char *s = (const char *)data + pos + 8;
        pos += 8 + l;
        pieces[i] = arena + o;
        /* run.c spells BOS/EOS "\n<s>\n" / "\n</s>\n" and spaces as ' '. */
        if (l == 5 && !memcmp(s, "\n<s>\n", 5)) {
            memcpy(arena + o, "<s>", 3), lens[i] = 3;
            bos = bos < 0 ? i : bos;
        } else if (l == 6 && !memcmp(s, "\n</s>\n", 6)) {
            memcpy(arena + o, "</s>", 4), lens[i] = 4;
            eos = eos < 0 ? i : eos;
        } else {
            size_t k = 0;
            for (uint32_t j = 0; j < l; j++) {
                if (s[j] == ' ')
                    memcpy(arena + o + k, TOK_WS, 3), k += 3;
                else
                    arena[o + k++] = s[j];
            }
            lens[i] = (uint32_t)k;
            if (k == 5 && !memcmp(arena + o, "<unk>", 5) && unk < 0)
                unk = i;
            if (k == 6 && !memcmp(arena + o, "<0x", 3) && arena[o + 5] == '>')
                n_bytes++;
        }
        arena[o + lens[i]] = '\0';
        o += lens[i] + 1;
    }
    tok_spec sp = {.n = n,
                   .pieces = pieces,
                   .lens = lens,
                   .scores = scores,
                   .types = NULL,
                   .unk_id = unk,
                   .bos_id = bos,
                   .eos_id = eos,
                   .pad_id = -1,
                   .byte_fallback = n_bytes > 0,
                   .add_dummy_prefix = 1,
                   .remove_extra_ws = 0,
                   .escape_ws = 1,
                   .format = "tokenizer.bin",
                   .source = src};
    hl_status st = tok_build(out, &sp);
    free(arena), free(pieces), free(lens), free(scores);
    return st;
}

/* ------------------------------------------------------------------------------------ */
/* Hugging Face tokenizer.json                                                           */

static const char *json_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int json_type_is(const cJSON *o, const char *type) {
    const char *t = json_str(o, "type");
    return t && !strcmp(t, type);
}

/* Whether a normalizer / pre-tokenizer / decoder tree contains a component of `type`. */
static int json_has_type(const cJSON *o, const char *type) {
    if (!cJSON_IsObject(o))
        return 0;
    if (json_type_is(o, type))
        return 1;
    const cJSON *c;
    cJSON_ArrayForEach(c, o) {
        if (cJSON_IsArray(c)) {
            const cJSON *e;
            cJSON_ArrayForEach(e, c) if (json_has_type(e, type)) return 1;
        }
    }
    return 0;
}

/* The LLaMA normalizer: Sequence[Prepend("▁"), Replace(" " -> "▁")] (either may be alone). */
static hl_status json_normalizer(const cJSON *norm, const char *src, int *prepend, int *escape) {
    if (!norm || cJSON_IsNull(norm))
        return HL_OK;
    if (!cJSON_IsObject(norm))
        return hl_fail(HL_ERR_FORMAT, "%s: \"normalizer\" is not an object", src);
    const char *type = json_str(norm, "type");
    if (!type)
        return hl_fail(HL_ERR_FORMAT, "%s: a normalizer without a \"type\"", src);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(norm, "normalizers");
        const cJSON *e;
        cJSON_ArrayForEach(e, list) HL_TRY(json_normalizer(e, src, prepend, escape));
        return HL_OK;
    }
    if (!strcmp(type, "Prepend")) {
        const char *p = json_str(norm, "prepend");
        if (!p || strcmp(p, TOK_WS))
            return hl_fail(HL_ERR_FORMAT, "%s: unsupported Prepend normalizer (only Prepend(\"\\u2581\") is supported)",
                           src);
        *prepend = 1;
        return HL_OK;
    }
    if (!strcmp(type, "Replace")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(norm, "pattern");
        const char *from = json_str(pat, "String"), *to = json_str(norm, "content");
        if (!from || !to || strcmp(from, " ") || strcmp(to, TOK_WS))
            return hl_fail(HL_ERR_FORMAT,
                           "%s: unsupported Replace normalizer (only Replace(\" \" -> \"\\u2581\") is supported)", src);
        *escape = 1;
        return HL_OK;
    }
    return hl_fail(HL_ERR_FORMAT,
                   "%s: unsupported normalizer type '%s' (supported: LLaMA's Prepend(\"\\u2581\") + Replace(\" \", "
                   "\"\\u2581\"), or none with a Metaspace pre-tokenizer)",
                   src, type);
}

static hl_status json_pre_tokenizer(const cJSON *pre, const char *src, int *prepend, int *escape) {
    if (!pre || cJSON_IsNull(pre))
        return HL_OK;
    const char *type = json_str(pre, "type");
    if (!type)
        return hl_fail(HL_ERR_FORMAT, "%s: a pre_tokenizer without a \"type\"", src);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers");
        const cJSON *e;
        cJSON_ArrayForEach(e, list) HL_TRY(json_pre_tokenizer(e, src, prepend, escape));
        return HL_OK;
    }
    if (!strcmp(type, "Metaspace")) {
        const char *rep = json_str(pre, "replacement");
        if (rep && strcmp(rep, TOK_WS))
            return hl_fail(HL_ERR_FORMAT, "%s: Metaspace pre-tokenizer with replacement '%s' is not supported", src, rep);
        *escape = 1;
        const cJSON *aps = cJSON_GetObjectItemCaseSensitive(pre, "add_prefix_space");
        const char *scheme = json_str(pre, "prepend_scheme");
        if (scheme)
            *prepend = strcmp(scheme, "never") != 0;
        else
            *prepend = aps ? cJSON_IsTrue(aps) : 1;
        return HL_OK;
    }
    return hl_fail(HL_ERR_FORMAT,
                   "%s: unsupported pre_tokenizer type '%s' (hydralora reads LLaMA-style SentencePiece BPE "
                   "tokenizer.json files)",
                   src, type);
}

/* "<0x0A>": SentencePiece's spelling of a byte piece (upper-case hex). */
static int is_byte_piece(const char *s) {
    static const char hex[] = "0123456789ABCDEF";
    return strlen(s) == 6 && !memcmp(s, "<0x", 3) && s[5] == '>' && strchr(hex, s[3]) && strchr(hex, s[4]);
}

static int json_int(const cJSON *v, int *out) {
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > (double)(1 << 26) ||
        v->valuedouble != (double)(int)v->valuedouble)
        return 0;
    *out = (int)v->valuedouble;
    return 1;
}

/* One merge: "a b" (older files) or ["a", "b"] (tokenizers >= 0.20). */
static int json_merge_parts(const cJSON *m, const char **a, size_t *alen, const char **b, size_t *blen) {
    if (cJSON_IsString(m)) {
        const char *s = m->valuestring, *sp = strchr(s, ' ');
        if (!sp || strchr(sp + 1, ' '))
            return 0;
        *a = s, *alen = (size_t)(sp - s), *b = sp + 1, *blen = strlen(sp + 1);
        return 1;
    }
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2) {
        const cJSON *x = cJSON_GetArrayItem(m, 0), *y = cJSON_GetArrayItem(m, 1);
        if (!cJSON_IsString(x) || !cJSON_IsString(y))
            return 0;
        *a = x->valuestring, *alen = strlen(x->valuestring), *b = y->valuestring, *blen = strlen(y->valuestring);
        return 1;
    }
    return 0;
}

hl_status tok_load_json(hl_tokenizer **out, const char *text, size_t size, const char *src) {
    *out = NULL;
    cJSON *root = cJSON_ParseWithLength(text, size);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= text && at <= text + size ? (size_t)(at - text) : 0;
        return hl_fail(HL_ERR_FORMAT, "%s: invalid JSON near byte %zu", src, off);
    }
    hl_status st = HL_OK;
    const char **pieces = NULL;
    int32_t *types = NULL, *ml = NULL, *mr = NULL, *mres = NULL;
    float *scores = NULL;
    hl_tokenizer *t = NULL;
    int n = 0, n_merges = 0;

    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(root) || !cJSON_IsObject(model)) {
        st = hl_fail(HL_ERR_FORMAT, "%s: not a Hugging Face tokenizer.json (no \"model\" object)", src);
        goto done;
    }
    const char *mtype = json_str(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (mtype ? strcmp(mtype, "BPE") != 0 : !(cJSON_IsObject(vocab) && cJSON_IsArray(merges))) {
        st = hl_fail(HL_ERR_FORMAT,
                     "%s: unsupported tokenizer model type '%s': hydralora reads SentencePiece-style BPE "
                     "tokenizers (LLaMA / LLaMA-2); use the model's tokenizer.model if it has one",
                     src, mtype ? mtype : "(none)");
        goto done;
    }
    if (json_has_type(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), "ByteLevel") ||
        json_has_type(cJSON_GetObjectItemCaseSensitive(root, "decoder"), "ByteLevel")) {
        st = hl_fail(HL_ERR_FORMAT,
                     "%s: byte-level BPE (GPT-2 / LLaMA-3 style) is not supported: hydralora reads SentencePiece-style "
                     "BPE tokenizers (LLaMA / LLaMA-2)",
                     src);
        goto done;
    }
    const char *cs = json_str(model, "continuing_subword_prefix"), *ew = json_str(model, "end_of_word_suffix");
    if ((cs && *cs) || (ew && *ew)) {
        st = hl_fail(HL_ERR_FORMAT, "%s: BPE with continuing_subword_prefix/end_of_word_suffix is not supported", src);
        goto done;
    }
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges)) {
        st = hl_fail(HL_ERR_FORMAT, "%s: model.vocab must be an object and model.merges an array", src);
        goto done;
    }
    int prepend = 0, escape = 0;
    if ((st = json_normalizer(cJSON_GetObjectItemCaseSensitive(root, "normalizer"), src, &prepend, &escape)) ||
        (st = json_pre_tokenizer(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), src, &prepend, &escape)))
        goto done;

    /* Size: the largest id in vocab and added_tokens. */
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    const cJSON *e;
    int max_id = -1;
    cJSON_ArrayForEach(e, vocab) {
        int id;
        if (!json_int(e, &id)) {
            st = hl_fail(HL_ERR_FORMAT, "%s: vocab entry '%.40s' has no valid id", src, e->string ? e->string : "");
            goto done;
        }
        if (id > max_id)
            max_id = id;
    }
    cJSON_ArrayForEach(e, added) {
        int id;
        if (!json_int(cJSON_GetObjectItemCaseSensitive(e, "id"), &id) || !json_str(e, "content")) {
            st = hl_fail(HL_ERR_FORMAT, "%s: an added_tokens entry lacks a valid id or content", src);
            goto done;
        }
        if (id > max_id)
            max_id = id;
    }
    n = max_id + 1;
    if (n <= 0) {
        st = hl_fail(HL_ERR_FORMAT, "%s: the vocabulary is empty", src);
        goto done;
    }
    pieces = calloc((size_t)n, sizeof *pieces);
    types = calloc((size_t)n, sizeof *types);
    scores = calloc((size_t)n, sizeof *scores);
    if (!pieces || !types || !scores) {
        st = hl_fail(HL_ERR_NOMEM, "%s: out of memory for %d pieces", src, n);
        goto done;
    }
    cJSON_ArrayForEach(e, vocab) {
        int id = (int)e->valuedouble;
        if (pieces[id]) {
            st = hl_fail(HL_ERR_FORMAT, "%s: id %d is given to both '%.40s' and '%.40s'", src, id, pieces[id], e->string);
            goto done;
        }
        pieces[id] = e->string;
        types[id] = HL_PIECE_NORMAL;
    }
    const char *unk_token = json_str(model, "unk_token");
    int byte_fallback = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "byte_fallback"));
    cJSON_ArrayForEach(e, added) {
        int id = (int)cJSON_GetObjectItemCaseSensitive(e, "id")->valuedouble;
        const char *content = json_str(e, "content");
        if (pieces[id] && strcmp(pieces[id], content)) {
            st = hl_fail(HL_ERR_FORMAT, "%s: added token %d '%.40s' disagrees with vocab entry '%.40s'", src, id, content,
                         pieces[id]);
            goto done;
        }
        pieces[id] = content;
        /* Special added tokens are control pieces (never produced from text, as in
         * SentencePiece); other added tokens behave like user-defined pieces. */
        types[id] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special")) ? HL_PIECE_CONTROL
                                                                                  : HL_PIECE_USER_DEFINED;
    }
    int unk = -1, bos = -1, eos = -1;
    for (int i = 0; i < n; i++) {
        if (!pieces[i]) {
            st = hl_fail(HL_ERR_FORMAT, "%s: ids are not contiguous: no piece has id %d (of 0..%d)", src, i, n - 1);
            goto done;
        }
        if (unk_token && !strcmp(pieces[i], unk_token) && unk < 0)
            unk = i;
        if (!strcmp(pieces[i], "<s>") && bos < 0)
            bos = i;
        if (!strcmp(pieces[i], "</s>") && eos < 0)
            eos = i;
        if (types[i] == HL_PIECE_NORMAL && is_byte_piece(pieces[i]))
            types[i] = HL_PIECE_BYTE;
    }
    if (unk >= 0)
        types[unk] = HL_PIECE_UNKNOWN;
    if (bos >= 0 && types[bos] != HL_PIECE_CONTROL)
        bos = -1;
    if (eos >= 0 && types[eos] != HL_PIECE_CONTROL)
        eos = -1;

    /* Merges: ids of both halves and of the result; the score of a piece is minus the rank
     * of the first merge that forms it (for hl_tokenizer_score; encoding uses the ranks). */
    n_merges = cJSON_GetArraySize(merges);
    ml = malloc((size_t)(n_merges + 1) * sizeof *ml);
    mr = malloc((size_t)(n_merges + 1) * sizeof *mr);
    mres = malloc((size_t)(n_merges + 1) * sizeof *mres);
    if (!ml || !mr || !mres) {
        st = hl_fail(HL_ERR_NOMEM, "%s: out of memory for %d merges", src, n_merges);
        goto done;
    }
    tok_spec sp = {.n = n,
                   .pieces = pieces,
                   .scores = scores,
                   .types = types,
                   .unk_id = unk,
                   .bos_id = bos,
                   .eos_id = eos,
                   .pad_id = -1,
                   .byte_fallback = byte_fallback,
                   .add_dummy_prefix = prepend,
                   .remove_extra_ws = 0,
                   .escape_ws = escape,
                   .format = "tokenizer.json",
                   .source = src};
    if ((st = tok_build(&t, &sp)))
        goto done;
    for (int i = 0; i < n; i++)
        t->score[i] = 0.0f;
    int k = 0;
    char *cat = NULL;
    size_t cat_cap = 0;
    cJSON_ArrayForEach(e, merges) {
        const char *a, *b;
        size_t al, bl;
        if (!json_merge_parts(e, &a, &al, &b, &bl)) {
            st = hl_fail(HL_ERR_FORMAT, "%s: merge %d is not \"a b\" or [\"a\", \"b\"]", src, k);
            break;
        }
        if (al + bl + 1 > cat_cap) {
            cat_cap = 2 * (al + bl + 1);
            char *c2 = realloc(cat, cat_cap);
            if (!c2) {
                st = hl_fail(HL_ERR_NOMEM, "%s: out of memory", src);
                break;
            }
            cat = c2;
        }
        memcpy(cat, a, al);
        memcpy(cat + al, b, bl);
        ml[k] = tok_lookup_any(t, a, al);
        mr[k] = tok_lookup_any(t, b, bl);
        mres[k] = tok_lookup_any(t, cat, al + bl);
        if (ml[k] < 0 || mr[k] < 0 || mres[k] < 0) {
            st = hl_fail(HL_ERR_FORMAT, "%s: merge %d ('%.*s' + '%.*s') uses or makes a piece missing from the vocab",
                         src, k, (int)(al > 40 ? 40 : al), a, (int)(bl > 40 ? 40 : bl), b);
            break;
        }
        if (t->score[mres[k]] == 0.0f)
            t->score[mres[k]] = -(float)k - 1.0f;
        k++;
    }
    free(cat);
    if (st)
        goto done;
    if ((st = tok_set_merges(t, k, ml, mr, mres)))
        goto done;
    *out = t;
    t = NULL;
done:
    hl_tokenizer_free(t);
    free(pieces);
    free(types);
    free(scores);
    free(ml);
    free(mr);
    free(mres);
    cJSON_Delete(root);
    return st;
}

/* ------------------------------------------------------------------------------------ */
/* GGUF-embedded vocabulary                                                              */

static hl_status tok_load_gguf(hl_tokenizer **out, const unsigned char *data, size_t size, const char *src) {
    *out = NULL;
    hl_gguf *g = NULL;
    hl_gguf_vocab *v = NULL;
    hl_status st = hl_gguf_parse(&g, data, size, src);
    if (st)
        return st;
    st = hl_gguf_vocab_load(g, &v);
    if (st) {
        hl_gguf_free(g);
        return hl_fail_context(st, "%s: no tokenizer vocabulary in this GGUF file", src);
    }
    if (v->model[0] && strcmp(v->model, "llama")) {
        st = hl_fail(HL_ERR_FORMAT, "%s: GGUF tokenizer model '%s' is not supported (only 'llama' SentencePiece BPE)",
                     src, v->model);
    } else {
        int byte_pieces = 0;
        for (int i = 0; i < v->n; i++)
            if (v->tokens[i] && strlen(v->tokens[i]) == 6 && !memcmp(v->tokens[i], "<0x", 3))
                byte_pieces++;
        st = hl_tokenizer_from_vocab(out, v->n, (const char *const *)v->tokens, v->scores, v->types, v->unk_id,
                                     v->bos_id, v->eos_id, 1, byte_pieces > 0);
        if (!st) {
            snprintf((*out)->format, sizeof (*out)->format, "gguf");
            snprintf((*out)->source, sizeof (*out)->source, "%s", src);
        }
    }
    hl_gguf_vocab_free(v);
    hl_gguf_free(g);
    return st;
}

/* ------------------------------------------------------------------------------------ */
/* Detection and files                                                                   */

hl_status hl_tokenizer_load_buffer(hl_tokenizer **out, const void *data, size_t size, const char *name) {
    if (!out)
        return hl_fail(HL_ERR_ARG, "hl_tokenizer_load_buffer: out is NULL");
    *out = NULL;
    const char *src = name ? name : "tokenizer";
    const unsigned char *p = data;
    if (!p || size == 0)
        return hl_fail(HL_ERR_FORMAT, "%s: the file is empty", src);
    if (size >= 4 && !memcmp(p, "GGUF", 4))
        return tok_load_gguf(out, p, size, src);
    size_t i = 0;
    while (i < size && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
        i++;
    if (i < size && p[i] == '{')
        return tok_load_json(out, (const char *)p, size, src);
    if (size >= 9 && p[8] == '{' && rd_u32(p + 4) == 0) /* u64 header length + JSON */
        return hl_fail(HL_ERR_FORMAT, "%s: this is a safetensors weights file, not a tokenizer", src);
    if (p[0] == 0x0A) {
        hl_status st = tok_load_model_proto(out, p, size, src);
        if (st == HL_OK || st == HL_ERR_NOMEM)
            return st;
        /* a llama2.c tokenizer.bin whose max_token_length is 10 also starts with 0x0A */
        char saved[1024];
        snprintf(saved, sizeof saved, "%s", hl_last_error());
        if (tok_load_llama2c(out, p, size, src) == HL_OK)
            return HL_OK;
        return hl_fail(HL_ERR_FORMAT, "%s", saved);
    }
    hl_status st = tok_load_llama2c(out, p, size, src);
    if (st == HL_ERR_FORMAT) {
        /* say what it is not, then why it is not a tokenizer.bin (without repeating the path) */
        char why[1024];
        const char *e = hl_last_error();
        size_t sl = strlen(src);
        if (!strncmp(e, src, sl) && e[sl] == ':' && e[sl + 1] == ' ')
            e += sl + 2;
        snprintf(why, sizeof why, "%s", e);
        return hl_fail(HL_ERR_FORMAT,
                       "%s: not a tokenizer: neither a SentencePiece tokenizer.model, a tokenizer.json nor a GGUF "
                       "file, and %s",
                       src, why);
    }
    return st;
}

static int is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static hl_status load_file(hl_tokenizer **out, const char *path) {
    hl_mapped_file mf;
    HL_TRY(hl_mapped_file_open(&mf, path));
    hl_status st = hl_tokenizer_load_buffer(out, mf.data, mf.size, path);
    hl_mapped_file_close(&mf);
    return st;
}

static const char *const k_dir_names[] = {"tokenizer.model", "tokenizer.json", "tokenizer.bin"};

/* The first of tokenizer.model / .json / .bin in dir; with tok_glob also a unique tok*.bin
 * (llama2.c's tok512.bin next to stories260K.bin). found[0] = 0 if none. */
static hl_status find_in_dir(const char *dir, int tok_glob, const char *skip, char *found, size_t cap) {
    found[0] = '\0';
    for (size_t k = 0; k < sizeof k_dir_names / sizeof *k_dir_names; k++) {
        int w = snprintf(found, cap, "%s/%s", dir, k_dir_names[k]);
        if (w < 0 || (size_t)w >= cap)
            return hl_fail(HL_ERR_RANGE, "path too long: %s", dir);
        if (is_file(found))
            return HL_OK;
    }
    found[0] = '\0';
    if (!tok_glob)
        return HL_OK;
    DIR *d = opendir(dir);
    if (!d)
        return HL_OK;
    struct dirent *de;
    int count = 0;
    char first[512] = "", second[512] = "";
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 7 || strncmp(de->d_name, "tok", 3) || strcmp(de->d_name + l - 4, ".bin"))
            continue;
        char path[4096];
        int w = snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (w < 0 || (size_t)w >= sizeof path || !is_file(path))
            continue;
        if (skip && !strcmp(path, skip))
            continue;
        if (count == 0)
            snprintf(first, sizeof first, "%s", de->d_name);
        else if (count == 1)
            snprintf(second, sizeof second, "%s", de->d_name);
        count++;
    }
    closedir(d);
    if (count > 1)
        return hl_fail(HL_ERR_ARG, "several tokenizers in %s (%s, %s%s): name the one to use", dir, first,
                       second, count > 2 ? ", ..." : "");
    if (count == 1) {
        int w = snprintf(found, cap, "%s/%s", dir, first);
        if (w < 0 || (size_t)w >= cap)
            return hl_fail(HL_ERR_RANGE, "path too long: %s", dir);
    }
    return HL_OK;
}

/* What a file is, for the discovery rule: a model's weights (whose tokenizer is beside it or,
 * for GGUF, inside it) or anything else (taken as a tokenizer file). */
typedef enum { FILE_OTHER = 0, FILE_GGUF, FILE_MODEL } file_kind;

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static file_kind classify_file(const char *path) {
    if (ends_with(path, "/config.json") || !strcmp(path, "config.json") || ends_with(path, ".safetensors.index.json"))
        return FILE_MODEL;
    hl_mapped_file mf;
    if (hl_mapped_file_open(&mf, path) != HL_OK) {
        hl_clear_error();
        return FILE_OTHER; /* loading it says why */
    }
    const unsigned char *p = mf.data;
    file_kind k = FILE_OTHER;
    if (mf.size >= 4 && !memcmp(p, "GGUF", 4))
        k = FILE_GGUF;
    else if (mf.size >= 9 && p[8] == '{' && rd_u32(p + 4) == 0) /* safetensors: u64 header length + JSON */
        k = FILE_MODEL;
    else if (hl_llama2c_has_magic(p, mf.size))
        k = FILE_MODEL;
    else {
        /* a llama2.c v0 checkpoint has no magic: its header must imply exactly this size */
        hl_llama2c_header h;
        if (hl_llama2c_read_header(p, mf.size, path, &h) == HL_OK)
            k = FILE_MODEL;
        hl_clear_error();
    }
    hl_mapped_file_close(&mf);
    return k;
}

/* The only GGUF file in dir (a GGUF model folder carries its vocabulary inside). */
static void single_gguf(const char *dir, char *found, size_t cap) {
    found[0] = '\0';
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    int count = 0;
    while ((de = readdir(d))) {
        if (!ends_with(de->d_name, ".gguf"))
            continue;
        if (count++ == 0)
            snprintf(found, cap, "%s/%s", dir, de->d_name);
    }
    closedir(d);
    if (count != 1)
        found[0] = '\0';
}

hl_status hl_tokenizer_find(const char *path, char *found, size_t cap) {
    if (!found || cap == 0)
        return hl_fail(HL_ERR_ARG, "hl_tokenizer_find: no buffer");
    found[0] = '\0';
    if (!path || !*path)
        return hl_fail(HL_ERR_ARG, "no tokenizer or model path given");
    const char *looked = "tokenizer.model, tokenizer.json, tokenizer.bin, tok*.bin or a single .gguf";
    if (is_dir(path)) {
        HL_TRY(find_in_dir(path, 1, NULL, found, cap));
        if (!found[0])
            single_gguf(path, found, cap);
        if (!found[0])
            return hl_fail(HL_ERR_NOT_FOUND, "no tokenizer in %s (looked for %s)", path, looked);
        return HL_OK;
    }
    if (!is_file(path))
        return hl_fail(HL_ERR_NOT_FOUND, "%s: no such file or directory", path);
    file_kind k = classify_file(path);
    if (k != FILE_MODEL) {
        int w = snprintf(found, cap, "%s", path);
        if (w < 0 || (size_t)w >= cap)
            return hl_fail(HL_ERR_RANGE, "path too long: %s", path);
        return HL_OK;
    }
    /* A model file: the tokenizer next to it (never the model file itself). */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    char skip[8192 + 2];
    snprintf(skip, sizeof skip, "%s/%s", dir, slash ? slash + 1 : path);
    HL_TRY(find_in_dir(dir, 1, skip, found, cap));
    if (!found[0])
        return hl_fail(HL_ERR_NOT_FOUND, "no tokenizer next to the model %s (looked in %s for %s)", path, dir,
                       "tokenizer.model, tokenizer.json, tokenizer.bin, tok*.bin");
    return HL_OK;
}

hl_status hl_tokenizer_load(hl_tokenizer **out, const char *path) {
    if (!out)
        return hl_fail(HL_ERR_ARG, "hl_tokenizer_load: out is NULL");
    *out = NULL;
    char found[4096];
    HL_TRY(hl_tokenizer_find(path, found, sizeof found));
    return load_file(out, found);
}

hl_status hl_tokenizer_load_for_model(const char *model_path, hl_tokenizer **out) {
    return hl_tokenizer_load(out, model_path);
}

hl_status hl_tokenizer_check_vocab(const hl_tokenizer *tok, int model_vocab_size) {
    if (!tok)
        return hl_fail(HL_ERR_ARG, "no tokenizer");
    int n = tok->n;
    /* More pieces than embedding rows would index past the table; far fewer means a
     * different tokenizer. A model may pad its embedding to a round size, so a tokenizer a
     * little smaller than the model is accepted. */
    if (n > model_vocab_size || n < model_vocab_size / 2)
        return hl_fail(HL_ERR_SHAPE, "tokenizer %s has %d pieces but the model expects %d — wrong tokenizer for this model?",
                       tok->source, n, model_vocab_size);
    return HL_OK;
}
