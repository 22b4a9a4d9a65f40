/*
 * test_engine.c — the public API of kvs.h, case by case, the way the kvs course's engine tests
 * exercise a store: get what was set, overwrite, get and remove keys that are not there, remove
 * keys that are. The same cases hold for every engine behind the API: CTest runs this program
 * once per engine (test_engine_kvs, test_engine_lmdb), the engine named by argv[1], and every
 * open names it (testutil's tu_engine).
 *
 * A store that answers correctly only while its in-memory state is warm is not a store, so every
 * data case is checked twice: once on the handle that did the writes, and once more after
 * kvs_close and a fresh kvs_open of the same directory that names no engine, so the directory's
 * ENGINE file must pick the engine again and the answers come from its files (tu_check_twice).
 *
 * Around the data cases sit the contracts of the handle itself: options are checked by
 * kvs_configure and refused without side effects; configure after open is a state error; a
 * directory is owned by one handle at a time (a lock on the directory itself) and names its engine (the ENGINE
 * file), which another engine may not open; keys and values beyond the limits are refused before
 * a byte is written; the figures of kvs_stats_get follow the writes; every sync mode keeps what
 * was acknowledged across a close; eight threads share one handle. Last, for the kvs engine only:
 * a store spread over many rotated segments comes back whole, with a hint file for each sealed
 * segment so the next open need not scan it.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

/* ---- small assertions ---- */

/* Removing key finds nothing to remove and writes nothing. */
static void assert_remove_missing(kvs_t *db, const char *key)
{
    uint64_t before = tu_stats(db).writes;

    assert_int_equal(kvs_remove(db, key, strlen(key)), KVS_ENOTFOUND);
    assert_int_equal(tu_stats(db).writes, before);
}

static void assert_key_count(kvs_t *db, uint64_t want)
{
    assert_int_equal(tu_stats(db).keys, want);
}

/* ---- the course's engine cases ---- */

static void check_stored(kvs_t *db)
{
    tu_assert_value(db, "key1", "value1");
    tu_assert_value(db, "key2", "value2");
}

static void test_get_stored_value(void **state)
{
    tu_fixture *f = *state;

    tu_set(f->db, "key1", "value1");
    tu_set(f->db, "key2", "value2");
    tu_check_twice(f, check_stored);
}

static void check_overwritten(kvs_t *db)
{
    tu_assert_value(db, "key1", "value2");
}

static void test_overwrite_value(void **state)
{
    tu_fixture *f = *state;

    tu_set(f->db, "key1", "value1");
    tu_assert_value(f->db, "key1", "value1");
    tu_set(f->db, "key1", "value2");
    tu_check_twice(f, check_overwritten);
    /* and over a value that was read back from the files */
    tu_set(f->db, "key1", "value3");
    tu_assert_value(f->db, "key1", "value3");
    tu_fx_reopen(f);
    tu_assert_value(f->db, "key1", "value3");
}

static void check_missing(kvs_t *db)
{
    tu_assert_value(db, "key2", NULL);
    tu_assert_value(db, "key1", "value1");
}

static void test_get_missing_key(void **state)
{
    tu_fixture *f = *state;

    tu_assert_value(f->db, "key1", NULL); /* an empty store */
    tu_set(f->db, "key1", "value1");
    tu_check_twice(f, check_missing);
}

static void check_removed(kvs_t *db)
{
    tu_assert_value(db, "key1", NULL);
    tu_assert_value(db, "key2", "value2");
    assert_key_count(db, 1);
}

static void test_remove_key(void **state)
{
    tu_fixture *f = *state;

    tu_set(f->db, "key1", "value1");
    tu_set(f->db, "key2", "value2");
    tu_assert_value(f->db, "key1", "value1");
    assert_int_equal(kvs_remove(f->db, "key1", 4), 0);
    tu_check_twice(f, check_removed);
}

static void check_remove_missing(kvs_t *db)
{
    assert_remove_missing(db, "key1"); /* never set */
    assert_remove_missing(db, "key2"); /* set, then removed */
}

static void test_remove_missing_key(void **state)
{
    tu_fixture *f = *state;

    assert_remove_missing(f->db, "key1"); /* an empty store */
    tu_set(f->db, "key2", "value2");
    assert_int_equal(kvs_remove(f->db, "key2", 4), 0);
    tu_check_twice(f, check_remove_missing);
}

