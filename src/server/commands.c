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
#include "util/array.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/num.h"
#include "util/syncmode.h"

typedef void (*cmd_fn)(conn *c, int argc, const char **argv, const size_t *lens);

enum {
    CMD_WRITE = 1 << 0,    /* changes the data set */
    CMD_READONLY = 1 << 1, /* reads the data set */
    CMD_NOAUTH = 1 << 2,   /* may run before AUTH */
    CMD_FAST = 1 << 3,     /* constant time */
};

/* Everything dispatch, batching and COMMAND need to know of a command: nothing else in this
 * file recognises a command by its name. */
struct command {
    const char *name;
    int arity;                /* N: exactly N words, name included; -N: at least N */
    int flags;                /* CMD_* */
    int first_key, last_key, key_step; /* Redis's key positions (last -1: to the end) */
    int batch;                /* BATCH_* if consecutive calls commit as one batch, else -1 */
    cmd_fn fn;
};

static bool arg_is(const char *a, size_t n, const char *word)
{
    return strlen(word) == n && strncasecmp(a, word, n) == 0;
}

/* An engine failure as a reply: the client sees the reason, the log the detail (the failing
 * thread's kvs_last_error()). */
static void engine_error_detail(conn *c, const char *what, int rc, const char *detail)
{
    /* After a failed sync every write is refused (KVS_ESYNC): the engine logged the failure
     * once; a line per refused write would flood the log. */
    if (rc != KVS_ESYNC && rc != KVS_EFULL)
        LOG_WARN("%s failed: %s: %s", what, kvs_strerror(rc), detail);
    /* Redis answers a write refused for memory with -OOM; clients know that prefix */
    resp_error(&c->out, "%s %s", rc == KVS_EFULL ? "OOM" : "ERR", kvs_strerror(rc));
}

static void engine_error(conn *c, const char *what, int rc)
{
    engine_error_detail(c, what, rc, kvs_last_error());
}

/* A key kvs cannot store (longer than KVS_MAX_KEY) cannot be there: reads and deletes see it as
 * absent, writes are refused (reply_refused) and change nothing. */
static bool key_fits(size_t klen)
{
    return klen <= KVS_MAX_KEY;
}

/* The libkvs checks of one SET, before anything is queued: 0 or KVS_EKEYTOOBIG/KVS_EVALTOOBIG. */
static int check_set(size_t klen, size_t vlen)
{
    return !key_fits(klen) ? KVS_EKEYTOOBIG : vlen > KVS_MAX_VALUE ? KVS_EVALTOOBIG : 0;
}

/* The pairs of an MSET (argv[1..argc) as key, value, ...) pass check_set, or the first failure:
 * MSET is all or nothing, as in Redis. */
static int check_pairs(int argc, const size_t *lens)
{
    int rc = 0;

    for (int i = 1; i + 1 < argc && rc == 0; i += 2)
        rc = check_set(lens[i], lens[i + 1]);
    return rc;
}

/* A write the client asked for that kvs does not take (its own fault, not the server's: no
 * warning in the log). */
static void reply_refused(conn *c, int rc)
{
    resp_error(&c->out, "ERR %s", kvs_strerror(rc));
}

static void cmd_ping(conn *c, int argc, const char **argv, const size_t *lens)
{
    if (argc > 2)
        resp_error(&c->out, "ERR wrong number of arguments for 'ping' command");
    else if (argc == 1)
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
    int rc = key_fits(lens[1]) ? kvs_read(c->srv->db, argv[1], lens[1], reply_bulk, c)
                               : KVS_ENOTFOUND;

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
    if ((rc = check_set(lens[1], lens[2])) < 0)
        return reply_refused(c, rc);
    rc = kvs_set(c->srv->db, argv[1], lens[1], argv[2], lens[2]);
    if (rc < 0)
        engine_error(c, "SET", rc);
    else
        resp_ok(&c->out);
}

