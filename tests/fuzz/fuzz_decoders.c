/*
 * fuzz_decoders.c — the decoders of the kvs engine's on-disk formats, each against the format
 * table in its header and, where the format allows one, a reference reading written here from
 * that table alone.
 *
 * Input: a selector byte, a flags byte, then the bytes of one record or file.
 *   0  record (record.h): rec_decode on the header; with key and value after it, rec_verify and
 *      rec_head_ok both ways (key right after the header: one pass; key elsewhere: the streaming
 *      sum) — they must agree — and rec_encode of what was decoded gives back the same header
 *      whenever the record verified.
 *   1  segment file (segment.h): seg_open, then seg_scan and seg_scan_active. Every record
 *      handed out lies in the file, in order and back to back from the header, with the bytes the
 *      file holds there (its expiry time too) and the checksums its damaged flag says; the scan results add up
 *      (valid_end + tail_bytes = size, a zero tail is zeros). The sealed scan must hand out
 *      exactly the records a reference walk finds. When it reaches the end cleanly, hint_write
 *      and hint_load must give back the same records, expiry times included.
 *   2  hint file (hint.h) for a segment whose size the input gives: hint_load must accept it
 *      exactly when a reference check of the table does, hand out the entries as they lie in
 *      the file, and call back nothing when it refuses.
 *   3  MANIFEST (manifest.h): man_open must agree with a reference replay (live ids, dropped
 *      ids, active, the lost last edit, or refusal); an accepted state is then cut back
 *      (man_drop_tail), rewritten (man_reset) and appended to (man_append), each reopened and
 *      compared.
 * Flags bit 0 (and for segments bit 1) have the target put right checksums into the bytes
 * before the decoder sees them, so the fuzzer gets past them to the structure behind; the
 * decoders must hold with wrong checksums too (bit clear).
 *
 * Files are written to a scratch directory (tmpfs when there is one) where the API reads a file.
 */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/log/hint.h"
#include "engine/log/manifest.h"
#include "engine/log/record.h"
#include "engine/log/segment.h"
#include "fuzzutil.h"
#include "kvs.h"
#include "util/checksum.h"
#include "util/io.h"

static char dir[4096];

/* A heap copy of exactly n bytes (ASan sees reads past them). */
static uint8_t *dup_exact(const void *p, size_t n)
{
    uint8_t *b = malloc(n ? n : 1);
    FZ_CHECK(b, "out of memory");
    if (n)
        memcpy(b, p, n);
    return b;
}

