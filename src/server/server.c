/*
 * server.c — starting and stopping kvs-server.
 *
 * Start-up, in an order that fails early and says why: open the engine (the directory's lock and
 * engine checks happen here), bind the listening socket (a busy port is an error: no SO_REUSEPORT,
 * so a second server cannot silently share the port), start the loop threads, log what is running.
 * The main thread then runs the acceptor loop: accept4 on the listening socket, hand each socket
 * to the next loop thread.
 *
 * Shutdown (SIGINT, SIGTERM or SHUTDOWN): stop accepting, let every loop thread finish the
 * command it is in and write what it has queued (bounded), join them, then close the engine —
 * which syncs — and return 0.
 */
#include "server/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "pool/pool.h"
#include "server/conn.h"
#include "util/clock.h"
#include "util/log.h"

#define BACKLOG 511

void kvs_server_config_init(kvs_server_config *c)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    memset(c, 0, sizeof *c);
    c->addr = KVS_SERVER_DEFAULT_ADDR;
    c->dir = ".";
    c->threads = cores > 0 ? (int)cores : 1;
    c->sync = KVS_SYNC_EVERYSEC;
    c->maxclients = 10000;
    c->log_level = KVS_LOG_INFO;
    resp_limits_default(&c->limits);
    c->max_query = c->limits.max_bulk + (1u << 20);
    c->max_output = 64u << 20;
    c->pool = "shared";
    c->pool_threads = 16;
    c->offload = -1;
}

typedef struct acceptor {
    server s;
    uv_loop_t loop;
    uv_poll_t poll;
    uv_signal_t sigint, sigterm;
    uv_async_t shutdown;
    int fd;
} acceptor;

/* Parse "IP:PORT" / "[IPv6]:PORT" into ss. */
static int parse_addr(const char *addr, struct sockaddr_storage *ss)
{
    char host[INET6_ADDRSTRLEN + 2];
    const char *colon;
    char *end;
    long port;

    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':' || (size_t)(close - addr - 1) >= sizeof host)
            return -1;
        snprintf(host, sizeof host, "%.*s", (int)(close - addr - 1), addr + 1);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon || (size_t)(colon - addr) >= sizeof host)
            return -1;
        snprintf(host, sizeof host, "%.*s", (int)(colon - addr), addr);
    }
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end || errno || port < 0 || port > 65535)
        return -1;
    memset(ss, 0, sizeof *ss);
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0 && strchr(host, '.'))
        return 0;
    if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0 && strchr(host, ':'))
        return 0;
    return -1;
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

static void name_addr(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];

    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        uv_ip4_name(a, ip, sizeof ip);
        snprintf(out, cap, "%s:%d", ip, ntohs(a->sin_port));
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        uv_ip6_name(a, ip, sizeof ip);
        snprintf(out, cap, "[%s]:%d", ip, ntohs(a->sin6_port));
    }
}

static int listen_on(acceptor *a, const char *addr)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int one = 1;

    if (parse_addr(addr, &ss) < 0) {
        LOG_ERROR("invalid address '%s': expected IP:PORT or [IPv6]:PORT", addr);
        return -1;
    }
    a->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (a->fd < 0) {
        LOG_ERROR("socket: %s", strerror(errno));
        return -1;
    }
    setsockopt(a->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    len = ss.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    if (bind(a->fd, (struct sockaddr *)&ss, len) < 0 || listen(a->fd, BACKLOG) < 0) {
        LOG_ERROR("cannot listen on %s: %s", addr, strerror(errno));
        return -1;
    }
    len = sizeof ss;
    getsockname(a->fd, (struct sockaddr *)&ss, &len);
    name_addr(&ss, a->s.bound, sizeof a->s.bound);
    a->s.protected_mode = !is_loopback(&ss) && !a->s.cfg->requirepass;
    return 0;
}

static void on_accept(uv_poll_t *p, int status, int events)
{
    acceptor *a = p->data;

    (void)events;
    if (status < 0)
        return;
    for (;;) {
        int fd = accept4(a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                LOG_WARN("accept: %s (raise the open-file limit or lower --maxclients)",
                         strerror(errno));
            else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                LOG_WARN("accept: %s", strerror(errno));
            return;
        }
        workers_hand(&a->s, fd);
    }
}

static void begin_shutdown(acceptor *a)
{
    if (uv_is_closing((uv_handle_t *)&a->shutdown))
        return;
    LOG_INFO("shutting down");
    uv_close((uv_handle_t *)&a->poll, NULL);
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
    uv_close((uv_handle_t *)&a->shutdown, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    LOG_INFO("received %s", signum == SIGINT ? "SIGINT" : "SIGTERM");
    begin_shutdown(h->data);
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

static const char *sync_name(kvs_sync s)
{
    return s == KVS_SYNC_ALWAYS ? "always" : s == KVS_SYNC_NEVER ? "never" : "everysec";
}

static int open_engine(acceptor *a)
{
    const kvs_server_config *cfg = a->s.cfg;
    kvs_options opt;
    int rc;

    kvs_options_init(&opt);
    opt.engine = cfg->engine;
    opt.sync = cfg->sync;
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
                    (cfg->sync == KVS_SYNC_ALWAYS || strcmp(st.engine, "lmdb") == 0));
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
    kvs_stats st;
    int status = 1;

    if (!a)
        return 1;
    kvs_log_set_level(cfg->log_level);
    signal(SIGPIPE, SIG_IGN);
    a->fd = -1;
    a->s.cfg = cfg;
    a->s.start_usec = clock_usec();
    a->s.request_shutdown = request_shutdown;
    if (open_engine(a) < 0 || listen_on(a, cfg->addr) < 0)
        goto out;
    if (uv_loop_init(&a->loop) < 0)
        goto out;
    uv_poll_init(&a->loop, &a->poll, a->fd);
    uv_signal_init(&a->loop, &a->sigint);
    uv_signal_init(&a->loop, &a->sigterm);
    uv_async_init(&a->loop, &a->shutdown, on_shutdown);
    a->poll.data = a->sigint.data = a->sigterm.data = a->shutdown.data = a;
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
             "%llu keys",
             KVS_VERSION_STRING, st.engine, a->s.bound, cfg->dir, sync_name(cfg->sync),
             cfg->threads, (unsigned long long)st.keys);
    if (a->s.protected_mode)
        LOG_WARN("protected mode: bound beyond loopback without --requirepass, so only loopback "
                 "clients are served");
    uv_poll_start(&a->poll, UV_READABLE, on_accept);
    uv_run(&a->loop, UV_RUN_DEFAULT);
    workers_stop(&a->s);
    status = 0;
out_loop:
    if (a->s.pool)
        kvs_pool_free(a->s.pool);
    uv_loop_close(&a->loop);
out:
    if (a->fd >= 0)
        close(a->fd);
    if (a->s.db) {
        int rc = kvs_close(a->s.db);
        if (rc < 0) {
            LOG_ERROR("closing the engine: %s: %s", kvs_strerror(rc), kvs_last_error());
            status = 1;
        } else if (status == 0) {
            LOG_INFO("stopped cleanly");
        }
    }
    free(a);
    return status;
}
