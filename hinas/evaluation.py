"""One evaluator for networks and baselines, under named protocols.

``standard`` (the default) follows the usual benchmark practice (BasicSR / the MATLAB
scripts behind the literature tables); ``hinas-reference`` re-creates what the released
HiNAS code measures (REFERENCE.md 5.3) so that published numbers can be explained. See
:data:`PROTOCOLS` for the differences, and ``hinas eval --help`` for the command.

``restore_fn`` is any callable that takes a float32 tensor 1xCxhxw in [0, 1] on ``device``
and returns the restored 1xCxHxW tensor (the evaluator clamps it to [0, 1]).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from hinas.errors import DataError, HinasError
from hinas.safeio import finite_number, names_file, quote

__all__ = ["PROTOCOLS", "VALIDATION_PROTOCOLS", "evaluate", "validate_reference", "bicubic_restore", "bm3d_restore",
           "add_eval_arguments", "register_cli", "run_eval", "evaluate_run", "load_trained", "build_model",
           "check_network_spec"]

PROTOCOLS: dict[str, dict] = {
    "standard": {
        "summary": "whole image, one seeded noise draw per image, uint8-quantised output, "
                   "BT.601 Y (MATLAB coefficients), border = scale for SR, MATLAB SSIM",
        "patching": "none: the whole image in one forward pass",
        "noise": "denoising: one draw per image, N(0, sigma/255), seeded by (image name, sigma), unclipped",
        "sr_input": "LR = MATLAB bicubic imresize(modcrop(HR, s), 1/s), uint8",
        "output": "clamped to [0, 1] and rounded to uint8 before the metrics",
        "channel": "SR: Y = 16 + 65.481 R + 128.553 G + 24.966 B (R,G,B in [0,1]); grey HR images "
                   "(Set14 'bridge') are scored on their grey values; denoising: the grey image",
        "border": "SR: 'scale' pixels cropped on each side; denoising: none",
        "ssim": "Gaussian 11x11, sigma 1.5, 'valid' filtering (MATLAB ssim / BasicSR)",
        "comparable_with": "the bicubic literature table, BasicSR, DnCNN-style denoising tables",
    },
    "hinas-reference": {
        "summary": "the released HiNAS code: denoising on overlapping 64x64 patches (stride 48) averaged, "
                   "fresh noise per patch, float output, swapped-R/B 'Y', no border, zero-padded SSIM",
        "patching": "denoising: 64x64 patches, stride 48, last patch aligned to the border, overlaps "
                    "averaged (dn_eval.py); SR: whole image (sr_eval.py)",
        "noise": "denoising: an independent draw for every patch (seeded here by image, sigma and patch "
                 "position), so overlapping pixels average several noise realisations",
        "sr_input": "LR = MATLAB bicubic imresize(modcrop(HR, s), 1/s), uint8; HR top-left cropped to s x LR",
        "output": "clamped to [0, 1], NOT quantised",
        "channel": "SR: 'Y' = 24.966 R + 128.553 G + 65.481 B + 16 (R and B swapped vs BT.601); "
                   "denoising: the grey image",
        "border": "none",
        "ssim": "Gaussian 11x11, sigma 1.5, zero-padded 'same' filtering, borders included",
        "comparable_with": "numbers printed by the HiNAS repository's dn_eval.py / sr_eval.py",
    },
}

# How a search epoch's supernet (and a training run's best weights) are scored on the held-out
# images: the released code's ``dn_inference`` / ``sr_inference``, or :func:`evaluate`'s standard.
VALIDATION_PROTOCOLS: dict[str, dict] = {
    "reference": {
        "summary": "the released code's search/training validation (engine/inference.py): 64x64 patches, "
                   "stride 64, last patch aligned to the border, overlaps averaged then clamped to [0, 1]; "
                   "denoising: one sigma drawn per patch from the sigma list, fresh noise per patch (seeded "
                   "here by image and patch position); SR: LR patches, RGB; float output (no uint8), PSNR "
                   "on floats, zero-padded SSIM, no border",
    },
    "standard": {
        "summary": "the 'standard' evaluation protocol on whole images, one pass per sigma, averaged",
    },
}

EVAL_SCALES = (2, 3, 4, 8)
_TASKS = {"dn": "denoise", "denoise": "denoise", "denoising": "denoise", "sr": "sr"}


def _norm_task(task: str) -> str:
    t = _TASKS.get(str(task).lower())
    if t is None:
        raise DataError(f"unknown task '{task}': use 'denoise' or 'sr'")
    return t


def _to_tensor(a: np.ndarray, device):
    import torch

    a = np.asarray(a, dtype=np.float32)
    t = torch.from_numpy(np.ascontiguousarray(a[None] if a.ndim == 2 else a.transpose(2, 0, 1)))
    return t[None].to(device)


def _from_tensor(t, clamp: bool = True) -> np.ndarray:
    import torch

    if not isinstance(t, torch.Tensor):
        t = torch.as_tensor(np.asarray(t))
    t = t.detach().float().cpu()
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise HinasError(f"restore_fn returned a batch of {t.shape[0]}; it must return 1xCxHxW")
        t = t[0]
    if t.ndim != 3:
        raise HinasError(f"restore_fn returned shape {tuple(t.shape)}; it must return 1xCxHxW")
    if not bool(torch.isfinite(t).all()):
        raise HinasError("the restored image holds NaN or infinite values, so it cannot be scored "
                         "(a diverged network: retrain it, or evaluate another run)")
    a = (t.clamp_(0.0, 1.0) if clamp else t).numpy()
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def _quantise(a01: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(a01 * 255.0 + 0.5), 0, 255).astype(np.uint8)


def _luma(a255: np.ndarray) -> np.ndarray:
    """BT.601 luma without offset (grey values of an RGB image; identity on equal channels)."""
    if a255.ndim == 2:
        return a255.astype(np.float64)
    return a255.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def _patch_positions(length: int, patch: int, stride: int) -> list[int]:
    pos = list(range(0, length - patch + 1, stride))
    if pos[-1] != length - patch:
        pos.append(length - patch)
    return pos


def _patchwise(restore_fn, image01: np.ndarray, patch: int, stride: int, make_input, device, scale: int = 1,
               batch: int = 1) -> np.ndarray:
    """Run ``restore_fn`` on ``patch``-sized tiles of ``image01`` (HxW or HxWxC, float in [0, 1]) at
    ``stride``, the last tile aligned to the border, and average the overlapping outputs (in an
    output ``scale`` times larger). ``make_input(tile, y, x)`` turns a tile into the network input
    (adds noise). The average is NOT clamped: the released code averages, then clamps."""
    import torch

    h, w = image01.shape[:2]
    out_shape = (h * scale, w * scale) + image01.shape[2:]
    acc = np.zeros(out_shape, dtype=np.float64)
    cnt = np.zeros(out_shape[:2] + (1,) * (len(out_shape) - 2), dtype=np.float64)
    q = patch * scale
    tiles = [(y, x) for y in _patch_positions(h, patch, stride) for x in _patch_positions(w, patch, stride)]
    for start in range(0, len(tiles), batch):
        chunk = tiles[start:start + batch]
        xs = torch.cat([_to_tensor(make_input(image01[y:y + patch, x:x + patch], y, x), device) for y, x in chunk])
        ys = restore_fn(xs)
        for k, (y, x) in enumerate(chunk):
            o = _from_tensor(ys[k:k + 1], clamp=False)
            if o.shape[:2] != (q, q):
                raise HinasError(f"restore_fn returned {o.shape} for a {patch}x{patch} patch")
            acc[y * scale:y * scale + q, x * scale:x * scale + q] += o
            cnt[y * scale:y * scale + q, x * scale:x * scale + q] += 1
    return acc / cnt


def validate_reference(restore_fn, records, task: str, *, sigmas=None, scale=None, device="cpu",
                       patch: int = 64, batch: int = 32) -> dict:
    """Score ``restore_fn`` on ``records`` (ImageRecords) as the released search/training
    validation does (:data:`VALIDATION_PROTOCOLS` 'reference'): mean PSNR/SSIM over images.

    ``restore_fn`` takes a batch Nx C x p x p; for denoising ``sigmas`` is the list one sigma per
    patch is drawn from (seeded by image name and patch position, so the score is repeatable)."""
    import torch

    from hinas import metrics
    from hinas.data.degrade import add_noise_seeded, make_lr, noise_seed, to_grey

    task = _norm_task(task)
    psnrs, ssims = [], []
    with torch.no_grad():
        for rec in records:
            if task == "denoise":
                clean = to_grey(rec.image)
                levels = [float(s) for s in sigmas]

                def noisy(tile, y, x, name=rec.name):
                    rng = np.random.default_rng(noise_seed(name, 0.0, f"val-sigma|{y},{x}"))
                    sigma = levels[int(rng.integers(len(levels)))]
                    return add_noise_seeded(tile, sigma, name, extra=f"val|{y},{x}")

                p = min(patch, *clean.shape)
                out = _patchwise(restore_fn, clean.astype(np.float32) / 255.0, p, p, noisy, device, batch=batch)
                target = clean
            else:
                hr, lr = make_lr(rec.image, scale, rec.path or rec.name)
                if hr.ndim == 2:
                    hr, lr = np.repeat(hr[..., None], 3, axis=2), np.repeat(lr[..., None], 3, axis=2)
                p = min(patch, *lr.shape[:2])
                out = _patchwise(restore_fn, lr.astype(np.float32) / 255.0, p, p, lambda t, y, x: t, device,
                                 scale=scale, batch=batch)
                target = hr
            out = np.clip(out, 0.0, 1.0) * 255.0
            psnrs.append(metrics.calculate_psnr(out, target))
            ssims.append(metrics.reference_ssim(out, target))
    finite = [v for v in psnrs if math.isfinite(v)]
    return {"psnr": float(np.mean(finite)) if finite else float("inf"), "ssim": float(np.mean(ssims)),
            "protocol": "reference", "images": len(psnrs)}


def evaluate(restore_fn, dataset, task, *, sigma=None, scale=None, protocol: str = "standard",
             device="cpu", data_root=None, limit: int | None = None, allow_grey: bool | None = None,
             progress: bool = False) -> dict:
    """Score ``restore_fn`` on ``dataset`` for ``task`` ('denoise' or 'sr') under ``protocol``.

    ``dataset`` is an :class:`~hinas.data.ImageDataset` or a dataset name / folder (loaded
    with ``data_root``). Returns ``{dataset, task, protocol, sigma, scale, images, psnr, ssim,
    seconds, per_image: [{name, psnr, ssim}], embedded, comparable_with_paper, device}``; PSNR
    and SSIM are means over images.
    """
    from hinas import metrics
    from hinas.data.datasets import ImageDataset, load_dataset
    from hinas.data.degrade import add_noise_seeded, make_lr, to_grey

    task = _norm_task(task)
    if protocol not in PROTOCOLS:
        raise HinasError(f"unknown protocol '{protocol}': use one of {', '.join(PROTOCOLS)}")
    if task == "denoise":
        if sigma is None:
            raise HinasError("denoising evaluation needs --sigma (noise level on the 0-255 scale, e.g. 50)")
        sigma = finite_number(sigma, "--sigma", lo=0, hi=255, lo_open=True)  # 0: nothing to denoise, PSNR inf
    else:
        if scale is None:
            raise HinasError("SR evaluation needs --scale (2, 3 or 4)")
        if scale not in EVAL_SCALES:
            raise HinasError(f"--scale must be one of {', '.join(map(str, EVAL_SCALES))}, got {scale}")
        scale = int(scale)
    if not isinstance(dataset, ImageDataset):
        dataset = load_dataset(str(dataset), data_root, grey=(task == "denoise"))
    dataset = dataset.limit(limit)
    if allow_grey is None:
        allow_grey = dataset.allows_grey
    records = dataset.records
    import torch

    per_image = []
    t0 = time.perf_counter()
    with torch.no_grad():
        for i, rec in enumerate(records):
            label = rec.path or rec.name
            img = rec.image
            if task == "denoise":
                clean = to_grey(img)
                h, w = clean.shape
                if min(h, w) < 11:
                    raise DataError(f"{label}: image {w}x{h} is too small to score (SSIM needs 11x11); remove it")
                if protocol == "standard":
                    noisy = add_noise_seeded(clean.astype(np.float32) / 255.0, sigma, rec.name)
                    out = _from_tensor(restore_fn(_to_tensor(noisy, device)))
                    if out.shape != clean.shape:
                        raise HinasError(f"restore_fn returned {out.shape} for {rec.name}, expected {clean.shape}")
                    out8 = _quantise(out)
                    psnr = metrics.calculate_psnr(out8, clean)
                    ssim = metrics.calculate_ssim(out8, clean)
                else:
                    # dn_eval.py: stride-48 patches, fresh noise each, averaged, THEN clamped
                    p = min(64, h, w)
                    out = _patchwise(restore_fn, clean.astype(np.float32) / 255.0, p, 48,
                                     lambda t, y, x: add_noise_seeded(t, sigma, rec.name, extra=f"{y},{x}"), device)
                    out = np.clip(out, 0.0, 1.0) * 255.0
                    psnr = metrics.calculate_psnr(out, clean)
                    ssim = metrics.reference_ssim(out, clean)
            else:
                grey_hr = img.ndim == 2
                if grey_hr and not allow_grey:
                    raise DataError(f"{label}: grey image in an RGB (SR) task; convert it to RGB "
                                    f"(PIL: Image.open(f).convert('RGB').save(f)) or remove it")
                h, w = img.shape[:2]
                if h < scale or w < scale:
                    raise DataError(f"{label}: image {w}x{h} is smaller than the scale x{scale}; remove it "
                                    f"or use a smaller --scale")
                if protocol == "standard" and min(h, w) - 2 * scale < 11:
                    raise DataError(f"{label}: image {w}x{h} is too small to score at x{scale} "
                                    f"(SSIM needs 11x11 after the border crop); remove it")
                hr, lr = make_lr(img, scale, label)
                lr3 = np.repeat(lr[..., None], 3, axis=2) if grey_hr else lr
                out = _from_tensor(restore_fn(_to_tensor(lr3.astype(np.float32) / 255.0, device)))
                if out.shape[:2] != hr.shape[:2] or out.ndim != 3:
                    raise HinasError(f"restore_fn returned {out.shape} for {rec.name}, expected {hr.shape[:2]}x3")
                if protocol == "standard":
                    out8 = _quantise(out)
                    if grey_hr:  # the MATLAB scripts score a grey image on its own values
                        sr_y, hr_y = _luma(out8), hr.astype(np.float64)
                    else:
                        sr_y, hr_y = metrics.rgb2y(out8), metrics.rgb2y(hr)
                    psnr = metrics.calculate_psnr(sr_y, hr_y, crop_border=scale)
                    ssim = metrics.calculate_ssim(sr_y, hr_y, crop_border=scale)
                else:
                    hr3 = np.repeat(hr[..., None], 3, axis=2) if grey_hr else hr
                    sr_y = metrics.reference_y(out * 255.0)
                    hr_y = metrics.reference_y(hr3)
                    psnr = metrics.calculate_psnr(sr_y, hr_y)
                    ssim = metrics.reference_ssim(sr_y, hr_y)
            per_image.append({"name": rec.name, "psnr": psnr, "ssim": ssim})
            if progress:
                print(f"  [{i + 1}/{len(records)}] {rec.name}: {psnr:.3f} dB, SSIM {ssim:.4f}", file=sys.stderr)
    seconds = time.perf_counter() - t0
    if not per_image:
        raise DataError(f"dataset {dataset.name} has no images")
    finite = [r["psnr"] for r in per_image if math.isfinite(r["psnr"])]
    return {
        "dataset": dataset.name,
        "task": task,
        "protocol": protocol,
        "sigma": sigma if task == "denoise" else None,
        "scale": scale if task == "sr" else None,
        "images": len(per_image),
        "psnr": float(np.mean(finite)) if finite else float("inf"),
        "ssim": float(np.mean([r["ssim"] for r in per_image])),
        "seconds": seconds,
        "per_image": per_image,
        "embedded": dataset.embedded,
        "comparable_with_paper": dataset.comparable_with_paper,
        "device": str(device),
    }


# ------------------------------------------------------------------------------ baselines

def bicubic_restore(scale: int):
    """restore_fn for the bicubic SR baseline: MATLAB ``imresize(LR, scale)`` of the uint8 LR."""
    from hinas.data.imresize import imresize

    def fn(x):
        import torch

        lr = _quantise(_from_tensor(x))
        up = imresize(lr, scale).astype(np.float32) / 255.0
        t = torch.from_numpy(np.ascontiguousarray(up.transpose(2, 0, 1) if up.ndim == 3 else up[None]))
        return t[None]

    return fn


def bm3d_restore(sigma: float):
    """restore_fn for the BM3D denoising baseline (the ``bm3d`` package, sigma on 0-255)."""
    try:
        import bm3d
    except ImportError:
        raise HinasError("the BM3D baseline needs the optional 'bm3d' package (non-commercial licence, no aarch64 "
                         "wheel): pip install 'hinas[baselines]' (or: pip install bm3d)") from None

    def fn(x):
        import torch

        t = x.detach().float().cpu()[0]
        a = t[0].numpy().astype(np.float64) if t.shape[0] == 1 else t.numpy().transpose(1, 2, 0).astype(np.float64)
        out = np.asarray(bm3d.bm3d(a, sigma_psd=float(sigma) / 255.0), dtype=np.float32)
        if out.ndim == 3 and t.shape[0] == 1:
            out = out[..., 0]
        out = out[None] if out.ndim == 2 else out.transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(out))[None]

    return fn


# ------------------------------------------------------------------------------ trained run folders

NETWORK_FILE = "network.json"
MAX_F = 256  # channels per node at level 0 (the paper: 20 dn / 16 SR)
MAX_NODE_CHANNELS = 2048
MAX_PARAMS = 200_000_000  # an estimate refused before any tensor is allocated


def estimate_parameters(genotype, f: int | None, node_channels=None) -> int:
    """A quick upper estimate of a derived network's size, to refuse absurd ones before building."""
    f = f or (20 if genotype.task == "denoise" else 16)
    B = genotype.steps
    total = 64 * 64 * 9 * 2
    for layer, level in enumerate(genotype.path):
        C = node_channels[layer] if node_channels else f * genotype.width_factors[level]
        total += 2 * B * (9 * C * C + C * C) + 2 * (B * C) * C  # edges (conv + pointwise) and scalers
    return int(total)


