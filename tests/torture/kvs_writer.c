/*
 * kvs_writer.c — libkvs in a process that a test kills: the embedded half of the kill -9
 * torture (tests/integration/test_torture.py).
 *
 *   kvs_writer run  DIR [--engine E] [--sync always|everysec|never] [--segment-size BYTES]
 *                       [--compact-min-bytes BYTES] [--lanes N]
 *   kvs_writer dump DIR [--engine E]
 *
 * The parent (Python, with the oracle of tests/integration/oracle.py) makes every key and value,
 * so this program knows nothing of their format: it applies what it is told and says, on stdout,
 * when each write returned. Because an acknowledgement is printed only after kvs_set /
 * kvs_remove / kvs_write returned, a SIGKILL at any moment leaves the parent with a true record
 * of which writes the library acknowledged; the acknowledgements already in the pipe are still
 * read by the parent after the kill.
 *
 * run: open DIR, print "READY", then read commands from stdin until EOF or "Q":
 *
 *   S <id> <lane> <klen> <vlen>\n<key><value>     set
 *   D <id> <lane> <klen>\n<key>                   remove
 *   M <lane> <n>\n  then n times                  one kvs_write of n ops (a batch, as MSET)
 *       S <id> <klen> <vlen>\n<key><value>  or  D <id> <klen> 0\n<key>
 *   G <id> <lane> <klen>\n<key>                   get (a read while writing)
 *   Q\n                                           close the store and exit
 *
 * Every command goes to its lane: one thread per lane applies that lane's commands in order
 * (the parent gives each lane its own keys, so the order of a key's writes is the order they
 * were sent). A lane's queue is bounded, so a fast parent blocks on the pipe instead of piling
 * up memory here. Replies, each one write(2) to stdout (no stdio buffer a kill could lose):
 *
 *   A <id> <rc>\n                 a set or remove returned rc (0, or -1 for the remove of a
 *                                 missing key: also done; other negatives: a KVS_E* error)
 *   V <id> <rc> <vlen>\n<value>   a get: rc 0 with the value, -1 not found, else an error
 *   C <0|1>\n                     the store's `compacting` flag changed (polled every ms)
 *   CLOSED <rc>\n                 after Q or EOF: kvs_close's result
 *
 * dump: open DIR (reporting "OPEN <rc> <message>" and exiting 3 if it does not), print
 * "STATS <keys> <corrupt_records>", then for each "<klen>\n<key>" on stdin print
 * "V 0 <rc> <vlen>\n<value>"; at EOF close and print "CLOSED <rc>".
 *
 * Exit status: 0 after a clean close, 2 on a usage error, 3 if the store would not open, 4 on
 * malformed input or a broken pipe.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvs.h"
#include "util/syncmode.h"

#define MAX_LANES 64
#define QUEUE_CAP 64
#define MAX_BATCH 1024
#define MAX_LINE 256

/* One command for a lane; keys and values live in one allocation after the ops. */
typedef struct cmd {
    char kind;           /* 'S', 'D', 'M' or 'G' */
    size_t n;            /* ops (1 unless 'M') */
    uint64_t *ids;       /* n ids */
    kvs_op *ops;         /* n ops */
} cmd;

typedef struct lane {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    cmd *q[QUEUE_CAP];
    unsigned head, len;
    bool done;
} lane;

static kvs_t *db;
static lane lanes[MAX_LANES];
static unsigned nlanes = 4;
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static volatile int stop_monitor;

