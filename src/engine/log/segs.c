/*
 * segs.c — the live segment list and what names it: segment ids, the next active segment, the
 * manifest rewrite; and what a key's entry in the index leads to (ldb_lookup): its current
 * record, verified, with its expiry judged, for every reader of the running store.
 *
 * db->segs holds the live segments in ascending id, the state the MANIFEST describes, each with
 * its slot in the index's segment table (index.h; given as it joins, freed only by whoever
 * destroys it a grace period after it left the index: compaction, compact.c): once the
 * store runs, every change to it goes with a manifest edit under one hold of wmu (a new active
 * segment here, a compaction's swap in compact.c), so a manifest rewritten from the list names
 * exactly what replaying the old one would. Only these functions grow or shrink the list;
 * compaction reserves its room here before its commit, so that nothing after the commit point
 * can fail for memory. Recovery builds the list alone at open, before any other thread exists,
 * so these functions take "under wmu, or alone at open" (ldb_wmu_or_alone) as their condition.
 *
 * Above sync.c (a failed manifest edit may fence the store); below recovery, compaction and the
 * write path, which all make segments through it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <urcu-bp.h>

#include "engine/engine.h"
#include "engine/log/logdb.h"
#include "util/array.h"
#include "util/err.h"
#include "util/io.h"
#include "util/log.h"

unsigned ldb_manifest_reset_edits = 1024;

void ldb_mark_dead(seg *s, uint64_t bytes)
{
    __atomic_add_fetch(&s->dead, bytes, __ATOMIC_RELAXED);
}

int ldb_segs_reserve(logdb *db, uint32_t more)
{
    KVS_ASSERT(ldb_wmu_or_alone(db));
    if (ARR_RESERVE(db->segs, db->capsegs, (size_t)db->nsegs + more) < 0)
        return KVS_ENOMEM;
    return 0;
}

int ldb_segs_add(logdb *db, seg *s)
{
    uint32_t i;
    int rc;

    if ((rc = ldb_segs_reserve(db, 1)) < 0)
        return rc;
    if (s->islot == 0 && (rc = idx_attach_seg(db->idx, s)) < 0)
        return rc;
    for (i = db->nsegs; i > 0 && db->segs[i - 1]->id > s->id; i--)
        db->segs[i] = db->segs[i - 1];
    db->segs[i] = s;
    db->nsegs++;
    return 0;
}

int ldb_index_record(logdb *db, seg *s, uint32_t off, const void *key, uint32_t klen,
                     uint32_t vlen, uint64_t seq, uint8_t flags)
{
    idx_loc loc = {s, off, vlen, seq, (uint8_t)(flags & IDX_EXPIRES)}, old;
    bool tomb = flags & REC_TOMBSTONE;
    int r;

    KVS_ASSERT(rcu_read_ongoing() && ldb_wmu_or_alone(db));
    if (tomb) {
        ldb_mark_dead(s, rec_len(klen, 0));
        r = idx_del(db->idx, key, klen, &old) == 0 ? 1 : 0;
    } else {
        r = idx_put(db->idx, key, klen, &loc, &old);
    }
    if (r == 1)
        ldb_mark_dead(old.seg, rec_len(klen, old.vlen));
    return r;
}

/* Is the record at hk the one the index promised for key, intact? */
static bool record_ok(const unsigned char *hk, const void *key, uint32_t klen, rec_hdr *h)
{
    return rec_decode(hk, h) && !(h->flags & REC_TOMBSTONE) && h->klen == klen &&
           memcmp(hk + REC_HDR, key, klen) == 0 &&
           rec_verify(hk, hk + REC_HDR, klen, hk + REC_HDR + klen, h->vlen);
}

int ldb_record_get(logdb *db, const idx_loc *loc, const void *key, size_t klen, rec_hdr *h,
                   const unsigned char **val)
{
    KVS_ASSERT(rcu_read_ongoing());
    /* The record is read where it lies, in the segment's mapping: no system call, no copy. */
    const unsigned char *rec = loc->seg->map + loc->off;
    if (loc->off + rec_len((uint32_t)klen, loc->vlen) > loc->seg->map_len ||
        !record_ok(rec, key, (uint32_t)klen, h) || h->vlen != loc->vlen) {
        __atomic_add_fetch(&db->corrupt_reads, 1, __ATOMIC_RELAXED);
        LOG_ERROR("%s: record at offset %u fails its checksum; not served", loc->seg->path,
                  loc->off);
        return kvs_seterr(KVS_ECORRUPT, "%s: record at offset %u fails its checksum",
                          loc->seg->path, loc->off);
    }
    *val = rec + REC_HDR + klen;
    return 0;
}

