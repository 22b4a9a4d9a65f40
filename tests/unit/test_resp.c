/*
 * test_resp.c — the RESP2 request parser, without a network.
 *
 *   - A stream of pipelined commands of every shape (multibulk, binary bulks with CR/LF/NUL,
 *     empty and large bulks, inline with quotes and escapes, empty lines and empty arrays)
 *     parses to the same commands whether it arrives whole, split in two at every byte offset,
 *     or one byte at a time. The feeding loop does what conn.c does: it keeps unparsed bytes at
 *     the front of the buffer and calls the parser again when more arrive.
 *   - A table of malformed inputs: each ends in RESP_EPROTO with its own message — whole, and
 *     when the input arrives byte by byte.
 *   - The reply encoder (obuf.c): integers and lengths at their edges equal printf's text, bulk
 *     replies on both sides of the one-copy size and across chunks; command names found by
 *     cmd_lookup in any case, and nothing else found.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdint.h>

#include "server/cmd.h"
#include "server/obuf.h"
#include "server/resp.h"
#include "testutil.h"

/* Parsed commands, flattened: each command as "argc|len:arg|len:arg..." lines in one string. */
typedef struct out {
    char *s;
    size_t len, cap;
    char err[128];
    int eproto;
    int cmds;
} out;

static void out_add(out *o, const void *p, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        o->cap = (o->len + n + 1) * 2;
        o->s = realloc(o->s, o->cap);
        assert_non_null(o->s);
    }
    memcpy(o->s + o->len, p, n);
    o->len += n;
    o->s[o->len] = '\0';
}

static void out_cmd(out *o, const resp_parser *p, const char *base)
{
    char h[32];
    int n = snprintf(h, sizeof h, "%zu", p->argc);
    o->cmds++;
    out_add(o, h, (size_t)n);
    for (size_t i = 0; i < p->argc; i++) {
        n = snprintf(h, sizeof h, "|%zu:", p->argv[i].len);
        out_add(o, h, (size_t)n);
        out_add(o, resp_arg_ptr(p, base, i), p->argv[i].len);
    }
    out_add(o, "\n", 1);
}

/* Feed data in pieces of the given sizes (a list ending in 0: the rest in one piece), the way a
 * connection does, recording every command. */
typedef struct feeder {
    resp_parser p;
    resp_limits lim;
    char *buf;
    size_t len, cap;
} feeder;

static void feed(feeder *f, out *o, const char *data, size_t n)
{
    size_t pos = 0, used;

    if (n == 0)
        return;
    if (f->len + n > f->cap) {
        f->cap = (f->len + n) * 2;
        f->buf = realloc(f->buf, f->cap);
        assert_non_null(f->buf);
    }
    memcpy(f->buf + f->len, data, n);
    f->len += n;
    while (!o->eproto && pos < f->len) {
        int r = resp_parse(&f->p, f->buf + pos, f->len - pos, &used);
        if (r == RESP_AGAIN)
            break;
        if (r == RESP_EPROTO) {
            o->eproto = 1;
            snprintf(o->err, sizeof o->err, "%s", f->p.err);
            break;
        }
        assert_true(used > 0);
        if (f->p.argc > 0)
            out_cmd(o, &f->p, f->buf + pos);
        pos += used;
    }
    if (pos > 0) {
        memmove(f->buf, f->buf + pos, f->len - pos);
        f->len -= pos;
    }
}

static void feeder_init(feeder *f, const resp_limits *lim)
{
    memset(f, 0, sizeof *f);
    if (lim)
        f->lim = *lim;
    else
        resp_limits_default(&f->lim);
    resp_parser_init(&f->p, &f->lim);
}

static void feeder_free(feeder *f)
{
    resp_parser_free(&f->p);
    free(f->buf);
}

static out parse_split(const char *data, size_t n, size_t split, const resp_limits *lim)
{
    feeder f;
    out o = {0};

    feeder_init(&f, lim);
    feed(&f, &o, data, split);
    feed(&f, &o, data + split, n - split);
    feeder_free(&f);
    return o;
}

