/*
 * fuzz_commands.c — a kvs-server connection, whole: conn.c's reading, parsing, write batching and
 * replying, commands.c's dispatch and commands, on a real store, checked against a model.
 *
 * Input: one configuration byte, four bytes of seed, then the bytes a client sends.
 *   cfg bit 0     --requirepass pw (AUTH, HELLO AUTH, NOAUTH, the parser's unauth limits)
 *   cfg bit 1     the lmdb engine (else kvs)
 *   cfg bit 2     kvs: 4 KiB segments and eager compaction (rotations, hints and compaction
 *                 run under the commands, on the engine's own threads)
 *   cfg bit 3     close and reopen the store at the end, and check it again
 *   cfg bits 4-5  how the stream is cut into reads: 1 byte each, up to 8, up to 64, or anywhere
 *   cfg bit 6     small parser limits (protocol errors within reach of short inputs)
 *
 * The seam is a socketpair: the connection is adopted with conn_accept on a loop of our own (a
 * worker struct with only its loop set; no pool, so batches commit on the loop thread, as with
 * --sync never on the kvs engine), the input is written to the other end piece by piece, and
 * after each piece the loop runs until the connection has read everything and written every
 * reply. Nothing in src/server is changed or stubbed.
 *
 * The model: the stream is parsed again here, whole (fuzz_resp shows that whole and in pieces
 * agree), and each command applied to a table of keys with Redis's semantics for GET, SET, DEL,
 * EXISTS, MGET, MSET, DBSIZE, PING, ECHO, SELECT, QUIT, AUTH and SHUTDOWN, which give the exact
 * reply expected. INFO, COMMAND, CONFIG and HELLO must give one well-formed reply (HELLO's
 * effect on authentication is modelled), unknown commands an "-ERR unknown command" line. A
 * protocol error must be answered with "-ERR Protocol error: <the parser's message>" and end
 * the replies; so must QUIT's +OK. Every reply byte must
 * be accounted for. Then the store itself is compared with the model (every key ever named, and
 * the key count), and again after a reopen when cfg bit 3 asks. No file descriptor (socket,
 * loop, engine file) may outlive the input. The server's other commands (SET with options,
 * expiry, counters, MULTI/EXEC, SCAN, ...: test_commands_diff.py holds them to Redis) are
 * beyond the model: from the first of them in an input on, its replies and the store are not
 * judged, only the server's survival (and the sanitizers' verdict) is.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzzutil.h"
#include "kvs.h"
#include "server/conn.h"
#include "server/server.h"

#define PASSWORD "pw"

/* ---- a growable byte string ---- */

typedef fz_bytes bytes;

static void b_printf(bytes *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void b_printf(bytes *s, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    FZ_CHECK(n >= 0 && (size_t)n < sizeof tmp, "b_printf overflow");
    fz_bytes_add(s, tmp, (size_t)n);
}

static void b_bulk(bytes *s, const void *p, size_t n)
{
    b_printf(s, "$%zu\r\n", n);
    fz_bytes_add(s, p, n);
    fz_bytes_add(s, "\r\n", 2);
}

/* ---- the model ---- */

typedef struct ent {
    uint8_t *k, *v;
    size_t kl, vl;
    bool live;
} ent;

typedef struct model {
    ent *e;
    size_t n, cap, live;
    bool authed;
    bool lost;        /* a command the model does not follow ran: from then on replies are only
                       * checked for form, and the store only for opening */
    const char *pass; /* NULL: no password */
} model;

static ent *m_find(model *m, const void *k, size_t kl)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->e[i].kl == kl && memcmp(m->e[i].k, k, kl) == 0)
            return &m->e[i];
    return NULL;
}

/* The entry of k, made (not live) if it has none: every key ever named is checked at the end. */
static ent *m_entry(model *m, const void *k, size_t kl)
{
    ent *e = m_find(m, k, kl);

    if (e)
        return e;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 32;
        ent *v = realloc(m->e, cap * sizeof *v);
        FZ_CHECK(v, "out of memory");
        m->e = v;
        m->cap = cap;
    }
    e = &m->e[m->n++];
    memset(e, 0, sizeof *e);
    e->k = malloc(kl ? kl : 1);
    FZ_CHECK(e->k, "out of memory");
    memcpy(e->k, k, kl);
    e->kl = kl;
    return e;
}

