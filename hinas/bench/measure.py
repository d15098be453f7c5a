"""Benchmarks that print figures and ratios (never timed unit tests).

``hinas bench supernet-memory`` measures one training step (forward + backward of the search
loss) of the supernet with cell sharing (Eq. 5) and without it (Eq. 6, Auto-DeepLab), at the
paper's denoising search configuration unless told otherwise.

Peak memory is a real allocator-level measurement:

* CUDA: ``torch.cuda.max_memory_allocated`` during the step, minus what was allocated before.
* CPU: PyTorch's profiler with ``profile_memory=True`` records every allocation and free of
  the c10 CPU allocator as ``[memory]`` events carrying the allocator's running
  ``Total Allocated``; the peak of that counter during the step, minus its value before.

The analytic expectation is the ratio of cell evaluations weighted by width: Eq. 6 runs a
target cell once per incoming level (``Supernet.cell_evaluations``).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import tempfile
import time

import torch

from hinas.space.spec import SupernetConfig
from hinas.errors import HinasError
from hinas.losses import RestorationLoss
from hinas.space.supernet import Supernet

CPU_METHOD = "torch.profiler profile_memory: peak of the c10 CPU allocator's 'Total Allocated' during the step"
CUDA_METHOD = "torch.cuda.max_memory_allocated during the step minus memory allocated before it"


def _step(net, loss_fn, x, y):
    net.zero_grad(set_to_none=True)
    loss = loss_fn(net(x), y)
    loss.backward()
    return loss


@contextlib.contextmanager
def _native_stderr_silenced():
    """Process-level stderr to /dev/null for the block: PyTorch 2.13's profiler writes a
    'profiler_start' / 'profiler_stop' line from C++ at each start and stop, which a notebook
    would show as output. Python errors are raised, not printed, so none is lost."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _cpu_peak_bytes(net, loss_fn, x, y) -> int:
    from torch.profiler import ProfilerActivity, profile

    with _native_stderr_silenced(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        _step(net, loss_fn, x, y)
    fd, trace = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        prof.export_chrome_trace(trace)
        with open(trace) as fh:
            events = json.load(fh)["traceEvents"]
    finally:
        os.unlink(trace)
    mem = [e["args"] for e in events if e.get("name") == "[memory]" and "Total Allocated" in e.get("args", {})]
    if not mem:
        raise HinasError("the profiler recorded no CPU memory events; this PyTorch build cannot measure CPU memory")
    start = mem[0]["Total Allocated"] - mem[0].get("Bytes", 0)
    return int(max(m["Total Allocated"] for m in mem) - start)


def measure_step(cfg: SupernetConfig, *, batch: int, size: int, device: str, repeats: int = 2,
                 seed: int = 0, keep_grads: bool = False) -> dict:
    torch.manual_seed(seed)
    dev = torch.device(device)
    net = Supernet(cfg).to(dev)
    loss_fn = RestorationLoss(cfg.task, "search").to(dev)
    out_size = size * (cfg.scale or 1)
    x = torch.rand(batch, cfg.in_channels, size, size, device=dev)
    y = torch.rand(batch, cfg.in_channels, out_size, out_size, device=dev)
    _step(net, loss_fn, x, y)  # warm-up: allocator caches, cuDNN autotuning
    times = []
    for _ in range(repeats):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        _step(net, loss_fn, x, y)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - t0)
    net.zero_grad(set_to_none=True)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        before = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        _step(net, loss_fn, x, y)
        torch.cuda.synchronize(dev)
        peak = torch.cuda.max_memory_allocated(dev) - before
    else:
        peak = _cpu_peak_bytes(net, loss_fn, x, y)
    result = {
        "peak_bytes": int(peak),
        "step_seconds": statistics.median(times),
        "cell_evaluations": net.cell_evaluations(),
        "weights": sum(p.numel() for p in net.weight_parameters()),
    }
    if keep_grads:  # the gradients of the measured step (same seed, same batch in every mode)
        result["_grads"] = {n: p.grad.detach().cpu() for n, p in net.named_parameters() if p.grad is not None}
    return result


