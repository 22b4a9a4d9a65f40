/*
 * segment.c — creating, opening, scanning and destroying segment files (format in segment.h).
 *
 * Scanning maps the file read-only and walks it record by record. Every record must decode within
 * bounds and match its checksum. When one does not, the scanner looks for the next offset where a
 * valid record starts — first where the damaged header says the record ends (a flipped value
 * byte), then byte by byte — and reports the skipped span. If nothing valid follows, the span is
 * a tail: on the active segment that is a torn write, which recovery truncates.
 */
#include "engine/log/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kvs.h"
#include "util/checksum.h"
#include "util/err.h"
#include "util/io.h"
#include "util/log.h"

void seg_name(char *out, size_t cap, uint32_t id, const char *suffix)
{
    snprintf(out, cap, "%06u.%s", id, suffix);
}

uint32_t seg_parse_name(const char *name, const char *suffix)
{
    char *end;
    unsigned long id;

    if (name[0] < '0' || name[0] > '9')
        return 0;
    errno = 0;
    id = strtoul(name, &end, 10);
    if (errno || id == 0 || id > UINT32_MAX || end - name < 6 || *end != '.')
        return 0;
    if (strcmp(end + 1, suffix) != 0)
        return 0;
    return (uint32_t)id;
}

static seg *seg_alloc(const char *dir, uint32_t id)
{
    char name[SEG_NAME_MAX];
    size_t n = strlen(dir) + SEG_NAME_MAX + 2;
    seg *s = calloc(1, sizeof *s + n);

    if (!s)
        return NULL;
    seg_name(name, sizeof name, id, "log");
    snprintf(s->path, n, "%s/%s", dir, name);
    s->id = id;
    s->fd = -1;
    s->min_seq = UINT64_MAX;
    return s;
}

static void seg_header(unsigned char h[SEG_HDR], uint32_t id)
{
    le_put32(h, SEG_MAGIC);
    le_put16(h + 4, SEG_VERSION);
    le_put16(h + 6, 0);
    le_put32(h + 8, id);
    le_put32(h + 12, cksum32(h, 12));
}

#define SEG_GROW (256u << 10) /* the active file grows ahead of the writes in steps this big */

int seg_reserve(seg *s, uint64_t end)
{
    if (end <= s->alloc)
        return 0;
    if (end > s->map_len)
        return kvs_seterr(KVS_EINVAL, "%s: %llu bytes is past the capacity mapped", s->path,
                          (unsigned long long)end);
    uint64_t want = (end + SEG_GROW - 1) / SEG_GROW * SEG_GROW;
    if (want > s->map_len)
        want = s->map_len;
    int e = posix_fallocate(s->fd, (off_t)s->alloc, (off_t)(want - s->alloc));
    if (e != 0)
        return kvs_seterr(kvs_errno(e), "%s: cannot grow to %llu bytes: %s", s->path,
                          (unsigned long long)want, strerror(e));
    /* Fault the new pages in now, in one call, rather than one page fault per 4 KiB inside
     * the writers' memcpy (best effort: older kernels lack MADV_POPULATE_WRITE). */
#ifdef MADV_POPULATE_WRITE
    uint64_t from = s->alloc & ~(uint64_t)4095; /* madvise wants a page-aligned start */
    madvise(s->map + from, want - from, MADV_POPULATE_WRITE);
#endif
    s->alloc = want;
    return 0;
}

int seg_make_writable(seg *s, uint64_t cap)
{
    if (cap < s->size)
        cap = s->size;
    if (s->map)
        munmap(s->map, s->map_len);
    s->map = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
    if (s->map == MAP_FAILED) {
        s->map = NULL;
        return kvs_seterr(kvs_errno(errno), "mmap %s: %s", s->path, strerror(errno));
    }
    s->map_len = cap;
    s->alloc = s->size;
    s->writable = true;
    s->sealed = false;
    return 0;
}

int seg_map(seg *s)
{
    if (s->size == 0)
        return 0;
    s->map = mmap(NULL, s->size, PROT_READ, MAP_SHARED, s->fd, 0);
    if (s->map == MAP_FAILED) {
        s->map = NULL;
        return kvs_seterr(kvs_errno(errno), "mmap %s: %s", s->path, strerror(errno));
    }
    s->map_len = s->size;
    return 0;
}

int seg_seal(seg *s)
{
    if (s->alloc > s->size && ftruncate(s->fd, (off_t)s->size) < 0)
        return kvs_seterr(kvs_errno(errno), "truncate %s: %s", s->path, strerror(errno));
    s->alloc = s->size;
    s->sealed = true;
    /* The mapping stays (readers may be in it); its pages leave this process's resident set. */
    if (s->map)
        madvise(s->map, s->map_len, MADV_DONTNEED);
    return 0;
}

