#!/usr/bin/env bash
# Drive the workbench in tmux as a person would and save what the screen shows after each step.
#
#   bench/tmux_drive.sh [OUT_DIR] [WIDTH] [HEIGHT] [DATASET]    (default bench/results/tmux 120 35 demo)
#
# DATASET "pets37" generates a 37-class dataset with the Oxford-IIIT Pets breed names (6 small JPEGs each,
# tests/conftest.py make_pets_like) — the long names that push numbers off a narrow screen.
# Opens `tlbench` in a detached tmux session, browses the data, opens a preview, tries to open a folder that
# does not exist (the loaded dataset must stay open), looks at the model settings, trains a probe (waits for
# it), reads results and runs, visits attack and dream, opens help, starts a second training and quits with
# `q` during it (the screen must say "stopping…" and the app must be gone within 5 s). Each step's screen is saved as plain text (NN-name.txt) and with colours
# (NN-name.ansi: `less -R` or `cat` in a truecolor terminal shows it). Set TLBENCH_CMD to run another build
# (default: this checkout's code through the project venv).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-$ROOT/bench/results/tmux}"
W="${2:-120}"
H="${3:-35}"
DATA="${4:-demo}"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
CMD="${TLBENCH_CMD:-$PY -m tui.main}"
SESSION="tlbench-drive-$$"
WORK="$(mktemp -d)"
mkdir -p "$OUT"

cleanup() { tmux kill-session -t "$SESSION" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

ARGS=""
if [ "$DATA" = "pets37" ]; then
  (cd "$ROOT/tests" && "$PY" -c "import sys; from pathlib import Path; from conftest import make_pets_like; \
make_pets_like(Path(sys.argv[1]), per_class=6, size=64)" "$WORK/pets37")
  ARGS="$WORK/pets37"
elif [ "$DATA" != "demo" ]; then
  ARGS="$DATA"
fi

# A private runs folder, feature cache and workbench state, so the capture does not depend on earlier runs.
tmux new-session -d -s "$SESSION" -x "$W" -y "$H" \
  "cd '$ROOT' && TERM=xterm-256color COLORTERM=truecolor TLBENCH_RUNS='$WORK/runs' TLBENCH_CACHE='$WORK/cache' TLBENCH_STATE='$WORK/state.json' $CMD $ARGS; echo; echo \"tlbench exited with status \$?\"; sleep 600"

step=0
shot() {  # shot NAME: save the screen as it is now
  step=$((step + 1))
  local name; name=$(printf "%02d-%s" "$step" "$1")
  tmux capture-pane -p -t "$SESSION" > "$OUT/$name.txt"
  tmux capture-pane -p -e -t "$SESSION" > "$OUT/$name.ansi"
  echo "saved $OUT/$name.txt"
}
keys() { tmux send-keys -t "$SESSION" "$@"; }
wait_for() {  # wait_for TEXT SECONDS: until the screen shows TEXT
  local text="$1" limit="${2:-30}" waited=0
  until tmux capture-pane -p -t "$SESSION" | grep -qF -- "$text"; do
    sleep 0.5; waited=$((waited + 1))
    if [ "$waited" -ge $((limit * 2)) ]; then echo "timed out waiting for: $text" >&2; shot "timeout"; exit 1; fi
  done
}

wait_for "images ·" 60          # the scan is done: "digits · class-folders · 1797 images · …"
sleep 1; shot data
keys Down Down Down; sleep 1; shot data-class-3
keys g; sleep 0.5; keys Right Right; sleep 0.5; keys Enter; sleep 1; shot preview
keys Escape; sleep 0.3
keys u; sleep 0.5; shot unusable
keys u; sleep 0.3
keys o; sleep 0.5; keys C-u; keys -l "/no/such/folder"; sleep 0.3; keys Enter; sleep 2; shot open-mistyped
keys Escape; sleep 0.5
keys 2; wait_for "Training settings" 60; sleep 0.5; shot model
keys 3; sleep 0.5; shot train-ready
keys t; wait_for "epoch" 120; sleep 1; shot train-running
wait_for "Done." 300; sleep 6; shot train-done   # after the "Training done" toast has gone
keys 4; sleep 1; shot results
keys 7; wait_for "run(s) in" 30; sleep 0.5; shot runs
keys Enter; sleep 1; shot run-detail
keys Escape; sleep 0.3
keys 5; wait_for "Model: run" 30; sleep 0.5; shot attack
keys 6; wait_for "Model: run" 30; sleep 0.5; shot dream
keys '?'; sleep 0.5; shot help
keys Escape; sleep 0.3
keys C-p; sleep 0.5; keys s t a r t; sleep 0.5; shot palette
keys Escape; sleep 0.3
keys 3; sleep 0.5; keys t; wait_for "epoch" 120; sleep 1
keys q; sleep 0.3; shot quit-during-job
t0=$(date +%s.%N)
wait_for "tlbench exited" 30
t1=$(date +%s.%N)
shot quit
echo "q during a job: the app was gone after $(echo "$t1 - $t0 + 0.3" | bc) s" | tee "$OUT/quit-seconds.txt"
echo "done: $step screens in $OUT"
