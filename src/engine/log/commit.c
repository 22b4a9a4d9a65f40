/*
 * commit.c — the write path: appending records, rotating the active segment, syncing.
 *
 * Writers queue (group commit, below); the leader appends the records of the whole batch at the
 * active segment's end with one pwritev of headers, keys and values, then publishes them in the
 * index. The order matters: the record is in the
 * kernel before the index names it, so a reader can only find data that a crash would keep, and a
 * write is acknowledged only after both. With KVS_SYNC_ALWAYS the fdatasync also comes before the
 * acknowledgement; with EVERYSEC a background thread syncs once a second; with NEVER the kernel
 * decides.
 *
 * Rotation (the active segment is full): sync it, create the next segment, make that active with
 * one manifest edit, then write the sealed segment's hint file. A crash between any two steps
 * leaves either the old state (an unnamed new file, deleted at open) or the new one (a sealed
 * segment without a hint, scanned at open).
 *
 * Order of syncs: whoever syncs (the leader with KVS_SYNC_ALWAYS, the everysec syncer, the hint
 * writer, a compaction before its commit) syncs sealed segments oldest first, then the active
 * one, so what a power cut leaves is a prefix of the commit order — recovery relies on it to
 * tell a torn tail from damage (seg_scan_unsynced).
 *
 * A failed sync fences the store (log_fence, kvs.h "Durability"): the kernel may have dropped
 * the pages it could not write and marked them clean, so no sync is retried and nothing is
 * acknowledged after it; every later write gets KVS_ESYNC, reads go on. Syncs of one segment are
 * one at a time (log_sync_seg) so that a sync cannot succeed, unseen, just after another failed.
 * A failure that is not a sync's (ENOSPC from fallocate) fails its batch and nothing more.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <urcu-bp.h>

#include "engine/log/hint.h"
#include "engine/log/logdb.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/io.h"
#include "util/log.h"

unsigned log_manifest_reset_edits = 1024;
unsigned kvs_test_syncer_delay_us = 0;

int log_fence(logdb *db, const char *why)
{
    return fence_raise(&db->fence, db->dir, why);
}

int log_fenced(logdb *db)
{
    return fence_check(&db->fence);
}

bool log_fence_if_sync_failed(logdb *db)
{
    if (!io_take_sync_failure())
        return false;
    log_fence(db, kvs_last_error());
    return true;
}

int log_sync_seg(logdb *db, seg *s)
{
    int rc;

    pthread_mutex_lock(&s->smu);
    if ((rc = log_fenced(db)) == 0 && (rc = io_fdatasync(s->fd, s->path)) < 0 &&
        io_take_sync_failure())
        rc = log_fence(db, kvs_last_error());
    pthread_mutex_unlock(&s->smu);
    return rc;
}

/* Compaction calls this right before its commit. It dropped the records that newer writes
 * replaced, and the commit makes the drop durable: the newer writes must be durable first, or a
 * power cut after the commit loses both (with everysec, a key written long ago would vanish).
 * Sealed segments first, oldest first, then the active one, as the syncer does — and outside
 * wmu, as the syncer does: writes landing meanwhile replaced nothing the compaction dropped. */
int log_sync_written(logdb *db)
{
    seg **v;
    uint32_t n = 0, sealed;
    int rc = 0;

    pthread_mutex_lock(&db->wmu);
    v = malloc((db->nsegs + 1) * sizeof *v);
    for (uint32_t i = 0; v && i < db->nsegs; i++)
        if (db->segs[i]->needs_sync)
            v[n++] = db->segs[i];
    sealed = n;
    bool active = v && db->dirty;
    if (active) {
        v[n++] = db->active;
        db->dirty = false;
    }
    pthread_mutex_unlock(&db->wmu);
    if (!v)
        return KVS_ENOMEM;
    /* no lock: only compaction frees segments, and the caller holds cmu */
    for (uint32_t i = 0; i < n && rc == 0; i++)
        rc = log_sync_seg(db, v[i]);
    pthread_mutex_lock(&db->wmu);
    for (uint32_t i = 0; rc == 0 && i < sealed; i++)
        v[i]->needs_sync = false; /* sealed: nothing is appended to them any more */
    if (rc < 0 && active)
        db->dirty = true;
    if (rc == 0 && n > 0)
        __atomic_add_fetch(&db->syncs, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&db->wmu);
    free(v);
    return rc;
}

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

