"""``hinas restore``: a trained network on the user's own images (sizes, channels, tiling,
never overwriting, bad input = exit 2 with one line)."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from hinas.cli import main
from hinas.deploy.restore import tiled_forward


def _image(path, h, w, rgb, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = (127 + 80 * np.sin(xx / 5.0) * np.cos(yy / 7.0)).astype(np.float64)
    img = base[..., None] + rng.normal(0, 10, (h, w, 3)) if rgb else base + rng.normal(0, 10, (h, w))
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
    return path


def test_denoise_keeps_size_and_never_overwrites(dn_run, tmp_path, capsys):
    grey = _image(tmp_path / "grey.png", 40, 52, rgb=False)
    out = tmp_path / "out"
    assert main(["restore", str(grey), "--weights", str(dn_run), "--out", str(out), "--quiet"]) == 0
    restored = Image.open(out / "grey.png")
    assert restored.size == (52, 40) and restored.mode == "L"
    before = (out / "grey.png").read_bytes()
    capsys.readouterr()
    assert main(["restore", str(grey), "--weights", str(dn_run), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "exists" in err and "--force" in err and len(err.strip().splitlines()) == 1
    assert (out / "grey.png").read_bytes() == before
    assert main(["restore", str(grey), "--weights", str(dn_run), "--out", str(out), "--quiet", "--force"]) == 0


def test_colour_input_to_grey_denoiser_is_converted_with_a_note(dn_run, tmp_path, capsys):
    rgb = _image(tmp_path / "rgb.jpg", 33, 45, rgb=True)
    target = tmp_path / "rgb_restored.tif"
    assert main(["restore", str(rgb), "--weights", str(dn_run), "--out", str(target), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "converted to grey" in err
    out = Image.open(target)
    assert out.size == (45, 33) and out.mode == "L"


def test_sr_multiplies_size_and_keeps_grey_grey(sr_run, tmp_path):
    rgb = _image(tmp_path / "a.png", 20, 30, rgb=True)
    grey = _image(tmp_path / "b.png", 18, 22, rgb=False)
    out = tmp_path / "sr"
    assert main(["restore", str(rgb), str(grey), "--weights", str(sr_run), "--out", str(out), "--scale", "2",
                 "--quiet"]) == 0
    a, b = Image.open(out / "a.png"), Image.open(out / "b.png")
    assert (a.size, a.mode) == ((60, 40), "RGB")
    assert (b.size, b.mode) == ((44, 36), "L")
    assert main(["restore", str(rgb), "--weights", str(sr_run), "--out", str(tmp_path / "x"), "--scale", "3",
                 "--quiet"]) == 2
    assert main(["restore", str(rgb), "--weights", str(sr_run), "--out", str(tmp_path / "x"), "--sigma", "50",
                 "--quiet"]) == 2


@pytest.mark.parametrize("which", ["dn", "sr"])
def test_tiled_output_equals_untiled(which, dn_run, sr_run):
    from hinas.space.network_file import load_trained

    model, spec = load_trained(dn_run if which == "dn" else sr_run)
    scale = spec["scale"] or 1
    x = torch.rand(1, spec["in_channels"], 75, 98, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole = model(x)
        tiled = tiled_forward(model, x, tile=64, overlap=32, scale=scale)
        single = tiled_forward(model, x, tile=128, overlap=32, scale=scale)  # one tile = no tiling
    assert tiled.shape == whole.shape
    diff = (tiled - whole).abs() * 255  # in grey levels
    # zero padding at tile borders is what differs; the ramps keep it near the seams. Measured
    # on these networks and this noise input: max 0.05 (dn) / 0.8 (sr), mean 0.002 / 0.02.
    assert diff.max().item() < 2.0 and diff.mean().item() < 0.1, (diff.max().item(), diff.mean().item())
    assert torch.equal(single, whole)


def test_tiled_file_output_within_one_grey_level(dn_run, tmp_path):
    img = _image(tmp_path / "big.png", 70, 90, rgb=False)
    assert main(["restore", str(img), "--weights", str(dn_run), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert main(["restore", str(img), "--weights", str(dn_run), "--out", str(tmp_path / "b"), "--tile", "40",
                 "--overlap", "16", "--quiet"]) == 0
    a = np.asarray(Image.open(tmp_path / "a" / "big.png"), dtype=int)
    b = np.asarray(Image.open(tmp_path / "b" / "big.png"), dtype=int)
    assert np.abs(a - b).max() <= 1


def test_add_noise_is_seeded(dn_run, tmp_path):
    img = _image(tmp_path / "clean.png", 32, 32, rgb=False)
    for d in ("a", "b"):
        assert main(["restore", str(img), "--weights", str(dn_run), "--out", str(tmp_path / d), "--add-noise", "50",
                     "--seed", "3", "--quiet"]) == 0
    assert (tmp_path / "a" / "clean_noisy.png").read_bytes() == (tmp_path / "b" / "clean_noisy.png").read_bytes()
    assert (tmp_path / "a" / "clean.png").read_bytes() == (tmp_path / "b" / "clean.png").read_bytes()
    noisy = np.asarray(Image.open(tmp_path / "a" / "clean_noisy.png"), dtype=float)
    clean = np.asarray(Image.open(img), dtype=float)
    assert 30 < np.std(noisy - clean) < 60  # sigma 50, a little less after clipping to [0, 255]


def test_non_image_exits_2_with_one_line_and_writes_nothing(dn_run, tmp_path):
    good = _image(tmp_path / "good.png", 24, 24, rgb=False)
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "-m", "hinas", "restore", str(good), str(bad), "--weights", str(dn_run),
                        "--out", str(out), "--quiet"], capture_output=True, text=True)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hinas: error:") and "notes.png" in lines[0], p.stderr
    assert not out.exists()  # validated before the first write
    assert main(["restore", str(tmp_path / "missing.png"), "--weights", str(dn_run), "--out", str(out)]) == 2
    assert main(["restore", str(good), "--weights", str(tmp_path), "--out", str(out)]) == 2  # not a run folder


# ------------------------------------------------- issue 23: refused before anything is written
def _refused(capsys, *args, contains=()):
    """A refused command: exit 2, exactly one line on stderr naming what is asked, no traceback."""
    capsys.readouterr()
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert rc == 2, (rc, out, err)
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("hinas: error: ") and "Traceback" not in err, err
    for c in contains:
        assert c.lower() in lines[0].lower(), (c, lines[0])
    return lines[0]


def _files(folder):
    return {str(p.relative_to(folder)): (p.is_symlink(), p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


def test_output_that_is_an_input_is_refused_even_with_force(dn_run, tmp_path, capsys):
    img = _image(tmp_path / "x.png", 24, 24, rgb=False)
    (tmp_path / "link.png").symlink_to(img)
    os.link(img, tmp_path / "hard.png")
    before = _files(tmp_path)
    run = ["restore", "--weights", dn_run, "--quiet", "--force"]
    _refused(capsys, *run, img, "--out", img, contains=("x.png", "input", "--out"))
    _refused(capsys, *run, img, "--out", tmp_path / "link.png", contains=("link.png", "x.png"))  # symbolic link
    _refused(capsys, *run, img, "--out", tmp_path / "hard.png", contains=("hard.png", "x.png"))  # hard link
    _refused(capsys, *run, tmp_path / "link.png", "--out", img, contains=("x.png",))
    # --out a folder that is the input folder, or that leads there through a link
    (tmp_path / "alias").symlink_to(tmp_path, target_is_directory=True)
    _refused(capsys, *run, tmp_path, "--out", tmp_path, contains=("input",))
    _refused(capsys, *run, img, "--out", tmp_path / "alias", contains=("x.png", "input"))
    assert {k: v for k, v in _files(tmp_path).items() if not k.startswith("alias")} == before


def test_output_inside_an_input_folder_is_refused(dn_run, tmp_path, capsys):
    folder = tmp_path / "scans"
    folder.mkdir()
    _image(folder / "a.jpg", 24, 24, rgb=True)
    line = _refused(capsys, "restore", folder, "--weights", dn_run, "--out", folder / "restored", "--quiet",
                    contains=("inside the input folder", "scans"))
    assert "restored" in line
    assert sorted(p.name for p in folder.iterdir()) == ["a.jpg"]
    # the same through a link to the folder
    (tmp_path / "view").symlink_to(folder, target_is_directory=True)
    _refused(capsys, "restore", folder, "--weights", dn_run, "--out", tmp_path / "view" / "out", "--quiet",
             contains=("inside the input folder",))
    assert sorted(p.name for p in folder.iterdir()) == ["a.jpg"]


@pytest.mark.parametrize("option,value", [("--add-noise", "nan"), ("--add-noise", "inf"), ("--add-noise", "-5"),
                                          ("--add-noise", "1e9"), ("--sigma", "nan"), ("--sigma", "-inf")])
def test_bad_noise_levels_are_refused_before_any_write(dn_run, tmp_path, capsys, option, value):
    img = _image(tmp_path / "clean.png", 24, 24, rgb=False)
    out = tmp_path / "out"
    _refused(capsys, "restore", img, "--weights", dn_run, "--out", out, f"{option}={value}", "--quiet",
             contains=(option, "0 and 255"))
    assert not out.exists()


@pytest.mark.parametrize("device", ["tpu", "cuda:7", "cuda:x", ""])
def test_bad_devices_are_refused_up_front(dn_run, tmp_path, capsys, device):
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    img = _image(tmp_path / "a.png", 24, 24, rgb=False)
    out = tmp_path / "out"
    _refused(capsys, "restore", img, "--weights", dn_run, "--out", out, "--device", device, "--quiet",
             contains=("device",))
    assert not out.exists()


def test_a_failed_write_names_the_file_and_leaves_no_part_file(dn_run, tmp_path, capsys, monkeypatch):
    import errno

    from PIL import Image as PILImage

    img = _image(tmp_path / "a.png", 24, 24, rgb=False)
    out = tmp_path / "out"
    real_save = PILImage.Image.save

    def full_disk(self, fp, *a, **k):
        real_save(self, fp, *a, **k)  # a part file exists, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(PILImage.Image, "save", full_disk)
    _refused(capsys, "restore", img, "--weights", dn_run, "--out", out, "--quiet",
             contains=(str(out / "a.png"), "No space left", "free some disk space"))
    assert list(out.iterdir()) == []


def test_trained_sigma_reads_config_yaml_within_bounds(tmp_path):
    """Only a note depends on the run's config.yaml: an oversized, broken or odd one gives no
    sigma, never a traceback or an unbounded read."""
    from hinas.deploy.restore import _trained_sigma
    from hinas.safeio import MAX_YAML_BYTES

    assert _trained_sigma(tmp_path) is None
    (tmp_path / "config.yaml").write_text("sigma: [50, 30]\n")
    assert _trained_sigma(tmp_path) == [50.0, 30.0]
    for text in ("sigma: [.inf, 50]\n", "sigma: fifty\n", "- a\n- b\n", "sigma: [\n"):
        (tmp_path / "config.yaml").write_text(text)
        assert _trained_sigma(tmp_path) in (None, [50.0])
    (tmp_path / "config.yaml").write_text("sigma: [50]\n#" + "x" * MAX_YAML_BYTES + "\n")
    assert _trained_sigma(tmp_path) is None
