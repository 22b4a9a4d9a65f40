/*
 * test_recovery.c — what open makes of damaged files.
 *
 *   - Torn tail: the active segment cut at every byte offset inside its last three records
 *     (a new key, an overwrite, a remove). Open must load exactly the complete records, truncate
 *     the rest and log how many bytes it cut.
 *   - Bit rot in a sealed segment (a value byte, and a header byte of another record): those
 *     records are never served, and the log names the file and the offset. Loaded from its hint,
 *     every other record is served. Scanned, the record with the damaged value still reads as
 *     corrupt (never as nothing or as an older value), and the damaged header ends what can be
 *     read of the segment: the records after it are not served, reported at every open.
 *   - Hint files missing, damaged or cut short: the segment is scanned instead, with the same
 *     keys and values as before, and the hint is written anew.
 *   - MANIFEST: a torn last edit is truncated; a damaged edit with valid ones after it refuses
 *     to open. Temporary files of ours are deleted; a stray .log is not (test_manifest_damage.c
 *     judges the files the manifest does not name).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/log/record.h"
#include "testutil.h"

static size_t rec_size(size_t klen, size_t vlen)
{
    return REC_HDR + klen + vlen; /* record.h: header, key, value */
}

/* ---- torn tail --------------------------------------------------------------------------- */

static void check_torn_state(kvs_t *db, int complete)
{
    tu_assert_value(db, "x", complete >= 1 ? "one" : NULL);
    tu_assert_value(db, "a", complete >= 2 ? "overwritten" : "1");
    tu_assert_value(db, "b", complete >= 3 ? NULL : "2");
    tu_assert_value(db, "c", "3");
}

static void test_torn_tail_every_offset(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp(), seg[4096], want[128];
    kvs_t *db = tu_open(dir, NULL);
    size_t len;

    tu_set(db, "a", "1");
    tu_set(db, "b", "2");
    tu_set(db, "c", "3");
    tu_set(db, "x", "one");          /* the last three records: a new key, */
    tu_set(db, "a", "overwritten");  /* an overwrite, */
    assert_int_equal(kvs_remove(db, "b", 1), 0); /* and a tombstone */
    assert_int_equal(kvs_close(db), 0);

    snprintf(seg, sizeof seg, "%s", tu_path(dir, "000001.log"));
    unsigned char *orig = tu_slurp(seg, &len);
    size_t ends[3];
    ends[2] = len;
    ends[1] = ends[2] - rec_size(1, 0);
    ends[0] = ends[1] - rec_size(1, 11);
    size_t start = ends[0] - rec_size(1, 3);

    for (size_t cut = start; cut <= len; cut++) {
        int complete = 0;
        size_t good = start;
        for (int i = 0; i < 3; i++)
            if (ends[i] <= cut) {
                complete = i + 1;
                good = ends[i];
            }
        tu_spill(seg, orig, cut);
        tu_log_capture(KVS_LOG_WARN);
        db = tu_open(dir, NULL);
        check_torn_state(db, complete);
        if (cut > good) {
            snprintf(want, sizeof want, "torn tail: truncating %zu bytes at offset %zu",
                     cut - good, good);
            if (!strstr(tu_log_text(), want))
                fail_msg("cut at %zu: log lacks \"%s\": %s", cut, want, tu_log_text());
        } else {
            assert_null(strstr(tu_log_text(), "torn"));
        }
        assert_int_equal(kvs_close(db), 0);
        assert_int_equal(tu_file_size(seg), (int64_t)good);
        tu_log_release();
    }
    free(orig);
    tu_rm_rf(dir);
    free(dir);
}

/* ---- bit rot in a sealed segment --------------------------------------------------------- */

#define ROT_KEYS 200

static kvs_options small_segments(void)
{
    kvs_options o;
    kvs_options_init(&o);
    o.segment_size = 4096;
    o.auto_compact = 0;
    return o;
}

static void rot_value(int i, char *out, size_t cap)
{
    snprintf(out, cap, "value-%03d-padding-padding", i);
}

