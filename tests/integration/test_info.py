#!/usr/bin/env python3
"""test_info.py -- INFO as Redis's monitoring tools read it: kvs-server beside a redis-server 7.

Usage: python3 test_info.py PATH_TO_kvs-server [unittest options]

A kvs-server (127.0.0.1, a port the kernel picks) and a redis-server 7 (appendonly yes, on a unix
socket in the test's directory: no port at all) get the same small workload through redis-py --
SETs with and without EX, GETs that hit and miss, an INCR of a non-number, a GET without its
key -- and both INFO replies are parsed by redis-py's own parser (what redis_exporter-style tools
and GUIs see). Checked:

  1. every field Redis gives in server, clients, memory, persistence, stats, replication, cpu,
     cluster and keyspace is in kvs's INFO with the same Python type -- unless it is in
     NOT_IN_KVS below, with the reason kvs does not have it (and then it must be absent, so the
     list stays true);
  2. keyspace db0 keys= and expires= are the true counts (and Redis's); no db0 line when empty;
  3. commandstats: calls, rejected_calls and failed_calls of SET, GET and INCR are the commands
     sent (and Redis's); usec_per_call is usec / calls; latencystats give p50 <= p99 <= p99.9;
     keyspace_hits/misses and total_error_replies are Redis's;
  4. INFO picks sections by name as Redis 7 does (no argument, default, all, everything, several
     names in any case, an unknown name): the same section headers, kvs's own "kvs" aside;
  5. instantaneous_ops_per_sec > 0 under load, and 0 once Redis's 1.6 s window has passed idle;
     total_net_input/output_bytes grow by at least what was sent and received;
  6. used_memory, used_memory_rss plausible: > 0, rss within 10x of /proc/PID/status VmRSS,
     peak >= used; blocked_clients counts a client blocked in WAITAOF; the recent largest input
     and output buffers see a 1 MiB SET and 16 MiB of replies a client leaves unread;
  7. `redis-cli --stat` runs against kvs for a few lines without errors (bounded, killed by pid).

Without /usr/bin/redis-server the test cannot run and exits with a message.
"""
import os
import re
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kvstest  # noqa: E402
from test_differential import REDIS_SERVER, RedisServer  # noqa: E402

import redis  # noqa: E402  (Debian: python3-redis)

SECTIONS = ("server", "clients", "memory", "persistence", "stats", "replication", "cpu",
            "cluster", "keyspace")

