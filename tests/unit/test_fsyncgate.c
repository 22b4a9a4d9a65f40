/*
 * test_fsyncgate.c — after a failed sync the store takes no more writes (issue 10, item 3), and
 * the recovery rules the power-cut tests (tests/integration/test_powercut.py) led to.
 *
 * A failed fsync may leave pages the kernel could not write marked clean: a sync retried later
 * succeeds without them ("fsyncgate"). So the first failed sync fences the store (kvs.h,
 * "Durability"): the batch whose sync failed gets KVS_ESYNC, so does every later write,
 * kvs_sync_now, kvs_compact and kvs_close; reads go on; a reopen recovers from the disk and takes
 * writes again. The failure is made by io.c's test hook kvs_test_fail_sync (the Nth sync fails
 * with EIO), for both engines' syncs:
 *
 *   - kvs, --sync always: the failing batch and every later write are refused; reads, reopen;
 *   - kvs, everysec: the background sync fails, writes are refused from then on;
 *   - kvs: a rotation whose manifest edit fails to sync keeps the new segment's file (the edit
 *     may have reached the disk; deleting the file it names would leave a store that does not
 *     open), and the store reopens with every acknowledged write;
 *   - lmdb, everysec: a failed mdb_env_sync fences the same way.
 *
 * Regressions of bugs the power-cut tests found:
 *   - a compaction committed (its manifest edit synced) before the writes that replaced the
 *     records it dropped were synced: with everysec a power cut lost keys written long before;
 *   - a first open cut short after its segment was created and before its MANIFEST was in place
 *     left a directory that refused to open ("segment files but no MANIFEST"): it opens;
 *   - a sealed segment without a hint (a power cut before it was synced) with a torn last record:
 *     cut as a torn tail, the key keeps its older value — not "corrupt";
 *   - a damaged last record followed by bytes that are not zeros in the active segment: a torn
 *     append too (after a power cut the bytes past the last sync may be anything);
 *   - a sealed segment left empty by a cut is reclaimed by compaction (it used to stay for ever);
 *   - a remove that found its key missing was acknowledged (KVS_ENOTFOUND, DEL's ":0") in a batch
 *     that failed: "missing" rested on a tombstone no sync had made durable — the batch's own, or
 *     a failed batch's — and a power cut brought the key back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/log/logdb.h"
#include "engine/log/record.h"
#include "engine/log/segment.h"
#include "testutil.h"
#include "util/io.h"

static int try_set(kvs_t *db, const char *k, const char *v)
{
    return kvs_set(db, k, strlen(k), v, strlen(v));
}

static kvs_options opts(const char *engine, kvs_sync sync)
{
    kvs_options o;
    kvs_options_init(&o);
    o.engine = engine;
    o.sync = sync;
    o.auto_compact = 0;
    return o;
}

/* Everything a fenced store does: refuses writes (saying why), serves reads. */
static void assert_fenced(kvs_t *db, const char *readable_key, const char *value)
{
    int rc = try_set(db, "after", "x");
    assert_int_equal(rc, KVS_ESYNC);
    assert_non_null(strstr(kvs_last_error(), "sync failed"));
    assert_non_null(strstr(kvs_strerror(KVS_ESYNC), "sync to disk failed"));
    assert_int_equal(kvs_remove(db, readable_key, strlen(readable_key)), KVS_ESYNC);
    assert_int_equal(kvs_sync_now(db), KVS_ESYNC);
    tu_assert_value(db, readable_key, value); /* reads go on */
}

