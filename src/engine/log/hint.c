/*
 * hint.c — writing and loading hint files (format in hint.h).
 *
 * A hint is validated whole before any entry is handed out: the footer checksum first, then the
 * bounds of every entry against the segment it describes. So a caller never has to undo the
 * effect of half a hint.
 */
#include "engine/log/hint.h"

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

#define HINT_BUF (1u << 20)

typedef struct hint_writer {
    int fd;
    const char *path;
    unsigned char *buf;
    size_t used;
    uint64_t off;
    uint32_t count;
    XXH3_state_t sum;
} hint_writer;

static int hw_flush(hint_writer *w)
{
    int rc = io_pwrite_full(w->fd, w->buf, w->used, w->off, w->path);
    XXH3_64bits_update(&w->sum, w->buf, w->used);
    w->off += w->used;
    w->used = 0;
    return rc;
}

static int hw_entry(void *ctx, const seg_rec *r)
{
    hint_writer *w = ctx;
    int rc;

    if (w->used + HINT_ENTRY + r->klen > HINT_BUF && (rc = hw_flush(w)) < 0)
        return rc;
    unsigned char *p = w->buf + w->used;
    le_put64(p, r->seq);
    le_put32(p + 8, (uint32_t)r->off);
    le_put32(p + 12, r->vlen);
    le_put32(p + 16, r->klen);
    p[20] = r->flags;
    le_put64(p + 21, r->expire_ms);
    memcpy(p + HINT_ENTRY, r->key, r->klen);
    w->used += HINT_ENTRY + r->klen;
    w->count++;
    return 0;
}

static void hint_path(char *out, size_t cap, const char *dir, uint32_t id, const char *suffix)
{
    char name[SEG_NAME_MAX];
    seg_name(name, sizeof name, id, suffix);
    snprintf(out, cap, "%s/%s", dir, name);
}

int hint_write(const char *dir, const seg *s)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    unsigned char hdr[HINT_HDR], foot[8];
    seg_scan_result res;
    hint_writer w = {0};
    int rc;

    hint_path(path, sizeof path, dir, s->id, "hint");
    hint_path(tmp, sizeof tmp, dir, s->id, "hint.tmp");
    w.buf = malloc(HINT_BUF + HINT_ENTRY + KVS_MAX_KEY);
    if (!w.buf)
        return KVS_ENOMEM;
    w.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w.fd < 0) {
        free(w.buf);
        return kvs_seterr(kvs_errno(errno), "create %s: %s", tmp, strerror(errno));
    }
    w.path = tmp;
    w.off = HINT_HDR;
    XXH3_64bits_reset(&w.sum);
    rc = seg_scan(s, hw_entry, &w, &res);
    if (rc == 0)
        rc = hw_flush(&w);
    if (rc == 0) {
        le_put32(hdr, HINT_MAGIC);
        le_put16(hdr + 4, HINT_VERSION);
        le_put16(hdr + 6, 0);
        le_put32(hdr + 8, s->id);
        le_put32(hdr + 12, w.count);
        le_put64(hdr + 16, res.valid_end);
        XXH3_64bits_update(&w.sum, hdr, HINT_HDR);
        le_put64(foot, XXH3_64bits_digest(&w.sum));
        rc = io_pwrite_full(w.fd, hdr, HINT_HDR, 0, tmp);
        if (rc == 0)
            rc = io_pwrite_full(w.fd, foot, 8, w.off, tmp);
    }
    if (rc == 0)
        rc = io_fdatasync(w.fd, tmp);
    close(w.fd);
    free(w.buf);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = kvs_seterr(kvs_errno(errno), "rename %s: %s", tmp, strerror(errno));
    if (rc < 0)
        unlink(tmp);
    return rc;
}

int hint_entry_decode(const unsigned char *p, size_t room, uint64_t seg_size, seg_rec *r)
{
    if (room < HINT_ENTRY)
        return -1;
    r->seq = le_get64(p);
    r->off = le_get32(p + 8);
    r->vlen = le_get32(p + 12);
    r->klen = le_get32(p + 16);
    r->flags = p[20];
    r->expire_ms = le_get64(p + 21);
    r->damaged = false; /* unknown here: the read that fetches the record verifies it */
    r->len = rec_len(r->klen, r->vlen);
    r->key = p + HINT_ENTRY;
    r->val = NULL;
    if (room - HINT_ENTRY < r->klen)
        return -1;
    if (!rec_fields_ok(r->seq, r->flags, r->klen, r->vlen) || r->off < SEG_HDR ||
        r->off + r->len > seg_size)
        return 0;
    return 1;
}

