/*
 * db.c — the engines of db.h: libkvs's (its registry: "kvs", "lmdb") and, when built with it,
 * RocksDB.
 *
 * The adapters add nothing to an operation but what the engine's API asks for. Reads, as
 * db_bench's --pin_slice: pinned (the default) is kvs_read with a callback that only takes the
 * length, and rocksdb_get_pinned (db_bench's PinnableSlice); unpinned is kvs_get and rocksdb_get,
 * each handing back a malloc'ed copy that is freed at once.
 */
#include "bench/db.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/engine.h"
#include "kvs.h"

#ifdef KVS_BENCH_ROCKSDB
#include <rocksdb/c.h>
#ifndef KVS_BENCH_ROCKSDB_VERSION
#define KVS_BENCH_ROCKSDB_VERSION "unknown version"
#endif
#define RDB_WRITE_BUFFER (64u << 20)
#define RDB_BLOCK_CACHE (32u << 20)
#endif

enum { KB_LIBKVS, KB_ROCKSDB };

struct kb_db {
    int kind;
    int pin;
    kvs_t *kvs;
#ifdef KVS_BENCH_ROCKSDB
    rocksdb_t *rdb;
    rocksdb_options_t *opts;
    rocksdb_block_based_table_options_t *table;
    rocksdb_cache_t *cache;
    rocksdb_writeoptions_t *wopts;
    rocksdb_readoptions_t *ropts;
#endif
};