static void test_always_fences(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    kvs_options o = opts("kvs", KVS_SYNC_ALWAYS);
    kvs_t *db = tu_open(dir, &o);

    tu_set(db, "k1", "v1");
    tu_set(db, "k2", "v2");
    tu_log_capture(KVS_LOG_ERROR);
    /* the next sync: this batch's fdatasync */
    __atomic_store_n(&kvs_test_fail_sync, 1, __ATOMIC_RELAXED);
    assert_int_equal(try_set(db, "k3", "v3"), KVS_ESYNC);
    assert_non_null(strstr(kvs_last_error(), "fdatasync"));
    assert_non_null(strstr(tu_log_text(), "a sync failed"));
    assert_fenced(db, "k1", "v1");
    assert_int_equal(kvs_compact(db), KVS_ESYNC);
    tu_log_clear();
    assert_int_equal(try_set(db, "k4", "v4"), KVS_ESYNC);
    assert_null(strstr(tu_log_text(), "a sync failed")); /* logged once, not per write */
    tu_log_release();
    assert_int_equal(kvs_close(db), KVS_ESYNC); /* nothing synced after the failure */
    assert_int_equal(__atomic_load_n(&kvs_test_fail_sync, __ATOMIC_RELAXED), 0);

    db = tu_open(dir, &o); /* what is on disk: every acknowledged write, and writes again */
    tu_assert_value(db, "k1", "v1");
    tu_assert_value(db, "k2", "v2");
    tu_assert_value(db, "k4", NULL);
    tu_set(db, "k5", "v5");
    assert_int_equal(kvs_close(db), 0);
    tu_rm_rf(dir);
    free(dir);
}

/* Wait (at most 5 s) for a write to be refused: the background sync failed. */
static void wait_fenced(kvs_t *db)
{
    for (int i = 0; i < 500; i++) {
        int rc = try_set(db, "probe", "p");
        if (rc == KVS_ESYNC)
            return;
        assert_int_equal(rc, 0);
        usleep(10000);
    }
    fail_msg("no write refused 5 s after the background sync was made to fail");
}

static void everysec_fences(const char *engine)
{
    char *dir = tu_mkdtemp();
    kvs_options o = opts(engine, KVS_SYNC_EVERYSEC);
    kvs_t *db = tu_open(dir, &o);

    tu_set(db, "k1", "v1");
    tu_log_capture(KVS_LOG_ERROR);
    __atomic_store_n(&kvs_test_fail_sync, 1, __ATOMIC_RELAXED); /* the syncer's next sync */
    wait_fenced(db);
    assert_fenced(db, "k1", "v1");
    assert_int_equal(kvs_close(db), KVS_ESYNC);
    /* read once the syncer is stopped: the capture is not for reading while threads log */
    assert_non_null(strstr(tu_log_text(), "a sync failed"));
    tu_log_release();
    db = tu_open(dir, &o);
    tu_set(db, "k2", "v2");
    tu_assert_value(db, "k2", "v2");
    assert_int_equal(kvs_close(db), 0);
    tu_rm_rf(dir);
    free(dir);
}

static void test_everysec_fences(void **state)
{
    (void)state;
    everysec_fences("kvs");
}

static void test_lmdb_everysec_fences(void **state)
{
    (void)state;
    everysec_fences("lmdb");
}

static int count_logs(const char *dir)
{
    int n = 0;
    char name[32];
    for (int id = 1; id < 64; id++) {
        seg_name(name, sizeof name, (uint32_t)id, "log");
        n += tu_file_size(tu_path(dir, name)) >= 0;
    }
    return n;
}

/* A rotation: seg_create syncs the new file and the directory (syncs 1, 2), the manifest edit
 * is synced (3). Its failure must not delete the file the edit names. */
