"""Derived networks built from a Genotype alone (REFERENCE 5.1), with size and FLOP counts.

The structure follows the released ``Dn_compnet`` / ``Sr_compnet``: a 64-channel start part,
one fixed cell per layer at the level the path chose, two *scalers* (LReLU -> 1x1 conv-BN)
aligning each cell's inputs, and a DeepLabV3+-style decoder that joins the last cell with a
low-level *endpoint*. The supernet's weights are not inherited: the network trains from
scratch with f doubled (20 for denoising, 16 for SR).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hinas.space.genotype import Genotype
from hinas.space.ops import LEAKY_SLOPE, build_op, canonical_op_name, conv_bn, conv_bn_act, init_batchnorm, sep3x3_bn

DEFAULT_F = {"denoise": 20, "sr": 16}
DECODER_CHANNELS = 128
ENDPOINT_CHANNELS = 48
SR_ASPP_RATES = (2, 4, 6)


class FixedCell(nn.Module):
    """A derived cell: node i = op_{2i}(state) + op_{2i+1}(state); output = concat of nodes."""

    def __init__(self, gene, C: int, steps: int, act: str = "leaky_relu"):
        super().__init__()
        self.steps = steps
        self.inputs = [j for _, j in gene]
        self.ops = nn.ModuleList(build_op(op, C, affine=True, act=act) for op, _ in gene)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [s1, s0]  # index 0 = h_{l-2}, 1 = h_{l-1}, as in the search cell
        for i in range(self.steps):
            a, b = 2 * i, 2 * i + 1
            states.append(self.ops[a](states[self.inputs[a]]) + self.ops[b](states[self.inputs[b]]))
        return torch.cat(states[-self.steps:], dim=1)


class Scaler(nn.Module):
    """LReLU -> 1x1 conv -> BN: aligns a cell input to the cell's width (``DeepLabScaler_Width``)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.proj = conv_bn(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.leaky_relu(x, LEAKY_SLOPE))


# ASPP parameter names of the former search-decoder class ``ASPPHead`` (supernet checkpoints
# written before the two heads became one class) -> their names now
ASPP_LEGACY_KEYS = {"branch_1x1.": "branches.0.", "branch_atrous.": "branches.1."}


class ASPP(nn.Module):
    """ASPP without global pooling: a 1x1 branch and one separable atrous branch per rate, joined
    by a 1x1 projection (conv-BN-LReLU each). One class for both decoders:

    * the derived SR network's ``pre_conv`` (rates 2, 4, 6; REFERENCE 5.1);
    * the supernet's per-level heads (one rate, 16; REFERENCE 3.5), where ``affine`` applies to
      the 1x1 branch and the projection (the released ``ASPPModule`` passes
      ``cfg.MODEL.AFFINE``, False in search); the separable branches' BNs are always affine.

    A state dict with the former ``ASPPHead`` names (see ``ASPP_LEGACY_KEYS``) loads as well.
    """

    def __init__(self, c_in: int, c_out: int, rates, affine: bool = True):
        super().__init__()
        self.branches = nn.ModuleList([conv_bn_act(c_in, c_out, 1, affine=affine)]
                                      + [sep3x3_bn(c_in, c_out, dilation=r) for r in rates])
        self.project = conv_bn_act(c_out * (1 + len(rates)), c_out, 1, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([b(x) for b in self.branches], dim=1))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for old, new in ASPP_LEGACY_KEYS.items():
            for key in [k for k in state_dict if k.startswith(prefix + old)]:
                state_dict[prefix + new + key[len(prefix + old):]] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def endpoint_layer(path: list[int]) -> int | None:
    """Index of the cell whose output feeds the decoder's low-level branch (REFERENCE 5.1).

    The last level-0 cell on the path, unless it is the final cell or there is none; then
    ``None``, meaning the reduced stem output.
    """
    zeros = [l for l, h in enumerate(path) if h == 0]
    if not zeros or zeros[-1] == len(path) - 1:
        return None
    return zeros[-1]


