"""How the book shows every table: measured rows summarised over seeds (:func:`mean_std`), set
beside the paper's (:func:`ours_vs_published`; the published tables of :mod:`hinas.book.published`
via :func:`published_rows`, :func:`published_view` and :func:`published_pivot`), training lengths
as shares of the released schedule, and :func:`show`, which displays a table the book's way.
The measured rows come from the chapters' plans (:mod:`hinas.book.plans`)."""

from __future__ import annotations

import math
import numbers
from typing import Optional

import pandas as pd

from hinas.book.compare import DIVERGED, NOISY_INPUT
from hinas.engine.common import gpu_model
from hinas.safeio import is_finite_number


def mean_std(df: pd.DataFrame, by, cols=("psnr", "ssim")) -> pd.DataFrame:
    """Mean and standard deviation over seeds (std is NaN for one seed) with the seed count. A run
    whose training diverged (``training``, :mod:`hinas.engine.health`) is not averaged in: it is
    counted in ``diverged``, and a group with no other run keeps its row with NaN scores."""
    by = [b for b in ([by] if isinstance(by, str) else list(by)) if b in df.columns]
    agg = {}
    for c in cols:
        if c in df.columns:
            agg[f"{c}_mean"] = (c, "mean")
            agg[f"{c}_std"] = (c, "std")
    agg["seeds"] = ("seed", "nunique") if "seed" in df.columns else (cols[0], "size")
    bad = df.training.eq(DIVERGED) if "training" in df.columns else pd.Series(False, index=df.index)
    keys = df.assign(diverged=bad.astype(int)).groupby(by, dropna=False, sort=False).diverged.sum().reset_index()
    kept = df[~bad].groupby(by, dropna=False, sort=False).agg(**agg).reset_index()
    out = keys.merge(kept, on=by, how="left")
    out["seeds"] = out.seeds.fillna(0).astype(int)
    return out[[c for c in out.columns if c != "diverged"] + ["diverged"]]


