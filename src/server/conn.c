/*
 * conn.c — one client connection: read, parse, dispatch, write.
 *
 * Input: libuv reads straight into the query buffer (alloc_cb hands out its free tail, sized for
 * the bulk being read when the parser knows it). Every complete command in it is parsed and run
 * in order; the bytes of finished commands are dropped once per read. Output: replies are encoded
 * into the connection's obuf and written with one uv_write (a writev) at a time; whatever is
 * produced while a write is in flight goes out with the next one, so replies always leave in
 * request order.
 *
 * Held replies (sync always): see below, before conn_flush.
 *
 * Limits: a query buffer past max_query, or output past max_output that the client is not reading
 * (more than one reply's worth pending), closes the connection with a log line; a protocol error
 * is answered with "-ERR Protocol error: ..." and the connection closes after the reply, as in
 * Redis. No client can make the server hold more than those bounds for it.
 */
#include "server/conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/array.h"
#include "util/clock.h"
#include "util/dlist.h"
#include "util/invariant.h"
#include "util/log.h"
#include "util/net.h"

#define READ_CHUNK 65536
#define STACK_ARGS 16

/* Name c's peer in c->peer (left empty if it cannot be had); loopback: is it local? */
static void peer_name(conn *c, bool *loopback)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;

    *loopback = false;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0 &&
        net_addr_name((struct sockaddr *)&ss, c->peer, sizeof c->peer) == 0)
        *loopback = net_is_loopback((struct sockaddr *)&ss);
    len = sizeof ss;
    if (uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
        net_addr_name((struct sockaddr *)&ss, c->laddr, sizeof c->laddr);
}

void batch_clear(batch *b)
{
    while (b->kept) {
        batch_block *k = b->kept;
        b->kept = k->next;
        free(k);
    }
    b->nops = b->ncmds = 0;
    b->arg_bytes = 0;
    b->rc = 0;
    b->pos = 0;
}

void batch_free(batch *b)
{
    batch_clear(b);
    free(b->ops);
    free(b->cmds);
    *b = (batch){0};
}

/* The failing thread's detail of a failed batch, for its replies (a printf per batch else). */
static void batch_note_error(batch *b)
{
    if (b->rc < 0)
        snprintf(b->err, sizeof b->err, "%s", kvs_last_error());
    else
        b->err[0] = '\0';
}

static void hold_free(conn *c)
{
    while (c->hold_head) {
        held *h = c->hold_head;
        c->hold_head = h->next;
        ochunks_free(h->chunks);
        free(h);
    }
    c->hold_tail = NULL;
    c->held_bytes = 0;
}

static void conn_free(conn *c)
{
    hold_free(c);
    ochunks_free(c->wchunks);
    obuf_free(&c->out);
    resp_parser_free(&c->parser);
    batch_free(&c->batch);
    tx_end(c);
    batch_free(&c->tx);
    free(c->name);
    free(c->q);
    free(c);
}

static void on_close(uv_handle_t *h)
{
    conn *c = (conn *)h;

    c->handle_closed = true;
    if (!c->job_running) /* else the job's completion frees it */
        conn_free(c);
}

static void hold_list(conn *c, bool on);

bool durable_reached(server *s, uint64_t pos)
{
    uint64_t durable = 0;
    return kvs_durable(s->db, &durable) == 0 && durable >= pos;
}

