/*
 * client.c — the blocking connection, and pipelining on it.
 *
 * A connection is a non-blocking socket driven by poll(): every call tries the system call
 * first and waits only when it would block, for at most timeout_ms each time (so the timeout
 * bounds one wait, not a whole command — a server that keeps sending is never cut off). Using
 * poll rather than SO_RCVTIMEO keeps connect, reads and writes under one rule.
 *
 * Commands go through one path, blocking or not: kvsc_pipe_append encodes a command into the
 * output buffer and counts one reply owed (`pending`); kvsc_pipe_flush sends the buffer;
 * kvsc_pipe_read takes the next reply. kvsc_command is append + read, allowed only when nothing
 * else is owed, since its reply must be the next one on the wire.
 *
 * A long pipeline can deadlock two peers that each write before reading: the client blocks on a
 * full send buffer while the server blocks (or gives up) on a full send buffer of its own,
 * full of replies nobody reads. So while kvsc_pipe_flush waits to write, it also reads: replies
 * that arrive are parsed and held, in order, in a ring (`held`) that kvsc_pipe_read empties
 * first. The ring never holds more than `pending` replies, so it is bounded by what the caller
 * asked for; bytes beyond that are left unread in the socket.
 *
 * Invariants: `pending` ≥ `hlen`; the output buffer's unsent bytes are commands whose replies
 * are counted in `pending`; after a transport failure (`broken` ≠ 0) the socket is closed and
 * every call fails with KVSC_ECLOSED, the detail of the first failure staying in `err`.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "util/invariant.h"
#include "util/ring.h"

struct kvsc_conn {
    int fd;              /* -1 once broken */
    int timeout_ms;      /* ≤ 0: wait forever */
    int broken;          /* the transport failure that closed the socket; 0 while usable */
    kvsc_buf out;        /* encoded commands; [pos, len) not sent yet */
    kvsc_buf in;         /* bytes received; [pos, len) not parsed yet */
    kvsc_parser rp;
    size_t pending;      /* replies owed to the caller */
    kvsc_reply **held;   /* ring of replies parsed during a flush, oldest at hhead */
    size_t hhead, hlen, hcap;
    char err[KVSC_ERRLEN];
};

