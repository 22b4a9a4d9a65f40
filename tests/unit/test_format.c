/*
 * test_format.c — the on-disk format of the kvs engine: format 3's expiry time, and stores of
 * format 2 (refused at open, converted by kvs_upgrade).
 *
 *   - Expiry: rec_encode / rec_decode carry expire_at, inside the header checksum. A record
 *     given an expiry time through the encode path (there is no API for one yet: the test
 *     rewrites a record's header in its file) keeps it through every path that reads or copies
 *     records — a scan at open and the hint written then, a compaction (its output and the
 *     output's hint), a reopen from the hints and one from scans — and its value still reads.
 *   - Format 2: tests/data/format2 (written by kvs at 48f85b4; tests/data/README.md), copied to
 *     a scratch directory. kvs_open refuses it with KVS_EFORMAT, the message naming the
 *     directory and `kvs upgrade`, and changes nothing; kvs_upgrade converts it: every key of
 *     format2.expected.txt holds its value, the removed keys are absent, the old store is kept
 *     byte for byte as DIR.format2, and progress was reported. A crash between the two renames
 *     (DIR missing, DIR.format2 and DIR.upgrade there) is finished by a second run; a
 *     DIR.upgrade left before the first rename is made anew. A store of the current format (kvs
 *     or lmdb) is left alone; a directory holding no store, a missing one, a symbolic link, and
 *     one whose backup name is taken are refused, as is a store locked by another process.
 *   - Damage in a format-2 store: a damaged record that is not its key's newest is skipped
 *     (the key keeps its newest value); a damaged newest record leaves its key out, never its
 *     older value in its place; damaged records at the end of the active segment with nothing
 *     intact after them are an append a crash cut short, and the older value stands (as format 2
 *     judged them). Each is logged with its file and offset, and counted.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/log/hint.h"
#include "engine/log/record.h"
#include "engine/log/segment.h"
#include "testutil.h"
#include "util/checksum.h"
#include "util/io.h"

#ifndef KVS_TEST_DATA
#error "KVS_TEST_DATA: the tests/data directory (tests/CMakeLists.txt defines it)"
#endif
#define FIXTURE KVS_TEST_DATA "/format2"
#define EXPECTED KVS_TEST_DATA "/format2.expected.txt"

/* ---- files ---------------------------------------------------------------------------------- */

static void copy_dir(const char *from, const char *to)
{
    char src[PATH_MAX + 512], dst[PATH_MAX + 512];
    struct dirent *de;
    DIR *d = opendir(from);

    assert_non_null(d);
    assert_int_equal(mkdir(to, 0755), 0);
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        size_t len;
        snprintf(src, sizeof src, "%s/%s", from, de->d_name);
        snprintf(dst, sizeof dst, "%s/%s", to, de->d_name);
        unsigned char *b = tu_slurp(src, &len);
        tu_spill(dst, b, len);
        free(b);
    }
    closedir(d);
}

