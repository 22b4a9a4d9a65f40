#!/usr/bin/env python3
"""restart_bench.py — time from exec to the first PONG when a server restarts on its data.

For each server (kvs-server --engine kvs --sync everysec; redis-server appendonly yes,
appendfsync everysec, no RDB snapshots): start it on a fresh directory, write exactly --keys
distinct keys (key:0000000 ..) with --value-size-byte incompressible values through one
pipelined connection, check DBSIZE, run BGREWRITEAOF on Redis (so that it restarts from an
RDB-preamble AOF, Redis at its best), wait until it is quiet (no compaction / AOF rewrite for
2 s), and stop it cleanly (SIGTERM by PID: both sync and exit 0). Then --rounds times,
alternating which server goes first: exec the server on the same directory, PING it every
5 ms (a refused connection or -LOADING is "not yet") and record the seconds from exec to the
first +PONG; check DBSIZE; stop it with SIGTERM. The data was just written, so it is in the
page cache for both (a warm restart). With --kill every stop (after the load too) is SIGKILL
instead: each restart is a recovery after kill -9 (kvs rebuilds its index from the hint files;
Redis reads its AOF as after a clean stop). A restart without a PONG after --pong-timeout seconds is
recorded as "timeout" (infinite for the median) and the server stopped, so the run stays
bounded.

Reported: each restart time, the median per server and the ratio kvs/redis of the medians
(target ≤ 0.5; printed, never asserted), with keys (DBSIZE) and the data directory's size.

Usage: restart_bench.py --kvs-server build/bin/kvs-server [--keys 1000000] [--value-size 100]
                        [--rounds 3] [--engines kvs] [--pong-timeout 30] [--kill]
                        [--csv bench/results/restart.csv]
Only loopback; ports are picked free at run time; every server started is stopped by PID;
the temporary data directories are removed at the end.
"""
import argparse
import shutil
import signal
import statistics
import sys
import tempfile
import time

from benchlib import Conn, Server, dir_size, load_keys, machine, print_table, time_to_pong, \
    wait_quiet, write_csv

