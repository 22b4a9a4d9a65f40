/*
 * engine.c — the "kvs" engine's table for the engine interface: open, close, get, set, remove,
 * stats, compact, sync.
 *
 * get is the lock-free read path: inside one RCU read section it looks the key up, reads header,
 * key and value with one preadv from the segment the entry names, and verifies the record — its
 * checksum, and that it is the key asked for — before handing the value out. A record that fails
 * is reported (file and offset) and never served.
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
#include "util/err.h"
#include "util/io.h"
#include "util/log.h"


static void log_free(logdb *db)
{
    idx_free(db->idx);
    for (uint32_t i = 0; i < db->nsegs; i++)
        seg_close(db->segs[i]);
    free(db->segs);
    man_close(&db->man);
    pthread_mutex_destroy(&db->wmu);
    pthread_mutex_destroy(&db->qmu);
    pthread_mutex_destroy(&db->cmu);
    pthread_cond_destroy(&db->qcv);
    free(db);
}

/* Test knob: KVS_TEST_MANIFEST_RESET_EDITS=N rewrites the manifest every N edits instead of
 * log_manifest_reset_edits (1024), so that tests of a live server (the power-cut tests) meet
 * manifest rewrites often. Read once per process. */
static void manifest_knob(void)
{
    const char *v = getenv("KVS_TEST_MANIFEST_RESET_EDITS");
    long n = v ? strtol(v, NULL, 10) : 0;

    if (n > 0 && n < 1000000)
        log_manifest_reset_edits = (unsigned)n;
}

static int log_open(const char *dir, const kvs_options *opt, void **out)
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
    pthread_cond_init(&db->qcv, NULL);
    if (snprintf(db->dir, sizeof db->dir, "%s", dir) >= (int)sizeof db->dir) {
        rc = kvs_seterr(KVS_EINVAL, "directory path too long");
        goto fail;
    }
    pthread_once(&knob, manifest_knob);
    io_take_sync_failure(); /* a mark left by an earlier store on this thread */
    if ((rc = idx_new(&db->idx)) < 0 || (rc = log_recover(db)) < 0 ||
        (rc = log_threads_start(db)) < 0)
        goto fail;
    /* Recovery went on past a failed sync only where nothing written hangs on it (a hint, a
     * zero tail cut); still, the disk failed a sync: the store opens for reads only. */
    log_fence_if_sync_failed(db);
    LOG_INFO("opened %s: %llu keys in %u segments", dir, (unsigned long long)idx_count(db->idx),
             db->nsegs);
    *out = db;
    return 0;
fail:
    log_threads_stop(db);
    log_free(db);
    return rc;
}

static int log_close(void *e)
{
    logdb *db = e;
    int rc = 0;

    log_threads_stop(db);
    if ((rc = log_fenced(db)) < 0) {
        /* nothing is synced after a failed sync (log_fence), nor cut: the files stay as the
         * failure left them, for the next open to recover from */
        log_free(db);
        return rc;
    }
    log_write_pending_hints(db); /* so the next open reads keys, not segments */
    pthread_mutex_lock(&db->wmu);
    seg *a = db->active;
    rc = log_sync_locked(db);
    /* leave the file as long as its data: the room given ahead is not kept */
    if (a->alloc > a->size && ftruncate(a->fd, (off_t)a->size) < 0 && rc == 0)
        rc = kvs_seterr(kvs_errno(errno), "truncate %s: %s", a->path, strerror(errno));
    pthread_mutex_unlock(&db->wmu);
    log_free(db);
    return rc;
}

/* Is the record just read the one the index promised, intact? */
static bool record_ok(const unsigned char *hk, const void *key, uint32_t klen, const void *val,
                      uint32_t vlen)
{
    rec_hdr h;

    return rec_decode(hk, &h) && !(h.flags & REC_TOMBSTONE) && h.klen == klen && h.vlen == vlen &&
           memcmp(hk + REC_HDR, key, klen) == 0 && rec_verify(hk, hk + REC_HDR, klen, val, vlen);
}

