/*
 * db.h — the stores kvs-bench measures, behind one small interface.
 *
 *   "kvs", "lmdb"  libkvs (kvs.h) with opt.engine set; --sync 1 is KVS_SYNC_ALWAYS, --sync 0
 *                  KVS_SYNC_NEVER, other options are libkvs's defaults.
 *   "rocksdb"      RocksDB's C API (rocksdb/c.h), compiled only under KVS_BENCH_ROCKSDB (CMake
 *                  defines it when librocksdb-dev is found). Comparable durability: the WAL is
 *                  on and WriteOptions.sync is the --sync flag. Options are RocksDB's defaults
 *                  (leveled compaction, Snappy compression, no bloom filter) with two set
 *                  explicitly so that the figures do not depend on the library's build: a 64 MiB
 *                  write buffer and a 32 MiB LRU block cache.
 *
 * Every call may be made from any number of threads on one handle, as the engines allow. Calls
 * return a negative number on failure and leave a message for kb_db_error() on the calling
 * thread; kvs-bench then stops and exits non-zero.
 */
#ifndef KVS_BENCH_DB_H
#define KVS_BENCH_DB_H

#include <stddef.h>

typedef struct kb_db kb_db;
typedef struct kb_iter kb_iter;

/* 1 if this build can run engine name, 0 if the name is unknown, -1 if it is an engine this
 * build lacks (rocksdb without librocksdb-dev). */
int kb_engine_available(const char *name);

/* The engine's library and version, e.g. "libkvs 0.1.0 (LMDB 0.9.24)"; static. */
const char *kb_engine_version(const char *name);

/* Open the store of engine in dir, which exists. must_exist: refuse a directory that holds no
 * store yet (--use_existing_db 1) instead of creating one. sync: 1 syncs every write. pin: reads
 * look at the value where the engine has it (kvs_read, rocksdb_get_pinned: db_bench's
 * --pin_slice 1, its default); 0: reads get a copy of their own (kvs_get, rocksdb_get). */
int kb_db_open(kb_db **out, const char *engine, const char *dir, int sync, int must_exist,
               int pin);

/* Close and free (NULL allowed). Returns < 0 if closing failed (the handle is freed anyway). */
int kb_db_close(kb_db *db);

int kb_db_put(kb_db *db, const char *key, size_t klen, const char *val, size_t vlen);

/* 1 and *vlen if key is there, 0 if not. The value is looked at (pinned) or copied, as the
 * store was opened, and dropped. */
int kb_db_get(kb_db *db, const char *key, size_t klen, size_t *vlen);

/* 1 if key was there and is now removed, 0 if it was not there, 2 if the engine cannot tell
 * (RocksDB writes a tombstone either way). */
int kb_db_delete(kb_db *db, const char *key, size_t klen);

/* An ordered iterator positioned at the first key ≥ start, or NULL with *rc = 0 when the engine
 * has none through this interface (libkvs: point lookups only), NULL with *rc < 0 on failure. */
kb_iter *kb_iter_new(kb_db *db, const char *start, size_t slen, int *rc);
/* Read the entry under the iterator and step past it: 1, its key (valid until the next call)
 * and the sizes; 0 at the end; < 0 on failure. */
int kb_iter_next(kb_iter *it, const char **key, size_t *klen, size_t *vlen);
void kb_iter_free(kb_iter *it);

/* The message of the last failure on this thread. */
const char *kb_db_error(void);

#endif /* KVS_BENCH_DB_H */
