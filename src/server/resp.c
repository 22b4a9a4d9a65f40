/*
 * resp.c — the RESP2 request parser (see resp.h).
 *
 * States: between commands the first byte decides the kind: '*' a multibulk request, anything
 * else an inline line (as in Redis: "$3" alone is an unknown command, not a protocol error). A multibulk reads its count line,
 * then for each element a "$len" line and len bytes followed by CRLF. pos always points at the
 * first byte not yet accepted, so a call that runs out of bytes resumes exactly there.
 */
#include "server/resp.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/array.h"
#include "util/num.h"

/* The most digits of a count or length line. 18 already lie past every limit, so a longer
 * number is malformed — a negative one too, which would otherwise read as an empty array. */
#define RESP_MAX_DIGITS 18

void resp_limits_default(resp_limits *l)
{
    l->max_bulk = 512ull << 20;
    l->max_multibulk = 1ull << 20;
    l->max_inline = 64ull << 10;
    l->unauth_multibulk = 10;
    l->unauth_bulk = 16ull << 10;
}

void resp_parser_init(resp_parser *p, const resp_limits *lim)
{
    memset(p, 0, sizeof *p);
    p->lim = lim;
    p->bulk = -1;
}

void resp_parser_free(resp_parser *p)
{
    free(p->argv);
    free(p->arena);
    memset(p, 0, sizeof *p);
}

static int proto_error(resp_parser *p, const char *fmt, const char *detail)
{
    snprintf(p->err, sizeof p->err, fmt, detail);
    return RESP_EPROTO;
}

static int push_arg(resp_parser *p, size_t off, size_t len)
{
    if (ARR_RESERVE(p->argv, p->cap, p->argc + 1) < 0)
        return proto_error(p, "%s", "out of memory");
    p->argv[p->argc++] = (resp_arg){off, len};
    return 0;
}

/* Find the CRLF-terminated line at pos. 1: *n = its length without CRLF; 0: incomplete;
 * RESP_EPROTO: too long, or a lone LF. */
static int line_at(resp_parser *p, const char *buf, size_t len, size_t pos, size_t *n,
                   const char *what)
{
    size_t avail = len - pos;
    size_t scan = avail < p->lim->max_inline + 2 ? avail : (size_t)p->lim->max_inline + 2;
    const char *nl = memchr(buf + pos, '\n', scan);

    if (!nl) { /* judged on the same max_inline + 2 bytes whether the line came whole or not */
        if (avail >= (size_t)p->lim->max_inline + 2)
            return proto_error(p, "too big %s", what);
        return 0;
    }
    if (nl == buf + pos || nl[-1] != '\r')
        return proto_error(p, "expected CRLF after the %s", what);
    *n = (size_t)(nl - (buf + pos)) - 1;
    return 1;
}