MB = 1 << 20


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kvs-server", required=True)
    ap.add_argument("--keys", type=int, default=1000000)
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--engines", default="kvs", help="kvs-server engines to measure (kvs,lmdb)")
    ap.add_argument("--poll", type=float, default=0.005, help="PING interval, seconds")
    ap.add_argument("--pong-timeout", type=float, default=30.0,
                    help="give up on a restart after this many seconds (recorded as a timeout; "
                         "bounds the runtime)")
    ap.add_argument("--kill", action="store_true",
                    help="stop the servers with SIGKILL instead of SIGTERM: restarts after kill -9")
    ap.add_argument("--csv", default=None)
    args = ap.parse_args()
    stop_sig = signal.SIGKILL if args.kill else signal.SIGTERM
    if not shutil.which("redis-server"):
        sys.exit("restart_bench: needs redis-server (make deps)")

    m = machine()
    print(f"restart_bench: {args.keys} keys × {args.value_size} B values, {args.rounds} rounds"
          f"{', stopped by SIGKILL' if args.kill else ''}; "
          f"nproc {m['nproc']}, load average {m['loadavg'][0]:.2f}", flush=True)
    servers = [(f"kvs-{e}", "kvs", e) for e in args.engines.split(",") if e]
    servers.append(("redis", "redis", None))
    dirs = {}
    info = {}
    rows = []
    try:
        for label, kind, engine in servers:
            d = dirs[label] = tempfile.mkdtemp(prefix=f"bench-restart-{label}-")
            srv = Server(kind, kvs_server=args.kvs_server, engine=engine or "kvs", dir=d)
            try:
                t0 = time.perf_counter()
                load_keys(srv.port, args.keys, args.value_size, fmt=b"key:%07d", batch=2000)
                load_s = time.perf_counter() - t0
                with Conn(srv.port) as c:
                    n = c.call("DBSIZE")
                    if kind == "redis":
                        # Redis at its best: an AOF whose base is an RDB preamble (Redis 7's
                        # aof-use-rdb-preamble default) written by a rewrite, not a log of
                        # every SET; wait_quiet waits for the rewrite to finish
                        c.call("BGREWRITEAOF")
                wait_quiet(srv.port, kind)
            finally:
                rc = srv.stop(stop_sig)
            info[label] = {"keys_loaded": n, "load_s": load_s, "stop_rc": rc,
                           "dir_bytes": dir_size(d)[0]}
            print(f"  {label}: loaded {n} keys in {load_s:.1f} s, stopped (exit {rc}), "
                  f"directory {info[label]['dir_bytes'] / MB:.1f} MB", flush=True)
            if n != args.keys:
                raise RuntimeError(f"{label}: DBSIZE {n} after the load, expected {args.keys}")

        for rnd in range(args.rounds):
            order = servers if rnd % 2 == 0 else servers[::-1]
            for label, kind, engine in order:
                srv = Server(kind, kvs_server=args.kvs_server, engine=engine or "kvs",
                             dir=dirs[label], wait=False)
                try:
                    try:
                        secs = time_to_pong(srv, interval=args.poll, timeout=args.pong_timeout)
                        with Conn(srv.port) as c:
                            n = c.call("DBSIZE")
                    except TimeoutError:
                        secs, n = float("inf"), args.keys
                finally:
                    rc = srv.stop(stop_sig)
                rows.append({"round": rnd, "server": label, "keys": n,
                             "restart_s": round(secs, 4) if secs != float("inf") else "timeout",
                             "stop_rc": rc, "dir_bytes": info[label]["dir_bytes"]})
                what = (f"{secs * 1000:9.1f} ms to PONG, DBSIZE {n}"
                        if secs != float("inf") else
                        f"no PONG within {args.pong_timeout:.0f} s (timeout)")
                print(f"  round {rnd} {label:9} {what}, exit {rc}", flush=True)
                if n != args.keys:
                    raise RuntimeError(f"{label}: DBSIZE {n} after restart, expected {args.keys}")
    finally:
        for d in dirs.values():
            shutil.rmtree(d, ignore_errors=True)

    def secs(r):
        return float("inf") if r["restart_s"] == "timeout" else r["restart_s"]

    med = {label: statistics.median(secs(r) for r in rows if r["server"] == label)
           for label, _, _ in servers}
    redis = med["redis"]
    summary = []
    for label, _, _ in servers:
        summary.append({"round": "median", "server": label, "keys": args.keys,
                        "restart_s": round(med[label], 4),
                        "dir_bytes": info[label]["dir_bytes"],
                        "ratio_vs_redis": round(med[label] / redis, 3)})
    if args.csv:
        write_csv(args.csv, rows + summary, fields=[
            "round", "server", "keys", "restart_s", "stop_rc", "dir_bytes", "ratio_vs_redis"])

    print()
    show = [{"server": s["server"], "keys": s["keys"],
             "dir MB": s["dir_bytes"] / MB,
             "load s": info[s["server"]]["load_s"],
             **{f"r{i} ms": secs(r) * 1000 for i, r in
                enumerate(x for x in rows if x["server"] == s["server"])},
             "median ms": s["restart_s"] * 1000, "vs redis": s["ratio_vs_redis"]}
            for s in summary]
    f1 = ".1f"
    print_table(show, list(show[0].keys()),
                {"dir MB": f1, "load s": f1, "median ms": f1, "vs redis": ".3f",
                 **{f"r{i} ms": f1 for i in range(args.rounds)}})
    if "kvs-kvs" in med:
        print(f"restart{' after kill -9' if args.kill else ''} kvs/redis (median of "
              f"{args.rounds}): {med['kvs-kvs'] / redis:.3f} (target <= 0.5)")


if __name__ == "__main__":
    main()
