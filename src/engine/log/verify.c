/*
 * verify.c — the offline walk of a data directory (verify.h) and kvs_verify for the log engine.
 *
 * It stands apart from the open store, as upgrade.c does: it reads the files with the format
 * code (manifest.c, segment.c, hint.c) and changes nothing — segments and hints are opened
 * read-only, the MANIFEST read into memory — so it may run on a copy, a checkpoint, or a store
 * whose open would refuse it. What it checks, and what each finding means:
 *
 *   MANIFEST   every edit whole, its checksum good, its ids consistent (man_walk): a damaged edit
 *              is reported at its offset and skipped; the valid ones give the live segments;
 *   NNNNNN.log every segment the edits name is present and opens (header, version); every
 *              record's header checksum, lengths and value checksum (seg_scan): a damaged
 *              value is reported at its record's offset, a damaged header at its offset with
 *              the bytes after it, which cannot be read; the active segment's tail as recovery
 *              judges it (a torn append is damage: writes may be lost there); seqs rising along
 *              the active segment (the write path appends in seq order; compaction's outputs
 *              hold older records in any order, so only the active one is checked);
 *   NNNNNN.hint each entry decoded and compared with the record at its offset (seq, flags,
 *              lengths, expiry, key), the count with the records the scan found, the header with
 *              its segment, the footer checksum;
 *   the rest   a segment file no edit names is damage unless it is explained: dropped by an
 *              edit (a compaction victim whose deletion a crash interrupted), or holding
 *              nothing but its header (a creation cut short) — both notes, removed by the next
 *              open; so are temporary files and hints of segments that are not live.
 * Offsets are bytes from the start of the file.
 */
#include "engine/log/verify.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/log/hint.h"
#include "engine/log/logdb.h"
#include "util/array.h"
#include "util/err.h"
#include "util/io.h"

