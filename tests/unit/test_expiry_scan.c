/*
 * test_expiry_scan.c — issue 13's contract (kvs.h) through the public API, engine by engine
 * (argv[1]): nothing here looks inside an engine.
 *
 *   expiry_clock        a key with an expiry time, on a clock the test moves: present (with its
 *                       expire_ms in kvs_read_meta) before, across a reopen; absent for get,
 *                       read_meta and scan from that ms on, and after a reopen; a SET clears it.
 *   expiry_sweep        expired keys are removed in the background (stats.keys falls to the
 *                       keys that do not expire, expired_keys counts them); with expire_effort
 *                       20 a second, a second removes far fewer than 200.
 *   versions            every write gives the key a new version, never one seen before; an
 *                       absent key has version 0.
 *   update_sees_batch   an update sees the ops before it in its batch, an absent (or expired)
 *                       key as absent, and may set, remove or write nothing.
 *   update_conflict     KVS_ECONFLICT refuses the rest of its group, and only its group.
 *   update_threads      8 threads × many increments of one counter by update ops: the count is
 *                       exact (labelled concurrency: run under TSan too).
 *   scan_all            every key once per full scan at count 1 and 7, long (> 511 bytes) keys
 *                       with their real bytes, 300 keys sharing a 20-byte prefix (a scan that
 *                       resumes by a key prefix must not stall there); the step count is bounded.
 *   scan_while_writing  a thread adds and removes keys while scans run: every key present
 *                       throughout is seen at least once by each scan, and the iterator too.
 *   clear               kvs_clear, sync and async: no key left, expiry counts back to 0, the
 *                       store takes writes after it and reopens.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

/* ---- a clock the test moves ---- */

static _Atomic uint64_t test_now = 1000000;

static uint64_t test_clock(void *ctx)
{
    (void)ctx;
    return atomic_load(&test_now);
}

static void use_test_clock(tu_fixture *f)
{
    f->opt.clock_ms = test_clock;
    f->opt.clock_ctx = NULL;
    atomic_store(&test_now, 1000000);
}

static void set_exp(kvs_t *db, const char *key, const char *val, uint64_t expire_ms)
{
    kvs_op op = {.type = KVS_OP_SET, .key = key, .klen = strlen(key), .val = val,
                 .vlen = strlen(val), .expire_ms = expire_ms};

    if (kvs_write(db, &op, 1) != 0)
        fail_msg("set %s: %s: %s", key, kvs_strerror(op.rc), kvs_last_error());
}

static int ignore_value(void *ctx, const void *val, size_t vlen)
{
    (void)ctx, (void)val, (void)vlen;
    return 0;
}

static kvs_meta meta_of(kvs_t *db, const char *key, int want_rc)
{
    kvs_meta m;

    assert_int_equal(kvs_read_meta(db, key, strlen(key), ignore_value, NULL, &m), want_rc);
    return m;
}

/* ---- scanning into a tally ---- */

typedef struct tally {
    char **keys; /* the keys looked for, NUL-terminated copies */
    size_t *klens;
    int *seen;
    size_t n;
    size_t calls;
} tally;

static int tally_fn(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                    const kvs_meta *meta)
{
    tally *t = ctx;

    (void)val, (void)vlen;
    t->calls++;
    assert_true(meta->version != 0);
    for (size_t i = 0; i < t->n; i++)
        if (t->klens[i] == klen && memcmp(t->keys[i], key, klen) == 0) {
            t->seen[i]++;
            break;
        }
    return 0;
}

/* A full scan at count; the steps it took. */
static size_t scan_all(kvs_t *db, size_t count, tally *t)
{
    uint64_t cursor = 0;
    size_t steps = 0;

    memset(t->seen, 0, t->n * sizeof *t->seen);
    t->calls = 0;
    do {
        assert_int_equal(kvs_scan(db, cursor, count, tally_fn, t, &cursor), 0);
        steps++;
        assert_true(steps < 100000); /* no stall */
    } while (cursor != 0);
    return steps;
}

static void tally_init(tally *t, size_t n)
{
    t->keys = calloc(n, sizeof *t->keys);
    t->klens = calloc(n, sizeof *t->klens);
    t->seen = calloc(n, sizeof *t->seen);
    t->n = 0;
    assert_true(t->keys && t->klens && t->seen);
}

