/*
 * fuzzutil.h — what the libFuzzer targets of tests/fuzz share.
 *
 *   - a reader that takes bytes off the front of the fuzz input (fz_in): a target decodes its
 *     configuration and its plan (chunk sizes, edits) from the input itself, so that one input
 *     file replays one run exactly;
 *   - a scratch directory per process, on tmpfs when there is one, removed at exit;
 *   - whole-file I/O and rm -rf for the targets that work on store directories;
 *   - FZ_CHECK: a failed invariant prints what was expected and aborts, which libFuzzer reports
 *     as a crash and saves the input as the reproducer;
 *   - the engine's log silenced (KVS_FUZZ_LOG=1 keeps it, to see why a reproducer fails).
 *
 * Nothing here may keep state between inputs that changes what an input does: every target
 * starts each input from the same state, so a saved input replays alone.
 */
#ifndef KVS_FUZZUTIL_H
#define KVS_FUZZUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct fz_in {
    const uint8_t *p;
    size_t n;
} fz_in;

/* The next 1, 2 or 4 bytes (little-endian), or 0 once the input is used up. */
uint8_t fz_u8(fz_in *in);
uint16_t fz_u16(fz_in *in);
uint32_t fz_u32(fz_in *in);
/* Up to n bytes off the front: *len gets how many there were. */
const uint8_t *fz_take(fz_in *in, size_t n, size_t *len);

/* A small deterministic generator (xorshift), seeded from the input. */
typedef struct fz_rng {
    uint64_t s;
} fz_rng;
void fz_rng_seed(fz_rng *r, uint64_t seed);
uint32_t fz_rng_next(fz_rng *r);

/* This process's scratch directory (created on first use, removed at exit), and a path in it. */
const char *fz_scratch(void);
void fz_path(char *out, size_t cap, const char *name);

/* Remove a file or a directory tree; 0, or -1 with errno. A missing path is not an error. */
int fz_rmrf(const char *path);
/* A growable byte string (traces, expected and received replies). */
typedef struct fz_bytes {
    uint8_t *b;
    size_t len, cap;
} fz_bytes;
/* Append n bytes of p (an out-of-memory is a failed check). */
void fz_bytes_add(fz_bytes *s, const void *p, size_t n);

/* Write a whole file (created or truncated); 0 or -1. */
int fz_write_file(const char *path, const void *p, size_t n);
/* Read a whole file into a new buffer (caller frees); 0 or -1. */
int fz_read_file(const char *path, uint8_t **out, size_t *len);

/* How many file descriptors the process holds (an input must give back all it opens). */
int fz_fd_count(void);

/* Silence libkvs's log unless KVS_FUZZ_LOG is set. */
void fz_quiet(void);

/* Print a byte string escaped (at most max bytes of it) to stderr. */
void fz_dump(const char *what, const void *p, size_t n, size_t max);

#define FZ_CHECK(cond, ...)                                                                   \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "\nfuzz check failed at %s:%d: %s\n  ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                                     \
            fprintf(stderr, "\n");                                                            \
            abort();                                                                          \
        }                                                                                     \
    } while (0)

#endif
