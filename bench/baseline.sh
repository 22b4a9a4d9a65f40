#!/usr/bin/env bash
# bench/baseline.sh COMMIT DIR — build kvs-server as it was at COMMIT into DIR (a detached git
# worktree of this repository, built RelWithDebInfo like build/), and print the binary's path.
# For server_bench.py --baseline-server: the same load against an earlier build, side by side.
# Reuses DIR when it already holds that commit's build.
set -euo pipefail
commit="$1"; dir="$2"
repo="$(cd "$(dirname "$0")/.." && pwd)"
want="$(git -C "$repo" rev-parse --verify "$commit^{commit}")"
if [ ! -x "$dir/build/bin/kvs-server" ] || [ "$(git -C "$dir" rev-parse HEAD 2>/dev/null)" != "$want" ]; then
  git -C "$repo" worktree remove --force "$dir" >/dev/null 2>&1 || rm -rf "$dir"
  git -C "$repo" worktree prune
  git -C "$repo" worktree add --detach "$dir" "$want" >&2
  cmake -S "$dir" -B "$dir/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF >&2
  cmake --build "$dir/build" -j "$(nproc)" --target kvs-server >&2
fi
echo "$dir/build/bin/kvs-server"
