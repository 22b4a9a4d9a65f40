/*
 * recover.c — opening a store: from the files on disk to a ready index.
 *
 *   1. Replay the MANIFEST: which segments are live, which is active. A new directory gets a
 *      manifest naming one empty active segment.
 *   2. Delete files the manifest does not name (outputs of a compaction that never committed, a
 *      segment created by a rotation that never committed, its victims after a committed one,
 *      temporary files).
 *   3. Load each sealed segment from its hint file; where the hint is missing or damaged, scan
 *      the segment (verifying every checksum) and write the hint anew.
 *   4. Scan the active segment; a tail that holds no valid record is a torn append and is
 *      truncated, with its size logged.
 *   5. Resolve: for each key the record with the highest seq wins, whichever segment it is in
 *      (compaction copies records forward keeping their seq); keys whose winner is a tombstone
 *      are dropped from the index.
 */
#include <dirent.h>
#include <pthread.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <urcu-bp.h>

#include "engine/log/hint.h"
#include "engine/log/logdb.h"
#include "util/err.h"
#include "util/io.h"
#include "util/log.h"

typedef struct load_ctx {
    logdb *db;
    seg *s;
    uint64_t loaded;
    int64_t *tombstones;
} load_ctx;

/* One record (from a scan or a hint) into the index, keeping the newest per key. */
static int load_record(void *arg, const seg_rec *r)
{
    load_ctx *c = arg;
    idx_loc loc = {c->s, (uint32_t)r->off, r->vlen, r->seq, r->flags}, old;
    bool tomb = r->flags & REC_TOMBSTONE;
    int res;

    if (r->seq < c->s->min_seq)
        c->s->min_seq = r->seq;
    if (r->seq > c->s->max_seq)
        c->s->max_seq = r->seq;
    uint64_t top = __atomic_load_n(&c->db->seq, __ATOMIC_RELAXED); /* loaders run in parallel */
    while (r->seq > top &&
           !__atomic_compare_exchange_n(&c->db->seq, &top, r->seq, true, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
        ;
    res = idx_put_newer(c->db->idx, r->key, r->klen, &loc, &old);
    if (res < 0)
        return res;
    /* Every few thousand records: leave the read section (a resize waits for readers) and
     * grow the table as the keys come in, rather than trusting its automatic resize. */
    if ((++c->loaded & 0xfff) == 0) {
        rcu_read_unlock();
        idx_resize_if_needed(c->db->idx);
        rcu_read_lock();
    }
    /* A tombstone's bytes are dead from the start; a set's once something newer wins. */
    if (res == 2 || tomb)
        log_mark_dead(c->s, r->len);
    if (res == 1 && !(old.flags & REC_TOMBSTONE))
        log_mark_dead(old.seg, rec_len(r->klen, old.vlen));
    /* count the tombstones standing in the index, so that none means no sweep at the end */
    if (res != 2)
        __atomic_add_fetch(c->tombstones,
                           (tomb ? 1 : 0) - (res == 1 && (old.flags & REC_TOMBSTONE) ? 1 : 0),
                           __ATOMIC_RELAXED);
    return 0;
}

static int load_sealed(logdb *db, seg *s)
{
    load_ctx c = {db, s, 0, &db->recovered_tombstones};
    seg_scan_result res;
    rcu_read_lock(); /* one outer section: each insert's own lock nests at no cost */
    int rc = hint_load(db->dir, s, load_record, &c);
    rcu_read_unlock();

    if (rc == 0)
        return 0;
    if (rc != KVS_ENOTFOUND && rc != KVS_ECORRUPT)
        return rc;
    if (rc == KVS_ECORRUPT)
        LOG_WARN("%s; scanning the segment instead", kvs_last_error());
    rcu_read_lock();
    rc = seg_scan(s, load_record, &c, &res);
    rcu_read_unlock();
    if (rc < 0)
        return rc;
    if (res.tail_bytes)
        LOG_WARN("%s: damaged tail of %llu bytes at offset %llu fails its checksum; not served",
                 s->path, (unsigned long long)res.tail_bytes, (unsigned long long)res.valid_end);
    log_mark_dead(s, res.tail_bytes + res.corrupt_bytes);
    if (hint_write(db->dir, s) < 0)
        LOG_WARN("%s: cannot rewrite its hint: %s", s->path, kvs_last_error());
    return 0;
}

static bool all_zero(const seg *s, uint64_t from)
{
    for (uint64_t i = from; i < s->size; i++)
        if (s->map[i])
            return false;
    return true;
}

/*
 * Sealed segments load in parallel, one segment per thread at a time: the index takes
 * concurrent inserts, "newest seq wins" is decided per key by the index itself whatever order
 * the segments come in, and the shared figures (last seq, dead bytes, tombstone count) are
 * atomics. The active segment, which may need truncating, is loaded alone afterwards.
 */
#define LOADERS_MAX 4

typedef struct loaders {
    logdb *db;
    uint32_t next; /* atomic: the next segment index to take */
    int rc;        /* first failure (under mu) */
    char err[256];
    pthread_mutex_t mu;
} loaders;

static void *loader_main(void *arg)
{
    loaders *l = arg;
    logdb *db = l->db;

    for (;;) {
        uint32_t i = __atomic_fetch_add(&l->next, 1, __ATOMIC_RELAXED);
        if (i >= db->nsegs)
            break;
        seg *s = db->segs[i];
        if (s == db->active)
            continue;
        int rc = load_sealed(db, s);
        if (rc < 0) {
            pthread_mutex_lock(&l->mu);
            if (l->rc == 0) {
                l->rc = rc;
                snprintf(l->err, sizeof l->err, "%s", kvs_last_error());
            }
            pthread_mutex_unlock(&l->mu);
            __atomic_store_n(&l->next, db->nsegs, __ATOMIC_RELAXED); /* stop the others */
            break;
        }
    }
    return NULL;
}

static int load_all_sealed(logdb *db)
{
    loaders l = {db, 0, 0, "", PTHREAD_MUTEX_INITIALIZER};
    pthread_t t[LOADERS_MAX];
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int n = cores < 1 ? 1 : cores > LOADERS_MAX ? LOADERS_MAX : (int)cores, started = 0;

    if (db->nsegs < 3)
        n = 1;
    for (int i = 1; i < n; i++)
        if (pthread_create(&t[started], NULL, loader_main, &l) == 0)
            started++;
    loader_main(&l); /* this thread loads too */
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    pthread_mutex_destroy(&l.mu);
    if (l.rc < 0)
        return kvs_seterr(l.rc, "%s", l.err);
    return 0;
}

static int load_active(logdb *db, seg *s)
{
    load_ctx c = {db, s, 0, &db->recovered_tombstones};
    seg_scan_result res;
    int rc;

    rcu_read_lock();
    rc = seg_scan(s, load_record, &c, &res);
    rcu_read_unlock();
    if (rc < 0)
        return rc;
    log_mark_dead(s, res.corrupt_bytes);
    if (res.tail_bytes) {
        /* Zeros are room the file was given ahead of writes that never came; anything else is
         * a write torn by a crash. */
        if (all_zero(s, res.valid_end))
            LOG_DEBUG("%s: dropping %llu preallocated bytes", s->path,
                      (unsigned long long)res.tail_bytes);
        else
            LOG_WARN("%s: torn tail: truncating %llu bytes at offset %llu", s->path,
                     (unsigned long long)res.tail_bytes, (unsigned long long)res.valid_end);
        if (ftruncate(s->fd, (off_t)res.valid_end) < 0)
            return kvs_seterr(KVS_EIO, "truncate %s: %s", s->path, strerror(errno));
        if ((rc = io_fdatasync(s->fd, s->path)) < 0)
            return rc;
        s->size = res.valid_end;
    }
    return seg_make_writable(s, db->opt.segment_size);
}

/* Is name a file of ours that the manifest does not keep? Tracks the highest id seen. */
static bool is_leftover(const char *name, const man_state *st, uint32_t *max_id)
{
    uint32_t id = seg_parse_name(name, "log");

    if (!id)
        id = seg_parse_name(name, "hint");
    if (!id)
        id = seg_parse_name(name, "hint.tmp");
    if (id && id > *max_id)
        *max_id = id;
    if (id)
        return !man_state_has(st, id) || strstr(name, ".tmp");
    size_t n = strlen(name);
    return n > 4 && strcmp(name + n - 4, ".tmp") == 0;
}

static int remove_leftovers(logdb *db, const man_state *st, uint32_t *max_id)
{
    DIR *d = opendir(db->dir);
    struct dirent *de;
    char path[PATH_MAX];
    int removed = 0;

    if (!d)
        return kvs_seterr(kvs_errno(errno), "open directory %s: %s", db->dir, strerror(errno));
    while ((de = readdir(d)) != NULL) {
        if (!is_leftover(de->d_name, st, max_id))
            continue;
        if (io_join(path, sizeof path, db->dir, de->d_name) < 0)
            continue;
        LOG_INFO("removing %s: not named by the manifest (an unfinished step)", path);
        if (unlink(path) == 0)
            removed++;
    }
    closedir(d);
    return removed ? io_fsync_dir(db->dir) : 0;
}

static bool dir_has_segments(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    bool found = false;

    if (!d)
        return false;
    while (!found && (de = readdir(d)) != NULL)
        found = seg_parse_name(de->d_name, "log") != 0;
    closedir(d);
    return found;
}

static int create_fresh(logdb *db)
{
    const uint32_t first = 1;
    seg *s;
    int rc;

    if (dir_has_segments(db->dir))
        return kvs_seterr(KVS_ECORRUPT, "%s holds segment files but no MANIFEST", db->dir);
    if ((rc = seg_create(db->dir, first, db->opt.segment_size, &s)) < 0)
        return rc;
    if ((rc = man_reset(db->dir, &db->man, first, &first, 1)) < 0 ||
        (rc = log_segs_add(db, s)) < 0) {
        seg_destroy(s);
        return rc;
    }
    db->active = s;
    db->next_id = first + 1;
    return 0;
}

int log_recover(logdb *db)
{
    man_state st;
    uint32_t max_id = 0;
    int rc = man_open(db->dir, &db->man, &st);

    if (rc == KVS_ENOTFOUND)
        return create_fresh(db);
    if (rc < 0)
        return rc;
    if ((rc = remove_leftovers(db, &st, &max_id)) < 0)
        goto out;
    db->next_id = (st.max_id > max_id ? st.max_id : max_id) + 1;
    for (uint32_t i = 0; i < st.n; i++) {
        seg *s;
        if ((rc = seg_open(db->dir, st.ids[i], st.ids[i] == st.active, &s)) < 0)
            goto out;
        if ((rc = log_segs_add(db, s)) < 0) {
            seg_close(s);
            goto out;
        }
        if (s->id == st.active)
            db->active = s;
    }
    if ((rc = load_all_sealed(db)) < 0)
        goto out;
    if ((rc = load_active(db, db->active)) < 0)
        goto out;
    if (db->recovered_tombstones > 0)
        idx_drop_tombstones(db->idx);
    idx_resize_if_needed(db->idx);
    rc = log_manifest_maybe_reset(db);
out:
    man_state_free(&st);
    return rc;
}
