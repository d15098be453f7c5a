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

import json
import os
import statistics
import tempfile
import time

import torch

from hinas.config import SupernetConfig
from hinas.errors import HinasError
from hinas.losses import RestorationLoss
from hinas.supernet import Supernet

CPU_METHOD = "torch.profiler profile_memory: peak of the c10 CPU allocator's 'Total Allocated' during the step"
CUDA_METHOD = "torch.cuda.max_memory_allocated during the step minus memory allocated before it"


def _step(net, loss_fn, x, y):
    net.zero_grad(set_to_none=True)
    loss = loss_fn(net(x), y)
    loss.backward()
    return loss


def _cpu_peak_bytes(net, loss_fn, x, y) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
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
                 seed: int = 0) -> dict:
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
    return {
        "peak_bytes": int(peak),
        "step_seconds": statistics.median(times),
        "cell_evaluations": net.cell_evaluations(),
        "weights": sum(p.numel() for p in net.weight_parameters()),
    }


def supernet_memory(*, device: str = "cpu", batch: int = 6, size: int = 64, layers: int = 3,
                    levels: int = 3, steps: int = 4, f: int = 10, width_factors=(1, 1.5, 2),
                    repeats: int = 2, seed: int = 0) -> dict:
    """Eq. 5 vs Eq. 6: peak memory and time of one search training step, and their ratios."""
    if device == "cuda" and not torch.cuda.is_available():
        raise HinasError("--device cuda was asked for but CUDA is not available; use --device cpu")
    base = SupernetConfig.paper("denoise", f=f, layers=layers, levels=levels, steps=steps,
                                width_factors=tuple(width_factors))
    result = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu"}
    for mode in ("eq5", "eq6"):
        result[mode] = measure_step(base.replace(cell_sharing=mode), batch=batch, size=size,
                                    device=device, repeats=repeats, seed=seed)
    result["memory_ratio"] = result["eq6"]["peak_bytes"] / result["eq5"]["peak_bytes"]
    result["time_ratio"] = result["eq6"]["step_seconds"] / result["eq5"]["step_seconds"]
    result["analytic_ratio"] = result["eq6"]["cell_evaluations"] / result["eq5"]["cell_evaluations"]
    result["config"] = {"task": "denoise", "f": f, "layers": layers, "steps": steps, "levels": levels,
                        "width_factors": list(width_factors), "batch": batch, "size": size,
                        "torch": torch.__version__, "threads": torch.get_num_threads()}
    result["memory_method"] = CUDA_METHOD if device == "cuda" else CPU_METHOD
    result["provenance"] = _provenance()
    return result


def _provenance() -> dict:
    import datetime as dt
    import sys

    from hinas.engine.common import git_revision

    return {"created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "git_revision": git_revision(), "command": " ".join(["hinas"] + sys.argv[1:]) if sys.argv else None,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}


def register_cli(subparsers) -> None:
    p = subparsers.add_parser("bench", help="benchmarks that print figures and ratios")
    sub = p.add_subparsers(dest="bench", metavar="BENCH", required=True)
    m = sub.add_parser("supernet-memory", help="peak memory and time of a search step, Eq. 5 vs Eq. 6")
    m.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    m.add_argument("--batch", type=int, default=6, help="batch size (paper dn search: 6)")
    m.add_argument("--size", type=int, default=64, help="patch size (64)")
    m.add_argument("--layers", type=int, default=3, help="L (paper dn: 3)")
    m.add_argument("--levels", type=int, default=3, help="S (3)")
    m.add_argument("--steps", type=int, default=4, help="B nodes per cell (dn: 4)")
    m.add_argument("--f", type=int, default=10, help="channels per node at level 0 (search: 10)")
    m.add_argument("--widths", default="1,1.5,2", help="width factors, comma separated")
    m.add_argument("--repeats", type=int, default=2, help="timed steps (median reported)")
    m.add_argument("--json", action="store_true", help="print one JSON object")
    m.set_defaults(func=_cli_supernet_memory)


def _cli_supernet_memory(args) -> int:
    from hinas.cli import print_json

    for name in ("batch", "size", "layers", "levels", "steps", "f", "repeats"):
        if getattr(args, name) < 1:
            raise HinasError(f"--{name} must be at least 1")
    try:
        widths = tuple(float(w) for w in args.widths.split(","))
    except ValueError:
        raise HinasError(f"--widths must be numbers separated by commas, got {args.widths!r}") from None
    res = supernet_memory(device=args.device, batch=args.batch, size=args.size, layers=args.layers,
                          levels=args.levels, steps=args.steps, f=args.f, width_factors=widths,
                          repeats=args.repeats)
    if args.json:
        print_json(res)
    else:
        for mode in ("eq5", "eq6"):
            r = res[mode]
            print(f"{mode}: peak {r['peak_bytes'] / 2**20:.1f} MiB, step {r['step_seconds']:.3f} s, "
                  f"{r['cell_evaluations']:g} width-weighted cell evaluations")
        print(f"memory ratio eq6/eq5 {res['memory_ratio']:.2f}, time ratio {res['time_ratio']:.2f}, "
              f"analytic {res['analytic_ratio']:.2f} ({res['device']})")
    return 0
