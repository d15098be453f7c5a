"""The figures of chapters 4-6, each a :class:`matplotlib.figure.Figure` built from numbers the
book computed elsewhere (:mod:`hinas.book.search_report`, :mod:`hinas.book.ablation_report`,
:mod:`hinas.book.sota_report`). Each figure is made through pyplot (which sets up the notebook's
inline backend, so a returned figure displays as an image) and closed there at once, so a notebook
shows it exactly once, where it displays it; :func:`genotype_drawings` gives a genotype's graphviz
drawings (:mod:`hinas.viz`) in the order the book shows them."""

from __future__ import annotations

from contextlib import contextmanager

import matplotlib
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, MaxNLocator, NullFormatter

from hinas.book.compare import NOISY_INPUT
from hinas.viz import OP_COLOURS, draw_cell, draw_path

STYLE = {"font.size": 10, "figure.dpi": 100}  # the book's figure style


@contextmanager
def _styled():
    with matplotlib.rc_context(STYLE):
        yield


def _figure(figsize) -> Figure:
    """A new figure in the book's style, already closed in pyplot (not shown at the end of a cell)."""
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=figsize)
    plt.close(fig)
    return fig


def _integer_epochs(axes) -> None:
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def genotype_drawings(genotype, label: str) -> list:
    """The width path, then the cell of every layer, titled with ``label`` (e.g. ``'seed 0'``)."""
    return [draw_path(genotype, title=f"width path, {label}")] + [
        draw_cell(genotype, layer, title=f"layer {layer} cell, {label}") for layer in range(genotype.layers)]


def search_curves(histories: dict) -> Figure:
    """Per seed: the search losses on W and A, the weight learning rate and PSNR on V by epoch
    (``histories``: ``{seed: history.csv frame}``)."""
    with _styled():
        fig = _figure((9.5, 3.2))
        axes = fig.subplots(1, 3)
        for s, h in histories.items():
            axes[0].plot(h.epoch, h.loss_w, marker="o", ms=3, label=f"W, seed {s}")
            if h.loss_a.notna().any():
                axes[0].plot(h.epoch, h.loss_a, marker="x", ms=3, ls="--", label=f"A, seed {s}")
            axes[1].plot(h.epoch, h.lr, label=f"seed {s}")
            axes[2].plot(h.epoch, h.val_psnr, marker="o", ms=3, label=f"seed {s}")
        axes[0].set(title="search loss", xlabel="epoch", ylabel="loss")
        axes[0].legend(fontsize=8)
        axes[1].set(title="weight learning rate", xlabel="epoch")
        axes[2].set(title="PSNR on V (dB)", xlabel="epoch")
        axes[2].legend(fontsize=8)
        _integer_epochs(axes)
        fig.tight_layout()
    return fig


def alpha_curves(alpha: pd.DataFrame) -> Figure:
    """One panel per layer: the mean softmax weight of each op over the layer's edges by epoch
    (``alpha.csv``), with the uniform 1/7 dotted."""
    layers = sorted(alpha.layer.unique())
    with _styled():
        fig = _figure((9.5, 3.0))
        axes = fig.subplots(1, len(layers), squeeze=False, sharey=True)[0]
        for ax, layer in zip(axes, layers):
            a = alpha[alpha.layer == layer].groupby(["epoch", "op"]).weight.mean().unstack()
            for op in a.columns:
                ax.plot(a.index, a[op], label=op, color=OP_COLOURS.get(op))
            ax.axhline(1 / 7, color="grey", lw=0.8, ls=":")
            ax.set(title=f"layer {layer}", xlabel="epoch")
        axes[0].set_ylabel("softmax weight (mean over edges)")
        _integer_epochs(axes)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, bbox_to_anchor=(0.5, -0.12))
        fig.tight_layout()
    return fig


def beta_source_name(layer: int) -> str:
    """The name of a width-path layer index in ``beta.csv``: -1 is the stem, whose beta picks the
    first cell's width, not a layer of cells."""
    return "stem" if layer < 0 else f"layer {layer}"


def beta_curves(beta: pd.DataFrame) -> Figure:
    """One panel per layer: each transition weight of the width path by epoch (``beta.csv``)."""
    layers = sorted(beta.layer.unique())
    with _styled():
        fig = _figure((9.5, 3.0))
        axes = fig.subplots(1, len(layers), squeeze=False, sharey=True)[0]
        for ax, layer in zip(axes, layers):
            for (src, move), g in beta[beta.layer == layer].groupby(["level", "move"]):
                ax.plot(g.epoch, g.weight, marker=".", ms=3, label=f"level {src}: {move}")
            ax.set(title=f"beta, {beta_source_name(layer)}", xlabel="epoch")
            ax.legend(fontsize=7)
        axes[0].set_ylabel("weight")
        _integer_epochs(axes)
        fig.tight_layout()
    return fig