static const char *type_name(kvsc_reply_type t)
{
    static const char *names[] = {"?", "status", "error", "integer", "bulk", "nil", "array"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

/* Record why a call failed, when the connection stays usable. */
static int seterr(kvsc_conn *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int seterr(kvsc_conn *c, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return code;
}

/* A transport failure: the stream is out of step, so close the socket for good. */
static int fail(kvsc_conn *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(kvsc_conn *c, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->broken = code;
    kvsc__parser_reset(&c->rp);
    return code;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is ready for events, at most timeout_ms. 0 with *revents, KVSC_ETIMEDOUT, or
 * a code from errno. */
static int wait_fd(int fd, int timeout_ms, short events, short *revents)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    int64_t deadline = timeout_ms > 0 ? now_ms() + timeout_ms : -1;

    for (;;) {
        int64_t left = deadline < 0 ? -1 : deadline - now_ms();
        int n = poll(&pfd, 1, left < 0 && deadline >= 0 ? 0 : (int)left);
        if (n > 0) {
            *revents = pfd.revents;
            return 0;
        }
        if (n == 0)
            return KVSC_ETIMEDOUT;
        if (errno != EINTR)
            return kvsc__errno(errno);
    }
}

/* One recv into the input buffer, waiting for it if need be. */
static int read_some(kvsc_conn *c)
{
    short rev;
    ssize_t n;
    int rc;

    if (c->in.pos == c->in.len)
        c->in.pos = c->in.len = 0;
    if (kvsc__buf_reserve(&c->in, KVSC_READ_CHUNK) < 0)
        return fail(c, KVSC_ENOMEM, "out of memory for the input buffer");
    for (;;) {
        n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
        if (n > 0) {
            c->in.len += (size_t)n;
            return 0;
        }
        if (n == 0) {
            if (kvsc__parser_busy(&c->rp) || c->in.pos < c->in.len)
                return fail(c, KVSC_EPROTO, "the server closed the connection in the middle of a reply");
            return fail(c, KVSC_ECLOSED, "the server closed the connection");
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return fail(c, kvsc__errno(errno), "read: %s", strerror(errno));
        if ((rc = wait_fd(c->fd, c->timeout_ms, POLLIN, &rev)) < 0)
            return fail(c, rc, "read: %s",
                        rc == KVSC_ETIMEDOUT ? "no reply within the timeout" : strerror(errno));
    }
}

/* Parse from the input buffer: 1 with *out a whole reply, 0 if more bytes are needed. */
static int parse_buffered(kvsc_conn *c, kvsc_reply **out)
{
    size_t used;
    int rc;

    *out = NULL;
    if (c->in.pos == c->in.len)
        return 0;
    rc = kvsc__parse(&c->rp, c->in.data + c->in.pos, c->in.len - c->in.pos, &used, out);
    c->in.pos += used;
    if (rc < 0)
        return fail(c, rc, "%s", c->rp.err);
    return rc;
}

static int hold(kvsc_conn *c, kvsc_reply *r)
{
    if (RING_RESERVE(c->held, c->hcap, c->hhead, c->hlen) < 0) {
        kvsc_reply_free(r);
        return fail(c, KVSC_ENOMEM, "out of memory holding replies");
    }
    c->held[(c->hhead + c->hlen++) % c->hcap] = r;
    return 0;
}

/* Read what has arrived during a flush and hold the replies it completes. */
static int absorb(kvsc_conn *c)
{
    kvsc_reply *r;
    int rc;

    if ((rc = read_some(c)) < 0)
        return rc;
    while (c->hlen < c->pending) {
        if ((rc = parse_buffered(c, &r)) <= 0)
            return rc;
        if ((rc = hold(c, r)) < 0)
            return rc;
    }
    return 0;
}

/* ---- connection ---- */

const char *kvsc_last_error(const kvsc_conn *c)
{
    return c ? c->err : kvsc__tls_err();
}

int kvsc_connect(const char *addr, int timeout_ms, kvsc_conn **out)
{
    char *terr = kvsc__tls_err();
    struct sockaddr_storage ss;
    socklen_t sslen, elen = sizeof(int);
    kvsc_conn *c = NULL;
    int rc, soerr = 0, one = 1;
    short rev;

    terr[0] = '\0';
    if (out == NULL) {
        snprintf(terr, KVSC_ERRLEN, "kvsc_connect: out is NULL");
        return KVSC_EINVAL;
    }
    *out = NULL;
    if ((rc = kvsc__parse_addr(addr, &ss, &sslen, terr, KVSC_ERRLEN)) < 0)
        return rc;
    if ((c = calloc(1, sizeof *c)) == NULL) {
        snprintf(terr, KVSC_ERRLEN, "out of memory");
        return KVSC_ENOMEM;
    }
    c->timeout_ms = timeout_ms;
    kvsc__parser_init(&c->rp);
    c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        rc = kvsc__errno(errno);
        snprintf(terr, KVSC_ERRLEN, "socket: %s", strerror(errno));
        goto fail;
    }
    if (connect(c->fd, (struct sockaddr *)&ss, sslen) < 0) {
        if (errno != EINPROGRESS && errno != EINTR) {
            soerr = errno;
        } else if ((rc = wait_fd(c->fd, timeout_ms, POLLOUT, &rev)) < 0) {
            snprintf(terr, KVSC_ERRLEN, "connect to %s: %s", addr,
                     rc == KVSC_ETIMEDOUT ? "timed out" : strerror(errno));
            goto fail;
        } else if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &elen) < 0) {
            soerr = errno;
        }
        if (soerr) {
            rc = kvsc__errno(soerr);
            snprintf(terr, KVSC_ERRLEN, "connect to %s: %s", addr, strerror(soerr));
            goto fail;
        }
    }
    /* Commands are small and each is flushed whole: Nagle would only add latency. */
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    *out = c;
    return 0;
fail:
    kvsc_close(c);
    return rc;
}

void kvsc_close(kvsc_conn *c)
{
    if (c == NULL)
        return;
    if (c->fd >= 0)
        close(c->fd);
    kvsc__parser_reset(&c->rp);
    while (c->hlen > 0) {
        kvsc_reply_free(c->held[c->hhead]);
        c->hhead = (c->hhead + 1) % c->hcap;
        c->hlen--;
    }
    free(c->held);
    kvsc__buf_free(&c->in);
    kvsc__buf_free(&c->out);
    free(c);
}

void kvsc_set_timeout(kvsc_conn *c, int timeout_ms)
{
    if (c)
        c->timeout_ms = timeout_ms;
}

/* ---- pipeline ---- */

int kvsc_pipe_append(kvsc_conn *c, int argc, const char **argv, const size_t *lens)
{
    int rc;

    if (c == NULL)
        return KVSC_EINVAL;
    if (c->broken)
        return KVSC_ECLOSED;
    /* With nothing owed, unread bytes are replies to nothing: the stream is out of step. */
    if (c->pending == 0 && c->in.pos < c->in.len)
        return fail(c, KVSC_EPROTO, "the server sent %zu bytes nobody asked for",
                    c->in.len - c->in.pos);
    if ((rc = kvsc__encode(&c->out, argc, argv, lens)) < 0)
        return seterr(c, rc, rc == KVSC_EINVAL ? "bad command arguments" : "out of memory");
    c->pending++;
    return 0;
}

int kvsc_pipe_flush(kvsc_conn *c)
{
    short rev;
    ssize_t n;
    int rc;

    if (c == NULL)
        return KVSC_EINVAL;
    if (c->broken)
        return KVSC_ECLOSED;
    while (c->out.pos < c->out.len) {
        n = send(c->fd, c->out.data + c->out.pos, c->out.len - c->out.pos, MSG_NOSIGNAL);
        if (n >= 0) {
            c->out.pos += (size_t)n;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return fail(c, kvsc__errno(errno), "write: %s", strerror(errno));
        short events = POLLOUT | (c->pending > c->hlen ? POLLIN : 0);
        if ((rc = wait_fd(c->fd, c->timeout_ms, events, &rev)) < 0)
            return fail(c, rc, "write: %s",
                        rc == KVSC_ETIMEDOUT ? "the server took nothing within the timeout"
                                             : strerror(errno));
        if ((rev & POLLIN) && (rc = absorb(c)) < 0)
            return rc;
    }
    kvsc__buf_reset(&c->out, KVSC_OUT_KEEP);
    return 0;
}

int kvsc_pipe_read(kvsc_conn *c, kvsc_reply **out)
{
    kvsc_reply *r;
    int rc;

    if (out)
        *out = NULL;
    if (c == NULL || out == NULL)
        return KVSC_EINVAL;
    if (c->broken)
        return KVSC_ECLOSED;
    if (c->pending == 0)
        return seterr(c, KVSC_ESTATE, "no reply is owed: no command was queued");
    KVS_ASSERT(c->hlen <= c->pending);
    if (c->out.pos < c->out.len && (rc = kvsc_pipe_flush(c)) < 0)
        return rc;
    if (c->hlen > 0) {
        r = c->held[c->hhead];
        c->hhead = (c->hhead + 1) % c->hcap;
        c->hlen--;
    } else {
        while ((rc = parse_buffered(c, &r)) == 0)
            if ((rc = read_some(c)) < 0)
                return rc;
        if (rc < 0)
            return rc;
    }
    c->pending--;
    *out = r;
    return 0;
}

size_t kvsc_pipe_pending(const kvsc_conn *c)
{
    return c ? c->pending : 0;
}

/* ---- blocking commands ---- */

int kvsc_command(kvsc_conn *c, int argc, const char **argv, const size_t *lens, kvsc_reply **out)
{
    kvsc_reply *r;
    int rc;

    if (out)
        *out = NULL;
    if (c == NULL || out == NULL)
        return KVSC_EINVAL;
    if (c->broken)
        return KVSC_ECLOSED;
    if (c->pending)
        return seterr(c, KVSC_ESTATE, "%zu pipelined replies are still unread", c->pending);
    if ((rc = kvsc_pipe_append(c, argc, argv, lens)) < 0 || (rc = kvsc_pipe_read(c, &r)) < 0)
        return rc;
    if (r->type == KVSC_REPLY_ERROR) {
        seterr(c, KVSC_ESERVER, "%s", r->str);
        kvsc_reply_free(r);
        return KVSC_ESERVER;
    }
    *out = r;
    return 0;
}

/* A command of up to three arguments whose reply must be of type want (or nil, when allowed). */
static int call(kvsc_conn *c, const char *name, const void *a, size_t alen, const void *b,
                size_t blen, int argc, kvsc_reply_type want, kvsc_reply **out)
{
    const char *argv[3] = {name, a, b};
    size_t lens[3] = {strlen(name), alen, blen};
    int rc;

    if ((rc = kvsc_command(c, argc, argv, lens, out)) < 0)
        return rc;
    if ((*out)->type != want && (*out)->type != KVSC_REPLY_NIL) {
        rc = seterr(c, KVSC_EPROTO, "%s answered with a reply of type %s", name,
                    type_name((*out)->type));
        kvsc_reply_free(*out);
        *out = NULL;
    }
    return rc;
}

int kvsc_set(kvsc_conn *c, const void *key, size_t klen, const void *val, size_t vlen)
{
    kvsc_reply *r = NULL;
    int rc = call(c, "SET", key, klen, val, vlen, 3, KVSC_REPLY_STATUS, &r);

    if (rc == 0 && r->type == KVSC_REPLY_NIL)
        rc = seterr(c, KVSC_EPROTO, "SET answered nil");
    kvsc_reply_free(r);
    return rc;
}

int kvsc_get(kvsc_conn *c, const void *key, size_t klen, void **val, size_t *vlen)
{
    kvsc_reply *r = NULL;
    int rc;

    if (val == NULL || vlen == NULL)
        return c ? seterr(c, KVSC_EINVAL, "kvsc_get: val and vlen are required") : KVSC_EINVAL;
    *val = NULL;
    *vlen = 0;
    if ((rc = call(c, "GET", key, klen, NULL, 0, 2, KVSC_REPLY_BULK, &r)) < 0)
        return rc;
    if (r->type == KVSC_REPLY_NIL) {
        rc = seterr(c, KVSC_ENOTFOUND, "key not found");
    } else {
        *val = r->str;  /* the caller takes the bulk's buffer, NUL included */
        *vlen = r->len;
        r->str = NULL;
    }
    kvsc_reply_free(r);
    return rc;
}

int kvsc_del(kvsc_conn *c, const void *key, size_t klen)
{
    kvsc_reply *r = NULL;
    int rc;

    if ((rc = call(c, "DEL", key, klen, NULL, 0, 2, KVSC_REPLY_INTEGER, &r)) < 0)
        return rc;
    if (r->type != KVSC_REPLY_INTEGER || r->integer < 0)
        rc = seterr(c, KVSC_EPROTO, "DEL answered with something other than a count");
    else if (r->integer == 0)
        rc = seterr(c, KVSC_ENOTFOUND, "key not found");
    kvsc_reply_free(r);
    return rc;
}
