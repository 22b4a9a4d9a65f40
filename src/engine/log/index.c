/*
 * index.c — the key index: an open-addressing table of record addresses (layout in index.h).
 *
 * Readers. A lookup runs inside the caller's RCU read section: it loads the table pointer
 * (acquire) and probes from the key's home slot forward, loading each word (acquire) and, where
 * the word's tag matches, the slot's hash; where both match it compares the key with the one in
 * the record the word names. Empty word: absent. Why that is right although a slot can change
 * under the reader:
 *   - a writer stores a slot's hash before its word (release), and a slot's hash changes only
 *     when a deleted slot is reused for another key. So the hash a reader loads after a word is
 *     that word's, or a newer key's when the slot was reused meanwhile. The pair then may match
 *     where neither the old key nor the new one is the one looked up — or fail to match the old
 *     key. Neither matters: the answer comes from the record the word names, whose key is
 *     compared; and a word of a key deleted before the reuse could be skipped by a linearizable
 *     lookup anyway (the key was gone during the lookup).
 *   - a word is a key's current location from its store until the next store to its slot:
 *     overwrites, compaction's repoint and deletion store a key's slot in place; only a deleted
 *     slot is reused for another key. So a word whose record holds the key is an address the key
 *     had during the lookup.
 *   - a key stays in its slot for the table's life: no entry ever moves (deletion leaves a
 *     marker rather than shifting entries back), so a lookup never passes a key that a writer
 *     moves behind it. A key present throughout a lookup is found.
 *   - growth publishes a new table; a reader that loaded the old one reads a copy that stops
 *     changing at the publication, i.e. before any write the new table then takes: its answer is
 *     the state at a moment inside its lookup. The old table and the segments its words name
 *     stay alive until the reader's section ends (call_rcu; segment.h "Lifetime").
 *   - a segment slot is freed only a grace period after the last word naming it left every table
 *     (idx_detach_seg), so the segment a reader finds in it is the one its word meant.
 *
 * Writers take x->mu (a leaf: logdb.h's lock order) for every change: put, put_newer, del,
 * repoint, growth, segment slots, the budget. Under it they read the words plainly and store
 * them with release. Key compares, readers' and writers' alike, read the record through its
 * segment's mapping: a page fault costs less than a pread, and the pages of sealed segments
 * they bring into the process leave it again at the maintenance thread's next tick (segment.h).
 *
 * Growth. Before an insert that would leave count + deleted markers above 80% of n, or that would
 * run past the tail, the table is rebuilt from its live words: n × 1.5 (repeated while the keys
 * would fill more than 60% of it), or the same n when most of the load was deleted markers, a
 * longer tail when the tail alone overflowed. Every key's slot is placed anew from its stored
 * hash (no key is read). Writers wait for the rebuild; readers do not.
 */
#include "engine/log/index.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>
#include <urcu-bp.h>

#include "kvs.h"
#include "util/checksum.h"
#include "util/err.h"
#include "util/invariant.h"

#ifdef KVS_TEST_HOOKS
uint64_t kvs_test_idx_hash_mask = UINT64_MAX;
bool kvs_test_idx_count;
uint64_t kvs_test_idx_absent_lookups, kvs_test_idx_absent_reads;
#endif

/* ---- words ---- */

#define W_EXPIRES (1ull << 63)
#define W_TOMB (1ull << 48)
#define W_DELETED 1ull /* segment slot 0, offset 1 */
#define TAG_MASK 0x3fffu

static inline uint32_t w_tag(uint64_t w)
{
    return (uint32_t)(w >> 49) & TAG_MASK;
}
static inline uint16_t w_slot(uint64_t w)
{
    return (uint16_t)(w >> 32);
}
static inline uint32_t w_off(uint64_t w)
{
    return (uint32_t)w;
}
static inline bool w_live(uint64_t w)
{
    return w_slot(w) != 0;
}
static inline uint64_t w_make(uint64_t h, uint8_t flags, uint16_t slot, uint32_t off)
{
    return ((flags & IDX_EXPIRES) ? W_EXPIRES : 0) | ((h & TAG_MASK) << 49) |
           ((flags & REC_TOMBSTONE) ? W_TOMB : 0) | ((uint64_t)slot << 32) | off;
}
static inline bool w_expires(uint64_t w)
{
    return w_live(w) && (w & W_EXPIRES);
}
static inline uint32_t h_top(uint64_t h)
{
    return (uint32_t)(h >> 32);
}
static inline uint32_t h_tag(uint64_t h)
{
    return (uint32_t)(h & TAG_MASK);
}

/* ---- tables ---- */

#define INIT_N 1024u
#define SEG_CHUNK 256u /* segment-table pointers per chunk */

/* Beside each slot during recovery (index.h): one entry a slot, so that an insert touches one
 * cache line of them rather than one per field. */
