/*
 * test_engine.c — the public API of kvs.h, case by case, the way the kvs course's engine tests
 * exercise a store: get what was set, overwrite, get and remove keys that are not there, remove
 * keys that are.
 *
 * A store that answers correctly only while its in-memory index is warm is not a store, so every
 * data case is checked twice: once on the handle that did the writes, and once more after
 * kvs_close and a fresh kvs_open of the same directory, where the answers must come from what
 * recovery rebuilt out of the files (check_twice).
 *
 * Around the data cases sit the contracts of the handle itself: options are checked by
 * kvs_configure and refused without side effects; configure after open is a state error; a
 * directory is owned by one handle at a time (the LOCK file) and names its engine (the ENGINE
 * file); keys and values beyond the limits are refused before a byte is written; the figures of
 * kvs_stats_get follow the writes; every sync mode keeps what was acknowledged across a close;
 * and a store spread over many rotated segments comes back whole, with a hint file for each
 * sealed segment so the next open need not scan it.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* ---- fixture: a scratch directory, the options to open it with, and the open handle ---- */

typedef struct fixture {
    char *dir;
    kvs_options opt;
    kvs_t *db;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);

    assert_non_null(f);
    f->dir = tu_mkdtemp();
    kvs_options_init(&f->opt);
    *state = f;
    return 0;
}

static void fx_open(fixture *f)
{
    f->db = tu_open(f->dir, &f->opt);
}

