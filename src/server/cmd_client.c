/*
 * cmd_client.c — CLIENT ID|SETNAME|GETNAME|LIST|INFO|KILL, and TIME.
 *
 * A connection belongs to its loop thread (conn.h), but CLIENT LIST and KILL reach every
 * connection of the server. What they read of another thread's connection is either fixed from
 * its start (id, addresses, fd, creation time), or kept under srv->clients_mu (the name, and the
 * list links: a connection is linked and unlinked under it, so while it is held every linked
 * connection is alive), or read atomically (last command, its time). A kill is never done on
 * another thread's connection: it is posted to the owning loop (worker_post_kill), which closes
 * it, if it is still there, on its own thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "server/cmd.h"
#include "util/array.h"
#include "util/clock.h"

void cmd_time(conn *c, int argc, const char **argv, const size_t *lens)
{
    struct timeval tv;
    char s[24], us[24];

    gettimeofday(&tv, NULL);
    int ns = snprintf(s, sizeof s, "%lld", (long long)tv.tv_sec);
    int nu = snprintf(us, sizeof us, "%lld", (long long)tv.tv_usec);
    resp_array(&c->out, 2);
    resp_bulk(&c->out, s, (size_t)ns);
    resp_bulk(&c->out, us, (size_t)nu);
}

/* One line of CLIENT LIST for k, in Redis's field order (clients parse it); under clients_mu. */
static void client_line(const conn *k, char *line, size_t cap)
{
    uint64_t now = clock_wall_ms(), last = __atomic_load_n(&k->last_ms, __ATOMIC_RELAXED);
    const char *cmd = __atomic_load_n(&k->last_cmd, __ATOMIC_RELAXED);

    snprintf(line, cap,
             "id=%llu addr=%s laddr=%s fd=%d name=%s age=%llu idle=%llu flags=%s db=0 sub=0 "
             "psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 "
             "obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=%s user=default redir=-1 resp=2\n",
             (unsigned long long)k->id, k->peer, k->laddr, k->fd, k->name ? k->name : "",
             (unsigned long long)(now > k->created_ms ? (now - k->created_ms) / 1000 : 0),
             (unsigned long long)(now > last ? (now - last) / 1000 : 0),
             k->multi ? "x" : "N", cmd ? cmd : "NULL");
}

static void client_list(conn *c, bool self_only)
{
    server *s = c->srv;
    char *text = NULL, line[1024];
    size_t len = 0, cap = 0;

    if (self_only) {
        pthread_mutex_lock(&s->clients_mu);
        client_line(c, line, sizeof line);
        pthread_mutex_unlock(&s->clients_mu);
        return (void)resp_bulk(&c->out, line, strlen(line));
    }
    pthread_mutex_lock(&s->clients_mu);
    for (int i = 0; i < s->nworkers; i++)
        for (const conn *k = s->workers[i].conns; k; k = k->next) {
            if (k->kill_posted)
                continue; /* as good as gone, as in Redis once CLIENT KILL answered */
            client_line(k, line, sizeof line);
            size_t n = strlen(line);
            if (ARR_RESERVE(text, cap, len + n) < 0)
                break;
            memcpy(text + len, line, n);
            len += n;
        }
    pthread_mutex_unlock(&s->clients_mu);
    resp_bulk(&c->out, text ? text : "", len);
    free(text);
}

/* Redis's rule for names: printable, no spaces. */
static bool name_ok(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < '!' || p[i] > '~')
            return false;
    return true;
}

static void client_setname(conn *c, const char *p, size_t n)
{
    char *name = NULL;

    if (!name_ok(p, n))
        return (void)resp_error(&c->out, "ERR Client names cannot contain spaces, newlines or "
                                         "special characters.");
    if (n && !(name = malloc(n + 1)))
        return (void)resp_error(&c->out, "ERR out of memory");
    if (n) {
        memcpy(name, p, n);
        name[n] = 0;
    }
    pthread_mutex_lock(&c->srv->clients_mu);
    char *old = c->name;
    c->name = name;
    pthread_mutex_unlock(&c->srv->clients_mu);
    free(old);
    resp_ok(&c->out);
}

/* A kill filter of CLIENT KILL: by id (id != 0) or by peer address (addr). */
typedef struct kill_filter {
    uint64_t id;
    const char *addr, *laddr;
    size_t alen, llen;
    bool skipme;
} kill_filter;

