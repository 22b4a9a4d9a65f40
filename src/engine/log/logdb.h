/*
 * logdb.h — the state of one open store of the log-structured engine ("kvs"), shared by the
 * files of src/engine/log/.
 *
 *   record.c    the record format            segment.c  segment files, scanning
 *   hint.c      hint files                   manifest.c the MANIFEST
 *   index.c     the lock-free key index      recover.c  open: manifest → hints/scans → index
 *   commit.c    the write path, rotation,    compact.c  compaction
 *               syncing                      engine.c   the engine table, get, stats, close
 *
 * Threads and locks:
 *   - readers (log_get) take no lock: an RCU read section around index lookup and pread;
 *   - writers queue on qmu; one of them at a time leads, committing everyone's queued writes
 *     as one batch (group commit, commit.c) under wmu;
 *   - wmu guards what changes the store's shape — appends, rotation, the segment list, the
 *     manifest — and is held only for short steps;
 *   - cmu serializes compaction and hint writing, which do their long work (scanning, copying,
 *     syncing) without wmu, so reads and writes go on throughout;
 *   - two background threads: the syncer (everysec) and the maintenance thread (hint files of
 *     sealed segments, automatic compaction), both stopped by log_threads_stop;
 *   - lock order: cmu, then wmu; qmu is never held with either.
 * Figures that readers and stats look at without wmu are atomics.
 */
#ifndef KVS_LOG_LOGDB_H
#define KVS_LOG_LOGDB_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/log/index.h"
#include "engine/log/manifest.h"
#include "engine/log/segment.h"
#include "kvs.h"
#include "util/fence.h"

/* A writer's request in the commit queue (commit.c). */
typedef struct commit_req {
    kvs_op *ops;
    size_t n;
    int rc;
    bool done;
    struct commit_req *next;
} commit_req;

typedef struct logdb {
    char dir[PATH_MAX];
    kvs_options opt;
    idx *idx;

    pthread_mutex_t wmu;
    seg **segs;        /* live segments, ascending id (under wmu) */
    uint32_t nsegs, capsegs;
    seg *active;       /* written under wmu; read by the syncer under RCU */
    uint32_t next_id;
    uint64_t seq;      /* last sequence number handed out */
    manifest man;
    bool dirty;        /* appended since the last sync (under wmu) */

    /* group commit */
    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    commit_req *qhead, *qtail;
    bool leader;

    /* background threads (their flags under wmu) */
    pthread_t syncer, maint;
    bool syncer_running, maint_running;
    bool stopping;
    bool maint_kicked;
    uint64_t last_write_usec; /* when the last batch committed (under wmu) */
    int64_t recovered_tombstones; /* open only: tombstones standing in the index */
    bool idle_done;           /* the idle clean-up ran since the last write (under wmu) */
    pthread_cond_t stop_cv;  /* wakes the syncer */
    pthread_cond_t maint_cv; /* wakes the maintenance thread */
    pthread_mutex_t cmu;     /* one compaction or hint writer at a time */

    /* figures (atomics) */
    uint64_t writes, syncs, syncs_started, compactions, compact_reclaimed, compact_last_usec,
        corrupt_reads;
    uint64_t corrupt_records; /* damaged records recovery found (record.h, seg_scan) */
    int compacting;
    uint64_t compact_done, compact_todo;

    /* A sync failed: no more writes, syncs or maintenance (log_fence; util/fence.h). */
    kvs_fence fence;
} logdb;

/* commit.c */
/* fsyncgate (kvs.h, "Durability"). A sync failed — why says which and how: fence the store.
 * After a failed fsync the kernel may have dropped the pages it could not write and marked them
 * clean, so a sync retried later can succeed without them. So nothing is retried: every later
 * write, sync, compaction and hint write fails with KVS_ESYNC, reads go on, and a restart
 * recovers from what is on disk. Any thread, any locks. Returns KVS_ESYNC with the detail. */
int log_fence(logdb *db, const char *why);
/* KVS_ESYNC (detail set) if the store is fenced, else 0. */
int log_fenced(logdb *db);
static inline bool log_is_fenced(logdb *db)
{
    return fence_is_up(&db->fence);
}
/* After a step that may have synced failed: if a sync failed on this thread
 * (io_take_sync_failure), fence with the failure's detail (kvs_last_error) and return true. */
bool log_fence_if_sync_failed(logdb *db);
/* fdatasync segment s: the way the log engine syncs a segment. Syncs of one segment are one at
 * a time, and a failure fences the store before the next may start: the kernel reports a failed
 * writeback of a file to one fdatasync only, so the sync after it could succeed and prove
 * nothing. KVS_ESYNC once fenced. */
