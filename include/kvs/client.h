/*
 * kvs/client.h — the public API of libkvsclient, a client for kvs-server (and for any server
 * that speaks RESP2, the Redis protocol: redis-server answers it just the same).
 *
 * Three ways to talk to a server, over one reply type:
 *
 *   blocking     kvsc_connect, then kvsc_set / kvsc_get / kvsc_del or the generic kvsc_command:
 *                each call sends one command and waits for its reply.
 *   pipelined    on the same blocking connection, kvsc_pipe_append queues any number of commands
 *                in an output buffer, kvsc_pipe_flush sends them, kvsc_pipe_read takes the replies
 *                back one at a time, in order. One round trip for the lot instead of one each.
 *   asynchronous kvsc_async_connect on a libuv loop; kvsc_async_command returns at once and the
 *                reply arrives in a callback. Replies are matched to callbacks in FIFO order,
 *                which is the order the server answers in.
 *
 *     kvsc_conn *c;
 *     int rc = kvsc_connect("127.0.0.1:4000", 5000, &c);
 *     if (rc < 0)
 *         fprintf(stderr, "%s: %s\n", kvsc_strerror(rc), kvsc_last_error(NULL));
 *     kvsc_set(c, "k", 1, "v", 1);
 *     void *val; size_t len;
 *     if (kvsc_get(c, "k", 1, &val, &len) == 0) { use(val, len); kvsc_free(val); }
 *     kvsc_close(c);
 *
 * Keys, values and arguments are binary-safe byte strings given by pointer and length.
 *
 * Errors: every function that can fail returns 0 (or a count) on success and a negative KVSC_E*
 * code on failure; kvsc_strerror names the code and kvsc_last_error gives the detail (the
 * server's error text for KVSC_ESERVER, the system's for KVSC_EIO). Two kinds of failure differ
 * in what they leave behind:
 *   - a refusal (KVSC_ENOTFOUND, KVSC_ESERVER, KVSC_EINVAL, KVSC_ESTATE) leaves the connection
 *     in step with the server, ready for the next command;
 *   - a transport failure (KVSC_EIO, KVSC_ETIMEDOUT, KVSC_EPROTO, KVSC_ECLOSED, and KVSC_ENOMEM
 *     met while a reply was arriving) leaves the byte stream at an unknown place, so the library
 *     closes the socket and every later call on the connection fails with KVSC_ECLOSED
 *     (kvsc_last_error still says what happened first). Close it and connect again.
 *
 * Replies are read under limits, so that a broken or hostile server cannot make the client
 * allocate without bound: a bulk string of at most KVSC_MAX_BULK bytes, an array of at most
 * KVSC_MAX_ELEMENTS elements, arrays nested at most KVSC_MAX_DEPTH deep, a line (status, error,
 * integer, length header) of at most KVSC_MAX_LINE bytes. Anything beyond, and anything not
 * RESP2, is KVSC_EPROTO.
 *
 * Threads: a connection (blocking or async) belongs to one thread at a time; different
 * connections are independent. The async API runs on the thread of its loop.
 *
 * Signals: the blocking API never raises SIGPIPE (it sends with MSG_NOSIGNAL). libuv writes with
 * plain write(), so a program using the async API should ignore SIGPIPE, as every libuv program
 * must; the library does not change the process's signal dispositions.
 */
#ifndef KVS_CLIENT_H
#define KVS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

/* The library's ABI: it is built with hidden visibility, and exports what is declared between
 * this push and its pop, nothing else. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes: all negative; 0 is success. The numbers are part of the ABI. The first four have
 * the numbers of their namesakes in kvs.h. */
enum {
    KVSC_OK = 0,
    KVSC_ENOTFOUND = -1,     /* GET answered nil, DEL removed nothing */
    KVSC_EINVAL = -2,        /* a bad argument */
    KVSC_ENOMEM = -3,        /* out of memory */
    KVSC_EIO = -4,           /* an error from the operating system (kvsc_last_error says which) */
    KVSC_ETIMEDOUT = -5,     /* connect, a read or a write waited longer than the timeout */
    KVSC_ECONNREFUSED = -6,  /* nothing listens at the address */
    KVSC_EADDR = -7,         /* the address string is not IPv4:PORT or [IPv6]:PORT */
    KVSC_EPROTO = -8,        /* the server's reply is malformed, beyond a limit, or unexpected */
    KVSC_ESERVER = -9,       /* the server replied with an error; kvsc_last_error has its text */
    KVSC_ECLOSED = -10,      /* the connection is closed (by the server, or after an earlier
                                transport failure) */
    KVSC_ECANCELED = -11,    /* async: the connection was closed before the reply came */
    KVSC_ESTATE = -12,       /* call not valid now (e.g. a blocking command while pipelined
                                replies are still unread) */
};

