/*
 * shared_queue.c — the "shared" pool: a fixed set of workers taking jobs from one queue.
 *
 * The jobs wait in the pool's inbox (inbox.h: a FIFO list, `pending` jobs queued or running, the
 * stop flag), whose one mutex guards everything here too: the worker slots and the counts.
 * Workers sleep on `work` until a job is queued or the pool stops; kvs_pool_free closes the
 * inbox (it waits until nothing is pending, then sets stop), wakes every worker and joins them.
 * A worker leaves only when stop is set and the queue is empty, and stop is set only when
 * nothing is queued or running, so every job spawned before free — and every job those jobs
 * spawn — runs.
 *
 * Losing no workers. A job that ends its own thread (pthread_exit, or a cancellation) would
 * take its worker with it. The job call is wrapped in pthread_cleanup_push, whose handler runs
 * in the dying thread: under the mutex it counts the job out and starts a replacement worker in
 * the same slot, so `live` (what kvs_pool_threads reports) never drops — it is lowered only if
 * the replacement cannot be started, and then kvs_pool_spawn tries again to fill the slot.
 * The dying thread cannot join itself, so each slot keeps one joinable thread (`tid`) and a
 * new worker first joins its predecessor (`prev`) before taking jobs; free joins each slot's
 * newest thread, and so, by the chain, every thread the pool ever started.
 *
 * Invariants (under mu), besides the inbox's: live == slots whose newest thread is a worker
 * that has not died; a slot with has_prev holds a predecessor not yet joined. "With mu held" is
 * asserted (inbox_held) where a function requires it.
 *
 * Costs. A spawn is a malloc, a lock, a link and a signal; a worker takes a job for a lock and
 * an unlink. Every spawn and every take goes through the one mutex, so with many workers and
 * tiny jobs the lock is the bottleneck (a work-stealing pool would shard it); the condition
 * variable wakes one worker per job. Idle workers cost nothing but their stacks. A dying job
 * costs a thread creation, paid inside its own cleanup handler while the mutex is held — fine
 * for a failure path, and it keeps "the count never drops" true without a supervisor thread.
 */
#include <pthread.h>
#include <stdlib.h>

#include "pool/inbox.h"
#include "pool/pool_int.h"
#include "util/err.h"
#include "util/invariant.h"
#include "util/log.h"

struct shared_pool;

typedef struct shared_slot {
    struct shared_pool *pool;
    pthread_t tid;   /* the newest thread started here, still joinable (if has_tid) */
    pthread_t prev;  /* that thread's predecessor, for it to join first (if has_prev) */
    int has_tid;
    int has_prev;
    int alive;       /* tid is a worker that has not died */
} shared_slot;

typedef struct shared_pool {
    kvs_pool base;
    unsigned n;
    pool_inbox in;        /* the jobs; its mu guards the rest of the pool too */
    pthread_cond_t work;  /* a job was queued, or the inbox closed */
    unsigned live;        /* written under mu, read atomically */
    uint64_t replaced;    /* written under mu, read atomically */
    shared_slot *slots;
} shared_pool;

static void *shared_worker(void *varg);

/* Start a worker in slot s, whose previous thread (if any) has died or never was. With mu held;
 * the caller adjusts live. */
static int slot_start(shared_pool *p, shared_slot *s)
{
    pthread_t tid;
    int rc;

    KVS_ASSERT(inbox_held(&p->in));
    if (s->has_tid) {
        s->prev = s->tid;
        s->has_prev = 1;
    }
    if ((rc = pool_thread_create(&tid, 0, shared_worker, s, "shared-queue worker")) < 0) {
        s->has_prev = 0; /* the old thread stays in tid, to be joined later */
        return rc;
    }
    s->tid = tid;
    s->has_tid = 1;
    s->alive = 1;
    return 0;
}

/* Cleanup handler: the job ended its worker's thread. Replace the worker before anyone can see
 * the count drop. */
static void shared_worker_died(void *varg)
{
    shared_slot *s = varg;
    shared_pool *p = s->pool;
    int rc;

    inbox_lock(&p->in);
    s->alive = 0;
    if ((rc = slot_start(p, s)) == 0) {
        __atomic_store_n(&p->replaced, p->replaced + 1, __ATOMIC_RELAXED);
    } else {
        __atomic_store_n(&p->live, p->live - 1, __ATOMIC_RELAXED);
        LOG_WARN("pool: a job ended its worker and no replacement could be started (%s); "
                 "%u of %u workers left", kvs_last_error(), p->live, p->n);
    }
    inbox_done_locked(&p->in);
    inbox_unlock(&p->in);
}

/* Run one job; j is freed first, so a job that never returns leaks nothing. */
static void shared_run(shared_slot *s, pool_job *j)
{
    kvs_job_fn fn = j->fn;
    void *arg = j->arg;

    free(j);
    pthread_cleanup_push(shared_worker_died, s);
    fn(arg);
    pthread_cleanup_pop(0);
}

