"""``hinas bench gpu-speed``: the training step and the search's steps on one GPU, the released
code's own beside hinas eager and hinas with each lever of the fast path (:mod:`hinas.engine.fast`).

Everything is measured in one process on one device, from the same initial weights on the same
batches (fixed synthetic noisy/clean pairs made on the device: the steps' cost does not depend on
the pixels), so the ratios are within one run. Reported per variant: iterations per second, step
seconds, peak memory, ``speedup_vs_released``, and the step's share of two floors measured in the
same run (the dense TF32 matrix rate and the device copy bandwidth, against the step's counted
FLOPs and an estimate of its activation traffic). :func:`fast_path_equivalence` compares the fast
fp32 path with the eager one (losses per step, BatchNorm statistics); the CUDA test and the
benchmark both call it.
"""

from __future__ import annotations

import contextlib
import copy
import time

import torch

from hinas.errors import HinasError

# cumulative levers of the training step; each row names what it adds to the one before
TRAIN_VARIANTS = (
    ("eager", {}),
    ("+cudnn_benchmark", {"cudnn_benchmark": True}),
    ("+channels_last", {"cudnn_benchmark": True, "channels_last": True}),
    ("+native_batchnorm", {"cudnn_benchmark": True, "channels_last": True, "native_batchnorm": True}),
    ("+fused_optimizer", {"cudnn_benchmark": True, "channels_last": True, "native_batchnorm": True,
                          "fused_optimizer": True}),
    ("fast (+cuda_graphs)", {"cudnn_benchmark": True, "channels_last": True, "native_batchnorm": True,
                             "fused_optimizer": True, "cuda_graphs": True}),
    ("graphs, NCHW, cuDNN BN", {"cudnn_benchmark": True, "fused_optimizer": True, "cuda_graphs": True}),
    ("graphs, NCHW, native BN", {"cudnn_benchmark": True, "fused_optimizer": True, "cuda_graphs": True,
                                 "native_batchnorm": True}),
    ("graphs, NHWC, cuDNN BN", {"cudnn_benchmark": True, "fused_optimizer": True, "cuda_graphs": True,
                                "channels_last": True}),
    ("fast + bf16 autocast", {"cudnn_benchmark": True, "channels_last": True, "native_batchnorm": True,
                              "fused_optimizer": True, "cuda_graphs": True, "amp_bf16": True}),
)
SEARCH_VARIANTS = tuple(TRAIN_VARIANTS[i] for i in (0, 5, 6, 7, 8, 9))
OFF = {"cuda_graphs": False, "fused_optimizer": False, "cudnn_benchmark": False, "native_batchnorm": False,
       "channels_last": False, "amp_bf16": False}


def _empty_cache(device):
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def synthetic_batches(n: int, batch: int, patch: int, device, seed: int = 0, sigma: float = 50.0):
    """``n`` fixed (noisy, clean) grey batches on ``device``: smooth random images + Gaussian noise."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    out = []
    for _ in range(n):
        clean = torch.nn.functional.avg_pool2d(torch.rand(batch, 1, patch + 6, patch + 6, generator=g), 7, 1)
        noisy = clean + torch.randn(clean.shape, generator=g) * sigma / 255
        out.append((noisy.to(device), clean.to(device)))
    return out


def _config(levers: dict, device, task="denoise"):
    from hinas.engine.config import RunConfig

    return RunConfig.from_profile("paper", task, device=str(device), **{**OFF, **levers})


def _train_setup(genotype, levers: dict, device, init_state: dict, f: int = 20):
    """A hinas training step on the paper's derived-network setting, from ``init_state``."""
    from hinas.engine import fast
    from hinas.engine.train import network_spec, param_groups
    from hinas.space.network_file import build_model
    from hinas.losses import RestorationLoss

    cfg = _config(levers, device).replace(net_f=f)
    model = build_model(network_spec(cfg, genotype))
    model.load_state_dict(init_state)
    model = fast.prepare_network(model.to(device), cfg, device)
    opt = torch.optim.SGD(param_groups(model, cfg), lr=cfg.train_lr, momentum=0.9)
    fast.arm_optimizer(opt, cfg, device)
    loss_fn = RestorationLoss("denoise", "train").to(device)
    return cfg, model, opt, fast.train_stepper(model, opt, loss_fn, cfg, device)


