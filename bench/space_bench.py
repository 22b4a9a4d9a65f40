#!/usr/bin/env python3
"""space_bench.py — disk space of the kvs engine under overwrites: does compaction keep up?

On a fresh kvs-server (--engine kvs, --sync everysec): write --keys keys (key:000000 ..) with
--value-size-byte incompressible values (the live data, 4 MB by default), then overwrite keys
drawn uniformly at random (seeded) until --overwrite-mb MB of values have been written (about
25 overwrites per key by default), through one pipelined connection. Meanwhile a sampler reads
the data directory's size every --interval seconds (sum of file sizes, and allocated blocks as
du counts them) and INFO engine (disk_bytes, live_bytes, compactions). After the writes the
server stays idle --idle seconds (its idle clean-up compacts what is left), then the directory
is measured (sum of file sizes, du -sk) with INFO live_bytes.

Reported: final directory size / live_bytes (target ≤ 2; printed, never asserted), the peak
directory size seen while writing (and in the idle period), and the compactions run.

Usage: space_bench.py --kvs-server build/bin/kvs-server [--keys 4096] [--value-size 1000]
                      [--overwrite-mb 100] [--idle 10] [--interval 0.1]
                      [--csv bench/results/space.csv]
Sizes are in MiB (printed "MB"). Only loopback; the port is picked free at run time; the
server is stopped by PID and its temporary directory removed.
"""
import argparse
import random
import threading
import time

from benchlib import Conn, Server, dir_size, du_k, load, load_keys, machine, num, value_of, \
    write_csv

MB = 1 << 20


class Sampler(threading.Thread):
    """Every interval seconds: (t, apparent, allocated, INFO engine) into self.samples."""

    def __init__(self, srv, interval, t0):
        super().__init__(daemon=True)
        self.srv, self.interval, self.t0 = srv, interval, t0
        self.samples = []
        self.stop_ev = threading.Event()

    def sample(self, conn, phase):
        app, alloc = dir_size(self.srv.dir)
        eng = conn.info("engine")
        self.samples.append({"t": round(time.perf_counter() - self.t0, 2), "phase": phase,
                             "dir_bytes": app, "dir_alloc_bytes": alloc,
                             "disk_bytes": num(eng, "disk_bytes"),
                             "live_bytes": num(eng, "live_bytes"),
                             "dead_bytes": num(eng, "dead_bytes"),
                             "segments": num(eng, "segments"),
                             "compactions": num(eng, "compactions"),
                             "compacting": num(eng, "compacting")})

    def run(self):
        self.phase = "write"
        with Conn(self.srv.port) as c:
            while not self.stop_ev.is_set():
                self.sample(c, self.phase)
                self.stop_ev.wait(self.interval)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kvs-server", required=True)
    ap.add_argument("--keys", type=int, default=4096)
    ap.add_argument("--value-size", type=int, default=1000)
    ap.add_argument("--overwrite-mb", type=float, default=100.0)
    ap.add_argument("--idle", type=float, default=10.0)
    ap.add_argument("--interval", type=float, default=0.1,
                    help="sampling period, s (the writes take only a few seconds)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--csv", default=None)
    ap.add_argument("--samples-csv", default=None, help="every sample, for a chart")
    args = ap.parse_args()

    m = machine()
    writes = int(args.overwrite_mb * MB / args.value_size)
    print(f"space_bench: {args.keys} keys × {args.value_size} B live, then {writes} random "
          f"overwrites ({args.overwrite_mb:.0f} MB, {writes / args.keys:.1f} per key); "
          f"nproc {m['nproc']}, load average {m['loadavg'][0]:.2f}", flush=True)
    srv = Server("kvs", kvs_server=args.kvs_server, sync="everysec", engine="kvs")
    try:
        load_keys(srv.port, args.keys, args.value_size)
        rng = random.Random(args.seed)
        order = [rng.randrange(args.keys) for _ in range(writes)]
        t0 = time.perf_counter()
        sampler = Sampler(srv, args.interval, t0)
        sampler.start()
        # every overwrite gets a different value (value_of(n), n counting writes)
        load(srv.port, ((b"key:%06d" % k, value_of(args.keys + n, args.value_size))
                        for n, k in enumerate(order)), batch=500)
        write_s = time.perf_counter() - t0
        sampler.phase = "idle"
        time.sleep(args.idle)
        sampler.stop_ev.set()
        sampler.join()
        with Conn(srv.port) as c:
            sampler.sample(c, "final")
            dbsize = c.call("DBSIZE")
        final = sampler.samples[-1]
        du = du_k(srv.dir) * 1024
    finally:
        srv.stop()

    write_samples = [s for s in sampler.samples if s["phase"] == "write"]
    peak_write = max(s["dir_bytes"] for s in write_samples)
    peak_all = max(s["dir_bytes"] for s in sampler.samples)
    peak_alloc = max(s["dir_alloc_bytes"] for s in sampler.samples)
    live = final["live_bytes"]
    row = {
        "keys": dbsize, "value_size": args.value_size, "overwrite_mb": args.overwrite_mb,
        "writes": writes, "write_s": round(write_s, 2),
        "write_mb_s": round(writes * args.value_size / MB / write_s, 1),
        "idle_s": args.idle, "live_bytes": live, "dir_bytes": final["dir_bytes"],
        "du_bytes": du, "disk_bytes": final["disk_bytes"], "segments": final["segments"],
        "compactions": final["compactions"],
        "dir_over_live": round(final["dir_bytes"] / live, 3),
        "du_over_live": round(du / live, 3),
        "peak_dir_bytes_writing": peak_write, "peak_dir_bytes": peak_all,
        "peak_alloc_bytes": peak_alloc,
        "peak_over_live": round(peak_write / live, 2),
        "samples": len(sampler.samples),
    }
    if args.csv:
        write_csv(args.csv, [row])
    if args.samples_csv:
        write_csv(args.samples_csv, sampler.samples)

    print(f"\n{'t s':>6} {'phase':>5} {'dir MB':>8} {'alloc MB':>8} {'live MB':>8} "
          f"{'dead MB':>8} {'segs':>5} {'compactions':>11} {'busy':>4}")
    last_idle = -1e9
    for s in sampler.samples:
        if s["phase"] == "idle":  # the idle period: one line a second is plenty
            if s["t"] - last_idle < 0.95:
                continue
            last_idle = s["t"]
        print(f"{s['t']:>6.1f} {s['phase']:>5} {s['dir_bytes'] / MB:>8.1f} "
              f"{s['dir_alloc_bytes'] / MB:>8.1f} {s['live_bytes'] / MB:>8.2f} "
              f"{s['dead_bytes'] / MB:>8.1f} {s['segments']:>5} {s['compactions']:>11} "
              f"{s['compacting']:>4}")
    print(f"\nwrote {writes} overwrites ({args.overwrite_mb:.0f} MB) in {write_s:.1f} s "
          f"({row['write_mb_s']} MB/s); DBSIZE {dbsize}; {final['compactions']} compactions")
    print(f"after {args.idle:.0f} s idle: directory {final['dir_bytes'] / MB:.2f} MB "
          f"(du {du / MB:.2f} MB), live_bytes {live / MB:.2f} MB, "
          f"{final['segments']} segments")
    print(f"dir/live {row['dir_over_live']:.2f} (du/live {row['du_over_live']:.2f}; "
          f"target <= 2); peak directory while writing {peak_write / MB:.1f} MB "
          f"({row['peak_over_live']:.1f}× live), peak allocated {peak_alloc / MB:.1f} MB")


if __name__ == "__main__":
    main()
