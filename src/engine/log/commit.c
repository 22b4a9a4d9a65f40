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

/*
 * Group commit. A batch is every write queued while the previous batch was being committed.
 * Its records are copied into the mapping in as few flushes as the batch allows — one, unless it
 * must rotate or a group reads the store (a remove, an update: it must see the effect of every
 * earlier write of the batch, so what is queued before it is flushed first) — and with
 * KVS_SYNC_ALWAYS one fdatasync covers all of them. Only then is any writer in it told.
 *
 * Groups (kvs.h: one unit across a crash). A group's records are queued whole before any of
 * them is copied: its removes and updates see the group's own earlier ops in the queue
 * (pending_find) and the store's state before the group in the index. When the group ends its
 * headers are encoded — each but the last with REC_GROUP_MORE (record.h), which a recovery
 * that finds the run unclosed at the end of the log cuts away whole — and the whole group goes
 * into the active segment or, when it does not fit, into the next one: rotation comes before a
 * group, never inside it (a group larger than a segment gets a segment of its own size).
 */
#define PENDING_INLINE 16 /* most batches fit here: no allocation on the write path */

/* One record queued: a set or a tombstone, and the op it answers for. */
typedef struct pend {
    kvs_op *op;
    int result;       /* op's rc once the record is published: 0, or KVS_ENOTFOUND (the
                         remove of an expired key, which writes its tombstone) */
    bool expired;     /* a tombstone of a key whose time had passed (stats.expired_keys) */
    uint8_t type;     /* KVS_OP_SET or KVS_OP_REMOVE */
    const void *key, *val;
    uint32_t klen, vlen;
    uint64_t expire_ms;
} pend;

typedef struct pending {
    unsigned char (*hdr)[REC_HDR];
    pend *recs;
    uint64_t *seqs;
    size_t n, cap;
    uint64_t bytes;
    uint64_t new_keys; /* sets queued of keys the index does not hold (fits_budget) */
    unsigned char inline_hdr[PENDING_INLINE][REC_HDR];
    pend inline_recs[PENDING_INLINE];
    uint64_t inline_seqs[PENDING_INLINE];
} pending;

static void pending_init(pending *p)
{
    p->hdr = p->inline_hdr;
    p->recs = p->inline_recs;
    p->seqs = p->inline_seqs;
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
    void *recs = regrow(p->recs, p->inline_recs, p->n * sizeof *p->recs, cap * sizeof *p->recs);
    if (recs)
        p->recs = recs;
    void *seqs = regrow(p->seqs, p->inline_seqs, p->n * 8, cap * 8);
    if (seqs)
        p->seqs = seqs;
    if (!hdr || !recs || !seqs)
        return KVS_ENOMEM; /* p stays consistent: every array still holds cap entries */
    p->cap = cap;
    return 0;
}

static void pending_free(pending *p)
{
    if (p->hdr != p->inline_hdr)
        free(p->hdr);
    if (p->recs != p->inline_recs)
        free(p->recs);
    if (p->seqs != p->inline_seqs)
        free(p->seqs);
}

/* The index half of a write: publish the new record, account what it replaced. Inside
 * rcu_read_lock(): the replaced record's segment may be a compaction victim, and the read
 * section keeps it from being freed until its dead bytes are counted. */
static int publish(logdb *db, seg *s, uint64_t off, uint64_t seq, const pend *r)
{
    bool tomb = r->type == KVS_OP_REMOVE;
    uint8_t flags = tomb ? REC_TOMBSTONE : r->expire_ms ? IDX_EXPIRES : 0;
    int x = ldb_index_record(db, s, (uint32_t)off, r->key, r->klen, r->vlen, seq, flags);

    KVS_ASSERT(x != IDX_EBUDGET); /* fits_group asked first, and the index's answer is exact */
    if (x < 0)
        return kvs_seterr(x, "index update failed for a write already in the log");
    return 0;
}

