/*
 * test_lmdb.c — what is the "lmdb" engine's own (src/engine/lmdb.c). Everything the API promises
 * of any engine (the course's cases, limits, stats, sync modes, threads, the ENGINE file and
 * engine mismatch, binary keys and values, a 16 MiB value) is checked for lmdb by the
 * engine-parameterized test_engine and test_binary (test_engine_lmdb, test_binary_lmdb).
 *
 * Here: LMDB keys are 1 .. 511 bytes, kvs keys 0 .. 64 KiB, so the engine tags every key and
 * stores long ones by their XXH3-128; the cases cross that boundary (510, 511, 512 bytes), go to
 * the limit, tell apart long keys that differ only in their last byte, and forge a hash
 * collision in the LMDB file to see it refused rather than served. Around them: the format
 * record's version, every sync mode with the writer SIGKILLed before close, a prompt close with
 * the once-a-second syncer waiting, and the figures of kvs_stats_get that come from LMDB.
 *
 * Issue 13 (the rest is test_expiry_scan, on every engine that has it): a store of format 1
 * (tests/data/lmdb1, values without a header) converted at open; a group refused midway (a
 * forged collision on its last op) leaves none of its writes, while the batch's other groups
 * commit; an update's answer that points into the old value it was given.
 */
#include <lmdb.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "testutil.h"

/* ---- long keys: inline up to 510 bytes, by hash beyond ---- */

static const size_t long_lens[] = {510, 511, 512, 4096, KVS_MAX_KEY};
#define NLONG (sizeof long_lens / sizeof long_lens[0])

/* Key i of long_lens, and its twin that differs only in the last byte. */
static unsigned char *long_key(size_t i, int twin)
{
    unsigned char *k = tu_filled(long_lens[i], (unsigned)i);

    if (twin)
        k[long_lens[i] - 1] ^= 0x5a;
    return k;
}

static void check_long(kvs_t *db)
{
    char want[64];

    for (size_t i = 0; i < NLONG; i++)
        for (int twin = 0; twin < 2; twin++) {
            unsigned char *k = long_key(i, twin);
            snprintf(want, sizeof want, "len %zu twin %d", long_lens[i], twin);
            tu_assert_bin(db, k, long_lens[i], want, strlen(want));
            tu_assert_bin(db, k, long_lens[i] - 1, NULL, 0); /* its prefix is another key */
            free(k);
        }
    assert_int_equal(tu_stats(db).keys, 2 * NLONG);
}

static void test_long_keys(void **state)
{
    tu_fixture *f = *state;
    char val[64];

    for (size_t i = 0; i < NLONG; i++)
        for (int twin = 0; twin < 2; twin++) {
            unsigned char *k = long_key(i, twin);
            tu_assert_bin(f->db, k, long_lens[i], NULL, 0);
            snprintf(val, sizeof val, "len %zu twin %d", long_lens[i], twin);
            tu_set_bin(f->db, k, long_lens[i], val, strlen(val));
            free(k);
        }
    tu_check_twice(f, check_long);
    /* overwrite and remove go through the same encoding */
    for (size_t i = 0; i < NLONG; i++) {
        unsigned char *k = long_key(i, 0), *t = long_key(i, 1);
        tu_set_bin(f->db, k, long_lens[i], "new", 3);
        tu_assert_bin(f->db, k, long_lens[i], "new", 3);
        assert_int_equal(kvs_remove(f->db, t, long_lens[i]), 0);
        tu_assert_bin(f->db, t, long_lens[i], NULL, 0);
        assert_int_equal(kvs_remove(f->db, t, long_lens[i]), KVS_ENOTFOUND);
        tu_assert_bin(f->db, k, long_lens[i], "new", 3);
        free(k);
        free(t);
    }
    assert_int_equal(tu_stats(f->db).keys, NLONG);
}

/* ---- a forged hash collision is refused, never served ---- */

/* Put one entry straight into the LMDB file of a closed store, past the engine. */
static void raw_put(const char *dir, const void *key, size_t klen, const void *val, size_t vlen)
{
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;

    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_mapsize(env, (size_t)1 << 30), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* Put, under victim's hashed key, an entry that claims to be for another key (same length, last
 * byte changed): what a collision would look like. The value is of format 2: expire_ms 0 and
 * version 1, then the key's length, the key and the value. */
