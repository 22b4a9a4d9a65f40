/*
 * resp.h — RESP2, the Redis protocol: an incremental request parser and reply encoders.
 *
 * Requests come as multibulk arrays ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n") or inline lines
 * ("GET k\r\n", with Redis's quoting rules), pipelined back to back: as in Redis, a request is
 * a multibulk if its first byte is '*' and an inline line otherwise (so "$3" is a command name). The parser is resumable:
 * it is handed the unconsumed bytes of a connection (which begin at the current command), parses
 * as far as they go, remembers where it stopped, and on the next call — with more bytes appended
 * — goes on from there. It never copies a bulk argument: arguments are offsets into the caller's
 * buffer (inline arguments, which quoting may rewrite, live in the parser's own arena, which the
 * next inline request overwrites: a caller that keeps arguments past the next resp_parse call
 * copies the inline ones).
 *
 * Every length a client sends is bounded (resp_limits): bulk length, element count, inline
 * line, and the length of the count lines themselves. Anything malformed ends in RESP_EPROTO
 * with a Redis-shaped message; the connection replies "-ERR Protocol error: ..." and closes, as
 * Redis does, because the stream can no longer be trusted to be in step.
 */
#ifndef KVS_SERVER_RESP_H
#define KVS_SERVER_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct resp_limits {
    uint64_t max_bulk;       /* largest bulk argument (default 512 MiB) */
    uint64_t max_multibulk;  /* most elements in one request (default 1M) */
    uint64_t max_inline;     /* longest inline request and count line (default 64 KiB) */
    /* Before AUTH (resp_parser.unauth), as Redis: a client that has not proved who it is may
     * not make the server wait for, and hold, large requests (CVE-2021-32675). */
    uint64_t unauth_multibulk; /* most elements (default 10) */
    uint64_t unauth_bulk;      /* largest bulk (default 16 KiB) */
} resp_limits;

void resp_limits_default(resp_limits *l);

enum { RESP_AGAIN = 0, RESP_DONE = 1, RESP_EPROTO = -1 };

typedef struct resp_arg {
    size_t off;  /* in the caller's buffer, or in the inline arena */
    size_t len;
} resp_arg;

typedef struct resp_parser {
    const resp_limits *lim;
    int kind;            /* 0: between commands, '*': multibulk, 'i': inline */
    int last_kind;       /* kind of the command last returned (where its arguments live) */
    size_t pos;          /* next byte to examine, from the start of the command */
    int64_t left;        /* multibulk elements still to read */
    int64_t bulk;        /* length of the bulk being read, -1 if its header comes next */
    size_t argc, cap;
    resp_arg *argv;
    char *arena;         /* unquoted inline arguments */
    size_t arena_cap;
    size_t need;         /* bytes the command needs in all, when known (buffer sizing) */
    bool unauth;         /* the client has not authenticated: the unauth_* limits apply */
    char err[128];
} resp_parser;

void resp_parser_init(resp_parser *p, const resp_limits *lim);
void resp_parser_free(resp_parser *p);

/* Parse the command at the start of buf[0..len). RESP_DONE: a whole command of *used bytes;
 * read its arguments with resp_arg_ptr, then drop those bytes from the buffer before the next
 * call (argc may be 0: an empty line or an empty array, to be skipped). RESP_AGAIN: more bytes
 * are needed (p->need, if non-zero, says how many in all). RESP_EPROTO: p->err says why. */
int resp_parse(resp_parser *p, const char *buf, size_t len, size_t *used);

/* Split one line (n bytes, no line end) into arguments with the inline rules — Redis's
 * sdssplitargs, which redis.conf is read with too: RESP_DONE, or RESP_EPROTO (unbalanced quotes)
 * with p->err set. The arguments are read with resp_arg_ptr(p, NULL, i) until the next call. */
int resp_split_line(resp_parser *p, const char *s, size_t n);

/* Pointer to argument i of the command just parsed from buf. */
const char *resp_arg_ptr(const resp_parser *p, const char *buf, size_t i);

#endif