/* ---- lifecycle ---- */

static void test_configure_after_open(void **state)
{
    tu_fixture *f = *state;

    assert_int_equal(kvs_configure(f->db, &f->opt), KVS_ESTATE);
    assert_int_equal(kvs_open(f->db, f->dir), KVS_ESTATE);
    tu_set(f->db, "k", "v"); /* the refused calls left the handle working */
    tu_assert_value(f->db, "k", "v");
}

/* Options that differ from the defaults in sync mode, as a base for the bad sets below. */
static kvs_options never_synced(void)
{
    kvs_options opt;

    tu_options(&opt);
    opt.sync = KVS_SYNC_NEVER;
    return opt;
}

/* configure refuses bad with want, and leaves the handle as it was: it opens with the options
 * configured before (sync ALWAYS), none of bad's half-applied. */
static void expect_rejected(const char *dir, kvs_options bad, int want)
{
    kvs_options good;
    kvs_t *db;

    tu_options(&good);
    good.sync = KVS_SYNC_ALWAYS;
    assert_int_equal(kvs_create(&db), 0);
    assert_int_equal(kvs_configure(db, &good), 0);
    assert_int_equal(kvs_configure(db, &bad), want);
    assert_int_equal(kvs_open(db, dir), 0);
    assert_int_equal(tu_stats(db).sync, KVS_SYNC_ALWAYS);
    assert_string_equal(tu_stats(db).engine, tu_engine);
    assert_int_equal(kvs_close(db), 0);
}

/* kvs_configure checks every option whatever the engine, so the kvs engine's ranges too. */
static void test_bad_options(void **state)
{
    tu_fixture *f = *state;
    kvs_options opt;

    opt = never_synced(), opt.segment_size = 100;
    expect_rejected(f->dir, opt, KVS_EINVAL);
    opt = never_synced(), opt.compact_ratio = 0.0;
    expect_rejected(f->dir, opt, KVS_EINVAL);
    opt = never_synced(), opt.sync = (kvs_sync)7;
    expect_rejected(f->dir, opt, KVS_EINVAL);
    opt = never_synced(), opt.engine = "nope";
    expect_rejected(f->dir, opt, KVS_ENOENGINE);
}

static void test_open_twice_is_busy(void **state)
{
    tu_fixture *f = *state;
    kvs_t *second;

    tu_set(f->db, "k", "from the first");
    assert_int_equal(kvs_create(&second), 0);
    assert_int_equal(kvs_open(second, f->dir), KVS_EBUSY);
    assert_non_null(strstr(kvs_last_error(), "in use"));
    assert_int_equal(kvs_close(f->db), 0);
    f->db = NULL;
    assert_int_equal(kvs_open(second, f->dir), 0);
    tu_assert_value(second, "k", "from the first");
    f->db = second;
}

/* Issue 9: deleting a LOCK file let a second process open the directory while the first wrote.
 * The lock is on the directory itself, which an operator cannot delete by accident. */
static void test_lock_survives_a_deleted_lock_file(void **state)
{
    tu_fixture *f = *state;
    kvs_t *second;

    tu_set(f->db, "k", "v");
    unlink(tu_path(f->dir, "LOCK"));
    FILE *fp = fopen(tu_path(f->dir, "LOCK"), "w"); /* a new one, as a second opener would make */
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(kvs_create(&second), 0);
    assert_int_equal(kvs_open(second, f->dir), KVS_EBUSY);
    kvs_close(second);
    tu_assert_value(f->db, "k", "v");
}

/* Issue 9: an ENGINE file naming the other engine over this engine's data opened an empty store
 * of the other engine, silently. It is refused, whichever engine the caller names. */
