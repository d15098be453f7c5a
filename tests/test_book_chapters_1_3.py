"""The library behind chapters 1-3 (hinas.book.inner, .outer, .heads; hinas.viz.draw_supercell):
each function returns what its chapter shows, at smoke sizes."""

from __future__ import annotations

import json
import shutil

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from hinas.book import heads, inner, outer, published, settings  # noqa: E402
from hinas.config import SupernetConfig  # noqa: E402
from hinas.data import load_dataset  # noqa: E402
from hinas.genotype import viterbi_trace  # noqa: E402
from hinas.viz import draw_supercell  # noqa: E402

REPO = settings.REPO_ROOT
TINY = SupernetConfig.paper("denoise", f=2, steps=2)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# -- settings ----------------------------------------------------------------------------------
def test_chapter_settings_cover_every_profile():
    from hinas.engine.config import PROFILES

    for profile in PROFILES:
        for chapter in settings.CHAPTERS:
            assert settings.chapter_settings(profile, chapter) is settings.SETTINGS[profile][chapter]
    assert settings.chapter_settings("smoke", "inner")["timing_net"] == {"f": 2, "steps": 2}
    assert settings.chapter_settings("quick", "heads")["sets"] == ["Set5", "Set14", "B100"]
    with pytest.raises(ValueError):
        settings.chapter_settings("smoke", "chapter9")


# -- chapter 1 ---------------------------------------------------------------------------------
def test_ops_table_matches_formulas():
    footprints = inner.op_footprints()
    table = inner.ops_table(10, footprints)
    assert list(table.index) == inner.PRIMITIVES
    assert list(table.columns) == ["params (formula)", "params (module)", "MACs at 64x64",
                                   "receptive field (formula)", "receptive field (measured)"]
    assert (table["params (formula)"] == table["params (module)"]).all()
    assert (table["receptive field (formula)"] == table["receptive field (measured)"]).all()
    assert table.loc["none", "receptive field (measured)"] == 0 and table.loc["skip_connect", "MACs at 64x64"] == 0
    assert isinstance(inner.footprint_figure(footprints), Figure)
    sentence = inner.ops_parameter_range(table, 10)
    assert sentence.startswith("Measured at $C = 10$") and "`skip_connect` and `none` have none." in sentence


def test_footprint_width():
    fp = np.zeros((9, 9), dtype=bool)
    assert inner.footprint_width(fp) == 0
    fp[2:7, 4] = True
    assert inner.footprint_width(fp) == 5


def test_lwas_table_same_weights_more_alpha():
    table = inner.lwas_table(TINY, size=8, repeats=1)
    assert list(table.supernet) == ["LWAS (one alpha per layer)", "one alpha for all layers"]
    assert "forward ms (8px, median of 1)" in table.columns
    lwas, one = table.iloc[0], table.iloc[1]
    assert lwas["weights"] == one["weights"] and lwas["beta entries"] == one["beta entries"]
    assert lwas["alpha entries"] == TINY.layers * one["alpha entries"]
    assert inner.median_forward_seconds(inner.illustrative_supernet(TINY, True, 0), 8, 1) > 0


def test_illustrative_decodings_and_explorer_runs(tmp_path):
    net = inner.illustrative_supernet(TINY, True, 3)
    again = inner.illustrative_supernet(TINY, True, 3)
    assert torch.equal(net.arch_alpha, again.arch_alpha)
    assert isinstance(inner.alpha_figure(net), Figure)
    assert isinstance(inner.alpha_figure(inner.illustrative_supernet(TINY, False, 3)), Figure)
    g = inner.illustrative_genotype(TINY, False, 3)
    assert inner.distinct_cells(g) == 1 and g.provenance == {"source": inner.ILLUSTRATIVE, "seed": 3}
    runs = inner.explorer_runs(TINY, seed=5, n=2)
    assert list(runs) == ["LWAS, illustrative alpha", "one alpha, illustrative", "random genotype (dn)",
                          "random genotype (SR x4)"]
    assert all(list(seeds) == ["seed 5", "seed 6"] for seeds in runs.values())


def test_committed_genotypes(tmp_path):
    g = inner.illustrative_genotype(TINY, True, 0)
    (tmp_path / "results" / "run-a").mkdir(parents=True)
    g.save(tmp_path / "results" / "run-a" / "genotype.json")
    (tmp_path / "results" / "run-a" / "other.json").write_text(json.dumps({"psnr": 1}))
    (tmp_path / "results" / "bad.json").write_text(json.dumps({"cells": 1, "path": 2}))
    with pytest.warns(UserWarning, match="skipped results/bad.json"):
        runs = inner.committed_genotypes(tmp_path)
    assert list(runs) == ["results: run-a"] and list(runs["results: run-a"]) == ["genotype"]
    assert runs["results: run-a"]["genotype"].cells == g.cells
    assert inner.committed_genotypes(tmp_path / "nowhere") == {}


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz 'dot' not installed")
def test_draw_supercell_svg():
    svg = draw_supercell(4, 7).pipe(format="svg").decode()
    assert "<svg" in svg and svg.count("7 ops") == sum(2 + i for i in range(4)) and "concat" in svg


