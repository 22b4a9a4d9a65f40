/*
 * server.h — kvs-server: the Redis-protocol (RESP2) front of libkvs.
 *
 *   config.c    the options: one table for flags, the config file, --help and CONFIG
 *   server.c    start-up (engine, listening socket, threads), shutdown, signals
 *   loop.c      the loop threads: each owns a libuv loop and the connections handed to it
 *   conn.c      one connection: reading, parsing, dispatching, writing, limits
 *   commands.c  the command table and every command (cmd_*.c: the larger families)
 *   cmd_info.c  INFO: Redis's sections and fields, and what it samples in the background
 *   resp.c      the request parser; obuf.c the output queue and reply encoders
 *
 * Threads: the main thread runs the acceptor loop (listening socket, signals); N loop threads
 * each run a loop of their own. The acceptor accepts and hands each new socket to the next loop
 * thread in turn, so a connection lives its whole life on one thread and its state needs no lock.
 * The engine handle is shared by all of them (libkvs is thread-safe).
 */
#ifndef KVS_SERVER_H
#define KVS_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "kvs.h"
#include "server/resp.h"

#define KVS_SERVER_DEFAULT_ADDR "127.0.0.1:4000"

/* The reply a client gets when the server has no room for it (Redis's words), sent by the
 * maxclients check (conn.c) and by the acceptor when no file descriptor is free (server.c). */
#define KVS_ERR_MAXCLIENTS "-ERR max number of clients reached\r\n"

/* Every field but config_file and owned is an option of config.c's table, which gives its name
 * (flag, config file key, CONFIG parameter), range, default and whether CONFIG SET may change it.
 * Strings set through the table are copies the config owns (kvs_server_config_free). While the
 * server runs, the fields CONFIG SET may change are written under server.cfg_mu with atomic
 * stores: threads that read them without the lock use __atomic_load_n. */
typedef struct kvs_server_config {
    const char *addr;         /* "IP:PORT" or "[IPv6]:PORT"; port 0 picks a free one */
    const char *engine;       /* NULL: the directory's, else "kvs" */
    const char *dir;          /* data directory */
    int threads;              /* loop threads */
    kvs_sync sync;
    const char *requirepass;  /* NULL: no password */
    uint32_t maxclients;      /* wanted; the server may serve fewer (server.maxclients) */
    int log_level;            /* KVS_LOG_* */
    resp_limits limits;       /* bulk, multibulk, inline */
    uint64_t max_query;       /* query buffer per client (bytes) */
    uint64_t max_output;      /* output buffer per client (bytes) before it is cut off */
    uint32_t max_watch;       /* keys one connection may WATCH at once */
    uint32_t max_multi_commands; /* commands one MULTI may queue */
    uint64_t max_multi_bytes; /* and the bytes of their arguments */
    const char *pool;         /* engine pool: "naive", "shared" (default) or "uv" */
    unsigned pool_threads;    /* its threads (default 16) */
    int offload;              /* -1: auto (sync always, or lmdb), 0: never, 1: always */
    uint64_t segment_size;    /* kvs engine: kvs_options.segment_size; 0: the library's default */
    uint64_t compact_min_bytes; /* kvs engine: kvs_options.compact_min_bytes; 0: default */
    uint64_t max_index_memory;  /* kvs engine: kvs_options.max_index_memory; 0: no limit */
    int64_t compact_rate;     /* kvs engine: kvs_options.compact_rate (0: no limit); -1: default */
    int compact_nice;         /* kvs engine: kvs_options.compact_nice; -1: default */
    const char *config_file;  /* the file read at start (absolute), NULL: none (CONFIG REWRITE) */
    char **owned;             /* config.c: the strings it allocated, one slot per option */
    const char *checkpoint_dir; /* where SAVE and BGSAVE put checkpoints (each in a directory
                                   named for its unix time); NULL: DIR/checkpoints */
} kvs_server_config;

/* Every option at its default (config.c). */
void kvs_server_config_init(kvs_server_config *c);
/* Free the strings c owns; c is then as after kvs_server_config_init's memset. */
void kvs_server_config_free(kvs_server_config *c);
/* kvs-server's command line (and the --config file it names) into c, which
 * kvs_server_config_init prepared: -1 if the server is to run, else the exit status (after
 * --help, --version or --dump-config, or an error printed on stderr). */
int kvs_server_config_args(kvs_server_config *c, int argc, char **argv);
/* Run until SIGINT/SIGTERM or SHUTDOWN. Returns 0 on a clean stop, non-zero (after logging why)
 * if the server could not start. */
int kvs_server_run(const kvs_server_config *cfg);

/* ---- internal: shared by the files of src/server ---- */

typedef struct server server;

/* Checkpoints (cmd_save.c): SAVE, BGSAVE, LASTSAVE. INFO reads server_save_get's copy, never
 * these fields (they are under mu). */
struct server_save {
    pthread_mutex_t mu;
    int64_t last_save;        /* unix time of the last checkpoint that succeeded; the server's
                                 start until one has (Redis's LASTSAVE does the same) */
    int last_status;          /* 0: the last one succeeded (or none was tried), else its KVS_E* */
    bool saving;              /* a SAVE or a BGSAVE runs: one at a time (they would race for
                                 the directory of one second) */
    bool in_progress;         /* a BGSAVE runs */
    bool joinable;            /* thread was started and not joined yet */
    uint64_t writes_at_save;  /* kvs_stats.writes as the last successful checkpoint began */
    int64_t last_secs;        /* how long the last checkpoint took, s; -1: none yet */
    uint64_t saves;           /* checkpoints that succeeded since start */
    int64_t bg_started;       /* unix time the running (or last) BGSAVE started */
    char last_path[4096];     /* where the last successful checkpoint went ("": none) */
    pthread_t thread;
};
/* What INFO needs of it: rdb_last_save_time = last_save, rdb_bgsave_in_progress = in_progress,
 * rdb_last_bgsave_status = last_status == 0 ? "ok" : "err", rdb_changes_since_last_save =
 * changes (records written since the last successful checkpoint began; since start before
 * one), rdb_current_bgsave_time_sec = in_progress ? now - bg_started : -1,
 * rdb_last_bgsave_time_sec = last_secs, rdb_saves = saves. */
