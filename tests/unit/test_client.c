/*
 * test_client.c — libkvsclient against a real server, and against servers that misbehave.
 *
 * A client library is only as good as what it does with the bytes a real server sends, so the
 * cases that need a well-behaved server run against one the test starts itself: redis-server
 * (the reference RESP2 implementation), or, when KVS_TEST_SERVER names a kvs-server binary,
 * that one, on a scratch directory. The port is chosen at run time (bind 127.0.0.1:0, read it,
 * release it) so parallel runs do not collide, and the server is stopped by its PID in the group
 * teardown, which cmocka runs even when a case fails.
 *
 * Against the live server: round trips of set/get/del; missing keys (get and del both say
 * KVSC_ENOTFOUND); keys and values holding NUL, CR, LF and 0xFF; an empty and a 1 MiB value;
 * generic commands (PING's status, an unknown command's error text); 10,000 pipelined SETs then
 * 10,000 GETs; 1,000 async commands whose callbacks must come back in order with the right
 * replies; async close cancelling what is pending.
 *
 * Against servers made in the test: a port with nothing listening (refused, quickly), a
 * listener that never answers (a 200 ms read timeout), and a tiny fake server thread that
 * answers any request with fixed bytes — malformed replies, replies past each limit, a reply
 * truncated by a close, a reply sent one byte at a time (the parser must resume anywhere), and
 * bytes nobody asked for. Every malformed case must end in KVSC_EPROTO, and the connection must
 * then refuse further use (KVSC_ECLOSED) rather than read a stream that is out of step.
 *
 * Address strings are checked without any server: each bad one must be KVSC_EADDR.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h> /* cmocka needs these before cmocka.h */
#include <cmocka.h>

#include "kvs/client.h"

extern char **environ;

#define REDIS_SERVER "/usr/bin/redis-server"
#define TIMEOUT_MS   5000

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A TCP socket bound to 127.0.0.1 on a port the kernel picks; listening if backlog > 0. */
static int bind_any(int backlog, int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        (backlog > 0 && listen(fd, backlog) < 0) ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

/* ---- the live server, for the whole group ---- */

static struct {
    pid_t pid;
    char addr[64];
    char dir[256];
    char log[320];
} srv;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int server_answers(const char *addr)
{
    const char *argv[] = {"PING"};
    kvsc_conn *c;
    kvsc_reply *r = NULL;
    int ok;

    if (kvsc_connect(addr, 500, &c) < 0)
        return 0;
    ok = kvsc_command(c, 1, argv, NULL, &r) == 0 && r->type == KVSC_REPLY_STATUS &&
         strcmp(r->str, "PONG") == 0;
    kvsc_reply_free(r);
    kvsc_close(c);
    return ok;
}

static void server_stop(void)
{
    int status;

    if (srv.pid <= 0)
        return;
    kill(srv.pid, SIGTERM);
    for (int i = 0; i < 500 && waitpid(srv.pid, &status, WNOHANG) == 0; i++)
        usleep(10000);
    if (kill(srv.pid, 0) == 0) {
        kill(srv.pid, SIGKILL);
        waitpid(srv.pid, &status, 0);
    }
    srv.pid = 0;
}

static void print_log(void)
{
    char buf[4096];
    FILE *f = fopen(srv.log, "r");
    size_t n;

    if (f == NULL)
        return;
    fprintf(stderr, "---- %s ----\n", srv.log);
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, stderr);
    fclose(f);
}

/* Start the server on a fresh port; 0 once it answers PING. Tries a few ports, in case another
 * process takes the one picked between its release and the server's bind. */
