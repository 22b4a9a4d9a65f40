/*
 * commands.c — the commands kvs-server understands, in Redis's shapes.
 *
 * The table gives each command its arity in Redis's convention (N: exactly N arguments counting
 * the name; -N: at least N) and whether it may run before AUTH. Dispatch checks both, so handlers
 * only do their work. Errors use Redis's words, which clients match on: "-ERR unknown command",
 * "-ERR wrong number of arguments for '...' command", "-NOAUTH", "-WRONGPASS".
 *
 * Values go from where the engine holds them straight into the reply (kvs_read): one copy.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "server/conn.h"
#include "util/clock.h"
#include "util/log.h"

typedef void (*cmd_fn)(conn *c, int argc, const char **argv, const size_t *lens);

typedef struct command {
    const char *name;
    int arity;
    bool noauth; /* may run before AUTH */
    cmd_fn fn;
} command;

static bool arg_is(const char *a, size_t n, const char *word)
{
    return strlen(word) == n && strncasecmp(a, word, n) == 0;
}

/* An engine failure as a reply: the client sees the reason, the log the detail. */
static void engine_error(conn *c, const char *what, int rc)
{
    LOG_WARN("%s failed: %s: %s", what, kvs_strerror(rc), kvs_last_error());
    resp_error(&c->out, "ERR %s", kvs_strerror(rc));
}

static void cmd_ping(conn *c, int argc, const char **argv, const size_t *lens)
{
    if (argc == 1)
        resp_status(&c->out, "PONG");
    else
        resp_bulk(&c->out, argv[1], lens[1]);
}

static void cmd_echo(conn *c, int argc, const char **argv, const size_t *lens)
{
    resp_bulk(&c->out, argv[1], lens[1]);
}

/* kvs_read callback: the value straight from the store into the reply. */
static int reply_bulk(void *ctx, const void *val, size_t vlen)
{
    conn *c = ctx;
    return resp_bulk(&c->out, val, vlen) < 0 ? KVS_ENOMEM : 0;
}

static void cmd_get(conn *c, int argc, const char **argv, const size_t *lens)
{
    int rc = kvs_read(c->srv->db, argv[1], lens[1], reply_bulk, c);

    if (rc == KVS_ENOTFOUND)
        resp_nil(&c->out);
    else if (rc < 0)
        engine_error(c, "GET", rc);
}

static void cmd_set(conn *c, int argc, const char **argv, const size_t *lens)
{
    int rc;

    if (argc > 3) {
        resp_error(&c->out, "ERR syntax error");
        return;
    }
    rc = kvs_set(c->srv->db, argv[1], lens[1], argv[2], lens[2]);
    if (rc < 0)
        engine_error(c, "SET", rc);
    else
        resp_ok(&c->out);
}

static void cmd_mset(conn *c, int argc, const char **argv, const size_t *lens)
{
    if (argc % 2 == 0) {
        resp_error(&c->out, "ERR wrong number of arguments for 'mset' command");
        return;
    }
    for (int i = 1; i < argc; i += 2) {
        int rc = kvs_set(c->srv->db, argv[i], lens[i], argv[i + 1], lens[i + 1]);
        if (rc < 0) {
            engine_error(c, "MSET", rc);
            return;
        }
    }
    resp_ok(&c->out);
}

static void cmd_mget(conn *c, int argc, const char **argv, const size_t *lens)
{
    resp_array(&c->out, argc - 1);
    for (int i = 1; i < argc; i++)
        if (kvs_read(c->srv->db, argv[i], lens[i], reply_bulk, c) < 0)
            resp_nil(&c->out); /* Redis answers nil for what it cannot give as a string */
}

/* kvs_read callback for EXISTS: found is all it needs. */
static int found_it(void *ctx, const void *val, size_t vlen)
{
    (void)ctx, (void)val, (void)vlen;
    return 0;
}

static void cmd_del(conn *c, int argc, const char **argv, const size_t *lens)
{
    long long n = 0;

    for (int i = 1; i < argc; i++) {
        int rc = kvs_remove(c->srv->db, argv[i], lens[i]);
        if (rc == 0)
            n++;
        else if (rc != KVS_ENOTFOUND) {
            engine_error(c, "DEL", rc);
            return;
        }
    }
    resp_int(&c->out, n);
}

static void cmd_exists(conn *c, int argc, const char **argv, const size_t *lens)
{
    long long n = 0;

    for (int i = 1; i < argc; i++)
        n += kvs_read(c->srv->db, argv[i], lens[i], found_it, NULL) == 0;
    resp_int(&c->out, n);
}

