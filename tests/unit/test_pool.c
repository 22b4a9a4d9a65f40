/*
 * test_pool.c — the thread pools (src/pool/pool.h), one kind per process.
 *
 * `test_pool KIND` runs the cases for KIND ("naive", "shared" or "uv"); with no argument it runs
 * all three in turn. CTest runs one process per kind, because libuv's threadpool is
 * process-wide and sized by the first "uv" pool: main clears UV_THREADPOOL_SIZE so that the
 * uv group's first case sees that sizing happen.
 *
 * The course's cases: 20 jobs × 1000 atomic increments reach 20000 once the pool is freed;
 * a pool of N reports N threads and really runs N jobs at once; bad sizes fail cleanly; free
 * drains a long queue; jobs that spawn jobs do not deadlock free. For "shared": jobs that end
 * their worker with pthread_exit never shrink the pool. Thread-creation failures are injected
 * through pool_test_fail_threads_after to check that nothing is left behind.
 *
 * No case asserts on timing. Waits are on counters under a condition variable, with a generous
 * deadline only so that a broken pool fails the case instead of hanging it.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <setjmp.h> /* cmocka needs these before cmocka.h */
#include <cmocka.h>

#include "kvs.h"
#include "pool/pool.h"
#include "pool/pool_int.h"

#define DEADLINE_SEC 60

static const char *kind; /* the kind under test */

/* ---- waiting on counters ---- */

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long arrived; /* jobs that reached the waiter */
    int open;     /* gate jobs may leave */
} waiter;

static void waiter_init(waiter *w)
{
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->arrived = 0;
    w->open = 0;
}

static void waiter_destroy(waiter *w)
{
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
}

static void waiter_arrive(waiter *w)
{
    pthread_mutex_lock(&w->mu);
    w->arrived++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void deadline_in(struct timespec *ts, int sec)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += sec;
}

/* Wait until at least n jobs have arrived; 0 if the deadline passed first. */
static int waiter_wait(waiter *w, long n)
{
    struct timespec ts;
    int ok = 1;

    deadline_in(&ts, DEADLINE_SEC);
    pthread_mutex_lock(&w->mu);
    while (w->arrived < n && ok)
        ok = pthread_cond_timedwait(&w->cv, &w->mu, &ts) == 0 || w->arrived >= n;
    pthread_mutex_unlock(&w->mu);
    return w->arrived >= n;
}

