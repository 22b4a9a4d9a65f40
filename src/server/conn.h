/*
 * conn.h — a client connection and the loop thread that owns it (internal to src/server).
 *
 * A connection is touched only by its worker's thread, so it needs no lock (checked builds
 * assert it where a connection is adopted, flushed, closed or handed back: worker_on_loop). Its
 * memory is bounded by the server's limits: the query buffer (unparsed input) by max_query, the
 * output (replies not yet read by the client) by max_output — past either the client is cut
 * off.
 */
#ifndef KVS_SERVER_CONN_H
#define KVS_SERVER_CONN_H

#include <pthread.h>
#include <stddef.h>
#include <stdbool.h>
#include <uv.h>

#include "pool/pool.h"
#include "server/obuf.h"
#include "server/resp.h"
#include "server/server.h"
#include "server/stats.h"
#include "util/clock.h"
#include "util/hist.h"

typedef struct conn conn;

/*
 * Writes that arrive back to back on a connection (SET, MSET, DEL) are gathered into one batch
 * and committed with one kvs_write — one append and, with --sync always, one fdatasync for the
 * lot (and for every other connection committing at the same moment). Each command in the batch
 * keeps its own reply, emitted in order once the batch is done. When the commit can block
 * (--sync always, or the LMDB engine) the batch runs on the engine pool and the connection
 * waits — reading nothing, running nothing — until it is back, so replies stay in request order
 * and a later command sees every earlier write.
 */
/*
 * A command that fails its own checks (a key over KVS_MAX_KEY) keeps its place in the batch with
 * no ops and its refusal as its reply; the others in the batch are unaffected. An MSET with one
 * bad pair is refused whole, as Redis's MSET is all or nothing; DEL skips keys that cannot exist.
 *
 * The ops point at the arguments where they lie: in the query buffer, which is neither moved nor
 * reallocated while a batch is pending (process() commits before it compacts the buffer, and no
 * read happens while the batch is on the pool), or, for inline commands, whose arguments live in
 * the parser's arena until the next parse, in a copy the batch keeps (kept).
 */
typedef struct command command;
typedef struct batch_cmd {
    const command *cmd;
    size_t first, n;   /* its ops */
    int refused;       /* 0, or the KVS_E* code it was refused with (then n is 0) */
    const char *err;   /* or the error it was refused with (Redis's words, no "-"): its reply */
    void *st;          /* its state (batch memory), for its reply (cmd.h) */
    int argc;          /* inside a transaction, its arguments (batch memory), for the read */
    const char **argv; /* and direct commands that reply from them at EXEC */
    size_t *lens;
    size_t tx_n;       /* an EXEC: the commands after it that are its (cmd_multi.c) */
    bool tx;           /* this is an EXEC */
} batch_cmd;

typedef struct batch_block {
    struct batch_block *next;
    _Alignas(max_align_t) char data[]; /* batch_alloc's memory: any type may live there */
} batch_block;

typedef struct batch {
    kvs_op *ops;
    size_t nops, capops;
    batch_cmd *cmds;
    size_t ncmds, capcmds;
    batch_block *kept; /* copies of transient arguments, freed when the batch is done */
    size_t arg_bytes;  /* a transaction's: its commands' argument bytes (max_multi_bytes) */
    int rc;            /* kvs_write's result */
    uint64_t pos;      /* kvs_write_pos's: the position to wait for (0: wrote nothing) */
    uint64_t t0;       /* clock_usec() when its commit began (commit latency, INFO) */
    char err[256];     /* and kvs_last_error() of the thread that ran it */
} batch;

typedef struct job {
    conn *c;
    struct job *next;
} job;

