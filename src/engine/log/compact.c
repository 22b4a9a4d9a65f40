/*
 * compact.c — compaction: reclaiming the space of dead records; and writing the hint files of
 * sealed segments, which takes the same lock.
 *
 * It runs on the maintenance thread (or the caller of kvs_compact) under cmu, and holds wmu
 * only for short steps — choosing victims, taking segment ids, the commit — so reads and writes
 * go on while it scans and copies. On the maintenance thread it is paced (opt.compact_rate: it
 * reads its victims no faster, sleeping between records, pace()) and runs at a lower priority
 * (opt.compact_nice, the whole thread's, background.c): a run unpaced took a core for as long
 * as it lasted, and requests on a 2-core box queued behind it (GET p99 4-8× its quiet value
 * while a writer kept compaction busy, bench/latency_bench.py). It calls sync.c and segs.c below it, nothing above (logdb.h):
 * the segment list grows only through segs.c, which reserves the room the swap needs.
 *
 * Victims are sealed segments. Their live records are copied byte for byte — seq and expiry time
 * unchanged — into new sealed segments (outputs); then the swap happens in an order where a crash
 * at any point leaves a store that opens to exactly the same keys and values:
 *
 *   1. write the outputs                      crash → outputs are leftovers, deleted at open
 *   2. fdatasync the outputs and the dir      crash → same
 *   3. write their hint files                 crash → same
 *   4. sync every write not synced yet (everysec, never): the drop of a record that a newer
 *      write replaced must not reach the disk before that write does (ldb_sync_written)
 *   5. one manifest edit: add outputs, drop victims (synced) — the commit point; the segment
 *      list follows it under the same hold of wmu
 *                                             crash → victims are leftovers, deleted at open
 *   6. repoint the index (compare-and-swap per key), wait for an RCU grace period, close and
 *      delete the victims
 *
 * Which records are live: a set is live if the index still names exactly this record
 * (segment, offset). A tombstone is needed while a segment outside the victims might still hold
 * an older record of its key — i.e. while some other live segment has a record older than the
 * tombstone (min_seq below its seq) — and no newer record of the key exists; otherwise it is
 * dropped. So a removed key never comes back, however few segments a run compacts.
 *
 * Expired records (record.h: 0 < expire_at <= now, by the store's clock when the run starts)
 * are not copied as values: the current record of a key whose time has passed becomes a
 * tombstone of the same seq where an older record of the key may remain outside the victims
 * (the rule above), and nothing otherwise; at install its index entry is removed where it still
 * names that record (compare-and-delete, as the repoint), never a newer write of the key. So an
 * expired key does not come back after compaction and a reopen either. Copies drop
 * REC_GROUP_MORE (record.h): the outputs hold records one by one, never groups.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <urcu-bp.h>

#include "engine/engine.h"
#include "engine/log/hint.h"
#include "engine/log/logdb.h"
#include "util/array.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/io.h"
#include "util/log.h"

#define OUT_BUF (1u << 20)
#define MAX_RUN_BYTES (256ull << 20) /* input bytes per automatic run: bounds the pause */
#define PACE_MIN_USEC 2000 /* a paced run sleeps once it is at least this far ahead */

#ifdef KVS_TEST_HOOKS
int kvs_test_crash_point = CRASH_NONE;

void ldb_crash_point(int step)
{
    if (kvs_test_crash_point == step)
        _exit(CRASH_EXIT);
}

unsigned kvs_test_install_delay_us = 0;
#endif

/* A record copied forward, to be repointed once the outputs are committed. */
typedef struct move {
    seg *from, *to;
    uint32_t from_off, to_off, vlen, klen;
    uint64_t seq;
    uint8_t flags;  /* of the copy */
    bool expired;   /* the key's current record had expired: its entry goes (install) */
    unsigned char key[];
} move;

typedef struct compactor {
    logdb *db;
    seg *victim;
    uint64_t min_outside; /* smallest seq held by a live segment that is not a victim */
    uint64_t now;         /* the store's clock as the run started: what has expired */
    seg **outs;
    uint32_t nouts;
    size_t capouts;
    unsigned char *buf; /* pending bytes of the last output */
    size_t used;
    move **moves;
    size_t nmoves, capmoves;
    bool paced;           /* keep to opt.compact_rate (the maintenance thread's runs) */
    uint64_t pace_t0;     /* when the run started reading (clock_usec) */
    uint64_t pace_bytes;  /* victim bytes read since */
} compactor;