/* Do a and b hold the same files, byte for byte? */
static bool same_dir(const char *a, const char *b)
{
    char pa[PATH_MAX + 512], pb[PATH_MAX + 512];
    struct dirent *de;
    DIR *d = opendir(a);
    int files = 0;
    bool same = d != NULL;

    while (same && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        size_t la, lb;
        snprintf(pa, sizeof pa, "%s/%s", a, de->d_name);
        snprintf(pb, sizeof pb, "%s/%s", b, de->d_name);
        if (tu_file_size(pb) < 0)
            return false;
        unsigned char *x = tu_slurp(pa, &la), *y = tu_slurp(pb, &lb);
        same = la == lb && memcmp(x, y, la) == 0;
        free(x);
        free(y);
        files++;
    }
    if (d)
        closedir(d);
    /* and nothing more in b */
    d = opendir(b);
    while (same && d && (de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            files--;
    if (d)
        closedir(d);
    return same && files == 0;
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* The id of the highest-numbered segment in dir: the active one of the fixture. */
static uint32_t last_segment(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    uint32_t id, last = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        if ((id = seg_parse_name(de->d_name, "log")) > last)
            last = id;
    closedir(d);
    assert_true(last > 0);
    return last;
}

/* ---- the fixture's expected contents --------------------------------------------------------- */

typedef struct kv {
    unsigned char *key, *val; /* val NULL: removed */
    size_t klen, vlen;
} kv;

typedef struct expected {
    kv *v;
    size_t n, sets, dels;
} expected;

static unsigned char *unhex(const char *s, size_t *n)
{
    size_t len = strcmp(s, "-") == 0 ? 0 : strlen(s);
    unsigned char *b = malloc(len / 2 + 1);

    assert_non_null(b);
    assert_int_equal(len % 2, 0);
    for (size_t i = 0; i < len / 2; i++) {
        unsigned x;
        assert_int_equal(sscanf(s + 2 * i, "%2x", &x), 1);
        b[i] = (unsigned char)x;
    }
    *n = len / 2;
    return b;
}

static expected load_expected(void)
{
    expected e = {0};
    char line[65536], op[8], k[1024], *v = malloc(65536);
    FILE *f = fopen(EXPECTED, "r");

    assert_non_null(f);
    assert_non_null(v);
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        assert_non_null(e.v = realloc(e.v, (e.n + 1) * sizeof *e.v));
        kv *x = &e.v[e.n++];
        int got = sscanf(line, "%7s %1023s %65535s", op, k, v);
        x->key = unhex(k, &x->klen);
        if (strcmp(op, "set") == 0) {
            assert_int_equal(got, 3);
            x->val = unhex(v, &x->vlen);
            e.sets++;
        } else {
            assert_string_equal(op, "del");
            x->val = NULL;
            e.dels++;
        }
    }
    fclose(f);
    free(v);
    assert_true(e.sets > 200 && e.dels > 10);
    return e;
}

static void free_expected(expected *e)
{
    for (size_t i = 0; i < e->n; i++) {
        free(e->v[i].key);
        free(e->v[i].val);
    }
    free(e->v);
}

static const kv *find_kv(const expected *e, const void *key, size_t klen)
{
    for (size_t i = 0; i < e->n; i++)
        if (e->v[i].klen == klen && memcmp(e->v[i].key, key, klen) == 0)
            return &e->v[i];
    fail_msg("no key of %zu bytes in %s", klen, EXPECTED);
    return NULL;
}

/* Every key as expected, but skip (klen bytes; NULL: none), which the caller checks. */
static void check_store(kvs_t *db, const expected *e, const void *skip, size_t klen)
{
    for (size_t i = 0; i < e->n; i++)
        if (!skip || e->v[i].klen != klen || memcmp(skip, e->v[i].key, klen) != 0)
            tu_assert_bin(db, e->v[i].key, e->v[i].klen, e->v[i].val, e->v[i].vlen);
}

/* ---- a scratch directory with the fixture in it --------------------------------------------- */

typedef struct scratch {
    char *base;
    char dir[PATH_MAX + 16], old[PATH_MAX + 32], tmp[PATH_MAX + 32];
} scratch;

static void scratch_new(scratch *s, bool with_fixture)
{
    char real[PATH_MAX];

    s->base = tu_mkdtemp();
    assert_non_null(realpath(s->base, real)); /* kvs_upgrade names DIR made absolute */
    snprintf(s->dir, sizeof s->dir, "%s/store", real);
    snprintf(s->old, sizeof s->old, "%s.format2", s->dir);
    snprintf(s->tmp, sizeof s->tmp, "%s.upgrade", s->dir);
    if (with_fixture)
        copy_dir(FIXTURE, s->dir);
}

static void scratch_free(scratch *s)
{
    tu_rm_rf(s->base);
    free(s->base);
}

static int progress_calls;

static void count_progress(void *ctx, const kvs_upgrade_report *r)
{
    (void)ctx;
    assert_true(r->segments_read <= r->segments_total);
    assert_true(r->keys <= r->keys_total || r->phase == KVS_UPGRADE_READING);
    progress_calls++;
}

/* ---- expiry: format 3 ------------------------------------------------------------------------- */

#define EXPIRE_AT 1798761600123ull /* 2027-01-01 00:00:00.123 UTC, in ms */

static void test_record_carries_expiry(void **state)
{
    (void)state;
    unsigned char hdr[REC_HDR];
    rec_hdr h;

    rec_encode(hdr, 42, 0, EXPIRE_AT, "key", 3, "value", 5);
    assert_true(rec_decode(hdr, &h));
    assert_true(h.expire_ms == EXPIRE_AT && h.seq == 42 && h.klen == 3 && h.vlen == 5);
    assert_true(le_get64(hdr + 25) == EXPIRE_AT); /* record.h: bytes 25..32 */
    assert_true(rec_verify(hdr, "key", 3, "value", 5));
    hdr[25] ^= 1; /* the header checksum covers it */
    assert_false(rec_head_ok(hdr, "key", 3));
    rec_encode(hdr, 42, REC_TOMBSTONE, 0, "key", 3, NULL, 0);
    assert_true(rec_decode(hdr, &h) && h.expire_ms == 0);
}

typedef struct expiry_seen {
    const char *key;
    uint64_t seq, expire_ms;
    int records;
} expiry_seen;

static int see_expiry(void *arg, const seg_rec *r)
{
    expiry_seen *e = arg;

    if (r->klen == strlen(e->key) && memcmp(r->key, e->key, r->klen) == 0) {
        e->records++;
        if (r->seq > e->seq) {
            e->seq = r->seq;
            e->expire_ms = r->expire_ms;
        }
    }
    return 0;
}

/* The expiry time of key's newest record in dir's segments, read by scans (hints false) or from
 * the hint files (which must then hold a record of key). */
static uint64_t expiry_in(const char *dir, const char *key, bool hints)
{
    expiry_seen e = {key, 0, 0, 0};
    DIR *d = opendir(dir);
    struct dirent *de;
    uint32_t id;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        seg *s;
        seg_scan_result res;
        if ((id = seg_parse_name(de->d_name, "log")) == 0)
            continue;
        assert_int_equal(seg_open(dir, id, false, &s), 0);
        if (!hints)
            assert_int_equal(seg_scan(s, see_expiry, &e, &res), 0);
        else /* the active segment has none */
            assert_int_not_equal(hint_load(dir, s, see_expiry, &e), KVS_ECORRUPT);
        seg_close(s);
    }
    closedir(d);
    assert_true(e.records > 0);
    return e.expire_ms;
}

static void remove_hints(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        if (seg_parse_name(de->d_name, "hint"))
            assert_int_equal(unlink(tu_path(dir, de->d_name)), 0);
    closedir(d);
}

/* Give the record of key (the only one in the store) an expiry time: its header rewritten with
 * rec_encode; the hint of its segment removed (it would describe the record as it was). */
static void set_expiry(const char *dir, const char *key, uint64_t expire_ms)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    uint32_t id;
    int found = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        if ((id = seg_parse_name(de->d_name, "log")) == 0)
            continue;
        char path[PATH_MAX];
        size_t len;
        snprintf(path, sizeof path, "%s", tu_path(dir, de->d_name));
        unsigned char *b = tu_slurp(path, &len), *k = memmem(b, len, key, strlen(key));
        if (k) {
            unsigned char *hdr = k - REC_HDR;
            rec_hdr h;
            assert_true(rec_decode(hdr, &h) && h.klen == strlen(key));
            rec_encode(hdr, h.seq, h.flags, expire_ms, k, h.klen, k + h.klen, h.vlen);
            tu_spill(path, b, len);
            char hint[SEG_NAME_MAX];
            seg_name(hint, sizeof hint, id, "hint");
            unlink(tu_path(dir, hint));
            found++;
        }
        free(b);
    }
    closedir(d);
    assert_int_equal(found, 1);
}

