/*
 * cmd_keys.c — commands on keys rather than values: DEL/UNLINK, EXISTS/TOUCH, RENAME(NX),
 * COPY, TTL and its kin, TYPE, SCAN, KEYS, RANDOMKEY, FLUSHDB/FLUSHALL.
 *
 * RENAME, RENAMENX and COPY are one group of update ops over two keys (cmd.h): the checks come
 * first and only record what they find, the writes after them act on it, so nothing is refused
 * with KVS_ECONFLICT (which inside MULTI would refuse the commands after it) and no other
 * write can come between the read of the source and the write of the destination.
 *
 * SCAN is kvs_scan with its cursor as a decimal number; the pattern (Redis's glob rules) and
 * TYPE filter what it returns, as in Redis, so a step may return no key and a non-zero cursor.
 * Every value is a string: TYPE answers "string" or "none", SCAN TYPE string is no filter and
 * any other type matches nothing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "server/cmd.h"
#include "util/array.h"
#include "util/glob.h"

void del_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv, const size_t *lens)
{
    for (int i = 1; i < argc; i++)
        if (key_fits(lens[i])) /* a longer key cannot be there */
            *batch_op(b) = (kvs_op){.type = KVS_OP_REMOVE, .key = argv[i], .klen = lens[i]};
}

void del_reply(conn *c, const batch *b, const batch_cmd *bc)
{
    long long removed = 0;
    int rc = batch_cmd_error(b, bc);

    if (rc < 0)
        return reply_batch_error(c, b, bc, rc);
    for (size_t i = bc->first; i < bc->first + bc->n; i++)
        removed += b->ops[i].rc == 0;
    resp_int(&c->out, removed);
}

void exists_read(conn *c, int argc, const char **argv, const size_t *lens, const capture *caps)
{
    long long n = 0;

    for (int i = 0; i < argc - 1; i++)
        n += caps[i].found;
    resp_int(&c->out, n);
}

/* TTL and PTTL: -2 no key, -1 no expiry, else what is left (TTL rounded, as Redis). */
static void ttl_generic(conn *c, const capture *cap, bool ms, bool abs)
{
    uint64_t at = cap->meta.expire_ms;

    if (!cap->found)
        return (void)resp_int(&c->out, -2);
    if (!at)
        return (void)resp_int(&c->out, -1);
    if (abs)
        return (void)resp_int(&c->out, (long long)(ms ? at : at / 1000));
    uint64_t now = cmd_now_ms(c);
    long long left = at > now ? (long long)(at - now) : 0;
    resp_int(&c->out, ms ? left : (left + 500) / 1000);
}

void ttl_read(conn *c, int argc, const char **argv, const size_t *lens, const capture *caps)
{
    ttl_generic(c, caps, false, false);
}

void pttl_read(conn *c, int argc, const char **argv, const size_t *lens, const capture *caps)
{
    ttl_generic(c, caps, true, false);
}

void expiretime_read(conn *c, int argc, const char **argv, const size_t *lens,
                     const capture *caps)
{
    ttl_generic(c, caps, false, true);
}

void pexpiretime_read(conn *c, int argc, const char **argv, const size_t *lens,
                      const capture *caps)
{
    ttl_generic(c, caps, true, true);
}

void type_read(conn *c, int argc, const char **argv, const size_t *lens, const capture *caps)
{
    resp_status(&c->out, caps[0].found ? "string" : "none");
}

/* ---- RENAME, RENAMENX, COPY ---- */

enum { MV_RENAME, MV_RENAMENX, MV_COPY };

typedef struct move_st {
    conn *c;
    int kind;
    bool replace;     /* COPY REPLACE */
    bool same;        /* source and destination are one key */
    bool dst_found;   /* what the check of the destination saw */
    capture src;      /* what the read of the source saw */
    bool moved;
} move_st;

static int move_check_dst(void *ctx, const kvs_cur *cur, kvs_update_out *out)
{
    move_st *m = ctx;

    (void)out;
    m->dst_found = cur->found;
    return 0;
}

/* Read the source; RENAME(NX) removes it when the move is to happen. */
static int move_take_src(void *ctx, const kvs_cur *cur, kvs_update_out *out)
{
    move_st *m = ctx;

    m->src.found = cur->found;
    m->src.meta = cur->meta;
    if (!cur->found || m->same)
        return 0;
    if (m->kind == MV_RENAMENX ? m->dst_found : m->kind == MV_COPY && m->dst_found && !m->replace)
        return 0;
    if (!(m->src.val = batch_copy(m->c, cur->val, cur->vlen)))
        return KVS_ENOMEM;
    m->src.vlen = cur->vlen;
    m->moved = true;
    if (m->kind != MV_COPY)
        out->type = KVS_OP_REMOVE;
    return 0;
}

static int move_put_dst(void *ctx, const kvs_cur *cur, kvs_update_out *out)
{
    move_st *m = ctx;

    (void)cur;
    if (m->moved)
        *out = (kvs_update_out){.type = KVS_OP_SET, .val = m->src.val, .vlen = m->src.vlen,
                                .expire_ms = m->src.meta.expire_ms};
    return 0;
}

