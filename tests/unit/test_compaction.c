/*
 * test_compaction.c — compaction reclaims space and never changes what the store holds.
 *
 * The kvs course's case first: 1000 keys overwritten in rounds with the round number, up to 1000
 * rounds, with the default options. The directory must shrink at some point (compaction ran and
 * deleted what it replaced), and after reopening every key holds its last value.
 *
 * Then the tombstone rule, through the engine's internal entry point that compacts a chosen set
 * of segments: a removed key must stay removed whichever subset of segments is compacted —
 * compacting the segment holding the tombstone while an older segment still holds the key's
 * value must keep the tombstone, or the value would come back at the next open.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/log/logdb.h"
#include "testutil.h"

#define KEYS 1000
#define ROUNDS 1000

static void test_course_compaction(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp(), key[32], val[32];
    kvs_options o;
    kvs_options_init(&o);
    /* This thread writes flat out: a paced, low-priority compactor could fall behind it for
     * the whole loop on a busy machine (the rate limit's own tests are below). */
    o.compact_rate = 0;
    o.compact_nice = 0;
    kvs_t *db = tu_open(dir, &o);
    uint64_t size = tu_dir_size(dir), peak = size;
    int round;

    for (round = 0; round < ROUNDS; round++) {
        for (int k = 0; k < KEYS; k++) {
            snprintf(key, sizeof key, "key%d", k);
            snprintf(val, sizeof val, "%d", round);
            tu_set(db, key, val);
        }
        uint64_t now = tu_dir_size(dir);
        if (now > peak)
            peak = now;
        /* a rotation alone can shrink the directory a little (the sealed segment gives back its
         * preallocated tail): only a shrink with a compaction behind it counts */
        if (now < size && tu_stats(db).compactions > 0)
            break;
        size = now;
    }
    if (round == ROUNDS)
        fail_msg("no compaction detected in %d rounds (directory grew to %llu bytes)", ROUNDS,
                 (unsigned long long)size);
    kvs_stats st;
    assert_int_equal(kvs_stats_get(db, &st), 0);
    assert_true(st.compactions >= 1);
    assert_true(st.compact_reclaimed > 0);
    printf("# compaction seen after round %d: peak %llu bytes, then %llu bytes; %llu runs, "
           "%llu bytes reclaimed, last run %llu us\n",
           round, (unsigned long long)peak, (unsigned long long)tu_dir_size(dir),
           (unsigned long long)st.compactions, (unsigned long long)st.compact_reclaimed,
           (unsigned long long)st.compact_last_usec);
    assert_int_equal(kvs_close(db), 0);

    db = tu_open(dir, &o);
    snprintf(val, sizeof val, "%d", round);
    for (int k = 0; k < KEYS; k++) {
        snprintf(key, sizeof key, "key%d", k);
        tu_assert_value(db, key, val);
    }
    printf("# after reopen: %llu bytes\n", (unsigned long long)tu_dir_size(dir));
    kvs_close(db);
    tu_rm_rf(dir);
    free(dir);
}

static kvs_options small_manual(void)
{
    kvs_options o;
    kvs_options_init(&o);
    o.segment_size = 4096;
    o.auto_compact = 0;
    return o;
}

/* Fill until the active segment rotates, so what was written before is sealed. */
static void seal_active(kvs_t *db, const char *prefix)
{
    logdb *ldb = kvs_engine_impl(db);
    seg *start = ldb->active;
    char key[64];

    for (int i = 0; ldb->active == start; i++) {
        snprintf(key, sizeof key, "%s-%d", prefix, i);
        tu_set(db, key, "filler-value-filler-value");
    }
}

/* The sealed segment that holds the record key currently resolves to... or, for a removed key,
 * the segment id of a marker: we locate segments by id order instead (see callers). */
static seg *segment_by_index(kvs_t *db, uint32_t i)
{
    logdb *ldb = kvs_engine_impl(db);
    assert_true(i < ldb->nsegs);
    return ldb->segs[i];
}

static void compact_one(kvs_t *db, seg *s)
{
    logdb *ldb = kvs_engine_impl(db);
    int64_t r = ldb_compact_segments(ldb, &s, 1);
    if (r < 0)
        fail_msg("compaction: %s", kvs_last_error());
}

static void reopen(kvs_t **db, const char *dir, const kvs_options *o)
{
    assert_int_equal(kvs_close(*db), 0);
    *db = tu_open(dir, o);
}