static void test_engine_file_contradicts_the_data(void **state)
{
    tu_fixture *f = *state;
    kvs_options opt;
    kvs_t *db;

    tu_set(f->db, "k", "v");
    assert_int_equal(kvs_close(f->db), 0);
    f->db = NULL;
    FILE *fp = fopen(tu_path(f->dir, "ENGINE"), "w");
    assert_non_null(fp);
    fprintf(fp, "%s\n", tu_other_engine());
    fclose(fp);
    kvs_options_init(&opt);
    assert_int_equal(tu_try_open(f->dir, &opt, &db), KVS_EENGINE);
    assert_non_null(strstr(kvs_last_error(), "holds data of engine"));
    opt.engine = tu_other_engine();
    assert_int_equal(tu_try_open(f->dir, &opt, &db), KVS_EENGINE);
    opt.engine = tu_engine;
    assert_int_equal(tu_try_open(f->dir, &opt, &db), KVS_EENGINE);
    fp = fopen(tu_path(f->dir, "ENGINE"), "w"); /* put right, it opens with everything */
    assert_non_null(fp);
    fprintf(fp, "%s\n", tu_engine);
    fclose(fp);
    f->opt.engine = NULL;
    tu_fx_open(f);
    tu_assert_value(f->db, "k", "v");
}

/* The ENGINE file's content without its line end, into buf. */
static void read_engine_file(const char *dir, char *buf, size_t cap)
{
    FILE *fp = fopen(tu_path(dir, "ENGINE"), "r");

    assert_non_null(fp);
    assert_non_null(fgets(buf, (int)cap, fp));
    fclose(fp);
    buf[strcspn(buf, "\r\n")] = '\0';
}

static void test_engine_named_explicitly(void **state)
{
    tu_fixture *f = *state;
    char name[64];

    tu_set(f->db, "k", "v");
    read_engine_file(f->dir, name, sizeof name);
    assert_string_equal(name, tu_engine);
    tu_fx_reopen(f); /* naming no engine */
    tu_assert_value(f->db, "k", "v");
}

/* Without an ENGINE file (a directory from before it), the engine's own files say whose it is. */
static void test_owns_dir_without_engine_file(void **state)
{
    tu_fixture *f = *state;

    tu_set(f->db, "k", "v");
    assert_int_equal(kvs_close(f->db), 0);
    f->db = NULL;
    assert_int_equal(unlink(tu_path(f->dir, "ENGINE")), 0);
    f->opt.engine = NULL;
    tu_fx_open(f);
    assert_string_equal(tu_stats(f->db).engine, tu_engine);
    tu_assert_value(f->db, "k", "v");
}

/* A directory made by this engine is refused by the other one, the error naming both; the
 * refusal harms nothing. The two CTest runs make it both ways round. */
static void test_engine_mismatch(void **state)
{
    tu_fixture *f = *state;
    kvs_options opt;
    kvs_t *db;
    char have[32], want[32];

    tu_set(f->db, "k", "v");
    assert_int_equal(kvs_close(f->db), 0);
    f->db = NULL;
    kvs_options_init(&opt);
    opt.engine = tu_other_engine();
    assert_int_equal(tu_try_open(f->dir, &opt, &db), KVS_EENGINE);
    assert_null(db);
    snprintf(have, sizeof have, "'%s'", tu_engine);
    snprintf(want, sizeof want, "'%s'", tu_other_engine());
    assert_non_null(strstr(kvs_last_error(), have));
    assert_non_null(strstr(kvs_last_error(), want));
    f->opt.engine = NULL;
    tu_fx_open(f);
    assert_string_equal(tu_stats(f->db).engine, tu_engine);
    tu_assert_value(f->db, "k", "v");
}

/* ---- limits ---- */

static void check_limits(kvs_t *db)
{
    unsigned char *key = tu_filled(KVS_MAX_KEY + 1, 0);
    kvs_stats before = tu_stats(db), after;
    void *val;
    size_t len;

    tu_assert_bin(db, key, KVS_MAX_KEY, "max", 3);
    assert_int_equal(kvs_set(db, key, KVS_MAX_KEY + 1, "v", 1), KVS_EKEYTOOBIG);
    assert_int_equal(kvs_get(db, key, KVS_MAX_KEY + 1, &val, &len), KVS_EKEYTOOBIG);
    assert_int_equal(kvs_remove(db, key, KVS_MAX_KEY + 1), KVS_EKEYTOOBIG);
    /* A huge length behind a 2-byte buffer: the limit must be checked before the value is read. */
    assert_int_equal(kvs_set(db, "k", 1, "x", (size_t)KVS_MAX_VALUE + 1), KVS_EVALTOOBIG);
    after = tu_stats(db);
    assert_int_equal(after.writes, before.writes);
    assert_int_equal(after.disk_bytes, before.disk_bytes);
    assert_int_equal(after.keys, 1);
    free(key);
}

