/*
 * fence.h — the fence an engine raises when a sync fails ("fsyncgate", kvs.h "Durability").
 *
 * After fsync/fdatasync fails, the kernel may have dropped the pages it could not write and
 * marked them clean, so a sync retried later could succeed without them. An engine therefore
 * raises its fence at the first failed sync and from then on refuses writes with KVS_ESYNC
 * (reads go on); reopening the store recovers from what is on disk. Both engines use this one.
 *
 * Threads: fence_raise may race with itself and with fence_check; why is written once, before
 * the fence is up (release), and read only after it is seen up (acquire).
 */
#ifndef KVS_UTIL_FENCE_H
#define KVS_UTIL_FENCE_H

#include <stdbool.h>

typedef struct kvs_fence {
    int up, raising;
    char why[384];
} kvs_fence;

/* Raise the fence (once: the first why is kept and logged as an error naming dir); returns
 * KVS_ESYNC with why as detail. why may be kvs_last_error(). */
int fence_raise(kvs_fence *f, const char *dir, const char *why);
/* KVS_ESYNC (detail set) if the fence is up, else 0. */
int fence_check(kvs_fence *f);

static inline bool fence_is_up(kvs_fence *f)
{
    return __atomic_load_n(&f->up, __ATOMIC_ACQUIRE) != 0;
}

#endif
