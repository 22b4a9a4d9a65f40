/*
 * commit.c — the write path: group commit, appending records, rotating the active segment.
 *
 * Writers queue (group commit, below); the leader copies the records of the whole batch —
 * headers, keys and values — to the active segment's end through its mapping, then publishes
 * them in the index. The order matters: the record is in the kernel's page cache before the
 * index names it, so a reader can only find data that a killed process would keep, and a write
 * is acknowledged only after both. With KVS_SYNC_ALWAYS the fdatasync also comes before the
 * acknowledgement (sync.c, in commit order); with EVERYSEC the background syncer syncs once a
 * second; with NEVER the kernel decides.
 *
 * Rotation (the active segment is full): create the next segment and make it active with one
 * manifest edit (segs.c), seal the old one; its unsynced writes are synced by whoever syncs
 * next, before the new segment's, and its hint file is written by the maintenance thread. A
 * crash between any two steps leaves either the old state (an unnamed new file, deleted at open)
 * or the new one (a sealed segment without a hint, scanned at open).
 *
 * A failed sync fences the store (sync.c): no write is acknowledged after it. A failure that is
 * not a sync's (ENOSPC from fallocate) fails its batch and nothing more.
 *
 * Above sync.c, segs.c and compact.c (whether compaction is due); the maintenance thread above
 * it is woken through ldb_maint_kick (logdb.h), and calls ldb_rotate for the idle clean-up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <urcu-bp.h>

#include "engine/engine.h"
#include "engine/log/logdb.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/log.h"

/* The sealed segment's hint file is written by the maintenance thread, not here: a writer
 * never waits for a scan. */
int ldb_rotate(logdb *db, uint64_t need)
{
    seg *old = db->active, *s;
    uint64_t cap = db->opt.segment_size > SEG_HDR + need ? db->opt.segment_size : SEG_HDR + need;
    int rc;

    KVS_ASSERT(LDB_HOLDS(db, wmu));
    /* No sync here (it would stall every writer): the old segment's unsynced writes are synced
     * by whoever syncs next, before the new segment's (sync.c). */
    if ((rc = ldb_add_active_seg(db, cap, &s)) < 0)
        return rc;
    old->needs_sync = db->dirty;
    db->dirty = false;
    if (seg_seal(old) < 0)
        LOG_WARN("%s", kvs_last_error()); /* only the preallocated tail stays */
    old->needs_hint = true;
    __atomic_store_n(&db->active, s, __ATOMIC_RELEASE);
    if ((rc = ldb_manifest_maybe_reset(db)) < 0 && !ldb_fence_if_sync_failed(db))
        LOG_WARN("manifest rewrite failed: %s", kvs_last_error());
    ldb_maint_kick(db);
    return 0;
}

/* The index half of a write: publish the new record, account what it replaced. The replaced
 * record's segment may be a compaction victim: the read section keeps it from being freed
 * until its dead bytes are counted. */
static int publish(logdb *db, seg *s, uint64_t off, uint64_t seq, const kvs_op *op)
{
    bool tomb = op->type == KVS_OP_REMOVE;

    rcu_read_lock();
    int r = ldb_index_record(db, s, (uint32_t)off, op->key, (uint32_t)op->klen,
                             tomb ? 0 : (uint32_t)op->vlen, seq, tomb);
    rcu_read_unlock();
    KVS_ASSERT(r != IDX_EBUDGET); /* fits_group asked first, and the index's answer is exact */
    if (r < 0)
        return kvs_seterr(r, "index update failed for a write already in the log");
    return 0;
}

/*
 * Group commit. A batch is every write queued while the previous batch was being committed.
 * Its records are copied into the mapping in as few flushes as the batch allows — one, unless it
 * must rotate or a remove has to see the effect of earlier writes in the batch — and with
 * KVS_SYNC_ALWAYS one fdatasync covers all of them. Only then is any writer in it told.
 */
#define PENDING_INLINE 16 /* most batches fit here: no allocation on the write path */

typedef struct pending {
    unsigned char (*hdr)[REC_HDR];
    kvs_op **ops;
    uint64_t *seqs, *offs;
    size_t n, cap;
    uint64_t bytes;
    uint64_t new_keys; /* sets queued of keys the index does not hold (fits_budget) */
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
    p->n = p->bytes = p->new_keys = 0;
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

    KVS_ASSERT(LDB_HOLDS(db, wmu));
    if (p->n == 0)
        return 0;
    if ((rc = seg_reserve(s, off + p->bytes)) < 0) {
        for (size_t i = 0; i < p->n; i++)
            p->ops[i]->rc = rc;
        p->n = 0;
        p->bytes = p->new_keys = 0;
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
    p->bytes = p->new_keys = 0;
    return rc;
}

/* Order ops by key (group_new_keys: duplicates side by side). */
static int by_key(const void *a, const void *b)
{
    const kvs_op *x = *(const kvs_op *const *)a, *y = *(const kvs_op *const *)b;
    if (x->klen != y->klen)
        return x->klen < y->klen ? -1 : 1;
    return memcmp(x->key, y->key, x->klen);
}

/* How many distinct keys the sets of ops[0..n) give that the index does not hold (each once,
 * however often the group sets it; its removes are not subtracted: the count errs high). */
static uint64_t group_new_keys(logdb *db, const kvs_op *ops, size_t n)
{
    const kvs_op *inl[PENDING_INLINE], **v = n <= PENDING_INLINE ? inl : malloc(n * sizeof *v);
    uint64_t fresh = 0;
    size_t m = 0;

    for (size_t i = 0; i < n; i++)
        if (ops[i].type == KVS_OP_SET && !idx_contains(db->idx, ops[i].key, ops[i].klen)) {
            if (!v)
                fresh++; /* no room to sort: duplicates count twice (too high, never too low) */
            else
                v[m++] = &ops[i];
        }
    if (!v)
        return fresh;
    qsort(v, m, sizeof *v, by_key);
    for (size_t i = 0; i < m; i++)
        fresh += i == 0 || by_key(&v[i - 1], &v[i]) != 0;
    if (v != inl)
        free(v);
    return fresh;
}

/* A group's new keys (kvs.h, kvs_write) must all fit under the index's memory budget
 * (max_index_memory) before any of its records is written; past it the group is refused with
 * KVS_EFULL and nothing of it is written. The index's answer is exact (idx_set_budget, which
 * keeps room for the segment table to grow meanwhile), so publish's idx_put cannot then fail
 * for the budget. Keys queued earlier in this batch count as queued (one key set by two groups
 * twice); at the edge they are flushed into the index first, which makes the count exact. */
static int fits_group(logdb *db, pending *p, const kvs_op *ops, size_t n)
{
    uint64_t budget = db->opt.max_index_memory, fresh;
    int rc;

    if (budget == 0 || (fresh = group_new_keys(db, ops, n)) == 0)
        return 0;
    uint64_t cap = idx_capacity(db->idx, budget);
    if (idx_count(db->idx) + p->new_keys + fresh > cap && p->n > 0) {
        if ((rc = flush_pending(db, p)) < 0)
            return rc;
        fresh = group_new_keys(db, ops, n);
        cap = idx_capacity(db->idx, budget);
    }
    if (idx_count(db->idx) + p->new_keys + fresh > cap)
        return kvs_seterr(KVS_EFULL, "the key index is at its memory budget (%llu bytes)",
                          (unsigned long long)budget);
    p->new_keys += fresh;
    return 0;
}

/* Queue one operation's record, flushing first where order or rotation requires it. */
static int add_op(logdb *db, pending *p, kvs_op *op)
{
    uint32_t klen = (uint32_t)op->klen, vlen = op->type == KVS_OP_SET ? (uint32_t)op->vlen : 0;
    uint64_t len = rec_len(klen, vlen);
    uint8_t flags = op->type == KVS_OP_REMOVE ? REC_TOMBSTONE : 0;
    int rc;

    if (flags & REC_TOMBSTONE) {
        /* a remove must see the writes queued before it in this batch */
        if ((rc = flush_pending(db, p)) < 0)
            return rc;
        if (!idx_contains(db->idx, op->key, klen)) {
            op->rc = KVS_ENOTFOUND;
            return 0;
        }
    }
    seg *s = db->active;
    uint64_t end = s->size + p->bytes + len;
    if ((s->size + p->bytes > SEG_HDR && end > db->opt.segment_size) || end > s->map_len) {
        if ((rc = flush_pending(db, p)) < 0 || (rc = ldb_rotate(db, len)) < 0)
            return rc;
    }
    if ((rc = pending_reserve(p, p->n + 1)) < 0)
        return rc;
    size_t i = p->n++;
    p->ops[i] = op;
    p->seqs[i] = ++db->seq;
    p->offs[i] = db->active->size + p->bytes;
    rec_encode(p->hdr[i], p->seqs[i], flags, 0, op->key, klen, op->val, vlen); /* no expiry yet */
    p->bytes += len;
    return 0;
}

#define DUE_CHECK_USEC 10000 /* the write path asks whether compaction is due this often */

/* Wake the maintenance thread if compaction looks due (under wmu). The question walks every
 * segment, so it is asked at most every DUE_CHECK_USEC, not per batch: the thread's own tick
 * asks it too, and a kick only brings that sooner. */
static void maint_check(logdb *db, uint64_t now)
{
    if (!db->opt.auto_compact || now - db->due_checked_usec < DUE_CHECK_USEC)
        return;
    db->due_checked_usec = now;
    if (ldb_compact_due(db))
        ldb_maint_kick(db);
}

/* Commit a batch of requests (the leader, taking wmu for all of it). */
static void commit_batch(logdb *db, commit_req *batch)
{
    pending p;
    int rc = 0;

    pending_init(&p);
    LDB_LOCK(db, wmu);
    if (db->stopping)
        rc = kvs_seterr(KVS_ECLOSED, "the store is closing");
    else
        rc = ldb_fenced(db);
    for (commit_req *r = batch; r && rc == 0; r = r->next)
        for (size_t g = 0, end; g < r->n && rc == 0; g = end) {
            end = kvs_group_end(r->ops, r->n, g);
            int grc = fits_group(db, &p, r->ops + g, end - g);
            for (size_t i = g; i < end && rc == 0; i++) {
                r->ops[i].rc = grc == KVS_EFULL ? KVS_EFULL : 0;
                if (grc == 0)
                    rc = add_op(db, &p, &r->ops[i]);
            }
            if (grc < 0 && grc != KVS_EFULL)
                rc = grc;
        }
    if (rc == 0)
        rc = flush_pending(db, &p);
    if (rc == 0 && db->opt.sync == KVS_SYNC_ALWAYS)
        rc = ldb_sync_locked(db);
    /* A sync that failed in this batch (a rotation's, a manifest rewrite's) or in another
     * thread meanwhile fails the batch too: none of it is acknowledged behind a failed sync. */
    if (rc < 0)
        ldb_fence_if_sync_failed(db);
    if (ldb_is_fenced(db))
        rc = ldb_fenced(db);
    db->last_write_usec = clock_usec();
    db->idle_done = false;
    maint_check(db, db->last_write_usec);
    LDB_UNLOCK(db, wmu);
    pending_free(&p);
    /* A failure fails every operation, a remove that found its key missing too: KVS_ENOTFOUND
     * is an acknowledgement (the key is gone), and the index it was read from may owe that to
     * a tombstone no sync made durable — this batch's, or a failed batch's, whose records stay
     * in the log and the index. Only a committed batch (synced, with KVS_SYNC_ALWAYS) may say
     * it. */
    for (commit_req *r = batch; r; r = r->next) {
        r->rc = 0;
        for (size_t i = 0; i < r->n; i++) {
            if (rc < 0)
                r->ops[i].rc = rc;
            if (r->ops[i].rc < 0 && r->rc == 0)
                r->rc = r->ops[i].rc;
        }
    }
}

int ldb_write(logdb *db, kvs_op *ops, size_t n)
{
    commit_req req = {ops, n, 0, false, NULL};
    char err[256];

    err[0] = '\0';
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
        if (req.rc < 0 && req.rc != KVS_ENOTFOUND) /* ours is in the batch: its message is ours */
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