/* Reply limits (see above). The bulk limit is kvs's largest value plus room for framing. */
#define KVSC_MAX_BULK     ((512u << 20) + (64u << 10)) /* 512 MiB + 64 KiB */
#define KVSC_MAX_ELEMENTS (1u << 20)                   /* 1,048,576 */
#define KVSC_MAX_DEPTH    8
#define KVSC_MAX_LINE     (64u << 10)                  /* 64 KiB, CRLF not counted */

typedef enum kvsc_reply_type {
    KVSC_REPLY_STATUS = 1,  /* +OK        str, len */
    KVSC_REPLY_ERROR = 2,   /* -ERR ...   str, len (the whole line: "ERR unknown command ...") */
    KVSC_REPLY_INTEGER = 3, /* :42        integer */
    KVSC_REPLY_BULK = 4,    /* $3 abc     str, len (binary; a NUL follows, not counted) */
    KVSC_REPLY_NIL = 5,     /* $-1 or *-1 */
    KVSC_REPLY_ARRAY = 6,   /* *2 ...     elem[0 .. len) */
} kvsc_reply_type;

typedef struct kvsc_reply {
    kvsc_reply_type type;
    int64_t integer;             /* INTEGER */
    size_t len;                  /* STATUS, ERROR, BULK: bytes in str; ARRAY: elements */
    char *str;                   /* STATUS, ERROR, BULK: len bytes and a NUL; else NULL */
    struct kvsc_reply **elem;    /* ARRAY: len elements (NULL when len is 0) */
} kvsc_reply;

typedef struct kvsc_conn kvsc_conn;
typedef struct kvsc_async kvsc_async;

/* A static, human-readable name for an error code. */
const char *kvsc_strerror(int err);

/* Detail of the most recent failure on connection c ("" if none), valid until the next call on
 * c. With c NULL: the detail of the most recent failed kvsc_connect or kvsc_async_connect on the
 * calling thread. The string belongs to the library. */
const char *kvsc_last_error(const kvsc_conn *c);

/* Free a tree returned by kvsc_command or kvsc_pipe_read, with everything in it. NULL is
 * allowed. */
void kvsc_reply_free(kvsc_reply *r);

/* Free a value returned by kvsc_get. NULL is allowed. */
void kvsc_free(void *p);

/* ---- blocking ---- */

/* Connect to addr, "IPv4:PORT" or "[IPv6]:PORT" with a numeric address (no name lookup) and a
 * port in 1..65535; anything else is KVSC_EADDR. timeout_ms bounds the connect and, afterwards,
 * each wait of a read or a write (not a whole command); ≤ 0 means wait forever. On success *out
 * is a new connection that the caller owns and frees with kvsc_close; on failure *out is NULL
 * and kvsc_last_error(NULL) says why. */
int kvsc_connect(const char *addr, int timeout_ms, kvsc_conn **out);

/* Close the socket and free the connection, with any replies not yet read. NULL is allowed. */
void kvsc_close(kvsc_conn *c);

/* Change the timeout of later reads and writes (≤ 0: wait forever). */
void kvsc_set_timeout(kvsc_conn *c, int timeout_ms);

/* SET key val. KVSC_ESERVER if the server refused it. */
int kvsc_set(kvsc_conn *c, const void *key, size_t klen, const void *val, size_t vlen);

/* GET key. On success *val is a new buffer of *vlen bytes followed by one NUL byte that is not
 * counted; the caller owns it and frees it with kvsc_free. KVSC_ENOTFOUND if the server answered
 * nil. On any failure *val is NULL and *vlen 0. */
int kvsc_get(kvsc_conn *c, const void *key, size_t klen, void **val, size_t *vlen);

/* DEL key. KVSC_ENOTFOUND if nothing was removed. */
int kvsc_del(kvsc_conn *c, const void *key, size_t klen);