typedef struct idx_side {
    uint64_t seq;
    const unsigned char *kref; /* the key's bytes where they stay until recovery ends, or NULL */
    uint32_t vlen, klen;
} idx_side;

typedef struct idx_table {
    uint64_t n;   /* home slots */
    uint64_t cap; /* n + tail: slots in the arrays */
    uint64_t *word;
    uint32_t *hash;
    idx_side *side; /* NULL: not recovering */
    struct rcu_head rcu;
} idx_table;

struct idx {
    idx_table *t; /* atomic: readers load it with acquire */
    uint64_t seed;
    pthread_mutex_t mu;
    uint64_t count;   /* live keys (atomic; written under mu) */
    uint64_t deleted; /* deleted markers in t (under mu) */
    uint64_t expiring; /* live words with W_EXPIRES (atomic; written under mu) */
    uint64_t budget;  /* idx_set_budget (under mu) */
    uint32_t nchunks; /* segment-table chunks allocated (under mu) */
    uint32_t seg_free; /* no segment slot below it is free (under mu) */
    /* slot → segment, in chunks allocated as needed and kept until idx_free (atomics) */
    seg **segs[IDX_SEG_SLOTS / SEG_CHUNK];
};

static inline uint64_t home(uint32_t h, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)h * n) >> 32);
}

static uint64_t tail_for(uint64_t n)
{
    return 32 + n / 64;
}

static uint64_t next_n(uint64_t n)
{
    return n + n / 2;
}

/*
 * A table's arrays live in anonymous mappings of their own, not on malloc's heap: a table a
 * rebuild replaced goes back to the system when it is freed (glibc keeps a large freed block in
 * its heap, resident, once its mmap threshold has risen past that size), and the pages of a new
 * table cost nothing until a slot on them is written. word and hash share one mapping, recovery's
 * side arrays have another.
 */
static uint64_t pages(uint64_t bytes)
{
    uint64_t p = (uint64_t)sysconf(_SC_PAGESIZE);
    return (bytes + p - 1) / p * p;
}

static uint64_t arrays_len(uint64_t cap)
{
    return pages(cap * (sizeof(uint64_t) + sizeof(uint32_t)));
}

static uint64_t side_len(uint64_t cap)
{
    return pages(cap * sizeof(idx_side));
}

static uint64_t table_bytes(uint64_t cap, bool side)
{
    return sizeof(idx_table) + arrays_len(cap) + (side ? side_len(cap) : 0);
}

/* Large tables ask for transparent huge pages (where the system gives them on request): their
 * slots are touched at random, all of them, so 4 KiB pages cost a fault each to fill and a TLB
 * miss each to probe (a rebuild of 1M keys took a quarter less CPU time with huge pages). */
#define HUGE_PAGE (2u << 20)

static void *map_zeroed(uint64_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED)
        return NULL;
#ifdef MADV_HUGEPAGE
    if (len >= HUGE_PAGE)
        madvise(p, len, MADV_HUGEPAGE); /* a hint: without it, 4 KiB pages */
#endif
    return p;
}

static void side_free(idx_table *t)
{
    if (t->side)
        munmap(t->side, side_len(t->cap));
    t->side = NULL;
}

static int side_alloc(idx_table *t)
{
    if (!(t->side = map_zeroed(side_len(t->cap))))
        return KVS_ENOMEM;
    return 0;
}

static void table_free(idx_table *t)
{
    if (!t)
        return;
    side_free(t);
    if (t->word)
        munmap(t->word, arrays_len(t->cap));
    free(t);
}

/* Freed a grace period after a rebuild replaced it. TSan cannot see the grace period (tsan.supp). */
static void table_free_rcu(struct rcu_head *head)
{
    table_free(caa_container_of(head, idx_table, rcu));
}

static idx_table *table_new(uint64_t n, uint64_t tail, bool side)
{
    idx_table *t = calloc(1, sizeof *t);

    if (!t)
        return NULL;
    t->n = n;
    t->cap = n + tail;
    if ((t->word = map_zeroed(arrays_len(t->cap))) != NULL)
        t->hash = (uint32_t *)(t->word + t->cap);
    if (!t->word || (side && side_alloc(t) < 0)) {
        table_free(t);
        return NULL;
    }
    return t;
}

static uint64_t seg_table_bytes(const idx *x)
{
    return (uint64_t)x->nchunks * SEG_CHUNK * sizeof(seg *);
}

/* What the index would hold with a table of cap slots (no side arrays: a budget is for the
 * running store). */
static uint64_t bytes_with(const idx *x, uint64_t cap)
{
    return sizeof *x + seg_table_bytes(x) + table_bytes(cap, false);
}

