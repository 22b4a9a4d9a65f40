/*
 * fuzz_resp.c — the RESP2 request parser (src/server/resp.c) against what resp.h promises.
 *
 * Input: one configuration byte, four bytes of seed, then the bytes a client sends.
 *   cfg bit 0     small limits (so the fuzzer reaches every "too big" edge with short inputs)
 *   cfg bit 1     the client has not authenticated (the unauth_* limits apply)
 *   cfg bits 2-3  how the stream is cut into reads: 1 byte each, up to 8, up to 64, or anywhere
 *
 * The stream is parsed twice: whole (one buffer, each command handed to the parser as the rest
 * of it), and in the pieces the seed decides, fed the way conn.c feeds a connection's reads
 * (unparsed bytes kept at the front of the buffer, the parser resumed when more arrive). Each
 * buffer handed to resp_parse is a heap block of exactly its length, so a read past the bytes
 * the parser was given is an ASan report. Both runs must produce the same commands, consume the
 * same bytes and end the same way (waiting for more, or the same protocol error). After every
 * result the invariants of resp.h are checked: a finished command used between 1 and len bytes,
 * its arguments lie inside what it used (multibulk: each followed by CRLF, in order, within the
 * limits) or inside the inline arena, argc within the limits; a RESP_AGAIN consumed nothing,
 * and a need it announces is never more than the command turns out to hold. Every command is
 * also encoded again as a multibulk with the reply encoders (obuf.c) and parsed back: the same
 * arguments.
 */
#include <string.h>

#include "fuzzutil.h"
#include "server/obuf.h"
#include "server/resp.h"

typedef fz_bytes trace;

static void tr_u64(trace *t, uint64_t v)
{
    fz_bytes_add(t, &v, sizeof v);
}

static void small_limits(resp_limits *l)
{
    l->max_bulk = 40;
    l->max_multibulk = 6;
    l->max_inline = 40;
    l->unauth_multibulk = 3;
    l->unauth_bulk = 8;
}

/* Encode the command just parsed as a multibulk with the reply encoders, parse it back. */
static void roundtrip(const resp_parser *p, const char *buf)
{
    resp_limits lim;
    resp_parser q;
    obuf o;
    size_t n = 0, used = 0;

    obuf_init(&o);
    FZ_CHECK(resp_array(&o, (long long)p->argc) == 0, "resp_array failed");
    for (size_t i = 0; i < p->argc; i++)
        FZ_CHECK(resp_bulk(&o, resp_arg_ptr(p, buf, i), p->argv[i].len) == 0, "resp_bulk failed");
    size_t total = o.bytes;
    char *flat = malloc(total);
    FZ_CHECK(flat, "out of memory");
    ochunk *chunks = obuf_take(&o);
    for (ochunk *c = chunks; c; c = c->next) {
        FZ_CHECK(n + c->len <= total, "obuf chunks hold more than obuf.bytes said");
        memcpy(flat + n, c->data, c->len);
        n += c->len;
    }
    FZ_CHECK(n == total, "obuf chunks hold %zu bytes, obuf.bytes said %zu", n, total);
    ochunks_free(chunks);
    obuf_free(&o);

    resp_limits_default(&lim);
    resp_parser_init(&q, &lim);
    int r = resp_parse(&q, flat, total, &used);
    FZ_CHECK(r == RESP_DONE && used == total, "re-encoded command: result %d, used %zu of %zu (%s)",
             r, used, total, q.err);
    FZ_CHECK(q.argc == p->argc, "re-encoded command has %zu arguments, not %zu", q.argc, p->argc);
    for (size_t i = 0; i < p->argc; i++)
        FZ_CHECK(q.argv[i].len == p->argv[i].len &&
                     memcmp(resp_arg_ptr(&q, flat, i), resp_arg_ptr(p, buf, i), q.argv[i].len) == 0,
                 "re-encoded argument %zu differs", i);
    resp_parser_free(&q);
    free(flat);
}

/* What resp.h promises of one resp_parse(p, buf, len) that returned r; a finished command goes
 * into the trace. */
