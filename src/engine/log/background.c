/*
 * background.c — the store's two background threads, both util/syncer.h threads ticking once a
 * second:
 *
 *   - the syncer (KVS_SYNC_EVERYSEC only): syncs what was written since the last sync, sealed
 *     segments first, as every sync does (sync.c). The fdatasyncs run outside wmu so writers go
 *     on; an RCU read section keeps the segments (and their fds) from being retired meanwhile;
 *   - the maintenance thread: hint files of sealed segments, automatic compaction and the idle
 *     clean-up — all off the write path — the removal of the saved index an open read
 *     (saved.h: a slow unlink, kept off the open), the expiry sweep and kvs_clear's async
 *     removal. Rotation and commits that leave work waiting wake it early (ldb_maint_kick,
 *     logdb.h), and so do an open that read a saved index and an async kvs_clear.
 *
 * The maintenance thread runs opt.compact_nice below the process's priority, and its
 * compaction runs are paced (compact.c): both so that background work takes the cores the loop
 * threads leave, not theirs.
 *
 * The expiry sweep finds expired keys without reading every record: it walks the index with a
 * cursor that hands out only the words carrying IDX_EXPIRES (index.h), reads those records'
 * headers, and removes the expired ones through the write path with the engine's own update op
 * (ldb_expire_op: removed only if still expired under wmu). At most opt.expire_effort removals
 * a second: a credit topped up by the time since the last tick. kvs_clear walks the whole index
 * the same way (ldb_clear_now on the caller's thread; async, here, with an update op that
 * spares records newer than the call).
 *
 * A failed sync fences the store, and from then on neither thread does anything: the syncer's
 * work is syncing, and the maintenance thread's hint files and compactions sync too. Each
 * returns KVS_ESYNC once fenced, and util/syncer.h calls it no more.
 *
 * Above every other file of the engine but engine.c, which starts and stops the threads.
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <urcu-bp.h>

#include "engine/engine.h"
#include "engine/log/logdb.h"
#include "engine/log/saved.h"
#include "util/array.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/log.h"

#define MAINT_TICK_MS 1000 /* the maintenance thread looks for work at least this often */
#define IDLE_USEC 2000000 /* no writes for this long: the store is idle */

/* The sync thread's call: each tick under everysec; when kicked under always (every batch
 * applied: it then syncs back to back while there is more) and for kvs_sync_soon in any mode.
 * Compaction frees a segment a grace period after taking it off the list, without taking wmu,
 * so the read section, not wmu, keeps a segment synced here alive until its flag is cleared
 * (inside it: ldb_sync_written). */
static int sync_tick(void *arg)
{
    logdb *db = arg;
    int rc;

    if ((rc = ldb_fenced(db)) < 0)
        return rc; /* nothing is synced after a failed sync (ldb_fence) */
    if (db->opt.sync != KVS_SYNC_EVERYSEC && !__atomic_load_n(&db->sync_wanted, __ATOMIC_ACQUIRE))
        return 0; /* a tick: only everysec syncs on the schedule */
    rcu_read_lock();
    rc = ldb_sync_pending(db);
    rcu_read_unlock();
    return rc;
}

/* Idle clean-up (under wmu): once writes have stopped for a while, seal the active segment if
 * it holds garbage — only sealed segments can be compacted — and let the caller compact
 * everything that holds dead bytes, whatever the ratio, so an idle store shrinks to about its
 * live data. Runs once per idle period. */
static bool idle_cleanup_due(logdb *db)
{
    KVS_ASSERT(LDB_HOLDS(db, wmu));
    if (!db->opt.auto_compact || db->idle_done || db->last_write_usec == 0 ||
        ldb_is_fenced(db) || clock_usec() - db->last_write_usec < IDLE_USEC)
        return false;
    db->idle_done = true;
    seg *a = db->active;
    if (__atomic_load_n(&a->dead, __ATOMIC_RELAXED) > 0 && ldb_rotate(db, 0) < 0)
        LOG_WARN("idle rotation failed: %s", kvs_last_error());
    return true;
}

/* The pages of sealed segments that reads and key compares brought into the process since the
 * last tick leave it (segment.h): values live on disk, and the resident set should say so. The
 * list is copied under wmu; the read section keeps the segments alive after it. */
static void release_sealed_pages(logdb *db)
{
    seg **v;
    uint32_t n = 0;

    rcu_read_lock();
    LDB_LOCK(db, wmu);
    if ((v = malloc((db->nsegs + 1) * sizeof *v)) != NULL)
        for (uint32_t i = 0; i < db->nsegs; i++)
            if (db->segs[i]->sealed)
                v[n++] = db->segs[i];
    LDB_UNLOCK(db, wmu);
    for (uint32_t i = 0; i < n; i++)
        seg_release_pages(v[i]);
    rcu_read_unlock();
    free(v);
}

