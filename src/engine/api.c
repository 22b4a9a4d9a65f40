/*
 * api.c — the public functions of kvs.h: handle lifecycle, argument checks, and dispatch to the
 * engine chosen for the directory.
 *
 * What every engine shares lives here, once:
 *   - limits on keys and values, checked before any engine sees them;
 *   - the lock: flock(LOCK_EX | LOCK_NB) on the directory itself, held from open to close, so a
 *     second handle or process gets KVS_EBUSY ("directory in use") instead of two writers on
 *     one log;
 *   - the reference count: a handle shared by threads or owners is closed by the last
 *     kvs_close (the "drop guard": background threads stop exactly once, after every user);
 *   - the ENGINE file: the name of the engine that owns the directory, written once when the
 *     directory is first opened, so that opening it later with another engine is refused
 *     (KVS_EENGINE) and opening it with no engine named picks the right one. An ENGINE file
 *     that contradicts the data beside it (it says lmdb, a kvs MANIFEST is there) is refused
 *     too, rather than opening an empty store of the wrong engine over the data.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine.h"
#include "kvs.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/io.h"

#define ENGINE_FILE "ENGINE"
#define ENGINE_NAME_MAX 32

enum { DB_CREATED, DB_OPEN };

struct kvs {
    int state;
    int refs; /* atomic: kvs_create and kvs_ref add one, kvs_close takes one */
    kvs_options opt;
    char engine_name[ENGINE_NAME_MAX]; /* opt.engine points here once configured */
    const kvs_engine_ops *ops;
    void *impl;
    int lock_fd;
    /* positions for an engine without its own (engine.h): batches written, and how many of
     * them a sync has covered (atomics) */
    uint64_t wseq, durable_pos;
};

void kvs_options_init(kvs_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->engine = NULL;
    opt->sync = KVS_SYNC_EVERYSEC;
    opt->segment_size = 8u << 20;
    opt->compact_ratio = 0.5;
    opt->compact_min_bytes = 1u << 20;
    opt->auto_compact = 1;
    opt->expire_effort = 20000;
    opt->compact_rate = 32u << 20;
    opt->compact_nice = 10;
}

uint64_t kvs_clock_ms(const kvs_options *opt)
{
    if (opt && opt->clock_ms)
        return opt->clock_ms(opt->clock_ctx);
    return clock_wall_ms();
}

uint64_t kvs_now_ms(kvs_t *db)
{
    return kvs_clock_ms(db ? &db->opt : NULL);
}

int kvs_create(kvs_t **out)
{
    kvs_t *db = calloc(1, sizeof *db);

    *out = NULL;
    if (!db)
        return KVS_ENOMEM;
    kvs_options_init(&db->opt);
    db->state = DB_CREATED;
    db->lock_fd = -1;
    db->refs = 1;
    *out = db;
    return 0;
}

int kvs_configure(kvs_t *db, const kvs_options *opt)
{
    if (!db || !opt)
        return kvs_seterr(KVS_EINVAL, "kvs_configure: NULL argument");
    if (db->state != DB_CREATED)
        return kvs_seterr(KVS_ESTATE, "kvs_configure: the store is already open");
    if (opt->sync != KVS_SYNC_NEVER && opt->sync != KVS_SYNC_EVERYSEC &&
        opt->sync != KVS_SYNC_ALWAYS)
        return kvs_seterr(KVS_EINVAL, "sync mode %d is not never, everysec or always", opt->sync);
    if (opt->segment_size < 4096 || opt->segment_size > (1ull << 30))
        return kvs_seterr(KVS_EINVAL, "segment size %llu outside 4 KiB .. 1 GiB",
                          (unsigned long long)opt->segment_size);
    if (opt->max_index_memory && opt->max_index_memory < (1u << 20))
        return kvs_seterr(KVS_EINVAL, "index memory budget %llu under 1 MiB",
                          (unsigned long long)opt->max_index_memory);
    if (!(opt->compact_ratio > 0.0 && opt->compact_ratio <= 1.0))
        return kvs_seterr(KVS_EINVAL, "compaction ratio %g outside (0, 1]", opt->compact_ratio);
    if (opt->compact_nice < 0 || opt->compact_nice > 19)
        return kvs_seterr(KVS_EINVAL, "compaction nice %d outside 0 .. 19", opt->compact_nice);
    if (opt->engine) {
        if (!kvs_engine_find(opt->engine))
            return kvs_seterr(KVS_ENOENGINE, "unknown engine '%s'", opt->engine);
        strcpy(db->engine_name, opt->engine); /* fits: it matched a registered name */
    }
    db->opt = *opt;
    db->opt.engine = opt->engine ? db->engine_name : NULL;
    return 0;
}

