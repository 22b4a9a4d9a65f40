/*
 * clock.h — the one monotonic clock every part of kvs times things with.
 */
#ifndef KVS_UTIL_CLOCK_H
#define KVS_UTIL_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

#endif
