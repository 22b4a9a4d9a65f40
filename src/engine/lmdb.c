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
 * be empty; kvs keys are 0 .. 64 KiB. So every stored key begins with a tag byte, and every value
 * with a header (format 2; format 1 had no header):
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
 *   LMDB value under a tag-0x00 key
 *     0       8      expire_ms, u64 little-endian: ms since the epoch, 0 never (kvs.h, expiry)
 *     8       8      version, u64 little-endian (kvs_meta.version; never 0)
 *     16      vlen   the value
 *
 *   LMDB value under a tag-0x01 key — the full key after the header, so that get can verify it
 *     0       8      expire_ms, u64 little-endian
 *     8       8      version, u64 little-endian
 *     16      4      klen, u32 little-endian
 *     20      klen   the key
 *     20+klen vlen   the value
 *
 *   LMDB key, tag 0x02 — the format record, one per store, written when the store is created;
 *   it sorts after every key of the two tags above
 *     0       1      tag 0x02 (the whole key)
 *   and its value
 *     0       4      magic "KVSL"
 *     4       4      format version, u32 little-endian (2; format 1 ended here at 12 bytes)
 *     8       4      inline_max, u32 little-endian
 *     12      8      version lease, u64 little-endian: every version given out is below it
 *     20      8      expiring keys, u64 little-endian: entries whose expire_ms is not 0
 *
 * Under format 1 (until issue 13) values were stored as themselves (tag 0x01: klen, key, value)
 * and the format record was the first 12 bytes above. Such a store is converted in place at
 * open, in one write transaction (every value rewritten with a header: expire_ms 0, versions
 * 1, 2, ...; the format record rewritten last), synced, and logged (WARN): LMDB's transaction
 * makes the conversion all or nothing, so a crash during it leaves the store of format 1 for
 * the next open to convert again, and there is no second copy of the data to keep or lose.
 * Builds before it refuse the converted store (format version 2: KVS_EVERSION).
 *
 * inline_max is min(maxkeysize - 1, 510), fixed when the store is created and read back from the
 * format record ever after, so the encoding never depends on how the LMDB library at hand was
 * built; a build whose keys are too short for the recorded inline_max is refused (KVS_EVERSION).
 * A tag-0x01 entry whose stored key differs from the key asked for is a hash collision (or
 * damage): reads and writes refuse it with KVS_ECORRUPT and never serve or overwrite another
 * key's value.
 *
 * Versions. One store-wide counter gives each write of a key (set, update) the next version.
 * It lives in memory under wmu, the engine's writer mutex, held from a write transaction's begin
 * to after its commit (LMDB lets its own lock go inside the commit), and is leased to disk: the format record holds a bound every version given out
 * stays below, raised by LM_VERSION_LEASE in the same transaction that would pass it. After a
 * restart, counting resumes at the bound, so a version never repeats while the store exists,
 * and the record is rewritten about once a million writes, not once a write. The count of
 * expiring keys is kept exact in the format record, rewritten by the transactions that change it.
 *
 * Batches (kvs_write). One write transaction a batch, ops in order; an update reads the key in
 * that transaction (so it sees the batch's earlier ops) and its function runs under LMDB's write
 * lock. A group of more than one op runs in a nested transaction: a refusal inside it (a hash
 * collision, KVS_ECORRUPT) aborts the nested transaction alone, so no half of a group is ever
 * committed while the batch's other groups are. An error of LMDB itself (MDB_MAP_FULL, I/O) marks
 * the whole transaction failed in LMDB, and fails every op of the batch: nothing of it commits.
 * A commit is atomic across a crash, so each group is one unit there too, as kvs.h asks.
 *
 * Expiry. A key whose expire_ms has come (0 < expire_ms <= kvs_clock_ms) is absent for reads,
 * updates and scans; the entry stays until a write of the key replaces it, or the sweep removes
 * it: a background thread (util/syncer.h) that every LM_SWEEP_MS walks at most LM_SWEEP_SCAN
 * entries in a read transaction, from where it stopped last, and deletes the expired ones it met
 * (at most expire_effort a second) in a short write transaction, each only if its version is
 * still the one it saw. It skips its turn while no key has an expiry.
 *
 * Scans. A scan cursor is a position in the stored-key order: bit 63 set, bits 59..62 0, bits
 * 56..58 the length n (1..7) of p, bits 0..55 p, the first n bytes of the stored key (tag included) the next step
 * starts at, left-aligned big-endian; a step resumes with MDB_SET_RANGE on p. A step stops only
 * between two keys whose 7-byte prefixes differ (past count if need be), so resuming at a prefix
 * never revisits the step's keys forever, and every key the step did not reach is at or after p.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
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
#define LM_KLEN_LEN 4      /* the u32 key length after a tag-0x01 entry's header */
#define LM_HDR_LEN 16      /* expire_ms and version, before every value */

enum { TAG_INLINE = 0x00, TAG_HASHED = 0x01, TAG_FORMAT = 0x02 };

#define FORMAT_MAGIC "KVSL"
#define FORMAT_VERSION 2u
#define FORMAT1_LEN 12 /* the format record of format 1 */
#define FORMAT_LEN 28

#define LM_VERSION_LEASE (1u << 20) /* how far the format record's version bound is raised */
#define LM_SWEEP_MS 100             /* the expiry sweep's interval */
#define LM_SWEEP_SCAN 1024          /* entries a sweep turn looks at, at most */
#define LM_PREFIX 7                 /* stored-key bytes a scan cursor holds */
#define LM_CURSOR_MARK (1ull << 63) /* set in every scan cursor, so none is 0 */

typedef struct lmdb_db {
    MDB_env *env;
    MDB_dbi dbi;
    kvs_options opt; /* sync, the clock, expire_effort (engine is not kept) */
    size_t mapsize;
    uint32_t inline_max; /* longest key stored as itself (tag 0x00) */
    char dir[PATH_MAX];

    syncer syncer;  /* everysec: syncs once a second (lm_sync_tick) */
    syncer sweeper; /* expire_effort > 0: removes expired entries (lm_sweep_tick) */

    /* Held by every write transaction from begin to after its commit (so lock order: wmu, then
     * LMDB's write lock). LMDB lets its own lock go inside mdb_txn_commit, but the figures below
     * may change only once a commit succeeded, before the next writer reads them. */
    pthread_mutex_t wmu;
    uint64_t next_version;  /* under wmu: the next version to give out */
    uint64_t version_lease; /* under wmu: as in the format record; next_version stays <= it */

    /* The sweep thread's own: the stored key to resume at (sweep_len 0: the first), the
     * removals it may still make (expire_effort a second), room for what it found. */
    unsigned char sweep_pos[1 + LM_INLINE_CAP];
    size_t sweep_len;
    double sweep_credit;
    struct lm_victim *victims;
    size_t victims_cap;

    /* figures (atomics) */
    uint64_t writes, syncs;
    uint64_t synced_writes; /* writes made durable: as they were when the last sync started */
    uint64_t durable_syncs, durable_writes; /* kvs_stats: syncs that made writes durable */
    uint64_t expiring;      /* as in the format record after the last commit */
    uint64_t expired;       /* expired entries removed since open */

    kvs_fence fence; /* up once a sync failed (lm_fence) */
} lmdb_db;

/* A key as LMDB sees it: tag and key, or tag and hash. */
typedef struct lm_key {
    unsigned char buf[1 + LM_INLINE_CAP];
    MDB_val v;
    bool hashed;
} lm_key;

/* A stored value, parsed: its header, and where key (tag 0x01 only) and value lie in it. */
typedef struct lm_ent {
    uint64_t expire_ms, version;
    const unsigned char *key; /* NULL under a tag-0x00 key */
    size_t klen;
    const unsigned char *val;
    size_t vlen;
} lm_ent;

/* An expired entry the sweep found: its stored key, and the version it had then. */
typedef struct lm_victim {
    unsigned char key[1 + LM_INLINE_CAP];
    size_t klen;
    uint64_t version;
} lm_victim;

/* What one write transaction changes, applied to lmdb_db once it commits. */
typedef struct lm_wctx {
    uint64_t now;          /* the store's clock, read once a batch */
    uint64_t next_version; /* versions given out so far */
    uint64_t lease;        /* the version bound the format record will hold */
    int64_t expiring;      /* change to the count of expiring keys */
    uint64_t expired;      /* expired entries replaced or removed */
    uint64_t written;      /* entries put or deleted */
} lm_wctx;

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

static bool lm_expired(const lm_ent *ent, uint64_t now)
{
    return ent->expire_ms != 0 && ent->expire_ms <= now;
}

/* Parse data, the value under a stored key (hashed: of tag 0x01), into *ent, pointing into
 * data. KVS_ECORRUPT (logged) if its lengths do not fit. */
static int lm_parse(const lmdb_db *db, bool hashed, const MDB_val *data, lm_ent *ent)
{
    const unsigned char *p = data->mv_data;
    size_t n = data->mv_size, off = LM_HDR_LEN;

    if (n < LM_HDR_LEN || (hashed && n - off < LM_KLEN_LEN))
        goto bad;
    ent->expire_ms = le_get64(p);
    ent->version = le_get64(p + 8);
    ent->key = NULL;
    ent->klen = 0;
    if (hashed) {
        ent->klen = le_get32(p + off);
        off += LM_KLEN_LEN;
        if (ent->klen > n - off)
            goto bad;
        ent->key = p + off;
        off += ent->klen;
    }
    ent->val = p + off;
    ent->vlen = n - off;
    return 0;
bad:
    LOG_ERROR("%s: malformed entry (%zu bytes stored)", db->dir, n);
    return kvs_seterr(KVS_ECORRUPT, "%s: malformed entry of %zu bytes", db->dir, n);
}

/* The entry stored under k (data as LMDB returned it) into *ent. A tag-0x01 entry must carry
 * exactly key; anything else is refused with KVS_ECORRUPT. */
static int lm_unwrap(const lmdb_db *db, const lm_key *k, const void *key, size_t klen,
                     const MDB_val *data, lm_ent *ent)
{
    int rc = lm_parse(db, k->hashed, data, ent);

    if (rc < 0 || !k->hashed)
        return rc;
    if (ent->klen != klen || memcmp(ent->key, key, klen) != 0) {
        LOG_ERROR("%s: a key of %zu bytes shares its XXH3-128 with a stored key of %zu bytes",
                  db->dir, klen, ent->klen);
        return kvs_seterr(KVS_ECORRUPT,
                          "%s: hash collision: a key of %zu bytes shares its XXH3-128 with a "
                          "stored key of %zu bytes; not served",
                          db->dir, klen, ent->klen);
    }
    return 0;
}

/* ---- the format record ---- */

static int lm_record_put(lmdb_db *db, MDB_txn *txn, uint64_t lease, uint64_t expiring)
{
    unsigned char tag = TAG_FORMAT, rec[FORMAT_LEN];
    MDB_val fkey = {1, &tag}, data = {sizeof rec, rec};
    int rc;

    memcpy(rec, FORMAT_MAGIC, 4);
    le_put32(rec + 4, FORMAT_VERSION);
    le_put32(rec + 8, db->inline_max);
    le_put64(rec + 12, lease);
    le_put64(rec + 20, expiring);
    if ((rc = mdb_put(txn, db->dbi, &fkey, &data, 0)) != 0)
        return lm_err(db, rc, "write the format record");
    return 0;
}

/* Write the format record if this transaction must (the versions it gave out passed the lease,
 * the count of expiring keys changed) or force says so; w->lease is what it then holds. */
static int lm_record_update(lmdb_db *db, MDB_txn *txn, lm_wctx *w, bool force)
{
    int64_t expiring = (int64_t)__atomic_load_n(&db->expiring, __ATOMIC_RELAXED) + w->expiring;

    if (w->next_version > w->lease)
        w->lease = w->next_version + LM_VERSION_LEASE;
    else if (!force && w->expiring == 0)
        return 0;
    return lm_record_put(db, txn, w->lease, expiring > 0 ? (uint64_t)expiring : 0);
}

/* Format 1 → 2 inside txn (the header's "Under format 1"): every value gets a header, expire_ms
 * 0 and the next version. The count of entries converted into *n. */
static int lm_convert1(lmdb_db *db, MDB_txn *txn, uint64_t *n)
{
    unsigned char kbuf[1 + LM_INLINE_CAP], *buf = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, d;
    size_t cap = 0;
    int rc;

    *n = 0;
    if ((rc = mdb_cursor_open(txn, db->dbi, &cur)) != 0)
        return lm_err(db, rc, "open a cursor");
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        if (k.mv_size == 0 || k.mv_size > sizeof kbuf) {
            rc = kvs_seterr(KVS_ECORRUPT, "%s: a stored key of %zu bytes", db->dir, k.mv_size);
            goto out;
        }
        if (((const unsigned char *)k.mv_data)[0] >= TAG_FORMAT)
            continue;
        if (LM_HDR_LEN + d.mv_size > cap) {
            unsigned char *nb = realloc(buf, LM_HDR_LEN + d.mv_size);
            if (!nb) {
                rc = kvs_seterr(KVS_ENOMEM, "%s: no memory to convert a value of %zu bytes",
                                db->dir, d.mv_size);
                goto out;
            }
            buf = nb;
            cap = LM_HDR_LEN + d.mv_size;
        }
        le_put64(buf, 0);
        le_put64(buf + 8, db->next_version++);
        memcpy(buf + LM_HDR_LEN, d.mv_data, d.mv_size);
        memcpy(kbuf, k.mv_data, k.mv_size); /* the put may move the page k points into */
        k.mv_data = kbuf;
        d.mv_size += LM_HDR_LEN;
        d.mv_data = buf;
        if ((rc = mdb_cursor_put(cur, &k, &d, 0)) != 0) {
            rc = lm_err(db, rc, "convert an entry");
            goto out;
        }
        (*n)++;
    }
    rc = rc == MDB_NOTFOUND ? 0 : lm_err(db, rc, "read an entry");
out:
    mdb_cursor_close(cur);
    free(buf);
    return rc;
}