/* Lock the directory itself (flock on an fd of it) for as long as the store is open;
 * KVS_EBUSY if someone holds it. Not a file inside it: an operator tidying the directory could
 * delete that, and the next process would lock a new file of the same name while the first
 * still writes — two writers on one log. A directory cannot be deleted while it holds the data.
 * (Directories of earlier versions may still hold a LOCK file; it is no longer used.) */
static int dir_flock(const char *dir, int how)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0)
        return kvs_seterr(kvs_errno(errno), "open directory %s: %s", dir, strerror(errno));
    if (flock(fd, how | LOCK_NB) < 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            return kvs_seterr(KVS_EBUSY, "directory %s is in use by another process", dir);
        return kvs_seterr(kvs_errno(e), "lock %s: %s", dir, strerror(e));
    }
    return fd;
}

int kvs_dir_lock(const char *dir)
{
    return dir_flock(dir, LOCK_EX);
}

int kvs_dir_lock_shared(const char *dir)
{
    return dir_flock(dir, LOCK_SH);
}

int kvs_dir_engine(const char *dir, char *name, size_t cap)
{
    char path[PATH_MAX], *buf;
    size_t len;
    int rc;

    name[0] = '\0';
    if ((rc = io_join(path, sizeof path, dir, ENGINE_FILE)) < 0)
        return rc;
    rc = io_read_file(path, ENGINE_NAME_MAX, &buf, &len);
    if (rc == KVS_ENOTFOUND) {
        for (const kvs_engine_ops *const *e = kvs_engine_list(); *e; e++)
            if ((*e)->owns_dir && (*e)->owns_dir(dir)) {
                snprintf(name, cap, "%s", (*e)->name);
                break;
            }
        return 0;
    }
    if (rc < 0)
        return rc;
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        buf[--len] = '\0';
    if (len == 0 || len >= cap || !kvs_engine_find(buf)) {
        rc = kvs_seterr(KVS_ECORRUPT, "%s names an unknown engine '%s'", path, buf);
        free(buf);
        return rc;
    }
    memcpy(name, buf, len + 1);
    free(buf);
    for (const kvs_engine_ops *const *e = kvs_engine_list(); *e; e++)
        if (strcmp((*e)->name, name) != 0 && (*e)->owns_dir && (*e)->owns_dir(dir))
            return kvs_seterr(KVS_EENGINE, "%s says '%s', but the directory holds data of engine "
                              "'%s': fix or remove the ENGINE file", path, name, (*e)->name);
    return 0;
}

static int make_dir(const char *dir)
{
    struct stat st;

    if (mkdir(dir, 0755) == 0 || errno == EEXIST) {
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
            return 0;
        return kvs_seterr(KVS_EINVAL, "%s is not a directory", dir);
    }
    return kvs_seterr(kvs_errno(errno), "create directory %s: %s", dir, strerror(errno));
}

