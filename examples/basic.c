/*
 * basic.c — a complete libkvs program: the calls an embedder needs, in the order they are made.
 *
 *     cc basic.c $(pkg-config --cflags --libs kvs) -o basic && ./basic [DIR]
 *
 * It opens (creating if needed) the store in DIR (default ./kvs-example), writes a batch,
 * reads it back two ways, gives a key an expiry time, counts with a read-modify-write, walks
 * every key with a scan, shows how failures read, and closes. Each step prints a line; the
 * program checks what it reads and exits 0 only if every step did what it should (run it again:
 * the store is reopened, the counter goes on from where it was).
 *
 * Only <kvs.h>, the public API, is used: see docs/library.md for the rest of it (positions and
 * durability, iteration, upgrades, logging).
 */
#include <kvs.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Report a failed call with both of libkvs's error texts: kvs_strerror names the code,
 * kvs_last_error says what happened on this thread (file, offset, errno text). */
static int fail(const char *what, int rc)
{
    fprintf(stderr, "basic: %s: %s (%s)\n", what, kvs_strerror(rc), kvs_last_error());
    return rc;
}

/* kvs_read hands the value over where it lies, valid only during the call: copy what you keep.
 * This one copies it into a caller's buffer as a C string. */
struct text {
    char buf[64];
};
static int copy_text(void *ctx, const void *val, size_t vlen)
{
    struct text *t = ctx;
    if (vlen >= sizeof t->buf)
        return KVS_EINVAL; /* becomes kvs_read's return value */
    memcpy(t->buf, val, vlen);
    t->buf[vlen] = '\0';
    return 0;
}

/* 1. A batch: three sets and a remove, committed together (one append, and under
 * KVS_SYNC_ALWAYS one fdatasync). The first two are a group (KVS_OP_WITH_NEXT): after a crash
 * both are in the store or neither is. */
static int write_batch(kvs_t *db)
{
    kvs_op ops[4] = {
        {.type = KVS_OP_SET, .key = "user:1", .klen = 6, .val = "ada", .vlen = 3,
         .flags = KVS_OP_WITH_NEXT},
        {.type = KVS_OP_SET, .key = "user:2", .klen = 6, .val = "grace", .vlen = 5},
        {.type = KVS_OP_SET, .key = "user:3", .klen = 6, .val = "barbara", .vlen = 7},
        {.type = KVS_OP_REMOVE, .key = "user:3", .klen = 6},
    };
    int rc = kvs_write(db, ops, 4);
    if (rc < 0)
        return fail("kvs_write", rc);
    printf("wrote a batch of 4 ops (rc of each: %d %d %d %d)\n", ops[0].rc, ops[1].rc,
           ops[2].rc, ops[3].rc);
    return 0;
}

/* 2. Reads: kvs_get copies the value into a buffer the caller frees with kvs_free; kvs_read
 * lends it to a callback without a copy. A missing key is KVS_ENOTFOUND, not an error to
 * report. */
static int read_back(kvs_t *db)
{
    void *val;
    size_t len;
    int rc = kvs_get(db, "user:1", 6, &val, &len);
    if (rc < 0)
        return fail("kvs_get user:1", rc);
    printf("kvs_get user:1 -> %.*s\n", (int)len, (const char *)val);
    int same = len == 3 && memcmp(val, "ada", 3) == 0;
    kvs_free(val);

    struct text t;
    rc = kvs_read(db, "user:2", 6, copy_text, &t);
    if (rc < 0)
        return fail("kvs_read user:2", rc);
    printf("kvs_read user:2 -> %s\n", t.buf);

    rc = kvs_get(db, "user:3", 6, &val, &len);
    printf("kvs_get user:3 -> %s (removed in the same batch)\n", kvs_strerror(rc));
    if (!same || strcmp(t.buf, "grace") != 0 || rc != KVS_ENOTFOUND) {
        fprintf(stderr, "basic: read back something else than was written\n");
        return KVS_ECORRUPT;
    }
    return 0;
}

/* 3. Expiry: a set carries an absolute time in ms by the store's clock (kvs_now_ms); 0 is
 * never. kvs_read_meta returns it with the value. A time already past makes the key absent at
 * once, as for Redis's SET ... PXAT in the past. */
static int expiry(kvs_t *db)
{
    uint64_t now = kvs_now_ms(db);
    kvs_op ops[2] = {
        {.type = KVS_OP_SET, .key = "session", .klen = 7, .val = "token", .vlen = 5,
         .expire_ms = now + 60 * 1000},
        {.type = KVS_OP_SET, .key = "stale", .klen = 5, .val = "old", .vlen = 3,
         .expire_ms = now - 1},
    };
    int rc = kvs_write(db, ops, 2);
    if (rc < 0)
        return fail("kvs_write (expiry)", rc);

    struct text t;
    kvs_meta meta;
    rc = kvs_read_meta(db, "session", 7, copy_text, &t, &meta);
    if (rc < 0)
        return fail("kvs_read_meta session", rc);
    printf("session -> %s, expires in %" PRIu64 " ms\n", t.buf, meta.expire_ms - now);
    rc = kvs_read(db, "stale", 5, copy_text, &t);
    printf("stale -> %s (its time had passed)\n", kvs_strerror(rc));
    return rc == KVS_ENOTFOUND ? 0 : fail("stale key still there", KVS_EINVAL);
}

