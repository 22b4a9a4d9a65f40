/*
 * async.c — the asynchronous connection, on a libuv loop the caller owns.
 *
 * RESP2 answers in order, so matching replies to callbacks needs no tags: each command pushes
 * its callback onto a FIFO ring (`q`) as its bytes go into the output buffer, and each whole
 * reply the parser produces pops the oldest one. A reply with nothing waiting for it means the
 * stream is out of step, which is a protocol error like any other.
 *
 * Writes: commands are encoded into `out`; when no write is in flight, `out` is handed to
 * uv_write as it stands and becomes `wbuf` (the two buffers swap), so everything issued while a
 * write is in flight goes out together in the next one. libuv writes at once when it can and
 * reports completion on a later loop iteration, which is what batches a burst of commands.
 *
 * Lifetime, the part libuv makes easy to get wrong: the handle is freed only in the close
 * callback of its uv_tcp_t, and libuv calls the callbacks of a pending connect or write (with
 * UV_ECANCELED) before that one, so they may always dereference the handle; they look at
 * `closing` first and do nothing more. kvsc_async_close delivers every outstanding user callback
 * itself, synchronously, so once it returns the user will hear nothing more from the handle —
 * the simplest rule for a caller tearing down its own state. Callbacks may re-enter the library
 * (issue commands, close); every loop that calls out pops its entry first and re-checks the
 * state after each call.
 *
 * A transport failure (`dead` ≠ 0) stops reading and fails every waiting callback with its code;
 * the socket itself stays open until kvsc_async_close, which the caller owes in every case.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "util/invariant.h"
#include "util/ring.h"

typedef struct waiter {
    kvsc_reply_cb cb;
    void *data;
} waiter;

struct kvsc_async {
    uv_tcp_t tcp;                 /* tcp.data, creq.data, wreq.data point back here */
    uv_connect_t creq;
    uv_write_t wreq;
    kvsc_async_connect_cb connect_cb;
    void *data;
    int connect_done;             /* the connect callback has been delivered */
    int up;                       /* connected and reading */
    int writing;                  /* wreq is in flight with wbuf */
    int dead;                     /* the transport failure, 0 while usable */
    int closing;                  /* kvsc_async_close was called */
    kvsc_buf out, wbuf, in;
    kvsc_parser rp;
    waiter *q;                    /* ring of callbacks waiting for replies, oldest at qhead */
    size_t qhead, qlen, qcap;
    char err[KVSC_ERRLEN];
};

/* Map a libuv error (a negative errno on Unix) to a KVSC_E* code. */
static int uv2kvsc(int uverr)
{
    return uverr == UV_EOF ? KVSC_ECLOSED : uverr == UV_ENOBUFS ? KVSC_ENOMEM : kvsc__errno(-uverr);
}

static waiter pop(kvsc_async *a)
{
    waiter w = a->q[a->qhead];

    a->qhead = (a->qhead + 1) % a->qcap;
    a->qlen--;
    return w;
}

/* Call every waiting callback with status; a callback may close the handle meanwhile, which
 * drains the rest itself. */
static void fail_waiters(kvsc_async *a, int status)
{
    while (a->qlen > 0) {
        waiter w = pop(a);
        if (w.cb)
            w.cb(a, status, NULL, w.data);
    }
}

