/*
 * conn.h — a client connection and the loop thread that owns it (internal to src/server).
 *
 * A connection is touched only by its worker's thread, so it needs no lock. Its memory is
 * bounded by the server's limits: the query buffer (unparsed input) by max_query, the output
 * (replies not yet read by the client) by max_output — past either the client is cut off.
 */
#ifndef KVS_SERVER_CONN_H
#define KVS_SERVER_CONN_H

#include <pthread.h>
#include <stdbool.h>
#include <uv.h>

#include "server/obuf.h"
#include "server/resp.h"
#include "server/server.h"

typedef struct conn conn;

struct worker {
    server *srv;
    int index;
    pthread_t thread;
    uv_loop_t loop;
    uv_async_t wake;       /* new sockets queued, or stop */
    uv_timer_t stop_timer; /* bounds how long a stop waits for output to drain */
    pthread_mutex_t mu;
    int *fds;              /* sockets handed over, not yet adopted (under mu) */
    size_t nfds, capfds;
    bool stop;             /* under mu */
    bool stopping;         /* loop thread only */
    conn *conns;           /* every open connection of this loop */
};

struct conn {
    uv_tcp_t tcp;          /* first: the handle's address is the connection's */
    worker *w;
    server *srv;
    uint64_t id;
    char peer[64];
    char *q;               /* query buffer: unparsed input starts at q[0] */
    size_t qlen, qcap;
    resp_parser parser;
    obuf out;              /* replies not yet handed to the socket */
    uv_write_t wreq;
    ochunk *wchunks;       /* chunks of the write in flight */
    uv_buf_t *wbufs;
    size_t inflight;       /* bytes of the write in flight */
    bool writing;
    bool authed;
    bool close_after_flush;
    bool closing;
    conn *prev, *next;
};

/* Close c once what it has queued is written (QUIT, protocol errors, shutdown). */
void conn_close_after_flush(conn *c);
void conn_close(conn *c);
void conn_flush(conn *c);

/* commands.c */
void cmd_dispatch(conn *c, int argc, const char **argv, const size_t *lens);

#endif