static seg *out_last(compactor *c)
{
    return c->nouts ? c->outs[c->nouts - 1] : NULL;
}

static int out_flush(compactor *c)
{
    seg *o = out_last(c);
    int rc;

    if (!o || !c->used)
        return 0;
    rc = io_pwrite_full(o->fd, c->buf, c->used, o->size, o->path);
    o->size += c->used;
    c->used = 0;
    return rc;
}

/* An output with room for len more bytes. */
static int out_room(compactor *c, uint64_t len, seg **out)
{
    seg *o = out_last(c);
    int rc;

    if (o && (o->size + c->used + len <= c->db->opt.segment_size ||
              o->size + c->used == SEG_HDR)) {
        *out = o;
        return 0;
    }
    if ((rc = out_flush(c)) < 0)
        return rc;
    if (ARR_RESERVE(c->outs, c->capouts, (size_t)c->nouts + 1) < 0)
        return KVS_ENOMEM;
    uint32_t id;
    LDB_LOCK(c->db, wmu);
    rc = ldb_take_seg_id(c->db, &id);
    LDB_UNLOCK(c->db, wmu);
    if (rc < 0 || (rc = seg_create(c->db->dir, id, 0, &o)) < 0)
        return rc;
    o->sealed = true;
    if ((rc = idx_attach_seg(c->db->idx, o)) < 0) { /* its records are indexed at install */
        seg_destroy(o);
        return rc;
    }
    c->outs[c->nouts++] = o;
    *out = o;
    return 0;
}

static bool record_needed(compactor *c, const seg_rec *r)
{
    idx_loc loc;
    bool needed;

    rcu_read_lock();
    if (r->flags & REC_TOMBSTONE)
        needed = idx_lookup(c->db->idx, r->key, r->klen, &loc) != 0 && r->seq > c->min_outside;
    else /* the address alone says it: no record is read */
        needed = idx_names(c->db->idx, r->key, r->klen, c->victim, (uint32_t)r->off);
    rcu_read_unlock();
    return needed;
}

/* Remember a record copied (or an expired one dropped) for install. */
static int add_move(compactor *c, const seg_rec *r, seg *o, uint32_t to_off, uint8_t flags,
                    bool expired)
{
    move *m;

    if (ARR_RESERVE(c->moves, c->capmoves, c->nmoves + 1) < 0)
        return KVS_ENOMEM;
    if (!(m = malloc(sizeof *m + r->klen)))
        return KVS_ENOMEM;
    *m = (move){c->victim, o, (uint32_t)r->off, to_off, r->vlen, r->klen, r->seq, flags, expired};
    memcpy(m->key, r->key, r->klen);
    c->moves[c->nmoves++] = m;
    return 0;
}

/* The rate limit: a run reads its victims' records, copied or not, at opt.compact_rate bytes a
 * second at most — it sleeps while it is ahead of that, in steps of at least PACE_MIN_USEC, so
 * that a run is many short slices of work rather than one burst that takes a core from the
 * loop threads for as long as it lasts. No lock of the store is held while it sleeps (cmu
 * only, which no request takes). KVS_ECLOSED if the store closes meanwhile. */
static int pace(compactor *c, uint64_t bytes)
{
    uint64_t rate = c->db->opt.compact_rate;

    if (!c->paced || rate == 0)
        return 0;
    c->pace_bytes += bytes;
    uint64_t due = c->pace_t0 + (uint64_t)((double)c->pace_bytes * 1e6 / (double)rate);
    uint64_t now = clock_usec();
    if (due < now + PACE_MIN_USEC)
        return 0;
    if (!syncer_pause(&c->db->maint, due - now))
        return kvs_seterr(KVS_ECLOSED, "compaction stopped: the store is closing");
    __atomic_add_fetch(&c->db->compact_paced_usec, clock_usec() - now, __ATOMIC_RELAXED);
    return 0;
}

