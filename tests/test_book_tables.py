"""Unit tests of the book's settings, tables and comparisons (hinas.book)."""

from __future__ import annotations

import math


import pandas as pd
import pytest

from hinas.book import compare, settings, tables
from hinas.eval import stats

TIDY = {"profile", "device", "dataset", "seed", "protocol", "sigma", "psnr", "ssim", "params", "source", "method"}


def test_settings_cover_every_profile():
    assert set(settings.SETTINGS) == {"smoke", "quick", "gpu", "paper"}
    with pytest.raises(ValueError):
        settings.profile_settings("huge")


def test_summaries():
    df = pd.DataFrame({"method": ["a", "a", "b"], "seed": [0, 1, 0], "psnr": [20.0, 22.0, 25.0],
                       "ssim": [0.5, 0.7, 0.8], "protocol": "standard", "profile": "smoke", "device": "cpu",
                       "dataset": "x", "sigma": 50.0})
    m = tables.mean_std(df, "method").set_index("method")
    assert m.loc["a", "psnr_mean"] == 21.0 and m.loc["a", "seeds"] == 2
    assert math.isnan(m.loc["b", "psnr_std"])
    assert tables.fmt_mean_std(21.0, 1.41421, 2) == "21.00 ± 1.41"
    assert tables.fmt_mean_std(25.0, float("nan"), 2) == "25.00"
    pub = tables.published_rows("table4")
    assert (pub.source == "published").all()
    df["method"] = ["HiNAS* (MSE)", "HiNAS* (MSE)", "HiNAS** (MSE + lssim)"]
    out = tables.ours_vs_published(df, pub, ["method"], sigma=50)
    assert list(out["PSNR (paper)"]) == ["26.77", "26.77"]
    assert out["PSNR (ours)"].iloc[0] == "21.00 ± 1.41"
    assert not out.isna().any().any()  # missing values are shown as '–'
    # a published table at another noise level is not merged into our rows
    t3 = df.assign(method=["HiNAS-ws", "HiNAS-ws", "HiNAS-wm"])
    assert "PSNR (paper)" not in tables.ours_vs_published(t3, tables.published_rows("table3"), ["method"]).columns


def test_compare_calls_ties_by_the_seed_spread():
    assert stats.compare(25.0, 0.2, 24.5, 0.1) == "ahead"
    assert stats.compare(25.0, 0.6, 24.5, 0.1) == "tie"  # inside the larger spread
    assert stats.compare(24.0, float("nan"), 25.0, float("nan"), spread=0.3) == "behind"
    assert stats.compare(24.0, None, 24.3, None, spread=0.5) == "tie"
    assert stats.compare(24.0, None, 24.3, None) == "tie"  # the one-seed default margin
    assert stats.compare(20.0, None, 24.0, None) == "behind"
    assert "tie" in stats.TIE_RULE


def test_ordering_vs_paper_and_tidy_tables():
    ours = pd.DataFrame({"method": ["a", "b", "c"], "psnr_mean": [25.0, 24.0, 14.0], "psnr_std": [0.1, 0.1, 0.1]})
    pub = pd.DataFrame({"method": ["a", "b", "c"], "psnr": [26.8, 26.9, 26.0]})
    o = compare.ordering_vs_paper(ours, pub, [("a", "b"), ("b", "a"), ("a", "c")], floor=14.2).set_index("comparison")
    assert o.loc["a vs b", "agrees with the paper"] == "no"  # paper: a behind b; ours: a ahead
    assert o.loc["b vs a", "agrees with the paper"] == "no"
    assert o.loc["a vs c", "agrees with the paper"] == "cannot tell (not learned)"  # c is below the noisy input
    t = tables.tidy_table(pd.DataFrame({"psnr": [24.123456, float("nan")], "params": [116361.0, None],
                                    "ok": [True, False], "x": [None, "y"], "params_m": [0.68, 1.5]}))
    assert list(t.psnr) == ["24.12", "–"] and list(t.params) == ["116,361", "–"]
    assert list(t.ok) == ["yes", "no"] and list(t.x) == ["–", "y"] and list(t.params_m) == ["0.68", "1.50"]
    html = tables.show(pd.DataFrame({"a": [1, 2]})).to_html()
    assert "row_heading" not in html  # no pandas index


