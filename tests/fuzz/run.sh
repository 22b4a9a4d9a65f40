#!/usr/bin/env bash
# Run the libFuzzer targets of a KVS_FUZZ build (make test-fuzz: 60 s each, make fuzz: longer).
#
#   tests/fuzz/run.sh BUILD_DIR SECONDS [TARGET...]      (default: every target)
#
# Targets run FUZZ_JOBS at a time (default 2: the suite is sized for 2 cores), each for SECONDS,
# starting from its committed seeds (tests/fuzz/corpus/<target>) and reproducers
# (tests/fuzz/regressions/<target>), which it runs first, and from what earlier runs found
# (BUILD_DIR/fuzz-corpus/<target>, where new inputs go: the committed seeds are never written).
# An input that crashes, leaks, hangs past FUZZ_TIMEOUT seconds (default 10) or takes more than
# FUZZ_RSS_MB (default 2048) fails the run; libFuzzer saves it under BUILD_DIR/fuzz-artifacts/,
# and its path and the command that replays it are printed. Logs: BUILD_DIR/fuzz-logs/.
set -uo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 BUILD_DIR SECONDS [TARGET...]" >&2
  exit 2
fi
build=$(cd "$1" && pwd) || exit 2
seconds=$2
shift 2
src=$(cd "$(dirname "$0")" && pwd)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(fuzz_resp fuzz_commands fuzz_decoders fuzz_recover)
jobs=${FUZZ_JOBS:-2}
timeout=${FUZZ_TIMEOUT:-10}
rss=${FUZZ_RSS_MB:-2048}

# Longest input per target: streams of a few KiB, engine files of a few KiB, short edit lists.
max_len() {
  case $1 in
    fuzz_decoders) echo 16384 ;;
    fuzz_recover) echo 1024 ;;
    *) echo 4096 ;;
  esac
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

mkdir -p "$build/fuzz-logs"
start=$(date +%s)

run_one() {
  local t=$1 bin="$build/bin/$1" work="$build/fuzz-corpus/$1" art="$build/fuzz-artifacts/$1"
  local args=(-max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb="$rss"
              -max_len="$(max_len "$t")" -print_final_stats=1 -artifact_prefix="$art/")
  mkdir -p "$work" "$art"
  [ -f "$src/dict/$t.dict" ] && args+=(-dict="$src/dict/$t.dict")
  local dirs=("$work" "$src/corpus/$t")
  [ -d "$src/regressions/$t" ] && dirs+=("$src/regressions/$t")
  exec "$bin" "${args[@]}" "${dirs[@]}" >"$build/fuzz-logs/$t.log" 2>&1
}

report() {
  local t=$1 rc=$2 log="$build/fuzz-logs/$1.log"
  local execs rate corpus
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  corpus=$(ls "$build/fuzz-corpus/$t" | wc -l)
  if [ "$rc" -eq 0 ]; then
    printf '%-14s ok      %9s runs  %6s/s  corpus %s\n' "$t" "${execs:-?}" "${rate:-?}" "$corpus"
    return 0
  fi
  printf '%-14s FAILED  (exit %s) after %s runs; log: %s\n' "$t" "$rc" "${execs:-?}" "$log"
  grep -E "ERROR: |SUMMARY: |fuzz check failed|^  [a-z]" "$log" | head -20 | sed 's/^/    /'
  local unit
  unit=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
  if [ -n "$unit" ]; then
    echo "    reproducer: $unit"
    echo "    replay:     UBSAN_OPTIONS='$UBSAN_OPTIONS' $build/bin/$t $unit"
  fi
  return 1
}

declare -A pid_of
failed=0
running=0
for t in "${targets[@]}"; do
  if [ ! -x "$build/bin/$t" ]; then
    echo "$t: not built in $build (make fuzz-build)" >&2
    failed=1
    continue
  fi
  if [ "$running" -ge "$jobs" ]; then
    wait -n -p done_pid
    rc=$?
    for k in "${!pid_of[@]}"; do
      [ "${pid_of[$k]}" = "$done_pid" ] && { report "$k" "$rc" || failed=1; unset "pid_of[$k]"; }
    done
    running=$((running - 1))
  fi
  run_one "$t" &
  pid_of[$t]=$!
  running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
  wait -n -p done_pid
  rc=$?
  for k in "${!pid_of[@]}"; do
    [ "${pid_of[$k]}" = "$done_pid" ] && { report "$k" "$rc" || failed=1; unset "pid_of[$k]"; }
  done
  running=$((running - 1))
done
echo "fuzzing: ${#targets[@]} targets x ${seconds} s, $jobs at a time: $(( $(date +%s) - start )) s" \
  "wall, $([ $failed -eq 0 ] && echo 'no failures' || echo FAILED)"
exit $failed