static void die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("kvs_writer: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}

/* Write all of head then body to stdout as one unit among the threads. */
static void out(const char *head, size_t hlen, const void *body, size_t blen)
{
    const char *parts[2] = {head, body};
    size_t lens[2] = {hlen, blen};

    pthread_mutex_lock(&out_mu);
    for (int i = 0; i < 2; i++) {
        size_t off = 0;
        while (off < lens[i]) {
            ssize_t w = write(1, parts[i] + off, lens[i] - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                _exit(4); /* the parent went away */
            off += (size_t)w;
        }
    }
    pthread_mutex_unlock(&out_mu);
}

static void outf(const char *fmt, ...)
{
    char line[MAX_LINE];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    out(line, (size_t)n, NULL, 0);
}

/* ---- reading stdin ---- */

static bool read_line(char *buf, size_t cap)
{
    if (!fgets(buf, (int)cap, stdin))
        return false;
    if (!strchr(buf, '\n'))
        die(4, "input line too long or cut: '%s'", buf);
    return true;
}

static void *read_bytes(size_t n)
{
    unsigned char *p = malloc(n + 1);
    if (!p)
        die(4, "out of memory for %zu bytes", n);
    if (n && fread(p, 1, n, stdin) != n)
        die(4, "input ended inside a %zu-byte payload", n);
    return p;
}

static cmd *cmd_new(char kind, size_t n)
{
    cmd *c = calloc(1, sizeof *c);
    if (!c || !(c->ids = calloc(n, sizeof *c->ids)) || !(c->ops = calloc(n, sizeof *c->ops)))
        die(4, "out of memory");
    c->kind = kind;
    c->n = n;
    return c;
}

static void cmd_free(cmd *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free((void *)c->ops[i].key);
        free((void *)c->ops[i].val);
    }
    free(c->ids);
    free(c->ops);
    free(c);
}

/* One op of kind 'S' or 'D' with its key (and value) read from stdin. */
static void op_fill(kvs_op *op, char kind, size_t klen, size_t vlen)
{
    op->type = kind == 'D' ? KVS_OP_REMOVE : KVS_OP_SET;
    op->klen = klen;
    op->key = read_bytes(klen);
    if (kind == 'S') {
        op->vlen = vlen;
        op->val = read_bytes(vlen);
    }
}

/* ---- lanes ---- */

static void lane_push(lane *l, cmd *c)
{
    pthread_mutex_lock(&l->mu);
    while (l->len == QUEUE_CAP)
        pthread_cond_wait(&l->cv, &l->mu);
    l->q[(l->head + l->len++) % QUEUE_CAP] = c;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

/* The next command, or NULL once the lane is done and drained. */
static cmd *lane_pop(lane *l)
{
    cmd *c = NULL;
    pthread_mutex_lock(&l->mu);
    while (l->len == 0 && !l->done)
        pthread_cond_wait(&l->cv, &l->mu);
    if (l->len) {
        c = l->q[l->head];
        l->head = (l->head + 1) % QUEUE_CAP;
        l->len--;
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return c;
}

static void run_get(cmd *c)
{
    void *val = NULL;
    size_t vlen = 0;
    char head[MAX_LINE];
    int rc = kvs_get(db, c->ops[0].key, c->ops[0].klen, &val, &vlen);
    int n = snprintf(head, sizeof head, "V %" PRIu64 " %d %zu\n", c->ids[0], rc,
                     rc == 0 ? vlen : 0);
    out(head, (size_t)n, val, rc == 0 ? vlen : 0);
    kvs_free(val);
}

static void run_write(cmd *c)
{
    kvs_op *op = &c->ops[0];

    if (c->kind == 'M')
        kvs_write(db, c->ops, c->n);
    else if (op->type == KVS_OP_SET)
        op->rc = kvs_set(db, op->key, op->klen, op->val, op->vlen);
    else
        op->rc = kvs_remove(db, op->key, op->klen);
    for (size_t i = 0; i < c->n; i++)
        outf("A %" PRIu64 " %d\n", c->ids[i], c->ops[i].rc);
}

static void *lane_main(void *arg)
{
    lane *l = arg;
    cmd *c;

    while ((c = lane_pop(l)) != NULL) {
        if (c->kind == 'G')
            run_get(c);
        else
            run_write(c);
        cmd_free(c);
    }
    return NULL;
}

/* Polls the compacting flag so the parent can kill in the middle of a compaction. */
static void *monitor_main(void *arg)
{
    int last = 0;
    struct timespec ms = {0, 1000000};

    (void)arg;
    while (!stop_monitor) {
        kvs_stats st;
        if (kvs_stats_get(db, &st) == 0 && st.compacting != last) {
            last = st.compacting;
            outf("C %d\n", last);
        }
        nanosleep(&ms, NULL);
    }
    return NULL;
}

static lane *lane_of(unsigned long i)
{
    if (i >= nlanes)
        die(4, "lane %lu out of range (%u lanes)", i, nlanes);
    return &lanes[i];
}

/* Parse one command from stdin and queue it; false at EOF or Q. */
static bool read_command(void)
{
    char line[MAX_LINE], kind;
    unsigned long long id;
    unsigned long ln;
    size_t klen, vlen = 0, n;
    cmd *c;

    if (!read_line(line, sizeof line) || line[0] == 'Q')
        return false;
    kind = line[0];
    if (kind == 'S' && sscanf(line, "S %llu %lu %zu %zu", &id, &ln, &klen, &vlen) == 4) {
        c = cmd_new('S', 1);
        c->ids[0] = id;
        op_fill(&c->ops[0], 'S', klen, vlen);
    } else if ((kind == 'D' || kind == 'G') &&
               sscanf(line + 1, " %llu %lu %zu", &id, &ln, &klen) == 3) {
        c = cmd_new(kind, 1);
        c->ids[0] = id;
        op_fill(&c->ops[0], 'D', klen, 0);
    } else if (kind == 'M' && sscanf(line, "M %lu %zu", &ln, &n) == 2 && n >= 1 &&
               n <= MAX_BATCH) {
        c = cmd_new('M', n);
        for (size_t i = 0; i < n; i++) {
            char k;
            if (!read_line(line, sizeof line) ||
                sscanf(line, "%c %llu %zu %zu", &k, &id, &klen, &vlen) != 4 ||
                (k != 'S' && k != 'D'))
                die(4, "bad batch entry '%s'", line);
            c->ids[i] = id;
            op_fill(&c->ops[i], k, klen, vlen);
        }
    } else {
        die(4, "bad command '%s'", line);
    }
    lane_push(lane_of(ln), c);
    return true;
}

/* ---- the two modes ---- */

static int open_store(const char *dir, kvs_options *opt)
{
    int rc;
    if ((rc = kvs_create(&db)) < 0 || (rc = kvs_configure(db, opt)) < 0 ||
        (rc = kvs_open(db, dir)) < 0) {
        outf("OPEN %d %s: %s\n", rc, kvs_strerror(rc), kvs_last_error());
        kvs_close(db);
        return rc;
    }
    return 0;
}

static int mode_run(const char *dir, kvs_options *opt)
{
    pthread_t mon;
    int rc;

    if (open_store(dir, opt) < 0)
        return 3;
    for (unsigned i = 0; i < nlanes; i++) {
        pthread_mutex_init(&lanes[i].mu, NULL);
        pthread_cond_init(&lanes[i].cv, NULL);
        if (pthread_create(&lanes[i].thread, NULL, lane_main, &lanes[i]) != 0)
            die(4, "cannot start a lane thread");
    }
    /* READY first: a compaction may start as soon as the store is open (the maintenance
     * thread is woken at open), and the monitor's "C 1" must not come before it */
    outf("READY %d\n", (int)getpid());
    if (pthread_create(&mon, NULL, monitor_main, NULL) != 0)
        die(4, "cannot start the monitor thread");
    while (read_command())
        ;
    for (unsigned i = 0; i < nlanes; i++) {
        pthread_mutex_lock(&lanes[i].mu);
        lanes[i].done = true;
        pthread_cond_broadcast(&lanes[i].cv);
        pthread_mutex_unlock(&lanes[i].mu);
    }
    for (unsigned i = 0; i < nlanes; i++)
        pthread_join(lanes[i].thread, NULL);
    stop_monitor = 1;
    pthread_join(mon, NULL);
    rc = kvs_close(db);
    outf("CLOSED %d\n", rc);
    return rc == 0 ? 0 : 4;
}

static int mode_dump(const char *dir, kvs_options *opt)
{
    char line[MAX_LINE];
    kvs_stats st;
    int rc;

    if (open_store(dir, opt) < 0)
        return 3;
    if ((rc = kvs_stats_get(db, &st)) < 0)
        memset(&st, 0, sizeof st);
    outf("STATS %" PRIu64 " %" PRIu64 "\n", st.keys, st.corrupt_records);
    while (read_line(line, sizeof line)) {
        size_t klen;
        char head[MAX_LINE];
        void *key, *val = NULL;
        size_t vlen = 0;
        if (sscanf(line, "%zu", &klen) != 1)
            die(4, "bad key line '%s'", line);
        key = read_bytes(klen);
        rc = kvs_get(db, key, klen, &val, &vlen);
        int n = snprintf(head, sizeof head, "V 0 %d %zu\n", rc, rc == 0 ? vlen : 0);
        out(head, (size_t)n, val, rc == 0 ? vlen : 0);
        kvs_free(val);
        free(key);
    }
    rc = kvs_close(db);
    outf("CLOSED %d\n", rc);
    return rc == 0 ? 0 : 4;
}

static uint64_t parse_size(const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end)
        die(2, "bad size '%s'", s);
    return v;
}

int main(int argc, char **argv)
{
    kvs_options opt;

    if (argc < 3 || (strcmp(argv[1], "run") != 0 && strcmp(argv[1], "dump") != 0))
        die(2, "usage: kvs_writer run|dump DIR [--engine E] [--sync S] [--segment-size B] "
               "[--compact-min-bytes B] [--lanes N]");
    kvs_options_init(&opt);
    kvs_log_set_level(KVS_LOG_WARN);
    for (int i = 3; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            die(2, "%s needs a value", f);
        i++;
        if (strcmp(f, "--engine") == 0)
            opt.engine = v;
        else if (strcmp(f, "--sync") == 0 && sync_mode_parse(v, &opt.sync) == 0)
            ;
        else if (strcmp(f, "--segment-size") == 0)
            opt.segment_size = parse_size(v);
        else if (strcmp(f, "--compact-min-bytes") == 0)
            opt.compact_min_bytes = parse_size(v);
        else if (strcmp(f, "--lanes") == 0 && (nlanes = (unsigned)parse_size(v)) >= 1 &&
                 nlanes <= MAX_LANES)
            ;
        else
            die(2, "bad option %s %s", f, v);
    }
    if (strcmp(argv[1], "run") == 0)
        return mode_run(argv[2], &opt);
    kvs_log_set_level(KVS_LOG_INFO); /* what recovery did at reopen, for the test to count */
    return mode_dump(argv[2], &opt);
}
