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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

void tu_assert_value(kvs_t *db, const char *key, const char *want)
{
    void *val;
    size_t len;
    int rc = kvs_get(db, key, strlen(key), &val, &len);

    if (!want) {
        if (rc != KVS_ENOTFOUND)
            fail_msg("key %s: expected absent, got rc %d", key, rc);
        return;
    }
    if (rc != 0)
        fail_msg("key %s: expected '%s', got rc %d (%s)", key, want, rc, kvs_last_error());
    assert_int_equal(len, strlen(want));
    assert_memory_equal(val, want, len);
    kvs_free(val);
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
