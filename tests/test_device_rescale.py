"""RandomRescaleCrop on the device (hinas.data.device_sampling) equals Pillow's resize + crop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from hinas.data.device_sampling import _pack, pillow_crops


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p", [16, 64])
def test_crops_equal_pillow_resize_then_crop_bit_for_bit(p, device):
    """Against Pillow's two passes in the order of its resampler up to version 12 (the released
    code's): horizontal, rounded to uint8, then vertical. (Pillow 13 runs the vertical pass first
    when that makes the smaller intermediate image, which rounds some pixels one level apart.)"""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(int(rng.integers(p + 2, 3 * p)), int(rng.integers(p + 2, 3 * p))),
                           dtype=np.uint8) for _ in range(12)]
    images[0] = np.full_like(images[0], 255)  # saturated: the rounding at the top must clamp as Pillow
    block, sizes = _pack(images, device)
    for trial in range(6):
        index = torch.from_numpy(rng.integers(0, len(images), size=8)).to(device)
        h, w = sizes[index, 0], sizes[index, 1]
        f = torch.from_numpy(rng.uniform(0.8, 1.2, size=8)).to(device)
        if trial == 0:
            f[:4] = 1.0  # not rescaled: the plain crop
        nh, nw = torch.floor(h.double() * f).long(), torch.floor(w.double() * f).long()
        small = (nh < p) | (nw < p)
        nh, nw = torch.where(small, h, nh), torch.where(small, w, nw)
        y = torch.floor((nh - p).double() * torch.from_numpy(rng.random(8)).to(device)).long()
        x = torch.floor((nw - p).double() * torch.from_numpy(rng.random(8)).to(device)).long()
        got = pillow_crops(block, index, h, w, nh, nw, y, x, p).cpu()
        for i in range(8):
            img = images[int(index[i])]
            if (int(nh[i]), int(nw[i])) != img.shape:  # Pillow's classic order: the horizontal pass first
                wide = Image.fromarray(img).resize((int(nw[i]), img.shape[0]), Image.BICUBIC)
                img = np.asarray(wide.resize((int(nw[i]), int(nh[i])), Image.BICUBIC))
            want = img[int(y[i]):int(y[i]) + p, int(x[i]):int(x[i]) + p]
            np.testing.assert_array_equal(got[i, ..., 0].numpy(), want)


def test_device_stream_rescales_when_the_dataset_does():
    from hinas.data import BatchStream, PatchDataset
    from hinas.data.datasets import ImageRecord
    from hinas.data.device_sampling import on_device

    rng = np.random.default_rng(1)
    recs = [ImageRecord(f"im{i}", None, rng.integers(0, 256, size=(90, 120), dtype=np.uint8)) for i in range(4)]
    for rescale in (False, True):
        ds = PatchDataset(recs, "denoise", patch=32, sigma=[50.0], rescale=rescale, samples_per_epoch=8, seed=0)
        stream = on_device(BatchStream(ds, 4, 0), "cpu")
        assert stream.rescale is rescale
        x, y = stream.next()
        assert x.shape == y.shape == (4, 1, 32, 32)
        assert float(y.min()) >= 0 and float(y.max()) <= 1
