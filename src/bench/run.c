/*
 * run.c — kvs-bench's driver: the benchmarks of bench.h, their threads, and db_bench's report.
 *
 * A benchmark runs as T measured threads (and, for readwhilewriting, one writer beside them)
 * that wait until all of them are started, then each time every operation with CLOCK_MONOTONIC into its own
 * histogram and counts what it did. When all are back, the counts and histograms are merged and
 * one line is printed:
 *
 *   readrandom   :       2.887 micros/op 346353 ops/sec;   38.3 MB/s (315978 of 500000 found) (p50 1.9 us, p99 7.2 us, p999 31.0 us)
 *
 * The first failing operation of any thread stops every thread of the benchmark; kb_run then
 * reports it on stderr and returns 1 without running the rest.
 *
 * Each thread works through a session of its own (db.h), opened before the start and closed
 * when the thread is done, so the engine's per-thread state (LMDB's read transaction) is set up
 * outside the timed operations.
 *
 * The store's directory: --db, or a new /tmp/kvs-bench-XXXXXX removed at the end. A fresh store
 * (at the start unless --use_existing_db 1, and before fillseq and fillrandom) is made by closing
 * the store, deleting everything inside the directory and opening it again. A --db directory
 * that is neither empty nor a store of one of the engines (kb_dir_holds_store) is refused
 * rather than emptied, so that a mistyped --db cannot delete someone's files.
 */
#include "bench/bench.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench/db.h"
#include "util/hist.h"
#include "kvs.h"

enum kind { FILLSEQ, FILLRANDOM, OVERWRITE, READRANDOM, READSEQ, READWHILEWRITING, DELETERANDOM };

static const struct {
    const char *name;
    enum kind kind;
    int fresh; /* starts from an empty store */
} benches[] = {
    {"fillseq", FILLSEQ, 1},
    {"fillrandom", FILLRANDOM, 1},
    {"overwrite", OVERWRITE, 0},
    {"readrandom", READRANDOM, 0},
    {"readseq", READSEQ, 0},
    {"readwhilewriting", READWHILEWRITING, 0},
    {"deleterandom", DELETERANDOM, 0},
};
#define NBENCHES (sizeof benches / sizeof benches[0])

#define VALUE_BUF (1u << 20)

/* One benchmark in progress, shared by its threads. */
typedef struct run {
    const kb_config *cfg;
    kb_db *db;
    enum kind kind;
    const char *value_buf; /* the compressible bytes values are cut from */
    size_t value_buf_len;
    int go;           /* atomic: 1 once every thread is started (or start failed: see stop) */
    int readers_left; /* atomic: measured threads still running (the writer stops at 0) */
    int stop;         /* atomic: a thread failed, everyone stops */
} run;

typedef struct worker {
    pthread_t tid;
    run *r;
    kb_session *s;
    int writer;             /* readwhilewriting's background writer */
    uint64_t rng;           /* splitmix64 state */
    uint64_t first, count;  /* keys first.. (sequential kinds) and the operations to do */
    size_t value_pos;
    char *key;
    uint64_t done, found, bytes;
    uint64_t t_start, t_end; /* ns, CLOCK_MONOTONIC */
    int failed;
    char err[600];
    kb_hist hist;
} worker;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) (Lemire's multiply-shift; the bias is below 2^-40 for any n here). */
static uint64_t uniform(uint64_t *state, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)splitmix64(state) * n) >> 64);
}

/* key_size bytes of zero-padded decimal; kb_config_check made sure the digits fit. */
static void make_key(char *buf, size_t len, uint64_t k)
{
    char *p = buf + len;
    memset(buf, '0', len);
    while (k && p > buf) {
        *--p = (char)('0' + k % 10);
        k /= 10;
    }
}

static const char *next_value(worker *w)
{
    size_t len = w->r->cfg->value_size;
    if (w->value_pos + len > w->r->value_buf_len)
        w->value_pos = 0;
    const char *v = w->r->value_buf + w->value_pos;
    w->value_pos += len;
    return v;
}

/* db_bench's CompressibleString: pieces of 100 bytes whose first half is random printable text
 * and whose second half repeats it, so a compressor gets values to about half their size. */
static char *make_value_buf(size_t len, uint64_t seed)
{
    char *buf = malloc(len);
    uint64_t st = seed;

    if (!buf)
        return NULL;
    for (size_t off = 0; off < len; off += 100) {
        size_t piece = len - off < 100 ? len - off : 100, raw = piece / 2 ? piece / 2 : 1;
        for (size_t i = 0; i < raw; i++)
            buf[off + i] = (char)(' ' + uniform(&st, 95));
        for (size_t i = raw; i < piece; i++)
            buf[off + i] = buf[off + i % raw];
    }
    return buf;
}

