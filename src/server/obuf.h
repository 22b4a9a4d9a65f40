/*
 * obuf.h — a connection's output: a queue of chunks holding encoded replies, in order.
 *
 * Replies are copied into the tail chunk (16 KiB each, or one of a large value's size); a buffer
 * the caller already owns can be handed over instead (obuf_add_owned). The connection
 * hands the chunks to one writev (uv_write) at a time and drops them as they are written, so the
 * memory a client holds is what it has not read yet — which the connection bounds.
 */
#ifndef KVS_SERVER_OBUF_H
#define KVS_SERVER_OBUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct ochunk {
    struct ochunk *next;
    char *data;
    size_t len, cap; /* cap 0: data is an owned external buffer, freed with free() */
    char inline_data[];
} ochunk;

typedef struct obuf {
    ochunk *head, *tail;
    size_t bytes;   /* bytes queued */
    size_t replies; /* replies queued since the last obuf_take */
    uint64_t *errors; /* NULL, or where error replies are counted (INFO; one writing thread) */
} obuf;

void obuf_init(obuf *b);
void obuf_free(obuf *b);
/* Append bytes (copied). 0 or -1 on out of memory. */
int obuf_add(obuf *b, const void *p, size_t n);
/* Append a buffer of n bytes from malloc that the obuf now owns (freed even on failure). */
int obuf_add_owned(obuf *b, void *p, size_t n);
/* Detach every queued chunk (for writing); the obuf is empty afterwards. */
ochunk *obuf_take(obuf *b);
/* Chunks taken and written: kept as b's empty tail when it is one ordinary chunk and b is empty,
 * freed otherwise. */
void obuf_recycle(obuf *b, ochunk *c);
void ochunks_free(ochunk *c);

/* RESP2 encoders. */
int resp_ok(obuf *b);
int resp_status(obuf *b, const char *s);
int resp_error(obuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int resp_int(obuf *b, long long v);
int resp_bulk(obuf *b, const void *p, size_t n);
int resp_nil(obuf *b);
int resp_array(obuf *b, long long n);

#endif
