"""Long campaign items (fixed length over several calls, learning curves), the movement gate and the
plan's accounting (hinas.campaign.long, hinas.campaign.status). Smoke profile, CPU, embedded photos, seconds."""

import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import torch

from hinas.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def _env():
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS="1")
    env.pop("HINAS_DATA", None)
    return env


def _hinas(*args):
    return subprocess.run([sys.executable, "-m", "hinas", *map(str, args)], capture_output=True, text=True,
                          env=_env(), cwd=REPO)


def _done_search(results: Path, name: str, moved: bool | None, csv: bool = False) -> None:
    """A finished search item as the campaign leaves it: genotype, summary (with or without a
    movement record), alpha/beta CSVs when asked, its manifest, the done marker."""
    from hinas.engine.common import write_csv
    from hinas.engine.config import RunConfig
    from hinas.engine.movement import search_movement
    from hinas.engine.search import _alpha_rows, _beta_rows
    from hinas.space.supernet import Supernet

    cfg = RunConfig.from_profile("smoke", "denoise", quiet=True)
    torch.manual_seed(0)
    net = Supernet(cfg.supernet_config())
    folder = results / name
    folder.mkdir(parents=True)
    net.genotype().save(folder / "genotype.json")
    summary = {"item": name, "kind": "search", "status": "done", "config": cfg.to_dict()}
    if moved is not None:
        summary["movement"] = {**search_movement(net), "moved": moved}
    if csv:
        write_csv(folder / "alpha.csv", _alpha_rows(net, 1))
        write_csv(folder / "beta.csv", _beta_rows(net, 1))
    (folder / "summary.json").write_text(json.dumps(summary))
    from hinas.campaign import write_manifest

    write_manifest(folder, name)  # as the runner does, just before the done marker
    (folder / "done").write_text("{}")


PLAN = """
name: longtest
defaults: {profile: smoke, device: cpu}
items:
  - name: search-still  # finished, but alpha/beta never left uniform (from its CSVs)
    kind: search
    config: {task: denoise}
  - name: train-waits
    kind: train
    genotype_from: search-still
    budget: 2
    config: {sigma: [50]}
  - name: eval-waits
    kind: eval
    network_from: train-waits
    sigma: 50
  - name: search-moved
    kind: search
    config: {task: denoise}
  - name: train-long
    kind: train
    genotype_from: search-moved
    long: true
    estimate: 1
    curve: {every: 2, dataset: embedded-test, limit: 1, protocol: standard}
    config: {sigma: [50], iterations: ITERATIONS}
"""


def _plan(tmp_path, iterations=8, name="plan.yaml"):
    from hinas.campaign import load_plan

    f = tmp_path / name
    f.write_text(PLAN.replace("ITERATIONS", str(iterations)))
    return load_plan(f)


