"""The library behind chapters 4-6 of the book (hinas.book.search_report, ablation_report,
sota_report, stability, figures, and the committed-results views): smoke-size runs, the
committed ``results/`` and small made-up tables; well under a minute."""

from __future__ import annotations

import json
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from hinas.book import ablation_report as ab
from hinas.book import committed as cm
from hinas.book import figures, plans, search_report, sota_report, stability, tables
from hinas.book.compare import NOISY_INPUT, with_status
from hinas.book.settings import REPO_ROOT
from hinas.engine import RunConfig


@pytest.fixture(scope="module")
def found(tmp_path_factory):
    """Chapter 4's plan at smoke (one search, its network trained and scored, the noisy input),
    run in a temporary runs folder: ``(rows, searches)`` as the chapter reads them."""
    root = tmp_path_factory.mktemp("runs")
    plan = plans.chapter_plan("search", "smoke")
    folder = plans.run_plan(plan, root)
    return plans.plan_rows(plan, folder), plans.searches_found(plan, folder, ["search-dn-s0"])


def _alpha(weights_last):
    """An alpha.csv frame: epoch 0 uniform, epoch 1 with ``weights_last`` on one edge of layer 0."""
    ops = [f"op{i}" for i in range(len(weights_last))]
    rows = [{"epoch": 0, "layer": 0, "edge": 0, "op": o, "weight": 1 / len(ops)} for o in ops]
    rows += [{"epoch": 1, "layer": 0, "edge": 0, "op": o, "weight": w} for o, w in zip(ops, weights_last)]
    return pd.DataFrame(rows)


# -- chapter 4: the search -------------------------------------------------------------------

def test_alpha_movement_and_reading():
    still = search_report.alpha_movement(_alpha([1 / 7] * 7))
    assert still["drift"] < 1e-12 and not still["moved"] and still["n_ops"] == 7
    assert "barely moved" in search_report.alpha_reading(still, 0)
    moved = search_report.alpha_movement(_alpha([0.4, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]))
    assert moved["drift"] == pytest.approx(0.4 - 1 / 7) and moved["op"] == "op0" and moved["moved"]
    assert moved["median_margin"] == pytest.approx(0.3)
    assert "moved away from uniform" in search_report.alpha_reading(moved, 0)


def test_beta_change_is_measured_from_the_start():
    def beta(first, last):  # a source with two possible moves starts at 0.5 each
        return pd.DataFrame([{"epoch": e, "source": "stem", "layer": -1, "level": 0, "move": mv, "weight": w}
                             for e, w0 in ((1, first), (3, last)) for mv, w in (("same", w0), ("wider", 1 - w0))])

    assert search_report.beta_change(beta(0.5, 0.51))["moved"] is False
    m = search_report.beta_change(beta(0.5, 0.6))
    assert m["moved"] and m["change"] == pytest.approx(0.1) and m["last"] == 3
    # a move made before the first logged epoch counts: from the start, not first-vs-last epoch
    assert search_report.beta_change(beta(0.6, 0.6))["change"] == pytest.approx(0.1)
    assert "a choice the search made" in search_report.beta_reading(m)


def test_config_table_pairs_settings():
    cfg = RunConfig.from_profile("smoke", "denoise", None)
    t = search_report.config_table(cfg, ["f", "layers", "epochs"])
    assert list(t.columns) == ["setting", "value", "setting ", "value "]
    assert list(t.setting) == ["f", "layers"] and list(t["setting "]) == ["epochs", ""]
    assert t.value.iloc[0] == str(cfg.f)