static void tally_add(tally *t, const void *key, size_t klen)
{
    t->keys[t->n] = malloc(klen + 1);
    assert_non_null(t->keys[t->n]);
    memcpy(t->keys[t->n], key, klen);
    t->klens[t->n++] = klen;
}

static void tally_free(tally *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->keys[i]);
    free(t->keys);
    free(t->klens);
    free(t->seen);
}

/* ---- expiry ---- */

static void test_expiry_clock(void **state)
{
    tu_fixture *f = *state;
    tally t;

    use_test_clock(f);
    f->opt.expire_effort = 0; /* nothing removed behind the test's back: reads alone decide */
    tu_fx_open(f);
    set_exp(f->db, "soon", "v", 1000500);
    set_exp(f->db, "later", "w", 2000000);
    tu_set(f->db, "never", "x");
    assert_int_equal(meta_of(f->db, "soon", 0).expire_ms, 1000500);
    assert_int_equal(meta_of(f->db, "never", 0).expire_ms, 0);
    assert_int_equal(tu_stats(f->db).expiring_keys, 2);
    atomic_store(&test_now, 1000499);
    tu_fx_reopen(f);
    tu_assert_value(f->db, "soon", "v");
    assert_int_equal(meta_of(f->db, "soon", 0).expire_ms, 1000500);
    assert_int_equal(tu_stats(f->db).expiring_keys, 2);

    atomic_store(&test_now, 1000500); /* expire_ms <= now: gone */
    tu_assert_value(f->db, "soon", NULL);
    meta_of(f->db, "soon", KVS_ENOTFOUND);
    tu_assert_value(f->db, "later", "w");
    tally_init(&t, 3);
    tally_add(&t, "soon", 4);
    tally_add(&t, "later", 5);
    tally_add(&t, "never", 5);
    scan_all(f->db, 10, &t);
    assert_int_equal(t.seen[0], 0);
    assert_int_equal(t.seen[1], 1);
    assert_int_equal(t.seen[2], 1);
    assert_int_equal(t.calls, 2);
    tu_fx_reopen(f);
    tu_assert_value(f->db, "soon", NULL);
    assert_int_equal(kvs_remove(f->db, "soon", 4), KVS_ENOTFOUND); /* absent, even if stored */

    set_exp(f->db, "later", "w2", 0); /* a SET without expire_ms clears it */
    atomic_store(&test_now, 3000000);
    tu_assert_value(f->db, "later", "w2");
    assert_int_equal(tu_stats(f->db).expiring_keys, 0);
    tally_free(&t);
}

/* An update that sets the key's expiry to ctx's time (EXPIRE; 0: PERSIST), keeping its value. */
static int set_expiry_fn(void *ctx, const kvs_cur *cur, kvs_update_out *out)
{
    if (!cur->found)
        return 0;
    out->type = KVS_OP_SET;
    out->val = cur->val;
    out->vlen = cur->vlen;
    out->expire_ms = *(const uint64_t *)ctx;
    return 0;
}

static void update_expiry(kvs_t *db, const char *key, uint64_t expire_ms)
{
    kvs_op op = {.type = KVS_OP_UPDATE, .key = key, .klen = strlen(key), .update = set_expiry_fn,
                 .update_ctx = &expire_ms};
    assert_int_equal(kvs_write(db, &op, 1), 0);
}

static uint64_t expiring(kvs_t *db)
{
    return tu_stats(db).expiring_keys;
}

/* INFO keyspace's expires=: the count of live keys with an expiry follows every path that gives
 * a key one or takes it away, and survives a reopen (and, kvs engine, a compaction). */
