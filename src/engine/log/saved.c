/*
 * saved.c — writing the saved index at close and loading it at open (format and rules in
 * saved.h).
 *
 * Saving reads nothing from the segments but the active one's bytes (for their checksum): the
 * table's arrays come from the index as they are, its segment slots renumbered on the way out to
 * the ones an open gives (ascending id from 1), so that loading them is one read into the new
 * table's memory and a pass that checks it. Loading trusts nothing it has not checked: the
 * whole file's checksum, the segments against the store, the table's shape (idx_image_install);
 * anything off and the caller rebuilds as if there were no file.
 *
 * Between segs.c (the segment list) and the files that open and close the store: recover.c loads,
 * engine.c saves (logdb.h).
 */
#include "engine/log/saved.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/checksum.h"
#include "util/err.h"
#include "util/io.h"
#include "util/log.h"

#define SAVED_TMP SAVED_FILE ".tmp"
#define SAVED_BUF (1u << 20)
#define SLOT_SHIFT 32
#define SLOT_MASK (0xffffull << SLOT_SHIFT) /* a word's segment slot (index.h) */
#define FLAG_ACTIVE 1u

static const bool little_endian = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;

/* ---- saving ---- */

/* Appends to the file, hashing what it writes. */
typedef struct saver {
    int fd;
    const char *path;
    uint64_t off;
    XXH3_state_t sum;
} saver;

static int put(saver *w, const void *p, size_t len)
{
    int rc = io_pwrite_full(w->fd, p, len, w->off, w->path);

    XXH3_64bits_update(&w->sum, p, len);
    w->off += len;
    return rc;
}

static int64_t file_ino(const seg *s)
{
    struct stat st;

    if (fstat(s->fd, &st) < 0)
        return kvs_seterr(kvs_errno(errno), "stat %s: %s", s->path, strerror(errno));
    return (int64_t)st.st_ino;
}

/* Header and segment table into buf (SAVED_HDR + nsegs × SAVED_SEG bytes). */
static int encode_head(logdb *db, const idx_image *img, unsigned char *buf)
{
    seg *a = db->active;

    memset(buf, 0, SAVED_HDR + (size_t)db->nsegs * SAVED_SEG);
    le_put32(buf, SAVED_MAGIC);
    le_put16(buf + 4, SAVED_VERSION);
    le_put32(buf + 8, db->nsegs);
    le_put32(buf + 12, a->id);
    le_put64(buf + 16, db->seq);
    le_put64(buf + 24, img->seed);
    le_put64(buf + 32, img->n);
    le_put64(buf + 40, img->cap);
    le_put64(buf + 48, img->count);
    le_put64(buf + 56, img->deleted);
    le_put64(buf + 64, XXH3_64bits(a->map, a->size));
    for (uint32_t i = 0; i < db->nsegs; i++) {
        const seg *s = db->segs[i];
        unsigned char *e = buf + SAVED_HDR + (size_t)i * SAVED_SEG;
        int64_t ino = file_ino(s);
        if (ino < 0)
            return (int)ino;
        le_put32(e, s->id);
        le_put32(e + 4, s == a ? FLAG_ACTIVE : 0);
        le_put64(e + 8, s->size);
        le_put64(e + 16, __atomic_load_n(&s->dead, __ATOMIC_RELAXED));
        le_put64(e + 24, s->min_seq);
        le_put64(e + 32, s->max_seq);
        le_put64(e + 40, s->unreadable);
        le_put64(e + 48, (uint64_t)ino);
    }
    return 0;
}

/* The words, each segment slot renumbered to its segment's place in the list (from 1), through
 * buf (SAVED_BUF bytes). */
