/*
 * kvs.h — the public API of libkvs, an embeddable, crash-safe key/value store.
 *
 * One data directory holds one store. A store is reached through an opaque handle with the
 * lifecycle LMDB made familiar: create → configure → open → use → close.
 *
 *     kvs_t *db;
 *     kvs_options opt;
 *     kvs_options_init(&opt);            // defaults; change what you need
 *     opt.sync = KVS_SYNC_ALWAYS;
 *     if (kvs_create(&db) < 0) ...
 *     if ((rc = kvs_configure(db, &opt)) < 0) ...
 *     if ((rc = kvs_open(db, "/var/lib/kvs")) < 0)
 *         fprintf(stderr, "%s: %s\n", kvs_strerror(rc), kvs_last_error());
 *     kvs_set(db, "k", 1, "v", 1);
 *     void *val; size_t len;
 *     if (kvs_get(db, "k", 1, &val, &len) == 0) { use(val, len); kvs_free(val); }
 *     kvs_close(db);
 *
 * Keys and values are binary-safe byte strings given by pointer and length; an empty key and an
 * empty value are allowed. Limits: key ≤ KVS_MAX_KEY bytes, value ≤ KVS_MAX_VALUE bytes; larger
 * ones are rejected with KVS_EKEYTOOBIG / KVS_EVALTOOBIG before anything is written.
 *
 * Errors: every function that can fail returns 0 (or a non-negative count) on success and a
 * negative KVS_E* code on failure. kvs_strerror() names the code; kvs_last_error() gives the
 * detail of the most recent failure on the calling thread (file, offset, errno text).
 *
 * Threads: after kvs_open returns, get/set/remove/stats/compact/sync may be called from any
 * number of threads on one handle. kvs_configure and kvs_open must not race with anything;
 * kvs_close must be the last call on a handle.
 *
 * Durability (kvs_options.sync): in every mode a write that returned 0 has been handed to the
 * kernel, so it survives the process being killed. KVS_SYNC_ALWAYS also puts it on disk before
 * returning (it survives power loss); KVS_SYNC_EVERYSEC syncs at most a second later;
 * KVS_SYNC_NEVER leaves it to the operating system.
 *
 * A sync that fails (fsync/fdatasync returns an error) fences the store: after it the kernel
 * may have dropped the pages it could not write while calling them clean, so a sync retried
 * later could succeed without them — and acknowledge as durable writes that are not. So the
 * store retries nothing: every later write (and kvs_sync_now, kvs_compact) fails with
 * KVS_ESYNC, reads go on, and reopening the store recovers from what is on disk. With
 * KVS_SYNC_ALWAYS the writes whose sync failed get the error, and none acknowledged before it
 * is at risk; with KVS_SYNC_EVERYSEC the writes acknowledged since the last sync that succeeded
 * (about a second's worth) may be lost, what remains being a prefix of the commit order.
 * A write that fails for want of space (KVS_ENOSPC from a write or an allocation, not from a
 * sync) does not fence: writes work again once there is room.
 *
 * Positions (kvs_write_pos, kvs_durable). Every batch of writes takes its place in one commit
 * order, and its position is how far that order had come when it was applied: the position of
 * a batch covers it and every batch applied before it. The durable position is how far a sync
 * has made that order durable; it only grows, and a power cut keeps every write at or below it.
 * Syncs run on the store's own thread, never holding writers up: writes are applied while a
 * sync runs and the next sync covers them all (one fdatasync for every writer of the moment).
 *
 * Visible before durable, as in Redis: a write is visible to every reader (kvs_read, scans, the
 * updates of later writes) once it is applied, before the sync that makes it durable; only its
 * acknowledgement waits. kvs_write returns under KVS_SYNC_ALWAYS once the batch is durable — and
 * so is whatever it read, even a remove that found its key missing (its position covers the
 * write it saw). kvs_write_pos returns once the batch is applied, with the position to wait for
 * (kvs_wait_durable, or the on_durable callback): a server acknowledges then. A reader that
 * must not act on data that may yet be lost waits for the position of an empty kvs_write_pos
 * made after its read. Both engines keep this contract (the lmdb engine's writes are durable
 * when applied under KVS_SYNC_ALWAYS: its positions are durable at once).
 */
