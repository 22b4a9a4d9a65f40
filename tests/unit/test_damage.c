/*
 * test_damage.c — what open makes of damaged records (records with a header checksum and a value
 * checksum, record.h), the cases of issue 9.
 *
 *   - Injection: a client stores a value that holds a complete encoded record (admin = pwned,
 *     with a seq above every real one). The append is torn — the file cut inside the value, or
 *     the value's bytes zero from a point on, with or without room after it, or a real kill -9
 *     of a writer (a child process, this binary run with --writer) — or the value is damaged
 *     with records after it, in the active segment or in a sealed one scanned without its hint.
 *     Whatever the case, admin must be absent: bytes inside a value are never records.
 *   - Linear start-up: a 64 MiB value of 7f 00 00 00 00 00 00 00 repeated (which decodes as a
 *     plausible header at many offsets of the old format), torn, or with one byte flipped in the
 *     active segment or in a sealed one without a hint. Open must hash each byte at most once
 *     per scan (kvs_test_scan_hashed) and finish quickly.
 *   - The newest record damaged (SET k old; SET k new; SET z x; a byte of "new" or of its value
 *     checksum flipped): k reads as KVS_ECORRUPT, never as "old"; z reads; corrupt_records is 1 —
 *     in the active segment and in a sealed one without a hint; compaction keeps it corrupt.
 *   - A torn header at the end of the active segment (the copy stopped inside the header, or
 *     inside the key, or the file ends there): truncated as before, no corruption counted. A
 *     damaged header with records after it: corruption — the bytes are kept whole (the segment
 *     sealed as it is, writes going on in a new one), reported and counted at every open; also
 *     with the manifest's last edit torn (the new segment's edit comes after it is cut off).
 *   - A sealed segment left with its preallocated zero tail (a crash between a rotation's
 *     manifest edit and the seal): the first open cuts it back, so the hint then matches and
 *     later opens neither warn nor scan.
 *   - A segment of format version 1 is refused with KVS_EVERSION, naming the file; one of
 *     version 2 (the format before expiry times) with KVS_EFORMAT, the message naming the
 *     directory and `kvs upgrade`, and nothing in the directory changed.
 */
#include <dirent.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/log/record.h"
#include "engine/log/segment.h"
#include "testutil.h"
#include "util/checksum.h"
#include "util/io.h"

/* ---- file surgery ------------------------------------------------------------------------ */

static size_t find(const unsigned char *b, size_t len, const void *needle, size_t n)
{
    const unsigned char *p = memmem(b, len, needle, n);
    assert_non_null(p);
    return (size_t)(p - b);
}

static void assert_get_rc(kvs_t *db, const char *key, int want)
{
    void *v;
    size_t n;
    int rc = kvs_get(db, key, strlen(key), &v, &n);

    if (rc != want)
        fail_msg("get %s: rc %d (%s), want %d", key, rc, kvs_strerror(rc), want);
    kvs_free(v);
}

static uint64_t corrupt_records(kvs_t *db)
{
    kvs_stats st;
    assert_int_equal(kvs_stats_get(db, &st), 0);
    return st.corrupt_records;
}

