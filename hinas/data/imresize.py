"""MATLAB-compatible bicubic ``imresize``.

The standard super-resolution benchmarks make their low-resolution images with MATLAB's
``imresize(HR, 1/s, 'bicubic')``. Three details make it differ from PIL or OpenCV bicubic:

1. the cubic kernel has ``a = -0.5`` and, when *downscaling*, it is stretched by ``1/scale``
   (antialiasing), so each output pixel averages ``4/scale`` input pixels;
2. borders are handled by mirror-symmetric padding (``[1..n, n..1]`` index folding);
3. the two 1-D passes (rows first when both scales are equal, otherwise the dimension with
   the smaller scale first) each produce an array of the *input's class*: for ``uint8`` the
   intermediate image is rounded (half away from zero) and saturated to 0..255 before the
   second pass.

This module re-implements that algorithm from its published description (the MATLAB
documentation of ``imresize`` and the contribution-weight formulation used by the common
Python ports); it is pure numpy.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["imresize", "modcrop", "cubic"]


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    absx = np.abs(x)
    absx2 = absx * absx
    absx3 = absx2 * absx
    return (1.5 * absx3 - 2.5 * absx2 + 1.0) * (absx <= 1) + (
        -0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0
    ) * ((absx > 1) & (absx <= 2))


def _contributions(in_len: int, out_len: int, scale: float, antialias: bool = True):
    """Weights (out_len x P) and 0-based source indices (out_len x P) for one dimension."""
    kernel_width = 4.0
    shrink = scale < 1 and antialias
    if shrink:
        kernel_width = kernel_width / scale
    x = np.arange(1, out_len + 1, dtype=np.float64)
    # output pixel centre mapped into input coordinates (1-based, as MATLAB)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    p = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(p, dtype=np.float64)[None, :]
    dist = u[:, None] - indices
    if shrink:
        weights = scale * cubic(scale * dist)
    else:
        weights = cubic(dist)
    weights = weights / weights.sum(axis=1, keepdims=True)
    keep = np.any(weights != 0, axis=0)
    weights = weights[:, keep]
    indices = indices[:, keep].astype(np.int64)
    # mirror-symmetric boundary: fold 1-based index onto [1..n, n..1]
    aux = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    indices = aux[np.mod(indices - 1, aux.size)]
    return weights, indices


def _round_uint8(a: np.ndarray) -> np.ndarray:
    # MATLAB rounds half away from zero and saturates when casting to uint8
    return np.clip(np.floor(a + 0.5), 0, 255).astype(np.uint8)


def _resize_dim(img: np.ndarray, axis: int, out_len: int, scale: float, antialias: bool) -> np.ndarray:
    in_len = img.shape[axis]
    weights, indices = _contributions(in_len, out_len, scale, antialias)
    src = np.moveaxis(img, axis, 0).astype(np.float64)
    out = np.zeros((out_len,) + src.shape[1:], dtype=np.float64)
    extra = (1,) * (src.ndim - 1)
    for k in range(weights.shape[1]):
        out += weights[:, k].reshape((-1,) + extra) * src[indices[:, k]]
    return np.moveaxis(out, 0, axis)


def _out_len(n: int, scale: float) -> int:
    # ceil(n*scale), robust to 1/3-style float scales (255 * (1/3) must give 85, not 86)
    return int(math.ceil(n * scale - 1e-9))


def imresize(img: np.ndarray, scale: float | None = None, *, output_shape: tuple[int, int] | None = None,
             antialias: bool = True) -> np.ndarray:
    """Resize like MATLAB ``imresize(img, scale, 'bicubic')``.

    ``img`` is an HxW or HxWxC array. For ``uint8`` input the result is ``uint8`` and the
    intermediate image between the two 1-D passes is rounded to ``uint8`` as MATLAB does;
    float input gives float64 output without any rounding. ``scale`` is the factor (``1/3``
    to make a x3 low-resolution image, ``3`` to upsample it back); ``output_shape=(H, W)``
    may be given instead (MATLAB's ``[numrows numcols]`` form).
    """
    arr = np.asarray(img)
    if arr.ndim not in (2, 3):
        raise ValueError(f"imresize needs an HxW or HxWxC array, got shape {arr.shape}")
    is_uint8 = arr.dtype == np.uint8
    if not is_uint8 and not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"imresize supports uint8 or float arrays, got {arr.dtype}")
    h, w = arr.shape[:2]
    if output_shape is not None:
        out_h, out_w = int(output_shape[0]), int(output_shape[1])
        scales = (out_h / h, out_w / w)
    elif scale is not None:
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        scales = (float(scale), float(scale))
        out_h, out_w = _out_len(h, scale), _out_len(w, scale)
    else:
        raise ValueError("give scale or output_shape")
    if out_h < 1 or out_w < 1:
        raise ValueError(f"imresize of a {h}x{w} image by {scale} gives an empty image")
    # MATLAB resizes the dimension with the smaller scale first (rows first on ties)
    order = (0, 1) if scales[0] <= scales[1] else (1, 0)
    out = arr
    lens = (out_h, out_w)
    for axis in order:
        out = _resize_dim(out, axis, lens[axis], scales[axis], antialias)
        if is_uint8:
            out = _round_uint8(out)
    return out


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so that height and width are multiples of ``scale``."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]
