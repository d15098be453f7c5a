"""Training a derived network from scratch (REFERENCE.md 5.2).

SGD (momentum 0.9, lr 0.05, weight decay 4e-5; biases and BN shifts: lr x2, no decay), poly
decay 0.9 per iteration, gradient values clipped at 5, 64x64 crops with the 8 flips/rotations,
validation every ``val_every`` iterations in the last quarter, the best weights by
SSIM + PSNR/100. Weights are saved as safetensors, the network description as JSON.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time

import torch
from safetensors.torch import save
from tqdm.auto import tqdm

from hinas.engine import common, fast, runfolder
from hinas.engine.config import RunConfig
from hinas.errors import HinasError
from hinas.space.network_file import NETWORK_FILE, build_model, check_network_spec
from hinas.losses import RestorationLoss
from hinas.eval.metrics import selection_score

CHECKPOINT = common.CHECKPOINT


def network_spec(cfg: RunConfig, genotype) -> dict:
    if cfg.model == "dncnn":
        return {"model": "dncnn", "task": "denoise", "in_channels": 1, "scale": None, "bn_init": cfg.bn_init}
    return {"model": "hinas", "task": cfg.task, "scale": cfg.scale, "genotype": genotype.to_dict(),
            "f": cfg.net_f, "residual": cfg.residual, "node_channels": cfg.node_channels,
            "in_channels": genotype.in_channels, "bn_init": cfg.bn_init}


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


HISTORY_FIELDS = ("iteration", "lr", "loss", "val_psnr", "val_ssim", "seconds", "nonpositive_ssim")


def _flush_history(path: Path, rows: list[dict], written: int) -> int:
    """Bring ``history.csv`` up to ``rows``: rewrite it whole the first time in this process
    (so a resumed run's file matches its checkpoint), then append only the new rows, so a
    long run's log costs O(rows), not O(rows^2). Returns the number of rows now in the file."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, extrasaction="ignore")
    if written == 0:
        w.writeheader()
    w.writerows(rows[written:])
    if written == 0:
        common.atomic_write_text(path, buf.getvalue())
    else:
        with open(path, "a", newline="") as fh:
            fh.write(buf.getvalue())
    return len(rows)


class _TensorBoardLog:
    """TensorBoard event files in ``out/tensorboard`` beside ``history.csv``, when the
    ``tensorboard`` package is installed (nothing otherwise). Only rows made by this process
    are written, so a resumed run does not repeat the events of the run it continues."""

    def __init__(self, out: Path | None, first_row: int):
        self.next_row, self.writer = first_row, None
        if out is None:  # not rank 0
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.writer = None
            return
        self.writer = SummaryWriter(log_dir=str(out / "tensorboard"))

    def write(self, rows: list[dict]) -> None:
        if self.writer is None:
            return
        for row in rows[self.next_row:]:
            for key in ("loss", "lr", "val_psnr", "val_ssim"):
                if row.get(key) is not None:
                    self.writer.add_scalar(f"train/{key}", row[key], row["iteration"])
        self.next_row = len(rows)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def poly_lr(cfg: RunConfig, it: int) -> float:
    return cfg.train_lr * max(1 - it / cfg.iterations, 0.0) ** 0.9


def train_step(model, opt, loss_fn, stream, autocast, device, cfg: RunConfig) -> torch.Tensor:
    """One eager training iteration (the next batch, the loss, gradients averaged over processes,
    clipped by value as the released code, one step). Runs and their time budgets use
    :func:`hinas.engine.fast.train_stepper`, the same step, eager or as a CUDA graph."""
    x, y = stream.next()
    body = fast.backward_step(model, opt, loss_fn, autocast, model.parameters(), clip=cfg.grad_clip)
    return body(x.to(device, non_blocking=True), y.to(device, non_blocking=True))


def train(cfg: RunConfig, genotype=None, out_dir=None, resume: bool = False, *, progress: bool | None = None,
          stop_at: float | None = None, stop_iteration: int | None = None) -> dict:
    """Train the network of ``genotype`` (or DnCNN with ``cfg.model='dncnn'``) into ``out_dir``.

    ``stop_at`` (a ``time.monotonic()`` deadline): once passed, the run checkpoints at the next
    log point and returns ``{"status": "paused", ...}``; ``resume=True`` continues it."""
    if cfg.model == "hinas" and genotype is None:
        raise HinasError("training a HiNAS network needs a genotype (--genotype FILE)")
    if genotype is not None and cfg.model == "hinas":
        if genotype.task != cfg.task or (cfg.task == "sr" and genotype.scale != cfg.scale):
            raise HinasError(f"the genotype is for {genotype.task}"
                             f"{' x' + str(genotype.scale) if genotype.scale else ''}, "
                             f"but the run is {cfg.task}{' x' + str(cfg.scale) if cfg.scale else ''}; "
                             f"search for this task or pass matching --task/--scale")
        want = 1 if cfg.task == "denoise" else 3
        if genotype.in_channels != want:
            raise HinasError(f"the genotype takes {genotype.in_channels}-channel images, but {cfg.task} data has "
                             f"{want}; use a genotype searched for this task")
    if out_dir is None:
        raise HinasError("training needs a run folder (--out DIR)")
    if cfg.model != "hinas":
        genotype = None
    spec = network_spec(cfg, genotype)
    check_network_spec(spec, "the network to train")
    folder = runfolder.RunFolder(out_dir, "train", resume, common.rank(), quiet=cfg.quiet or progress is False)
    device = common.resolve_device(cfg.device)
    try:
        with common.deterministic(device.type == "cpu"), fast.backend_flags(cfg, device):
            return _train(cfg, genotype, spec, folder, device, progress, stop_at, stop_iteration)
    finally:
        folder.release()


def _train(cfg: RunConfig, genotype, spec: dict, folder, device, progress, stop_at=None, stop_iteration=None) -> dict:
    from hinas.data import BatchStream, PatchDataset
    from hinas.engine.search import check_validation_images, validate_network

    # -- every input is checked before the first write ---------------------------------------------
    ck, records, identity = runfolder.open_run(folder, "train", cfg, device, genotype)
    rank, world = common.rank(), common.world_size()
    out = folder.out
    n_val = max(1, int(math.floor(cfg.val_fraction * len(records))))
    if len(records) - n_val < 1:
        raise HinasError(f"training needs at least 2 images, found {len(records)}")
    train_recs, val_recs = records[: len(records) - n_val], records[len(records) - n_val:]
    check_validation_images(val_recs, cfg)
    common.seed_everything(cfg.seed)
    model = fast.prepare_network(build_model(spec).to(device), cfg, device)
    if cfg.compile:
        from hinas.engine.compile import compile_module
        compile_module(model)

    sigma = cfg.sigma if cfg.task == "denoise" else None
    ds = PatchDataset(train_recs, cfg.task, patch=cfg.patch, sigma=sigma, scale=cfg.scale,
                      samples_per_epoch=len(train_recs) * cfg.crops_per_image, seed=cfg.seed,
                      rescale=cfg.rescale_aug)
    stream = BatchStream(ds, cfg.effective_train_batch, cfg.seed, rank, world)
    if cfg.device_data:  # the same batches made on the device (hinas.data.device_sampling)
        from hinas.data.device_sampling import on_device
        stream = on_device(stream, device)
    loss_fn = RestorationLoss(cfg.task, "train", ssim_weight=cfg.train_ssim_weight,
                              nonpositive_ssim=cfg.nonpositive_ssim).to(device)
    opt = torch.optim.SGD(param_groups(model, cfg), lr=cfg.train_lr, momentum=0.9)

    state = {"iteration": 0, "best": None, "history": [], "seconds": 0.0, "sum": 0.0, "count": 0}
    ckpt_path = out / CHECKPOINT
    run = runfolder.RunState("network", identity, model, {"opt": opt}, {"stream": stream}, state, ckpt_path)
    resuming = common.broadcast_object(ck is not None)  # rank 0 has checked the folder and the identity
    if rank != 0 and resuming:
        ck = common.load_checkpoint(ckpt_path)
    if ck is not None:
        run.restore(ck)
    fast.arm_optimizer(opt, cfg, device)  # after the restore, which brings back the saved group flags
    stepper = fast.train_stepper(model, opt, loss_fn, cfg, device)
    # a new run: the checkpoint (with the identity) first, then the readable copies
    files = {NETWORK_FILE: json.dumps(spec, indent=1)}
    if genotype is not None:
        files["genotype.json"] = genotype.to_json() + "\n"
    folder.begin(cfg, files, first_checkpoint=None if ck is not None else run.save)
    if state.get("finished") and (out / "summary.json").is_file():  # else: the end is written again
        from hinas.safeio import load_json_file

        return load_json_file(out / "summary.json", "summary")
    common.barrier()

    def save_checkpoint():
        if rank == 0:
            run.save()

    def save_weights(name):
        if rank == 0:
            blob = save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()})
            common.write_bytes_durably(out / name, blob)

    show = (not cfg.quiet) if progress is None else progress
    bar = tqdm(total=cfg.iterations, initial=state["iteration"], disable=not show or rank != 0, desc="train",
               unit="it", dynamic_ncols=True)
    t_start = time.perf_counter() - state["seconds"]
    csv_rows = 0  # rows of state["history"] already in history.csv (after a resume: rewrite it all)
    tensorboard = _TensorBoardLog(out if rank == 0 else None, len(state["history"]))
    acc = torch.zeros((), device=device)
    n_acc = 0
    model.train()
    while state["iteration"] < cfg.iterations:
        it = state["iteration"]
        lr = poly_lr(cfg, it)
        fast.set_lr(opt, lr)
        loss = stepper(stream)
        acc += loss.detach()
        n_acc += 1
        state["iteration"] += 1
        bar.update(1)
        it = state["iteration"]
        validate_now = (it % cfg.val_every == 0 or it == cfg.iterations) and it > cfg.val_after_fraction * cfg.iterations
        pause = False
        if it % cfg.log_every == 0 or it == cfg.iterations or validate_now:
            pause = it < cfg.iterations and (it == stop_iteration or stop_at is not None and time.monotonic() >= stop_at)
            s = acc.item()
            if not math.isfinite(s):
                bar.close()
                raise common.TrainingDiverged(
                    f"training loss became {s} at iteration {it}; {common.kept_checkpoint(ckpt_path)}; "
                    f"start a new run (another --out) with a lower learning rate (--set train_lr=...)")
            state["sum"] += s
            state["count"] += n_acc
            # batches whose mean SSIM was <= 0 (the release's NaN loss value): counted, not fatal
            events = loss_fn.take_nonpositive_events()
            state["nonpositive_ssim"] = state.get("nonpositive_ssim", 0) + events
            state["history"].append({"iteration": it, "lr": lr, "loss": s / max(n_acc, 1), "val_psnr": None,
                                     "val_ssim": None, "seconds": round(time.perf_counter() - t_start, 3),
                                     "nonpositive_ssim": events})
            acc.zero_()
            n_acc = 0
            bar.set_postfix(loss=f"{state['sum'] / max(state['count'], 1):.4f}")
        if validate_now:
            m = validate_network(model, val_recs, cfg, device) if rank == 0 else None
            m = common.broadcast_object(m)
            state["history"][-1].update(val_psnr=m["psnr"], val_ssim=m["ssim"])
            state["sum"], state["count"] = 0.0, 0
            score = selection_score(m["psnr"], m["ssim"])
            if state["best"] is None or score > state["best"]["score"]:
                state["best"] = {"score": score, "iteration": it, "psnr": m["psnr"], "ssim": m["ssim"]}
                save_weights("weights.safetensors")
        if rank == 0 and len(state["history"]) > csv_rows:  # a row per log interval, flushed now
            csv_rows = _flush_history(out / "history.csv", state["history"], csv_rows)
            tensorboard.write(state["history"])
        if it % cfg.checkpoint_every == 0 or validate_now or pause:
            state["seconds"] = time.perf_counter() - t_start
            save_checkpoint()
            if pause:
                bar.close()
                tensorboard.close()
                return {"status": "paused", "iteration": it, "seconds": round(state["seconds"], 3)}
    bar.close()
    tensorboard.close()
    state["seconds"] = time.perf_counter() - t_start
    save_weights("weights_final.safetensors")
    if state["best"] is None:
        save_weights("weights.safetensors")
    from hinas.space.network import count_parameters

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
        "nonpositive_ssim": state.get("nonpositive_ssim", 0),
        "val_protocol": cfg.val_protocol,
        "execution": fast.describe(cfg, device, stepper),
    }
    state["finished"] = True
    if rank == 0:
        common.atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
        save_checkpoint()
    common.barrier()
    return summary
