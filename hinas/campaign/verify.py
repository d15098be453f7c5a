"""``hinas verify DIR``: results that cannot lie, checked on the CPU. It fails closed and trusts
nothing a results folder says about where its inputs are.

Every item folder under ``DIR`` is checked by what its files are, whatever its summary's ``kind``
says; the report's ``match`` is True only when all hold:

* every summary parses (bounded, finite numbers; :func:`load_summary`), names its own folder as
  its ``item``, and has a ``kind`` that its files agree with (``eval`` holds evaluations, ``train``
  a network, and no other kind either);
* every finished item's manifest checks (:func:`hinas.campaign.manifest.check_item`: each file,
  the weights included, of its size and sha256); a ``done`` marker without one is a problem;
* the claims a summary derives from its own measurements are theirs (a benchmark's ratios, a run's
  ``metrics`` repeating its engine's; :func:`derived_problems`);
* every path a summary names (``files``, ``network``, ``network_from``, ``genotype_from``,
  ``curve.file``) is relative and stays inside its folder (no absolute path, no ``..``, no
  link leading out): such a path is reported and never followed;
* every network in an item's files (``network.json`` with its weights) loads, finite and fitting,
  every ``*.safetensors`` is finite, every genotype parses, a search's alpha/beta CSVs show the
  movement its summary claims, and ``params``/``flops`` are the network's, whether or not an
  evaluation names it (:func:`hinas.campaign.rescore.file_checks`);
* in every evaluation (a summary with ``evaluations`` or a ``network``, whatever its kind), each
  field is one hinas writes (dataset, protocol, precision, task, sigma, scale: else that item is
  CORRUPT, the others still checked), the aggregate PSNR and SSIM are the mean of the per-image
  scores (to :data:`AGGREGATE_RTOL` relative), the image count is theirs, and ``metrics`` repeat them;
* every stored network, and every baseline's method (the noisy input, BM3D: ``kind: baseline``),
  re-evaluated on the CPU on the verifier's own data (``--data-root``, else
  ``$HINAS_DATA``, else the embedded photos only; a summary's ``data_root`` is only named in a
  note), gives every stored per-image PSNR and SSIM of the first N images, for every protocol and
  precision, within :data:`TOLERANCE_DB` / :data:`TOLERANCE_SSIM`; an evaluation the verifier's
  data cannot score is UNVERIFIED, never scored elsewhere; an evaluation on central crops
  (``NAME[cropK]``) is scored again on the same crops of the verifier's images;
* and the folder holds at least one evaluated network (an empty folder verifies nothing).

A bad call (no such folder, ``--images`` below 1, a data root that is not a folder) raises a
:class:`~hinas.errors.HinasError` (exit 2, one line); everything about the items is in the report.
"""

from __future__ import annotations

import os
from pathlib import Path

from hinas.campaign.folders import SUMMARY
from hinas.campaign.manifest import check_item, inside, item_files, item_folders, safe_relative
from hinas.campaign.rescore import (TOLERANCE_DB, TOLERANCE_SSIM, Malformed, NotRescored, data_root_note,
                                    evaluation_label, evaluation_problem, evaluations_problems, file_checks,
                                    holds_network, SUPERNET_FILE,
                                    rescore_evaluation, show, trusted_data_root)
from hinas.errors import HinasError
from hinas.safeio import is_finite_number

__all__ = ["AGGREGATE_RTOL", "TOLERANCE_DB", "TOLERANCE_SSIM", "aggregate_problems", "check_network",
           "derived_problems", "holds_evaluations", "kind_problems", "load_summary", "network_of", "summary_problems",
           "verify"]

AGGREGATE_RTOL = 1e-6
ITEM_KEYS = ("network", "network_from", "genotype_from", "supernet_from")  # summary keys naming another item folder
EVAL_KEYS = ("evaluations", "network")  # what makes a summary an evaluation's, whatever its kind
# the campaign's kinds (hinas.campaign.plan.KINDS) and the chapters' sealed runs (hinas.book.notebook_run.KIND)
KNOWN_KINDS = ("bench", "search", "rsws", "train", "eval", "baseline", "notebooks")
SCORED_KINDS = ("eval", "baseline")  # the kinds that hold evaluations (a network's, or a baseline method's)
NO_NETWORK = "holds no network (network.json with weights.safetensors)"
RATIOS = {"memory_ratio": "peak_bytes", "time_ratio": "step_seconds", "analytic_ratio": "cell_evaluations"}


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


def _close(a, b) -> bool:
    return is_finite_number(a) and is_finite_number(b) and abs(a - b) <= AGGREGATE_RTOL * max(abs(a), abs(b), 1e-12)


