/*
 * fuzzutil.c — the helpers of the fuzz targets (see fuzzutil.h).
 *
 * The scratch directory is made with mkdtemp under $KVS_FUZZ_TMP, else /dev/shm (tmpfs: the
 * targets that open stores create and delete files for every input, and the disk should not
 * pay for that), else $TMPDIR or /tmp. Each process has its own, so parallel runs (make test
 * runs two targets at once, -jobs runs several of one) never share files. It is named with the
 * pid, so that the next process removes it if this one dies without its atexit (a crash).
 */
#include "fuzzutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvs.h"
#include "util/array.h"

uint8_t fz_u8(fz_in *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

uint16_t fz_u16(fz_in *in)
{
    uint16_t lo = fz_u8(in);
    return (uint16_t)(lo | (uint16_t)fz_u8(in) << 8);
}

uint32_t fz_u32(fz_in *in)
{
    uint32_t lo = fz_u16(in);
    return lo | (uint32_t)fz_u16(in) << 16;
}

const uint8_t *fz_take(fz_in *in, size_t n, size_t *len)
{
    const uint8_t *p = in->p;

    if (n > in->n)
        n = in->n;
    in->p += n;
    in->n -= n;
    *len = n;
    return p;
}

void fz_rng_seed(fz_rng *r, uint64_t seed)
{
    r->s = seed * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull;
    if (r->s == 0)
        r->s = 1;
}

uint32_t fz_rng_next(fz_rng *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return (uint32_t)(r->s >> 11);
}

static char scratch[PATH_MAX];

static void scratch_remove(void)
{
    if (scratch[0])
        fz_rmrf(scratch);
}

/* Remove the scratch directories of processes that are gone (a crash, a timeout or an
 * interrupted run ends without atexit): kvs-fuzz-<pid>-XXXXXX with no such pid. */
static void remove_stale(const char *base)
{
    DIR *d = opendir(base);
    struct dirent *de;
    char path[PATH_MAX];
    int pid;

    if (!d)
        return;
    while ((de = readdir(d)) != NULL)
        if (sscanf(de->d_name, "kvs-fuzz-%d-", &pid) == 1 && pid > 0 && kill(pid, 0) < 0 &&
            errno == ESRCH) {
            snprintf(path, sizeof path, "%s/%s", base, de->d_name);
            fz_rmrf(path);
        }
    closedir(d);
}

const char *fz_scratch(void)
{
    const char *base = getenv("KVS_FUZZ_TMP");
    struct stat st;

    if (scratch[0])
        return scratch;
    if (!base || !*base)
        base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0
                   ? "/dev/shm"
                   : getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    remove_stale(base);
    snprintf(scratch, sizeof scratch, "%s/kvs-fuzz-%d-XXXXXX", base, (int)getpid());
    if (!mkdtemp(scratch)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(scratch_remove);
    return scratch;
}

void fz_path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", fz_scratch(), name);
}

int fz_rmrf(const char *path)
{
    struct stat st;
    DIR *d;
    struct dirent *de;
    char sub[PATH_MAX];
    int rc = 0;

    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode))
        return unlink(path);
    if (!(d = opendir(path)))
        return -1;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
        if (fz_rmrf(sub) < 0)
            rc = -1;
    }
    closedir(d);
    if (rmdir(path) < 0)
        rc = -1;
    return rc;
}

int fz_write_file(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const char *b = p;

    if (fd < 0)
        return -1;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return close(fd);
}

int fz_read_file(const char *path, uint8_t **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    uint8_t *b;
    size_t got = 0;

    if (fd < 0)
        return -1;
    if (fstat(fd, &st) < 0 || !(b = malloc(st.st_size ? (size_t)st.st_size : 1))) {
        close(fd);
        return -1;
    }
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, b + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    *out = b;
    *len = got;
    return 0;
}

int fz_fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

void fz_quiet(void)
{
    if (!getenv("KVS_FUZZ_LOG"))
        kvs_log_set_level(KVS_LOG_OFF);
}

void fz_dump(const char *what, const void *p, size_t n, size_t max)
{
    const unsigned char *b = p;

    fprintf(stderr, "  %s (%zu bytes): \"", what, n);
    for (size_t i = 0; i < n && i < max; i++) {
        if (b[i] == '\r')
            fputs("\\r", stderr);
        else if (b[i] == '\n')
            fputs("\\n", stderr);
        else if (b[i] == '"' || b[i] == '\\')
            fprintf(stderr, "\\%c", b[i]);
        else if (b[i] >= 0x20 && b[i] < 0x7f)
            fputc(b[i], stderr);
        else
            fprintf(stderr, "\\x%02x", b[i]);
    }
    fprintf(stderr, "\"%s\n", n > max ? "..." : "");
}

void fz_bytes_add(fz_bytes *s, const void *p, size_t n)
{
    FZ_CHECK(ARR_RESERVE(s->b, s->cap, s->len + n) == 0, "out of memory");
    if (n)
        memcpy(s->b + s->len, p, n);
    s->len += n;
}
