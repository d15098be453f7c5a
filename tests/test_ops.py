import pytest
import torch

from hinas.space.ops import OPS, PRIMITIVE_SETS, RECEPTIVE_FIELD, REFERENCE_NAMES, build_op, canonical_op_name, op_parameter_count

PRIMS = PRIMITIVE_SETS["hinas"]


def test_reference_order_of_primitives():
    # alpha's last axis is indexed by this order (the reference's NO_DEF_L)
    assert list(REFERENCE_NAMES.values()) == list(PRIMS)
    assert len(PRIMS) == 7


@pytest.mark.parametrize("name", PRIMS)
@pytest.mark.parametrize("affine", [True, False])
def test_op_shape_and_parameter_count(name, affine):
    C = 20
    op = build_op(name, C, affine=affine)
    x = torch.randn(2, C, 17, 13)
    y = op(x)
    assert y.shape == x.shape
    assert sum(p.numel() for p in op.parameters()) == op_parameter_count(name, C, affine=affine)


@pytest.mark.parametrize(
    "C, expected",
    [(20, {"conv_3x3": 3640, "sep_conv_3x3": 1240, "sep_conv_5x5": 1880, "dil_conv_5x5": 10040}),
     (30, {"conv_3x3": 8160, "sep_conv_3x3": 2460, "sep_conv_5x5": 3420, "dil_conv_5x5": 22560}),
     (16, {"conv_3x3": 2336, "sep_conv_3x3": 864, "sep_conv_5x5": 1376, "dil_conv_5x5": 6432})],
)
def test_parameter_counts_match_reference_table(C, expected):
    for name, n in expected.items():
        assert sum(p.numel() for p in build_op(name, C, affine=True).parameters()) == n


def test_none_is_zero_and_skip_is_identity():
    x = torch.randn(1, 4, 8, 8)
    assert torch.equal(build_op("none", 4, affine=False)(x), torch.zeros_like(x))
    assert torch.equal(build_op("skip_connect", 4, affine=False)(x), x)


@pytest.mark.parametrize("name", [p for p in PRIMS if p not in ("none",)])
def test_receptive_field_by_impulse(name):
    # the output support of a centred impulse has the op's receptive field as its width
    torch.manual_seed(0)
    op = build_op(name, 1, affine=False, act="relu").eval()
    x = torch.zeros(1, 1, 31, 31)
    x[0, 0, 15, 15] = 1.0
    with torch.no_grad():
        for m in op.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.fill_(1.0)
        y = op(x) - op(torch.zeros_like(x))
    cols = (y[0, 0].abs() > 1e-7).any(dim=0).nonzero().flatten()
    assert int(cols.max() - cols.min() + 1) == RECEPTIVE_FIELD[name]


def test_activation_is_a_parameter():
    assert isinstance(build_op("conv_3x3", 4, affine=True, act="relu")[0], torch.nn.ReLU)
    assert isinstance(build_op("conv_3x3", 4, affine=True)[0], torch.nn.LeakyReLU)
    assert build_op("conv_3x3", 4, affine=True)[0].negative_slope == 0.2


def test_reference_names_are_aliases():
    assert canonical_op_name("con_c_3x3_leaky") == "conv_3x3"
    with pytest.raises(KeyError, match="unknown op"):
        canonical_op_name("conv_7x7")
    assert set(PRIMS) <= set(OPS)