#ifndef KVS_H
#define KVS_H

#include <stddef.h>
#include <stdint.h>

/* The library's ABI: it is built with hidden visibility, and exports what is declared between
 * this push and its pop, nothing else. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define KVS_VERSION_STRING "0.1.0"

#define KVS_MAX_KEY   (64u * 1024u)          /* 64 KiB */
#define KVS_MAX_VALUE (512u * 1024u * 1024u) /* 512 MiB */

/* Error codes: all negative; 0 is success. Keep the numbers stable: they are part of the ABI. */
enum {
    KVS_OK = 0,
    KVS_ENOTFOUND = -1,   /* the key does not exist */
    KVS_EINVAL = -2,      /* a bad argument or option */
    KVS_ENOMEM = -3,      /* out of memory */
    KVS_EIO = -4,         /* an I/O error from the operating system */
    KVS_ECORRUPT = -5,    /* data on disk failed its checksum or is malformed */
    KVS_EBUSY = -6,       /* the directory is in use by another handle or process */
    KVS_EKEYTOOBIG = -7,  /* key longer than KVS_MAX_KEY */
    KVS_EVALTOOBIG = -8,  /* value longer than KVS_MAX_VALUE */
    KVS_EENGINE = -9,     /* the directory belongs to another engine */
    KVS_ENOENGINE = -10,  /* no engine of that name */
    KVS_ESTATE = -11,     /* call not valid in the handle's state (e.g. configure after open) */
    KVS_EVERSION = -12,   /* on-disk format version this build does not read */
    KVS_ECLOSED = -13,    /* the store is shutting down */
    KVS_ENOSPC = -14,     /* no space left on the device (or over a disk quota) */
    KVS_ESYNC = -15,      /* a sync to disk failed earlier: the store takes no more writes
                             (reads go on) until it is reopened (see "Durability" above) */
    KVS_EFULL = -16,      /* the key index is at its memory budget (max_index_memory): a new
                             key cannot be added; overwrites, removes and reads go on */
    KVS_EFORMAT = -17,    /* the directory holds a store of an earlier on-disk format, which
                             this build converts (kvs_upgrade, `kvs upgrade DIR`) but does not
                             open */
    KVS_ECONFLICT = -18,  /* an update refused its write (kvs_update_fn): the rest of its group
                             is not applied either (WATCH's failed EXEC, SET NX on a key there) */
    KVS_ETIMEDOUT = -19,  /* kvs_wait_durable: the position was not durable in time */
};

typedef enum kvs_sync {
    KVS_SYNC_NEVER = 0,
    KVS_SYNC_EVERYSEC = 1,
    KVS_SYNC_ALWAYS = 2,
} kvs_sync;