def test_search_report_on_a_smoke_search(found):
    rows, searches = found
    summary = cm.search_table(rows["search"])  # the committed searches' table, for the chapter's own
    assert list(summary.item) == ["search-dn-s0"] and list(summary.profile) == ["smoke"]
    assert summary["epochs (of the paper's)"].iloc[0] == "4 of 100"
    assert not summary["searched?"].iloc[0].startswith("unknown")  # the movement read from the rows
    assert list(cm.train_table(rows["train"]).item) == ["train-dn50-s0"]
    hist = search_report.search_histories(searches)
    epochs = search_report.epoch_choice(searches, hist)
    assert epochs["best epoch (recomputed)"].iloc[0] == searches[0]["best_epoch"]
    assert "best epoch" in search_report.epoch_choice_reading(epochs)
    alpha = search_report.run_log(searches[0], "alpha.csv")
    assert 0 <= search_report.alpha_movement(alpha)["drift"] < 1
    sizes = search_report.network_sizes(searches, RunConfig.from_profile("smoke", "denoise", None).net_f)
    assert set(sizes.f) == {RunConfig.from_profile("smoke", "denoise", None).net_f or 20, 20} and (sizes.params > 0).all()
    assert "M parameters" in search_report.sizes_reading(sizes)
    assert set(search_report.explorer_runs(searches)) == {"search: best epoch", "search: final epoch"}
    for fig in (figures.search_curves(hist), figures.alpha_curves(alpha),
                figures.beta_curves(search_report.run_log(searches[0], "beta.csv"))):
        assert isinstance(fig, Figure)
    drawings = figures.genotype_drawings(searches[0]["genotype"], "seed 0")
    assert len(drawings) == 1 + searches[0]["genotype"].layers
    # the network trained and scored by the plan, beside the noisy input on the same images
    scores = search_report.chapter_scores(rows)
    assert set(scores.method) == {"HiNAS (this chapter)", NOISY_INPUT}
    # one test set for every row: $HINAS_DATA's BSDS500-test or the embedded photos, central 48x48 crops
    assert set(scores.protocol) == {"standard", "hinas-reference"} and scores.dataset.nunique() == 1
    assert scores.dataset.iloc[0] in ("embedded-test[crop48]", "BSDS500-test[crop48]")
    net = scores[scores.method != NOISY_INPUT]
    assert list(net.seed) == [0, 0] and net.status.notna().all() and scores[scores.method == NOISY_INPUT].status.isna().all()
    assert set(search_report.scores_table(scores).columns) >= {"method", "seed", "status", "PSNR", "SSIM"}
    assert list(search_report.training_histories(rows)) == [0]


def test_a_training_lost_to_nan_is_named_in_the_scores_never_scored():
    ev = pd.DataFrame([{"item": "eval-dn50-s0", "network": "train-dn50-s0", "model": "hinas", "seed": 0,
                        "protocol": "standard", "sigma": 50.0, "dataset": "embedded-test", "images": 3, "psnr": 24.0,
                        "ssim": 0.6, "inference_seconds": 0.3, "training": "trained", "training_evidence": "loss down"},
                       {"item": "noisy-dn50", "network": None, "model": "noisy-input", "seed": None,
                        "protocol": "standard", "sigma": 50.0, "dataset": "embedded-test", "images": 3, "psnr": 14.0,
                        "ssim": 0.2, "inference_seconds": 0.01, "training": None, "training_evidence": None}])
    train = pd.DataFrame([{"item": "train-dn50-s0", "seed": 0, "model": "hinas", "training": "trained",
                           "folder": "/x/train-dn50-s0"},
                          {"item": "train-dn50-s1", "seed": 1, "model": "hinas", "training": "diverged",
                           "training_evidence": "TrainingDiverged: the loss became NaN", "folder": None}])
    scores = search_report.chapter_scores({"eval": ev, "train": train})
    lost = scores[scores.seed == 1].iloc[0]
    assert lost.method == "HiNAS (this chapter)" and lost.status == "diverged" and math.isnan(lost.psnr)
    g = search_report.gain(scores)
    assert g["seeds"] == [0] and any("NaN" in line for line in g["left_out"])


