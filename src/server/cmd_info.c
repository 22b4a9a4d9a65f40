/*
 * cmd_info.c — INFO, in the sections, field names and units Redis 7 gives, so that what reads
 * Redis's INFO — redis_exporter, Grafana's Redis data source, RedisInsight, `redis-cli --stat` —
 * reads kvs's. A field of Redis's is given only where it means the same thing in kvs (a kvs
 * figure with no Redis twin gets a name of its own, never a Redis name with another meaning), and
 * in Redis's type: redis-py's parse_info turns each into the same Python type for both.
 *
 * Sections, in Redis's order: server clients memory persistence stats replication cpu
 * commandstats latencystats cluster keyspace, then kvs (the engine: segments, compaction, the
 * key index; "engine" names it too). No argument or "default" gives all but commandstats and
 * latencystats; "all" and "everything" give every one; else the sections named (any case, any
 * number of names; an unknown one adds nothing), always in that order — as Redis 7 does.
 *
 * Where the numbers come from:
 *   - per loop (stats.h): commands, their time, errors, keyspace hits and misses, network bytes.
 *     Each loop writes its own without locks; INFO sums them with atomic loads.
 *   - the engine (kvs_stats): keys, expiring keys, expired keys, writes, syncs, segments.
 *   - the process: mallinfo2 (used_memory: bytes the allocator handed out, as Redis's allocator
 *     counts them), /proc/self/statm (used_memory_rss), getrusage (CPU).
 *   - the acceptor's thread, every INFO_SAMPLE_MS (info_sample): instantaneous_ops_per_sec and
 *     the kbps, each the mean of the last INFO_SAMPLES rates, as Redis's serverCron does, and
 *     used_memory_peak (sampled there and at each INFO: a peak between samples can be missed).
 *
 * What is not Redis's (docs/commands.md, INFO): avg_ttl is 0 (kvs does not sample TTLs); a
 * command queued in MULTI is counted when queued; latencystats give each call of a run the
 * run's mean (stats.h).
 */
#include <inttypes.h>
#include <stddef.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "server/cmd.h"
#include "util/array.h"
#include "util/clock.h"
#include "util/invariant.h"
#include "util/syncmode.h"

/* ---- the loops' counters ---- */

int info_loop_init(worker *w)
{
    w->stats = (loop_stats){0};
    w->stats.cmd = calloc(cmd_count(), sizeof *w->stats.cmd);
    return w->stats.cmd ? 0 : -1;
}

void info_loop_fini(worker *w)
{
    if (!w->stats.cmd)
        return;
    for (size_t i = 0; i < cmd_count(); i++)
        free(w->stats.cmd[i].lat);
    free(w->stats.cmd);
    w->stats.cmd = NULL;
}

static cmd_stat *stat_of(conn *c, const command *k)
{
    return &c->w->stats.cmd[cmd_index(k)];
}

void stats_run_close(conn *c, uint64_t now)
{
    loop_stats *ls = &c->w->stats;
    cmd_stat *st = stat_of(c, c->run_cmd);
    uint64_t ns = now > c->run_t0 ? now - c->run_t0 : 0, n = c->run_n;

    KVS_ASSERT(worker_on_loop(c->w) && n > 0);
    STAT_ADD(st->calls, n);
    STAT_ADD(st->ns, ns);
    STAT_ADD(ls->commands, n);
    if (!st->lat) { /* once per command and loop; a malloc failure only loses latencies */
        kb_hist *h = malloc(sizeof *h);
        if (!h)
            return;
        kb_hist_init(h);
        __atomic_store_n(&st->lat, h, __ATOMIC_RELEASE);
    }
    kb_hist_add_n(st->lat, ns / n, n);
}

void stats_buffers(conn *c, uint64_t now)
{
    uint64_t sec = now / 1000000000u, in = c->qcap;
    uint64_t out = c->out.bytes + c->inflight + c->held_bytes;
    buf_peak *p = &c->w->stats.peak[sec % PEAK_SLOTS];

    if (p->sec != sec) {
        STAT_ZERO(p->in);
        STAT_ZERO(p->out);
        __atomic_store_n(&p->sec, sec, __ATOMIC_RELAXED);
    }
    if (in > p->in)
        __atomic_store_n(&p->in, in, __ATOMIC_RELAXED);
    if (out > p->out)
        __atomic_store_n(&p->out, out, __ATOMIC_RELAXED);
}

