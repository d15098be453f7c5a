"""What the book draws from committed run files: training histories, how far a search moved its
alpha and beta, and learning curves with a fitted extrapolation to the paper's length.

The fit is ``PSNR(t) = a - b t^(-c)`` (a saturating power law, ``b, c > 0``) through the measured
points of one network. Its value at the paper's length is an **extrapolation**, returned with an
interval from the fit's own uncertainty (parameters drawn from the fit's covariance; the 5th and
95th percentiles of the predicted PSNR) and a verdict on whether the fit is determined at all:
fewer than :data:`MIN_POINTS` points, a singular covariance or an interval wider than
:data:`MAX_INTERVAL_DB` make it "not determined", and the book must then say so instead of
quoting a number.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from typing import Optional

from hinas.safeio import is_finite_number

MIN_POINTS = 4  # three parameters: at least one degree of freedom left
MAX_INTERVAL_DB = 2.0  # a wider 90% interval says nothing a reader can use
DRAWS = 4000  # parameter draws for the interval (seeded: the same numbers every build)


def read_csv(path) -> list[dict]:
    """Rows of a run's CSV file (``history.csv``, ``alpha.csv``, ``beta.csv``) with numbers parsed."""
    def num(v):
        try:
            return float(v) if v not in ("", None) else None
        except ValueError:
            return v

    with open(path, newline="") as fh:
        return [{k: num(v) for k, v in row.items()} for row in csv.DictReader(fh)]


# ---------------------------------------------------------------------------------------------
# training histories and search trajectories
# ---------------------------------------------------------------------------------------------
def history_figure(histories: dict):
    """Training loss and validation PSNR against iterations, one line per ``{label: folder}``
    (each folder holds the ``history.csv`` a training writes)."""
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 3.4))
    for label, folder in histories.items():
        rows = read_csv(Path(folder) / "history.csv")
        it = [r["iteration"] for r in rows]
        ax_loss.plot(it, [r["loss"] for r in rows], lw=1, label=label)
        val = [(r["iteration"], r["val_psnr"]) for r in rows if r.get("val_psnr") is not None]
        if val:
            ax_val.plot(*zip(*val), "o-", ms=3, label=label)
    ax_loss.set(xlabel="iteration", ylabel="training loss", yscale="log", title="training loss")
    ax_val.set(xlabel="iteration", ylabel="validation PSNR (dB)", title="validation (the run's protocol)")
    for ax in (ax_loss, ax_val):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)  # shown once, where the caller displays it
    return fig


# ---------------------------------------------------------------------------------------------
# learning curves and their extrapolation
# ---------------------------------------------------------------------------------------------
def _power_law(t, a, b, c):
    return a - b * np.power(t, -c)


def fit_learning_curve(iterations, psnr, *, target: float, seed: int = 0) -> dict:
    """Fit ``PSNR(t) = a - b t^(-c)`` to measured points and extrapolate to ``target`` iterations.

    Returns ``{points, a, b, c, target, psnr, interval: [p5, p95], determined, why}``; ``psnr``
    and ``interval`` are an extrapolation (``None`` when the fit is not determined, with the
    reason in ``why``)."""
    from scipy.optimize import curve_fit

    t = np.asarray(iterations, dtype=float)
    y = np.asarray(psnr, dtype=float)
    keep = np.isfinite(t) & np.isfinite(y) & (t > 0)
    t, y = t[keep], y[keep]
    out = {"points": int(len(t)), "target": float(target), "a": None, "b": None, "c": None, "psnr": None,
           "interval": None, "determined": False, "why": None}
    if len(t) < MIN_POINTS:
        out["why"] = f"{len(t)} points: a 3-parameter curve needs at least {MIN_POINTS}"
        return out
    scale = float(t.max())
    try:
        p, cov = curve_fit(_power_law, t / scale, y, p0=(y.max() + 0.5, max(y.max() - y.min(), 0.1), 0.5),
                           bounds=([-np.inf, 0.0, 1e-3], [np.inf, np.inf, 5.0]), maxfev=20000)
    except (RuntimeError, ValueError) as exc:
        out["why"] = f"the fit did not converge ({exc.__class__.__name__})"
        return out
    a, b, c = (float(v) for v in p)
    out.update(a=a, b=b * scale ** c, c=c)  # b in the units of t itself
    if not np.all(np.isfinite(cov)) or np.linalg.matrix_rank(cov) < 3:
        out["why"] = "the fit's parameters are not determined by these points (singular covariance)"
        return out
    rng = np.random.default_rng(seed)
    draws = rng.multivariate_normal(p, cov, size=DRAWS, check_valid="ignore")
    draws = draws[(draws[:, 1] >= 0) & (draws[:, 2] > 0)]
    pred = _power_law(target / scale, draws[:, 0], draws[:, 1], draws[:, 2])
    pred = pred[np.isfinite(pred)]
    if len(pred) < DRAWS // 2:
        out["why"] = "most parameter draws are invalid: the fit is not determined"
        return out
    lo, hi = (float(v) for v in np.percentile(pred, [5, 95]))
    out.update(psnr=float(_power_law(target / scale, *p)), interval=[lo, hi])
    if hi - lo > MAX_INTERVAL_DB:
        out["why"] = f"the 90% interval is {hi - lo:.2f} dB wide (more than {MAX_INTERVAL_DB} dB)"
        return out
    out["determined"] = True
    return out