static kvs_options small_store(void)
{
    kvs_options o;
    kvs_options_init(&o);
    o.engine = "kvs";
    o.segment_size = 4096;
    o.auto_compact = 0;
    return o;
}

static void put_fillers(kvs_t *db, const char *val)
{
    char key[32];
    for (int i = 0; i < 150; i++) {
        snprintf(key, sizeof key, "filler-%03d", i);
        tu_set(db, key, val);
    }
}

static void test_expiry_survives_compaction_and_reopen(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    kvs_options o = small_store();
    kvs_t *db = tu_open(dir, &o);

    tu_set(db, "expiring-key", "expiring-value");
    put_fillers(db, "first-filler-value"); /* seals the segment that holds expiring-key */
    assert_int_equal(kvs_close(db), 0);
    set_expiry(dir, "expiring-key", EXPIRE_AT);

    /* scanned at open (its hint was removed), the hint written anew */
    db = tu_open(dir, &o);
    tu_assert_value(db, "expiring-key", "expiring-value");
    assert_true(expiry_in(dir, "expiring-key", false) == EXPIRE_AT);
    assert_true(expiry_in(dir, "expiring-key", true) == EXPIRE_AT);

    /* compaction copies it into an output segment, with a hint of its own */
    put_fillers(db, "second-filler-value"); /* the first fillers die */
    uint64_t segs_before = tu_stats(db).segments;
    assert_true(kvs_compact(db) > 0);
    assert_true(tu_stats(db).compactions == 1 && segs_before > 1);
    tu_assert_value(db, "expiring-key", "expiring-value");
    assert_true(expiry_in(dir, "expiring-key", false) == EXPIRE_AT);
    assert_true(expiry_in(dir, "expiring-key", true) == EXPIRE_AT);
    assert_int_equal(kvs_close(db), 0);

    /* a reopen from the hints, then one from scans (not from the index saved at close) */
    assert_int_equal(unlink(tu_path(dir, "INDEX")), 0);
    db = tu_open(dir, &o);
    tu_assert_value(db, "expiring-key", "expiring-value");
    assert_int_equal(kvs_close(db), 0);
    assert_true(expiry_in(dir, "expiring-key", true) == EXPIRE_AT);
    remove_hints(dir);
    assert_int_equal(unlink(tu_path(dir, "INDEX")), 0);
    db = tu_open(dir, &o);
    tu_assert_value(db, "expiring-key", "expiring-value");
    assert_int_equal(kvs_close(db), 0);
    assert_true(expiry_in(dir, "expiring-key", false) == EXPIRE_AT);
    assert_true(expiry_in(dir, "expiring-key", true) == EXPIRE_AT);
    tu_rm_rf(dir);
    free(dir);
}