int seg_create(const char *dir, uint32_t id, uint64_t cap, seg **out)
{
    unsigned char h[SEG_HDR];
    seg *s = seg_alloc(dir, id);
    int rc;

    *out = NULL;
    if (!s)
        return KVS_ENOMEM;
    s->fd = open(s->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (s->fd < 0) {
        rc = kvs_seterr(kvs_errno(errno), "create %s: %s", s->path, strerror(errno));
        goto fail;
    }
    seg_header(h, id);
    if ((rc = io_pwrite_full(s->fd, h, SEG_HDR, 0, s->path)) < 0)
        goto fail_unlink;
    s->size = s->alloc = SEG_HDR;
    if (cap && ((rc = seg_make_writable(s, cap)) < 0 || (rc = seg_reserve(s, SEG_HDR + 1)) < 0))
        goto fail_unlink;
    if ((rc = io_fdatasync(s->fd, s->path)) < 0 || (rc = io_fsync_dir(dir)) < 0)
        goto fail_unlink;
    *out = s;
    return 0;
fail_unlink:
    unlink(s->path);
fail:
    seg_close(s);
    return rc;
}

int seg_open(const char *dir, uint32_t id, bool writable, seg **out)
{
    unsigned char h[SEG_HDR];
    seg *s = seg_alloc(dir, id);
    int64_t size;
    ssize_t n;
    int rc;

    *out = NULL;
    if (!s)
        return KVS_ENOMEM;
    s->fd = open(s->path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (s->fd < 0) {
        rc = kvs_seterr(errno == ENOENT ? KVS_ECORRUPT : KVS_EIO, "open %s: %s", s->path,
                        strerror(errno));
        goto fail;
    }
    if ((size = io_file_size(s->fd, s->path)) < 0) {
        rc = (int)size;
        goto fail;
    }
    if ((n = io_pread_full(s->fd, h, SEG_HDR, 0, s->path)) < 0) {
        rc = (int)n;
        goto fail;
    }
    if (n < (ssize_t)SEG_HDR || le_get32(h) != SEG_MAGIC || le_get32(h + 12) != cksum32(h, 12)) {
        rc = kvs_seterr(KVS_ECORRUPT, "%s: not a kvs segment (bad header)", s->path);
        goto fail;
    }
    if (le_get16(h + 4) != SEG_VERSION) {
        rc = kvs_seterr(KVS_EVERSION, "%s: segment format version %u, this build reads %u",
                        s->path, le_get16(h + 4), SEG_VERSION);
        goto fail;
    }
    if (le_get32(h + 8) != id) {
        rc = kvs_seterr(KVS_ECORRUPT, "%s: header says segment %u", s->path, le_get32(h + 8));
        goto fail;
    }
    s->size = s->alloc = (uint64_t)size;
    s->sealed = !writable;
    if ((rc = seg_map(s)) < 0)
        goto fail;
    *out = s;
    return 0;
fail:
    seg_close(s);
    return rc;
}

void seg_close(seg *s)
{
    if (!s)
        return;
    if (s->map)
        munmap(s->map, s->map_len);
    if (s->fd >= 0)
        close(s->fd);
    free(s);
}

void seg_destroy(seg *s)
{
    char hint[PATH_MAX];
    size_t n = strlen(s->path);

    snprintf(hint, sizeof hint, "%.*shint", (int)(n - 3), s->path);
    unlink(s->path);
    unlink(hint);
    seg_close(s);
}

/* Does a valid record start at off? Fills r if so. */
static bool rec_at(const unsigned char *base, uint64_t size, uint64_t off, seg_rec *r)
{
    rec_hdr h;

    if (size - off < REC_HDR || !rec_decode(base + off, &h))
        return false;
    if (rec_len(h.klen, h.vlen) > size - off)
        return false;
    r->key = base + off + REC_HDR;
    r->val = r->key + h.klen;
    if (!rec_verify(base + off, r->key, h.klen, r->val, h.vlen))
        return false;
    r->off = off;
    r->len = rec_len(h.klen, h.vlen);
    r->seq = h.seq;
    r->flags = h.flags;
    r->klen = h.klen;
    r->vlen = h.vlen;
    return true;
}

/* The next offset after a damaged record at off where a valid record starts, or size. */
static uint64_t resync(const unsigned char *base, uint64_t size, uint64_t off, seg_rec *r)
{
    rec_hdr h;

    if (size - off >= REC_HDR) {
        rec_decode(base + off, &h);
        uint64_t next = off + rec_len(h.klen, h.vlen);
        if (next > off + REC_HDR && next < size && rec_at(base, size, next, r))
            return next;
    }
    for (uint64_t p = off + 1; p + REC_HDR <= size; p++)
        if (rec_at(base, size, p, r))
            return p;
    return size;
}

int seg_scan(const seg *s, seg_scan_fn fn, void *ctx, seg_scan_result *res)
{
    unsigned char *base = NULL;
    uint64_t size = s->size, off = SEG_HDR;
    seg_rec r;
    int rc = 0;

    memset(res, 0, sizeof *res);
    res->valid_end = SEG_HDR;
    if (size <= SEG_HDR)
        return 0;
    base = mmap(NULL, size, PROT_READ, MAP_PRIVATE, s->fd, 0);
    if (base == MAP_FAILED)
        return kvs_seterr(KVS_EIO, "mmap %s: %s", s->path, strerror(errno));
    madvise(base, size, MADV_SEQUENTIAL);
    while (off < size) {
        if (!rec_at(base, size, off, &r)) {
            uint64_t next = resync(base, size, off, &r);
            if (next >= size) {
                res->tail_bytes = size - off;
                break;
            }
            LOG_WARN("%s: damaged record at offset %llu: %llu bytes fail their checksum and are "
                     "skipped",
                     s->path, (unsigned long long)off, (unsigned long long)(next - off));
            res->corrupt_bytes += next - off;
            off = next;
        }
        res->records++;
        if ((rc = fn(ctx, &r)) < 0)
            break;
        off += r.len;
        res->valid_end = off;
    }
    munmap(base, size);
    return rc;
}