static int setup_open(void **state)
{
    setup(state);
    fx_open(*state);
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;

    kvs_close(f->db);
    tu_rm_rf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void fx_reopen(fixture *f)
{
    assert_int_equal(kvs_close(f->db), 0);
    f->db = NULL;
    fx_open(f);
}

/* Run check on the handle that wrote, then again after close + reopen of the same directory. */
static void check_twice(fixture *f, void (*check)(kvs_t *db))
{
    check(f->db);
    fx_reopen(f);
    check(f->db);
}

/* ---- small assertions ---- */

static kvs_stats stats_of(kvs_t *db)
{
    kvs_stats st;

    assert_int_equal(kvs_stats_get(db, &st), 0);
    return st;
}

static void set_str(kvs_t *db, const char *key, const char *val)
{
    assert_int_equal(kvs_set(db, key, strlen(key), val, strlen(val)), 0);
}

/* key is absent, and get says so the documented way: KVS_ENOTFOUND with *val == NULL. */
static void assert_absent(kvs_t *db, const char *key)
{
    void *val = &val; /* anything but NULL, so that the test sees get clear it */
    size_t len = 7;

    assert_int_equal(kvs_get(db, key, strlen(key), &val, &len), KVS_ENOTFOUND);
    assert_null(val);
}

/* Removing key finds nothing to remove and writes nothing. */
static void assert_remove_missing(kvs_t *db, const char *key)
{
    uint64_t before = stats_of(db).writes;

    assert_int_equal(kvs_remove(db, key, strlen(key)), KVS_ENOTFOUND);
    assert_int_equal(stats_of(db).writes, before);
}

static void key_of(char *buf, size_t cap, int i)
{
    snprintf(buf, cap, "key-%06d", i);
}

static void value_of(char *buf, size_t cap, int i)
{
    snprintf(buf, cap, "value-%d-%08x", i, (unsigned)i * 2654435761u);
}

static void put_keys(kvs_t *db, int n)
{
    char k[32], v[48];

    for (int i = 0; i < n; i++) {
        key_of(k, sizeof k, i);
        value_of(v, sizeof v, i);
        set_str(db, k, v);
    }
}

static void assert_keys(kvs_t *db, int n)
{
    char k[32], v[48];

    for (int i = 0; i < n; i++) {
        key_of(k, sizeof k, i);
        value_of(v, sizeof v, i);
        tu_assert_value(db, k, v);
    }
}

/* ---- the course's engine cases ---- */

static void check_stored(kvs_t *db)
{
    tu_assert_value(db, "key1", "value1");
    tu_assert_value(db, "key2", "value2");
}

static void test_get_stored_value(void **state)
{
    fixture *f = *state;

    set_str(f->db, "key1", "value1");
    set_str(f->db, "key2", "value2");
    check_twice(f, check_stored);
}

static void check_overwritten(kvs_t *db)
{
    tu_assert_value(db, "key1", "value2");
}

static void test_overwrite_value(void **state)
{
    fixture *f = *state;

    set_str(f->db, "key1", "value1");
    tu_assert_value(f->db, "key1", "value1");
    set_str(f->db, "key1", "value2");
    check_twice(f, check_overwritten);
    /* and over a value that recovery loaded from disk */
    set_str(f->db, "key1", "value3");
    tu_assert_value(f->db, "key1", "value3");
    fx_reopen(f);
    tu_assert_value(f->db, "key1", "value3");
}

static void check_missing(kvs_t *db)
{
    assert_absent(db, "key2");
    tu_assert_value(db, "key1", "value1");
}

static void test_get_missing_key(void **state)
{
    fixture *f = *state;

    assert_absent(f->db, "key1"); /* an empty store */
    set_str(f->db, "key1", "value1");
    check_twice(f, check_missing);
}

static void check_removed(kvs_t *db)
{
    assert_absent(db, "key1");
    tu_assert_value(db, "key2", "value2");
    assert_int_equal(stats_of(db).keys, 1);
}

static void test_remove_key(void **state)
{
    fixture *f = *state;

    set_str(f->db, "key1", "value1");
    set_str(f->db, "key2", "value2");
    tu_assert_value(f->db, "key1", "value1");
    assert_int_equal(kvs_remove(f->db, "key1", 4), 0);
    check_twice(f, check_removed);
}

static void check_remove_missing(kvs_t *db)
{
    assert_remove_missing(db, "key1"); /* never set */
    assert_remove_missing(db, "key2"); /* set, then removed */
}

static void test_remove_missing_key(void **state)
{
    fixture *f = *state;

    assert_remove_missing(f->db, "key1"); /* an empty store */
    set_str(f->db, "key2", "value2");
    assert_int_equal(kvs_remove(f->db, "key2", 4), 0);
    check_twice(f, check_remove_missing);
}

/* ---- lifecycle ---- */

static void test_configure_after_open(void **state)
{
    fixture *f = *state;

    assert_int_equal(kvs_configure(f->db, &f->opt), KVS_ESTATE);
    assert_int_equal(kvs_open(f->db, f->dir), KVS_ESTATE);
    set_str(f->db, "k", "v"); /* the refused calls left the handle working */
    tu_assert_value(f->db, "k", "v");
}

/* Options that differ from the defaults in sync mode, as a base for the bad sets below. */
static kvs_options never_synced(void)
{
    kvs_options opt;

    kvs_options_init(&opt);
    opt.sync = KVS_SYNC_NEVER;
    return opt;
}

/* configure refuses bad with want, and leaves the handle as it was: it opens with the options
 * configured before (sync ALWAYS), none of bad's half-applied. */
static void expect_rejected(const char *dir, kvs_options bad, int want)
{
    kvs_options good;
    kvs_t *db;

    kvs_options_init(&good);
    good.sync = KVS_SYNC_ALWAYS;
    assert_int_equal(kvs_create(&db), 0);
    assert_int_equal(kvs_configure(db, &good), 0);
    assert_int_equal(kvs_configure(db, &bad), want);
    assert_int_equal(kvs_open(db, dir), 0);
    assert_int_equal(stats_of(db).sync, KVS_SYNC_ALWAYS);
    assert_int_equal(kvs_close(db), 0);
}

static void test_bad_options(void **state)
{
    fixture *f = *state;
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
    fixture *f = *state;
    kvs_t *second;

    set_str(f->db, "k", "from the first");
    assert_int_equal(kvs_create(&second), 0);
    assert_int_equal(kvs_open(second, f->dir), KVS_EBUSY);
    assert_non_null(strstr(kvs_last_error(), "in use"));
    assert_int_equal(kvs_close(f->db), 0);
    f->db = NULL;
    assert_int_equal(kvs_open(second, f->dir), 0);
    tu_assert_value(second, "k", "from the first");
    f->db = second;
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
    fixture *f = *state;
    char name[64];

    f->opt.engine = "kvs";
    fx_open(f);
    set_str(f->db, "k", "v");
    read_engine_file(f->dir, name, sizeof name);
    assert_string_equal(name, "kvs");
    f->opt.engine = NULL;
    fx_reopen(f);
    assert_string_equal(stats_of(f->db).engine, "kvs");
    tu_assert_value(f->db, "k", "v");
}

/* ---- limits ---- */

static void *filled(size_t n)
{
    unsigned char *p = malloc(n);

    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 31 + 7);
    return p;
}

