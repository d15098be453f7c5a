"""The GPU window's shell scripts refuse a call they cannot do in one line, exit 2, before any write
(scripts/gpu_rehearse.sh without `make gpu-pack`, scripts/gpu_collect.sh without archives)."""

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _script(name: str, cwd: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO / "scripts" / name), *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=60)


def test_a_rehearsal_without_the_packed_data_is_refused(tmp_path):
    scratch = tmp_path / "scratch"
    out = _script("gpu_rehearse.sh", tmp_path, 60, scratch)  # a folder with no .gpu/data
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip() == "gpu_rehearse: no .gpu/data here; run make gpu-pack first (GPU_NOTEBOOKS=1 " \
                                 "for the chapters)"
    assert not scratch.exists()


def test_collecting_a_window_that_left_no_archive_is_refused(tmp_path):
    shutil.copytree(REPO / "results" / "paper", tmp_path / "results", ignore=shutil.ignore_patterns("notebooks-*"))
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "results").rglob("*"))
    (tmp_path / "out").mkdir()
    out = subprocess.run(["bash", str(REPO / "scripts" / "gpu_collect.sh"), str(tmp_path / "out"),
                          str(tmp_path / "results")], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 2 and "no results.tgz or notebooks.tgz" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "results").rglob("*")) == before


def test_a_window_whose_campaign_is_refused_exits_with_its_code(tmp_path):
    """scripts/gpu_window.sh (as make gpu-rehearse runs it, on the CPU): the speed check's failure
    falls back to the eager path, but a campaign that cannot run makes the window fail (exit 2 here:
    no .gpu/data), rather than exit 0 with nothing done; the results folder is left as it was."""
    import os
    import sys

    tree = tmp_path / "tree"
    for name in ("hinas", "scripts"):
        shutil.copytree(REPO / name, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("test_fast_path.py", "test_device_rescale.py", "conftest.py"):
        (tree / "tests").mkdir(exist_ok=True)
        shutil.copy(REPO / "tests" / name, tree / "tests" / name)
    shutil.copytree(REPO / "results" / "paper", tree / "results" / "paper")
    before = _snapshot(tree / "results")
    env = {k: v for k, v in os.environ.items() if k not in ("HINAS_DATA", "PYTHONPATH")}
    env.update(HINAS_WINDOW_DEVICE="cpu", PATH=os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]]))
    out = subprocess.run(["bash", "scripts/gpu_window.sh", "400", str(tmp_path / "out")], capture_output=True,
                         text=True, cwd=tree, env=env, timeout=300)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert "== campaign with --set cuda_graphs=false" in out.stdout and "(exit 2)" in out.stdout
    assert ".gpu/data" in out.stdout + out.stderr
    assert _snapshot(tree / "results") == before


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
