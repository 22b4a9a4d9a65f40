/*
 * syncmode.c — the sync-mode table of syncmode.h.
 */
#include "util/syncmode.h"

#include <stdbool.h>
#include <string.h>

static const struct sync_mode {
    kvs_sync mode;
    const char *name;        /* kvs's */
    const char *appendfsync; /* Redis's */
} modes[] = {
    {KVS_SYNC_ALWAYS, "always", "always"},
    {KVS_SYNC_EVERYSEC, "everysec", "everysec"},
    {KVS_SYNC_NEVER, "never", "no"},
};

#define NMODES (sizeof modes / sizeof modes[0])

/* mode's row; everysec's for a value that is none of them. */
static const struct sync_mode *row(kvs_sync mode)
{
    for (size_t i = 0; i < NMODES; i++)
        if (modes[i].mode == mode)
            return &modes[i];
    return &modes[1]; /* everysec */
}

const char *sync_mode_name(kvs_sync mode)
{
    return row(mode)->name;
}

const char *sync_mode_appendfsync(kvs_sync mode)
{
    return row(mode)->appendfsync;
}

/* The mode whose kvs name (or, redis, appendfsync value) is name: 0 with *out set, or -1. */
static int parse(const char *name, bool redis, kvs_sync *out)
{
    for (size_t i = 0; i < NMODES; i++)
        if (strcmp(redis ? modes[i].appendfsync : modes[i].name, name) == 0) {
            *out = modes[i].mode;
            return 0;
        }
    return -1;
}

int sync_mode_parse(const char *name, kvs_sync *out)
{
    return parse(name, false, out);
}

int sync_mode_parse_appendfsync(const char *name, kvs_sync *out)
{
    return parse(name, true, out);
}