typedef struct kvs_options {
    const char *engine;         /* "kvs" or "lmdb"; NULL: the engine already in the directory,
                                   else "kvs". The string is copied by kvs_configure. */
    kvs_sync sync;              /* default KVS_SYNC_EVERYSEC */
    uint64_t segment_size;      /* kvs engine: rotate the active segment at this many bytes;
                                   default 8 MiB, range 4 KiB .. 1 GiB */
    double compact_ratio;       /* kvs engine: a sealed segment whose dead bytes are at least
                                   this share of it is compacted; default 0.5, range (0, 1] */
    uint64_t compact_min_bytes; /* kvs engine: compaction starts only once the candidates hold
                                   this many dead bytes in all; default 1 MiB */
    int auto_compact;           /* kvs engine: 1 (default) compacts on its own, 0 only when
                                   kvs_compact is called */
    uint64_t max_index_memory;  /* kvs engine: bytes the key index may take in RAM; 0
                                   (default): no limit. At the limit, writes of new keys fail
                                   with KVS_EFULL; at least 1 MiB when set */
    /* The store's clock for expiry times, in ms since the Unix epoch (kvs_now_ms); NULL
       (default): CLOCK_REALTIME. Called from any thread, often: keep it cheap. For tests. */
    uint64_t (*clock_ms)(void *ctx);
    void *clock_ctx;
    /* Called on the store's syncing thread each time the durable position grows, and when the
       store is fenced (kvs_durable then says so): keep it short and do not call libkvs from it
       (wake a thread, uv_async_send). NULL: none. */
    void (*on_durable)(void *ctx);
    void *durable_ctx;
    uint64_t expire_effort;     /* expired keys the background sweep may remove per second,
                                   at most; default 20,000 (0: no sweep, only compaction and
                                   reads see expiry) */
    uint64_t compact_rate;      /* kvs engine: bytes a second that background compaction (the
                                   maintenance thread's; not kvs_compact) reads from the segments
                                   it compacts, at most: it sleeps between records to keep to it,
                                   so its work is spread out rather than taken in bursts that
                                   delay requests. Default 32 MiB/s (compaction keeps up with
                                   overwrites at up to half that); 0: no limit */
    int compact_nice;           /* kvs engine: how much lower than the process's the priority
                                   (nice value) of the maintenance thread is — compaction, hint
                                   files, the expiry sweep — so that it takes the cores only
                                   when the threads serving requests leave them; default 10,
                                   range 0 (as the process) .. 19 */
    int sync_on_request;        /* kvs engine, KVS_SYNC_ALWAYS: 1 and kvs_write_pos does not
                                   start a sync by itself; the caller calls kvs_sync_soon once it
                                   has applied what it has at hand (an event loop: at the end of
                                   each turn), so that one fdatasync covers all of it rather than
                                   the first batch of it. kvs_write and kvs_wait_durable still
                                   ask for their sync. Default 0: each applied batch starts one */
} kvs_options;

typedef struct kvs_stats {
    char engine[16];            /* "kvs" or "lmdb" */
    kvs_sync sync;
    uint64_t keys;              /* live keys */
    uint64_t live_bytes;        /* bytes of records that are current */
    uint64_t dead_bytes;        /* bytes of overwritten or removed records not yet reclaimed */
    uint64_t disk_bytes;        /* bytes of all data files */
    uint64_t segments;          /* live segment files */
    uint64_t compactions;       /* completed compaction runs since open */
    uint64_t compact_reclaimed; /* bytes reclaimed by them */
    uint64_t compact_last_usec; /* duration of the last run */
    uint64_t writes;            /* records written since open */
    uint64_t syncs;             /* fdatasync calls on data files since open */
    uint64_t corrupt_reads;     /* reads refused because the record failed its checksum */
    int compacting;             /* 1 while a compaction runs */
    uint64_t compact_done_bytes;  /* of the running compaction: input bytes scanned so far */
    uint64_t compact_todo_bytes;  /* ... and in all */
    uint64_t corrupt_records;   /* damaged records found by recovery at open (logged with file
                                   and offset); a damaged record's key reads as KVS_ECORRUPT */
    uint64_t index_bytes;       /* kvs engine: RAM the key index takes now, exactly */
    uint64_t index_max_bytes;   /* its budget (max_index_memory); 0: none */
    uint64_t index_keys_left;   /* new keys that fit before the budget; UINT64_MAX: no budget */
    uint64_t expiring_keys;     /* keys with an expiry time (expired ones not yet removed too) */
    uint64_t expired_keys;      /* keys removed because their time passed, since open */
    uint64_t durable_syncs;     /* syncs that advanced the durable position, since open */
    uint64_t durable_writes;    /* records they made durable (/ durable_syncs: writes a sync) */
    uint64_t lag_bytes;         /* bytes applied and not yet durable, now */
    uint64_t lag_usec;          /* how long the oldest of them has waited, now (0: none) */
    uint64_t compact_paced_usec; /* time background compaction slept to keep to compact_rate,
                                    since open */
} kvs_stats;

typedef struct kvs kvs_t;

/*
 * Expiry. A key may carry an expiry time: ms since the Unix epoch by the store's clock
 * (kvs_options.clock_ms; kvs_now_ms reads it), 0 meaning never. It is kept with the value (the
 * kvs engine's record, the lmdb engine's value header), never in RAM per key. A key whose time
 * has come (expire_ms <= now) is absent for every call: reads, kvs_write's updates, iteration,
 * and it is removed — by a background sweep (at most expire_effort keys a second), by
 * compaction, or by the next write of it — and stays absent across a restart, whatever of it is
 * still on disk. stats.keys counts keys not yet removed, as Redis's DBSIZE does.
 */
