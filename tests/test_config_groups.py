"""RunConfig's settings grouped by concern (space, search, train, data, execution), with every
flat name, the flat ``to_dict()`` and ``key()`` exactly as before the grouping (issue 35, point 6)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from hinas.cli import main
from hinas.engine.config import _FLAT_ORDER, GROUPS, RunConfig, describe_settings
from hinas.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "hinas" / "configs"


def _cases():
    """The configs whose key() and to_dict() were recorded before the settings were grouped."""
    for p in ("smoke", "quick", "gpu", "paper"):
        yield f"{p}-denoise", lambda p=p: RunConfig.from_profile(p, "denoise")
        for s in (2, 3, 4):
            yield f"{p}-sr{s}", lambda p=p, s=s: RunConfig.from_profile(p, "sr", s)
    yield "quick-dn-lists", lambda: RunConfig.from_profile(
        "quick", "denoise", sigma=[25, 50], search_sigma=[15.0], width_factors=[1, 2, 4], node_channels=[40, 40, 40])
    yield "smoke-dn-nones", lambda: RunConfig.from_profile(
        "smoke", "denoise", max_images=None, val_crop=None, net_f=None, train_batch_size=None, threads=None,
        search_ssim_weight=None)
    yield "smoke-sr3-weights", lambda: RunConfig.from_profile(
        "smoke", "sr", 3, search_ssim_weight=0.0, train_ssim_weight=0.3, model="hinas", data_root="/tmp/data", seed=7)
    yield "gpu-dn-nofast", lambda: RunConfig.from_profile(
        "gpu", "denoise", cuda_graphs=False, fused_optimizer=False, cudnn_benchmark=False, native_batchnorm=False,
        channels_last=False)
    yield "quick-dn-levers", lambda: RunConfig.from_profile(
        "quick", "denoise", device_data=True, compile=True, amp_bf16=True, channels_last=True, cuda_graphs=True,
        device="cuda")
    yield "quick-dn-dncnn", lambda: RunConfig.from_profile(
        "quick", "denoise", model="dncnn", iterations=3, epochs=5, arch_start_epoch=1, val_start_epoch=2,
        lr_schedule="cosine", memory_saving="recompute", partial_channels=2, bn_init="ones", cell_sharing="eq6",
        lwas=False, split_mode="random")
    yield "paper-dn-replace", lambda: RunConfig.from_profile("paper", "denoise").replace(
        iterations=3, quiet=True, log_every=1)
    yield "quick-dn-set", lambda: RunConfig.from_profile("quick", "denoise").with_overrides(
        ["epochs=10", "sigma=[30, 70]", "val_crop=null", "threads=2", "nonpositive_ssim=gradient"])
    for name in ("denoise_sigma30", "denoise_sigma50", "denoise_sigma70", "sr_x2", "sr_x3", "sr_x4"):
        yield f"yaml-{name}", lambda name=name: RunConfig.from_yaml(CONFIGS / f"{name}.yaml")


# name: (key(), key("genotype-abc", 3), sha1 of the ordered to_dict() items as JSON), recorded with
# the flat RunConfig (commit 721af84) by the same constructions; the yaml-* files were flat then.
# The smoke-* and quick-* cases were re-recorded when channels_last came on in the CPU profiles
# (2026-12-08, issue 32): with channels_last=False each gives its 721af84 fingerprint back.
EXPECTED = {
    "smoke-denoise": ("ea09c4ff45f8", "d99d58f87ff2", "953907947d94"),
    "smoke-sr2": ("596bae8da5fc", "3b7dbef6e0cd", "0eaaa9c9558a"),
    "smoke-sr3": ("3b5442b308d2", "80e20d1914cf", "5d61303ec7c6"),
    "smoke-sr4": ("44785c7f083b", "66295a89f106", "b92e784f3d73"),
    "quick-denoise": ("58a309dcbd2b", "31cc32f327f7", "8acdda4d0b16"),
    "quick-sr2": ("3385e3040bae", "32a43993accd", "f8ce88fa2c65"),
    "quick-sr3": ("5691809da37a", "228ce0a4915b", "31bfa5d028ef"),
    "quick-sr4": ("aae5bc39705a", "65002225ab91", "c50c4b5cd0ee"),
    "gpu-denoise": ("c11fc99f9c02", "0d63ce85c0e9", "5febd1ccf76c"),
    "gpu-sr2": ("d804b3b16242", "5acbd3aa8eed", "bf6c64fc9029"),
    "gpu-sr3": ("b681e7f8b96d", "5fe47fdad596", "831eafc1930e"),
    "gpu-sr4": ("4127f65b2db1", "66c7fb837286", "2bf9ddcdc253"),
    "paper-denoise": ("76ad74c85478", "4bbf02f1a386", "ee9c878ea204"),
    "paper-sr2": ("76c7b944e062", "8813f2961a4e", "4ed1631e32d7"),
    "paper-sr3": ("0f04e3a3ed6c", "19701ec3ac4d", "e8df6f92cbbc"),
    "paper-sr4": ("ae14353ad5a4", "f805626897cb", "4e2aa030383f"),
    "quick-dn-lists": ("0cad0513f6ef", "2b5a5f803cf3", "8f3c8e705c49"),
    "smoke-dn-nones": ("907fbe04764d", "aa0099d2025a", "a9520d04a103"),
    "smoke-sr3-weights": ("252397e685b0", "244454660a1f", "cbddb74e119d"),
    "gpu-dn-nofast": ("814b2c319c59", "241436e2771b", "27a4b1fa7968"),
    "quick-dn-levers": ("4412c074df28", "95dafbe8aa6b", "4502853b6342"),
    "quick-dn-dncnn": ("804f85f03ad4", "538ebb90b018", "7862f74578e9"),
    "paper-dn-replace": ("476e0fb66b3e", "18004cc3179e", "d290f4d93d51"),
    "quick-dn-set": ("104f222425d0", "98e45b184e18", "9522d33d3ee5"),
    "yaml-denoise_sigma30": ("ec1ce01c3378", "53b18cc1be0f", "59f69a87d0ee"),
    "yaml-denoise_sigma50": ("4781dc1f4468", "474f887442a8", "185821983e31"),
    "yaml-denoise_sigma70": ("cedc444460a4", "0bba76ab808a", "aa3b8d7007ef"),
    "yaml-sr_x2": ("d164a09cd47a", "1142f1772b97", "942203ceb98a"),
    "yaml-sr_x3": ("281b3859275e", "78f712a5162d", "e714b220ee70"),
    "yaml-sr_x4": ("daeebd1c19e0", "cd4238392d37", "1f52372c33dc"),
}


def _fingerprint(cfg: RunConfig) -> tuple:
    items = json.dumps(list(cfg.to_dict().items()))
    return cfg.key(), cfg.key("genotype-abc", 3), hashlib.sha1(items.encode()).hexdigest()[:12]


@pytest.mark.parametrize("name,make", list(_cases()), ids=[n for n, _ in _cases()])
def test_key_and_flat_dict_are_those_of_the_flat_config(name, make):
    cfg = make()
    assert _fingerprint(cfg) == EXPECTED[name]
    # the nested form is the same config: read back flat-equal, key-equal
    again = RunConfig.from_dict(cfg.to_nested())
    assert again == cfg and again.to_dict() == cfg.to_dict() and again.key() == cfg.key()


def test_every_field_in_exactly_one_place():
    fields = dataclasses.fields(RunConfig)
    names = [f.name for f in fields]
    assert sorted(_FLAT_ORDER) == sorted(names) and len(set(_FLAT_ORDER)) == len(_FLAT_ORDER)
    assert all(set(f.metadata) == {"group", "help"} for f in fields)
    groups = [f.metadata["group"] for f in fields]
    assert [n for n, g in zip(names, groups) if g is None] == ["task", "scale", "profile", "seed"]
    # declared group by group, in GROUPS' order
    order = [None, *GROUPS]
    assert groups == sorted(groups, key=order.index)
    nested = RunConfig.from_profile("smoke").to_nested()
    assert list(nested) == ["task", "scale", "profile", "seed", *GROUPS]
    flat_from_nested = [k for g in GROUPS for k in nested[g]] + ["task", "scale", "profile", "seed"]
    assert sorted(flat_from_nested) == sorted(names)
    assert not set(GROUPS) & set(names)  # cfg.<group> never shadows a setting


def test_shipped_yaml_files_are_nested_and_equal_their_flat_forms(tmp_path):
    import yaml

    for path in sorted(CONFIGS.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        assert set(data) <= {"task", "scale", "profile", "seed", *GROUPS}, path.name  # grouped
        flat = {k: v for k, v in data.items() if k not in GROUPS}
        for g in GROUPS:
            flat.update(data.get(g, {}))
        (tmp_path / path.name).write_text(yaml.safe_dump(flat))
        nested_cfg, flat_cfg = RunConfig.from_yaml(path), RunConfig.from_yaml(tmp_path / path.name)
        assert nested_cfg.to_dict() == flat_cfg.to_dict() and nested_cfg.key() == flat_cfg.key()


def test_group_views_read_and_refuse_writes():
    cfg = RunConfig.from_profile("quick", "sr", 3, epochs=8)
    assert cfg.search.epochs == cfg.epochs == 8
    assert cfg.space.f == cfg.f == 4 and cfg.train.iterations == cfg.iterations
    assert cfg.data.sigma == [0.0] and cfg.execution.device == "cpu"
    for group in GROUPS:
        view = getattr(cfg, group)
        assert view.to_dict() == cfg.to_nested()[group]
    with pytest.raises(AttributeError, match=r"cfg\.train\.iterations is read-only.*replace"):
        cfg.train.iterations = 3
    with pytest.raises(AttributeError):
        del cfg.space.f
    cfg.space.width_factors.append(9.0)  # a copy: the config is untouched
    assert cfg.width_factors == [1.0, 1.5, 2.0]
    cfg.epochs = 10  # the flat attributes stay writable as before; the views follow
    assert cfg.search.epochs == 10


def test_every_construction_takes_flat_and_nested_settings(tmp_path):
    flat = RunConfig.from_profile("quick", "denoise", epochs=9, iterations=7, sigma=[30])
    nested = RunConfig.from_profile("quick", "denoise", search={"epochs": 9}, train={"iterations": 7},
                                    data={"sigma": [30]})
    mixed = RunConfig.from_profile("quick", "denoise", epochs=9, train={"iterations": 7}, sigma=30)
    assert flat == nested == mixed and flat.key() == nested.key()
    assert RunConfig.from_dict({**flat.to_dict()}) == RunConfig.from_dict(flat.to_nested()) == flat
    base = RunConfig.from_profile("quick", "denoise")
    assert base.replace(epochs=9, iterations=7, sigma=[30]) == base.replace(search={"epochs": 9}, iterations=7,
                                                                           data={"sigma": [30]}) == flat
    assert base.with_overrides(["search.epochs=9", "train.iterations=7", "sigma=[30]"]) == flat
    assert base.with_overrides(["train={iterations: 7}", "epochs=9", "data.sigma=30"]) == flat
    assert base.with_overrides(["epochs=20", "search.epochs=9", "iterations=7", "sigma=30"]) == flat  # later wins
    (tmp_path / "c.yaml").write_text("profile: quick\ntask: denoise\nsearch:\n  epochs: 9\ntrain: {iterations: 7}\n"
                                     "sigma: [30]\n")
    assert RunConfig.from_yaml(tmp_path / "c.yaml") == flat
    # the start check sees a nested epochs as it sees a flat one
    with pytest.raises(ConfigError, match="arch_start_epoch=4"):
        base.replace(search={"epochs": 3})


@pytest.mark.parametrize("values,message", [
    ({"train": {"epochs": 5}}, "'epochs' belongs to group 'search', not 'train'"),
    ({"space": {"sigma": [5]}}, "'sigma' belongs to group 'data', not 'space'"),
    ({"training": {"iterations": 5}}, "unknown settings group 'training'; the groups: space, search"),
    ({"train": 5}, "group 'train' must be a mapping"),
    ({"train": [1, 2]}, "group 'train' must be a mapping"),
    ({"iterations": 3, "train": {"iterations": 4}}, "'iterations' given twice"),
    ({"train": {"iterations": 4}, "iterations": 3}, "'iterations' given twice"),
    ({"train": {"seed": 1}}, "'seed' is not in a group"),
    ({"train": {"nope": 1}}, "unknown setting 'nope' in group 'train'; it holds: model"),
    ({"train": {"train": {}}}, "unknown setting 'train' in group 'train'"),
    ({"nope": 1}, "unknown setting"),
])
def test_misplaced_settings_are_refused_in_one_line(values, message, tmp_path):
    import yaml

    for call in (lambda: RunConfig.from_profile("quick", **values),
                 lambda: RunConfig.from_profile("quick").replace(**values),
                 lambda: RunConfig.from_dict({**RunConfig.from_profile("quick").to_dict(), **values})):
        with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as info:
            call()
        assert "\n" not in str(info.value)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"profile": "quick", **values}))
    with pytest.raises(ConfigError, match="bad.yaml: .*" + message):
        RunConfig.from_yaml(tmp_path / "bad.yaml")


@pytest.mark.parametrize("setting,message", [
    ("train.nope=1", "unknown setting 'nope' in group 'train'"),
    ("nope.x=1", "unknown settings group 'nope'"),
    ("train.epochs=3", "belongs to group 'search'"),
    ("search.seed=3", "'seed' is not in a group"),
    ("train=5", "must be a mapping"),
    ("a.b.c=1", "unknown settings group 'a.b'"),
    ("search.epochs=many", "'epochs' must be an integer"),
    ("no_such_key=1", "unknown setting 'no_such_key'"),
])
def test_set_refuses_bad_group_keys_in_one_line_exit_2(setting, message, capsys, tmp_path):
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_profile("quick").with_overrides([setting])
    for argv in (["config", "show", "--set", setting], ["search", "--profile", "smoke", "--out", str(tmp_path / "r"),
                                                        "--set", setting]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and message in err
    assert not (tmp_path / "r").exists()


def test_describe_settings_groups_and_helps():
    rows = describe_settings(RunConfig.from_profile("smoke"))
    assert [r["group"] for r in rows if r["key"] in ("epochs", "iterations", "f", "sigma", "device")] == \
        ["space", "search", "train", "data", "execution"]
    assert all(set(r) == {"key", "group", "value", "help"} for r in rows)
