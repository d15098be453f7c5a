import numpy as np
from skimage.color import rgb2ycbcr as sk_rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from hinas.eval.metrics import calculate_psnr, calculate_ssim, rgb2ycbcr


def _pair(shape=(40, 50, 3)):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = np.clip(a + rng.normal(0, 10, a.shape), 0, 255).round().astype(np.uint8)
    return a, b


def test_psnr_ssim_match_skimage():
    a, b = _pair()
    assert abs(calculate_psnr(a, b) - peak_signal_noise_ratio(a, b, data_range=255)) < 1e-9
    ref = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                data_range=255, channel_axis=2)
    assert abs(calculate_ssim(a, b) - ref) < 1e-9


def test_y_and_border():
    a, b = _pair()
    assert np.abs(rgb2ycbcr(a) - sk_rgb2ycbcr(a)).max() < 1e-9
    y1, y2 = rgb2ycbcr(a, True), rgb2ycbcr(b, True)
    assert abs(calculate_psnr(a, b, 3, True) - peak_signal_noise_ratio(y1[3:-3, 3:-3], y2[3:-3, 3:-3], data_range=255)) < 1e-9