def test_gain_verdicts():
    def scores(net_psnrs, noisy):
        rows = [{"method": "HiNAS", "protocol": "standard", "seed": s, "psnr": p, "ssim": 0.5, "sigma": 50.0}
                for s, p in enumerate(net_psnrs)]
        return pd.DataFrame(rows + [{"method": NOISY_INPUT, "protocol": "standard", "seed": None, "psnr": noisy,
                                     "ssim": 0.2, "sigma": 50.0}])

    g = search_report.gain(scores([24.0, 24.2], 14.0))
    assert g["verdict"] == "ahead" and "gains 10.10 dB" in search_report.gain_reading(g, [0, 1])
    assert search_report.gain(scores([14.0, 14.2], 14.05))["verdict"] == "tie"
    rows = search_report.glance_rows({"drift": 0.1234}, g)
    assert rows[0]["measured"] == "0.1234" and rows[2]["measured"] == "14.00 dB"
    # a diverged seed is named and left out; with every seed diverged, no number reaches the glance
    df = scores([24.0, 3.2], 14.0).assign(training=["trained", "diverged", None],
                                           training_evidence=["", "its loss rose from 0.16 to 4e+04", None])
    g = search_report.gain(with_status(df))
    assert g["psnr"] == 24.0 and g["seeds"] == [0] and "4e+04" in search_report.gain_reading(g, [0, 1])
    df.loc[0, "training"] = "diverged"
    g = search_report.gain(with_status(df))
    assert g["verdict"] is None and "No network of this chapter is scored" in search_report.gain_reading(g, [0, 1])
    assert search_report.glance_rows({"drift": 0.1}, g)[1]["measured"].startswith("no result: diverged")


# -- chapter 4: training at lr 0.05 (committed) ----------------------------------------------

def test_recovered_rule():
    assert stability.RECOVERED_BELOW == 0.7
    assert stability.recovered(0.69, 1.0) and not stability.recovered(0.7, 1.0)


def test_stability_committed_and_readings(tmp_path):
    runs_ = stability.stability_runs(REPO_ROOT)
    assert len(runs_) and {"bn_init", "SSIM <= 0", "last / first", "finite"} <= set(runs_.columns)
    view = stability.stability_view(runs_)
    assert len(view) == len(runs_) and not view.iloc[:, -1].str.contains("train_stability_|json").any()
    assert all(isinstance(v, str) or v < 1e5 for v in view["max loss"])  # a diverged loss in three digits
    text = stability.stability_reading(runs_)
    below = int((runs_["last / first"] < stability.RECOVERED_BELOW).sum())
    total = sum(int(s.split(" of ")[0].split()[-1]) for s in text.split("\n") if "run(s) end below" in s)
    assert total == below
    side = json.loads((REPO_ROOT / "results" / "bench" / "side_by_side_dn_seed0.json").read_text())
    released = [t["released"] for t in side["trace"]]
    tail = [v for v in released[-10:] if np.isfinite(v)]
    reading = stability.side_by_side_reading(REPO_ROOT)
    assert ("recipe recovered here" in reading) == stability.recovered(np.mean(tail), released[0])
    assert stability.side_by_side_reading(tmp_path) is None and stability.stability_reading(pd.DataFrame()) is None


# -- committed results as the chapters show them ---------------------------------------------

def test_committed_views_of_the_results_folder():
    searches = cm.campaign_rows(REPO_ROOT, "search")
    assert len(searches)
    t = cm.search_table(searches)
    assert t["epochs (of the paper's)"].str.contains(" of ").all()
    trains = cm.campaign_rows(REPO_ROOT, "train")
    table = cm.train_table(trains)
    assert (table["iterations"] == trains.iterations).all()
    shares = [f"{a / b:.1%} ({a / 400_000:.1%})" for a, b in zip(trains.iterations, trains.paper_iterations)]
    assert list(table[tables.SHARE_COLUMN]) == shares and "paper's stated 400,000" in cm.train_caption()
    caption, genotype, item = cm.searched_genotypes(searches)[0]
    assert item in caption and genotype.layers > 0
    captions = {i: c for c, _, i in cm.searched_genotypes(searches, cm.search_movements(REPO_ROOT))}
    assert "**not searched**" in captions["search-dn-s0"]  # its alpha and beta did not move (6 of 100 epochs)
    bench = cm.gpu_bench_table(REPO_ROOT)
    assert len(bench) and not bench.device.str.lower().eq("cpu").any()
    bicubic = cm.bicubic_table(REPO_ROOT, 3)
    assert len(bicubic) and bicubic["PSNR (paper)"].notna().all()
    assert 50.0 in cm.denoise_sigmas(REPO_ROOT)
    glance = cm.denoise_glance(cm.denoise_rows(REPO_ROOT, 50.0), 50.0)
    assert glance and all(r["measured"].endswith(" dB") for r in glance)