/* Check the format record's value (data) and take inline_max, the version lease and the count
 * of expiring keys from it; *old set for a store of format 1 (only inline_max then). */
static int lm_format_read(lmdb_db *db, const MDB_val *data, bool *old)
{
    const unsigned char *p = data->mv_data;
    int maxkey = mdb_env_get_maxkeysize(db->env);
    uint32_t version;

    if (data->mv_size < FORMAT1_LEN || memcmp(p, FORMAT_MAGIC, 4) != 0)
        goto bad;
    version = le_get32(p + 4);
    if (version != 1 && version != FORMAT_VERSION)
        return kvs_seterr(KVS_EVERSION, "%s: lmdb engine format version %u; this build reads %u",
                          db->dir, version, FORMAT_VERSION);
    *old = version == 1;
    if (data->mv_size != (*old ? FORMAT1_LEN : FORMAT_LEN))
        goto bad;
    db->inline_max = le_get32(p + 8);
    if (db->inline_max > LM_INLINE_CAP || (int64_t)db->inline_max + 1 > maxkey)
        return kvs_seterr(KVS_EVERSION,
                          "%s: keys of up to %u bytes are stored inline, but this LMDB build "
                          "takes keys of at most %d bytes",
                          db->dir, db->inline_max + 1, maxkey);
    if (!*old) {
        db->next_version = le_get64(p + 12);
        db->expiring = le_get64(p + 20);
    }
    return 0;
bad:
    return kvs_seterr(KVS_ECORRUPT, "%s: the kvs format record is malformed", db->dir);
}

