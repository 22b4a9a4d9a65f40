/*
 * test_manifest_damage.c — what open does with the files the MANIFEST does not name, with a
 * damaged last edit, and with a manifest that cannot be rewritten.
 *
 *   - A damaged last edit that was a rotation, whose new segment then took writes: open keeps
 *     every acknowledged write (it adopts the segment and says so) and heals the manifest. The
 *     same segment with the damaged bytes already gone (nothing says an edit was lost): kept and
 *     named in a warning, never deleted, and new segments do not take its name.
 *   - Compaction stopped at a step (a child process, stopped by kvs_test_crash_point): outputs
 *     of an edit that never committed are deleted (they hold copies of live records), victims of
 *     a committed one too; when the committed edit is then damaged, the victims are the truth
 *     again and the outputs go. An empty segment of a lost rotation goes.
 *   - A manifest rewrite that fails (a directory named MANIFEST.tmp in the way): writes go on,
 *     appended to the old manifest; open does not refuse; once the way is clear the next
 *     rewrite succeeds, and a reopen sees every write.
 *   - Stray files: an empty 4294967295.log and a 123456.log of garbage are left alone, named in
 *     a warning, do not move the segment ids (no wrap), and are stepped over when the ids get
 *     there; the store opens again and again. When the ids are used up, a rotation is refused
 *     with a clear error and nothing wraps.
 *   - Only kvs's own temporary files are deleted at open: backup.tmp survives.
 *
 * The child of the compaction cases is this binary run again (posix_spawn of /proc/self/exe
 * with --crash-child), as in test_crash.c.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/log/logdb.h"
#include "engine/log/segment.h"
#include "testutil.h"

/* ---- files ------------------------------------------------------------------------------- */

static const char *seg_file(const char *dir, uint32_t id, const char *suffix)
{
    char name[32];
    snprintf(name, sizeof name, "%06u.%s", id, suffix);
    return tu_path(dir, name);
}

static bool exists(const char *path)
{
    return tu_file_size(path) >= 0;
}

/* Ids of the NNNNNN.log files in dir, ascending, into ids (up to cap); returns how many. */
static uint32_t log_ids(const char *dir, uint32_t *ids, uint32_t cap)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    uint32_t n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".log") == 0 && n < cap)
            ids[n++] = (uint32_t)strtoul(de->d_name, NULL, 10);
    }
    closedir(d);
    for (uint32_t i = 1; i < n; i++)
        for (uint32_t j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
            uint32_t t = ids[j];
            ids[j] = ids[j - 1];
            ids[j - 1] = t;
        }
    return n;
}

static uint32_t max_log_id(const char *dir)
{
    uint32_t ids[1024], n = log_ids(dir, ids, 1024);
    assert_true(n > 0);
    return ids[n - 1];
}

/* The last edit of dir's MANIFEST (manifest.h: checksum, length, active, n_add, n_drop, ids). */
typedef struct edit {
    size_t off, len;
    uint32_t active, nadd, ndrop, add0;
} edit;

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static edit last_edit(const char *dir)
{
    size_t len, off = 16;
    unsigned char *b = tu_slurp(tu_path(dir, "MANIFEST"), &len);
    edit e = {0};

    while (off + 8 <= len) {
        uint32_t plen = get32(b + off + 4);
        assert_true(off + 8 + plen <= len);
        e.off = off;
        e.len = 8 + plen;
        e.active = get32(b + off + 8);
        e.nadd = get32(b + off + 12);
        e.ndrop = get32(b + off + 16);
        e.add0 = e.nadd ? get32(b + off + 20) : 0;
        off += 8 + plen;
    }
    assert_int_equal(off, len);
    free(b);
    return e;
}

/* Is there one log line holding both a and b? */
static bool logged(const char *a, const char *b)
{
    const char *t = tu_log_text();
    for (const char *line = t; *line;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        char buf[4096];
        snprintf(buf, sizeof buf, "%.*s", (int)n, line);
        if (strstr(buf, a) && strstr(buf, b))
            return true;
        line += n + (nl ? 1 : 0);
    }
    return false;
}

static void assert_logged(const char *a, const char *b)
{
    if (!logged(a, b))
        fail_msg("no log line with \"%s\" and \"%s\" in:\n%s", a, b, tu_log_text());
}

/* ---- a model of the store: what every acknowledged write left ---------------------------- */

#define MKEYS 400

static char model_val[MKEYS][48];
static bool model_has[MKEYS];

