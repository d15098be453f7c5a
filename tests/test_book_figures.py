"""The book's figures from committed run files (hinas.book.curves, hinas.book.pictures)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from hinas.book import curves, pictures  # noqa: E402
from hinas.engine.movement import movement_by_epoch, movement_from_csv  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GPU = REPO / "results" / "paper"


def test_a_clean_power_law_is_recovered_and_extrapolated():
    t = np.array([5e3, 1e4, 2e4, 4e4, 8e4, 1.2e5])
    y = 26.9 - 12.0 * t ** -0.35
    fit = curves.fit_learning_curve(t, y, target=6e5)
    assert fit["determined"], fit
    assert fit["a"] == pytest.approx(26.9, abs=1e-3) and fit["c"] == pytest.approx(0.35, abs=1e-3)
    assert fit["psnr"] == pytest.approx(26.9 - 12.0 * 6e5 ** -0.35, abs=1e-3)
    assert fit["interval"][0] <= fit["psnr"] <= fit["interval"][1]


def test_too_few_or_too_noisy_points_are_not_determined():
    few = curves.fit_learning_curve([1e3, 2e3, 3e3], [20, 21, 21.5], target=6e5)
    assert not few["determined"] and few["psnr"] is None and "at least" in few["why"]
    rng = np.random.default_rng(0)
    t = np.array([1e3, 2e3, 3e3, 4e3, 5e3])
    noisy = curves.fit_learning_curve(t, 20 + rng.normal(0, 1.5, len(t)), target=6e5)
    assert not noisy["determined"] and noisy["why"]


def test_movement_by_epoch_ends_where_the_search_summary_does():
    rows = movement_by_epoch(GPU / "search-dn-s0")
    final = movement_from_csv(GPU / "search-dn-s0")
    assert rows[-1]["alpha_max_dev"] == pytest.approx(final["alpha_max_dev"], abs=1e-6)
    assert rows[-1]["beta_max_change"] == pytest.approx(final["beta_max_change"], abs=1e-6)
    assert rows[0]["beta_max_change"] == pytest.approx(0.0, abs=1e-6)  # no architecture step in epoch 1


def test_figures_draw_from_committed_files():
    import matplotlib.pyplot as plt

    for fig in (curves.history_figure({"HiNAS": GPU / "train-dn50-s0", "DnCNN": GPU / "train-dncnn50-s0"}),
                curves.learning_curve_figure({"a": [{"iteration": i, "psnr": 20 + np.log(i)} for i in (1e3, 2e3, 4e3, 8e3)]},
                                             target=6e5, published={"HiNAS": 26.81})):
        assert len(fig.axes) >= 1
        plt.close(fig)


def test_a_committed_search_is_drawn_as_the_full_search_is():
    """Chapter 4 draws every committed search's movement per layer and source over its own schedule
    (the 6-epoch search: warm-up epoch 1, validation from epoch 5)."""
    from hinas.book import full_search

    fig = full_search.search_figure(GPU / "search-dn-s0")
    assert len(fig.axes) == 2 and fig.axes[0].get_xlim() == (0.5, 6.5)
    assert {line.get_label() for line in fig.axes[0].lines} >= {"layer 0", "layer 1", "layer 2"}


def test_beta_curves_call_the_stem_by_its_name():
    # beta.csv writes the stem as layer -1 (its beta picks the first cell's width); the figure
    # must not show that index as if it were a layer
    import pandas as pd

    from hinas.book import figures

    beta = pd.DataFrame([{"epoch": e, "layer": layer, "level": 0, "move": m, "weight": 0.5}
                         for e in (1, 2) for layer in (-1, 0) for m in ("same", "wider")])
    fig = figures.beta_curves(beta)
    assert [ax.get_title() for ax in fig.axes] == ["beta, stem", "beta, layer 0"]
    assert not any("-1" in ax.get_title() for ax in fig.axes)


def test_denoised_image_scores_equal_the_committed_per_image_scores(real_data_root):
    """The picture's noisy input and network output are the evaluation's own: the whole-image PSNR
    of the committed sigma-50 network on the first BSD200 image equals its stored score."""
    summary = json.loads((GPU / "eval-dn50-s0" / "summary.json").read_text())
    stored = next(e for e in summary["evaluations"] if e["protocol"] == "standard" and e["precision"] == "fp32")
    res = pictures.denoise_image({"HiNAS": GPU / "train-dn50-s0"}, image=0, sigma=50, data_root=real_data_root)
    first = stored["per_image"][0]
    assert res["name"] == first["name"]
    assert res["scores"]["HiNAS"][0] == pytest.approx(first["psnr"], abs=0.05)  # GPU vs CPU rounding
    fig = pictures.denoised_figure(res)
    assert len(fig.axes) == 3


def test_paper_images_by_name_with_bm3d(real_data_root):
    pytest.importorskip("bm3d")
    res = pictures.denoise_image({"HiNAS": GPU / "train-dn50-s0"}, image=pictures.PAPER_IMAGES[0], sigma=50,
                                 data_root=real_data_root, bm3d=True)
    assert res["name"] == pictures.PAPER_IMAGES[0] and set(res["images"]) == {"noisy input", "BM3D", "HiNAS"}
    assert res["scores"]["BM3D"][0] > res["scores"]["noisy input"][0] + 5  # BM3D clearly denoises


def test_an_unknown_image_name_is_one_line(real_data_root):
    from hinas.errors import DataError

    with pytest.raises(DataError, match="no image named"):
        pictures.denoise_image({}, image="nope", data_root=real_data_root)
