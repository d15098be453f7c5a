"""The HiNAS supernet: inner space (supercells, alpha) and outer space (width levels, beta).

Paper Sec. 3 and REFERENCE.md sections 2-3. The network is written as a loop over a
(layer, level) grid. Every *source* (the stem, then every cell that is not in the last layer)
owns a router with one 1x1 conv-BN per possible move (narrower / same / wider) and one row of
beta; impossible moves are masked before the softmax over the three outgoing moves.

Cell sharing (``SupernetConfig.cell_sharing``):

* ``'eq5'`` (HiNAS, default): each target cell runs once, on the beta-weighted sum of its
  aligned inputs: ``h = Cell(sum_k beta_k * f_k, s1)``.
* ``'eq6'`` (Auto-DeepLab): each incoming path runs through its own cell, and the outputs are
  weighted afterwards: ``h = sum_k beta_k * Cell_k(f_k, s1)``. The release lacks it; we add it
  as the baseline of the paper's Tables 8/9.

In both modes the ``s1`` (h_{l-2}) input of a cell at layer l+1 is the beta-mixed input that
was fed to the layer-l cell of the same level, as the released code does (REFERENCE 3.4).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from hinas.space.spec import SupernetConfig
from hinas.space.grid import MOVE_NAMES, MOVES, Source, grid_sources  # noqa: F401 (re-exported)
from hinas.space.network import ASPP
from hinas.space.ops import LEAKY_SLOPE, build_op, canonical_op_name, conv_bn, conv_bn_act, init_batchnorm


class _FrozenBatchStats:
    """While backward recomputes a checkpointed mixed op, its BatchNorms must not update their
    running statistics a second time. Momentum 0 keeps ``running_mean``/``running_var`` exactly
    as they are (the normalisation itself still uses the batch statistics, as in the first
    forward, and autograd saves the same tensors); ``num_batches_tracked`` is put back after."""

    def __init__(self, module: nn.Module):
        self.norms = [m for m in module.modules()
                      if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]

    def __enter__(self):
        self.saved = [(m.momentum, m.num_batches_tracked.clone()) for m in self.norms]
        for m in self.norms:
            m.momentum = 0.0

    def __exit__(self, *exc):
        for m, (momentum, count) in zip(self.norms, self.saved):
            m.momentum = momentum
            m.num_batches_tracked.copy_(count)
        return False


class MixedOp(nn.Module):
    """One edge of the supercell: ``sum_k w_k op_k(x)`` over all candidate ops (DARTS).

    ``partial_channels=K`` (PC-DARTS): only the first ``C // K`` channels go through the ops, the
    rest bypass them, and a fixed channel shuffle makes a different slice take the ops at the
    next edge. ``recompute=True``: the edge is checkpointed (only its input is kept for
    backward; the ops run again there), and the weighted sum is built op by op, so at most one
    op's activations are alive at a time.
    """

    def __init__(self, C: int, primitives, *, affine: bool, act: str, partial_channels: int = 1,
                 recompute: bool = False):
        super().__init__()
        self.primitives = tuple(primitives)
        self.partial = C // partial_channels if partial_channels > 1 else C
        self.ops = nn.ModuleList(build_op(p, self.partial, affine=affine, act=act) for p in primitives)
        self.recompute = recompute
        if self.partial < C:
            # channel c goes to position (c mod K, c div K): a shuffle that works for any C and K
            order = sorted(range(C), key=lambda c: (c % partial_channels, c // partial_channels))
            self.register_buffer("shuffle", torch.tensor(order), persistent=False)

    def _mix(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        out = None
        for w, name, op in zip(weights, self.primitives, self.ops):
            if name == "none":
                # w * (x * 0) adds exactly zero and gives w a zero gradient; skip the tensor.
                continue
            term = w * op(x)
            out = term if out is None else out + term
        return out if out is not None else x.mul(0.0)

    def _edge(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if self.partial == x.shape[1]:
            return self._mix(x, weights)
        mixed = self._mix(x[:, : self.partial], weights)
        return torch.cat([mixed, x[:, self.partial:]], dim=1).index_select(1, self.shuffle)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if self.recompute and torch.is_grad_enabled():
            from torch.utils.checkpoint import checkpoint

            return checkpoint(self._edge, x, weights, use_reentrant=False, preserve_rng_state=False,
                              context_fn=lambda: (contextlib.nullcontext(), _FrozenBatchStats(self)))
        return self._edge(x, weights)


class SearchCell(nn.Module):
    """A supercell with B nodes (REFERENCE 2). Inputs: s0 = h_{l-1}, s1 = h_{l-2}.

    The state list is ``[s1, s0, node0, ...]`` (so input index 0 is h_{l-2}, 1 is h_{l-1});
    node i sums mixed edges from all 2+i earlier states; the output concatenates the B nodes.
    With ``edge_weights`` (partial channels' edge normalisation) each edge's output is scaled by
    its weight, normalised over the edges entering the same node.
    """

    def __init__(self, C: int, steps: int, primitives, *, affine: bool, act: str, partial_channels: int = 1,
                 recompute: bool = False):
        super().__init__()
        self.steps = steps
        self.edges = nn.ModuleList(
            MixedOp(C, primitives, affine=affine, act=act, partial_channels=partial_channels, recompute=recompute)
            for i in range(steps) for _ in range(2 + i)
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                edge_weights: torch.Tensor | None = None) -> torch.Tensor:
        states = [s1, s0]
        offset = 0
        for i in range(self.steps):
            terms = [self.edges[offset + j](h, weights[offset + j]) for j, h in enumerate(states)]
            if edge_weights is not None:
                terms = [edge_weights[offset + j] * t for j, t in enumerate(terms)]
            node = sum(terms)
            offset += len(states)
            states.append(node)
        return torch.cat(states[-self.steps:], dim=1)


class Router(nn.Module):
    """Aligns one source's output (B*C_h channels) to each level it may move to (1x1 conv-BN)."""

    def __init__(self, level: int, cfg: SupernetConfig):
        super().__init__()
        c_in = cfg.steps * cfg.channels(level)
        self.moves = nn.ModuleDict()
        for col, move in enumerate(MOVES):
            target = level + move
            if 0 <= target < cfg.levels:
                self.moves[str(col)] = conv_bn(c_in, cfg.channels(target), 1, affine=cfg.affine)

    def forward(self, x: torch.Tensor, col: int) -> torch.Tensor:
        return self.moves[str(col)](x)


def beta_mask(layers: int, levels: int) -> torch.Tensor:
    """True where a move is impossible: narrower from level 0, wider from level S-1."""
    sources = grid_sources(layers, levels)
    mask = torch.zeros(len(sources), 3, dtype=torch.bool)
    for s in sources:
        for col, move in enumerate(MOVES):
            if not 0 <= s.level + move < levels:
                mask[s.index, col] = True
    return mask


class Supernet(nn.Module):
    """The HiNAS supernet for denoising or super-resolution (search time)."""

    def __init__(self, cfg: SupernetConfig):
        super().__init__()
        self.cfg = cfg
        L, S, B, f = cfg.layers, cfg.levels, cfg.steps, cfg.f
        n_ops = len(cfg.primitives)
        stem_c = cfg.stem_channels

        # -- start part (REFERENCE 3.2) -------------------------------------------------------
        self.stem1 = conv_bn_act(cfg.in_channels, stem_c, 3, affine=cfg.affine)
        self.reduce1 = conv_bn(stem_c, f, 3, affine=cfg.affine)  # initial h_{l-2}, level 0
        self.stem2 = conv_bn(stem_c, f * B, 3, affine=cfg.affine)  # the level-0 source
        self.upsamplers = nn.ModuleList(
            conv_bn(cfg.channels(i - 1), cfg.channels(i), 1, affine=cfg.affine) for i in range(1, S)
        )

        # -- middle part: the (layer, level) grid --------------------------------------------
        self.sources = grid_sources(L, S)
        self.routers = nn.ModuleList(Router(s.level, cfg) for s in self.sources)
        self.cells = nn.ModuleDict()
        for layer in range(L):
            for level in range(cfg.levels_in_layer(layer)):
                for key in self._cell_keys(layer, level):
                    self.cells[key] = SearchCell(
                        cfg.channels(level), B, cfg.primitives, affine=cfg.affine, act=cfg.act,
                        partial_channels=cfg.partial_channels, recompute=cfg.memory_saving == "recompute",
                    )

        # -- architecture parameters (uniform init, as the reference) ------------------------
        k = cfg.edges_per_cell
        alpha_shape = (L, k, n_ops) if cfg.lwas else (k, n_ops)
        self.arch_alpha = nn.Parameter(torch.ones(alpha_shape))
        self.arch_beta = nn.Parameter(torch.ones(len(self.sources), 3))
        self.register_buffer("beta_mask", beta_mask(L, S), persistent=False)
        self._fixed: tuple[torch.Tensor, torch.Tensor] | None = None  # see fixed_architecture

        if cfg.partial_channels > 1:  # PC-DARTS edge normalisation: one weight per edge
            self.arch_edge = nn.Parameter(torch.ones(alpha_shape[:-1]))
        else:
            self.arch_edge = None

        # -- end part (REFERENCE 3.5) ---------------------------------------------------------
        last_levels = cfg.levels_in_layer(L - 1)
        self.aspp = nn.ModuleList(
            ASPP(B * cfg.channels(i), B * f, (cfg.aspp_rate,), affine=cfg.affine) for i in range(last_levels)
        )
        c_cat = last_levels * B * f
        c_out = cfg.in_channels if cfg.task == "denoise" else 3 * cfg.scale**2
        self.pre_cls = conv_bn_act(c_cat, c_cat, 3, affine=cfg.affine)
        self.classifier = nn.Conv2d(c_cat, c_out, 3, padding=1, bias=True)
        self.shuffle = nn.PixelShuffle(cfg.scale) if cfg.task == "sr" else nn.Identity()
        init_batchnorm(self, cfg.bn_init)

    # -- parameter groups -----------------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        extra = [self.arch_edge] if self.arch_edge is not None else []
        return [self.arch_alpha, self.arch_beta, *extra]

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def alpha_weights(self) -> torch.Tensor:
        """Softmax over ops, per edge (and per layer with LWAS): (L, k, n_ops) or (k, n_ops)."""
        if self._fixed is not None:
            return self._fixed[0]
        return F.softmax(self.arch_alpha, dim=-1)

    def beta_weights(self) -> torch.Tensor:
        """Softmax over each source's outgoing moves, impossible ones masked: (m, 3)."""
        if self._fixed is not None:
            return self._fixed[1]
        logits = self.arch_beta.masked_fill(self.beta_mask, self.cfg.mask_value)
        return F.softmax(logits, dim=-1)

    def one_hot_architecture(self, genotype) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha, beta) weights that select exactly ``genotype``'s cells and path: alpha 1 on each
        kept edge's op and 0 elsewhere; beta 1 on each move of the path and 0 elsewhere."""
        cfg = self.cfg
        k, prims = cfg.edges_per_cell, list(cfg.primitives)
        if genotype.steps != cfg.steps or len(genotype.path) != cfg.layers:
            raise ValueError(f"the genotype has {len(genotype.path)} layers x {genotype.steps} nodes; the supernet "
                             f"{cfg.layers} x {cfg.steps}")
        starts = [sum(2 + n for n in range(i)) for i in range(cfg.steps)]
        alpha = torch.zeros((cfg.layers, k, len(prims)))
        for layer in range(cfg.layers):
            for pos, (op, j) in enumerate(genotype.cells[layer]):
                alpha[layer, starts[pos // 2] + j, prims.index(canonical_op_name(op))] = 1.0
        if not cfg.lwas:
            alpha = alpha[0]
        row_of = {(src.layer, src.level): src.index for src in self.sources}
        beta = torch.zeros((len(self.sources), 3))
        prev = 0
        for layer, level in enumerate(genotype.path):
            beta[row_of[(layer - 1, prev)], level - prev + 1] = 1.0
            prev = level
        device = self.arch_alpha.device
        return alpha.to(device), beta.to(device)

    @contextlib.contextmanager
    def fixed_architecture(self, genotype):
        """Within the block the supernet runs ``genotype`` alone with its shared weights (one-hot
        alpha/beta instead of the softmaxes): random search with weight sharing scores samples so."""
        previous = self._fixed
        self._fixed = self.one_hot_architecture(genotype)
        try:
            yield self
        finally:
            self._fixed = previous

    def edge_weights(self) -> torch.Tensor | None:
        """Partial channels only: softmax of ``arch_edge`` over the edges entering each node."""
        if self.arch_edge is None or self._fixed is not None:  # a fixed (one-hot) architecture: no rescaling
            return None
        parts, offset = [], 0
        for i in range(self.cfg.steps):
            parts.append(F.softmax(self.arch_edge[..., offset:offset + 2 + i], dim=-1))
            offset += 2 + i
        return torch.cat(parts, dim=-1)

    def _layer_alpha(self, alpha: torch.Tensor, layer: int) -> torch.Tensor:
        return alpha[layer] if self.cfg.lwas else alpha

    def _cell_keys(self, layer: int, level: int) -> list[str]:
        if self.cfg.cell_sharing == "eq5":
            return [f"l{layer}_h{level}"]
        # Eq. 6: one cell per incoming source level (levels of the previous layer within +-1).
        prev_levels = 1 if layer == 0 else self.cfg.levels_in_layer(layer - 1)
        return [f"l{layer}_h{level}_from{src}" for src in range(prev_levels) if abs(src - level) <= 1]

    def cell_evaluations(self) -> float:
        """Cell runs per forward, each weighted by its width factor (the cost model of Eq. 5/6)."""
        cfg = self.cfg
        total = 0.0
        for layer in range(cfg.layers):
            for level in range(cfg.levels_in_layer(layer)):
                total += len(self._cell_keys(layer, level)) * cfg.width_factors[level]
        return total

    # -- forward ----------------------------------------------------------------------------
    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        cfg = self.cfg
        alpha = self.alpha_weights()
        beta = self.beta_weights()
        edge = self.edge_weights()
        stem = self.stem1(x)
        s1_inputs = [self.reduce1(stem)]
        hidden = [self.stem2(F.leaky_relu(stem, LEAKY_SLOPE))]  # double LReLU, as the code
        src = 0
        for layer in range(cfg.layers):
            n_levels = cfg.levels_in_layer(layer)
            mixed: list[torch.Tensor | None] = [None] * n_levels
            # (target level, source level, move column, routed tensor) for Eq. 6
            routed: list[tuple[int, int, int, torch.Tensor]] = []
            for level, h in enumerate(hidden):
                router, row = self.routers[src], beta[src]
                for col, move in enumerate(MOVES):
                    target = level + move
                    if not 0 <= target < n_levels or str(col) not in router.moves:
                        continue
                    aligned = router(h, col)
                    routed.append((target, level, col, aligned))
                    term = row[col] * aligned
                    mixed[target] = term if mixed[target] is None else mixed[target] + term
                src += 1
            while len(s1_inputs) < n_levels:  # a level that did not exist in the previous layer
                new = len(s1_inputs)
                s1_inputs.append(self.upsamplers[new - 1](s1_inputs[-1]))
            a = self._layer_alpha(alpha, layer)
            e = None if edge is None else self._layer_alpha(edge, layer)
            if cfg.cell_sharing == "eq5":
                hidden = [
                    self.cells[f"l{layer}_h{t}"](mixed[t], s1_inputs[t], a, e) for t in range(n_levels)
                ]
            else:
                outs: list[torch.Tensor | None] = [None] * n_levels
                for target, level, col, aligned in routed:
                    cell = self.cells[f"l{layer}_h{target}_from{level}"]
                    term = beta[src - len(hidden) + level][col] * cell(aligned, s1_inputs[target], a, e)
                    outs[target] = term if outs[target] is None else outs[target] + term
                hidden = outs
            s1_inputs = mixed
        return hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        hidden = self.features(x)
        heads = [aspp(h) for aspp, h in zip(self.aspp, hidden)]
        out = self.shuffle(self.classifier(self.pre_cls(torch.cat(heads, dim=1))))
        if not cfg.residual:
            pred = out
        elif cfg.task == "denoise":
            pred = x - out
        else:
            pred = F.interpolate(x, scale_factor=cfg.scale, mode=cfg.sr_skip, align_corners=False) + out
        return torch.sigmoid(pred) if cfg.search_sigmoid else pred

    # -- decoding ---------------------------------------------------------------------------
    def genotype(self, provenance: dict | None = None):
        """Decode the current alpha/beta into a :class:`~hinas.space.genotype.Genotype`."""
        from hinas.space.genotype import Genotype, decode_cell, viterbi

        cfg = self.cfg
        with torch.no_grad():
            alpha = self.alpha_weights().detach().cpu()
            beta = self.beta_weights().detach().cpu()
            edge = self.edge_weights()
            if edge is not None:  # PC-DARTS: an edge's strength is its op weight times its edge weight
                alpha = alpha * edge.detach().cpu().unsqueeze(-1)
        if cfg.lwas:
            cells = [decode_cell(alpha[l], cfg.steps, cfg.primitives) for l in range(cfg.layers)]
        else:
            cells = [decode_cell(alpha, cfg.steps, cfg.primitives)] * cfg.layers
        path = viterbi(beta, cfg.layers, cfg.levels)
        return Genotype(
            task=cfg.task,
            scale=cfg.scale,
            in_channels=cfg.in_channels,
            steps=cfg.steps,
            primitives=[p for p in cfg.primitives],
            cells=cells,
            path=path,
            width_factors=list(cfg.width_factors[: cfg.levels]),
            lwas=cfg.lwas,
            provenance=dict(provenance or {}),
        )


def build_supernet(cfg: SupernetConfig | None = None, **overrides) -> Supernet:
    """``build_supernet(task='sr', scale=4)`` or ``build_supernet(cfg)``."""
    if cfg is None:
        task = overrides.pop("task", "denoise")
        cfg = SupernetConfig.paper(task, overrides.pop("scale", None), **overrides)
    elif overrides:
        cfg = cfg.replace(**overrides)
    return Supernet(cfg)
