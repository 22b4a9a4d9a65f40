/*
 * logdb.h — the state of one open store of the log-structured engine, shared by the files of
 * src/engine/log/.
 *
 * The engine users know as "kvs" (kvs_logdb_engine in engine.h) is logdb in the code: the struct
 * below, and ldb_ the prefix of what its files share. (LOG_* and kvs_log_* are the logging of
 * util/log.h, nothing of this engine's; "log" alone is a segment file, NNNNNN.log.)
 *
 * Files, lowest layer first. A file calls only files below it, never one above (no call
 * cycles): where a lower one must wake a higher one — the write path wakes the maintenance
 * thread — it goes through the state here (ldb_maint_kick, util/syncer.h), not a call up.
 *
 *   record.c, segment.c, hint.c    the formats: records, segment files, hint files
 *   manifest.c, index.c            the MANIFEST; the lock-free key index
 *   sync.c        the fence, and syncing segments in commit order
 *   segs.c        the segment list, segment ids, the next active segment, the manifest rewrite;
 *                 a key's current record as readers see it (ldb_lookup: verified, expiry judged)
 *   saved.c       the saved index: written at close, loaded at open in place of a rebuild
 *   recover.c     open: manifest → hints/scans → index   (recover.c and compact.c are one
 *   compact.c     compaction, and writing hint files       level: neither calls the other)
 *   commit.c      the write path: group commit, appends, rotation
 *   background.c  the threads: the everysec syncer, the maintenance thread, the idle clean-up,
 *                 the expiry sweep, kvs_clear's walks
 *   engine.c      the engine table: open, close, read, stats
 *   upgrade.c     kvs_upgrade, above them all and apart: it reads a store of the previous
 *                 format with a reader of its own (and manifest.c, segment.c's opening) and
 *                 writes the new one through kvs.h; it shares nothing with an open store
 *
 * Threads and locks:
 *   - readers (ldb_read) take no lock: an RCU read section around the index lookup and the read
 *     of the record where it lies, in its segment's mapping;
 *   - writers queue on qmu; one of them at a time leads, committing everyone's queued writes
 *     as one batch (group commit, commit.c) under wmu;
 *   - wmu guards what changes the store's shape — appends, rotation, the segment list, the
 *     manifest — and is held only for short steps; recovery changes it alone, before any other
 *     thread exists, without wmu (db->recovering);
 *   - cmu serializes compaction and hint writing, which do their long work (scanning, copying,
 *     syncing) without wmu, so reads and writes go on throughout;
 *   - two background threads (util/syncer.h): the syncer (everysec) and the maintenance thread
 *     (hint files of sealed segments, automatic compaction), both stopped by ldb_threads_stop;
 *   - the index (index.h) has its own mutex for every change to it — the write path's puts and
 *     deletes under wmu, compaction's repoints and segment slots under cmu alone, recovery
 *     under neither — and takes nothing under it;
 *   - lock order: cmu, then wmu, then the index's mutex; qmu is never held with cmu or wmu; a
 *     background thread's own mutex (util/syncer.h) is a leaf, taken under wmu to wake it.
 * wmu and cmu are taken through LDB_LOCK (below), which in checked builds (util/invariant.h)
 * remembers the thread holding them, so that "under wmu" is asserted where it is assumed.
 * Figures that readers and stats look at without wmu are atomics.
 */
#ifndef KVS_LOG_LOGDB_H
#define KVS_LOG_LOGDB_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/log/index.h"
#include "engine/log/manifest.h"
#include "engine/log/segment.h"
#include "kvs.h"
#include "util/fence.h"
#include "util/invariant.h"
#include "util/syncer.h"

/* A writer's request in the commit queue (commit.c). */
typedef struct commit_req {
    kvs_op *ops;
    size_t n;
    int rc;
    bool done;
    uint64_t pos;      /* the batch's position (kvs.h "Positions"): db->seq once it is applied */
    bool applied;      /* the batch did not fail as a whole (its ops may have, one by one) */
    struct commit_req *next;
} commit_req;

