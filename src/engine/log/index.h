/*
 * index.h — the in-memory index: every live key → where its current record lies.
 *
 * The index holds no key. A key's bytes are in its record, which a read fetches anyway; the index
 * holds, per key, 12 bytes: where the record lies and 46 bits of the key's hash, enough that a
 * lookup of an absent key, or of one whose slot neighbours hold other keys, almost never reads
 * the log. With the table kept between 53% and 80% full that is 15 to 23 bytes a key (idx_bytes).
 *
 * Layout. An open-addressing table of cap = n + tail slots, probed linearly forward from a key's
 * home slot and never wrapping (the tail is there so that the runs that start near the end have
 * somewhere to go; an insert that would run past it rebuilds the table first). Two arrays, one
 * entry each a slot:
 *
 *   hash[i]  32 bits   the top 32 bits of the key's 64-bit hash (XXH3-64, per-index random seed)
 *   word[i]  64 bits   bit  63      the record carries an expiry time (IDX_EXPIRES): the
 *                                    background sweep visits only these (idx_expiring_next)
 *                      bits 62..49  tag: bits 13..0 of the 64-bit hash
 *                      bit  48      the record is a tombstone (recovery only, idx_drop_tombstones)
 *                      bits 47..32  the record's segment, by its slot in the index's segment table
 *                      bits 31..0   the record's offset in that segment
 *
 * word 0 is an empty slot, the end of a run. Segment slot 0 is never given out, so a word naming
 * slot 0 (offset 1) is a deleted key's marker: a run goes on past it, an insert may reuse it.
 * home(h) = h * n >> 32 for the 32-bit hash h (Lemire's "fastrange"): monotonic in h, for any n,
 * so the table grows by half (n × 1.5) rather than doubling.
 *
 * A slot is a key's when tag and hash both match (46 bits) and then the record at the slot's
 * address holds that key (its header's key length and key bytes, bounds-checked against the
 * segment's mapping). A record whose header fails its checksum there cannot say whose it is: it
 * is taken for the key's (47 bits matched) and reported corrupt by whoever reads it, as a record
 * the old index named was. idx_lookup fills its idx_loc from the record's header.
 *
 * Segments are named by a 16-bit slot, not by pointer or id: idx_attach_seg gives a segment a
 * slot (seg->islot) before any record of it is indexed, idx_detach_seg frees the slot after the
 * segment has left the index and an RCU grace period has passed (segment.h, "Lifetime"), so a
 * reader never finds a slot naming another segment than the one its word meant. At most
 * IDX_SEG_SLOTS - 1 segments are live at a time.
 *
 * Concurrency. Readers (idx_lookup, idx_names, idx_cursor_next) take no lock: inside an RCU read
 * section they load the table pointer and probe it; a writer publishes a slot's hash before its
 * word (release), so a reader that sees a word sees that hash or a newer one (index.c says why
 * that is enough). Writers (put, del, repoint, growth, segment slots) take the index's own
 * mutex, a leaf in the store's lock order (logdb.h); their key compares read the record through
 * the segment's mapping, as readers do (segment.h: what keeps those pages out of RSS). Growth
 * builds a new table from the live words under that mutex, publishes it, and frees the old one
 * after a grace period (call_rcu): readers go on in the old one meanwhile, writers wait for the
 * rebuild (about 30 ms at 1M keys, 150 ms at 5M).
 *
 * Recovery (idx_recovery_begin .. idx_recovery_end) keeps beside each slot the record's seq,
 * value length and, for keys loaded from a hint file kept mapped, where the key's bytes are, so
 * that "the newest seq wins" (idx_put_newer) is decided without reading the old record from the
 * log: hints exist so that start-up reads keys, not values. Those side arrays are rebuilt with
 * the table and freed when recovery ends, and the table is then cut to the size its keys need
 * (tombstones took room while it was loaded). The table is sized up front for the records
 * recovery expects (the hint headers' counts), so that loading them does not rebuild it again
 * and again, and records come in batches (idx_put_newer_batch), each inserted under one hold of
 * the mutex with its table misses overlapped. A clean close saves the table itself instead
 * (images, below; saved.h), and the next open loads it without a rebuild.
 *
 * Cursor (for SCAN). A cursor is a 32-bit hash value c (0 to start; IDX_CURSOR_END when done).
 * idx_cursor_next scans the slots from home(c) forward to the first empty slot e and hands out
 * every key there whose hash is ≥ c; the next cursor is the smallest hash whose home is past e.
 * Every key present for the whole scan is handed out at least once, whatever growth happens
 * between the steps: a step covers the hashes [c, c') in the table it reads, whatever its n; a
 * key whose hash h is there has home(c) ≤ home(h) ≤ e (home is monotonic in the hash), sits at
 * or after its home with every slot in between occupied (no wrap, and a slot only empties in a
 * rebuild, which is another table), and so lies before the empty slot e the step stopped at,
 * inside the slots it scanned. The steps' hash ranges do not overlap and a table holds a key in
 * one slot, so no key is handed out twice. (The hash a step compares with c is computed from the
 * key in the record, not taken from the slot: index.c, on reused slots.)
 *
 * Keys are hashed with XXH3-64 under a per-index random seed, so clients cannot choose keys that
 * collide on purpose.
 */
