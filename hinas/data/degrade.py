"""Degradations, as in the reference code (REFERENCE.md section 8).

* grey: PIL ``convert('L')`` (ITU-R 601 luma, integer arithmetic);
* Gaussian noise: ``clean/255 + N(0, (sigma/255)^2)`` with sigma on the 0-255 scale, not
  clipped and not quantised; for *evaluation* the draw is seeded by (image name, sigma) so a
  result does not depend on the order or subset of images evaluated;
* SR low-resolution images: MATLAB-compatible bicubic ``imresize(modcrop(HR, s), 1/s)``.
"""

from __future__ import annotations

import hashlib

import numpy as np

from hinas.data.imresize import imresize, modcrop
from hinas.errors import DataError

__all__ = ["to_grey", "noise_seed", "add_noise_seeded", "make_lr", "modcrop"]


def to_grey(img: np.ndarray) -> np.ndarray:
    """uint8 RGB -> uint8 grey with PIL ``convert('L')``; grey input is returned as is."""
    a = np.asarray(img)
    if a.ndim == 2:
        return a
    from PIL import Image

    return np.array(Image.fromarray(np.ascontiguousarray(a[..., :3]).astype(np.uint8)).convert("L"))


def noise_seed(key: str, sigma: float, extra: str = "") -> int:
    """A 64-bit seed derived from (key, sigma[, extra]) with SHA-256 (stable across runs/platforms)."""
    text = f"{key}|{float(sigma):g}|{extra}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def add_noise_seeded(img_float01, sigma: float, key: str, extra: str = "") -> np.ndarray:
    """``img + N(0, sigma/255)`` (float32, unclipped) with noise seeded by (``key``, ``sigma``).

    ``img_float01`` is a float array in [0, 1] (any shape); ``sigma`` is on the 0-255 scale;
    ``key`` is normally the image name. ``extra`` distinguishes further draws (the
    hinas-reference protocol uses the patch position).
    """
    a = np.asarray(img_float01, dtype=np.float32)
    rng = np.random.default_rng(noise_seed(key, sigma, extra))
    noise = rng.standard_normal(a.shape, dtype=np.float32) * np.float32(sigma / 255.0)
    return a + noise


def make_lr(hr: np.ndarray, scale: int, name: str = "image") -> tuple[np.ndarray, np.ndarray]:
    """(mod-cropped HR, LR) with LR = MATLAB bicubic ``imresize(HR, 1/scale)`` (uint8)."""
    scale = int(scale)
    if scale < 1:
        raise DataError(f"scale must be a positive integer, got {scale}")
    h, w = hr.shape[:2]
    if h < scale or w < scale:
        raise DataError(f"{name}: image {w}x{h} is smaller than the scale x{scale}; remove it or use a smaller --scale")
    hr = modcrop(hr, scale)
    if scale == 1:
        return hr, hr.copy()
    return hr, imresize(hr, 1.0 / scale)
