/*
 * test_index.c — the kvs engine's key index (index.h): an open-addressing table of record
 * addresses that reads each key from its record.
 *
 * Most cases drive the index directly over a log of their own (flog: real segment files, records
 * appended by hand), so that they can count what it does; some go through the engine:
 *   - basics: put, lookup, overwrite, delete, repoint, idx_names, directly and through kvs_*;
 *   - forced collisions (kvs_test_idx_hash_mask: every key on a handful of tags and homes):
 *     values, overwrites and deletes stay right, through reopen (recovery compares keys against
 *     its hints; the saved index keeps the long runs) and compaction;
 *   - growth with readers (concurrency): threads look up known keys while another inserts enough
 *     keys for many rebuilds: every lookup finds its key where it is;
 *   - repoint racing writes and readers (concurrency): a compaction-like thread moves every key
 *     while a writer overwrites some: the overwrites win, readers always find one of the key's
 *     addresses;
 *   - recovery, newer wins: keys overwritten and removed across many segments, reopened from
 *     hints, from the index saved at close, and from scans;
 *   - absent keys: with 1M keys indexed, 1M lookups of absent keys read a record in under 1%;
 *   - the budget: new keys fail past it (IDX_EBUDGET; KVS_EFULL through the engine, nothing
 *     written), overwrites and deletes do not;
 *   - bytes per key at 100k and 1M keys (printed; ≤ 24 at 1M), and how long each rebuild holds
 *     up writers; KVS_TEST_IDX_BIG=1 goes on to 5M;
 *   - the cursor: a scan hands out every key exactly once, also while the table grows between
 *     its steps;
 *   - segment slots: 65535 at most, a clear error past them, a freed slot is given again;
 *   - a record whose header is damaged is still its key's slot (read as corrupt, overwritten).
 * Seeded randomness prints its seed.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <urcu-bp.h>

#include "engine/engine.h"
#include "engine/log/logdb.h"
#include "testutil.h"
#include "util/clock.h"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define SLOW_BUILD 1 /* sanitizers: fewer keys where the count is not the point */
#else
#define SLOW_BUILD 0
#endif

/* ---- a log of the test's own: segments of records, an index over them ---- */

#define FLOG_SEG_CAP (32u << 20)
#define FLOG_SEGS_MAX 64

typedef struct flog {
    char *dir;
    idx *x;
    seg *segs[FLOG_SEGS_MAX];
    int nsegs;
    uint64_t seq;
} flog;

static void flog_open(flog *l)
{
    memset(l, 0, sizeof *l);
    l->dir = tu_mkdtemp();
    assert_int_equal(idx_new(&l->x), 0);
}

static void flog_close(flog *l)
{
    idx_free(l->x);
    for (int i = 0; i < l->nsegs; i++)
        seg_destroy(l->segs[i]);
    tu_rm_rf(l->dir);
    free(l->dir);
}

/* A new active segment (the last one sealed, as a rotation does). */
static seg *flog_rotate(flog *l)
{
    seg *s;

    assert_true(l->nsegs < FLOG_SEGS_MAX);
    if (l->nsegs)
        assert_int_equal(seg_seal(l->segs[l->nsegs - 1]), 0);
    assert_int_equal(seg_create(l->dir, (uint32_t)l->nsegs + 1, FLOG_SEG_CAP, &s), 0);
    assert_int_equal(idx_attach_seg(l->x, s), 0);
    l->segs[l->nsegs++] = s;
    return s;
}

/* Append a record for key to the active segment; its location (not indexed yet). */
static idx_loc flog_append(flog *l, const void *key, size_t klen, const void *val, uint32_t vlen)
{
    uint64_t len = rec_len((uint32_t)klen, vlen);
    seg *s = l->nsegs ? l->segs[l->nsegs - 1] : NULL;

    if (!s || s->size + len > FLOG_SEG_CAP)
        s = flog_rotate(l);
    uint64_t off = s->size;
    assert_int_equal(seg_reserve(s, off + len), 0);
    rec_encode(s->map + off, ++l->seq, 0, 0, key, (uint32_t)klen, val, vlen);
    memcpy(s->map + off + REC_HDR, key, klen);
    if (vlen)
        memcpy(s->map + off + REC_HDR + klen, val, vlen);
    __atomic_store_n(&s->size, off + len, __ATOMIC_RELEASE);
    return (idx_loc){s, (uint32_t)off, vlen, l->seq, 0};
}

/* Append and index; returns idx_put's answer. */
static int flog_put(flog *l, const char *key, const char *val, idx_loc *at)
{
    idx_loc loc = flog_append(l, key, strlen(key), val, (uint32_t)strlen(val)), old;
    if (at)
        *at = loc;
    return idx_put(l->x, key, strlen(key), &loc, &old);
}

static int lookup(idx *x, const char *key, idx_loc *loc)
{
    idx_loc tmp;
    rcu_read_lock();
    int rc = idx_lookup(x, key, strlen(key), loc ? loc : &tmp);
    rcu_read_unlock();
    return rc;
}

