"""The book's notebook scheduler: two notebooks side by side, each after the ones it needs; a
notebook whose dependency failed is not executed and says why; chapters record their glance rows in
files of their own, so side-by-side chapters lose none."""

import json

import nbformat
import pytest

from hinas.book import glance
from hinas.book.execute import NEEDS_KEY, Paths, execute_notebooks


def _notebook(folder, name, code, needs=()):
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell("profile = 'smoke'")
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell(code)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if needs:
        nb.metadata[NEEDS_KEY] = list(needs)
    nbformat.write(nb, folder / f"{name}.ipynb")
    return folder / f"{name}.ipynb"


@pytest.fixture()
def book(tmp_path):
    (tmp_path / "notebooks").mkdir()
    return Paths(tmp_path)


def _log(path, what):
    return (f"import time, pathlib\np = pathlib.Path({str(path)!r})\n"
            f"p.open('a').write(f'{what} start {{time.time()}}\\n'); time.sleep(1.5)\n"
            f"p.open('a').write(f'{what} end {{time.time()}}\\n')\n")


def test_dependents_wait_and_independents_run_alongside(book):
    log = book.root / "log.txt"
    nbs = [_notebook(book.notebooks, "01_a", _log(log, "01")),
           _notebook(book.notebooks, "04_b", _log(log, "04")),
           _notebook(book.notebooks, "05_c", _log(log, "05"), needs=["04_b"])]
    assert execute_notebooks(book, nbs, {"profile": "smoke"}, jobs=2) == []
    t = {tuple(line.split()[:2]): float(line.split()[2]) for line in log.read_text().splitlines()}
    assert t[("05", "start")] >= t[("04", "end")]  # it needs 04
    assert t[("01", "start")] < t[("04", "end")] and t[("04", "start")] < t[("01", "end")]  # side by side
    assert all((book.generated / f"{n}.ipynb").exists() for n in ("01_a", "04_b", "05_c"))


def test_a_failed_dependency_stops_its_dependents(book):
    nbs = [_notebook(book.notebooks, "04_b", "raise RuntimeError('broken on purpose')"),
           _notebook(book.notebooks, "05_c", "x = 1", needs=["04_b"]),
           _notebook(book.notebooks, "06_d", "x = 2")]
    failures = execute_notebooks(book, nbs, {"profile": "smoke"}, jobs=2)
    assert len(failures) == 2 and any("broken on purpose" in f for f in failures)
    assert any(f.startswith("05_c.ipynb: not executed, because 04_b failed") for f in failures)
    assert (book.generated / "06_d.ipynb").exists() and not (book.generated / "05_c.ipynb").exists()


def test_glance_rows_of_chapters_are_kept_apart(tmp_path):
    glance.record_glance(tmp_path, "smoke", "05", [{"chapter": "5", "what": "a", "measured": "1 dB"}])
    glance.record_glance(tmp_path, "smoke", "06", [{"chapter": "6", "what": "b", "measured": "2 dB"}])
    glance.record_glance(tmp_path, "smoke", "05", [{"chapter": "5", "what": "c", "measured": "3 dB"}])
    files = sorted(p.name for p in glance.glance_path(tmp_path, "smoke").iterdir())
    assert files == ["05.json", "06.json"]
    out = glance.write_glance(Paths(tmp_path), tmp_path, "smoke").read_text()
    assert "| 5 | c | 3 dB |" in out and "| 6 | b | 2 dB |" in out and "| a |" not in out
    assert json.loads((glance.glance_path(tmp_path, "smoke") / "06.json").read_text())[0]["what"] == "b"


def _run_search_plan(runs_root):
    from hinas.book import plans

    plan = plans.chapter_plan("search", "smoke")
    return str(plans.run_plan(plan, runs_root, device="cpu", data_root=None))


def test_chapters_running_the_same_plan_wait_for_each_other(tmp_path, monkeypatch):
    """Two chapters side by side (two kernels: two processes) running the same plan (chapters 5 and
    6 include chapter 4's): one runs it, the other waits on the plan folder's lock and reuses the
    finished items (no 'folder busy' failure, nothing computed twice)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    monkeypatch.delenv("HINAS_DATA", raising=False)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        a, b = [f.result() for f in [pool.submit(_run_search_plan, tmp_path) for _ in range(2)]]
    assert a == b
    progress = json.loads((tmp_path.joinpath(a) / "search-dn-s0" / "progress.json").read_text())
    assert progress["pieces"] == 1  # searched once
