/*
 * crashsim.c — a file layer under the engine that knows what a power cut would keep, and that
 * fails chosen calls: power-cut simulation and I/O-fault injection for tests (LD_PRELOAD).
 *
 * Built only with BUILD_TESTING, as libcrashsim.so, and preloaded into kvs-server or any other
 * program over libkvs. It interposes the calls through which a program changes files —
 * open/openat/creat, write/pwrite/pwritev, ftruncate/truncate, fallocate/posix_fallocate,
 * mmap/munmap/msync, fsync/fdatasync, rename/renameat, unlink/unlinkat, close — and acts only on
 * the files directly inside one directory (CRASHSIM_DIR) and on that directory itself; every
 * other call goes straight through.
 *
 * What it keeps (the "shadow", in CRASHSIM_SHADOW, on the real file system so that it survives
 * the process being killed at any moment):
 *
 *   files/UID      the durable content of file UID: its bytes as of its last successful
 *                  fsync/fdatasync/msync(MS_SYNC) (or write through an O_DSYNC/O_SYNC fd, for
 *                  the range written). A file never synced has none. Each file gets a UID when
 *                  it is created (or found at start), so renames and unlinks never confuse whose
 *                  content is whose.
 *   dir            the durable directory: "UID NAME" lines, the name→file map as of the last
 *                  fsync of the directory (at start: what the directory held).
 *   dirops         the creations, renames and unlinks since then, in order ("create UID NAME",
 *                  "rename OLD NEW", "unlink NAME"): a journaling file system keeps a prefix of
 *                  them, and the rebuild may apply one.
 *   clean/UID      after a failed sync of UID: what the kernel now believes is on disk (it marks
 *                  the pages of a failed writeback clean, so a later sync that succeeds writes
 *                  only pages dirtied since: the lost ones stay lost — "fsyncgate").
 *   inflight       "UID" while a sync of UID is being copied (a cut then may keep any mix of old
 *                  and new sectors of that file).
 *   events         one line per counted call: "N OP CLASS NAME" (OP: create write trunc
 *                  fallocate fsync fdatasync msync rename unlink; CLASS: log hint hint.tmp
 *                  MANIFEST MANIFEST.tmp ENGINE ENGINE.tmp dir data.mdb lock.mdb other).
 *   faults         one line per injected failure: "N OP NAME ERRNO MODE TIME".
 *   synced         one line per sync call that returned: "N OP CLASS NAME BEGIN END ERRNO"
 *                  (N: its number in events; BEGIN, END: when the shim began it, its lock
 *                  taken, and when it was done, in seconds on CLOCK_MONOTONIC, the clock of
 *                  Python's time.monotonic(); ERRNO 0 if it succeeded). A test
 *                  orders what a program did after a sync against its END (a reply to a
 *                  write must come after the END of a sync whose BEGIN followed the write).
 *   cut            written by a cut the shim makes itself: "N OP NAME TIME" (TIME: seconds on
 *                  CLOCK_MONOTONIC, the clock of Python's time.monotonic()).
 *
 * Writes through MAP_SHARED mappings are invisible to it, and need not be seen: they count as
 * durable only once a sync copies the file. Nothing is ever durable that was not synced.
 *
 * A cut is either the test's SIGKILL at a moment of its choosing or the shim's own _exit(99)
 * right after a counted call: CRASHSIM_CUT_AT=N (the Nth counted call of the process) or
 * CRASHSIM_CUT_ON=OP:CLASS:K (the Kth OP on a file of CLASS; OP "sync" matches fsync, fdatasync
 * and msync, CLASS "*" any; counted from the moment the file CRASHSIM_ARM names exists, if
 * set). The call completes (and is recorded) before the exit, and the shim
 * holds its lock, so no other counted call slips in. tests/crashsim/crashsim.py rebuilds from the
 * shadow and the killed program's files the directory a power loss could have left.
 *
 * Faults: CRASHSIM_FAIL=OP:N[,OP:N...] fails the Nth call of OP (counted per OP, on tracked files
 * only; OP: open write fsync fdatasync msync sync rename unlink fallocate mmap ftruncate),
 * CRASHSIM_FAIL_MODE once (default) | always (that call and every later one of OP) | a number K
 * (K calls in a row), CRASHSIM_FAIL_ERRNO EIO (default; mmap: ENOMEM) | ENOSPC | EDQUOT | ENOMEM.
 * A failed sync either loses what it was writing (default; see clean/ above) or
 * (CRASHSIM_FAIL_LANDED=1) makes it durable all the same and still reports the error: a program
 * must be right both ways.
 *
 * Other settings: CRASHSIM_SYNC_DELAY_US (sleep inside each sync, with the inflight mark set:
 * latency, and a window for SIGKILL to land inside a sync), CRASHSIM_REAL_SYNC=1 (also call the
 * real fsync; by default syncs are only recorded: the test needs no real durability, and the
 * O_DSYNC/O_SYNC flags are dropped from opens for the same reason).
 *
 * The shim is not instrumented by sanitizers (see tests/CMakeLists.txt); under ASan the program
 * it is preloaded into needs ASAN_OPTIONS=verify_asan_link_order=0.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define CS_EXIT 99
#define CS_MAXFD 65536
#define CS_MAXNAMES 4096
#define CS_MAXMAPS 1024
#define CS_MAXRULES 8

/* ---- the real functions ---- */