static void check_result(const resp_parser *p, const resp_limits *lim, int r, const char *buf,
                         size_t len, size_t used, size_t *need_max, trace *t)
{
    FZ_CHECK(r == RESP_AGAIN || r == RESP_DONE || r == RESP_EPROTO, "resp_parse returned %d", r);
    if (r == RESP_AGAIN) {
        FZ_CHECK(used == 0, "RESP_AGAIN with used %zu", used);
        /* resp.h: need, if non-zero, is how many bytes the command needs in all, more than
         * it was given (regressions/fuzz_resp/stale-need: it once kept the previous bulk's end
         * while a "$len" line was incomplete), never more than the command turns out to hold. */
        FZ_CHECK(p->need == 0 || p->need > len, "RESP_AGAIN needing %zu bytes with %zu there",
                 p->need, len);
        if (p->need > len && p->need > *need_max)
            *need_max = p->need;
        return;
    }
    if (r == RESP_EPROTO) {
        FZ_CHECK(used == 0, "RESP_EPROTO with used %zu", used);
        *need_max = 0;
        FZ_CHECK(memchr(p->err, '\0', sizeof p->err) && p->err[0], "RESP_EPROTO without a message");
        return;
    }
    FZ_CHECK(used >= 1 && used <= len, "RESP_DONE used %zu of %zu bytes", used, len);
    FZ_CHECK(*need_max <= used, "the parser asked for %zu bytes of a command of %zu", *need_max,
             used);
    *need_max = 0;
    FZ_CHECK(p->argc <= p->cap, "argc %zu past its array's %zu", p->argc, p->cap);
    if (p->last_kind == '*') {
        size_t end = 0;
        FZ_CHECK(buf[0] == '*', "a multibulk that does not start with '*'");
        FZ_CHECK(p->argc <= lim->max_multibulk && (!p->unauth || p->argc <= lim->unauth_multibulk),
                 "%zu arguments past the limits", p->argc);
        for (size_t i = 0; i < p->argc; i++) {
            const resp_arg *a = &p->argv[i];
            FZ_CHECK(a->off > end && a->off + a->len + 2 <= used,
                     "argument %zu at %zu+%zu: outside the command's %zu bytes or out of order",
                     i, a->off, a->len, used);
            FZ_CHECK(buf[a->off - 1] == '\n' && buf[a->off + a->len] == '\r' &&
                         buf[a->off + a->len + 1] == '\n',
                     "argument %zu is not framed by CRLF", i);
            FZ_CHECK(a->len <= lim->max_bulk && (!p->unauth || a->len <= lim->unauth_bulk),
                     "argument %zu of %zu bytes past the limits", i, a->len);
            end = a->off + a->len + 2;
        }
        FZ_CHECK(p->argc == 0 || end == used, "the last argument ends at %zu, the command at %zu",
                 end, used);
    } else {
        size_t end = 0;
        FZ_CHECK(p->last_kind == 'i', "last_kind %d", p->last_kind);
        FZ_CHECK(buf[0] != '*', "an inline command that starts with '*'");
        FZ_CHECK(buf[used - 1] == '\n' && memchr(buf, '\n', used) == buf + used - 1,
                 "an inline command that does not end at its first LF");
        FZ_CHECK(used - 1 <= lim->max_inline, "an inline line of %zu bytes", used - 1);
        for (size_t i = 0; i < p->argc; i++) {
            const resp_arg *a = &p->argv[i];
            FZ_CHECK(a->off >= end && a->off + a->len <= p->arena_cap && a->off + a->len < used,
                     "inline argument %zu at %zu+%zu outside the arena (%zu) or the line (%zu)",
                     i, a->off, a->len, p->arena_cap, used);
            end = a->off + a->len;
        }
    }
    fz_bytes_add(t, "D", 1);
    tr_u64(t, used);
    tr_u64(t, p->argc);
    for (size_t i = 0; i < p->argc; i++) {
        tr_u64(t, p->argv[i].len);
        fz_bytes_add(t, resp_arg_ptr(p, buf, i), p->argv[i].len);
    }
    roundtrip(p, buf);
}