static void path_of(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

/* ---- records ---- */

static void fuzz_record(const uint8_t *p, size_t n, uint8_t flags)
{
    uint8_t *hdr = calloc(1, REC_HDR);
    rec_hdr h;

    FZ_CHECK(hdr, "out of memory");
    memcpy(hdr, p, n < REC_HDR ? n : REC_HDR);
    if (!rec_decode(hdr, &h)) {
        free(hdr);
        return;
    }
    FZ_CHECK(h.klen <= KVS_MAX_KEY && h.vlen <= KVS_MAX_VALUE && h.seq != 0 &&
                 !(h.flags & ~(REC_TOMBSTONE | REC_GROUP_MORE)) &&
                 (!(h.flags & REC_TOMBSTONE) || h.vlen == 0),
             "rec_decode accepted klen %u vlen %u seq %llu flags %#x", h.klen, h.vlen,
             (unsigned long long)h.seq, h.flags);
    size_t body = n > REC_HDR ? n - REC_HDR : 0;
    if ((uint64_t)h.klen + h.vlen > body) {
        free(hdr);
        return;
    }
    const uint8_t *kp = p + REC_HDR, *vp = kp + h.klen;
    if (flags & 1) { /* the right checksums for these fields, key and value */
        rec_encode(hdr, h.seq, h.flags, h.expire_ms, kp, h.klen, vp, h.vlen);
        FZ_CHECK(rec_decode(hdr, &h), "rec_decode refuses what rec_encode wrote");
    }
    uint8_t *key = dup_exact(kp, h.klen), *val = dup_exact(vp, h.vlen);
    uint8_t *rec = malloc(rec_len(h.klen, h.vlen));
    FZ_CHECK(rec, "out of memory");
    memcpy(rec, hdr, REC_HDR);
    memcpy(rec + REC_HDR, key, h.klen);
    memcpy(rec + REC_HDR + h.klen, val, h.vlen);

    bool head_apart = rec_head_ok(hdr, key, h.klen);
    bool head_inline = rec_head_ok(rec, rec + REC_HDR, h.klen);
    FZ_CHECK(head_apart == head_inline, "rec_head_ok: %d with the key apart, %d right after it",
             head_apart, head_inline);
    bool ok = rec_verify(hdr, key, h.klen, val, h.vlen);
    FZ_CHECK(ok == (head_apart && rec_value_ok(hdr, val, h.vlen)), "rec_verify disagrees");
    FZ_CHECK(!(flags & 1) || ok, "a record encoded by rec_encode does not verify");
    if (ok) {
        uint8_t again[REC_HDR];
        rec_hdr h2;
        rec_encode(again, h.seq, h.flags, h.expire_ms, key, h.klen, val, h.vlen);
        FZ_CHECK(memcmp(again, hdr, REC_HDR) == 0, "rec_encode does not give back the header");
        FZ_CHECK(rec_decode(again, &h2) && h2.seq == h.seq && h2.klen == h.klen &&
                     h2.vlen == h.vlen && h2.flags == h.flags && h2.expire_ms == h.expire_ms &&
                     h2.hcrc == h.hcrc && h2.vcrc == h.vcrc,
                 "decode(encode(fields)) differs");
    }
    free(rec);
    free(key);
    free(val);
    free(hdr);
}

/* ---- segments ---- */

/* A record as found: where, how long, what, and whether its value is damaged. */
typedef struct found {
    uint64_t off, len, seq, expire_ms;
    uint32_t klen, vlen;
    uint8_t flags;
    bool damaged;
} found;

typedef struct found_list {
    found *v;
    size_t n, cap;
} found_list;

static void found_add(found_list *l, const found *f)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        found *v = realloc(l->v, cap * sizeof *v);
        FZ_CHECK(v, "out of memory");
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *f;
}

static void seg_fix(uint8_t *b, size_t n, uint8_t flags)
{
    if ((flags & 1) && n >= SEG_HDR) {
        le_put32(b, SEG_MAGIC);
        le_put16(b + 4, SEG_VERSION);
        le_put16(b + 6, 0);
        le_put32(b + 8, 1);
        le_put32(b + 12, cksum32(b, 12));
    }
    if (!(flags & 2))
        return;
    /* right checksums, as the format table defines them, for every record whose header
     * decodes and whose key fits; values too unless bit 2 asks for damaged ones (every other
     * record). hcrc covers bytes 8 .. end of key; vcrc the value. */
    size_t off = SEG_HDR, i = 0;
    rec_hdr h;
    while (off + REC_HDR <= n && rec_decode(b + off, &h) && h.klen <= n - off - REC_HDR) {
        uint64_t len = rec_len(h.klen, h.vlen);
        le_put32(b + off, cksum32(b + off + 8, REC_HDR - 8 + (size_t)h.klen));
        if (len > n - off)
            break; /* cut by the end of the file */
        uint32_t vcrc = cksum32(b + off + REC_HDR + h.klen, h.vlen);
        le_put32(b + off + 4, (flags & 4) && (i & 1) ? ~vcrc : vcrc);
        off += (size_t)len;
        i++;
    }
}

/* The records a sealed scan must hand out, read from the format table: from the header on,
 * records whose header checksum holds and whose extent fits; stop at the first that does not. */