/* MSET outside a batch (a batch could not grow): one kvs_write of every pair. */
static void cmd_mset(conn *c, int argc, const char **argv, const size_t *lens)
{
    size_t n = (size_t)(argc - 1) / 2;
    kvs_op *ops;
    int rc;

    if (argc % 2 == 0) {
        resp_error(&c->out, "ERR wrong number of arguments for 'mset' command");
        return;
    }
    if ((rc = check_pairs(argc, lens)) < 0)
        return reply_refused(c, rc);
    if (!(ops = calloc(n, sizeof *ops)))
        return engine_error(c, "MSET", KVS_ENOMEM);
    for (size_t i = 0; i < n; i++)
        ops[i] = (kvs_op){.type = KVS_OP_SET, .key = argv[1 + 2 * i], .klen = lens[1 + 2 * i],
                          .val = argv[2 + 2 * i], .vlen = lens[2 + 2 * i],
                          .flags = i + 1 < n ? KVS_OP_WITH_NEXT : 0}; /* all or nothing */
    if ((rc = kvs_write(c->srv->db, ops, n)) < 0)
        engine_error(c, "MSET", rc);
    else
        resp_ok(&c->out);
    free(ops);
}

static void cmd_mget(conn *c, int argc, const char **argv, const size_t *lens)
{
    resp_array(&c->out, argc - 1);
    for (int i = 1; i < argc; i++)
        if (!key_fits(lens[i]) || kvs_read(c->srv->db, argv[i], lens[i], reply_bulk, c) < 0)
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
        if (!key_fits(lens[i]))
            continue;
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
        n += key_fits(lens[i]) && kvs_read(c->srv->db, argv[i], lens[i], found_it, NULL) == 0;
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

/* The one user is "default"; with no password configured it logs in with any password
 * (Redis's "nopass" default user), else with exactly that one. */
static bool check_password(conn *c, const char *user, size_t ulen, const char *pass, size_t plen)
{
    const char *want = c->srv->cfg->requirepass;

    if (user && !arg_is(user, ulen, "default"))
        return false;
    return !want || (strlen(want) == plen && memcmp(want, pass, plen) == 0);
}

static void authenticated(conn *c)
{
    c->authed = true;
    c->parser.unauth = false;
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
    authenticated(c);
    resp_ok(&c->out);
}

static void cmd_hello(conn *c, int argc, const char **argv, const size_t *lens)
{
    int i = 1;

    if (argc > 1) {
        if (!arg_is(argv[1], lens[1], "2")) {
            uint64_t version;
            bool num = num_parse_u64(argv[1], lens[1], 9, &version);
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
            authenticated(c);
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
        static const struct { int flag; const char *name; } flag_names[] = {
            {CMD_WRITE, "write"}, {CMD_READONLY, "readonly"}, {CMD_NOAUTH, "no-auth"},
            {CMD_FAST, "fast"}};
        resp_array(&c->out, n);
        for (int i = 0; i < n; i++) {
            const command *k = &commands[i];
            int nflags = 0;
            for (size_t f = 0; f < sizeof flag_names / sizeof flag_names[0]; f++)
                nflags += (k->flags & flag_names[f].flag) != 0;
            resp_array(&c->out, 6);
            resp_bulk(&c->out, k->name, strlen(k->name));
            resp_int(&c->out, k->arity);
            resp_array(&c->out, nflags);
            for (size_t f = 0; f < sizeof flag_names / sizeof flag_names[0]; f++)
                if (k->flags & flag_names[f].flag)
                    resp_status(&c->out, flag_names[f].name);
            resp_int(&c->out, k->first_key);
            resp_int(&c->out, k->last_key);
            resp_int(&c->out, k->key_step);
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
    const char *sync = sync_mode_appendfsync(cfg->sync);

    if (!arg_is(argv[1], lens[1], "GET")) {
        resp_error(&c->out, "ERR CONFIG subcommand '%.*s' is not supported by kvs (only GET)",
                   (int)lens[1], argv[1]);
        return;
    }
    if (argc != 3) {
        resp_error(&c->out, "ERR wrong number of arguments for 'config|get' command");
        return;
    }
    snprintf(maxclients, sizeof maxclients, "%u", c->srv->maxclients);
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
        if (ARR_RESERVE(t->p, t->cap, t->len + (size_t)n + 1) < 0)
            return;
    }
}

/* INFO [section ...]: no argument, "all", "everything" and "default" select every section. */
static bool want_section(int argc, const char **argv, const size_t *lens, const char *name)
{
    if (argc < 2)
        return true;
    for (int i = 1; i < argc; i++)
        if (arg_is(argv[i], lens[i], "all") || arg_is(argv[i], lens[i], "everything") ||
            arg_is(argv[i], lens[i], "default") || arg_is(argv[i], lens[i], name))
            return true;
    return false;
}

static void cmd_info(conn *c, int argc, const char **argv, const size_t *lens)
{
    server *s = c->srv;
    text t = {malloc(4096), 0, 4096};
    kvs_stats st;
    struct rusage ru;
    struct utsname un;

    if (!t.p)
        return (void)resp_error(&c->out, "ERR out of memory");
    if (kvs_stats_get(s->db, &st) < 0)
        memset(&st, 0, sizeof st);
    uint64_t up = (clock_usec() - s->start_usec) / 1000000;
    const char *sync = sync_mode_name(st.sync);
    if (want_section(argc, argv, lens, "server")) {
        uname(&un);
        tprintf(&t, "# Server\r\nredis_version:7.0.0\r\nkvs_version:%s\r\nredis_mode:standalone\r\n"
                    "os:%s %s %s\r\nprocess_id:%d\r\ntcp_port:%s\r\nuptime_in_seconds:%llu\r\n"
                    "io_threads_active:%d\r\nexecutable:kvs-server\r\n\r\n",
                KVS_VERSION_STRING, un.sysname, un.release, un.machine, (int)getpid(),
                strrchr(s->bound, ':') ? strrchr(s->bound, ':') + 1 : s->bound,
                (unsigned long long)up, s->cfg->threads);
    }
    if (want_section(argc, argv, lens, "clients"))
        tprintf(&t, "# Clients\r\nconnected_clients:%llu\r\nmaxclients:%u\r\n\r\n",
                (unsigned long long)__atomic_load_n(&s->st.clients, __ATOMIC_RELAXED),
                s->maxclients);
    if (want_section(argc, argv, lens, "memory")) {
        getrusage(RUSAGE_SELF, &ru);
        /* the key index: its exact bytes, per key, its budget (0: none) and the new keys that
         * still fit under it (-1: no budget) */
        tprintf(&t, "# Memory\r\nmaxrss_bytes:%llu\r\nindex_bytes:%llu\r\n"
                    "index_bytes_per_key:%.2f\r\nindex_max_bytes:%llu\r\nindex_keys_left:%lld\r\n"
                    "\r\n",
                (unsigned long long)ru.ru_maxrss * 1024, (unsigned long long)st.index_bytes,
                st.keys ? (double)st.index_bytes / (double)st.keys : 0.0,
                (unsigned long long)st.index_max_bytes,
                st.index_keys_left == UINT64_MAX ? -1ll : (long long)st.index_keys_left);
    }
    if (want_section(argc, argv, lens, "persistence"))
        tprintf(&t, "# Persistence\r\nloading:0\r\naof_enabled:1\r\nsync_mode:%s\r\n"
                    "syncs:%llu\r\n\r\n",
                sync, (unsigned long long)st.syncs);
    if (want_section(argc, argv, lens, "stats"))
        tprintf(&t, "# Stats\r\ntotal_connections_received:%llu\r\ntotal_commands_processed:%llu\r\n"
                    "total_net_input_bytes:%llu\r\ntotal_net_output_bytes:%llu\r\n"
                    "rejected_connections:%llu\r\n\r\n",
                (unsigned long long)s->st.connections_received,
                (unsigned long long)s->st.commands, (unsigned long long)s->st.net_in,
                (unsigned long long)s->st.net_out, (unsigned long long)s->st.rejected);
    if (want_section(argc, argv, lens, "engine"))
        tprintf(&t, "# Engine\r\nengine:%s\r\nsync:%s\r\nkeys:%llu\r\nlive_bytes:%llu\r\n"
                    "dead_bytes:%llu\r\ndisk_bytes:%llu\r\nsegments:%llu\r\ncompactions:%llu\r\n"
                    "compact_reclaimed_bytes:%llu\r\ncompact_last_usec:%llu\r\n"
                    "compacting:%d\r\ncompact_done_bytes:%llu\r\ncompact_todo_bytes:%llu\r\n"
                    "writes:%llu\r\nsyncs:%llu\r\ncorrupt_reads:%llu\r\ncorrupt_records:%llu\r\n"
                    "\r\n",
                st.engine, sync, (unsigned long long)st.keys, (unsigned long long)st.live_bytes,
                (unsigned long long)st.dead_bytes, (unsigned long long)st.disk_bytes,
                (unsigned long long)st.segments, (unsigned long long)st.compactions,
                (unsigned long long)st.compact_reclaimed,
                (unsigned long long)st.compact_last_usec, st.compacting,
                (unsigned long long)st.compact_done_bytes, (unsigned long long)st.compact_todo_bytes,
                (unsigned long long)st.writes,
                (unsigned long long)st.syncs, (unsigned long long)st.corrupt_reads,
                (unsigned long long)st.corrupt_records);
    if (want_section(argc, argv, lens, "keyspace")) {
        tprintf(&t, "# Keyspace\r\n");
        if (st.keys)
            tprintf(&t, "db0:keys=%llu,expires=0,avg_ttl=0\r\n", (unsigned long long)st.keys);
    }
    resp_bulk(&c->out, t.p, t.len);
    free(t.p);
}

#define W CMD_WRITE
#define R CMD_READONLY
#define F CMD_FAST
static const command commands[] = {
    {"get", 2, R | F, 1, 1, 1, -1, cmd_get},
    {"set", -3, W, 1, 1, 1, BATCH_SET, cmd_set},
    {"del", -2, W, 1, -1, 1, BATCH_DEL, cmd_del},
    {"exists", -2, R | F, 1, -1, 1, -1, cmd_exists},
    {"mget", -2, R | F, 1, -1, 1, -1, cmd_mget},
    {"mset", -3, W, 1, -1, 2, BATCH_MSET, cmd_mset},
    {"dbsize", 1, R | F, 0, 0, 0, -1, cmd_dbsize},
    {"ping", -1, F, 0, 0, 0, -1, cmd_ping},
    {"echo", 2, F, 0, 0, 0, -1, cmd_echo},
    {"info", -1, 0, 0, 0, 0, -1, cmd_info},
    {"select", 2, F, 0, 0, 0, -1, cmd_select},
    {"quit", -1, CMD_NOAUTH | F, 0, 0, 0, -1, cmd_quit},
    {"command", -1, 0, 0, 0, 0, -1, cmd_command},
    {"config", -2, 0, 0, 0, 0, -1, cmd_config},
    {"auth", -2, CMD_NOAUTH | F, 0, 0, 0, -1, cmd_auth},
    {"hello", -1, CMD_NOAUTH | F, 0, 0, 0, -1, cmd_hello},
    {"shutdown", -1, 0, 0, 0, 0, -1, cmd_shutdown},
    {NULL, 0, 0, 0, 0, 0, -1, NULL},
};
#undef W
#undef R
#undef F

const command *cmd_lookup(const char *name, size_t n)
{
    for (const command *k = commands; k->name; k++)
        if (arg_is(name, n, k->name))
            return k;
    return NULL;
}

/* ---- write batches (see conn.h) ---- */

/* Room for one more command of ops ops in b. */
static bool batch_grow(batch *b, size_t ops)
{
    return ARR_RESERVE(b->ops, b->capops, b->nops + ops) == 0 &&
           ARR_RESERVE(b->cmds, b->capcmds, b->ncmds + 1) == 0;
}

/* Copy the arguments into one block the batch owns (freed by batch_clear), pointing argv at the
 * copies: for arguments that would not outlive the next parse (inline ones, in the parser's
 * arena). */
static bool batch_keep(batch *b, int argc, const char **argv, const size_t *lens)
{
    size_t total = 0;

    for (int i = 1; i < argc; i++)
        total += lens[i];
    batch_block *k = malloc(sizeof *k + total);
    if (!k)
        return false;
    k->next = b->kept;
    b->kept = k;
    char *p = k->data;
    for (int i = 1; i < argc; i++) {
        memcpy(p, argv[i], lens[i]);
        argv[i] = p;
        p += lens[i];
    }
    return true;
}

int cmd_batch_add(conn *c, const command *k, int argc, const char **argv, const size_t *lens,
                  bool transient)
{
    batch *b = &c->batch;
    int err = 0;
    size_t n;

    if (!k || k->batch < 0 || !c->authed)
        return 0;
    switch (k->batch) {
    case BATCH_SET:
        if (argc != 3)
            return 0; /* options, or the wrong arity: the ordinary way gives the error */
        err = check_set(lens[1], lens[2]);
        n = 1;
        break;
    case BATCH_MSET:
        if (argc < 3 || argc % 2 == 0)
            return 0;
        err = check_pairs(argc, lens);
        n = (size_t)(argc - 1) / 2;
        break;
    default: /* BATCH_DEL */
        if (argc < 2)
            return 0;
        n = 0;
        for (int i = 1; i < argc; i++)
            n += key_fits(lens[i]);
        break;
    }
    if (err)
        n = 0; /* refused as a whole: the command keeps its place for its error reply */
    if (!batch_grow(b, n) || (n > 0 && transient && !batch_keep(b, argc, argv, lens)))
        return 0; /* out of memory: run it alone, the ordinary way */
    b->cmds[b->ncmds++] = (batch_cmd){k->batch, b->nops, n, err};
    for (int i = 1; i < argc && n > 0; i++) {
        if (k->batch == BATCH_DEL) {
            if (key_fits(lens[i]))
                b->ops[b->nops++] = (kvs_op){.type = KVS_OP_REMOVE, .key = argv[i],
                                             .klen = lens[i]};
        } else { /* an MSET's pairs are one group (kvs_write): all or nothing, as in Redis */
            b->ops[b->nops++] = (kvs_op){.type = KVS_OP_SET, .key = argv[i], .klen = lens[i],
                                         .val = argv[i + 1], .vlen = lens[i + 1],
                                         .flags = i + 2 < argc ? KVS_OP_WITH_NEXT : 0};
            i++;
        }
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
        if (bc->refused) {
            reply_refused(c, bc->refused);
            continue;
        }
        for (size_t i = bc->first; i < bc->first + bc->n; i++) {
            int rc = b->ops[i].rc;
            if (rc == 0)
                removed++;
            else if (!(bc->kind == BATCH_DEL && rc == KVS_ENOTFOUND) && err == 0)
                err = rc;
        }
        if (err)
            engine_error_detail(c, bc->kind == BATCH_SET ? "SET" : bc->kind == BATCH_MSET ? "MSET"
                                                                                 : "DEL",
                                err, b->err);
        else if (bc->kind == BATCH_DEL)
            resp_int(&c->out, removed);
        else
            resp_ok(&c->out);
    }
}

void cmd_dispatch(conn *c, const command *k, int argc, const char **argv, const size_t *lens)
{

    if (!k) {
        /* As Redis words it: the name cut to 128 bytes, then quoted arguments while the list
         * is shorter than 128 bytes, each cut to what is left of those 128 (C strings: a NUL
         * ends an argument early, as it does for Redis's printf). */
        char args[128 + 140] = "";
        size_t used = 0;
        for (int i = 1; i < argc && used < 128; i++) {
            size_t room = 128 - used, n = strnlen(argv[i], lens[i] < room ? lens[i] : room);
            used += (size_t)snprintf(args + used, sizeof args - used, "'%.*s' ", (int)n, argv[i]);
        }
        resp_error(&c->out, "ERR unknown command '%.*s', with args beginning with: %s",
                   (int)strnlen(argv[0], lens[0] > 128 ? 128 : lens[0]), argv[0], args);
        return;
    }
    if (!c->authed && !(k->flags & CMD_NOAUTH)) {
        resp_error(&c->out, "NOAUTH Authentication required.");
        return;
    }
    if ((k->arity > 0 && argc != k->arity) || (k->arity < 0 && argc < -k->arity)) {
        resp_error(&c->out, "ERR wrong number of arguments for '%s' command", k->name);
        return;
    }
    k->fn(c, argc, argv, lens);
}