static void model_reset(void)
{
    memset(model_has, 0, sizeof model_has);
}

static void m_set(kvs_t *db, int i, const char *tag)
{
    char key[16];
    snprintf(key, sizeof key, "key%03d", i);
    snprintf(model_val[i], sizeof model_val[i], "%s-%03d-padding-padding-padding", tag, i);
    assert_int_equal(kvs_set(db, key, strlen(key), model_val[i], strlen(model_val[i])), 0);
    model_has[i] = true;
}

static void m_del(kvs_t *db, int i)
{
    char key[16];
    snprintf(key, sizeof key, "key%03d", i);
    assert_int_equal(kvs_remove(db, key, strlen(key)), 0);
    model_has[i] = false;
}

static void m_check(kvs_t *db)
{
    char key[16];
    for (int i = 0; i < MKEYS; i++) {
        snprintf(key, sizeof key, "key%03d", i);
        tu_assert_value(db, key, model_has[i] ? model_val[i] : NULL);
    }
}

static kvs_options small_segments(void)
{
    kvs_options o;
    kvs_options_init(&o);
    o.segment_size = 4096;
    o.auto_compact = 0;
    return o;
}

/* The store: 220 keys, then 40 overwritten, 10 removed and 22 added — the last of them
 * in the segment the last rotation made active. */
static char *store_with_late_writes(void)
{
    char *dir = tu_mkdtemp();
    kvs_options o = small_segments();
    kvs_t *db = tu_open(dir, &o);

    model_reset();
    for (int i = 0; i < 220; i++)
        m_set(db, i, "first");
    for (int i = 0; i < 40; i++)
        m_set(db, i * 5, "second");
    for (int i = 200; i < 210; i++)
        m_del(db, i);
    for (int i = 220; i < 242; i++)
        m_set(db, i, "late");
    assert_int_equal(kvs_close(db), 0);
    return dir;
}

/* The last edit is the rotation to the newest segment, which took writes. */
static uint32_t check_last_edit_is_rotation(const char *dir)
{
    uint32_t n = max_log_id(dir);
    edit e = last_edit(dir);

    assert_int_equal(e.active, n);
    assert_int_equal(e.nadd, 1);
    assert_int_equal(e.add0, n);
    assert_int_equal(e.ndrop, 0);
    assert_true(tu_file_size(seg_file(dir, n, "log")) > 16 + 100);
    return n;
}

/* ---- a damaged last edit ----------------------------------------------------------------- */

static void test_lost_rotation_adopted(void **state)
{
    (void)state;
    char *dir = store_with_late_writes(), name[32];
    kvs_options o = small_segments();
    uint32_t n = check_last_edit_is_rotation(dir);
    edit e = last_edit(dir);

    char segp[4096];
    snprintf(segp, sizeof segp, "%s", seg_file(dir, n, "log"));
    int64_t size = tu_file_size(segp);
    size_t len;
    unsigned char *b = tu_slurp(segp, &len);

    tu_flip_byte(tu_path(dir, "MANIFEST"), e.off + e.len - 1); /* the id it adds */
    b = realloc(b, len + 8192); /* the room a crash leaves after the writes: zeros */
    memset(b + len, 0, 8192);
    tu_spill(segp, b, len + 8192);
    free(b);
    tu_log_capture(KVS_LOG_WARN);
    kvs_t *db = tu_open(dir, &o);
    m_check(db); /* every acknowledged write, the removes included */
    snprintf(name, sizeof name, "%06u.log", n);
    assert_logged(name, "adopted");
    assert_logged("MANIFEST", "torn edit");
    assert_int_equal(tu_file_size(seg_file(dir, n, "log")), size);
    assert_int_equal(kvs_close(db), 0);

    /* healed: the manifest names the segment again, nothing more to say */
    tu_log_clear();
    db = tu_open(dir, &o);
    m_check(db);
    assert_null(strstr(tu_log_text(), "adopted"));
    assert_null(strstr(tu_log_text(), "MANIFEST"));
    for (int i = 250; i < 300; i++) /* and it goes on rotating */
        m_set(db, i, "after");
    assert_int_equal(kvs_close(db), 0);
    db = tu_open(dir, &o);
    m_check(db);
    assert_int_equal(kvs_close(db), 0);
    assert_null(strstr(tu_log_text(), "adopted"));
    tu_log_release();
    tu_rm_rf(dir);
    free(dir);
}

