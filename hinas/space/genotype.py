"""Decoding (REFERENCE 4) and the Genotype: a versioned, validated JSON file.

* Cells: per node, keep the two incoming edges whose best non-'none' op is strongest, with
  that op (DARTS; ties go to the lower index, as the reference's strict '>').
* Width path: a Viterbi over beta in log space for any depth and number of levels. The path
  starts at the stem (level 0), so layer 0 is at level 0 or 1, and moves by at most one level.

A genotype is plain JSON (no pickle): the released code's pickled ``(gene_cell, gene_path)``
tuple becomes ``cells`` and ``path`` here, with the names of the ops in the registry.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch

from hinas.errors import GenotypeError
from hinas.space.ops import OPS, PRIMITIVE_SETS, canonical_op_name

SCHEMA_VERSION = 1
# bounds on what a genotype file may ask for (the paper: 2-3 layers, 3-4 steps, 3 levels, widths <= 4)
MAX_LAYERS = 64
MAX_STEPS = 16
MAX_LEVELS = 8
MAX_WIDTH_FACTOR = 16.0
REQUIRED_FIELDS = ("schema_version", "task", "steps", "cells", "path", "width_factors")


# ---------------------------------------------------------------------------------------------
# cell decoding
# ---------------------------------------------------------------------------------------------
def decode_cell(weights: torch.Tensor, steps: int, primitives) -> list[tuple[str, int]]:
    """Top-2 incoming edges per node with their best non-'none' op (REFERENCE 4.1).

    ``weights``: (k, n_ops) softmaxed alpha of one cell, edges in node-major order.
    Returns 2*steps ``(op, input)`` pairs in strength order per node.
    """
    primitives = list(primitives)
    none_idx = primitives.index("none") if "none" in primitives else None
    w = weights.detach().cpu().double().clone()
    if none_idx is not None:
        w[:, none_idx] = -math.inf
    gene: list[tuple[str, int]] = []
    start = 0
    for node in range(steps):
        n_in = 2 + node
        rows = w[start : start + n_in]
        best_val, best_op = rows.max(dim=1)  # first max on ties
        # stable sort: strongest first, ties keep the lower edge index
        order = sorted(range(n_in), key=lambda j: -best_val[j].item())[:2]
        for j in order:
            gene.append((primitives[int(best_op[j])], j))
        start += n_in
    return gene


# ---------------------------------------------------------------------------------------------
# width path: Viterbi in log space
# ---------------------------------------------------------------------------------------------
@dataclass
class ViterbiTrace:
    """Everything the DP computed, for showing it step by step (notebook 02)."""

    path: list[int]
    log_prob: float
    scores: list[list[float]]  # scores[l][h]: best log-probability of reaching (l, h)
    backpointers: list[list[int | None]]  # level in layer l-1 (or -1 = stem) for each (l, h)


def viterbi_trace(beta_weights: torch.Tensor, layers: int, levels: int) -> ViterbiTrace:
    """Most probable width path under the softmaxed beta (rows in source order, REFERENCE 4.2)."""
    from hinas.space.grid import grid_sources

    beta = beta_weights.detach().cpu().double()
    sources = grid_sources(layers, levels)
    if beta.shape != (len(sources), 3):
        raise GenotypeError(
            f"beta has shape {tuple(beta.shape)}, expected ({len(sources)}, 3) for "
            f"{layers} layers and {levels} levels"
        )
    row_of = {(s.layer, s.level): s.index for s in sources}
    with torch.no_grad():
        log_beta = torch.log(beta.clamp_min(0))  # log(0) = -inf: impossible moves
    prev_scores = [0.0]  # the stem, at level 0
    scores, backs = [], []
    for layer in range(layers):
        n = min(layer + 2, levels)
        cur = [-math.inf] * n
        back: list[int | None] = [None] * n
        for target in range(n):
            # candidates in the reference's order (its loop runs over source levels upwards):
            # from the narrower, the same, the wider level; with the strict '>' below, an exact
            # tie keeps the narrower predecessor, as the released ``viterbi`` does
            for col, src_level in ((2, target - 1), (1, target), (0, target + 1)):
                if not 0 <= src_level < len(prev_scores):
                    continue
                row = row_of[(layer - 1, src_level)] if layer > 0 else 0
                if layer == 0 and src_level != 0:
                    continue
                cand = prev_scores[src_level] + float(log_beta[row, col])
                if cand > cur[target]:  # strict: ties keep the first candidate
                    cur[target], back[target] = cand, src_level
        scores.append(cur)
        backs.append(back)
        prev_scores = cur
    last = max(range(len(prev_scores)), key=lambda h: (prev_scores[h], -h))
    if prev_scores[last] == -math.inf:
        raise GenotypeError("no width path has non-zero probability under this beta")
    path = [last]
    for layer in range(layers - 1, 0, -1):
        path.append(backs[layer][path[-1]])
    path.reverse()
    return ViterbiTrace(path=path, log_prob=prev_scores[last], scores=scores, backpointers=backs)


def viterbi(beta_weights: torch.Tensor, layers: int, levels: int) -> list[int]:
    """The width level of each layer on the most probable path."""
    return viterbi_trace(beta_weights, layers, levels).path


def path_log_prob(beta_weights: torch.Tensor, path, levels: int) -> float:
    """log P(path) = sum of log beta along its moves (for brute-force checks)."""
    from hinas.space.grid import grid_sources

    layers = len(path)
    row_of = {(s.layer, s.level): s.index for s in grid_sources(layers, levels)}
    total, prev = 0.0, 0
    for layer, level in enumerate(path):
        move = level - prev
        if abs(move) > 1:
            return -math.inf
        p = float(beta_weights[row_of[(layer - 1, prev)], move + 1])
        total += math.log(p) if p > 0 else -math.inf
        prev = level
    return total


def all_paths(layers: int, levels: int):
    """Every path from the stem that moves at most one level per layer (for brute force)."""
    for path in itertools.product(range(levels), repeat=layers):
        prev, ok = 0, True
        for layer, level in enumerate(path):
            if abs(level - prev) > 1 or level >= min(layer + 2, levels):
                ok = False
                break
            prev = level
        if ok:
            yield list(path)


# ---------------------------------------------------------------------------------------------
# the Genotype file
# ---------------------------------------------------------------------------------------------
@dataclass
class Genotype:
    """A derived architecture: one cell per layer and the width level of each layer."""

    task: str
    steps: int
    cells: list[list[tuple[str, int]]]
    path: list[int]
    width_factors: list[float] = field(default_factory=lambda: [1.0, 1.5, 2.0])
    scale: int | None = None
    in_channels: int | None = None
    primitives: list[str] = field(default_factory=lambda: list(PRIMITIVE_SETS["hinas"]))
    lwas: bool = True
    provenance: dict = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self):
        if self.in_channels is None:
            self.in_channels = 1 if self.task == "denoise" else 3
        self.cells = [[(str(op), int(j)) for op, j in cell] for cell in self.cells]
        self.path = [int(h) for h in self.path]
        self.width_factors = [float(w) for w in self.width_factors]
        self.validate()

    @property
    def layers(self) -> int:
        return len(self.path)

    # -- validation ------------------------------------------------------------------------
    def validate(self, source: str = "genotype") -> None:
        def fail(msg: str):
            raise GenotypeError(f"{source}: {msg}")

        if self.schema_version != SCHEMA_VERSION:
            fail(f"schema_version {self.schema_version} is not supported (this hinas reads {SCHEMA_VERSION})")
        if self.task not in ("denoise", "sr"):
            fail(f"task must be 'denoise' or 'sr', got {self.task!r}")
        if self.task == "sr" and self.scale not in (2, 3, 4, 8):
            fail(f"an sr genotype needs 'scale' in 2, 3, 4, 8; got {self.scale!r}")
        if not isinstance(self.steps, int) or not 1 <= self.steps <= MAX_STEPS:
            fail(f"steps must be an integer in 1..{MAX_STEPS}, got {self.steps!r}")
        if self.in_channels not in (1, 3):
            fail(f"in_channels must be 1 (grey) or 3 (RGB), got {self.in_channels!r}")
        if not 1 <= len(self.width_factors) <= MAX_LEVELS or not all(
                math.isfinite(w) and 0 < w <= MAX_WIDTH_FACTOR for w in self.width_factors):
            fail(f"width_factors must be 1..{MAX_LEVELS} finite numbers in (0, {MAX_WIDTH_FACTOR:g}], "
                 f"got {self.width_factors}")
        if not self.path:
            fail("path is empty; it needs one width level per layer")
        if len(self.path) > MAX_LAYERS:
            fail(f"{len(self.path)} layers is more than hinas builds (at most {MAX_LAYERS}; the paper uses 2-3)")
        if len(self.cells) != len(self.path):
            fail(f"cells has {len(self.cells)} layers but path has {len(self.path)}; give one cell per layer")
        for layer, cell in enumerate(self.cells):
            if len(cell) != 2 * self.steps:
                fail(f"layer {layer} has {len(cell)} edges; a cell with steps={self.steps} needs {2 * self.steps}")
            for e, (op, j) in enumerate(cell):
                try:
                    name = canonical_op_name(op)
                except KeyError:
                    fail(f"layer {layer} edge {e}: unknown op {op!r}; known ops: {', '.join(o for o in OPS if o != 'none')}")
                if name == "none":
                    fail(f"layer {layer} edge {e}: 'none' cannot be a derived edge (decoding excludes it)")
                node = e // 2
                if not 0 <= j < 2 + node:
                    fail(f"layer {layer} edge {e}: input {j} does not exist for node {node} (valid: 0..{1 + node})")
        n_levels = len(self.width_factors)
        prev = 0
        for layer, level in enumerate(self.path):
            if not 0 <= level < n_levels:
                fail(f"path[{layer}] = {level} is not a width level (0..{n_levels - 1})")
            if abs(level - prev) > 1:
                where = "the stem (level 0)" if layer == 0 else f"level {prev} at layer {layer - 1}"
                fail(f"path skips a level: layer {layer} is at level {level}, reached from {where}")
            prev = level

    # -- (de)serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "schema_version": self.schema_version,
            "task": self.task,
            "scale": self.scale,
            "in_channels": self.in_channels,
            "steps": self.steps,
            "primitives": list(self.primitives),
            "lwas": self.lwas,
            "cells": [[[op, j] for op, j in cell] for cell in self.cells],
            "path": list(self.path),
            "width_factors": list(self.width_factors),
            "provenance": dict(self.provenance),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def architecture(self) -> dict:
        """The dict without provenance: two runs found the same network iff these are equal."""
        d = self.to_dict()
        d.pop("provenance")
        return d

    @classmethod
    def from_dict(cls, data, source: str = "genotype") -> "Genotype":
        if not isinstance(data, dict):
            raise GenotypeError(f"{source}: expected a JSON object, got {type(data).__name__}")
        missing = [k for k in REQUIRED_FIELDS if k not in data]
        if missing:
            raise GenotypeError(f"{source}: missing field(s) {', '.join(missing)}")
        known = {"schema_version", "task", "scale", "in_channels", "steps", "primitives", "lwas",
                 "cells", "path", "width_factors", "provenance"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise GenotypeError(f"{source}: unknown field(s) {', '.join(unknown)}")
        try:
            cells = [[(op, j) for op, j in cell] for cell in data["cells"]]
        except (TypeError, ValueError):
            raise GenotypeError(f"{source}: 'cells' must be a list of layers of [op, input] pairs") from None
        if not isinstance(data["path"], list) or not all(isinstance(h, int) for h in data["path"]):
            raise GenotypeError(f"{source}: 'path' must be a list of integer width levels")
        if not all(isinstance(j, int) for cell in cells for _, j in cell):
            raise GenotypeError(f"{source}: every edge input must be an integer")
        try:
            g = cls.__new__(cls)
            g.task = data["task"]
            g.steps = data["steps"]
            g.cells = cells
            g.path = data["path"]
            g.width_factors = data["width_factors"]
            g.scale = data.get("scale")
            g.in_channels = data.get("in_channels")
            g.primitives = list(data.get("primitives", PRIMITIVE_SETS["hinas"]))
            g.lwas = bool(data.get("lwas", True))
            g.provenance = dict(data.get("provenance") or {})
            g.schema_version = data["schema_version"]
            # __post_init__ normalises and validates; re-raise with the source named.
            try:
                g.__post_init__()
            except GenotypeError as exc:
                msg = str(exc)
                if msg.startswith("genotype: "):
                    msg = msg[len("genotype: "):]
                raise GenotypeError(f"{source}: {msg}") from None
        except (TypeError, ValueError) as exc:
            if isinstance(exc, GenotypeError):
                raise
            raise GenotypeError(f"{source}: malformed field ({exc})") from None
        return g

    @classmethod
    def from_json(cls, text: str, source: str = "genotype") -> "Genotype":
        from hinas.errors import HinasError
        from hinas.safeio import parse_json

        try:
            data = parse_json(text, source, "genotype")
        except GenotypeError:
            raise
        except HinasError as exc:
            raise GenotypeError(str(exc)) from None
        return cls.from_dict(data, source)

    @classmethod
    def load(cls, path) -> "Genotype":
        """Read a genotype file within bounds (size, nesting, values); one error line naming it."""
        from hinas.errors import HinasError
        from hinas.safeio import MAX_JSON_BYTES, quote, read_text_bounded

        try:
            text = read_text_bounded(path, MAX_JSON_BYTES, "genotype")
        except HinasError as exc:
            raise GenotypeError(str(exc)) from None
        return cls.from_json(text, quote(path))

    def save(self, path) -> Path:
        """Write atomically (temp file + rename), so a crash never leaves half a genotype."""
        from hinas.safeio import atomic_write_text

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, self.to_json() + "\n")
        return path

    # -- summaries -------------------------------------------------------------------------
    def op_counts(self, layer: int | None = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        cells = self.cells if layer is None else [self.cells[layer]]
        for cell in cells:
            for op, _ in cell:
                counts[op] = counts.get(op, 0) + 1
        return counts


def random_genotype(task: str = "denoise", layers: int | None = None, steps: int | None = None,
                    seed: int = 0, levels: int = 3, scale: int | None = None,
                    ops=None) -> Genotype:
    """A uniformly random valid genotype (random search baseline, tests)."""
    rng = random.Random(seed)
    layers = layers or (3 if task == "denoise" else 2)
    steps = steps or (4 if task == "denoise" else 3)
    ops = list(ops or [p for p in PRIMITIVE_SETS["hinas"] if p != "none"])
    cells = []
    for _ in range(layers):
        cell = []
        for node in range(steps):
            inputs = rng.sample(range(2 + node), 2)
            cell += [(rng.choice(ops), j) for j in inputs]
        cells.append(cell)
    path, prev = [], 0
    for layer in range(layers):
        choices = [h for h in (prev - 1, prev, prev + 1) if 0 <= h < min(layer + 2, levels)]
        prev = rng.choice(choices)
        path.append(prev)
    return Genotype(task=task, steps=steps, cells=cells, path=path,
                    scale=(scale or 4) if task == "sr" else None,
                    provenance={"source": "random_genotype", "seed": seed})


def origin(**fields) -> dict:
    """What made a genotype (its provenance field), with a UTC timestamp."""
    out = {"created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    out.update(fields)
    return out


CONV_OPS = ("conv_3x3", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")


def modify_genotype(genotype: Genotype, kind: str, n_edges: int = 2, seed: int = 0) -> Genotype:
    """The paper's architecture analysis (Sec. 4.2.4, Tables 6/7), as a reproducible recipe.

    * ``'R1'``: replace the op of ``n_edges`` convolution edges per cell by a different
      convolution (is the chosen op irreplaceable?).
    * ``'R2'``: rewire ``n_edges`` edges per cell to a different valid input (is the topology
      appropriate?).

    The paper shows its modifications only in figures (Fig. 10/11); the edges changed here are
    drawn at random with ``seed``, and the provenance records which.
    """
    if kind not in ("R1", "R2"):
        raise ValueError("kind must be 'R1' (replace ops) or 'R2' (change connections)")
    rng = random.Random(seed)
    cells = [list(cell) for cell in genotype.cells]
    changes = []
    for layer, cell in enumerate(cells):
        if kind == "R1":
            candidates = [e for e, (op, _) in enumerate(cell) if canonical_op_name(op) in CONV_OPS]
        else:
            candidates = [e for e in range(len(cell)) if 2 + e // 2 > 2]  # nodes with a choice left
        for e in rng.sample(candidates, min(n_edges, len(candidates))):
            op, j = cell[e]
            if kind == "R1":
                new = rng.choice([o for o in CONV_OPS if o != canonical_op_name(op)])
                cell[e] = (new, j)
            else:
                other = cell[e ^ 1][1]  # the node's other input: keep the two inputs distinct
                choices = [i for i in range(2 + e // 2) if i not in (j, other)]
                if not choices:
                    continue
                cell[e] = (op, rng.choice(choices))
            changes.append({"layer": layer, "edge": e, "from": [op, j], "to": list(cell[e])})
    prov = dict(genotype.provenance)
    prov["modification"] = {"kind": kind, "seed": seed, "changes": changes}
    return Genotype(task=genotype.task, steps=genotype.steps, cells=cells, path=list(genotype.path),
                    width_factors=list(genotype.width_factors), scale=genotype.scale,
                    in_channels=genotype.in_channels, primitives=list(genotype.primitives),
                    lwas=genotype.lwas, provenance=prov)


def paper_observations(cells, path) -> list[dict]:
    """The paper's two observations on its searched architectures (Sec. 4.2.4) checked on ``cells``
    (one list of ``(op, input)`` edges per layer) and ``path`` (a width level per layer): the last
    layer has the maximum width; different nodes are connected with different types of operators
    rather than all with one convolution. Each: ``observation``, ``holds``, ``evidence``."""
    last_max = path[-1] == max(path)
    same = len(set(path)) == 1
    kinds = [sorted({op for op, _ in cell}) for cell in cells]
    mixed = all(len(k) > 1 for k in kinds)
    return [
        {"observation": "the width of the last layer has the maximum number of channels",
         "holds": last_max and not same,
         "evidence": f"width levels per layer {list(path)}"
                     + ("; every layer has the same width, so nothing is maximal" if same else "")},
        {"observation": "different nodes are connected with different types of operators",
         "holds": mixed,
         "evidence": "; ".join(f"layer {i}: {len(k)} op type(s) ({', '.join(k)})" for i, k in enumerate(kinds))},
    ]