int kvs_open(kvs_t *db, const char *dir)
{
    char have[ENGINE_NAME_MAX], want[ENGINE_NAME_MAX];
    int rc;

    kvs_clearerr();
    if (!db || !dir || !*dir)
        return kvs_seterr(KVS_EINVAL, "kvs_open: no handle or directory");
    if (db->state != DB_CREATED)
        return kvs_seterr(KVS_ESTATE, "kvs_open: the store is already open");
    if ((rc = make_dir(dir)) < 0 || (rc = kvs_dir_lock(dir)) < 0)
        return rc;
    db->lock_fd = rc;
    if ((rc = kvs_dir_engine(dir, have, sizeof have)) < 0)
        goto fail;
    snprintf(want, sizeof want, "%s", db->opt.engine ? db->opt.engine : have[0] ? have : "kvs");
    if (have[0] && strcmp(have, want) != 0) {
        rc = kvs_seterr(KVS_EENGINE, "directory %s holds engine '%s', not '%s'", dir, have, want);
        goto fail;
    }
    db->ops = kvs_engine_find(want);
    if ((rc = db->ops->open(dir, &db->opt, &db->impl)) < 0)
        goto fail;
    if (!have[0]) {
        char line[ENGINE_NAME_MAX + 1];
        int n = snprintf(line, sizeof line, "%s\n", want);
        if ((rc = io_write_file_atomic(dir, ENGINE_FILE, line, (size_t)n)) < 0) {
            db->ops->close(db->impl);
            db->impl = NULL;
            goto fail;
        }
    }
    db->state = DB_OPEN;
    return 0;

fail:
    close(db->lock_fd);
    db->lock_fd = -1;
    db->ops = NULL;
    return rc;
}

static int check_open(const kvs_t *db)
{
    if (!db)
        return kvs_seterr(KVS_EINVAL, "NULL handle");
    if (db->state != DB_OPEN)
        return kvs_seterr(KVS_ESTATE, "the store is not open");
    return 0;
}

static int check_key(const void *key, size_t klen)
{
    if (!key && klen)
        return kvs_seterr(KVS_EINVAL, "NULL key");
    if (klen > KVS_MAX_KEY)
        return kvs_seterr(KVS_EKEYTOOBIG, "key of %zu bytes; the limit is %u", klen, KVS_MAX_KEY);
    return 0;
}

static int check_value(const void *val, size_t vlen)
{
    if (!val && vlen)
        return kvs_seterr(KVS_EINVAL, "NULL value");
    if (vlen > KVS_MAX_VALUE)
        return kvs_seterr(KVS_EVALTOOBIG, "value of %zu bytes; the limit is %u", vlen,
                          KVS_MAX_VALUE);
    return 0;
}

int kvs_set(kvs_t *db, const void *key, size_t klen, const void *val, size_t vlen)
{
    kvs_op op = {.type = KVS_OP_SET, .key = key, .klen = klen, .val = val, .vlen = vlen};
    return kvs_write(db, &op, 1);
}

/* The checks of one op; its defaults filled in. An engine without a write op of its own gets
 * plain sets and removes only (engine_write): an update needs the engine's write lock, an
 * expiry time its record format. */
static int check_op(const kvs_t *db, kvs_op *op)
{
    int rc;

    if (op->type != KVS_OP_SET && op->type != KVS_OP_REMOVE && op->type != KVS_OP_UPDATE)
        return kvs_seterr(KVS_EINVAL, "kvs_write: unknown op type %d", op->type);
    if ((rc = check_key(op->key, op->klen)) < 0 ||
        (op->type == KVS_OP_SET && (rc = check_value(op->val, op->vlen)) < 0))
        return rc;
    if (op->type == KVS_OP_UPDATE && !op->update)
        return kvs_seterr(KVS_EINVAL, "kvs_write: an update op without an update function");
    if (op->expire_ms && op->type != KVS_OP_SET) /* 0 is "never", allowed everywhere */
        return kvs_seterr(KVS_EINVAL, "kvs_write: expire_ms is for KVS_OP_SET only");
    if (!db->ops->write && (op->type == KVS_OP_UPDATE || op->expire_ms))
        return kvs_seterr(KVS_EINVAL, "kvs_write: engine '%s' does not support %s yet",
                          db->ops->name, op->expire_ms ? "expiry times" : "update ops");
    if (!op->key)
        op->key = "";
    if (op->type == KVS_OP_SET && !op->val)
        op->val = "";
    if (op->type != KVS_OP_SET) {
        op->val = NULL;
        op->vlen = 0;
    }
    return 0;
}

/* The engine has no op for what was asked (the lmdb engine until it learns issue 13's). */
static int unsupported(const kvs_t *db, const char *what)
{
    return kvs_seterr(KVS_EINVAL, "%s: engine '%s' does not support it yet", what, db->ops->name);
}

