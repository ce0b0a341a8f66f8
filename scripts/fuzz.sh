#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang, ASan + UBSan) and runs
# each for SECONDS (default 60), two at a time. Corpora start from the seeds
# in tests/fuzz/seeds and the recorded QEMU replies in tests/data, and grow
# in build-fuzz/corpus between runs. A crash stops the run with the input
# saved under build-fuzz/artifacts/; each target's executions per second and
# total are printed at the end.
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-60}
bash scripts/setup.sh
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz

root=build-fuzz
mkdir -p "$root/corpus" "$root/artifacts" "$root/logs"
targets=(framer json classify handshake session typed target spec state service schema)

# Seeds: hand-written ones, and the recorded replies in every useful shape.
for t in "${targets[@]}"; do
  mkdir -p "$root/corpus/$t"
  if [ -d "tests/fuzz/seeds/$t" ]; then cp -n tests/fuzz/seeds/"$t"/* "$root/corpus/$t/" 2>/dev/null || true; fi
done
for v in tests/data/qemu-*; do
  name=$(basename "$v")
  for f in "$v"/*.json; do
    base=$(basename "$f" .json)
    cp -n "$f" "$root/corpus/json/$name-$base" 2>/dev/null || true
    { printf '{"return": '; cat "$f"; printf ', "id": "qmp#1"}'; } > "$root/corpus/classify/$name-$base"
    { printf '\x40\x10'; cat "$f"; printf '\r\n'; } > "$root/corpus/framer/$name-$base"
  done
  { cat "$v/x-debug-query-block-graph.json"; printf '\f'; cat "$v/query-blockstats-nodes.json"; printf '\f';
    cat "$v/query-blockstats.json"; printf '\f'; cat "$v/query-named-block-nodes-flat.json"; } > "$root/corpus/typed/$name"
done

run_one() {
  local t=$1
  "$root/bin/qmp-fuzz-$t" "$root/corpus/$t" -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 \
    -max_len=65536 -timeout=10 -artifact_prefix="$root/artifacts/$t-" > "$root/logs/$t.log" 2>&1
}

failed=0
pids=()
names=()
for t in "${targets[@]}"; do
  run_one "$t" & pids+=($!); names+=("$t")
  if [ ${#pids[@]} -ge 2 ]; then
    wait "${pids[0]}" || { echo "fuzz: $(basename "${names[0]}") FAILED (see $root/logs/${names[0]}.log)"; failed=1; }
    pids=("${pids[@]:1}"); names=("${names[@]:1}")
  fi
done
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || { echo "fuzz: ${names[$i]} FAILED (see $root/logs/${names[$i]}.log)"; failed=1; }
done

printf '%-10s %12s %14s %8s\n' target "execs/s" executions corpus
for t in "${targets[@]}"; do
  log="$root/logs/$t.log"
  execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
  speed=$(grep -m1 'stat::average_exec_per_sec' "$log" | awk '{print $2}')
  printf '%-10s %12s %14s %8s\n' "$t" "${speed:-?}" "${execs:-?}" "$(ls "$root/corpus/$t" | wc -l)"
done
if [ "$failed" -ne 0 ]; then
  for t in "${targets[@]}"; do grep -A20 'ERROR: libFuzzer\|==ERROR\|runtime error' "$root/logs/$t.log" | head -40 || true; done
  exit 1
fi
echo "fuzz: every target ran ${seconds}s without a crash"
