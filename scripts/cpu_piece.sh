#!/usr/bin/env bash
# One piece of a long plan item on this machine's CPU, in the background of a session (README:
# "Advance the plan on a CPU"). Usage, from the repository root:
#
#   scripts/cpu_piece.sh BUDGET_SECONDS [ITEM[,ITEM...]] [THREADS] [CORES]
#
# It runs from a separate checkout of HEAD (a git worktree, $HINAS_RUN_DIR, default ../hinas-run),
# so edits to this tree never reach the running process; that checkout's results folder starts as
# HEAD's (the item's committed checkpoint). ITEM defaults to search-dn-s0-full; several, separated
# by commas, run in plan order in the same piece (search-dn-s0-full,train-dn50-full-s0-3k: the
# training starts as soon as the search finishes, without waiting for a session). THREADS defaults to 1 and
# CORES (taskset) to the last core, leaving the others to the session's own work. The campaign pauses
# the item cleanly at the end of the epoch under way (a search overruns BUDGET by up to one epoch,
# about 8 minutes at the paper's size: keep that margin); the script then verifies the folder and
# prints the command that copies the piece back into this tree, to commit.
set -euo pipefail
budget=${1:?usage: scripts/cpu_piece.sh BUDGET_SECONDS [ITEM[,ITEM...]] [THREADS] [CORES]}
IFS=, read -ra items <<< "${2:-search-dn-s0-full}"
threads=${3:-1}
cores=${4:-$(( $(nproc) - 1 ))}
plan=${HINAS_PLAN:-paper}
results=${HINAS_PLAN_RESULTS:-results/paper}
run_dir=${HINAS_RUN_DIR:-../hinas-run}
data=${HINAS_DATA:-../shared/data}
root=$(git rev-parse --show-toplevel)
py=${HINAS_PYTHON:-$root/.venv/bin/python}
data=$(cd "$data" 2>/dev/null && pwd) || { echo "cpu_piece: data folder $data not found; set HINAS_DATA" >&2; exit 2; }
[ -x "$py" ] || { echo "cpu_piece: $py not found; run make setup-python first (or set HINAS_PYTHON)" >&2; exit 2; }
head=$(git rev-parse HEAD)
for item in "${items[@]}"; do
  if [ -n "$(git status --porcelain -- "$results/$item")" ]; then
    echo "cpu_piece: $results/$item has uncommitted changes; commit the last piece first (the run starts from HEAD)" >&2
    exit 2
  fi
  # a piece that ran there and was not copied back and committed here is never overwritten
  if [ -d "$run_dir/$results/$item" ] && ! diff -rq "$run_dir/$results/$item" "$results/$item" > /dev/null 2>&1; then
    echo "cpu_piece: $run_dir/$results/$item differs from $results/$item (a piece not copied back?); copy it and commit, or remove it" >&2
    exit 2
  fi
done
if [ -d "$run_dir" ]; then
  git -C "$run_dir" checkout -qf --detach "$head"
  git -C "$run_dir" clean -qfd -- "$results"
else
  git worktree add -q --detach "$run_dir" "$head"
fi
cd "$run_dir"
echo "cpu_piece: ${items[*]} of $plan at ${head:0:12}, $threads thread(s) on core(s) $cores, budget $budget s" >&2
status=0
PYTHONPATH=$PWD OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=$threads nice -n 10 taskset -c "$cores" \
  "$py" -m hinas campaign run --plan "$plan" --results "$results" --budget "$budget" --device cpu \
  --data-root "$data" --set threads="$threads" --only "${items[@]}" > /dev/null || status=$?
for item in "${items[@]}"; do
  PYTHONPATH=$PWD "$py" -m hinas campaign status --plan "$plan" --results "$results" | grep -F " $item " || true
done
PYTHONPATH=$PWD "$py" -m hinas verify "$results" --data-root "$data" > /dev/null || status=$?
for item in "${items[@]}"; do
  [ -d "$results/$item" ] || continue  # an item this piece did not reach
  echo "cpu_piece: copy it back with: rm -rf $root/$results/$item && cp -a $run_dir/$results/$item $root/$results/" >&2
done
exit $status
