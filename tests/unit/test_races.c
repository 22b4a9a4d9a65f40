/*
 * test_races.c — races between the kvs engine's background work and the rest, each made likely
 * by a test hook that widens its window (logdb.h), then checked by what it would break.
 *
 *   - A manifest rewrite during a compaction (issue 9, 1). The rewrite names the live segment
 *     list; a compaction once left its victims on that list from its commit until it repointed
 *     the index, so a rewrite in between named segments the compaction then deleted, and the
 *     store could never be opened again ("open 0000NN.log: No such file or directory"). Here
 *     the manifest is rewritten at every rotation, compaction waits between its commit and its
 *     repointing (kvs_test_install_delay_us), and writers rotate throughout: every reopen must
 *     succeed with every acknowledged value.
 *   - The everysec syncer against compaction (issue 9, 10). The syncer syncs sealed segments
 *     inside an RCU read section, then clears their needs_sync flags; compaction frees a victim
 *     a grace period after removing it, without taking wmu. Clearing a flag after leaving the
 *     read section was a write after free. The syncer's hook (kvs_test_syncer_delay_us) holds
 *     it between its syncs and the clearing while compactions retire the very segments it
 *     synced; under AddressSanitizer (make test-asan) a write after free aborts the test.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/log/logdb.h"
#include "testutil.h"
#include "util/clock.h"

#define KEYS 300

static kvs_options small_segments(kvs_sync sync)
{
    kvs_options o;
    kvs_options_init(&o);
    o.segment_size = 4096;
    o.auto_compact = 0;
    o.sync = sync;
    return o;
}

typedef struct compactor_arg {
    kvs_t *db;
    int rounds;
    int64_t rc;
    bool done; /* atomic */
} compactor_arg;

static void *compact_loop(void *p)
{
    compactor_arg *a = p;

    for (int i = 0; i < a->rounds && a->rc >= 0; i++)
        a->rc = kvs_compact(a->db);
    __atomic_store_n(&a->done, true, __ATOMIC_RELEASE);
    return NULL;
}

/* Overwrite every key with a value of this round; vals keeps the last acknowledged one. */
static void write_round(kvs_t *db, int round, char (*vals)[32])
{
    char k[16];

    for (int i = 0; i < KEYS; i++) {
        snprintf(k, sizeof k, "key-%d", i);
        snprintf(vals[i], sizeof vals[i], "r%d-%d", round, i);
        tu_set(db, k, vals[i]);
    }
}

static void check_all(kvs_t *db, char (*vals)[32])
{
    char k[16];

    for (int i = 0; i < KEYS; i++) {
        snprintf(k, sizeof k, "key-%d", i);
        tu_assert_value(db, k, vals[i]);
    }
}

static void test_manifest_rewrite_during_compaction(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    kvs_options o = small_segments(KVS_SYNC_NEVER);
    char(*vals)[32] = calloc(KEYS, sizeof *vals);
    unsigned saved_edits = ldb_manifest_reset_edits;
    int round = 0;

    assert_non_null(vals);
    ldb_manifest_reset_edits = 2;         /* a rewrite at nearly every rotation */
    kvs_test_install_delay_us = 200000;   /* 0.2 s between a compaction's commit and its install */
    kvs_t *db = tu_open(dir, &o);
    for (int cycle = 0; cycle < 4; cycle++) {
        for (int i = 0; i < 3; i++) /* sealed segments full of overwritten records */
            write_round(db, round++, vals);
        uint64_t before = tu_stats(db).compactions;
        compactor_arg a = {db, 1, 0, false};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, compact_loop, &a), 0);
        /* compactions is counted at the commit point: from then on the compaction sleeps in
         * the hook, and the rotations of one round rewrite the manifest meanwhile */
        uint64_t deadline = clock_usec() + 10000000;
        while (tu_stats(db).compactions == before && !__atomic_load_n(&a.done, __ATOMIC_ACQUIRE))
            assert_true(clock_usec() < deadline);
        write_round(db, round++, vals);
        pthread_join(t, NULL);
        assert_true(a.rc > 0);
        tu_reopen(&db, dir, &o); /* asserts that the store opens */
        check_all(db, vals);
    }
    assert_int_equal(kvs_close(db), 0);
    kvs_test_install_delay_us = 0;
    ldb_manifest_reset_edits = saved_edits;
    free(vals);
    tu_rm_rf(dir);
    free(dir);
}

static void test_syncer_against_compaction(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    kvs_options o = small_segments(KVS_SYNC_EVERYSEC);
    char(*vals)[32] = calloc(KEYS, sizeof *vals);
    int round = 0;

    assert_non_null(vals);
    kvs_test_syncer_delay_us = 300000; /* the syncer holds its read section 0.3 s of each second */
    kvs_t *db = tu_open(dir, &o);
    /* Rounds until at least 10 compactions have run and the syncer has run (its flags were
     * cleared) at least twice among them, over at least 3.5 s; counted, not timed, so that a
     * loaded machine makes the test longer, never failing. The deadline only catches a hang. */
    uint64_t start = clock_usec(), deadline = start + 120000000;
    int compactions = 0;
    while (compactions < 10 || tu_stats(db).syncs < 2 || clock_usec() < start + 3500000) {
        /* sealed segments with unsynced writes (the syncer's to sync), then retire them */
        write_round(db, round++, vals);
        assert_true(kvs_compact(db) >= 0);
        compactions++;
        usleep(20000);
        assert_true(clock_usec() < deadline);
    }
    tu_reopen(&db, dir, &o);
    check_all(db, vals);
    assert_int_equal(kvs_close(db), 0);
    kvs_test_syncer_delay_us = 0;
    free(vals);
    tu_rm_rf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_manifest_rewrite_during_compaction),
        cmocka_unit_test(test_syncer_against_compaction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