/* The value of the record loc names, as a string (static buffer). */
static const char *value_at(const idx_loc *loc)
{
    static char buf[256];
    rec_hdr h;

    assert_true(rec_decode(loc->seg->map + loc->off, &h));
    assert_true(h.vlen < sizeof buf);
    memcpy(buf, loc->seg->map + loc->off + REC_HDR + h.klen, h.vlen);
    buf[h.vlen] = 0;
    return buf;
}

static void assert_idx_value(idx *x, const char *key, const char *want)
{
    idx_loc loc;
    int rc = lookup(x, key, &loc);

    if (!want) {
        assert_int_equal(rc, KVS_ENOTFOUND);
        return;
    }
    if (rc != 0)
        fail_msg("%s: not found (want %s)", key, want);
    assert_string_equal(value_at(&loc), want);
}

static unsigned test_seed(const char *what)
{
    const char *e = getenv("KVS_TEST_SEED");
    unsigned seed = e && *e ? (unsigned)strtoul(e, NULL, 10) : (unsigned)time(NULL) ^ getpid();
    printf("# %s: seed %u (KVS_TEST_SEED=%u repeats it)\n", what, seed, seed);
    return seed;
}

/* ---- basics ---- */

static void test_idx_basic(void **state)
{
    (void)state;
    flog l;
    idx_loc a, b, old;

    flog_open(&l);
    assert_int_equal(lookup(l.x, "k", NULL), KVS_ENOTFOUND);
    assert_int_equal(flog_put(&l, "k", "v1", &a), 0);
    assert_int_equal(flog_put(&l, "other", "o", NULL), 0);
    assert_idx_value(l.x, "k", "v1");
    assert_int_equal(idx_count(l.x), 2);

    assert_int_equal(flog_put(&l, "k", "v2", &b), 1); /* overwrite: the old address back */
    assert_idx_value(l.x, "k", "v2");
    assert_int_equal(idx_count(l.x), 2);

    /* the lookup's location is read from the record's header */
    idx_loc got;
    assert_int_equal(lookup(l.x, "k", &got), 0);
    assert_ptr_equal(got.seg, b.seg);
    assert_int_equal(got.off, b.off);
    assert_int_equal(got.vlen, 2);
    assert_int_equal(got.seq, b.seq);

    /* repoint: only from the address the key still has */
    rcu_read_lock();
    assert_true(idx_names(l.x, "k", 1, b.seg, b.off));
    assert_false(idx_names(l.x, "k", 1, a.seg, a.off));
    rcu_read_unlock();
    idx_loc c = flog_append(&l, "k", 1, "v2", 2);
    assert_int_equal(idx_repoint(l.x, "k", 1, a.seg, a.off, &c), 1); /* moved on */
    assert_int_equal(idx_repoint(l.x, "k", 1, b.seg, b.off, &c), 0);
    assert_int_equal(lookup(l.x, "k", &got), 0);
    assert_int_equal(got.off, c.off);

    assert_int_equal(idx_del(l.x, "k", 1, &old), 0);
    assert_int_equal(old.off, c.off);
    assert_int_equal(old.vlen, 2);
    assert_int_equal(idx_del(l.x, "k", 1, &old), KVS_ENOTFOUND);
    assert_idx_value(l.x, "k", NULL);
    assert_idx_value(l.x, "other", "o");
    assert_int_equal(idx_count(l.x), 1);
    assert_int_equal(flog_put(&l, "k", "back", NULL), 0); /* into the deleted slot */
    assert_idx_value(l.x, "k", "back");
    flog_close(&l);
}

static void check_engine_basic(kvs_t *db)
{
    tu_assert_value(db, "a", "1b");
    tu_assert_value(db, "b", NULL);
    tu_assert_value(db, "c", "3");
    tu_assert_value(db, "", "empty key");
}

static void test_engine_basic(void **state)
{
    tu_fixture *f = *state;

    tu_set(f->db, "a", "1");
    tu_set(f->db, "b", "2");
    tu_set(f->db, "c", "3");
    tu_set(f->db, "", "empty key");
    tu_set(f->db, "a", "1b");
    assert_int_equal(kvs_remove(f->db, "b", 1), 0);
    assert_int_equal(kvs_remove(f->db, "b", 1), KVS_ENOTFOUND);
    tu_check_twice(f, check_engine_basic);
    assert_int_equal(tu_stats(f->db).keys, 3);
}

/* ---- forced collisions ---- */

#define COLL_KEYS (SLOW_BUILD ? 500 : 1500) /* one run of them all: each put reads them all */

/* The engine over keys that collide as the mask makes them: overwrites, removes, reopen,
 * compaction, reopen; every answer checked against what was written. */
