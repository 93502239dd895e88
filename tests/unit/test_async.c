/* test_async.c - the store writer (store/async.h): jobs run in submission order on the
 * writer thread's own handle, completions run on the loop thread (through the loop or
 * drain), completions may submit more jobs, and the loop-less mode behaves the same. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "store/async.h"
#include "store/store.h"

struct fx {
    char dir[64];
    char url[128];
    struct fg_store *st;
    uv_loop_t loop;
};

static int setup(void **state)
{
    struct fx *f = fg_calloc(1, sizeof *f);
    char err[256];
    snprintf(f->dir, sizeof f->dir, "/tmp/fg-test-async-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->url, sizeof f->url, "sqlite:%s/s.db", f->dir);
    if (fg_store_open(f->url, NULL, &f->st, err, sizeof err) != 0)
        return -1;
    uv_loop_init(&f->loop);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char path[128];
    fg_store_close(f->st);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    snprintf(path, sizeof path, "%s/s.db", f->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/s.db-wal", f->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/s.db-shm", f->dir);
    unlink(path);
    rmdir(f->dir);
    fg_free(f);
    return 0;
}

struct ctx {
    struct fg_store_async *a;
    pthread_t loop_thread;
    int next_done; /* completions must come in order */
    int order_errors;
    int chained;
    bool sync;         /* no loop: jobs run on the caller's thread */
    int thread_errors; /* jobs that ran on the wrong thread */
};

struct add {
    struct ctx *c;
    int seq;
    bool chain; /* submit another job from the completion */
    pthread_t ran_on;
};

static int add_job(struct fg_store *st, void *arg)
{
    struct add *x = arg;
    char body[64];
    x->ran_on = pthread_self();
    if ((pthread_equal(x->ran_on, x->c->loop_thread) != 0) != x->c->sync)
        x->c->thread_errors++;
    snprintf(body, sizeof body, "<message><body>%d</body></message>", x->seq);
    int rc = fg_store_begin(st);
    if (rc == 0)
        rc = fg_store_offline_add(st, "u@a.test", x->seq, body, 0);
    if (rc == 0)
        rc = fg_store_commit(st);
    else
        fg_store_rollback(st);
    return rc;
}

static void add_done(void *arg, int rc)
{
    struct add *x = arg;
    struct ctx *c = x->c;
    assert_int_equal(rc, 0);
    assert_true(pthread_equal(pthread_self(), c->loop_thread));
    if (x->seq != c->next_done)
        c->order_errors++;
    c->next_done++;
    if (x->chain) {
        struct add *y = fg_calloc(1, sizeof *y);
        y->c = c;
        y->seq = c->next_done;
        fg_store_async_submit(c->a, add_job, add_done, y);
        c->chained++;
    }
    fg_free(x);
}

static void check_stored(struct fg_store *st, size_t want)
{
    struct fg_offline_msg *v = NULL;
    size_t n = 0;
    assert_int_equal(fg_store_offline_list(st, "u@a.test", 0, &v, &n), 0);
    assert_int_equal(n, want);
    fg_store_offline_free(v, n);
}

static void run_mode(struct fx *f, bool with_loop)
{
    struct ctx c = {.loop_thread = pthread_self(), .sync = !with_loop};
    char err[256];
    enum { N = 50 };

    assert_int_equal(fg_store_async_new(with_loop ? &f->loop : NULL, f->st, &c.a, err, sizeof err),
                     0);
    for (int i = 0; i < N; i++) {
        struct add *x = fg_calloc(1, sizeof *x);
        x->c = &c;
        x->seq = i;
        fg_store_async_submit(c.a, add_job, add_done, x);
    }
    assert_int_equal(fg_store_async_pending(c.a), N);
    if (with_loop) {
        /* The loop runs the completions as the worker finishes them. */
        while (c.next_done < N)
            uv_run(&f->loop, UV_RUN_ONCE);
    } else {
        assert_int_equal(c.next_done, 0); /* deferred until polled */
        fg_store_async_poll(c.a);
    }
    assert_int_equal(c.next_done, N);
    assert_int_equal(c.order_errors, 0);
    assert_int_equal(c.thread_errors, 0);
    assert_int_equal(fg_store_async_pending(c.a), 0);
    check_stored(f->st, N);

    /* drain waits for everything, including what completions submit. */
    struct add *x = fg_calloc(1, sizeof *x);
    x->c = &c;
    x->seq = N;
    x->chain = true;
    fg_store_async_submit(c.a, add_job, add_done, x);
    fg_store_async_drain(c.a);
    assert_int_equal(fg_store_async_pending(c.a), 0);
    assert_int_equal(c.chained, 1);
    assert_int_equal(c.next_done, N + 2);
    check_stored(f->st, N + 2);
    fg_store_async_free(c.a);
}

static void t_with_loop(void **state)
{
    run_mode(*state, true);
}

static void t_without_loop(void **state)
{
    run_mode(*state, false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(t_with_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(t_without_loop, setup, teardown),
    };
    return cmocka_run_group_tests_name("store-async", tests, NULL, NULL);
}
