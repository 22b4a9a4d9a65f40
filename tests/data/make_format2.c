/*
 * make_format2.c — writes a small store of the kvs engine in on-disk format 2 (segment version 2,
 * 25-byte record headers) into DIR, and DIR.expected.txt: the keys and values it holds, and the
 * keys it removed. tests/data/format2/ and format2.expected.txt were written by it.
 *
 * It only means something built against a libkvs of format 2 (commit 48f85b4 and before): built
 * against a later libkvs it writes that build's format. tests/data/README.md says how the
 * committed files were made. The writes are fixed (no randomness), so the store's contents, and
 * expected.txt, are the same every run.
 *
 * What the store holds, for tests/unit/test_upgrade.c: a few hundred keys over a dozen 4 KiB
 * segments; keys overwritten, removed, removed then set again; a compaction run halfway, whose
 * outputs hold records older than those of the segment that was active meanwhile (a lower id);
 * binary keys with NUL and 0xff bytes, the empty key, an empty value, a value bigger than a
 * segment; tombstones in several segments; the hint files (format 1) of the sealed segments.
 *
 *   cc -I include tests/data/make_format2.c BUILD/lib/libkvs.a BUILD/lib/libkvsutil.a \
 *      -lurcu-bp -lxxhash -llmdb -lpthread -o make_format2
 *   ./make_format2 tests/data/format2      (DIR must not exist)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kvs.h"

#define MAXKEYS 512
#define NKEYS 300

typedef struct entry {
    unsigned char key[32];
    size_t klen;
    unsigned char *val; /* NULL: removed */
    size_t vlen;
} entry;

static entry model[MAXKEYS];
static int nmodel;
static kvs_t *db;

static void die(const char *what, int rc)
{
    fprintf(stderr, "make_format2: %s: %s: %s\n", what, kvs_strerror(rc), kvs_last_error());
    exit(1);
}

static entry *find(const void *key, size_t klen)
{
    for (int i = 0; i < nmodel; i++)
        if (model[i].klen == klen && memcmp(model[i].key, key, klen) == 0)
            return &model[i];
    if (nmodel == MAXKEYS || klen > sizeof model[0].key) {
        fprintf(stderr, "make_format2: model full\n");
        exit(1);
    }
    entry *e = &model[nmodel++];
    memcpy(e->key, key, klen);
    e->klen = klen;
    return e;
}

static void set(const void *key, size_t klen, const void *val, size_t vlen)
{
    int rc = kvs_set(db, key, klen, val, vlen);
    if (rc < 0)
        die("set", rc);
    entry *e = find(key, klen);
    free(e->val);
    e->val = malloc(vlen + 1);
    memcpy(e->val, val, vlen);
    e->vlen = vlen;
}

/* Remove key; removing one the model says is absent writes nothing (KVS_ENOTFOUND). */
static void del(const void *key, size_t klen)
{
    entry *e = find(key, klen);
    int rc = kvs_remove(db, key, klen);
    if (rc < 0 && !(rc == KVS_ENOTFOUND && !e->val))
        die("remove", rc);
    free(e->val);
    e->val = NULL;
}

/* "name-i" keys, and a value of a length that varies with i and phase. */
static void set_num(int i, const char *phase)
{
    char key[32], val[256];
    int n = snprintf(key, sizeof key, "key-%03d", i);
    int len = 10 + (i * 37 + (int)strlen(phase) * 11) % 150, w = 0;
    while (w < len)
        w += snprintf(val + w, sizeof val - (size_t)w, "%s-%d.", phase, i);
    set(key, (size_t)n, val, (size_t)len);
}

static void del_num(int i)
{
    char key[32];
    int n = snprintf(key, sizeof key, "key-%03d", i);
    del(key, (size_t)n);
}

