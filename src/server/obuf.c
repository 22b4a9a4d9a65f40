/*
 * obuf.c — output chunks and RESP2 reply encoding (see obuf.h).
 */
#include "server/obuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/num.h"

#define CHUNK 16384

void obuf_init(obuf *b)
{
    memset(b, 0, sizeof *b);
}

void ochunks_free(ochunk *c)
{
    while (c) {
        ochunk *next = c->next;
        if (c->cap == 0)
            free(c->data);
        free(c);
        c = next;
    }
}

void obuf_free(obuf *b)
{
    ochunks_free(b->head);
    obuf_init(b);
}

static void link_chunk(obuf *b, ochunk *c)
{
    c->next = NULL;
    if (b->tail)
        b->tail->next = c;
    else
        b->head = c;
    b->tail = c;
}

int obuf_add(obuf *b, const void *p, size_t n)
{
    const char *s = p;

    b->bytes += n;
    while (n > 0) {
        ochunk *t = b->tail;
        if (!t || t->cap == 0 || t->len == t->cap) {
            size_t cap = n > CHUNK ? n : CHUNK;
            t = malloc(sizeof *t + cap);
            if (!t)
                return -1;
            t->data = t->inline_data;
            t->len = 0;
            t->cap = cap;
            link_chunk(b, t);
        }
        size_t k = t->cap - t->len < n ? t->cap - t->len : n;
        memcpy(t->data + t->len, s, k);
        t->len += k;
        s += k;
        n -= k;
    }
    return 0;
}

int obuf_add_owned(obuf *b, void *p, size_t n)
{
    ochunk *c = malloc(sizeof *c);

    if (!c) {
        free(p);
        return -1;
    }
    c->data = p;
    c->len = n;
    c->cap = 0;
    link_chunk(b, c);
    b->bytes += n;
    return 0;
}

void obuf_recycle(obuf *b, ochunk *c)
{
    /* the one chunk of a short reply, written: the next replies go into it (no malloc/free of
     * a 16 KiB chunk per request) */
    if (c && !c->next && c->cap == CHUNK && !b->head) {
        c->len = 0;
        link_chunk(b, c);
        return;
    }
    ochunks_free(c);
}

ochunk *obuf_take(obuf *b)
{
    ochunk *c = b->head;
    uint64_t *errors = b->errors; /* the obuf's, not its contents' */

    obuf_init(b);
    b->errors = errors;
    return c;
}

static int add_line(obuf *b, char type, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int add_line(obuf *b, char type, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n;

    line[0] = type;
    va_start(ap, fmt);
    n = vsnprintf(line + 1, sizeof line - 3, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n > sizeof line - 4)
        n = (int)sizeof line - 4;
    /* replies are one line: a CR or LF inside (an echoed argument) would split it */
    for (int i = 1; i <= n; i++)
        if (line[i] == '\r' || line[i] == '\n')
            line[i] = ' ';
    line[n + 1] = '\r';
    line[n + 2] = '\n';
    return obuf_add(b, line, (size_t)n + 3);
}

int resp_ok(obuf *b)
{
    b->replies++;
    return obuf_add(b, "+OK\r\n", 5);
}

int resp_status(obuf *b, const char *s)
{
    b->replies++;
    return add_line(b, '+', "%s", s);
}

int resp_error(obuf *b, const char *fmt, ...)
{
    char msg[480];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    b->replies++;
    if (b->errors)
        __atomic_store_n(b->errors, *b->errors + 1, __ATOMIC_RELAXED);
    return add_line(b, '-', "%s", msg);
}

/* A reply line of a type byte and a number: ":42\r\n", "*3\r\n", "$5\r\n". */
static int num_line(obuf *b, char type, long long v)
{
    char line[1 + NUM_I64_TEXT + 2];
    size_t n = 1;

    line[0] = type;
    n += num_fmt_i64(line + 1, v);
    line[n++] = '\r';
    line[n++] = '\n';
    b->replies++;
    return obuf_add(b, line, n);
}

int resp_int(obuf *b, long long v)
{
    return num_line(b, ':', v);
}

int resp_nil(obuf *b)
{
    b->replies++;
    return obuf_add(b, "$-1\r\n", 5);
}

int resp_array(obuf *b, long long n)
{
    return num_line(b, '*', n);
}

#define BULK_ONE_COPY 512 /* a bulk reply up to this long is put together first, added once */

int resp_bulk(obuf *b, const void *p, size_t n)
{
    if (n <= BULK_ONE_COPY) {
        char r[1 + NUM_I64_TEXT + 2 + BULK_ONE_COPY + 2];
        size_t k = 1;
        r[0] = '$';
        k += num_fmt_i64(r + 1, (int64_t)n);
        r[k++] = '\r';
        r[k++] = '\n';
        if (n) /* p may be NULL for an empty value */
            memcpy(r + k, p, n);
        k += n;
        r[k++] = '\r';
        r[k++] = '\n';
        b->replies++;
        return obuf_add(b, r, k);
    }
    if (num_line(b, '$', (long long)n) < 0 || obuf_add(b, p, n) < 0)
        return -1;
    return obuf_add(b, "\r\n", 2);
}
