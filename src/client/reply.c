/*
 * reply.c — the wire format, both ways, and the small pieces every connection kind needs.
 *
 * Requests are always sent as RESP2 multibulk ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"), the one form
 * that carries any bytes; the encoder sizes the whole command first and grows the buffer once.
 *
 * Replies are parsed by a resumable state machine (see internal.h). Its rules, which are the
 * point of the file:
 *   - nothing is trusted: every length and count is parsed strictly (an optional '-', 1 to 19
 *     digits, nothing else, no overflow) and checked against the KVSC_MAX_* limits *before*
 *     anything is allocated for it, and a line that has not ended within KVSC_MAX_LINE bytes is
 *     an error rather than a reason to buffer more;
 *   - "$-1" and "*-1" are nil; any other negative length is an error, as is an unknown type
 *     byte, a CR not followed by LF, and a bulk body not followed by CRLF;
 *   - the tree is always consistent enough to free: arrays are attached to their parent when
 *     they are opened (unfilled slots are NULL), and the one bulk still arriving is held apart.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "util/net.h"
#include "util/num.h"

/* ---- errors ---- */

const char *kvsc_strerror(int err)
{
    switch (err) {
    case KVSC_OK: return "success";
    case KVSC_ENOTFOUND: return "key not found";
    case KVSC_EINVAL: return "invalid argument";
    case KVSC_ENOMEM: return "out of memory";
    case KVSC_EIO: return "I/O error";
    case KVSC_ETIMEDOUT: return "timed out";
    case KVSC_ECONNREFUSED: return "connection refused";
    case KVSC_EADDR: return "bad address";
    case KVSC_EPROTO: return "protocol error";
    case KVSC_ESERVER: return "server error";
    case KVSC_ECLOSED: return "connection closed";
    case KVSC_ECANCELED: return "canceled";
    case KVSC_ESTATE: return "invalid in this state";
    default: return "unknown error";
    }
}

int kvsc__errno(int e)
{
    switch (e) {
    case ENOMEM: return KVSC_ENOMEM;
    case ETIMEDOUT: return KVSC_ETIMEDOUT;
    case ECONNREFUSED: return KVSC_ECONNREFUSED;
    case EPIPE: case ECONNRESET: return KVSC_ECLOSED;
    case ECANCELED: return KVSC_ECANCELED;
    default: return KVSC_EIO;
    }
}

char *kvsc__tls_err(void)
{
    static _Thread_local char buf[KVSC_ERRLEN];
    return buf;
}

void kvsc_free(void *p)
{
    free(p);
}

/* ---- byte buffer ---- */

int kvsc__buf_reserve(kvsc_buf *b, size_t extra)
{
    size_t live = b->len - b->pos, cap;
    char *p;

    if (b->cap - b->len >= extra)
        return 0;
    if (b->pos > 0 && b->cap - live >= extra) {
        memmove(b->data, b->data + b->pos, live);
        b->pos = 0;
        b->len = live;
        return 0;
    }
    if (extra > SIZE_MAX / 2 - live)
        return KVSC_ENOMEM;
    cap = b->cap ? b->cap : 4096;
    while (cap - live < extra)
        cap *= 2;
    /* Move the live bytes into a fresh block rather than realloc-then-memmove. */
    if ((p = malloc(cap)) == NULL)
        return KVSC_ENOMEM;
    if (live)
        memcpy(p, b->data + b->pos, live);
    free(b->data);
    b->data = p;
    b->pos = 0;
    b->len = live;
    b->cap = cap;
    return 0;
}

