/*
 * lmdb.c — the "lmdb" engine: the engine interface (engine.h) on one LMDB environment, with the
 * same semantics as the "kvs" engine.
 *
 * The environment lives in the data directory itself (data.mdb, lock.mdb next to the ENGINE
 * file of api.c, which also locks the directory) and holds one unnamed database. Every call is
 * one LMDB transaction: read a read-only one (MDB_NOTLS, so it is tied to no thread and the
 * server may call from any number of them), which hands the value to the caller's callback
 * where it lies in the map; set and remove a write one, which LMDB serialises. The map is
 * reserved large (1 TiB of address space; data.mdb grows only as pages are written) so that
 * MDB_MAP_FULL is not a limit anyone meets; where the address space is short, smaller maps are
 * tried.
 *
 * Durability: LMDB writes through pwrite into the page cache at commit, so a write that returned
 * 0 survives the process being killed in every mode. KVS_SYNC_ALWAYS is LMDB's default (data and
 * meta page synced at each commit); KVS_SYNC_EVERYSEC opens with MDB_NOSYNC and a background
 * thread (util/syncer.h) calls mdb_env_sync once a second if anything was written;
 * KVS_SYNC_NEVER opens with MDB_NOSYNC | MDB_NOMETASYNC. close always syncs.
 *
 * A failed sync (kvs.h, "Durability"). With MDB_NOSYNC (everysec, never) commits only write
 * pages into the page cache, and mdb_env_sync makes them durable together; when it fails, the
 * kernel may have dropped some of those pages while calling them clean, and a later sync that
 * succeeds could write a meta page naming pages that never reached the disk — a store that no
 * longer opens. So a failed mdb_env_sync fences the engine (lm_fence): writes fail with
 * KVS_ESYNC, reads go on, nothing is synced again (close neither), and the next open recovers
 * from the last meta page that was synced. With KVS_SYNC_ALWAYS LMDB keeps the rule itself:
 * a commit syncs its data pages before it writes the meta page (with O_DSYNC), so a failed sync
 * aborts that transaction alone — LMDB never rewrites a committed page, and the next commit
 * writes and syncs its own — and a failed meta page write sets MDB_FATAL_ERROR, after which
 * every transaction, reads too, fails with MDB_PANIC (KVS_EIO) until the store is reopened.
 *
 * Keys. LMDB keys are at most mdb_env_get_maxkeysize() bytes (511 in Debian's build) and must not
 * be empty; kvs keys are 0 .. 64 KiB. So every stored key begins with a tag byte:
 *
 *   LMDB key, tag 0x00 — a key of at most inline_max bytes, stored as itself
 *     offset  size   field
 *     0       1      tag 0x00
 *     1       klen   the key
 *
 *   LMDB key, tag 0x01 — a longer key, stored by its hash
 *     0       1      tag 0x01
 *     1       16     XXH3-128 of the key, canonical (big-endian) form
 *
 *   LMDB value under a tag-0x01 key — the full key first, so that get can verify it
 *     0       4      klen, u32 little-endian
 *     4       klen   the key
 *     4+klen  vlen   the value
 *
 *   LMDB key, tag 0x02 — the format record, one per store, written when the store is created
 *     0       1      tag 0x02 (the whole key)
 *   and its value
 *     0       4      magic "KVSL"
 *     4       4      format version, u32 little-endian (1)
 *     8       4      inline_max, u32 little-endian
 *
 * Under a tag-0x00 key the value is stored as itself. inline_max is min(maxkeysize - 1, 510),
 * fixed when the store is created and read back from the format record ever after, so the
 * encoding never depends on how the LMDB library at hand was built; a build whose keys are too
 * short for the recorded inline_max is refused (KVS_EVERSION). A tag-0x01 entry whose stored key
 * differs from the key asked for is a hash collision (or damage): read, set and remove refuse it
 * with KVS_ECORRUPT and never serve or overwrite another key's value.
 */
#include <errno.h>
#include <limits.h>
#include <lmdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <xxhash.h>

#include "engine/engine.h"
#include "util/err.h"
#include "util/fence.h"
#include "util/io.h"
#include "util/log.h"
#include "util/syncer.h"

