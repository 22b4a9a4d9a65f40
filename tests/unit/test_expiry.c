/*
 * test_expiry.c — issue 13's library contract on the kvs engine (kvs.h): expiry times, update
 * ops (read-modify-write), groups as one unit across a crash, iteration with SCAN's guarantee,
 * kvs_clear.
 *
 * Expiry is tested with a clock the test moves (kvs_options.clock_ms): a key is there before its
 * time, absent from the moment it comes — for reads, scans and updates — across a reopen (from
 * the saved index and rebuilt from the log), across compaction (no older value comes back,
 * reopened either), and removed by the background sweep, counted. The concurrency cases (labelled
 * "concurrency": make test-tsan) increment one counter from several threads through update ops,
 * and scan or iterate while other threads write and the index grows.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/log/logdb.h"
#include "testutil.h"

/* ---- the clock the tests move ---- */

static uint64_t fake_now = 1000000;

static uint64_t fake_clock(void *ctx)
{
    (void)ctx;
    return __atomic_load_n(&fake_now, __ATOMIC_RELAXED);
}

static void clock_set(uint64_t ms)
{
    __atomic_store_n(&fake_now, ms, __ATOMIC_RELAXED);
}

static kvs_options clocked(void)
{
    kvs_options o;
    tu_options(&o);
    o.clock_ms = fake_clock;
    o.auto_compact = 0;
    return o;
}

static void set_exp(kvs_t *db, const char *key, const char *val, uint64_t expire_ms)
{
    kvs_op op = {.type = KVS_OP_SET, .key = key, .klen = strlen(key), .val = val,
                 .vlen = strlen(val), .expire_ms = expire_ms};
    assert_int_equal(kvs_write(db, &op, 1), 0);
}

static int ignore_value(void *ctx, const void *val, size_t vlen)
{
    (void)ctx, (void)val, (void)vlen;
    return 0;
}

static int count_entry(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                       const kvs_meta *meta)
{
    (void)key, (void)klen, (void)val, (void)vlen, (void)meta;
    ++*(size_t *)ctx;
    return 0;
}

static size_t scan_count(kvs_t *db)
{
    uint64_t cursor = 0;
    size_t n = 0;

    do
        assert_int_equal(kvs_scan(db, cursor, 100, count_entry, &n, &cursor), 0);
    while (cursor != 0);
    return n;
}

/* ---- expiry ---- */

static void test_expiry_reads(void **state)
{
    tu_fixture *f = *state;
    const char *dir = f->dir;
    kvs_options o = clocked();
    kvs_meta meta;
    clock_set(1000000);
    kvs_t *db = tu_open(dir, &o);

    set_exp(db, "gone", "v", 1000500);
    set_exp(db, "stays", "w", 0);
    assert_int_equal(kvs_read_meta(db, "gone", 4, ignore_value, NULL, &meta), 0);
    assert_int_equal(meta.expire_ms, 1000500);
    assert_true(meta.version > 0);
    assert_int_equal(kvs_read_meta(db, "stays", 5, ignore_value, NULL, &meta), 0);
    assert_int_equal(meta.expire_ms, 0);
    assert_int_equal(tu_stats(db).expiring_keys, 1);
    clock_set(1000499);
    tu_assert_value(db, "gone", "v");
    assert_int_equal(scan_count(db), 2);
    clock_set(1000500); /* expire_ms <= now: gone */
    tu_assert_value(db, "gone", NULL);
    assert_int_equal(kvs_read_meta(db, "gone", 4, ignore_value, NULL, &meta), KVS_ENOTFOUND);
    assert_int_equal(meta.version, 0);
    assert_int_equal(scan_count(db), 1);
    /* a remove of it finds it absent, and its tombstone takes it out */
    assert_int_equal(kvs_remove(db, "gone", 4), KVS_ENOTFOUND);
    assert_int_equal(tu_stats(db).keys, 1);
    assert_int_equal(tu_stats(db).expired_keys, 1);
    /* a set without expiry clears it; a write of an expired key replaces it */
    set_exp(db, "k", "1", 1000600);
    set_exp(db, "k", "2", 0);
    clock_set(2000000);
    tu_assert_value(db, "k", "2");
    f->db = db; /* closed by tu_teardown */
}