static void cmd_dbsize(conn *c, int argc, const char **argv, const size_t *lens)
{
    kvs_stats st;
    int rc = kvs_stats_get(c->srv->db, &st);

    if (rc < 0)
        engine_error(c, "DBSIZE", rc);
    else
        resp_int(&c->out, (long long)st.keys);
}

static void cmd_select(conn *c, int argc, const char **argv, const size_t *lens)
{
    if (arg_is(argv[1], lens[1], "0"))
        resp_ok(&c->out);
    else
        resp_error(&c->out, "ERR DB index is out of range");
}

static void cmd_quit(conn *c, int argc, const char **argv, const size_t *lens)
{
    resp_ok(&c->out);
    conn_close_after_flush(c);
}

static bool check_password(conn *c, const char *user, size_t ulen, const char *pass, size_t plen)
{
    const char *want = c->srv->cfg->requirepass;

    if (user && !arg_is(user, ulen, "default"))
        return false;
    return want && strlen(want) == plen && memcmp(want, pass, plen) == 0;
}

static void cmd_auth(conn *c, int argc, const char **argv, const size_t *lens)
{
    if (argc > 3) {
        resp_error(&c->out, "ERR syntax error");
        return;
    }
    if (!c->srv->cfg->requirepass && argc == 2) {
        resp_error(&c->out, "ERR AUTH <password> called without any password configured for "
                            "the default user. Are you sure your configuration is correct?");
        return;
    }
    bool ok = argc == 2 ? check_password(c, NULL, 0, argv[1], lens[1])
                        : check_password(c, argv[1], lens[1], argv[2], lens[2]);
    if (!ok) {
        resp_error(&c->out, "WRONGPASS invalid username-password pair or user is disabled.");
        return;
    }
    c->authed = true;
    resp_ok(&c->out);
}

static void cmd_hello(conn *c, int argc, const char **argv, const size_t *lens)
{
    int i = 1;

    if (argc > 1) {
        if (!arg_is(argv[1], lens[1], "2")) {
            bool num = lens[1] > 0 && lens[1] < 10 && strspn(argv[1], "0123456789") >= lens[1];
            resp_error(&c->out, num ? "NOPROTO unsupported protocol version"
                                    : "ERR Protocol version is not an integer or out of range");
            return;
        }
        i = 2;
    }
    for (; i < argc; i++) {
        if (arg_is(argv[i], lens[i], "AUTH") && i + 2 < argc) {
            if (!check_password(c, argv[i + 1], lens[i + 1], argv[i + 2], lens[i + 2])) {
                resp_error(&c->out,
                           "WRONGPASS invalid username-password pair or user is disabled.");
                return;
            }
            c->authed = true;
            i += 2;
        } else if (arg_is(argv[i], lens[i], "SETNAME") && i + 1 < argc) {
            i += 1;
        } else {
            resp_error(&c->out, "ERR Syntax error in HELLO option '%.*s'", (int)lens[i], argv[i]);
            return;
        }
    }
    if (!c->authed) {
        resp_error(&c->out, "NOAUTH HELLO must be called with the client already authenticated, "
                            "otherwise the HELLO <proto> AUTH <user> <pass> option can be used "
                            "to authenticate the client and select the RESP protocol version at "
                            "the same time");
        return;
    }
    resp_array(&c->out, 14);
    resp_bulk(&c->out, "server", 6);
    resp_bulk(&c->out, "kvs", 3);
    resp_bulk(&c->out, "version", 7);
    resp_bulk(&c->out, KVS_VERSION_STRING, strlen(KVS_VERSION_STRING));
    resp_bulk(&c->out, "proto", 5);
    resp_int(&c->out, 2);
    resp_bulk(&c->out, "id", 2);
    resp_int(&c->out, (long long)c->id);
    resp_bulk(&c->out, "mode", 4);
    resp_bulk(&c->out, "standalone", 10);
    resp_bulk(&c->out, "role", 4);
    resp_bulk(&c->out, "master", 6);
    resp_bulk(&c->out, "modules", 7);
    resp_array(&c->out, 0);
}

static const command commands[];