def score_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, protocol[, precision]) of scored rows, ours or committed, protocols in
    :data:`hinas.eval.evaluation.PROTOCOLS` order: mean and std over the *scored* seeds (a diverged or
    unlearned run, :func:`hinas.book.compare.with_status`, is left out and counted in ``left_out``;
    a method with no scored run keeps its row with NaN scores) of PSNR/SSIM (also formatted,
    ``PSNR``, ``SSIM``); the seeds (``seeds``, and ``seed_list`` of the scored ones); and, where
    the rows have them, params, seconds per image, training seconds, iterations (ours and the
    paper's), images, dataset and where they ran. The unscored runs' sentences are in
    ``attrs['left_out']``."""
    from hinas.book.compare import scored, unscored_lines, with_status
    from hinas.eval.evaluation import PROTOCOLS

    table = with_status(table)
    order = table.protocol.map({p: i for i, p in enumerate(PROTOCOLS)})
    table = table.assign(order=order, kept=table.index.isin(scored(table).index)).sort_values("order", kind="stable")
    keys = [k for k in ("method", "protocol", "precision") if k in table.columns]
    firsts = {"params": "params", "iterations": "train_iterations", "paper_iterations": "paper_iterations",
              "images": "images", "dataset": "dataset", "device": "device", "trained_on": "trained on",
              "evaluated_on": "evaluated on"}
    firsts = {k: c for k, c in firsts.items() if c in table.columns}
    means = {k: c for k, c in (("s_per_image", "seconds_per_image"), ("train_s", "train_seconds")) if c in table.columns}
    g = table[table.kept].groupby(keys, sort=False, dropna=False)
    ours = g.agg(psnr=("psnr", "mean"), psnr_std=("psnr", "std"), ssim=("ssim", "mean"), ssim_std=("ssim", "std"),
                 seeds=("seed", "nunique"), seed_list=("seed", lambda s: ", ".join(map(str, sorted({int(x) for x in s.dropna()})))),
                 **{k: (c, "mean") for k, c in means.items()}, **{k: (c, "first") for k, c in firsts.items()}).reset_index()
    every = table.groupby(keys, sort=False, dropna=False).agg(
        left_out=("kept", lambda k: int((~k).sum())), **{f"{k}_all": (c, "first") for k, c in firsts.items()}).reset_index()
    ours = every.merge(ours, on=keys, how="left")
    for col in firsts:  # known for a row with no scored run
        ours[col] = ours[col].fillna(ours.pop(f"{col}_all"))
    ours["PSNR"] = [fmt_mean_std(a, b, 2) for a, b in zip(ours.psnr, ours.psnr_std)]
    ours["SSIM"] = [fmt_mean_std(a, b, 4) for a, b in zip(ours.ssim, ours.ssim_std)]
    if "iterations" in ours.columns:
        ours.loc[ours.iterations.isna(), "seeds"] = float("nan")
    ours.attrs["left_out"] = unscored_lines(table)
    return ours


def fmt_mean_std(mean, std, digits: int = 2) -> str:
    """``mean ± std`` to ``digits`` decimals; the mean alone without a std, ``-`` without a mean."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _paper_text_length(code_iterations, task: str):
    """The paper's stated training length where its text states one other than the code's
    (denoising: 400k against the code's 600k), else None."""
    from hinas.engine.budget import paper_lengths

    text = paper_lengths(task).get("paper_text_iterations")
    return text if text and text != code_iterations else None


def training_length(iterations, code_iterations, task: str = "denoise") -> str:
    """A training length as a share of the released code's schedule and, where the paper's text
    states another length (:func:`_paper_text_length`), of that one too."""
    if not (is_finite_number(iterations) and is_finite_number(code_iterations)):
        return "–"
    text = _paper_text_length(code_iterations, task)
    out = (f"{int(iterations):,} iterations, {iterations / code_iterations:.1%} of the released code's "
           f"{int(code_iterations):,}")
    return out + (f" ({iterations / text:.1%} of the paper's stated {int(text):,})" if text else "")


def training_share(iterations, code_iterations, task: str = "denoise") -> str:
    """:func:`training_length` for a table cell: the share of the released code's schedule and,
    in brackets, of the paper's stated length where it states another ('1.3% (1.9%)')."""
    if not (is_finite_number(iterations) and is_finite_number(code_iterations)):
        return "–"
    text = _paper_text_length(code_iterations, task)
    return f"{iterations / code_iterations:.1%}" + (f" ({iterations / text:.1%})" if text else "")


def short_device(name) -> str:
    """A device as a table cell: a GPU by its model ('NVIDIA H100 80GB HBM3' -> 'H100'; the full
    name stays in each result's provenance), anything else as it is."""
    return gpu_model(name) or name


SHARE_COLUMN = "of released (paper's)"  # the column :func:`training_share` fills


def training_share_note(task: str = "denoise") -> str:
    """What :data:`SHARE_COLUMN` means, for a table's caption."""
    from hinas.engine.budget import paper_lengths

    code = paper_lengths(task)["paper_iterations"]
    text = _paper_text_length(code, task)
    out = f"*{SHARE_COLUMN}*: the training length as a share of the released code's {int(code):,} iterations"
    return out + (f" (in brackets, of the paper's stated {int(text):,})" if text else "")


def published_rows(table: str) -> pd.DataFrame:
    """A published table of the paper as a tidy DataFrame (``source='published'``)."""
    from hinas.book.published import flat_rows

    return pd.DataFrame(flat_rows(table))


# how the book names the published tables' columns (:func:`published_view`)
PUBLISHED_LABELS = {"params_m": "params (M)", "psnr": "PSNR (paper)", "ssim": "SSIM (paper)",
                    "cell_sharing": "cell sharing", "search_gpu_hours": "search GPU-hours", "gpus": "GPUs",
                    "time_s": "GPU s (BSD200)"}


def published_view(table: str, columns, *, sigma=None, labels: Optional[dict] = None) -> pd.DataFrame:
    """The ``columns`` of a published table (at ``sigma``, if given), named by
    :data:`PUBLISHED_LABELS` updated with ``labels``."""
    p = published_rows(table)
    if sigma is not None:
        p = p[p.sigma == sigma]
    return p[list(columns)].rename(columns=dict(PUBLISHED_LABELS, **(labels or {})))


def published_pivot(table: str) -> pd.DataFrame:
    """A published SR table's PSNR, one column per test set, one row per setting."""
    p = published_rows(table)
    keys = [c for c in ("method", "lwas", "residual", "ssim_weight") if c in p.columns]
    return p.pivot_table(index=keys, columns="dataset", values="psnr", sort=False).reset_index()


def bullets(lines) -> str:
    """Sentences as a Markdown bullet list."""
    return "\n".join(f"* {line}" for line in lines)


def ours_vs_published(ours: pd.DataFrame, pub: Optional[pd.DataFrame], keys, *, sigma=None,
                      protocol: str = "standard") -> pd.DataFrame:
    """One row per setting: our mean ± std over seeds beside the paper's number for the same
    setting at the same noise level.

    The published columns are added only when the paper reports ``sigma`` (default: our test
    sigma) for this table; otherwise the table has ours only and the caller shows the published
    numbers separately, so no row mixes noise levels. Provenance (profile, device, dataset,
    protocol, sigma) is constant over the rows and belongs in the caption, not in columns.
    """
    keys = [keys] if isinstance(keys, str) else list(keys)
    o = ours[ours.protocol == protocol] if "protocol" in ours.columns else ours
    m = mean_std(o, keys)
    out = pd.DataFrame({k: m[k] for k in keys})
    ours_sigma = float(o.sigma.dropna().iloc[0]) if "sigma" in o.columns and o.sigma.notna().any() else None
    sigma = ours_sigma if sigma is None else sigma
    out["PSNR (ours)"] = [fmt_mean_std(a, b, 2) for a, b in zip(m.psnr_mean, m.psnr_std)]
    out["SSIM (ours)"] = [fmt_mean_std(a, b, 4) for a, b in zip(m.ssim_mean, m.ssim_std)]
    out["seeds"] = [int(v) if is_finite_number(v) and (not isinstance(r, str) or r != NOISY_INPUT) else "–"
                    for v, r in zip(m.seeds, m[keys[0]])]
    if pub is not None and len(pub) and (ours_sigma is None or sigma == ours_sigma):
        p = pub if sigma is None or "sigma" not in pub.columns else pub[pub.sigma == sigma]
        if len(p):
            pk = [k for k in keys if k in p.columns]
            p = p.drop_duplicates(pk).copy()
            p["PSNR (paper)"] = [fmt_mean_std(a, b, 2) for a, b in
                                 zip(p.psnr, p.psnr_std if "psnr_std" in p.columns else [None] * len(p))]
            p["SSIM (paper)"] = [fmt_mean_std(a, b, 4) for a, b in
                                 zip(p.ssim, p.ssim_std if "ssim_std" in p.columns else [None] * len(p))]
            out = out.merge(p[pk + ["PSNR (paper)", "SSIM (paper)"]], on=pk, how="left")
    return tidy_table(out)


def _is_score(name: str) -> bool:
    """A column of PSNR or SSIM scores (not a count of batches, nor a loss weight named after SSIM)."""
    import re

    return bool(re.search(r"\b(psnr|ssim)\b", name)) and not re.search(r"\b(batches|count|images|weight)\b", name)


def tidy_table(df: pd.DataFrame, digits: Optional[dict] = None) -> pd.DataFrame:
    """A table as the book shows it: numbers rounded to what they mean (PSNR 0.01 dB, SSIM 0.0001,
    counts as integers with thousands separators, seconds 0.01 s), missing values as '–' (never
    NaN or None), booleans as yes/no."""
    rules = {"ssim": 4, "psnr": 2, "s/image": 3, "seconds": 1, " ms": 1}
    rules.update(digits or {})

    def fmt(v, name):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "–"
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, numbers.Integral):
            return f"{int(v):,}"
        if isinstance(v, numbers.Real):
            if not _is_score(name) and "weight" in name:
                return f"{v:g}"
            d = next((n for k, n in rules.items() if k in name), 2)
            return f"{v:.{d}f}"
        return v

    out = df.copy()
    for c in out.columns:
        col, name = out[c], str(c).lower()
        if pd.api.types.is_bool_dtype(col):
            out[c] = col.map({True: "yes", False: "no"})
        elif pd.api.types.is_numeric_dtype(col):
            values = [float(v) for v in col if is_finite_number(v)]
            whole = values and all(v == int(v) for v in values)
            # a count stays a count even when its name mentions SSIM ("batches with SSIM <= 0"), and
            # a loss weight is not a score ("ssim_weight")
            if whole and (pd.api.types.is_integer_dtype(col) or not _is_score(name)):
                out[c] = [f"{int(v):,}" if is_finite_number(v) else "–" for v in col]
            else:
                out[c] = [fmt(float(v), name) if is_finite_number(v) else "–" for v in col]
        else:
            out[c] = [fmt(v, name) for v in col]
    return out