int ldb_lookup(logdb *db, const void *key, size_t klen, uint64_t now, ldb_found *out)
{
    int rc;

    out->expired = false;
    if ((rc = idx_lookup(db->idx, key, klen, &out->loc)) < 0 ||
        (rc = ldb_record_get(db, &out->loc, key, klen, &out->h, &out->val)) < 0)
        return rc;
    /* the clock is read only for a key that has an expiry time (now 0: not read yet) */
    if (out->h.expire_ms && ldb_expired(out->h.expire_ms, now ? now : kvs_clock_ms(&db->opt))) {
        out->expired = true;
        return KVS_ENOTFOUND;
    }
    return 0;
}

void ldb_segs_remove(logdb *db, seg *s)
{
    KVS_ASSERT(ldb_wmu_or_alone(db));
    for (uint32_t i = 0; i < db->nsegs; i++)
        if (db->segs[i] == s) {
            memmove(db->segs + i, db->segs + i + 1, (db->nsegs - i - 1) * sizeof *db->segs);
            db->nsegs--;
            return;
        }
}

/* Does a file hold dir/NNNNNN.suffix (or can it not be told)? */
static bool name_taken(const char *dir, uint32_t id, const char *suffix)
{
    char name[SEG_NAME_MAX], path[PATH_MAX];
    struct stat sb;

    seg_name(name, sizeof name, id, suffix);
    if (io_join(path, sizeof path, dir, name) < 0)
        return true;
    return lstat(path, &sb) == 0 || errno != ENOENT;
}

int ldb_take_seg_id(logdb *db, uint32_t *id)
{
    KVS_ASSERT(ldb_wmu_or_alone(db));
    while (db->next_id != 0 && db->next_id <= LDB_SEG_ID_MAX) {
        uint32_t n = db->next_id++;
        if (!name_taken(db->dir, n, "log") && !name_taken(db->dir, n, "hint")) {
            *id = n;
            return 0;
        }
        LOG_WARN("%s: a file not of this store holds the name of segment %06u (.log or .hint): "
                 "id skipped, file left alone",
                 db->dir, n);
    }
    db->next_id = UINT32_MAX;
    return kvs_seterr(KVS_ENOSPC, "%s: segment ids are used up (the last is %u): no new segment "
                      "can be made; copy the data into a new store",
                      db->dir, (unsigned)LDB_SEG_ID_MAX);
}

int ldb_add_active_seg(logdb *db, uint64_t cap, seg **out)
{
    uint32_t id = 0;
    seg *s;
    int rc;

    KVS_ASSERT(ldb_wmu_or_alone(db));
    if ((rc = ldb_take_seg_id(db, &id)) < 0 || (rc = seg_create(db->dir, id, cap, &s)) < 0)
        return rc;
    if ((rc = ldb_segs_add(db, s)) < 0) {
        seg_destroy(s);
        return rc;
    }
    if ((rc = man_append(&db->man, s->id, &s->id, 1, NULL, 0)) < 0) {
        ldb_segs_remove(db, s);
        idx_detach_seg(db->idx, s); /* nothing of it was indexed */
        /* A failed sync leaves it unknown whether the edit reached the disk: keep the file it
         * names (empty: at the next open it is either the active segment or deleted). */
        if (ldb_fence_if_sync_failed(db))
            seg_close(s);
        else
            seg_destroy(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* Not while a compaction runs: a rewrite between its commit and the deletion of its victims
 * would forget that they were dropped, and a crash then would leave them as unnamed files
 * recovery must keep (they may hold records the compaction deliberately left behind); the
 * compaction's end calls this again. */
int ldb_manifest_maybe_reset(logdb *db)
{
    KVS_ASSERT(ldb_wmu_or_alone(db));
    if (db->man.edits < ldb_manifest_reset_edits || db->compacting || ldb_is_fenced(db))
        return 0;
    return ldb_manifest_rewrite(db);
}

int ldb_manifest_rewrite(logdb *db)
{
    uint32_t *ids = malloc(db->nsegs * sizeof *ids);
    int rc;

    KVS_ASSERT(ldb_wmu_or_alone(db));
    if (!ids)
        return KVS_ENOMEM;
    for (uint32_t i = 0; i < db->nsegs; i++)
        ids[i] = db->segs[i]->id;
    rc = man_reset(db->dir, &db->man, db->active->id, ids, db->nsegs);
    free(ids);
    return rc;
}
