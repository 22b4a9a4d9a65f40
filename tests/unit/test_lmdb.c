/*
 * test_lmdb.c — the "lmdb" engine (src/engine/lmdb.c) behind the public API, held to the same
 * semantics as the "kvs" engine.
 *
 * The course's engine cases run on lmdb, each checked on the handle that wrote and again after
 * kvs_close and a kvs_open that names no engine, so the directory's ENGINE file must pick lmdb
 * (check_twice). Then what LMDB does not give by itself: LMDB keys are 1 .. 511 bytes, kvs keys
 * 0 .. 64 KiB, so the engine tags every key and stores long ones by their XXH3-128; the cases
 * here cross that boundary (510, 511, 512 bytes), go to the limit, tell apart long keys that
 * differ only in their last byte, and forge a hash collision in the LMDB file to see it refused
 * rather than served. Around them: binary bytes, empty key and value, a 16 MiB value, every sync
 * mode (each also with the writer SIGKILLed before close), the ENGINE file both ways, eight
 * threads on one handle, and the key count in stats.
 */
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "testutil.h"

/* ---- fixture: a scratch directory, lmdb options, and the open handle ---- */

typedef struct fixture {
    char *dir;
    kvs_options opt;
    kvs_t *db;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);

    assert_non_null(f);
    f->dir = tu_mkdtemp();
    kvs_options_init(&f->opt);
    f->opt.engine = "lmdb";
    *state = f;
    return 0;
}

static void fx_open(fixture *f)
{
    f->db = tu_open(f->dir, &f->opt);
}

static int setup_open(void **state)
{
    setup(state);
    fx_open(*state);
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;

    kvs_close(f->db);
    tu_rm_rf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* Close, then open again naming no engine: the directory must say it is lmdb's. */
static void fx_reopen(fixture *f)
{
    kvs_options opt = f->opt;

    assert_int_equal(kvs_close(f->db), 0);
    f->db = NULL;
    opt.engine = NULL;
    f->db = tu_open(f->dir, &opt);
}

static kvs_stats stats_of(kvs_t *db)
{
    kvs_stats st;

    assert_int_equal(kvs_stats_get(db, &st), 0);
    return st;
}

/* Run check on the handle that wrote, then again after close + reopen. */
static void check_twice(fixture *f, void (*check)(kvs_t *db))
{
    check(f->db);
    fx_reopen(f);
    assert_string_equal(stats_of(f->db).engine, "lmdb");
    check(f->db);
}

/* ---- small assertions ---- */

static void set_str(kvs_t *db, const char *key, const char *val)
{
    assert_int_equal(kvs_set(db, key, strlen(key), val, strlen(val)), 0);
}

static void set_bin(kvs_t *db, const void *key, size_t klen, const void *val, size_t vlen)
{
    int rc = kvs_set(db, key, klen, val, vlen);

    if (rc != 0)
        fail_msg("set of a %zu-byte key: %s: %s", klen, kvs_strerror(rc), kvs_last_error());
}

/* key holds exactly want/wlen, followed by the NUL kvs.h promises. */
static void assert_bin(kvs_t *db, const void *key, size_t klen, const void *want, size_t wlen)
{
    void *val;
    size_t len;
    int rc = kvs_get(db, key, klen, &val, &len);

    if (rc != 0)
        fail_msg("get of a %zu-byte key: %s: %s", klen, kvs_strerror(rc), kvs_last_error());
    assert_int_equal(len, wlen);
    assert_memory_equal(val, want, wlen);
    assert_int_equal(((unsigned char *)val)[len], 0);
    kvs_free(val);
}

static void assert_absent_bin(kvs_t *db, const void *key, size_t klen)
{
    void *val = &val; /* anything but NULL, so that the test sees get clear it */
    size_t len = 7;

    assert_int_equal(kvs_get(db, key, klen, &val, &len), KVS_ENOTFOUND);
    assert_null(val);
}

static void assert_absent(kvs_t *db, const char *key)
{
    assert_absent_bin(db, key, strlen(key));
}

/* Removing key finds nothing to remove and writes nothing. */
static void assert_remove_missing(kvs_t *db, const char *key)
{
    uint64_t before = stats_of(db).writes;

    assert_int_equal(kvs_remove(db, key, strlen(key)), KVS_ENOTFOUND);
    assert_int_equal(stats_of(db).writes, before);
}

/* n bytes of a pattern that differs with seed; the caller frees. */
static unsigned char *filled(size_t n, unsigned seed)
{
    unsigned char *p = malloc(n ? n : 1);

    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 31 + 7 + seed * 101);
    return p;
}