/* Every write stores "never" (no expiry yet in the API). */
static void test_writes_store_no_expiry(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    kvs_options o = small_store();
    kvs_t *db = tu_open(dir, &o);

    tu_set(db, "plain", "value");
    put_fillers(db, "filler");
    assert_int_equal(kvs_close(db), 0);
    assert_true(expiry_in(dir, "plain", false) == 0);
    assert_true(expiry_in(dir, "plain", true) == 0);
    tu_rm_rf(dir);
    free(dir);
}

/* A hint of format 1 beside a segment of format 3 is not read: the segment is scanned, the hint
 * written anew. */
static void test_old_hint_rescanned(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp(), hint[PATH_MAX];
    kvs_options o = small_store();
    kvs_t *db = tu_open(dir, &o);
    size_t len;

    put_fillers(db, "filler");
    assert_int_equal(kvs_close(db), 0);
    snprintf(hint, sizeof hint, "%s", tu_path(dir, "000001.hint"));
    unsigned char *b = tu_slurp(hint, &len), *t = malloc(len);
    assert_non_null(t);
    le_put16(b + 4, 1);
    /* the footer made right again (hint.h: over the entries, then the header) */
    memcpy(t, b + HINT_HDR, len - 8 - HINT_HDR);
    memcpy(t + len - 8 - HINT_HDR, b, HINT_HDR);
    le_put64(b + len - 8, cksum64(t, len - 8));
    tu_spill(hint, b, len);
    free(t);
    free(b);
    assert_int_equal(unlink(tu_path(dir, "INDEX")), 0); /* a rebuild, from the hints */
    tu_log_capture(KVS_LOG_WARN);
    db = tu_open(dir, &o);
    assert_non_null(strstr(tu_log_text(), "hint format version 1"));
    assert_non_null(strstr(tu_log_text(), "scanning the segment instead"));
    tu_assert_value(db, "filler-000", "filler");
    tu_assert_value(db, "filler-149", "filler");
    assert_int_equal(kvs_close(db), 0);
    tu_log_release();
    b = tu_slurp(hint, &len);
    assert_int_equal(le_get16(b + 4), HINT_VERSION);
    free(b);
    tu_rm_rf(dir);
    free(dir);
}

