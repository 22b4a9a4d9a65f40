/*
 * internal.h — what the three files of libkvsclient share and nothing outside them sees:
 *
 *   reply.c   the RESP2 reply parser, the request encoder, the byte buffer, address parsing and
 *             the mapping of errno values to KVSC_E* codes;
 *   client.c  the blocking and pipelined connection (poll() for timeouts);
 *   async.c   the asynchronous connection on libuv.
 *
 * The reply parser is resumable: it is fed whatever bytes have arrived, consumes as many as it
 * can and keeps its place — a partly built tree, a stack of the arrays being filled, a bulk
 * string being copied — so a reply can arrive in any number of pieces and no byte is examined
 * twice except within one unfinished line. A bulk body is copied straight into the reply as it
 * arrives, so the input buffer only ever holds an unfinished line (≤ KVSC_MAX_LINE + 2 bytes)
 * plus one read's worth, however large the values are.
 */
#ifndef KVS_CLIENT_INTERNAL_H
#define KVS_CLIENT_INTERNAL_H

#include <stddef.h>
#include <sys/socket.h>

#include "kvs/client.h"

#define KVSC_ERRLEN 512
#define KVSC_READ_CHUNK (64u << 10)  /* room made in the input buffer for each read */
#define KVSC_OUT_KEEP   (1u << 20)   /* an output buffer grown past this is given back when empty */

/* ---- byte buffer: bytes [pos, len) of data[0, cap) are live ---- */

typedef struct kvsc_buf {
    char *data;
    size_t pos, len, cap;
} kvsc_buf;

/* Make room for at least `extra` more bytes after len, moving the live bytes to the front first
 * if that is enough. KVSC_ENOMEM on failure (the buffer is unchanged). */
int kvsc__buf_reserve(kvsc_buf *b, size_t extra);
/* Forget the content; give the memory back if the buffer grew past `keep` bytes. */
void kvsc__buf_reset(kvsc_buf *b, size_t keep);
void kvsc__buf_free(kvsc_buf *b);

/* Append the RESP2 encoding of a command to b. KVSC_EINVAL for argc < 1, a NULL argv or a
 * NULL argument with a non-zero length; KVSC_ENOMEM. On failure b is unchanged. */
int kvsc__encode(kvsc_buf *b, int argc, const char **argv, const size_t *lens);

/* ---- reply parser ---- */

typedef struct kvsc_frame {
    kvsc_reply *arr;  /* an array being filled */
    size_t next;      /* index of its next element */
} kvsc_frame;

typedef struct kvsc_parser {
    kvsc_reply *root;                    /* the tree being built (NULL between replies) */
    kvsc_frame stack[KVSC_MAX_DEPTH];    /* open arrays, outermost first */
    int depth;
    kvsc_reply *bulk;                    /* bulk whose body is arriving, not yet in the tree */
    size_t bulk_got;                     /* bytes of its body and CRLF consumed so far */
    char err[KVSC_ERRLEN];               /* why the last feed failed */
} kvsc_parser;

void kvsc__parser_init(kvsc_parser *p);
/* Drop a partly parsed reply; the parser is then between replies. */
void kvsc__parser_reset(kvsc_parser *p);
/* Is the parser in the middle of a reply? */
int kvsc__parser_busy(const kvsc_parser *p);

/* Feed buf[0, len). Sets *used to the bytes consumed (the caller drops them before the next
 * feed; unconsumed bytes are an unfinished line and must be fed again, with more after them).
 * Returns 1 with *out the complete reply (the caller owns it), 0 if more bytes are needed, or
 * KVSC_EPROTO / KVSC_ENOMEM with p->err set; after a failure the parser must be reset. */
int kvsc__parse(kvsc_parser *p, const char *buf, size_t len, size_t *used, kvsc_reply **out);

/* ---- addresses and errors ---- */

/* Parse "IPv4:PORT" or "[IPv6]:PORT" into *ss / *sslen. KVSC_EADDR with err set if malformed. */
int kvsc__parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *sslen, char *err,
                     size_t errlen);

/* Map an errno value to a KVSC_E* code. */
int kvsc__errno(int e);

/* Where kvsc_last_error(NULL) reads: the calling thread's last connect failure. */
char *kvsc__tls_err(void);

#endif