/* ---- the course's engine cases ---- */

static void check_stored(kvs_t *db)
{
    tu_assert_value(db, "key1", "value1");
    tu_assert_value(db, "key2", "value2");
}

static void test_get_stored_value(void **state)
{
    fixture *f = *state;

    set_str(f->db, "key1", "value1");
    set_str(f->db, "key2", "value2");
    check_twice(f, check_stored);
}

static void check_overwritten(kvs_t *db)
{
    tu_assert_value(db, "key1", "value2");
}

static void test_overwrite_value(void **state)
{
    fixture *f = *state;

    set_str(f->db, "key1", "value1");
    tu_assert_value(f->db, "key1", "value1");
    set_str(f->db, "key1", "value2");
    check_twice(f, check_overwritten);
    set_str(f->db, "key1", "value3"); /* over a value read back from the file */
    tu_assert_value(f->db, "key1", "value3");
    fx_reopen(f);
    tu_assert_value(f->db, "key1", "value3");
}

static void check_missing(kvs_t *db)
{
    assert_absent(db, "key2");
    tu_assert_value(db, "key1", "value1");
}

static void test_get_missing_key(void **state)
{
    fixture *f = *state;

    assert_absent(f->db, "key1"); /* an empty store */
    set_str(f->db, "key1", "value1");
    check_twice(f, check_missing);
}

static void check_removed(kvs_t *db)
{
    assert_absent(db, "key1");
    tu_assert_value(db, "key2", "value2");
    assert_int_equal(stats_of(db).keys, 1);
}

static void test_remove_key(void **state)
{
    fixture *f = *state;

    set_str(f->db, "key1", "value1");
    set_str(f->db, "key2", "value2");
    tu_assert_value(f->db, "key1", "value1");
    assert_int_equal(kvs_remove(f->db, "key1", 4), 0);
    check_twice(f, check_removed);
}

static void check_remove_missing(kvs_t *db)
{
    assert_remove_missing(db, "key1"); /* never set */
    assert_remove_missing(db, "key2"); /* set, then removed */
}

static void test_remove_missing_key(void **state)
{
    fixture *f = *state;

    assert_remove_missing(f->db, "key1"); /* an empty store */
    set_str(f->db, "key2", "value2");
    assert_int_equal(kvs_remove(f->db, "key2", 4), 0);
    check_twice(f, check_remove_missing);
}

/* ---- bytes, not strings ---- */

static const char bin_k1[] = "a\0b", bin_k2[] = "a\0c", bin_k3[] = "\r\n\xff\x00\xff";
static const char bin_v1[] = "v\0\r\n", bin_v2[] = "\xff\xfe\0\0", bin_v3[] = "\n\n\r\0x";

static void check_binary(kvs_t *db)
{
    assert_bin(db, bin_k1, sizeof bin_k1 - 1, bin_v1, sizeof bin_v1 - 1);
    assert_bin(db, bin_k2, sizeof bin_k2 - 1, bin_v2, sizeof bin_v2 - 1);
    assert_bin(db, bin_k3, sizeof bin_k3 - 1, bin_v3, sizeof bin_v3 - 1);
    assert_absent_bin(db, "a", 1); /* no truncation at the NUL */
    assert_absent_bin(db, "\r\n", 2);
}

static void test_binary_keys_and_values(void **state)
{
    fixture *f = *state;

    set_bin(f->db, bin_k1, sizeof bin_k1 - 1, bin_v1, sizeof bin_v1 - 1);
    set_bin(f->db, bin_k2, sizeof bin_k2 - 1, bin_v2, sizeof bin_v2 - 1);
    set_bin(f->db, bin_k3, sizeof bin_k3 - 1, bin_v3, sizeof bin_v3 - 1);
    check_twice(f, check_binary);
}

static void check_empty(kvs_t *db)
{
    assert_bin(db, "", 0, "for the empty key", 17);
    assert_bin(db, "e", 1, "", 0);
    assert_int_equal(stats_of(db).keys, 2);
}

static void test_empty_key_and_value(void **state)
{
    fixture *f = *state;

    assert_absent_bin(f->db, "", 0);
    set_bin(f->db, "", 0, "for the empty key", 17);
    set_bin(f->db, "e", 1, "", 0);
    check_twice(f, check_empty);
    assert_int_equal(kvs_remove(f->db, "", 0), 0);
    assert_absent_bin(f->db, "", 0);
    assert_int_equal(kvs_remove(f->db, "", 0), KVS_ENOTFOUND);
    assert_bin(f->db, "e", 1, "", 0);
}

