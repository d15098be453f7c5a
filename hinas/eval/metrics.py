"""Image-quality metrics with BasicSR / MATLAB semantics, and the HiNAS reference variants.

Standard (BasicSR ``basicsr/metrics/psnr_ssim.py`` semantics, which follow the MATLAB
benchmark scripts):

* inputs are HxW or HxWxC arrays with values in [0, 255] (uint8, or float already rounded
  by the caller when the protocol quantises);
* ``crop_border`` pixels are removed on every side before measuring;
* ``test_y_channel=True`` converts *RGB* images to the Y of BT.601 YCbCr with MATLAB's
  ``rgb2ycbcr`` coefficients ``Y = 16 + (65.481 R + 128.553 G + 24.966 B)`` (R, G, B in
  [0, 1]), kept in float (not rounded);
* PSNR = ``10 log10(255^2 / MSE)`` in float64; SSIM = MATLAB's ``ssim`` of Wang et al.:
  Gaussian window 11x11, sigma 1.5, 'valid' filtering (no padding), C1 = (0.01*255)^2,
  C2 = (0.03*255)^2, averaged over channels.

Note that BasicSR's own ``to_y_channel`` expects **BGR** (OpenCV) arrays; ``hinas`` works in
RGB everywhere, so :func:`rgb2ycbcr` is the function used, and :func:`bgr2ycbcr` exists for
comparisons with BGR code.

Reference (``hinas-reference`` protocol; the released HiNAS code, see REFERENCE.md 5.3):
:func:`reference_y` uses its swapped coefficients ``(24.966 R + 128.553 G + 65.481 B + 16)``
and :func:`reference_ssim` its zero-padded 'same' convolution on [0, 1] images.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = [
    "selection_score",
    "calculate_psnr",
    "calculate_ssim",
    "rgb2ycbcr",
    "bgr2ycbcr",
    "rgb2y",
    "to_y_channel",
    "reference_y",
    "reference_psnr",
    "reference_ssim",
    "gaussian_window",
]


def selection_score(psnr: float, ssim: float) -> float:
    """The released code's criterion for keeping an epoch (a search's supernet, a training's
    weights) on the validation set: SSIM + PSNR/100 (mean SSIM in [0, 1], PSNR in dB)."""
    return ssim + psnr / 100


_Y_RGB = np.array([65.481, 128.553, 24.966])
_CB_RGB = np.array([-37.797, -74.203, 112.0])
_CR_RGB = np.array([112.0, -93.786, -18.214])


def _as_float255(img) -> np.ndarray:
    a = np.asarray(img)
    if a.dtype == np.uint8:
        return a.astype(np.float64)
    return a.astype(np.float64)


def rgb2ycbcr(img, y_only: bool = False) -> np.ndarray:
    """MATLAB ``rgb2ycbcr`` on an RGB HxWx3 array in [0, 255]; float output in [16, 235/240].

    With ``y_only`` returns HxW. The result is not rounded (as ``rgb2ycbcr(im2double(x))*255``).
    """
    a = _as_float255(img) / 255.0
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"rgb2ycbcr needs an HxWx3 array, got shape {a.shape}")
    y = a @ _Y_RGB + 16.0
    if y_only:
        return y
    cb = a @ _CB_RGB + 128.0
    cr = a @ _CR_RGB + 128.0
    return np.stack([y, cb, cr], axis=-1)


def bgr2ycbcr(img, y_only: bool = False) -> np.ndarray:
    """As :func:`rgb2ycbcr` for a BGR (OpenCV-order) array, like BasicSR's ``bgr2ycbcr``."""
    a = np.asarray(img)
    return rgb2ycbcr(a[..., ::-1], y_only=y_only)


def rgb2y(img) -> np.ndarray:
    """BT.601 Y (MATLAB coefficients) of an RGB image in [0, 255], float HxW."""
    return rgb2ycbcr(img, y_only=True)


def to_y_channel(img) -> np.ndarray:
    """Y of an RGB HxWx3 image; a grey HxW (or HxWx1) image is returned unchanged as float."""
    a = _as_float255(img)
    if a.ndim == 3 and a.shape[2] == 3:
        return rgb2y(a)
    if a.ndim == 3 and a.shape[2] == 1:
        return a[..., 0]
    return a


