/*
 * upgrade.c — kvs_upgrade: converting a store of on-disk format 2 into the current format (kvs.h
 * says what it does for the caller; record.h and segment.h give both formats).
 *
 * It stands beside the engine rather than inside it. It reads the old store with a reader of its
 * own — format 2's record header, 25 bytes with the key at 25, verified as format 2 was (hcrc
 * over bytes 8 .. end of key, vcrc over the value) — and the MANIFEST with manifest.c, whose
 * format did not change; and it writes the new store through the public API (kvs_open,
 * kvs_write), so that the new store is made by the code that reads it, with nothing here to keep
 * in step with the current format. The old files are never written to: they become the backup
 * DIR.format2 by a rename.
 *
 * What is read is what a format-2 open served: the segments the MANIFEST names, the newest
 * record of each key winning wherever it lies (a compaction's outputs hold records older than
 * those of segments with lower ids). Damage is judged as format 2's scans did: a record whose
 * header is authentic and whose value fails is still the newest write of its key, which is then
 * left out rather than served with an older value; damaged records at the end of the active
 * segment, with nothing intact after them, are an append a crash cut short, and the older value
 * stands; bytes after a header that is not authentic cannot be read. All of it is logged (WARN)
 * with file and offset, and counted.
 *
 * Memory: every live segment stays mapped read-only for the run (its descriptor closed), and
 * the newest record of each key is kept in salvage.h's table, pointing into the mappings: no key
 * or value is copied. The key index (index.h) cannot serve here: it reads keys from records of
 * the current format.
 *
 * Order on disk: the new store is complete and synced (kvs_sync_now, kvs_close) before the
 * first rename; each rename is made durable (the parent directory synced) before the next step.
 * So a crash leaves DIR whole (old store, and a DIR.upgrade that a new run makes anew), or DIR
 * missing with DIR.format2 and a complete DIR.upgrade (a new run does the second rename), or the
 * job done.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/log/manifest.h"
#include "engine/log/record.h"
#include "engine/log/salvage.h"
#include "engine/log/segment.h"
#include "kvs.h"
#include "util/checksum.h"
#include "util/err.h"
#include "util/io.h"
#include "util/log.h"

#define F2_HDR 25u /* format 2's record header: record.h's table up to val_len, the key at 25 */
#define F2_FIELDS 8u /* where the fields its hcrc covers begin (as in format 3) */
#define PROGRESS_KEYS 100000u

/* A format-2 record as found: where it lies, and what its header says (expire_ms always 0). */
typedef salv_rec f2_rec;

typedef struct upgrader {
    kvs_upgrade_report *rep;
    kvs_upgrade_fn progress;
    void *ctx;
    char path[PATH_MAX], parent[PATH_MAX], old[PATH_MAX], tmp[PATH_MAX];
    seg **segs; /* the live segments, mapped */
    uint32_t nsegs;
    uint32_t active; /* the MANIFEST's active segment id */
    salv_table tab;  /* newest record per key */
} upgrader;

static void report(upgrader *u, int phase)
{
    u->rep->phase = phase;
    if (u->progress)
        u->progress(u->ctx, u->rep);
}

/* ---- paths: DIR, DIR.format2, DIR.upgrade as siblings, whatever form DIR was given in ---- */

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 || errno != ENOENT;
}

