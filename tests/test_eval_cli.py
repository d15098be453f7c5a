import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image


def _run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "hinas", *args], capture_output=True, text=True, env=env)


@pytest.mark.data
def test_bicubic_set5_x3_literature(real_data_root):
    r = _run("eval", "bicubic", "--dataset", "Set5", "--scale", "3", "--data-root", str(real_data_root), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["images"] == 5
    assert abs(out["psnr"] - 30.39) < 0.02 and abs(out["ssim"] - 0.8682) < 0.002


@pytest.mark.parametrize("kind", ["corrupt", "rgba", "grey", "empty", "text"])
def test_bad_inputs_exit_2(tmp_path, kind):
    d = tmp_path / "ds"
    d.mkdir()
    if kind == "corrupt":
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(d / "a.png")
        (d / "a.png").write_bytes((d / "a.png").read_bytes()[:60])
    elif kind == "rgba":
        Image.fromarray(np.zeros((40, 40, 4), np.uint8)).save(d / "a.png")
    elif kind == "grey":
        Image.fromarray(np.zeros((40, 40), np.uint8)).save(d / "a.png")
    elif kind == "text":
        (d / "a.png").write_text("not an image")
    r = _run("eval", "bicubic", "--dataset", str(d), "--scale", "2", "--json")
    assert r.returncode == 2
    assert r.stderr.startswith("hinas: error:") and "Traceback" not in r.stderr
    assert str(d) in r.stderr


def test_noisy_input_baseline_is_the_noise_floor(tmp_path):
    # the identity under the standard protocol: PSNR of Gaussian noise of sigma 50 on 0-255
    # (20 log10(255/50) = 14.15 dB; clipping to [0, 255] removes a little of the error)
    r = _run("eval", "noisy", "--sigma", "50", "--dataset", "embedded-test", "--limit", "1", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["method"] == "noisy" and out["images"] == 1 and out["sigma"] == 50
    assert 14.15 <= out["psnr"] < 15.5
    bad = _run("eval", "noisy", "--scale", "2", "--dataset", "embedded-test")
    assert bad.returncode == 2 and "use --sigma, not --scale" in bad.stderr and "Traceback" not in bad.stderr