def test_show_keeps_tables_within_the_column():
    """The class book/_static/hinas.css styles; headers and labels that may wrap; counts as counts."""
    df = pd.DataFrame({"dil_conv_5x5": [2], "seed": ["genotype_final"], "file": ["results/bench/train_x_1.json"],
                       "batches with SSIM <= 0": [4]})
    html = tables.show(df).to_html()
    assert f'class="{tables.TABLE_CLASS}"' in html
    assert ">dil_<wbr>conv_<wbr>5x5</th>" in html and ">genotype_<wbr>final</td>" in html
    assert ">results/<wbr>bench/<wbr>train_x_1.json</td>" in html  # a file name stays whole
    assert ">4</td>" in html  # a count, though its name mentions SSIM
    assert list(tables.show(df).data.seed) == ["genotype_final"]  # the data itself is untouched


def test_book_parameters_and_paths(tmp_path, monkeypatch):
    import nbformat

    from hinas.book import execute as book

    assert settings.default_runs_root() == settings.REPO_ROOT / "runs"
    assert settings.default_device("quick") == "cpu" and settings.default_device("smoke") == "cpu"
    assert book.display_path(settings.REPO_ROOT / "runs" / "x") == "runs/x"
    assert "/" not in book.display_path("/somewhere/else/data").strip("<>").split(" ")[0]
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell('profile: str = "quick"  # size\nruns_root: Optional[str] = None  # cache')
    p.metadata["tags"] = ["parameters"]
    inj = nbformat.v4.new_code_cell('profile = "smoke"\nruns_root = "/abs/path/runs"')
    inj.metadata["tags"] = ["injected-parameters"]
    nb.cells = [p, inj]
    out = tmp_path / "nb.ipynb"
    nbformat.write(nb, out)
    book.merge_parameters(out, {"profile": "smoke", "runs_root": str(tmp_path / "runs")}, tmp_path)
    cells = nbformat.read(out, as_version=4).cells
    assert len(cells) == 1
    assert "profile: str = 'smoke'  # size" in cells[0].source
    assert "runs_root: Optional[str] = 'runs'  # cache" in cells[0].source


def test_equal_published_psnrs_take_the_papers_ssim_direction():
    """Table 4 at sigma 50 prints 26.77 dB for both rows; the paper's direction is its SSIM's (its own
    comparison row reports an increase), so a measured increase agrees and a decrease does not."""
    ours_up = pd.DataFrame({"method": ["A", "B"], "psnr_mean": [20.8, 20.0], "psnr_std": [None, None]})
    ours_down = ours_up.assign(psnr_mean=[19.0, 20.0])
    pub = pd.DataFrame({"method": ["A", "B"], "psnr": [26.77, 26.77], "ssim": [0.7635, 0.7498]})
    up = compare.ordering_vs_paper(ours_up, pub, [("A", "B")], spread=0.5).iloc[0]
    down = compare.ordering_vs_paper(ours_down, pub, [("A", "B")], spread=0.5).iloc[0]
    assert up["agrees with the paper"] == "yes" and "SSIM +0.0137" in up["paper (dB)"]
    assert down["agrees with the paper"] == "no"


def test_devices_and_training_shares_as_table_cells():
    assert tables.short_device("NVIDIA H100 80GB HBM3") == "H100" and tables.short_device("NVIDIA H200") == "H200"
    assert tables.short_device("cpu (committed weights)") == "cpu (committed weights)"
    assert tables.training_share(7513, 600_000) == "1.3% (1.9%)"  # the code's 600k, the paper's stated 400k
    assert tables.training_share(7513, 600_000, task="sr") == "1.3%" and tables.training_share(None, 1) == "–"


def test_mean_std_leaves_diverged_runs_out_and_orderings_name_them():
    from hinas.book.compare import ordering_vs_paper

    df = pd.DataFrame([dict(method="A", seed=0, psnr=25.0, ssim=0.7, training="trained"),
                       dict(method="A", seed=1, psnr=3.2, ssim=-0.1, training="diverged"),
                       dict(method="B", seed=0, psnr=3.1, ssim=-0.1, training="diverged"),
                       dict(method="C", seed=0, psnr=24.0, ssim=0.6, training="trained")])
    m = tables.mean_std(df, "method")
    a, b = m.set_index("method").loc["A"], m.set_index("method").loc["B"]
    assert a.psnr_mean == 25.0 and a.seeds == 1 and a.diverged == 1
    assert pd.isna(b.psnr_mean) and b.seeds == 0 and b.diverged == 1  # kept, named, not scored
    pub = pd.DataFrame([dict(method="A", psnr=26.8), dict(method="B", psnr=26.7), dict(method="C", psnr=26.6)])
    o = ordering_vs_paper(m, pub, [("A", "B"), ("A", "C")]).set_index("comparison")
    assert o.loc["A vs B", "ours"] == "diverged" and o.loc["A vs B", "agrees with the paper"] == "cannot tell (not learned)"
    assert o.loc["A vs C", "ours"] == "ahead"  # 1 dB beyond the 0.5 dB single-seed margin