void kvsc__buf_reset(kvsc_buf *b, size_t keep)
{
    b->pos = b->len = 0;
    if (b->cap > keep) {
        free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
}

void kvsc__buf_free(kvsc_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->pos = b->len = b->cap = 0;
}

/* ---- request encoder ---- */

/* Decimal digits of v. */
static size_t digits(size_t v)
{
    size_t n = 1;

    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

int kvsc__encode(kvsc_buf *b, int argc, const char **argv, const size_t *lens)
{
    size_t total, n;
    char *w;
    int rc;

    if (argc < 1 || argv == NULL)
        return KVSC_EINVAL;
    total = 1 + digits((size_t)argc) + 2;
    for (int i = 0; i < argc; i++) {
        n = lens ? lens[i] : argv[i] ? strlen(argv[i]) : 0;
        if (argv[i] == NULL && n > 0)
            return KVSC_EINVAL;
        if (n > SIZE_MAX / 4 || total > SIZE_MAX / 4)
            return KVSC_EINVAL;
        total += 1 + digits(n) + 2 + n + 2;
    }
    if ((rc = kvsc__buf_reserve(b, total)) < 0)
        return rc;
    w = b->data + b->len;
    w += sprintf(w, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++) {
        n = lens ? lens[i] : argv[i] ? strlen(argv[i]) : 0;
        w += sprintf(w, "$%zu\r\n", n);
        if (n)
            memcpy(w, argv[i], n);
        w += n;
        *w++ = '\r';
        *w++ = '\n';
    }
    b->len = (size_t)(w - b->data);
    return 0;
}

/* ---- reply tree ---- */

void kvsc_reply_free(kvsc_reply *r)
{
    if (r == NULL)
        return;
    if (r->type == KVSC_REPLY_ARRAY && r->elem) {
        /* Depth is at most KVSC_MAX_DEPTH: recursion is bounded. */
        for (size_t i = 0; i < r->len; i++)
            kvsc_reply_free(r->elem[i]);
        free(r->elem);
    }
    free(r->str);
    free(r);
}

/* A new reply of type t whose str holds a copy of s[0, n) and a NUL (s NULL: n bytes to be
 * filled in by the caller). NULL if out of memory. */
static kvsc_reply *reply_new(kvsc_reply_type t, const char *s, size_t n)
{
    kvsc_reply *r = calloc(1, sizeof *r);

    if (r == NULL)
        return NULL;
    r->type = t;
    if (t == KVSC_REPLY_STATUS || t == KVSC_REPLY_ERROR || t == KVSC_REPLY_BULK) {
        if ((r->str = malloc(n + 1)) == NULL) {
            free(r);
            return NULL;
        }
        if (s)
            memcpy(r->str, s, n);
        r->str[n] = '\0';
        r->len = n;
    }
    return r;
}

/* ---- reply parser ---- */

void kvsc__parser_init(kvsc_parser *p)
{
    memset(p, 0, sizeof *p);
}

void kvsc__parser_reset(kvsc_parser *p)
{
    kvsc_reply_free(p->root);
    kvsc_reply_free(p->bulk);
    p->root = p->bulk = NULL;
    p->depth = 0;
    p->bulk_got = 0;
}

int kvsc__parser_busy(const kvsc_parser *p)
{
    return p->root != NULL || p->bulk != NULL;
}

static int perr(kvsc_parser *p, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int perr(kvsc_parser *p, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(p->err, sizeof p->err, fmt, ap);
    va_end(ap);
    return code;
}

/* Put r where the tree expects its next value. If open, r is a non-empty array that now takes
 * the values that follow. Returns 1 when that completes the root. */
static int attach(kvsc_parser *p, kvsc_reply *r, int open)
{
    if (p->depth == 0) {
        p->root = r;
    } else {
        kvsc_frame *f = &p->stack[p->depth - 1];
        f->arr->elem[f->next++] = r;
    }
    if (open) {
        p->stack[p->depth].arr = r;
        p->stack[p->depth].next = 0;
        p->depth++;
        return 0;
    }
    while (p->depth > 0 && p->stack[p->depth - 1].next == p->stack[p->depth - 1].arr->len)
        p->depth--;
    return p->depth == 0;
}

/* Consume what is available of the bulk body and its CRLF. Returns 1 when the bulk is whole
 * (and attached), 0 if the bytes ran out, or an error. */
static int feed_bulk(kvsc_parser *p, const char *buf, size_t len, size_t *pos, int *done)
{
    kvsc_reply *r = p->bulk;
    size_t want = r->len + 2 - p->bulk_got, n = len - *pos < want ? len - *pos : want;
    size_t body = p->bulk_got < r->len ? r->len - p->bulk_got : 0, c = n < body ? n : body;

    memcpy(r->str + p->bulk_got, buf + *pos, c);
    for (size_t i = c; i < n; i++) {
        char expect = p->bulk_got + i == r->len ? '\r' : '\n';
        if (buf[*pos + i] != expect)
            return perr(p, KVSC_EPROTO, "bulk string of %zu bytes not followed by CRLF", r->len);
    }
    p->bulk_got += n;
    *pos += n;
    if (p->bulk_got < r->len + 2)
        return 0;
    r->str[r->len] = '\0';
    p->bulk = NULL;
    p->bulk_got = 0;
    *done = attach(p, r, 0);
    return 1;
}

/* Handle one complete line (type byte t, text s[0, n)). Sets *done if it completed the root. */
static int feed_line(kvsc_parser *p, char t, const char *s, size_t n, int *done)
{
    kvsc_reply *r = NULL;
    int64_t v;

    switch (t) {
    case '+':
    case '-':
        if ((r = reply_new(t == '+' ? KVSC_REPLY_STATUS : KVSC_REPLY_ERROR, s, n)) == NULL)
            return perr(p, KVSC_ENOMEM, "out of memory for a %zu-byte reply", n);
        break;
    case ':':
        if (!num_parse_i64(s, n, NUM_I64_DIGITS, &v))
            return perr(p, KVSC_EPROTO, "bad integer reply ':%.*s'", (int)(n < 32 ? n : 32), s);
        if ((r = reply_new(KVSC_REPLY_INTEGER, NULL, 0)) == NULL)
            return perr(p, KVSC_ENOMEM, "out of memory");
        r->integer = v;
        break;
    case '$':
        if (!num_parse_i64(s, n, NUM_I64_DIGITS, &v) || v < -1 || v > (int64_t)KVSC_MAX_BULK)
            return perr(p, KVSC_EPROTO, "bad bulk length '$%.*s' (limit %u)",
                        (int)(n < 32 ? n : 32), s, KVSC_MAX_BULK);
        if (v == -1)
            break;
        if ((p->bulk = reply_new(KVSC_REPLY_BULK, NULL, (size_t)v)) == NULL)
            return perr(p, KVSC_ENOMEM, "out of memory for a %" PRId64 "-byte bulk string", v);
        p->bulk_got = 0;
        return 0;
    case '*':
        if (!num_parse_i64(s, n, NUM_I64_DIGITS, &v) || v < -1 || v > (int64_t)KVSC_MAX_ELEMENTS)
            return perr(p, KVSC_EPROTO, "bad array length '*%.*s' (limit %u)",
                        (int)(n < 32 ? n : 32), s, KVSC_MAX_ELEMENTS);
        if (v == -1)
            break;
        if (p->depth == KVSC_MAX_DEPTH)
            return perr(p, KVSC_EPROTO, "arrays nested deeper than %d", KVSC_MAX_DEPTH);
        if ((r = reply_new(KVSC_REPLY_ARRAY, NULL, 0)) == NULL ||
            (v > 0 && (r->elem = calloc((size_t)v, sizeof *r->elem)) == NULL)) {
            free(r);
            return perr(p, KVSC_ENOMEM, "out of memory for an array of %" PRId64, v);
        }
        r->len = (size_t)v;
        *done = attach(p, r, v > 0);
        return 0;
    default:
        return perr(p, KVSC_EPROTO, "unknown reply type byte 0x%02x",
                    (unsigned)(unsigned char)t);
    }
    if (r == NULL && (r = reply_new(KVSC_REPLY_NIL, NULL, 0)) == NULL)
        return perr(p, KVSC_ENOMEM, "out of memory");
    *done = attach(p, r, 0);
    return 0;
}

int kvsc__parse(kvsc_parser *p, const char *buf, size_t len, size_t *used, kvsc_reply **out)
{
    size_t pos = 0;
    int done = 0, rc = 0;

    *out = NULL;
    while (!done) {
        if (p->bulk) {
            if ((rc = feed_bulk(p, buf, len, &pos, &done)) <= 0)
                break;
            continue;
        }
        if (pos == len)
            break;
        /* A line is the type byte, at most KVSC_MAX_LINE bytes of text, then CRLF. */
        size_t avail = len - pos, scan = avail < KVSC_MAX_LINE + 2 ? avail : KVSC_MAX_LINE + 2;
        const char *cr = memchr(buf + pos, '\r', scan);
        if (cr == NULL) {
            if (avail > KVSC_MAX_LINE + 1)
                rc = perr(p, KVSC_EPROTO, "reply line longer than %u bytes", KVSC_MAX_LINE);
            break;
        }
        if ((size_t)(cr - buf) + 1 == len)
            break;  /* the LF has not arrived */
        if (cr[1] != '\n') {
            rc = perr(p, KVSC_EPROTO, "CR not followed by LF in a reply line");
            break;
        }
        const char *line = buf + pos;
        if (cr == line) {
            rc = perr(p, KVSC_EPROTO, "empty reply line");
            break;
        }
        pos = (size_t)(cr - buf) + 2;
        if ((rc = feed_line(p, line[0], line + 1, (size_t)(cr - line) - 1, &done)) < 0)
            break;
    }
    *used = pos;
    if (rc < 0)
        return rc;
    if (!done)
        return 0;
    *out = p->root;
    p->root = NULL;
    return 1;
}

/* ---- addresses ---- */

int kvsc__parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *sslen, char *err,
                     size_t errlen)
{
    const char *why;

    if (net_parse_addr(addr, false, ss, sslen, &why) < 0) {
        snprintf(err, errlen, "'%s': %s (want IPv4:PORT or [IPv6]:PORT)", addr ? addr : "(null)",
                 why);
        return KVSC_EADDR;
    }
    return 0;
}