def test_committed_notes_without_results(tmp_path):
    empty = pd.DataFrame()
    assert cm.search_notes(tmp_path, empty, empty, "cpu", "smoke")[0].startswith("**No paper-plan results committed yet**")
    assert cm.denoise_notes(tmp_path, [], "cpu", "smoke")[0].startswith("**No paper-plan results committed yet**")
    assert cm.bicubic_table(tmp_path).empty and cm.denoise_sigmas(tmp_path) == []


# -- chapter 5: ablations --------------------------------------------------------------------

def test_settings_and_orderings():
    assert ab.setting_label("HiNAS", True, True) == ab.FULL
    assert ab.setting_label("HiNAS", False, False) == "HiNAS, neither"
    assert ab.setting_label("RSWS (N=30)", False, False) == "RSWS"
    pub = ab.with_settings(tables.published_rows("table1"))
    assert set(pub.setting) == {ab.FULL, "HiNAS, neither", "HiNAS, LWAS", "HiNAS, ResL", "RSWS"}
    summary = pd.DataFrame({"setting": [ab.FULL, "HiNAS, neither"], "psnr_mean": [25.0, 24.0],
                            "psnr_std": [0.1, 0.1]})
    o = ab.ordering("Table 1", summary, pub[pub.sigma == 50], spread=float("nan"), floor=14.0)
    assert list(o["agrees with the paper"]) == ["yes"]
    assert len(ab.ordering_view(o)) == 2 and ab.ordering_view(o.iloc[:0]) == []
    assert ab.full_spread(summary) == pytest.approx(0.1)
    rows = pd.DataFrame({"method": ["HiNAS", NOISY_INPUT, NOISY_INPUT], "psnr": [25.0, 14.0, 15.0],
                         "protocol": ["standard", "standard", "hinas-reference"]})
    assert ab.noisy_floor(rows) == 14.0


def test_orderings_reading_counts():
    def o(*agree):
        return pd.DataFrame({"comparison": [f"a{i} vs b" for i in range(len(agree))],
                             "paper (dB)": ["+0.05"] * len(agree), "ours (dB)": ["+0.30"] * len(agree),
                             "ours": ["ahead"] * len(agree), "agrees with the paper": list(agree)})

    orderings = {"Table 1": o("yes", "cannot tell (tie)"), "Table 3": o("no"), "Table 4": o()}
    t1 = pd.DataFrame({"protocol": ["standard"] * 2, "setting": [ab.FULL] * 2, "seed": [1, 0], "psnr": [20.0, 21.0]})
    text = ab.orderings_reading(orderings, t1, 0.5, 2)
    assert "Of 3 comparisons the paper makes, our runs agree with **1**, cannot tell **1**" in text
    assert "Table 3, a0 vs b" in text and "21.00 dB (seed 0), 20.00 dB (seed 1)" in text
    rows = ab.glance_rows(orderings, {"memory_ratio": 1.7})
    assert rows[0]["measured"] == "1 agree, 1 ties, 1 disagree, 0 not learned (of 3)" and rows[1]["measured"] == "x1.70"
    claims = {r["claim"]: r for r in ab.glance_rows(orderings, {"memory_ratio": 1.7}, "quick") if "claim" in r}
    assert claims["ablations"]["verdict"] == "untested" and "only at the `quick` scale" in claims["ablations"]["evidence"]
    assert claims["memory"]["verdict"] == "direction only"