static int worker_fail(worker *w)
{
    w->failed = 1;
    snprintf(w->err, sizeof w->err, "%s", kb_db_error());
    __atomic_store_n(&w->r->stop, 1, __ATOMIC_RELAXED);
    return -1;
}

static int stopped(const run *r)
{
    return __atomic_load_n(&r->stop, __ATOMIC_RELAXED);
}

/* One timed operation on key k; kind says which. */
static int one_op(worker *w, enum kind kind, uint64_t k)
{
    run *r = w->r;
    size_t ks = r->cfg->key_size, vs = r->cfg->value_size, vlen;
    const char *val = NULL;
    int rc;

    make_key(w->key, ks, k);
    if (kind == FILLSEQ || kind == FILLRANDOM || kind == OVERWRITE)
        val = next_value(w);
    uint64_t t0 = now_ns();
    switch (kind) {
    case FILLSEQ:
    case FILLRANDOM:
    case OVERWRITE:
        rc = kb_put(w->s, w->key, ks, val, vs);
        break;
    case DELETERANDOM:
        rc = kb_delete(w->s, w->key, ks);
        break;
    default:
        rc = kb_get(w->s, w->key, ks, &vlen);
        break;
    }
    kb_hist_add(&w->hist, now_ns() - t0);
    if (rc < 0)
        return worker_fail(w);
    w->done++;
    if (val) {
        w->bytes += ks + vs;
    } else if (kind == DELETERANDOM) {
        w->found += rc == 1;
        w->bytes += ks;
    } else if (rc == 1) {
        w->found++;
        w->bytes += ks + vlen;
    }
    return 0;
}

/* readseq through an ordered iterator (KB_ITERATES): the entries of the thread's range of keys,
 * [first, first + count), which the iterator was positioned at. */
static void scan(worker *w, kb_iter *it)
{
    size_t ks = w->r->cfg->key_size, klen, vlen;
    int last = w->first + w->count >= w->r->cfg->num; /* no end key: it may not fit key_size */
    const char *key;

    make_key(w->key, ks, w->first + w->count);
    for (uint64_t i = 0; i < w->count && !stopped(w->r); i++) {
        uint64_t t0 = now_ns();
        int rc = kb_iter_next(it, &key, &klen, &vlen);
        kb_hist_add(&w->hist, now_ns() - t0);
        if (rc < 0) {
            worker_fail(w);
            return;
        }
        if (rc == 0 || (!last && klen == ks && memcmp(key, w->key, ks) >= 0))
            break;
        w->done++;
        w->found++;
        w->bytes += klen + vlen;
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    run *r = w->r;
    uint64_t n = r->cfg->num;
    kb_iter *it = NULL;
    int rc = 0;

    if (kb_session_open(r->db, &w->s) < 0) {
        worker_fail(w);
    } else if (r->kind == READSEQ) {
        make_key(w->key, r->cfg->key_size, w->first);
        if (!(it = kb_iter_new(w->s, w->key, r->cfg->key_size, &rc)) && rc < 0)
            worker_fail(w);
    }
    while (!__atomic_load_n(&r->go, __ATOMIC_ACQUIRE))
        sched_yield();
    w->t_start = now_ns();
    if (w->writer) {
        while (__atomic_load_n(&r->readers_left, __ATOMIC_ACQUIRE) > 0 && !stopped(r))
            if (one_op(w, OVERWRITE, uniform(&w->rng, n)) < 0)
                break;
    } else if (it) {
        scan(w, it);
    } else if (w->s) {
        for (uint64_t i = 0; i < w->count && !stopped(r); i++) {
            int seq = r->kind == FILLSEQ || r->kind == READSEQ;
            if (one_op(w, r->kind, seq ? w->first + i : uniform(&w->rng, n)) < 0)
                break;
        }
    }
    w->t_end = now_ns();
    if (!w->writer)
        __atomic_sub_fetch(&r->readers_left, 1, __ATOMIC_RELEASE);
    kb_iter_free(it);
    kb_session_close(w->s);
    return NULL;
}

/* ---- the store's directory ---- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    if (ftw->level == 0)
        return 0; /* keep the directory itself */
    return remove(path) < 0 ? -1 : 0;
}