#define REAL(ret, name, ...)                                                                      \
    static ret (*real_##name)(__VA_ARGS__);                                                        \
    static void load_##name(void)                                                                  \
    {                                                                                              \
        if (!real_##name)                                                                          \
            real_##name = (ret(*)(__VA_ARGS__))dlsym(RTLD_NEXT, #name);                           \
    }

REAL(int, open, const char *, int, ...)
REAL(int, openat, int, const char *, int, ...)
REAL(int, close, int)
REAL(ssize_t, write, int, const void *, size_t)
REAL(ssize_t, pwrite, int, const void *, size_t, off_t)
REAL(ssize_t, writev, int, const struct iovec *, int)
REAL(ssize_t, pwritev, int, const struct iovec *, int, off_t)
REAL(ssize_t, pread, int, void *, size_t, off_t)
REAL(int, ftruncate, int, off_t)
REAL(int, truncate, const char *, off_t)
REAL(int, fallocate, int, int, off_t, off_t)
REAL(int, posix_fallocate, int, off_t, off_t)
REAL(void *, mmap, void *, size_t, int, int, int, off_t)
REAL(int, munmap, void *, size_t)
REAL(int, msync, void *, size_t, int)
REAL(int, fsync, int)
REAL(int, fdatasync, int)
REAL(int, rename, const char *, const char *)
REAL(int, renameat, int, const char *, int, const char *)
REAL(int, renameat2, int, const char *, int, const char *, unsigned)
REAL(int, unlink, const char *)
REAL(int, unlinkat, int, const char *, int)

static void load_all(void)
{
    load_open(), load_openat(), load_close(), load_write(), load_pwrite(), load_writev();
    load_pwritev(), load_pread(), load_ftruncate(), load_truncate(), load_fallocate();
    load_posix_fallocate(), load_mmap(), load_munmap(), load_msync(), load_fsync();
    load_fdatasync(), load_rename(), load_renameat(), load_renameat2(), load_unlink();
    load_unlinkat();
}

/* ---- state ---- */

typedef struct fdinfo {
    int kind; /* 0 untracked, 1 a file in the directory, 2 the directory */
    bool dsync;
    uint64_t uid;
    char name[NAME_MAX + 1];
} fdinfo;

typedef struct entry {
    char name[NAME_MAX + 1];
    uint64_t uid;
} entry;

typedef struct mapping {
    char *addr;
    size_t len;
    uint64_t uid;
    int fd; /* a descriptor of the file, ours (opened for the mapping's life) */
} mapping;

typedef struct rule {
    char op[16];
    long long n;     /* fail the nth call */
    long long count; /* so many calls from there (0: all) */
    long long seen;
} rule;

static struct {
    bool on;
    char dir[PATH_MAX];
    size_t dirlen;
    char shadow[PATH_MAX];
    pthread_mutex_t mu;
    long long events;
    long long cut_at;
    char cut_op[16], cut_class[16];
    long long cut_k, cut_seen;
    rule rules[CS_MAXRULES];
    int nrules;
    int fail_errno; /* 0: per op default */
    long long fail_mode; /* 1 once, 0 always, K */
    bool landed;
    bool real_sync;
    unsigned delay_us;
    uint64_t next_uid;
    entry cur[CS_MAXNAMES], dur[CS_MAXNAMES];
    int ncur, ndur;
    bool has_clean[1 << 16];
    mapping maps[CS_MAXMAPS];
    int nmaps;
    int events_fd, dirops_fd, faults_fd, synced_fd;
} cs = {.mu = PTHREAD_MUTEX_INITIALIZER};

static fdinfo fds[CS_MAXFD];
static int fd_high; /* one past the highest fd ever tracked */

/* ---- small helpers (real calls only: the lock is held) ---- */

static void die(const char *what)
{
    char b[PATH_MAX + 128];
    int n = snprintf(b, sizeof b, "crashsim: %s: %s\n", what, strerror(errno));
    if (real_write)
        real_write(2, b, (size_t)n);
    _exit(98);
}

static double now_mono(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void spath(char *out, const char *a, const char *b)
{
    if (snprintf(out, PATH_MAX, "%s/%s%s%s", cs.shadow, a, b ? "/" : "", b ? b : "") >= PATH_MAX) {
        errno = ENAMETOOLONG;
        die(cs.shadow);
    }
}

static void write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = real_write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("write to the shadow");
        }
        p += n;
        len -= (size_t)n;
    }
}

static void linef(int fd, const char *fmt, ...)
{
    char b[2 * PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b, sizeof b, fmt, ap);
    va_end(ap);
    if (fd >= 0 && n > 0)
        write_all(fd, b, (size_t)n < sizeof b ? (size_t)n : sizeof b - 1);
}

/* Read a whole file (by an fd of it, or a path) into a new buffer. */
static unsigned char *slurp_fd(int fd, size_t *len)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        die("fstat");
    size_t n = (size_t)st.st_size, got = 0;
    unsigned char *b = malloc(n ? n : 1);
    if (!b)
        die("malloc");
    while (got < n) {
        ssize_t r = real_pread(fd, b + got, n - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    *len = got;
    return b;
}

static unsigned char *slurp_path(const char *path, size_t *len)
{
    int fd = real_open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *len = 0;
        return NULL;
    }
    unsigned char *b = slurp_fd(fd, len);
    real_close(fd);
    return b;
}

