/*
 * syncer.c — the thread of syncer.h: a fixed schedule on the monotonic clock, a condition
 * variable that a stop or a kick wakes at once, fn called with no lock held.
 */
#include "util/syncer.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "kvs.h"
#include "util/err.h"
#include "util/log.h"

static void add_us(struct timespec *t, unsigned long us)
{
    t->tv_sec += (time_t)(us / 1000000);
    t->tv_nsec += (long)(us % 1000000) * 1000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

static void add_ms(struct timespec *t, unsigned ms)
{
    add_us(t, (unsigned long)ms * 1000);
}

static bool later(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec > b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec > b->tv_nsec);
}

/* Wait (under mu) for the next tick, a kick or the stop; a tick that passes moves *next on by
 * an interval. Returns false once stopping. */
static bool wait_turn(syncer *s, struct timespec *next)
{
    while (!s->stopping && !s->kicked) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, next) == ETIMEDOUT) {
            add_ms(next, s->interval_ms);
            break;
        }
    }
    s->kicked = false;
    return !s->stopping;
}

/* Linux's nice is per thread: PRIO_PROCESS with the thread's id. Relative to the process's. */
static void lower_priority(int nice)
{
    pid_t tid = gettid();
    errno = 0;
    int now = getpriority(PRIO_PROCESS, (id_t)tid);
    int want = (errno ? 0 : now) + nice;

    if (want > 19)
        want = 19;
    if (setpriority(PRIO_PROCESS, (id_t)tid, want) < 0)
        LOG_WARN("cannot lower the priority of a background thread to nice %d: %s", want,
                 strerror(errno));
}

static void *syncer_main(void *arg)
{
    syncer *s = arg;
    struct timespec next, now;
    bool fenced = false;

    if (s->nice > 0)
        lower_priority(s->nice);

    clock_gettime(CLOCK_MONOTONIC, &next);
    add_ms(&next, s->interval_ms);
    pthread_mutex_lock(&s->mu);
    while (wait_turn(s, &next)) {
        if (fenced)
            continue;
        pthread_mutex_unlock(&s->mu);
        fenced = s->fn(s->ctx) == KVS_ESYNC;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (later(&now, &next)) { /* overran the next tick: skip what it missed */
            next = now;
            add_ms(&next, s->interval_ms);
        }
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int syncer_start(syncer *s, const char *what, unsigned interval_ms, syncer_fn fn, void *ctx)
{
    return syncer_start_nice(s, what, interval_ms, fn, ctx, 0);
}

int syncer_start_nice(syncer *s, const char *what, unsigned interval_ms, syncer_fn fn,
                      void *ctx, int nice)
{
    pthread_condattr_t ca;
    char name[16];
    int e;

    *s = (syncer){.interval_ms = interval_ms, .fn = fn, .ctx = ctx, .nice = nice};
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    if ((e = pthread_create(&s->thread, NULL, syncer_main, s)) != 0) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        return kvs_seterr(KVS_ENOMEM, "cannot start the %s thread: %s", what, strerror(e));
    }
    snprintf(name, sizeof name, "kvs-%s", what);
    pthread_setname_np(s->thread, name); /* best effort: for top, perf and /proc only */
    s->running = true;
    return 0;
}

bool syncer_pause(syncer *s, unsigned long usec)
{
    struct timespec until;
    bool go_on;

    clock_gettime(CLOCK_MONOTONIC, &until);
    add_us(&until, usec);
    pthread_mutex_lock(&s->mu);
    while (!s->stopping && pthread_cond_timedwait(&s->cv, &s->mu, &until) != ETIMEDOUT)
        ;
    go_on = !s->stopping;
    pthread_mutex_unlock(&s->mu);
    return go_on;
}

void syncer_kick(syncer *s)
{
    pthread_mutex_lock(&s->mu);
    s->kicked = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void syncer_stop(syncer *s)
{
    if (!s->running)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    s->running = false;
}
