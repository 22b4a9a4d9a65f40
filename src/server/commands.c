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
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "server/cmd.h"
#include "util/array.h"
#include "util/clock.h"
#include "util/invariant.h"
#include "util/log.h"
#include "util/num.h"
#include "util/syncmode.h"

static inline unsigned char ascii_lower(unsigned char c)
{
    return (unsigned char)((unsigned)(c - 'A') < 26u ? c + ('a' - 'A') : c);
}

/* strncasecmp's answer for ASCII without its cost (a library call per option and command). */
bool arg_is(const char *a, size_t n, const char *word)
{
    for (size_t i = 0; i < n; i++)
        if (word[i] == '\0' || ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)word[i]))
            return false;
    return word[n] == '\0';
}

/* An engine failure as a reply: the client sees the reason, the log the detail (the failing
 * thread's kvs_last_error()). */
void engine_error_detail(conn *c, const char *what, int rc, const char *detail)
{
    /* After a failed sync every write is refused (KVS_ESYNC): the engine logged the failure
     * once; a line per refused write would flood the log. */
    if (rc != KVS_ESYNC && rc != KVS_EFULL)
        LOG_WARN("%s failed: %s: %s", what, kvs_strerror(rc), detail);
    /* Redis answers a write refused for memory with -OOM; clients know that prefix */
    resp_error(&c->out, "%s %s", rc == KVS_EFULL ? "OOM" : "ERR", kvs_strerror(rc));
}

void engine_error(conn *c, const char *what, int rc)
{
    engine_error_detail(c, what, rc, kvs_last_error());
}

/* A key kvs cannot store (longer than KVS_MAX_KEY) cannot be there: reads and deletes see it as
 * absent, writes are refused (reply_refused) and change nothing. */
bool key_fits(size_t klen)
{
    return klen <= KVS_MAX_KEY;
}

/* The libkvs checks of one SET, before anything is queued: 0 or KVS_EKEYTOOBIG/KVS_EVALTOOBIG. */
int check_set(size_t klen, size_t vlen)
{
    return !key_fits(klen) ? KVS_EKEYTOOBIG : vlen > KVS_MAX_VALUE ? KVS_EVALTOOBIG : 0;
}

/* A write the client asked for that kvs does not take (its own fault, not the server's: no
 * warning in the log). */
void reply_refused(conn *c, int rc)
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

    stats_lookup(c, rc == 0);
    if (rc == KVS_ENOTFOUND)
        resp_nil(&c->out);
    else if (rc < 0)
        engine_error(c, "GET", rc);
}

static void cmd_mget(conn *c, int argc, const char **argv, const size_t *lens)
{
    resp_array(&c->out, argc - 1);
    for (int i = 1; i < argc; i++) {
        bool hit = key_fits(lens[i]) && kvs_read(c->srv->db, argv[i], lens[i], reply_bulk, c) == 0;
        stats_lookup(c, hit);
        if (!hit)
            resp_nil(&c->out); /* Redis answers nil for what it cannot give as a string */
    }
}

