"""``hinas bench cpu-speed``: the training step and the search's steps on the CPU, the released
code's own beside hinas eager and hinas with each CPU lever alone and combined.

The CPU counterpart of :mod:`hinas.bench.gpu`, with its setups and timing: in one process, from
the same initial weights on the same fixed batches, so every ratio is within one run. The levers
(:class:`~hinas.engine.config.RunConfig` switches): ``channels_last`` (oneDNN's NHWC kernels; it
changes no number beyond float rounding), ``compile`` (the derived network through inductor's C++
backend; training only) and ``amp_bf16`` (bf16 autocast: another precision, reported but never
recommended; its use is decided by a paired measurement, issue 32). Each report records the
threads, the CPU's model and flags (``avx512_bf16``, ``amx_bf16``) and an equivalence check of the
fp32 levers against eager, step by step (:func:`lever_equivalence`).
"""

from __future__ import annotations

import copy
import re
import time
from pathlib import Path

import torch

from hinas.bench.gpu import _search_setup, _train_setup, synthetic_batches

# each variant: its name and the levers it turns on (everything else off)
TRAIN_VARIANTS = (
    ("eager", {}),
    ("channels_last", {"channels_last": True}),
    ("compile", {"compile": True}),
    ("channels_last + compile", {"channels_last": True, "compile": True}),
    ("bf16", {"amp_bf16": True}),
    ("bf16 + channels_last", {"amp_bf16": True, "channels_last": True}),
    ("bf16 + channels_last + compile", {"amp_bf16": True, "channels_last": True, "compile": True}),
)
# the supernet is not compiled (its Python loop over the grid: hinas.engine.compile)
SEARCH_VARIANTS = tuple(v for v in TRAIN_VARIANTS if not v[1].get("compile"))
FP32_LEVERS = {"channels_last": True}  # what the equivalence check compares with eager
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


def cpu_info() -> dict:
    """The CPU's model name, its logical cores and the vector flags that decide the kernels."""
    text = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        pass
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    flags = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
    have = set(flags.group(1).split()) if flags else set()
    import os

    return {"model": model.group(1).strip() if model else "unknown", "logical_cores": os.cpu_count(),
            "flags": {f: f in have for f in CPU_FLAGS},
            "onednn": bool(torch.backends.mkldnn.is_available()),
            "bf16_supported": bool(getattr(torch.backends.mkldnn, "is_bf16_supported", lambda: False)())}


def cpu_tag(info: dict) -> str:
    """A file-name tag for the CPU: its model as a slug, and the cores (``amd-epyc-2c``)."""
    slug = re.sub(r"[^a-z0-9]+", "-", info["model"].lower()).strip("-")[:40] or "cpu"
    return f"{slug}-{info['logical_cores']}c"


def native_bf16(info: dict) -> bool:
    """Whether the CPU computes bf16 natively (AVX-512 BF16 or AMX); elsewhere oneDNN emulates it,
    many times slower than fp32 (on an AVX2-only EPYC, 6 bf16 training steps had not finished after
    10 minutes; fp32 takes about 10 s a step)."""
    return bool(info["flags"].get("avx512_bf16") or info["flags"].get("amx_bf16"))


def _with_compile(levers: dict, make):
    from hinas.engine import compile as compile_mod

    setup = make({k: v for k, v in levers.items() if k != "compile"})
    if levers.get("compile"):
        compile_mod.compile_module(setup[1])
    return setup


def _rounds(steps: dict, batches, rounds: int, warmup: int, log, part: str) -> dict:
    """Seconds per step of each of ``steps`` (name -> step(x, y)), timed in interleaved rounds
    (one step of each per round, the median over rounds): a load that changes during the run
    slows every variant alike, so the ratios stay fair on a shared machine."""
    import statistics

    for r in range(warmup):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step(*batches[r % len(batches)])
            log(f"{part} {name}: warm-up step {time.perf_counter() - t0:.1f} s")
    times: dict = {name: [] for name in steps}
    for r in range(rounds):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step(*batches[(warmup + r) % len(batches)])
            times[name].append(time.perf_counter() - t0)
        log(f"{part} round {r + 1}/{rounds}: " + ", ".join(f"{n} {t[-1]:.2f}" for n, t in times.items()))
    return {name: {"median": statistics.median(t), "all": [round(x, 4) for x in t]} for name, t in times.items()}