static void move_queue(conn *c, batch *b, batch_cmd *bc, const char **argv, const size_t *lens,
                       int kind, bool replace)
{
    move_st *m;

    if (!key_fits(lens[1]) && kind != MV_COPY) {
        bc->err = "ERR no such key"; /* a key kvs cannot hold is not there */
        return;
    }
    if (!key_fits(lens[2])) {
        bc->refused = KVS_EKEYTOOBIG;
        return;
    }
    if (!(m = batch_alloc(b, sizeof *m))) {
        bc->err = "ERR out of memory";
        return;
    }
    *m = (move_st){.c = c, .kind = kind, .replace = replace,
                   .same = lens[1] == lens[2] && memcmp(argv[1], argv[2], lens[1]) == 0};
    bc->st = m;
    if (!key_fits(lens[1]))
        return; /* COPY of a missing source: 0 */
    size_t first = b->nops;
    batch_update(b, argv[2], lens[2], move_check_dst, m);
    batch_update(b, argv[1], lens[1], move_take_src, m);
    batch_update(b, argv[2], lens[2], move_put_dst, m);
    for (size_t i = first; i + 1 < b->nops; i++)
        b->ops[i].flags = KVS_OP_WITH_NEXT;
}

void move_reply(conn *c, const batch *b, const batch_cmd *bc)
{
    const move_st *m = bc->st;
    int rc = batch_cmd_error(b, bc);

    if (rc < 0)
        return reply_batch_error(c, b, bc, rc);
    if (m->kind == MV_COPY)
        return (void)resp_int(&c->out, m->moved);
    if (!m->src.found)
        return (void)resp_error(&c->out, "ERR no such key");
    if (m->kind == MV_RENAME)
        resp_ok(&c->out);
    else
        resp_int(&c->out, m->moved);
}

void rename_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                  const size_t *lens)
{
    move_queue(c, b, bc, argv, lens, bc->cmd->variant ? MV_RENAMENX : MV_RENAME, false);
}

void copy_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                const size_t *lens)
{
    bool replace = false;

    for (int i = 3; i < argc; i++) {
        if (arg_is(argv[i], lens[i], "REPLACE")) {
            replace = true;
        } else if (arg_is(argv[i], lens[i], "DB") && i + 1 < argc) {
            long long db;
            if (!redis_str2ll(argv[i + 1], lens[i + 1], &db)) {
                bc->err = ERR_NOT_INT;
                return;
            }
            if (db != 0) {
                bc->err = "ERR DB index is out of range";
                return;
            }
            i++;
        } else {
            bc->err = ERR_SYNTAX;
            return;
        }
    }
    if (lens[1] == lens[2] && memcmp(argv[1], argv[2], lens[1]) == 0) {
        bc->err = "ERR source and destination objects are the same";
        return;
    }
    move_queue(c, b, bc, argv, lens, MV_COPY, replace);
}

/* ---- SCAN, KEYS, RANDOMKEY ---- */

/* Keys collected for a reply: offsets into one buffer. */
typedef struct keylist {
    char *buf;
    size_t len, cap;
    size_t *off;      /* key i is buf[off[i], off[i + 1]) */
    size_t n, capoff;
    const char *pat;  /* NULL: every key */
    size_t plen;
    bool none;        /* TYPE other than string: nothing matches */
    int rc;
} keylist;

static int keylist_add(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                       const kvs_meta *meta)
{
    keylist *l = ctx;

    (void)val, (void)vlen, (void)meta;
    if (l->none || (l->pat && !glob_match(l->pat, l->plen, key, klen, false)))
        return 0;
    if (ARR_RESERVE(l->buf, l->cap, l->len + klen) < 0 ||
        ARR_RESERVE(l->off, l->capoff, l->n + 2) < 0)
        return l->rc = KVS_ENOMEM;
    if (l->n == 0)
        l->off[0] = 0;
    memcpy(l->buf + l->len, key, klen);
    l->len += klen;
    l->off[++l->n] = l->len;
    return 0;
}

static void keylist_reply(conn *c, const keylist *l)
{
    resp_array(&c->out, (long long)l->n);
    for (size_t i = 0; i < l->n; i++)
        resp_bulk(&c->out, l->buf + l->off[i], l->off[i + 1] - l->off[i]);
}

static void keylist_free(keylist *l)
{
    free(l->buf);
    free(l->off);
}

