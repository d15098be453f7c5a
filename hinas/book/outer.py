"""Chapter 2, the outer search space and cell sharing: widths, the beta grid, Eq. 5 against Eq. 6
(memory and time, measured here and committed under ``results/bench/``), recomputing the mixed ops,
and Viterbi decoding against brute force and a per-layer decoding."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

from hinas.bench.measure import memory_modes_table
from hinas.space.spec import PAPER_WIDTHS, REFERENCE_WIDTHS, SupernetConfig
from hinas.space.genotype import ViterbiTrace, all_paths, path_log_prob
from hinas.space.supernet import MOVE_NAMES, MOVES, Supernet, beta_mask, grid_sources

BENCH = Path("results") / "bench"  # committed benchmark results, relative to the repository
MODES_FILE = BENCH / "supernet_memory_modes_cpu_L3.json"  # Eq. 5 / Eq. 6 / recompute at the paper's size
LARGER_FILE = BENCH / "supernet_memory_recompute_larger_cpu.json"  # recompute at larger grids and patches
PAPER_MEMORY_FACTOR = 3.0  # "memory consumption by a factor of 3" (Sec. 3.2, published)
MODE_LABELS = {"eq5": "Eq. 5 (cell sharing)", "eq6": "Eq. 6 (Auto-DeepLab)"}


# -- 2.1 / 2.2 widths and beta --------------------------------------------------------------------
def widths_table() -> pd.DataFrame:
    """Channels per node at each level, a level-2 cell's output and the supernet's weights, for
    the code's width factors (1, 1.5, 2) and the paper's 2^i."""
    rows = []
    for label, widths in (("code (1, 1.5, 2)", REFERENCE_WIDTHS), ("paper 2ⁱ (1, 2, 4)", PAPER_WIDTHS)):
        cfg = SupernetConfig.paper("denoise", width_factors=widths)
        net = Supernet(cfg)
        rows.append({"widths": label,
                     **{f"level {i} channels/node": cfg.channels(i) for i in range(cfg.levels)},
                     "cell output at level 2": cfg.steps * cfg.channels(2),
                     "supernet weights": sum(p.numel() for p in net.weight_parameters())})
    return pd.DataFrame(rows)


def beta_table(config: SupernetConfig, beta: torch.Tensor) -> pd.DataFrame:
    """One row per source of the grid: its beta weights over the three moves (rounded to 0.001)
    and the moves masked off the grid."""
    table = pd.DataFrame(beta.numpy(), columns=list(MOVE_NAMES),
                         index=[s.name for s in grid_sources(config.layers, config.levels)]).round(3)
    table["masked moves"] = [", ".join(m for m, bad in zip(MOVE_NAMES, row) if bad) or "-"
                             for row in beta_mask(config.layers, config.levels).tolist()]
    return table.rename_axis("source").reset_index()


# -- 2.3 Eq. 5 against Eq. 6 ----------------------------------------------------------------------
def _committed(repo, path: Path) -> Optional[dict]:
    """A committed JSON result, or None (with a warning when it cannot be read)."""
    try:
        return json.loads((Path(repo) / path).read_text())
    except (OSError, ValueError) as exc:
        warnings.warn(f"skipped {path}: {exc}", stacklevel=3)
        return None


def committed_memory_runs(repo) -> list:
    """The committed ``results/bench/supernet_memory*.json`` that compare Eq. 5 and Eq. 6, as
    ``(label, result)`` pairs labelled by file and device."""
    runs = []
    for path in sorted((Path(repo) / BENCH).glob("supernet_memory*.json")):
        res = _committed(repo, path.relative_to(repo))
        if res is not None and "eq5" in res and "eq6" in res:  # others are section 2.4's
            runs.append((f"{path.relative_to(repo)} ({res.get('device', '?')})", res))
    return runs


def memory_table(runs) -> pd.DataFrame:
    """One row per (run, mode) of ``(label, supernet_memory result)`` pairs: peak MiB, step
    seconds, width-weighted cell evaluations and weights."""
    rows = []
    for label, res in runs:
        for mode in ("eq5", "eq6"):
            r = res[mode]
            rows.append({"run": label, "mode": mode, "peak MiB": r["peak_bytes"] / 2**20,
                         "step s": r["step_seconds"], "width-weighted cell evaluations": r["cell_evaluations"],
                         "weights": r["weights"]})
    return pd.DataFrame(rows)


def memory_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """Eq. 6 over Eq. 5 per run of :func:`memory_table` (memory, time, analytic cell
    evaluations), plus the paper's memory factor; one row per run, the run in column ``run``."""
    cells = "width-weighted cell evaluations"
    r = table.pivot_table(index="run", columns="mode", values=["peak MiB", "step s", cells], sort=False)
    ratios = pd.DataFrame({
        "memory eq6/eq5": r[("peak MiB", "eq6")] / r[("peak MiB", "eq5")],
        "time eq6/eq5": r[("step s", "eq6")] / r[("step s", "eq5")],
        "analytic eq6/eq5": r[(cells, "eq6")] / r[(cells, "eq5")],
    })
    ratios.loc["paper, Sec. 3.2 (published)", "memory eq6/eq5"] = PAPER_MEMORY_FACTOR
    return ratios.rename_axis("run").reset_index()