/* Drop the first k entries (copied), moving the rest (a group still open) to the front. */
static inline void pending_shift(pending *p, size_t k)
{
    uint64_t gone = 0;

    if (k == p->n) { /* all of it: the usual case, nothing to move */
        p->n = 0;
        p->bytes = 0;
        return;
    }
    for (size_t i = 0; i < k; i++)
        gone += rec_len(p->recs[i].klen, p->recs[i].vlen);
    memmove(p->hdr, p->hdr + k, (p->n - k) * REC_HDR);
    memmove(p->recs, p->recs + k, (p->n - k) * sizeof *p->recs);
    memmove(p->seqs, p->seqs + k, (p->n - k) * sizeof *p->seqs);
    p->n -= k;
    p->bytes -= gone;
}

/* Copy the first k pending records (whole groups, their headers encoded) into the active
 * segment's mapping, then publish them (under wmu). Once copied they are in the page cache: a
 * killed process loses none of them. The budget's count of queued new keys starts again (the
 * index now holds them), as fits_group expects. */
static int flush_prefix(logdb *db, pending *p, size_t k)
{
    seg *s = db->active;
    uint64_t off = s->size, bytes = 0;
    int rc = 0;

    KVS_ASSERT(LDB_HOLDS(db, wmu) && k <= p->n);
    if (k == 0)
        return 0;
    for (size_t i = 0; i < k && k < p->n; i++)
        bytes += rec_len(p->recs[i].klen, p->recs[i].vlen);
    if (k == p->n)
        bytes = p->bytes;
    if ((rc = seg_reserve(s, off + bytes)) < 0) {
        for (size_t i = 0; i < k; i++)
            p->recs[i].op->rc = rc;
        p->new_keys = k == p->n ? 0 : p->new_keys;
        pending_shift(p, k);
        return rc;
    }
    unsigned char *dst = s->map + off;
    for (size_t i = 0; i < k; i++) {
        const pend *r = &p->recs[i];
        memcpy(dst, p->hdr[i], REC_HDR);
        memcpy(dst + REC_HDR, r->key, r->klen);
        if (r->vlen) /* a remove's val may be NULL: no zero-length copy from it */
            memcpy(dst + REC_HDR + r->klen, r->val, r->vlen);
        dst += rec_len(r->klen, r->vlen);
    }
    __atomic_store_n(&s->size, off + bytes, __ATOMIC_RELEASE);
    __atomic_store_n(&db->appended, db->appended + bytes, __ATOMIC_RELAXED);
    if (s->min_seq == UINT64_MAX)
        s->min_seq = p->seqs[0];
    s->max_seq = p->seqs[k - 1];
    db->dirty = true;
    __atomic_add_fetch(&db->writes, k, __ATOMIC_RELAXED);
    rcu_read_lock(); /* one read section for the batch's records (publish) */
    for (size_t i = 0; i < k; i++) {
        const pend *r = &p->recs[i];
        int pr = publish(db, s, off, p->seqs[i], r);
        r->op->rc = pr < 0 ? pr : r->result;
        if (pr < 0)
            rc = pr;
        else if (r->expired)
            __atomic_add_fetch(&db->expired_keys, 1, __ATOMIC_RELAXED);
        off += rec_len(r->klen, r->vlen);
    }
    rcu_read_unlock();
    /* with a group left queued its keys stay counted, and so do these: too high, never too
     * low (fits_group flushes at the edge, which makes the count exact) */
    p->new_keys = k == p->n ? 0 : p->new_keys;
    pending_shift(p, k);
    return rc;
}

static int flush_pending(logdb *db, pending *p)
{
    return flush_prefix(db, p, p->n);
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
 * however often the group sets it; its removes are not subtracted: the count errs high). An
 * update's set is counted when it is known (update_budget). */
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

static int budget_full(logdb *db)
{
    return kvs_seterr(KVS_EFULL, "the key index is at its memory budget (%llu bytes)",
                      (unsigned long long)db->opt.max_index_memory);
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
        return budget_full(db);
    p->new_keys += fresh;
    return 0;
}

/* The latest record queued for key in the open group (from gstart on), or NULL. */
static const pend *pending_find(const pending *p, size_t gstart, const void *key, size_t klen)
{
    for (size_t i = p->n; i-- > gstart;)
        if (p->recs[i].klen == klen && memcmp(p->recs[i].key, key, klen) == 0)
            return &p->recs[i];
    return NULL;
}

