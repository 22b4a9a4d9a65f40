/*
 * recover.c — opening a store: from the files on disk to a ready index.
 *
 *   1. Replay the MANIFEST: which segments are live, which is active. A new directory gets a
 *      manifest naming one empty active segment — so does one that holds no MANIFEST and only
 *      segments of ours that hold nothing (a first open cut short; they are removed).
 *   2. Delete our temporary files (by their exact names); note the segment files the manifest
 *      does not name, telling ours (a valid header naming the file's id) from strays, which are
 *      left alone; next_id goes past the manifest's ids and ours, never past a stray's.
 *   3. Load the index a clean close saved (saved.c), if there is one and it matches the
 *      segments exactly: the sealed segments are then not read at all. The file is moved aside,
 *      used or not, before the first write. Otherwise load each sealed segment from its hint
 *      file; where the hint is missing or damaged, scan the segment (verifying every checksum)
 *      and write the hint anew. A zero tail (a crash between a rotation and its seal) is cut
 *      first, so that the new hint matches; so is a torn tail of a segment without a hint (it
 *      may not have been synced since it was sealed: it is scanned as the active one is).
 *   4. Scan the active segment (after a saved index, only its records past the saved size); a
 *      tail that holds no record is a torn append and is truncated, with its size logged.
 *   Damage (seg_scan) is logged with file and offset and counted (corrupt_records): a record
 *   whose value is damaged is indexed all the same, so its key reads as KVS_ECORRUPT and never
 *   as the value it replaced; a damaged header leaves the rest of its file unread but kept (the
 *   active segment is then sealed as it is and a new one started).
 *   5. Judge the unnamed segments of ours against what is loaded (see "The directory at open"
 *      below): delete those certain to hold nothing live, adopt the segment of a rotation whose
 *      manifest edit was lost, keep the rest (named in a warning); delete the hints of segments
 *      neither live nor kept.
 *   6. Resolve: for each key the record with the highest seq wins, whichever segment it is in
 *      (compaction copies records forward keeping their seq); keys whose winner is a tombstone
 *      are dropped from the index.
 *   7. Settle the manifest before the first write: rewritten if a segment was adopted, else a
 *      damaged last edit cut off; rewritten too if it has grown long (a failure there is only
 *      a warning: the old manifest stays in use).
 *
 * Recovery runs alone, before the engine's threads start, and builds the segment list through
 * segs.c without wmu (db->recovering); it calls nothing above segs.c (logdb.h).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <urcu-bp.h>

#include "engine/log/hint.h"
#include "engine/log/logdb.h"
#include "engine/log/saved.h"
#include "util/array.h"
#include "util/err.h"
#include "util/io.h"
#include "util/log.h"

/* Records go to the index in batches of this many (idx_put_newer_batch). A batch names its keys
 * where they stay readable until it is flushed: in the hint, kept mapped (keys_kept), or, from
 * a scan, in the segment's own mapping (not the scan's, gone when it returns), flushed right
 * after the scan. */
#define LOAD_BATCH 256

typedef struct load_ctx {
    logdb *db;
    seg *s;
    bool keys_kept; /* the keys handed over stay mapped until the index's recovery ends */
    int64_t *tombstones;
    size_t n;       /* records waiting in batch */
    idx_newer batch[LOAD_BATCH];
} load_ctx;

/*
 * The hint files loaded, kept mapped until recovery ends: the index compares each key it is
 * given with the keys it holds, and reads those from their hints (idx_put_newer's key_kept)
 * rather than from their records, which start-up never needs to read. ldb_recover unmaps them
 * all once the index has left recovery.
 */
typedef struct kept_hints {
    hint_map *v;
    size_t n, cap;
} kept_hints;

static void raise_seq(logdb *db, uint64_t seq)
{
    if (seq > db->seq)
        db->seq = seq;
}

/* The waiting records into the index, keeping the newest per key, and what that settles: dead
 * bytes, the tombstones standing, the last seq. */
static int load_flush(load_ctx *c)
{
    uint64_t dead = 0;
    int64_t tombs = 0;
    int rc;

    KVS_ASSERT(rcu_read_ongoing()); /* the caller's one outer section: old.seg stays alive */
    if (c->n == 0)
        return 0;
    rc = idx_put_newer_batch(c->db->idx, c->batch, c->n);
    for (size_t i = 0; i < c->n && rc == 0; i++) {
        const idx_newer *e = &c->batch[i];
        bool tomb = e->loc.flags & REC_TOMBSTONE, old_tomb = e->old.flags & REC_TOMBSTONE;
        /* A tombstone's bytes are dead from the start; a set's once something newer wins. */
        if (e->rc == 2 || tomb)
            dead += rec_len(e->klen, e->loc.vlen);
        if (e->rc == 1 && !old_tomb)
            ldb_mark_dead(e->old.seg, rec_len(e->klen, e->old.vlen));
        /* count the tombstones standing in the index, so that none means no sweep at the end */
        if (e->rc != 2)
            tombs += (tomb ? 1 : 0) - (e->rc == 1 && old_tomb ? 1 : 0);
    }
    c->n = 0;
    if (dead)
        ldb_mark_dead(c->s, dead);
    *c->tombstones += tombs;
    raise_seq(c->db, c->s->max_seq);
    return rc;
}

