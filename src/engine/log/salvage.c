/*
 * salvage.c — the newest-record-per-key table of salvage.h, and the writer of the new store.
 *
 * The table is open addressing with linear probing on the key's XXH3, kept at most half full,
 * so a lookup is a probe or two; it only grows (a salvage reads every record once, then writes
 * once). Per key it keeps the newest intact record and, apart, the seq and place of a damaged
 * one newer than it: kvs_upgrade leaves such a key out, kvs_repair keeps the older value and
 * says so — the table serves both rules without choosing between them. The writer goes through
 * kvs.h with sync never and one sync at the end: a new store half written is removed by the
 * caller, never used, so syncing each batch would buy nothing.
 */
#include "engine/log/salvage.h"

#include <stdlib.h>
#include <string.h>

#include "util/checksum.h"
#include "util/err.h"

#define BATCH_OPS 1024u
#define BATCH_BYTES (4u << 20)

static int table_grow(salv_table *t)
{
    size_t cap = t->cap ? t->cap * 2 : 1024;
    salv_key *n = calloc(cap, sizeof *n);

    if (!n)
        return kvs_seterr(KVS_ENOMEM, "no memory for a table of %zu keys", cap / 2);
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->tab[i].best.key)
            continue;
        size_t j = cksum64(t->tab[i].best.key, t->tab[i].best.klen) & (cap - 1);
        while (n[j].best.key)
            j = (j + 1) & (cap - 1);
        n[j] = t->tab[i];
    }
    free(t->tab);
    t->tab = n;
    t->cap = cap;
    return 0;
}

/* r into e, the entry of its key. */
static void keep(salv_key *e, const salv_rec *r)
{
    if (r->damaged) {
        if (r->seq > e->dseq && r->seq > e->best.seq) {
            e->dseq = r->seq;
            e->doff = r->off;
            e->dseg = r->seg;
        }
        return;
    }
    if (r->seq > e->best.seq) {
        e->best = *r;
        if (e->dseq < r->seq)
            e->dseq = 0; /* the damaged one is older than what stands now */
    }
}

int salv_put(salv_table *t, const salv_rec *r)
{
    int rc;

    if ((t->n + 1) * 2 > t->cap && (rc = table_grow(t)) < 0)
        return rc;
    size_t i = cksum64(r->key, r->klen) & (t->cap - 1);
    for (;; i = (i + 1) & (t->cap - 1)) {
        salv_key *e = &t->tab[i];
        if (!e->best.key) {
            memset(e, 0, sizeof *e);
            e->best.key = r->key;
            e->best.klen = r->klen;
            t->n++;
            keep(e, r);
            return 0;
        }
        if (e->best.klen == r->klen && memcmp(e->best.key, r->key, r->klen) == 0) {
            keep(e, r);
            return 0;
        }
    }
}

void salv_free(salv_table *t)
{
    free(t->tab);
    *t = (salv_table){0};
}

int salv_by_seq(const void *a, const void *b)
{
    uint64_t x = ((const salv_rec *)a)->seq, y = ((const salv_rec *)b)->seq;
    return x < y ? -1 : x > y;
}

static int write_batch(kvs_t *db, kvs_op *ops, size_t n)
{
    int rc = kvs_write(db, ops, n);

    for (size_t i = 0; i < n && rc == 0; i++)
        rc = ops[i].rc;
    return rc;
}

int salv_write_store(const char *dir, const salv_rec *v, size_t n,
                     void (*tick)(void *ctx, uint64_t written), void *ctx)
{
    kvs_op *ops = malloc(BATCH_OPS * sizeof *ops);
    kvs_options opt;
    kvs_t *db = NULL;
    size_t k = 0, bytes = 0;
    uint64_t written = 0;
    int rc;

    kvs_options_init(&opt);
    opt.engine = "kvs";
    opt.sync = KVS_SYNC_NEVER; /* one sync at the end */
    opt.auto_compact = 0;      /* nothing is dead */
    opt.expire_effort = 0;     /* a key that expires meanwhile is the new store's to judge */
    if (!ops)
        return KVS_ENOMEM;
    if ((rc = kvs_create(&db)) < 0 || (rc = kvs_configure(db, &opt)) < 0 ||
        (rc = kvs_open(db, dir)) < 0)
        goto out;
    if (tick)
        tick(ctx, 0);
    for (size_t i = 0; i < n && rc == 0; i++) {
        ops[k++] = (kvs_op){.type = KVS_OP_SET, .key = v[i].key, .klen = v[i].klen,
                            .val = v[i].val, .vlen = v[i].vlen, .expire_ms = v[i].expire_ms};
        bytes += v[i].klen + v[i].vlen;
        if (k < BATCH_OPS && bytes < BATCH_BYTES && i + 1 < n)
            continue;
        if ((rc = write_batch(db, ops, k)) < 0)
            break;
        written += k;
        k = bytes = 0;
        if (tick)
            tick(ctx, written);
    }
    if (rc == 0)
        rc = kvs_sync_now(db);
out:
    if (db) {
        int crc = kvs_close(db); /* syncs too */
        if (rc == 0)
            rc = crc;
    }
    free(ops);
    return rc;
}