/* 4. Read-modify-write: an update op's function runs in the engine's write order with the
 * key's current value and decides what to write, atomically per key whatever other threads
 * do — here a counter (Redis's INCR). It runs under the write lock: quick, no libkvs calls. */
struct counter {
    char out[24]; /* the value to write must outlive the call: kept here, in ctx */
    long long value;
};
static int increment(void *ctx, const kvs_cur *cur, kvs_update_out *out)
{
    struct counter *c = ctx;
    char digits[24] = "0";
    if (cur->found) {
        if (cur->vlen >= sizeof digits)
            return KVS_EINVAL;
        memcpy(digits, cur->val, cur->vlen);
        digits[cur->vlen] = '\0';
    }
    c->value = strtoll(digits, NULL, 10) + 1;
    int n = snprintf(c->out, sizeof c->out, "%lld", c->value);
    out->type = KVS_OP_SET;
    out->val = c->out;
    out->vlen = (size_t)n;
    return 0;
}
static int count_runs(kvs_t *db)
{
    struct counter c = {0};
    kvs_op op = {.type = KVS_OP_UPDATE, .key = "runs", .klen = 4, .update = increment,
                 .update_ctx = &c};
    int rc = kvs_write(db, &op, 1);
    if (rc < 0)
        return fail("kvs_write (update)", rc);
    printf("runs -> %lld (this program's runs on this store)\n", c.value);
    return 0;
}

/* 5. A scan: Redis's SCAN as a call. Cursor 0 starts, *next == 0 ends; each step hands about
 * `count` keys to the callback, key and value where they lie. Beside concurrent writers, a key
 * present throughout is seen at least once. */
static int print_key(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                     const kvs_meta *meta)
{
    (void)val;
    (*(int *)ctx)++;
    printf("  %.*s (%zu bytes%s)\n", (int)klen, (const char *)key, vlen,
           meta->expire_ms ? ", expiring" : "");
    return 0;
}
static int scan_all(kvs_t *db)
{
    int seen = 0;
    uint64_t cursor = 0;
    printf("every key:\n");
    do {
        int rc = kvs_scan(db, cursor, 100, print_key, &seen, &cursor);
        if (rc < 0)
            return fail("kvs_scan", rc);
    } while (cursor != 0);
    kvs_stats st;
    int rc = kvs_stats_get(db, &st);
    if (rc < 0)
        return fail("kvs_stats_get", rc);
    /* stats.keys is DBSIZE's count: an expired key counts until it is removed (by the
     * background sweep, compaction or its next write), though no read or scan finds it. */
    printf("%d keys seen; the store counts %" PRIu64 ", %" PRIu64 " of them with an expiry "
           "time\n", seen, st.keys, st.expiring_keys);
    return seen >= 4 ? 0 : fail("scan missed keys", KVS_EINVAL); /* user:1 user:2 session runs */
}

/* 6. Failures are negative KVS_E* codes, checked before anything is written: a key past
 * KVS_MAX_KEY, and a second handle on a directory another one has open. */
static int show_errors(kvs_t *db, const char *dir)
{
    static char big[KVS_MAX_KEY + 1];
    int rc = kvs_set(db, big, sizeof big, "v", 1);
    printf("kvs_set of a %zu-byte key -> %s\n", sizeof big, kvs_strerror(rc));
    if (rc != KVS_EKEYTOOBIG)
        return fail("oversized key accepted", KVS_EINVAL);

    kvs_t *other;
    if ((rc = kvs_create(&other)) < 0)
        return fail("kvs_create", rc);
    rc = kvs_open(other, dir);
    printf("a second kvs_open of %s -> %s: %s\n", dir, kvs_strerror(rc), kvs_last_error());
    kvs_close(other); /* a handle is closed (and freed) whether or not it opened */
    return rc == KVS_EBUSY ? 0 : fail("second open", rc < 0 ? rc : KVS_EINVAL);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "kvs-example";
    kvs_options opt;
    kvs_t *db = NULL;
    int rc;

    /* create → configure → open: options are a struct, filled with defaults first so fields
     * added in later versions keep theirs. */
    kvs_options_init(&opt);
    opt.sync = KVS_SYNC_ALWAYS;         /* a write returns once it is on disk */
    opt.segment_size = 4 * 1024 * 1024; /* rotate log segments at 4 MiB */
    if ((rc = kvs_create(&db)) < 0)
        return fail("kvs_create", rc), 1;
    if ((rc = kvs_configure(db, &opt)) < 0 || (rc = kvs_open(db, dir)) < 0) {
        fail(dir, rc);
        kvs_close(db);
        return 1;
    }
    printf("opened %s (kvs %s)\n", dir, KVS_VERSION_STRING);

    if ((rc = write_batch(db)) == 0 && (rc = read_back(db)) == 0 && (rc = expiry(db)) == 0 &&
        (rc = count_runs(db)) == 0 && (rc = scan_all(db)) == 0)
        rc = show_errors(db, dir);

    /* The last call on a handle: stops its threads, syncs, frees it; it can fail too. */
    int crc = kvs_close(db);
    if (crc < 0)
        fail("kvs_close", crc);
    if (rc < 0 || crc < 0)
        return 1;
    printf("closed; all steps done\n");
    return 0;
}
