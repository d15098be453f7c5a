"""GPU campaign runner: plans, budgeted pieces, resume, verify; the device-made batches; the
engine's stop_at deadline. All on the CPU, in seconds (the smoke plan on the embedded photos)."""

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from hinas.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
BLOCKED = ("graphviz", "bm3d", "ipywidgets", "papermill", "jupyter_book")


# ---------------------------------------------------------------------------------------------
# the whole runner, as on a bare GPU machine: book-only packages blocked, two budgeted calls
# ---------------------------------------------------------------------------------------------
@pytest.fixture()
def bare_env(tmp_path):
    """Environment whose Python cannot import the packages the GPU machine lacks."""
    block = tmp_path / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text(textwrap.dedent(f"""
        import sys
        BLOCKED = {BLOCKED!r}

        class _Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: absent on the GPU machine)",
                                              name=name)
                return None

        sys.meta_path.insert(0, _Blocker())
    """))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(block), str(REPO)]), OMP_WAIT_POLICY="PASSIVE",
               OMP_NUM_THREADS="1")
    env.pop("HINAS_DATA", None)  # the smoke plan runs on the embedded photos
    return env


def _hinas(env, *args):
    return subprocess.run([sys.executable, "-m", "hinas", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=REPO)


def test_smoke_plan_in_two_budgeted_calls_without_book_packages_then_verify(tmp_path, bare_env):
    probe = subprocess.run([sys.executable, "-c", "import graphviz"], env=bare_env, capture_output=True, text=True)
    assert probe.returncode != 0 and "blocked" in probe.stderr  # the blocker is active
    results = tmp_path / "r"

    from hinas.campaign import campaign_status, load_plan, run_campaign, verify

    smoke = load_plan("smoke")
    assert {i["status"] for i in campaign_status(smoke, results)["items"]} == {"pending"}

    # call 1: 2 s - the search starts and meets the deadline; nothing after it runs
    first = _hinas(bare_env, "campaign", "run", "--plan", "smoke", "--budget", 2, "--results", results,
                   "--archive", tmp_path / "out1" / "results.tgz")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["pending"] >= 1 and report["failed"] == 0
    search = report["items"][0]
    assert search["name"] == "search-dn"
    if search["status"] == "pending":  # paused cleanly: a checkpoint, no results, no done marker
        assert search["pieces"] == 1 and search["last"]["status"] == "paused"
        assert (results / "search-dn" / "run" / "checkpoint.pt").exists()
        assert not (results / "search-dn" / "done").exists()

    # call 2: continues where call 1 stopped, to the end of the plan
    second = _hinas(bare_env, "campaign", "run", "--plan", "smoke", "--budget", 300, "--results", results,
                    "--archive", tmp_path / "out2" / "results.tgz")
    assert second.returncode == 0, second.stderr
    # the two calls' archives (what comes back from two GPU windows) rebuild the results folder
    rebuilt = tmp_path / "rebuilt"
    rebuilt.mkdir()
    for out in ("out1", "out2"):
        parts = sorted((tmp_path / out).glob("results.tgz*"))
        assert parts and all(p.stat().st_size <= 15 * 2**20 for p in parts)
        with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts)), mode="r:gz") as tar:
            tar.extractall(rebuilt, filter="data")
    assert json.loads(second.stdout)["archive"] == [str(tmp_path / "out2" / "results.tgz")]
    # ... whole: every file of the finished plan, byte for byte (files a resumed run wrote in the
    # first call, such as its config.yaml, travel again with the finished item)
    finished = {p.relative_to(results): p.read_bytes() for p in results.rglob("*") if p.is_file()}
    assert finished and all((rebuilt / rel).is_file() and (rebuilt / rel).read_bytes() == data
                            for rel, data in finished.items()), sorted(
        str(rel) for rel in finished if not (rebuilt / rel).is_file())
    st = json.loads(_hinas(bare_env, "campaign", "status", "--plan", "smoke", "--results", results, "--json").stdout)
    assert [i["status"] for i in st["items"]] == ["done"] * 5, st
    assert st["items"][0]["pieces"] == (2 if search["status"] == "pending" else 1)

    train = json.loads((results / "train-dn50" / "summary.json").read_text())
    assert train["provenance"]["device"] == "cpu" and train["provenance"]["profile"] == "smoke"
    assert train["provenance"]["git_revision"] is None or len(train["provenance"]["git_revision"]) >= 40
    sched = train["schedule"]
    assert sched["budgeted"] and sched["paper_iterations"] == 600_000 and 1 <= sched["planned_iterations"] <= 12
    assert train["params"] > 0 and train["flops"] > 0
    for name in ("weights.safetensors", "network.json", "genotype.json", "history.csv", "done"):
        assert (results / "train-dn50" / name).exists(), name
    for name in ("genotype.json", "alpha.csv", "beta.csv", "history.csv"):
        assert (results / "search-dn" / name).exists(), name
    assert not (results / "search-dn" / "run").exists()  # the work folder goes once the item is done
    ev = json.loads((results / "eval-dn50" / "summary.json").read_text())
    assert {(e["protocol"], e["precision"]) for e in ev["evaluations"]} == {("standard", "fp32"),
                                                                            ("hinas-reference", "fp32")}
    assert all(len(e["per_image"]) == 1 and np.isfinite(e["psnr"]) for e in ev["evaluations"])
    bench = json.loads((results / "bench" / "summary.json").read_text())
    assert bench["metrics"]["memory_ratio"] > 1  # Eq. 6 needs more memory than Eq. 5

    # a third call has nothing left to do
    third = run_campaign(smoke, results, 30, log=lambda msg: None)
    assert third["ran"] == [] and third["done"] == 5

    assert campaign_status(smoke, rebuilt)["done"] == 5
    from hinas.campaign import result_rows

    rr = result_rows(rebuilt)  # what the book tabulates: every row names its network, size and schedule
    assert [len(rr[k]) for k in ("search", "train", "eval", "bench")] == [1, 2, 2, 1]
    assert sorted(t["model"] for t in rr["train"]) == ["dncnn", "hinas"]
    assert {(e["protocol"], e["model"], e["seed"], e["params"]) for e in rr["eval"]} == {
        ("standard", "hinas", 0, train["params"]), ("hinas-reference", "hinas", 0, train["params"])}
    hinas_train = next(t for t in rr["train"] if t["item"] == "train-dn50")
    assert hinas_train["iterations"] == sched["planned_iterations"] and hinas_train["paper_iterations"] == 600_000
    ver = _hinas(bare_env, "verify", rebuilt, "--images", 1, "--json")
    assert ver.returncode == 0, ver.stderr
    assert json.loads(ver.stdout)["incomplete"] == []
    nets = json.loads(ver.stdout)["networks"]
    assert [Path(n["path"]).name for n in nets] == ["train-dn50"] and len(nets[0]["checked"]) == 2
    assert all(n["match"] and n["max_diff_db"] <= 0.05 and n["device"] == "cpu" for n in nets)

    # a tampered score is caught (the CLI exits 1 on such a report): by the manifest first ...
    tampered = tmp_path / "tampered"
    for name in ("train-dn50", "eval-dn50"):
        shutil.copytree(results / name, tampered / name)
    ev = json.loads((tampered / "eval-dn50" / "summary.json").read_text())
    ev["evaluations"] = [e for e in ev["evaluations"] if e["protocol"] == "standard"]
    ev["metrics"] = {k: v for k, v in ev["metrics"].items() if "/standard/" in k}
    first = ev["evaluations"][0]
    first["per_image"][0]["psnr"] += 0.1  # a consistent forgery: per-image, aggregate and metrics
    first["psnr"] = first["per_image"][0]["psnr"]
    ev["metrics"][f"{first['dataset']}/standard/{first['precision']}"]["psnr"] = first["psnr"]
    (tampered / "eval-dn50" / "summary.json").write_text(json.dumps(ev))
    bad = verify(tampered, images=1)
    assert not bad["match"] and not bad["networks"]
    assert any(p["state"] == "corrupt" and "summary.json differs" in p["reason"] for p in bad["problems"])
    # ... and by the re-evaluation when the forger rewrites the manifest too
    from hinas.campaign import write_manifest

    write_manifest(tampered / "eval-dn50", "eval-dn50")
    bad = verify(tampered, images=1)
    assert not bad["match"] and bad["networks"][0]["max_diff_db"] == pytest.approx(0.1, abs=1e-6)


