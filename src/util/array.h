/*
 * array.h — growing an array, written once.
 *
 * ARR_RESERVE(v, cap, need) makes room for need elements in the heap array v whose capacity
 * (in elements, a size_t) is cap: it doubles cap (from 8) until need fits and reallocates v.
 * On failure (out of memory, or a size that overflows) it returns -1 and leaves v and cap as
 * they were, so the caller's array is still whole and still its to free; on success 0. The
 * elements past the old capacity are uninitialised.
 *
 *     if (ARR_RESERVE(p->argv, p->argv_cap, p->argc + 1) < 0)
 *         return -1;
 *     p->argv[p->argc++] = arg;
 */
#ifndef KVS_UTIL_ARRAY_H
#define KVS_UTIL_ARRAY_H

#include <stddef.h>

int arr_reserve(void **v, size_t *cap, size_t need, size_t elem);

/* The check that usually answers "there is room" stays inline: hot paths (a RESP argument,
 * a batched command) reserve once per item. */
#define ARR_RESERVE(v, cap, need)                                                              \
    ((size_t)(need) <= (cap) ? 0 : arr_reserve((void **)&(v), &(cap), (need), sizeof *(v)))

#endif