static void test_expiring_count(void **state)
{
    tu_fixture *f = *state;

    char big[300];

    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    use_test_clock(f);
    f->opt.expire_effort = 0;
    f->opt.segment_size = 4096; /* the kvs engine: several sealed segments to compact */
    tu_fx_open(f);
    set_exp(f->db, "a", "v", 5000000);
    set_exp(f->db, "b", "v", 5000000);
    tu_set(f->db, "c", "v");
    assert_int_equal(expiring(f->db), 2);
    set_exp(f->db, "a", "v2", 6000000); /* a new time: still one */
    assert_int_equal(expiring(f->db), 2);
    tu_set(f->db, "a", "plain"); /* a SET clears it */
    assert_int_equal(expiring(f->db), 1);
    update_expiry(f->db, "c", 7000000); /* EXPIRE */
    assert_int_equal(expiring(f->db), 2);
    update_expiry(f->db, "b", 0); /* PERSIST */
    assert_int_equal(expiring(f->db), 1);
    assert_int_equal(kvs_remove(f->db, "c", 1), 0);
    assert_int_equal(expiring(f->db), 0);
    for (int i = 0; i < 50; i++) {
        char k[16];
        snprintf(k, sizeof k, "e%d", i);
        set_exp(f->db, k, big, i < 30 ? 5000000 : 0);
    }
    assert_int_equal(expiring(f->db), 30);
    if (strcmp(tu_engine, "kvs") == 0)
        assert_true(tu_compact_every_other(f->db) > 0);
    assert_int_equal(expiring(f->db), 30);
    tu_fx_reopen(f);
    assert_int_equal(expiring(f->db), 30);
    assert_int_equal(kvs_clear(f->db, 0), 0);
    assert_int_equal(expiring(f->db), 0);
}

static void wait_for_keys(kvs_t *db, uint64_t keys)
{
    for (int i = 0; i < 1000 && tu_stats(db).keys != keys; i++)
        usleep(10000);
    assert_int_equal(tu_stats(db).keys, keys);
}

static void test_expiry_sweep(void **state)
{
    tu_fixture *f = *state;
    char k[32];
    kvs_stats st;

    use_test_clock(f);
    tu_fx_open(f);
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "exp-%03d", i);
        set_exp(f->db, k, "v", 1000010);
    }
    for (int i = 0; i < 10; i++) {
        snprintf(k, sizeof k, "keep-%03d", i);
        tu_set(f->db, k, "v");
    }
    assert_int_equal(tu_stats(f->db).expiring_keys, 100);
    atomic_store(&test_now, 1000010);
    wait_for_keys(f->db, 10);
    st = tu_stats(f->db);
    assert_int_equal(st.expired_keys, 100);
    assert_int_equal(st.expiring_keys, 0);
    tu_fx_reopen(f);
    assert_int_equal(tu_stats(f->db).keys, 10);
    assert_int_equal(tu_stats(f->db).expiring_keys, 0);

    /* the bound: 20 a second */
    assert_int_equal(kvs_close(f->db), 0);
    f->db = NULL;
    f->opt.expire_effort = 20;
    tu_fx_open(f);
    for (int i = 0; i < 200; i++) {
        snprintf(k, sizeof k, "slow-%03d", i);
        set_exp(f->db, k, "v", 1000020);
    }
    atomic_store(&test_now, 1000020);
    sleep(1);
    st = tu_stats(f->db);
    assert_true(st.expired_keys < 60);
    for (int i = 0; i < 500 && tu_stats(f->db).expired_keys == 0; i++)
        usleep(10000);
    assert_true(tu_stats(f->db).expired_keys > 0);
}

/* ---- versions and updates ---- */

static void test_versions(void **state)
{
    tu_fixture *f = *state;
    uint64_t seen[64];
    int n = 0;

    meta_of(f->db, "k", KVS_ENOTFOUND);
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 8; i++) {
            tu_set(f->db, i % 2 ? "k" : "j", "v");
            seen[n++] = meta_of(f->db, i % 2 ? "k" : "j", 0).version;
        }
        assert_int_equal(kvs_remove(f->db, "k", 1), 0);
        assert_int_equal(meta_of(f->db, "k", KVS_ENOTFOUND).version, 0);
        tu_fx_reopen(f); /* across a restart too, for the engines here */
    }
    for (int i = 0; i < n; i++) {
        assert_true(seen[i] != 0);
        for (int j = 0; j < i; j++)
            assert_true(seen[i] != seen[j]);
    }
}