static void test_expiry_reopen(void **state)
{
    tu_fixture *f = *state;
    const char *dir = f->dir;
    kvs_options o = clocked();
    clock_set(1000000);
    kvs_t *db = tu_open(dir, &o);

    for (int i = 0; i < 50; i++) {
        char k[16];
        snprintf(k, sizeof k, "e%d", i);
        set_exp(db, k, "v", 1000000 + 100 + (uint64_t)i);
    }
    set_exp(db, "never", "n", 0);
    tu_reopen(&db, dir, &o); /* the saved index: the expiry bits come back with it */
    assert_int_equal(tu_stats(db).expiring_keys, 50);
    tu_assert_value(db, "e10", "v");
    clock_set(1000000 + 125); /* e0 .. e25 expired while the store was closed */
    tu_reopen_rebuilt(&db, dir, &o);
    assert_int_equal(tu_stats(db).expiring_keys, 50);
    tu_assert_value(db, "e25", NULL);
    tu_assert_value(db, "e26", "v");
    tu_assert_value(db, "never", "n");
    assert_int_equal(scan_count(db), 25);
    f->db = db; /* closed by tu_teardown */
}

/* The key's older value lies in a segment the compaction does not take: the expired record
 * must leave a tombstone, or that value comes back at the next open. */
static void test_expiry_compaction(void **state)
{
    tu_fixture *f = *state;
    const char *dir = f->dir;
    kvs_options o = clocked();
    o.segment_size = 4096;
    o.expire_effort = 0; /* compaction alone, no sweep before it */
    clock_set(1000000);
    kvs_t *db = tu_open(dir, &o);
    char fill[200];
    memset(fill, 'f', sizeof fill - 1);
    fill[sizeof fill - 1] = '\0';

    set_exp(db, "key", "old", 0);
    for (int i = 0; i < 40; i++) { /* several segments */
        char k[16];
        snprintf(k, sizeof k, "fill%d", i);
        tu_set(db, k, fill);
    }
    set_exp(db, "key", "new", 1000100);
    set_exp(db, "gone", "x", 1000100);
    for (int i = 0; i < 40; i++) { /* overwritten: dead bytes in the later segments */
        char k[16];
        snprintf(k, sizeof k, "fill%d", i);
        tu_set(db, k, fill);
    }
    clock_set(1000200);
    /* the segments after the first, not the one holding "old" */
    logdb *ldb = kvs_engine_impl(db);
    seg *v[64];
    uint32_t n = 0;
    for (uint32_t i = 1; i < ldb->nsegs && n < 64; i++)
        if (ldb->segs[i]->sealed && ldb->segs[i] != ldb->active)
            v[n++] = ldb->segs[i];
    assert_true(n > 0);
    assert_true(ldb_compact_segments(ldb, v, n) >= 0);
    tu_assert_value(db, "key", NULL);
    tu_assert_value(db, "gone", NULL);
    assert_true(tu_stats(db).expired_keys >= 2);
    assert_int_equal(tu_stats(db).expiring_keys, 0);
    tu_reopen_rebuilt(&db, dir, &o);
    tu_assert_value(db, "key", NULL); /* not "old" */
    tu_assert_value(db, "gone", NULL);
    assert_true(kvs_compact(db) >= 0);
    tu_reopen_rebuilt(&db, dir, &o);
    tu_assert_value(db, "key", NULL);
    tu_assert_value(db, "fill3", fill);
    f->db = db; /* closed by tu_teardown */
}

