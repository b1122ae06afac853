#include "tui/job.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void job_init(tui_job *j) {
    memset(j, 0, sizeof *j);
    pthread_mutex_init(&j->mu, NULL);
    j->mu_ready = 1;
}

static void *job_main(void *p) {
    tui_job *j = p;
    /* Signals belong to the UI thread (it turns SIGINT into a clean stop). */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    hl_clear_error();
    hl_status st = j->fn(j, j->arg);
    snprintf(j->error, sizeof j->error, "%s", st == HL_OK ? "" : hl_last_error());
    if (st != HL_OK && !j->error[0])
        snprintf(j->error, sizeof j->error, "%s", hl_status_message(st));
    j->result = st;
    atomic_store(&j->running, 0);
    return NULL;
}

int job_start(tui_job *j, tui_job_fn fn, void *arg) {
    if (!j->mu_ready)
        job_init(j);
    if (atomic_load(&j->running))
        return -1;
    if (j->joinable) {
        pthread_join(j->thread, NULL);
        j->joinable = 0;
    }
    j->fn = fn;
    j->arg = arg;
    j->result = HL_OK;
    j->error[0] = 0;
    j->finished_seen = 0;
    atomic_store(&j->cancel, 0);
    pthread_mutex_lock(&j->mu);
    j->stage[0] = 0;
    j->done = j->total = 0;
    pthread_mutex_unlock(&j->mu);
    atomic_store(&j->running, 1);
    /* the engine's generation and BLAS want deep stacks for long contexts */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 16u << 20);
    int rc = pthread_create(&j->thread, &attr, job_main, j);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        atomic_store(&j->running, 0);
        return -1;
    }
    j->joinable = 1;
    j->started = 1;
    return 0;
}

int job_running(const tui_job *j) { return j->mu_ready && atomic_load(&((tui_job *)j)->running); }

int job_poll(tui_job *j) {
    if (!j->mu_ready || atomic_load(&j->running))
        return 0;
    if (j->joinable) {
        pthread_join(j->thread, NULL);
        j->joinable = 0;
    }
    if (!j->started || j->finished_seen)
        return 0;
    j->finished_seen = 1;
    return 1;
}

void job_cancel(tui_job *j) {
    if (j->mu_ready)
        atomic_store(&j->cancel, 1);
}

void job_stop(tui_job *j) {
    if (!j->mu_ready)
        return;
    atomic_store(&j->cancel, 1);
    if (j->joinable) {
        pthread_join(j->thread, NULL);
        j->joinable = 0;
    }
}

void job_free(tui_job *j) {
    if (!j->mu_ready)
        return;
    job_stop(j);
    free(j->text);
    pthread_mutex_destroy(&j->mu);
    memset(j, 0, sizeof *j);
}

int job_cancelled(tui_job *j) { return atomic_load(&j->cancel); }

void job_progress(tui_job *j, const char *stage, double done, double total) {
    pthread_mutex_lock(&j->mu);
    if (stage)
        snprintf(j->stage, sizeof j->stage, "%s", stage);
    j->done = done;
    j->total = total;
    pthread_mutex_unlock(&j->mu);
}

void job_append(tui_job *j, const char *s, size_t n) {
    pthread_mutex_lock(&j->mu);
    if (j->text_len + n + 1 > j->text_cap) {
        size_t cap = j->text_cap ? j->text_cap : 4096;
        while (cap < j->text_len + n + 1)
            cap *= 2;
        char *nt = realloc(j->text, cap);
        if (!nt) {
            pthread_mutex_unlock(&j->mu);
            return;
        }
        j->text = nt;
        j->text_cap = cap;
    }
    memcpy(j->text + j->text_len, s, n);
    j->text_len += n;
    j->text[j->text_len] = 0;
    pthread_mutex_unlock(&j->mu);
}

void job_get_progress(tui_job *j, char *stage, size_t n, double *done, double *total) {
    pthread_mutex_lock(&j->mu);
    if (stage)
        snprintf(stage, n, "%s", j->stage);
    if (done)
        *done = j->done;
    if (total)
        *total = j->total;
    pthread_mutex_unlock(&j->mu);
}

size_t job_get_text(tui_job *j, char *out, size_t n) {
    pthread_mutex_lock(&j->mu);
    size_t len = j->text_len;
    const char *src = j->text ? j->text : "";
    if (len >= n) {
        src += len - (n - 1);
        len = n - 1;
        while (len && ((unsigned char)*src & 0xC0) == 0x80) {
            src++;
            len--;
        }
    }
    memcpy(out, src, len);
    out[len] = 0;
    pthread_mutex_unlock(&j->mu);
    return len;
}

void job_clear_text(tui_job *j) {
    pthread_mutex_lock(&j->mu);
    j->text_len = 0;
    if (j->text)
        j->text[0] = 0;
    pthread_mutex_unlock(&j->mu);
}