static void assert_logged(const char *a, const char *b)
{
    const char *t = tu_log_text();
    for (const char *line = t; *line;) { /* both on one line */
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

static kvs_options small_segments(void)
{
    kvs_options o;
    kvs_options_init(&o);
    o.segment_size = 4096;
    o.auto_compact = 0;
    return o;
}

static kvs_options one_segment(void)
{
    kvs_options o;
    kvs_options_init(&o);
    o.segment_size = 256u << 20; /* everything stays in the active segment */
    o.auto_compact = 0;
    return o;
}

/* Keys that push the active segment past its size, so the one before is sealed. */
static void fill_to_rotate(kvs_t *db)
{
    char key[16];
    for (int i = 0; i < 120; i++) {
        snprintf(key, sizeof key, "fill%03d", i);
        tu_set(db, key, "filler-value-filler-value");
    }
}

/* ---- injection: bytes inside a value are never records ----------------------------------- */

#define PAD1 200
#define PAD2 300

typedef struct injected {
    char *dir;
    kvs_options opt;
    char segf[4096];
    size_t emb;     /* offset of the embedded record in the segment file */
    size_t emb_len;
    size_t rec_end; /* end of the record whose value holds it */
} injected;

enum { INJ_LAST, INJ_FOLLOWED, INJ_SEALED };

/* a=1, victim=old, then victim = PAD1 bytes, an encoded record admin=pwned (seq 2^40), PAD2
 * bytes; INJ_FOLLOWED and INJ_SEALED add z=x after it, INJ_SEALED rotates the segment too. */
static void inject(injected *in, int how)
{
    unsigned char rec[REC_HDR + 10], *val;
    size_t vlen = PAD1 + sizeof rec + PAD2, len;

    in->dir = tu_mkdtemp();
    in->opt = how == INJ_SEALED ? small_segments() : one_segment();
    rec_encode(rec, 1ull << 40, 0, 0, "admin", 5, "pwned", 5);
    memcpy(rec + REC_HDR, "admin", 5);
    memcpy(rec + REC_HDR + 5, "pwned", 5);
    val = malloc(vlen);
    assert_non_null(val);
    memset(val, 'v', PAD1);
    memcpy(val + PAD1, rec, sizeof rec);
    memset(val + PAD1 + sizeof rec, 'w', PAD2);

    kvs_t *db = tu_open(in->dir, &in->opt);
    tu_set(db, "a", "1");
    tu_set(db, "victim", "old");
    assert_int_equal(kvs_set(db, "victim", 6, val, vlen), 0);
    if (how != INJ_LAST)
        tu_set(db, "z", "x");
    if (how == INJ_SEALED)
        fill_to_rotate(db);
    assert_int_equal(kvs_close(db), 0);
    free(val);

    snprintf(in->segf, sizeof in->segf, "%s", tu_path(in->dir, "000001.log"));
    unsigned char *b = tu_slurp(in->segf, &len);
    in->emb = find(b, len, rec, sizeof rec);
    in->emb_len = sizeof rec;
    in->rec_end = in->emb + sizeof rec + PAD2;
    assert_true(how != INJ_LAST || in->rec_end == len);
    free(b);
}

static void injected_free(injected *in)
{
    tu_rm_rf(in->dir);
    free(in->dir);
}

/* Zero the value from 50 bytes past the embedded record to its end; room: bytes of zeros to add
 * after the file (room given ahead of appends, as a crash leaves it). */
static void zero_value_tail(const injected *in, size_t room)
{
    size_t len;
    unsigned char *b = tu_slurp(in->segf, &len);
    unsigned char *c = calloc(1, len + room);

    assert_non_null(c);
    memcpy(c, b, len);
    memset(c + in->emb + in->emb_len + 50, 0, in->rec_end - (in->emb + in->emb_len + 50));
    tu_spill(in->segf, c, len + room);
    free(b);
    free(c);
}

/* The append of victim was torn: victim is still "old", admin absent, nothing corrupt. */
static void check_torn_injection(injected *in)
{
    tu_log_capture(KVS_LOG_WARN);
    kvs_t *db = tu_open(in->dir, &in->opt);
    tu_assert_value(db, "admin", NULL);
    tu_assert_value(db, "victim", "old");
    tu_assert_value(db, "a", "1");
    assert_logged("000001.log", "torn tail: truncating");
    assert_int_equal(corrupt_records(db), 0);
    assert_int_equal(kvs_close(db), 0);
    tu_log_release();
    db = tu_open(in->dir, &in->opt); /* and the truncation holds */
    tu_assert_value(db, "admin", NULL);
    tu_assert_value(db, "victim", "old");
    assert_int_equal(kvs_close(db), 0);
}

static void test_injection_cut_inside_value(void **state)
{
    (void)state;
    injected in;

    inject(&in, INJ_LAST);
    assert_int_equal(truncate(in.segf, (off_t)(in.emb + in.emb_len + 50)), 0);
    check_torn_injection(&in);
    injected_free(&in);
}

static void test_injection_value_zeroed(void **state)
{
    (void)state;
    injected in;

    inject(&in, INJ_LAST);
    zero_value_tail(&in, 0);
    check_torn_injection(&in);
    injected_free(&in);
}

static void test_injection_value_zeroed_with_room(void **state)
{
    (void)state;
    injected in;

    inject(&in, INJ_LAST);
    zero_value_tail(&in, 64u << 10);
    check_torn_injection(&in);
    injected_free(&in);
}

/* The value damaged with a record after it: corruption; victim reads as corrupt. */
static void check_damaged_injection(injected *in)
{
    char off[64];

    snprintf(off, sizeof off, "offset %zu", in->emb - PAD1 - 6 - REC_HDR);
    tu_log_capture(KVS_LOG_WARN);
    kvs_t *db = tu_open(in->dir, &in->opt);
    tu_assert_value(db, "admin", NULL);
    assert_get_rc(db, "victim", KVS_ECORRUPT);
    tu_assert_value(db, "z", "x");
    tu_assert_value(db, "a", "1");
    assert_logged("000001.log: damaged record", off);
    assert_int_equal(corrupt_records(db), 1);
    assert_int_equal(kvs_close(db), 0);
    tu_log_release();
}

static void test_injection_damaged_in_active(void **state)
{
    (void)state;
    injected in;

    inject(&in, INJ_FOLLOWED);
    zero_value_tail(&in, 0);
    check_damaged_injection(&in);
    injected_free(&in);
}

static void test_injection_damaged_in_sealed(void **state)
{
    (void)state;
    injected in;

    inject(&in, INJ_SEALED);
    assert_int_equal(unlink(tu_path(in.dir, "000001.hint")), 0);
    zero_value_tail(&in, 0);
    check_damaged_injection(&in);
    injected_free(&in);
}

/* In the child: write victim = a 4 MiB value holding the encoded record near its start, in its
 * middle and near its end (memcpy may copy a large block from its end: a torn copy can hold
 * either end), again and again, until killed. */
#define KILL_VALUE (4u << 20)

static unsigned char *kill_value(void)
{
    unsigned char rec[REC_HDR + 10], *v = malloc(KILL_VALUE);

    assert_non_null(v);
    memset(v, 'v', KILL_VALUE);
    rec_encode(rec, 1ull << 40, 0, 0, "admin", 5, "pwned", 5);
    memcpy(rec + REC_HDR, "admin", 5);
    memcpy(rec + REC_HDR + 5, "pwned", 5);
    memcpy(v + 100, rec, sizeof rec);
    memcpy(v + KILL_VALUE / 2, rec, sizeof rec);
    memcpy(v + KILL_VALUE - 200, rec, sizeof rec);
    return v;
}

static int writer_child(const char *dir)
{
    kvs_options o = one_segment();
    unsigned char *v = kill_value();
    kvs_t *db;

    o.sync = KVS_SYNC_NEVER;
    if (kvs_create(&db) < 0 || kvs_configure(db, &o) < 0 || kvs_open(db, dir) < 0)
        return 2;
    for (int i = 0; i < 1000; i++)
        if (kvs_set(db, "victim", 6, v, KILL_VALUE) < 0)
            return 3;
    return 4; /* not killed in time: no harm, the parent checks what it finds */
}

extern char **environ;

static void test_injection_kill9(void **state)
{
    (void)state;
    unsigned char *v = kill_value();
    int tears = 0;

    srand((unsigned)time(NULL));
    for (int trial = 0; trial < 20 && tears < 3; trial++) {
        char *dir = tu_mkdtemp();
        char *argv[] = {"/proc/self/exe", "--writer", dir, NULL};
        kvs_options o = one_segment();
        pid_t pid;
        int status;
        void *got;
        size_t n;

        assert_int_equal(posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ), 0);
        while (tu_file_size(tu_path(dir, "000001.log")) < (int64_t)KILL_VALUE)
            usleep(200); /* until the writes have begun */
        usleep(1000 + (useconds_t)(rand() % 20000));
        kill(pid, SIGKILL);
        assert_int_equal(waitpid(pid, &status, 0), pid);

        tu_log_capture(KVS_LOG_WARN);
        kvs_t *db = tu_open(dir, &o);
        tu_assert_value(db, "admin", NULL);
        int rc = kvs_get(db, "victim", 6, &got, &n);
        if (rc == 0) /* the last complete write */
            assert_true(n == KILL_VALUE && memcmp(got, v, n) == 0);
        else
            assert_int_equal(rc, KVS_ENOTFOUND);
        kvs_free(got);
        assert_int_equal(corrupt_records(db), 0); /* a crash is not corruption */
        tears += strstr(tu_log_text(), "torn tail") != NULL;
        assert_int_equal(kvs_close(db), 0);
        tu_log_release();
        tu_rm_rf(dir);
        free(dir);
    }
    print_message("kill -9 tore %d appends\n", tears);
    free(v);
}

/* ---- linear start-up ----------------------------------------------------------------------- */

#define BIG (64u << 20)

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "big" = 64 MiB of 7f 00 00 00 00 00 00 00; with follow, z=x after it. Returns the offset of
 * the big record in the segment file named by segf (filled in). */
static size_t write_big(const char *dir, const kvs_options *o, int follow, char *segf, size_t cap)
{
    unsigned char *v = calloc(1, BIG);
    kvs_t *db = tu_open(dir, o);

    assert_non_null(v);
    for (size_t i = 0; i < BIG; i += 8)
        v[i] = 0x7f;
    tu_set(db, "a", "1");
    assert_int_equal(kvs_set(db, "big", 3, v, BIG), 0);
    if (follow)
        tu_set(db, "z", "x");
    assert_int_equal(kvs_close(db), 0);
    free(v);
    /* the big record is in the segment that is at least BIG long */
    for (int id = 1; id < 10; id++) {
        char name[32];
        snprintf(name, sizeof name, "%06d.log", id);
        snprintf(segf, cap, "%s", tu_path(dir, name));
        if (tu_file_size(segf) > (int64_t)BIG) {
            size_t len;
            unsigned char *b = tu_slurp(segf, &len);
            size_t off = find(b, len, "big", 3) - REC_HDR;
            free(b);
            return off;
        }
    }
    fail_msg("no segment holds the big record");
    return 0;
}

/* Open, asserting that it hashed at most factor times the bytes in the directory and took less
 * than 20 s (a bound no correct build comes near; the old byte-wise resync took minutes). */
static kvs_t *open_linear(const char *dir, const kvs_options *o, int factor)
{
    uint64_t bytes = tu_dir_size(dir);
    uint64_t h0 = __atomic_load_n(&kvs_test_scan_hashed, __ATOMIC_RELAXED);
    double t0 = now_sec();
    kvs_t *db = tu_open(dir, o);
    double t = now_sec() - t0;
    uint64_t hashed = __atomic_load_n(&kvs_test_scan_hashed, __ATOMIC_RELAXED) - h0;

    if (hashed > (uint64_t)factor * bytes)
        fail_msg("open hashed %llu bytes of a directory of %llu", (unsigned long long)hashed,
                 (unsigned long long)bytes);
    if (t > 20.0)
        fail_msg("open took %.1f s", t);
    return db;
}

static void flip(const char *path, size_t off)
{
    unsigned char c;
    FILE *f = fopen(path, "r+b");

    assert_non_null(f);
    assert_int_equal(fseek(f, (long)off, SEEK_SET), 0);
    assert_int_equal(fread(&c, 1, 1, f), 1);
    c ^= 0x5a;
    assert_int_equal(fseek(f, (long)off, SEEK_SET), 0);
    assert_int_equal(fwrite(&c, 1, 1, f), 1);
    fclose(f);
}

static void test_big_pattern_torn(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp(), segf[4096];
    kvs_options o = one_segment();
    size_t off = write_big(dir, &o, 0, segf, sizeof segf);

    assert_int_equal(truncate(segf, (off_t)(off + REC_HDR + 3 + BIG / 2 + 3)), 0);
    kvs_t *db = open_linear(dir, &o, 1);
    tu_assert_value(db, "big", NULL);
    tu_assert_value(db, "a", "1");
    assert_int_equal(kvs_close(db), 0);
    assert_int_equal(tu_file_size(segf), (int64_t)off);
    tu_rm_rf(dir);
    free(dir);
}

static void test_big_pattern_flipped_active(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp(), segf[4096];
    kvs_options o = one_segment();
    size_t off = write_big(dir, &o, 1, segf, sizeof segf);

    flip(segf, off + REC_HDR + 3 + BIG / 2 + 5);
    kvs_t *db = open_linear(dir, &o, 1);
    assert_get_rc(db, "big", KVS_ECORRUPT);
    tu_assert_value(db, "z", "x");
    assert_int_equal(corrupt_records(db), 1);
    assert_int_equal(kvs_close(db), 0);
    tu_rm_rf(dir);
    free(dir);
}

static void test_big_pattern_flipped_sealed(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp(), segf[4096], hint[4096];
    kvs_options o;
    kvs_options_init(&o); /* 8 MiB segments: the big record is sealed in one of its own */
    o.auto_compact = 0;
    size_t off = write_big(dir, &o, 1, segf, sizeof segf);

    snprintf(hint, sizeof hint, "%.*shint", (int)strlen(segf) - 3, segf);
    assert_int_equal(unlink(hint), 0);
    flip(segf, off + REC_HDR + 3 + BIG / 2 + 5);
    /* a sealed segment without a hint is scanned twice: to load it, to write its hint */
    kvs_t *db = open_linear(dir, &o, 2);
    assert_get_rc(db, "big", KVS_ECORRUPT);
    tu_assert_value(db, "z", "x");
    tu_assert_value(db, "a", "1");
    assert_int_equal(corrupt_records(db), 1);
    assert_int_equal(kvs_close(db), 0);
    tu_rm_rf(dir);
    free(dir);
}

/* ---- the newest record damaged -------------------------------------------------------------- */

/* k=old, k=new, z=x; sealed: then rotate and drop the hint. Flips the byte at delta from the
 * start of the record k=new (REC_HDR + 1 + i: a value byte; 4..7: its value checksum). */
static char *old_new_z(const kvs_options *o, int sealed, size_t delta, size_t *rec)
{
    char *dir = tu_mkdtemp(), segf[4096];
    kvs_t *db = tu_open(dir, o);
    size_t len;

    tu_set(db, "k", "old");
    tu_set(db, "k", "new");
    tu_set(db, "z", "x");
    if (sealed)
        fill_to_rotate(db);
    assert_int_equal(kvs_close(db), 0);
    if (sealed)
        assert_int_equal(unlink(tu_path(dir, "000001.hint")), 0);
    snprintf(segf, sizeof segf, "%s", tu_path(dir, "000001.log"));
    unsigned char *b = tu_slurp(segf, &len);
    *rec = find(b, len, "knew", 4) - REC_HDR;
    free(b);
    flip(segf, *rec + delta);
    return dir;
}

static void check_old_new_z(const kvs_options *o, int sealed)
{
    size_t deltas[] = {REC_HDR + 1 + 1, 5};

    for (size_t i = 0; i < sizeof deltas / sizeof *deltas; i++) {
        size_t rec;
        char *dir = old_new_z(o, sealed, deltas[i], &rec), off[64];

        snprintf(off, sizeof off, "offset %zu", rec);
        tu_log_capture(KVS_LOG_WARN);
        kvs_t *db = tu_open(dir, o);
        assert_get_rc(db, "k", KVS_ECORRUPT); /* never "old" */
        tu_assert_value(db, "z", "x");
        assert_int_equal(corrupt_records(db), 1);
        assert_logged("000001.log: damaged record at", off);
        tu_log_release();

        /* compaction keeps the damaged record as it is: k still reads as corrupt */
        if (sealed) {
            assert_true(kvs_compact(db) > 0);
            assert_get_rc(db, "k", KVS_ECORRUPT);
            tu_reopen(&db, dir, o);
            assert_get_rc(db, "k", KVS_ECORRUPT);
            tu_assert_value(db, "z", "x");
        }
        /* a new write supersedes it */
        tu_set(db, "k", "newer");
        tu_reopen(&db, dir, o);
        tu_assert_value(db, "k", "newer");
        tu_assert_value(db, "z", "x");
        assert_int_equal(kvs_close(db), 0);
        tu_rm_rf(dir);
        free(dir);
    }
}

static void test_damaged_newest_active(void **state)
{
    (void)state;
    kvs_options o = one_segment();
    check_old_new_z(&o, 0);
}

static void test_damaged_newest_sealed_without_hint(void **state)
{
    (void)state;
    kvs_options o = small_segments();
    check_old_new_z(&o, 1);
}

/* ---- torn headers and damaged headers in the active segment ------------------------------- */

/* a-key=1, b-key=2, then ckey...=cval whose record is the last of 000001.log; rec: its offset. */
static char *abc(const char *cval, size_t *rec, unsigned char **file, size_t *len)
{
    char *dir = tu_mkdtemp();
    kvs_options o = one_segment();
    kvs_t *db = tu_open(dir, &o);

    tu_set(db, "a-key", "1");
    tu_set(db, "b-key", "2");
    tu_set(db, "ckey-ckey-ckey", cval);
    assert_int_equal(kvs_close(db), 0);
    *file = tu_slurp(tu_path(dir, "000001.log"), len);
    *rec = find(*file, *len, "ckey-ckey-ckey", 14) - REC_HDR;
    return dir;
}

/* The file: its first keep bytes, then room bytes of zeros. */
static void rewrite(const char *dir, const unsigned char *b, size_t keep, size_t room)
{
    unsigned char *c = calloc(1, keep + room);
    assert_non_null(c);
    memcpy(c, b, keep);
    tu_spill(tu_path(dir, "000001.log"), c, keep + room);
    free(c);
}

static void test_torn_header_at_end(void **state)
{
    (void)state;
    kvs_options o = one_segment();
    /* where the copy of the last record stopped (bytes after its start), and the room after */
    struct { size_t upto, room; } cases[] = {
        {7, 4096},             /* inside the header */
        {REC_HDR, 4096},       /* after the header */
        {REC_HDR + 5, 4096},   /* inside the key */
        {11, 0},               /* the file ends inside the header */
        {REC_HDR, 0},          /* the file ends after the header */
    };

    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t rec, len;
        unsigned char *b;
        char *dir = abc("the-value", &rec, &b, &len), want[128];

        rewrite(dir, b, rec + cases[i].upto, cases[i].room);
        tu_log_capture(KVS_LOG_WARN);
        kvs_t *db = tu_open(dir, &o);
        tu_assert_value(db, "a-key", "1");
        tu_assert_value(db, "b-key", "2");
        tu_assert_value(db, "ckey-ckey-ckey", NULL);
        snprintf(want, sizeof want, "torn tail: truncating %zu bytes at offset %zu",
                 cases[i].upto + cases[i].room, rec);
        assert_logged("000001.log", want);
        assert_int_equal(corrupt_records(db), 0);
        assert_int_equal(kvs_close(db), 0);
        tu_log_release();
        assert_int_equal(tu_file_size(tu_path(dir, "000001.log")), (int64_t)rec);
        free(b);
        tu_rm_rf(dir);
        free(dir);
    }
}

