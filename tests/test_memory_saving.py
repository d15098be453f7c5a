"""Memory-saving search (issue 15): recompute gives the plain Eq. 5 step exactly; partial
channels is a different, smaller network with its own edge weights."""
from __future__ import annotations

import pytest
import torch

from hinas.space.spec import SupernetConfig
from hinas.errors import ConfigError
from hinas.losses import RestorationLoss
from hinas.space.supernet import Supernet


def _one_step(cell_sharing="eq5", **saving):
    torch.manual_seed(0)
    cfg = SupernetConfig.paper("denoise", f=4, layers=3, steps=2, cell_sharing=cell_sharing, **saving)
    net = Supernet(cfg).train()
    torch.manual_seed(1)
    x, y = torch.rand(2, 1, 24, 24), torch.rand(2, 1, 24, 24)
    loss = RestorationLoss("denoise", "search")(net(x), y)
    loss.backward()
    return net, loss.detach()


@pytest.mark.parametrize("cell_sharing", ["eq5", "eq6"])
def test_recompute_gives_the_same_loss_gradients_and_batchnorm_statistics(cell_sharing):
    plain, loss_plain = _one_step(cell_sharing)
    saved, loss_saved = _one_step(cell_sharing, memory_saving="recompute")
    assert torch.equal(loss_plain, loss_saved)
    grads = {n: p.grad for n, p in saved.named_parameters()}
    n_compared = 0
    for name, p in plain.named_parameters():
        if p.grad is None:
            assert grads[name] is None, name
            continue
        assert torch.allclose(p.grad, grads[name], rtol=0, atol=1e-6), name
        n_compared += 1
    assert n_compared > 100
    # running statistics updated once per forward, not again when backward recomputes
    state = saved.state_dict()
    for name, value in plain.state_dict().items():
        assert torch.equal(value, state[name]), name
    counts = [v for k, v in state.items() if k.endswith("num_batches_tracked")]
    assert counts and all(int(c) == 1 for c in counts)


def test_recompute_is_idle_without_gradients():
    torch.manual_seed(0)
    net = Supernet(SupernetConfig.paper("denoise", f=4, layers=2, steps=2, memory_saving="recompute")).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 1, 16, 16))
    assert out.shape == (1, 1, 16, 16)


def test_partial_channels_adds_edge_weights_and_decodes():
    net, loss = _one_step(partial_channels=2)
    assert torch.isfinite(loss)
    assert len(net.arch_parameters()) == 3
    assert net.arch_edge.grad is not None and net.arch_edge.grad.abs().sum() > 0
    # the ops see half the channels: fewer weights than the full supernet
    full, _ = _one_step()
    assert sum(p.numel() for p in net.weight_parameters()) < sum(p.numel() for p in full.weight_parameters())
    g = net.genotype()
    assert len(g.cells) == 3 and len(g.path) == 3
    # every node keeps its two strongest edges after edge normalisation
    edge = net.edge_weights()
    assert torch.allclose(edge[0, :2].sum(), torch.tensor(1.0))


def test_partial_channels_with_recompute_matches_partial_channels():
    a, la = _one_step(partial_channels=2)
    b, lb = _one_step(partial_channels=2, memory_saving="recompute")
    assert torch.equal(la, lb)
    assert torch.allclose(a.arch_edge.grad, b.arch_edge.grad, rtol=0, atol=1e-6)


@pytest.mark.parametrize("bad", [dict(memory_saving="magic"), dict(partial_channels=0), dict(partial_channels=99)])
def test_bad_settings_are_refused_by_name(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        SupernetConfig.paper("denoise", f=4, **bad)


def test_bench_reports_the_saving_beside_plain_eq5():
    from hinas.bench.measure import supernet_memory

    res = supernet_memory(batch=1, size=16, layers=2, steps=2, f=4, repeats=1, memory_saving="recompute",
                          modes=("eq5",))
    s = res["saving"]
    assert set(s) >= {"peak_bytes", "step_seconds", "memory_ratio_vs_eq5", "time_ratio_vs_eq5", "grad_max_abs_diff"}
    assert s["grad_max_abs_diff"] <= 1e-6
    assert s["peak_bytes"] < res["eq5"]["peak_bytes"]
    assert s["memory_ratio_vs_eq5"] == pytest.approx(res["eq5"]["peak_bytes"] / s["peak_bytes"])


def test_memory_modes_table_rows_from_a_result():
    from hinas.bench.measure import memory_modes_table, supernet_memory

    res = supernet_memory(batch=1, size=16, layers=2, steps=2, f=4, repeats=1, memory_saving="recompute")
    rows = memory_modes_table(res)
    assert [r["mode"].split(" (")[0] for r in rows] == ["Eq. 6", "Eq. 5", "Eq. 5 + recompute"]
    assert rows[1]["memory_vs_eq5"] == 1.0 and rows[2]["memory_vs_eq5"] < 1.0 < rows[0]["memory_vs_eq5"]
