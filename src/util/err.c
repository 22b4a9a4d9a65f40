/*
 * err.c — kvs_strerror and the thread-local detail behind kvs_last_error (see err.h).
 */
#include "util/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "kvs.h"

static _Thread_local char last_error[512];

int kvs_seterr(int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return code;
}

void kvs_clearerr(void)
{
    last_error[0] = '\0';
}

const char *kvs_last_error(void)
{
    return last_error;
}

int kvs_errno(int e)
{
    switch (e) {
    case ENOMEM: return KVS_ENOMEM;
    case EINVAL: return KVS_EINVAL;
    case EWOULDBLOCK: return KVS_EBUSY;
    case ENOSPC: return KVS_ENOSPC;
    case EDQUOT: return KVS_ENOSPC;
    default: return KVS_EIO;
    }
}

const char *kvs_strerror(int err)
{
    switch (err) {
    case KVS_OK: return "success";
    case KVS_ENOTFOUND: return "key not found";
    case KVS_EINVAL: return "invalid argument";
    case KVS_ENOMEM: return "out of memory";
    case KVS_EIO: return "I/O error";
    case KVS_ECORRUPT: return "data corrupted (checksum mismatch or malformed file)";
    case KVS_EBUSY: return "directory in use";
    case KVS_EKEYTOOBIG: return "key too large (limit 64 KiB)";
    case KVS_EVALTOOBIG: return "value too large (limit 512 MiB)";
    case KVS_EENGINE: return "directory belongs to another engine";
    case KVS_ENOENGINE: return "unknown engine";
    case KVS_ESTATE: return "operation not valid in this state";
    case KVS_EVERSION: return "unsupported on-disk format version";
    case KVS_ECLOSED: return "store is closing";
    case KVS_ENOSPC: return "no space left on device";
    case KVS_ESYNC: return "a sync to disk failed: the store takes no more writes until it is reopened";
    case KVS_EFULL: return "the key index is at its memory budget (max-index-memory): no new keys";
    case KVS_EFORMAT: return "store written in an earlier on-disk format";
    case KVS_ECONFLICT: return "an update refused its write (the rest of its group is not applied)";
    case KVS_ETIMEDOUT: return "not durable within the time allowed";
    default: return "unknown error";
    }
}