static out parse_str(const char *s, const resp_limits *lim)
{
    return parse_split(s, strlen(s), strlen(s), lim);
}

static out parse_bytewise(const char *data, size_t n, const resp_limits *lim)
{
    feeder f;
    out o = {0};

    feeder_init(&f, lim);
    for (size_t i = 0; i < n && !o.eproto; i++)
        feed(&f, &o, data + i, 1);
    feeder_free(&f);
    return o;
}

/* The corpus: every shape of valid request, pipelined. */
static char *corpus(size_t *n)
{
    static const char head[] =
        "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n"
        "PING\r\n"
        "*2\r\n$4\r\nECHO\r\n$7\r\na\r\nb\0c\xff\r\n"
        "\r\n"
        "*0\r\n"
        "*-1\r\n"
        "SET \"a b\" 'c\\'d'\r\n"
        "ECHO \"\\x41\\n\\t\\\\\"  tail\n"
        "*2\r\n$3\r\nGET\r\n$0\r\n\r\n"
        "   \t \r\n"
        "*2\r\n$4\r\nECHO\r\n$100000\r\n";
    size_t hn = sizeof head - 1, big = 100000;
    char *d = malloc(hn + big + 64);
    memcpy(d, head, hn);
    for (size_t i = 0; i < big; i++)
        d[hn + i] = (char)(i * 7 + 3);
    memcpy(d + hn + big, "\r\nPING\r\n", 8);
    *n = hn + big + 8;
    return d;
}

#define HAS(o, lit) (memmem((o).s, (o).len, lit, sizeof(lit) - 1) != NULL)

static void test_corpus_whole_parses(void **state)
{
    (void)state;
    size_t n;
    char *d = corpus(&n);
    out o = parse_split(d, n, n, NULL);

    assert_false(o.eproto);
    /* 3 SET + PING + ECHO + SET(quoted) + ECHO(escapes) + GET "" + ECHO big + PING */
    assert_int_equal(o.cmds, 8);
    assert_true(HAS(o, "3|3:SET|3:key|5:value\n"));
    assert_true(HAS(o, "2|4:ECHO|7:a\r\nb\0c\xff\n"));
    assert_true(HAS(o, "3|3:SET|3:a b|3:c'd\n"));
    assert_true(HAS(o, "3|4:ECHO|4:A\n\t\\|4:tail\n"));
    assert_true(HAS(o, "2|3:GET|0:\n"));
    assert_true(HAS(o, "2|4:ECHO|100000:"));
    free(o.s);
    free(d);
}

static void test_corpus_every_split(void **state)
{
    (void)state;
    size_t n;
    char *d = corpus(&n);
    out whole = parse_split(d, n, n, NULL);
    /* every split point in the small commands, and a sample through the large bulk */
    for (size_t split = 0; split <= n; split += split < 400 || split > n - 400 ? 1 : 997) {
        out o = parse_split(d, n, split, NULL);
        if (o.eproto || o.len != whole.len || memcmp(o.s, whole.s, o.len) != 0)
            fail_msg("split at %zu parses differently (%s)", split, o.err);
        free(o.s);
    }
    free(whole.s);
    free(d);
}

static void test_corpus_bytewise(void **state)
{
    (void)state;
    size_t n;
    char *d = corpus(&n);
    out whole = parse_split(d, n, n, NULL);
    out o = parse_bytewise(d, n, NULL);

    assert_false(o.eproto);
    assert_int_equal(o.len, whole.len);
    assert_memory_equal(o.s, whole.s, o.len);
    free(o.s);
    free(whole.s);
    free(d);
}

typedef struct bad_case {
    const char *input;
    size_t len; /* 0: strlen */
    const char *error;
} bad_case;

static char *repeat(char c, size_t n, const char *prefix, const char *suffix)
{
    size_t p = strlen(prefix), s = strlen(suffix);
    char *b = malloc(p + n + s + 1);
    memcpy(b, prefix, p);
    memset(b + p, c, n);
    memcpy(b + p + n, suffix, s + 1);
    return b;
}

