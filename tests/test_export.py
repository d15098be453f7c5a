"""``hinas export --format onnx``: dynamic height/width, equal outputs in onnxruntime, refusals."""

import json
import sys

import numpy as np
import pytest
import torch

from hinas.cli import main

ort = pytest.importorskip("onnxruntime", reason="ONNX export check needs the 'export' extra: pip install 'hinas[export]'")
pytest.importorskip("onnx", reason="ONNX export needs the 'export' extra: pip install 'hinas[export]'")


@pytest.mark.parametrize("which", ["dn", "sr"])
def test_export_matches_pytorch_at_any_size(which, dn_run, sr_run, tmp_path, capsys):
    from hinas.space.network_file import load_trained

    run = dn_run if which == "dn" else sr_run
    out = tmp_path / f"{which}.onnx"
    assert main(["export", "--weights", str(run), "--format", "onnx", "--out", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["checked"] is True and res["max_abs_diff"] <= 1e-4
    assert res["check_input"][2:] != [48, 48]  # checked on a size other than the traced one
    # our own check, at yet another size and batch 2: the height, width and batch axes are dynamic
    model, spec = load_trained(run)
    x = torch.rand(2, spec["in_channels"], 29, 41)
    with torch.no_grad():
        ref = model(x).numpy()
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})[0]
    s = spec["scale"] or 1
    assert got.shape == ref.shape == (2, 3 if which == "sr" else 1, 29 * s, 41 * s)
    assert np.abs(got - ref).max() <= 1e-4


def test_export_refusals(dn_run, tmp_path, monkeypatch, capsys):
    out = tmp_path / "dn.onnx"
    out.write_bytes(b"keep me")
    assert main(["export", "--weights", str(dn_run), "--out", str(out)]) == 2
    assert out.read_bytes() == b"keep me" and "--force" in capsys.readouterr().err
    assert main(["export", "--weights", str(dn_run), "--out", str(tmp_path / "a.onnx"), "--opset", "9"]) == 2
    assert "opset" in capsys.readouterr().err
    # a model that does not reproduce PyTorch is not kept
    import hinas.deploy.export

    monkeypatch.setattr(hinas.deploy.export, "check_onnx", lambda *a, **k: {"checked": True, "max_abs_diff": 0.5})
    bad = tmp_path / "bad.onnx"
    assert main(["export", "--weights", str(dn_run), "--out", str(bad)]) == 2
    assert "differs from the PyTorch network" in capsys.readouterr().err and not bad.exists()
    assert not list(tmp_path.glob(".*part"))


def test_without_onnxruntime_the_file_is_written_unchecked(dn_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    out = tmp_path / "dn.onnx"
    assert main(["export", "--weights", str(dn_run), "--out", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["checked"] is False and res["max_abs_diff"] is None and "hinas[export]" in res["note"]
    assert out.stat().st_size > 0
