#!/usr/bin/env python3
"""latency_bench.py — GET/SET latency percentiles of kvs-server and redis-server 7, and the GET
latency of kvs-server while compaction runs.

Part 1, side by side: --rounds rounds, alternating which server goes first; each round starts a
fresh kvs-server (--engine kvs --sync everysec) and a fresh redis-server (appendonly yes,
appendfsync everysec), preloads the --keyspace keys redis-benchmark -r uses (--value-size
bytes), and runs `redis-benchmark -c CLIENTS -n REQUESTS -r KEYSPACE -d VALUE_SIZE -P 1
--precision 3` for SET and for GET. p50 and p99 come from redis-benchmark's latency summary,
p99.9 from its "Latency by percentile distribution" (the first line at or above 99.9%).
Reported: the median over rounds of each percentile, and kvs/redis.

Part 2, kvs only: a fresh kvs-server holding the same keyspace plus a churn set of
--churn-keys keys of --churn-value-size bytes. Three GET runs of the same redis-benchmark:
  quiet       nothing else runs;
  inserts     a background writer SETs new keys at --writer-mb-s (disk traffic like the next
              phase, but no dead bytes, so no compaction);
  compaction  the same writer overwrites the churn set in random order at the same rate, so
              dead bytes pile up and compaction keeps running (INFO engine is sampled every
              50 ms during the run: compactions started, share of samples with compacting:1).
Reported: p50/p99/p99.9 of each and p99(compaction)/p99(quiet) (target ≤ 1.5, issue 14;
printed, never asserted), and p99(compaction)/p99(inserts), which takes the writer's own cost out.

Usage: latency_bench.py --kvs-server build/bin/kvs-server [--rounds 2] [--requests 100000]
                        [--clients 50] [--keyspace 100000] [--value-size 100]
                        [--churn-keys 50000] [--churn-value-size 1000] [--writer-mb-s 20]
                        [--csv bench/results/latency.csv]
Only loopback; ports are picked free at run time; every server started is stopped by PID.
"""
import argparse
import random
import shutil
import socket
import statistics
import sys
import threading
import time

from benchlib import OK_REPLY, Conn, Server, load_keys, machine, num, preload, \
    redis_benchmark_latency, set_cmd, value_of, wait_quiet, write_csv

PCTS = ("p50_ms", "p99_ms", "p999_ms")


def bench(port, test, args):
    return redis_benchmark_latency(port, test, args.requests, clients=args.clients,
                                   value_size=args.value_size, keyspace=args.keyspace)


class Writer(threading.Thread):
    """SETs at a steady rate (MB/s of values) on its own connection, in batches of 100, until
    stopped. keys: a function of the write number giving the key."""

    def __init__(self, port, keys, value_size, mb_s):
        super().__init__(daemon=True)
        self.port, self.keys, self.value_size = port, keys, value_size
        self.rate = mb_s * (1 << 20) / value_size  # SETs per second
        self.stop_ev = threading.Event()
        self.written = 0
        self.error = None

    def run(self):
        batch = 100
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=30) as s:
                t0 = time.perf_counter()
                while not self.stop_ev.is_set():
                    n0 = self.written
                    s.sendall(b"".join(set_cmd(self.keys(n0 + i),
                                               value_of(n0 + i, self.value_size))
                                       for i in range(batch)))
                    want = OK_REPLY * batch
                    got = b""
                    while len(got) < len(want):
                        chunk = s.recv(65536)
                        if not chunk:
                            raise RuntimeError("connection closed")
                        got += chunk
                    if got != want:
                        raise RuntimeError(f"unexpected replies {got[:100]!r}")
                    self.written += batch
                    ahead = self.written / self.rate - (time.perf_counter() - t0)
                    if ahead > 0:
                        self.stop_ev.wait(ahead)
        except Exception as e:  # noqa: BLE001 — reported by the caller
            self.error = e

    def stop(self):
        self.stop_ev.set()
        self.join()
        if self.error:
            raise RuntimeError(f"background writer failed: {self.error!r}")