/* An update that appends ctx's string to the value, noting what it saw. */
typedef struct append_ctx {
    const char *suffix;
    char buf[64];
    int saw_found;
    char saw[64];
    int type; /* what to write: KVS_OP_SET (the append), _REMOVE or _NONE */
    int rc;   /* what to return */
} append_ctx;

static int append_fn(void *ctx, const kvs_cur *cur, kvs_update_out *out)
{
    append_ctx *a = ctx;

    a->saw_found = cur->found;
    snprintf(a->saw, sizeof a->saw, "%.*s", (int)cur->vlen, cur->val ? (const char *)cur->val : "");
    if (a->rc < 0)
        return a->rc;
    snprintf(a->buf, sizeof a->buf, "%s%s", a->saw, a->suffix);
    out->type = a->type;
    if (a->type == KVS_OP_SET) {
        out->val = a->buf;
        out->vlen = strlen(a->buf);
    }
    return 0;
}

static kvs_op update_op(const char *key, append_ctx *a)
{
    return (kvs_op){.type = KVS_OP_UPDATE, .key = key, .klen = strlen(key), .update = append_fn,
                    .update_ctx = a};
}

static kvs_op set_op(const char *key, const char *val)
{
    return (kvs_op){.type = KVS_OP_SET, .key = key, .klen = strlen(key), .val = val,
                    .vlen = strlen(val)};
}

static void test_update_sees_batch(void **state)
{
    tu_fixture *f = *state;
    append_ctx a = {.suffix = "x", .type = KVS_OP_SET}, b = {.suffix = "y", .type = KVS_OP_SET};
    append_ctx r = {.type = KVS_OP_REMOVE}, none = {.type = KVS_OP_NONE};
    kvs_op ops[4];

    ops[0] = set_op("k", "1");
    ops[1] = update_op("k", &a);
    ops[2] = update_op("k", &b);
    ops[3] = update_op("absent", &none);
    assert_int_equal(kvs_write(f->db, ops, 4), 0);
    assert_int_equal(a.saw_found, 1);
    assert_string_equal(a.saw, "1");
    assert_string_equal(b.saw, "1x");
    assert_int_equal(none.saw_found, 0);
    tu_assert_value(f->db, "k", "1xy");
    tu_assert_value(f->db, "absent", NULL);

    ops[0] = update_op("k", &r);
    ops[1] = update_op("k", &a);
    assert_int_equal(kvs_write(f->db, ops, 2), 0);
    assert_int_equal(a.saw_found, 0); /* removed by the op before */
    tu_assert_value(f->db, "k", "x");

    /* an expired key is absent to an update */
    use_test_clock(f);
    f->opt.expire_effort = 0;
    tu_fx_reopen(f);
    set_exp(f->db, "e", "old", 1000001);
    atomic_store(&test_now, 1000001);
    ops[0] = update_op("e", &a);
    assert_int_equal(kvs_write(f->db, ops, 1), 0);
    assert_int_equal(a.saw_found, 0);
    tu_assert_value(f->db, "e", "x");
    assert_int_equal(meta_of(f->db, "e", 0).expire_ms, 0);
}

static void test_update_conflict(void **state)
{
    tu_fixture *f = *state;
    append_ctx c = {.rc = KVS_ECONFLICT}, bad = {.rc = KVS_EINVAL};
    kvs_op ops[6];

    ops[0] = set_op("before", "1"); /* a group of its own */
    ops[1] = update_op("w", &c);    /* a group: [w, a, b] */
    ops[1].flags = KVS_OP_WITH_NEXT;
    ops[2] = set_op("a", "2");
    ops[2].flags = KVS_OP_WITH_NEXT;
    ops[3] = set_op("b", "3");
    ops[4] = update_op("z", &bad); /* a group: [z, c]: an error that is not a conflict */
    ops[4].flags = KVS_OP_WITH_NEXT;
    ops[5] = set_op("c", "4");
    assert_int_equal(kvs_write(f->db, ops, 6), KVS_ECONFLICT);
    assert_int_equal(ops[0].rc, 0);
    assert_int_equal(ops[1].rc, KVS_ECONFLICT);
    assert_int_equal(ops[2].rc, KVS_ECONFLICT);
    assert_int_equal(ops[3].rc, KVS_ECONFLICT);
    assert_int_equal(ops[4].rc, KVS_EINVAL);
    assert_int_equal(ops[5].rc, 0);
    tu_assert_value(f->db, "before", "1");
    tu_assert_value(f->db, "w", NULL);
    tu_assert_value(f->db, "a", NULL);
    tu_assert_value(f->db, "b", NULL);
    tu_assert_value(f->db, "z", NULL);
    tu_assert_value(f->db, "c", "4");
}