/* Delete everything inside dir. */
static int empty_dir(const char *dir)
{
    if (nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) < 0) {
        fprintf(stderr, "kvs-bench: cannot empty %s: %s\n", dir, strerror(errno));
        return -1;
    }
    return 0;
}

/* May kvs-bench empty dir? Yes if it is empty or holds a store. */
static int is_store_or_empty(const char *dir)
{
    DIR *d;
    struct dirent *e;
    int empty = 1;

    if (kb_dir_holds_store(dir))
        return 1;
    if (!(d = opendir(dir)))
        return errno == ENOENT;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            empty = 0;
    closedir(d);
    return empty;
}

static int make_dir(const char *dir)
{
    struct stat st;

    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "kvs-bench: cannot create %s: %s\n", dir, strerror(errno));
        return -1;
    }
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "kvs-bench: %s is not a directory\n", dir);
        return -1;
    }
    return 0;
}

static int open_db(const kb_config *cfg, const char *dir, kb_db **db)
{
    if (kb_db_open(db, cfg->engine, dir, cfg->sync, cfg->use_existing_db, cfg->pin_slice) < 0) {
        fprintf(stderr, "kvs-bench: %s: %s\n", cfg->engine, kb_db_error());
        return -1;
    }
    return 0;
}

static int close_db(kb_db **db)
{
    int rc = kb_db_close(*db);
    *db = NULL;
    if (rc < 0)
        fprintf(stderr, "kvs-bench: %s\n", kb_db_error());
    return rc;
}

/* ---- configuration and header ---- */

void kb_config_init(kb_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->engine = "kvs";
    cfg->benchmarks = "fillseq,fillrandom,overwrite,readrandom,readseq,readwhilewriting,"
                      "deleterandom";
    cfg->num = 1000000;
    cfg->value_size = 100;
    cfg->key_size = 16;
    cfg->threads = 1;
    cfg->pin_slice = 1;
}

static int find_bench(const char *name, size_t len)
{
    for (size_t i = 0; i < NBENCHES; i++)
        if (strlen(benches[i].name) == len && memcmp(benches[i].name, name, len) == 0)
            return (int)i;
    return -1;
}

int kb_config_check(const kb_config *cfg, char *why, size_t cap)
{
    unsigned digits = 1;

    for (uint64_t v = cfg->num > 0 ? cfg->num - 1 : 0; v >= 10; v /= 10)
        digits++;
    if (kb_engine_available(cfg->engine) == 0)
        return snprintf(why, cap, "unknown engine '%s' (kvs, kvs-lmdb, lmdb or rocksdb)",
                        cfg->engine), -1;
    if (kb_engine_available(cfg->engine) < 0)
        return snprintf(why, cap, "not built with RocksDB (install librocksdb-dev, rebuild)"), -1;
    if (cfg->num == 0)
        return snprintf(why, cap, "--num must be at least 1"), -1;
    if (cfg->threads < 1 || cfg->threads > KB_MAX_THREADS)
        return snprintf(why, cap, "--threads must be 1..%d", KB_MAX_THREADS), -1;
    if (cfg->key_size < digits || cfg->key_size > KB_MAX_KEY)
        return snprintf(why, cap, "--key_size must be %u..%d for --num %llu", digits, KB_MAX_KEY,
                        (unsigned long long)cfg->num), -1;
    if (cfg->value_size > KB_MAX_VALUE)
        return snprintf(why, cap, "--value_size must be at most %u", KB_MAX_VALUE), -1;
    for (const char *p = cfg->benchmarks; *p;) {
        size_t len = strcspn(p, ",");
        if (len && find_bench(p, len) < 0)
            return snprintf(why, cap, "unknown benchmark '%.*s'", (int)len, p), -1;
        p += len + (p[len] == ',');
    }
    return 0;
}

static void print_cpu(FILE *out)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512], model[256] = "unknown";
    int n = 0;

    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "processor", 9) == 0)
            n++;
        else if (strncmp(line, "model name", 10) == 0 && strchr(line, ':'))
            snprintf(model, sizeof model, "%s", strchr(line, ':') + 2);
    }
    fclose(f);
    model[strcspn(model, "\n")] = '\0';
    fprintf(out, "CPU:        %d * %s\n", n, model);
}