/* A key-length byte flipped in a record near the end: the record's extent now runs past the end
 * of the file, as a cut would — but the bytes are kept, not cut as a torn tail. */
static void test_damaged_header_in_active_kept(void **state)
{
    (void)state;
    kvs_options o = one_segment();
    size_t rec, len, brec;
    unsigned char *b;
    char *dir = abc("the-value", &rec, &b, &len), segf[4096], want[160];

    brec = find(b, len, "b-key2", 6) - REC_HDR; /* the record b-key=2: damage its key length */
    free(b);
    snprintf(segf, sizeof segf, "%s", tu_path(dir, "000001.log"));
    flip(segf, brec + 18);
    for (int round = 0; round < 2; round++) {
        tu_log_capture(KVS_LOG_WARN);
        kvs_t *db = tu_open(dir, &o);
        tu_assert_value(db, "a-key", "1");         /* before the damage */
        tu_assert_value(db, "b-key", NULL);        /* from the damage on: not read */
        tu_assert_value(db, "ckey-ckey-ckey", NULL);
        snprintf(want, sizeof want, "damaged record header at offset %zu: the %zu bytes", brec,
                 len - brec);
        assert_logged("000001.log", want);
        assert_int_equal(corrupt_records(db), 1);
        assert_int_equal(tu_file_size(segf), (int64_t)len); /* kept whole */
        if (round == 0) {
            assert_logged("000001.log: kept whole", "sealed segment");
            assert_logged("000002.log", "new active segment");
            tu_set(db, "after", "damage"); /* writes go on, in a new segment */
        }
        tu_assert_value(db, "after", "damage");
        assert_int_equal(kvs_close(db), 0);
        tu_log_release();
    }
    assert_true(tu_file_size(tu_path(dir, "000002.log")) > 0);
    tu_rm_rf(dir);
    free(dir);
}

