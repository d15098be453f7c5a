"""The genotype explorer: browse the cells, width path and cost of derived architectures.

Two views over the same :class:`GenotypeExplorer`:

* :meth:`GenotypeExplorer.widget` is **static**: every (run, genotype, layer) choice is rendered
  in Python in advance (cell drawing, width path, op counts, parameters and FLOPs), put in
  ``ipywidgets.Stack`` containers and switched by dropdowns/toggle buttons linked with
  ``widgets.jslink``. Nothing needs a kernel, so it keeps working in the rendered HTML book
  (the widget state is saved in the executed notebook by papermill).
* :meth:`GenotypeExplorer.editor` is **live** (JupyterLab): per edge of the chosen layer, a
  dropdown for the op and one for the input; any change validates the edited genotype,
  redraws the cell and the path and recounts parameters and FLOPs at once.

``GenotypeExplorer(runs)`` accepts a :class:`~hinas.space.genotype.Genotype`, a list of them, a
``{run: Genotype}`` mapping or ``{run: {name: Genotype}}``. A run's genotypes are whatever its
variants are (``seed 0``, ``seed 1``; or ``genotype`` and ``genotype_final``, the best-epoch and
last-epoch files of a committed search), so the control and the table column that list them say
"genotype", not "seed".
"""

from __future__ import annotations

import copy
import html
import re
from dataclasses import dataclass, field
from pathlib import PurePath

import graphviz
import torch
from torch.utils.flop_counter import FlopCounterMode

from hinas.errors import GenotypeError
from hinas.space.genotype import Genotype
from hinas.space.network import build_network
from hinas.space.ops import PRIMITIVE_SETS
from hinas.viz import NO_DOT, OP_COLOURS, draw_cell, draw_path

CSS_PREFIX = "hinas-explorer"


def svg_of(digraph) -> str:
    """Inline SVG markup of a graphviz drawing (no XML prolog, doctype or comments); where ``dot``
    is missing, its DOT source with :data:`hinas.viz.NO_DOT`."""
    try:
        text = digraph.pipe(format="svg").decode("utf-8")
    except graphviz.ExecutableNotFound:
        return f"<div><p>{html.escape(NO_DOT)}</p><pre>{html.escape(digraph.source)}</pre></div>"
    text = re.sub(r"<\?xml[^>]*\?>", "", text)
    text = re.sub(r"<!DOCTYPE[^>]*>", "", text)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    # shrink to the page width (the viewBox keeps the aspect ratio)
    text = re.sub(r"<svg\b", '<svg style="max-width:100%;height:auto"', text, count=1)
    return text.strip()


def input_name(j: int) -> str:
    return {0: "h(l-2)", 1: "h(l-1)"}.get(j, f"node {j - 2}")


@dataclass
class Stats:
    """Size and cost of the derived network of one genotype."""

    params: int
    flops: int
    size: tuple[int, int]
    layer_params: list[int] = field(default_factory=list)
    layer_flops: list[int] = field(default_factory=list)
    edge_params: list[list[int]] = field(default_factory=list)

    @property
    def macs(self) -> int:
        return self.flops // 2


def measure(genotype: Genotype, f: int | None = None, size=(64, 64)) -> Stats:
    """Parameters and FLOPs of the derived network, in total and per layer (cell + scalers)."""
    net = build_network(genotype, f)
    net.eval()
    h, w = size
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, genotype.in_channels, h, w))
    by_module = counter.get_flop_counts()

    def flops_of(name: str) -> int:
        return int(sum(by_module.get(f"DerivedNetwork.{name}", {}).values()))

    layer_params, layer_flops, edge_params = [], [], []
    for layer in range(genotype.layers):
        mods = [net.cells[layer], net.scalers0[layer], net.scalers1[layer]]
        layer_params.append(sum(p.numel() for m in mods for p in m.parameters()))
        layer_flops.append(sum(flops_of(f"{k}.{layer}") for k in ("cells", "scalers0", "scalers1")))
        edge_params.append([sum(p.numel() for p in op.parameters()) for op in net.cells[layer].ops])
    return Stats(
        params=sum(p.numel() for p in net.parameters()),
        flops=int(counter.get_total_flops()),
        size=(h, w),
        layer_params=layer_params,
        layer_flops=layer_flops,
        edge_params=edge_params,
    )


