"""Manifests: what a finished item's folder holds, byte for byte, and the check of it.

``DIR/<item>/manifest.json`` is written just before the item's ``done`` marker (by the runner,
or by ``hinas campaign seal`` for items finished before manifests existed): every file of the
item folder but its work folders (``run/``, ``parts/``, ``run.budget.json``), ``done``,
``error.json`` and the manifest itself, each with its size and sha256, and the summary's own
hash (``summary_sha256``). :func:`check_item` is what ``status``, ``run``, ``verify`` and
``seal`` trust:

* ``done``: a ``done`` marker and a manifest whose every file is there, a regular file (never a
  symbolic link), of its size and hash;
* ``corrupt``: a file differs from the manifest (named), the manifest is unreadable, or a file
  is a symbolic link;
* ``incomplete``: a file of the manifest is missing (named), or a ``done`` marker without a
  manifest or a summary;
* ``pending``: no ``done`` marker.

A file in the folder that the manifest does not list is reported (``unlisted``), never read.
"""

from __future__ import annotations

import os
import time
from pathlib import Path, PurePosixPath

from hinas.campaign.folders import DONE, ERROR, MANIFEST, SUMMARY, WORK, write_json
from hinas.errors import HinasError
from hinas.safeio import quote, sha256_file

FORMAT = 1
NOT_LISTED = {DONE, MANIFEST, ERROR, *WORK}


def safe_relative(name) -> str | None:
    """``name`` as a plain relative POSIX path inside a folder, or None when it is absolute,
    empty, not a string, or climbs out (``..``)."""
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name:
        return None
    p = PurePosixPath(name)
    if p.is_absolute() or any(part in ("..", "") for part in p.parts) or name.startswith("~"):
        return None
    return str(p)


def inside(path: Path, folder: Path) -> bool:
    """``path`` (symlinks resolved) lies within ``folder`` (resolved)."""
    try:
        return Path(os.path.realpath(path)).is_relative_to(Path(os.path.realpath(folder)))
    except (OSError, ValueError):
        return False


def item_files(folder: Path) -> tuple[list[str], list[str]]:
    """(regular files, links and special files) of an item folder, relative POSIX paths, sorted; the
    work folders, ``done``, ``error.json``, the manifest and ``*.tmp`` are left out."""
    files, links = [], []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        here = Path(dirpath)
        top = here == folder
        for d in list(dirnames):
            if (top and d in WORK) or (here / d).is_symlink():
                dirnames.remove(d)
                if not (top and d in WORK):
                    links.append((here / d).relative_to(folder).as_posix())
        for f in filenames:
            if (top and f in NOT_LISTED) or f.endswith(".tmp"):
                continue
            rel = (here / f).relative_to(folder).as_posix()
            odd = (here / f).is_symlink() or not (here / f).is_file()  # a link, a pipe, a device: never read
            (links if odd else files).append(rel)
    return sorted(files), sorted(links)


def build_manifest(folder: Path, item: str, **extra) -> dict:
    files, links = item_files(folder)
    if links:
        raise HinasError(f"{quote(folder / links[0])}: a symbolic link or special file in an item folder (hinas "
                         f"writes none); replace it by the file or remove it")
    if SUMMARY not in files:
        raise HinasError(f"{quote(folder)}: no {SUMMARY}; an item is sealed only with its summary")
    listed = {}
    for rel in files:
        p = folder / rel
        listed[rel] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
    return {"format": FORMAT, "item": item, "files": listed, "summary_sha256": listed[SUMMARY]["sha256"],
            "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **extra}


def write_manifest(folder: Path, item: str, **extra) -> dict:
    """Hash every file of the item folder into ``manifest.json`` (call it just before ``done``)."""
    manifest = build_manifest(Path(folder), item, **extra)
    write_json(Path(folder) / MANIFEST, manifest)
    return manifest


def _problem(state: str, reason: str, **more) -> dict:
    return {"state": state, "problem": reason, **more}


def check_item(folder) -> dict:
    """``{"state": done|corrupt|incomplete|pending, "problem": str|None, "unlisted": [...]}``."""
    from hinas.safeio import load_json_file

    folder = Path(folder)
    marker = folder / DONE
    if folder.is_symlink():
        return _problem("corrupt", f"{quote(folder)} is a symbolic link; an item folder is never followed")
    if not (marker.exists() or marker.is_symlink()):
        return {"state": "pending", "problem": None}
    summary = folder / SUMMARY
    if not (folder / MANIFEST).exists() and not (folder / MANIFEST).is_symlink():
        if not summary.is_file():
            return _problem("incomplete", f"a '{DONE}' marker without {SUMMARY} or {MANIFEST}: the item did not "
                                          f"finish; move {quote(folder)} away to run it again")
        return _problem("incomplete", f"a '{DONE}' marker without {MANIFEST} (finished before manifests, or cut "
                                      f"short): 'hinas campaign seal --results {quote(folder.parent)}' checks and "
                                      f"seals it")
    if (folder / MANIFEST).is_symlink() or marker.is_symlink():
        return _problem("corrupt", f"{MANIFEST} or '{DONE}' is a symbolic link")
    try:
        manifest = load_json_file(folder / MANIFEST, "manifest")
    except HinasError as exc:
        return _problem("corrupt", f"{MANIFEST} is unreadable ({exc})")
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or SUMMARY not in files \
            or manifest.get("summary_sha256") != (files.get(SUMMARY) or {}).get("sha256"):
        return _problem("corrupt", f"{MANIFEST} is not a manifest of this item (no {SUMMARY} hash)")
    present, links = item_files(folder)
    if links:
        return _problem("corrupt", f"{links[0]} is a symbolic link or special file (never followed)", file=links[0])
    for rel, entry in sorted(files.items()):
        safe = safe_relative(rel)
        if safe is None or safe.split("/")[0] in NOT_LISTED:
            return _problem("corrupt", f"{MANIFEST} names {rel!r}, a path outside the item's results")
        p = folder / safe
        if not p.is_file():
            return _problem("incomplete", f"{safe} is missing (listed in {MANIFEST}); unpack every window's archive "
                                          f"in order, or move {quote(folder)} away to run the item again", file=safe)
        if not isinstance(entry, dict) or p.stat().st_size != entry.get("size") \
                or sha256_file(p) != entry.get("sha256"):
            return _problem("corrupt", f"{safe} differs from {MANIFEST} (size or sha256): it changed after the item "
                                       f"finished", file=safe)
    unlisted = [f for f in present if f not in files]
    return {"state": "done", "problem": None, "unlisted": unlisted}


def item_folders(results) -> list[Path]:
    """Item folders under ``results`` (recursively, without following links or entering an
    item's own sub-folders): folders holding a ``done`` marker, a summary or a manifest, and
    linked folders (reported by :func:`check_item`, never followed)."""
    results = Path(results)
    found = []
    for dirpath, dirnames, filenames in os.walk(results, followlinks=False):
        here = Path(dirpath)
        if here != results and set(filenames) & {DONE, SUMMARY, MANIFEST}:
            found.append(here)
            dirnames[:] = []
            continue
        links = [d for d in dirnames if (here / d).is_symlink()]
        found.extend(here / d for d in links)
        dirnames[:] = sorted(d for d in dirnames if d not in links)
    return sorted(found)