static void test_key_and_value_limits(void **state)
{
    tu_fixture *f = *state;
    unsigned char *key = tu_filled(KVS_MAX_KEY, 0);

    tu_set_bin(f->db, key, KVS_MAX_KEY, "max", 3);
    free(key);
    tu_check_twice(f, check_limits);
}

/* A batch with one op that fails its checks: that op's rc says why and it is not applied; the
 * others are, each with its own rc (issue 8: a server batch used to answer OK for all of it). */
static void check_batch_with_a_bad_op(kvs_t *db)
{
    void *v;
    size_t n;

    assert_int_equal(kvs_get(db, "a", 1, &v, &n), 0);
    assert_memory_equal(v, "1", 1);
    kvs_free(v);
    assert_int_equal(kvs_get(db, "b", 1, &v, &n), KVS_ENOTFOUND);
    assert_int_equal(kvs_get(db, "c", 1, &v, &n), 0);
    kvs_free(v);
    assert_key_count(db, 2);
}

static void test_batch_with_a_bad_op(void **state)
{
    tu_fixture *f = *state;
    unsigned char *big = tu_filled(KVS_MAX_KEY + 1, 0);

    tu_set_bin(f->db, "b", 1, "x", 1);
    kvs_op ops[] = {
        {.type = KVS_OP_SET, .key = "a", .klen = 1, .val = "1", .vlen = 1, .rc = 99},
        {.type = KVS_OP_SET, .key = big, .klen = KVS_MAX_KEY + 1, .val = "v", .vlen = 1, .rc = 99},
        {.type = KVS_OP_REMOVE, .key = "b", .klen = 1, .rc = 99},
        {.type = KVS_OP_REMOVE, .key = big, .klen = KVS_MAX_KEY + 1, .rc = 99},
        {.type = KVS_OP_SET, .key = "c", .klen = 1, .val = "3", .vlen = 1, .rc = 99},
        {.type = KVS_OP_REMOVE, .key = "missing", .klen = 7, .rc = 99},
        {.type = 7, .key = "d", .klen = 1, .val = "4", .vlen = 1, .rc = 99},
    };
    assert_int_equal(kvs_write(f->db, ops, 7), KVS_EKEYTOOBIG);
    int want[] = {0, KVS_EKEYTOOBIG, 0, KVS_EKEYTOOBIG, 0, KVS_ENOTFOUND, KVS_EINVAL};
    for (int i = 0; i < 7; i++)
        assert_int_equal(ops[i].rc, want[i]);
    free(big);
    tu_check_twice(f, check_batch_with_a_bad_op);
}

/* kvs_write's groups (KVS_OP_WITH_NEXT): one refused op refuses its whole group, and only it. */
static void check_group_with_a_bad_op(kvs_t *db)
{
    void *v;
    size_t n;

    assert_int_equal(kvs_get(db, "a", 1, &v, &n), KVS_ENOTFOUND);
    assert_int_equal(kvs_get(db, "b", 1, &v, &n), KVS_ENOTFOUND);
    tu_assert_value(db, "c", "3");
    tu_assert_value(db, "d", "4");
    assert_key_count(db, 2);
}

static void test_group_with_a_bad_op(void **state)
{
    tu_fixture *f = *state;
    unsigned char *big = tu_filled(KVS_MAX_KEY + 1, 0);

    tu_set_bin(f->db, "b", 1, "x", 1);
    kvs_op ops[] = {
        {.type = KVS_OP_SET, .key = "a", .klen = 1, .val = "1", .vlen = 1, .rc = 99,
         .flags = KVS_OP_WITH_NEXT},
        {.type = KVS_OP_SET, .key = big, .klen = KVS_MAX_KEY + 1, .val = "v", .vlen = 1, .rc = 99},
        {.type = KVS_OP_SET, .key = "c", .klen = 1, .val = "3", .vlen = 1, .rc = 99},
        {.type = KVS_OP_REMOVE, .key = "b", .klen = 1, .rc = 99, .flags = KVS_OP_WITH_NEXT},
        {.type = KVS_OP_SET, .key = "d", .klen = 1, .val = "4", .vlen = 1, .rc = 99},
    };
    assert_int_equal(kvs_write(f->db, ops, 5), KVS_EKEYTOOBIG);
    int want[] = {KVS_EKEYTOOBIG, KVS_EKEYTOOBIG, 0, 0, 0};
    for (int i = 0; i < 5; i++)
        assert_int_equal(ops[i].rc, want[i]);
    free(big);
    tu_check_twice(f, check_group_with_a_bad_op);
}