/* ---- long keys: inline up to 510 bytes, by hash beyond ---- */

static const size_t long_lens[] = {510, 511, 512, 4096, KVS_MAX_KEY};
#define NLONG (sizeof long_lens / sizeof long_lens[0])

/* Key i of long_lens, and its twin that differs only in the last byte. */
static unsigned char *long_key(size_t i, int twin)
{
    unsigned char *k = filled(long_lens[i], (unsigned)i);

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
            assert_bin(db, k, long_lens[i], want, strlen(want));
            assert_absent_bin(db, k, long_lens[i] - 1); /* its prefix is another key */
            free(k);
        }
    assert_int_equal(stats_of(db).keys, 2 * NLONG);
}

static void test_long_keys(void **state)
{
    fixture *f = *state;
    char val[64];

    for (size_t i = 0; i < NLONG; i++)
        for (int twin = 0; twin < 2; twin++) {
            unsigned char *k = long_key(i, twin);
            assert_absent_bin(f->db, k, long_lens[i]);
            snprintf(val, sizeof val, "len %zu twin %d", long_lens[i], twin);
            set_bin(f->db, k, long_lens[i], val, strlen(val));
            free(k);
        }
    check_twice(f, check_long);
    /* overwrite and remove go through the same encoding */
    for (size_t i = 0; i < NLONG; i++) {
        unsigned char *k = long_key(i, 0), *t = long_key(i, 1);
        set_bin(f->db, k, long_lens[i], "new", 3);
        assert_bin(f->db, k, long_lens[i], "new", 3);
        assert_int_equal(kvs_remove(f->db, t, long_lens[i]), 0);
        assert_absent_bin(f->db, t, long_lens[i]);
        assert_int_equal(kvs_remove(f->db, t, long_lens[i]), KVS_ENOTFOUND);
        assert_bin(f->db, k, long_lens[i], "new", 3);
        free(k);
        free(t);
    }
    assert_int_equal(stats_of(f->db).keys, NLONG);
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
 * byte changed): what a collision would look like. */
static void forge_collision(const char *dir, const unsigned char *victim, size_t klen)
{
    unsigned char lkey[17], *val = malloc(4 + klen + 5);
    XXH128_canonical_t h;

    assert_non_null(val);
    XXH128_canonicalFromHash(&h, XXH3_128bits(victim, klen));
    lkey[0] = 0x01;
    memcpy(lkey + 1, h.digest, 16);
    val[0] = (unsigned char)klen, val[1] = (unsigned char)(klen >> 8);
    val[2] = (unsigned char)(klen >> 16), val[3] = (unsigned char)(klen >> 24);
    memcpy(val + 4, victim, klen);
    val[4 + klen - 1] ^= 1;
    memcpy(val + 4 + klen, "wrong", 5);
    raw_put(dir, lkey, sizeof lkey, val, 4 + klen + 5);
    free(val);
}

static void test_hash_collision_refused(void **state)
{
    fixture *f = *state;
    unsigned char *k = filled(600, 9);
    void *val = NULL;
    size_t len;

    set_bin(f->db, k, 600, "right", 5);
    assert_int_equal(kvs_close(f->db), 0);
    f->db = NULL;
    forge_collision(f->dir, k, 600);
    tu_log_capture(KVS_LOG_ERROR);
    fx_open(f);
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
    fixture *f = *state;
    const unsigned char tag = 0x02, v2[12] = {'K', 'V', 'S', 'L', 2, 0, 0, 0, 254, 1, 0, 0};
    kvs_t *db;

    set_str(f->db, "k", "v");
    assert_int_equal(kvs_close(f->db), 0);
    f->db = NULL;
    raw_put(f->dir, &tag, 1, v2, sizeof v2);
    assert_int_equal(tu_try_open(f->dir, &f->opt, &db), KVS_EVERSION);
    assert_non_null(strstr(kvs_last_error(), "version 2"));
}

/* ---- a large value ---- */

#define BIG (16u << 20)

static void check_big(kvs_t *db)
{
    unsigned char *v = filled(BIG, 3), *lk = filled(1000, 4);

    assert_bin(db, "big", 3, v, BIG);
    assert_bin(db, lk, 1000, v, BIG); /* behind a hashed key: [klen][key] before it */
    free(v);
    free(lk);
}

static void test_16mib_value(void **state)
{
    fixture *f = *state;
    unsigned char *v = filled(BIG, 3), *lk = filled(1000, 4);

    set_bin(f->db, "big", 3, v, BIG);
    set_bin(f->db, lk, 1000, v, BIG);
    free(v);
    free(lk);
    check_twice(f, check_big);
}

