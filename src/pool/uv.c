/*
 * uv.c — the "uv" pool: jobs run on libuv's threadpool through uv_queue_work.
 *
 * libuv's loop is single-threaded: uv_queue_work may be called only on the loop's thread, and
 * the after_work callbacks run there. So each pool owns a private uv_loop_t, run by one
 * dispatcher thread, and spawns reach it the one thread-safe way libuv offers: the job is
 * appended to the pool's inbox (inbox.h: a FIFO list under a mutex) and uv_async_send wakes the
 * loop. On the loop, on_wake hands queued jobs to uv_queue_work — at most n at a time
 * (`inflight`, touched only by the thread running the loop, which checked builds assert), so a
 * pool of n uses at most n of libuv's threads — and each after_work callback frees its job,
 * counts it out of the inbox's `pending` and hands over the next one.
 *
 * Freeing: kvs_pool_free closes the inbox — it waits until pending (spawned, after_work not yet
 * run) is zero, then sets stop — and wakes the loop; on_wake then closes the async handle, the
 * loop runs out of handles and requests, uv_run returns, the dispatcher ends, free joins it and
 * closes the loop. A job's children are counted in pending before the job's own after_work, so
 * pending cannot touch zero while work remains.
 *
 * libuv's threadpool is process-wide and sized once. It is shared by every loop in the process
 * (and by libuv's own file-system and DNS requests) and started, with UV_THREADPOOL_SIZE
 * threads (default 4, at most 1024), the first time anything submits work. The first "uv" pool
 * therefore sets UV_THREADPOOL_SIZE to its own n if the variable is unset (setenv: do that
 * before other threads read the environment), and pins the size at once by submitting a no-op
 * under a process-wide lock; every later "uv" pool checks its n against the size so recorded
 * and is refused (KVS_EINVAL) if it asks for more. Two caveats follow from libuv's design and
 * are not ours to fix: if something used libuv's threadpool before the first "uv" pool while
 * UV_THREADPOOL_SIZE was unset, libuv already has 4 threads whatever we record; and pools, the
 * server's file-system requests and anyone else's uv_queue_work share the same threads, so a
 * pool's n is a ceiling, not a reservation.
 *
 * A job must return: ending its thread with pthread_exit kills one of libuv's threads, whose
 * request then never completes, and free waits forever.
 *
 * Costs. A spawn is a malloc, a lock, a link and an async send (an eventfd write, coalesced
 * while one is pending). Each job then crosses threads three times — to the dispatcher, to a
 * libuv worker (through libuv's own global queue and mutex) and back for after_work — so the
 * per-job overhead is the highest of the three kinds, and the dispatcher is a serial point:
 * all hand-offs and completions pass through one thread. What it buys is libuv's tested
 * threadpool and completions delivered on a loop, the shape the server's I/O already has.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "pool/inbox.h"
#include "pool/pool_int.h"
#include "util/err.h"
#include "util/invariant.h"
#include "util/log.h"

#define UVP_LIBUV_MAX_THREADS 1024u /* libuv's MAX_THREADPOOL_SIZE since 1.30 */

typedef struct uvp_job {
    uv_work_t req;         /* first: the request pointer is the job pointer */
    pool_job job;          /* what waits in the inbox */
} uvp_job;

typedef struct uvp_pool {
    kvs_pool base;
    unsigned n;            /* most jobs handed to libuv at once */
    uv_loop_t loop;
    uv_async_t wake;
    uv_work_t probe;       /* the no-op that starts libuv's threadpool at creation */
    pthread_t dispatcher;
    pthread_t runner;      /* the thread running the loop: the dispatcher, or create's on failure */
    pool_inbox in;         /* spawned, not yet handed to libuv; pending until after_work */
    unsigned inflight;     /* handed to libuv, after_work not yet run: runner only */
} uvp_pool;

/* The size libuv's threadpool has (or will have at its start), once the first "uv" pool has
 * looked; 0 before. */
