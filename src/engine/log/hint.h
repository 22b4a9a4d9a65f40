/*
 * hint.h — hint files: the keys of a sealed segment, so start-up reads keys, not values.
 *
 * NNNNNN.hint lists, in file order, every record of sealed segment NNNNNN.log (sets and
 * tombstones, dead or alive: recovery and tombstone retention reason about what is physically in
 * the segment), those whose value is damaged too (their headers are authentic: the key must read
 * as corrupt, not as an older value). It is written once, after the segment is sealed
 * (ldb_write_pending_hints, compaction for its outputs, recovery after a scan), through a
 * temporary file and a rename, and is only an accelerator: when it is missing, or anything in
 * it is off, recovery scans the segment instead.
 *
 * Header (24 bytes), entries, footer (8 bytes). Little-endian.
 *
 *   offset  size  field
 *   ------  ----  ---------------------------------------------------------------
 *        0     4  magic "KVSH" (0x4853564b)
 *        4     2  format version (2; 1, before expiry times, is not read: the segment is
 *                 scanned instead, and its hint written anew)
 *        6     2  reserved, 0
 *        8     4  segment id
 *       12     4  entry count
 *       16     8  size of the segment file the hint describes
 *
 *   entry (29 + key_len bytes):
 *        0     8  seq
 *        8     4  record offset in the segment
 *       12     4  val_len
 *       16     4  key_len
 *       20     1  flags (as the record's)
 *       21     8  expire_at (as the record's: ms since the Unix epoch, 0 = never)
 *       29     k  key
 *
 *   footer: 8 bytes, XXH3-64 over all entries followed by the header (the header is known
 *   last, when the entries are written).
 */
#ifndef KVS_LOG_HINT_H
#define KVS_LOG_HINT_H

#include "engine/log/segment.h"

#define HINT_MAGIC 0x4853564bu
#define HINT_VERSION 2u
#define HINT_HDR 24u
#define HINT_ENTRY 29u

/* Write s's hint file from a scan of s (synced, renamed into place; the caller syncs the dir). */
int hint_write(const char *dir, const seg *s);
/* Feed every entry of s's hint to fn (seg_rec with val NULL). KVS_ENOTFOUND if there is no hint,
 * KVS_ECORRUPT if it is damaged or does not match s; fn is not called then. */
int hint_load(const char *dir, const seg *s, seg_scan_fn fn, void *ctx);

/* The entry count s's hint header gives, unverified (recovery sizes its index with it before
 * loading): 0, or KVS_ENOTFOUND when there is no hint, or its header does not describe s. */
int hint_count(const char *dir, const seg *s, uint32_t *count);
/* A hint file's mapping, left in place by hint_load_kept. */
typedef struct hint_map {
    void *addr; /* NULL: nothing kept */
    size_t len;
} hint_map;
/* As hint_load, but once fn has been handed entries the mapping stays, in *kept, so that the keys
 * they point at stay readable (recovery: the index compares keys against them until
 * idx_recovery_end) — also when fn failed. The caller releases it with hint_unmap. */
int hint_load_kept(const char *dir, const seg *s, seg_scan_fn fn, void *ctx, hint_map *kept);
void hint_unmap(hint_map *m);
/* Decode the entry at p (room bytes left before the footer) into *r (val NULL, damaged false)
 * for a segment of seg_size bytes: 1, 0 if its fields are out of bounds (r is filled as far as
 * the bytes go), -1 if it runs past room. For the walks here and kvs_verify's (verify.c). */
int hint_entry_decode(const unsigned char *p, size_t room, uint64_t seg_size, seg_rec *r);
/* The footer checksum of a hint file's bytes m[0, n), n >= HINT_HDR + 8: true if it holds. */
bool hint_sum_ok(const unsigned char *m, size_t n);

#endif