#ifndef KVS_LOG_INDEX_H
#define KVS_LOG_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/log/segment.h"

typedef struct idx idx;

typedef struct idx_loc {
    seg *seg;
    uint32_t off;   /* record offset in seg */
    uint32_t vlen;
    uint64_t seq;
    uint8_t flags;  /* REC_TOMBSTONE only during recovery; IDX_EXPIRES */
} idx_loc;
/* idx_loc.flags: the record has an expiry time (word bit 63). Given to idx_put and the
 * recovery inserts; handed out by the cursors. Not a record flag (record.h). */
#define IDX_EXPIRES 0x80u

/* Segment slots: 1 .. IDX_SEG_SLOTS - 1. */
#define IDX_SEG_SLOTS 65536u
/* idx_put's answer when the key is new and the table would have to grow past the budget
 * (idx_set_budget): nothing changed. Distinct from every KVS_E* code; the caller maps it. */
#define IDX_EBUDGET (-1000)
/* The cursor after the last step. */
#define IDX_CURSOR_END (1ull << 32)

int idx_new(idx **out);
/* Free the index (tables and segment table; not the segments). No other thread may use it. */
void idx_free(idx *x);

/* Give s a segment slot (s->islot), before any record of it is indexed. KVS_ENOSPC when
 * IDX_SEG_SLOTS - 1 segments hold one. s must not hold one already. */
int idx_attach_seg(idx *x, seg *s);
/* Free s's slot: no word of the index names s any more, and an RCU grace period has passed since
 * the last did (or none ever did). A segment without a slot is left alone. */
void idx_detach_seg(idx *x, seg *s);

/* Copy key's location into *out: 0, or KVS_ENOTFOUND. Call inside rcu_read_lock(); reads the
 * record's header (the index holds no seq or length). A slot whose record header fails its
 * checksum is the key's with vlen and seq 0: the caller's check of the record reports it. */
int idx_lookup(idx *x, const void *key, size_t klen, idx_loc *out);
/* Does the index name exactly the record at (s, off) for key? Reads nothing from the log: the
 * record at an address has one key, and a key one slot. Inside rcu_read_lock() (compaction). */
bool idx_names(idx *x, const void *key, size_t klen, const seg *s, uint32_t off);

/* Point key at loc. Returns 1 and fills *old if it replaced an entry, 0 if it added one,
 * IDX_EBUDGET (a new key past the budget), or KVS_ENOMEM. Inside rcu_read_lock() if *old is
 * used after (old->seg stays alive for the section). */
int idx_put(idx *x, const void *key, size_t klen, const idx_loc *loc, idx_loc *old);
/* Recovery (between idx_recovery_begin and _end): as idx_put, but only if loc->seq is newer than
 * the entry's. Returns 1 replaced (*old filled), 0 added, 2 kept the existing newer entry (*old
 * filled with it). key_kept: the key's bytes stay readable where they are until
 * idx_recovery_end (a hint kept mapped), so later keys are compared against them rather than
 * against the record. Thread-safe, as every change (under the index's mutex). No budget. */
int idx_put_newer(idx *x, const void *key, size_t klen, const idx_loc *loc, bool key_kept,
                  idx_loc *old);
/* One insert of idx_put_newer_batch: key, klen, kept (key_kept) and loc in; rc (as
 * idx_put_newer returns) and old out; h is the batch's own. */
typedef struct idx_newer {
    const void *key;
    uint32_t klen;
    bool kept;
    idx_loc loc;
    int rc;
    idx_loc old;
    uint64_t h;
} idx_newer;
/* idx_put_newer of each of v[0 .. n), in order, under one hold of the index's mutex (recovery's
 * loaders: one meeting a batch, not a key, and the batch's table misses overlapped). 0, or the
 * first failure (KVS_ENOMEM), the entries after it not inserted. */
int idx_put_newer_batch(idx *x, idx_newer *v, size_t n);
/* Is key in the index? (The write path's question, under no RCU read lock of the caller's.) */
bool idx_contains(idx *x, const void *key, size_t klen);
/* Remove key; fills *old. 0, or KVS_ENOTFOUND. */
int idx_del(idx *x, const void *key, size_t klen, idx_loc *old);
/* Compare-and-swap: point key at to only if it still points at (from, from_off).
 * 0 if swapped, 1 if the entry moved on (a newer write) or is gone. Never fails otherwise. */
int idx_repoint(idx *x, const void *key, size_t klen, const seg *from, uint32_t from_off,
                const idx_loc *to);

/* Compare-and-delete: remove key only if it still points at (s, off) (compaction, of an
 * expired record). 0 if removed, 1 if the entry moved on or is gone. */