def test_long_train_with_curve_over_two_calls_waits_on_an_unmoved_search_and_accounts(tmp_path, monkeypatch):
    from hinas.campaign import long as campaign_long
    from hinas.campaign import campaign_status, run_campaign, write_archive

    results = tmp_path / "r"
    _done_search(results, "search-still", None, csv=True)
    _done_search(results, "search-moved", True)
    plan = _plan(tmp_path)
    quiet = lambda msg: None  # noqa: E731

    # call 1: the window ends right after the first curve point (as a deadline would)
    real = campaign_long.owe_point

    def window_ends_after_a_point(ctx, item, *args, **kw):
        ok = real(ctx, item, *args, **kw)
        if (ctx.results / item.name / "curve.json").exists():
            ctx.deadline = time.monotonic() - 1
        return ok

    monkeypatch.setattr(campaign_long, "owe_point", window_ends_after_a_point)
    wall = time.time()
    first = run_campaign(plan, results, 300, log=quiet)
    monkeypatch.setattr(campaign_long, "owe_point", real)
    ran = {r["name"]: r for r in first["ran"]}
    assert ran["train-waits"]["status"] == "waiting" and "search-still did not move" in ran["train-waits"]["reason"]
    assert "continue the search" in ran["train-waits"]["reason"] and "largest |alpha-1/" in ran["train-waits"]["reason"]
    assert ran["eval-waits"]["status"] == "waiting" and "train-waits" in ran["eval-waits"]["reason"]
    assert ran["train-long"]["status"] == "paused"
    assert not list(results.rglob("error.json")) and not (results / "train-waits").exists()
    long_dir = results / "train-long"
    assert (long_dir / "run" / "checkpoint.pt").exists() and not (long_dir / "done").exists()
    curve = json.loads((long_dir / "curve.json").read_text())
    assert [p["iteration"] for p in curve["points"]] == [2]
    assert set(curve["points"][0]) >= {"iteration", "psnr", "ssim", "seconds", "gpu_seconds"}
    assert curve["points"][0]["seconds"] > 0 and curve["points"][0]["gpu_seconds"] >= curve["points"][0]["seconds"]
    assert not (results / "train-long" / "run.budget.json").exists()  # a fixed length, never planned
    # the window's archive carries the paused run (its checkpoint) and the curve
    parts = write_archive(results, wall - 1.0, tmp_path / "out" / "results.tgz")
    with tarfile.open(fileobj=io.BytesIO(b"".join(Path(p).read_bytes() for p in parts)), mode="r:gz") as tar:
        names = set(tar.getnames())
    assert {"train-long/run/checkpoint.pt", "train-long/curve.json", "train-long/progress.json"} <= names

    # status: waiting with the reason, seconds spent, estimates at the measured speed, totals
    st = campaign_status(plan, results)
    items = {i["name"]: i for i in st["items"]}
    assert items["train-waits"]["status"] == "waiting" and items["eval-waits"]["status"] == "waiting"
    assert items["search-still"]["movement"]["moved"] is False
    long_st = items["train-long"]
    assert long_st["status"] == "pending" and long_st["seconds"] > 0 and long_st["position"] == 2
    assert long_st["total"] == 8 and long_st["speed"] > 0 and long_st["estimate"] > 0
    assert long_st["estimate_from"] == "the last piece"
    assert items["train-waits"]["estimate"] == 2  # its budget
    t = st["totals"]
    assert (t["done"], t["pending"], t["waiting"], t["failed"]) == (2, 1, 2, 0)
    assert t["seconds_spent"] == pytest.approx(long_st["seconds"], abs=1e-3)
    assert t["seconds_to_finish"] == pytest.approx(long_st["estimate"], abs=0.1)
    out = _hinas("campaign", "status", "--plan", tmp_path / "plan.yaml", "--results", results)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    line = next(x for x in lines if "train-long" in x)
    assert line.startswith("pending") and " s spent" in line and "s to finish" in line and "2/8 iterations" in line
    assert any(x.startswith("waiting  train-waits") and "did not move" in x for x in lines)
    assert "2 done, 1 pending, 2 waiting, 0 failed" in lines[-1] and "estimated to finish" in lines[-1]

    # the paused run's settings changed: an error naming the folder, and the checkpoint is kept
    changed = _plan(tmp_path, iterations=10, name="changed.yaml")
    bad = run_campaign(changed, results, 300, log=quiet)
    assert next(r for r in bad["ran"] if r["name"] == "train-long")["status"] == "failed"
    error = json.loads((long_dir / "error.json").read_text())["error"]
    assert "cannot be resumed" in error and "checkpoint is kept" in error
    assert (long_dir / "run" / "checkpoint.pt").exists()

    # call 2 (the original plan again): resumes, gains the other points, finishes at the fixed length
    second = run_campaign(plan, results, 300, retry_failed=True, log=quiet)
    assert next(r for r in second["ran"] if r["name"] == "train-long")["status"] == "done"
    assert (long_dir / "done").exists() and not (long_dir / "run").exists()
    curve = json.loads((long_dir / "curve.json").read_text())
    assert [p["iteration"] for p in curve["points"]] == [2, 4, 6, 8]
    assert [p["seconds"] for p in curve["points"]] == sorted(p["seconds"] for p in curve["points"])
    summary = json.loads((long_dir / "summary.json").read_text())
    sched = summary["schedule"]
    assert sched["planned_iterations"] == 8 and not sched["budgeted"] and sched["long"]
    assert sched["share_of_paper"] == pytest.approx(8 / 600_000)
    assert summary["config"]["iterations"] == 8 and summary["curve"]["points"] == 4
    assert "curve.json" in summary["files"]
    progress = json.loads((long_dir / "progress.json").read_text())
    assert progress["pieces"] >= 5  # training pieces and curve points, over two calls
    assert campaign_status(plan, results)["totals"]["pending"] == 0


