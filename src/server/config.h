/*
 * config.h — kvs-server's options, described once (config.c's table) and read from everywhere:
 * the command line (--name VALUE), the config file (`name value` lines in Redis's format),
 * --help, --dump-config (the sample etc/kvs-server.conf), and the CONFIG command (GET, SET,
 * REWRITE). kvs_server_config_init/free/args (server.h) are the part apps/ sees.
 *
 * A parameter is an option (a field of kvs_server_config) or one of the names Redis's tools ask
 * CONFIG GET for: an alias of an option in Redis's spelling (loglevel, io-threads, appendfsync)
 * or a constant of Redis's that kvs answers the way it behaves (save "", appendonly yes,
 * databases 1). Options marked live are the ones CONFIG SET may change while the server runs.
 *
 * The functions below that take a server are called on loop threads with s->cfg_mu held by
 * the caller, which serialises every CONFIG SET, GET and REWRITE.
 */
#ifndef KVS_SERVER_CONFIG_H
#define KVS_SERVER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "server/server.h"

#define CONFIG_VALUE_TEXT 48 /* room for any value that is not a string option */

/* dst: a copy of src that owns every string it holds (the server's own, server.cfg). 0 or
 * KVS_ENOMEM (dst then holds nothing to free). */
int config_copy(kvs_server_config *dst, const kvs_server_config *src);
/* c->config_file: a copy of path, owned by c. 0 or KVS_ENOMEM. */
int config_set_file(kvs_server_config *c, const char *path);

/* How many parameters there are; parameter i's name (a static string). */
size_t config_count(void);
const char *config_name(size_t i);

/* Parameter i's value as CONFIG GET gives it (numbers in plain digits): a pointer to the config's
 * own string (valid while cfg_mu is held) or to tmp (CONFIG_VALUE_TEXT bytes); *len its length. */
const char *config_value(server *s, size_t i, char *tmp, size_t *len);

/* CONFIG SET name value [name value ...] (argv/lens: npairs * 2 words), all or nothing, as
 * Redis 7: 0 with every value in force, or -1 with err (errlen bytes) set to the error reply
 * (without the '-') and nothing changed. */
int config_set(server *s, int npairs, const char **argv, const size_t *lens, char *err,
               size_t errlen);

/* CONFIG REWRITE: the file the server was started with, rewritten with every value in force —
 * lines of options replaced where they are, comments and lines it does not know kept, options
 * not there and not at their default appended — through a temporary file, fsync and rename.
 * 0, or -1 with err set as for config_set. */
int config_rewrite(server *s, char *err, size_t errlen);

/* The sample config file: every option, its help and its default (kvs-server --dump-config). */
void config_dump(FILE *out);

#endif