int idx_new(idx **out)
{
    idx *x = calloc(1, sizeof *x);

    *out = NULL;
    if (!x)
        return KVS_ENOMEM;
    if (getrandom(&x->seed, sizeof x->seed, 0) != sizeof x->seed)
        x->seed = (uint64_t)(uintptr_t)x ^ 0x9e3779b97f4a7c15ull;
    if (!(x->t = table_new(INIT_N, tail_for(INIT_N), false))) {
        free(x);
        return KVS_ENOMEM;
    }
    pthread_mutex_init(&x->mu, NULL);
    x->seg_free = 1;
    *out = x;
    return 0;
}

void idx_free(idx *x)
{
    if (!x)
        return;
    rcu_barrier(); /* the tables rebuilds replaced (and every earlier call_rcu) are freed */
    table_free(x->t);
    for (uint32_t i = 0; i < IDX_SEG_SLOTS / SEG_CHUNK; i++)
        free(x->segs[i]);
    pthread_mutex_destroy(&x->mu);
    free(x);
}

static uint64_t idx_hash(const idx *x, const void *key, size_t klen)
{
    return XXH3_64bits_withSeed(key, klen, x->seed) & kvs_test_idx_hash_mask;
}

/* ---- segment slots ---- */

static seg *seg_at(idx *x, uint16_t slot)
{
    seg **chunk = __atomic_load_n(&x->segs[slot / SEG_CHUNK], __ATOMIC_ACQUIRE);
    return chunk ? __atomic_load_n(&chunk[slot % SEG_CHUNK], __ATOMIC_ACQUIRE) : NULL;
}

int idx_attach_seg(idx *x, seg *s)
{
    int rc = 0;

    KVS_ASSERT(s->islot == 0);
    pthread_mutex_lock(&x->mu);
    for (uint32_t slot = x->seg_free; slot < IDX_SEG_SLOTS; slot++) {
        seg **chunk = x->segs[slot / SEG_CHUNK];
        if (!chunk) {
            if (!(chunk = calloc(SEG_CHUNK, sizeof *chunk))) {
                rc = KVS_ENOMEM;
                goto out;
            }
            __atomic_store_n(&x->segs[slot / SEG_CHUNK], chunk, __ATOMIC_RELEASE);
            x->nchunks++;
        }
        if (chunk[slot % SEG_CHUNK])
            continue;
        s->islot = (uint16_t)slot;
        __atomic_store_n(&chunk[slot % SEG_CHUNK], s, __ATOMIC_RELEASE);
        x->seg_free = slot + 1;
        goto out;
    }
    rc = kvs_seterr(KVS_ENOSPC,
                    "%s: the index names at most %u live segments, and all are in use: compact "
                    "the store, or reopen it with a larger segment size",
                    s->path, IDX_SEG_SLOTS - 1);
out:
    pthread_mutex_unlock(&x->mu);
    return rc;
}

void idx_detach_seg(idx *x, seg *s)
{
    if (!s || s->islot == 0)
        return;
    pthread_mutex_lock(&x->mu);
    KVS_ASSERT(x->segs[s->islot / SEG_CHUNK][s->islot % SEG_CHUNK] == s);
    __atomic_store_n(&x->segs[s->islot / SEG_CHUNK][s->islot % SEG_CHUNK], NULL,
                     __ATOMIC_RELEASE);
    if (s->islot < x->seg_free)
        x->seg_free = s->islot;
    s->islot = 0;
    pthread_mutex_unlock(&x->mu);
}

/* ---- comparing a slot's key ---- */

enum { KEY_OTHER, KEY_SAME, KEY_BAD };

/* What the record at p (room bytes readable) says of key: its own (KEY_SAME), another key (its
 * header authentic: KEY_OTHER), or nothing to trust (KEY_BAD: out of bounds, or failing its
 * checksum). Fills *h unless KEY_BAD. */
static int rec_key(const unsigned char *p, uint64_t room, const void *key, size_t klen,
                   rec_hdr *h)
{
    if (room < REC_HDR || !rec_decode(p, h) || h->klen > room - REC_HDR)
        return KEY_BAD;
    if (h->klen == klen && memcmp(p + REC_HDR, key, klen) == 0)
        return KEY_SAME;
    return rec_head_ok(p, p + REC_HDR, h->klen) ? KEY_OTHER : KEY_BAD;
}

static int rec_key_mapped(const seg *s, uint32_t off, const void *key, size_t klen, rec_hdr *h)
{
    if (off > s->map_len)
        return KEY_BAD;
    return rec_key(s->map + off, s->map_len - off, key, klen, h);
}

