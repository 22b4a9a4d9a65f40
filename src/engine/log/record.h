/*
 * record.h — the record, the unit of every segment file.
 *
 * A set writes one record holding key and value; a remove writes a tombstone record holding the
 * key alone. Records are immutable once written; a newer record for the same key (higher seq)
 * supersedes an older one wherever either lies. All integers are little-endian.
 *
 *   offset  size  field
 *   ------  ----  ---------------------------------------------------------------
 *        0     4  hcrc: low 32 bits of XXH3-64 over bytes 8 .. end of key (header and key)
 *        4     4  vcrc: low 32 bits of XXH3-64 over the value bytes
 *        8     8  seq: the store-wide sequence number of this write (> 0)
 *       16     1  flags: bit 0 = tombstone; bit 1 = group continues (REC_GROUP_MORE);
 *                 other bits 0
 *       17     4  key_len  (≤ KVS_MAX_KEY)
 *       21     4  val_len  (≤ KVS_MAX_VALUE; 0 for a tombstone)
 *       25     8  expire_at: when the key expires, in milliseconds since the Unix epoch;
 *                 0 = never (format 3 on: segment.h's version)
 *       33     k  key bytes
 *     33+k     v  value bytes
 *
 * Two checksums, because one over the whole record cannot tell an authentic header from a
 * damaged one. With hcrc matching, the header is authentic: the record's extent, key and seq are
 * known, whatever happened to its value. So a scan steps from record to record by lengths it can
 * trust and never looks for records inside the bytes of a value (where a client may have stored
 * anything, encoded records included); a record whose value is damaged is still known to be the
 * newest write of its key, and is reported as corrupt rather than letting an older value stand
 * in for it. vcrc is outside hcrc: damage to it is damage to the value, not to the header. A
 * record whose checksums fail is never served: readers verify both on every record they return.
 *
 * expire_at is the record's, not the key's in RAM: a set writes the expiry it is given (0:
 * never; a tombstone always 0), and whatever copies a record — compaction copies its bytes as
 * they are — keeps it. A record whose 0 < expire_at <= now (kvs_clock_ms) is absent for every
 * reader; compaction drops it (leaving a tombstone where older records of its key remain).
 *
 * Groups (kvs.h, kvs_write: one unit across a crash). Every record of a write group of several
 * records but its last carries REC_GROUP_MORE; a group's records are contiguous in one segment
 * (commit.c rotates before a group, never inside one). A run of REC_GROUP_MORE records at the
 * end of the log with no record without the flag after it is a group a crash cut short: the
 * scans of the active segment and of an unsynced sealed tail (segment.c) treat it as a torn
 * tail, so recovery truncates it whole. Format 3 had not been released when the bit was
 * defined: no version change. Compaction copies records one by one (a group's survivors may be
 * few) and clears the bit in its copies: its outputs hold no groups. Format 2 (segment version 2) had no expire_at: a 25-byte header, the
 * key at 25. Such stores are refused at open and converted by kvs_upgrade (upgrade.c).
 */
#ifndef KVS_LOG_RECORD_H
#define KVS_LOG_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REC_HDR 33u
#define REC_TOMBSTONE 0x01u
#define REC_GROUP_MORE 0x02u /* more records of this write group follow (above) */

typedef struct rec_hdr {
    uint32_t hcrc, vcrc;
    uint64_t seq;
    uint8_t flags;
    uint32_t klen;
    uint32_t vlen;
    uint64_t expire_ms; /* expire_at: ms since the Unix epoch; 0 = never */
} rec_hdr;

static inline uint64_t rec_len(uint32_t klen, uint32_t vlen)
{
    return (uint64_t)REC_HDR + klen + vlen;
}

/* Encode a complete header (both checksums included) for key and value into out[REC_HDR];
 * expire_ms: the key's expiry time (0: never). */
void rec_encode(unsigned char out[REC_HDR], uint64_t seq, uint8_t flags, uint64_t expire_ms,
                const void *key, uint32_t klen, const void *val, uint32_t vlen);
/* Give the encoded header hdr (of key, klen as it says) new flags, its header checksum summed
 * anew; the value checksum is left as it is, so a damaged value stays damaged (compaction's
 * copies drop REC_GROUP_MORE). */
void rec_reflag(unsigned char hdr[REC_HDR], const void *key, uint8_t flags);
/* Are these header fields within bounds (lengths, flags, seq)? What rec_decode checks; also
 * for readers of older formats (upgrade.c). */
bool rec_fields_ok(uint64_t seq, uint8_t flags, uint32_t klen, uint32_t vlen);
/* Decode a header; false if its fields are out of bounds (rec_fields_ok: flags beyond
 * REC_TOMBSTONE | REC_GROUP_MORE, a tombstone with a value). Checksums unchecked. */
bool rec_decode(const unsigned char in[REC_HDR], rec_hdr *h);
/* Is the encoded header hdr authentic, with key (klen as the header says) after it? */
bool rec_head_ok(const unsigned char *hdr, const void *key, uint32_t klen);
/* Does val match the value checksum of the encoded header hdr? */
bool rec_value_ok(const unsigned char *hdr, const void *val, uint32_t vlen);
/* Both: does the record hdr, key, val pass its checksums? */
bool rec_verify(const unsigned char *hdr, const void *key, uint32_t klen,
                const void *val, uint32_t vlen);

#endif
