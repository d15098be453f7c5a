"""The released code's own training and search steps (hinas.bench.released), on the CPU.

Only where HINAS_RELEASED_CODE names a checkout of hkzhang-git/HiNAS (never in CI).
"""
from __future__ import annotations

import os

import pytest
import torch

CODE = os.environ.get("HINAS_RELEASED_CODE")
needs_code = pytest.mark.skipif(not CODE, reason="set HINAS_RELEASED_CODE to a checkout of hkzhang-git/HiNAS")


def _batch(n=2, size=32, seed=0):
    """A smooth clean image and a mildly noisy input, so the released log-SSIM stays finite."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 1, 4, 4, generator=g)
    y = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    x = (y + 0.1 * torch.randn(n, 1, size, size, generator=g)).clamp(0, 1)
    return x, y


def _snapshot(params):
    return [p.detach().clone() for p in params]


def _changed(before, params):
    return any(not torch.equal(b, p.detach()) for b, p in zip(before, params))


def test_needs_a_checkout(tmp_path):
    from hinas.bench.released import released_search_step, released_train_step
    from hinas.errors import HinasError
    from hinas.space.genotype import random_genotype

    with pytest.raises(HinasError, match="not a checkout of the released HiNAS code"):
        released_train_step(str(tmp_path), random_genotype("denoise"))
    with pytest.raises(HinasError, match="not a checkout of the released HiNAS code"):
        released_search_step(str(tmp_path))


@needs_code
def test_released_train_step():
    from hinas.bench.released import released_train_step
    from hinas.space.genotype import random_genotype
    from hinas.space.network import build_network

    torch.set_num_threads(2)
    g = random_genotype("denoise", seed=1)
    torch.manual_seed(0)
    ours = build_network(g, 8, bn_init="torch1")
    model, step = released_train_step(CODE, g, f=8, ours=ours)
    assert model.training
    x, y = _batch()
    # Same weights, same forward (eval mode: running statistics, no batch dependence).
    ours.eval(), model.eval()
    with torch.no_grad():
        assert float((ours(x) - model(x)).abs().max()) < 1e-5
    model.train()
    before = _snapshot(model.parameters())
    losses = [step(x, y), step(*_batch(seed=1))]
    assert all(torch.isfinite(v) and v.ndim == 0 and not v.requires_grad for v in losses), losses
    assert _changed(before, list(model.parameters()))
    assert step.optimizer.param_groups[0]["momentum"] == 0.9


@needs_code
def test_released_train_step_builds_its_own_hinas_weights():
    """Without ``ours`` the weights are a seeded hinas build's (torch-1.0 BN init)."""
    from hinas.bench.released import released_train_step
    from hinas.space.genotype import random_genotype
    from hinas.space.network import build_network

    g = random_genotype("denoise", seed=2)
    model, _ = released_train_step(CODE, g, f=8, seed=3)
    torch.manual_seed(3)
    ours = build_network(g, 8, bn_init="torch1").eval()
    x, _y = _batch(n=1)
    model.eval()
    with torch.no_grad():
        assert float((ours(x) - model(x)).abs().max()) < 1e-5


@needs_code
def test_released_search_steps():
    from hinas.bench.released import released_search_step

    torch.set_num_threads(2)
    model, weight_step, arch_step = released_search_step(CODE, batch=2)
    assert model.training and weight_step.batch == 2
    w, a = model.w_parameters(), model.a_parameters()
    assert len(a) == 2 and len(w) + len(a) == len(list(model.parameters()))
    w0, a0 = _snapshot(w), _snapshot(a)
    losses = [weight_step(*_batch(seed=s)) for s in (0, 1)]
    assert all(torch.isfinite(v) for v in losses), losses
    assert _changed(w0, w) and not _changed(a0, a)  # the weight step leaves alphas and betas alone
    w1 = _snapshot(w)
    losses = [arch_step(*_batch(seed=s)) for s in (2, 3)]
    assert all(torch.isfinite(v) for v in losses), losses
    assert _changed(a0, a) and not _changed(w1, w)  # and the architecture step the weights
