/*
 * cmd_string.c — Redis's string commands: SET and its options, the INCR family, APPEND,
 * SETRANGE, SETBIT, GETSET/GETDEL/GETEX, MSET/MSETNX, and the string reads.
 *
 * Every write here is a write command (cmd.h): queue checks the arguments the way Redis does,
 * in Redis's order, and queues one op — a plain KVS_OP_SET where nothing depends on the current
 * value, else a KVS_OP_UPDATE whose function (str_fn) decides from the key's current state and
 * records the outcome in the command's `upd`. set_reply then answers from that record. Relative
 * expiry times become absolute (kvs_now_ms) when the command is queued; a time already past
 * removes the key, as Redis does. Commands that only rewrite a value keep its expiry time
 * (INCR, APPEND, SETRANGE, SETBIT), as Redis does; SET and GETSET clear it.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/cmd.h"

#define MAX_STRING ((long long)KVS_MAX_VALUE) /* Redis's proto-max-bulk-len: 512 MB */

enum { /* what a command does with the key, in its update function */
    OP_SET, OP_GETEX, OP_GETDEL, OP_INCR, OP_INCRF, OP_APPEND, OP_SETRANGE, OP_SETBIT,
    OP_EXPIRE, OP_PERSIST,
};
enum { /* upd.flags */
    F_NX = 1, F_XX = 2, F_GET = 4, F_KEEPTTL = 8, F_PERSIST = 16, F_EX = 32, F_PX = 64,
    F_EXAT = 128, F_PXAT = 256, F_INT = 512, /* SETNX: 1/0 rather than OK/nil */
    F_GT = 1024, F_LT = 2048,
};
enum { RP_OK, RP_NIL, RP_INT, RP_OLD, RP_BULK };

/* A single-key write's arguments, and its outcome (filled by str_fn). */
typedef struct upd {
    conn *c;
    int op, flags;
    const char *val; /* the argument value (SET, APPEND, SETRANGE) */
    size_t vlen;
    long long incr, offset;
    long double fincr;
    uint64_t expire; /* absolute ms, 0: none */
    bool past;       /* expire is already past: the key goes */
    const char *late_err; /* GETEX: a bad time, the reply only if the key is there */
    /* outcome */
    int reply;       /* RP_* */
    const char *err;
    capture old;
    long long n;
    char buf[5120];  /* an INCR's new value (Redis's MAX_LONG_DOUBLE_CHARS) */
    size_t blen;
} upd;

static upd *upd_new(conn *c, batch *b, batch_cmd *bc, int op)
{
    upd *u = batch_alloc(b, sizeof *u);

    if (!u) {
        bc->err = "ERR out of memory";
        return NULL;
    }
    u->c = c;
    u->op = op;
    bc->st = u;
    return u;
}

/* Write val (a copy in batch memory: out->val must outlive the call) with expire. */
static int write_copy(upd *u, kvs_update_out *out, const void *val, size_t vlen, uint64_t exp)
{
    char *p = batch_copy(u->c, val, vlen);

    if (!p) {
        u->err = "ERR out of memory";
        return 0;
    }
    *out = (kvs_update_out){.type = KVS_OP_SET, .val = p, .vlen = vlen, .expire_ms = exp};
    return 0;
}

static void keep_old(upd *u, const kvs_cur *cur)
{
    u->old.found = cur->found;
    u->old.meta = cur->meta;
    if (cur->found) {
        u->old.val = batch_copy(u->c, cur->val, cur->vlen);
        u->old.vlen = cur->vlen;
        if (!u->old.val)
            u->err = "ERR out of memory";
    }
}

