"""Bad data inputs exit with code 2 and one line naming the file and the fix (real CLI)."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image


def hinas(*args):
    return subprocess.run([sys.executable, "-m", "hinas", *map(str, args)], capture_output=True, text=True)


def _one_line_error(p, *needles):
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hinas: error:"), p.stderr
    assert "Traceback" not in p.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_16_bit_png(tmp_path):
    d = tmp_path / "set"
    d.mkdir()
    Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)).save(d / "deep.png")
    _one_line_error(hinas("eval", "bicubic", "--dataset", d, "--scale", "2", "--json"), "deep.png")


def test_image_smaller_than_scale(tmp_path):
    d = tmp_path / "set"
    d.mkdir()
    Image.fromarray(np.zeros((3, 3, 3), np.uint8)).save(d / "tiny.png")
    _one_line_error(hinas("eval", "bicubic", "--dataset", d, "--scale", "4", "--json"), "tiny.png")


def test_missing_dataset(tmp_path):
    p = hinas("eval", "bicubic", "--dataset", "Set99", "--scale", "2", "--data-root", tmp_path, "--json")
    _one_line_error(p, "Set99")