static void print_header(const kb_config *cfg, const char *dir, FILE *out)
{
    time_t t = time(NULL);
    char date[64];
    double raw = (double)(cfg->key_size + cfg->value_size) * (double)cfg->num / 1048576.0;

    strftime(date, sizeof date, "%a %b %e %H:%M:%S %Y", localtime(&t));
    fprintf(out, "kvs-bench:  version %s\n", KVS_VERSION_STRING);
    fprintf(out, "Engine:     %s (%s)\n", cfg->engine, kb_engine_version(cfg->engine));
    fprintf(out, "Date:       %s\n", date);
    print_cpu(out);
    fprintf(out, "Keys:       %zu bytes each\n", cfg->key_size);
    fprintf(out, "Values:     %zu bytes each (%zu bytes after compression)\n", cfg->value_size,
            cfg->value_size / 2);
    fprintf(out, "Entries:    %llu\n", (unsigned long long)cfg->num);
    fprintf(out, "Threads:    %u\n", cfg->threads);
    fprintf(out, "RawSize:    %.1f MB (estimated)\n", raw);
    fprintf(out, "Sync:       %d (%s)\n", cfg->sync,
            cfg->sync ? "every write synced" : "no per-write sync");
    fprintf(out, "Reads:      %s\n", cfg->pin_slice ? "pinned (--pin_slice 1: no copy)"
                                                     : "copied (--pin_slice 0)");
    fprintf(out, "Seed:       %llu\n", (unsigned long long)cfg->seed);
    fprintf(out, "DB path:    [%s]\n", dir);
    fprintf(out, "------------------------------------------------\n");
}

/* ---- one benchmark ---- */

static void print_line(const kb_config *cfg, const char *name, enum kind kind, worker *ws,
                       unsigned nw, FILE *out)
{
    uint64_t done = 0, want = 0, found = 0, bytes = 0, first = UINT64_MAX, last = 0, writes = 0;
    double busy = 0;
    kb_hist *h = malloc(sizeof *h);
    char msg[256] = "";

    if (!h)
        return;
    kb_hist_init(h);
    for (unsigned i = 0; i < nw; i++) {
        worker *w = &ws[i];
        if (w->writer) {
            writes += w->done;
            continue;
        }
        done += w->done;
        want += w->count;
        found += w->found;
        bytes += w->bytes;
        busy += (double)(w->t_end - w->t_start) * 1e-9;
        first = w->t_start < first ? w->t_start : first;
        last = w->t_end > last ? w->t_end : last;
        kb_hist_merge(h, &w->hist);
    }
    double elapsed = (double)(last - first) * 1e-9;
    if (elapsed <= 0)
        elapsed = 1e-9;
    unsigned caps = kb_engine_caps(cfg->engine);
    if (kind == READRANDOM || kind == READWHILEWRITING ||
        (kind == DELETERANDOM && (caps & KB_DELETE_TELLS)) || kind == READSEQ)
        snprintf(msg, sizeof msg, " (%llu of %llu found", (unsigned long long)found,
                 (unsigned long long)want);
    if (kind == READSEQ && !(caps & KB_ITERATES))
        snprintf(msg + strlen(msg), sizeof msg - strlen(msg),
                 "; point gets in key order: libkvs has no iterator");
    if (kind == READWHILEWRITING)
        snprintf(msg + strlen(msg), sizeof msg - strlen(msg), "; writer: %llu overwrites",
                 (unsigned long long)writes);
    if (msg[0])
        snprintf(msg + strlen(msg), sizeof msg - strlen(msg), ")");

    double p50 = kb_hist_percentile(h, 50) / 1e3, p99 = kb_hist_percentile(h, 99) / 1e3,
           p999 = kb_hist_percentile(h, 99.9) / 1e3;
    fprintf(out, "%-12s : %11.3f micros/op %ld ops/sec; %6.1f MB/s%s (p50 %.*f us, p99 %.*f us, "
            "p999 %.*f us)\n",
            name, done ? busy * 1e6 / (double)done : 0.0, (long)((double)done / elapsed),
            (double)bytes / 1048576.0 / elapsed, msg, p50 < 10 ? 2 : 1, p50, p99 < 10 ? 2 : 1,
            p99, p999 < 10 ? 2 : 1, p999);
    if (cfg->histogram)
        kb_hist_print(h, out);
    fflush(out);
    free(h);
}

