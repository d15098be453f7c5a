#!/usr/bin/env bash
# Back where the repository lives, after a GPU window (README "Reproduce on a GPU", step 3):
# unpack the window's archives (hinas campaign unpack: all or nothing, never over a sealed item),
# keep its speed report beside the others, then show the plan's status and verify the results.
# Usage, from the repository root: scripts/gpu_collect.sh OUTDIR [RESULTS]   (RESULTS: results/paper)
# Exit status: that of `hinas verify` (1 when a result differs); 2 when nothing could be unpacked.
set -uo pipefail
out=${1:?usage: scripts/gpu_collect.sh OUTDIR [RESULTS]}
results=${2:-results/paper}
py=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
archives=()
for a in results.tgz notebooks.tgz; do
  if [ -f "$out/$a" ] || [ -f "$out/$a.1" ]; then archives+=("$out/$a"); fi
done
[ ${#archives[@]} -gt 0 ] || { echo "gpu_collect: no results.tgz or notebooks.tgz (or their .1 parts) in $out" >&2; exit 2; }
"$py" -m hinas campaign unpack "${archives[@]}" --results "$results" || exit 2
for b in "$out"/gpu_speed_*.json; do
  [ -f "$b" ] || continue
  if "$py" -m hinas bench gpu-levers "$b" > /dev/null; then    # a readable gpu-speed report
    cp "$b" results/bench/ && echo "gpu_collect: kept $(basename "$b") in results/bench/"
  else
    echo "gpu_collect: $b is not a readable gpu-speed report; not kept" >&2
  fi
done
"$py" -m hinas campaign status --plan paper --results "$results" | tail -4
"$py" -m hinas verify "$results" --images 3