@pytest.mark.parametrize("item,message", [
    ("{name: t, kind: train, model: x, long: true, budget: 5, config: {model: dncnn}}", "unknown key"),
    ("{name: t, kind: train, long: true, budget: 5, config: {model: dncnn}}", "remove 'budget: 5'"),
    ("{name: t, kind: train, long: yes please, config: {model: dncnn}}", "'long' must be true or false"),
    ("{name: t, kind: train, curve: {every: 2}, config: {model: dncnn}}", "'curve' needs 'long: true'"),
    ("{name: t, kind: train, long: true, curve: {every: 3}, config: {model: dncnn}}", "use a multiple of 2"),
    ("{name: t, kind: train, long: true, curve: {every: 0}, config: {model: dncnn}}", "positive number"),
    ("{name: t, kind: train, long: true, curve: {every: 20}, config: {model: dncnn}}", "use at most 12"),
    ("{name: t, kind: train, long: true, curve: {every: 2, when: now}, config: {model: dncnn}}", "unknown curve key"),
    ("{name: t, kind: train, long: true, curve: {every: 2, protocol: x}, config: {model: dncnn}}", "unknown curve protocol"),
    ("{name: t, kind: train, long: true, curve: {every: 2, limit: -1}, config: {model: dncnn}}", "'limit' must be"),
    ("{name: t, kind: train, long: true, curve: 5, config: {model: dncnn}}", "'curve' must be a mapping"),
    ("{name: s, kind: search, long: true, curve: {every: 2}}", "unknown key"),
    ("{name: t, kind: train, config: {model: dncnn}}, {name: e, kind: eval, network_from: t, sigma: 50, long: true}",
     "unknown key"),
])
def test_bad_long_options_are_refused_naming_file_item_and_fix(tmp_path, item, message):
    from hinas.campaign import load_plan

    f = tmp_path / "bad.yaml"
    f.write_text(f"defaults: {{profile: smoke, device: cpu}}\nitems: [{item}]\n")
    with pytest.raises(ConfigError, match=message) as info:
        load_plan(f)
    assert str(f) in str(info.value) and "\n" not in str(info.value)