void conn_close(conn *c)
{
    KVS_ASSERT(worker_on_loop(c->w));
    if (c->closing)
        return;
    c->closing = true;
    hold_list(c, false);
    waitaof_forget(c);
    pthread_mutex_lock(&c->srv->clients_mu);
    DLIST_UNLINK(c->w->conns, c, prev, next);
    pthread_mutex_unlock(&c->srv->clients_mu);
    __atomic_sub_fetch(&c->srv->st.clients, 1, __ATOMIC_RELAXED);
    LOG_DEBUG("connection %llu from %s closed", (unsigned long long)c->id, c->peer);
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_write(uv_write_t *req, int status)
{
    conn *c = req->data;

    ochunks_free(c->wchunks);
    c->wchunks = NULL;
    STAT_ADD(c->w->stats.net_out, c->inflight);
    c->inflight = 0;
    c->writing = false;
    if (c->closing)
        return;
    if (status < 0) {
        LOG_DEBUG("connection %llu: write failed: %s", (unsigned long long)c->id,
                  uv_strerror(status));
        conn_close(c);
        return;
    }
    conn_flush(c);
}

/*
 * Held replies (sync always). A batch of writes is applied at once (kvs_write_pos) and its
 * replies are put together at once, but they stay here until the engine's durable position
 * reaches the batch's; so does everything the connection answers after them, so replies keep
 * their order. The connection goes on reading and running commands meanwhile — a pipelining
 * client is not held up — until HOLD_READ_MAX bytes are held; then it stops reading until they
 * go. The engine's sync thread wakes the loops (server_on_durable, durable_async), which flush
 * what is now durable (conn_durable_wakeup). A failed sync fences the store: those writes will
 * never be durable, and the connection is closed with their replies unsent — the client gets
 * no acknowledgement of them. Reads are answered at once (Redis's rule: a write is visible
 * before it is acknowledged), except behind a held reply of the same connection.
 */
#define HOLD_READ_MAX (4u << 20)

/* Replies waiting for a sync rather than for the client: the holds, and what queued behind
 * them. They bound reading (HOLD_READ_MAX), not the client's unread output (max_output). */
static size_t waiting_bytes(const conn *c)
{
    return c->held_bytes + (c->hold_head ? c->out.bytes : 0);
}

/* A write batch's commit is done (its replies may go): how long it took, since t0. */
static void commit_time(worker *w, uint64_t t0)
{
    uint64_t now = clock_usec();

    pthread_mutex_lock(&w->hist_mu);
    kb_hist_add(&w->commit_hist, (now > t0 ? now - t0 : 0) * 1000);
    pthread_mutex_unlock(&w->hist_mu);
}

/* Link the chunk list more after the list that *end ends (or starts) at; returns its new end. */
static ochunk **chunks_append(ochunk **end, ochunk *more)
{
    while (*end)
        end = &(*end)->next;
    *end = more;
    while (*end)
        end = &(*end)->next;
    return end;
}

static void hold_list(conn *c, bool on)
{
    worker *w = c->w;

    if (on == c->hold_listed)
        return;
    if (on)
        DLIST_PUSH(w->holding, c, hold_prev, hold_next);
    else
        DLIST_UNLINK(w->holding, c, hold_prev, hold_next);
    c->hold_listed = on;
}

/* Hold every reply now in c->out until the durable position reaches pos (0: only behind the
 * holds before it). False when out of memory (c is then closed). */
static bool hold_take(conn *c, uint64_t pos, uint64_t t0)
{
    size_t bytes = c->out.bytes;

    if (bytes == 0)
        return true;
    held *t = c->hold_tail;
    if (!t || t->pos < pos) {
        if (!(t = calloc(1, sizeof *t))) {
            conn_close(c);
            return false;
        }
        t->pos = pos;
        t->t0 = t0;
        if (c->hold_tail)
            c->hold_tail->next = t;
        else
            c->hold_head = t;
        c->hold_tail = t;
    }
    chunks_append(&t->chunks, obuf_take(&c->out));
    t->bytes += bytes;
    c->held_bytes += bytes;
    hold_list(c, true);
    return true;
}

/* Move the holds whose position is durable onto *end (a chunk list), adding their bytes to
 * *bytes. False if the store is fenced with holds left: c is closed. */
static bool hold_release(conn *c, ochunk ***end, size_t *bytes)
{
    uint64_t durable = 0;
    int rc = kvs_durable(c->srv->db, &durable);

    while (c->hold_head && c->hold_head->pos <= durable) {
        held *h = c->hold_head;
        c->hold_head = h->next;
        if (h->t0)
            commit_time(c->w, h->t0);
        *end = chunks_append(*end, h->chunks);
        *bytes += h->bytes;
        c->held_bytes -= h->bytes;
        free(h);
    }
    if (!c->hold_head) {
        c->hold_tail = NULL;
        hold_list(c, false);
    } else if (rc == KVS_ESYNC) {
        LOG_WARN("client %s: a sync failed; closing with %zu bytes of replies to writes that "
                 "are not durable", c->peer, c->held_bytes);
        conn_close(c);
        return false;
    }
    return true;
}

#define FLUSH_STACK_BUFS 16

/* Send what may go: the holds now durable, then (once no hold is left) c->out. First with a
 * write straight from here (uv_try_write: a reply written whole costs one syscall, where
 * uv_write's request also re-armed the socket's epoll entry, one epoll_ctl per reply); what the
 * socket does not take goes out through uv_write, and on_write calls back here for the rest. */
void conn_flush(conn *c)
{
    size_t n = 0, i = 0, bytes = 0;
    ochunk *list = NULL, **end = &list;
    uv_buf_t stack[FLUSH_STACK_BUFS], *bufs = stack;

    KVS_ASSERT(worker_on_loop(c->w));
    if (c->closing || c->writing)
        return;
    if (c->hold_head && !hold_release(c, &end, &bytes))
        return;
    if (!c->hold_head && c->out.bytes) { /* what came after the holds goes once they have */
        bytes += c->out.bytes;
        *end = obuf_take(&c->out);
    }
    if (bytes == 0) {
        if (c->close_after_flush && !c->hold_head)
            conn_close(c);
        return;
    }
    for (ochunk *k = list; k; k = k->next)
        n++;
    if (n > FLUSH_STACK_BUFS && !(bufs = malloc(n * sizeof *bufs))) {
        ochunks_free(list);
        conn_close(c);
        return;
    }
    for (ochunk *k = list; k; k = k->next)
        bufs[i++] = uv_buf_init(k->data, (unsigned)k->len);
    int r = uv_try_write((uv_stream_t *)&c->tcp, bufs, (unsigned)n);
    if (r < 0 && r != UV_EAGAIN) {
        LOG_DEBUG("connection %llu: write failed: %s", (unsigned long long)c->id, uv_strerror(r));
        i = n; /* nothing for uv_write: close below */
    } else {
        size_t done = r > 0 ? (size_t)r : 0;
        STAT_ADD(c->w->stats.net_out, done);
        for (i = 0; i < n && done >= bufs[i].len; i++)
            done -= bufs[i].len;
        if (i < n) {
            bufs[i].base += done;
            bufs[i].len -= done;
        }
    }
    if (i == n) { /* all written, or failed */
        obuf_recycle(&c->out, list);
        if (bufs != stack)
            free(bufs);
        if (r < 0 && r != UV_EAGAIN)
            conn_close(c);
        else
            conn_flush(c); /* close_after_flush, or what the holds still keep */
        return;
    }
    c->inflight = 0; /* counted as they go: on_write adds the rest */
    for (size_t k = i; k < n; k++)
        c->inflight += bufs[k].len;
    c->wchunks = list;
    c->wreq.data = c;
    c->writing = true;
    /* uv_write copies the buffer descriptors: bufs may go once it returns */
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, bufs + i, (unsigned)(n - i), on_write) < 0) {
        c->writing = false;
        c->wchunks = NULL;
        ochunks_free(list);
        conn_close(c);
    }
    if (bufs != stack)
        free(bufs);
}