# ---------------------------------------------------------------------------------------------
# plans: bad input is one line, exit 2, before anything is written
# ---------------------------------------------------------------------------------------------
def test_shipped_plans_load_and_order():
    from hinas.campaign import list_plans, load_plan

    assert {"smoke", "paper"} <= set(list_plans())
    gpu = load_plan("paper")
    names = [i.name for i in gpu.items]
    assert names[0] == "bench"
    first = lambda prefix: next(n for n, x in enumerate(names) if x.startswith(prefix))  # noqa: E731
    assert first("search-dn-s0") < first("train-dn50-s0") < first("eval-dn50-s0") < first("train-dncnn50") \
        < first("train-dn50-unsearched-s0-3k") < first("train-dn30") < first("search-srx2") < first("search-dn-s1")
    assert not [n for n in names if n.startswith("ablation")]  # chapter 5's plan at the gpu profile (ablations.yaml)
    for item in gpu.items:
        if item.kind in ("search", "train"):
            assert item.config.get("device") == "cuda"


def test_a_renamed_plan_loads_by_its_old_name_and_old_paths_read_as_new():
    """Committed summaries name the plan they ran under (``paper-gpu`` before the rename), and
    result files record paths under its old folder: both resolve to the plan as it is named now."""
    from hinas.campaign import list_plans, load_plan
    from hinas.campaign.plan import RENAMED, renamed_path

    for old, new in RENAMED.items():
        assert old not in list_plans() and new in list_plans()
        assert load_plan(old).name == new and load_plan(old).path == load_plan(new).path
        assert renamed_path(f"results/{old}/train-x") == f"results/{new}/train-x"
        assert renamed_path(f"results/{old}") == f"results/{new}"
    assert renamed_path("results/other/train-x") == "results/other/train-x"
    assert renamed_path("/abs/results/paper-gpu/x") == "/abs/results/paper-gpu/x"  # only repository-relative ones


