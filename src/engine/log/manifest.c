/*
 * manifest.c — reading, appending and rewriting the MANIFEST (format in manifest.h).
 */
#include "engine/log/manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvs.h"
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

int man_state_has(const man_state *st, uint32_t id)
{
    uint32_t lo = 0, hi = st->n;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (st->ids[mid] == id)
            return 1;
        if (st->ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

static int state_add(man_state *st, uint32_t id)
{
    uint32_t i;

    if (man_state_has(st, id))
        return -1;
    if (st->n == st->cap) {
        uint32_t cap = st->cap ? st->cap * 2 : 64;
        uint32_t *ids = realloc(st->ids, cap * sizeof *ids);
        if (!ids)
            return KVS_ENOMEM;
        st->ids = ids;
        st->cap = cap;
    }
    for (i = st->n; i > 0 && st->ids[i - 1] > id; i--)
        st->ids[i] = st->ids[i - 1];
    st->ids[i] = id;
    st->n++;
    if (id > st->max_id)
        st->max_id = id;
    return 0;
}

static int state_drop(man_state *st, uint32_t id)
{
    for (uint32_t i = 0; i < st->n; i++)
        if (st->ids[i] == id) {
            memmove(st->ids + i, st->ids + i + 1, (st->n - i - 1) * sizeof *st->ids);
            st->n--;
            return 0;
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
    for (uint32_t i = 0; i < nd; i++)
        if (state_drop(st, le_get32(ids + 4 * (na + i))) < 0)
            return kvs_seterr(KVS_ECORRUPT, "%s: edit at offset %llu drops unknown segment %u",
                              path, (unsigned long long)off, le_get32(ids + 4 * (na + i)));
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
            LOG_WARN("%s: torn edit at the end: truncating %llu bytes at offset %llu", m->path,
                     (unsigned long long)(size - off), (unsigned long long)off);
            if (ftruncate(m->fd, (off_t)off) < 0 || io_fdatasync(m->fd, m->path) < 0)
                return kvs_seterr(KVS_EIO, "truncate %s: %s", m->path, strerror(errno));
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

int man_reset(const char *dir, manifest *m, uint32_t active, const uint32_t *ids, uint32_t n)
{
    size_t elen;
    unsigned char *edit = man_encode(active, ids, n, NULL, 0, &elen), *file;
    int rc;

    if (!edit)
        return KVS_ENOMEM;
    file = calloc(1, MAN_HDR + elen);
    if (!file) {
        free(edit);
        return KVS_ENOMEM;
    }
    le_put32(file, MAN_MAGIC);
    le_put16(file + 4, MAN_VERSION);
    memcpy(file + MAN_HDR, edit, elen);
    free(edit);
    man_close(m);
    rc = io_join(m->path, sizeof m->path, dir, MAN_FILE);
    if (rc == 0)
        rc = io_write_file_atomic(dir, MAN_FILE, file, MAN_HDR + elen);
    free(file);
    if (rc < 0)
        return rc;
    m->fd = open(m->path, O_RDWR | O_CLOEXEC);
    if (m->fd < 0)
        return kvs_seterr(KVS_EIO, "open %s: %s", m->path, strerror(errno));
    m->size = MAN_HDR + elen;
    m->edits = 1;
    return 0;
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
    memset(st, 0, sizeof *st);
}
