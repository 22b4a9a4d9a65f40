/*
 * test_crash.c — a crash at any step of compaction loses nothing and resurrects nothing.
 *
 * Compaction has five steps (compact.c): outputs written, outputs synced, hints written, the
 * manifest edit, the old files deleted. For each step this test builds a store with overwrites
 * and removes spread over many small segments, then runs compaction in a child process that
 * dies (_exit) right after that step — the engine's test hook kvs_test_crash_point. Reopening
 * must give exactly the key/value set of before: every live key with its last value, every
 * removed key absent. Each step is tried with a full compaction and with one of only some
 * segments (every other sealed one), the case where a tombstone must outlive the compaction
 * because an uncompacted segment still holds an older value of its key. Leftover files of the
 * interrupted step must be gone after the reopen.
 *
 * The child is this same binary run again (fork + exec of /proc/self/exe with --crash-child):
 * a clean process, rather than a fork of one whose RCU threads are mid-flight.
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

#define KEYS 400

static kvs_options crash_options(void)
{
    kvs_options o;
    kvs_options_init(&o);
    o.segment_size = 4096;
    o.auto_compact = 0;
    return o;
}

/* The final state of key i: present with a value, or removed. */
static const char *model(int i, char *buf, size_t cap)
{
    if (i % 15 == 0)
        snprintf(buf, cap, "third-%d", i); /* removed, then set again */
    else if (i % 5 == 0)
        return NULL;                       /* removed */
    else if (i % 2 == 0)
        snprintf(buf, cap, "second-%d", i);
    else
        snprintf(buf, cap, "first-%d", i);
    return buf;
}

static void put(kvs_t *db, const char *k, const char *v)
{
    assert_int_equal(kvs_set(db, k, strlen(k), v, strlen(v)), 0);
}

static char *build_store(void)
{
    char *dir = tu_mkdtemp(), key[16], val[32];
    kvs_options o = crash_options();
    kvs_t *db = tu_open(dir, &o);

    for (int i = 0; i < KEYS; i++) {
        snprintf(key, sizeof key, "key%d", i);
        snprintf(val, sizeof val, "first-%d", i);
        put(db, key, val);
    }
    for (int i = 0; i < KEYS; i += 2) {
        snprintf(key, sizeof key, "key%d", i);
        snprintf(val, sizeof val, "second-%d", i);
        put(db, key, val);
    }
    for (int i = 0; i < KEYS; i += 5) {
        snprintf(key, sizeof key, "key%d", i);
        assert_int_equal(kvs_remove(db, key, strlen(key)), 0);
    }
    for (int i = 0; i < KEYS; i += 15) {
        snprintf(key, sizeof key, "key%d", i);
        snprintf(val, sizeof val, "third-%d", i);
        put(db, key, val);
    }
    assert_int_equal(kvs_close(db), 0);
    return dir;
}

static void check_model(kvs_t *db)
{
    char key[16], val[32];

    for (int i = 0; i < KEYS; i++) {
        snprintf(key, sizeof key, "key%d", i);
        tu_assert_value(db, key, model(i, val, sizeof val));
    }
}

static uint64_t count_logs(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    uint64_t n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".log") == 0)
            n++;
    }
    closedir(d);
    return n;
}

/* In the child: compact (all, or every other sealed segment) with the crash hook armed. */
static int crash_child(const char *dir, int point, int partial)
{
    kvs_options o = crash_options();
    kvs_t *db;
    int64_t r;

    if (kvs_create(&db) < 0 || kvs_configure(db, &o) < 0 || kvs_open(db, dir) < 0)
        return 2;
    kvs_test_crash_point = point;
    if (partial) {
        r = tu_compact_every_other(db);
    } else {
        r = kvs_compact(db);
    }
    fprintf(stderr, "crash child: compaction returned %lld without crashing\n", (long long)r);
    return 3;
}

static void run_crash(int point, int partial)
{
    char *dir = build_store(), pt[8], part[8];
    char *argv[] = {"/proc/self/exe", "--crash-child", dir, pt, part, NULL};
    kvs_options o = crash_options();
    int status;

    snprintf(pt, sizeof pt, "%d", point);
    snprintf(part, sizeof part, "%d", partial);
    if ((status = tu_run_self(argv)) != CRASH_EXIT)
        fail_msg("child did not stop at step %d (status %d)", point, status);

    kvs_t *db = tu_open(dir, &o);
    check_model(db);
    kvs_stats st;
    assert_int_equal(kvs_stats_get(db, &st), 0);
    assert_int_equal(count_logs(dir), st.segments); /* leftovers deleted */
    assert_true(kvs_compact(db) >= 0);                /* and the store goes on working */
    check_model(db);
    assert_int_equal(kvs_close(db), 0);
    db = tu_open(dir, &o);
    check_model(db);
    assert_int_equal(kvs_close(db), 0);
    tu_rm_rf(dir);
    free(dir);
}

static void test_crash_full(void **state)
{
    (void)state;
    for (int p = CRASH_AFTER_OUTPUT; p <= CRASH_AFTER_DELETE; p++)
        run_crash(p, 0);
}

static void test_crash_partial(void **state)
{
    (void)state;
    for (int p = CRASH_AFTER_OUTPUT; p <= CRASH_AFTER_DELETE; p++)
        run_crash(p, 1);
}

static void test_no_crash_baseline(void **state)
{
    (void)state;
    char *dir = build_store();
    kvs_options o = crash_options();
    kvs_t *db = tu_open(dir, &o);

    check_model(db);
    assert_true(kvs_compact(db) > 0);
    check_model(db);
    assert_int_equal(kvs_close(db), 0);
    db = tu_open(dir, &o);
    check_model(db);
    assert_int_equal(kvs_close(db), 0);
    tu_rm_rf(dir);
    free(dir);
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--crash-child") == 0)
        return crash_child(argv[2], atoi(argv[3]), atoi(argv[4]));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_crash_baseline),
        cmocka_unit_test(test_crash_full),
        cmocka_unit_test(test_crash_partial),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
