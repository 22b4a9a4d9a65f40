/*
 * db.c — the engines of db.h: libkvs's (its registry), LMDB on its own API, and, when built with
 * it, RocksDB.
 *
 * One table, adapters[], says what each engine is: its name, whether this build has it, what it
 * can do (KB_*), the files that mark its store in a directory, and its functions. The native
 * adapters (lmdb, rocksdb) are found by name; every other name goes to libkvs's registry
 * (kvs_engine_find) through libkvs_engine, the one place that maps "kvs-lmdb" to libkvs's "lmdb":
 * a native adapter's name belongs to the peer at its best, and libkvs's engine of the same name
 * answers to "kvs-" in front of it.
 *
 * The adapters add nothing to an operation but what the engine's API asks for. Reads, as
 * db_bench's --pin_slice: pinned (the default) is kvs_read with a callback that only takes the
 * length, rocksdb_get_pinned (db_bench's PinnableSlice) and mdb_get's MDB_val where it lies in
 * LMDB's map; unpinned is kvs_get and rocksdb_get, each handing back a malloc'ed copy that is
 * freed at once, and for LMDB the same copy made here (take_value).
 *
 * LMDB. The environment is the directory (data.mdb, lock.mdb) with one unnamed database; keys and
 * values are stored as they are. It is opened with MDB_NOTLS, which ties a reader slot to a
 * transaction instead of to a thread: a session begins its read transaction once, at
 * kb_session_open, and keeps it (and its slot) for its life, renewing it before each read and
 * resetting it after, as lmdb.h advises for frequent readers. A read is then renew, mdb_get,
 * reset: no lock and no write but to the session's own slot, where libkvs's engine begins and
 * aborts a transaction per read and takes the reader table's mutex for each. Each put or delete
 * is one write transaction, committed: kvs-bench has no batches, so every engine does one write
 * per operation. The map reserves LMDB_MAP of address space, so that no benchmark meets
 * MDB_MAP_FULL; with MDB_WRITEMAP, LMDB sets data.mdb's size to the map's, a sparse file whose
 * written pages alone take space.
 */
#include "bench/db.h"

#include <limits.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench/bench.h"
#include "engine/engine.h"
#include "kvs.h"
#include "util/invariant.h"

#ifdef KVS_BENCH_ROCKSDB
#include <rocksdb/c.h>
#ifndef KVS_BENCH_ROCKSDB_VERSION
#define KVS_BENCH_ROCKSDB_VERSION "unknown version"
#endif
#define RDB_WRITE_BUFFER (64u << 20)
#define RDB_BLOCK_CACHE (32u << 20)
#endif

#if SIZE_MAX > 0xffffffffu
#define LMDB_MAP ((size_t)1 << 40)
#else
#define LMDB_MAP ((size_t)1 << 30)
#endif
/* --sync 0. With MDB_NOSYNC alone a commit pwrites its pages; through the writable map it only
 * dirties them: fillrandom of 1M keys ran 3.6× as fast (median of 5 interleaved rounds, 1.9–7×
 * per round). MDB_NORDAHEAD is left out: with the store in the page cache it changed readrandom
 * by nothing measurable (1.02× and 1.03× at 1 and 2 threads, rounds 0.7–1.9×). MDB_NOTLS is
 * always on. */
#define LMDB_FAST (MDB_NOSYNC | MDB_WRITEMAP | MDB_MAPASYNC)

typedef struct adapter adapter;

struct kb_db {
    const adapter *ad;
    int pin;
    int sessions; /* atomic: open sessions, none at close */
    kvs_t *kvs;
    MDB_env *env;
    MDB_dbi dbi;
#ifdef KVS_BENCH_ROCKSDB
    rocksdb_t *rdb;
    rocksdb_options_t *opts;
    rocksdb_block_based_table_options_t *table;
    rocksdb_cache_t *cache;
    rocksdb_writeoptions_t *wopts;
    rocksdb_readoptions_t *ropts;
#endif
};

struct kb_session {
    kb_db *db;
    MDB_txn *rtxn; /* lmdb: this session's read transaction, reset between reads */
};