uint64_t kvs_now_ms(kvs_t *db);

/* What a read finds besides the value. */
typedef struct kvs_meta {
    uint64_t expire_ms;  /* 0: never */
    uint64_t version;    /* changes with every write of the key (set, remove, update, expiry),
                            and never comes back while the store is open: WATCH compares it.
                            0 for an absent key */
} kvs_meta;

/*
 * Read-modify-write (KVS_OP_UPDATE). The engine calls fn in its write order — after every op
 * before it in the batch, and before any write that commits after it — with the key's current
 * state, and fn decides what to write: the read and the write are one atomic step per key,
 * whatever other threads write (INCR, SET NX/XX/GET/KEEPTTL, APPEND, GETSET, RENAME's parts,
 * WATCH's checks). fn runs under the engine's write lock: it must be quick and must not call
 * libkvs. It fills *out: type KVS_OP_SET (val, vlen, expire_ms: val must stay valid until
 * kvs_write returns, e.g. in ctx), KVS_OP_REMOVE, or KVS_OP_NONE (write nothing; the default).
 * It returns 0, or a negative code that becomes the op's rc: nothing is written for it, and
 * with KVS_ECONFLICT the ops after it in its group are not applied either (rc KVS_ECONFLICT).
 * The ops before it in its group are applied. An update whose set would add a key past the kvs
 * engine's max_index_memory gets KVS_EFULL, which ends its group the same way. An engine
 * without updates yet refuses them at kvs_write's checks (KVS_EINVAL, its group with it).
 */
typedef struct kvs_cur {
    const void *val;     /* the current value where it lies, valid during the call; NULL (and
                            vlen 0) when the key is absent or expired */
    size_t vlen;
    int found;           /* 1: the key is there */
    kvs_meta meta;
} kvs_cur;
typedef struct kvs_update_out {
    int type;            /* KVS_OP_SET, KVS_OP_REMOVE or KVS_OP_NONE */
    const void *val;
    size_t vlen;
    uint64_t expire_ms;
} kvs_update_out;
typedef int (*kvs_update_fn)(void *ctx, const kvs_cur *cur, kvs_update_out *out);

/* One write of a batch (kvs_write). */
enum { KVS_OP_SET = 0, KVS_OP_REMOVE = 1, KVS_OP_UPDATE = 2, KVS_OP_NONE = 3 };
/* kvs_op.flags: this op and the next one are refused together (kvs_write: a group). */
#define KVS_OP_WITH_NEXT 0x1u
typedef struct kvs_op {
    int type;            /* KVS_OP_SET, KVS_OP_REMOVE or KVS_OP_UPDATE */
    const void *key;
    size_t klen;
    const void *val;     /* KVS_OP_SET only */
    size_t vlen;
    int rc;              /* out: 0, KVS_ENOTFOUND (a remove of a missing key), or an error */
    unsigned flags;      /* 0, or KVS_OP_WITH_NEXT */
    uint64_t expire_ms;  /* KVS_OP_SET: the key's expiry time; 0: never (a SET clears it) */
    kvs_update_fn update; /* KVS_OP_UPDATE: what to write (above) */
    void *update_ctx;
} kvs_op;

/* Fill *opt with the defaults. Always call it first: fields added later get their defaults. */
void kvs_options_init(kvs_options *opt);

/* Allocate a closed handle into *out. Free it with kvs_close (open or not). */
int kvs_create(kvs_t **out);

/* Set the options of a handle that is not open yet (KVS_ESTATE otherwise). */
int kvs_configure(kvs_t *db, const kvs_options *opt);

/* Open (creating if needed) the store in directory dir. KVS_EBUSY if another handle or process
 * has it open, KVS_EENGINE if it belongs to another engine, KVS_EFORMAT if it holds a kvs-engine
 * store of an earlier format (convert it with kvs_upgrade; the lmdb engine converts its own
 * earlier format at open, in one transaction, and logs that it did). */
int kvs_open(kvs_t *db, const char *dir);

/* Store value under key, replacing any previous value. */
int kvs_set(kvs_t *db, const void *key, size_t klen, const void *val, size_t vlen);

