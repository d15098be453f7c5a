"""The book's pages for sealed runs of the chapters on other machines (:mod:`hinas.book.notebook_run`).

The build copies each sealed run's notebooks into ``book/generated/runs/<item>/`` (the
``_toc.yml`` appendix takes them by a glob), each retitled with the machine and followed by one
cell of provenance, and writes two Markdown files: the appendix page (:data:`APPENDIX`: each
run, where and when it ran, each notebook's time) and the intro's paragraph
(:data:`INTRO_PARAGRAPH`: where and when the chapters ran on a GPU, or that they have not yet).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from hinas.book.notebook_run import describe, sealed_runs

RUNS_DIR = "runs"  # book/generated/runs/<item>/NN_*.ipynb
APPENDIX = "notebook_runs.md"  # book/generated/notebook_runs.md: the appendix page in _toc.yml
INTRO_PARAGRAPH = "notebook_runs_intro.md"  # included by book/intro.md


def write_pages(paths, results_root) -> list[dict]:
    """Write the appendix, the intro paragraph and the copied notebooks; return the runs shown."""
    import nbformat

    runs = sealed_runs(results_root)
    target = paths.generated / RUNS_DIR
    if target.exists():
        shutil.rmtree(target)
    for run in runs:
        folder, summary = run["folder"], run["summary"]
        where = _machine(summary)
        for name in summary.get("files", []):
            nb = nbformat.read(folder / name, as_version=4)
            _retitle(nb, f" (on {where}, profile {summary.get('profile')})")
            nb.cells.insert(1, nbformat.v4.new_markdown_cell(
                f"*This chapter was {describe(summary)}. Its sealed copy is "
                f"`{_shown(folder / name, paths.root)}` (size and sha256 in the folder's `manifest.json`; "
                f"`hinas verify` checks it). Numbers here are from that run, not from this build.*"))
            out = target / folder.name / name
            out.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, out)
    (paths.generated / APPENDIX).write_text(_appendix(runs, paths.root), encoding="utf-8")
    (paths.generated / INTRO_PARAGRAPH).write_text(_intro(runs), encoding="utf-8")
    return runs


def _machine(summary: dict) -> str:
    return str((summary.get("provenance") or {}).get("device") or summary.get("device") or "?")


def _shown(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return Path(path).name


def _retitle(nb, suffix: str) -> None:
    """Append ``suffix`` to the notebook's first level-1 heading (the page title)."""
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("# "):
                lines[i] = line.rstrip() + suffix
                cell.source = "\n".join(lines)
                return


def _appendix(runs: list[dict], root: Path) -> str:
    lines = ["# The chapters on other machines", ""]
    if not runs:
        lines += [_none_yet(), ""]
        return "\n".join(lines) + "\n"
    lines += ["Each run below executed the chapter notebooks end to end with papermill, with the parameters "
              "its notebooks show, and was sealed (every file's size and sha256 in its `manifest.json`). The "
              "pages under this one are its executed notebooks, unchanged but for their title and one line "
              "naming the run. Their numbers come from that run's profile and machine, not from this build.", ""]
    for run in runs:
        s = run["summary"]
        lines += [f"## {run['folder'].name}", "", f"The chapters were {describe(s)}; sealed in `{_shown(run['folder'], root)}`.", "",
                  "| notebook | status | seconds |", "|---|---|---|"]
        for nb in s.get("notebooks", []):
            sec = nb.get("seconds")
            lines.append(f"| {nb.get('name')} | {nb.get('status')} | {'–' if sec is None else f'{sec:.1f}'} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def _none_yet() -> str:
    return ("No run of the chapters on a GPU is committed yet, so none is shown. GPU windows are rare and "
            "short; the GPU machine lacks papermill, a Jupyter kernel, ipywidgets, bm3d and graphviz, so "
            "`make gpu-pack GPU_NOTEBOOKS=1` packs their wheels and `scripts/gpu_window.sh` executes the "
            "chapters once at profile `smoke` (README, *Reproduce on a GPU*).")


def _intro(runs: list[dict]) -> str:
    gpu = [r for r in runs if str(r["summary"].get("device", "")).startswith("cuda")]
    if not gpu:
        return _none_yet() + "\n"
    latest = gpu[-1]["summary"]
    return (f"On a GPU, the chapters were {describe(latest)}; the executed notebooks are in the appendix, "
            "{doc}`/book/generated/notebook_runs`.\n")
