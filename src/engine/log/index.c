/*
 * index.c — the RCU hash index (see index.h).
 */
#include "engine/log/index.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <urcu-bp.h>
#include <urcu/rculfhash.h>

#include "kvs.h"
#include "util/checksum.h"
#include "util/invariant.h"

typedef struct idx_entry {
    struct cds_lfht_node node;
    struct rcu_head rcu;
    idx_loc loc;
    uint32_t klen;
    unsigned char key[];
} idx_entry;

#define IDX_INIT_BUCKETS 1024u

struct idx {
    struct cds_lfht *ht;
    uint64_t seed;
    uint64_t count;   /* atomic */
    uint64_t buckets; /* atomic: the size last asked for (idx_resize_if_needed) */
};

typedef struct key_ref {
    const void *key;
    size_t klen;
} key_ref;

int idx_new(idx **out)
{
    idx *x = calloc(1, sizeof *x);

    *out = NULL;
    if (!x)
        return KVS_ENOMEM;
    if (getrandom(&x->seed, sizeof x->seed, 0) != sizeof x->seed)
        x->seed = (uint64_t)(uintptr_t)x ^ 0x9e3779b97f4a7c15ull;
    x->buckets = IDX_INIT_BUCKETS;
    x->ht = cds_lfht_new(IDX_INIT_BUCKETS, IDX_INIT_BUCKETS, 0,
                         CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, NULL);
    if (!x->ht) {
        free(x);
        return KVS_ENOMEM;
    }
    *out = x;
    return 0;
}

static unsigned long idx_hash(const idx *x, const void *key, size_t klen)
{
    return (unsigned long)XXH3_64bits_withSeed(key, klen, x->seed);
}

static int idx_match(struct cds_lfht_node *node, const void *arg)
{
    const idx_entry *e = caa_container_of(node, idx_entry, node);
    const key_ref *k = arg;
    return e->klen == k->klen && memcmp(e->key, k->key, k->klen) == 0;
}

static void entry_free_rcu(struct rcu_head *head)
{
    free(caa_container_of(head, idx_entry, rcu));
}

static idx_entry *entry_new(const void *key, size_t klen, const idx_loc *loc)
{
    idx_entry *e = malloc(sizeof *e + klen);

    if (!e)
        return NULL;
    cds_lfht_node_init(&e->node);
    e->loc = *loc;
    e->klen = (uint32_t)klen;
    memcpy(e->key, key, klen);
    return e;
}

/* The entry for key, or NULL. Inside a read section. */
static idx_entry *find(idx *x, const void *key, size_t klen, unsigned long hash,
                       struct cds_lfht_iter *it)
{
    key_ref k = {key, klen};
    struct cds_lfht_node *n;

    cds_lfht_lookup(x->ht, hash, idx_match, &k, it);
    n = cds_lfht_iter_get_node(it);
    return n ? caa_container_of(n, idx_entry, node) : NULL;
}

int idx_lookup(idx *x, const void *key, size_t klen, idx_loc *out)
{
    struct cds_lfht_iter it;

    KVS_ASSERT(rcu_read_ongoing()); /* the caller's section keeps out->seg alive after this */
    idx_entry *e = find(x, key, klen, idx_hash(x, key, klen), &it);
    if (!e)
        return KVS_ENOTFOUND;
    *out = e->loc;
    return 0;
}

static int put(idx *x, const void *key, size_t klen, const idx_loc *loc, idx_loc *old,
               bool only_newer)
{
    unsigned long hash = idx_hash(x, key, klen);
    struct cds_lfht_iter it;
    idx_entry *e, *cur;
    int rc;

    e = entry_new(key, klen, loc);
    if (!e)
        return KVS_ENOMEM;
    rcu_read_lock();
    for (;;) {
        cur = find(x, key, klen, hash, &it);
        if (!cur) {
            key_ref k = {key, klen};
            struct cds_lfht_node *got = cds_lfht_add_unique(x->ht, hash, idx_match, &k, &e->node);
            if (got != &e->node)
                continue; /* raced with another add */
            __atomic_add_fetch(&x->count, 1, __ATOMIC_RELAXED);
            rc = 0;
            break;
        }
        if (only_newer && cur->loc.seq >= loc->seq) {
            *old = cur->loc;
            free(e);
            rc = 2;
            break;
        }
        if (cds_lfht_replace(x->ht, &it, hash, idx_match, &(key_ref){key, klen}, &e->node) != 0)
            continue; /* cur was removed or replaced meanwhile */
        *old = cur->loc;
        call_rcu(&cur->rcu, entry_free_rcu);
        rc = 1;
        break;
    }
    rcu_read_unlock();
    return rc;
}

