/*
 * loop.c — the loop threads.
 *
 * Each worker runs its own libuv loop. The acceptor (server.c) hands it sockets through a small
 * queue under a mutex and a uv_async wake-up; the worker adopts them (conn_accept) on its own
 * thread. Batches a connection sent to the engine pool come back through a second wake-up
 * (jobs_async). Stopping is the first wake-up with the stop flag set: the worker stops reading,
 * waits for its batches still on the pool, lets each connection write what it has queued
 * (bounded by a timer), closes everything, and its loop ends when the last handle is closed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/conn.h"
#include "util/array.h"
#include "util/invariant.h"
#include "util/log.h"

#define STOP_DRAIN_MS 2000

static void on_stop_timeout(uv_timer_t *t)
{
    worker *w = t->data;
    while (w->conns)
        conn_close(w->conns);
}

kvs_pool *server_pool(server *s)
{
    return s->pool;
}

void conn_job_done(conn *c);

/* The jobs handle closes once stopping and nothing is on the pool: then the loop can end. */
static void maybe_close_jobs(worker *w)
{
    KVS_ASSERT(worker_on_loop(w)); /* jobs_pending and stopping are the loop thread's */
    if (w->stopping && w->jobs_pending == 0 && !uv_is_closing((uv_handle_t *)&w->jobs_async))
        uv_close((uv_handle_t *)&w->jobs_async, NULL);
}

static void on_durable(uv_async_t *a)
{
    conn_durable_wakeup(a->data);
}

void server_on_durable(void *ctx)
{
    server *s = ctx;

    pthread_mutex_lock(&s->durable_mu);
    for (int i = 0; i < s->nworkers; i++)
        if (s->workers[i].durable_open)
            uv_async_send(&s->workers[i].durable_async);
    pthread_mutex_unlock(&s->durable_mu);
}

/* The end of a loop turn (before it waits for more): the writes it held replies for get their
 * sync now, one for all of them (the engine's sync_on_request) — asked for at the first of them,
 * it would cover only that one and the rest would wait for the next. */
static void on_turn_end(uv_prepare_t *p)
{
    worker *w = p->data;

    if (!w->sync_asked)
        return;
    w->sync_asked = false;
    kvs_sync_soon(w->srv->db); /* a fence: kvs_durable says so to the holds */
}

static void on_jobs(uv_async_t *a)
{
    worker *w = a->data;
    job *done;

    pthread_mutex_lock(&w->mu);
    done = w->done;
    w->done = NULL;
    pthread_mutex_unlock(&w->mu);
    while (done) {
        job *next = done->next; /* done may be freed with its connection */
        conn_job_done(done->c);
        done = next;
    }
    maybe_close_jobs(w);
}

static void worker_begin_stop(worker *w)
{
    KVS_ASSERT(worker_on_loop(w));
    if (w->stopping)
        return;
    w->stopping = true;
    for (conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        uv_read_stop((uv_stream_t *)&c->tcp);
        conn_close_after_flush(c);
    }
    uv_timer_init(&w->loop, &w->stop_timer);
    w->stop_timer.data = w;
    uv_timer_start(&w->stop_timer, on_stop_timeout, STOP_DRAIN_MS, 0);
    uv_unref((uv_handle_t *)&w->stop_timer);
    uv_close((uv_handle_t *)&w->wake, NULL);
    maybe_close_jobs(w);
}

void worker_post_kill(worker *w, uint64_t id)
{
    pthread_mutex_lock(&w->mu);
    if (ARR_RESERVE(w->kills, w->capkills, w->nkills + 1) == 0)
        w->kills[w->nkills++] = id;
    pthread_mutex_unlock(&w->mu);
    uv_async_send(&w->wake);
}

/* CLIENT KILLs posted by other loops: each connection still open is closed here, its thread. */
static void run_kills(worker *w, const uint64_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (conn *c = w->conns; c; c = c->next)
            if (c->id == ids[i]) {
                conn_close(c);
                break;
            }
}

static void on_wake(uv_async_t *a)
{
    worker *w = a->data;
    int *fds;
    uint64_t *kills;
    size_t n, nkills;
    bool stop;

    pthread_mutex_lock(&w->mu);
    fds = w->fds;
    n = w->nfds;
    w->fds = NULL;
    w->nfds = w->capfds = 0;
    kills = w->kills;
    nkills = w->nkills;
    w->kills = NULL;
    w->nkills = w->capkills = 0;
    stop = w->stop;
    pthread_mutex_unlock(&w->mu);
    info_loop_turn(w);
    run_kills(w, kills, nkills);
    free(kills);
    for (size_t i = 0; i < n; i++) {
        __atomic_sub_fetch(&w->srv->handing, 1, __ATOMIC_RELAXED);
        if (stop)
            close(fds[i]);
        else
            conn_accept(w, fds[i]);
    }
    free(fds);
    if (stop)
        worker_begin_stop(w);
}

