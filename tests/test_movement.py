"""hinas.engine.movement: how far a search moved alpha and beta, and whether its width path came
from a tie. A tiny (smoke) supernet, hand-set architecture weights, brute force over paths."""

import itertools
import json
import math
from pathlib import Path

import pytest
import torch

from hinas.engine.config import RunConfig
from hinas.engine.movement import (MOVED_THRESHOLD, initial_beta_weights, movement_from_csv, path_ties,
                                   search_movement)
from hinas.space.genotype import all_paths, path_log_prob, viterbi
from hinas.space.supernet import Supernet

REPO = Path(__file__).resolve().parents[1]


def _net(**kw) -> Supernet:
    torch.manual_seed(0)
    return Supernet(RunConfig.from_profile("smoke", "denoise", quiet=True, **kw).supernet_config())


def test_threshold_is_the_books():
    assert MOVED_THRESHOLD == 0.02  # notebooks/04_search.ipynb calls a search 'moved' at this distance


def test_fresh_supernet_has_not_moved_and_its_path_is_a_tie():
    net = _net(layers=3, levels=3)
    assert torch.allclose(initial_beta_weights(3, 3).float(), net.beta_weights().detach())
    m = search_movement(net)
    assert m["alpha_max_dev"] == 0 and m["beta_max_change"] == 0 and not m["moved"]
    assert m["n_ops"] == len(net.cfg.primitives) and m["path"] == net.genotype().path
    # uniform beta: every path is equally likely, the Viterbi keeps the narrowest by its tie rule
    assert m["path_from_tie"] and m["path_ties"] and m["path_other_tiebreak"] != m["path"]


def test_moved_alpha_or_beta_and_a_clear_path():
    net = _net(layers=3, levels=3)
    with torch.no_grad():
        net.arch_alpha[1, 2, 3] += 0.2  # one op of one edge of layer 1
    m = search_movement(net)
    k = len(net.cfg.primitives)
    want = float((net.alpha_weights().detach()[1, 2] - 1 / k).abs().max())
    assert m["alpha_max_dev"] == pytest.approx(want, abs=1e-6) and m["alpha_max_dev"] >= MOVED_THRESHOLD
    assert m["moved"] and m["beta_max_change"] == 0
    # beta alone: every source prefers to go wider where it can, else to stay
    net = _net(layers=3, levels=3)
    with torch.no_grad():
        net.arch_beta[:, 2] += 1.0
        net.arch_beta[:, 1] += 0.5
    m = search_movement(net)
    assert m["moved"] and m["alpha_max_dev"] == 0
    init = initial_beta_weights(3, 3)
    assert m["beta_max_change"] == pytest.approx(float((net.beta_weights().detach().double() - init).abs().max()), abs=1e-6)
    assert m["path"] == [1, 2, 2] and not m["path_from_tie"] and m["path_other_tiebreak"] == m["path"]
    # a small move (below the threshold) is 'not moved'
    net = _net(layers=3, levels=3)
    with torch.no_grad():
        net.arch_alpha[0, 0, 0] += 0.01
    assert not search_movement(net)["moved"]


@pytest.mark.parametrize("layers,levels", [(2, 3), (3, 3), (4, 3), (4, 4)])
def test_path_from_tie_is_a_second_best_path_by_brute_force(layers, levels):
    from hinas.space.grid import grid_sources

    rng = torch.Generator().manual_seed(layers * 10 + levels)
    mask = initial_beta_weights(layers, levels) == 0
    n = len(grid_sources(layers, levels))
    values = torch.tensor([0.2, 0.3, 0.5, 1.0, 0.7])
    for trial in range(40):
        # few distinct weights: exact ties between paths are common
        w = values[torch.randint(len(values), (n, 3), generator=rng)].double().masked_fill(mask, 0.0)
        beta = w / w.sum(dim=1, keepdim=True)
        res = path_ties(beta, layers, levels)
        probs = {tuple(p): math.exp(path_log_prob(beta, p, levels)) for p in all_paths(layers, levels)}
        best = max(probs.values())
        optimal = {p for p, v in probs.items() if abs(v - best) <= 1e-6}
        assert res["path"] == viterbi(beta, layers, levels) and tuple(res["path"]) in optimal
        assert bool(res["ties"]) == (len(optimal) > 1), (trial, res, optimal)
        assert tuple(res["path_other_tiebreak"]) in optimal
        assert (res["path_other_tiebreak"] != res["path"]) == bool(res["ties"])


def test_search_summary_carries_movement_and_the_csvs_agree(tmp_path):
    from hinas.engine.search import search

    cfg = RunConfig.from_profile("smoke", "denoise", quiet=True, epochs=2, val_start_epoch=1, a_lr=0.03)
    summary = search(cfg, tmp_path / "run")
    m = summary["movement"]
    assert set(m) >= {"alpha_max_dev", "beta_max_change", "path_from_tie", "moved"}
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["movement"] == m
    from_csv = movement_from_csv(tmp_path / "run")  # the last epoch's rows, rounded to 6 decimals
    assert from_csv["alpha_max_dev"] == pytest.approx(m["alpha_max_dev"], abs=2e-6)
    assert from_csv["beta_max_change"] == pytest.approx(m["beta_max_change"], abs=2e-6)
    assert from_csv["path"] == m["path"] == summary["path"] and from_csv["moved"] == m["moved"]
    # without config.yaml the grid comes from the beta rows
    for name in ("alpha.csv", "beta.csv"):
        (tmp_path / "bare").mkdir(exist_ok=True)
        (tmp_path / "bare" / name).write_text((tmp_path / "run" / name).read_text())
    assert movement_from_csv(tmp_path / "bare")["beta_max_change"] == from_csv["beta_max_change"]


def test_committed_first_gpu_search_did_not_move():
    folder = REPO / "results" / "paper" / "search-dn-s0"
    if not (folder / "alpha.csv").exists():
        pytest.skip("no committed paper-plan results")
    m = movement_from_csv(folder)
    assert not m["moved"] and m["alpha_max_dev"] < 0.005 and m["beta_max_change"] < 0.01
    assert m["path"] == json.loads((folder / "genotype.json").read_text())["path"]


def test_weights_need_the_grid():
    with pytest.raises(ValueError, match="layers= and levels="):  # 2 layers: 3 rows for any number of levels >= 2
        search_movement(torch.ones(2, 7) / 7, torch.full((5, 3), 1 / 3))
    for layers, levels in itertools.product((2, 3), (2, 3)):
        b = initial_beta_weights(layers, levels)
        assert torch.allclose(b.sum(1), torch.ones(len(b), dtype=b.dtype))


def test_weights_alone_give_the_grid():
    net = _net(layers=3, levels=3)
    with torch.no_grad():
        net.arch_beta[:, 2] += 1.0
    m = search_movement(net)
    a, b = net.alpha_weights().detach(), net.beta_weights().detach()
    assert search_movement(a, b) == m == search_movement((a, b)) == search_movement(a, b, layers=3, levels=3)
    assert search_movement(a.numpy(), b.numpy())["beta_max_change"] == m["beta_max_change"]
