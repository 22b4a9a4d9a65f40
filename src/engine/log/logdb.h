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
 * Concurrency: readers (log_get) take no lock: an RCU read section around index lookup and
 * pread. Everything that changes state — appends, rotation, compaction, the segment list, the
 * manifest — happens under wmu. Figures that readers and stats look at without wmu are atomics.
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
    bool compacting;   /* guards against re-entry from the write path */

    /* everysec: a thread that syncs the active segment once a second */
    pthread_t syncer;
    bool syncer_running;
    bool stopping;
    pthread_cond_t stop_cv;

    /* figures (atomics) */
    uint64_t writes, syncs, compactions, compact_reclaimed, compact_last_usec, corrupt_reads;
} logdb;

/* commit.c */
int log_append(logdb *db, uint8_t flags, const void *key, uint32_t klen, const void *val,
               uint32_t vlen);
int log_sync(logdb *db);
int log_syncer_start(logdb *db);
void log_syncer_stop(logdb *db);
/* Add s to the live list (under wmu). */
int log_segs_add(logdb *db, seg *s);
/* Remove s from the live list (under wmu); does not free it. */
void log_segs_remove(logdb *db, seg *s);
/* Mark a record's bytes dead in its segment. */
void log_mark_dead(seg *s, uint64_t bytes);
/* Rewrite the manifest as one edit if it has grown long (under wmu). */
int log_manifest_maybe_reset(logdb *db);

/* recover.c */
int log_recover(logdb *db);

/* compact.c */
/* Compact if the thresholds say so (under wmu). Returns bytes reclaimed or an error. */
int64_t log_compact_auto(logdb *db);
/* Compact exactly these segments (under wmu). */
int64_t log_compact_segments(logdb *db, seg **victims, uint32_t n);
/* Compact every sealed segment with dead bytes (under wmu). */
int64_t log_compact_all(logdb *db);

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

#endif
