"""Sealed runs of the chapters (``python -m hinas.book execute``, issue 22's papermill run on a
GPU): a real chapter executed and sealed as a campaign item, a second call with nothing to do,
bad calls refused before any write, a failed attempt never sealed, and the book's pages of it."""

import json
import subprocess
import sys

import nbformat
import pytest

from hinas.book.execute import BookError, Paths
from hinas.book.notebook_pages import APPENDIX, INTRO_PARAGRAPH, RUNS_DIR, _intro, write_pages
from hinas.book.notebook_run import PARTIAL, execute_into, item_name, sealed_runs
from hinas.book.settings import REPO_ROOT
from hinas.campaign.manifest import check_item


def _execute(*args, cwd=REPO_ROOT):
    return subprocess.run([sys.executable, "-m", "hinas.book", "execute", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=_env())


def _env():
    import os

    env = dict(os.environ)
    env.pop("HINAS_DATA", None)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


@pytest.fixture(scope="module")
def sealed(tmp_path_factory):
    """Chapter 3 at smoke on the CPU, executed and sealed into a fresh results folder."""
    results = tmp_path_factory.mktemp("results")
    out = _execute("--results", results, "--profile", "smoke", "--device", "cpu", "--only", "03",
                   "--runs-root", results.parent / "runs")
    assert out.returncode == 0, out.stderr[-3000:]
    return results, out


def test_a_chapter_is_executed_and_sealed(sealed):
    results, out = sealed
    folder = results / item_name("smoke", "cpu", ["03"])
    assert folder.name == "notebooks-smoke-cpu-03" and "sealed" in out.stdout
    assert check_item(folder)["state"] == "done" and not (results / (folder.name + PARTIAL)).exists()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["kind"] == "notebooks" and summary["profile"] == "smoke" and summary["device"] == "cpu"
    assert [n["status"] for n in summary["notebooks"]] == ["ok"] and summary["notebooks"][0]["seconds"] > 0
    assert summary["provenance"]["command"].startswith("python -m hinas.book execute")
    nb = nbformat.read(folder / "03_residual_heads.ipynb", as_version=4)
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    again = _execute("--results", results, "--profile", "smoke", "--device", "cpu", "--only", "03")
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert [r["folder"] for r in sealed_runs(results)] == [folder]


def test_the_book_renders_a_sealed_run_and_drops_a_changed_one(sealed, tmp_path):
    results, _ = sealed
    paths = Paths(tmp_path)
    runs = write_pages(paths, results)
    page = (paths.generated / RUNS_DIR / "notebooks-smoke-cpu-03" / "03_residual_heads.ipynb")
    nb = nbformat.read(page, as_version=4)
    title = next(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "(on cpu, profile smoke)" in title.splitlines()[0]
    assert "Its sealed copy is" in nb.cells[1].source and "papermill" in nb.cells[1].source
    appendix = (paths.generated / APPENDIX).read_text()
    assert "## notebooks-smoke-cpu-03" in appendix and "| 03_residual_heads.ipynb | ok |" in appendix
    assert "No run of the chapters on a GPU" in (paths.generated / INTRO_PARAGRAPH).read_text()  # a CPU run
    assert len(runs) == 1
    # a sealed file changed afterwards: the run is no longer trusted, so no longer shown
    copy = tmp_path / "changed"
    subprocess.run(["cp", "-r", str(results), str(copy)], check=True)
    target = copy / "notebooks-smoke-cpu-03" / "03_residual_heads.ipynb"
    target.write_text(target.read_text().replace("Residual", "Risidual", 1))
    assert check_item(target.parent)["state"] == "corrupt"
    assert write_pages(paths, copy) == [] and not (paths.generated / RUNS_DIR).exists()


def test_intro_says_where_and_when_a_gpu_run_ran():
    summary = {"kind": "notebooks", "profile": "smoke", "device": "cuda", "data": "embedded photos",
               "papermill": "2.7.0", "seconds": 95.0, "notebooks": [{}] * 6,
               "provenance": {"device": "NVIDIA H200", "created": "2026-12-01T10:00:00+00:00",
                              "git_revision": "0123456789abcdef", "torch": "2.11.0+cu130", "python": "3.12.3"}}
    text = _intro([{"folder": None, "summary": summary}])
    for part in ("NVIDIA H200", "2026-12-01", "commit 0123456789ab", "profile smoke", "6 chapters in 95 s"):
        assert part in text
    assert "{doc}`/book/generated/notebook_runs`" in text


def test_bad_calls_are_refused_before_any_write(tmp_path):
    results = tmp_path / "results"
    for args, needle in [(["--only", "99"], "--only names no notebook"),
                         (["--device", "cuda"] if not _cuda() else ["--device", "tpu"], "device"),
                         (["--device", "gpu"], "not one of cpu, cuda"),
                         (["--device", "cpu", "--data-root", results / "nowhere"], "no such folder"),
                         (["--device", "cpu", "--timeout", "0"], "at least 1 second")]:
        out = _execute("--results", results, "--profile", "smoke", *args)
        assert out.returncode == 2 and needle in out.stderr, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
        assert not results.exists()
    (results / "notebooks-smoke-cpu").mkdir(parents=True)  # there, but never sealed
    out = _execute("--results", results, "--profile", "smoke", "--device", "cpu")
    assert out.returncode == 2 and "is not a sealed run" in out.stderr
    assert sorted(p.name for p in results.iterdir()) == ["notebooks-smoke-cpu"]
    afile = tmp_path / "afile"
    afile.write_text("x")
    out = _execute("--results", afile, "--profile", "smoke", "--device", "cpu")
    assert out.returncode == 2 and "not a folder" in out.stderr and afile.read_text() == "x"
    (results / "notebooks-smoke-cpu").rmdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("x")
    for target in (outside, tmp_path / "nowhere"):  # a link where the attempt's folder goes, live or dangling
        (results / "notebooks-smoke-cpu.partial").symlink_to(target)
        out = _execute("--results", results, "--profile", "smoke", "--device", "cpu")
        assert out.returncode == 2 and "a link or a file" in out.stderr and "Traceback" not in out.stderr, out.stderr
        (results / "notebooks-smoke-cpu.partial").unlink()
    assert (outside / "keep.txt").read_text() == "x"


def test_a_package_whose_own_import_fails_is_refused_in_one_line(tmp_path):
    """Seen rehearsing the GPU machine's Python: papermill installed, its dependency attrs not.
    Found by name it looked present, and every chapter failed at once with a traceback."""
    import os

    broken = tmp_path / "site" / "papermill"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("import hinas_test_absent_dependency\n")
    results = tmp_path / "results"
    env = _env()
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "site"), str(REPO_ROOT), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-m", "hinas.book", "execute", "--results", str(results),
                          "--profile", "smoke", "--device", "cpu"], capture_output=True, text=True, cwd=REPO_ROOT, env=env)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert "papermill (ModuleNotFoundError: No module named 'hinas_test_absent_dependency')" in out.stderr
    assert not results.exists()


