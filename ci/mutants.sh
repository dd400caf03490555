#!/usr/bin/env bash
# Mutation testing of the firmware against the scenario suite ALONE (what runs on a real board): cargo-mutants lists
# the mutants of firmware/core and firmware/net-proto; each one is applied to a scratch copy of the repository,
# the virtual board is built with it (profile `mutants`) and `hil run --fail-fast` runs the features against that
# board. No unit test runs. Installs cargo-mutants itself when it is missing.
#
#   ci/mutants.sh [--seed N] [--sample K | --all] [--package P]... [--file GLOB]... [--rev REV | --worktree]
#                 [--list] [--keep-going]
#
#   --seed N        which mutants a sample takes (default 1); the same seed and tree give the same sample
#   --sample K      K mutants (default 30), drawn without replacement by a seeded RNG over the sorted list
#   --all           every mutant (a full run: hours, see the README)
#   --package P     meter-core and/or net-proto (default both)
#   --file GLOB     only mutants in files matching GLOB (cargo mutants --file), e.g. 'firmware/core/src/gpio.rs'
#   --rev REV       test this commit (default HEAD: committed sources only, so a run is reproducible)
#   --worktree      test the working tree as it is instead (uncommitted changes included)
#   --list          list the (sampled) mutants and stop
#   --min-score P   exit 1 only when the score is below P percent (CI: a drop shows, a known survivor does not)
#   --target-dir D  cargo's target dir (default target/mutants-work/target; CI passes its own to share dependencies)
#   --concurrency C scenarios at once in each suite run (default: hil's)
#
# Verdicts: caught (the suite failed: a scenario failed, or a board did not start/come online twice, the second time
# with 15 s steps), missed (the suite passed), unviable (the mutant does not build), timeout (the suite ran longer
# than its limit). The score is
# (caught + timeout) / (caught + missed + timeout). Output: a line per mutant, then per-file scores and the missed
# mutants with their locations; target/mutants-work/results.tsv keeps them. Exit status: 0 when none was missed
# (with --min-score: when the score reaches it), 1 otherwise, 2 when the unmutated suite already fails (nothing can
# be measured).
#
# Everything happens under target/mutants-work/ (scratch copy, its own cargo target dir unless --target-dir, logs):
# the checkout's sources are never touched. A mutant whose patch does not apply, or whose suite run ends in neither a
# verdict nor a timeout, is an error: any error, or a sample with no viable mutant, exits 2 (nothing was measured).
set -euo pipefail
# One compound command: bash reads it whole before running it, so editing this file during a run is safe.
{
cd "$(dirname "$0")/.."
root=$(pwd)
# The mutants profile builds incrementally; CI's CARGO_INCREMENTAL=0 would make every mutant a full rebuild.
unset CARGO_INCREMENTAL

seed=1
sample=30
all=0
packages=()
files=()
rev=HEAD
worktree=0
list_only=0
concurrency=()
min_score=
target_dir=
while [ $# -gt 0 ]; do
  case "$1" in
    --seed) seed=$2; shift 2 ;;
    --sample) sample=$2; shift 2 ;;
    --all) all=1; shift ;;
    --package) packages+=("$2"); shift 2 ;;
    --file) files+=(--file "$2"); shift 2 ;;
    --rev) rev=$2; shift 2 ;;
    --worktree) worktree=1; shift ;;
    --list) list_only=1; shift ;;
    --concurrency) concurrency=(--concurrency "$2"); shift 2 ;;
    --min-score) min_score=$2; shift 2 ;;
    --target-dir) target_dir=$(realpath -m "$2"); shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#packages[@]} -gt 0 ] || packages=(meter-core net-proto)

if ! cargo mutants --version >/dev/null 2>&1; then
  echo "== installing cargo-mutants"
  cargo install cargo-mutants --locked
fi