def check_network_size(genotype, f=None, node_channels=None, source: str = "the network") -> None:
    if f is not None and (isinstance(f, bool) or not isinstance(f, int) or not 1 <= f <= MAX_F):
        raise HinasError(f"{source}: f must be an integer in 1..{MAX_F}, got {f!r}")
    if node_channels is not None:
        if (not isinstance(node_channels, list) or len(node_channels) != genotype.layers
                or not all(isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= MAX_NODE_CHANNELS
                           for c in node_channels)):
            raise HinasError(f"{source}: node_channels must list {genotype.layers} integers in "
                             f"1..{MAX_NODE_CHANNELS}, got {str(node_channels)[:60]}")
    n = estimate_parameters(genotype, f, node_channels)
    if n > MAX_PARAMS:
        raise HinasError(f"{source}: this network would have about {n / 1e6:.0f} M parameters (limit "
                         f"{MAX_PARAMS / 1e6:.0f} M); use a smaller f, fewer layers or smaller width_factors")


def check_network_spec(spec, source: str = NETWORK_FILE):
    """Validate a network description (``network.json``) before anything is built from it."""
    from hinas.genotype import Genotype

    if not isinstance(spec, dict):
        raise HinasError(f"{source}: expected a JSON object describing the network, got {type(spec).__name__}")
    model = spec.get("model")
    if model == "dncnn":
        if spec.get("in_channels", 1) != 1 or spec.get("task", "denoise") != "denoise":
            raise HinasError(f"{source}: DnCNN here is the grey denoising baseline (task denoise, in_channels 1); "
                             f"the file was edited")
        return None
    if model != "hinas":
        raise HinasError(f"{source}: model must be 'hinas' or 'dncnn', got {quote(model)}")
    g = Genotype.from_dict(spec.get("genotype"), f"{source} (genotype)")
    if spec.get("task", g.task) != g.task or (g.task == "sr" and spec.get("scale", g.scale) != g.scale):
        raise HinasError(f"{source}: task/scale disagree with the genotype's; the file was edited")
    if spec.get("in_channels", g.in_channels) != g.in_channels or g.in_channels != (1 if g.task == "denoise" else 3):
        raise HinasError(f"{source}: in_channels must be 1 for denoising and 3 for SR, and agree with the "
                         f"genotype's; the file was edited")
    if not isinstance(spec.get("residual", True), bool):
        raise HinasError(f"{source}: residual must be true or false")
    if spec.get("bn_init", "torch1") not in ("torch1", "ones"):
        raise HinasError(f"{source}: bn_init must be 'torch1' or 'ones', got {quote(spec.get('bn_init'))}")
    check_network_size(g, spec.get("f"), spec.get("node_channels"), source)
    return g