typedef struct logdb {
    char dir[PATH_MAX];
    kvs_options opt;
    idx *idx;

    pthread_mutex_t wmu;
    seg **segs;        /* live segments, ascending id (under wmu) */
    uint32_t nsegs;
    size_t capsegs;
    seg *active;       /* (under wmu) */
    uint32_t next_id;
    uint64_t seq;      /* last sequence number handed out */
    manifest man;
    bool dirty;        /* appended since the last sync (under wmu) */
    bool recovering;   /* ldb_recover runs: alone, so it needs no wmu (ldb_wmu_or_alone) */

    /* group commit */
    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    commit_req *qhead, *qtail;
    bool leader;

    /* durability (sync.c): the position a sync has made durable, and who waits for it */
    pthread_mutex_t syncmu;   /* one ldb_sync_written at a time (taken before wmu) */
    pthread_mutex_t dmu;      /* a leaf, taken under wmu too */
    pthread_cond_t dcv;       /* durable grew, or the store was fenced (under dmu) */
    uint64_t durable;         /* the durable position: every seq <= it is on disk (atomic) */
    uint64_t applied;         /* db->seq as of the last batch applied (atomic; under wmu) */
    uint64_t appended;        /* bytes appended to the log since open (atomic; under wmu) */
    uint64_t durable_bytes;   /* ... of which durable (atomic) */
    uint64_t durable_writes_mark; /* db->writes as of the last advance (under dmu) */
    uint64_t durable_syncs, durable_writes; /* kvs_stats (atomics) */
    uint64_t undurable_usec;  /* when the oldest write not yet durable was applied; 0: none (wmu) */
    bool sync_wanted;         /* kvs_sync_soon: the sync thread syncs even if its mode would not */

    /* background threads (background.c) */
    syncer syncer, maint;
    bool stopping;            /* closing: no more writes, kicks or maintenance (under wmu) */
    uint64_t last_write_usec; /* when the last batch committed (under wmu) */
    uint64_t due_checked_usec; /* when a batch last asked ldb_compact_due (under wmu) */
    int64_t recovered_tombstones; /* open only: tombstones standing in the index */
    bool index_retired;       /* the saved index read at open awaits removal (saved.h; wmu) */
    bool idle_done;           /* the idle clean-up ran since the last write (under wmu) */
    pthread_mutex_t cmu;      /* one compaction or hint writer at a time */
#if KVS_INVARIANTS_CHECKED
    pthread_t wmu_owner, cmu_owner; /* who holds wmu, cmu; 0: no one (atomics; LDB_LOCK) */
#endif

    /* figures (atomics) */
    uint64_t writes, syncs, syncs_started, compactions, compact_reclaimed, compact_last_usec,
        corrupt_reads;
    uint64_t corrupt_records; /* damaged records recovery found (record.h, seg_scan) */
    uint64_t expired_keys;    /* keys removed because their time passed (kvs_stats) */
    uint64_t sweep_cursor;    /* where the expiry sweep goes on (index cursor; maint thread) */
    uint64_t sweep_credit;    /* removals the sweep may still make this second (maint thread) */
    uint64_t sweep_usec;      /* when the credit was last topped up (maint thread) */
    uint64_t clear_bound;     /* kvs_clear async: remove keys of seq <= it; 0: none (wmu) */
    uint64_t clear_cursor;    /* ... from this index cursor on (wmu) */
    int compacting;
    uint64_t compact_done, compact_todo;
    uint64_t compact_paced_usec; /* slept to keep to opt.compact_rate (kvs_stats) */

    /* A sync failed: no more writes, syncs or maintenance (ldb_fence; util/fence.h). */
    kvs_fence fence;
} logdb;

/*
 * LDB_LOCK(db, wmu) / LDB_UNLOCK(db, wmu), and the same for cmu: how the store's two mutexes
 * are taken and released. In checked builds the holder is written to db->wmu_owner just after
 * the lock is taken and cleared just before it is released, so only the holder ever finds
 * itself there and LDB_HOLDS(db, wmu) is exact for the calling thread (the owner fields are
 * atomics: other threads write them meanwhile). For KVS_ASSERT only. In release builds these
 * are the bare pthread calls.
 */
#if KVS_INVARIANTS_CHECKED
#define LDB_OWNER_SET(o) __atomic_store_n(&(o), pthread_self(), __ATOMIC_RELAXED)
#define LDB_OWNER_CLEAR(o) __atomic_store_n(&(o), (pthread_t)0, __ATOMIC_RELAXED)
#define LDB_HOLDS(db, m) pthread_equal(__atomic_load_n(&(db)->m##_owner, __ATOMIC_RELAXED), \
                                       pthread_self())