static int copy_record(void *arg, const seg_rec *r)
{
    compactor *c = arg;
    unsigned char tomb[REC_HDR];
    seg *o;
    int rc;

    if ((rc = pace(c, r->len)) < 0)
        return rc;
    if (!record_needed(c, r))
        return 0;
    bool expired = !(r->flags & REC_TOMBSTONE) && ldb_expired(r->expire_ms, c->now);
    if (expired && r->seq <= c->min_outside) /* nothing older outside: no tombstone needed */
        return add_move(c, r, NULL, 0, REC_TOMBSTONE, true);
    uint64_t len = expired ? rec_len(r->klen, 0) : r->len;
    uint8_t flags = expired ? REC_TOMBSTONE : (uint8_t)(r->flags & ~REC_GROUP_MORE);
    if ((rc = out_room(c, len, &o)) < 0)
        return rc;
    if (c->used + len > OUT_BUF && (rc = out_flush(c)) < 0)
        return rc;
    /* the record's bytes as they are — seq, expire_at (record.h) and value checksum unchanged
     * — but for REC_GROUP_MORE; an expired one as a tombstone of its seq */
    const unsigned char *src = r->key - REC_HDR;
    uint32_t to_off = (uint32_t)(o->size + c->used);
    if (expired) {
        rec_encode(tomb, r->seq, REC_TOMBSTONE, 0, r->key, r->klen, NULL, 0);
        memcpy(c->buf + c->used, tomb, REC_HDR);
        memcpy(c->buf + c->used + REC_HDR, r->key, r->klen);
        c->used += len;
    } else if (r->len > OUT_BUF) {
        memcpy(tomb, src, REC_HDR);
        if (flags != r->flags)
            rec_reflag(tomb, r->key, flags);
        if ((rc = io_pwrite_full(o->fd, tomb, REC_HDR, o->size, o->path)) < 0 ||
            (rc = io_pwrite_full(o->fd, src + REC_HDR, r->len - REC_HDR, o->size + REC_HDR,
                                 o->path)) < 0)
            return rc;
        o->size += r->len;
    } else {
        memcpy(c->buf + c->used, src, r->len);
        if (flags != r->flags)
            rec_reflag(c->buf + c->used, r->key, flags);
        c->used += r->len;
    }
    if (r->seq < o->min_seq)
        o->min_seq = r->seq;
    if (r->seq > o->max_seq)
        o->max_seq = r->seq;
    /* a tombstone's bytes are dead from the start, as recovery counts them: a store reopened
     * (rebuilt, or from its saved index) must choose the same victims as the one that ran */
    if (flags & REC_TOMBSTONE)
        ldb_mark_dead(o, len);
    return add_move(c, r, o, to_off, flags, expired);
}

static void compactor_free(compactor *c, bool destroy_outs)
{
    for (uint32_t i = 0; i < c->nouts && destroy_outs; i++) {
        idx_detach_seg(c->db->idx, c->outs[i]); /* never named by the index */
        seg_destroy(c->outs[i]);
    }
    for (size_t i = 0; i < c->nmoves; i++)
        free(c->moves[i]);
    free(c->moves);
    free(c->outs);
    free(c->buf);
}

static bool is_victim(seg *s, seg **victims, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (victims[i] == s)
            return true;
    return false;
}

/* Steps 1-3: write, sync and hint the outputs. */
static int write_outputs(compactor *c, seg **victims, uint32_t n)
{
    seg_scan_result res;
    int rc;

    for (uint32_t i = 0; i < n; i++) {
        c->victim = victims[i];
        if ((rc = seg_scan(victims[i], copy_record, c, &res)) < 0)
            return rc;
        __atomic_add_fetch(&c->db->compact_done, victims[i]->size, __ATOMIC_RELAXED);
    }
    if ((rc = out_flush(c)) < 0)
        return rc;
    ldb_crash_point(CRASH_AFTER_OUTPUT);
    for (uint32_t i = 0; i < c->nouts; i++)
        if ((rc = io_fdatasync(c->outs[i]->fd, c->outs[i]->path)) < 0 ||
            (rc = seg_map(c->outs[i])) < 0)
            return rc;
    if ((rc = io_fsync_dir(c->db->dir)) < 0)
        return rc;
    ldb_crash_point(CRASH_AFTER_SYNC);
    for (uint32_t i = 0; i < c->nouts; i++)
        if ((rc = hint_write(c->db->dir, c->outs[i])) < 0)
            return rc;
    if ((rc = io_fsync_dir(c->db->dir)) < 0)
        return rc;
    ldb_crash_point(CRASH_AFTER_HINT);
    return 0;
}

