/*
 * manifest.c — reading, appending and rewriting the MANIFEST (format in manifest.h).
 *
 * Replay turns the edits into a man_state: the live ids, the active one, every id ever dropped,
 * and where a damaged last edit begins. It never changes the file: what to do about a damaged
 * last edit depends on the segment files, which recovery judges first. Appends go at the end of
 * the last valid edit and are synced before they return; a failed append is cut off again.
 * Rewriting (man_reset) builds the new file beside the old one and switches to it only once it
 * is in place, so the handle always appends to a whole manifest.
 */
#include "engine/log/manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvs.h"
#include "util/array.h"
#include "util/checksum.h"
#include "util/err.h"
#include "util/io.h"
#include "util/log.h"

#define MAN_MAX_SIZE (256u << 20)

/* Encode an edit into a new buffer; *len gets its size. */
static unsigned char *man_encode(uint32_t active, const uint32_t *add, uint32_t n_add,
                                 const uint32_t *drop, uint32_t n_drop, size_t *len)
{
    size_t n = MAN_EDIT_HDR + 4 * ((size_t)n_add + n_drop);
    unsigned char *b = malloc(n), *p;

    if (!b)
        return NULL;
    le_put32(b + 4, (uint32_t)(n - 8));
    le_put32(b + 8, active);
    le_put32(b + 12, n_add);
    le_put32(b + 16, n_drop);
    p = b + MAN_EDIT_HDR;
    for (uint32_t i = 0; i < n_add; i++, p += 4)
        le_put32(p, add[i]);
    for (uint32_t i = 0; i < n_drop; i++, p += 4)
        le_put32(p, drop[i]);
    le_put32(b, cksum32(b + 4, n - 4));
    *len = n;
    return b;
}