/* The same damage while the manifest's last edit is torn too: the new active segment's edit is
 * made only once recovery has settled the manifest (its torn edit cut off), so the store opens,
 * the damaged segment kept whole. */
static void test_damaged_header_in_active_and_manifest(void **state)
{
    (void)state;
    kvs_options o = one_segment();
    size_t rec, len, brec, mlen;
    unsigned char *b, junk[7] = {1, 2, 3, 4, 5, 6, 7};
    char *dir = abc("the-value", &rec, &b, &len), segf[4096];
    kvs_t *db;

    brec = find(b, len, "b-key2", 6) - REC_HDR;
    free(b);
    snprintf(segf, sizeof segf, "%s", tu_path(dir, "000001.log"));
    flip(segf, brec + 18);
    unsigned char *m = tu_slurp(tu_path(dir, "MANIFEST"), &mlen);
    unsigned char *torn = malloc(mlen + sizeof junk);
    assert_non_null(torn);
    memcpy(torn, m, mlen);
    memcpy(torn + mlen, junk, sizeof junk);
    tu_spill(tu_path(dir, "MANIFEST"), torn, mlen + sizeof junk);
    free(m);
    free(torn);
    for (int round = 0; round < 2; round++) {
        assert_int_equal(tu_try_open(dir, &o, &db), 0);
        tu_assert_value(db, "a-key", "1");
        tu_assert_value(db, "b-key", NULL);
        if (round == 0)
            tu_set(db, "after", "damage");
        tu_assert_value(db, "after", "damage");
        assert_int_equal(kvs_close(db), 0);
        assert_int_equal(tu_file_size(segf), (int64_t)len); /* nothing cut */
    }
    tu_rm_rf(dir);
    free(dir);
}