/* Step 5: the manifest edit that commits the swap (under wmu). */
static int commit_swap(compactor *c, seg **victims, uint32_t n)
{
    uint32_t *add = malloc((c->nouts + 1) * sizeof *add), *drop = malloc(n * sizeof *drop);
    int rc = KVS_ENOMEM;

    /* Room in the segment list first, so nothing after the commit point can fail for memory. */
    if (!add || !drop || (rc = ldb_segs_reserve(c->db, c->nouts)) < 0)
        goto out;
    for (uint32_t i = 0; i < c->nouts; i++)
        add[i] = c->outs[i]->id;
    for (uint32_t i = 0; i < n; i++)
        drop[i] = victims[i]->id;
    rc = man_append(&c->db->man, 0, add, c->nouts, drop, n);
out:
    free(add);
    free(drop);
    return rc;
}

/* Step 6 (the victims already left the segment list with the commit): point the index at the
 * copies, then retire the victims and free their index slots. Repointing needs no lock of the
 * store: each swap is a compare-and-swap against the exact record copied (under the index's own
 * mutex), so a write that lands meanwhile wins and the copy is counted dead. */
static void install(compactor *c, seg **victims, uint32_t n)
{
    logdb *db = c->db;

    if (kvs_test_install_delay_us)
        usleep(kvs_test_install_delay_us);

    for (size_t i = 0; i < c->nmoves; i++) {
        move *m = c->moves[i];
        if (m->expired && idx_del_at(db->idx, m->key, m->klen, m->from, m->from_off) == 0)
            __atomic_add_fetch(&db->expired_keys, 1, __ATOMIC_RELAXED);
        if (m->flags & REC_TOMBSTONE)
            continue;
        idx_loc to = {m->to, m->to_off, m->vlen, m->seq, 0};
        if (idx_repoint(db->idx, m->key, m->klen, m->from, m->from_off, &to) == 1)
            ldb_mark_dead(m->to, rec_len(m->klen, m->vlen));
    }
    synchronize_rcu(); /* no reader still holds an entry (or a table) naming a victim */
    for (uint32_t i = 0; i < n; i++) {
        idx_detach_seg(db->idx, victims[i]);
        seg_destroy(victims[i]);
    }
    if (io_fsync_dir(db->dir) < 0 && !ldb_fence_if_sync_failed(db))
        LOG_WARN("compaction: %s", kvs_last_error());
    ldb_crash_point(CRASH_AFTER_DELETE);
}

static bool is_live(logdb *db, seg *s)
{
    for (uint32_t i = 0; i < db->nsegs; i++)
        if (db->segs[i] == s)
            return true;
    return false;
}

/* The outputs into the segment list, the victims out of it (right after commit_swap). */
static void swap_segs(logdb *db, compactor *c, seg **victims, uint32_t n)
{
    for (uint32_t i = 0; i < c->nouts; i++) {
        int added = ldb_segs_add(db, c->outs[i]);
        KVS_ASSERT(added == 0); /* commit_swap reserved the room */
    }
    for (uint32_t i = 0; i < n; i++)
        ldb_segs_remove(db, victims[i]);
}

