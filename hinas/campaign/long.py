"""Long campaign items: a fixed length over as many calls as it takes, with learning curves.

* ``long: true`` on a search or train item (never with ``budget``): the run has the FIXED length
  of its config (e.g. ``iterations: 120000``, ``epochs: 100``), never re-planned from a window's
  budget. Each campaign call runs one piece until its deadline; the engine checkpoints and pauses
  (``stop_at``) and the next call resumes it from ``DIR/<item>/run/checkpoint.pt``, which is never
  deleted before the item's ``done`` marker: a paused run that cannot be resumed is an error that
  names the folder, not a restart;
* ``curve: {every: N, dataset: BSDS500-test, limit: 20, protocol: standard}`` on a long train
  item: training pauses exactly at every multiple of N iterations (``train(stop_iteration=...)``),
  the current weights (the checkpoint's ``model``) are scored on the first ``limit`` images of
  ``dataset`` at the item's sigma, and ``{iteration, psnr, ssim, seconds, gpu_seconds}`` is
  appended to ``DIR/<item>/curve.json`` (``seconds``: training seconds so far; ``gpu_seconds``: the
  item's campaign seconds so far, evaluations included); the finished weights add a last point.

The options are checked with the plan (:func:`hinas.campaign.options.check_long`); the movement
gate and the accounting are in :mod:`hinas.campaign.status`.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from hinas.campaign.folders import Progress, read_json, write_json
from hinas.campaign.options import CURVE_FILE, curve_of, is_long, item_config
from hinas.campaign.plan import Item
from hinas.errors import HinasError

# ---------------------------------------------------------------------------------------------
# running a long item (one piece per call; with a curve, one piece per curve point)
# ---------------------------------------------------------------------------------------------
def run_long(ctx, item: Item, kind: str, genotype=None) -> dict | None:
    """A piece of a long search/train item; its engine summary when finished, None when paused."""
    from hinas.campaign.runners import is_call_error, piece_provenance
    from hinas.engine.common import CHECKPOINT, TrainingDiverged
    from hinas.engine.search import search
    from hinas.engine.train import train

    folder = ctx.results / item.name
    run = folder / "run"
    cfg = item_config(item, ctx.device, ctx.data_root, ctx.settings)
    progress = Progress(folder)
    curve = curve_of(item) if kind == "train" else None
    first = True
    while True:
        resume = (run / CHECKPOINT).exists()
        if not resume and run.exists():
            shutil.rmtree(run)  # no checkpoint yet: a start that stopped before its first; nothing is lost
        start = progress.data.get("last", {}).get("steps" if kind == "search" else "iteration", 0) if resume else 0
        stop_iteration = None
        if curve is not None:
            if first and resume:
                try:
                    start = _checkpoint_state(run / CHECKPOINT).get("iteration", start)
                except HinasError as exc:
                    raise _cannot_resume(item, run, exc) from None
                if not owe_point(ctx, item, cfg, curve, progress, start):
                    return None  # a point is owed and no time is left to score it: the next call does
            every = curve["every"]
            stop_iteration = (start // every + 1) * every
            stop_iteration = stop_iteration if stop_iteration < cfg.iterations else None
        first = False
        t0 = time.monotonic()
        try:
            if kind == "search":
                result = search(cfg, run, resume=resume, progress=False, stop_at=ctx.stop_at())
            else:
                result = train(cfg, genotype, run, resume=resume, progress=False, stop_at=ctx.stop_at(),
                               stop_iteration=stop_iteration)
        except HinasError as exc:
            if resume and not isinstance(exc, TrainingDiverged) and not is_call_error(exc):
                raise _cannot_resume(item, run, exc) from None
            raise
        paused = result.get("status") == "paused"
        where = {k: v for k, v in result.items() if k in ("epoch", "iteration", "steps", "step_in_epoch")}
        if kind == "train" and not paused:
            where["iteration"] = cfg.iterations
        progress.piece(time.monotonic() - t0, {"status": "paused" if paused else "finished", **where,
                                               "start": start, "engine_seconds": result.get("seconds"),
                                               **piece_provenance(cfg)})
        if curve is not None:
            position = where.get("iteration", start)
            if not owe_point(ctx, item, cfg, curve, progress, position, final=not paused):
                return None  # the point is scored at the start of the next call
        if not paused:
            return {"engine": result, "config": cfg, "budget": None, "progress": progress.data}
        if curve is None or where.get("iteration") != stop_iteration or ctx.left() < item.estimate + ctx.reserve:
            return None  # the deadline: paused with a checkpoint, continued by the next call


def _cannot_resume(item: Item, run: Path, exc: Exception) -> HinasError:
    # never restarted from scratch here: a long item's checkpoint may hold hours of GPU time
    return HinasError(f"plan item {item.name!r}: its paused run {run} cannot be resumed ({exc}); its checkpoint "
                      f"is kept: move {run} away (or delete it) to start the item again")


def _checkpoint_state(path: Path) -> dict:
    from hinas.engine.common import load_checkpoint

    ck = load_checkpoint(path)
    return dict(ck.get("state") or {}) if isinstance(ck, dict) else {}


def owe_point(ctx, item: Item, cfg, curve: dict, progress, iteration: int, final: bool = False) -> bool:
    """Score the curve point at ``iteration`` when one is due and not yet recorded. False when it
    is due but no time is left (it stays due: the checkpoint holds those weights)."""
    path = ctx.results / item.name / CURVE_FILE
    data = read_json(path, {}) or {}
    points = data.get("points", [])
    due = iteration > 0 and (final or iteration % curve["every"] == 0)
    if not due or any(p.get("iteration") == iteration for p in points):
        return True
    # a few images: 1.5 x the slowest scoring so far, else the call's reserve, must be left
    need = 1.5 * max(p.get("eval_seconds", 0.0) for p in points) if points else ctx.reserve
    if time.monotonic() + need > ctx.deadline:
        return False
    t0 = time.monotonic()
    res, state = _score_checkpoint(ctx, item, cfg, curve)
    if state.get("iteration") != iteration:
        raise HinasError(f"plan item {item.name!r}: the checkpoint holds iteration {state.get('iteration')}, "
                         f"the curve point is for {iteration}; move {ctx.results / item.name / 'run'} away to restart")
    seconds = time.monotonic() - t0
    spent = progress.data["seconds"] + seconds
    points.append({"iteration": iteration, "psnr": res["psnr"], "ssim": res["ssim"],
                   "seconds": round(float(state.get("seconds", 0.0)), 3), "gpu_seconds": round(spent, 3),
                   "eval_seconds": round(seconds, 3), "images": res.get("images")})
    data.update({"item": item.name, "every": curve["every"], "dataset": res.get("dataset"),
                 "protocol": curve["protocol"], "limit": curve["limit"], "sigma": res.get("sigma"),
                 "scale": res.get("scale"), "iterations": cfg.iterations, "points": points})
    write_json(path, data)
    progress.piece(seconds, {"status": "curve", "iteration": iteration})
    return True


def _score_checkpoint(ctx, item: Item, cfg, curve: dict):
    """Scores of the weights in the run's checkpoint (not the best ones) on the curve's images."""
    import json

    import torch

    from hinas.data.datasets import resolve_data_root
    from hinas.engine.common import CHECKPOINT, load_checkpoint
    from hinas.eval.evaluation import evaluate
    from hinas.space.network_file import build_model

    run = ctx.results / item.name / "run"
    ck = load_checkpoint(run / CHECKPOINT)
    spec = json.loads((run / "network.json").read_text())
    model = build_model(spec)
    try:
        model.load_state_dict(ck["model"])
    except (KeyError, RuntimeError) as exc:
        raise HinasError(f"plan item {item.name!r}: {run / CHECKPOINT} does not fit {run / 'network.json'} "
                         f"({exc.__class__.__name__}); move {run} away to restart the item") from None
    device = cfg.device
    model = model.to(device).eval()
    dataset = curve["dataset"]
    if dataset is None:
        dataset = ("embedded-test" if resolve_data_root(ctx.data_root) is None
                   else ("BSDS500-test" if cfg.task == "denoise" else "Set5"))
    with torch.no_grad():
        res = evaluate(model, dataset, cfg.task, sigma=cfg.sigma[0] if cfg.task == "denoise" else None,
                       scale=cfg.scale, protocol=curve["protocol"], device=device, data_root=ctx.data_root,
                       limit=curve["limit"])
    return res, dict(ck.get("state") or {})


def finish_extras(folder: Path, item: Item, body: dict) -> None:
    """A finished long item's summary notes its curve; curve.json is written again now, so it
    travels with the finished item in this call's archive."""
    if not is_long(item):
        return
    body.setdefault("schedule", {})["long"] = True
    curve = read_json(folder / CURVE_FILE)
    if isinstance(curve, dict):
        write_json(folder / CURVE_FILE, curve)
        body["curve"] = {"file": CURVE_FILE, "points": len(curve.get("points", [])), "every": curve.get("every"),
                         "dataset": curve.get("dataset"), "protocol": curve.get("protocol")}
        body.setdefault("files", []).append(CURVE_FILE)