static void test_malformed_table(void **state)
{
    (void)state;
    char *long_count = repeat('1', 70000, "*", "");
    char *long_bulk_count = repeat('1', 70000, "*1\r\n$", "");
    char *long_inline = repeat('a', 70000, "", "");
    char *long_inline_nl = repeat('a', 70000, "", "\r\n");
    /* count lines whose LF is their (max_inline + 2)th byte: judged on their content however
     * the reads cut them (a read ending before the LF once made them "too big") */
    char *edge_count = repeat('1', 65535, "*", "\r\n");
    char *edge_bulk_count = repeat('1', 65535, "*1\r\n$", "\r\n");
    const bad_case cases[] = {
        {"*abc\r\n", 0, "invalid multibulk length"},
        {"*-\r\n", 0, "invalid multibulk length"},
        {"*+1\r\n", 0, "invalid multibulk length"},
        {"*2000000\r\n", 0, "invalid multibulk length"},
        {"*1\r\n$abc\r\n", 0, "invalid bulk length"},
        {"*1\r\n$-5\r\n", 0, "invalid bulk length"},
        {"*1\r\n$600000000\r\n", 0, "invalid bulk length"},
        {"*1\r\n$99999999999999999999\r\n", 0, "invalid bulk length"},
        {"*1\r\n$1.5\r\n", 0, "invalid bulk length"},
        {"*1\r\n$ 3\r\n", 0, "invalid bulk length"},
        {"*1\r\n$\r\n", 0, "invalid bulk length"},
        {"*1\r\n:3\r\n", 0, "expected '$', got ':'"},
        {"*1\r\nfoo\r\n", 0, "expected '$', got 'f'"},
        {"*1\r\n$3\r\nfooXY", 0, "expected CRLF after bulk data"},
        {"*1\r\n$3\r\nfoo\rX", 0, "expected CRLF after bulk data"},
        {"*1\n", 0, "expected CRLF after the mbulk count string"},
        {"*1\r\n$3\n", 0, "expected CRLF after the bulk count string"},
        {long_count, 0, "too big mbulk count string"},
        {long_bulk_count, 0, "too big bulk count string"},
        {long_inline, 0, "too big inline request"},
        {long_inline_nl, 0, "too big inline request"},
        {edge_count, 0, "invalid multibulk length"},
        {edge_bulk_count, 0, "invalid bulk length"},
        {"SET \"abc\r\n", 0, "unbalanced quotes"},
        {"SET 'abc\r\n", 0, "unbalanced quotes"},
        {"SET \"a\"b\r\n", 0, "unbalanced quotes"},
        {"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$x\r\n", 0, "invalid bulk length"},
    };
    size_t ncases = sizeof cases / sizeof cases[0];

    assert_true(ncases >= 20);
    for (size_t i = 0; i < ncases; i++) {
        size_t n = cases[i].len ? cases[i].len : strlen(cases[i].input);
        out whole = parse_split(cases[i].input, n, n, NULL);
        out bytes = parse_bytewise(cases[i].input, n, NULL);
        if (!whole.eproto || !strstr(whole.err, cases[i].error))
            fail_msg("case %zu: want \"%s\", got %s \"%s\"", i, cases[i].error,
                     whole.eproto ? "error" : "no error", whole.err);
        if (!bytes.eproto || !strstr(bytes.err, cases[i].error))
            fail_msg("case %zu byte by byte: want \"%s\", got \"%s\"", i, cases[i].error,
                     bytes.err);
        free(whole.s);
        free(bytes.s);
    }
    free(long_count);
    free(long_bulk_count);
    free(long_inline);
    free(long_inline_nl);
    free(edge_count);
    free(edge_bulk_count);
}

/* resp.h: a need announced with RESP_AGAIN is more than the bytes given and no more than the
 * command holds, at every prefix (it once kept the previous bulk's end while the next "$len"
 * line was incomplete). */