static int put_words(saver *w, logdb *db, const idx_image *img, unsigned char *buf)
{
    uint16_t *to = calloc(IDX_SEG_SLOTS, sizeof *to);
    uint64_t *out = (uint64_t *)buf, per = SAVED_BUF / sizeof *out;
    int rc = 0;

    if (!to)
        return KVS_ENOMEM;
    for (uint32_t i = 0; i < db->nsegs; i++)
        to[db->segs[i]->islot] = (uint16_t)(i + 1);
    for (uint64_t i = 0; i < img->cap && rc == 0; i += per) {
        uint64_t k = img->cap - i < per ? img->cap - i : per;
        for (uint64_t j = 0; j < k; j++) {
            uint64_t word = img->word[i + j];
            uint16_t slot = (uint16_t)(word >> SLOT_SHIFT);
            if (slot && !to[slot]) {
                rc = kvs_seterr(KVS_EINVAL, "the index names a segment that is not live");
                break;
            }
            out[j] = slot ? (word & ~SLOT_MASK) | ((uint64_t)to[slot] << SLOT_SHIFT) : word;
        }
        if (rc == 0)
            rc = put(w, out, k * sizeof *out);
        if (rc == 0 && i == 0)
            ldb_crash_point(CRASH_INDEX_PARTIAL);
    }
    free(to);
    return rc;
}

/* Why not to save, or NULL: damage this open found is reported by a rebuild at every open. */
static const char *no_save_reason(logdb *db)
{
    if (!little_endian)
        return "a big-endian build writes none";
    if (__atomic_load_n(&db->corrupt_records, __ATOMIC_RELAXED))
        return "the store holds damaged records, which the next open reports again";
    for (uint32_t i = 0; i < db->nsegs; i++)
        if (db->segs[i]->unreadable)
            return "a segment holds unreadable bytes, which the next open reports again";
    return NULL;
}