static void cmd_select(conn *c, int argc, const char **argv, const size_t *lens)
{
    if (arg_is(argv[1], lens[1], "0"))
        resp_ok(&c->out);
    else
        resp_error(&c->out, "ERR DB index is out of range");
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

static void cmd_quit(conn *c, int argc, const char **argv, const size_t *lens)
{
    resp_ok(&c->out);
    conn_close_after_flush(c);
}

/* The one user is "default"; with no password configured it logs in with any password
 * (Redis's "nopass" default user), else with exactly that one. */
static bool check_password(conn *c, const char *user, size_t ulen, const char *pass, size_t plen)
{
    if (user && !arg_is(user, ulen, "default"))
        return false;
    return server_password_matches(c->srv, pass, plen);
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
    if (argc == 2 && !server_password_required(c->srv)) {
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

#define W CMD_WRITE
#define R CMD_READONLY
#define F CMD_FAST
#define T CMD_TX
#define M CMD_META
#define ES EXPIRE_SECONDS
#define ER EXPIRE_RELATIVE
#define WRITE(q, r) NULL, q, r, NULL, 0
#define WRITEV(q, r, v) NULL, q, r, NULL, v
#define READ(fn, rd) fn, NULL, NULL, rd, 0
#define DIRECT(fn) fn, NULL, NULL, NULL, 0
static const command commands[] = {
    {"get", 2, R | F, 1, 1, 1, READ(cmd_get, get_read)},
    {"set", -3, W, 1, 1, 1, WRITE(set_queue, set_reply)},
    {"del", -2, W, 1, -1, 1, WRITE(del_queue, del_reply)},
    {"unlink", -2, W | F, 1, -1, 1, WRITE(del_queue, del_reply)},
    {"exists", -2, R | F, 1, -1, 1, READ(NULL, exists_read)},
    {"touch", -2, R | F, 1, -1, 1, READ(NULL, exists_read)},
    {"mget", -2, R | F, 1, -1, 1, READ(cmd_mget, mget_read)},
    {"mset", -3, W, 1, -1, 2, WRITE(mset_queue, ok_reply)},
    {"msetnx", -3, W, 1, -1, 2, WRITE(msetnx_queue, int_reply)},
    {"setnx", 3, W | F, 1, 1, 1, WRITE(setnx_queue, set_reply)},
    {"setex", 4, W, 1, 1, 1, WRITEV(setex_queue, set_reply, 1)},
    {"psetex", 4, W, 1, 1, 1, WRITEV(setex_queue, set_reply, 0)},
    {"getset", 3, W | F, 1, 1, 1, WRITEV(setnx_queue, set_reply, 1)},
    {"getdel", 2, W | F, 1, 1, 1, WRITE(getdel_queue, set_reply)},
    {"getex", -2, W | F, 1, 1, 1, WRITE(getex_queue, set_reply)},
    {"incr", 2, W | F, 1, 1, 1, WRITEV(incr_queue, set_reply, 1)},
    {"decr", 2, W | F, 1, 1, 1, WRITEV(incr_queue, set_reply, -1)},
    {"incrby", 3, W | F, 1, 1, 1, WRITEV(incrby_queue, set_reply, 1)},
    {"decrby", 3, W | F, 1, 1, 1, WRITEV(incrby_queue, set_reply, -1)},
    {"incrbyfloat", 3, W | F, 1, 1, 1, WRITE(incrbyfloat_queue, set_reply)},
    {"append", 3, W | F, 1, 1, 1, WRITE(append_queue, set_reply)},
    {"setrange", 4, W, 1, 1, 1, WRITE(setrange_queue, set_reply)},
    {"setbit", 4, W, 1, 1, 1, WRITE(setbit_queue, set_reply)},
    {"strlen", 2, R | F, 1, 1, 1, READ(NULL, strlen_read)},
    {"getrange", 4, R, 1, 1, 1, READ(NULL, getrange_read)},
    {"substr", 4, R, 1, 1, 1, READ(NULL, getrange_read)},
    {"getbit", 3, R | F, 1, 1, 1, READ(NULL, getbit_read)},
    {"bitcount", -2, R, 1, 1, 1, READ(NULL, bitcount_read)},
    {"expire", -3, W | F, 1, 1, 1, WRITEV(expire_queue, set_reply, ES | ER)},
    {"pexpire", -3, W | F, 1, 1, 1, WRITEV(expire_queue, set_reply, ER)},
    {"expireat", -3, W | F, 1, 1, 1, WRITEV(expire_queue, set_reply, ES)},
    {"pexpireat", -3, W | F, 1, 1, 1, WRITEV(expire_queue, set_reply, 0)},
    {"persist", 2, W | F, 1, 1, 1, WRITE(persist_queue, set_reply)},
    {"ttl", 2, R | F | M, 1, 1, 1, READ(NULL, ttl_read)},
    {"pttl", 2, R | F | M, 1, 1, 1, READ(NULL, pttl_read)},
    {"expiretime", 2, R | F | M, 1, 1, 1, READ(NULL, expiretime_read)},
    {"pexpiretime", 2, R | F | M, 1, 1, 1, READ(NULL, pexpiretime_read)},
    {"type", 2, R | F, 1, 1, 1, READ(NULL, type_read)},
    {"rename", 3, W, 1, 2, 1, WRITE(rename_queue, move_reply)},
    {"renamenx", 3, W | F, 1, 2, 1, WRITEV(rename_queue, move_reply, 1)},
    {"copy", -3, W, 1, 2, 1, WRITE(copy_queue, move_reply)},
    {"scan", -2, R, 0, 0, 0, DIRECT(cmd_scan)},
    {"keys", 2, R, 0, 0, 0, DIRECT(cmd_keys)},
    {"randomkey", 1, R, 0, 0, 0, DIRECT(cmd_randomkey)},
    {"flushdb", -1, W, 0, 0, 0, DIRECT(cmd_flushdb)},
    {"flushall", -1, W, 0, 0, 0, DIRECT(cmd_flushdb)},
    {"multi", 1, F | T, 0, 0, 0, DIRECT(cmd_multi)},
    {"exec", 1, T, 0, 0, 0, DIRECT(cmd_exec)},
    {"discard", 1, F | T, 0, 0, 0, DIRECT(cmd_discard)},
    {"watch", -2, F | T, 1, -1, 1, DIRECT(cmd_watch)},
    {"unwatch", 1, F, 0, 0, 0, DIRECT(cmd_unwatch)},
    {"client", -2, 0, 0, 0, 0, DIRECT(cmd_client)},
    {"time", 1, F, 0, 0, 0, DIRECT(cmd_time)},
    {"dbsize", 1, R | F, 0, 0, 0, DIRECT(cmd_dbsize)},
    {"ping", -1, F, 0, 0, 0, DIRECT(cmd_ping)},
    {"echo", 2, F, 0, 0, 0, DIRECT(cmd_echo)},
    {"info", -1, 0, 0, 0, 0, DIRECT(cmd_info)},
    {"select", 2, F, 0, 0, 0, DIRECT(cmd_select)},
    {"quit", -1, CMD_NOAUTH | F | T, 0, 0, 0, DIRECT(cmd_quit)},
    {"command", -1, 0, 0, 0, 0, DIRECT(cmd_command)},
    {"config", -2, 0, 0, 0, 0, DIRECT(cmd_config)},
    {"auth", -2, CMD_NOAUTH | F, 0, 0, 0, DIRECT(cmd_auth)},
    {"hello", -1, CMD_NOAUTH | F, 0, 0, 0, DIRECT(cmd_hello)},
    {"shutdown", -1, 0, 0, 0, 0, DIRECT(cmd_shutdown)},
    {"waitaof", 4, 0, 0, 0, 0, DIRECT(cmd_waitaof)},
    {"save", -1, 0, 0, 0, 0, DIRECT(cmd_save)},
    {"bgsave", -1, 0, 0, 0, 0, DIRECT(cmd_bgsave)},
    {"lastsave", 1, F, 0, 0, 0, DIRECT(cmd_lastsave)},
    {NULL, 0, 0, 0, 0, 0, DIRECT(NULL)},
};
#undef W
#undef R
#undef F
#undef T
#undef M
#undef ES
#undef ER
#undef WRITE
#undef WRITEV
#undef READ
#undef DIRECT

size_t cmd_count(void)
{
    return sizeof commands / sizeof commands[0] - 1; /* not the NULL that ends it */
}

const command *cmd_at(size_t i)
{
    KVS_ASSERT(i < cmd_count());
    return &commands[i];
}

size_t cmd_index(const command *k)
{
    KVS_ASSERT(k >= commands && k < commands + cmd_count());
    return (size_t)(k - commands);
}

/* Command names by hash (every request looks its name up: a walk of the table cost ~100
 * instructions a command). Open addressing, built once; names are ASCII, hashed lower-cased. */
#define NAME_SLOTS 256
#define NAME_MAX_LEN 32 /* longer than any command's name */

static const command *by_name[NAME_SLOTS];
static unsigned char by_name_len[NAME_SLOTS];
static pthread_once_t by_name_once = PTHREAD_ONCE_INIT;

static unsigned name_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)(s[i] | 0x20)) * 16777619u;
    return h & (NAME_SLOTS - 1);
}