static void test_expiry_sweep(void **state)
{
    tu_fixture *f = *state;
    const char *dir = f->dir;
    kvs_options o = clocked();
    o.expire_effort = 1000000;
    clock_set(1000000);
    kvs_t *db = tu_open(dir, &o);

    for (int i = 0; i < 300; i++) {
        char k[16];
        snprintf(k, sizeof k, "s%d", i);
        set_exp(db, k, "v", i < 200 ? 1000100 : 0);
    }
    assert_int_equal(tu_stats(db).expiring_keys, 200);
    clock_set(1000100);
    kvs_stats st = tu_stats(db);
    for (int t = 0; t < 100 && st.keys > 100; t++) { /* the maintenance thread ticks each second */
        usleep(100000);
        st = tu_stats(db);
    }
    assert_int_equal(st.keys, 100);
    assert_int_equal(st.expired_keys, 200);
    assert_int_equal(st.expiring_keys, 0);
    tu_assert_value(db, "s250", "v");
    f->db = db; /* closed by tu_teardown */
}

/* ---- update ops ---- */

/* Add one to the decimal counter (absent: 0). */
static int incr(void *ctx, const kvs_cur *cur, kvs_update_out *out)
{
    char *buf = ctx; /* 32 bytes, the op's own: valid until kvs_write returns */
    char tmp[32];
    long v = 0;

    if (cur->found) {
        assert_true(cur->vlen < sizeof tmp);
        memcpy(tmp, cur->val, cur->vlen);
        tmp[cur->vlen] = '\0';
        v = strtol(tmp, NULL, 10);
    }
    out->type = KVS_OP_SET;
    out->val = buf;
    out->vlen = (size_t)snprintf(buf, 32, "%ld", v + 1);
    return 0;
}

static void do_incr(kvs_t *db, const char *key)
{
    char buf[32];
    kvs_op op = {.type = KVS_OP_UPDATE, .key = key, .klen = strlen(key), .update = incr,
                 .update_ctx = buf};
    assert_int_equal(kvs_write(db, &op, 1), 0);
}

#define INCR_THREADS 4
#define INCR_EACH 400

static void *incr_thread(void *arg)
{
    for (int i = 0; i < INCR_EACH; i++)
        do_incr(arg, "counter");
    return NULL;
}

static void test_update_concurrent_increments(void **state)
{
    tu_fixture *f = *state;
    const char *dir = f->dir;
    kvs_options o = clocked();
    kvs_t *db = tu_open(dir, &o);
    pthread_t th[INCR_THREADS];
    char want[32];

    for (int i = 0; i < INCR_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, incr_thread, db), 0);
    for (int i = 0; i < INCR_THREADS; i++)
        pthread_join(th[i], NULL);
    snprintf(want, sizeof want, "%d", INCR_THREADS * INCR_EACH);
    tu_assert_value(db, "counter", want);
    tu_reopen_rebuilt(&db, dir, &o);
    tu_assert_value(db, "counter", want);
    f->db = db; /* closed by tu_teardown */
}

/* What an update saw, for the test to look at. */
typedef struct look_state {
    int found;
    char val[32];
    kvs_meta meta;
    int ret;      /* what to return */
    int out_type; /* what to ask for */
} look_state;

static int look(void *ctx, const kvs_cur *cur, kvs_update_out *out)
{
    look_state *s = ctx;
    s->found = cur->found;
    snprintf(s->val, sizeof s->val, "%.*s", (int)cur->vlen, cur->val ? (const char *)cur->val : "");
    s->meta = cur->meta;
    out->type = s->out_type;
    return s->ret;
}

