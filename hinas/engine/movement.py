"""Did a search move? How far alpha and beta went from where the supernet started.

A first-order search that ran too few architecture steps leaves alpha and beta where they were
initialised (all ones: uniform softmaxes), and its decoding then picks ops and the width path by
float noise and by the tie-breaking rules of :func:`hinas.space.genotype.decode_cell` and
:func:`hinas.space.genotype.viterbi`, not by anything the search learned. :func:`search_movement`
measures that on a finished supernet (or its softmaxed weights):

* ``alpha_max_dev``: the largest ``|alpha_softmax - 1/K|`` over all layers, edges and ops
  (``K`` candidate ops: 7 in the paper's space);
* ``beta_max_change``: the largest ``|beta_now - beta_at_init|``; the initial weights are those of
  a fresh supernet (``arch_beta`` all ones, impossible moves masked: ``1/n`` on a source's ``n``
  possible moves), computed here exactly instead of building one;
* ``path_from_tie``: whether a decision on the decoded width path (the last layer's level, or a
  cell's predecessor) was a tie within :data:`TIE_TOLERANCE` of path probability, i.e. whether
  breaking the Viterbi's ties the other way gives another path (``path_other_tiebreak``);
* ``moved``: ``alpha_max_dev >= MOVED_THRESHOLD or beta_max_change >= MOVED_THRESHOLD``.

:func:`movement_from_csv` measures the same from a run's ``alpha.csv``/``beta.csv`` (the last
epoch's rows), for results written before summaries carried it; :func:`movement_by_epoch` every
epoch's two numbers (the trajectories the book draws), and :func:`alpha_dev_by_epoch` /
:func:`beta_change_by_epoch` each from the CSVs' rows. Every "beta change" here is measured from
the start (the supernet's initial weights), never between two logged epochs. The campaign does not train
from a search that did not move (:mod:`hinas.campaign.status`).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import torch

# the book's threshold (notebooks/04_search.ipynb): a weight this far from its start is a choice
MOVED_THRESHOLD = 0.02
TIE_TOLERANCE = 1e-6  # path probabilities this close are a tie


def initial_beta_weights(layers: int, levels: int, mask_value: float = float("-inf")) -> torch.Tensor:
    """The beta weights of a freshly initialised supernet: softmax of ones with impossible moves
    masked (``Supernet.__init__`` / ``Supernet.beta_weights``), as an (m, 3) float64 tensor."""
    from hinas.space.supernet import beta_mask

    mask = beta_mask(layers, levels)
    return torch.softmax(torch.ones(mask.shape, dtype=torch.float64).masked_fill(mask, mask_value), dim=-1)


def path_ties(beta_weights: torch.Tensor, layers: int, levels: int, tol: float = TIE_TOLERANCE) -> dict:
    """The decoded width path's decisions that were ties, and the path with ties broken the other way.

    Follows :func:`hinas.space.genotype.viterbi_trace` exactly: the same candidates in the same order
    (from the narrower, the same, the wider level), whose strict ``>`` keeps the first of equal
    candidates, and the last layer's level chosen lowest first. A decision is a tie when another
    candidate's path probability is within ``tol`` of the chosen one; the other tie-break takes the
    last such candidate (and the highest such final level)."""
    from hinas.space.genotype import viterbi_trace
    from hinas.space.grid import grid_sources

    beta = beta_weights.detach().cpu().double()
    trace = viterbi_trace(beta, layers, levels)
    row_of = {(s.layer, s.level): s.index for s in grid_sources(layers, levels)}
    log_beta = torch.log(beta.clamp_min(0))

    def near(a: float, b: float) -> bool:
        return abs(math.exp(a) - math.exp(b)) <= tol if math.isfinite(a) and math.isfinite(b) else a == b

    def candidates(layer: int, target: int) -> list[tuple[int, float]]:
        """(source level, score) of each way into (layer, target), in the Viterbi's order."""
        prev = trace.scores[layer - 1] if layer > 0 else [0.0]
        out = []
        for col, src in ((2, target - 1), (1, target), (0, target + 1)):
            if not 0 <= src < len(prev) or (layer == 0 and src != 0):
                continue
            row = row_of[(layer - 1, src)] if layer > 0 else 0
            out.append((src, prev[src] + float(log_beta[row, col])))
        return out

    ties = []
    last = trace.scores[-1]
    final = [h for h in range(len(last)) if near(last[h], trace.log_prob)]
    if len(final) > 1:
        ties.append({"layer": layers - 1, "decision": "level", "tied": final})
    other = [max(final)]
    for layer in range(layers - 1, 0, -1):
        level = trace.path[layer]
        tied = [src for src, score in candidates(layer, level) if near(score, trace.scores[layer][level])]
        if len(tied) > 1:
            ties.append({"layer": layer, "level": level, "decision": "predecessor", "tied": tied})
    for layer in range(layers - 1, 0, -1):  # the other tie-break, followed along its own path
        level = other[-1]
        best = trace.scores[layer][level]
        other.append([src for src, score in candidates(layer, level) if near(score, best)][-1])
    other.reverse()
    return {"path": list(trace.path), "ties": ties, "path_other_tiebreak": other}