def training_curves(histories: dict) -> Figure:
    """PSNR on the held-out images by training iteration, one line per seed
    (``histories``: ``{seed: the training's history.csv frame}``)."""
    with _styled():
        fig = _figure((6, 3))
        ax = fig.subplots()
        for s, th in histories.items():
            ax.plot(th.iteration, th.val_psnr, marker="o", ms=3, label=f"seed {s}")
        ax.set(title="training: PSNR on the held-out images", xlabel="iteration", ylabel="dB")
        ax.legend()
        fig.tight_layout()
    return fig


def setting_scores(summary: pd.DataFrame, rows: pd.DataFrame, floor: float, *, title: str,
                   key: str = "setting") -> Figure:
    """Mean ± std over seeds of each ``key`` (a :func:`~hinas.book.tables.mean_std` table), every
    seed's score beside it (``rows``: standard protocol) and the noisy input (``floor``) dashed."""
    with _styled():
        fig = _figure((8, 3.4))
        ax = fig.subplots()
        x = list(range(len(summary)))
        std = summary.psnr_std.fillna(0)
        ax.errorbar(x, summary.psnr_mean, yerr=std, fmt="o", color="#4c72b0", ms=8, capsize=5,
                    label="mean ± std over seeds")
        for k, s in enumerate(sorted(rows.seed.unique())):
            d = rows[rows.seed == s].set_index(key).reindex(summary[key])
            ax.plot([i + 0.12 for i in x], d.psnr, "k.", ms=6, label="one seed" if k == 0 else None)
        ax.axhline(floor, ls="--", color="grey", lw=1, label="noisy input")
        ax.set_xticks(x)
        ax.set_xticklabels([s.replace(", ", "\n") for s in summary[key]], fontsize=9)
        lo = min(floor, rows.psnr.min(), (summary.psnr_mean - std).min()) - 0.5
        hi = max((summary.psnr_mean + std).max(), rows.psnr.max(), floor) + 0.5
        ax.set_ylim(lo, hi)
        ax.set_xlim(-0.5, len(summary) - 0.5)
        ax.set(ylabel="PSNR (dB)", title=title)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
        fig.tight_layout()
    return fig


def accuracy_vs_time(published: pd.DataFrame, ours: pd.DataFrame, *, device: str, profile: str,
                     sigma: float) -> Figure:
    """Fig. 14: PSNR against time, marker area ~ parameters; left the paper's methods (published
    Table 10 at sigma 50, GPU-seconds for BSD200), right the rows measured here (``ours``: a
    :func:`~hinas.book.tables.score_summary` table; standard protocol, seconds per image)."""
    with _styled():
        fig = _figure((8.5, 3.8))
        a, b = fig.subplots(1, 2)
        p = published.dropna(subset=["time_s"]).copy()
        p["params"] = pd.to_numeric(p.params_m, errors="coerce").fillna(0.3)
        a.scatter(p.time_s, p.psnr, s=p.params * 300, alpha=0.5, color="#4c72b0")
        for _, r in p.iterrows():
            a.annotate(r.method, (r.time_s, r.psnr), fontsize=9, xytext=(4, 3), textcoords="offset points")
        a.set_xscale("log")
        a.set(xlabel="GPU s for BSD200 (published)", ylabel="PSNR, sigma 50 (dB)", title="published")
        o = ours[(ours.protocol == "standard") & ours.s_per_image.notna()]
        for _, r in o.iterrows():
            if pd.notna(r.params):
                b.scatter(r.s_per_image, r.psnr, s=max(r.params / 1e6, 0.02) * 300, alpha=0.6)
            else:
                b.scatter(r.s_per_image, r.psnr, marker="x", s=60, color="k")
            b.annotate(r.method.replace(" (same budget)", ""), (r.s_per_image, r.psnr), fontsize=9, xytext=(4, 3),
                       textcoords="offset points")
        noisy = ours[(ours.protocol == "standard") & (ours.method == NOISY_INPUT)]
        if len(noisy):
            b.axhline(noisy.psnr.iloc[0], ls="--", color="grey", lw=1)
            b.annotate("noisy input", (0.02, noisy.psnr.iloc[0]), xycoords=("axes fraction", "data"), fontsize=8,
                       xytext=(0, 3), textcoords="offset points", color="grey")
        b.set_xscale("log")
        b.set(xlabel=f"{device.upper()} s per image (measured)", ylabel=f"PSNR, sigma {sigma:g} (dB)",
              title=f"measured here ({profile})")
        lo = min(o.psnr.min(), noisy.psnr.min() if len(noisy) else o.psnr.min()) - 1
        b.set_ylim(lo, o.psnr.max() + 1.5)
        for ax in (a, b):
            ax.xaxis.set_major_locator(LogLocator(base=10, numticks=6))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.margins(x=0.25)
        fig.tight_layout()
    return fig
