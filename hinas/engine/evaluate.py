"""Evaluation of a trained run folder on a test set, with size, FLOPs and timing."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from hinas.errors import HinasError


def _timed_restore(model, device):
    """Wrap the network so the whole set's forward time is measured (CUDA events on a GPU)."""
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
    from hinas.engine.train import load_trained
    from hinas.evaluation import evaluate
    from hinas.network import count_flops, count_parameters

    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise HinasError(f"--device {device} asked for but CUDA is not available; use --device cpu")
    model, spec = load_trained(run_dir, which, device)
    task = spec["task"]
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
        from hinas.data.datasets import resolve_data_root

        dataset = "embedded-test" if resolve_data_root(data_root) is None else ("BSDS500-test" if task == "denoise" else "Set5")
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
    """``hinas eval --weights DIR`` (arguments from :func:`hinas.evaluation.add_eval_arguments`)."""
    if args.method is not None:
        raise HinasError("give either a baseline method or --weights, not both")
    if args.limit is not None and args.limit < 1:
        raise HinasError(f"--limit must be at least 1, got {args.limit}")
    return evaluate_run(args.weights, args.dataset, sigma=args.sigma, scale=args.scale, protocol=args.protocol,
                        data_root=args.data_root, device=args.device, limit=args.limit,
                        progress=sys.stderr.isatty())  # per-image lines on a terminal