# -- chapter 2 ---------------------------------------------------------------------------------
def _fake_memory(peak5, peak6, saving=None):
    res = {"device": "cpu", "config": {"f": 2},
           "eq5": {"peak_bytes": peak5, "step_seconds": 1.0, "cell_evaluations": 11.5, "weights": 10},
           "eq6": {"peak_bytes": peak6, "step_seconds": 2.0, "cell_evaluations": 20.0, "weights": 20}}
    if saving:
        res["saving"] = {"memory_saving": "recompute", "partial_channels": 1, "peak_bytes": saving,
                         "step_seconds": 1.5, "grad_max_abs_diff": 0.0}
    return res


def test_widths_and_beta_tables():
    widths = outer.widths_table()
    assert list(widths.widths) == ["code (1, 1.5, 2)", "paper 2^i (1, 2, 4)"]
    assert list(widths["level 2 channels/node"]) == [20, 40]
    cfg = SupernetConfig.paper("denoise")
    from hinas.supernet import Supernet

    beta = Supernet(cfg).beta_weights().detach()
    table = outer.beta_table(cfg, beta)
    assert list(table.columns) == ["source", "narrower", "same", "wider", "masked moves"]
    assert len(table) == beta.shape[0] and table["masked moves"].iloc[0] != "-"


def test_memory_tables_and_figure(tmp_path):
    runs = [("this notebook (cpu)", _fake_memory(2**20, 2 * 2**20)), ("other (cpu)", _fake_memory(2**21, 3 * 2**21))]
    table = outer.memory_table(runs)
    assert len(table) == 4 and list(table["mode"]) == ["eq5", "eq6"] * 2
    assert list(table.columns) == ["run", "mode", "peak MiB", "step s", "width-weighted cell evaluations", "weights"]
    ratios = outer.memory_ratios(table)
    assert list(ratios.run) == ["this notebook (cpu)", "other (cpu)", "paper, Sec. 3.2 (published)"]
    assert list(ratios["memory eq6/eq5"]) == [2.0, 3.0, outer.PAPER_MEMORY_FACTOR]
    assert ratios["analytic eq6/eq5"].iloc[0] == pytest.approx(20 / 11.5)
    assert isinstance(outer.memory_figure(table), Figure)
    assert outer.committed_memory_runs(tmp_path) == [] and outer.recompute_larger(tmp_path) is None


def test_memory_modes_and_readings(tmp_path):
    live = _fake_memory(4 * 2**20, 8 * 2**20, saving=2**20)
    modes = outer.memory_modes("this notebook (cpu)", live, tmp_path)  # nothing committed in tmp_path
    assert list(modes.columns[:4]) == ["run", "mode", "peak MiB", "step s"] and len(modes) == 3
    (reading,) = outer.recompute_readings(modes)
    assert reading.startswith("*this notebook (cpu)*") and "**4.0x less**" in reading
    committed = outer.memory_modes("this notebook (cpu)", live, REPO)
    if (REPO / outer.MODES_FILE).exists():
        assert len(committed) == 6 and len(outer.recompute_readings(committed)) == 2
    larger = outer.recompute_larger(REPO)
    if larger is not None:
        assert list(larger.columns) == ["recompute at", "peak MiB", "plain Eq. 5 at L=3, 64x64 / this"]
    for label, res in outer.committed_memory_runs(REPO):
        assert label.startswith("results/bench/supernet_memory") and "eq5" in res and "eq6" in res


def test_viterbi_tables_agree_with_brute_force():
    demo = SupernetConfig.paper("denoise", layers=5)
    beta = outer.illustrative_beta(demo, 0)
    assert torch.equal(beta, outer.illustrative_beta(demo, 0))
    trace = viterbi_trace(beta, demo.layers, demo.levels)
    steps = outer.viterbi_table(trace, demo.width_factors)
    assert list(steps.columns) == ["layer", "level", "width", "best log P", "P", "comes from level", "on the path"]
    assert steps["on the path"].sum() == demo.layers
    ranked = outer.ranked_paths(beta, demo.layers, demo.levels)
    assert ranked[0][1] == trace.path and ranked[0][0] == pytest.approx(trace.log_prob)
    top = outer.paths_table(ranked, 3)
    assert list(top.columns) == ["path", "log P", "P"] and len(top) == 3
    per_layer = outer.per_layer_path(beta, demo.layers, demo.levels)
    assert len(per_layer) == demo.layers and outer.largest_jump(per_layer) >= 0
    assert outer.largest_jump([1, 2, 0]) == 2


