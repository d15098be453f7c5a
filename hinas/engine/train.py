"""Training a derived network from scratch (REFERENCE.md 5.2).

SGD (momentum 0.9, lr 0.05, weight decay 4e-5; biases and BN shifts: lr x2, no decay), poly
decay 0.9 per iteration, gradient values clipped at 5, 64x64 crops with the 8 flips/rotations,
validation every ``val_every`` iterations in the last quarter, the best weights by
SSIM + PSNR/100. Weights are saved as safetensors, the network description as JSON.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from hinas.engine import common
from hinas.engine.config import RunConfig
from hinas.errors import HinasError
from hinas.losses import RestorationLoss

CHECKPOINT = "checkpoint.pt"
NETWORK_FILE = "network.json"


def build_model(spec: dict):
    """The network a run folder describes (``network.json``): a HiNAS genotype or DnCNN."""
    if spec["model"] == "dncnn":
        from hinas.baselines import DnCNN

        return DnCNN(in_channels=spec.get("in_channels", 1))
    from hinas.genotype import Genotype
    from hinas.network import build_network

    g = Genotype.from_dict(spec["genotype"], "network.json")
    return build_network(g, spec.get("f"), residual=spec.get("residual", True),
                         node_channels=spec.get("node_channels"))


def network_spec(cfg: RunConfig, genotype) -> dict:
    if cfg.model == "dncnn":
        return {"model": "dncnn", "task": "denoise", "in_channels": 1, "scale": None}
    return {"model": "hinas", "task": cfg.task, "scale": cfg.scale, "genotype": genotype.to_dict(),
            "f": cfg.net_f, "residual": cfg.residual, "node_channels": cfg.node_channels,
            "in_channels": genotype.in_channels}


def param_groups(model, cfg: RunConfig):
    """Biases (conv biases and BN shifts) get lr x bias_lr_factor and no weight decay."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if "bias" in name else decay).append(p)
    return [
        {"params": decay, "lr": cfg.train_lr, "weight_decay": cfg.train_weight_decay, "lr_factor": 1.0},
        {"params": no_decay, "lr": cfg.train_lr * cfg.bias_lr_factor, "weight_decay": 0.0,
         "lr_factor": cfg.bias_lr_factor},
    ]


def poly_lr(cfg: RunConfig, it: int) -> float:
    return cfg.train_lr * max(1 - it / cfg.iterations, 0.0) ** 0.9