static void by_name_build(void)
{
    for (const command *k = commands; k->name; k++) {
        size_t n = strlen(k->name);
        unsigned h = name_hash(k->name, n);
        KVS_ASSERT(n < NAME_MAX_LEN);
        for (size_t i = 0; i < n; i++) /* what cmd_lookup's comparison relies on */
            KVS_ASSERT(k->name[i] >= 'a' && k->name[i] <= 'z');
        while (by_name[h])
            h = (h + 1) & (NAME_SLOTS - 1);
        by_name[h] = k;
        by_name_len[h] = (unsigned char)n;
    }
}

const command *cmd_lookup(const char *name, size_t n)
{
    pthread_once(&by_name_once, by_name_build);
    if (n == 0 || n >= NAME_MAX_LEN)
        return NULL;
    for (unsigned h = name_hash(name, n); by_name[h]; h = (h + 1) & (NAME_SLOTS - 1)) {
        if (by_name_len[h] != n)
            continue;
        /* names are [a-z]: c | 0x20 equals one only for it and its capital (0x20 sets no
         * other byte onto a lower-case letter) */
        const char *k = by_name[h]->name;
        size_t i = 0;
        while (i < n && (unsigned char)(name[i] | 0x20) == (unsigned char)k[i])
            i++;
        if (i == n)
            return by_name[h];
    }
    return NULL;
}

