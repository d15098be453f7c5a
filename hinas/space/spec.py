"""Configuration of the search space (the supernet) in one typed object.

The same :class:`SupernetConfig` is used by the Python API, the command line and the
notebooks' papermill parameters (the engine's run configuration embeds it). Defaults follow
the released code (REFERENCE.md); where the paper says otherwise, the paper's choice is a
named switch (``width_factors=(1, 2, 4)``, ``cell_sharing='eq6'`` for the Auto-DeepLab
baseline the release lacks).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from hinas.errors import ConfigError
from hinas.space.ops import BN_INITS, OPS, PRIMITIVE_SETS

TASKS = ("denoise", "sr")
CELL_SHARING = ("eq5", "eq6")
SR_SKIP_MODES = ("bilinear", "bicubic")
MEMORY_SAVING = ("none", "recompute")

# Width factors of the three levels: the released code's default, and the paper's 2^i.
REFERENCE_WIDTHS = (1.0, 1.5, 2.0)
PAPER_WIDTHS = (1.0, 2.0, 4.0)


@dataclass(frozen=True)
class SupernetConfig:
    """Hyper-parameters of the HiNAS supernet (paper Sec. 3, REFERENCE.md sections 1-3).

    Attributes:
        task: ``'denoise'`` (residual ``x - net(x)``) or ``'sr'`` (upsampled x + pixel shuffle).
        scale: SR factor (2, 3, 4); ``None`` for denoising.
        in_channels: 1 for grey denoising, 3 for SR (RGB).
        f: channels per cell node at width level 0 (10 dn / 8 SR in search). Must make
            ``f * width_factor`` an integer at every level.
        layers: L, number of cell layers (3 dn, 2 SR).
        steps: B, intermediate nodes per cell (4 dn, 3 SR).
        levels: S, number of width levels (3).
        width_factors: channels multiplier per level, (1, 1.5, 2) as the code or (1, 2, 4).
        primitives: the candidate op names, in alpha's order.
        lwas: layer-wise architecture sharing: one alpha per layer (True, the paper's LWAS),
            or one alpha for all layers (False; the reference's TIE_CELL).
        cell_sharing: ``'eq5'`` (one shared cell fed the beta-weighted sum, HiNAS) or
            ``'eq6'`` (each incoming path through the cell, then weighted, Auto-DeepLab).
        residual: residual learning (the paper's ResL, Tables 1/2): denoise predicts
            ``x - net(x)``, SR ``up(x) + net(x)``. False makes the network predict the image.
        search_sigmoid: apply a sigmoid after the residual addition, as the released search
            code does (REFERENCE 3.6).
        sr_skip: upsampling of the SR skip branch in search: 'bilinear' (code) or 'bicubic'.
        affine: BN affine parameters in search cells (False in the reference search).
        act: activation inside ops ('leaky_relu', 'relu', 'prelu').
        stem_channels: width of the stem convolutions (64).
        aspp_rate: dilation of the search decoder's separable atrous branch (16).
        bn_init: initial scale of the affine BatchNorms: ``'torch1'`` = U(0, 1) as the torch
            1.0.0 the release pins (the default), ``'ones'`` = today's torch.
        mask_value: logit for impossible beta moves. ``-inf`` gives them exactly zero weight;
            the reference uses -50 (weight ~e-22), which is the same up to float rounding.
        memory_saving: ``'none'`` (as the code) or ``'recompute'``: every mixed op is
            checkpointed, so its seven ops' activations are recomputed in backward instead of
            stored. Same loss, same gradients, same BatchNorm statistics; about one more forward.
        partial_channels: K > 1 sends only a 1/K channel slice through each mixed op (the rest
            bypasses it; channels are then shuffled) and adds an edge-normalisation weight per
            edge, as PC-DARTS. Cuts memory further but changes the search (not the paper's).
    """

    task: str = "denoise"
    scale: int | None = None
    in_channels: int = 1
    f: int = 10
    layers: int = 3
    steps: int = 4
    levels: int = 3
    width_factors: tuple[float, ...] = REFERENCE_WIDTHS
    primitives: tuple[str, ...] = PRIMITIVE_SETS["hinas"]
    lwas: bool = True
    cell_sharing: str = "eq5"
    residual: bool = True
    search_sigmoid: bool = True
    sr_skip: str = "bilinear"
    affine: bool = False
    act: str = "leaky_relu"
    stem_channels: int = 64
    aspp_rate: int = 16
    bn_init: str = "torch1"
    mask_value: float = float("-inf")
    memory_saving: str = "none"
    partial_channels: int = 1

    def __post_init__(self):
        object.__setattr__(self, "width_factors", tuple(float(w) for w in self.width_factors))
        object.__setattr__(self, "primitives", tuple(self.primitives))
        self.validate()

    # -- construction -------------------------------------------------------------------
    @classmethod
    def paper(cls, task: str = "denoise", scale: int | None = None, **overrides) -> "SupernetConfig":
        """The search configuration of the released code for ``task`` (REFERENCE 3.7)."""
        if task == "denoise":
            base = dict(task="denoise", scale=None, in_channels=1, f=10, layers=3, steps=4)
        elif task == "sr":
            base = dict(task="sr", scale=scale or 4, in_channels=3, f=8, layers=2, steps=3)
        else:
            raise ConfigError(f"task must be one of {TASKS}, got {task!r}")
        base.update(overrides)
        return cls(**base)

    def replace(self, **changes) -> "SupernetConfig":
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown supernet setting(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["width_factors"] = list(self.width_factors)
        d["primitives"] = list(self.primitives)
        d["mask_value"] = str(self.mask_value) if self.mask_value == float("-inf") else self.mask_value
        return d

    # -- derived quantities ---------------------------------------------------------------
    def channels(self, level: int, f: int | None = None) -> int:
        """Channels per node at width level ``level`` (the cell outputs steps x this)."""
        return int((f or self.f) * self.width_factors[level])

    def levels_in_layer(self, layer: int) -> int:
        """Layer l has min(l + 2, S) width levels (layer 0 has two: REFERENCE 3.3)."""
        return min(layer + 2, self.levels)

    @property
    def edges_per_cell(self) -> int:
        return sum(2 + i for i in range(self.steps))

    def validate(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.task == "sr" and self.scale not in (2, 3, 4, 8):
            raise ConfigError(f"sr needs scale in 2, 3, 4, 8; got {self.scale!r}")
        if self.task == "denoise" and self.scale not in (None, 1):
            raise ConfigError("denoise takes no scale; remove it")
        for name in ("f", "layers", "steps", "levels", "in_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.levels < 2:
            raise ConfigError("levels must be at least 2 (layer 0 already has two)")
        if len(self.width_factors) < self.levels:
            raise ConfigError(
                f"width_factors has {len(self.width_factors)} entries but levels={self.levels}; "
                "give one factor per level"
            )
        for level in range(self.levels):
            c = self.f * self.width_factors[level]
            if abs(c - round(c)) > 1e-9:
                raise ConfigError(
                    f"f={self.f} times width factor {self.width_factors[level]} is not an integer; "
                    "use an even f (the reference truncates, which breaks the router widths)"
                )
        unknown = [p for p in self.primitives if p not in OPS]
        if unknown:
            raise ConfigError(f"unknown primitive(s) {unknown}; known: {', '.join(OPS)}")
        if self.cell_sharing not in CELL_SHARING:
            raise ConfigError(f"cell_sharing must be 'eq5' or 'eq6', got {self.cell_sharing!r}")
        if self.bn_init not in BN_INITS:
            raise ConfigError(f"bn_init must be one of {BN_INITS}, got {self.bn_init!r}")
        if self.memory_saving not in MEMORY_SAVING:
            raise ConfigError(f"memory_saving must be one of {MEMORY_SAVING}, got {self.memory_saving!r}")
        if not isinstance(self.partial_channels, int) or not 1 <= self.partial_channels <= self.channels(0):
            raise ConfigError(f"partial_channels must be an integer from 1 (off) to the level-0 width "
                              f"{self.channels(0)}, got {self.partial_channels!r}")
        if self.sr_skip not in SR_SKIP_MODES:
            raise ConfigError(f"sr_skip must be one of {SR_SKIP_MODES}, got {self.sr_skip!r}")
