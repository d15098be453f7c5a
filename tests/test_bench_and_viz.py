import json
import shutil
import subprocess
import sys

import pytest

from hinas.bench import supernet_memory
from hinas.genotype import random_genotype
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