struct kb_iter {
    kb_session *s;
    int started; /* the iterator steps at the start of each call but the first, so that the key
                    handed out stays valid until the next call */
    MDB_cursor *cur;
    MDB_val k, v;
    int first; /* lmdb: what positioning the cursor gave (0 or MDB_NOTFOUND) */
#ifdef KVS_BENCH_ROCKSDB
    rocksdb_iterator_t *it;
#endif
};

struct adapter {
    const char *name; /* NULL: libkvs, under every name libkvs_engine maps */
    int built;
    unsigned caps;         /* KB_* */
    const char *marks[2];  /* files of its store in a directory: [0] a complete one, [1] a start */
    const char *(*version)(const char *name);
    int (*open)(kb_db *db, const char *engine, const char *dir, int sync, int must_exist);
    int (*close)(kb_db *db); /* also after a failed open */
    int (*session_open)(kb_session *s);  /* optional */
    void (*session_close)(kb_session *s); /* optional */
    int (*put)(kb_session *s, const char *key, size_t klen, const char *val, size_t vlen);
    int (*get)(kb_session *s, const char *key, size_t klen, size_t *vlen);
    int (*del)(kb_session *s, const char *key, size_t klen);
    int (*iter_new)(kb_iter *it, const char *start, size_t slen); /* NULL: none (see caps) */
    int (*iter_next)(kb_iter *it, const char **key, size_t *klen, size_t *vlen);
    void (*iter_free)(kb_iter *it);
};

static _Thread_local char errbuf[512];

const char *kb_db_error(void)
{
    return errbuf;
}

static int fail(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    return -1;
}

/* Hand a value the engine holds to the benchmark: its length, and with pin 0 a copy of its own,
 * malloc'ed and freed as kvs_get's caller does. Returns 1 (found) or < 0. */
static int take_value(const kb_db *db, const void *val, size_t len, size_t *vlen)
{
    *vlen = len;
    if (!db->pin) {
        void *copy = malloc(len ? len : 1);
        if (!copy)
            return fail("out of memory");
        memcpy(copy, val, len);
        __asm__ volatile("" : : "r"(copy) : "memory"); /* the copy is made, not optimised out */
        free(copy);
    }
    return 1;
}

/* ---- libkvs ---- */

static const adapter *native_find(const char *name);

/* The libkvs engine a kvs-bench name stands for, or NULL. */
static const kvs_engine_ops *libkvs_engine(const char *name)
{
    if (native_find(name))
        return NULL;
    if (strncmp(name, "kvs-", 4) == 0 && native_find(name + 4))
        name += 4;
    return kvs_engine_find(name);
}

static int kvs_fail(const char *what, int rc)
{
    const char *detail = kvs_last_error();
    return fail("%s: %s%s%s", what, kvs_strerror(rc), *detail ? ": " : "", detail);
}

static const char *libkvs_version(const char *name)
{
    static char buf[128];
    const kvs_engine_ops *e = libkvs_engine(name);

    if (!e->version)
        return "libkvs " KVS_VERSION_STRING;
    snprintf(buf, sizeof buf, "libkvs %s (%s)", KVS_VERSION_STRING, e->version());
    return buf;
}

static int libkvs_open(kb_db *db, const char *engine, const char *dir, int sync, int must_exist)
{
    kvs_options opt;
    int rc;

    (void)must_exist; /* kvs_open creates what is not there; kb_db_open checked the mark */
    kvs_options_init(&opt);
    opt.engine = libkvs_engine(engine)->name;
    opt.sync = sync ? KVS_SYNC_ALWAYS : KVS_SYNC_NEVER;
    if ((rc = kvs_create(&db->kvs)) < 0 || (rc = kvs_configure(db->kvs, &opt)) < 0 ||
        (rc = kvs_open(db->kvs, dir)) < 0)
        return kvs_fail("open", rc);
    return 0;
}

static int libkvs_close(kb_db *db)
{
    int rc = db->kvs ? kvs_close(db->kvs) : 0;
    return rc < 0 ? kvs_fail("close", rc) : 0;
}

static int libkvs_put(kb_session *s, const char *key, size_t klen, const char *val, size_t vlen)
{
    int rc = kvs_set(s->db->kvs, key, klen, val, vlen);
    return rc < 0 ? kvs_fail("put", rc) : 0;
}