class DerivedNetwork(nn.Module):
    """HiNAS network for denoising (``x - net(x)``) or SR (``bicubic(x) + net(x)``)."""

    def __init__(self, genotype: Genotype, f: int | None = None, *, act: str = "leaky_relu",
                 stem_channels: int = 64, residual: bool = True,
                 node_channels: list[int] | None = None, bn_init: str = "torch1"):
        """``node_channels`` overrides the searched widths with fixed per-layer channels per
        node (the paper's HiNAS-w40 = [40]*L and HiNAS-wm = [20, 40, 80], Table 3).
        ``bn_init``: affine BatchNorm scales from U(0, 1) (``'torch1'``, as the release's torch
        1.0.0) or at 1 (``'ones'``); see :func:`hinas.space.ops.init_batchnorm`."""
        super().__init__()
        g = genotype
        self.genotype = g
        self.task = g.task
        self.scale = g.scale
        self.f = f or DEFAULT_F[g.task]
        self.residual_learning = residual
        B, c_in = g.steps, g.in_channels
        width = [int(self.f * w) for w in g.width_factors]
        if node_channels is not None and len(node_channels) != g.layers:
            raise ValueError(f"node_channels needs one entry per layer ({g.layers}), got {len(node_channels)}")
        self.node_channels = [int(c) for c in node_channels] if node_channels else [width[h] for h in g.path]
        self.stem1 = conv_bn_act(c_in, stem_channels, 3)
        self.stem2 = conv_bn(stem_channels, stem_channels, 3)
        self.reduce = conv_bn(stem_channels, self.f * B, 3, affine=False)

        self.cells = nn.ModuleList()
        self.scalers0 = nn.ModuleList()  # for s0 = h_{l-1}
        self.scalers1 = nn.ModuleList()  # for s1 = h_{l-2}
        out_channels = []
        for layer, level in enumerate(g.path):
            C = self.node_channels[layer]
            if layer == 0:
                c0, c1 = stem_channels, stem_channels  # stem2, stem1
            elif layer == 1:
                c0, c1 = out_channels[0], stem_channels  # cell 0, stem2
            else:
                c0, c1 = out_channels[layer - 1], out_channels[layer - 2]
            self.scalers0.append(Scaler(c0, C))
            self.scalers1.append(Scaler(c1, C))
            self.cells.append(FixedCell([(canonical_op_name(o), j) for o, j in g.cells[layer]], C, B, act))
            out_channels.append(B * C)

        self.endpoint = endpoint_layer(g.path)
        c_last = out_channels[-1]
        if g.task == "denoise":
            self.pre_conv = conv_bn_act(c_last, DECODER_CHANNELS, 1)
            c_final = c_in
        else:
            self.pre_conv = ASPP(c_last, DECODER_CHANNELS, SR_ASPP_RATES)
            c_final = 3 * g.scale**2
        c_low = self.f * B if self.endpoint is None else out_channels[self.endpoint]
        self.proj = conv_bn_act(c_low, ENDPOINT_CHANNELS, 1)
        self.fuse = nn.Sequential(
            sep3x3_bn(DECODER_CHANNELS + ENDPOINT_CHANNELS, DECODER_CHANNELS),
            sep3x3_bn(DECODER_CHANNELS, DECODER_CHANNELS),
        )
        self.classifier = nn.Conv2d(DECODER_CHANNELS, c_final, 3, padding=1, bias=True)
        self.shuffle = nn.PixelShuffle(g.scale) if g.task == "sr" else nn.Identity()
        self.bn_init = bn_init
        init_batchnorm(self, bn_init)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The network's output before the skip is added (what the cells learn)."""
        s1 = self.stem1(x)
        s2 = self.stem2(F.leaky_relu(s1, LEAKY_SLOPE))
        outs: list[torch.Tensor] = []
        for layer, cell in enumerate(self.cells):
            if layer == 0:
                h0, h1 = s2, s1
            elif layer == 1:
                h0, h1 = outs[0], s2
            else:
                h0, h1 = outs[-1], outs[-2]
            outs.append(cell(self.scalers0[layer](h0), self.scalers1[layer](h1)))
        low = self.reduce(s2) if self.endpoint is None else outs[self.endpoint]
        high = self.pre_conv(F.leaky_relu(outs[-1], LEAKY_SLOPE))
        y = self.fuse(torch.cat([high, self.proj(low)], dim=1))
        return self.shuffle(self.classifier(y))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net = self.residual(x)
        if not self.residual_learning:
            return net
        if self.task == "denoise":
            return x - net
        # PyTorch bicubic (a = -0.75), as the released SR network.
        up = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return up + net


def build_network(genotype: Genotype, f: int | None = None, **kwargs) -> DerivedNetwork:
    return DerivedNetwork(genotype, f, **kwargs)


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def count_flops(module: nn.Module, size=(64, 64), in_channels: int | None = None) -> dict:
    """FLOPs of one forward pass on a 1xCxHxW input, by ``torch.utils.flop_counter``.

    ``flops`` counts a multiply-add as two operations (torch's convention); ``macs`` is half.
    """
    if in_channels is None:
        in_channels = getattr(getattr(module, "genotype", None), "in_channels", None) or 1
    h, w = size
    first = next(iter(module.parameters()), None)  # parameter-free ops (skip) live on the CPU
    device = first.device if first is not None else torch.device("cpu")
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(torch.zeros(1, in_channels, h, w, device=device))
    finally:
        module.train(was_training)
    flops = int(counter.get_total_flops())
    return {"flops": flops, "macs": flops // 2, "size": [h, w]}
