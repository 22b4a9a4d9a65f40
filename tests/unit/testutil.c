/*
 * testutil.c — see testutil.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "testutil.h"

#include <dirent.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/log/logdb.h"

extern char **environ;

char *tu_mkdtemp(void)
{
    const char *base = getenv("TMPDIR");
    char *p;

    if (!base || !*base)
        base = "/tmp";
    if (asprintf(&p, "%s/kvs-test-XXXXXX", base) < 0)
        return NULL;
    assert_non_null(mkdtemp(p));
    return p;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void tu_rm_rf(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

uint64_t tu_dir_size(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    uint64_t total = 0;
    char path[PATH_MAX];
    struct stat st;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            total += (uint64_t)st.st_size;
    }
    closedir(d);
    return total;
}

const char *tu_path(const char *dir, const char *name)
{
    static char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

int64_t tu_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

unsigned char *tu_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *b;
    long n;

    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

void tu_spill(const char *path, const void *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, len, f), len);
    fclose(f);
}

void tu_flip_byte(const char *path, size_t off)
{
    size_t len;
    unsigned char *b = tu_slurp(path, &len);
    assert_true(off < len);
    b[off] ^= 0x5a;
    tu_spill(path, b, len);
    free(b);
}

int tu_try_open(const char *dir, const kvs_options *opt, kvs_t **out)
{
    kvs_t *db;
    int rc;

    *out = NULL;
    assert_int_equal(kvs_create(&db), 0);
    if (opt)
        assert_int_equal(kvs_configure(db, opt), 0);
    rc = kvs_open(db, dir);
    if (rc < 0) {
        kvs_close(db);
        return rc;
    }
    *out = db;
    return 0;
}

kvs_t *tu_open(const char *dir, const kvs_options *opt)
{
    kvs_t *db;
    int rc = tu_try_open(dir, opt, &db);

    if (rc < 0)
        fail_msg("kvs_open(%s): %s: %s", dir, kvs_strerror(rc), kvs_last_error());
    return db;
}

int64_t tu_compact_every_other(kvs_t *db)
{
    logdb *l = kvs_engine_impl(db);
    seg *v[256];
    uint32_t n = 0;

    pthread_mutex_lock(&l->wmu);
    for (uint32_t i = 0; i < l->nsegs && n < 256; i += 2)
        if (l->segs[i] != l->active)
            v[n++] = l->segs[i];
    pthread_mutex_unlock(&l->wmu);
    return ldb_compact_segments(l, v, n);
}

int tu_run_self(char *const argv[])
{
    pid_t pid;
    int status;

    assert_int_equal(posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void tu_reopen(kvs_t **db, const char *dir, const kvs_options *opt)
{
    assert_int_equal(kvs_close(*db), 0);
    *db = NULL;
    *db = tu_open(dir, opt);
}

void tu_reopen_rebuilt(kvs_t **db, const char *dir, const kvs_options *opt)
{
    assert_int_equal(kvs_close(*db), 0);
    *db = NULL;
    assert_int_equal(unlink(tu_path(dir, "INDEX")), 0);
    *db = tu_open(dir, opt);
}

/* ---- the engine under test ---- */

const char *tu_engine = "kvs";

const char *tu_engine_from_args(int argc, char **argv)
{
    static char name[128];
    const char *prog = argc > 0 ? strrchr(argv[0], '/') : NULL;

    if (argc > 1)
        tu_engine = argv[1];
    if (strcmp(tu_engine, "kvs") != 0 && strcmp(tu_engine, "lmdb") != 0) {
        fprintf(stderr, "usage: %s [kvs|lmdb]: no engine '%s'\n", argv[0], tu_engine);
        exit(2);
    }
    prog = prog ? prog + 1 : argc > 0 ? argv[0] : "test";
    snprintf(name, sizeof name, "%s [%s]", prog, tu_engine);
    return name;
}

const char *tu_other_engine(void)
{
    return strcmp(tu_engine, "kvs") == 0 ? "lmdb" : "kvs";
}

void tu_require_engine(const char *name)
{
    if (strcmp(tu_engine, name) != 0)
        skip();
}

void tu_options(kvs_options *opt)
{
    kvs_options_init(opt);
    opt->engine = tu_engine;
}

/* ---- fixture ---- */

int tu_setup(void **state)
{
    tu_fixture *f = calloc(1, sizeof *f);

    assert_non_null(f);
    f->dir = tu_mkdtemp();
    tu_options(&f->opt);
    *state = f;
    return 0;
}

int tu_setup_open(void **state)
{
    tu_setup(state);
    tu_fx_open(*state);
    return 0;
}