/* Every key but the damaged ones reads back; the damaged ones give want_rc; keys from lost on
 * (lost < ROT_KEYS) up to lost_end are absent. */
static void check_rot(kvs_t *db, int bad1, int bad2, int want_rc, int lost, int lost_end)
{
    char key[16], val[64];
    void *v;
    size_t n;

    for (int i = 0; i < ROT_KEYS; i++) {
        snprintf(key, sizeof key, "k%03d", i);
        rot_value(i, val, sizeof val);
        if (i == bad1 || i == bad2) {
            int rc = kvs_get(db, key, strlen(key), &v, &n);
            if (rc != want_rc)
                fail_msg("damaged key %s: rc %d, want %d", key, rc, want_rc);
            assert_null(v);
        } else {
            tu_assert_value(db, key, i >= lost && i < lost_end ? NULL : val);
        }
    }
}

static size_t find(const unsigned char *b, size_t len, const char *needle)
{
    const unsigned char *p = memmem(b, len, needle, strlen(needle));
    assert_non_null(p);
    return (size_t)(p - b);
}

static void assert_logged(const char *a, const char *b)
{
    const char *t = tu_log_text();
    /* both on one line */
    for (const char *line = t; *line;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        char buf[2048];
        snprintf(buf, sizeof buf, "%.*s", (int)n, line);
        if (strstr(buf, a) && strstr(buf, b))
            return;
        line += n + (nl ? 1 : 0);
    }
    fail_msg("no log line with \"%s\" and \"%s\" in:\n%s", a, b, t);
}

static void test_bit_rot_in_sealed_segment(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp(), key[16], val[64], seg[4096], off1[64], off2[64];
    kvs_options o = small_segments();
    kvs_t *db = tu_open(dir, &o);
    size_t len;
    int last = 0;

    for (int i = 0; i < ROT_KEYS; i++) {
        snprintf(key, sizeof key, "k%03d", i);
        rot_value(i, val, sizeof val);
        tu_set(db, key, val);
    }
    assert_int_equal(kvs_close(db), 0);

    snprintf(seg, sizeof seg, "%s", tu_path(dir, "000001.log"));
    unsigned char *b = tu_slurp(seg, &len);
    size_t v40 = find(b, len, "value-040-"), v45 = find(b, len, "value-045-");
    size_t rec40 = v40 - 4 - REC_HDR, rec45 = v45 - 4 - REC_HDR;
    for (int i = 45; i < ROT_KEYS; i++) { /* the keys from k045 to the end of the segment */
        rot_value(i, val, sizeof val);
        if (memmem(b, len, val, strlen(val)))
            last = i;
    }
    assert_true(last > 46);
    free(b);
    tu_flip_byte(seg, v40 + 3);      /* a value byte */
    tu_flip_byte(seg, rec45 + 18);   /* a key-length byte: the header itself lies */
    snprintf(off1, sizeof off1, "offset %zu", rec40);
    snprintf(off2, sizeof off2, "offset %zu", rec45);

    /* Loaded from the hint: the records are indexed, and refused when read. */
    assert_int_equal(unlink(tu_path(dir, "INDEX")), 0); /* a rebuild, not the saved index */
    tu_log_capture(KVS_LOG_WARN);
    db = tu_open(dir, &o);
    check_rot(db, 40, 45, KVS_ECORRUPT, ROT_KEYS, ROT_KEYS);
    assert_logged("000001.log", off1);
    assert_logged("000001.log", off2);
    kvs_stats st;
    assert_int_equal(kvs_stats_get(db, &st), 0);
    assert_int_equal(st.corrupt_reads, 2);
    assert_int_equal(st.corrupt_records, 0); /* a hint does not read values */
    assert_int_equal(kvs_close(db), 0);

    /* Scanned (no hint): the damaged value is indexed and reads as corrupt; the damaged header
     * ends what can be read of the segment. Both reported at open, and at the next open too. */
    assert_int_equal(unlink(tu_path(dir, "000001.hint")), 0);
    for (int round = 0; round < 2; round++) {
        tu_log_clear();
        db = tu_open(dir, &o);
        assert_logged("000001.log: damaged record at", off1);
        assert_logged("000001.log: damaged record header at", off2);
        check_rot(db, 40, -1, KVS_ECORRUPT, 45, last + 1);
        assert_int_equal(kvs_stats_get(db, &st), 0);
        assert_int_equal(st.corrupt_records, 2);
        assert_int_equal(kvs_close(db), 0);
    }
    tu_log_release();
    tu_rm_rf(dir);
    free(dir);
}