/* Is slot i (word w, tag and hash matching key) key's? Fills *loc unless KEY_OTHER. */
static int slot_key(idx *x, const idx_table *t, uint64_t i, uint64_t w, const void *key,
                    size_t klen, idx_loc *loc)
{
    seg *s = seg_at(x, w_slot(w));
    rec_hdr h = {0};
    int r;

    KVS_ASSERT(s && s->map);
    if (!s || !s->map)
        return KEY_OTHER;
    if (t->side && t->side[i].kref)
        r = t->side[i].klen == klen && memcmp(t->side[i].kref, key, klen) == 0 ? KEY_SAME
                                                                               : KEY_OTHER;
    else
        r = rec_key_mapped(s, w_off(w), key, klen, &h);
    if (r == KEY_OTHER)
        return r;
    *loc = (idx_loc){s, w_off(w), r == KEY_SAME ? h.vlen : 0, r == KEY_SAME ? h.seq : 0,
                     (w & W_TOMB) ? REC_TOMBSTONE : 0};
    if (t->side) {
        loc->seq = t->side[i].seq;
        loc->vlen = t->side[i].vlen;
    }
    return r;
}

/* ---- readers ---- */

int idx_lookup(idx *x, const void *key, size_t klen, idx_loc *out)
{
    uint64_t h = idx_hash(x, key, klen), reads = 0;

    KVS_ASSERT(rcu_read_ongoing()); /* the caller's section keeps out->seg alive after this */
    const idx_table *t = __atomic_load_n(&x->t, __ATOMIC_ACQUIRE);
    for (uint64_t i = home(h_top(h), t->n); i < t->cap; i++) {
        uint64_t w = __atomic_load_n(&t->word[i], __ATOMIC_ACQUIRE);
        if (w == 0)
            break;
        if (!w_live(w) || w_tag(w) != h_tag(h) ||
            __atomic_load_n(&t->hash[i], __ATOMIC_RELAXED) != h_top(h))
            continue;
        reads++;
        if (slot_key(x, t, i, w, key, klen, out) != KEY_OTHER)
            return 0;
    }
#ifdef KVS_TEST_HOOKS
    if (__atomic_load_n(&kvs_test_idx_count, __ATOMIC_RELAXED)) {
        __atomic_add_fetch(&kvs_test_idx_absent_lookups, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&kvs_test_idx_absent_reads, reads, __ATOMIC_RELAXED);
    }
#endif
    return KVS_ENOTFOUND;
}

/* The slot of hash h's run whose word names (seg slot, off), or UINT64_MAX. Such a word is the
 * key's whose record lies there (a record has one key, a key one slot), so nothing is compared
 * but the address; and an address names one record while its segment lives: no ABA. */
static uint64_t slot_naming(const idx_table *t, uint64_t h, uint16_t slot, uint32_t off)
{
    for (uint64_t i = home(h_top(h), t->n); i < t->cap; i++) {
        uint64_t w = __atomic_load_n(&t->word[i], __ATOMIC_ACQUIRE);
        if (w == 0)
            break;
        if (w_slot(w) == slot && w_off(w) == off)
            return i;
    }
    return UINT64_MAX;
}

bool idx_names(idx *x, const void *key, size_t klen, const seg *s, uint32_t off)
{
    KVS_ASSERT(rcu_read_ongoing() && s->islot != 0);
    const idx_table *t = __atomic_load_n(&x->t, __ATOMIC_ACQUIRE);
    return slot_naming(t, idx_hash(x, key, klen), s->islot, off) != UINT64_MAX;
}

/* idx_cursor_next, handing out only keys whose word has every bit of need (0: all). */
static uint64_t cursor_step(idx *x, uint64_t cursor, uint64_t need, idx_visit_fn fn, void *ctx)
{
    KVS_ASSERT(rcu_read_ongoing());
    if (cursor >= IDX_CURSOR_END)
        return IDX_CURSOR_END;
    const idx_table *t = __atomic_load_n(&x->t, __ATOMIC_ACQUIRE);
    KVS_ASSERT(!t->side);
    uint64_t i = home((uint32_t)cursor, t->n);
    for (; i < t->cap; i++) {
        uint64_t w = __atomic_load_n(&t->word[i], __ATOMIC_ACQUIRE);
        if (w == 0)
            break;
        if ((w & need) != need)
            continue; /* nothing read: the point of the expiry bit (idx_expiring_next) */
        seg *s = w_live(w) ? seg_at(x, w_slot(w)) : NULL;
        rec_hdr hd;
        if (!s || !s->map || rec_key_mapped(s, w_off(w), "", 0, &hd) == KEY_BAD)
            continue; /* deleted, or a record that cannot say whose it is */
        const unsigned char *key = s->map + w_off(w) + REC_HDR;
        /* the hash from the key itself: a reused slot may pair this word with a newer hash */
        if (h_top(idx_hash(x, key, hd.klen)) < cursor)
            continue;
        idx_loc loc = {s, w_off(w), hd.vlen, hd.seq,
                       (uint8_t)(((w & W_TOMB) ? REC_TOMBSTONE : 0) | (w_expires(w) ? IDX_EXPIRES : 0))};
        fn(ctx, key, hd.klen, &loc);
    }
    /* every hash whose home is at most i is covered: the next cursor is the first past it */
    if (i + 1 >= t->n)
        return IDX_CURSOR_END;
    unsigned __int128 next = ((((unsigned __int128)(i + 1)) << 32) + t->n - 1) / t->n;
    return next >= IDX_CURSOR_END ? IDX_CURSOR_END : (uint64_t)next;
}