#define LM_DATA_FILE "data.mdb"
#define LM_MAXREADERS 1024
#define LM_INLINE_CAP 510u /* inline keys never exceed this, so lm_key fits on the stack */
#define LM_HASH_LEN 16
#define LM_KLEN_LEN 4      /* the u32 key length before a tag-0x01 entry's value */

enum { TAG_INLINE = 0x00, TAG_HASHED = 0x01, TAG_FORMAT = 0x02 };

#define FORMAT_MAGIC "KVSL"
#define FORMAT_VERSION 1u
#define FORMAT_LEN 12

typedef struct lmdb_db {
    MDB_env *env;
    MDB_dbi dbi;
    kvs_sync sync;
    size_t mapsize;
    uint32_t inline_max; /* longest key stored as itself (tag 0x00) */
    char dir[PATH_MAX];

    syncer syncer; /* everysec: syncs once a second (lm_sync_tick) */

    /* figures (atomics) */
    uint64_t writes, syncs;
    uint64_t synced_writes; /* writes as they were when the last sync started */

    kvs_fence fence; /* up once a sync failed (lm_fence) */
} lmdb_db;

/* A key as LMDB sees it: tag and key, or tag and hash. */
typedef struct lm_key {
    unsigned char buf[1 + LM_INLINE_CAP];
    MDB_val v;
    bool hashed;
} lm_key;

/* Map sizes to try, largest first: only address space is reserved, the file grows as written. */
static const size_t map_sizes[] = {
#if SIZE_MAX > 0xffffffffu
    (size_t)1 << 40, (size_t)64 << 30, (size_t)4 << 30,
#endif
    (size_t)1 << 30,
};

/* LMDB reports a short write — what a full filesystem gives — as EIO. Call it what it most
 * likely is when the filesystem has next to nothing left. */
static bool lm_disk_full(const lmdb_db *db)
{
    struct statvfs v;

    return statvfs(db->dir, &v) == 0 && (uint64_t)v.f_bavail * v.f_frsize < (1u << 20);
}

/* An LMDB return code (an MDB_* code or an errno value) as a KVS_E* code with detail. */
static int lm_err(const lmdb_db *db, int rc, const char *what)
{
    if (rc == EIO && lm_disk_full(db))
        return kvs_seterr(KVS_ENOSPC, "%s: %s: %s, and the filesystem has less than 1 MiB free",
                          db->dir, what, mdb_strerror(rc));
    switch (rc) {
    case MDB_MAP_FULL:
        return kvs_seterr(KVS_EIO, "%s: %s: the LMDB map of %zu bytes is full", db->dir, what,
                          db->mapsize);
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
        return kvs_seterr(KVS_ECORRUPT, "%s: %s: %s", db->dir, what, mdb_strerror(rc));
    case MDB_VERSION_MISMATCH:
        return kvs_seterr(KVS_EVERSION, "%s: %s: %s", db->dir, what, mdb_strerror(rc));
    default:
        return kvs_seterr(rc > 0 ? kvs_errno(rc) : KVS_EIO, "%s: %s: %s", db->dir, what,
                          mdb_strerror(rc));
    }
}

/* Begin a transaction (flags 0: write, MDB_RDONLY: read); *txn is NULL on failure. */
static int lm_begin(lmdb_db *db, unsigned flags, MDB_txn **txn)
{
    int rc = mdb_txn_begin(db->env, NULL, flags, txn);

    if (rc == 0)
        return 0;
    *txn = NULL;
    return lm_err(db, rc, flags & MDB_RDONLY ? "begin read transaction" : "begin write transaction");
}

static void key_encode(const lmdb_db *db, const void *key, size_t klen, lm_key *k)
{
    if (klen <= db->inline_max) {
        k->buf[0] = TAG_INLINE;
        memcpy(k->buf + 1, key, klen);
        k->v.mv_size = 1 + klen;
        k->hashed = false;
    } else {
        XXH128_canonical_t h;
        XXH128_canonicalFromHash(&h, XXH3_128bits(key, klen));
        k->buf[0] = TAG_HASHED;
        memcpy(k->buf + 1, h.digest, LM_HASH_LEN);
        k->v.mv_size = 1 + LM_HASH_LEN;
        k->hashed = true;
    }
    k->v.mv_data = k->buf;
}

