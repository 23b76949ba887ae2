#!/usr/bin/env bash
# Disk image benchmarks, all measured in the same run on the demo tree:
#   1. commit -> bootable qcow2 (`imagebuilder image -i qcow2`) against the floor pipeline
#      (scripts/floor-pipeline.sh: libostree deploy + mkfs.ext4 -d + qemu-img convert); target <= 1.25x;
#   2. the qcow2 writer alone against `qemu-img convert -O qcow2` on the same raw; target <= 1.0x;
#   3. peak RSS of `imagebuilder image` for the demo image and the same padded to 8 GiB; target <= 256 MiB.
# usage: scripts/bench-disk.sh   (ROUNDS=3 BENCH_DIR=/var/tmp/x to change the defaults)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
work=${BENCH_DIR:-$(mktemp -d /var/tmp/imagebuilder-bench.XXXXXX)}
mkdir -p "$work"
cargo build -q --release -p imagebuilder
bin=target/release/imagebuilder
ks=kickstarts/demo-qcow2.ks
json=$("$bin" demo-tree --json)
repo=$(printf '%s' "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["repo"])')
ref=$(printf '%s' "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["reference"])')

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
: > "$work/floor.times"; : > "$work/ours.times"
for i in $(seq "$rounds"); do
  /usr/bin/time -f %e -o "$work/t" bash scripts/floor-pipeline.sh "$repo" "$ref" "$work/floor" 2048 >/dev/null 2>&1
  cat "$work/t" >> "$work/floor.times"
  rm -rf "$work/floor"
  /usr/bin/time -f "%e %M" -o "$work/t" "$bin" image --kickstart "$ks" --ostreerepo "$repo" -i qcow2 \
    -o "$work/ours" --overwrite >/dev/null 2>"$work/ours.err"
  cut -d' ' -f1 "$work/t" >> "$work/ours.times"
  cut -d' ' -f2 "$work/t" > "$work/ours.rss"
done
floor=$(median < "$work/floor.times"); ours=$(median < "$work/ours.times")
echo "commit -> qcow2: imagebuilder ${ours}s, floor pipeline ${floor}s, ratio $(awk "BEGIN {printf \"%.2f\", $ours/$floor}") (target <= 1.25; $rounds rounds, medians)"
echo "peak RSS, demo image ($(du -k --apparent-size "$work"/ours/*.qcow2 | awk '{printf "%d MiB qcow2", $1/1024}')): $(awk '{printf "%d MiB", $1/1024}' "$work/ours.rss") (target <= 256)"

/usr/bin/time -f "%e %M" -o "$work/t" "$bin" image --kickstart "$ks" --ostreerepo "$repo" -i qcow2 -i raw \
  --size 8G -o "$work/big" --overwrite >/dev/null 2>"$work/big.err"
echo "peak RSS, demo padded to 8 GiB (-i qcow2 -i raw): $(awk '{printf "%d MiB in %.1fs", $2/1024, $1}' "$work/t") (target <= 256)"

cargo bench -q -p imagebuilder --bench qcow2 -- "$work/big/demo-qcow2.raw" "$rounds"
rm -rf "$work/big" "$work/ours"