static void fn_set(upd *u, const kvs_cur *cur, kvs_update_out *out)
{
    if (u->flags & F_GET) {
        keep_old(u, cur);
        u->reply = RP_OLD;
    }
    if (((u->flags & F_NX) && cur->found) || ((u->flags & F_XX) && !cur->found)) {
        if (!(u->flags & F_GET))
            u->reply = u->flags & F_INT ? RP_INT : RP_NIL;
        u->n = 0;
        return;
    }
    if (!(u->flags & F_GET))
        u->reply = u->flags & F_INT ? RP_INT : RP_OK;
    u->n = 1;
    if (u->past)
        out->type = KVS_OP_REMOVE;
    else
        *out = (kvs_update_out){.type = KVS_OP_SET, .val = u->val, .vlen = u->vlen,
                                .expire_ms = u->flags & F_KEEPTTL ? cur->meta.expire_ms
                                                                  : u->expire};
}

static void fn_getex(upd *u, const kvs_cur *cur, kvs_update_out *out)
{
    keep_old(u, cur);
    u->reply = RP_OLD;
    if (!cur->found)
        return;
    if (u->late_err) { /* Redis checks GETEX's time only once it has found the key */
        u->err = u->late_err;
        return;
    }
    if (u->op == OP_GETDEL || u->past)
        out->type = KVS_OP_REMOVE;
    else if (u->flags & F_PERSIST)
        write_copy(u, out, cur->val, cur->vlen, 0);
    else if (u->expire)
        write_copy(u, out, cur->val, cur->vlen, u->expire);
}

/* Redis's string2ld: the whole value a long double, no leading space, not NaN. */
static bool str2ld(const char *s, size_t n, long double *out)
{
    char buf[5120], *end;

    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, s, n);
    buf[n] = 0;
    errno = 0;
    long double v = strtold(buf, &end);
    if (isspace((unsigned char)buf[0]) || *end || (size_t)(end - buf) != n ||
        (errno == ERANGE && (v == HUGE_VALL || v == -HUGE_VALL || fpclassify(v) == FP_ZERO)) ||
        isnan(v))
        return false;
    *out = v;
    return true;
}

/* Redis's ld2string(LD_STR_HUMAN): 17 decimals, trailing zeros cut. */
static size_t ld_human(char *buf, size_t cap, long double v)
{
    int l = snprintf(buf, cap, "%.17Lf", v);

    if (l < 0 || (size_t)l + 1 > cap)
        return 0;
    if (strchr(buf, '.')) {
        char *p = buf + l - 1;
        while (*p == '0')
            p--, l--;
        if (*p == '.')
            l--;
    }
    if (l == 2 && buf[0] == '-' && buf[1] == '0')
        buf[0] = '0', l = 1;
    return (size_t)l;
}

static void fn_incr(upd *u, const kvs_cur *cur, kvs_update_out *out)
{
    long long v = 0;

    if (cur->found && !redis_str2ll(cur->val, cur->vlen, &v)) {
        u->err = ERR_NOT_INT;
        return;
    }
    if ((u->incr < 0 && v < 0 && u->incr < LLONG_MIN - v) ||
        (u->incr > 0 && v > 0 && u->incr > LLONG_MAX - v)) {
        u->err = "ERR increment or decrement would overflow";
        return;
    }
    u->n = v + u->incr;
    u->reply = RP_INT;
    u->blen = (size_t)snprintf(u->buf, sizeof u->buf, "%lld", u->n);
    *out = (kvs_update_out){.type = KVS_OP_SET, .val = u->buf, .vlen = u->blen,
                            .expire_ms = cur->meta.expire_ms};
}

static void fn_incrf(upd *u, const kvs_cur *cur, kvs_update_out *out)
{
    long double v = 0;

    if (cur->found && !str2ld(cur->val, cur->vlen, &v)) {
        u->err = "ERR value is not a valid float";
        return;
    }
    v += u->fincr;
    if (isnan(v) || isinf(v)) {
        u->err = "ERR increment would produce NaN or Infinity";
        return;
    }
    if (!(u->blen = ld_human(u->buf, sizeof u->buf, v))) {
        u->err = "ERR value is not a valid float";
        return;
    }
    u->reply = RP_BULK;
    *out = (kvs_update_out){.type = KVS_OP_SET, .val = u->buf, .vlen = u->blen,
                            .expire_ms = cur->meta.expire_ms};
}