/* ---- stats ---- */

static void check_stats(kvs_t *db)
{
    assert_key_count(db, 2);
    assert_string_equal(tu_stats(db).engine, tu_engine);
}

static void test_stats_follow_writes(void **state)
{
    tu_fixture *f = *state;

    assert_key_count(f->db, 0); /* nothing the engine keeps for itself counts as a key */
    tu_set(f->db, "a", "1");
    tu_set(f->db, "b", "2");
    tu_set(f->db, "c", "3");
    assert_key_count(f->db, 3);
    tu_set(f->db, "a", "overwritten");
    assert_key_count(f->db, 3);
    assert_int_equal(kvs_remove(f->db, "b", 1), 0);
    assert_key_count(f->db, 2);
    assert_int_equal(kvs_remove(f->db, "b", 1), KVS_ENOTFOUND);
    assert_key_count(f->db, 2);
    assert_int_equal(tu_stats(f->db).writes, 5);
    tu_check_twice(f, check_stats);
}

/* ---- sync modes ---- */

static void sync_case(tu_fixture *f, kvs_sync mode)
{
    kvs_stats st;

    f->opt.sync = mode;
    tu_fx_open(f);
    assert_int_equal(tu_put_keys(f->db, 100), 0);
    st = tu_stats(f->db);
    assert_int_equal(st.sync, mode);
    assert_int_equal(st.writes, 100);
    if (mode == KVS_SYNC_ALWAYS)
        assert_true(st.syncs >= 100);
    if (mode == KVS_SYNC_EVERYSEC) { /* the background syncer runs within about a second */
        for (int i = 0; i < 300 && tu_stats(f->db).syncs == 0; i++)
            usleep(10000);
        assert_true(tu_stats(f->db).syncs > 0);
    }
    assert_int_equal(kvs_sync_now(f->db), 0);
    tu_fx_reopen(f);
    assert_int_equal(tu_stats(f->db).sync, mode); /* reopen keeps the mode asked for */
    tu_assert_keys(f->db, 100);
    assert_key_count(f->db, 100);
}

static void test_sync_never(void **state)
{
    sync_case(*state, KVS_SYNC_NEVER);
}

static void test_sync_everysec(void **state)
{
    sync_case(*state, KVS_SYNC_EVERYSEC);
}

static void test_sync_always(void **state)
{
    sync_case(*state, KVS_SYNC_ALWAYS);
}

/* ---- threads: eight of them, each setting and getting its own keys through one handle ---- */

#define NTHREADS 8
#define PER_THREAD 500

typedef struct worker {
    kvs_t *db;
    int id;
    int errors;
} worker;

static int thread_key(char *k, size_t kcap, char *v, size_t vcap, int t, int i)
{
    snprintf(v, vcap, "thread %d value %d", t, i);
    return snprintf(k, kcap, "t%d-k%d", t, i);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    char k[32], v[64];
    void *got;
    size_t len;

    for (int i = 0; i < PER_THREAD; i++) {
        size_t kl = (size_t)thread_key(k, sizeof k, v, sizeof v, w->id, i), vl = strlen(v);
        if (kvs_set(w->db, k, kl, v, vl) != 0 || kvs_get(w->db, k, kl, &got, &len) != 0) {
            w->errors++;
            continue;
        }
        if (len != vl || memcmp(got, v, len) != 0)
            w->errors++;
        kvs_free(got);
    }
    return NULL;
}

static void check_threads(kvs_t *db)
{
    char k[32], v[64];

    assert_key_count(db, NTHREADS * PER_THREAD);
    for (int t = 0; t < NTHREADS; t++)
        for (int i = 0; i < PER_THREAD; i++) {
            thread_key(k, sizeof k, v, sizeof v, t, i);
            tu_assert_value(db, k, v);
        }
}

