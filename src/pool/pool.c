/*
 * pool.c — the public face of the thread pools (pool.h): argument checks, the kind registry,
 * dispatch through each kind's table, and the shared thread-starting helper (pool_int.h).
 *
 * Nothing here holds state across calls except the test hook's countdown, an atomic long that
 * is negative (off) unless a test arms it; built without KVS_TEST_HOOKS, there is none.
 */
#include "pool/pool_int.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "util/err.h"

static const pool_ops *const pool_kinds[] = { &pool_naive_ops, &pool_shared_ops, &pool_uv_ops };

#ifdef KVS_TEST_HOOKS
static long fail_countdown = -1;

void pool_test_fail_threads_after(long after)
{
    __atomic_store_n(&fail_countdown, after < 0 ? -1 : after, __ATOMIC_SEQ_CST);
}

/* Take one success from the countdown: 1 if this creation must fail. */
static int fail_injected(void)
{
    long cur = __atomic_load_n(&fail_countdown, __ATOMIC_SEQ_CST);

    for (;;) {
        if (cur < 0)
            return 0;
        if (cur == 0)
            return 1;
        if (__atomic_compare_exchange_n(&fail_countdown, &cur, cur - 1, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST))
            return 0;
    }
}
#else
static int fail_injected(void)
{
    return 0;
}
#endif

int pool_thread_create(pthread_t *tid, int detached, void *(*fn)(void *), void *arg,
                       const char *what)
{
    pthread_attr_t attr;
    int e;

    if (fail_injected())
        return kvs_seterr(KVS_ENOMEM, "pool: cannot start %s thread: %s (injected)", what,
                          strerror(EAGAIN));
    if ((e = pthread_attr_init(&attr)) != 0)
        return kvs_seterr(kvs_errno(e), "pool: pthread_attr_init: %s", strerror(e));
    if (detached)
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    e = pthread_create(tid, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    if (e != 0)
        return kvs_seterr(e == EAGAIN || e == ENOMEM ? KVS_ENOMEM : kvs_errno(e),
                          "pool: cannot start %s thread: %s", what, strerror(e));
    return 0;
}

int kvs_pool_new(const char *kind, unsigned threads, kvs_pool **out)
{
    const pool_ops *ops = NULL;

    if (!out)
        return kvs_seterr(KVS_EINVAL, "pool: no place for the pool (out is NULL)");
    if (!kind)
        return kvs_seterr(KVS_EINVAL, "pool: no kind given (naive, shared or uv)");
    for (size_t i = 0; i < sizeof pool_kinds / sizeof pool_kinds[0]; i++)
        if (strcmp(pool_kinds[i]->kind, kind) == 0)
            ops = pool_kinds[i];
    if (!ops)
        return kvs_seterr(KVS_EINVAL, "pool: no kind \"%s\" (naive, shared or uv)", kind);
    if (threads < 1 || threads > KVS_POOL_MAX_THREADS)
        return kvs_seterr(KVS_EINVAL, "pool: %u threads is out of range 1..%u", threads,
                          KVS_POOL_MAX_THREADS);
    return ops->create(threads, out);
}

int kvs_pool_spawn(kvs_pool *p, kvs_job_fn fn, void *arg)
{
    if (!p || !fn)
        return kvs_seterr(KVS_EINVAL, "pool: spawn needs a pool and a job function");
    return p->ops->spawn(p, fn, arg);
}

void kvs_pool_free(kvs_pool *p)
{
    if (p)
        p->ops->destroy(p);
}

unsigned kvs_pool_threads(const kvs_pool *p)
{
    return p ? p->ops->threads(p) : 0;
}

const char *kvs_pool_kind(const kvs_pool *p)
{
    return p ? p->ops->kind : "";
}

uint64_t kvs_pool_replaced(const kvs_pool *p)
{
    return p && p->ops->replaced ? p->ops->replaced(p) : 0;
}
