/*
 * fuzz_recover.c — opening a kvs store whose files the input has damaged.
 *
 * Once per process a small valid store is built (the template): 4 KiB segments, keys written,
 * overwritten and removed over several rotations, a compaction (so the manifest holds drops and
 * the directory compaction outputs with their hints), more writes after it, a clean close. Its
 * files are kept in memory, and every value ever written for each key (the history).
 *
 * Each input is a list of edits applied to a copy of those files before they are written to a
 * fresh directory. An edit is an op byte, a file byte (an index into the files, sorted by name),
 * then its operands:
 *   0 overwrite bytes      1 flip a bit        2 truncate        3 append bytes
 *   4 delete the file      5 zero a range      6 copy it under another name (segment and hint
 *   names, MANIFEST, ENGINE, INDEX, the temporary names recovery removes, a stray)
 *   7 write a 32-bit little-endian number
 *   8 make its checksums right again after such edits: a segment's header and records, a
 *     hint's footer, the manifest's edits, the saved index's footer — so the fuzzer reaches
 *     damage that checksums cannot see (a hint that lies, an edit naming the wrong segments,
 *     records with other seqs)
 * Then: kvs_open. A refusal is fine if it is a KVS_E* code. If it opens, every key of the
 * history is read: found, not found or KVS_ECORRUPT, and a value served must be one that was
 * written for that key or one that an intact record for that key holds in the files as they were
 * given (never a value that fails its record checksum). Then writes (new values for half the
 * keys, and a new key), a close, and a second open that must succeed and read every key written
 * with its new value, and every other key exactly as the first open did (what recovery leaves,
 * it must accept as it is; what it acknowledges, it must keep). No file descriptor may outlive
 * the input.
 *
 * The engine's background compaction is off (auto_compact 0) so that an input does the same work
 * each time it runs.
 */
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/log/hint.h"
#include "engine/log/saved.h"
#include "engine/log/manifest.h"
#include "engine/log/record.h"
#include "engine/log/segment.h"
#include "fuzzutil.h"
#include "kvs.h"
#include "util/checksum.h"
#include "util/io.h"

#define NKEYS 24
#define MAX_FILES 64

typedef struct file {
    char name[64];
    uint8_t *data;
    size_t len;
    bool gone;
} file;

typedef struct value {
    uint8_t *p;
    size_t n;
} value;

typedef struct key_hist {
    char key[16];
    size_t klen;
    value *v;
    size_t nv;
} key_hist;

static file tmpl[MAX_FILES];
static size_t ntmpl;
static key_hist hist[NKEYS];
static char run_dir[4096];

/* ---- the template ---- */

static int store_open(kvs_t **db, const char *dir)
{
    kvs_options opt;
    int rc;

    kvs_options_init(&opt);
    opt.engine = "kvs";
    opt.sync = KVS_SYNC_NEVER;
    opt.segment_size = 4096;
    opt.auto_compact = 0;
    if ((rc = kvs_create(db)) < 0 || (rc = kvs_configure(*db, &opt)) < 0 ||
        (rc = kvs_open(*db, dir)) < 0) {
        kvs_close(*db);
        *db = NULL;
    }
    return rc;
}

static void hist_add(int k, const uint8_t *p, size_t n)
{
    key_hist *h = &hist[k];
    value *v = realloc(h->v, (h->nv + 1) * sizeof *v);

    FZ_CHECK(v, "out of memory");
    h->v = v;
    v[h->nv].p = malloc(n ? n : 1);
    FZ_CHECK(v[h->nv].p, "out of memory");
    memcpy(v[h->nv].p, p, n);
    v[h->nv].n = n;
    h->nv++;
}

static void put(kvs_t *db, int k, int round)
{
    uint8_t val[400];
    size_t n = (size_t)(k * 37 + round * 101) % 300 + 8;
    fz_rng g;

    fz_rng_seed(&g, (uint64_t)k * 1000 + (uint64_t)round);
    n = (size_t)snprintf((char *)val, sizeof val, "r%d:k%d:", round, k) + n;
    for (size_t i = 8; i < n; i++)
        val[i] = (uint8_t)fz_rng_next(&g);
    FZ_CHECK(kvs_set(db, hist[k].key, hist[k].klen, val, n) == 0, "template: set failed: %s",
             kvs_last_error());
    hist_add(k, val, n);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(((const file *)a)->name, ((const file *)b)->name);
}