static bool kill_matches(const conn *c, const conn *k, const kill_filter *f)
{
    if (k->kill_posted || (f->skipme && k == c))
        return false;
    if (f->id && k->id != f->id)
        return false;
    if (f->addr && !(strlen(k->peer) == f->alen && memcmp(k->peer, f->addr, f->alen) == 0))
        return false;
    if (f->laddr && !(strlen(k->laddr) == f->llen && memcmp(k->laddr, f->laddr, f->llen) == 0))
        return false;
    return true;
}

/* Kill the connections f matches: c itself after its reply, others by their own loop. */
static long long client_kill(conn *c, const kill_filter *f)
{
    server *s = c->srv;
    long long n = 0;
    bool self = false;

    pthread_mutex_lock(&s->clients_mu);
    for (int i = 0; i < s->nworkers; i++)
        for (conn *k = s->workers[i].conns; k; k = k->next)
            if (kill_matches(c, k, f)) {
                n++;
                if (k == c)
                    self = true;
                else
                    worker_post_kill(k->w, k->id);
                k->kill_posted = true;
            }
    pthread_mutex_unlock(&s->clients_mu);
    if (self)
        c->close_after_flush = true; /* conn_flush closes it once the reply is out */
    return n;
}

static void cmd_client_kill(conn *c, int argc, const char **argv, const size_t *lens)
{
    kill_filter f = {.skipme = true};

    if (argc == 3) { /* the old form: CLIENT KILL addr:port */
        f = (kill_filter){.addr = argv[2], .alen = lens[2]};
        if (client_kill(c, &f) == 0)
            return (void)resp_error(&c->out, "ERR No such client");
        return (void)resp_ok(&c->out);
    }
    if (argc % 2 != 0)
        return (void)resp_error(&c->out, "%s", ERR_SYNTAX);
    for (int i = 2; i < argc; i += 2) {
        const char *v = argv[i + 1];
        size_t vn = lens[i + 1];
        long long id;
        if (arg_is(argv[i], lens[i], "ID")) {
            if (!redis_str2ll(v, vn, &id) || id <= 0)
                return (void)resp_error(&c->out, "ERR client-id should be greater than 0");
            f.id = (uint64_t)id;
        } else if (arg_is(argv[i], lens[i], "ADDR")) {
            f.addr = v, f.alen = vn;
        } else if (arg_is(argv[i], lens[i], "LADDR")) {
            f.laddr = v, f.llen = vn;
        } else if (arg_is(argv[i], lens[i], "SKIPME")) {
            if (arg_is(v, vn, "yes"))
                f.skipme = true;
            else if (arg_is(v, vn, "no"))
                f.skipme = false;
            else
                return (void)resp_error(&c->out, "%s", ERR_SYNTAX);
        } else {
            return (void)resp_error(&c->out, "%s", ERR_SYNTAX);
        }
    }
    resp_int(&c->out, client_kill(c, &f));
}

void cmd_client(conn *c, int argc, const char **argv, const size_t *lens)
{
    const char *sub = argv[1];
    size_t n = lens[1];

    if (arg_is(sub, n, "ID") && argc == 2) {
        resp_int(&c->out, (long long)c->id);
    } else if (arg_is(sub, n, "SETNAME") && argc == 3) {
        client_setname(c, argv[2], lens[2]);
    } else if (arg_is(sub, n, "GETNAME") && argc == 2) {
        if (c->name)
            resp_bulk(&c->out, c->name, strlen(c->name));
        else
            resp_nil(&c->out);
    } else if (arg_is(sub, n, "LIST")) {
        client_list(c, false);
    } else if (arg_is(sub, n, "INFO") && argc == 2) {
        client_list(c, true);
    } else if (arg_is(sub, n, "KILL") && argc >= 3) {
        cmd_client_kill(c, argc, argv, lens);
    } else if (arg_is(sub, n, "ID") || arg_is(sub, n, "SETNAME") || arg_is(sub, n, "GETNAME") ||
               arg_is(sub, n, "INFO") || arg_is(sub, n, "KILL")) {
        char lower[16];
        size_t i;
        for (i = 0; i < n && i + 1 < sizeof lower; i++)
            lower[i] = (char)(sub[i] | 0x20);
        lower[i] = 0;
        resp_error(&c->out, "ERR wrong number of arguments for 'client|%s' command", lower);
    } else {
        resp_error(&c->out, "ERR unknown subcommand '%.*s'. Try CLIENT HELP.", (int)n, sub);
    }
}
