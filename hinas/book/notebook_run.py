"""The chapters executed on another machine, sealed as a result (issue 22: papermill on a GPU, once).

``python -m hinas.book execute --profile smoke --device cuda --results results/paper``
executes the chapter notebooks with papermill, as the book build does (same parameters cell,
same side-by-side order), into one item folder of a results tree, ``notebooks-<profile>-<device>``
(:func:`item_name`): the executed notebooks and ``summary.json`` (kind ``notebooks``: profile,
device, the machine's provenance, each notebook's seconds). The folder is written as
``<item>.partial`` and gets its name, its manifest (size and sha256 of every file) and the
``done`` marker of a campaign item only when every notebook ran, so ``hinas verify`` checks it
like any other item and a cut or failed attempt never looks finished (the next attempt replaces
it). The CPU build renders every such item whose manifest checks (:func:`sealed_runs`) in an
appendix and says on the intro page where and when it ran (:mod:`hinas.book.notebook_pages`).
"""

from __future__ import annotations

import importlib
import os
import shutil
import time
from pathlib import Path

from hinas.book.execute import STAMP_KEY, BookError, Paths, execute_notebooks, find_notebooks
from hinas.book.settings import REPO_ROOT
from hinas.campaign.folders import DONE, SUMMARY, read_json, results_lock, write_json
from hinas.campaign.manifest import check_item, item_folders, write_manifest
from hinas.errors import HinasError
from hinas.safeio import quote

KIND = "notebooks"  # summary kind of a sealed run of the chapters
PARTIAL = ".partial"  # suffix of the folder an attempt works in
NEEDED = ("papermill", "ipykernel", "ipywidgets", "nbformat")  # what executing the chapters imports


def item_name(profile: str, device: str, chapters: list[str] | None = None) -> str:
    """``notebooks-<profile>-<cpu|cuda>``: one sealed run of all chapters per profile and kind of
    device; a run of some chapters only adds their numbers (``...-cpu-02-03``)."""
    name = f"notebooks-{profile}-{'cuda' if str(device).startswith('cuda') else 'cpu'}"
    return name + "".join(f"-{c}" for c in chapters) if chapters else name


def missing_packages() -> list[str]:
    """The packages executing the chapters needs that this Python cannot import, each with the
    reason where it is installed but its own import fails (papermill without ``attrs``, seen in a
    rehearsal of the GPU machine's Python: found by name, it failed in every chapter at once)."""
    missing = []
    for name in NEEDED:
        try:
            importlib.import_module(name)
        except Exception as exc:  # ImportError, or whatever the package's own import raises
            absent = isinstance(exc, ModuleNotFoundError) and exc.name == name
            missing.append(name if absent else f"{name} ({exc.__class__.__name__}: {exc})")
    return missing