/* DIR made absolute (its parent resolved: DIR itself may be missing, between the renames). */
static int make_paths(upgrader *u, const char *dir)
{
    char buf[PATH_MAX], real[PATH_MAX];
    size_t n = strlen(dir);

    if (n >= sizeof buf)
        return kvs_seterr(KVS_EINVAL, "directory path too long");
    memcpy(buf, dir, n + 1);
    while (n > 1 && buf[n - 1] == '/')
        buf[--n] = '\0';
    char *slash = strrchr(buf, '/');
    const char *base = slash ? slash + 1 : buf;
    if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || strcmp(buf, "/") == 0) {
        /* a name that is no name of its own: the directory must exist to be named */
        if (!realpath(buf, real))
            return kvs_seterr(kvs_errno(errno), "%s: %s", dir, strerror(errno));
        if (strcmp(real, "/") == 0)
            return kvs_seterr(KVS_EINVAL, "kvs upgrade cannot rename /");
        memcpy(buf, real, strlen(real) + 1);
        slash = strrchr(buf, '/');
        base = slash + 1;
    }
    if (slash == buf)
        snprintf(u->parent, sizeof u->parent, "/");
    else {
        if (slash)
            *slash = '\0';
        if (!realpath(slash ? buf : ".", u->parent))
            return kvs_seterr(kvs_errno(errno), "%s: %s", slash ? buf : ".", strerror(errno));
    }
    if (io_join(u->path, sizeof u->path, strcmp(u->parent, "/") ? u->parent : "", base) < 0 ||
        snprintf(u->old, sizeof u->old, "%s.format2", u->path) >= (int)sizeof u->old ||
        snprintf(u->tmp, sizeof u->tmp, "%s.upgrade", u->path) >= (int)sizeof u->tmp)
        return kvs_seterr(KVS_EINVAL, "directory path too long");
    snprintf(u->rep->backup, sizeof u->rep->backup, "%s", u->old);
    return 0;
}

/* rename(from, to), never over an existing to; the parent synced after it. */
static int move_dir(upgrader *u, const char *from, const char *to)
{
    int r = renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE);

    if (r < 0 && errno == EINVAL) /* a file system without RENAME_NOREPLACE */
        r = exists(to) ? (errno = EEXIST, -1) : rename(from, to);
    if (r < 0)
        return kvs_seterr(errno == EEXIST ? KVS_EBUSY : kvs_errno(errno), "rename %s to %s: %s",
                          from, to, strerror(errno));
    return io_fsync_dir(u->parent);
}

/* Is name a file a store of the kvs engine writes? */
static bool store_file(const char *name)
{
    return strcmp(name, MAN_FILE) == 0 || strcmp(name, MAN_FILE ".tmp") == 0 ||
           strcmp(name, "ENGINE") == 0 || strcmp(name, "ENGINE.tmp") == 0 ||
           seg_parse_name(name, "log") || seg_parse_name(name, "hint") ||
           seg_parse_name(name, "hint.tmp");
}

/* Remove a DIR.upgrade an earlier run left (DIR still held the old store, so the run stopped
 * before its first rename): its store files, then the directory; anything else in it stays, and
 * the upgrade stops. */
static int remove_leftover(const char *dir)
{
    char path[PATH_MAX];
    struct dirent *de;
    DIR *d = opendir(dir);

    if (!d)
        return kvs_seterr(kvs_errno(errno), "open directory %s: %s", dir, strerror(errno));
    LOG_WARN("removing %s: left by an upgrade that did not finish", dir);
    while ((de = readdir(d)) != NULL)
        if (store_file(de->d_name) && io_join(path, sizeof path, dir, de->d_name) == 0)
            unlink(path);
    closedir(d);
    if (rmdir(dir) < 0)
        return kvs_seterr(kvs_errno(errno),
                          "cannot remove %s, left by an upgrade that did not finish: %s (move it "
                          "away, then run kvs upgrade again)",
                          dir, strerror(errno));
    return 0;
}

/* ---- the old store: which format, its live segments mapped ---- */

static void close_segs(upgrader *u)
{
    for (uint32_t i = 0; i < u->nsegs; i++)
        seg_close(u->segs[i]);
    free(u->segs);
    u->segs = NULL;
    u->nsegs = 0;
}

/*
 * The format of the store in dir: the version of its live segments (all must have the same),
 * or 0 for a store of the lmdb engine, whose format kvs_upgrade does not change. With keep, the
 * segments stay open in u (mapped, their descriptors closed). KVS_EINVAL if dir holds no store.
 */