/* Look key up. On success *val points to a new buffer of *vlen bytes, followed by one NUL byte
 * that is not counted (so text values can be used as C strings); the caller owns it and frees it
 * with kvs_free. KVS_ENOTFOUND if the key is absent (then *val is NULL). */
int kvs_get(kvs_t *db, const void *key, size_t klen, void **val, size_t *vlen);

/* Look key up and hand its value to fn(ctx, val, vlen) where it lies, without a copy by
 * libkvs. val is valid only during the call: fn copies what it needs, and must not call libkvs
 * on this store. Returns fn's return value (which should be 0 or a KVS_E* code), or
 * KVS_ENOTFOUND (fn not called). kvs_get is kvs_read with a copying fn. */
typedef int (*kvs_value_fn)(void *ctx, const void *val, size_t vlen);
int kvs_read(kvs_t *db, const void *key, size_t klen, kvs_value_fn fn, void *ctx);

/* Remove key. KVS_ENOTFOUND if it was not there (nothing is written then). */
int kvs_remove(kvs_t *db, const void *key, size_t klen);

/* Apply n writes in order, committed together: one append and, with KVS_SYNC_ALWAYS, one sync
 * for all of them (and for whatever other threads commit at the same moment: group commit).
 * Each op's rc is always set and says how it went; the return value is 0 if every op succeeded,
 * else the first failure in op order (KVS_ENOTFOUND included). An op that fails its own checks
 * (a key or value too large, a NULL pointer with a length, an unknown type) is not applied, and
 * the others still are. Not atomic: after a crash a prefix of the batch may remain.
 *
 * A group is a run of ops each flagged KVS_OP_WITH_NEXT and the op after the last of them (an
 * op without the flag, after one without it, is a group of its own). A group is refused whole:
 * if one of its ops fails its checks, or its new keys do not all fit under the kvs engine's
 * max_index_memory (KVS_EFULL; counted once however often the group sets a key), none of its
 * ops is applied and each gets that error — what Redis's MSET needs. A failure of the engine
 * itself (I/O) fails every op of the batch. A group is also one unit across a crash: after
 * one, either all of its writes are in the store or none is (MULTI/EXEC, MSET) — a batch of
 * several groups may keep a prefix of its groups. (The kvs engine puts a group's records in
 * one segment file; a group of more than 4 GiB of records is refused with KVS_EINVAL.) */
int kvs_write(kvs_t *db, kvs_op *ops, size_t n);

/* kvs_write without waiting for the sync (Positions, above): returns once the batch is applied,
 * with its position in *pos (n == 0: the position of everything applied so far; a batch that
 * failed whole — every op with the same engine error — has nothing to wait for: 0). The ops are
 * acknowledged only once kvs_durable reaches *pos — under KVS_SYNC_ALWAYS soon, as the store's
 * syncing thread runs back to back while there is anything to sync (with sync_on_request, once
 * kvs_sync_soon asks). */
int kvs_write_pos(kvs_t *db, kvs_op *ops, size_t n, uint64_t *pos);
/* The durable position now into *pos: 0, or KVS_ESYNC when a sync failed (the store is fenced:
 * nothing past *pos will ever be durable). */
int kvs_durable(kvs_t *db, uint64_t *pos);
/* Wait until the durable position reaches pos: 0; KVS_ESYNC (fenced); KVS_ETIMEDOUT after
 * timeout_ms (< 0: no limit). Under KVS_SYNC_EVERYSEC or NEVER it asks for a sync at once
 * (Redis's WAITAOF) rather than wait for the next one. */
int kvs_wait_durable(kvs_t *db, uint64_t pos, long timeout_ms);
/* Ask for a sync of everything applied so far, without waiting for it (kvs_durable, on_durable
 * then say when it is done). */
int kvs_sync_soon(kvs_t *db);

/* kvs_read, with the key's expiry time and version in *meta (may be NULL). */
int kvs_read_meta(kvs_t *db, const void *key, size_t klen, kvs_value_fn fn, void *ctx,
                  kvs_meta *meta);