/* One record (from a scan or a hint) on its way into the index (load_flush). */
static int load_record(void *arg, const seg_rec *r)
{
    load_ctx *c = arg;

    if (r->seq < c->s->min_seq)
        c->s->min_seq = r->seq;
    if (r->seq > c->s->max_seq)
        c->s->max_seq = r->seq;
    idx_newer *e = &c->batch[c->n++]; /* the fields in, one by one: the outs are the batch's */
    KVS_ASSERT(c->keys_kept || r->off + r->len <= c->s->map_len);
    e->key = c->keys_kept ? r->key : c->s->map + r->off + REC_HDR;
    e->klen = r->klen;
    e->kept = c->keys_kept;
    e->loc = (idx_loc){c->s, (uint32_t)r->off, r->vlen, r->seq,
                       (uint8_t)((r->flags & REC_TOMBSTONE) | (r->expire_ms ? IDX_EXPIRES : 0))};
    return c->n == LOAD_BATCH ? load_flush(c) : 0;
}

/* Count what a scan found damaged (the stats' corrupt_records): each record whose value fails
 * its checksum, and a damaged header that leaves the rest of its file unreadable. */
static void count_damage(logdb *db, const seg_scan_result *res)
{
    uint64_t n = res->damaged + (res->tail == SEG_TAIL_CORRUPT ? 1 : 0);

    if (n)
        __atomic_add_fetch(&db->corrupt_records, n, __ATOMIC_RELAXED);
}

/* Scan sealed segment s into the index (it has no hint, or a damaged one), judging its tail as
 * seg_scan_unsynced does with newer; cut a zero or torn tail, write the hint anew. */
static int load_scanned(logdb *db, seg *s, uint64_t newer)
{
    load_ctx c = {.db = db, .s = s, .tombstones = &db->recovered_tombstones};
    seg_scan_result res;
    int rc;

    rcu_read_lock(); /* one outer section for every insert */
    rc = seg_scan_unsynced(s, newer, load_record, &c, &res);
    if (rc == 0)
        rc = load_flush(&c); /* before the tail is cut: the keys are in the mapping */
    rcu_read_unlock();
    if (rc < 0)
        return rc;
    count_damage(db, &res);
    if (res.tail == SEG_TAIL_CORRUPT) {
        /* seg_scan logged where; no hint: it could not describe the file as it is, so the
         * segment is scanned and the damage reported at every open; compaction leaves it be,
         * so that the unreadable bytes stay for whoever can salvage them */
        s->unreadable = res.tail_bytes;
        ldb_mark_dead(s, res.tail_bytes);
        return 0;
    }
    if (res.tail == SEG_TAIL_ZERO || res.tail == SEG_TAIL_TORN) {
        /* A crash between a rotation and the seal leaves the room the file was given ahead:
         * cut it (nothing but zeros after the last record), or the hint, which records the
         * segment's size, would never match and the segment be scanned at every open. A torn
         * append (a power cut before the sealed segment was synced) is cut the same way. */
        if (res.tail == SEG_TAIL_TORN)
            LOG_WARN("%s: torn tail: truncating %llu bytes at offset %llu (a crash before the "
                     "sealed segment was synced)",
                     s->path, (unsigned long long)res.tail_bytes,
                     (unsigned long long)res.valid_end);
        else
            LOG_INFO("%s: cutting %llu bytes of room never written at offset %llu", s->path,
                     (unsigned long long)res.tail_bytes, (unsigned long long)res.valid_end);
        if (seg_trim(s, res.valid_end) < 0) {
            LOG_WARN("%s", kvs_last_error());
            return 0;
        }
    }
    if (hint_write(db->dir, s) < 0)
        LOG_WARN("%s: cannot rewrite its hint: %s", s->path, kvs_last_error());
    return 0;
}

/* Load sealed segment s from its hint: 0, or KVS_ENOTFOUND when it has none — the caller then
 * scans it (load_unhinted) once every segment it must be compared with is loaded: without a
 * hint it may not have been synced since it was sealed (a hint is written only after its
 * segment's sync), so a power cut may have torn its tail as it tears the active one's. A
 * damaged hint was written, so its segment had been synced: it is scanned now, and there only
 * zeros are not damage. */
