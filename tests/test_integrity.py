"""Run folders that cannot be corrupted or silently mixed; hostile input refused in one line.

Each case of issue 11 has a test here. Commands run in-process through ``hinas.cli.main`` (the
same code path as the console script, minus the interpreter start) on the smoke profile and
tiny images, so the whole file takes seconds. The rule checked throughout: a refused command
exits 2 with exactly one line on stderr, no traceback, and leaves the run folder
byte-identical.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hinas.cli import main
from hinas.engine import common, runfolder
from hinas.engine.config import RunConfig
from hinas.errors import ConfigError, HinasError
from hinas.space.genotype import Genotype, random_genotype

SMOKE = ["--profile", "smoke", "--quiet"]


# ------------------------------------------------------------------------------------------ helpers
def hinas(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def refused(capsys, *args, contains: str = "") -> str:
    """Run a command that must be refused: exit 2, one line, no traceback; returns the line."""
    rc, out, err = hinas(capsys, *args)
    assert rc == 2, (rc, out, err)
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("hinas: error: "), err
    assert "Traceback" not in err
    assert contains.lower() in err.lower(), err
    return lines[0]


def folder_hash(folder: Path) -> dict:
    """Every file under ``folder`` (hidden and temporary ones too) with the sha256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _write_image(path: Path, size=(40, 40), seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = (np.random.default_rng(seed).random((size[1], size[0], 3)) * 255).astype("uint8")
    Image.fromarray(arr).save(path)


def tiny_data_root(root: Path) -> Path:
    """A BSDS500-shaped data root with a few 64x64 images (enough for the smoke profile)."""
    for split, n in (("train", 6), ("val", 3), ("test", 2)):
        for i in range(n):
            _write_image(root / "BSDS500" / split / f"{split}{i}.png", (64, 64), seed=hash((split, i)) % 1000)
    return root


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny, valid-looking PNG whose header claims width x height pixels (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\x00" * 1024)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


@pytest.fixture(autouse=True)
def _embedded_data(monkeypatch):
    monkeypatch.delenv("HINAS_DATA", raising=False)  # the embedded photos unless a test says otherwise


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One finished smoke search and one finished smoke training, shared by the tests."""
    root = tmp_path_factory.mktemp("runs")
    saved = os.environ.pop("HINAS_DATA", None)
    try:
        assert main(["search", *SMOKE, "--out", str(root / "s"), "--set", "epochs=2"]) == 0
        assert main(["train", *SMOKE, "--genotype", str(root / "s" / "genotype.json"), "--out", str(root / "t"),
                     "--set", "iterations=4"]) == 0
    finally:
        if saved is not None:
            os.environ["HINAS_DATA"] = saved
    return root


def copy_run(runs, name, tmp_path) -> Path:
    dst = tmp_path / name
    shutil.copytree(runs / name, dst)
    return dst


# ------------------------------------------------------------------ 1, 2: another genotype on resume
def test_train_resume_with_genotype_of_another_shape_is_refused_before_any_write(runs, tmp_path, capsys):
    t = copy_run(runs, "t", tmp_path)
    other = random_genotype("denoise", layers=3, steps=3, seed=5)
    g = other.save(tmp_path / "other.json")
    before = folder_hash(t)
    refused(capsys, "train", *SMOKE, "--genotype", g, "--out", t, "--resume", "--set", "iterations=4",
            contains="genotype")
    assert folder_hash(t) == before
    # the finished run still evaluates
    rc, out, _ = hinas(capsys, "eval", "--weights", t, "--sigma", "50", "--limit", "1", "--json")
    assert rc == 0 and math.isfinite(json.loads(out)["psnr"])


def test_train_resume_with_another_genotype_of_the_same_shape_is_refused(runs, tmp_path, capsys):
    t = copy_run(runs, "t", tmp_path)
    g0 = Genotype.load(t / "genotype.json")
    cells = [list(c) for c in g0.cells]
    op, j = cells[0][0]
    cells[0][0] = ("conv_3x3" if op != "conv_3x3" else "sep_conv_3x3", j)
    same_shape = Genotype(task=g0.task, steps=g0.steps, cells=cells, path=g0.path, width_factors=g0.width_factors)
    g = same_shape.save(tmp_path / "same_shape.json")
    before = folder_hash(t)
    line = refused(capsys, "train", *SMOKE, "--genotype", g, "--out", t, "--resume", "--set", "iterations=4",
                   contains="genotype")
    assert "another architecture" in line
    assert folder_hash(t) == before
    # the same genotype with another provenance is the same network: accepted
    relabelled = Genotype.from_dict(dict(g0.to_dict(), provenance={"note": "copied"}))
    rc, _, err = hinas(capsys, "train", *SMOKE, "--genotype", relabelled.save(tmp_path / "g.json"), "--out", t,
                       "--resume", "--set", "iterations=4")
    assert rc == 0, err


# ------------------------------------------------------------------------------ 3: concurrent runs
def test_a_second_run_on_a_held_folder_exits_2_at_once(runs, tmp_path, capsys):
    s = copy_run(runs, "s", tmp_path)
    before = folder_hash(s)
    holder = runfolder.RunFolder(s, "search", resume=True)
    holder._lock()
    try:
        refused(capsys, "search", *SMOKE, "--out", s, "--resume", "--set", "epochs=2", contains="another hinas run")
        new = tmp_path / "new"
        fresh = runfolder.RunFolder(new, "search", resume=False)
        fresh._lock()
        try:
            refused(capsys, "search", *SMOKE, "--out", new, "--set", "seed=1", contains="another hinas run")
        finally:
            fresh.release()
    finally:
        holder.release()
    assert folder_hash(s) == before


@pytest.mark.slow
def test_two_searches_started_together_one_wins(tmp_path):
    out = tmp_path / "same"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("HINAS_DATA", None)
    procs = [subprocess.Popen([sys.executable, "-m", "hinas", "search", "--profile", "smoke", "--quiet", "--out",
                               str(out), "--set", f"seed={seed}", "--set", "epochs=2"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for seed in (1, 2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 2], results
    loser = [err for rc, err in results if rc == 2][0]
    assert ("another hinas run" in loser or "already exists" in loser) and "Traceback" not in loser
    seed = json.loads((out / "summary.json").read_text())["seed"]
    assert f"seed: {seed}" in (out / "config.yaml").read_text()


# ---------------------------------------------------------------------------- 4: data changed
def test_resume_with_another_data_source_or_changed_files_is_refused(tmp_path, capsys, monkeypatch):
    data = tiny_data_root(tmp_path / "data")
    s = tmp_path / "s"
    assert hinas(capsys, "search", *SMOKE, "--out", s, "--data-root", data, "--set", "epochs=1")[0] == 0
    before = folder_hash(s)
    # HINAS_DATA unset, no --data-root: the embedded photos would be mixed in
    refused(capsys, "search", *SMOKE, "--out", s, "--resume", "--set", "epochs=1", contains="data root")
    # another copy of the same files is another root
    shutil.copytree(data, tmp_path / "copy")
    refused(capsys, "search", *SMOKE, "--out", s, "--resume", "--set", "epochs=1", "--data-root",
            tmp_path / "copy", contains="data root")
    # the same root through HINAS_DATA is the same data
    monkeypatch.setenv("HINAS_DATA", str(data))
    train = data / "BSDS500" / "train"
    # an image added (even one the run does not reach with max_images) or resized
    _write_image(train / "zz_new.png", (64, 64), seed=5)
    refused(capsys, "search", *SMOKE, "--out", s, "--resume", "--set", "epochs=1", contains="data files")
    (train / "zz_new.png").unlink()
    _write_image(train / "train0.png", (64, 48), seed=5)
    refused(capsys, "search", *SMOKE, "--out", s, "--resume", "--set", "epochs=1", contains="data files")
    assert folder_hash(s) == before
    # a refused new run leaves no folders behind, parents included
    refused(capsys, "search", *SMOKE, "--out", tmp_path / "a" / "b" / "c", "--data-root", tmp_path / "nowhere")
    assert not (tmp_path / "a").exists()


def test_resume_after_an_image_was_edited_in_place_is_refused(tmp_path, capsys):
    data = tmp_path / "data"
    for split, n in (("train", 6), ("val", 3), ("test", 2)):
        for i in range(n):
            path = data / "BSDS500" / split / f"{split}{i}.bmp"  # BMP: same size whatever the pixels
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray((np.random.default_rng(i).random((64, 64, 3)) * 255).astype("uint8")).save(path)
    s = tmp_path / "s"
    assert hinas(capsys, "search", *SMOKE, "--out", s, "--data-root", data, "--set", "epochs=1")[0] == 0
    victim = data / "BSDS500" / "train" / "train1.bmp"
    size = victim.stat().st_size
    Image.fromarray(np.full((64, 64, 3), 7, dtype="uint8")).save(victim)
    assert victim.stat().st_size == size
    before = folder_hash(s)
    refused(capsys, "search", *SMOKE, "--out", s, "--data-root", data, "--resume", "--set", "epochs=1",
            contains="image content")
    assert folder_hash(s) == before


# ------------------------------------------------------------------- 5: config.yaml is only a copy
def test_deleting_or_breaking_config_yaml_does_not_disable_the_check(runs, tmp_path, capsys):
    s = copy_run(runs, "s", tmp_path)
    (s / "config.yaml").unlink()
    before = folder_hash(s)
    line = refused(capsys, "search", *SMOKE, "--out", s, "--resume", "--set", "epochs=2", "--seed", "7",
                   contains="seed")
    assert "run 0, now 7" in line
    assert folder_hash(s) == before
    (s / "config.yaml").write_text("{{{ not: yaml: [")
    before = folder_hash(s)
    refused(capsys, "search", *SMOKE, "--out", s, "--resume", "--set", "epochs=2", "--seed", "7", contains="seed")
    assert folder_hash(s) == before
    # the matching resume works from the checkpoint alone, and heals the readable copy
    rc, _, err = hinas(capsys, "search", *SMOKE, "--out", s, "--resume", "--set", "epochs=2")
    assert rc == 0, err
    assert RunConfig.from_dict(__import__("yaml").safe_load((s / "config.yaml").read_text())).seed == 0


def test_resume_restores_missing_readable_copies(runs, tmp_path, capsys):
    """A run killed between its first checkpoint and its readable copies still evaluates after --resume."""
    t = copy_run(runs, "t", tmp_path)
    for name in ("network.json", "genotype.json", "config.yaml", "environment.json"):
        (t / name).unlink()
    rc, _, err = hinas(capsys, "train", *SMOKE, "--genotype", runs / "t" / "genotype.json", "--out", t, "--resume",
                       "--set", "iterations=4")
    assert rc == 0, err
    assert json.loads((t / "network.json").read_text()) == json.loads((runs / "t" / "network.json").read_text())
    rc, out, err = hinas(capsys, "eval", "--weights", t, "--sigma", "50", "--limit", "1", "--json")
    assert rc == 0, err
    s = copy_run(runs, "s", tmp_path)
    for name in ("summary.json", "genotype.json"):
        (s / name).unlink()
    rc, _, err = hinas(capsys, "search", *SMOKE, "--out", s, "--resume", "--set", "epochs=2")
    assert rc == 0, err
    assert Genotype.load(s / "genotype.json").architecture() == Genotype.load(runs / "s" / "genotype.json").architecture()
    assert json.loads((s / "summary.json").read_text())["best_epoch"] == 2


def test_execution_settings_may_change_on_resume(runs, tmp_path, capsys):
    s = copy_run(runs, "s", tmp_path)
    rc, _, err = hinas(capsys, "search", *SMOKE, "--out", s, "--resume", "--set", "epochs=2",
                       "--set", "log_every=1", "--set", "checkpoint_every=3", "--set", "threads=2")
    assert rc == 0, err


def test_resume_without_checkpoint_never_restarts_over_earlier_work(runs, tmp_path, capsys):
    s = copy_run(runs, "s", tmp_path)
    (s / "checkpoint.pt").unlink()
    before = folder_hash(s)
    refused(capsys, "search", *SMOKE, "--out", s, "--resume", "--set", "epochs=2", contains="no checkpoint.pt")
    assert folder_hash(s) == before
    # an empty folder: said out loud, then a new run
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, _, err = hinas(capsys, "search", "--profile", "smoke", "--out", empty, "--resume", "--set", "epochs=1")
    assert rc == 0 and "starting a new run" in err


def test_a_checkpoint_from_another_kind_of_run_is_refused(runs, tmp_path, capsys):
    s = copy_run(runs, "s", tmp_path)
    shutil.copy(runs / "t" / "checkpoint.pt", s / "checkpoint.pt")
    before = folder_hash(s)
    refused(capsys, "search", *SMOKE, "--out", s, "--resume", "--set", "epochs=2", contains="train run")
    (s / "checkpoint.pt").write_bytes(b"garbage")
    refused(capsys, "search", *SMOKE, "--out", s, "--resume", "--set", "epochs=2", contains="cannot load")
    assert set(folder_hash(s)) == set(before)


def test_hostile_checkpoint_contents_are_refused(runs, tmp_path, capsys):
    s = copy_run(runs, "s", tmp_path)
    good = torch.load(s / "checkpoint.pt", weights_only=True)
    for change in ({"identity": dict(good["identity"], settings=[1, 2])}, {"identity": "x"},
                   {"state": dict(good["state"], epoch="one", finished=False)}, {"model": {"w": 1}},
                   {"rng": {"torch": 5}}):
        torch.save(dict(good, **change), s / "checkpoint.pt")
        before = folder_hash(s)
        refused(capsys, "search", *SMOKE, "--out", s, "--resume", "--set", "epochs=2")
        assert folder_hash(s) == before


def test_identity_lives_in_the_checkpoint(runs):
    ck = torch.load(runs / "t" / "checkpoint.pt", weights_only=True)
    ident = ck["identity"]
    assert ident["kind"] == "train" and ident["genotype"] and ident["data"]["root"] == "embedded images"
    assert "seed" in ident["settings"] and "device" not in ident["settings"]
    assert {"model", "opt", "stream", "rng", "state"} <= set(ck)


# ----------------------------------------------------------------------------- 6: links out of --from
def test_download_from_refuses_links_leading_outside(tmp_path):
    script = Path(__file__).resolve().parents[1] / "data_scripts" / "download.py"
    secret = tmp_path / "elsewhere" / "secret.png"
    _write_image(secret)
    src = tmp_path / "copy" / "Set5"
    _write_image(src / "a.png")
    (src / "b.png").symlink_to(secret)
    p = subprocess.run([sys.executable, str(script), "Set5", "--from", str(tmp_path / "copy"), "--root",
                        str(tmp_path / "data")], capture_output=True, text=True)
    assert p.returncode == 2 and "outside the folder" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "data" / "Set5").exists()
    # a link to a folder outside, too
    (src / "b.png").unlink()
    (src / "more").symlink_to(secret.parent, target_is_directory=True)
    p = subprocess.run([sys.executable, str(script), "Set5", "--from", str(tmp_path / "copy"), "--root",
                        str(tmp_path / "data")], capture_output=True, text=True)
    assert p.returncode == 2 and "outside the folder" in p.stderr
    # a link inside the folder (to an image beside it, or a folder) is not installed either (issue 34)
    (src / "more").unlink()
    for link, target in ((src / "b.png", src / "a.png"), (tmp_path / "copy" / "Set5_HR", src)):
        link.symlink_to(target, target_is_directory=target.is_dir())
        p = subprocess.run([sys.executable, str(script), "Set5", "--from", str(tmp_path / "copy"), "--root",
                            str(tmp_path / "data")], capture_output=True, text=True)
        assert p.returncode == 2 and str(link) in p.stderr and "copy the real file in" in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1 and not (tmp_path / "data").exists()
        link.unlink()


# ------------------------------------------------------------------------------------ 7: bombs
def test_decompression_bomb_is_one_line_naming_the_file(tmp_path, capsys):
    folder = tmp_path / "imgs"
    _write_image(folder / "ok.png", (32, 32))
    png_claiming(folder / "bomb.png", 20000, 20000)
    line = refused(capsys, "eval", "bicubic", "--scale", "2", "--dataset", folder, contains="bomb.png")
    assert "pixels" in line
    png_claiming(folder / "bomb.png", 9000, 9000)  # below PIL's own guard, above hinas's
    refused(capsys, "eval", "bicubic", "--scale", "2", "--dataset", folder, contains="bomb.png")


def test_decompression_bomb_in_training_data_is_refused_before_the_run_folder(tmp_path, capsys):
    data = tiny_data_root(tmp_path / "data")
    png_claiming(data / "BSDS500" / "train" / "zbomb.png", 20000, 20000)
    out = tmp_path / "s"
    refused(capsys, "search", *SMOKE, "--out", out, "--data-root", data, contains="zbomb.png")
    assert not out.exists()


def test_images_too_small_to_validate_are_refused_before_the_run_folder(tmp_path, capsys):
    data = tiny_data_root(tmp_path / "data")
    _write_image(data / "BSDS500" / "val" / "val1.png", (8, 8))
    out = tmp_path / "t"
    refused(capsys, "train", *SMOKE, "--model", "dncnn", "--out", out, "--data-root", data, contains="val1.png")
    assert not out.exists()


def test_archive_bomb_is_refused_before_extraction(tmp_path, monkeypatch):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data_scripts"))
    import download

    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("Set5/zeros.png", b"\0" * (4 << 20))
    monkeypatch.setenv("HINAS_MAX_EXTRACT_BYTES", str(1 << 20))
    with pytest.raises(download.DownloadError, match="limit"):
        download.safe_extract(archive, tmp_path / "x")
    assert not any((tmp_path / "x").rglob("*.png"))
    tar = tmp_path / "bomb.tar.gz"
    with tarfile.open(tar, "w:gz") as tf:
        info = tarfile.TarInfo("Set5/zeros.png")
        info.size = 4 << 20
        tf.addfile(info, io.BytesIO(b"\0" * info.size))
    with pytest.raises(download.DownloadError, match="limit"):
        download.safe_extract(tar, tmp_path / "y")
    # more than the free space: refused even under the cap
    monkeypatch.setenv("HINAS_MAX_EXTRACT_BYTES", str(1 << 60))
    monkeypatch.setattr(download.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10, 10, 1 << 20))
    with pytest.raises(download.DownloadError, match="free"):
        download.safe_extract(archive, tmp_path / "z")


# ------------------------------------------------------------------------------- 8: non-finite
def test_nan_weights_are_not_scored(runs, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    t = copy_run(runs, "t", tmp_path)
    w = load_file(str(t / "weights.safetensors"))
    name = next(k for k, v in w.items() if v.is_floating_point() and v.numel() > 1)
    w[name][0] = float("nan")
    save_file(w, str(t / "weights.safetensors"))
    line = refused(capsys, "eval", "--weights", t, "--sigma", "50", "--limit", "1", contains="NaN")
    assert "weights.safetensors" in line
    w[name][0] = float("inf")
    save_file(w, str(t / "weights.safetensors"))
    refused(capsys, "eval", "--weights", t, "--sigma", "50", "--limit", "1", contains="infinite")


def test_resume_from_a_checkpoint_with_nan_weights_is_refused(runs, tmp_path, capsys):
    s = copy_run(runs, "s", tmp_path)
    ck = torch.load(s / "checkpoint.pt", weights_only=True)
    ck["state"]["finished"] = False
    name = next(k for k, v in ck["model"].items() if v.is_floating_point())
    ck["model"][name].view(-1)[0] = float("nan")
    torch.save(ck, s / "checkpoint.pt")
    before = folder_hash(s)
    refused(capsys, "search", *SMOKE, "--out", s, "--resume", "--set", "epochs=2", contains="NaN")
    assert folder_hash(s) == before


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_sigma_and_settings_are_refused_by_name(value, tmp_path, capsys):
    refused(capsys, "eval", "bm3d", f"--sigma={value}", "--limit", "1", contains="--sigma")
    for setting in ("train_lr", "w_lr", "sigma", "val_fraction", "grad_clip"):
        out = tmp_path / setting
        refused(capsys, "train", *SMOKE, "--model", "dncnn", "--out", out, "--set", f"{setting}={value}",
                contains=setting)
        assert not out.exists()
    with pytest.raises(ConfigError, match="epochs"):
        RunConfig.from_profile("smoke", epochs=float(value))


def test_non_finite_outputs_and_zero_sigma_are_not_scored(capsys):
    from hinas.eval.evaluation import evaluate

    with pytest.raises(HinasError, match="NaN or infinite"):
        evaluate(lambda x: x * float("nan"), "embedded-test", "denoise", sigma=25, limit=1)
    refused(capsys, "eval", "bm3d", "--sigma", "0", "--limit", "1", contains="--sigma")


def test_divergence_message_is_truthful_about_the_checkpoint(tmp_path):
    assert "no checkpoint was written" in common.kept_checkpoint(tmp_path / "checkpoint.pt")
    (tmp_path / "checkpoint.pt").write_bytes(b"x")
    assert "kept in" in common.kept_checkpoint(tmp_path / "checkpoint.pt")


# --------------------------------------------------------------------- 9: one line, never a traceback
def test_hostile_genotype_files(tmp_path, capsys):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    refused(capsys, "describe", deep, contains="deep.json")
    huge_int = tmp_path / "int.json"
    huge_int.write_text('{"schema_version": 1, "steps": ' + "9" * 50_000 + "}")
    refused(capsys, "describe", huge_int, contains="int.json")
    big = tmp_path / "big.json"
    big.write_text(" " * (5 << 20))
    refused(capsys, "describe", big, contains="too large")
    refused(capsys, "describe", tmp_path, contains="folder")
    layers = random_genotype("denoise", layers=3, seed=1).to_dict()
    layers["path"] = [0] * 3000
    layers["cells"] = layers["cells"][:1] * 3000
    (tmp_path / "long.json").write_text(json.dumps(layers))
    refused(capsys, "describe", tmp_path / "long.json", contains="layers")
    g = random_genotype("denoise", seed=1).to_dict()
    for field, value, word in (("width_factors", [float("nan"), 1.5, 2.0], "finite"),
                               ("width_factors", [-1.0, 1.5, 2.0], "width_factors"),
                               ("width_factors", [0, 1.5, 2.0], "width_factors"),
                               ("in_channels", -3, "in_channels"),
                               ("in_channels", 2, "in_channels")):
        bad = tmp_path / f"{field}.json"
        bad.write_text(json.dumps(dict(g, **{field: value})))
        refused(capsys, "describe", bad, contains=word)


def test_describe_size_and_f_are_bounded(runs, capsys):
    g = runs / "s" / "genotype.json"
    refused(capsys, "describe", g, "--size", "100000", "100000", contains="--size")
    refused(capsys, "describe", g, "--size", "0", "64", contains="--size")
    refused(capsys, "describe", g, "--f", "10000000", contains="f must be")


def test_hostile_network_json(runs, tmp_path, capsys):
    for content, word in (("[1, 2, 3]", "JSON object"), ('{"model": "alien"}', "model"),
                          (None, "f must be")):
        t = copy_run(runs, "t", tmp_path / word.replace(" ", "_"))
        if content is None:
            spec = json.loads((t / "network.json").read_text())
            spec["f"] = 10_000_000
            content = json.dumps(spec)
        (t / "network.json").write_text(content)
        refused(capsys, "eval", "--weights", t, "--sigma", "50", "--limit", "1", contains=word)


def test_hostile_config_files_and_out_paths(tmp_path, capsys):
    refused(capsys, "search", "--config", tmp_path, "--out", tmp_path / "r", contains="folder")
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [unclosed\n")
    refused(capsys, "search", "--config", bad, "--out", tmp_path / "r", contains="YAML")
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    refused(capsys, "search", "--config", deep, "--out", tmp_path / "r", contains="deep.yaml")
    laughs = tmp_path / "laughs.yaml"
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    laughs.write_text("\n".join(lines) + "\nsigma: *a9\n")
    refused(capsys, "search", "--config", laughs, "--out", tmp_path / "r", contains="laughs.yaml")
    keys = tmp_path / "keys.yaml"
    keys.write_text("1: 2\n")
    refused(capsys, "search", "--config", keys, "--out", tmp_path / "r", contains="keys.yaml")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    refused(capsys, "search", *SMOKE, "--out", a_file, contains="is a file")
    refused(capsys, "search", *SMOKE, "--out", a_file / "sub", contains="")
    assert a_file.read_text() == "x"


def test_full_disk_is_one_line_and_keeps_the_last_checkpoint(tmp_path, capsys, monkeypatch):
    import errno

    real = common.write_bytes_durably
    calls = []

    def full_after_first(path, data):  # the run's first checkpoint fits, then the disk is full
        calls.append(path)
        if len(calls) == 1:
            return real(path, data)
        tmp = Path(path).with_name(Path(path).name + ".tmp")
        tmp.write_bytes(bytes(data)[:10])
        tmp.unlink()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))

    s = tmp_path / "s"
    monkeypatch.setattr(common, "write_bytes_durably", full_after_first)
    line = refused(capsys, "search", *SMOKE, "--out", s, "--set", "epochs=2", contains="space")
    assert "checkpoint.pt.tmp" in line and "--resume" in line
    monkeypatch.setattr(common, "write_bytes_durably", real)
    ck = torch.load(s / "checkpoint.pt", weights_only=True)
    assert ck["state"]["global_step"] == 0 and not list(s.glob("*.tmp"))
    rc, _, err = hinas(capsys, "search", *SMOKE, "--out", s, "--resume", "--set", "epochs=2")
    assert rc == 0, err
    # a new run whose very first write fails leaves no folder behind
    monkeypatch.setattr(common, "write_bytes_durably", lambda p, d: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(p))))
    refused(capsys, "search", *SMOKE, "--out", tmp_path / "new", "--set", "epochs=1", contains="space")
    assert not (tmp_path / "new").exists()


def test_real_bugs_keep_their_traceback(monkeypatch):
    import hinas.cli.model as mc

    monkeypatch.setattr(mc, "describe", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main(["describe", "whatever.json"])


# ------------------------------------------------------------------------- 10: silently accepted
def test_settings_that_were_silently_accepted(tmp_path, capsys):
    out = tmp_path / "r"
    refused(capsys, "search", *SMOKE, "--out", out, "--set", "max_images=0", contains="max_images")
    refused(capsys, "search", *SMOKE, "--out", out, "--set", "val_fraction=1.5", contains="val_fraction")
    refused(capsys, "search", *SMOKE, "--out", out, "--set", "val_fraction=0", contains="val_fraction")
    refused(capsys, "search", *SMOKE, "--out", out, "--task", "sr", "--scale", "7", contains="scale")
    refused(capsys, "search", *SMOKE, "--out", out, "--scale", "7", contains="--scale")
    refused(capsys, "eval", "bicubic", "--scale", "7", "--limit", "1", contains="--scale")
    refused(capsys, "search", *SMOKE, "--out", out, "--set", "f=100000", contains="'f'")
    refused(capsys, "search", *SMOKE, "--out", out, "--set", "f=256", "--set", "steps=16", contains="supernet")
    refused(capsys, "search", *SMOKE, "--out", out, "--set", "epochs=1e400", contains="epochs")
    cfg = Path(__file__).resolve().parents[1] / "hinas" / "configs" / "denoise_sigma50.yaml"
    refused(capsys, "search", "--profile", "smoke", "--config", cfg, "--out", out, contains="--profile or --config")
    assert not out.exists()


def test_eval_save_refuses_to_overwrite_without_force(tmp_path, capsys):
    target = tmp_path / "result.json"
    target.write_text("precious")
    refused(capsys, "eval", "bicubic", "--scale", "2", "--limit", "1", "--save", target, contains="--force")
    assert target.read_text() == "precious"
    rc, _, err = hinas(capsys, "eval", "bicubic", "--scale", "2", "--limit", "1", "--save", target, "--force")
    assert rc == 0, err
    assert json.loads(target.read_text())["scale"] == 2


def test_file_names_are_printed_without_control_characters(tmp_path, capsys):
    evil = tmp_path / "evil\n\x1b[31mname.json"
    evil.write_text("{not json")
    line = refused(capsys, "describe", evil)
    assert "\x1b" not in line and "\\x1b" in line and "\\n" in line
    rc, _, err = hinas(capsys, "describe", tmp_path / "gone\x1b[2J.json")
    assert rc == 2 and "\x1b" not in err and err.count("\n") == 1


# ---------------------------------------------------------------------------------- structure
def test_deterministic_algorithms_are_scoped_to_the_run(runs, tmp_path, capsys):
    assert not torch.are_deterministic_algorithms_enabled()
    assert hinas(capsys, "search", *SMOKE, "--out", tmp_path / "s", "--set", "epochs=1")[0] == 0
    assert not torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        with common.deterministic(True):
            assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


def _imports(path: Path, package_root: Path) -> set[str]:
    import ast

    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):  # lazy imports inside functions count too
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hinas"):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("hinas"))
    return names


def test_no_module_pairs_import_each_other():
    root = Path(__file__).resolve().parents[1] / "hinas"
    graph = {}
    for p in root.rglob("*.py"):
        mod = ".".join(p.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")
        graph[mod] = _imports(p, root)

    def unit(m):  # a package counts as one unit
        return "hinas.engine" if m.startswith("hinas.engine") else m

    edges = {(unit(a), unit(b)) for a, bs in graph.items() for b in bs if unit(a) != unit(b)}
    for a, b in (("hinas.engine", "hinas.eval.evaluation"), ("hinas.space.genotype", "hinas.space.supernet")):
        assert not ((a, b) in edges and (b, a) in edges), f"{a} and {b} import each other"
    assert not (root / "engine" / "evaluate.py").exists(), "one evaluation module: hinas/eval/evaluation.py"