static void build_template(void)
{
    char dir[4096];
    kvs_t *db;
    DIR *d;
    struct dirent *de;

    for (int k = 0; k < NKEYS; k++) /* key 0 is empty, key 1 binary */
        hist[k].klen = k == 0 ? 0
                     : k == 1 ? (memcpy(hist[k].key, "\0\xff\r\n", 4), 4)
                              : (size_t)snprintf(hist[k].key, sizeof hist[k].key, "key-%02d", k);
    fz_path(dir, sizeof dir, "template");
    FZ_CHECK(fz_rmrf(dir) == 0, "cannot clear %s", dir);
    FZ_CHECK(store_open(&db, dir) == 0, "template: open failed: %s", kvs_last_error());
    for (int k = 0; k < NKEYS; k++)
        put(db, k, 0);
    for (int k = 0; k < NKEYS; k++) {
        if (k % 3 == 0)
            put(db, k, 1);
        if (k % 5 == 1)
            FZ_CHECK(kvs_remove(db, hist[k].key, hist[k].klen) == 0, "template: remove failed");
    }
    for (int k = 0; k < NKEYS; k += 2)
        put(db, k, 2);
    FZ_CHECK(kvs_compact(db) >= 0, "template: compaction failed: %s", kvs_last_error());
    for (int k = 0; k < NKEYS; k++) {
        if (k % 4 == 2)
            put(db, k, 3);
        if (k % 7 == 3)
            FZ_CHECK(kvs_remove(db, hist[k].key, hist[k].klen) == 0, "template: remove failed");
    }
    for (int k = 0; k < NKEYS; k++)
        put(db, k, 4);
    for (int k = 1; k < NKEYS; k += 2) {
        put(db, k, 5);
        if (k % 11 == 4)
            FZ_CHECK(kvs_remove(db, hist[k].key, hist[k].klen) == 0, "template: remove failed");
    }
    FZ_CHECK(kvs_remove(db, hist[6].key, hist[6].klen) == 0, "template: remove failed");
    FZ_CHECK(kvs_close(db) == 0, "template: close failed: %s", kvs_last_error());

    FZ_CHECK((d = opendir(dir)) != NULL, "cannot list %s", dir);
    while ((de = readdir(d)) != NULL) {
        char path[8192];
        if (de->d_name[0] == '.')
            continue;
        FZ_CHECK(ntmpl < MAX_FILES && strlen(de->d_name) < sizeof tmpl[0].name,
                 "template: unexpected file %s", de->d_name);
        file *f = &tmpl[ntmpl++];
        snprintf(f->name, sizeof f->name, "%s", de->d_name);
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        FZ_CHECK(fz_read_file(path, &f->data, &f->len) == 0, "cannot read %s", path);
    }
    closedir(d);
    qsort(tmpl, ntmpl, sizeof *tmpl, name_cmp);
    fz_rmrf(dir);
    if (getenv("KVS_FUZZ_LOG"))
        for (size_t i = 0; i < ntmpl; i++)
            fprintf(stderr, "template file %zu: %s (%zu bytes)\n", i, tmpl[i].name, tmpl[i].len);
}

/* ---- edits ---- */

static void resize(file *f, size_t len)
{
    uint8_t *d = realloc(f->data, len ? len : 1);
    FZ_CHECK(d, "out of memory");
    if (len > f->len)
        memset(d + f->len, 0, len - f->len);
    f->data = d;
    f->len = len;
}