/* The value stored for key (data as LMDB returned it) into *val and *vlen, pointing into
 * data. A tag-0x01 entry must carry exactly key; anything else is refused with KVS_ECORRUPT. */
static int lm_unwrap(const lmdb_db *db, const lm_key *k, const void *key, size_t klen,
                     const MDB_val *data, const unsigned char **val, size_t *vlen)
{
    const unsigned char *p = data->mv_data;
    uint32_t stored;

    if (!k->hashed) {
        *val = p;
        *vlen = data->mv_size;
        return 0;
    }
    if (data->mv_size < LM_KLEN_LEN ||
        (stored = le_get32(p)) > data->mv_size - LM_KLEN_LEN) {
        LOG_ERROR("%s: malformed entry for a key of %zu bytes (%zu bytes stored)", db->dir, klen,
                  data->mv_size);
        return kvs_seterr(KVS_ECORRUPT, "%s: malformed entry for a key of %zu bytes", db->dir,
                          klen);
    }
    if (stored != klen || memcmp(p + LM_KLEN_LEN, key, klen) != 0) {
        LOG_ERROR("%s: a key of %zu bytes shares its XXH3-128 with a stored key of %u bytes",
                  db->dir, klen, stored);
        return kvs_seterr(KVS_ECORRUPT,
                          "%s: hash collision: a key of %zu bytes shares its XXH3-128 with a "
                          "stored key of %u bytes; not served",
                          db->dir, klen, stored);
    }
    *val = p + LM_KLEN_LEN + klen;
    *vlen = data->mv_size - LM_KLEN_LEN - klen;
    return 0;
}

/* Look k up in txn: 0 with *found set, or an error (KVS_ECORRUPT for another key's entry). */
static int lm_lookup(const lmdb_db *db, MDB_txn *txn, lm_key *k, const void *key,
                     size_t klen, bool *found)
{
    MDB_val data;
    const unsigned char *v;
    size_t vlen;
    int rc;

    *found = false;
    rc = mdb_get(txn, db->dbi, &k->v, &data);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return lm_err(db, rc, "get");
    if ((rc = lm_unwrap(db, k, key, klen, &data, &v, &vlen)) < 0)
        return rc;
    *found = true;
    return 0;
}

/* ---- the format record ---- */

/* Read the format record, or write it into a new store; sets db->dbi and db->inline_max. */
static int lm_format(lmdb_db *db)
{
    unsigned char tag = TAG_FORMAT, rec[FORMAT_LEN];
    MDB_val fkey = {1, &tag}, data;
    MDB_txn *txn = NULL;
    MDB_stat ms;
    int maxkey = mdb_env_get_maxkeysize(db->env);
    int rc;

    if ((rc = lm_begin(db, 0, &txn)) < 0)
        goto out;
    if ((rc = mdb_dbi_open(txn, NULL, 0, &db->dbi)) != 0) {
        rc = lm_err(db, rc, "open database");
        goto out;
    }
    rc = mdb_get(txn, db->dbi, &fkey, &data);
    if (rc == 0) {
        const unsigned char *p = data.mv_data;
        if (data.mv_size != FORMAT_LEN || memcmp(p, FORMAT_MAGIC, 4) != 0) {
            rc = kvs_seterr(KVS_ECORRUPT, "%s: the kvs format record is malformed", db->dir);
            goto out;
        }
        if (le_get32(p + 4) != FORMAT_VERSION) {
            rc = kvs_seterr(KVS_EVERSION, "%s: lmdb engine format version %u; this build reads %u",
                            db->dir, le_get32(p + 4), FORMAT_VERSION);
            goto out;
        }
        db->inline_max = le_get32(p + 8);
        if (db->inline_max > LM_INLINE_CAP || (int64_t)db->inline_max + 1 > maxkey) {
            rc = kvs_seterr(KVS_EVERSION,
                            "%s: keys of up to %u bytes are stored inline, but this LMDB build "
                            "takes keys of at most %d bytes",
                            db->dir, db->inline_max + 1, maxkey);
            goto out;
        }
    } else if (rc == MDB_NOTFOUND) {
        if ((rc = mdb_stat(txn, db->dbi, &ms)) != 0) {
            rc = lm_err(db, rc, "stat");
            goto out;
        }
        if (ms.ms_entries != 0) {
            rc = kvs_seterr(KVS_ECORRUPT, "%s: LMDB data without a kvs format record", db->dir);
            goto out;
        }
        db->inline_max = maxkey - 1 < (int)LM_INLINE_CAP ? (uint32_t)(maxkey - 1) : LM_INLINE_CAP;
        memcpy(rec, FORMAT_MAGIC, 4);
        le_put32(rec + 4, FORMAT_VERSION);
        le_put32(rec + 8, db->inline_max);
        data.mv_size = sizeof rec;
        data.mv_data = rec;
        if ((rc = mdb_put(txn, db->dbi, &fkey, &data, 0)) != 0) {
            rc = lm_err(db, rc, "write the format record");
            goto out;
        }
    } else {
        rc = lm_err(db, rc, "read the format record");
        goto out;
    }
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc != 0)
        rc = lm_err(db, rc, "commit");