static int load_sealed(logdb *db, seg *s, kept_hints *kept)
{
    load_ctx c = {.db = db, .s = s, .keys_kept = true, .tombstones = &db->recovered_tombstones};
    hint_map m;

    rcu_read_lock(); /* one outer section for every insert */
    int rc = hint_load_kept(db->dir, s, load_record, &c, &m);
    if (rc == 0)
        rc = load_flush(&c);
    rcu_read_unlock();
    if (m.addr) {
        KVS_ASSERT(kept->n < kept->cap); /* room for every segment: load_all_sealed */
        kept->v[kept->n++] = m;
    }
    if (rc != KVS_ECORRUPT)
        return rc;
    LOG_WARN("%s; scanning the segment instead", kvs_last_error());
    return load_scanned(db, s, UINT64_MAX);
}

static int by_id_desc(const void *a, const void *b)
{
    uint32_t x = (*(seg *const *)a)->id, y = (*(seg *const *)b)->id;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The sealed segments without a hint, after all the others and the active one, newest first:
 * each one's tail is judged against the newest record any other segment holds (a segment with
 * a lower id never holds a record newer than one of a higher id: it was sealed, or written by
 * a compaction, before that one existed). */
static int load_unhinted(logdb *db, seg **v, uint32_t n)
{
    int rc = 0;

    qsort(v, n, sizeof *v, by_id_desc);
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        uint64_t newest = 0;
        for (uint32_t j = 0; j < db->nsegs; j++)
            if (db->segs[j] != v[i] && db->segs[j]->min_seq != UINT64_MAX &&
                db->segs[j]->max_seq > newest)
                newest = db->segs[j]->max_seq;
        rc = load_scanned(db, v[i], newest);
    }
    return rc;
}

/*
 * How many records the live segments hold, for sizing the index before they are loaded (growing
 * it as they come rebuilds it a dozen times on the way to a million keys): the counts the hint
 * headers give, and for the segments without one (the active one, above all) their bytes at the
 * average record size the hinted ones have. Records, not keys: with overwrites and tombstones
 * the table comes out larger than its keys need, and idx_recovery_end cuts it back.
 */
static uint64_t expected_records(logdb *db)
{
    uint64_t hinted = 0, hinted_bytes = 0, other_bytes = 0, avg = REC_HDR + 32;
    uint32_t n;

    for (uint32_t i = 0; i < db->nsegs; i++) {
        seg *s = db->segs[i];
        uint64_t bytes = s->size > SEG_HDR ? s->size - SEG_HDR : 0;
        if (s != db->active && hint_count(db->dir, s, &n) == 0) {
            hinted += n;
            hinted_bytes += bytes;
        } else {
            other_bytes += bytes;
        }
    }
    if (hinted && hinted_bytes / hinted > REC_HDR)
        avg = hinted_bytes / hinted;
    return hinted + other_bytes / avg;
}

/* No more than a quarter of the machine's memory on a table sized ahead (idx_recovery_begin):
 * a store of many overwrites would ask for a table of all its records. */
static uint64_t presize_max(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);

    return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size / 4 : 0;
}

/*
 * Sealed segments load one after the other, on the opening thread, then the active one (which
 * may need truncating), then the sealed ones that have no hint (load_unhinted). They used to
 * load on a thread per core, each inserting under the index's mutex; once inserts came in
 * batches (one lock hold each, their table misses overlapped by prefetching) one loader was
 * measured faster on two cores: 1M keys from hints took 120-150 ms with one, 135-165 ms with
 * two. The work is the inserts, serial under that mutex and bound by memory latency, which one
 * core's prefetches hide and two cores passing the table's cache lines back and forth do not;
 * reading and hashing the hints, the part threads could share, is a sixth of it.
 */
static int load_all_sealed(logdb *db, kept_hints *kept, seg ***unhinted, uint32_t *nunhinted)
{
    uint32_t n = 0;
    int rc = 0;

    /* a hint map for each segment at most (ldb_recover frees it) */
    if (!(kept->v = calloc(db->nsegs + 1, sizeof *kept->v)))
        return KVS_ENOMEM;
    kept->cap = db->nsegs + 1;
    if (!(*unhinted = malloc((db->nsegs + 1) * sizeof **unhinted)))
        return KVS_ENOMEM;
    for (uint32_t i = 0; i < db->nsegs && rc == 0; i++) {
        seg *s = db->segs[i];
        if (s != db->active && (rc = load_sealed(db, s, kept)) == KVS_ENOTFOUND) {
            (*unhinted)[n++] = s;
            rc = 0;
        }
    }
    *nunhinted = n;
    return rc;
}

/* The active segment holds a damaged header with data after it. Those bytes cannot be read but
 * may hold acknowledged writes that someone could still salvage, so nothing is cut or
 * overwritten: the segment stays whole, sealed, its unreadable bytes counted dead (and kept out
 * of compaction), and once the manifest is settled writes go on in a new active segment
 * (start_new_active). The store opens as of the point just before the damage. */
