import json
import shutil
import subprocess
import sys

import pytest

from hinas.bench.measure import supernet_memory
from hinas.space.genotype import random_genotype
from hinas.viz import draw_cell, draw_path, draw_supernet


def test_supernet_memory_eq6_needs_more_than_eq5():
    # Small cells and input for CI time; the ratio is a property of the grid (L=3, S=3).
    res = supernet_memory(batch=1, size=32, f=4, steps=2, repeats=1)
    assert res["analytic_ratio"] == pytest.approx(20 / 11.5)
    assert res["eq5"]["peak_bytes"] > 0
    assert res["memory_ratio"] >= 1.5
    assert abs(res["memory_ratio"] / res["analytic_ratio"] - 1) < 0.2


def test_bench_cli_contract():
    out = subprocess.run([sys.executable, "-m", "hinas", "bench", "supernet-memory", "--batch", "1", "--size", "16", "--f", "4", "--steps", "2",
                          "--repeats", "1", "--json"], capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(res) >= {"device", "eq5", "eq6", "memory_ratio", "time_ratio"}
    assert set(res["eq5"]) >= {"peak_bytes", "step_seconds"}
    assert res["memory_ratio"] == pytest.approx(res["eq6"]["peak_bytes"] / res["eq5"]["peak_bytes"])


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz 'dot' not installed (make setup installs it)")
def test_drawings_render_to_svg(tmp_path):
    g = random_genotype(seed=0)
    svg = draw_cell(g, 1).pipe(format="svg").decode()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    for op, _ in g.cells[1]:
        assert op in svg
    assert "<svg" in draw_path(g).pipe(format="svg").decode()
    assert "<svg" in draw_supernet(3, 3, [1, 1.5, 2], path=g.path).pipe(format="svg").decode()
    p = g.save(tmp_path / "g.json")
    out = subprocess.run([sys.executable, "-m", "hinas", "draw", str(p), "--out", str(tmp_path / "svg")],
                         capture_output=True, text=True, check=True)
    assert len(out.stdout.split()) == g.layers + 1


def test_drawings_without_dot_show_their_source(tmp_path, monkeypatch):
    """Where graphviz's `dot` is missing (the GPU machine running the notebooks), a drawing shows
    its DOT source and says why, instead of leaving a traceback in the notebook."""
    from hinas.book.explorer import svg_of
    from hinas.viz import NO_DOT, draw_supercell

    g = random_genotype(seed=0)
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no `dot` on the PATH
    for drawing in (draw_cell(g, 0), draw_path(g), draw_supercell(3, 7)):
        bundle = drawing._repr_mimebundle_()
        assert set(bundle) == {"text/markdown", "text/plain"}
        assert NO_DOT in bundle["text/markdown"] and drawing.source in bundle["text/markdown"]
        assert bundle["text/plain"] == drawing.source
    html = svg_of(draw_cell(g, 0))
    assert "<svg" not in html and "apt-get install graphviz" in html and "h(l-2)" in html
    out = subprocess.run([sys.executable, "-m", "hinas", "draw", str(g.save(tmp_path / "g.json"))],
                         capture_output=True, text=True, env={"PATH": str(tmp_path)})
    assert out.returncode == 2 and "apt-get install graphviz" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz 'dot' is not installed")
def test_drawings_with_dot_are_svg():
    bundle = draw_path(random_genotype(seed=0))._repr_mimebundle_()
    assert list(bundle) == ["image/svg+xml"] and "<svg" in bundle["image/svg+xml"]


def test_cpu_memory_measurement_writes_nothing_to_stderr():
    """PyTorch's profiler prints C++ lines at start/stop; a chapter would show them as output."""
    code = ("from hinas.bench.measure import supernet_memory; "
            "supernet_memory(batch=1, size=8, layers=2, levels=2, steps=1, f=2, repeats=1)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "profiler_st" not in out.stderr, out.stderr
