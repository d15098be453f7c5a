"""MATLAB-compatibility of hinas.imresize against ../shared/data/matlab_bicubic_reference."""
import re

import numpy as np
import pytest
from PIL import Image

from hinas.data.imresize import imresize


def test_shapes_and_dtype():
    a = np.random.default_rng(0).integers(0, 256, (30, 21, 3), dtype=np.uint8)
    lr = imresize(a, 1 / 3)
    assert lr.shape == (10, 7, 3) and lr.dtype == np.uint8
    assert imresize(lr, 3).shape == (30, 21, 3)
    assert imresize(a[..., 0], 0.5).shape == (15, 11)


def test_constant_image_is_preserved():
    a = np.full((24, 24), 77, np.uint8)
    assert (imresize(a, 0.25) == 77).all() and (imresize(a, 2) == 77).all()


@pytest.mark.data
def test_matches_matlab_reference(real_data_root):
    pairs = sorted((real_data_root / "matlab_bicubic_reference").glob("*/x*/*_HR.png"))
    if not pairs:
        pytest.skip("matlab_bicubic_reference not in the data root")
    same = []
    for hr in pairs:
        s = int(re.search(r"SRF_(\d)", hr.name).group(1))
        ref = np.array(Image.open(str(hr).replace("_HR", "_LR")))
        out = imresize(np.array(Image.open(hr)), 1 / s)
        assert out.shape == ref.shape
        same.append((out == ref).mean())
    assert len(same) == 57
    assert np.mean(same) >= 0.98 and np.min(same) >= 0.95