struct worker {
    server *srv;
    int index;
    pthread_t thread;
    pthread_t loop_thread; /* the same, as it records itself on starting (pthread_create
                            * may fill in `thread` only after the thread runs): for checks */
    bool loop_thread_set;  /* false for a worker whose loop is run by hand (the fuzzers') */
    uv_loop_t loop;
    uv_async_t wake;       /* new sockets queued, or stop */
    uv_timer_t stop_timer; /* bounds how long a stop waits for output to drain */
    pthread_mutex_t mu;
    int *fds;              /* sockets handed over, not yet adopted (under mu) */
    size_t nfds, capfds;
    bool stop;             /* under mu */
    job *done;             /* batches back from the pool (under mu) */
    uv_async_t jobs_async; /* wakes the loop for them */
    size_t jobs_pending;   /* loop thread only */
    bool stopping;         /* loop thread only */
    conn *conns;           /* every open connection of this loop (linked and unlinked under
                            * srv->clients_mu, so CLIENT LIST on another loop may walk it) */
    uint64_t *kills;       /* CLIENT KILL of these connections, from other loops (under mu) */
    size_t nkills, capkills;
    uv_async_t durable_async; /* the durable position grew (server.on_durable): flush holds */
    bool durable_open;     /* durable_async may be sent to (under srv->durable_mu) */
    conn *holding;         /* connections with held replies (loop thread only) */
    conn *waiting;         /* connections blocked in WAITAOF (loop thread only) */
    uv_timer_t wait_timer; /* their timeouts: ticks while one waits */
    uv_prepare_t turn_end; /* before the loop sleeps: ask for the sync its held writes need */
    bool sync_asked;       /* a batch was held this turn (loop thread only) */
    /* commit latency of write batches: from the commit's start to the replies' release, in ns
     * (INFO persistence; under hist_mu, as INFO reads it from any loop) */
    pthread_mutex_t hist_mu;
    kb_hist commit_hist;
    loop_stats stats;      /* INFO's counters of this loop (stats.h: its thread writes them) */
};

/* Replies held until the durable position reaches pos (conn.c, "Held replies"). */
typedef struct held {
    struct held *next;
    ochunk *chunks;
    size_t bytes;
    uint64_t pos;
    uint64_t t0;       /* its batch's commit start (0: replies before a batch, not timed) */
} held;

struct conn {
    uv_tcp_t tcp;          /* first: the handle's address is the connection's */
    worker *w;
    server *srv;
    uint64_t id;
    char peer[64];
    char laddr[64];        /* the server's end of it */
    char *q;               /* query buffer: unparsed input starts at q[qpos] */
    size_t qlen, qcap, qpos;
    batch batch;           /* writes gathered, not yet committed; args point into q */
    job job;
    bool job_running;      /* batch is on the pool: no reading, no parsing */
    bool handle_closed;    /* uv_close done; freed when no job runs */
    resp_parser parser;
    obuf out;              /* replies not yet handed to the socket */
    uv_write_t wreq;
    ochunk *wchunks;       /* chunks of the write in flight */
    size_t inflight;       /* bytes of the write in flight */
    bool writing;
    bool authed;
    bool close_after_flush;
    bool closing;
    conn *prev, *next;
    /* held replies (conn.c): oldest first, each waiting for its position to be durable */
    held *hold_head, *hold_tail;
    size_t held_bytes;
    bool hold_listed;      /* on w->holding */
    bool hold_paused;      /* reading stopped: too much held */
    conn *hold_prev, *hold_next;
    uint64_t last_pos;     /* the position of its latest write (WAITAOF) */
    /* WAITAOF (cmd_durable.c): blocked until wait_pos is durable, or until wait_until
     * (clock_usec; 0: never) */
    bool waiting;
    bool in_exec;          /* a direct command runs as EXEC replies (commands.c) */
    bool wait_replicas;    /* asked for replicas too: there are none, so only the timeout ends it */
    uint64_t wait_pos, wait_until;
    conn *wait_prev, *wait_next;
    /* MULTI (cmd_multi.c) */
    bool multi;            /* commands are queued in tx */
    bool multi_dirty;      /* one was refused when queued: EXEC fails (EXECABORT) */
    batch tx;              /* its commands, arguments copied */
    struct watched *watch; /* WATCHed keys and their versions */
    size_t nwatch, capwatch;
    /* CLIENT (cmd_client.c) */
    char *name;            /* CLIENT SETNAME; read by other threads under srv->clients_mu */
    uint64_t created_ms;
    uint64_t last_ms;      /* last command (atomic: CLIENT LIST reads it) */
    const char *last_cmd;  /* its name, from the command table (atomic) */
    bool kill_posted;      /* CLIENT KILL sent to its loop: no longer listed (clients_mu) */
    int fd;
    /* the run of commands being timed (stats.h): its command, calls so far, start (ns) */
    const command *run_cmd;
    uint64_t run_n, run_t0;
};

/* Is the caller w's loop thread, the one that may touch w's connections? For KVS_ASSERT; a
 * worker that recorded no thread (its loop run by a test harness) cannot tell, and says yes. */
static inline bool worker_on_loop(const worker *w)
{
    return !w->loop_thread_set || pthread_equal(pthread_self(), w->loop_thread);
}