int idx_del_at(idx *x, const void *key, size_t klen, const seg *s, uint32_t off);

/* Recovery: keep seq, value length and key references beside each slot (idx_put_newer) until
 * idx_recovery_end, which frees them (no reader may run: recovery is alone). The index is empty;
 * its table is made large enough for expect records at once (so that loading them never grows
 * it), unless that table and its side arrays would take more than max_bytes. */
int idx_recovery_begin(idx *x, uint64_t expect, uint64_t max_bytes);
void idx_recovery_end(idx *x);
/* Delete every entry carrying REC_TOMBSTONE (end of recovery). Returns how many. */
uint64_t idx_drop_tombstones(idx *x);
uint64_t idx_count(const idx *x);
/* Live keys whose word carries IDX_EXPIRES (kvs_stats.expiring_keys). */
uint64_t idx_expiring(const idx *x);

/*
 * Images: the table as it is, for the saved index (saved.h) — saved at close, loaded at open in
 * place of a rebuild. An image is the table's words and hashes as they lie in memory (index.h's
 * layout; word[] then hash[], adjacent) with what reading them needs: the hash seed and the
 * geometry. Segment slots in the words are the index's own: the caller maps them to segments.
 */
struct idx_table;
typedef struct idx_image {
    uint64_t seed;
    uint64_t n, cap;        /* home slots; slots in all */
    uint64_t count;         /* live keys */
    uint64_t deleted;       /* deleted markers */
    uint64_t *word;         /* cap words, then ... */
    uint32_t *hash;         /* ... cap hashes, right after them (one read fills both) */
    struct idx_table *table; /* idx_image_new's, until installed or freed */
} idx_image;
/* The index's table as a reopen would build it — first cut to the size its keys need, without
 * deleted markers (as recovery leaves it), so that budget and figures come out the same after
 * a saved index as after a rebuild. The arrays are the index's own: valid, and unchanging, only
 * while no other thread uses the index (close). */
int idx_image_get(idx *x, idx_image *img);
/* A new empty table of n home slots and cap in all, its arrays zeroed in img for the caller to
 * fill; img->seed, count and deleted are the caller's to set. KVS_ECORRUPT if the geometry is
 * not one the index makes, KVS_ENOMEM. Freed by idx_image_free unless installed. */
int idx_image_new(uint64_t n, uint64_t cap, idx_image *img);
/* Check img and make it the index's table (recovery, alone, the index empty and outside
 * idx_recovery_begin; the segments its words name hold their slots already): every live word
 * must name a slot in use at an offset inside that segment, be found from its home slot, and the
 * counts match; else KVS_ECORRUPT and nothing changes. The index takes img's table and seed. */
int idx_image_install(idx *x, idx_image *img);
void idx_image_free(idx_image *img);

/* Bytes the index holds: its table's arrays (and recovery's side arrays) and its segment table. */
uint64_t idx_bytes(idx *x);
/* How many keys fit before the table would grow past budget bytes (its growth from its size now:
 * keys up to 80% of the largest table within budget), keeping room for the segment table to
 * grow by one chunk (a rotation or a compaction meanwhile). */
uint64_t idx_capacity(idx *x, uint64_t budget);
/* A budget for idx_bytes (0: none): an idx_put of a new key that would need a table past it
 * fails with IDX_EBUDGET; overwrites and deletes never fail for it. With count keys, a new one
 * fits if count + 1 <= idx_capacity(x, budget) — so a writer asks that before its record is in
 * the log, and its idx_put then cannot fail for the budget. (The converse holds but for the
 * spare chunk: a table within a few KiB of the budget may still take keys.) */
void idx_set_budget(idx *x, uint64_t bytes);

/* One step of a cursor scan (above): fn gets each key found, its bytes in its record; returns the
 * next cursor (IDX_CURSOR_END when done). Inside rcu_read_lock(), not during recovery. */
typedef void (*idx_visit_fn)(void *ctx, const void *key, uint32_t klen, const idx_loc *loc);
uint64_t idx_cursor_next(idx *x, uint64_t cursor, idx_visit_fn fn, void *ctx);
/* The same step, handing out only keys with IDX_EXPIRES, and reading no record for the others:
 * the background sweep's walk (background.c). */
uint64_t idx_expiring_next(idx *x, uint64_t cursor, idx_visit_fn fn, void *ctx);

/* Test hooks (test builds only: KVS_TEST_HOOKS, logdb.h). kvs_test_idx_hash_mask is ANDed into
 * every 64-bit hash (set it before the index holds keys, restore UINT64_MAX after): many keys
 * share one tag and home. With kvs_test_idx_count set, lookups that find nothing are counted, and
 * so are the records they read. */
#ifdef KVS_TEST_HOOKS
extern uint64_t kvs_test_idx_hash_mask;
extern bool kvs_test_idx_count;
extern uint64_t kvs_test_idx_absent_lookups, kvs_test_idx_absent_reads;
#else
#define kvs_test_idx_hash_mask UINT64_MAX
#endif

#endif