void walk_finding(walk *w, int bad, const char *file, uint64_t off, const char *fmt, ...)
{
    char what[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (bad)
        w->bad++;
    else
        w->notes++;
    if (w->fn)
        w->fn(w->ctx, bad, file, off, what);
}

static void man_bad(void *ctx, uint64_t off, const char *what)
{
    walk_finding(ctx, 1, MAN_FILE, off, "%s", what);
}

/* ---- segments ---- */

/* One segment's scan: its records (for its hint), and what goes to the table. */
typedef struct scan_ctx {
    walk *w;
    const seg *s;
    const char *name;
    uint32_t segi;
    bool ordered;      /* the active segment: seqs rise */
    uint64_t last_seq;
    seg_rec *recs;
    size_t n, cap;
} scan_ctx;

static int take_record(void *arg, const seg_rec *r)
{
    scan_ctx *c = arg;
    walk *w = c->w;

    w->records++;
    w->bytes += r->len;
    if (ARR_RESERVE(c->recs, c->cap, c->n + 1) < 0)
        return KVS_ENOMEM;
    /* key and value as they lie in the segment's own mapping, which outlives the walk (the
     * scan's is gone when it returns) */
    seg_rec *k = &c->recs[c->n++];
    *k = *r;
    k->key = c->s->map + r->off + REC_HDR;
    k->val = k->key + r->klen;
    if (r->damaged) {
        w->dropped++;
        w->dropped_bytes += r->len;
        walk_finding(w, 1, c->name, r->off, "damaged record: its value fails its checksum (key "
                     "of %u bytes, seq %llu)", r->klen, (unsigned long long)r->seq);
    }
    if (c->ordered && r->seq <= c->last_seq)
        walk_finding(w, 1, c->name, r->off, "seq %llu is not above the previous record's %llu",
                     (unsigned long long)r->seq, (unsigned long long)c->last_seq);
    c->last_seq = r->seq;
    salv_rec s = {k->key, k->val, r->seq, r->off, r->expire_ms, r->klen, r->vlen, c->segi,
                  r->flags, r->damaged};
    return salv_put(&w->keys, &s);
}

static void judge_tail(walk *w, const char *name, const seg_scan_result *res)
{
    if (res->tail == SEG_TAIL_NONE)
        return;
    if (res->tail == SEG_TAIL_ZERO) {
        walk_finding(w, 0, name, res->valid_end, "%llu bytes of zeros after the last record "
                     "(room never written; the next open cuts them)",
                     (unsigned long long)res->tail_bytes);
        return;
    }
    w->dropped++;
    w->dropped_bytes += res->tail_bytes;
    if (res->tail == SEG_TAIL_TORN)
        walk_finding(w, 1, name, res->valid_end, "torn tail: %llu bytes of an append a crash cut "
                     "short (the next open truncates them)", (unsigned long long)res->tail_bytes);
    else
        walk_finding(w, 1, name, res->valid_end, "damaged record header: the %llu bytes from "
                     "here cannot be read", (unsigned long long)res->tail_bytes);
}

static int by_off(const void *a, const void *b)
{
    uint64_t x = ((const seg_rec *)a)->off, y = ((const seg_rec *)b)->off;
    return x < y ? -1 : x > y;
}

/* The record the scan found at off, or NULL. */
static const seg_rec *record_at(const scan_ctx *c, uint64_t off)
{
    seg_rec key = {.off = off};
    return bsearch(&key, c->recs, c->n, sizeof *c->recs, by_off);
}

/* Each entry of s's hint against the records the scan found; then the count and footer. */
static void check_hint_entries(walk *w, const scan_ctx *c, const char *name,
                               const unsigned char *m, size_t n, const seg *s)
{
    size_t p = HINT_HDR, end = n - 8;
    uint32_t count = le_get32(m + 12), i;
    seg_rec e;

    for (i = 0; i < count && p < end; i++) {
        int ok = hint_entry_decode(m + p, end - p, s->size, &e);
        if (ok < 0) {
            walk_finding(w, 1, name, p, "entry %u runs past the end of the entries", i);
            return;
        }
        w->hint_entries++;
        const seg_rec *r = ok ? record_at(c, e.off) : NULL;
        if (!r)
            walk_finding(w, 1, name, p, "entry %u names no record (offset %llu of %s)", i,
                         (unsigned long long)e.off, s->path);
        else if (r->seq != e.seq || r->flags != e.flags || r->klen != e.klen ||
                 r->vlen != e.vlen || r->expire_ms != e.expire_ms ||
                 memcmp(r->key, e.key, e.klen) != 0)
            walk_finding(w, 1, name, p, "entry %u does not match the record at offset %llu", i,
                         (unsigned long long)e.off);
        p += HINT_ENTRY + e.klen;
    }
    if (i != count || p != end || count != c->n)
        walk_finding(w, 1, name, HINT_HDR, "lists %u entries in %zu bytes; the segment holds "
                     "%zu records", count, end - HINT_HDR, c->n);
    if (!hint_sum_ok(m, n))
        walk_finding(w, 1, name, end, "checksum fails");
}

/* s's hint file, if it has one. */
static void check_hint(walk *w, const scan_ctx *c, const seg *s)
{
    char name[SEG_NAME_MAX], path[PATH_MAX];
    struct stat st;

    seg_name(name, sizeof name, s->id, "hint");
    if (io_join(path, sizeof path, w->dir, name) < 0)
        return;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT)
            walk_finding(w, 1, name, 0, "cannot be opened: %s", strerror(errno));
        return;
    }
    if (fstat(fd, &st) < 0 || st.st_size < (off_t)(HINT_HDR + 8)) {
        close(fd);
        walk_finding(w, 1, name, 0, "too short to be a hint file");
        return;
    }
    size_t n = (size_t)st.st_size;
    unsigned char *m = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        walk_finding(w, 1, name, 0, "cannot be read: %s", strerror(errno));
        return;
    }
    if (le_get32(m) != HINT_MAGIC || le_get16(m + 4) != HINT_VERSION)
        walk_finding(w, 1, name, 0, "not a hint file of this format (magic or version)");
    else if (le_get32(m + 8) != s->id || le_get64(m + 16) != s->size)
        walk_finding(w, 1, name, 8, "describes segment %u of %llu bytes; %s has %llu",
                     le_get32(m + 8), (unsigned long long)le_get64(m + 16), s->path,
                     (unsigned long long)s->size);
    else
        check_hint_entries(w, c, name, m, n, s);
    munmap(m, n);
}

/* Open, scan and keep segment id; live: named by the MANIFEST (its hint checked too). */
static int walk_segment(walk *w, uint32_t id, bool live)
{
    char name[SEG_NAME_MAX];
    seg_scan_result res;
    seg *s;
    int rc;

    seg_name(name, sizeof name, id, "log");
    if ((rc = seg_open(w->dir, id, false, &s)) < 0) {
        if (rc == KVS_ENOMEM)
            return rc;
        walk_finding(w, 1, name, 0, "%s%s", live ? "named by the MANIFEST, but " : "",
                     kvs_last_error());
        return 0;
    }
    if (ARR_RESERVE(w->segs, w->nsegs_cap, (size_t)w->nsegs + 1) < 0) {
        seg_close(s);
        return KVS_ENOMEM;
    }
    w->segs[w->nsegs] = s;
    bool active = live && id == w->st.active;
    scan_ctx c = {.w = w, .s = s, .name = name, .segi = w->nsegs++, .ordered = active};
    rc = (active ? seg_scan_active : seg_scan)(s, take_record, &c, &res);
    if (rc == 0) {
        judge_tail(w, name, &res);
        if (live && !active && !w->salvage) /* a salvage reads no hints */
            check_hint(w, &c, s);
    }
    free(c.recs);
    close(s->fd); /* the mapping stays: a store of many segments needs no descriptor each */
    s->fd = -1;
    return rc;
}