def test_cell_sharing_table_and_ratios():
    t8 = pd.DataFrame({"label": ["eq5", "eq6"], "seconds": [10.0, 25.0], "val_psnr": [20.0, 20.1],
                       "seed": [0, 0], "device": ["cpu", "cpu"]})
    mem = {"eq5": {"peak_bytes": 2**20, "step_seconds": 0.1, "cell_evaluations": 9},
           "eq6": {"peak_bytes": 2**21, "step_seconds": 0.2, "cell_evaluations": 18},
           "memory_ratio": 2.0, "time_ratio": 2.0, "analytic_ratio": 2.0, "config": {"batch": 1, "size": 16}}
    m = ab.cell_sharing_table(t8, mem)
    assert list(m["peak MiB (one step)"]) == [1.0, 2.0] and list(m["cell sharing"]) == ["eq5", "eq6"]
    assert "search time x2.50" in ab.cell_sharing_ratios(t8, mem)
    assert "batch 1, 16x16 crops" in ab.cell_sharing_caption(t8, mem, "smoke")


def test_setting_scores_figure_is_not_registered_with_pyplot():
    before = plt.get_fignums()
    summary = pd.DataFrame({"setting": ["a", "b"], "psnr_mean": [20.0, 21.0], "psnr_std": [0.1, float("nan")]})
    rows = pd.DataFrame({"setting": ["a", "b"], "seed": [0, 0], "psnr": [20.0, 21.0]})
    fig = figures.setting_scores(summary, rows, 14.0, title="t")
    assert isinstance(fig, Figure) and plt.get_fignums() == before
    assert fig.axes[0].get_ylim()[0] == pytest.approx(13.5)


# -- chapter 6: the state of the art ---------------------------------------------------------

def _sota_table():
    rows = []
    for protocol in ("standard", "hinas-reference"):
        for seed, psnr in ((0, 25.0), (1, 25.2)):
            rows.append(dict(method="HiNAS (ours)", protocol=protocol, seed=seed, psnr=psnr, ssim=0.7, params=250_000,
                             seconds_per_image=0.1, train_seconds=60.0, train_iterations=700, images=3,
                             dataset="embedded-test", device="cpu"))
        rows.append(dict(method="DnCNN (same budget)", protocol=protocol, seed=0, psnr=24.0, ssim=0.6,
                         params=556_096, seconds_per_image=0.2, train_seconds=60.0, train_iterations=700, images=3,
                         dataset="embedded-test", device="cpu"))
        rows.append(dict(method=NOISY_INPUT, protocol=protocol, seed=None, psnr=14.0, ssim=0.2, params=None,
                         seconds_per_image=None, train_seconds=None, train_iterations=None, images=3,
                         dataset="embedded-test", device="cpu"))
    rows.insert(0, dict(method="BM3D", protocol="standard", seed=None, psnr=26.0, ssim=0.75, params=None,
                        seconds_per_image=5.0, train_seconds=None, train_iterations=None, images=1,
                        dataset="embedded-test", device="cpu"))
    return pd.DataFrame(rows)


def test_sota_summary_and_reading():
    ours = tables.score_summary(_sota_table())
    assert list(ours.protocol[:3]) == ["standard"] * 3 and ours.protocol.iloc[-1] == "hinas-reference"
    h = ours[(ours.method == "HiNAS (ours)") & (ours.protocol == "standard")].iloc[0]
    assert h.seeds == 2 and h.PSNR == "25.10 ± 0.14"
    assert ours[ours.method == NOISY_INPUT].seeds.isna().all()
    assert list(sota_report.sota_view(ours).columns) == ["method", "protocol", "PSNR", "SSIM", "params", "s/image",
                                                          "train s", "seeds", "runs left out"]
    pub = tables.published_rows("table10").query("sigma == 50")
    lines = sota_report.sota_reading(ours, pub, "smoke", 50.0)
    assert "above the input by +11.10 dB" in lines[0] and "**HiNAS ahead** (margin: the seed spread of 0.14 dB)" in lines[2]
    assert "our HiNAS is below it (-0.90 dB" in lines[3]
    glance = sota_report.glance_rows(ours, pub, 50.0)
    assert [r["what"].split(" (sigma")[0] for r in glance] == ["HiNAS (ours)", "DnCNN (same budget)", "BM3D",
                                                               NOISY_INPUT]
    fig = figures.accuracy_vs_time(pub, ours, device="cpu", profile="smoke", sigma=50.0)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    note = sota_report.setup_note(plans.chapter_plan("sota", "quick"), "cpu", 50.0)
    assert "seeds [0, 1]" in note and "protocol standard only" in note  # read from the plan


