"""``hinas verify DIR``: results that cannot lie, checked on the CPU. It fails closed.

Every item folder under ``DIR`` is checked; the report's ``match`` is True only when all hold:

* every summary parses (bounded, finite numbers; :func:`load_summary`);
* every finished item's manifest checks (:func:`hinas.campaign.manifest.check_item`: each file,
  the weights included, of its size and sha256); a ``done`` marker without one is a problem;
* every path a summary names (``files``, ``network``, ``network_from``, ``genotype_from``,
  ``curve.file``) is relative and stays inside its folder (no absolute path, no ``..``, no
  link leading out): such a path is reported and never followed;
* in every evaluation, the aggregate PSNR and SSIM are the mean of the per-image scores (to
  :data:`AGGREGATE_RTOL` relative), the image count is theirs, and the summary's ``metrics``
  repeat them;
* every stored network, re-evaluated on the CPU, gives its stored per-image PSNRs within
  :data:`TOLERANCE_DB`;
* and the folder holds at least one evaluated network (an empty folder verifies nothing).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from hinas.campaign.folders import SUMMARY
from hinas.campaign.manifest import check_item, inside, item_folders, safe_relative
from hinas.errors import HinasError

# |stored - recomputed| per image, in dB: an fp32 result re-evaluated on the CPU may differ from
# the GPU's by float rounding (a few uint8 levels in the standard protocol: ~1e-3 dB); a bf16
# result is re-evaluated in fp32, so its bound is the bf16 effect itself.
TOLERANCE_DB = {"fp32": 0.05, "bf16": 0.5}
AGGREGATE_RTOL = 1e-6
ITEM_KEYS = ("network", "network_from", "genotype_from")  # summary keys naming another item folder


def load_summary(folder: Path) -> dict:
    """``folder/summary.json`` as a mapping, or a HinasError naming it (missing, truncated, not
    JSON, non-finite numbers, too large or deep)."""
    from hinas.safeio import load_json_file

    path = Path(folder) / SUMMARY
    if path.is_symlink():
        raise HinasError(f"{path}: a symbolic link (never followed)")
    summary = load_json_file(path, "summary")
    if not isinstance(summary, dict):
        raise HinasError(f"{path}: not a summary (a JSON mapping)")
    return summary


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _close(a, b) -> bool:
    return _number(a) and _number(b) and abs(a - b) <= AGGREGATE_RTOL * max(abs(a), abs(b), 1e-12)


def aggregate_problems(summary: dict) -> list[str]:
    """An eval summary's aggregates against its per-image scores (and its ``metrics``)."""
    evs = summary.get("evaluations")
    if not isinstance(evs, list) or not evs:
        return ["an eval summary without evaluations"]
    metrics = summary.get("metrics") if isinstance(summary.get("metrics"), dict) else {}
    problems, labels = [], set()
    for ev in evs:
        if not isinstance(ev, dict):
            problems.append("an evaluation that is not a mapping")
            continue
        label = f"{ev.get('dataset')}/{ev.get('protocol')}/{ev.get('precision', 'fp32')}"
        labels.add(label)
        per = ev.get("per_image")
        if not isinstance(per, list) or not per or not all(isinstance(p, dict) for p in per):
            problems.append(f"{label}: no per-image scores")
            continue
        if ev.get("images") is not None and ev.get("images") != len(per):
            problems.append(f"{label}: 'images' is {ev.get('images')!r} but {len(per)} per-image scores are stored")
        for key in ("psnr", "ssim"):
            values = [p.get(key) for p in per]
            if not all(_number(v) for v in values):
                problems.append(f"{label}: a per-image {key} is not a finite number")
                continue
            mean = sum(values) / len(values)
            if not _close(ev.get(key), mean):
                problems.append(f"{label}: {key} {ev.get(key)!r} is not the mean of its {len(values)} per-image "
                                f"scores ({mean!r})")
            stored = (metrics.get(label) or {}).get(key) if isinstance(metrics.get(label), dict) else None
            if label in metrics and not _close(stored, ev.get(key)):
                problems.append(f"metrics[{label!r}] {key} {stored!r} differs from its evaluation's {ev.get(key)!r}")
    for label in sorted(set(metrics) - labels):
        problems.append(f"metrics[{label!r}] has no evaluation behind it")
    return problems


def summary_problems(folder: Path, summary: dict) -> tuple[list[str], list[str]]:
    """(problems, missing files) of a finished item's summary: its paths, its files, its
    aggregates. A path that is absolute or leaves the folder is a problem, never followed."""
    problems, missing = [], []
    files = summary.get("files", [])
    if not isinstance(files, list):
        problems.append("'files' is not a list of file names")
        files = []
    for name in files:
        safe = safe_relative(name)
        if safe is None:
            problems.append(f"'files' names {name!r}: an absolute path or one leaving the item folder (not followed)")
            continue
        p = folder / safe
        if p.is_symlink() or (os.path.lexists(p) and not inside(p, folder)):
            problems.append(f"'files' names {safe}, a symbolic link (not followed)")
        elif not p.is_file():
            missing.append(safe)
    for key in ITEM_KEYS:
        if key not in summary:
            continue
        name = summary[key]
        if safe_relative(name) is None or "/" in name or name == ".":
            problems.append(f"'{key}' is {name!r}: not an item of this results folder (not followed)")
        elif (folder.parent / name).is_symlink() or not inside(folder.parent / name, folder.parent):
            problems.append(f"'{key}' names {name}, a symbolic link (not followed)")
    curve = summary.get("curve")
    if isinstance(curve, dict) and "file" in curve and safe_relative(curve["file"]) is None:
        problems.append(f"'curve.file' is {curve['file']!r}: a path leaving the item folder (not followed)")
    if summary.get("kind") == "eval":
        if "network" not in summary:
            problems.append("an eval summary without 'network'")
        problems += aggregate_problems(summary)
    return problems, missing