#else
#define LDB_OWNER_SET(o) ((void)0)
#define LDB_OWNER_CLEAR(o) ((void)0)
#define LDB_HOLDS(db, m) true /* never evaluated: KVS_ASSERT compiles to nothing */
#endif
#define LDB_LOCK(db, m) (pthread_mutex_lock(&(db)->m), LDB_OWNER_SET((db)->m##_owner))
#define LDB_UNLOCK(db, m) (LDB_OWNER_CLEAR((db)->m##_owner), pthread_mutex_unlock(&(db)->m))

/* For KVS_ASSERT only: "under wmu, or alone at open" — what the functions that recovery shares
 * with the running store assume. */
static inline bool ldb_wmu_or_alone(logdb *db)
{
    return db->recovering || LDB_HOLDS(db, wmu);
}

/* Wake the maintenance thread: work is waiting (under wmu). Not once the store is stopping:
 * the thread may be gone. */
static inline void ldb_maint_kick(logdb *db)
{
    KVS_ASSERT(LDB_HOLDS(db, wmu));
    if (!db->stopping)
        syncer_kick(&db->maint);
}

/* sync.c */
/* fsyncgate (kvs.h, "Durability"). A sync failed — why says which and how: fence the store.
 * After a failed fsync the kernel may have dropped the pages it could not write and marked them
 * clean, so a sync retried later can succeed without them. So nothing is retried: every later
 * write, sync, compaction and hint write fails with KVS_ESYNC, reads go on, and a restart
 * recovers from what is on disk. Any thread, any locks. Returns KVS_ESYNC with the detail. */
int ldb_fence(logdb *db, const char *why);
/* KVS_ESYNC (detail set) if the store is fenced, else 0. */
int ldb_fenced(logdb *db);
static inline bool ldb_is_fenced(logdb *db)
{
    return fence_is_up(&db->fence);
}
/* After a step that may have synced failed: if a sync failed on this thread
 * (io_take_sync_failure), fence with the failure's detail (kvs_last_error) and return true. */
bool ldb_fence_if_sync_failed(logdb *db);
/* fdatasync segment s: the way the log engine syncs a segment. Syncs of one segment are one at
 * a time, and a failure fences the store before the next may start: the kernel reports a failed
 * writeback of a file to one fdatasync only, so the sync after it could succeed and prove
 * nothing. KVS_ESYNC once fenced. */
int ldb_sync_seg(logdb *db, seg *s);
/* Sync every write not synced yet — sealed segments oldest first, then the active one — the
 * fdatasyncs outside wmu (not held; taken for the short steps around them). The caller keeps
 * the segments alive meanwhile: it holds cmu (compaction, before its commit: the writes that
 * replaced the records it dropped must be durable first), or an RCU read section (the syncer).
 * hold_us: the syncer's test hook kvs_test_syncer_delay_us, 0 for anyone else. */
int ldb_sync_written(logdb *db, unsigned hold_us);
/* The same under wmu, the fdatasyncs too (kvs_sync_now, compaction's, close). */
int ldb_sync_locked(logdb *db);
/* The durable position (kvs_durable), waiting for one (kvs_wait_durable; timeout_ms < 0: no
 * limit), asking for a sync (kvs_sync_soon: the sync thread's next call syncs whatever the
 * mode). */
int ldb_durable(logdb *db, uint64_t *pos);
int ldb_wait_durable(logdb *db, uint64_t pos, long timeout_ms);
int ldb_sync_soon(logdb *db);
/* The sync thread's work (background.c): sync what is applied and not durable, again while
 * there is more under KVS_SYNC_ALWAYS. */
int ldb_sync_pending(logdb *db);
/* ldb_sync_locked with wmu taken (kvs_sync_now). */
int ldb_sync(logdb *db);

/* segs.c */
/* Mark a record's bytes dead in its segment. */
void ldb_mark_dead(seg *s, uint64_t bytes);
/* Make room in the live list for more segments, so that as many ldb_segs_add cannot fail
 * (under wmu, or alone at open). KVS_ENOMEM. */
int ldb_segs_reserve(logdb *db, uint32_t more);
/* Add s to the live list (under wmu, or alone at open), giving it a slot in the index's segment
 * table if it has none (KVS_ENOSPC when they are used up). On failure s is neither. */