/* Read the format record, or write it into a new store, converting a store of format 1; sets
 * db->dbi, inline_max and the counters kept in the record, and raises the version lease. */
static int lm_format(lmdb_db *db)
{
    unsigned char tag = TAG_FORMAT;
    MDB_val fkey = {1, &tag}, data;
    MDB_txn *txn = NULL;
    MDB_stat ms;
    bool old = false;
    uint64_t converted = 0;
    int maxkey = mdb_env_get_maxkeysize(db->env);
    int rc;

    db->next_version = 1;
    if ((rc = lm_begin(db, 0, &txn)) < 0)
        goto out;
    if ((rc = mdb_dbi_open(txn, NULL, 0, &db->dbi)) != 0) {
        rc = lm_err(db, rc, "open database");
        goto out;
    }
    rc = mdb_get(txn, db->dbi, &fkey, &data);
    if (rc == 0) {
        if ((rc = lm_format_read(db, &data, &old)) < 0 ||
            (old && (rc = lm_convert1(db, txn, &converted)) < 0))
            goto out;
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
    } else {
        rc = lm_err(db, rc, "read the format record");
        goto out;
    }
    /* Every version before this open's lease start stays unused: those of a run that crashed
     * may have been given out without reaching the record. */
    db->version_lease = db->next_version + LM_VERSION_LEASE;
    if ((rc = lm_record_put(db, txn, db->version_lease, db->expiring)) < 0)
        goto out;
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc != 0) {
        rc = lm_err(db, rc, "commit");
        goto out;
    }
    if (old) {
        if ((rc = mdb_env_sync(db->env, 1)) != 0) {
            rc = lm_err(db, rc, "sync the converted store");
            goto out;
        }
        LOG_WARN("%s: converted the lmdb store from format 1 to format %u (%llu keys); builds "
                 "before it no longer open it",
                 db->dir, FORMAT_VERSION, (unsigned long long)converted);
    }
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

