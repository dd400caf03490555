#!/usr/bin/env bash
# Home Assistant as the oracle for our MQTT discovery: every discovery payload live virtual boards publish (each
# fixtures/configs/*.json, and meter types 0..10 with and without allownegativerate) goes through HA's own
# discovery code, platform schemas, entity creation and state writes, with the boards' state messages; any error
# or warning HA logs fails the run. HA 2024.3.3 (a venv) and the current HA 2026.2.3 (a Debian trixie chroot).
# Installs what it needs under target/home-assistant (cached: a second run installs nothing).
#
#   ci/home-assistant/run.sh [--stable-only] [--require-current]
#
#   --stable-only       HA 2024.3.3 only (also METERRIG_HA_CURRENT=0)
#   --require-current   fail when the current HA cannot be installed (it needs root for debootstrap and chroot;
#                       without root it is otherwise skipped with a note)
#
# Environment: METERRIG_HA_HOME (default target/home-assistant: installs, caches, captures, results).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CURRENT="${METERRIG_HA_CURRENT:-1}"
REQUIRE_CURRENT=0
for arg in "$@"; do
  case "$arg" in
    --stable-only) CURRENT=0 ;;
    --require-current) REQUIRE_CURRENT=1 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done
export METERRIG_HA_HOME="${METERRIG_HA_HOME:-$ROOT/target/home-assistant}"
mkdir -p "$METERRIG_HA_HOME"
HA_HOME="$(cd "$METERRIG_HA_HOME" && pwd)"
STABLE=2024.3.3
LATEST=2026.2.3
PY="$HA_HOME/venv-$STABLE/bin/python"
START=$(date +%s)
since() { echo "$(( $(date +%s) - ${1:-$START} )) s"; }

if [ "$CURRENT" = 1 ] && [ "$(id -u)" != 0 ]; then
  if [ "$REQUIRE_CURRENT" = 1 ]; then
    echo "run.sh: HA $LATEST needs root (debootstrap, chroot)" >&2
    exit 1
  fi
  echo "run.sh: not root: HA $LATEST skipped (it lives in a debootstrap chroot); HA $STABLE only"
  CURRENT=0
fi

t=$(date +%s)
echo "== Home Assistant $STABLE"
"$HERE/install.sh"
if [ "$CURRENT" = 1 ]; then
  echo "== Home Assistant $LATEST"
  "$HERE/install.sh" --current
fi
echo "install: $(since "$t")"

t=$(date +%s)
echo "== the rig and the virtual board (release)"
(cd "$ROOT" && cargo build --release -q -p harness -p virtual-board)
echo "build: $(since "$t")"

t=$(date +%s)
echo "== live boards on the rig's broker"
CAPTURE="$HA_HOME/captures"
"$PY" "$HERE/capture_live.py" --hil "$ROOT/target/release/hil" --board "$ROOT/target/release/virtual-board" \
  --out "$CAPTURE"
echo "capture: $(since "$t")"

# An oracle that never fails proves nothing: the validator must find the known faults of samples/mixed.jsonl.
t=$(date +%s)
echo "== the oracle finds known faults (samples/mixed.jsonl)"
selftest() {  # VERSION [--current]
  local version=$1 out
  shift
  if ! out=$("$PY" "$HERE/test_validate_discovery.py" "$@" 2>&1); then
    echo "$out"
    echo "run.sh: validate_discovery.py no longer finds what HA $version reports" >&2
    exit 1
  fi
  echo "HA $version: $(echo "$out" | tail -1)"
}
selftest "$STABLE"
[ "$CURRENT" = 1 ] && selftest "$LATEST" --current
echo "self-test: $(since "$t")"

t=$(date +%s)
echo "== every captured payload through Home Assistant's discovery"
results=()
validate() {  # VERSION COMMAND...
  local version=$1 out="$HA_HOME/results-$1.jsonl" rc=0
  shift
  "$@" --startup "$CAPTURE/all.jsonl" > "$out" || rc=$?
  if [ "$rc" -gt 1 ]; then  # 1: HA reported errors (summarized below); 2: HA did not start
    echo "run.sh: validate_discovery.py failed under HA $version (exit $rc)" >&2
    exit 1
  fi
  results+=("$out")
}
validate "$STABLE" "$PY" "$HERE/validate_discovery.py"
[ "$CURRENT" = 1 ] && validate "$LATEST" "$HERE/current.sh" validate_discovery.py
echo "validation: $(since "$t")"

echo "== verdict"
status=0
python3 "$HERE/summarize.py" --capture "$CAPTURE/all.jsonl" "${results[@]}" || status=$?
echo "results: ${results[*]}"
echo "Home Assistant run: $(since) in all"
exit "$status"
