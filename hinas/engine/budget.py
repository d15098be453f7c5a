"""Time-budgeted schedules (``--budget SECONDS``): measure, then fix the length that fits.

A short warm-up runs the run's real steps (same network, batch, crops and data path) on a
throwaway copy of the model, timing

* search: a weight step, an architecture + weight step, and one validation of V;
* training: an iteration, and one validation.

From these it fixes the schedule length that fits the budget and keeps the released code's
schedule *shape* over it (REFERENCE.md sections 5.2 and 6):

* search: ``E`` epochs, architecture steps after ``round(E * a/E0)`` epochs and validation after
  ``round(E * v/E0)`` (the configured fractions; the released code: 20/100 and 60/100), the
  poly-cosine period scaled the same way (10 of 100 epochs);
* training: ``N`` iterations with poly decay over ``N``, validation every ``val_every`` in the
  last ``1 - val_after_fraction`` (the released code: the last quarter), about
  :data:`VALIDATIONS` times.

The length never exceeds the configured one (plans ask for the paper's 100 epochs / 600k
iterations and get what fits). ``SAFETY`` of the budget is planned; the rest absorbs
checkpoints, logging and timing noise. The plan (measured times, planned vs paper length)
goes into the run's summary.
"""

from __future__ import annotations

import math
import statistics
import time

import torch

from hinas.engine.config import RunConfig
from hinas.errors import ConfigError