static void collide_through_engine(uint64_t mask)
{
    char *dir = tu_mkdtemp(), key[32], val[32];
    kvs_options o;
    static char want[COLL_KEYS][32];

    kvs_options_init(&o);
    o.segment_size = 4096; /* many segments: recovery loads them in parallel */
    o.auto_compact = 0;
    kvs_test_idx_hash_mask = mask;
    kvs_t *db = tu_open(dir, &o);
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < COLL_KEYS; i++) {
            if (round > 0 && i % 3 != round % 3)
                continue;
            snprintf(key, sizeof key, "key-%d", i);
            snprintf(want[i], sizeof want[i], "r%d-%d", round, i);
            tu_set(db, key, want[i]);
        }
    for (int i = 0; i < COLL_KEYS; i += 7) {
        snprintf(key, sizeof key, "key-%d", i);
        assert_int_equal(kvs_remove(db, key, strlen(key)), 0);
        want[i][0] = 0;
    }
    for (int pass = 0; pass < 4; pass++) {
        for (int i = 0; i < COLL_KEYS; i++) {
            snprintf(key, sizeof key, "key-%d", i);
            tu_assert_value(db, key, want[i][0] ? want[i] : NULL);
        }
        snprintf(val, sizeof val, "absent");
        tu_assert_value(db, val, NULL);
        assert_int_equal(tu_stats(db).keys, COLL_KEYS - (COLL_KEYS + 6) / 7);
        if (pass == 0)
            tu_reopen_rebuilt(&db, dir, &o); /* recovery: keys compared against the hints */
        else if (pass == 1)
            assert_true(kvs_compact(db) > 0);
        else if (pass == 2)
            tu_reopen(&db, dir, &o); /* the saved index: its long runs as they were */
    }
    assert_int_equal(kvs_close(db), 0);
    kvs_test_idx_hash_mask = UINT64_MAX;
    tu_rm_rf(dir);
    free(dir);
}

static void test_collisions_engine(void **state)
{
    (void)state;
    collide_through_engine(0xf000000000000003ull); /* 16 hashes, 4 tags: long runs */
    collide_through_engine(0);                       /* one hash, one tag, one home */
}

/* Directly: many keys on one tag and home, overwritten and deleted; absent keys with the same
 * hash read records (and find nothing). */
static void test_collisions_idx(void **state)
{
    (void)state;
    flog l;
    char key[32], val[32];
    int n = SLOW_BUILD ? 1000 : 3000;

    kvs_test_idx_hash_mask = 0;
    flog_open(&l);
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "c%d", i);
        assert_int_equal(flog_put(&l, key, "first", NULL), 0);
    }
    for (int i = 0; i < n; i += 2) {
        snprintf(key, sizeof key, "c%d", i);
        snprintf(val, sizeof val, "second-%d", i);
        assert_int_equal(flog_put(&l, key, val, NULL), 1);
    }
    idx_loc old;
    for (int i = 0; i < n; i += 3) {
        snprintf(key, sizeof key, "c%d", i);
        assert_int_equal(idx_del(l.x, key, strlen(key), &old), 0);
    }
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "c%d", i);
        snprintf(val, sizeof val, "second-%d", i);
        assert_idx_value(l.x, key, i % 3 == 0 ? NULL : i % 2 == 0 ? val : "first");
    }
    assert_idx_value(l.x, "nope", NULL);
    assert_int_equal(idx_count(l.x), n - (n + 2) / 3);
    flog_close(&l);
    kvs_test_idx_hash_mask = UINT64_MAX;
}

/* ---- growth with concurrent readers ---- */

#define KNOWN 2000

typedef struct grow_shared {
    idx *x;
    idx_loc known[KNOWN];
    bool done; /* atomic */
    uint64_t reads, misses, wrong, absent_found; /* atomics */
} grow_shared;

static void *grow_reader(void *p)
{
    grow_shared *g = p;
    char key[32];
    uint64_t reads = 0;

    for (unsigned i = 0; !__atomic_load_n(&g->done, __ATOMIC_ACQUIRE); i++) {
        int k = (int)(i % KNOWN);
        idx_loc loc;
        snprintf(key, sizeof key, "known-%d", k);
        rcu_read_lock();
        int rc = idx_lookup(g->x, key, strlen(key), &loc);
        if (rc != 0)
            __atomic_add_fetch(&g->misses, 1, __ATOMIC_RELAXED);
        else if (loc.seg != g->known[k].seg || loc.off != g->known[k].off)
            __atomic_add_fetch(&g->wrong, 1, __ATOMIC_RELAXED);
        snprintf(key, sizeof key, "never-%d", k);
        if (idx_lookup(g->x, key, strlen(key), &loc) == 0)
            __atomic_add_fetch(&g->absent_found, 1, __ATOMIC_RELAXED);
        rcu_read_unlock();
        reads++;
    }
    __atomic_add_fetch(&g->reads, reads, __ATOMIC_RELAXED);
    return NULL;
}

