/*
 * server.c — starting and stopping kvs-server.
 *
 * Start-up, in an order that fails early and says why: open the engine (the directory's lock and
 * engine checks happen here), size maxclients to the open-file limit, bind the listening socket
 * (a busy port is an error: no SO_REUSEPORT, so a second server cannot silently share the port),
 * start the loop threads, log what is running. The main thread then runs the acceptor loop:
 * accept4 on the listening socket, hand each socket to the next loop thread.
 *
 * File descriptors. Every client costs one, and the open-file limit (RLIMIT_NOFILE) is often low
 * (1024 under systemd). At start the soft limit is raised to what maxclients needs, as far as the
 * hard limit allows; if that is not enough, maxclients is lowered to fit, with one warning, as
 * Redis does. Clients past it are accepted and refused with Redis's error at once, on the
 * acceptor's thread, so that a burst of them never holds more descriptors than the budget has
 * (conn.c checks again, exactly, when a loop thread adopts a socket). Should
 * accept4 still run out (the engine grew into the budget, the limit was lowered at run time),
 * the acceptor pauses instead of spinning on a listening socket that stays readable: it stops
 * polling it, answers the clients waiting in the kernel's accept queue with the same error
 * through a spare descriptor (left there they would wait, ahead of every later client, for an fd
 * to free up), and retries on a timer until accept4 works again — one warning when that starts,
 * one line when it ends.
 *
 * Shutdown (SIGINT, SIGTERM or SHUTDOWN): stop accepting, let every loop thread finish the
 * command it is in and write what it has queued (bounded), join them, then close the engine —
 * which syncs — and return 0.
 */
#include "server/server.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>
#include <uv.h>

#include "engine/engine.h"
#include "pool/pool.h"
#include "server/config.h"
#include "server/conn.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/net.h"
#include "util/syncmode.h"

#define BACKLOG 511

/*
 * The descriptors kvs holds besides its clients' sockets. What is open once the engine is (stdio,
 * the directory's lock, MANIFEST and every live segment of the kvs engine — one per 8 MB of data —, LMDB's data
 * and lock files) is counted; what start-up opens next is added: FDS_PER_LOOP for each libuv
 * loop (the loop threads, the acceptor's, and the uv pool's if it runs) and FDS_FIXED. On top,
 * FD_HEADROOM for what the engine opens while running — a segment each 8 MB written before
 * compaction retires old ones, compaction's output segment and hint file, a manifest rewrite, a
 * directory fsync — and for refused clients whose sockets are still closing. Redis reserves 32
 * for its own files all told; kvs counts its files and keeps 32 spare beyond them, because its
 * engine's files grow with the data.
 */
#define FDS_PER_LOOP 4  /* libuv on Linux: the epoll fd, uv_async's eventfd, a signal pipe (2) */
#define FDS_FIXED 4     /* libuv's process-wide signal lock pipe (2), listening socket, spare */
#define FD_HEADROOM 32

#define ACCEPT_RETRY_MS 100 /* while accept4 fails for want of a resource, retry this often */
#define REFUSE_BATCH 256    /* most waiting clients answered per retry */

typedef struct acceptor {
    server s;
    kvs_server_config cfg;    /* the server's own copy (s.cfg) */
    uv_loop_t loop;
    uv_poll_t poll;
    uv_timer_t retry;         /* while accepting is paused: tries again (one-shot, re-armed) */
    uv_signal_t sigint, sigterm;
    uv_async_t shutdown;
    uv_timer_t sample;        /* INFO's instantaneous metrics (info_sample), every 100 ms */
    int fd;
    int spare;                /* /dev/null, given up for a moment to answer waiting clients when
                               * no fd is free; -1 while lost (reopened once accept4 works) */
    bool paused;              /* polling stopped: accept4 failed for want of a resource */
    int pause_err;            /* the errno that started the pause */
    uint64_t pause_usec;      /* when it started */
    uint64_t retries, refused; /* during this pause */
} acceptor;