work="$root/target/mutants-work"
src="$work/src"
export CARGO_TARGET_DIR="${target_dir:-$work/target}"
# The rig in release; the boards in the `mutants` profile (Cargo.toml: opt-level 1, incremental), so that a mutant
# recompiles what it touches quickly.
mkdir -p "$work"

echo "== scratch copy of $([ $worktree = 1 ] && echo 'the working tree' || echo "$rev") in $src"
rm -rf "$src"
mkdir -p "$src"
if [ $worktree = 1 ]; then
  # Tracked and untracked-but-not-ignored files, as they are now.
  git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
    [ -e "$f" ] && printf '%s\0' "$f"
  done | tar -cf - --null -T - | tar -xf - -C "$src"
else
  git archive "$rev" | tar -xf - -C "$src"
fi

echo "== mutants of ${packages[*]}"
pkg_args=()
for p in "${packages[@]}"; do pkg_args+=(-p "$p"); done
# Left out of every run, with the reason (README, "Mutation testing"): functions no board calls, only the core's unit
# tests (accessors the shells never use); a mutant there changes nothing a board does.
unit_test_only='replace (Engine::(cycle_counter|last_error|mqtt_connected)|HttpResponse::text) '
(cd "$src" && cargo mutants --list --json --diff --no-config --exclude-re "$unit_test_only" \
  "${pkg_args[@]}" "${files[@]}") >"$work/all.json"

# The sample: a seeded draw over the list in its (stable, source) order; each mutant's diff in its own file.
python3 - "$work" "$seed" "$sample" "$all" <<'PY'
import json, os, random, sys
work, seed, sample, full = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
mutants = json.load(open(os.path.join(work, "all.json")))
idx = list(range(len(mutants))) if full or sample >= len(mutants) else sorted(random.Random(seed).sample(range(len(mutants)), sample))
os.makedirs(os.path.join(work, "diffs"), exist_ok=True)
for name in os.listdir(os.path.join(work, "diffs")):
    os.remove(os.path.join(work, "diffs", name))
with open(os.path.join(work, "plan.tsv"), "w") as plan:
    for n, i in enumerate(idx):
        m = mutants[i]
        path = os.path.join(work, "diffs", f"{n:05d}.diff")
        open(path, "w").write(m["diff"])
        plan.write(f"{i}\t{m['file']}\t{path}\t{m['name']}\n")
print(f"{len(idx)} of {len(mutants)} mutants (seed {seed})")
PY

if [ $list_only = 1 ]; then
  cut -f4 "$work/plan.tsv"
  exit 0
fi

cd "$src"
echo "== the rig and the unmutated board (release)"
t0=$(date +%s)
nice -n 15 cargo build -q --release -p harness
# The board as the mutants build it (virtual-board alone: the same features as each mutant's build).
nice -n 15 cargo build -q --profile mutants -p virtual-board
hil="$CARGO_TARGET_DIR/release/hil"
board="$CARGO_TARGET_DIR/mutants/virtual-board"
echo "built in $(( $(date +%s) - t0 )) s"

suite() { # suite LOG [STEP_SECS]: runs the scenarios against $board; the exit status is hil's (124: the time limit)
  # A failing step gives up after 5 s (not 15): a caught mutant's run ends sooner; the baseline proves 5 s is enough.
  timeout --kill-after=10 "$limit" nice -n 15 "$hil" run --board-bin "$board" --fail-fast --step-timeout "${2:-5}" \
    "${concurrency[@]}" --evidence "$work/evidence" --seed 1 >"$1" 2>&1
}

echo "== baseline: the suite against the unmutated board"
limit=600
t0=$(date +%s)
if ! suite "$work/baseline.log"; then
  echo "the unmutated suite fails: fix that first (log: $work/baseline.log)"
  grep -E '^hil:|✘' "$work/baseline.log" | head -20
  exit 2
fi
base=$(( $(date +%s) - t0 ))
# A mutant that slows the board down enough is a timeout, not a pass.
limit=$(( base * 4 + 60 ))
echo "suite passed in $base s; a mutant's suite run is stopped after $limit s"