/* Replace the shadow file at path with buf, atomically (tmp + rename). */
static void spill(const char *path, const void *buf, size_t len)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    int fd = real_open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die(tmp);
    write_all(fd, buf, len);
    real_close(fd);
    if (real_rename(tmp, path) < 0)
        die("rename in the shadow");
}

/* The current content of a tracked fd's file (through /proc: the fd may be write-only). */
static unsigned char *current(int fd, size_t *len)
{
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
    unsigned char *b = slurp_path(p, len);
    if (!b)
        die(p);
    return b;
}

/* ---- classes, names, the directory maps ---- */

static const char *name_class(const char *name)
{
    const char *dot = strchr(name, '.');

    if (strcmp(name, ".") == 0)
        return "dir";
    if (dot && dot - name >= 6 && name[0] >= '0' && name[0] <= '9') {
        if (strcmp(dot, ".log") == 0)
            return "log";
        if (strcmp(dot, ".hint") == 0)
            return "hint";
        if (strcmp(dot, ".hint.tmp") == 0)
            return "hint.tmp";
    }
    if (strcmp(name, "MANIFEST") == 0 || strcmp(name, "MANIFEST.tmp") == 0 ||
        strcmp(name, "ENGINE") == 0 || strcmp(name, "ENGINE.tmp") == 0 ||
        strcmp(name, "data.mdb") == 0 || strcmp(name, "lock.mdb") == 0)
        return name;
    return "other";
}

static int find(entry *v, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0)
            return i;
    return -1;
}

static void put(entry *v, int *n, const char *name, uint64_t uid)
{
    int i = find(v, *n, name);
    if (i < 0) {
        if (*n == CS_MAXNAMES) {
            errno = ENOSPC;
            die("too many names");
        }
        i = (*n)++;
        snprintf(v[i].name, sizeof v[i].name, "%s", name);
    }
    v[i].uid = uid;
}

static void drop(entry *v, int *n, const char *name)
{
    int i = find(v, *n, name);
    if (i >= 0)
        v[i] = v[--*n];
}

static void save_dur(void)
{
    char path[PATH_MAX];
    size_t cap = (size_t)cs.ndur * (NAME_MAX + 24) + 1, used = 0;
    char *b = malloc(cap);
    if (!b)
        die("malloc");
    for (int i = 0; i < cs.ndur; i++)
        used += (size_t)snprintf(b + used, cap - used, "%llu %s\n",
                                 (unsigned long long)cs.dur[i].uid, cs.dur[i].name);
    spath(path, "dir", NULL);
    spill(path, b, used);
    free(b);
}

/* Is path (relative to dirfd) a file directly inside the directory, or the directory itself?
 * Returns 1 (file: name set), 2 (the directory), 0 (neither). */
static int classify(int dirfd, const char *path, char name[NAME_MAX + 1])
{
    char full[PATH_MAX * 2];
    size_t n;

    if (!cs.on || !path)
        return 0;
    if (path[0] == '/') {
        snprintf(full, sizeof full, "%s", path);
    } else if (dirfd != AT_FDCWD && dirfd >= 0 && dirfd < CS_MAXFD && fds[dirfd].kind == 2) {
        snprintf(full, sizeof full, "%s/%s", cs.dir, path);
    } else if (dirfd == AT_FDCWD) {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd))
            return 0;
        snprintf(full, sizeof full, "%s/%s", cwd, path);
    } else {
        return 0;
    }
    /* collapse "//" and "/./", drop trailing slashes */
    char *w = full;
    for (const char *r = full; *r;) {
        if (r[0] == '/' && (r[1] == '/' || (r[1] == '.' && (r[2] == '/' || r[2] == '\0')))) {
            r += r[1] == '/' ? 1 : 2;
            continue;
        }
        *w++ = *r++;
    }
    *w = '\0';
    n = strlen(full);
    while (n > 1 && full[n - 1] == '/')
        full[--n] = '\0';
    if (n == cs.dirlen && memcmp(full, cs.dir, n) == 0)
        return 2;
    if (n > cs.dirlen + 1 && memcmp(full, cs.dir, cs.dirlen) == 0 && full[cs.dirlen] == '/' &&
        !strchr(full + cs.dirlen + 1, '/')) {
        snprintf(name, NAME_MAX + 1, "%s", full + cs.dirlen + 1);
        return 1;
    }
    return 0;
}

/* ---- counting, cutting, failing ---- */

static bool op_matches(const char *want, const char *op)
{
    if (strcmp(want, op) == 0)
        return true;
    return strcmp(want, "sync") == 0 &&
           (!strcmp(op, "fsync") || !strcmp(op, "fdatasync") || !strcmp(op, "msync"));
}

/* A counted call (lock held): its number. */
static long long count_event(const char *op, const char *name)
{
    long long n = ++cs.events;
    linef(cs.events_fd, "%lld %s %s %s\n", n, op, name_class(name), name);
    return n;
}

/* Is CRASHSIM_CUT_ON armed? Always, unless CRASHSIM_ARM names a file: then from the moment
 * that file exists (the test creates it when the load begins, to aim at steps of the write
 * path rather than of recovery). */
static bool armed(void)
{
    static bool on;
    const char *f;
    if (!on)
        on = !(f = getenv("CRASHSIM_ARM")) || !*f || access(f, F_OK) == 0;
    return on;
}