/* The key's state as the next op of the open group sees it: the group's own latest record of
 * it, else the index (the batch's earlier groups flushed into it: group_reads). Inside
 * rcu_read_lock() (cur->val may lie in a mapping). *in_index: the index holds the key (expired
 * or not) — its tombstone is needed to remove it. 0 or KVS_ECORRUPT. */
static int key_state(logdb *db, const pending *p, size_t gstart, const void *key, size_t klen,
                     uint64_t now, kvs_cur *cur, bool *in_index, bool *expired)
{
    const pend *q = pending_find(p, gstart, key, klen);
    ldb_found f;
    int rc;

    memset(cur, 0, sizeof *cur);
    *expired = false;
    if (q) {
        size_t i = (size_t)(q - p->recs);
        *in_index = true; /* queued: removing it needs a tombstone, whatever the index says */
        if (q->type == KVS_OP_REMOVE) {
            *in_index = false;
            return 0;
        }
        if (ldb_expired(q->expire_ms, now)) {
            *expired = true;
            return 0;
        }
        *cur = (kvs_cur){q->vlen ? q->val : "", q->vlen, 1, {q->expire_ms, p->seqs[i]}};
        return 0;
    }
    rc = ldb_lookup(db, key, klen, now, &f);
    *in_index = rc == 0 || f.expired;
    *expired = rc == KVS_ENOTFOUND && f.expired;
    if (rc == KVS_ENOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    *cur = (kvs_cur){f.val, f.h.vlen, 1, {f.h.expire_ms, f.h.seq}};
    return 0;
}

/* Queue one record of the open group (its header is encoded when the group closes). */
static inline int queue(logdb *db, pending *p, kvs_op *op, uint8_t type, const void *val, size_t vlen,
                 uint64_t expire_ms, int result, bool expired)
{
    int rc;

    if ((rc = pending_reserve(p, p->n + 1)) < 0)
        return rc;
    size_t i = p->n++;
    p->recs[i] = (pend){op, result, expired, type, op->key, type == KVS_OP_SET ? val : NULL,
                        (uint32_t)op->klen, type == KVS_OP_SET ? (uint32_t)vlen : 0,
                        type == KVS_OP_SET ? expire_ms : 0};
    p->seqs[i] = ++db->seq;
    p->bytes += rec_len(p->recs[i].klen, p->recs[i].vlen);
    return 0;
}

/* An update's set of a key new to the index must fit under the budget as a group's sets do
 * (fits_group): the group's queue was empty when it began (group_reads), so the count is exact. */
static int update_budget(logdb *db, pending *p, size_t gstart, const kvs_op *op)
{
    const pend *q = pending_find(p, gstart, op->key, op->klen);

    if (db->opt.max_index_memory == 0 || (q && q->type == KVS_OP_SET) ||
        idx_contains(db->idx, op->key, op->klen))
        return 0;
    if (idx_count(db->idx) + p->new_keys + 1 > idx_capacity(db->idx, db->opt.max_index_memory))
        return budget_full(db);
    p->new_keys++;
    return 0;
}

int ldb_expire_op(void *ctx, const kvs_cur *cur, kvs_update_out *out)
{
    (void)ctx, (void)cur, (void)out;
    return kvs_seterr(KVS_EINVAL, "ldb_expire_op is the engine's own: never called");
}

/* Apply one op to the open group: queue its record, or settle its rc without one. Returns 0 or
 * a failure of the engine (the batch fails); the op's own outcome is in op->rc. *now is the
 * batch's clock, read by the first op that needs it (0 until then: most batches only set). */
static int add_op(logdb *db, pending *p, size_t gstart, kvs_op *op, uint64_t *now)
{
    kvs_update_out out;
    bool in_index, expired;
    kvs_cur cur;
    int rc;

    if (op->type == KVS_OP_SET)
        return queue(db, p, op, KVS_OP_SET, op->val, op->vlen, op->expire_ms, 0, false);
    if (*now == 0)
        *now = kvs_clock_ms(&db->opt);
    rcu_read_lock(); /* cur.val stays where it lies until fn is done */
    rc = key_state(db, p, gstart, op->key, op->klen, *now, &cur, &in_index, &expired);
    if (rc < 0) {
        op->rc = rc;
        rc = 0;
    } else if (op->type == KVS_OP_REMOVE || op->update == ldb_expire_op) {
        /* a remove of an expired key: absent to the caller, but its tombstone is written */
        bool go = op->type == KVS_OP_REMOVE ? in_index : expired;
        op->rc = (op->type == KVS_OP_REMOVE ? cur.found : expired) ? 0 : KVS_ENOTFOUND;
        if (go)
            rc = queue(db, p, op, KVS_OP_REMOVE, NULL, 0, 0, op->rc, expired);
    } else if ((op->rc = kvs_update_call(op, &cur, &out)) == 0) {
        if (out.type == KVS_OP_SET && (op->rc = update_budget(db, p, gstart, op)) == 0)
            rc = queue(db, p, op, KVS_OP_SET, out.val, out.vlen, out.expire_ms, 0, false);
        else if (out.type == KVS_OP_REMOVE && in_index)
            rc = queue(db, p, op, KVS_OP_REMOVE, NULL, 0, 0, 0, expired);
    }
    rcu_read_unlock();
    return rc;
}

/* Does the group read the store (a remove, an update)? Then the batch's earlier records go
 * into the index before it (flush_pending), where it reads. */
static bool group_reads(const kvs_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ops[i].type != KVS_OP_SET)
            return true;
    return false;
}