static void m_set(model *m, const void *k, size_t kl, const void *v, size_t vl)
{
    ent *e = m_entry(m, k, kl);

    free(e->v);
    e->v = malloc(vl ? vl : 1);
    FZ_CHECK(e->v, "out of memory");
    memcpy(e->v, v, vl);
    e->vl = vl;
    m->live += !e->live;
    e->live = true;
}

static bool m_del(model *m, const void *k, size_t kl)
{
    ent *e = m_entry(m, k, kl);

    if (!e->live)
        return false;
    e->live = false;
    m->live--;
    return true;
}

static void m_free(model *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->e[i].k);
        free(m->e[i].v);
    }
    free(m->e);
}

/* What the model expects of a command's reply. */
enum { X_EXACT, X_ANY, X_PREFIX, X_NONE, X_PROTO };
typedef struct expect {
    int kind;
    bytes exact;        /* X_EXACT: the reply; X_PREFIX: how it starts (one line);
                         * X_PROTO: the parser's message, for "-ERR Protocol error: ..." */
    bool ends;          /* the connection closes after it (QUIT) */
} expect;

/* The command table as Redis documents it: arity (N exactly, -N at least) and no-auth. */
static const struct mcmd {
    const char *name;
    int arity;
    bool noauth;
} mcmds[] = {
    {"get", 2, false},     {"set", -3, false},    {"del", -2, false},      {"exists", -2, false},
    {"mget", -2, false},   {"mset", -3, false},   {"dbsize", 1, false},    {"ping", -1, false},
    {"echo", 2, false},    {"info", -1, false},   {"select", 2, false},    {"quit", -1, true},
    {"command", -1, false}, {"config", -2, false}, {"auth", -2, true},     {"hello", -1, true},
    {"shutdown", -1, false},
};

static bool is(const char *a, size_t n, const char *word)
{
    return strlen(word) == n && strncasecmp(a, word, n) == 0;
}

static bool key_fits(size_t kl)
{
    return kl <= KVS_MAX_KEY;
}

static bool password_ok(const model *m, const char *user, size_t ulen, const char *pass,
                        size_t plen)
{
    if (user && !is(user, ulen, "default"))
        return false;
    return !m->pass || (strlen(m->pass) == plen && memcmp(m->pass, pass, plen) == 0);
}

/* HELLO's effect on authentication (its reply is only checked for shape). */
static void hello_auth(model *m, int argc, const char **a, const size_t *l)
{
    int i = 1;

    if (argc > 1) {
        if (!is(a[1], l[1], "2"))
            return;
        i = 2;
    }
    for (; i < argc; i++) {
        if (is(a[i], l[i], "AUTH") && i + 2 < argc) {
            if (!password_ok(m, a[i + 1], l[i + 1], a[i + 2], l[i + 2]))
                return;
            m->authed = true;
            i += 2;
        } else if (is(a[i], l[i], "SETNAME") && i + 1 < argc) {
            i += 1;
        } else {
            return;
        }
    }
}

/* Are SET's arguments after key and value all its option words (an expiry's number after EX,
 * PX, EXAT or PXAT taken as given)? Then the server takes them; any other word is a syntax
 * error. */
static bool set_options_known(int argc, const char **a, const size_t *l)
{
    static const char *const words[] = {"NX", "XX", "GET", "KEEPTTL", "EX", "PX", "EXAT", "PXAT"};

    for (int i = 3; i < argc; i++) {
        size_t w = 0;
        while (w < sizeof words / sizeof words[0] && !is(a[i], l[i], words[w]))
            w++;
        if (w == sizeof words / sizeof words[0])
            return false;
        if (w >= 4)
            i++; /* its number, whatever it is */
    }
    return true;
}