/* The largest buffers of the last PEAK_SLOTS seconds, over the loops. */
static void buffers_recent(server *s, uint64_t *in, uint64_t *out)
{
    uint64_t sec = clock_nsec() / 1000000000u;

    *in = *out = 0;
    for (int i = 0; i < s->nworkers; i++)
        for (int k = 0; k < PEAK_SLOTS; k++) {
            buf_peak *p = &s->workers[i].stats.peak[k];
            if (sec - STAT_GET(p->sec) >= PEAK_SLOTS)
                continue;
            *in = STAT_GET(p->in) > *in ? STAT_GET(p->in) : *in;
            *out = STAT_GET(p->out) > *out ? STAT_GET(p->out) : *out;
        }
}

void stats_failed(conn *c, const command *k)
{
    STAT_ADD(stat_of(c, k)->failed, 1);
}

void stats_rejected(conn *c, const command *k)
{
    STAT_ADD(stat_of(c, k)->rejected, 1);
    STAT_ADD(c->w->stats.rejected, 1);
}

/* Zero a loop's counters, on its own thread (gauges stay: blocked). */
static void loop_reset(worker *w)
{
    loop_stats *ls = &w->stats;

    KVS_ASSERT(worker_on_loop(w));
    STAT_ZERO(ls->commands);
    STAT_ZERO(ls->rejected);
    STAT_ZERO(ls->net_in);
    STAT_ZERO(ls->net_out);
    STAT_ZERO(ls->errors);
    STAT_ZERO(ls->hits);
    STAT_ZERO(ls->misses);
    for (size_t i = 0; i < cmd_count(); i++) {
        cmd_stat *st = &ls->cmd[i];
        STAT_ZERO(st->calls);
        STAT_ZERO(st->ns);
        STAT_ZERO(st->rejected);
        STAT_ZERO(st->failed);
        if (st->lat)
            kb_hist_reset(st->lat);
    }
}

void info_loop_turn(worker *w)
{
    bool reset;

    pthread_mutex_lock(&w->mu);
    reset = w->stats.reset;
    w->stats.reset = false;
    pthread_mutex_unlock(&w->mu);
    if (reset)
        loop_reset(w);
}

void info_reset_stats(server *s, worker *self)
{
    kvs_stats st;

    if (self)
        loop_reset(self);
    for (int i = 0; i < s->nworkers; i++) {
        worker *w = &s->workers[i];
        if (w == self)
            continue;
        pthread_mutex_lock(&w->mu);
        w->stats.reset = true;
        pthread_mutex_unlock(&w->mu);
        uv_async_send(&w->wake);
    }
    __atomic_store_n(&s->st.connections_received, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->st.rejected, 0, __ATOMIC_RELAXED);
    if (kvs_stats_get(s->db, &st) == 0)
        __atomic_store_n(&s->info.expired_base, st.expired_keys, __ATOMIC_RELAXED);
}

/* A counter of loop_stats (at offset off) summed over the loops. */
static uint64_t loops_sum(server *s, size_t off)
{
    uint64_t sum = 0;

    for (int i = 0; i < s->nworkers; i++)
        sum += __atomic_load_n((uint64_t *)((char *)&s->workers[i].stats + off), __ATOMIC_RELAXED);
    return sum;
}

#define SUM(s, field) loops_sum(s, offsetof(loop_stats, field))

/* ---- memory ---- */

/* A sanitizer build replaces malloc (glibc's arenas then stay empty): its runtime counts. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZER_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZER_MALLOC 1
#endif
#endif

#ifdef SANITIZER_MALLOC
size_t __sanitizer_get_current_allocated_bytes(void); /* sanitizer/allocator_interface.h */
#define MEM_ALLOCATOR "sanitizer"
#else
#define MEM_ALLOCATOR "libc"
#endif

/* Bytes the allocator handed out and not taken back (glibc: in use in its arenas, and the
 * chunks it mmapped) — what Redis's used_memory counts through its allocator. */