static void test_tombstone_kept_while_older_value_outside(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    kvs_options o = small_manual();
    kvs_t *db = tu_open(dir, &o);

    tu_set(db, "victim", "old-value"); /* lands in the first segment */
    seal_active(db, "a");
    assert_int_equal(kvs_remove(db, "victim", 6), 0); /* tombstone in the second */
    seal_active(db, "b");
    /* Segments now: [0] holds the value, [1] holds the tombstone, [2] is active. */
    seg *tomb_seg = segment_by_index(db, 1);
    compact_one(db, tomb_seg);
    tu_assert_value(db, "victim", NULL);
    reopen(&db, dir, &o);
    tu_assert_value(db, "victim", NULL);

    /* Compacting the value's segment drops the dead value; the key stays removed. */
    compact_one(db, segment_by_index(db, 0));
    reopen(&db, dir, &o);
    tu_assert_value(db, "victim", NULL);

    /* Now nothing older remains: a full compaction may drop the tombstone itself. */
    assert_true(kvs_compact(db) >= 0);
    reopen(&db, dir, &o);
    tu_assert_value(db, "victim", NULL);
    tu_assert_value(db, "a-0", "filler-value-filler-value");
    kvs_close(db);
    tu_rm_rf(dir);
    free(dir);
}

static bool file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    char buf[1 << 16];
    size_t n;

    assert_non_null(f);
    n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return memmem(buf, n, needle, strlen(needle)) != NULL;
}

static void test_tombstone_dropped_when_value_compacted_with_it(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    kvs_options o = small_manual();
    kvs_t *db = tu_open(dir, &o);

    tu_set(db, "gone", "value");
    assert_int_equal(kvs_remove(db, "gone", 4), 0);
    tu_set(db, "kept", "value");
    seal_active(db, "c");
    /* One sealed segment holds both value and tombstone of "gone". */
    compact_one(db, segment_by_index(db, 0));
    /* Nothing older than the tombstone is left anywhere, so neither value nor tombstone of
     * "gone" may survive in the output. */
    logdb *ldb = kvs_engine_impl(db);
    for (uint32_t i = 0; i < ldb->nsegs; i++)
        if (ldb->segs[i] != ldb->active)
            assert_false(file_contains(ldb->segs[i]->path, "gone"));
    reopen(&db, dir, &o);
    tu_assert_value(db, "gone", NULL);
    tu_assert_value(db, "kept", "value");
    kvs_close(db);
    tu_rm_rf(dir);
    free(dir);
}

static void test_overwrite_after_compaction_wins(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    kvs_options o = small_manual();
    kvs_t *db = tu_open(dir, &o);

    tu_set(db, "k", "v1");
    seal_active(db, "d");
    tu_set(db, "k", "v2"); /* newer value in the active segment */
    assert_true(kvs_compact(db) >= 0);
    tu_assert_value(db, "k", "v2");
    reopen(&db, dir, &o);
    tu_assert_value(db, "k", "v2");
    kvs_close(db);
    tu_rm_rf(dir);
    free(dir);
}

/* ---- the maintenance thread's rate limit and priority (kvs_options.compact_rate, _nice) ---- */

#define PACE_KEYS 512
#define PACE_VLEN 1000

/* Small segments, compaction on its own once 256 KiB are dead, at rate bytes a second. */
static kvs_options paced(uint64_t rate)
{
    kvs_options o;
    kvs_options_init(&o);
    o.segment_size = 64u << 10;
    o.compact_min_bytes = 256u << 10;
    o.compact_rate = rate;
    return o;
}

/* Write PACE_KEYS keys of PACE_VLEN bytes, rounds times over (value: round's letter). */
static void write_rounds(kvs_t *db, int rounds)
{
    char key[32], val[PACE_VLEN + 1];

    for (int r = 0; r < rounds; r++) {
        memset(val, 'a' + r, PACE_VLEN);
        val[PACE_VLEN] = 0;
        for (int k = 0; k < PACE_KEYS; k++) {
            snprintf(key, sizeof key, "pace-%d", k);
            tu_set(db, key, val);
        }
    }
}

static void assert_round(kvs_t *db, int round)
{
    char key[32], val[PACE_VLEN + 1];

    memset(val, 'a' + round, PACE_VLEN);
    val[PACE_VLEN] = 0;
    for (int k = 0; k < PACE_KEYS; k++) {
        snprintf(key, sizeof key, "pace-%d", k);
        tu_assert_value(db, key, val);
    }
}

/* Wait (up to 60 s, not a timing assertion: a bound on a hang) until a background run has
 * finished, and return the stats then. */
static kvs_stats wait_compacted(kvs_t *db)
{
    kvs_stats st;

    for (int i = 0; i < 6000; i++) {
        st = tu_stats(db);
        if (st.compactions >= 1 && !st.compacting)
            return st;
        usleep(10000);
    }
    fail_msg("no background compaction within 60 s");
    return st;
}

