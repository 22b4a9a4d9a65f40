/*
 * engine.c — the "kvs" engine's table for the engine interface (kvs_logdb_engine): open, close,
 * read, read_meta, scan, set, remove, write, clear, stats, compact, sync. The top of the
 * engine's files (logdb.h).
 *
 * read is the lock-free read path: inside one RCU read section it looks the key up, finds the
 * record where it lies in the mapping of the segment the entry names (no system call, no copy),
 * and verifies it — both checksums, and that it is the key asked for — before handing the value
 * to the caller's callback, still inside the read section (ldb_lookup, segs.c). A record whose
 * expiry time has passed is absent, whether or not the sweep has removed it yet. A record that fails is reported (file
 * and offset) and never served.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <urcu-bp.h>

#include "engine/engine.h"
#include "engine/log/logdb.h"
#include "engine/log/saved.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/io.h"
#include "util/log.h"

static void ldb_free(logdb *db)
{
    idx_free(db->idx);
    for (uint32_t i = 0; i < db->nsegs; i++)
        seg_close(db->segs[i]);
    free(db->segs);
    man_close(&db->man);
    pthread_mutex_destroy(&db->wmu);
    pthread_mutex_destroy(&db->qmu);
    pthread_mutex_destroy(&db->cmu);
    pthread_mutex_destroy(&db->syncmu);
    pthread_mutex_destroy(&db->dmu);
    pthread_cond_destroy(&db->dcv);
    pthread_cond_destroy(&db->qcv);
    free(db);
}

/* Test knob: KVS_TEST_MANIFEST_RESET_EDITS=N rewrites the manifest every N edits instead of
 * ldb_manifest_reset_edits (1024), so that tests of a live server (the power-cut tests) meet
 * manifest rewrites often. Read once per process; only in test builds (KVS_TEST_HOOKS,
 * logdb.h): an installed server ignores the variable. */
static void manifest_knob(void)
{
#ifdef KVS_TEST_HOOKS
    const char *v = getenv("KVS_TEST_MANIFEST_RESET_EDITS");
    long n = v ? strtol(v, NULL, 10) : 0;

    if (n > 0 && n < 1000000)
        ldb_manifest_reset_edits = (unsigned)n;
#endif
}

static int ldb_open(const char *dir, const kvs_options *opt, void **out)
{
    static pthread_once_t knob = PTHREAD_ONCE_INIT;
    logdb *db = calloc(1, sizeof *db);
    int rc;

    *out = NULL;
    if (!db)
        return KVS_ENOMEM;
    db->man.fd = -1;
    db->opt = *opt;
    pthread_mutex_init(&db->wmu, NULL);
    pthread_mutex_init(&db->qmu, NULL);
    pthread_mutex_init(&db->cmu, NULL);
    pthread_mutex_init(&db->syncmu, NULL);
    pthread_mutex_init(&db->dmu, NULL);
    pthread_condattr_t ca; /* dcv's timed waits are on CLOCK_MONOTONIC (ldb_wait_durable) */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&db->dcv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&db->qcv, NULL);
    if (snprintf(db->dir, sizeof db->dir, "%s", dir) >= (int)sizeof db->dir) {
        rc = kvs_seterr(KVS_EINVAL, "directory path too long");
        goto fail;
    }
    pthread_once(&knob, manifest_knob);
    io_take_sync_failure(); /* a mark left by an earlier store on this thread */
    if ((rc = idx_new(&db->idx)) < 0 || (rc = ldb_recover(db)) < 0) {
        /* A live segment of the format kvs_upgrade converts (seg_open): recovery stopped before
         * it changed anything of the store's (it deletes only files a crash left unfinished) */
        if (rc == KVS_EFORMAT)
            rc = kvs_seterr(KVS_EFORMAT,
                            "%s holds a format-%u store (written by kvs before per-key expiry "
                            "times; this build reads format %u); convert it with `kvs upgrade "
                            "%s`",
                            dir, SEG_VERSION_UPGRADABLE, SEG_VERSION, dir);
        goto fail;
    }
    /* recovery loads what is on disk whatever the budget; from now on new keys must fit */
    idx_set_budget(db->idx, db->opt.max_index_memory);
    if ((rc = ldb_threads_start(db)) < 0)
        goto fail;
    LDB_LOCK(db, wmu); /* the maintenance thread runs: the flag is under wmu */
    if (db->index_retired)
        ldb_maint_kick(db); /* a saved index was read: removed now, not in a second */
    LDB_UNLOCK(db, wmu);
    /* Recovery went on past a failed sync only where nothing written hangs on it (a hint, a
     * zero tail cut); still, the disk failed a sync: the store opens for reads only. */
    ldb_fence_if_sync_failed(db);
    LOG_INFO("opened %s: %llu keys in %u segments", dir, (unsigned long long)idx_count(db->idx),
             db->nsegs);
    *out = db;
    return 0;
