/*
 * db.h — the stores kvs-bench measures, behind one small interface.
 *
 *   "kvs", "kvs-lmdb"  libkvs (kvs.h) with opt.engine "kvs" or "lmdb" (libkvs's engine in
 *                  src/engine/lmdb.c: a read transaction begun and aborted per read); --sync 1
 *                  is KVS_SYNC_ALWAYS, --sync 0 KVS_SYNC_NEVER, other options are libkvs's
 *                  defaults. Any libkvs engine is measured under its registry name, or under
 *                  "kvs-" and that name when a native adapter below has taken the name.
 *   "lmdb"         LMDB's own API (lmdb.h), used the way its documentation advises for speed:
 *                  every session (thread) keeps one read-only transaction, reset after each read
 *                  and renewed before the next, so a read takes no lock and no reader slot; each
 *                  write is one write transaction; readseq is a cursor. --sync 0 is MDB_NOSYNC
 *                  with a writable map (MDB_WRITEMAP | MDB_MAPASYNC: the faster of LMDB's
 *                  no-sync modes here, see LMDB_FAST in db.c; made durable by mdb_env_sync at
 *                  close), --sync 1 LMDB's default, a durable commit each write. Keys longer
 *                  than mdb_env_get_maxkeysize() (511) fail with MDB_BAD_VALSIZE.
 *   "rocksdb"      RocksDB's C API (rocksdb/c.h), compiled only under KVS_BENCH_ROCKSDB (CMake
 *                  defines it when librocksdb-dev is found). Comparable durability: the WAL is
 *                  on and WriteOptions.sync is the --sync flag. Options are RocksDB's defaults
 *                  (leveled compaction, Snappy compression, no bloom filter) with two set
 *                  explicitly so that the figures do not depend on the library's build: a 64 MiB
 *                  write buffer and a 32 MiB LRU block cache.
 *
 * A thread works on a store through a session of its own (kb_session_open): the data calls take
 * the session, which is where a per-thread resource of an engine lives (LMDB's read
 * transaction). Sessions of one store may be used by any number of threads at once, one thread
 * a session; all are closed before the store is. Calls return a negative number on failure and
 * leave a message for kb_db_error() on the calling thread; kvs-bench then stops and exits
 * non-zero.
 */
#ifndef KVS_BENCH_DB_H
#define KVS_BENCH_DB_H

#include <stddef.h>

typedef struct kb_db kb_db;
typedef struct kb_session kb_session;
typedef struct kb_iter kb_iter;

/* What an engine does through this interface, for what the report says (kb_engine_caps). */
enum {
    KB_ITERATES = 1u << 0,     /* kb_iter_new gives an ordered iterator */
    KB_DELETE_TELLS = 1u << 1, /* kb_delete says whether the key was there (never 2) */
};

/* 1 if this build can run engine name, 0 if the name is unknown, -1 if it is an engine this
 * build lacks (rocksdb without librocksdb-dev). */
int kb_engine_available(const char *name);

/* The engine's library and version, e.g. "libkvs 0.1.0 (LMDB 0.9.24)"; static. */
const char *kb_engine_version(const char *name);

/* KB_* of an available engine. */
unsigned kb_engine_caps(const char *name);

/* Does dir hold a store of any engine (or the start of one)? Its marker files say so. */
int kb_dir_holds_store(const char *dir);

/* Open the store of engine in dir, which exists. must_exist: refuse a directory that holds no
 * store yet (--use_existing_db 1) instead of creating one. sync: 1 syncs every write. pin: reads
 * look at the value where the engine has it (kvs_read, rocksdb_get_pinned, LMDB's map: db_bench's
 * --pin_slice 1, its default); 0: reads get a copy of their own (kvs_get, rocksdb_get, a malloc'ed
 * copy of LMDB's). */
int kb_db_open(kb_db **out, const char *engine, const char *dir, int sync, int must_exist,
               int pin);

/* Close and free (NULL allowed) once every session is closed. Returns < 0 if closing failed
 * (the handle is freed anyway). */
int kb_db_close(kb_db *db);

/* A session on db for the calling thread; free it with kb_session_close. */
int kb_session_open(kb_db *db, kb_session **out);
void kb_session_close(kb_session *s);

int kb_put(kb_session *s, const char *key, size_t klen, const char *val, size_t vlen);

/* 1 and *vlen if key is there, 0 if not. The value is looked at (pinned) or copied, as the
 * store was opened, and dropped. */
int kb_get(kb_session *s, const char *key, size_t klen, size_t *vlen);

/* 1 if key was there and is now removed, 0 if it was not there, 2 if the engine cannot tell
 * (RocksDB writes a tombstone either way). */
int kb_delete(kb_session *s, const char *key, size_t klen);

/* An ordered iterator positioned at the first key ≥ start, or NULL with *rc = 0 when the engine
 * has none through this interface (libkvs: point lookups only), NULL with *rc < 0 on failure.
 * It holds the session's read view until kb_iter_free, so no other read of s comes between. */
kb_iter *kb_iter_new(kb_session *s, const char *start, size_t slen, int *rc);
/* Read the entry under the iterator and step past it: 1, its key (valid until the next call)
 * and the sizes; 0 at the end; < 0 on failure. */
int kb_iter_next(kb_iter *it, const char **key, size_t *klen, size_t *vlen);
void kb_iter_free(kb_iter *it);

/* The message of the last failure on this thread. */
const char *kb_db_error(void);

#endif /* KVS_BENCH_DB_H */