static pthread_mutex_t uvp_size_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned uvp_libuv_size;

/* With uvp_size_mu held: what libuv's threadpool will be sized to, setting UV_THREADPOOL_SIZE
 * to want if it is unset. Parsed as libuv parses it (atoi, 0 → 1, capped at 1024). */
static int uvp_threadpool_size(unsigned want, unsigned *size)
{
    const char *v;
    char buf[16];

    if (uvp_libuv_size) {
        *size = uvp_libuv_size;
        return 0;
    }
    if ((v = getenv("UV_THREADPOOL_SIZE")) != NULL) {
        unsigned s = (unsigned)atoi(v);
        *size = s == 0 ? 1 : s > UVP_LIBUV_MAX_THREADS ? UVP_LIBUV_MAX_THREADS : s;
    } else {
        snprintf(buf, sizeof buf, "%u", want);
        if (setenv("UV_THREADPOOL_SIZE", buf, 0) != 0)
            return kvs_seterr(KVS_ENOMEM, "pool: cannot set UV_THREADPOOL_SIZE");
        *size = want;
    }
    uvp_libuv_size = *size;
    return 0;
}

static int uvp_err(int uverr, const char *what)
{
    return kvs_seterr(uverr == UV_ENOMEM ? KVS_ENOMEM : kvs_errno(-uverr), "pool: %s: %s", what,
                      uv_strerror(uverr));
}

static void uvp_work(uv_work_t *req)
{
    uvp_job *j = (uvp_job *)req;

    j->job.fn(j->job.arg);
}

static void uvp_after_work(uv_work_t *req, int status);

/* On the loop's thread: hand queued jobs to libuv while fewer than n are there. */
static void uvp_submit(uvp_pool *p)
{
    KVS_ASSERT(pthread_equal(pthread_self(), p->runner));
    while (p->inflight < p->n) {
        pool_job *pj;

        inbox_lock(&p->in);
        pj = inbox_take_locked(&p->in);
        inbox_unlock(&p->in);
        if (!pj)
            return;
        uvp_job *j = (uvp_job *)((char *)pj - offsetof(uvp_job, job));
        p->inflight++;
        uv_queue_work(&p->loop, &j->req, uvp_work, uvp_after_work); /* fails only if no cb */
    }
}

static void uvp_after_work(uv_work_t *req, int status)
{
    uvp_job *j = (uvp_job *)req;
    uvp_pool *p = j->req.data;

    (void)status; /* we never uv_cancel, so always 0 */
    free(j);
    p->inflight--;
    inbox_lock(&p->in);
    inbox_done_locked(&p->in);
    inbox_unlock(&p->in);
    uvp_submit(p);
}

static void uvp_probe_work(uv_work_t *req)
{
}

static void uvp_probe_done(uv_work_t *req, int status)
{
    uvp_pool *p = req->data;

    p->inflight--;
    uvp_submit(p);
}

static void uvp_on_wake(uv_async_t *a)
{
    uvp_pool *p = a->data;
    int stop;

    uvp_submit(p);
    inbox_lock(&p->in);
    stop = p->in.stop && !p->in.head;
    inbox_unlock(&p->in);
    if (stop)
        uv_close((uv_handle_t *)&p->wake, NULL); /* the loop ends once this is closed */
}

