/*
 * kvs-server — the Redis-protocol server. Parses its flags into a kvs_server_config and runs it;
 * everything else is src/server/.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/engine.h"
#include "server/server.h"
#include "util/num.h"
#include "util/syncmode.h"

static const char usage[] =
    "usage: kvs-server [options]\n"
    "  --addr IP:PORT         listen address, IPv4 or [IPv6] (default " KVS_SERVER_DEFAULT_ADDR ")\n"
    "  --engine kvs|lmdb      storage engine (default: the directory's, else kvs)\n"
    "  --dir DIR              data directory (default: the current directory)\n"
    "  --threads N            loop threads (default: the number of cores)\n"
    "  --sync always|everysec|never   when writes reach the disk (default everysec)\n"
    "  --requirepass P        password clients must AUTH with\n"
    "  --maxclients N         most simultaneous clients (default 10000; lowered at start\n"
    "                         if the open-file limit cannot be raised to fit them)\n"
    "  --log-level debug|info|warning|error   (default info)\n"
    "  --max-bulk BYTES       largest bulk argument (default 512mb)\n"
    "  --max-query BYTES      query buffer per client (default 513mb)\n"
    "  --max-output BYTES     unread output per client before it is cut off (default 64mb)\n"
    "  --max-watch N          keys one connection may WATCH at once (default 100000)\n"
    "  --max-multi-commands N commands one MULTI may queue (default 1000000)\n"
    "  --max-multi-bytes BYTES     and the bytes of their arguments (default 1gb)\n"
    "  --pool naive|shared|uv thread pool for engine work that can block (default shared)\n"
    "  --pool-threads N       its threads (default 16)\n"
    "  --offload auto|always|never   commit writes on the pool: auto = with --sync always\n"
    "                         or the lmdb engine (default auto)\n"
    "  --segment-size BYTES   kvs engine: rotate the active segment at this size\n"
    "                         (default 8mb, range 4kb .. 1gb)\n"
    "  --compact-min-bytes BYTES   kvs engine: compact once this many dead bytes are\n"
    "                         reclaimable (default 1mb)\n"
    "  --compact-rate BYTES   kvs engine: background compaction reads at most this much a\n"
    "                         second (default 32mb; 0: no limit)\n"
    "  --compact-nice N       kvs engine: the compaction thread's nice value above the\n"
    "                         server's (default 10, range 0 .. 19)\n"
    "  --max-index-memory BYTES   kvs engine: RAM the key index may take; past it writes\n"
    "                         of new keys fail with -OOM (default: no limit)\n"
    "  --checkpoint-dir DIR   where SAVE and BGSAVE put checkpoints, one directory each,\n"
    "                         named for its unix time; on the data directory's file\n"
    "                         system (default: DIR/checkpoints)\n"
    "  -V, --version          print the version\n"
    "  -h, --help             this text\n";

static int bad(const char *flag, const char *val, const char *why)
{
    fprintf(stderr, "kvs-server: %s '%s': %s\n%s", flag, val ? val : "", why, usage);
    return 2;
}

/* "123", "64kb", "512mb", "1gb" (case-insensitive) → bytes; -1 if malformed. */
static long long parse_bytes(const char *s)
{
    size_t digits = strspn(s, "0123456789");
    const char *end = s + digits;
    long long mul = 1;
    uint64_t v;

    if (!num_parse_u64(s, digits, NUM_U64_DIGITS, &v))
        return -1;
    if (*end) {
        if (strcasecmp(end, "k") == 0 || strcasecmp(end, "kb") == 0)
            mul = 1ll << 10;
        else if (strcasecmp(end, "m") == 0 || strcasecmp(end, "mb") == 0)
            mul = 1ll << 20;
        else if (strcasecmp(end, "g") == 0 || strcasecmp(end, "gb") == 0)
            mul = 1ll << 30;
        else
            return -1;
    }
    if (v > (uint64_t)((1ll << 40) / mul))
        return -1;
    return (long long)v * mul;
}

/* A count in 1..max; -1 if it is not one. */
static long parse_count(const char *s, long max)
{
    uint64_t v;

    return num_parse_u64(s, strlen(s), NUM_U64_DIGITS, &v) && v >= 1 && v <= (uint64_t)max
               ? (long)v
               : -1;
}