static void cmd_command(conn *c, int argc, const char **argv, const size_t *lens)
{
    int n = 0;

    while (commands[n].name)
        n++;
    if (argc >= 2 && arg_is(argv[1], lens[1], "COUNT")) {
        resp_int(&c->out, n);
    } else if (argc >= 2 && arg_is(argv[1], lens[1], "DOCS")) {
        resp_array(&c->out, 0); /* no docs: redis-cli then simply gives no hints */
    } else if (argc == 1) {
        /* Each entry: name, arity, flags, first key, last key, step (Redis's first six). */
        resp_array(&c->out, n);
        for (int i = 0; i < n; i++) {
            const command *k = &commands[i];
            resp_array(&c->out, 6);
            resp_bulk(&c->out, k->name, strlen(k->name));
            resp_int(&c->out, k->arity);
            resp_array(&c->out, 0);
            bool keyed = k->fn == cmd_get || k->fn == cmd_set || k->fn == cmd_del ||
                         k->fn == cmd_exists || k->fn == cmd_mget || k->fn == cmd_mset;
            resp_int(&c->out, keyed ? 1 : 0);
            resp_int(&c->out, keyed ? (k->arity == 2 || k->arity == 3 ? 1 : -1) : 0);
            resp_int(&c->out, keyed ? (k->fn == cmd_mset ? 2 : 1) : 0);
        }
    } else {
        resp_error(&c->out, "ERR unknown subcommand '%.*s'. Try COMMAND HELP.", (int)lens[1],
                   argv[1]);
    }
}

/* CONFIG GET: the few parameters clients ask for (redis-benchmark: save, appendonly). */
static void cmd_config(conn *c, int argc, const char **argv, const size_t *lens)
{
    const kvs_server_config *cfg = c->srv->cfg;
    char maxclients[24], threads[24];
    const char *names[] = {"save", "appendonly", "appendfsync", "maxclients", "databases",
                           "io-threads", "dir"};
    const char *sync = cfg->sync == KVS_SYNC_ALWAYS ? "always"
                       : cfg->sync == KVS_SYNC_NEVER ? "no" : "everysec";

    if (!arg_is(argv[1], lens[1], "GET")) {
        resp_error(&c->out, "ERR CONFIG subcommand '%.*s' is not supported by kvs (only GET)",
                   (int)lens[1], argv[1]);
        return;
    }
    if (argc != 3) {
        resp_error(&c->out, "ERR wrong number of arguments for 'config|get' command");
        return;
    }
    snprintf(maxclients, sizeof maxclients, "%u", cfg->maxclients);
    snprintf(threads, sizeof threads, "%d", cfg->threads);
    const char *values[] = {"", "yes", sync, maxclients, "1", threads, cfg->dir};
    int n = (int)(sizeof names / sizeof names[0]), hits = 0;
    bool all = lens[2] == 1 && argv[2][0] == '*';
    for (int i = 0; i < n; i++)
        hits += all || arg_is(argv[2], lens[2], names[i]);
    resp_array(&c->out, 2 * hits);
    for (int i = 0; i < n; i++)
        if (all || arg_is(argv[2], lens[2], names[i])) {
            resp_bulk(&c->out, names[i], strlen(names[i]));
            resp_bulk(&c->out, values[i], strlen(values[i]));
        }
}

static void cmd_shutdown(conn *c, int argc, const char **argv, const size_t *lens)
{
    for (int i = 1; i < argc; i++)
        if (!arg_is(argv[i], lens[i], "NOSAVE") && !arg_is(argv[i], lens[i], "SAVE") &&
            !arg_is(argv[i], lens[i], "NOW") && !arg_is(argv[i], lens[i], "FORCE")) {
            resp_error(&c->out, "ERR syntax error");
            return;
        }
    LOG_INFO("SHUTDOWN requested by client %s", c->peer);
    c->srv->request_shutdown(c->srv);
}

/* INFO: text in Redis's "# Section" / "field:value" shape. */
typedef struct text {
    char *p;
    size_t len, cap;
} text;

static void tprintf(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void tprintf(text *t, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 + (size_t)n;
        char *p = realloc(t->p, cap);
        if (!p)
            return;
        t->p = p;
        t->cap = cap;
    }
}

static bool want_section(const char *sel, size_t n, const char *name)
{
    return n == 0 || arg_is(sel, n, "all") || arg_is(sel, n, "everything") ||
           arg_is(sel, n, "default") || arg_is(sel, n, name);
}