def _fmt(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n:.0f}"


def _op_chip(op: str) -> str:
    colour = OP_COLOURS.get(op, "#cccccc")
    return (f'<span style="display:inline-block;width:0.8em;height:0.8em;background:{colour};'
            f'margin-right:0.3em;border-radius:2px"></span>{html.escape(op)}')


def op_counts_table(genotype: Genotype, layer: int | None = None) -> str:
    counts = genotype.op_counts(layer)
    order = [p for p in genotype.primitives if p in counts] + sorted(set(counts) - set(genotype.primitives))
    rows = "".join(f"<tr><td>{_op_chip(op)}</td><td style='text-align:right'>{counts[op]}</td></tr>"
                   for op in order)
    return f"<table class='{CSS_PREFIX}-ops' style='margin:0'><tr><th>op</th><th>count</th></tr>{rows}</table>"


def summary_html(genotype: Genotype, stats: Stats, label: str = "") -> str:
    """Whole-network summary: width path, parameters, FLOPs, op counts."""
    levels = ", ".join(f"{genotype.width_factors[h]:g}" for h in genotype.path)
    task = genotype.task + (f" x{genotype.scale}" if genotype.task == "sr" else "")
    h, w = stats.size
    prov = genotype.provenance or {}
    # a run is named by its folder, never by the machine's path to it
    source = html.escape(", ".join(f"{k}={PurePath(str(v)).name if k == 'run' else v}" for k, v in prov.items()
                                   if k in ("source", "run", "seed", "run_id", "created")))
    return (
        f"<div class='{CSS_PREFIX}-summary'>"
        f"<b>{html.escape(label)}</b><br>"
        f"task: {task}; {genotype.layers} layers x {genotype.steps} nodes<br>"
        f"width factors along the path: {levels}<br>"
        f"parameters: <b>{stats.params:,}</b> ({_fmt(stats.params)})<br>"
        f"FLOPs at a {h}x{w} input: <b>{_fmt(stats.flops)}</b> ({_fmt(stats.macs)} MACs)<br>"
        + (f"<small>provenance: {source}</small><br>" if source else "")
        + op_counts_table(genotype)
        + "</div>"
    )


def layer_html(genotype: Genotype, layer: int, stats: Stats, key: str = "") -> str:
    """One layer: the cell drawing, its edges with their parameters, its cost."""
    level = genotype.path[layer]
    rows = []
    for e, (op, j) in enumerate(genotype.cells[layer]):
        rows.append(f"<tr><td>node {e // 2}</td><td>{_op_chip(op)}</td><td>{input_name(j)}</td>"
                    f"<td style='text-align:right'>{stats.edge_params[layer][e]:,}</td></tr>")
    table = ("<table class='" + CSS_PREFIX + "-edges' style='margin:0'><tr><th>into</th><th>op</th><th>from</th>"
             "<th>params</th></tr>" + "".join(rows) + "</table>")
    return (
        f"<div class='{CSS_PREFIX}-cell' data-key='{html.escape(key)}' data-layer='{layer}'>"
        f"<div>{svg_of(draw_cell(genotype, layer))}</div>"
        f"<div><b>layer {layer}</b>: width level {level} (factor {genotype.width_factors[level]:g}); "
        f"cell + input scalers: {stats.layer_params[layer]:,} parameters, "
        f"{_fmt(stats.layer_flops[layer])} FLOPs</div>"
        f"<div style='display:flex;gap:2em;flex-wrap:wrap'>{table}{op_counts_table(genotype, layer)}</div>"
        "</div>"
    )


