/*
 * engine.h — the engine interface: what every storage engine behind kvs.h provides.
 *
 * libkvs's public functions (api.c) own the lifecycle that all engines share — options, the
 * lock on the directory (flock) that keeps a second process out, the ENGINE file that records
 * which engine a directory belongs to — and forward data calls through this table. An engine
 * gets a directory that is already locked and known to be its own, and must make every call
 * after open safe from many threads at once.
 *
 * Reads hand the value to a callback while it is pinned (an RCU read section, an LMDB read
 * transaction), so the engine never allocates for a read; kvs_get's copy is made in api.c.
 */
#ifndef KVS_ENGINE_H
#define KVS_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvs.h"

/* Capabilities: what an engine's table says of it, so that the layers above (the server, the
 * benchmark) ask the table instead of comparing names. */
enum {
    /* A write can wait on the disk in every sync mode (LMDB's commit writes its pages under the
     * write lock); without it, only sync "always" makes a write wait. */
    KVS_ENGINE_WRITES_BLOCK = 1u << 0,
};

/* The end (one past the last op) of the group of ops that starts at ops[g] (kvs.h, kvs_write:
 * each op flagged KVS_OP_WITH_NEXT takes the next one into its group). */
static inline size_t kvs_group_end(const kvs_op *ops, size_t n, size_t g)
{
    size_t end = g + 1;
    while (end < n && (ops[end - 1].flags & KVS_OP_WITH_NEXT))
        end++;
    return end;
}

/* The store's clock (kvs_options.clock_ms, else CLOCK_REALTIME), in ms since the Unix epoch:
 * what every engine compares expiry times with (kvs_now_ms). */
uint64_t kvs_clock_ms(const kvs_options *opt);

/* Call an update op's function (kvs.h, KVS_OP_UPDATE) on the key's current state, under the
 * engine's write lock, and check what it asks for: *out is reset to KVS_OP_NONE first, and a
 * SET's val is made non-NULL. Returns 0 (then *out is a SET, REMOVE or NONE within the
 * limits), the function's own negative code (KVS_ECONFLICT: the engine refuses the rest of
 * the group), or KVS_EINVAL / KVS_EVALTOOBIG for a malformed answer (nothing written). */
int kvs_update_call(const kvs_op *op, const kvs_cur *cur, kvs_update_out *out);

typedef struct kvs_engine_ops {
    const char *name;
    unsigned caps; /* KVS_ENGINE_* */
    /* What the engine is built on, for banners (e.g. LMDB's version string); NULL: libkvs alone. */
    const char *(*version)(void);
    int (*open)(const char *dir, const kvs_options *opt, void **out);
    int (*close)(void *e);
    /* Call fn with the value where it lies (see kvs_read); KVS_ENOTFOUND if absent. */
    int (*read)(void *e, const void *key, size_t klen, kvs_value_fn fn, void *ctx);
    int (*set)(void *e, const void *key, size_t klen, const void *val, size_t vlen);
    int (*remove)(void *e, const void *key, size_t klen);
    /* A batch of checked writes in order; optional (api.c falls back to set/remove). Ops may
     * be KVS_OP_UPDATE and carry expire_ms; each group (kvs_group_end) is one unit across a
     * crash; an update's KVS_ECONFLICT refuses the rest of its group (kvs.h). */
    int (*write)(void *e, kvs_op *ops, size_t n);
    /* Positions (kvs.h): kvs_write_pos, kvs_durable, kvs_wait_durable, kvs_sync_soon. Optional,
     * all four or none: without them api.c numbers the batches itself, and a position is
     * durable once a sync (the engine's sync op) began after its write returned — at once
     * under KVS_SYNC_ALWAYS, whose writes are durable when they return. */
    int (*write_pos)(void *e, kvs_op *ops, size_t n, uint64_t *pos);
    int (*durable)(void *e, uint64_t *pos);
    int (*wait_durable)(void *e, uint64_t pos, long timeout_ms);
    int (*sync_soon)(void *e);
    /* kvs_read_meta (meta is never NULL here); an expired key is KVS_ENOTFOUND. */
    int (*read_meta)(void *e, const void *key, size_t klen, kvs_value_fn fn, void *ctx,
                     kvs_meta *meta);
    /* One step of kvs_scan (kvs.h: its guarantee); kvs_iter is built on it in api.c. count is
     * never 0. fn returning a negative code ends the step: scan returns it, *next unspecified
     * (api.c retries the step from the same cursor). */
    int (*scan)(void *e, uint64_t cursor, size_t count, kvs_entry_fn fn, void *ctx,
                uint64_t *next);
    /* kvs_clear. */
    int (*clear)(void *e, int async);
    int (*stats)(void *e, kvs_stats *out);
    int64_t (*compact)(void *e);
    int (*sync)(void *e);
    /* kvs_checkpoint into dest, an empty directory that exists (api.c makes it, writes the
     * ENGINE file, syncs dest, and cleans up on failure). */
    int (*checkpoint)(void *e, const char *dest);
    /* kvs_verify of dir, locked shared by api.c, known to be this engine's; out zeroed. */
    int (*verify)(const char *dir, kvs_finding_fn fn, void *ctx, kvs_verify_report *out);
    /* Does dir look like this engine's data (for directories made before the ENGINE file)? */
    int (*owns_dir)(const char *dir);
} kvs_engine_ops;

/* The registry: NULL if no engine has that name. */
const kvs_engine_ops *kvs_engine_find(const char *name);
/* The engines in registration order, NULL-terminated. */
const kvs_engine_ops *const *kvs_engine_list(void);

/* For kvs_upgrade (log/upgrade.c), which works on a directory without opening a store in it
 * (api.c): */
/* Lock dir as kvs_open does — flock on the directory itself, so that no store is opened in it
 * meanwhile — and return the locked fd (closing it unlocks), or KVS_EBUSY if it is in use. */
int kvs_dir_lock(const char *dir);
/* The same with a shared lock (kvs_verify, kvs_repair: readers that must not run beside a
 * writer, and need not keep each other out). */
int kvs_dir_lock_shared(const char *dir);
/* A destination directory for kvs_checkpoint and kvs_repair: made if absent (*made), else it
 * must be an empty directory (KVS_EINVAL otherwise). */
int kvs_dest_prepare(const char *dest, bool *made);
/* After a failure: remove the files made in dest (it was empty), and dest itself if made. */
void kvs_dest_remove(const char *dest, bool made);
/* Which engine owns dir, into name: its ENGINE file, else the engine whose data it holds, else
 * "" (none). An ENGINE file naming an unknown engine, or contradicting the data, is an error. */
int kvs_dir_engine(const char *dir, char *name, size_t cap);

/* The engine state behind an open handle (tests and tools inside the project only). */
void *kvs_engine_impl(kvs_t *db);

extern const kvs_engine_ops kvs_logdb_engine; /* "kvs": log-structured hash (src/engine/log) */
extern const kvs_engine_ops kvs_lmdb_engine;  /* "lmdb": LMDB B+tree (src/engine/lmdb.c) */

#endif