/* The lost edit's bytes already cut off: nothing says an edit was lost, so the segment is not
 * adopted — but it holds writes newer than anything live, so it is not deleted either. */
static void test_unnamed_newer_segment_kept(void **state)
{
    (void)state;
    char *dir = store_with_late_writes(), name[32];
    kvs_options o = small_segments();
    uint32_t n = check_last_edit_is_rotation(dir);
    edit e = last_edit(dir);
    int64_t size = tu_file_size(seg_file(dir, n, "log"));
    size_t len;
    unsigned char *b = tu_slurp(tu_path(dir, "MANIFEST"), &len);

    tu_spill(tu_path(dir, "MANIFEST"), b, e.off);
    free(b);
    tu_log_capture(KVS_LOG_WARN);
    kvs_t *db = tu_open(dir, &o);
    snprintf(name, sizeof name, "%06u.log", n);
    assert_logged(name, "kept");
    assert_int_equal(tu_file_size(seg_file(dir, n, "log")), size);
    for (int i = 250; i < 300; i++) /* new segments never take its name */
        m_set(db, i, "after");
    assert_int_equal(kvs_close(db), 0);
    assert_int_equal(tu_file_size(seg_file(dir, n, "log")), size);
    db = tu_open(dir, &o);
    assert_logged(name, "kept"); /* at every open, until someone looks */
    for (int i = 250; i < 300; i++) {
        char key[16];
        snprintf(key, sizeof key, "key%03d", i);
        tu_assert_value(db, key, model_val[i]);
    }
    assert_int_equal(kvs_close(db), 0);
    tu_log_release();
    tu_rm_rf(dir);
    free(dir);
}