static void test_growth_with_readers(void **state)
{
    (void)state;
    static grow_shared g;
    pthread_t t[2];
    flog l;
    char key[32];
    int more = SLOW_BUILD ? 300000 : 1000000;

    flog_open(&l);
    memset(&g, 0, sizeof g);
    g.x = l.x;
    for (int i = 0; i < KNOWN; i++) {
        snprintf(key, sizeof key, "known-%d", i);
        assert_int_equal(flog_put(&l, key, "", &g.known[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, grow_reader, &g), 0);
    uint64_t bytes0 = idx_bytes(l.x), rebuilds = 0, t0 = clock_usec();
    for (int i = 0; i < more; i++) {
        uint64_t b = idx_bytes(l.x);
        snprintf(key, sizeof key, "new-%d", i);
        assert_int_equal(flog_put(&l, key, "", NULL), 0);
        rebuilds += idx_bytes(l.x) != b;
    }
    uint64_t usec = clock_usec() - t0;
    __atomic_store_n(&g.done, true, __ATOMIC_RELEASE);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    printf("# %d inserts in %llu ms, %llu rebuilds (index %llu -> %llu bytes); readers: %llu "
           "lookup pairs, %llu misses, %llu wrong, %llu absent found\n",
           more, (unsigned long long)usec / 1000, (unsigned long long)rebuilds,
           (unsigned long long)bytes0, (unsigned long long)idx_bytes(l.x),
           (unsigned long long)g.reads, (unsigned long long)g.misses,
           (unsigned long long)g.wrong, (unsigned long long)g.absent_found);
    assert_true(rebuilds >= 5);
    assert_true(g.reads > 0);
    assert_int_equal(g.misses, 0);
    assert_int_equal(g.wrong, 0);
    assert_int_equal(g.absent_found, 0);
    assert_int_equal(idx_count(l.x), KNOWN + more);
    flog_close(&l);
}

/* ---- repoint racing writes and readers ---- */

#define MOVED 20000

typedef struct move_shared {
    idx *x;
    idx_loc from[MOVED], to[MOVED], newer[MOVED];
    bool overwrite[MOVED];
    int repoint_rc[MOVED];
    bool done; /* atomic */
    uint64_t reads, bad; /* atomics */
} move_shared;

static void key_of(char *out, size_t cap, int i)
{
    snprintf(out, cap, "moved-%d", i);
}

static void *move_repointer(void *p)
{
    move_shared *m = p;
    char key[32];

    for (int i = 0; i < MOVED; i++) {
        key_of(key, sizeof key, i);
        m->repoint_rc[i] = idx_repoint(m->x, key, strlen(key), m->from[i].seg, m->from[i].off,
                                       &m->to[i]);
    }
    return NULL;
}

static void *move_writer(void *p)
{
    move_shared *m = p;
    char key[32];
    idx_loc old;

    for (int i = MOVED - 1; i >= 0; i--) /* from the other end: they meet in the middle */
        if (m->overwrite[i]) {
            key_of(key, sizeof key, i);
            assert_int_equal(idx_put(m->x, key, strlen(key), &m->newer[i], &old), 1);
        }
    return NULL;
}

static void *move_reader(void *p)
{
    move_shared *m = p;
    char key[32];
    uint64_t reads = 0;

    for (unsigned n = 0; !__atomic_load_n(&m->done, __ATOMIC_ACQUIRE); n++) {
        int i = (int)(n * 7919u % MOVED);
        idx_loc loc;
        key_of(key, sizeof key, i);
        rcu_read_lock();
        int rc = idx_lookup(m->x, key, strlen(key), &loc);
        rcu_read_unlock();
        bool ok = rc == 0 && ((loc.seg == m->from[i].seg && loc.off == m->from[i].off) ||
                              (loc.seg == m->to[i].seg && loc.off == m->to[i].off) ||
                              (m->overwrite[i] && loc.seg == m->newer[i].seg &&
                               loc.off == m->newer[i].off));
        if (!ok)
            __atomic_add_fetch(&m->bad, 1, __ATOMIC_RELAXED);
        reads++;
    }
    __atomic_add_fetch(&m->reads, reads, __ATOMIC_RELAXED);
    return NULL;
}

static void test_repoint_races(void **state)
{
    (void)state;
    static move_shared m;
    unsigned seed = test_seed("repoint races");
    pthread_t rd[2], rp, wr;
    flog l;
    char key[32];

    flog_open(&l);
    memset(&m, 0, sizeof m);
    m.x = l.x;
    srand(seed);
    /* every record appended before the threads start: they only move index words */
    for (int i = 0; i < MOVED; i++) {
        key_of(key, sizeof key, i);
        assert_int_equal(flog_put(&l, key, "old", &m.from[i]), 0);
    }
    for (int i = 0; i < MOVED; i++) {
        key_of(key, sizeof key, i);
        m.to[i] = flog_append(&l, key, strlen(key), "old", 3); /* the copy compaction makes */
    }
    for (int i = 0; i < MOVED; i++) {
        key_of(key, sizeof key, i);
        if ((m.overwrite[i] = rand() % 4 == 0))
            m.newer[i] = flog_append(&l, key, strlen(key), "new", 3);
    }
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&rd[i], NULL, move_reader, &m), 0);
    assert_int_equal(pthread_create(&rp, NULL, move_repointer, &m), 0);
    assert_int_equal(pthread_create(&wr, NULL, move_writer, &m), 0);
    pthread_join(rp, NULL);
    pthread_join(wr, NULL);
    __atomic_store_n(&m.done, true, __ATOMIC_RELEASE);
    for (int i = 0; i < 2; i++)
        pthread_join(rd[i], NULL);
    int lost = 0, moved = 0;
    for (int i = 0; i < MOVED; i++) {
        key_of(key, sizeof key, i);
        assert_idx_value(l.x, key, m.overwrite[i] ? "new" : "old");
        idx_loc loc;
        assert_int_equal(lookup(l.x, key, &loc), 0);
        const idx_loc *want = m.overwrite[i] ? &m.newer[i] : &m.to[i];
        assert_ptr_equal(loc.seg, want->seg);
        assert_int_equal(loc.off, want->off);
        if (!m.overwrite[i])
            assert_int_equal(m.repoint_rc[i], 0);
        lost += m.overwrite[i] && m.repoint_rc[i] == 1;
        moved += m.repoint_rc[i] == 0;
    }
    printf("# %d keys moved, %d repoints lost to a newer write; readers: %llu lookups, %llu "
           "bad\n",
           moved, lost, (unsigned long long)m.reads, (unsigned long long)m.bad);
    assert_int_equal(m.bad, 0);
    flog_close(&l);
}

