/*
 * test_backup.c — checkpoints, verification and repair (kvs.h: kvs_checkpoint, kvs_verify,
 * kvs_repair; issue 15, deliverables 4 and 5). Run once per engine (argv[1]); the cases that
 * read the log engine's files skip under lmdb.
 *
 *   - Checkpoint under write load: writer threads set keys of their own and overwrite one key
 *     each, counting what is acknowledged; compaction runs meanwhile (kvs: a thread calling
 *     kvs_compact). At a moment the counts are taken and a checkpoint made; the writers go on.
 *     The checkpoint verifies clean, opens as a data directory while the source runs, and holds
 *     every write acknowledged before the call with its value — and nothing torn: every key it
 *     holds has the value that was written. Its segments are the source's files (same inodes:
 *     no second copy). A write to the opened checkpoint does not reach the source; the source
 *     holds every write at the end. Once the writers stop, a second checkpoint holds every
 *     write they made (those in the active segment too).
 *   - Into a directory that is not empty: KVS_EINVAL, the directory left as it was; into one on
 *     another file system (kvs, where /dev/shm is one): KVS_EINVAL naming the reason.
 *   - Verify: a clean store is 0 with its counts; then, each on a store of its own, one kind of
 *     damage — a byte of a record's value flipped, a segment cut inside a record, a hint entry's
 *     key flipped, a manifest edit's byte flipped, a listed segment deleted, the active
 *     segment's records out of seq order — is KVS_ECORRUPT with a finding naming the right file
 *     and offset.
 *   - Repair from each damaged store: the new store opens and holds every key whose record was
 *     not damaged (checked against the writes made), honours a removal, an overwrite, an expiry
 *     time past and one to come; the keys lost are exactly the damaged ones.
 *   - Verify and repair refuse a directory a store has open (KVS_EBUSY).
 */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/log/hint.h"
#include "engine/log/record.h"
#include "engine/log/segment.h"
#include "testutil.h"

/* ---- checkpoint under load ---------------------------------------------------------------- */

#define WRITERS 3

typedef struct load {
    kvs_t *db;
    int stop;                 /* atomic */
    uint64_t acked[WRITERS];  /* atomics: iterations whose writes all returned 0 */
    int failed;               /* atomic: a write (or a compaction) failed */
} load;

typedef struct writer_arg {
    load *l;
    int t;
} writer_arg;

static void unique_kv(int t, uint64_t i, char *key, size_t kcap, char *val, size_t vcap)
{
    snprintf(key, kcap, "w%d-%06llu", t, (unsigned long long)i);
    snprintf(val, vcap, "value-of-%d-%06llu-%0*d", t, (unsigned long long)i, 60, 7);
}

static void *writer(void *arg)
{
    writer_arg *a = arg;
    char key[32], val[128], hot[16], hv[32];

    snprintf(hot, sizeof hot, "hot-%d", a->t);
    for (uint64_t i = 0; !__atomic_load_n(&a->l->stop, __ATOMIC_RELAXED); i++) {
        unique_kv(a->t, i, key, sizeof key, val, sizeof val);
        snprintf(hv, sizeof hv, "%llu", (unsigned long long)i);
        if (kvs_set(a->l->db, key, strlen(key), val, strlen(val)) < 0 ||
            kvs_set(a->l->db, hot, strlen(hot), hv, strlen(hv)) < 0) {
            __atomic_store_n(&a->l->failed, 1, __ATOMIC_RELAXED);
            break;
        }
        __atomic_store_n(&a->l->acked[a->t], i + 1, __ATOMIC_RELEASE);
        if (i % 20 == 19)
            usleep(1000); /* a few MB in all, so the segments stay few */
    }
    return NULL;
}