def test_sota_leaves_out_runs_that_diverged_or_did_not_learn():
    table = _sota_table().assign(training="trained", training_evidence="loss 0.2 -> 0.05")
    table.loc[table.method == NOISY_INPUT, ["training", "training_evidence"]] = None
    table.loc[table.method == "BM3D", ["training", "training_evidence"]] = None
    seed1 = (table.method == "HiNAS (ours)") & (table.seed == 1)
    table.loc[seed1, ["training", "training_evidence", "psnr"]] = ["diverged", "its loss rose from 0.16 to 4e+04", 3.2]
    table.loc[table.method == "DnCNN (same budget)", "psnr"] = 14.1  # trained, but not above the noisy input
    ours = tables.score_summary(table)
    h = ours[(ours.method == "HiNAS (ours)") & (ours.protocol == "standard")].iloc[0]
    assert h.seeds == 1 and h.psnr == 25.0 and h.left_out == 1  # the diverged seed is not averaged in
    dn = ours[(ours.method == "DnCNN (same budget)") & (ours.protocol == "standard")].iloc[0]
    assert math.isnan(dn.psnr) and dn.left_out == 1 and dn.params == 556_096
    pub = tables.published_rows("table10").query("sigma == 50")
    lines = sota_report.sota_reading(ours, pub, "smoke", 50.0)
    assert sum("**diverged**" in x and "4e+04" in x for x in lines) == 2  # both protocols
    assert sum("**did not learn**" in x for x in lines) == 2
    assert not any("DnCNN ahead" in x or "HiNAS ahead" in x or "HiNAS against DnCNN" in x for x in lines)
    glance = {r["what"].split(" (sigma")[0]: r["measured"] for r in sota_report.glance_rows(ours, pub, 50.0)}
    assert glance["HiNAS (ours)"] == "25.00 dB" and glance["DnCNN (same budget)"].startswith("no result")
    fig = figures.accuracy_vs_time(pub, ours, device="cpu", profile="smoke", sigma=50.0)
    assert "DnCNN" not in [t.get_text() for t in fig.axes[1].texts]  # nothing plotted for it
    # a chapter whose every run diverged says so, and glances no number
    table.loc[table.method == "HiNAS (ours)", ["training", "psnr"]] = ["diverged", 3.2]
    none = sota_report.sota_reading(tables.score_summary(table), pub, "smoke", 50.0)
    assert none[-1].startswith("**Learning.** No HiNAS network is scored") and "noisy input scores 14.00 dB" in none[-1]


def test_published_views():
    v = tables.published_view("table8", ["method", "cell_sharing", "psnr"], sigma=50, labels={"psnr": "PSNR"})
    assert list(v.columns) == ["method", "cell sharing", "PSNR"] and len(v)
    p = tables.published_pivot("table11")
    assert p.columns[0] == "method" and "Set5" in p.columns and not math.isnan(p.Set5.iloc[0])
    assert tables.bullets(["a", "b"]) == "* a\n* b"


def test_a_moved_mixture_is_not_called_a_preference_when_the_seeds_disagree():
    from hinas.space.genotype import random_genotype

    m = {"epoch": 6, "n_ops": 7, "drift": 0.06, "op": "conv_3x3", "layer": 0, "median_margin": 0.01, "moved": True}
    assert "seeds decode different cells" in search_report.alpha_reading(m, 0, seeds_agree=False)
    assert "follows preferences" in search_report.alpha_reading(m, 0, seeds_agree=True)
    a, b = random_genotype("denoise", seed=0), random_genotype("denoise", seed=1)
    assert search_report.seeds_agree({0: {"genotype": a}, 1: {"genotype": b}}) is False
    assert search_report.seeds_agree({0: {"genotype": a}, 1: {"genotype": a}}) is True
    assert search_report.seeds_agree({0: {"genotype": a}}) is None
