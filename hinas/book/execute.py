"""Executing the chapter notebooks with papermill into ``book/generated/``: parameters injected and
shown as one cell, a failure named with its cell, an executed copy reused while its source,
parameters, ``hinas`` and ``results/`` are unchanged, and up to two notebooks side by side, each
after the chapters whose cached runs it reuses (:func:`execute_notebooks`)."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hinas.book.settings import REPO_ROOT

KERNEL_NAME = "python3"

class BookError(RuntimeError):
    """A step of the book build failed; the message says which and how to fix it."""


@dataclass
class Paths:
    root: Path
    out: Path | None = None  # where executed notebooks go, when not book/generated (a sealed run)

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"

    @property
    def generated(self) -> Path:
        return self.out if self.out is not None else self.root / "book" / "generated"

    @property
    def node_modules(self) -> Path:
        return self.root / "book" / "node_modules"

    @property
    def html(self) -> Path:
        return self.root / "_build" / "html"


def find_notebooks(paths: Paths, only: list[str] | None = None) -> list[Path]:
    """The chapter notebooks ``notebooks/NN_*.ipynb`` in order, optionally only some of them."""
    found = sorted(p for p in paths.notebooks.glob("[0-9][0-9]_*.ipynb"))
    if only is not None:  # an empty --only is not "all of them"
        wanted = {str(o).strip() for o in only if str(o).strip()}
        if not wanted:
            raise BookError(f"--only {','.join(map(str, only))!r} names no notebook; give numbers or names such as "
                            f"01,02, or leave --only out for all of them")
        found = [p for p in found if p.name[:2] in wanted or p.stem in wanted]
        missing = wanted - {p.name[:2] for p in found} - {p.stem for p in found}
        if missing:
            raise BookError(f"--only names no notebook in notebooks/: {', '.join(sorted(missing))}")
    if not found:
        raise BookError(f"no notebooks found in {paths.notebooks}")
    return found


def display_path(path, root: Path = REPO_ROOT) -> str:
    """A path as the book shows it: relative to the repository, never the machine's own folders."""
    if path is None:
        return "None"
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path(root).resolve())) or "."
    except ValueError:
        return f"<{p.name or 'folder'} outside the repository>"


def merge_parameters(out: Path, parameters: dict, root: Path) -> None:
    """Show one parameters cell: the notebook's own, with the values this build injected.

    papermill adds a cell tagged ``injected-parameters`` after the one tagged ``parameters``;
    it is dropped from the executed copy (its values already took effect) and the original
    cell's assignments are rewritten with those values, paths shown relative to the repository.
    """
    import nbformat

    nb = nbformat.read(out, as_version=4)
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    env_data = os.environ.get("HINAS_DATA")
    for cell in nb.cells:
        if "parameters" not in cell.metadata.get("tags", []):
            continue
        lines = []
        for line in cell.source.splitlines():
            m = re.match(r"^(\s*)(\w+)(\s*:\s*[^=]+)?=\s*([^#]*?)(\s*#.*)?$", line)
            if m and m.group(2) in parameters:
                name, value = m.group(2), parameters[m.group(2)]
                comment = m.group(5) or ""
                if name in ("runs_root", "data_root") and value is not None:
                    if env_data and name == "data_root" and Path(value) == Path(env_data):
                        shown = '"$HINAS_DATA"'
                    else:
                        shown = repr(display_path(value, root))
                else:
                    shown = repr(value)
                line = f"{m.group(1)}{name}{m.group(3) or ' '}= {shown}{comment}"
            lines.append(line)
        cell.source = "\n".join(lines)
        if "# Parameters" in cell.source and "this build" not in cell.source:
            cell.source = cell.source.replace(
                "# Parameters (papermill injects the book's values after this cell).",
                "# Parameters: the values this build of the book used (papermill -p name value changes them).")
        break
    nbformat.write(nb, out)