static void reference_scan(const uint8_t *b, size_t n, found_list *out, uint64_t *end)
{
    size_t off = SEG_HDR;
    rec_hdr h;

    *end = SEG_HDR;
    while (off < n) {
        if (n - off < REC_HDR || !rec_decode(b + off, &h) || h.klen > n - off - REC_HDR ||
            !rec_head_ok(b + off, b + off + REC_HDR, h.klen))
            break;
        uint64_t len = rec_len(h.klen, h.vlen);
        if (len > n - off)
            break;
        found f = {off, len, h.seq, h.expire_ms, h.klen, h.vlen, h.flags,
                   !rec_value_ok(b + off, b + off + REC_HDR + h.klen, h.vlen)};
        found_add(out, &f);
        off += (size_t)len;
        *end = off;
    }
}

typedef struct scan_ctx {
    const uint8_t *file;
    size_t size;
    bool from_hint;
    uint64_t next;   /* where the next record must begin */
    found_list got;
} scan_ctx;

static int on_record(void *arg, const seg_rec *r)
{
    scan_ctx *c = arg;

    FZ_CHECK(r->off >= SEG_HDR && r->off <= c->size && r->len <= c->size - r->off,
             "record at %llu+%llu outside the file of %zu bytes", (unsigned long long)r->off,
             (unsigned long long)r->len, c->size);
    FZ_CHECK(r->len == rec_len(r->klen, r->vlen), "record length %llu for klen %u vlen %u",
             (unsigned long long)r->len, r->klen, r->vlen);
    FZ_CHECK(r->seq != 0 && !(r->flags & ~(REC_TOMBSTONE | REC_GROUP_MORE)),
             "record with seq 0 or bad flags");
    FZ_CHECK(memcmp(r->key, c->file + r->off + REC_HDR, r->klen) == 0,
             "the key handed out is not the file's at %llu", (unsigned long long)r->off);
    FZ_CHECK(r->expire_ms == le_get64(c->file + r->off + 25),
             "the expiry handed out is not the file's (record.h: bytes 25..32) at %llu",
             (unsigned long long)r->off);
    if (!c->from_hint) {
        FZ_CHECK(r->off == c->next, "record at %llu, expected at %llu (back to back)",
                 (unsigned long long)r->off, (unsigned long long)c->next);
        FZ_CHECK(r->val && memcmp(r->val, c->file + r->off + REC_HDR + r->klen, r->vlen) == 0,
                 "the value handed out is not the file's");
        const uint8_t *h = c->file + r->off;
        FZ_CHECK(rec_head_ok(h, h + REC_HDR, r->klen), "a record whose header fails is handed out");
        FZ_CHECK(r->damaged == !rec_value_ok(h, h + REC_HDR + r->klen, r->vlen),
                 "damaged is %d for a record whose value %s", r->damaged,
                 r->damaged ? "verifies" : "fails");
    }
    c->next = r->off + r->len;
    found f = {r->off, r->len, r->seq, r->expire_ms, r->klen, r->vlen, r->flags, r->damaged};
    found_add(&c->got, &f);
    return 0;
}

static void check_result(const seg_scan_result *res, const scan_ctx *c, bool active)
{
    FZ_CHECK(res->valid_end >= SEG_HDR && res->valid_end <= c->size &&
                 res->valid_end + res->tail_bytes == c->size,
             "valid_end %llu + tail %llu for a file of %zu", (unsigned long long)res->valid_end,
             (unsigned long long)res->tail_bytes, c->size);
    FZ_CHECK(res->records == c->got.n, "%llu records counted, %zu handed out",
             (unsigned long long)res->records, c->got.n);
    size_t damaged = 0;
    for (size_t i = 0; i < c->got.n; i++)
        damaged += c->got.v[i].damaged;
    FZ_CHECK(res->damaged == damaged, "%llu damaged counted, %zu handed out",
             (unsigned long long)res->damaged, damaged);
    FZ_CHECK(res->tail >= SEG_TAIL_NONE && res->tail <= SEG_TAIL_CORRUPT, "tail %d", res->tail);
    /* A sealed scan never judges a tail torn, even after a record of seq UINT64_MAX
     * (regressions/fuzz_decoders/sealed-scan-torn-at-max-seq). */
    FZ_CHECK(active || res->tail != SEG_TAIL_TORN,
             "a torn tail from a sealed scan");
    FZ_CHECK((res->tail == SEG_TAIL_NONE) == (res->tail_bytes == 0),
             "tail kind %d with %llu bytes", res->tail, (unsigned long long)res->tail_bytes);
    FZ_CHECK(res->valid_end == c->next, "valid_end %llu, the last record handed out ends at %llu",
             (unsigned long long)res->valid_end, (unsigned long long)c->next);
    if (res->tail == SEG_TAIL_ZERO)
        for (size_t i = res->valid_end; i < c->size; i++)
            FZ_CHECK(c->file[i] == 0, "a zero tail with byte %zu not zero", i);
}

