/*
 * repair.c — kvs_repair: salvage a store of the log engine into a new directory (kvs.h says what
 * is kept and what is dropped).
 *
 * The reading is verify.c's walk in salvage mode: every segment the MANIFEST's valid edits name,
 * and every segment file no edit names or dropped (what a lost or damaged edit may have added:
 * a rotation's segment holds acknowledged writes; a compaction's uncommitted outputs hold only
 * copies, whose seqs lose to nothing and win nothing). Segments an edit dropped are left out: a
 * compaction that dropped them may also have dropped the tombstones that kept their records
 * dead. Every damaged record and unreadable region is a finding of the walk, at its file and
 * offset. What stands per key is the salvage table's newest intact record; a key whose newest
 * record was damaged is said once more, with what stood in for it.
 *
 * The new store is written through kvs.h (salv_write_store), keys in seq order with their expiry
 * times, synced and closed: it opens as any store does, and it is the code that reads stores
 * that wrote it. dest must be new or empty, and is removed again (what the run put there) if the
 * run fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/log/logdb.h"
#include "engine/log/verify.h"
#include "util/err.h"

/* The keys to write, oldest write first; the others counted, the damaged ones said. */
static int choose(walk *w, uint64_t now, kvs_repair_report *rep, salv_rec **out, size_t *n)
{
    salv_rec *v = malloc((w->keys.n ? w->keys.n : 1) * sizeof *v);
    size_t k = 0;

    if (!v)
        return kvs_seterr(KVS_ENOMEM, "no memory for %zu keys", w->keys.n);
    for (size_t i = 0; i < w->keys.cap; i++) {
        const salv_key *e = &w->keys.tab[i];
        if (!e->best.key)
            continue;
        if (e->dseq) {
            rep->damaged_keys++;
            const char *name = strrchr(w->segs[e->dseg]->path, '/');
            walk_finding(w, 1, name ? name + 1 : w->segs[e->dseg]->path, e->doff,
                         "the newest record of its key (%u bytes, seq %llu) is damaged: %s",
                         e->best.klen, (unsigned long long)e->dseq,
                         !e->best.seq ? "the key is left out"
                         : e->best.flags & REC_TOMBSTONE ? "an older removal stands: left out"
                                                         : "an older value stands in");
        }
        if (!e->best.seq)
            continue;
        if (e->best.flags & REC_TOMBSTONE)
            rep->removed++;
        else if (ldb_expired(e->best.expire_ms, now))
            rep->expired++;
        else
            v[k++] = e->best;
    }
    qsort(v, k, sizeof *v, salv_by_seq);
    *out = v;
    *n = k;
    return 0;
}

static int repair_locked(const char *dir, const char *dest, kvs_finding_fn fn, void *ctx,
                         kvs_repair_report *rep)
{
    walk w = {.dir = dir, .fn = fn, .ctx = ctx, .salvage = true};
    salv_rec *v = NULL;
    size_t n = 0;
    bool made;
    int rc;

    kvs_options opt;
    kvs_options_init(&opt);
    if ((rc = walk_dir(&w)) == 0 && (rc = choose(&w, kvs_clock_ms(&opt), rep, &v, &n)) == 0 &&
        (rc = kvs_dest_prepare(dest, &made)) == 0) {
        rc = salv_write_store(dest, v, n, NULL, NULL);
        if (rc < 0) {
            char why[1024];
            snprintf(why, sizeof why, "%s", kvs_last_error());
            kvs_dest_remove(dest, made);
            kvs_seterr(rc, "%s", why);
        }
    }
    rep->segments = w.nsegs;
    rep->records = w.records;
    rep->keys = rc == 0 ? n : 0;
    rep->dropped = w.dropped;
    rep->dropped_bytes = w.dropped_bytes;
    free(v);
    walk_free(&w);
    return rc;
}

int kvs_repair(const char *dir, const char *dest, kvs_finding_fn fn, void *ctx,
               kvs_repair_report *report)
{
    kvs_repair_report local;
    char engine[32];
    int fd, rc;

    kvs_clearerr();
    if (!report)
        report = &local;
    memset(report, 0, sizeof *report);
    if (!dir || !*dir || !dest || !*dest)
        return kvs_seterr(KVS_EINVAL, "kvs_repair: a directory and a destination are needed");
    if ((fd = kvs_dir_lock_shared(dir)) < 0)
        return fd == KVS_EBUSY ? kvs_seterr(KVS_EBUSY, "%s is open in a running store (a server?):"
                                            " stop it, or repair a checkpoint of it", dir)
                               : fd;
    if ((rc = kvs_dir_engine(dir, engine, sizeof engine)) == 0 && strcmp(engine, "kvs") != 0)
        rc = kvs_seterr(KVS_EINVAL, "%s: %s", dir, engine[0] ? "kvs repair reads stores of the "
                        "kvs engine (for lmdb: mdb_dump and mdb_load)" : "holds no store");
    if (rc == 0)
        rc = repair_locked(dir, dest, fn, ctx, report);
    close(fd);
    return rc;
}
