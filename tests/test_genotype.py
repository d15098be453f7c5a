import json
import math
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hinas.errors import GenotypeError
from hinas.space.genotype import Genotype, all_paths, decode_cell, path_log_prob, random_genotype, viterbi, viterbi_trace
from hinas.space.ops import PRIMITIVE_SETS
from hinas.space.supernet import beta_mask, grid_sources

PRIMS = PRIMITIVE_SETS["hinas"]


def test_decode_cell_on_hand_set_alpha():
    # B=2: node0 edges {0,1}, node1 edges {2,3,4}
    w = torch.full((5, 7), 0.1)
    w[0, PRIMS.index("conv_3x3")] = 0.5
    w[1, PRIMS.index("none")] = 0.9  # 'none' never wins
    w[1, PRIMS.index("skip_connect")] = 0.3
    w[2, PRIMS.index("sep_conv_5x5")] = 0.2
    w[3, PRIMS.index("dil_conv_3x3")] = 0.6
    w[4, PRIMS.index("sep_conv_3x3")] = 0.4
    gene = decode_cell(w, 2, PRIMS)
    assert gene == [("conv_3x3", 0), ("skip_connect", 1), ("dil_conv_3x3", 1), ("sep_conv_3x3", 2)]


def test_decode_ties_go_to_lower_index():
    gene = decode_cell(torch.ones(5, 7) / 7, 2, PRIMS)
    assert gene == [("conv_3x3", 0), ("conv_3x3", 1), ("conv_3x3", 0), ("conv_3x3", 1)]


def _random_beta(layers, levels, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(len(grid_sources(layers, levels)), 3, generator=g) * 2
    logits = logits.masked_fill(beta_mask(layers, levels), -math.inf)
    return torch.softmax(logits, dim=1)


@settings(max_examples=60, deadline=None)
@given(layers=st.integers(1, 7), levels=st.integers(2, 5), seed=st.integers(0, 10_000))
def test_viterbi_matches_brute_force(layers, levels, seed):
    beta = _random_beta(layers, levels, seed)
    best = max(all_paths(layers, levels), key=lambda p: path_log_prob(beta, p, levels))
    trace = viterbi_trace(beta, layers, levels)
    assert trace.path == best
    assert math.isclose(trace.log_prob, path_log_prob(beta, best, levels), rel_tol=1e-9, abs_tol=1e-9)


def test_viterbi_on_hand_set_beta():
    # Paper dn grid: stem -> layer0 prefers level 1, then wider, then back down.
    beta = torch.tensor([
        [0.0, 0.2, 0.8],  # stem
        [0.0, 0.9, 0.1],  # l0 h0
        [0.1, 0.1, 0.8],  # l0 h1
        [0.0, 0.5, 0.5],  # l1 h0
        [0.3, 0.4, 0.3],  # l1 h1
        [0.7, 0.3, 0.0],  # l1 h2
    ])
    assert viterbi(beta, 3, 3) == [1, 2, 1]


def test_json_round_trip(tmp_path):
    g = random_genotype("sr", seed=3)
    p = g.save(tmp_path / "g.json")
    back = Genotype.load(p)
    assert back == g
    assert back.architecture() == g.architecture()
    data = json.loads(p.read_text())
    assert data["schema_version"] == 1 and data["task"] == "sr" and data["scale"] == 4
    assert "provenance" in data


def _good():
    return random_genotype("denoise", seed=1).to_dict()


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("path"), "missing field"),
        (lambda d: d["cells"][0].__setitem__(0, ["conv_9x9", 0]), "unknown op 'conv_9x9'"),
        (lambda d: d["cells"].pop(), "cells has 2 layers but path has 3"),
        (lambda d: d.__setitem__("path", [0, 2, 1]), "skips a level"),
        (lambda d: d.__setitem__("path", [2, 2, 1]), "skips a level"),
        (lambda d: d["cells"][1].__setitem__(0, ["conv_3x3", 5]), "input 5 does not exist"),
        (lambda d: d.__setitem__("schema_version", 99), "schema_version 99"),
        (lambda d: d["cells"][0].pop(), "needs 8"),
    ],
)
def test_rejects_bad_genotypes(mutate, message):
    d = _good()
    mutate(d)
    with pytest.raises(GenotypeError, match=message):
        Genotype.from_dict(d, "g.json")


BAD_FILES = {
    "not_json.json": "this is not json",
    "unknown_op.json": None,
    "wrong_layers.json": None,
    "missing_field.json": None,
    "skip_level.json": None,
}


@pytest.mark.parametrize("kind", ["not_json", "unknown_op", "wrong_layers", "missing_field", "skip_level", "absent"])
def test_cli_bad_genotype_exits_2_with_one_line(tmp_path, kind):
    d = _good()
    path = tmp_path / f"{kind}.json"
    if kind == "not_json":
        path.write_text("{not json")
    elif kind == "absent":
        pass
    else:
        if kind == "unknown_op":
            d["cells"][0][0][0] = "conv_9x9"
        elif kind == "wrong_layers":
            d["cells"] = d["cells"][:2]
        elif kind == "missing_field":
            del d["task"]
        elif kind == "skip_level":
            d["path"] = [0, 2, 2]
        path.write_text(json.dumps(d))
    proc = subprocess.run([sys.executable, "-m", "hinas", "describe", str(path), "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("hinas: error:") and str(path) in lines[0]
    assert "Traceback" not in proc.stderr


def test_reference_op_names_are_accepted():
    d = _good()
    d["cells"][0][0][0] = "con_c_3x3_leaky"
    g = Genotype.from_dict(d)
    assert g.cells[0][0][0] == "con_c_3x3_leaky"


@pytest.mark.parametrize("kind", ["R1", "R2"])
def test_modified_cells_differ_and_stay_valid(kind):
    from hinas.space.genotype import modify_genotype

    g = random_genotype("denoise", seed=4)
    m = modify_genotype(g, kind, n_edges=2, seed=1)
    assert m.cells != g.cells and m.path == g.path
    changes = m.provenance["modification"]["changes"]
    assert changes
    for c in changes:
        if kind == "R1":
            assert c["from"][1] == c["to"][1] and c["from"][0] != c["to"][0]
        else:
            assert c["from"][0] == c["to"][0] and c["from"][1] != c["to"][1]