static void *compactor(void *arg)
{
    load *l = arg;
    while (!__atomic_load_n(&l->stop, __ATOMIC_RELAXED)) {
        if (kvs_compact(l->db) < 0)
            __atomic_store_n(&l->failed, 1, __ATOMIC_RELAXED);
        usleep(2000);
    }
    return NULL;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Every write acknowledged before the checkpoint is in cp, and what cp holds is not torn. */
static void check_checkpoint(kvs_t *cp, const uint64_t *before)
{
    char key[32], val[128], hot[16];

    for (int t = 0; t < WRITERS; t++) {
        assert_true(before[t] > 0);
        for (uint64_t i = 0; i < before[t]; i++) {
            unique_kv(t, i, key, sizeof key, val, sizeof val);
            tu_assert_value(cp, key, val);
        }
        /* writes after the counts were taken: absent, or whole */
        for (uint64_t i = before[t]; i < before[t] + 1000; i++) {
            void *v;
            size_t n;
            unique_kv(t, i, key, sizeof key, val, sizeof val);
            int rc = kvs_get(cp, key, strlen(key), &v, &n);
            assert_true(rc == 0 || rc == KVS_ENOTFOUND);
            if (rc == 0) {
                assert_int_equal(n, strlen(val));
                assert_memory_equal(v, val, n);
                kvs_free(v);
            }
        }
        /* the hot key holds a value at least as new as the last acknowledged overwrite */
        void *v;
        size_t n;
        snprintf(hot, sizeof hot, "hot-%d", t);
        assert_int_equal(kvs_get(cp, hot, strlen(hot), &v, &n), 0);
        assert_true(strtoull(v, NULL, 10) + 1 >= before[t]);
        kvs_free(v);
    }
}

/* The checkpoint's segment files are the source's (same inode) where the source still has them
 * (compaction may have replaced some since); with some_shared, at least one is: no copy was
 * made. */
static void assert_linked(const char *src, const char *cp, bool some_shared)
{
    DIR *d = opendir(cp);
    struct dirent *de;
    int shared = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        struct stat a, b;
        char p[8192];
        if (!strstr(de->d_name, ".log"))
            continue;
        snprintf(p, sizeof p, "%s/%s", cp, de->d_name);
        assert_int_equal(stat(p, &a), 0);
        snprintf(p, sizeof p, "%s/%s", src, de->d_name);
        if (stat(p, &b) == 0 && a.st_nlink > 1) { /* one of the links: not the new active */
            assert_int_equal(a.st_ino, b.st_ino);
            shared++;
        }
    }
    closedir(d);
    assert_true(shared > 0 || !some_shared);
}

static void test_checkpoint_under_load(void **state)
{
    tu_fixture *f = *state;
    load l = {0};
    writer_arg args[WRITERS];
    pthread_t th[WRITERS], comp;
    uint64_t before[WRITERS];
    char *cpdir = tu_mkdtemp();
    char dest[4096];
    bool kvs = strcmp(tu_engine, "kvs") == 0;

    snprintf(dest, sizeof dest, "%s/cp", cpdir); /* absent: the checkpoint makes it */
    f->opt.segment_size = 64 * 1024;
    f->opt.compact_min_bytes = 4096;
    f->opt.compact_ratio = 0.2;
    tu_fx_open(f);
    l.db = f->db;
    for (int t = 0; t < WRITERS; t++) {
        args[t] = (writer_arg){&l, t};
        assert_int_equal(pthread_create(&th[t], NULL, writer, &args[t]), 0);
    }
    if (kvs)
        assert_int_equal(pthread_create(&comp, NULL, compactor, &l), 0);
    sleep_ms(300);
    for (int t = 0; t < WRITERS; t++)
        before[t] = __atomic_load_n(&l.acked[t], __ATOMIC_ACQUIRE);
    assert_int_equal(kvs_checkpoint(f->db, dest), 0);
    if (kvs)
        assert_linked(f->dir, dest, false); /* compaction goes on: it may replace them all */
    sleep_ms(200); /* the source goes on, compaction too */

    kvs_verify_report rep;
    assert_int_equal(kvs_verify(dest, NULL, NULL, &rep), 0);
    assert_true(rep.keys >= WRITERS);
    kvs_t *cp = tu_open(dest, NULL); /* opened beside the running source */
    check_checkpoint(cp, before);
    tu_set(cp, "only-in-checkpoint", "x");
    assert_int_equal(kvs_close(cp), 0);

    __atomic_store_n(&l.stop, 1, __ATOMIC_RELAXED);
    for (int t = 0; t < WRITERS; t++)
        pthread_join(th[t], NULL);
    if (kvs)
        pthread_join(comp, NULL);
    assert_int_equal(l.failed, 0);
    tu_assert_value(f->db, "only-in-checkpoint", NULL);
    /* quiet now: the last writes are in the active segment only, which must be sealed; and
     * with nothing left to compact, the linked files stay the source's */
    char dest2[4096];
    snprintf(dest2, sizeof dest2, "%s/cp2", cpdir);
    if (kvs)
        assert_true(kvs_compact(f->db) >= 0);
    assert_int_equal(kvs_checkpoint(f->db, dest2), 0);
    if (kvs)
        assert_linked(f->dir, dest2, true);
    cp = tu_open(dest2, NULL);
    check_checkpoint(cp, l.acked);
    assert_int_equal(kvs_close(cp), 0);
    if (kvs)
        assert_true(tu_stats(f->db).compactions > 0);
    tu_fx_reopen(f);
    for (int t = 0; t < WRITERS; t++) {
        char key[32], val[128];
        assert_true(l.acked[t] > before[t]);
        for (uint64_t i = 0; i < l.acked[t]; i++) {
            unique_kv(t, i, key, sizeof key, val, sizeof val);
            tu_assert_value(f->db, key, val);
        }
    }
    cp = tu_open(dest, NULL); /* and again, after the source compacted on and was reopened */
    check_checkpoint(cp, before);
    tu_assert_value(cp, "only-in-checkpoint", "x");
    assert_int_equal(kvs_close(cp), 0);
    tu_rm_rf(cpdir);
    free(cpdir);
}

