/*
 * test_durable.c — positions (kvs.h "Positions"): kvs_write_pos, kvs_durable, kvs_wait_durable,
 * kvs_sync_soon and the on_durable callback, on both engines.
 *
 *   - always: kvs_write_pos returns while the sync that covers it is still running (the kvs
 *     engine's sync delayed by its test hook); the value is visible at once; the durable position
 *     reaches the write's position only once a sync covered it, and kvs_write returns only then;
 *   - positions only grow, and an empty kvs_write_pos gives the position of what is applied;
 *   - everysec and never: kvs_wait_durable asks for a sync rather than waiting for a tick, and
 *     returns with the position durable; a timeout shorter than the sync is KVS_ETIMEDOUT;
 *   - many writers under always share syncs (fewer syncs than writes), every kvs_write returns
 *     with its position durable, and on_durable was called;
 *   - a failed sync (the fence) wakes a waiter with KVS_ESYNC, and the durable position stays;
 *   - always with sync_on_request: applied batches wait for kvs_sync_soon, and one sync then
 *     covers all of them; kvs_write and kvs_wait_durable ask for their own.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/log/logdb.h"
#include "testutil.h"
#include "util/io.h"

static bool is_kvs(void)
{
    return strcmp(tu_engine, "kvs") == 0;
}

static uint64_t durable_now(kvs_t *db)
{
    uint64_t pos = 0;
    assert_int_equal(kvs_durable(db, &pos), 0);
    return pos;
}

static int callbacks;
static void count_callback(void *ctx)
{
    (void)ctx;
    __atomic_add_fetch(&callbacks, 1, __ATOMIC_RELAXED);
}

static void test_always_visible_before_durable(void **state)
{
    tu_fixture *f = *state;
    kvs_op op = {.type = KVS_OP_SET, .key = "k", .klen = 1, .val = "v1", .vlen = 2};
    uint64_t pos = 0, before = 0;

    f->opt.sync = KVS_SYNC_ALWAYS;
    f->opt.on_durable = count_callback;
    tu_fx_open(f);
    callbacks = 0;
    assert_int_equal(kvs_write_pos(f->db, NULL, 0, &before), 0);
    if (is_kvs())
        kvs_test_sync_delay_us = 300000; /* the sync of this write takes 0.3 s */
    assert_int_equal(kvs_write_pos(f->db, &op, 1, &pos), 0);
    assert_int_equal(op.rc, 0);
    assert_true(pos > before);
    tu_assert_value(f->db, "k", "v1"); /* visible before it is durable */
    if (is_kvs()) /* the lmdb engine's writes are durable when they return */
        assert_true(durable_now(f->db) < pos);
    assert_int_equal(kvs_wait_durable(f->db, pos, -1), 0);
    assert_true(durable_now(f->db) >= pos);
    /* called right after the waiters are woken, on the syncing thread: give it a moment */
    for (int i = 0; i < 5000 && is_kvs() && __atomic_load_n(&callbacks, __ATOMIC_RELAXED) == 0; i++)
        usleep(1000);
    assert_true(__atomic_load_n(&callbacks, __ATOMIC_RELAXED) >= (is_kvs() ? 1 : 0));
    /* kvs_write returns only once durable */
    kvs_op op2 = {.type = KVS_OP_SET, .key = "k", .klen = 1, .val = "v2", .vlen = 2};
    assert_int_equal(kvs_write(f->db, &op2, 1), 0);
    uint64_t after = 0;
    assert_int_equal(kvs_write_pos(f->db, NULL, 0, &after), 0);
    assert_true(after > pos);
    assert_true(durable_now(f->db) >= after);
    kvs_test_sync_delay_us = 0;
}