def test_the_build_imports_papermill_once_and_names_its_failure(tmp_path, monkeypatch):
    from hinas.book.execute import execute_notebooks

    monkeypatch.setitem(sys.modules, "papermill", None)  # import raises ModuleNotFoundError
    with pytest.raises(BookError, match="papermill cannot be imported"):
        execute_notebooks(Paths(tmp_path, out=tmp_path / "out"), [tmp_path / "01_x.ipynb"], {})
    assert not (tmp_path / "out").exists()


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_a_failed_attempt_is_never_sealed_and_the_next_replaces_it(tmp_path):
    root = tmp_path / "root"
    (root / "notebooks").mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 1. A chapter"), nbformat.v4.new_code_cell("raise ValueError('on purpose')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "notebooks" / "01_broken.ipynb")
    results = tmp_path / "results"
    for _ in range(2):
        with pytest.raises(BookError, match="on purpose"):
            execute_into(results, "smoke", "cpu", root=root, log=lambda *a: None)
        partial = results / ("notebooks-smoke-cpu" + PARTIAL)
        summary = json.loads((partial / "summary.json").read_text())
        assert [n["status"] for n in summary["notebooks"]] == ["failed"] and summary["failures"]
        assert not (partial / "done").exists() and not (results / "notebooks-smoke-cpu").exists()
        assert sealed_runs(results) == []