def train(cfg: RunConfig, genotype=None, out_dir=None, resume: bool = False, *, progress: bool | None = None,
          stop_at: float | None = None) -> dict:
    """Train the network of ``genotype`` (or DnCNN with ``cfg.model='dncnn'``) into ``out_dir``.

    ``stop_at`` (a ``time.monotonic()`` deadline): once passed, the run checkpoints at the next
    log point and returns ``{"status": "paused", ...}``; ``resume=True`` continues it."""
    from hinas.data import PatchDataset, task_datasets
    from hinas.engine.search import validate_network

    if cfg.model == "hinas" and genotype is None:
        raise HinasError("training a HiNAS network needs a genotype (--genotype FILE)")
    if genotype is not None and cfg.model == "hinas":
        if genotype.task != cfg.task or (cfg.task == "sr" and genotype.scale != cfg.scale):
            raise HinasError(f"the genotype is for {genotype.task}"
                             f"{' x' + str(genotype.scale) if genotype.scale else ''}, "
                             f"but the run is {cfg.task}{' x' + str(cfg.scale) if cfg.scale else ''}; "
                             f"search for this task or pass matching --task/--scale")
    device = common.resolve_device(cfg.device)
    common.apply_threads(cfg)
    common.init_distributed(device)
    rank, world = common.rank(), common.world_size()
    out = common.prepare_run_dir(out_dir, cfg, resume, "train", rank)
    common.barrier()
    common.seed_everything(cfg.seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)

    spec = network_spec(cfg, genotype)
    if rank == 0:
        common.atomic_write_text(out / NETWORK_FILE, json.dumps(spec, indent=1))
        if genotype is not None:
            genotype.save(out / "genotype.json")
    model = build_model(spec).to(device)
    if cfg.channels_last and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    if cfg.compile:
        from hinas.engine.compile import compile_module
        compile_module(model)

    data = task_datasets(cfg.task, cfg.data_root)
    records = sorted(data["train"].records, key=lambda r: r.name)
    if cfg.max_images:
        records = records[: cfg.max_images]
    n_val = max(1, int(math.floor(cfg.val_fraction * len(records))))
    if len(records) - n_val < 1:
        raise HinasError(f"training needs at least 2 images, found {len(records)}")
    train_recs, val_recs = records[: len(records) - n_val], records[len(records) - n_val:]
    sigma = cfg.sigma if cfg.task == "denoise" else None
    ds = PatchDataset(train_recs, cfg.task, patch=cfg.patch, sigma=sigma, scale=cfg.scale,
                      samples_per_epoch=len(train_recs) * cfg.crops_per_image, seed=cfg.seed)
    stream = common.BatchStream(ds, cfg.effective_train_batch, cfg.seed, rank, world)
    if cfg.device_data:  # the same batches made on the device (hinas.data.device_sampling)
        from hinas.data.device_sampling import on_device
        stream = on_device(stream, device)
    loss_fn = RestorationLoss(cfg.task, "train", ssim_weight=cfg.train_ssim_weight).to(device)
    opt = torch.optim.SGD(param_groups(model, cfg), lr=cfg.train_lr, momentum=0.9)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cfg.amp_bf16 and device.type == "cuda")

    state = {"iteration": 0, "best": None, "history": [], "seconds": 0.0, "sum": 0.0, "count": 0}
    ckpt_path = out / CHECKPOINT
    if resume and ckpt_path.exists():
        ck = common.load_checkpoint(ckpt_path)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        stream.load_state(ck["stream"])
        common.set_rng_state(ck["rng"])
        state = ck["state"]
        if state.get("finished"):
            return json.loads((out / "summary.json").read_text())

    def save_checkpoint():
        if rank == 0:
            common.check_finite(model.state_dict().values(), "network", ckpt_path)
            common.atomic_torch_save({"model": model.state_dict(), "opt": opt.state_dict(), "stream": stream.state(),
                                      "rng": common.rng_state(), "state": state}, ckpt_path)

    def save_weights(name):
        if rank == 0:
            tmp = out / (name + ".tmp")
            save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))
            tmp.replace(out / name)

    show = (not cfg.quiet) if progress is None else progress
    bar = tqdm(total=cfg.iterations, initial=state["iteration"], disable=not show or rank != 0, desc="train",
               unit="it", dynamic_ncols=True)
    t_start = time.perf_counter() - state["seconds"]
    acc = torch.zeros((), device=device)
    n_acc = 0
    model.train()
    while state["iteration"] < cfg.iterations:
        it = state["iteration"]
        lr = poly_lr(cfg, it)
        for g in opt.param_groups:
            g["lr"] = lr * g["lr_factor"]
        x, y = stream.next()
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = loss_fn(model(x).float(), y)
        loss.backward()
        common.all_reduce_gradients(model.parameters())
        torch.nn.utils.clip_grad_value_(model.parameters(), cfg.grad_clip)
        opt.step()
        acc += loss.detach()
        n_acc += 1
        state["iteration"] += 1
        bar.update(1)
        it = state["iteration"]
        pause = False
        if it % cfg.log_every == 0 or it == cfg.iterations:
            pause = stop_at is not None and time.monotonic() >= stop_at and it < cfg.iterations
            s = acc.item()
            if not math.isfinite(s):
                bar.close()
                raise common.TrainingDiverged(
                    f"training loss became {s} at iteration {it}; the last good checkpoint is kept in {ckpt_path}; "
                    f"start a new run (another --out) with a lower learning rate (--set train_lr=...)")
            state["sum"] += s
            state["count"] += n_acc
            acc.zero_()
            n_acc = 0
            bar.set_postfix(loss=f"{state['sum'] / max(state['count'], 1):.4f}")
        validate_now = (it % cfg.val_every == 0 or it == cfg.iterations) and it > cfg.val_after_fraction * cfg.iterations
        if validate_now:
            m = validate_network(model, val_recs, cfg, device) if rank == 0 else None
            m = common.broadcast_object(m)
            state["seconds"] = time.perf_counter() - t_start
            state["history"].append({"iteration": it, "lr": lr, "loss": state["sum"] / max(state["count"], 1),
                                     "val_psnr": m["psnr"], "val_ssim": m["ssim"],
                                     "seconds": round(state["seconds"], 3)})
            state["sum"], state["count"] = 0.0, 0
            score = m["ssim"] + m["psnr"] / 100
            if state["best"] is None or score > state["best"]["score"]:
                state["best"] = {"score": score, "iteration": it, "psnr": m["psnr"], "ssim": m["ssim"]}
                save_weights("weights.safetensors")
            if rank == 0:
                common.write_csv(out / "history.csv", state["history"])
        if it % cfg.checkpoint_every == 0 or validate_now or pause:
            state["seconds"] = time.perf_counter() - t_start
            save_checkpoint()
            if pause:
                bar.close()
                return {"status": "paused", "iteration": it, "seconds": round(state["seconds"], 3)}
    bar.close()
    state["seconds"] = time.perf_counter() - t_start
    save_weights("weights_final.safetensors")
    if state["best"] is None:
        save_weights("weights.safetensors")
    from hinas.network import count_parameters

    summary = {
        "best_iteration": state["best"]["iteration"] if state["best"] else cfg.iterations,
        "val_psnr": state["best"]["psnr"] if state["best"] else None,
        "val_ssim": state["best"]["ssim"] if state["best"] else None,
        "seconds": round(state["seconds"], 3),
        "iterations_per_second": round(cfg.iterations / max(state["seconds"], 1e-9), 3),
        "device": common.device_name(cfg.device),
        "profile": cfg.profile,
        "task": cfg.task,
        "scale": cfg.scale,
        "sigma": cfg.sigma if cfg.task == "denoise" else None,
        "seed": cfg.seed,
        "model": cfg.model,
        "params": count_parameters(model),
        "iterations": cfg.iterations,
        "world_size": world,
    }
    state["finished"] = True
    if rank == 0:
        common.atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
        save_checkpoint()
    common.barrier()
    return summary


def load_trained(run_dir, which: str = "best", device="cpu"):
    """Rebuild a trained network from its run folder (safetensors weights, JSON description)."""
    run_dir = Path(run_dir)
    spec_file = run_dir / NETWORK_FILE
    weights = run_dir / ("weights.safetensors" if which == "best" else "weights_final.safetensors")
    if not spec_file.exists():
        raise HinasError(f"{run_dir}: not a training run folder (no {NETWORK_FILE}); give the --out folder of 'hinas train'")
    if not weights.exists():
        raise HinasError(f"{run_dir}: no {weights.name} yet; the training has not reached its first validation "
                         f"(continue it with 'hinas train ... --resume')")
    try:
        spec = json.loads(spec_file.read_text())
    except json.JSONDecodeError as exc:
        raise HinasError(f"{spec_file}: not valid JSON ({exc.msg})") from None
    model = build_model(spec)
    try:
        state = load_file(str(weights))
        model.load_state_dict(state)
    except Exception as exc:
        raise HinasError(f"{weights}: cannot load these weights into the network described by {spec_file.name} "
                         f"({exc.__class__.__name__}); the files do not belong together") from None
    return model.to(device).eval(), spec