static void seal_damaged_active(seg *s, const seg_scan_result *res)
{
    s->sealed = true;
    s->unreadable = res->tail_bytes;
    ldb_mark_dead(s, res->tail_bytes);
    LOG_ERROR("%s: kept whole as a sealed segment (nothing after offset %llu is served); writes "
              "go to a new segment",
              s->path, (unsigned long long)res->valid_end);
}

/* A new active segment, named by a manifest edit as a rotation's is (after seal_damaged_active,
 * once the manifest is settled). */
static int start_new_active(logdb *db)
{
    seg *n;
    int rc = ldb_add_active_seg(db, db->opt.segment_size, &n);

    if (rc < 0)
        return rc;
    LOG_WARN("%s: the new active segment", n->path);
    db->active = n;
    return 0;
}

/* A record of the active segment newer than everything a saved index holds (saved.h): applied
 * as the write path applied it. The active segment's records are in seq order. */
static int replay_record(void *arg, const seg_rec *r)
{
    load_ctx *c = arg;
    int rc;

    if (r->seq < c->s->min_seq)
        c->s->min_seq = r->seq;
    c->s->max_seq = r->seq;
    rc = ldb_index_record(c->db, c->s, (uint32_t)r->off, r->key, r->klen, r->vlen, r->seq,
                          (uint8_t)((r->flags & REC_TOMBSTONE) | (r->expire_ms ? IDX_EXPIRES : 0)));
    raise_seq(c->db, r->seq);
    return rc < 0 ? rc : 0;
}

/* Load the active segment's records from offset from: all of them (from SEG_HDR, fn
 * load_record), or those after a saved index's (fn replay_record). */
static int load_active(logdb *db, seg *s, uint64_t from, seg_scan_fn fn)
{
    load_ctx c = {.db = db, .s = s, .tombstones = &db->recovered_tombstones};
    seg_scan_result res;
    int rc;

    rcu_read_lock();
    rc = seg_scan_active_from(s, from, fn, &c, &res);
    if (rc == 0)
        rc = load_flush(&c); /* before the tail is cut and the mapping replaced */
    rcu_read_unlock();
    if (rc < 0)
        return rc;
    count_damage(db, &res);
    if (res.tail == SEG_TAIL_CORRUPT) {
        seal_damaged_active(s, &res);
        return 0;
    }
    if (res.tail != SEG_TAIL_NONE) {
        /* Zeros are room the file was given ahead of writes that never came; a torn tail is an
         * append a crash cut short, never acknowledged as durable. */
        if (res.tail == SEG_TAIL_ZERO)
            LOG_DEBUG("%s: dropping %llu preallocated bytes", s->path,
                      (unsigned long long)res.tail_bytes);
        else
            LOG_WARN("%s: torn tail: truncating %llu bytes at offset %llu", s->path,
                     (unsigned long long)res.tail_bytes, (unsigned long long)res.valid_end);
        if ((rc = seg_trim(s, res.valid_end)) < 0)
            return rc;
    }
    return seg_make_writable(s, db->opt.segment_size);
}

/*
 * ---- The directory at open: which files are ours, which are dead, which are kept ----
 *
 * A file is deleted at open only when it is certain to hold nothing live:
 *   - a temporary file kvs writes, by its exact name (MANIFEST.tmp, api.c's ENGINE.tmp,
 *     INDEX.tmp, NNNNNN.hint.tmp): a crash came before its rename; and INDEX.old, a saved index
 *     read at an open, never to be read again (saved.h). Nothing else ending in .tmp is ours;
 *   - a segment file the manifest does not name, whose header is ours, and
 *       - which an edit of the manifest dropped: a compaction victim whose deletion a crash
 *         interrupted (its live records are in the outputs that edit added), or
 *       - which holds no record newer than what the live segments hold for its key (same key,
 *         seq ≤) and nothing unreadable: a rotation's new segment before it took a write, the
 *         outputs of a compaction whose edit never committed (copies of live records);
 *   - the hint file of a segment that is neither live nor kept.
 * The second test needs the live segments in the index, so segment files are judged after
 * loading; temporary files go first.
 *
 * An unnamed segment, never dropped, with records newer than anything live, is the segment of
 * a lost edit. Only the last edit can be lost (a damaged edit with valid ones after it refuses
 * to open), and the one lost edit that leaves such a segment is a rotation ("add N, active N")
 * that was acknowledged, took writes, and was damaged afterwards. The segment is adopted —
 * loaded as a sealed segment, and named again by a rewritten manifest — when it is certainly
 * that: the manifest's last edit is damaged, it is the only such segment, its id is past every
 * id the manifest ever named, and every record in it is newer than every live record.
 * Otherwise it is kept, not loaded, and named in a warning. A dropped segment is never adopted:
 * its compaction may have left out tombstones whose older records live only there.
 *
 * A file named like a segment whose header is not one of ours (or names another id) is a
 * stray: an operator's, another program's. It is left alone, named in a warning, and does not
 * move next_id; ldb_take_seg_id (segs.c) steps over its name when the ids get there.
 */