static int log_read(void *e, const void *key, size_t klen, kvs_value_fn fn, void *ctx)
{
    logdb *db = e;
    idx_loc loc;
    int rc;

    rcu_read_lock();
    if ((rc = idx_lookup(db->idx, key, klen, &loc)) < 0)
        goto out;
    /* The record is read where it lies, in the segment's mapping: no system call, no copy. */
    const unsigned char *rec = loc.seg->map + loc.off;
    uint64_t len = rec_len((uint32_t)klen, loc.vlen);
    if (loc.off + len > loc.seg->map_len ||
        !record_ok(rec, key, (uint32_t)klen, rec + REC_HDR + klen, loc.vlen)) {
        __atomic_add_fetch(&db->corrupt_reads, 1, __ATOMIC_RELAXED);
        LOG_ERROR("%s: record at offset %u fails its checksum; not served", loc.seg->path,
                  loc.off);
        rc = kvs_seterr(KVS_ECORRUPT, "%s: record at offset %u fails its checksum",
                        loc.seg->path, loc.off);
        goto out;
    }
    rc = fn(ctx, rec + REC_HDR + klen, loc.vlen);
out:
    rcu_read_unlock();
    return rc;
}

static int log_set(void *e, const void *key, size_t klen, const void *val, size_t vlen)
{
    kvs_op op = {KVS_OP_SET, key, klen, val, vlen, 0};
    return log_write(e, &op, 1);
}

static int log_remove(void *e, const void *key, size_t klen)
{
    kvs_op op = {KVS_OP_REMOVE, key, klen, NULL, 0, 0};
    return log_write(e, &op, 1);
}

static int log_write_op(void *e, kvs_op *ops, size_t n)
{
    return log_write(e, ops, n);
}

static int log_stats(void *e, kvs_stats *out)
{
    logdb *db = e;
    uint64_t total = 0, dead = 0;

    pthread_mutex_lock(&db->wmu);
    for (uint32_t i = 0; i < db->nsegs; i++) {
        total += db->segs[i]->size;
        dead += __atomic_load_n(&db->segs[i]->dead, __ATOMIC_RELAXED);
    }
    out->segments = db->nsegs;
    out->compacting = db->compacting;
    out->compact_done_bytes = __atomic_load_n(&db->compact_done, __ATOMIC_RELAXED);
    out->compact_todo_bytes = db->compact_todo;
    out->live_bytes = total - (uint64_t)db->nsegs * SEG_HDR - dead;
    pthread_mutex_unlock(&db->wmu);
    out->keys = idx_count(db->idx);
    out->dead_bytes = dead;
    out->disk_bytes = total;
    out->compactions = __atomic_load_n(&db->compactions, __ATOMIC_RELAXED);
    out->compact_reclaimed = __atomic_load_n(&db->compact_reclaimed, __ATOMIC_RELAXED);
    out->compact_last_usec = __atomic_load_n(&db->compact_last_usec, __ATOMIC_RELAXED);
    out->writes = __atomic_load_n(&db->writes, __ATOMIC_RELAXED);
    out->syncs = __atomic_load_n(&db->syncs, __ATOMIC_RELAXED);
    out->corrupt_reads = __atomic_load_n(&db->corrupt_reads, __ATOMIC_RELAXED);
    out->corrupt_records = __atomic_load_n(&db->corrupt_records, __ATOMIC_RELAXED);
    return 0;
}

static int64_t log_compact(void *e)
{
    logdb *db = e;
    int64_t rc;

    rc = log_compact_all(db);
    log_write_pending_hints(db);
    return rc;
}

static int log_sync_op(void *e)
{
    return log_sync(e);
}

static int log_owns_dir(const char *dir)
{
    char path[PATH_MAX];
    struct stat st;

    return io_join(path, sizeof path, dir, MAN_FILE) == 0 && stat(path, &st) == 0;
}

const kvs_engine_ops kvs_log_engine = {
    .name = "kvs",
    .open = log_open,
    .close = log_close,
    .read = log_read,
    .set = log_set,
    .remove = log_remove,
    .write = log_write_op,
    .stats = log_stats,
    .compact = log_compact,
    .sync = log_sync_op,
    .owns_dir = log_owns_dir,
};