/* A background run of N input bytes at a limit of L bytes a second sleeps (compact_paced_usec)
 * and, if it is the only one, lasts at least about N / L: its victims hold more than what it
 * reclaimed. With no limit it never sleeps. */
static void test_rate_limit_paces_background_compaction(void **state)
{
    (void)state;
    const uint64_t rate = 1u << 20;
    char *dir = tu_mkdtemp();
    kvs_options o = paced(rate);
    kvs_t *db = tu_open(dir, &o);

    write_rounds(db, 3); /* 1.5 MiB written, 1 MiB of it dead */
    kvs_stats st = wait_compacted(db);
    printf("# paced: %llu runs, %llu bytes reclaimed, last run %llu us, slept %llu us\n",
           (unsigned long long)st.compactions, (unsigned long long)st.compact_reclaimed,
           (unsigned long long)st.compact_last_usec, (unsigned long long)st.compact_paced_usec);
    assert_true(st.compact_paced_usec > 0);
    if (st.compactions == 1) /* less PACE_MIN_USEC: the run may end that far ahead */
        assert_true(st.compact_last_usec + 2000 >= st.compact_reclaimed * 1000000 / rate);
    assert_round(db, 2);
    kvs_close(db);
    tu_rm_rf(dir);

    o = paced(0);
    db = tu_open(dir, &o);
    write_rounds(db, 3);
    st = wait_compacted(db);
    assert_int_equal(st.compact_paced_usec, 0);
    assert_round(db, 2);
    kvs_close(db);
    tu_rm_rf(dir);
    free(dir);
}

/* A store closed while a paced run sleeps gives it up (its outputs deleted) rather than waiting
 * for it — at 16 KiB a second it would last about a minute — and holds what it held. */
static void test_close_cuts_a_paced_run_short(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    kvs_options o = paced(16u << 10);
    kvs_t *db = tu_open(dir, &o);

    write_rounds(db, 3);
    for (int i = 0; i < 6000 && !tu_stats(db).compacting; i++)
        usleep(10000);
    assert_int_equal(tu_stats(db).compacting, 1);
    assert_int_equal(kvs_close(db), 0);
    o.auto_compact = 0;
    db = tu_open(dir, &o);
    assert_round(db, 2);
    assert_int_equal(tu_stats(db).keys, PACE_KEYS);
    kvs_close(db);
    tu_rm_rf(dir);
    free(dir);
}

/* The nice value of thread name in this process (/proc/self/task/TID/stat, field 19), or 99 if
 * no thread has that name. */
static int nice_of_thread(const char *name)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int nice = 99;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL && nice == 99) {
        char path[300], comm[32] = "", stat[1024];
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(comm, sizeof comm, f))
            comm[strcspn(comm, "\n")] = 0;
        fclose(f);
        if (strcmp(comm, name) != 0)
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
        if (!(f = fopen(path, "r")))
            continue;
        size_t n = fread(stat, 1, sizeof stat - 1, f);
        fclose(f);
        stat[n] = 0;
        const char *p = strrchr(stat, ')'); /* fields from 3 on follow the name's ')' */
        assert_non_null(p);
        for (int field = 2; field < 19 && p; field++)
            p = strchr(p + 1, ' ');
        assert_non_null(p);
        nice = atoi(p + 1);
    }
    closedir(d);
    return nice;
}

/* compact_nice lowers the maintenance thread's priority by that much, and only its. */
static void test_compact_nice_applied(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    kvs_options o;
    kvs_options_init(&o);
    o.compact_nice = 7;
    errno = 0;
    int base = getpriority(PRIO_PROCESS, 0);
    assert_int_equal(errno, 0);
    kvs_t *db = tu_open(dir, &o);

    int want = base + 7 > 19 ? 19 : base + 7;
    assert_int_equal(nice_of_thread("kvs-maintenance"), want);
    assert_int_equal(nice_of_thread("kvs-sync"), base);
    kvs_close(db);

    o.compact_nice = 0;
    db = tu_open(dir, &o);
    assert_int_equal(nice_of_thread("kvs-maintenance"), base);
    kvs_close(db);

    o.compact_nice = 20;
    kvs_t *bad;
    assert_int_equal(kvs_create(&bad), 0);
    assert_int_equal(kvs_configure(bad, &o), KVS_EINVAL);
    kvs_close(bad);
    tu_rm_rf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_course_compaction),
        cmocka_unit_test(test_tombstone_kept_while_older_value_outside),
        cmocka_unit_test(test_tombstone_dropped_when_value_compacted_with_it),
        cmocka_unit_test(test_overwrite_after_compaction_wins),
        cmocka_unit_test(test_rate_limit_paces_background_compaction),
        cmocka_unit_test(test_close_cuts_a_paced_run_short),
        cmocka_unit_test(test_compact_nice_applied),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