/* Cut now if this counted call is the one (lock held; the call is done). */
static void maybe_cut(long long n, const char *op, const char *name)
{
    bool cut = cs.cut_at && n == cs.cut_at;
    if (!cut && cs.cut_k && op_matches(cs.cut_op, op) && armed() &&
        (strcmp(cs.cut_class, "*") == 0 || strcmp(cs.cut_class, name_class(name)) == 0))
        cut = ++cs.cut_seen == cs.cut_k;
    if (!cut)
        return;
    char path[PATH_MAX];
    spath(path, "cut", NULL);
    char b[PATH_MAX + 64];
    int len = snprintf(b, sizeof b, "%lld %s %s %.6f\n", n, op, name, now_mono());
    spill(path, b, (size_t)len);
    _exit(CS_EXIT);
}

static int default_errno(const char *op)
{
    return strcmp(op, "mmap") == 0 ? ENOMEM : EIO;
}

/* Should this call of op fail? (lock held) Returns the errno to fail with, or 0. Counted per
 * rule, for every call of the op on a tracked file. */
static int maybe_fail(const char *op, const char *name)
{
    for (int i = 0; i < cs.nrules; i++) {
        rule *r = &cs.rules[i];
        if (!op_matches(r->op, op))
            continue;
        long long k = ++r->seen;
        bool fail = k == r->n || (k > r->n && (cs.fail_mode == 0 || k < r->n + cs.fail_mode));
        if (!fail)
            continue;
        int e = cs.fail_errno ? cs.fail_errno : default_errno(op);
        linef(cs.faults_fd, "%lld %s %s %d %s %.6f\n", k, op, name, e,
              cs.landed ? "landed" : "lost", now_mono());
        return e;
    }
    return 0;
}

/* ---- syncing ---- */

static void mark_inflight(uint64_t uid)
{
    char path[PATH_MAX], b[32];
    spath(path, "inflight", NULL);
    int n = snprintf(b, sizeof b, "%llu\n", (unsigned long long)uid);
    spill(path, b, (size_t)n);
}

static void clear_inflight(void)
{
    char path[PATH_MAX];
    spath(path, "inflight", NULL);
    real_unlink(path);
}

#define SECTOR 512

/* The file behind fd was synced: its content becomes durable. After a failed sync of it, only
 * the sectors written since that failure (differing from clean/UID) reach the disk; the others
 * keep their durable bytes. */
static void sync_file(int fd, uint64_t uid)
{
    char fpath[PATH_MAX], cpath[PATH_MAX], name[32];
    size_t len;

    snprintf(name, sizeof name, "%llu", (unsigned long long)uid);
    spath(fpath, "files", name);
    spath(cpath, "clean", name);
    if (cs.delay_us) {
        mark_inflight(uid);
        usleep(cs.delay_us);
    }
    unsigned char *cur = current(fd, &len);
    if (uid < sizeof cs.has_clean && cs.has_clean[uid]) {
        size_t dlen, clen;
        unsigned char *dur = slurp_path(fpath, &dlen), *clean = slurp_path(cpath, &clen);
        unsigned char *out = calloc(1, len ? len : 1);
        if (!out)
            die("calloc");
        for (size_t off = 0; off < len; off += SECTOR) {
            size_t n = len - off < SECTOR ? len - off : SECTOR;
            bool dirty = off + n > clen || memcmp(cur + off, clean + off, n) != 0;
            if (dirty)
                memcpy(out + off, cur + off, n);
            else if (dur && off < dlen)
                memcpy(out + off, dur + off, dlen - off < n ? dlen - off : n);
        }
        spill(fpath, out, len);
        spill(cpath, cur, len);
        free(out);
        free(dur);
        free(clean);
    } else {
        spill(fpath, cur, len);
    }
    free(cur);
    if (cs.delay_us)
        clear_inflight();
}

/* A write of [off, off+len) through an O_DSYNC fd is durable by itself. */
static void sync_range(int fd, uint64_t uid, uint64_t off, size_t len)
{
    char fpath[PATH_MAX], name[32];
    size_t clen, dlen;

    snprintf(name, sizeof name, "%llu", (unsigned long long)uid);
    spath(fpath, "files", name);
    unsigned char *cur = current(fd, &clen), *dur = slurp_path(fpath, &dlen);
    size_t end = off + len > clen ? clen : off + len;
    size_t nlen = dlen > end ? dlen : end;
    unsigned char *out = calloc(1, nlen ? nlen : 1);
    if (!out)
        die("calloc");
    if (dur)
        memcpy(out, dur, dlen);
    if (end > off)
        memcpy(out + off, cur + off, end - off);
    spill(fpath, out, nlen);
    free(out);
    free(dur);
    free(cur);
}

/* A sync of uid failed: the kernel drops what it was writing and thinks it clean. */
static void sync_lost(int fd, uint64_t uid)
{
    char cpath[PATH_MAX], name[32];
    size_t len;

    if (uid >= sizeof cs.has_clean)
        return;
    snprintf(name, sizeof name, "%llu", (unsigned long long)uid);
    spath(cpath, "clean", name);
    unsigned char *cur = current(fd, &len);
    spill(cpath, cur, len);
    free(cur);
    cs.has_clean[uid] = true;
}