static void forge_collision(const char *dir, const unsigned char *victim, size_t klen)
{
    unsigned char lkey[17], *val = calloc(1, 16 + 4 + klen + 5), *p;
    XXH128_canonical_t h;

    assert_non_null(val);
    XXH128_canonicalFromHash(&h, XXH3_128bits(victim, klen));
    lkey[0] = 0x01;
    memcpy(lkey + 1, h.digest, 16);
    val[8] = 1;
    p = val + 16;
    p[0] = (unsigned char)klen, p[1] = (unsigned char)(klen >> 8);
    p[2] = (unsigned char)(klen >> 16), p[3] = (unsigned char)(klen >> 24);
    memcpy(p + 4, victim, klen);
    p[4 + klen - 1] ^= 1;
    memcpy(p + 4 + klen, "wrong", 5);
    raw_put(dir, lkey, sizeof lkey, val, 16 + 4 + klen + 5);
    free(val);
}

static void test_hash_collision_refused(void **state)
{
    tu_fixture *f = *state;
    unsigned char *k = tu_filled(600, 9);
    void *val = NULL;
    size_t len;

    tu_set_bin(f->db, k, 600, "right", 5);
    assert_int_equal(kvs_close(f->db), 0);
    f->db = NULL;
    forge_collision(f->dir, k, 600);
    tu_log_capture(KVS_LOG_ERROR);
    tu_fx_open(f);
    assert_int_equal(kvs_get(f->db, k, 600, &val, &len), KVS_ECORRUPT);
    assert_null(val);
    assert_non_null(strstr(kvs_last_error(), "collision"));
    assert_non_null(strstr(tu_log_text(), "XXH3-128"));
    assert_int_equal(kvs_set(f->db, k, 600, "x", 1), KVS_ECORRUPT);
    assert_int_equal(kvs_remove(f->db, k, 600), KVS_ECORRUPT);
    tu_log_release();
    free(k);
}

/* A format record of a later version is refused, and the store is left as it was. */
static void test_format_version_checked(void **state)
{
    tu_fixture *f = *state;
    const unsigned char tag = 0x02, v3[28] = {'K', 'V', 'S', 'L', 3, 0, 0, 0, 254, 1, 0, 0};
    kvs_t *db;

    tu_set(f->db, "k", "v");
    assert_int_equal(kvs_close(f->db), 0);
    f->db = NULL;
    raw_put(f->dir, &tag, 1, v3, sizeof v3);
    assert_int_equal(tu_try_open(f->dir, &f->opt, &db), KVS_EVERSION);
    assert_non_null(strstr(kvs_last_error(), "version 3"));
}

/* A write that returned 0 survives the process being killed, in every mode: a child writes,
 * tells the parent, and is SIGKILLed without closing; the parent opens what it left. */