def build_model(spec: dict, source: str = NETWORK_FILE):
    """The network a run folder describes (``network.json``): a HiNAS genotype or DnCNN."""
    g = check_network_spec(spec, source)
    if g is None:
        from hinas.baselines import DnCNN
        from hinas.ops import init_batchnorm

        # the same BatchNorm init as the HiNAS networks it is compared with (same recipe, same budget)
        return init_batchnorm(DnCNN(in_channels=spec.get("in_channels", 1)), spec.get("bn_init", "torch1"))
    from hinas.network import build_network

    return build_network(g, spec.get("f"), residual=spec.get("residual", True),
                         node_channels=spec.get("node_channels"), bn_init=spec.get("bn_init", "torch1"))


def load_trained(run_dir, which: str = "best", device="cpu"):
    """Rebuild a trained network from its run folder (safetensors weights, JSON description).

    Refuses, by name, weights holding NaN or infinite values (a diverged run is not scored).
    """
    import torch
    from safetensors.torch import load_file

    from hinas.safeio import load_json_file

    run_dir = Path(run_dir)
    spec_file = run_dir / NETWORK_FILE
    weights = run_dir / ("weights.safetensors" if which == "best" else "weights_final.safetensors")
    if not run_dir.is_dir():
        raise HinasError(f"{quote(run_dir)}: not a training run folder (no such folder); give the --out folder "
                         f"of 'hinas train'")
    if not spec_file.exists():
        raise HinasError(f"{quote(run_dir)}: not a training run folder (no {NETWORK_FILE}); give the --out folder "
                         f"of 'hinas train'")
    if not weights.is_file():
        raise HinasError(f"{quote(run_dir)}: no {weights.name} yet; the training has not reached its first "
                         f"validation (continue it with 'hinas train ... --resume')")
    spec = load_json_file(spec_file, "network description")
    model = build_model(spec, quote(spec_file))
    try:
        state = load_file(str(weights))
        model.load_state_dict(state)
    except Exception as exc:
        raise HinasError(f"{quote(weights)}: cannot load these weights into the network described by "
                         f"{spec_file.name} ({exc.__class__.__name__}); the files do not belong together") from None
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise HinasError(f"{quote(weights)}: {len(bad)} tensor(s) hold NaN or infinite values "
                         f"({quote(bad[0])}{', ...' if len(bad) > 1 else ''}); the training diverged: "
                         f"retrain with a lower learning rate")
    return model.to(device).eval(), spec