def test_bad_plans_are_refused(tmp_path):
    from hinas.campaign import load_plan

    cases = {
        "unknown kind": ("items: [{name: a, kind: fly}]", "kind must be one of"),
        "dangling dependency": ("items: [{name: t, kind: train, genotype_from: s}]", "not an earlier item"),
        "bad setting": ("items: [{name: s, kind: search, config: {epochs: many}}]", "'epochs' must be an integer"),
        "unknown key": ("items: [{name: b, kind: bench, colour: red}]", "unknown key"),
        "bad name": ("items: [{name: '../x', kind: bench}]", "'name' must be"),
    }
    for what, (text, message) in cases.items():
        f = tmp_path / f"{what.replace(' ', '_')}.yaml"
        f.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_plan(f)
    with pytest.raises(ConfigError, match="unknown plan 'nope'"):
        load_plan("nope")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-m", "hinas", "campaign", "run", "--plan", str(tmp_path / "unknown_kind.yaml"),
                          "--budget", "5", "--results", str(tmp_path / "r")], capture_output=True, text=True, env=env)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------------------------------------
# the engine's deadline hook: pause + resume gives the uninterrupted search, exactly
# ---------------------------------------------------------------------------------------------
def test_search_paused_at_deadline_resumes_to_the_same_result(tmp_path, same_search_files):
    from hinas.engine.config import RunConfig
    from hinas.engine.search import search

    cfg = RunConfig.from_profile("smoke", "denoise", quiet=True, epochs=2, val_start_epoch=1)
    whole = search(cfg, tmp_path / "whole")
    paused = search(cfg, tmp_path / "cut", stop_at=time.monotonic())  # already past: pauses at the first log point
    assert paused["status"] == "paused" and paused["steps"] == cfg.log_every
    assert not (tmp_path / "cut" / "summary.json").exists()
    resumed = search(cfg, tmp_path / "cut", resume=True)
    assert resumed["path"] == whole["path"] and resumed["val_psnr"] == whole["val_psnr"]
    same_search_files(tmp_path / "whole", tmp_path / "cut")


