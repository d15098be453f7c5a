"""``hinas campaign seal``: manifests for items finished before manifests existed, once checked.

A ``done`` item without a manifest is sealed only when it passes what ``hinas verify`` checks of
it, by what its files are (:mod:`hinas.campaign.verify`, :mod:`hinas.campaign.rescore`): its
summary parses and its kind agrees with its files, every path it names stays inside the results
folder, every file it names is there (and no file of the folder is a link); every network in its
files loads (finite, fitting its ``network.json``; ``params``/``flops`` its own); an evaluation's
fields are ones hinas writes, its aggregates are the means of its per-image scores, and its
network, re-evaluated on the CPU on the caller's own data root (never the summary's; first
``images`` images of every evaluation), gives its stored PSNR and SSIM within
:data:`~hinas.campaign.rescore.TOLERANCE_DB` / :data:`~hinas.campaign.rescore.TOLERANCE_SSIM`,
after its network item is itself sealed. Items holding evaluations are sealed last. Nothing else
is written; an item that fails is left as it is and reported; a manifest that exists is never
rewritten (a failing one is reported). An evaluation the caller's data cannot score stops the
call (a :class:`~hinas.errors.DataError`, exit 2), nothing more sealed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from hinas.campaign.folders import DONE, MANIFEST, SUMMARY, results_lock
from hinas.campaign.manifest import check_item, item_files, write_manifest
from hinas.campaign.plan import KINDS
from hinas.campaign.rescore import (Malformed, evaluations_problems, file_checks, holds_network,
                                    rescore_evaluation, trusted_data_root)
from hinas.campaign.verify import check_network, holds_evaluations, load_summary, network_of, summary_problems
from hinas.errors import DataError, HinasError


def done_folders(results: Path) -> list[Path]:
    return sorted(p for p in results.iterdir() if p.is_dir() and not p.is_symlink() and os.path.lexists(p / DONE))


def seal(results, *, items=None, images: int | None = 3, data_root=None, log=None) -> dict:
    """Check and seal the ``done`` items of ``results`` (all, or those named in ``items``) that
    have no manifest; the report lists what was sealed, already sealed, and refused (why)."""
    results = Path(results)
    log = log or (lambda msg: None)
    if not results.is_dir():
        raise HinasError(f"--results {results}: no such results folder")
    if images is not None and images < 1:
        raise HinasError(f"--images must be at least 1, got {images}")
    root = trusted_data_root(data_root)  # the caller's own, never a summary's; not a folder: exit 2
    folders = {p.name: p for p in done_folders(results)}
    if items:
        unknown = [n for n in items if n not in folders]
        if unknown:
            raise HinasError(f"--items {', '.join(unknown)}: not a finished item of {results} (finished: "
                             f"{', '.join(folders) or 'none'})")
        folders = {n: folders[n] for n in items}
    report = {"results": str(results), "images": images, "sealed": [], "already": [], "refused": []}
    with results_lock(results):
        candidates = []
        for name, folder in folders.items():
            check = check_item(folder)
            if check["state"] == "done":
                report["already"].append(name)
            elif os.path.lexists(folder / MANIFEST) or not (folder / SUMMARY).is_file():
                report["refused"].append({"item": name, "state": check["state"], "reason": check["problem"]})
            else:
                candidates.append(folder)
        summaries = {}
        for folder in candidates:
            try:
                summaries[folder.name] = load_summary(folder)
            except HinasError as exc:
                report["refused"].append({"item": folder.name, "state": "corrupt", "reason": f"unreadable summary "
                                                                                             f"({exc})"})
        for folder in sorted((f for f in candidates if f.name in summaries),
                             key=lambda f: (holds_evaluations(summaries[f.name]), f.name)):
            try:
                checked = _check(folder, images, root)
                write_manifest(folder, folder.name, sealed={"by": "hinas campaign seal", "checked": checked,
                                                            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
            except _Refused as exc:
                report["refused"].append({"item": folder.name, "state": exc.state, "reason": str(exc)})
                log(f"{folder.name}: not sealed ({exc})")
                continue
            except DataError:
                raise  # the data root of the call, not the item: nothing sealed, exit 2
            except HinasError as exc:
                report["refused"].append({"item": folder.name, "state": "corrupt", "reason": str(exc)})
                log(f"{folder.name}: not sealed ({exc})")
                continue
            report["sealed"].append({"item": folder.name, "kind": summaries[folder.name].get("kind"),
                                     "checked": checked})
            log(f"{folder.name}: sealed ({checked})")
    report["ok"] = not report["refused"]
    return report


class _Refused(HinasError):
    def __init__(self, state: str, reason: str):
        super().__init__(reason)
        self.state = state


def _check(folder: Path, images, root) -> str:
    """What was checked of ``folder`` (raises :class:`_Refused` when something does not hold)."""
    summary = load_summary(folder)
    kind = summary.get("kind")
    if kind not in KINDS or summary.get("item") not in (None, folder.name):
        raise _Refused("corrupt", f"the summary is not this item's (kind {kind!r}, item {summary.get('item')!r})")
    problems, missing = summary_problems(folder, summary)
    if problems:
        raise _Refused("corrupt", "; ".join(problems))
    if missing:
        raise _Refused("incomplete", f"{', '.join(missing)} named in its summary but missing")
    checked = f"summary parses; the {len(summary.get('files') or [])} files it names exist"
    files = item_files(folder)[0]
    _, found = file_checks(folder, files, summary)  # by its files, whatever its kind
    if found:
        raise _Refused("corrupt", "; ".join(found))
    if holds_network(files):
        checked += "; its weights load (finite, fitting network.json); params and FLOPs are its network's"
    if holds_evaluations(summary):
        reason = check_network(folder, summary)
        if reason:
            raise _Refused("incomplete", reason)
        net = network_of(folder.parent / summary["network"], {})
        if isinstance(net, str):
            raise _Refused("corrupt", f"its network {summary['network']} "
                                      f"{net if net.startswith('holds') else 'is ' + net}")
        found = evaluations_problems(summary, net)
        if found:
            raise _Refused("corrupt", "; ".join(found))
        checks = []
        for ev in summary["evaluations"]:
            try:  # NotRescored (the caller's data root lacks it) is a DataError: the call stops, exit 2
                checks.append(rescore_evaluation(ev, *net, images=images, root=root))
            except Malformed as exc:
                raise _Refused("corrupt", str(exc)) from None
        worst_db = max(c["max_diff_db"] for c in checks)
        worst_ssim = max(c["max_diff_ssim"] for c in checks)
        if not all(c["match"] for c in checks):
            raise _Refused("corrupt", f"re-evaluated on the CPU, its scores differ by up to {worst_db:.4f} dB "
                                      f"(SSIM {worst_ssim:.4f}): "
                                      + "; ".join(d for c in checks for d in c.get("differs", [])))
        checked = (f"summary parses; aggregates are the means of the per-image scores; re-evaluated on the CPU "
                   f"({len(checks)} evaluations, first {images or 'all'} images): max {worst_db:.4f} dB and "
                   f"{worst_ssim:.4f} SSIM from the stored scores")
    return checked