out:
    if (txn)
        mdb_txn_abort(txn);
    return rc;
}

/* ---- syncing ---- */

/* KVS_ESYNC (detail set) if a sync failed earlier, else 0. */
static int lm_fenced(lmdb_db *db)
{
    return fence_check(&db->fence);
}

/* A sync failed (detail in kvs_last_error): fence, once, and return KVS_ESYNC. */
static int lm_fence(lmdb_db *db)
{
    return fence_raise(&db->fence, db->dir, kvs_last_error());
}

/* mdb_env_sync(force), counted; done by kvs_sync_now, the syncer and close. */
static int lm_sync(lmdb_db *db)
{
    uint64_t w = __atomic_load_n(&db->writes, __ATOMIC_RELAXED);
    int rc;

    if ((rc = lm_fenced(db)) < 0)
        return rc;
    if ((rc = io_test_sync_fails() ? EIO : mdb_env_sync(db->env, 1)) != 0) {
        lm_err(db, rc, "sync");
        return lm_fence(db);
    }
    __atomic_add_fetch(&db->syncs, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&db->synced_writes, w, __ATOMIC_RELAXED);
    return 0;
}

/* everysec: the syncer's tick (util/syncer.h), a sync if anything was written since the last. */
static int lm_sync_tick(void *arg)
{
    lmdb_db *db = arg;

    if (__atomic_load_n(&db->writes, __ATOMIC_RELAXED) ==
        __atomic_load_n(&db->synced_writes, __ATOMIC_RELAXED))
        return 0;
    return lm_sync(db); /* a failure fences the store, and lm_fence logs it */
}

/* ---- open and close ---- */

static void lm_free(lmdb_db *db)
{
    syncer_stop(&db->syncer);
    if (db->env)
        mdb_env_close(db->env);
    free(db);
}

/* Create and open the environment in db->dir with the largest map the address space allows. */
static int lm_env_open(lmdb_db *db, unsigned flags)
{
    int rc = 0;

    for (size_t i = 0; i < sizeof map_sizes / sizeof map_sizes[0]; i++) {
        db->mapsize = map_sizes[i];
        if ((rc = mdb_env_create(&db->env)) != 0) {
            db->env = NULL;
            return lm_err(db, rc, "create environment");
        }
        if ((rc = mdb_env_set_mapsize(db->env, db->mapsize)) != 0 ||
            (rc = mdb_env_set_maxreaders(db->env, LM_MAXREADERS)) != 0 ||
            (rc = mdb_env_open(db->env, db->dir, flags, 0644)) != 0) {
            mdb_env_close(db->env);
            db->env = NULL;
            if (rc == ENOMEM && i + 1 < sizeof map_sizes / sizeof map_sizes[0]) {
                LOG_WARN("%s: cannot map %zu bytes; trying %zu", db->dir, map_sizes[i],
                         map_sizes[i + 1]);
                continue;
            }
            return lm_err(db, rc, "open environment");
        }
        MDB_envinfo info;
        if (mdb_env_info(db->env, &info) == 0) /* LMDB grows the map to fit a larger file */
            db->mapsize = info.me_mapsize;
        return 0;
    }
    return lm_err(db, rc, "open environment");
}