def _format_failure(nb: Path, exc: Exception) -> str:
    """Name the notebook and the failing cell, with its source and the error."""
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    index, count = getattr(exc, "cell_index", None), getattr(exc, "exec_count", None)
    where = "a cell" if index is None else f"cell #{index}" + (f" (In [{count}])" if count else "")
    lines = [f"notebook {nb.name} failed in {where}: {ename}: {evalue}"]
    source = getattr(exc, "source", None)  # papermill's PapermillExecutionError carries it
    if source:
        lines.append("  cell source:\n    " + "\n    ".join(str(source).splitlines()[:15]))
    return "\n".join(lines)


def _failing_cell(output: Path) -> tuple[int | None, str]:
    """Index and source of the cell that raised, read back from the executed notebook."""
    try:
        nb = json.loads(output.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, ""
    for i, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []) or []:
            if out.get("output_type") == "error":
                return i, "".join(cell.get("source", ""))
    return None, ""


def _tree_digest(root: Path, patterns=("**/*",)) -> str:
    """Hash of the names and contents of the files under ``root`` (empty if it is absent)."""
    import hashlib

    h = hashlib.sha256()
    if root.exists():
        files = sorted({p for pat in patterns for p in root.glob(pat) if p.is_file()
                        and "__pycache__" not in p.parts and not p.name.endswith(".pyc")})
        for p in files:
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def execution_key(paths: Paths, nb: Path, parameters: dict, library_digest: str) -> str:
    """What an executed notebook depends on: its source, the parameters, hinas, results/."""
    import hashlib

    h = hashlib.sha256()
    h.update(nb.read_bytes())
    h.update(json.dumps(parameters, sort_keys=True).encode())
    h.update(library_digest.encode())
    return h.hexdigest()


STAMP_KEY = "hinas_book"  # notebook metadata key recording what an executed notebook used


def _up_to_date(out: Path, key: str) -> bool:
    try:
        meta = json.loads(out.read_text(encoding="utf-8")).get("metadata", {})
    except (OSError, ValueError):
        return False
    stamp = meta.get(STAMP_KEY, {})
    return stamp.get("key") == key and stamp.get("status") == "ok"


def _stamp(out: Path, key: str, parameters: dict, seconds: float) -> None:
    import nbformat

    nb = nbformat.read(out, as_version=4)
    nb.metadata[STAMP_KEY] = {"key": key, "status": "ok", "parameters": parameters,
                              "seconds": round(seconds, 1)}
    nbformat.write(nb, out)


NEEDS_KEY = "hinas_book_needs"  # notebook metadata: the chapters (stems) whose runs it reuses


def notebook_needs(nb: Path) -> set[str]:
    """The notebooks (stems) that ``nb`` runs after, because it reuses most of their runs (chapter 6
    scores chapter 4's trained networks): started together it would only wait on their run folders
    (:func:`hinas.book.plans.run_plan` waits while another chapter runs a plan in the same folder)."""
    try:
        return set(json.loads(nb.read_text(encoding="utf-8")).get("metadata", {}).get(NEEDS_KEY, []))
    except (OSError, ValueError):
        return set()


def default_jobs() -> int:
    """Notebooks executed side by side: two where there are two cores (each kernel computes on
    one thread, so two kernels use two cores and degrade gracefully beside another busy process)."""
    return max(1, min(2, os.cpu_count() or 1))


