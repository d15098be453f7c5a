"""Graphviz drawings of supercells, cells, width paths and the supernet grid (render needs `dot`).

Every function returns a :class:`Drawing` (a :class:`graphviz.Digraph`); ``.pipe(format='svg')``
gives SVG bytes and notebooks display the object directly. Where graphviz's ``dot`` program is
missing (a GPU machine that runs the notebooks, a bare container), a notebook shows the drawing
as its DOT source with :data:`NO_DOT` instead of a traceback.
"""

from __future__ import annotations

import graphviz

from hinas.space.genotype import Genotype

OP_COLOURS = {
    "conv_3x3": "#4e79a7",
    "sep_conv_3x3": "#59a14f",
    "sep_conv_5x5": "#8cd17d",
    "dil_conv_3x3": "#f28e2b",
    "dil_conv_5x5": "#ffbe7d",
    "skip_connect": "#9c9c9c",
    "none": "#d3d3d3",
}


NO_DOT = ("graphviz's `dot` program is not installed on this machine, so this drawing is shown as its "
          "DOT source; install graphviz (e.g. `apt-get install graphviz`) to see it drawn.")


class Drawing(graphviz.Digraph):
    """A :class:`graphviz.Digraph` that a notebook shows as its DOT source, with :data:`NO_DOT`,
    where ``dot`` is missing (graphviz itself would leave a traceback in the output)."""

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        try:
            return super()._repr_mimebundle_(include, exclude, **kwargs)
        except graphviz.ExecutableNotFound:
            return {"text/markdown": f"{NO_DOT}\n\n```dot\n{self.source}```\n", "text/plain": self.source}


def draw_supercell(steps: int, n_ops: int) -> Drawing:
    """A supercell before decoding: inputs h_{l-2}, h_{l-1}, ``steps`` nodes each fed by every
    earlier node and both inputs, every edge carrying all ``n_ops`` candidate ops, concat output."""
    g = Drawing("supercell", format="svg")
    g.attr(rankdir="LR", fontname="Helvetica")
    g.attr("node", shape="box", style="rounded,filled", fontname="Helvetica", fontsize="11")
    g.node("in0", "h(l-2)", fillcolor="#fde9d9")
    g.node("in1", "h(l-1)", fillcolor="#fde9d9")
    for i in range(steps):
        g.node(f"n{i}", f"node {i}", fillcolor="#dae8fc")
        for j in range(2 + i):
            src = {0: "in0", 1: "in1"}.get(j, f"n{j - 2}")
            g.edge(src, f"n{i}", label=f"{n_ops} ops", fontsize="8", color="#777777")
        g.edge(f"n{i}", "out", color="#bbbbbb", style="dashed")
    g.node("out", "concat", fillcolor="#e1f0d8")
    return g


def draw_cell(genotype: Genotype, layer: int = 0, *, title: str | None = None) -> Drawing:
    """One derived cell: inputs h_{l-2}, h_{l-1}, B nodes, concat output; edges labelled by op."""
    if not 0 <= layer < genotype.layers:
        raise IndexError(f"layer {layer} out of range 0..{genotype.layers - 1}")
    g = Drawing(f"cell_l{layer}", format="svg")
    g.attr(rankdir="LR", bgcolor="white", fontname="Helvetica",
           label=title or f"layer {layer} (width level {genotype.path[layer]})", labelloc="t")
    g.attr("node", shape="box", style="rounded,filled", fontname="Helvetica", fontsize="11")
    g.attr("edge", fontname="Helvetica", fontsize="10")
    g.node("in0", "h(l-2)", fillcolor="#fde9d9")
    g.node("in1", "h(l-1)", fillcolor="#fde9d9")
    for i in range(genotype.steps):
        g.node(f"n{i}", f"node {i}", fillcolor="#dae8fc")
    g.node("out", "concat", fillcolor="#e1f0d8")
    names = {0: "in0", 1: "in1"}
    for e, (op, j) in enumerate(genotype.cells[layer]):
        src = names.get(j, f"n{j - 2}")
        g.edge(src, f"n{e // 2}", label=op, color=OP_COLOURS.get(op, "black"), penwidth="2")
    for i in range(genotype.steps):
        g.edge(f"n{i}", "out", color="#888888")
    return g


def draw_path(genotype: Genotype, *, title: str | None = None) -> Drawing:
    """The width path on the (layer, level) grid: the chosen cells filled, others outlined."""
    levels = len(genotype.width_factors)
    g = Drawing("width_path", format="svg")
    g.attr(rankdir="LR", bgcolor="white", fontname="Helvetica", newrank="true",
           label=title or "width path", labelloc="t")
    g.attr("node", shape="circle", fontname="Helvetica", fontsize="10", width="0.6", fixedsize="true")
    g.node("stem", "stem", shape="box", style="rounded,filled", fillcolor="#fde9d9", fixedsize="false")
    for layer in range(genotype.layers):
        with g.subgraph() as s:
            s.attr(rank="same")
            for level in range(min(layer + 2, levels)):
                on = genotype.path[layer] == level
                s.node(f"l{layer}h{level}", f"x{genotype.width_factors[level]:g}",
                       style="filled" if on else "dashed",
                       fillcolor="#dae8fc" if on else "white", color="black" if on else "#aaaaaa")
    prev = "stem"
    for layer, level in enumerate(genotype.path):
        g.edge(prev, f"l{layer}h{level}", penwidth="2.5", label=f"layer {layer}")
        prev = f"l{layer}h{level}"
    return g


def draw_supernet(layers: int, levels: int, width_factors, beta_weights=None,
                  path=None) -> Drawing:
    """The supernet grid with every possible move; edge labels are beta weights when given."""
    from hinas.space.supernet import MOVES, grid_sources

    g = Drawing("supernet", format="svg")
    g.attr(rankdir="LR", bgcolor="white", fontname="Helvetica", newrank="true")
    g.attr("node", shape="circle", fontname="Helvetica", fontsize="10", width="0.6", fixedsize="true")
    g.node("s-1h0", "stem", shape="box", fixedsize="false")
    for layer in range(layers):
        with g.subgraph() as s:
            s.attr(rank="same")
            for level in range(min(layer + 2, levels)):
                on = path is not None and path[layer] == level
                s.node(f"s{layer}h{level}", f"x{width_factors[level]:g}", style="filled",
                       fillcolor="#dae8fc" if on else "white")
    for src in grid_sources(layers, levels):
        n_target = min(src.layer + 3, levels)
        for col, move in enumerate(MOVES):
            t = src.level + move
            if not 0 <= t < n_target:
                continue
            label = "" if beta_weights is None else f"{float(beta_weights[src.index, col]):.2f}"
            width = "1" if beta_weights is None else f"{0.5 + 3 * float(beta_weights[src.index, col]):.2f}"
            g.edge(f"s{src.layer}h{src.level}", f"s{src.layer + 1}h{t}", label=label, penwidth=width)
    return g