fail:
    ldb_threads_stop(db);
    ldb_free(db);
    return rc;
}

static int ldb_close(void *e)
{
    logdb *db = e;
    int rc = 0;

    ldb_threads_stop(db);
    if ((rc = ldb_fenced(db)) < 0) {
        /* nothing is synced after a failed sync (ldb_fence), nor cut: the files stay as the
         * failure left them, for the next open to recover from */
        ldb_free(db);
        return rc;
    }
    ldb_write_pending_hints(db); /* so the next open reads keys, not segments */
    ldb_index_drop_retired(db); /* if the maintenance thread had not yet */
    LDB_LOCK(db, wmu);
    seg *a = db->active;
    rc = ldb_sync_locked(db);
    /* leave the file as long as its data: the room given ahead is not kept */
    if (a->alloc > a->size && ftruncate(a->fd, (off_t)a->size) < 0 && rc == 0)
        rc = kvs_seterr(kvs_errno(errno), "truncate %s: %s", a->path, strerror(errno));
    /* so the next open loads the index rather than rebuilding it; without it, it rebuilds */
    if (rc == 0 && ldb_index_save(db) < 0) {
        LOG_WARN("%s: no saved index: %s", db->dir, kvs_last_error());
        io_take_sync_failure(); /* the store's data are synced: only the saved index failed */
    }
    LDB_UNLOCK(db, wmu);
    ldb_free(db);
    return rc;
}

static int ldb_read_meta(void *e, const void *key, size_t klen, kvs_value_fn fn, void *ctx,
                         kvs_meta *meta)
{
    logdb *db = e;
    ldb_found f;
    int rc;

    rcu_read_lock();
    if ((rc = ldb_lookup(db, key, klen, 0, &f)) == 0) {
        meta->expire_ms = f.h.expire_ms;
        meta->version = f.h.seq;
        rc = fn(ctx, f.val, f.h.vlen);
    }
    rcu_read_unlock();
    return rc;
}

static int ldb_read(void *e, const void *key, size_t klen, kvs_value_fn fn, void *ctx)
{
    kvs_meta meta;
    return ldb_read_meta(e, key, klen, fn, ctx, &meta);
}

/* One step of kvs_scan: index cursor steps (index.h: the guarantee) until about count keys
 * were handed out, each verified and its expiry judged as a read's, all inside one read
 * section. A record that fails its checksum is skipped (a read of it reports it). Cursors: the
 * index's, with IDX_CURSOR_END told as 0. */
typedef struct scan_ctx {
    logdb *db;
    uint64_t now;
    kvs_entry_fn fn;
    void *ctx;
    size_t handed;
    int rc;
} scan_ctx;

static void scan_visit(void *arg, const void *key, uint32_t klen, const idx_loc *loc)
{
    scan_ctx *c = arg;
    const unsigned char *val;
    rec_hdr h;

    if (c->rc < 0 || (loc->flags & REC_TOMBSTONE) ||
        ldb_record_get(c->db, loc, key, klen, &h, &val) < 0 || ldb_expired(h.expire_ms, c->now))
        return;
    kvs_meta meta = {h.expire_ms, h.seq};
    int rc = c->fn(c->ctx, key, klen, val, h.vlen, &meta);
    if (rc < 0)
        c->rc = rc;
    c->handed++;
}

static int ldb_scan(void *e, uint64_t cursor, size_t count, kvs_entry_fn fn, void *ctx,
                    uint64_t *next)
{
    logdb *db = e;
    scan_ctx c = {db, kvs_clock_ms(&db->opt), fn, ctx, 0, 0};

    if (cursor >= IDX_CURSOR_END)
        return kvs_seterr(KVS_EINVAL, "kvs_scan: cursor %llu is not one this store gave",
                          (unsigned long long)cursor);
    rcu_read_lock();
    do
        cursor = idx_cursor_next(db->idx, cursor, scan_visit, &c);
    while (cursor != IDX_CURSOR_END && c.handed < count && c.rc == 0);
    rcu_read_unlock();
    *next = cursor == IDX_CURSOR_END ? 0 : cursor;
    return c.rc;
}

static int ldb_set(void *e, const void *key, size_t klen, const void *val, size_t vlen)
{
    kvs_op op = {.type = KVS_OP_SET, .key = key, .klen = klen, .val = val, .vlen = vlen};
    return ldb_write(e, &op, 1);
}

static int ldb_remove(void *e, const void *key, size_t klen)
{
    kvs_op op = {.type = KVS_OP_REMOVE, .key = key, .klen = klen};
    return ldb_write(e, &op, 1);
}

static int ldb_write_op(void *e, kvs_op *ops, size_t n)
{
    return ldb_write(e, ops, n);
}