/* ---- recovery: the newer seq wins across segments ---- */

#define REC_KEYS 600

static void recovery_newer_wins(uint64_t mask)
{
    char *dir = tu_mkdtemp(), key[32];
    static char want[REC_KEYS][32];
    kvs_options o;
    unsigned seed = test_seed("recovery");

    srand(seed);
    kvs_options_init(&o);
    o.segment_size = 4096;
    o.auto_compact = 0;
    kvs_test_idx_hash_mask = mask;
    kvs_t *db = tu_open(dir, &o);
    memset(want, 0, sizeof want);
    for (int op = 0; op < 8 * REC_KEYS; op++) {
        int i = rand() % REC_KEYS;
        snprintf(key, sizeof key, "key-%d", i);
        if (rand() % 5 == 0) {
            int rc = kvs_remove(db, key, strlen(key));
            assert_int_equal(rc, want[i][0] ? 0 : KVS_ENOTFOUND);
            want[i][0] = 0;
        } else {
            snprintf(want[i], sizeof want[i], "op%d", op);
            tu_set(db, key, want[i]);
        }
    }
    for (int pass = 0; pass < 4; pass++) {
        if (pass == 1) {
            tu_reopen_rebuilt(&db, dir, &o); /* from the hints */
        } else if (pass == 2) {
            tu_reopen(&db, dir, &o); /* from the index saved at the close */
        } else if (pass == 3) {
            assert_int_equal(kvs_close(db), 0);
            assert_int_equal(unlink(tu_path(dir, "INDEX")), 0);
            char name[32];
            for (uint32_t id = 1; id < 4096; id++) { /* no hints: every segment scanned */
                seg_name(name, sizeof name, id, "hint");
                unlink(tu_path(dir, name));
            }
            db = tu_open(dir, &o);
        }
        uint64_t live = 0;
        for (int i = 0; i < REC_KEYS; i++) {
            snprintf(key, sizeof key, "key-%d", i);
            tu_assert_value(db, key, want[i][0] ? want[i] : NULL);
            live += want[i][0] != 0;
        }
        assert_int_equal(tu_stats(db).keys, live);
    }
    printf("# %llu segments\n", (unsigned long long)tu_stats(db).segments);
    assert_int_equal(kvs_close(db), 0);
    kvs_test_idx_hash_mask = UINT64_MAX;
    tu_rm_rf(dir);
    free(dir);
}

static void test_recovery_newer_wins(void **state)
{
    (void)state;
    recovery_newer_wins(UINT64_MAX);
    recovery_newer_wins(0xff00000000000001ull); /* and with keys colliding */
}

/* ---- absent keys ---- */

static void fill(flog *l, int n, const char *fmt)
{
    char key[32];

    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, fmt, i);
        idx_loc loc = flog_append(l, key, strlen(key), NULL, 0), old;
        assert_int_equal(idx_put(l->x, key, strlen(key), &loc, &old), 0);
    }
}

static void test_absent_lookups(void **state)
{
    (void)state;
    flog l;
    char key[32];
    int n = SLOW_BUILD ? 200000 : 1000000;

    flog_open(&l);
    fill(&l, n, "key-%d");
    __atomic_store_n(&kvs_test_idx_absent_lookups, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&kvs_test_idx_absent_reads, 0, __ATOMIC_RELAXED);
    kvs_test_idx_count = true;
    rcu_read_lock();
    for (int i = 0; i < n; i++) {
        idx_loc loc;
        snprintf(key, sizeof key, "absent-%d", i);
        assert_int_equal(idx_lookup(l.x, key, strlen(key), &loc), KVS_ENOTFOUND);
    }
    rcu_read_unlock();
    kvs_test_idx_count = false;
    uint64_t looks = kvs_test_idx_absent_lookups, reads = kvs_test_idx_absent_reads;
    printf("# %d keys; %llu lookups of absent keys read %llu records (%.4f%%)\n", n,
           (unsigned long long)looks, (unsigned long long)reads, 100.0 * reads / looks);
    assert_int_equal(looks, n);
    assert_true(reads * 100 < looks);
    flog_close(&l);
}