static void test_rotation_manifest_sync_fails(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp(), key[32], val[600];
    kvs_options o = opts("kvs", KVS_SYNC_ALWAYS);
    o.segment_size = 4096;
    kvs_t *db = tu_open(dir, &o);
    int i, rc = 0;

    memset(val, 'v', sizeof val - 1);
    val[sizeof val - 1] = '\0';
    for (i = 0; i < 5; i++) { /* 5 x ~630 bytes: one segment, not full */
        snprintf(key, sizeof key, "key%d", i);
        tu_set(db, key, val);
    }
    int before = count_logs(dir);
    for (; i < 40 && rc == 0; i++) { /* until the rotation */
        snprintf(key, sizeof key, "key%d", i);
        __atomic_store_n(&kvs_test_fail_sync, 3, __ATOMIC_RELAXED);
        rc = try_set(db, key, val);
        if (count_logs(dir) > before && rc == 0)
            fail_msg("a rotation happened and the manifest sync did not fail");
    }
    __atomic_store_n(&kvs_test_fail_sync, 0, __ATOMIC_RELAXED);
    assert_int_equal(rc, KVS_ESYNC);
    assert_non_null(strstr(kvs_last_error(), "MANIFEST"));
    assert_int_equal(count_logs(dir), before + 1); /* the new segment's file is kept */
    assert_int_equal(kvs_close(db), KVS_ESYNC);
    db = tu_open(dir, &o);
    for (int j = 0; j < i - 1; j++) {
        snprintf(key, sizeof key, "key%d", j);
        tu_assert_value(db, key, val);
    }
    tu_set(db, "again", "yes");
    assert_int_equal(kvs_close(db), 0);
    tu_rm_rf(dir);
    free(dir);
}

/* ---- what a failed batch acknowledges ---------------------------------------------------- */

/* The power cut that follows a failure: the store is gone (closed without a sync if fenced) and
 * of its active segment, path, only the first durable bytes reached the disk. */
static void cut_to_durable(const char *path, int64_t durable)
{
    assert_true(tu_file_size(path) >= durable);
    assert_int_equal(truncate(path, (off_t)durable), 0);
}

/* A failed batch's records stay in the log and in the index (a failed write may or may not be
 * there after a crash), so a remove that finds its key missing may be looking at a tombstone no
 * sync has made durable. That answer — KVS_ENOTFOUND, which kvs-server acknowledges as ":0" — is
 * an acknowledgement like any other: only a batch that committed may give it. Here the
 * tombstone is a failed batch's: the rotation its second op needed failed with KVS_ENOSPC (the
 * segment ids are used up; a full disk does the same, and does not fence), after the tombstone
 * had been copied and published. The next batch fails the same way: its remove must fail with
 * it, for nothing was synced and a power cut brings "old" back (found by test_powercut.py's
 * IOErrorTest: a DEL answered :0 lost, the key holding its old value, or a failed SET's). */
static void test_missing_key_in_failed_batch_enospc(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp(), segf[4096];
    kvs_options o = opts("kvs", KVS_SYNC_ALWAYS);
    o.segment_size = 4096;
    kvs_t *db = tu_open(dir, &o);
    logdb *ldb = kvs_engine_impl(db);
    size_t blen = 4096;
    unsigned char *big = tu_filled(blen, 7); /* does not fit: every batch with it rotates */

    tu_set(db, "k", "old");
    snprintf(segf, sizeof segf, "%s", ldb->active->path);
    int64_t durable = (int64_t)ldb->active->size; /* always: synced up to here */
    uint64_t syncs = tu_stats(db).syncs;
    LDB_LOCK(ldb, wmu);
    uint32_t next_id = ldb->next_id;
    ldb->next_id = UINT32_MAX; /* no new segment: every rotation fails with KVS_ENOSPC */
    LDB_UNLOCK(ldb, wmu);

    kvs_op first[] = {{.type = KVS_OP_REMOVE, .key = "k", .klen = 1},
                     {.type = KVS_OP_SET, .key = "b", .klen = 1, .val = big, .vlen = blen}};
    assert_int_equal(kvs_write(db, first, 2), KVS_ENOSPC);
    assert_int_equal(first[0].rc, KVS_ENOSPC);
    assert_int_equal(first[1].rc, KVS_ENOSPC);
    tu_assert_value(db, "k", NULL); /* the failed remove's tombstone stands in the index */

    kvs_op second[] = {{.type = KVS_OP_REMOVE, .key = "k", .klen = 1},
                     {.type = KVS_OP_SET, .key = "b", .klen = 1, .val = big, .vlen = blen}};
    assert_int_equal(kvs_write(db, second, 2), KVS_ENOSPC);
    assert_int_equal(second[1].rc, KVS_ENOSPC);
    assert_int_equal(second[0].rc, KVS_ENOSPC); /* not KVS_ENOTFOUND: that is acknowledged */
    assert_int_equal(tu_stats(db).syncs, syncs); /* nothing made the tombstone durable */

    LDB_LOCK(ldb, wmu);
    ldb->next_id = next_id; /* room again: writes work again */
    LDB_UNLOCK(ldb, wmu);
    assert_int_equal(kvs_close(db), 0);
    cut_to_durable(segf, durable); /* as if the power went before that close */
    db = tu_open(dir, &o);
    tu_assert_value(db, "k", "old"); /* what an acknowledged remove would have lost */
    assert_int_equal(kvs_close(db), 0);
    free(big);
    tu_rm_rf(dir);
    free(dir);
}