static void model_apply(model *m, int argc, const char **a, const size_t *l, expect *x)
{
    const struct mcmd *c = NULL;
    bytes *o = &x->exact;

    x->kind = X_EXACT;
    x->ends = false;
    o->len = 0;
    for (size_t i = 0; i < sizeof mcmds / sizeof mcmds[0] && !c; i++)
        if (is(a[0], l[0], mcmds[i].name))
            c = &mcmds[i];
    if (!c && cmd_lookup(a[0], l[0])) {
        /* the server's other commands (expiry, counters, MULTI, ...: test_commands_diff.py
         * checks them against Redis): the model cannot say what they leave, nor what the
         * commands after them answer (a MULTI queues them) */
        m->lost = true;
        return;
    }
    if (!c) {
        x->kind = X_PREFIX;
        b_printf(o, "-ERR unknown command '");
        return;
    }
    if (!m->authed && !c->noauth) {
        b_printf(o, "-NOAUTH Authentication required.\r\n");
        return;
    }
    if ((c->arity > 0 && argc != c->arity) || (c->arity < 0 && argc < -c->arity)) {
        b_printf(o, "-ERR wrong number of arguments for '%s' command\r\n", c->name);
        return;
    }
    const char *n = c->name;
    if (!strcmp(n, "get")) {
        ent *e = key_fits(l[1]) ? m_entry(m, a[1], l[1]) : NULL;
        if (e && e->live)
            b_bulk(o, e->v, e->vl);
        else
            b_printf(o, "$-1\r\n");
    } else if (!strcmp(n, "set")) {
        if (argc > 3 && set_options_known(argc, a, l)) {
            m->lost = true; /* NX, XX, GET, EX ...: as with the commands above */
        } else if (argc > 3 && !key_fits(l[1])) {
            x->kind = X_PREFIX;
            b_printf(o, "-ERR ");
        } else if (argc > 3)
            b_printf(o, "-ERR syntax error\r\n");
        else if (!key_fits(l[1]))
            b_printf(o, "-ERR %s\r\n", kvs_strerror(KVS_EKEYTOOBIG));
        else {
            m_set(m, a[1], l[1], a[2], l[2]);
            b_printf(o, "+OK\r\n");
        }
    } else if (!strcmp(n, "mset")) {
        bool fits = true;
        for (int i = 1; i + 1 < argc; i += 2)
            fits = fits && key_fits(l[i]);
        if (argc % 2 == 0)
            b_printf(o, "-ERR wrong number of arguments for 'mset' command\r\n");
        else if (!fits)
            b_printf(o, "-ERR %s\r\n", kvs_strerror(KVS_EKEYTOOBIG));
        else {
            for (int i = 1; i + 1 < argc; i += 2)
                m_set(m, a[i], l[i], a[i + 1], l[i + 1]);
            b_printf(o, "+OK\r\n");
        }
    } else if (!strcmp(n, "del")) {
        long long k = 0;
        for (int i = 1; i < argc; i++)
            k += key_fits(l[i]) && m_del(m, a[i], l[i]);
        b_printf(o, ":%lld\r\n", k);
    } else if (!strcmp(n, "exists")) {
        long long k = 0;
        for (int i = 1; i < argc; i++)
            k += key_fits(l[i]) && m_entry(m, a[i], l[i])->live;
        b_printf(o, ":%lld\r\n", k);
    } else if (!strcmp(n, "mget")) {
        b_printf(o, "*%d\r\n", argc - 1);
        for (int i = 1; i < argc; i++) {
            ent *e = key_fits(l[i]) ? m_entry(m, a[i], l[i]) : NULL;
            if (e && e->live)
                b_bulk(o, e->v, e->vl);
            else
                b_printf(o, "$-1\r\n");
        }
    } else if (!strcmp(n, "dbsize")) {
        b_printf(o, ":%zu\r\n", m->live);
    } else if (!strcmp(n, "ping")) {
        if (argc > 2)
            b_printf(o, "-ERR wrong number of arguments for 'ping' command\r\n");
        else if (argc == 1)
            b_printf(o, "+PONG\r\n");
        else
            b_bulk(o, a[1], l[1]);
    } else if (!strcmp(n, "echo")) {
        b_bulk(o, a[1], l[1]);
    } else if (!strcmp(n, "select")) {
        b_printf(o, is(a[1], l[1], "0") ? "+OK\r\n" : "-ERR DB index is out of range\r\n");
    } else if (!strcmp(n, "quit")) {
        b_printf(o, "+OK\r\n");
        x->ends = true;
    } else if (!strcmp(n, "auth")) {
        bool ok = argc == 2 ? password_ok(m, NULL, 0, a[1], l[1])
                            : password_ok(m, a[1], l[1], a[2], l[2]);
        if (argc > 3)
            b_printf(o, "-ERR syntax error\r\n");
        else if (!m->pass && argc == 2)
            b_printf(o, "-ERR AUTH <password> called without any password configured for the "
                        "default user. Are you sure your configuration is correct?\r\n");
        else if (!ok)
            b_printf(o, "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
        else {
            m->authed = true;
            b_printf(o, "+OK\r\n");
        }
    } else if (!strcmp(n, "shutdown")) {
        x->kind = X_NONE; /* the harness's request_shutdown only counts */
        for (int i = 1; i < argc; i++)
            if (!is(a[i], l[i], "NOSAVE") && !is(a[i], l[i], "SAVE") && !is(a[i], l[i], "NOW") &&
                !is(a[i], l[i], "FORCE")) {
                x->kind = X_EXACT;
                b_printf(o, "-ERR syntax error\r\n");
                break;
            }
    } else if (!strcmp(n, "config") && !is(a[1], l[1], "GET")) {
        m->lost = true; /* CONFIG SET changes what the model assumes (requirepass, limits) */
    } else { /* info, command, config get, hello */
        if (!strcmp(n, "hello"))
            hello_auth(m, argc, a, l);
        x->kind = X_ANY;
    }
}

/* ---- reading replies ---- */

/* Length of the well-formed RESP2 reply at b, or 0 if there is none (malformed, or cut). */
static size_t reply_len(const uint8_t *b, size_t n, int depth)
{
    const uint8_t *nl = n ? memmem(b, n, "\r\n", 2) : NULL;
    size_t line;
    long long v = 0;
    bool neg = false;

    if (!nl || depth > 16)
        return 0;
    line = (size_t)(nl - b) + 2;
    if (b[0] == '+' || b[0] == '-')
        return memchr(b, '\n', line - 1) ? 0 : line;
    if (b[0] != ':' && b[0] != '$' && b[0] != '*')
        return 0;
    size_t i = 1;
    if (i < line - 2 && b[i] == '-') {
        neg = true;
        i++;
    }
    if (i == line - 2 || line - 2 - i > 18)
        return 0;
    for (; i < line - 2; i++) {
        if (b[i] < '0' || b[i] > '9')
            return 0;
        v = v * 10 + (b[i] - '0');
    }
    if (neg)
        v = -v;
    if (b[0] == ':')
        return line;
    if (v == -1)
        return line;
    if (v < 0)
        return 0;
    if (b[0] == '$') {
        if ((uint64_t)v > n - line || n - line - (size_t)v < 2 || b[line + v] != '\r' ||
            b[line + v + 1] != '\n')
            return 0;
        return line + (size_t)v + 2;
    }
    size_t total = line;
    for (long long k = 0; k < v; k++) {
        size_t r = reply_len(b + total, n - total, depth + 1);
        if (r == 0)
            return 0;
        total += r;
    }
    return total;
}

/* ---- the store ---- */

static int store_open(kvs_t **db, const char *dir, uint8_t cfg)
{
    kvs_options opt;
    int rc;

    kvs_options_init(&opt);
    opt.engine = cfg & 2 ? "lmdb" : "kvs";
    opt.sync = KVS_SYNC_NEVER;
    if (cfg & 4) {
        opt.segment_size = 4096;
        opt.compact_min_bytes = 4096;
    }
    if ((rc = kvs_create(db)) < 0 || (rc = kvs_configure(*db, &opt)) < 0 ||
        (rc = kvs_open(*db, dir)) < 0) {
        fprintf(stderr, "fuzz_commands: open %s: %s: %s\n", dir, kvs_strerror(rc),
                kvs_last_error());
        kvs_close(*db);
        *db = NULL;
    }
    return rc;
}

static int copy_val(void *ctx, const void *val, size_t vlen)
{
    bytes *b = ctx;
    b->len = 0;
    fz_bytes_add(b, val, vlen);
    return 0;
}

/* The store holds exactly what the model says. */
static void store_check(kvs_t *db, const model *m, const char *when)
{
    bytes v = {0};
    kvs_stats st;

    if (m->lost)
        return;
    for (size_t i = 0; i < m->n; i++) {
        const ent *e = &m->e[i];
        if (!key_fits(e->kl))
            continue;
        int rc = kvs_read(db, e->k, e->kl, copy_val, &v);
        if (rc != (e->live ? 0 : KVS_ENOTFOUND) ||
            (e->live && (v.len != e->vl || (v.len && memcmp(v.b, e->v, v.len) != 0)))) {
            fz_dump("key", e->k, e->kl, 128);
            if (e->live)
                fz_dump("model's value", e->v, e->vl, 128);
            if (rc == 0)
                fz_dump("store's value", v.b, v.len, 128);
            FZ_CHECK(0, "%s: the store disagrees with the model: read gave %d (%s)", when, rc,
                     kvs_strerror(rc));
        }
    }
    FZ_CHECK(kvs_stats_get(db, &st) == 0, "kvs_stats_get failed");
    FZ_CHECK(st.keys == m->live, "%s: the store counts %llu keys, the model %zu", when,
             (unsigned long long)st.keys, m->live);
    free(v.b);
}

/* ---- the connection ---- */

static int shutdowns;

static void request_shutdown(server *s)
{
    (void)s;
    shutdowns++;
}

static void drain(int fd, bytes *out)
{
    uint8_t tmp[65536];

    for (;;) {
        ssize_t r = read(fd, tmp, sizeof tmp);
        if (r > 0)
            fz_bytes_add(out, tmp, (size_t)r);
        else if (r < 0 && errno == EINTR)
            continue;
        else
            return;
    }
}

/* Run the loop until the connection has read all that was sent and written all its replies (or
 * is closed). A connection that stops making progress is a hang: libFuzzer's -timeout. */
static void settle(worker *w, int sfd, int cfd, bytes *out)
{
    for (;;) {
        uv_run(&w->loop, UV_RUN_NOWAIT);
        drain(cfd, out);
        if (!w->conns)
            return;
        int avail = 0;
        if (ioctl(sfd, FIONREAD, &avail) < 0)
            avail = 0;
        if (avail == 0 && w->loop.active_reqs.count == 0)
            return;
    }
}

static size_t piece(fz_rng *g, int mode, size_t left)
{
    size_t k = mode == 0 ? 1 : mode == 1 ? 1 + fz_rng_next(g) % 8
             : mode == 2 ? 1 + fz_rng_next(g) % 64 : 1 + fz_rng_next(g) % left;
    return k < left ? k : left;
}

/* Send the stream to a connection of srv in pieces; every reply into out. */
static void converse(server *srv, const uint8_t *s, size_t n, int mode, uint32_t seed, bytes *out)
{
    worker w;
    int sv[2];
    size_t pos = 0;
    fz_rng g;

    memset(&w, 0, sizeof w);
    w.srv = srv;
    FZ_CHECK(info_loop_init(&w) == 0, "info_loop_init failed");
    FZ_CHECK(uv_loop_init(&w.loop) == 0, "uv_loop_init failed");
    FZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair: %s",
             strerror(errno));
    FZ_CHECK(fcntl(sv[1], F_SETFL, O_NONBLOCK) == 0, "fcntl failed");
    conn_accept(&w, sv[0]);
    FZ_CHECK(w.conns, "conn_accept did not take the connection");
    fz_rng_seed(&g, seed);
    while (pos < n && w.conns) {
        size_t k = piece(&g, mode, n - pos), sent = 0;
        while (sent < k && w.conns) {
            ssize_t r = send(sv[1], s + pos + sent, k - sent, MSG_NOSIGNAL);
            if (r > 0)
                sent += (size_t)r;
            else if (r < 0 && errno != EAGAIN && errno != EINTR)
                break; /* the connection is gone */
            else
                settle(&w, sv[0], sv[1], out);
        }
        pos += k;
        settle(&w, sv[0], sv[1], out);
    }
    settle(&w, sv[0], sv[1], out);
    shutdown(sv[1], SHUT_WR); /* the client is done: the server sees EOF and closes */
    uv_run(&w.loop, UV_RUN_DEFAULT);
    drain(sv[1], out);
    FZ_CHECK(w.conns == NULL, "the connection is still open after EOF");
    FZ_CHECK(uv_loop_close(&w.loop) == 0, "handles left open on the loop");
    info_loop_fini(&w);
    close(sv[1]);
}

