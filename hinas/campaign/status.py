"""Where a plan stands in a results folder: item states, the movement gate, the accounting.

* An item is ``done`` only when its ``done`` marker stands on a manifest that checks
  (:func:`hinas.campaign.manifest.check_item`); else ``corrupt`` or ``incomplete`` (with the
  ``problem``), ``failed`` (``error.json``), ``waiting`` or ``pending``.
* A train item whose ``genotype_from`` search did not move (:mod:`hinas.engine.movement`; read
  from its summary, else from its ``alpha.csv``/``beta.csv``) is ``waiting``, with the reason,
  and so are the items that depend on it; it is never run and never recorded as an error.
* ``hinas campaign status``: seconds spent per item and, for unfinished ones, an estimate of
  the seconds to finish at the measured speed, with totals.
"""

from __future__ import annotations

from pathlib import Path

from hinas.campaign.folders import DONE, ERROR, SUMMARY, read_json
from hinas.campaign.manifest import check_item
from hinas.campaign.plan import Item, Plan
from hinas.campaign.options import item_config

STATES = ("done", "pending", "waiting", "failed", "corrupt", "incomplete", "stale")


def item_status(results: Path, item: Item) -> dict:
    folder = Path(results) / item.name
    progress = read_json(folder / "progress.json", {})
    progress = progress if isinstance(progress, dict) else {}
    entry = {"name": item.name, "kind": item.kind, "status": "pending", "depends": item.depends,
             "pieces": progress.get("pieces", 0), "seconds": progress.get("seconds", 0.0)}
    check = check_item(folder)
    if check["state"] == "done":
        entry["status"] = "done"
        summary = read_json(folder / SUMMARY, {})
        made_by = summary.get("definition") if isinstance(summary, dict) else None
        if made_by is not None and item.definition and made_by != item.definition:
            entry.update(status="stale", problem=f"its result was made by another definition of the item ({made_by}; "
                                                 f"the plan's is {item.definition}); use another results folder")
            return entry
        for key in ("device", "metrics"):
            if isinstance(summary, dict) and key in summary:
                entry[key] = summary[key]
    elif check["state"] != "pending":
        entry.update(status=check["state"], problem=check["problem"])
    elif (folder / ERROR).exists():
        entry["status"] = "failed"
        entry["error"] = (read_json(folder / ERROR, {}) or {}).get("error")
    elif progress.get("last"):
        entry["last"] = progress["last"]
    return entry


def campaign_status(plan: Plan, results) -> dict:
    results = Path(results)
    items = [item_status(results, it) for it in plan.items]
    counts = {s: sum(1 for i in items if i["status"] == s) for s in ("done", "pending", "failed")}
    report = {"plan": plan.name, "results": str(results), **counts, "items": items}
    annotate(plan, results, report)  # waiting items, search movement, seconds spent and to finish
    return report


# ---------------------------------------------------------------------------------------------
# the movement gate
# ---------------------------------------------------------------------------------------------
def movement_of(folder) -> dict | None:
    """A finished search's movement: its summary's, else measured from its alpha/beta CSVs."""
    from hinas.engine.movement import movement_from_csv

    folder = Path(folder)
    summary = read_json(folder / SUMMARY, {})
    summary = summary if isinstance(summary, dict) else {}
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
    # a chapter's small-scale plan may train from a search that did not move (option
    # from_unmoved_search: it shows the movement beside the scores); the paper's plans never do
    src = item.genotype_from if item.kind == "train" and not item.options.get("from_unmoved_search") else None
    src = src if src and plan.item(src).kind == "search" else None  # an rsws genotype is random by design
    if src and check_item(plan.folder(results, src))["state"] == "done":
        movement = movement_of(plan.folder(results, src))
        if not (movement or {}).get("moved"):
            return f"{describe(src, movement)}; continue the search (a longer or 'long: true' search) before training"
    return None


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
        elif item.kind == "train" and entry["status"] == "done" and item.genotype_from \
                and plan.item(item.genotype_from).kind == "search":
            if not (movement_of(plan.folder(results, item.genotype_from)) or {}).get("moved"):
                entry["note"] = f"trained from {item.genotype_from}, a search that did not move"
        if entry["status"] in ("pending", "waiting"):
            reason = wait_reason(plan, results, item, waiting)
            if reason:
                waiting[item.name] = reason
                entry.update(status="waiting", reason=reason)
        entry.update(_estimate(results, item, entry))
    items = report["items"]
    for s in STATES:
        report[s] = sum(1 for i in items if i["status"] == s)
    pending = [i for i in items if i["status"] == "pending"]
    known = [i["estimate"] for i in pending if i.get("estimate") is not None]
    report["totals"] = {
        **{s: report[s] for s in STATES if s != "pending"}, "pending": report["pending"],
        "seconds_spent": round(sum(float(i.get("seconds") or 0.0) for i in items), 3),
        "seconds_to_finish": round(sum(known), 3),
        "pending_without_estimate": len(pending) - len(known),
        "seconds_to_finish_waiting": round(sum(i["estimate"] for i in items
                                               if i["status"] == "waiting" and i.get("estimate") is not None), 3),
    }


