/*
 * pool.h — thread pools: one interface, three implementations (the kvs course's project 4).
 *
 * A pool runs jobs — a function and its argument — on threads other than the caller's. The
 * server hands it work that would otherwise stall an event loop; the benchmarks compare the
 * three kinds across thread counts. All three keep the same contract:
 *
 *     kvs_pool *p;
 *     if ((rc = kvs_pool_new("shared", 4, &p)) < 0)
 *         fprintf(stderr, "%s: %s\n", kvs_strerror(rc), kvs_last_error());
 *     kvs_pool_spawn(p, job, arg);       // returns at once; job(arg) runs later on a pool thread
 *     kvs_pool_free(p);                  // waits for every job spawned so far, then stops
 *
 * The kinds (each file opens with the longer story and its costs):
 *
 *   "naive"   naive.c. A new thread for every job; nothing is kept between jobs. `threads` is
 *             recorded but bounds nothing: a burst of spawns is a burst of threads.
 *   "shared"  shared_queue.c. `threads` workers fixed at creation, taking jobs from one FIFO
 *             queue under a mutex. A job that ends its own thread (pthread_exit, C's nearest
 *             thing to a Rust panic) takes its worker with it; the pool starts a replacement,
 *             so the pool never shrinks.
 *   "uv"      uv.c. libuv's work queue (uv_queue_work) driven from a private loop on one
 *             dispatcher thread, at most `threads` jobs in libuv's hands at a time. libuv's
 *             threadpool is process-wide and sized once, from UV_THREADPOOL_SIZE, at its first
 *             use: the first "uv" pool of the process sets that variable from its own `threads`
 *             if it is unset, and a later "uv" pool asking for more threads than libuv has is
 *             refused (KVS_EINVAL). To compare several sizes in one process, create the largest
 *             first or set UV_THREADPOOL_SIZE before anything uses libuv.
 *
 * Jobs. A job may spawn more jobs into its own pool, also while kvs_pool_free waits: free
 * returns once no job is queued or running, and a running job's children are counted before
 * it ends. A job must not call kvs_pool_free on its own pool (free would wait for itself).
 * Ending a job's thread with pthread_exit is survived by "naive" and "shared" only: in "uv" it
 * kills one of libuv's threads and the pool never finishes.
 *
 * Threads. kvs_pool_spawn may be called from any thread, jobs included, until kvs_pool_free
 * is called; kvs_pool_free must be the last call on a pool and must not race with spawns from
 * outside the pool. kvs_pool_threads and kvs_pool_kind may be called at any time before free.
 *
 * Errors: the negative KVS_E* codes of kvs.h, with the detail in kvs_last_error().
 */
#ifndef KVS_POOL_H
#define KVS_POOL_H

#include <stdint.h>

#include "kvs.h"

#define KVS_POOL_MAX_THREADS 1024u

typedef void (*kvs_job_fn)(void *arg);
typedef struct kvs_pool kvs_pool;

/* Create a pool of the named kind ("naive", "shared" or "uv") with `threads` threads
 * (1 .. KVS_POOL_MAX_THREADS) into *out; the caller frees it with kvs_pool_free. Either all the
 * threads the kind keeps are running when this returns 0, or none is left behind and *out is
 * untouched: KVS_EINVAL for an unknown kind or a count out of range (or, for "uv", above the
 * size libuv's threadpool already has), KVS_ENOMEM when threads or memory ran out. */
int kvs_pool_new(const char *kind, unsigned threads, kvs_pool **out);

/* Queue fn(arg) to run on a pool thread. The pool does not own arg: the job does. Returns 0,
 * KVS_EINVAL for a NULL pool or fn, KVS_ENOMEM (nothing was queued), or KVS_ECLOSED once
 * kvs_pool_free has stopped the pool. */
int kvs_pool_spawn(kvs_pool *p, kvs_job_fn fn, void *arg);

/* Wait until every spawned job has finished (jobs spawned by jobs included), then stop and
 * join the pool's threads and free it. NULL is allowed. */
void kvs_pool_free(kvs_pool *p);

/* The threads the pool keeps for jobs, now. "shared": its live workers (the count stays at the
 * creation size while jobs die, since each is replaced before the count is seen to drop); "uv":
 * the number of jobs it lets libuv run at once; "naive": the size it was created with, since
 * it keeps no threads between jobs. */
unsigned kvs_pool_threads(const kvs_pool *p);

/* The kind the pool was created as: a static string. */
const char *kvs_pool_kind(const kvs_pool *p);

/* Workers started to replace ones that a job ended (pthread_exit or cancellation) since the
 * pool was created; 0 for kinds that keep no workers to replace. */
uint64_t kvs_pool_replaced(const kvs_pool *p);

#endif /* KVS_POOL_H */