typedef struct id_list {
    uint32_t *v;
    uint32_t n;
    size_t cap;
} id_list;

static int id_push(id_list *l, uint32_t id)
{
    if (ARR_RESERVE(l->v, l->cap, (size_t)l->n + 1) < 0)
        return KVS_ENOMEM;
    l->v[l->n++] = id;
    return 0;
}

static bool id_in(const id_list *l, uint32_t id)
{
    for (uint32_t i = 0; i < l->n; i++)
        if (l->v[i] == id)
            return true;
    return false;
}

static int id_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Is name a temporary file of ours (manifest.c's, api.c's ENGINE, saved.c's two, hint.c's)? */
static bool is_leftover(const char *name)
{
    return strcmp(name, MAN_FILE ".tmp") == 0 || strcmp(name, "ENGINE.tmp") == 0 ||
           strcmp(name, SAVED_FILE ".tmp") == 0 || strcmp(name, SAVED_RETIRED) == 0 ||
           seg_parse_name(name, "hint.tmp") != 0;
}

/* Delete our temporary files; list the NNNNNN.log and NNNNNN.hint files that the manifest does
 * not name (logs ascending). */
static int remove_leftovers(logdb *db, const man_state *st, id_list *logs, id_list *hints)
{
    DIR *d = opendir(db->dir);
    struct dirent *de;
    char path[PATH_MAX];
    int removed = 0, rc = 0;
    uint32_t id;

    if (!d)
        return kvs_seterr(kvs_errno(errno), "open directory %s: %s", db->dir, strerror(errno));
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (is_leftover(de->d_name)) {
            if (io_join(path, sizeof path, db->dir, de->d_name) < 0)
                continue;
            LOG_INFO("removing %s: the temporary file of a step that never finished", path);
            if (unlink(path) == 0)
                removed++;
            else
                LOG_WARN("cannot remove %s: %s", path, strerror(errno));
        } else if ((id = seg_parse_name(de->d_name, "log")) != 0 && !man_state_has(st, id)) {
            rc = id_push(logs, id);
        } else if ((id = seg_parse_name(de->d_name, "hint")) != 0 && !man_state_has(st, id)) {
            rc = id_push(hints, id);
        }
    }
    closedir(d);
    if (logs->n)
        qsort(logs->v, logs->n, sizeof *logs->v, id_cmp);
    if (rc == 0 && removed)
        rc = io_fsync_dir(db->dir);
    return rc;
}

/* Open segment file id read-only if its header is ours: 1. A stray (not a segment of this
 * store, or one naming another id) is named in a warning and left alone: 0. */
static int open_ours(logdb *db, uint32_t id, seg **s)
{
    int rc = seg_open(db->dir, id, false, s);

    if (rc == KVS_ECORRUPT || rc == KVS_EVERSION || rc == KVS_EFORMAT) {
        LOG_WARN("%s; not a segment of this store: left alone", kvs_last_error());
        return 0;
    }
    return rc < 0 ? rc : 1;
}

/* Keep in logs only the segments that are ours, add the strays to kept; *max_id gets the
 * highest id of ours. */
/*
 * A segment whose creation a crash cut short (seg_create makes the file, then writes its
 * header: a kill in between leaves it empty or with part of the header) is ours if it is the
 * next id that would have been taken — or the next after such a one, a crash at each open.
 * Those are deleted; any other short file is a stray like the rest. unfinished: ascending.
 */
static int drop_unfinished(logdb *db, const id_list *unfinished, uint32_t next, id_list *kept)
{
    bool removed = false;
    int rc = 0;

    for (uint32_t i = 0; i < unfinished->n && rc == 0; i++) {
        char name[SEG_NAME_MAX], path[PATH_MAX];
        uint32_t id = unfinished->v[i];
        seg_name(name, sizeof name, id, "log");
        if (id == next && io_join(path, sizeof path, db->dir, name) == 0 && unlink(path) == 0) {
            LOG_INFO("removing %s: a segment whose creation a crash cut short", path);
            removed = true;
            next++;
            continue;
        }
        LOG_WARN("%s/%s: shorter than a segment header, and not the segment being created: "
                 "left alone",
                 db->dir, name);
        rc = id_push(kept, id);
    }
    return rc == 0 && removed ? io_fsync_dir(db->dir) : rc;
}