/* The live list is the manifest's state (compaction changes both under one hold of wmu), so
 * the rewrite names exactly what replaying the old manifest would. Not while a compaction runs:
 * a rewrite between its commit and the deletion of its victims would forget that they were
 * dropped, and a crash then would leave them as unnamed files recovery must keep (they may hold
 * records the compaction deliberately left behind); the compaction's end calls this again. */
int log_manifest_maybe_reset(logdb *db)
{
    if (db->man.edits < log_manifest_reset_edits || db->compacting || log_is_fenced(db))
        return 0;
    return log_manifest_rewrite(db);
}

int log_manifest_rewrite(logdb *db)
{
    uint32_t *ids = malloc(db->nsegs * sizeof *ids);
    int rc;

    if (!ids)
        return KVS_ENOMEM;
    for (uint32_t i = 0; i < db->nsegs; i++)
        ids[i] = db->segs[i]->id;
    rc = man_reset(db->dir, &db->man, db->active->id, ids, db->nsegs);
    free(ids);
    return rc;
}

unsigned kvs_test_sync_delay_us = 0;

/* Sync what is written and not yet synced (under wmu): sealed segments that still hold unsynced
 * writes first, oldest first, then the active one — so what survives a crash is always a
 * prefix of the log. */
int log_sync_locked(logdb *db)
{
    int rc = 0;

    if ((rc = log_fenced(db)) < 0)
        return rc;
    __atomic_add_fetch(&db->syncs_started, 1, __ATOMIC_RELAXED);
    if (kvs_test_sync_delay_us)
        usleep(kvs_test_sync_delay_us);
    for (uint32_t i = 0; i < db->nsegs && rc == 0; i++) {
        seg *s = db->segs[i];
        if (s->needs_sync && (rc = log_sync_seg(db, s)) == 0)
            s->needs_sync = false;
    }
    if (rc == 0 && db->dirty && (rc = log_sync_seg(db, db->active)) == 0)
        db->dirty = false;
    if (rc == 0)
        __atomic_add_fetch(&db->syncs, 1, __ATOMIC_RELAXED);
    return rc;
}