static int take_len(void *ctx, const void *val, size_t vlen)
{
    (void)val;
    *(size_t *)ctx = vlen;
    return 0;
}

static int libkvs_get(kb_session *s, const char *key, size_t klen, size_t *vlen)
{
    void *val = NULL;
    int rc;

    if (s->db->pin)
        rc = kvs_read(s->db->kvs, key, klen, take_len, vlen);
    else
        rc = kvs_get(s->db->kvs, key, klen, &val, vlen);
    if (rc == KVS_ENOTFOUND)
        return 0;
    if (rc < 0)
        return kvs_fail("get", rc);
    kvs_free(val);
    return 1;
}

static int libkvs_delete(kb_session *s, const char *key, size_t klen)
{
    int rc = kvs_remove(s->db->kvs, key, klen);
    if (rc == KVS_ENOTFOUND)
        return 0;
    return rc < 0 ? kvs_fail("delete", rc) : 1;
}

/* ---- LMDB ---- */

static int lmdb_fail(const char *what, int rc)
{
    return fail("%s: %s", what, mdb_strerror(rc));
}

static const char *lmdb_version(const char *name)
{
    static char buf[64];
    int major, minor, patch;

    (void)name;
    mdb_version(&major, &minor, &patch);
    snprintf(buf, sizeof buf, "LMDB %d.%d.%d", major, minor, patch);
    return buf;
}

static int lmdb_open(kb_db *db, const char *engine, const char *dir, int sync, int must_exist)
{
    unsigned flags = MDB_NOTLS | (sync ? 0u : (unsigned)LMDB_FAST);
    MDB_txn *txn;
    int rc;

    (void)engine;
    (void)must_exist; /* kb_db_open checked data.mdb */
    if ((rc = mdb_env_create(&db->env)) != 0) {
        db->env = NULL;
        return lmdb_fail("create environment", rc);
    }
    if ((rc = mdb_env_set_mapsize(db->env, LMDB_MAP)) != 0 ||
        (rc = mdb_env_set_maxreaders(db->env, KB_MAX_THREADS + 1)) != 0 ||
        (rc = mdb_env_open(db->env, dir, flags, 0644)) != 0) {
        mdb_env_close(db->env); /* what a failed mdb_env_open asks for; nothing to sync */
        db->env = NULL;
        return lmdb_fail("open", rc);
    }
    if ((rc = mdb_txn_begin(db->env, NULL, 0, &txn)) != 0)
        return lmdb_fail("begin write transaction", rc);
    if ((rc = mdb_dbi_open(txn, NULL, 0, &db->dbi)) != 0) {
        mdb_txn_abort(txn);
        return lmdb_fail("open database", rc);
    }
    rc = mdb_txn_commit(txn);
    return rc ? lmdb_fail("commit", rc) : 0;
}

/* Durable on close in every mode: with MDB_NOSYNC nothing else syncs the map. */
static int lmdb_close(kb_db *db)
{
    int rc;

    if (!db->env)
        return 0;
    if ((rc = mdb_env_sync(db->env, 1)) != 0)
        rc = lmdb_fail("sync", rc);
    mdb_env_close(db->env);
    return rc;
}

/* Take a reader slot for the session's life; the transaction is reset at once, so that it holds
 * no snapshot between reads. */
static int lmdb_session_open(kb_session *s)
{
    int rc = mdb_txn_begin(s->db->env, NULL, MDB_RDONLY, &s->rtxn);

    if (rc != 0) {
        s->rtxn = NULL;
        return lmdb_fail("begin read transaction", rc);
    }
    mdb_txn_reset(s->rtxn);
    return 0;
}

static void lmdb_session_close(kb_session *s)
{
    mdb_txn_abort(s->rtxn); /* frees the reader slot */
}

/* One write transaction: a put of v, or with v NULL a delete. LMDB's return code. */
static int lmdb_write(kb_db *db, MDB_val *k, MDB_val *v)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(db->env, NULL, 0, &txn);

    if (rc != 0)
        return rc;
    rc = v ? mdb_put(txn, db->dbi, k, v, 0) : mdb_del(txn, db->dbi, k, NULL);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    return mdb_txn_commit(txn);
}