static void test_update_sees_batch(void **state)
{
    tu_fixture *f = *state;
    const char *dir = f->dir;
    kvs_options o = clocked();
    kvs_t *db = tu_open(dir, &o);
    look_state a = {.out_type = KVS_OP_NONE}, b = {.out_type = KVS_OP_REMOVE},
         c = {.out_type = KVS_OP_NONE};
    char buf[32];

    tu_set(db, "k", "0");
    kvs_op ops[] = {
        {.type = KVS_OP_SET, .key = "k", .klen = 1, .val = "1", .vlen = 1},
        {.type = KVS_OP_UPDATE, .key = "k", .klen = 1, .update = look, .update_ctx = &a},
        {.type = KVS_OP_UPDATE, .key = "k", .klen = 1, .update = incr, .update_ctx = buf},
        {.type = KVS_OP_UPDATE, .key = "k", .klen = 1, .update = look, .update_ctx = &b,
         .flags = KVS_OP_WITH_NEXT}, /* a group: the update sees its group's own ops */
        {.type = KVS_OP_UPDATE, .key = "k", .klen = 1, .update = look, .update_ctx = &c},
    };
    assert_int_equal(kvs_write(db, ops, 5), 0);
    assert_true(a.found);
    assert_string_equal(a.val, "1");
    assert_true(b.found);
    assert_string_equal(b.val, "2");
    assert_true(b.meta.version > a.meta.version);
    assert_false(c.found); /* b removed it */
    tu_assert_value(db, "k", NULL);
    f->db = db; /* closed by tu_teardown */
}

static void test_update_conflict_refuses_group(void **state)
{
    tu_fixture *f = *state;
    const char *dir = f->dir;
    kvs_options o = clocked();
    kvs_t *db = tu_open(dir, &o);
    look_state watch = {.ret = KVS_ECONFLICT, .out_type = KVS_OP_SET};

    kvs_op ops[] = {
        {.type = KVS_OP_SET, .key = "before", .klen = 6, .val = "1", .vlen = 1,
         .flags = KVS_OP_WITH_NEXT},
        {.type = KVS_OP_UPDATE, .key = "w", .klen = 1, .update = look, .update_ctx = &watch,
         .flags = KVS_OP_WITH_NEXT},
        {.type = KVS_OP_SET, .key = "a", .klen = 1, .val = "1", .vlen = 1,
         .flags = KVS_OP_WITH_NEXT},
        {.type = KVS_OP_REMOVE, .key = "before", .klen = 6},
        {.type = KVS_OP_SET, .key = "other", .klen = 5, .val = "1", .vlen = 1},
    };
    assert_int_equal(kvs_write(db, ops, 5), KVS_ECONFLICT);
    assert_int_equal(ops[0].rc, 0);
    assert_int_equal(ops[1].rc, KVS_ECONFLICT);
    assert_int_equal(ops[2].rc, KVS_ECONFLICT);
    assert_int_equal(ops[3].rc, KVS_ECONFLICT);
    assert_int_equal(ops[4].rc, 0);
    tu_assert_value(db, "before", "1");
    tu_assert_value(db, "a", NULL);
    tu_assert_value(db, "other", "1");
    tu_assert_value(db, "w", NULL);
    f->db = db; /* closed by tu_teardown */
}

/* At the index's budget an update that would set a new key gets KVS_EFULL, as a set would,
 * and one of a key already there goes on. */
static void test_update_budget_edge(void **state)
{
    tu_fixture *f = *state;
    const char *dir = f->dir;
    kvs_options o = clocked();
    o.max_index_memory = 1u << 20;
    kvs_t *db = tu_open(dir, &o);
    char buf[32], k[32];
    int i, rc = 0;

    for (i = 0; rc == 0; i++) {
        snprintf(k, sizeof k, "k%d", i);
        kvs_op op = {.type = KVS_OP_SET, .key = k, .klen = strlen(k), .val = "v", .vlen = 1};
        rc = kvs_write(db, &op, 1);
    }
    assert_int_equal(rc, KVS_EFULL);
    kvs_op up = {.type = KVS_OP_UPDATE, .key = "new", .klen = 3, .update = incr,
                 .update_ctx = buf};
    assert_int_equal(kvs_write(db, &up, 1), KVS_EFULL);
    tu_assert_value(db, "new", NULL);
    up.key = "k0";
    up.klen = 2;
    assert_int_equal(kvs_write(db, &up, 1), 0);
    /* the removal of a key makes room for exactly one */
    assert_int_equal(kvs_remove(db, "k1", 2), 0);
    up.key = "new";
    up.klen = 3;
    assert_int_equal(kvs_write(db, &up, 1), 0);
    tu_assert_value(db, "new", "1");
    f->db = db; /* closed by tu_teardown */
}

