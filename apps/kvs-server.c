/*
 * kvs-server — the Redis-protocol server. Reads its options (the command line, and the config
 * file --config names) into a kvs_server_config and runs it; the options, their parsing and
 * the server are all src/server/ (config.c holds the table of options).
 */
#include "server/server.h"

int main(int argc, char **argv)
{
    kvs_server_config cfg;
    int status;

    kvs_server_config_init(&cfg);
    status = kvs_server_config_args(&cfg, argc, argv);
    if (status < 0)
        status = kvs_server_run(&cfg);
    kvs_server_config_free(&cfg);
    return status;
}
