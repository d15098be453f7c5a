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

# What the SSIM term does when the batch's mean SSIM is <= 0 (a wild early prediction):
# "gradient": as the released code, whose ``-log10(mean SSIM)`` is NaN there but whose gradient,
#   -1/(x ln 10), stays finite, so its training goes on along that gradient (REFERENCE 12). We
#   follow the same gradient and report the finite value -log10(SSIM_FLOOR) instead of NaN.
# "clamp": floor SSIM at SSIM_FLOOR before log10, which zeroes that term's gradient.
NONPOSITIVE_SSIM_MODES = ("gradient", "clamp")

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
    (that one is :func:`hinas.eval.metrics.calculate_ssim`, MATLAB's 'valid' SSIM on uint8 images)."""
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


class _NegLog10Reference(torch.autograd.Function):
    """``-log10(x)`` whose value is floored (finite) but whose gradient is -1/(x ln 10) for any
    x, positive or not: the gradient the released code follows when its loss value is NaN."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return -torch.log10(x.clamp_min(SSIM_FLOOR))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return -grad / (x * math.log(10.0))


def neg_log10_ssim(mean_ssim: torch.Tensor, mode: str = "gradient") -> torch.Tensor:
    """``log10(1 / SSIM)`` with the behaviour at SSIM <= 0 named by ``mode``."""
    if mode == "gradient":
        return _NegLog10Reference.apply(mean_ssim)
    if mode == "clamp":
        return -torch.log10(mean_ssim.clamp_min(SSIM_FLOOR))
    raise ConfigError(f"loss: nonpositive_ssim must be one of {NONPOSITIVE_SSIM_MODES}, got {mode!r}")


class RestorationLoss(nn.Module):
    """``(w_data * data(pred, target) + w_ssim * log10(1 / SSIM)) / n_terms``.

    ``n_terms`` counts the terms with non-zero weight (2 by default), as the reference.
    ``nonpositive_ssim`` names what happens at a mean SSIM <= 0 (see
    :data:`NONPOSITIVE_SSIM_MODES`); ``nonpositive_events`` counts those batches on the device
    (read it at a log interval, not every step, to keep the step free of host syncs).
    """

    def __init__(self, task: str = "denoise", phase: str = "train", *, data: str | None = None,
                 data_weight: float = 1.0, ssim_weight: float | None = None,
                 divide_by_terms: bool = True, nonpositive_ssim: str = "gradient"):
        super().__init__()
        if nonpositive_ssim not in NONPOSITIVE_SSIM_MODES:
            raise ConfigError(f"loss: nonpositive_ssim must be one of {NONPOSITIVE_SSIM_MODES}, "
                              f"got {nonpositive_ssim!r}")
        self.nonpositive_ssim = nonpositive_ssim
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
        self.register_buffer("nonpositive_events", torch.zeros((), dtype=torch.long), persistent=False)

    def take_nonpositive_events(self) -> int:
        """Batches with mean SSIM <= 0 since the last call (one host sync)."""
        n = int(self.nonpositive_events.item())
        self.nonpositive_events.zero_()
        return n

    def terms(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        data = F.mse_loss(pred, target) if self.data == "mse" else F.l1_loss(pred, target)
        s = differentiable_ssim(pred, target, self.window)
        self.nonpositive_events += (s.detach() <= 0).long()
        log_ssim = neg_log10_ssim(s, self.nonpositive_ssim)
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