static int keep_ours(logdb *db, id_list *logs, id_list *kept, uint32_t *max_id,
                     uint32_t man_max)
{
    id_list unfinished = {0};
    uint32_t n = 0;
    int rc = 0;

    for (uint32_t i = 0; i < logs->n && rc >= 0; i++) {
        seg *s;
        if (seg_is_unfinished(db->dir, logs->v[i])) {
            rc = id_push(&unfinished, logs->v[i]);
        } else if ((rc = open_ours(db, logs->v[i], &s)) == 1) {
            seg_close(s);
            logs->v[n++] = logs->v[i];
            if (logs->v[i] > *max_id)
                *max_id = logs->v[i];
        } else if (rc == 0) {
            rc = id_push(kept, logs->v[i]);
        }
    }
    logs->n = n;
    if (rc >= 0)
        rc = drop_unfinished(db, &unfinished, (man_max > *max_id ? man_max : *max_id) + 1, kept);
    free(unfinished.v);
    return rc < 0 ? rc : 0;
}

static void set_next_id(logdb *db, uint32_t max_id)
{
    db->next_id = max_id >= LDB_SEG_ID_MAX ? UINT32_MAX : max_id + 1;
    if (db->next_id > LDB_SEG_ID_MAX)
        LOG_WARN("%s: segment ids are used up (segment %u exists): the store takes writes until "
                 "its active segment is full, then refuses them",
                 db->dir, max_id);
}

/* An unnamed segment of ours under judgement, and what its scan found. */
typedef struct unnamed {
    logdb *db;
    seg *s;
    uint64_t records, newer, min_seq;
    seg_scan_result res;
} unnamed;

/* Count the records that are newer than what the live segments hold for their key. */
static int judge_record(void *arg, const seg_rec *r)
{
    unnamed *u = arg;
    idx_loc loc;

    u->records++;
    if (r->seq < u->min_seq)
        u->min_seq = r->seq;
    if (idx_lookup(u->db->idx, r->key, r->klen, &loc) != 0 || loc.seq < r->seq)
        u->newer++;
    return 0;
}

/* Scan u->s (read-only, as a crash may have left it: a torn tail is no damage). */
static int judge(unnamed *u)
{
    int rc;

    u->min_seq = UINT64_MAX;
    rcu_read_lock();
    rc = seg_scan_active(u->s, judge_record, u, &u->res);
    rcu_read_unlock();
    return rc;
}

/* Is u certainly the segment of a rotation whose edit was lost (see above)? */
static bool adoptable(const logdb *db, const man_state *st, const unnamed *u)
{
    return st->lost_bytes && u->s->id > st->max_id && u->records && u->min_seq > db->seq;
}

/*
 * Judge the unnamed segments of ours (after the live ones are loaded): delete the dead ones,
 * put the one to adopt in *adopt, keep the others (their ids into kept). *adopt stays NULL if
 * there is none.
 */
static int judge_unnamed(logdb *db, const man_state *st, const id_list *ours, id_list *kept,
                         unnamed *adopt)
{
    unnamed *c = calloc(ours->n ? ours->n : 1, sizeof *c);
    uint32_t nc = 0;
    bool removed = false;
    int rc = 0;

    if (!c)
        return KVS_ENOMEM;
    for (uint32_t i = 0; i < ours->n && rc == 0; i++) {
        unnamed u = {.db = db};
        if ((rc = seg_open(db->dir, ours->v[i], false, &u.s)) < 0)
            break;
        if (man_state_dropped(st, u.s->id)) {
            LOG_INFO("removing %s: dropped by a compaction's manifest edit (a crash came before "
                     "its deletion)",
                     u.s->path);
            seg_destroy(u.s);
            removed = true;
            continue;
        }
        if ((rc = judge(&u)) < 0) {
            seg_close(u.s);
            break;
        }
        if (u.newer == 0 && u.res.tail != SEG_TAIL_CORRUPT) {
            LOG_INFO("removing %s: not named by the manifest, and none of its %llu records is "
                     "newer than the live segments' (an unfinished rotation or compaction)",
                     u.s->path, (unsigned long long)u.records);
            seg_destroy(u.s);
            removed = true;
            continue;
        }
        c[nc++] = u;
    }
    if (rc == 0 && nc == 1 && adoptable(db, st, &c[0])) {
        *adopt = c[0];
        nc = 0;
    }
    for (uint32_t i = 0; i < nc; i++) {
        if (rc == 0) {
            LOG_WARN("%s: not named by the manifest, yet %llu of its %llu records are newer than "
                     "the live segments'%s: kept as it is, not loaded; look at it before "
                     "removing it",
                     c[i].s->path, (unsigned long long)c[i].newer,
                     (unsigned long long)c[i].records,
                     c[i].res.tail == SEG_TAIL_CORRUPT ? ", and part of it is unreadable" : "");
            rc = id_push(kept, c[i].s->id);
        }
        seg_close(c[i].s);
    }
    free(c);
    if (rc == 0 && removed)
        rc = io_fsync_dir(db->dir);
    return rc;
}