static void test_need_hint(void **state)
{
    (void)state;
    static const char cmd[] = "*3\r\n$3\r\nSET\r\n$10\r\nkey-012345\r\n$5\r\nvalue\r\n";
    size_t total = sizeof cmd - 1;
    resp_limits lim;
    resp_limits_default(&lim);

    for (size_t n = 1; n <= total; n++) {
        resp_parser p;
        size_t used;
        char *b = malloc(n);
        memcpy(b, cmd, n);
        resp_parser_init(&p, &lim);
        int r = resp_parse(&p, b, n, &used);
        if (n < total) {
            assert_int_equal(r, RESP_AGAIN);
            if (p.need != 0 && (p.need <= n || p.need > total))
                fail_msg("prefix of %zu bytes: need %zu (command: %zu bytes)", n, p.need, total);
        } else {
            assert_int_equal(r, RESP_DONE);
            assert_int_equal(used, total);
        }
        resp_parser_free(&p);
        free(b);
    }
}

/* Before AUTH a client may announce at most unauth_multibulk elements and unauth_bulk bytes
 * (Redis's words for both); after it, the ordinary limits. */
static void test_unauthenticated_limits(void **state)
{
    (void)state;
    static const bad_case cases[] = {
        {"*11\r\n", 0, "unauthenticated multibulk length"},
        {"*1000000\r\n", 0, "unauthenticated multibulk length"},
        {"*1\r\n$16385\r\n", 0, "unauthenticated bulk length"},
        {"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$200000000\r\n", 0, "unauthenticated bulk length"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        feeder f;
        out o = {0};
        feeder_init(&f, NULL);
        f.p.unauth = true;
        feed(&f, &o, cases[i].input, strlen(cases[i].input));
        if (!o.eproto || !strstr(o.err, cases[i].error))
            fail_msg("case %zu: want \"%s\", got \"%s\"", i, cases[i].error, o.err);
        feeder_free(&f);
        free(o.s);
    }
    /* at the limits: accepted */
    feeder f;
    out o = {0};
    char *bulk = repeat('x', 16384, "*2\r\n$4\r\nAUTH\r\n$16384\r\n", "\r\n");
    feeder_init(&f, NULL);
    f.p.unauth = true;
    static const char ten[] = "*10\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n"
                              "$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n";
    feed(&f, &o, ten, sizeof ten - 1);
    feed(&f, &o, bulk, strlen(bulk));
    assert_false(o.eproto);
    assert_int_equal(o.cmds, 2);
    /* once authenticated, a large request is fine */
    f.p.unauth = false;
    feed(&f, &o, "*11\r\n", 5);
    assert_false(o.eproto);
    feeder_free(&f);
    free(o.s);
    free(bulk);
}

/* As in Redis, only '*' starts a multibulk: "$3" and "+OK" are inline commands of that name. */
static void test_dollar_is_an_inline_command(void **state)
{
    (void)state;
    out o = parse_str("$3\r\nfoo\r\n+OK x\r\n", NULL);
    assert_false(o.eproto);
    assert_int_equal(o.cmds, 3);
    assert_true(HAS(o, "1|2:$3\n1|3:foo\n2|3:+OK|1:x\n"));
    free(o.s);
}

static void test_limits_are_configurable(void **state)
{
    (void)state;
    resp_limits lim;
    resp_limits_default(&lim);
    lim.max_bulk = 10;
    lim.max_multibulk = 3;
    lim.max_inline = 16;

    out ok = parse_str("*3\r\n$1\r\na\r\n$10\r\n0123456789\r\n$0\r\n\r\n", &lim);
    assert_false(ok.eproto);
    assert_string_equal(ok.s, "3|1:a|10:0123456789|0:\n");
    out big = parse_str("*1\r\n$11\r\n", &lim);
    assert_true(big.eproto && strstr(big.err, "invalid bulk length"));
    out many = parse_str("*4\r\n", &lim);
    assert_true(many.eproto && strstr(many.err, "invalid multibulk length"));
    out line = parse_str("PING aaaaaaaaaaaaaaaaaa\r\n", &lim);
    assert_true(line.eproto && strstr(line.err, "too big inline request"));
    free(ok.s);
    free(big.s);
    free(many.s);
    free(line.s);
}

/* Everything queued in b, as one string (caller frees). */
static char *obuf_text(obuf *b, size_t *len)
{
    ochunk *c = obuf_take(b), *h = c;
    char *s = malloc(1);
    size_t n = 0;

    assert_non_null(s);
    for (; c; c = c->next) {
        s = realloc(s, n + c->len + 1);
        assert_non_null(s);
        memcpy(s + n, c->data, c->len);
        n += c->len;
    }
    s[n] = '\0';
    ochunks_free(h);
    *len = n;
    return s;
}

static void test_reply_numbers(void **state)
{
    (void)state;
    const long long v[] = {0, 1, -1, 9, 10, -10, 99, 100, 12345, -98765, 1000000007LL,
                           INT64_MAX, INT64_MIN, INT64_MAX - 1, INT64_MIN + 1,
                           4294967295LL, -4294967296LL};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char want[64];
        size_t len;
        obuf b;
        obuf_init(&b);
        assert_int_equal(resp_int(&b, v[i]), 0);
        assert_int_equal(resp_array(&b, v[i]), 0);
        assert_int_equal(b.replies, 2);
        char *got = obuf_text(&b, &len);
        snprintf(want, sizeof want, ":%lld\r\n*%lld\r\n", v[i], v[i]);
        assert_string_equal(got, want);
        free(got);
    }
}

