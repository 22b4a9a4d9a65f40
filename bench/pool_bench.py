#!/usr/bin/env python3
"""pool_bench.py — kvs-server's three thread pools (naive, shared, uv) across thread counts.

The kvs course's thread-pool benchmark, run against kvs-server. For each engine × pool × thread
count T it starts a fresh kvs-server with `--threads T --pool-threads T --pool POOL
--offload always` (so every batch of writes a connection sends is committed on the pool; reads
always run on the loop threads), preloads the keyspace, and runs two redis-benchmark workloads:

    write-heavy  -t set -r KEYSPACE -d VALUE_SIZE -c CLIENTS -P 1 -n REQUESTS
    read-heavy   -t get  (same keys, all present thanks to the preload)

Rounds run the whole matrix again (in the same order: drift on a shared machine then hits
every point alike); the figure of a point is the median requests/second of its rounds.

Output: --csv (engine,pool,threads,workload,rps), --raw-csv (every round, with p50/p99), a
table on stdout, and with --charts one PNG per engine drawn by gnuplot from --gnuplot-script
(throughput against thread count, a line per pool × workload).

Usage: pool_bench.py --kvs-server build/bin/kvs-server [--engines kvs,lmdb]
                     [--pools naive,shared,uv] [--threads 1,2,4,2x] [--requests 20000]
                     [--rounds 5] [--clients 50] [--keyspace 1000] [--value-size 100]
                     [--sync everysec] [--out-dir bench/results] [--charts]
Only loopback; ports are picked free at run time; every server started is stopped by PID.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

from benchlib import Server, machine, preload, redis_benchmark, write_csv

WORKLOADS = ("set", "get")


def thread_counts(spec):
    """'1,2,4,2x' → sorted distinct counts; 'Nx' is N × the number of cores."""
    out = set()
    for t in spec.split(","):
        t = t.strip()
        out.add(int(t[:-1]) * (os.cpu_count() or 1) if t.endswith("x") else int(t))
    return sorted(out)


def one_point(args, engine, pool, threads):
    """Start a server, preload, run both workloads, stop it. Returns {workload: result}."""
    env_uv = os.environ.pop("UV_THREADPOOL_SIZE", None)  # let the "uv" pool size libuv itself
    try:
        srv = Server("kvs", kvs_server=args.kvs_server, sync=args.sync, engine=engine,
                     extra=["--threads", str(threads), "--pool", pool,
                            "--pool-threads", str(threads), "--offload", "always"])
    finally:
        if env_uv is not None:
            os.environ["UV_THREADPOOL_SIZE"] = env_uv
    res = {}
    try:
        preload(srv.port, args.keyspace, args.value_size)
        for w in WORKLOADS:
            res[w] = redis_benchmark(srv.port, w, args.requests, clients=args.clients,
                                     pipeline=1, value_size=args.value_size,
                                     keyspace=args.keyspace, timeout=args.timeout)
            if not srv.alive():
                raise RuntimeError(f"kvs-server exited during {w} ({srv.proc.returncode})")
    finally:
        rc = srv.stop()
    if rc != 0:
        print(f"  note: kvs-server {engine}/{pool}/T={threads} exited with {rc} on SIGTERM",
              file=sys.stderr)
    return res


def write_dat(path, engine, meds, pools, threads):
    """Wide table for gnuplot: threads, then one column per pool × workload."""
    cols = [(p, w) for p in pools for w in WORKLOADS]
    with open(path, "w") as f:
        f.write("threads " + " ".join(f"{p}-{w}" for p, w in cols) + "\n")
        for t in threads:
            vals = [meds.get((engine, p, t, w)) for p, w in cols]
            f.write(f"{t} " + " ".join("NaN" if v is None else f"{v:.0f}" for v in vals) + "\n")


def charts(args, engines, meds, pools, threads):
    if not shutil.which("gnuplot"):
        print("pool_bench: gnuplot not found (make deps installs gnuplot-nox): no charts",
              file=sys.stderr)
        return False
    ok = True
    m = machine()
    sub1 = (f"{m['nproc']} cores ({m['model']}), shared with the load generator; "
            f"median of {args.rounds} round(s)").replace("'", "")
    sub2 = (f"redis-benchmark -c {args.clients} -P 1 -r {args.keyspace} -d {args.value_size} "
            f"-n {args.requests}; kvs-server --sync {args.sync} --offload always")
    for e in engines:
        dat = os.path.join(args.out_dir, f"pools_{e}.dat")
        png = os.path.join(args.out_dir, f"pools_{e}.png")
        write_dat(dat, e, meds, pools, threads)
        gp_vars = (f"engine='{e}'; datafile='{dat}'; outfile='{png}'; "
                   f"npools={len(pools)}; sub1='{sub1}'; sub2='{sub2}'; "
                   f"xtics_list='{' '.join(str(t) for t in threads)}'")
        r = subprocess.run(["gnuplot", "-e", gp_vars, args.gnuplot_script],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print(f"pool_bench: gnuplot failed for {e}: {r.stderr.strip()}", file=sys.stderr)
            ok = False
        else:
            print(f"chart: {png}")
    return ok


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kvs-server", required=True)
    ap.add_argument("--engines", default="kvs,lmdb")
    ap.add_argument("--pools", default="naive,shared,uv")
    ap.add_argument("--threads", default="1,2,4,2x",
                    help="thread counts; Nx = N x cores; duplicates are dropped")
    ap.add_argument("--requests", type=int, default=20000, help="redis-benchmark -n per point")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--keyspace", type=int, default=1000)
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--sync", default="everysec", choices=["always", "everysec", "never"])
    ap.add_argument("--timeout", type=float, default=300, help="seconds per redis-benchmark run")
    ap.add_argument("--out-dir", default=os.path.join(here, "results"))
    ap.add_argument("--csv", default=None, help="default OUT_DIR/pools.csv")
    ap.add_argument("--raw-csv", default=None, help="default OUT_DIR/pools_raw.csv")
    ap.add_argument("--charts", action="store_true", help="draw OUT_DIR/pools_ENGINE.png")
    ap.add_argument("--gnuplot-script", default=os.path.join(here, "pool_chart.gp"))
    args = ap.parse_args()
    if not shutil.which("redis-benchmark"):
        sys.exit("pool_bench: needs redis-benchmark (make deps)")
    if not os.access(args.kvs_server, os.X_OK):
        sys.exit(f"pool_bench: {args.kvs_server} is not an executable (build it first)")
    os.makedirs(args.out_dir, exist_ok=True)
    args.csv = args.csv or os.path.join(args.out_dir, "pools.csv")
    args.raw_csv = args.raw_csv or os.path.join(args.out_dir, "pools_raw.csv")

    engines = args.engines.split(",")
    pools = args.pools.split(",")
    threads = thread_counts(args.threads)
    m = machine()
    print(f"pool_bench: {m['nproc']} cores ({m['model']}), load average "
          f"{m['loadavg'][0]:.2f}; engines {engines}, pools {pools}, threads {threads}, "
          f"-n {args.requests}, {args.rounds} round(s)", flush=True)

    t0 = time.time()
    raw, failed = [], []
    for rnd in range(args.rounds):
        for e in engines:
            for p in pools:
                for t in threads:
                    try:
                        res = one_point(args, e, p, t)
                    except (RuntimeError, OSError, subprocess.TimeoutExpired) as ex:
                        failed.append((rnd, e, p, t, str(ex)))
                        print(f"round {rnd} {e:4} {p:6} T={t:<2} FAILED: {ex}", flush=True)
                        continue
                    for w, r in res.items():
                        raw.append({"round": rnd, "engine": e, "pool": p, "threads": t,
                                    "workload": w, **r})
                    print(f"round {rnd} {e:4} {p:6} T={t:<2} "
                          + "  ".join(f"{w.upper()} {res[w]['rps']:>8.0f} rps "
                                      f"(p50 {res[w]['p50_ms']:.2f} p99 {res[w]['p99_ms']:.2f} ms)"
                                      for w in WORKLOADS), flush=True)
    elapsed = time.time() - t0
    if not raw:
        sys.exit("pool_bench: no point succeeded")

    meds = {}
    for r in raw:
        meds.setdefault((r["engine"], r["pool"], r["threads"], r["workload"]), []).append(r["rps"])
    meds = {k: statistics.median(v) for k, v in meds.items()}
    rows = [{"engine": e, "pool": p, "threads": t, "workload": w, "rps": round(meds[(e, p, t, w)])}
            for e in engines for p in pools for t in threads for w in WORKLOADS
            if (e, p, t, w) in meds]
    write_csv(args.csv, rows, ["engine", "pool", "threads", "workload", "rps"])
    write_csv(args.raw_csv, raw)

    la = os.getloadavg()
    print(f"\nmedian requests/second of {args.rounds} round(s), -n {args.requests}, "
          f"{args.clients} clients, P=1, {args.keyspace} keys, {args.value_size}-byte values, "
          f"--sync {args.sync}, --offload always, --threads T --pool-threads T")
    head = f"{'engine':6} {'pool':6} " + " ".join(f"{w.upper() + ' T=' + str(t):>11}"
                                                 for w in WORKLOADS for t in threads)
    print(head)
    for e in engines:
        for p in pools:
            cells = []
            for w in WORKLOADS:
                for t in threads:
                    v = meds.get((e, p, t, w))
                    cells.append(f"{'-' if v is None else f'{v:.0f}':>11}")
            print(f"{e:6} {p:6} " + " ".join(cells))
    print(f"\n{len(raw) // len(WORKLOADS)} points in {elapsed:.0f} s; load average now "
          f"{la[0]:.2f}; csv: {args.csv}")
    ok = True
    if args.charts:
        ok = charts(args, engines, meds, pools, threads)
    if failed:
        print(f"pool_bench: {len(failed)} point(s) failed:", file=sys.stderr)
        for f in failed:
            print(f"  round {f[0]} {f[1]}/{f[2]}/T={f[3]}: {f[4]}", file=sys.stderr)
        ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