static int ldb_write_pos_op(void *e, kvs_op *ops, size_t n, uint64_t *pos)
{
    return ldb_write_pos(e, ops, n, pos);
}

static int ldb_durable_op(void *e, uint64_t *pos)
{
    return ldb_durable(e, pos);
}

static int ldb_wait_durable_op(void *e, uint64_t pos, long timeout_ms)
{
    return ldb_wait_durable(e, pos, timeout_ms);
}

static int ldb_sync_soon_op(void *e)
{
    return ldb_sync_soon(e);
}

static int ldb_stats(void *e, kvs_stats *out)
{
    logdb *db = e;
    uint64_t total = 0, dead = 0;

    LDB_LOCK(db, wmu);
    for (uint32_t i = 0; i < db->nsegs; i++) {
        total += db->segs[i]->size;
        dead += __atomic_load_n(&db->segs[i]->dead, __ATOMIC_RELAXED);
    }
    out->segments = db->nsegs;
    out->compacting = db->compacting;
    out->compact_done_bytes = __atomic_load_n(&db->compact_done, __ATOMIC_RELAXED);
    out->compact_todo_bytes = db->compact_todo;
    out->live_bytes = total - (uint64_t)db->nsegs * SEG_HDR - dead;
    out->lag_bytes = db->appended - __atomic_load_n(&db->durable_bytes, __ATOMIC_RELAXED);
    out->lag_usec = out->lag_bytes && db->undurable_usec ? clock_usec() - db->undurable_usec : 0;
    LDB_UNLOCK(db, wmu);
    out->durable_syncs = __atomic_load_n(&db->durable_syncs, __ATOMIC_RELAXED);
    out->durable_writes = __atomic_load_n(&db->durable_writes, __ATOMIC_RELAXED);
    out->keys = idx_count(db->idx);
    out->index_bytes = idx_bytes(db->idx);
    out->index_max_bytes = db->opt.max_index_memory;
    if (out->index_max_bytes) {
        uint64_t cap = idx_capacity(db->idx, out->index_max_bytes);
        out->index_keys_left = cap > out->keys ? cap - out->keys : 0;
    }
    out->dead_bytes = dead;
    out->disk_bytes = total;
    out->compactions = __atomic_load_n(&db->compactions, __ATOMIC_RELAXED);
    out->compact_reclaimed = __atomic_load_n(&db->compact_reclaimed, __ATOMIC_RELAXED);
    out->compact_last_usec = __atomic_load_n(&db->compact_last_usec, __ATOMIC_RELAXED);
    out->compact_paced_usec = __atomic_load_n(&db->compact_paced_usec, __ATOMIC_RELAXED);
    out->writes = __atomic_load_n(&db->writes, __ATOMIC_RELAXED);
    out->syncs = __atomic_load_n(&db->syncs, __ATOMIC_RELAXED);
    out->corrupt_reads = __atomic_load_n(&db->corrupt_reads, __ATOMIC_RELAXED);
    out->corrupt_records = __atomic_load_n(&db->corrupt_records, __ATOMIC_RELAXED);
    out->expiring_keys = idx_expiring(db->idx);
    out->expired_keys = __atomic_load_n(&db->expired_keys, __ATOMIC_RELAXED);
    return 0;
}

/* kvs_clear (background.c does the work). */
static int ldb_clear(void *e, int async)
{
    return async ? ldb_clear_async(e) : ldb_clear_now(e);
}

static int64_t ldb_compact(void *e)
{
    logdb *db = e;
    int64_t rc;

    rc = ldb_compact_all(db, false);
    ldb_write_pending_hints(db);
    return rc;
}

static int ldb_sync_op(void *e)
{
    return ldb_sync(e);
}

static int ldb_checkpoint_op(void *e, const char *dest)
{
    return ldb_checkpoint(e, dest);
}

static int ldb_owns_dir(const char *dir)
{
    char path[PATH_MAX];
    struct stat st;

    return io_join(path, sizeof path, dir, MAN_FILE) == 0 && stat(path, &st) == 0;
}

const kvs_engine_ops kvs_logdb_engine = {
    .name = "kvs",
    .open = ldb_open,
    .close = ldb_close,
    .read = ldb_read,
    .set = ldb_set,
    .remove = ldb_remove,
    .write = ldb_write_op,
    .write_pos = ldb_write_pos_op,
    .durable = ldb_durable_op,
    .wait_durable = ldb_wait_durable_op,
    .sync_soon = ldb_sync_soon_op,
    .read_meta = ldb_read_meta,
    .scan = ldb_scan,
    .clear = ldb_clear,
    .stats = ldb_stats,
    .compact = ldb_compact,
    .sync = ldb_sync_op,
    .checkpoint = ldb_checkpoint_op,
    .verify = ldb_verify,
    .owns_dir = ldb_owns_dir,
};