def search_movement(net_or_weights, beta=None, *, beta_init: torch.Tensor | None = None, layers: int | None = None,
                    levels: int | None = None, tol: float = TIE_TOLERANCE) -> dict:
    """How far a search moved: ``alpha_max_dev``, ``beta_max_change``, ``path_from_tie``, ``moved``.

    ``search_movement(net)`` for a :class:`~hinas.space.supernet.Supernet`; or its softmaxed weights,
    ``search_movement(alpha_weights, beta_weights)`` or ``search_movement((alpha, beta))``, where
    the grid (``layers``, ``levels``) is inferred from the shapes when not given. ``beta_init``:
    the beta weights at initialisation (default: those of a fresh supernet,
    :func:`initial_beta_weights`).
    """
    mask_value = float("-inf")
    if hasattr(net_or_weights, "alpha_weights"):
        net = net_or_weights
        with torch.no_grad():
            alpha, beta = net.alpha_weights(), net.beta_weights()
        layers, levels, mask_value = net.cfg.layers, net.cfg.levels, net.cfg.mask_value
    elif isinstance(net_or_weights, (tuple, list)) and beta is None:
        alpha, beta = net_or_weights
    elif beta is not None:
        alpha = net_or_weights
    else:
        raise ValueError("search_movement needs a Supernet, or alpha and beta weights")
    alpha, beta = torch.as_tensor(alpha), torch.as_tensor(beta)
    if layers is None or levels is None:
        layers, levels = _grid_of(alpha, beta, layers, levels)
    alpha = torch.as_tensor(alpha).detach().cpu().double()
    beta = torch.as_tensor(beta).detach().cpu().double()
    if beta_init is None:
        beta_init = initial_beta_weights(layers, levels, mask_value)
    beta_init = torch.as_tensor(beta_init).detach().cpu().double()
    if beta_init.shape != beta.shape:
        raise ValueError(f"beta has shape {tuple(beta.shape)}, its initial weights {tuple(beta_init.shape)}")
    n_ops = alpha.shape[-1]
    alpha_dev = float((alpha - 1.0 / n_ops).abs().max())
    beta_change = float((beta - beta_init).abs().max())
    ties = path_ties(beta, layers, levels, tol)
    return {
        "alpha_max_dev": round(alpha_dev, 6),
        "beta_max_change": round(beta_change, 6),
        "n_ops": int(n_ops),
        "path": ties["path"],
        "path_from_tie": bool(ties["ties"]),
        "path_ties": ties["ties"],
        "path_other_tiebreak": ties["path_other_tiebreak"],
        "threshold": MOVED_THRESHOLD,
        "moved": alpha_dev >= MOVED_THRESHOLD or beta_change >= MOVED_THRESHOLD,
    }


def _grid_of(alpha: torch.Tensor, beta: torch.Tensor, layers, levels) -> tuple[int, int]:
    """(layers, levels) of beta: as many sources as it has rows, and zeros exactly at the impossible
    moves (LWAS alpha gives the layers). Levels no path can reach change nothing: the fewest fit."""
    from hinas.space.genotype import MAX_LAYERS, MAX_LEVELS
    from hinas.space.grid import grid_sources

    if layers is None and alpha.dim() == 3:
        layers = alpha.shape[0]
    zeros = beta.detach().cpu() == 0
    fits: dict[int, int] = {}
    for L in [layers] if layers else range(1, MAX_LAYERS + 1):
        for S in [levels] if levels else range(1, MAX_LEVELS + 1):
            if len(grid_sources(L, S)) == beta.shape[0] and bool(((initial_beta_weights(L, S) == 0) == zeros).all()):
                fits.setdefault(L, S)
    if len(fits) != 1:
        raise ValueError(f"cannot tell the grid from beta's {beta.shape[0]} rows: pass layers= and levels=")
    return next(iter(fits.items()))


def _last_epoch_rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{path.name} is empty")
    last = max(int(r["epoch"]) for r in rows)
    return [r for r in rows if int(r["epoch"]) == last]