int log_sync_seg(logdb *db, seg *s);
/* Sync every write not synced yet — sealed segments oldest first, then the active one — the
 * fdatasyncs outside wmu (cmu held, wmu not): before a compaction commits, the writes that
 * replaced the records it dropped must be durable. */
int log_sync_written(logdb *db);
/* Commit ops (checked by api.c) through the group-commit queue; each op's rc is set. */
int log_write(logdb *db, kvs_op *ops, size_t n);
int log_sync(logdb *db);
/* Sync every unsynced write, oldest segment first (under wmu). */
int log_sync_locked(logdb *db);
/* Start / stop the syncer and maintenance threads. */
int log_threads_start(logdb *db);
void log_threads_stop(logdb *db);
/* Wake the maintenance thread (under wmu). */
void log_maint_kick(logdb *db);
/* Wake it if compaction looks due (under wmu; cheap). */
void log_maint_check(logdb *db);
/* Add s to the live list (under wmu). */
int log_segs_add(logdb *db, seg *s);
/* Remove s from the live list (under wmu); does not free it. */
void log_segs_remove(logdb *db, seg *s);
/* Mark a record's bytes dead in its segment. */
void log_mark_dead(seg *s, uint64_t bytes);
/* Create the next segment (room for cap bytes) and name it active with a manifest edit (under
 * wmu, or alone at open): *out joins the live list; making it db->active is the caller's. A
 * failed edit whose sync failed fences the store and keeps the file (the edit may be on disk). */
int log_add_active_seg(logdb *db, uint64_t cap, seg **out);
/* Rewrite the manifest as one edit if it has grown long (under wmu). */
int log_manifest_maybe_reset(logdb *db);
/* Rewrite it as one edit naming the live list, now (under wmu, or alone at open). */
int log_manifest_rewrite(logdb *db);

/* recover.c */
int log_recover(logdb *db);
/* Segment ids run from 1 to LOG_SEG_ID_MAX and never wrap; next_id past it: they are used up. */
#define LOG_SEG_ID_MAX (UINT32_MAX - 1)
/* Take the id for a new segment (under wmu): next_id, or the first id after it whose names
 * (NNNNNN.log, NNNNNN.hint) no file holds — a stray file of that name is skipped, never
 * replaced — and advance next_id past it. KVS_ENOSPC when the ids are used up. */
int log_take_seg_id(logdb *db, uint32_t *id);

/* compact.c — none of these may be called with wmu or cmu held; they take them as needed. */
/* Compact if the thresholds say so. Returns bytes reclaimed or an error. */
int64_t log_compact_auto(logdb *db);
/* Compact exactly these (sealed, live) segments. */
int64_t log_compact_segments(logdb *db, seg **victims, uint32_t n);
/* Compact every sealed segment with dead bytes. */
int64_t log_compact_all(logdb *db);
/* Is compaction due by the thresholds? (under wmu) */
bool log_compact_due(logdb *db);
/* Write the hint files of sealed segments that lack one. */
void log_write_pending_hints(logdb *db);

/* Test hook: when set to step N (compact.c's CRASH_* list), compaction calls _exit(CRASH_EXIT)
 * right after that step, to simulate a crash there. */
extern int kvs_test_crash_point;
#define CRASH_EXIT 77
enum {
    CRASH_NONE = 0,
    CRASH_AFTER_OUTPUT = 1,   /* outputs written, not synced */
    CRASH_AFTER_SYNC = 2,     /* outputs synced */
    CRASH_AFTER_HINT = 3,     /* hints written */
    CRASH_AFTER_MANIFEST = 4, /* manifest edit synced, old files still there */
    CRASH_AFTER_DELETE = 5,   /* old files deleted */
};
void log_crash_point(int step);
/* Test hook: sleep this long before each fdatasync of the active segment (0: off). */
extern unsigned kvs_test_sync_delay_us;
/* Test hook: sleep this long between a compaction's commit and its repointing of the index. */
extern unsigned kvs_test_install_delay_us;
/* Test hook: the everysec syncer sleeps this long after its fdatasyncs, and again before it clears
 * the segments' flags (both inside its read section: compaction may retire them meanwhile). */
extern unsigned kvs_test_syncer_delay_us;
/* The manifest is rewritten as one edit once it holds this many (tests lower it). */
extern unsigned log_manifest_reset_edits;

#endif