static bool same_records(const found_list *a, const found_list *b, bool damaged_too)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        const found *x = &a->v[i], *y = &b->v[i];
        if (x->off != y->off || x->len != y->len || x->seq != y->seq ||
            x->expire_ms != y->expire_ms || x->klen != y->klen || x->vlen != y->vlen ||
            x->flags != y->flags || (damaged_too && x->damaged != y->damaged))
            return false;
    }
    return true;
}

static void fuzz_segment(const uint8_t *p, size_t n, uint8_t flags)
{
    char path[4200];
    uint8_t *b = dup_exact(p, n);
    seg *s;
    seg_scan_result res;

    seg_fix(b, n, flags);
    path_of(path, sizeof path, "000001.log");
    FZ_CHECK(fz_write_file(path, b, n) == 0, "cannot write %s", path);
    int rc = seg_open(dir, 1, false, &s);
    if (rc < 0) {
        FZ_CHECK(rc == KVS_ECORRUPT || rc == KVS_EVERSION || rc == KVS_EFORMAT, "seg_open: %s",
                 kvs_strerror(rc));
        FZ_CHECK(!(flags & 1) || n < SEG_HDR, "seg_open refused a right header: %s",
                 kvs_last_error());
        free(b);
        return;
    }
    FZ_CHECK(s->size == n, "segment size %llu for a file of %zu", (unsigned long long)s->size, n);

    scan_ctx sealed = {b, n, false, SEG_HDR, {0}};
    FZ_CHECK(seg_scan(s, on_record, &sealed, &res) == 0, "seg_scan failed: %s", kvs_last_error());
    check_result(&res, &sealed, false);
    found_list ref = {0};
    uint64_t ref_end;
    reference_scan(b, n, &ref, &ref_end);
    FZ_CHECK(same_records(&ref, &sealed.got, true) && (n <= SEG_HDR || res.valid_end == ref_end),
             "seg_scan handed out %zu records up to %llu, the format table says %zu up to %llu",
             sealed.got.n, (unsigned long long)res.valid_end, ref.n,
             (unsigned long long)ref_end);

    scan_ctx active = {b, n, false, SEG_HDR, {0}};
    seg_scan_result ares;
    FZ_CHECK(seg_scan_active(s, on_record, &active, &ares) == 0, "seg_scan_active failed: %s",
             kvs_last_error());
    check_result(&ares, &active, true);
    /* the active scan hands out a prefix of the sealed scan's records (it holds back damaged
     * ones at a torn end) */
    FZ_CHECK(active.got.n <= sealed.got.n, "the active scan found more records");
    found_list prefix = {sealed.got.v, active.got.n, active.got.n};
    FZ_CHECK(same_records(&active.got, &prefix, true),
             "the active scan's records are not the sealed scan's first ones");

    if (res.tail == SEG_TAIL_NONE) {
        scan_ctx hinted = {b, n, true, SEG_HDR, {0}};
        char hpath[4200];
        FZ_CHECK(hint_write(dir, s) == 0, "hint_write failed: %s", kvs_last_error());
        FZ_CHECK(hint_load(dir, s, on_record, &hinted) == 0, "hint_load of a fresh hint: %s",
                 kvs_last_error());
        FZ_CHECK(same_records(&sealed.got, &hinted.got, false),
                 "the hint gives back %zu records, the scan found %zu", hinted.got.n,
                 sealed.got.n);
        path_of(hpath, sizeof hpath, "000001.hint");
        unlink(hpath);
        free(hinted.got.v);
    }
    seg_close(s);
    free(ref.v);
    free(sealed.got.v);
    free(active.got.v);
    free(b);
}