/*
 * Iteration, beside writers on other threads (not a snapshot). The guarantee is Redis's SCAN's:
 * a key present from the start of the iteration to its end is visited at least once (more than
 * once is possible, also when the index grows meanwhile); a key added or removed meanwhile may
 * or may not be; an expired key is not. Each key's value is as it was when it was visited.
 */
typedef int (*kvs_entry_fn)(void *ctx, const void *key, size_t klen, const void *val,
                            size_t vlen, const kvs_meta *meta);
typedef struct kvs_iter kvs_iter;
/* A new iterator into *out, the caller's to end with kvs_iter_end before kvs_close. */
int kvs_iter_begin(kvs_t *db, kvs_iter **out);
/* The next key: fn gets key and value where they lie (valid during the call; fn must not call
 * libkvs on this store). Returns 1 (fn was called and returned >= 0), 0 at the end, or a
 * negative code (fn's own, when it returned one; the iterator can go on after it). */
int kvs_iter_next(kvs_iter *it, kvs_entry_fn fn, void *ctx);
void kvs_iter_end(kvs_iter *it);
/* One step of a stateless scan, as Redis's SCAN: cursor 0 starts, *next == 0 says it is done;
 * fn gets about count keys (a hint: more or fewer, none at the end), value and all, and the
 * same guarantee as kvs_iter. A cursor is an opaque number valid for this store (across a
 * restart too, with the guarantee then only for keys present throughout). fn returning a
 * negative code ends the step with it (*next then unspecified: scan again from cursor). */
int kvs_scan(kvs_t *db, uint64_t cursor, size_t count, kvs_entry_fn fn, void *ctx,
             uint64_t *next);
/* Remove every key (FLUSHDB). With async, return at once and remove them in the background
 * (keys written after the call stay); without, return when all are removed and durable as
 * kvs_write would be (keys other threads write during the call may or may not stay). */
int kvs_clear(kvs_t *db, int async);

/* Another reference to an open handle, for another thread or owner; each reference is given
 * back with kvs_close, and the store really closes (stopping its threads, syncing) when the
 * last one is. Returns db. */
kvs_t *kvs_ref(kvs_t *db);

/* Copy the store's figures into *out. */
int kvs_stats_get(kvs_t *db, kvs_stats *out);

/* Compact now: rewrite every sealed segment that holds dead bytes. Returns the bytes reclaimed
 * (≥ 0) or an error. Also runs on its own when auto_compact is set. */
int64_t kvs_compact(kvs_t *db);

/* Force everything written so far onto disk. */
int kvs_sync_now(kvs_t *db);

/* Give back a reference (kvs_create and kvs_ref each make one). The last one closes the store
 * (stopping its background threads, syncing) and frees the handle, open or not. Returns the
 * first error met while closing; the handle is freed either way. NULL is allowed. */
int kvs_close(kvs_t *db);

/* Free a buffer returned by kvs_get. NULL is allowed. */
void kvs_free(void *p);

/* A static, human-readable name for an error code. */
const char *kvs_strerror(int err);

/* Detail of the most recent failure on the calling thread ("" if none); valid until the next
 * libkvs call on this thread. */
const char *kvs_last_error(void);

/*
 * Converting a store of an earlier on-disk format. The kvs engine's format 3 keeps a per-key
 * expiry time in every record; kvs_open refuses a store of format 2 (KVS_EFORMAT), and
 * kvs_upgrade converts one, offline, holding the directory's lock as kvs_open does (KVS_EBUSY
 * while a server or another handle has it open):
 *
 *   1. read the live segments the MANIFEST names, verifying both checksums of every record,
 *      and keep the newest record (highest seq) of each key; a key whose newest record is a
 *      removal is left out, and so is one whose newest record is damaged (never its older
 *      value in its place). Damage is logged (WARN, with file and offset) and counted; an
 *      append a crash cut short at the end of the active segment is only logged, as open did;
 *   2. write those keys into a new store in the sibling directory DIR.upgrade (kvs_write
 *      batches; synced at the end);
 *   3. rename DIR to DIR.format2 (the old store, kept as it was: the user's backup, removed by
 *      no one but the user), then DIR.upgrade to DIR, syncing the parent directory after each.
 *
 * Run again after a crash, it finishes the job: before step 3, DIR.upgrade is a leftover and is
 * made anew; between the two renames (DIR missing, DIR.format2 and DIR.upgrade there), the
 * second rename is done. A store of the current format, or of the lmdb engine (whose format-1
 * stores kvs_open converts in place), is left as it is: 0 with outcome KVS_UPGRADE_CURRENT. A directory that
 * holds no store: KVS_EINVAL. An existing DIR.format2 beside a store to convert: KVS_EBUSY
 * (move the old backup away first); DIR a symbolic link: KVS_EINVAL (name the directory).
 * Returns 0 or a negative error, with kvs_last_error's detail; report (may be NULL) is filled
 * in either way, as far as the run went.
 */