/* ---- the budget ---- */

static void test_budget(void **state)
{
    (void)state;
    flog l;
    char key[32];
    idx_loc old;
    int n = 0, rc;

    flog_open(&l);
    fill(&l, 1000, "pre-%d");
    uint64_t budget = 3u << 20, cap = idx_capacity(l.x, budget);
    idx_set_budget(l.x, budget);
    for (;; n++) {
        snprintf(key, sizeof key, "new-%d", n);
        idx_loc loc = flog_append(&l, key, strlen(key), NULL, 0);
        if ((rc = idx_put(l.x, key, strlen(key), &loc, &old)) != 0)
            break;
        assert_true(idx_bytes(l.x) <= budget);
    }
    uint64_t count = idx_count(l.x);
    printf("# budget %llu bytes: %llu keys fit (capacity said %llu), index %llu bytes\n",
           (unsigned long long)budget, (unsigned long long)count, (unsigned long long)cap,
           (unsigned long long)idx_bytes(l.x));
    assert_int_equal(rc, IDX_EBUDGET);
    assert_true(count <= cap && count >= cap - cap / 50);
    assert_idx_value(l.x, key, NULL); /* the refused key is not in */
    /* overwrites and deletes still go */
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "pre-%d", i);
        idx_loc loc = flog_append(&l, key, strlen(key), "x", 1);
        assert_int_equal(idx_put(l.x, key, strlen(key), &loc, &old), 1);
    }
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof key, "new-%d", i);
        assert_int_equal(idx_del(l.x, key, strlen(key), &old), 0);
    }
    /* and the room deletes made takes new keys again, within the budget */
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof key, "again-%d", i);
        idx_loc loc = flog_append(&l, key, strlen(key), NULL, 0);
        assert_int_equal(idx_put(l.x, key, strlen(key), &loc, &old), 0);
        assert_true(idx_bytes(l.x) <= budget);
    }
    assert_int_equal(idx_count(l.x), count);
    assert_idx_value(l.x, "pre-7", "x");
    flog_close(&l);
}

/* Open f's store with a 1 MiB index budget and set key-0, key-1, ... until one is refused
 * (KVS_EFULL: that key is left in key). Returns how many were stored. */
static int fill_to_budget(tu_fixture *f, char *key, size_t cap)
{
    int n, rc;

    f->opt.max_index_memory = 1u << 20;
    tu_fx_open(f);
    for (n = 0;; n++) {
        snprintf(key, cap, "key-%d", n);
        if ((rc = kvs_set(f->db, key, strlen(key), "v", 1)) != 0)
            break;
    }
    assert_int_equal(rc, KVS_EFULL);
    return n;
}

/* Through the engine (max_index_memory): a set of a new key past the budget is refused with
 * KVS_EFULL and leaves nothing in the log; overwrites and removes go on, and so do new keys once
 * removes made room; the stats say how much is left. */
static void test_budget_engine(void **state)
{
    tu_fixture *f = *state;
    char key[32];
    int n;

    n = fill_to_budget(f, key, sizeof key);
    kvs_stats st = tu_stats(f->db);
    printf("# budget %llu: %d keys, index %llu bytes, %llu left\n",
           (unsigned long long)st.index_max_bytes, n, (unsigned long long)st.index_bytes,
           (unsigned long long)st.index_keys_left);
    assert_true(st.index_bytes <= st.index_max_bytes);
    assert_int_equal(st.index_keys_left, 0);
    assert_int_equal(st.keys, n);
    assert_int_equal(kvs_set(f->db, key, strlen(key), "v", 1), KVS_EFULL);
    tu_set(f->db, "key-0", "overwritten");
    assert_int_equal(kvs_remove(f->db, "key-1", 5), 0);
    assert_int_equal(tu_stats(f->db).index_keys_left, 1);
    tu_set(f->db, key, "now it fits");
    tu_fx_reopen(f);
    tu_assert_value(f->db, "key-0", "overwritten");
    tu_assert_value(f->db, "key-1", NULL);
    tu_assert_value(f->db, key, "now it fits");
    st = tu_stats(f->db);
    printf("# reopened: %llu keys, index %llu bytes, %llu left\n", (unsigned long long)st.keys,
           (unsigned long long)st.index_bytes, (unsigned long long)st.index_keys_left);
    snprintf(key, sizeof key, "key-%d", n + 1);
    assert_int_equal(kvs_set(f->db, key, strlen(key), "v", 1), KVS_EFULL);
    assert_int_equal(tu_stats(f->db).keys, n);
}

/* A group (kvs_write, KVS_OP_WITH_NEXT: an MSET) at the budget's edge is refused whole, its
 * new keys counted once however often it sets them; a group of overwrites always goes in. */
