/*
 * clock.h — the one monotonic clock every part of kvs times things with, and the wall clock
 * expiry times are read from (kvs_clock_ms, engine.h, lets a test replace it).
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

static inline uint64_t clock_nsec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ms since the Unix epoch: the default clock of expiry times (kvs_options.clock_ms). */
static inline uint64_t clock_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif
