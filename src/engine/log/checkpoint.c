/*
 * checkpoint.c — kvs_checkpoint for the log engine: a copy of the open store made of hard links.
 *
 * Sealed segments and their hint files are never changed in place once written: a segment is
 * appended to only while it is active, a hint is written once through a temporary file and a
 * rename, and both are only ever unlinked (compaction's last step). So a hard link of a sealed
 * segment is a copy of it that costs a directory entry, and a store whose MANIFEST names such
 * links and nothing else holds exactly the writes those segments hold — provided no compaction
 * ran since the last rotation. Compaction judges a record dead by the index, which knows the
 * writes in the active segment too: run after a rotation, it may drop from a sealed segment a
 * record whose only newer version is in the new active segment, which a checkpoint leaves out
 * (a key overwritten after the rotation would be missing from it altogether — seen under
 * ThreadSanitizer's slow motion in test_backup). So cmu, which compaction and hint writing hold
 * for the whole of their work, deletions included, is taken before the rotation and held until
 * the links are made:
 *
 *   1. take cmu, then wmu: seal the active segment (ldb_rotate) if it holds a record — every
 *      write applied before the call, so every write acknowledged before it, is now in a sealed
 *      segment; release wmu;
 *   2. write the hint files sealed segments lack (ldb_write_pending_hints_locked, which syncs
 *      each segment before its hint), so that the copy opens without scans;
 *   3. wmu for a moment: list the live sealed segments; sync each (ldb_sync_seg: one sealed by
 *      writers since step 1 may not be synced yet; a failed sync fences the store as any would)
 *      and link it and its hint (if it has one) into dest; release cmu;
 *   4. in dest, create an empty segment of its own, with an id past every linked one, and a
 *      MANIFEST naming the linked segments and that one as active, then sync dest. The new
 *      store's appends go to its own file, never to a linked one.
 *
 * Holding cmu is also what keeps every listed segment (and its hint) from being deleted or
 * replaced while it is linked — the simpler of the two ways (a pin count per segment, checked by
 * compaction, is the other): it is held for milliseconds, compaction only waits, and no other
 * path frees a segment of an open store. Reads and writes take neither lock meanwhile but for
 * wmu's moments, so they go on.
 *
 * What the copy holds is what the listed segments hold: everything up to the last rotation
 * before step 3 — a prefix of the commit order, whole groups (a group never spans segments), no
 * compaction having looked past it — which includes every write applied before step 1. Hard links cannot cross file systems:
 * EXDEV is refused with a clear error rather than copying (a copy would be the second copy of
 * the data this exists to avoid; `cp -a` of a checkpoint makes one where one is wanted).
 * api.c owns dest's creation, its ENGINE file, and its removal on failure.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/log/logdb.h"
#include "util/err.h"
#include "util/io.h"
#include "util/log.h"

/* Link dir/NNNNNN.suffix to dest/NNNNNN.suffix; a missing hint (optional) is 0, not linked. */
static int link_file(const char *dir, const char *dest, uint32_t id, const char *suffix,
                     bool optional)
{
    char name[SEG_NAME_MAX], from[PATH_MAX], to[PATH_MAX];
    int rc;

    seg_name(name, sizeof name, id, suffix);
    if ((rc = io_join(from, sizeof from, dir, name)) < 0 ||
        (rc = io_join(to, sizeof to, dest, name)) < 0)
        return rc;
    if (link(from, to) == 0)
        return 0;
    if (errno == ENOENT && optional)
        return 0;
    if (errno == EXDEV)
        return kvs_seterr(KVS_EINVAL, "checkpoint: %s is on another file system than %s: a "
                          "checkpoint is made of hard links (choose a directory on the same "
                          "file system, then copy it if it must live elsewhere)", dest, dir);
    return kvs_seterr(kvs_errno(errno), "checkpoint: link %s to %s: %s", from, to,
                      strerror(errno));
}

/* Steps 1 and 2 (cmu held): seal what the active segment holds, and hint what is sealed. */
static int seal_active(logdb *db)
{
    int rc = 0;

    KVS_ASSERT(LDB_HOLDS(db, cmu));
    LDB_LOCK(db, wmu);
    if (db->stopping)
        rc = kvs_seterr(KVS_ECLOSED, "checkpoint: the store is closing");
    else if ((rc = ldb_fenced(db)) == 0 && db->active->size > SEG_HDR)
        rc = ldb_rotate(db, 0);
    LDB_UNLOCK(db, wmu);
    if (rc == 0)
        ldb_write_pending_hints_locked(db);
    return rc < 0 ? rc : ldb_fenced(db);
}

/* Step 3 (cmu held): the live sealed segments into *out (n of them), and the id dest's active
 * segment takes. */
static int list_sealed(logdb *db, seg ***out, uint32_t *n, uint32_t *active)
{
    seg **v;

    LDB_LOCK(db, wmu);
    v = malloc((db->nsegs + 1) * sizeof *v);
    *n = 0;
    *active = 0;
    for (uint32_t i = 0; v && i < db->nsegs; i++) {
        seg *s = db->segs[i];
        if (s == db->active || !s->sealed)
            continue;
        v[(*n)++] = s;
        if (s->id > *active)
            *active = s->id;
    }
    LDB_UNLOCK(db, wmu);
    *out = v;
    if (!v)
        return KVS_ENOMEM;
    if (*active >= LDB_SEG_ID_MAX)
        return kvs_seterr(KVS_ENOSPC, "checkpoint: segment ids are used up");
    (*active)++;
    return 0;
}

/* Step 3 (cmu held): sync and link the listed segments and their hints. */
static int link_sealed(logdb *db, const char *dest, seg **v, uint32_t n)
{
    int rc = 0;

    for (uint32_t i = 0; i < n && rc == 0; i++)
        if ((rc = ldb_sync_seg(db, v[i])) == 0 &&
            (rc = link_file(db->dir, dest, v[i]->id, "log", false)) == 0)
            rc = link_file(db->dir, dest, v[i]->id, "hint", true);
    return rc;
}

/* Step 4: dest's own empty active segment and its MANIFEST, synced. */
static int write_manifest(const char *dest, seg **v, uint32_t n, uint32_t active)
{
    uint32_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
    manifest m = {.fd = -1};
    seg *s = NULL;
    int rc;

    if (!ids)
        return KVS_ENOMEM;
    for (uint32_t i = 0; i < n; i++)
        ids[i] = v[i]->id;
    ids[n] = active; /* above every linked id: the list stays ascending */
    if ((rc = seg_create(dest, active, 0, &s)) == 0) {
        seg_close(s);
        rc = man_reset(dest, &m, active, ids, n + 1);
        man_close(&m);
    }
    free(ids);
    return rc == 0 ? io_fsync_dir(dest) : rc;
}

int ldb_checkpoint(logdb *db, const char *dest)
{
    seg **v = NULL;
    uint32_t n = 0, active = 0;
    int rc;

    KVS_ASSERT(!LDB_HOLDS(db, cmu) && !LDB_HOLDS(db, wmu));
    LDB_LOCK(db, cmu); /* from before the rotation: see above */
    if ((rc = seal_active(db)) == 0 && (rc = list_sealed(db, &v, &n, &active)) == 0)
        rc = link_sealed(db, dest, v, n);
    LDB_UNLOCK(db, cmu);
    if (rc == 0)
        rc = write_manifest(dest, v, n, active);
    if (rc == 0)
        LOG_INFO("checkpoint of %s in %s: %u segments linked", db->dir, dest, n);
    free(v);
    return rc;
}
