/*
 * segment.h — segment files: the append-only logs that hold every record.
 *
 * A store is a set of segments named NNNNNN.log (the id in decimal, at least six digits). The
 * MANIFEST says which are live and which one is active; the active segment takes appends until it
 * passes the segment size, then it is sealed (made immutable, given a hint file) and a new one
 * becomes active. Compaction writes sealed segments of its own and retires the ones it replaced.
 *
 * File header (16 bytes), then records (record.h) back to back to the end of the file:
 *
 *   offset  size  field
 *   ------  ----  ---------------------------------------------------------------
 *        0     4  magic "KVSL" (0x4c53564b little-endian)
 *        4     2  format version (3: records with a header checksum, a value checksum and an
 *                 expiry time, record.h; 2, before expiry: refused with KVS_EFORMAT, converted
 *                 by kvs_upgrade; 1: refused with KVS_EVERSION)
 *        6     2  reserved, 0
 *        8     4  segment id (must match the file name)
 *       12     4  checksum: low 32 bits of XXH3-64 over bytes 0..11
 *
 * Memory: every live segment is mapped (MAP_SHARED). Readers take values straight from the
 * mapping — no system call per read. The active segment is mapped writable over its whole
 * capacity and appends are memcpy into the mapping: the bytes are then in the kernel's page
 * cache, which survives the process being killed, and fdatasync writes them to disk like any
 * other dirty page. The file grows ahead of the writes in fallocated steps (so a full disk is an
 * error from fallocate, never a SIGBUS), and is cut back to its data when sealed or closed;
 * recovery drops a tail of zeros silently (sealed segments too: a crash can come between a
 * rotation and the seal) and reports what else it finds (seg_scan below). A sealed
 * segment's pages are released from the process (MADV_DONTNEED) so that what it wrote does not
 * stay counted in its resident memory; reads and the index's key compares fault back in what
 * they touch, and the maintenance thread releases those pages again at each tick (about 1 s).
 *
 * Lifetime: a struct seg is reached by readers through index entries, under an RCU read lock:
 * an entry names it by a slot of the index's segment table, given before any record of it is
 * indexed (idx_attach_seg: as it joins the live list, ldb_segs_add, or when compaction creates
 * it). It is freed (unmapped, its fd closed, its files unlinked: seg_destroy) only after it has
 * left the index and the segment list and an RCU grace period has passed, its slot freed then
 * too (idx_detach_seg; compaction's last step, compact.c), so a reader never touches a mapping
 * that is gone, nor finds its slot naming another segment.
 */
#ifndef KVS_LOG_SEGMENT_H
#define KVS_LOG_SEGMENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/log/record.h"

#define SEG_MAGIC 0x4c53564bu
#define SEG_VERSION 3u
#define SEG_VERSION_UPGRADABLE 2u /* the format kvs_upgrade converts (upgrade.c) */
#define SEG_HDR 16u
#define SEG_NAME_MAX 24

typedef struct seg {
    uint32_t id;
    uint16_t islot;    /* its slot in the index's segment table (index.h); 0: none */
    int fd;
    bool sealed;
    bool needs_hint;   /* sealed, hint file not written yet (under wmu) */
    bool needs_sync;   /* sealed with writes not yet synced (under wmu) */
    uint64_t unreadable; /* bytes after a damaged record header: kept for salvage, and so
                          * never compacted away (recovery sets it) */
    uint64_t size;     /* bytes in the file that hold valid data (header included) */
    uint64_t dead;     /* bytes of records superseded, removed, or corrupt */
    uint64_t min_seq;  /* smallest seq of any record in it; UINT64_MAX when empty */
    uint64_t max_seq;
    unsigned char *map; /* the file mapped; NULL only while a compaction output is written */
    uint64_t map_len;   /* bytes mapped: the capacity of the active segment, else its size */
    uint64_t alloc;     /* bytes the file holds on disk (active: ahead of size) */
    bool writable;      /* mapped for appends */
    pthread_mutex_t smu; /* one sync of this file at a time (sync.c, ldb_sync_seg) */
    char path[];        /* dir/NNNNNN.log, for messages and unlink */
} seg;

/* Name of segment id's file with the given suffix ("log", "hint") into out. */
void seg_name(char *out, size_t cap, uint32_t id, const char *suffix);
/* Parse "NNNNNN.suffix"; returns the id, or 0 if name is not such a file. */
uint32_t seg_parse_name(const char *name, const char *suffix);

/* Create segment id in dir with its header, synced; the directory entry is synced too. cap > 0:
 * it becomes an active segment mapped for appends of up to cap bytes in all; cap == 0: a file
 * written with pwrite (a compaction output), mapped by seg_map once complete. */
int seg_create(const char *dir, uint32_t id, uint64_t cap, seg **out);
/* Is dir/NNNNNN.log (id) a creation a crash cut short: shorter than a header, and its bytes the
 * start of the header seg_create writes for id (an empty file included)? */
bool seg_is_unfinished(const char *dir, uint32_t id);
/* Open an existing segment, checking its header, and map it. writable: the active one.
 * KVS_EFORMAT for a segment of SEG_VERSION_UPGRADABLE, KVS_EVERSION for another version. */
int seg_open(const char *dir, uint32_t id, bool writable, seg **out);
/* Open an existing segment read-only and map it whatever its format version, which goes into
 * *version (its header otherwise checked as seg_open does): for readers of older formats. */
int seg_open_any_version(const char *dir, uint32_t id, uint16_t *version, seg **out);
/* Map a complete segment for reading (a compaction output). */
int seg_map(seg *s);
/* Make the opened active segment appendable with capacity cap (after recovery). */
int seg_make_writable(seg *s, uint64_t cap);
/* Make sure the file holds [0, end) so that appends up to end can go into the mapping. */
int seg_reserve(seg *s, uint64_t end);
/* The active segment is done: cut the file back to its data and release its pages. */
int seg_seal(seg *s);
/* Drop a sealed segment's pages from the process's resident set (seg_seal does; so does the
 * maintenance thread's tick for the pages reads have brought back since). */
void seg_release_pages(seg *s);
/* Cut the file back to end bytes (a tail recovery found), synced; sealed or not. */
int seg_trim(seg *s, uint64_t end);
/* Close and free without touching the files. */
void seg_close(seg *s);
/* Close, unlink the .log and .hint files, free. The caller guarantees no reader can reach s. */
void seg_destroy(seg *s);

/* One record found by seg_scan. key and val point into the scanned mapping. */
typedef struct seg_rec {
    uint64_t off;
    uint64_t len;
    uint64_t seq;
    uint64_t expire_ms; /* the record's expire_at (record.h); 0: never */
    uint8_t flags;
    bool damaged; /* its header is authentic, its value fails its checksum (scans only) */
    uint32_t klen, vlen;
    const unsigned char *key, *val;
} seg_rec;

/* Callback: return 0 to go on, negative to stop the scan with that error. */
typedef int (*seg_scan_fn)(void *ctx, const seg_rec *r);

/* What follows the last record a scan handed out. */
enum seg_tail {
    SEG_TAIL_NONE = 0, /* nothing: the records run to the end of the file */
    SEG_TAIL_ZERO,     /* zeros only: room given ahead of appends that never came */
    SEG_TAIL_TORN,     /* an append a crash cut short (seg_scan_active only) */
    SEG_TAIL_CORRUPT,  /* a damaged record header, data after it: unreadable from there on */
};

typedef struct seg_scan_result {
    uint64_t valid_end;     /* end of the last record handed out: where the tail begins */
    uint64_t tail_bytes;    /* bytes from valid_end to the end of the file */
    int tail;               /* what they hold (enum seg_tail) */
    uint64_t records;       /* records handed out, damaged ones included */
    uint64_t damaged;       /* of those, records whose value fails its checksum */
    uint64_t damaged_bytes; /* ... and their bytes */
} seg_scan_result;

/*
 * Read the records of s up to s->size in order, verifying both checksums of each, and hand them
 * to fn. The scan steps only by the lengths of authentic headers, so it never reads records
 * inside a value, and it checksums each byte at most once (linear in the file):
 *   - header authentic, value intact: a record;
 *   - header authentic, value damaged: handed out with damaged set (its key, seq and extent are
 *     known: the caller indexes it, so that its key reads as corrupt rather than older), logged
 *     with file and offset; the scan goes on after it;
 *   - header authentic, extent past the end of the file, or header not authentic: the scan stops
 *     there; the rest is the tail, judged as enum seg_tail says (a damaged header with data
 *     after it is logged with offset and byte count).
 * seg_scan is for sealed segments, where only zeros are not corruption. */
int seg_scan(const seg *s, seg_scan_fn fn, void *ctx, seg_scan_result *res);
/* The same for the active segment after a crash, where the tail may be an append cut short:
 * damaged records with nothing intact after them, an authentic header whose record runs past the
 * end, or a damaged header followed by nothing but zeros (the copy stopped inside the header or,
 * the header complete, inside the key). Damaged records that are part of such a tail are not
 * handed out: the tail is SEG_TAIL_TORN, for the caller to cut — also when what follows such
 * damaged records is not zeros (a power cut may leave anything after the last sync). */
int seg_scan_active(const seg *s, seg_scan_fn fn, void *ctx, seg_scan_result *res);
/* seg_scan_active of the records from offset from on (the start of a record: where the records
 * a saved index holds end, saved.h); the tail is judged the same. */
int seg_scan_active_from(const seg *s, uint64_t from, seg_scan_fn fn, void *ctx,
                         seg_scan_result *res);
/* A sealed segment that may not have been synced since it was sealed (it has no hint file): its
 * tail is judged as seg_scan_active judges one where its records are newer than
 * newest_elsewhere — the newest seq any other segment holds — and as seg_scan judges one where
 * they are not: segments are synced oldest first, so a newer record that survived elsewhere
 * means this segment had been synced whole, and damage in it is damage. */
int seg_scan_unsynced(const seg *s, uint64_t newest_elsewhere, seg_scan_fn fn, void *ctx,
                      seg_scan_result *res);

#ifdef KVS_TEST_HOOKS
/* Test figure: bytes seg_scan has checksummed since the process started (test builds only:
 * KVS_TEST_HOOKS, logdb.h). */
extern uint64_t kvs_test_scan_hashed;
#endif

#endif