static void test_checkpoint_refuses_nonempty(void **state)
{
    tu_fixture *f = *state;
    char *dest = tu_mkdtemp();

    tu_set(f->db, "k", "v");
    tu_spill(tu_path(dest, "mine.txt"), "keep me", 7);
    assert_int_equal(kvs_checkpoint(f->db, dest), KVS_EINVAL);
    assert_non_null(strstr(kvs_last_error(), "not empty"));
    assert_int_equal(tu_dir_size(dest), 7); /* nothing added, nothing removed */
    size_t n;
    unsigned char *b = tu_slurp(tu_path(dest, "mine.txt"), &n);
    assert_memory_equal(b, "keep me", 7);
    free(b);
    /* a parent that does not exist */
    char deep[4096];
    snprintf(deep, sizeof deep, "%s/no/such", dest);
    assert_true(kvs_checkpoint(f->db, deep) < 0);
    tu_rm_rf(dest);
    free(dest);
}

static void test_checkpoint_other_filesystem(void **state)
{
    tu_fixture *f = *state;
    struct stat a, b;
    char dest[] = "/dev/shm/kvs-cp-XXXXXX";

    tu_require_engine("kvs");
    if (stat(f->dir, &a) < 0 || stat("/dev/shm", &b) < 0 || a.st_dev == b.st_dev)
        skip(); /* no second file system at hand */
    assert_non_null(mkdtemp(dest));
    tu_set(f->db, "k", "v");
    assert_int_equal(kvs_checkpoint(f->db, dest), KVS_EINVAL);
    assert_non_null(strstr(kvs_last_error(), "another file system"));
    assert_int_equal(tu_dir_size(dest), 0); /* what it made was removed */
    tu_rm_rf(dest);
}

/* ---- a store to damage ------------------------------------------------------------------- */

#define NKEYS 300

static void key_of(int i, char *key, size_t kcap, char *val, size_t vcap)
{
    snprintf(key, kcap, "key-%04d", i);
    snprintf(val, vcap, "val-%04d-%0*d", i, 80, i);
}

/* NKEYS keys in small segments, sealed and hinted, plus a removed key, an overwritten one, one
 * that has expired and one that will; closed. */