typedef struct server_save_status {
    int64_t last_save;
    bool in_progress;
    int last_status;
    uint64_t changes;
    int64_t bg_started;
    int64_t last_secs;
    uint64_t saves;
    char last_path[4096];
} server_save_status;

#define WATCH_SLOTS 16384 /* server.touched: 128 KiB, fits a core's L2 */
typedef struct worker worker;

/* What the acceptor and every loop count together (atomics; the rest is per loop: stats.h). */
struct server_stats {
    uint64_t connections_received, rejected;
    uint64_t clients; /* connected now */
};

/* Redis's instantaneous metrics: sampled every INFO_SAMPLE_MS, the mean of the last
 * INFO_SAMPLES samples (Redis: 100 ms and 16). Only the acceptor's thread touches the ring. */
#define INFO_SAMPLE_MS 100
#define INFO_SAMPLES 16
enum { INFO_OPS, INFO_NET_IN, INFO_NET_OUT, INFO_METRICS };

typedef struct info_state {
    char run_id[41];             /* 40 random hex digits, new at every start */
    uint64_t peak_memory;        /* used_memory's highest sample (atomic) */
    uint64_t rate[INFO_METRICS]; /* per second, the mean of the ring (atomic; the acceptor's) */
    struct {
        uint64_t last, last_ms;  /* the counter and the time at the previous sample */
        uint64_t ring[INFO_SAMPLES];
    } metric[INFO_METRICS];
    unsigned idx, ticks;
    uint64_t expired_base;       /* the engine's expired_keys at CONFIG RESETSTAT (atomic) */
} info_state;

struct server {
    kvs_server_config *cfg;   /* the server's own copy; CONFIG SET changes it (cfg_mu) */
    kvs_t *db;
    worker *workers;
    int nworkers;
    bool beyond_loopback;     /* bound beyond loopback: without a password (requirepass, which
                               * CONFIG SET may change) only loopback clients are served
                               * (Redis's protected mode, conn.c) */
    char bound[128];          /* the address actually listened on */
    uint32_t maxclients;      /* in force: cfg->maxclients, lowered at start to what the
                               * open-file limit leaves for clients (server.c, fd_plan) */
    uint64_t fds_kept;        /* the descriptors kvs keeps for itself (fd_plan): what the
                               * open-file limit must hold besides maxclients */
    uint64_t start_usec;
    uint32_t next_worker;
    uint64_t next_conn_id;    /* atomic */
    uint64_t handing;         /* sockets accepted and not yet adopted by a loop thread (atomic) */
    struct server_stats st;   /* atomics */
    void (*request_shutdown)(server *s);
    struct kvs_pool *pool;    /* blocking engine work; NULL when commits run inline */
    bool hold_replies;        /* sync always: a write's reply waits for its sync (conn.c) */
    pthread_mutex_t durable_mu; /* the workers' durable_open (server_on_durable) */
    pthread_mutex_t clients_mu; /* the workers' connection lists and names (cmd_client.c) */
    pthread_mutex_t cfg_mu;   /* CONFIG SET/GET/REWRITE, and cfg's strings (requirepass) */
    /* Writes as WATCH sees them (cmd_multi.c): a count per slot of key hashes, bumped before
     * every write command's ops are committed (atomics). */
    uint64_t touched[WATCH_SLOTS];
    info_state info;          /* cmd_info.c */
    struct server_save save;  /* cmd_save.c */
};
/* cmd_save.c: set up at start (before the loops), and stop — wait for a BGSAVE that runs — after
 * the loops, before the engine closes. */
void server_save_init(server *s);
void server_save_stop(server *s);
/* A consistent copy of the checkpoint state, for INFO. */
void server_save_get(server *s, server_save_status *out);

/* cmd_info.c */
/* At start, before the loops run: run_id. */
void info_init(server *s);
/* Every INFO_SAMPLE_MS on the acceptor's thread (server.c): instantaneous metrics, peak memory. */
void info_sample(server *s);
/* CONFIG RESETSTAT: zero the statistics Redis zeroes. self: the caller's loop, reset at once;
 * the others at their next turn (their counters are their own). NULL: no caller loop. */
void info_reset_stats(server *s, worker *self);

/* loop.c */
int workers_start(server *s);
/* kvs_options.on_durable (the engine's sync thread): wake every loop to flush held replies. */
void server_on_durable(void *ctx);
void workers_hand(server *s, int fd);
void workers_stop(server *s);

/* server.c: CONFIG SET maxclients n — can the open-file limit be made to fit it (raised if
 * need be)? 0, or -1 with why set. */
int server_maxclients_check(server *s, uint32_t n, char *why, size_t whylen);
/* Is a password set (requirepass)? Does pass (plen bytes) match it? Either takes cfg_mu. */
bool server_password_required(server *s);
bool server_password_matches(server *s, const char *pass, size_t plen);

/* conn.c: a new connection on worker w's loop */
void conn_accept(worker *w, int fd);

#endif