def _timed_restore(model, device):
    """Wrap the network so the whole set's forward time is measured (CUDA events on a GPU)."""
    import torch

    total = {"seconds": 0.0}
    dev = torch.device(device)

    def restore(x):
        if dev.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            y = model(x)
            end.record()
            torch.cuda.synchronize(dev)
            total["seconds"] += start.elapsed_time(end) / 1000
        else:
            t0 = time.perf_counter()
            y = model(x)
            total["seconds"] += time.perf_counter() - t0
        return y

    return restore, total


def evaluate_run(run_dir, dataset=None, *, sigma=None, scale=None, protocol: str = "standard", data_root=None,
                 device: str = "cpu", limit: int | None = None, which: str = "best", progress: bool = False) -> dict:
    """Score a trained run folder; returns psnr, ssim, params, flops, seconds, images, ..."""
    import torch

    from hinas.network import count_flops, count_parameters

    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise HinasError(f"--device {device} asked for but CUDA is not available; use --device cpu")
    model, spec = load_trained(run_dir, which, device)
    task = spec.get("task", "denoise")
    if task == "denoise":
        if sigma is None:
            raise HinasError("denoising evaluation needs --sigma (e.g. 50)")
        if scale is not None:
            raise HinasError("this run is a denoising network: use --sigma, not --scale")
    else:
        if sigma is not None:
            raise HinasError("this run is an SR network: use --scale, not --sigma")
        if scale is not None and scale != spec["scale"]:
            raise HinasError(f"this network upscales x{spec['scale']}, not x{scale}")
        scale = spec["scale"]
    if dataset is None:
        dataset = _default_dataset(task, data_root)
    restore, timer = _timed_restore(model, device)
    res = evaluate(restore, dataset, task, sigma=sigma, scale=scale, protocol=protocol, device=device,
                   data_root=data_root, limit=limit, progress=progress)
    in_ch = spec.get("in_channels", 1 if task == "denoise" else 3)
    res.update({
        "params": count_parameters(model),
        "flops": count_flops(model, (64, 64), in_ch)["flops"],
        "flops_input": [64, 64],
        "seconds_total": res["seconds"],
        "seconds": timer["seconds"],
        "run": str(Path(run_dir)),
        "weights": which,
        "model": spec["model"],
    })
    return res