def test_budget_planner_fits_the_schedule_shape(tmp_path):
    from hinas.engine.budget import budgeted, plan_search
    from hinas.engine.config import RunConfig

    cfg = RunConfig.from_profile("smoke", "denoise", quiet=True, epochs=100, arch_start_epoch=20, val_start_epoch=60)
    planned, plan = budgeted("search", cfg, 1.0, tmp_path / "run")
    # both measured (their order is a timing, which a loaded machine can flip: not tested here)
    assert plan["seconds_per_arch_and_weight_step"] > 0 and plan["seconds_per_weight_step"] > 0
    assert 2 <= planned.epochs < 100 and plan["paper_epochs"] == 100
    assert planned.arch_start_epoch == round(0.2 * planned.epochs)
    assert planned.val_start_epoch == min(planned.epochs - 1, round(0.6 * planned.epochs))
    # the plan is fixed once per run folder: a resumed run reuses it, never re-measures
    again_cfg, again = budgeted("search", cfg, 50.0, tmp_path / "run", resume=True)
    assert again_cfg == planned and again == plan
    with pytest.raises(ConfigError, match="--budget must be a finite positive"):
        plan_search(cfg, 0)


# ---------------------------------------------------------------------------------------------
# device-made batches (the fast CUDA path), checked on the CPU
# ---------------------------------------------------------------------------------------------
def _records(rng, shapes):
    from hinas.data.datasets import ImageRecord

    return [ImageRecord(f"im{n}", None, rng.integers(0, 256, s, dtype=np.uint8)) for n, s in enumerate(shapes)]


def test_device_stream_gathers_the_8_flips_rotations_exactly():
    from hinas.data import PatchDataset, augment8
    from hinas.data.device_sampling import DeviceBatchStream

    rng = np.random.default_rng(0)
    recs = _records(rng, [(40, 52), (52, 40), (45, 45)])
    ds = PatchDataset(recs, "denoise", patch=16, sigma=[30, 50])
    stream = DeviceBatchStream(ds, 4, seed=3, device="cpu")
    for k in range(8):
        idx, y, x = torch.tensor([1]), torch.tensor([5]), torch.tensor([7])
        got = stream._gather(stream.images, idx, y, x, torch.tensor([k]), stream.rows, stream.cols)
        want = augment8(recs[1].image[5:21, 7:23], k).astype(np.float32) / 255
        np.testing.assert_array_equal(got[0, 0].numpy(), want)


def test_device_stream_batches_are_valid_and_deterministic_per_seed():
    from hinas.data import PatchDataset
    from hinas.data.device_sampling import DeviceBatchStream

    rng = np.random.default_rng(1)
    recs = _records(rng, [(40, 52), (52, 40), (45, 45), (64, 33)])
    ds = PatchDataset(recs, "denoise", patch=16, sigma=[50], samples_per_epoch=8)

    def batches(seed, n=5, state=None):
        s = DeviceBatchStream(ds, 3, seed=seed, device="cpu")
        if state:
            s.load_state(state)
        return [s.next() for _ in range(n)], s

    a, sa = batches(0)
    b, _ = batches(0)
    c, _ = batches(1)
    assert sa.batches_per_cycle == 3 and sa.state() == {"cycle": 1, "position": 2}
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(a[0][1], c[0][1])
    # resuming from a state draws the same batches as the uninterrupted stream
    resumed, _ = batches(0, n=2, state={"cycle": 1, "position": 0})
    assert all(torch.equal(p[0], q[0]) for p, q in zip(resumed, a[3:]))
    x, y = a[0]
    assert x.shape == y.shape == (3, 1, 16, 16) and x.dtype == torch.float32
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    noise = torch.cat([xi - yi for xi, yi in a])
    assert abs(float(noise.std()) * 255 - 50) < 5  # N(0, sigma/255), unclipped
    assert float(noise.mean()) == pytest.approx(0, abs=0.02)
    # every target is a crop of one of the images under one of the 8 transforms
    from hinas.data import augment8

    t = (y[0, 0].numpy() * 255).round().astype(np.uint8)
    found = any(np.array_equal(augment8(r.image[i:i + 16, j:j + 16], k), t)
                for r in recs for k in range(8)
                for i in range(r.image.shape[0] - 15) for j in range(r.image.shape[1] - 15))
    assert found