static int store_format(upgrader *u, const char *dir, bool keep, uint16_t *version)
{
    char engine[32];
    manifest m;
    man_state st;
    int rc;

    if ((rc = kvs_dir_engine(dir, engine, sizeof engine)) < 0)
        return rc;
    if (strcmp(engine, "lmdb") == 0) {
        *version = 0;
        return 0;
    }
    rc = man_open(dir, &m, &st);
    if (rc == KVS_ENOTFOUND)
        return kvs_seterr(KVS_EINVAL, "%s holds no store of the kvs engine (no %s)", dir,
                          MAN_FILE);
    if (rc < 0)
        return rc;
    man_close(&m); /* read only: the edits are in st */
    if (st.n == 0) {
        man_state_free(&st);
        return kvs_seterr(KVS_ECORRUPT, "%s/%s names no segment", dir, MAN_FILE);
    }
    if (st.lost_bytes)
        LOG_WARN("%s/%s: its last edit is damaged (%llu bytes at offset %llu): the store is read "
                 "as the edits before it name it",
                 dir, MAN_FILE, (unsigned long long)st.lost_bytes,
                 (unsigned long long)st.lost_off);
    if (!(u->segs = calloc(st.n, sizeof *u->segs)))
        rc = KVS_ENOMEM;
    for (uint32_t i = 0; i < st.n && rc == 0; i++) {
        uint16_t v;
        seg *s;
        if ((rc = seg_open_any_version(dir, st.ids[i], &v, &s)) < 0)
            break;
        close(s->fd); /* the mapping stays: a store of many segments needs no descriptor each */
        s->fd = -1;
        u->segs[u->nsegs++] = s;
        if (i == 0)
            *version = v;
        else if (v != *version)
            rc = kvs_seterr(KVS_ECORRUPT, "%s: segment format version %u, where %s has %u",
                            s->path, v, u->segs[0]->path, *version);
    }
    if (rc == 0 && *version != SEG_VERSION && *version != SEG_VERSION_UPGRADABLE)
        rc = kvs_seterr(KVS_EVERSION,
                        "%s: segment format version %u: kvs upgrade converts format %u only",
                        u->segs[0]->path, *version, SEG_VERSION_UPGRADABLE);
    u->active = st.active;
    u->rep->segments_total = u->nsegs;
    man_state_free(&st);
    if (rc < 0 || !keep)
        close_segs(u);
    return rc;
}

/* ---- reading format 2 ---- */

enum { AT_INTACT, AT_DAMAGED, AT_BAD };

/* What lies at off in s: a record (intact, or its value damaged), or no authentic header whose
 * record fits in the file. */
static int f2_at(const seg *s, uint64_t off, f2_rec *r)
{
    const unsigned char *p = s->map + off;
    uint64_t room = s->size - off;

    if (room < F2_HDR)
        return AT_BAD;
    r->seq = le_get64(p + 8);
    r->flags = p[16];
    r->klen = le_get32(p + 17);
    r->vlen = le_get32(p + 21);
    if (!rec_fields_ok(r->seq, r->flags, r->klen, r->vlen) || r->klen > room - F2_HDR ||
        le_get32(p) != cksum32(p + F2_FIELDS, F2_HDR - F2_FIELDS + (size_t)r->klen) ||
        (uint64_t)F2_HDR + r->klen + r->vlen > room)
        return AT_BAD;
    r->off = off;
    r->expire_ms = 0;
    r->key = p + F2_HDR;
    r->val = r->key + r->klen;
    r->damaged = le_get32(p + 4) != cksum32(r->val, r->vlen);
    return r->damaged ? AT_DAMAGED : AT_INTACT;
}

static uint64_t f2_len(const f2_rec *r)
{
    return (uint64_t)F2_HDR + r->klen + r->vlen;
}

static int take(upgrader *u, const f2_rec *r)
{
    u->rep->records++;
    if (r->damaged) {
        u->rep->damaged++;
        LOG_WARN("%s: damaged record at offset %llu: its value fails its checksum (key of %u "
                 "bytes, seq %llu): skipped",
                 u->segs[r->seg]->path, (unsigned long long)r->off, r->klen,
                 (unsigned long long)r->seq);
    }
    return salv_put(&u->tab, r);
}

