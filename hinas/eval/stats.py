"""Paired statistics: two scorings of the same images compared image by image.

The difference of two methods (or two protocols) on the same images has a per-image standard error
far smaller than either's spread over images, so it is the measure that can call a difference."""

from __future__ import annotations

import math

import numpy as np

from hinas.safeio import is_finite_number

__all__ = ["paired_difference"]


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