def here_device() -> str:
    """The device name of this machine's pieces (:func:`hinas.engine.common.device_name`): the
    first GPU's when CUDA is available, else ``cpu``."""
    import torch

    from hinas.engine.common import device_name

    return device_name("cuda" if torch.cuda.is_available() else "cpu")


def pieces_by_device(progress: dict) -> dict:
    """``{device: {pieces, seconds, steps/iterations moved}}`` of an item's run pieces (the
    curve scorings apart); pieces from before devices were recorded count as ``unrecorded``."""
    out: dict = {}
    for p in progress.get("history", []):
        if p.get("status") not in ("paused", "finished"):
            continue
        d = out.setdefault(p.get("device") or "unrecorded", {"pieces": 0, "seconds": 0.0, "moved": 0})
        d["pieces"] += 1
        d["seconds"] = round(d["seconds"] + float(p.get("seconds") or 0.0), 3)
        end = p.get("steps", p.get("iteration", 0)) or 0
        d["moved"] += max(int(end) - int(p.get("start", 0) or 0), 0)
    return out


def _estimate(results: Path, item: Item, entry: dict, device: str | None = None) -> dict:
    """Seconds to finish at the speed measured on ``device`` (default: this machine's), from its
    own pieces; another device's speed only when this one has none, and then named."""
    from hinas.campaign.options import CURVE_FILE, curve_of, is_long

    if entry["status"] == "done":
        return {"estimate": 0.0}
    if entry["status"] in ("corrupt", "incomplete"):
        return {"estimate": None, "estimate_from": f"{entry['status']}: {entry.get('problem')}"}
    if not is_long(item) or item.kind not in ("search", "train"):
        basis = "budget" if item.budget is not None else "estimate"
        return {"estimate": float(item.budget if item.budget is not None else item.estimate), "estimate_from": basis}
    cfg = item_config(item, None, None)
    progress = read_json(results / item.name / "progress.json", {}) or {}
    pieces = [p for p in progress.get("history", []) if p.get("status") in ("paused", "finished")]
    unit = "iteration" if item.kind == "train" else "steps"
    done = pieces[-1].get(unit, 0) if pieces else 0
    device = device or here_device()
    out = {"position": done, "unit": "iterations" if item.kind == "train" else "steps", "device": device}
    if pieces:
        out["by_device"] = pieces_by_device(progress)
    mine = [p for p in pieces if p.get("device") == device]
    others = [p for p in pieces if p.get("device") != device]
    if item.kind == "search":
        per_epoch = _steps_per_epoch(pieces) or _sibling_steps_per_epoch(results, cfg)
        total = cfg.epochs * per_epoch if per_epoch else None
        out["total"] = total
        if per_epoch and (mine or others):
            return {**out, **_search_estimate(cfg, per_epoch, done, mine or others,
                                              "" if mine else f" on {(others[-1].get('device') or 'another device')}")}
    else:
        total = out["total"] = cfg.iterations
    speed, basis = None, None
    for p in reversed(mine or others):
        moved = p.get(unit, 0) - p.get("start", 0)
        if moved > 0 and p.get("seconds", 0) > 0:
            speed = moved / p["seconds"]
            basis = "the last piece" + ("" if mine else f" on {p.get('device') or 'another device'}")
            break
    if speed is None:
        speed, basis = _sibling_speed(results, item, cfg, device)
    if speed is None or total is None:
        return {**out, "estimate": None, "estimate_from": "speed not measured yet"}
    seconds = max(total - done, 0) / speed
    curve = read_json(results / item.name / CURVE_FILE, {}) or {}
    evals = [p.get("eval_seconds", 0.0) for p in curve.get("points", [])]
    if item.kind == "train" and curve_of(item) and evals:
        every = curve_of(item)["every"]
        seconds += (total // every - len(evals) + 1) * sum(evals) / len(evals)
    return {**out, "speed": round(speed, 3), "estimate": round(seconds, 1), "estimate_from": basis}


def _search_estimate(cfg, per_epoch: int, done: int, pieces: list[dict], where: str) -> dict:
    """A search's rest in its two phases: weight-only steps (epochs up to ``arch_start_epoch``)
    and steps with an architecture step (and, past ``val_start_epoch``, validation), each at
    the seconds per step of the pieces that ran in that phase. A phase with no piece yet is
    costed at the other's speed and the estimate says it is a lower bound."""
    warm_end = cfg.arch_start_epoch * per_epoch  # steps before the first architecture step
    cost = {"warm-up": [0.0, 0], "arch": [0.0, 0]}
    across = []
    for p in pieces:
        start, end, sec = int(p.get("start", 0) or 0), int(p.get("steps", 0) or 0), float(p.get("seconds") or 0)
        if end <= start or sec <= 0:
            continue
        phase = "warm-up" if end <= warm_end else ("arch" if start >= warm_end else None)
        if phase:
            cost[phase][0] += sec
            cost[phase][1] += end - start
        else:
            across.append((warm_end - start, end - warm_end, sec))
    if across and cost["warm-up"][1]:  # a piece across the boundary: its warm-up part at the warm-up's speed
        w = cost["warm-up"][0] / cost["warm-up"][1]
        for n_warm, n_arch, sec in across:
            if sec - n_warm * w > 0:
                cost["arch"][0] += sec - n_warm * w
                cost["arch"][1] += n_arch
    per_step = {k: v[0] / v[1] for k, v in cost.items() if v[1]}
    if not per_step:
        return {"estimate": None, "estimate_from": "speed not measured yet"}
    left_warm = max(warm_end - done, 0)
    left_arch = max(cfg.epochs * per_epoch - max(done, warm_end), 0)
    lower = (left_arch and "arch" not in per_step) or (left_warm and "warm-up" not in per_step)
    w = per_step.get("warm-up", per_step.get("arch"))
    a = per_step.get("arch", per_step.get("warm-up"))
    seconds = left_warm * w + left_arch * a
    basis = ", ".join(f"{k} {v:.1f} s/step" for k, v in per_step.items()) + f" (this item's pieces{where})"
    if lower:
        basis += "; a lower bound: the steps with architecture updates are not measured yet" \
            if "arch" not in per_step else "; the warm-up costed at the architecture steps' speed"
    return {"speed": round(1 / (a if left_arch else w), 4), "seconds_per_step": {k: round(v, 3) for k, v in per_step.items()},
            "estimate": round(seconds, 1), "estimate_from": basis, "lower_bound": bool(lower and "arch" not in per_step)}


def _steps_per_epoch(pieces: list[dict]) -> int | None:
    for p in reversed(pieces):
        epoch, steps = p.get("epoch"), p.get("steps")
        if epoch and steps and epoch > 1:
            return round((steps - p.get("step_in_epoch", 0)) / (epoch - 1))
    return None


def _finished_summaries(results: Path, kind: str, task: str):
    for f in sorted(results.glob(f"*/{SUMMARY}")):
        s = read_json(f, {}) or {}
        if isinstance(s, dict) and s.get("kind") == kind and (s.get("config") or {}).get("task") == task \
                and (f.parent / DONE).exists():
            yield f.parent.name, s


def _pieces_speed(results: Path, item: Item, cfg, device: str | None):
    """Training speed on ``device`` of another long training under way in the results folder (same
    task and model, from its run's ``config.yaml``): its last piece there that moved."""
    import yaml

    for f in sorted(results.glob("*/progress.json")):
        if f.parent.name == item.name or (f.parent / DONE).exists():
            continue
        try:
            conf = yaml.safe_load((f.parent / "run" / "config.yaml").read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        if not isinstance(conf, dict) or (conf.get("task"), conf.get("model")) != (cfg.task, cfg.model):
            continue
        for p in reversed((read_json(f, {}) or {}).get("history", [])):
            moved = (p.get("iteration") or 0) - (p.get("start") or 0)
            if p.get("device") == device and p.get("status") in ("paused", "finished") and moved > 0 \
                    and (p.get("seconds") or 0) > 0:
                return moved / p["seconds"], f"the speed of {f.parent.name}'s last piece, on {device}"
    return None, None


def _sibling_speed(results: Path, item: Item, cfg, device: str | None = None):
    """Speed of a finished item of the same kind, task (and model) in the results folder, one
    that ran on ``device`` first, else (a training) one under way on ``device``
    (:func:`_pieces_speed`); another device's is named as such."""
    found = []
    for name, s in _finished_summaries(results, item.kind, cfg.task):
        t = s.get("timings") or {}
        if item.kind == "train" and s.get("model") == cfg.model and t.get("iterations_per_second"):
            found.append((s.get("device"), float(t["iterations_per_second"]), name))
        if item.kind == "search" and t.get("steps") and t.get("search_seconds"):
            found.append((s.get("device"), t["steps"] / t["search_seconds"], name))
    found.sort(key=lambda f: f[0] != device)  # this device's first
    if item.kind == "train" and not any(dev == device for dev, _, _ in found):
        speed, basis = _pieces_speed(results, item, cfg, device)
        if speed:
            return speed, basis
    for dev, speed, name in found:
        return speed, f"the speed of {name}" + ("" if dev == device else f", on {dev or 'another device'}")
    return None, None


def _sibling_steps_per_epoch(results: Path, cfg) -> int | None:
    for _, s in _finished_summaries(results, "search", cfg.task):
        c, steps = s.get("config") or {}, (s.get("timings") or {}).get("steps")
        if steps and c.get("epochs") and c.get("batch_size") == cfg.batch_size \
                and c.get("crops_per_image") == cfg.crops_per_image:
            return round(steps / c["epochs"])
    return None