static int write_tmp(logdb *db, const char *tmp)
{
    idx_image img;
    unsigned char *buf = malloc(SAVED_BUF), foot[8];
    size_t head = SAVED_HDR + (size_t)db->nsegs * SAVED_SEG;
    unsigned char *hb = malloc(head);
    saver w = {.fd = -1, .path = tmp};
    int rc;

    if (!buf || !hb) {
        rc = KVS_ENOMEM;
        goto out;
    }
    if ((rc = idx_image_get(db->idx, &img)) < 0 || (rc = encode_head(db, &img, hb)) < 0)
        goto out;
    if ((w.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
        rc = kvs_seterr(kvs_errno(errno), "create %s: %s", tmp, strerror(errno));
        goto out;
    }
    XXH3_64bits_reset(&w.sum);
    if ((rc = put(&w, hb, head)) < 0 || (rc = put_words(&w, db, &img, buf)) < 0 ||
        (rc = put(&w, img.hash, img.cap * sizeof *img.hash)) < 0)
        goto out;
    le_put64(foot, XXH3_64bits_digest(&w.sum));
    if ((rc = io_pwrite_full(w.fd, foot, sizeof foot, w.off, tmp)) == 0)
        rc = io_fdatasync(w.fd, tmp);
out:
    if (w.fd >= 0)
        close(w.fd);
    free(hb);
    free(buf);
    return rc;
}

int ldb_index_save(logdb *db)
{
    char tmp[PATH_MAX], path[PATH_MAX];
    const char *why = no_save_reason(db);
    int rc;

    KVS_ASSERT(LDB_HOLDS(db, wmu) && db->stopping);
    if (why) {
        LOG_INFO("%s: no saved index (%s)", db->dir, why);
        return 0;
    }
    if ((rc = io_join(tmp, sizeof tmp, db->dir, SAVED_TMP)) < 0 ||
        (rc = io_join(path, sizeof path, db->dir, SAVED_FILE)) < 0)
        return rc;
    if ((rc = write_tmp(db, tmp)) == 0) {
        ldb_crash_point(CRASH_INDEX_WRITTEN);
        if (rename(tmp, path) < 0)
            rc = kvs_seterr(kvs_errno(errno), "rename %s: %s", tmp, strerror(errno));
    }
    if (rc < 0) {
        unlink(tmp);
        return rc;
    }
    ldb_crash_point(CRASH_INDEX_RENAMED);
    return io_fsync_dir(db->dir);
}

void ldb_index_drop_retired(logdb *db)
{
    char old[PATH_MAX];

    KVS_ASSERT(!LDB_HOLDS(db, wmu));
    LDB_LOCK(db, wmu);
    bool retired = db->index_retired;
    db->index_retired = false;
    LDB_UNLOCK(db, wmu);
    /* no directory sync: an INDEX.old a crash brings back is removed at open, never read */
    if (retired && io_join(old, sizeof old, db->dir, SAVED_RETIRED) == 0 && unlink(old) < 0 &&
        errno != ENOENT)
        LOG_WARN("cannot remove %s: %s", old, strerror(errno));
}

/* ---- loading ---- */

typedef struct loader {
    logdb *db;
    int fd;
    const char *path;
    uint64_t size;
    XXH3_state_t sum;
    unsigned char *head; /* header and segment table */
    uint32_t nsegs;
} loader;

/* Refuse the file: say why, at level — info where the store has moved on since the save (a
 * rebuild follows, nothing is lost), warning where the file itself is damaged. Returns 0. */
static int refuse(const loader *l, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int refuse(const loader *l, int level, const char *fmt, ...)
{
    char why[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    kvs_logf(level, "%s: saved index not used (%s); rebuilding the index from the segments",
             l->path, why);
    return 0;
}
#define STALE(l, ...) refuse(l, KVS_LOG_INFO, __VA_ARGS__)
#define DAMAGED(l, ...) refuse(l, KVS_LOG_WARN, __VA_ARGS__)

/* Read len bytes at off, hashing them: 1, or 0 (refused: the file is short or unreadable). */
static int take(loader *l, void *p, size_t len, uint64_t off)
{
    ssize_t n = io_pread_full(l->fd, p, len, off, l->path);

    if (n != (ssize_t)len)
        return DAMAGED(l, "%s", n < 0 ? kvs_last_error() : "cut short");
    XXH3_64bits_update(&l->sum, p, len);
    return 1;
}

static bool hint_exists(logdb *db, uint32_t id)
{
    char name[SEG_NAME_MAX], path[PATH_MAX];
    struct stat st;

    seg_name(name, sizeof name, id, "hint");
    return io_join(path, sizeof path, db->dir, name) == 0 && stat(path, &st) == 0;
}

/* Does segment entry e describe s as it is (saved.h, "When it is used")? 1, or 0 refused. */
static int seg_matches(loader *l, const unsigned char *e, seg *s, uint32_t slot)
{
    logdb *db = l->db;
    bool active = le_get32(e + 4) & FLAG_ACTIVE;
    uint64_t size = le_get64(e + 8);
    int64_t ino = file_ino(s);

    if (le_get32(e) != s->id || (s == db->active) != active || s->islot != slot)
        return STALE(l, "the saved segments are not the live ones (segment %u)", s->id);
    if (ino < 0 || (uint64_t)ino != le_get64(e + 48))
        return STALE(l, "%s is not the file saved", s->path);
    if (active ? s->size < size : s->size != size)
        return STALE(l, "%s is %llu bytes, %llu when saved", s->path,
                      (unsigned long long)s->size, (unsigned long long)size);
    if (!active && !hint_exists(db, s->id))
        return STALE(l, "%s has no hint file", s->path);
    return 1;
}

/* Header and segment table: read, checked against the store. 1, or 0 refused. */
static int check_head(loader *l)
{
    logdb *db = l->db;
    unsigned char h[SAVED_HDR];

    if (!take(l, h, sizeof h, 0))
        return 0;
    if (le_get32(h) != SAVED_MAGIC)
        return DAMAGED(l, "not a saved index");
    if (le_get16(h + 4) != SAVED_VERSION)
        return STALE(l, "format version %u; this build reads %u", le_get16(h + 4), SAVED_VERSION);
    l->nsegs = le_get32(h + 8);
    uint64_t cap = le_get64(h + 40);
    if (l->nsegs != db->nsegs || le_get32(h + 12) != db->active->id)
        return STALE(l, "the MANIFEST names other segments than were saved");
    if (cap > (l->size / 12) ||
        l->size != SAVED_HDR + (uint64_t)l->nsegs * SAVED_SEG + cap * 12 + 8)
        return DAMAGED(l, "%llu bytes, not the size its header gives",
                      (unsigned long long)l->size);
    if (!(l->head = malloc(SAVED_HDR + (size_t)l->nsegs * SAVED_SEG)))
        return DAMAGED(l, "out of memory");
    memcpy(l->head, h, sizeof h);
    if (!take(l, l->head + SAVED_HDR, (size_t)l->nsegs * SAVED_SEG, SAVED_HDR))
        return 0;
    for (uint32_t i = 0; i < l->nsegs; i++)
        if (!seg_matches(l, l->head + SAVED_HDR + (size_t)i * SAVED_SEG, db->segs[i], i + 1))
            return 0;
    return 1;
}

/* The table into img, the footer checked: 1, or 0 refused. */
static int read_table(loader *l, idx_image *img)
{
    const unsigned char *h = l->head;
    uint64_t off = SAVED_HDR + (uint64_t)l->nsegs * SAVED_SEG;
    unsigned char foot[8];
    int rc = idx_image_new(le_get64(h + 32), le_get64(h + 40), img);

    if (rc < 0)
        return DAMAGED(l, "%s", rc == KVS_ENOMEM ? "out of memory" : "a table no index makes");
    if (!take(l, img->word, img->cap * 12, off))
        return 0;
    uint64_t want = XXH3_64bits_digest(&l->sum);
    if (io_pread_full(l->fd, foot, sizeof foot, off + img->cap * 12, l->path) != sizeof foot ||
        le_get64(foot) != want)
        return DAMAGED(l, "checksum mismatch");
    img->seed = le_get64(h + 24);
    img->count = le_get64(h + 48);
    img->deleted = le_get64(h + 56);
    return 1;
}

/* The checked file into the store: index, segment figures, seq. 1, or 0 refused. */
static int install(loader *l, idx_image *img, uint64_t *replay_from)
{
    logdb *db = l->db;
    const unsigned char *h = l->head;
    seg *a = db->active;
    uint64_t asize = 0;

    for (uint32_t i = 0; i < l->nsegs; i++)
        if (db->segs[i] == a)
            asize = le_get64(h + SAVED_HDR + (size_t)i * SAVED_SEG + 8);
    if (XXH3_64bits(a->map, asize) != le_get64(h + 64))
        return STALE(l, "%s does not hold the bytes saved", a->path);
    if (idx_image_install(db->idx, img) < 0)
        return DAMAGED(l, "%s", kvs_last_error());
    for (uint32_t i = 0; i < l->nsegs; i++) {
        const unsigned char *e = h + SAVED_HDR + (size_t)i * SAVED_SEG;
        seg *s = db->segs[i];
        s->dead = le_get64(e + 16);
        s->min_seq = le_get64(e + 24);
        s->max_seq = le_get64(e + 32);
        s->unreadable = le_get64(e + 40);
    }
    db->seq = le_get64(h + 16);
    *replay_from = asize;
    return 1;
}

static int load(loader *l, uint64_t *replay_from)
{
    idx_image img = {0};
    int64_t size = io_file_size(l->fd, l->path);
    int used = 0;

    if (!little_endian)
        return STALE(l, "a big-endian build reads none");
    if (size < 0)
        return DAMAGED(l, "%s", kvs_last_error());
    l->size = (uint64_t)size;
    XXH3_64bits_reset(&l->sum);
    if (check_head(l) && read_table(l, &img))
        used = install(l, &img, replay_from);
    idx_image_free(&img);
    free(l->head);
    return used;
}

int ldb_index_load(logdb *db, uint64_t *replay_from)
{
    char path[PATH_MAX], old[PATH_MAX];
    int rc, used = 0;

    KVS_ASSERT(db->recovering);
    if ((rc = io_join(path, sizeof path, db->dir, SAVED_FILE)) < 0 ||
        (rc = io_join(old, sizeof old, db->dir, SAVED_RETIRED)) < 0)
        return rc;
    loader l = {.db = db, .fd = open(path, O_RDONLY | O_CLOEXEC), .path = path};
    if (l.fd < 0 && errno == ENOENT)
        return 0;
    if (l.fd < 0) {
        DAMAGED(&l, "%s", strerror(errno));
    } else {
        used = load(&l, replay_from);
        close(l.fd);
    }
    /* Gone before the first write: it describes the store as it is now, and no later state. */
    if (rename(path, old) < 0)
        return kvs_seterr(kvs_errno(errno),
                          "cannot move %s out of the way (%s): left in place, it could describe "
                          "the store wrongly after a later crash",
                          path, strerror(errno));
    db->index_retired = true;
    if ((rc = io_fsync_dir(db->dir)) < 0)
        return rc;
    if (used)
        LOG_INFO("%s: the index loaded from the saved one: %llu keys", db->dir,
                 (unsigned long long)idx_count(db->idx));
    return used;
}