# 0.3em between columns (not 0.5em): chapters 4's and 6's widest tables then fit the text column at
# 1400 px without scrolling sideways (measured in headless Chromium)
TABLE_STYLE = [{"selector": "th, td", "props": "padding: 0.2em 0.3em; text-align: left; vertical-align: top"},
               {"selector": "", "props": "border-collapse: collapse; margin-bottom: 1em; font-size: 0.9em"},
               {"selector": "thead th", "props": "border-bottom: 1px solid #999"}]


# the class book/_static/hinas.css keeps within the text column
TABLE_CLASS = "hinas-table"


def breakable(text, after: str = "_/"):
    """``text`` with a line-break opportunity (``<wbr>``) after each character of ``after``, so
    that snake_case names (``dil_conv_5x5``, ``bn_init``) and paths wrap in a narrow column; the
    text a reader sees or copies is unchanged. Anything but a string, or a string with markup,
    is returned as it is."""
    if not isinstance(text, str) or "<" in text:
        return text
    for ch in after:
        text = text.replace(ch, ch + "<wbr>")
    return text


def _breakable_cell(value):
    """A cell as :func:`breakable` makes it, except that a file name (``name.ext``) stays whole."""
    if isinstance(value, str) and "." in value.rsplit("/", 1)[-1].lstrip("."):
        return breakable(value, "/")
    return breakable(value)


def show(df: pd.DataFrame, digits: Optional[dict] = None):
    """Display a table the book's way: tidy (:func:`tidy_table`), padded, without the pandas index,
    never wider than the text column (:data:`TABLE_CLASS`: a table that cannot shrink enough
    scrolls sideways in its own box, first columns in view). Headers and cells may wrap after
    ``_`` and ``/`` (:func:`breakable`); a file name in a cell stays whole."""
    return (tidy_table(df, digits).style.hide(axis="index").set_table_styles(TABLE_STYLE)
            .set_table_attributes(f'class="{TABLE_CLASS}"')
            .format(_breakable_cell)
            .format_index(lambda label: breakable(str(label)), axis=1))