static int lmdb_put(kb_session *s, const char *key, size_t klen, const char *val, size_t vlen)
{
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    int rc = lmdb_write(s->db, &k, &v);
    return rc ? lmdb_fail("put", rc) : 0;
}

static int lmdb_delete(kb_session *s, const char *key, size_t klen)
{
    MDB_val k = {klen, (void *)key};
    int rc = lmdb_write(s->db, &k, NULL);
    if (rc == MDB_NOTFOUND)
        return 0;
    return rc ? lmdb_fail("delete", rc) : 1;
}

static int lmdb_get(kb_session *s, const char *key, size_t klen, size_t *vlen)
{
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_txn_renew(s->rtxn);

    if (rc != 0)
        return lmdb_fail("renew read transaction", rc);
    rc = mdb_get(s->rtxn, s->db->dbi, &k, &v);
    if (rc == 0)
        rc = take_value(s->db, v.mv_data, v.mv_size, vlen); /* before the reset unmaps it */
    else
        rc = rc == MDB_NOTFOUND ? 0 : lmdb_fail("get", rc);
    mdb_txn_reset(s->rtxn);
    return rc;
}

/* A cursor in the session's read transaction, renewed until lmdb_iter_free. */
static int lmdb_iter_new(kb_iter *it, const char *start, size_t slen)
{
    kb_session *s = it->s;
    int rc;

    if ((rc = mdb_txn_renew(s->rtxn)) != 0)
        return lmdb_fail("renew read transaction", rc);
    if ((rc = mdb_cursor_open(s->rtxn, s->db->dbi, &it->cur)) != 0) {
        it->cur = NULL;
        return lmdb_fail("open cursor", rc);
    }
    it->k = (MDB_val){slen, (void *)start};
    it->first = mdb_cursor_get(it->cur, &it->k, &it->v, MDB_SET_RANGE);
    if (it->first != 0 && it->first != MDB_NOTFOUND)
        return lmdb_fail("position cursor", it->first);
    return 0;
}

static int lmdb_iter_next(kb_iter *it, const char **key, size_t *klen, size_t *vlen)
{
    int rc = it->first;

    if (rc == 0 && it->started)
        rc = mdb_cursor_get(it->cur, &it->k, &it->v, MDB_NEXT);
    it->started = 1;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return lmdb_fail("cursor", rc);
    *key = it->k.mv_data;
    *klen = it->k.mv_size;
    *vlen = it->v.mv_size;
    return 1;
}

static void lmdb_iter_free(kb_iter *it)
{
    if (it->cur)
        mdb_cursor_close(it->cur);
    mdb_txn_reset(it->s->rtxn); /* harmless if the renew failed */
}

/* ---- RocksDB ---- */

#ifdef KVS_BENCH_ROCKSDB
static int rdb_error(const char *what, char *err)
{
    fail("%s: %s", what, err);
    rocksdb_free(err);
    return -1;
}

static const char *rdb_version(const char *name)
{
    (void)name;
    return "RocksDB " KVS_BENCH_ROCKSDB_VERSION;
}

static int rdb_open(kb_db *db, const char *engine, const char *dir, int sync, int must_exist)
{
    char *err = NULL;

    (void)engine;
    db->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(db->opts, !must_exist);
    rocksdb_options_set_write_buffer_size(db->opts, RDB_WRITE_BUFFER);
    db->cache = rocksdb_cache_create_lru(RDB_BLOCK_CACHE);
    db->table = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(db->table, db->cache);
    rocksdb_options_set_block_based_table_factory(db->opts, db->table);
    db->wopts = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(db->wopts, (unsigned char)(sync != 0));
    db->ropts = rocksdb_readoptions_create();
    db->rdb = rocksdb_open(db->opts, dir, &err);
    if (err)
        return rdb_error("open", err);
    return 0;
}

/* rdb_open made everything but rdb before it could fail. */
static int rdb_close(kb_db *db)
{
    if (db->rdb)
        rocksdb_close(db->rdb);
    rocksdb_readoptions_destroy(db->ropts);
    rocksdb_writeoptions_destroy(db->wopts);
    rocksdb_options_destroy(db->opts);
    rocksdb_block_based_options_destroy(db->table);
    rocksdb_cache_destroy(db->cache);
    return 0;
}