/* ---- INFO's counting on the hot path (stats.h; cmd_info.c) ---- */

/* Time the run so far: its calls, each with the run's mean, to c's loop's stats at now (ns). */
void stats_run_close(conn *c, uint64_t now);
/* c's query buffer and unsent output, at now (ns), into its loop's peaks. */
void stats_buffers(conn *c, uint64_t now);

/* A pass over c's input begins: the clock starts for its first command. */
static inline void stats_pass_begin(conn *c)
{
    c->run_cmd = NULL;
    c->run_n = 0;
    c->run_t0 = clock_nsec();
}

/* A call of k begins (run or queued): the same command as before extends the run. */
static inline void stats_call(conn *c, const command *k)
{
    if (k == c->run_cmd) {
        c->run_n++;
        return;
    }
    if (c->run_cmd) {
        uint64_t now = clock_nsec();
        stats_run_close(c, now);
        c->run_t0 = now;
    }
    c->run_cmd = k;
    c->run_n = 1;
}

/* The pass ran commands: time their run, note c's buffers (client_recent_max_*_buffer). */
static inline void stats_pass_end(conn *c)
{
    if (!c->run_cmd)
        return;
    uint64_t now = clock_nsec();
    stats_run_close(c, now);
    stats_buffers(c, now);
    c->run_cmd = NULL;
}

/* A key read found (hit) or not (miss), as Redis's keyspace_hits/misses count them. */
static inline void stats_lookup(conn *c, bool found)
{
    if (found)
        STAT_ADD(c->w->stats.hits, 1);
    else
        STAT_ADD(c->w->stats.misses, 1);
}

/* Error replies so far on c's loop: a command that adds one failed. */
static inline uint64_t stats_errors(const conn *c)
{
    return c->w->stats.errors;
}

/* k, counted by stats_call, ran and answered an error / was refused before it ran. */
void stats_failed(conn *c, const command *k);
void stats_rejected(conn *c, const command *k);
/* A loop's counters: made and freed with it (workers_start, workers_stop; -1: out of memory),
 * and at each wake-up a reset asked for by info_reset_stats from another loop. */
int info_loop_init(worker *w);
void info_loop_fini(worker *w);
void info_loop_turn(worker *w);

/* Close c once what it has queued is written (QUIT, protocol errors, shutdown). */
void conn_close_after_flush(conn *c);
void conn_close(conn *c);
void conn_flush(conn *c);
/* The durable position grew (durable_async): flush the connections holding replies. */
void conn_durable_wakeup(worker *w);
/* Has the engine made position pos durable (kvs.h "Positions"; false once fenced)? */
bool durable_reached(server *s, uint64_t pos);
/* Parse and run what c has buffered (after it was blocked). */
void conn_resume(conn *c);
/* cmd_durable.c: WAITAOF's blocked connections — the durable position grew or a timeout tick
 * came (w's loop); c closes (off the list). */
void waitaof_wakeup(worker *w);
void waitaof_forget(conn *c);

/* commands.c. A parsed command is looked up once (cmd_lookup: NULL if unknown), then offered to
 * the batch and, if not taken, dispatched. */
const command *cmd_lookup(const char *name, size_t n);
void cmd_dispatch(conn *c, const command *k, int argc, const char **argv, const size_t *lens);
/* Add a write command to c's batch: 1 if it was one (and is now queued, or refused in its place),
 * 0 if it is to be run the ordinary way. transient: the arguments do not outlive the next parse,
 * so the batch copies them (argv is then pointed at the copies). */
int cmd_batch_add(conn *c, const command *k, int argc, const char **argv, const size_t *lens,
                  bool transient);
/* Emit the replies of a committed batch, in order. */
void cmd_batch_reply(conn *c);
/* Free what a batch holds (conn.c), keeping its arrays; batch_free also frees those. */
void batch_clear(batch *b);
void batch_free(batch *b);
/* End a transaction and its watches (cmd_multi.c), e.g. when c closes. */
void tx_end(conn *c);
/* cmd_multi.c: a batch's writes as WATCH sees them (before the batch is committed). */
void watch_touch(server *s, const batch *b);
/* loop.c: close connection id of w on w's own thread (CLIENT KILL from another loop). */
void worker_post_kill(worker *w, uint64_t id);
/* loop.c: pool for blocking engine work (NULL: commit on the loop thread) */
kvs_pool *server_pool(server *s);

#endif