def cpu_speed(genotype, *, code: str | None = None, threads: int | None = None, steps: int = 5,
              search_steps: int = 3, warmup: int = 1, seed: int = 0, batch: int = 24, search_batch: int = 6,
              patch: int = 64, equivalence_steps: int = 50, equivalence_search_steps: int = 10,
              variants: tuple | None = None, bf16: bool | None = None, log=None) -> dict:
    """The measurements of ``hinas bench cpu-speed`` (module docstring); sizes default to the paper's.
    ``steps``/``search_steps``: timed rounds (:func:`_rounds`) after ``warmup`` untimed ones (the
    compiled variants compile in theirs); ``bf16``: measure the bf16 variants (default: only where
    the CPU has native bf16)."""
    from hinas.bench.gpu import _config, _ratios_of
    from hinas.engine.common import provenance
    from hinas.engine.train import network_spec
    from hinas.space.network_file import build_model
    from hinas.space.network import count_parameters
    from hinas.space.supernet import Supernet

    log = log or (lambda msg: None)
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device("cpu")
    info = cpu_info()
    bf16 = native_bf16(info) if bf16 is None else bf16
    wanted = set(variants) if variants else None
    skipped = {}
    for name, levers in TRAIN_VARIANTS:
        if levers.get("amp_bf16") and not bf16 and (wanted is None or name in wanted):
            skipped[name] = "no native bf16 on this CPU (flags avx512_bf16/amx_bf16 absent): emulated, not measured"
    wanted = ((wanted or {n for n, _ in TRAIN_VARIANTS}) - set(skipped)) | {"eager"}
    out = {"device": "cpu", "cpu": info, "threads": torch.get_num_threads(), "skipped": skipped,
           "timing": "interleaved rounds, one step of each variant per round; median over rounds",
           "train": {"batch": batch, "patch": patch, "f": 20, "rounds": steps, "warmup": warmup, "variants": {}},
           "search": {"batch": search_batch, "patch": patch, "rounds": search_steps, "warmup": warmup,
                      "variants": {}}}
    # -- the training step: every variant built first, from the same weights
    cfg0 = _config({}, dev).replace(net_f=20)
    torch.manual_seed(seed)
    ref_model = build_model(network_spec(cfg0, genotype))
    init = copy.deepcopy(ref_model.state_dict())
    out["train"]["params"] = count_parameters(ref_model)
    train_steps, keep = {}, []
    if code:
        from hinas.bench.released import released_train_step

        model, train_steps["released"] = released_train_step(code, genotype, f=20, device=dev, ours=ref_model)
        keep.append(model)
    for name, levers in TRAIN_VARIANTS:
        if name in wanted:
            setup = _with_compile(levers, lambda lv: _train_setup(genotype, lv, dev, init))
            train_steps[name] = setup[3].run
            keep.append(setup)
    timed = _rounds(train_steps, synthetic_batches(4, batch, patch, dev, seed), steps, warmup, log, "train")
    if code:
        out["train"]["released"] = {"step_seconds": timed.pop("released")["median"]}
    for name, levers in TRAIN_VARIANTS:
        if name in timed:
            out["train"]["variants"][name] = {"levers": levers, "step_seconds": timed[name]["median"],
                                              "rounds_seconds": timed[name]["all"]}
    del keep, train_steps
    # -- the supernet's weight and architecture steps
    torch.manual_seed(seed)
    init = copy.deepcopy(Supernet(cfg0.supernet_config()).state_dict())
    batches = synthetic_batches(4, search_batch, patch, dev, seed + 1)
    weight_steps, arch_steps, keep = {}, {}, []
    if code:
        from hinas.bench.released import released_search_step

        model, weight_steps["released"], arch_steps["released"] = released_search_step(
            code, device=dev, seed=seed, batch=search_batch)
        keep.append(model)
    for name, levers in SEARCH_VARIANTS:
        if name in wanted:
            setup = _search_setup(levers, dev, init)
            arch_steps[name], weight_steps[name] = setup[3].run, setup[4].run
            keep.append(setup)
    w = _rounds(weight_steps, batches, search_steps, warmup, log, "search weight")
    a = _rounds(arch_steps, batches, search_steps, warmup, log, "search arch")
    if code:
        out["search"]["released"] = {"weight_step_seconds": w.pop("released")["median"],
                                     "arch_step_seconds": a.pop("released")["median"]}
    for name, levers in SEARCH_VARIANTS:
        if name in w:
            out["search"]["variants"][name] = {"levers": levers, "weight_step_seconds": w[name]["median"],
                                               "arch_step_seconds": a[name]["median"],
                                               "rounds_seconds": {"weight": w[name]["all"], "arch": a[name]["all"]}}
    del keep
    _ratios_of(out, (("train", "step_seconds"), ("search", "weight_step_seconds"), ("search", "arch_step_seconds")))
    if equivalence_steps:
        log(f"equivalence: fp32 {FP32_LEVERS} against eager, {equivalence_steps} training and "
            f"{equivalence_search_steps} search steps, each from eager's state")
        out["equivalence"] = lever_equivalence(genotype, dict(FP32_LEVERS), steps=equivalence_steps,
                                               search_steps=equivalence_search_steps, seed=seed, batch=batch,
                                               search_batch=search_batch, patch=patch)
    if code:
        from hinas.bench.gpu import _released_commit

        out["released_code"] = {"path": str(code), "commit": _released_commit(code)}
    out["provenance"] = provenance("cpu")
    return out


