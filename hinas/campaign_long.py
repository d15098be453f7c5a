"""Long campaign items, learning curves, the movement gate and the plan's accounting.

Hooks of :mod:`hinas.campaign` (kept there small):

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
  item's campaign seconds so far, evaluations included); the finished weights add a last point;
* a train item whose ``genotype_from`` search did not move (:mod:`hinas.engine.movement`; read
  from its summary, else from its ``alpha.csv``/``beta.csv``) is ``waiting``, with the reason, and
  so are the items that depend on it; it is never run and never recorded as an error;
* ``hinas campaign status``: GPU seconds spent per item and, for unfinished ones, an estimate
  of the seconds to finish at the measured speed, with totals.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from hinas.campaign import DONE, Item, Plan, _item_config, _Progress, _read_json, _write_json
from hinas.errors import ConfigError, HinasError

CURVE_FILE = "curve.json"
CURVE_KEYS = {"every", "dataset", "limit", "protocol"}
CURVE_DEFAULTS = {"dataset": None, "limit": 20, "protocol": "standard"}  # dataset None: the task's test set


# ---------------------------------------------------------------------------------------------
# plan options, checked when the plan is loaded (before anything is written)
# ---------------------------------------------------------------------------------------------
def check_item(item: Item, where: str) -> None:
    """Refuse bad ``long``/``curve`` options with one line naming the plan, the item and the fix."""
    o = item.options
    if "long" in o and not isinstance(o["long"], bool):
        raise ConfigError(f"{where}: 'long' must be true or false, got {o['long']!r}")
    if o.get("long") and item.budget is not None:
        raise ConfigError(f"{where}: a long item runs its config's fixed length, never a budget; remove "
                          f"'budget: {item.budget}' (or 'long: true')")
    if "curve" not in o:
        return
    curve = o["curve"]
    if not o.get("long"):
        raise ConfigError(f"{where}: 'curve' needs 'long: true' (a learning curve is measured on a long training)")
    if not isinstance(curve, dict):
        raise ConfigError(f"{where}: 'curve' must be a mapping such as {{every: 5000, dataset: BSDS500-test, "
                          f"limit: 20, protocol: standard}}")
    unknown = set(curve) - CURVE_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown curve key(s) {', '.join(sorted(map(str, unknown)))}; "
                          f"known: {', '.join(sorted(CURVE_KEYS))}")
    cfg = _item_config(item, None, None)
    every = curve.get("every")
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ConfigError(f"{where}: curve 'every' must be a positive number of iterations, got {every!r}")
    if every % cfg.log_every:
        raise ConfigError(f"{where}: curve every {every} is not a multiple of log_every {cfg.log_every} (training "
                          f"pauses only at log points); use a multiple of {cfg.log_every}")
    if every > cfg.iterations:
        raise ConfigError(f"{where}: curve every {every} exceeds the item's {cfg.iterations} iterations; "
                          f"use at most {cfg.iterations}")
    limit = curve.get("limit", CURVE_DEFAULTS["limit"])
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"{where}: curve 'limit' must be a positive number of images, got {limit!r}")
    dataset = curve.get("dataset")
    if dataset is not None and (not isinstance(dataset, str) or not dataset):
        raise ConfigError(f"{where}: curve 'dataset' must be a dataset name such as BSDS500-test, got {dataset!r}")
    from hinas.evaluation import PROTOCOLS

    protocol = curve.get("protocol", CURVE_DEFAULTS["protocol"])
    if protocol not in PROTOCOLS:
        raise ConfigError(f"{where}: unknown curve protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")


def is_long(item: Item) -> bool:
    return bool(item.options.get("long"))


def _curve(item: Item) -> dict | None:
    c = item.options.get("curve")
    return {**CURVE_DEFAULTS, **c} if isinstance(c, dict) else None


# ---------------------------------------------------------------------------------------------
# the movement gate
# ---------------------------------------------------------------------------------------------
def movement_of(folder) -> dict | None:
    """A finished search's movement: its summary's, else measured from its alpha/beta CSVs."""
    from hinas.engine.movement import movement_from_csv

    folder = Path(folder)
    summary = _read_json(folder / "summary.json", {}) or {}
    for m in (summary.get("movement"), (summary.get("engine_summary") or {}).get("movement")):
        if isinstance(m, dict) and "moved" in m:
            return m
    cfg = summary.get("config") or {}
    try:
        return movement_from_csv(folder, cfg.get("layers"), cfg.get("levels"))
    except (OSError, ValueError, KeyError, IndexError):
        return None


def wait_reason(plan: Plan, results: Path, item: Item, waiting: dict) -> str | None:
    """Why ``item`` may not run yet although nothing failed (``waiting``: name -> reason so far)."""
    from hinas.engine.movement import describe

    for dep in item.depends:
        if dep in waiting:
            return f"waits for {dep}, which is waiting ({waiting[dep].split(';')[0].split(': waits')[0]})"
    src = item.genotype_from if item.kind == "train" else None
    if src and (Path(results) / src / DONE).exists():
        movement = movement_of(Path(results) / src)
        if not (movement or {}).get("moved"):
            return f"{describe(src, movement)}; continue the search (a longer or 'long: true' search) before training"
    return None


# ---------------------------------------------------------------------------------------------
# running a long item (one piece per call; with a curve, one piece per curve point)
# ---------------------------------------------------------------------------------------------
def run_long(ctx, item: Item, kind: str, genotype=None) -> dict | None:
    """A piece of a long search/train item; its engine summary when finished, None when paused."""
    from hinas.engine.common import CHECKPOINT, TrainingDiverged
    from hinas.engine.search import search
    from hinas.engine.train import train

    folder = ctx.results / item.name
    run = folder / "run"
    cfg = _item_config(item, ctx.device, ctx.data_root, ctx.settings)
    progress = _Progress(folder)
    curve = _curve(item) if kind == "train" else None
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
                if not _owe_point(ctx, item, cfg, curve, progress, start):
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
            if resume and not isinstance(exc, TrainingDiverged):
                raise _cannot_resume(item, run, exc) from None
            raise
        paused = result.get("status") == "paused"
        where = {k: v for k, v in result.items() if k in ("epoch", "iteration", "steps", "step_in_epoch")}
        if kind == "train" and not paused:
            where["iteration"] = cfg.iterations
        progress.piece(time.monotonic() - t0, {"status": "paused" if paused else "finished", **where,
                                               "start": start, "engine_seconds": result.get("seconds")})
        if curve is not None:
            position = where.get("iteration", start)
            if not _owe_point(ctx, item, cfg, curve, progress, position, final=not paused):
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


def _owe_point(ctx, item: Item, cfg, curve: dict, progress, iteration: int, final: bool = False) -> bool:
    """Score the curve point at ``iteration`` when one is due and not yet recorded. False when it
    is due but no time is left (it stays due: the checkpoint holds those weights)."""
    path = ctx.results / item.name / CURVE_FILE
    data = _read_json(path, {}) or {}
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
    _write_json(path, data)
    progress.piece(seconds, {"status": "curve", "iteration": iteration})
    return True


def _score_checkpoint(ctx, item: Item, cfg, curve: dict):
    """Scores of the weights in the run's checkpoint (not the best ones) on the curve's images."""
    import json

    import torch

    from hinas.data.datasets import resolve_data_root
    from hinas.engine.common import CHECKPOINT, load_checkpoint
    from hinas.evaluation import build_model, evaluate

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
    curve = _read_json(folder / CURVE_FILE)
    if isinstance(curve, dict):
        _write_json(folder / CURVE_FILE, curve)
        body["curve"] = {"file": CURVE_FILE, "points": len(curve.get("points", [])), "every": curve.get("every"),
                         "dataset": curve.get("dataset"), "protocol": curve.get("protocol")}
        body.setdefault("files", []).append(CURVE_FILE)


# ---------------------------------------------------------------------------------------------
# accounting: seconds spent, seconds to finish
# ---------------------------------------------------------------------------------------------
def annotate(plan: Plan, results, report: dict) -> None:
    """Add waiting reasons, search movements, estimates and totals to a campaign status report."""
    results = Path(results)
    by_name = {i.name: i for i in plan.items}
    waiting: dict[str, str] = {}
    for entry in report["items"]:
        item = by_name[entry["name"]]
        if item.kind == "search" and entry["status"] == "done":
            entry["movement"] = movement_of(results / item.name)
        elif item.kind == "train" and entry["status"] == "done" and item.genotype_from:
            if not (movement_of(results / item.genotype_from) or {}).get("moved"):
                entry["note"] = f"trained from {item.genotype_from}, a search that did not move"
        if entry["status"] in ("pending", "waiting"):
            reason = wait_reason(plan, results, item, waiting)
            if reason:
                waiting[item.name] = reason
                entry.update(status="waiting", reason=reason)
        entry.update(_estimate(results, item, entry))
    items = report["items"]
    for s in ("done", "pending", "waiting", "failed"):
        report[s] = sum(1 for i in items if i["status"] == s)
    pending = [i for i in items if i["status"] == "pending"]
    known = [i["estimate"] for i in pending if i.get("estimate") is not None]
    report["totals"] = {
        "done": report["done"], "pending": report["pending"], "waiting": report["waiting"],
        "failed": report["failed"],
        "seconds_spent": round(sum(float(i.get("seconds") or 0.0) for i in items), 3),
        "seconds_to_finish": round(sum(known), 3),
        "pending_without_estimate": len(pending) - len(known),
        "seconds_to_finish_waiting": round(sum(i["estimate"] for i in items
                                               if i["status"] == "waiting" and i.get("estimate") is not None), 3),
    }


def _estimate(results: Path, item: Item, entry: dict) -> dict:
    if entry["status"] == "done":
        return {"estimate": 0.0}
    if not is_long(item) or item.kind not in ("search", "train"):
        basis = "budget" if item.budget is not None else "estimate"
        return {"estimate": float(item.budget if item.budget is not None else item.estimate), "estimate_from": basis}
    cfg = _item_config(item, None, None)
    progress = _read_json(results / item.name / "progress.json", {}) or {}
    pieces = [p for p in progress.get("history", []) if p.get("status") in ("paused", "finished")]
    unit = "iteration" if item.kind == "train" else "steps"
    done = pieces[-1].get(unit, 0) if pieces else 0
    speed, basis = None, None
    for p in reversed(pieces):
        moved = p.get(unit, 0) - p.get("start", 0)
        if moved > 0 and p.get("seconds", 0) > 0:
            speed, basis = moved / p["seconds"], "the last piece"
            break
    if item.kind == "train":
        total = cfg.iterations
        if speed is None:
            speed, basis = _sibling_speed(results, item, cfg)
    else:
        per_epoch = _steps_per_epoch(pieces) or _sibling_steps_per_epoch(results, cfg)
        total = cfg.epochs * per_epoch if per_epoch else None
        if speed is None:
            speed, basis = _sibling_speed(results, item, cfg)
    out = {"total": total, "position": done, "unit": "iterations" if item.kind == "train" else "steps"}
    if speed is None or total is None:
        return {**out, "estimate": None, "estimate_from": "speed not measured yet"}
    seconds = max(total - done, 0) / speed
    curve = _read_json(results / item.name / CURVE_FILE, {}) or {}
    evals = [p.get("eval_seconds", 0.0) for p in curve.get("points", [])]
    if item.kind == "train" and _curve(item) and evals:
        every = _curve(item)["every"]
        seconds += (total // every - len(evals) + 1) * sum(evals) / len(evals)
    return {**out, "speed": round(speed, 3), "estimate": round(seconds, 1), "estimate_from": basis}


def _steps_per_epoch(pieces: list[dict]) -> int | None:
    for p in reversed(pieces):
        epoch, steps = p.get("epoch"), p.get("steps")
        if epoch and steps and epoch > 1:
            return round((steps - p.get("step_in_epoch", 0)) / (epoch - 1))
    return None


def _finished_summaries(results: Path, kind: str, task: str):
    for f in sorted(results.glob("*/summary.json")):
        s = _read_json(f, {}) or {}
        if s.get("kind") == kind and (s.get("config") or {}).get("task") == task and (f.parent / DONE).exists():
            yield f.parent.name, s


def _sibling_speed(results: Path, item: Item, cfg):
    """Speed of a finished item of the same kind, task (and model) in the results folder."""
    for name, s in _finished_summaries(results, item.kind, cfg.task):
        t = s.get("timings") or {}
        if item.kind == "train" and s.get("model") == cfg.model and t.get("iterations_per_second"):
            return float(t["iterations_per_second"]), f"the speed of {name}"
        if item.kind == "search" and t.get("steps") and t.get("search_seconds"):
            return t["steps"] / t["search_seconds"], f"the speed of {name}"
    return None, None


def _sibling_steps_per_epoch(results: Path, cfg) -> int | None:
    for _, s in _finished_summaries(results, "search", cfg.task):
        c, steps = s.get("config") or {}, (s.get("timings") or {}).get("steps")
        if steps and c.get("epochs") and c.get("batch_size") == cfg.batch_size \
                and c.get("crops_per_image") == cfg.crops_per_image:
            return round(steps / c["epochs"])
    return None


def format_status(report: dict) -> list[str]:
    """The lines of ``hinas campaign status``: one per item, then the totals."""
    from hinas.engine.movement import describe

    lines = []
    for it in report["items"]:
        text = f"{it['status']:8s} {it['name']} ({it['kind']}; {it['pieces']} pieces, {float(it['seconds']):.0f} s spent"
        if it["status"] != "done":
            if it.get("estimate") is not None:
                text += f"; ~{it['estimate']:.0f} s to finish"
                if it.get("speed"):
                    text += f" ({it['position']}/{it['total']} {it['unit']} at {it['speed']:.3g}/s, {it['estimate_from']})"
                else:
                    text += f" (its {it.get('estimate_from', 'estimate')})"
            else:
                text += f"; to finish: unknown ({it.get('estimate_from')})"
        text += ")"
        if it.get("movement") is not None or (it["kind"] == "search" and it["status"] == "done"):
            text += f"; {describe(it['name'], it.get('movement'))}"
        if it.get("reason") or it.get("note"):
            text += f": {it.get('reason') or it['note']}"
        if it.get("error"):
            text += f": {it['error']}"
        lines.append(text)
    t = report["totals"]
    lines.append(f"{t['done']} done, {t['pending']} pending, {t['waiting']} waiting, {t['failed']} failed; "
                 f"{t['seconds_spent']:.0f} s spent; ~{t['seconds_to_finish']:.0f} s estimated to finish the pending "
                 f"items" + (f" ({t['pending_without_estimate']} without an estimate yet)"
                             if t["pending_without_estimate"] else "")
                 + (f"; ~{t['seconds_to_finish_waiting']:.0f} s more for the waiting ones" if t["waiting"] else ""))
    return lines