enum { KVS_UPGRADE_CONVERTED = 0, KVS_UPGRADE_RESUMED = 1, KVS_UPGRADE_CURRENT = 2 };
enum { KVS_UPGRADE_READING = 0, KVS_UPGRADE_WRITING = 1 };
typedef struct kvs_upgrade_report {
    int outcome;              /* KVS_UPGRADE_CONVERTED, _RESUMED (a crash between the renames
                                 finished), _CURRENT (nothing to do) */
    int phase;                /* for progress: KVS_UPGRADE_READING or _WRITING */
    uint64_t segments_total;  /* live segments of the old store */
    uint64_t segments_read;
    uint64_t records;         /* records read, damaged ones included */
    uint64_t keys_total;      /* keys to write: the newest record of each is a set, intact */
    uint64_t keys;            /* keys written to the new store so far */
    uint64_t tombstones;      /* keys left out: their newest record removes them */
    uint64_t damaged;         /* damaged records and unreadable regions skipped (logged) */
    uint64_t damaged_keys;    /* keys left out: their newest record is damaged (logged) */
    char backup[4096];        /* where the old store is kept: DIR.format2, DIR made absolute */
} kvs_upgrade_report;
/* Called as reading starts and after each segment read, as writing starts, every 100,000 keys
 * written and after the last one; on the calling thread. */
typedef void (*kvs_upgrade_fn)(void *ctx, const kvs_upgrade_report *so_far);
int kvs_upgrade(const char *dir, kvs_upgrade_fn progress, void *ctx, kvs_upgrade_report *report);

/*
 * Backups, checking, salvage.
 *
 * kvs_checkpoint(db, dest): a consistent copy of the open store in dest, taken while the store
 * keeps serving, that kvs_open opens as an ordinary data directory. It holds every write that
 * was acknowledged (kvs_write returned) before the call began; writes made during the call may
 * or may not be in it, and what it holds is a prefix of the commit order (whole groups). dest
 * must be absent (it is created; its parent must exist) or an empty directory; anything else is
 * KVS_EINVAL, and nothing is written then. The ENGINE file is written into it too, and
 * everything in it is synced (files and directory entries) before the call returns.
 *   - kvs engine: instant and without a second copy of the data. The active segment is sealed
 *     (a rotation), every sealed segment is synced and hard-linked into dest with its hint
 *     file, and dest gets a MANIFEST of its own naming exactly those segments and a new empty
 *     active segment (its own file: writes to an opened checkpoint never reach the source's
 *     files, which neither store ever changes in place). Compaction waits from the seal until
 *     the links are made (it may neither delete a segment being linked nor drop a record in
 *     view of writes the checkpoint leaves out) and goes on after. Hard links need dest
 *     on the same file system as the store: otherwise KVS_EINVAL ("on another file system"),
 *     never a silent copy. The linked files are shared: their space is freed once neither
 *     store needs them.
 *   - lmdb engine: a copy of the environment (mdb_env_copy2, without compaction: a page-for-
 *     page copy under one read transaction, so as consistent as any reader's view, and no
 *     slower for a store that has little free space) — a real copy, as LMDB cannot share pages.
 * On failure the files the call made in dest are removed (and dest, if the call created it).
 */
int kvs_checkpoint(kvs_t *db, const char *dest);

