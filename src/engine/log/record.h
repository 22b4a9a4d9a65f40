/*
 * record.h — the record, the unit of every segment file.
 *
 * A set writes one record holding key and value; a remove writes a tombstone record holding the
 * key alone. Records are immutable once written; a newer record for the same key (higher seq)
 * supersedes an older one wherever either lies. All integers are little-endian.
 *
 *   offset  size  field
 *   ------  ----  ---------------------------------------------------------------
 *        0     4  checksum: low 32 bits of XXH3-64 over bytes 4 .. end of value
 *        4     8  seq: the store-wide sequence number of this write (> 0)
 *       12     1  flags: bit 0 = tombstone; other bits 0
 *       13     4  key_len  (≤ KVS_MAX_KEY)
 *       17     4  val_len  (≤ KVS_MAX_VALUE; 0 for a tombstone)
 *       21     k  key bytes
 *     21+k     v  value bytes
 *
 * The checksum covers the header fields too, so a flipped length is caught, not followed. A
 * record whose checksum fails is never served: readers verify every record they return.
 */
#ifndef KVS_LOG_RECORD_H
#define KVS_LOG_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REC_HDR 21u
#define REC_TOMBSTONE 0x01u

typedef struct rec_hdr {
    uint32_t checksum;
    uint64_t seq;
    uint8_t flags;
    uint32_t klen;
    uint32_t vlen;
} rec_hdr;

static inline uint64_t rec_len(uint32_t klen, uint32_t vlen)
{
    return (uint64_t)REC_HDR + klen + vlen;
}

/* Encode a complete header (checksum included) for key and value into out[REC_HDR]. */
void rec_encode(unsigned char out[REC_HDR], uint64_t seq, uint8_t flags, const void *key,
                uint32_t klen, const void *val, uint32_t vlen);
/* Decode a header; false if its fields are out of bounds (lengths, flags). Checksum unchecked. */
bool rec_decode(const unsigned char in[REC_HDR], rec_hdr *h);
/* Does the checksum in the encoded header hdr match key and val? */
bool rec_verify(const unsigned char *hdr, const void *key, uint32_t klen,
                const void *val, uint32_t vlen);

#endif