/* ---- format 2: refused, upgraded ----------------------------------------------------------- */

static void upgrade_ok(const scratch *s, kvs_upgrade_report *r, int outcome)
{
    int rc = kvs_upgrade(s->dir, count_progress, NULL, r);
    if (rc != 0)
        fail_msg("kvs_upgrade: %s: %s", kvs_strerror(rc), kvs_last_error());
    assert_int_equal(r->outcome, outcome);
}

static void test_refused_then_upgraded(void **state)
{
    (void)state;
    expected e = load_expected();
    kvs_upgrade_report r;
    scratch s;
    kvs_t *db;
    char want[PATH_MAX + 64];

    scratch_new(&s, true);
    assert_int_equal(tu_try_open(s.dir, NULL, &db), KVS_EFORMAT);
    snprintf(want, sizeof want, "%s holds a format-2 store", s.dir);
    assert_non_null(strstr(kvs_last_error(), want));
    snprintf(want, sizeof want, "`kvs upgrade %s`", s.dir);
    assert_non_null(strstr(kvs_last_error(), want));
    assert_true(same_dir(FIXTURE, s.dir)); /* the refusal changed nothing */

    progress_calls = 0;
    upgrade_ok(&s, &r, KVS_UPGRADE_CONVERTED);
    assert_true(r.segments_total > 1 && r.segments_read == r.segments_total);
    assert_true(r.records > r.keys);
    assert_int_equal(r.keys, e.sets);
    assert_int_equal(r.keys_total, e.sets);
    assert_int_equal(r.tombstones, e.dels);
    assert_int_equal(r.damaged, 0);
    assert_int_equal(r.damaged_keys, 0);
    assert_true(progress_calls >= (int)r.segments_total + 1);
    assert_string_equal(r.backup, s.old);
    assert_true(same_dir(FIXTURE, s.old)); /* the old store kept as it was */
    assert_false(exists(s.tmp));

    db = tu_open(s.dir, NULL);
    check_store(db, &e, NULL, 0);
    assert_int_equal(tu_stats(db).keys, e.sets);
    assert_string_equal(tu_stats(db).engine, "kvs");
    assert_int_equal(kvs_close(db), 0);

    /* again: nothing to do, nothing changed */
    upgrade_ok(&s, &r, KVS_UPGRADE_CURRENT);
    assert_true(same_dir(FIXTURE, s.old));
    db = tu_open(s.dir, NULL);
    assert_int_equal(tu_stats(db).keys, e.sets);
    assert_int_equal(kvs_close(db), 0);
    scratch_free(&s);
    free_expected(&e);
}

static void test_resume_between_renames(void **state)
{
    (void)state;
    expected e = load_expected();
    kvs_upgrade_report r;
    scratch s;

    scratch_new(&s, true);
    upgrade_ok(&s, &r, KVS_UPGRADE_CONVERTED);
    /* as a crash after the first rename leaves it: DIR missing, DIR.format2 and DIR.upgrade */
    assert_int_equal(rename(s.dir, s.tmp), 0);
    upgrade_ok(&s, &r, KVS_UPGRADE_RESUMED);
    assert_false(exists(s.tmp));
    assert_true(same_dir(FIXTURE, s.old));
    kvs_t *db = tu_open(s.dir, NULL);
    check_store(db, &e, NULL, 0);
    assert_int_equal(kvs_close(db), 0);

    /* DIR missing and only the backup there: refused, nothing touched */
    assert_int_equal(rename(s.dir, s.tmp), 0);
    tu_rm_rf(s.tmp);
    assert_int_equal(kvs_upgrade(s.dir, NULL, NULL, &r), KVS_EINVAL);
    assert_non_null(strstr(kvs_last_error(), "no such directory"));
    assert_true(same_dir(FIXTURE, s.old));
    scratch_free(&s);
    free_expected(&e);
}