static void *shared_worker(void *varg)
{
    shared_slot *s = varg;
    shared_pool *p = s->pool;
    pthread_t prev;
    int has_prev;

    inbox_lock(&p->in);
    prev = s->prev;
    has_prev = s->has_prev;
    s->has_prev = 0;
    inbox_unlock(&p->in);
    if (has_prev)
        pthread_join(prev, NULL); /* it is past its cleanup handler and about to end */

    inbox_lock(&p->in);
    for (;;) {
        pool_job *j;

        while (!p->in.head && !p->in.stop)
            inbox_wait(&p->in, &p->work);
        if (!(j = inbox_take_locked(&p->in)))
            break; /* stop, and nothing left */
        inbox_unlock(&p->in);
        shared_run(s, j);
        inbox_lock(&p->in);
        inbox_done_locked(&p->in);
    }
    inbox_unlock(&p->in);
    return NULL;
}

/* Wait for every job, stop the workers started so far and free everything; mu must not be
 * held. */
static void shared_teardown(shared_pool *p)
{
    inbox_lock(&p->in);
    inbox_close_locked(&p->in);
    pthread_cond_broadcast(&p->work);
    inbox_unlock(&p->in);
    for (unsigned i = 0; i < p->n; i++)
        if (p->slots[i].has_tid)
            pthread_join(p->slots[i].tid, NULL);
    pthread_cond_destroy(&p->work);
    inbox_destroy(&p->in);
    free(p->slots);
    free(p);
}

static int shared_create(unsigned n, kvs_pool **out)
{
    shared_pool *p = calloc(1, sizeof *p);
    int inited = 0; /* 1: the inbox is initialized */
    int rc = 0;

    if (!p || !(p->slots = calloc(n, sizeof *p->slots))) {
        rc = kvs_seterr(KVS_ENOMEM, "pool: out of memory for a shared-queue pool of %u", n);
        goto fail;
    }
    if ((rc = inbox_init(&p->in, "shared-queue pool")) < 0)
        goto fail;
    inited = 1;
    if (pthread_cond_init(&p->work, NULL) != 0) {
        rc = kvs_seterr(KVS_ENOMEM, "pool: cannot initialize the shared-queue pool's lock");
        goto fail;
    }
    p->base.ops = &pool_shared_ops;
    p->n = n;

    inbox_lock(&p->in);
    for (unsigned i = 0; i < n && rc == 0; i++) {
        p->slots[i].pool = p;
        if ((rc = slot_start(p, &p->slots[i])) == 0)
            __atomic_store_n(&p->live, p->live + 1, __ATOMIC_RELAXED);
    }
    inbox_unlock(&p->in);
    if (rc < 0) {
        shared_teardown(p); /* joins the workers started; keeps the detail slot_start set */
        return rc;
    }
    *out = &p->base;
    return 0;

fail:
    if (inited)
        inbox_destroy(&p->in);
    if (p)
        free(p->slots);
    free(p);
    return rc;
}

/* With mu held: start workers in slots whose worker died unreplaced. Best effort. */
static void shared_refill(shared_pool *p)
{
    KVS_ASSERT(inbox_held(&p->in));
    for (unsigned i = 0; i < p->n && p->live < p->n; i++) {
        if (p->slots[i].alive)
            continue;
        if (slot_start(p, &p->slots[i]) < 0)
            return;
        __atomic_store_n(&p->live, p->live + 1, __ATOMIC_RELAXED);
    }
}

/* With mu held: a worker to run a job, refilling slots whose worker died if need be. 0, or
 * KVS_ENOMEM if none is left: a job would wait forever (the detail is refill's). */
static int shared_staffed(shared_pool *p)
{
    if (p->live < p->n)
        shared_refill(p);
    return p->live == 0 ? KVS_ENOMEM : 0;
}

static int shared_spawn(kvs_pool *base, kvs_job_fn fn, void *arg)
{
    shared_pool *p = (shared_pool *)base;
    pool_job *j = malloc(sizeof *j);
    int rc;

    if (!j)
        return kvs_seterr(KVS_ENOMEM, "pool: out of memory for a job");
    j->fn = fn;
    j->arg = arg;
    inbox_lock(&p->in);
    if ((rc = inbox_open_locked(&p->in)) == 0 && (rc = shared_staffed(p)) == 0) {
        inbox_push_locked(&p->in, j);
        pthread_cond_signal(&p->work);
    }
    inbox_unlock(&p->in);
    if (rc < 0)
        free(j);
    return rc;
}

static void shared_destroy(kvs_pool *base)
{
    shared_teardown((shared_pool *)base);
}

static unsigned shared_threads(const kvs_pool *base)
{
    return __atomic_load_n(&((const shared_pool *)base)->live, __ATOMIC_RELAXED);
}

static uint64_t shared_replaced(const kvs_pool *base)
{
    return __atomic_load_n(&((const shared_pool *)base)->replaced, __ATOMIC_RELAXED);
}

const pool_ops pool_shared_ops = {
    .kind = "shared",
    .create = shared_create,
    .spawn = shared_spawn,
    .destroy = shared_destroy,
    .threads = shared_threads,
    .replaced = shared_replaced,
};