static void kill_case(tu_fixture *f, kvs_sync mode)
{
    int fds[2];
    char c;
    pid_t pid;

    f->opt.sync = mode;
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        kvs_t *db;
        close(fds[0]);
        if (kvs_create(&db) < 0 || kvs_configure(db, &f->opt) < 0 || kvs_open(db, f->dir) < 0)
            _exit(1);
        if (tu_put_keys(db, 100) != 0 || write(fds[1], "w", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    close(fds[1]);
    assert_int_equal(read(fds[0], &c, 1), 1); /* EOF: the child failed */
    close(fds[0]);
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    tu_fx_open(f);
    tu_assert_keys(f->db, 100);
    assert_int_equal(tu_stats(f->db).keys, 100);
}

static void test_kill_never(void **state)
{
    kill_case(*state, KVS_SYNC_NEVER);
}

static void test_kill_everysec(void **state)
{
    kill_case(*state, KVS_SYNC_EVERYSEC);
}

static void test_kill_always(void **state)
{
    kill_case(*state, KVS_SYNC_ALWAYS);
}

/* close is prompt even with the once-a-second syncer waiting */
static void test_everysec_close_is_prompt(void **state)
{
    tu_fixture *f = *state;
    struct timespec a, b;

    f->opt.sync = KVS_SYNC_EVERYSEC;
    tu_fx_open(f);
    tu_set(f->db, "k", "v");
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_int_equal(kvs_close(f->db), 0);
    f->db = NULL;
    clock_gettime(CLOCK_MONOTONIC, &b);
    assert_true((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < 500);
    tu_fx_open(f);
    tu_assert_value(f->db, "k", "v");
}

/* ---- stats: the figures that come from LMDB ---- */

static void check_stats(kvs_t *db)
{
    kvs_stats st = tu_stats(db);

    assert_int_equal(st.keys, 2);
    assert_true(st.live_bytes > 0);
    assert_true(st.disk_bytes >= st.live_bytes);
    assert_int_equal(st.dead_bytes, 0); /* LMDB reuses the pages of overwritten records */
    assert_int_equal(st.segments, 0);
}

static void test_stats(void **state)
{
    tu_fixture *f = *state;

    tu_set(f->db, "a", "1");
    tu_set(f->db, "b", "2");
    tu_set(f->db, "c", "3");
    tu_set(f->db, "a", "overwritten");
    assert_int_equal(kvs_remove(f->db, "b", 1), 0);
    assert_int_equal(kvs_compact(f->db), 0); /* nothing to reclaim */
    assert_int_equal(tu_stats(f->db).disk_bytes, tu_file_size(tu_path(f->dir, "data.mdb")));
    tu_check_twice(f, check_stats);
}

/* ---- issue 13: format 1, groups, updates ---- */

#ifndef KVS_TEST_DATA
#error "KVS_TEST_DATA: the tests/data directory (tests/CMakeLists.txt defines it)"
#endif

static int value_seen(void *ctx, const void *val, size_t vlen)
{
    (void)ctx, (void)val, (void)vlen;
    return 0;
}

/* The format-1 store of tests/data/lmdb1 (its README, make_lmdb1.c) holds exactly these. */
static void check_lmdb1(kvs_t *db)
{
    unsigned char longkey[600];
    kvs_meta m;
    uint64_t versions[6];
    struct {
        const char *k;
        size_t klen;
        const char *v;
    } want[] = {{"alpha", 5, "1"}, {"", 0, "empty key"}, {"e", 1, ""},
                {"\x00\xff", 2, "binary"}, {"over", 4, "second"}};

    for (size_t i = 0; i < sizeof longkey; i++)
        longkey[i] = (unsigned char)((i * 7 + 3) & 0xff);
    for (size_t i = 0; i < 5; i++) {
        tu_assert_bin(db, want[i].k, want[i].klen, want[i].v, strlen(want[i].v));
        assert_int_equal(kvs_read_meta(db, want[i].k, want[i].klen, value_seen, NULL, &m),
                         0);
        assert_int_equal(m.expire_ms, 0);
        versions[i] = m.version;
    }
    tu_assert_bin(db, longkey, sizeof longkey, "long", 4);
    assert_int_equal(kvs_read_meta(db, longkey, sizeof longkey, value_seen, NULL, &m), 0);
    versions[5] = m.version;
    tu_assert_bin(db, "gone", 4, NULL, 0);
    assert_int_equal(tu_stats(db).keys, 6);
    assert_int_equal(tu_stats(db).expiring_keys, 0);
    for (int i = 0; i < 6; i++) {
        assert_true(versions[i] != 0);
        for (int j = 0; j < i; j++)
            assert_true(versions[i] != versions[j]);
    }
}

static void test_format1_converted(void **state)
{
    tu_fixture *f = *state;
    const char *files[] = {"data.mdb", "ENGINE"};
    unsigned char *b;
    size_t len;

    for (size_t i = 0; i < 2; i++) {
        b = tu_slurp(tu_path(KVS_TEST_DATA "/lmdb1", files[i]), &len);
        tu_spill(tu_path(f->dir, files[i]), b, len);
        free(b);
    }
    tu_log_capture(KVS_LOG_WARN);
    tu_fx_open(f);
    assert_non_null(strstr(tu_log_text(), "from format 1 to format 2 (6 keys)"));
    tu_log_release();
    tu_check_twice(f, check_lmdb1); /* the second open finds format 2: nothing logged */
    tu_set(f->db, "alpha", "2");
    tu_assert_value(f->db, "alpha", "2");
}

/* A batch of three groups: [x, y], [the collided long key, z] refused at its first op, and
 * [x2, collided, w] refused at its second: a nested transaction takes back what it wrote. */
static void test_group_refused_midway(void **state)
{
    tu_fixture *f = *state;
    unsigned char *k = tu_filled(600, 9);
    kvs_op ops[7] = {
        {.type = KVS_OP_SET, .key = "x", .klen = 1, .val = "1", .vlen = 1,
         .flags = KVS_OP_WITH_NEXT},
        {.type = KVS_OP_SET, .key = "y", .klen = 1, .val = "1", .vlen = 1},
        {.type = KVS_OP_SET, .key = k, .klen = 600, .val = "v", .vlen = 1,
         .flags = KVS_OP_WITH_NEXT},
        {.type = KVS_OP_SET, .key = "z", .klen = 1, .val = "1", .vlen = 1},
        {.type = KVS_OP_SET, .key = "x", .klen = 1, .val = "2", .vlen = 1,
         .flags = KVS_OP_WITH_NEXT},
        {.type = KVS_OP_REMOVE, .key = k, .klen = 600, .flags = KVS_OP_WITH_NEXT},
        {.type = KVS_OP_SET, .key = "w", .klen = 1, .val = "1", .vlen = 1},
    };

    tu_set_bin(f->db, k, 600, "right", 5);
    assert_int_equal(kvs_close(f->db), 0);
    f->db = NULL;
    forge_collision(f->dir, k, 600);
    tu_log_capture(KVS_LOG_ERROR); /* the collision is logged */
    tu_fx_open(f);
    assert_int_equal(kvs_write(f->db, ops, 7), KVS_ECORRUPT);
    tu_log_release();
    assert_int_equal(ops[0].rc, 0);
    assert_int_equal(ops[1].rc, 0);
    for (int i = 2; i < 7; i++)
        assert_int_equal(ops[i].rc, KVS_ECORRUPT);
    tu_assert_value(f->db, "x", "1"); /* not "2": the third group was taken back */
    tu_assert_value(f->db, "y", "1");
    tu_assert_value(f->db, "z", NULL);
    tu_assert_value(f->db, "w", NULL);
    assert_int_equal(tu_stats(f->db).keys, 3); /* x, y and the forged entry */
    free(k);
}

/* An update may answer with (part of) the value it was given, which lies in the page the put
 * rewrites: the engine copies it first. This one keeps all but the first byte (ctx NULL) or
 * all but the last. */
static int tail_fn(void *ctx, const kvs_cur *cur, kvs_update_out *out)
{
    assert_true(cur->found);
    out->type = KVS_OP_SET;
    out->val = (const char *)cur->val + (ctx ? 0 : 1);
    out->vlen = cur->vlen - 1;
    return 0;
}

static void test_update_answers_with_old_value(void **state)
{
    tu_fixture *f = *state;
    size_t n = 100000; /* on overflow pages */
    unsigned char *v = tu_filled(n, 3);
    kvs_op ops[6] = {
        /* set in the same batch, so the old values lie in pages the transaction writes */
        {.type = KVS_OP_SET, .key = "k", .klen = 1, .val = v, .vlen = n},
        {.type = KVS_OP_UPDATE, .key = "k", .klen = 1, .update = tail_fn},
        {.type = KVS_OP_SET, .key = "s", .klen = 1, .val = "abcdefgh", .vlen = 8},
        {.type = KVS_OP_UPDATE, .key = "s", .klen = 1, .update = tail_fn},
        {.type = KVS_OP_SET, .key = "u", .klen = 1, .val = "abcdefgh", .vlen = 8},
        {.type = KVS_OP_UPDATE, .key = "u", .klen = 1, .update = tail_fn, .update_ctx = "head"},
    };

    tu_set(f->db, "r", "neighbour");
    tu_set(f->db, "t", "neighbour");
    assert_int_equal(kvs_write(f->db, ops, 6), 0);
    tu_assert_bin(f->db, "k", 1, v + 1, n - 1);
    tu_assert_bin(f->db, "s", 1, "bcdefgh", 7);
    tu_assert_bin(f->db, "u", 1, "abcdefg", 7);
    assert_int_equal(kvs_write(f->db, &ops[1], 1), 0); /* and from a committed page */
    tu_assert_bin(f->db, "k", 1, v + 2, n - 2);
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_CASE_OPEN(test_long_keys),
        TU_CASE_OPEN(test_hash_collision_refused),
        TU_CASE_OPEN(test_format_version_checked),
        TU_CASE_CLOSED(test_kill_never),
        TU_CASE_CLOSED(test_kill_everysec),
        TU_CASE_CLOSED(test_kill_always),
        TU_CASE_CLOSED(test_everysec_close_is_prompt),
        TU_CASE_OPEN(test_stats),
        TU_CASE_CLOSED(test_format1_converted),
        TU_CASE_OPEN(test_group_refused_midway),
        TU_CASE_OPEN(test_update_answers_with_old_value),
    };

    tu_engine = "lmdb"; /* every open in the fixtures names it */
    return cmocka_run_group_tests_name("test_lmdb", tests, NULL, NULL);
}