def supernet_memory(*, device: str = "cpu", batch: int = 6, size: int = 64, layers: int = 3,
                    levels: int = 3, steps: int = 4, f: int = 10, width_factors=(1, 1.5, 2),
                    repeats: int = 2, seed: int = 0, memory_saving: str | None = None,
                    partial_channels: int = 1, modes=("eq5", "eq6")) -> dict:
    """Eq. 5 vs Eq. 6: peak memory and time of one search training step, and their ratios.

    With ``memory_saving='recompute'`` and/or ``partial_channels=K``, Eq. 5 is measured again
    with that saving in the same process, and ``result['saving']`` holds its peak, step time,
    ratios against plain Eq. 5 and the largest gradient difference from plain Eq. 5 (same
    weights, same batch; zero up to float rounding for ``recompute``, not for partial channels,
    which is another network).
    """
    if device == "cuda" and not torch.cuda.is_available():
        raise HinasError("--device cuda was asked for but CUDA is not available; use --device cpu")
    base = SupernetConfig.paper("denoise", f=f, layers=layers, levels=levels, steps=steps,
                                width_factors=tuple(width_factors))
    saving = memory_saving not in (None, "none") or partial_channels > 1
    if "eq5" not in modes:
        raise HinasError("the benchmark always measures Eq. 5 (the reference for every ratio)")
    result = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu"}
    for mode in modes:
        result[mode] = measure_step(base.replace(cell_sharing=mode), batch=batch, size=size,
                                    device=device, repeats=repeats, seed=seed, keep_grads=saving and mode == "eq5")
    if "eq6" in result:
        result["memory_ratio"] = result["eq6"]["peak_bytes"] / result["eq5"]["peak_bytes"]
        result["time_ratio"] = result["eq6"]["step_seconds"] / result["eq5"]["step_seconds"]
        result["analytic_ratio"] = result["eq6"]["cell_evaluations"] / result["eq5"]["cell_evaluations"]
    if saving:
        plain_grads = result["eq5"].pop("_grads")
        cfg = base.replace(memory_saving=memory_saving or "none", partial_channels=partial_channels)
        r = measure_step(cfg, batch=batch, size=size, device=device, repeats=repeats, seed=seed,
                         keep_grads=partial_channels == 1)
        grads = r.pop("_grads", None)
        result["saving"] = {
            "memory_saving": memory_saving or "none", "partial_channels": partial_channels,
            "peak_bytes": r["peak_bytes"], "step_seconds": r["step_seconds"],
            "memory_ratio_vs_eq5": result["eq5"]["peak_bytes"] / r["peak_bytes"],
            "time_ratio_vs_eq5": r["step_seconds"] / result["eq5"]["step_seconds"],
            # partial channels is another network: its gradients are not comparable
            "grad_max_abs_diff": None if grads is None else
            max(float((grads[n] - g).abs().max()) for n, g in plain_grads.items()),
        }
    result["config"] = {"task": "denoise", "f": f, "layers": layers, "steps": steps, "levels": levels,
                        "width_factors": list(width_factors), "batch": batch, "size": size,
                        "torch": torch.__version__, "threads": torch.get_num_threads()}
    result["memory_method"] = CUDA_METHOD if device == "cuda" else CPU_METHOD
    result["provenance"] = _provenance(device)
    return result


def memory_modes_table(result: dict) -> list[dict]:
    """Rows Eq. 6 / Eq. 5 / Eq. 5 + saving of a ``supernet_memory`` result (a dict or a JSON file
    written by ``hinas bench supernet-memory --memory-saving recompute --json``), for the book.

    The analytic column is the width-weighted cell evaluations relative to Eq. 5 (the cost model
    of Eq. 5/6); the recompute mode has no such count: it keeps the same cell evaluations and
    stores only each mixed op's input and output instead of every op's activations.
    """
    if not isinstance(result, dict):
        from hinas.safeio import load_json_file

        result = load_json_file(result, "benchmark result")
    eq5 = result["eq5"]
    rows = []
    for mode, label in (("eq6", "Eq. 6 (Auto-DeepLab, separate cells)"), ("eq5", "Eq. 5 (HiNAS, cell sharing)")):
        if mode not in result:
            continue
        r = result[mode]
        rows.append({"mode": label, "peak_MiB": r["peak_bytes"] / 2**20, "step_s": r["step_seconds"],
                     "memory_vs_eq5": r["peak_bytes"] / eq5["peak_bytes"],
                     "analytic_vs_eq5": r["cell_evaluations"] / eq5["cell_evaluations"]})
    if "saving" in result:
        s = result["saving"]
        name = s["memory_saving"] + (f", partial channels 1/{s['partial_channels']}" if s["partial_channels"] > 1 else "")
        rows.append({"mode": f"Eq. 5 + {name}", "peak_MiB": s["peak_bytes"] / 2**20, "step_s": s["step_seconds"],
                     "memory_vs_eq5": s["peak_bytes"] / eq5["peak_bytes"], "analytic_vs_eq5": None,
                     "grad_max_abs_diff": s["grad_max_abs_diff"]})
    return rows