struct kb_iter {
#ifdef KVS_BENCH_ROCKSDB
    rocksdb_iterator_t *it;
#endif
    int started; /* the iterator steps at the start of each call but the first, so that the key
                    handed out stays valid until the next call */
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

static int kvs_fail(const char *what, int rc)
{
    const char *detail = kvs_last_error();
    return fail("%s: %s%s%s", what, kvs_strerror(rc), *detail ? ": " : "", detail);
}

int kb_engine_available(const char *name)
{
    if (kvs_engine_find(name))
        return 1;
    if (strcmp(name, "rocksdb") == 0) {
#ifdef KVS_BENCH_ROCKSDB
        return 1;
#else
        return -1;
#endif
    }
    return 0;
}

const char *kb_engine_version(const char *name)
{
    static char buf[128];
    const kvs_engine_ops *e = kvs_engine_find(name);

    if (e && e->version) {
        snprintf(buf, sizeof buf, "libkvs %s (%s)", KVS_VERSION_STRING, e->version());
        return buf;
    }
#ifdef KVS_BENCH_ROCKSDB
    if (strcmp(name, "rocksdb") == 0)
        return "RocksDB " KVS_BENCH_ROCKSDB_VERSION;
#endif
    return "libkvs " KVS_VERSION_STRING;
}

/* Does dir hold a store of the engine already? libkvs writes ENGINE, RocksDB CURRENT. */
static int has_file(const char *dir, const char *name)
{
    char path[PATH_MAX];
    struct stat st;

    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return 0;
    return stat(path, &st) == 0;
}

static int libkvs_open(kb_db *db, const char *engine, const char *dir, int sync)
{
    kvs_options opt;
    int rc;

    kvs_options_init(&opt);
    opt.engine = engine;
    opt.sync = sync ? KVS_SYNC_ALWAYS : KVS_SYNC_NEVER;
    if ((rc = kvs_create(&db->kvs)) < 0 || (rc = kvs_configure(db->kvs, &opt)) < 0 ||
        (rc = kvs_open(db->kvs, dir)) < 0)
        return kvs_fail("open", rc);
    return 0;
}

#ifdef KVS_BENCH_ROCKSDB
static int rdb_error(const char *what, char *err)
{
    fail("%s: %s", what, err);
    rocksdb_free(err);
    return -1;
}

static int rdb_open(kb_db *db, const char *dir, int sync, int must_exist)
{
    char *err = NULL;

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
#endif

int kb_db_open(kb_db **out, const char *engine, const char *dir, int sync, int must_exist,
               int pin)
{
    kb_db *db = calloc(1, sizeof *db);
    int rc;

    *out = NULL;
    if (!db)
        return fail("out of memory");
    db->pin = pin;
    if (strcmp(engine, "rocksdb") == 0) {
        db->kind = KB_ROCKSDB;
#ifdef KVS_BENCH_ROCKSDB
        rc = rdb_open(db, dir, sync, must_exist);
#else
        rc = fail("not built with RocksDB");
#endif
    } else if (must_exist && !has_file(dir, "ENGINE")) {
        db->kind = KB_LIBKVS;
        rc = fail("open: %s holds no store (--use_existing_db 1)", dir);
    } else {
        db->kind = KB_LIBKVS;
        rc = libkvs_open(db, engine, dir, sync);
    }
    if (rc < 0) {
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
    int rc = 0;

    if (!db)
        return 0;
    if (db->kind == KB_LIBKVS) {
        if (db->kvs && (rc = kvs_close(db->kvs)) < 0)
            rc = kvs_fail("close", rc);
    }
#ifdef KVS_BENCH_ROCKSDB
    if (db->kind == KB_ROCKSDB) {
        if (db->rdb)
            rocksdb_close(db->rdb);
        if (db->ropts)
            rocksdb_readoptions_destroy(db->ropts);
        if (db->wopts)
            rocksdb_writeoptions_destroy(db->wopts);
        if (db->opts)
            rocksdb_options_destroy(db->opts);
        if (db->table)
            rocksdb_block_based_options_destroy(db->table);
        if (db->cache)
            rocksdb_cache_destroy(db->cache);
    }
#endif
    free(db);
    return rc;
}

int kb_db_put(kb_db *db, const char *key, size_t klen, const char *val, size_t vlen)
{
#ifdef KVS_BENCH_ROCKSDB
    if (db->kind == KB_ROCKSDB) {
        char *err = NULL;
        rocksdb_put(db->rdb, db->wopts, key, klen, val, vlen, &err);
        return err ? rdb_error("put", err) : 0;
    }
#endif
    int rc = kvs_set(db->kvs, key, klen, val, vlen);
    return rc < 0 ? kvs_fail("put", rc) : 0;
}

#ifdef KVS_BENCH_ROCKSDB
static int rdb_get(kb_db *db, const char *key, size_t klen, size_t *vlen)
{
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
#endif

static int take_len(void *ctx, const void *val, size_t vlen)
{
    (void)val;
    *(size_t *)ctx = vlen;
    return 0;
}

int kb_db_get(kb_db *db, const char *key, size_t klen, size_t *vlen)
{
    void *val = NULL;
    int rc;

    *vlen = 0;
#ifdef KVS_BENCH_ROCKSDB
    if (db->kind == KB_ROCKSDB)
        return rdb_get(db, key, klen, vlen);
#endif
    if (db->pin)
        rc = kvs_read(db->kvs, key, klen, take_len, vlen);
    else
        rc = kvs_get(db->kvs, key, klen, &val, vlen);
    if (rc == KVS_ENOTFOUND)
        return 0;
    if (rc < 0)
        return kvs_fail("get", rc);
    kvs_free(val);
    return 1;
}

int kb_db_delete(kb_db *db, const char *key, size_t klen)
{
#ifdef KVS_BENCH_ROCKSDB
    if (db->kind == KB_ROCKSDB) {
        char *err = NULL;
        rocksdb_delete(db->rdb, db->wopts, key, klen, &err);
        return err ? rdb_error("delete", err) : 2;
    }
#endif
    int rc = kvs_remove(db->kvs, key, klen);
    if (rc == KVS_ENOTFOUND)
        return 0;
    return rc < 0 ? kvs_fail("delete", rc) : 1;
}

kb_iter *kb_iter_new(kb_db *db, const char *start, size_t slen, int *rc)
{
    *rc = 0;
#ifdef KVS_BENCH_ROCKSDB
    if (db->kind == KB_ROCKSDB) {
        kb_iter *it = calloc(1, sizeof *it);
        if (!it) {
            *rc = fail("out of memory");
            return NULL;
        }
        it->it = rocksdb_create_iterator(db->rdb, db->ropts);
        rocksdb_iter_seek(it->it, start, slen);
        return it;
    }
#endif
    return NULL;
}

int kb_iter_next(kb_iter *it, const char **key, size_t *klen, size_t *vlen)
{
#ifdef KVS_BENCH_ROCKSDB
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
#else
    (void)it;
    *key = NULL;
    *klen = *vlen = 0;
    return 0;
#endif
}

void kb_iter_free(kb_iter *it)
{
    if (!it)
        return;
#ifdef KVS_BENCH_ROCKSDB
    rocksdb_iter_destroy(it->it);
#endif
    free(it);
}
