/*
 * record.c — encoding, decoding and verification of records (format in record.h).
 *
 * The header checksum covers the header fields and the key; where the key lies right after the
 * header (a record in a mapping) it is one pass over contiguous bytes, and where it does not (the
 * write path, whose header is built apart from the caller's key) one pass over a copy of both on
 * the stack, or for a long key a streaming sum over both. The
 * value checksum is one pass over the value where it lies, so neither the write path nor the read
 * path copies a value to checksum it.
 */
#include "engine/log/record.h"

#include <string.h>

#include "kvs.h"
#include "util/checksum.h"
#include "util/io.h"

#define REC_FIELDS 8u /* where the fields that hcrc covers begin */

#define JOIN_MAX 256u /* keys up to this long are summed with their header in one pass */

static uint32_t head_sum(const unsigned char *hdr, const void *key, uint32_t klen)
{
    XXH3_state_t st;

    if ((const unsigned char *)key == hdr + REC_HDR)
        return cksum32(hdr + REC_FIELDS, REC_HDR - REC_FIELDS + (size_t)klen);
    if (klen <= JOIN_MAX) { /* a copy costs less than a streaming sum's set-up */
        unsigned char joined[REC_HDR - REC_FIELDS + JOIN_MAX];
        memcpy(joined, hdr + REC_FIELDS, REC_HDR - REC_FIELDS);
        if (klen)
            memcpy(joined + REC_HDR - REC_FIELDS, key, klen);
        return cksum32(joined, REC_HDR - REC_FIELDS + (size_t)klen);
    }
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, hdr + REC_FIELDS, REC_HDR - REC_FIELDS);
    XXH3_64bits_update(&st, key, klen);
    return (uint32_t)XXH3_64bits_digest(&st);
}

/* A remove's value may be NULL: an empty one is summed from "". */
static uint32_t value_sum(const void *val, uint32_t vlen)
{
    return cksum32(vlen ? val : "", vlen);
}

void rec_encode(unsigned char out[REC_HDR], uint64_t seq, uint8_t flags, uint64_t expire_ms,
                const void *key, uint32_t klen, const void *val, uint32_t vlen)
{
    le_put64(out + 8, seq);
    out[16] = flags;
    le_put32(out + 17, klen);
    le_put32(out + 21, vlen);
    le_put64(out + 25, expire_ms);
    le_put32(out + 4, value_sum(val, vlen));
    le_put32(out, head_sum(out, key, klen));
}

void rec_reflag(unsigned char hdr[REC_HDR], const void *key, uint8_t flags)
{
    hdr[16] = flags;
    le_put32(hdr, head_sum(hdr, key, le_get32(hdr + 17)));
}

bool rec_fields_ok(uint64_t seq, uint8_t flags, uint32_t klen, uint32_t vlen)
{
    if (flags & ~(REC_TOMBSTONE | REC_GROUP_MORE))
        return false;
    if (klen > KVS_MAX_KEY || vlen > KVS_MAX_VALUE || seq == 0)
        return false;
    return !(flags & REC_TOMBSTONE) || vlen == 0;
}

bool rec_decode(const unsigned char in[REC_HDR], rec_hdr *h)
{
    h->hcrc = le_get32(in);
    h->vcrc = le_get32(in + 4);
    h->seq = le_get64(in + 8);
    h->flags = in[16];
    h->klen = le_get32(in + 17);
    h->vlen = le_get32(in + 21);
    h->expire_ms = le_get64(in + 25);
    return rec_fields_ok(h->seq, h->flags, h->klen, h->vlen);
}

bool rec_head_ok(const unsigned char *hdr, const void *key, uint32_t klen)
{
    return le_get32(hdr) == head_sum(hdr, key, klen);
}

bool rec_value_ok(const unsigned char *hdr, const void *val, uint32_t vlen)
{
    return le_get32(hdr + 4) == value_sum(val, vlen);
}

bool rec_verify(const unsigned char *hdr, const void *key, uint32_t klen,
                const void *val, uint32_t vlen)
{
    return rec_head_ok(hdr, key, klen) && rec_value_ok(hdr, val, vlen);
}