def holds_evaluations(summary: dict) -> bool:
    """The summary holds evaluations (or names an evaluated network, or scores keyed
    ``dataset/protocol/precision``), whatever its ``kind`` says."""
    metrics = summary.get("metrics")
    return (summary.get("kind") == "eval" or any(k in summary for k in EVAL_KEYS)
            or (isinstance(metrics, dict) and any("/" in k for k in metrics)))


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
        label = evaluation_label(ev)
        labels.add(label)
        per = ev.get("per_image")
        if not isinstance(per, list) or not per or not all(isinstance(p, dict) for p in per):
            problems.append(f"{label}: no per-image scores")
            continue
        if ev.get("images") is not None and ev.get("images") != len(per):
            problems.append(f"{label}: 'images' is {show(ev.get('images'))} but {len(per)} per-image scores are stored")
        for key in ("psnr", "ssim"):
            values = [p.get(key) for p in per]
            if not all(is_finite_number(v) for v in values):
                problems.append(f"{label}: a per-image {key} is not a finite number")
                continue
            mean = sum(values) / len(values)
            if not _close(ev.get(key), mean):
                problems.append(f"{label}: {key} {show(ev.get(key))} is not the mean of its {len(values)} per-image "
                                f"scores ({mean!r})")
            stored = (metrics.get(label) or {}).get(key) if isinstance(metrics.get(label), dict) else None
            if label in metrics and not _close(stored, ev.get(key)):
                problems.append(f"metrics[{label!r}] {key} {show(stored)} differs from its evaluation's "
                                f"{show(ev.get(key))}")
    for label in sorted(set(metrics) - labels):
        problems.append(f"metrics[{show(label)}] has no evaluation behind it")
    return problems


def kind_problems(folder: Path, summary: dict, files: list[str]) -> list[str]:
    """The summary's ``item`` and ``kind`` against the folder and what its files are."""
    problems = []
    if "item" in summary and summary["item"] != folder.name:
        problems.append(f"its summary says it is item {show(summary['item'])}, not {folder.name}")
    kind = summary.get("kind")
    evaluations = holds_evaluations({k: v for k, v in summary.items() if k != "kind"})
    network = holds_network(files)
    if not isinstance(kind, str) or kind not in KNOWN_KINDS:
        problems.append(f"its summary's kind {show(kind)} is not one of {', '.join(KNOWN_KINDS)} (checked by its "
                        f"files)")
    elif evaluations and kind not in SCORED_KINDS:
        problems.append(f"its summary says kind {kind!r} but holds evaluations (checked as an evaluation)")
    elif SUPERNET_FILE in files and kind != "search":
        problems.append(f"its summary says kind {kind!r} but it holds {SUPERNET_FILE}, a search's supernet")
    elif network != (kind == "train"):
        problems.append(f"its summary says kind {kind!r} but its files " + (
            "hold a network (checked as one)" if network else "hold no network (network.json, weights.safetensors)"))
    return problems


def derived_problems(summary: dict) -> list[str]:
    """Claims a summary derives from its own measurements: a benchmark's ratios are the quotients of
    what it measured (and its ``metrics`` repeat them); a run's ``metrics`` repeat its engine's; a
    random search's best sample is the best-scored one and its ``metrics`` repeat that sample's."""
    problems = []
    metrics = summary.get("metrics") if isinstance(summary.get("metrics"), dict) else {}
    mem = summary.get("supernet_memory")
    if isinstance(mem, dict):
        for ratio, key in RATIOS.items():
            try:
                quotient = mem["eq6"][key] / mem["eq5"][key]
            except (KeyError, TypeError, ZeroDivisionError, IndexError, OverflowError):
                problems.append(f"supernet_memory has no eq5/eq6 {key} to derive its {ratio} from")
                continue
            if not _close(mem.get(ratio), quotient):
                problems.append(f"supernet_memory {ratio} {show(mem.get(ratio))} is not eq6/eq5 {key} ({quotient!r})")
            elif ratio in metrics and not _close(metrics[ratio], mem[ratio]):
                problems.append(f"metrics {ratio} {show(metrics[ratio])} is not its supernet_memory's")
    speed = summary.get("search_speed")
    variants = speed.get("variants") if isinstance(speed, dict) else None
    if isinstance(variants, dict) and isinstance(variants.get("fp32"), dict):
        for name, v in variants.items():
            try:
                quotient = variants["fp32"]["step_seconds"] / v["step_seconds"]
            except (KeyError, TypeError, ZeroDivisionError, OverflowError):
                problems.append(f"search_speed {show(name)} has no step_seconds to derive its speed-up from")
                continue
            if "speedup_vs_fp32" in v and not _close(v["speedup_vs_fp32"], quotient):
                problems.append(f"search_speed {show(name)} speedup_vs_fp32 {show(v['speedup_vs_fp32'])} is not "
                                f"fp32/its step_seconds ({quotient!r})")
    scores = summary.get("scores") if summary.get("kind") == "rsws" else None
    if scores is not None:
        try:
            best = max(range(len(scores)), key=lambda i: scores[i]["score"])
            claimed = scores[summary["best"]]
            if claimed["score"] != scores[best]["score"]:
                problems.append(f"rsws best {show(summary['best'])} is not the best-scored sample ({best})")
            for key, field in (("val_psnr", "psnr"), ("val_ssim", "ssim"), ("score", "score")):
                if not _close(metrics.get(key), claimed[field]):
                    problems.append(f"metrics {key} {show(metrics.get(key))} is not its best sample's")
        except (KeyError, TypeError, IndexError, ValueError):
            problems.append("rsws scores or best are not a list of scored samples and an index into it")
    engine = summary.get("engine_summary")
    if isinstance(engine, dict):
        for key, value in metrics.items():
            if key in engine and value != engine[key] and not _close(value, engine[key]):
                problems.append(f"metrics {show(key)} {show(value)} is not its engine's {show(engine[key])}")
    return problems