def _run_name(label: str) -> str:
    """A run's row label in :func:`memory_figure`: a committed file by its name without the
    folder (the table above the figure has the full path)."""
    name, sep, device = label.partition(" (")
    if name.startswith(f"{BENCH.as_posix()}/"):
        name = Path(name).name
    return name + sep + device


def _log_axis(ax, values) -> None:
    """A log x axis from a round number below the smallest bar to room for the value labels past
    the largest, with labelled ticks at 1-2-5, 1-3 or 1 x 10^k (whichever the span leaves
    readable), so every panel has several labelled ticks, not one decade mark."""
    lo_val, hi_val = min(values), max(values)
    lo = 10 ** math.floor(math.log10(lo_val / 1.3))
    lo = max(m * lo for m in (1, 2, 5) if m * lo <= lo_val / 1.3)
    # the value label past the longest bar takes a share of the axis's width, not a fixed factor:
    # leave it a fifth of the axis (at least a factor 2.5)
    hi = hi_val * 10 ** max(math.log10(2.5), 0.25 * math.log10(hi_val / lo))
    decades = math.log10(hi / lo)
    subs = (1.0, 2.0, 5.0) if decades <= 1.5 else (1.0, 3.0) if decades <= 3 else (1.0,)
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())


def memory_figure(table: pd.DataFrame):
    """Peak memory and step time of Eq. 5 and Eq. 6 per run of :func:`memory_table`: horizontal
    bars (log scale) so the run names read level, each bar labelled with its value, the legend
    under the panels, never over a bar."""
    runs = list(dict.fromkeys(table["run"]))
    y = np.arange(len(runs))
    height = 1.6 + 0.6 * len(runs)
    fig, axes = plt.subplots(1, 2, figsize=(9, height), sharey=True)
    for ax, col in zip(axes, ("peak MiB", "step s")):
        vals_all = []
        for k, mode in enumerate(("eq5", "eq6")):
            vals = [table[(table.run == r) & (table["mode"] == mode)][col].item() for r in runs]
            vals_all += vals
            bars = ax.barh(y + (k - 0.5) * 0.4, vals, 0.4, label=MODE_LABELS[mode])
            # at least three significant digits, whatever the size (a smoke run's peak is under 1 MiB)
            ax.bar_label(bars, [f"{v:,.0f}" if v >= 100 else f"{v:.3g}" for v in vals], padding=2, fontsize=7)
        _log_axis(ax, vals_all)
        ax.set_xlabel(col + " (log scale)")
        ax.tick_params(axis="x", labelsize=8)
    axes[0].set_yticks(y, [_run_name(r) for r in runs], fontsize=8)
    axes[0].invert_yaxis()  # the first run (this notebook's) on top, as in the table
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle("One search training step of the denoising supernet")
    fig.tight_layout(rect=(0, 0.35 / height, 1, 1))  # the bottom 0.35 in is the legend's
    return fig


# -- 2.4 recomputing the mixed ops ----------------------------------------------------------------
def memory_modes(live_label: str, live: dict, repo) -> pd.DataFrame:
    """Eq. 6, Eq. 5 and Eq. 5 + recompute side by side (:func:`hinas.bench.measure.memory_modes_table`):
    this run's result ``live`` and the committed one at the paper's configuration (:data:`MODES_FILE`)."""
    rows = [{"run": live_label, **r} for r in memory_modes_table(live)]
    committed = _committed(repo, MODES_FILE) if (Path(repo) / MODES_FILE).exists() else None
    if committed is not None:
        rows += [{"run": f"{MODES_FILE} ({committed['device']}, paper config)", **r}
                 for r in memory_modes_table(committed)]
    return pd.DataFrame(rows).rename(columns={
        "peak_MiB": "peak MiB", "step_s": "step s", "memory_vs_eq5": "memory / Eq. 5",
        "analytic_vs_eq5": "analytic / Eq. 5", "grad_max_abs_diff": "max |grad diff|"})