/* ---- hint files ---- */

/* The number of entries that fit back to back between the header and the footer. */
static uint32_t count_entries(const uint8_t *b, size_t n)
{
    size_t p = HINT_HDR, end = n - 8;
    uint32_t k = 0;

    while (end - p >= HINT_ENTRY && le_get32(b + p + 16) <= end - p - HINT_ENTRY) {
        p += HINT_ENTRY + le_get32(b + p + 16);
        k++;
    }
    return k;
}

static uint64_t hint_sum(const uint8_t *b, size_t n)
{
    uint8_t *t = malloc(n - 8);
    FZ_CHECK(t, "out of memory");
    memcpy(t, b + HINT_HDR, n - 8 - HINT_HDR);
    memcpy(t + n - 8 - HINT_HDR, b, HINT_HDR);
    uint64_t sum = cksum64(t, n - 8);
    free(t);
    return sum;
}

/* Does the format table accept b as the hint of a segment 1 of size bytes? */
static bool reference_hint(const uint8_t *b, size_t n, uint64_t size)
{
    if (n < HINT_HDR + 8 || le_get64(b + n - 8) != hint_sum(b, n))
        return false;
    if (le_get32(b) != HINT_MAGIC || le_get16(b + 4) != HINT_VERSION || le_get32(b + 8) != 1 ||
        le_get64(b + 16) != size)
        return false;
    size_t p = HINT_HDR, end = n - 8;
    for (uint32_t i = 0, count = le_get32(b + 12); i < count; i++) {
        if (end - p < HINT_ENTRY)
            return false;
        uint64_t off = le_get32(b + p + 8);
        uint32_t vlen = le_get32(b + p + 12), klen = le_get32(b + p + 16);
        uint8_t fl = b[p + 20];
        /* flags as a record's (record.h): tombstone and group bits only, a tombstone empty */
        if (le_get64(b + p) == 0 || klen > KVS_MAX_KEY || vlen > KVS_MAX_VALUE ||
            (fl & ~(REC_TOMBSTONE | REC_GROUP_MORE)) || ((fl & REC_TOMBSTONE) && vlen != 0) ||
            klen > end - p - HINT_ENTRY || off < SEG_HDR || off + rec_len(klen, vlen) > size)
            return false;
        p += HINT_ENTRY + klen;
    }
    return p == end;
}

typedef struct hint_ctx {
    const uint8_t *file;
    size_t n, p;
    uint64_t size;
    uint32_t calls;
} hint_ctx;

static int on_hint_entry(void *arg, const seg_rec *r)
{
    hint_ctx *c = arg;
    const uint8_t *e = c->file + c->p;

    c->calls++;
    FZ_CHECK(c->p + HINT_ENTRY + r->klen <= c->n - 8, "entry %u past the footer", c->calls);
    FZ_CHECK(r->seq == le_get64(e) && r->off == le_get32(e + 8) && r->vlen == le_get32(e + 12) &&
                 r->klen == le_get32(e + 16) && r->flags == e[20] &&
                 r->expire_ms == le_get64(e + 21) && !r->val,
             "entry %u is not what the file holds", c->calls);
    FZ_CHECK(memcmp(r->key, e + HINT_ENTRY, r->klen) == 0, "entry %u's key is not the file's",
             c->calls);
    FZ_CHECK(r->off >= SEG_HDR && r->off + r->len <= c->size && r->len == rec_len(r->klen, r->vlen),
             "entry %u outside the segment", c->calls);
    c->p += HINT_ENTRY + r->klen;
    return 0;
}