def _normalise(runs) -> dict[str, dict[str, Genotype]]:
    if isinstance(runs, Genotype):
        return {"genotype": {"-": runs}}
    if isinstance(runs, (list, tuple)):
        return {"genotype": {f"seed {i}": g for i, g in enumerate(runs)}}
    out: dict[str, dict[str, Genotype]] = {}
    for run, value in dict(runs).items():
        if isinstance(value, Genotype):
            out[str(run)] = {"-": value}
        elif isinstance(value, (list, tuple)):
            out[str(run)] = {f"seed {i}": g for i, g in enumerate(value)}
        else:
            out[str(run)] = {str(s): g for s, g in dict(value).items()}
        for g in out[str(run)].values():
            if not isinstance(g, Genotype):
                raise TypeError(f"run {run!r}: expected Genotype values, got {type(g).__name__}")
    if not out:
        raise ValueError("the explorer needs at least one genotype")
    return out


class GenotypeExplorer:
    """Browse runs x genotypes x layers of derived architectures (static) or edit one (live)."""

    def __init__(self, runs, *, f: int | None = None, size=(64, 64)):
        self.runs = _normalise(runs)
        self.f = f
        self.size = tuple(size)
        self._stats: dict[str, Stats] = {}
        self.links: list = []  # the jslinks of the last widget() (control index -> stack index)

    # -- data ------------------------------------------------------------------------------
    def genotype(self, run: str | None = None, name: str | None = None) -> Genotype:
        run = run if run is not None else next(iter(self.runs))
        variants = self.runs[run]
        name = name if name is not None else next(iter(variants))
        return variants[name]

    def stats(self, genotype: Genotype) -> Stats:
        key = repr(genotype.architecture())
        if key not in self._stats:
            self._stats[key] = measure(genotype, self.f, self.size)
        return self._stats[key]

    def table(self):
        """One row per (run, genotype): parameters, FLOPs, path, op counts (a pandas DataFrame)."""
        import pandas as pd

        rows = []
        for run, variants in self.runs.items():
            for name, g in variants.items():
                s = self.stats(g)
                row = {"run": run, "genotype": name, "params": s.params, "MFLOPs": s.flops / 1e6,
                       "path": "-".join(f"{g.width_factors[h]:g}" for h in g.path)}
                row.update(g.op_counts())
                rows.append(row)
        return pd.DataFrame(rows).fillna(0)

    # -- static view -----------------------------------------------------------------------
    def _genotype_view(self, run: str, name: str, g: Genotype):
        import ipywidgets as widgets

        s = self.stats(g)
        head = widgets.HBox([
            widgets.HTML(svg_of(draw_path(g))),
            widgets.HTML(summary_html(g, s, f"{run} / {name}" if name != "-" else run)),
        ], layout=widgets.Layout(flex_flow="row wrap", align_items="flex-start"))
        layers = widgets.ToggleButtons(options=[(f"layer {l}", l) for l in range(g.layers)],
                                       value=0, description="layer")
        layers.add_class(f"{CSS_PREFIX}-layer")
        key = f"{run}/{name}"
        cells = widgets.Stack([widgets.HTML(layer_html(g, l, s, key)) for l in range(g.layers)],
                              selected_index=0)
        cells.add_class(f"{CSS_PREFIX}-cells")
        self.links.append(widgets.jslink((layers, "index"), (cells, "selected_index")))
        return widgets.VBox([head, layers, cells])

    def widget(self):
        """The static explorer: pre-rendered choices switched client-side (works in HTML)."""
        import ipywidgets as widgets

        self.links = []
        run_views = []
        for run, variants in self.runs.items():
            # a run's genotypes are seeds in some runs, best/final epochs in others: "genotype"
            # names what every such list holds
            name_dd = widgets.Dropdown(options=[(n, i) for i, n in enumerate(variants)], value=0,
                                       description="genotype")
            name_dd.add_class(f"{CSS_PREFIX}-genotype")
            stack = widgets.Stack([self._genotype_view(run, n, g) for n, g in variants.items()],
                                  selected_index=0)
            self.links.append(widgets.jslink((name_dd, "index"), (stack, "selected_index")))
            run_views.append(widgets.VBox([name_dd, stack]) if len(variants) > 1 else stack)
        run_dd = widgets.Dropdown(options=[(r, i) for i, r in enumerate(self.runs)], value=0,
                                  description="run", layout=widgets.Layout(width="max-content"))
        run_dd.add_class(f"{CSS_PREFIX}-run")
        runs = widgets.Stack(run_views, selected_index=0)
        self.links.append(widgets.jslink((run_dd, "index"), (runs, "selected_index")))
        box = widgets.VBox([run_dd, runs])
        box.add_class(CSS_PREFIX)
        return box

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget())

    # -- live view -------------------------------------------------------------------------
    def editor(self, run: str | None = None, name: str | None = None) -> "GenotypeEditor":
        """A live editor of one genotype (needs a running kernel)."""
        return GenotypeEditor(self, self.genotype(run, name))


