/*
 * segment.c — creating, opening, scanning and destroying segment files (format in segment.h).
 *
 * Scanning maps the file read-only and walks it record by record, trusting a length only once the
 * header that holds it has passed its checksum. It never searches: the bytes after a record are
 * either the next record, or no record can be read there. A search for "the next place where
 * something checks out" would read records inside values — where a client may have stored an
 * encoded record of its choosing, which a torn append would then bring to life — and would hash
 * a damaged region once per byte offset. So after a record whose header is authentic and whose
 * value is damaged, the scan goes on at the end that header gives; at a header that is not
 * authentic it stops, and what follows is judged whole: zeros (room never written), an append a
 * crash cut short (the active segment only), or corruption that is reported and kept.
 */
#include "engine/log/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
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
    pthread_mutex_init(&s->smu, NULL);
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
    /* The new pages are not faulted in here (MADV_POPULATE_WRITE): this runs under wmu, and
     * populating a step of a shared file mapping costs about as much as faulting its pages
     * one by one in the writers' memcpy (~9 us a page on ext4) — but all at once, so every
     * writer waited 1-4 ms behind it once per step, 60 times per 100,000 SETs, which was what
     * put SET p99 at pipeline 1 at several ms. A fault per page spreads the same work thin. */
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
    seg_release_pages(s);
    return 0;
}

void seg_release_pages(seg *s)
{
    /* The mapping stays (readers may be in it, and fault back what they touch): a shared file
     * mapping's pages are the page cache's, so dropping them loses nothing. */
    if (s->sealed && s->map)
        madvise(s->map, s->map_len, MADV_DONTNEED);
}