/* Right checksums again, as the format tables define them. */
static void reseal(file *f)
{
    uint8_t *b = f->data;
    size_t n = f->len;

    if (seg_parse_name(f->name, "log") && n >= SEG_HDR) {
        le_put32(b + 12, cksum32(b, 12));
        size_t off = SEG_HDR;
        rec_hdr h;
        while (off + REC_HDR <= n && rec_decode(b + off, &h) && h.klen <= n - off - REC_HDR) {
            uint64_t len = rec_len(h.klen, h.vlen);
            le_put32(b + off, cksum32(b + off + 8, REC_HDR - 8 + (size_t)h.klen));
            if (len > n - off)
                break;
            le_put32(b + off + 4, cksum32(b + off + REC_HDR + h.klen, h.vlen));
            off += (size_t)len;
        }
    } else if (seg_parse_name(f->name, "hint") && n >= HINT_HDR + 8) {
        uint8_t *t = malloc(n - 8);
        FZ_CHECK(t, "out of memory");
        memcpy(t, b + HINT_HDR, n - 8 - HINT_HDR);
        memcpy(t + n - 8 - HINT_HDR, b, HINT_HDR);
        le_put64(b + n - 8, cksum64(t, n - 8));
        free(t);
    } else if (strcmp(f->name, SAVED_FILE) == 0 && n >= SAVED_HDR + 8) {
        le_put64(b + n - 8, cksum64(b, n - 8));
    } else if (strcmp(f->name, MAN_FILE) == 0) {
        for (size_t off = MAN_HDR; n >= off + 8;) {
            uint32_t plen = le_get32(b + off + 4);
            if (plen < 12 || plen > n - off - 8)
                break;
            le_put32(b + off, cksum32(b + off + 4, (size_t)plen + 4));
            off += 8 + (size_t)plen;
        }
    }
}

/* The name a copy takes. */
static void other_name(char *out, size_t cap, uint8_t sel, uint8_t id)
{
    unsigned n = (unsigned)(id % 12) + 1;

    switch (sel % 11) {
    case 0: snprintf(out, cap, "%06u.log", n); break;
    case 1: snprintf(out, cap, "%06u.hint", n); break;
    case 2: snprintf(out, cap, "%06u.hint.tmp", n); break;
    case 3: snprintf(out, cap, "%s", MAN_FILE); break;
    case 4: snprintf(out, cap, "%s.tmp", MAN_FILE); break;
    case 5: snprintf(out, cap, "ENGINE"); break;
    case 6: snprintf(out, cap, "ENGINE.tmp"); break;
    case 7: snprintf(out, cap, "%s", SAVED_FILE); break;
    case 8: snprintf(out, cap, "%s.tmp", SAVED_FILE); break;
    case 9: snprintf(out, cap, "%s", SAVED_RETIRED); break;
    default: snprintf(out, cap, "%07u.log", n); break; /* a longer id, still a segment name */
    }
}

static file *find(file *fs, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!fs[i].gone && strcmp(fs[i].name, name) == 0)
            return &fs[i];
    return NULL;
}

static void apply_edits(fz_in *in, file *fs, size_t *nfs)
{
    while (in->n > 0) {
        uint8_t op = fz_u8(in) % 9;
        file *f = &fs[fz_u8(in) % *nfs];
        size_t k;
        const uint8_t *p;

        if (f->gone)
            continue;
        switch (op) {
        case 0: { /* overwrite */
            size_t off = fz_u16(in) % (f->len + 1);
            p = fz_take(in, fz_u8(in) % 33, &k);
            if (off + k > f->len)
                resize(f, off + k);
            memcpy(f->data + off, p, k);
            break;
        }
        case 1: /* flip a bit */
            if (f->len) {
                size_t off = fz_u16(in) % f->len;
                f->data[off] ^= (uint8_t)(1u << (fz_u8(in) % 8));
            }
            break;
        case 2: /* truncate */
            resize(f, fz_u16(in) % (f->len + 1));
            break;
        case 3: /* append */
            p = fz_take(in, fz_u8(in) % 65, &k);
            resize(f, f->len + k);
            memcpy(f->data + f->len - k, p, k);
            break;
        case 4:
            f->gone = true;
            break;
        case 5: { /* zero a range */
            size_t off = fz_u16(in) % (f->len + 1), n = fz_u16(in) % 4097;
            memset(f->data + off, 0, n < f->len - off ? n : f->len - off);
            break;
        }
        case 6: { /* copy under another name */
            char name[64];
            uint8_t sel = fz_u8(in), id = fz_u8(in);
            other_name(name, sizeof name, sel, id);
            file *to = find(fs, *nfs, name);
            if (to == f)
                break;
            if (!to) {
                if (*nfs == MAX_FILES)
                    break;
                to = &fs[(*nfs)++];
                memset(to, 0, sizeof *to);
                snprintf(to->name, sizeof to->name, "%s", name);
            }
            resize(to, f->len);
            memcpy(to->data, f->data, f->len);
            break;
        }
        case 7: /* a 32-bit number */
            if (f->len >= 4) {
                size_t off = fz_u16(in) % (f->len - 3);
                le_put32(f->data + off, fz_u32(in));
            }
            break;
        default:
            reseal(f);
        }
    }
}

