#!/usr/bin/env bash
# Coverage-guided fuzzing of the firmware's input parsers and state machines (cargo-fuzz, libFuzzer; see
# docs/fuzzing.md). Installs what it needs (a nightly toolchain, cargo-fuzz), builds every target, then:
#
#   ci/fuzz.sh [SECONDS] [TARGET...]   fuzz each target SECONDS (default 60) from its seeds; print executions,
#                                      exec/s and coverage per target; exit 1 if any target crashed
#   ci/fuzz.sh --seeds [TARGET...]     run each target once on every seed and regression input (no fuzzing)
#
# The working corpus, crash artifacts and logs go to target/fuzz/ (not committed); fuzz/corpus/ holds the
# committed seeds, fuzz/regressions/ the inputs that once crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

mode=fuzz
seconds=60
if [ "${1:-}" = "--seeds" ]; then
  mode=seeds
  shift
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi

all=(console engine config http mqtt_codec mqtt_session slip rom_loader app_image)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

echo "== toolchain: nightly and cargo-fuzz"
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

echo "== build (release, debug assertions, no sanitizer: the code under test is safe Rust)"
work="$root/target/fuzz"
mkdir -p "$work"
(cd fuzz && nice cargo +nightly fuzz build --sanitizer none --target-dir "$work/build")
bin="$work/build/$(rustc +nightly -vV | sed -n 's/^host: //p')/release"

inputs() {
  for dir in "fuzz/corpus/$1" "fuzz/regressions/$1"; do
    [ -d "$dir" ] && find "$dir" -type f
  done
}

failed=()
if [ "$mode" = seeds ]; then
  echo "== seeds and regression inputs, once each"
  for t in "${targets[@]}"; do
    mapfile -t files < <(inputs "$t")
    # Without inputs the binary would start fuzzing.
    if [ ${#files[@]} -eq 0 ]; then
      echo "$t: no seeds in fuzz/corpus/$t"
      failed+=("$t")
    elif "$bin/$t" -runs=1 "${files[@]}" >"$work/$t-seeds.log" 2>&1; then
      echo "$t: ${#files[@]} inputs ok"
    else
      echo "$t: FAILED (log: target/fuzz/$t-seeds.log)"
      tail -n 30 "$work/$t-seeds.log"
      failed+=("$t")
    fi
  done
else
  echo "== fuzzing ${seconds} s per target: ${targets[*]}"
  summary=()
  for t in "${targets[@]}"; do
    corpus="$work/corpus/$t"
    artifacts="$work/artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    dirs=("$corpus" "fuzz/corpus/$t")
    [ -d "fuzz/regressions/$t" ] && dirs+=("fuzz/regressions/$t")
    dict=()
    [ -f "fuzz/dicts/$t.dict" ] && dict=("-dict=fuzz/dicts/$t.dict")
    log="$work/$t.log"
    before=$(find "$artifacts" -type f | wc -l)
    status=0
    nice "$bin/$t" "${dirs[@]}" "${dict[@]}" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
      -artifact_prefix="$artifacts/" >"$log" 2>&1 || status=$?
    crashes=$(($(find "$artifacts" -type f | wc -l) - before))
    stats=$(grep -E '^#[0-9]+.* cov: ' "$log" | tail -n 1 || true)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$stats")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$stats")
    corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$stats")
    line=$(printf '%-13s %10s %8s %7s %7s %12s %8s' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" \
      "${corp:-?}" "$crashes")
    summary+=("$line")
    echo "$line"
    if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ]; then
      failed+=("$t")
      grep -E -m 5 'panicked at|ERROR: libFuzzer|Test unit written' "$log" || true
    fi
  done
  echo
  echo "== ${seconds} s per target (logs, corpus and artifacts in target/fuzz/)"
  printf '%-13s %10s %8s %7s %7s %12s %8s\n' target executions exec/s cov ft corpus crashes
  printf '%s\n' "${summary[@]}"
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "== fuzzing passed"