/* ---- hint files ---------------------------------------------------------------------------- */

#define HINT_KEYS 300

/* Keys k0..k299: every third overwritten, every seventh removed. */
static void hint_model(int i, char *val, size_t cap, int *present)
{
    *present = i % 7 != 0;
    snprintf(val, cap, i % 3 == 0 ? "second-%d" : "first-%d", i);
}

static void check_hint_model(kvs_t *db)
{
    char key[16], val[32];
    int present;

    for (int i = 0; i < HINT_KEYS; i++) {
        snprintf(key, sizeof key, "k%d", i);
        hint_model(i, val, sizeof val, &present);
        tu_assert_value(db, key, present ? val : NULL);
    }
}

typedef void (*hint_damage)(const char *path);

static void damage_delete(const char *path)
{
    assert_int_equal(unlink(path), 0);
}

static void damage_flip(const char *path)
{
    tu_flip_byte(path, (size_t)tu_file_size(path) / 2);
}

static void damage_truncate(const char *path)
{
    assert_int_equal(truncate(path, tu_file_size(path) / 2), 0);
}

static int for_each_hint(const char *dir, hint_damage fn)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[4096];
    int n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l > 5 && strcmp(de->d_name + l - 5, ".hint") == 0) {
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            if (fn)
                fn(path);
            n++;
        }
    }
    closedir(d);
    return n;
}

static void run_hint_case(hint_damage damage, const char *logged)
{
    char *dir = tu_mkdtemp(), key[16], val[32];
    kvs_options o = small_segments();
    kvs_t *db = tu_open(dir, &o);
    int present;

    for (int i = 0; i < HINT_KEYS; i++) {
        snprintf(key, sizeof key, "k%d", i);
        snprintf(val, sizeof val, "first-%d", i);
        tu_set(db, key, val);
    }
    for (int i = 0; i < HINT_KEYS; i++) {
        snprintf(key, sizeof key, "k%d", i);
        hint_model(i, val, sizeof val, &present);
        if (i % 3 == 0)
            tu_set(db, key, val);
        if (!present)
            assert_int_equal(kvs_remove(db, key, strlen(key)), 0);
    }
    assert_int_equal(kvs_close(db), 0);
    /* the hints are what is under test: without the saved index (saved.h) the open reads them */
    assert_int_equal(unlink(tu_path(dir, "INDEX")), 0);
    int hints = for_each_hint(dir, NULL);
    assert_true(hints >= 3);

    for_each_hint(dir, damage);
    tu_log_capture(KVS_LOG_WARN);
    db = tu_open(dir, &o);
    check_hint_model(db);
    if (logged)
        assert_logged(".hint", logged);
    assert_int_equal(kvs_close(db), 0);
    tu_log_release();
    assert_int_equal(for_each_hint(dir, NULL), hints); /* written anew */

    db = tu_open(dir, &o); /* and good: the same again, from the new hints */
    check_hint_model(db);
    assert_int_equal(kvs_close(db), 0);
    tu_rm_rf(dir);
    free(dir);
}

static void test_hint_missing(void **state)
{
    (void)state;
    run_hint_case(damage_delete, NULL);
}

static void test_hint_corrupt(void **state)
{
    (void)state;
    run_hint_case(damage_flip, "scanning the segment instead");
}

static void test_hint_truncated(void **state)
{
    (void)state;
    run_hint_case(damage_truncate, "scanning the segment instead");
}

static void test_hints_intact(void **state)
{
    (void)state;
    run_hint_case(NULL, NULL);
}

/* ---- manifest and leftovers -------------------------------------------------------------- */