static void waiter_open(waiter *w)
{
    pthread_mutex_lock(&w->mu);
    w->open = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Job: arrive, then hold the worker until the gate opens. */
static void job_gate(void *arg)
{
    waiter *w = arg;

    pthread_mutex_lock(&w->mu);
    w->arrived++;
    pthread_cond_broadcast(&w->cv);
    while (!w->open)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

/* Assert that p runs n jobs at the same time: n gate jobs must all arrive before any leaves. */
static void assert_runs_at_once(kvs_pool *p, unsigned n)
{
    waiter w;
    int all;

    waiter_init(&w);
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(kvs_pool_spawn(p, job_gate, &w), 0);
    all = waiter_wait(&w, n);
    waiter_open(&w);
    /* The gate jobs still touch w: let them all leave before it goes. */
    kvs_pool_free(p);
    waiter_destroy(&w);
    if (!all)
        fail_msg("%s pool: only %ld of %u jobs ran at once", kind, w.arrived, n);
}

/* ---- the course's spawn-counter job ---- */

typedef struct counter {
    long value;
    waiter done; /* one arrival per job finished */
} counter;

static void job_count_1000(void *arg)
{
    counter *c = arg;

    for (int i = 0; i < 1000; i++)
        __atomic_fetch_add(&c->value, 1, __ATOMIC_RELAXED);
    waiter_arrive(&c->done);
}

static void job_count_1(void *arg)
{
    __atomic_fetch_add((long *)arg, 1, __ATOMIC_RELAXED);
}

/* The threads of this process, from /proc/self/status. */
static long process_threads(void)
{
    char line[256];
    long n = -1;
    FILE *f = fopen("/proc/self/status", "r");

    assert_non_null(f);
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %ld", &n) == 1)
            break;
    fclose(f);
    return n;
}

/* Wait (bounded) until the process has at most want threads: joined threads leave the kernel's
 * count a moment after pthread_join returns. */
static long process_threads_settle(long want)
{
    long n = process_threads();

    for (int i = 0; i < DEADLINE_SEC * 1000 && n > want; i++) {
        usleep(1000);
        n = process_threads();
    }
    return n;
}

/* The thread count once it has stopped falling (unchanged for 20 ms, bounded): a baseline taken
 * right after a pool was freed would count threads the kernel has not yet let go. */
static long process_threads_steady(void)
{
    long n = process_threads();

    for (int i = 0, same = 0; i < DEADLINE_SEC * 1000 && same < 20; i++) {
        usleep(1000);
        long m = process_threads();
        same = m == n ? same + 1 : 0;
        n = m;
    }
    return n;
}

static kvs_pool *new_pool(unsigned n)
{
    kvs_pool *p = NULL;
    int rc = kvs_pool_new(kind, n, &p);

    if (rc != 0)
        fail_msg("kvs_pool_new(%s, %u): %s: %s", kind, n, kvs_strerror(rc), kvs_last_error());
    assert_non_null(p);
    return p;
}

/* ---- cases for every kind ---- */

/* The course's spawn_counter: 20 jobs × 1000 increments, counted after free. */
static void test_spawn_counter(void **state)
{
    kvs_pool *p = new_pool(4);
    counter c = { 0 };

    waiter_init(&c.done);
    for (int i = 0; i < 20; i++)
        assert_int_equal(kvs_pool_spawn(p, job_count_1000, &c), 0);
    kvs_pool_free(p);
    assert_int_equal(__atomic_load_n(&c.value, __ATOMIC_RELAXED), 20000);
    assert_int_equal(c.done.arrived, 20);
    waiter_destroy(&c.done);
}

/* A pool of N says N threads, and runs N jobs at once. */
static void test_threads_reported(void **state)
{
    static const unsigned sizes[] = { 1, 4, 16 };

    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        kvs_pool *p = new_pool(sizes[i]);

        assert_int_equal(kvs_pool_threads(p), sizes[i]);
        assert_string_equal(kvs_pool_kind(p), kind);
        assert_runs_at_once(p, sizes[i]); /* frees p */
    }
}

static void assert_new_fails(const char *k, unsigned n, int want)
{
    kvs_pool *sentinel = (kvs_pool *)&sentinel;
    kvs_pool *p = sentinel;
    int rc = kvs_pool_new(k, n, &p);

    if (rc != want)
        fail_msg("kvs_pool_new(%s, %u) = %d (%s), want %d", k ? k : "NULL", n, rc,
                 kvs_last_error(), want);
    assert_ptr_equal(p, sentinel); /* untouched */
    assert_true(kvs_last_error()[0] != '\0');
}

static void test_bad_arguments(void **state)
{
    kvs_pool *p;

    assert_new_fails(kind, 0, KVS_EINVAL);
    assert_new_fails(kind, 100000, KVS_EINVAL);
    assert_new_fails(kind, KVS_POOL_MAX_THREADS + 1, KVS_EINVAL);
    assert_new_fails("bogus", 4, KVS_EINVAL);
    assert_new_fails(NULL, 4, KVS_EINVAL);
    assert_int_equal(kvs_pool_new(kind, 4, NULL), KVS_EINVAL);

    p = new_pool(2);
    assert_int_equal(kvs_pool_spawn(p, NULL, NULL), KVS_EINVAL);
    assert_int_equal(kvs_pool_spawn(NULL, job_count_1, NULL), KVS_EINVAL);
    kvs_pool_free(p);
    kvs_pool_free(NULL);
}

/* Free with a long queue behind busy workers still runs every job. */
static void test_free_long_queue(void **state)
{
    const unsigned workers = 2;
    const long jobs = strcmp(kind, "naive") == 0 ? 2000 : 20000;
    kvs_pool *p = new_pool(workers);
    waiter gate;
    long n = 0;

    /* Hold the workers so that the queue is long when free is called. The gate jobs are
     * spawned first; in a FIFO pool they are taken first. */
    waiter_init(&gate);
    for (unsigned i = 0; i < workers; i++)
        assert_int_equal(kvs_pool_spawn(p, job_gate, &gate), 0);
    assert_true(waiter_wait(&gate, workers));
    for (long i = 0; i < jobs; i++)
        assert_int_equal(kvs_pool_spawn(p, job_count_1, &n), 0);
    waiter_open(&gate);
    kvs_pool_free(p);
    assert_int_equal(n, jobs);
    waiter_destroy(&gate);
}

/* Jobs that spawn jobs: a binary tree of spawns, freed as soon as the root is queued. */
typedef struct tree {
    kvs_pool *pool;
    long ran;
    long spawn_errors;
} tree;

typedef struct tree_node {
    tree *t;
    int depth;
} tree_node;

static void job_tree(void *arg)
{
    tree_node *node = arg;
    tree *t = node->t;

    __atomic_fetch_add(&t->ran, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 2 && node->depth > 0; i++) {
        tree_node *child = malloc(sizeof *child);

        if (!child) {
            __atomic_fetch_add(&t->spawn_errors, 1, __ATOMIC_RELAXED);
            continue;
        }
        child->t = t;
        child->depth = node->depth - 1;
        if (kvs_pool_spawn(t->pool, job_tree, child) != 0) {
            __atomic_fetch_add(&t->spawn_errors, 1, __ATOMIC_RELAXED);
            free(child);
        }
    }
    free(node);
}

static void test_nested_spawn(void **state)
{
    const int depth = 9; /* 1023 jobs */
    tree t = { .pool = new_pool(3) };
    tree_node *root = malloc(sizeof *root);

    assert_non_null(root);
    root->t = &t;
    root->depth = depth;
    assert_int_equal(kvs_pool_spawn(t.pool, job_tree, root), 0);
    kvs_pool_free(t.pool); /* must wait for the whole tree, spawned while it waits */
    assert_int_equal(t.spawn_errors, 0);
    assert_int_equal(t.ran, (1L << (depth + 1)) - 1);
}

/* ---- cases for the kinds that bound their threads ---- */

typedef struct busy {
    long running, max;
    long ran;
} busy;

static void job_busy(void *arg)
{
    busy *b = arg;
    long r = __atomic_add_fetch(&b->running, 1, __ATOMIC_SEQ_CST);
    long m = __atomic_load_n(&b->max, __ATOMIC_SEQ_CST);

    while (r > m && !__atomic_compare_exchange_n(&b->max, &m, r, 0, __ATOMIC_SEQ_CST,
                                                 __ATOMIC_SEQ_CST))
        ;
    usleep(200); /* give the others a chance to overlap; nothing is asserted on time */
    __atomic_sub_fetch(&b->running, 1, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&b->ran, 1, __ATOMIC_SEQ_CST);
}

/* A pool of 3 never runs more than 3 jobs at once. */
static void test_concurrency_bound(void **state)
{
    kvs_pool *p = new_pool(3);
    busy b = { 0 };

    for (int i = 0; i < 200; i++)
        assert_int_equal(kvs_pool_spawn(p, job_busy, &b), 0);
    kvs_pool_free(p);
    assert_int_equal(b.ran, 200);
    assert_true(b.max >= 1 && b.max <= 3);
}

/* ---- jobs that end their thread ---- */

static void job_exit(void *arg)
{
    waiter_arrive(arg);
    pthread_exit(NULL);
}

/* "shared": 1000 jobs end their worker; the same pool of 4 then passes the spawn-counter test,
 * still has 4 workers (all able to run at once), and replaced exactly 1000. */
static void test_exit_jobs_keep_workers(void **state)
{
    kvs_pool *p = new_pool(4);
    waiter exited;
    counter c = { 0 };

    waiter_init(&exited);
    waiter_init(&c.done);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(kvs_pool_spawn(p, job_exit, &exited), 0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(kvs_pool_spawn(p, job_count_1000, &c), 0);
    assert_true(waiter_wait(&c.done, 20));
    assert_int_equal(__atomic_load_n(&c.value, __ATOMIC_RELAXED), 20000);
    assert_true(waiter_wait(&exited, 1000));
    assert_int_equal(kvs_pool_threads(p), 4);

    /* Four jobs at once need four live workers, one per slot; a slot's worker is running only
     * after the handler that replaced its predecessor counted the replacement. */
    {
        waiter w;

        waiter_init(&w);
        for (int i = 0; i < 4; i++)
            assert_int_equal(kvs_pool_spawn(p, job_gate, &w), 0);
        assert_true(waiter_wait(&w, 4));
        assert_int_equal(kvs_pool_replaced(p), 1000);
        assert_int_equal(kvs_pool_threads(p), 4);
        waiter_open(&w);
        kvs_pool_free(p);
        waiter_destroy(&w);
    }
    waiter_destroy(&exited);
    waiter_destroy(&c.done);
}

/* "naive": a job's thread ending early is still counted out, so free returns. */
static void test_exit_jobs_naive(void **state)
{
    kvs_pool *p = new_pool(4);
    waiter exited;
    counter c = { 0 };

    waiter_init(&exited);
    waiter_init(&c.done);
    for (int i = 0; i < 200; i++)
        assert_int_equal(kvs_pool_spawn(p, job_exit, &exited), 0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(kvs_pool_spawn(p, job_count_1000, &c), 0);
    kvs_pool_free(p);
    assert_int_equal(exited.arrived, 200);
    assert_int_equal(c.value, 20000);
    assert_int_equal(kvs_pool_replaced(NULL), 0);
    waiter_destroy(&exited);
    waiter_destroy(&c.done);
}

/* ---- injected thread-creation failures ---- */

/* "shared": the 11th of 16 workers cannot start; creation fails and joins the other 10. */
static void test_create_fails_cleanly(void **state)
{
    long before = process_threads_steady();

    pool_test_fail_threads_after(10);
    assert_new_fails(kind, 16, KVS_ENOMEM);
    pool_test_fail_threads_after(-1);
    assert_true(strstr(kvs_last_error(), "injected") != NULL);
    assert_int_equal(process_threads_settle(before), before);
}

/* "shared": a replacement that cannot start shrinks the pool by one; the next spawn refills. */
static void test_replacement_fails(void **state)
{
    kvs_pool *p = new_pool(4);
    waiter exited;
    long n = 0;

    waiter_init(&exited);
    kvs_log_set_level(KVS_LOG_OFF); /* the warning is expected */
    pool_test_fail_threads_after(0);
    assert_int_equal(kvs_pool_spawn(p, job_exit, &exited), 0);
    for (int i = 0; i < DEADLINE_SEC * 1000 && kvs_pool_threads(p) != 3; i++)
        usleep(1000);
    assert_int_equal(kvs_pool_threads(p), 3);
    pool_test_fail_threads_after(-1);
    kvs_log_set_level(KVS_LOG_WARN);
    assert_int_equal(kvs_pool_spawn(p, job_count_1, &n), 0); /* refills the slot */
    assert_int_equal(kvs_pool_threads(p), 4);
    assert_int_equal(kvs_pool_replaced(p), 0);
    assert_runs_at_once(p, 4); /* frees p */
    assert_int_equal(n, 1);
    waiter_destroy(&exited);
}

/* "naive": a job thread that cannot start is not queued, and free does not wait for it. */
static void test_spawn_fails_cleanly(void **state)
{
    kvs_pool *p = new_pool(4);
    long n = 0;

    pool_test_fail_threads_after(0);
    assert_int_equal(kvs_pool_spawn(p, job_count_1, &n), KVS_ENOMEM);
    pool_test_fail_threads_after(-1);
    assert_int_equal(kvs_pool_spawn(p, job_count_1, &n), 0);
    kvs_pool_free(p);
    assert_int_equal(n, 1);
}

/* "uv": the dispatcher cannot start; creation fails with the loop closed, no thread left. */
static void test_uv_dispatcher_fails_cleanly(void **state)
{
    long before;

    kvs_pool_free(new_pool(1)); /* libuv's threads exist before counting */
    before = process_threads_steady();
    pool_test_fail_threads_after(0);
    assert_new_fails(kind, 2, KVS_ENOMEM);
    pool_test_fail_threads_after(-1);
    assert_int_equal(process_threads_settle(before), before);
}

/* "uv", first case of its process: the first pool sizes libuv's threadpool from its own size,
 * and later pools may not ask for more. */
static void test_uv_sizes_threadpool(void **state)
{
    kvs_pool *p;
    const char *v;

    assert_null(getenv("UV_THREADPOOL_SIZE")); /* main cleared it; nothing used libuv yet */
    p = new_pool(16);
    v = getenv("UV_THREADPOOL_SIZE");
    assert_non_null(v);
    assert_string_equal(v, "16");
    assert_new_fails(kind, 17, KVS_EINVAL);
    assert_true(strstr(kvs_last_error(), "UV_THREADPOOL_SIZE") != NULL);
    kvs_pool_free(p);
    kvs_pool_free(new_pool(16)); /* as many as libuv has is fine */
}

/* ---- main ---- */

static int run_kind(const char *k)
{
    struct CMUnitTest tests[16];
    size_t n = 0;
    char name[64];

    kind = k;
    if (strcmp(k, "uv") == 0)
        tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_uv_sizes_threadpool);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_spawn_counter);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_threads_reported);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_bad_arguments);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_free_long_queue);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_nested_spawn);
    if (strcmp(k, "naive") == 0) {
        tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_exit_jobs_naive);
        tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_spawn_fails_cleanly);
    }
    if (strcmp(k, "shared") == 0) {
        tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_concurrency_bound);
        tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_exit_jobs_keep_workers);
        tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_create_fails_cleanly);
        tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_replacement_fails);
    }
    if (strcmp(k, "uv") == 0) {
        tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_concurrency_bound);
        tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_uv_dispatcher_fails_cleanly);
    }
    snprintf(name, sizeof name, "test_pool [%s]", k);
    return _cmocka_run_group_tests(name, tests, n, NULL, NULL);
}

int main(int argc, char **argv)
{
    static const char *const kinds[] = { "naive", "shared", "uv" };
    int failed = 0;

    unsetenv("UV_THREADPOOL_SIZE"); /* see the uv group's first case */
    if (argc > 1) {
        for (size_t i = 0; i < 3; i++)
            if (strcmp(argv[1], kinds[i]) == 0)
                return run_kind(kinds[i]);
        fprintf(stderr, "usage: %s [naive|shared|uv]\n", argv[0]);
        return 2;
    }
    for (size_t i = 0; i < 3; i++)
        failed += run_kind(kinds[i]);
    return failed;
}
