#!/usr/bin/env bash
# bench/run.sh — every kvs-server benchmark, results into bench/results/ (what `make bench` runs).
#
#   bench/run.sh [KVS_SERVER]        default build/bin/kvs-server
#
# 0. engine_bench.py, kvs-bench fillrandom/readrandom: kvs vs LMDB on its own API (and rocksdb)
# 1. server_bench.py, kvs-server --sync everysec vs redis-server appendfsync everysec, and vs
#    kvs-server built at $BASELINE (bench/baseline.sh, into build-baseline/) in the same rounds
# 2. server_bench.py, kvs-server --sync always   vs redis-server appendfsync always
# 3. pool_bench.py, the thread pools (naive, shared, uv) × engines × thread counts, with charts
# 4. mem_bench.py, RSS holding 200,000 × 1 KB values: kvs (both engines) vs redis; 1,000,000 ×
#    100 B: kvs vs redis; and kvs alone at 1M and 5M × 100 B (does RSS grow linearly?)
# 5. restart_bench.py, exec to first PONG on 1,000,000 keys × 100 B: kvs vs redis, after a clean
#    stop and after kill -9
# 6. space_bench.py, data directory size after 100 MB of overwrites onto 4 MB of live data
# 7. latency_bench.py, GET/SET p50/p99/p99.9 kvs vs redis, and kvs GET while compaction runs
#
# Knobs (environment): OUT (bench/results), ROUNDS (3), EVERYSEC_REQUESTS (200000),
# ALWAYS_REQUESTS (50000: an fsync per write batch makes P=1 slow), POOL_REQUESTS (20000),
# POOL_ROUNDS (5), BASELINE (10ba636, the last commit before issue 13 added expiry to every
# record: its SET/GET must not be lower by more than 3 %; empty: no baseline). Everything runs on 127.0.0.1 with free ports; all servers are stopped by PID.
# Exits non-zero if any benchmark failed, after running the others.
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
KVS_SERVER="${1:-build/bin/kvs-server}"
OUT="${OUT:-$here/results}"
ROUNDS="${ROUNDS:-3}"
EVERYSEC_REQUESTS="${EVERYSEC_REQUESTS:-200000}"
ALWAYS_REQUESTS="${ALWAYS_REQUESTS:-50000}"
POOL_REQUESTS="${POOL_REQUESTS:-20000}"
POOL_ROUNDS="${POOL_ROUNDS:-5}"
BASELINE="${BASELINE-10ba636}"

if [ ! -x "$KVS_SERVER" ]; then
  echo "bench/run.sh: $KVS_SERVER is not an executable (make build first)" >&2
  exit 2
fi
for tool in python3 redis-server redis-benchmark gnuplot; do
  command -v "$tool" >/dev/null || { echo "bench/run.sh: $tool missing (make deps)" >&2; exit 2; }
done
mkdir -p "$OUT"

start=$(date +%s)
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "kernel: $(uname -r)"
  echo "redis: $(redis-server --version)"
  rev="$(git -C "$here/.." rev-parse --short HEAD 2>/dev/null || echo '?')"
  git -C "$here/.." diff --quiet HEAD -- src apps include CMakeLists.txt cmake 2>/dev/null ||
    rev="$rev, with uncommitted changes to the sources"
  echo "kvs: $("$KVS_SERVER" -V) ($rev)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$OUT/machine.txt"
cat "$OUT/machine.txt"

failed=()
run() { # name, command...: run, tee its output to $OUT/name.txt, remember a failure
  local name="$1"; shift
  echo; echo "== $name: $*"
  local t0=$(date +%s)
  if ! "$@" 2>&1 | tee "$OUT/$name.txt"; then
    failed+=("$name")
  fi
  echo "== $name: $(( $(date +%s) - t0 )) s"
}

run engine python3 "$here/engine_bench.py" --kvs-bench "$(dirname "$KVS_SERVER")/kvs-bench" \
  --rounds "$ROUNDS" --csv "$OUT/engine.csv"
baseline=()
if [ -n "$BASELINE" ]; then
  if b="$("$here/baseline.sh" "$BASELINE" "$here/../build-baseline" 2>"$OUT/baseline_build.txt")"; then
    baseline=(--baseline-server "$b")
  else
    echo "bench/run.sh: no baseline build of $BASELINE (see $OUT/baseline_build.txt)" >&2
    failed+=(baseline)
  fi
fi
for sync in everysec always; do
  if [ "$sync" = always ]; then n="$ALWAYS_REQUESTS"; b=(); else n="$EVERYSEC_REQUESTS"; b=("${baseline[@]}"); fi
  run "server_$sync" python3 "$here/server_bench.py" --kvs-server "$KVS_SERVER" \
    --sync "$sync" --rounds "$ROUNDS" --requests "$n" --csv "$OUT/server_$sync.csv" "${b[@]}"
done
run pools python3 "$here/pool_bench.py" --kvs-server "$KVS_SERVER" \
  --requests "$POOL_REQUESTS" --rounds "$POOL_ROUNDS" --out-dir "$OUT" --charts
run mem python3 "$here/mem_bench.py" --kvs-server "$KVS_SERVER" --csv "$OUT/mem.csv"
run mem_small python3 "$here/mem_bench.py" --kvs-server "$KVS_SERVER" --keys 1000000 \
  --value-size 100 --engines kvs --csv "$OUT/mem_small.csv"
run mem_growth python3 "$here/mem_bench.py" --kvs-server "$KVS_SERVER" --keys 1000000 \
  --value-size 100 --growth 5 --csv "$OUT/mem_growth.csv"
run restart python3 "$here/restart_bench.py" --kvs-server "$KVS_SERVER" --rounds "$ROUNDS" \
  --csv "$OUT/restart.csv"
run restart_kill python3 "$here/restart_bench.py" --kvs-server "$KVS_SERVER" --rounds "$ROUNDS" \
  --kill --csv "$OUT/restart_kill.csv"
run space python3 "$here/space_bench.py" --kvs-server "$KVS_SERVER" --csv "$OUT/space.csv" \
  --samples-csv "$OUT/space_samples.csv"
run latency python3 "$here/latency_bench.py" --kvs-server "$KVS_SERVER" --csv "$OUT/latency.csv"

elapsed=$(( $(date +%s) - start ))
{
  echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "elapsed: ${elapsed} s"
} | tee -a "$OUT/machine.txt"
if [ ${#failed[@]} -gt 0 ]; then
  echo "bench/run.sh: failed: ${failed[*]}" >&2
  exit 1
fi
echo "results in $OUT"
