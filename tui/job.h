/* A small background job for the workbench: one pthread running one function, with
 * progress, a cancel flag and a growing text buffer (for streamed generation). The
 * worker never touches curses; the UI thread polls the job between frames. */
#ifndef HL_TUI_JOB_H
#define HL_TUI_JOB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "core/base/status.h"

typedef struct tui_job tui_job;
typedef hl_status (*tui_job_fn)(tui_job *job, void *arg);

struct tui_job {
    pthread_t thread;
    int joinable;
    atomic_int running; /* 1 while the function runs */
    atomic_int cancel;  /* set by the UI; the function polls it */
    pthread_mutex_t mu;
    int mu_ready;
    /* under mu */
    char stage[160];
    double done, total;
    char *text;
    size_t text_len, text_cap;
    /* valid once running == 0 after a start */
    hl_status result;
    char error[1024];
    tui_job_fn fn;
    void *arg;
    int started;       /* job_start succeeded at least once */
    int finished_seen; /* job_poll reported the end */
};

void job_init(tui_job *j);
/* Starts fn(job, arg) in a thread. Returns -1 if a job is still running. */
int job_start(tui_job *j, tui_job_fn fn, void *arg);
int job_running(const tui_job *j);
/* 1 exactly once after the function returned (joins the thread; also after job_stop). */
int job_poll(tui_job *j);
void job_cancel(tui_job *j);
/* Cancel and wait. */
void job_stop(tui_job *j);
void job_free(tui_job *j);

/* Worker side. */
int job_cancelled(tui_job *j);
void job_progress(tui_job *j, const char *stage, double done, double total);
void job_append(tui_job *j, const char *s, size_t n);

/* UI side: copy progress / text under the lock. */
void job_get_progress(tui_job *j, char *stage, size_t n, double *done, double *total);
size_t job_get_text(tui_job *j, char *out, size_t n); /* the last n-1 bytes if longer */
void job_clear_text(tui_job *j);

#endif