/* A crash before the first rename leaves DIR (format 2) and a partial DIR.upgrade. */
static void test_leftover_upgrade_dir_redone(void **state)
{
    (void)state;
    expected e = load_expected();
    kvs_upgrade_report r;
    scratch s;

    scratch_new(&s, true);
    assert_int_equal(mkdir(s.tmp, 0755), 0);
    tu_spill(tu_path(s.tmp, "MANIFEST"), "half", 4);
    tu_spill(tu_path(s.tmp, "000001.log"), "KVSL", 4);
    tu_spill(tu_path(s.tmp, "ENGINE"), "kvs\n", 4);
    tu_log_capture(KVS_LOG_WARN);
    upgrade_ok(&s, &r, KVS_UPGRADE_CONVERTED);
    assert_non_null(strstr(tu_log_text(), "left by an upgrade that did not finish"));
    tu_log_release();
    kvs_t *db = tu_open(s.dir, NULL);
    check_store(db, &e, NULL, 0);
    assert_int_equal(kvs_close(db), 0);

    /* one that holds something else is not removed: the upgrade stops */
    scratch_free(&s);
    scratch_new(&s, true);
    assert_int_equal(mkdir(s.tmp, 0755), 0);
    tu_spill(tu_path(s.tmp, "notes.txt"), "mine", 4);
    assert_true(kvs_upgrade(s.dir, NULL, NULL, &r) < 0);
    assert_non_null(strstr(kvs_last_error(), "cannot remove"));
    assert_true(exists(tu_path(s.tmp, "notes.txt")));
    assert_true(same_dir(FIXTURE, s.dir));
    scratch_free(&s);
    free_expected(&e);
}

static void test_nothing_to_do_or_refused(void **state)
{
    (void)state;
    kvs_upgrade_report r;
    scratch s;
    kvs_options o;

    /* a store of the current format, of either engine: left alone */
    const char *engines[] = {"kvs", "lmdb"};
    for (int i = 0; i < 2; i++) {
        scratch_new(&s, false);
        kvs_options_init(&o);
        o.engine = engines[i];
        kvs_t *db = tu_open(s.dir, &o);
        tu_set(db, "k", "v");
        assert_int_equal(kvs_close(db), 0);
        upgrade_ok(&s, &r, KVS_UPGRADE_CURRENT);
        assert_false(exists(s.old) || exists(s.tmp));
        db = tu_open(s.dir, NULL);
        tu_assert_value(db, "k", "v");
        assert_int_equal(kvs_close(db), 0);
        scratch_free(&s);
    }

    /* no store, no directory, a file */
    scratch_new(&s, false);
    assert_int_equal(kvs_upgrade(s.dir, NULL, NULL, &r), KVS_EINVAL);
    assert_int_equal(mkdir(s.dir, 0755), 0);
    assert_int_equal(kvs_upgrade(s.dir, NULL, NULL, &r), KVS_EINVAL);
    assert_non_null(strstr(kvs_last_error(), "holds no store"));
    assert_false(exists(s.old) || exists(s.tmp) || exists(tu_path(s.dir, "MANIFEST")));
    assert_int_equal(rmdir(s.dir), 0);
    tu_spill(s.dir, "x", 1);
    assert_int_equal(kvs_upgrade(s.dir, NULL, NULL, &r), KVS_EINVAL);
    assert_int_equal(kvs_upgrade("", NULL, NULL, &r), KVS_EINVAL);
    scratch_free(&s);

    /* a symbolic link to a store: refused (the renames would move the link, not the store) */
    scratch_new(&s, true);
    char link[PATH_MAX + 16];
    snprintf(link, sizeof link, "%s/link", s.base);
    assert_int_equal(symlink(s.dir, link), 0);
    assert_int_equal(kvs_upgrade(link, NULL, NULL, &r), KVS_EINVAL);
    assert_non_null(strstr(kvs_last_error(), "symbolic link"));
    assert_true(same_dir(FIXTURE, s.dir));
    scratch_free(&s);

    /* the backup's name taken: refused before anything is written */
    scratch_new(&s, true);
    assert_int_equal(mkdir(s.old, 0755), 0);
    assert_int_equal(kvs_upgrade(s.dir, NULL, NULL, &r), KVS_EBUSY);
    assert_non_null(strstr(kvs_last_error(), s.old));
    assert_false(exists(s.tmp));
    assert_true(same_dir(FIXTURE, s.dir));
    assert_int_equal(rmdir(s.old), 0);

    /* locked by another process (flock on DIR, as kvs_open takes it) */
    int fd = open(s.dir, O_RDONLY | O_DIRECTORY);
    assert_true(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0);
    assert_int_equal(kvs_upgrade(s.dir, NULL, NULL, &r), KVS_EBUSY);
    close(fd);
    assert_true(same_dir(FIXTURE, s.dir));

    /* DIR given as "." (and with a trailing slash) still names the siblings */
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(s.dir), 0);
    upgrade_ok(&(scratch){.dir = "./"}, &r, KVS_UPGRADE_CONVERTED);
    assert_int_equal(chdir(cwd), 0);
    assert_string_equal(r.backup, s.old);
    assert_true(same_dir(FIXTURE, s.old));
    assert_false(exists(s.tmp));
    scratch_free(&s);
}