def _execute_one(paths: Paths, nb: Path, parameters: dict, library: str, timeout, force: bool) -> str | None:
    """Execute one notebook (unless up to date); a failure message, or None."""
    import papermill as pm

    out = paths.generated / nb.name
    key = execution_key(paths, nb, parameters, library)
    if not force and _up_to_date(out, key):
        print(f"[book] {display_path(out, paths.root)} is up to date (same notebook, parameters, "
              "hinas and results/); not executed again", flush=True)
        return None
    t0 = time.perf_counter()
    print(f"[book] executing {nb.relative_to(paths.root)} -> {display_path(out, paths.root)}", flush=True)
    try:
        pm.execute_notebook(
            str(nb), str(out), parameters=parameters, kernel_name=KERNEL_NAME,
            cwd=str(paths.notebooks), progress_bar=False, log_output=False,
            execution_timeout=timeout, report_mode=False,
        )
    except Exception as exc:  # papermill raises PapermillExecutionError, kernels others
        msg = _format_failure(nb, exc)
        idx, src = _failing_cell(out)
        if idx is not None and "cell source" not in msg:
            msg += f"\n  (cell #{idx} of {display_path(out, paths.root)}):\n    " + \
                "\n    ".join(src.splitlines()[:15])
        print(f"[book] {nb.name} FAILED after {time.perf_counter() - t0:.1f} s\n{msg}", file=sys.stderr, flush=True)
        return msg
    elapsed = time.perf_counter() - t0
    merge_parameters(out, parameters, paths.root)
    _stamp(out, key, parameters, elapsed)
    print(f"[book]   {nb.name} done in {elapsed:.1f} s", flush=True)
    return None


def execute_notebooks(paths: Paths, notebooks: list[Path], parameters: dict, *,
                      timeout: int | None = None, keep_going: bool = True,
                      force: bool = False, jobs: int | None = None) -> list[str]:
    """Execute with papermill into book/generated; return failure messages (empty = success).

    Up to ``jobs`` notebooks run side by side (:func:`default_jobs`), each after the notebooks it
    needs (:func:`notebook_needs`, among those executed now); the ones others need start first.
    A notebook whose executed copy was made from the same source, parameters, ``hinas``
    package and ``results/`` folder is not executed again (``force`` re-executes all).
    """
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    try:  # once, here: workers importing a failing papermill side by side see a half-imported module
        import papermill  # noqa: F401
    except Exception as exc:
        raise BookError(f"papermill cannot be imported ({exc.__class__.__name__}: {exc}); install the book's "
                        f"packages (make setup-book, or pip install '.[book]')") from None
    paths.generated.mkdir(parents=True, exist_ok=True)
    jobs = max(1, int(jobs or default_jobs()))
    failures: list[str] = []
    package = Path(__file__).resolve().parents[1]  # the hinas the kernels import
    library = _tree_digest(package, ("**/*.py", "**/*.json", "**/*.yaml")) + \
        _tree_digest(paths.root / "results")
    stems = {nb.stem for nb in notebooks}
    needs = {nb.stem: notebook_needs(nb) & stems for nb in notebooks}
    needed = {n for ns in needs.values() for n in ns}
    pending = sorted(notebooks, key=lambda nb: nb.stem not in needed)  # stable: chapter order otherwise
    done, failed, running = set(), set(), {}
    env_before = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    # Kernels inherit the environment. OpenMP threads that spin while waiting make small
    # PyTorch CPU ops hundreds of times slower when the cores are shared (measured: a BN call
    # on a 1x2x8x8 tensor took 18 ms on a busy 2-core machine); passive waiting avoids it. No
    # short spin either (GOMP_SPINCOUNT): it won alone but lost 2-8x beside one busy process
    # (hinas.engine.config, CPU threads), and a build rarely has the machine to itself.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            while pending or running:
                for nb in list(pending):
                    if len(running) >= jobs or (failures and not keep_going):
                        break
                    if needs[nb.stem] & failed:
                        pending.remove(nb)
                        failed.add(nb.stem)
                        failures.append(f"{nb.name}: not executed, because "
                                        f"{', '.join(sorted(needs[nb.stem] & failed))} failed")
                    elif needs[nb.stem] <= done:
                        pending.remove(nb)
                        running[pool.submit(_execute_one, paths, nb, parameters, library, timeout, force)] = nb
                if not running:
                    break  # nothing can start: the rest waits on a failure and keep_going is off
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for f in finished:
                    nb = running.pop(f)
                    try:
                        msg = f.result()
                    except Exception as exc:  # not the notebook's own failure: say so, keep the others
                        msg = f"{nb.name}: not executed ({exc.__class__.__name__}: {exc})"
                    (failed if msg else done).add(nb.stem)
                    if msg:
                        failures.append(msg)
    finally:
        if env_before is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = env_before
    return failures