/* APPEND, SETRANGE, SETBIT: the value grown to len (zero-padded), with at[off..) = val. */
static void put_at(upd *u, const kvs_cur *cur, kvs_update_out *out, size_t len, size_t off,
                   const void *val, size_t vlen)
{
    char *p = batch_alloc(&u->c->batch, len ? len : 1);

    if (!p) {
        u->err = "ERR out of memory";
        return;
    }
    if (cur->found)
        memcpy(p, cur->val, cur->vlen);
    if (vlen)
        memcpy(p + off, val, vlen);
    u->reply = RP_INT;
    *out = (kvs_update_out){.type = KVS_OP_SET, .val = p, .vlen = len,
                            .expire_ms = cur->meta.expire_ms};
}

static void fn_append(upd *u, const kvs_cur *cur, kvs_update_out *out)
{
    if ((long long)(cur->vlen + u->vlen) > MAX_STRING) {
        u->err = ERR_MAX_SIZE;
        return;
    }
    u->n = (long long)(cur->vlen + u->vlen);
    put_at(u, cur, out, cur->vlen + u->vlen, cur->vlen, u->val, u->vlen);
}

static void fn_setrange(upd *u, const kvs_cur *cur, kvs_update_out *out)
{
    size_t end = (size_t)u->offset + u->vlen;

    u->reply = RP_INT;
    u->n = (long long)cur->vlen;
    if (u->vlen == 0)
        return; /* nothing to write: the length as it is (0 for a missing key) */
    if (end < cur->vlen)
        end = cur->vlen;
    u->n = (long long)end;
    put_at(u, cur, out, end, (size_t)u->offset, u->val, u->vlen);
}

static void fn_setbit(upd *u, const kvs_cur *cur, kvs_update_out *out)
{
    size_t byte = (size_t)(u->offset >> 3), len = cur->vlen > byte ? cur->vlen : byte + 1;
    unsigned mask = 0x80u >> (u->offset & 7);
    unsigned char old = byte < cur->vlen ? ((const unsigned char *)cur->val)[byte] : 0;
    unsigned char now = u->incr ? (unsigned char)(old | mask) : (unsigned char)(old & ~mask);

    u->n = (old & mask) != 0;
    put_at(u, cur, out, len, byte, &now, 1);
}

/* EXPIRE family: Redis's expireGenericCommand from the moment the key is found. */
static void fn_expire(upd *u, const kvs_cur *cur, kvs_update_out *out)
{
    uint64_t have = cur->meta.expire_ms; /* 0: none, an infinite TTL */

    u->reply = RP_INT;
    u->n = 0;
    if (!cur->found)
        return;
    if (u->op == OP_PERSIST) {
        if (have) {
            u->n = 1;
            write_copy(u, out, cur->val, cur->vlen, 0);
        }
        return;
    }
    if (((u->flags & F_NX) && have) || ((u->flags & F_XX) && !have) ||
        ((u->flags & F_GT) && (!have || u->expire <= have)) ||
        ((u->flags & F_LT) && have && u->expire >= have))
        return;
    u->n = 1;
    if (u->past)
        out->type = KVS_OP_REMOVE;
    else
        write_copy(u, out, cur->val, cur->vlen, u->expire);
}

static int str_fn(void *ctx, const kvs_cur *cur, kvs_update_out *out)
{
    upd *u = ctx;

    switch (u->op) {
    case OP_SET: fn_set(u, cur, out); break;
    case OP_GETEX:
    case OP_GETDEL: fn_getex(u, cur, out); break;
    case OP_INCR: fn_incr(u, cur, out); break;
    case OP_INCRF: fn_incrf(u, cur, out); break;
    case OP_APPEND: fn_append(u, cur, out); break;
    case OP_SETRANGE: fn_setrange(u, cur, out); break;
    case OP_SETBIT: fn_setbit(u, cur, out); break;
    default: fn_expire(u, cur, out); break;
    }
    return 0;
}