# -- chapter 3 ---------------------------------------------------------------------------------
def test_heads_are_residual():
    dn = heads.denoise_head_check(0, size=16)
    assert dn["skip_only"] is True and dn["input"] == dn["residual"] == (1, 1, 16, 16)
    sr = heads.sr_head_table(0, scales=(2,), size=8)
    row = sr.iloc[0]
    assert row["last conv channels (3 S^2)"] == 12 and row["output"] == (3, 16, 16)
    assert bool(row["zeroed net == bicubic(x)"])
    assert isinstance(heads.pixel_shuffle_figure(2), Figure)


def test_kernel_table_and_upsample():
    lr = (np.random.default_rng(0).random((6, 5, 3)) * 255).astype(np.uint8)
    for k in heads.KERNELS:
        up = heads.upsample(lr, 2, k)
        assert up.shape == (12, 10, 3) and up.dtype == np.uint8
    images = load_dataset("embedded-test").limit(1)
    table = heads.kernel_table(images, [4])
    assert list(table.columns) == ["scale", *heads.KERNELS] and list(table.scale) == ["x4"]
    assert np.isfinite(table[list(heads.KERNELS)].to_numpy(float)).all()


def test_imresize_oracle_table(tmp_path):
    assert heads.imresize_oracle_table(None, 1) is None
    assert heads.imresize_oracle_table(tmp_path, 1) is None
    (tmp_path / heads.ORACLE / "Set5" / "x2").mkdir(parents=True)
    empty = heads.imresize_oracle_table(tmp_path, 1)
    assert isinstance(empty, pd.DataFrame) and len(empty) == 0


def test_bicubic_tables(tmp_path):
    base = tmp_path / "results" / "baselines"
    base.mkdir(parents=True)
    for protocol, psnr in (("standard", 33.7), ("hinas-reference", 35.0)):
        (base / f"bicubic_Set5_x2_{protocol}.json").write_text(json.dumps(
            {"dataset": "Set5", "task": "sr", "protocol": protocol, "scale": 2, "psnr": psnr, "ssim": 0.93,
             "images": 5, "provenance": {"command": "hinas eval bicubic", "date": "today"}}))
    (base / "bicubic_broken.json").write_text("{")
    with pytest.warns(UserWarning, match="skipped"):
        committed = heads.committed_bicubic(tmp_path)
    assert list(committed.source) == ["committed, hinas-reference protocol", "committed"]
    assert list(committed.file) == ["results/baselines/bicubic_Set5_x2_hinas-reference.json",
                                    "results/baselines/bicubic_Set5_x2_standard.json"]
    measured = pd.DataFrame([{"dataset": "Set5", "scale": 2, "source": "measured here", "PSNR": 33.66,
                              "SSIM": 0.9299, "images": 5}])
    scores = heads.bicubic_scores(measured, committed)
    assert len(scores) == 1 + 2 + len(published.bicubic_rows())
    table = heads.bicubic_table(scores)
    assert list(table.columns) == ["dataset", "scale", "published", "committed", "measured here",
                                   "committed, hinas-reference protocol"]
    assert list(table.dataset[:3]) == ["Set5"] * 3 and list(table.dataset[-3:]) == ["Urban100"] * 3
    assert table.iloc[0]["published"] == "33.66 / 0.9299" and table.iloc[0]["committed"] == "33.70 / 0.9300"
    lines = heads.published_differences(scores)
    assert lines == ["|measured here - published| PSNR: max 0.000 dB over 1 (dataset, scale) pairs",
                     "|committed - published| PSNR: max 0.040 dB over 1 (dataset, scale) pairs"]
    none = heads.committed_bicubic(tmp_path / "nowhere")
    assert len(none) == 0 and "file" in none.columns
    assert len(heads.bicubic_scores(measured, none)) == 1 + len(published.bicubic_rows())


def test_published_bicubic_is_table_11_at_x3():
    rows = {(r["dataset"], r["scale"]): (r["psnr"], r["ssim"]) for r in published.bicubic_rows()}
    assert len(rows) == 12 and rows[("Set5", 2)] == (33.66, 0.9299)
    (t11,) = [r for r in published.TABLE11_SR_SOTA if r["method"] == "bicubic"]
    assert all(rows[(name, 3)] == v for name, v in t11["metrics"].items())