static int rdb_put(kb_session *s, const char *key, size_t klen, const char *val, size_t vlen)
{
    char *err = NULL;
    rocksdb_put(s->db->rdb, s->db->wopts, key, klen, val, vlen, &err);
    return err ? rdb_error("put", err) : 0;
}

static int rdb_get(kb_session *s, const char *key, size_t klen, size_t *vlen)
{
    kb_db *db = s->db;
    char *err = NULL;

    if (db->pin) {
        rocksdb_pinnableslice_t *v = rocksdb_get_pinned(db->rdb, db->ropts, key, klen, &err);
        if (err)
            return rdb_error("get", err);
        if (!v)
            return 0;
        rocksdb_pinnableslice_value(v, vlen);
        rocksdb_pinnableslice_destroy(v);
        return 1;
    }
    char *v = rocksdb_get(db->rdb, db->ropts, key, klen, vlen, &err);
    if (err)
        return rdb_error("get", err);
    rocksdb_free(v);
    return v != NULL;
}

static int rdb_delete(kb_session *s, const char *key, size_t klen)
{
    char *err = NULL;
    rocksdb_delete(s->db->rdb, s->db->wopts, key, klen, &err);
    return err ? rdb_error("delete", err) : 2;
}

static int rdb_iter_new(kb_iter *it, const char *start, size_t slen)
{
    it->it = rocksdb_create_iterator(it->s->db->rdb, it->s->db->ropts);
    rocksdb_iter_seek(it->it, start, slen);
    return 0;
}

static int rdb_iter_next(kb_iter *it, const char **key, size_t *klen, size_t *vlen)
{
    if (it->started)
        rocksdb_iter_next(it->it);
    it->started = 1;
    if (!rocksdb_iter_valid(it->it)) {
        char *err = NULL;
        rocksdb_iter_get_error(it->it, &err);
        return err ? rdb_error("iterator", err) : 0;
    }
    *key = rocksdb_iter_key(it->it, klen);
    rocksdb_iter_value(it->it, vlen);
    return 1;
}

static void rdb_iter_free(kb_iter *it)
{
    if (it->it)
        rocksdb_iter_destroy(it->it);
}
#endif

/* ---- the table, and the calls of db.h through it ---- */

static const adapter adapters[] = {
    {.name = "lmdb", .built = 1, .caps = KB_ITERATES | KB_DELETE_TELLS,
     .marks = {"data.mdb", "lock.mdb"}, .version = lmdb_version, .open = lmdb_open,
     .close = lmdb_close, .session_open = lmdb_session_open,
     .session_close = lmdb_session_close, .put = lmdb_put, .get = lmdb_get, .del = lmdb_delete,
     .iter_new = lmdb_iter_new, .iter_next = lmdb_iter_next, .iter_free = lmdb_iter_free},
    {.name = "rocksdb", .caps = KB_ITERATES, .marks = {"CURRENT", "LOCK"},
#ifdef KVS_BENCH_ROCKSDB
     .built = 1, .version = rdb_version, .open = rdb_open, .close = rdb_close, .put = rdb_put,
     .get = rdb_get, .del = rdb_delete, .iter_new = rdb_iter_new, .iter_next = rdb_iter_next,
     .iter_free = rdb_iter_free,
#endif
    },
    /* last: libkvs, under every name libkvs_engine maps */
    {.name = NULL, .built = 1, .caps = KB_DELETE_TELLS, .marks = {"ENGINE", NULL},
     .version = libkvs_version, .open = libkvs_open, .close = libkvs_close, .put = libkvs_put,
     .get = libkvs_get, .del = libkvs_delete},
};
#define NADAPTERS (sizeof adapters / sizeof adapters[0])
#define LIBKVS (&adapters[NADAPTERS - 1])

static const adapter *native_find(const char *name)
{
    for (size_t i = 0; i < NADAPTERS; i++)
        if (adapters[i].name && strcmp(adapters[i].name, name) == 0)
            return &adapters[i];
    return NULL;
}

/* The adapter serving a kvs-bench engine name, or NULL if there is none. */
static const adapter *adapter_for(const char *name)
{
    const adapter *a = native_find(name);

    if (a || !libkvs_engine(name))
        return a;
    return LIBKVS;
}

