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
    shutil.copytree(REPO / "results" / "paper-gpu", tmp_path / "results", ignore=shutil.ignore_patterns("notebooks-*"))
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "results").rglob("*"))
    (tmp_path / "out").mkdir()
    out = subprocess.run(["bash", str(REPO / "scripts" / "gpu_collect.sh"), str(tmp_path / "out"),
                          str(tmp_path / "results")], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 2 and "no results.tgz or notebooks.tgz" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "results").rglob("*")) == before