/* Close the open group (from gstart on): encode its headers, REC_GROUP_MORE on all but its
 * last, and make sure it lies in one segment — rotating before it (flushing what is queued
 * ahead of it) when it does not fit in the active one. A group whose records could not be
 * addressed in one segment (offsets are 32-bit, index.h) is refused: KVS_EINVAL for each op,
 * nothing of it written. */
static int close_group(logdb *db, pending *p, size_t gstart)
{
    uint64_t gbytes = 0;
    int rc;

    for (size_t i = gstart; i < p->n; i++) {
        const pend *r = &p->recs[i];
        uint8_t flags = (uint8_t)((r->type == KVS_OP_REMOVE ? REC_TOMBSTONE : 0) |
                                  (i + 1 < p->n ? REC_GROUP_MORE : 0));
        rec_encode(p->hdr[i], p->seqs[i], flags, r->expire_ms, r->key, r->klen, r->val, r->vlen);
        gbytes += rec_len(r->klen, r->vlen);
    }
    if (gbytes == 0)
        return 0;
    if (SEG_HDR + gbytes > UINT32_MAX) {
        for (size_t i = gstart; i < p->n; i++)
            p->recs[i].op->rc = kvs_seterr(KVS_EINVAL, "a write group of %llu bytes: past what "
                                           "one segment holds", (unsigned long long)gbytes);
        p->bytes -= gbytes;
        p->n = gstart;
        return 0;
    }
    seg *s = db->active;
    uint64_t ahead = s->size + p->bytes - gbytes, end = ahead + gbytes;
    if ((ahead > SEG_HDR && end > db->opt.segment_size) || end > s->map_len) {
        if ((rc = flush_prefix(db, p, gstart)) < 0 || (rc = ldb_rotate(db, gbytes)) < 0)
            return rc;
    }
    return 0;
}

