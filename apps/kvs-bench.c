/*
 * kvs-bench — a db_bench-compatible benchmark of the embedded engines:
 *
 *   kvs-bench [--engine kvs|kvs-lmdb|lmdb|rocksdb] [--benchmarks=fillseq,fillrandom,overwrite,
 *             readrandom,readseq,readwhilewriting,deleterandom] [--num N] [--value_size B]
 *             [--key_size K] [--threads T] [--db DIR] [--sync 0|1] [--histogram 0|1] [--seed S]
 *             [--use_existing_db 0|1] [--pin_slice 0|1]
 *
 * Flags are written --name=value, as db_bench's, or --name value; a boolean given alone
 * (--histogram) is 1. What the benchmarks do is src/bench/bench.h; what each engine name runs
 * (lmdb is LMDB on its own API, kvs-lmdb libkvs's LMDB engine) is src/bench/db.h. Output: a
 * header, then one line per benchmark on stdout; errors on stderr. Exit 0; 1 if an engine or the
 * file system failed; 2 on a usage error, and for --engine rocksdb in a build without
 * librocksdb-dev.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "bench/db.h"
#include "kvs.h"
#include "util/num.h"

static const char usage[] =
    "usage: kvs-bench [--engine kvs|kvs-lmdb|lmdb|rocksdb] [--benchmarks=LIST] [--num N]\n"
    "                 [--value_size B] [--key_size K] [--threads T] [--db DIR] [--sync 0|1]\n"
    "                 [--histogram 0|1] [--seed S] [--use_existing_db 0|1] [--pin_slice 0|1]\n"
    "  engines: kvs and kvs-lmdb are libkvs's two engines; lmdb is LMDB on its own API\n"
    "           (a read transaction per thread, renewed per read); rocksdb if built with it\n"
    "  LIST: comma-separated of fillseq fillrandom overwrite readrandom readseq\n"
    "        readwhilewriting deleterandom (default: all, in that order)\n"
    "  defaults: --engine kvs --num 1000000 --value_size 100 --key_size 16 --threads 1\n"
    "            --sync 0 --seed 0 (from the clock) --db a new directory under /tmp\n"
    "            --pin_slice 1 (reads look at values in place; 0: each read copies)\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "kvs-bench: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage);
    return 2;
}

static int parse_u64(const char *s, uint64_t *out)
{
    return num_parse_u64(s, strlen(s), NUM_U64_DIGITS, out) ? 0 : -1;
}

static int parse_bool(const char *s, int *out)
{
    if (strcmp(s, "1") == 0 || strcmp(s, "true") == 0)
        return *out = 1, 0;
    if (strcmp(s, "0") == 0 || strcmp(s, "false") == 0)
        return *out = 0, 0;
    return -1;
}

int main(int argc, char **argv)
{
    static const char *bools[] = {"sync", "histogram", "use_existing_db", "pin_slice"};
    kb_config cfg;

    kb_config_init(&cfg);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val;
        char name[64];

        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)
            return fputs(usage, stdout), 0;
        if (strcmp(arg, "-V") == 0 || strcmp(arg, "--version") == 0)
            return printf("kvs-bench %s\n", KVS_VERSION_STRING), 0;
        if (strncmp(arg, "--", 2) != 0)
            return usage_error("unexpected argument '%s'", arg);
        size_t len = strcspn(arg + 2, "=");
        if (len == 0 || len >= sizeof name)
            return usage_error("bad flag '%s'", arg);
        memcpy(name, arg + 2, len);
        name[len] = '\0';
        int is_bool = 0;
        for (size_t b = 0; b < sizeof bools / sizeof bools[0]; b++)
            is_bool |= strcmp(name, bools[b]) == 0;
        if (arg[2 + len] == '=') {
            val = arg + 3 + len;
        } else if (is_bool && (i + 1 == argc || parse_bool(argv[i + 1], &(int){0}) < 0)) {
            val = "1"; /* --histogram alone */
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            return usage_error("--%s needs a value", name);
        }

        uint64_t u = 0;
        int bad = 0;
        if (strcmp(name, "engine") == 0) {
            cfg.engine = val;
        } else if (strcmp(name, "benchmarks") == 0) {
            cfg.benchmarks = val;
        } else if (strcmp(name, "db") == 0) {
            if (!*val)
                return usage_error("--db needs a directory%s", "");
            cfg.db = val;
        } else if (strcmp(name, "num") == 0) {
            bad = parse_u64(val, &cfg.num);
        } else if (strcmp(name, "value_size") == 0) {
            bad = parse_u64(val, &u) || u > SIZE_MAX;
            cfg.value_size = (size_t)u;
        } else if (strcmp(name, "key_size") == 0) {
            bad = parse_u64(val, &u) || u > SIZE_MAX;
            cfg.key_size = (size_t)u;
        } else if (strcmp(name, "threads") == 0) {
            bad = parse_u64(val, &u) || u > KB_MAX_THREADS;
            cfg.threads = (unsigned)u;
        } else if (strcmp(name, "seed") == 0) {
            bad = parse_u64(val, &cfg.seed);
        } else if (strcmp(name, "sync") == 0) {
            bad = parse_bool(val, &cfg.sync);
        } else if (strcmp(name, "histogram") == 0) {
            bad = parse_bool(val, &cfg.histogram);
        } else if (strcmp(name, "use_existing_db") == 0) {
            bad = parse_bool(val, &cfg.use_existing_db);
        } else if (strcmp(name, "pin_slice") == 0) {
            bad = parse_bool(val, &cfg.pin_slice);
        } else {
            return usage_error("unknown flag '%s'", arg);
        }
        if (bad)
            return usage_error("bad value for '%s'", arg);
    }

    char why[256];
    if (kb_engine_available(cfg.engine) < 0) {
        fprintf(stderr, "kvs-bench: not built with RocksDB (install librocksdb-dev and rebuild)\n");
        return 2;
    }
    if (kb_config_check(&cfg, why, sizeof why) < 0)
        return usage_error("%s", why);
    return kb_run(&cfg, stdout);
}