uint64_t idx_cursor_next(idx *x, uint64_t cursor, idx_visit_fn fn, void *ctx)
{
    return cursor_step(x, cursor, 0, fn, ctx);
}

uint64_t idx_expiring_next(idx *x, uint64_t cursor, idx_visit_fn fn, void *ctx)
{
    return cursor_step(x, cursor, W_EXPIRES, fn, ctx);
}

/* ---- writers (under x->mu) ---- */

static void store_word(idx_table *t, uint64_t i, uint64_t w)
{
    __atomic_store_n(&t->word[i], w, __ATOMIC_RELEASE);
}

/* Writers hold mu, so count needs no read-modify-write, only an atomic store for the readers
 * of idx_count: a locked add would wait for the insert's stores, cache misses, to complete. */
static void count_add(idx *x, int64_t d)
{
    __atomic_store_n(&x->count, x->count + (uint64_t)d, __ATOMIC_RELAXED);
}

/* Slot i's word becomes w: the count of expiring keys follows (under mu). */
static inline void store_word_counted(idx *x, idx_table *t, uint64_t i, uint64_t w)
{
    int64_t d = (int64_t)w_expires(w) - (int64_t)w_expires(t->word[i]);
    if (d)
        __atomic_store_n(&x->expiring, x->expiring + (uint64_t)d, __ATOMIC_RELAXED);
    store_word(t, i, w);
}

/* A new table of n home slots and tail more, holding t's live words; NULL on ENOMEM. */
static idx_table *rebuilt(const idx_table *t, uint64_t n, uint64_t tail)
{
    for (;;) {
        idx_table *u = table_new(n, tail, t->side != NULL);
        uint64_t i;
        if (!u)
            return NULL;
        for (i = 0; i < t->cap; i++) {
            if (!w_live(t->word[i]))
                continue;
            uint64_t j = home(t->hash[i], n);
            while (j < u->cap && u->word[j])
                j++;
            if (j == u->cap)
                break;
            u->word[j] = t->word[i];
            u->hash[j] = t->hash[i];
            if (t->side)
                u->side[j] = t->side[i];
        }
        if (i == t->cap)
            return u;
        table_free(u); /* the tail overflowed: a longer one */
        tail *= 2;
    }
}

/*
 * Make room for one more key (under mu): rebuild the table larger, or the same size without its
 * deleted markers, or with a longer tail when an insert ran past it (tail_full). budgeted: a new
 * key of idx_put, which the budget refuses (IDX_EBUDGET) only when the keys do not fit in the size
 * the table has — exactly what idx_capacity predicts; a longer tail is never refused (a few
 * slots, and an insert cannot foresee it). Publishes the new table and frees the old one after a
 * grace period.
 */
static int grow(idx *x, bool tail_full, bool budgeted)
{
    idx_table *t = x->t;
    uint64_t need = x->count + 1, n = t->n, tail;

    while (need * 5 > n * 3) /* the keys fill at most 60% of the new table */
        n = next_n(n);
    if (n > t->n && budgeted && x->budget && bytes_with(x, n + tail_for(n)) > x->budget) {
        if (need * 5 > t->n * 4)
            return IDX_EBUDGET;
        n = t->n; /* they fit in the size it has: drop the deleted markers */
    }
    tail = n == t->n ? t->cap - t->n : tail_for(n);
    if (tail_full && n == t->n)
        tail *= 2;
    idx_table *u = rebuilt(t, n, tail);
    if (!u)
        return KVS_ENOMEM;
    __atomic_store_n(&x->t, u, __ATOMIC_RELEASE);
    x->deleted = 0;
    if (t->side)
        table_free(t); /* recovery: no reader runs, and its loaders' long read sections would
                        * hold every replaced table until the end */
    else
        call_rcu(&t->rcu, table_free_rcu);
    return 0;
}

/* Where key's word goes (under mu): its own slot (*found), or the first deleted or empty slot of
 * its run; UINT64_MAX when the run reaches the end of the arrays with neither. */