/* ---- groups across a crash ---- */

/* The newest segment file of dir. */
static char *active_segment(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char best[64] = "";

    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (strlen(e->d_name) < sizeof best && strstr(e->d_name, ".log") &&
            strcmp(e->d_name, best) > 0)
            strcpy(best, e->d_name);
    closedir(d);
    assert_true(best[0]);
    return strdup(tu_path(dir, best));
}

/* Write "a" alone, then the group b, c, d (each record 35 bytes), close, cut the active
 * segment keep bytes after its header, and reopen rebuilding the index. */
static kvs_t *group_then_cut(const char *dir, kvs_options *o, int64_t keep)
{
    kvs_t *db = tu_open(dir, o);
    kvs_op ops[] = {
        {.type = KVS_OP_SET, .key = "a", .klen = 1, .val = "1", .vlen = 1},
        {.type = KVS_OP_SET, .key = "b", .klen = 1, .val = "2", .vlen = 1,
         .flags = KVS_OP_WITH_NEXT},
        {.type = KVS_OP_SET, .key = "c", .klen = 1, .val = "3", .vlen = 1,
         .flags = KVS_OP_WITH_NEXT},
        {.type = KVS_OP_SET, .key = "d", .klen = 1, .val = "4", .vlen = 1},
    };
    assert_int_equal(kvs_write(db, ops, 4), 0);
    assert_int_equal(kvs_close(db), 0);
    char *path = active_segment(dir);
    assert_int_equal(tu_file_size(path), SEG_HDR + 4 * 35);
    assert_int_equal(truncate(path, SEG_HDR + keep), 0);
    free(path);
    assert_int_equal(unlink(tu_path(dir, "INDEX")), 0);
    tu_log_capture(KVS_LOG_WARN);
    db = tu_open(dir, o);
    return db;
}

static void test_group_torn_at_tail(void **state)
{
    (void)state;
    for (int64_t keep = 35 + 35; keep <= 35 + 70; keep += 35) { /* cut after b, after c */
        char *dir = tu_mkdtemp();
        kvs_options o = clocked();
        kvs_t *db = group_then_cut(dir, &o, keep);
        assert_non_null(strstr(tu_log_text(), "torn tail"));
        tu_log_release();
        tu_assert_value(db, "a", "1");
        tu_assert_value(db, "b", NULL);
        tu_assert_value(db, "c", NULL);
        tu_assert_value(db, "d", NULL);
        /* the store goes on after the cut */
        tu_set(db, "e", "5");
        tu_reopen_rebuilt(&db, dir, &o);
        tu_assert_value(db, "e", "5");
        tu_assert_value(db, "b", NULL);
        kvs_close(db);
        tu_rm_rf(dir);
        free(dir);
    }
}

static void test_group_complete_kept(void **state)
{
    tu_fixture *f = *state;
    const char *dir = f->dir;
    kvs_options o = clocked();
    kvs_t *db = group_then_cut(dir, &o, 4 * 35);
    assert_null(strstr(tu_log_text(), "torn tail"));
    tu_log_release();
    tu_assert_value(db, "a", "1");
    tu_assert_value(db, "b", "2");
    tu_assert_value(db, "c", "3");
    tu_assert_value(db, "d", "4");
    f->db = db; /* closed by tu_teardown */
}

/* A group never straddles a rotation: with segments of 4 KiB, groups of 10 records of 300 bytes
 * each land whole in one segment; compacted, they read the same. */