static void fuzz_hint(const uint8_t *p, size_t n, uint8_t flags, uint64_t size)
{
    char path[4200];
    size_t len = n < HINT_HDR + 8 && (flags & 1) ? HINT_HDR + 8 : n;
    uint8_t *b = calloc(1, len ? len : 1);
    seg *s = calloc(1, sizeof *s + sizeof path);

    FZ_CHECK(b && s, "out of memory");
    memcpy(b, p, n);
    if ((flags & 1) && len >= HINT_HDR + 8) {
        le_put32(b, HINT_MAGIC);
        le_put16(b + 4, HINT_VERSION);
        le_put16(b + 6, 0);
        le_put32(b + 8, 1);
        if (flags & 2)
            le_put32(b + 12, count_entries(b, len));
        le_put64(b + 16, size);
        le_put64(b + len - 8, hint_sum(b, len));
    }
    path_of(path, sizeof path, "000001.hint");
    FZ_CHECK(fz_write_file(path, b, len) == 0, "cannot write %s", path);
    s->id = 1;
    s->size = size;
    s->fd = -1;
    path_of(s->path, sizeof path, "000001.log");

    hint_ctx c = {b, len, HINT_HDR, size, 0};
    int rc = hint_load(dir, s, on_hint_entry, &c);
    bool want = reference_hint(b, len, size);
    FZ_CHECK((rc == 0) == want, "hint_load says %s, the format table says %s",
             rc == 0 ? "valid" : kvs_strerror(rc), want ? "valid" : "invalid");
    if (rc == 0)
        FZ_CHECK(c.calls == le_get32(b + 12) && c.p == len - 8,
                 "%u entries handed out of %u, ending at %zu of %zu", c.calls, le_get32(b + 12),
                 c.p, len - 8);
    else
        FZ_CHECK(rc == KVS_ECORRUPT && c.calls == 0,
                 "a refused hint (%s) handed out %u entries", kvs_strerror(rc), c.calls);
    free(s);
    free(b);
}

/* ---- the manifest ---- */

typedef struct ref_man {
    int rc;              /* 0, or the KVS_E* code man_open must give */
    uint32_t active, max_id;
    uint32_t ids[512], n;
    uint32_t dropped[512], nd;
    uint64_t size, lost_off, lost_bytes;
    uint32_t edits;
} ref_man;

static bool valid_edit(const uint8_t *b, size_t size, size_t off, uint32_t *plen)
{
    if (size - off < 8)
        return false;
    *plen = le_get32(b + off + 4);
    if (*plen < 12 || *plen > size - off - 8)
        return false;
    return le_get32(b + off) == cksum32(b + off + 4, (size_t)*plen + 4);
}

static int ids_find(const uint32_t *v, uint32_t n, uint32_t id)
{
    for (uint32_t i = 0; i < n; i++)
        if (v[i] == id)
            return (int)i;
    return -1;
}

static void ids_sorted_insert(uint32_t *v, uint32_t *n, uint32_t id)
{
    uint32_t i = (*n)++;
    while (i > 0 && v[i - 1] > id) {
        v[i] = v[i - 1];
        i--;
    }
    v[i] = id;
}

/* Replay as manifest.h's table and rules say. Only manifests whose ids fit the arrays here are
 * judged (ref->rc = 1: not judged). */