static void cmd_info(conn *c, int argc, const char **argv, const size_t *lens)
{
    server *s = c->srv;
    const char *sel = argc > 1 ? argv[1] : "";
    size_t n = argc > 1 ? lens[1] : 0;
    text t = {malloc(4096), 0, 4096};
    kvs_stats st;
    struct rusage ru;
    struct utsname un;

    if (!t.p)
        return (void)resp_error(&c->out, "ERR out of memory");
    if (kvs_stats_get(s->db, &st) < 0)
        memset(&st, 0, sizeof st);
    uint64_t up = (clock_usec() - s->start_usec) / 1000000;
    const char *sync = st.sync == KVS_SYNC_ALWAYS ? "always"
                       : st.sync == KVS_SYNC_NEVER ? "never" : "everysec";
    if (want_section(sel, n, "server")) {
        uname(&un);
        tprintf(&t, "# Server\r\nredis_version:7.0.0\r\nkvs_version:%s\r\nredis_mode:standalone\r\n"
                    "os:%s %s %s\r\nprocess_id:%d\r\ntcp_port:%s\r\nuptime_in_seconds:%llu\r\n"
                    "io_threads_active:%d\r\nexecutable:kvs-server\r\n\r\n",
                KVS_VERSION_STRING, un.sysname, un.release, un.machine, (int)getpid(),
                strrchr(s->bound, ':') ? strrchr(s->bound, ':') + 1 : s->bound,
                (unsigned long long)up, s->cfg->threads);
    }
    if (want_section(sel, n, "clients"))
        tprintf(&t, "# Clients\r\nconnected_clients:%llu\r\nmaxclients:%u\r\n\r\n",
                (unsigned long long)__atomic_load_n(&s->st.clients, __ATOMIC_RELAXED),
                s->cfg->maxclients);
    if (want_section(sel, n, "memory")) {
        getrusage(RUSAGE_SELF, &ru);
        tprintf(&t, "# Memory\r\nmaxrss_bytes:%llu\r\n\r\n", (unsigned long long)ru.ru_maxrss * 1024);
    }
    if (want_section(sel, n, "persistence"))
        tprintf(&t, "# Persistence\r\nloading:0\r\naof_enabled:1\r\nsync_mode:%s\r\n"
                    "syncs:%llu\r\n\r\n",
                sync, (unsigned long long)st.syncs);
    if (want_section(sel, n, "stats"))
        tprintf(&t, "# Stats\r\ntotal_connections_received:%llu\r\ntotal_commands_processed:%llu\r\n"
                    "total_net_input_bytes:%llu\r\ntotal_net_output_bytes:%llu\r\n"
                    "rejected_connections:%llu\r\n\r\n",
                (unsigned long long)s->st.connections_received,
                (unsigned long long)s->st.commands, (unsigned long long)s->st.net_in,
                (unsigned long long)s->st.net_out, (unsigned long long)s->st.rejected);
    if (want_section(sel, n, "engine"))
        tprintf(&t, "# Engine\r\nengine:%s\r\nsync:%s\r\nkeys:%llu\r\nlive_bytes:%llu\r\n"
                    "dead_bytes:%llu\r\ndisk_bytes:%llu\r\nsegments:%llu\r\ncompactions:%llu\r\n"
                    "compact_reclaimed_bytes:%llu\r\ncompact_last_usec:%llu\r\n"
                    "compacting:%d\r\ncompact_done_bytes:%llu\r\ncompact_todo_bytes:%llu\r\n"
                    "writes:%llu\r\nsyncs:%llu\r\ncorrupt_reads:%llu\r\n\r\n",
                st.engine, sync, (unsigned long long)st.keys, (unsigned long long)st.live_bytes,
                (unsigned long long)st.dead_bytes, (unsigned long long)st.disk_bytes,
                (unsigned long long)st.segments, (unsigned long long)st.compactions,
                (unsigned long long)st.compact_reclaimed,
                (unsigned long long)st.compact_last_usec, st.compacting,
                (unsigned long long)st.compact_done_bytes, (unsigned long long)st.compact_todo_bytes,
                (unsigned long long)st.writes,
                (unsigned long long)st.syncs, (unsigned long long)st.corrupt_reads);
    if (want_section(sel, n, "keyspace")) {
        tprintf(&t, "# Keyspace\r\n");
        if (st.keys)
            tprintf(&t, "db0:keys=%llu,expires=0,avg_ttl=0\r\n", (unsigned long long)st.keys);
    }
    resp_bulk(&c->out, t.p, t.len);
    free(t.p);
}

static const command commands[] = {
    {"get", 2, false, cmd_get},         {"set", -3, false, cmd_set},
    {"del", -2, false, cmd_del},        {"exists", -2, false, cmd_exists},
    {"mget", -2, false, cmd_mget},      {"mset", -3, false, cmd_mset},
    {"dbsize", 1, false, cmd_dbsize},   {"ping", -1, false, cmd_ping},
    {"echo", 2, false, cmd_echo},       {"info", -1, false, cmd_info},
    {"select", 2, false, cmd_select},   {"quit", -1, true, cmd_quit},
    {"command", -1, false, cmd_command}, {"config", -2, false, cmd_config},
    {"auth", -2, true, cmd_auth},       {"hello", -1, true, cmd_hello},
    {"shutdown", -1, false, cmd_shutdown},
    {NULL, 0, false, NULL},
};