int log_add_active_seg(logdb *db, uint64_t cap, seg **out)
{
    uint32_t id;
    seg *s;
    int rc;

    if ((rc = log_take_seg_id(db, &id)) < 0 || (rc = seg_create(db->dir, id, cap, &s)) < 0)
        return rc;
    if ((rc = log_segs_add(db, s)) < 0) {
        seg_destroy(s);
        return rc;
    }
    if ((rc = man_append(&db->man, s->id, &s->id, 1, NULL, 0)) < 0) {
        log_segs_remove(db, s);
        /* A failed sync leaves it unknown whether the edit reached the disk: keep the file it
         * names (empty: at the next open it is either the active segment or deleted). */
        if (log_fence_if_sync_failed(db))
            seg_close(s);
        else
            seg_destroy(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* Seal the active segment and start the next one (under wmu). The sealed segment's hint file
 * is written by the maintenance thread, not here: a writer never waits for a scan. */
static int rotate(logdb *db, uint64_t need)
{
    seg *old = db->active, *s;
    uint64_t cap = db->opt.segment_size > SEG_HDR + need ? db->opt.segment_size : SEG_HDR + need;
    int rc;

    /* No sync here (it would stall every writer): the old segment's unsynced writes are synced
     * by whoever syncs next, before the new segment's (log_sync_locked). */
    if ((rc = log_add_active_seg(db, cap, &s)) < 0)
        return rc;
    old->needs_sync = db->dirty;
    db->dirty = false;
    if (seg_seal(old) < 0)
        LOG_WARN("%s", kvs_last_error()); /* only the preallocated tail stays */
    old->needs_hint = true;
    __atomic_store_n(&db->active, s, __ATOMIC_RELEASE);
    if ((rc = log_manifest_maybe_reset(db)) < 0 && !log_fence_if_sync_failed(db))
        LOG_WARN("manifest rewrite failed: %s", kvs_last_error());
    log_maint_kick(db);
    return 0;
}

/* The index half of a write: publish the new record, account what it replaced. The replaced
 * record's segment may be a compaction victim: the read section keeps it from being freed
 * until its dead bytes are counted. */
static int publish(logdb *db, seg *s, uint64_t off, uint64_t seq, const kvs_op *op)
{
    bool tomb = op->type == KVS_OP_REMOVE;
    idx_loc loc = {s, (uint32_t)off, (uint32_t)op->vlen, seq, 0}, old;
    int r;

    rcu_read_lock();
    if (tomb) {
        log_mark_dead(s, rec_len((uint32_t)op->klen, 0));
        r = idx_del(db->idx, op->key, op->klen, &old) == 0 ? 1 : 0;
    } else {
        r = idx_put(db->idx, op->key, op->klen, &loc, &old);
    }
    if (r == 1)
        log_mark_dead(old.seg, rec_len((uint32_t)op->klen, old.vlen));
    rcu_read_unlock();
    if (r < 0)
        return kvs_seterr(r, "index update failed for a write already in the log");
    return 0;
}

/*
 * Group commit. A batch is every write queued while the previous batch was being committed.
 * Its records are appended with as few pwritev calls as the batch allows — one, unless it must
 * rotate or a remove has to see the effect of earlier writes in the batch — and with
 * KVS_SYNC_ALWAYS one fdatasync covers all of them. Only then is any writer in it told.
 */
#define PENDING_INLINE 16 /* most batches fit here: no allocation on the write path */

typedef struct pending {
    unsigned char (*hdr)[REC_HDR];
    kvs_op **ops;
    uint64_t *seqs, *offs;
    size_t n, cap;
    uint64_t bytes;
    unsigned char inline_hdr[PENDING_INLINE][REC_HDR];
    kvs_op *inline_ops[PENDING_INLINE];
    uint64_t inline_seqs[PENDING_INLINE], inline_offs[PENDING_INLINE];
} pending;

static void pending_init(pending *p)
{
    p->hdr = p->inline_hdr;
    p->ops = p->inline_ops;
    p->seqs = p->inline_seqs;
    p->offs = p->inline_offs;
    p->n = p->bytes = 0;
    p->cap = PENDING_INLINE;
}

/* Move to a heap copy of cap entries (only ever growing). */
static void *regrow(void *cur, void *inl, size_t used, size_t size)
{
    void *v = cur == inl ? malloc(size) : realloc(cur, size);
    if (v && cur == inl)
        memcpy(v, inl, used);
    return v;
}

static int pending_reserve(pending *p, size_t n)
{
    if (n <= p->cap)
        return 0;
    size_t cap = n > 2 * p->cap ? n : 2 * p->cap;
    void *hdr = regrow(p->hdr, p->inline_hdr, p->n * REC_HDR, cap * REC_HDR);
    if (hdr)
        p->hdr = hdr;
    void *ops = regrow(p->ops, p->inline_ops, p->n * sizeof *p->ops, cap * sizeof *p->ops);
    if (ops)
        p->ops = ops;
    void *seqs = regrow(p->seqs, p->inline_seqs, p->n * 8, cap * 8);
    if (seqs)
        p->seqs = seqs;
    void *offs = regrow(p->offs, p->inline_offs, p->n * 8, cap * 8);
    if (offs)
        p->offs = offs;
    if (!hdr || !ops || !seqs || !offs)
        return KVS_ENOMEM; /* p stays consistent: every array still holds cap entries */
    p->cap = cap;
    return 0;
}

static void pending_free(pending *p)
{
    if (p->hdr != p->inline_hdr)
        free(p->hdr);
    if (p->ops != p->inline_ops)
        free(p->ops);
    if (p->seqs != p->inline_seqs)
        free(p->seqs);
    if (p->offs != p->inline_offs)
        free(p->offs);
}

/* Copy the pending records into the active segment's mapping, then publish them (under wmu).
 * Once copied they are in the page cache: a killed process loses none of them. */
static int flush_pending(logdb *db, pending *p)
{
    seg *s = db->active;
    uint64_t off = s->size;
    int rc = 0;

    if (p->n == 0)
        return 0;
    if ((rc = seg_reserve(s, off + p->bytes)) < 0) {
        for (size_t i = 0; i < p->n; i++)
            p->ops[i]->rc = rc;
        p->n = 0;
        p->bytes = 0;
        return rc;
    }
    unsigned char *dst = s->map + off;
    for (size_t i = 0; i < p->n; i++) {
        const kvs_op *op = p->ops[i];
        size_t vlen = op->type == KVS_OP_SET ? op->vlen : 0;
        memcpy(dst, p->hdr[i], REC_HDR);
        memcpy(dst + REC_HDR, op->key, op->klen);
        if (vlen) /* a remove's val may be NULL: no zero-length copy from it */
            memcpy(dst + REC_HDR + op->klen, op->val, vlen);
        dst += REC_HDR + op->klen + vlen;
    }
    __atomic_store_n(&s->size, off + p->bytes, __ATOMIC_RELEASE);
    if (s->min_seq == UINT64_MAX)
        s->min_seq = p->seqs[0];
    s->max_seq = p->seqs[p->n - 1];
    db->dirty = true;
    __atomic_add_fetch(&db->writes, p->n, __ATOMIC_RELAXED);
    for (size_t i = 0; i < p->n; i++) {
        int r = publish(db, s, p->offs[i], p->seqs[i], p->ops[i]);
        p->ops[i]->rc = r;
        if (r < 0)
            rc = r;
    }
    p->n = 0;
    p->bytes = 0;
    return rc;
}

/* Queue one operation's record, flushing first where order or rotation requires it. */
static int add_op(logdb *db, pending *p, kvs_op *op)
{
    uint32_t klen = (uint32_t)op->klen, vlen = op->type == KVS_OP_SET ? (uint32_t)op->vlen : 0;
    uint64_t len = rec_len(klen, vlen);
    uint8_t flags = op->type == KVS_OP_REMOVE ? REC_TOMBSTONE : 0;
    int rc;

    if (flags & REC_TOMBSTONE) {
        idx_loc cur;
        /* a remove must see the writes queued before it in this batch */
        if ((rc = flush_pending(db, p)) < 0)
            return rc;
        rcu_read_lock();
        rc = idx_lookup(db->idx, op->key, klen, &cur);
        rcu_read_unlock();
        if (rc < 0) {
            op->rc = rc;
            return 0;
        }
    }
    seg *s = db->active;
    uint64_t end = s->size + p->bytes + len;
    if ((s->size + p->bytes > SEG_HDR && end > db->opt.segment_size) || end > s->map_len) {
        if ((rc = flush_pending(db, p)) < 0 || (rc = rotate(db, len)) < 0)
            return rc;
    }
    if ((rc = pending_reserve(p, p->n + 1)) < 0)
        return rc;
    size_t i = p->n++;
    p->ops[i] = op;
    p->seqs[i] = ++db->seq;
    p->offs[i] = db->active->size + p->bytes;
    rec_encode(p->hdr[i], p->seqs[i], flags, op->key, klen, op->val, vlen);
    p->bytes += len;
    return 0;
}

/* Commit a batch of requests (the leader, under wmu). */
static void commit_batch(logdb *db, commit_req *batch)
{
    pending p;
    int rc = 0;

    pending_init(&p);
    pthread_mutex_lock(&db->wmu);
    if (db->stopping)
        rc = kvs_seterr(KVS_ECLOSED, "the store is closing");
    else
        rc = log_fenced(db);
    for (commit_req *r = batch; r && rc == 0; r = r->next)
        for (size_t i = 0; i < r->n && rc == 0; i++) {
            r->ops[i].rc = 0;
            rc = add_op(db, &p, &r->ops[i]);
        }
    if (rc == 0)
        rc = flush_pending(db, &p);
    if (rc == 0 && db->opt.sync == KVS_SYNC_ALWAYS)
        rc = log_sync_locked(db);
    /* A sync that failed in this batch (a rotation's, a manifest rewrite's) or in another
     * thread meanwhile fails the batch too: none of it is acknowledged behind a failed sync. */
    if (rc < 0)
        log_fence_if_sync_failed(db);
    if (log_is_fenced(db))
        rc = log_fenced(db);
    db->last_write_usec = clock_usec();
    db->idle_done = false;
    if (idx_needs_resize(db->idx))
        log_maint_kick(db);
    log_maint_check(db);
    pthread_mutex_unlock(&db->wmu);
    pending_free(&p);
    /* A failure fails every operation not already failed on its own (a missing key). */
    for (commit_req *r = batch; r; r = r->next) {
        r->rc = 0;
        for (size_t i = 0; i < r->n; i++) {
            if (rc < 0 && r->ops[i].rc != KVS_ENOTFOUND)
                r->ops[i].rc = rc;
            if (r->ops[i].rc < 0 && r->rc == 0)
                r->rc = r->ops[i].rc;
        }
    }
}

int log_write(logdb *db, kvs_op *ops, size_t n)
{
    commit_req req = {ops, n, 0, false, NULL};
    char err[256] = "";

    pthread_mutex_lock(&db->qmu);
    if (db->qtail)
        db->qtail->next = &req;
    else
        db->qhead = &req;
    db->qtail = &req;
    while (!req.done) {
        if (db->leader) {
            pthread_cond_wait(&db->qcv, &db->qmu);
            continue;
        }
        /* Lead: take every queued request as one batch. */
        commit_req *batch = db->qhead;
        db->qhead = db->qtail = NULL;
        db->leader = true;
        pthread_mutex_unlock(&db->qmu);
        commit_batch(db, batch);
        snprintf(err, sizeof err, "%s", kvs_last_error());
        pthread_mutex_lock(&db->qmu);
        for (commit_req *r = batch, *next; r; r = next) {
            next = r->next;
            r->done = true; /* after this the waiter may return: r is gone */
        }
        db->leader = false;
        pthread_cond_broadcast(&db->qcv);
    }
    pthread_mutex_unlock(&db->qmu);
    if (req.rc < 0 && req.rc != KVS_ENOTFOUND)
        kvs_seterr(req.rc, "%s", err[0] ? err : kvs_strerror(req.rc));
    return req.rc;
}

int log_sync(logdb *db)
{
    int rc;

    pthread_mutex_lock(&db->wmu);
    rc = log_sync_locked(db);
    pthread_mutex_unlock(&db->wmu);
    return rc;
}

void log_maint_kick(logdb *db)
{
    db->maint_kicked = true;
    pthread_cond_signal(&db->maint_cv);
}

void log_maint_check(logdb *db)
{
    if (db->opt.auto_compact && log_compact_due(db))
        log_maint_kick(db);
}

/* Wait on cv under wmu until the deadline, a stop, or (if flag) *flag; advances the deadline
 * by a second when it passes. Returns false once stopping. */
static bool tick_wait(logdb *db, pthread_cond_t *cv, struct timespec *next, bool *flag)
{
    while (!db->stopping && !(flag && *flag)) {
        if (pthread_cond_timedwait(cv, &db->wmu, next) == ETIMEDOUT) {
            next->tv_sec += 1;
            break;
        }
    }
    return !db->stopping;
}

/* everysec: once a second, sync what was written (sealed segments first, as log_sync_locked). The
 * syncs run outside wmu so writers go on; the read section keeps the segments (and their fds)
 * from being retired meanwhile, and flags are cleared only once their sync is done. */
static void *syncer_main(void *arg)
{
    logdb *db = arg;
    struct timespec next;
    seg **v = NULL;
    uint32_t cap = 0;

    pthread_mutex_lock(&db->wmu);
    clock_gettime(CLOCK_MONOTONIC, &next);
    next.tv_sec += 1;
    while (tick_wait(db, &db->stop_cv, &next, NULL)) {
        uint32_t n = 0;
        if (cap < db->nsegs + 1) {
            seg **nv = realloc(v, (db->nsegs + 1) * sizeof *nv);
            if (!nv)
                continue;
            v = nv;
            cap = db->nsegs + 1;
        }
        if (log_is_fenced(db))
            continue; /* nothing is synced after a failed sync (log_fence) */
        for (uint32_t i = 0; i < db->nsegs; i++)
            if (db->segs[i]->needs_sync)
                v[n++] = db->segs[i];
        uint32_t sealed = n; /* only these flags are cleared after: the active may seal meanwhile */
        bool active = db->dirty;
        if (active) {
            v[n++] = db->active;
            db->dirty = false;
        }
        if (n == 0)
            continue;
        int rc = 0;
        rcu_read_lock();
        pthread_mutex_unlock(&db->wmu);
        for (uint32_t i = 0; i < n && rc == 0; i++)
            rc = log_sync_seg(db, v[i]); /* a failure fences the store */
        if (kvs_test_syncer_delay_us)
            usleep(kvs_test_syncer_delay_us);
        /* Clear the flags before leaving the read section: a segment synced here may have been
         * compacted away meanwhile, and compaction frees it once a grace period has passed —
         * without taking wmu, so wmu alone would not keep it alive. (Taking wmu inside a read
         * section cannot deadlock: no one waits for a grace period while holding wmu.) */
        pthread_mutex_lock(&db->wmu);
        if (kvs_test_syncer_delay_us)
            usleep(kvs_test_syncer_delay_us);
        if (rc == 0)
            for (uint32_t i = 0; i < sealed; i++)
                v[i]->needs_sync = false;
        rcu_read_unlock();
        if (rc < 0) {
            db->dirty = db->dirty || active;
            continue;
        }
        __atomic_add_fetch(&db->syncs, 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&db->wmu);
    free(v);
    return NULL;
}

#define IDLE_USEC 2000000 /* no writes for this long: the store is idle */

/* Idle clean-up (under wmu, returns with it held): once writes have stopped for a while, seal
 * the active segment if it holds garbage — only sealed segments can be compacted — and let the
 * caller compact everything that holds dead bytes, whatever the ratio, so an idle store shrinks
 * to about its live data. Runs once per idle period. */
static bool idle_cleanup_due(logdb *db)
{
    if (!db->opt.auto_compact || db->idle_done || db->last_write_usec == 0 ||
        log_is_fenced(db) || clock_usec() - db->last_write_usec < IDLE_USEC)
        return false;
    db->idle_done = true;
    seg *a = db->active;
    if (__atomic_load_n(&a->dead, __ATOMIC_RELAXED) > 0 && rotate(db, 0) < 0)
        LOG_WARN("idle rotation failed: %s", kvs_last_error());
    return true;
}

/* Hint files and automatic compaction, off the write path: woken by rotation and by commits
 * that leave compaction due, and once a second anyway. */
static void *maint_main(void *arg)
{
    logdb *db = arg;
    struct timespec next;

    pthread_mutex_lock(&db->wmu);
    clock_gettime(CLOCK_MONOTONIC, &next);
    next.tv_sec += 1;
    while (tick_wait(db, &db->maint_cv, &next, &db->maint_kicked)) {
        db->maint_kicked = false;
        if (log_is_fenced(db))
            continue; /* no hints, no compaction: both sync (log_fence) */
        bool idle = idle_cleanup_due(db);
        bool due = db->opt.auto_compact && log_compact_due(db);
        pthread_mutex_unlock(&db->wmu);
        idx_resize_if_needed(db->idx);
        log_write_pending_hints(db);
        if ((idle ? log_compact_all(db) : due ? log_compact_auto(db) : 0) < 0)
            LOG_WARN("compaction failed: %s", kvs_last_error());
        pthread_mutex_lock(&db->wmu);
    }
    pthread_mutex_unlock(&db->wmu);
    return NULL;
}

int log_threads_start(logdb *db)
{
    pthread_condattr_t ca;
    int e;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&db->stop_cv, &ca);
    pthread_cond_init(&db->maint_cv, &ca);
    pthread_condattr_destroy(&ca);
    if ((e = pthread_create(&db->maint, NULL, maint_main, db)) != 0)
        return kvs_seterr(KVS_ENOMEM, "cannot start the maintenance thread: %s", strerror(e));
    db->maint_running = true;
    if (db->opt.sync != KVS_SYNC_EVERYSEC)
        return 0;
    if ((e = pthread_create(&db->syncer, NULL, syncer_main, db)) != 0)
        return kvs_seterr(KVS_ENOMEM, "cannot start the sync thread: %s", strerror(e));
    db->syncer_running = true;
    return 0;
}

void log_threads_stop(logdb *db)
{
    pthread_mutex_lock(&db->wmu);
    db->stopping = true;
    pthread_cond_broadcast(&db->stop_cv);
    pthread_cond_broadcast(&db->maint_cv);
    pthread_mutex_unlock(&db->wmu);
    if (db->syncer_running)
        pthread_join(db->syncer, NULL);
    if (db->maint_running)
        pthread_join(db->maint, NULL);
    db->syncer_running = db->maint_running = false;
}