/* Queue u's update of key, or refuse a key kvs cannot hold. */
static void queue_upd(batch *b, batch_cmd *bc, upd *u, const char *key, size_t klen)
{
    if (!key_fits(klen))
        bc->refused = KVS_EKEYTOOBIG;
    else if (u->val && u->vlen > KVS_MAX_VALUE)
        bc->refused = KVS_EVALTOOBIG;
    else
        batch_update(b, key, klen, str_fn, u);
}

void set_reply(conn *c, const batch *b, const batch_cmd *bc)
{
    const upd *u = bc->st;
    int rc = batch_cmd_error(b, bc);

    if (rc < 0)
        return reply_batch_error(c, b, bc, rc);
    if (!u)
        return (void)resp_ok(&c->out); /* a plain SET */
    if (u->err)
        return (void)resp_error(&c->out, "%s", u->err);
    switch (u->reply) {
    case RP_OK: resp_ok(&c->out); break;
    case RP_NIL: resp_nil(&c->out); break;
    case RP_INT: resp_int(&c->out, u->n); break;
    case RP_BULK: resp_bulk(&c->out, u->buf, u->blen); break;
    default:
        if (u->old.found)
            resp_bulk(&c->out, u->old.val, u->old.vlen);
        else
            resp_nil(&c->out);
    }
}

void ok_reply(conn *c, const batch *b, const batch_cmd *bc)
{
    int rc = batch_cmd_error(b, bc);

    if (rc < 0)
        reply_batch_error(c, b, bc, rc);
    else
        resp_ok(&c->out);
}

/* An expiry argument as Redis's getExpireMillisecondsOrReply reads it (SET, SETEX, GETEX):
 * positive, in seconds or ms, relative or absolute; *abs the absolute time in ms. */
static const char *parse_set_expire(conn *c, batch *b, const char *cmd, const char *s,
                                    size_t n, int flags, uint64_t *abs, bool *past)
{
    long long v;
    bool sec = flags & (F_EX | F_EXAT);
    uint64_t now = cmd_now_ms(c);

    if (!redis_str2ll(s, n, &v))
        return ERR_NOT_INT;
    if (v <= 0 || (sec && v > LLONG_MAX / 1000))
        return batch_errf(b, "ERR invalid expire time in '%s' command", cmd);
    if (sec)
        v *= 1000;
    if (flags & (F_EX | F_PX)) {
        if (v > LLONG_MAX - (long long)now)
            return batch_errf(b, "ERR invalid expire time in '%s' command", cmd);
        v += (long long)now;
    }
    *abs = (uint64_t)v;
    *past = *abs <= now;
    return NULL;
}

/* Redis's parseExtendedStringArgumentsOrReply, for SET (get false) and GETEX (get true). */
static const char *parse_set_options(int argc, const char **argv, const size_t *lens, int from,
                                     bool getex, int *flags, int *at)
{
    const int expiry = F_EX | F_PX | F_EXAT | F_PXAT;

    *at = 0;
    for (int j = from; j < argc; j++) {
        const char *o = argv[j];
        size_t n = lens[j];
        bool next = j + 1 < argc;
        int f = 0;
        if (!getex && arg_is(o, n, "NX") && !(*flags & F_XX))
            f = F_NX;
        else if (!getex && arg_is(o, n, "XX") && !(*flags & F_NX))
            f = F_XX;
        else if (!getex && arg_is(o, n, "GET"))
            f = F_GET;
        else if (!getex && arg_is(o, n, "KEEPTTL") && !(*flags & (F_PERSIST | expiry)))
            f = F_KEEPTTL;
        else if (getex && arg_is(o, n, "PERSIST") && !(*flags & (F_KEEPTTL | expiry)))
            f = F_PERSIST;
        else if (next && !(*flags & (F_KEEPTTL | F_PERSIST))) {
            static const struct { const char *w; int f; } units[] = {
                {"EX", F_EX}, {"PX", F_PX}, {"EXAT", F_EXAT}, {"PXAT", F_PXAT}};
            for (size_t i = 0; i < 4; i++)
                if (arg_is(o, n, units[i].w) && !(*flags & (expiry & ~units[i].f)))
                    f = units[i].f;
            if (f)
                *at = ++j;
        }
        if (!f)
            return ERR_SYNTAX;
        *flags |= f;
    }
    return NULL;
}