/* ---- removing keys found by a walk of the index: the sweep and kvs_clear ---- */

#define SWEEP_STEPS 4096 /* index cursor steps a sweep tick takes at most */
#define CLEAR_BATCH 1024 /* keys a kvs_clear write removes */

typedef struct key_walk {
    logdb *db;
    uint64_t now;      /* the sweep: expired at it */
    uint64_t bound;    /* kvs_clear async: seq <= it; UINT64_MAX: every key */
    bool expiring;     /* the sweep: only expired keys */
    char *buf;         /* the keys found, back to back */
    size_t blen, bcap;
    size_t *lens;
    size_t n, cap;
    int rc;
} key_walk;

static void walk_visit(void *arg, const void *key, uint32_t klen, const idx_loc *loc)
{
    key_walk *w = arg;
    rec_hdr h;

    if (w->rc < 0 || (loc->flags & REC_TOMBSTONE) || loc->seq > w->bound)
        return;
    if (w->expiring && (!rec_decode(loc->seg->map + loc->off, &h) ||
                        !ldb_expired(h.expire_ms, w->now)))
        return;
    if (ARR_RESERVE(w->buf, w->bcap, w->blen + klen + 1) < 0 ||
        ARR_RESERVE(w->lens, w->cap, w->n + 1) < 0) {
        w->rc = kvs_seterr(KVS_ENOMEM, "no memory for the keys of a sweep");
        return;
    }
    memcpy(w->buf + w->blen, key, klen);
    w->blen += klen;
    w->lens[w->n++] = klen;
}

/* Walk from *cursor until max keys are found or the end (*cursor = 0) or steps run out. */
static void walk(key_walk *w, uint64_t *cursor, size_t max, unsigned steps)
{
    w->n = w->blen = 0;
    rcu_read_lock();
    do
        *cursor = w->expiring ? idx_expiring_next(w->db->idx, *cursor, walk_visit, w)
                              : idx_cursor_next(w->db->idx, *cursor, walk_visit, w);
    while (*cursor != IDX_CURSOR_END && w->n < max && --steps > 0 && w->rc == 0);
    rcu_read_unlock();
    if (*cursor == IDX_CURSOR_END)
        *cursor = 0;
}

/* kvs_clear async's update: remove the key unless it was written after the call. */
static int remove_if_older(void *ctx, const kvs_cur *cur, kvs_update_out *out)
{
    if (cur->found && cur->meta.version <= *(const uint64_t *)ctx)
        out->type = KVS_OP_REMOVE;
    return 0;
}

/* Remove the keys w found: a remove op, the sweep's ldb_expire_op, or remove_if_older. The
 * ops' own outcomes (a key gone meanwhile: KVS_ENOTFOUND) are not failures. */
static int remove_found(key_walk *w, int type, kvs_update_fn fn, void *ctx)
{
    kvs_op *ops;
    size_t off = 0;
    int rc = 0;

    if (w->rc < 0 || w->n == 0)
        return w->rc;
    if (!(ops = calloc(w->n, sizeof *ops)))
        return kvs_seterr(KVS_ENOMEM, "no memory for %zu removals", w->n);
    for (size_t i = 0; i < w->n; i++) {
        ops[i] = (kvs_op){.type = type, .key = w->buf + off, .klen = w->lens[i], .update = fn,
                          .update_ctx = ctx};
        off += w->lens[i];
    }
    ldb_write(w->db, ops, w->n);
    for (size_t i = 0; i < w->n && rc == 0; i++)
        if (ops[i].rc < 0 && ops[i].rc != KVS_ENOTFOUND)
            rc = ops[i].rc;
    free(ops);
    return rc;
}

static void walk_free(key_walk *w)
{
    free(w->buf);
    free(w->lens);
}

/* One tick of the expiry sweep (above): at most the credit earned since the last. */
static void expire_sweep(logdb *db)
{
    uint64_t t = clock_usec(), effort = db->opt.expire_effort;
    key_walk w = {.db = db, .now = kvs_clock_ms(&db->opt), .bound = UINT64_MAX,
                  .expiring = true};

    if (effort == 0 || idx_expiring(db->idx) == 0) {
        db->sweep_usec = t;
        return;
    }
    if (db->sweep_usec == 0)
        db->sweep_usec = t - 1000000; /* the first tick: a second's worth */
    db->sweep_credit += (t - db->sweep_usec) * effort / 1000000;
    if (db->sweep_credit > effort)
        db->sweep_credit = effort;
    db->sweep_usec = t;
    uint64_t start = db->sweep_cursor;
    walk(&w, &db->sweep_cursor, db->sweep_credit, SWEEP_STEPS);
    if (remove_found(&w, KVS_OP_UPDATE, ldb_expire_op, NULL) < 0)
        LOG_WARN("expiry sweep: %s", kvs_last_error());
    db->sweep_credit -= w.n < db->sweep_credit ? w.n : db->sweep_credit;
    if (db->sweep_cursor == 0 && start != 0)
        LOG_DEBUG("expiry sweep: one pass over the index done");
    walk_free(&w);
}