static bool zeros(const unsigned char *p, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* Read segment i into the table. Damaged records of the active segment are held back until an
 * intact record follows them: with none after them they are an append a crash cut short. */
static int read_segment(upgrader *u, uint32_t i)
{
    const seg *s = u->segs[i];
    bool active = s->id == u->active;
    uint64_t off = SEG_HDR, held = 0;
    f2_rec r;
    int rc = 0;

    while (off < s->size && rc == 0) {
        int at = f2_at(s, off, &r);
        if (at == AT_BAD)
            break;
        r.seg = i;
        if (at == AT_DAMAGED && active) {
            held = held ? held : off;
        } else {
            for (f2_rec h; held && held < off && rc == 0; held += f2_len(&h)) {
                f2_at(s, held, &h);
                h.seg = i;
                rc = take(u, &h);
            }
            held = 0;
            if (rc == 0)
                rc = take(u, &r);
        }
        off += f2_len(&r);
    }
    if (rc < 0)
        return rc;
    uint64_t end = held ? held : off;
    if (end < s->size && (held || !zeros(s->map + end, s->size - end))) {
        u->rep->damaged++;
        LOG_WARN("%s: %llu bytes from offset %llu %s: skipped",
                 s->path, (unsigned long long)(s->size - end), (unsigned long long)end,
                 held ? "hold an append a crash cut short (damaged records, nothing intact "
                        "after them)"
                 : active ? "cannot be read (a damaged record header, or an append a crash cut "
                            "short)"
                          : "cannot be read (a damaged record header)");
    }
    return 0;
}

/* The keys to write, oldest write first; the others counted (and the damaged ones logged). */
static int choose(upgrader *u, f2_rec **out, size_t *n)
{
    f2_rec *v = malloc((u->tab.n ? u->tab.n : 1) * sizeof *v);
    size_t k = 0;

    if (!v)
        return kvs_seterr(KVS_ENOMEM, "no memory for %zu keys", u->tab.n);
    for (size_t i = 0; i < u->tab.cap; i++) {
        const salv_key *e = &u->tab.tab[i];
        if (!e->best.key)
            continue;
        if (e->dseq) { /* the newest record, wherever an intact older one lies */
            u->rep->damaged_keys++;
            LOG_WARN("%s: the record at offset %llu, the newest of its key (%u bytes, seq %llu), "
                     "is damaged: the key is left out",
                     u->segs[e->dseg]->path, (unsigned long long)e->doff, e->best.klen,
                     (unsigned long long)e->dseq);
        } else if (e->best.flags & REC_TOMBSTONE) {
            u->rep->tombstones++;
        } else {
            v[k++] = e->best;
        }
    }
    /* the new store holds them in the order they were written */
    qsort(v, k, sizeof *v, salv_by_seq);
    *out = v;
    *n = k;
    u->rep->keys_total = k;
    return 0;
}

/* ---- writing the new store ---- */

/* salv_write_store's tick: progress as the keys go in. */
static void written(void *ctx, uint64_t keys)
{
    upgrader *u = ctx;
    uint64_t before = u->rep->keys;

    u->rep->keys = keys;
    if (keys == 0 || keys / PROGRESS_KEYS != before / PROGRESS_KEYS || keys == u->rep->keys_total)
        report(u, KVS_UPGRADE_WRITING);
}

/* The new directory gets the old one's permissions (kvs_open made it 0755). */
static void copy_mode(const char *from, const char *to)
{
    struct stat st;

    if (stat(from, &st) == 0 && chmod(to, st.st_mode & 07777) < 0)
        LOG_WARN("chmod %s: %s", to, strerror(errno));
}

/* ---- the runs ---- */

/* Read the old store (its segments open in u) and write the new one at u->tmp. */
static int convert(upgrader *u)
{
    f2_rec *v = NULL;
    size_t n = 0;
    int rc = 0;

    report(u, KVS_UPGRADE_READING);
    for (uint32_t i = 0; i < u->nsegs && rc == 0; i++) {
        if ((rc = read_segment(u, i)) == 0) {
            u->rep->segments_read++;
            report(u, KVS_UPGRADE_READING);
        }
    }
    if (rc == 0)
        rc = choose(u, &v, &n);
    if (rc == 0 && is_dir(u->tmp))
        rc = remove_leftover(u->tmp);
    if (rc == 0) {
        rc = salv_write_store(u->tmp, v, n, written, u);
        if (rc < 0) {
            char why[512];
            snprintf(why, sizeof why, "%s", kvs_last_error());
            if (is_dir(u->tmp))
                remove_leftover(u->tmp); /* best effort: a new run removes it too */
            rc = kvs_seterr(rc, "%s", why);
        }
    }
    if (rc == 0) {
        copy_mode(u->path, u->tmp);
        rc = io_fsync_dir(u->parent); /* DIR.upgrade's entry, before DIR is renamed */
    }
    free(v);
    return rc;
}

/* DIR missing, DIR.format2 and DIR.upgrade there: a crash came between the renames. DIR.upgrade
 * was complete and synced before the first; check it is a store of the current format, and do
 * the second. */
static int resume(upgrader *u)
{
    uint16_t version;
    int fd = kvs_dir_lock(u->old), rc; /* the lock the interrupted run held */

    if (fd < 0)
        return fd;
    if ((rc = store_format(u, u->tmp, false, &version)) == 0 && version != SEG_VERSION)
        rc = kvs_seterr(KVS_ECORRUPT, "%s: not a store of the current format", u->tmp);
    if (rc == 0 && (rc = move_dir(u, u->tmp, u->path)) == 0) {
        u->rep->outcome = KVS_UPGRADE_RESUMED;
        u->rep->segments_total = 0;
    }
    close(fd);
    return rc;
}

/* DIR exists: convert it if it is of format 2 (locked meanwhile). */
static int upgrade_dir(upgrader *u)
{
    uint16_t version;
    int fd = kvs_dir_lock(u->path), rc;

    if (fd < 0)
        return fd;
    rc = store_format(u, u->path, true, &version);
    if (rc == 0 && (version == 0 || version == SEG_VERSION)) {
        u->rep->outcome = KVS_UPGRADE_CURRENT;
        goto out;
    }
    if (rc == 0 && exists(u->old))
        rc = kvs_seterr(KVS_EBUSY, "%s exists: it would be the backup of this upgrade (move it "
                        "away first)", u->old);
    if (rc == 0)
        rc = convert(u);
    /* DIR's lock stays held across the renames: flock follows the directory, now DIR.format2 */
    if (rc == 0 && (rc = move_dir(u, u->path, u->old)) == 0)
        rc = move_dir(u, u->tmp, u->path);
    if (rc == 0)
        u->rep->outcome = KVS_UPGRADE_CONVERTED;
out:
    close(fd);
    return rc;
}

int kvs_upgrade(const char *dir, kvs_upgrade_fn progress, void *ctx, kvs_upgrade_report *report)
{
    kvs_upgrade_report local;
    upgrader u = {.rep = report ? report : &local, .progress = progress, .ctx = ctx};
    int rc;

    kvs_clearerr();
    memset(u.rep, 0, sizeof *u.rep);
    if (!dir || !*dir)
        return kvs_seterr(KVS_EINVAL, "kvs_upgrade: no directory");
    if ((rc = make_paths(&u, dir)) < 0)
        return rc;
    struct stat st;
    if (lstat(u.path, &st) == 0 && S_ISLNK(st.st_mode)) /* the renames would move the link */
        rc = kvs_seterr(KVS_EINVAL, "%s is a symbolic link: upgrade the directory it names",
                        u.path);
    else if (stat(u.path, &st) == 0)
        rc = S_ISDIR(st.st_mode) ? upgrade_dir(&u)
                                 : kvs_seterr(KVS_EINVAL, "%s is not a directory", u.path);
    else if (errno != ENOENT)
        rc = kvs_seterr(kvs_errno(errno), "%s: %s", u.path, strerror(errno));
    else if (is_dir(u.old) && is_dir(u.tmp))
        rc = resume(&u);
    else
        rc = kvs_seterr(KVS_EINVAL, "%s: no such directory%s", u.path,
                        is_dir(u.old) ? " (the backup of an upgrade is there, without the new "
                                        "store: rename it back to restore the old store)"
                                      : "");
    close_segs(&u);
    salv_free(&u.tab);
    return rc;
}