/* ---- file descriptors ---- */

/* The open-file limit now; RLIM_INFINITY (or an error) reads as UINT64_MAX. */
static void nofile_get(uint64_t *soft, uint64_t *hard)
{
    struct rlimit rl;

    *soft = *hard = UINT64_MAX;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    if (rl.rlim_cur != RLIM_INFINITY)
        *soft = rl.rlim_cur;
    if (rl.rlim_max != RLIM_INFINITY)
        *hard = rl.rlim_max;
}

/* Raise the soft open-file limit to want, or as near as the hard limit allows. Never lowers it;
 * a refusal (fs.nr_open) leaves it as it was. */
static void nofile_raise(uint64_t want)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
    setrlimit(RLIMIT_NOFILE, &rl);
}

/* How many descriptors the process has open. */
static uint64_t fds_open(void)
{
    DIR *d = opendir("/proc/self/fd");
    uint64_t soft, hard, n = 0;
    struct dirent *e;

    if (d) {
        while ((e = readdir(d)))
            n += e->d_name[0] != '.';
        closedir(d);
        return n > 0 ? n - 1 : 0; /* not the directory's own */
    }
    nofile_get(&soft, &hard); /* no /proc: ask each number */
    for (uint64_t fd = 0; fd < soft && fd < 65536; fd++)
        n += fcntl((int)fd, F_GETFD) >= 0;
    return n;
}

/* The descriptors kvs keeps for itself, given how many are open now (see FD_HEADROOM). */
static uint64_t fd_reserve(const kvs_server_config *cfg, uint64_t open_now)
{
    return open_now + FDS_PER_LOOP * ((uint64_t)cfg->threads + 2) + FDS_FIXED + FD_HEADROOM;
}

/* With the engine open and nothing listening yet: make the open-file limit fit maxclients, or
 * maxclients fit the limit (s.maxclients). nofile0 is the soft limit the process started with.
 * Fails if the limit leaves no descriptor for clients at all. */
static int fd_plan(acceptor *a, uint64_t nofile0)
{
    const kvs_server_config *cfg = a->s.cfg;
    uint64_t reserve = fd_reserve(cfg, fds_open());
    uint64_t want = cfg->maxclients + reserve, soft, hard;

    nofile_raise(want);
    nofile_get(&soft, &hard);
    if (soft > nofile0)
        LOG_INFO("raised the open-file limit from %llu to %llu", (unsigned long long)nofile0,
                 (unsigned long long)soft);
    a->s.maxclients = cfg->maxclients;
    a->s.fds_kept = reserve;
    a->s.hold_replies = cfg->sync == KVS_SYNC_ALWAYS;
    if (soft >= want)
        return 0;
    if (soft <= reserve) {
        LOG_ERROR("the open-file limit (%llu, hard limit %llu) leaves no file descriptor for "
                  "clients: kvs needs about %llu for itself (engine files, %d loop threads); "
                  "raise it (ulimit -n, or LimitNOFILE= in a systemd unit) or use fewer --threads",
                  (unsigned long long)soft, (unsigned long long)hard,
                  (unsigned long long)reserve, cfg->threads);
        return -1;
    }
    a->s.maxclients = (uint32_t)(soft - reserve);
    LOG_WARN("maxclients lowered from %u to %u: the open-file limit is %llu (hard limit %llu) "
             "and kvs keeps %llu descriptors for itself; to serve %u clients raise it to %llu "
             "(ulimit -n, or LimitNOFILE= in a systemd unit)",
             cfg->maxclients, a->s.maxclients, (unsigned long long)soft,
             (unsigned long long)hard, (unsigned long long)reserve, cfg->maxclients,
             (unsigned long long)want);
    return 0;
}