/* INCR as an update: the value is a decimal count. */
static int incr_fn(void *ctx, const kvs_cur *cur, kvs_update_out *out)
{
    char *buf = ctx; /* 32 bytes, the thread's own */
    long long v = 0;

    if (cur->found) {
        char tmp[32];
        assert_true(cur->vlen < sizeof tmp);
        memcpy(tmp, cur->val, cur->vlen);
        tmp[cur->vlen] = '\0';
        v = atoll(tmp);
    }
    out->type = KVS_OP_SET;
    out->val = buf;
    out->vlen = (size_t)snprintf(buf, 32, "%lld", v + 1);
    return 0;
}

#define INCR_THREADS 8
#define INCR_EACH 500

static void *incr_thread(void *arg)
{
    kvs_t *db = arg;
    char buf[2][32]; /* one an op: a value must stay valid until kvs_write returns */

    for (int i = 0; i < INCR_EACH; i++) {
        kvs_op ops[2] = {
            {.type = KVS_OP_UPDATE, .key = "n", .klen = 1, .update = incr_fn,
             .update_ctx = buf[0], .flags = KVS_OP_WITH_NEXT},
            {.type = KVS_OP_UPDATE, .key = "m", .klen = 1, .update = incr_fn,
             .update_ctx = buf[1]},
        };
        if (kvs_write(db, ops, i % 2 ? 2 : 1) != 0)
            return (void *)1;
    }
    return NULL;
}

static void test_update_threads(void **state)
{
    tu_fixture *f = *state;
    pthread_t t[INCR_THREADS];
    char want[32];
    void *ret;

    for (int i = 0; i < INCR_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, incr_thread, f->db), 0);
    for (int i = 0; i < INCR_THREADS; i++) {
        assert_int_equal(pthread_join(t[i], &ret), 0);
        assert_null(ret);
    }
    snprintf(want, sizeof want, "%d", INCR_THREADS * INCR_EACH);
    tu_assert_value(f->db, "n", want);
    snprintf(want, sizeof want, "%d", INCR_THREADS * INCR_EACH / 2);
    tu_assert_value(f->db, "m", want);
}

/* ---- scans ---- */

#define SHORT_KEYS 200
#define LONG_KEYS 20
#define COMMON_KEYS 300

/* The keys of scan_all: short ones, long ones (hashed by the lmdb engine), and many that share
 * a prefix longer than anything a cursor could hold. */
static void fill_keys(kvs_t *db, tally *t)
{
    char k[64];

    tally_init(t, SHORT_KEYS + LONG_KEYS + COMMON_KEYS);
    for (int i = 0; i < SHORT_KEYS; i++) {
        snprintf(k, sizeof k, "s%d", i);
        tu_set(db, k, k);
        tally_add(t, k, strlen(k));
    }
    for (int i = 0; i < LONG_KEYS; i++) {
        unsigned char *lk = tu_filled(600 + (size_t)i, (unsigned)i);
        tu_set_bin(db, lk, 600 + (size_t)i, "long", 4);
        tally_add(t, lk, 600 + (size_t)i);
        free(lk);
    }
    for (int i = 0; i < COMMON_KEYS; i++) {
        snprintf(k, sizeof k, "common-prefix-of-20-%04d", i);
        tu_set(db, k, "c");
        tally_add(t, k, strlen(k));
    }
}