/* ---- format 2: damage ------------------------------------------------------------------------ */

/* Flip the byte n bytes into pattern — a key and the start of its value: one record — in
 * segment file name; returns the record's offset (format 2: a 25-byte header before the key). */
static size_t flip_in(const char *dir, const char *name, const void *pattern, size_t plen,
                      size_t n)
{
    char path[PATH_MAX];
    size_t len;

    snprintf(path, sizeof path, "%s", tu_path(dir, name));
    unsigned char *b = tu_slurp(path, &len), *p = memmem(b, len, pattern, plen);
    assert_non_null(p);
    assert_null(memmem(p + 1, len - (size_t)(p + 1 - b), pattern, plen)); /* the only one */
    size_t off = (size_t)(p - b);
    free(b);
    tu_flip_byte(path, off + n);
    assert_true(off >= SEG_HDR + 25);
    return off - 25;
}

/* Which segment file of dir holds pattern (exactly one must). */
static const char *file_with(const char *dir, const void *pattern, size_t plen)
{
    static char name[256];
    DIR *d = opendir(dir);
    struct dirent *de;
    int found = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        if (!seg_parse_name(de->d_name, "log"))
            continue;
        size_t len;
        unsigned char *b = tu_slurp(tu_path(dir, de->d_name), &len);
        if (memmem(b, len, pattern, plen)) {
            snprintf(name, sizeof name, "%s", de->d_name);
            found++;
        }
        free(b);
    }
    closedir(d);
    assert_int_equal(found, 1);
    return name;
}

static void assert_logged(const char *file, size_t off)
{
    char want[64];
    snprintf(want, sizeof want, "offset %zu", off);
    const char *t = tu_log_text(), *p = strstr(t, file);
    while (p && !strstr(p, want))
        p = strstr(p + 1, file);
    if (!p)
        fail_msg("no line names %s at %s in:\n%s", file, want, t);
}

static void test_upgrade_damaged(void **state)
{
    (void)state;
    expected e = load_expected();
    kvs_upgrade_report r;
    scratch s;

    scratch_new(&s, true);
    /* key-002's older record ("one-2.", superseded by "four-2."): damage, the key keeps its
     * newest value; key-011's newest record ("four-11."): damaged, the key is left out */
    char old2[64], new11[64];
    snprintf(old2, sizeof old2, "%s", file_with(s.dir, "key-002one-2.", 13));
    snprintf(new11, sizeof new11, "%s", file_with(s.dir, "key-011four-11.", 15));
    size_t off2 = flip_in(s.dir, old2, "key-002one-2.", 13, 9);
    size_t off11 = flip_in(s.dir, new11, "key-011four-11.", 15, 10);
    tu_log_capture(KVS_LOG_WARN);
    upgrade_ok(&s, &r, KVS_UPGRADE_CONVERTED);
    assert_int_equal(r.damaged, 2);
    assert_int_equal(r.damaged_keys, 1);
    assert_int_equal(r.keys, e.sets - 1);
    assert_logged(old2, off2);
    assert_logged(new11, off11);
    assert_non_null(strstr(tu_log_text(), "the key is left out"));
    tu_log_release();
    kvs_t *db = tu_open(s.dir, NULL);
    check_store(db, &e, "key-011", 7);
    tu_assert_bin(db, "key-011", 7, NULL, 0);
    assert_non_null(find_kv(&e, "key-002", 7)->val);
    assert_int_equal(kvs_close(db), 0);
    scratch_free(&s);
    free_expected(&e);
}