/* Delete segment id's hint file, if there is one: true if there was. */
static bool remove_hint(logdb *db, uint32_t id)
{
    char name[SEG_NAME_MAX], path[PATH_MAX];

    seg_name(name, sizeof name, id, "hint");
    if (io_join(path, sizeof path, db->dir, name) < 0)
        return false;
    if (unlink(path) == 0) {
        LOG_INFO("removing %s: the hint of a segment that is not sealed and live", path);
        return true;
    }
    if (errno != ENOENT)
        LOG_WARN("cannot remove %s: %s", path, strerror(errno));
    return false;
}

/* Delete the hint files of segments that are neither live nor kept (the adopted one's too: it
 * was active, and its hint is written anew when it is loaded). */
static int remove_hints(logdb *db, const id_list *hints, const id_list *kept)
{
    bool removed = false;

    for (uint32_t i = 0; i < hints->n; i++)
        if (!id_in(kept, hints->v[i]) && remove_hint(db, hints->v[i]))
            removed = true;
    return removed ? io_fsync_dir(db->dir) : 0;
}

/* Load the segment of the lost rotation as a sealed one; it joins the live list (db owns it
 * from then on, even on failure). The active segment stays the one the manifest names. */
static int adopt_segment(logdb *db, const man_state *st, unnamed *u)
{
    seg *s = u->s;
    int rc;

    if (u->res.tail == SEG_TAIL_TORN || u->res.tail == SEG_TAIL_ZERO) {
        if (u->res.tail == SEG_TAIL_TORN)
            LOG_WARN("%s: torn tail: truncating %llu bytes at offset %llu", s->path,
                     (unsigned long long)u->res.tail_bytes,
                     (unsigned long long)u->res.valid_end);
        if ((rc = seg_trim(s, u->res.valid_end)) < 0)
            return rc;
    }
    if ((rc = ldb_segs_add(db, s)) < 0)
        return rc;
    u->s = NULL;
    s->needs_sync = true; /* what it took may not have reached the disk yet */
    /* The active segment takes appends again: a hint written when the lost rotation sealed it
     * would describe it no longer. */
    remove_hint(db, db->active->id);
    LOG_WARN("%s: adopted: the manifest's last edit is lost (%llu bytes at offset %llu), and "
             "this segment, which no edit names, holds %llu records all newer than every live "
             "one: the segment a rotation made active before that edit was damaged. It is "
             "loaded, and the manifest rewritten to name it",
             s->path, (unsigned long long)st->lost_bytes, (unsigned long long)st->lost_off,
             (unsigned long long)u->records);
    return load_scanned(db, s, 0); /* its tail is cut already: it was judged as the active */
}

/* Leave the manifest whole and naming the live list before the first write: rewritten if a
 * segment was adopted, else cut back to its last valid edit if one was lost. */
static int settle_manifest(logdb *db, const man_state *st, bool adopted)
{
    int rc;

    if (adopted)
        rc = ldb_manifest_rewrite(db);
    else
        rc = st->lost_bytes ? man_drop_tail(&db->man) : 0;
    if (rc < 0)
        return rc;
    /* A failed rewrite leaves the old manifest in use: not a reason to refuse the store. */
    if (ldb_manifest_maybe_reset(db) < 0)
        LOG_WARN("%s: manifest rewrite failed, the old one stays in use: %s", db->dir,
                 kvs_last_error());
    return 0;
}

/* Does segment file id (ours) hold anything: a record, or bytes that are not zeros? */
static int holds_data(logdb *db, seg *s)
{
    unnamed u = {.db = db, .s = s};
    int rc = judge(&u);

    if (rc < 0)
        return rc;
    return u.records > 0 || u.res.tail == SEG_TAIL_CORRUPT || u.res.tail == SEG_TAIL_TORN;
}

/* Does dir hold a segment of ours that holds data? (Strays are named in warnings and do not
 * count.) Segments of ours that hold nothing go into empty. */
static int dir_has_segments(logdb *db, id_list *empty)
{
    DIR *d = opendir(db->dir);
    struct dirent *de;
    int found = 0;
    uint32_t id;
    seg *s;

    if (!d)
        return kvs_seterr(kvs_errno(errno), "open directory %s: %s", db->dir, strerror(errno));
    while (found == 0 && (de = readdir(d)) != NULL)
        if ((id = seg_parse_name(de->d_name, "log")) != 0 && (found = open_ours(db, id, &s)) == 1) {
            if ((found = holds_data(db, s)) == 0)
                found = id_push(empty, id);
            seg_close(s);
        }
    closedir(d);
    return found;
}

/* Delete the segments of a first open that a crash cut short before its MANIFEST was in place:
 * they hold no record (a segment is created, synced, and only then named by a new MANIFEST). */