def summary_problems(folder: Path, summary: dict, *, kind: bool = True) -> tuple[list[str], list[str]]:
    """(problems, missing files) of a finished item's summary: its item and kind (unless ``kind`` is
    False), its paths, its files, its aggregates. A path that is absolute or leaves the folder is a
    problem, never followed."""
    problems, missing = (kind_problems(folder, summary, item_files(folder)[0]) if kind else []), []
    files = summary.get("files", [])
    if not isinstance(files, list):
        problems.append("'files' is not a list of file names")
        files = []
    for name in files:
        safe = safe_relative(name)
        if safe is None:
            problems.append(f"'files' names {show(name)}: an absolute path or one leaving the item folder (not "
                            f"followed)")
            continue
        p = folder / safe
        if p.is_symlink() or (os.path.lexists(p) and not inside(p, folder)):
            problems.append(f"'files' names {show(safe)}, a symbolic link (not followed)")
        elif not p.is_file():
            missing.append(safe)
    for key in ITEM_KEYS:
        if key not in summary:
            continue
        name = summary[key]
        if safe_relative(name) is None or "/" in name or name == ".":
            problems.append(f"'{key}' is {show(name)}: not an item of this results folder (not followed)")
        elif (folder.parent / name).is_symlink() or not inside(folder.parent / name, folder.parent):
            problems.append(f"'{key}' names {show(name)}, a symbolic link (not followed)")
    problems += derived_problems(summary)
    curve = summary.get("curve")
    if isinstance(curve, dict) and "file" in curve and safe_relative(curve["file"]) is None:
        problems.append(f"'curve.file' is {show(curve['file'])}: a path leaving the item folder (not followed)")
    if holds_evaluations(summary):
        if summary.get("kind") == "baseline":
            from hinas.eval.evaluation import BASELINES

            if summary.get("method") not in BASELINES or "network" in summary:
                problems.append(f"a baseline summary names method {show(summary.get('method'))} (one of "
                                f"{', '.join(BASELINES)}, and no network)")
        elif "network" not in summary:
            problems.append("an eval summary without 'network'")
        problems += aggregate_problems(summary)
    return problems, missing


def check_network(folder: Path, summary: dict) -> str | None:
    """None when the eval item's network folder is a finished item whose manifest checks."""
    net = check_item(folder.parent / summary["network"])
    if net["state"] != "done":
        return f"its network {summary['network']} is {net['state'].upper()}: {net['problem'] or 'not finished'}"
    return None


def network_of(net_dir: Path, cache: dict):
    """``(model, spec)`` of a finished network item (cached), or the reason it is none."""
    key = str(net_dir)
    if key not in cache:
        files = item_files(net_dir)[0]
        net, found = file_checks(net_dir, files, None) if holds_network(files) else (None, [])
        cache[key] = net if net is not None else (f"CORRUPT: {found[0]}" if found else NO_NETWORK)
    return cache[key]


