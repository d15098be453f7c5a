"""What each difference between the two denoising protocols is worth, measured one step at a time.

``standard`` and ``hinas-reference`` (:data:`hinas.eval.evaluation.PROTOCOLS`) differ in four things at
once: float instead of uint8 output, zero-padded instead of 'valid' SSIM, overlapping 64x64 patches
instead of the whole image, and a fresh noise draw per patch instead of one per image. A *ladder*
scores one restorer on the same images under a sequence of protocols that each change one thing,
from ``standard`` (the first step, equal to :func:`hinas.eval.evaluation.evaluate`'s) to
``hinas-reference`` (the last, equal to it too), so the total difference splits into measured parts
with a paired standard error each. :data:`INPUT_STEPS` change what the restorer is given instead
(a noisy input clipped to [0, 1], or also rounded to uint8, as a noisy PNG file is): the usual
reasons a BM3D number differs from a published one.

A ladder is saved after every image (``hinas protocol-ladder --out FILE``); calling it again with the
same setup continues where it stopped (and a larger ``--limit`` adds images), so BM3D's slow
patch-wise steps can run in pieces. Images a file holds beyond the ones asked for are kept.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass

import numpy as np

from hinas.errors import HinasError

__all__ = ["Step", "PROTOCOL_STEPS", "INPUT_STEPS", "STEPS", "run_ladder", "ladder_identity", "summarise",
           "step_scores", "step_differences"]

FORMAT = 1
PATCH, STRIDE = 64, 48  # the released dn_eval.py


@dataclass(frozen=True)
class Step:
    key: str
    label: str
    restoration: str  # which restored image it scores (see _restore)
    float_output: bool  # scored on floats (the released code) instead of the uint8-rounded output
    padded_ssim: bool  # zero-padded 'same' SSIM (the released code) instead of MATLAB's 'valid'


PROTOCOL_STEPS = (
    Step("standard", "standard protocol", "whole", False, False),
    Step("float-output", "+ float output (no uint8 rounding)", "whole", True, False),
    Step("padded-ssim", "+ zero-padded SSIM (PSNR unchanged)", "whole", True, True),
    Step("patches", "+ 64x64 patches at stride 48, averaged (one noise draw)", "patches-one-draw", True, True),
    Step("fresh-noise", "+ fresh noise per patch (= hinas-reference)", "patches-fresh-draws", True, True),
)
INPUT_STEPS = (
    Step("input-clipped", "standard, noisy input clipped to [0, 1]", "whole-clipped", False, False),
    Step("input-clipped-uint8", "standard, noisy input clipped and rounded to uint8", "whole-clipped-uint8",
         False, False),
)
STEPS = {s.key: s for s in PROTOCOL_STEPS + INPUT_STEPS}


def _restore(kind: str, restore_fn, clean01: np.ndarray, sigma: float, name: str, device) -> np.ndarray:
    """The restored image in [0, 1] (float) for one restoration ``kind``, with the same noise draws
    as :func:`hinas.eval.evaluation.evaluate` (one per image, or one per patch position) and, like it,
    one patch per forward pass (batching patches is no faster on a CPU, and changes the last bits)."""
    from hinas.data.degrade import add_noise_seeded
    from hinas.eval.evaluation import _patchwise, from_tensor, quantise, to_tensor

    noisy = add_noise_seeded(clean01, sigma, name)
    if kind == "whole":
        return from_tensor(restore_fn(to_tensor(noisy, device)))
    if kind in ("whole-clipped", "whole-clipped-uint8"):
        given = np.clip(noisy, 0.0, 1.0)
        if kind == "whole-clipped-uint8":
            given = quantise(given).astype(np.float32) / 255.0
        return from_tensor(restore_fn(to_tensor(given, device)))
    p = min(PATCH, *clean01.shape)
    if kind == "patches-one-draw":  # tiles cut from the one noisy image
        out = _patchwise(restore_fn, noisy, p, STRIDE, lambda t, y, x: t, device)
    elif kind == "patches-fresh-draws":  # dn_eval.py: each tile gets its own draw
        out = _patchwise(restore_fn, clean01, p, STRIDE,
                         lambda t, y, x: add_noise_seeded(t, sigma, name, extra=f"{y},{x}"), device)
    else:
        raise HinasError(f"unknown restoration '{kind}'")
    return np.clip(out, 0.0, 1.0)  # the released code averages, then clamps


def _score(step: Step, out01: np.ndarray, clean: np.ndarray) -> dict:
    from hinas.eval import metrics
    from hinas.eval.evaluation import quantise

    x = out01 * 255.0 if step.float_output else quantise(out01)
    ssim = metrics.reference_ssim(x, clean) if step.padded_ssim else metrics.calculate_ssim(x, clean)
    return {"psnr": metrics.calculate_psnr(x, clean), "ssim": ssim}


def ladder_identity(method: str, sigma: float, dataset: str, steps, **setup) -> dict:
    """What a ladder file must agree on to be continued: method, sigma, dataset, steps and the
    rest of its setup (the network's weights hash, the BM3D profile)."""
    return {"format": FORMAT, "method": method, "sigma": float(sigma), "dataset": dataset,
            "steps": list(steps), **{k: v for k, v in setup.items() if v is not None}}


def run_ladder(restore_fn, dataset, identity: dict, *, device="cpu", previous: dict | None = None,
               save=None, progress: bool = False) -> dict:
    """Score ``restore_fn`` on every image of ``dataset`` (an ImageDataset, grey) at each step of
    ``identity['steps']``. ``previous`` (a saved ladder of the same identity) supplies the images
    already done; ``save(result)`` is called after every image. Returns the ladder dict."""
    import torch

    from hinas.data.degrade import to_grey

    steps = [STEPS[k] for k in identity["steps"]]
    done = {r["name"]: r for r in (previous or {}).get("per_image", [])}
    wanted = {rec.name for rec in dataset.records}
    kept = [r for name, r in done.items() if name not in wanted]  # done before, beyond this call's images
    result = {**identity, "per_image": kept, "seconds": dict((previous or {}).get("seconds", {}))}
    with torch.no_grad():
        for i, rec in enumerate(dataset.records):
            if rec.name in done:
                result["per_image"].append(done[rec.name])
                continue
            clean = to_grey(rec.image)
            clean01 = clean.astype(np.float32) / 255.0
            scores = {}
            for kind in dict.fromkeys(s.restoration for s in steps):  # each restoration once
                t0 = time.perf_counter()
                out = _restore(kind, restore_fn, clean01, identity["sigma"], rec.name, device)
                result["seconds"][kind] = result["seconds"].get(kind, 0.0) + time.perf_counter() - t0
                for s in steps:
                    if s.restoration == kind:
                        scores[s.key] = _score(s, out, clean)
            result["per_image"].append({"name": rec.name, "scores": scores})
            result["summary"] = summarise(result)
            if save is not None:
                save(result)
            if progress:
                print(f"  [{i + 1}/{len(dataset)}] {rec.name}: " + ", ".join(
                    f"{k} {v['psnr']:.2f}" for k, v in scores.items()), file=sys.stderr)
    result["per_image"].sort(key=lambda r: r["name"])
    result["summary"] = summarise(result)
    return result


def summarise(result: dict) -> dict:
    """Mean PSNR/SSIM per step over the images done."""
    out = {}
    for key in result["steps"]:
        vals = [r["scores"][key] for r in result["per_image"] if key in r.get("scores", {})]
        psnr = [v["psnr"] for v in vals if math.isfinite(v["psnr"])]
        out[key] = {"psnr": float(np.mean(psnr)) if psnr else None,
                    "ssim": float(np.mean([v["ssim"] for v in vals])) if vals else None, "images": len(vals)}
    return out


def step_scores(result: dict, key: str) -> list[dict]:
    """``[{name, psnr, ssim}]`` of step ``key`` over the images scored at it (what
    :func:`hinas.eval.stats.paired_difference` pairs by name)."""
    return [{"name": r["name"], **r["scores"][key]} for r in result["per_image"] if key in r["scores"]]


def step_differences(result: dict, against: str | None = None) -> list[dict]:
    """Per step, the paired difference on the same images from the step before it (a protocol step
    from the previous protocol step, an input step from ``standard``), or from step ``against`` when
    given: ``{step, from, label, psnr: paired_difference, ssim: paired_difference}``."""
    from hinas.eval.stats import paired_difference

    rows, prev = [], None
    for key in result["steps"]:
        is_protocol = STEPS[key] in PROTOCOL_STEPS
        base = against or (prev if is_protocol else "standard")
        prev = key if is_protocol else prev
        if base is None or base == key or base not in result["steps"]:
            continue
        a, b = step_scores(result, key), step_scores(result, base)
        rows.append({"step": key, "from": base, "label": STEPS[key].label,
                     "psnr": paired_difference(a, b, "psnr"), "ssim": paired_difference(a, b, "ssim")})
    return rows
