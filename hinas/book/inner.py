"""Chapter 1, the inner search space: the seven candidate operations measured (parameters, MACs,
receptive fields by back-propagation), LWAS against one shared alpha (sizes and forward time),
illustrative alpha decodings, and the genotypes the explorer browses (illustrative, random and
committed under ``results/``)."""

from __future__ import annotations

import json
import statistics
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from hinas.space.spec import SupernetConfig
from hinas.space.genotype import Genotype, random_genotype
from hinas.space.network import count_flops
from hinas.space.ops import PRIMITIVE_SETS, RECEPTIVE_FIELD, build_op, op_parameter_count
from hinas.space.supernet import Supernet

PRIMITIVES = list(PRIMITIVE_SETS["hinas"])  # the paper's seven candidate operations
ILLUSTRATIVE = "illustrative random alpha"  # provenance of the decodings of random alpha/beta


# -- 1.1 the seven operations ---------------------------------------------------------------------
def op_footprint(name: str, channels: int = 4, size: int = 33) -> np.ndarray:
    """The input pixels (a boolean ``size`` x ``size`` map) that reach the centre output pixel of
    op ``name``: those with a non-zero gradient after back-propagating from it."""
    op = build_op(name, channels, affine=True).eval()
    x = torch.randn(1, channels, size, size, requires_grad=True)
    y = op(x)
    if not y.requires_grad:  # 'none' returns x * 0 with a zero gradient; nothing flows
        return np.zeros((size, size), dtype=bool)
    y[0, :, size // 2, size // 2].sum().backward()
    return (x.grad.abs().sum(1)[0] > 0).numpy()


def footprint_width(footprint: np.ndarray) -> int:
    """The measured receptive field: the number of rows a footprint spans (0 when empty)."""
    rows = np.flatnonzero(footprint.any(1))
    return int(rows.max() - rows.min() + 1) if rows.size else 0


def op_footprints(primitives=PRIMITIVES) -> dict:
    """:func:`op_footprint` of every op, by name."""
    return {name: op_footprint(name) for name in primitives}


def ops_table(channels: int, footprints: dict) -> pd.DataFrame:
    """One row per op (index ``op``) at ``channels`` channels: parameters from the formula and
    from the built module, MACs on a 64x64 map, receptive field from the formula and measured
    (from ``footprints``, :func:`op_footprints`)."""
    rows = []
    for name, footprint in footprints.items():
        op = build_op(name, channels, affine=True)
        # count_flops needs a module with parameters; skip and none do no arithmetic
        macs = count_flops(op, (64, 64), in_channels=channels)["macs"] if any(True for _ in op.parameters()) else 0
        rows.append({
            "op": name,
            "params (formula)": op_parameter_count(name, channels, affine=True),
            "params (module)": sum(p.numel() for p in op.parameters()),
            "MACs at 64x64": macs,
            "receptive field (formula)": RECEPTIVE_FIELD[name],
            "receptive field (measured)": footprint_width(footprint),
        })
    return pd.DataFrame(rows).set_index("op")


def footprint_figure(footprints: dict, window: int = 13):
    """The central ``window`` x ``window`` of every op's footprint, titled with its receptive field."""
    fig, axes = plt.subplots(1, len(footprints), figsize=(2.0 * len(footprints), 2.4))
    half = window // 2
    for ax, (name, fp) in zip(axes, footprints.items()):
        c = fp.shape[0] // 2
        ax.imshow(fp[c - half:c + half + 1, c - half:c + half + 1], cmap="Blues", vmin=0, vmax=1.3)
        ax.set_title(f"{name}\nRF {footprint_width(fp)}", fontsize=8)
        ax.set_xticks([]); ax.set_yticks([])
    fig.suptitle(f"Input pixels that reach one output pixel ({window}x{window} window), measured by back-propagation")
    fig.tight_layout()
    return fig


def ops_parameter_range(table: pd.DataFrame, channels: int) -> str:
    """A Markdown sentence: the range of the parametrised ops' parameter counts in ``table``."""
    p = table.loc[[o for o in table.index if table.loc[o, "params (module)"] > 0], "params (module)"]
    return (f"Measured at $C = {channels}$: the parametrised ops range from {p.min():,} ({p.idxmin()}) to "
            f"{p.max():,} ({p.idxmax()}) parameters, a factor of {p.max() / p.min():.1f}; "
            "`skip_connect` and `none` have none.")


# -- 1.3 alpha with and without LWAS --------------------------------------------------------------
def forward_times(nets: dict, size: int, repeats: int) -> dict:
    """``{label: [seconds]}``: ``repeats`` no-grad forward passes of one ``size`` x ``size`` image
    through each net of ``nets``, after one warm-up pass each. The nets take turns within every
    repeat, and which goes first alternates, so a change of the machine's load during the
    measurement falls on all of them alike (timing one net after the other put it on one)."""
    xs = {label: torch.rand(1, net.cfg.in_channels, size, size) for label, net in nets.items()}
    times: dict = {label: [] for label in nets}
    with torch.no_grad():
        for label, net in nets.items():
            net.eval()
            net(xs[label])  # warm-up
        for r in range(repeats):
            for label, net in (list(nets.items()) if r % 2 == 0 else list(nets.items())[::-1]):
                t0 = time.perf_counter(); net(xs[label]); times[label].append(time.perf_counter() - t0)
    return times


def median_forward_seconds(net: Supernet, size: int, repeats: int) -> float:
    """Median wall time of ``repeats`` no-grad forward passes of one ``size`` x ``size`` image,
    after one warm-up pass."""
    return statistics.median(forward_times({"net": net}, size, repeats)["net"])


def lwas_table(config: SupernetConfig, size: int, repeats: int) -> pd.DataFrame:
    """One row per supernet of ``config``, with LWAS and with one alpha for all layers: alpha's
    shape and entries, beta's entries, weights and the forward time over ``repeats`` (median,
    min and max; the two supernets timed in turns, :func:`forward_times`)."""
    nets = {"LWAS (one alpha per layer)": Supernet(config.replace(lwas=True)),
            "one alpha for all layers": Supernet(config.replace(lwas=False))}
    times = forward_times(nets, size, repeats)
    rows = []
    for label, net in nets.items():
        rows.append({
            "supernet": label,
            "alpha shape": tuple(net.arch_alpha.shape),
            "alpha entries": net.arch_alpha.numel(),
            "beta entries": net.arch_beta.numel(),
            "weights": sum(p.numel() for p in net.weight_parameters()),
            f"forward ms ({size}px, median of {repeats})": 1e3 * statistics.median(times[label]),
            "min ms": 1e3 * min(times[label]),
            "max ms": 1e3 * max(times[label]),
        })
    return pd.DataFrame(rows)


def lwas_timing_reading(table: pd.DataFrame) -> str:
    """What the forward times of :func:`lwas_table` say, by a rule stated in the sentence: the
    difference of the two medians is measurement noise when it is within the larger range
    (max - min) of either supernet's repeats, else a measured difference (the ratio is given)."""
    median_col = next(c for c in table.columns if c.startswith("forward ms"))
    lwas, one = table.iloc[0], table.iloc[1]
    diff = abs(lwas[median_col] - one[median_col])
    spread = max(lwas["max ms"] - lwas["min ms"], one["max ms"] - one["min ms"])
    ratio = lwas[median_col] / one[median_col]
    head = (f"Forward time, {median_col.removeprefix('forward ms ').strip('()')}: LWAS {lwas[median_col]:.2f} ms "
            f"(repeats {lwas['min ms']:.2f}-{lwas['max ms']:.2f} ms) against one alpha {one[median_col]:.2f} ms "
            f"({one['min ms']:.2f}-{one['max ms']:.2f} ms), a ratio of {ratio:.2f}. The rule: a difference of the "
            f"medians counts as measured only if it is larger than the larger range (max - min) of either "
            f"supernet's repeats. Here it is {diff:.2f} ms against a range of {spread:.2f} ms, ")
    if diff <= spread:
        return head + "so it is within the spread of the repeats: measurement noise, not a cost of LWAS."
    return head + (f"so it is a measured difference: LWAS's forward pass took {ratio:.2f}x the time of one "
                   f"alpha's in this run, beyond the spread of the repeats.")


def illustrative_supernet(config: SupernetConfig, lwas: bool, seed: int) -> Supernet:
    """A supernet of ``config`` whose alpha and beta logits are random (seeded), not searched."""
    net = Supernet(config.replace(lwas=lwas))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net.arch_alpha.copy_(torch.randn(net.arch_alpha.shape, generator=g))
        net.arch_beta.copy_(torch.randn(net.arch_beta.shape, generator=g))
    return net


def illustrative_genotype(config: SupernetConfig, lwas: bool, seed: int) -> Genotype:
    """The decoding of :func:`illustrative_supernet`, with its provenance."""
    return illustrative_supernet(config, lwas, seed).genotype(provenance={"source": ILLUSTRATIVE, "seed": seed})


def alpha_figure(net: Supernet):
    """softmax(alpha_l) of every layer of ``net`` as a heatmap (edges x ops), one panel per layer."""
    w = net.alpha_weights().detach()
    if w.dim() == 2:  # one alpha for all layers
        w = w[None]
    primitives = list(net.cfg.primitives)
    fig, axes = plt.subplots(1, w.shape[0], figsize=(4 * w.shape[0], 4), sharey=True)
    for layer, ax in enumerate(np.atleast_1d(axes)):
        im = ax.imshow(w[layer].numpy(), cmap="viridis", vmin=0, vmax=float(w.max()))
        ax.set_title(f"layer {layer}: softmax(alpha_l)")
        ax.set_xticks(range(len(primitives)), primitives, rotation=70, fontsize=7)
        ax.set_xlabel("op")
        if layer == 0:
            ax.set_ylabel("edge (node-major)")
    fig.colorbar(im, ax=axes, shrink=0.8)
    return fig


def distinct_cells(genotype: Genotype) -> int:
    """How many different cells the layers of ``genotype`` have."""
    return len({json.dumps(c) for c in genotype.to_dict()["cells"]})


# -- 1.4 the explorer's runs ----------------------------------------------------------------------
def explorer_runs(config: SupernetConfig, seed: int, n: int) -> dict:
    """The explorer's families of genotypes, ``n`` seeds each from ``seed``: illustrative
    decodings of random alpha with and without LWAS, and uniformly random genotypes (denoising
    and x4 SR, the random-search baseline)."""
    seeds = range(seed, seed + n)
    return {
        "LWAS, illustrative alpha": {f"seed {s}": illustrative_genotype(config, True, s) for s in seeds},
        "one alpha, illustrative": {f"seed {s}": illustrative_genotype(config, False, s) for s in seeds},
        "random genotype (dn)": {f"seed {s}": random_genotype("denoise", seed=s) for s in seeds},
        "random genotype (SR x4)": {f"seed {s}": random_genotype("sr", seed=s, scale=4) for s in seeds},
    }


def committed_genotypes(repo) -> dict:
    """Every genotype committed under ``repo/results`` (JSON with ``cells`` and ``path``), as
    ``{"results: <folder>": {<file stem>: Genotype}}``; a malformed file is skipped with a warning."""
    repo = Path(repo)
    runs: dict = {}
    for path in sorted((repo / "results").rglob("*.json")):
        try:
            data = json.loads(path.read_text())
            if isinstance(data, dict) and "cells" in data and "path" in data:
                g = Genotype.from_dict(data, source=str(path))
                runs.setdefault(f"results: {path.parent.relative_to(repo / 'results')}", {})[path.stem] = g
        except Exception as exc:  # a malformed file is reported, not fatal to the book
            warnings.warn(f"skipped {path.relative_to(repo)}: {exc}", stacklevel=2)
    return runs
