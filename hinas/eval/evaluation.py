"""One evaluator for networks and baselines, under named protocols.

``standard`` (the default) follows the usual benchmark practice (BasicSR / the MATLAB
scripts behind the literature tables); ``hinas-reference`` re-creates what the released
HiNAS code measures (REFERENCE.md 5.3) so that published numbers can be explained. See
:data:`PROTOCOLS` for the differences, and ``hinas eval --help`` for the command.

``restore_fn`` is any callable that takes a float32 tensor 1xCxhxw in [0, 1] on ``device``
and returns the restored 1xCxHxW tensor (the evaluator clamps it to [0, 1]).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

from hinas.errors import DataError, HinasError
from hinas.safeio import finite_number

__all__ = ["PROTOCOLS", "VALIDATION_PROTOCOLS", "evaluate", "validate_reference", "bicubic_restore", "bm3d_restore",
           "evaluate_run"]

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


def to_tensor(a: np.ndarray, device):
    """An HxW or HxWxC float image as a 1xCxHxW tensor on ``device``."""
    import torch

    a = np.asarray(a, dtype=np.float32)
    t = torch.from_numpy(np.ascontiguousarray(a[None] if a.ndim == 2 else a.transpose(2, 0, 1)))
    return t[None].to(device)


def from_tensor(t, clamp: bool = True) -> np.ndarray:
    """A restored 1xCxHxW tensor back to an HxW(xC) float image in [0, 1] (refused if not finite)."""
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


def quantise(a01: np.ndarray) -> np.ndarray:
    """A [0, 1] float image rounded to uint8, as every protocol scores it."""
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
        xs = torch.cat([to_tensor(make_input(image01[y:y + patch, x:x + patch], y, x), device) for y, x in chunk])
        ys = restore_fn(xs)
        for k, (y, x) in enumerate(chunk):
            o = from_tensor(ys[k:k + 1], clamp=False)
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

    from hinas.eval import metrics
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
    from hinas.eval import metrics
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
                    out = from_tensor(restore_fn(to_tensor(noisy, device)))
                    if out.shape != clean.shape:
                        raise HinasError(f"restore_fn returned {out.shape} for {rec.name}, expected {clean.shape}")
                    out8 = quantise(out)
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
                out = from_tensor(restore_fn(to_tensor(lr3.astype(np.float32) / 255.0, device)))
                if out.shape[:2] != hr.shape[:2] or out.ndim != 3:
                    raise HinasError(f"restore_fn returned {out.shape} for {rec.name}, expected {hr.shape[:2]}x3")
                if protocol == "standard":
                    out8 = quantise(out)
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

        lr = quantise(from_tensor(x))
        up = imresize(lr, scale).astype(np.float32) / 255.0
        t = torch.from_numpy(np.ascontiguousarray(up.transpose(2, 0, 1) if up.ndim == 3 else up[None]))
        return t[None]

    return fn


BM3D_PROFILES = ("np", "refilter", "vn", "vn_old", "high", "deb")  # the bm3d package's parameter sets


def bm3d_restore(sigma: float, profile: str = "np"):
    """restore_fn for the BM3D denoising baseline (the ``bm3d`` package, sigma on 0-255;
    ``profile``: one of :data:`BM3D_PROFILES`, 'np' by default)."""
    if profile not in BM3D_PROFILES:
        raise HinasError(f"unknown BM3D profile {profile!r}: use one of {', '.join(BM3D_PROFILES)}")
    try:
        import bm3d
    except ImportError:
        raise HinasError("the BM3D baseline needs the optional 'bm3d' package (non-commercial licence, no aarch64 "
                         "wheel): pip install 'hinas[baselines]' (or: pip install bm3d)") from None

    def fn(x):
        import torch

        t = x.detach().float().cpu()[0]
        a = t[0].numpy().astype(np.float64) if t.shape[0] == 1 else t.numpy().transpose(1, 2, 0).astype(np.float64)
        out = np.asarray(bm3d.bm3d(a, sigma_psd=float(sigma) / 255.0, profile=profile), dtype=np.float32)
        if out.ndim == 3 and t.shape[0] == 1:
            out = out[..., 0]
        out = out[None] if out.ndim == 2 else out.transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(out))[None]

    return fn


BASELINES = ("noisy-input", "bm3d")  # denoising restorers without a network (a campaign's 'baseline' items)


def baseline_restorer(method: str, sigma: float):
    """restore_fn of a baseline: the noisy input itself (the floor every denoiser must clear) or
    BM3D (:func:`bm3d_restore`)."""
    if method not in BASELINES:
        raise HinasError(f"unknown baseline {method!r}: use one of {', '.join(BASELINES)}")
    return (lambda x: x) if method == "noisy-input" else bm3d_restore(sigma)


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

    from hinas.space.network import count_flops, count_parameters
    from hinas.space.network_file import load_trained

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
        dataset = default_dataset(task, data_root)
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


def default_dataset(task: str, data_root) -> str:
    """The task's standard test set (BSDS500-test / Set5), or the embedded images without a data root."""
    from hinas.data.datasets import resolve_data_root

    if resolve_data_root(data_root) is None:
        return "embedded-test"
    return "Set5" if task == "sr" else "BSDS500-test"