int kvs_update_call(const kvs_op *op, const kvs_cur *cur, kvs_update_out *out)
{
    int rc;

    memset(out, 0, sizeof *out);
    out->type = KVS_OP_NONE;
    if ((rc = op->update(op->update_ctx, cur, out)) < 0)
        return rc;
    if (rc > 0)
        return kvs_seterr(KVS_EINVAL, "update function returned %d, not 0 or a KVS_E* code", rc);
    switch (out->type) {
    case KVS_OP_SET:
        if ((rc = check_value(out->val, out->vlen)) < 0)
            return rc;
        if (!out->val)
            out->val = "";
        return 0;
    case KVS_OP_REMOVE:
    case KVS_OP_NONE:
        if (out->expire_ms)
            return kvs_seterr(KVS_EINVAL, "update function: expire_ms without KVS_OP_SET");
        out->val = NULL;
        out->vlen = 0;
        return 0;
    default:
        return kvs_seterr(KVS_EINVAL, "update function: unknown op type %d", out->type);
    }
}

/* Apply the ops the engine is given, each rc set. Without the engine's own write op, one by
 * one through set and remove (check_op kept updates and expiry times away from this path).
 * pos: kvs_write_pos's, the batch's position into it (NULL: kvs_write). */
static int engine_write_plain(kvs_t *db, kvs_op *ops, size_t n);

static int engine_write(kvs_t *db, kvs_op *ops, size_t n, uint64_t *pos)
{
    if (pos && db->ops->write_pos)
        return db->ops->write_pos(db->impl, ops, n, pos);
    if (!db->ops->write_pos) { /* api.c numbers every batch (kvs_write's too), once applied */
        int rc = engine_write_plain(db, ops, n);
        uint64_t p = __atomic_add_fetch(&db->wseq, 1, __ATOMIC_ACQ_REL);
        if (pos)
            *pos = p;
        return rc;
    }
    return engine_write_plain(db, ops, n);
}

static int engine_write_plain(kvs_t *db, kvs_op *ops, size_t n)
{
    if (db->ops->write)
        return db->ops->write(db->impl, ops, n);
    int first = 0;
    for (size_t i = 0; i < n; i++) {
        kvs_op *op = &ops[i];
        op->rc = op->type == KVS_OP_SET ? db->ops->set(db->impl, op->key, op->klen, op->val, op->vlen)
                                        : db->ops->remove(db->impl, op->key, op->klen);
        if (op->rc < 0 && first == 0)
            first = op->rc;
    }
    return first;
}

/* The position of everything applied so far (kvs_write_pos of no ops). */
static void applied_pos(kvs_t *db, uint64_t *pos)
{
    if (db->ops->write_pos)
        db->ops->write_pos(db->impl, NULL, 0, pos);
    else
        *pos = __atomic_load_n(&db->wseq, __ATOMIC_ACQUIRE);
}

/* Ops that fail their checks are not applied (their rc says why); the others are, as one batch
 * of their own. Every op's rc is set whatever happens, so a caller can answer for each. pos:
 * kvs_write_pos's (NULL: kvs_write). */
static int write_checked(kvs_t *db, kvs_op *ops, size_t n, uint64_t *pos)
{
    int rc, first = 0;
    size_t bad = 0;

    if (!ops && n)
        return kvs_seterr(KVS_EINVAL, "kvs_write: NULL ops");
    if ((rc = check_open(db)) < 0) {
        for (size_t i = 0; i < n; i++)
            ops[i].rc = rc;
        return rc;
    }
    for (size_t i = 0; i < n; i++)
        ops[i].rc = check_op(db, &ops[i]);
    for (size_t g = 0, end; g < n; g = end) { /* a group with a refused op is refused whole */
        int grc = 0;
        end = kvs_group_end(ops, n, g);
        for (size_t i = g; i < end && grc == 0; i++)
            grc = ops[i].rc;
        for (size_t i = g; i < end && grc < 0; i++)
            ops[i].rc = grc;
    }
    for (size_t i = 0; i < n; i++)
        if (ops[i].rc < 0 && bad++ == 0)
            first = ops[i].rc;
    if (bad == 0)
        return engine_write(db, ops, n, pos);
    if (bad == n) {
        if (pos)
            applied_pos(db, pos);
        return first;
    }
    kvs_op *good = malloc((n - bad) * sizeof *good);
    size_t k = 0;
    if (!good) {
        for (size_t i = 0; i < n; i++)
            if (ops[i].rc == 0)
                ops[i].rc = KVS_ENOMEM;
        return kvs_seterr(KVS_ENOMEM, "kvs_write: no memory for a batch of %zu ops", n - bad);
    }
    for (size_t i = 0; i < n; i++)
        if (ops[i].rc == 0)
            good[k++] = ops[i];
    engine_write(db, good, k, pos);
    k = 0;
    for (size_t i = 0; i < n; i++)
        if (ops[i].rc == 0)
            ops[i].rc = good[k++].rc;
    first = 0;
    for (size_t i = 0; i < n && first == 0; i++)
        first = ops[i].rc < 0 ? ops[i].rc : 0;
    free(good);
    return first;
}

