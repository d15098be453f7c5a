"""How a difference between two scores is called: the tie rule for means over training seeds
(:func:`compare`), and paired statistics for two scorings of the same images, compared image by
image (:func:`paired_difference`, :func:`paired_verdict`).

The difference of two methods (or two protocols) on the same images has a per-image standard error
far smaller than either's spread over images, so it is the measure that can call a difference."""

from __future__ import annotations

import math

import numpy as np

from hinas.safeio import is_finite_number

__all__ = ["ONE_SEED_MARGIN_DB", "PAIRED_RULE", "PAIRED_Z", "TIE_RULE", "WITHIN_SEED", "compare",
           "paired_difference", "paired_verdict"]

# The rule the book uses to call a difference: it is a win only when it exceeds the seed spread.
ONE_SEED_MARGIN_DB = 0.5  # used only where no seed spread has been measured at all
TIE_RULE = ("a difference is called a tie when it is not larger than the seed spread: the larger "
            "standard deviation over seeds of the two rows, or, where the rows have a single seed, the "
            "spread over seeds of the same profile's full HiNAS run, or "
            f"{ONE_SEED_MARGIN_DB} dB where no spread was measured; a row that does not clear the noisy "
            "input by that margin has not learned, and comparisons with it cannot tell anything")


def compare(a_mean, a_std, b_mean, b_std, spread=None) -> str:
    """``'ahead'``, ``'behind'`` or ``'tie'``: a against b, by :data:`TIE_RULE`.

    The margin is the larger finite standard deviation of the two rows; ``spread`` (the seed
    spread of a comparable run) stands in where neither row has one, and
    :data:`ONE_SEED_MARGIN_DB` where no spread is known at all.
    """
    if not (is_finite_number(a_mean) and is_finite_number(b_mean)):
        return "tie"
    stds = [float(s) for s in (a_std, b_std) if is_finite_number(s)]
    margin = max(stds) if stds else (float(spread) if is_finite_number(spread) else ONE_SEED_MARGIN_DB)
    diff = float(a_mean) - float(b_mean)
    if abs(diff) <= margin:
        return "tie"
    return "ahead" if diff > 0 else "behind"


WITHIN_SEED = "within one training seed's reach"  # a tie between rows of one training run each

# Paired comparisons: two methods scored on the same images differ by a per-image difference whose
# standard error is far smaller than either method's spread over images, so a difference is called
# only when it exceeds PAIRED_Z standard errors of that mean (about 95%).
PAIRED_Z = 2.0
PAIRED_RULE = (f"a paired difference is called only beyond {PAIRED_Z:g} standard errors of its per-image mean "
               "(and beyond the seed spread where seeds were measured); otherwise it is a tie")


def paired_verdict(diff: dict, spread: float | None = None) -> str:
    """``'ahead'``, ``'behind'`` or ``'tie'`` for a :func:`paired_difference`: a call needs the mean
    beyond :data:`PAIRED_Z` standard errors and, where seeds were measured, beyond their spread."""
    if not is_finite_number(diff["mean"]) or not is_finite_number(diff["se"]):
        return "tie"
    margin = max(PAIRED_Z * diff["se"], spread if is_finite_number(spread) else 0.0)
    if abs(diff["mean"]) <= margin:
        return "tie"
    return "ahead" if diff["mean"] > 0 else "behind"


def paired_difference(a_per_image, b_per_image, key: str = "psnr") -> dict:
    """``a - b`` over the images both were scored on (matched by name): ``{images, mean, se,
    wins, losses}``, ``wins`` the images where ``a`` is better."""
    b = {r["name"]: r[key] for r in b_per_image}
    d = np.array([r[key] - b[r["name"]] for r in a_per_image if r["name"] in b and is_finite_number(r[key])
                  and is_finite_number(b[r["name"]])], dtype=float)
    n = len(d)
    se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return {"images": n, "mean": float(d.mean()) if n else float("nan"), "se": se,
            "wins": int((d > 0).sum()), "losses": int((d < 0).sum())}