/* The same within one batch whose sync fails: the second remove finds the key missing because
 * of the first one's tombstone, which the failed sync did not make durable. */
static void test_missing_key_in_failed_batch_sync(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp(), segf[4096];
    kvs_options o = opts("kvs", KVS_SYNC_ALWAYS);
    kvs_t *db = tu_open(dir, &o);
    logdb *ldb = kvs_engine_impl(db);

    tu_set(db, "k", "old");
    snprintf(segf, sizeof segf, "%s", ldb->active->path);
    int64_t durable = (int64_t)ldb->active->size;
    kvs_op ops[] = {{.type = KVS_OP_REMOVE, .key = "k", .klen = 1},
                    {.type = KVS_OP_REMOVE, .key = "k", .klen = 1}};
    __atomic_store_n(&kvs_test_fail_sync, 1, __ATOMIC_RELAXED); /* this batch's fdatasync */
    assert_int_equal(kvs_write(db, ops, 2), KVS_ESYNC);
    assert_int_equal(ops[0].rc, KVS_ESYNC);
    assert_int_equal(ops[1].rc, KVS_ESYNC); /* not KVS_ENOTFOUND */
    assert_int_equal(kvs_close(db), KVS_ESYNC);
    cut_to_durable(segf, durable);
    db = tu_open(dir, &o);
    tu_assert_value(db, "k", "old");
    assert_int_equal(kvs_close(db), 0);
    tu_rm_rf(dir);
    free(dir);
}

/* ---- recovery ----------------------------------------------------------------------------- */

static void test_first_open_cut_short(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    kvs_t *db = tu_open(dir, NULL);
    assert_int_equal(kvs_close(db), 0);
    /* as a cut between the first segment's creation and the MANIFEST's rename leaves it */
    assert_int_equal(unlink(tu_path(dir, "MANIFEST")), 0);
    assert_int_equal(unlink(tu_path(dir, "ENGINE")), 0);
    tu_log_capture(KVS_LOG_WARN);
    db = tu_open(dir, NULL);
    assert_non_null(strstr(tu_log_text(), "the first open of this directory was cut short"));
    tu_log_release();
    tu_set(db, "a", "1");
    assert_int_equal(kvs_close(db), 0);
    db = tu_open(dir, NULL);
    tu_assert_value(db, "a", "1");
    assert_int_equal(kvs_close(db), 0);
    tu_rm_rf(dir);
    free(dir);
}

/* A segment holding data and no MANIFEST is still refused: that is not a first open. */
static void test_no_manifest_with_data_refuses(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    kvs_t *db = tu_open(dir, NULL);
    tu_set(db, "a", "1");
    assert_int_equal(kvs_close(db), 0);
    assert_int_equal(unlink(tu_path(dir, "MANIFEST")), 0);
    assert_int_equal(unlink(tu_path(dir, "ENGINE")), 0);
    assert_int_equal(tu_try_open(dir, NULL, &db), KVS_ECORRUPT);
    tu_rm_rf(dir);
    free(dir);
}

/* k=old in segment 1 (sealed, synced, hint); then k=new is the last record of segment 2, sealed
 * by a rotation and cut by a power cut before it was synced: its value half written, the rest
 * zeros — or random bytes. No hint (written only after a sync). k must read "old". */
