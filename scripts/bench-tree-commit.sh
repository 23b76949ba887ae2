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

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
native_total=0
cli_total=0
for i in $(seq 0 "$reps"); do
  rm -rf "$work/native" "$work/cli"
  ostree --repo="$work/native" init --mode=archive
  ostree --repo="$work/cli" init --mode=archive
  sync
  t0=$(now)
  "$bin" treecompose --rootfs "$work/tree" --ref bench/native --ostreerepo "$work/native" >/dev/null 2>&1
  t1=$(now)
  ostree --repo="$work/cli" commit -b bench/cli --tree=dir="$work/tree" >/dev/null
  t2=$(now)
  native=$(calc "$t1 - $t0")
  cli=$(calc "$t2 - $t1")
  if [ "$i" = 0 ]; then
    echo "bench: warm-up native ${native}s, ostree ${cli}s (not counted)"
    continue
  fi
  echo "bench: run $i: native ${native}s, ostree commit ${cli}s"
  native_total=$(calc "$native_total + $native")
  cli_total=$(calc "$cli_total + $cli")
done
ratio=$(calc "$native_total / $cli_total")
echo "bench: native commit / ostree commit --tree=dir= = ${ratio}x (target <= 1.1x)"
