/*
 * fence.c — see fence.h.
 */
#include "util/fence.h"

#include <stdio.h>
#include <string.h>

#include "kvs.h"
#include "util/err.h"
#include "util/log.h"

int fence_raise(kvs_fence *f, const char *dir, const char *why)
{
    char what[sizeof f->why];
    int no = 0;

    snprintf(what, sizeof what, "%s", why); /* why may be kvs_last_error(), rewritten below */
    if (__atomic_compare_exchange_n(&f->raising, &no, 1, false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_RELAXED)) {
        memcpy(f->why, what, sizeof what);
        __atomic_store_n(&f->up, 1, __ATOMIC_RELEASE);
        LOG_ERROR("%s: a sync failed (%s): the store takes no more writes, reads go on; restart "
                  "it to recover from what is on disk (writes acknowledged since the last sync "
                  "that succeeded may be lost unless --sync is always)",
                  dir, what);
    }
    return kvs_seterr(KVS_ESYNC,
                      "a sync failed (%s): the store takes no more writes; restart it to "
                      "recover from what is on disk",
                      what);
}

int fence_check(kvs_fence *f)
{
    if (!fence_is_up(f))
        return 0;
    return kvs_seterr(KVS_ESYNC,
                      "a sync failed earlier (%s): the store takes no more writes; restart it "
                      "to recover from what is on disk",
                      f->why);
}
