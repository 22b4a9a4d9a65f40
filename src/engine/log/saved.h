/*
 * saved.h — the saved index: the key index written at a clean close, so that the next open
 * loads it instead of rebuilding it from the hint files.
 *
 * A rebuild reads every hint entry and inserts every key (1M keys: about 165 ms). The saved
 * index is the index's table itself (index.h: words and hashes, 12 bytes a slot) and what the
 * store computed about each segment while it ran, so an open reads one file of that size
 * straight into the table's memory and checks it, and nothing else (1M keys: about 22 ms). The
 * hash seed goes with the table (its hashes are under it): it outlives a clean restart, and is
 * drawn anew by every rebuild.
 *
 * Life of the file. ldb_close, after its last sync, writes INDEX.tmp, fdatasyncs it, renames it
 * to INDEX and fsyncs the directory. The next open reads it — whether it uses it or not — then
 * renames it to INDEX.old and fsyncs the directory before the store takes a write: a saved
 * index describes the store at one close, and must not outlive the first change after it. The
 * maintenance thread unlinks INDEX.old soon after (ldb_index_drop_retired): unlinking a file of
 * that size (18 MB at 1M keys) takes 20-25 ms, a third of an open from it, and a rename none —
 * as Redis hands the unlink of a large file to a background thread. A crash at any step leaves
 * no INDEX (the rebuild runs), an INDEX.tmp or INDEX.old (removed at open as leftovers), or a
 * whole INDEX; a file cut short or damaged fails its checksum.
 *
 * When it is used. Only when everything it describes is as it was, else the open logs why (at
 * info level where the store moved on since, warning where the file itself is damaged) and
 * rebuilds from the hints:
 *   - the checksum holds over the whole file, the format version is this one, the table holds
 *     together (idx_image_install);
 *   - the MANIFEST names exactly the saved segments, the same one active;
 *   - each sealed segment has the saved size and inode (sealed segments are immutable) and a
 *     hint file (a store that lacks one is left to the rebuild, which writes it);
 *   - the active segment has the saved inode and at least the saved size, and its bytes up to
 *     that size have the saved checksum: the records after it, if any, are newer than anything
 *     saved and are replayed on top (a saved index that outlived an open — a rename that did
 *     not reach the disk — is still exact).
 * No saved index is written for a store whose open found damage (corrupt_records, unreadable
 * bytes): the rebuild reports damage at every open, and goes on doing so.
 *
 * The file, INDEX. Little-endian; the table's arrays are written as they lie in memory, so a
 * big-endian build neither writes nor reads one.
 *
 *   offset  size  field
 *   ------  ----  ---------------------------------------------------------------
 *        0     4  magic "KVSI" (0x4953564b)
 *        4     2  format version (2)
 *        6     2  reserved, 0
 *        8     4  segment count S (the live segments)
 *       12     4  active segment id
 *       16     8  seq: the last sequence number the store handed out
 *       24     8  the index's hash seed (the hashes below are under it)
 *       32     8  n: the table's home slots
 *       40     8  cap: its slots in all (n + tail)
 *       48     8  live keys
 *       56     8  deleted markers in the table
 *       64     8  XXH3-64 of the active segment's bytes from 0 to its size at the save
 *       72     8  reserved, 0
 *
 *   segment entry (64 bytes), S of them in ascending id; entry k is segment slot k + 1 in the
 *   words below (the slots a rebuild would give them):
 *        0     4  segment id
 *        4     4  flags: bit 0 the active segment; the others 0
 *        8     8  size: bytes of the file (the active one's at the save)
 *       16     8  dead bytes (compaction's accounting: segment.h)
 *       24     8  min_seq (UINT64_MAX: no record)
 *       32     8  max_seq
 *       40     8  unreadable bytes
 *       48     8  inode of the file
 *       56     8  reserved, 0
 *
 *   words:   cap × 8 bytes, index.h's word per slot, segment slots numbered as above
 *   hashes:  cap × 4 bytes, index.h's hash per slot
 *   footer:  8 bytes, XXH3-64 over every byte before it
 */
#ifndef KVS_LOG_SAVED_H
#define KVS_LOG_SAVED_H

#include <stdint.h>

#include "engine/log/logdb.h"

#define SAVED_FILE "INDEX"
#define SAVED_RETIRED SAVED_FILE ".old"
#define SAVED_MAGIC 0x4953564bu
#define SAVED_VERSION 2u /* 2: word bit 63 is IDX_EXPIRES, tags 14 bits (index.h); a file of
                            version 1 is refused, and the index rebuilt from the log */
#define SAVED_HDR 80u
#define SAVED_SEG 64u

/* Write the saved index of db (close: alone, after the last sync, under wmu). 0 if written or
 * deliberately not (damage; logged), else the failure — the caller logs it; nothing is left
 * behind but, after a crash, INDEX.tmp. */
int ldb_index_save(logdb *db);
/* At open, with the live segments open and in the segment list, the index empty and outside
 * idx_recovery_begin: load the saved index if there is one and it matches the store (above),
 * and set what it holds — the index, each segment's figures, db->seq. *replay_from: where the
 * active segment's records not in it begin. Either way the file is renamed to INDEX.old (and
 * the directory synced) before this returns, db->index_retired set. 1 loaded, 0 none or
 * refused (why is logged), or an error: the file could not be moved out of the way. */
int ldb_index_load(logdb *db, uint64_t *replay_from);
/* Unlink INDEX.old if db->index_retired says it is there (the maintenance thread, or close
 * before it saves; not under wmu: the unlink is slow). */
void ldb_index_drop_retired(logdb *db);

#endif
