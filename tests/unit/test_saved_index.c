/*
 * test_saved_index.c — the saved index (src/engine/log/saved.h): written at a clean close,
 * loaded at the next open in place of a rebuild, and never trusted where it could be wrong.
 *
 *   - same as a rebuild: a store with overwrites, removes, a compaction and many segments,
 *     opened from its saved index and (a copy of it, where the saved index does not match the
 *     files) rebuilt: the same keys and values, the same stats (index_bytes, index_keys_left
 *     under a budget), the same figures per segment (dead bytes: what compaction chooses by),
 *     and the same compaction after;
 *   - a crash at each step of writing it (INDEX.tmp partly written, written and synced, renamed
 *     before the directory sync), a torn or garbage INDEX.tmp, an INDEX cut short or with a bit
 *     flipped anywhere: the store opens with the same keys, the bad file refused (logged) and
 *     removed;
 *   - a saved index that no longer matches the store (a segment added, a segment compacted
 *     away, the active segment shorter or its bytes changed) is refused and the index rebuilt;
 *   - writes after an open from a saved index, then a kill (a child process that exits
 *     without closing): the file was moved aside at that open, and the reopen has every write;
 *     and a saved index put back after such writes (a rename the disk lost) is still exact: the
 *     active segment's newer records are replayed over it;
 *   - the file moved aside (INDEX.old) is unlinked soon after the open, and one a crash left is
 *     removed at the next open, never read;
 *   - a store whose open found damage saves none.
 *
 * The children are this binary run again (--child ...), as test_crash.c does: a crash is an
 * _exit in a clean process.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/log/logdb.h"
#include "engine/log/saved.h"
#include "testutil.h"

#define KEYS 1500
#define BUDGET (1u << 20)

static kvs_options options(void)
{
    kvs_options o;
    kvs_options_init(&o);
    o.engine = "kvs";
    o.segment_size = 8192;
    o.auto_compact = 0;
    o.max_index_memory = BUDGET;
    return o;
}

/* ---- the model: what each key holds (NULL: absent) ---- */

typedef struct model {
    char *v[KEYS];
} model;

static void key_name(int i, char *buf, size_t cap)
{
    snprintf(buf, cap, "key-%05d", i);
}