def recompute_readings(modes: pd.DataFrame) -> list:
    """One Markdown sentence per run of :func:`memory_modes`: recompute's peak against plain
    Eq. 5, its step-time ratio and its largest gradient difference."""
    out = []
    for run, group in modes.groupby("run", sort=False):
        plain = group[group["mode"].str.startswith("Eq. 5 (")].iloc[0]
        saved = group[group["mode"].str.contains("recompute")].iloc[0]
        out.append(
            f"*{run}*: recompute peaks at {saved['peak MiB']:.1f} MiB against {plain['peak MiB']:.1f} MiB for plain "
            f"Eq. 5, **{plain['peak MiB'] / saved['peak MiB']:.1f}x less**, with a step-time ratio of "
            f"{saved['step s'] / plain['step s']:.2f} and a largest gradient difference of "
            f"{saved['max |grad diff|']:.1e}.")
    return out


def recompute_larger(repo) -> Optional[pd.DataFrame]:
    """What the saving buys (:data:`LARGER_FILE`): recompute's peak at larger grids and patches
    against plain Eq. 5 at the paper's size (:data:`MODES_FILE`); None when either is not committed."""
    if not ((Path(repo) / LARGER_FILE).exists() and (Path(repo) / MODES_FILE).exists()):
        return None
    larger, paper = _committed(repo, LARGER_FILE), _committed(repo, MODES_FILE)
    if larger is None or paper is None:
        return None
    plain_paper = paper["eq5"]["peak_bytes"]
    return pd.DataFrame([{"recompute at": r["label"], "peak MiB": r["peak_bytes"] / 2**20,
                          "plain Eq. 5 at L=3, 64x64 / this": plain_paper / r["peak_bytes"]}
                         for r in larger["rows"]])


# -- 2.5 Viterbi ----------------------------------------------------------------------------------
def illustrative_beta(config: SupernetConfig, seed: int) -> torch.Tensor:
    """softmax(beta) of a supernet of ``config`` whose beta logits are 2 x a seeded standard
    normal (random, not searched), moves off the grid masked."""
    net = Supernet(config)
    with torch.no_grad():
        net.arch_beta.copy_(2.0 * torch.randn(net.arch_beta.shape, generator=torch.Generator().manual_seed(seed)))
    return net.beta_weights().detach()


def viterbi_table(trace: ViterbiTrace, width_factors) -> pd.DataFrame:
    """Every step of ``trace``: per (layer, level) the best log-probability of reaching it, its
    probability, the level it comes from and whether it is on the path."""
    rows = []
    for layer, (scores, backs) in enumerate(zip(trace.scores, trace.backpointers)):
        for level, (s, b) in enumerate(zip(scores, backs)):
            rows.append({"layer": layer, "level": level, "width": width_factors[level],
                         "best log P": s, "P": math.exp(s),
                         "comes from level": "stem" if layer == 0 else b,
                         "on the path": trace.path[layer] == level})
    return pd.DataFrame(rows)


def ranked_paths(beta: torch.Tensor, layers: int, levels: int) -> list:
    """Every valid width path as ``(log P, path)``, most probable first (brute force)."""
    return sorted(((path_log_prob(beta, p, levels), p) for p in all_paths(layers, levels)), reverse=True)


def paths_table(ranked, n: int = 5) -> pd.DataFrame:
    """The first ``n`` of :func:`ranked_paths`: path, log P and P."""
    return pd.DataFrame([{"path": str(p), "log P": lp, "P": math.exp(lp)} for lp, p in ranked[:n]])


def per_layer_path(beta: torch.Tensor, layers: int, levels: int) -> list:
    """The per-layer decoding: at each layer, the level receiving the most beta mass from the
    layer before (not bound to moves of one level, unlike Viterbi)."""
    path, sources = [], grid_sources(layers, levels)
    for layer in range(layers):
        mass = np.zeros(levels)
        for s in sources:
            if s.layer != layer - 1:
                continue
            for col, move in enumerate(MOVES):
                t = s.level + move
                if 0 <= t < min(layer + 2, levels):
                    mass[t] += float(beta[s.index, col])
        path.append(int(mass.argmax()))
    return path


def largest_jump(path) -> int:
    """The largest level change between adjacent layers of ``path``, from the stem at level 0."""
    return max(abs(a - b) for a, b in zip([0] + list(path), path))