/* Is id in the ascending array ids[0..n)? */
static int ids_has(const uint32_t *ids, uint32_t n, uint32_t id)
{
    uint32_t lo = 0, hi = n;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (ids[mid] == id)
            return 1;
        if (ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* Insert id into the ascending array *ids (n used, cap allocated); -1 if it is there already. */
static int ids_insert(uint32_t **ids, uint32_t *n, size_t *cap, uint32_t id)
{
    uint32_t i;

    if (ids_has(*ids, *n, id))
        return -1;
    if (ARR_RESERVE(*ids, *cap, (size_t)*n + 1) < 0)
        return KVS_ENOMEM;
    for (i = *n; i > 0 && (*ids)[i - 1] > id; i--)
        (*ids)[i] = (*ids)[i - 1];
    (*ids)[i] = id;
    (*n)++;
    return 0;
}

int man_state_has(const man_state *st, uint32_t id)
{
    return ids_has(st->ids, st->n, id);
}

int man_state_dropped(const man_state *st, uint32_t id)
{
    return ids_has(st->dropped, st->ndropped, id);
}

static int state_add(man_state *st, uint32_t id)
{
    int rc = ids_insert(&st->ids, &st->n, &st->cap, id);

    if (rc == 0 && id > st->max_id)
        st->max_id = id;
    return rc;
}

/* Drop a live id, remembering that it was dropped. */
static int state_drop(man_state *st, uint32_t id)
{
    for (uint32_t i = 0; i < st->n; i++)
        if (st->ids[i] == id) {
            memmove(st->ids + i, st->ids + i + 1, (st->n - i - 1) * sizeof *st->ids);
            st->n--;
            /* ids are never added twice, so it cannot be in dropped already */
            return ids_insert(&st->dropped, &st->ndropped, &st->capdropped, id) == KVS_ENOMEM
                       ? KVS_ENOMEM
                       : 0;
        }
    return -1;
}

/* Apply one verified edit at p (payload of plen bytes). */
static int apply_edit(man_state *st, const unsigned char *p, uint32_t plen, const char *path,
                      uint64_t off)
{
    uint32_t active = le_get32(p), na = le_get32(p + 4), nd = le_get32(p + 8);
    const unsigned char *ids = p + 12;

    if (na > MAN_MAX_IDS || nd > MAN_MAX_IDS || plen != 12 + 4 * (na + nd))
        return kvs_seterr(KVS_ECORRUPT, "%s: edit at offset %llu is malformed", path,
                          (unsigned long long)off);
    for (uint32_t i = 0; i < na; i++) {
        int rc = state_add(st, le_get32(ids + 4 * i));
        if (rc == KVS_ENOMEM)
            return rc;
        if (rc < 0 || le_get32(ids + 4 * i) == 0)
            return kvs_seterr(KVS_ECORRUPT, "%s: edit at offset %llu adds segment %u twice", path,
                              (unsigned long long)off, le_get32(ids + 4 * i));
    }
    for (uint32_t i = 0; i < nd; i++) {
        int rc = state_drop(st, le_get32(ids + 4 * (na + i)));
        if (rc == KVS_ENOMEM)
            return rc;
        if (rc < 0)
            return kvs_seterr(KVS_ECORRUPT, "%s: edit at offset %llu drops unknown segment %u",
                              path, (unsigned long long)off, le_get32(ids + 4 * (na + i)));
    }
    if (active)
        st->active = active;
    if (st->active && !man_state_has(st, st->active))
        return kvs_seterr(KVS_ECORRUPT, "%s: edit at offset %llu leaves active segment %u dead",
                          path, (unsigned long long)off, st->active);
    return 0;
}

/* Is there a whole, valid edit at off? */
static int edit_at(const unsigned char *b, uint64_t size, uint64_t off, uint32_t *plen)
{
    if (size - off < 8)
        return 0;
    *plen = le_get32(b + off + 4);
    if (*plen < 12 || *plen > size - off - 8)
        return 0;
    return le_get32(b + off) == cksum32(b + off + 4, (size_t)*plen + 4);
}

static int replay(const unsigned char *b, uint64_t size, manifest *m, man_state *st)
{
    uint64_t off = MAN_HDR;
    uint32_t plen;
    int rc;

    while (off < size) {
        if (!edit_at(b, size, off, &plen)) {
            for (uint64_t p = off + 1; p + MAN_EDIT_HDR <= size; p++)
                if (edit_at(b, size, p, &plen))
                    return kvs_seterr(KVS_ECORRUPT,
                                      "%s: damaged edit at offset %llu with valid edits after it",
                                      m->path, (unsigned long long)off);
            /* Torn, or damaged since it was written: either way its change is lost. Which
             * files it may have named is for recovery to judge; the bytes stay until then. */
            LOG_WARN("%s: torn edit at the end (or a last edit damaged since): %llu bytes at "
                     "offset %llu are not a valid edit; what it changed is lost",
                     m->path, (unsigned long long)(size - off), (unsigned long long)off);
            st->lost_off = off;
            st->lost_bytes = size - off;
            break;
        }
        if ((rc = apply_edit(st, b + off + 8, plen, m->path, off)) < 0)
            return rc;
        m->edits++;
        off += 8 + (uint64_t)plen;
    }
    m->size = off;
    return 0;
}

int man_open(const char *dir, manifest *m, man_state *st)
{
    char *buf = NULL;
    size_t len;
    int rc;

    memset(st, 0, sizeof *st);
    memset(m, 0, sizeof *m);
    m->fd = -1;
    if ((rc = io_join(m->path, sizeof m->path, dir, MAN_FILE)) < 0)
        return rc;
    if ((rc = io_read_file(m->path, MAN_MAX_SIZE, &buf, &len)) < 0)
        return rc;
    const unsigned char *b = (const unsigned char *)buf;
    if (len < MAN_HDR || le_get32(b) != MAN_MAGIC) {
        rc = kvs_seterr(KVS_ECORRUPT, "%s: not a kvs manifest", m->path);
        goto out;
    }
    if (le_get16(b + 4) != MAN_VERSION) {
        rc = kvs_seterr(KVS_EVERSION, "%s: manifest version %u, this build reads %u", m->path,
                        le_get16(b + 4), MAN_VERSION);
        goto out;
    }
    m->fd = open(m->path, O_RDWR | O_CLOEXEC);
    if (m->fd < 0) {
        rc = kvs_seterr(kvs_errno(errno), "open %s: %s", m->path, strerror(errno));
        goto out;
    }
    rc = replay(b, len, m, st);
    if (rc == 0 && !st->active)
        rc = kvs_seterr(KVS_ECORRUPT, "%s: names no active segment", m->path);
out:
    free(buf);
    if (rc < 0) {
        man_close(m);
        man_state_free(st);
    }
    return rc;
}

int man_walk(const char *dir, man_bad_fn bad, void *ctx, man_state *st, uint32_t *edits)
{
    char path[PATH_MAX], *buf = NULL, what[512];
    size_t len;
    uint32_t plen;
    int rc;

    memset(st, 0, sizeof *st);
    *edits = 0;
    if ((rc = io_join(path, sizeof path, dir, MAN_FILE)) < 0 ||
        (rc = io_read_file(path, MAN_MAX_SIZE, &buf, &len)) < 0)
        return rc;
    const unsigned char *b = (const unsigned char *)buf;
    if (len < MAN_HDR || le_get32(b) != MAN_MAGIC || le_get16(b + 4) != MAN_VERSION) {
        bad(ctx, 0, len < MAN_HDR || le_get32(b) != MAN_MAGIC ? "not a kvs manifest (header)"
                                                              : "manifest version unknown");
        free(buf);
        return kvs_seterr(KVS_ECORRUPT, "%s: bad header", path);
    }
    for (uint64_t off = MAN_HDR; off < len;) {
        if (!edit_at(b, len, off, &plen)) {
            uint64_t next = off + 1;
            while (next + MAN_EDIT_HDR <= len && !edit_at(b, len, next, &plen))
                next++;
            if (next + MAN_EDIT_HDR > len)
                next = len;
            snprintf(what, sizeof what, "%s edit: %llu bytes that are not a valid edit (its "
                     "checksum or length fails)%s", next == len ? "torn or damaged last" :
                     "damaged", (unsigned long long)(next - off),
                     next == len ? "" : "; valid edits follow it");
            bad(ctx, off, what);
            off = next;
            continue;
        }
        if ((rc = apply_edit(st, b + off + 8, plen, path, off)) == KVS_ENOMEM)
            break;
        if (rc < 0)
            bad(ctx, off, kvs_last_error());
        else
            (*edits)++;
        off += 8 + (uint64_t)plen;
    }
    free(buf);
    if (rc == KVS_ENOMEM)
        man_state_free(st);
    return rc == KVS_ENOMEM ? rc : 0;
}

int man_drop_tail(manifest *m)
{
    LOG_WARN("%s: cutting off the lost edit at offset %llu", m->path,
             (unsigned long long)m->size);
    if (ftruncate(m->fd, (off_t)m->size) < 0)
        return kvs_seterr(kvs_errno(errno), "truncate %s: %s", m->path, strerror(errno));
    return io_fdatasync(m->fd, m->path);
}

/* The new manifest's bytes: header and one edit (active, ids). */
static unsigned char *man_file(uint32_t active, const uint32_t *ids, uint32_t n, size_t *len)
{
    size_t elen;
    unsigned char *edit = man_encode(active, ids, n, NULL, 0, &elen), *file;

    if (!edit)
        return NULL;
    file = calloc(1, MAN_HDR + elen);
    if (file) {
        le_put32(file, MAN_MAGIC);
        le_put16(file + 4, MAN_VERSION);
        memcpy(file + MAN_HDR, edit, elen);
        *len = MAN_HDR + elen;
    }
    free(edit);
    return file;
}

/*
 * The new file is written and synced beside the old one, then renamed over it; the fd it was
 * written through becomes the one appends go to. Until the rename, m keeps appending to the old
 * manifest (a failure here leaves it in use and whole); after it, only the new file is the
 * MANIFEST, so m switches to it even if the directory sync then fails.
 */
int man_reset(const char *dir, manifest *m, uint32_t active, const uint32_t *ids, uint32_t n)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    size_t len = 0;
    unsigned char *file = man_file(active, ids, n, &len);
    int fd = -1, rc;

    if (!file)
        return KVS_ENOMEM;
    if ((rc = io_join(path, sizeof path, dir, MAN_FILE)) < 0 ||
        (rc = io_join(tmp, sizeof tmp, dir, MAN_FILE ".tmp")) < 0)
        goto out;
    fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = kvs_seterr(kvs_errno(errno), "create %s: %s", tmp, strerror(errno));
        goto out;
    }
    rc = io_pwrite_full(fd, file, len, 0, tmp);
    if (rc == 0)
        rc = io_fdatasync(fd, tmp);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = kvs_seterr(kvs_errno(errno), "rename %s: %s", tmp, strerror(errno));
    if (rc < 0) {
        close(fd);
        unlink(tmp);
        goto out;
    }
    man_close(m);
    m->fd = fd;
    m->size = len;
    m->edits = 1;
    memcpy(m->path, path, sizeof path);
    rc = io_fsync_dir(dir);
out:
    free(file);
    return rc;
}

int man_append(manifest *m, uint32_t active, const uint32_t *add, uint32_t n_add,
               const uint32_t *drop, uint32_t n_drop)
{
    size_t len;
    unsigned char *b = man_encode(active, add, n_add, drop, n_drop, &len);
    int rc;

    if (!b)
        return KVS_ENOMEM;
    rc = io_pwrite_full(m->fd, b, len, m->size, m->path);
    free(b);
    if (rc == 0)
        rc = io_fdatasync(m->fd, m->path);
    if (rc < 0) {
        /* Leave no half edit behind for the next append to follow. */
        if (ftruncate(m->fd, (off_t)m->size) < 0)
            LOG_ERROR("%s: cannot truncate a failed edit: %s", m->path, strerror(errno));
        return rc;
    }
    m->size += len;
    m->edits++;
    return 0;
}

void man_close(manifest *m)
{
    if (m->fd >= 0)
        close(m->fd);
    m->fd = -1;
}

void man_state_free(man_state *st)
{
    free(st->ids);
    free(st->dropped);
    memset(st, 0, sizeof *st);
}