/* Apply one group (ops[0..n)) to the queue; a failure of the engine fails the batch. */
static int add_group(logdb *db, pending *p, kvs_op *ops, size_t n, uint64_t *now)
{
    int rc, refused = 0;

    if (group_reads(ops, n) && (rc = flush_pending(db, p)) < 0)
        return rc;
    int grc = fits_group(db, p, ops, n);
    if (grc < 0 && grc != KVS_EFULL)
        return grc;
    size_t gstart = p->n;
    for (size_t i = 0; i < n; i++) {
        ops[i].rc = grc < 0 ? grc : refused;
        if (ops[i].rc < 0)
            continue;
        if ((rc = add_op(db, p, gstart, &ops[i], now)) < 0)
            return rc;
        /* an update's refusal ends its group: the ops after it are not applied */
        if (ops[i].type == KVS_OP_UPDATE && (ops[i].rc == KVS_ECONFLICT || ops[i].rc == KVS_EFULL))
            refused = ops[i].rc;
    }
    return close_group(db, p, gstart);
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
    uint64_t now = 0; /* read when an op first needs it (add_op) */
    for (commit_req *r = batch; r && rc == 0; r = r->next)
        for (size_t g = 0, end; g < r->n && rc == 0; g = end) {
            end = kvs_group_end(r->ops, r->n, g);
            rc = add_group(db, &p, r->ops + g, end - g, &now);
        }
    if (rc == 0)
        rc = flush_pending(db, &p);
    /* A sync that failed in this batch (a rotation's, a manifest rewrite's) or in another
     * thread meanwhile fails the batch too: none of it is acknowledged behind a failed sync. */
    if (rc < 0)
        ldb_fence_if_sync_failed(db);
    if (ldb_is_fenced(db))
        rc = ldb_fenced(db);
    db->last_write_usec = clock_usec();
    if (db->undurable_usec == 0)
        db->undurable_usec = db->last_write_usec;
    db->idle_done = false;
    maint_check(db, db->last_write_usec);
    /* The batch's position: it and everything applied before it (what its removes and updates
     * read included). Under always the sync thread now syncs it, outside wmu. */
    uint64_t pos = db->seq;
    __atomic_store_n(&db->applied, pos, __ATOMIC_RELEASE);
    if (db->opt.sync == KVS_SYNC_ALWAYS && !db->opt.sync_on_request && rc == 0) {
        __atomic_store_n(&db->sync_wanted, true, __ATOMIC_RELEASE);
        syncer_kick(&db->syncer);
    }
    LDB_UNLOCK(db, wmu);
    pending_free(&p);
    /* A failure fails every operation, a remove that found its key missing too: KVS_ENOTFOUND
     * is an acknowledgement (the key is gone), and the index it was read from may owe that to
     * a tombstone no sync made durable — this batch's, or a failed batch's, whose records stay
     * in the log and the index. Only a committed batch (synced, with KVS_SYNC_ALWAYS) may say
     * it. */
    for (commit_req *r = batch; r; r = r->next) {
        r->rc = 0;
        r->pos = pos;
        r->applied = rc == 0;
        for (size_t i = 0; i < r->n; i++) {
            if (rc < 0)
                r->ops[i].rc = rc;
            if (r->ops[i].rc < 0 && r->rc == 0)
                r->rc = r->ops[i].rc;
        }
    }
}

/* Queue ops, commit them in a batch (leading it if no one does), return once applied: their
 * rc, *pos the batch's position. */
static int write_applied(logdb *db, kvs_op *ops, size_t n, uint64_t *pos, bool *applied)
{
    commit_req req = {ops, n, 0, false, 0, false, NULL};
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
    *pos = req.applied ? req.pos : 0; /* a batch failed whole acknowledges nothing: no wait */
    *applied = req.applied;
    return req.rc;
}

int ldb_write_pos(logdb *db, kvs_op *ops, size_t n, uint64_t *pos)
{
    if (n == 0) { /* everything applied so far */
        *pos = __atomic_load_n(&db->applied, __ATOMIC_ACQUIRE);
        return 0;
    }
    bool applied;
    return write_applied(db, ops, n, pos, &applied);
}

/* kvs_write: under always, acknowledged once durable — a failed sync then fails every op
 * (KVS_ENOTFOUND too: it may owe its answer to a write the sync lost). */
int ldb_write(logdb *db, kvs_op *ops, size_t n)
{
    uint64_t pos;
    bool applied;
    int rc = write_applied(db, ops, n, &pos, &applied), wrc;

    /* a batch that failed whole (I/O, the fence) has nothing to wait for */
    if (db->opt.sync != KVS_SYNC_ALWAYS || !applied || (wrc = ldb_wait_durable(db, pos, -1)) == 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        ops[i].rc = wrc;
    return wrc;
}