/* ---- sync modes ---- */

static void put_keys(kvs_t *db, int n)
{
    char k[32], v[48];

    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "key-%06d", i);
        snprintf(v, sizeof v, "value-%d-%08x", i, (unsigned)i * 2654435761u);
        set_str(db, k, v);
    }
}

static void assert_keys(kvs_t *db, int n)
{
    char k[32], v[48];

    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "key-%06d", i);
        snprintf(v, sizeof v, "value-%d-%08x", i, (unsigned)i * 2654435761u);
        tu_assert_value(db, k, v);
    }
}

static void sync_case(fixture *f, kvs_sync mode)
{
    kvs_stats st;

    f->opt.sync = mode;
    fx_open(f);
    put_keys(f->db, 100);
    st = stats_of(f->db);
    assert_int_equal(st.sync, mode);
    assert_int_equal(st.writes, 100);
    if (mode == KVS_SYNC_ALWAYS)
        assert_true(st.syncs >= 100);
    if (mode == KVS_SYNC_EVERYSEC) { /* the background thread syncs within about a second */
        for (int i = 0; i < 300 && stats_of(f->db).syncs == 0; i++)
            usleep(10000);
        assert_true(stats_of(f->db).syncs > 0);
    }
    assert_int_equal(kvs_sync_now(f->db), 0);
    fx_reopen(f);
    assert_int_equal(stats_of(f->db).sync, mode); /* reopen keeps the mode asked for */
    assert_keys(f->db, 100);
    assert_int_equal(stats_of(f->db).keys, 100);
}

static void test_sync_never(void **state)
{
    sync_case(*state, KVS_SYNC_NEVER);
}

static void test_sync_everysec(void **state)
{
    sync_case(*state, KVS_SYNC_EVERYSEC);
}

static void test_sync_always(void **state)
{
    sync_case(*state, KVS_SYNC_ALWAYS);
}

/* A write that returned 0 survives the process being killed, in every mode: a child writes,
 * tells the parent, and is SIGKILLed without closing; the parent opens what it left. */
