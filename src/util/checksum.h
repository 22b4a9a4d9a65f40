/*
 * checksum.h — the checksums of every on-disk format.
 *
 * XXH3-64 (libxxhash) over the protected bytes; formats store the low 32 bits where a record is
 * small (a flipped bit is caught with probability 1 - 2^-32) and all 64 where a whole file is
 * covered. The streaming form lets a record be checked without copying key and value together.
 */
#ifndef KVS_UTIL_CHECKSUM_H
#define KVS_UTIL_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

static inline uint64_t cksum64(const void *p, size_t n)
{
    return XXH3_64bits(p, n);
}

static inline uint32_t cksum32(const void *p, size_t n)
{
    return (uint32_t)XXH3_64bits(p, n);
}

#endif