def reevaluate(folder: Path, summary: dict, *, images: int | None, data_root, entry: dict) -> None:
    """Re-evaluate the network of an eval item on the CPU; results added to ``entry``."""
    import torch

    from hinas.evaluation import evaluate
    from hinas.network_file import load_trained

    net_dir = folder.parent / summary["network"]
    model, _ = load_trained(net_dir, "best", "cpu")
    for ev in summary["evaluations"]:
        stored = ev["per_image"][:images] if images else ev["per_image"]
        root = data_root or os.environ.get("HINAS_DATA") or ev.get("data_root")
        with torch.no_grad():
            res = evaluate(model, ev["dataset"], ev["task"], sigma=ev.get("sigma"), scale=ev.get("scale"),
                           protocol=ev["protocol"], device="cpu", data_root=root, limit=len(stored))
        by_name = {r["name"]: r["psnr"] for r in res["per_image"]}
        diffs = [abs(by_name.get(s.get("name"), float("inf")) - s["psnr"]) for s in stored]
        worst = max(diffs) if diffs else 0.0
        precision = ev.get("precision", "fp32")
        tol = TOLERANCE_DB.get(precision, TOLERANCE_DB["fp32"])
        ok = worst <= tol
        entry["checked"].append({"evaluation": folder.name, "dataset": ev["dataset"], "protocol": ev["protocol"],
                                 "precision": precision, "images": len(stored), "max_diff_db": worst,
                                 "tolerance_db": tol, "match": ok})
        entry["max_diff_db"] = max(entry["max_diff_db"], worst)
        entry["match"] = entry["match"] and ok


def network_entry(networks: dict, folder: Path, summary: dict) -> dict:
    net_dir = folder.parent / summary["network"]
    return networks.setdefault(str(net_dir), {"path": str(net_dir), "device": summary.get("device"),
                                              "match": True, "max_diff_db": 0.0, "checked": []})


def check_network(folder: Path, summary: dict) -> str | None:
    """None when the eval item's network folder is a finished item whose manifest checks."""
    net = check_item(folder.parent / summary["network"])
    if net["state"] != "done":
        return f"its network {summary['network']} is {net['state'].upper()}: {net['problem'] or 'not finished'}"
    return None


def verify(results, *, images: int | None = 3, data_root=None) -> dict:
    """Check every item under ``results`` and re-evaluate every stored network on the CPU."""
    results = Path(results)
    if not results.is_dir():
        raise HinasError(f"{results}: no such results folder; give the --results folder of 'hinas campaign run'")
    if images is not None and images < 1:
        raise HinasError(f"--images must be at least 1, got {images}")
    networks: dict[str, dict] = {}
    problems, incomplete, items = [], [], []

    def problem(path, state: str, reason: str) -> None:
        problems.append({"path": str(path), "state": state, "reason": reason})

    for folder in item_folders(results):
        check = check_item(folder)
        items.append({"path": str(folder), "state": check["state"], "unlisted": check.get("unlisted", [])})
        summary = None
        if os.path.lexists(folder / SUMMARY) and not folder.is_symlink():
            try:
                summary = load_summary(folder)
            except HinasError as exc:
                problem(folder, "corrupt", f"unreadable summary ({exc})")
        if check["state"] == "pending":
            continue
        if check["state"] != "done":
            problem(folder, check["state"], check["problem"])
            if check["state"] == "incomplete" and check.get("file"):
                incomplete.append({"path": str(folder), "missing": [check["file"]]})
            continue
        if summary is None:
            continue
        found, missing = summary_problems(folder, summary)
        for reason in found:
            problem(folder, "corrupt", reason)
        if missing:
            incomplete.append({"path": str(folder), "missing": missing})
            problem(folder, "incomplete", f"{', '.join(missing)} named in its summary but missing")
        if found or missing or summary.get("kind") != "eval":
            continue
        reason = check_network(folder, summary)
        if reason:
            problem(folder, "incomplete", reason)
            continue
        try:
            reevaluate(folder, summary, images=images, data_root=data_root,
                       entry=network_entry(networks, folder, summary))
        except (KeyError, TypeError, IndexError) as exc:
            problem(folder, "corrupt", f"a malformed evaluation in its summary ({exc.__class__.__name__}: {exc})")
    nets = list(networks.values())
    if not nets:
        problem(results, "empty", "no evaluated network was re-evaluated (no finished eval item whose manifest "
                                  "checks) under this folder, so nothing is verified")
    return {"results": str(results), "images": images, "tolerance_db": TOLERANCE_DB, "networks": nets,
            "incomplete": incomplete, "items": items, "problems": problems,
            "match": not problems and all(n["match"] for n in nets)}