static int lm_open(const char *dir, const kvs_options *opt, void **out)
{
    lmdb_db *db = calloc(1, sizeof *db);
    unsigned flags = MDB_NOTLS;
    int rc;

    *out = NULL;
    if (!db)
        return kvs_seterr(KVS_ENOMEM, "lmdb engine: out of memory");
    db->sync = opt->sync;
    if (snprintf(db->dir, sizeof db->dir, "%s", dir) >= (int)sizeof db->dir) {
        rc = kvs_seterr(KVS_EINVAL, "directory path too long");
        goto fail;
    }
    if (opt->sync == KVS_SYNC_EVERYSEC)
        flags |= MDB_NOSYNC;
    else if (opt->sync == KVS_SYNC_NEVER)
        flags |= MDB_NOSYNC | MDB_NOMETASYNC;
    if ((rc = lm_env_open(db, flags)) < 0 || (rc = lm_format(db)) < 0)
        goto fail;
    if (opt->sync == KVS_SYNC_EVERYSEC &&
        (rc = syncer_start(&db->syncer, "sync", SYNCER_EVERYSEC_MS, lm_sync_tick, db)) < 0)
        goto fail;
    LOG_INFO("opened %s (lmdb, map %zu bytes, keys of up to %u bytes inline)", dir, db->mapsize,
             db->inline_max);
    *out = db;
    return 0;
fail:
    lm_free(db);
    return rc;
}

static int lm_close(void *e)
{
    lmdb_db *db = e;
    int rc;

    syncer_stop(&db->syncer);
    rc = lm_sync(db); /* not after a failed sync: KVS_ESYNC */
    lm_free(db);
    return rc;
}

/* ---- data calls ---- */

/* fn gets the value where LMDB holds it, in the map: valid only during the call, inside the read
 * transaction; nothing is allocated (kvs_get's copy is api.c's). */
static int lm_read(void *e, const void *key, size_t klen, kvs_value_fn fn, void *ctx)
{
    lmdb_db *db = e;
    MDB_txn *txn = NULL;
    MDB_val data;
    lm_key k;
    const unsigned char *p;
    size_t n;
    int rc;

    key_encode(db, key, klen, &k);
    if ((rc = lm_begin(db, MDB_RDONLY, &txn)) < 0)
        goto out;
    if ((rc = mdb_get(txn, db->dbi, &k.v, &data)) != 0) {
        rc = rc == MDB_NOTFOUND ? KVS_ENOTFOUND : lm_err(db, rc, "get");
        goto out;
    }
    if ((rc = lm_unwrap(db, &k, key, klen, &data, &p, &n)) < 0)
        goto out;
    rc = fn(ctx, p, n); /* the value is valid until the transaction ends */
out:
    if (txn)
        mdb_txn_abort(txn);
    return rc;
}

/* Commit txn (which is freed either way) and count the write. */
static int lm_commit(lmdb_db *db, MDB_txn *txn)
{
    int rc = mdb_txn_commit(txn);

    if (rc != 0)
        return lm_err(db, rc, "commit");
    __atomic_add_fetch(&db->writes, 1, __ATOMIC_RELAXED);
    if (db->sync == KVS_SYNC_ALWAYS) /* LMDB synced data and meta page before returning */
        __atomic_add_fetch(&db->syncs, 1, __ATOMIC_RELAXED);
    return 0;
}

static int lm_set(void *e, const void *key, size_t klen, const void *val, size_t vlen)
{
    lmdb_db *db = e;
    MDB_txn *txn = NULL;
    MDB_val data;
    lm_key k;
    bool found;
    int rc;

    key_encode(db, key, klen, &k);
    if ((rc = lm_fenced(db)) < 0 || (rc = lm_begin(db, 0, &txn)) < 0)
        goto out;
    if (k.hashed) {
        /* Never overwrite another key's entry, and write key and value in place (no copy). */
        if ((rc = lm_lookup(db, txn, &k, key, klen, &found)) < 0)
            goto out;
        data.mv_size = LM_KLEN_LEN + klen + vlen;
        data.mv_data = NULL;
        if ((rc = mdb_put(txn, db->dbi, &k.v, &data, MDB_RESERVE)) != 0) {
            rc = lm_err(db, rc, "put");
            goto out;
        }
        unsigned char *p = data.mv_data;
        le_put32(p, (uint32_t)klen);
        memcpy(p + LM_KLEN_LEN, key, klen);
        memcpy(p + LM_KLEN_LEN + klen, val, vlen);
    } else {
        data.mv_size = vlen;
        data.mv_data = (void *)val;
        if ((rc = mdb_put(txn, db->dbi, &k.v, &data, 0)) != 0) {
            rc = lm_err(db, rc, "put");
            goto out;
        }
    }
    rc = lm_commit(db, txn);
    txn = NULL;
out:
    if (txn)
        mdb_txn_abort(txn);
    return rc;
}