/* A sync made the first w writes durable: counted once, by the first sync that covers them
 * (synced_writes only grows, even when a sync that started earlier ends later). */
static void lm_count_durable(lmdb_db *db, uint64_t w)
{
    uint64_t prev = __atomic_load_n(&db->synced_writes, __ATOMIC_RELAXED);

    while (w > prev && !__atomic_compare_exchange_n(&db->synced_writes, &prev, w, false,
                                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
    if (w <= prev)
        return;
    __atomic_add_fetch(&db->durable_syncs, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&db->durable_writes, w - prev, __ATOMIC_RELAXED);
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
    lm_count_durable(db, w);
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

/* ---- the environment ---- */

static void lm_free(lmdb_db *db)
{
    syncer_stop(&db->sweeper);
    syncer_stop(&db->syncer);
    if (db->env)
        mdb_env_close(db->env);
    pthread_mutex_destroy(&db->wmu);
    free(db->victims);
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


/* ---- writes ---- */

/* Outcome of one op of a batch (lm_apply): its rc is set; LM_OP_CONFLICT refuses the rest of
 * its group; LM_GROUP_FAIL refuses all of the group (nothing of this op was written);
 * LM_BATCH_FAIL: LMDB failed the transaction, and the whole batch fails. */
enum { LM_OP_DONE, LM_OP_CONFLICT, LM_GROUP_FAIL, LM_BATCH_FAIL };

static void lm_wctx_init(lmdb_db *db, lm_wctx *w)
{
    memset(w, 0, sizeof *w);
    w->now = kvs_clock_ms(&db->opt);
    w->next_version = db->next_version;
    w->lease = db->version_lease;
}

/* Take wmu and begin the write transaction of a batch (*txn NULL and wmu free on failure). */
static int lm_write_begin(lmdb_db *db, MDB_txn **txn)
{
    int rc;

    *txn = NULL;
    if ((rc = lm_fenced(db)) < 0)
        return rc;
    pthread_mutex_lock(&db->wmu);
    if ((rc = lm_begin(db, 0, txn)) < 0)
        pthread_mutex_unlock(&db->wmu);
    return rc;
}

/* Write the format record if it must change, commit txn (freed either way), apply w to the
 * figures, and let wmu go. */
static int lm_write_commit(lmdb_db *db, MDB_txn *txn, lm_wctx *w, bool force_record)
{
    int rc = lm_record_update(db, txn, w, force_record);

    if (rc < 0) {
        mdb_txn_abort(txn);
    } else if ((rc = mdb_txn_commit(txn)) != 0) {
        rc = lm_err(db, rc, "commit");
    } else {
        int64_t expiring = (int64_t)db->expiring + w->expiring;
        db->next_version = w->next_version;
        db->version_lease = w->lease;
        __atomic_store_n(&db->expiring, expiring > 0 ? (uint64_t)expiring : 0, __ATOMIC_RELAXED);
        __atomic_add_fetch(&db->expired, w->expired, __ATOMIC_RELAXED);
        uint64_t writes = __atomic_add_fetch(&db->writes, w->written, __ATOMIC_RELAXED);
        if (db->opt.sync == KVS_SYNC_ALWAYS && w->written) { /* LMDB synced data and meta */
            __atomic_add_fetch(&db->syncs, 1, __ATOMIC_RELAXED);
            lm_count_durable(db, writes);
        }
    }
    pthread_mutex_unlock(&db->wmu);
    return rc;
}

static void lm_write_abort(lmdb_db *db, MDB_txn *txn)
{
    mdb_txn_abort(txn);
    pthread_mutex_unlock(&db->wmu);
}

/* Put key (encoded as k) with val and expire_ms, and the next version, in place (MDB_RESERVE:
 * no copy). An LMDB code. */
static int lm_put(lmdb_db *db, MDB_txn *txn, lm_wctx *w, lm_key *k, const void *key,
                  size_t klen, const void *val, size_t vlen, uint64_t expire_ms)
{
    size_t pre = LM_HDR_LEN + (k->hashed ? LM_KLEN_LEN + klen : 0);
    MDB_val data = {pre + vlen, NULL};
    unsigned char *p;
    int rc;

    if ((rc = mdb_put(txn, db->dbi, &k->v, &data, MDB_RESERVE)) != 0)
        return rc;
    p = data.mv_data;
    le_put64(p, expire_ms);
    le_put64(p + 8, w->next_version++);
    if (k->hashed) {
        le_put32(p + LM_HDR_LEN, (uint32_t)klen);
        memcpy(p + LM_HDR_LEN + LM_KLEN_LEN, key, klen);
    }
    if (vlen)
        memcpy(p + pre, val, vlen);
    return 0;
}

/* Does [p, p+n) overlap the LMDB value d? */
static bool lm_overlaps(const void *p, size_t n, const MDB_val *d)
{
    const char *a = p, *b = d->mv_data;

    return n && a < b + d->mv_size && b < a + n;
}

/* Apply op in txn (the batch's, or its group's nested one); see LM_OP_DONE for the outcomes. */
static int lm_apply(lmdb_db *db, MDB_txn *txn, lm_wctx *w, kvs_op *op)
{
    int type = op->type, rc;
    const void *val = op->val;
    size_t vlen = op->vlen;
    uint64_t expire_ms = op->expire_ms;
    void *copy = NULL;
    bool found = false, live;
    MDB_val data;
    lm_ent ent = {0};
    lm_key k;

    key_encode(db, op->key, op->klen, &k);
    if ((rc = mdb_get(txn, db->dbi, &k.v, &data)) == 0) {
        if ((op->rc = lm_unwrap(db, &k, op->key, op->klen, &data, &ent)) < 0)
            return LM_GROUP_FAIL;
        found = true;
    } else if (rc != MDB_NOTFOUND) {
        op->rc = lm_err(db, rc, "get");
        return LM_BATCH_FAIL;
    }
    live = found && !lm_expired(&ent, w->now);
    if (type == KVS_OP_UPDATE) {
        kvs_cur cur = {.val = NULL};
        kvs_update_out out;
        if (live) {
            cur = (kvs_cur){.val = ent.val, .vlen = ent.vlen, .found = 1,
                            .meta = {.expire_ms = ent.expire_ms, .version = ent.version}};
        }
        if ((op->rc = kvs_update_call(op, &cur, &out)) < 0)
            return op->rc == KVS_ECONFLICT ? LM_OP_CONFLICT : LM_OP_DONE;
        type = out.type;
        val = out.val;
        vlen = out.vlen;
        expire_ms = out.expire_ms;
        if (type == KVS_OP_SET && found && lm_overlaps(val, vlen, &data)) {
            /* the new value is (part of) the old one, which the put may overwrite or move */
            if (!(copy = malloc(vlen))) {
                op->rc = kvs_seterr(KVS_ENOMEM, "no memory for a value of %zu bytes", vlen);
                return LM_GROUP_FAIL;
            }
            val = memcpy(copy, val, vlen);
        }
    }
    op->rc = 0;
    if (type == KVS_OP_SET) {
        rc = lm_put(db, txn, w, &k, op->key, op->klen, val, vlen, expire_ms);
        free(copy);
        if (rc != 0) {
            op->rc = lm_err(db, rc, "put");
            return LM_BATCH_FAIL;
        }
        w->expiring += (expire_ms != 0) - (found && ent.expire_ms != 0);
    } else if (type == KVS_OP_REMOVE) {
        if (!found) {
            op->rc = KVS_ENOTFOUND;
            return LM_OP_DONE;
        }
        if ((rc = mdb_del(txn, db->dbi, &k.v, NULL)) != 0) {
            op->rc = lm_err(db, rc, "delete");
            return LM_BATCH_FAIL;
        }
        w->expiring -= ent.expire_ms != 0;
        op->rc = live ? 0 : KVS_ENOTFOUND; /* an expired key was absent already */
    } else {
        return LM_OP_DONE; /* KVS_OP_NONE: nothing */
    }
    w->written++;
    w->expired += found && !live;
    return LM_OP_DONE;
}

/* Apply the group ops[0 .. n) in txn: a group of several ops in a nested transaction, so that
 * a refusal in the middle takes back what the group wrote. 0 (each op's rc set), or the error
 * of an LMDB failure that fails the batch. */
static int lm_write_group(lmdb_db *db, MDB_txn *txn, lm_wctx *w, kvs_op *ops, size_t n)
{
    MDB_txn *t = txn;
    lm_wctx before = *w;
    int res = LM_OP_DONE, rc;
    size_t i;

    if (n > 1 && (rc = mdb_txn_begin(db->env, txn, 0, &t)) != 0)
        return lm_err(db, rc, "begin a nested transaction");
    for (i = 0; i < n && res == LM_OP_DONE; i++)
        res = lm_apply(db, t, w, &ops[i]);
    if (res == LM_OP_CONFLICT)
        for (; i < n; i++)
            ops[i].rc = KVS_ECONFLICT;
    if (res == LM_BATCH_FAIL || res == LM_GROUP_FAIL) {
        rc = ops[i - 1].rc;
        if (t != txn)
            mdb_txn_abort(t);
        if (res == LM_BATCH_FAIL)
            return rc;
        *w = before;
        for (i = 0; i < n; i++)
            ops[i].rc = rc;
        return 0;
    }
    if (t != txn && (rc = mdb_txn_commit(t)) != 0)
        return lm_err(db, rc, "commit a nested transaction");
    return 0;
}

/* kvs_write: the whole batch in one write transaction (the header's "Batches"). */
static int lm_write(void *e, kvs_op *ops, size_t n)
{
    lmdb_db *db = e;
    MDB_txn *txn = NULL;
    lm_wctx w;
    int rc, first = 0;

    if (n == 0)
        return 0;
    if ((rc = lm_write_begin(db, &txn)) < 0)
        goto fail;
    lm_wctx_init(db, &w);
    for (size_t g = 0, end; g < n; g = end) {
        end = kvs_group_end(ops, n, g);
        if ((rc = lm_write_group(db, txn, &w, ops + g, end - g)) < 0) {
            lm_write_abort(db, txn);
            goto fail;
        }
    }
    if ((rc = lm_write_commit(db, txn, &w, false)) < 0)
        goto fail;
    for (size_t i = 0; i < n && first == 0; i++)
        first = ops[i].rc < 0 ? ops[i].rc : 0;
    return first;
fail:
    for (size_t i = 0; i < n; i++)
        ops[i].rc = rc;
    return rc;
}

static int lm_set(void *e, const void *key, size_t klen, const void *val, size_t vlen)
{
    kvs_op op = {.type = KVS_OP_SET, .key = key, .klen = klen, .val = val, .vlen = vlen};

    lm_write(e, &op, 1);
    return op.rc;
}

static int lm_remove(void *e, const void *key, size_t klen)
{
    kvs_op op = {.type = KVS_OP_REMOVE, .key = key, .klen = klen};

    lm_write(e, &op, 1);
    return op.rc;
}

/* kvs_clear: every entry dropped and the format record put back, in one transaction. mdb_drop
 * only frees pages, so async (return at once) does the same: it is quick either way. */
static int lm_clear(void *e, int async)
{
    lmdb_db *db = e;
    MDB_txn *txn;
    lm_wctx w;
    int rc;

    (void)async;
    if ((rc = lm_write_begin(db, &txn)) < 0)
        return rc;
    lm_wctx_init(db, &w);
    if ((rc = mdb_drop(txn, db->dbi, 0)) != 0) {
        rc = lm_err(db, rc, "clear");
        lm_write_abort(db, txn);
        return rc;
    }
    w.expiring = -(int64_t)db->expiring;
    w.written = 1;
    return lm_write_commit(db, txn, &w, true);
}

/* ---- reads ---- */

/* kvs_read_meta: fn gets the value where LMDB holds it, in the map: valid only during the call,
 * inside the read transaction; nothing is allocated (kvs_get's copy is api.c's). */
static int lm_read_meta(void *e, const void *key, size_t klen, kvs_value_fn fn, void *ctx,
                        kvs_meta *meta)
{
    lmdb_db *db = e;
    MDB_txn *txn = NULL;
    MDB_val data;
    lm_ent ent;
    lm_key k;
    int rc;

    key_encode(db, key, klen, &k);
    if ((rc = lm_begin(db, MDB_RDONLY, &txn)) < 0)
        goto out;
    if ((rc = mdb_get(txn, db->dbi, &k.v, &data)) != 0) {
        rc = rc == MDB_NOTFOUND ? KVS_ENOTFOUND : lm_err(db, rc, "get");
        goto out;
    }
    if ((rc = lm_unwrap(db, &k, key, klen, &data, &ent)) < 0)
        goto out;
    if (lm_expired(&ent, kvs_clock_ms(&db->opt))) {
        rc = KVS_ENOTFOUND;
        goto out;
    }
    meta->expire_ms = ent.expire_ms;
    meta->version = ent.version;
    rc = fn(ctx, ent.val, ent.vlen); /* the value is valid until the transaction ends */
out:
    if (txn)
        mdb_txn_abort(txn);
    return rc;
}

static int lm_read(void *e, const void *key, size_t klen, kvs_value_fn fn, void *ctx)
{
    kvs_meta meta;

    return lm_read_meta(e, key, klen, fn, ctx, &meta);
}

/* ---- scans (the header's "Scans") ---- */

static size_t lm_prefix_len(const MDB_val *k)
{
    return k->mv_size < LM_PREFIX ? k->mv_size : LM_PREFIX;
}

static uint64_t lm_cursor_encode(const MDB_val *k)
{
    const unsigned char *p = k->mv_data;
    size_t n = lm_prefix_len(k);
    uint64_t c = LM_CURSOR_MARK | (uint64_t)n << 56;

    for (size_t i = 0; i < n; i++)
        c |= (uint64_t)p[i] << (48 - 8 * i);
    return c;
}

/* The stored-key prefix a cursor names into p (LM_PREFIX bytes), its length into *n. */
static int lm_cursor_decode(uint64_t c, unsigned char *p, size_t *n)
{
    *n = (size_t)(c >> 56) & 7;
    if (!(c & LM_CURSOR_MARK) || (c >> 59 & 0xf) != 0 || *n == 0)
        return kvs_seterr(KVS_EINVAL, "scan cursor %llu was not made by this engine",
                          (unsigned long long)c);
    for (size_t i = 0; i < *n; i++)
        p[i] = (unsigned char)(c >> (48 - 8 * i));
    return 0;
}

/* Hand one stored entry to fn, unless it is expired; a damaged one is logged and skipped. */
static int lm_scan_one(lmdb_db *db, const MDB_val *k, const MDB_val *d, uint64_t now,
                       kvs_entry_fn fn, void *ctx)
{
    const unsigned char *p = k->mv_data;
    bool hashed = p[0] == TAG_HASHED;
    kvs_meta meta;
    lm_ent ent;
    int rc;

    if (lm_parse(db, hashed, d, &ent) < 0 || lm_expired(&ent, now))
        return 0;
    meta.expire_ms = ent.expire_ms;
    meta.version = ent.version;
    rc = hashed ? fn(ctx, ent.key, ent.klen, ent.val, ent.vlen, &meta)
                : fn(ctx, p + 1, k->mv_size - 1, ent.val, ent.vlen, &meta);
    return rc < 0 ? rc : 0;
}

static int lm_scan(void *e, uint64_t cursor, size_t count, kvs_entry_fn fn, void *ctx,
                   uint64_t *next)
{
    lmdb_db *db = e;
    unsigned char start[LM_PREFIX], last[LM_PREFIX];
    size_t slen = 0, llen = 0, seen = 0;
    uint64_t now = kvs_clock_ms(&db->opt);
    MDB_cursor *cur = NULL;
    MDB_txn *txn = NULL;
    MDB_val k = {0, start}, d;
    int rc;

    *next = 0;
    if (cursor != 0 && (rc = lm_cursor_decode(cursor, start, &slen)) < 0)
        return rc;
    k.mv_size = slen;
    if ((rc = lm_begin(db, MDB_RDONLY, &txn)) < 0)
        goto out;
    if ((rc = mdb_cursor_open(txn, db->dbi, &cur)) != 0) {
        rc = lm_err(db, rc, "open a cursor");
        goto out;
    }
    for (rc = mdb_cursor_get(cur, &k, &d, cursor ? MDB_SET_RANGE : MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        const unsigned char *p = k.mv_data;
        size_t plen = lm_prefix_len(&k);
        if (k.mv_size == 0 || p[0] >= TAG_FORMAT) /* the format record sorts last */
            break;
        if (seen >= count && (plen != llen || memcmp(p, last, plen) != 0)) {
            *next = lm_cursor_encode(&k); /* between two prefixes: see the header */
            break;
        }
        memcpy(last, p, plen);
        llen = plen;
        seen++;
        if ((rc = lm_scan_one(db, &k, &d, now, fn, ctx)) < 0)
            goto out;
    }
    if (rc == MDB_NOTFOUND)
        rc = 0;
    else if (rc != 0)
        rc = lm_err(db, rc, "scan");
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    return rc;
}

/* ---- the expiry sweep (the header's "Expiry") ---- */

/* Walk at most LM_SWEEP_SCAN entries from db->sweep_pos in a read transaction, noting up to max
 * expired ones in db->victims; sweep_pos moves past what was looked at (back to the start at
 * the end). The count noted, or an error. */
static int lm_sweep_find(lmdb_db *db, size_t max)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k = {db->sweep_len, db->sweep_pos}, d;
    uint64_t now = kvs_clock_ms(&db->opt);
    size_t looked = 0, found = 0;
    int rc;

    if ((rc = lm_begin(db, MDB_RDONLY, &txn)) < 0)
        return rc;
    if ((rc = mdb_cursor_open(txn, db->dbi, &cur)) != 0) {
        rc = lm_err(db, rc, "open a cursor");
        goto out;
    }
    for (rc = mdb_cursor_get(cur, &k, &d, db->sweep_len ? MDB_SET_RANGE : MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        const unsigned char *p = k.mv_data;
        lm_ent ent;
        if (k.mv_size == 0 || k.mv_size > sizeof db->sweep_pos || p[0] >= TAG_FORMAT)
            break;
        if (looked++ == LM_SWEEP_SCAN || found == max) { /* resume here next turn */
            memcpy(db->sweep_pos, p, k.mv_size);
            db->sweep_len = k.mv_size;
            goto out;
        }
        if (lm_parse(db, p[0] == TAG_HASHED, &d, &ent) == 0 && lm_expired(&ent, now)) {
            lm_victim *v = &db->victims[found++];
            memcpy(v->key, p, k.mv_size);
            v->klen = k.mv_size;
            v->version = ent.version;
        }
    }
    db->sweep_len = 0;
    rc = rc == 0 || rc == MDB_NOTFOUND ? 0 : lm_err(db, rc, "sweep");
out:
    if (cur)
        mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc < 0 ? rc : (int)found;
}

/* Delete the n victims found that are still as they were (same version) and expired, in one
 * write transaction. The count removed, or an error. */
static int lm_sweep_remove(lmdb_db *db, size_t n)
{
    MDB_txn *txn;
    lm_wctx w;
    int rc;

    if ((rc = lm_write_begin(db, &txn)) < 0)
        return rc;
    lm_wctx_init(db, &w);
    for (size_t i = 0; i < n; i++) {
        lm_victim *v = &db->victims[i];
        MDB_val k = {v->klen, v->key}, d;
        lm_ent ent;
        if ((rc = mdb_get(txn, db->dbi, &k, &d)) == MDB_NOTFOUND)
            continue;
        if (rc == 0) {
            if (lm_parse(db, v->key[0] == TAG_HASHED, &d, &ent) < 0 ||
                ent.version != v->version || !lm_expired(&ent, w.now))
                continue; /* written again since it was found */
            rc = mdb_del(txn, db->dbi, &k, NULL);
        }
        if (rc != 0) {
            rc = lm_err(db, rc, "sweep");
            lm_write_abort(db, txn);
            return rc;
        }
        w.expiring--;
        w.expired++;
        w.written++;
    }
    if ((rc = lm_write_commit(db, txn, &w, false)) < 0)
        return rc;
    return (int)w.expired;
}

/* The sweeper's tick: removals allowed by expire_effort since the last, if any key expires. */
static int lm_sweep_tick(void *arg)
{
    lmdb_db *db = arg;
    double rate = (double)db->opt.expire_effort * LM_SWEEP_MS / 1000.0;
    size_t max;
    int rc;

    db->sweep_credit += rate;
    if (db->sweep_credit > (rate > 1.0 ? rate : 1.0))
        db->sweep_credit = rate > 1.0 ? rate : 1.0; /* no hoarding across idle ticks */
    if (__atomic_load_n(&db->expiring, __ATOMIC_RELAXED) == 0 || lm_fenced(db) < 0)
        return 0;
    max = (size_t)db->sweep_credit;
    if (max > db->victims_cap)
        max = db->victims_cap;
    if (max == 0)
        return 0;
    if ((rc = lm_sweep_find(db, max)) > 0)
        rc = lm_sweep_remove(db, (size_t)rc);
    if (rc < 0) {
        LOG_WARN("%s: expiry sweep: %s", db->dir, kvs_last_error());
        return rc == KVS_ESYNC ? 0 : rc; /* the syncer stops calling after KVS_ESYNC */
    }
    db->sweep_credit -= rc;
    return 0;
}

/* ---- open and close ---- */

static int lm_open(const char *dir, const kvs_options *opt, void **out)
{
    lmdb_db *db = calloc(1, sizeof *db);
    unsigned flags = MDB_NOTLS;
    double rate;
    int rc;

    *out = NULL;
    if (!db)
        return kvs_seterr(KVS_ENOMEM, "lmdb engine: out of memory");
    pthread_mutex_init(&db->wmu, NULL);
    db->opt = *opt;
    db->opt.engine = NULL; /* api.c's string; not needed here */
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
    rate = (double)opt->expire_effort * LM_SWEEP_MS / 1000.0;
    db->victims_cap = rate < 1.0 ? 1 : rate > LM_SWEEP_SCAN ? LM_SWEEP_SCAN : (size_t)rate;
    if (opt->expire_effort &&
        (!(db->victims = malloc(db->victims_cap * sizeof *db->victims)) ||
         (rc = syncer_start(&db->sweeper, "expiry", LM_SWEEP_MS, lm_sweep_tick, db)) < 0)) {
        if (!db->victims)
            rc = kvs_seterr(KVS_ENOMEM, "lmdb engine: out of memory");
        goto fail;
    }
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

    syncer_stop(&db->sweeper);
    syncer_stop(&db->syncer);
    rc = lm_sync(db); /* not after a failed sync: KVS_ESYNC */
    lm_free(db);
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
    out->durable_syncs = __atomic_load_n(&db->durable_syncs, __ATOMIC_RELAXED);
    out->durable_writes = __atomic_load_n(&db->durable_writes, __ATOMIC_RELAXED);
    out->expiring_keys = __atomic_load_n(&db->expiring, __ATOMIC_RELAXED);
    out->expired_keys = __atomic_load_n(&db->expired, __ATOMIC_RELAXED);
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

/* ---- checkpoints and verification (kvs.h) ---- */

/* kvs_checkpoint: a copy of the environment under one read transaction. Not MDB_CP_COMPACT: a
 * page-for-page copy is LMDB's plain path, as fast as the disk for a store with little free
 * space (the common case: LMDB reuses freed pages), where a compacting copy walks the tree and
 * rewrites every page. The copy is synced here; api.c syncs dest's directory. */
static int lm_checkpoint(void *e, const char *dest)
{
    lmdb_db *db = e;
    char path[PATH_MAX];
    int rc = mdb_env_copy2(db->env, dest, 0), fd;

    if (rc != 0)
        return lm_err(db, rc, "copy the environment");
    if ((rc = io_join(path, sizeof path, dest, LM_DATA_FILE)) < 0)
        return rc;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return kvs_seterr(kvs_errno(errno), "open %s: %s", path, strerror(errno));
    rc = fsync(fd) < 0 ? kvs_seterr(kvs_errno(errno), "fsync %s: %s", path, strerror(errno)) : 0;
    close(fd);
    return rc;
}

typedef struct lm_verifier {
    lmdb_db *db;
    kvs_finding_fn fn;
    void *ctx;
    kvs_verify_report *out;
} lm_verifier;

static void lm_finding(lm_verifier *v, uint64_t entry, const char *what)
{
    v->out->bad++;
    if (v->fn)
        v->fn(v->ctx, 1, LM_DATA_FILE, entry, what);
}

/* One entry of the walk (its position in key order: the "offset" of its findings). */
static void lm_verify_entry(lm_verifier *v, uint64_t i, const MDB_val *k, const MDB_val *d)
{
    const unsigned char *kb = k->mv_data;
    lm_ent ent;
    lm_key want;

    v->out->records++;
    v->out->bytes += k->mv_size + d->mv_size;
    if (k->mv_size == 1 && kb[0] == TAG_FORMAT)
        return; /* read at the start */
    bool hashed = kb[0] == TAG_HASHED;
    if ((kb[0] != TAG_INLINE && !hashed) ||
        (hashed ? k->mv_size != 1 + LM_HASH_LEN : k->mv_size > 1 + (size_t)v->db->inline_max)) {
        lm_finding(v, i, "stored key of an unknown kind or length");
        return;
    }
    if (lm_parse(v->db, hashed, d, &ent) < 0) {
        lm_finding(v, i, "malformed value header");
        return;
    }
    if (hashed) {
        key_encode(v->db, ent.key, ent.klen, &want);
        if (!want.hashed || memcmp(want.buf, kb, k->mv_size) != 0) {
            lm_finding(v, i, "the key stored with the value does not hash to its entry's key");
            return;
        }
    }
    if (ent.version == 0)
        lm_finding(v, i, "version 0");
    else
        v->out->keys++;
}

/* kvs_verify for lmdb: open the environment read-only without its lock file (api.c holds the
 * directory's lock, so nothing writes meanwhile, and nothing here writes lock.mdb), read the
 * format record, and walk every entry with a cursor — LMDB checks each page it reads on the
 * way (MDB_CORRUPTED, MDB_PAGE_NOTFOUND). */
static int lm_verify(const char *dir, kvs_finding_fn fn, void *ctx, kvs_verify_report *out)
{
    lmdb_db *db = calloc(1, sizeof *db);
    lm_verifier v = {db, fn, ctx, out};
    unsigned char tag = TAG_FORMAT;
    MDB_val fkey = {1, &tag}, k, d;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    bool old;
    int rc;

    if (!db)
        return KVS_ENOMEM;
    pthread_mutex_init(&db->wmu, NULL);
    snprintf(db->dir, sizeof db->dir, "%s", dir);
    out->segments = 1;
    if ((rc = lm_env_open(db, MDB_RDONLY | MDB_NOLOCK | MDB_NOTLS)) < 0 ||
        (rc = lm_begin(db, MDB_RDONLY, &txn)) < 0)
        goto out;
    if ((rc = mdb_dbi_open(txn, NULL, 0, &db->dbi)) != 0 ||
        (rc = mdb_get(txn, db->dbi, &fkey, &d)) != 0) {
        rc = lm_err(db, rc, "read the format record");
        goto out;
    }
    if ((rc = lm_format_read(db, &d, &old)) < 0)
        goto out;
    if ((rc = mdb_cursor_open(txn, db->dbi, &cur)) != 0) {
        rc = lm_err(db, rc, "open a cursor");
        goto out;
    }
    uint64_t i = 0;
    while ((rc = mdb_cursor_get(cur, &k, &d, i ? MDB_NEXT : MDB_FIRST)) == 0)
        lm_verify_entry(&v, i++, &k, &d);
    if (rc != MDB_NOTFOUND) {
        char what[256];
        snprintf(what, sizeof what, "the walk stopped after %llu entries: %s",
                 (unsigned long long)i, mdb_strerror(rc));
        lm_finding(&v, i, what);
    }
    rc = out->bad ? kvs_seterr(KVS_ECORRUPT, "%s: %llu problems found", dir,
                               (unsigned long long)out->bad) : 0;
out:
    if (rc < 0 && rc != KVS_ECORRUPT && !out->bad) {
        /* the environment or its format record cannot be read: that is the finding */
        char what[512];
        snprintf(what, sizeof what, "%s", kvs_last_error());
        lm_finding(&v, 0, what);
        rc = kvs_seterr(KVS_ECORRUPT, "%s", what);
    }
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    lm_free(db);
    return rc;
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
    .write = lm_write,
    .read_meta = lm_read_meta,
    .scan = lm_scan,
    .clear = lm_clear,
    .stats = lm_stats,
    .compact = lm_compact,
    .sync = lm_sync_op,
    .checkpoint = lm_checkpoint,
    .verify = lm_verify,
    .owns_dir = lm_owns_dir,
};