class Monitor(threading.Thread):
    """Samples INFO engine every 50 ms: compactions, compacting, compact_done_bytes."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.samples = []
        self.stop_ev = threading.Event()

    def run(self):
        with Conn(self.port) as c:
            while not self.stop_ev.is_set():
                i = c.info("engine")
                self.samples.append((num(i, "compactions"), num(i, "compacting"),
                                     num(i, "compact_reclaimed_bytes"), num(i, "dead_bytes"),
                                     num(i, "disk_bytes")))
                self.stop_ev.wait(0.05)

    def stop(self):
        self.stop_ev.set()
        self.join()
        s = self.samples
        return {"compactions": s[-1][0] - s[0][0],
                "compacting_share": round(sum(x[1] for x in s) / len(s), 2),
                "reclaimed_mb": round((s[-1][2] - s[0][2]) / (1 << 20), 1),
                "max_dead_mb": round(max(x[3] for x in s) / (1 << 20), 1),
                "max_disk_mb": round(max(x[4] for x in s) / (1 << 20), 1)}


def get_under(srv, args, mode):
    """One GET run on srv with the background writer in mode (None, inserts, compaction)."""
    wait_quiet(srv.port, "kvs", quiet=1.0)
    writer = None
    if mode == "inserts":
        base = args.keyspace + args.churn_keys + get_under.inserted
        writer = Writer(srv.port, lambda n: b"new:%09d" % (base + n), args.churn_value_size,
                        args.writer_mb_s)
    elif mode == "compaction":
        rng = random.Random(7)
        writer = Writer(srv.port, lambda n: b"churn:%07d" % rng.randrange(args.churn_keys),
                        args.churn_value_size, args.writer_mb_s)
    if writer:
        writer.start()
        if mode == "compaction":  # wait for compaction to be under way
            with Conn(srv.port) as c:
                c0 = num(c.info("engine"), "compactions")
                deadline = time.time() + 20
                while time.time() < deadline:
                    i = c.info("engine")
                    if num(i, "compacting") or num(i, "compactions") > c0:
                        break
                    time.sleep(0.05)
        else:
            time.sleep(1.0)
    mon = Monitor(srv.port)
    mon.start()
    try:
        r = bench(srv.port, "get", args)
    finally:
        stats = mon.stop()
        if writer:
            writer.stop()
            if mode == "inserts":
                get_under.inserted += writer.written
    return {**r, **stats, "writer_sets": writer.written if writer else 0}


get_under.inserted = 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kvs-server", required=True)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--requests", type=int, default=100000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--keyspace", type=int, default=100000)
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--churn-keys", type=int, default=50000)
    ap.add_argument("--churn-value-size", type=int, default=1000)
    ap.add_argument("--writer-mb-s", type=float, default=20.0)
    ap.add_argument("--csv", default=None)
    args = ap.parse_args()
    if not shutil.which("redis-server") or not shutil.which("redis-benchmark"):
        sys.exit("latency_bench: needs redis-server and redis-benchmark (make deps)")

    m = machine()
    print(f"latency_bench: {args.clients} clients, {args.requests} requests per run, "
          f"{args.keyspace} keys × {args.value_size} B; nproc {m['nproc']}, "
          f"load average {m['loadavg'][0]:.2f}", flush=True)
    rows = []
    # Part 1: side by side
    for rnd in range(args.rounds):
        order = ["kvs", "redis"] if rnd % 2 == 0 else ["redis", "kvs"]
        for kind in order:
            srv = Server(kind, kvs_server=args.kvs_server, sync="everysec", engine="kvs")
            try:
                preload(srv.port, args.keyspace, args.value_size)
                for test in ("set", "get"):
                    r = bench(srv.port, test, args)
                    rows.append({"part": "side-by-side", "round": rnd, "server": kind,
                                 "test": test.upper(), "mode": "quiet", **r})
                    print(f"  round {rnd} {kind:5} {test.upper():3} {r['rps']:>9.0f} rps  "
                          f"p50 {r['p50_ms']:.3f}  p99 {r['p99_ms']:.3f}  "
                          f"p99.9 {r['p999_ms']:.3f} ms", flush=True)
            finally:
                srv.stop()

    # Part 2: kvs GET latency while compaction runs
    srv = Server("kvs", kvs_server=args.kvs_server, sync="everysec", engine="kvs")
    try:
        preload(srv.port, args.keyspace, args.value_size)
        load_keys(srv.port, args.churn_keys, args.churn_value_size, fmt=b"churn:%07d")
        for mode in ("quiet", "inserts", "compaction"):
            r = get_under(srv, args, mode)
            rows.append({"part": "compaction", "round": 0, "server": "kvs", "test": "GET",
                         "mode": mode, **r})
            print(f"  kvs GET {mode:10} {r['rps']:>9.0f} rps  p50 {r['p50_ms']:.3f}  "
                  f"p99 {r['p99_ms']:.3f}  p99.9 {r['p999_ms']:.3f} ms; writer "
                  f"{r['writer_sets']} SETs; {r['compactions']} compactions, compacting in "
                  f"{r['compacting_share'] * 100:.0f}% of samples, "
                  f"{r['reclaimed_mb']} MB reclaimed", flush=True)
    finally:
        srv.stop()

    if args.csv:
        write_csv(args.csv, rows, fields=[
            "part", "round", "server", "test", "mode", "rps", "avg_ms", "p50_ms", "p99_ms",
            "p999_ms", "max_ms", "writer_sets", "compactions", "compacting_share",
            "reclaimed_mb", "max_dead_mb", "max_disk_mb"])

    print(f"\nside by side, median of {args.rounds} rounds ({args.clients} clients, P=1, "
          f"latency in ms):")
    print(f"{'test':4} {'server':6} {'rps':>9} {'p50':>8} {'p99':>8} {'p99.9':>8}")
    for test in ("SET", "GET"):
        med = {}
        for kind in ("kvs", "redis"):
            rs = [r for r in rows if r["part"] == "side-by-side" and r["server"] == kind and
                  r["test"] == test]
            med[kind] = {k: statistics.median(r[k] for r in rs) for k in ("rps",) + PCTS}
            print(f"{test:4} {kind:6} {med[kind]['rps']:>9.0f} " +
                  " ".join(f"{med[kind][k]:>8.3f}" for k in PCTS))
        print(f"{test:4} {'ratio':6} {med['kvs']['rps'] / med['redis']['rps']:>9.2f} " +
              " ".join(f"{med['kvs'][k] / med['redis'][k]:>8.2f}" for k in PCTS))

    by = {r["mode"]: r for r in rows if r["part"] == "compaction"}
    print("\nkvs GET while compaction runs (latency in ms):")
    print(f"{'mode':11} {'rps':>9} {'p50':>8} {'p99':>8} {'p99.9':>8} {'compactions':>11} "
          f"{'busy':>5}")
    for mode in ("quiet", "inserts", "compaction"):
        r = by[mode]
        print(f"{mode:11} {r['rps']:>9.0f} " + " ".join(f"{r[k]:>8.3f}" for k in PCTS) +
              f" {r['compactions']:>11} {r['compacting_share'] * 100:>4.0f}%")
    q, w, c = by["quiet"], by["inserts"], by["compaction"]
    print(f"p99(compaction)/p99(quiet) = {c['p99_ms'] / q['p99_ms']:.2f} (target <= 1.5); "
          f"p99(compaction)/p99(inserts) = {c['p99_ms'] / w['p99_ms']:.2f}; "
          f"p99.9(compaction)/p99.9(quiet) = {c['p999_ms'] / q['p999_ms']:.2f}")
    if c["compactions"] == 0 and c["compacting_share"] == 0:
        print("warning: no compaction ran during the 'compaction' GET run "
              "(raise --writer-mb-s or --churn-keys)")


if __name__ == "__main__":
    main()