static uint64_t find_slot(idx *x, const idx_table *t, uint64_t h, const void *key, size_t klen,
                          bool *found, idx_loc *old)
{
    uint64_t i, reuse = UINT64_MAX;

    *found = false;
    for (i = home(h_top(h), t->n); i < t->cap; i++) {
        uint64_t w = t->word[i];
        if (w == 0)
            return reuse != UINT64_MAX ? reuse : i;
        if (!w_live(w)) {
            if (reuse == UINT64_MAX)
                reuse = i;
        } else if (w_tag(w) == h_tag(h) && t->hash[i] == h_top(h) &&
                   slot_key(x, t, i, w, key, klen, old) != KEY_OTHER) {
            *found = true;
            return i;
        }
    }
    return reuse;
}

/* Insert or replace key, of hash h (under mu): the body of idx_put and idx_put_newer. */
static int put_locked(idx *x, uint64_t h, const void *key, size_t klen, const idx_loc *loc,
                      bool newer, bool kept, idx_loc *old)
{
    uint64_t w = w_make(h, loc->flags, loc->seg->islot, loc->off), i;
    idx_table *t;
    bool found;
    int rc;

    KVS_ASSERT(loc->seg->islot != 0 && (!newer || x->t->side));
    for (;;) {
        t = x->t;
        i = find_slot(x, t, h, key, klen, &found, old);
        if (found && newer && old->seq >= loc->seq)
            return 2;
        if (found || (i != UINT64_MAX && t->word[i] != 0))
            break; /* the key's own slot, or a deleted one: the load stays as it is */
        if (i != UINT64_MAX && (x->count + x->deleted + 1) * 5 <= t->n * 4)
            break;
        if ((rc = grow(x, i == UINT64_MAX, !newer)) < 0)
            return rc;
    }
    if (!found) {
        if (t->word[i] != 0)
            x->deleted--;
        __atomic_store_n(&t->hash[i], h_top(h), __ATOMIC_RELAXED); /* before the word */
        count_add(x, 1);
    }
    if (t->side)
        t->side[i] = (idx_side){loc->seq, kept ? key : NULL, loc->vlen, (uint32_t)klen};
    store_word_counted(x, t, i, w);
    return found ? 1 : 0;
}

int idx_put(idx *x, const void *key, size_t klen, const idx_loc *loc, idx_loc *old)
{
    pthread_mutex_lock(&x->mu);
    int rc = put_locked(x, idx_hash(x, key, klen), key, klen, loc, false, false, old);
    pthread_mutex_unlock(&x->mu);
    return rc;
}

int idx_put_newer(idx *x, const void *key, size_t klen, const idx_loc *loc, bool key_kept,
                  idx_loc *old)
{
    idx_newer one = {.key = key, .klen = (uint32_t)klen, .kept = key_kept, .loc = *loc};
    int rc = idx_put_newer_batch(x, &one, 1);

    *old = one.old;
    return rc < 0 ? rc : one.rc;
}

/* Ask for the cache line at p. Not __builtin_prefetch on x86: GCC 12 deletes it here as dead
 * code (the prefetches of prefetch_home vanished from the object file), and an asm it must
 * keep. */
static inline void prefetch(const void *p)
{
#if defined(__x86_64__) || defined(__i386__)
    __asm__ volatile("prefetcht0 %0" : : "m"(*(const char *)p));
#else
    __builtin_prefetch(p, 1);
#endif
}

/* Ask for the cache lines an insert of hash h will touch first: its home slot's word, hash and
 * side entry (a hint: a table replaced meanwhile only wastes it). */
static void prefetch_home(const idx_table *t, uint64_t h)
{
    uint64_t i = home(h_top(h), t->n);

    prefetch(&t->word[i]);
    prefetch(&t->hash[i]);
    if (t->side)
        prefetch(&t->side[i]);
}


/* Inserts in flight: 8 and 16 measured the same, 0 (no prefetch) half as fast. */
#define PREFETCH_AHEAD 8

/*
 * A batch is hashed before mu is taken, and inserted under one hold of it, each insert's home
 * slot asked for PREFETCH_AHEAD inserts ahead: the misses of a table far larger than the cache
 * overlap instead of coming one after the other (1M keys from hints loaded in 255-390 ms
 * without, 183-190 ms with), and a caller on another thread meets mu once a batch rather than
 * once a key.
 */
int idx_put_newer_batch(idx *x, idx_newer *v, size_t n)
{
    int rc = 0;

    for (size_t i = 0; i < n; i++)
        v[i].h = idx_hash(x, v[i].key, v[i].klen);
    pthread_mutex_lock(&x->mu);
    for (size_t i = 0; i < n && i < PREFETCH_AHEAD; i++)
        prefetch_home(x->t, v[i].h);
    for (size_t i = 0; i < n; i++) {
        if (i + PREFETCH_AHEAD < n)
            prefetch_home(x->t, v[i + PREFETCH_AHEAD].h);
        v[i].rc = put_locked(x, v[i].h, v[i].key, v[i].klen, &v[i].loc, true, v[i].kept,
                             &v[i].old);
        if (v[i].rc < 0) {
            rc = v[i].rc;
            break;
        }
    }
    pthread_mutex_unlock(&x->mu);
    return rc;
}