void set_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv, const size_t *lens)
{
    int flags = 0, at;
    upd *u;

    if (argc == 3 && !c->multi) { /* plain: no state, one SET (see cmd_batch_add too) */
        if (!(bc->refused = check_set(lens[1], lens[2])))
            *batch_op(b) = (kvs_op){.type = KVS_OP_SET, .key = argv[1], .klen = lens[1],
                                    .val = argv[2], .vlen = lens[2]};
        return;
    }
    if ((bc->err = parse_set_options(argc, argv, lens, 3, false, &flags, &at)) ||
        !(u = upd_new(c, b, bc, OP_SET)))
        return;
    u->flags = flags;
    if (at && (bc->err = parse_set_expire(c, b, "set", argv[at], lens[at], flags, &u->expire,
                                          &u->past)))
        return;
    u->val = argv[2];
    u->vlen = lens[2];
    queue_upd(b, bc, u, argv[1], lens[1]);
}

void setnx_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                 const size_t *lens)
{
    upd *u = upd_new(c, b, bc, OP_SET);

    if (!u)
        return;
    u->flags = bc->cmd->variant ? F_GET : F_NX | F_INT;
    u->val = argv[2];
    u->vlen = lens[2];
    queue_upd(b, bc, u, argv[1], lens[1]);
}

void setex_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                 const size_t *lens)
{
    upd *u = upd_new(c, b, bc, OP_SET);

    if (!u || (bc->err = parse_set_expire(c, b, bc->cmd->name, argv[2], lens[2],
                                          bc->cmd->variant ? F_EX : F_PX, &u->expire,
                                          &u->past)))
        return;
    u->val = argv[3];
    u->vlen = lens[3];
    queue_upd(b, bc, u, argv[1], lens[1]);
}

void getdel_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                  const size_t *lens)
{
    upd *u = upd_new(c, b, bc, OP_GETDEL);

    if (!u)
        return;
    if (key_fits(lens[1]))
        batch_update(b, argv[1], lens[1], str_fn, u);
    else
        u->reply = RP_OLD; /* absent */
}

void getex_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                 const size_t *lens)
{
    int flags = 0, at;
    upd *u;

    if ((bc->err = parse_set_options(argc, argv, lens, 2, true, &flags, &at)) ||
        !(u = upd_new(c, b, bc, OP_GETEX)))
        return;
    u->flags = flags;
    u->reply = RP_OLD;
    if (at)
        u->late_err = parse_set_expire(c, b, "getex", argv[at], lens[at], flags, &u->expire,
                                       &u->past);
    if (key_fits(lens[1]))
        batch_update(b, argv[1], lens[1], str_fn, u);
}

static void incr_generic(conn *c, batch *b, batch_cmd *bc, const char **argv,
                         const size_t *lens, long long by)
{
    upd *u = upd_new(c, b, bc, OP_INCR);

    if (!u)
        return;
    u->incr = by;
    queue_upd(b, bc, u, argv[1], lens[1]);
}

void incr_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                const size_t *lens)
{
    incr_generic(c, b, bc, argv, lens, bc->cmd->variant);
}

