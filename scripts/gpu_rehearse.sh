#!/usr/bin/env bash
# A GPU window rehearsed on this CPU machine (issues 21/22: prepare on the CPU, spend the window on
# evidence). As close to the GPU machine as a CPU gets: its Python (3.12), torch 2.11 and the other
# packages of its image that hinas, its tests and the chapters' wheels import
# (scripts/gpu_image_packages.txt), no graphviz (neither the Python package nor `dot`), and the tree
# as it travels (no .git; .gpu from `make gpu-pack GPU_NOTEBOOKS=1`). It then runs
# scripts/gpu_window.sh on the CPU (HINAS_WINDOW_DEVICE=cpu: the speed check cannot time CUDA steps,
# so the campaign falls back to the eager path, as after a failed check on a GPU) and
# scripts/gpu_collect.sh into a copy of the results (unpack, status, verify). It checks the flow and
# the software, not the timing: the plan's estimates are a GPU's, so an item may overrun on the CPU.
# Found by its first run: papermill's wheel needs the machine's attrs, and a failing papermill import
# was a traceback in every chapter (now one line, exit 2).
# Usage, from the repository root: scripts/gpu_rehearse.sh [SECONDS] [SCRATCH]   (make gpu-rehearse)
# SECONDS: the window (600); SCRATCH: its folder (/tmp/hinas-gpu-rehearsal; the venv, about 5 GB
# with torch's CUDA libraries, is kept there and reused while the package list is unchanged).
# Exit status: the window's when it failed (scripts/gpu_window.sh), else that of collect and verify.
set -u
seconds=${1:-600}
scratch=${2:-/tmp/hinas-gpu-rehearsal}
[ -d .gpu/data ] || { echo "gpu_rehearse: no .gpu/data here; run make gpu-pack first (GPU_NOTEBOOKS=1 for the chapters)" >&2; exit 2; }
py312=""  # the first that runs as 3.12 (a pyenv shim may be found and still not run)
for c in ${PY312:-} $(command -v python3.12) "$HOME"/.pyenv/versions/3.12*/bin/python3.12; do
  "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null && { py312=$c; break; }
done
[ -n "$py312" ] || { echo "gpu_rehearse: no Python 3.12 (the GPU machine's) runs here; set PY312=/path/to/python3.12" >&2; exit 2; }
mkdir -p "$scratch" && scratch=$(cd "$scratch" && pwd)
venv=$scratch/venv
stamp="$venv/.packages-$(sha256sum scripts/gpu_image_packages.txt | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "== gpu_rehearse: a Python $("$py312" -c 'import platform; print(platform.python_version())') venv with the GPU machine's packages in $venv"
  rm -rf "$venv" && "$py312" -m venv "$venv" && "$venv/bin/pip" install -q -r scripts/gpu_image_packages.txt \
    && touch "$stamp" || { echo "gpu_rehearse: the packages of scripts/gpu_image_packages.txt did not install (pip's message above)" >&2; exit 2; }
fi
"$venv/bin/python" -c "import graphviz" 2>/dev/null && { echo "gpu_rehearse: graphviz is importable in $venv; the GPU machine has none" >&2; exit 2; }
# a PATH without `dot`: every folder of PATH mirrored as links, less dot
bin=$scratch/bin-without-dot; rm -rf "$bin"; mkdir -p "$bin"
IFS=: read -ra dirs <<< "$PATH"
for d in "${dirs[@]}"; do
  for f in "$d"/*; do b=${f##*/}; [ "$b" = dot ] || [ -e "$bin/$b" ] || ln -s "$f" "$bin/$b" 2>/dev/null; done
done
# the tree as it travels: what git tracks or would track, .gpu, and no .git
tree=$scratch/tree; out=$scratch/out; rm -rf "$tree" "$out"; mkdir -p "$tree"
git ls-files -z -co --exclude-standard | tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C "$tree"
cp -R .gpu "$tree/"
echo "== gpu_rehearse: scripts/gpu_window.sh $seconds on the CPU, in $tree"
(cd "$tree" && env -u HINAS_DATA PATH="$venv/bin:$bin" HINAS_WINDOW_DEVICE=cpu bash scripts/gpu_window.sh "$seconds" "$out")
window=$?
echo "== gpu_rehearse: scripts/gpu_collect.sh into a copy of results/paper"
home=$scratch/results-paper; rm -rf "$home"; cp -R results/paper "$home"
bash scripts/gpu_collect.sh "$out" "$home"
collect=$?
rc=$window; [ "$rc" -eq 0 ] && rc=$collect  # a failed window fails the rehearsal, even when its results verify
echo "== gpu_rehearse: done (window exit $window, collect and verify exit $collect); logs in $out, the results in $home"
exit $rc