static int run_bench(const kb_config *cfg, kb_db *db, int index, const char *value_buf,
                     size_t value_buf_len, FILE *out)
{
    enum kind kind = benches[index].kind;
    unsigned t = cfg->threads, nw = t + (kind == READWHILEWRITING);
    run r = {.cfg = cfg, .db = db, .kind = kind, .value_buf = value_buf,
             .value_buf_len = value_buf_len, .readers_left = (int)t};
    worker *ws = calloc(nw, sizeof *ws);
    int status = 0;
    unsigned started = 0;

    if (!ws) {
        fprintf(stderr, "kvs-bench: out of memory\n");
        return -1;
    }
    for (unsigned i = 0; i < nw; i++) {
        worker *w = &ws[i];
        w->r = &r;
        w->writer = i == t;
        w->count = cfg->num / t + (i < cfg->num % t);
        w->first = i * (cfg->num / t) + (i < cfg->num % t ? i : cfg->num % t);
        /* a sequence of its own for every (seed, benchmark, thread) */
        w->rng = cfg->seed ^ ((uint64_t)index << 48) ^ ((uint64_t)i * 0xd1b54a32d192ed03ull);
        splitmix64(&w->rng);
        w->value_pos = (size_t)uniform(&w->rng, value_buf_len);
        kb_hist_init(&w->hist);
        if (!(w->key = malloc(cfg->key_size))) {
            fprintf(stderr, "kvs-bench: out of memory\n");
            status = -1;
            break;
        }
    }
    for (; status == 0 && started < nw; started++) {
        int e = pthread_create(&ws[started].tid, NULL, worker_main, &ws[started]);
        if (e) {
            fprintf(stderr, "kvs-bench: cannot start a thread: %s\n", strerror(e));
            status = -1;
        }
    }
    if (status < 0)
        __atomic_store_n(&r.stop, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&r.go, 1, __ATOMIC_RELEASE);
    for (unsigned i = 0; i < started; i++)
        pthread_join(ws[i].tid, NULL);
    for (unsigned i = 0; i < started; i++)
        if (ws[i].failed) {
            fprintf(stderr, "kvs-bench: %s: %s: %s\n", benches[index].name, cfg->engine,
                    ws[i].err);
            status = -1;
            break;
        }
    if (status == 0)
        print_line(cfg, benches[index].name, kind, ws, nw, out);
    for (unsigned i = 0; i < nw; i++)
        free(ws[i].key);
    free(ws);
    return status;
}

int kb_run(const kb_config *cfg_in, FILE *out)
{
    kb_config cfg = *cfg_in;
    char tmpdir[] = "/tmp/kvs-bench-XXXXXX", why[256];
    const char *dir = cfg.db;
    char *value_buf = NULL;
    size_t value_buf_len = cfg.value_size > VALUE_BUF ? cfg.value_size : VALUE_BUF;
    kb_db *db = NULL;
    int status = 1;

    if (kb_config_check(&cfg, why, sizeof why) < 0) {
        fprintf(stderr, "kvs-bench: %s\n", why);
        return 2;
    }
    if (cfg.seed == 0)
        cfg.seed = now_ns() ^ ((uint64_t)getpid() << 32);
    if (!dir) {
        if (!mkdtemp(tmpdir)) {
            fprintf(stderr, "kvs-bench: cannot create %s: %s\n", tmpdir, strerror(errno));
            return 1;
        }
        dir = tmpdir;
    } else if (!cfg.use_existing_db && !is_store_or_empty(dir)) {
        fprintf(stderr, "kvs-bench: %s is neither empty nor a store; refusing to empty it\n",
                dir);
        return 1;
    }
    if (!(value_buf = make_value_buf(value_buf_len, 301))) {
        fprintf(stderr, "kvs-bench: out of memory\n");
        goto out;
    }
    if (make_dir(dir) < 0 || (!cfg.use_existing_db && empty_dir(dir) < 0))
        goto out;
    print_header(&cfg, dir, out);
    if (open_db(&cfg, dir, &db) < 0)
        goto out;
    for (const char *p = cfg.benchmarks; *p;) {
        size_t len = strcspn(p, ",");
        int b = len ? find_bench(p, len) : -1;
        p += len + (p[len] == ',');
        if (b < 0)
            continue;
        if (benches[b].fresh) {
            if (cfg.use_existing_db) {
                fprintf(out, "%-12s : skipped (--use_existing_db is true)\n", benches[b].name);
                continue;
            }
            if (close_db(&db) < 0 || empty_dir(dir) < 0 || open_db(&cfg, dir, &db) < 0)
                goto out;
        }
        if (run_bench(&cfg, db, b, value_buf, value_buf_len, out) < 0)
            goto out;
    }
    status = 0;
out:
    if (db && close_db(&db) < 0)
        status = 1;
    if (dir == tmpdir && (empty_dir(dir) < 0 || rmdir(dir) < 0))
        status = 1;
    free(value_buf);
    return status;
}
