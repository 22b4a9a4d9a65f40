/*
 * syncer.c — the thread of syncer.h: a fixed schedule on the monotonic clock, a condition
 * variable that a stop or a kick wakes at once, fn called with no lock held.
 */
#include "util/syncer.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "kvs.h"
#include "util/err.h"

static void add_ms(struct timespec *t, unsigned ms)
{
    t->tv_sec += ms / 1000;
    t->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
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

static void *syncer_main(void *arg)
{
    syncer *s = arg;
    struct timespec next, now;
    bool fenced = false;

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
    pthread_condattr_t ca;
    int e;

    *s = (syncer){.interval_ms = interval_ms, .fn = fn, .ctx = ctx};
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
    s->running = true;
    return 0;
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