class GenotypeEditor:
    """Change an edge's op or input; the cell, the path and the counts update at once."""

    def __init__(self, explorer: GenotypeExplorer, genotype: Genotype):
        import ipywidgets as widgets

        self.explorer = explorer
        self.original = genotype
        self.genotype = copy.deepcopy(genotype)
        self.ops = [p for p in (genotype.primitives or PRIMITIVE_SETS["hinas"]) if p != "none"]
        self.layer = widgets.ToggleButtons(options=[(f"layer {l}", l) for l in range(genotype.layers)],
                                           value=0, description="layer")
        self.edges = widgets.VBox()
        self.cell = widgets.HTML()
        self.summary = widgets.HTML()
        self.message = widgets.HTML()
        self.reset_button = widgets.Button(description="reset")
        self.reset_button.on_click(lambda _: self.reset())
        self.layer.observe(lambda ch: self._rebuild_edges(), names="value")
        self.box = widgets.VBox([
            widgets.HBox([self.layer, self.reset_button]),
            widgets.HBox([self.edges, self.cell],
                         layout=widgets.Layout(flex_flow="row wrap", align_items="flex-start")),
            self.message, self.summary,
        ])
        self._rebuild_edges()

    # programmatic edits (also what the dropdowns call)
    def set_edge(self, layer: int, edge: int, op: str | None = None, input: int | None = None) -> bool:
        """Change one edge; returns False (and shows why) if the result is not a valid genotype."""
        cells = [list(c) for c in self.genotype.cells]
        old_op, old_in = cells[layer][edge]
        cells[layer][edge] = (op if op is not None else old_op, input if input is not None else old_in)
        data = self.genotype.to_dict()
        data["cells"] = [[list(e) for e in c] for c in cells]
        data["provenance"] = dict(self.original.provenance, edited=True)
        try:
            self.genotype = Genotype.from_dict(data, source="edited genotype")
        except GenotypeError as exc:
            self.message.value = f"<span style='color:#b00'>{html.escape(str(exc))}</span>"
            return False
        self.message.value = ""
        self.refresh()
        return True

    def reset(self) -> None:
        self.genotype = copy.deepcopy(self.original)
        self._rebuild_edges()

    def refresh(self) -> None:
        g, layer = self.genotype, self.layer.value
        s = self.explorer.stats(g)
        self.cell.value = layer_html(g, layer, s, "edited")
        self.summary.value = summary_html(g, s, "edited genotype")

    def _rebuild_edges(self) -> None:
        import ipywidgets as widgets

        layer = self.layer.value
        rows = []
        for e, (op, j) in enumerate(self.genotype.cells[layer]):
            op_dd = widgets.Dropdown(options=self.ops, value=op, description=f"node {e // 2}",
                                     layout=widgets.Layout(width="16em"))
            in_dd = widgets.Dropdown(options=[(input_name(i), i) for i in range(2 + e // 2)], value=j,
                                     layout=widgets.Layout(width="8em"))
            op_dd.observe(lambda ch, e=e: self.set_edge(self.layer.value, e, op=ch["new"]), names="value")
            in_dd.observe(lambda ch, e=e: self.set_edge(self.layer.value, e, input=ch["new"]), names="value")
            rows.append(widgets.HBox([op_dd, widgets.Label("from"), in_dd]))
        self.edges.children = rows
        self.refresh()

    def _ipython_display_(self):
        from IPython.display import display

        display(self.box)
