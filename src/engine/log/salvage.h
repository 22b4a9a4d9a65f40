/*
 * salvage.h — the newest record of each key, gathered by readers of segment files that stand
 * apart from an open store: kvs_upgrade (upgrade.c, format 2) and kvs_repair (repair.c). Both
 * read segments as files, verify each record themselves, and must keep, of every key, the
 * newest record found wherever it lies (a compaction's outputs hold records older than those of
 * segments with lower ids) — and know whether a damaged record was newer than it. The key index
 * (index.h) cannot serve: it reads keys from records of the current format, through the open
 * store's segment table. Then both write what they kept into a new store through kvs.h.
 *
 * Memory: about 64 bytes a key; keys and values are not copied — they point into the readers'
 * mappings, which must outlive the table.
 */
#ifndef KVS_LOG_SALVAGE_H
#define KVS_LOG_SALVAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvs.h"

/* A record as a reader found it. */
typedef struct salv_rec {
    const unsigned char *key, *val;
    uint64_t seq;       /* > 0 */
    uint64_t off;       /* in its segment */
    uint64_t expire_ms; /* 0: never (format 2: always 0) */
    uint32_t klen, vlen;
    uint32_t seg;       /* the reader's index of its segment, for messages */
    uint8_t flags;      /* record.h's */
    bool damaged;       /* its header is authentic, its value fails its checksum */
} salv_rec;

/* What the table holds of one key. */
typedef struct salv_key {
    salv_rec best;      /* the newest intact record (best.seq 0: none); best.key, best.klen are
                           the key's in any case (NULL key: a free slot) */
    uint64_t dseq;      /* the newest damaged record, if it is newer than best (0: none) */
    uint64_t doff;
    uint32_t dseg;
} salv_key;

typedef struct salv_table {
    salv_key *tab;      /* open addressing, linear probing */
    size_t cap, n;
} salv_table;

/* Take r into the table. KVS_ENOMEM. */
int salv_put(salv_table *t, const salv_rec *r);
void salv_free(salv_table *t);
/* qsort order of salv_rec by seq: a new store gets its keys in the order they were written. */
int salv_by_seq(const void *a, const void *b);
/* Write the sets v[0..n) (expiry times kept) into a new store of the kvs engine at dir, in
 * batches, synced and closed at the end; tick (may be NULL) after each batch with the count
 * written so far. */
int salv_write_store(const char *dir, const salv_rec *v, size_t n,
                     void (*tick)(void *ctx, uint64_t written), void *ctx);

#endif