static void *worker_main(void *arg)
{
    worker *w = arg;

    w->loop_thread = pthread_self(); /* before any callback can ask */
    w->loop_thread_set = true;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* every connection is closed: no more holds to flush */
    pthread_mutex_lock(&w->srv->durable_mu);
    w->durable_open = false;
    pthread_mutex_unlock(&w->srv->durable_mu);
    uv_close((uv_handle_t *)&w->durable_async, NULL);
    uv_close((uv_handle_t *)&w->wait_timer, NULL);
    uv_close((uv_handle_t *)&w->turn_end, NULL);
    if (w->stopping)
        uv_close((uv_handle_t *)&w->stop_timer, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    return NULL;
}

int workers_start(server *s)
{
    int n = s->cfg->threads;
    worker *ws = calloc((size_t)n, sizeof *ws);

    if (!ws)
        return -1;
    pthread_mutex_lock(&s->durable_mu); /* server_on_durable reads them */
    s->workers = ws;
    pthread_mutex_unlock(&s->durable_mu);
    for (int i = 0; i < n; i++) {
        worker *w = &s->workers[i];
        w->srv = s;
        w->index = i;
        pthread_mutex_init(&w->mu, NULL);
        pthread_mutex_init(&w->hist_mu, NULL);
        kb_hist_init(&w->commit_hist);
        if (info_loop_init(w) < 0 || uv_loop_init(&w->loop) < 0 || uv_async_init(&w->loop, &w->wake, on_wake) < 0 ||
            uv_async_init(&w->loop, &w->jobs_async, on_jobs) < 0 ||
            uv_async_init(&w->loop, &w->durable_async, on_durable) < 0)
            return -1;
        w->wake.data = w;
        w->jobs_async.data = w;
        w->durable_async.data = w;
        uv_unref((uv_handle_t *)&w->durable_async); /* never keeps the loop alive by itself */
        uv_timer_init(&w->loop, &w->wait_timer);
        w->wait_timer.data = w;
        uv_unref((uv_handle_t *)&w->wait_timer);
        uv_prepare_init(&w->loop, &w->turn_end);
        w->turn_end.data = w;
        uv_prepare_start(&w->turn_end, on_turn_end);
        uv_unref((uv_handle_t *)&w->turn_end);
        w->durable_open = true; /* seen once nworkers counts w (under durable_mu) */
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            LOG_ERROR("cannot start loop thread %d", i);
            return -1;
        }
        char name[16];
        snprintf(name, sizeof name, "kvs-loop-%d", i % 1000);
        pthread_setname_np(w->thread, name); /* best effort: for top, perf and /proc only */
        pthread_mutex_lock(&s->durable_mu);
        s->nworkers++;
        pthread_mutex_unlock(&s->durable_mu);
    }
    return 0;
}

void workers_hand(server *s, int fd)
{
    worker *w = &s->workers[s->next_worker++ % (uint32_t)s->nworkers];

    pthread_mutex_lock(&w->mu);
    if (ARR_RESERVE(w->fds, w->capfds, w->nfds + 1) < 0) {
        pthread_mutex_unlock(&w->mu);
        close(fd);
        return;
    }
    w->fds[w->nfds++] = fd;
    __atomic_add_fetch(&s->handing, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&w->mu);
    uv_async_send(&w->wake);
}

void workers_stop(server *s)
{
    for (int i = 0; i < s->nworkers; i++) {
        worker *w = &s->workers[i];
        pthread_mutex_lock(&w->mu);
        w->stop = true;
        pthread_mutex_unlock(&w->mu);
        uv_async_send(&w->wake);
    }
    for (int i = 0; i < s->nworkers; i++) {
        worker *w = &s->workers[i];
        pthread_join(w->thread, NULL);
        uv_loop_close(&w->loop);
        pthread_mutex_destroy(&w->mu);
        pthread_mutex_destroy(&w->hist_mu);
        free(w->fds);
        free(w->kills);
        info_loop_fini(w);
    }
    pthread_mutex_lock(&s->durable_mu); /* the engine's sync thread may still call */
    free(s->workers);
    s->workers = NULL;
    s->nworkers = 0;
    pthread_mutex_unlock(&s->durable_mu);
}
