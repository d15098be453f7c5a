"""Shared fixtures. Real data is found through HINAS_DATA or ../shared/data beside the repo."""
from __future__ import annotations

import os
from pathlib import Path

# Before torch loads OpenMP: idle threads sleep instead of spinning (2 shared cores in CI).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
if os.environ.get("PYTEST_XDIST_WORKER"):  # one worker a core (make test): no worker takes two
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


def find_real_data_root() -> Path | None:
    env = os.environ.get("HINAS_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared" / "data")
    for cand in candidates:
        if cand.is_dir() and any(cand.iterdir()):
            return cand.resolve()
    return None


@pytest.fixture(scope="session")
def real_data_root() -> Path:
    root = find_real_data_root()
    if root is None:
        pytest.skip("real benchmark data not found: set HINAS_DATA or place ../shared/data beside the repo")
    return root


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    yield


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


# small run folders (a denoiser trained for a few seconds, an SR x2 network) shared by the
# restore and export tests: built once per session
@pytest.fixture(scope="session")
def dn_run(tmp_path_factory):
    import _smoke_networks

    return _smoke_networks.denoise_run(tmp_path_factory.mktemp("nets"))


@pytest.fixture(scope="session")
def sr_run(tmp_path_factory):
    import _smoke_networks

    return _smoke_networks.sr_run(tmp_path_factory.mktemp("nets"))


def _assert_same_search_files(whole: Path, cut: Path) -> None:
    """Two search run folders hold the same genotype, alpha.csv and beta.csv (their own folder names
    and the genotype's creation time apart): a paused and resumed search against an uninterrupted one."""
    import json

    for name in ("genotype.json", "alpha.csv", "beta.csv"):
        a = (whole / name).read_text().replace(str(whole), "RUN")
        b = (cut / name).read_text().replace(str(cut), "RUN")
        if name == "genotype.json":
            a, b = (json.loads(x) for x in (a, b))
            for g in (a, b):
                g.get("provenance", {}).pop("created", None)
        assert a == b, name


@pytest.fixture
def same_search_files():
    """:func:`_assert_same_search_files`, for the tests that pause and resume searches."""
    return _assert_same_search_files
