"""Whether a training run trained: the rule every reader applies before it scores a run.

A training whose loss went up rather than down, or whose batches sat at a mean SSIM <= 0 for a
large share of the run, has *diverged*: its network is not a result of its architecture and is
named, with the evidence, instead of being scored (issue 33; the book's glances, comparisons and
figures leave it out). The other failure, a network that trained but scores no better than its
noisy input (*did not learn*), needs the test score and the seed rule, so readers decide it with
:func:`hinas.book.compare.run_status`, from :func:`training_health` and the score.

Why these two signs. At the released loss, a batch whose mean SSIM is <= 0 gets the gradient
-1/(x ln 10) of ``log10(1/SSIM)`` (:mod:`hinas.losses`, ``nonpositive_ssim="gradient"``): for
x < 0 it points towards *lower* SSIM, so a run that falls there tends to stay there. Of the
runs committed under ``results/bench/``, those that spiked and recovered had at most 8 % of such
batches, the one that exploded (seed 3, loss x1e7) 30 %; the book's two diverged quick trainings
(issue 33) had 44 % and 46 %.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from hinas.safeio import is_finite_number

__all__ = ["DIVERGED", "OK", "NONPOSITIVE_SHARE", "training_health", "health_from_history"]

OK, DIVERGED = "trained", "diverged"
# a run whose last logged losses are above its first ones went the wrong way as a whole
LOSS_WINDOW_SHARE = 1 / 6  # the first and last sixth of the logged rows (at least one row each)
# more than this share of the iterations at a batch mean SSIM <= 0: the run sat in the trap above
NONPOSITIVE_SHARE = 0.25


def health_from_history(rows: list[dict], iterations: int | None = None) -> dict:
    """:func:`training_health` of logged ``rows`` (``history.csv`` as dicts with ``iteration``,
    ``loss`` and ``nonpositive_ssim``): ``{status, evidence, first_loss, last_loss, max_loss,
    nonpositive_ssim, iterations}``. ``status`` is :data:`OK` or :data:`DIVERGED`."""
    losses = [float(r["loss"]) if r.get("loss") not in (None, "") else float("nan") for r in rows]
    events = sum(int(float(r.get("nonpositive_ssim") or 0)) for r in rows)
    its = iterations or (int(float(rows[-1]["iteration"])) if rows else 0)
    out = {"status": OK, "evidence": "", "first_loss": None, "last_loss": None, "max_loss": None,
           "nonpositive_ssim": events, "iterations": its}
    if not losses:
        out["evidence"] = "no logged loss"
        return out
    k = max(1, int(len(losses) * LOSS_WINDOW_SHARE))
    first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
    finite = [x for x in losses if math.isfinite(x)]
    out.update(first_loss=first, last_loss=last, max_loss=max(finite) if finite else float("nan"))
    reasons = []
    if not all(math.isfinite(x) for x in losses):
        reasons.append("a non-finite loss was logged")
    elif last > first:
        reasons.append(f"its loss rose from {first:.3g} to {last:.3g} (largest {out['max_loss']:.3g})")
    if its and events > NONPOSITIVE_SHARE * its:
        reasons.append(f"{events} of {its} batches ({events / its:.0%}) had a mean SSIM <= 0, "
                       f"more than {NONPOSITIVE_SHARE:.0%}")
    if reasons:
        out.update(status=DIVERGED, evidence="; ".join(reasons))
    else:
        out["evidence"] = (f"loss {first:.3g} -> {last:.3g}" + (f", {events} of {its} batches at SSIM <= 0"
                                                                 if events else ""))
    return out


def training_health(run_dir) -> dict:
    """Whether the training in ``run_dir`` (its ``history.csv`` and ``summary.json``) trained or
    diverged, with the evidence in words (:func:`health_from_history`)."""
    run_dir = Path(run_dir)
    with open(run_dir / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    try:
        its = int(json.loads((run_dir / "summary.json").read_text()).get("iterations") or 0) or None
    except (OSError, ValueError, TypeError):
        its = None
    return health_from_history(rows, its)
