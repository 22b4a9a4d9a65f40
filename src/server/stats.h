/*
 * stats.h — what INFO counts while commands run (internal to src/server): the counters each
 * loop thread keeps of its own connections, and how a connection's commands are timed.
 *
 * No counter is shared between loops. Each worker has its loop_stats, written by its own loop
 * thread only, with relaxed atomic stores of "old + n" (no read-modify-write: no lock prefix,
 * a plain add and move on x86), and read by INFO — on whatever loop it runs — with relaxed
 * atomic loads, summed over the workers. A reader may see a loop's counters a moment old, never
 * torn ones.
 *
 * Time (commandstats' usec, latencystats): a connection's commands are timed in runs —
 * consecutive calls of the same command in one pass over its input (a pipeline of 16 GETs is
 * one run). The clock is read where a pass begins, where the command changes and where the pass
 * ends, not around each call; each call of a run is counted with the run's mean. So a pipeline
 * of one command costs two clock reads whatever its length, and inside a run the percentiles
 * see its mean. A run's time is the loop's: parsing, running or queueing, and a write batch's
 * commit when it is done inline; a commit handed to the engine pool (sync always, lmdb) is not
 * in it — INFO persistence's commit_latency times that.
 */
#ifndef KVS_SERVER_STATS_H
#define KVS_SERVER_STATS_H

#include <stdbool.h>
#include <stdint.h>

#include "util/hist.h"

#define STAT_ADD(x, n) __atomic_store_n(&(x), (x) + (n), __ATOMIC_RELAXED)
#define STAT_ZERO(x) __atomic_store_n(&(x), 0, __ATOMIC_RELAXED)
#define STAT_GET(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

/* One command's counts on one loop. */
typedef struct cmd_stat {
    uint64_t calls;    /* calls run or queued (inside MULTI: when queued), rejected ones too */
    uint64_t ns;       /* their time */
    uint64_t rejected; /* refused before running: arity, NOAUTH (Redis's rejected_calls) */
    uint64_t failed;   /* ran and answered an error (failed_calls) */
    kb_hist *lat;      /* per-call time in ns; made at the command's first run (atomic pointer) */
} cmd_stat;

/* The largest client buffers seen in one second (Redis's client_recent_max_*_buffer: over the
 * last PEAK_SLOTS seconds): slot sec % PEAK_SLOTS, valid while its sec is that recent. */
#define PEAK_SLOTS 8
typedef struct buf_peak {
    uint64_t sec, in, out;
} buf_peak;

typedef struct loop_stats {
    uint64_t commands, rejected; /* over all commands: Σ calls, Σ rejected */
    uint64_t net_in, net_out;    /* bytes read from clients, written to them */
    uint64_t errors;             /* error replies (every resp_error: obuf.errors points here) */
    uint64_t hits, misses;       /* keys read that were there / not (keyspace_hits/misses) */
    uint64_t blocked;            /* connections blocked in WAITAOF now (a gauge: not reset) */
    buf_peak peak[PEAK_SLOTS];   /* buffers: a connection's query buffer and unsent output */
    bool reset;                  /* CONFIG RESETSTAT asked from another loop (under worker.mu) */
    cmd_stat *cmd;               /* one per command of the table (cmd_index) */
} loop_stats;

#endif