static void trace_end(trace *t, int r, size_t consumed, const resp_parser *p)
{
    fz_bytes_add(t, r == RESP_EPROTO ? "E" : "A", 1);
    tr_u64(t, consumed);
    if (r == RESP_EPROTO)
        fz_bytes_add(t, p->err, strlen(p->err));
}

/* A heap copy of exactly n bytes, so that ASan sees a read past them. */
static char *exact_copy(const uint8_t *s, size_t n)
{
    char *b = malloc(n ? n : 1);
    FZ_CHECK(b, "out of memory");
    memcpy(b, s, n);
    return b;
}

static void parse_whole(const uint8_t *s, size_t n, const resp_limits *lim, bool unauth,
                        trace *t)
{
    resp_parser p;
    size_t off = 0, used, need_max = 0;
    int r = RESP_AGAIN;
    char *buf = exact_copy(s, n);

    resp_parser_init(&p, lim);
    p.unauth = unauth;
    while (off < n) {
        r = resp_parse(&p, buf + off, n - off, &used);
        check_result(&p, lim, r, buf + off, n - off, used, &need_max, t);
        if (r != RESP_DONE)
            break;
        off += used;
        r = RESP_AGAIN;
    }
    trace_end(t, r, off, &p);
    resp_parser_free(&p);
    free(buf);
}

static size_t piece(fz_rng *g, int mode, size_t left)
{
    size_t k = mode == 0 ? 1 : mode == 1 ? 1 + fz_rng_next(g) % 8
             : mode == 2 ? 1 + fz_rng_next(g) % 64 : 1 + fz_rng_next(g) % left;
    return k < left ? k : left;
}

static void parse_chunked(const uint8_t *s, size_t n, const resp_limits *lim, bool unauth,
                          int mode, uint32_t seed, trace *t)
{
    resp_parser p;
    fz_rng g;
    char *q = NULL;
    size_t qlen = 0, qpos = 0, pos = 0, consumed = 0, used, need_max = 0;
    int r = RESP_AGAIN;

    fz_rng_seed(&g, seed);
    resp_parser_init(&p, lim);
    p.unauth = unauth;
    while (pos < n && r != RESP_EPROTO) {
        size_t k = piece(&g, mode, n - pos);
        char *b = realloc(q, qlen + k);
        FZ_CHECK(b, "out of memory");
        q = b;
        memcpy(q + qlen, s + pos, k);
        qlen += k;
        pos += k;
        while (qpos < qlen) {
            r = resp_parse(&p, q + qpos, qlen - qpos, &used);
            check_result(&p, lim, r, q + qpos, qlen - qpos, used, &need_max, t);
            if (r != RESP_DONE)
                break;
            qpos += used;
            consumed += used;
            r = RESP_AGAIN;
        }
        /* drop what was parsed, leaving the block exactly as long as what remains */
        memmove(q, q + qpos, qlen - qpos);
        qlen -= qpos;
        qpos = 0;
        if (qlen == 0) {
            free(q);
            q = NULL;
        } else if ((b = realloc(q, qlen)) != NULL) {
            q = b;
        }
    }
    trace_end(t, r, consumed, &p);
    resp_parser_free(&p);
    free(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    uint8_t cfg = fz_u8(&in);
    uint32_t seed = fz_u32(&in);
    resp_limits lim;
    trace whole = {0}, chunked = {0};

    resp_limits_default(&lim);
    if (cfg & 1)
        small_limits(&lim);
    parse_whole(in.p, in.n, &lim, cfg & 2, &whole);
    parse_chunked(in.p, in.n, &lim, cfg & 2, (cfg >> 2) & 3, seed, &chunked);
    if (whole.len != chunked.len || memcmp(whole.b, chunked.b, whole.len) != 0) {
        fz_dump("stream", in.p, in.n, 512);
        fz_dump("parsed whole", whole.b, whole.len, 512);
        fz_dump("parsed in pieces", chunked.b, chunked.len, 512);
        FZ_CHECK(0, "the stream parses differently whole and in pieces (cut mode %d)",
                 (cfg >> 2) & 3);
    }
    free(whole.b);
    free(chunked.b);
    return 0;
}