static void test_always_sync_on_request(void **state)
{
    tu_fixture *f = *state;
    kvs_op a = {.type = KVS_OP_SET, .key = "a", .klen = 1, .val = "1", .vlen = 1};
    kvs_op b = {.type = KVS_OP_SET, .key = "b", .klen = 1, .val = "2", .vlen = 1};
    uint64_t pa = 0, pb = 0;

    f->opt.sync = KVS_SYNC_ALWAYS;
    f->opt.sync_on_request = 1;
    tu_fx_open(f);
    assert_int_equal(kvs_write_pos(f->db, &a, 1, &pa), 0);
    uint64_t syncs = tu_stats(f->db).syncs;
    assert_int_equal(kvs_write_pos(f->db, &b, 1, &pb), 0);
    assert_true(pb > pa);
    usleep(100000);
    if (!is_kvs()) { /* lmdb: durable when applied, the option means nothing to it */
        assert_true(durable_now(f->db) >= pb);
        return;
    }
    assert_true(durable_now(f->db) < pa); /* no sync of its own accord */
    assert_int_equal(tu_stats(f->db).syncs, syncs);
    tu_assert_value(f->db, "b", "2");
    assert_int_equal(kvs_sync_soon(f->db), 0);
    assert_int_equal(kvs_wait_durable(f->db, pb, 10000), 0);
    assert_int_equal(tu_stats(f->db).syncs, syncs + 1); /* one sync for both */
    /* a wait asks for its sync; so does kvs_write, which returns durable */
    assert_int_equal(kvs_write_pos(f->db, &a, 1, &pa), 0);
    assert_int_equal(kvs_wait_durable(f->db, pa, 10000), 0);
    assert_int_equal(kvs_write(f->db, &b, 1), 0);
    assert_int_equal(kvs_write_pos(f->db, NULL, 0, &pb), 0);
    assert_true(durable_now(f->db) >= pb);
}

static void wait_asks_for_a_sync(tu_fixture *f, kvs_sync mode)
{
    kvs_op op = {.type = KVS_OP_SET, .key = "a", .klen = 1, .val = "x", .vlen = 1};
    uint64_t pos = 0;

    f->opt.sync = mode;
    tu_fx_open(f);
    assert_int_equal(kvs_write_pos(f->db, &op, 1, &pos), 0);
    uint64_t syncs = tu_stats(f->db).syncs;
    /* everysec's tick is a second away, never's never comes: the wait asks for the sync */
    assert_int_equal(kvs_wait_durable(f->db, pos, 10000), 0);
    assert_true(durable_now(f->db) >= pos);
    if (is_kvs())
        assert_true(tu_stats(f->db).syncs > syncs);
    /* the same position again: at once */
    assert_int_equal(kvs_wait_durable(f->db, pos, 0), 0);
    if (is_kvs()) { /* a sync slower than the wait's limit */
        kvs_op op2 = {.type = KVS_OP_SET, .key = "b", .klen = 1, .val = "y", .vlen = 1};
        assert_int_equal(kvs_write_pos(f->db, &op2, 1, &pos), 0);
        kvs_test_sync_delay_us = 400000;
        assert_int_equal(kvs_wait_durable(f->db, pos, 20), KVS_ETIMEDOUT);
        assert_int_equal(kvs_wait_durable(f->db, pos, -1), 0);
        kvs_test_sync_delay_us = 0;
    }
    assert_int_equal(kvs_sync_soon(f->db), 0);
}

static void test_everysec_wait(void **state)
{
    wait_asks_for_a_sync(*state, KVS_SYNC_EVERYSEC);
}

static void test_never_wait(void **state)
{
    wait_asks_for_a_sync(*state, KVS_SYNC_NEVER);
}

#define WRITERS 16
#define WRITES 100

typedef struct writer {
    kvs_t *db;
    int id, errors, early;
} writer;

static void *writer_main(void *arg)
{
    writer *w = arg;
    for (int i = 0; i < WRITES; i++) {
        char k[32];
        snprintf(k, sizeof k, "w%d-%d", w->id, i);
        kvs_op op = {.type = KVS_OP_SET, .key = k, .klen = strlen(k), .val = k, .vlen = strlen(k)};
        if (kvs_write(w->db, &op, 1) != 0) {
            w->errors++;
            continue;
        }
        /* acknowledged: the durable position covers what this thread applied */
        uint64_t applied = 0, durable = 0;
        kvs_write_pos(w->db, NULL, 0, &applied);
        kvs_durable(w->db, &durable);
        (void)applied;
        uint64_t mine = 0;
        kvs_op none = {.type = KVS_OP_REMOVE, .key = "absent", .klen = 6};
        if (kvs_write_pos(w->db, &none, 1, &mine) != KVS_ENOTFOUND ||
            kvs_wait_durable(w->db, mine, -1) != 0)
            w->errors++;
        kvs_durable(w->db, &durable);
        if (durable < mine)
            w->early++;
    }
    return NULL;
}

