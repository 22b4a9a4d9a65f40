/*
 * ring.h — growing a ring buffer, written once.
 *
 * A ring is a FIFO kept in a heap array v of cap elements: its len elements are
 * v[(head + i) % cap] for i in [0, len), oldest first; a push writes v[(head + len) % cap], a
 * pop takes v[head] and advances head. RING_RESERVE(v, cap, head, len) makes room for one more
 * push: when the ring is full it grows v as ARR_RESERVE does (doubling, from 8) and moves the
 * elements that had wrapped around to the front to just past the old end, so head and the
 * order stay as they were. 0, or -1 (out of memory, or a size that overflows) with the ring
 * unchanged and still the caller's.
 *
 *     if (RING_RESERVE(c->held, c->hcap, c->hhead, c->hlen) < 0)
 *         return -1;
 *     c->held[(c->hhead + c->hlen++) % c->hcap] = r;
 */
#ifndef KVS_UTIL_RING_H
#define KVS_UTIL_RING_H

#include <stddef.h>

int ring_reserve(void **v, size_t *cap, size_t head, size_t len, size_t elem);

#define RING_RESERVE(v, cap, head, len)                                                        \
    ring_reserve((void **)&(v), &(cap), (head), (len), sizeof *(v))

#endif
