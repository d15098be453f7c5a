"""How the book reads its tables with the rules of :mod:`hinas.eval.stats` (the tie rule: a
difference is a win only beyond the seed spread; the paired rule for two methods scored on the same
images): which trained rows are scored (diverged, did not learn, trained), the seed spread,
orderings against the paper's, and the paired table."""

from __future__ import annotations

import pandas as pd

from hinas.engine.health import DIVERGED, OK as TRAINED
from hinas.eval.stats import compare, paired_difference, paired_verdict
from hinas.safeio import is_finite_number

NOISY_INPUT = "noisy input (no restoration)"

# What a trained row is, before anything is read from its score: "diverged" (its training went the
# wrong way, hinas.engine.health), "did not learn" (it trained but does not clear the noisy input by
# the tie rule's margin), or "trained". Only trained rows are scored, compared, plotted or glanced at;
# the others are named with their evidence.
NOT_LEARNED = "did not learn"


def run_status(training: str | None, psnr, noisy_psnr, spread=None) -> str:
    """:data:`DIVERGED`, :data:`NOT_LEARNED` or :data:`TRAINED` for one trained network's row:
    ``training`` is its :func:`hinas.engine.health.training_health` status, ``noisy_psnr`` the
    noisy input's score on the same images (None: not known, so not judged), ``spread`` the
    margin where the row has no seed spread of its own (:func:`compare`)."""
    if training == DIVERGED:
        return DIVERGED
    if noisy_psnr is not None and compare(psnr, None, noisy_psnr, None, spread) != "ahead":
        return NOT_LEARNED
    return TRAINED


def with_status(df: pd.DataFrame, spread=None) -> pd.DataFrame:
    """``df`` (rows of trained networks beside the noisy input's row for each protocol and sigma)
    with a ``status`` column: :func:`run_status` for trained rows, None for baselines (BM3D, the
    noisy input), which are scored as they are."""
    out = df.copy()
    noisy = {(r.protocol, getattr(r, "sigma", None)): r.psnr
             for r in df[df.method == NOISY_INPUT].itertuples()} if "method" in df else {}
    trained = out.training if "training" in out.columns else [None] * len(out)
    out["status"] = [run_status(t, r.psnr, noisy.get((r.protocol, getattr(r, "sigma", None))), spread)
                     if isinstance(t, str) else None for t, r in zip(trained, out.itertuples())]
    return out


def scored(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of a :func:`with_status` table that are read as results (trained, or baselines)."""
    return df[df.status.isna() | (df.status == TRAINED)] if "status" in df.columns else df


def unscored_lines(df: pd.DataFrame, key: str = "method") -> list[str]:
    """One sentence per row of a :func:`with_status` table that is not scored: the run, what it is
    and the evidence, with its score shown only as evidence."""
    if "status" not in df.columns:
        return []
    out = []
    for r in df[df.status.notna() & (df.status != TRAINED)].itertuples():
        what = "**diverged**" if r.status == DIVERGED else "**did not learn** (not above the noisy input)"
        evidence = getattr(r, "training_evidence", "") or ""
        out.append(f"{getattr(r, key)}, seed {r.seed}, protocol `{r.protocol}`: {what}; {evidence}; "
                   f"it scored {r.psnr:.2f} dB, which is left out of every comparison and figure.")
    return out


def seed_spread(df: pd.DataFrame, col: str = "psnr") -> float:
    """Standard deviation over seeds of ``col`` (NaN with fewer than two seeds)."""
    if "seed" not in df.columns or df.seed.nunique() < 2:
        return float("nan")
    return float(df.groupby("seed")[col].mean().std())


def ordering_vs_paper(ours: pd.DataFrame, pub: pd.DataFrame, pairs, *, key: str = "method",
                      spread=None, floor=None) -> pd.DataFrame:
    """For each ``(a, b)`` in ``pairs`` (labels of ``key``): the paper's difference a - b and ours,
    with our verdict by :data:`TIE_RULE` and whether it agrees with the paper's sign.

    ``ours`` is a :func:`mean_std` table; ``pub`` has ``key`` and ``psnr`` columns (one noise level).
    ``floor`` is the noisy input's PSNR: a row not 'ahead' of it has not learned, and a comparison
    involving it is reported as ``not learned`` rather than as a win, loss or tie.
    """
    o = ours.set_index(key)
    p = pub.drop_duplicates(key).set_index(key)
    rows = []
    for a, b in pairs:
        if a not in o.index or b not in o.index or a not in p.index or b not in p.index:
            continue
        pd_ = float(p.loc[a, "psnr"] - p.loc[b, "psnr"])
        paper_text = f"{pd_:+.2f}"
        direction = pd_
        if pd_ == 0 and "ssim" in p.columns and all(is_finite_number(p.loc[r, "ssim"]) for r in (a, b)):
            # equal printed PSNRs: the paper's direction is its SSIM's (Table 4 at sigma 50: 26.77 both,
            # SSIM 0.7498 -> 0.7635, which its own comparison row reports as an increase of both)
            direction = float(p.loc[a, "ssim"] - p.loc[b, "ssim"])
            paper_text += f" (SSIM {direction:+.4f})"
        if not all(is_finite_number(o.loc[r, "psnr_mean"]) for r in (a, b)):  # every run of a row diverged
            rows.append({"comparison": f"{a} vs {b}", "paper (dB)": paper_text, "ours (dB)": "–", "ours": DIVERGED,
                         "agrees with the paper": "cannot tell (not learned)"})
            continue
        od = float(o.loc[a, "psnr_mean"] - o.loc[b, "psnr_mean"])
        v = compare(o.loc[a, "psnr_mean"], o.loc[a].get("psnr_std"), o.loc[b, "psnr_mean"], o.loc[b].get("psnr_std"),
                    spread)
        paper_sign = "ahead" if direction > 0 else ("behind" if direction < 0 else "tie")
        agree = "yes" if v == paper_sign else ("cannot tell (tie)" if v == "tie" else "no")
        if floor is not None and any(
                compare(o.loc[r, "psnr_mean"], o.loc[r].get("psnr_std"), floor, None, spread) != "ahead" for r in (a, b)):
            v, agree = "not learned", "cannot tell (not learned)"
        rows.append({"comparison": f"{a} vs {b}", "paper (dB)": paper_text, "ours (dB)": f"{od:+.2f}",
                     "ours": v, "agrees with the paper": agree})
    return pd.DataFrame(rows)


def paired_table(scores: dict, reference: str) -> pd.DataFrame:
    """``reference`` against every other method of :func:`hinas.book.committed.per_image_scores` on the same images:
    the mean per-image PSNR difference, its standard error, on how many images ``reference``
    is better, and the call (:func:`paired_verdict`)."""
    rows = []
    for other, per_image in scores.items():
        if other == reference:
            continue
        d = paired_difference(scores[reference], per_image)
        rows.append({"comparison": f"{reference} - {other}", "images": d["images"],
                     "mean PSNR difference (dB)": d["mean"], "standard error (dB)": d["se"],
                     f"images where {reference.split(' (')[0]} is better": f"{d['wins']} of {d['images']}",
                     "reading": paired_verdict(d)})
    return pd.DataFrame(rows)