static void test_threads_share_a_handle(void **state)
{
    tu_fixture *f = *state;
    pthread_t th[NTHREADS];
    worker w[NTHREADS];

    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (worker){f->db, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(w[i].errors, 0);
    }
    assert_int_equal(tu_stats(f->db).writes, NTHREADS * PER_THREAD);
    tu_check_twice(f, check_threads);
}

/* ---- kvs engine only: many keys over many segments ---- */

#define MANY 20000

static int is_log(const struct dirent *de)
{
    size_t n = strlen(de->d_name);
    return n > 4 && strcmp(de->d_name + n - 4, ".log") == 0;
}

static void assert_hint_for(const char *dir, const char *log_name)
{
    char hint[NAME_MAX + 2];
    size_t n = strlen(log_name) - 4;

    snprintf(hint, sizeof hint, "%.*s.hint", (int)n, log_name);
    if (tu_file_size(tu_path(dir, hint)) <= 0)
        fail_msg("sealed segment %s has no hint file %s", log_name, hint);
}

/* One *.log per live segment; every one but the newest (the active one) is sealed and has a
 * hint. Segment names are zero-padded ids, so sorting them sorts by age. */
static void assert_sealed_have_hints(const char *dir, uint64_t segments)
{
    struct dirent **logs;
    int n = scandir(dir, &logs, is_log, alphasort);

    assert_true(n > 1);
    assert_int_equal((uint64_t)n, segments);
    for (int i = 0; i < n; i++) {
        if (i < n - 1)
            assert_hint_for(dir, logs[i]->d_name);
        free(logs[i]);
    }
    free(logs);
}

static void check_many(kvs_t *db)
{
    assert_key_count(db, MANY);
    assert_true(tu_stats(db).segments > 1);
    tu_assert_keys(db, MANY);
}

static void test_many_keys_many_segments(void **state)
{
    tu_fixture *f = *state;

    tu_require_engine("kvs");
    f->opt.segment_size = 64 * 1024;
    f->opt.auto_compact = 0; /* nothing is dead anyway; keeps the file set as rotation left it */
    tu_fx_open(f);
    assert_int_equal(tu_put_keys(f->db, MANY), 0);
    /* Hints are written by the maintenance thread after rotation, and at the latest by close:
     * check_twice closes and reopens, so every sealed segment must have one by then. */
    tu_check_twice(f, check_many);
    assert_sealed_have_hints(f->dir, tu_stats(f->db).segments);
}

int main(int argc, char **argv)
{
    const char *group = tu_engine_from_args(argc, argv);
    const struct CMUnitTest tests[] = {
        TU_CASE_OPEN(test_get_stored_value),
        TU_CASE_OPEN(test_overwrite_value),
        TU_CASE_OPEN(test_get_missing_key),
        TU_CASE_OPEN(test_remove_key),
        TU_CASE_OPEN(test_remove_missing_key),
        TU_CASE_OPEN(test_configure_after_open),
        TU_CASE_CLOSED(test_bad_options),
        TU_CASE_OPEN(test_open_twice_is_busy),
        TU_CASE_OPEN(test_engine_named_explicitly),
        TU_CASE_OPEN(test_owns_dir_without_engine_file),
        TU_CASE_OPEN(test_engine_mismatch),
        TU_CASE_OPEN(test_key_and_value_limits),
        TU_CASE_OPEN(test_batch_with_a_bad_op),
        TU_CASE_OPEN(test_group_with_a_bad_op),
        TU_CASE_OPEN(test_lock_survives_a_deleted_lock_file),
        TU_CASE_OPEN(test_engine_file_contradicts_the_data),
        TU_CASE_OPEN(test_stats_follow_writes),
        TU_CASE_CLOSED(test_sync_never),
        TU_CASE_CLOSED(test_sync_everysec),
        TU_CASE_CLOSED(test_sync_always),
        TU_CASE_OPEN(test_threads_share_a_handle),
        TU_CASE_CLOSED(test_many_keys_many_segments),
    };
    return cmocka_run_group_tests_name(group, tests, NULL, NULL);
}