/*
 * kvs_verify(dir, fn, ctx, report): read a data directory offline and check everything in it —
 * kvs engine: every record of every live segment (both checksums, lengths, seq order in the
 * active segment, the tail), every hint entry against the record it names and each hint's
 * checksum, the MANIFEST (every edit's checksum and shape, every segment it names present,
 * segment files it does not name explained); lmdb engine: every entry of the database read
 * through a cursor, its value header checked. Each finding goes to fn (may be NULL) as
 * (file, offset, what) — file named as in dir, offset in bytes from its start (lmdb: the
 * entry's position in key order, LMDB having no offsets of its own to give) — with bad 1 for
 * damage, 0 for a note (a leftover that the next open removes).
 * Nothing in dir is written: files are opened read-only, and the directory's lock is taken
 * shared, so a store opened meanwhile waits for nothing but gets KVS_EBUSY, and a directory a
 * store (a server) has open is refused with KVS_EBUSY — verify a checkpoint of it instead.
 * Returns 0 when nothing bad was found, KVS_ECORRUPT when something was (report->bad counts
 * them), another negative code when the check could not run (no store there: KVS_EINVAL).
 */
typedef void (*kvs_finding_fn)(void *ctx, int bad, const char *file, uint64_t off,
                               const char *what);
typedef struct kvs_verify_report {
    uint64_t segments;        /* segment files read (kvs), 1 for lmdb's data file */
    uint64_t records;         /* records read, damaged ones included (lmdb: entries) */
    uint64_t keys;            /* distinct keys whose newest record is an intact set */
    uint64_t bytes;           /* bytes of the records read */
    uint64_t hint_entries;    /* hint entries checked */
    uint64_t manifest_edits;  /* manifest edits read */
    uint64_t bad;             /* findings that are damage */
    uint64_t notes;           /* findings that are not */
} kvs_verify_report;
int kvs_verify(const char *dir, kvs_finding_fn fn, void *ctx, kvs_verify_report *report);

/*
 * kvs_repair(dir, dest, fn, ctx, report): salvage the kvs engine's store in dir into a new
 * store in dest (absent, or an empty directory), reading dir as kvs_verify does (read-only,
 * shared lock). It reads every segment the MANIFEST's valid edits name, and every segment file
 * no edit names or dropped (the segment of a lost edit), keeping every record whose checksums
 * hold and, of each key, the newest of those (highest seq): a key whose newest intact record is
 * a removal, or has expired (as recovery judges it, by the clock now), is left out. A damaged
 * record is dropped; where it was its key's newest, the key's newest intact record stands in
 * (said in a finding: it is an older value) or, with none, the key is left out. Bytes after a
 * damaged record header cannot be read (records are never looked for inside values) and are
 * dropped whole. Each thing dropped goes to fn as (file, offset, reason) with bad 1. dest is
 * written through kvs_open/kvs_write (expiry times kept), synced, and opens normally. 0 when
 * dest is written (report says what was dropped), or a negative code. The lmdb engine:
 * KVS_EINVAL (mdb_dump and mdb_load salvage what LMDB can read).
 */
typedef struct kvs_repair_report {
    uint64_t segments;        /* segment files read */
    uint64_t records;         /* records read, damaged ones included */
    uint64_t keys;            /* keys written to dest */
    uint64_t removed;         /* keys left out: their newest record is a removal */
    uint64_t expired;         /* keys left out: their time has passed */
    uint64_t dropped;         /* damaged records and unreadable regions dropped */
    uint64_t dropped_bytes;   /* ... their bytes */
    uint64_t damaged_keys;    /* keys whose newest record is damaged (an older one kept, or
                                 the key left out) */
} kvs_repair_report;
int kvs_repair(const char *dir, const char *dest, kvs_finding_fn fn, void *ctx,
               kvs_repair_report *report);

/* Logging. libkvs reports what an operator should know (a torn tail truncated, a corrupt record
 * skipped) through one process-wide handler; by default lines go to stderr at level ≥ WARN. */
enum { KVS_LOG_DEBUG = 0, KVS_LOG_INFO = 1, KVS_LOG_WARN = 2, KVS_LOG_ERROR = 3, KVS_LOG_OFF = 4 };
typedef void (*kvs_log_fn)(int level, const char *msg, void *ctx);
void kvs_log_set_level(int level);
/* fn NULL restores the stderr handler. msg is only valid during the call. */
void kvs_log_set_handler(kvs_log_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#endif /* KVS_H */
