#!/usr/bin/env bash
# The chapters executed end to end with papermill on the GPU machine, once (issue 22), sealed as
# the item notebooks-<profile>-cuda of results/paper (python -m hinas.book execute).
# The GPU machine lacks papermill, a Jupyter kernel, ipywidgets, bm3d and graphviz: their wheels
# travel in .gpu/wheels (make gpu-pack GPU_NOTEBOOKS=1) and are installed into /tmp, never into
# the machine's own Python; graphviz's `dot` does not travel, so drawings show their DOT source.
# Usage, from the repository root: scripts/gpu_notebooks.sh SECONDS OUTDIR [PROFILE] [DEVICE]
# OUTDIR receives notebooks.log and notebooks.tgz (hinas campaign unpack it into results/paper).
set -u
seconds=${1:?usage: scripts/gpu_notebooks.sh SECONDS OUTDIR [PROFILE] [DEVICE]}
out=${2:?usage: scripts/gpu_notebooks.sh SECONDS OUTDIR [PROFILE] [DEVICE]}
profile=${3:-smoke}
device=${4:-cuda}
results=results/paper
mkdir -p "$out" && out=$(cd "$out" && pwd)
ls .gpu/wheels/*.whl >/dev/null 2>&1 || { echo "gpu_notebooks: no wheels in .gpu/wheels (make gpu-pack GPU_NOTEBOOKS=1)" >&2; exit 2; }
site=$(mktemp -d /tmp/hinas-notebooks-site.XXXXXX)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .gpu/wheels/*.whl \
  > "$out/notebooks_install.log" 2>&1 || { echo "gpu_notebooks: the wheels did not install (see notebooks_install.log)" >&2; exit 2; }
# absolute paths: the kernels run in notebooks/, where a relative PYTHONPATH would name another folder
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
start=$(date +%s)
marker=$(mktemp /tmp/hinas-notebooks-start.XXXXXX)  # files newer than this go back in notebooks.tgz
# --jobs 5: the six chapters side by side (chapter 6 after 4) on the machine's cores and one GPU
env -u HINAS_DATA timeout "$seconds" python3 -m hinas.book execute --results "$results" --profile "$profile" \
  --device "$device" --runs-root /tmp/hinas-notebooks-runs --jobs 5 > "$out/notebooks.log" 2>&1
rc=$?
echo "gpu_notebooks: exit $rc after $(( $(date +%s) - start )) s (124: cut at $seconds s)"
grep -E "^\[book\]|sealed|ERROR|failed|nothing to do" "$out/notebooks.log" | tail -20
# what this stage wrote under the results folder (the sealed item, or the .partial attempt)
( cd "$results" 2>/dev/null && find . -newer "$marker" -type f ! -name '*.tmp' -print0 | tar czf "$out/notebooks.tgz" --null -T - ) \
  || echo "gpu_notebooks: nothing archived"
rm -rf "$site" "$marker"
exit $rc
