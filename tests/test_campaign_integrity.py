"""Results that cannot lie (issue 23, the campaign part): manifests, CORRUPT/INCOMPLETE items that
are reported and never touched, a verify that fails closed, seal, the results folder's lock, the
whole call checked before anything is written, exit codes. Smoke profile, CPU, embedded photos."""

import errno
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hinas.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

PLAN = """
name: integrity
defaults: {profile: smoke, device: cpu}
items:
  - name: train
    kind: train
    estimate: 1
    config: {model: dncnn, sigma: [50], iterations: 2, val_every: 2}
  - name: eval
    kind: eval
    network_from: train
    sigma: 50
    protocols: [standard]
    precisions: [fp32, bf16]
    limit: 1
    estimate: 1
"""


@pytest.fixture(autouse=True)
def _embedded(monkeypatch):
    monkeypatch.delenv("HINAS_DATA", raising=False)  # the embedded photos, as on the CI


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished two-item campaign (a DnCNN trained 2 iterations, its evaluation on 1 image)."""
    from hinas.campaign import load_plan, run_campaign

    base = tmp_path_factory.mktemp("finished")
    (base / "plan.yaml").write_text(PLAN)
    saved = os.environ.pop("HINAS_DATA", None)
    try:
        report = run_campaign(load_plan(base / "plan.yaml"), base / "r", 300, log=lambda msg: None)
    finally:
        if saved is not None:
            os.environ["HINAS_DATA"] = saved
    assert report["done"] == 2 and report["ok"], report
    return base


@pytest.fixture()
def results(finished, tmp_path):
    """A fresh copy of the finished folder, and its plan file, to tamper with."""
    shutil.copytree(finished / "r", tmp_path / "r")
    shutil.copy(finished / "plan.yaml", tmp_path / "plan.yaml")
    return tmp_path / "r"


def _cli(capsys, *args) -> tuple[int, str, str]:
    from hinas.cli import main

    capsys.readouterr()
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _run(capsys, results: Path, *extra):
    return _cli(capsys, "campaign", "run", "--plan", results.parent / "plan.yaml", "--budget", 60, "--results",
                results, *extra)


def _reseal(folder: Path) -> None:
    """What a forger would do after editing a file: write the manifest again."""
    from hinas.campaign import write_manifest

    write_manifest(folder, folder.name)


# ---------------------------------------------------------------------------------------------
# manifests: written with every finished item, trusted only when they check
# ---------------------------------------------------------------------------------------------
def test_a_part_not_measured_here_is_named_missing_with_its_reason(results):
    """bf16 is measured on CUDA only: on the CPU the summary says so, rather than leaving it out."""
    summary = json.loads((results / "eval" / "summary.json").read_text())
    assert list(summary["metrics"]) == ["embedded-test/standard/fp32"]
    assert summary["skipped"] == [{"part": "default-standard-bf16",
                                   "reason": "bf16 autocast runs on CUDA only; this call ran on cpu"}]


def test_finished_items_carry_a_manifest_of_every_file(results):
    from hinas.campaign.manifest import sha256_file

    for name in ("train", "eval"):
        man = json.loads((results / name / "manifest.json").read_text())
        on_disk = {p.name for p in (results / name).iterdir()} - {"done", "manifest.json"}
        assert set(man["files"]) == on_disk and "summary.json" in on_disk
        assert man["summary_sha256"] == sha256_file(results / name / "summary.json")
    assert "weights.safetensors" in json.loads((results / "train" / "manifest.json").read_text())["files"]
    assert not list(results.rglob("error.json")) and not list(results.rglob("*.tmp"))


def test_done_marker_alone_is_incomplete_and_its_checkpoint_is_kept(tmp_path, capsys):
    (tmp_path / "plan.yaml").write_text(PLAN)
    results = tmp_path / "r"
    run = results / "train" / "run"
    run.mkdir(parents=True)
    (run / "checkpoint.pt").write_bytes(b"hours of GPU time")
    (results / "train" / "done").write_text("{}")  # a half-run item with a stray marker
    before = _snapshot(results)
    rc, out, err = _run(capsys, results)
    report = json.loads(out)
    assert rc == 1 and not report["ok"]
    item = next(i for i in report["items"] if i["name"] == "train")
    assert item["status"] == "incomplete" and "without summary.json" in item["problem"]
    assert next(i for i in report["ran"] if i["name"] == "eval")["status"] == "blocked"
    assert _snapshot(results) == before  # neither run over nor deleted
    rc, out, _ = _cli(capsys, "campaign", "status", "--plan", tmp_path / "plan.yaml", "--results", results)
    assert rc == 1 and out.startswith("INCOMPLETE train")


def test_truncated_summary_is_corrupt_everywhere_and_left_alone(results, capsys):
    from hinas.campaign import campaign_status, load_plan, verify

    summary = results / "eval" / "summary.json"
    summary.write_bytes(summary.read_bytes()[:200])
    st = {i["name"]: i for i in campaign_status(load_plan(results.parent / "plan.yaml"), results)["items"]}
    assert st["eval"]["status"] == "corrupt" and "summary.json differs" in st["eval"]["problem"]
    assert st["train"]["status"] == "done"
    report = verify(results, images=1)
    assert not report["match"]
    assert any("unreadable summary" in p["reason"] for p in report["problems"])
    before = _snapshot(results)
    rc, out, _ = _run(capsys, results)
    assert rc == 1 and json.loads(out)["corrupt"] == 1 and _snapshot(results) == before


def test_tampered_mean_psnr_is_caught_by_manifest_and_by_the_per_image_mean(results, capsys):
    from hinas.campaign import verify

    path = results / "eval" / "summary.json"
    s = json.loads(path.read_text())
    s["evaluations"][0]["psnr"] += 0.5  # the mean raised, the per-image scores untouched
    path.write_text(json.dumps(s))
    rc, out, _ = _cli(capsys, "verify", results, "--images", 1)
    assert rc == 1 and "CORRUPT" in out and "summary.json differs" in out
    _reseal(results / "eval")  # even with a consistent manifest: the mean is not the per-image mean
    report = verify(results, images=1)
    assert not report["match"] and not report["networks"]
    assert any("is not the mean of its 1 per-image" in p["reason"] for p in report["problems"])


def test_tampered_weights_are_corrupt_named_and_never_evaluated(results, capsys):
    from hinas.campaign import campaign_status, load_plan

    w = results / "train" / "weights.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 1
    w.write_bytes(bytes(data))
    st = campaign_status(load_plan(results.parent / "plan.yaml"), results)
    train = next(i for i in st["items"] if i["name"] == "train")
    assert train["status"] == "corrupt" and "weights.safetensors differs" in train["problem"]
    rc, out, _ = _cli(capsys, "verify", results, "--images", 1, "--json")
    report = json.loads(out)
    assert rc == 1 and report["networks"] == []
    assert any("its network train is CORRUPT" in p["reason"] for p in report["problems"])
    before = _snapshot(results)
    rc, _, _ = _run(capsys, results)
    assert rc == 1 and _snapshot(results) == before


@pytest.mark.parametrize("name", ["/etc/passwd", "../../x", "../train/weights.safetensors"])
def test_summary_files_leaving_the_folder_are_refused_never_followed(results, capsys, name):
    from hinas.campaign import seal, verify

    path = results / "train" / "summary.json"
    s = json.loads(path.read_text())
    s["files"].append(name)
    path.write_text(json.dumps(s))
    _reseal(results / "train")
    report = verify(results, images=1)
    assert not report["match"]
    assert any(p["path"].endswith("train") and "leaving the item folder" in p["reason"] for p in report["problems"])
    (results / "train" / "manifest.json").unlink()  # as a folder written before manifests
    sealed = seal(results)
    assert not sealed["ok"] and [r["item"] for r in sealed["refused"]] == ["train"]
    assert not (results / "train" / "manifest.json").exists()


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_network_escaping_the_folder_is_refused_never_followed(results, tmp_path, how):
    from hinas.campaign import verify

    outside = tmp_path / "outside"
    shutil.copytree(results / "train", outside)  # a valid network: it must still not be evaluated
    path = results / "eval" / "summary.json"
    s = json.loads(path.read_text())
    if how == "symlink":
        (results / "elsewhere").symlink_to(outside, target_is_directory=True)
        s["network"] = "elsewhere"
    else:
        s["network"] = "../outside" if how == "dotdot" else str(outside)
    path.write_text(json.dumps(s))
    _reseal(results / "eval")
    report = verify(results, images=1)
    assert not report["match"] and report["networks"] == []
    assert any("'network'" in p["reason"] and "not followed" in p["reason"] for p in report["problems"])


# ---------------------------------------------------------------------------------------------
# verify fails closed; seal
# ---------------------------------------------------------------------------------------------
def test_verify_on_an_empty_folder_exits_1(tmp_path, capsys):
    rc, out, _ = _cli(capsys, "verify", tmp_path)
    assert rc == 1 and "no evaluated network" in out and out.count("\n") == 1


def test_seal_writes_manifests_only_after_verify_then_verify_passes(results, capsys):
    for name in ("train", "eval"):  # as the committed folders written before manifests
        (results / name / "manifest.json").unlink()
    rc, out, _ = _cli(capsys, "verify", results, "--images", 1)
    assert rc == 1 and out.count("without manifest.json") == 2
    rc, out, _ = _cli(capsys, "campaign", "seal", "--results", results, "--images", 1, "--json")
    report = json.loads(out)
    assert rc == 0 and [s["item"] for s in report["sealed"]] == ["train", "eval"]  # the network first
    assert "re-evaluated on the CPU" in report["sealed"][1]["checked"]
    assert json.loads((results / "eval" / "manifest.json").read_text())["sealed"]["by"] == "hinas campaign seal"
    rc, out, _ = _cli(capsys, "verify", results, "--images", 1, "--json")
    assert rc == 0 and json.loads(out)["match"] and json.loads(out)["problems"] == []
    rc, out, _ = _cli(capsys, "campaign", "seal", "--results", results, "--json")
    assert rc == 0 and json.loads(out)["already"] == ["eval", "train"]


def test_seal_refuses_an_evaluation_that_does_not_reproduce(results):
    from hinas.campaign import seal

    path = results / "eval" / "summary.json"
    s = json.loads(path.read_text())
    ev = s["evaluations"][0]
    ev["per_image"][0]["psnr"] += 1.0  # consistent: per-image, mean and metrics
    ev["psnr"] = ev["per_image"][0]["psnr"]
    s["metrics"][f"{ev['dataset']}/standard/fp32"]["psnr"] = ev["psnr"]
    path.write_text(json.dumps(s))
    for name in ("train", "eval"):
        (results / name / "manifest.json").unlink()
    report = seal(results, images=1)
    assert [x["item"] for x in report["sealed"]] == ["train"]
    assert report["refused"][0]["item"] == "eval" and "differ by up to 1.0000 dB" in report["refused"][0]["reason"]
    assert not (results / "eval" / "manifest.json").exists()


# ---------------------------------------------------------------------------------------------
# one call per folder; the whole call checked first; exit codes
# ---------------------------------------------------------------------------------------------
def test_a_second_concurrent_run_is_refused_before_writing(results):
    from hinas.campaign import results_lock

    before = _snapshot(results)
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS="1")
    with results_lock(results):  # as a first 'campaign run' holds it for its life
        out = subprocess.run([sys.executable, "-m", "hinas", "campaign", "run", "--plan", results.parent / "plan.yaml",
                              "--budget", "30", "--results", results], capture_output=True, text=True, env=env)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "another 'hinas campaign run'" in out.stderr
    assert out.stdout == "" and _snapshot(results) == before


def test_the_lock_held_by_another_process_refuses_run_and_seal(results):
    from hinas.campaign import load_plan, run_campaign, seal
    from hinas.campaign.folders import ResultsBusy

    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from hinas.campaign.folders import "
                               "results_lock\nwith results_lock(sys.argv[1]):\n print('locked', flush=True); "
                               "time.sleep(60)", str(results)], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = _snapshot(results)
        (results / "train" / "manifest.json").unlink()  # something for seal to do
        with pytest.raises(ResultsBusy, match="holds the folder's lock"):
            seal(results, images=1)
        with pytest.raises(ResultsBusy):
            run_campaign(load_plan(results.parent / "plan.yaml"), results, 30, log=lambda msg: None)
        assert not (results / "train" / "manifest.json").exists()
        assert {k: v for k, v in _snapshot(results).items() if k != "train/manifest.json"} == \
            {k: v for k, v in before.items() if k != "train/manifest.json"}
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("args,message", [
    (("--budget", "nan"), "finite positive"),
    (("--budget", "inf"), "finite positive"),
    (("--budget", "0"), "finite positive"),
    (("--budget", "-1"), "finite positive"),
    (("--device", "tpu"), "not one of cpu, cuda, cuda:N"),
    (("--device", "cuda:7"), "cuda:7"),
    (("--data-root", "/nonexistent/hinas-data"), "not a folder"),
    (("--data-root", "EMPTY"), "not found"),
    (("--archive", "FOLDER"), "is a folder"),
    (("--archive", "UNDER_A_FILE/results.tgz"), "is a file, not a folder"),
    (("--archive", "UNWRITABLE/results.tgz"), "cannot write in"),
    (("--archive", "RESULTS/results.tgz"), "must not be inside --results"),
])
def test_bad_call_inputs_are_one_line_exit_2_nothing_written(tmp_path, capsys, args, message):
    if args == ("--device", "cuda:7") and torch.cuda.is_available() and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    (tmp_path / "plan.yaml").write_text(PLAN)
    results = tmp_path / "r"
    (tmp_path / "FOLDER").mkdir()
    (tmp_path / "EMPTY").mkdir()
    (tmp_path / "UNDER_A_FILE").write_text("a file")
    if os.geteuid() == 0:
        unwritable = Path("/proc/hinas-archive")  # refused even to root
    else:
        unwritable = tmp_path / "ro"
        unwritable.mkdir(mode=0o500)
    value = args[1].replace("UNWRITABLE", str(unwritable)).replace("RESULTS", str(results))
    for name in ("FOLDER", "EMPTY", "UNDER_A_FILE"):
        value = value.replace(name, str(tmp_path / name))
    extra = [args[0], value] if args[0] == "--budget" else ["--budget", "30", args[0], value]
    rc, out, err = _cli(capsys, "campaign", "run", "--plan", tmp_path / "plan.yaml", "--results", results, *extra)
    assert rc == 2 and out == "" and err.count("\n") == 1 and message in err, err
    assert not results.exists() and not list(tmp_path.rglob("*.tgz*"))


@pytest.mark.parametrize("item,message", [
    ("{name: e, kind: eval, network_from: t, sigma: 50, protocols: standard}", "'protocols' must be a list"),
    ("{name: e, kind: eval, network_from: t, sigma: 50, precisions: [fp64]}", "unknown precision 'fp64'"),
    ("{name: e, kind: eval, network_from: t, sigma: 50, estimate: soon}", "'estimate' must be"),
    ("{name: e, kind: eval, network_from: s, sigma: 50}", "must name an earlier train item"),
    ("{name: e, kind: eval, network_from: t}", "needs 'sigma'"),
    ("{name: e, kind: eval, network_from: t, sigma: 50, datasets: [Nowhere]}", "unknown dataset 'Nowhere'"),
    ("{name: e, kind: eval, network_from: t, sigma: 50, limit: 0}", "'limit' (images) must be a positive"),
    ("{name: b, kind: bench, batch: 1.5}", "'batch' must be a positive integer"),
    ("{name: x, kind: train, genotype_from: t, config: {model: dncnn}}", "must name an earlier search or rsws item"),
    ("{name: x, kind: search, budget: .inf}", "budget must be a positive number"),
])
def test_bad_plan_options_are_refused_naming_file_item_and_fix(tmp_path, item, message):
    from hinas.campaign import load_plan

    f = tmp_path / "bad.yaml"
    f.write_text("defaults: {profile: smoke, device: cpu}\nitems:\n  - {name: s, kind: search}\n"
                 f"  - {{name: t, kind: train, config: {{model: dncnn}}}}\n  - {item}\n")
    with pytest.raises(ConfigError) as info:
        load_plan(f)
    text = str(info.value)
    assert message in text and str(f) in text and "\n" not in text


def test_bad_plan_option_exits_2_before_writing(tmp_path, capsys):
    f = tmp_path / "bad.yaml"
    f.write_text(PLAN.replace("precisions: [fp32, bf16]", "precisions: [fp64]"))
    rc, out, err = _cli(capsys, "campaign", "run", "--plan", f, "--budget", 30, "--results", tmp_path / "r")
    assert rc == 2 and out == "" and err.count("\n") == 1 and "'eval'" in err and "fp64" in err
    assert not (tmp_path / "r").exists()


def test_a_failing_item_exits_1_then_a_retry_leaves_no_stale_error(tmp_path, capsys):
    (tmp_path / "plan.yaml").write_text("defaults: {profile: smoke, device: cpu}\nitems:\n"
                                        "  - {name: t, kind: train, long: true, estimate: 0.5, "
                                        "config: {model: dncnn, sigma: [50], iterations: 2, val_every: 2}}\n")
    results = tmp_path / "r"
    (results / "t" / "run").mkdir(parents=True)
    (results / "t" / "run" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    rc, out, _ = _cli(capsys, "campaign", "run", "--plan", tmp_path / "plan.yaml", "--budget", 60, "--results", results)
    report = json.loads(out)
    assert rc == 1 and report["failed"] == 1 and report["ran"][0]["status"] == "failed"
    assert "cannot be resumed" in json.loads((results / "t" / "error.json").read_text())["error"]
    assert (results / "t" / "run" / "checkpoint.pt").read_bytes() == b"not a checkpoint"  # kept
    shutil.rmtree(results / "t" / "run")  # what the error says to do
    rc, out, _ = _cli(capsys, "campaign", "run", "--plan", tmp_path / "plan.yaml", "--budget", 60, "--results",
                      results, "--retry-failed")
    assert rc == 0 and json.loads(out)["done"] == 1
    assert not (results / "t" / "error.json").exists() and (results / "t" / "manifest.json").exists()


def test_an_error_of_the_call_is_not_stored_as_the_items(tmp_path, monkeypatch):
    from hinas.campaign import load_plan, run_campaign
    from hinas.campaign import run as run_mod

    (tmp_path / "plan.yaml").write_text(PLAN)

    def disk_full(ctx, item):
        raise OSError(errno.ENOSPC, "No space left on device", str(ctx.results / item.name / "summary.json"))

    monkeypatch.setattr(run_mod, "run_item", disk_full)
    with pytest.raises(OSError, match="No space left"):
        run_campaign(load_plan(tmp_path / "plan.yaml"), tmp_path / "r", 30, log=lambda msg: None)
    assert not list((tmp_path / "r").rglob("error.json"))


# ---------------------------------------------------------------------------------------------
# writing: a full disk names the path and leaves no temp file; JSON is always valid
# ---------------------------------------------------------------------------------------------
def test_full_disk_names_the_path_and_leaves_no_tmp(tmp_path, monkeypatch):
    import tarfile

    from hinas.campaign import write_archive, write_json
    from hinas.campaign.folders import copy_file

    real_fdopen = os.fdopen

    class FullDisk:  # the temp file opens; writing to it fails
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **kw: FullDisk(real_fdopen(fd, *a, **kw)))
    with pytest.raises(OSError) as info:
        write_json(tmp_path / "item" / "summary.json", {"psnr": 1.0})
    assert info.value.errno == errno.ENOSPC and "summary.json" in info.value.filename
    assert not list((tmp_path / "item").iterdir())  # no temp file left
    monkeypatch.setattr(os, "fdopen", real_fdopen)

    def full_disk(fd):  # the bytes were written to the temp file, its flush to disk fails
        raise OSError(errno.ENOSPC, "No space left on device")

    (tmp_path / "src.bin").write_bytes(b"x" * 100)
    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError) as info:
        copy_file(tmp_path / "src.bin", tmp_path / "item" / "weights.safetensors")
    assert "weights.safetensors" in info.value.filename
    assert not list((tmp_path / "item").glob("*.tmp")) and not (tmp_path / "item" / "weights.safetensors").exists()
    monkeypatch.undo()
    monkeypatch.delenv("HINAS_DATA", raising=False)

    def full_add(self, *a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    (tmp_path / "res" / "a").mkdir(parents=True)
    (tmp_path / "res" / "a" / "f.json").write_text("{}")
    monkeypatch.setattr(tarfile.TarFile, "add", full_add)
    with pytest.raises(OSError) as info:
        write_archive(tmp_path / "res", 0.0, tmp_path / "out" / "results.tgz")
    assert "results.tgz" in str(info.value.filename)
    assert not list(tmp_path.rglob("*.tmp")) and not list((tmp_path / "out").iterdir())
    assert not (tmp_path / "item" / "weights.safetensors").exists()


def test_json_is_always_valid(tmp_path):
    from hinas.campaign import read_json, write_json

    write_json(tmp_path / "x.json", {"psnr": math.nan, "ssim": [math.inf, 0.5]})
    text = (tmp_path / "x.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert read_json(tmp_path / "x.json") == {"psnr": None, "ssim": [None, 0.5]}