static void kill_case(fixture *f, kvs_sync mode)
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
        for (int i = 0; i < 100; i++) {
            char k[32], v[48];
            snprintf(k, sizeof k, "key-%06d", i);
            snprintf(v, sizeof v, "value-%d-%08x", i, (unsigned)i * 2654435761u);
            if (kvs_set(db, k, strlen(k), v, strlen(v)) != 0)
                _exit(1);
        }
        if (write(fds[1], "w", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    close(fds[1]);
    assert_int_equal(read(fds[0], &c, 1), 1); /* EOF: the child failed */
    close(fds[0]);
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    fx_open(f);
    assert_keys(f->db, 100);
    assert_int_equal(stats_of(f->db).keys, 100);
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
    fixture *f = *state;
    struct timespec a, b;

    f->opt.sync = KVS_SYNC_EVERYSEC;
    fx_open(f);
    set_str(f->db, "k", "v");
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_int_equal(kvs_close(f->db), 0);
    f->db = NULL;
    clock_gettime(CLOCK_MONOTONIC, &b);
    assert_true((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < 500);
    fx_open(f);
    tu_assert_value(f->db, "k", "v");
}

/* ---- which engine owns the directory ---- */

static void test_engine_mismatch(void **state)
{
    fixture *f = *state;
    char *other = tu_mkdtemp();
    kvs_options opt;
    kvs_t *db;

    /* made by lmdb, opened as kvs */
    fx_open(f);
    set_str(f->db, "k", "v");
    assert_int_equal(kvs_close(f->db), 0);
    f->db = NULL;
    kvs_options_init(&opt);
    opt.engine = "kvs";
    assert_int_equal(tu_try_open(f->dir, &opt, &db), KVS_EENGINE);
    assert_non_null(strstr(kvs_last_error(), "'lmdb'"));
    assert_non_null(strstr(kvs_last_error(), "'kvs'"));
    /* made by kvs, opened as lmdb */
    db = tu_open(other, &opt);
    set_str(db, "k", "v");
    assert_int_equal(kvs_close(db), 0);
    opt.engine = "lmdb";
    assert_int_equal(tu_try_open(other, &opt, &db), KVS_EENGINE);
    assert_non_null(strstr(kvs_last_error(), "'kvs'"));
    assert_non_null(strstr(kvs_last_error(), "'lmdb'"));
    /* neither was harmed */
    opt.engine = NULL;
    db = tu_open(other, &opt);
    assert_string_equal(stats_of(db).engine, "kvs");
    tu_assert_value(db, "k", "v");
    assert_int_equal(kvs_close(db), 0);
    fx_reopen(f);
    tu_assert_value(f->db, "k", "v");
    tu_rm_rf(other);
    free(other);
}

/* Without an ENGINE file (a directory from before it), data.mdb alone says lmdb. */
static void test_owns_dir_without_engine_file(void **state)
{
    fixture *f = *state;

    fx_open(f);
    set_str(f->db, "k", "v");
    assert_int_equal(kvs_close(f->db), 0);
    f->db = NULL;
    assert_int_equal(unlink(tu_path(f->dir, "ENGINE")), 0);
    f->opt.engine = NULL;
    fx_open(f);
    assert_string_equal(stats_of(f->db).engine, "lmdb");
    tu_assert_value(f->db, "k", "v");
}

/* ---- threads ---- */

#define NTHREADS 8
#define PER_THREAD 500

typedef struct worker {
    kvs_t *db;
    int id;
    int errors;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    char k[32], v[64];
    void *got;
    size_t len;

    for (int i = 0; i < PER_THREAD; i++) {
        int kl = snprintf(k, sizeof k, "t%d-k%d", w->id, i);
        int vl = snprintf(v, sizeof v, "thread %d value %d", w->id, i);
        if (kvs_set(w->db, k, (size_t)kl, v, (size_t)vl) != 0) {
            w->errors++;
            continue;
        }
        if (kvs_get(w->db, k, (size_t)kl, &got, &len) != 0) {
            w->errors++;
            continue;
        }
        if (len != (size_t)vl || memcmp(got, v, len) != 0)
            w->errors++;
        kvs_free(got);
    }
    return NULL;
}

static void check_threads(kvs_t *db)
{
    char k[32], v[64];

    assert_int_equal(stats_of(db).keys, NTHREADS * PER_THREAD);
    for (int t = 0; t < NTHREADS; t++)
        for (int i = 0; i < PER_THREAD; i++) {
            snprintf(k, sizeof k, "t%d-k%d", t, i);
            snprintf(v, sizeof v, "thread %d value %d", t, i);
            tu_assert_value(db, k, v);
        }
}

static void test_threads_share_a_handle(void **state)
{
    fixture *f = *state;
    pthread_t th[NTHREADS];
    worker w[NTHREADS];

    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (worker){f->db, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(w[i].errors, 0);
    }
    assert_int_equal(stats_of(f->db).writes, NTHREADS * PER_THREAD);
    check_twice(f, check_threads);
}

/* ---- stats ---- */

static void check_stats(kvs_t *db)
{
    kvs_stats st = stats_of(db);

    assert_int_equal(st.keys, 2);
    assert_string_equal(st.engine, "lmdb");
    assert_true(st.live_bytes > 0);
    assert_true(st.disk_bytes >= st.live_bytes);
    assert_int_equal(st.dead_bytes, 0);
    assert_int_equal(st.segments, 0);
}

static void test_stats_follow_writes(void **state)
{
    fixture *f = *state;

    assert_int_equal(stats_of(f->db).keys, 0); /* the format record is not a key */
    set_str(f->db, "a", "1");
    set_str(f->db, "b", "2");
    set_str(f->db, "c", "3");
    assert_int_equal(stats_of(f->db).keys, 3);
    set_str(f->db, "a", "overwritten");
    assert_int_equal(stats_of(f->db).keys, 3);
    assert_int_equal(kvs_remove(f->db, "b", 1), 0);
    assert_int_equal(stats_of(f->db).keys, 2);
    assert_int_equal(kvs_remove(f->db, "b", 1), KVS_ENOTFOUND);
    assert_int_equal(stats_of(f->db).keys, 2);
    assert_int_equal(stats_of(f->db).writes, 5);
    assert_int_equal(kvs_compact(f->db), 0);
    assert_int_equal(stats_of(f->db).disk_bytes, tu_file_size(tu_path(f->dir, "data.mdb")));
    check_twice(f, check_stats);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_stored_value, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_overwrite_value, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_get_missing_key, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_remove_key, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_remove_missing_key, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_binary_keys_and_values, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_empty_key_and_value, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_long_keys, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_hash_collision_refused, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_format_version_checked, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_16mib_value, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_sync_never, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_everysec, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_always, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_never, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_everysec, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_always, setup, teardown),
        cmocka_unit_test_setup_teardown(test_everysec_close_is_prompt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owns_dir_without_engine_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_share_a_handle, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_stats_follow_writes, setup_open, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