static void hex(FILE *f, const unsigned char *b, size_t n)
{
    if (n == 0)
        fputc('-', f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%02x", b[i]);
}

static int by_key(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

int main(int argc, char **argv)
{
    kvs_options opt;
    struct stat st;
    int rc;

    if (argc != 2) {
        fprintf(stderr, "usage: make_format2 DIR\n");
        return 2;
    }
    if (stat(argv[1], &st) == 0) {
        fprintf(stderr, "make_format2: %s exists\n", argv[1]);
        return 2;
    }
    kvs_options_init(&opt);
    opt.engine = "kvs";
    opt.sync = KVS_SYNC_NEVER; /* kvs_close syncs */
    opt.segment_size = 4096;
    opt.auto_compact = 0; /* one compaction, where this program says */
    if ((rc = kvs_create(&db)) < 0 || (rc = kvs_configure(db, &opt)) < 0 ||
        (rc = kvs_open(db, argv[1])) < 0)
        die("open", rc);

    /* 1: every key once; binary keys, the empty key, an empty value, a value bigger than a
     * segment */
    for (int i = 0; i < NKEYS; i++)
        set_num(i, "one");
    for (int i = 0; i < 8; i++) {
        unsigned char k[6] = {0x00, 0xff, (unsigned char)i, '\n', 0x00, (unsigned char)(0x80 + i)};
        unsigned char v[5] = {(unsigned char)i, 0x00, 0xfe, '\r', 0x00};
        set(k, sizeof k, v, sizeof v);
    }
    set("", 0, "the empty key", 13);
    set("empty-value", 11, "", 0);
    unsigned char *big = malloc(6000);
    for (int i = 0; i < 6000; i++)
        big[i] = (unsigned char)(i * 7 + 3);
    set("big", 3, big, 6000);

    /* 2: overwrite a third, remove a fifth (some of them overwritten just before) */
    for (int i = 0; i < NKEYS; i += 3)
        set_num(i, "two");
    for (int i = 0; i < NKEYS; i += 5)
        del_num(i);
    unsigned char k3[6] = {0x00, 0xff, 3, '\n', 0x00, 0x83};
    del(k3, sizeof k3);

    /* a compaction: its outputs, with higher ids, hold records older than what follows */
    kvs_sync_now(db);
    int64_t got = kvs_compact(db);
    if (got < 0)
        die("compact", (int)got);
    fprintf(stderr, "make_format2: compaction reclaimed %lld bytes\n", (long long)got);

    /* 3: set again some removed keys, remove some more, overwrite the rest of a few */
    for (int i = 0; i < NKEYS; i += 10)
        set_num(i, "three");
    for (int i = 1; i < 100; i += 7)
        del_num(i);
    for (int i = 2; i < NKEYS; i += 9)
        set_num(i, "four");
    unsigned char k5[6] = {0x00, 0xff, 5, '\n', 0x00, 0x85};
    set(k5, sizeof k5, "\x00new\xff", 5);
    set("empty-value", 11, "", 0); /* overwritten by another empty value */

    kvs_stats s;
    if ((rc = kvs_stats_get(db, &s)) < 0)
        die("stats", rc);
    if ((rc = kvs_close(db)) < 0)
        die("close", rc);
    fprintf(stderr, "make_format2: %llu keys, %llu segments\n", (unsigned long long)s.keys,
            (unsigned long long)s.segments);

    /* DIR.expected.txt beside the store */
    char path[4096];
    snprintf(path, sizeof path, "%s.expected.txt", argv[1]);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return 1;
    }
    qsort(model, (size_t)nmodel, sizeof *model, by_key);
    fprintf(f, "# What tests/data/format2 holds (written by tests/data/make_format2.c).\n"
               "# set KEY VALUE: the key holds the value; del KEY: the key was removed.\n"
               "# Keys and values in hex; - is the empty string.\n");
    for (int i = 0; i < nmodel; i++) {
        fputs(model[i].val ? "set " : "del ", f);
        hex(f, model[i].key, model[i].klen);
        if (model[i].val) {
            fputc(' ', f);
            hex(f, model[i].val, model[i].vlen);
        }
        fputc('\n', f);
    }
    fclose(f);
    return 0;
}
