#!/usr/bin/env bash
# Coverage-guided fuzzing of the kickstart parser and its write/re-parse round trip with libFuzzer
# (libfuzzer-sys) on the stable toolchain: the same instrumentation cargo-fuzz uses, without ASan.
# Usage: scripts/fuzz-ks.sh [RUNS]   (default 10 million executions, one worker)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-10000000}"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
TARGET="$(rustc -vV | sed -n "s/^host: //p")"
cargo build --release --manifest-path fuzz/Cargo.toml --target-dir target/fuzz --target "$TARGET" --bin parse
mkdir -p target/fuzz/corpus/parse fuzz/artifacts/parse
# seeds: the vendored corpus and the checked-in regression inputs
find tests/fixtures/kickstart-corpus -name '*.ks' -exec cp -t target/fuzz/corpus/parse {} + 2>/dev/null || true
cp fuzz/regressions/* target/fuzz/corpus/parse/ 2>/dev/null || true
exec "target/fuzz/$TARGET/release/parse" target/fuzz/corpus/parse -runs="$RUNS" \
  -max_len=1024 ${FUZZ_MAX_TIME:+-max_total_time=$FUZZ_MAX_TIME} -timeout=10 -rss_limit_mb=2048 -artifact_prefix=fuzz/artifacts/parse/ -print_final_stats=1