static void test_budget_group(void **state)
{
    tu_fixture *f = *state;
    char key[32], k2[32];
    int n;

    n = fill_to_budget(f, key, sizeof key);
    assert_int_equal(kvs_remove(f->db, "key-0", 5), 0); /* room for one new key */
    assert_int_equal(tu_stats(f->db).index_keys_left, 1);
    snprintf(key, sizeof key, "new-%d", 1);
    snprintf(k2, sizeof k2, "new-%d", 2);
    kvs_op two[] = {
        {.type = KVS_OP_SET, .key = "key-1", .klen = 5, .val = "o", .vlen = 1,
         .flags = KVS_OP_WITH_NEXT},
        {.type = KVS_OP_SET, .key = key, .klen = strlen(key), .val = "a", .vlen = 1,
         .flags = KVS_OP_WITH_NEXT},
        {.type = KVS_OP_SET, .key = k2, .klen = strlen(k2), .val = "b", .vlen = 1},
    };
    assert_int_equal(kvs_write(f->db, two, 3), KVS_EFULL);
    for (int i = 0; i < 3; i++)
        assert_int_equal(two[i].rc, KVS_EFULL);
    tu_assert_value(f->db, "key-1", "v");
    tu_assert_value(f->db, key, NULL);
    tu_assert_value(f->db, k2, NULL);
    kvs_op twice[] = {
        {.type = KVS_OP_SET, .key = key, .klen = strlen(key), .val = "a", .vlen = 1,
         .flags = KVS_OP_WITH_NEXT},
        {.type = KVS_OP_SET, .key = "key-1", .klen = 5, .val = "o", .vlen = 1,
         .flags = KVS_OP_WITH_NEXT},
        {.type = KVS_OP_SET, .key = key, .klen = strlen(key), .val = "a2", .vlen = 2},
    };
    assert_int_equal(kvs_write(f->db, twice, 3), 0);
    tu_assert_value(f->db, key, "a2");
    tu_assert_value(f->db, "key-1", "o");
    assert_int_equal(tu_stats(f->db).index_keys_left, 0);
    kvs_op over[] = {
        {.type = KVS_OP_SET, .key = "key-2", .klen = 5, .val = "p", .vlen = 1,
         .flags = KVS_OP_WITH_NEXT},
        {.type = KVS_OP_SET, .key = "key-3", .klen = 5, .val = "q", .vlen = 1},
    };
    assert_int_equal(kvs_write(f->db, over, 2), 0);
    tu_fx_reopen(f);
    tu_assert_value(f->db, key, "a2");
    tu_assert_value(f->db, k2, NULL);
    tu_assert_value(f->db, "key-3", "q");
    assert_int_equal(tu_stats(f->db).keys, n);
}

/* ---- bytes per key ---- */

/* Insert up to upto keys; at each mark print the index's bytes per key, and every rebuild on the
 * way (the put that made it: how long writers wait for one). */
static void bytes_per_key(int upto)
{
    static const int marks[] = {100000, 1000000, 5000000};
    flog l;
    char key[32];
    int m = 0;

    flog_open(&l);
    for (int i = 0; i < upto; i++) {
        snprintf(key, sizeof key, "user:%09d", i);
        idx_loc loc = flog_append(&l, key, strlen(key), NULL, 0), old;
        uint64_t b = idx_bytes(l.x), t0 = clock_usec();
        assert_int_equal(idx_put(l.x, key, strlen(key), &loc, &old), 0);
        uint64_t us = clock_usec() - t0;
        if (idx_bytes(l.x) != b && i >= 50000)
            printf("#   rebuild at %d keys: %llu -> %llu bytes in %llu us\n", i,
                   (unsigned long long)b, (unsigned long long)idx_bytes(l.x),
                   (unsigned long long)us);
        if (i + 1 == marks[m]) {
            double per = (double)idx_bytes(l.x) / (i + 1);
            printf("# %d keys: index %llu bytes, %.2f bytes/key\n", i + 1,
                   (unsigned long long)idx_bytes(l.x), per);
            if (marks[m] >= 1000000)
                assert_true(per <= 24.0);
            m++;
        }
    }
    flog_close(&l);
}

static void test_bytes_per_key(void **state)
{
    (void)state;
    const char *big = getenv("KVS_TEST_IDX_BIG");
    bytes_per_key(big && *big == '1' ? 5000000 : SLOW_BUILD ? 100000 : 1000000);
}

/* ---- the cursor ---- */

typedef struct seen {
    unsigned char *count; /* per key index */
    int n;
    int others;
} seen;

static void on_key(void *ctx, const void *key, uint32_t klen, const idx_loc *loc)
{
    seen *s = ctx;
    char buf[32];
    int i;

    (void)loc;
    assert_true(klen < sizeof buf);
    memcpy(buf, key, klen);
    buf[klen] = 0;
    if (sscanf(buf, "cur-%d", &i) == 1 && i >= 0 && i < s->n) {
        if (s->count[i] < 255)
            s->count[i]++;
    } else {
        s->others++;
    }
}

/* Scan the whole index; between steps insert grow_by new keys (a step covers a run of a few
 * slots: more than a key or two a step and the scan would chase the table's growth). */
