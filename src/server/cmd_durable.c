/*
 * cmd_durable.c — WAITAOF numlocal numreplicas timeout (Redis 7.2): wait until every write the
 * connection made before it is durable, so a client can run --sync everysec and ask for
 * durability where it matters.
 *
 * The connection's latest write batch has a position (c->last_pos, kvs.h "Positions"). If the
 * engine's durable position has reached it, WAITAOF answers at once; else it asks the engine for
 * a sync now (kvs_sync_soon: everysec need not wait for its tick) and the connection blocks —
 * no reading, no parsing, as a blocked Redis client — on its loop's waiting list. The durable
 * position growing (the loop's durable_async, conn_durable_wakeup) answers it; the loop's
 * wait_timer, ticking every WAIT_TICK_MS while anyone waits, ends it at its timeout.
 *
 * The reply is Redis's: [numlocal, numreplicas] acknowledged — [1, 0] once durable, [0, 0] at a
 * timeout that came first. There are no replicas: numreplicas > 0 waits for the timeout (0:
 * forever, as Redis would), then answers with what is durable. Inside MULTI it does not wait (it
 * answers with what is durable when EXEC replies), as Redis's does not either.
 */
#include <limits.h>

#include "server/cmd.h"
#include "util/clock.h"
#include "util/dlist.h"
#include "util/invariant.h"

#define WAIT_TICK_MS 10

static void reply_counts(conn *c, bool local)
{
    resp_array(&c->out, 2);
    resp_int(&c->out, local);
    resp_int(&c->out, 0);
}

static void on_wait_tick(uv_timer_t *t)
{
    waitaof_wakeup(t->data);
}

static void wait_list(conn *c, bool on)
{
    worker *w = c->w;

    if (on == c->waiting)
        return;
    STAT_ADD(w->stats.blocked, on ? 1 : (uint64_t)-1); /* INFO's blocked_clients */
    if (on) {
        DLIST_PUSH(w->waiting, c, wait_prev, wait_next);
        if (!uv_is_active((uv_handle_t *)&w->wait_timer))
            uv_timer_start(&w->wait_timer, on_wait_tick, WAIT_TICK_MS, WAIT_TICK_MS);
    } else {
        DLIST_UNLINK(w->waiting, c, wait_prev, wait_next);
        if (!w->waiting)
            uv_timer_stop(&w->wait_timer);
    }
    c->waiting = on;
}

void waitaof_forget(conn *c)
{
    wait_list(c, false);
}

void waitaof_wakeup(worker *w)
{
    uint64_t now = clock_usec();

    KVS_ASSERT(worker_on_loop(w));
    for (conn *c = w->waiting, *next; c; c = next) {
        next = c->wait_next;
        bool local = durable_reached(c->srv, c->wait_pos);
        if (!(local && !c->wait_replicas) && !(c->wait_until && now >= c->wait_until))
            continue;
        wait_list(c, false);
        reply_counts(c, local);
        conn_flush(c);
        conn_resume(c);
    }
}

void cmd_waitaof(conn *c, int argc, const char **argv, const size_t *lens)
{
    long long numlocal, numreplicas, timeout;

    (void)argc;
    if (!redis_str2ll(argv[1], lens[1], &numlocal) || !redis_str2ll(argv[2], lens[2], &numreplicas))
        return (void)resp_error(&c->out, "%s", ERR_NOT_INT);
    if (!redis_str2ll(argv[3], lens[3], &timeout))
        return (void)resp_error(&c->out, "ERR timeout is not an integer or out of range");
    if (timeout < 0)
        return (void)resp_error(&c->out, "ERR timeout is negative");
    if (numlocal < 0 || numreplicas < 0)
        return (void)resp_error(&c->out, "ERR value is out of range, must be positive");
    bool local = durable_reached(c->srv, c->last_pos);
    if (c->in_exec || c->close_after_flush || ((local || numlocal == 0) && numreplicas == 0))
        return reply_counts(c, local);
    if (!local && kvs_sync_soon(c->srv->db) < 0)
        return engine_error(c, "WAITAOF", KVS_ESYNC);
    c->wait_pos = c->last_pos; /* the reply says whether it is durable, whatever numlocal asked */
    c->wait_replicas = numreplicas > 0;
    uint64_t now = clock_usec(); /* monotonic, in µs: a timeout never ends a moment early */
    if (timeout == 0)
        c->wait_until = 0;
    else if ((uint64_t)timeout > (UINT64_MAX - now) / 1000)
        c->wait_until = UINT64_MAX;
    else
        c->wait_until = now + (uint64_t)timeout * 1000;
    wait_list(c, true);
}