static void model_free(model *m)
{
    for (int i = 0; i < KEYS; i++)
        free(m->v[i]);
    free(m);
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* ops random writes: 70% sets (new keys and overwrites, values of random length), 30% removes
 * of keys present. */
static void workload(kvs_t *db, model *m, uint64_t *rng, int ops)
{
    char key[32], val[160];

    for (int n = 0; n < ops; n++) {
        int i = (int)(rng_next(rng) % KEYS);
        key_name(i, key, sizeof key);
        if (rng_next(rng) % 10 < 7) {
            int len = snprintf(val, sizeof val, "v%llu-", (unsigned long long)rng_next(rng));
            int pad = (int)(rng_next(rng) % 100);
            memset(val + len, 'a' + n % 26, (size_t)pad);
            val[len + pad] = 0;
            tu_set(db, key, val);
            free(m->v[i]);
            m->v[i] = strdup(val);
        } else if (m->v[i]) {
            assert_int_equal(kvs_remove(db, key, strlen(key)), 0);
            free(m->v[i]);
            m->v[i] = NULL;
        }
    }
}

static void check_model(kvs_t *db, const model *m)
{
    char key[32];
    uint64_t present = 0;

    for (int i = 0; i < KEYS; i++) {
        key_name(i, key, sizeof key);
        tu_assert_value(db, key, m->v[i]);
        present += m->v[i] != NULL;
    }
    assert_int_equal(tu_stats(db).keys, present); /* and no key beside the model's */
}

/* A store of several segments, compactions (one of only some segments, which copies
 * tombstones forward), and writes after them (overwrites of keys that live in the outputs,
 * removes whose tombstones the outputs kept). Closed. */
static char *build_store(model **out, uint64_t seed)
{
    char *dir = tu_mkdtemp();
    kvs_options o = options();
    kvs_t *db = tu_open(dir, &o);
    model *m = calloc(1, sizeof *m);
    uint64_t rng = seed;

    assert_non_null(m);
    workload(db, m, &rng, 3000);
    assert_true(kvs_compact(db) > 0);
    workload(db, m, &rng, 3000);
    assert_true(tu_compact_every_other(db) > 0);
    workload(db, m, &rng, 2000);
    check_model(db, m);
    assert_int_equal(kvs_close(db), 0);
    *out = m;
    return dir;
}

/* ---- what an open holds: stats, per-segment figures, seq ---- */

typedef struct seg_fig {
    uint32_t id;
    bool sealed, active;
    uint64_t size, dead, min_seq, max_seq, unreadable;
} seg_fig;

typedef struct snap {
    kvs_stats st;
    uint64_t seq;
    uint32_t nsegs;
    seg_fig seg[512];
} snap;

static void take_snap(kvs_t *db, snap *s)
{
    logdb *l = kvs_engine_impl(db);

    memset(s, 0, sizeof *s);
    assert_int_equal(kvs_stats_get(db, &s->st), 0);
    pthread_mutex_lock(&l->wmu);
    s->seq = l->seq;
    s->nsegs = l->nsegs;
    assert_true(l->nsegs <= 512);
    for (uint32_t i = 0; i < l->nsegs; i++) {
        seg *g = l->segs[i];
        s->seg[i] = (seg_fig){g->id, g->sealed, g == l->active, g->size,
                              __atomic_load_n(&g->dead, __ATOMIC_RELAXED), g->min_seq,
                              g->max_seq, g->unreadable};
    }
    pthread_mutex_unlock(&l->wmu);
}

#define SAME(field)                                                                           \
    do {                                                                                      \
        if (a->field != b->field)                                                             \
            fail_msg("%s: %llu after the saved index, %llu after a rebuild", #field,          \
                     (unsigned long long)a->field, (unsigned long long)b->field);             \
    } while (0)

static void assert_same(const snap *a, const snap *b)
{
    SAME(st.keys);
    SAME(st.live_bytes);
    SAME(st.dead_bytes);
    SAME(st.disk_bytes);
    SAME(st.segments);
    SAME(st.index_bytes);
    SAME(st.index_max_bytes);
    SAME(st.index_keys_left);
    SAME(st.corrupt_records);
    SAME(seq);
    SAME(nsegs);
    for (uint32_t i = 0; i < a->nsegs; i++) {
        SAME(seg[i].id);
        SAME(seg[i].sealed);
        SAME(seg[i].active);
        SAME(seg[i].size);
        SAME(seg[i].dead);
        SAME(seg[i].min_seq);
        SAME(seg[i].max_seq);
        SAME(seg[i].unreadable);
    }
}

/* ---- files ---- */

static bool exists(const char *dir, const char *name)
{
    struct stat st;
    return stat(tu_path(dir, name), &st) == 0;
}

/* Copy every regular file of from into the new directory to (new inodes: a saved index copied
 * along does not match the copies). */
static char *copy_store(const char *from)
{
    char *to = tu_mkdtemp(), src[4096], dst[4096];
    DIR *d = opendir(from);
    struct dirent *de;
    struct stat st;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        snprintf(src, sizeof src, "%s/%s", from, de->d_name);
        if (stat(src, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        size_t len;
        unsigned char *b = tu_slurp(src, &len);
        snprintf(dst, sizeof dst, "%s/%s", to, de->d_name);
        tu_spill(dst, b, len);
        free(b);
    }
    closedir(d);
    return to;
}

static unsigned char *read_saved(const char *dir, size_t *len)
{
    return tu_slurp(tu_path(dir, SAVED_FILE), len);
}

static void put_saved(const char *dir, const unsigned char *b, size_t len)
{
    tu_spill(tu_path(dir, SAVED_FILE), b, len);
}

/* Open dir, asserting whether the saved index was used (and that it is gone after the open
 * either way); with refused_why, that a refusal naming it was logged. */
static kvs_t *open_expect(const char *dir, bool used, const char *refused_why)
{
    kvs_options o = options();

    tu_log_capture(KVS_LOG_INFO);
    kvs_t *db = tu_open(dir, &o);
    const char *log = tu_log_text();
    bool loaded = strstr(log, "the index loaded from the saved one") != NULL;
    if (loaded != used)
        fail_msg("saved index %s, expected %s; log:\n%s", loaded ? "used" : "not used",
                 used ? "used" : "not used", log);
    if (refused_why && (!strstr(log, "saved index not used") || !strstr(log, refused_why)))
        fail_msg("no refusal naming \"%s\" logged:\n%s", refused_why, log);
    tu_log_release();
    assert_false(exists(dir, SAVED_FILE));
    assert_false(exists(dir, SAVED_FILE ".tmp"));
    return db;
}

/* Open dir as open_expect does, check the model, close. */
static void reopen_check(const char *dir, bool used, const char *refused_why, const model *m)
{
    kvs_t *db = open_expect(dir, used, refused_why);

    check_model(db, m);
    assert_int_equal(kvs_close(db), 0);
}

static void drop_store(char *dir, model *m)
{
    model_free(m);
    tu_rm_rf(dir);
    free(dir);
}

/* ---- children ---- */

/* --child close DIR POINT: open, arm the crash point, close (which should not return). */
static int child_close(const char *dir, int point)
{
    kvs_options o = options();
    kvs_t *db;

    if (kvs_create(&db) < 0 || kvs_configure(db, &o) < 0 || kvs_open(db, dir) < 0)
        return 2;
    kvs_test_crash_point = point;
    kvs_close(db);
    fprintf(stderr, "child: close returned without crashing at step %d\n", point);
    return 3;
}

/* --child write DIR FIRST N: open, set keys FIRST .. FIRST + N - 1 to "late-<i>", and die
 * without closing (as kill -9 would: everything written is in the page cache). */
static int child_write(const char *dir, int first, int n)
{
    kvs_options o = options();
    char key[32], val[32];
    kvs_t *db;

    if (kvs_create(&db) < 0 || kvs_configure(db, &o) < 0 || kvs_open(db, dir) < 0)
        return 2;
    for (int i = first; i < first + n; i++) {
        key_name(i, key, sizeof key);
        snprintf(val, sizeof val, "late-%d", i);
        if (kvs_set(db, key, strlen(key), val, strlen(val)) < 0)
            return 4;
    }
    _exit(0);
}

static void late_writes(const char *dir, model *m, int first, int n)
{
    char a1[16], a2[16], d[4096];
    snprintf(d, sizeof d, "%s", dir);
    snprintf(a1, sizeof a1, "%d", first);
    snprintf(a2, sizeof a2, "%d", n);
    char *argv[] = {"/proc/self/exe", "--child", "write", d, a1, a2, NULL};
    assert_int_equal(tu_run_self(argv), 0);
    for (int i = first; i < first + n; i++) {
        char val[32];
        snprintf(val, sizeof val, "late-%d", i);
        free(m->v[i]);
        m->v[i] = strdup(val);
    }
}

/* ---- cases ---- */

static void test_same_as_rebuild(void **state)
{
    (void)state;
    uint64_t seed = 0x5eed0001u + (uint64_t)getpid();
    model *m;
    char *dir = build_store(&m, seed);
    print_message("seed %llu\n", (unsigned long long)seed);
    assert_true(exists(dir, SAVED_FILE));
    char *copy = copy_store(dir); /* the same files, the saved index no longer theirs */

    kvs_t *a = open_expect(dir, true, NULL);
    kvs_t *b = open_expect(copy, false, "is not the file saved");
    snap *sa = calloc(1, sizeof *sa), *sb = calloc(1, sizeof *sb);
    check_model(a, m);
    check_model(b, m);
    take_snap(a, sa);
    take_snap(b, sb);
    assert_true(sa->nsegs > 5);
    assert_true(sa->st.dead_bytes > 0);
    assert_true(sa->st.index_keys_left > 0 && sa->st.index_keys_left < UINT64_MAX);
    assert_same(sa, sb);

    /* the same compaction after either, and the same store after it */
    int64_t ra = kvs_compact(a), rb = kvs_compact(b);
    assert_true(ra > 0);
    assert_int_equal(ra, rb);
    take_snap(a, sa);
    take_snap(b, sb);
    assert_same(sa, sb);
    check_model(a, m);

    /* and writes go on as after a rebuild */
    uint64_t rng = seed * 3;
    model *m2 = calloc(1, sizeof *m2);
    for (int i = 0; i < KEYS; i++)
        m2->v[i] = m->v[i] ? strdup(m->v[i]) : NULL;
    workload(a, m, &rng, 1000);
    rng = seed * 3;
    workload(b, m2, &rng, 1000);
    take_snap(a, sa);
    take_snap(b, sb);
    assert_same(sa, sb);
    assert_int_equal(kvs_close(a), 0);
    assert_int_equal(kvs_close(b), 0);
    a = open_expect(dir, true, NULL);
    check_model(a, m);
    assert_int_equal(kvs_close(a), 0);

    free(sa);
    free(sb);
    model_free(m);
    model_free(m2);
    tu_rm_rf(copy);
    tu_rm_rf(dir);
    free(copy);
    free(dir);
}

static void crash_at(int point)
{
    model *m;
    char *dir = build_store(&m, 0x5eed0100u + (uint64_t)point), pt[8];
    kvs_t *db = open_expect(dir, true, NULL); /* leaves no INDEX; the child's close writes it */
    assert_int_equal(kvs_close(db), 0);
    unlink(tu_path(dir, SAVED_FILE));

    snprintf(pt, sizeof pt, "%d", point);
    char *argv[] = {"/proc/self/exe", "--child", "close", dir, pt, NULL};
    assert_int_equal(tu_run_self(argv), CRASH_EXIT);
    bool renamed = point == CRASH_INDEX_RENAMED;
    assert_int_equal(exists(dir, SAVED_FILE), renamed);
    assert_int_equal(exists(dir, SAVED_FILE ".tmp"), !renamed);

    reopen_check(dir, renamed, NULL, m); /* a renamed INDEX is whole: used */
    reopen_check(dir, true, NULL, m);
    drop_store(dir, m);
}

static void test_crash_while_saving(void **state)
{
    (void)state;
    crash_at(CRASH_INDEX_PARTIAL);
    crash_at(CRASH_INDEX_WRITTEN);
    crash_at(CRASH_INDEX_RENAMED);
}

static void test_garbage_tmp(void **state)
{
    (void)state;
    model *m;
    char *dir = build_store(&m, 0x5eed0200u);
    size_t len;
    unsigned char *b = read_saved(dir, &len);

    /* a torn INDEX.tmp beside a whole INDEX: the leftover is removed, the INDEX used */
    tu_spill(tu_path(dir, SAVED_FILE ".tmp"), b, len / 3);
    reopen_check(dir, true, NULL, m);
    /* garbage alone */
    unlink(tu_path(dir, SAVED_FILE));
    memset(b, 0x5a, len);
    tu_spill(tu_path(dir, SAVED_FILE ".tmp"), b, len);
    reopen_check(dir, false, NULL, m);
    free(b);
    drop_store(dir, m);
}

static void test_damaged_file(void **state)
{
    (void)state;
    model *m;
    char *dir = build_store(&m, 0x5eed0300u);
    size_t len;
    unsigned char *good = read_saved(dir, &len);
    assert_true(len > SAVED_HDR + 8);
    size_t words = len - 8 - (len - 8 - SAVED_HDR) / 3; /* inside the arrays */
    size_t cuts[] = {0, 7, SAVED_HDR, SAVED_HDR + SAVED_SEG + 3, len / 2, len - 1};
    size_t flips[] = {0, 5, 9, 17, 30, 45, 66, SAVED_HDR + 2, SAVED_HDR + 20, words, len / 2,
                      len - 9, len - 1};

    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        put_saved(dir, good, cuts[i]);
        reopen_check(dir, false, NULL, m);
        free(good);
        good = read_saved(dir, &len); /* the close saved it anew */
    }
    for (size_t i = 0; i < sizeof flips / sizeof *flips; i++) {
        good[flips[i]] ^= 0x10;
        put_saved(dir, good, len);
        good[flips[i]] ^= 0x10;
        reopen_check(dir, false, NULL, m);
        free(good);
        good = read_saved(dir, &len);
    }
    put_saved(dir, good, len); /* the control: the file as written is used */
    reopen_check(dir, true, NULL, m);
    free(good);
    drop_store(dir, m);
}

static void test_mismatch_refused(void **state)
{
    (void)state;
    model *m;
    char *dir = build_store(&m, 0x5eed0400u), key[32];
    size_t len;
    unsigned char *old = read_saved(dir, &len);
    kvs_t *db;

    /* a segment added since (a rotation): the old saved index put back is refused */
    db = open_expect(dir, true, NULL);
    uint64_t rng = 77;
    workload(db, m, &rng, 600);
    assert_int_equal(kvs_close(db), 0);
    put_saved(dir, old, len);
    reopen_check(dir, false, "other segments", m);

    /* segments compacted away since */
    free(old);
    old = read_saved(dir, &len);
    db = open_expect(dir, true, NULL);
    assert_true(kvs_compact(db) > 0);
    assert_int_equal(kvs_close(db), 0);
    put_saved(dir, old, len);
    reopen_check(dir, false, NULL, m);

    /* the active segment shorter than saved: its last record cut (the model keeps the value
     * it replaced) */
    db = open_expect(dir, true, NULL);
    key_name(KEYS - 1, key, sizeof key);
    tu_set(db, key, "the-last-record");
    logdb *l = kvs_engine_impl(db);
    char active[4096];
    snprintf(active, sizeof active, "%s", l->active->path);
    assert_int_equal(kvs_close(db), 0);
    int64_t size = tu_file_size(active);
    assert_int_equal(truncate(active, size - (REC_HDR + (off_t)strlen(key) + 15)), 0);
    reopen_check(dir, false, "bytes,", m);

    free(old);
    drop_store(dir, m);
}

/* Flip a byte of a value in the active segment (same size, same inode): refused by the active
 * segment's checksum; the rebuild finds the damaged record, and, damage found, no index is
 * saved at the close after. */
static void test_active_bytes_changed(void **state)
{
    (void)state;
    model *m;
    char *dir = build_store(&m, 0x5eed0500u), active[4096];
    kvs_t *db = open_expect(dir, true, NULL);
    logdb *l = kvs_engine_impl(db);
    size_t len;
    void *v;

    tu_set(db, "extra-a", "a-value-to-damage");
    tu_set(db, "extra-b", "after-it");
    snprintf(active, sizeof active, "%s", l->active->path);
    assert_int_equal(kvs_close(db), 0);
    unsigned char *b = tu_slurp(active, &len);
    unsigned char *p = memmem(b, len, "a-value-to-damage", 17);
    assert_non_null(p);
    tu_flip_byte(active, (size_t)(p - b) + 4);
    free(b);
    db = open_expect(dir, false, "does not hold the bytes saved");
    assert_true(tu_stats(db).corrupt_records > 0);
    assert_int_equal(kvs_get(db, "extra-a", 7, &v, &len), KVS_ECORRUPT);
    tu_assert_value(db, "extra-b", "after-it");
    assert_int_equal(kvs_close(db), 0);
    assert_false(exists(dir, SAVED_FILE)); /* damage found: none saved */
    drop_store(dir, m);
}

static void test_writes_after_saved_open_then_kill(void **state)
{
    (void)state;
    model *m;
    char *dir = build_store(&m, 0x5eed0600u);
    size_t len;
    unsigned char *old = read_saved(dir, &len);

    /* a child opens from the saved index, writes, dies: the file went at its open */
    late_writes(dir, m, 0, 20);
    assert_false(exists(dir, SAVED_FILE));
    reopen_check(dir, false, NULL, m);

    /* a saved index that outlived writes made after it (its rename lost): the active segment
     * holds them after the saved size, and they are replayed over it */
    free(old);
    old = read_saved(dir, &len);
    late_writes(dir, m, 20, 10); /* few: no rotation */
    put_saved(dir, old, len);
    kvs_t *db = open_expect(dir, true, NULL);
    check_model(db, m);
    snap *sa = calloc(1, sizeof *sa), *sb = calloc(1, sizeof *sb);
    take_snap(db, sa);
    assert_int_equal(kvs_close(db), 0);
    char *copy = copy_store(dir);
    kvs_t *b = open_expect(copy, false, NULL);
    take_snap(b, sb);
    assert_int_equal(kvs_close(b), 0);
    assert_same(sa, sb);

    /* ... and after writes that rotated the active segment: refused */
    free(old);
    old = read_saved(dir, &len);
    late_writes(dir, m, 100, 400);
    put_saved(dir, old, len);
    reopen_check(dir, false, "other segments", m);

    free(sa);
    free(sb);
    free(old);
    model_free(m);
    tu_rm_rf(copy);
    free(copy);
    tu_rm_rf(dir);
    free(dir);
}

/* The saved index an open read is moved aside (INDEX.old) and unlinked by the maintenance thread
 * soon after — or by the close, if that comes first; one a crash left behind is removed at open
 * and never read. */
static void test_retired_removed(void **state)
{
    (void)state;
    model *m;
    char *dir = build_store(&m, 0x5eed0800u);
    size_t len;
    unsigned char *b = read_saved(dir, &len);

    kvs_t *db = open_expect(dir, true, NULL);
    for (int i = 0; i < 200 && exists(dir, SAVED_RETIRED); i++)
        usleep(10000);
    assert_false(exists(dir, SAVED_RETIRED)); /* the maintenance thread, kicked at open */
    assert_int_equal(kvs_close(db), 0);

    db = open_expect(dir, true, NULL);
    assert_int_equal(kvs_close(db), 0); /* closed at once: gone all the same */
    assert_false(exists(dir, SAVED_RETIRED));

    unlink(tu_path(dir, SAVED_FILE));
    tu_spill(tu_path(dir, SAVED_RETIRED), b, len); /* a whole saved index, but retired */
    db = open_expect(dir, false, NULL);
    assert_false(exists(dir, SAVED_RETIRED));
    check_model(db, m);
    assert_int_equal(kvs_close(db), 0);
    free(b);
    drop_store(dir, m);
}

/* A store whose open found damage saves no index: the next open finds it again. */
static void test_no_save_after_damage(void **state)
{
    (void)state;
    model *m;
    char *dir = build_store(&m, 0x5eed0700u);
    kvs_t *db = open_expect(dir, true, NULL);
    logdb *l = kvs_engine_impl(db);
    char sealed[4096];

    snprintf(sealed, sizeof sealed, "%s", l->segs[l->segs[0] == l->active]->path);
    assert_int_equal(kvs_close(db), 0);
    unlink(tu_path(dir, SAVED_FILE));
    /* a damaged header in a sealed segment without its hint: unreadable bytes */
    tu_flip_byte(sealed, SEG_HDR + 2);
    char hint[4096];
    snprintf(hint, sizeof hint, "%.*shint", (int)strlen(sealed) - 3, sealed);
    unlink(hint);
    db = open_expect(dir, false, NULL);
    assert_true(tu_stats(db).corrupt_records > 0);
    assert_int_equal(kvs_close(db), 0);
    assert_false(exists(dir, SAVED_FILE));
    drop_store(dir, m);
}

int main(int argc, char **argv)
{
    if (argc >= 5 && strcmp(argv[1], "--child") == 0) {
        if (strcmp(argv[2], "close") == 0)
            return child_close(argv[3], atoi(argv[4]));
        if (strcmp(argv[2], "write") == 0 && argc == 6)
            return child_write(argv[3], atoi(argv[4]), atoi(argv[5]));
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_as_rebuild),
        cmocka_unit_test(test_crash_while_saving),
        cmocka_unit_test(test_garbage_tmp),
        cmocka_unit_test(test_damaged_file),
        cmocka_unit_test(test_mismatch_refused),
        cmocka_unit_test(test_active_bytes_changed),
        cmocka_unit_test(test_writes_after_saved_open_then_kill),
        cmocka_unit_test(test_no_save_after_damage),
        cmocka_unit_test(test_retired_removed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
