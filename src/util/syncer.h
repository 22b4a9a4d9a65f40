/*
 * syncer.h — a background thread that calls a function once an interval until it is stopped,
 * written once for both engines' everysec syncers (and the log engine's maintenance thread,
 * which is one more such thread, woken early when work is waiting).
 *
 * What every user shares, kept here:
 *   - the schedule: the first call one interval after the start, then one each interval on that
 *     fixed schedule (the time a call takes does not push the next one back); a call that
 *     overruns the next tick skips the ticks it missed rather than catching up with calls back
 *     to back. syncer_kick brings a call forward to now without moving the schedule;
 *   - fn runs with none of the syncer's locks held, so it takes whatever locks it needs;
 *   - a failed sync is never retried (fsyncgate: kvs.h "Durability", util/fence.h): fn fences its
 *     store and returns KVS_ESYNC, and from then on the thread calls it no more, and only waits
 *     to be stopped. Any other failure is fn's to report; the next tick calls it again;
 *   - syncer_stop wakes the thread at once (a condition variable, not the next tick), lets a call
 *     under way finish, and joins it. An engine stops its syncer before the last sync of close,
 *     which is its own.
 *
 * Threads: syncer_start and syncer_stop by the owner alone; syncer_kick from any thread while
 * the syncer runs (between a successful syncer_start and syncer_stop). The syncer's mutex is a
 * leaf: nothing else is locked while it is held, so a kick may come with any lock held.
 */
#ifndef KVS_UTIL_SYNCER_H
#define KVS_UTIL_SYNCER_H

#include <pthread.h>
#include <stdbool.h>

/* The interval of KVS_SYNC_EVERYSEC, the same in every engine. */
#define SYNCER_EVERYSEC_MS 1000

/* Called once a tick: 0, KVS_ESYNC after a failed sync (no more calls), or another error. */
typedef int (*syncer_fn)(void *ctx);

typedef struct syncer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* on CLOCK_MONOTONIC, as the schedule */
    bool running;           /* started, not stopped yet (the owner's) */
    int nice;               /* added to the thread's nice value as it starts (0: none) */
    bool stopping, kicked;  /* under mu */
    unsigned interval_ms;
    syncer_fn fn;
    void *ctx;
} syncer;

/* Start the thread (s may be uninitialised). what names it in the error: KVS_ENOMEM, "cannot
 * start the <what> thread", if it cannot be created; s is then not running. The thread is named
 * "kvs-<what>" (cut to 15 characters) for top, perf and /proc/PID/task/TID/comm. */
int syncer_start(syncer *s, const char *what, unsigned interval_ms, syncer_fn fn, void *ctx);
/* The same, the thread's nice value raised by nice (0..19; background work that must not take
 * the cores from the threads that serve requests). A nice the system refuses is logged once,
 * and the thread runs at the process's. */
int syncer_start_nice(syncer *s, const char *what, unsigned interval_ms, syncer_fn fn,
                      void *ctx, int nice);
/* From fn, on the syncer's own thread: sleep usec, or less if the syncer is being stopped (a
 * kick does not cut it short). false if it is: fn should return soon. For work paced by a rate
 * (compaction) that must not hold up a close. */
bool syncer_pause(syncer *s, unsigned long usec);
/* Call fn now (work is waiting); the schedule stays. */
void syncer_kick(syncer *s);
/* Stop and join the thread; nothing if it is not running (never started, or stopped already). */
void syncer_stop(syncer *s);

#endif