static void test_scan_all(void **state)
{
    tu_fixture *f = *state;
    const size_t counts[] = {1, 7, 1000};
    kvs_iter *it;
    tally t;
    int rc;

    fill_keys(f->db, &t);
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        size_t steps = scan_all(f->db, counts[c], &t);
        for (size_t i = 0; i < t.n; i++)
            if (t.seen[i] != 1)
                fail_msg("count %zu: key %zu (%zu bytes) seen %d times", counts[c], i,
                         t.klens[i], t.seen[i]);
        assert_int_equal(t.calls, t.n);
        assert_true(steps <= t.n + 1);
    }
    memset(t.seen, 0, t.n * sizeof *t.seen);
    assert_int_equal(kvs_iter_begin(f->db, &it), 0);
    while ((rc = kvs_iter_next(it, tally_fn, &t)) == 1)
        ;
    assert_int_equal(rc, 0);
    kvs_iter_end(it);
    for (size_t i = 0; i < t.n; i++)
        assert_int_equal(t.seen[i], 1);
    tally_free(&t);
}

typedef struct churn {
    kvs_t *db;
    atomic_int stop;
} churn;

/* Add and remove keys all over the key order until told to stop. */
static void *churn_thread(void *arg)
{
    churn *c = arg;
    char k[64];

    for (unsigned i = 0; !atomic_load(&c->stop); i++) {
        int n = snprintf(k, sizeof k, i % 3 ? "s%u-churn" : "common-prefix-of-20-%04u-x",
                         i % 500);
        kvs_op ops[2] = {set_op(k, "churn"), {.type = KVS_OP_REMOVE, .key = k, .klen = (size_t)n}};
        ops[0].klen = (size_t)n;
        if (kvs_write(c->db, ops, (i / 500) % 2 ? 2 : 1) < 0 && ops[0].rc < 0)
            return (void *)1;
    }
    return NULL;
}

static void test_scan_while_writing(void **state)
{
    tu_fixture *f = *state;
    churn c = {.db = f->db};
    pthread_t t;
    tally ty;
    void *ret;

    fill_keys(f->db, &ty);
    assert_int_equal(pthread_create(&t, NULL, churn_thread, &c), 0);
    for (int round = 0; round < 20; round++) {
        scan_all(f->db, (size_t)(1 + round * 3), &ty);
        for (size_t i = 0; i < ty.n; i++)
            if (ty.seen[i] < 1)
                fail_msg("round %d: key %zu (%zu bytes) present throughout, not seen", round, i,
                         ty.klens[i]);
    }
    atomic_store(&c.stop, 1);
    assert_int_equal(pthread_join(t, &ret), 0);
    assert_null(ret);
    tally_free(&ty);
}

/* ---- clear ---- */

static void test_clear(void **state)
{
    tu_fixture *f = *state;
    uint64_t v;
    tally t;

    for (int async = 0; async < 2; async++) {
        tu_set(f->db, "a", "1");
        set_exp(f->db, "b", "2", UINT64_MAX / 2);
        v = meta_of(f->db, "a", 0).version;
        assert_int_equal(kvs_clear(f->db, async), 0);
        if (async) /* it finishes in the background */
            wait_for_keys(f->db, 0);
        tu_assert_value(f->db, "a", NULL);
        tu_assert_value(f->db, "b", NULL);
        assert_int_equal(tu_stats(f->db).keys, 0);
        assert_int_equal(tu_stats(f->db).expiring_keys, 0);
        tally_init(&t, 1);
        scan_all(f->db, 10, &t);
        assert_int_equal(t.calls, 0);
        tally_free(&t);
        tu_set(f->db, "a", "3");
        assert_true(meta_of(f->db, "a", 0).version != v);
        tu_fx_reopen(f);
        tu_assert_value(f->db, "a", "3");
        assert_int_equal(tu_stats(f->db).keys, 1);
    }
}

int main(int argc, char **argv)
{
    const char *group = tu_engine_from_args(argc, argv);
    const struct CMUnitTest tests[] = {
        TU_CASE_CLOSED(test_expiry_clock),
        TU_CASE_CLOSED(test_expiry_sweep),
        TU_CASE_CLOSED(test_expiring_count),
        TU_CASE_OPEN(test_versions),
        TU_CASE_OPEN(test_update_sees_batch),
        TU_CASE_OPEN(test_update_conflict),
        TU_CASE_OPEN(test_update_threads),
        TU_CASE_OPEN(test_scan_all),
        TU_CASE_OPEN(test_scan_while_writing),
        TU_CASE_OPEN(test_clear),
    };
    return cmocka_run_group_tests_name(group, tests, NULL, NULL);
}
