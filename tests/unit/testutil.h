/*
 * testutil.h — helpers shared by the unit tests: scratch directories, file surgery, opening a
 * store with chosen options, and capturing what libkvs logs.
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
/* Open a store at dir with opt (NULL: defaults); asserts success. */
kvs_t *tu_open(const char *dir, const kvs_options *opt);
/* Open and return the error code instead (the handle is closed on failure). */
int tu_try_open(const char *dir, const kvs_options *opt, kvs_t **out);
/* Assert key holds exactly the NUL-terminated string want (or is absent if want is NULL). */
void tu_assert_value(kvs_t *db, const char *key, const char *want);

/* Log capture: everything libkvs logs at ≥ level is appended to a buffer. */
void tu_log_capture(int level);
const char *tu_log_text(void);
void tu_log_clear(void);
void tu_log_release(void);

#endif