static void make_store(const char *dir)
{
    kvs_options o;
    char key[32], val[128];

    tu_options(&o);
    o.segment_size = 4096;
    o.auto_compact = 0;
    o.expire_effort = 0; /* "past" keeps its record: no sweep removes it */
    kvs_t *db = tu_open(dir, &o);
    tu_set(db, "gone", "soon");
    tu_set(db, "twice", "first");
    for (int i = 0; i < NKEYS; i++) {
        key_of(i, key, sizeof key, val, sizeof val);
        tu_set(db, key, val);
    }
    assert_int_equal(kvs_remove(db, "gone", 4), 0);
    tu_set(db, "twice", "second");
    uint64_t now = (uint64_t)time(NULL) * 1000;
    kvs_op ops[2] = {
        {.type = KVS_OP_SET, .key = "past", .klen = 4, .val = "p", .vlen = 1,
         .expire_ms = now - 60000},
        {.type = KVS_OP_SET, .key = "future", .klen = 6, .val = "f", .vlen = 1,
         .expire_ms = now + 3600000},
    };
    int wrc = kvs_write(db, ops, 2);
    if (wrc != 0)
        fail_msg("kvs_write: %s: %s", kvs_strerror(wrc), kvs_last_error());
    assert_true(kvs_compact(db) >= 0); /* hints for every sealed segment */
    assert_int_equal(kvs_close(db), 0);
}

/* The name and bytes of the sealed segment (not the last) holding key i, and the record's
 * offset in it. */
typedef struct located {
    char name[256];
    unsigned char *b;
    size_t len, rec_off;
} located;

static void locate(const char *dir, int i, located *at)
{
    char key[32], val[128];
    DIR *d = opendir(dir);
    struct dirent *de;

    key_of(i, key, sizeof key, val, sizeof val);
    at->b = NULL;
    assert_non_null(d);
    while (!at->b && (de = readdir(d)) != NULL) {
        if (!strstr(de->d_name, ".log"))
            continue;
        size_t n;
        unsigned char *b = tu_slurp(tu_path(dir, de->d_name), &n);
        unsigned char *p = memmem(b, n, key, strlen(key));
        if (p) {
            snprintf(at->name, sizeof at->name, "%s", de->d_name);
            at->b = b;
            at->len = n;
            at->rec_off = (size_t)(p - b) - REC_HDR;
        } else {
            free(b);
        }
    }
    closedir(d);
    assert_non_null(at->b);
}

/* Which of the NKEYS keys a segment's bytes hold from offset from on. */
static void keys_in(const unsigned char *b, size_t len, size_t from, bool *lost)
{
    char key[32], val[128];
    for (int i = 0; i < NKEYS; i++) {
        key_of(i, key, sizeof key, val, sizeof val);
        unsigned char *p = memmem(b, len, key, strlen(key));
        if (p && (size_t)(p - b) >= from)
            lost[i] = true;
    }
}

/* ---- verify ------------------------------------------------------------------------------ */

typedef struct findings {
    int n;
    struct {
        int bad;
        char file[64];
        uint64_t off;
        char what[256];
    } v[64];
} findings;

static void collect(void *ctx, int bad, const char *file, uint64_t off, const char *what)
{
    findings *f = ctx;
    if (f->n < 64) {
        f->v[f->n].bad = bad;
        snprintf(f->v[f->n].file, sizeof f->v[f->n].file, "%s", file);
        f->v[f->n].off = off;
        snprintf(f->v[f->n].what, sizeof f->v[f->n].what, "%s", what);
        f->n++;
    }
}

static void assert_found(const findings *f, const char *file, uint64_t off, const char *word)
{
    for (int i = 0; i < f->n; i++)
        if (f->v[i].bad && strcmp(f->v[i].file, file) == 0 && f->v[i].off == off &&
            strstr(f->v[i].what, word))
            return;
    for (int i = 0; i < f->n; i++)
        print_message("finding: %s %s:%llu: %s\n", f->v[i].bad ? "bad" : "note", f->v[i].file,
                      (unsigned long long)f->v[i].off, f->v[i].what);
    fail_msg("no finding %s:%llu (%s)", file, (unsigned long long)off, word);
}

static void verify_damaged(const char *dir, findings *f)
{
    kvs_verify_report r;
    memset(f, 0, sizeof *f);
    assert_int_equal(kvs_verify(dir, collect, f, &r), KVS_ECORRUPT);
    assert_true(r.bad > 0);
    assert_int_equal(r.bad, (uint64_t)f->n - r.notes);
}