void cmd_scan(conn *c, int argc, const char **argv, const size_t *lens)
{
    char num[32], *end;
    long long count = 10;
    keylist l = {0};
    uint64_t cursor, next = 0;

    /* Redis's parseScanCursorOrReply: strtoul's rules */
    if (lens[1] >= sizeof num || (lens[1] && (argv[1][0] == ' ' || argv[1][0] == '\t')))
        return (void)resp_error(&c->out, "ERR invalid cursor");
    memcpy(num, argv[1], lens[1]);
    num[lens[1]] = 0;
    errno = 0;
    cursor = strtoull(num, &end, 10);
    if (*end || errno == ERANGE)
        return (void)resp_error(&c->out, "ERR invalid cursor");
    for (int i = 2; i < argc; i += 2) {
        bool arg = i + 1 < argc;
        if (arg && arg_is(argv[i], lens[i], "COUNT")) {
            if (!redis_str2ll(argv[i + 1], lens[i + 1], &count))
                return (void)resp_error(&c->out, "%s", ERR_NOT_INT);
            if (count < 1)
                return (void)resp_error(&c->out, "%s", ERR_SYNTAX);
        } else if (arg && arg_is(argv[i], lens[i], "MATCH")) {
            bool all = lens[i + 1] == 1 && argv[i + 1][0] == '*';
            l.pat = all ? NULL : argv[i + 1];
            l.plen = lens[i + 1];
        } else if (arg && arg_is(argv[i], lens[i], "TYPE")) {
            l.none = !arg_is(argv[i + 1], lens[i + 1], "string");
        } else {
            return (void)resp_error(&c->out, "%s", ERR_SYNTAX);
        }
    }
    int rc = kvs_scan(c->srv->db, cursor, (size_t)count, keylist_add, &l, &next);
    if (rc < 0 || l.rc < 0) {
        engine_error(c, "SCAN", rc < 0 ? rc : l.rc);
    } else {
        int n = snprintf(num, sizeof num, "%llu", (unsigned long long)next);
        resp_array(&c->out, 2);
        resp_bulk(&c->out, num, (size_t)n);
        keylist_reply(c, &l);
    }
    keylist_free(&l);
}

/* Every key matching l's pattern, each once (a scan may visit a key twice). */
static int scan_all(conn *c, keylist *l)
{
    uint64_t cursor = 0;
    int rc;

    do {
        rc = kvs_scan(c->srv->db, cursor, 1000, keylist_add, l, &cursor);
    } while (rc >= 0 && l->rc == 0 && cursor != 0);
    return rc < 0 ? rc : l->rc;
}

static _Thread_local const keylist *sort_list; /* qsort has no context argument */

static int key_cmp(const void *a, const void *b)
{
    const keylist *l = sort_list;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    size_t li = l->off[i + 1] - l->off[i], lj = l->off[j + 1] - l->off[j];
    int r = memcmp(l->buf + l->off[i], l->buf + l->off[j], li < lj ? li : lj);
    return r ? r : (li > lj) - (li < lj);
}

void cmd_keys(conn *c, int argc, const char **argv, const size_t *lens)
{
    keylist l = {.pat = lens[1] == 1 && argv[1][0] == '*' ? NULL : argv[1], .plen = lens[1]};
    size_t *idx = NULL, kept = 0;
    int rc = scan_all(c, &l);

    if (rc == 0 && l.n && !(idx = malloc(l.n * sizeof *idx)))
        rc = KVS_ENOMEM;
    if (rc < 0) {
        engine_error(c, "KEYS", rc);
        free(idx);
        return keylist_free(&l);
    }
    for (size_t i = 0; i < l.n; i++)
        idx[i] = i;
    sort_list = &l;
    if (l.n)
        qsort(idx, l.n, sizeof *idx, key_cmp);
    for (size_t i = 0; i < l.n; i++)
        if (i == 0 || key_cmp(&idx[i - 1], &idx[i]) != 0)
            idx[kept++] = idx[i];
    resp_array(&c->out, (long long)kept);
    for (size_t i = 0; i < kept; i++)
        resp_bulk(&c->out, l.buf + l.off[idx[i]], l.off[idx[i] + 1] - l.off[idx[i]]);
    free(idx);
    keylist_free(&l);
}

void cmd_randomkey(conn *c, int argc, const char **argv, const size_t *lens)
{
    keylist l = {0};
    uint64_t cursor = 0;
    int rc;

    /* the keys of the first scan step that has any, one of them at random */
    do {
        rc = kvs_scan(c->srv->db, cursor, 16, keylist_add, &l, &cursor);
    } while (rc >= 0 && l.rc == 0 && l.n == 0 && cursor != 0);
    if (rc < 0 || l.rc < 0) {
        engine_error(c, "RANDOMKEY", rc < 0 ? rc : l.rc);
    } else if (l.n == 0) {
        resp_nil(&c->out);
    } else {
        size_t i = (size_t)random() % l.n;
        resp_bulk(&c->out, l.buf + l.off[i], l.off[i + 1] - l.off[i]);
    }
    keylist_free(&l);
}

void cmd_flushdb(conn *c, int argc, const char **argv, const size_t *lens)
{
    bool async = false;

    if (argc > 2)
        return (void)resp_error(&c->out, "%s", ERR_SYNTAX);
    if (argc == 2) {
        if (arg_is(argv[1], lens[1], "ASYNC"))
            async = true;
        else if (!arg_is(argv[1], lens[1], "SYNC"))
            return (void)resp_error(&c->out, "%s", ERR_SYNTAX);
    }
    int rc = kvs_clear(c->srv->db, async);
    if (rc < 0)
        engine_error(c, "FLUSHDB", rc);
    else
        resp_ok(&c->out);
}