int main(int argc, char **argv)
{
    kvs_server_config cfg;
    long long b;
    long n;

    kvs_server_config_init(&cfg);
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (strcmp(f, "-V") == 0 || strcmp(f, "--version") == 0) {
            printf("kvs-server %s\n", KVS_VERSION_STRING);
            return 0;
        }
        if (strcmp(f, "-h") == 0 || strcmp(f, "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (strncmp(f, "--", 2) != 0)
            return bad("argument", f, "unexpected");
        if (i + 1 == argc)
            return bad(f, NULL, "needs a value");
        const char *v = argv[++i];
        if (strcmp(f, "--addr") == 0) {
            cfg.addr = v;
        } else if (strcmp(f, "--engine") == 0) {
            if (!kvs_engine_find(v))
                return bad(f, v, "unknown engine (kvs or lmdb)");
            cfg.engine = v;
        } else if (strcmp(f, "--dir") == 0) {
            cfg.dir = v;
        } else if (strcmp(f, "--threads") == 0) {
            if ((n = parse_count(v, 1024)) < 0)
                return bad(f, v, "expected 1..1024");
            cfg.threads = (int)n;
        } else if (strcmp(f, "--sync") == 0) {
            if (sync_mode_parse(v, &cfg.sync) < 0)
                return bad(f, v, "expected " SYNC_MODE_CHOICES);
        } else if (strcmp(f, "--requirepass") == 0) {
            if (!*v)
                return bad(f, v, "must not be empty");
            cfg.requirepass = v;
        } else if (strcmp(f, "--maxclients") == 0) {
            if ((n = parse_count(v, 1000000)) < 0)
                return bad(f, v, "expected 1..1000000");
            cfg.maxclients = (uint32_t)n;
        } else if (strcmp(f, "--max-watch") == 0) {
            if ((n = parse_count(v, 100000000)) < 0)
                return bad(f, v, "expected 1..100000000");
            cfg.max_watch = (uint32_t)n;
        } else if (strcmp(f, "--max-multi-commands") == 0) {
            if ((n = parse_count(v, 100000000)) < 0)
                return bad(f, v, "expected 1..100000000");
            cfg.max_multi_commands = (uint32_t)n;
        } else if (strcmp(f, "--max-multi-bytes") == 0) {
            if ((b = parse_bytes(v)) < 1)
                return bad(f, v, "expected at least 1 byte");
            cfg.max_multi_bytes = (uint64_t)b;
        } else if (strcmp(f, "--log-level") == 0) {
            if (strcmp(v, "debug") == 0)
                cfg.log_level = KVS_LOG_DEBUG;
            else if (strcmp(v, "info") == 0)
                cfg.log_level = KVS_LOG_INFO;
            else if (strcmp(v, "warning") == 0 || strcmp(v, "warn") == 0)
                cfg.log_level = KVS_LOG_WARN;
            else if (strcmp(v, "error") == 0)
                cfg.log_level = KVS_LOG_ERROR;
            else
                return bad(f, v, "expected debug, info, warning or error");
        } else if (strcmp(f, "--max-bulk") == 0) {
            if ((b = parse_bytes(v)) < 1 || b > (512ll << 20))
                return bad(f, v, "expected 1 .. 512mb");
            cfg.limits.max_bulk = (uint64_t)b;
        } else if (strcmp(f, "--max-query") == 0) {
            if ((b = parse_bytes(v)) < (1ll << 20))
                return bad(f, v, "expected at least 1mb");
            cfg.max_query = (uint64_t)b;
        } else if (strcmp(f, "--max-output") == 0) {
            if ((b = parse_bytes(v)) < (1ll << 16))
                return bad(f, v, "expected at least 64kb");
            cfg.max_output = (uint64_t)b;
        } else if (strcmp(f, "--pool") == 0) {
            if (strcmp(v, "naive") != 0 && strcmp(v, "shared") != 0 && strcmp(v, "uv") != 0)
                return bad(f, v, "expected naive, shared or uv");
            cfg.pool = v;
        } else if (strcmp(f, "--pool-threads") == 0) {
            if ((n = parse_count(v, 1024)) < 0)
                return bad(f, v, "expected 1..1024");
            cfg.pool_threads = (unsigned)n;
        } else if (strcmp(f, "--offload") == 0) {
            if (strcmp(v, "auto") == 0)
                cfg.offload = -1;
            else if (strcmp(v, "always") == 0)
                cfg.offload = 1;
            else if (strcmp(v, "never") == 0)
                cfg.offload = 0;
            else
                return bad(f, v, "expected auto, always or never");
        } else if (strcmp(f, "--segment-size") == 0) {
            if ((b = parse_bytes(v)) < 4096 || b > (1ll << 30))
                return bad(f, v, "expected 4kb .. 1gb");
            cfg.segment_size = (uint64_t)b;
        } else if (strcmp(f, "--max-index-memory") == 0) {
            if ((b = parse_bytes(v)) < (1ll << 20))
                return bad(f, v, "expected at least 1mb");
            cfg.max_index_memory = (uint64_t)b;
        } else if (strcmp(f, "--compact-min-bytes") == 0) {
            if ((b = parse_bytes(v)) < 1)
                return bad(f, v, "expected at least 1 byte");
            cfg.compact_min_bytes = (uint64_t)b;
        } else if (strcmp(f, "--compact-rate") == 0) {
            if ((b = parse_bytes(v)) < 0)
                return bad(f, v, "expected bytes a second (0: no limit)");
            cfg.compact_rate = b;
        } else if (strcmp(f, "--compact-nice") == 0) {
            if (strcmp(v, "0") == 0)
                n = 0;
            else if ((n = parse_count(v, 19)) < 0)
                return bad(f, v, "expected 0 .. 19");
            cfg.compact_nice = (int)n;
        } else if (strcmp(f, "--checkpoint-dir") == 0) {
            if (!*v)
                return bad(f, v, "must not be empty");
            cfg.checkpoint_dir = v;
        } else {
            return bad("option", f, "unknown");
        }
    }
    return kvs_server_run(&cfg);
}
