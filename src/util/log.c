/*
 * log.c — formatting and dispatch of library log lines (see log.h).
 *
 * The handler and its context are read together under a mutex so that a handler swap never
 * pairs one handler with another's context; logging is rare (recovery, errors), not a hot path.
 */
#include "util/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static int log_level = KVS_LOG_WARN;
static kvs_log_fn log_fn;
static void *log_ctx;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

const char *kvs_log_level_name(int level)
{
    switch (level) {
    case KVS_LOG_DEBUG: return "debug";
    case KVS_LOG_INFO: return "info";
    case KVS_LOG_WARN: return "warning";
    case KVS_LOG_ERROR: return "error";
    default: return "log";
    }
}

void kvs_log_set_level(int level)
{
    __atomic_store_n(&log_level, level, __ATOMIC_RELAXED);
}

void kvs_log_set_handler(kvs_log_fn fn, void *ctx)
{
    pthread_mutex_lock(&log_mu);
    log_fn = fn;
    log_ctx = ctx;
    pthread_mutex_unlock(&log_mu);
}

int kvs_log_enabled(int level)
{
    return level >= __atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

static void log_stderr(int level, const char *msg)
{
    struct timespec ts;
    struct tm tm;
    char when[32];

    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ld %s: %s\n", when, ts.tv_nsec / 1000000, kvs_log_level_name(level),
            msg);
}

void kvs_logf(int level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    if (!kvs_log_enabled(level))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    pthread_mutex_lock(&log_mu);
    if (log_fn)
        log_fn(level, msg, log_ctx);
    else
        log_stderr(level, msg);
    pthread_mutex_unlock(&log_mu);
}
