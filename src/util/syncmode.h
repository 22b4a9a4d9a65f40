/*
 * syncmode.h — the names of kvs's sync modes (kvs_sync, kvs.h), in one table.
 *
 * kvs calls them "always", "everysec" and "never": the --sync flags take these, and the logs and
 * INFO print them. Redis's appendfsync parameter, which kvs-server's CONFIG GET answers for
 * clients that ask, spells the last one "no"; that spelling is Redis's and stays at that one
 * place.
 */
#ifndef KVS_UTIL_SYNCMODE_H
#define KVS_UTIL_SYNCMODE_H

#include "kvs.h"

/* For messages that list the choices. */
#define SYNC_MODE_CHOICES "always, everysec or never"

/* kvs's name of mode: "always", "everysec" or "never" (a value outside kvs_sync reads as
 * "everysec", the default). A static string. */
const char *sync_mode_name(kvs_sync mode);

/* Redis's appendfsync value for mode: "always", "everysec" or "no". A static string. */
const char *sync_mode_appendfsync(kvs_sync mode);

/* The mode kvs calls name (exactly, case included): 0 with *out set, or -1. */
int sync_mode_parse(const char *name, kvs_sync *out);

/* The mode Redis's appendfsync calls name ("always", "everysec", "no"): 0 with *out set, or -1. */
int sync_mode_parse_appendfsync(const char *name, kvs_sync *out);

#endif