static void test_group_in_one_segment(void **state)
{
    tu_fixture *f = *state;
    const char *dir = f->dir;
    kvs_options o = clocked();
    o.segment_size = 4096;
    kvs_t *db = tu_open(dir, &o);
    char val[260], keys[10][16];
    kvs_op ops[10];
    memset(val, 'x', sizeof val);

    for (int g = 0; g < 20; g++) {
        for (int i = 0; i < 10; i++) {
            snprintf(keys[i], sizeof keys[i], "g%02d-%d", g, i);
            ops[i] = (kvs_op){.type = KVS_OP_SET, .key = keys[i], .klen = strlen(keys[i]),
                              .val = val, .vlen = sizeof val, .flags = i < 9 ? KVS_OP_WITH_NEXT : 0};
        }
        assert_int_equal(kvs_write(db, ops, 10), 0);
    }
    /* every segment begins with the first record of a group: a whole number of groups */
    logdb *ldb = kvs_engine_impl(db);
    for (uint32_t i = 0; i < ldb->nsegs; i++)
        assert_int_equal((ldb->segs[i]->size - SEG_HDR) % (10 * rec_len(5, sizeof val)), 0);
    assert_true(ldb->nsegs > 5);
    tu_reopen_rebuilt(&db, dir, &o);
    assert_int_equal(scan_count(db), 200);
    f->db = db; /* closed by tu_teardown */
}

/* ---- scan and iteration ---- */

#define BASE_KEYS 3000

typedef struct writer_arg {
    kvs_t *db;
    int stop;
} writer_arg;

/* Adds new keys (the index grows) and removes them again, and overwrites the base keys. */
static void *writer(void *arg)
{
    writer_arg *w = arg;
    char k[32];

    for (int i = 0; !__atomic_load_n(&w->stop, __ATOMIC_RELAXED); i++) {
        snprintf(k, sizeof k, "new-%d", i);
        tu_set(w->db, k, "n");
        if (i % 3 == 0)
            assert_int_equal(kvs_remove(w->db, k, strlen(k)), 0);
        snprintf(k, sizeof k, "base-%d", i % BASE_KEYS);
        tu_set(w->db, k, "b2");
    }
    return NULL;
}

static void writer_start(writer_arg *w, pthread_t *th, kvs_t *db)
{
    *w = (writer_arg){db, 0};
    assert_int_equal(pthread_create(th, NULL, writer, w), 0);
}

static void writer_stop(writer_arg *w, pthread_t th)
{
    __atomic_store_n(&w->stop, 1, __ATOMIC_RELAXED);
    pthread_join(th, NULL);
}

static int mark_base(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                     const kvs_meta *meta)
{
    unsigned char *seen = ctx;
    char k[32];
    (void)val, (void)meta;

    assert_true(vlen == 1 || vlen == 2);
    if (klen < 5 || klen >= sizeof k || memcmp(key, "base-", 5) != 0)
        return 0;
    memcpy(k, key, klen);
    k[klen] = '\0';
    seen[atoi(k + 5)] = 1;
    return 0;
}

static void fill_base(kvs_t *db)
{
    char k[32];
    for (int i = 0; i < BASE_KEYS; i++) {
        snprintf(k, sizeof k, "base-%d", i);
        tu_set(db, k, "b");
    }
}

static void assert_all_seen(const unsigned char *seen)
{
    for (int i = 0; i < BASE_KEYS; i++)
        if (!seen[i])
            fail_msg("base-%d, present throughout, was not visited", i);
}

static void test_scan_while_growing(void **state)
{
    tu_fixture *f = *state;
    const char *dir = f->dir;
    kvs_options o = clocked();
    kvs_t *db = tu_open(dir, &o);
    unsigned char seen[BASE_KEYS] = {0};
    writer_arg w;
    pthread_t th;
    uint64_t cursor = 0;

    fill_base(db);
    writer_start(&w, &th, db);
    do {
        assert_int_equal(kvs_scan(db, cursor, 20, mark_base, seen, &cursor), 0);
        usleep(200); /* let the writer grow the index between steps */
    } while (cursor != 0);
    writer_stop(&w, th);
    assert_all_seen(seen);
    f->db = db; /* closed by tu_teardown */
}