static void torn_sealed(int garbage)
{
    char *dir = tu_mkdtemp(), segf[4096], big[1500];
    kvs_options o = opts("kvs", KVS_SYNC_NEVER);
    o.segment_size = 4096;
    kvs_t *db = tu_open(dir, &o);
    size_t len;

    memset(big, 'b', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    tu_set(db, "k", "old");
    tu_set(db, "f1", big);
    tu_set(db, "f2", big);
    tu_set(db, "f3", big); /* rotates: segment 1 sealed */
    tu_set(db, "k", "new-value-new-value-new-value");
    tu_set(db, "f4", big);
    tu_set(db, "f5", big); /* segment 2 sealed, k=new in it */
    assert_int_equal(kvs_close(db), 0);
    snprintf(segf, sizeof segf, "%s", tu_path(dir, "000002.log"));
    unsigned char *b = tu_slurp(segf, &len);
    unsigned char *p = memmem(b, len, "knew-value", 10);
    assert_non_null(p);
    size_t cut = (size_t)(p - b) + 1 + 8; /* inside the value of k=new */
    for (size_t i = cut; i < len; i++)
        b[i] = garbage ? (unsigned char)(rand() | 1) : 0;
    tu_spill(segf, b, len);
    free(b);
    unlink(tu_path(dir, "000002.hint"));
    /* the active segment (3) must hold nothing newer: a power cut before 2 was synced */
    unsigned char hdr[SEG_HDR];
    b = tu_slurp(tu_path(dir, "000003.log"), &len);
    memcpy(hdr, b, SEG_HDR);
    free(b);
    tu_spill(tu_path(dir, "000003.log"), hdr, SEG_HDR);

    tu_log_capture(KVS_LOG_WARN);
    db = tu_open(dir, &o);
    tu_assert_value(db, "k", "old");
    tu_assert_value(db, "f3", big);
    assert_non_null(strstr(tu_log_text(), "torn tail"));
    tu_log_release();
    assert_int_equal(kvs_close(db), 0);
    db = tu_open(dir, &o); /* and so it stays */
    tu_assert_value(db, "k", "old");
    tu_set(db, "k", "newer");
    assert_int_equal(kvs_close(db), 0);
    db = tu_open(dir, &o);
    tu_assert_value(db, "k", "newer");
    assert_int_equal(kvs_close(db), 0);
    tu_rm_rf(dir);
    free(dir);
}

static void test_torn_sealed_zeros(void **state)
{
    (void)state;
    torn_sealed(0);
}

static void test_torn_sealed_garbage(void **state)
{
    (void)state;
    torn_sealed(1);
}

/* The active segment: k=new torn inside its value, random bytes after it. */
static void test_torn_active_garbage(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp(), segf[4096];
    kvs_options o = opts("kvs", KVS_SYNC_NEVER);
    kvs_t *db = tu_open(dir, &o);
    size_t len;

    tu_set(db, "k", "old");
    tu_set(db, "k", "new-value-new-value-new-value");
    assert_int_equal(kvs_close(db), 0);
    snprintf(segf, sizeof segf, "%s", tu_path(dir, "000001.log"));
    unsigned char *b = tu_slurp(segf, &len);
    unsigned char *p = memmem(b, len, "knew-value", 10);
    assert_non_null(p);
    size_t keep = (size_t)(p - b) + 9;
    unsigned char *g = malloc(keep + 3000);
    memcpy(g, b, keep);
    for (size_t i = keep; i < keep + 3000; i++)
        g[i] = (unsigned char)(rand() | 1);
    tu_spill(segf, g, keep + 3000);
    free(g);
    free(b);
    db = tu_open(dir, &o);
    tu_assert_value(db, "k", "old");
    tu_set(db, "k2", "x");
    assert_int_equal(kvs_close(db), 0);
    db = tu_open(dir, &o);
    tu_assert_value(db, "k", "old");
    tu_assert_value(db, "k2", "x");
    assert_int_equal(kvs_close(db), 0);
    tu_rm_rf(dir);
    free(dir);
}

/* A sealed segment whose writes a power cut lost entirely (cut back to its header at open) is
 * reclaimed by compaction: such segments used to stay live for ever, one per cut, until opening
 * the store took seconds. */
static void test_empty_sealed_reclaimed(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp(), big[1500];
    kvs_options o = opts("kvs", KVS_SYNC_NEVER);
    o.segment_size = 4096;
    kvs_t *db = tu_open(dir, &o);
    size_t len;

    memset(big, 'b', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    tu_set(db, "f1", big);
    tu_set(db, "f2", big);
    tu_set(db, "f3", big); /* rotates: segment 1 sealed */
    tu_set(db, "f4", big);
    tu_set(db, "f5", big); /* segment 2 sealed */
    assert_int_equal(kvs_close(db), 0);
    unsigned char *b = tu_slurp(tu_path(dir, "000002.log"), &len);
    tu_spill(tu_path(dir, "000002.log"), b, SEG_HDR); /* its records never reached the disk */
    free(b);
    unlink(tu_path(dir, "000002.hint"));
    db = tu_open(dir, &o);
    uint64_t segs = tu_stats(db).segments;
    assert_true(kvs_compact(db) >= 0);
    assert_int_equal(tu_stats(db).segments, segs - 1);
    assert_int_equal(tu_file_size(tu_path(dir, "000002.log")), -1);
    tu_assert_value(db, "f1", big);
    assert_int_equal(kvs_close(db), 0);
    tu_rm_rf(dir);
    free(dir);
}

static int reset_hook(void **state)
{
    (void)state;
    __atomic_store_n(&kvs_test_fail_sync, 0, __ATOMIC_RELAXED);
    return 0;
}

/* A compaction drops the records newer writes replaced; its commit must not reach the disk
 * before those writes do (everysec, never): with no syncer (never), the compaction itself syncs
 * them first. Found by the power cuts: keys written long before vanished after a compaction. */
static void test_compaction_syncs_what_replaced(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp(), key[32], val[400];
    kvs_options o = opts("kvs", KVS_SYNC_NEVER);
    o.segment_size = 4096;
    kvs_t *db = tu_open(dir, &o);

    memset(val, 'a', sizeof val - 1);
    val[sizeof val - 1] = '\0';
    for (int i = 0; i < 30; i++) { /* several sealed segments */
        snprintf(key, sizeof key, "key%02d", i);
        tu_set(db, key, val);
    }
    val[0] = 'b';
    for (int i = 0; i < 30; i++) { /* replace them all: the old segments are dead */
        snprintf(key, sizeof key, "key%02d", i);
        tu_set(db, key, val);
    }
    uint64_t syncs = tu_stats(db).syncs;
    assert_true(kvs_compact(db) > 0);
    assert_true(tu_stats(db).syncs > syncs); /* what replaced the dropped records is durable */
    assert_int_equal(kvs_close(db), 0);
    tu_rm_rf(dir);
    free(dir);
}

int main(void)
{
    srand((unsigned)time(NULL));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_always_fences),
        cmocka_unit_test(test_everysec_fences),
        cmocka_unit_test(test_lmdb_everysec_fences),
        cmocka_unit_test(test_rotation_manifest_sync_fails),
        cmocka_unit_test(test_missing_key_in_failed_batch_enospc),
        cmocka_unit_test(test_missing_key_in_failed_batch_sync),
        cmocka_unit_test(test_compaction_syncs_what_replaced),
        cmocka_unit_test(test_first_open_cut_short),
        cmocka_unit_test(test_no_manifest_with_data_refuses),
        cmocka_unit_test(test_torn_sealed_zeros),
        cmocka_unit_test(test_torn_sealed_garbage),
        cmocka_unit_test(test_torn_active_garbage),
        cmocka_unit_test(test_empty_sealed_reclaimed),
    };
    return cmocka_run_group_tests(tests, reset_hook, reset_hook);
}
