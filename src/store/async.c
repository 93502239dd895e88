/* async.c - the store writer thread: a mutex-protected FIFO of jobs, one thread running
 * them on its own store handle, finished jobs handed back through uv_async_t. Jobs are
 * opaque; retry of busy or lost connections is the only policy here. */
#include "store/async.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"

#define BUSY_RETRIES 5

struct job {
    struct job *next;
    fg_store_job_fn fn;
    fg_store_done_fn done;
    void *arg;
    int rc;
};

struct jobq {
    struct job *head, *tail;
};

struct fg_store_async {
    uv_loop_t *loop;
    uv_async_t wake;     /* loop mode: the worker pokes the loop when jobs finished */
    struct fg_store *st; /* loop mode: the thread's own handle; else the caller's */
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* the worker waits for jobs */
    pthread_cond_t idle_cv; /* drain waits for the worker to go idle */
    struct jobq todo;       /* under mu */
    struct jobq finished;   /* under mu */
    bool busy;              /* under mu: the worker is running a job */
    bool stop;              /* under mu */
    size_t pending;         /* loop thread only: submitted, completion not yet run */
};

static void q_push(struct jobq *q, struct job *j)
{
    j->next = NULL;
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
}

static struct job *q_pop(struct jobq *q)
{
    struct job *j = q->head;
    if (j) {
        q->head = j->next;
        if (!q->head)
            q->tail = NULL;
    }
    return j;
}

/* Runs one job with the retry policy of async.h. Worker thread (or caller in sync mode). */
static int run_job(struct fg_store_async *a, struct job *j)
{
    int rc = j->fn(a->st, j->arg);
    for (int attempt = 1; rc == FG_EBUSY && attempt <= BUSY_RETRIES; attempt++) {
        usleep((useconds_t)attempt * 50000);
        rc = j->fn(a->st, j->arg);
    }
    if (rc == FG_EIO && a->loop) {
        /* A PostgreSQL connection does not come back by itself: try a fresh handle once. */
        struct fg_store *fresh = NULL;
        char err[512];
        if (fg_store_open_another(a->st, &fresh, err, sizeof err) == 0) {
            fg_store_close(a->st);
            a->st = fresh;
            rc = j->fn(a->st, j->arg);
        } else {
            fg_log(FG_LOG_WARN, "store-reconnect-failed", "reason", err, "fix",
                   "check that the store is reachable; rosters and offline messages are "
                   "kept in memory until it is",
                   NULL);
        }
    }
    return rc;
}

static void *worker(void *p)
{
    struct fg_store_async *a = p;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        struct job *j;
        while (!(j = q_pop(&a->todo)) && !a->stop) {
            a->busy = false;
            pthread_cond_broadcast(&a->idle_cv);
            pthread_cond_wait(&a->work_cv, &a->mu);
        }
        if (!j)
            break;
        a->busy = true;
        pthread_mutex_unlock(&a->mu);
        j->rc = run_job(a, j);
        pthread_mutex_lock(&a->mu);
        q_push(&a->finished, j);
        uv_async_send(&a->wake);
    }
    a->busy = false;
    pthread_cond_broadcast(&a->idle_cv);
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

void fg_store_async_poll(struct fg_store_async *a)
{
    struct jobq done;
    pthread_mutex_lock(&a->mu);
    done = a->finished;
    a->finished.head = a->finished.tail = NULL;
    pthread_mutex_unlock(&a->mu);
    /* Completions may submit jobs; those finish in a later poll. */
    struct job *j;
    while ((j = q_pop(&done))) {
        a->pending--;
        if (j->done)
            j->done(j->arg, j->rc);
        fg_free(j);
    }
}

static void on_wake(uv_async_t *h)
{
    fg_store_async_poll(h->data);
}

static void on_closed(uv_handle_t *h)
{
    fg_free(h->data);
}

int fg_store_async_new(uv_loop_t *loop, struct fg_store *st, struct fg_store_async **out, char *err,
                       size_t errlen)
{
    struct fg_store_async *a = fg_calloc(1, sizeof *a);
    int rc;

    *out = NULL;
    a->loop = loop;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->work_cv, NULL);
    pthread_cond_init(&a->idle_cv, NULL);
    if (!loop) {
        a->st = st;
        *out = a;
        return 0;
    }
    rc = fg_store_open_another(st, &a->st, err, errlen);
    if (rc != 0)
        goto fail;
    if (uv_async_init(loop, &a->wake, on_wake) != 0) {
        snprintf(err, errlen, "cannot create the store writer's wake-up handle");
        rc = FG_EIO;
        goto fail;
    }
    a->wake.data = a;
    a->busy = true; /* until the thread has looked at the queue */
    if (pthread_create(&a->thread, NULL, worker, a) != 0) {
        snprintf(err, errlen, "cannot start the store writer thread");
        /* The wake-up handle is registered with the loop: it is closed, and the memory
         * released by its close callback. */
        fg_store_close(a->st);
        pthread_mutex_destroy(&a->mu);
        pthread_cond_destroy(&a->work_cv);
        pthread_cond_destroy(&a->idle_cv);
        uv_close((uv_handle_t *)&a->wake, on_closed);
        return FG_EIO;
    }
    a->thread_started = true;
    *out = a;
    return 0;
fail:
    fg_store_close(a->st);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->work_cv);
    pthread_cond_destroy(&a->idle_cv);
    fg_free(a);
    return rc;
}

void fg_store_async_submit(struct fg_store_async *a, fg_store_job_fn fn, fg_store_done_fn done,
                           void *arg)
{
    struct job *j = fg_calloc(1, sizeof *j);
    j->fn = fn;
    j->done = done;
    j->arg = arg;
    a->pending++;
    if (!a->loop) {
        j->rc = run_job(a, j);
        q_push(&a->finished, j); /* single-threaded: no lock needed, but harmless */
        return;
    }
    pthread_mutex_lock(&a->mu);
    q_push(&a->todo, j);
    pthread_cond_signal(&a->work_cv);
    pthread_mutex_unlock(&a->mu);
}

void fg_store_async_drain(struct fg_store_async *a)
{
    while (a->pending) {
        if (a->loop) {
            pthread_mutex_lock(&a->mu);
            while (a->todo.head || a->busy)
                pthread_cond_wait(&a->idle_cv, &a->mu);
            pthread_mutex_unlock(&a->mu);
        }
        fg_store_async_poll(a);
    }
}

size_t fg_store_async_pending(const struct fg_store_async *a)
{
    return a->pending;
}

void fg_store_async_free(struct fg_store_async *a)
{
    if (!a)
        return;
    fg_store_async_drain(a);
    if (a->thread_started) {
        pthread_mutex_lock(&a->mu);
        a->stop = true;
        pthread_cond_signal(&a->work_cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->thread, NULL);
    }
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->work_cv);
    pthread_cond_destroy(&a->idle_cv);
    if (a->loop) {
        fg_store_close(a->st);
        uv_close((uv_handle_t *)&a->wake, on_closed);
        return;
    }
    fg_free(a);
}