EQUIVALENCE_TOLERANCE = 1e-4  # |loss difference| of one step from the same state (issue 32)


def _copy_state(src_model, src_opts, dst_model, dst_opts) -> None:
    """Weights, BatchNorm statistics and optimiser state of ``src`` into ``dst``, in place (each
    tensor keeps its own memory format)."""
    with torch.no_grad():
        for a, b in zip(src_model.state_dict().values(), dst_model.state_dict().values()):
            b.copy_(a)
    for so, do in zip(src_opts, dst_opts):
        for sp, dp in zip((p for g in so.param_groups for p in g["params"]),
                          (p for g in do.param_groups for p in g["params"])):
            for key, value in so.state.get(sp, {}).items():
                if isinstance(value, torch.Tensor):
                    mine = do.state.setdefault(dp, {})
                    if key in mine and mine[key].shape == value.shape:
                        mine[key].copy_(value)
                    else:
                        mine[key] = value.detach().clone().contiguous(
                            memory_format=torch.channels_last if dp.dim() == 4 and
                            dp.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format)


def _max_diff(a_model, b_model) -> float:
    return max(float((a.float() - b.float()).abs().max()) for a, b in
               zip(a_model.state_dict().values(), b_model.state_dict().values()) if a.is_floating_point())


def lever_equivalence(genotype, levers: dict, *, steps: int = 50, search_steps: int = 10, seed: int = 0,
                      batch: int = 24, search_batch: int = 6, patch: int = 64) -> dict:
    """Whether ``levers`` compute the same steps as eager on the CPU, step by step: before each
    of ``steps`` training steps (poly lr from 0.05) and ``search_steps`` architecture + weight
    steps of the paper's supernet, the lever path is set to the eager path's state (weights,
    statistics, optimiser state); both take the step on the same batch; the losses and the
    states after it are compared. Free-running traces are no test of the mechanism here: at lr
    0.05 the training amplifies float rounding about 3x a step (one step from the same weights
    differs by 1e-6, fifty by 1e-3), whatever changes the order of a sum (threads included)."""
    from hinas.bench.gpu import _config
    from hinas.engine import fast
    from hinas.engine.train import network_spec, poly_lr
    from hinas.space.network_file import build_model
    from hinas.space.supernet import Supernet

    dev = torch.device("cpu")
    out = {"device": "cpu", "levers": levers, "steps": steps, "search_steps": search_steps, "rule":
           "each step from the eager path's state; |loss difference| <= 1e-4"}
    cfg0 = _config({}, dev).replace(net_f=20)
    torch.manual_seed(seed)
    init = copy.deepcopy(build_model(network_spec(cfg0, genotype)).state_dict())
    batches = synthetic_batches(steps, batch, patch, dev, seed)
    ecfg, emodel, eopt, estep = _train_setup(genotype, {}, dev, init)
    _, lmodel, lopt, lstep = _train_setup(genotype, levers, dev, init)
    loss_diff, state_diff, losses = 0.0, 0.0, []
    for it, (x, y) in enumerate(batches):
        _copy_state(emodel, [eopt], lmodel, [lopt])
        for opt in (eopt, lopt):
            fast.set_lr(opt, poly_lr(ecfg.replace(iterations=600_000), it))
        a, b = estep.run(x, y), lstep.run(x, y)
        losses.append(float(a))
        loss_diff = max(loss_diff, abs(float(a) - float(b)))
        state_diff = max(state_diff, _max_diff(emodel, lmodel))
    out.update(train_max_loss_diff=loss_diff, train_max_state_diff=state_diff,
               train_loss_first_last=[losses[0], losses[-1]])
    torch.manual_seed(seed)
    init = copy.deepcopy(Supernet(cfg0.supernet_config()).state_dict())
    batches = synthetic_batches(2 * search_steps, search_batch, patch, dev, seed + 1)
    _, enet, e_opts, earch, eweight = _search_setup({}, dev, init)
    _, lnet, l_opts, larch, lweight = _search_setup(levers, dev, init)
    loss_diff, state_diff = 0.0, 0.0
    for i in range(search_steps):
        for k, (es, ls) in enumerate(((earch, larch), (eweight, lweight))):
            _copy_state(enet, e_opts, lnet, l_opts)
            x, y = batches[2 * i + k]
            a, b = es.run(x, y), ls.run(x, y)
            loss_diff = max(loss_diff, abs(float(a) - float(b)))
            state_diff = max(state_diff, _max_diff(enet, lnet))
    out.update(search_max_loss_diff=loss_diff, search_max_state_diff=state_diff)
    out["holds"] = loss_diff <= EQUIVALENCE_TOLERANCE and out["train_max_loss_diff"] <= EQUIVALENCE_TOLERANCE
    return out


def equivalence_holds(report: dict) -> bool:
    """Whether the report's fp32 levers computed eager's steps (:func:`lever_equivalence`)."""
    return bool((report.get("equivalence") or {}).get("holds"))