def _search_setup(levers: dict, device, init_state: dict):
    from hinas.engine import fast
    from hinas.losses import RestorationLoss
    from hinas.space.supernet import Supernet

    cfg = _config(levers, device)
    net = Supernet(cfg.supernet_config())
    net.load_state_dict(init_state)
    net = fast.prepare_network(net.to(device), cfg, device)
    opt_w = torch.optim.SGD(net.weight_parameters(), lr=cfg.w_lr, momentum=cfg.w_momentum,
                            weight_decay=cfg.w_weight_decay)
    opt_a = torch.optim.Adam(net.arch_parameters(), lr=cfg.a_lr, weight_decay=cfg.a_weight_decay)
    for opt in (opt_w, opt_a):
        fast.arm_optimizer(opt, cfg, device)
    arch, weight = fast.search_steppers(net, opt_w, opt_a, RestorationLoss("denoise", "search").to(device), cfg, device)
    return cfg, net, (opt_w, opt_a), arch, weight


def _bn_buffers(model) -> list[torch.Tensor]:
    return [b for name, b in model.named_buffers() if name.endswith(("running_mean", "running_var"))]


@contextlib.contextmanager
def _tf32(enabled: bool):
    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def fast_path_equivalence(genotype, *, device="cuda", steps: int = 50, search_steps: int = 10, seed: int = 0,
                          levers: dict | None = None, tf32: bool = False, batch: int = 24, search_batch: int = 6,
                          patch: int = 64) -> dict:
    """The fast fp32 path against the eager one, from the same weights on the same batches:
    the largest |loss difference| over ``steps`` training steps (poly lr as in a run) and over
    ``search_steps`` architecture + weight steps of the paper's supernet, and the largest
    BatchNorm running-statistic and alpha/beta differences at the end. ``tf32=False`` compares the
    mechanism (fp32 arithmetic in both); TF32 lets the two paths' cuDNN algorithms round apart."""
    from hinas.engine import fast
    from hinas.engine.train import poly_lr
    from hinas.space.network_file import build_model
    from hinas.engine.train import network_spec
    from hinas.space.supernet import Supernet

    levers = levers or dict(TRAIN_VARIANTS[5][1])
    out = {"device": str(device), "levers": levers, "tf32": tf32, "steps": steps, "search_steps": search_steps}
    with _tf32(tf32):
        cfg0 = _config({}, device).replace(net_f=20)
        torch.manual_seed(seed)
        init = copy.deepcopy(build_model(network_spec(cfg0, genotype)).state_dict())
        batches = synthetic_batches(steps, batch, patch, device, seed)
        traces, buffers = {}, {}
        for name, lv in (("eager", {}), ("fast", levers)):
            cfg, model, opt, stepper = _train_setup(genotype, lv, device, init)
            with fast.backend_flags(cfg, device):
                losses = []
                for it, (x, y) in enumerate(batches):
                    fast.set_lr(opt, poly_lr(cfg.replace(iterations=600_000), it))
                    losses.append(stepper.run(x, y))
                _sync(device)
            traces[name] = torch.stack(losses).float().cpu()
            buffers[name] = [b.detach().float().cpu() for b in _bn_buffers(model)]
            out[f"train_mode_{name}"] = stepper.mode
            del model, opt, stepper
        diff = (traces["eager"] - traces["fast"]).abs()
        out["train_max_loss_diff"] = float(diff.max())
        out["train_loss_first_last"] = [float(traces["eager"][0]), float(traces["eager"][-1])]
        out["train_max_bn_stat_diff"] = max(float((a - b).abs().max()) for a, b in zip(buffers["eager"], buffers["fast"]))
        # the search: architecture then weight step, as an epoch past arch_start_epoch
        torch.manual_seed(seed)
        init = copy.deepcopy(Supernet(cfg0.supernet_config()).state_dict())
        batches = synthetic_batches(2 * search_steps, search_batch, patch, device, seed + 1)
        traces, arch = {}, {}
        for name, lv in (("eager", {}), ("fast", levers)):
            cfg, net, opts, arch_step, weight_step = _search_setup(lv, device, init)
            with fast.backend_flags(cfg, device):
                losses = []
                for i in range(search_steps):
                    losses.append(arch_step.run(*batches[2 * i]))
                    losses.append(weight_step.run(*batches[2 * i + 1]))
                _sync(device)
            traces[name] = torch.stack(losses).float().cpu()
            arch[name] = [p.detach().float().cpu() for p in net.arch_parameters()]
            buffers[name] = [b.detach().float().cpu() for b in _bn_buffers(net)]
            out[f"search_modes_{name}"] = [arch_step.mode, weight_step.mode]
            del net, opts, arch_step, weight_step
        out["search_max_loss_diff"] = float((traces["eager"] - traces["fast"]).abs().max())
        out["search_max_arch_diff"] = max(float((a - b).abs().max()) for a, b in zip(arch["eager"], arch["fast"]))
        out["search_max_bn_stat_diff"] = max(float((a - b).abs().max()) for a, b in zip(buffers["eager"], buffers["fast"]))
    return out