def test_device_stream_sr_pairs_are_aligned():
    from hinas.data import PatchDataset
    from hinas.data.device_sampling import DeviceBatchStream

    rng = np.random.default_rng(2)
    recs = _records(rng, [(48, 60, 3), (60, 48, 3)])
    ds = PatchDataset(recs, "sr", patch=8, scale=2)
    stream = DeviceBatchStream(ds, 2, seed=0, device="cpu")
    lr, hr = stream.next()
    assert lr.shape == (2, 3, 8, 8) and hr.shape == (2, 3, 16, 16)
    # the HR crop at (2y, 2x) of the same transform: its bicubic x1/2 is close to the LR crop
    hr_img, lr_img = ds._pair(0)
    got_lr = stream._gather(stream.images, torch.tensor([0]), torch.tensor([3]), torch.tensor([4]),
                            torch.tensor([5]), stream.rows, stream.cols)
    got_hr = stream._gather(stream.hr_images, torch.tensor([0]), torch.tensor([6]), torch.tensor([8]),
                            torch.tensor([5]), stream.hr_rows, stream.hr_cols)
    from hinas.data import augment8

    np.testing.assert_array_equal((got_lr[0].permute(1, 2, 0).numpy() * 255).round(),
                                  augment8(lr_img[3:11, 4:12], 5).astype(np.float32))
    np.testing.assert_array_equal((got_hr[0].permute(1, 2, 0).numpy() * 255).round(),
                                  augment8(hr_img[6:22, 8:24], 5).astype(np.float32))


def test_training_with_device_data_runs_and_is_repeatable(tmp_path):
    from hinas.engine.config import RunConfig
    from hinas.engine.train import train

    cfg = RunConfig.from_profile("smoke", "denoise", model="dncnn", quiet=True, iterations=4, val_every=2,
                                 device_data=True)
    a = train(cfg, None, tmp_path / "a")
    b = train(cfg, None, tmp_path / "b")
    assert a["val_psnr"] == b["val_psnr"] and np.isfinite(a["val_psnr"])
    assert cfg.key() != cfg.replace(device_data=False).key()  # a different sample, a different run


def test_compile_switch_keeps_weights_layout_and_results(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from hinas.engine import compile as compile_mod
    from hinas.engine.config import RunConfig
    from hinas.engine.train import train

    monkeypatch.setattr(compile_mod, "BACKEND", "eager")  # the plumbing, without a C++ compiler run
    cfg = RunConfig.from_profile("smoke", "denoise", model="dncnn", quiet=True, iterations=4, val_every=2)
    eager = train(cfg, None, tmp_path / "eager")
    compiled = train(cfg.replace(compile=True), None, tmp_path / "compiled")
    a = load_file(str(tmp_path / "eager" / "weights.safetensors"))
    b = load_file(str(tmp_path / "compiled" / "weights.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert compiled["val_psnr"] == pytest.approx(eager["val_psnr"], abs=1e-3)


def test_run_campaign_from_python_refuses_an_empty_results_path(tmp_path, monkeypatch):
    """'' is not "here" from the library either: refused before anything is written."""
    from hinas.campaign import load_plan, run_campaign

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="--results '': an empty path"):
        run_campaign(load_plan("smoke"), "", 30, log=lambda msg: None)
    assert list(tmp_path.iterdir()) == []