/* ---- reading the store ---- */

/* What a read of each key gave: the code, and the value when found. */
typedef struct reading {
    int rc;
    uint8_t *v;
    size_t n;
} reading;

static int copy_val(void *ctx, const void *val, size_t vlen)
{
    reading *r = ctx;
    r->v = malloc(vlen ? vlen : 1);
    FZ_CHECK(r->v, "out of memory");
    memcpy(r->v, val, vlen);
    r->n = vlen;
    return 0;
}

/* Does an intact record of key with value v lie anywhere in the files given? */
static bool authentic(const file *fs, size_t nfs, const void *key, size_t klen, const uint8_t *v,
                      size_t vn)
{
    for (size_t i = 0; i < nfs; i++) {
        const uint8_t *b = fs[i].data;
        size_t n = fs[i].len;
        if (fs[i].gone || rec_len((uint32_t)klen, (uint32_t)vn) > n)
            continue;
        for (size_t off = 0; off + rec_len((uint32_t)klen, (uint32_t)vn) <= n; off++) {
            rec_hdr h;
            if (rec_decode(b + off, &h) && h.klen == klen && h.vlen == vn &&
                !(h.flags & REC_TOMBSTONE) && memcmp(b + off + REC_HDR, key, klen) == 0 &&
                memcmp(b + off + REC_HDR + klen, v, vn) == 0 &&
                rec_verify(b + off, b + off + REC_HDR, h.klen, b + off + REC_HDR + klen, h.vlen))
                return true;
        }
    }
    return false;
}

static void read_all(kvs_t *db, reading *out, const file *fs, size_t nfs)
{
    for (int k = 0; k < NKEYS; k++) {
        reading *r = &out[k];
        memset(r, 0, sizeof *r);
        r->rc = kvs_read(db, hist[k].key, hist[k].klen, copy_val, r);
        FZ_CHECK(r->rc == 0 || r->rc == KVS_ENOTFOUND || r->rc == KVS_ECORRUPT,
                 "reading key %d: %s (%s)", k, kvs_strerror(r->rc), kvs_last_error());
        if (r->rc != 0 || !fs)
            continue;
        bool known = false;
        for (size_t i = 0; i < hist[k].nv && !known; i++)
            known = hist[k].v[i].n == r->n && memcmp(hist[k].v[i].p, r->v, r->n) == 0;
        if (!known && !authentic(fs, nfs, hist[k].key, hist[k].klen, r->v, r->n)) {
            fz_dump("value", r->v, r->n, 200);
            FZ_CHECK(0, "key %d served a value never written and held by no intact record", k);
        }
    }
}

static void readings_free(reading *r)
{
    for (int k = 0; k < NKEYS; k++)
        free(r[k].v);
}