def _timed_steps(step, batches, n: int, warmup: int, device) -> tuple[float, int]:
    """Median-free timing: ``n`` steps after ``warmup``, one sync at each end; (seconds per step, peak bytes)."""
    for i in range(warmup):
        step(*batches[i % len(batches)])
    _sync(device)
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for i in range(n):
        step(*batches[i % len(batches)])
    _sync(device)
    return (time.perf_counter() - t0) / n, torch.cuda.max_memory_allocated(device) if cuda else 0


def measure_floors(device, n: int = 8192) -> dict:
    """The device's dense matrix rates (TF32, bf16; ``n`` x ``n`` products) and copy bandwidth, measured now."""
    out = {}
    a = torch.randn(n, n, device=device)
    for name, dtype, tf32 in (("tf32", torch.float32, True), ("bf16", torch.bfloat16, True)):
        x = a.to(dtype)
        with _tf32(tf32):
            for _ in range(2):
                x @ x
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(5):
                x @ x
            _sync(device)
        out[f"{name}_tflops"] = 5 * 2 * n**3 / (time.perf_counter() - t0) / 1e12
    buf = torch.empty(8 * n * n, dtype=torch.uint8, device=device)  # 512 MiB at n = 8192
    dst = torch.empty_like(buf)
    dst.copy_(buf)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(10):
        dst.copy_(buf)
    _sync(device)
    out["copy_gb_per_s"] = 10 * 2 * buf.numel() / (time.perf_counter() - t0) / 1e9  # read + write
    return out


def _activation_bytes(model, x) -> int:
    """Bytes of every leaf module's forward output for input ``x`` (an estimate of the traffic)."""
    total = [0]

    def hook(_m, _i, o):
        if isinstance(o, torch.Tensor):
            total[0] += o.numel() * o.element_size()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return total[0]


def _floor_share(model, x, floors: dict, seconds: float) -> dict:
    """The step's FLOPs (forward x 3: forward and the two backward products) and activation
    traffic (each output written, read back and its gradient written and read: x 4, an estimate)
    against the measured rates: the fraction of the machine the step uses."""
    from hinas.space.network import count_flops

    batch = x.shape[0]
    flops = 3 * batch * count_flops(model, tuple(x.shape[-2:]), x.shape[1])["flops"]
    traffic = 4 * _activation_bytes(model, x)
    t_flops = flops / (floors["tf32_tflops"] * 1e12)
    t_bytes = traffic / (floors["copy_gb_per_s"] * 1e9)
    return {"step_gflop": flops / 1e9, "activation_traffic_gb_estimate": traffic / 1e9,
            "arithmetic_floor_seconds": t_flops, "memory_floor_seconds": t_bytes,
            "share_of_floor": max(t_flops, t_bytes) / seconds}


