/*
 * inbox.h — the jobs handed to a pool that keeps threads of its own ("shared", "uv"), written
 * once for both.
 *
 * kvs_pool_spawn, on any thread, appends a job to a FIFO list under the inbox's mutex and counts
 * it in `pending`; the pool's own threads take jobs from the head, in order, and count each out
 * once it has run (inbox_done_locked). kvs_pool_free closes the inbox: it waits until nothing is
 * pending, then sets `stop`, after which a spawn fails with KVS_ECLOSED. A job that spawns
 * counts its child in pending before it is counted out itself, so pending cannot reach zero
 * while work remains, and every job spawned before free runs.
 *
 * What differs between the kinds stays with them: how a taker is woken (a condition variable
 * the "shared" workers sleep on, a uv_async that wakes the "uv" dispatcher's loop), and what
 * else the lock guards (the "shared" pool's worker slots). So the pools take the lock
 * themselves, and the list operations are *_locked: they require mu held, which checked builds
 * assert (inbox_lock records the holder; see util/invariant.h).
 *
 * Invariants (under mu): pending == jobs queued + jobs taken and not yet counted out; nothing is
 * queued once stop is set.
 */
#ifndef KVS_POOL_INBOX_H
#define KVS_POOL_INBOX_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "pool/pool.h"

typedef struct pool_job {
    struct pool_job *next;
    kvs_job_fn fn;
    void *arg;
} pool_job;

typedef struct pool_inbox {
    pthread_mutex_t mu;
    pthread_cond_t idle;   /* pending reached 0 */
    pool_job *head, *tail; /* queued, oldest first */
    uint64_t pending;      /* queued + taken and not yet counted out */
    int stop;              /* closed: no job is queued any more */
    bool held;             /* checked builds: mu is held, by holder */
    pthread_t holder;
} pool_inbox;

/* Initialise the lock and idle; what names the pool in the error. 0, or KVS_ENOMEM with the
 * detail set (nothing is left to destroy). */
int inbox_init(pool_inbox *ib, const char *what);
/* Free what inbox_init made. The inbox is closed and empty, nothing holds or waits on it. */
void inbox_destroy(pool_inbox *ib);

void inbox_lock(pool_inbox *ib);
void inbox_unlock(pool_inbox *ib);
/* pthread_cond_wait on cv with mu, keeping the holder right. */
void inbox_wait(pool_inbox *ib, pthread_cond_t *cv);
/* Does the calling thread hold mu? Always false in unchecked builds: for KVS_ASSERT only. */
bool inbox_held(const pool_inbox *ib);

/* With mu held: 0 if the inbox takes jobs, KVS_ECLOSED (detail set) once it is closed. */
int inbox_open_locked(const pool_inbox *ib);
/* With mu held, the inbox open: queue j at the tail and count it in pending. */
void inbox_push_locked(pool_inbox *ib, pool_job *j);
/* With mu held: the oldest queued job, unlinked (the caller now runs and frees it), or NULL. */
pool_job *inbox_take_locked(pool_inbox *ib);
/* With mu held: a job taken has finished; the last one wakes whoever waits for idle. */
void inbox_done_locked(pool_inbox *ib);
/* With mu held: wait until nothing is pending, then close. */
void inbox_close_locked(pool_inbox *ib);

#endif /* KVS_POOL_INBOX_H */