void incrby_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                  const size_t *lens)
{
    long long by;

    if (!redis_str2ll(argv[2], lens[2], &by))
        bc->err = ERR_NOT_INT;
    else if (bc->cmd->variant < 0 && by == LLONG_MIN)
        bc->err = "ERR decrement would overflow";
    else
        incr_generic(c, b, bc, argv, lens, bc->cmd->variant < 0 ? -by : by);
}

void incrbyfloat_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                       const size_t *lens)
{
    long double by;
    upd *u;

    /* the value is checked before the increment in Redis, with the same words */
    if (!str2ld(argv[2], lens[2], &by))
        bc->err = "ERR value is not a valid float";
    else if ((u = upd_new(c, b, bc, OP_INCRF))) {
        u->fincr = by;
        queue_upd(b, bc, u, argv[1], lens[1]);
    }
}

void append_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                  const size_t *lens)
{
    upd *u = upd_new(c, b, bc, OP_APPEND);

    if (!u)
        return;
    u->val = argv[2];
    u->vlen = lens[2];
    queue_upd(b, bc, u, argv[1], lens[1]);
}

void setrange_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                    const size_t *lens)
{
    long long off;
    upd *u;

    if (!redis_str2ll(argv[2], lens[2], &off))
        bc->err = ERR_NOT_INT;
    else if (off < 0)
        bc->err = "ERR offset is out of range";
    else if (lens[3] > 0 && off + (long long)lens[3] > MAX_STRING)
        bc->err = ERR_MAX_SIZE;
    else if ((u = upd_new(c, b, bc, OP_SETRANGE))) {
        u->offset = off;
        u->val = argv[3];
        u->vlen = lens[3];
        queue_upd(b, bc, u, argv[1], lens[1]);
    }
}

/* Redis's getBitOffsetFromArgument. */
static bool bit_offset(const char *s, size_t n, long long *off)
{
    return redis_str2ll(s, n, off) && *off >= 0 && (*off >> 3) < MAX_STRING;
}

void setbit_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                  const size_t *lens)
{
    long long off, bit;
    upd *u;

    if (!bit_offset(argv[2], lens[2], &off))
        bc->err = "ERR bit offset is not an integer or out of range";
    else if (!redis_str2ll(argv[3], lens[3], &bit) || (bit & ~1ll))
        bc->err = "ERR bit is not an integer or out of range";
    else if ((u = upd_new(c, b, bc, OP_SETBIT))) {
        u->offset = off;
        u->incr = bit;
        u->reply = RP_INT;
        queue_upd(b, bc, u, argv[1], lens[1]);
    }
}

/* EXPIRE family: Redis's parse order — options, then the number, then its range. */
void expire_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                  const size_t *lens)
{
    bool sec = bc->cmd->variant & EXPIRE_SECONDS, relative = bc->cmd->variant & EXPIRE_RELATIVE;
    const char *name = bc->cmd->name;
    int flags = 0;
    long long when;
    upd *u;

    for (int i = 3; i < argc; i++) {
        static const struct { const char *w; int f; } opts[] = {
            {"NX", F_NX}, {"XX", F_XX}, {"GT", F_GT}, {"LT", F_LT}};
        int f = 0;
        for (size_t k = 0; k < 4; k++)
            if (arg_is(argv[i], lens[i], opts[k].w))
                f = opts[k].f;
        if (!f) {
            bc->err = batch_errf(b, "ERR Unsupported option %.*s", (int)lens[i], argv[i]);
            return;
        }
        flags |= f;
    }
    if ((flags & F_NX) && (flags & (F_XX | F_GT | F_LT))) {
        bc->err = "ERR NX and XX, GT or LT options at the same time are not compatible";
        return;
    }
    if ((flags & F_GT) && (flags & F_LT)) {
        bc->err = "ERR GT and LT options at the same time are not compatible";
        return;
    }
    if (!redis_str2ll(argv[2], lens[2], &when)) {
        bc->err = ERR_NOT_INT;
        return;
    }
    long long now = (long long)cmd_now_ms(c), base = relative ? now : 0;
    if ((sec && (when > LLONG_MAX / 1000 || when < LLONG_MIN / 1000)) ||
        (sec ? when * 1000 : when) > LLONG_MAX - base) {
        bc->err = batch_errf(b, "ERR invalid expire time in '%s' command", name);
        return;
    }
    when = (sec ? when * 1000 : when) + base;
    if (!(u = upd_new(c, b, bc, OP_EXPIRE)))
        return;
    u->flags = flags;
    u->reply = RP_INT;
    u->past = when <= now;
    u->expire = u->past ? 0 : (uint64_t)when;
    if (key_fits(lens[1]))
        batch_update(b, argv[1], lens[1], str_fn, u);
}

