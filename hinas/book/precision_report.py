"""Training in bf16 against fp32, from committed GPU results (issue 21's rule for ``amp_bf16``).

bf16 autocast makes the training step faster, but it changes the arithmetic. It stays a switch,
off by default, until a pair of networks shows that it changes no result. The two networks of a
pair must be the same in all but the training precision: same model, architecture
(``network.json``), sigma, seed and iterations. Each is scored in fp32 on the whole test set,
and the pair is compared image by image. The rule is :data:`TOLERANCE_DB` on the mean paired
difference, stated with its standard error.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from hinas.book import tables
from hinas.book.campaigns import campaign_rows, evaluation_per_image
from hinas.eval.stats import paired_difference

TOLERANCE_DB = 0.05  # |bf16 - fp32| mean PSNR at equal iterations that lets bf16 become a default
PLAN_ITEMS = "train-dn50-s0-fp32-20k and train-dn50-s0-bf16-20k"  # the paper plan's pair


def _architecture(repo, row) -> str | None:
    """sha256 of the evaluated network's ``network.json`` (None when it cannot be read)."""
    try:
        return hashlib.sha256((Path(repo) / row.results / row.network / "network.json").read_bytes()).hexdigest()
    except (OSError, TypeError):
        return None


def precision_pairs(repo, dataset: str = "BSDS500-test", protocol: str = "standard") -> pd.DataFrame:
    """One row per committed pair of networks trained alike in fp32 and in bf16, both scored in fp32
    on the whole ``dataset``: their PSNRs, the paired difference bf16 - fp32 and its standard error."""
    ev = campaign_rows(repo, "eval")
    if not len(ev) or "train_precision" not in ev.columns:
        return pd.DataFrame()
    ev = ev[(ev.dataset == dataset) & (ev.protocol == protocol) & (ev.precision == "fp32")]
    groups: dict = {}
    for r in ev.itertuples():
        key = (r.model, r.sigma, r.seed, r.train_iterations, _architecture(repo, r))
        if key[-1] is not None:
            groups.setdefault(key, {})[r.train_precision] = r
    out = []
    for (model, sigma, seed, iterations, _), by in groups.items():
        if not {"fp32", "bf16"} <= set(by):
            continue
        bf16, fp32 = (evaluation_per_image(repo, r, r.dataset, r.protocol, r.sigma) for r in (by["bf16"], by["fp32"]))
        d = paired_difference(bf16, fp32)
        out.append({"model": model, "sigma": sigma, "seed": seed, "iterations": iterations,
                    "fp32-trained PSNR": by["fp32"].psnr, "bf16-trained PSNR": by["bf16"].psnr,
                    "bf16 - fp32 (dB)": d["mean"], "SE (dB)": d["se"], "images": d["images"],
                    "networks": f"{by['fp32'].network} / {by['bf16'].network}"})
    return pd.DataFrame(out)


def precision_reading(pairs: pd.DataFrame) -> str:
    """The rule applied to :func:`precision_pairs`, or the pair stated as missing."""
    if not len(pairs):
        return (f"**Training in bf16:** missing. No committed pair of networks trained alike in fp32 and in bf16 "
                f"(the plan's {PLAN_ITEMS}, each 20,000 iterations, wait for a GPU window), so bf16 training "
                f"stays a switch (`amp_bf16`), off in every profile.")
    lines = []
    for p in pairs.to_dict("records"):
        diff, se = p["bf16 - fp32 (dB)"], p["SE (dB)"]
        within = abs(diff) <= TOLERANCE_DB
        lines.append(f"**Training in bf16** ({p['model']}, sigma {p['sigma']:g}, seed {p['seed']}, "
                     f"{int(p['iterations']):,} iterations each, scored in fp32 on {p['images']} images): "
                     f"bf16 - fp32 = {diff:+.3f} dB (SE "
                     f"{se:.3f}), {'within' if within else 'outside'} the {TOLERANCE_DB:g} dB the rule allows; "
                     + ("bf16 training changes no result here, so it may become the default of the GPU profiles."
                        if within else "bf16 training stays a switch, off by default."))
    return "\n\n".join(lines)


def section(repo) -> list:
    """What chapter 6 displays: the pairs' table, if any, and the reading."""
    from IPython.display import Markdown

    pairs = precision_pairs(repo)
    shown = [tables.show(pairs, {"dB": 3})] if len(pairs) else []
    return shown + [Markdown(precision_reading(pairs))]