/* KVS_ENOTFOUND if key is absent; the transaction is then aborted, so nothing is written. */
static int lm_remove(void *e, const void *key, size_t klen)
{
    lmdb_db *db = e;
    MDB_txn *txn = NULL;
    lm_key k;
    bool found = true;
    int rc;

    key_encode(db, key, klen, &k);
    if ((rc = lm_fenced(db)) < 0 || (rc = lm_begin(db, 0, &txn)) < 0)
        goto out;
    if (k.hashed && (rc = lm_lookup(db, txn, &k, key, klen, &found)) < 0)
        goto out;
    if (found) {
        rc = mdb_del(txn, db->dbi, &k.v, NULL);
        if (rc == MDB_NOTFOUND)
            found = false;
        else if (rc != 0) {
            rc = lm_err(db, rc, "delete");
            goto out;
        }
    }
    if (!found) {
        rc = KVS_ENOTFOUND;
        goto out;
    }
    rc = lm_commit(db, txn);
    txn = NULL;
out:
    if (txn)
        mdb_txn_abort(txn);
    return rc;
}

static int lm_stats(void *e, kvs_stats *out)
{
    lmdb_db *db = e;
    MDB_txn *txn = NULL;
    MDB_stat ms;
    char path[PATH_MAX];
    struct stat st;
    int rc;

    if ((rc = io_join(path, sizeof path, db->dir, LM_DATA_FILE)) < 0)
        goto out;
    if (stat(path, &st) < 0) {
        int err = errno;
        rc = kvs_seterr(kvs_errno(err), "stat %s: %s", path, strerror(err));
        goto out;
    }
    if ((rc = lm_begin(db, MDB_RDONLY, &txn)) < 0)
        goto out;
    if ((rc = mdb_stat(txn, db->dbi, &ms)) != 0) {
        rc = lm_err(db, rc, "stat");
        goto out;
    }
    out->keys = ms.ms_entries > 0 ? ms.ms_entries - 1 : 0; /* less the format record */
    out->live_bytes =
        (uint64_t)ms.ms_psize * (ms.ms_branch_pages + ms.ms_leaf_pages + ms.ms_overflow_pages);
    out->dead_bytes = 0;
    out->disk_bytes = (uint64_t)st.st_size;
    out->segments = 0;
    out->writes = __atomic_load_n(&db->writes, __ATOMIC_RELAXED);
    out->syncs = __atomic_load_n(&db->syncs, __ATOMIC_RELAXED);
out:
    if (txn)
        mdb_txn_abort(txn);
    return rc;
}

/* LMDB reuses freed pages itself: there is nothing to reclaim. */
static int64_t lm_compact(void *e)
{
    return 0;
}

static int lm_sync_op(void *e)
{
    return lm_sync(e);
}

static int lm_owns_dir(const char *dir)
{
    char path[PATH_MAX];
    struct stat st;

    return io_join(path, sizeof path, dir, LM_DATA_FILE) == 0 && stat(path, &st) == 0;
}

static const char *lm_version(void)
{
    return mdb_version(NULL, NULL, NULL);
}

const kvs_engine_ops kvs_lmdb_engine = {
    .name = "lmdb",
    .caps = KVS_ENGINE_WRITES_BLOCK,
    .version = lm_version,
    .open = lm_open,
    .close = lm_close,
    .read = lm_read,
    .set = lm_set,
    .remove = lm_remove,
    .stats = lm_stats,
    .compact = lm_compact,
    .sync = lm_sync_op,
    .owns_dir = lm_owns_dir,
};
