#!/usr/bin/env python3
"""server_bench.py — kvs-server against redis-server 7 with redis-benchmark, side by side.

Each round starts a fresh kvs-server and a fresh redis-server (appendonly yes, with the
fsync policy that matches kvs's --sync), runs the same redis-benchmark invocations against
each, and stops both. Rounds alternate which server goes first, so drift on a shared machine
hits both. The summary is the median requests/second of each (server, test, pipeline) and the
ratio kvs/redis of those medians.

Usage: server_bench.py --kvs-server build/bin/kvs-server [--rounds 3] [--requests 200000]
                       [--clients 50] [--pipelines 1,16] [--tests set,get] [--sync everysec]
                       [--engine kvs] [--csv bench/results/server.csv]
Only loopback; ports are picked free at run time; every server started is stopped by PID.
"""
import argparse
import csv
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REDIS_FSYNC = {"always": "always", "everysec": "everysec", "never": "no"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ping(port, proc, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not answer PING")


class Server:
    def __init__(self, kind, args):
        self.kind, self.args = kind, args
        self.dir = tempfile.mkdtemp(prefix=f"bench-{kind}-")
        self.port = free_port()
        if kind == "kvs":
            cmd = [args.kvs_server, "--addr", f"127.0.0.1:{self.port}", "--dir", self.dir,
                   "--sync", args.sync, "--engine", args.engine, "--log-level", "warning"]
        else:
            cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                   "--appendonly", "yes", "--appendfsync", REDIS_FSYNC[args.sync],
                   "--save", "", "--dir", self.dir, "--daemonize", "no",
                   "--loglevel", "warning"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_ping(self.port, self.proc)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def run_benchmark(port, test, pipeline, args):
    cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(args.clients),
           "-n", str(args.requests), "-P", str(pipeline), "-t", test, "-d", str(args.value_size),
           "-r", str(args.keyspace), "--csv"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed: {out.stderr.strip()}")
    for row in csv.reader(out.stdout.splitlines()):
        if row and row[0].upper() == test.upper():
            return {"rps": float(row[1]), "p50_ms": float(row[4]), "p99_ms": float(row[6])}
    raise RuntimeError(f"no {test} line in redis-benchmark output: {out.stdout!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kvs-server", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=200000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--pipelines", default="1,16")
    ap.add_argument("--tests", default="set,get")
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--keyspace", type=int, default=100000)
    ap.add_argument("--sync", default="everysec", choices=list(REDIS_FSYNC))
    ap.add_argument("--engine", default="kvs")
    ap.add_argument("--csv", default=None)
    args = ap.parse_args()
    if not shutil.which("redis-server") or not shutil.which("redis-benchmark"):
        sys.exit("server_bench: needs redis-server and redis-benchmark (make deps)")

    pipelines = [int(p) for p in args.pipelines.split(",")]
    tests = args.tests.split(",")
    rows = []
    for rnd in range(args.rounds):
        order = ["kvs", "redis"] if rnd % 2 == 0 else ["redis", "kvs"]
        for kind in order:
            srv = Server(kind, args)
            try:
                for p in pipelines:
                    for t in tests:
                        r = run_benchmark(srv.port, t, p, args)
                        rows.append({"round": rnd, "server": kind, "test": t.upper(),
                                     "pipeline": p, **r})
                        print(f"round {rnd} {kind:5} {t.upper():4} P={p:<3} "
                              f"{r['rps']:>12.0f} rps  p50 {r['p50_ms']:.3f} ms  "
                              f"p99 {r['p99_ms']:.3f} ms", flush=True)
            finally:
                srv.stop()

    if args.csv:
        os.makedirs(os.path.dirname(os.path.abspath(args.csv)), exist_ok=True)
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
            w.writeheader()
            w.writerows(rows)

    print(f"\nmedian of {args.rounds} rounds, {args.clients} clients, {args.value_size}-byte "
          f"values, sync {args.sync} (redis: appendonly yes, appendfsync "
          f"{REDIS_FSYNC[args.sync]}), engine {args.engine}")
    print(f"{'test':5} {'P':>3} {'kvs rps':>12} {'redis rps':>12} {'kvs/redis':>10}")
    for t in tests:
        for p in pipelines:
            med = {k: statistics.median(r["rps"] for r in rows if r["server"] == k and
                                        r["test"] == t.upper() and r["pipeline"] == p)
                   for k in ("kvs", "redis")}
            print(f"{t.upper():5} {p:>3} {med['kvs']:>12.0f} {med['redis']:>12.0f} "
                  f"{med['kvs'] / med['redis']:>10.2f}")


if __name__ == "__main__":
    main()