const char ERR_SYNTAX[] = "ERR syntax error";
const char ERR_NOT_INT[] = "ERR value is not an integer or out of range";
const char ERR_MAX_SIZE[] = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

bool redis_str2ll(const char *s, size_t n, long long *out)
{
    unsigned long long v = 0, limit;
    bool neg = false;
    size_t i = 0;

    if (n == 0 || n > 20)
        return false;
    if (n == 1 && s[0] == '0') {
        *out = 0;
        return true;
    }
    if (s[0] == '-') {
        neg = true;
        if (++i == n)
            return false;
    }
    if (s[i] < '1' || s[i] > '9')
        return false;
    limit = neg ? (unsigned long long)LLONG_MAX + 1 : (unsigned long long)LLONG_MAX;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = neg ? (long long)(0 - v) : (long long)v;
    return true;
}

uint64_t cmd_now_ms(conn *c)
{
    return kvs_now_ms(c->srv->db);
}

/* ---- write batches (see conn.h and cmd.h) ---- */

void *batch_alloc(batch *b, size_t n)
{
    batch_block *k = calloc(1, sizeof *k + n);

    if (!k)
        return NULL;
    k->next = b->kept;
    b->kept = k;
    return k->data;
}

bool batch_reserve(batch *b, size_t ops)
{
    return ARR_RESERVE(b->ops, b->capops, b->nops + ops) == 0;
}

kvs_op *batch_op(batch *b)
{
    KVS_ASSERT(b->nops < b->capops);
    kvs_op *op = &b->ops[b->nops++];
    *op = (kvs_op){0};
    return op;
}

void batch_update(batch *b, const char *key, size_t klen, kvs_update_fn fn, void *ctx)
{
    kvs_op *op = batch_op(b);

    op->type = KVS_OP_UPDATE;
    op->key = key;
    op->klen = klen;
    op->update = fn;
    op->update_ctx = ctx;
}

static char *batch_copy_into(batch *b, const void *p, size_t n)
{
    char *d = batch_alloc(b, n ? n : 1);

    if (d && n)
        memcpy(d, p, n);
    return d;
}

char *batch_copy(conn *c, const void *p, size_t n)
{
    return batch_copy_into(&c->batch, p, n);
}

typedef struct capture_ctx {
    conn *c;
    capture *cap;
} capture_ctx;

static int capture_fn(void *ctx, const kvs_cur *cur, kvs_update_out *out)
{
    capture_ctx *x = ctx;

    (void)out; /* KVS_OP_NONE: a read */
    x->cap->found = cur->found;
    x->cap->meta = cur->meta;
    x->cap->vlen = cur->vlen;
    x->cap->val = cur->found ? batch_copy(x->c, cur->val, cur->vlen) : NULL;
    if (cur->found && !x->cap->val)
        return KVS_ENOMEM;
    return 0;
}

bool batch_capture(conn *c, batch *b, const char *key, size_t klen, capture *cap)
{
    capture_ctx *x;

    if (!key_fits(klen))
        return true; /* a key kvs cannot hold is absent */
    if (!(x = batch_alloc(b, sizeof *x)))
        return false;
    x->c = c;
    x->cap = cap;
    batch_update(b, key, klen, capture_fn, x);
    return true;
}

const char *batch_errf(batch *b, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *p = batch_copy_into(b, msg, strlen(msg) + 1);
    return p ? p : "ERR out of memory";
}

/* kvs_read_meta callback of a direct read: a copy of the value, freed by the caller. */
static int capture_read(void *ctx, const void *val, size_t vlen)
{
    capture *cap = ctx;
    char *p = malloc(vlen ? vlen : 1);

    if (!p)
        return KVS_ENOMEM;
    memcpy(p, val, vlen);
    cap->found = true;
    cap->val = p;
    cap->vlen = vlen;
    return 0;
}