static void sync_dir(void)
{
    memcpy(cs.dur, cs.cur, sizeof cs.cur[0] * (size_t)cs.ncur);
    cs.ndur = cs.ncur;
    save_dur();
    if (cs.dirops_fd >= 0 && real_ftruncate(cs.dirops_fd, 0) < 0)
        die("truncate dirops");
}

/* fsync/fdatasync/msync(MS_SYNC) of a tracked fd (lock held). Returns 0 or -1 with errno. */
static int do_sync(const char *op, int fd, int kind, uint64_t uid, const char *name)
{
    double begin = now_mono();
    long long n = count_event(op, name);
    int e = maybe_fail(op, name);

    if (e && !cs.landed) {
        if (kind == 1)
            sync_lost(fd, uid);
    } else if (kind == 2) {
        sync_dir();
    } else {
        sync_file(fd, uid);
    }
    if (!e && cs.real_sync && real_fdatasync(fd) < 0)
        e = errno;
    linef(cs.synced_fd, "%lld %s %s %s %.6f %.6f %d\n", n, op, name_class(name), name, begin,
          now_mono(), e);
    maybe_cut(n, op, name);
    if (e) {
        errno = e;
        return -1;
    }
    return 0;
}

/* ---- start ---- */

static void shadow_dir(const char *sub)
{
    char path[PATH_MAX];
    spath(path, sub, NULL);
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        die(path);
}

static int shadow_log(const char *name)
{
    char path[PATH_MAX];
    spath(path, name, NULL);
    int fd = real_open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        die(path);
    return fd;
}

static void parse_rules(const char *s)
{
    while (s && *s && cs.nrules < CS_MAXRULES) {
        rule *r = &cs.rules[cs.nrules];
        const char *colon = strchr(s, ':');
        if (!colon)
            break;
        snprintf(r->op, sizeof r->op, "%.*s", (int)(colon - s), s);
        r->n = atoll(colon + 1);
        if (r->n > 0)
            cs.nrules++;
        s = strchr(colon, ',');
        if (s)
            s++;
    }
}

static int parse_errno(const char *s)
{
    if (!s || !*s)
        return 0;
    if (!strcmp(s, "EIO"))
        return EIO;
    if (!strcmp(s, "ENOSPC"))
        return ENOSPC;
    if (!strcmp(s, "EDQUOT"))
        return EDQUOT;
    if (!strcmp(s, "ENOMEM"))
        return ENOMEM;
    return atoi(s);
}

/* The directory as it is at start is durable: every file with its content. */
static void adopt_dir(void)
{
    DIR *d = opendir(cs.dir);
    struct dirent *de;

    if (!d)
        return; /* created later (by the program): empty, and durable as such */
    while ((de = readdir(d)) != NULL) {
        char path[PATH_MAX * 2], spth[PATH_MAX], uidname[32];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", cs.dir, de->d_name);
        if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        uint64_t uid = ++cs.next_uid;
        size_t len;
        unsigned char *b = slurp_path(path, &len);
        snprintf(uidname, sizeof uidname, "%llu", (unsigned long long)uid);
        spath(spth, "files", uidname);
        spill(spth, b ? b : (unsigned char *)"", b ? len : 0);
        free(b);
        put(cs.cur, &cs.ncur, de->d_name, uid);
    }
    closedir(d);
    sync_dir();
}

__attribute__((constructor)) static void crashsim_init(void)
{
    const char *dir = getenv("CRASHSIM_DIR"), *shadow = getenv("CRASHSIM_SHADOW"), *v;

    load_all();
    cs.events_fd = cs.dirops_fd = cs.faults_fd = cs.synced_fd = -1;
    if (!dir || !*dir || !shadow || !*shadow)
        return;
    snprintf(cs.dir, sizeof cs.dir, "%s", dir);
    cs.dirlen = strlen(cs.dir);
    while (cs.dirlen > 1 && cs.dir[cs.dirlen - 1] == '/')
        cs.dir[--cs.dirlen] = '\0';
    snprintf(cs.shadow, sizeof cs.shadow, "%s", shadow);
    if (mkdir(cs.shadow, 0755) < 0 && errno != EEXIST)
        die(cs.shadow);
    shadow_dir("files");
    shadow_dir("clean");
    cs.events_fd = shadow_log("events");
    cs.dirops_fd = shadow_log("dirops");
    cs.faults_fd = shadow_log("faults");
    cs.synced_fd = shadow_log("synced");
    if ((v = getenv("CRASHSIM_CUT_AT")))
        cs.cut_at = atoll(v);
    if ((v = getenv("CRASHSIM_CUT_ON")) && *v) {
        char op[16] = "", cls[16] = "";
        long long k = 0;
        if (sscanf(v, "%15[^:]:%15[^:]:%lld", op, cls, &k) == 3 && k > 0) {
            snprintf(cs.cut_op, sizeof cs.cut_op, "%s", op);
            snprintf(cs.cut_class, sizeof cs.cut_class, "%s", cls);
            cs.cut_k = k;
        }
    }
    parse_rules(getenv("CRASHSIM_FAIL"));
    cs.fail_errno = parse_errno(getenv("CRASHSIM_FAIL_ERRNO"));
    cs.fail_mode = 1;
    if ((v = getenv("CRASHSIM_FAIL_MODE")) && *v)
        cs.fail_mode = !strcmp(v, "once") ? 1 : !strcmp(v, "always") ? 0 : atoll(v);
    cs.landed = (v = getenv("CRASHSIM_FAIL_LANDED")) && *v == '1';
    cs.real_sync = (v = getenv("CRASHSIM_REAL_SYNC")) && *v == '1';
    cs.delay_us = (v = getenv("CRASHSIM_SYNC_DELAY_US")) ? (unsigned)atoi(v) : 0;
    adopt_dir();
    cs.on = true;
}