def evaluate_weights(args) -> dict:
    """``hinas eval --weights DIR``."""
    if args.method is not None:
        raise HinasError("give either a baseline method or --weights, not both")
    if args.limit is not None and args.limit < 1:
        raise HinasError(f"--limit must be at least 1, got {args.limit}")
    if args.sigma is not None:
        finite_number(args.sigma, "--sigma", lo=0, hi=255, lo_open=True)
    return evaluate_run(args.weights, args.dataset, sigma=args.sigma, scale=args.scale, protocol=args.protocol,
                        data_root=args.data_root, device=args.device, limit=args.limit,
                        progress=sys.stderr.isatty())  # per-image lines on a terminal


# ------------------------------------------------------------------------------ command line

def add_eval_arguments(parser) -> None:
    """Arguments of ``hinas eval`` (shared with the engine's ``evaluate_weights``)."""
    parser.add_argument("method", nargs="?", choices=["bicubic", "bm3d", "noisy"], default=None,
                        help="baseline to evaluate: bicubic (SR), bm3d (denoising) or noisy (the noisy input "
                             "itself, the floor a denoiser must clear); omit with --weights")
    parser.add_argument("--weights", default=None, metavar="DIR", help="evaluate a trained run folder")
    parser.add_argument("--dataset", default=None,
                        help="dataset name (Set5, Set14, B100, Urban100, Manga109, BSDS500-test, BSD68, Set12, "
                             "embedded-test, ...) or a folder of images; default: the task's standard test set")
    parser.add_argument("--scale", type=int, default=None, help="SR factor (2, 3 or 4)")
    parser.add_argument("--sigma", type=float, default=None, help="denoising noise level on the 0-255 scale")
    parser.add_argument("--data-root", default=None, metavar="DIR",
                        help="folder holding the datasets (default: $HINAS_DATA, else the embedded images)")
    parser.add_argument("--protocol", choices=list(PROTOCOLS), default="standard",
                        help="metric protocol (default: standard; hinas-reference = the released code)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N images (sorted)")
    parser.add_argument("--device", default="cpu", help="torch device for networks (default: cpu)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--per-image", action="store_true", help="include per-image scores in the JSON")
    parser.add_argument("--save", default=None, metavar="FILE",
                        help="also write the full result (per image, with provenance) to this JSON file")
    parser.add_argument("--force", action="store_true", help="let --save overwrite an existing file")