static void write_files(const file *fs, size_t n)
{
    char path[8192];

    FZ_CHECK(fz_rmrf(run_dir) == 0 && mkdir(run_dir, 0755) == 0, "cannot make %s", run_dir);
    for (size_t i = 0; i < n; i++) {
        if (fs[i].gone)
            continue;
        snprintf(path, sizeof path, "%s/%s", run_dir, fs[i].name);
        FZ_CHECK(fz_write_file(path, fs[i].data, fs[i].len) == 0, "cannot write %s", path);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char new_key[] = "fuzz-new-key", new_val[] = "fuzz-new-value";
    fz_in in = {data, size};
    file fs[MAX_FILES];
    size_t nfs;
    reading first[NKEYS], second[NKEYS];
    kvs_t *db;

    if (!run_dir[0]) {
        fz_quiet();
        build_template();
        fz_path(run_dir, sizeof run_dir, "run");
    }
    int fds = fz_fd_count();
    nfs = ntmpl;
    for (size_t i = 0; i < ntmpl; i++) {
        fs[i] = tmpl[i];
        fs[i].data = malloc(tmpl[i].len ? tmpl[i].len : 1);
        FZ_CHECK(fs[i].data, "out of memory");
        memcpy(fs[i].data, tmpl[i].data, tmpl[i].len);
    }
    apply_edits(&in, fs, &nfs);
    write_files(fs, nfs);

    int rc = store_open(&db, run_dir);
    if (rc < 0) {
        FZ_CHECK(rc >= KVS_ENOSPC, "kvs_open gave %d", rc);
    } else {
        read_all(db, first, fs, nfs);
        /* writes after recovery: a new key, and new values for the even keys; a refusal is
         * fine only for want of segment ids (ENOSPC) */
        kvs_op ops[NKEYS / 2 + 1];
        char vals[NKEYS / 2][24];
        size_t nops = 0;
        for (int k = 0; k < NKEYS; k += 2) {
            int n = snprintf(vals[k / 2], sizeof vals[k / 2], "after-recovery-%d", k);
            ops[nops++] = (kvs_op){.type = KVS_OP_SET, .key = hist[k].key, .klen = hist[k].klen,
                                   .val = vals[k / 2], .vlen = (size_t)n};
        }
        ops[nops++] = (kvs_op){.type = KVS_OP_SET, .key = new_key, .klen = sizeof new_key - 1,
                               .val = new_val, .vlen = sizeof new_val - 1};
        kvs_write(db, ops, nops);
        for (size_t i = 0; i < nops; i++)
            FZ_CHECK(ops[i].rc == 0 || ops[i].rc == KVS_ENOSPC, "a write after recovery: %s (%s)",
                     kvs_strerror(ops[i].rc), kvs_last_error());
        FZ_CHECK(kvs_close(db) == 0, "closing after recovery: %s", kvs_last_error());

        rc = store_open(&db, run_dir);
        FZ_CHECK(rc == 0, "the store recovery left does not open again: %s (%s)",
                 kvs_strerror(rc), kvs_last_error());
        read_all(db, second, NULL, 0);
        for (int k = 0; k < NKEYS; k++) {
            const kvs_op *w = k % 2 == 0 ? &ops[k / 2] : NULL;
            if (w && w->rc == 0)
                FZ_CHECK(second[k].rc == 0 && second[k].n == w->vlen &&
                             memcmp(second[k].v, w->val, w->vlen) == 0,
                         "key %d, written after recovery, reads %s%s after a reopen", k,
                         kvs_strerror(second[k].rc),
                         second[k].rc == 0 ? " (another value)" : "");
            else
                FZ_CHECK(first[k].rc == second[k].rc && first[k].n == second[k].n &&
                             (first[k].rc != 0 ||
                              memcmp(first[k].v, second[k].v, first[k].n) == 0),
                         "key %d reads differently after a reopen: %s then %s%s", k,
                         kvs_strerror(first[k].rc), kvs_strerror(second[k].rc),
                         first[k].rc == 0 && second[k].rc == 0 ? " (another value)" : "");
        }
        reading nk = {0};
        nk.rc = kvs_read(db, new_key, sizeof new_key - 1, copy_val, &nk);
        FZ_CHECK(ops[nops - 1].rc != 0 || (nk.rc == 0 && nk.n == sizeof new_val - 1 &&
                                            memcmp(nk.v, new_val, nk.n) == 0),
                 "the key written after recovery reads %s after a reopen", kvs_strerror(nk.rc));
        free(nk.v);
        FZ_CHECK(kvs_close(db) == 0, "closing: %s", kvs_last_error());
        readings_free(first);
        readings_free(second);
    }
    for (size_t i = 0; i < nfs; i++)
        free(fs[i].data);
    FZ_CHECK(fz_fd_count() == fds, "%d file descriptors before the input, %d after", fds,
             fz_fd_count());
    return 0;
}