/* ---- the interposed calls ---- */

static bool tracked_fd(int fd)
{
    return cs.on && fd >= 0 && fd < CS_MAXFD && fds[fd].kind;
}

static int open_common(int dirfd, const char *path, int flags, mode_t mode, bool at)
{
    char name[NAME_MAX + 1];
    int kind = classify(dirfd, path, name);

    if (!kind) {
        if (at)
            return real_openat(dirfd, path, flags, mode);
        return real_open(path, flags, mode);
    }
    pthread_mutex_lock(&cs.mu);
    struct stat st;
    bool existed = kind == 2 || fstatat(dirfd, path, &st, 0) == 0;
    int e = maybe_fail("open", kind == 2 ? "." : name), fd;
    bool dsync = (flags & (O_DSYNC | O_SYNC)) != 0;
    if (e) {
        errno = e;
        fd = -1;
        goto out;
    }
    if (!cs.real_sync)
        flags &= ~(O_DSYNC | O_SYNC);
    fd = at ? real_openat(dirfd, path, flags, mode) : real_open(path, flags, mode);
    if (fd < 0 || fd >= CS_MAXFD)
        goto out;
    fds[fd] = (fdinfo){kind, dsync, 0, ""};
    if (fd >= fd_high)
        fd_high = fd + 1;
    if (kind == 2)
        goto out;
    snprintf(fds[fd].name, sizeof fds[fd].name, "%s", name);
    int i = find(cs.cur, cs.ncur, name);
    if (!existed || i < 0) {
        fds[fd].uid = ++cs.next_uid;
        put(cs.cur, &cs.ncur, name, fds[fd].uid);
        linef(cs.dirops_fd, "create %llu %s\n", (unsigned long long)fds[fd].uid, name);
        long long n = count_event("create", name);
        maybe_cut(n, "create", name);
    } else {
        fds[fd].uid = cs.cur[i].uid;
        if (flags & O_TRUNC) {
            long long n = count_event("trunc", name);
            maybe_cut(n, "trunc", name);
        }
    }
out:
    pthread_mutex_unlock(&cs.mu);
    return fd;
}

static mode_t va_mode(int flags, va_list ap)
{
    return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t m = va_mode(flags, ap);
    va_end(ap);
    load_open();
    return open_common(AT_FDCWD, path, flags, m, false);
}

int open64(const char *path, int flags, ...) __attribute__((alias("open")));

int openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t m = va_mode(flags, ap);
    va_end(ap);
    load_openat();
    return open_common(dirfd, path, flags, m, true);
}

int openat64(int dirfd, const char *path, int flags, ...) __attribute__((alias("openat")));

int __open_2(const char *path, int flags)
{
    load_open();
    return open_common(AT_FDCWD, path, flags, 0, false);
}

int __open64_2(const char *path, int flags) __attribute__((alias("__open_2")));

int __openat_2(int dirfd, const char *path, int flags)
{
    load_openat();
    return open_common(dirfd, path, flags, 0, true);
}

int __openat64_2(int dirfd, const char *path, int flags) __attribute__((alias("__openat_2")));

int creat(const char *path, mode_t mode)
{
    load_open();
    return open_common(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode, false);
}

int creat64(const char *path, mode_t mode) __attribute__((alias("creat")));

int close(int fd)
{
    load_close();
    if (tracked_fd(fd)) {
        pthread_mutex_lock(&cs.mu);
        fds[fd].kind = 0;
        int r = real_close(fd);
        pthread_mutex_unlock(&cs.mu);
        return r;
    }
    return real_close(fd);
}

/* The write family: fail, or write and (O_DSYNC) make the range durable. */
static ssize_t write_common(int fd, const void *buf, const struct iovec *iov, int iovcnt,
                            size_t len, off_t off, bool positioned)
{
    pthread_mutex_lock(&cs.mu);
    fdinfo *f = &fds[fd];
    long long n = count_event("write", f->name);
    int e = f->kind == 1 ? maybe_fail("write", f->name) : 0;
    ssize_t r;
    if (e) {
        errno = e;
        pthread_mutex_unlock(&cs.mu);
        return -1;
    }
    off_t at = positioned ? off : lseek(fd, 0, SEEK_CUR);
    if (iov)
        r = positioned ? real_pwritev(fd, iov, iovcnt, off) : real_writev(fd, iov, iovcnt);
    else
        r = positioned ? real_pwrite(fd, buf, len, off) : real_write(fd, buf, len);
    int saved = errno;
    if (r > 0 && f->kind == 1 && f->dsync) {
        if ((fcntl(fd, F_GETFL) & O_APPEND) && !positioned)
            at = lseek(fd, 0, SEEK_CUR) - r;
        sync_range(fd, f->uid, (uint64_t)at, (size_t)r);
    }
    maybe_cut(n, "write", f->name);
    pthread_mutex_unlock(&cs.mu);
    errno = saved;
    return r;
}

