"""Training at the released learning rate 0.05: the committed CPU measurements under
``results/bench/`` (``hinas bench train-stability`` and ``hinas bench side-by-side``, described in
``results/bench/README.md``) as chapter 4 shows them, and the rule it reads them by
(:data:`RECOVERED_BELOW`, applied by :func:`recovered`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

# A run has recovered when the mean loss of its last iterations is below this fraction of the
# mean of its first ones (windows of a sixth of the run, at most ten iterations: hinas.bench.measure).
# A fall of 30% is far outside the wobble of such short windows, and the committed runs fall on
# either side with room to spare: the recovered ones end at 0.25x and 0.39x their start, the
# others at 0.88x or above (up to 1e7x, diverged).
RECOVERED_BELOW = 0.7

# the settings each group of runs is labelled by, in the order the chapter lists them
SETTING_LABELS = ((("ones", "gradient"), "today's BatchNorm start"),
                  (("torch1", "gradient"), "torch 1.0's start and the released loss (the defaults)"),
                  (("torch1", "clamp"), "torch 1.0's start with the SSIM floor"))


def _bench(repo) -> Path:
    return Path(repo) / "results" / "bench"


def recovered(last: float, first: float) -> bool:
    """Whether a loss that went from ``first`` to ``last`` has recovered (:data:`RECOVERED_BELOW`)."""
    return last < RECOVERED_BELOW * first


def stability_runs(repo) -> pd.DataFrame:
    """One row per committed ``train_stability_*.json``, in the order the chapter reads them: the
    settings and seed that tell the runs apart, the end against the start (the recovery rule) and
    whether every loss is finite, then the losses, the batches with SSIM <= 0, and the file."""
    rows = []
    for path in sorted(_bench(repo).glob("train_stability_*.json")):
        r = json.loads(path.read_text())
        rows.append({"bn_init": r["bn_init"], "SSIM <= 0": r["nonpositive_ssim_mode"],
                     "iterations": r["iterations"], "seed": r["seed"], "last / first": r["ratio_last_first"],
                     "finite": r["finite"], "first 10 loss": r["first"], "last 10 loss": r["last"],
                     "max loss": r["max_loss"], "batches with SSIM <= 0": r["nonpositive_ssim"], "file": path.name})
    return pd.DataFrame(rows)


def _compact(v):
    """A loss or ratio for the table: as it is, or in three significant digits once it has more
    than five integer digits (a diverged run reaches 1e7)."""
    return f"{v:.3g}" if isinstance(v, (int, float)) and np.isfinite(v) and abs(v) >= 1e5 else v


def stability_view(runs: pd.DataFrame) -> pd.DataFrame:
    """:func:`stability_runs` as chapter 4 shows it: each run named by its file under
    ``results/bench/`` without the ``train_stability_`` prefix, diverged losses in three digits."""
    out = runs.copy()
    for col in ("last / first", "first 10 loss", "last 10 loss", "max loss"):
        out[col] = [_compact(v) for v in out[col]]
    out["file"] = [Path(f).stem.removeprefix("train_stability_") for f in out["file"]]
    return out.rename(columns={"file": "run (results/bench/train_stability_*.json)"})


def stability_reading(runs: pd.DataFrame) -> Optional[str]:
    """Per setting (:data:`SETTING_LABELS`): each run's end against its start, and how many runs
    recovered (:func:`recovered`) and stayed finite; None without runs."""
    if not len(runs):
        return None
    lines = []
    for (bn, mode), label in SETTING_LABELS:
        rs = runs[(runs.bn_init == bn) & (runs["SSIM <= 0"] == mode)]
        if not len(rs):
            continue
        ends = ", ".join(f"{r['last / first']:,.2f}x (seed {r.seed}, {r.iterations} iterations)" for _, r in rs.iterrows())
        below = sum(recovered(r, 1.0) for r in rs["last / first"])
        lines.append(f"{label}: {ends}: {below} of {len(rs)} run(s) end below {RECOVERED_BELOW}x their start, "
                     f"{int(rs.finite.sum())} of {len(rs)} stay finite")
    return ("At lr 0.05, the mean loss over the last iterations of a run against the first (a sixth of the run, "
            "at most ten iterations each):\n\n" + "\n".join(f"* {line}" for line in lines) +
            "\n\nThese are short CPU runs on random genotypes, not a statement about 600k iterations.")


def side_by_side_reading(repo) -> Optional[str]:
    """Our training step against the released code's on the same weights and batches
    (``side_by_side_dn_seed0.json``), and whether the released recipe itself recovered; None
    when the file is not committed."""
    side = _bench(repo) / "side_by_side_dn_seed0.json"
    if not side.exists():
        return None
    r = json.loads(side.read_text())
    nan_its = r["released_nan_iterations"]
    released = [t["released"] for t in r["trace"]]
    tail = [v for v in released[-10:] if np.isfinite(v)]
    return (f"Side by side with the released code ({r['released_code'].get('commit', 'its release')[:7]}, "
            f"{r['iterations']} iterations, same weights and batches, {r['device']}): the initial outputs differ "
            f"by {r['initial_output_max_abs_diff']:.0e}; the losses differ by at most "
            f"{r['max_loss_diff_before_it']:.1e} until iteration {r['first_nonpositive_ssim_iteration']}, the first "
            f"batch whose mean SSIM is not positive. From there the released code's loss value is NaN at "
            f"{len(nan_its)} of {r['iterations']} iterations while both runs keep training on a finite "
            f"gradient; after that first spike the two trajectories part. The released code's own loss goes "
            f"from {released[0]:.3f} (iteration 1) to {released[-1]:.3f} (iteration {r['iterations']}; mean of its last "
            f"{len(tail)} finite values {np.mean(tail):.3f})"
            + (": the released recipe recovered here." if recovered(np.mean(tail), released[0]) else
               ": on this genotype and these batches the released recipe itself has not recovered, so a run of ours "
               "that does not recover is no deviation from it."))