/* ---- checking the replies ---- */

static void mismatch(const bytes *replies, size_t at, const expect *x, size_t cmd,
                     const char *what)
{
    fprintf(stderr, "command %zu: %s\n", cmd, what);
    if (x)
        fz_dump("expected", x->exact.b, x->exact.len, 300);
    fz_dump("got", replies->b + at, replies->len - at, 300);
    FZ_CHECK(0, "reply to command %zu does not match the model", cmd);
}

/* Is the reply r (len bytes) "-ERR Protocol error: " and want, as one line (obuf.c turns a CR
 * or LF in a reply into a space)? However the connection's reads cut the stream, the parser
 * gives the same message (regressions/fuzz_commands/count-line-at-limit). */
static bool proto_error_is(const uint8_t *r, size_t len, const char *want)
{
    static const char pre[] = "-ERR Protocol error: ";
    char got[512], exp[512];
    size_t n = len - 2 - (sizeof pre - 1);

    if (len < sizeof pre - 1 + 2 || memcmp(r, pre, sizeof pre - 1) != 0 || n >= sizeof got)
        return false;
    memcpy(got, r + sizeof pre - 1, n);
    got[n] = '\0';
    snprintf(exp, sizeof exp, "%s", want);
    for (char *c = exp; *c; c++)
        if (*c == '\r' || *c == '\n')
            *c = ' ';
    return strcmp(got, exp) == 0;
}

