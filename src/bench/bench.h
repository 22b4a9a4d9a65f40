/*
 * bench.h — kvs-bench's workloads: db_bench's benchmarks on the engines of db.h.
 *
 * apps/kvs-bench.c parses the flags into a kb_config and calls kb_run; everything else is here
 * so that it can be driven in-process.
 *
 * Semantics follow RocksDB's db_bench, except where said:
 *   - keys are key_size bytes of zero-padded decimal ("%016llu" for 16), so that the byte order
 *     is the numeric order; values are value_size bytes cut from a fixed 1 MiB buffer of
 *     half-compressible text (db_bench's RandomGenerator with compression ratio 0.5), each write
 *     taking the next slice;
 *   - with --threads T every benchmark's --num operations are split over T threads (num/T each,
 *     the first num%T threads one more), so --num is the total in every case; the sequential
 *     ones give each thread its own contiguous range of keys;
 *   - fillseq writes keys 0..num-1 in order, fillrandom and overwrite num keys drawn uniformly
 *     from [0, num) (about 63 % of the key space ends up present), readrandom reads num random
 *     keys and reports "(found of num found)", deleterandom deletes num random keys;
 *   - readseq reads every key in order: with lmdb and RocksDB through an iterator (a cursor, an
 *     iterator), with libkvs's engines (kvs, kvs-lmdb: point lookups only) by a get of each key
 *     0..num-1 in order, which its line says;
 *   - readwhilewriting runs T readers doing readrandom and one more thread overwriting random
 *     keys as fast as it can until the readers are done; the line reports the readers;
 *   - fillseq and fillrandom start from an empty store (the directory is emptied and the store
 *     reopened); with --use_existing_db 1 they are skipped, as db_bench does;
 *   - reads are db_bench's --pin_slice 1 by default (the value is looked at where the engine
 *     keeps it, not copied: db.h), --pin_slice 0 copies each value;
 *   - every line also gives the 50th, 99th and 99.9th percentile of the operations' latencies,
 *     and --histogram 1 adds the whole histogram after it;
 *   - each benchmark draws keys from its own random sequence (seed, benchmark, thread), so
 *     readrandom after fillrandom looks up keys other than those written.
 * Output: micros/op is the threads' busy time summed over the operations (db_bench's), ops/sec and
 * MB/s are the operations and the bytes of keys and values moved (written, found, or keys
 * deleted) over the wall time from the first thread's start to the last one's end.
 */
#ifndef KVS_BENCH_BENCH_H
#define KVS_BENCH_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define KB_MAX_THREADS 1024
#define KB_MAX_KEY 4096
#define KB_MAX_VALUE (64u << 20)

typedef struct kb_config {
    const char *engine;     /* "kvs" (default), "kvs-lmdb", "lmdb" or "rocksdb" (db.h) */
    const char *benchmarks; /* comma-separated names */
    uint64_t num;           /* 1000000 */
    size_t value_size;      /* 100 */
    size_t key_size;        /* 16 */
    unsigned threads;       /* 1 */
    const char *db;         /* NULL: a fresh directory under /tmp, removed at the end */
    int sync;               /* 0 */
    int histogram;          /* 0 */
    int use_existing_db;    /* 0 */
    int pin_slice;          /* 1: reads look at values in place (kvs_read, rocksdb_get_pinned);
                               0: each read copies the value (kvs_get, rocksdb_get) */
    uint64_t seed;          /* 0: derived from the clock (and printed) */
} kb_config;

void kb_config_init(kb_config *cfg);

/* Check a configuration before anything runs; on a problem, a message in why and -1. */
int kb_config_check(const kb_config *cfg, char *why, size_t cap);

/* Run the benchmarks, the header and one line each going to out; failures are reported on
 * stderr. Returns the process's exit status: 0, or 1 if an engine or the file system failed. */
int kb_run(const kb_config *cfg, FILE *out);

#endif /* KVS_BENCH_BENCH_H */
