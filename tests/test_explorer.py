"""The genotype explorer (hinas.book.explorer): static pre-rendered view and live editor."""

from __future__ import annotations

import pytest

pytest.importorskip("ipywidgets")
import ipywidgets as widgets  # noqa: E402

from hinas.book.explorer import GenotypeExplorer, measure, svg_of  # noqa: E402
from hinas.space.genotype import random_genotype  # noqa: E402
from hinas.space.network import build_network, count_flops, count_parameters  # noqa: E402
from hinas.viz import draw_cell  # noqa: E402


@pytest.fixture(scope="module")
def runs():
    return {
        "dn": {"seed 0": random_genotype("denoise", seed=0), "seed 1": random_genotype("denoise", seed=1)},
        "sr": random_genotype("sr", seed=2, scale=2),
    }


def test_svg_is_inline_markup():
    svg = svg_of(draw_cell(random_genotype("denoise", seed=0), 1))
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert "<?xml" not in svg and "DOCTYPE" not in svg and "layer 1" in svg


def test_measure_matches_network_counts():
    g = random_genotype("denoise", seed=3)
    s = measure(g, size=(24, 24))
    net = build_network(g)
    assert s.params == count_parameters(net)
    assert s.flops == count_flops(net, (24, 24))["flops"]
    assert len(s.layer_params) == len(s.layer_flops) == g.layers
    for layer in range(g.layers):
        assert sum(s.edge_params[layer]) <= s.layer_params[layer]
        assert s.layer_flops[layer] > 0
    assert sum(s.layer_params) < s.params


@pytest.mark.parametrize("given", ["one", "list", "mapping"])
def test_accepts_several_shapes_of_input(given):
    g = random_genotype("denoise", seed=0)
    value = {"one": g, "list": [g, g], "mapping": {"a": g}}[given]
    ex = GenotypeExplorer(value)
    assert ex.genotype() is g
    with pytest.raises(TypeError):
        GenotypeExplorer({"bad": {"s": "not a genotype"}})


def test_static_widget_prerenders_every_choice(runs):
    ex = GenotypeExplorer(runs, size=(16, 16))
    box = ex.widget()
    run_dd, run_stack = box.children
    assert isinstance(run_dd, widgets.Dropdown) and isinstance(run_stack, widgets.Stack)
    assert [label for label, _ in run_dd.options] == ["dn", "sr"]
    assert len(run_stack.children) == 2
    # dn has two genotypes: a dropdown over a stack of genotype views, labelled for what it lists
    # (a run's variants may be seeds or best/final-epoch files, so not "seed")
    seed_dd, seed_stack = run_stack.children[0].children
    assert isinstance(seed_dd, widgets.Dropdown) and seed_dd.description == "genotype"
    assert [label for label, _ in seed_dd.options] == ["seed 0", "seed 1"]
    assert len(seed_stack.children) == 2
    view = seed_stack.children[1]
    layer_buttons, cells = view.children[1], view.children[2]
    g = runs["dn"]["seed 1"]
    assert isinstance(cells, widgets.Stack) and len(cells.children) == g.layers
    for layer, cell in enumerate(cells.children):
        assert f"data-layer='{layer}'" in cell.value and f"layer {layer}" in cell.value
    assert cells.children[0].value != cells.children[1].value
    # every control is jslinked (client side) to the stack it switches
    linked = {(l.source[0].model_id, l.target[0].model_id) for l in ex.links}
    assert (run_dd.model_id, run_stack.model_id) in linked
    assert (seed_dd.model_id, seed_stack.model_id) in linked
    assert (layer_buttons.model_id, cells.model_id) in linked
    assert all(l.source[1] == "index" and l.target[1] == "selected_index" for l in ex.links)


def test_table_has_one_row_per_genotype(runs):
    t = GenotypeExplorer(runs, size=(16, 16)).table()
    assert len(t) == 3 and {"run", "genotype", "params", "MFLOPs", "path"} <= set(t.columns)
    assert "seed" not in t.columns


def test_editor_redraws_and_recounts(runs):
    ex = GenotypeExplorer(runs, size=(16, 16))
    ed = ex.editor("dn", "seed 0")
    op_dd, _, in_dd = ed.edges.children[0].children
    before_cell, before_params = ed.cell.value, ex.stats(ed.genotype).params
    new_op = "skip_connect" if op_dd.value != "skip_connect" else "conv_3x3"
    op_dd.value = new_op  # what a user does in JupyterLab
    assert ed.genotype.cells[0][0][0] == new_op
    assert ed.cell.value != before_cell
    assert ex.stats(ed.genotype).params == count_parameters(build_network(ed.genotype))
    assert ex.stats(ed.genotype).params != before_params
    # change an input
    other = 1 - in_dd.value
    in_dd.value = other
    assert ed.genotype.cells[0][0][1] == other
    # switch layer: the rows follow the layer
    ed.layer.value = 1
    assert ed.edges.children[0].children[0].value == ed.genotype.cells[1][0][0]
    assert "data-layer='1'" in ed.cell.value
    ed.reset()
    assert ed.genotype.architecture() == runs["dn"]["seed 0"].architecture()


def test_editor_rejects_invalid_edits(runs):
    ed = GenotypeExplorer(runs, size=(16, 16)).editor("dn", "seed 0")
    before = ed.genotype.architecture()
    assert ed.set_edge(0, 0, input=5) is False  # node 0 has inputs 0 and 1 only
    assert "does not exist" in ed.message.value
    assert ed.genotype.architecture() == before


def test_committed_variants_are_listed_as_genotypes():
    # a committed search's run holds its best-epoch and final-epoch files, not seeds
    g = random_genotype("denoise", seed=4)
    ex = GenotypeExplorer({"results: paper/search-dn-s0": {"genotype": g, "genotype_final": g}},
                          size=(16, 16))
    name_dd = ex.widget().children[1].children[0].children[0]
    assert name_dd.description == "genotype"
    assert [label for label, _ in name_dd.options] == ["genotype", "genotype_final"]
    assert list(ex.table().genotype) == ["genotype", "genotype_final"]