static void test_iter(void **state)
{
    tu_fixture *f = *state;
    const char *dir = f->dir;
    kvs_options o = clocked();
    kvs_t *db = tu_open(dir, &o);
    unsigned char seen[BASE_KEYS] = {0};
    writer_arg w;
    pthread_t th;
    kvs_iter *it;
    size_t n = 0;
    int rc;

    assert_int_equal(kvs_iter_begin(db, &it), 0); /* empty */
    assert_int_equal(kvs_iter_next(it, count_entry, &n), 0);
    kvs_iter_end(it);
    fill_base(db);
    assert_int_equal(kvs_iter_begin(db, &it), 0);
    while ((rc = kvs_iter_next(it, count_entry, &n)) == 1)
        ;
    assert_int_equal(rc, 0);
    assert_int_equal(n, BASE_KEYS);
    kvs_iter_end(it);

    writer_start(&w, &th, db);
    assert_int_equal(kvs_iter_begin(db, &it), 0);
    while ((rc = kvs_iter_next(it, mark_base, seen)) == 1)
        ;
    assert_int_equal(rc, 0);
    kvs_iter_end(it);
    writer_stop(&w, th);
    assert_all_seen(seen);
    f->db = db; /* closed by tu_teardown */
}

/* ---- clear ---- */

static void test_clear_sync(void **state)
{
    tu_fixture *f = *state;
    const char *dir = f->dir;
    kvs_options o = clocked();
    kvs_t *db = tu_open(dir, &o);

    assert_int_equal(tu_put_keys(db, 5000), 0);
    assert_int_equal(kvs_clear(db, 0), 0);
    assert_int_equal(tu_stats(db).keys, 0);
    assert_int_equal(scan_count(db), 0);
    tu_reopen_rebuilt(&db, dir, &o);
    assert_int_equal(tu_stats(db).keys, 0);
    tu_set(db, "after", "1");
    tu_assert_value(db, "after", "1");
    f->db = db; /* closed by tu_teardown */
}

static void test_clear_async(void **state)
{
    tu_fixture *f = *state;
    const char *dir = f->dir;
    kvs_options o = clocked();
    kvs_t *db = tu_open(dir, &o);

    assert_int_equal(tu_put_keys(db, 5000), 0);
    assert_int_equal(kvs_clear(db, 1), 0);
    tu_set(db, "after", "1"); /* written after the call: stays */
    tu_set(db, "key-000007", "again");
    kvs_stats st = tu_stats(db);
    for (int t = 0; t < 100 && st.keys > 2; t++) {
        usleep(100000);
        st = tu_stats(db);
    }
    assert_int_equal(st.keys, 2);
    tu_assert_value(db, "after", "1");
    tu_assert_value(db, "key-000007", "again");
    tu_assert_value(db, "key-000008", NULL);
    f->db = db; /* closed by tu_teardown */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_CASE_CLOSED(test_expiry_reads),
        TU_CASE_CLOSED(test_expiry_reopen),
        TU_CASE_CLOSED(test_expiry_compaction),
        TU_CASE_CLOSED(test_expiry_sweep),
        TU_CASE_CLOSED(test_update_concurrent_increments),
        TU_CASE_CLOSED(test_update_sees_batch),
        TU_CASE_CLOSED(test_update_conflict_refuses_group),
        TU_CASE_CLOSED(test_update_budget_edge),
        cmocka_unit_test(test_group_torn_at_tail),
        TU_CASE_CLOSED(test_group_complete_kept),
        TU_CASE_CLOSED(test_group_in_one_segment),
        TU_CASE_CLOSED(test_scan_while_growing),
        TU_CASE_CLOSED(test_iter),
        TU_CASE_CLOSED(test_clear_sync),
        TU_CASE_CLOSED(test_clear_async),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