int idx_put(idx *x, const void *key, size_t klen, const idx_loc *loc, idx_loc *old)
{
    return put(x, key, klen, loc, old, false);
}

int idx_put_newer(idx *x, const void *key, size_t klen, const idx_loc *loc, idx_loc *old)
{
    return put(x, key, klen, loc, old, true);
}

int idx_del(idx *x, const void *key, size_t klen, idx_loc *old)
{
    unsigned long hash = idx_hash(x, key, klen);
    struct cds_lfht_iter it;
    idx_entry *cur;
    int rc = KVS_ENOTFOUND;

    rcu_read_lock();
    while ((cur = find(x, key, klen, hash, &it)) != NULL) {
        if (cds_lfht_del(x->ht, cds_lfht_iter_get_node(&it)) == 0) {
            *old = cur->loc;
            __atomic_sub_fetch(&x->count, 1, __ATOMIC_RELAXED);
            call_rcu(&cur->rcu, entry_free_rcu);
            rc = 0;
            break;
        }
    }
    rcu_read_unlock();
    return rc;
}

int idx_repoint(idx *x, const void *key, size_t klen, const seg *from, uint32_t from_off,
                const idx_loc *to)
{
    unsigned long hash = idx_hash(x, key, klen);
    struct cds_lfht_iter it;
    idx_entry *e, *cur;
    int rc = 1;

    e = entry_new(key, klen, to);
    if (!e)
        return KVS_ENOMEM;
    rcu_read_lock();
    cur = find(x, key, klen, hash, &it);
    /* The entry is immutable, so (seg, off) identifies the record it names; an entry naming a
     * newer record can never name (from, from_off) again (no ABA). cds_lfht_replace fails if cur
     * was replaced after find, which is the compare half of the swap. */
    if (cur && cur->loc.seg == from && cur->loc.off == from_off &&
        cds_lfht_replace(x->ht, &it, hash, idx_match, &(key_ref){key, klen}, &e->node) == 0) {
        call_rcu(&cur->rcu, entry_free_rcu);
        rc = 0;
    }
    rcu_read_unlock();
    if (rc)
        free(e);
    return rc;
}

/* Every entry of x, inside an RCU read section. Not cds_lfht_for_each_entry: it takes the
 * container of the NULL node that ends the walk (UBSan's pointer-overflow check). */
#define IDX_FOR_EACH(x, it, e)                                                                \
    for (cds_lfht_first((x)->ht, &(it));                                                      \
         ((e) = cds_lfht_iter_get_node(&(it))                                                 \
                    ? caa_container_of(cds_lfht_iter_get_node(&(it)), idx_entry, node)        \
                    : NULL) != NULL;                                                          \
         cds_lfht_next((x)->ht, &(it)))

uint64_t idx_drop_tombstones(idx *x)
{
    struct cds_lfht_iter it;
    idx_entry *e;
    uint64_t n = 0;

    rcu_read_lock();
    IDX_FOR_EACH(x, it, e) {
        if ((e->loc.flags & REC_TOMBSTONE) && cds_lfht_del(x->ht, &e->node) == 0) {
            __atomic_sub_fetch(&x->count, 1, __ATOMIC_RELAXED);
            call_rcu(&e->rcu, entry_free_rcu);
            n++;
        }
    }
    rcu_read_unlock();
    return n;
}

uint64_t idx_count(const idx *x)
{
    return __atomic_load_n(&x->count, __ATOMIC_RELAXED);
}

bool idx_needs_resize(const idx *x)
{
    return idx_count(x) > 2 * __atomic_load_n(&x->buckets, __ATOMIC_RELAXED);
}

void idx_resize_if_needed(idx *x)
{
    uint64_t want = IDX_INIT_BUCKETS;

    KVS_ASSERT(!rcu_read_ongoing()); /* a resize waits for grace periods: here, for itself */
    if (!idx_needs_resize(x))
        return;
    while (want < idx_count(x))
        want <<= 1;
    cds_lfht_resize(x->ht, (unsigned long)want);
    __atomic_store_n(&x->buckets, want, __ATOMIC_RELAXED);
}

void idx_free(idx *x)
{
    struct cds_lfht_iter it;
    idx_entry *e;

    if (!x)
        return;
    rcu_read_lock();
    IDX_FOR_EACH(x, it, e) {
        if (cds_lfht_del(x->ht, &e->node) == 0)
            call_rcu(&e->rcu, entry_free_rcu);
    }
    rcu_read_unlock();
    rcu_barrier(); /* every entry (and every earlier call_rcu of ours) is freed */
    cds_lfht_destroy(x->ht, NULL);
    free(x);
}