static void fail_conn(kvsc_async *a, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail_conn(kvsc_async *a, int code, const char *fmt, ...)
{
    va_list ap;

    if (a->dead || a->closing)
        return;
    va_start(ap, fmt);
    vsnprintf(a->err, sizeof a->err, fmt, ap);
    va_end(ap);
    a->dead = code;
    if (a->up)
        uv_read_stop((uv_stream_t *)&a->tcp);
    a->up = 0;
    kvsc__parser_reset(&a->rp);
    fail_waiters(a, code);
}

static void on_write(uv_write_t *req, int status);

/* Hand the whole output buffer to libuv. Needs: up, not writing, bytes in out. */
static void start_write(kvsc_async *a)
{
    kvsc_buf t = a->wbuf;
    uv_buf_t b;
    int rc;

    KVS_ASSERT(a->up && !a->writing && a->out.pos < a->out.len);
    a->wbuf = a->out;
    a->out = t;
    b.base = a->wbuf.data + a->wbuf.pos;
    b.len = a->wbuf.len - a->wbuf.pos;
    if ((rc = uv_write(&a->wreq, (uv_stream_t *)&a->tcp, &b, 1, on_write)) < 0) {
        fail_conn(a, uv2kvsc(rc), "write: %s", uv_strerror(rc));
        return;
    }
    a->writing = 1;
}

static void on_write(uv_write_t *req, int status)
{
    kvsc_async *a = req->data;

    a->writing = 0;
    kvsc__buf_reset(&a->wbuf, KVSC_OUT_KEEP);
    if (a->closing || a->dead)
        return;
    if (status < 0)
        fail_conn(a, uv2kvsc(status), "write: %s", uv_strerror(status));
    else if (a->out.pos < a->out.len)
        start_write(a);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    kvsc_async *a = h->data;

    (void)suggested;
    if (a->in.pos == a->in.len)
        a->in.pos = a->in.len = 0;
    if (kvsc__buf_reserve(&a->in, KVSC_READ_CHUNK) < 0) {
        buf->base = NULL;  /* libuv then reports UV_ENOBUFS to on_read */
        buf->len = 0;
        return;
    }
    buf->base = a->in.data + a->in.len;
    buf->len = a->in.cap - a->in.len;
}

/* Parse what has arrived and hand each whole reply to the oldest waiting callback. */
static void deliver(kvsc_async *a)
{
    kvsc_reply *r;
    size_t used;
    int rc;

    while (!a->closing && !a->dead && a->in.pos < a->in.len) {
        rc = kvsc__parse(&a->rp, a->in.data + a->in.pos, a->in.len - a->in.pos, &used, &r);
        a->in.pos += used;
        if (rc < 0) {
            fail_conn(a, rc, "%s", a->rp.err);
            return;
        }
        if (rc == 0)
            return;
        if (a->qlen == 0) {
            kvsc_reply_free(r);
            fail_conn(a, KVSC_EPROTO, "the server sent a reply nobody asked for");
            return;
        }
        waiter w = pop(a);
        if (w.cb)
            w.cb(a, 0, r, w.data);
        kvsc_reply_free(r);  /* the reply was lent to the callback only */
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    kvsc_async *a = s->data;

    (void)buf;
    if (a->closing || a->dead || nread == 0)
        return;
    if (nread == UV_EOF) {
        if (kvsc__parser_busy(&a->rp) || a->in.pos < a->in.len)
            fail_conn(a, KVSC_EPROTO, "the server closed the connection in the middle of a reply");
        else
            fail_conn(a, KVSC_ECLOSED, "the server closed the connection");
        return;
    }
    if (nread < 0) {
        fail_conn(a, uv2kvsc((int)nread), "read: %s", uv_strerror((int)nread));
        return;
    }
    a->in.len += (size_t)nread;
    deliver(a);
}

/* The connection never came up (what failed, with libuv's error): the connect callback hears
 * it first, then every command already waiting. */
static void connect_failed(kvsc_async *a, const char *what, int uverr)
{
    a->dead = uv2kvsc(uverr);
    snprintf(a->err, sizeof a->err, "%s: %s", what, uv_strerror(uverr));
    if (a->connect_cb)
        a->connect_cb(a, a->dead, a->data);
    if (!a->closing)
        fail_waiters(a, a->dead);
}

static void on_connect(uv_connect_t *req, int status)
{
    kvsc_async *a = req->data;
    int rc;

    if (a->closing)
        return;  /* kvsc_async_close has told the user already */
    a->connect_done = 1;
    if (status < 0) {
        connect_failed(a, "connect", status);
        return;
    }
    uv_tcp_nodelay(&a->tcp, 1);
    if ((rc = uv_read_start((uv_stream_t *)&a->tcp, on_alloc, on_read)) < 0) {
        connect_failed(a, "read", rc);
        return;
    }
    a->up = 1;
    if (a->connect_cb)
        a->connect_cb(a, 0, a->data);
    if (!a->closing && !a->dead && !a->writing && a->out.pos < a->out.len)
        start_write(a);
}

static void on_close(uv_handle_t *h)
{
    kvsc_async *a = h->data;

    kvsc__parser_reset(&a->rp);
    kvsc__buf_free(&a->out);
    kvsc__buf_free(&a->wbuf);
    kvsc__buf_free(&a->in);
    free(a->q);
    free(a);
}

int kvsc_async_connect(uv_loop_t *loop, const char *addr, kvsc_async_connect_cb cb, void *data,
                       kvsc_async **out)
{
    char *terr = kvsc__tls_err();
    struct sockaddr_storage ss;
    socklen_t sslen;
    kvsc_async *a = NULL;
    int rc;

    terr[0] = '\0';
    if (out)
        *out = NULL;
    if (loop == NULL || out == NULL) {
        snprintf(terr, KVSC_ERRLEN, "kvsc_async_connect: loop and out are required");
        return KVSC_EINVAL;
    }
    if ((rc = kvsc__parse_addr(addr, &ss, &sslen, terr, KVSC_ERRLEN)) < 0)
        return rc;
    if ((a = calloc(1, sizeof *a)) == NULL) {
        snprintf(terr, KVSC_ERRLEN, "out of memory");
        return KVSC_ENOMEM;
    }
    a->connect_cb = cb;
    a->data = data;
    kvsc__parser_init(&a->rp);
    if ((rc = uv_tcp_init(loop, &a->tcp)) < 0) {
        snprintf(terr, KVSC_ERRLEN, "uv_tcp_init: %s", uv_strerror(rc));
        free(a);
        return uv2kvsc(rc);
    }
    a->tcp.data = a->creq.data = a->wreq.data = a;
    if ((rc = uv_tcp_connect(&a->creq, &a->tcp, (struct sockaddr *)&ss, on_connect)) < 0) {
        snprintf(terr, KVSC_ERRLEN, "connect to %s: %s", addr, uv_strerror(rc));
        uv_close((uv_handle_t *)&a->tcp, on_close);  /* freed once the loop runs */
        return uv2kvsc(rc);
    }
    *out = a;
    return 0;
}

int kvsc_async_command(kvsc_async *a, int argc, const char **argv, const size_t *lens,
                       kvsc_reply_cb cb, void *data)
{
    int rc;

    if (a == NULL)
        return KVSC_EINVAL;
    if (a->closing || a->dead)
        return KVSC_ECLOSED;
    /* Make room in the ring first, so that nothing can fail after the bytes are queued. */
    if (RING_RESERVE(a->q, a->qcap, a->qhead, a->qlen) < 0) {
        snprintf(a->err, sizeof a->err, "out of memory");
        return KVSC_ENOMEM;
    }
    if ((rc = kvsc__encode(&a->out, argc, argv, lens)) < 0) {
        snprintf(a->err, sizeof a->err, "%s", rc == KVSC_EINVAL ? "bad command arguments" : "out of memory");
        return rc;
    }
    a->q[(a->qhead + a->qlen++) % a->qcap] = (waiter){cb, data};
    if (a->up && !a->writing)
        start_write(a);
    return 0;
}

void kvsc_async_close(kvsc_async *a)
{
    if (a == NULL || a->closing)
        return;
    a->closing = 1;
    if (!a->connect_done) {
        a->connect_done = 1;
        if (a->connect_cb)
            a->connect_cb(a, KVSC_ECANCELED, a->data);
    }
    int status = a->dead ? a->dead : KVSC_ECANCELED;
    while (a->qlen > 0) {
        waiter w = pop(a);
        if (w.cb)
            w.cb(a, status, NULL, w.data);
    }
    uv_close((uv_handle_t *)&a->tcp, on_close);
}

void *kvsc_async_data(const kvsc_async *a)
{
    return a ? a->data : NULL;
}

const char *kvsc_async_last_error(const kvsc_async *a)
{
    return a ? a->err : "";
}