def verify(results, *, images: int | None = 3, data_root=None) -> dict:
    """Check every item under ``results`` and re-evaluate every stored network on the CPU on the
    verifier's own data (``data_root``, else ``$HINAS_DATA``, else the embedded photos only)."""
    from hinas.safeio import one_line

    results = Path(results)
    if not results.is_dir():
        raise HinasError(f"{results}: no such results folder; give the --results folder of 'hinas campaign run'")
    if images is not None and (isinstance(images, bool) or not isinstance(images, int) or images < 1):
        raise HinasError(f"--images must be at least 1, got {images}")
    root = trusted_data_root(data_root)  # a DataError (exit 2) when it is not a folder
    networks: dict[str, dict] = {}
    problems, incomplete, items, notes, evaluations, loaded = [], [], [], [], [], {}

    def problem(path, state: str, reason: str) -> None:
        problems.append({"path": str(path), "state": state, "reason": one_line(reason)})

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
        files = item_files(folder)[0]
        net, found = file_checks(folder, files, summary)  # by its files, whether or not an evaluation names it
        if holds_network(files):
            loaded[str(folder)] = net if net is not None else (f"CORRUPT: {found[0]}" if found else NO_NETWORK)
        for reason in found:
            problem(folder, "corrupt", reason)
        if summary is None:
            continue
        for reason in kind_problems(folder, summary, files):  # reported; checked by its files all the same
            problem(folder, "corrupt", reason)
        found, missing = summary_problems(folder, summary, kind=False)
        for reason in found:
            problem(folder, "corrupt", reason)
        if missing:
            incomplete.append({"path": str(folder), "missing": missing})
            problem(folder, "incomplete", f"{', '.join(missing)} named in its summary but missing")
        if not (found or missing) and holds_evaluations(summary):
            evaluations.append((folder, summary))
    for folder, summary in evaluations:
        note = data_root_note(summary, root)
        if note:
            notes.append({"path": str(folder), "note": note})
        if summary.get("kind") == "baseline":  # its method scored again, on the verifier's data
            net, found = baseline_of(summary)
        else:
            reason = check_network(folder, summary)
            if reason:
                problem(folder, "incomplete", reason)
                continue
            net = network_of(folder.parent / summary["network"], loaded)
            if isinstance(net, str):
                problem(folder, "corrupt", f"its network {summary['network']} "
                                           f"{net if net.startswith('holds') else 'is ' + net}")
                continue
            found = evaluations_problems(summary, net)
        if found:
            problem(folder, "corrupt", "; ".join(found))
            continue
        checks = []
        for ev in summary["evaluations"]:
            try:
                check = rescore_evaluation(ev, *net, images=images, root=root)
            except NotRescored as exc:
                problem(folder, "unverified", str(exc))
                continue
            except Malformed as exc:
                problem(folder, "corrupt", str(exc))
                continue
            checks.append({"evaluation": folder.name, **check})
            if not check["match"]:
                problem(folder, "corrupt", f"re-scored on the CPU, {evaluation_label(ev)}: "
                                           f"{'; '.join(check['differs'])}")
        if checks:
            entry = network_entry(networks, folder, summary)
            entry["checked"] += checks
            for key in ("max_diff_db", "max_diff_ssim"):
                entry[key] = max([entry[key], *(c[key] for c in checks)])
            entry["match"] = entry["match"] and all(c["match"] for c in checks)
    nets = list(networks.values())
    if not nets:
        problem(results, "empty", "no evaluated network was re-evaluated (no finished eval item whose manifest "
                                  "checks and whose evaluations the verifier's data can score) under this folder, "
                                  "so nothing is verified")
    return {"results": str(results), "images": images, "data_root": str(root) if root is not None else None,
            "tolerance_db": TOLERANCE_DB, "tolerance_ssim": TOLERANCE_SSIM, "networks": nets,
            "incomplete": incomplete, "items": items, "problems": problems, "notes": notes,
            "match": not problems and all(n["match"] for n in nets)}


def baseline_of(summary: dict):
    """``((restore_fn, spec), problems)`` of a baseline item: its method's restorer at each stored
    evaluation's sigma (one sigma per item), and why its evaluations cannot be that method's."""
    from hinas.eval.evaluation import baseline_restorer

    spec = {"task": "denoise"}
    evs = summary.get("evaluations") or []
    found = [r for r in (evaluation_problem(ev, spec) for ev in evs) if r]
    sigmas = {ev.get("sigma") for ev in evs if isinstance(ev, dict)}
    if not found and len(sigmas) != 1:
        found.append(f"a baseline item scores one noise level, its evaluations have {sorted(map(str, sigmas))}")
    if found:
        return (None, spec), found
    try:
        return (baseline_restorer(summary["method"], float(sigmas.pop())), spec), []
    except HinasError as exc:
        return (None, spec), [str(exc)]


def network_entry(networks: dict, folder: Path, summary: dict) -> dict:
    net_dir = folder if summary.get("kind") == "baseline" else folder.parent / summary["network"]
    return networks.setdefault(str(net_dir), {"path": str(net_dir), "device": summary.get("device"),
                                              "match": True, "max_diff_db": 0.0, "max_diff_ssim": 0.0,
                                              "checked": []})