static char *store_with_rotations(kvs_options *o)
{
    char *dir = tu_mkdtemp(), key[16];
    *o = small_segments();
    kvs_t *db = tu_open(dir, o);

    for (int i = 0; i < 400; i++) {
        snprintf(key, sizeof key, "m%d", i);
        tu_set(db, key, "manifest-test-value");
    }
    assert_int_equal(kvs_close(db), 0);
    return dir;
}

static void check_rotations_store(kvs_t *db)
{
    char key[16];
    for (int i = 0; i < 400; i++) {
        snprintf(key, sizeof key, "m%d", i);
        tu_assert_value(db, key, "manifest-test-value");
    }
}

static void test_manifest_torn_edit(void **state)
{
    (void)state;
    kvs_options o;
    char *dir = store_with_rotations(&o);
    const char *man = tu_path(dir, "MANIFEST");
    size_t len;
    unsigned char *b = tu_slurp(man, &len);
    unsigned char junk[7] = {1, 2, 3, 4, 5, 6, 7};
    unsigned char *torn = malloc(len + sizeof junk);

    memcpy(torn, b, len);
    memcpy(torn + len, junk, sizeof junk);
    tu_spill(tu_path(dir, "MANIFEST"), torn, len + sizeof junk);
    tu_log_capture(KVS_LOG_WARN);
    kvs_t *db = tu_open(dir, &o);
    check_rotations_store(db);
    assert_logged("MANIFEST", "torn edit");
    assert_int_equal(kvs_close(db), 0);
    tu_log_release();
    free(b);
    free(torn);
    tu_rm_rf(dir);
    free(dir);
}

static void test_manifest_damaged_middle_refuses(void **state)
{
    (void)state;
    kvs_options o;
    char *dir = store_with_rotations(&o);
    kvs_t *db;

    tu_flip_byte(tu_path(dir, "MANIFEST"), 16 + 8); /* the first edit's payload */
    int rc = tu_try_open(dir, &o, &db);
    assert_int_equal(rc, KVS_ECORRUPT);
    assert_non_null(strstr(kvs_last_error(), "damaged edit"));
    tu_rm_rf(dir);
    free(dir);
}

static void test_leftovers_removed(void **state)
{
    (void)state;
    kvs_options o;
    char *dir = store_with_rotations(&o);
    char p1[4096], p2[4096];

    snprintf(p1, sizeof p1, "%s", tu_path(dir, "000999.log"));
    snprintf(p2, sizeof p2, "%s", tu_path(dir, "000998.hint.tmp"));
    tu_spill(p1, "junk", 4);
    tu_spill(p2, "junk", 4);
    kvs_t *db = tu_open(dir, &o);
    check_rotations_store(db);
    /* A .log that is no segment is not ours: kept (test_manifest_damage.c has the rest). */
    assert_int_equal(tu_file_size(p1), 4);
    assert_int_equal(tu_file_size(p2), -1);
    assert_int_equal(kvs_close(db), 0);
    tu_rm_rf(dir);
    free(dir);
}

static void test_bad_segment_header_refuses(void **state)
{
    (void)state;
    kvs_options o;
    char *dir = store_with_rotations(&o);
    kvs_t *db;

    tu_flip_byte(tu_path(dir, "000001.log"), 0);
    assert_int_equal(tu_try_open(dir, &o, &db), KVS_ECORRUPT);
    assert_non_null(strstr(kvs_last_error(), "000001.log"));
    tu_rm_rf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torn_tail_every_offset),
        cmocka_unit_test(test_bit_rot_in_sealed_segment),
        cmocka_unit_test(test_hints_intact),
        cmocka_unit_test(test_hint_missing),
        cmocka_unit_test(test_hint_corrupt),
        cmocka_unit_test(test_hint_truncated),
        cmocka_unit_test(test_manifest_torn_edit),
        cmocka_unit_test(test_manifest_damaged_middle_refuses),
        cmocka_unit_test(test_leftovers_removed),
        cmocka_unit_test(test_bad_segment_header_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