void persist_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                   const size_t *lens)
{
    upd *u = upd_new(c, b, bc, OP_PERSIST);

    if (!u)
        return;
    u->reply = RP_INT;
    if (key_fits(lens[1]))
        batch_update(b, argv[1], lens[1], str_fn, u);
}

/* ---- MSET, MSETNX ---- */

void mset_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                const size_t *lens)
{
    if (argc % 2 == 0) {
        bc->err = "ERR wrong number of arguments for 'mset' command";
        return;
    }
    for (int i = 1; i + 1 < argc; i += 2)
        if ((bc->refused = check_set(lens[i], lens[i + 1])))
            return; /* all or nothing, as in Redis */
    for (int i = 1; i + 1 < argc; i += 2) /* one group (kvs_write): all or nothing */
        *batch_op(b) = (kvs_op){.type = KVS_OP_SET, .key = argv[i], .klen = lens[i],
                                .val = argv[i + 1], .vlen = lens[i + 1],
                                .flags = i + 2 < argc ? KVS_OP_WITH_NEXT : 0};
}

/* MSETNX: a check of every key, then a write of every key that happens only if no check found
 * its key — all in one group, in the engine's order, so no other write comes between. */
typedef struct msetnx_st {
    bool exists;
    const char *val;
    size_t vlen;
    struct msetnx_st *all; /* the first: where exists is */
} msetnx_st;

static int msetnx_check(void *ctx, const kvs_cur *cur, kvs_update_out *out)
{
    msetnx_st *s = ctx;

    (void)out;
    s->all->exists |= cur->found;
    return 0;
}

static int msetnx_set(void *ctx, const kvs_cur *cur, kvs_update_out *out)
{
    msetnx_st *s = ctx;

    (void)cur;
    if (!s->all->exists)
        *out = (kvs_update_out){.type = KVS_OP_SET, .val = s->val, .vlen = s->vlen};
    return 0;
}

void msetnx_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                  const size_t *lens)
{
    size_t n = (size_t)(argc - 1) / 2;
    msetnx_st *st;

    if (argc % 2 == 0) {
        bc->err = "ERR wrong number of arguments for 'msetnx' command";
        return;
    }
    for (int i = 1; i + 1 < argc; i += 2)
        if ((bc->refused = check_set(lens[i], lens[i + 1])))
            return;
    if (!(st = batch_alloc(b, n * sizeof *st)) || !batch_reserve(b, 2 * n)) {
        bc->err = "ERR out of memory";
        return;
    }
    bc->st = st;
    for (size_t i = 0; i < n; i++) {
        st[i] = (msetnx_st){.all = st, .val = argv[2 + 2 * i], .vlen = lens[2 + 2 * i]};
        batch_update(b, argv[1 + 2 * i], lens[1 + 2 * i], msetnx_check, &st[i]);
    }
    for (size_t i = 0; i < n; i++)
        batch_update(b, argv[1 + 2 * i], lens[1 + 2 * i], msetnx_set, &st[i]);
    for (size_t i = b->nops - 2 * n; i + 1 < b->nops; i++)
        b->ops[i].flags = KVS_OP_WITH_NEXT;
}