static void test_writers_share_syncs(void **state)
{
    tu_fixture *f = *state;
    pthread_t th[WRITERS];
    writer w[WRITERS];

    f->opt.sync = KVS_SYNC_ALWAYS;
    f->opt.on_durable = count_callback;
    tu_fx_open(f);
    callbacks = 0;
    kvs_stats before = tu_stats(f->db);
    for (int i = 0; i < WRITERS; i++) {
        w[i] = (writer){f->db, i, 0, 0};
        assert_int_equal(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
    }
    for (int i = 0; i < WRITERS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(w[i].errors, 0);
        assert_int_equal(w[i].early, 0);
    }
    kvs_stats st = tu_stats(f->db);
    printf("# %d writers x %d acknowledged writes under always: %llu syncs, %llu durable "
           "advances, %d callbacks\n", WRITERS, WRITES,
           (unsigned long long)(st.syncs - before.syncs),
           (unsigned long long)(st.durable_syncs - before.durable_syncs), callbacks);
    if (is_kvs()) {
        assert_true(st.durable_syncs > before.durable_syncs);
        assert_true(st.syncs - before.syncs < WRITERS * WRITES); /* shared */
        assert_true(callbacks > 0);
        assert_int_equal(st.lag_bytes, 0);
        assert_int_equal(st.lag_usec, 0);
    }
    for (int i = 0; i < WRITERS; i++)
        for (int j = 0; j < WRITES; j++) {
            char k[32];
            snprintf(k, sizeof k, "w%d-%d", i, j);
            tu_assert_value(f->db, k, k);
        }
}

typedef struct waiter {
    kvs_t *db;
    uint64_t pos;
    int rc;
} waiter;

static void *waiter_main(void *arg)
{
    waiter *w = arg;
    w->rc = kvs_wait_durable(w->db, w->pos, -1);
    return NULL;
}

static void test_fence_wakes_waiters(void **state)
{
    tu_fixture *f = *state;
    kvs_op op = {.type = KVS_OP_SET, .key = "k", .klen = 1, .val = "v", .vlen = 1};
    uint64_t pos = 0;
    pthread_t th;

    tu_require_engine("kvs");
    f->opt.sync = KVS_SYNC_NEVER; /* nothing syncs until asked */
    tu_fx_open(f);
    uint64_t durable = durable_now(f->db);
    assert_int_equal(kvs_write_pos(f->db, &op, 1, &pos), 0);
    assert_true(durable < pos);
    __atomic_store_n(&kvs_test_fail_sync, 1, __ATOMIC_RELAXED); /* the next sync fails */
    waiter w = {f->db, pos, 1};
    assert_int_equal(pthread_create(&th, NULL, waiter_main, &w), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(w.rc, KVS_ESYNC);
    uint64_t after = 0;
    assert_int_equal(kvs_durable(f->db, &after), KVS_ESYNC);
    assert_true(after < pos); /* nothing claimed durable past the failure */
    assert_int_equal(kvs_wait_durable(f->db, pos, 0), KVS_ESYNC);
    __atomic_store_n(&kvs_test_fail_sync, 0, __ATOMIC_RELAXED);
}

int main(int argc, char **argv)
{
    const char *group = tu_engine_from_args(argc, argv);
    const struct CMUnitTest tests[] = {
        TU_CASE_CLOSED(test_always_visible_before_durable),
        TU_CASE_CLOSED(test_always_sync_on_request),
        TU_CASE_CLOSED(test_everysec_wait),
        TU_CASE_CLOSED(test_never_wait),
        TU_CASE_CLOSED(test_writers_share_syncs),
        TU_CASE_CLOSED(test_fence_wakes_waiters),
    };
    return cmocka_run_group_tests_name(group, tests, NULL, NULL);
}
