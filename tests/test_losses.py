import math

import pytest
import torch
from skimage.metrics import structural_similarity

from hinas.losses import RestorationLoss
from hinas.losses import differentiable_ssim as ssim


def test_ssim_of_identical_images_is_one():
    x = torch.rand(2, 3, 32, 32)
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-6)


def test_ssim_close_to_skimage_gaussian_inside():
    # Zero padding (the reference) differs from skimage only near the borders.
    torch.manual_seed(0)
    a = torch.rand(1, 1, 64, 64)
    b = (a + 0.1 * torch.randn_like(a)).clamp(0, 1)
    ours = ssim(a, b).item()
    ref = structural_similarity(a[0, 0].numpy(), b[0, 0].numpy(), gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False, data_range=1.0)
    assert abs(ours - ref) < 0.03


@pytest.mark.parametrize("task, phase, data, w", [("denoise", "search", "mse", 0.5), ("denoise", "train", "mse", 0.6),
                                                  ("sr", "train", "l1", 0.6)])
def test_defaults_and_formula(task, phase, data, w):
    loss = RestorationLoss(task, phase)
    assert (loss.data, loss.ssim_weight, loss.n_terms) == (data, w, 2)
    p, t = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    d = torch.mean((p - t) ** 2) if data == "mse" else torch.mean((p - t).abs())
    expected = (d - w * math.log10(ssim(p, t).item())) / 2
    assert loss(p, t).item() == pytest.approx(expected.item(), rel=1e-5)


def test_window_is_a_buffer_that_follows_the_module():
    loss = RestorationLoss("sr", "train")
    assert "window" in dict(loss.named_buffers())
    loss = loss.to(torch.float64)
    assert loss.window.dtype == torch.float64