static void check_limits(kvs_t *db)
{
    unsigned char *key = filled(KVS_MAX_KEY + 1);
    kvs_stats before = stats_of(db), after;
    void *val;
    size_t len;

    assert_int_equal(kvs_get(db, key, KVS_MAX_KEY, &val, &len), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(val, "max", 3);
    kvs_free(val);
    assert_int_equal(kvs_set(db, key, KVS_MAX_KEY + 1, "v", 1), KVS_EKEYTOOBIG);
    assert_int_equal(kvs_get(db, key, KVS_MAX_KEY + 1, &val, &len), KVS_EKEYTOOBIG);
    assert_int_equal(kvs_remove(db, key, KVS_MAX_KEY + 1), KVS_EKEYTOOBIG);
    /* A huge length behind a 2-byte buffer: the limit must be checked before the value is read. */
    assert_int_equal(kvs_set(db, "k", 1, "x", (size_t)KVS_MAX_VALUE + 1), KVS_EVALTOOBIG);
    after = stats_of(db);
    assert_int_equal(after.writes, before.writes);
    assert_int_equal(after.disk_bytes, before.disk_bytes);
    assert_int_equal(after.keys, 1);
    free(key);
}

static void test_key_and_value_limits(void **state)
{
    fixture *f = *state;
    unsigned char *key = filled(KVS_MAX_KEY);

    assert_int_equal(kvs_set(f->db, key, KVS_MAX_KEY, "max", 3), 0);
    free(key);
    check_twice(f, check_limits);
}

/* ---- stats ---- */

static void assert_key_count(kvs_t *db, uint64_t want)
{
    assert_int_equal(stats_of(db).keys, want);
}

static void check_stats(kvs_t *db)
{
    assert_key_count(db, 2);
    assert_string_equal(stats_of(db).engine, "kvs");
}

static void test_stats_follow_writes(void **state)
{
    fixture *f = *state;

    assert_key_count(f->db, 0);
    set_str(f->db, "a", "1");
    set_str(f->db, "b", "2");
    set_str(f->db, "c", "3");
    assert_key_count(f->db, 3);
    set_str(f->db, "a", "overwritten");
    assert_key_count(f->db, 3);
    assert_int_equal(kvs_remove(f->db, "b", 1), 0);
    assert_key_count(f->db, 2);
    assert_int_equal(kvs_remove(f->db, "b", 1), KVS_ENOTFOUND);
    assert_key_count(f->db, 2);
    assert_int_equal(stats_of(f->db).writes, 5);
    check_twice(f, check_stats);
}

/* ---- sync modes ---- */

static void sync_case(fixture *f, kvs_sync mode)
{
    kvs_stats st;

    f->opt.sync = mode;
    fx_open(f);
    put_keys(f->db, 100);
    st = stats_of(f->db);
    assert_int_equal(st.sync, mode);
    assert_int_equal(st.writes, 100);
    if (mode == KVS_SYNC_ALWAYS)
        assert_true(st.syncs >= 100);
    fx_reopen(f);
    assert_keys(f->db, 100);
    assert_int_equal(stats_of(f->db).keys, 100);
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

/* ---- many keys over many segments ---- */

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
    kvs_stats st = stats_of(db);

    assert_int_equal(st.keys, MANY);
    assert_true(st.segments > 1);
    assert_keys(db, MANY);
}

static void test_many_keys_many_segments(void **state)
{
    fixture *f = *state;

    f->opt.segment_size = 64 * 1024;
    f->opt.auto_compact = 0; /* nothing is dead anyway; keeps the file set as rotation left it */
    fx_open(f);
    put_keys(f->db, MANY);
    assert_sealed_have_hints(f->dir, stats_of(f->db).segments); /* written at rotation */
    check_twice(f, check_many);
    assert_sealed_have_hints(f->dir, stats_of(f->db).segments); /* still there, or rewritten */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_stored_value, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_overwrite_value, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_get_missing_key, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_remove_key, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_remove_missing_key, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_configure_after_open, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_twice_is_busy, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_engine_named_explicitly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_and_value_limits, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_stats_follow_writes, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_sync_never, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_everysec, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_always, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_keys_many_segments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