def execute_into(results, profile: str, device: str, *, seed: int = 0, data_root: str | None = None,
                 runs_root: str | None = None, jobs: int | None = None, timeout: int | None = None,
                 only: list[str] | None = None, root: Path = REPO_ROOT, command: str | None = None,
                 log=print) -> Path | None:
    """Execute the chapters into ``results/<item>`` and seal it; the item folder, or None when it
    was already sealed (nothing to do). Raises :class:`HinasError` (a bad call, checked before
    the first write) or :class:`BookError` (a notebook failed: the attempt stays in ``.partial``)."""
    from hinas.engine.common import check_device, provenance
    from hinas.engine.config import PROFILES

    if profile not in PROFILES:
        raise HinasError(f"--profile {profile!r} is not one of {', '.join(PROFILES)}")
    device = check_device(device)
    if data_root is not None and not Path(data_root).is_dir():
        raise HinasError(f"--data-root {quote(data_root)}: no such folder; give the datasets folder, or leave it out "
                         f"for the embedded photos")
    if timeout is not None and timeout < 1:
        raise HinasError(f"--timeout must be at least 1 second per cell, got {timeout}")
    missing = missing_packages()
    if missing:
        raise HinasError(f"this Python lacks {', '.join(missing)}, which executing the chapters needs: "
                         f"pip install '.[book]' (a machine without network: the wheels of "
                         f"'make gpu-pack GPU_NOTEBOOKS=1', README 'Reproduce on a GPU')")
    results = Path(os.path.abspath(results))  # papermill writes from the notebooks' folder
    paths = Paths(Path(root).resolve())
    try:
        notebooks = find_notebooks(paths, only)
    except BookError as exc:
        raise HinasError(str(exc)) from None
    name = item_name(profile, device, [nb.name[:2] for nb in notebooks] if only else None)
    final, partial = results / name, results / (name + PARTIAL)
    if final.exists() or final.is_symlink():
        state = check_item(final)
        if state["state"] == "done":
            log(f"{quote(final)}: already executed and sealed (its manifest checks); nothing to do")
            return None
        raise HinasError(f"{quote(final)}: exists but is not a sealed run ({state['state']}: "
                         f"{state['problem'] or 'no done marker'}); move it away to execute the chapters again")
    if partial.is_symlink() or (partial.exists() and not partial.is_dir()):
        raise HinasError(f"{quote(partial)}: a link or a file where the attempt's folder goes (never followed); "
                         f"move it away and run again")
    with results_lock(results):
        if partial.exists():
            shutil.rmtree(partial)  # a cut or failed attempt: never a result
        partial.mkdir(parents=True)
        parameters = {"profile": profile, "data_root": data_root, "seed": int(seed), "device": device,
                      "runs_root": str(Path(runs_root).resolve()) if runs_root else str(paths.root / "runs")}
        started = time.time()
        failures = execute_notebooks(Paths(paths.root, out=partial), notebooks, parameters, timeout=timeout,
                                     force=True, jobs=jobs)
        summary = {
            "kind": KIND, "item": name, "profile": profile, "device": device, "seed": int(seed),
            "data": "embedded photos" if data_root is None else Path(data_root).name,
            "provenance": dict(provenance(device), **({"command": command} if command else {})),
            "papermill": _version("papermill"),
            "seconds": round(time.time() - started, 1),
            "notebooks": [_notebook_entry(partial / nb.name) for nb in notebooks],
            "files": [nb.name for nb in notebooks if (partial / nb.name).is_file()],
            "failures": failures,
        }
        write_json(partial / SUMMARY, summary)
        if failures:
            raise BookError(f"{len(failures)} notebook(s) failed; the attempt stays in {quote(partial)} "
                            f"(not sealed):\n\n" + "\n\n".join(failures))
        write_manifest(partial, name)
        write_json(partial / DONE, {"finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        partial.rename(final)
    log(f"sealed {quote(final)}: {len(notebooks)} notebooks on {summary['provenance']['device']} "
        f"in {summary['seconds']:.0f} s")
    return final


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _notebook_entry(path: Path) -> dict:
    """What the summary says of one executed notebook: ran (its stamp's seconds) or not."""
    nb = read_json(path, {})
    stamp = (nb.get("metadata", {}) if isinstance(nb, dict) else {}).get(STAMP_KEY, {})
    ok = stamp.get("status") == "ok"
    return {"name": path.name, "status": "ok" if ok else ("failed" if path.exists() else "not executed"),
            "seconds": stamp.get("seconds") if ok else None}


def sealed_runs(results_root) -> list[dict]:
    """Every sealed run of the chapters under ``results_root`` whose manifest checks, oldest first:
    ``{"folder", "summary"}``. A run whose manifest does not check is left out (and named by
    ``hinas verify``)."""
    runs = []
    for folder in item_folders(results_root):
        if folder.name.endswith(PARTIAL) or not folder.name.startswith("notebooks-"):
            continue
        if check_item(folder)["state"] != "done":
            continue
        summary = read_json(folder / SUMMARY)
        if isinstance(summary, dict) and summary.get("kind") == KIND:
            runs.append({"folder": folder, "summary": summary})
    return sorted(runs, key=lambda r: str((r["summary"].get("provenance") or {}).get("created", "")))


def describe(summary: dict) -> str:
    """Where, when and how a sealed run executed the chapters, as the end of a sentence that
    starts "the chapters were" or "this chapter was"."""
    prov = summary.get("provenance") or {}
    when = str(prov.get("created", "?"))[:10]
    commit = f"commit {str(prov['git_revision'])[:12]}" if prov.get("git_revision") else "an unrecorded commit"
    seconds = summary.get("seconds")
    took = f" in {seconds:.0f} s" if isinstance(seconds, (int, float)) else ""
    papermill = "" if summary.get("papermill") is None else f" {summary['papermill']}"
    return (f"executed with papermill{papermill} on {prov.get('device', '?')} (torch {prov.get('torch', '?')}, "
            f"Python {prov.get('python', '?')}) on {when} at {commit} (profile {summary.get('profile')}, device "
            f"{summary.get('device')}, data: {summary.get('data')}; {len(summary.get('notebooks', []))} "
            f"chapters{took})")