bool idx_contains(idx *x, const void *key, size_t klen)
{
    idx_loc loc;
    bool found;

    pthread_mutex_lock(&x->mu);
    find_slot(x, x->t, idx_hash(x, key, klen), key, klen, &found, &loc);
    pthread_mutex_unlock(&x->mu);
    return found;
}

int idx_del(idx *x, const void *key, size_t klen, idx_loc *old)
{
    bool found;

    pthread_mutex_lock(&x->mu);
    uint64_t i = find_slot(x, x->t, idx_hash(x, key, klen), key, klen, &found, old);
    if (found) {
        store_word_counted(x, x->t, i, W_DELETED);
        count_add(x, -1);
        x->deleted++;
    }
    pthread_mutex_unlock(&x->mu);
    return found ? 0 : KVS_ENOTFOUND;
}

int idx_repoint(idx *x, const void *key, size_t klen, const seg *from, uint32_t from_off,
                const idx_loc *to)
{
    uint64_t h = idx_hash(x, key, klen);

    KVS_ASSERT(from->islot != 0 && to->seg->islot != 0);
    pthread_mutex_lock(&x->mu);
    uint64_t i = slot_naming(x->t, h, from->islot, from_off);
    if (i != UINT64_MAX) /* the compare half of the swap, under mu as every store is; the
                            * record moves with its expiry time, so the word keeps its bit */
        store_word(x->t, i, w_make(h, 0, to->seg->islot, to->off) |
                                (x->t->word[i] & W_EXPIRES));
    pthread_mutex_unlock(&x->mu);
    return i != UINT64_MAX ? 0 : 1;
}

int idx_del_at(idx *x, const void *key, size_t klen, const seg *s, uint32_t off)
{
    uint64_t h = idx_hash(x, key, klen);

    KVS_ASSERT(s->islot != 0);
    pthread_mutex_lock(&x->mu);
    uint64_t i = slot_naming(x->t, h, s->islot, off);
    if (i != UINT64_MAX) {
        store_word_counted(x, x->t, i, W_DELETED);
        count_add(x, -1);
        x->deleted++;
    }
    pthread_mutex_unlock(&x->mu);
    return i != UINT64_MAX ? 0 : 1;
}

/* ---- recovery ---- */

/* The table a store that only ever inserted count keys has: the smallest of the sizes growth
 * goes through (INIT_N × 1.5^k) that holds them. */
static uint64_t size_for(uint64_t count)
{
    uint64_t n = INIT_N;

    while (count * 5 > n * 4)
        n = next_n(n);
    return n;
}

/* The table is sized once for the records expected (loading them then never rebuilds it), or
 * kept small when that many would not fit in max_bytes. */
int idx_recovery_begin(idx *x, uint64_t expect, uint64_t max_bytes)
{
    int rc = 0;

    pthread_mutex_lock(&x->mu);
    KVS_ASSERT(x->count == 0 && !x->t->side);
    uint64_t n = size_for(expect);
    idx_table *u;
    if (n > x->t->n && table_bytes(n + tail_for(n), true) <= max_bytes &&
        (u = table_new(n, tail_for(n), true)) != NULL) {
        table_free(x->t); /* empty, and no reader has seen it: alone at open */
        __atomic_store_n(&x->t, u, __ATOMIC_RELEASE);
    } else {
        rc = side_alloc(x->t);
    }
    pthread_mutex_unlock(&x->mu);
    return rc;
}

/* Rebuild the table to the size its keys would have had had they only ever been inserted, and
 * without deleted markers, when it is larger or holds some (under mu, alone: no reader runs, so
 * the old table goes at once). Left as it is when out of memory. */
static void cut_to_keys(idx *x)
{
    idx_table *t = x->t, *u;
    uint64_t n = size_for(x->count);

    if (n > t->n)
        n = t->n;
    if ((n < t->n || x->deleted) && (u = rebuilt(t, n, tail_for(n))) != NULL) {
        __atomic_store_n(&x->t, u, __ATOMIC_RELEASE);
        x->deleted = 0;
        table_free(t);
    }
}

/* Recovery runs alone: no reader is in the side arrays, nor in a table replaced here. Its table
 * was sized for every record it met, tombstones included, now dropped: it is cut to the size its
 * keys need (so that a budget means the same after a reopen). */
void idx_recovery_end(idx *x)
{
    pthread_mutex_lock(&x->mu);
    side_free(x->t);
    cut_to_keys(x);
    pthread_mutex_unlock(&x->mu);
}

/* ---- images (the saved index, saved.h) ---- */