/* The active segment ends with ...k5 = "\0new\xff", empty-value = "" (make_format2.c). */
static const unsigned char K5[6] = {0x00, 0xff, 5, '\n', 0x00, 0x85};
static const unsigned char K5_NEW[11] = {0x00, 0xff, 5, '\n', 0x00, 0x85, /* key, then value */
                                         0x00, 'n', 'e', 'w', 0xff};

static void test_upgrade_damaged_active(void **state)
{
    (void)state;
    expected e = load_expected();
    kvs_upgrade_report r;
    scratch s;
    char active[SEG_NAME_MAX], path[PATH_MAX];
    const unsigned char k5_old[5] = {5, 0x00, 0xfe, '\r', 0x00};

    /* k5's newest record damaged, an intact record after it: damage; k5 left out */
    scratch_new(&s, true);
    seg_name(active, sizeof active, last_segment(s.dir), "log");
    assert_string_equal(file_with(s.dir, K5_NEW, sizeof K5_NEW), active);
    flip_in(s.dir, active, K5_NEW, sizeof K5_NEW, 7);
    tu_log_capture(KVS_LOG_WARN);
    upgrade_ok(&s, &r, KVS_UPGRADE_CONVERTED);
    tu_log_release();
    assert_int_equal(r.damaged, 1);
    assert_int_equal(r.damaged_keys, 1);
    kvs_t *db = tu_open(s.dir, NULL);
    check_store(db, &e, K5, sizeof K5);
    tu_assert_bin(db, K5, sizeof K5, NULL, 0);
    assert_int_equal(kvs_close(db), 0);
    scratch_free(&s);

    /* and the record after it cut short: an append a crash cut short, as format 2 judged it —
     * k5 keeps its older value, empty-value its older (empty) one */
    scratch_new(&s, true);
    flip_in(s.dir, active, K5_NEW, sizeof K5_NEW, 7);
    snprintf(path, sizeof path, "%s", tu_path(s.dir, active));
    assert_int_equal(truncate(path, tu_file_size(path) - 3), 0);
    tu_log_capture(KVS_LOG_WARN);
    upgrade_ok(&s, &r, KVS_UPGRADE_CONVERTED);
    assert_non_null(strstr(tu_log_text(), "a crash cut short"));
    tu_log_release();
    assert_int_equal(r.damaged, 1);
    assert_int_equal(r.damaged_keys, 0);
    assert_int_equal(r.keys, e.sets);
    db = tu_open(s.dir, NULL);
    check_store(db, &e, K5, sizeof K5);
    tu_assert_bin(db, K5, sizeof K5, k5_old, sizeof k5_old);
    tu_assert_bin(db, "empty-value", 11, "", 0);
    assert_int_equal(kvs_close(db), 0);
    scratch_free(&s);
    free_expected(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_carries_expiry),
        cmocka_unit_test(test_expiry_survives_compaction_and_reopen),
        cmocka_unit_test(test_writes_store_no_expiry),
        cmocka_unit_test(test_old_hint_rescanned),
        cmocka_unit_test(test_refused_then_upgraded),
        cmocka_unit_test(test_resume_between_renames),
        cmocka_unit_test(test_leftover_upgrade_dir_redone),
        cmocka_unit_test(test_nothing_to_do_or_refused),
        cmocka_unit_test(test_upgrade_damaged),
        cmocka_unit_test(test_upgrade_damaged_active),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
