"""Chapter 6's pictures (hinas.book.pictures): shown on every build, the paper's BSD200 examples
when the data root holds them, else the embedded test photos, each panel titled with the very
per-image score an evaluation of the same network gives for that image."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from hinas.book import pictures  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GPU = REPO / "results" / "paper"
SPEC = {"model": "blur", "task": "denoise", "in_channels": 1}


def _blur():
    """A 3x3 box filter: a denoiser that costs nothing, so whole images can be scored twice."""
    net = torch.nn.Conv2d(1, 1, 3, padding=1, padding_mode="replicate", bias=False)
    with torch.no_grad():
        net.weight.fill_(1 / 9)
    return net.eval()


@pytest.fixture
def blur_run(tmp_path, monkeypatch):
    """A run folder whose network is the box filter (``load_trained`` patched where both the
    pictures and ``evaluate_run`` import it), with files for the picture cache's key."""
    import hinas.space.network_file

    folder = tmp_path / "blur-run"
    folder.mkdir()
    (folder / "network.json").write_text(json.dumps(SPEC))
    (folder / "weights.safetensors").write_bytes(b"box filter")
    monkeypatch.setattr(hinas.space.network_file, "load_trained", lambda run_dir, which="best", device="cpu": (_blur(), SPEC))
    monkeypatch.delenv("HINAS_DATA", raising=False)  # the build without data
    return folder


def test_without_bsd200_the_embedded_photos_are_shown_with_the_evaluations_scores(blur_run, tmp_path):
    from hinas.engine import evaluate_run
    from hinas.eval.evaluation import evaluate

    shown = pictures.picture_set({"blur": blur_run}, None, sigma=50.0)
    results = shown["results"]
    assert len(results) >= 3 and {r["dataset"] for r in results} == {"embedded-test"}
    ev = {r["name"]: (r["psnr"], r["ssim"]) for r in evaluate_run(blur_run, "embedded-test", sigma=50.0)["per_image"]}
    noisy = {r["name"]: (r["psnr"], r["ssim"])
             for r in evaluate(lambda x: x, "embedded-test", "denoise", sigma=50.0)["per_image"]}
    assert [r["name"] for r in results] == list(ev)
    for r in results:
        assert set(r["images"]) == {"noisy input", "blur"}  # no BM3D on the embedded photos
        assert r["scores"]["blur"] == pytest.approx(ev[r["name"]], abs=1e-9)
        assert r["scores"]["noisy input"] == pytest.approx(noisy[r["name"]], abs=1e-9)
        assert r["scores"]["blur"][0] > r["scores"]["noisy input"][0]  # the box filter does denoise
        side = min(pictures.CROP, *r["clean"].shape)
        assert r["clean"].shape == r["images"]["blur"].shape == (side, side)  # the figure's crop only
    # the line under the figures says which images and why
    note = shown["note"]
    assert "embedded-test" in note and "not available to this build" in note and "not comparable" in note
    assert all(r["name"] in note for r in results) and "`HINAS_DATA` is not set" in note


def test_a_data_root_without_bsd200_falls_back_and_says_why(blur_run, tmp_path):
    empty = tmp_path / "data"
    empty.mkdir()
    shown = pictures.picture_set({"blur": blur_run}, str(empty), sigma=50.0)
    assert len(shown["results"]) >= 3 and "not available to this build" in shown["note"]
    assert "not found under" in shown["note"]


def test_the_pictures_are_remembered_in_the_cache(blur_run, tmp_path, monkeypatch):
    first = pictures.picture_set({"blur": blur_run}, None, sigma=50.0, cache=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("pictures-*.json"))) == 1

    def no_second_computation(*a, **k):
        raise AssertionError("computed again")

    monkeypatch.setattr(pictures, "denoise_images", no_second_computation)
    again = pictures.picture_set({"blur": blur_run}, None, sigma=50.0, cache=tmp_path / "cache")
    assert again["note"] == first["note"]
    for a, b in zip(first["results"], again["results"]):
        assert a["scores"] == b["scores"] and (a["images"]["blur"] == b["images"]["blur"]).all()


def test_paper_figures_draws_one_figure_per_image_then_the_note(blur_run, monkeypatch):
    from IPython.display import Markdown

    monkeypatch.setattr(pictures, "committed_denoisers", lambda repo, sigma: {"blur": blur_run})
    out = pictures.paper_figures(REPO, None, sigma=50.0)
    figs, note = out[:-1], out[-1]
    assert len(figs) >= 3 and all(len(f.axes) == 3 for f in figs)  # clean, noisy input, blur
    assert isinstance(note, Markdown) and "not available to this build" in note.data


def test_with_bsd200_the_papers_images_are_shown_in_its_order(blur_run, real_data_root):
    shown = pictures.picture_set({"blur": blur_run}, str(real_data_root), sigma=50.0, bm3d=False)
    assert [r["name"] for r in shown["results"]] == list(pictures.PAPER_IMAGES)
    assert {r["dataset"] for r in shown["results"]} == {"BSDS500-test"}
    assert "paper's own BSD200 examples" in shown["note"] and "not available" not in shown["note"]


def test_committed_networks_are_found():
    if not list(GPU.glob("train-*/network.json")):
        pytest.skip("no committed GPU network")
    nets = pictures.committed_denoisers(REPO, 50.0)
    assert nets and all((Path(f) / "network.json").is_file() for f in nets.values())


@pytest.mark.slow
def test_a_committed_network_on_an_embedded_photo_scores_as_its_evaluation(monkeypatch):
    """The real thing on the smallest embedded photo: the committed sigma-50 DnCNN's picture
    score equals evaluate_run's on the same image (same CPU, same noise)."""
    from hinas.data.datasets import load_dataset
    from hinas.engine import evaluate_run

    folder = GPU / "train-dncnn50-s0"
    if not (folder / "network.json").is_file():
        pytest.skip("no committed DnCNN")
    coins = load_dataset("embedded-test", grey=True).select(["coins"])
    res = pictures.denoise_images({"DnCNN": folder}, coins, sigma=50.0)[0]
    ev = evaluate_run(folder, coins, sigma=50.0)["per_image"][0]
    assert res["name"] == ev["name"] == "coins"
    assert res["scores"]["DnCNN"] == pytest.approx((ev["psnr"], ev["ssim"]), abs=1e-9)
    assert res["scores"]["DnCNN"][0] > res["scores"]["noisy input"][0] + 5
