"""``hinas campaign seal``: manifests for items finished before manifests existed, once checked.

A ``done`` item without a manifest is sealed only when it passes what ``hinas verify`` checks of
it: its summary parses, every path it names stays inside the results folder, every file it
names is there (and no file of the folder is a link); a train item's weights load (finite,
fitting its ``network.json``); an eval item's aggregates are the means of its per-image scores
and its network, re-evaluated on the CPU (first ``images`` images of every evaluation), gives
its stored scores within :data:`hinas.campaign.verify.TOLERANCE_DB`, after its network item is
itself sealed. Train, search and bench items are sealed before eval items. Nothing else is
written; an item that fails is left as it is and reported; a manifest that exists is never
rewritten (a failing one is reported).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from hinas.campaign.folders import DONE, MANIFEST, SUMMARY, results_lock
from hinas.campaign.manifest import check_item, write_manifest
from hinas.campaign.plan import KINDS
from hinas.campaign.verify import check_network, load_summary, reevaluate, summary_problems
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
        kinds = {}
        for folder in candidates:
            try:
                kinds[folder.name] = load_summary(folder).get("kind")
            except HinasError as exc:
                report["refused"].append({"item": folder.name, "state": "corrupt", "reason": f"unreadable summary "
                                                                                             f"({exc})"})
        for folder in sorted((f for f in candidates if f.name in kinds), key=lambda f: (kinds[f.name] == "eval",
                                                                                        f.name)):
            try:
                checked = _check(folder, images, data_root)
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
            report["sealed"].append({"item": folder.name, "kind": kinds[folder.name], "checked": checked})
            log(f"{folder.name}: sealed ({checked})")
    report["ok"] = not report["refused"]
    return report


class _Refused(HinasError):
    def __init__(self, state: str, reason: str):
        super().__init__(reason)
        self.state = state


def _check(folder: Path, images, data_root) -> str:
    """What was checked of ``folder`` (raises :class:`_Refused` when something does not hold)."""
    from hinas.network_file import load_trained

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
    if kind == "train":
        load_trained(folder, "best", "cpu")  # finite weights that fit network.json, or a HinasError
        checked += "; its weights load (finite, fitting network.json)"
    if kind == "eval":
        reason = check_network(folder, summary)
        if reason:
            raise _Refused("incomplete", reason)
        entry = {"match": True, "max_diff_db": 0.0, "checked": []}
        try:
            reevaluate(folder, summary, images=images, data_root=data_root, entry=entry)
        except (KeyError, TypeError, IndexError) as exc:
            raise _Refused("corrupt", f"a malformed evaluation ({exc.__class__.__name__}: {exc})") from None
        if not entry["match"]:
            raise _Refused("corrupt", f"re-evaluated on the CPU, its scores differ by up to "
                                      f"{entry['max_diff_db']:.4f} dB")
        checked = (f"summary parses; aggregates are the means of the per-image scores; re-evaluated on the CPU "
                   f"({len(entry['checked'])} evaluations, first {images or 'all'} images): max "
                   f"{entry['max_diff_db']:.4f} dB from the stored scores")
    return checked
