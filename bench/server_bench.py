#!/usr/bin/env python3
"""server_bench.py — kvs-server against redis-server 7 with redis-benchmark, side by side.

Each round starts a fresh kvs-server and a fresh redis-server (appendonly yes, with the
fsync policy that matches kvs's --sync), runs the same redis-benchmark invocations against
each, and stops both. Rounds alternate which server goes first, so drift on a shared machine
hits both. The summary is the median requests/second of each (server, test, pipeline) and the
ratio kvs/redis of those medians.

--baseline-server PATH adds a third server, another kvs-server build (an earlier commit: make
bench builds the one before issue 13 with bench/baseline.sh), run the same way in the same
rounds; its table is kvs/baseline, to show what a change cost or gained, side by side.

Usage: server_bench.py --kvs-server build/bin/kvs-server [--rounds 3] [--requests 200000]
                       [--clients 50] [--pipelines 1,16] [--tests set,get] [--sync everysec]
                       [--engine kvs] [--csv bench/results/server.csv]
                       [--baseline-server PATH]
Only loopback; ports are picked free at run time; every server started is stopped by PID.
"""
import argparse
import shutil
import statistics
import sys

from benchlib import REDIS_FSYNC, Server, redis_benchmark, write_csv


def start(kind, args):
    if kind == "baseline":
        return Server("kvs", kvs_server=args.baseline_server, sync=args.sync, engine=args.engine)
    return Server(kind, kvs_server=args.kvs_server, sync=args.sync, engine=args.engine)


def run_benchmark(port, test, pipeline, args):
    return redis_benchmark(port, test, args.requests, clients=args.clients, pipeline=pipeline,
                           value_size=args.value_size, keyspace=args.keyspace)


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
    ap.add_argument("--baseline-server", default=None)
    args = ap.parse_args()
    if not shutil.which("redis-server") or not shutil.which("redis-benchmark"):
        sys.exit("server_bench: needs redis-server and redis-benchmark (make deps)")

    pipelines = [int(p) for p in args.pipelines.split(",")]
    tests = args.tests.split(",")
    rows = []
    kinds = ["kvs", "redis"] + (["baseline"] if args.baseline_server else [])
    for rnd in range(args.rounds):
        order = kinds[rnd % len(kinds):] + kinds[:rnd % len(kinds)] # each goes first in turn
        for kind in order:
            srv = start(kind, args)
            try:
                for p in pipelines:
                    for t in tests:
                        r = run_benchmark(srv.port, t, p, args)
                        rows.append({"round": rnd, "server": kind, "test": t.upper(),
                                     "pipeline": p, **r})
                        print(f"round {rnd} {kind:8} {t.upper():4} P={p:<3} "
                              f"{r['rps']:>12.0f} rps  p50 {r['p50_ms']:.3f} ms  "
                              f"p99 {r['p99_ms']:.3f} ms", flush=True)
            finally:
                srv.stop()

    if args.csv:
        write_csv(args.csv, rows)

    print(f"\nmedian of {args.rounds} rounds, {args.clients} clients, {args.value_size}-byte "
          f"values, sync {args.sync} (redis: appendonly yes, appendfsync "
          f"{REDIS_FSYNC[args.sync]}), engine {args.engine}")
    for peer in kinds[1:]:
        if peer == "baseline":
            print(f"\nbaseline: {args.baseline_server}")
        print(f"{'test':5} {'P':>3} {'kvs rps':>12} {peer + ' rps':>14} {'kvs/' + peer:>13}")
        for t in tests:
            for p in pipelines:
                med = {k: statistics.median(r["rps"] for r in rows if r["server"] == k and
                                            r["test"] == t.upper() and r["pipeline"] == p)
                       for k in ("kvs", peer)}
                print(f"{t.upper():5} {p:>3} {med['kvs']:>12.0f} {med[peer]:>14.0f} "
                      f"{med['kvs'] / med[peer]:>13.3f}")


if __name__ == "__main__":
    main()
