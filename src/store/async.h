/* async.h - store work off the event loop: one writer thread with its own handle runs
 * jobs in order and posts completions back to the libuv loop (uv_async_t). Opaque jobs.
 * Without a loop, jobs run inline and completions wait for fg_store_async_poll. */
#ifndef FG_STORE_ASYNC_H
#define FG_STORE_ASYNC_H

#include <stddef.h>
#include <uv.h>

#include "store/store.h"

struct fg_store_async;

/* Runs on the writer thread with its store handle. A job that writes opens and ends its
 * own transaction (fg_store_begin ... commit, rollback on failure). Returns 0 or FG_E*.
 * FG_EBUSY is retried a few times; FG_EIO once more on a reopened handle (a lost
 * PostgreSQL connection), so a job must be safe to run again after a failed attempt. */
typedef int (*fg_store_job_fn)(struct fg_store *st, void *arg);
/* Runs on the loop thread once the job is over, with its final result. It owns arg. */
typedef void (*fg_store_done_fn)(void *arg, int rc);

/* loop set: opens another handle like st for the writer thread (st itself is never
 * touched by the thread). loop NULL: jobs use st on the caller's thread. 0, or FG_E* with
 * a message in err. */
int fg_store_async_new(uv_loop_t *loop, struct fg_store *st, struct fg_store_async **out, char *err,
                       size_t errlen);

/* Queues fn(st, arg), then done(arg, rc) on the loop thread; done may be NULL. Loop thread
 * only. */
void fg_store_async_submit(struct fg_store_async *a, fg_store_job_fn fn, fg_store_done_fn done,
                           void *arg);

/* Runs the completions of the jobs finished so far (the loop does this by itself; without
 * a loop the caller must). Loop thread only. */
void fg_store_async_poll(struct fg_store_async *a);

/* Blocks until every queued job has run and every completion has been called, including
 * those of jobs that completions submitted. Loop thread only (shutdown, tests). */
void fg_store_async_drain(struct fg_store_async *a);

/* Jobs submitted whose completion has not run yet. */
size_t fg_store_async_pending(const struct fg_store_async *a);

/* Drains, stops the thread and closes its handle. With a loop, the memory goes in the
 * uv_async close callback: run the loop once more before uv_loop_close. NULL is allowed. */
void fg_store_async_free(struct fg_store_async *a);

#endif
