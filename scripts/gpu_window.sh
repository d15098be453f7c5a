#!/usr/bin/env bash
# One GPU window, as one command on the GPU machine (README "Reproduce on a GPU"):
#   1. the fast path's check: its CUDA tests (equivalence with the eager path) and
#      `hinas bench gpu-speed` beside the released code (.gpu/released, from `make gpu-pack`);
#      skipped where results/bench/gpu_speed_<gpu>.json measured this tree's step code already
#      (`hinas bench gpu-levers --if-current`; GPU_CHECK=1 runs it anyway);
#   2. once, where .gpu/wheels holds the wheels of `make gpu-pack GPU_NOTEBOOKS=1` and no run is
#      sealed yet: the chapter notebooks executed with papermill on the GPU (scripts/gpu_notebooks.sh,
#      at most GPU_NOTEBOOKS_SECONDS, default 180), sealed as results/paper/notebooks-smoke-cuda;
#   3. the campaign (paper plan) with the time that is left, on the levers the check
#      measured as fastest, or on the eager path if the fast one failed its equivalence check.
# Usage, from the repository root: scripts/gpu_window.sh SECONDS OUTDIR
# (where the tree travelled without .git, every provenance block names the commit `make gpu-pack`
# recorded in .gpu/revision; HINAS_GIT_REVISION=<commit> overrides it; HINAS_WINDOW_DEVICE=cpu is for
# scripts/gpu_rehearse.sh only: the same flow on the CPU, where the speed check fails and falls back)
# OUTDIR receives the logs, the benchmark JSON, results.tgz and notebooks.tgz (back home:
# hinas campaign unpack OUTDIR/results.tgz OUTDIR/notebooks.tgz --results results/paper).
# Exit status: the campaign's (1: an item failed, 2: a bad call), else 1 when the chapters failed or
# were cut, else 0. A failed speed check is none: the campaign then runs on the eager path.
set -u
total=${1:?usage: scripts/gpu_window.sh SECONDS OUTDIR}
out=${2:?usage: scripts/gpu_window.sh SECONDS OUTDIR}
start=$(date +%s)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ -z "${HINAS_GIT_REVISION:-}" ] && [ ! -d .git ] && [ -f .gpu/revision ]; then
  HINAS_GIT_REVISION=$(cat .gpu/revision); export HINAS_GIT_REVISION
fi
device=${HINAS_WINDOW_DEVICE:-cuda}
rc=0
mkdir -p "$out"
elapsed() { echo $(( $(date +%s) - start )); }
gpu=$(python3 -c "from hinas.engine.common import device_name, gpu_model; print((gpu_model(device_name('cuda')) or 'gpu').lower())" 2>/dev/null || echo gpu)
bench="results/bench/gpu_speed_${gpu}.json"
code=""; [ -d .gpu/released/one_stage_nas ] && code="--code .gpu/released"
genotype="results/paper/train-dn50-s0/genotype.json"

if [ -z "${GPU_CHECK:-}" ] && [ -f "$bench" ] && python3 -m hinas bench gpu-levers "$bench" --if-current >/dev/null 2>&1; then
  # a committed report measured this very step code on this kind of GPU: its levers stand
  echo "== check: not run again: $bench measured this tree's step code on this GPU (GPU_CHECK=1 runs it)"
else
  echo "== check: CUDA tests of the fast path ($(elapsed) s)"
  timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_fast_path.py tests/test_device_rescale.py 2>&1 | tee "$out/check_pytest.log" | tail -15
  echo "== check: hinas bench gpu-speed ($(elapsed) s)"
  timeout 240 python3 -m hinas bench gpu-speed $code --genotype "$genotype" --equivalence --out "$bench" \
    > "$out/check_bench.log" 2>&1
  echo "bench exit $?"; tail -25 "$out/check_bench.log"
  [ -f "$bench" ] && cp "$bench" "$out/"
fi
sets=$(python3 -m hinas bench gpu-levers "$bench" 2>>"$out/check_bench.log" || echo "--set cuda_graphs=false --set fused_optimizer=false --set native_batchnorm=false --set channels_last=false")
if [ -d .gpu/wheels ] && [ ! -e results/paper/notebooks-smoke-$device/done ]; then
  # at most GPU_NOTEBOOKS_SECONDS, and never the campaign's last 240 s (it needs them more)
  nb=$(( total - $(elapsed) - 25 - 240 )); cap=${GPU_NOTEBOOKS_SECONDS:-180}; [ "$nb" -gt "$cap" ] && nb=$cap
  if [ "$nb" -ge 90 ]; then
    echo "== the chapters with papermill on the GPU, once, at most $nb s ($(elapsed) s)"
    bash scripts/gpu_notebooks.sh "$nb" "$out" smoke "$device" || rc=1  # why: in notebooks.log
  else
    echo "== the chapters on the GPU: not in this window (only $nb s would be left beside the campaign)"
  fi
fi
echo "== campaign with $sets ($(elapsed) s)"
left=$(( total - $(elapsed) - 25 ))
if [ "$left" -gt 60 ]; then
  python3 -m hinas campaign run --plan paper --budget "$left" --results results/paper --data-root .gpu/data \
    --device "$device" --archive "$out/results.tgz" $sets 2>&1 | tee "$out/campaign.log" | grep -v '^{' | tail -40  # the JSON report stays in the log
  campaign=${PIPESTATUS[0]}; [ "$campaign" -ne 0 ] && rc=$campaign
else
  echo "no time left for the campaign ($left s)"
fi
echo "== window done after $(elapsed) s (exit $rc)"
exit $rc