static int parse_multibulk(resp_parser *p, const char *buf, size_t len)
{
    size_t n;
    int64_t v;
    int r;

    if (p->left < 0) { /* the count line */
        if ((r = line_at(p, buf, len, 0, &n, "mbulk count string")) <= 0)
            return r;
        if (!num_parse_i64(buf + 1, n - 1, RESP_MAX_DIGITS, &v) ||
            v > (int64_t)p->lim->max_multibulk)
            return proto_error(p, "%s", "invalid multibulk length");
        if (p->unauth && v > (int64_t)p->lim->unauth_multibulk)
            return proto_error(p, "%s", "unauthenticated multibulk length");
        p->pos = n + 2;
        p->left = v > 0 ? v : 0;
    }
    while (p->left > 0) {
        if (p->bulk < 0) { /* the "$len" line */
            p->need = 0; /* no hint until the length is known */
            if (p->pos >= len)
                return RESP_AGAIN;
            if (buf[p->pos] != '$') {
                char got[2] = {buf[p->pos], 0};
                return proto_error(p, "expected '$', got '%s'", got);
            }
            if ((r = line_at(p, buf, len, p->pos, &n, "bulk count string")) <= 0)
                return r;
            if (!num_parse_i64(buf + p->pos + 1, n - 1, RESP_MAX_DIGITS, &v) || v < 0 ||
                (uint64_t)v > p->lim->max_bulk)
                return proto_error(p, "%s", "invalid bulk length");
            if (p->unauth && (uint64_t)v > p->lim->unauth_bulk)
                return proto_error(p, "%s", "unauthenticated bulk length");
            p->pos += n + 2;
            p->bulk = v;
        }
        p->need = p->pos + (size_t)p->bulk + 2;
        if (len < p->need)
            return RESP_AGAIN;
        if (buf[p->pos + p->bulk] != '\r' || buf[p->pos + p->bulk + 1] != '\n')
            return proto_error(p, "%s", "expected CRLF after bulk data");
        if (push_arg(p, p->pos, (size_t)p->bulk) < 0)
            return RESP_EPROTO;
        p->pos = p->need;
        p->bulk = -1;
        p->left--;
    }
    p->need = 0;
    return RESP_DONE;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Split an inline line into arguments, Redis-style: whitespace separates; "..." allows the
 * escapes \n \r \t \b \a \\ \" \xHH; '...' allows \'; a closing quote must be followed by
 * whitespace or the end. Arguments are written unquoted into the arena. */
static int split_inline(resp_parser *p, const char *s, size_t n)
{
    size_t i = 0, out = 0;

    if (p->arena_cap < n + 1) {
        char *a = realloc(p->arena, n + 1);
        if (!a)
            return proto_error(p, "%s", "out of memory");
        p->arena = a;
        p->arena_cap = n + 1;
    }
    for (;;) {
        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\v' ||
                         s[i] == '\f'))
            i++;
        if (i == n)
            return 0;
        size_t start = out;
        char q = (s[i] == '"' || s[i] == '\'') ? s[i++] : 0;
        bool closed = !q;
        while (i < n) {
            char c = s[i];
            if (!q && (c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'))
                break;
            if (q && c == q) {
                i++;
                if (i < n && s[i] != ' ' && s[i] != '\t')
                    return proto_error(p, "%s", "unbalanced quotes in request");
                closed = true;
                break;
            }
            if (q == '"' && c == '\\' && i + 1 < n) {
                char e = s[i + 1];
                int h1, h2;
                if (e == 'x' && i + 3 < n && (h1 = hexval(s[i + 2])) >= 0 &&
                    (h2 = hexval(s[i + 3])) >= 0) {
                    c = (char)(h1 * 16 + h2);
                    i += 3;
                } else {
                    c = e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e == 'b' ? '\b'
                      : e == 'a' ? '\a' : e;
                    i++;
                }
            } else if (q == '\'' && c == '\\' && i + 1 < n && s[i + 1] == '\'') {
                c = '\'';
                i++;
            }
            p->arena[out++] = c;
            i++;
        }
        if (!closed)
            return proto_error(p, "%s", "unbalanced quotes in request");
        if (push_arg(p, start, out - start) < 0)
            return RESP_EPROTO;
    }
}

static int parse_inline(resp_parser *p, const char *buf, size_t len)
{
    const char *nl = memchr(buf, '\n', len);
    size_t n;

    if (!nl) {
        if (len > p->lim->max_inline)
            return proto_error(p, "%s", "too big inline request");
        return RESP_AGAIN;
    }
    n = (size_t)(nl - buf);
    if (n > p->lim->max_inline)
        return proto_error(p, "%s", "too big inline request");
    p->pos = n + 1;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    if (split_inline(p, buf, n) < 0)
        return RESP_EPROTO;
    return RESP_DONE;
}

int resp_split_line(resp_parser *p, const char *s, size_t n)
{
    p->argc = 0;
    p->err[0] = '\0';
    p->last_kind = 'i'; /* resp_arg_ptr: the arguments are in the arena */
    return split_inline(p, s, n) < 0 ? RESP_EPROTO : RESP_DONE;
}

int resp_parse(resp_parser *p, const char *buf, size_t len, size_t *used)
{
    int r;

    *used = 0;
    if (len == 0)
        return RESP_AGAIN;
    if (p->kind == 0) {
        p->argc = 0;
        p->pos = 0;
        p->left = -1;
        p->bulk = -1;
        p->need = 0;
        p->err[0] = '\0';
        p->kind = buf[0] == '*' ? '*' : 'i';
    }
    r = p->kind == '*' ? parse_multibulk(p, buf, len) : parse_inline(p, buf, len);
    if (r == RESP_DONE) {
        *used = p->pos;
        p->last_kind = p->kind;
        p->kind = 0;
    }
    return r;
}

const char *resp_arg_ptr(const resp_parser *p, const char *buf, size_t i)
{
    return (p->last_kind == '*' ? buf : p->arena) + p->argv[i].off;
}