SAFETY = 0.9  # fraction of the budget the schedule is planned to use
VALIDATIONS = 5  # validations planned in the training's validation window
WARMUP_STEPS = 2  # untimed (allocator, cuDNN autotuning, lazy init)
TIMED_STEPS = 3


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls, synchronised on CUDA."""
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def paper_lengths(task: str, scale=None) -> dict:
    ref = RunConfig.from_profile("paper", task, scale)
    out = {"paper_epochs": ref.epochs, "paper_iterations": ref.iterations}
    if task == "denoise":
        out["paper_text_iterations"] = 400_000  # the paper's Sec. 4; the released code runs 600k
    return out


def check_budget(budget) -> float:
    """A time budget as seconds: a finite positive number (never a bool), else one line naming it
    (the one check of a budget: the schedule planners here, ``hinas campaign run --budget``)."""
    try:
        value = float(budget)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(budget, bool) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"--budget must be a finite positive number of seconds, got {budget!r}; "
                          f"give e.g. --budget 540")
    return value


def _stream(ds, batch, seed, cfg, device):
    from hinas.data import BatchStream

    stream = BatchStream(ds, batch, seed)
    if cfg.device_data:
        from hinas.data.device_sampling import on_device

        stream = on_device(stream, device)
    return stream


def plan_search(cfg: RunConfig, seconds: float) -> tuple[RunConfig, dict]:
    """The search configuration whose schedule fits ``seconds``, and the plan behind it."""
    from hinas.data import PatchDataset, search_split
    from hinas.engine.common import apply_threads, resolve_device, training_records
    from hinas.engine import fast
    from hinas.engine.search import validate_network
    from hinas.losses import RestorationLoss
    from hinas.space.supernet import Supernet

    seconds = check_budget(seconds)
    device = resolve_device(cfg.device)
    apply_threads(cfg)
    _, records = training_records(cfg)
    W, A, V = search_split(records, cfg.split_mode, cfg.val_fraction, cfg.seed)
    sigma = cfg.search_sigma if cfg.task == "denoise" else None
    ds = PatchDataset(W, cfg.task, patch=cfg.patch, sigma=sigma, scale=cfg.scale,
                      samples_per_epoch=len(W) * cfg.crops_per_image, seed=cfg.seed, rescale=cfg.rescale_aug)
    stream = _stream(ds, cfg.batch_size, cfg.seed, cfg, device)
    steps_per_epoch = stream.batches_per_cycle

    torch.manual_seed(cfg.seed)
    net = fast.prepare_network(Supernet(cfg.supernet_config()).to(device), cfg, device)
    loss_fn = RestorationLoss(cfg.task, "search", ssim_weight=cfg.search_ssim_weight).to(device)
    opt_w = torch.optim.SGD(net.weight_parameters(), lr=cfg.w_lr_min, momentum=cfg.w_momentum)
    opt_a = torch.optim.Adam(net.arch_parameters(), lr=cfg.a_lr)
    for opt in (opt_w, opt_a):
        fast.arm_optimizer(opt, cfg, device)
    arch_stepper, weight_stepper = fast.search_steppers(net, opt_w, opt_a, loss_fn, cfg, device)

    def step_a():
        arch_stepper(stream)

    def step_w():
        weight_stepper(stream)

    t0 = time.perf_counter()
    with fast.backend_flags(cfg, device):  # the run's kernels: timed after the graphs are captured
        for _ in range(WARMUP_STEPS + fast.capture_steps(cfg, device)):
            step_a()
            step_w()
        t_weight = _timed(step_w, device, TIMED_STEPS)
        t_both = _timed(lambda: (step_a(), step_w()), device, TIMED_STEPS)
        t_val = _timed(lambda: validate_network(net, V, cfg, device), device, 1)
    warmup_seconds = time.perf_counter() - t0
    del net, opt_w, opt_a, arch_stepper, weight_stepper

    arch_frac = cfg.arch_start_epoch / cfg.epochs
    val_frac = cfg.val_start_epoch / cfg.epochs
    per_epoch = steps_per_epoch * (t_weight + (1 - arch_frac) * (t_both - t_weight)) + (1 - val_frac) * t_val
    fit = int(SAFETY * seconds // per_epoch)
    epochs = max(2, min(cfg.epochs, fit))
    arch_start = min(epochs - 1, round(epochs * arch_frac))
    val_start = min(epochs - 1, round(epochs * val_frac))
    t_max = max(1, round(cfg.cosine_t_max * epochs / cfg.epochs))
    planned = cfg.replace(epochs=epochs, arch_start_epoch=arch_start, val_start_epoch=val_start,
                          cosine_t_max=t_max, log_every=min(cfg.log_every, steps_per_epoch))
    plan = {
        "budget_seconds": seconds,
        "warmup_seconds": round(warmup_seconds, 3),
        "seconds_per_weight_step": t_weight,
        "seconds_per_arch_and_weight_step": t_both,
        "seconds_per_validation": t_val,
        "steps_per_epoch": steps_per_epoch,
        "planned_seconds": round(epochs * per_epoch, 3),
        "fits": fit >= 2,
        "capped_by_config": fit > cfg.epochs,
        "planned_epochs": epochs,
        "arch_start_epoch": arch_start,
        "val_start_epoch": val_start,
        "cosine_t_max": t_max,
        **paper_lengths(cfg.task, cfg.scale),
    }
    return planned, plan


def plan_train(cfg: RunConfig, genotype, seconds: float) -> tuple[RunConfig, dict]:
    """The training configuration whose iteration count fits ``seconds``, and the plan."""
    from hinas.data import PatchDataset
    from hinas.engine.common import apply_threads, resolve_device, training_records
    from hinas.engine.search import validate_network
    from hinas.engine import fast
    from hinas.engine.train import network_spec, param_groups
    from hinas.space.network_file import build_model
    from hinas.losses import RestorationLoss

    seconds = check_budget(seconds)
    device = resolve_device(cfg.device)
    apply_threads(cfg)
    _, records = training_records(cfg)
    n_val = max(1, int(math.floor(cfg.val_fraction * len(records))))
    train_recs, val_recs = records[: len(records) - n_val], records[len(records) - n_val:]
    ds = PatchDataset(train_recs, cfg.task, patch=cfg.patch, sigma=cfg.sigma if cfg.task == "denoise" else None,
                      scale=cfg.scale, samples_per_epoch=len(train_recs) * cfg.crops_per_image, seed=cfg.seed,
                      rescale=cfg.rescale_aug)
    stream = _stream(ds, cfg.effective_train_batch, cfg.seed, cfg, device)

    torch.manual_seed(cfg.seed)
    model = fast.prepare_network(build_model(network_spec(cfg, genotype)).to(device), cfg, device)
    loss_fn = RestorationLoss(cfg.task, "train", ssim_weight=cfg.train_ssim_weight).to(device)
    opt = torch.optim.SGD(param_groups(model, cfg), lr=0.0, momentum=0.9)  # lr 0: the timing, not the weights
    fast.arm_optimizer(opt, cfg, device)
    stepper = fast.train_stepper(model, opt, loss_fn, cfg, device)

    def step():
        stepper(stream)

    t0 = time.perf_counter()
    with fast.backend_flags(cfg, device):  # the run's kernels: timed after the graph is captured
        for _ in range(WARMUP_STEPS + fast.capture_steps(cfg, device)):
            step()
        t_iter = _timed(step, device, TIMED_STEPS + 2)
        t_val = _timed(lambda: validate_network(model, val_recs, cfg, device), device, 1)
    warmup_seconds = time.perf_counter() - t0
    del model, opt, stepper

    fit = int((SAFETY * seconds - VALIDATIONS * t_val) // t_iter)
    iterations = max(VALIDATIONS, min(cfg.iterations, fit))
    window = (1 - cfg.val_after_fraction) * iterations
    val_every = max(1, int(window // VALIDATIONS))
    planned = cfg.replace(iterations=iterations, val_every=val_every,
                          log_every=max(1, min(cfg.log_every, val_every)),
                          checkpoint_every=max(1, min(cfg.checkpoint_every, iterations)))
    plan = {
        "budget_seconds": seconds,
        "warmup_seconds": round(warmup_seconds, 3),
        "seconds_per_iteration": t_iter,
        "iterations_per_second": 1.0 / t_iter,
        "seconds_per_validation": t_val,
        "planned_seconds": round(iterations * t_iter + VALIDATIONS * t_val, 3),
        "fits": fit >= VALIDATIONS,
        "capped_by_config": fit > cfg.iterations,
        "planned_iterations": iterations,
        "val_every": val_every,
        **paper_lengths(cfg.task, cfg.scale),
    }
    return planned, plan


def budgeted(kind: str, cfg: RunConfig, seconds: float, out, resume: bool = False, genotype=None
             ) -> tuple[RunConfig, dict]:
    """The planned configuration for a run folder ``out``: measured once, kept in the file
    ``<out>.budget.json`` beside it (the run folder itself holds only the engine's files).

    A resumed run reuses the stored plan (never re-measures: the settings must not change
    under a checkpoint). A new run measures, then writes the plan before the run starts.
    """
    import json
    from pathlib import Path

    from hinas.safeio import atomic_write_text
    from hinas.errors import HinasError

    out = Path(out)
    plan_file = out.with_name(out.name + ".budget.json")
    if resume and plan_file.exists():
        try:
            plan = json.loads(plan_file.read_text())
            return cfg.replace(**plan["settings"]), plan
        except (json.JSONDecodeError, KeyError, TypeError, ConfigError) as exc:
            raise HinasError(f"{plan_file}: damaged budget plan ({exc.__class__.__name__}); "
                             f"start a new run (another --out)") from None
    if out.exists() and any(out.iterdir()) and not resume:
        raise HinasError(f"run folder {out} already exists; pass --resume to continue it, or choose another --out")
    if kind == "search":
        planned, plan = plan_search(cfg, seconds)
    elif kind == "train":
        planned, plan = plan_train(cfg, genotype, seconds)
    else:
        raise ValueError("kind must be 'search' or 'train'")
    before = cfg.to_dict()
    plan["settings"] = {k: v for k, v in planned.to_dict().items() if before[k] != v}
    plan_file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(plan_file, json.dumps(plan, indent=1))
    return planned, plan