static int server_start(void)
{
    const char *kvs = getenv("KVS_TEST_SERVER");
    char port[16];
    int p, fd;

    for (int attempt = 0; attempt < 3; attempt++) {
        if ((fd = bind_any(0, &p)) < 0)
            return -1;
        close(fd);
        snprintf(port, sizeof port, "%d", p);
        snprintf(srv.addr, sizeof srv.addr, "127.0.0.1:%d", p);
        char *redis_argv[] = {REDIS_SERVER, "--port", port, "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--daemonize", "no", NULL};
        char *kvs_argv[] = {(char *)kvs, "--addr", srv.addr, "--dir", srv.dir, NULL};
        char **argv = kvs && *kvs ? kvs_argv : redis_argv;

        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 1, srv.log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        posix_spawn_file_actions_adddup2(&fa, 1, 2);
        int rc = posix_spawn(&srv.pid, argv[0], &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        if (rc != 0) {
            fprintf(stderr, "cannot start %s: %s\n", argv[0], strerror(rc));
            return -1;
        }
        int64_t deadline = now_ms() + 10000;
        int status;
        while (now_ms() < deadline) {
            if (waitpid(srv.pid, &status, WNOHANG) == srv.pid) {
                srv.pid = 0;
                break;  /* it died: perhaps the port was taken; try another */
            }
            if (server_answers(srv.addr))
                return 0;
            usleep(20000);
        }
        server_stop();
    }
    fprintf(stderr, "the server did not answer PING within 10 s\n");
    print_log();
    return -1;
}

static int group_setup(void **state)
{
    const char *tmp = getenv("TMPDIR");

    (void)state;
    snprintf(srv.dir, sizeof srv.dir, "%s/kvs-client-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(srv.dir) == NULL)
        return -1;
    snprintf(srv.log, sizeof srv.log, "%s/server.log", srv.dir);
    return server_start();
}

static int group_teardown(void **state)
{
    (void)state;
    server_stop();
    nftw(srv.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static kvsc_conn *conn(void)
{
    kvsc_conn *c = NULL;
    int rc = kvsc_connect(srv.addr, TIMEOUT_MS, &c);

    if (rc < 0)
        fail_msg("connect %s: %s: %s", srv.addr, kvsc_strerror(rc), kvsc_last_error(NULL));
    return c;
}

static void assert_value(kvsc_conn *c, const void *key, size_t klen, const void *want, size_t wlen)
{
    void *val = NULL;
    size_t len = 0;
    int rc = kvsc_get(c, key, klen, &val, &len);

    if (rc < 0)
        fail_msg("get: %s: %s", kvsc_strerror(rc), kvsc_last_error(c));
    assert_int_equal(len, wlen);
    assert_memory_equal(val, want, wlen);
    assert_int_equal(((char *)val)[len], '\0');
    kvsc_free(val);
}

/* ---- blocking, live server ---- */

static void test_set_get_del(void **state)
{
    kvsc_conn *c = conn();

    (void)state;
    assert_int_equal(kvsc_set(c, "alpha", 5, "one", 3), 0);
    assert_value(c, "alpha", 5, "one", 3);
    assert_int_equal(kvsc_set(c, "alpha", 5, "two!", 4), 0);
    assert_value(c, "alpha", 5, "two!", 4);
    assert_int_equal(kvsc_set(c, "empty", 5, "", 0), 0);
    assert_value(c, "empty", 5, "", 0);
    assert_int_equal(kvsc_del(c, "alpha", 5), 0);
    assert_int_equal(kvsc_del(c, "empty", 5), 0);
    kvsc_close(c);
}

static void test_missing(void **state)
{
    kvsc_conn *c = conn();
    void *val = (void *)1;
    size_t len = 99;

    (void)state;
    assert_int_equal(kvsc_get(c, "no-such-key", 11, &val, &len), KVSC_ENOTFOUND);
    assert_null(val);
    assert_int_equal(len, 0);
    assert_int_equal(kvsc_del(c, "no-such-key", 11), KVSC_ENOTFOUND);
    assert_int_equal(kvsc_set(c, "gone", 4, "x", 1), 0);
    assert_int_equal(kvsc_del(c, "gone", 4), 0);
    assert_int_equal(kvsc_del(c, "gone", 4), KVSC_ENOTFOUND);
    assert_int_equal(kvsc_get(c, "gone", 4, &val, &len), KVSC_ENOTFOUND);
    /* A refusal leaves the connection usable. */
    assert_int_equal(kvsc_set(c, "gone", 4, "back", 4), 0);
    assert_value(c, "gone", 4, "back", 4);
    assert_int_equal(kvsc_del(c, "gone", 4), 0);
    kvsc_close(c);
}

static void test_binary(void **state)
{
    static const char key[] = "k\0\r\n\xff$*\r\n";
    char val[1024];
    kvsc_conn *c = conn();

    (void)state;
    for (size_t i = 0; i < sizeof val; i++)
        val[i] = (char)(i * 7);  /* every byte value, NUL, CR and LF among them */
    memcpy(val, "\r\n$-1\r\n\0", 8);
    assert_int_equal(kvsc_set(c, key, sizeof key - 1, val, sizeof val), 0);
    assert_value(c, key, sizeof key - 1, val, sizeof val);
    /* The key is all of its bytes: a prefix up to the NUL is another key. */
    void *v;
    size_t n;
    assert_int_equal(kvsc_get(c, "k", 1, &v, &n), KVSC_ENOTFOUND);
    assert_int_equal(kvsc_del(c, key, sizeof key - 1), 0);
    kvsc_close(c);
}

static void test_big_value(void **state)
{
    size_t size = 1u << 20;
    char *big = malloc(size);
    uint32_t x = 12345;
    kvsc_conn *c = conn();

    (void)state;
    assert_non_null(big);
    for (size_t i = 0; i < size; i++) {
        x = x * 1103515245u + 12345u;
        big[i] = (char)(x >> 16);
    }
    assert_int_equal(kvsc_set(c, "big", 3, big, size), 0);
    assert_value(c, "big", 3, big, size);
    assert_int_equal(kvsc_del(c, "big", 3), 0);
    kvsc_close(c);
    free(big);
}

static void test_command(void **state)
{
    const char *ping[] = {"PING"}, *echo[] = {"ECHO", "a\0b"}, *bad[] = {"NOSUCHCOMMAND", "x"};
    const char *get_noarg[] = {"GET"};
    size_t echo_lens[] = {4, 3};
    kvsc_conn *c = conn();
    kvsc_reply *r = NULL;

    (void)state;
    assert_int_equal(kvsc_command(c, 1, ping, NULL, &r), 0);
    assert_int_equal(r->type, KVSC_REPLY_STATUS);
    assert_string_equal(r->str, "PONG");
    kvsc_reply_free(r);

    assert_int_equal(kvsc_command(c, 2, echo, echo_lens, &r), 0);
    assert_int_equal(r->type, KVSC_REPLY_BULK);
    assert_int_equal(r->len, 3);
    assert_memory_equal(r->str, "a\0b", 3);
    kvsc_reply_free(r);

    r = (kvsc_reply *)1;
    assert_int_equal(kvsc_command(c, 2, bad, NULL, &r), KVSC_ESERVER);
    assert_null(r);
    assert_non_null(strcasestr(kvsc_last_error(c), "unknown command"));
    assert_int_equal(kvsc_command(c, 1, get_noarg, NULL, &r), KVSC_ESERVER);
    assert_non_null(strcasestr(kvsc_last_error(c), "wrong number of arguments"));

    /* Bad arguments are refused before anything is sent; the connection stays usable. */
    assert_int_equal(kvsc_command(c, 0, ping, NULL, &r), KVSC_EINVAL);
    assert_int_equal(kvsc_command(c, 1, NULL, NULL, &r), KVSC_EINVAL);
    assert_int_equal(kvsc_command(c, 1, ping, NULL, NULL), KVSC_EINVAL);
    assert_int_equal(kvsc_command(c, 1, ping, NULL, &r), 0);
    kvsc_reply_free(r);
    kvsc_close(c);
}

/* ---- pipelined ---- */

#define PIPE_N 10000

static void test_pipeline(void **state)
{
    kvsc_conn *c = conn();
    char key[32], val[48];
    kvsc_reply *r;

    (void)state;
    for (int i = 0; i < PIPE_N; i++) {
        int kl = snprintf(key, sizeof key, "pipe:%d", i), vl = snprintf(val, sizeof val, "value-%d-%d", i, i * 31);
        const char *argv[] = {"SET", key, val};
        size_t lens[] = {3, (size_t)kl, (size_t)vl};
        assert_int_equal(kvsc_pipe_append(c, 3, argv, lens), 0);
    }
    assert_int_equal(kvsc_pipe_pending(c), PIPE_N);
    assert_int_equal(kvsc_pipe_flush(c), 0);
    for (int i = 0; i < PIPE_N; i++) {
        int rc = kvsc_pipe_read(c, &r);
        if (rc < 0)
            fail_msg("reply %d: %s: %s", i, kvsc_strerror(rc), kvsc_last_error(c));
        assert_int_equal(r->type, KVSC_REPLY_STATUS);
        assert_string_equal(r->str, "OK");
        kvsc_reply_free(r);
    }
    assert_int_equal(kvsc_pipe_pending(c), 0);

    for (int i = 0; i < PIPE_N; i++) {
        int kl = snprintf(key, sizeof key, "pipe:%d", i);
        const char *argv[] = {"GET", key};
        size_t lens[] = {3, (size_t)kl};
        assert_int_equal(kvsc_pipe_append(c, 2, argv, lens), 0);
    }
    /* No explicit flush: the first read sends what is queued. */
    for (int i = 0; i < PIPE_N; i++) {
        int vl = snprintf(val, sizeof val, "value-%d-%d", i, i * 31);
        assert_int_equal(kvsc_pipe_read(c, &r), 0);
        assert_int_equal(r->type, KVSC_REPLY_BULK);
        assert_int_equal(r->len, (size_t)vl);
        assert_memory_equal(r->str, val, (size_t)vl);
        kvsc_reply_free(r);
    }
    assert_int_equal(kvsc_pipe_read(c, &r), KVSC_ESTATE);

    /* An error reply is one reply among others in a pipeline. */
    const char *ping[] = {"PING"}, *bad[] = {"NOSUCHCOMMAND"};
    assert_int_equal(kvsc_pipe_append(c, 1, ping, NULL), 0);
    assert_int_equal(kvsc_pipe_append(c, 1, bad, NULL), 0);
    assert_int_equal(kvsc_pipe_append(c, 1, ping, NULL), 0);
    /* A blocking command now would take a pipelined reply for its own. */
    assert_int_equal(kvsc_command(c, 1, ping, NULL, &r), KVSC_ESTATE);
    assert_int_equal(kvsc_pipe_read(c, &r), 0);
    assert_int_equal(r->type, KVSC_REPLY_STATUS);
    kvsc_reply_free(r);
    assert_int_equal(kvsc_pipe_read(c, &r), 0);
    assert_int_equal(r->type, KVSC_REPLY_ERROR);
    kvsc_reply_free(r);
    assert_int_equal(kvsc_pipe_read(c, &r), 0);
    assert_string_equal(r->str, "PONG");
    kvsc_reply_free(r);

    /* Clean up with one more pipeline of DELs. */
    for (int i = 0; i < PIPE_N; i++) {
        int kl = snprintf(key, sizeof key, "pipe:%d", i);
        const char *argv[] = {"DEL", key};
        size_t lens[] = {3, (size_t)kl};
        assert_int_equal(kvsc_pipe_append(c, 2, argv, lens), 0);
    }
    assert_int_equal(kvsc_pipe_flush(c), 0);
    for (int i = 0; i < PIPE_N; i++) {
        assert_int_equal(kvsc_pipe_read(c, &r), 0);
        assert_int_equal(r->type, KVSC_REPLY_INTEGER);
        assert_int_equal(r->integer, 1);
        kvsc_reply_free(r);
    }
    kvsc_close(c);
}

/* ---- asynchronous ---- */

#define ASYNC_N 1000

typedef struct actx {
    kvsc_async *a;
    int connect_status, connect_calls;
    int calls;         /* callbacks so far */
    int out_of_order;  /* callbacks whose index was not the next expected */
    int wrong;         /* callbacks with the wrong status or reply */
    int canceled;
    int close_after;   /* close the handle in the callback of this index (-1: after the last) */
    int expect_status; /* for cancel tests: the status the canceled ones must carry */
} actx;

typedef struct aslot {
    actx *ctx;
    int idx;
} aslot;

static void on_aconnect(kvsc_async *a, int status, void *data)
{
    actx *x = data;

    (void)a;
    x->connect_status = status;
    x->connect_calls++;
}

/* Even indexes are SET async:i v:i, odd ones GET async:i: check each reply. */
static void on_areply(kvsc_async *a, int status, kvsc_reply *r, void *data)
{
    aslot *s = data;
    actx *x = s->ctx;
    char want[32];

    if (s->idx != x->calls++)
        x->out_of_order++;
    if (status < 0) {
        x->wrong++;
    } else if (s->idx % 2 == 0) {
        if (r->type != KVSC_REPLY_STATUS || strcmp(r->str, "OK") != 0)
            x->wrong++;
    } else {
        int n = snprintf(want, sizeof want, "v:%d", s->idx / 2);
        if (r->type != KVSC_REPLY_BULK || r->len != (size_t)n || memcmp(r->str, want, (size_t)n) != 0)
            x->wrong++;
    }
    if (s->idx == ASYNC_N - 1)
        kvsc_async_close(a);
}

static void test_async(void **state)
{
    uv_loop_t loop;
    actx x = {.connect_status = 1};
    aslot *slots = calloc(ASYNC_N, sizeof *slots);
    char key[32], val[32];

    (void)state;
    assert_non_null(slots);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(kvsc_async_connect(&loop, srv.addr, on_aconnect, &x, &x.a), 0);
    assert_ptr_equal(kvsc_async_data(x.a), &x);
    /* Issued before the connection is up: queued, sent once it is. */
    for (int i = 0; i < ASYNC_N; i++) {
        int kl = snprintf(key, sizeof key, "async:%d", i / 2), vl = snprintf(val, sizeof val, "v:%d", i / 2);
        const char *argv[] = {i % 2 ? "GET" : "SET", key, val};
        size_t lens[] = {3, (size_t)kl, (size_t)vl};
        slots[i] = (aslot){&x, i};
        assert_int_equal(kvsc_async_command(x.a, i % 2 ? 2 : 3, argv, lens, on_areply, &slots[i]), 0);
    }
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(x.connect_calls, 1);
    assert_int_equal(x.connect_status, 0);
    assert_int_equal(x.calls, ASYNC_N);
    assert_int_equal(x.out_of_order, 0);
    assert_int_equal(x.wrong, 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    free(slots);

    /* Clean up, and check the values landed, through the blocking API. */
    kvsc_conn *c = conn();
    for (int i = 0; i < ASYNC_N / 2; i++) {
        int kl = snprintf(key, sizeof key, "async:%d", i), vl = snprintf(val, sizeof val, "v:%d", i);
        assert_value(c, key, (size_t)kl, val, (size_t)vl);
        assert_int_equal(kvsc_del(c, key, (size_t)kl), 0);
    }
    kvsc_close(c);
}

/* For the cancel tests: count statuses; close in the callback of index close_after. */
static void on_acount(kvsc_async *a, int status, kvsc_reply *r, void *data)
{
    aslot *s = data;
    actx *x = s->ctx;

    if (s->idx != x->calls++)
        x->out_of_order++;
    if (status == x->expect_status && r == NULL)
        x->canceled++;
    else if (status != 0 || r == NULL)
        x->wrong++;
    if (s->idx == x->close_after) {
        kvsc_async_close(a);
        /* Closed: new commands are refused without a callback. */
        const char *ping[] = {"PING"};
        if (kvsc_async_command(a, 1, ping, NULL, on_acount, s) != KVSC_ECLOSED)
            x->wrong++;
    }
}

static void test_async_close_cancels(void **state)
{
    const char *ping[] = {"PING"};
    aslot slots[100];
    uv_loop_t loop;

    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);

    /* Closed before the loop ever ran: every callback, the connect one included, is canceled
     * before kvsc_async_close returns. */
    actx x = {.close_after = -1, .expect_status = KVSC_ECANCELED};
    assert_int_equal(kvsc_async_connect(&loop, srv.addr, on_aconnect, &x, &x.a), 0);
    for (int i = 0; i < 100; i++) {
        slots[i] = (aslot){&x, i};
        assert_int_equal(kvsc_async_command(x.a, 1, ping, NULL, on_acount, &slots[i]), 0);
    }
    kvsc_async_close(x.a);
    assert_int_equal(x.connect_calls, 1);
    assert_int_equal(x.connect_status, KVSC_ECANCELED);
    assert_int_equal(x.calls, 100);
    assert_int_equal(x.canceled, 100);
    kvsc_async_close(x.a);  /* a second close is harmless */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);

    /* Closed from inside the first reply's callback: the other 99 are canceled. */
    actx y = {.close_after = 0, .expect_status = KVSC_ECANCELED};
    assert_int_equal(kvsc_async_connect(&loop, srv.addr, on_aconnect, &y, &y.a), 0);
    for (int i = 0; i < 100; i++) {
        slots[i] = (aslot){&y, i};
        assert_int_equal(kvsc_async_command(y.a, 1, ping, NULL, on_acount, &slots[i]), 0);
    }
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(y.connect_status, 0);
    assert_int_equal(y.calls, 100);
    assert_int_equal(y.canceled, 99);
    assert_int_equal(y.out_of_order, 0);
    assert_int_equal(y.wrong, 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void on_aconnect_close(kvsc_async *a, int status, void *data)
{
    on_aconnect(a, status, data);
    if (status < 0)
        kvsc_async_close(a);
}

static void test_async_refused(void **state)
{
    const char *ping[] = {"PING"};
    char addr[64];
    aslot slots[3];
    uv_loop_t loop;
    kvsc_async *a = (kvsc_async *)1;
    int port, fd = bind_any(0, &port);  /* bound, not listening: connect is refused */

    (void)state;
    assert_true(fd >= 0);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    assert_int_equal(uv_loop_init(&loop), 0);
    actx x = {.close_after = -2, .expect_status = KVSC_ECONNREFUSED};
    assert_int_equal(kvsc_async_connect(&loop, addr, on_aconnect_close, &x, &x.a), 0);
    for (int i = 0; i < 3; i++) {
        slots[i] = (aslot){&x, i};
        assert_int_equal(kvsc_async_command(x.a, 1, ping, NULL, on_acount, &slots[i]), 0);
    }
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(x.connect_calls, 1);
    assert_int_equal(x.connect_status, KVSC_ECONNREFUSED);
    assert_int_equal(x.canceled, 3);  /* they carry the failure, not a plain cancel */

    assert_int_equal(kvsc_async_connect(&loop, "nonsense", on_aconnect, &x, &a), KVSC_EADDR);
    assert_null(a);
    assert_int_equal(uv_loop_close(&loop), 0);
    close(fd);
}

/* ---- connecting ---- */

static void test_connect_refused(void **state)
{
    char addr[64];
    kvsc_conn *c = (kvsc_conn *)1;
    int port, fd = bind_any(0, &port);

    (void)state;
    assert_true(fd >= 0);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    int64_t t0 = now_ms();
    int rc = kvsc_connect(addr, TIMEOUT_MS, &c);
    assert_true(rc == KVSC_ECONNREFUSED || rc == KVSC_EIO);
    assert_true(now_ms() - t0 < 2000);
    assert_null(c);
    assert_true(strlen(kvsc_last_error(NULL)) > 0);

    /* IPv6 syntax is understood (whether ::1 works on this host or not). */
    snprintf(addr, sizeof addr, "[::1]:%d", port);
    rc = kvsc_connect(addr, TIMEOUT_MS, &c);
    assert_true(rc < 0 && rc != KVSC_EADDR);
    close(fd);
}

static void test_bad_addresses(void **state)
{
    static const char *bad[] = {
        "nonsense", "1.2.3.4", "127.0.0.1:99999", "[::1", "", ":4000", "127.0.0.1:",
        "127.0.0.1:0", "127.0.0.1:-1", "127.0.0.1:40x", "127.0.0.1:+80", "localhost:4000",
        "::1:4000", "[::1]", "[::1]4000", "[127.0.0.1]:4000", "1.2.3:4000", "127.0.0.1:4000 ",
        "[]:4000", "127.0.0.1:0004000",
    };
    kvsc_conn *c = (kvsc_conn *)1;

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = kvsc_connect(bad[i], 100, &c);
        if (rc != KVSC_EADDR)
            fail_msg("'%s': %d (%s), want KVSC_EADDR", bad[i], rc, kvsc_strerror(rc));
        assert_null(c);
        assert_non_null(strstr(kvsc_last_error(NULL), bad[i]));
    }
    assert_int_equal(kvsc_connect(NULL, 100, &c), KVSC_EADDR);
    assert_int_equal(kvsc_connect(srv.addr, 100, NULL), KVSC_EINVAL);
}

static void test_read_timeout(void **state)
{
    char addr[64];
    kvsc_conn *c;
    void *val;
    size_t len;
    int port, fd = bind_any(4, &port);  /* listening, never accepting, never answering */

    (void)state;
    assert_true(fd >= 0);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    assert_int_equal(kvsc_connect(addr, 200, &c), 0);
    int64_t t0 = now_ms();
    assert_int_equal(kvsc_get(c, "k", 1, &val, &len), KVSC_ETIMEDOUT);
    int64_t took = now_ms() - t0;
    assert_true(took >= 190 && took < 3000);
    /* Whatever the server sends later would be out of step: the connection is finished. */
    assert_int_equal(kvsc_get(c, "k", 1, &val, &len), KVSC_ECLOSED);
    assert_non_null(strstr(kvsc_last_error(c), "timeout"));
    kvsc_close(c);
    close(fd);
}

/* ---- a fake server answering fixed bytes ---- */

typedef struct fake {
    int lfd, port;
    const char *bytes;
    size_t len;
    int drip;        /* send one byte at a time */
    int send_first;  /* send before reading anything (a peer that writes before it reads) */
    pthread_t th;
} fake;

static void *fake_main(void *arg)
{
    fake *f = arg;
    struct pollfd p = {.fd = f->lfd, .events = POLLIN};
    char buf[4096];
    int fd, one = 1;

    if (poll(&p, 1, 5000) <= 0 || (fd = accept(f->lfd, NULL, NULL)) < 0)
        return NULL;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    p.fd = fd;
    if (!f->send_first && poll(&p, 1, 5000) > 0 && read(fd, buf, sizeof buf) <= 0)
        goto out;
    for (size_t i = 0; i < f->len;) {
        ssize_t w = send(fd, f->bytes + i, f->drip ? 1 : f->len - i, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        i += (size_t)w;
        if (f->drip)
            usleep(300);
    }
    /* Say no more, then wait for the client to hang up, so it never sees a reset. */
    shutdown(fd, SHUT_WR);
    while (poll(&p, 1, 5000) > 0 && read(fd, buf, sizeof buf) > 0)
        ;
out:
    close(fd);
    return NULL;
}

enum { FAKE_DRIP = 1, FAKE_SEND_FIRST = 2 };

static void fake_start(fake *f, const char *bytes, size_t len, int mode, char *addr, size_t asz)
{
    memset(f, 0, sizeof *f);
    f->bytes = bytes;
    f->len = len;
    f->drip = (mode & FAKE_DRIP) != 0;
    f->send_first = (mode & FAKE_SEND_FIRST) != 0;
    f->lfd = bind_any(4, &f->port);
    assert_true(f->lfd >= 0);
    snprintf(addr, asz, "127.0.0.1:%d", f->port);
    assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void fake_stop(fake *f)
{
    pthread_join(f->th, NULL);
    close(f->lfd);
}

/* A peer that writes all its replies before reading a byte — 10 MiB of them, more than the
 * socket buffers hold — while the client writes 10 MiB of commands before reading a reply.
 * Each side's writes block until the other reads: kvsc_pipe_flush must read while it waits to
 * write, or both wait forever (here: until the timeout). */
static void test_pipeline_reads_while_writing(void **state)
{
    enum { N = 160, VLEN = 64 * 1024 };
    char hdr[32], addr[64];
    int hl = snprintf(hdr, sizeof hdr, "$%d\r\n", VLEN);
    size_t rlen = (size_t)hl + VLEN + 2, total = N * rlen;
    char *replies = malloc(total), *val = malloc(VLEN);
    kvsc_conn *c;
    kvsc_reply *r;
    fake f;

    (void)state;
    assert_non_null(replies);
    assert_non_null(val);
    memset(val, 'v', VLEN);
    for (size_t i = 0; i < N; i++) {
        char *w = replies + i * rlen;
        memcpy(w, hdr, (size_t)hl);
        memset(w + hl, (int)('a' + i % 26), VLEN);
        memcpy(w + hl + VLEN, "\r\n", 2);
    }
    fake_start(&f, replies, total, FAKE_SEND_FIRST, addr, sizeof addr);
    assert_int_equal(kvsc_connect(addr, 3000, &c), 0);
    for (int i = 0; i < N; i++) {
        const char *argv[] = {"SET", "k", val};
        size_t lens[] = {3, 1, VLEN};
        assert_int_equal(kvsc_pipe_append(c, 3, argv, lens), 0);
    }
    int rc = kvsc_pipe_flush(c);
    if (rc < 0)
        fail_msg("flush: %s: %s", kvsc_strerror(rc), kvsc_last_error(c));
    for (int i = 0; i < N; i++) {
        assert_int_equal(kvsc_pipe_read(c, &r), 0);
        assert_int_equal(r->type, KVSC_REPLY_BULK);
        assert_int_equal(r->len, VLEN);
        assert_int_equal(r->str[0], 'a' + i % 26);
        assert_int_equal(r->str[VLEN - 1], 'a' + i % 26);
        kvsc_reply_free(r);
    }
    kvsc_close(c);
    fake_stop(&f);
    free(replies);
    free(val);
}

/* Send PING to a fake server answering bytes; return the code, with *out the reply if any. */
static int fake_command(const char *bytes, size_t len, int drip, kvsc_reply **out, char *err,
                        size_t errsz)
{
    const char *ping[] = {"PING"};
    char addr[64];
    kvsc_conn *c;
    kvsc_reply *r = NULL;
    fake f;
    int rc;

    fake_start(&f, bytes, len, drip ? FAKE_DRIP : 0, addr, sizeof addr);
    assert_int_equal(kvsc_connect(addr, 2000, &c), 0);
    rc = kvsc_command(c, 1, ping, NULL, &r);
    snprintf(err, errsz, "%s", kvsc_last_error(c));
    if (rc == KVSC_EPROTO)  /* and after a protocol error the connection is finished */
        assert_int_equal(kvsc_command(c, 1, ping, NULL, &r), KVSC_ECLOSED);
    kvsc_close(c);
    fake_stop(&f);
    if (out)
        *out = r;
    else
        kvsc_reply_free(r);
    return rc;
}

static void test_malformed(void **state)
{
    static const struct {
        const char *bytes;
        size_t len;  /* 0: strlen */
    } cases[] = {
        {"$-5\r\n", 0},          /* negative length other than -1 */
        {"$3\r\nab", 0},         /* truncated by the close */
        {"$3\r\nab\r\n", 0},     /* body "ab\r", then "\n" where CRLF belongs */
        {"$3\r\nabcd\r\n", 0},   /* body longer than its length */
        {":12x\r\n", 0},         /* not an integer */
        {":\r\n", 0},
        {":-\r\n", 0},
        {":99999999999999999999\r\n", 0}, /* past int64 */
        {"*99999999\r\n", 0},    /* past KVSC_MAX_ELEMENTS */
        {"*1048577\r\n", 0},
        {"*-2\r\n", 0},
        {"$536936449\r\n", 0},   /* past KVSC_MAX_BULK */
        {"$ 3\r\nabc\r\n", 0},
        {"?what\r\n", 0},        /* unknown type byte */
        {"\r\n", 0},             /* empty line */
        {"+OK\rX\n", 0},         /* CR without LF */
        {"+OK\n", 0},            /* LF without CR, then the close */
        {"", 0},                 /* nothing at all, then the close: closed, not malformed */
        {"*2\r\n+a\r\n", 0},     /* array cut short by the close */
        {"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", 0}, /* 9 deep */
    };
    char err[512];

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].bytes);
        int want = len == 0 ? KVSC_ECLOSED : KVSC_EPROTO;
        for (int drip = 0; drip < 2; drip++) {
            int rc = fake_command(cases[i].bytes, len, drip, NULL, err, sizeof err);
            if (rc != want)
                fail_msg("case %zu (drip %d) '%s': %d %s (%s), want %d", i, drip, cases[i].bytes,
                         rc, kvsc_strerror(rc), err, want);
        }
    }
}

static void test_limits(void **state)
{
    size_t n = KVSC_MAX_LINE + 8;
    char *line = malloc(n), err[512];
    kvsc_reply *r;

    (void)state;
    assert_non_null(line);
    /* A status line of exactly KVSC_MAX_LINE bytes is fine ... */
    line[0] = '+';
    memset(line + 1, 'a', KVSC_MAX_LINE);
    memcpy(line + 1 + KVSC_MAX_LINE, "\r\n", 2);
    assert_int_equal(fake_command(line, KVSC_MAX_LINE + 3, 0, &r, err, sizeof err), 0);
    assert_int_equal(r->len, KVSC_MAX_LINE);
    kvsc_reply_free(r);
    /* ... one byte more is not, and neither is a line that never ends. */
    line[1 + KVSC_MAX_LINE] = 'a';
    memcpy(line + 2 + KVSC_MAX_LINE, "\r\n", 2);
    assert_int_equal(fake_command(line, KVSC_MAX_LINE + 4, 0, NULL, err, sizeof err), KVSC_EPROTO);
    assert_non_null(strstr(err, "longer"));
    assert_int_equal(fake_command(line, KVSC_MAX_LINE + 2, 0, NULL, err, sizeof err), KVSC_EPROTO);
    free(line);

    /* Arrays nested exactly KVSC_MAX_DEPTH deep are fine. */
    static const char deep8[] = "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:7\r\n";
    assert_int_equal(fake_command(deep8, sizeof deep8 - 1, 0, &r, err, sizeof err), 0);
    for (int d = 0; d < KVSC_MAX_DEPTH; d++) {
        assert_int_equal(r->type, KVSC_REPLY_ARRAY);
        assert_int_equal(r->len, 1);
        kvsc_reply *inner = r->elem[0];
        r->elem[0] = NULL;
        kvsc_reply_free(r);
        r = inner;
    }
    assert_int_equal(r->type, KVSC_REPLY_INTEGER);
    assert_int_equal(r->integer, 7);
    kvsc_reply_free(r);
}

/* A well-formed reply of every type, sent whole and one byte at a time. */
static void test_reply_tree(void **state)
{
    static const char bytes[] = "*7\r\n$3\r\nfoo\r\n*2\r\n:-42\r\n$-1\r\n+OK\r\n$0\r\n\r\n*0\r\n"
                                "-ERR inside\r\n*-1\r\n";
    char err[512];
    kvsc_reply *r;

    (void)state;
    for (int drip = 0; drip < 2; drip++) {
        assert_int_equal(fake_command(bytes, sizeof bytes - 1, drip, &r, err, sizeof err), 0);
        assert_int_equal(r->type, KVSC_REPLY_ARRAY);
        assert_int_equal(r->len, 7);
        assert_int_equal(r->elem[0]->type, KVSC_REPLY_BULK);
        assert_string_equal(r->elem[0]->str, "foo");
        assert_int_equal(r->elem[1]->type, KVSC_REPLY_ARRAY);
        assert_int_equal(r->elem[1]->len, 2);
        assert_int_equal(r->elem[1]->elem[0]->type, KVSC_REPLY_INTEGER);
        assert_int_equal(r->elem[1]->elem[0]->integer, -42);
        assert_int_equal(r->elem[1]->elem[1]->type, KVSC_REPLY_NIL);
        assert_int_equal(r->elem[2]->type, KVSC_REPLY_STATUS);
        assert_string_equal(r->elem[2]->str, "OK");
        assert_int_equal(r->elem[3]->type, KVSC_REPLY_BULK);
        assert_int_equal(r->elem[3]->len, 0);
        assert_string_equal(r->elem[3]->str, "");
        assert_int_equal(r->elem[4]->type, KVSC_REPLY_ARRAY);
        assert_int_equal(r->elem[4]->len, 0);
        assert_int_equal(r->elem[5]->type, KVSC_REPLY_ERROR);
        assert_string_equal(r->elem[5]->str, "ERR inside");
        assert_int_equal(r->elem[6]->type, KVSC_REPLY_NIL);
        kvsc_reply_free(r);
    }
    static const char big[] = ":-9223372036854775808\r\n";
    assert_int_equal(fake_command(big, sizeof big - 1, 0, &r, err, sizeof err), 0);
    assert_true(r->integer == INT64_MIN);
    kvsc_reply_free(r);
}

/* Bytes beyond the reply that was asked for put the stream out of step. */
static void test_unsolicited(void **state)
{
    static const char bytes[] = "+OK\r\n+EXTRA\r\n";
    const char *ping[] = {"PING"};
    char addr[64];
    kvsc_conn *c;
    kvsc_reply *r;
    fake f;

    (void)state;
    fake_start(&f, bytes, sizeof bytes - 1, 0, addr, sizeof addr);
    assert_int_equal(kvsc_connect(addr, 2000, &c), 0);
    assert_int_equal(kvsc_command(c, 1, ping, NULL, &r), 0);
    kvsc_reply_free(r);
    usleep(50000);  /* let the extra bytes arrive if they came apart */
    assert_int_equal(kvsc_command(c, 1, ping, NULL, &r), KVSC_EPROTO);
    kvsc_close(c);
    fake_stop(&f);
}

static void on_aproto(kvsc_async *a, int status, kvsc_reply *r, void *data)
{
    int *got = data;

    (void)r;
    *got = status;
    kvsc_async_close(a);
}

static void test_async_malformed(void **state)
{
    static const char bytes[] = "?what\r\n";
    const char *ping[] = {"PING"};
    char addr[64];
    uv_loop_t loop;
    kvsc_async *a;
    int got = 1;
    fake f;

    (void)state;
    fake_start(&f, bytes, sizeof bytes - 1, 0, addr, sizeof addr);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(kvsc_async_connect(&loop, addr, NULL, NULL, &a), 0);
    assert_int_equal(kvsc_async_command(a, 1, ping, NULL, on_aproto, &got), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(got, KVSC_EPROTO);
    assert_int_equal(uv_loop_close(&loop), 0);
    fake_stop(&f);
}

static void test_strerror(void **state)
{
    (void)state;
    for (int e = KVSC_ESTATE; e <= 0; e++)
        assert_string_not_equal(kvsc_strerror(e), "unknown error");
    assert_string_equal(kvsc_strerror(12345), "unknown error");
}

int main(void)
{
    const char *kvs = getenv("KVS_TEST_SERVER");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_get_del),
        cmocka_unit_test(test_missing),
        cmocka_unit_test(test_binary),
        cmocka_unit_test(test_big_value),
        cmocka_unit_test(test_command),
        cmocka_unit_test(test_pipeline),
        cmocka_unit_test(test_pipeline_reads_while_writing),
        cmocka_unit_test(test_async),
        cmocka_unit_test(test_async_close_cancels),
        cmocka_unit_test(test_async_refused),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_bad_addresses),
        cmocka_unit_test(test_read_timeout),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_reply_tree),
        cmocka_unit_test(test_unsolicited),
        cmocka_unit_test(test_async_malformed),
        cmocka_unit_test(test_strerror),
    };

    signal(SIGPIPE, SIG_IGN);  /* libuv writes with write(): see kvs/client.h */
    if (!(kvs && *kvs) && access(REDIS_SERVER, X_OK) != 0) {
        printf("skipped: no %s and KVS_TEST_SERVER is not set\n", REDIS_SERVER);
        return 77;
    }
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