results="$work/results.tsv"
: >"$results"
total=$(wc -l <"$work/plan.tsv")
n=0
while IFS=$'\t' read -r index file diff name; do
  n=$((n + 1))
  t0=$(date +%s)
  cp "$file" "$work/pristine.rs"
  if ! patch -s -p0 --no-backup-if-mismatch "$file" <"$diff" >/dev/null; then
    verdict=error
  elif ! nice -n 15 cargo build -q --profile mutants -p virtual-board >"$work/build.log" 2>&1; then
    verdict=unviable
  else
    set +e
    suite "$work/suite.log"
    rc=$?
    if [ $rc = 2 ]; then
      # hil's exit 2 is the rig's trouble (a board not online in time, a broker) as well as a mutant's (a board that
      # does not boot): once more with the usual 15 s steps, so that load on this machine is not counted as caught.
      suite "$work/suite.log" 15
      rc=$?
    fi
    set -e
    case $rc in
      0) verdict=missed ;;
      1|2) verdict=caught ;;
      124|137) verdict=timeout ;;
      *) verdict="error($rc)" ;;
    esac
    if [ "$verdict" = caught ]; then
      # The first scenario that failed (what caught it), from hil's summary.
      why=$(grep -m1 -oE '^(failed|error): features/[^ ]+' "$work/suite.log" | sed 's/^[a-z]*: //' || true)
    fi
  fi
  cp "$work/pristine.rs" "$file"
  took=$(( $(date +%s) - t0 ))
  printf '%s\t%s\t%s\t%s\t%s\n' "$verdict" "$took" "$file" "$name" "${why:-}" >>"$results"
  why=
  printf '[%d/%d] %-8s %4ss  %s\n' "$n" "$total" "$verdict" "$took" "$name"
done <"$work/plan.tsv"

python3 - "$results" "${min_score:-}" <<'PY'
import collections, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
per = collections.defaultdict(collections.Counter)
for verdict, took, file, name, why in rows:
    per[file][verdict] += 1
def score(c):
    viable = c["caught"] + c["missed"] + c["timeout"]
    return (f"{100 * (c['caught'] + c['timeout']) / viable:5.1f}%" if viable else "   - "), viable
print("\n== per file: caught / viable (unviable, timeout)")
tot = collections.Counter()
for file in sorted(per):
    c = per[file]; tot += c
    s, viable = score(c)
    print(f"{s}  {c['caught'] + c['timeout']:3d}/{viable:<3d} unviable {c['unviable']:3d} timeout {c['timeout']:3d}  {file}")
s, viable = score(tot)
times = [int(r[1]) for r in rows]
print(f"{s}  {tot['caught'] + tot['timeout']:3d}/{viable:<3d} unviable {tot['unviable']:3d} timeout {tot['timeout']:3d}  all"
      f"  ({len(rows)} mutants, {sum(times)} s, {sum(times) / max(len(rows), 1):.0f} s each)")
missed = [r for r in rows if r[0] == "missed"]
print(f"\n== missed ({len(missed)})")
for r in missed:
    print(r[3])
others = [r for r in rows if r[0] not in ("missed", "caught", "unviable", "timeout")]
for r in others:
    print(f"{r[0]}: {r[3]}")
viable = tot["caught"] + tot["missed"] + tot["timeout"]
if others or not viable:
    print(f"\n{len(others)} mutant(s) ended in an error and {viable} were viable: nothing reliable was measured")
    sys.exit(2)
pct = 100 * (tot["caught"] + tot["timeout"]) / viable
if len(sys.argv) > 2 and sys.argv[2]:
    floor = float(sys.argv[2])
    print(f"\nscore {pct:.1f}% against --min-score {floor:g}%: {'ok' if pct >= floor else 'TOO LOW'}")
    sys.exit(0 if pct >= floor else 1)
sys.exit(1 if missed else 0)
PY
exit
}
