"""Settings are discoverable (``hinas config show``, --help) and the install metadata is honest."""

import dataclasses
import json
import sys
from pathlib import Path

import pytest

from hinas.cli import main
from hinas.engine.config import GROUPS, RunConfig, describe_settings

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_has_a_one_line_meaning_and_a_group():
    cfg = RunConfig.from_profile("smoke", "denoise")
    rows = describe_settings(cfg)
    assert [r["key"] for r in rows] == [f.name for f in dataclasses.fields(RunConfig)]
    missing = [r["key"] for r in rows if not r["help"].strip()]
    assert not missing, f"RunConfig fields without a help text (metadata 'help' on the field): {missing}"
    assert all("\n" not in r["help"] for r in rows)
    assert all(r["group"] is None or r["group"] in GROUPS for r in rows)
    assert [r["key"] for r in rows if r["group"] is None] == ["task", "scale", "profile", "seed"]


def test_config_show_json_is_the_nested_config_search_would_use(capsys):
    assert main(["config", "show", "--profile", "smoke", "--task", "sr", "--scale", "2", "--set", "epochs=7",
                 "--set", "train.iterations=9", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    expected = RunConfig.from_profile("smoke", "sr", 2).replace(epochs=7, iterations=9)
    assert res["config"] == expected.to_nested()
    assert RunConfig.from_dict(res["config"]) == expected  # the JSON is a config file's content
    assert res["key"] == expected.key() and (res["profile"], res["task"], res["scale"]) == ("smoke", "sr", 2)
    assert res["help"]["search"]["epochs"] and res["help"]["seed"]
    assert {k: set(v) if isinstance(v, dict) else None for k, v in res["help"].items()} == \
        {k: set(v) if isinstance(v, dict) else None for k, v in res["config"].items()}


def test_config_show_text_lists_every_key_under_its_group(capsys):
    assert main(["config", "show", "--profile", "paper"]) == 0
    lines = capsys.readouterr().out.splitlines()
    keys, group, seen = set(), None, []
    for line in lines[1:]:
        if not line.strip():
            continue
        if not line.startswith(" ") and line.split()[0].endswith(":"):  # a group's heading
            group = line.split(":")[0]
            seen.append(group)
            continue
        key = line.split()[0]
        keys.add(key)
        assert RunConfig.__dataclass_fields__[key].metadata["group"] == group, line
    assert keys == {f.name for f in dataclasses.fields(RunConfig)}
    assert seen == list(GROUPS)
    assert main(["config", "show", "--set", "no_such_key=1"]) == 2
    assert "no_such_key" in capsys.readouterr().err
    assert main(["config", "show", "--set", "train.epochs=3"]) == 2
    err = capsys.readouterr().err
    assert "'search'" in err and err.count("\n") == 1


@pytest.mark.parametrize("command", ["search", "train"])
def test_search_and_train_help_show_examples_and_profiles(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and f"hinas {command} " in out
    assert all(p in out for p in ("smoke", "quick", "gpu", "paper")) and "hinas config show" in out


# ------------------------------------------------------------------------------------ install
def test_package_metadata():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = meta["project"]["dependencies"]
    torch_req = [d for d in deps if d.replace(" ", "").startswith("torch")]
    assert len(torch_req) == 1 and "==" not in torch_req[0] and "<" in torch_req[0]  # a range, not a pin
    assert not any(d.startswith("bm3d") for d in deps)
    extras = meta["project"]["optional-dependencies"]
    assert any(d.startswith("bm3d") for d in extras["baselines"])
    assert {"onnx", "onnxruntime"} <= {d.split(">")[0].split("=")[0] for d in extras["export"]}
    assert "py.typed" in meta["tool"]["setuptools"]["package-data"]["hinas"] and (ROOT / "hinas" / "py.typed").exists()
    makefile = (ROOT / "Makefile").read_text()
    assert makefile.index("pip install -q torch==2.13.0") < makefile.index("pip install -q -e '.[")  # pinned first
    assert "baselines" in makefile and "export" in makefile


def test_bm3d_missing_says_how_to_install(monkeypatch):
    from hinas.errors import HinasError
    from hinas.eval.evaluation import bm3d_restore

    monkeypatch.setitem(sys.modules, "bm3d", None)
    with pytest.raises(HinasError, match=r"hinas\[baselines\]"):
        bm3d_restore(25)


def test_import_hinas_is_light_and_exports_the_api():
    import subprocess

    code = ("import sys, hinas; assert 'torch' not in sys.modules; "
            "names = ['search', 'train', 'RunConfig', 'calculate_psnr', 'calculate_ssim', 'differentiable_ssim']; "
            "assert all(callable(getattr(hinas, n)) for n in names); "
            "assert hinas.calculate_ssim.__module__ == 'hinas.eval.metrics'; "
            "assert hinas.differentiable_ssim.__module__ == 'hinas.losses'; "
            "assert not hasattr(__import__('hinas.losses').losses, 'ssim')")
    subprocess.run([sys.executable, "-c", code], check=True)