ssize_t write(int fd, const void *buf, size_t len)
{
    load_write();
    if (!tracked_fd(fd))
        return real_write(fd, buf, len);
    return write_common(fd, buf, NULL, 0, len, 0, false);
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off)
{
    load_pwrite();
    if (!tracked_fd(fd))
        return real_pwrite(fd, buf, len, off);
    return write_common(fd, buf, NULL, 0, len, off, true);
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off) __attribute__((alias("pwrite")));

ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
    load_writev();
    if (!tracked_fd(fd))
        return real_writev(fd, iov, iovcnt);
    return write_common(fd, NULL, iov, iovcnt, 0, 0, false);
}

ssize_t pwritev(int fd, const struct iovec *iov, int iovcnt, off_t off)
{
    load_pwritev();
    if (!tracked_fd(fd))
        return real_pwritev(fd, iov, iovcnt, off);
    return write_common(fd, NULL, iov, iovcnt, 0, off, true);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int iovcnt, off_t off)
    __attribute__((alias("pwritev")));

int ftruncate(int fd, off_t len)
{
    load_ftruncate();
    if (!tracked_fd(fd) || fds[fd].kind != 1)
        return real_ftruncate(fd, len);
    pthread_mutex_lock(&cs.mu);
    long long n = count_event("trunc", fds[fd].name);
    int e = maybe_fail("ftruncate", fds[fd].name), r = -1;
    if (!e)
        r = real_ftruncate(fd, len);
    else
        errno = e;
    int saved = errno;
    maybe_cut(n, "trunc", fds[fd].name);
    pthread_mutex_unlock(&cs.mu);
    errno = saved;
    return r;
}

int ftruncate64(int fd, off_t len) __attribute__((alias("ftruncate")));

int truncate(const char *path, off_t len)
{
    char name[NAME_MAX + 1];
    load_truncate();
    if (classify(AT_FDCWD, path, name) != 1)
        return real_truncate(path, len);
    pthread_mutex_lock(&cs.mu);
    long long n = count_event("trunc", name);
    int e = maybe_fail("ftruncate", name), r = -1;
    if (!e)
        r = real_truncate(path, len);
    else
        errno = e;
    int saved = errno;
    maybe_cut(n, "trunc", name);
    pthread_mutex_unlock(&cs.mu);
    errno = saved;
    return r;
}

int truncate64(const char *path, off_t len) __attribute__((alias("truncate")));

/* fallocate and posix_fallocate: posix = returns the error number instead of -1/errno. */
static int falloc_common(int fd, int mode, off_t off, off_t len, bool posix)
{
    pthread_mutex_lock(&cs.mu);
    long long n = count_event("fallocate", fds[fd].name);
    int e = maybe_fail("fallocate", fds[fd].name), r;
    if (e) {
        r = posix ? e : -1;
        errno = e;
    } else {
        r = posix ? real_posix_fallocate(fd, off, len) : real_fallocate(fd, mode, off, len);
    }
    int saved = errno;
    maybe_cut(n, "fallocate", fds[fd].name);
    pthread_mutex_unlock(&cs.mu);
    errno = saved;
    return r;
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
    load_fallocate();
    if (!tracked_fd(fd) || fds[fd].kind != 1)
        return real_fallocate(fd, mode, off, len);
    return falloc_common(fd, mode, off, len, false);
}

int fallocate64(int fd, int mode, off_t off, off_t len) __attribute__((alias("fallocate")));

int posix_fallocate(int fd, off_t off, off_t len)
{
    load_posix_fallocate();
    if (!tracked_fd(fd) || fds[fd].kind != 1)
        return real_posix_fallocate(fd, off, len);
    return falloc_common(fd, 0, off, len, true);
}

int posix_fallocate64(int fd, off_t off, off_t len) __attribute__((alias("posix_fallocate")));

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    load_mmap();
    if (!tracked_fd(fd) || fds[fd].kind != 1)
        return real_mmap(addr, len, prot, flags, fd, off);
    pthread_mutex_lock(&cs.mu);
    int e = maybe_fail("mmap", fds[fd].name);
    void *p;
    if (e) {
        errno = e;
        p = MAP_FAILED;
    } else {
        p = real_mmap(addr, len, prot, flags, fd, off);
        if (p != MAP_FAILED && (flags & MAP_SHARED) && (prot & PROT_WRITE) &&
            cs.nmaps < CS_MAXMAPS) {
            char path[64];
            snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
            int mfd = real_open(path, O_RDONLY | O_CLOEXEC);
            cs.maps[cs.nmaps++] = (mapping){p, len, fds[fd].uid, mfd};
        }
    }
    int saved = errno;
    pthread_mutex_unlock(&cs.mu);
    errno = saved;
    return p;
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
    __attribute__((alias("mmap")));

int munmap(void *addr, size_t len)
{
    load_munmap();
    if (cs.on) {
        pthread_mutex_lock(&cs.mu);
        for (int i = 0; i < cs.nmaps; i++)
            if (cs.maps[i].addr == addr) {
                if (cs.maps[i].fd >= 0)
                    real_close(cs.maps[i].fd);
                cs.maps[i] = cs.maps[--cs.nmaps];
                break;
            }
        pthread_mutex_unlock(&cs.mu);
    }
    return real_munmap(addr, len);
}