/* ---- write batches (see conn.h) ---- */

static bool batch_grow(batch *b, size_t ops)
{
    if (b->nops + ops > b->capops) {
        size_t cap = (b->nops + ops) * 2;
        kvs_op *v = realloc(b->ops, cap * sizeof *v);
        if (!v)
            return false;
        b->ops = v;
        b->capops = cap;
    }
    if (b->ncmds == b->capcmds) {
        size_t cap = b->capcmds ? b->capcmds * 2 : 16;
        batch_cmd *v = realloc(b->cmds, cap * sizeof *v);
        if (!v)
            return false;
        b->cmds = v;
        b->capcmds = cap;
    }
    return true;
}

int cmd_batch_add(conn *c, int argc, const char **argv, const size_t *lens)
{
    batch *b = &c->batch;
    int kind;
    size_t n;

    if (argc == 3 && arg_is(argv[0], lens[0], "set"))
        kind = BATCH_SET, n = 1;
    else if (argc >= 3 && argc % 2 == 1 && arg_is(argv[0], lens[0], "mset"))
        kind = BATCH_MSET, n = (size_t)(argc - 1) / 2;
    else if (argc >= 2 && arg_is(argv[0], lens[0], "del"))
        kind = BATCH_DEL, n = (size_t)argc - 1;
    else
        return 0;
    if (!batch_grow(b, n))
        return 0; /* out of memory: run it alone, the ordinary way */
    b->cmds[b->ncmds++] = (batch_cmd){kind, b->nops, n};
    for (size_t i = 0; i < n; i++) {
        kvs_op *op = &b->ops[b->nops++];
        if (kind == BATCH_DEL)
            *op = (kvs_op){KVS_OP_REMOVE, argv[1 + i], lens[1 + i], NULL, 0, 0};
        else
            *op = (kvs_op){KVS_OP_SET, argv[1 + 2 * i], lens[1 + 2 * i], argv[2 + 2 * i],
                           lens[2 + 2 * i], 0};
    }
    return 1;
}

void cmd_batch_reply(conn *c)
{
    const batch *b = &c->batch;

    for (size_t k = 0; k < b->ncmds; k++) {
        const batch_cmd *bc = &b->cmds[k];
        long long removed = 0;
        int err = 0;
        for (size_t i = bc->first; i < bc->first + bc->n; i++) {
            int rc = b->ops[i].rc;
            if (rc == 0)
                removed++;
            else if (!(bc->kind == BATCH_DEL && rc == KVS_ENOTFOUND) && err == 0)
                err = rc;
        }
        if (err)
            engine_error(c, bc->kind == BATCH_SET ? "SET" : bc->kind == BATCH_MSET ? "MSET" : "DEL",
                         err);
        else if (bc->kind == BATCH_DEL)
            resp_int(&c->out, removed);
        else
            resp_ok(&c->out);
    }
}

static const command *lookup(const char *name, size_t n)
{
    for (const command *k = commands; k->name; k++)
        if (arg_is(name, n, k->name))
            return k;
    return NULL;
}

void cmd_dispatch(conn *c, int argc, const char **argv, const size_t *lens)
{
    const command *k = lookup(argv[0], lens[0]);

    if (!k) {
        /* Redis quotes the name and the first arguments, each cut to 128 bytes */
        char args[256] = "";
        size_t used = 0;
        for (int i = 1; i < argc && used < sizeof args - 140; i++)
            used += (size_t)snprintf(args + used, sizeof args - used, "'%.*s' ",
                                     (int)(lens[i] > 128 ? 128 : lens[i]), argv[i]);
        resp_error(&c->out, "ERR unknown command '%.*s', with args beginning with: %s",
                   (int)(lens[0] > 128 ? 128 : lens[0]), argv[0], args);
        return;
    }
    if (!c->authed && !k->noauth) {
        resp_error(&c->out, "NOAUTH Authentication required.");
        return;
    }
    if ((k->arity > 0 && argc != k->arity) || (k->arity < 0 && argc < -k->arity)) {
        resp_error(&c->out, "ERR wrong number of arguments for '%s' command", k->name);
        return;
    }
    k->fn(c, argc, argv, lens);
}