/* ---- the directory ---- */

static bool is_temporary(const char *name)
{
    return strcmp(name, MAN_FILE ".tmp") == 0 || strcmp(name, "ENGINE.tmp") == 0 ||
           strcmp(name, "INDEX.tmp") == 0 || strcmp(name, "INDEX.old") == 0 ||
           seg_parse_name(name, "hint.tmp");
}

/* A segment file the MANIFEST does not name: explained (a note), or damage; salvage reads the
 * ones never dropped. */
static int judge_unnamed(walk *w, const char *name, uint32_t id)
{
    char path[PATH_MAX];
    struct stat st;

    if (man_state_dropped(&w->st, id)) {
        walk_finding(w, 0, name, 0, "dropped by the MANIFEST: a compaction's old segment whose "
                     "deletion a crash interrupted (the next open deletes it)");
        return 0;
    }
    if (io_join(path, sizeof path, w->dir, name) == 0 && stat(path, &st) == 0 &&
        st.st_size <= (off_t)SEG_HDR) {
        walk_finding(w, 0, name, 0, "not named by the MANIFEST and holds no record (a creation "
                     "cut short; the next open removes it)");
        return 0;
    }
    /* for a salvage it is what a lost edit may have added: read, so not a loss (a note) */
    walk_finding(w, !w->salvage, name, 0, "a segment file the MANIFEST does not name%s",
                 w->salvage ? ": its records are read with the others" : "");
    return w->salvage ? walk_segment(w, id, false) : 0;
}

static int walk_files(walk *w)
{
    DIR *d = opendir(w->dir);
    struct dirent *de;
    uint32_t id;
    int rc = 0;

    if (!d)
        return kvs_seterr(kvs_errno(errno), "open directory %s: %s", w->dir, strerror(errno));
    while (rc == 0 && (de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        if (is_temporary(name))
            walk_finding(w, 0, name, 0, "a temporary file a crash left (the next open removes "
                         "it)");
        else if ((id = seg_parse_name(name, "log")) && !man_state_has(&w->st, id))
            rc = judge_unnamed(w, name, id);
        else if ((id = seg_parse_name(name, "hint")) && !man_state_has(&w->st, id))
            walk_finding(w, 0, name, 0, "the hint of a segment that is not live (the next open "
                         "removes it)");
    }
    closedir(d);
    return rc;
}

int walk_dir(walk *w)
{
    int rc = man_walk(w->dir, man_bad, w, &w->st, &w->edits);

    if (rc == KVS_ENOTFOUND)
        return kvs_seterr(KVS_EINVAL, "%s holds no store of the kvs engine (no %s)", w->dir,
                          MAN_FILE);
    if (rc == KVS_ECORRUPT) /* reported: no segment can be known live */
        return walk_files(w);
    if (rc < 0)
        return rc;
    if (w->st.n == 0)
        walk_finding(w, 1, MAN_FILE, 0, "names no live segment");
    else if (!w->st.active)
        walk_finding(w, 1, MAN_FILE, 0, "names no active segment");
    for (uint32_t i = 0; i < w->st.n && rc == 0; i++)
        rc = walk_segment(w, w->st.ids[i], true);
    return rc == 0 ? walk_files(w) : rc;
}

void walk_free(walk *w)
{
    for (uint32_t i = 0; i < w->nsegs; i++)
        seg_close(w->segs[i]);
    free(w->segs);
    salv_free(&w->keys);
    man_state_free(&w->st);
}

int ldb_verify(const char *dir, kvs_finding_fn fn, void *ctx, kvs_verify_report *out)
{
    walk w = {.dir = dir, .fn = fn, .ctx = ctx};
    int rc = walk_dir(&w);

    for (size_t i = 0; i < w.keys.cap; i++) {
        const salv_key *e = &w.keys.tab[i];
        if (e->best.key && e->best.seq && !e->dseq && !(e->best.flags & REC_TOMBSTONE))
            out->keys++;
    }
    out->segments = w.nsegs;
    out->records = w.records;
    out->bytes = w.bytes;
    out->hint_entries = w.hint_entries;
    out->manifest_edits = w.edits;
    out->bad = w.bad;
    out->notes = w.notes;
    walk_free(&w);
    if (rc == 0 && out->bad)
        rc = kvs_seterr(KVS_ECORRUPT, "%s: %llu problems found", dir,
                        (unsigned long long)out->bad);
    return rc;
}