static int scan_all(flog *l, seen *s, int grow_by, int *next_new)
{
    char key[32];
    uint64_t cur = 0;
    int steps = 0;

    do {
        rcu_read_lock();
        uint64_t next = idx_cursor_next(l->x, cur, on_key, s);
        rcu_read_unlock();
        assert_true(next > cur);
        cur = next;
        steps++;
        for (int i = 0; i < grow_by; i++) {
            snprintf(key, sizeof key, "grow-%d", (*next_new)++);
            idx_loc loc = flog_append(l, key, strlen(key), NULL, 0), old;
            assert_int_equal(idx_put(l->x, key, strlen(key), &loc, &old), 0);
        }
    } while (cur != IDX_CURSOR_END);
    return steps;
}

static void cursor_case(uint64_t mask)
{
    flog l;
    int n = 20000, grown = 0;
    seen s = {calloc((size_t)n, 1), n, 0};

    kvs_test_idx_hash_mask = mask;
    flog_open(&l);
    fill(&l, n, "cur-%d");
    int steps = scan_all(&l, &s, 0, &grown);
    for (int i = 0; i < n; i++)
        if (s.count[i] != 1)
            fail_msg("cur-%d handed out %d times", i, s.count[i]);
    assert_int_equal(s.others, 0);

    memset(s.count, 0, (size_t)n);
    uint64_t b0 = idx_bytes(l.x);
    int steps2 = scan_all(&l, &s, 1, &grown);
    for (int i = 0; i < n; i++) /* once each: index.h, "Cursor" */
        if (s.count[i] != 1)
            fail_msg("cur-%d handed out %d times by a scan across growth", i, s.count[i]);
    printf("# mask %016llx: %d steps; across growth (%llu -> %llu bytes, %d keys added): %d "
           "steps\n",
           (unsigned long long)mask, steps, (unsigned long long)b0,
           (unsigned long long)idx_bytes(l.x), grown, steps2);
    assert_true(idx_bytes(l.x) > b0);
    free(s.count);
    flog_close(&l);
    kvs_test_idx_hash_mask = UINT64_MAX;
}

static void test_cursor(void **state)
{
    (void)state;
    cursor_case(UINT64_MAX);
    cursor_case(0xfff0000000007fffull); /* 4096 hashes: long runs */
}

/* ---- segment slots ---- */

static void test_segment_slots(void **state)
{
    (void)state;
    idx *x;
    size_t sz = sizeof(seg) + 16;
    unsigned char *mem = calloc(IDX_SEG_SLOTS, sz);
    seg *extra = calloc(1, sz);

    assert_int_equal(idx_new(&x), 0);
    for (uint32_t i = 0; i + 1 < IDX_SEG_SLOTS; i++) {
        seg *s = (seg *)(mem + i * sz);
        assert_int_equal(idx_attach_seg(x, s), 0);
        assert_int_equal(s->islot, i + 1);
    }
    snprintf(extra->path, 16, "extra.log");
    assert_int_equal(idx_attach_seg(x, extra), KVS_ENOSPC);
    assert_non_null(strstr(kvs_last_error(), "at most 65535 live segments"));
    printf("# %s\n", kvs_last_error());
    seg *s100 = (seg *)(mem + 99 * sz);
    idx_detach_seg(x, s100);
    assert_int_equal(s100->islot, 0);
    assert_int_equal(idx_attach_seg(x, extra), 0);
    assert_int_equal(extra->islot, 100);
    printf("# segment table: %llu bytes of the index with every slot taken\n",
           (unsigned long long)idx_bytes(x));
    idx_free(x);
    free(mem);
    free(extra);
}

/* ---- a damaged record header ---- */

static void test_damaged_header(void **state)
{
    (void)state;
    flog l;
    idx_loc at, got;

    flog_open(&l);
    assert_int_equal(flog_put(&l, "victim", "value", &at), 0);
    assert_int_equal(flog_put(&l, "bystander", "b", NULL), 0);
    at.seg->map[at.off + REC_HDR] ^= 0x40; /* the key's first byte: the header fails its hcrc */
    assert_int_equal(lookup(l.x, "victim", &got), 0); /* still the key's: its caller says corrupt */
    assert_int_equal(got.off, at.off);
    assert_int_equal(got.vlen, 0);
    assert_idx_value(l.x, "bystander", "b");
    assert_int_equal(flog_put(&l, "victim", "fresh", NULL), 1); /* overwrites that slot */
    assert_idx_value(l.x, "victim", "fresh");
    assert_int_equal(idx_count(l.x), 2);
    flog_close(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_basic),
        TU_CASE_OPEN(test_engine_basic),
        cmocka_unit_test(test_collisions_idx),
        cmocka_unit_test(test_collisions_engine),
        cmocka_unit_test(test_growth_with_readers),
        cmocka_unit_test(test_repoint_races),
        cmocka_unit_test(test_recovery_newer_wins),
        cmocka_unit_test(test_absent_lookups),
        cmocka_unit_test(test_budget),
        TU_CASE_CLOSED(test_budget_engine),
        TU_CASE_CLOSED(test_budget_group),
        cmocka_unit_test(test_bytes_per_key),
        cmocka_unit_test(test_cursor),
        cmocka_unit_test(test_segment_slots),
        cmocka_unit_test(test_damaged_header),
    };
    return cmocka_run_group_tests_name("test_index", tests, NULL, NULL);
}