/* ---- a sealed segment with its preallocated zero tail heals ------------------------------- */

static void test_sealed_zero_tail_heals(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp(), segf[4096], key[16];
    kvs_options o = small_segments();
    kvs_t *db = tu_open(dir, &o);

    fill_to_rotate(db);
    assert_int_equal(kvs_close(db), 0);
    snprintf(segf, sizeof segf, "%s", tu_path(dir, "000001.log"));
    int64_t size = tu_file_size(segf);
    assert_true(tu_file_size(tu_path(dir, "000002.log")) > 0);
    /* as a crash between the rotation's manifest edit and the seal leaves it */
    assert_int_equal(truncate(segf, size + (256 << 10)), 0);
    assert_int_equal(unlink(tu_path(dir, "000001.hint")), 0);

    tu_log_capture(KVS_LOG_INFO);
    db = tu_open(dir, &o);
    assert_logged("000001.log", "cutting 262144 bytes of room never written");
    assert_null(strstr(tu_log_text(), "damaged"));
    assert_null(strstr(tu_log_text(), "torn"));
    assert_int_equal(tu_file_size(segf), size);
    assert_int_equal(kvs_close(db), 0);

    tu_log_capture(KVS_LOG_WARN); /* healed: the hint matches, nothing to say */
    db = tu_open(dir, &o);
    if (strstr(tu_log_text(), "000001"))
        fail_msg("second open still complains:\n%s", tu_log_text());
    for (int i = 0; i < 120; i++) {
        snprintf(key, sizeof key, "fill%03d", i);
        tu_assert_value(db, key, "filler-value-filler-value");
    }
    assert_int_equal(corrupt_records(db), 0);
    assert_int_equal(kvs_close(db), 0);
    tu_log_release();
    tu_rm_rf(dir);
    free(dir);
}