def _provenance(device="cpu") -> dict:
    from hinas.engine.common import provenance

    return provenance(device)


def train_stability(*, iterations: int = 500, batch: int = 24, patch: int = 64, f: int = 20, lr: float = 0.05,
                    sigma: float = 50.0, seed: int = 0, device: str = "cpu", data_root=None, genotype=None,
                    bn_init: str = "torch1", nonpositive_ssim: str = "gradient", rescale_aug: bool = True,
                    max_images: int | None = None, threads: int | None = None) -> dict:
    """Train a derived denoising network with the released recipe (SGD momentum 0.9, ``lr`` with
    poly decay over the paper's 600k iterations, wd 4e-5, bias lr x2, clip 5, the train loss) on
    real training images and return every iteration's loss: does lr 0.05 stay finite and fall?

    The steps are the engine's own pieces (``param_groups``, ``poly_lr``, ``RestorationLoss``,
    ``PatchDataset``), so this measures what ``hinas train`` does, without its files."""
    import math

    import numpy as np

    from hinas.data import PatchDataset, task_datasets
    from hinas.engine.config import RunConfig
    from hinas.engine.train import param_groups, poly_lr
    from hinas.space.genotype import random_genotype
    from hinas.space.network import build_network

    if threads:
        torch.set_num_threads(threads)
    cfg = RunConfig.from_profile("paper", "denoise", train_lr=lr, bn_init=bn_init, nonpositive_ssim=nonpositive_ssim,
                                 seed=seed, device=device)
    torch.manual_seed(seed)
    g = genotype or random_genotype("denoise", seed=seed)
    net = build_network(g, f, bn_init=bn_init).to(device).train()
    records = sorted(task_datasets("denoise", data_root)["train"].records, key=lambda r: r.name)[:max_images]
    ds = PatchDataset(records, "denoise", patch=patch, sigma=sigma, seed=seed, rescale=rescale_aug,
                      samples_per_epoch=max(len(records), batch))
    loss_fn = RestorationLoss("denoise", "train", nonpositive_ssim=nonpositive_ssim).to(device)
    opt = torch.optim.SGD(param_groups(net, cfg), lr=lr, momentum=0.9)
    losses, events = [], 0
    t0 = time.perf_counter()
    order = np.random.default_rng(seed)
    for it in range(iterations):
        cur = poly_lr(cfg, it)
        for group in opt.param_groups:
            group["lr"] = cur * group["lr_factor"]
        ds.set_epoch(it)
        idx = order.choice(len(ds), size=batch, replace=len(ds) < batch)
        x, y = (torch.stack(t).to(device) for t in zip(*(ds[int(i)] for i in idx)))
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_value_(net.parameters(), cfg.grad_clip)
        opt.step()
        losses.append(float(loss.detach()))
    events = loss_fn.take_nonpositive_events()
    seconds = time.perf_counter() - t0
    window = max(1, min(10, iterations // 6))
    first, last = float(np.mean(losses[:window])), float(np.mean(losses[-window:]))
    return {"losses": [round(v, 6) for v in losses], "first": first, "last": last, "window": window,
            "ratio_last_first": last / first if first else None, "finite": all(math.isfinite(v) for v in losses),
            "max_loss": max(losses), "nonpositive_ssim": events, "iterations": iterations, "batch": batch,
            "patch": patch, "f": f, "lr": lr, "sigma": sigma, "bn_init": bn_init, "nonpositive_ssim_mode": nonpositive_ssim,
            "rescale_aug": rescale_aug, "genotype": g.to_dict(), "images": len(records), "seed": seed,
            "seconds": round(seconds, 3), "device": str(device), "provenance": _provenance(device)}


def search_speed(*, profile: str = "paper", task: str = "denoise", device: str = "cpu", steps: int = 3,
                 variants=("fp32",), data_root=None) -> dict:
    """Time the pieces of one search iteration (arch step + weight step) on real patches.

    Reports the seconds per batch spent making data (patch sampling, noise, collation) and
    in the two optimisation steps, per variant: ``fp32``, ``bf16`` (autocast) and
    ``channels_last`` (both CUDA only). Ratios are within this one run.
    """
    from hinas.data import BatchStream, PatchDataset, task_datasets
    from hinas.engine.common import resolve_device
    from hinas.engine.config import RunConfig

    cfg = RunConfig.from_profile(profile, task, device=device)
    dev = resolve_device(device)
    data = task_datasets(cfg.task, data_root)
    recs = sorted(data["train"].records, key=lambda r: r.name)[:32]
    ds = PatchDataset(recs, cfg.task, patch=cfg.patch, sigma=cfg.search_sigma if task == "denoise" else None,
                      scale=cfg.scale, samples_per_epoch=len(recs) * 4)
    stream = BatchStream(ds, cfg.batch_size, 0)
    t0 = time.perf_counter()
    batches = [stream.next() for _ in range(steps + 1)]
    data_seconds = (time.perf_counter() - t0) / (steps + 1)
    out = {"device": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu", "profile": profile,
           "batch": cfg.batch_size, "patch": cfg.patch, "data_seconds_per_batch": data_seconds, "variants": {}}
    for variant in variants:
        if variant != "fp32" and dev.type != "cuda":
            out["variants"][variant] = None  # CUDA only
            continue
        torch.manual_seed(0)
        net = Supernet(cfg.supernet_config()).to(dev)
        if variant == "channels_last":
            net = net.to(memory_format=torch.channels_last)
        loss_fn = RestorationLoss(cfg.task, "search").to(dev)
        opt_w = torch.optim.SGD(net.weight_parameters(), lr=0.025, momentum=0.9)
        opt_a = torch.optim.Adam(net.arch_parameters(), lr=1e-3)
        amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=variant == "bf16")
        times = []
        for i, (x, y) in enumerate(batches):
            x, y = x.to(dev), y.to(dev)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t = time.perf_counter()
            for opt in (opt_a, opt_w):
                opt.zero_grad(set_to_none=True)
                with amp:
                    loss = loss_fn(net(x).float(), y)
                loss.backward()
                opt.step()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            if i:  # the first is warm-up
                times.append(time.perf_counter() - t)
        out["variants"][variant] = {"step_seconds": statistics.median(times)}
    base = out["variants"]["fp32"]["step_seconds"] if out["variants"].get("fp32") else None
    if base:
        out["data_fraction"] = data_seconds / (data_seconds + base)
        for v, r in out["variants"].items():
            if r:
                r["speedup_vs_fp32"] = base / r["step_seconds"]
    out["provenance"] = _provenance(device)
    return out


def gradient_scope(*, profile: str = "quick", task: str = "denoise", device: str = "cpu", repeats: int = 5,
                   seed: int = 0) -> dict:
    """The search steps' backward passes, as the released code ran them (every gradient: the
    architecture step also filled the weights' gradients and the weight step alpha/beta's, each
    discarded) and as hinas runs them (only the gradients the step uses: the same updates).
    Forward + backward seconds (median of ``repeats``, alternating, one process), and the ratios."""
    from hinas.engine.common import resolve_device
    from hinas.engine.config import RunConfig

    cfg = RunConfig.from_profile(profile, task, device=device)
    dev = resolve_device(device)
    torch.manual_seed(seed)
    net = Supernet(cfg.supernet_config()).to(dev)
    loss_fn = RestorationLoss(cfg.task, "search").to(dev)
    c_in = 1 if cfg.task == "denoise" else 3
    x = torch.rand(cfg.batch_size, c_in, cfg.patch, cfg.patch, device=dev)
    y = torch.rand(cfg.batch_size, c_in, cfg.patch * (cfg.scale or 1), cfg.patch * (cfg.scale or 1), device=dev)
    groups = {"all (released)": None, "weights only (hinas weight step)": list(net.weight_parameters()),
              "alpha/beta only (hinas architecture step)": list(net.arch_parameters())}
    times = {k: [] for k in groups}
    for i in range(repeats + 1):
        for name, inputs in groups.items():
            net.zero_grad(set_to_none=True)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t = time.perf_counter()
            loss_fn(net(x), y).backward(inputs=inputs)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            if i:  # the first round is warm-up
                times[name].append(time.perf_counter() - t)
    seconds = {k: statistics.median(v) for k, v in times.items()}
    full = seconds["all (released)"]
    return {"profile": profile, "task": task, "device": str(dev), "batch": cfg.batch_size, "patch": cfg.patch,
            "repeats": repeats, "seconds": seconds,
            "architecture_step_speedup": full / seconds["alpha/beta only (hinas architecture step)"],
            "weight_step_speedup": full / seconds["weights only (hinas weight step)"],
            "provenance": _provenance(device)}
