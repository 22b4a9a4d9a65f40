/*
 * record.c — encoding, decoding and verification of records (format in record.h).
 *
 * The checksum is computed in streaming form over header fields, key and value where they lie,
 * so neither the write path nor the read path copies a value to checksum it.
 */
#include "engine/log/record.h"

#include "kvs.h"
#include "util/checksum.h"
#include "util/io.h"

static uint32_t rec_sum(const unsigned char hdr[REC_HDR], const void *key, uint32_t klen,
                        const void *val, uint32_t vlen)
{
    XXH3_state_t st;

    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, hdr + 4, REC_HDR - 4);
    XXH3_64bits_update(&st, key, klen);
    XXH3_64bits_update(&st, val, vlen);
    return (uint32_t)XXH3_64bits_digest(&st);
}

void rec_encode(unsigned char out[REC_HDR], uint64_t seq, uint8_t flags, const void *key,
                uint32_t klen, const void *val, uint32_t vlen)
{
    le_put64(out + 4, seq);
    out[12] = flags;
    le_put32(out + 13, klen);
    le_put32(out + 17, vlen);
    le_put32(out, rec_sum(out, key, klen, val, vlen));
}

bool rec_decode(const unsigned char in[REC_HDR], rec_hdr *h)
{
    h->checksum = le_get32(in);
    h->seq = le_get64(in + 4);
    h->flags = in[12];
    h->klen = le_get32(in + 13);
    h->vlen = le_get32(in + 17);
    if (h->flags & ~REC_TOMBSTONE)
        return false;
    if (h->klen > KVS_MAX_KEY || h->vlen > KVS_MAX_VALUE || h->seq == 0)
        return false;
    if ((h->flags & REC_TOMBSTONE) && h->vlen != 0)
        return false;
    return true;
}

bool rec_verify(const unsigned char *hdr, const void *key, uint32_t klen,
                const void *val, uint32_t vlen)
{
    const unsigned char *k = key, *v = val;

    /* A record lying whole in memory (a mapped segment) is summed in one pass: the same value
     * as the streaming sum, without its set-up cost on every read. */
    if (k == hdr + REC_HDR && v == k + klen)
        return le_get32(hdr) == (uint32_t)XXH3_64bits(hdr + 4, REC_HDR - 4 + (size_t)klen + vlen);
    return le_get32(hdr) == rec_sum(hdr, key, klen, val, vlen);
}