static void *uvp_dispatcher(void *varg)
{
    uvp_pool *p = varg;

    p->runner = pthread_self();
    uv_run(&p->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* Set up the loop, its wake-up and the probe that starts libuv's threadpool; on failure
 * nothing is left to undo. */
static int uvp_loop_setup(uvp_pool *p)
{
    unsigned size = 0;
    int rc, e;

    pthread_mutex_lock(&uvp_size_mu);
    if ((rc = uvp_threadpool_size(p->n, &size)) < 0)
        goto out;
    if (p->n > size) {
        rc = kvs_seterr(KVS_EINVAL,
                        "pool: a uv pool of %u threads is more than libuv's threadpool has: it "
                        "is process-wide and sized once, to %u (UV_THREADPOOL_SIZE)",
                        p->n, size);
        goto out;
    }
    if ((e = uv_loop_init(&p->loop)) < 0) {
        rc = uvp_err(e, "uv_loop_init");
        goto out;
    }
    if ((e = uv_async_init(&p->loop, &p->wake, uvp_on_wake)) < 0) {
        uv_loop_close(&p->loop);
        rc = uvp_err(e, "uv_async_init");
        goto out;
    }
    p->wake.data = p;
    p->probe.data = p;
    p->inflight = 1;
    /* libuv starts its threads inside this call, reading UV_THREADPOOL_SIZE as left above. */
    uv_queue_work(&p->loop, &p->probe, uvp_probe_work, uvp_probe_done);
out:
    pthread_mutex_unlock(&uvp_size_mu);
    return rc;
}

static int uvp_create(unsigned n, kvs_pool **out)
{
    uvp_pool *p = calloc(1, sizeof *p);
    int stage = 0; /* 1: the inbox, 2: and the loop are initialized */
    int rc = 0;

    if (!p)
        return kvs_seterr(KVS_ENOMEM, "pool: out of memory for a uv pool");
    p->base.ops = &pool_uv_ops;
    p->n = n;
    if ((rc = inbox_init(&p->in, "uv pool")) < 0)
        goto fail;
    stage = 1;
    if ((rc = uvp_loop_setup(p)) < 0)
        goto fail;
    stage = 2;
    if ((rc = pool_thread_create(&p->dispatcher, 0, uvp_dispatcher, p, "uv dispatcher")) < 0)
        goto fail;
    *out = &p->base;
    return 0;

fail:
    if (stage > 1) {
        /* Finish the probe and close the wake-up on this thread; then the loop can close. */
        p->runner = pthread_self();
        uv_close((uv_handle_t *)&p->wake, NULL);
        uv_run(&p->loop, UV_RUN_DEFAULT);
        uv_loop_close(&p->loop);
    }
    if (stage > 0)
        inbox_destroy(&p->in);
    free(p);
    return rc;
}

static int uvp_spawn(kvs_pool *base, kvs_job_fn fn, void *arg)
{
    uvp_pool *p = (uvp_pool *)base;
    uvp_job *j = calloc(1, sizeof *j);
    int rc;

    if (!j)
        return kvs_seterr(KVS_ENOMEM, "pool: out of memory for a job");
    j->req.data = p;
    j->job.fn = fn;
    j->job.arg = arg;
    inbox_lock(&p->in);
    if ((rc = inbox_open_locked(&p->in)) == 0)
        inbox_push_locked(&p->in, &j->job);
    inbox_unlock(&p->in);
    if (rc < 0) {
        free(j);
        return rc;
    }
    /* The handle stays open until free, which this cannot overlap: a job's spawn counts in
     * pending before the job itself ends, and pool.h forbids outside spawns racing free. */
    uv_async_send(&p->wake);
    return 0;
}

static void uvp_destroy(kvs_pool *base)
{
    uvp_pool *p = (uvp_pool *)base;
    int e;

    inbox_lock(&p->in);
    inbox_close_locked(&p->in);
    inbox_unlock(&p->in);
    uv_async_send(&p->wake);
    pthread_join(p->dispatcher, NULL);
    if ((e = uv_loop_close(&p->loop)) < 0)
        LOG_WARN("pool: closing a uv pool's loop: %s", uv_strerror(e));
    inbox_destroy(&p->in);
    free(p);
}

static unsigned uvp_threads(const kvs_pool *base)
{
    return ((const uvp_pool *)base)->n;
}

const pool_ops pool_uv_ops = {
    .kind = "uv",
    .create = uvp_create,
    .spawn = uvp_spawn,
    .destroy = uvp_destroy,
    .threads = uvp_threads,
    .replaced = NULL,
};