static void test_bulk_replies(void **state)
{
    (void)state;
    const size_t lens[] = {0, 1, 9, 10, 511, 512, 513, 16383, 16384, 40000};
    char *val = malloc(40000);
    assert_non_null(val);
    for (size_t i = 0; i < 40000; i++)
        val[i] = (char)(i * 7 + 3); /* every byte value, CR and LF among them */
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        obuf b;
        size_t len, hl;
        char head[32];
        obuf_init(&b);
        /* after a short reply too: the bulk then starts inside a chunk, not at its start */
        for (int pre = 0; pre < 2; pre++) {
            if (pre)
                assert_int_equal(resp_ok(&b), 0);
            assert_int_equal(resp_bulk(&b, lens[i] ? val : NULL, lens[i]), 0);
            char *got = obuf_text(&b, &len);
            const char *p = got + (pre ? 5 : 0);
            hl = (size_t)snprintf(head, sizeof head, "$%zu\r\n", lens[i]);
            assert_int_equal(len, (pre ? 5 : 0) + hl + lens[i] + 2);
            assert_memory_equal(p, head, hl);
            if (lens[i])
                assert_memory_equal(p + hl, val, lens[i]);
            assert_memory_equal(p + hl + lens[i], "\r\n", 2);
            free(got);
        }
    }
    free(val);
}

static void test_command_lookup(void **state)
{
    (void)state;
    const char *found[] = {"get", "GET", "gEt", "set", "SET", "pexpireat", "PExpireAt",
                           "flushall", "client", "multi", "exec", "incrbyfloat", "shutdown"};
    const char *absent[] = {"", "g", "ge", "gett", "getx", "xget", "g\0t", "[et", "GE\x7f",
                            "flushalll", "this-name-is-longer-than-any-command-name", "ge\x14"};
    for (size_t i = 0; i < sizeof found / sizeof found[0]; i++) {
        const command *k = cmd_lookup(found[i], strlen(found[i]));
        assert_non_null(k);
        assert_int_equal(strcasecmp(k->name, found[i]), 0);
    }
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
        assert_null(cmd_lookup(absent[i], strlen(absent[i]) + (i == 6)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus_whole_parses),
        cmocka_unit_test(test_corpus_every_split),
        cmocka_unit_test(test_corpus_bytewise),
        cmocka_unit_test(test_malformed_table),
        cmocka_unit_test(test_need_hint),
        cmocka_unit_test(test_limits_are_configurable),
        cmocka_unit_test(test_unauthenticated_limits),
        cmocka_unit_test(test_dollar_is_an_inline_command),
        cmocka_unit_test(test_reply_numbers),
        cmocka_unit_test(test_bulk_replies),
        cmocka_unit_test(test_command_lookup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
