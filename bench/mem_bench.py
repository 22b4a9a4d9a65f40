#!/usr/bin/env python3
"""mem_bench.py — resident memory of kvs-server against redis-server 7 holding the same data.

For each server (kvs-server --engine kvs, kvs-server --engine lmdb, redis-server with
appendonly yes / appendfsync everysec, no RDB snapshots): start it on a fresh directory, read
its /proc/PID/status when empty (VmRSS, RssAnon, RssFile), write exactly --keys distinct keys
key:000000 .. key:NNNNNN with --value-size-byte incompressible values through one pipelined
connection, check DBSIZE, wait until the server is quiet (no compaction / AOF rewrite for 2 s),
and read /proc/PID/status again.

Reported per server: RSS empty and loaded, RssAnon / RssFile / RssShmem loaded, VmHWM (peak),
redis's used_memory, and the bytes per key the load added: (VmRSS loaded − VmRSS empty) / keys
and the same for RssAnon. The figure of merit is VmRSS(kvs) / VmRSS(redis) (target ≤ 0.15; ≤ 0.05 for 1 KiB values);
the ratio is printed, never asserted.

Usage: mem_bench.py --kvs-server build/bin/kvs-server [--keys 200000] [--value-size 1024]
                    [--engines kvs,lmdb] [--growth F] [--csv bench/results/mem.csv]
With --growth F: kvs-server (engine kvs) alone, at --keys and at F × --keys, and the ratio of
the two RSS figures (linear growth: at most 1.1 F).
Only loopback; ports are picked free at run time; every server started is stopped by PID.
"""
import argparse
import shutil
import sys
import time

from benchlib import Conn, Server, load_keys, machine, num, print_table, proc_status, \
    wait_quiet, write_csv

MB = 1 << 20


def measure(label, kind, args, engine="kvs"):
    srv = Server(kind, kvs_server=args.kvs_server, sync="everysec", engine=engine)
    try:
        time.sleep(0.5)  # let start-up settle (threads spawned, files mapped)
        empty = proc_status(srv.pid)
        t0 = time.perf_counter()
        sent = load_keys(srv.port, args.keys, args.value_size)
        load_s = time.perf_counter() - t0
        with Conn(srv.port) as c:
            dbsize = c.call("DBSIZE")
        quiet_s = wait_quiet(srv.port, kind, quiet=args.quiet)
        st = proc_status(srv.pid)
        used = ""
        with Conn(srv.port) as c:
            if kind == "redis":
                used = num(c.info("memory"), "used_memory")
            else:
                eng = c.info("engine")
        row = {
            "server": label, "keys": dbsize, "value_size": args.value_size,
            "load_s": round(load_s, 2), "load_mb_s": round(sent * args.value_size / MB / load_s, 1),
            "quiet_wait_s": round(quiet_s, 1),
            "rss_empty": empty["VmRSS"], "rss": st["VmRSS"], "rss_anon": st["RssAnon"],
            "rss_file": st["RssFile"], "rss_shmem": st.get("RssShmem", 0),
            "hwm": st["VmHWM"], "used_memory": used,
            "bytes_per_key": round((st["VmRSS"] - empty["VmRSS"]) / dbsize, 1),
            "anon_bytes_per_key": round((st["RssAnon"] - empty["RssAnon"]) / dbsize, 1),
        }
        if kind == "kvs":
            row["disk_bytes"] = num(eng, "disk_bytes")
        if dbsize != args.keys:
            raise RuntimeError(f"{label}: DBSIZE {dbsize}, expected {args.keys}")
        return row
    finally:
        srv.stop()