def reference_y(img) -> np.ndarray:
    """The HiNAS code's "Y": ``(24.966 R + 128.553 G + 65.481 B + 16)/255`` (R/B swapped)

    on an RGB image in [0, 255]; returns values in [0, 255] (times 255 of the code's value).
    """
    a = _as_float255(img) / 255.0
    return a @ _Y_RGB[::-1] + 16.0


def _prepare(img, img2, crop_border: int, test_y_channel: bool):
    a = _as_float255(img)
    b = _as_float255(img2)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    if crop_border:
        a = a[crop_border:-crop_border, crop_border:-crop_border, ...]
        b = b[crop_border:-crop_border, crop_border:-crop_border, ...]
    if test_y_channel:
        a = to_y_channel(a)
        b = to_y_channel(b)
    if a.ndim == 2:
        a = a[..., None]
        b = b[..., None]
    return a, b


def calculate_psnr(img, img2, crop_border: int = 0, test_y_channel: bool = False) -> float:
    """PSNR in dB between two HxW(xC) images in [0, 255] (BasicSR ``calculate_psnr``)."""
    a, b = _prepare(img, img2, crop_border, test_y_channel)
    mse = np.mean((a - b) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(255.0 * 255.0 / mse))


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Normalised 1-D Gaussian of ``size`` taps (the separable factor of the SSIM window)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    r = g.size // 2
    y = ndimage.correlate1d(x, g, axis=0, mode="constant")
    y = ndimage.correlate1d(y, g, axis=1, mode="constant")
    return y[r:-r, r:-r] if r else y


def _ssim_channel(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    g = gaussian_window(11, 1.5)
    mu1 = _filter_valid(a, g)
    mu2 = _filter_valid(b, g)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1 = _filter_valid(a * a, g) - mu1_sq
    s2 = _filter_valid(b * b, g) - mu2_sq
    s12 = _filter_valid(a * b, g) - mu12
    ssim_map = ((2 * mu12 + c1) * (2 * s12 + c2)) / ((mu1_sq + mu2_sq + c1) * (s1 + s2 + c2))
    return float(ssim_map.mean())


def calculate_ssim(img, img2, crop_border: int = 0, test_y_channel: bool = False) -> float:
    """MATLAB SSIM between two HxW(xC) images in [0, 255] (BasicSR ``calculate_ssim``).

    Gaussian 11x11 window, sigma 1.5, 'valid' filtering; the mean over channels for colour.
    Needs at least 11x11 pixels after ``crop_border``.
    """
    a, b = _prepare(img, img2, crop_border, test_y_channel)
    if a.shape[0] < 11 or a.shape[1] < 11:
        raise ValueError(f"SSIM needs at least 11x11 pixels after cropping, got {a.shape[:2]}")
    return float(np.mean([_ssim_channel(a[..., c], b[..., c]) for c in range(a.shape[2])]))


# ---------------------------------------------------------------- HiNAS reference variants

def reference_psnr(img, img2) -> float:
    """The HiNAS code's PSNR: ``10 log10(255^2/MSE)`` of float images in [0, 255], no crop."""
    return calculate_psnr(img, img2)


def reference_ssim(img, img2) -> float:
    """The HiNAS code's SSIM: Gaussian 11/1.5, zero-padded 'same' filtering, data range 1.

    Inputs are HxW(xC) in [0, 255] (scaled to [0, 1] internally); the SSIM map includes
    the zero-padded borders in its mean, unlike MATLAB.
    """
    a = _as_float255(img) / 255.0
    b = _as_float255(img2) / 255.0
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    g = gaussian_window(11, 1.5)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    vals = []
    for c in range(a.shape[2]):
        x, y = a[..., c], b[..., c]

        def f(z):
            z = ndimage.correlate1d(z, g, axis=0, mode="constant", cval=0.0)
            return ndimage.correlate1d(z, g, axis=1, mode="constant", cval=0.0)

        mu1, mu2 = f(x), f(y)
        s1 = f(x * x) - mu1 * mu1
        s2 = f(y * y) - mu2 * mu2
        s12 = f(x * y) - mu1 * mu2
        m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1 * mu1 + mu2 * mu2 + c1) * (s1 + s2 + c2))
        vals.append(m.mean())
    return float(np.mean(vals))
