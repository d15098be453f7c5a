"""The protocol ladder: its end steps are the two protocols exactly, its steps split the difference
into parts that add up, it continues a saved file and refuses one of another setup."""

import json
import subprocess
import sys

import pytest
import torch

from hinas.data.datasets import load_dataset
from hinas.eval.evaluation import evaluate
from hinas.eval.protocol_ladder import INPUT_STEPS, PROTOCOL_STEPS, STEPS, ladder_identity, run_ladder, step_differences


def _blur(x):
    """A small real denoiser: a 3x3 box filter (replicate padding), so every step moves the score."""
    k = torch.full((1, 1, 3, 3), 1 / 9.0)
    return torch.nn.functional.conv2d(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"), k)


@pytest.fixture(scope="module")
def images():
    return load_dataset("embedded-test", None, grey=True).limit(2)


@pytest.fixture(scope="module")
def ladder(images):
    steps = [s.key for s in PROTOCOL_STEPS + INPUT_STEPS]
    return run_ladder(_blur, images, ladder_identity("blur", 50, images.name, steps))


def test_end_steps_are_the_two_protocols(images, ladder):
    for step, protocol in (("standard", "standard"), ("fresh-noise", "hinas-reference")):
        ref = {r["name"]: r for r in evaluate(_blur, images, "denoise", sigma=50, protocol=protocol)["per_image"]}
        for r in ladder["per_image"]:
            assert r["scores"][step]["psnr"] == ref[r["name"]]["psnr"]
            assert r["scores"][step]["ssim"] == ref[r["name"]]["ssim"]


def test_differences_add_up_to_the_protocol_gap(ladder):
    diffs = [d for d in step_differences(ladder) if STEPS[d["step"]] in PROTOCOL_STEPS]
    assert [d["step"] for d in diffs] == [s.key for s in PROTOCOL_STEPS[1:]]
    total = ladder["summary"]["fresh-noise"]["psnr"] - ladder["summary"]["standard"]["psnr"]
    assert sum(d["psnr"]["mean"] for d in diffs) == pytest.approx(total, abs=1e-9)
    fresh = next(d for d in diffs if d["step"] == "fresh-noise")
    assert fresh["psnr"]["mean"] > 0.3 and fresh["psnr"]["wins"] == 2  # averaged noise draws in the overlaps
    padded = next(d for d in diffs if d["step"] == "padded-ssim")
    assert padded["psnr"]["mean"] == 0 and padded["ssim"]["mean"] != 0  # SSIM's padding leaves PSNR alone
    inputs = {d["step"]: d for d in step_differences(ladder) if STEPS[d["step"]] in INPUT_STEPS}
    assert set(inputs) == {"input-clipped", "input-clipped-uint8"} and all(d["from"] == "standard"
                                                                         for d in inputs.values())


def test_continues_a_saved_ladder(images, ladder):
    first = {**ladder, "per_image": ladder["per_image"][:1]}
    calls = []

    def counting(x):
        calls.append(1)
        return _blur(x)

    again = run_ladder(counting, images, {k: ladder[k] for k in ("format", "method", "sigma", "dataset", "steps")},
                       previous=first)
    assert again["per_image"] == ladder["per_image"]
    assert 0 < len(calls) < 2 * 100  # only the second image was restored


def _run(*args):
    return subprocess.run([sys.executable, "-m", "hinas", "protocol-ladder", *args], capture_output=True, text=True)


def test_cli_noisy_writes_and_continues(tmp_path):
    out = tmp_path / "ladder.json"
    r = _run("noisy", "--sigma", "30", "--dataset", "embedded-test", "--limit", "1", "--out", str(out))
    assert r.returncode == 0, r.stderr
    saved = json.loads(out.read_text())
    assert saved["method"] == "noisy" and len(saved["per_image"]) == 1 and saved["provenance"]["command"]
    assert saved["summary"]["fresh-noise"]["psnr"] > saved["summary"]["standard"]["psnr"] + 1.0
    r = _run("noisy", "--sigma", "30", "--dataset", "embedded-test", "--limit", "1", "--out", str(out))
    assert r.returncode == 0 and json.loads(out.read_text())["per_image"] == saved["per_image"]
    r = _run("noisy", "--sigma", "30", "--dataset", "embedded-test", "--limit", "2", "--out", str(out))
    more = json.loads(out.read_text())["per_image"]
    assert r.returncode == 0 and len(more) == 2 and saved["per_image"][0] in more  # a larger --limit adds images


@pytest.fixture(scope="module")
def noisy_ladder(tmp_path_factory) -> bytes:
    out = tmp_path_factory.mktemp("ladder") / "ladder.json"
    assert _run("noisy", "--sigma", "30", "--dataset", "embedded-test", "--limit", "1", "--out", str(out)).returncode == 0
    return out.read_bytes()


@pytest.mark.parametrize("args, words", [
    (["noisy", "--sigma", "50"], "another setup"),  # the file holds sigma 30
    (["noisy", "--sigma", "30", "--weights", "x"], "one of them"),
    (["noisy", "--sigma", "30", "--steps", "standard,nope"], "unknown step"),
    (["--weights", "no-such-run", "--sigma", "30"], "no-such-run"),
    (["bm3d", "--sigma", "30", "--bm3d-profile", "nope"], "invalid choice"),
    (["noisy", "--sigma", "300"], "--sigma"),
])
def test_cli_refuses_in_one_line(tmp_path, noisy_ladder, args, words):
    out = tmp_path / "ladder.json"
    out.write_bytes(noisy_ladder)  # a file the command line wrote (once for every case: each call costs seconds)
    before = out.read_bytes()
    r = _run(*args, "--dataset", "embedded-test", "--limit", "1", "--out", str(out))
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert out.read_bytes() == before
