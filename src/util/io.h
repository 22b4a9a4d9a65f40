/*
 * io.h — file I/O that finishes what it starts.
 *
 * read(2)/write(2) may move fewer bytes than asked and may be interrupted; every caller in libkvs
 * wants "all of it or an error", so these loop until done. Errors come back as KVS_E* codes with
 * the detail (path, offset, strerror) recorded for kvs_last_error. A short read at end of file is
 * not an error for io_pread_full: it returns the count it got.
 */
#ifndef KVS_UTIL_IO_H
#define KVS_UTIL_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Read up to len bytes at off; returns bytes read (< len only at end of file) or KVS_EIO. */
ssize_t io_pread_full(int fd, void *buf, size_t len, uint64_t off, const char *path);
/* Scatter-read: as io_pread_full over several buffers; iov is modified. */
ssize_t io_preadv_full(int fd, struct iovec *iov, int iovcnt, uint64_t off, const char *path);
/* Write all of iov at off; 0 or KVS_EIO. iov is modified. */
int io_pwritev_full(int fd, struct iovec *iov, int iovcnt, uint64_t off, const char *path);
int io_pwrite_full(int fd, const void *buf, size_t len, uint64_t off, const char *path);
int io_fdatasync(int fd, const char *path);
/* fsync the directory so that a create, rename or unlink in it is durable. */
int io_fsync_dir(const char *dir);
/* Did an fdatasync or fsync (io_fdatasync, io_fsync_dir) fail on this thread since the last
 * call? Clears the mark. A failed sync is not like other failures: the store above must stop
 * trusting later syncs (kvs.h, "Durability"); this tells its callers which failure they got
 * without threading a flag through every function that syncs. */
bool io_take_sync_failure(void);
#ifdef KVS_TEST_HOOKS
/* Test hook: when set to N > 0, the Nth sync from then on (io_fdatasync, io_fsync_dir) fails
 * with EIO without syncing; it counts down to 0, which is off. */
extern int kvs_test_fail_sync;
/* Does the test hook fail this sync? (For syncs made elsewhere: the lmdb engine's.) */
bool io_test_sync_fails(void);
#else
/* Built without the test hooks (CMake option KVS_TEST_HOOKS, on in test trees only), no sync
 * is failed on purpose. */
static inline bool io_test_sync_fails(void) { return false; }
#endif
/* Write a whole small file atomically: tmp file, fsync, rename over path, fsync dir. */
int io_write_file_atomic(const char *dir, const char *name, const void *buf, size_t len);
/* The same with the file's permissions (a config file that holds a password keeps its own). */
int io_write_file_atomic_mode(const char *dir, const char *name, const void *buf, size_t len,
                              mode_t mode);
/* Read a whole file of at most max bytes into a new buffer (caller frees, NUL-terminated).
 * KVS_ENOTFOUND if it does not exist. */
int io_read_file(const char *path, size_t max, char **out, size_t *len);
/* Size of an open file, or KVS_EIO. */
int64_t io_file_size(int fd, const char *path);
/* dir + "/" + name into out (PATH_MAX); KVS_EINVAL if too long. */
int io_join(char *out, size_t cap, const char *dir, const char *name);

/* Little-endian fixed-width encoding for on-disk formats. */
static inline void le_put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}
static inline void le_put64(unsigned char *p, uint64_t v)
{
    le_put32(p, (uint32_t)v);
    le_put32(p + 4, (uint32_t)(v >> 32));
}
static inline void le_put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static inline uint16_t le_get16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t le_get32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}
static inline uint64_t le_get64(const unsigned char *p)
{
    return (uint64_t)le_get32(p) | ((uint64_t)le_get32(p + 4) << 32);
}

#endif
