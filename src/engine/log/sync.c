/*
 * sync.c — making writes durable: syncing segments in commit order, and the fence a failed sync
 * raises.
 *
 * Order of syncs: whoever syncs (the leader with KVS_SYNC_ALWAYS, the everysec syncer, the hint
 * writer, a compaction before its commit, close) syncs sealed segments oldest first, then the
 * active one, so what a power cut leaves is a prefix of the commit order — recovery relies on
 * it to tell a torn tail from damage (seg_scan_unsynced). A sealed segment that still holds
 * unsynced writes says so (needs_sync, set by rotation); the active one's are db->dirty.
 *
 * A failed sync fences the store (ldb_fence, kvs.h "Durability"): the kernel may have dropped
 * the pages it could not write and marked them clean, so no sync is retried and nothing is
 * acknowledged after it; every later write gets KVS_ESYNC, reads go on. Syncs of one segment are
 * one at a time (ldb_sync_seg) so that a sync cannot succeed, unseen, just after another failed.
 *
 * The lowest of the files that work on the logdb (logdb.h): it calls none of them.
 */
#include <stdlib.h>
#include <unistd.h>
#include <urcu-bp.h>

#include "engine/log/logdb.h"
#include "util/err.h"
#include "util/io.h"

unsigned kvs_test_sync_delay_us = 0;
unsigned kvs_test_syncer_delay_us = 0;

int ldb_fence(logdb *db, const char *why)
{
    return fence_raise(&db->fence, db->dir, why);
}

int ldb_fenced(logdb *db)
{
    return fence_check(&db->fence);
}

bool ldb_fence_if_sync_failed(logdb *db)
{
    if (!io_take_sync_failure())
        return false;
    ldb_fence(db, kvs_last_error());
    return true;
}

int ldb_sync_seg(logdb *db, seg *s)
{
    int rc;

    pthread_mutex_lock(&s->smu);
    if ((rc = ldb_fenced(db)) == 0 && (rc = io_fdatasync(s->fd, s->path)) < 0 &&
        io_take_sync_failure())
        rc = ldb_fence(db, kvs_last_error());
    pthread_mutex_unlock(&s->smu);
    return rc;
}

/* The segments with unsynced writes, in the order they are synced (under wmu): the sealed ones
 * oldest first (*sealed of them), then the active one if dirty — its flag cleared now, so that
 * what is appended meanwhile marks it again. NULL when out of memory. */
static seg **take_unsynced(logdb *db, uint32_t *n, uint32_t *sealed, bool *active)
{
    seg **v = malloc((db->nsegs + 1) * sizeof *v);

    *n = 0;
    for (uint32_t i = 0; v && i < db->nsegs; i++)
        if (db->segs[i]->needs_sync)
            v[(*n)++] = db->segs[i];
    *sealed = *n;
    *active = v && db->dirty;
    if (*active) {
        v[(*n)++] = db->active;
        db->dirty = false;
    }
    return v;
}

/* Writes landing while the syncs run outside wmu replaced nothing a compaction dropped, and the
 * syncer syncs them next time. The sealed segments' flags are cleared only once their sync is
 * done, and only theirs: the active segment may be sealed meanwhile. */
int ldb_sync_written(logdb *db, unsigned hold_us)
{
    uint32_t n, sealed;
    bool active;
    int rc = 0;

    KVS_ASSERT(!LDB_HOLDS(db, wmu) && (LDB_HOLDS(db, cmu) || rcu_read_ongoing()));
    LDB_LOCK(db, wmu);
    seg **v = take_unsynced(db, &n, &sealed, &active);
    LDB_UNLOCK(db, wmu);
    if (!v || n == 0) {
        free(v);
        return v ? 0 : KVS_ENOMEM;
    }
    for (uint32_t i = 0; i < n && rc == 0; i++)
        rc = ldb_sync_seg(db, v[i]);
    if (hold_us)
        usleep(hold_us);
    /* (Taking wmu inside a read section cannot deadlock: no one waits for a grace period while
     * holding wmu.) */
    LDB_LOCK(db, wmu);
    if (hold_us)
        usleep(hold_us);
    for (uint32_t i = 0; rc == 0 && i < sealed; i++)
        v[i]->needs_sync = false; /* sealed: nothing is appended to them any more */
    if (rc < 0 && active)
        db->dirty = true;
    if (rc == 0)
        __atomic_add_fetch(&db->syncs, 1, __ATOMIC_RELAXED);
    LDB_UNLOCK(db, wmu);
    free(v);
    return rc;
}

int ldb_sync_locked(logdb *db)
{
    int rc = 0;

    KVS_ASSERT(LDB_HOLDS(db, wmu));
    if ((rc = ldb_fenced(db)) < 0)
        return rc;
    __atomic_add_fetch(&db->syncs_started, 1, __ATOMIC_RELAXED);
    if (kvs_test_sync_delay_us)
        usleep(kvs_test_sync_delay_us);
    for (uint32_t i = 0; i < db->nsegs && rc == 0; i++) {
        seg *s = db->segs[i];
        if (s->needs_sync && (rc = ldb_sync_seg(db, s)) == 0)
            s->needs_sync = false;
    }
    if (rc == 0 && db->dirty && (rc = ldb_sync_seg(db, db->active)) == 0)
        db->dirty = false;
    if (rc == 0)
        __atomic_add_fetch(&db->syncs, 1, __ATOMIC_RELAXED);
    return rc;
}

int ldb_sync(logdb *db)
{
    int rc;

    LDB_LOCK(db, wmu);
    rc = ldb_sync_locked(db);
    LDB_UNLOCK(db, wmu);
    return rc;
}