static int listen_on(acceptor *a, const char *addr)
{
    struct sockaddr_storage ss;
    socklen_t len;
    const char *why;
    int one = 1;

    if (net_parse_addr(addr, true, &ss, &len, &why) < 0) {
        LOG_ERROR("invalid address '%s': %s (expected IP:PORT or [IPv6]:PORT)", addr, why);
        return -1;
    }
    a->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (a->fd < 0) {
        LOG_ERROR("socket: %s", strerror(errno));
        return -1;
    }
    setsockopt(a->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(a->fd, (struct sockaddr *)&ss, len) < 0 || listen(a->fd, BACKLOG) < 0) {
        LOG_ERROR("cannot listen on %s: %s", addr, strerror(errno));
        return -1;
    }
    len = sizeof ss;
    getsockname(a->fd, (struct sockaddr *)&ss, &len);
    net_addr_name((struct sockaddr *)&ss, a->s.bound, sizeof a->s.bound);
    a->s.beyond_loopback = !net_is_loopback((struct sockaddr *)&ss);
    return 0;
}

/* ---- accepting ---- */

static void on_accept(uv_poll_t *p, int status, int events);
static void on_retry(uv_timer_t *t);

/* An accept4 error that concerns one waiting connection only (it was aborted, or Linux passes on
 * a network error pending on it): the next one may be fine. */
static bool accept_err_one(int err)
{
    switch (err) {
    case EINTR: case ECONNABORTED: case EPERM: case EPROTO: case ENETDOWN: case ENOPROTOOPT:
    case EHOSTDOWN: case ENONET: case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH:
        return true;
    default:
        return false;
    }
}

static bool err_no_fd(int err)
{
    return err == EMFILE || err == ENFILE;
}

/* Answer a client there is no room for, and let it go. The socket is new, so the line fits its
 * send buffer; what the client sent already is read off first, so that close sends a FIN and
 * not a reset, which could discard the line before the client reads it. */
static void refuse_socket(int fd)
{
    ssize_t sent = send(fd, KVS_ERR_MAXCLIENTS, sizeof KVS_ERR_MAXCLIENTS - 1, MSG_NOSIGNAL);
    char sink[512];

    (void)sent; /* nothing more to do for a client that is gone */
    for (int i = 0; i < 8 && read(fd, sink, sizeof sink) > 0; i++)
        ;
    close(fd);
}

/* No fd is free: give up the spare for a moment to answer the clients in the accept queue.
 * Left there, each would wait — ahead of every client that comes later, and even after its own
 * client gave up — until an fd frees up; the kernel completed their handshakes, so they cannot
 * tell the server is full. */