def test_bad_long_option_exits_2_before_writing(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("defaults: {profile: smoke, device: cpu}\n"
                 "items: [{name: t, kind: train, long: true, budget: 5, config: {model: dncnn}}]\n")
    out = _hinas("campaign", "run", "--plan", f, "--budget", 5, "--results", tmp_path / "r")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "'t'" in out.stderr and str(f) in out.stderr and "remove 'budget" in out.stderr
    assert not (tmp_path / "r").exists()


def test_shipped_paper_plan_keeps_the_finished_items_and_orders_the_long_ones():
    from hinas.campaign import load_plan

    gpu = load_plan("paper")
    names = [i.name for i in gpu.items]
    assert names[:7] == ["bench", "search-dn-s0", "train-dn50-s0", "eval-dn50-s0", "eval-dn50-s0-ref",
                         "train-dncnn50-s0", "eval-dncnn50-s0"]
    assert names[7:10] == ["search-dn-s0-full", "train-dncnn50-s0-long", "train-dn50-s0-long"]
    by = {i.name: i for i in gpu.items}
    assert by["search-dn-s0-full"].options["long"] and by["search-dn-s0-full"].config["epochs"] == 100
    for name in ("train-dncnn50-s0-long", "train-dn50-s0-long"):
        it = by[name]
        assert it.options["long"] and it.budget is None and it.config["iterations"] == 120_000
        assert it.options["curve"] == {"every": 5000, "dataset": "BSDS500-test", "limit": 20, "protocol": "standard"}
    assert by["train-dn50-s0-long"].genotype_from == "search-dn-s0-full"
    # trained from the search that did not move: the committed network and, saying so, the comparison's
    assert [i.name for i in gpu.items if i.genotype_from == "search-dn-s0"] == ["train-dn50-s0",
                                                                               "train-dn50-unsearched-s0-3k"]
    assert by["train-dn50-unsearched-s0-3k"].options["from_unmoved_search"]
    # the comparison of issue 31: three networks alike but for the architecture, each scored on all of BSD200
    trio = [by[n] for n in ("train-dn50-unsearched-s0-3k", "train-dncnn50-s0-3k", "train-dn50-full-s0-3k")]
    assert {(it.config["iterations"], it.config["seed"], tuple(it.config["sigma"])) for it in trio} == {(3000, 0, (50,))}
    assert all(it.options["long"] and it.options["curve"]["every"] == 1000 and it.options["curve"]["limit"] == 20
               for it in trio)
    assert {by[f"eval-{n[6:]}"].network_from for n in (it.name for it in trio)} == {it.name for it in trio}
    assert all("limit" not in by[f"eval-{it.name[6:]}"].options for it in trio)  # all 200 images
    for i in gpu.items:
        if i.kind == "search" and i.name != "search-dn-s0":
            assert i.options.get("long") and i.config["epochs"] == 100, i.name


def test_long_search_runs_its_fixed_length_over_two_calls(tmp_path):
    from hinas.campaign import load_plan, run_campaign

    f = tmp_path / "search.yaml"
    f.write_text("defaults: {profile: smoke, device: cpu}\n"
                 "items: [{name: s, kind: search, long: true, estimate: 0.5, "
                 "config: {epochs: 2, val_start_epoch: 1, a_lr: 0.03}}]\n")
    plan = load_plan(f)
    results = tmp_path / "r"
    first = run_campaign(plan, results, 1.0, log=lambda msg: None)  # the deadline passes during start-up
    assert first["ran"][0]["status"] == "paused" and (results / "s" / "run" / "checkpoint.pt").exists()
    assert not (results / "s" / "run.budget.json").exists()
    second = run_campaign(plan, results, 120, log=lambda msg: None)
    assert second["ran"][0]["status"] == "done"
    summary = json.loads((results / "s" / "summary.json").read_text())
    assert summary["schedule"]["planned_epochs"] == 2 and summary["schedule"]["long"]
    assert summary["schedule"]["share_of_paper"] == pytest.approx(2 / 100)
    assert summary["movement"] == summary["engine_summary"]["movement"] and "moved" in summary["movement"]
    assert summary["timings"]["pieces"] == 2


def test_only_runs_the_named_items_and_each_piece_records_where_it_ran(tmp_path):
    from hinas.campaign import campaign_status, load_plan, run_campaign

    f = tmp_path / "plan.yaml"
    f.write_text("defaults: {profile: smoke, device: cpu}\n"
                 "items: [{name: first, kind: search, config: {epochs: 1}},\n"
                 "        {name: s, kind: search, long: true, estimate: 0.5, "
                 "config: {epochs: 2, val_start_epoch: 1, a_lr: 0.03}}]\n")
    plan = load_plan(f)
    results = tmp_path / "r"
    with pytest.raises(ConfigError, match="'nope' is not an item"):
        run_campaign(plan, results, 60, log=lambda msg: None, only=["nope"])
    assert not results.exists()  # refused before the first write
    report = run_campaign(plan, results, 1.0, log=lambda msg: None, only=["s"])
    assert [r["name"] for r in report["ran"]] == ["s"] and not (results / "first").exists()
    piece = json.loads((results / "s" / "progress.json").read_text())["history"][0]
    assert piece["device"] == "cpu" and piece["threads"] == torch.get_num_threads()
    assert piece["git_revision"] and piece["host"] and piece["ended"].endswith("Z")
    entry = {i["name"]: i for i in campaign_status(plan, results)["items"]}["s"]
    assert entry["by_device"]["cpu"]["pieces"] == 1 and entry["device"] == "cpu"
    proc = _hinas("campaign", "run", "--plan", f, "--results", tmp_path / "r2", "--budget", 5, "--only", "nope")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--only" in proc.stderr
    assert not (tmp_path / "r2").exists()


def test_search_estimate_uses_this_devices_pieces_phase_by_phase(tmp_path):
    """Warm-up steps and steps with an architecture update cost differently; a GPU's pieces never
    stand for the CPU's, unless the CPU has none (then named); an unmeasured phase is a lower bound."""
    from hinas.campaign import load_plan
    from hinas.campaign.status import _estimate

    f = tmp_path / "plan.yaml"
    f.write_text("defaults: {profile: smoke, device: cpu}\n"
                 "items: [{name: s, kind: search, long: true, estimate: 1, "
                 "config: {epochs: 4, arch_start_epoch: 2, val_start_epoch: 3}}]\n")
    item = load_plan(f).items[0]
    folder = tmp_path / "r" / "s"
    folder.mkdir(parents=True)
    pieces = [{"status": "paused", "epoch": 2, "step_in_epoch": 0, "steps": 10, "start": 0, "seconds": 100.0,
               "device": "cpu"},
              {"status": "paused", "epoch": 3, "step_in_epoch": 0, "steps": 20, "start": 10, "seconds": 1.0,
               "device": "NVIDIA H100 80GB HBM3"}]

    def estimate(device, history):
        (folder / "progress.json").write_text(json.dumps({"pieces": len(history), "history": history}))
        return _estimate(tmp_path / "r", item, {"status": "pending"}, device)

    cpu = estimate("cpu", pieces)  # 10 steps an epoch; 20 arch steps left at the warm-up's 10 s
    assert cpu["total"] == 40 and cpu["position"] == 20
    assert cpu["estimate"] == pytest.approx(200.0) and cpu["lower_bound"]
    assert "not measured yet" in cpu["estimate_from"]
    assert cpu["by_device"] == {"cpu": {"pieces": 1, "seconds": 100.0, "moved": 10},
                                "NVIDIA H100 80GB HBM3": {"pieces": 1, "seconds": 1.0, "moved": 10}}
    gpu = estimate("NVIDIA H100 80GB HBM3", pieces)
    assert gpu["estimate"] == pytest.approx(2.0)
    pieces.append({"status": "paused", "epoch": 4, "step_in_epoch": 0, "steps": 30, "start": 20, "seconds": 150.0,
                   "device": "cpu"})
    cpu = estimate("cpu", pieces)  # 10 arch steps left at the measured 15 s
    assert cpu["estimate"] == pytest.approx(150.0) and not cpu["lower_bound"]
    across = [pieces[0], {"status": "paused", "epoch": 4, "step_in_epoch": 0, "steps": 30, "start": 10,
                          "seconds": 250.0, "device": "cpu"}]  # 10 warm-up steps (100 s) + 10 arch steps
    assert estimate("cpu", across)["seconds_per_step"] == {"warm-up": 10.0, "arch": 15.0}
    tpu = estimate("TPU", pieces[:1])  # no piece here: another device's speed, named
    assert tpu["estimate"] == pytest.approx(300.0) and "on cpu" in tpu["estimate_from"]


def test_a_training_not_started_takes_this_devices_speed_from_a_training_under_way(tmp_path):
    """Before its first piece, a long training is estimated at the speed of another training of the
    same task and model under way on this device (its last piece there), before a finished one's on
    another device (named); a training of another model is not taken."""
    import yaml

    from hinas.campaign import load_plan
    from hinas.campaign.status import _estimate

    f = tmp_path / "plan.yaml"
    f.write_text("defaults: {profile: smoke, device: cpu}\n"
                 "items: [{name: a, kind: train, long: true, estimate: 1, config: {iterations: 100, model: dncnn}},\n"
                 "        {name: b, kind: train, long: true, estimate: 1, config: {iterations: 100, model: dncnn}}]\n")
    item = load_plan(f).items[1]
    results = tmp_path / "r"
    (results / "a" / "run").mkdir(parents=True)
    (results / "a" / "run" / "config.yaml").write_text(yaml.safe_dump({"task": "denoise", "model": "dncnn"}))
    (results / "a" / "progress.json").write_text(json.dumps({"pieces": 2, "history": [
        {"status": "paused", "iteration": 10, "start": 0, "seconds": 50.0, "device": "cpu"},
        {"status": "paused", "iteration": 30, "start": 10, "seconds": 40.0, "device": "NVIDIA H100"}]}))
    done = results / "c"
    done.mkdir()
    (done / "summary.json").write_text(json.dumps({"kind": "train", "model": "dncnn", "device": "NVIDIA H100",
                                                   "config": {"task": "denoise"},
                                                   "timings": {"iterations_per_second": 30.0}}))
    (done / "done").write_text("{}")
    cpu = _estimate(results, item, {"status": "pending"}, "cpu")
    assert cpu["estimate"] == pytest.approx(500.0) and cpu["estimate_from"] == "the speed of a's last piece, on cpu"
    gpu = _estimate(results, item, {"status": "pending"}, "NVIDIA H100")  # a finished one there comes first
    assert gpu["estimate"] == pytest.approx(100 / 30.0, abs=0.05) and gpu["estimate_from"] == "the speed of c"
    (results / "a" / "run" / "config.yaml").write_text(yaml.safe_dump({"task": "denoise", "model": "hinas"}))
    other = _estimate(results, item, {"status": "pending"}, "cpu")
    assert "on NVIDIA H100" in other["estimate_from"]  # no DnCNN training under way on the CPU: named

