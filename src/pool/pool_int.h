/*
 * pool_int.h — what the three pool kinds share behind pool.h: the vtable, the common head of
 * every pool struct, and the one way they start threads.
 *
 * Every kind's struct begins with `kvs_pool base`, so pool.c can hand the same pointer to the
 * kind's functions, which cast it back. pool.c checks the arguments that all kinds check alike
 * (kind name, thread count, NULL pool or job) before calling through the table, so an
 * implementation only sees valid ones.
 *
 * pool_thread_create wraps pthread_create for every thread a pool starts itself (libuv starts
 * its own). It converts the error at the place it happens (KVS_ENOMEM for EAGAIN/ENOMEM, with
 * the detail set) and carries the test hook that makes thread creation fail on demand, which
 * is how the tests reach the "fails cleanly" paths without exhausting the machine.
 */
#ifndef KVS_POOL_INT_H
#define KVS_POOL_INT_H

#include <pthread.h>
#include <stdint.h>

#include "pool/pool.h"

typedef struct pool_ops {
    const char *kind;
    /* Create a pool of n threads (already range-checked) into *out. */
    int (*create)(unsigned n, kvs_pool **out);
    int (*spawn)(kvs_pool *p, kvs_job_fn fn, void *arg);
    /* Wait for all jobs, stop, free. */
    void (*destroy)(kvs_pool *p);
    unsigned (*threads)(const kvs_pool *p);
    uint64_t (*replaced)(const kvs_pool *p); /* NULL: always 0 */
} pool_ops;

struct kvs_pool {
    const pool_ops *ops;
};

extern const pool_ops pool_naive_ops;
extern const pool_ops pool_shared_ops;
extern const pool_ops pool_uv_ops;

/* pthread_create with the error converted; what names the thread in the detail. detached: start
 * it detached. Returns 0 or a negative KVS_E* code. */
int pool_thread_create(pthread_t *tid, int detached, void *(*fn)(void *), void *arg,
                       const char *what);

#ifdef KVS_TEST_HOOKS
/* Test hook (test builds only: KVS_TEST_HOOKS): after `after` more successful
 * pool_thread_create calls, every further call fails with KVS_ENOMEM (as if pthread_create said
 * EAGAIN); a negative value turns the hook off (the default). Safe to call from any thread. */
void pool_test_fail_threads_after(long after);
#endif

#endif /* KVS_POOL_INT_H */