def register_cli(subparsers) -> None:
    p = subparsers.add_parser("eval", help="evaluate a baseline (bicubic, bm3d, noisy) or trained weights on a dataset",
                              description="Evaluate a baseline or a trained network. Protocols: " + "; ".join(
                                  f"{k}: {v['summary']}" for k, v in PROTOCOLS.items()))
    add_eval_arguments(p)
    p.set_defaults(func=_eval_command)


def _default_dataset(task: str, data_root) -> str:
    from hinas.data.datasets import resolve_data_root

    if resolve_data_root(data_root) is None:
        return "embedded-test"
    return "Set5" if task == "sr" else "BSDS500-test"


def run_eval(args) -> dict:
    """Run ``hinas eval`` for a baseline from parsed ``args``; returns the result dict."""
    if args.method is None:
        raise HinasError("give a method (bicubic, bm3d or noisy) or --weights DIR")
    if args.limit is not None and args.limit < 1:
        raise HinasError(f"--limit must be at least 1, got {args.limit}")
    if args.method == "bicubic":
        if args.sigma is not None:
            raise HinasError("bicubic is the SR baseline: use --scale, not --sigma (bm3d is the denoising one)")
        if args.scale is None:
            raise HinasError("bicubic needs --scale (2, 3 or 4)")
        if args.scale not in EVAL_SCALES:
            raise HinasError(f"--scale must be one of {', '.join(map(str, EVAL_SCALES))}, got {args.scale}")
        task, fn = "sr", bicubic_restore(args.scale)
    else:
        if args.scale is not None:
            raise HinasError(f"{args.method} is a denoising baseline: use --sigma, not --scale (bicubic is the SR one)")
        if args.sigma is None:
            raise HinasError(f"{args.method} needs --sigma (noise level on the 0-255 scale, e.g. 50)")
        finite_number(args.sigma, "--sigma", lo=0, hi=255, lo_open=True)
        # noisy: the identity, scored under the same protocol and noise draws as any denoiser
        task, fn = "denoise", (bm3d_restore(args.sigma) if args.method == "bm3d" else (lambda x: x))
    dataset = args.dataset or _default_dataset(task, args.data_root)
    res = evaluate(fn, dataset, task, sigma=args.sigma, scale=args.scale, protocol=args.protocol,
                   device=args.device, data_root=args.data_root, limit=args.limit,
                   progress=sys.stderr.isatty())  # per-image lines on a terminal (BM3D takes minutes)
    res["method"] = args.method
    return res