def learning_curve_figure(curves: dict, *, target: float, published: dict | None = None, x: str = "iteration"):
    """PSNR against ``x`` (``iteration`` or ``gpu_seconds``) for ``{label: [points]}`` (each point a
    dict with ``iteration``, ``psnr`` and, for the time axis, ``gpu_seconds``), the fitted curve of
    each extended to ``target`` iterations as a dashed line labelled *extrapolation* (iteration
    axis only), and the published numbers ``{label: psnr}`` as marked points at ``target``."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8))
    for i, (label, points) in enumerate(curves.items()):
        colour = f"C{i}"
        xs = [p.get(x) for p in points]
        ys = [p["psnr"] for p in points]
        ax.plot(xs, ys, "o-", ms=4, color=colour, label=f"{label} (measured)")
        if x == "iteration" and points:
            fit = fit_learning_curve([p["iteration"] for p in points], ys, target=target)
            if fit["a"] is not None:
                t = np.geomspace(min(xs), target, 200)
                ax.plot(t, fit["a"] - fit["b"] * t ** (-fit["c"]), "--", color=colour, lw=1,
                        label=f"{label}: fit, extrapolation" + ("" if fit["determined"] else " (not determined)"))
            if fit["determined"]:
                ax.errorbar([target], [fit["psnr"]], yerr=[[fit["psnr"] - fit["interval"][0]],
                                                           [fit["interval"][1] - fit["psnr"]]],
                            fmt="s", color=colour, mfc="none", capsize=3)
    for label, value in (published or {}).items():
        if x == "iteration" and value is not None and math.isfinite(value):
            ax.plot([target], [value], "*", ms=12, color="k")
            ax.annotate(f"{label} (published)", (target, value), textcoords="offset points", xytext=(-8, 6),
                        ha="right", fontsize=8)
    ax.set(xlabel="training iterations" if x == "iteration" else "GPU seconds", ylabel="PSNR (dB)")
    if x == "iteration":
        ax.set_xscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)  # shown once, where the caller displays it
    return fig


# ---------------------------------------------------------------------------------------------
# whether a training was still improving
# ---------------------------------------------------------------------------------------------
# a validation PSNR that moved less than this over a training's validation window is called flat:
# validations on a handful of held-out images wobble by a few hundredths of a dB (measured: the
# committed sigma-50 training's last five span 0.08 dB around no trend)
FLAT_DB = 0.1


def validation_trend(history_csv) -> Optional[dict]:
    """The validation PSNRs a training logged (``history.csv``): ``{points, first, last, change,
    first_iteration, last_iteration}``, or None with fewer than two."""
    try:
        rows = [r for r in read_csv(history_csv) if is_finite_number(r.get("val_psnr"))]
    except OSError:
        return None
    if len(rows) < 2:
        return None
    return {"points": len(rows), "first": rows[0]["val_psnr"], "last": rows[-1]["val_psnr"],
            "change": rows[-1]["val_psnr"] - rows[0]["val_psnr"], "first_iteration": int(rows[0]["iteration"]),
            "last_iteration": int(rows[-1]["iteration"])}


def trend_reading(trend: dict) -> str:
    """One sentence on a :func:`validation_trend`, by :data:`FLAT_DB`."""
    span = (f"over its last {trend['points']} validations (iterations {trend['first_iteration']:,}-"
            f"{trend['last_iteration']:,}) its validation PSNR went from {trend['first']:.2f} to {trend['last']:.2f} dB")
    if trend["change"] >= FLAT_DB:
        return f"{span}: it was **still improving** when its time budget ended."
    if trend["change"] <= -FLAT_DB:
        return f"{span}: it had stopped improving before its budget ended."
    return f"{span}, flat within {FLAT_DB} dB as its learning rate decayed to zero: no sign of further gain at this schedule."