def movement_from_csv(folder, layers: int | None = None, levels: int | None = None) -> dict:
    """:func:`search_movement` from a search's ``alpha.csv`` and ``beta.csv`` (their last epoch).

    ``layers``/``levels`` default to the folder's ``config.yaml`` (else the beta rows). The CSVs
    hold weights rounded to 6 decimals; impossible moves have no row (weight 0)."""
    from hinas.space.grid import MOVE_NAMES, grid_sources

    folder = Path(folder)
    if layers is None or levels is None:
        import yaml

        try:
            conf = yaml.safe_load((folder / "config.yaml").read_text()) or {}
        except FileNotFoundError:
            conf = {}
        layers = layers or conf.get("layers")
        levels = levels or conf.get("levels")
    alpha_rows = _last_epoch_rows(folder / "alpha.csv")
    beta_rows = _last_epoch_rows(folder / "beta.csv")
    if layers is None:
        layers = max(int(r["layer"]) for r in beta_rows) + 2
    if levels is None:  # the widest level has no 'wider' move
        top = max(int(r["level"]) for r in beta_rows)
        levels = top + (2 if any(int(r["level"]) == top and r["move"] == "wider" for r in beta_rows) else 1)
    ops = list(dict.fromkeys(r["op"] for r in alpha_rows))
    edges = sorted({(r["layer"], int(r["edge"])) for r in alpha_rows})
    index = {e: n for n, e in enumerate(edges)}
    alpha = torch.zeros(len(edges), len(ops), dtype=torch.float64)
    for r in alpha_rows:
        alpha[index[(r["layer"], int(r["edge"]))], ops.index(r["op"])] = float(r["weight"])
    row_of = {(s.layer, s.level): s.index for s in grid_sources(layers, levels)}
    beta = torch.zeros(len(row_of), 3, dtype=torch.float64)
    for r in beta_rows:
        beta[row_of[(int(r["layer"]), int(r["level"]))], MOVE_NAMES.index(r["move"])] = float(r["weight"])
    out = search_movement((alpha, beta), layers=layers, levels=levels)
    out["epoch"] = int(alpha_rows[0]["epoch"])
    out["from"] = "alpha.csv, beta.csv"
    return out


def describe(name: str, movement: dict | None) -> str:
    """One line on whether search ``name`` moved (for statuses and waiting reasons)."""
    if not movement:
        return f"search {name} has no movement record (no summary movement, no alpha.csv/beta.csv)"
    k = movement.get("n_ops", 7)
    a, b = (float(movement.get(key) or 0.0) for key in ("alpha_max_dev", "beta_max_change"))
    text = f"largest |alpha-1/{k}| {a:.4f}, beta change {b:.4f} (threshold {movement.get('threshold', MOVED_THRESHOLD)})"
    tie = "; its width path came from a tie" if movement.get("path_from_tie") else ""
    return f"search {name} {'moved' if movement.get('moved') else 'did not move'}: {text}{tie}"


# -- the same two numbers for every logged epoch, from the CSVs' rows --------------------------
def alpha_dev_by_epoch(rows) -> dict[int, float]:
    """``{epoch: largest |alpha - 1/K|}`` from ``alpha.csv`` rows (``epoch``, ``op``, ``weight``);
    ``K``: the ops the rows name (alpha starts uniform over them)."""
    rows = list(rows)
    n_ops = len({r["op"] for r in rows})
    out: dict[int, float] = {}
    for r in rows:
        e = int(float(r["epoch"]))
        out[e] = max(out.get(e, 0.0), abs(float(r["weight"]) - 1.0 / n_ops))
    return out


def logit_spread(rows) -> float:
    """The largest |log alpha_k - mean_k log alpha_k| over the edges of ``alpha.csv`` rows of one
    epoch: how far the logits' differences (all that softmax sees) have moved from the uniform
    start, in the units an Adam step of learning rate ``lr`` moves a logit by at most about ``lr``."""
    edges: dict[tuple, list[float]] = {}
    for r in rows:
        edges.setdefault((r["layer"], r["edge"]), []).append(math.log(max(float(r["weight"]), 1e-12)))
    return max((max(abs(v - sum(logs) / len(logs)) for v in logs) for logs in edges.values()), default=0.0)


def beta_change_by_epoch(rows) -> dict[int, float]:
    """``{epoch: largest |beta - its initial weight|}`` from ``beta.csv`` rows (``epoch``,
    ``source``, ``move``, ``weight``): a source starts uniform over its possible moves, which are
    its rows (impossible moves have none), as :func:`initial_beta_weights` computes."""
    rows = list(rows)
    moves: dict[tuple, int] = {}
    for r in rows:
        key = (int(float(r["epoch"])), str(r["source"]))
        moves[key] = moves.get(key, 0) + 1
    out: dict[int, float] = {}
    for r in rows:
        e = int(float(r["epoch"]))
        out[e] = max(out.get(e, 0.0), abs(float(r["weight"]) - 1.0 / moves[(e, str(r["source"]))]))
    return out


def movement_by_epoch(folder) -> list[dict]:
    """Per logged epoch of a search folder: ``alpha_max_dev`` and ``beta_max_change`` (from the
    start), the two numbers :func:`search_movement` judges, from ``alpha.csv`` and ``beta.csv``."""
    folder = Path(folder)
    with open(folder / "alpha.csv", newline="") as fh:
        alpha = alpha_dev_by_epoch(csv.DictReader(fh))
    with open(folder / "beta.csv", newline="") as fh:
        beta = beta_change_by_epoch(csv.DictReader(fh))
    return [{"epoch": e, "alpha_max_dev": alpha[e], "beta_max_change": beta.get(e, 0.0)} for e in sorted(alpha)]
