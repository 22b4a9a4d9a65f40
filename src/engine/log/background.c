/*
 * background.c — the store's two background threads, both util/syncer.h threads ticking once a
 * second:
 *
 *   - the syncer (KVS_SYNC_EVERYSEC only): syncs what was written since the last sync, sealed
 *     segments first, as every sync does (sync.c). The fdatasyncs run outside wmu so writers go
 *     on; an RCU read section keeps the segments (and their fds) from being retired meanwhile;
 *   - the maintenance thread: hint files of sealed segments, automatic compaction and the idle
 *     clean-up — all off the write path — and the removal of the saved index an open read
 *     (saved.h: a slow unlink, kept off the open). Rotation and commits that leave work waiting
 *     wake it early (ldb_maint_kick, logdb.h), and so does an open that read a saved index.
 *
 * A failed sync fences the store, and from then on neither thread does anything: the syncer's
 * work is syncing, and the maintenance thread's hint files and compactions sync too. Each
 * returns KVS_ESYNC once fenced, and util/syncer.h calls it no more.
 *
 * Above every other file of the engine but engine.c, which starts and stops the threads.
 */
#include <malloc.h>
#include <urcu-bp.h>

#include "engine/log/logdb.h"
#include "engine/log/saved.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/log.h"

#define MAINT_TICK_MS 1000 /* the maintenance thread looks for work at least this often */
#define IDLE_USEC 2000000 /* no writes for this long: the store is idle */

/* everysec: the syncer's tick. Compaction frees a segment a grace period after taking it off
 * the list, without taking wmu, so the read section, not wmu, keeps a segment synced here alive
 * until its flag is cleared (inside it: ldb_sync_written). */
static int sync_tick(void *arg)
{
    logdb *db = arg;
    int rc;

    if ((rc = ldb_fenced(db)) < 0)
        return rc; /* nothing is synced after a failed sync (ldb_fence) */
    rcu_read_lock();
    rc = ldb_sync_written(db, kvs_test_syncer_delay_us); /* a failure fences the store */
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
    if ((idle ? ldb_compact_all(db) : due ? ldb_compact_auto(db) : 0) < 0)
        LOG_WARN("compaction failed: %s", kvs_last_error());
    release_sealed_pages(db);
    /* Hand back to the system the heap that hint writing and compaction freed (their 1 MiB
     * buffers end up in a malloc arena once glibc's mmap threshold has risen past them): with
     * values on disk and a compact index, that freed heap was a tenth of the process's RSS. */
    malloc_trim(0);
    return 0;
}

int ldb_threads_start(logdb *db)
{
    int rc = syncer_start(&db->maint, "maintenance", MAINT_TICK_MS, maint_tick, db);

    if (rc < 0 || db->opt.sync != KVS_SYNC_EVERYSEC)
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