static void refuse_waiting(acceptor *a)
{
    if (a->spare < 0)
        return;
    close(a->spare);
    for (int i = 0; i < REFUSE_BATCH; i++) {
        int fd = accept4(a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (accept_err_one(errno))
                continue;
            break;
        }
        refuse_socket(fd);
        a->refused++;
        __atomic_add_fetch(&a->s.st.rejected, 1, __ATOMIC_RELAXED);
    }
    a->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* Are maxclients clients connected, or on their way to a loop thread? A cheap early check that
 * keeps refused sockets from piling up on the loop threads during a burst; conn_accept's is the
 * exact one (a socket between the two counters is missed, and refused there). */
static bool server_full(server *s)
{
    return __atomic_load_n(&s->st.clients, __ATOMIC_RELAXED) +
               __atomic_load_n(&s->handing, __ATOMIC_RELAXED) >=
           __atomic_load_n(&s->maxclients, __ATOMIC_RELAXED); /* CONFIG SET changes it */
}

/* accept4 failed for want of a resource (err). The listening socket stays readable, so polling
 * it would spin: stop, and try again in ACCEPT_RETRY_MS. One warning for the whole episode. */
static void accept_pause(acceptor *a, int err)
{
    if (!a->paused) {
        uint64_t soft, hard;
        a->paused = true;
        a->pause_err = err;
        a->pause_usec = clock_usec();
        a->retries = a->refused = 0;
        uv_poll_stop(&a->poll);
        nofile_get(&soft, &hard);
        if (err_no_fd(err))
            LOG_WARN("accept: %s (%llu clients, open-file limit %llu): answering waiting "
                     "clients \"max number of clients reached\" and retrying every %d ms until "
                     "a descriptor is free; raise the open-file limit or lower --maxclients",
                     strerror(err),
                     (unsigned long long)__atomic_load_n(&a->s.st.clients, __ATOMIC_RELAXED),
                     (unsigned long long)soft, ACCEPT_RETRY_MS);
        else
            LOG_WARN("accept: %s: retrying every %d ms", strerror(err), ACCEPT_RETRY_MS);
    }
    if (err_no_fd(err))
        refuse_waiting(a);
    uv_timer_start(&a->retry, on_retry, ACCEPT_RETRY_MS, 0);
}

/* accept4 works again: poll the listening socket, get the spare back if it was lost. */
static void accept_resume(acceptor *a)
{
    if (!a->paused)
        return;
    a->paused = false;
    uv_timer_stop(&a->retry);
    if (a->spare < 0)
        a->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    uv_poll_start(&a->poll, UV_READABLE, on_accept);
    LOG_INFO("accepting again after %.1f s of '%s' (%llu retries, %llu waiting clients refused)",
             (double)(clock_usec() - a->pause_usec) / 1e6, strerror(a->pause_err),
             (unsigned long long)a->retries, (unsigned long long)a->refused);
}

/* Accept every waiting connection and hand each to a loop thread. */
static void accept_pending(acceptor *a)
{
    for (;;) {
        int fd = accept4(a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            accept_resume(a);
            if (server_full(&a->s)) {
                refuse_socket(fd);
                __atomic_add_fetch(&a->s.st.rejected, 1, __ATOMIC_RELAXED);
            } else {
                workers_hand(&a->s, fd);
            }
            continue;
        }
        int err = errno;
        if (err == EAGAIN) {
            /* Linux takes the descriptor before it looks at the queue: a free one exists. (Were
             * it otherwise, the next client would only start a new pause.) */
            accept_resume(a);
            return;
        }
        if (accept_err_one(err)) {
            LOG_DEBUG("accept: %s", strerror(err));
            continue;
        }
        accept_pause(a, err);
        return;
    }
}

static void on_accept(uv_poll_t *p, int status, int events)
{
    (void)events;
    if (status < 0) /* libuv stopped the handle: retry as for any failing accept */
        accept_pause(p->data, -status);
    else
        accept_pending(p->data);
}

static void on_retry(uv_timer_t *t)
{
    acceptor *a = t->data;

    a->retries++;
    accept_pending(a);
}

static void begin_shutdown(acceptor *a)
{
    if (uv_is_closing((uv_handle_t *)&a->shutdown))
        return;
    LOG_INFO("shutting down");
    sd_notify(0, "STOPPING=1"); /* to systemd, if it started us (Type=notify); else nothing */
    uv_close((uv_handle_t *)&a->poll, NULL);
    uv_close((uv_handle_t *)&a->retry, NULL);
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
    uv_close((uv_handle_t *)&a->shutdown, NULL);
    uv_close((uv_handle_t *)&a->sample, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    LOG_INFO("received %s", signum == SIGINT ? "SIGINT" : "SIGTERM");
    begin_shutdown(h->data);
}

static void on_sample(uv_timer_t *t)
{
    acceptor *a = t->data;
    info_sample(&a->s);
}

static void on_shutdown(uv_async_t *h)
{
    begin_shutdown(h->data);
}

static void request_shutdown(server *s)
{
    acceptor *a = (acceptor *)s; /* s is a's first member */
    uv_async_send(&a->shutdown);
}

static int open_engine(acceptor *a)
{
    const kvs_server_config *cfg = a->s.cfg;
    kvs_options opt;
    int rc;

    kvs_options_init(&opt);
    opt.engine = cfg->engine;
    opt.sync = cfg->sync;
    if (cfg->segment_size)
        opt.segment_size = cfg->segment_size;
    if (cfg->compact_min_bytes)
        opt.compact_min_bytes = cfg->compact_min_bytes;
    opt.max_index_memory = cfg->max_index_memory;
    if (cfg->compact_rate >= 0)
        opt.compact_rate = (uint64_t)cfg->compact_rate;
    if (cfg->compact_nice >= 0)
        opt.compact_nice = cfg->compact_nice;
    opt.on_durable = server_on_durable; /* held replies (conn.c) go when their sync is done */
    opt.durable_ctx = &a->s;
    opt.sync_on_request = 1; /* each loop asks once per turn (loop.c, on_turn_end) */
    if ((rc = kvs_create(&a->s.db)) < 0 || (rc = kvs_configure(a->s.db, &opt)) < 0 ||
        (rc = kvs_open(a->s.db, cfg->dir)) < 0) {
        LOG_ERROR("cannot open the data directory %s: %s%s%s", cfg->dir, kvs_strerror(rc),
                  *kvs_last_error() ? ": " : "", kvs_last_error());
        kvs_close(a->s.db);
        a->s.db = NULL;
        return -1;
    }
    return 0;
}

/* Writes that can block (an fdatasync per commit, or LMDB's commit) go to a pool, so that no
 * loop thread waits on the disk; others are committed on the loop thread, where they cost
 * less than a hand-off. */
static int start_pool(acceptor *a)
{
    const kvs_server_config *cfg = a->s.cfg;
    kvs_stats st;
    int rc;

    kvs_stats_get(a->s.db, &st);
    bool offload = cfg->offload == 1 ||
                   (cfg->offload == -1 &&
                    (kvs_engine_find(st.engine)->caps & KVS_ENGINE_WRITES_BLOCK));
    if (!offload)
        return 0;
    if ((rc = kvs_pool_new(cfg->pool, cfg->pool_threads, &a->s.pool)) < 0) {
        LOG_ERROR("cannot start the %s engine pool of %u threads: %s", cfg->pool,
                  cfg->pool_threads, kvs_last_error());
        return -1;
    }
    LOG_INFO("blocking engine work runs on the %s pool (%u threads)", cfg->pool,
             cfg->pool_threads);
    return 0;
}

int kvs_server_run(const kvs_server_config *cfg)
{
    acceptor *a = calloc(1, sizeof *a);
    uint64_t nofile0, hard;
    kvs_stats st;
    int status = 1;

    if (!a)
        return 1;
    if (config_copy(&a->cfg, cfg) < 0) {
        free(a);
        return 1;
    }
    cfg = &a->cfg; /* from here on the server's own, which CONFIG SET changes */
    kvs_log_set_level(cfg->log_level);
    signal(SIGPIPE, SIG_IGN);
    a->fd = a->spare = -1;
    a->s.cfg = &a->cfg;
    a->s.maxclients = cfg->maxclients;
    a->s.start_usec = clock_usec();
    info_init(&a->s);
    pthread_mutex_init(&a->s.clients_mu, NULL);
    pthread_mutex_init(&a->s.durable_mu, NULL);
    pthread_mutex_init(&a->s.cfg_mu, NULL);
    server_save_init(&a->s);
    a->s.request_shutdown = request_shutdown;
    /* Room for the engine to open its files; fd_plan settles the limit once they are counted. */
    nofile_get(&nofile0, &hard);
    nofile_raise(cfg->maxclients + fd_reserve(cfg, fds_open()));
    if (open_engine(a) < 0 || fd_plan(a, nofile0) < 0 || listen_on(a, cfg->addr) < 0)
        goto out;
    a->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (uv_loop_init(&a->loop) < 0)
        goto out;
    uv_poll_init(&a->loop, &a->poll, a->fd);
    uv_timer_init(&a->loop, &a->retry);
    a->retry.data = a;
    uv_signal_init(&a->loop, &a->sigint);
    uv_signal_init(&a->loop, &a->sigterm);
    uv_async_init(&a->loop, &a->shutdown, on_shutdown);
    uv_timer_init(&a->loop, &a->sample);
    a->poll.data = a->sigint.data = a->sigterm.data = a->shutdown.data = a->sample.data = a;
    uv_signal_start(&a->sigint, on_signal, SIGINT);
    uv_signal_start(&a->sigterm, on_signal, SIGTERM);
    if (start_pool(a) < 0)
        goto out_loop;
    if (workers_start(&a->s) < 0) {
        LOG_ERROR("cannot start the loop threads");
        begin_shutdown(a);
        uv_run(&a->loop, UV_RUN_DEFAULT);
        workers_stop(&a->s);
        goto out_loop;
    }
    kvs_stats_get(a->s.db, &st);
    LOG_INFO("kvs-server %s: engine %s, listening on %s, data directory %s, sync %s, %d threads, "
             "%llu keys, maxclients %u",
             KVS_VERSION_STRING, st.engine, a->s.bound, cfg->dir, sync_mode_name(cfg->sync),
             cfg->threads, (unsigned long long)st.keys, a->s.maxclients);
    if (a->s.beyond_loopback && !cfg->requirepass)
        LOG_WARN("protected mode: bound beyond loopback without --requirepass, so only loopback "
                 "clients are served");
    uv_poll_start(&a->poll, UV_READABLE, on_accept);
    sd_notify(0, "READY=1"); /* listening: systemd's Type=notify may start what depends on us */
    uv_timer_start(&a->sample, on_sample, INFO_SAMPLE_MS, INFO_SAMPLE_MS);
    uv_run(&a->loop, UV_RUN_DEFAULT);
    workers_stop(&a->s);
    server_save_stop(&a->s);
    status = 0;
out_loop:
    if (a->s.pool)
        kvs_pool_free(a->s.pool);
    uv_loop_close(&a->loop);
out:
    if (a->fd >= 0)
        close(a->fd);
    if (a->spare >= 0)
        close(a->spare);
    if (a->s.db) {
        int rc = kvs_close(a->s.db);
        if (rc < 0) {
            LOG_ERROR("closing the engine: %s: %s", kvs_strerror(rc), kvs_last_error());
            status = 1;
        } else if (status == 0) {
            LOG_INFO("stopped cleanly");
        }
    }
    pthread_mutex_destroy(&a->s.cfg_mu);
    kvs_server_config_free(&a->cfg);
    free(a);
    return status;
}

/* ---- what CONFIG changes at run time (config.c) ---- */

int server_maxclients_check(server *s, uint32_t n, char *why, size_t whylen)
{
    uint64_t want = n + s->fds_kept, soft, hard;

    nofile_raise(want);
    nofile_get(&soft, &hard);
    if (soft >= want)
        return 0;
    snprintf(why, whylen, "The operating system is not able to handle the specified number of "
             "clients, try with %llu (the open-file limit is %llu, hard limit %llu)",
             (unsigned long long)(soft > s->fds_kept ? soft - s->fds_kept : 0),
             (unsigned long long)soft, (unsigned long long)hard);
    return -1;
}

bool server_password_required(server *s)
{
    pthread_mutex_lock(&s->cfg_mu);
    bool required = s->cfg->requirepass != NULL;
    pthread_mutex_unlock(&s->cfg_mu);
    return required;
}

bool server_password_matches(server *s, const char *pass, size_t plen)
{
    pthread_mutex_lock(&s->cfg_mu);
    const char *want = s->cfg->requirepass;
    bool ok = !want || (strlen(want) == plen && memcmp(want, pass, plen) == 0);
    pthread_mutex_unlock(&s->cfg_mu);
    return ok;
}
