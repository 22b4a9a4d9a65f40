/*
 * commit.c — the write path: appending records, rotating the active segment, syncing.
 *
 * One writer at a time (wmu) appends a record at the active segment's end with one pwritev of
 * header, key and value, then publishes it in the index. The order matters: the record is in the
 * kernel before the index names it, so a reader can only find data that a crash would keep, and a
 * write is acknowledged only after both. With KVS_SYNC_ALWAYS the fdatasync also comes before the
 * acknowledgement; with EVERYSEC a background thread syncs once a second; with NEVER the kernel
 * decides.
 *
 * Rotation (the active segment is full): sync it, create the next segment, make that active with
 * one manifest edit, then write the sealed segment's hint file. A crash between any two steps
 * leaves either the old state (an unnamed new file, deleted at open) or the new one (a sealed
 * segment without a hint, scanned at open).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <urcu-bp.h>

#include "engine/log/hint.h"
#include "engine/log/logdb.h"
#include "util/err.h"
#include "util/io.h"
#include "util/log.h"

#define MAN_RESET_EDITS 1024

void log_mark_dead(seg *s, uint64_t bytes)
{
    __atomic_add_fetch(&s->dead, bytes, __ATOMIC_RELAXED);
}

int log_segs_add(logdb *db, seg *s)
{
    uint32_t i;

    if (db->nsegs == db->capsegs) {
        uint32_t cap = db->capsegs ? db->capsegs * 2 : 16;
        seg **v = realloc(db->segs, cap * sizeof *v);
        if (!v)
            return KVS_ENOMEM;
        db->segs = v;
        db->capsegs = cap;
    }
    for (i = db->nsegs; i > 0 && db->segs[i - 1]->id > s->id; i--)
        db->segs[i] = db->segs[i - 1];
    db->segs[i] = s;
    db->nsegs++;
    return 0;
}

void log_segs_remove(logdb *db, seg *s)
{
    for (uint32_t i = 0; i < db->nsegs; i++)
        if (db->segs[i] == s) {
            memmove(db->segs + i, db->segs + i + 1, (db->nsegs - i - 1) * sizeof *db->segs);
            db->nsegs--;
            return;
        }
}

int log_manifest_maybe_reset(logdb *db)
{
    uint32_t *ids;
    int rc;

    if (db->man.edits < MAN_RESET_EDITS)
        return 0;
    ids = malloc(db->nsegs * sizeof *ids);
    if (!ids)
        return KVS_ENOMEM;
    for (uint32_t i = 0; i < db->nsegs; i++)
        ids[i] = db->segs[i]->id;
    rc = man_reset(db->dir, &db->man, db->active->id, ids, db->nsegs);
    free(ids);
    return rc;
}

static int sync_active(logdb *db)
{
    int rc = io_fdatasync(db->active->fd, db->active->path);
    if (rc == 0) {
        db->dirty = false;
        __atomic_add_fetch(&db->syncs, 1, __ATOMIC_RELAXED);
    }
    return rc;
}

/* Seal the active segment and start the next one (under wmu). */
static int rotate(logdb *db)
{
    seg *old = db->active, *s;
    int rc;

    if ((rc = sync_active(db)) < 0)
        return rc;
    if ((rc = seg_create(db->dir, db->next_id, &s)) < 0)
        return rc;
    if ((rc = man_append(&db->man, s->id, &s->id, 1, NULL, 0)) < 0 ||
        (rc = log_segs_add(db, s)) < 0) {
        seg_destroy(s);
        return rc;
    }
    db->next_id++;
    old->sealed = true;
    __atomic_store_n(&db->active, s, __ATOMIC_RELEASE);
    if ((rc = hint_write(db->dir, old)) < 0 || (rc = io_fsync_dir(db->dir)) < 0)
        LOG_WARN("%s: no hint file written (%s); the segment will be scanned at open",
                 old->path, kvs_last_error());
    if ((rc = log_manifest_maybe_reset(db)) < 0)
        LOG_WARN("manifest rewrite failed: %s", kvs_last_error());
    return 0;
}

/* The index half of a write: publish the new record, account what it replaced. */
static int publish(logdb *db, seg *s, uint64_t off, uint64_t seq, uint8_t flags,
                   const void *key, uint32_t klen, uint32_t vlen)
{
    idx_loc loc = {s, (uint32_t)off, vlen, seq, 0}, old;
    int r;

    if (flags & REC_TOMBSTONE) {
        log_mark_dead(s, rec_len(klen, 0));
        r = idx_del(db->idx, key, klen, &old);
        if (r == 0)
            log_mark_dead(old.seg, rec_len(klen, old.vlen));
        return 0;
    }
    r = idx_put(db->idx, key, klen, &loc, &old);
    if (r < 0)
        return kvs_seterr(r, "index update failed for a write already in the log");
    if (r == 1)
        log_mark_dead(old.seg, rec_len(klen, old.vlen));
    return 0;
}

