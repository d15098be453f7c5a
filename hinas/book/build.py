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
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from hinas.book.execute import KERNEL_NAME, BookError, Paths, execute_notebooks, find_notebooks
from hinas.book.glance import write_claims, write_glance
from hinas.book.notebook_pages import write_pages
from hinas.book.settings import REPO_ROOT, default_device
from hinas.engine.config import PROFILES

NPM_ASSETS = {
    "mathjax/es5": "mathjax",
    "requirejs/require.js": "require.js",
    "@jupyter-widgets/html-manager/dist": "html-manager",
}


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
        if not f.startswith("book/generated/") or any((paths.root / (f + ext)).exists() for ext in (".ipynb", ".md")):
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
          npm_install: bool = True, force: bool = False, root: Path = REPO_ROOT, jobs: int | None = None) -> Path:
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
        failures = execute_notebooks(paths, notebooks, parameters, timeout=timeout, force=force, jobs=jobs)
        timings["execute"] = time.perf_counter() - t0
        if failures:
            raise BookError(f"{len(failures)} notebook(s) failed; the book was not built:\n\n"
                            + "\n\n".join(failures))
    write_pages(paths, paths.root / "results")  # the appendix of sealed runs on other machines
    absent = missing_chapters(paths)
    if absent:
        raise BookError("no executed notebook for chapter(s) " + ", ".join(absent)
                        + "; run without --no-execute (or with --only covering them) first")
    write_glance(paths, runs_root, profile)
    write_claims(paths, runs_root, profile)
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
    b.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="notebooks executed side by side, each after the chapters it reuses (default: 2 on "
                        "two or more cores, else 1)")
    e = sub.add_parser("execute", help="execute the chapters into a sealed item of a results folder (e.g. on a "
                                       "GPU machine; the build renders it in an appendix)")
    e.add_argument("--results", required=True, help="results folder (e.g. results/paper)")
    e.add_argument("--profile", choices=PROFILES, default="smoke", help="experiment size (default smoke)")
    e.add_argument("--device", default=None, help="cpu or cuda (default: cuda where a GPU is visible)")
    e.add_argument("--seed", type=int, default=0, help="seed passed to every notebook (0)")
    e.add_argument("--data-root", default=None, help="benchmark images folder (default: the embedded photos)")
    e.add_argument("--runs-root", default=None, help="where its experiment runs are cached (default: runs/)")
    e.add_argument("--only", default=None, help="comma-separated notebook numbers or names (default: all)")
    e.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds (none)")
    e.add_argument("--jobs", type=int, default=None, metavar="N", help="notebooks side by side (default as build)")
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    if args.command == "execute":
        return _execute(args, argv)
    try:
        build(args.profile, data_root=args.data_root, seed=args.seed, device=args.device,
              only=args.only.split(",") if args.only else None, execute=not args.no_execute,
              runs_root=args.runs_root, timeout=args.timeout, strict=not args.no_strict,
              npm_install=not args.no_npm_install, force=args.force, jobs=args.jobs)
    except BookError as exc:
        print(f"\n[book] ERROR: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


def _execute(args, argv) -> int:
    """``execute``: a bad call is one line and exit 2, a failed notebook exit 1."""
    from hinas.book.notebook_run import execute_into
    from hinas.errors import HinasError

    device = args.device or default_device("gpu")  # cuda where a GPU is visible, else cpu
    try:
        execute_into(args.results, args.profile, device, seed=args.seed, data_root=args.data_root,
                     runs_root=args.runs_root, jobs=args.jobs, timeout=args.timeout,
                     only=args.only.split(",") if args.only else None,
                     command=" ".join(["python -m hinas.book"] + list(argv if argv is not None else sys.argv[1:])))
    except HinasError as exc:
        print(f"python -m hinas.book execute: {exc}", file=sys.stderr, flush=True)
        return 2
    except BookError as exc:
        print(f"\n[book] ERROR: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0

