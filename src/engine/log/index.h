/*
 * index.h — the in-memory index: every live key → where its current record lies.
 *
 * A concurrent hash table (liburcu's cds_lfht, RCU flavour "bp" so that no thread has to register)
 * whose readers take no lock: idx_lookup runs inside an RCU read section and copies the location
 * out. Entries are immutable: an update allocates a new entry and swaps it in, and the old one is
 * freed after a grace period (call_rcu), so a reader holding an entry never sees it change or
 * vanish under it.
 *
 * An entry points at its segment (struct seg) directly, not by id: a reader that found an entry
 * reads the record in that segment's mapping without a second lookup, and segment retirement
 * (segment.h, "Lifetime") waits for a grace period after the last entry naming the segment is
 * gone.
 *
 * Writers (set, remove, recovery, compaction) may run concurrently with readers; whether writers
 * may race each other is up to the caller (idx_repoint is the compare-and-swap that compaction
 * uses so that a newer write is never overwritten by an older copy).
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
    uint8_t flags;  /* REC_TOMBSTONE only during recovery */
} idx_loc;

int idx_new(idx **out);
/* Free the index and every entry. No other thread may use it any more. */
void idx_free(idx *x);

/* Copy key's location into *out: 0, or KVS_ENOTFOUND. Call inside rcu_read_lock(). */
int idx_lookup(idx *x, const void *key, size_t klen, idx_loc *out);

/* Point key at loc. Returns 1 and fills *old if it replaced an entry, 0 if it added one. */
int idx_put(idx *x, const void *key, size_t klen, const idx_loc *loc, idx_loc *old);
/* As idx_put, but only if loc->seq is newer than the entry's (recovery). Returns 1 replaced
 * (*old filled), 0 added, 2 kept the existing newer entry (*old filled with it). */
int idx_put_newer(idx *x, const void *key, size_t klen, const idx_loc *loc, idx_loc *old);
/* Remove key; fills *old. 0, or KVS_ENOTFOUND. */
int idx_del(idx *x, const void *key, size_t klen, idx_loc *old);
/* Compare-and-swap: point key at to only if it still points at (from, from_off).
 * 0 if swapped, 1 if the entry moved on (a newer write) or is gone. */
int idx_repoint(idx *x, const void *key, size_t klen, const seg *from, uint32_t from_off,
                const idx_loc *to);
/* Delete every entry carrying REC_TOMBSTONE (end of recovery). Returns how many. */
uint64_t idx_drop_tombstones(idx *x);
uint64_t idx_count(const idx *x);
/* The table grows on its own (liburcu's automatic resize), but that can stall: liburcu 0.13
 * sets its "resize launched" flag after queueing the work, so a resize that finishes first
 * leaves the flag set and no automatic resize ever runs again, and lookups walk ever longer
 * chains. So the index also sizes itself: idx_needs_resize says when the keys have outgrown
 * the size last asked for (cheap, any thread), and idx_resize_if_needed — from a thread that
 * holds no RCU read lock, as the maintenance thread — asks for a size fit for them, which
 * also clears the stuck flag. */
bool idx_needs_resize(const idx *x);
void idx_resize_if_needed(idx *x);

#endif
