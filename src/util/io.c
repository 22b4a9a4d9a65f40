/*
 * io.c — full reads and writes, syncs and atomic small-file replacement (see io.h).
 */
#include "util/io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvs.h"
#include "util/err.h"

/* Advance iov past n bytes. */
static void iov_advance(struct iovec **iov, int *iovcnt, size_t n)
{
    while (*iovcnt > 0 && n >= (*iov)->iov_len) {
        n -= (*iov)->iov_len;
        (*iov)++;
        (*iovcnt)--;
    }
    if (*iovcnt > 0) {
        (*iov)->iov_base = (char *)(*iov)->iov_base + n;
        (*iov)->iov_len -= n;
    }
}

ssize_t io_preadv_full(int fd, struct iovec *iov, int iovcnt, uint64_t off, const char *path)
{
    size_t done = 0;

    while (iovcnt > 0) {
        if (iov->iov_len == 0) {
            iov++;
            iovcnt--;
            continue;
        }
        ssize_t n = preadv(fd, iov, iovcnt > IOV_MAX ? IOV_MAX : iovcnt, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return kvs_seterr(kvs_errno(errno), "read %s at %llu: %s", path, (unsigned long long)(off + done),
                              strerror(errno));
        }
        if (n == 0)
            break;
        done += (size_t)n;
        iov_advance(&iov, &iovcnt, (size_t)n);
    }
    return (ssize_t)done;
}

ssize_t io_pread_full(int fd, void *buf, size_t len, uint64_t off, const char *path)
{
    struct iovec iov = {buf, len};
    return io_preadv_full(fd, &iov, 1, off, path);
}

int io_pwritev_full(int fd, struct iovec *iov, int iovcnt, uint64_t off, const char *path)
{
    uint64_t pos = off;

    while (iovcnt > 0) {
        if (iov->iov_len == 0) {
            iov++;
            iovcnt--;
            continue;
        }
        ssize_t n = pwritev(fd, iov, iovcnt > IOV_MAX ? IOV_MAX : iovcnt, (off_t)pos);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return kvs_seterr(kvs_errno(errno), "write %s at %llu: %s", path, (unsigned long long)pos,
                              strerror(errno));
        }
        pos += (uint64_t)n;
        iov_advance(&iov, &iovcnt, (size_t)n);
    }
    return 0;
}

int io_pwrite_full(int fd, const void *buf, size_t len, uint64_t off, const char *path)
{
    struct iovec iov = {(void *)buf, len};
    return io_pwritev_full(fd, &iov, 1, off, path);
}

static _Thread_local bool sync_failed;

bool io_take_sync_failure(void)
{
    bool f = sync_failed;
    sync_failed = false;
    return f;
}

#ifdef KVS_TEST_HOOKS
int kvs_test_fail_sync;

bool io_test_sync_fails(void)
{
    return __atomic_load_n(&kvs_test_fail_sync, __ATOMIC_RELAXED) > 0 &&
           __atomic_sub_fetch(&kvs_test_fail_sync, 1, __ATOMIC_RELAXED) == 0;
}
#endif

/* fsync or fdatasync fd, retried on EINTR (and only then); errno set on failure. */
static int sync_fd(int fd, bool data_only)
{
    if (io_test_sync_fails()) {
        errno = EIO;
        return -1;
    }
    while ((data_only ? fdatasync(fd) : fsync(fd)) < 0)
        if (errno != EINTR)
            return -1;
    return 0;
}

int io_fdatasync(int fd, const char *path)
{
    if (sync_fd(fd, true) < 0) {
        sync_failed = true;
        return kvs_seterr(kvs_errno(errno), "fdatasync %s: %s", path, strerror(errno));
    }
    return 0;
}

int io_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;

    if (fd < 0)
        return kvs_seterr(kvs_errno(errno), "open directory %s: %s", dir, strerror(errno));
    if (sync_fd(fd, false) < 0) {
        sync_failed = true;
        rc = kvs_seterr(kvs_errno(errno), "fsync directory %s: %s", dir, strerror(errno));
    }
    close(fd);
    return rc;
}

int io_join(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        return kvs_seterr(KVS_EINVAL, "path too long: %s/%s", dir, name);
    return 0;
}

int io_write_file_atomic(const char *dir, const char *name, const void *buf, size_t len)
{
    return io_write_file_atomic_mode(dir, name, buf, len, 0644);
}

int io_write_file_atomic_mode(const char *dir, const char *name, const void *buf, size_t len,
                              mode_t mode)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    int fd, rc;

    if ((rc = io_join(path, sizeof path, dir, name)) < 0)
        return rc;
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return kvs_seterr(KVS_EINVAL, "path too long: %s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return kvs_seterr(kvs_errno(errno), "create %s: %s", tmp, strerror(errno));
    /* exactly mode: the umask may have narrowed it, or a stale tmp file kept its own */
    if (fchmod(fd, mode) < 0) {
        rc = kvs_seterr(kvs_errno(errno), "chmod %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return rc;
    }
    rc = io_pwrite_full(fd, buf, len, 0, tmp);
    if (rc == 0)
        rc = io_fdatasync(fd, tmp);
    close(fd);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = kvs_seterr(kvs_errno(errno), "rename %s: %s", tmp, strerror(errno));
    if (rc == 0)
        rc = io_fsync_dir(dir);
    if (rc < 0)
        unlink(tmp);
    return rc;
}

int io_read_file(const char *path, size_t max, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int64_t size;
    ssize_t n;
    char *buf;

    *out = NULL;
    if (fd < 0) {
        if (errno == ENOENT)
            return KVS_ENOTFOUND;
        return kvs_seterr(kvs_errno(errno), "open %s: %s", path, strerror(errno));
    }
    size = io_file_size(fd, path);
    if (size < 0) {
        close(fd);
        return (int)size;
    }
    if ((uint64_t)size > max) {
        close(fd);
        return kvs_seterr(KVS_ECORRUPT, "%s: %lld bytes, more than the %zu allowed", path,
                          (long long)size, max);
    }
    buf = malloc((size_t)size + 1);
    if (!buf) {
        close(fd);
        return KVS_ENOMEM;
    }
    n = io_pread_full(fd, buf, (size_t)size, 0, path);
    close(fd);
    if (n < 0) {
        free(buf);
        return (int)n;
    }
    buf[n] = '\0';
    *out = buf;
    *len = (size_t)n;
    return 0;
}

int64_t io_file_size(int fd, const char *path)
{
    struct stat st;

    if (fstat(fd, &st) < 0)
        return kvs_seterr(kvs_errno(errno), "stat %s: %s", path, strerror(errno));
    return (int64_t)st.st_size;
}
