#!/usr/bin/env bash
# The workbench in a real Sixel terminal: xterm as a VT340 (`-ti vt340`) under Xvfb, driven by xdotool,
# screenshots with ImageMagick's `import`. Needs (Debian): xterm xvfb xdotool imagemagick.
#   bash bench/xterm_sixel.sh [DATASET [RUNS]]     -> bench/results/xterm_sixel_*.png
# With RUNS (a runs folder whose newest run has a report), also Results' top losses (L) and one zoomed (z).
# TLBENCH_IMAGES is left unset: the workbench finds Sixel by asking the terminal, as it would for a user.
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET=${1:-../shared/data/cats-dogs-dev}
RUNS=${2:-}
OUT=bench/results
WORK=$(mktemp -d)
export DISPLAY=:${XDISPLAY:-97}
Xvfb "$DISPLAY" -screen 0 1400x900x24 >/dev/null 2>&1 &
XVFB=$!
trap 'kill $XVFB 2>/dev/null || true; rm -rf "$WORK"' EXIT
sleep 2
# numColorRegisters: a real VT340 has 16; xterm allows more, and photos need them
xterm -ti vt340 -xrm 'XTerm*numColorRegisters: 1024' \
  -fa 'DejaVu Sans Mono' -fs 10 -geometry 120x35+0+0 -title tlbench \
  -e env TLBENCH_STATE="$WORK/state.json" TLBENCH_RUNS="${RUNS:-$WORK/runs}" COLORTERM=truecolor \
     .venv/bin/tlbench "$DATASET" &
XTERM=$!
sleep "${WAIT_START:-25}"
shot() { import -window root -crop "$(xdotool search --name tlbench getwindowgeometry | awk '/Geometry/{print $2}')+0+0" "$OUT/$1"; echo "$OUT/$1"; }
keys() { xdotool search --name tlbench windowfocus --sync key --delay 150 "$@"; sleep "${WAIT_KEYS:-6}"; }
keys g Right
shot xterm_sixel_data.png
keys b
shot xterm_sixel_batch.png
keys z
shot xterm_sixel_zoom.png
keys Escape Escape
if [ -n "$RUNS" ]; then
  keys 4
  WAIT_KEYS=30 keys L
  shot xterm_sixel_top_losses.png
  keys z
  shot xterm_sixel_top_losses_zoom.png
  keys Escape Escape
fi
keys q
wait $XTERM || true