void conn_close_after_flush(conn *c)
{
    c->close_after_flush = true;
    conn_flush(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn *c = (conn *)h;
    size_t want = READ_CHUNK, cap = c->qcap;

    (void)suggested;
    KVS_ASSERT(c->batch.ncmds == 0); /* no pending batch points into q while it may move */
    /* A bulk announced as large gets room as its bytes come, doubling: never all of a length
     * the client merely claims. */
    if (c->parser.need > c->qlen && c->parser.need - c->qlen > want) {
        size_t rest = c->parser.need - c->qlen;
        want = rest < c->qcap ? rest : c->qcap;
    }
    if (ARR_RESERVE(c->q, c->qcap, c->qlen + want) < 0) {
        *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS; the read closes */
        return;
    }
    if (c->qcap != cap) /* grown (a large bulk): INFO's recent largest input buffer */
        stats_buffers(c, clock_nsec());
    *buf = uv_buf_init(c->q + c->qlen, (unsigned)(c->qcap - c->qlen));
}

/* Output just produced: a client with more than that pending past max_output is not reading its
 * replies, and is cut off (one reply larger than the limit, with nothing else pending, may still
 * go). before: bytes pending before; replies: how many were just added. */
static bool output_within_limit(conn *c, size_t before, size_t replies)
{
    size_t after = c->inflight + (c->hold_head ? 0 : c->out.bytes); /* waiting_bytes: not unread */

    if (c->closing || (before == 0 && replies <= 1) || after <= __atomic_load_n(&c->srv->cfg->max_output, __ATOMIC_RELAXED))
        return true;
    LOG_WARN("client %s: output buffer past its limit (%zu bytes unread); closing", c->peer, after);
    conn_close(c);
    return false;
}

/* The arguments of the command just parsed, as the arrays commands take: on the stack when they
 * fit, else allocated (args_free). */
typedef struct args {
    const command *cmd; /* argv[0] looked up */
    const char **argv;
    size_t *lens;
    const char *sargv[STACK_ARGS];
    size_t slens[STACK_ARGS];
} args;

static bool args_get(conn *c, args *a)
{
    const resp_parser *p = &c->parser;

    a->argv = a->sargv;
    a->lens = a->slens;
    if (p->argc > STACK_ARGS) {
        a->argv = malloc(p->argc * sizeof *a->argv);
        a->lens = malloc(p->argc * sizeof *a->lens);
        if (!a->argv || !a->lens) {
            free(a->argv);
            free(a->lens);
            return false;
        }
    }
    for (size_t i = 0; i < p->argc; i++) {
        a->argv[i] = resp_arg_ptr(p, c->q + c->qpos, i);
        a->lens[i] = p->argv[i].len;
    }
    a->cmd = cmd_lookup(a->argv[0], a->lens[0]);
    return true;
}

static void args_free(args *a)
{
    if (a->argv != a->sargv) {
        free(a->argv);
        free(a->lens);
    }
}

/* Run one parsed command, then check what it left in the output. */
static bool run_command(conn *c, const args *a)
{
    size_t before = c->out.bytes + c->inflight;

    cmd_dispatch(c, a->cmd, (int)c->parser.argc, a->argv, a->lens);
    return output_within_limit(c, before, 1) && !c->closing;
}

/* A batch is committed: its replies, in order, then it is emptied. False if c was closed. */
static bool batch_done(conn *c)
{
    size_t before = c->out.bytes + c->inflight, replies = c->batch.ncmds;
    uint64_t pos = c->batch.pos;
    bool hold = pos && c->srv->hold_replies && !durable_reached(c->srv, pos);

    if (pos > c->last_pos)
        c->last_pos = pos;
    uint64_t t0 = c->batch.t0;
    if (hold && !hold_take(c, 0, 0)) /* the replies before the batch's: not held for it */
        return false;
    cmd_batch_reply(c);
    batch_clear(&c->batch);
    if (hold && !hold_take(c, pos, t0))
        return false;
    if (hold)
        c->w->sync_asked = true; /* at the turn's end (loop.c) */
    if (pos && !hold)
        commit_time(c->w, t0);
    return output_within_limit(c, before, replies);
}

/* On a pool thread: commit a connection's batch. */
static void job_run(void *arg)
{
    job *j = arg;
    conn *c = j->c;
    worker *w = c->w;

    KVS_ASSERT(c->job_running); /* the loop leaves c alone until job_done */
    c->batch.rc = c->batch.nops ? kvs_write_pos(c->srv->db, c->batch.ops, c->batch.nops,
                                                &c->batch.pos)
                                : 0;
    batch_note_error(&c->batch);
    pthread_mutex_lock(&w->mu);
    j->next = w->done;
    w->done = j;
    pthread_mutex_unlock(&w->mu);
    uv_async_send(&w->jobs_async);
}

static void process(conn *c);

/* Commit the gathered writes: inline, or on the pool (then c waits for job_done).
 * Returns false if c must not go on parsing now. */
static bool run_batch(conn *c)
{
    if (c->batch.ncmds == 0)
        return true;
    watch_touch(c->srv, &c->batch);
    c->batch.t0 = clock_usec();
    kvs_pool *pool = server_pool(c->srv);
    if (pool) {
        c->job.c = c;
        c->job_running = true;
        c->w->jobs_pending++;
        uv_read_stop((uv_stream_t *)&c->tcp);
        if (kvs_pool_spawn(pool, job_run, &c->job) == 0)
            return false;
        c->job_running = false; /* the pool refused: commit here after all */
        c->w->jobs_pending--;
    }
    c->batch.rc = c->batch.nops ? kvs_write_pos(c->srv->db, c->batch.ops, c->batch.nops,
                                                &c->batch.pos)
                                : 0;
    batch_note_error(&c->batch);
    return batch_done(c);
}

/* On the loop thread: a batch is back from the pool. */
void conn_job_done(conn *c)
{
    KVS_ASSERT(worker_on_loop(c->w) && c->job_running);
    c->job_running = false;
    c->w->jobs_pending--;
    if (c->handle_closed) {
        conn_free(c);
        return;
    }
    if (!batch_done(c))
        return;
    conn_resume(c);
}

/* Parse and run every complete command in the buffer, in order. */
static void process_input(conn *c)
{
    size_t used;

    while (!c->closing && !c->close_after_flush && !c->job_running && c->qpos < c->qlen &&
           waiting_bytes(c) <= HOLD_READ_MAX && !c->waiting) {
        int r = resp_parse(&c->parser, c->q + c->qpos, c->qlen - c->qpos, &used);
        if (r == RESP_AGAIN)
            break;
        if (r == RESP_EPROTO) {
            if (!run_batch(c))
                break; /* the error is found again, in order, once the batch is back */
            LOG_DEBUG("client %s: protocol error: %s", c->peer, c->parser.err);
            resp_error(&c->out, "ERR Protocol error: %s", c->parser.err);
            conn_close_after_flush(c);
            return;
        }
        if (c->parser.argc > 0) {
            args a;
            if (!args_get(c, &a)) {
                conn_close(c);
                return;
            }
            /* inline arguments live in the parser's arena, which the next parse overwrites */
            bool transient = c->parser.last_kind != '*';
            bool queued = cmd_batch_add(c, a.cmd, (int)c->parser.argc, a.argv, a.lens,
                                        transient);
            if (!queued && !run_batch(c)) {
                args_free(&a);
                break; /* this command runs after the batch: parsed again then */
            }
            if (a.cmd)
                stats_call(c, a.cmd);
            bool ok = queued || run_command(c, &a);
            args_free(&a);
            if (!ok)
                return;
        }
        c->qpos += used;
    }
    if (c->closing || c->job_running)
        return;
    if (!run_batch(c))
        return;
    if (c->waiting) /* WAITAOF: no reading until it answers (conn_resume) */
        uv_read_stop((uv_stream_t *)&c->tcp);
    if (c->closing)
        return;
    if (c->qpos > 0) { /* drop finished commands; parser positions are relative: still right */
        KVS_ASSERT(c->batch.ncmds == 0); /* committed: no op points into q */
        memmove(c->q, c->q + c->qpos, c->qlen - c->qpos);
        c->qlen -= c->qpos;
        c->qpos = 0;
    }
    if (c->qlen > __atomic_load_n(&c->srv->cfg->max_query, __ATOMIC_RELAXED)) {
        LOG_WARN("client %s: query buffer past its limit (%zu bytes); closing", c->peer, c->qlen);
        conn_close(c);
        return;
    }
    if (waiting_bytes(c) > HOLD_READ_MAX) { /* until the holds go (after a job, read again) */
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->hold_paused = true;
    }
    if (c->qcap > 4 * READ_CHUNK && c->qlen < READ_CHUNK) { /* give back a big bulk's room */
        char *q = realloc(c->q, READ_CHUNK);
        if (q) {
            c->q = q;
            c->qcap = READ_CHUNK;
        }
    }
    conn_flush(c);
}

/* process_input, its commands timed (stats.h). c is not freed inside: a close frees it from
 * its close callback, later. */
static void process(conn *c)
{
    stats_pass_begin(c);
    process_input(c);
    stats_pass_end(c);
}

/* Read and parse again after a pause (a batch on the pool, WAITAOF, too much held). */
void conn_resume(conn *c)
{
    if (c->closing || c->job_running || c->waiting)
        return;
    if (!c->w->stopping && !c->close_after_flush && !c->hold_paused &&
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
        conn_close(c);
        return;
    }
    process(c);
}

/* The durable position grew: send what it released, and read again where holds had stopped
 * it. */

void conn_durable_wakeup(worker *w)
{
    KVS_ASSERT(worker_on_loop(w));
    waitaof_wakeup(w);
    for (conn *c = w->holding, *next; c; c = next) {
        next = c->hold_next;
        conn_flush(c);
        if (c->closing || !c->hold_paused || waiting_bytes(c) > HOLD_READ_MAX)
            continue;
        c->hold_paused = false;
        conn_resume(c);
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = (conn *)s;

    (void)buf;
    __atomic_store_n(&c->last_ms, clock_wall_ms(), __ATOMIC_RELAXED);
    if (nread < 0) {
        if (nread != UV_EOF)
            LOG_DEBUG("client %s: read: %s", c->peer, uv_strerror((int)nread));
        conn_close(c);
        return;
    }
    c->qlen += (size_t)nread;
    STAT_ADD(c->w->stats.net_in, (uint64_t)nread);
    process(c);
}

/* Refuse a client before it is served: one error line, then close. */
static void refuse(conn *c, const char *msg)
{
    __atomic_add_fetch(&c->srv->st.rejected, 1, __ATOMIC_RELAXED);
    obuf_add(&c->out, msg, strlen(msg));
    conn_close_after_flush(c);
}

void conn_accept(worker *w, int fd)
{
    server *s = w->srv;
    conn *c = calloc(1, sizeof *c);
    bool loopback;

    KVS_ASSERT(worker_on_loop(w));
    if (!c) {
        close(fd);
        return;
    }
    if (uv_tcp_init(&w->loop, &c->tcp) < 0) {
        free(c);
        close(fd);
        return;
    }
    c->w = w;
    c->srv = s;
    c->id = __atomic_add_fetch(&s->next_conn_id, 1, __ATOMIC_RELAXED);
    resp_parser_init(&c->parser, &s->cfg->limits);
    obuf_init(&c->out);
    c->out.errors = &w->stats.errors;
    bool password = server_password_required(s);
    c->authed = !password;
    c->parser.unauth = !c->authed;
    c->fd = fd;
    c->created_ms = c->last_ms = clock_wall_ms();
    pthread_mutex_lock(&s->clients_mu);
    DLIST_PUSH(w->conns, c, prev, next);
    pthread_mutex_unlock(&s->clients_mu);
    __atomic_add_fetch(&s->st.clients, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&s->st.connections_received, 1, __ATOMIC_RELAXED);
    if (uv_tcp_open(&c->tcp, fd) < 0) {
        close(fd);
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    peer_name(c, &loopback);
    LOG_DEBUG("accepted connection %llu from %s", (unsigned long long)c->id, c->peer);
    if (__atomic_load_n(&s->st.clients, __ATOMIC_RELAXED) >
        __atomic_load_n(&s->maxclients, __ATOMIC_RELAXED)) { /* CONFIG SET changes it */
        refuse(c, KVS_ERR_MAXCLIENTS);
        return;
    }
    if (s->beyond_loopback && !loopback && !password) {
        refuse(c, "-DENIED kvs is running in protected mode: it is bound to a non-loopback "
                  "address and no password is set. Connect from loopback, or restart it with "
                  "--requirepass.\r\n");
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close(c);
}
