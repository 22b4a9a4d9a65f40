/*
 * test_concurrency.c — many threads on one handle.
 *
 * Run once per engine (argv[1]); the cases that look inside the kvs engine skip on lmdb.
 *
 *   concurrent_set      the kvs course's case: 1000 threads each set a distinct key through one
 *                       shared handle, each with its own kvs_ref given back with kvs_close; the
 *                       last close closes the store; every key reads back, also after reopening.
 *   concurrent_get      100 threads × 100 reads of 100 keys set beforehand, all correct.
 *   readers_during_compaction (kvs)
 *                       8 writers overwrite a fixed key set with values that name (key, version)
 *                       while the engine compacts on its own and a thread calls kvs_compact in a
 *                       loop over 64 KiB segments (and once more after the last write); 8 readers,
 *                       reading until that last pass is over, check that every value they get is
 *                       whole, belongs to its key, and is no older than the last version
 *                       acknowledged before the read began (and no newer than the last one begun
 *                       after it ended). No read may fail (KVS_ECORRUPT or KVS_EIO: a retired
 *                       segment was read) or crash (an unmapped one); after reopening, every key
 *                       holds its last acknowledged value.
 *   group_commit (kvs)  32 threads × 50 writes with KVS_SYNC_ALWAYS, twice: as fast as the disk
 *                       syncs, then with every sync slowed down by the test hook so that batches
 *                       surely form (there: far fewer syncs than writes). In both, no write is
 *                       acknowledged before a sync that began after it was queued has completed
 *                       (checked against the engine's syncs_started / syncs counters).
 *   drop_guard          8 threads each holding a kvs_ref write and close it; the main thread
 *                       closes its own first, so a worker's close is the last: after it the
 *                       store's threads are gone (/proc/self/task) and the directory's lock is free.
 *
 * Nothing asserts on time. Loops are bounded by counts; KVS_TEST_SCALE (a factor, default 1, or
 * less in sanitizer builds) shrinks the compaction case for slow builds.
 */
#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/log/logdb.h"
#include "testutil.h"

/* ---- helpers ---- */

static double test_scale(void)
{
    const char *s = getenv("KVS_TEST_SCALE");
    double f;

    if (s && *s && (f = strtod(s, NULL)) > 0.0)
        return f > 1.0 ? 1.0 : f;
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
    return 0.5;
#else
    return 1.0;
#endif
}

static int scaled(int n, int min)
{
    int v = (int)(n * test_scale());
    return v < min ? min : v;
}

static pthread_attr_t small_stack;

static void start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
    int e = pthread_create(t, &small_stack, fn, arg);
    if (e != 0)
        fail_msg("pthread_create: %s", strerror(e));
}

static void join_thread(pthread_t t)
{
    assert_int_equal(pthread_join(t, NULL), 0);
}

/* The first failure seen by any thread, for the failure message. */
static pthread_mutex_t first_mu = PTHREAD_MUTEX_INITIALIZER;
static char first_err[512];

static void note_error(const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&first_mu);
    if (!first_err[0]) {
        va_start(ap, fmt);
        vsnprintf(first_err, sizeof first_err, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&first_mu);
}

static void clear_error(void)
{
    pthread_mutex_lock(&first_mu);
    first_err[0] = '\0';
    pthread_mutex_unlock(&first_mu);
}

static const char *first_error(void)
{
    return first_err[0] ? first_err : "(none recorded)";
}

