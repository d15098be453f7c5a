"""Build the companion book: execute the notebooks with papermill, render with jupyter-book.

``python -m hinas.book build --profile quick`` (what ``make book`` runs):

1. executes every ``notebooks/NN_*.ipynb`` with papermill into ``book/generated/``, injecting
   ``profile``, ``data_root``, ``seed``, ``device`` and ``runs_root`` into the cell tagged
   ``parameters``. Experiment runs live under ``runs_root`` keyed by their configuration, so
   a re-run after a failure reuses the runs that finished;
2. stops with a non-zero exit status, naming the notebook and the failing cell, when any
   notebook fails (the executed notebook, with the error, stays in ``book/generated/``);
3. builds the HTML with jupyter-book 1.x (``_config.yml``/``_toc.yml`` at the top level,
   execution off) into ``_build/html``;
4. copies MathJax, RequireJS and the Jupyter widget manager from ``book/node_modules`` (npm
   packages pinned in ``book/package.json``) into ``_build/html/_static``, so the book makes no
   request to any other host.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hinas.book.glance import write_glance
from hinas.book.settings import REPO_ROOT, default_device
from hinas.engine.config import PROFILES

KERNEL_NAME = "python3"

# npm package file or folder -> destination under _build/html/_static
NPM_ASSETS = {
    "mathjax/es5": "mathjax",
    "requirejs/require.js": "require.js",
    "@jupyter-widgets/html-manager/dist": "html-manager",
}


class BookError(RuntimeError):
    """A step of the book build failed; the message says which and how to fix it."""


@dataclass
class Paths:
    root: Path

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"

    @property
    def generated(self) -> Path:
        return self.root / "book" / "generated"

    @property
    def node_modules(self) -> Path:
        return self.root / "book" / "node_modules"

    @property
    def html(self) -> Path:
        return self.root / "_build" / "html"


def find_notebooks(paths: Paths, only: list[str] | None = None) -> list[Path]:
    """The chapter notebooks ``notebooks/NN_*.ipynb`` in order, optionally only some of them."""
    found = sorted(p for p in paths.notebooks.glob("[0-9][0-9]_*.ipynb"))
    if only:
        wanted = {o.strip() for o in only if o.strip()}
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


def execute_notebooks(paths: Paths, notebooks: list[Path], parameters: dict, *,
                      timeout: int | None = None, keep_going: bool = True,
                      force: bool = False) -> list[str]:
    """Execute with papermill into book/generated; return failure messages (empty = success).

    A notebook whose executed copy was made from the same source, parameters, ``hinas``
    package and ``results/`` folder is not executed again (``force`` re-executes all).
    """
    import papermill as pm

    paths.generated.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    package = Path(__file__).resolve().parents[1]  # the hinas the kernels import
    library = _tree_digest(package, ("**/*.py", "**/*.json", "**/*.yaml")) + \
        _tree_digest(paths.root / "results")
    env_before = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    # Kernels inherit the environment. OpenMP threads that spin while waiting make small
    # PyTorch CPU ops hundreds of times slower when the cores are shared (measured: a BN call
    # on a 1x2x8x8 tensor took 18 ms on a busy 2-core machine); passive waiting avoids it. No
    # short spin either (GOMP_SPINCOUNT): it won alone but lost 2-8x beside one busy process
    # (hinas.engine.config, CPU threads), and a build rarely has the machine to itself.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        for nb in notebooks:
            out = paths.generated / nb.name
            key = execution_key(paths, nb, parameters, library)
            if not force and _up_to_date(out, key):
                print(f"[book] {out.relative_to(paths.root)} is up to date (same notebook, parameters, "
                      "hinas and results/); not executed again", flush=True)
                continue
            t0 = time.perf_counter()
            print(f"[book] executing {nb.relative_to(paths.root)} -> {out.relative_to(paths.root)}",
                  flush=True)
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
                    msg += f"\n  (cell #{idx} of {out.relative_to(paths.root)}):\n    " + \
                        "\n    ".join(src.splitlines()[:15])
                print(f"[book] FAILED after {time.perf_counter() - t0:.1f} s\n{msg}", file=sys.stderr,
                      flush=True)
                failures.append(msg)
                if not keep_going:
                    break
                continue
            elapsed = time.perf_counter() - t0
            merge_parameters(out, parameters, paths.root)
            _stamp(out, key, parameters, elapsed)
            print(f"[book]   done in {elapsed:.1f} s", flush=True)
    finally:
        if env_before is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = env_before
    return failures


def ensure_npm_assets(paths: Paths, install: bool = True) -> None:
    """Make sure book/node_modules has the assets; run ``npm install`` there if it does not."""
    missing = [src for src in NPM_ASSETS if not (paths.node_modules / src).exists()]
    if not missing:
        return
    npm = shutil.which("npm")
    if not install or npm is None:
        raise BookError(
            "book/node_modules lacks " + ", ".join(missing) + ". Run `cd book && npm install` "
            "(Node.js and npm from your distribution), or `make book`, which does it."
        )
    print("[book] installing the book's npm assets (cd book && npm install)", flush=True)
    subprocess.run([npm, "install", "--no-audit", "--no-fund", "--silent"], cwd=paths.root / "book",
                   check=True)
    still = [src for src in NPM_ASSETS if not (paths.node_modules / src).exists()]
    if still:
        raise BookError(f"npm install did not provide {', '.join(still)}; check book/package.json")


def copy_npm_assets(paths: Paths) -> None:
    static = paths.html / "_static"
    static.mkdir(parents=True, exist_ok=True)
    for src, dest in NPM_ASSETS.items():
        s, d = paths.node_modules / src, static / dest
        if s.is_dir():
            if d.exists():
                shutil.rmtree(d)
            shutil.copytree(s, d, ignore=shutil.ignore_patterns("*.map", "*.d.ts", "sre"))
        else:
            shutil.copy2(s, d)


def write_index_redirect(paths: Paths, favicon: str = "_static/favicon.svg") -> None:
    """Replace jupyter-book's index.html redirect with one that names the favicon.

    Without a ``<link rel="icon">`` the browser asks for ``/favicon.ico``, which would 404.
    """
    from html import escape

    import yaml

    toc = yaml.safe_load((paths.root / "_toc.yml").read_text(encoding="utf-8"))
    target = escape(str(toc["root"]) + ".html")
    icon = f'<link rel="icon" href="{favicon}">' if (paths.html / favicon).exists() else ""
    (paths.html / "index.html").write_text(
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8">{icon}'
        f'<meta http-equiv="Refresh" content="0; url={target}"><title>redirect</title></head>'
        f'<body><a href="{target}">{target}</a></body></html>\n', encoding="utf-8")


def find_external_references(html_root: Path) -> list[str]:
    """Script/link/img references to another host in the built HTML (should be none)."""
    import re

    pattern = re.compile(r"<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=\s*[\"']((?:https?:)?//[^\"']+)",
                         re.IGNORECASE)
    bad = []
    for page in html_root.rglob("*.html"):
        text = page.read_text(encoding="utf-8", errors="replace")
        for m in pattern.finditer(text):
            tag, url = m.group(1).lower(), m.group(3)
            if tag == "link" and re.search(r"rel\s*=\s*[\"'](canonical|alternate)", m.group(0)):
                continue
            bad.append(f"{page.relative_to(html_root)}: <{tag}> {url}")
    return bad


def jupyter_book_build(paths: Paths, *, strict: bool) -> None:
    cmd = [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
           "build", str(paths.root),
           "--config", str(paths.root / "_config.yml"), "--toc", str(paths.root / "_toc.yml"),
           "--path-output", str(paths.root), "--builder", "html", "--all"]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    print("[book] jupyter-book build -> _build/html", flush=True)
    proc = subprocess.run(cmd, cwd=paths.root)
    if proc.returncode != 0:
        raise BookError(f"jupyter-book build failed (exit {proc.returncode}); see its messages above")


def missing_chapters(paths: Paths) -> list[str]:
    """Chapters in _toc.yml without an executed notebook in book/generated.

    A chapter whose source notebook does not exist yet gets a stub page (so the book still
    builds); one whose source exists but was not executed is returned (an error).
    """
    import nbformat
    import yaml

    toc = yaml.safe_load((paths.root / "_toc.yml").read_text(encoding="utf-8"))
    out = []
    for entry in toc.get("chapters", []):
        f = entry.get("file", "")
        if not f.startswith("book/generated/") or (paths.root / (f + ".ipynb")).exists():
            continue
        name = Path(f).name
        if (paths.notebooks / (name + ".ipynb")).exists():
            out.append(f)
            continue
        print(f"[book] warning: notebooks/{name}.ipynb does not exist; the chapter is a stub",
              file=sys.stderr, flush=True)
        stub = nbformat.v4.new_notebook()
        title = name[3:].replace("_", " ").capitalize()
        stub.cells.append(nbformat.v4.new_markdown_cell(
            f"# {int(name[:2])}. {title}\n\nThis chapter is not written yet "
            f"(`notebooks/{name}.ipynb` does not exist)."))
        stub.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python 3",
                                       "language": "python"}
        paths.generated.mkdir(parents=True, exist_ok=True)
        nbformat.write(stub, paths.root / (f + ".ipynb"))
    return out


def build(profile: str = "quick", *, data_root: str | None = None, seed: int = 0,
          device: str | None = None, only: list[str] | None = None, execute: bool = True,
          runs_root: str | None = None, timeout: int | None = None, strict: bool = True,
          npm_install: bool = True, force: bool = False, root: Path = REPO_ROOT) -> Path:
    """Execute the notebooks and build the HTML book; return the path of ``index.html``."""
    if profile not in PROFILES:
        raise BookError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    paths = Paths(Path(root).resolve())
    t_start = time.perf_counter()
    data_root = data_root or os.environ.get("HINAS_DATA") or None
    runs_root = str(Path(runs_root).resolve()) if runs_root else str(paths.root / "runs")
    device = device or default_device(profile)
    parameters = {
        "profile": profile,
        "data_root": data_root,
        "seed": int(seed),
        "device": device or default_device(profile),
        "runs_root": runs_root,
    }
    ensure_npm_assets(paths, install=npm_install)
    timings = {}
    if execute:
        notebooks = find_notebooks(paths, only)
        print(f"[book] profile {profile}: {len(notebooks)} notebook(s), parameters {parameters}",
              flush=True)
        t0 = time.perf_counter()
        failures = execute_notebooks(paths, notebooks, parameters, timeout=timeout, force=force)
        timings["execute"] = time.perf_counter() - t0
        if failures:
            raise BookError(f"{len(failures)} notebook(s) failed; the book was not built:\n\n"
                            + "\n\n".join(failures))
    absent = missing_chapters(paths)
    if absent:
        raise BookError("no executed notebook for chapter(s) " + ", ".join(absent)
                        + "; run without --no-execute (or with --only covering them) first")
    write_glance(paths, runs_root, profile)
    t0 = time.perf_counter()
    jupyter_book_build(paths, strict=strict)
    copy_npm_assets(paths)
    write_index_redirect(paths)
    timings["render"] = time.perf_counter() - t0
    external = find_external_references(paths.html)
    if external:
        raise BookError("the built book references other hosts (it must be self-contained):\n  "
                        + "\n  ".join(external[:20]))
    total = time.perf_counter() - t_start
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
    index = paths.html / "index.html"
    print(f"[book] built {index} in {total:.1f} s ({parts})", flush=True)
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hinas.book", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="execute the notebooks and build the HTML book")
    b.add_argument("--profile", choices=PROFILES, default="quick",
                   help="experiment size passed to every notebook (default quick)")
    b.add_argument("--data-root", default=None,
                   help="benchmark images folder (default: $HINAS_DATA, else the embedded default)")
    b.add_argument("--seed", type=int, default=0, help="seed passed to every notebook (0)")
    b.add_argument("--device", default=None, help="cpu or cuda (default: cuda for gpu/paper, else cpu)")
    b.add_argument("--only", default=None,
                   help="comma-separated notebook numbers or names to execute, e.g. 01,02")
    b.add_argument("--no-execute", action="store_true",
                   help="render the notebooks already in book/generated without executing")
    b.add_argument("--runs-root", default=None,
                   help="where finished experiment runs are cached (default: runs/)")
    b.add_argument("--force", action="store_true",
                   help="execute every notebook even if its executed copy is up to date")
    b.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds (none)")
    b.add_argument("--no-strict", action="store_true",
                   help="let Sphinx warnings pass (by default a warning fails the build)")
    b.add_argument("--no-npm-install", action="store_true",
                   help="fail instead of running npm install when book/node_modules is missing")
    args = parser.parse_args(argv)
    try:
        build(args.profile, data_root=args.data_root, seed=args.seed, device=args.device,
              only=args.only.split(",") if args.only else None, execute=not args.no_execute,
              runs_root=args.runs_root, timeout=args.timeout, strict=not args.no_strict,
              npm_install=not args.no_npm_install, force=args.force)
    except BookError as exc:
        print(f"\n[book] ERROR: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


