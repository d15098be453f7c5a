"""Candidate operations of the inner search space (paper Sec. 3.1, REFERENCE.md section 1).

A DARTS-style registry: ``OPS[name](C, stride, affine=..., act=...)`` builds one op. The
supernet's mixed edges and the derived network's fixed edges build their ops from this one
registry, so a name always means the same module.

Names follow DARTS; the released HiNAS code's names (``con_c_3x3_leaky`` ...) are accepted as
aliases when reading its genotypes. The activation is a parameter of every op, not part of its
name (the reference keeps four copies of each op, one per activation).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

LEAKY_SLOPE = 0.2  # the reference uses LeakyReLU(0.2) everywhere

# Initial scale (gamma) of affine BatchNorms. The released code pins torch 1.0.0, whose
# BatchNorm drew gamma from U(0, 1); torch >= 1.2 starts it at 1. With gamma = 1 the untrained
# derived network's residual is as large as the image and SGD at the code's lr 0.05 explodes
# within a few iterations (REFERENCE 12), so "torch1" is the default everywhere.
BN_INITS = ("torch1", "ones")


def init_batchnorm(module: nn.Module, mode: str = "torch1") -> nn.Module:
    """Set every affine BatchNorm's weight in ``module`` as ``mode`` says; shifts start at 0.

    ``"torch1"`` draws the weights from U(0, 1) with the global torch RNG, in module order, so a
    seeded run is deterministic; ``"ones"`` keeps today's torch default. Used by both the
    supernet and the derived network, so the two always agree.
    """
    if mode not in BN_INITS:
        raise ValueError(f"bn_init must be one of {', '.join(BN_INITS)}, got {mode!r}")
    if mode == "ones":
        return module
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
                m.weight.uniform_(0.0, 1.0)
    return module


def make_activation(act: str) -> nn.Module:
    if act == "leaky_relu":
        return nn.LeakyReLU(LEAKY_SLOPE, inplace=False)
    if act == "relu":
        return nn.ReLU(inplace=False)
    if act == "prelu":
        return nn.PReLU()
    raise KeyError(f"unknown activation {act!r}; choose one of leaky_relu, relu, prelu")


class ActConvBN(nn.Sequential):
    """act -> Conv2d(k, dilation d, no bias) -> BN: the reference's ``LeakyConvBN``."""

    def __init__(self, C: int, kernel: int, dilation: int, stride: int, affine: bool, act: str):
        padding = dilation * (kernel - 1) // 2
        super().__init__(
            make_activation(act),
            nn.Conv2d(C, C, kernel, stride=stride, padding=padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(C, affine=affine),
        )


class SepConvUnit(nn.Sequential):
    """act -> depthwise kxk -> pointwise 1x1 -> BN (one unit of the reference's ``LeakySepConv``)."""

    def __init__(self, C: int, kernel: int, stride: int, affine: bool, act: str):
        super().__init__(
            make_activation(act),
            nn.Conv2d(C, C, kernel, stride=stride, padding=kernel // 2, groups=C, bias=False),
            nn.Conv2d(C, C, 1, bias=False),
            nn.BatchNorm2d(C, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked separable units, as DARTS and the reference do (receptive field 2k-1)."""

    def __init__(self, C: int, kernel: int, stride: int, affine: bool, act: str):
        super().__init__(
            SepConvUnit(C, kernel, stride, affine, act),
            SepConvUnit(C, kernel, 1, affine, act),
        )


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """The 'none' op. Multiplies by zero (as the reference) so shapes and devices follow x."""

    def __init__(self, stride: int = 1):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


OpFactory = Callable[..., nn.Module]
OPS: dict[str, OpFactory] = {}


def register_op(name: str):
    """Decorator: add an op factory ``f(C, stride, *, affine, act)`` to :data:`OPS`."""

    def decorate(factory: OpFactory) -> OpFactory:
        if name in OPS:
            raise KeyError(f"op {name!r} is already registered")
        OPS[name] = factory
        return factory

    return decorate


@register_op("conv_3x3")
def _conv_3x3(C, stride=1, *, affine=True, act="leaky_relu"):
    return ActConvBN(C, 3, 1, stride, affine, act)


@register_op("sep_conv_3x3")
def _sep_conv_3x3(C, stride=1, *, affine=True, act="leaky_relu"):
    return SepConv(C, 3, stride, affine, act)


@register_op("sep_conv_5x5")
def _sep_conv_5x5(C, stride=1, *, affine=True, act="leaky_relu"):
    return SepConv(C, 5, stride, affine, act)


@register_op("dil_conv_3x3")
def _dil_conv_3x3(C, stride=1, *, affine=True, act="leaky_relu"):
    # A full (not separable) 3x3 conv with dilation 2, as the released code does.
    return ActConvBN(C, 3, 2, stride, affine, act)


@register_op("dil_conv_5x5")
def _dil_conv_5x5(C, stride=1, *, affine=True, act="leaky_relu"):
    return ActConvBN(C, 5, 2, stride, affine, act)


@register_op("skip_connect")
def _skip_connect(C, stride=1, *, affine=True, act="leaky_relu"):
    if stride != 1:
        raise ValueError("skip_connect supports stride 1 only (HiNAS never strides)")
    return Identity()


@register_op("none")
def _none(C, stride=1, *, affine=True, act="leaky_relu"):
    return Zero(stride)


# The order matters: alpha's last axis is indexed by it (the reference's NO_DEF_L).
PRIMITIVE_SETS: dict[str, tuple[str, ...]] = {
    "hinas": (
        "conv_3x3",
        "sep_conv_3x3",
        "sep_conv_5x5",
        "dil_conv_3x3",
        "dil_conv_5x5",
        "skip_connect",
        "none",
    ),
}

# Names used by the released code (NO_DEF_L) -> our names.
REFERENCE_NAMES = {
    "con_c_3x3_leaky": "conv_3x3",
    "sep_c_3x3_leaky": "sep_conv_3x3",
    "sep_c_5x5_leaky": "sep_conv_5x5",
    "dil_c_3x3_leaky": "dil_conv_3x3",
    "dil_c_5x5_leaky": "dil_conv_5x5",
    "skip_connect": "skip_connect",
    "none": "none",
}

# Receptive field of each op along one axis (two stacked sep units: 2k-1; dilation d: d(k-1)+1).
RECEPTIVE_FIELD = {
    "conv_3x3": 3,
    "sep_conv_3x3": 5,
    "sep_conv_5x5": 9,
    "dil_conv_3x3": 5,
    "dil_conv_5x5": 9,
    "skip_connect": 1,
    "none": 0,
}


def canonical_op_name(name: str) -> str:
    """Map a DARTS-style or reference name to the registry name, or raise KeyError."""
    if name in OPS:
        return name
    if name in REFERENCE_NAMES:
        return REFERENCE_NAMES[name]
    raise KeyError(f"unknown op {name!r}; known ops: {', '.join(OPS)}")


def build_op(name: str, C: int, *, affine: bool, act: str = "leaky_relu") -> nn.Module:
    """Build op ``name`` at C channels with stride 1 (HiNAS never strides; REFERENCE 1)."""
    return OPS[canonical_op_name(name)](C, 1, affine=affine, act=act)


def op_parameter_count(name: str, C: int, *, affine: bool) -> int:
    """Analytic parameter count of one op (REFERENCE.md section 1), for tests and the book."""
    bn = 2 * C if affine else 0
    name = canonical_op_name(name)
    if name in ("conv_3x3", "dil_conv_3x3"):
        return 9 * C * C + bn
    if name == "dil_conv_5x5":
        return 25 * C * C + bn
    if name == "sep_conv_3x3":
        return 2 * (9 * C + C * C) + 2 * bn
    if name == "sep_conv_5x5":
        return 2 * (25 * C + C * C) + 2 * bn
    return 0


# -- the fixed blocks around the cells (stems, scalers, decoders) of the supernet and the derived net
def conv_bn(c_in: int, c_out: int, kernel: int, *, affine: bool = True, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (kernel - 1) // 2
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(c_out, affine=affine),
    )


def conv_bn_act(c_in: int, c_out: int, kernel: int, *, affine: bool = True) -> nn.Sequential:
    return nn.Sequential(*conv_bn(c_in, c_out, kernel, affine=affine), nn.LeakyReLU(LEAKY_SLOPE))


def sep3x3_bn(c_in: int, c_out: int, dilation: int = 1) -> nn.Sequential:
    """Depthwise 3x3 (dilated) -> BN -> LReLU -> 1x1 -> BN -> LReLU (reference ``sep3x3_bn``)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_in, 3, padding=dilation, dilation=dilation, groups=c_in, bias=False),
        nn.BatchNorm2d(c_in),
        nn.LeakyReLU(LEAKY_SLOPE),
        nn.Conv2d(c_in, c_out, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(LEAKY_SLOPE),
    )