int idx_image_get(idx *x, idx_image *img)
{
    pthread_mutex_lock(&x->mu);
    KVS_ASSERT(!x->t->side);
    cut_to_keys(x); /* what a reopen would build: the same figures after either */
    idx_table *t = x->t;
    *img = (idx_image){x->seed, t->n, t->cap, x->count, x->deleted, t->word, t->hash, NULL};
    pthread_mutex_unlock(&x->mu);
    return 0;
}

int idx_image_new(uint64_t n, uint64_t cap, idx_image *img)
{
    memset(img, 0, sizeof *img);
    if (n == 0 || cap <= n || cap - n > n + tail_for(n))
        return KVS_ECORRUPT;
    if (!(img->table = table_new(n, cap - n, false)))
        return KVS_ENOMEM;
    img->n = n;
    img->cap = cap;
    img->word = img->table->word;
    img->hash = img->table->hash;
    return 0;
}

/* Does img hold a table a lookup can trust: each live word naming a segment slot in use at an
 * offset inside that segment, no tombstone, found from its home slot (home ≤ its slot, no empty
 * slot in between: runs do not wrap), and as many keys and deleted markers as it says? */
static bool image_sound(idx *x, const idx_image *img, uint64_t *expiring)
{
    const idx_table *t = img->table;
    uint64_t live = 0, deleted = 0, empty = 0; /* empty: one past the last empty slot seen */

    *expiring = 0;

    for (uint64_t i = 0; i < t->cap; i++) {
        uint64_t w = t->word[i];
        if (w == 0) {
            empty = i + 1;
            continue;
        }
        if (!w_live(w)) {
            if (w != W_DELETED)
                return false;
            deleted++;
            continue;
        }
        const seg *s = seg_at(x, w_slot(w));
        uint64_t h = home(t->hash[i], t->n);
        if (!s || (w & W_TOMB) || w_off(w) < SEG_HDR ||
            (uint64_t)w_off(w) + REC_HDR > s->size || h > i || h < empty)
            return false;
        live++;
        *expiring += w_expires(w);
    }
    return live == img->count && deleted == img->deleted;
}

int idx_image_install(idx *x, idx_image *img)
{
    uint64_t expiring;

    if (!image_sound(x, img, &expiring))
        return kvs_seterr(KVS_ECORRUPT, "its table does not hold together");
    pthread_mutex_lock(&x->mu);
    KVS_ASSERT(x->count == 0 && !x->t->side);
    table_free(x->t); /* empty, and no reader has seen it: alone at open */
    __atomic_store_n(&x->t, img->table, __ATOMIC_RELEASE);
    x->seed = img->seed;
    __atomic_store_n(&x->count, img->count, __ATOMIC_RELAXED);
    x->deleted = img->deleted;
    __atomic_store_n(&x->expiring, expiring, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&x->mu);
    img->table = NULL;
    return 0;
}

void idx_image_free(idx_image *img)
{
    table_free(img->table);
    img->table = NULL;
}

uint64_t idx_drop_tombstones(idx *x)
{
    uint64_t n = 0;

    pthread_mutex_lock(&x->mu);
    idx_table *t = x->t;
    for (uint64_t i = 0; i < t->cap; i++)
        if (w_live(t->word[i]) && (t->word[i] & W_TOMB)) {
            store_word(t, i, W_DELETED);
            n++;
        }
    count_add(x, -(int64_t)n);
    x->deleted += n;
    pthread_mutex_unlock(&x->mu);
    return n;
}

/* ---- figures ---- */

uint64_t idx_count(const idx *x)
{
    return __atomic_load_n(&x->count, __ATOMIC_RELAXED);
}

uint64_t idx_expiring(const idx *x)
{
    return __atomic_load_n(&x->expiring, __ATOMIC_RELAXED);
}

uint64_t idx_bytes(idx *x)
{
    pthread_mutex_lock(&x->mu);
    uint64_t b = sizeof *x + seg_table_bytes(x) + table_bytes(x->t->cap, x->t->side != NULL);
    pthread_mutex_unlock(&x->mu);
    return b;
}

uint64_t idx_capacity(idx *x, uint64_t budget)
{
    pthread_mutex_lock(&x->mu);
    uint64_t n = x->t->n;
    /* room for one more chunk of the segment table: a rotation or a compaction may add one
     * between a writer's question and its idx_put (commit.c, fits_group) */
    uint64_t spare = x->nchunks < IDX_SEG_SLOTS / SEG_CHUNK ? SEG_CHUNK * sizeof(seg *) : 0;
    for (uint64_t m = next_n(n); bytes_with(x, m + tail_for(m)) + spare <= budget;
         m = next_n(m))
        n = m;
    pthread_mutex_unlock(&x->mu);
    return n * 4 / 5;
}

void idx_set_budget(idx *x, uint64_t bytes)
{
    pthread_mutex_lock(&x->mu);
    x->budget = bytes;
    pthread_mutex_unlock(&x->mu);
}