int batch_cmd_error(const batch *b, const batch_cmd *bc)
{
    for (size_t i = bc->first; i < bc->first + bc->n; i++)
        if (b->ops[i].rc < 0 && b->ops[i].rc != KVS_ENOTFOUND)
            return b->ops[i].rc;
    return 0;
}

void reply_batch_error(conn *c, const batch *b, const batch_cmd *bc, int rc)
{
    engine_error_detail(c, bc->cmd->name, rc, b->err);
}

/* Copy the arguments from argv[from] on into one block the batch owns (freed by batch_clear),
 * pointing argv at the copies: for arguments that would not outlive the next parse (inline
 * ones, in the parser's arena, and every one of a transaction's, name included). */
static bool batch_keep(batch *b, int from, int argc, const char **argv, const size_t *lens)
{
    size_t total = 0;

    for (int i = from; i < argc; i++)
        total += lens[i];
    char *p = batch_alloc(b, total ? total : 1);
    if (!p)
        return false;
    for (int i = from; i < argc; i++) {
        memcpy(p, argv[i], lens[i]);
        argv[i] = p;
        p += lens[i];
    }
    return true;
}

/* The key positions of k in a command of argc words, as Redis's table gives them. */
static int key_count(const command *k, int argc)
{
    int last = k->last_key < 0 ? argc + k->last_key : k->last_key;

    if (k->first_key <= 0 || last < k->first_key)
        return 0;
    return (last - k->first_key) / k->key_step + 1;
}

static bool arity_ok(const command *k, int argc)
{
    return k->arity > 0 ? argc == k->arity : argc >= -k->arity;
}

/* Queue command k in b: its ops (write), captures of its keys (read, in a transaction) or
 * nothing (direct, in a transaction: run at EXEC). keep: also keep argc/argv/lens in bc. */
bool batch_add_cmd(conn *c, batch *b, const command *k, int argc, const char **argv,
                   const size_t *lens, bool transient, bool keep)
{
    if (ARR_RESERVE(b->cmds, b->capcmds, b->ncmds + 1) < 0 ||
        !batch_reserve(b, k->read ? (size_t)key_count(k, argc) : (size_t)argc))
        return false;
    if (transient && !batch_keep(b, keep ? 0 : 1, argc, argv, lens))
        return false;
    batch_cmd *bc = &b->cmds[b->ncmds];
    *bc = (batch_cmd){.cmd = k, .first = b->nops};
    if (keep) {
        bc->argv = batch_alloc(b, (size_t)argc * sizeof *bc->argv);
        bc->lens = batch_alloc(b, (size_t)argc * sizeof *bc->lens);
        if (!bc->argv || !bc->lens)
            return false;
        memcpy(bc->argv, argv, (size_t)argc * sizeof *argv);
        memcpy(bc->lens, lens, (size_t)argc * sizeof *lens);
        bc->argc = argc;
    }
    b->ncmds++;
    if (k->queue) {
        k->queue(c, b, bc, argc, argv, lens);
    } else if (k->read) {
        int n = key_count(k, argc);
        capture *caps = batch_alloc(b, (size_t)(n ? n : 1) * sizeof *caps);
        bc->st = caps;
        bool ok = caps != NULL;
        for (int i = 0; i < n && ok; i++) {
            int pos = k->first_key + i * k->key_step;
            ok = batch_capture(c, b, argv[pos], lens[pos], &caps[i]);
        }
        if (!ok)
            bc->err = "ERR out of memory";
    }
    bc->n = b->nops - bc->first;
    if (bc->err || bc->refused)
        b->nops = bc->first, bc->n = 0; /* refused whole: nothing of it is written */
    return true;
}

int cmd_batch_add(conn *c, const command *k, int argc, const char **argv, const size_t *lens,
                  bool transient)
{
    batch *b = &c->batch;
    size_t ncmds = b->ncmds, nops = b->nops;

    if (!k || !k->queue || !c->authed || c->multi || !arity_ok(k, argc))
        return 0; /* the ordinary way: it runs, queues in MULTI, or gives the error */
    __atomic_store_n(&c->last_cmd, k->name, __ATOMIC_RELAXED);
    /* a plain SET, the common case, without the generic path's calls */
    if (k->queue == set_queue && argc == 3 && ARR_RESERVE(b->cmds, b->capcmds, ncmds + 1) == 0 &&
        batch_reserve(b, 1) && (!transient || batch_keep(b, 1, argc, argv, lens))) {
        int err = check_set(lens[1], lens[2]);
        b->cmds[b->ncmds++] = (batch_cmd){.cmd = k, .first = nops, .n = err ? 0 : 1,
                                          .refused = err};
        if (!err)
            b->ops[b->nops++] = (kvs_op){.type = KVS_OP_SET, .key = argv[1], .klen = lens[1],
                                         .val = argv[2], .vlen = lens[2]};
        return 1;
    }
    if (batch_add_cmd(c, b, k, argc, argv, lens, transient, false))
        return 1;
    b->ncmds = ncmds; /* out of memory: as if never offered; dispatch says so */
    b->nops = nops;
    return 0;
}

