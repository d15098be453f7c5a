"""Search/training engine: configuration, run folders, crash-safe resume, DDP, train + eval."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hinas.engine.config import RunConfig
from hinas.errors import ConfigError
from hinas.space.genotype import Genotype

ENV = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS="1")


def hinas(*args, check=True, **kw):
    return subprocess.run([sys.executable, "-m", "hinas", *map(str, args)], capture_output=True, text=True,
                          env=ENV, check=check, **kw)


def test_profiles_and_typed_overrides():
    for profile in ("smoke", "quick", "gpu", "paper"):
        cfg = RunConfig.from_profile(profile, "denoise")
        assert cfg.profile == profile
    paper = RunConfig.from_profile("paper", "denoise")
    assert (paper.epochs, paper.batch_size, paper.arch_start_epoch, paper.val_start_epoch) == (100, 6, 20, 60)
    assert (paper.f, paper.layers, paper.steps, paper.iterations) == (10, 3, 4, 600_000)
    sr = RunConfig.from_profile("paper", "sr", 4)
    assert (sr.f, sr.layers, sr.steps, sr.batch_size, sr.effective_train_batch) == (8, 2, 3, 24, 16)
    cfg = RunConfig.from_profile("smoke", "denoise").with_overrides(["epochs=3", "sigma=[25]", "lwas=false"])
    assert (cfg.epochs, cfg.sigma, cfg.lwas) == (3, [25.0], False)
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        cfg.with_overrides(["colour=red"])
    with pytest.raises(ConfigError, match="'epochs' must be an integer"):
        cfg.with_overrides(["epochs=many"])


def test_paper_yaml_files_load():
    root = Path(__file__).resolve().parents[1] / "hinas" / "configs"
    files = sorted(root.glob("*.yaml"))
    assert {f.stem for f in files} >= {"denoise_sigma30", "denoise_sigma50", "denoise_sigma70", "sr_x2", "sr_x3", "sr_x4"}
    for f in files:
        cfg = RunConfig.from_yaml(f)
        assert cfg.profile == "paper"


def test_search_poly_cosine_schedule_matches_reference():
    from hinas.engine.search import search_lr

    cfg = RunConfig.from_profile("paper", "denoise")
    expected = {1: 0.0242, 10: 0.001, 20: 0.0206, 30: 0.001, 40: 0.0162, 60: 0.0115, 80: 0.0066, 100: 0.001}
    for epoch, lr in expected.items():
        assert search_lr(cfg, epoch) == pytest.approx(lr, abs=6e-5)


def test_cli_rejects_unknown_setting_and_existing_folder(tmp_path):
    out = tmp_path / "run"
    p = hinas("search", "--profile", "smoke", "--out", out, "--set", "colour=red", check=False)
    assert p.returncode == 2 and "unknown setting 'colour'" in p.stderr and "Traceback" not in p.stderr
    out.mkdir()
    (out / "something").write_text("x")
    p = hinas("search", "--profile", "smoke", "--out", out, check=False)
    assert p.returncode == 2 and "already exists" in p.stderr


def _start_search(out, resume=False):
    args = [sys.executable, "-m", "hinas", "search", "--profile", "smoke", "--out", str(out), "--quiet"]
    if resume:
        args.append("--resume")
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)


def _kill_after_progress(proc, ckpt: Path, rng, previous_mtime=None, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            return False
        if ckpt.exists() and ckpt.stat().st_mtime != previous_mtime:
            break
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 1.0))
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


@pytest.mark.slow
def test_sigkill_twice_then_resume_gives_identical_search(tmp_path):
    ref = tmp_path / "uninterrupted"
    hinas("search", "--profile", "smoke", "--out", ref, "--quiet")
    rng = random.Random(1234)
    out = tmp_path / "killed"
    ckpt = out / "checkpoint.pt"
    killed = 0
    proc = _start_search(out)
    killed += _kill_after_progress(proc, ckpt, rng)
    for _ in range(2):
        mtime = ckpt.stat().st_mtime if ckpt.exists() else None
        proc = _start_search(out, resume=True)
        if killed < 2:
            killed += _kill_after_progress(proc, ckpt, rng, previous_mtime=mtime)
        else:
            out_s, err = proc.communicate()
            assert proc.returncode == 0, err.decode()
    if not (out / "summary.json").exists():
        hinas("search", "--profile", "smoke", "--out", out, "--quiet", "--resume")
    assert killed >= 1, "the run finished before it could be killed"
    a = Genotype.load(ref / "genotype.json").architecture()
    b = Genotype.load(out / "genotype.json").architecture()
    assert a == b
    # stronger than the genotype: every logged alpha/beta and loss agrees bit for bit
    assert (ref / "alpha.csv").read_text() == (out / "alpha.csv").read_text()
    assert (ref / "beta.csv").read_text() == (out / "beta.csv").read_text()
    strip = lambda p: [r.rsplit(",", 1)[0] for r in p.read_text().splitlines()]  # drop 'seconds'
    assert strip(ref / "history.csv") == strip(out / "history.csv")


@pytest.mark.slow
def test_ddp_two_processes_gloo_one_genotype(tmp_path):
    out = tmp_path / "ddp"
    env = dict(ENV)
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "hinas", "search", "--profile", "smoke", "--out", str(out), "--quiet"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    g0 = Genotype.load(out / "genotype.rank0.json").architecture()
    g1 = Genotype.load(out / "genotype.rank1.json").architecture()
    assert g0 == g1
    assert Genotype.load(out / "genotype.json").architecture() == g0
    assert json.loads((out / "summary.json").read_text())["world_size"] == 2


def test_search_train_eval_contract(tmp_path):
    s = tmp_path / "s"
    p = hinas("search", "--profile", "smoke", "--out", s, "--quiet", "--set", "epochs=3")
    summary = json.loads((s / "summary.json").read_text())
    assert set(summary) >= {"best_epoch", "val_psnr", "val_ssim", "seconds", "device"}
    assert (s / "history.csv").exists() and (s / "genotype.json").exists()
    t = tmp_path / "t"
    hinas("train", "--genotype", s / "genotype.json", "--task", "denoise", "--sigma", "50", "--profile", "smoke",
          "--out", t, "--quiet")
    assert (t / "weights.safetensors").exists()
    # a history row every log interval (smoke: 12 iterations, log_every 2, validation at 8 and 12)
    import csv

    rows = list(csv.DictReader((t / "history.csv").open()))
    assert [int(r["iteration"]) for r in rows] == [2, 4, 6, 8, 10, 12]
    assert [bool(r["val_psnr"]) for r in rows] == [False, False, False, True, False, True]
    assert all(r["loss"] and r["lr"] and r["seconds"] and r["nonpositive_ssim"] for r in rows)
    from hinas.space.genotype import Genotype

    assert Genotype.load(s / "genotype.json").provenance.get("val_protocol") == "standard"  # smoke's
    res = json.loads(hinas("eval", "--weights", t, "--sigma", "50", "--protocol", "standard", "--limit", "1",
                           "--json").stdout)
    assert set(res) >= {"psnr", "ssim", "params", "flops", "seconds", "images"}
    assert res["images"] == 1 and res["params"] > 0
    # the same numbers again: evaluation noise is seeded per image
    again = json.loads(hinas("eval", "--weights", t, "--sigma", "50", "--limit", "1", "--json").stdout)
    assert again["psnr"] == res["psnr"]
    bad = hinas("eval", "--weights", tmp_path / "nothing", "--sigma", "50", "--json", check=False)
    assert bad.returncode == 2 and "not a training run folder" in bad.stderr


def test_checkpoint_is_safe_to_load(tmp_path):
    import torch

    s = tmp_path / "s"
    hinas("search", "--profile", "smoke", "--out", s, "--quiet", "--set", "epochs=1")
    ck = torch.load(s / "checkpoint.pt", weights_only=True)
    assert {"model", "opt_w", "opt_a", "rng", "state"} <= set(ck)
    assert "arch_alpha" in ck["model"] and "arch_beta" in ck["model"]


def test_dncnn_baseline_trains(tmp_path):
    t = tmp_path / "d"
    hinas("train", "--model", "dncnn", "--task", "denoise", "--sigma", "30", "--profile", "smoke", "--out", t,
          "--quiet", "--set", "iterations=4")
    assert json.loads((t / "summary.json").read_text())["model"] == "dncnn"


def test_sr_training_on_the_embedded_photos_reads_grey_ones_as_rgb(tmp_path, monkeypatch):
    """The embedded training set holds a grey photo ('brick'); SR training takes it as equal-channel
    RGB (the rule SR evaluation applies) instead of refusing the default data."""
    from hinas.data import task_datasets
    from hinas.engine.common import training_records

    monkeypatch.delenv("HINAS_DATA", raising=False)  # the embedded photos
    assert any(r.is_grey for r in task_datasets("sr", None)["train"].records)
    cfg = RunConfig.from_profile("smoke", "sr", 2, data_root=None)
    _, records = training_records(cfg)
    assert all(r.image.ndim == 3 for r in records)
    env = {k: v for k, v in ENV.items() if k != "HINAS_DATA"}
    from hinas.space.genotype import random_genotype

    g = tmp_path / "g.json"
    random_genotype("sr", layers=cfg.layers, steps=cfg.steps, levels=cfg.levels, scale=2, seed=0).save(g)
    t = tmp_path / "sr"
    p = subprocess.run([sys.executable, "-m", "hinas", "train", "--genotype", str(g), "--task", "sr", "--scale", "2",
                        "--profile", "smoke", "--out", str(t), "--quiet", "--set", "iterations=2"],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert json.loads((t / "summary.json").read_text())["iterations"] == 2


def test_nan_loss_stops_with_clear_message_and_keeps_good_checkpoint(tmp_path):
    import torch

    out = tmp_path / "nan"
    p = hinas("search", "--profile", "smoke", "--out", out, "--quiet", "--set", "w_lr=1e12", "--set", "w_lr_min=1e12",
              check=False)
    assert p.returncode == 2 and "became nan" in p.stderr.lower() and "Traceback" not in p.stderr
    assert not (out / "summary.json").exists()
    if (out / "checkpoint.pt").exists():  # whatever was kept holds finite weights only
        ck = torch.load(out / "checkpoint.pt", weights_only=True)
        assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())


def test_training_writes_tensorboard_events_when_installed(tmp_path):
    """Optional live monitoring: with the tensorboard package, a training run leaves event files
    holding the same loss rows as history.csv."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from hinas.engine import RunConfig
    from hinas.engine.train import train
    from hinas.space.genotype import random_genotype

    cfg = RunConfig.from_profile("smoke", "denoise", quiet=True)
    g = random_genotype("denoise", layers=cfg.layers, steps=cfg.steps, seed=0)
    train(cfg, g, tmp_path / "t")
    acc = EventAccumulator(str(tmp_path / "t" / "tensorboard"))
    acc.Reload()
    losses = [e.value for e in acc.Scalars("train/loss")]
    import csv

    rows = list(csv.DictReader(open(tmp_path / "t" / "history.csv")))
    assert len(losses) == len(rows) > 0
    assert losses == pytest.approx([float(r["loss"]) for r in rows], rel=1e-5)
