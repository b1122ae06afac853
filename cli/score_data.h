/* `hydralora score --data FILE`: per-record loss of instruction records with the prompt
 * rules of training (docs/method.md §5), called from cli/cmd_score.c. */
#ifndef HL_CLI_SCORE_DATA_H
#define HL_CLI_SCORE_DATA_H

/* Prints "line=<L> targets=<K> loss=<x>" per scored record and a closing
 * "mean_loss=<token-weighted> tokens=<N> records=<R> mean_record_loss=<x>" line.
 * max_len <= 0: 1024 (the training default); batch <= 0: 1; device NULL: auto. Returns the exit code. */
int hl_score_data_run(const char *model, const char *adapter, const char *data, const char *tokenizer,
                      int max_len, const char *device, int threads, int batch);

#endif