static int remove_unborn(logdb *db, const id_list *empty)
{
    char name[SEG_NAME_MAX], path[PATH_MAX];
    int rc;

    for (uint32_t i = 0; i < empty->n; i++) {
        seg_name(name, sizeof name, empty->v[i], "log");
        if ((rc = io_join(path, sizeof path, db->dir, name)) < 0)
            return rc;
        LOG_WARN("removing %s: an empty segment and no MANIFEST (the first open of this "
                 "directory was cut short)",
                 path);
        if (unlink(path) < 0)
            return kvs_seterr(kvs_errno(errno), "remove %s: %s", path, strerror(errno));
    }
    return empty->n ? io_fsync_dir(db->dir) : 0;
}

static int create_fresh(logdb *db)
{
    id_list empty = {0};
    uint32_t first;
    seg *s;
    int rc;

    rc = dir_has_segments(db, &empty);
    if (rc == 0)
        rc = remove_unborn(db, &empty);
    free(empty.v);
    if (rc != 0)
        return rc < 0 ? rc
                      : kvs_seterr(KVS_ECORRUPT, "%s holds segment files but no MANIFEST",
                                   db->dir);
    db->next_id = 1;
    if ((rc = ldb_take_seg_id(db, &first)) < 0 ||
        (rc = seg_create(db->dir, first, db->opt.segment_size, &s)) < 0)
        return rc;
    if ((rc = man_reset(db->dir, &db->man, first, &first, 1)) < 0 ||
        (rc = ldb_segs_add(db, s)) < 0) {
        seg_destroy(s);
        return rc;
    }
    db->active = s;
    return 0;
}

static int recover(logdb *db, kept_hints *hint_maps)
{
    man_state st;
    id_list logs = {0}, hints = {0}, kept = {0};
    unnamed adopt = {0};
    uint32_t max_id = 0, nunhinted = 0;
    seg **unhinted = NULL;
    int rc = man_open(db->dir, &db->man, &st);

    if (rc == KVS_ENOTFOUND)
        return create_fresh(db);
    if (rc < 0)
        return rc;
    if ((rc = remove_leftovers(db, &st, &logs, &hints)) < 0 ||
        (rc = keep_ours(db, &logs, &kept, &max_id, st.max_id)) < 0)
        goto out;
    set_next_id(db, st.max_id > max_id ? st.max_id : max_id);
    for (uint32_t i = 0; i < st.n; i++) {
        seg *s;
        if ((rc = seg_open(db->dir, st.ids[i], st.ids[i] == st.active, &s)) < 0)
            goto out;
        if ((rc = ldb_segs_add(db, s)) < 0) {
            seg_close(s);
            goto out;
        }
        if (s->id == st.active)
            db->active = s;
    }
    /* The active segment takes appends: a hint of it (written when a rotation sealed it, the
     * rotation's edit then lost) would describe it no longer, and a later open would trust it
     * over the writes made since (found by fuzz_recover: stale-hint-of-reactivated-segment). */
    if (remove_hint(db, db->active->id) && (rc = io_fsync_dir(db->dir)) < 0)
        goto out;
    uint64_t from;
    if ((rc = ldb_index_load(db, &from)) < 0)
        goto out;
    if (rc == 1)
        rc = load_active(db, db->active, from, replay_record);
    else if ((rc = idx_recovery_begin(db->idx, expected_records(db), presize_max())) == 0 &&
             (rc = load_all_sealed(db, hint_maps, &unhinted, &nunhinted)) == 0 &&
             (rc = load_active(db, db->active, SEG_HDR, load_record)) == 0)
        rc = load_unhinted(db, unhinted, nunhinted);
    if (rc < 0)
        goto out;
    if ((rc = judge_unnamed(db, &st, &logs, &kept, &adopt)) < 0 ||
        (rc = remove_hints(db, &hints, &kept)) < 0)
        goto out;
    bool adopted = adopt.s != NULL;
    if (adopted && (rc = adopt_segment(db, &st, &adopt)) < 0)
        goto out;
    if (db->recovered_tombstones > 0)
        idx_drop_tombstones(db->idx);
    if ((rc = settle_manifest(db, &st, adopted)) == 0 && db->active->sealed)
        rc = start_new_active(db);
out:
    if (adopt.s)
        seg_close(adopt.s);
    free(unhinted);
    free(logs.v);
    free(hints.v);
    free(kept.v);
    man_state_free(&st);
    return rc;
}

/* The functions recovery shares with the running store, which assume wmu, accept
 * db->recovering instead (ldb_wmu_or_alone). */
int ldb_recover(logdb *db)
{
    kept_hints kept = {NULL, 0, 0};
    int rc;

    db->recovering = true;
    rc = recover(db, &kept);
    idx_recovery_end(db->idx); /* no key of a hint is read after this */
    for (size_t i = 0; i < kept.n; i++)
        hint_unmap(&kept.v[i]);
    free(kept.v);
    db->recovering = false;
    return rc;
}