int log_append(logdb *db, uint8_t flags, const void *key, uint32_t klen, const void *val,
               uint32_t vlen)
{
    unsigned char hdr[REC_HDR];
    uint64_t len = rec_len(klen, vlen), seq, off;
    idx_loc cur;
    seg *s;
    int rc;

    pthread_mutex_lock(&db->wmu);
    if (db->stopping) {
        rc = kvs_seterr(KVS_ECLOSED, "the store is closing");
        goto out;
    }
    if (flags & REC_TOMBSTONE) {
        rcu_read_lock();
        rc = idx_lookup(db->idx, key, klen, &cur);
        rcu_read_unlock();
        if (rc < 0)
            goto out;
    }
    if (db->active->size > SEG_HDR && db->active->size + len > db->opt.segment_size &&
        (rc = rotate(db)) < 0)
        goto out;
    s = db->active;
    seq = db->seq + 1;
    off = s->size;
    rec_encode(hdr, seq, flags, key, klen, val, vlen);
    struct iovec iov[3] = {{hdr, REC_HDR}, {(void *)key, klen}, {(void *)val, vlen}};
    if ((rc = io_pwritev_full(s->fd, iov, 3, off, s->path)) < 0) {
        /* Later appends overwrite from off anyway; truncating keeps the file clean meanwhile. */
        if (ftruncate(s->fd, (off_t)off) < 0)
            LOG_WARN("%s: cannot cut a failed append at %llu: %s", s->path,
                     (unsigned long long)off, strerror(errno));
        goto out;
    }
    db->seq = seq;
    __atomic_store_n(&s->size, off + len, __ATOMIC_RELEASE);
    if (s->min_seq == UINT64_MAX)
        s->min_seq = seq;
    s->max_seq = seq;
    db->dirty = true;
    __atomic_add_fetch(&db->writes, 1, __ATOMIC_RELAXED);
    if ((rc = publish(db, s, off, seq, flags, key, klen, vlen)) < 0)
        goto out;
    if (db->opt.sync == KVS_SYNC_ALWAYS && (rc = sync_active(db)) < 0)
        goto out;
    if (db->opt.auto_compact && !db->compacting) {
        int64_t r = log_compact_auto(db);
        if (r < 0)
            LOG_WARN("compaction failed: %s", kvs_last_error());
    }
out:
    pthread_mutex_unlock(&db->wmu);
    return rc;
}

int log_sync(logdb *db)
{
    int rc;

    pthread_mutex_lock(&db->wmu);
    rc = sync_active(db);
    pthread_mutex_unlock(&db->wmu);
    return rc;
}

static void *syncer_main(void *arg)
{
    logdb *db = arg;
    struct timespec next;

    pthread_mutex_lock(&db->wmu);
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (!db->stopping) {
        next.tv_sec += 1;
        while (!db->stopping &&
               pthread_cond_timedwait(&db->stop_cv, &db->wmu, &next) != ETIMEDOUT)
            ;
        if (db->stopping || !db->dirty)
            continue;
        /* Sync outside wmu so writers go on; the read section keeps the segment (and its fd)
         * from being retired meanwhile. */
        seg *s = db->active;
        db->dirty = false;
        rcu_read_lock();
        pthread_mutex_unlock(&db->wmu);
        int rc = io_fdatasync(s->fd, s->path);
        rcu_read_unlock();
        pthread_mutex_lock(&db->wmu);
        if (rc < 0) {
            LOG_ERROR("background sync failed: %s", kvs_last_error());
            db->dirty = true;
        } else {
            __atomic_add_fetch(&db->syncs, 1, __ATOMIC_RELAXED);
        }
    }
    pthread_mutex_unlock(&db->wmu);
    return NULL;
}

int log_syncer_start(logdb *db)
{
    pthread_condattr_t ca;
    int e;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&db->stop_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (db->opt.sync != KVS_SYNC_EVERYSEC)
        return 0;
    if ((e = pthread_create(&db->syncer, NULL, syncer_main, db)) != 0)
        return kvs_seterr(KVS_ENOMEM, "cannot start the sync thread: %s", strerror(e));
    db->syncer_running = true;
    return 0;
}

void log_syncer_stop(logdb *db)
{
    pthread_mutex_lock(&db->wmu);
    db->stopping = true;
    pthread_cond_broadcast(&db->stop_cv);
    pthread_mutex_unlock(&db->wmu);
    if (db->syncer_running)
        pthread_join(db->syncer, NULL);
    db->syncer_running = false;
}