int kb_engine_available(const char *name)
{
    const adapter *a = adapter_for(name);
    return !a ? 0 : a->built ? 1 : -1;
}

const char *kb_engine_version(const char *name)
{
    const adapter *a = adapter_for(name);
    return a && a->built ? a->version(name) : "not in this build";
}

unsigned kb_engine_caps(const char *name)
{
    const adapter *a = adapter_for(name);
    return a ? a->caps : 0;
}

static int has_file(const char *dir, const char *name)
{
    char path[PATH_MAX];
    struct stat st;

    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return 0;
    return stat(path, &st) == 0;
}

int kb_dir_holds_store(const char *dir)
{
    for (size_t i = 0; i < NADAPTERS; i++)
        for (size_t m = 0; m < 2; m++)
            if (adapters[i].marks[m] && has_file(dir, adapters[i].marks[m]))
                return 1;
    return 0;
}

int kb_db_open(kb_db **out, const char *engine, const char *dir, int sync, int must_exist,
               int pin)
{
    const adapter *a = adapter_for(engine);
    kb_db *db;
    int rc;

    *out = NULL;
    if (!a || !a->built)
        return fail("%s: no such engine in this build", engine);
    if (must_exist && !has_file(dir, a->marks[0]))
        return fail("open: %s holds no %s store (--use_existing_db 1)", dir, engine);
    if (!(db = calloc(1, sizeof *db)))
        return fail("out of memory");
    db->ad = a;
    db->pin = pin;
    if ((rc = a->open(db, engine, dir, sync, must_exist)) < 0) {
        char keep[sizeof errbuf];
        memcpy(keep, errbuf, sizeof keep);
        kb_db_close(db);
        memcpy(errbuf, keep, sizeof keep);
        return rc;
    }
    *out = db;
    return 0;
}

int kb_db_close(kb_db *db)
{
    int rc;

    if (!db)
        return 0;
    KVS_ASSERT(__atomic_load_n(&db->sessions, __ATOMIC_RELAXED) == 0);
    rc = db->ad->close(db);
    free(db);
    return rc;
}

int kb_session_open(kb_db *db, kb_session **out)
{
    kb_session *s = calloc(1, sizeof *s);
    int rc;

    *out = NULL;
    if (!s)
        return fail("out of memory");
    s->db = db;
    if (db->ad->session_open && (rc = db->ad->session_open(s)) < 0) {
        free(s);
        return rc;
    }
    __atomic_add_fetch(&db->sessions, 1, __ATOMIC_RELAXED);
    *out = s;
    return 0;
}

void kb_session_close(kb_session *s)
{
    if (!s)
        return;
    if (s->db->ad->session_close)
        s->db->ad->session_close(s);
    __atomic_sub_fetch(&s->db->sessions, 1, __ATOMIC_RELAXED);
    free(s);
}

int kb_put(kb_session *s, const char *key, size_t klen, const char *val, size_t vlen)
{
    return s->db->ad->put(s, key, klen, val, vlen);
}

int kb_get(kb_session *s, const char *key, size_t klen, size_t *vlen)
{
    *vlen = 0;
    return s->db->ad->get(s, key, klen, vlen);
}

int kb_delete(kb_session *s, const char *key, size_t klen)
{
    return s->db->ad->del(s, key, klen);
}

kb_iter *kb_iter_new(kb_session *s, const char *start, size_t slen, int *rc)
{
    kb_iter *it;

    *rc = 0;
    if (!s->db->ad->iter_new)
        return NULL;
    if (!(it = calloc(1, sizeof *it))) {
        *rc = fail("out of memory");
        return NULL;
    }
    it->s = s;
    if ((*rc = s->db->ad->iter_new(it, start, slen)) < 0) {
        kb_iter_free(it);
        return NULL;
    }
    return it;
}

int kb_iter_next(kb_iter *it, const char **key, size_t *klen, size_t *vlen)
{
    return it->s->db->ad->iter_next(it, key, klen, vlen);
}

void kb_iter_free(kb_iter *it)
{
    if (!it)
        return;
    it->s->db->ad->iter_free(it);
    free(it);
}
