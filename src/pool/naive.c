/*
 * naive.c — the "naive" pool: a new thread for every job.
 *
 * kvs_pool_spawn starts a detached thread that runs the job and ends. Nothing is shared between
 * jobs but one counter of job threads still running, under a mutex, and a condition variable
 * that kvs_pool_free waits on until the counter is back to zero. The counter is raised before
 * the thread starts and lowered by a cleanup handler (pthread_cleanup_push around the job), so
 * a job that ends its thread with pthread_exit is counted out just like one that returns; a
 * job that spawns a child raises the counter before it lowers its own, so free cannot see zero
 * while work remains.
 *
 * Invariant: running == job threads started and not yet past their cleanup handler. The
 * handler's last touch of the pool is the unlock after its broadcast; once free has seen zero
 * the pool may go, and the exiting threads no longer need it.
 *
 * Costs. Each job pays a thread creation and teardown (tens of microseconds, a stack mapping,
 * a clone) — more than most jobs worth spawning cost themselves — and there is no bound: N
 * spawns in a burst are N threads at once, each with its own stack reservation, until the
 * system refuses (then spawn returns KVS_ENOMEM). The `threads` given at creation is recorded
 * for kvs_pool_threads and bounds nothing. What it buys is simplicity and isolation: no queue,
 * no worker to lose, no job ever waits behind another. It is the baseline the other kinds are
 * measured against.
 */
#include <pthread.h>
#include <stdlib.h>

#include "pool/pool_int.h"
#include "util/err.h"

typedef struct naive_pool {
    kvs_pool base;
    unsigned n;             /* the size asked for; nothing more */
    pthread_mutex_t mu;
    pthread_cond_t idle;    /* running reached 0 */
    uint64_t running;       /* under mu */
} naive_pool;

typedef struct naive_job {
    naive_pool *pool;
    kvs_job_fn fn;
    void *arg;
} naive_job;

/* Runs when the job returns or ends its thread: count it out. */
static void naive_job_done(void *varg)
{
    naive_job *j = varg;
    naive_pool *p = j->pool;

    free(j);
    pthread_mutex_lock(&p->mu);
    if (--p->running == 0)
        pthread_cond_broadcast(&p->idle);
    pthread_mutex_unlock(&p->mu);
}

static void *naive_thread(void *varg)
{
    naive_job *j = varg;

    pthread_cleanup_push(naive_job_done, j);
    j->fn(j->arg);
    pthread_cleanup_pop(1);
    return NULL;
}

static int naive_create(unsigned n, kvs_pool **out)
{
    naive_pool *p = calloc(1, sizeof *p);
    int rc = KVS_ENOMEM;

    if (!p)
        return kvs_seterr(KVS_ENOMEM, "pool: out of memory for a naive pool");
    if (pthread_mutex_init(&p->mu, NULL) != 0)
        goto fail;
    if (pthread_cond_init(&p->idle, NULL) != 0) {
        pthread_mutex_destroy(&p->mu);
        goto fail;
    }
    p->base.ops = &pool_naive_ops;
    p->n = n;
    *out = &p->base;
    return 0;

fail:
    free(p);
    return kvs_seterr(rc, "pool: cannot initialize the naive pool's lock");
}

static int naive_spawn(kvs_pool *base, kvs_job_fn fn, void *arg)
{
    naive_pool *p = (naive_pool *)base;
    naive_job *j = malloc(sizeof *j);
    pthread_t tid;
    int rc;

    if (!j)
        return kvs_seterr(KVS_ENOMEM, "pool: out of memory for a job");
    j->pool = p;
    j->fn = fn;
    j->arg = arg;
    pthread_mutex_lock(&p->mu);
    p->running++;
    pthread_mutex_unlock(&p->mu);
    if ((rc = pool_thread_create(&tid, 1, naive_thread, j, "naive job")) < 0) {
        pthread_mutex_lock(&p->mu);
        if (--p->running == 0)
            pthread_cond_broadcast(&p->idle);
        pthread_mutex_unlock(&p->mu);
        free(j);
    }
    return rc;
}

static void naive_destroy(kvs_pool *base)
{
    naive_pool *p = (naive_pool *)base;

    pthread_mutex_lock(&p->mu);
    while (p->running > 0)
        pthread_cond_wait(&p->idle, &p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_cond_destroy(&p->idle);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static unsigned naive_threads(const kvs_pool *base)
{
    return ((const naive_pool *)base)->n;
}

const pool_ops pool_naive_ops = {
    .kind = "naive",
    .create = naive_create,
    .spawn = naive_spawn,
    .destroy = naive_destroy,
    .threads = naive_threads,
    .replaced = NULL,
};
