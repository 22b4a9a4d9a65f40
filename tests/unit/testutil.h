/*
 * testutil.h — helpers shared by the unit tests: scratch directories, file surgery, the engine
 * under test, opening a store with chosen options, a fixture that holds one open store, writing
 * and checking keys, and capturing what libkvs logs.
 */
#ifndef KVS_TESTUTIL_H
#define KVS_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h> /* cmocka needs these before cmocka.h */
#include <cmocka.h>

#include "kvs.h"

/* A new empty directory under $TMPDIR (or /tmp); the caller frees the string after rm_rf. */
char *tu_mkdtemp(void);
/* Remove a directory tree. */
void tu_rm_rf(const char *dir);
/* Total bytes of the regular files in dir (not recursive). */
uint64_t tu_dir_size(const char *dir);
/* dir/name into a static buffer (one at a time). */
const char *tu_path(const char *dir, const char *name);
/* Size of a file, or -1. */
int64_t tu_file_size(const char *path);
/* A whole file into a new buffer (one spare byte after it); *len its size. Asserts it is read. */
unsigned char *tu_slurp(const char *path, size_t *len);
/* Write len bytes as the whole of the file at path. */
void tu_spill(const char *path, const void *b, size_t len);
/* Flip bits of the byte at off in a file (asserted to be inside it). */
void tu_flip_byte(const char *path, size_t off);
/* Compact every other sealed segment of the kvs store db (ldb_compact_segments): tombstones
 * whose older records stay in the segments left out are copied forward. Its result. */
int64_t tu_compact_every_other(kvs_t *db);
/* Run this test program again (/proc/self/exe, a clean process: the crash children) with argv
 * (argv[0] included) and wait for it: its exit status, or 128 + the signal that ended it. */
int tu_run_self(char *const argv[]);
/* Open a store at dir with opt (NULL: defaults); asserts success. */
kvs_t *tu_open(const char *dir, const kvs_options *opt);
/* Open and return the error code instead (the handle is closed on failure). */
int tu_try_open(const char *dir, const kvs_options *opt, kvs_t **out);
/* Close *db (asserting success) and open dir again with opt into *db. The kvs engine then loads
 * the index it saved at the close (src/engine/log/saved.h). */
void tu_reopen(kvs_t **db, const char *dir, const kvs_options *opt);
/* The same, the saved index removed in between (asserted to be there): the kvs engine rebuilds
 * its index from the hint files and segments, as after a crash. */
void tu_reopen_rebuilt(kvs_t **db, const char *dir, const kvs_options *opt);

/* ---- the engine under test ----
 * The engine-parameterized tests (test_engine, test_binary) run once per engine: CTest passes
 * the name as argv[1]. Every open they do names tu_engine. */

extern const char *tu_engine; /* "kvs" unless tu_engine_from_args or a test sets another */
/* Take the engine from argv[1] ("kvs" if absent); exits 2 on a name that is no engine. Returns
 * a name for the cmocka group: "<program> [<engine>]". */
const char *tu_engine_from_args(int argc, char **argv);
/* The engine that is not tu_engine. */
const char *tu_other_engine(void);
/* Skip the running test (cmocka skip) unless tu_engine is name. */
void tu_require_engine(const char *name);
/* kvs_options_init, then engine = tu_engine. */
void tu_options(kvs_options *opt);

/* ---- fixture: a scratch directory, the options to open it with, and the open handle ---- */

typedef struct tu_fixture {
    char *dir;
    kvs_options opt; /* tu_options */
    kvs_t *db;       /* NULL until tu_fx_open */
} tu_fixture;

int tu_setup(void **state);      /* directory and options; not open */
int tu_setup_open(void **state); /* and open */
int tu_teardown(void **state);
/* A cmocka case on a fresh fixture: with the store open, or left for the test to open. */
#define TU_CASE_OPEN(test) cmocka_unit_test_setup_teardown(test, tu_setup_open, tu_teardown)
#define TU_CASE_CLOSED(test) cmocka_unit_test_setup_teardown(test, tu_setup, tu_teardown)
void tu_fx_open(tu_fixture *f);
/* Close, then open the same directory with f->opt but naming no engine: the directory's ENGINE
 * file must pick tu_engine (asserted). */
void tu_fx_reopen(tu_fixture *f);
/* Run check on the handle that wrote, then again after tu_fx_reopen, where the answers come from
 * what the engine reads back from its files. */
void tu_check_twice(tu_fixture *f, void (*check)(kvs_t *db));

/* ---- writing and checking ---- */

kvs_stats tu_stats(kvs_t *db);
/* Set a string key to a string value; asserts success. */
void tu_set(kvs_t *db, const char *key, const char *val);
/* Set a byte key to a byte value; fails the test with the error detail. */
void tu_set_bin(kvs_t *db, const void *key, size_t klen, const void *val, size_t vlen);
/* Assert key holds exactly want/wlen, followed by the NUL kvs.h promises; want NULL: the key is
 * absent, and get says so the documented way (KVS_ENOTFOUND, *val set to NULL). */
void tu_assert_bin(kvs_t *db, const void *key, size_t klen, const void *want, size_t wlen);
/* Assert key holds exactly the NUL-terminated string want (or is absent if want is NULL). */
void tu_assert_value(kvs_t *db, const char *key, const char *want);
/* n bytes of a pattern that differs with seed; the caller frees. */
unsigned char *tu_filled(size_t n, unsigned seed);
/* Keys key-000000 .. of n, each with its own value: tu_put_keys sets them and returns the first
 * error (no asserts, so a forked child may use it); tu_assert_keys checks them all. */
int tu_put_keys(kvs_t *db, int n);
void tu_assert_keys(kvs_t *db, int n);

/* Log capture: everything libkvs logs at ≥ level is appended to a buffer. */
void tu_log_capture(int level);
const char *tu_log_text(void);
void tu_log_clear(void);
void tu_log_release(void);

#endif