static void test_verify_clean(void **state)
{
    tu_fixture *f = *state;
    kvs_verify_report r;
    findings fs = {0};

    make_store(f->dir);
    assert_int_equal(kvs_verify(f->dir, collect, &fs, &r), 0);
    assert_int_equal(r.bad, 0);
    assert_int_equal(fs.n, (int)r.notes);
    /* keys: NKEYS, twice and future, not gone (removed); past has expired, and is counted
     * while its record (an intact set) is there — compaction may have dropped it */
    assert_true(r.keys == NKEYS + 3 || r.keys == NKEYS + 2);
    assert_true(r.records >= NKEYS + 3);
    if (strcmp(tu_engine, "kvs") == 0) /* the active segment has no hint */
        assert_true(r.segments > 5 && r.hint_entries >= NKEYS / 2 && r.manifest_edits > 5);
}

static void test_verify_busy(void **state)
{
    tu_fixture *f = *state;
    char *dest = tu_mkdtemp();

    tu_fx_open(f);
    assert_int_equal(kvs_verify(f->dir, NULL, NULL, NULL), KVS_EBUSY);
    assert_non_null(strstr(kvs_last_error(), "checkpoint"));
    if (strcmp(tu_engine, "kvs") == 0)
        assert_int_equal(kvs_repair(f->dir, dest, NULL, NULL, NULL), KVS_EBUSY);
    tu_rm_rf(dest);
    free(dest);
}

static int ignore_value(void *ctx, const void *val, size_t vlen)
{
    (void)ctx, (void)val, (void)vlen;
    return 0;
}

/* Repair dir into a new directory and check it against the writes: every key not in lost holds
 * its value; the keys in lost are absent (each was written once: no older value). */
static void check_repair(const char *dir, const bool *lost, int nlost)
{
    char *dest = tu_mkdtemp(), key[32], val[128];
    kvs_repair_report r;
    findings fs = {0};

    assert_int_equal(kvs_repair(dir, dest, collect, &fs, &r), 0);
    kvs_t *db = tu_open(dest, NULL);
    for (int i = 0; i < NKEYS; i++) {
        key_of(i, key, sizeof key, val, sizeof val);
        tu_assert_value(db, key, lost[i] ? NULL : val);
    }
    tu_assert_value(db, "gone", NULL);
    tu_assert_value(db, "twice", "second");
    tu_assert_value(db, "past", NULL);
    tu_assert_value(db, "future", "f");
    kvs_meta m;
    assert_int_equal(kvs_read_meta(db, "future", 6, ignore_value, NULL, &m), 0);
    assert_true(m.expire_ms > (uint64_t)time(NULL) * 1000);
    assert_int_equal(r.keys, (uint64_t)(NKEYS - nlost + 2));
    assert_true(r.removed <= 1 && r.expired <= 1); /* compaction may have dropped them */
    assert_int_equal(tu_stats(db).keys, r.keys);
    assert_int_equal(kvs_close(db), 0);
    tu_rm_rf(dest);
    free(dest);
}

static int count(const bool *lost)
{
    int n = 0;
    for (int i = 0; i < NKEYS; i++)
        n += lost[i];
    return n;
}

/* One kind of damage: a store made, the record of key located; damage_check then asserts that
 * verify reports it at file:off (word in what it says) and that repair loses d->lost exactly. */
typedef struct damage {
    const char *dir;
    located at;
    findings fs;
    bool lost[NKEYS];
} damage;

static void damage_begin(void **state, int key, damage *d)
{
    tu_fixture *f = *state;

    tu_require_engine("kvs");
    memset(d, 0, sizeof *d);
    d->dir = f->dir;
    make_store(f->dir);
    locate(f->dir, key, &d->at);
}

static void damage_check(damage *d, const char *file, uint64_t off, const char *word)
{
    verify_damaged(d->dir, &d->fs);
    assert_found(&d->fs, file, off, word);
    check_repair(d->dir, d->lost, count(d->lost));
    free(d->at.b);
}

static void test_damage_record_value(void **state)
{
    damage d;
    char key[32], val[128];

    damage_begin(state, 42, &d);
    /* the last byte of the value: the header stays authentic, the value fails */
    key_of(42, key, sizeof key, val, sizeof val);
    tu_flip_byte(tu_path(d.dir, d.at.name), d.at.rec_off + REC_HDR + strlen(key) + strlen(val) - 1);
    d.lost[42] = true;
    damage_check(&d, d.at.name, d.at.rec_off, "value fails its checksum");
}