/* ---- format version ------------------------------------------------------------------------- */

static void test_version1_segment_refused(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp(), segf[4096];
    kvs_t *db = tu_open(dir, NULL);
    size_t len;

    tu_set(db, "a", "1");
    assert_int_equal(kvs_close(db), 0);
    snprintf(segf, sizeof segf, "%s", tu_path(dir, "000001.log"));
    unsigned char *b = tu_slurp(segf, &len);
    le_put16(b + 4, 1);
    le_put32(b + 12, cksum32(b, 12));
    tu_spill(segf, b, len);
    free(b);
    assert_int_equal(tu_try_open(dir, NULL, &db), KVS_EVERSION);
    assert_non_null(strstr(kvs_last_error(), "000001.log"));
    assert_non_null(strstr(kvs_last_error(), "version 1"));
    tu_rm_rf(dir);
    free(dir);
}

static void test_version2_segment_refused(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp(), segf[4096], want[4200];
    kvs_options o = small_segments();
    kvs_t *db = tu_open(dir, &o);
    size_t len, len2;

    fill_to_rotate(db); /* a sealed segment and the active one */
    assert_int_equal(kvs_close(db), 0);
    snprintf(segf, sizeof segf, "%s", tu_path(dir, "000001.log"));
    unsigned char *b = tu_slurp(segf, &len);
    le_put16(b + 4, SEG_VERSION_UPGRADABLE);
    le_put32(b + 12, cksum32(b, 12));
    tu_spill(segf, b, len);
    uint64_t size = tu_dir_size(dir);
    assert_int_equal(tu_try_open(dir, &o, &db), KVS_EFORMAT);
    snprintf(want, sizeof want, "%s holds a format-2 store", dir);
    assert_non_null(strstr(kvs_last_error(), want));
    snprintf(want, sizeof want, "convert it with `kvs upgrade %s`", dir);
    assert_non_null(strstr(kvs_last_error(), want));
    assert_string_not_equal(kvs_strerror(KVS_EFORMAT), kvs_strerror(-1000)); /* named */
    /* refused before anything was changed */
    unsigned char *c = tu_slurp(segf, &len2);
    assert_true(len2 == len && memcmp(b, c, len) == 0);
    assert_int_equal(tu_dir_size(dir), size);
    free(b);
    free(c);
    tu_rm_rf(dir);
    free(dir);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--writer") == 0)
        return writer_child(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_injection_cut_inside_value),
        cmocka_unit_test(test_injection_value_zeroed),
        cmocka_unit_test(test_injection_value_zeroed_with_room),
        cmocka_unit_test(test_injection_damaged_in_active),
        cmocka_unit_test(test_injection_damaged_in_sealed),
        cmocka_unit_test(test_injection_kill9),
        cmocka_unit_test(test_big_pattern_torn),
        cmocka_unit_test(test_big_pattern_flipped_active),
        cmocka_unit_test(test_big_pattern_flipped_sealed),
        cmocka_unit_test(test_damaged_newest_active),
        cmocka_unit_test(test_damaged_newest_sealed_without_hint),
        cmocka_unit_test(test_torn_header_at_end),
        cmocka_unit_test(test_damaged_header_in_active_kept),
        cmocka_unit_test(test_damaged_header_in_active_and_manifest),
        cmocka_unit_test(test_sealed_zero_tail_heals),
        cmocka_unit_test(test_version1_segment_refused),
        cmocka_unit_test(test_version2_segment_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