def _summary(res: dict) -> dict:
    head = {"dataset": res.get("dataset"), "scale": res.get("scale"), "sigma": res.get("sigma"),
            "images": res.get("images"), "psnr": res.get("psnr"), "ssim": res.get("ssim")}
    out = dict(head)
    for k, v in res.items():
        if k not in out and k != "per_image":
            out[k] = v
    return out


def _write_result(path: Path, text: str, force: bool) -> None:
    """Write ``path`` atomically through a temp file of its own (two evaluations never share one);
    without ``force`` the file is created exclusively, so a file that appeared meanwhile is kept."""
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with names_file(path), os.fdopen(fd, "w") as fh:
            fh.write(text)
        if force:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise HinasError(f"{quote(path)}: appeared while evaluating; pass --force to overwrite it, "
                                 f"or choose another --save") from None
            except OSError:  # a file system without hard links: check, then rename
                if path.exists():
                    raise HinasError(f"{quote(path)}: appeared while evaluating; pass --force to overwrite "
                                     f"it, or choose another --save") from None
                os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _eval_command(args) -> int:
    from hinas.cli import print_json

    save = Path(args.save) if args.save else None
    if save is not None:  # refuse before minutes of evaluation, not after
        if save.is_dir():
            raise HinasError(f"{quote(save)}: --save names a folder; give a file name (e.g. result.json)")
        blocker = next((p for p in save.parents if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise HinasError(f"{quote(blocker)}: is a file, so --save {quote(save)} cannot be written; "
                             f"choose another --save")
        if save.exists() and not getattr(args, "force", False):
            raise HinasError(f"{quote(save)}: already exists; pass --force to overwrite it, or choose another --save")
    res = evaluate_weights(args) if args.weights is not None else run_eval(args)
    if save is not None:
        full = dict(res)
        full["provenance"] = {"command": "hinas " + " ".join(sys.argv[1:]) if sys.argv else "hinas eval",
                              "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                              "device": str(getattr(args, "device", "cpu"))}
        save.parent.mkdir(parents=True, exist_ok=True)
        _write_result(save, json.dumps(full, indent=1) + "\n", force=getattr(args, "force", False))
    if args.json:
        print_json(res if args.per_image else _summary(res))
    else:
        what = res.get("method") or args.weights
        setting = f"x{res['scale']}" if res.get("scale") else f"sigma {res.get('sigma'):g}"
        line = (f"{what} on {res.get('dataset')} {setting} ({res.get('protocol')}): PSNR {res['psnr']:.2f} dB, "
                f"SSIM {res['ssim']:.4f} over {res.get('images')} images")
        if "seconds" in res:
            line += f" [{res['seconds']:.1f} s]"
        if res.get("embedded"):
            line += " - embedded images, NOT comparable with the paper"
        print(line)
    return 0