# Redis 7's fields kvs does not give, and why. A field here must be absent from kvs's INFO.
NO_REPLICATION = "kvs has no replication"
NO_SCRIPTING = "kvs has no Lua scripts or functions"
JEMALLOC = "jemalloc's own statistics; kvs uses glibc's malloc (used_memory is mallinfo2's)"
NO_FORK = "kvs never forks: BGSAVE is a checkpoint of hard links, no copy-on-write"
NO_AOF_REWRITE = "kvs's log is segments compacted in the background (INFO kvs: compactions)"
NOT_MEASURED = "not measured by kvs"
NO_DEFRAG = "glibc malloc: no active defragmentation"
NOT_IN_KVS = {
    # server
    "redis_build_id": "kvs is not a Redis build (kvs_version gives its version)",
    "lru_clock": "kvs keeps no per-key access time (no LRU eviction)",
    # clients
    "clients_in_timeout_table": NOT_MEASURED,
    # memory
    "used_memory_overhead": "Redis's split of memory into dataset and overhead: kvs keeps "
                            "values on disk; its index's bytes are in INFO kvs",
    "used_memory_startup": NOT_MEASURED,
    "used_memory_dataset": "values live on disk, not in memory (INFO kvs: live_bytes)",
    "used_memory_dataset_perc": "values live on disk, not in memory",
    "allocator_allocated": JEMALLOC, "allocator_active": JEMALLOC,
    "allocator_resident": JEMALLOC, "allocator_frag_ratio": JEMALLOC,
    "allocator_frag_bytes": JEMALLOC, "allocator_rss_ratio": JEMALLOC,
    "allocator_rss_bytes": JEMALLOC, "rss_overhead_ratio": JEMALLOC,
    "rss_overhead_bytes": JEMALLOC,
    "used_memory_lua": NO_SCRIPTING, "used_memory_vm_eval": NO_SCRIPTING,
    "used_memory_lua_human": NO_SCRIPTING, "used_memory_scripts_eval": NO_SCRIPTING,
    "number_of_cached_scripts": NO_SCRIPTING, "number_of_functions": NO_SCRIPTING,
    "number_of_libraries": NO_SCRIPTING, "used_memory_vm_functions": NO_SCRIPTING,
    "used_memory_vm_total": NO_SCRIPTING, "used_memory_vm_total_human": NO_SCRIPTING,
    "used_memory_functions": NO_SCRIPTING, "used_memory_scripts": NO_SCRIPTING,
    "used_memory_scripts_human": NO_SCRIPTING,
    "mem_not_counted_for_evict": "kvs does not evict",
    "mem_replication_backlog": NO_REPLICATION, "mem_total_replication_buffers": NO_REPLICATION,
    "mem_clients_slaves": NO_REPLICATION, "mem_clients_normal": NOT_MEASURED,
    "mem_cluster_links": "kvs has no cluster mode",
    "mem_aof_buffer": "writes go straight to the log: no AOF buffer",
    "active_defrag_running": NO_DEFRAG,
    "lazyfree_pending_objects": "kvs frees nothing lazily (values are on disk)",
    "lazyfreed_objects": "kvs frees nothing lazily (values are on disk)",
    # persistence
    "current_cow_peak": NO_FORK, "current_cow_size": NO_FORK, "current_cow_size_age": NO_FORK,
    "current_fork_perc": NO_FORK, "current_save_keys_processed": NO_FORK,
    "current_save_keys_total": NO_FORK, "rdb_last_cow_size": NO_FORK,
    "aof_last_cow_size": NO_FORK, "module_fork_in_progress": NO_FORK,
    "module_fork_last_cow_size": NO_FORK,
    "rdb_last_load_keys_expired": "kvs loads no RDB file: it opens its log",
    "rdb_last_load_keys_loaded": "kvs loads no RDB file: it opens its log",
    "aof_last_rewrite_time_sec": NO_AOF_REWRITE, "aof_current_rewrite_time_sec": NO_AOF_REWRITE,
    "aof_rewrites_consecutive_failures": NO_AOF_REWRITE,
    "aof_current_size": "the log is segments: INFO kvs disk_bytes",
    "aof_base_size": "the log is segments: INFO kvs disk_bytes",
    "aof_pending_rewrite": NO_AOF_REWRITE, "aof_buffer_length": "no AOF buffer",
    "aof_pending_bio_fsync": "durable_lag_bytes says what waits for a sync",
    "aof_delayed_fsync": "durable_lag_usec says how long the oldest write waits",
    # stats
    "total_net_repl_input_bytes": NO_REPLICATION, "total_net_repl_output_bytes": NO_REPLICATION,
    "instantaneous_input_repl_kbps": NO_REPLICATION,
    "instantaneous_output_repl_kbps": NO_REPLICATION,
    "sync_full": NO_REPLICATION, "sync_partial_ok": NO_REPLICATION,
    "sync_partial_err": NO_REPLICATION, "slave_expires_tracked_keys": NO_REPLICATION,
    "expired_stale_perc": "kvs's expiry sweep is not Redis's sampling cycle",
    "expired_time_cap_reached_count": "kvs's expiry sweep is not Redis's sampling cycle",
    "expire_cycle_cpu_milliseconds": "kvs's expiry sweep is not Redis's sampling cycle",
    "evicted_clients": "kvs evicts no clients (output past its limit closes one: logged)",
    "total_eviction_exceeded_time": "kvs does not evict",
    "current_eviction_exceeded_time": "kvs does not evict",
    "pubsubshard_channels": "kvs has no pub/sub",
    "migrate_cached_sockets": "kvs has no MIGRATE",
    "active_defrag_hits": NO_DEFRAG, "active_defrag_misses": NO_DEFRAG,
    "active_defrag_key_hits": NO_DEFRAG, "active_defrag_key_misses": NO_DEFRAG,
    "total_active_defrag_time": NO_DEFRAG, "current_active_defrag_time": NO_DEFRAG,
    "tracking_total_keys": "kvs has no client-side caching (CLIENT TRACKING)",
    "tracking_total_items": "kvs has no client-side caching (CLIENT TRACKING)",
    "tracking_total_prefixes": "kvs has no client-side caching (CLIENT TRACKING)",
    "unexpected_error_replies": "errors from replication or AOF loading: neither exists",
    "dump_payload_sanitizations": "kvs has no DUMP/RESTORE",
    "total_reads_processed": "kvs counts bytes read (total_net_input_bytes), not read calls",
    "total_writes_processed": "kvs counts bytes written, not write calls",
    "io_threaded_reads_processed": "every loop thread does its own I/O: no I/O thread hand-off",
    "io_threaded_writes_processed": "every loop thread does its own I/O: no I/O thread hand-off",
    "reply_buffer_shrinks": "kvs's output buffers are chunk lists, not resized buffers",
    "reply_buffer_expands": "kvs's output buffers are chunk lists, not resized buffers",
    # replication
    "master_replid2": NO_REPLICATION, "second_repl_offset": NO_REPLICATION,
    "repl_backlog_size": NO_REPLICATION, "repl_backlog_first_byte_offset": NO_REPLICATION,
    "repl_backlog_histlen": NO_REPLICATION,
    # cpu
    "used_cpu_sys_main_thread": "kvs has no main thread: its loop threads serve alike",
    "used_cpu_user_main_thread": "kvs has no main thread: its loop threads serve alike",
}