int msync(void *addr, size_t len, int flags)
{
    load_msync();
    if (!cs.on || !(flags & MS_SYNC))
        return real_msync(addr, len, flags);
    pthread_mutex_lock(&cs.mu);
    for (int i = 0; i < cs.nmaps; i++) {
        mapping *m = &cs.maps[i];
        if ((char *)addr >= m->addr && (char *)addr < m->addr + m->len && m->fd >= 0) {
            char name[32];
            snprintf(name, sizeof name, "uid%llu", (unsigned long long)m->uid);
            int r = do_sync("msync", m->fd, 1, m->uid, name);
            int saved = errno;
            pthread_mutex_unlock(&cs.mu);
            errno = saved;
            return r == 0 && cs.real_sync ? real_msync(addr, len, flags) : r;
        }
    }
    pthread_mutex_unlock(&cs.mu);
    return real_msync(addr, len, flags);
}

static int sync_common(int fd, const char *op)
{
    pthread_mutex_lock(&cs.mu);
    int r = do_sync(op, fd, fds[fd].kind, fds[fd].uid, fds[fd].kind == 2 ? "." : fds[fd].name);
    int saved = errno;
    pthread_mutex_unlock(&cs.mu);
    errno = saved;
    return r;
}

int fsync(int fd)
{
    load_fsync();
    if (!tracked_fd(fd))
        return real_fsync(fd);
    return sync_common(fd, "fsync");
}

int fdatasync(int fd)
{
    load_fdatasync();
    if (!tracked_fd(fd))
        return real_fdatasync(fd);
    return sync_common(fd, "fdatasync");
}

/* rename in (or into, or out of) the directory. */
static int rename_common(int odir, const char *old, int ndir, const char *new, unsigned flags,
                         int how)
{
    char oname[NAME_MAX + 1], nname[NAME_MAX + 1];
    int ok = classify(odir, old, oname) == 1, nk = classify(ndir, new, nname) == 1, r;

    if (!ok && !nk) {
        if (how == 0)
            return real_rename(old, new);
        if (how == 1)
            return real_renameat(odir, old, ndir, new);
        return real_renameat2(odir, old, ndir, new, flags);
    }
    pthread_mutex_lock(&cs.mu);
    const char *label = ok ? oname : nname;
    long long n = count_event("rename", label);
    int e = maybe_fail("rename", label);
    if (e) {
        errno = e;
        r = -1;
    } else if (how == 0) {
        r = real_rename(old, new);
    } else if (how == 1) {
        r = real_renameat(odir, old, ndir, new);
    } else {
        r = real_renameat2(odir, old, ndir, new, flags);
    }
    int saved = errno;
    if (r == 0) {
        int i = ok ? find(cs.cur, cs.ncur, oname) : -1;
        uint64_t uid = i >= 0 ? cs.cur[i].uid : ++cs.next_uid;
        if (ok) {
            drop(cs.cur, &cs.ncur, oname);
            for (int fd = 0; fd < fd_high; fd++) /* open fds now name the new name */
                if (fds[fd].kind == 1 && fds[fd].uid == uid)
                    snprintf(fds[fd].name, sizeof fds[fd].name, "%s", nk ? nname : "(gone)");
            if (nk) {
                put(cs.cur, &cs.ncur, nname, uid);
                linef(cs.dirops_fd, "rename %s %s\n", oname, nname);
            } else {
                linef(cs.dirops_fd, "unlink %s\n", oname);
            }
        } else {
            put(cs.cur, &cs.ncur, nname, uid);
            linef(cs.dirops_fd, "create %llu %s\n", (unsigned long long)uid, nname);
        }
    }
    maybe_cut(n, "rename", label);
    pthread_mutex_unlock(&cs.mu);
    errno = saved;
    return r;
}

int rename(const char *old, const char *new)
{
    load_rename();
    return rename_common(AT_FDCWD, old, AT_FDCWD, new, 0, 0);
}

int renameat(int odir, const char *old, int ndir, const char *new)
{
    load_renameat();
    return rename_common(odir, old, ndir, new, 0, 1);
}

int renameat2(int odir, const char *old, int ndir, const char *new, unsigned flags)
{
    load_renameat2();
    return rename_common(odir, old, ndir, new, flags, 2);
}

static int unlink_common(int dirfd, const char *path, int flags, bool at)
{
    char name[NAME_MAX + 1];
    if (classify(dirfd, path, name) != 1 || (flags & AT_REMOVEDIR))
        return at ? real_unlinkat(dirfd, path, flags) : real_unlink(path);
    pthread_mutex_lock(&cs.mu);
    long long n = count_event("unlink", name);
    int e = maybe_fail("unlink", name), r;
    if (e) {
        errno = e;
        r = -1;
    } else {
        r = at ? real_unlinkat(dirfd, path, flags) : real_unlink(path);
    }
    int saved = errno;
    if (r == 0) {
        drop(cs.cur, &cs.ncur, name);
        linef(cs.dirops_fd, "unlink %s\n", name);
    }
    maybe_cut(n, "unlink", name);
    pthread_mutex_unlock(&cs.mu);
    errno = saved;
    return r;
}

int unlink(const char *path)
{
    load_unlink();
    return unlink_common(AT_FDCWD, path, 0, false);
}

int unlinkat(int dirfd, const char *path, int flags)
{
    load_unlinkat();
    return unlink_common(dirfd, path, flags, true);
}
