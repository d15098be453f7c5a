"""The files of a results folder: JSON in and out, progress, copies, work folders, the lock.

* Every JSON file is written atomically (temp file + rename: a full disk or a permission error
  names the path and leaves no ``.tmp`` behind) and holds only finite numbers (:func:`jsonable`:
  NaN and infinities become ``null``), so every reader, and every ``--json`` output, parses it.
* Each item works in ``DIR/<item>/``; its only work folders are :data:`WORK` (``run/``,
  ``parts/`` and ``run.budget.json``), the only things the campaign ever deletes, and only once
  the item's ``done`` marker stands on a manifest that checks (:mod:`hinas.campaign.manifest`).
* :func:`results_lock`: one exclusive ``flock`` on the results folder itself for the life of a
  ``campaign run`` or ``campaign seal``; a second call on the same folder is refused before it
  writes anything.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import shutil
import threading
from pathlib import Path

from hinas.errors import HinasError
from hinas.safeio import names_file, quote, write_bytes_durably

DONE = "done"
MANIFEST = "manifest.json"
SUMMARY = "summary.json"
ERROR = "error.json"
WORK = ("run", "parts", "run.budget.json")  # an item's work folders/files: never part of its results


def jsonable(obj):
    """``obj`` with every non-finite float replaced by None (valid JSON, never NaN/Infinity)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def dumps(obj, **kw) -> str:
    return json.dumps(jsonable(obj), allow_nan=False, default=str, **kw)


def write_json(path: Path, obj) -> None:
    """Atomically, finite numbers only; a failure names the path and leaves no temp file."""
    from hinas.safeio import atomic_write_text

    path = Path(path)
    with names_file(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, dumps(obj, indent=1) + "\n")


def read_json(path: Path, default=None):
    """A JSON file, or ``default`` when it is missing, unreadable or not JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError):
        return default


def copy_file(src: Path, dst: Path) -> None:
    """A plain copy, stamped now, written atomically (no half file on a full disk)."""
    with names_file(src):
        data = Path(src).read_bytes()
    write_bytes_durably(dst, data)


def copy_files(src: Path, dst: Path, names) -> list[str]:
    # plain copies, stamped now: the window's archive takes the files written since the call
    # began, and a file the run wrote in an earlier window (config.yaml of a resumed training)
    # must still travel with the finished item (copy2 kept the old time and left it behind)
    copied = []
    if (src.parent / "run.budget.json").exists():  # the time-budget plan (hinas.engine.budget)
        copy_file(src.parent / "run.budget.json", dst / "budget.json")
        copied.append("budget.json")
    for name in names:
        if (src / name).exists():
            copy_file(src / name, dst / name)
            copied.append(name)
    return copied


def remove_work(folder: Path) -> None:
    """Delete an item's work folders (:data:`WORK`), nothing else; never through a symlink."""
    for name in WORK:
        p = folder / name
        if p.is_symlink():
            continue  # not ours: a link is never followed, nor removed
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        elif p.is_file():
            p.unlink(missing_ok=True)


class Progress:
    """``DIR/<item>/progress.json``: pieces run so far, seconds spent, the last piece's result."""

    def __init__(self, folder: Path):
        self.path = folder / "progress.json"
        self.data = read_json(self.path, {}) or {}
        if not isinstance(self.data, dict):
            self.data = {}
        self.data.setdefault("pieces", 0)
        self.data.setdefault("seconds", 0.0)
        self.data.setdefault("history", [])

    def piece(self, seconds: float, result: dict) -> None:
        self.data["pieces"] += 1
        self.data["seconds"] = round(self.data["seconds"] + seconds, 3)
        self.data["last"] = result
        self.data["history"].append({"seconds": round(seconds, 3), **result})
        write_json(self.path, self.data)


# ---------------------------------------------------------------------------------------------
# the lock: one campaign call per results folder
# ---------------------------------------------------------------------------------------------
_HELD: dict[str, list] = {}  # resolved folder -> [fd, depth]: re-entrant within one process
_HELD_GUARD = threading.Lock()


class ResultsBusy(HinasError):
    """Another ``campaign run``/``seal`` holds the results folder."""


@contextlib.contextmanager
def results_lock(results):
    """Hold the exclusive lock of ``results`` (created when missing) for the ``with`` block.

    A second process asking for it is refused at once (:class:`ResultsBusy`, exit 2); the same
    process may take it again (``campaign run`` locks, then :func:`run_campaign` does)."""
    results = Path(results)
    if results.exists() and not results.is_dir():
        raise HinasError(f"--results {quote(results)}: exists and is not a folder; give a folder")
    with names_file(results):
        results.mkdir(parents=True, exist_ok=True)
    key = str(results.resolve())
    with _HELD_GUARD:
        held = _HELD.get(key)
        if held is not None:
            held[1] += 1
        else:
            fd = os.open(key, os.O_RDONLY | os.O_DIRECTORY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise ResultsBusy(f"--results {quote(results)}: another 'hinas campaign run' or 'seal' is "
                                      f"working in this folder (it holds the folder's lock); wait for it to end "
                                      f"or use another results folder") from None
                raise
            _HELD[key] = [fd, 1]
    try:
        yield results
    finally:
        with _HELD_GUARD:
            held = _HELD[key]
            held[1] -= 1
            if held[1] == 0:
                del _HELD[key]
                fcntl.flock(held[0], fcntl.LOCK_UN)
                os.close(held[0])
