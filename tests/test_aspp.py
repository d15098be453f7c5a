"""One ASPP class for the derived SR network and the supernet's decoder (issue 35, point 5).

The supernet's heads were a class of their own (``ASPPHead``: ``branch_1x1``, ``branch_atrous``,
``project``); they are now :class:`hinas.space.network.ASPP` with one rate. The legacy class is kept
here, verbatim, to show the new one computes the same, is initialised from the same random
draws, keeps the parameter order (optimiser states are by position) and loads its state dicts.
"""

from __future__ import annotations

import torch
from torch import nn

from hinas.space.spec import SupernetConfig
from hinas.space.genotype import random_genotype
from hinas.space.network import ASPP, ASPP_LEGACY_KEYS, SR_ASPP_RATES, DerivedNetwork
from hinas.space.ops import conv_bn_act, init_batchnorm, sep3x3_bn
from hinas.space.supernet import Supernet


class LegacyASPPHead(nn.Module):
    """The supernet's former head, as committed before the unification."""

    def __init__(self, c_in: int, c_out: int, rate: int, affine: bool = True):
        super().__init__()
        self.branch_1x1 = conv_bn_act(c_in, c_out, 1, affine=affine)
        self.branch_atrous = sep3x3_bn(c_in, c_out, dilation=rate)
        self.project = conv_bn_act(2 * c_out, c_out, 1, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([self.branch_1x1(x), self.branch_atrous(x)], dim=1))


def _legacy_key(key: str) -> str:
    for old, new in ASPP_LEGACY_KEYS.items():
        key = key.replace(new, old)
    return key


def _trained_state(module: nn.Module, seed: int = 0) -> None:
    """Non-trivial values everywhere (running statistics included) so the comparisons bite."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in module.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)


def test_the_supernet_and_the_sr_network_use_the_one_class():
    net = Supernet(SupernetConfig(task="denoise", layers=2, levels=2, steps=2, f=2))
    assert net.aspp and all(type(h) is ASPP and len(h.branches) == 2 for h in net.aspp)
    sr = DerivedNetwork(random_genotype("sr", scale=2, layers=2, steps=2, seed=0), f=4)
    assert type(sr.pre_conv) is ASPP and len(sr.pre_conv.branches) == 1 + len(SR_ASPP_RATES)
    assert all(k.startswith(("branches.", "project.")) for k in sr.pre_conv.state_dict())


def test_one_rate_aspp_is_the_former_head():
    for affine in (True, False):
        torch.manual_seed(3)
        old = LegacyASPPHead(6, 4, 16, affine=affine)
        init_batchnorm(old, "torch1")
        torch.manual_seed(3)
        new = ASPP(6, 4, (16,), affine=affine)
        init_batchnorm(new, "torch1")
        # the same random draws in the same order: a fresh search starts from the same weights
        assert [_legacy_key(k) for k in new.state_dict()] == list(old.state_dict())
        assert all(torch.equal(a, b) for a, b in zip(new.state_dict().values(), old.state_dict().values()))
        # the same parameter order (what an optimiser's state is keyed by)
        assert [p.shape for p in new.parameters()] == [p.shape for p in old.parameters()]
        _trained_state(old)
        result = new.load_state_dict(old.state_dict())  # the legacy names, strict
        assert not result.missing_keys and not result.unexpected_keys
        x = torch.randn(2, 6, 9, 9, generator=torch.Generator().manual_seed(1))
        for mode in (True, False):
            old.train(mode), new.train(mode)
            assert torch.equal(new(x), old(x))


def test_a_legacy_supernet_state_dict_loads_strictly_and_alone():
    cfg = SupernetConfig(task="denoise", layers=2, levels=2, steps=2, f=2)
    src = Supernet(cfg)
    _trained_state(src)
    legacy = {_legacy_key(k) if ".branches." in k and k.startswith("aspp.") else k: v
              for k, v in src.state_dict().items()}
    assert any("branch_atrous" in k for k in legacy) and not any(".branches." in k for k in legacy)
    before = dict(legacy)
    dst = Supernet(cfg)
    dst.load_state_dict(legacy)  # strict
    assert legacy.keys() == before.keys()  # the caller's dict is left as it was
    assert all(torch.equal(a, b) for a, b in zip(dst.state_dict().values(), src.state_dict().values()))
    # and the current names load too
    again = Supernet(cfg)
    again.load_state_dict(src.state_dict())
    x = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    dst.eval(), src.eval(), again.eval()
    assert torch.equal(dst(x), src(x)) and torch.equal(again(x), src(x))


def test_a_legacy_key_that_fits_no_parameter_is_still_reported():
    head = ASPP(4, 2, (2,))
    state = {k: v.clone() for k, v in head.state_dict().items()}
    state["branch_1x1.9.weight"] = torch.zeros(1)
    result = head.load_state_dict(state, strict=False)
    assert result.unexpected_keys == ["branches.0.9.weight"]
