#!/usr/bin/env bash
# Install the Debian packages kvs needs to build and test, but only those that are missing.
# `scripts/deps.sh --check` only reports (exit 1 if something is missing).
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config
  libxxhash-dev liburcu-dev liblmdb-dev libcmocka-dev
  libuv1-dev librocksdb-dev
  libsystemd-dev  # kvs-server's sd_notify (systemd Type=notify)
  redis-server redis-tools
  python3 python3-redis iproute2 gnuplot-nox
  # fuzzing (make fuzz, make test-fuzz): clang, libFuzzer's runtime (libclang_rt.fuzzer in
  # libclang-rt-14-dev, pulled in by libclang-rt-dev), llvm-symbolizer for the stack traces
  clang libclang-rt-dev llvm
  # scale-out test peer (docs/scale-out.md, test_scaleout): twemproxy
  nutcracker
  # the man pages' test renders them (groff)
  groff-base
  # the install test reads the installed symbols (nm, readelf); systemd-analyze verify looks up
  # the unit's Documentation= with man
  binutils man-db
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  echo "missing packages: ${missing[*]}" >&2
  exit 1
fi

echo "installing: ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