void int_reply(conn *c, const batch *b, const batch_cmd *bc)
{
    const msetnx_st *st = bc->st;
    int rc = batch_cmd_error(b, bc);

    if (rc < 0)
        reply_batch_error(c, b, bc, rc);
    else
        resp_int(&c->out, !st->exists);
}

/* ---- reads ---- */

void get_read(conn *c, int argc, const char **argv, const size_t *lens, const capture *caps)
{
    if (caps[0].found)
        resp_bulk(&c->out, caps[0].val, caps[0].vlen);
    else
        resp_nil(&c->out);
}

void mget_read(conn *c, int argc, const char **argv, const size_t *lens, const capture *caps)
{
    resp_array(&c->out, argc - 1);
    for (int i = 0; i < argc - 1; i++)
        get_read(c, 2, NULL, NULL, &caps[i]);
}

void strlen_read(conn *c, int argc, const char **argv, const size_t *lens, const capture *caps)
{
    resp_int(&c->out, (long long)caps[0].vlen);
}

void getrange_read(conn *c, int argc, const char **argv, const size_t *lens,
                   const capture *caps)
{
    long long start, end, len = (long long)caps[0].vlen;

    if (!redis_str2ll(argv[2], lens[2], &start) || !redis_str2ll(argv[3], lens[3], &end))
        return (void)resp_error(&c->out, "%s", ERR_NOT_INT);
    if (start < 0 && end < 0 && start > end)
        return (void)resp_bulk(&c->out, "", 0);
    if (start < 0)
        start += len;
    if (end < 0)
        end += len;
    if (start < 0)
        start = 0;
    if (end < 0)
        end = 0;
    if (end >= len)
        end = len - 1;
    if (start > end || len == 0)
        resp_bulk(&c->out, "", 0);
    else
        resp_bulk(&c->out, caps[0].val + start, (size_t)(end - start + 1));
}

void getbit_read(conn *c, int argc, const char **argv, const size_t *lens, const capture *caps)
{
    long long off;

    if (!bit_offset(argv[2], lens[2], &off))
        return (void)resp_error(&c->out, "ERR bit offset is not an integer or out of range");
    size_t byte = (size_t)(off >> 3);
    resp_int(&c->out, byte < caps[0].vlen &&
                          (((const unsigned char *)caps[0].val)[byte] & (0x80u >> (off & 7))));
}

void bitcount_read(conn *c, int argc, const char **argv, const size_t *lens,
                   const capture *caps)
{
    const unsigned char *p = (const unsigned char *)caps[0].val;
    long long start = 0, end, total, count = 0;
    bool bit = false;

    if (argc == 4 || argc == 5) {
        if (!redis_str2ll(argv[2], lens[2], &start) || !redis_str2ll(argv[3], lens[3], &end))
            return (void)resp_error(&c->out, "%s", ERR_NOT_INT);
        if (argc == 5) {
            if (arg_is(argv[4], lens[4], "BIT"))
                bit = true;
            else if (!arg_is(argv[4], lens[4], "BYTE"))
                return (void)resp_error(&c->out, "%s", ERR_SYNTAX);
        }
    } else if (argc != 2) {
        return (void)resp_error(&c->out, "%s", ERR_SYNTAX);
    }
    if (!caps[0].found)
        return (void)resp_int(&c->out, 0);
    total = (long long)caps[0].vlen * (bit ? 8 : 1);
    if (argc == 2)
        end = total - 1;
    if (start < 0 && end < 0 && start > end)
        return (void)resp_int(&c->out, 0);
    if (start < 0)
        start += total;
    if (end < 0)
        end += total;
    if (start < 0)
        start = 0;
    if (end < 0)
        end = 0;
    if (end >= total)
        end = total - 1;
    for (long long i = start; i <= end; i++)
        count += bit ? (p[i >> 3] >> (7 - (i & 7))) & 1 : __builtin_popcount(p[i]);
    resp_int(&c->out, count);
}
