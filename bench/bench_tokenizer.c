/* Tokenizer throughput: encodes GSM8K train (every question and answer, ~4 MB) with the
 * LLaMA-2 tokenizer and prints MB/s and tokens/s, best of several runs; also the whole file
 * as one long text (the BPE without per-call word reuse across records), and decode speed.
 * When /usr/bin/python3 has sentencepiece, the same work is timed there in a subprocess
 * during the same run and the ratio is printed (the machine's own reference).
 *
 *   bench_tokenizer [TOKENIZER] [GSM8K_TRAIN_JSONL]   (defaults under $HL_SHARED or ../shared)
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/base/fileio.h"
#include "core/model/tokenizer/tokenizer.h"
#include "bench_common.h"

/* Seconds SentencePiece takes for the same records (best of 3), or < 0 if unavailable. */
static double time_sentencepiece(const char *tok_path, const char *data_path, int whole) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 - <<'EOF' 2>/dev/null\n"
             "import json, time, sentencepiece as spm\n"
             "sp = spm.SentencePieceProcessor(model_file='%s')\n"
             "raw = open('%s', encoding='utf-8').read()\n"
             "texts = [raw] if %d else [v for l in raw.splitlines() if l.strip() for v in "
             "(json.loads(l)['question'], json.loads(l)['answer'])]\n"
             "best = 1e9\n"
             "for _ in range(3):\n"
             "    t = time.perf_counter()\n"
             "    for s in texts: sp.encode(s)\n"
             "    best = min(best, time.perf_counter() - t)\n"
             "print(best)\n"
             "EOF",
             tok_path, data_path, whole);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    double s = -1;
    if (fscanf(p, "%lf", &s) != 1)
        s = -1;
    pclose(p);
    return s;
}

int main(int argc, char **argv) {
    const char *shared = bench_shared_dir();
    char tok_path[4096], data_path[4096];
    snprintf(tok_path, sizeof tok_path, "%s", argc > 1 ? argv[1] : "");
    snprintf(data_path, sizeof data_path, "%s", argc > 2 ? argv[2] : "");
    if (!tok_path[0])
        snprintf(tok_path, sizeof tok_path, "%s/models/llama2c-tokenizer/tokenizer.model", shared);
    if (!data_path[0])
        snprintf(data_path, sizeof data_path, "%s/datasets/gsm8k/train.jsonl", shared);

    hl_tokenizer *tok = NULL;
    if (hl_tokenizer_load(&tok, tok_path) != HL_OK) {
        fprintf(stderr, "bench_tokenizer: %s\n", hl_last_error());
        return 1;
    }
    size_t raw_len = 0;
    char *raw = NULL;
    if (hl_file_read_all(data_path, 0, &raw, &raw_len) != HL_OK) {
        fprintf(stderr, "bench_tokenizer: %s\n", hl_last_error());
        return 1;
    }
    /* records: every question and answer */
    size_t cap = 1024, n = 0, bytes = 0;
    char **texts = malloc(cap * sizeof *texts);
    for (char *line = strtok(raw, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        const char *keys[2] = {"question", "answer"};
        for (int k = 0; k < 2 && j; k++) {
            cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[k]);
            if (!cJSON_IsString(v))
                continue;
            if (n == cap)
                texts = realloc(texts, (cap *= 2) * sizeof *texts);
            texts[n++] = strdup(v->valuestring);
            bytes += strlen(v->valuestring);
        }
        cJSON_Delete(j);
    }
    free(raw);
    char *whole = NULL;
    if (hl_file_read_all(data_path, 0, &whole, &raw_len) != HL_OK)
        whole = NULL; /* the whole-file section is skipped */

    printf("tokenizer %s (%s, %d pieces)\n", tok_path, hl_tokenizer_format(tok), hl_tokenizer_vocab_size(tok));
    printf("data      %s: %zu texts, %.2f MB\n", data_path, n, bytes / 1e6);

    /* records */
    double best = 1e9;
    size_t tokens = 0;
    int32_t *all_ids = NULL;
    for (int run = 0; run < 5; run++) {
        double t0 = bench_now_s();
        tokens = 0;
        for (size_t i = 0; i < n; i++) {
            int32_t *ids;
            size_t k;
            if (hl_tokenizer_encode(tok, texts[i], strlen(texts[i]), 0, &ids, &k) != HL_OK) {
                fprintf(stderr, "encode: %s\n", hl_last_error());
                return 1;
            }
            tokens += k;
            free(ids);
        }
        double dt = bench_now_s() - t0;
        if (dt < best)
            best = dt;
    }
    printf("encode records : %8.3f s  %7.2f MB/s  %10.0f tokens/s  (%zu tokens)\n", best, bytes / 1e6 / best,
           tokens / best, tokens);
    double rec_best = best;

    /* the whole file as one text */
    best = 1e9;
    size_t whole_tokens = 0;
    for (int run = 0; run < 3; run++) {
        double t0 = bench_now_s();
        free(all_ids);
        if (hl_tokenizer_encode(tok, whole, raw_len, 0, &all_ids, &whole_tokens) != HL_OK) {
            fprintf(stderr, "encode: %s\n", hl_last_error());
            return 1;
        }
        double dt = bench_now_s() - t0;
        if (dt < best)
            best = dt;
    }
    printf("encode one text: %8.3f s  %7.2f MB/s  %10.0f tokens/s  (%.2f MB, %zu tokens)\n", best, raw_len / 1e6 / best,
           whole_tokens / best, raw_len / 1e6, whole_tokens);
    double whole_best = best;

    /* decode */
    best = 1e9;
    for (int run = 0; run < 3; run++) {
        double t0 = bench_now_s();
        char *text;
        size_t len;
        if (hl_tokenizer_decode(tok, all_ids, whole_tokens, &text, &len) != HL_OK) {
            fprintf(stderr, "decode: %s\n", hl_last_error());
            return 1;
        }
        free(text);
        double dt = bench_now_s() - t0;
        if (dt < best)
            best = dt;
    }
    printf("decode         : %8.3f s  %7.2f MB/s  %10.0f tokens/s\n", best, raw_len / 1e6 / best, whole_tokens / best);

    double sp_rec = time_sentencepiece(tok_path, data_path, 0);
    double sp_whole = time_sentencepiece(tok_path, data_path, 1);
    if (sp_rec > 0)
        printf("SentencePiece (python3-sentencepiece, same run) records : %8.3f s  %7.2f MB/s  -> hydralora is %.1fx\n",
               sp_rec, bytes / 1e6 / sp_rec, sp_rec / rec_best);
    else
        printf("SentencePiece: /usr/bin/python3 with sentencepiece not available (or not a .model file); no ratio\n");
    if (sp_whole > 0)
        printf("SentencePiece (python3-sentencepiece, same run) one text: %8.3f s  %7.2f MB/s  -> hydralora is %.1fx\n",
               sp_whole, raw_len / 1e6 / sp_whole, sp_whole / whole_best);

    for (size_t i = 0; i < n; i++)
        free(texts[i]);
    free(texts);
    free(whole);
    free(all_ids);
    hl_tokenizer_free(tok);
    return 0;
}
