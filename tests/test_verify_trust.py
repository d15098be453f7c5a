"""``hinas verify`` trusts nothing a results folder says about where its inputs are, and checks every
stored claim (issue: results that cannot lie, principle 1). Each test forges a copy of committed
items of ``results/paper`` as a forger would (the summary edited consistently, the manifest
written again) and expects the forgery to be reported; each passed (or ended with exit 2) before."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "results" / "paper"
NET, EVAL, EVAL_REF, DNCNN = "train-dn50-s0", "eval-dn50-s0", "eval-dn50-s0-ref", "train-dncnn50-s0"


@pytest.fixture(autouse=True)
def _no_env_data(monkeypatch):
    monkeypatch.delenv("HINAS_DATA", raising=False)  # the verifier's data root is only what a test gives


def _copy(tmp_path: Path, *items: str) -> Path:
    results = tmp_path / "r"
    for item in items:
        if not (COMMITTED / item / "done").exists():
            pytest.skip(f"committed item {item} not present")
        shutil.copytree(COMMITTED / item, results / item)
    return results


def _summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def _forge(folder: Path, summary: dict) -> None:
    """Write ``summary`` with its aggregates, counts and metrics made consistent, then the manifest."""
    from hinas.campaign import write_manifest

    for ev in summary.get("evaluations", []):
        per = ev["per_image"]
        ev["images"] = len(per)
        for key in ("psnr", "ssim"):
            ev[key] = sum(p[key] for p in per) / len(per)
    if "evaluations" in summary:
        summary["metrics"] = {f"{e['dataset']}/{e['protocol']}/{e.get('precision', 'fp32')}":
                              {"psnr": e["psnr"], "ssim": e["ssim"]} for e in summary["evaluations"]}
    (folder / "summary.json").write_text(json.dumps(summary))
    write_manifest(folder, folder.name)


def _fp32_only(summary: dict) -> dict:
    """Only the standard fp32 evaluation (a forger may drop parts): one CPU re-score per test."""
    summary["evaluations"] = [e for e in summary["evaluations"] if e["precision"] == "fp32"]
    summary["timings"] = {}
    return summary


def _cli(capsys, *args) -> tuple[int, str, str]:
    from hinas.cli import main

    capsys.readouterr()
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _problems(report: dict, item: str, state: str = "corrupt") -> list[str]:
    return [p["reason"] for p in report["problems"] if Path(p["path"]).name == item and p["state"] == state]


# ---------------------------------------------------------------------------------------------
# test data come only from the verifier's own data root
# ---------------------------------------------------------------------------------------------
def test_data_root_named_by_a_summary_is_never_used(tmp_path, capsys, real_data_root):
    """Blurred copies of the test images inside the item, named by the summary's data_root, once
    made a forged score verify (exit 0) when the verifier gave no data root."""
    import torch
    from PIL import Image, ImageFilter

    from hinas.campaign import seal, verify
    from hinas.errors import DataError
    from hinas.eval.evaluation import evaluate
    from hinas.space.network_file import load_trained

    results = _copy(tmp_path, NET, EVAL)
    fake = results / EVAL / "data"
    (fake / "BSDS500" / "test").mkdir(parents=True)
    name = "100007"
    with Image.open(real_data_root / "BSDS500" / "test" / f"{name}.jpg") as im:
        im.filter(ImageFilter.GaussianBlur(3)).save(fake / "BSDS500" / "test" / f"{name}.jpg", quality=95)
    model, _ = load_trained(results / NET)
    with torch.no_grad():
        blurred = evaluate(model, "BSDS500-test", "denoise", sigma=50, data_root=fake, limit=1)
    s = _fp32_only(_summary(results / EVAL))
    ev = s["evaluations"][0]
    assert blurred["per_image"][0]["psnr"] > ev["per_image"][0]["psnr"] + 1  # a better score than the network's
    ev["per_image"], ev["data_root"] = blurred["per_image"], str(fake)
    _forge(results / EVAL, s)

    rc, out, err = _cli(capsys, "verify", results, "--images", 1, "--json")
    report = json.loads(out)
    assert rc == 1 and not report["match"] and report["networks"] == [] and report["data_root"] is None
    assert any("not re-scored" in r and "never used" in r for r in _problems(report, EVAL, "unverified"))
    assert any(str(fake) in n["note"] for n in report["notes"])
    rc, out, _ = _cli(capsys, "verify", results, "--images", 1)  # the text report says it too
    assert rc == 1 and any(line.startswith("note ") and str(fake) in line for line in out.splitlines())
    # with the verifier's own data the forged score differs from the network's
    report = verify(results, images=1, data_root=real_data_root)
    assert not report["match"] and report["networks"][0]["max_diff_db"] > 1
    assert any("PSNR differs" in r for r in _problems(report, EVAL))
    # nor does seal score it on the summary's folder: the call stops (exit 2), nothing sealed
    (results / EVAL / "manifest.json").unlink()
    with pytest.raises(DataError, match="data root of this call"):
        seal(results, items=[EVAL], images=1)
    assert not (results / EVAL / "manifest.json").exists()


@pytest.mark.parametrize("how", ["--data-root", "HINAS_DATA"])
def test_a_data_root_that_is_not_a_folder_is_a_bad_call(tmp_path, capsys, monkeypatch, how):
    results = _copy(tmp_path, DNCNN)
    args = ["verify", results]
    if how == "HINAS_DATA":
        monkeypatch.setenv("HINAS_DATA", str(tmp_path / "nowhere"))
    else:
        args += ["--data-root", tmp_path / "nowhere"]
    rc, out, err = _cli(capsys, *args)
    assert rc == 2 and out == "" and err.count("\n") == 1 and "nowhere" in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------
# every stored metric, of every evaluation, whatever the item's kind
# ---------------------------------------------------------------------------------------------
def test_raised_ssim_is_corrupt(tmp_path, capsys, real_data_root):
    results = _copy(tmp_path, NET, EVAL)
    s = _fp32_only(_summary(results / EVAL))
    for p in s["evaluations"][0]["per_image"]:
        p["ssim"] += 0.15  # consistent aggregates and metrics, the manifest re-hashed
    _forge(results / EVAL, s)
    rc, out, _ = _cli(capsys, "verify", results, "--images", 1, "--data-root", real_data_root, "--json")
    report = json.loads(out)
    assert rc == 1 and not report["match"]
    check = report["networks"][0]["checked"][0]
    assert not check["match"] and check["max_diff_ssim"] == pytest.approx(0.15, abs=0.002)
    assert check["max_diff_db"] <= check["tolerance_db"]  # the PSNR is the network's: only SSIM lies
    assert any("SSIM differs by up to 0.15" in r for r in _problems(report, EVAL))


@pytest.mark.parametrize("kind", [None, "bench"])
def test_an_evaluation_is_checked_whatever_kind_its_summary_claims(tmp_path, real_data_root, kind):
    from hinas.campaign import verify

    results = _copy(tmp_path, NET, EVAL)
    s = _fp32_only(_summary(results / EVAL))
    for p in s["evaluations"][0]["per_image"]:
        p["psnr"] += 1.0
    if kind is None:
        del s["kind"]
    else:
        s["kind"] = kind
    _forge(results / EVAL, s)
    report = verify(results, images=1, data_root=real_data_root)
    assert not report["match"]
    assert report["networks"][0]["max_diff_db"] == pytest.approx(1.0, abs=0.01)  # re-scored all the same
    assert any("PSNR differs" in r for r in _problems(report, EVAL))
    assert any("kind" in r for r in _problems(report, EVAL))


# ---------------------------------------------------------------------------------------------
# weights: by the item's files, whether or not an evaluation names them
# ---------------------------------------------------------------------------------------------
def test_nan_weights_of_a_network_no_evaluation_names_are_corrupt(tmp_path):
    from safetensors.torch import load_file, save_file

    from hinas.campaign import verify, write_manifest

    results = _copy(tmp_path, DNCNN)
    path = results / DNCNN / "weights.safetensors"
    state = load_file(str(path))
    first = sorted(k for k, v in state.items() if v.is_floating_point())[0]
    state[first].view(-1)[0] = float("nan")
    save_file(state, str(path))
    write_manifest(results / DNCNN, DNCNN)
    report = verify(results, images=1)
    assert not report["match"]
    assert any("NaN" in r for r in _problems(report, DNCNN))


def test_swapped_weights_are_corrupt_exit_1(tmp_path, capsys):
    from hinas.campaign import write_manifest

    results = _copy(tmp_path, NET, EVAL)
    shutil.copy(COMMITTED / DNCNN / "weights.safetensors", results / NET / "weights.safetensors")
    write_manifest(results / NET, NET)
    rc, out, err = _cli(capsys, "verify", results, "--images", 1)
    assert rc == 1 and err == ""
    lines = out.splitlines()
    assert any(line.startswith(f"CORRUPT {results / NET}:") and "cannot load these weights" in line
               for line in lines)
    assert any(line.startswith(f"CORRUPT {results / EVAL}:") and f"its network {NET} is CORRUPT" in line
               for line in lines)


def test_params_claimed_by_a_train_summary_are_its_networks(tmp_path):
    from hinas.campaign import verify

    results = _copy(tmp_path, DNCNN)
    s = _summary(results / DNCNN)
    s["params"] //= 2
    _forge(results / DNCNN, s)
    assert any("'params'" in r for r in _problems(verify(results, images=1), DNCNN))


# ---------------------------------------------------------------------------------------------
# a malformed field corrupts its item only; the call still checks and reports the others
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("field,value,reason", [
    ("dataset", 123, "not a registered dataset"),
    ("dataset", "FOLDER", "not a registered dataset"),  # a folder of images named by the summary
    ("protocol", "bogus", "protocol 'bogus'"),
    ("sigma", "fifty", "sigma 'fifty'"),
    ("sigma", 1e308, "sigma 1e+308"),
    ("precision", "fp8", "precision 'fp8'"),
    ("task", "sr", "task 'sr'"),
])
def test_a_malformed_evaluation_is_that_items_fault(tmp_path, capsys, field, value, reason):
    results = _copy(tmp_path, NET, EVAL, EVAL_REF)
    s = _summary(results / EVAL)
    if value == "FOLDER":
        value = str(results / NET)
    s["evaluations"][0][field] = value
    _forge(results / EVAL, s)
    rc, out, err = _cli(capsys, "verify", results, "--images", 1)
    assert rc == 1 and err == "" and "--sigma" not in out
    lines = out.splitlines()
    bad = [line for line in lines if line.startswith(f"CORRUPT {results / EVAL}:")]
    assert len(bad) == 1 and reason in bad[0], out
    # the other evaluation is still checked: without a data root of this call it is not re-scored
    assert any(line.startswith(f"UNVERIFIED {results / EVAL_REF}:") for line in lines), out


def test_a_benchmark_ratio_is_the_quotient_of_its_measurements(tmp_path):
    from hinas.campaign import verify

    results = _copy(tmp_path, "bench")
    s = _summary(results / "bench")
    s["metrics"]["memory_ratio"] = s["supernet_memory"]["memory_ratio"] = 2.5  # consistent, but not measured
    _forge(results / "bench", s)
    assert any("memory_ratio 2.5 is not eq6/eq5 peak_bytes" in r for r in _problems(verify(results), "bench"))


def test_a_search_claiming_it_moved_is_checked_against_its_alpha_and_beta(tmp_path):
    from hinas.campaign import verify

    results = _copy(tmp_path, "search-dn-s0")
    s = _summary(results / "search-dn-s0")
    s["movement"] = {"moved": True, "alpha_max_dev": 0.5, "beta_max_change": 0.5}  # what status and the book trust
    _forge(results / "search-dn-s0", s)
    assert any("says the search moved" in r for r in _problems(verify(results), "search-dn-s0"))
