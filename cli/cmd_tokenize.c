/* hydralora tokenize: text -> token ids (and back) with a model's SentencePiece tokenizer,
 * exactly as SentencePiece would. Batch mode (--jsonl) tokenizes one JSON string per line. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "core/base/fileio.h"
#include "core/model/tokenizer/tokenizer.h"

#define CMD "hydralora tokenize"

static int fail(const char *what) {
    fprintf(stderr, CMD ": error: %s%s%s\n", what, *hl_last_error() ? ": " : "", hl_last_error());
    return 1;
}

/* The whole file ("-" = stdin) into a malloc'd buffer. */
static char *read_file(const char *path, size_t *len) {
    char *buf = NULL;
    hl_status st = strcmp(path, "-") ? hl_file_read_all(path, 0, &buf, len)
                                     : hl_file_read_stream(stdin, path, 0, &buf, len);
    return st == HL_OK ? buf : NULL;
}

typedef struct {
    int add_bos, add_eos, pieces, count;
} out_opts;

static int print_ids(const hl_tokenizer *tok, const int32_t *ids, size_t n, const out_opts *o) {
    if (o->count) {
        printf("%zu\n", n);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (i)
            putchar(' ');
        if (o->pieces)
            fputs(hl_tokenizer_piece(tok, ids[i]), stdout);
        else
            printf("%d", (int)ids[i]);
    }
    putchar('\n');
    return 0;
}

static int encode_print(const hl_tokenizer *tok, const char *text, size_t len, const out_opts *o) {
    int32_t *ids = NULL;
    size_t n = 0;
    if (hl_tokenizer_encode(tok, text, len, o->add_bos, &ids, &n) != HL_OK)
        return fail("encoding failed");
    if (o->add_eos) {
        int eos = hl_tokenizer_eos_id(tok);
        int32_t *grown = eos >= 0 ? realloc(ids, (n + 1) * sizeof *ids) : NULL;
        if (!grown) {
            free(ids);
            hl_fail(HL_ERR_ARG, "%s", eos < 0 ? "the tokenizer has no EOS piece" : "out of memory");
            return fail("--eos");
        }
        ids = grown;
        ids[n++] = eos;
    }
    print_ids(tok, ids, n, o);
    free(ids);
    return 0;
}

/* Ids from text: integers separated by spaces, commas, newlines; brackets are ignored. */
static int parse_ids(const char *s, int32_t **out, size_t *n) {
    size_t cap = 64, k = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids)
        return -1;
    while (*s) {
        if (isspace((unsigned char)*s) || *s == ',' || *s == '[' || *s == ']') {
            s++;
            continue;
        }
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < -2147483647L || v > 2147483647L) {
            hl_fail(HL_ERR_ARG, "expected token ids (integers), found '%.20s'", s);
            free(ids);
            return -1;
        }
        if (k == cap) {
            int32_t *g = realloc(ids, (cap *= 2) * sizeof *ids);
            if (!g) {
                free(ids);
                return -1;
            }
            ids = g;
        }
        ids[k++] = (int32_t)v;
        s = end;
    }
    *out = ids;
    *n = k;
    return 0;
}

static int decode_print(const hl_tokenizer *tok, const char *s, int as_json) {
    int32_t *ids;
    size_t n;
    if (parse_ids(s, &ids, &n))
        return fail("bad input for --decode");
    char *text;
    size_t len;
    hl_status st = hl_tokenizer_decode(tok, ids, n, &text, &len);
    free(ids);
    if (st)
        return fail("decoding failed");
    if (as_json) {
        cJSON *j = cJSON_CreateString(text);
        char *p = j ? cJSON_PrintUnformatted(j) : NULL;
        if (p)
            puts(p);
        free(p);
        cJSON_Delete(j);
    } else {
        fwrite(text, 1, len, stdout);
        putchar('\n');
    }
    free(text);
    return 0;
}

/* One input per line: a JSON string, or an object with a "text" string (for --decode: a
 * JSON array of ids). One output line per input line; blank lines give blank lines. */