int ldb_clear_now(logdb *db)
{
    key_walk w = {.db = db, .bound = UINT64_MAX};
    uint64_t cursor = 0;
    int rc = 0;

    do {
        walk(&w, &cursor, CLEAR_BATCH, UINT32_MAX);
        rc = remove_found(&w, KVS_OP_REMOVE, NULL, NULL);
    } while (cursor != 0 && rc == 0);
    walk_free(&w);
    return rc;
}

int ldb_clear_async(logdb *db)
{
    int rc;

    LDB_LOCK(db, wmu);
    if ((rc = ldb_fenced(db)) == 0) {
        db->clear_bound = db->seq ? db->seq : 1;
        db->clear_cursor = 0; /* a new call starts over: its bound covers the older one's */
        ldb_maint_kick(db);
    }
    LDB_UNLOCK(db, wmu);
    return rc;
}

/* kvs_clear async's work, all of it (a batch at a time, wmu free between them), unless a
 * newer call restarts it or the store closes. */
static void clear_async_run(logdb *db)
{
    key_walk w = {.db = db};
    uint64_t bound, cursor;

    for (;;) {
        LDB_LOCK(db, wmu);
        bound = db->stopping ? 0 : db->clear_bound;
        cursor = db->clear_cursor;
        LDB_UNLOCK(db, wmu);
        if (bound == 0)
            break;
        w.bound = bound;
        walk(&w, &cursor, CLEAR_BATCH, UINT32_MAX);
        int rc = remove_found(&w, KVS_OP_UPDATE, remove_if_older, &bound);
        if (rc < 0)
            LOG_WARN("kvs_clear: %s", kvs_last_error());
        LDB_LOCK(db, wmu);
        if (db->clear_bound == bound) { /* else a newer call started over meanwhile */
            db->clear_cursor = cursor;
            if (cursor == 0 || rc < 0)
                db->clear_bound = 0;
        }
        LDB_UNLOCK(db, wmu);
    }
    walk_free(&w);
}

/* The maintenance thread's tick: hint files, automatic compaction and the resident set, off the
 * write path. */
static int maint_tick(void *arg)
{
    logdb *db = arg;
    int rc = 0;

    LDB_LOCK(db, wmu);
    if (db->stopping || (rc = ldb_fenced(db)) < 0) {
        LDB_UNLOCK(db, wmu);
        return rc; /* fenced: no hints, no compaction, both sync (ldb_fence) */
    }
    bool idle = idle_cleanup_due(db);
    bool due = db->opt.auto_compact && ldb_compact_due(db);
    LDB_UNLOCK(db, wmu);
    ldb_index_drop_retired(db);
    ldb_write_pending_hints(db);
    int64_t crc = idle ? ldb_compact_all(db, true) : due ? ldb_compact_auto(db) : 0;
    if (crc == KVS_ECLOSED)
        return 0; /* closing: a paced run gave up, the rest waits for the next open */
    if (crc < 0)
        LOG_WARN("compaction failed: %s", kvs_last_error());
    clear_async_run(db);
    expire_sweep(db);
    release_sealed_pages(db);
    /* Hand back to the system the heap that hint writing and compaction freed (their 1 MiB
     * buffers end up in a malloc arena once glibc's mmap threshold has risen past them): with
     * values on disk and a compact index, that freed heap was a tenth of the process's RSS. */
    malloc_trim(0);
    return 0;
}

int ldb_threads_start(logdb *db)
{
    int rc = syncer_start_nice(&db->maint, "maintenance", MAINT_TICK_MS, maint_tick, db,
                               db->opt.compact_nice);

    if (rc < 0)
        return rc;
    return syncer_start(&db->syncer, "sync", SYNCER_EVERYSEC_MS, sync_tick, db);
}

/* stopping goes up first, under wmu: from then on no write commits and no kick reaches a thread
 * that may be gone. */
void ldb_threads_stop(logdb *db)
{
    LDB_LOCK(db, wmu);
    db->stopping = true;
    LDB_UNLOCK(db, wmu);
    syncer_stop(&db->syncer);
    syncer_stop(&db->maint);
}
