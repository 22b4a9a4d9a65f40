#!/usr/bin/env python3
"""engine_bench.py — the embedded engines side by side with kvs-bench (db_bench's shape).

Runs `kvs-bench --benchmarks=fillrandom,readrandom --num N --value_size 100 --threads T` for
each engine (kvs, lmdb, and rocksdb when kvs-bench was built with it), the engines interleaved
round after round, and reports the median ops/sec of each and the ratios kvs/lmdb and
kvs/rocksdb. No per-write fsync in any engine (--sync 0), as db_bench does by default.

The peer is at its best: kvs-bench's "lmdb" is LMDB on its own API (a read transaction per
thread, reset and renewed per read; src/bench/db.h), so kvs/lmdb is against LMDB itself, not
against libkvs's LMDB engine. That one is "kvs-lmdb", measured on request (--engines).

Usage: engine_bench.py --kvs-bench build/bin/kvs-bench [--num 500000] [--rounds 3]
                       [--threads 1] [--engines kvs,lmdb,rocksdb]
                       [--csv bench/results/engine.csv]
"""
import argparse
import csv
import re
import statistics
import subprocess
import sys

LINE = re.compile(r"^(\w+)\s*:\s*([\d.]+) micros/op (\d+) ops/sec.*?\(p50 ([\d.]+) us, "
                  r"p99 ([\d.]+) us, p999 ([\d.]+) us\)")


def run(binary, engine, num, threads):
    out = subprocess.run([binary, "--engine", engine, "--benchmarks=fillrandom,readrandom",
                          f"--num={num}", "--value_size=100", f"--threads={threads}"],
                         capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        return None if "not built with RocksDB" in out.stderr + out.stdout else \
            sys.exit(f"kvs-bench --engine {engine} failed: {out.stderr.strip()}")
    rows = {}
    for line in out.stdout.splitlines():
        m = LINE.match(line)
        if m:
            rows[m.group(1)] = {"ops": int(m.group(3)), "p50": float(m.group(4)),
                                "p99": float(m.group(5)), "p999": float(m.group(6))}
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kvs-bench", required=True)
    ap.add_argument("--num", type=int, default=500000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--engines", default="kvs,lmdb,rocksdb",
                    help="kvs-bench engines, kvs first (ratios are kvs/each other)")
    ap.add_argument("--csv")
    args = ap.parse_args()
    engines, results = args.engines.split(","), []
    if engines[0] != "kvs":
        sys.exit("engine_bench.py: --engines must start with kvs")
    for rnd in range(args.rounds):
        for e in list(engines):
            rows = run(args.kvs_bench, e, args.num, args.threads)
            if rows is None:
                engines.remove(e)
                continue
            for bench, r in rows.items():
                results.append({"round": rnd, "engine": e, "benchmark": bench, **r})
                print(f"round {rnd} {e:8} {bench:11} {r['ops']:>9} ops/s  p50 {r['p50']} us  "
                      f"p99 {r['p99']} us  p999 {r['p999']} us", flush=True)
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(results[0].keys()))
            w.writeheader()
            w.writerows(results)
    print(f"\nmedian of {args.rounds} rounds, {args.num} keys, 100-byte values, "
          f"{args.threads} thread{'s' if args.threads > 1 else ''}")
    print(f"{'benchmark':11} " + " ".join(f"{e:>10}" for e in engines) +
          "".join(f" {'kvs/' + e:>12}" for e in engines if e != "kvs"))
    for bench in ("fillrandom", "readrandom"):
        med = {e: statistics.median(r["ops"] for r in results
                                    if r["engine"] == e and r["benchmark"] == bench)
               for e in engines}
        print(f"{bench:11} " + " ".join(f"{med[e]:>10.0f}" for e in engines) +
              "".join(f" {med['kvs'] / med[e]:>12.2f}" for e in engines if e != "kvs"))


if __name__ == "__main__":
    main()