static void reference_manifest(const uint8_t *b, size_t size, ref_man *r)
{
    size_t off = MAN_HDR;
    uint32_t plen;

    memset(r, 0, sizeof *r);
    if (size < MAN_HDR || le_get32(b) != MAN_MAGIC) {
        r->rc = KVS_ECORRUPT;
        return;
    }
    if (le_get16(b + 4) != MAN_VERSION) {
        r->rc = KVS_EVERSION;
        return;
    }
    while (off < size) {
        if (!valid_edit(b, size, off, &plen)) {
            for (size_t q = off + 1; q < size; q++)
                if (valid_edit(b, size, q, &plen)) {
                    r->rc = KVS_ECORRUPT; /* damage with valid edits after it */
                    return;
                }
            r->lost_off = off;
            r->lost_bytes = size - off;
            break;
        }
        const uint8_t *e = b + off + 8;
        uint32_t active = le_get32(e), na = le_get32(e + 4), nd = le_get32(e + 8);
        if (na > MAN_MAX_IDS || nd > MAN_MAX_IDS || plen != 12 + 4 * (uint64_t)na + 4 * nd) {
            r->rc = KVS_ECORRUPT;
            return;
        }
        for (uint32_t i = 0; i < na; i++) {
            uint32_t id = le_get32(e + 12 + 4 * i);
            if (id == 0 || ids_find(r->ids, r->n, id) >= 0) {
                r->rc = KVS_ECORRUPT;
                return;
            }
            if (r->n == 512) {
                r->rc = 1;
                return;
            }
            ids_sorted_insert(r->ids, &r->n, id);
            if (id > r->max_id)
                r->max_id = id;
        }
        for (uint32_t i = 0; i < nd; i++) {
            uint32_t id = le_get32(e + 12 + 4 * (na + i));
            int at = ids_find(r->ids, r->n, id);
            if (at < 0) {
                r->rc = KVS_ECORRUPT;
                return;
            }
            memmove(r->ids + at, r->ids + at + 1, (r->n - (uint32_t)at - 1) * sizeof *r->ids);
            r->n--;
            /* manifest.h: an id is added at most once in a manifest's history. Replay does not
             * hold a manifest to that (an id dropped, added again and dropped again is
             * accepted, and listed once as dropped); this follows replay. */
            if (ids_find(r->dropped, r->nd, id) >= 0)
                continue;
            if (r->nd == 512) {
                r->rc = 1;
                return;
            }
            ids_sorted_insert(r->dropped, &r->nd, id);
        }
        if (active)
            r->active = active;
        if (r->active && ids_find(r->ids, r->n, r->active) < 0) {
            r->rc = KVS_ECORRUPT;
            return;
        }
        r->edits++;
        off += 8 + (size_t)plen;
    }
    r->size = off;
    if (!r->active)
        r->rc = KVS_ECORRUPT;
}

static void same_state(const man_state *st, const manifest *m, const ref_man *r, const char *when)
{
    FZ_CHECK(st->active == r->active && st->n == r->n && st->ndropped == r->nd &&
                 st->max_id == r->max_id && st->lost_off == r->lost_off &&
                 st->lost_bytes == r->lost_bytes && m->size == r->size && m->edits == r->edits,
             "%s: man_open gives active %u, %u live, %u dropped, max %u, lost %llu+%llu, size "
             "%llu, %u edits; the reference active %u, %u live, %u dropped, max %u, lost "
             "%llu+%llu, size %llu, %u edits",
             when, st->active, st->n, st->ndropped, st->max_id,
             (unsigned long long)st->lost_off, (unsigned long long)st->lost_bytes,
             (unsigned long long)m->size, m->edits, r->active, r->n, r->nd, r->max_id,
             (unsigned long long)r->lost_off, (unsigned long long)r->lost_bytes,
             (unsigned long long)r->size, r->edits);
    FZ_CHECK(r->n == 0 || memcmp(st->ids, r->ids, r->n * sizeof *r->ids) == 0,
             "%s: live ids differ", when);
    FZ_CHECK(r->nd == 0 || memcmp(st->dropped, r->dropped, r->nd * sizeof *r->dropped) == 0,
             "%s: dropped ids differ", when);
}

/* Reopen and compare with the reference replay of what is now in the file. */
static void reopen_check(const char *path, const char *when, manifest *m, man_state *st)
{
    uint8_t *b;
    size_t n;
    ref_man r;

    FZ_CHECK(fz_read_file(path, &b, &n) == 0, "cannot read %s", path);
    reference_manifest(b, n, &r);
    free(b);
    int rc = man_open(dir, m, st);
    FZ_CHECK(rc == 0 && r.rc == 0, "%s: man_open %s, reference %d", when, kvs_strerror(rc), r.rc);
    same_state(st, m, &r, when);
}