int tu_teardown(void **state)
{
    tu_fixture *f = *state;

    kvs_close(f->db);
    tu_rm_rf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

void tu_fx_open(tu_fixture *f)
{
    f->db = tu_open(f->dir, &f->opt);
}

void tu_fx_reopen(tu_fixture *f)
{
    kvs_options opt = f->opt;

    opt.engine = NULL;
    tu_reopen(&f->db, f->dir, &opt);
    assert_string_equal(tu_stats(f->db).engine, tu_engine);
}

void tu_check_twice(tu_fixture *f, void (*check)(kvs_t *db))
{
    check(f->db);
    tu_fx_reopen(f);
    check(f->db);
}

/* ---- writing and checking ---- */

kvs_stats tu_stats(kvs_t *db)
{
    kvs_stats st;

    assert_int_equal(kvs_stats_get(db, &st), 0);
    return st;
}

void tu_set(kvs_t *db, const char *key, const char *val)
{
    tu_set_bin(db, key, strlen(key), val, strlen(val));
}

void tu_set_bin(kvs_t *db, const void *key, size_t klen, const void *val, size_t vlen)
{
    int rc = kvs_set(db, key, klen, val, vlen);

    if (rc != 0)
        fail_msg("set of a %zu-byte key: %s: %s", klen, kvs_strerror(rc), kvs_last_error());
}

/* tu_assert_bin, naming the key by what in a failure. */
static void assert_held(kvs_t *db, const void *key, size_t klen, const void *want, size_t wlen,
                        const char *what)
{
    void *val = &val; /* anything but NULL, so that the test sees get clear it */
    size_t len = 7;
    int rc = kvs_get(db, key, klen, &val, &len);

    if (!want) {
        if (rc != KVS_ENOTFOUND)
            fail_msg("%s: expected absent, got rc %d", what, rc);
        assert_null(val);
        return;
    }
    if (rc != 0)
        fail_msg("%s: get: %s: %s", what, kvs_strerror(rc), kvs_last_error());
    assert_non_null(val);
    assert_int_equal(len, wlen);
    if (memcmp(val, want, wlen) != 0)
        fail_msg("%s: the value differs from what was set", what);
    assert_int_equal(((unsigned char *)val)[len], 0);
    kvs_free(val);
}

void tu_assert_bin(kvs_t *db, const void *key, size_t klen, const void *want, size_t wlen)
{
    char what[48];

    snprintf(what, sizeof what, "a %zu-byte key", klen);
    assert_held(db, key, klen, want, wlen, what);
}

void tu_assert_value(kvs_t *db, const char *key, const char *want)
{
    char what[96];

    snprintf(what, sizeof what, "key %.80s", key);
    assert_held(db, key, strlen(key), want, want ? strlen(want) : 0, what);
}

unsigned char *tu_filled(size_t n, unsigned seed)
{
    unsigned char *p = malloc(n ? n : 1);

    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 31 + 7 + seed * 101);
    return p;
}

static void key_of(char *k, size_t kcap, char *v, size_t vcap, int i)
{
    snprintf(k, kcap, "key-%06d", i);
    snprintf(v, vcap, "value-%d-%08x", i, (unsigned)i * 2654435761u);
}

int tu_put_keys(kvs_t *db, int n)
{
    char k[32], v[48];
    int rc = 0;

    for (int i = 0; i < n && rc == 0; i++) {
        key_of(k, sizeof k, v, sizeof v, i);
        rc = kvs_set(db, k, strlen(k), v, strlen(v));
    }
    return rc;
}

void tu_assert_keys(kvs_t *db, int n)
{
    char k[32], v[48];

    for (int i = 0; i < n; i++) {
        key_of(k, sizeof k, v, sizeof v, i);
        tu_assert_value(db, k, v);
    }
}

static pthread_mutex_t cap_mu = PTHREAD_MUTEX_INITIALIZER;
static char *cap_buf;
static size_t cap_len;

static void cap_fn(int level, const char *msg, void *ctx)
{
    (void)level;
    (void)ctx;
    size_t n = strlen(msg);
    pthread_mutex_lock(&cap_mu);
    char *b = realloc(cap_buf, cap_len + n + 2);
    if (b) {
        cap_buf = b;
        memcpy(cap_buf + cap_len, msg, n);
        cap_buf[cap_len + n] = '\n';
        cap_len += n + 1;
        cap_buf[cap_len] = '\0';
    }
    pthread_mutex_unlock(&cap_mu);
}

void tu_log_capture(int level)
{
    tu_log_clear();
    kvs_log_set_level(level);
    kvs_log_set_handler(cap_fn, NULL);
}

const char *tu_log_text(void)
{
    return cap_buf ? cap_buf : "";
}

void tu_log_clear(void)
{
    pthread_mutex_lock(&cap_mu);
    free(cap_buf);
    cap_buf = NULL;
    cap_len = 0;
    pthread_mutex_unlock(&cap_mu);
}

void tu_log_release(void)
{
    kvs_log_set_handler(NULL, NULL);
    kvs_log_set_level(KVS_LOG_WARN);
    tu_log_clear();
}
