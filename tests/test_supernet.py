import pytest
import torch

from hinas.space.spec import SupernetConfig
from hinas.errors import ConfigError
from hinas.space.supernet import Supernet, beta_mask, grid_sources


def tiny(task="denoise", **kw):
    base = dict(f=4, layers=2, steps=2)
    if task == "sr":
        base.update(scale=2)
    base.update(kw)
    return SupernetConfig.paper(task, **base)


@pytest.mark.parametrize("task", ["denoise", "sr"])
@pytest.mark.parametrize("sharing", ["eq5", "eq6"])
def test_forward_backward_tiny(task, sharing):
    cfg = tiny(task, cell_sharing=sharing)
    net = Supernet(cfg)
    x = torch.rand(2, cfg.in_channels, 12, 12)
    y = net(x)
    scale = cfg.scale or 1
    assert y.shape == (2, cfg.in_channels, 12 * scale, 12 * scale)
    assert (y > 0).all() and (y < 1).all()  # the search-time sigmoid
    y.mean().backward()
    assert net.arch_alpha.grad is not None and net.arch_alpha.grad.abs().sum() > 0
    assert net.arch_beta.grad is not None and net.arch_beta.grad.abs().sum() > 0
    for p in net.weight_parameters():
        assert p.grad is not None


def test_parameter_split_is_disjoint_and_complete():
    net = Supernet(tiny())
    arch = {id(p) for p in net.arch_parameters()}
    weights = {id(p) for p in net.weight_parameters()}
    assert not arch & weights
    assert arch | weights == {id(p) for p in net.parameters()}
    names = {n for n, p in net.named_parameters() if id(p) in arch}
    assert names == {"arch_alpha", "arch_beta"}


def test_paper_sizes():
    dn = Supernet(SupernetConfig.paper("denoise"))
    assert dn.arch_alpha.shape == (3, 14, 7) and dn.arch_beta.shape == (6, 3)
    assert abs(sum(p.numel() for p in dn.weight_parameters()) - 1.475e6) < 0.005e6
    sr = Supernet(SupernetConfig.paper("sr", 4))
    assert sr.arch_alpha.shape == (2, 9, 7) and sr.arch_beta.shape == (3, 3)
    assert abs(sum(p.numel() for p in sr.weight_parameters()) - 0.429e6) < 0.005e6


def test_tied_alpha_switch():
    net = Supernet(tiny(lwas=False))
    assert net.arch_alpha.shape == (5, 7)
    g = net.genotype()
    assert g.cells[0] == g.cells[1]


def test_beta_mask_and_softmax_over_outgoing_moves():
    net = Supernet(SupernetConfig.paper("denoise"))
    w = net.beta_weights()
    assert torch.allclose(w.sum(dim=1), torch.ones(6))
    # stem: softmax([masked, 1, 1]) = [0, .5, .5]
    assert torch.allclose(w[0], torch.tensor([0.0, 0.5, 0.5]))
    mask = beta_mask(3, 3)
    for s in grid_sources(3, 3):
        assert bool(mask[s.index, 0]) == (s.level == 0)
        assert bool(mask[s.index, 2]) == (s.level == 2)
    assert (w[mask] == 0).all()


def test_grid_has_two_levels_in_layer_zero_and_any_depth():
    cfg = SupernetConfig.paper("denoise", f=2, layers=5, steps=1, levels=4, width_factors=(1, 1.5, 2, 2.5))
    net = Supernet(cfg)
    assert [cfg.levels_in_layer(l) for l in range(5)] == [2, 3, 4, 4, 4]
    assert net.arch_beta.shape[0] == 1 + 2 + 3 + 4 + 4
    y = net(torch.rand(1, 1, 8, 8))
    assert y.shape == (1, 1, 8, 8)
    assert len(net.genotype().path) == 5


def test_eq6_runs_one_cell_per_incoming_level():
    eq5 = Supernet(SupernetConfig.paper("denoise"))
    eq6 = Supernet(SupernetConfig.paper("denoise", cell_sharing="eq6"))
    assert eq5.cell_evaluations() == 11.5
    assert eq6.cell_evaluations() == 20.0
    deep5 = Supernet(SupernetConfig.paper("denoise", f=2, steps=1, layers=8))
    deep6 = Supernet(SupernetConfig.paper("denoise", f=2, steps=1, layers=8, cell_sharing="eq6"))
    assert round(deep6.cell_evaluations() / deep5.cell_evaluations(), 2) == 2.13


def test_eq5_and_eq6_agree_when_one_input_per_cell():
    # With beta forcing a single path (one non-zero input per cell), Eq. 5 and Eq. 6 compute
    # the same function when the Eq. 6 cells share weights with the Eq. 5 cell.
    cfg5 = tiny(layers=2)
    net5, net6 = Supernet(cfg5), Supernet(cfg5.replace(cell_sharing="eq6"))
    with torch.no_grad():
        big = torch.tensor([[-1e4, 1e4, -1e4]] * net5.arch_beta.shape[0])  # always "same"
        net5.arch_beta.copy_(big)
        net6.arch_beta.copy_(big)
    state = net5.state_dict()
    for k6 in net6.state_dict():
        k5 = k6
        if k6.startswith("cells."):
            layer_level, rest = k6.split(".", 2)[1], k6.split(".", 2)[2]
            k5 = "cells." + "_".join(layer_level.split("_")[:2]) + "." + rest
        net6.state_dict()[k6].copy_(state[k5])
    net5.eval(), net6.eval()
    x = torch.rand(1, 1, 10, 10)
    assert torch.allclose(net5(x), net6(x), atol=1e-5)


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="not an integer"):
        SupernetConfig.paper("denoise", f=5)
    with pytest.raises(ConfigError, match="cell_sharing"):
        SupernetConfig.paper("denoise", cell_sharing="eq7")
    with pytest.raises(ConfigError, match="unknown supernet setting"):
        SupernetConfig.paper("denoise").replace(colour=3)
    assert SupernetConfig.paper("denoise", width_factors=(1, 2, 4)).channels(2) == 40