int kvs_write(kvs_t *db, kvs_op *ops, size_t n)
{
    return write_checked(db, ops, n, NULL);
}

int kvs_write_pos(kvs_t *db, kvs_op *ops, size_t n, uint64_t *pos)
{
    int rc;

    if (!pos)
        return kvs_seterr(KVS_EINVAL, "kvs_write_pos: NULL pos");
    *pos = 0;
    if (n > 0)
        return write_checked(db, ops, n, pos);
    if ((rc = check_open(db)) < 0)
        return rc;
    applied_pos(db, pos);
    return 0;
}

int kvs_durable(kvs_t *db, uint64_t *pos)
{
    int rc;

    if (!pos)
        return kvs_seterr(KVS_EINVAL, "kvs_durable: NULL pos");
    *pos = 0;
    if ((rc = check_open(db)) < 0)
        return rc;
    if (db->ops->durable)
        return db->ops->durable(db->impl, pos);
    *pos = __atomic_load_n(db->opt.sync == KVS_SYNC_ALWAYS ? &db->wseq : &db->durable_pos,
                           __ATOMIC_ACQUIRE);
    return 0;
}

/* An engine without positions: a sync begun now covers every batch written so far. */
static int sync_covering(kvs_t *db)
{
    uint64_t upto = __atomic_load_n(&db->wseq, __ATOMIC_ACQUIRE), cur;
    int rc = db->ops->sync(db->impl);

    if (rc < 0)
        return rc;
    cur = __atomic_load_n(&db->durable_pos, __ATOMIC_ACQUIRE);
    while (cur < upto &&
           !__atomic_compare_exchange_n(&db->durable_pos, &cur, upto, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
        ;
    if (db->opt.on_durable)
        db->opt.on_durable(db->opt.durable_ctx);
    return 0;
}

int kvs_wait_durable(kvs_t *db, uint64_t pos, long timeout_ms)
{
    uint64_t now;
    int rc;

    if ((rc = check_open(db)) < 0)
        return rc;
    if (db->ops->wait_durable)
        return db->ops->wait_durable(db->impl, pos, timeout_ms);
    if ((rc = kvs_durable(db, &now)) < 0 || now >= pos)
        return rc;
    return sync_covering(db); /* pos was handed out already: the sync covers it */
}

int kvs_sync_soon(kvs_t *db)
{
    int rc;

    if ((rc = check_open(db)) < 0)
        return rc;
    if (db->ops->sync_soon)
        return db->ops->sync_soon(db->impl);
    return sync_covering(db); /* no thread of its own to ask: synced here */
}

typedef struct copy_out {
    void **val;
    size_t *vlen;
} copy_out;

static int copy_value(void *ctx, const void *val, size_t vlen)
{
    copy_out *o = ctx;
    char *v = malloc(vlen + 1);

    if (!v)
        return kvs_seterr(KVS_ENOMEM, "no memory for a value of %zu bytes", vlen);
    memcpy(v, val, vlen);
    v[vlen] = '\0';
    *o->val = v;
    *o->vlen = vlen;
    return 0;
}

int kvs_get(kvs_t *db, const void *key, size_t klen, void **val, size_t *vlen)
{
    copy_out o = {val, vlen};

    if (!val || !vlen)
        return kvs_seterr(KVS_EINVAL, "kvs_get: NULL output");
    *val = NULL;
    *vlen = 0;
    return kvs_read(db, key, klen, copy_value, &o);
}

/* kvs_read is kvs_read_meta with the meta dropped, so both take one path through an engine
 * that knows expiry (its read_meta decides what is expired); an engine without read_meta yet
 * has no expiry times to honour, and its plain read serves kvs_read. */
int kvs_read(kvs_t *db, const void *key, size_t klen, kvs_value_fn fn, void *ctx)
{
    int rc;

    if (!fn)
        return kvs_seterr(KVS_EINVAL, "kvs_read: NULL callback");
    if ((rc = check_open(db)) < 0 || (rc = check_key(key, klen)) < 0)
        return rc;
    if (!db->ops->read_meta)
        return db->ops->read(db->impl, key ? key : "", klen, fn, ctx);
    kvs_meta unused; /* checked above: straight to the engine, as kvs_read_meta would */
    return db->ops->read_meta(db->impl, key ? key : "", klen, fn, ctx, &unused);
}

int kvs_read_meta(kvs_t *db, const void *key, size_t klen, kvs_value_fn fn, void *ctx,
                  kvs_meta *meta)
{
    kvs_meta local;
    int rc;

    if (!fn)
        return kvs_seterr(KVS_EINVAL, "kvs_read_meta: NULL callback");
    if ((rc = check_open(db)) < 0 || (rc = check_key(key, klen)) < 0)
        return rc;
    if (!meta)
        meta = &local;
    memset(meta, 0, sizeof *meta);
    if (!db->ops->read_meta)
        return unsupported(db, "kvs_read_meta");
    return db->ops->read_meta(db->impl, key ? key : "", klen, fn, ctx, meta);
}

int kvs_scan(kvs_t *db, uint64_t cursor, size_t count, kvs_entry_fn fn, void *ctx,
             uint64_t *next)
{
    int rc;

    if (!fn || !next)
        return kvs_seterr(KVS_EINVAL, "kvs_scan: NULL callback or cursor output");
    *next = 0;
    if ((rc = check_open(db)) < 0)
        return rc;
    if (!db->ops->scan)
        return unsupported(db, "kvs_scan");
    return db->ops->scan(db->impl, cursor, count ? count : 10, fn, ctx, next);
}

/*
 * The iterator: kvs_scan's steps, one at a time. A step's entries are copied (the values lie
 * where the engine pins them only during its callback) into one buffer the iterator owns, and
 * handed out one per kvs_iter_next; the next step is taken when they are used up. The
 * guarantee is the scan's, since a cursor is all that carries from one step to the next.
 */
#define ITER_STEP 64 /* keys a scan step is asked for */

typedef struct iter_entry {
    size_t key_off, klen, val_off, vlen;
    kvs_meta meta;
} iter_entry;

struct kvs_iter {
    kvs_t *db;
    uint64_t cursor; /* of the next step */
    int done;        /* the last step returned cursor 0 */
    iter_entry *ents;
    size_t n, pos, cap;
    char *buf; /* keys and values of ents */
    size_t blen, bcap;
};

static int iter_reserve(void **p, size_t *cap, size_t need, size_t size)
{
    size_t c = *cap ? *cap : 16;
    void *q;

    if (need <= *cap)
        return 0;
    while (c < need)
        c *= 2;
    if (!(q = realloc(*p, c * size)))
        return kvs_seterr(KVS_ENOMEM, "kvs_iter: no memory for %zu bytes", c * size);
    *p = q;
    *cap = c;
    return 0;
}

static int iter_copy(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                     const kvs_meta *meta)
{
    kvs_iter *it = ctx;
    iter_entry *e;
    int rc;

    if ((rc = iter_reserve((void **)&it->ents, &it->cap, it->n + 1, sizeof *it->ents)) < 0 ||
        (rc = iter_reserve((void **)&it->buf, &it->bcap, it->blen + klen + vlen, 1)) < 0)
        return rc;
    e = &it->ents[it->n++];
    e->key_off = it->blen;
    e->klen = klen;
    memcpy(it->buf + it->blen, key, klen);
    it->blen += klen;
    e->val_off = it->blen;
    e->vlen = vlen;
    memcpy(it->buf + it->blen, val, vlen);
    it->blen += vlen;
    e->meta = *meta;
    return 0;
}

int kvs_iter_begin(kvs_t *db, kvs_iter **out)
{
    int rc;

    if (!out)
        return kvs_seterr(KVS_EINVAL, "kvs_iter_begin: NULL output");
    *out = NULL;
    if ((rc = check_open(db)) < 0)
        return rc;
    if (!db->ops->scan)
        return unsupported(db, "kvs_iter_begin");
    if (!(*out = calloc(1, sizeof **out)))
        return kvs_seterr(KVS_ENOMEM, "kvs_iter_begin: no memory");
    (*out)->db = db;
    return 0;
}

/* Refill the buffer with the next step's entries; a step may find none while the cursor goes
 * on (a stretch of the index without live keys), so step until some come or the end does. A
 * step that fails is retried from the same cursor by the next call (seeing keys twice is
 * within the guarantee). */
static int iter_fill(kvs_iter *it)
{
    while (it->pos == it->n && !it->done) {
        uint64_t next;
        int rc;
        it->n = it->pos = it->blen = 0;
        rc = it->db->ops->scan(it->db->impl, it->cursor, ITER_STEP, iter_copy, it, &next);
        if (rc < 0) {
            it->n = 0;
            return rc;
        }
        it->cursor = next;
        it->done = next == 0;
    }
    return 0;
}

int kvs_iter_next(kvs_iter *it, kvs_entry_fn fn, void *ctx)
{
    const iter_entry *e;
    int rc;

    if (!it || !fn)
        return kvs_seterr(KVS_EINVAL, "kvs_iter_next: NULL iterator or callback");
    if ((rc = iter_fill(it)) < 0)
        return rc;
    if (it->pos == it->n)
        return 0;
    e = &it->ents[it->pos++];
    rc = fn(ctx, it->buf + e->key_off, e->klen, it->buf + e->val_off, e->vlen, &e->meta);
    return rc < 0 ? rc : 1;
}

void kvs_iter_end(kvs_iter *it)
{
    if (!it)
        return;
    free(it->ents);
    free(it->buf);
    free(it);
}

int kvs_clear(kvs_t *db, int async)
{
    int rc;

    if ((rc = check_open(db)) < 0)
        return rc;
    if (!db->ops->clear)
        return unsupported(db, "kvs_clear");
    return db->ops->clear(db->impl, async);
}

int kvs_remove(kvs_t *db, const void *key, size_t klen)
{
    kvs_op op = {.type = KVS_OP_REMOVE, .key = key, .klen = klen};
    return kvs_write(db, &op, 1);
}

int kvs_stats_get(kvs_t *db, kvs_stats *out)
{
    int rc;

    if (!out)
        return kvs_seterr(KVS_EINVAL, "kvs_stats_get: NULL output");
    if ((rc = check_open(db)) < 0)
        return rc;
    memset(out, 0, sizeof *out);
    snprintf(out->engine, sizeof out->engine, "%s", db->ops->name);
    out->sync = db->opt.sync;
    out->index_keys_left = UINT64_MAX; /* no budget, unless the engine has one */
    return db->ops->stats(db->impl, out);
}

int64_t kvs_compact(kvs_t *db)
{
    int rc;

    if ((rc = check_open(db)) < 0)
        return rc;
    return db->ops->compact(db->impl);
}

int kvs_sync_now(kvs_t *db)
{
    int rc;

    if ((rc = check_open(db)) < 0)
        return rc;
    return db->ops->sync(db->impl);
}

kvs_t *kvs_ref(kvs_t *db)
{
    if (db)
        __atomic_add_fetch(&db->refs, 1, __ATOMIC_RELAXED);
    return db;
}

int kvs_close(kvs_t *db)
{
    int rc = 0;

    if (!db)
        return 0;
    /* acq_rel: the last closer sees every other user's writes to the handle */
    if (__atomic_sub_fetch(&db->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return 0;
    if (db->state == DB_OPEN)
        rc = db->ops->close(db->impl);
    if (db->lock_fd >= 0)
        close(db->lock_fd);
    free(db);
    return rc;
}

/* ---- backups, checking, salvage (kvs.h) ---- */

/* Is dir an empty directory? 1 yes, 0 no (something in it), or an error. */
static int dir_empty(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int empty = 1;

    if (!d)
        return kvs_seterr(kvs_errno(errno), "open directory %s: %s", dir, strerror(errno));
    while (empty && (de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            empty = 0;
    closedir(d);
    return empty;
}

int kvs_dest_prepare(const char *dest, bool *made)
{
    struct stat st;
    int rc;

    *made = false;
    if (!dest || !*dest)
        return kvs_seterr(KVS_EINVAL, "no destination directory");
    if (mkdir(dest, 0755) == 0) {
        *made = true;
        return 0;
    }
    if (errno != EEXIST)
        return kvs_seterr(kvs_errno(errno), "create directory %s: %s", dest, strerror(errno));
    if (stat(dest, &st) < 0 || !S_ISDIR(st.st_mode))
        return kvs_seterr(KVS_EINVAL, "%s exists and is not a directory", dest);
    if ((rc = dir_empty(dest)) < 0)
        return rc;
    return rc ? 0 : kvs_seterr(KVS_EINVAL, "%s is not empty: the destination must be a new "
                               "or an empty directory", dest);
}

void kvs_dest_remove(const char *dest, bool made)
{
    char path[PATH_MAX];
    struct dirent *de;
    DIR *d = opendir(dest);

    if (!d)
        return;
    while ((de = readdir(d)) != NULL)
        if (de->d_type != DT_DIR && io_join(path, sizeof path, dest, de->d_name) == 0)
            unlink(path);
    closedir(d);
    if (made)
        rmdir(dest);
}

/* dest's ENGINE file (as kvs_open writes it) and its entry synced. */
static int write_engine_file(const char *dest, const char *name)
{
    char line[ENGINE_NAME_MAX + 1];
    int n = snprintf(line, sizeof line, "%s\n", name);

    return io_write_file_atomic(dest, ENGINE_FILE, line, (size_t)n);
}

int kvs_checkpoint(kvs_t *db, const char *dest)
{
    bool made;
    int rc;

    kvs_clearerr();
    if ((rc = check_open(db)) < 0)
        return rc;
    if (!db->ops->checkpoint)
        return unsupported(db, "checkpoints");
    if ((rc = kvs_dest_prepare(dest, &made)) < 0)
        return rc;
    if ((rc = db->ops->checkpoint(db->impl, dest)) == 0 &&
        (rc = write_engine_file(dest, db->ops->name)) == 0)
        rc = io_fsync_dir(dest);
    if (rc < 0) {
        char why[1024];
        snprintf(why, sizeof why, "%s", kvs_last_error());
        kvs_dest_remove(dest, made);
        kvs_seterr(rc, "%s", why);
    }
    return rc;
}

int kvs_verify(const char *dir, kvs_finding_fn fn, void *ctx, kvs_verify_report *report)
{
    kvs_verify_report local;
    char name[ENGINE_NAME_MAX];
    int fd, rc;

    kvs_clearerr();
    if (!report)
        report = &local;
    memset(report, 0, sizeof *report);
    if (!dir || !*dir)
        return kvs_seterr(KVS_EINVAL, "kvs_verify: no directory");
    if ((fd = kvs_dir_lock_shared(dir)) < 0)
        return fd == KVS_EBUSY ? kvs_seterr(KVS_EBUSY, "%s is open in a running store (a server?): "
                                            "verify a checkpoint of it instead", dir)
                               : fd;
    if ((rc = kvs_dir_engine(dir, name, sizeof name)) == 0 && !name[0])
        rc = kvs_seterr(KVS_EINVAL, "%s holds no store", dir);
    if (rc == 0) {
        const kvs_engine_ops *e = kvs_engine_find(name);
        rc = e->verify ? e->verify(dir, fn, ctx, report)
                       : kvs_seterr(KVS_EINVAL, "engine %s cannot verify", name);
    }
    close(fd);
    return rc;
}

void *kvs_engine_impl(kvs_t *db)
{
    return db && db->state == DB_OPEN ? db->impl : NULL;
}

void kvs_free(void *p)
{
    free(p);
}