/* Walk the entries of a verified hint; with fn NULL only check bounds. */
static int hint_walk(const unsigned char *m, size_t n, const seg *s, uint32_t count,
                     seg_scan_fn fn, void *ctx, const char *path)
{
    size_t p = HINT_HDR, end = n - 8;
    seg_rec r;
    int rc;

    for (uint32_t i = 0; i < count; i++) {
        int ok = hint_entry_decode(m + p, end - p, s->size, &r);
        if (ok < 0)
            return kvs_seterr(KVS_ECORRUPT, "%s: entry %u runs past the end", path, i);
        if (ok == 0)
            return kvs_seterr(KVS_ECORRUPT, "%s: entry %u is out of bounds", path, i);
        if (fn && (rc = fn(ctx, &r)) < 0)
            return rc;
        p += HINT_ENTRY + r.klen;
    }
    if (p != end)
        return kvs_seterr(KVS_ECORRUPT, "%s: %zu bytes after the last entry", path, end - p);
    return 0;
}

bool hint_sum_ok(const unsigned char *m, size_t n)
{
    XXH3_state_t sum;

    XXH3_64bits_reset(&sum);
    XXH3_64bits_update(&sum, m + HINT_HDR, n - 8 - HINT_HDR);
    XXH3_64bits_update(&sum, m, HINT_HDR);
    return le_get64(m + n - 8) == XXH3_64bits_digest(&sum);
}

int hint_load_kept(const char *dir, const seg *s, seg_scan_fn fn, void *ctx, hint_map *kept)
{
    char path[PATH_MAX];
    unsigned char *m;
    int64_t size;
    int fd, rc;

    if (kept)
        *kept = (hint_map){NULL, 0};
    hint_path(path, sizeof path, dir, s->id, "hint");
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? KVS_ENOTFOUND
                               : kvs_seterr(KVS_ECORRUPT, "open %s: %s", path, strerror(errno));
    size = io_file_size(fd, path);
    if (size < (int64_t)(HINT_HDR + 8)) {
        close(fd);
        return size < 0 ? (int)size : kvs_seterr(KVS_ECORRUPT, "%s: too short", path);
    }
    m = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return kvs_seterr(kvs_errno(errno), "mmap %s: %s", path, strerror(errno));
    size_t n = (size_t)size;
    if (!hint_sum_ok(m, n))
        rc = kvs_seterr(KVS_ECORRUPT, "%s: checksum mismatch", path);
    else if (le_get32(m) == HINT_MAGIC && le_get16(m + 4) != HINT_VERSION)
        rc = kvs_seterr(KVS_ECORRUPT, "%s: hint format version %u; this build reads %u", path,
                        le_get16(m + 4), HINT_VERSION);
    else if (le_get32(m) != HINT_MAGIC || le_get32(m + 8) != s->id || le_get64(m + 16) != s->size)
        rc = kvs_seterr(KVS_ECORRUPT, "%s: does not describe %s as it is", path, s->path);
    else if ((rc = hint_walk(m, n, s, le_get32(m + 12), NULL, NULL, path)) == 0) {
        rc = hint_walk(m, n, s, le_get32(m + 12), fn, ctx, path);
        if (kept) { /* fn saw its keys, even if it failed on one */
            *kept = (hint_map){m, n};
            return rc;
        }
    }
    munmap(m, n);
    return rc;
}

int hint_count(const char *dir, const seg *s, uint32_t *count)
{
    char path[PATH_MAX];
    unsigned char h[HINT_HDR];
    int fd;

    hint_path(path, sizeof path, dir, s->id, "hint");
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return KVS_ENOTFOUND;
    ssize_t n = pread(fd, h, sizeof h, 0);
    close(fd);
    if (n != (ssize_t)sizeof h || le_get32(h) != HINT_MAGIC || le_get16(h + 4) != HINT_VERSION ||
        le_get32(h + 8) != s->id || le_get64(h + 16) != s->size)
        return KVS_ENOTFOUND;
    *count = le_get32(h + 12);
    return 0;
}

int hint_load(const char *dir, const seg *s, seg_scan_fn fn, void *ctx)
{
    return hint_load_kept(dir, s, fn, ctx, NULL);
}

void hint_unmap(hint_map *m)
{
    if (m->addr)
        munmap(m->addr, m->len);
    *m = (hint_map){NULL, 0};
}