/* Threads of this process, from /proc/self/task. */
static int task_count(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *de;
    int n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Wait (at most 5 s) for the thread count to come down to want; returns the last count. A
 * joined thread can linger in /proc for a moment after pthread_join returns. */
static int task_count_settle(int want)
{
    int n = task_count();

    for (int i = 0; i < 500 && n != want; i++) {
        usleep(10000);
        n = task_count();
    }
    return n;
}

/* The thread count once it has not changed for 50 ms (at most 5 s of waiting). */
static int task_count_stable(void)
{
    int n = task_count(), same = 0;

    for (int i = 0; i < 500 && same < 5; i++) {
        usleep(10000);
        int m = task_count();
        same = m == n ? same + 1 : 0;
        n = m;
    }
    return n;
}

/* ---- concurrent_set: the kvs course's case ---- */

#define SET_THREADS 1000

typedef struct set_arg {
    kvs_t *db; /* this thread's own reference */
    pthread_barrier_t *go;
    int id;
    int rc, close_rc;
} set_arg;

static void set_kv(char *k, size_t kc, char *v, size_t vc, int i)
{
    snprintf(k, kc, "key%d", i);
    snprintf(v, vc, "value%d", i);
}

static void *set_main(void *p)
{
    set_arg *a = p;
    char k[32], v[32];

    set_kv(k, sizeof k, v, sizeof v, a->id);
    pthread_barrier_wait(a->go);
    a->rc = kvs_set(a->db, k, strlen(k), v, strlen(v));
    if (a->rc != 0)
        note_error("set %s: %s: %s", k, kvs_strerror(a->rc), kvs_last_error());
    a->close_rc = kvs_close(a->db); /* give this thread's reference back */
    return NULL;
}

static void check_set_keys(kvs_t *db)
{
    char k[32], v[32];

    for (int i = 0; i < SET_THREADS; i++) {
        set_kv(k, sizeof k, v, sizeof v, i);
        tu_assert_value(db, k, v);
    }
    assert_int_equal(tu_stats(db).keys, SET_THREADS);
}

static void test_concurrent_set(void **state)
{
    tu_fixture *f = *state;
    static set_arg args[SET_THREADS];
    static pthread_t th[SET_THREADS];
    pthread_barrier_t go;
    kvs_t *other;

    clear_error();
    tu_fx_open(f);
    assert_int_equal(pthread_barrier_init(&go, NULL, SET_THREADS + 1), 0);
    for (int i = 0; i < SET_THREADS; i++) {
        /* the reference is taken here, before the thread exists: the thread owns it */
        args[i] = (set_arg){kvs_ref(f->db), &go, i, -100, -100};
        assert_ptr_equal(args[i].db, f->db);
        start_thread(&th[i], set_main, &args[i]);
    }
    pthread_barrier_wait(&go);
    int failed = 0;
    for (int i = 0; i < SET_THREADS; i++) {
        join_thread(th[i]);
        failed += args[i].rc != 0 || args[i].close_rc != 0;
    }
    pthread_barrier_destroy(&go);
    if (failed)
        fail_msg("%d of %d threads failed; first: %s", failed, SET_THREADS, first_error());
    /* every thread's close returned, and the store is still open: the main reference holds it */
    assert_int_equal(tu_try_open(f->dir, &f->opt, &other), KVS_EBUSY);
    check_set_keys(f->db);
    /* the main reference is the last one: its close closes the store (the lock free again) */
    assert_int_equal(kvs_close(f->db), 0);
    f->db = NULL;
    assert_int_equal(tu_try_open(f->dir, &f->opt, &f->db), 0);
    check_set_keys(f->db);
}

/* ---- concurrent_get ---- */

#define GET_THREADS 100
#define GET_ROUNDS 100
#define GET_KEYS 100

typedef struct get_arg {
    kvs_t *db;
    pthread_barrier_t *go;
    int id;
    int reads, wrong;
} get_arg;

static void *get_main(void *p)
{
    get_arg *a = p;
    char k[32], v[32];
    void *got;
    size_t len;

    pthread_barrier_wait(a->go);
    for (int r = 0; r < GET_ROUNDS; r++) {
        int i = (a->id + r * 7) % GET_KEYS; /* threads start at different keys */
        set_kv(k, sizeof k, v, sizeof v, i);
        int rc = kvs_get(a->db, k, strlen(k), &got, &len);
        a->reads++;
        if (rc != 0) {
            note_error("get %s: %s: %s", k, kvs_strerror(rc), kvs_last_error());
            a->wrong++;
            continue;
        }
        if (len != strlen(v) || memcmp(got, v, len) != 0) {
            note_error("get %s: got '%.*s', want '%s'", k, (int)len, (char *)got, v);
            a->wrong++;
        }
        kvs_free(got);
    }
    kvs_close(a->db);
    return NULL;
}

static void test_concurrent_get(void **state)
{
    tu_fixture *f = *state;
    static get_arg args[GET_THREADS];
    pthread_t th[GET_THREADS];
    pthread_barrier_t go;
    char k[32], v[32];
    int reads = 0, wrong = 0;

    clear_error();
    for (int i = 0; i < GET_KEYS; i++) {
        set_kv(k, sizeof k, v, sizeof v, i);
        tu_set(f->db, k, v);
    }
    assert_int_equal(pthread_barrier_init(&go, NULL, GET_THREADS + 1), 0);
    for (int t = 0; t < GET_THREADS; t++) {
        args[t] = (get_arg){kvs_ref(f->db), &go, t, 0, 0};
        start_thread(&th[t], get_main, &args[t]);
    }
    pthread_barrier_wait(&go);
    for (int t = 0; t < GET_THREADS; t++) {
        join_thread(th[t]);
        reads += args[t].reads;
        wrong += args[t].wrong;
    }
    pthread_barrier_destroy(&go);
    assert_int_equal(reads, GET_THREADS * GET_ROUNDS);
    if (wrong)
        fail_msg("%d of %d reads wrong; first: %s", wrong, reads, first_error());
}

/* ---- readers during compaction (kvs engine) ---- */

#define RC_KEYS 64
#define RC_WRITERS 8
#define RC_READERS 8

typedef struct rc_shared {
    kvs_t *db;
    int writes_per_writer;
    int max_reads;
    _Atomic uint64_t issued[RC_KEYS]; /* the newest version whose kvs_set has begun */
    _Atomic uint64_t acked[RC_KEYS];  /* the newest version whose kvs_set has returned 0 */
    atomic_int writers_left, compactor_done;
    atomic_ullong reads, reads_late, wrong, read_errors, write_errors, compact_runs, compact_errors;
} rc_shared;

typedef struct rc_arg {
    rc_shared *sh;
    int id;
} rc_arg;

static void rc_key(char *k, size_t cap, int i)
{
    snprintf(k, cap, "ck-%03d", i);
}

/* Value of (key i, version v): "ck-NNN|vVVVVVVVVVV|" then a fill derived from both; its length
 * varies with the version (100 .. 1299 bytes) so records of one key differ in size. */
static size_t rc_vlen(int i, uint64_t v)
{
    return 100 + (size_t)((v * 37 + (uint64_t)i * 11) % 1200);
}

static unsigned char rc_fill(int i, uint64_t v, size_t pos)
{
    return (unsigned char)('a' + (pos * 7 + (size_t)i * 13 + v * 3) % 26);
}

static size_t rc_value(unsigned char *buf, int i, uint64_t v)
{
    size_t n = rc_vlen(i, v);
    int h = snprintf((char *)buf, n, "ck-%03d|v%010" PRIu64 "|", i, v);

    for (size_t p = (size_t)h; p < n; p++)
        buf[p] = rc_fill(i, v, p);
    return n;
}

/* Is got a well-formed value of key i? Its version goes to *v. */
static bool rc_parse(const unsigned char *got, size_t len, int i, uint64_t *v)
{
    char want[16];
    char *end;

    /* "ck-NNN|v" (8 bytes), ten digits, "|" at 18, the fill from 19 on */
    snprintf(want, sizeof want, "ck-%03d|v", i);
    if (len < 19 || memcmp(got, want, 8) != 0 || got[18] != '|')
        return false;
    *v = strtoull((const char *)got + 8, &end, 10);
    if (end != (const char *)got + 18 || len != rc_vlen(i, *v))
        return false;
    for (size_t p = 19; p < len; p++)
        if (got[p] != rc_fill(i, *v, p))
            return false;
    return true;
}

static void *rc_writer(void *p)
{
    rc_arg *a = p;
    rc_shared *sh = a->sh;
    unsigned char buf[2048];
    uint64_t ver[RC_KEYS];
    char k[16];

    for (int i = 0; i < RC_KEYS; i++)
        ver[i] = 1; /* the test wrote version 1 of every key before starting the threads */
    /* writer w owns the keys i ≡ w (mod RC_WRITERS): a key's versions are written in order */
    for (int n = 0; n < sh->writes_per_writer; n++) {
        int i = a->id + RC_WRITERS * (n % (RC_KEYS / RC_WRITERS));
        uint64_t v = ++ver[i];
        rc_key(k, sizeof k, i);
        size_t len = rc_value(buf, i, v);
        atomic_store(&sh->issued[i], v);
        int rc = kvs_set(sh->db, k, strlen(k), buf, len);
        if (rc != 0) {
            note_error("set %s v%" PRIu64 ": %s: %s", k, v, kvs_strerror(rc), kvs_last_error());
            atomic_fetch_add(&sh->write_errors, 1);
            break;
        }
        atomic_store(&sh->acked[i], v);
    }
    atomic_fetch_sub(&sh->writers_left, 1);
    return NULL;
}

static void *rc_reader(void *p)
{
    rc_arg *a = p;
    rc_shared *sh = a->sh;
    uint32_t x = 2463534242u * (uint32_t)(a->id + 1);
    char k[16];
    void *got;
    size_t len;

    for (int n = 0; n < sh->max_reads && !atomic_load(&sh->compactor_done); n++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        int i = (int)(x % RC_KEYS);
        rc_key(k, sizeof k, i);
        uint64_t lo = atomic_load(&sh->acked[i]);
        int rc = kvs_get(sh->db, k, strlen(k), &got, &len);
        uint64_t hi = atomic_load(&sh->issued[i]);
        atomic_fetch_add(&sh->reads, 1);
        if (atomic_load(&sh->writers_left) == 0)
            atomic_fetch_add(&sh->reads_late, 1);
        if (rc != 0) {
            note_error("get %s: %s: %s", k, kvs_strerror(rc), kvs_last_error());
            atomic_fetch_add(&sh->read_errors, 1);
            continue;
        }
        uint64_t v;
        if (!rc_parse(got, len, i, &v)) {
            note_error("get %s: a value of %zu bytes that is no version of this key: '%.24s'", k,
                       len, (char *)got);
            atomic_fetch_add(&sh->wrong, 1);
        } else if (v < lo || v > hi) {
            note_error("get %s: version %" PRIu64 ", but %" PRIu64
                       " was acknowledged before the read and %" PRIu64 " begun after it",
                       k, v, lo, hi);
            atomic_fetch_add(&sh->wrong, 1);
        }
        kvs_free(got);
        if ((n & 15) == 15)
            usleep(100); /* leave the writers and the compactor some CPU on small machines */
    }
    return NULL;
}

static void *rc_compactor(void *p)
{
    rc_shared *sh = p;
    kvs_stats st;

    /* Until the writers are done, then one last pass that begins after the last write (so at
     * least one run happens with readers still reading and nothing else left to wait for). */
    for (bool last = false; !last;) {
        last = atomic_load(&sh->writers_left) == 0;
        int64_t r = kvs_compact(sh->db);
        if (r < 0) {
            note_error("kvs_compact: %s: %s", kvs_strerror((int)r), kvs_last_error());
            atomic_fetch_add(&sh->compact_errors, 1);
        } else {
            atomic_fetch_add(&sh->compact_runs, 1);
        }
        if (kvs_stats_get(sh->db, &st) != 0)
            atomic_fetch_add(&sh->compact_errors, 1);
        usleep(2000);
    }
    atomic_store(&sh->compactor_done, 1);
    return NULL;
}

static void rc_check_final(kvs_t *db, rc_shared *sh)
{
    unsigned char want[2048];
    char k[16];

    for (int i = 0; i < RC_KEYS; i++) {
        rc_key(k, sizeof k, i);
        size_t n = rc_value(want, i, atomic_load(&sh->acked[i]));
        tu_assert_bin(db, k, strlen(k), want, n);
    }
}

static void test_readers_during_compaction(void **state)
{
    tu_fixture *f = *state;
    static rc_shared sh;
    rc_arg wa[RC_WRITERS], ra[RC_READERS];
    pthread_t wt[RC_WRITERS], rt[RC_READERS], ct;
    unsigned char buf[2048];
    char k[16];

    tu_require_engine("kvs");
    clear_error();
    f->opt.segment_size = 64 * 1024;
    f->opt.compact_ratio = 0.2;
    f->opt.compact_min_bytes = 64 * 1024;
    f->opt.auto_compact = 1;
    tu_fx_open(f);

    memset(&sh, 0, sizeof sh);
    sh.db = f->db;
    sh.writes_per_writer = scaled(3000, 300);
    sh.max_reads = scaled(1000000, 50000); /* a bound; they stop with the compactor */
    for (int i = 0; i < RC_KEYS; i++) { /* version 1 of every key, so no read finds nothing */
        rc_key(k, sizeof k, i);
        size_t n = rc_value(buf, i, 1);
        tu_set_bin(f->db, k, strlen(k), buf, n);
        atomic_store(&sh.issued[i], 1);
        atomic_store(&sh.acked[i], 1);
    }
    atomic_store(&sh.writers_left, RC_WRITERS);
    for (int t = 0; t < RC_READERS; t++) {
        ra[t] = (rc_arg){&sh, t};
        start_thread(&rt[t], rc_reader, &ra[t]);
    }
    start_thread(&ct, rc_compactor, &sh);
    for (int t = 0; t < RC_WRITERS; t++) {
        wa[t] = (rc_arg){&sh, t};
        start_thread(&wt[t], rc_writer, &wa[t]);
    }
    for (int t = 0; t < RC_WRITERS; t++)
        join_thread(wt[t]);
    for (int t = 0; t < RC_READERS; t++)
        join_thread(rt[t]);
    join_thread(ct);

    kvs_stats st = tu_stats(f->db);
    printf("# readers during compaction: %llu writes, %llu reads (%llu after the last write), "
           "%llu kvs_compact calls, %llu compactions, %llu bytes reclaimed, %llu segments now\n",
           (unsigned long long)st.writes, (unsigned long long)atomic_load(&sh.reads),
           (unsigned long long)atomic_load(&sh.reads_late),
           (unsigned long long)atomic_load(&sh.compact_runs), (unsigned long long)st.compactions,
           (unsigned long long)st.compact_reclaimed, (unsigned long long)st.segments);
    if (atomic_load(&sh.wrong) || atomic_load(&sh.read_errors) || atomic_load(&sh.write_errors) ||
        atomic_load(&sh.compact_errors))
        fail_msg("%llu wrong reads, %llu read errors, %llu write errors, %llu compaction errors "
                 "in %llu reads; first: %s",
                 (unsigned long long)atomic_load(&sh.wrong),
                 (unsigned long long)atomic_load(&sh.read_errors),
                 (unsigned long long)atomic_load(&sh.write_errors),
                 (unsigned long long)atomic_load(&sh.compact_errors),
                 (unsigned long long)atomic_load(&sh.reads), first_error());
    assert_true(atomic_load(&sh.reads) > 0);
    assert_true(atomic_load(&sh.compact_runs) >= 1);
    assert_int_equal(st.corrupt_reads, 0);
    assert_true(st.compactions >= 1);
    assert_int_equal(st.writes, RC_KEYS + (uint64_t)RC_WRITERS * sh.writes_per_writer);
    rc_check_final(f->db, &sh);
    tu_fx_reopen(f);
    rc_check_final(f->db, &sh);
    assert_int_equal(tu_stats(f->db).keys, RC_KEYS);
}

/* ---- group commit (kvs engine) ---- */

#define GC_THREADS 32
#define GC_WRITES 50
#define GC_SYNC_DELAY_US 20000

typedef struct gc_arg {
    kvs_t *db;
    logdb *ldb;
    pthread_barrier_t *go;
    int round, id;
    int errors, early; /* early: acknowledged before a sync begun after it was queued ended */
} gc_arg;

static void gc_kv(char *k, size_t kc, char *v, size_t vc, int round, int t, int i)
{
    snprintf(k, kc, "gc%d-%d-%d", round, t, i);
    snprintf(v, vc, "value-%d-%d-%d", round, t, i);
}

static void *gc_main(void *p)
{
    gc_arg *a = p;
    char k[32], v[32];

    pthread_barrier_wait(a->go);
    for (int i = 0; i < GC_WRITES; i++) {
        gc_kv(k, sizeof k, v, sizeof v, a->round, a->id, i);
        /* Syncs are serialized (under wmu), so a sync that begins after this load is number
         * started_before + 1 or later; the write may be acknowledged only once one of those
         * has completed, since the syncs begun before it was queued need not cover it. */
        uint64_t started_before = __atomic_load_n(&a->ldb->syncs_started, __ATOMIC_ACQUIRE);
        int rc = kvs_set(a->db, k, strlen(k), v, strlen(v));
        uint64_t completed_after = __atomic_load_n(&a->ldb->syncs, __ATOMIC_ACQUIRE);
        if (rc != 0) {
            note_error("set %s: %s: %s", k, kvs_strerror(rc), kvs_last_error());
            a->errors++;
        } else if (completed_after < started_before + 1) {
            note_error("set %s acknowledged with %llu syncs completed; %llu had begun before it "
                       "was queued",
                       k, (unsigned long long)completed_after,
                       (unsigned long long)started_before);
            a->early++;
        }
    }
    return NULL;
}

/* One round of GC_THREADS × GC_WRITES concurrent sets; returns the syncs it took. */
static uint64_t gc_round(kvs_t *db, int round, unsigned delay_us)
{
    logdb *ldb = kvs_engine_impl(db);
    gc_arg args[GC_THREADS];
    pthread_t th[GC_THREADS];
    pthread_barrier_t go;
    int errors = 0, early = 0;

    assert_non_null(ldb);
    clear_error();
    kvs_stats before = tu_stats(db);
    kvs_test_sync_delay_us = delay_us; /* set before the threads exist, reset after they end */
    assert_int_equal(pthread_barrier_init(&go, NULL, GC_THREADS + 1), 0);
    for (int t = 0; t < GC_THREADS; t++) {
        args[t] = (gc_arg){db, ldb, &go, round, t, 0, 0};
        start_thread(&th[t], gc_main, &args[t]);
    }
    pthread_barrier_wait(&go);
    for (int t = 0; t < GC_THREADS; t++) {
        join_thread(th[t]);
        errors += args[t].errors;
        early += args[t].early;
    }
    pthread_barrier_destroy(&go);
    kvs_test_sync_delay_us = 0;

    kvs_stats st = tu_stats(db);
    uint64_t writes = st.writes - before.writes, syncs = st.syncs - before.syncs;
    printf("# group commit (sync always, %d threads x %d writes, each sync delayed %u us): "
           "%llu writes, %llu syncs, %.1f writes per sync\n",
           GC_THREADS, GC_WRITES, delay_us, (unsigned long long)writes,
           (unsigned long long)syncs, syncs ? (double)writes / (double)syncs : 0.0);
    if (errors || early)
        fail_msg("%d failed writes, %d acknowledged before their sync; first: %s", errors, early,
                 first_error());
    assert_int_equal(writes, GC_THREADS * GC_WRITES);
    assert_true(syncs >= 1);
    for (int t = 0; t < GC_THREADS; t++)
        for (int i = 0; i < GC_WRITES; i++) {
            char k[32], v[32];
            gc_kv(k, sizeof k, v, sizeof v, round, t, i);
            tu_assert_value(db, k, v);
        }
    return syncs;
}

static void test_group_commit(void **state)
{
    tu_fixture *f = *state;

    tu_require_engine("kvs");
    f->opt.sync = KVS_SYNC_ALWAYS;
    tu_fx_open(f);

    /* As the disk allows: the ordering holds whatever the timing; the batch sizes are only
     * reported, since they depend on how fast this disk syncs. */
    gc_round(f->db, 0, 0);
    /* Every sync sleeps first, so the writers that queue meanwhile form the next batch: far
     * fewer syncs than writes, whatever the machine. */
    uint64_t syncs = gc_round(f->db, 1, GC_SYNC_DELAY_US);
    assert_true(syncs < GC_THREADS * GC_WRITES / 2);

    tu_fx_reopen(f);
    assert_int_equal(tu_stats(f->db).keys, 2 * GC_THREADS * GC_WRITES);
}

/* ---- drop guard ---- */

#define DG_THREADS 8
#define DG_WRITES 200

typedef struct dg_arg {
    kvs_t *db;
    pthread_barrier_t *go;
    int id;
    int errors, close_rc;
} dg_arg;

static void *dg_main(void *p)
{
    dg_arg *a = p;
    char k[32], v[32];

    pthread_barrier_wait(a->go); /* the main thread has closed its reference by now */
    for (int i = 0; i < DG_WRITES; i++) {
        snprintf(k, sizeof k, "dg-%d-%d", a->id, i);
        snprintf(v, sizeof v, "v%d", i);
        int rc = kvs_set(a->db, k, strlen(k), v, strlen(v));
        if (rc != 0) {
            note_error("set %s: %s: %s", k, kvs_strerror(rc), kvs_last_error());
            a->errors++;
        }
    }
    a->close_rc = kvs_close(a->db);
    return NULL;
}

static void test_drop_guard(void **state)
{
    tu_fixture *f = *state;
    dg_arg args[DG_THREADS];
    pthread_t th[DG_THREADS];
    pthread_barrier_t go;
    kvs_t *db;
    int errors = 0;

    clear_error();
    /* A first open and close with overwrites, so that what liburcu starts once per process
     * (the call_rcu thread) exists before the baseline is taken. */
    db = tu_open(f->dir, &f->opt);
    tu_set(db, "warm", "1");
    tu_set(db, "warm", "2");
    assert_int_equal(kvs_close(db), 0);
    int base = task_count_stable();

    db = tu_open(f->dir, &f->opt);
    int open_count = task_count();
    if (strcmp(tu_engine, "kvs") == 0) /* the maintenance and sync threads */
        assert_true(open_count >= base + 1);
    assert_int_equal(pthread_barrier_init(&go, NULL, DG_THREADS + 1), 0);
    for (int t = 0; t < DG_THREADS; t++) {
        args[t] = (dg_arg){kvs_ref(db), &go, t, 0, -100};
        start_thread(&th[t], dg_main, &args[t]);
    }
    assert_int_equal(kvs_close(db), 0); /* the main reference goes first: a worker closes last */
    pthread_barrier_wait(&go);
    for (int t = 0; t < DG_THREADS; t++) {
        join_thread(th[t]);
        errors += args[t].errors;
        assert_int_equal(args[t].close_rc, 0);
    }
    pthread_barrier_destroy(&go);
    if (errors)
        fail_msg("%d writes failed; first: %s", errors, first_error());
    int after = task_count_settle(base);
    printf("# drop guard: %d threads before open, %d while open, %d after the last close\n", base,
           open_count, after);
    assert_int_equal(after, base);

    /* the lock was released: the directory opens again, with everything the workers wrote */
    assert_int_equal(tu_try_open(f->dir, &f->opt, &f->db), 0);
    for (int t = 0; t < DG_THREADS; t++)
        for (int i = 0; i < DG_WRITES; i += 13) {
            char k[32], v[32];
            snprintf(k, sizeof k, "dg-%d-%d", t, i);
            snprintf(v, sizeof v, "v%d", i);
            tu_assert_value(f->db, k, v);
        }
    assert_int_equal(tu_stats(f->db).keys, 1 + DG_THREADS * DG_WRITES);
}

int main(int argc, char **argv)
{
    const char *group = tu_engine_from_args(argc, argv);
    const struct CMUnitTest tests[] = {
        TU_CASE_CLOSED(test_concurrent_set),
        TU_CASE_OPEN(test_concurrent_get),
        TU_CASE_CLOSED(test_readers_during_compaction),
        TU_CASE_CLOSED(test_group_commit),
        TU_CASE_CLOSED(test_drop_guard),
    };

    setvbuf(stdout, NULL, _IOLBF, 0);
    pthread_attr_init(&small_stack);
    pthread_attr_setstacksize(&small_stack, 512 * 1024);
    printf("# scale %.2f\n", test_scale());
    int rc = cmocka_run_group_tests_name(group, tests, NULL, NULL);
    pthread_attr_destroy(&small_stack);
    return rc;
}