def gpu_speed(genotype, *, code: str | None = None, device="cuda", steps: int = 50, search_steps: int = 10,
              seed: int = 0, batch: int = 24, search_batch: int = 6, patch: int = 64) -> dict:
    """The measurements of ``hinas bench gpu-speed`` (module docstring). The sizes default to the
    paper's; on the CPU (tests only: every lever is off there) use small ones."""
    from hinas.engine import fast
    from hinas.engine.common import device_name, provenance
    from hinas.engine.train import network_spec
    from hinas.space.network_file import build_model
    from hinas.space.network import count_parameters
    from hinas.space.supernet import Supernet

    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise HinasError("hinas bench gpu-speed needs a CUDA device (--device cuda on a machine with a GPU)")
    floors = measure_floors(dev, 8192 if dev.type == "cuda" else 256)
    out = {"device": device_name(device), "floors": floors, "tf32": torch.backends.cudnn.allow_tf32,
           "train": {"batch": batch, "patch": patch, "f": 20, "steps": steps, "variants": {}},
           "search": {"batch": search_batch, "patch": patch, "steps": search_steps, "variants": {}}}
    cfg0 = _config({}, dev).replace(net_f=20)
    torch.manual_seed(seed)
    ref_model = build_model(network_spec(cfg0, genotype))
    init = copy.deepcopy(ref_model.state_dict())
    out["train"]["params"] = count_parameters(ref_model)
    batches = synthetic_batches(8, batch, patch, dev, seed)
    if code:
        from hinas.bench.released import released_search_step, released_train_step

        model, step = released_train_step(code, genotype, f=20, device=dev, ours=ref_model)
        sec, peak = _timed_steps(step, batches, steps, 5, dev)
        out["train"]["released"] = {"step_seconds": sec, "it_per_s": 1 / sec, "peak_gb": peak / 1e9}
        del model, step
    for name, levers in TRAIN_VARIANTS:
        cfg, model, opt, stepper = _train_setup(genotype, levers, dev, init)
        with fast.backend_flags(cfg, dev):
            sec, peak = _timed_steps(stepper.run, batches, steps, fast.capture_steps(cfg, dev) + 2, dev)
        row = {"levers": levers, "mode": stepper.mode, "step_seconds": sec, "it_per_s": 1 / sec, "peak_gb": peak / 1e9}
        out["train"]["variants"][name] = row
        del model, opt, stepper
        _empty_cache(dev)
    out["train"]["floor"] = _floor_share(ref_model.cpu().train(), batches[0][0].cpu(), floors,
                                         out["train"]["variants"]["fast (+cuda_graphs)"]["step_seconds"])
    # the supernet (paper denoising search setting)
    torch.manual_seed(seed)
    init = copy.deepcopy(Supernet(cfg0.supernet_config()).state_dict())
    batches = synthetic_batches(4, search_batch, patch, dev, seed + 1)
    if code:
        model, weight_step, arch_step = released_search_step(code, device=dev, seed=seed, batch=search_batch)
        sec, peak = _timed_steps(weight_step, batches, search_steps, 2, dev)
        a_sec, _ = _timed_steps(arch_step, batches, search_steps, 2, dev)
        out["search"]["released"] = {"weight_step_seconds": sec, "arch_step_seconds": a_sec, "peak_gb": peak / 1e9}
        del model, weight_step, arch_step
        _empty_cache(dev)
    for name, levers in SEARCH_VARIANTS:
        cfg, net, opts, arch, weight = _search_setup(levers, dev, init)
        with fast.backend_flags(cfg, dev):
            warm = fast.capture_steps(cfg, dev) + 1
            sec, peak = _timed_steps(weight.run, batches, search_steps, warm, dev)
            a_sec, _ = _timed_steps(arch.run, batches, search_steps, warm, dev)
        out["search"]["variants"][name] = {"levers": levers, "modes": [arch.mode, weight.mode],
                                           "weight_step_seconds": sec, "arch_step_seconds": a_sec, "peak_gb": peak / 1e9}
        del net, opts, arch, weight
        _empty_cache(dev)
    net = Supernet(cfg0.supernet_config())
    net.load_state_dict(init)
    out["search"]["floor"] = _floor_share(net.train(), batches[0][0].cpu(), floors,
                                          out["search"]["variants"]["fast (+cuda_graphs)"]["weight_step_seconds"])
    _ratios(out)
    if code:
        out["released_code"] = {"path": str(code), "commit": _released_commit(code)}
    out["provenance"] = provenance(device)
    out["sources_sha256"] = sources_digest()
    return out


