#!/usr/bin/env bash
# Benchmark: native commit (`imagebuilder treecompose --rootfs`) of the demo root filesystem against
# `ostree commit --tree=dir=` of the same tree, in the same run. Prints both times and the ratio
# (target: native <= 1.1x ostree). Run as root from the repository root:
#   scripts/bench-tree-commit.sh            # REPS=3 by default
# The demo tree is built first if the cache does not hold it (a few minutes, once).
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${REPS:-3}
bin=${IMAGEBUILDER:-target/release/imagebuilder}
if [ -z "${IMAGEBUILDER:-}" ]; then
  cargo build --release -q -p imagebuilder
fi

repo=$("$bin" demo-tree --json | sed -n 's/^ *"repo": *"\(.*\)",\{0,1\}$/\1/p')
rootfs=$(dirname "$repo")/rootfs
if [ ! -d "$rootfs" ]; then
  echo "bench: no cached demo rootfs at $rootfs" >&2
  exit 1
fi

work=$(mktemp -d /var/tmp/bench-tree-commit.XXXXXX)
trap 'rm -rf "$work"' EXIT
# `ostree commit` refuses device nodes (the rootfs's /dev holds some); both sides commit the same
# hard-linked copy without them.
cp -al "$rootfs" "$work/tree"
find "$work/tree/dev" -mindepth 1 -delete
echo "bench: tree $(du -sh "$work/tree" | cut -f1), $(find "$work/tree" | wc -l) entries, $reps repetitions"

calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
# Wall-clock and CPU (user + sys) seconds of a command, from bash's `time`.
measure() {
  local TIMEFORMAT='%R %U %S' out
  out=$({ time "$@" >/dev/null 2>&1; } 2>&1)
  read -r real user sys <<<"$out"
  echo "$real $(calc "$user + $sys")"
}
native_wall=0 native_cpu=0 cli_wall=0 cli_cpu=0
for i in $(seq 0 "$reps"); do
  rm -rf "$work/native" "$work/cli"
  ostree --repo="$work/native" init --mode=archive
  ostree --repo="$work/cli" init --mode=archive
  sync
  read -r nw nc < <(measure "$bin" treecompose --rootfs "$work/tree" --ref bench/native \
    --ostreerepo "$work/native")
  read -r cw cc < <(measure ostree --repo="$work/cli" commit -b bench/cli --tree=dir="$work/tree")
  # Both commits must exist (measure hides the commands' exit status).
  ostree --repo="$work/native" rev-parse bench/native >/dev/null
  ostree --repo="$work/cli" rev-parse bench/cli >/dev/null
  if [ "$i" = 0 ]; then
    echo "bench: warm-up native ${nw}s (cpu ${nc}s), ostree ${cw}s (cpu ${cc}s) (not counted)"
    continue
  fi
  echo "bench: run $i: native ${nw}s (cpu ${nc}s), ostree commit ${cw}s (cpu ${cc}s)"
  native_wall=$(calc "$native_wall + $nw"); native_cpu=$(calc "$native_cpu + $nc")
  cli_wall=$(calc "$cli_wall + $cw"); cli_cpu=$(calc "$cli_cpu + $cc")
done
echo "bench: wall-clock native / ostree commit --tree=dir= = $(calc "$native_wall / $cli_wall")x (target <= 1.1x)"
echo "bench: cpu time   native / ostree commit --tree=dir= = $(calc "$native_cpu / $cli_cpu")x"
