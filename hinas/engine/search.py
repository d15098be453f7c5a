"""The bilevel search (paper Sec. 3.4, REFERENCE.md section 6).

Per epoch: one pass over W (``crops_per_image`` random crops per image); for epochs after
``arch_start_epoch`` every weight step is preceded by one first-order architecture step on a
batch from A, drawn from a persistent cycling stream (never ``next(iter(loader))``).
Validation on V for epochs after ``val_start_epoch``; the best supernet maximises
SSIM + PSNR/100. Checkpoints hold everything needed to continue bit-for-bit.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from hinas.engine import common, fast, runfolder
from hinas.data.sampling import crop_center
from hinas.engine.config import RunConfig
from hinas.losses import RestorationLoss
from hinas.eval.metrics import selection_score
from hinas.space.supernet import MOVE_NAMES, Supernet

CHECKPOINT = common.CHECKPOINT


def search_lr(cfg: RunConfig, epoch: int) -> float:
    """Weight learning rate at 1-based ``epoch``.

    ``poly_cosine`` (the released code's PolyCosineAnnealingLR, T_max=10):
    ``min + (max-min)/2 (1 + cos(pi e / T)) (1 - e/E)^0.9`` (oscillates under a poly envelope);
    ``cosine`` (the paper): one cosine from ``w_lr`` to ``w_lr_min`` over the run.
    """
    lo, hi, E = cfg.w_lr_min, cfg.w_lr, cfg.epochs
    if cfg.lr_schedule == "cosine":
        return lo + (hi - lo) * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / max(E - 1, 1)))
    poly = max(1 - epoch / E, 0.0) ** 0.9
    return lo + (hi - lo) * 0.5 * (1 + math.cos(math.pi * epoch / cfg.cosine_t_max)) * poly


def check_validation_images(records, cfg: RunConfig) -> None:
    """Refuse, before the run folder is written, held-out images too small to score (SSIM needs
    11x11, after the border crop for SR), instead of failing at the first validation."""
    from hinas.errors import DataError
    from hinas.safeio import quote

    need = 11 + (2 * cfg.scale if cfg.task == "sr" else 0)
    for r in records:
        h, w = r.image.shape[:2]
        if cfg.val_crop:
            h, w = min(h, cfg.val_crop), min(w, cfg.val_crop)
        if min(h, w) < need:
            raise DataError(f"{quote(r.path or r.name)}: {w}x{h} is too small to validate on (at least {need}x{need}); "
                            f"remove it from the training set")


def validate_network(net, records, cfg: RunConfig, device) -> dict:
    """PSNR/SSIM of a network on held-out images under ``cfg.val_protocol`` (hinas.eval.evaluation's
    VALIDATION_PROTOCOLS: 'reference' = the released code's patch-wise validation, one sigma per
    patch; 'standard' = whole images, mean over the sigmas), on central crops of
    ``cfg.val_crop`` pixels when set."""
    from hinas.data.datasets import ImageDataset
    from hinas.eval.evaluation import evaluate, validate_reference

    ds = ImageDataset("search-V", [crop_center(r, cfg.val_crop) for r in records],
                      grey=cfg.task == "denoise", allows_grey=True)
    was_training = net.training
    net.eval()
    try:
        if cfg.val_protocol == "reference":
            levels = cfg.search_sigma if isinstance(net, Supernet) else cfg.sigma
            return validate_reference(net, ds.records, cfg.task, sigmas=levels, scale=cfg.scale, device=device)
        if cfg.task == "denoise":
            levels = cfg.search_sigma if isinstance(net, Supernet) else cfg.sigma
            results = [evaluate(net, ds, "denoise", sigma=s, device=device) for s in levels]
        else:
            results = [evaluate(net, ds, "sr", scale=cfg.scale, device=device)]
    finally:
        net.train(was_training)
    return {"psnr": float(np.mean([r["psnr"] for r in results])), "ssim": float(np.mean([r["ssim"] for r in results]))}


def _alpha_rows(net: Supernet, epoch: int) -> list[dict]:
    w = net.alpha_weights().detach().cpu()
    if not net.cfg.lwas:
        w = w.unsqueeze(0)
    rows = []
    for layer in range(w.shape[0]):
        for edge in range(w.shape[1]):
            for k, op in enumerate(net.cfg.primitives):
                rows.append({"epoch": epoch, "layer": layer if net.cfg.lwas else "all", "edge": edge, "op": op,
                             "weight": round(float(w[layer, edge, k]), 6)})
    return rows


def _beta_rows(net: Supernet, epoch: int) -> list[dict]:
    w = net.beta_weights().detach().cpu()
    rows = []
    for s in net.sources:
        for col, name in enumerate(MOVE_NAMES):
            if net.beta_mask[s.index, col]:
                continue
            rows.append({"epoch": epoch, "source": s.name, "layer": s.layer, "level": s.level, "move": name,
                         "weight": round(float(w[s.index, col]), 6)})
    return rows


def search(cfg: RunConfig, out_dir, resume: bool = False, *, progress: bool | None = None,
           stop_at: float | None = None) -> dict:
    """Run (or continue) a search into ``out_dir``; returns the summary dict.

    ``stop_at`` (a ``time.monotonic()`` deadline): once passed, the run checkpoints at the next
    log point and returns ``{"status": "paused", ...}``; ``resume=True`` continues it."""
    folder = runfolder.RunFolder(out_dir, "search", resume, common.rank(), quiet=cfg.quiet or progress is False)
    device = common.resolve_device(cfg.device)
    try:
        with common.deterministic(device.type == "cpu"), fast.backend_flags(cfg, device):
            return _search(cfg, folder, device, progress, stop_at)
    finally:
        folder.release()


def _search(cfg: RunConfig, folder, device, progress, stop_at=None) -> dict:
    from hinas.data import BatchStream, PatchDataset, search_split
    from hinas.space.genotype import origin

    # -- every input is checked before the first write ---------------------------------------------
    ck, records, identity = runfolder.open_run(folder, "search", cfg, device)
    rank, world = common.rank(), common.world_size()
    out = folder.out
    W, A, V = search_split(records, cfg.split_mode, cfg.val_fraction, cfg.seed)
    check_validation_images(V, cfg)
    common.seed_everything(cfg.seed)
    sigma = cfg.search_sigma if cfg.task == "denoise" else None
    ds_w = PatchDataset(W, cfg.task, patch=cfg.patch, sigma=sigma, scale=cfg.scale,
                        samples_per_epoch=len(W) * cfg.crops_per_image, seed=cfg.seed, rescale=cfg.rescale_aug)
    ds_a = PatchDataset(A, cfg.task, patch=cfg.patch, sigma=sigma, scale=cfg.scale,
                        samples_per_epoch=len(A) * cfg.crops_per_image, seed=cfg.seed + 1, rescale=cfg.rescale_aug)
    stream_w = BatchStream(ds_w, cfg.batch_size, cfg.seed, rank, world)
    stream_a = BatchStream(ds_a, cfg.batch_size, cfg.seed + 1, rank, world)
    if cfg.device_data:  # the same batches made on the device (hinas.data.device_sampling)
        from hinas.data.device_sampling import on_device
        stream_w, stream_a = on_device(stream_w, device), on_device(stream_a, device)

    net = fast.prepare_network(Supernet(cfg.supernet_config()).to(device), cfg, device)
    loss_fn = RestorationLoss(cfg.task, "search", ssim_weight=cfg.search_ssim_weight,
                              nonpositive_ssim=cfg.nonpositive_ssim).to(device)
    opt_w = torch.optim.SGD(net.weight_parameters(), lr=cfg.w_lr, momentum=cfg.w_momentum,
                            weight_decay=cfg.w_weight_decay)
    opt_a = torch.optim.Adam(net.arch_parameters(), lr=cfg.a_lr, weight_decay=cfg.a_weight_decay)

    state = {"epoch": 1, "step_in_epoch": 0, "global_step": 0, "best": None, "history": [], "alpha": [],
             "beta": [], "seconds": 0.0, "sums": _fresh_sums()}
    ckpt_path = out / CHECKPOINT
    run = runfolder.RunState("supernet", identity, net, {"opt_w": opt_w, "opt_a": opt_a},
                          {"stream_w": stream_w, "stream_a": stream_a}, state, ckpt_path)
    resuming = common.broadcast_object(ck is not None)  # rank 0 has checked the folder and the identity
    if rank != 0 and resuming:
        ck = common.load_checkpoint(ckpt_path)
    if ck is not None:
        run.restore(_named_sums(ck))
    for opt in (opt_w, opt_a):  # after the restore, which brings back the saved group flags
        fast.arm_optimizer(opt, cfg, device)
    arch_step, weight_step = fast.search_steppers(net, opt_w, opt_a, loss_fn, cfg, device)
    # a new run: its first checkpoint carries the identity before any other file is written
    folder.begin(cfg, first_checkpoint=None if ck is not None else run.save)
    if state.get("finished") and (out / "summary.json").is_file():  # else: the end is written again
        return _read_summary(out)
    common.barrier()

    def save_checkpoint():
        if rank == 0:
            run.save()

    def write_logs():
        if rank != 0:
            return
        common.write_csv(out / "history.csv", state["history"])
        common.write_csv(out / "alpha.csv", state["alpha"])
        common.write_csv(out / "beta.csv", state["beta"])

    show = (not cfg.quiet) if progress is None else progress
    steps_per_epoch = stream_w.batches_per_cycle
    bar = tqdm(total=cfg.epochs * steps_per_epoch, initial=(state["epoch"] - 1) * steps_per_epoch + state["step_in_epoch"],
               disable=not show or rank != 0, desc="search", unit="step", dynamic_ncols=True)
    t_start = time.perf_counter() - state["seconds"]
    net.train()
    while state["epoch"] <= cfg.epochs:
        epoch = state["epoch"]
        lr = search_lr(cfg, epoch)
        fast.set_lr(opt_w, lr)
        arch_on = epoch > cfg.arch_start_epoch
        if state["step_in_epoch"] == 0:
            stream_w.load_state({"cycle": epoch - 1, "position": 0})
            state["sums"] = _fresh_sums()
        acc_w = torch.zeros((), device=device)
        acc_a = torch.zeros((), device=device)
        n_w = n_a = 0
        while state["step_in_epoch"] < steps_per_epoch:
            if arch_on:
                acc_a += arch_step(stream_a)
                n_a += 1
            acc_w += weight_step(stream_w)
            n_w += 1
            state["step_in_epoch"] += 1
            state["global_step"] += 1
            bar.update(1)
            at_log = state["global_step"] % cfg.log_every == 0 or state["step_in_epoch"] == steps_per_epoch
            if at_log:  # one host sync per log interval, not per step
                s_w, s_a = acc_w.item(), acc_a.item()
                if not (math.isfinite(s_w) and math.isfinite(s_a)):
                    bar.close()
                    raise common.TrainingDiverged(
                        f"search loss became {s_w if not math.isfinite(s_w) else s_a} at epoch {epoch}; "
                        f"{common.kept_checkpoint(ckpt_path)}; start a new run (another --out) with a "
                        f"lower learning rate (--set w_lr=... / a_lr=...)")
                old = state["sums"]
                sums = state["sums"] = {"loss_w": old["loss_w"] + s_w, "loss_a": old["loss_a"] + s_a,
                                        "n_w": old["n_w"] + n_w, "n_a": old["n_a"] + n_a}
                # batches with mean SSIM <= 0 this epoch (the release's NaN loss value): counted, not fatal
                state["nonpositive_ssim"] = state.get("nonpositive_ssim", 0) + loss_fn.take_nonpositive_events()
                acc_w.zero_()
                acc_a.zero_()
                n_w = n_a = 0
                bar.set_postfix(epoch=epoch, loss=f"{sums['loss_w'] / max(sums['n_w'], 1):.4f}")
                pause = stop_at is not None and time.monotonic() >= stop_at
                if (pause or state["global_step"] % cfg.checkpoint_every == 0) and state["step_in_epoch"] < steps_per_epoch:
                    state["seconds"] = time.perf_counter() - t_start
                    save_checkpoint()
                    if pause:
                        bar.close()
                        return _paused(state, epoch=epoch, step_in_epoch=state["step_in_epoch"])
        # -- end of epoch: validate, log, keep the best, checkpoint ---------------------------------
        sums = state["sums"]
        row = {"epoch": epoch, "lr": lr, "arch_steps": arch_on,
               "loss_w": sums["loss_w"] / max(sums["n_w"], 1),
               "loss_a": sums["loss_a"] / sums["n_a"] if sums["n_a"] else None,
               "val_psnr": None, "val_ssim": None, "nonpositive_ssim": state.pop("nonpositive_ssim", 0)}
        if epoch > cfg.val_start_epoch:
            metrics = validate_network(net, V, cfg, device) if rank == 0 else None
            metrics = common.broadcast_object(metrics)
            row["val_psnr"], row["val_ssim"] = metrics["psnr"], metrics["ssim"]
            score = selection_score(metrics["psnr"], metrics["ssim"])
            if state["best"] is None or score > state["best"]["score"]:
                g = net.genotype(origin(run=str(out), seed=cfg.seed, epoch=epoch, profile=cfg.profile,
                                            selection="best SSIM + PSNR/100 on V",
                                            val_protocol=cfg.val_protocol))
                state["best"] = {"score": score, "epoch": epoch, "psnr": metrics["psnr"], "ssim": metrics["ssim"],
                                 "genotype": g.to_json()}
        state["seconds"] = time.perf_counter() - t_start
        row["seconds"] = round(state["seconds"], 3)
        state["history"].append(row)
        state["alpha"].extend(_alpha_rows(net, epoch))
        state["beta"].extend(_beta_rows(net, epoch))
        state["epoch"] += 1
        state["step_in_epoch"] = 0
        write_logs()
        save_checkpoint()
        if stop_at is not None and time.monotonic() >= stop_at and state["epoch"] <= cfg.epochs:
            bar.close()
            return _paused(state, epoch=state["epoch"], step_in_epoch=0)
    bar.close()
    return _finish(net, cfg, out, state, device, save_checkpoint, rank,
                   execution=fast.describe(cfg, device, arch_step, weight_step))


def _fresh_sums() -> dict:
    """An epoch's running loss sums and step counts (weight steps ``_w``, architecture steps ``_a``)."""
    return {"loss_w": 0.0, "loss_a": 0.0, "n_w": 0, "n_a": 0}


def _named_sums(ck: dict) -> dict:
    """``ck`` with its state's sums named: checkpoints written before they were held the list
    ``[loss_w, loss_a, n_w, n_a]``; the same numbers, so such a run resumes bit for bit (and
    saves the named form from then on). Anything else is left for the restore to judge."""
    state = ck.get("state") if isinstance(ck, dict) else None
    old = state.get("sums") if isinstance(state, dict) else None
    if isinstance(old, (list, tuple)) and len(old) == 4:
        ck = {**ck, "state": {**state, "sums": dict(zip(("loss_w", "loss_a", "n_w", "n_a"), old))}}
    return ck


def _paused(state, **where) -> dict:
    return {"status": "paused", **where, "steps": state["global_step"], "seconds": round(state["seconds"], 3)}


def _finish(net, cfg, out: Path, state, device, save_checkpoint, rank, execution: dict | None = None) -> dict:
    from hinas.engine.movement import search_movement
    from hinas.space.genotype import Genotype, origin

    final = net.genotype(origin(run=str(out), seed=cfg.seed, epoch=cfg.epochs, profile=cfg.profile,
                                    selection="final epoch"))
    if state["best"] is None:  # no validation happened (a short schedule): the final genotype
        best_g, best = final, {"epoch": cfg.epochs, "psnr": None, "ssim": None}
    else:
        best = state["best"]
        best_g = Genotype.from_json(best["genotype"])
    # every process decodes; all must agree (alpha/beta are all-reduced)
    common.atomic_write_text(out / f"genotype.rank{rank}.json", best_g.to_json()) if common.world_size() > 1 else None
    if rank == 0:
        best_g.save(out / "genotype.json")
        final.save(out / "genotype_final.json")
    summary = {
        "best_epoch": best["epoch"],
        "val_psnr": best["psnr"],
        "val_ssim": best["ssim"],
        "seconds": round(state["seconds"], 3),
        "device": common.device_name(cfg.device),
        "profile": cfg.profile,
        "task": cfg.task,
        "scale": cfg.scale,
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "steps": state["global_step"],
        "world_size": common.world_size(),
        "path": best_g.path,
        "data": _data_note(cfg),
        # how far alpha/beta went from their start: a search that did not move decoded noise and ties
        "movement": search_movement(net),
        "steps_per_second": round(state["global_step"] / max(state["seconds"], 1e-9), 3),
        "execution": execution,
    }
    state["finished"] = True
    if rank == 0:
        common.atomic_write_text(out / "summary.json", __import__("json").dumps(summary, indent=1))
        save_checkpoint()
    common.barrier()
    return summary


def _data_note(cfg) -> dict:
    from hinas.data.datasets import resolve_data_root

    root = resolve_data_root(cfg.data_root)
    return {"root": str(root) if root else None, "embedded": root is None,
            "comparable_with_paper": root is not None and cfg.profile == "paper"}


def _read_summary(out: Path) -> dict:
    from hinas.safeio import load_json_file

    return load_json_file(out / "summary.json", "summary")