# The files that make the steps this benchmark times: a report whose digest of them is today's
# measured today's code (:func:`report_is_current`), so a later GPU window may reuse its levers.
SOURCES = ("hinas/bench/gpu.py", "hinas/engine/fast.py", "hinas/engine/train.py", "hinas/engine/search.py",
           "hinas/engine/common.py", "hinas/engine/config.py", "hinas/space/ops.py", "hinas/space/network.py",
           "hinas/space/supernet.py", "hinas/losses.py", "hinas/eval/metrics.py")


def sources_digest() -> str:
    """sha256 over :data:`SOURCES` (names and bytes) as they are in this tree."""
    import hashlib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    h = hashlib.sha256()
    for rel in SOURCES:
        h.update(rel.encode() + b"\0" + (root / rel).read_bytes())
    return h.hexdigest()


def report_is_current(report: dict) -> bool:
    """Whether a report measured the steps of this tree's code (:func:`sources_digest`) and its
    equivalence check was run (a report without one never counts as current)."""
    return report.get("sources_sha256") == sources_digest() and "equivalence" in report


def _released_commit(code) -> str | None:
    """The checkout's commit: its git HEAD, or the COMMIT file ``make gpu-pack`` writes beside a copy."""
    from pathlib import Path

    from hinas.bench.released import _git_head

    stamp = Path(code, "COMMIT")
    if stamp.is_file():
        return stamp.read_text().strip()[:40] or None
    return _git_head(code)


def _ratios_of(out: dict, timed) -> None:
    """``speedup_vs_eager`` and ``speedup_vs_released`` of every variant for each ``(part, key)``
    of ``timed`` (the search's architecture step's ratios are prefixed ``arch_``)."""
    for part, key in timed:
        prefix = "arch_" if key.startswith("arch_") else ""
        rel = (out[part].get("released") or {}).get(key)
        eager = out[part]["variants"]["eager"][key]
        for row in out[part]["variants"].values():
            row[f"{prefix}speedup_vs_eager"] = eager / row[key]
            row[f"{prefix}speedup_vs_released"] = rel / row[key] if rel else None
        if rel:
            out[part]["released"][f"{prefix}speedup_vs_eager_hinas"] = rel / eager


def _ratios(out: dict) -> None:
    """``speedup_vs_released`` and ``speedup_vs_eager`` of every variant, and the recommended
    fp32 levers: the fastest fp32 variant of the training step whose steps ran as it asked."""
    _ratios_of(out, (("train", "step_seconds"), ("search", "weight_step_seconds")))
    # both parts count alike: each variant's time relative to eager, summed over training and search
    train, search = out["train"]["variants"], out["search"]["variants"]
    fp32 = [n for n in search if not search[n]["levers"].get("amp_bf16") and "failed" not in train[n]["mode"]
            and not any("failed" in m for m in search[n]["modes"])]
    best = min(fp32, key=lambda n: 1 / train[n]["speedup_vs_eager"] + 1 / search[n]["speedup_vs_eager"])
    out["recommended"] = {"variant": best, "rule": "fp32, steps ran as asked, least time relative to eager "
                                                    "summed over the training and the search weight step",
                          "levers": {**{k: v for k, v in OFF.items() if k != "amp_bf16"}, **train[best]["levers"]}}


EQUIVALENCE_TOLERANCE = 1e-4  # |loss difference| over the compared steps, fp32 arithmetic (issue 21)


def equivalence_holds(report: dict) -> bool:
    """Whether a ``gpu-speed --equivalence`` report shows the fast fp32 path equal to eager:
    losses within :data:`EQUIVALENCE_TOLERANCE`, steps run as graphs."""
    eq = report.get("equivalence") or {}
    return (eq.get("train_mode_fast") == "graph" and eq.get("search_modes_fast") == ["graph", "graph"]
            and all(isinstance(eq.get(k), (int, float)) and eq[k] <= EQUIVALENCE_TOLERANCE
                    for k in ("train_max_loss_diff", "search_max_loss_diff")))


def campaign_levers(report: dict) -> dict:
    """The levers a campaign should run with after this report: the recommended fp32 ones when
    the equivalence holds, else the eager path (cuDNN autotuning alone changes no arithmetic)."""
    if equivalence_holds(report) and report.get("recommended"):
        return dict(report["recommended"]["levers"])
    return {**{k: False for k in OFF if k != "amp_bf16"}, "cudnn_benchmark": True}