static void test_damage_truncated(void **state)
{
    damage d;

    damage_begin(state, 100, &d);
    keys_in(d.at.b, d.at.len, d.at.rec_off, d.lost);
    assert_int_equal(truncate(tu_path(d.dir, d.at.name), (off_t)(d.at.rec_off + REC_HDR + 3)), 0);
    damage_check(&d, d.at.name, d.at.rec_off, "cannot be read");
}

static void test_damage_hint_entry(void **state)
{
    damage d;
    char key[32], val[128], hint[300];
    size_t n;

    damage_begin(state, 7, &d);
    key_of(7, key, sizeof key, val, sizeof val);
    snprintf(hint, sizeof hint, "%.6s.hint", d.at.name);
    unsigned char *h = tu_slurp(tu_path(d.dir, hint), &n);
    unsigned char *p = memmem(h, n, key, strlen(key));
    assert_non_null(p);
    size_t entry = (size_t)(p - h) - HINT_ENTRY;
    free(h);
    tu_flip_byte(tu_path(d.dir, hint), entry + HINT_ENTRY + 5); /* a byte of the key */
    damage_check(&d, hint, entry, "does not match"); /* nothing lost: hints only speed opens */
    assert_found(&d.fs, hint, n - 8, "checksum fails");
}

static void test_damage_manifest_edit(void **state)
{
    damage d;
    size_t n, off = 16;

    damage_begin(state, 0, &d);
    unsigned char *m = tu_slurp(tu_path(d.dir, "MANIFEST"), &n);
    /* the second edit, with valid ones after it */
    off += 8 + (size_t)(m[off + 4] | m[off + 5] << 8);
    size_t third = off + 8 + (size_t)(m[off + 4] | m[off + 5] << 8);
    assert_true(third + 8 < n);
    free(m);
    tu_flip_byte(tu_path(d.dir, "MANIFEST"), off + 12);
    damage_check(&d, "MANIFEST", off, "damaged edit"); /* what it named is read all the same */
}

static void test_damage_segment_deleted(void **state)
{
    damage d;

    damage_begin(state, 150, &d);
    keys_in(d.at.b, d.at.len, 0, d.lost);
    assert_int_equal(unlink(tu_path(d.dir, d.at.name)), 0);
    damage_check(&d, d.at.name, 0, "named by the MANIFEST");
}

/* The active segment's records out of seq order (the second rewritten, checksums and all, with a
 * seq below the first's): authentic records, but not what the write path writes. */
static void test_damage_seq_order(void **state)
{
    tu_fixture *f = *state;
    findings fs;
    kvs_options o;
    size_t n;

    tu_require_engine("kvs");
    tu_options(&o);
    kvs_t *db = tu_open(f->dir, &o);
    tu_set(db, "first", "1");
    tu_set(db, "second", "2");
    assert_int_equal(kvs_close(db), 0);
    const char *segf = "000001.log"; /* the only segment, and the active one */
    unsigned char *b = tu_slurp(tu_path(f->dir, segf), &n);
    size_t second = (size_t)((unsigned char *)memmem(b, n, "second", 6) - b) - REC_HDR;
    rec_encode(b + second, 1, 0, 0, "second", 6, "2", 1);
    tu_spill(tu_path(f->dir, segf), b, n);
    free(b);
    verify_damaged(f->dir, &fs);
    assert_found(&fs, segf, second, "is not above the previous record's");
}

int main(int argc, char **argv)
{
    const char *group = tu_engine_from_args(argc, argv);
    const struct CMUnitTest tests[] = {
        TU_CASE_CLOSED(test_checkpoint_under_load),
        TU_CASE_OPEN(test_checkpoint_refuses_nonempty),
        TU_CASE_OPEN(test_checkpoint_other_filesystem),
        TU_CASE_CLOSED(test_verify_clean),
        TU_CASE_CLOSED(test_verify_busy),
        TU_CASE_CLOSED(test_damage_record_value),
        TU_CASE_CLOSED(test_damage_truncated),
        TU_CASE_CLOSED(test_damage_hint_entry),
        TU_CASE_CLOSED(test_damage_manifest_edit),
        TU_CASE_CLOSED(test_damage_segment_deleted),
        TU_CASE_CLOSED(test_damage_seq_order),
    };
    return cmocka_run_group_tests_name(group, tests, NULL, NULL);
}
