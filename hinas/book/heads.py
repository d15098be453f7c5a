"""Chapter 3, the residual heads: the denoising and SR heads of the derived networks checked with the
last convolution zeroed, pixel shuffle drawn, the bicubic kernels compared, ``hinas.imresize``
against a MATLAB oracle, and the bicubic baseline table (measured, committed, published)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from hinas.book.published import bicubic_rows
from hinas.data import imresize, read_image
from hinas.eval.evaluation import bicubic_restore, evaluate, from_tensor, quantise, to_tensor
from hinas.space.genotype import random_genotype
from hinas.space.network import build_network, count_parameters

KERNELS = ("MATLAB imresize (hinas.imresize)", "PyTorch bicubic (a=-0.75)", "PyTorch bilinear")
ORACLE = "matlab_bicubic_reference"  # LR images made by MATLAB imresize, in the data root
SET_ORDER = ("Set5", "Set14", "B100", "Urban100")
SOURCES = ("published", "committed", "measured here")  # the bicubic table's first columns


# -- 3.1 / 3.2 the heads --------------------------------------------------------------------------
def zero_last_conv(net):
    """``net`` in eval mode with its last convolution (weights and bias) zeroed: no residual."""
    with torch.no_grad():
        net.classifier.weight.zero_(); net.classifier.bias.zero_()
    return net.eval()


def denoise_head_check(seed: int, size: int = 32) -> dict:
    """The denoising head of a random derived network on a ``size`` x ``size`` grey image: input
    and residual shapes, parameters, ``f``, and whether the output equals the input once the last
    convolution is zeroed (``skip_only``)."""
    net = build_network(random_genotype("denoise", seed=seed))
    x = torch.rand(1, 1, size, size)
    with torch.no_grad():
        res = net.residual(x)
        out = zero_last_conv(net)(x)
    return {"input": tuple(x.shape), "residual": tuple(res.shape), "parameters": count_parameters(net),
            "f": net.f, "skip_only": torch.equal(out, x)}


def sr_head_table(seed: int, scales=(2, 3, 4), size: int = 12) -> pd.DataFrame:
    """The SR head of a random derived network per scale, on a ``size`` x ``size`` RGB input:
    channels before the shuffle, shapes, whether the zeroed network is PyTorch bicubic, parameters."""
    rows = []
    for scale in scales:
        net = build_network(random_genotype("sr", seed=seed, scale=scale))
        lr = torch.rand(1, 3, size, size)
        with torch.no_grad():
            pre = net.classifier.out_channels
            res = net.residual(lr)
            out = zero_last_conv(net)(lr)
            up = F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False)
        rows.append({"scale": scale, "input": tuple(lr.shape[1:]), "last conv channels (3S²)": pre,
                     "residual after shuffle": tuple(res.shape[1:]), "output": tuple(out.shape[1:]),
                     "zeroed net == bicubic(x)": torch.equal(out, up), "parameters": count_parameters(net)})
    return pd.DataFrame(rows)


def pixel_shuffle_figure(scale: int = 2):
    """The ``scale**2`` numbered channels of a 2x2 map and where ``PixelShuffle(scale)`` puts each value."""
    S = scale
    t = torch.arange(S * S * 2 * 2, dtype=torch.float32).reshape(1, S * S, 2, 2)
    shuffled = torch.nn.PixelShuffle(S)(t)[0, 0]
    fig, axes = plt.subplots(1, S * S + 1, figsize=(2.2 * (S * S + 1), 2.4))
    for c in range(S * S):
        ax = axes[c]
        ax.imshow(np.full((2, 2), c), cmap="tab10", vmin=0, vmax=9, alpha=0.5)
        for (i, j), v in np.ndenumerate(t[0, c].numpy()):
            ax.text(j, i, f"{v:.0f}", ha="center", va="center")
        ax.set_title(f"channel {c}"); ax.set_xticks([]); ax.set_yticks([])
    ax = axes[-1]
    ax.imshow((shuffled.numpy() // 4).astype(int) % (S * S), cmap="tab10", vmin=0, vmax=9, alpha=0.5)
    for (i, j), v in np.ndenumerate(shuffled.numpy()):
        ax.text(j, i, f"{v:.0f}", ha="center", va="center")
    ax.set_title(f"PixelShuffle({S})"); ax.set_xticks([]); ax.set_yticks([])
    fig.tight_layout()
    return fig


# -- 3.3 which bicubic ----------------------------------------------------------------------------
def upsample(lr8: np.ndarray, scale: int, kernel: str) -> np.ndarray:
    """A uint8 HxWx3 image upsampled ``scale`` times with one of :data:`KERNELS`, as uint8."""
    if kernel == KERNELS[0]:
        return imresize(lr8, scale)
    t = torch.from_numpy(lr8.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    mode = "bicubic" if kernel.startswith("PyTorch bicubic") else "bilinear"
    up = F.interpolate(t, scale_factor=scale, mode=mode, align_corners=False)
    return (up[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255.0).round().astype(np.uint8)


def _kernel_restore(scale: int, kernel: str):
    """restore_fn of :func:`hinas.eval.evaluation.evaluate` that upsamples the uint8 LR with ``kernel``."""
    def fn(x):
        return to_tensor(upsample(quantise(from_tensor(x)), scale, kernel).astype(np.float32) / 255.0, "cpu")

    return fn


def kernel_table(images, scales) -> pd.DataFrame:
    """Mean PSNR of each of :data:`KERNELS` upsampling the MATLAB-made LR of every image in
    ``images`` back to HR; one row per scale. Scored by :func:`hinas.eval.evaluation.evaluate` under
    the ``standard`` protocol, the code of the baseline table (3.4): Y of a colour image, the
    values of a grey one (as the MATLAB scripts), ``scale`` pixels of border cropped. (Scoring a
    grey image's replicated channels on Y instead squeezes it into [16, 235] and adds
    20 log10(255/219) = 1.32 dB to its PSNR, so the two sections would disagree.)"""
    rows = []
    for scale in scales:
        psnr = {k: evaluate(_kernel_restore(scale, k), images, "sr", scale=scale, protocol="standard")["psnr"]
                for k in KERNELS}
        rows.append({"scale": f"x{scale}", **psnr})
    return pd.DataFrame(rows)


def kernel_vs_baseline(kernels: pd.DataFrame, images, scores: pd.DataFrame) -> str:
    """Why the MATLAB column of :func:`kernel_table` and 3.4's bicubic "measured here" agree or
    differ, from the numbers: same protocol code, so only the images can differ."""
    measured = scores[(scores.source == "measured here")
                      & (scores.dataset.str.removesuffix(" (not comparable)") == images.name)]
    head = ("3.3's MATLAB column and 3.4's *measured here* bicubic are scored by the same code "
            "(`hinas.eval.evaluation.evaluate`, `standard` protocol)")
    pairs = [(int(m.scale), float(k), float(m.PSNR), int(m.images)) for m in measured.itertuples()
             for s, k in zip(kernels.scale, kernels[KERNELS[0]]) if s == f"x{int(m.scale)}"]
    if not pairs:
        return f"{head}; 3.4 does not score {images.name} at these scales at this profile."
    if all(n == len(images) for *_, n in pairs):
        diff = max(abs(k - m) for _, k, m, _ in pairs)
        return (f"{head} on the same {len(images)} image(s) of {images.name}: they agree to {diff:.3f} dB "
                f"at x{', x'.join(str(s) for s, *_ in pairs)}.")
    listed = "; ".join(f"x{s}: {k:.2f} dB on the first {len(images)}, {m:.2f} dB on all {n}"
                       for s, k, m, n in pairs)
    return (f"{head}, on different images: 3.3 scores the first {len(images)} image(s) of {images.name} (the "
            f"profile's `kernel_images`), 3.4 all of them ({listed}); the difference is one of images, "
            f"not of protocol.")


def imresize_oracle_table(root, limit: int) -> Optional[pd.DataFrame]:
    """``hinas.imresize`` against the LR images MATLAB made (``<root>/matlab_bicubic_reference/
    Set5/x<scale>/*_HR.png`` + ``*_LR.png``, the first ``limit`` per scale): the largest
    difference and the share of pixels that differ. None without an oracle; empty when its
    layout is not recognised."""
    oracle = Path(root) / ORACLE if root is not None else None
    if oracle is None or not oracle.is_dir():
        return None
    rows = []
    for scale_dir in sorted(oracle.glob("Set5/x*")):
        scale = int(scale_dir.name[1:])
        for hr_file in sorted(scale_dir.glob("*_HR.png"))[:limit]:
            lr_file = hr_file.with_name(hr_file.name.replace("_HR.png", "_LR.png"))
            if not lr_file.exists():
                continue
            ref = read_image(lr_file).astype(int)
            ours = imresize(read_image(hr_file), 1.0 / scale).astype(int)
            rows.append({"image": hr_file.stem.replace("_HR", ""), "scale": scale,
                         "max |diff|": int(np.abs(ours - ref).max()),
                         "pixels differing (%)": 100.0 * float((ours != ref).mean())})
    return pd.DataFrame(rows)


# -- 3.4 the bicubic baseline table ---------------------------------------------------------------
def measured_bicubic(sets, scales, data_root=None) -> pd.DataFrame:
    """The bicubic baseline scored here under the ``standard`` protocol, one row per (set, scale);
    a set not comparable with the paper (embedded images) is labelled so."""
    rows = []
    for name in sets:
        for scale in scales:
            r = evaluate(bicubic_restore(scale), name, "sr", scale=scale, protocol="standard", data_root=data_root)
            rows.append({"dataset": name if r["comparable_with_paper"] else f"{name} (not comparable)",
                         "scale": scale, "source": "measured here", "PSNR": r["psnr"], "SSIM": r["ssim"],
                         "images": r["images"]})
    return pd.DataFrame(rows)


def committed_bicubic(repo) -> pd.DataFrame:
    """The SR bicubic scores committed under ``results/baselines/bicubic_*.json`` (``hinas eval
    bicubic --save``), one row per file with its provenance (``file``, ``command``, ``date``);
    unreadable files are skipped with a warning."""
    repo = Path(repo)
    rows = []
    for path in sorted((repo / "results" / "baselines").glob("bicubic_*.json")):
        try:
            r = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            warnings.warn(f"skipped {path.relative_to(repo)}: {exc}", stacklevel=2)
            continue
        if r.get("task") != "sr":
            continue
        prov = r.get("provenance", {})
        rows.append({"dataset": r["dataset"], "scale": r["scale"],
                     "source": "committed" if r["protocol"] == "standard" else f"committed, {r['protocol']} protocol",
                     "PSNR": r["psnr"], "SSIM": r["ssim"], "images": r["images"],
                     "file": str(path.relative_to(repo)), "command": prov.get("command"), "date": prov.get("date")})
    columns = ["dataset", "scale", "source", "PSNR", "SSIM", "images", "file", "command", "date"]
    return pd.DataFrame(rows, columns=columns)


def bicubic_scores(measured: pd.DataFrame, committed: pd.DataFrame) -> pd.DataFrame:
    """Measured, committed and published bicubic scores in one long table (one row per dataset,
    scale and source), with the column ``PSNR / SSIM`` as the table shows it."""
    published = pd.DataFrame(bicubic_rows()).rename(columns={"psnr": "PSNR", "ssim": "SSIM"}).assign(images=None)
    parts = [p for p in (measured, committed.drop(columns=["file", "command", "date"]), published) if len(p)]
    scores = pd.concat(parts, ignore_index=True)
    scores["PSNR / SSIM"] = [f"{p:.2f} / {q:.4f}" for p, q in zip(scores.PSNR, scores.SSIM)]
    return scores


def bicubic_table(scores: pd.DataFrame) -> pd.DataFrame:
    """:func:`bicubic_scores` as the chapter's table: one row per (dataset, scale), one
    ``PSNR / SSIM`` column per source (published, committed, measured here, then the others)."""
    sources = list(SOURCES) + sorted(set(scores.source) - set(SOURCES))
    table = scores.pivot_table(index=["dataset", "scale"], columns="source", values="PSNR / SSIM", aggfunc="first")
    order = {n: i for i, n in enumerate(SET_ORDER)}
    table = table.reindex(columns=[c for c in sources if c in table.columns])
    table = table.sort_index(key=lambda idx: idx.map(lambda v: order.get(v, 99) if isinstance(v, str) else v))
    return table.reset_index()


def published_differences(scores: pd.DataFrame) -> list:
    """Sentences: the largest |measured here - published| and |committed - published| PSNR over
    the (dataset, scale) pairs both have."""
    both = scores[scores.source.isin(SOURCES)]
    diff = both.pivot_table(index=["dataset", "scale"], columns="source", values="PSNR")
    out = []
    if "published" in diff:
        for col in ("measured here", "committed"):
            if col in diff:
                d = (diff[col] - diff["published"]).abs().dropna()
                if len(d):
                    out.append(f"|{col} - published| PSNR: max {d.max():.3f} dB over {len(d)} (dataset, scale) pairs")
    return out