/* Send one command of argc ≥ 1 arguments (argv[i] of lens[i] bytes; lens NULL: each argv[i] is a
 * C string) and wait for its reply. On success *out is the reply tree, which the caller owns and
 * frees with kvsc_reply_free. If the server replied with an error, the result is KVSC_ESERVER,
 * *out is NULL and kvsc_last_error(c) holds the error's text. KVSC_ESTATE while pipelined
 * replies are unread. */
int kvsc_command(kvsc_conn *c, int argc, const char **argv, const size_t *lens, kvsc_reply **out);

/* ---- pipelined (on a blocking connection) ---- */

/* Queue a command in the output buffer without sending anything (arguments as kvsc_command).
 * The arguments are copied: the caller may reuse them at once. */
int kvsc_pipe_append(kvsc_conn *c, int argc, const char **argv, const size_t *lens);

/* Send everything queued. While it writes it also reads the replies that arrive, so that neither
 * side can stall on a full socket buffer however long the pipeline is. */
int kvsc_pipe_flush(kvsc_conn *c);

/* The reply to the oldest queued command whose reply has not been read (flushing first if
 * needed). On success *out is the reply tree, owned by the caller (kvsc_reply_free). An error
 * reply is a success here: *out has type KVSC_REPLY_ERROR, as one refused command does not spoil
 * the others. KVSC_ESTATE if no reply is owed. */
int kvsc_pipe_read(kvsc_conn *c, kvsc_reply **out);

/* How many replies are owed: commands queued or sent whose replies were not read yet. */
size_t kvsc_pipe_pending(const kvsc_conn *c);

/* ---- asynchronous, on a libuv loop ---- */

/* Called once when the connection is made (status 0) or has failed (a negative KVSC_E* code;
 * kvsc_async_last_error says why). The handle stays the caller's to close either way. */
typedef void (*kvsc_async_connect_cb)(kvsc_async *a, int status, void *data);

/* Called once per command: status 0 and the reply (possibly of type KVSC_REPLY_ERROR), or a
 * negative code and reply NULL (KVSC_ECANCELED when kvsc_async_close came first, else the
 * failure that broke the connection). The reply belongs to the library and is valid only during
 * the callback. A callback may issue commands and may call kvsc_async_close. */
typedef void (*kvsc_reply_cb)(kvsc_async *a, int status, kvsc_reply *reply, void *data);

/* Start connecting to addr (as kvsc_connect) on loop. On success *out is the handle; the caller
 * owns it and must end it with kvsc_async_close, whether or not the connection succeeds. cb (may
 * be NULL) reports the outcome, with data, which kvsc_async_data also returns. Commands may be
 * issued at once: they are sent when the connection is up. A bad address is reported here, not
 * through cb (KVSC_EADDR; *out NULL; detail in kvsc_last_error(NULL)). */
int kvsc_async_connect(uv_loop_t *loop, const char *addr, kvsc_async_connect_cb cb, void *data,
                       kvsc_async **out);

/* Queue a command (arguments as kvsc_command, copied at once); cb(a, status, reply, data) is
 * called when its reply comes. Returns 0, after which cb is called exactly once (it can be before
 * this returns, if the write fails at once and breaks the connection); or a negative code, and
 * cb is never called (KVSC_ECLOSED once the connection has failed or is closing). cb may be NULL
 * to ignore the reply. */
int kvsc_async_command(kvsc_async *a, int argc, const char **argv, const size_t *lens,
                       kvsc_reply_cb cb, void *data);

/* Close the connection. Before it returns, the connect callback (if it has not run) and the
 * callback of every command still waiting are called with KVSC_ECANCELED (or with the failure
 * that had already broken the connection); no callback of a runs after that. The memory is
 * freed on a later iteration of the loop, so the loop must run on for it. May be called from
 * inside a callback. NULL, and a second call, are allowed. */
void kvsc_async_close(kvsc_async *a);

/* The data given to kvsc_async_connect. */
void *kvsc_async_data(const kvsc_async *a);

/* Detail of the most recent failure on a ("" if none); the string belongs to the library. */
const char *kvsc_async_last_error(const kvsc_async *a);

#ifdef __cplusplus
}
#endif

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#endif /* KVS_CLIENT_H */