# Sections Redis has and kvs does not, and the one kvs adds.
REDIS_ONLY_SECTIONS = {"Modules": "kvs has no modules",
                       "Errorstats": "kvs counts errors (total_error_replies), not per prefix"}
KVS_ONLY_SECTIONS = {"kvs"}

SET_PLAIN, SET_EX, GET_HIT, GET_MISS = 10, 5, 5, 3


def workload(r):
    """The same commands on either server; errors are part of it."""
    for i in range(SET_PLAIN):
        r.set("k%d" % i, "v%d" % i)
    for i in range(SET_EX):
        r.set("e%d" % i, "v", ex=100)
    for i in range(GET_HIT):
        assert r.get("k%d" % i) is not None
    for i in range(GET_MISS):
        assert r.get("missing%d" % i) is None
    for args in (("INCR", "k0"), ("GET",)):  # not a number: failed; no key: rejected
        try:
            r.execute_command(*args)
            raise AssertionError("%s did not fail" % (args,))
        except redis.ResponseError:
            pass


def headers(text):
    return [m.group(1) for m in re.finditer(r"^# (\S+)", text, re.M)]


def vm_rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS for pid %d" % pid)


class InfoTest(kvstest.ServerTestCase):
    def setUp(self):
        super().setUp()
        if not os.path.exists(REDIS_SERVER):
            self.skipTest("no %s (Debian: redis-server)" % REDIS_SERVER)
        rdir = os.path.join(self.dir, "redis")
        os.mkdir(rdir)
        self.redis_srv = RedisServer(rdir, "--appendonly", "yes").start()
        self.addCleanup(self.redis_srv.stop)
        self.rd = redis.Redis(unix_socket_path=self.redis_srv.path, socket_timeout=30)
        self.addCleanup(self.rd.close)
        kdir = os.path.join(self.dir, "kvs")
        os.mkdir(kdir)
        self.srv = self.start(dir=kdir)
        self.kv = self.redis(self.srv)

    def both_info(self, section):
        return self.kv.info(section), self.rd.info(section)

    def test_fields_and_types(self):
        self.assertEqual(self.kv.info("keyspace"), {})  # no db0 line when empty, as Redis
        self.assertEqual(self.rd.info("keyspace"), {})
        workload(self.kv)
        workload(self.rd)
        missing, wrong_type, listed_but_there = [], [], []
        for section in SECTIONS:
            kv, rd = self.both_info(section)
            for field, value in rd.items():
                if field in NOT_IN_KVS:
                    if field in kv:
                        listed_but_there.append(field)
                elif field not in kv:
                    missing.append("%s.%s" % (section, field))
                elif type(kv[field]) is not type(value):
                    wrong_type.append("%s.%s: kvs %r (%s), redis %r (%s)" % (
                        section, field, kv[field], type(kv[field]).__name__, value,
                        type(value).__name__))
                elif isinstance(value, dict):
                    self.assertEqual(sorted(kv[field]), sorted(value), field)
        self.assertEqual(missing, [], "Redis fields missing from kvs's INFO")
        self.assertEqual(wrong_type, [], "fields parsed to another type than Redis's")
        self.assertEqual(listed_but_there, [], "NOT_IN_KVS names fields kvs has: update it")

        # 2. the keyspace line: true counts, and Redis's
        kv, rd = self.both_info("keyspace")
        self.assertEqual(kv["db0"]["keys"], SET_PLAIN + SET_EX)
        self.assertEqual(kv["db0"]["expires"], SET_EX)
        self.assertEqual((kv["db0"]["keys"], kv["db0"]["expires"]),
                         (rd["db0"]["keys"], rd["db0"]["expires"]))
        self.kv.persist("e0")
        self.kv.delete("e1", "k1")
        self.kv.expire("k2", 100)
        self.assertEqual(self.kv.info("keyspace")["db0"],
                         {"keys": SET_PLAIN + SET_EX - 2, "expires": SET_EX - 1, "avg_ttl": 0})

    def test_resetstat_resets_every_loop(self):
        # connections land on the loops in turn: one per loop, each running the workload, so
        # CONFIG RESETSTAT on one of them must reach the counters of the others
        others = [self.redis(self.srv) for _ in range(3)]
        for r in others:
            self.addCleanup(r.close)
            workload(r)
        self.assertGreater(self.kv.info("stats")["total_commands_processed"], 3 * SET_PLAIN)
        self.assertEqual(self.kv.config_resetstat(), True)
        deadline = time.monotonic() + 30  # the other loops reset at their next wake-up
        while True:  # then only this loop's INFO and CONFIG calls are counted, and none failed
            stats, cmd = self.kv.info("stats"), self.kv.info("commandstats")
            if set(cmd) <= {"cmdstat_info", "cmdstat_config"} and \
                    stats["total_commands_processed"] <= sum(v["calls"] for v in cmd.values()):
                break
            self.assertLess(time.monotonic(), deadline, "not reset: %r %r" % (stats, cmd))
            time.sleep(0.05)
        self.assertEqual(stats["keyspace_hits"], 0)
        self.assertEqual(stats["keyspace_misses"], 0)
        self.assertEqual(stats["total_error_replies"], 0)
        self.assertEqual(cmd["cmdstat_config"]["failed_calls"], 0)  # RESETSTAT did not fail
        self.assertEqual(stats["total_connections_received"], 0)
        others[0].get("k0")  # counting goes on after it
        self.assertEqual(self.kv.info("stats")["keyspace_hits"], 1)

    def test_commandstats(self):
        workload(self.kv)
        workload(self.rd)
        kv, rd = self.both_info("commandstats")
        want = {"cmdstat_set": (SET_PLAIN + SET_EX, 0, 0),
                "cmdstat_get": (GET_HIT + GET_MISS, 1, 0),
                "cmdstat_incr": (1, 0, 1)}
        for name, (calls, rejected, failed) in want.items():
            got = kv[name]
            self.assertEqual((got["calls"], got["rejected_calls"], got["failed_calls"]),
                             (calls, rejected, failed), name)
            self.assertEqual((got["calls"], got["rejected_calls"], got["failed_calls"]),
                             (rd[name]["calls"], rd[name]["rejected_calls"],
                              rd[name]["failed_calls"]), name + " (Redis's)")
            self.assertAlmostEqual(got["usec_per_call"], got["usec"] / got["calls"], delta=1.0)
            self.assertEqual(sorted(got), sorted(rd[name]))
        lat = self.kv.info("latencystats")
        for cmd in ("set", "get", "incr"):
            p = lat["latency_percentiles_usec_%s" % cmd]
            self.assertEqual(sorted(p), sorted(self.rd.info("latencystats")[
                "latency_percentiles_usec_%s" % cmd]))
            self.assertTrue(0 < p["p50"] <= p["p99"] <= p["p99.9"], p)
        kvs_stats, redis_stats = self.both_info("stats")
        for f in ("keyspace_hits", "keyspace_misses", "total_error_replies"):
            self.assertEqual(kvs_stats[f], redis_stats[f], f)
        self.assertEqual((kvs_stats["keyspace_hits"], kvs_stats["keyspace_misses"]),
                         (GET_HIT, GET_MISS))
        # every call counted once: in one reply, the total is the commands' sum
        every = self.kv.info("everything")
        self.assertEqual(every["total_commands_processed"],
                         sum(v["calls"] for k, v in every.items() if k.startswith("cmdstat_")))

    def raw_info(self, r, *args):
        """INFO's reply as text, as it came (not parsed by r)."""
        raw = redis.Redis(connection_pool=r.connection_pool)
        raw.set_response_callback("INFO", lambda reply, **kw: reply)
        return raw.execute_command("INFO", *args).decode()

    def test_sections(self):
        for args in ((), ("default",), ("all",), ("everything",), ("server", "clients"),
                     ("keyspace", "SERVER"), ("CommandStats",), ("latencystats", "stats"),
                     ("nosuch",), ("cpu", "nosuch", "cluster")):
            kv = headers(self.raw_info(self.kv, *args))
            rd = headers(self.raw_info(self.rd, *args))
            self.assertEqual([h for h in kv if h not in KVS_ONLY_SECTIONS],
                             [h for h in rd if h not in REDIS_ONLY_SECTIONS], args)
            self.assertEqual("kvs" in kv, args in ((), ("default",), ("all",), ("everything",)),
                             args)
        self.assertEqual(self.raw_info(self.kv, "nosuch"), "")
        self.assertEqual(headers(self.raw_info(self.kv, "engine")), ["kvs"])

    def test_rates_and_bytes(self):
        stop = threading.Event()
        errors = []

        def load():
            r = redis.Redis(port=self.srv.port, socket_timeout=30)
            try:
                while not stop.is_set():
                    p = r.pipeline(transaction=False)
                    for i in range(50):
                        p.get("k%d" % i)
                    p.execute()
            except Exception as e:  # noqa: BLE001 -- reported below
                errors.append(e)
            finally:
                r.close()

        before = self.kv.info("stats")
        t = threading.Thread(target=load, daemon=True)
        t.start()
        try:
            time.sleep(1.0)
            ops = self.kv.info("stats")["instantaneous_ops_per_sec"]
        finally:
            stop.set()
            t.join(30)
        self.assertEqual(errors, [])
        self.assertGreater(ops, 0)
        # the window is 16 samples of 100 ms: after 2 s without a command it is 0 (INFO is a
        # command too: polling faster would keep it above); a few tries for a loaded machine
        for _ in range(3):
            time.sleep(2.0)
            idle = self.kv.info("stats")["instantaneous_ops_per_sec"]
            if idle == 0:
                break
        self.assertEqual(idle, 0)
        value = b"x" * 100000
        mid = self.kv.info("stats")
        self.kv.set("big", value)
        self.assertEqual(self.kv.get("big"), value)
        after = self.kv.info("stats")
        self.assertGreater(mid["total_commands_processed"], before["total_commands_processed"])
        self.assertGreaterEqual(after["total_net_input_bytes"] - mid["total_net_input_bytes"],
                                len(value))
        self.assertGreaterEqual(after["total_net_output_bytes"] - mid["total_net_output_bytes"],
                                len(value))

    def test_memory_and_blocked(self):
        workload(self.kv)
        m = self.kv.info("memory")
        rss = vm_rss(self.srv.pid)
        self.assertGreater(m["used_memory"], 0)
        self.assertGreater(m["used_memory_rss"], 0)
        self.assertLess(m["used_memory_rss"], 10 * rss)
        self.assertGreater(m["used_memory_rss"], rss / 10)
        self.assertGreaterEqual(m["used_memory_peak"], m["used_memory"])
        self.assertIn(m["mem_allocator"], ("libc", "sanitizer"))  # sanitizer: an ASan/TSan build
        self.assertEqual(self.kv.info("clients")["blocked_clients"], 0)
        # WAITAOF with a replica asked for: there are none, so it blocks until its timeout (30 s)
        # or, here, until CLIENT KILL closes it
        w = self.redis(self.srv)
        wid = w.client_id()
        ended = []

        def wait():
            try:
                w.execute_command("WAITAOF", 0, 1, 30000)
            except redis.ConnectionError as e:
                ended.append(e)

        t = threading.Thread(target=wait, daemon=True)
        t.start()
        deadline = time.monotonic() + 10
        while self.kv.info("clients")["blocked_clients"] != 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(self.kv.info("clients")["blocked_clients"], 1)
        self.assertEqual(self.kv.client_kill_filter(_id=wid), 1)
        t.join(10)
        self.assertEqual(len(ended), 1)  # it ended by the kill, not by its timeout
        deadline = time.monotonic() + 10
        while self.kv.info("clients")["blocked_clients"] != 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(self.kv.info("clients")["blocked_clients"], 0)

    def test_client_buffers(self):
        value = b"x" * (1 << 20)
        self.kv.set("big", value)  # a 1 MiB bulk in one query buffer
        self.assertGreaterEqual(self.kv.info("clients")["client_recent_max_input_buffer"],
                                len(value))
        k = self.sock(self.srv, rcvbuf=4096)
        # 16 MiB of replies it does not read: the kernel's buffers take a few MiB, kvs the rest
        k.sendall(kvstest.resp("GET", "big") * 16)
        deadline = time.monotonic() + 10
        while (self.kv.info("clients")["client_recent_max_output_buffer"] < 4 * len(value)
               and time.monotonic() < deadline):
            time.sleep(0.05)
        self.assertGreaterEqual(self.kv.info("clients")["client_recent_max_output_buffer"],
                                4 * len(value))

    def test_redis_cli_stat(self):
        workload(self.kv)
        keys = self.kv.dbsize()
        # stdbuf: redis-cli's stdout is a pipe here, block-buffered and lost when it is killed
        p = subprocess.Popen(["stdbuf", "-oL", "redis-cli", "-p", str(self.srv.port), "--stat", "-i", "0.2"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             preexec_fn=kvstest._die_with_parent)
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(p.stdout), daemon=True)
        reader.start()
        time.sleep(1.5)
        os.kill(p.pid, signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(10)
        reader.join(10)
        p.stdout.close()
        text = b"".join(lines).decode(errors="replace")
        self.assertNotRegex(text, r"(?i)error|ERR ", text)
        rows = [ln.split() for ln in text.splitlines() if re.match(r"^\d", ln)]
        self.assertGreaterEqual(len(rows), 3, text)
        self.assertTrue(all(int(r[0]) == keys for r in rows), text)  # keys: db0's
        self.assertTrue(all(r[2] != "0" for r in rows), text)  # clients: at least redis-cli


if __name__ == "__main__":
    kvstest.main("test_info.py")