/* Compact victims; cmu held, wmu not. paced: keep to opt.compact_rate (pace). */
static int64_t compact_locked(logdb *db, seg **victims, uint32_t n, bool paced)
{
    uint64_t t0 = clock_usec(), in = 0, out = 0;
    compactor c = {.db = db, .min_outside = UINT64_MAX, .now = kvs_clock_ms(&db->opt),
                   .paced = paced, .pace_t0 = t0};
    int rc = 0;

    KVS_ASSERT(LDB_HOLDS(db, cmu) && !LDB_HOLDS(db, wmu));
    if (n == 0)
        return 0;
    if ((rc = ldb_fenced(db)) < 0)
        return rc;
    LDB_LOCK(db, wmu);
    for (uint32_t i = 0; i < n && rc == 0; i++)
        if (!is_live(db, victims[i]) || !victims[i]->sealed || victims[i] == db->active)
            rc = kvs_seterr(KVS_EINVAL, "compaction: segment %u is not a sealed live one",
                            victims[i]->id);
    for (uint32_t i = 0; i < db->nsegs; i++)
        if (!is_victim(db->segs[i], victims, n) && db->segs[i]->min_seq < c.min_outside)
            c.min_outside = db->segs[i]->min_seq;
    for (uint32_t i = 0; i < n; i++)
        in += victims[i]->size;
    db->compacting = rc == 0;
    db->compact_done = 0;
    db->compact_todo = in;
    LDB_UNLOCK(db, wmu);
    if (rc < 0)
        return rc;
    if (!(c.buf = malloc(OUT_BUF))) {
        rc = KVS_ENOMEM;
        goto fail;
    }
    if ((rc = write_outputs(&c, victims, n)) < 0 || (rc = ldb_sync_written(db, 0)) < 0)
        goto fail;
    /* The segment list changes with the manifest edit, under the same hold of wmu: whoever
     * reads the list (a manifest rewrite, above all) sees the store as the manifest says it is
     * — never victims the edit dropped, which install() is about to delete. */
    LDB_LOCK(db, wmu);
    if ((rc = commit_swap(&c, victims, n)) == 0)
        swap_segs(db, &c, victims, n);
    LDB_UNLOCK(db, wmu);
    if (rc < 0) {
        if (ldb_fence_if_sync_failed(db)) {
            /* Whether the edit reached the disk is unknown: keep the outputs (and their hints)
             * it names. The next open finds them live and the victims dropped, or deletes them
             * as copies of live records. */
            for (uint32_t i = 0; i < c.nouts; i++) {
                idx_detach_seg(db->idx, c.outs[i]);
                seg_close(c.outs[i]);
            }
            c.nouts = 0;
        }
        goto fail;
    }
    ldb_crash_point(CRASH_AFTER_MANIFEST);
    for (uint32_t i = 0; i < c.nouts; i++)
        out += c.outs[i]->size;
    /* counted at the commit point, before the old files go (a watcher of the directory sees
     * the run counted by the time it sees the space come back) */
    __atomic_add_fetch(&db->compactions, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&db->compact_reclaimed, in - out, __ATOMIC_RELAXED);
    install(&c, victims, n);
    compactor_free(&c, false);

    uint64_t usec = clock_usec() - t0;
    __atomic_store_n(&db->compact_last_usec, usec, __ATOMIC_RELAXED);
    LOG_INFO("compacted %u segments (%llu bytes) into %u (%llu bytes) in %llu us", n,
             (unsigned long long)in, c.nouts, (unsigned long long)out, (unsigned long long)usec);
    LDB_LOCK(db, wmu);
    db->compacting = 0;
    if (ldb_manifest_maybe_reset(db) < 0 && !ldb_fence_if_sync_failed(db))
        LOG_WARN("manifest rewrite failed: %s", kvs_last_error());
    LDB_UNLOCK(db, wmu);
    return (int64_t)(in - out);
fail:
    if (ldb_fence_if_sync_failed(db))
        rc = ldb_fenced(db);
    compactor_free(&c, true);
    LDB_LOCK(db, wmu);
    db->compacting = 0;
    LDB_UNLOCK(db, wmu);
    return rc;
}

int64_t ldb_compact_segments(logdb *db, seg **victims, uint32_t n)
{
    KVS_ASSERT(!LDB_HOLDS(db, cmu) && !LDB_HOLDS(db, wmu));
    LDB_LOCK(db, cmu);
    int64_t rc = compact_locked(db, victims, n, false);
    LDB_UNLOCK(db, cmu);
    return rc;
}

static int by_dead_desc(const void *a, const void *b)
{
    const seg *x = *(seg *const *)a, *y = *(seg *const *)b;
    return x->dead < y->dead ? 1 : x->dead > y->dead ? -1 : 0;
}

/* Sealed segments worth compacting (all with dead bytes if ratio is 0), most garbage first;
 * with out NULL only the sum. Under wmu. */
static uint32_t candidates(logdb *db, double ratio, seg **out, uint64_t *dead)
{
    uint32_t n = 0;

    KVS_ASSERT(LDB_HOLDS(db, wmu));
    *dead = 0;
    for (uint32_t i = 0; i < db->nsegs; i++) {
        seg *s = db->segs[i];
        uint64_t d = __atomic_load_n(&s->dead, __ATOMIC_RELAXED);
        /* A sealed segment that holds no record (its writes lost to a power cut before it was
         * synced, its tail cut at open) is all reclaimable: its header and its file. */
        if (s->sealed && s->size <= SEG_HDR && s != db->active && !s->unreadable)
            d = SEG_HDR;
        if (s == db->active || !s->sealed || d == 0 || s->unreadable)
            continue;
        if ((double)d < ratio * (double)(s->size - SEG_HDR))
            continue;
        if (out)
            out[n] = s;
        n++;
        *dead += d;
    }
    if (out)
        qsort(out, n, sizeof *out, by_dead_desc);
    return n;
}