/* A rotation whose edit is torn, made before its segment took a write: the empty segment goes. */
static void test_empty_unnamed_segment_removed(void **state)
{
    (void)state;
    char *dir = store_with_late_writes();
    kvs_options o = small_segments();
    uint32_t n = max_log_id(dir) + 1;
    size_t len;
    unsigned char *b = tu_slurp(tu_path(dir, "MANIFEST"), &len);
    unsigned char junk[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    seg *s;

    b = realloc(b, len + sizeof junk);
    memcpy(b + len, junk, sizeof junk);
    tu_spill(tu_path(dir, "MANIFEST"), b, len + sizeof junk);
    free(b);
    assert_int_equal(seg_create(dir, n, 4096, &s), 0); /* preallocated, as a rotation makes it */
    seg_close(s);
    kvs_t *db = tu_open(dir, &o);
    m_check(db);
    assert_false(exists(seg_file(dir, n, "log")));
    assert_int_equal(kvs_close(db), 0);
    tu_rm_rf(dir);
    free(dir);
}

/* ---- compaction stopped at a step -------------------------------------------------------- */

static int crash_child(const char *dir, int point)
{
    kvs_options o = small_segments();
    kvs_t *db;
    int64_t r;

    if (kvs_create(&db) < 0 || kvs_configure(db, &o) < 0 || kvs_open(db, dir) < 0)
        return 2;
    kvs_test_crash_point = point;
    r = kvs_compact(db);
    fprintf(stderr, "crash child: compaction returned %lld without stopping\n", (long long)r);
    return 3;
}

static void compact_and_stop(const char *dir, int point)
{
    char pt[8];
    char *argv[] = {"/proc/self/exe", "--crash-child", (char *)dir, pt, NULL};
    int status;

    snprintf(pt, sizeof pt, "%d", point);
    if ((status = tu_run_self(argv)) != CRASH_EXIT)
        fail_msg("child did not stop at step %d (status %d)", point, status);
}

static void assert_only_live_logs(kvs_t *db, const char *dir)
{
    uint32_t ids[1024];
    kvs_stats st;
    assert_int_equal(kvs_stats_get(db, &st), 0);
    assert_int_equal(log_ids(dir, ids, 1024), st.segments);
}

/* Outputs written, synced and hinted, the edit never made: they go, with their hints. */
static void test_uncommitted_outputs_removed(void **state)
{
    (void)state;
    char *dir = store_with_late_writes();
    kvs_options o = small_segments();
    uint32_t before = max_log_id(dir), ids[1024], n;

    compact_and_stop(dir, CRASH_AFTER_HINT);
    n = log_ids(dir, ids, 1024);
    assert_true(ids[n - 1] > before); /* the outputs */
    assert_true(exists(seg_file(dir, ids[n - 1], "hint")));
    tu_log_capture(KVS_LOG_INFO);
    kvs_t *db = tu_open(dir, &o);
    m_check(db);
    for (uint32_t i = 0; i < n; i++)
        if (ids[i] > before) {
            assert_false(exists(seg_file(dir, ids[i], "log")));
            assert_false(exists(seg_file(dir, ids[i], "hint")));
        }
    assert_logged(seg_file(dir, ids[n - 1], "log"), "removing");
    assert_only_live_logs(db, dir);
    assert_int_equal(kvs_close(db), 0);
    tu_log_release();
    tu_rm_rf(dir);
    free(dir);
}

/* The edit made, the victims not yet deleted: they go. */
static void test_dropped_victims_removed(void **state)
{
    (void)state;
    char *dir = store_with_late_writes();
    kvs_options o = small_segments();
    uint32_t before[1024], nb = log_ids(dir, before, 1024);

    compact_and_stop(dir, CRASH_AFTER_MANIFEST);
    assert_true(last_edit(dir).ndrop > 0);
    kvs_t *db = tu_open(dir, &o);
    m_check(db);
    for (uint32_t i = 0; i + 1 < nb; i++) /* every sealed one was a victim */
        assert_false(exists(seg_file(dir, before[i], "log")));
    assert_only_live_logs(db, dir);
    assert_int_equal(kvs_close(db), 0);
    db = tu_open(dir, &o);
    m_check(db);
    assert_int_equal(kvs_close(db), 0);
    tu_rm_rf(dir);
    free(dir);
}

/* The compaction's edit made, then damaged: the victims are live again, the outputs — copies of
 * their records — go, and nothing is adopted or kept. */
static void test_lost_compaction_edit(void **state)
{
    (void)state;
    char *dir = store_with_late_writes();
    kvs_options o = small_segments();
    uint32_t before[1024], nb = log_ids(dir, before, 1024), ids[1024], n;

    compact_and_stop(dir, CRASH_AFTER_MANIFEST);
    edit e = last_edit(dir);
    assert_true(e.ndrop > 0 && e.nadd > 0);
    tu_flip_byte(tu_path(dir, "MANIFEST"), e.off + 10);
    n = log_ids(dir, ids, 1024);
    tu_log_capture(KVS_LOG_WARN);
    kvs_t *db = tu_open(dir, &o);
    m_check(db);
    for (uint32_t i = 0; i < nb; i++)
        assert_true(exists(seg_file(dir, before[i], "log")));
    for (uint32_t i = 0; i < n; i++)
        if (ids[i] > before[nb - 1])
            assert_false(exists(seg_file(dir, ids[i], "log")));
    assert_only_live_logs(db, dir);
    assert_null(strstr(tu_log_text(), "adopted"));
    assert_null(strstr(tu_log_text(), "kept"));
    assert_true(kvs_compact(db) >= 0); /* and compaction works again */
    m_check(db);
    assert_int_equal(kvs_close(db), 0);
    db = tu_open(dir, &o);
    m_check(db);
    assert_int_equal(kvs_close(db), 0);
    tu_log_release();
    tu_rm_rf(dir);
    free(dir);
}

/* ---- a manifest rewrite that fails ------------------------------------------------------- */

#define BIG 3000 /* one value per 4 KiB segment: every set rotates */

static void big_value(int i, char *out)
{
    memset(out, 'a' + i % 26, BIG);
    snprintf(out, 16, "%08d", i);
    out[8] = '-';
}

static void set_big(kvs_t *db, int i)
{
    char key[16], val[BIG];
    snprintf(key, sizeof key, "big%05d", i);
    big_value(i, val);
    int rc = kvs_set(db, key, strlen(key), val, BIG);
    if (rc != 0)
        fail_msg("set %s: %s: %s", key, kvs_strerror(rc), kvs_last_error());
}

static void check_big(kvs_t *db, int from, int to)
{
    char key[16], val[BIG];
    for (int i = from; i < to; i++) {
        snprintf(key, sizeof key, "big%05d", i);
        big_value(i, val);
        tu_assert_bin(db, key, strlen(key), val, BIG);
    }
}

static void test_failed_manifest_rewrite(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp(), tmp[4096];
    kvs_options o = small_segments();
    kvs_t *db = tu_open(dir, &o);
    const int n = 1100; /* past the 1024 edits that call for a rewrite */

    snprintf(tmp, sizeof tmp, "%s", tu_path(dir, "MANIFEST.tmp"));
    assert_int_equal(mkdir(tmp, 0755), 0); /* every rewrite fails to create it */
    tu_log_capture(KVS_LOG_WARN);
    for (int i = 0; i < n; i++)
        set_big(db, i);
    int64_t grown = tu_file_size(tu_path(dir, "MANIFEST"));
    assert_true(grown > 16 + 1024 * 24); /* never rewritten */
    assert_true(strstr(tu_log_text(), "MANIFEST.tmp") != NULL); /* but tried */
    tu_reopen(&db, dir, &o); /* open does not refuse either */
    check_big(db, 0, n);
    set_big(db, n);

    assert_int_equal(rmdir(tmp), 0);
    for (int i = n + 1; i < n + 4; i++) /* the next rotation's rewrite succeeds */
        set_big(db, i);
    assert_true(tu_file_size(tu_path(dir, "MANIFEST")) < grown / 2); /* one edit of ids */
    check_big(db, 0, n + 4);
    tu_reopen(&db, dir, &o);
    check_big(db, 0, n + 4);
    assert_int_equal(kvs_close(db), 0);
    tu_log_release();
    tu_rm_rf(dir);
    free(dir);
}

/* ---- stray files ------------------------------------------------------------------------- */

static void test_stray_at_the_last_id(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp(), stray[4096];
    kvs_options o = small_segments();
    kvs_t *db = tu_open(dir, &o);

    set_big(db, 0);
    assert_int_equal(kvs_close(db), 0);
    snprintf(stray, sizeof stray, "%s", tu_path(dir, "4294967295.log"));
    tu_spill(stray, "", 0);
    tu_log_capture(KVS_LOG_WARN);
    db = tu_open(dir, &o);
    assert_logged("4294967295.log", "left alone");
    for (int i = 1; i < 20; i++) /* rotations */
        set_big(db, i);
    assert_int_equal(kvs_close(db), 0);
    assert_false(exists(tu_path(dir, "000000.log")));
    assert_true(exists(stray));
    db = tu_open(dir, &o); /* no "adds segment 0 twice" */
    check_big(db, 0, 20);
    assert_int_equal(kvs_close(db), 0);
    assert_int_equal(tu_file_size(stray), 0);
    tu_log_release();
    tu_rm_rf(dir);
    free(dir);
}

/* kill -9 between seg_create's creation of the file and its header write leaves an empty (or
 * header-short) NNNNNN.log at the next id: removed at open, not kept as a stray at every open
 * (found by the kill -9 torture: 8 such files after 60 kills). Two in a row (a crash at each
 * open) go too; a short file at another id stays a stray. */
static void test_unfinished_creation_removed(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp(), next[4096], after[4096], far[4096], name[32];
    kvs_options o = small_segments();
    kvs_t *db = tu_open(dir, &o);
    uint32_t ids[1024], n;

    set_big(db, 0);
    assert_int_equal(kvs_close(db), 0);
    n = log_ids(dir, ids, 1024);
    assert_true(n > 0);
    snprintf(name, sizeof name, "%06u.log", ids[n - 1] + 1);
    snprintf(next, sizeof next, "%s", tu_path(dir, name));
    tu_spill(next, "", 0);
    snprintf(name, sizeof name, "%06u.log", ids[n - 1] + 2);
    snprintf(after, sizeof after, "%s", tu_path(dir, name));
    tu_spill(after, "KVSL", 4); /* the start of a header */
    snprintf(name, sizeof name, "%06u.log", ids[n - 1] + 9);
    snprintf(far, sizeof far, "%s", tu_path(dir, name));
    tu_spill(far, "", 0);
    tu_log_capture(KVS_LOG_INFO);
    db = tu_open(dir, &o);
    assert_logged("creation a crash cut short", "");
    assert_false(exists(next));
    assert_false(exists(after));
    assert_true(exists(far));
    for (int i = 1; i < 10; i++) /* rotations */
        set_big(db, i);
    check_big(db, 0, 10);
    assert_int_equal(kvs_close(db), 0);
    tu_log_release();
    tu_rm_rf(dir);
    free(dir);
}

static void test_stray_in_the_way(void **state)
{
    (void)state;
    static const char garbage[] = "an operator's notes, not a segment";
    char *dir = tu_mkdtemp(), stray[4096];
    kvs_options o = small_segments();
    kvs_t *db = tu_open(dir, &o);
    seg *s;
    size_t len;

    set_big(db, 0);
    assert_int_equal(kvs_close(db), 0);
    /* An empty segment of ours left by a rotation that never committed moves the ids to 123456,
     * where a stray file sits. */
    assert_int_equal(seg_create(dir, 123455, 0, &s), 0);
    seg_close(s);
    snprintf(stray, sizeof stray, "%s", tu_path(dir, "123456.log"));
    tu_spill(stray, garbage, sizeof garbage);
    tu_log_capture(KVS_LOG_WARN);
    db = tu_open(dir, &o);
    assert_false(exists(seg_file(dir, 123455, "log")));
    assert_logged("123456.log", "left alone");
    for (int i = 1; i < 4; i++)
        set_big(db, i);
    assert_true(exists(seg_file(dir, 123457, "log")));
    assert_logged("123456", "skipped");
    tu_reopen(&db, dir, &o);
    check_big(db, 0, 4);
    assert_int_equal(kvs_close(db), 0);
    unsigned char *b = tu_slurp(stray, &len);
    assert_int_equal(len, sizeof garbage);
    assert_memory_equal(b, garbage, len);
    free(b);
    tu_log_release();
    tu_rm_rf(dir);
    free(dir);
}

/* Ids used up (a segment of ours at the last id): a rotation is refused, clearly; none wraps. */
static void test_ids_used_up(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    kvs_options o = small_segments();
    kvs_t *db = tu_open(dir, &o);
    char val[BIG];
    seg *s;
    int rc;

    set_big(db, 0);
    assert_int_equal(kvs_close(db), 0);
    assert_int_equal(seg_create(dir, LDB_SEG_ID_MAX, 0, &s), 0);
    seg_close(s);
    db = tu_open(dir, &o);
    big_value(1, val);
    rc = kvs_set(db, "big00001", 8, val, BIG); /* needs a new segment */
    assert_int_equal(rc, KVS_ENOSPC);
    assert_non_null(strstr(kvs_last_error(), "used up"));
    check_big(db, 0, 1);
    assert_int_equal(kvs_close(db), 0);
    assert_false(exists(tu_path(dir, "000000.log")));
    db = tu_open(dir, &o);
    check_big(db, 0, 1);
    assert_int_equal(kvs_close(db), 0);
    tu_rm_rf(dir);
    free(dir);
}

/* ---- temporary files --------------------------------------------------------------------- */

static void test_only_our_tmp_files_removed(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    kvs_options o = small_segments();
    kvs_t *db = tu_open(dir, &o);
    static const char *ours[] = {"MANIFEST.tmp", "ENGINE.tmp", "000007.hint.tmp"};
    static const char *theirs[] = {"backup.tmp", "notes.tmp", "MANIFEST.bak.tmp", "7.hint.tmp"};

    set_big(db, 0);
    assert_int_equal(kvs_close(db), 0);
    for (size_t i = 0; i < sizeof ours / sizeof *ours; i++)
        tu_spill(tu_path(dir, ours[i]), "x", 1);
    for (size_t i = 0; i < sizeof theirs / sizeof *theirs; i++)
        tu_spill(tu_path(dir, theirs[i]), "keep me", 7);
    db = tu_open(dir, &o);
    check_big(db, 0, 1);
    assert_int_equal(kvs_close(db), 0);
    for (size_t i = 0; i < sizeof ours / sizeof *ours; i++)
        assert_false(exists(tu_path(dir, ours[i])));
    for (size_t i = 0; i < sizeof theirs / sizeof *theirs; i++)
        assert_int_equal(tu_file_size(tu_path(dir, theirs[i])), 7);
    tu_rm_rf(dir);
    free(dir);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--crash-child") == 0)
        return crash_child(argv[2], atoi(argv[3]));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lost_rotation_adopted),
        cmocka_unit_test(test_unnamed_newer_segment_kept),
        cmocka_unit_test(test_empty_unnamed_segment_removed),
        cmocka_unit_test(test_uncommitted_outputs_removed),
        cmocka_unit_test(test_dropped_victims_removed),
        cmocka_unit_test(test_lost_compaction_edit),
        cmocka_unit_test(test_failed_manifest_rewrite),
        cmocka_unit_test(test_stray_at_the_last_id),
        cmocka_unit_test(test_stray_in_the_way),
        cmocka_unit_test(test_unfinished_creation_removed),
        cmocka_unit_test(test_ids_used_up),
        cmocka_unit_test(test_only_our_tmp_files_removed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
