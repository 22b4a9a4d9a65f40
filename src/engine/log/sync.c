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
 * Positions (kvs.h): the durable position is a sequence number — every record of seq <= it is
 * on disk. A sync takes, under wmu, the segments to sync and db->seq as its target; once its
 * fdatasyncs are done the target is durable (what a later batch appended may be too: a
 * position only promises at least). Syncs that take a target (ldb_sync_written) run one at a
 * time (syncmu), so that a sync finishing cannot claim what another still has in flight; the
 * sync under wmu (ldb_sync_locked) syncs the active segment whether or not it looks dirty, which
 * waits for such a flight, and claims db->seq. Each advance wakes the waiters (dcv) and calls
 * the store's on_durable; so does the fence, after which nothing advances.
 *
 * The lowest of the files that work on the logdb (logdb.h): it calls none of them.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <urcu-bp.h>

#include "engine/log/logdb.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/io.h"

#ifdef KVS_TEST_HOOKS
unsigned kvs_test_sync_delay_us = 0;
unsigned kvs_test_syncer_delay_us = 0;
#endif

static void durable_notify(logdb *db)
{
    if (db->opt.on_durable)
        db->opt.on_durable(db->opt.durable_ctx);
}

int ldb_fence(logdb *db, const char *why)
{
    int rc = fence_raise(&db->fence, db->dir, why);

    pthread_mutex_lock(&db->dmu); /* the waiters learn that their positions never come */
    pthread_cond_broadcast(&db->dcv);
    pthread_mutex_unlock(&db->dmu);
    durable_notify(db);
    return rc;
}

/* Records up to seq (bytes of the log up to bytes) are on disk (under wmu). */
static void durable_advance(logdb *db, uint64_t seq, uint64_t bytes, uint64_t since_usec)
{
    KVS_ASSERT(LDB_HOLDS(db, wmu));
    if (seq <= __atomic_load_n(&db->durable, __ATOMIC_ACQUIRE))
        return;
    /* the oldest write not yet durable came after the target was taken, if any did */
    db->undurable_usec = db->appended == bytes ? 0 : since_usec;
    pthread_mutex_lock(&db->dmu);
    uint64_t writes = __atomic_load_n(&db->writes, __ATOMIC_RELAXED);
    __atomic_add_fetch(&db->durable_writes, writes - db->durable_writes_mark, __ATOMIC_RELAXED);
    db->durable_writes_mark = writes;
    __atomic_add_fetch(&db->durable_syncs, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&db->durable_bytes, bytes, __ATOMIC_RELAXED);
    __atomic_store_n(&db->durable, seq, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&db->dcv);
    pthread_mutex_unlock(&db->dmu);
    durable_notify(db);
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
    pthread_mutex_lock(&db->syncmu);
    LDB_LOCK(db, wmu);
    seg **v = take_unsynced(db, &n, &sealed, &active);
    uint64_t target = db->seq, bytes = db->appended, since = clock_usec();
    if (v && n == 0) /* no sync in flight (syncmu) and nothing unsynced: all of it is durable */
        durable_advance(db, target, bytes, since);
    LDB_UNLOCK(db, wmu);
    if (!v || n == 0) {
        pthread_mutex_unlock(&db->syncmu);
        free(v);
        return v ? 0 : KVS_ENOMEM;
    }
    if (kvs_test_sync_delay_us)
        usleep(kvs_test_sync_delay_us);
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
    if (rc == 0) {
        __atomic_add_fetch(&db->syncs, 1, __ATOMIC_RELAXED);
        durable_advance(db, target, bytes, since);
    }
    LDB_UNLOCK(db, wmu);
    pthread_mutex_unlock(&db->syncmu);
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
    /* the active segment even if it looks clean: a sync outside wmu may have its writes in
     * flight (take_unsynced cleared the flag), and this one claims them durable too */
    if (rc == 0 && db->active && (rc = ldb_sync_seg(db, db->active)) == 0)
        db->dirty = false;
    if (rc == 0) {
        __atomic_add_fetch(&db->syncs, 1, __ATOMIC_RELAXED);
        durable_advance(db, db->seq, db->appended, clock_usec());
    }
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

int ldb_durable(logdb *db, uint64_t *pos)
{
    *pos = __atomic_load_n(&db->durable, __ATOMIC_ACQUIRE);
    return ldb_fenced(db);
}

int ldb_sync_soon(logdb *db)
{
    int rc = ldb_fenced(db);

    if (rc < 0)
        return rc;
    __atomic_store_n(&db->sync_wanted, true, __ATOMIC_RELEASE);
    syncer_kick(&db->syncer);
    return 0;
}

int ldb_wait_durable(logdb *db, uint64_t pos, long timeout_ms)
{
    struct timespec until;
    int rc = 0;

    if (__atomic_load_n(&db->durable, __ATOMIC_ACQUIRE) >= pos)
        return 0;
    bool asks = db->opt.sync != KVS_SYNC_ALWAYS || db->opt.sync_on_request;
    if (asks && (rc = ldb_sync_soon(db)) < 0)
        return rc;
    if (timeout_ms >= 0) {
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&db->dmu);
    while (__atomic_load_n(&db->durable, __ATOMIC_ACQUIRE) < pos && !ldb_is_fenced(db)) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&db->dcv, &db->dmu);
        } else if (pthread_cond_timedwait(&db->dcv, &db->dmu, &until) == ETIMEDOUT) {
            rc = KVS_ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&db->dmu);
    if (__atomic_load_n(&db->durable, __ATOMIC_ACQUIRE) >= pos)
        return 0;
    if (rc == KVS_ETIMEDOUT)
        return kvs_seterr(rc, "position %llu not durable within %ld ms",
                          (unsigned long long)pos, timeout_ms);
    return ldb_fenced(db);
}

/* After a sync: go again at once? Under always, while anything applied is not yet durable;
 * with sync_on_request, only when asked again (kvs_sync_soon) meanwhile — the caller asks when
 * it has applied what it has at hand, and a sync started earlier would cover only part of it. */
static bool more_to_sync(logdb *db)
{
    if (db->opt.sync != KVS_SYNC_ALWAYS)
        return false;
    if (db->opt.sync_on_request)
        return __atomic_load_n(&db->sync_wanted, __ATOMIC_ACQUIRE);
    return __atomic_load_n(&db->applied, __ATOMIC_ACQUIRE) >
           __atomic_load_n(&db->durable, __ATOMIC_ACQUIRE);
}

int ldb_sync_pending(logdb *db)
{
    int rc;

    do {
        __atomic_store_n(&db->sync_wanted, false, __ATOMIC_RELEASE);
        if ((rc = ldb_fenced(db)) < 0)
            return rc;
        rc = ldb_sync_written(db, kvs_test_syncer_delay_us); /* a failure fences the store */
    } while (rc == 0 && more_to_sync(db));
    return rc;
}