bool ldb_compact_due(logdb *db)
{
    uint64_t dead;
    return candidates(db, db->opt.compact_ratio, NULL, &dead) > 0 &&
           dead >= db->opt.compact_min_bytes;
}

/* Choose victims by ratio and compact them; max_bytes bounds one run (0: no bound). */
static int64_t compact_chosen(logdb *db, double ratio, uint64_t min_dead, uint64_t max_bytes,
                              bool paced)
{
    seg **v = NULL;
    uint64_t dead, bytes = 0;
    uint32_t n = 0, take = 0;
    int64_t rc = 0;

    KVS_ASSERT(!LDB_HOLDS(db, cmu) && !LDB_HOLDS(db, wmu));
    if ((rc = ldb_fenced(db)) < 0)
        return rc;
    LDB_LOCK(db, cmu);
    LDB_LOCK(db, wmu);
    if ((v = malloc((db->nsegs + 1) * sizeof *v)) != NULL)
        n = candidates(db, ratio, v, &dead);
    LDB_UNLOCK(db, wmu);
    if (!v) {
        rc = KVS_ENOMEM;
    } else if (n > 0 && dead >= min_dead) {
        while (take < n && (take == 0 || max_bytes == 0 || bytes + v[take]->size <= max_bytes))
            bytes += v[take++]->size;
        rc = compact_locked(db, v, take, paced);
    }
    LDB_UNLOCK(db, cmu);
    free(v);
    return rc;
}

int64_t ldb_compact_auto(logdb *db)
{
    return compact_chosen(db, db->opt.compact_ratio, db->opt.compact_min_bytes, MAX_RUN_BYTES,
                          true);
}

int64_t ldb_compact_all(logdb *db, bool paced)
{
    return compact_chosen(db, 0.0, 1, 0, paced);
}

void ldb_write_pending_hints(logdb *db)
{
    KVS_ASSERT(!LDB_HOLDS(db, cmu) && !LDB_HOLDS(db, wmu));
    LDB_LOCK(db, cmu);
    ldb_write_pending_hints_locked(db);
    LDB_UNLOCK(db, cmu);
}

void ldb_write_pending_hints_locked(logdb *db)
{
    seg **v;
    uint32_t n = 0;

    KVS_ASSERT(LDB_HOLDS(db, cmu) && !LDB_HOLDS(db, wmu));
    if (ldb_is_fenced(db))
        return; /* a hint's segment is synced first: nothing syncs after a failed sync */
    LDB_LOCK(db, wmu);
    v = malloc((db->nsegs + 1) * sizeof *v);
    for (uint32_t i = 0; v && i < db->nsegs; i++)
        if (db->segs[i]->needs_hint)
            v[n++] = db->segs[i];
    LDB_UNLOCK(db, wmu);
    for (uint32_t i = 0; i < n; i++) {
        /* A hint must never describe writes a crash could still lose: sync first (the flag
         * stays for the syncer, which keeps the order of syncs; so does this loop, oldest
         * first, and it stops at a failed sync). */
        int rc = ldb_sync_seg(db, v[i]);
        if (rc == 0)
            rc = hint_write(db->dir, v[i]);
        if (rc < 0 && (rc == KVS_ESYNC || ldb_fence_if_sync_failed(db)))
            break;
        if (rc < 0)
            LOG_WARN("%s: no hint file written (%s); the segment will be scanned at open",
                     v[i]->path, kvs_last_error());
    }
    if (n && !ldb_is_fenced(db) && io_fsync_dir(db->dir) < 0 && !ldb_fence_if_sync_failed(db))
        LOG_WARN("hint files: %s", kvs_last_error());
    LDB_LOCK(db, wmu);
    for (uint32_t i = 0; i < n; i++)
        v[i]->needs_hint = false; /* a failed one is not retried until the next open */
    LDB_UNLOCK(db, wmu);
    free(v);
}
