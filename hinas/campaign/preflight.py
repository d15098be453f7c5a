"""The whole call checked before the first item runs or anything is written.

``--budget`` finite and positive; ``--device`` (and each pending item's device) one of cpu,
cuda, cuda:N and present (:func:`hinas.engine.common.check_device`); ``--data-root`` a folder
holding what the pending items need (their training sets, test sets and curve sets); the
``--set`` settings valid for every search/train item; ``--archive`` writable, outside the
results folder, not a folder. A failure is one :class:`~hinas.errors.ConfigError` line (exit 2).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hinas.campaign.plan import Plan
from hinas.campaign.options import item_config
from hinas.engine.budget import check_budget  # noqa: F401 (the campaign's budget check: re-exported)
from hinas.errors import ConfigError, DataError, HinasError
from hinas.safeio import check_path, quote


def check_archive(archive, results) -> Path:
    """``archive`` as a file that can be written: not a folder, not inside ``results``, its
    folder existing (writable) or creatable. Nothing is created here."""
    target = Path(archive).expanduser()
    q = quote(archive)
    if not target.name or str(archive).endswith(os.sep):
        raise ConfigError(f"--archive {q}: give a file name such as OUT/results.tgz")
    if target.is_dir():
        raise ConfigError(f"--archive {q}: is a folder; give a file inside it, e.g. {quote(target / 'results.tgz')}")
    if target.resolve().is_relative_to(Path(results).resolve()):
        raise ConfigError(f"--archive {q}: must not be inside --results {quote(results)}; choose another folder")
    parent = target.parent
    while not parent.exists():
        if parent.is_symlink():
            raise ConfigError(f"--archive {q}: {quote(parent)} is a dangling link; fix the path")
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"--archive {q}: {quote(parent)} is a file, not a folder; fix the path")
    try:  # a real probe (os.access says yes to root on read-only places); removed at once
        with tempfile.TemporaryFile(dir=parent, prefix=".hinas-probe-"):
            pass
    except OSError as exc:
        raise ConfigError(f"--archive {q}: cannot write in {quote(parent)} ({exc.strerror or exc.__class__.__name__}); "
                          f"choose a folder you can write to") from None
    if target.exists() and not os.access(target, os.W_OK):
        raise ConfigError(f"--archive {q}: exists and cannot be overwritten (permission denied); choose another file")
    return target


def pending_items(plan: Plan, results, only=None) -> list:
    """The plan's items that may run: not done, corrupt or incomplete (of ``only``, when given)."""
    from hinas.campaign.status import item_status

    results = Path(results)
    return [it for it in plan.items if (only is None or it.name in only)
            and item_status(results, it)["status"] in ("pending", "failed")]


def check_only(plan: Plan, only) -> tuple | None:
    """``--only`` names: each an item of the plan, else one line naming the unknown ones."""
    if only is None:
        return None
    names = tuple(only)
    known = {it.name for it in plan.items}
    unknown = [n for n in names if n not in known]
    if not names or unknown:
        raise ConfigError(f"--only: {', '.join(map(repr, unknown)) or 'no item'} is not an item of plan "
                          f"{plan.name!r}; give item names as 'hinas campaign status' lists them")
    return names


def check_call(plan: Plan, results, *, budget, device=None, data_root=None, settings: dict | None = None,
               only=None) -> None:
    """Refuse, before anything is written, a call whose inputs cannot work (one line, exit 2)."""
    from hinas.engine.common import check_device

    try:  # the command line's rule for paths (hinas.cli.PathArg), for callers of the library too
        results = Path(check_path(results, "folder", missing_ok=True, flag="--results"))
        if data_root is not None:
            check_path(data_root, "folder", flag="--data-root")
    except HinasError as exc:
        raise ConfigError(str(exc)) from None
    check_budget(budget)
    for inc in plan.includes:  # run first, each into its sibling folder: checked with the rest of the call
        check_call(inc, Path(results).parent / inc.name, budget=budget, device=device, data_root=data_root,
                   settings=settings)
    only = check_only(plan, only)
    if device is not None:
        check_device(device)
    if data_root is not None:
        _root(data_root)
    pending = pending_items(plan, results, only)
    for item in plan.items:  # the --set settings, with this call's device/data root, for every item
        if item.kind in ("search", "train"):
            item_config(item, device, data_root, settings)
    cache: dict = {}
    for item in pending:
        where = f"{plan.path}: item {item.name!r}"
        runs_as = plan.item(item.supernet_from) if item.kind == "rsws" else item  # rsws: as its search
        dev = item_config(runs_as, device, data_root, settings).device if runs_as.kind in ("search", "train") \
            else (device or "cpu")
        try:
            check_device(dev)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}{'' if device else ' (or give --device)'}") from None
        try:
            _check_data(plan, item, data_root, cache)
        except DataError as exc:
            raise ConfigError(f"{where}: {exc}") from None


def _root(data_root):
    from hinas.data.datasets import resolve_data_root

    try:
        return resolve_data_root(data_root)
    except DataError as exc:
        raise ConfigError(str(exc)) from None


def _training_needs(task: str, avail: dict) -> list[str]:
    """The sets :func:`hinas.data.datasets.task_datasets` reads for ``task`` (without decoding them)."""
    if task == "denoise":
        return ["BSDS500-train", "BSDS500-val", "BSDS500-test"]
    train = ["DIV2K-train"] if avail["DIV2K-train"]["found"] else ["BSDS500-train", "BSDS500-test"]
    tests = [n for n in ("Set5", "Set14", "B100", "Urban100", "Manga109") if avail[n]["found"]]
    return train + (tests[:1] or ["Set5"])


def _check_data(plan: Plan, item, data_root, cache: dict) -> None:
    """The datasets ``item`` reads exist under the data root (raises DataError naming the set)."""
    from hinas.data.datasets import EMBEDDED_SPLIT, canonical_name, list_datasets

    if "root" not in cache:
        cache["root"] = _root(data_root)
        cache["avail"] = list_datasets(cache["root"]) if cache["root"] is not None else None
    root, avail = cache["root"], cache["avail"]
    if item.kind in ("eval", "baseline"):
        task = item_config(plan.item(item.network_from), None, data_root).task if item.kind == "eval" else "denoise"
        names = item.options.get("datasets") or ["default"]
        names = names if isinstance(names, list) else [names]
        names = [("BSDS500-test" if task == "denoise" else "Set5") if n == "default" and root is not None else n
                 for n in names]
    else:
        runs_as = plan.item(item.supernet_from) if item.kind == "rsws" else item  # rsws reads its search's images
        task = item_config(runs_as, None, data_root).task if item.kind != "bench" else "denoise"
        names = _training_needs(task, avail) if root is not None else []
        curve = item.options.get("curve")
        if item.kind == "train" and isinstance(curve, dict) and curve.get("dataset"):
            names.append(curve["dataset"])
    for name in names:
        canon = canonical_name(str(name))
        if name == "default" or canon in EMBEDDED_SPLIT:
            continue
        if root is None:
            raise DataError(f"dataset {canon} needs a data root: give --data-root DIR or set HINAS_DATA")
        if not avail.get(canon, {}).get("found"):
            raise DataError(f"dataset {canon} not found under {root} (download it with 'python "
                            f"data_scripts/download.py'), or fix --data-root")