static uint64_t used_memory(void)
{
#ifdef SANITIZER_MALLOC
    return __sanitizer_get_current_allocated_bytes();
#else
    struct mallinfo2 m = mallinfo2();
    return (uint64_t)m.uordblks + (uint64_t)m.hblkhd;
#endif
}

static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, resident = 0;

    if (!f)
        return 0;
    if (fscanf(f, "%llu %llu", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static uint64_t peak_update(server *s, uint64_t used)
{
    uint64_t peak = __atomic_load_n(&s->info.peak_memory, __ATOMIC_RELAXED);

    while (used > peak &&
           !__atomic_compare_exchange_n(&s->info.peak_memory, &peak, used, true,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
    return used > peak ? used : peak;
}

/* Redis's bytesToHuman: 968.06K, 6.73M, 0B. */
static const char *human(char *buf, size_t cap, uint64_t n)
{
    static const char units[] = "KMGTPE";
    double d = (double)n;
    int u = -1;

    if (n < 1024) {
        snprintf(buf, cap, "%" PRIu64 "B", n);
        return buf;
    }
    while (d >= 1024 && u < 5) {
        d /= 1024;
        u++;
    }
    snprintf(buf, cap, "%.2f%c", d, units[u]);
    return buf;
}

/* ---- sampling (the acceptor's thread) ---- */

static uint64_t metric_now(server *s, int m)
{
    switch (m) {
    case INFO_OPS:
        return SUM(s, commands) - SUM(s, rejected);
    case INFO_NET_IN:
        return SUM(s, net_in);
    default:
        return SUM(s, net_out);
    }
}

void info_sample(server *s)
{
    info_state *in = &s->info;
    uint64_t now = clock_usec() / 1000;

    for (int m = 0; m < INFO_METRICS; m++) {
        uint64_t v = metric_now(s, m), dt = now - in->metric[m].last_ms, sum = 0;
        /* a reset (CONFIG RESETSTAT) moves a counter back: that sample counts 0 */
        uint64_t rate = dt && v >= in->metric[m].last ? (v - in->metric[m].last) * 1000 / dt : 0;
        in->metric[m].ring[in->idx] = rate;
        in->metric[m].last = v;
        in->metric[m].last_ms = now;
        for (int i = 0; i < INFO_SAMPLES; i++)
            sum += in->metric[m].ring[i];
        __atomic_store_n(&in->rate[m], sum / INFO_SAMPLES, __ATOMIC_RELAXED);
    }
    in->idx = (in->idx + 1) % INFO_SAMPLES;
    if (++in->ticks % 10 == 0) /* mallinfo2 walks the arenas: once a second is enough */
        peak_update(s, used_memory());
}

/* ---- start ---- */

void info_init(server *s)
{
    unsigned char r[20];

    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) { /* no entropy: time and pid differ */
        uint64_t x = clock_usec() ^ ((uint64_t)getpid() << 40);
        for (size_t i = 0; i < sizeof r; i++, x = x * 6364136223846793005ull + 1)
            r[i] = (unsigned char)(x >> 56);
    }
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(s->info.run_id + 2 * i, 3, "%02x", r[i]);
    uint64_t now = clock_usec() / 1000;
    for (int m = 0; m < INFO_METRICS; m++)
        s->info.metric[m].last_ms = now;
}

/* ---- the reply's text ---- */

typedef struct text {
    char *p;
    size_t len, cap;
} text;

static void tprintf(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void tprintf(text *t, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        if (ARR_RESERVE(t->p, t->cap, t->len + (size_t)n + 1) < 0)
            return;
    }
}

typedef struct info {
    conn *c;
    server *s;
    text t;
    kvs_stats st; /* zeroed if the engine cannot say */
} info;

#define U(x) ((unsigned long long)(x))

/* ---- the sections ---- */

/* config_file: the absolute path of the file --config read, "" without one (set at start,
 * never changed: no lock). */
static const char *config_file(const server *s)
{
    return s->cfg->config_file ? s->cfg->config_file : "";
}

static void sec_server(info *in)
{
    server *s = in->s;
    struct utsname un;
    struct timeval tv;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    uint64_t up = (clock_usec() - s->start_usec) / 1000000;
    const char *port = strrchr(s->bound, ':');

    exe[n > 0 ? n : 0] = '\0';
    if (uname(&un) < 0)
        memset(&un, 0, sizeof un);
    gettimeofday(&tv, NULL);
    tprintf(&in->t,
            "# Server\r\nredis_version:7.0.0\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\n"
            "kvs_version:%s\r\nredis_mode:standalone\r\nos:%s %s %s\r\narch_bits:%d\r\n"
            "monotonic_clock:POSIX clock_gettime\r\nmultiplexing_api:epoll\r\n"
            "atomicvar_api:c11-builtin\r\ngcc_version:%d.%d.%d\r\nprocess_id:%d\r\n"
            "process_supervised:no\r\nrun_id:%s\r\ntcp_port:%s\r\nserver_time_usec:%llu\r\n"
            "uptime_in_seconds:%llu\r\nuptime_in_days:%llu\r\nhz:%d\r\nconfigured_hz:%d\r\n"
            "executable:%s\r\nconfig_file:%s\r\nio_threads_active:%d\r\nloop_threads:%d\r\n"
            "\r\n",
            KVS_VERSION_STRING, un.sysname, un.release, un.machine, (int)(sizeof(long) * 8),
            __GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__, (int)getpid(), s->info.run_id,
            port ? port + 1 : s->bound, U(tv.tv_sec) * 1000000 + U(tv.tv_usec), U(up),
            U(up / 86400), 1000 / INFO_SAMPLE_MS, 1000 / INFO_SAMPLE_MS, exe, config_file(s),
            s->nworkers > 1, s->nworkers);
}

/* The buffers: a connection's query buffer (allocated) and its output not yet sent, the largest
 * of the last 8 s, as Redis; noted when the query buffer grows and when a pass over the input
 * ran commands. */
static void sec_clients(info *in)
{
    server *s = in->s;
    uint64_t max_in, max_out;

    buffers_recent(s, &max_in, &max_out);
    tprintf(&in->t,
            "# Clients\r\nconnected_clients:%llu\r\ncluster_connections:0\r\nmaxclients:%u\r\n"
            "client_recent_max_input_buffer:%llu\r\nclient_recent_max_output_buffer:%llu\r\n"
            "blocked_clients:%llu\r\ntracking_clients:0\r\n\r\n",
            U(__atomic_load_n(&s->st.clients, __ATOMIC_RELAXED)),
            __atomic_load_n(&s->maxclients, __ATOMIC_RELAXED), U(max_in),
            U(max_out), U(SUM(s, blocked)));
}

static void sec_memory(info *in)
{
    uint64_t used = used_memory(), rss = rss_bytes(), peak = peak_update(in->s, used);
    uint64_t total = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
    char h1[32], h2[32], h3[32], h4[32];

    tprintf(&in->t,
            "# Memory\r\nused_memory:%llu\r\nused_memory_human:%s\r\nused_memory_rss:%llu\r\n"
            "used_memory_rss_human:%s\r\nused_memory_peak:%llu\r\nused_memory_peak_human:%s\r\n"
            "used_memory_peak_perc:%.2f%%\r\ntotal_system_memory:%llu\r\n"
            "total_system_memory_human:%s\r\nmaxmemory:0\r\nmaxmemory_human:0B\r\n"
            "maxmemory_policy:noeviction\r\nmem_fragmentation_ratio:%.2f\r\n"
            "mem_fragmentation_bytes:%lld\r\nmem_allocator:%s\r\n\r\n",
            U(used), human(h1, sizeof h1, used), U(rss), human(h2, sizeof h2, rss), U(peak),
            human(h3, sizeof h3, peak), peak ? 100.0 * (double)used / (double)peak : 0.0,
            U(total), human(h4, sizeof h4, total), used ? (double)rss / (double)used : 0.0,
            (long long)rss - (long long)used, MEM_ALLOCATOR);
}

/* The loops' commit latencies (write batches: commit to release of their replies), merged. */
static kb_hist *commit_latency(server *s)
{
    kb_hist *h = malloc(sizeof *h);

    if (!h)
        return NULL;
    kb_hist_init(h);
    for (int i = 0; i < s->nworkers; i++) {
        worker *w = &s->workers[i];
        pthread_mutex_lock(&w->hist_mu);
        kb_hist_merge(h, &w->commit_hist);
        pthread_mutex_unlock(&w->hist_mu);
    }
    return h;
}

static void sec_persistence(info *in)
{
    server *s = in->s;
    const kvs_stats *st = &in->st;
    uint64_t durable;
    kb_hist *h = commit_latency(s);
    server_save_status sv;

    server_save_get(s, &sv);
    int64_t current = sv.in_progress ? (int64_t)time(NULL) - sv.bg_started : -1;
    bool fenced = kvs_durable(s->db, &durable) == KVS_ESYNC;
    tprintf(&in->t,
            "# Persistence\r\nloading:0\r\nasync_loading:0\r\nrdb_changes_since_last_save:%llu\r\n"
            "rdb_bgsave_in_progress:%d\r\nrdb_last_save_time:%lld\r\nrdb_last_bgsave_status:%s\r\n"
            "rdb_last_bgsave_time_sec:%lld\r\nrdb_current_bgsave_time_sec:%lld\r\nrdb_saves:%llu\r\n"
            "aof_enabled:1\r\naof_rewrite_in_progress:0\r\naof_rewrite_scheduled:0\r\n"
            "aof_last_bgrewrite_status:ok\r\naof_rewrites:0\r\naof_last_write_status:%s\r\n"
            "sync_mode:%s\r\nsyncs:%llu\r\nfsyncs:%llu\r\ndurable_syncs:%llu\r\n"
            "writes_per_fsync:%.2f\r\ndurable_lag_bytes:%llu\r\ndurable_lag_usec:%llu\r\n"
            "commit_batches:%llu\r\ncommit_latency_p50_usec:%.1f\r\n"
            "commit_latency_p99_usec:%.1f\r\ncommit_latency_p999_usec:%.1f\r\n\r\n",
            U(sv.changes), sv.in_progress, (long long)sv.last_save,
            sv.last_status == 0 ? "ok" : "err", (long long)sv.last_secs,
            (long long)current, U(sv.saves), fenced ? "err" : "ok", sync_mode_name(st->sync),
            U(st->syncs), U(st->syncs), U(st->durable_syncs),
            st->durable_syncs ? (double)st->durable_writes / (double)st->durable_syncs : 0.0,
            U(st->lag_bytes), U(st->lag_usec), U(h ? h->count : 0),
            h ? kb_hist_percentile(h, 50) / 1000 : 0.0, h ? kb_hist_percentile(h, 99) / 1000 : 0.0,
            h ? kb_hist_percentile(h, 99.9) / 1000 : 0.0);
    free(h);
}

static void sec_stats(info *in)
{
    server *s = in->s;
    uint64_t expired_base = __atomic_load_n(&s->info.expired_base, __ATOMIC_RELAXED);
    uint64_t expired = in->st.expired_keys > expired_base ? in->st.expired_keys - expired_base : 0;

    tprintf(&in->t,
            "# Stats\r\ntotal_connections_received:%llu\r\ntotal_commands_processed:%llu\r\n"
            "instantaneous_ops_per_sec:%llu\r\ntotal_net_input_bytes:%llu\r\n"
            "total_net_output_bytes:%llu\r\ninstantaneous_input_kbps:%.2f\r\n"
            "instantaneous_output_kbps:%.2f\r\nrejected_connections:%llu\r\nexpired_keys:%llu\r\n"
            "evicted_keys:0\r\nkeyspace_hits:%llu\r\nkeyspace_misses:%llu\r\npubsub_channels:0\r\n"
            "pubsub_patterns:0\r\nlatest_fork_usec:0\r\ntotal_forks:0\r\n"
            "total_error_replies:%llu\r\n\r\n",
            U(__atomic_load_n(&s->st.connections_received, __ATOMIC_RELAXED)),
            U(metric_now(s, INFO_OPS)), U(__atomic_load_n(&s->info.rate[INFO_OPS], __ATOMIC_RELAXED)),
            U(SUM(s, net_in)), U(SUM(s, net_out)),
            (double)__atomic_load_n(&s->info.rate[INFO_NET_IN], __ATOMIC_RELAXED) / 1024,
            (double)__atomic_load_n(&s->info.rate[INFO_NET_OUT], __ATOMIC_RELAXED) / 1024,
            U(__atomic_load_n(&s->st.rejected, __ATOMIC_RELAXED)), U(expired), U(SUM(s, hits)),
            U(SUM(s, misses)), U(SUM(s, errors)));
}

/* There are no replicas: what tools read to tell a master (role, connected_slaves). */
static void sec_replication(info *in)
{
    tprintf(&in->t, "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n"
                    "master_failover_state:no-failover\r\nmaster_replid:%s\r\n"
                    "master_repl_offset:0\r\nrepl_backlog_active:0\r\n\r\n",
            in->s->info.run_id);
}

static double tv_sec(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void sec_cpu(info *in)
{
    struct rusage self = {0}, children = {0};

    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &children);
    tprintf(&in->t,
            "# CPU\r\nused_cpu_sys:%.6f\r\nused_cpu_user:%.6f\r\nused_cpu_sys_children:%.6f\r\n"
            "used_cpu_user_children:%.6f\r\n\r\n",
            tv_sec(self.ru_stime), tv_sec(self.ru_utime), tv_sec(children.ru_stime),
            tv_sec(children.ru_utime));
}

/* One command's counts over the loops: calls (rejected ones taken out, as Redis never counts
 * them as calls), time in ns, rejected, failed; and, if lat, its latencies merged into *lat. */
typedef struct cmd_sum {
    uint64_t calls, ns, rejected, failed;
} cmd_sum;

static cmd_sum cmd_total(server *s, size_t k, kb_hist *lat)
{
    cmd_sum t = {0};

    for (int i = 0; i < s->nworkers; i++) {
        cmd_stat *st = &s->workers[i].stats.cmd[k];
        t.calls += STAT_GET(st->calls);
        t.ns += STAT_GET(st->ns);
        t.rejected += STAT_GET(st->rejected);
        t.failed += STAT_GET(st->failed);
        kb_hist *h = __atomic_load_n(&st->lat, __ATOMIC_ACQUIRE);
        if (lat && h)
            kb_hist_merge(lat, h);
    }
    t.calls = t.calls > t.rejected ? t.calls - t.rejected : 0;
    return t;
}

static void sec_commandstats(info *in)
{
    tprintf(&in->t, "# Commandstats\r\n");
    for (size_t k = 0; k < cmd_count(); k++) {
        cmd_sum t = cmd_total(in->s, k, NULL);
        if (t.calls == 0 && t.rejected == 0)
            continue;
        tprintf(&in->t, "cmdstat_%s:calls=%llu,usec=%llu,usec_per_call=%.2f,rejected_calls=%llu,"
                        "failed_calls=%llu\r\n",
                cmd_at(k)->name, U(t.calls), U(t.ns / 1000),
                t.calls ? (double)t.ns / 1000.0 / (double)t.calls : 0.0, U(t.rejected),
                U(t.failed));
    }
    tprintf(&in->t, "\r\n");
}

static void sec_latencystats(info *in)
{
    kb_hist *h = malloc(sizeof *h);

    tprintf(&in->t, "# Latencystats\r\n");
    for (size_t k = 0; h && k < cmd_count(); k++) {
        kb_hist_init(h);
        cmd_total(in->s, k, h);
        if (h->count == 0)
            continue;
        tprintf(&in->t, "latency_percentiles_usec_%s:p50=%.3f,p99=%.3f,p99.9=%.3f\r\n",
                cmd_at(k)->name, kb_hist_percentile(h, 50) / 1000,
                kb_hist_percentile(h, 99) / 1000, kb_hist_percentile(h, 99.9) / 1000);
    }
    tprintf(&in->t, "\r\n");
    free(h);
}

static void sec_cluster(info *in)
{
    tprintf(&in->t, "# Cluster\r\ncluster_enabled:0\r\n\r\n");
}

/* avg_ttl: 0, "not known" in Redis's own terms (it says 0 when it has no estimate). */
static void sec_keyspace(info *in)
{
    tprintf(&in->t, "# Keyspace\r\n");
    if (in->st.keys)
        tprintf(&in->t, "db0:keys=%llu,expires=%llu,avg_ttl=0\r\n", U(in->st.keys),
                U(in->st.expiring_keys));
    tprintf(&in->t, "\r\n");
}

/* The engine: what kvs has and Redis does not. The key index: its exact bytes, per key, its
 * budget (0: none) and the new keys that still fit under it (-1: no budget). */
static void sec_kvs(info *in)
{
    const kvs_stats *st = &in->st;

    tprintf(&in->t,
            "# kvs\r\nengine:%s\r\nsync:%s\r\nkeys:%llu\r\nexpiring_keys:%llu\r\nlive_bytes:%llu\r\n"
            "dead_bytes:%llu\r\ndisk_bytes:%llu\r\nsegments:%llu\r\ncompactions:%llu\r\n"
            "compact_reclaimed_bytes:%llu\r\ncompact_last_usec:%llu\r\ncompacting:%d\r\n"
            "compact_done_bytes:%llu\r\ncompact_todo_bytes:%llu\r\ncompact_paced_usec:%llu\r\n"
            "writes:%llu\r\nsyncs:%llu\r\ncorrupt_reads:%llu\r\ncorrupt_records:%llu\r\n"
            "index_bytes:%llu\r\nindex_bytes_per_key:%.2f\r\nindex_max_bytes:%llu\r\n"
            "index_keys_left:%lld\r\n\r\n",
            st->engine, sync_mode_name(st->sync), U(st->keys), U(st->expiring_keys),
            U(st->live_bytes), U(st->dead_bytes), U(st->disk_bytes), U(st->segments),
            U(st->compactions), U(st->compact_reclaimed), U(st->compact_last_usec),
            st->compacting, U(st->compact_done_bytes), U(st->compact_todo_bytes),
            U(st->compact_paced_usec), U(st->writes), U(st->syncs), U(st->corrupt_reads),
            U(st->corrupt_records), U(st->index_bytes),
            st->keys ? (double)st->index_bytes / (double)st->keys : 0.0, U(st->index_max_bytes),
            st->index_keys_left == UINT64_MAX ? -1ll : (long long)st->index_keys_left);
}

/* Redis's order. dflt: in INFO, INFO default; every one is in "all" and "everything". */
static const struct section {
    const char *name, *alias;
    bool dflt;
    void (*emit)(info *in);
} sections[] = {
    {"server", NULL, true, sec_server},
    {"clients", NULL, true, sec_clients},
    {"memory", NULL, true, sec_memory},
    {"persistence", NULL, true, sec_persistence},
    {"stats", NULL, true, sec_stats},
    {"replication", NULL, true, sec_replication},
    {"cpu", NULL, true, sec_cpu},
    {"commandstats", NULL, false, sec_commandstats},
    {"latencystats", NULL, false, sec_latencystats},
    {"cluster", NULL, true, sec_cluster},
    {"keyspace", NULL, true, sec_keyspace},
    {"kvs", "engine", true, sec_kvs},
};

static bool wanted(const struct section *sec, int argc, const char **argv, const size_t *lens)
{
    if (argc < 2)
        return sec->dflt;
    for (int i = 1; i < argc; i++)
        if (arg_is(argv[i], lens[i], "all") || arg_is(argv[i], lens[i], "everything") ||
            (sec->dflt && arg_is(argv[i], lens[i], "default")) ||
            arg_is(argv[i], lens[i], sec->name) ||
            (sec->alias && arg_is(argv[i], lens[i], sec->alias)))
            return true;
    return false;
}

void cmd_info(conn *c, int argc, const char **argv, const size_t *lens)
{
    info in = {.c = c, .s = c->srv, .t = {malloc(4096), 0, 4096}};

    if (!in.t.p)
        return (void)resp_error(&c->out, "ERR out of memory");
    if (kvs_stats_get(in.s->db, &in.st) < 0)
        memset(&in.st, 0, sizeof in.st);
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
        if (wanted(&sections[i], argc, argv, lens))
            sections[i].emit(&in);
    /* Redis ends the last section without the blank line */
    if (in.t.len >= 4 && memcmp(in.t.p + in.t.len - 4, "\r\n\r\n", 4) == 0)
        in.t.len -= 2;
    resp_bulk(&c->out, in.t.p, in.t.len);
    free(in.t.p);
}