/* Walk the stream with the model m (empty), matching each command's reply in order; m is left
 * as the commands left it, for the caller to check the store against. */
static void check_replies(const uint8_t *s, size_t n, const server *srv, const bytes *replies,
                          model *mp)
{
    resp_parser p;
    model m = *mp;
    expect x = {0};
    size_t off = 0, at = 0, cmd = 0, used;
    char *buf = malloc(n ? n : 1);
    const char **argv = NULL;
    size_t *lens = NULL, capargs = 0;

    FZ_CHECK(buf, "out of memory");
    memcpy(buf, s, n);
    resp_parser_init(&p, &srv->cfg->limits);
    p.unauth = !m.authed;
    while (off < n) {
        int r = resp_parse(&p, buf + off, n - off, &used);
        if (r == RESP_AGAIN)
            break;
        cmd++;
        if (r == RESP_EPROTO) {
            x.kind = X_PROTO;
            x.exact.len = 0;
            fz_bytes_add(&x.exact, p.err, strlen(p.err) + 1);
            x.ends = true;
        } else {
            off += used;
            if (p.argc == 0)
                continue;
            if (p.argc > capargs) {
                capargs = p.argc * 2;
                argv = realloc(argv, capargs * sizeof *argv);
                lens = realloc(lens, capargs * sizeof *lens);
                FZ_CHECK(argv && lens, "out of memory");
            }
            for (size_t i = 0; i < p.argc; i++) {
                argv[i] = resp_arg_ptr(&p, buf + off - used, i);
                lens[i] = p.argv[i].len;
            }
            model_apply(&m, (int)p.argc, argv, lens, &x);
            p.unauth = !m.authed;
            if (m.lost)
                break; /* the rest of the replies are not the model's to judge */
        }
        size_t len = at < replies->len ? reply_len(replies->b + at, replies->len - at, 0) : 0;
        switch (x.kind) {
        case X_NONE:
            break;
        case X_ANY:
            if (len == 0)
                mismatch(replies, at, NULL, cmd, "no well-formed reply");
            at += len;
            break;
        case X_PROTO:
            if (!proto_error_is(replies->b + at, len, (const char *)x.exact.b))
                mismatch(replies, at, &x, cmd, "not the protocol error expected");
            at += len;
            break;
        case X_PREFIX:
            if (len == 0 || len < x.exact.len || memcmp(replies->b + at, x.exact.b, x.exact.len) ||
                replies->b[at] != '-')
                mismatch(replies, at, &x, cmd, "not the error expected");
            at += len;
            break;
        default:
            if (len != x.exact.len || memcmp(replies->b + at, x.exact.b, len) != 0)
                mismatch(replies, at, &x, cmd, "not the reply expected");
            at += len;
        }
        if (x.ends || r == RESP_EPROTO)
            break;
    }
    if (at != replies->len && !m.lost)
        mismatch(replies, at, NULL, cmd, "replies past the last command");
    resp_parser_free(&p);
    free(argv);
    free(lens);
    free(buf);
    free(x.exact.b);
    *mp = m;
}

