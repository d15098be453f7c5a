"""Training loss: (w_data * data + w_ssim * log10(1/SSIM)) / n_terms (REFERENCE 7).

The released code divides the weighted sum by the number of terms; the paper writes
``MSE + 0.6 * lssim``. Per-task defaults follow the code (the numbers it produced):

==========  =========  ======  ==================================
task        phase      data    ssim weight
==========  =========  ======  ==================================
denoise     search     MSE     0.5
denoise     train      MSE     0.6
sr          both       L1      0.6 (the paper says MSE)
==========  =========  ======  ==================================

The Gaussian SSIM window is a registered buffer, so ``loss.to(device)`` moves it with the
model (the released SR loss kept it on the CPU and crashed on a GPU, HiNAS issue #3).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hinas.errors import ConfigError

SSIM_FLOOR = 1e-4

DEFAULT_TERMS = {
    ("denoise", "search"): ("mse", 0.5),
    ("denoise", "train"): ("mse", 0.6),
    ("sr", "search"): ("l1", 0.6),
    ("sr", "train"): ("l1", 0.6),
}


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).float()


def differentiable_ssim(img1: torch.Tensor, img2: torch.Tensor, window: torch.Tensor | None = None,
                        data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM of NxCxHxW tensors, as the reference loss: Gaussian 11x11, sigma 1.5, zero
    padding (full-size map, borders included). Differentiable; NOT the evaluation metric
    (that one is :func:`hinas.metrics.calculate_ssim`, MATLAB's 'valid' SSIM on uint8 images)."""
    if window is None:
        window = gaussian_window().to(img1)
    c = img1.shape[1]
    k = window.shape[-1]
    w = window.to(img1.dtype).expand(c, 1, k, k)
    pad = k // 2
    mu1 = F.conv2d(img1, w, padding=pad, groups=c)
    mu2 = F.conv2d(img2, w, padding=pad, groups=c)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s11 = F.conv2d(img1 * img1, w, padding=pad, groups=c) - mu1_sq
    s22 = F.conv2d(img2 * img2, w, padding=pad, groups=c) - mu2_sq
    s12 = F.conv2d(img1 * img2, w, padding=pad, groups=c) - mu12
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ssim_map = ((2 * mu12 + c1) * (2 * s12 + c2)) / ((mu1_sq + mu2_sq + c1) * (s11 + s22 + c2))
    return ssim_map.mean()


class RestorationLoss(nn.Module):
    """``(w_data * data(pred, target) + w_ssim * log10(1 / SSIM)) / n_terms``.

    ``n_terms`` counts the terms with non-zero weight (2 by default), as the reference.
    """

    def __init__(self, task: str = "denoise", phase: str = "train", *, data: str | None = None,
                 data_weight: float = 1.0, ssim_weight: float | None = None,
                 divide_by_terms: bool = True):
        super().__init__()
        if (task, phase) not in DEFAULT_TERMS:
            raise ConfigError(f"loss: unknown task/phase {task!r}/{phase!r}; use denoise|sr and search|train")
        default_data, default_ssim = DEFAULT_TERMS[(task, phase)]
        self.data = data or default_data
        if self.data not in ("mse", "l1"):
            raise ConfigError(f"loss: data term must be 'mse' or 'l1', got {self.data!r}")
        self.data_weight = float(data_weight)
        self.ssim_weight = float(default_ssim if ssim_weight is None else ssim_weight)
        n = int(self.data_weight != 0) + int(self.ssim_weight != 0)
        if n == 0:
            raise ConfigError("loss: both weights are zero; nothing to minimise")
        self.n_terms = n if divide_by_terms else 1
        self.register_buffer("window", gaussian_window(), persistent=False)

    def terms(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        data = F.mse_loss(pred, target) if self.data == "mse" else F.l1_loss(pred, target)
        # SSIM can be <= 0 for a wild early prediction, where log10 is undefined (the reference
        # would return NaN); clamping keeps the data term in charge until SSIM is positive.
        log_ssim = -torch.log10(differentiable_ssim(pred, target, self.window).clamp_min(SSIM_FLOOR))
        return {"data": data, "log_ssim": log_ssim}

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        t = self.terms(pred, target)
        total = pred.new_zeros(())
        if self.data_weight:
            total = total + self.data_weight * t["data"]
        if self.ssim_weight:
            total = total + self.ssim_weight * t["log_ssim"]
        return total / self.n_terms

    def extra_repr(self) -> str:
        return f"({self.data_weight}*{self.data} + {self.ssim_weight}*log10(1/SSIM)) / {self.n_terms}"


def psnr_from_mse(mse: float, peak: float = 1.0) -> float:
    return 10 * math.log10(peak**2 / mse) if mse > 0 else float("inf")