def growth(args):
    """RSS of kvs-server at --keys and at --growth times as many: does it grow linearly?"""
    rows, keys = [], args.keys
    print(f"mem_bench --growth: kvs-server (engine kvs) at {keys} and {keys * args.growth} keys "
          f"× {args.value_size} B", flush=True)
    for n in (keys, keys * args.growth):
        args.keys = n
        rows.append(measure(f"kvs-kvs-{n}", "kvs", args))
        print(f"  {n} keys: done", flush=True)
    args.keys = keys
    ratio = rows[1]["rss"] / rows[0]["rss"]
    for r in rows:
        r["rss_ratio"] = round(r["rss"] / rows[0]["rss"], 3)
    if args.csv:
        write_csv(args.csv, rows, fields=["server", "keys", "value_size", "load_s", "rss_empty",
                                          "rss", "rss_anon", "rss_file", "hwm", "disk_bytes",
                                          "bytes_per_key", "anon_bytes_per_key", "rss_ratio"])
    print()
    print_table([{"keys": r["keys"], "RSS MB": r["rss"] / MB, "anon MB": r["rss_anon"] / MB,
                  "peak MB": r["hwm"] / MB, "B/key": r["bytes_per_key"],
                  "RSS / first": r["rss_ratio"]} for r in rows],
                ["keys", "RSS MB", "anon MB", "peak MB", "B/key", "RSS / first"],
                {"RSS MB": ".1f", "anon MB": ".1f", "peak MB": ".1f", "B/key": ".1f",
                 "RSS / first": ".3f"})
    print(f"kvs RSS at {rows[1]['keys']} keys / at {rows[0]['keys']}: {ratio:.2f} "
          f"(target <= {1.1 * args.growth:.1f})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kvs-server", required=True)
    ap.add_argument("--keys", type=int, default=200000)
    ap.add_argument("--value-size", type=int, default=1024)
    ap.add_argument("--engines", default="kvs,lmdb", help="kvs-server engines to measure")
    ap.add_argument("--quiet", type=float, default=2.0,
                    help="seconds without background work before reading RSS")
    ap.add_argument("--growth", type=int, default=0, metavar="F",
                    help="instead: kvs-server (engine kvs) alone at --keys and at F times as "
                         "many, and the ratio of their RSS (target: at most 1.1 F)")
    ap.add_argument("--csv", default=None)
    args = ap.parse_args()
    if args.growth:
        return growth(args)
    if not shutil.which("redis-server"):
        sys.exit("mem_bench: needs redis-server (make deps)")

    m = machine()
    print(f"mem_bench: {args.keys} keys × {args.value_size} B values; nproc {m['nproc']}, "
          f"load average {m['loadavg'][0]:.2f}", flush=True)
    rows = []
    for e in [e for e in args.engines.split(",") if e]:
        rows.append(measure(f"kvs-{e}", "kvs", args, engine=e))
        print(f"  kvs-{e}: done", flush=True)
    rows.append(measure("redis", "redis", args))
    print("  redis: done", flush=True)

    redis = rows[-1]
    for r in rows:
        r["rss_ratio"] = round(r["rss"] / redis["rss"], 3)
        r["anon_ratio"] = round(r["rss_anon"] / redis["rss_anon"], 3)
    if args.csv:
        write_csv(args.csv, rows, fields=[
            "server", "keys", "value_size", "load_s", "load_mb_s", "quiet_wait_s", "rss_empty",
            "rss", "rss_anon", "rss_file", "rss_shmem", "hwm", "used_memory", "disk_bytes",
            "bytes_per_key", "anon_bytes_per_key", "rss_ratio", "anon_ratio"])

    show = []
    for r in rows:
        show.append({
            "server": r["server"], "keys": r["keys"],
            "RSS empty MB": r["rss_empty"] / MB, "RSS MB": r["rss"] / MB,
            "anon MB": r["rss_anon"] / MB, "file MB": r["rss_file"] / MB,
            "peak MB": r["hwm"] / MB, "B/key": r["bytes_per_key"],
            "anon B/key": r["anon_bytes_per_key"], "RSS/redis": r["rss_ratio"],
        })
    print()
    f1 = ".1f"
    print_table(show, list(show[0].keys()),
                {"RSS empty MB": f1, "RSS MB": f1, "anon MB": f1, "file MB": f1,
                 "peak MB": f1, "B/key": f1, "anon B/key": f1, "RSS/redis": ".3f"})
    if redis["used_memory"]:
        print(f"redis used_memory: {redis['used_memory'] / MB:.1f} MB")
    kvs = next((r for r in rows if r["server"] == "kvs-kvs"), None)
    if kvs:
        print(f"kvs (engine kvs) / redis VmRSS: {kvs['rss_ratio']:.3f} "
              f"(target <= {0.05 if args.value_size >= 1024 else 0.15}); "
              f"index bytes per key {kvs['bytes_per_key']:.1f} (RSS), "
              f"{kvs['anon_bytes_per_key']:.1f} (RssAnon)")


if __name__ == "__main__":
    main()