static char dir[4096];

static void run_input(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    uint8_t cfg = fz_u8(&in);
    uint32_t seed = fz_u32(&in);
    kvs_server_config scfg;
    server srv;
    bytes replies = {0};
    model m = {0};

    FZ_CHECK(fz_rmrf(dir) == 0, "cannot clear %s", dir);
    kvs_server_config_init(&scfg);
    scfg.dir = dir;
    scfg.threads = 1;
    scfg.sync = KVS_SYNC_NEVER;
    scfg.requirepass = cfg & 1 ? PASSWORD : NULL;
    scfg.max_output = 1ull << 40; /* the model does not follow how much a client leaves unread */
    if (cfg & 0x40) {
        scfg.limits.max_bulk = 64;
        scfg.limits.max_multibulk = 8;
        scfg.limits.max_inline = 64;
        scfg.limits.unauth_multibulk = 3;
        scfg.limits.unauth_bulk = 8;
    }
    memset(&srv, 0, sizeof srv);
    srv.cfg = &scfg;
    srv.maxclients = 16;
    srv.request_shutdown = request_shutdown;
    snprintf(srv.bound, sizeof srv.bound, "127.0.0.1:0");
    info_init(&srv);
    server_save_init(&srv); /* a BGSAVE the input asks for runs, and is waited for below */
    FZ_CHECK(store_open(&srv.db, dir, cfg) == 0, "cannot open a fresh store");

    converse(&srv, in.p, in.n, (cfg >> 4) & 3, seed, &replies);
    m.pass = scfg.requirepass;
    m.authed = m.pass == NULL;
    check_replies(in.p, in.n, &srv, &replies, &m);
    store_check(srv.db, &m, "after the connection");
    server_save_stop(&srv);
    FZ_CHECK(kvs_close(srv.db) == 0, "kvs_close failed: %s", kvs_last_error());
    if (cfg & 8) {
        kvs_t *db;
        FZ_CHECK(store_open(&db, dir, cfg) == 0, "the store does not open again");
        store_check(db, &m, "after a reopen");
        FZ_CHECK(kvs_close(db) == 0, "kvs_close failed: %s", kvs_last_error());
    }
    pthread_mutex_destroy(&srv.save.mu);
    m_free(&m);
    free(replies.b);
    kvs_server_config_free(&scfg); /* what a CONFIG SET of a string left in it */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        /* Once: what libuv and the engines open for good on first use (libuv's signal pipes)
         * is opened here, before the descriptors are counted. */
        static const uint8_t kvs_ping[] = "\0seedPING\r\n", lmdb_ping[] = "\2seedPING\r\n";
        fz_quiet();
        fz_path(dir, sizeof dir, "db");
        run_input(kvs_ping, sizeof kvs_ping - 1);
        run_input(lmdb_ping, sizeof lmdb_ping - 1);
    }
    int fds = fz_fd_count();
    run_input(data, size);
    FZ_CHECK(fz_fd_count() == fds, "%d file descriptors before the input, %d after", fds,
             fz_fd_count());
    return 0;
}
