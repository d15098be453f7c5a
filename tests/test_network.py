import subprocess
import sys
import json

import pytest
import torch

from hinas.space.genotype import Genotype, all_paths, random_genotype
from hinas.space.network import build_network, count_flops, count_parameters, endpoint_layer
from hinas.space.ops import op_parameter_count


def uniform(task, op, path):
    B = 4 if task == "denoise" else 3
    cells = [[(op, e % 2) for e in range(2 * B)] for _ in path]
    return Genotype(task=task, steps=B, cells=cells, path=list(path), scale=4 if task == "sr" else None)


def analytic_parameters(g: Genotype, f: int) -> int:
    """Parameter count from the module definitions of REFERENCE 5.1, written out by hand."""
    B, cin = g.steps, g.in_channels
    width = [int(f * w) for w in g.width_factors]
    bn = lambda c: 2 * c
    n = cin * 64 * 9 + bn(64)  # stem1
    n += 64 * 64 * 9 + bn(64)  # stem2
    n += 64 * f * B * 9  # reduce (BN affine=False)
    outs = []
    for layer, level in enumerate(g.path):
        C = width[level]
        if layer == 0:
            c0, c1 = 64, 64  # stem2, stem1
        elif layer == 1:
            c0, c1 = outs[0], 64  # cell 0, stem2
        else:
            c0, c1 = outs[-1], outs[-2]
        n += c0 * C + bn(C) + c1 * C + bn(C)  # two scalers
        n += sum(op_parameter_count(op, C, affine=True) for op, _ in g.cells[layer])
        outs.append(B * C)
    sep = lambda ci, co: ci * 9 + bn(ci) + ci * co + bn(co)
    if g.task == "denoise":
        n += outs[-1] * 128 + bn(128)
        c_final = cin
    else:
        n += outs[-1] * 128 + bn(128) + 3 * sep(outs[-1], 128) + 512 * 128 + bn(128)
        c_final = 3 * g.scale**2
    n += f * B * 48 + bn(48)  # proj
    n += sep(176, 128) + sep(128, 128)
    n += 128 * c_final * 9 + c_final  # classifier with bias
    return n


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("task", ["denoise", "sr"])
def test_parameter_count_matches_analytic(task, seed):
    g = random_genotype(task, seed=seed)
    net = build_network(g)
    assert count_parameters(net) == analytic_parameters(g, net.f)


def test_parameter_ranges_of_reference():
    skip = [count_parameters(build_network(uniform("denoise", "skip_connect", p))) for p in all_paths(3, 3)]
    conv = [count_parameters(build_network(uniform("denoise", "conv_3x3", p))) for p in all_paths(3, 3)]
    assert 0.151e6 <= min(skip) and max(skip) <= 0.176e6
    assert 0.238e6 <= min(conv) and max(conv) <= 0.473e6
    rnd = [count_parameters(build_network(random_genotype("denoise", seed=s))) for s in range(20)]
    assert all(0.18e6 <= n <= 0.57e6 for n in rnd)
    sr = [count_parameters(build_network(uniform("sr", "skip_connect", p))) for p in all_paths(2, 3)]
    assert 0.263e6 <= min(sr) and max(sr) <= 0.295e6


@pytest.mark.parametrize("task", ["denoise", "sr"])
def test_forward_shapes_and_residual(task):
    g = random_genotype(task, seed=2)
    net = build_network(g, f=4)
    x = torch.rand(2, g.in_channels, 16, 16)
    y = net(x)
    s = g.scale or 1
    assert y.shape == (2, g.in_channels, 16 * s, 16 * s)
    y.mean().backward()


def test_endpoint_rule():
    assert endpoint_layer([0, 1, 1]) == 0
    assert endpoint_layer([0, 0, 0]) is None  # the last level-0 cell is the final cell
    assert endpoint_layer([1, 2, 1]) is None  # no level 0
    assert endpoint_layer([0, 0, 1]) == 1


def test_flops_counted_by_torch():
    g = random_genotype("denoise", seed=0)
    net = build_network(g)
    a = count_flops(net, (32, 32))
    b = count_flops(net, (64, 64))
    assert a["flops"] > 0 and a["macs"] * 2 == a["flops"]
    assert b["flops"] == pytest.approx(4 * a["flops"], rel=0.01)


def test_describe_cli(tmp_path):
    g = random_genotype("sr", seed=0)
    p = g.save(tmp_path / "g.json")
    out = subprocess.run([sys.executable, "-m", "hinas", "describe", str(p), "--size", "32", "32", "--json"],
                         capture_output=True, text=True, check=True)
    info = json.loads(out.stdout)
    assert info["task"] == "sr"
    assert info["params"] == count_parameters(build_network(g))
    assert info["flops"] == count_flops(build_network(g), (32, 32), 3)["flops"]


def test_fixed_width_variants_and_no_residual():
    g = random_genotype("denoise", seed=5)
    w40 = build_network(g, node_channels=[40, 40, 40])
    wm = build_network(g, node_channels=[20, 40, 80])
    assert count_parameters(wm) > count_parameters(w40) > 0
    x = torch.rand(1, 1, 16, 16)
    assert wm(x).shape == x.shape
    plain = build_network(g, f=4, residual=False).eval()
    assert torch.allclose(plain(x), plain.residual(x))


def test_dncnn_baseline_size_and_shape():
    from hinas.space.baselines import DnCNN

    net = DnCNN()
    # first conv (bias) + 15 x (conv + BN) + last conv: 0.556 M for grey depth 17
    assert count_parameters(net) == (9 * 64 + 64) + 15 * (9 * 64 * 64 + 2 * 64) + 9 * 64
    x = torch.rand(1, 1, 20, 20)
    assert net(x).shape == x.shape