int ldb_segs_add(logdb *db, seg *s);
/* Point the index at the record of key at (s, off) — a set of vlen bytes, or a tombstone — newer
 * than anything the index holds, and count dead what it replaces, the tombstone too: the write
 * path's publish, and recovery's replay of records newer than a saved index. Inside
 * rcu_read_lock(), under wmu or alone at open. 1 if it replaced or removed an entry, 0 if not,
 * or idx_put's failure. */
int ldb_index_record(logdb *db, seg *s, uint32_t off, const void *key, uint32_t klen,
                     uint32_t vlen, uint64_t seq, uint8_t flags);
/* flags: REC_TOMBSTONE (a remove), IDX_EXPIRES (a set with an expiry time). */
/* Has a record of expiry time expire_ms (record.h; 0: never) expired at now? */
static inline bool ldb_expired(uint64_t expire_ms, uint64_t now)
{
    return expire_ms != 0 && expire_ms <= now;
}
/* The record the index entry loc names for key, verified — both checksums, and that it is the
 * key's — into *h, its value at *val (in the mapping); KVS_ECORRUPT (logged, counted in
 * corrupt_reads) if it fails. Inside rcu_read_lock(): *val lives as long as the section. */
int ldb_record_get(logdb *db, const idx_loc *loc, const void *key, size_t klen, rec_hdr *h,
                   const unsigned char **val);
/* A key's current record as every reader of the running store sees it (ldb_lookup). */
typedef struct ldb_found {
    idx_loc loc;
    rec_hdr h;
    const unsigned char *val;
    bool expired; /* in the index, but its time has passed at now: absent (KVS_ENOTFOUND) */
} ldb_found;
/* idx_lookup and ldb_record_get: 0, KVS_ENOTFOUND (absent, or expired at now: out->expired,
 * and out->loc, out->h filled), KVS_ECORRUPT. now 0: the store's clock, read only if the record
 * has an expiry time (a GET of a key without one reads no clock). Inside rcu_read_lock(). */
int ldb_lookup(logdb *db, const void *key, size_t klen, uint64_t now, ldb_found *out);
/* Remove s from the live list (under wmu, or alone at open); does not free it, nor its index
 * slot (idx_detach_seg, once no reader can reach it). */
void ldb_segs_remove(logdb *db, seg *s);
/* Segment ids run from 1 to LDB_SEG_ID_MAX and never wrap; next_id past it: they are used up. */
#define LDB_SEG_ID_MAX (UINT32_MAX - 1)
/* Take the id for a new segment (under wmu, or alone at open): next_id, or the first id after
 * it whose names (NNNNNN.log, NNNNNN.hint) no file holds — a stray file of that name is skipped,
 * never replaced — and advance next_id past it. KVS_ENOSPC when the ids are used up. */
int ldb_take_seg_id(logdb *db, uint32_t *id);
/* Create the next segment (room for cap bytes) and name it active with a manifest edit (under
 * wmu, or alone at open): *out joins the live list; making it db->active is the caller's. A
 * failed edit whose sync failed fences the store and keeps the file (the edit may be on disk). */
int ldb_add_active_seg(logdb *db, uint64_t cap, seg **out);
/* Rewrite the manifest as one edit if it has grown long (under wmu, or alone at open). */
int ldb_manifest_maybe_reset(logdb *db);
/* Rewrite it as one edit naming the live list, now (under wmu, or alone at open). */
int ldb_manifest_rewrite(logdb *db);
/* The manifest is rewritten as one edit once it holds this many (tests lower it). */
extern unsigned ldb_manifest_reset_edits;

/* recover.c */
/* Open the store in db->dir: from the files on disk to a ready index and an active segment. */
int ldb_recover(logdb *db);

/* compact.c — none of these but ldb_compact_due may be called with wmu or cmu held; they take
 * them as needed. A paced run (the maintenance thread's, and only there: it sleeps through
 * syncer_pause on db->maint) reads its victims at no more than opt.compact_rate bytes a second,
 * and gives up with KVS_ECLOSED, its outputs deleted, if the store closes meanwhile. */
/* Compact if the thresholds say so (paced). Returns bytes reclaimed or an error. */
int64_t ldb_compact_auto(logdb *db);
/* Compact exactly these (sealed, live) segments. */
int64_t ldb_compact_segments(logdb *db, seg **victims, uint32_t n);
/* Compact every sealed segment with dead bytes. */
int64_t ldb_compact_all(logdb *db, bool paced);
/* Is compaction due by the thresholds? (under wmu) */
bool ldb_compact_due(logdb *db);
/* Write the hint files of sealed segments that lack one. */
void ldb_write_pending_hints(logdb *db);
/* The same with cmu held by the caller (kvs_checkpoint), wmu not. */
void ldb_write_pending_hints_locked(logdb *db);