static void fix_manifest(uint8_t *b, size_t n, uint8_t flags)
{
    if ((flags & 1) && n >= MAN_HDR) {
        le_put32(b, MAN_MAGIC);
        le_put16(b + 4, MAN_VERSION);
    }
    if (!(flags & 2) || n < MAN_HDR)
        return;
    for (size_t off = MAN_HDR; n - off >= 8;) {
        uint32_t plen = le_get32(b + off + 4);
        if (plen < 12 || plen > n - off - 8)
            break;
        le_put32(b + off, cksum32(b + off + 4, (size_t)plen + 4));
        off += 8 + (size_t)plen;
    }
}

static void fuzz_manifest(const uint8_t *p, size_t n, uint8_t flags)
{
    char path[4200];
    uint8_t *b = dup_exact(p, n);
    manifest m;
    man_state st;
    ref_man r;

    fix_manifest(b, n, flags);
    path_of(path, sizeof path, MAN_FILE);
    FZ_CHECK(fz_write_file(path, b, n) == 0, "cannot write %s", path);
    reference_manifest(b, n, &r);
    free(b);
    int rc = man_open(dir, &m, &st);
    if (r.rc == 1) { /* too many ids for the reference: only the invariants */
        if (rc == 0) {
            man_close(&m);
            man_state_free(&st);
        }
        return;
    }
    FZ_CHECK(rc == r.rc, "man_open gives %d (%s), the reference %d", rc, kvs_last_error(), r.rc);
    if (rc < 0) {
        FZ_CHECK(m.fd < 0 && st.ids == NULL && st.dropped == NULL,
                 "a refused manifest left its state allocated");
        return;
    }
    same_state(&st, &m, &r, "first open");
    if (st.lost_bytes) {
        FZ_CHECK(man_drop_tail(&m) == 0, "man_drop_tail: %s", kvs_last_error());
        man_close(&m);
        man_state_free(&st);
        reopen_check(path, "after man_drop_tail", &m, &st);
        FZ_CHECK(st.lost_bytes == 0, "the lost edit is still there after man_drop_tail");
    }
    /* a rewrite names the same live set and active segment, and nothing dropped */
    uint32_t active = st.active, nids = st.n, max_id = st.max_id;
    uint32_t *ids = malloc((nids ? nids : 1) * sizeof *ids);
    FZ_CHECK(ids, "out of memory");
    memcpy(ids, st.ids, nids * sizeof *ids);
    FZ_CHECK(man_reset(dir, &m, active, ids, nids) == 0, "man_reset: %s", kvs_last_error());
    man_close(&m);
    man_state_free(&st);
    reopen_check(path, "after man_reset", &m, &st);
    FZ_CHECK(st.active == active && st.n == nids && st.ndropped == 0 && m.edits == 1 &&
                 (nids == 0 || memcmp(st.ids, ids, nids * sizeof *ids) == 0),
             "man_reset did not keep the live set");
    /* and an append (a rotation: add the next id, make it active) is there after a reopen */
    if (max_id < UINT32_MAX) {
        uint32_t next = max_id + 1;
        FZ_CHECK(man_append(&m, next, &next, 1, NULL, 0) == 0, "man_append: %s", kvs_last_error());
        man_close(&m);
        man_state_free(&st);
        reopen_check(path, "after man_append", &m, &st);
        FZ_CHECK(st.active == next && man_state_has(&st, next) && st.n == nids + 1,
                 "the appended edit is not in the state");
    }
    man_close(&m);
    man_state_free(&st);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    uint8_t sel = fz_u8(&in), flags = fz_u8(&in);

    if (!dir[0]) {
        fz_quiet();
        fz_path(dir, sizeof dir, "dec");
    }
    FZ_CHECK(fz_rmrf(dir) == 0 && mkdir(dir, 0755) == 0, "cannot make %s", dir);
    switch (sel % 4) {
    case 0:
        fuzz_record(in.p, in.n, flags);
        break;
    case 1:
        fuzz_segment(in.p, in.n, flags);
        break;
    case 2: {
        uint64_t seg_size = fz_u32(&in);
        fuzz_hint(in.p, in.n, flags, seg_size);
        break;
    }
    default:
        fuzz_manifest(in.p, in.n, flags);
    }
    return 0;
}