static int run_jsonl(const hl_tokenizer *tok, const char *path, char *data, size_t len, int decode, const out_opts *o) {
    size_t line_no = 0;
    char *p = data, *end = data + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *line_end = nl ? nl : end;
        line_no++;
        size_t l = (size_t)(line_end - p);
        while (l && (p[l - 1] == '\r' || p[l - 1] == ' ' || p[l - 1] == '\t'))
            l--;
        size_t lead = 0;
        while (lead < l && (p[lead] == ' ' || p[lead] == '\t'))
            lead++;
        if (lead == l) {
            putchar('\n');
        } else {
            cJSON *j = cJSON_ParseWithLength(p + lead, l - lead);
            const cJSON *v = j;
            if (cJSON_IsObject(j))
                v = cJSON_GetObjectItemCaseSensitive(j, "text");
            int rc = 0;
            if (decode) {
                if (!cJSON_IsArray(v)) {
                    hl_fail(HL_ERR_FORMAT, "%s:%zu: expected a JSON array of token ids", path, line_no);
                    rc = fail("bad input");
                } else {
                    char *ids_text = cJSON_PrintUnformatted(v);
                    rc = ids_text ? decode_print(tok, ids_text, 1) : fail("out of memory");
                    free(ids_text);
                }
            } else if (!cJSON_IsString(v)) {
                hl_fail(HL_ERR_FORMAT, "%s:%zu: expected a JSON string or an object with a \"text\" string", path,
                        line_no);
                rc = fail("bad input");
            } else {
                /* cJSON strings end at NUL: "\u0000" in the input is not supported */
                rc = encode_print(tok, v->valuestring, strlen(v->valuestring), o);
            }
            cJSON_Delete(j);
            if (rc)
                return rc;
        }
        p = nl ? nl + 1 : end;
    }
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    const char *tok_path = NULL, *model_path = NULL, *text = NULL, *file = NULL;
    int no_bos = 0, eos = 0, decode = 0, jsonl = 0, pieces = 0, count = 0, info = 0;
    hl_opt opts[] = {
        {"tokenizer", 't', HL_OPT_STRING, &tok_path, "PATH",
         "tokenizer.model, tokenizer.json, tokenizer.bin/tok*.bin, a .gguf, a folder with one, or a model file"},
        {"model", 'm', HL_OPT_STRING, &model_path, "PATH", "use the tokenizer that belongs to this model (dir or file)"},
        {"text", 0, HL_OPT_STRING, &text, "STR", "the text to encode (or the ids to decode)"},
        {"file", 'f', HL_OPT_STRING, &file, "FILE", "read the text (or ids, or JSON lines) from FILE; '-' = stdin"},
        {"no-bos", 0, HL_OPT_FLAG, &no_bos, NULL, "do not put the BOS id first"},
        {"eos", 0, HL_OPT_FLAG, &eos, NULL, "append the EOS id"},
        {"decode", 'd', HL_OPT_FLAG, &decode, NULL, "turn ids (space/comma separated) back into text"},
        {"jsonl", 0, HL_OPT_FLAG, &jsonl, NULL,
         "batch: each line of --file is a JSON string (or {\"text\": ...}); one line of ids per line "
         "(with --decode: a JSON array of ids in, a JSON string out)"},
        {"pieces", 0, HL_OPT_FLAG, &pieces, NULL, "print the pieces instead of the ids"},
        {"count", 0, HL_OPT_FLAG, &count, NULL, "print only the number of tokens"},
        {"info", 0, HL_OPT_FLAG, &info, NULL, "print the tokenizer's format, size and special ids"},
        {0}};
    hl_args args = {
        .usage = "hydralora tokenize (--tokenizer PATH | --model PATH) (--text STR | --file F) [--no-bos] [--decode] "
                 "[--jsonl]",
        .summary = "Encode text to token ids with a LLaMA (SentencePiece BPE) tokenizer, exactly as SentencePiece "
                   "does, or decode ids back to text.",
        .opts = opts,
        .epilog = "examples:\n"
                  "  hydralora tokenize -t tokenizer.model --text \"Hello world\"      -> 1 15043 3186\n"
                  "  hydralora tokenize -t tokenizer.model --decode --text \"1 15043 3186\"\n"
                  "  hydralora tokenize -m models/stories260K/stories260K.bin --pieces --text \"Once upon\"\n"
                  "  hydralora tokenize -t tokenizer.model --jsonl --file prompts.jsonl > ids.txt",
        .min_positional = 0,
        .max_positional = 0,
    };
    int rc = hl_args_parse(&args, argc, argv);
    if (rc >= 0)
        return rc;
    if (!tok_path && !model_path) {
        fprintf(stderr, CMD ": give --tokenizer PATH or --model PATH\nusage: %s\n", args.usage);
        return 2;
    }
    if (!info && !!text == !!file) {
        fprintf(stderr, CMD ": give exactly one of --text and --file\nusage: %s\n", args.usage);
        return 2;
    }
    if (jsonl && !file) {
        fprintf(stderr, CMD ": --jsonl reads --file\nusage: %s\n", args.usage);
        return 2;
    }
    hl_tokenizer *tok = NULL;
    hl_status st = tok_path ? hl_tokenizer_load(&tok, tok_path) : hl_tokenizer_load_for_model(model_path, &tok);
    if (st) {
        fail("cannot load the tokenizer");
        if (st == HL_ERR_NOT_FOUND && !tok_path)
            fprintf(stderr, CMD ": hint: name the tokenizer with --tokenizer PATH\n");
        return 1;
    }
    if (info) {
        printf("tokenizer   %s\nformat      %s\npieces      %d\nbos %d  eos %d  unk %d  pad %d\nbyte_fallback %d  "
               "add_dummy_prefix %d\n",
               hl_tokenizer_source(tok), hl_tokenizer_format(tok), hl_tokenizer_vocab_size(tok), hl_tokenizer_bos_id(tok),
               hl_tokenizer_eos_id(tok), hl_tokenizer_unk_id(tok), hl_tokenizer_pad_id(tok),
               hl_tokenizer_byte_fallback(tok), hl_tokenizer_add_dummy_prefix(tok));
        if (!text && !file) {
            hl_tokenizer_free(tok);
            return 0;
        }
    }
    out_opts o = {.add_bos = !no_bos, .add_eos = eos, .pieces = pieces, .count = count};
    if (o.add_bos && hl_tokenizer_bos_id(tok) < 0)
        o.add_bos = 0; /* a vocabulary without <s>: nothing to put first */
    char *data = NULL;
    size_t len = 0;
    if (file) {
        data = read_file(file, &len);
        if (!data) {
            hl_tokenizer_free(tok);
            return fail("cannot read the input");
        }
    }
    if (jsonl)
        rc = run_jsonl(tok, file, data, len, decode, &o);
    else if (decode)
        rc = decode_print(tok, data ? data : text, 0);
    else
        rc = encode_print(tok, data ? data : text, data ? len : strlen(text), &o);
    free(data);
    hl_tokenizer_free(tok);
    if (fflush(stdout)) {
        fprintf(stderr, CMD ": error: writing the output failed: %s\n", strerror(errno));
        return 1;
    }
    return rc;
}