/* commit.c */
/* Commit ops (checked by api.c) through the group-commit queue; each op's rc is set. */
int ldb_write(logdb *db, kvs_op *ops, size_t n);
int ldb_write_pos(logdb *db, kvs_op *ops, size_t n, uint64_t *pos);
/* The engine's own update op (never called, recognized by commit.c): remove the key if its
 * current record has expired, else nothing (rc KVS_ENOTFOUND). The expiry sweep's tool: the
 * check and the removal are one step under wmu, so a key written again meanwhile stays. */
int ldb_expire_op(void *ctx, const kvs_cur *cur, kvs_update_out *out);
/* Seal the active segment and start the next one, with room for a record of need bytes (under
 * wmu). */
int ldb_rotate(logdb *db, uint64_t need);

/* background.c */
/* Start / stop the syncer and maintenance threads. Stop also refuses every later write
 * (KVS_ECLOSED): the store is closing. */
int ldb_threads_start(logdb *db);
void ldb_threads_stop(logdb *db);
/* kvs_clear without async: remove every key through the write path, in batches, on the calling
 * thread. Keys written meanwhile may or may not stay. */
int ldb_clear_now(logdb *db);
/* kvs_clear with async: the maintenance thread removes every key whose record is not newer than
 * the last seq handed out now (keys written after the call stay), in batches; returns at once. */
int ldb_clear_async(logdb *db);

/* checkpoint.c — kvs_checkpoint: seal, link the sealed segments and their hints into dest (an
 * empty directory on the same file system), give dest a MANIFEST of its own. Neither wmu nor
 * cmu held by the caller. */
int ldb_checkpoint(logdb *db, const char *dest);

/* verify.c, repair.c — kvs_verify and kvs_repair of a directory no store has open (api.c locks
 * it shared): apart from the open store, as upgrade.c, reading the files read-only. */
int ldb_verify(const char *dir, kvs_finding_fn fn, void *ctx, kvs_verify_report *out);

/* Test hooks, compiled only with KVS_TEST_HOOKS (the CMake option, on in test trees): an
 * installed library has none of them. Without it each is a constant that turns its hook off, so
 * the code that consults one compiles to nothing.
 *
 * kvs_test_crash_point: when set to step N (the CRASH_* list), compaction or the saving of the
 * index calls _exit(CRASH_EXIT) right after that step, to simulate a crash there. */
#define CRASH_EXIT 77
enum {
    CRASH_NONE = 0,
    CRASH_AFTER_OUTPUT = 1,   /* outputs written, not synced */
    CRASH_AFTER_SYNC = 2,     /* outputs synced */
    CRASH_AFTER_HINT = 3,     /* hints written */
    CRASH_AFTER_MANIFEST = 4, /* manifest edit synced, old files still there */
    CRASH_AFTER_DELETE = 5,   /* old files deleted */
    /* the saved index (saved.c), at close */
    CRASH_INDEX_PARTIAL = 6,  /* INDEX.tmp partly written */
    CRASH_INDEX_WRITTEN = 7,  /* INDEX.tmp written and synced, not renamed */
    CRASH_INDEX_RENAMED = 8,  /* renamed to INDEX, the directory not synced */
};
#ifdef KVS_TEST_HOOKS
extern int kvs_test_crash_point;
void ldb_crash_point(int step);
/* Test hook: sleep this long at the start of each ldb_sync_locked, wmu held (0: off). */
extern unsigned kvs_test_sync_delay_us;
/* Test hook: sleep this long between a compaction's commit and its repointing of the index. */
extern unsigned kvs_test_install_delay_us;
/* Test hook: the everysec syncer sleeps this long after its fdatasyncs, and again before it clears
 * the segments' flags (both inside its read section: compaction may retire them meanwhile). */
extern unsigned kvs_test_syncer_delay_us;
#else
static inline void ldb_crash_point(int step) { (void)step; }
#define kvs_test_sync_delay_us 0u
#define kvs_test_install_delay_us 0u
#define kvs_test_syncer_delay_us 0u
#endif

#endif