bool seg_is_unfinished(const char *dir, uint32_t id)
{
    unsigned char want[SEG_HDR], got[SEG_HDR];
    char name[SEG_NAME_MAX], path[PATH_MAX];
    bool yes = false;

    seg_name(name, sizeof name, id, "log");
    if (io_join(path, sizeof path, dir, name) < 0)
        return false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = pread(fd, got, sizeof got, 0);
    struct stat st;
    if (n >= 0 && n < (ssize_t)SEG_HDR && fstat(fd, &st) == 0 && st.st_size == n) {
        seg_header(want, id);
        yes = memcmp(got, want, (size_t)n) == 0;
    }
    close(fd);
    return yes;
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

/* seg_open's work but the version check: the version goes into *version. */
static int open_file(const char *dir, uint32_t id, bool writable, uint16_t *version, seg **out)
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
    *version = le_get16(h + 4);
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

int seg_open(const char *dir, uint32_t id, bool writable, seg **out)
{
    uint16_t version;
    int rc = open_file(dir, id, writable, &version, out);

    if (rc < 0 || version == SEG_VERSION)
        return rc;
    if (version == SEG_VERSION_UPGRADABLE)
        rc = kvs_seterr(KVS_EFORMAT,
                        "%s is of format %u (kvs before per-key expiry times); this build reads "
                        "format %u",
                        (*out)->path, version, SEG_VERSION);
    else
        rc = kvs_seterr(KVS_EVERSION,
                        "%s: segment format version %u; this build reads only version %u "
                        "(records with a header and a value checksum and an expiry time): open "
                        "it with the build that wrote it",
                        (*out)->path, version, SEG_VERSION);
    seg_close(*out);
    *out = NULL;
    return rc;
}

int seg_open_any_version(const char *dir, uint32_t id, uint16_t *version, seg **out)
{
    return open_file(dir, id, false, version, out);
}

int seg_trim(seg *s, uint64_t end)
{
    int rc;

    /* by path: a sealed segment is open read-only */
    if (truncate(s->path, (off_t)end) < 0)
        return kvs_seterr(kvs_errno(errno), "truncate %s: %s", s->path, strerror(errno));
    if ((rc = io_fdatasync(s->fd, s->path)) < 0)
        return rc;
    s->size = s->alloc = end;
    return 0;
}

void seg_close(seg *s)
{
    if (!s)
        return;
    if (s->map)
        munmap(s->map, s->map_len);
    if (s->fd >= 0)
        close(s->fd);
    pthread_mutex_destroy(&s->smu);
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

#ifdef KVS_TEST_HOOKS
uint64_t kvs_test_scan_hashed;
#endif

/* What a scan finds at an offset. */
enum { AT_INTACT, AT_DAMAGED, AT_CUT, AT_BAD };

/* r from the header at off, which has been found authentic. */
static void rec_fill(const unsigned char *base, uint64_t off, seg_rec *r)
{
    rec_hdr h;

    rec_decode(base + off, &h);
    r->off = off;
    r->len = rec_len(h.klen, h.vlen);
    r->seq = h.seq;
    r->expire_ms = h.expire_ms;
    r->flags = h.flags;
    r->damaged = false;
    r->klen = h.klen;
    r->vlen = h.vlen;
    r->key = base + off + REC_HDR;
    r->val = r->key + h.klen;
}

/* What lies at off: a record (intact, or with a damaged value), an authentic header whose record
 * runs past the end, or no authentic header. Fills r unless AT_BAD. Header and key are hashed,
 * then the value: each byte once, counted in *hashed. */
static int rec_at(const unsigned char *base, uint64_t size, uint64_t off, seg_rec *r,
                  uint64_t *hashed)
{
    rec_hdr h;
    uint64_t room = size - off;

    if (room < REC_HDR || !rec_decode(base + off, &h) || h.klen > room - REC_HDR)
        return AT_BAD;
    *hashed += REC_HDR + h.klen;
    if (!rec_head_ok(base + off, base + off + REC_HDR, h.klen))
        return AT_BAD;
    rec_fill(base, off, r);
    if (r->len > room)
        return AT_CUT;
    *hashed += r->vlen;
    r->damaged = !rec_value_ok(base + off, r->val, r->vlen);
    return r->damaged ? AT_DAMAGED : AT_INTACT;
}

static bool zero_from(const unsigned char *base, uint64_t size, uint64_t from)
{
    for (uint64_t i = from; i < size; i++)
        if (base[i])
            return false;
    return true;
}

/* Is the header at off, which is not authentic, the last append cut short? An append copies
 * header, key and value, in that order, into room given ahead (zeros, and the whole record fits
 * in it); a crash leaves data only up to where the copy stopped. So: nothing but zeros after the
 * header's bytes (the copy stopped inside the header, or the file ends there); or the header
 * complete — its lengths are the record's, its record fits in the file — and nothing but zeros
 * after the key (the copy stopped inside the key). Anything else is corruption, even damage that
 * could be a cut (a file ending inside a key whose length may be the damaged field): a torn tail
 * is cut away, corruption is kept, and only bytes that could never be read may be cut. */
static bool torn_at(const unsigned char *base, uint64_t size, uint64_t off)
{
    rec_hdr h;
    uint64_t room = size - off;

    if (room <= REC_HDR || zero_from(base, size, off + REC_HDR))
        return true;
    return rec_decode(base + off, &h) && rec_len(h.klen, h.vlen) <= room &&
           zero_from(base, size, off + REC_HDR + h.klen);
}

typedef struct scanner {
    const seg *s;
    const unsigned char *base;
    seg_scan_fn fn;
    void *ctx;
    seg_scan_result *res;
    bool *held_damaged; /* of each record held back, in order: is its value damaged? */
    size_t nheld, capheld;
} scanner;

/* Remember the record just held back (scan): whether it was damaged, which its release must
 * say without hashing it again. */
static int hold(scanner *sc, bool damaged)
{
    if (sc->nheld == sc->capheld) {
        size_t cap = sc->capheld ? 2 * sc->capheld : 64;
        bool *v = realloc(sc->held_damaged, cap * sizeof *v);
        if (!v)
            return kvs_seterr(KVS_ENOMEM, "%s: scan: no memory", sc->s->path);
        sc->held_damaged = v;
        sc->capheld = cap;
    }
    sc->held_damaged[sc->nheld++] = damaged;
    return 0;
}

static int hand_out(scanner *sc, const seg_rec *r)
{
    if (r->damaged) {
        LOG_ERROR("%s: damaged record at offset %llu: its value fails its checksum; the key "
                  "(%u bytes, seq %llu) reads as corrupt",
                  sc->s->path, (unsigned long long)r->off, r->klen, (unsigned long long)r->seq);
        sc->res->damaged++;
        sc->res->damaged_bytes += r->len;
    }
    sc->res->records++;
    sc->res->valid_end = r->off + r->len;
    return sc->fn(sc->ctx, r);
}

/* Hand out the records held back between from and to (their headers were authentic): damaged
 * ones, and the records of a write group not yet closed (REC_GROUP_MORE). */
static int hand_out_held(scanner *sc, uint64_t from, uint64_t to)
{
    seg_rec r;
    size_t i = 0;
    int rc;

    for (uint64_t off = from; off < to; off += r.len) {
        rec_fill(sc->base, off, &r);
        r.damaged = i < sc->nheld && sc->held_damaged[i];
        i++;
        if ((rc = hand_out(sc, &r)) < 0)
            return rc;
    }
    sc->nheld = 0;
    return 0;
}

/* Judge what follows the records handed out: reading stopped at stop (the end, a record cut
 * by the end, or a header that is not authentic); held marks damaged records held back; active:
 * the tail may be an append a crash cut short. */
static int judge_tail(scanner *sc, bool active, uint64_t stop, int at, uint64_t held)
{
    seg_scan_result *res = sc->res;
    uint64_t size = sc->s->size;

    if (stop >= size && !held)
        return 0;
    /* Damaged records held back (their seq newer than anything elsewhere) with no intact
     * record after them are an append a crash cut short, whatever follows them: after a power
     * cut the bytes past the last sync may be anything, zeros or not. So are the records of a
     * write group with no record closing it (REC_GROUP_MORE, record.h): the group is one unit
     * across a crash, and it was cut short. They are cut, not kept:
     * kept, a later scan (once newer records exist elsewhere) would read them as damage, and
     * their seqs, never counted, would be handed out again to new writes. */
    if (active && (held || stop >= size || at == AT_CUT || torn_at(sc->base, size, stop))) {
        res->tail = !held && zero_from(sc->base, size, stop) ? SEG_TAIL_ZERO : SEG_TAIL_TORN;
        res->valid_end = held ? held : stop;
    } else {
        res->tail = zero_from(sc->base, size, stop) ? SEG_TAIL_ZERO : SEG_TAIL_CORRUPT;
        if (res->tail == SEG_TAIL_CORRUPT)
            LOG_ERROR("%s: %s at offset %llu: the %llu bytes from there to the end cannot be "
                      "read",
                      sc->s->path,
                      at == AT_CUT ? "record cut short by the end of the file"
                                   : "damaged record header",
                      (unsigned long long)stop, (unsigned long long)(size - stop));
    }
    res->tail_bytes = size - res->valid_end;
    return 0;
}

/* Scan s from offset from (a record's start). Its tail may be an append a crash cut short
 * (torn_at, damaged records held back) where its records are newer than newer, the newest seq
 * found elsewhere: 0 for the active segment, UINT64_MAX for one certainly synced. */
static int scan(const seg *s, uint64_t newer, uint64_t from, seg_scan_fn fn, void *ctx,
                seg_scan_result *res)
{
    uint64_t size = s->size, off = from, held = 0, hashed = 0, last_seq = 0;
    scanner sc = {s, NULL, fn, ctx, res, NULL, 0, 0};
    int at = AT_INTACT, rc = 0;
    unsigned char *base;
    seg_rec r;

    memset(res, 0, sizeof *res);
    res->valid_end = from;
    if (size <= from)
        return 0;
    base = mmap(NULL, size, PROT_READ, MAP_PRIVATE, s->fd, 0);
    if (base == MAP_FAILED)
        return kvs_seterr(kvs_errno(errno), "mmap %s: %s", s->path, strerror(errno));
    sc.base = base;
    madvise(base, size, MADV_SEQUENTIAL);
    while (off < size) {
        at = rec_at(base, size, off, &r, &hashed);
        if (at == AT_CUT || at == AT_BAD)
            break;
        if ((at == AT_DAMAGED || (r.flags & REC_GROUP_MORE)) && r.seq > newer) {
            /* a torn append, unless an intact record follows (closing the group, if the
             * record opens or continues one): hold it back until we know */
            if ((rc = hold(&sc, at == AT_DAMAGED)) < 0)
                break;
            held = held ? held : off;
            off += r.len;
            continue;
        }
        if (held && (rc = hand_out_held(&sc, held, off)) < 0)
            break;
        held = 0;
        if ((rc = hand_out(&sc, &r)) < 0)
            break;
        last_seq = r.seq;
        off += r.len;
    }
    /* Past the last record, a crash can have cut the appends that came after it, unless a
     * record newer than it is found elsewhere: syncs go oldest first, so that one's sync made
     * this whole segment durable before it. newer = UINT64_MAX says the segment is certainly
     * synced, even when its last record carries that seq. */
    if (rc == 0)
        rc = judge_tail(&sc, held || newer == 0 || (newer != UINT64_MAX && last_seq >= newer),
                        off, at, held);
#ifdef KVS_TEST_HOOKS
    __atomic_add_fetch(&kvs_test_scan_hashed, hashed, __ATOMIC_RELAXED);
#endif
    munmap(base, size);
    free(sc.held_damaged);
    return rc;
}

int seg_scan(const seg *s, seg_scan_fn fn, void *ctx, seg_scan_result *res)
{
    return scan(s, UINT64_MAX, SEG_HDR, fn, ctx, res);
}

int seg_scan_active(const seg *s, seg_scan_fn fn, void *ctx, seg_scan_result *res)
{
    return scan(s, 0, SEG_HDR, fn, ctx, res);
}

int seg_scan_active_from(const seg *s, uint64_t from, seg_scan_fn fn, void *ctx,
                         seg_scan_result *res)
{
    return scan(s, 0, from, fn, ctx, res);
}

int seg_scan_unsynced(const seg *s, uint64_t newest_elsewhere, seg_scan_fn fn, void *ctx,
                      seg_scan_result *res)
{
    return scan(s, newest_elsewhere, SEG_HDR, fn, ctx, res);
}
