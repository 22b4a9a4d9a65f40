/*
 * registry.c — the table of engines kvs_open can choose from. Adding an engine is one line here.
 */
#include <string.h>

#include "engine/engine.h"

static const kvs_engine_ops *const engines[] = {
    &kvs_logdb_engine,
    &kvs_lmdb_engine,
    NULL,
};

const kvs_engine_ops *const *kvs_engine_list(void)
{
    return engines;
}

const kvs_engine_ops *kvs_engine_find(const char *name)
{
    for (const kvs_engine_ops *const *e = engines; *e; e++)
        if (strcmp((*e)->name, name) == 0)
            return *e;
    return NULL;
}