/* The reply of one command of a committed batch. */
static void reply_one(conn *c, const batch *b, const batch_cmd *bc)
{
    if (bc->err)
        resp_error(&c->out, "%s", bc->err);
    else if (bc->refused)
        reply_refused(c, bc->refused);
    else if (bc->cmd->reply)
        bc->cmd->reply(c, b, bc);
    else if (bc->cmd->read)
        bc->cmd->read(c, bc->argc, bc->argv, bc->lens, bc->st);
    else {
        c->in_exec = true; /* a direct command queued by MULTI */
        bc->cmd->fn(c, bc->argc, bc->argv, bc->lens);
        c->in_exec = false;
    }
}

void cmd_batch_reply(conn *c)
{
    const batch *b = &c->batch;

    for (size_t k = 0; k < b->ncmds; k++) {
        const batch_cmd *bc = &b->cmds[k];
        if (bc->tx) {
            if (!exec_begin(c, b, bc))
                k += bc->tx_n; /* the transaction was not applied: no replies of its own */
            continue;
        }
        uint64_t errors = stats_errors(c);
        reply_one(c, b, bc);
        if (stats_errors(c) != errors)
            stats_failed(c, bc->cmd);
    }
}

void cmd_read_direct(conn *c, const command *k, int argc, const char **argv, const size_t *lens)
{
    int n = key_count(k, argc);
    capture stack[4], *caps = n <= 4 ? stack : calloc((size_t)n, sizeof *caps);
    int rc = 0;

    if (!caps)
        return (void)resp_error(&c->out, "ERR out of memory");
    for (int i = 0; i < n; i++) {
        int pos = k->first_key + i * k->key_step;
        caps[i] = (capture){0};
        if (rc == 0 && key_fits(lens[pos]))
            rc = k->flags & CMD_META ? kvs_read_meta(c->srv->db, argv[pos], lens[pos],
                                                     capture_read, &caps[i], &caps[i].meta)
                                     : kvs_read(c->srv->db, argv[pos], lens[pos], capture_read,
                                                &caps[i]);
        if (rc == KVS_ENOTFOUND)
            rc = 0;
        if (rc == 0)
            stats_lookup(c, caps[i].found);
    }
    if (rc < 0)
        engine_error(c, k->name, rc);
    else
        k->read(c, argc, argv, lens, caps);
    for (int i = 0; i < n; i++)
        free((char *)caps[i].val);
    if (caps != stack)
        free(caps);
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
        c->multi_dirty |= c->multi;
        return;
    }
    /* not authenticated: unless CONFIG SET removed the password since (as Redis, which asks
     * whether the default user still has one) */
    if (!c->authed && !(k->flags & CMD_NOAUTH) && !server_password_required(c->srv))
        authenticated(c);
    if (!c->authed && !(k->flags & CMD_NOAUTH)) {
        resp_error(&c->out, "NOAUTH Authentication required.");
        c->multi_dirty |= c->multi;
        stats_rejected(c, k);
        return;
    }
    if (!arity_ok(k, argc)) {
        resp_error(&c->out, "ERR wrong number of arguments for '%s' command", k->name);
        c->multi_dirty |= c->multi;
        stats_rejected(c, k);
        return;
    }
    __atomic_store_n(&c->last_cmd, k->name, __ATOMIC_RELAXED);
    uint64_t errors = stats_errors(c);
    if (c->multi && !(k->flags & CMD_TX))
        tx_queue(c, k, argc, argv, lens);
    else if (k->fn)
        k->fn(c, argc, argv, lens);
    else if (k->read)
        cmd_read_direct(c, k, argc, argv, lens);
    else
        resp_error(&c->out, "ERR out of memory"); /* a write the batch could not take */
    if (stats_errors(c) > errors) /* not "!=": CONFIG RESETSTAT zeroes the count */
        stats_failed(c, k);
}
