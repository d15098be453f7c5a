"""Committed results as the book reads them (hinas.book.committed): the readings are computed from the
numbers with the tie rule, whatever the numbers are."""

import json

import pandas as pd
import pytest

from hinas.book import committed as cm
from hinas.book import compare, published, tables
from hinas.eval import stats

PAPER_50 = float(tables.published_rows("table10").query("method == 'HiNAS' and sigma == 50").psnr.iloc[0])


def _row(model, protocol, psnr, seed=0, precision="fp32", params=250_000, iterations=7_500, best=7_500):
    trained = model in ("hinas", "dncnn")
    return {"model": model, "network": f"results/x/train-{model}-s{seed}" if trained else None,
            "seed": seed if trained else None, "params": params if trained else None,
            "train_iterations": iterations if trained else None, "paper_iterations": 600_000 if trained else None,
            "best_iteration": best if trained else None, "protocol": protocol, "precision": precision,
            "images": 200, "psnr": psnr, "ssim": 0.7, "evaluated on": "gpu", "trained on": "gpu" if trained else None}


@pytest.mark.parametrize("offset", [-0.78, 0.31])
def test_reading_against_the_paper_follows_the_numbers(offset):
    rows = pd.DataFrame([_row("hinas", "hinas-reference", PAPER_50 + offset), _row("hinas", "standard", 25.2)])
    text = " ".join(cm.denoise_reading(rows, 50.0))
    assert f"{abs(offset):.2f} dB {'below' if offset < 0 else 'above'}" in text
    assert "7,500 iterations, 1.2% of the released code's 600,000" in text
    assert "still improving" in text  # best validation at the last iteration
    stopped = rows.assign(best_iteration=2_000)
    assert "stopped improving" in " ".join(cm.denoise_reading(stopped, 50.0))


@pytest.mark.parametrize("hinas, dncnn, verdict", [(25.22, 25.18, "within one training seed's reach"), (25.9, 25.2, "ahead"),
                                                   (24.5, 25.2, "behind")])
def test_reading_against_dncnn_uses_the_tie_rule(hinas, dncnn, verdict):
    rows = pd.DataFrame([_row("hinas", "standard", hinas),
                         _row("dncnn", "standard", dncnn, params=556_096, iterations=17_918)])
    line = next(s for s in cm.denoise_reading(rows, 50.0) if "DnCNN" in s)
    assert f"**{verdict}**" in line and f"{hinas - dncnn:+.2f} dB" in line
    assert "0.45x DnCNN's parameters" in line and "7,500 iterations to DnCNN's 17,918" in line
    # with seeds, the margin is their spread: 0.05 dB apart is a tie only inside a wide spread
    seeded = pd.DataFrame([_row("hinas", "standard", 25.30, seed=0), _row("hinas", "standard", 25.32, seed=1),
                           _row("dncnn", "standard", 25.20, seed=0), _row("dncnn", "standard", 25.21, seed=1)])
    assert "**ahead**" in next(s for s in cm.denoise_reading(seeded, 50.0) if "DnCNN" in s)


def test_paired_reading_of_single_runs_takes_the_papers_seed_spread():
    """Paired images measure images, not training seeds: one run each is within one seed's reach
    unless the difference beats the paper's seed spread (Table 1, 0.07 dB at sigma 50), and says so."""
    rows = pd.DataFrame([_row("hinas", "standard", 25.22), _row("dncnn", "standard", 25.18, params=556_096)])
    names = [f"im{i}" for i in range(200)]
    hinas = [{"name": n, "psnr": 25.22 + 0.001 * (i % 3)} for i, n in enumerate(names)]
    for gap, call in ((0.04, "within one training seed's reach"), (0.2, "HiNAS ahead")):
        dncnn = [{"name": r["name"], "psnr": r["psnr"] - gap} for r in hinas]
        scores = {cm.METHOD_LABELS["hinas"]: hinas, cm.METHOD_LABELS["dncnn"]: dncnn}
        line = next(s for s in cm.denoise_reading(rows, 50.0, scores=scores) if "DnCNN" in s)
        assert f"**{call}** by the paired rule" in line and "seed spread 0.07 dB, the paper's, Table 1" in line
    assert published.seed_spread_db(50) == 0.07 and published.seed_spread_db(45) is None


def test_missing_numbers_are_said_missing_and_table_is_labelled():
    rows = pd.DataFrame([_row("hinas", "standard", 25.2), _row("noisy", "standard", 14.9)])
    reading = cm.denoise_reading(rows, 50.0)
    assert any("Against the paper" in s and "missing" in s for s in reading)
    assert any("DnCNN" in s and "missing" in s for s in reading)
    table = cm.denoise_table(rows, 50.0)
    assert list(table.method[:2]) == ["HiNAS (ours)", compare.NOISY_INPUT]
    assert {"HiNAS (published, Table 10)", "BM3D (published, Table 10)"} <= set(table.method)
    assert cm.denoise_reading(pd.DataFrame(), 50.0) == []


def test_committed_rows_are_summarised_like_the_chapters_own_runs():
    """The committed table is the chapter's own summary (hinas.book.tables.score_summary): a seed
    whose training diverged is left out of the mean and counted, never scored."""
    rows = pd.DataFrame([_row("hinas", "standard", 25.0, seed=0), _row("hinas", "standard", 25.4, seed=1),
                         _row("hinas", "standard", 3.2, seed=2), _row("noisy", "standard", 14.9)])
    rows["training"] = ["trained", "trained", "diverged", None]
    rows["training_evidence"] = ["", "", "its loss rose from 0.2 to 4e4", None]
    table = cm.denoise_table(rows, 50.0).set_index("method")
    hinas = table.loc["HiNAS (ours)"]
    assert hinas.PSNR == "25.20 ± 0.28" and hinas.seeds == "0, 1" and hinas["runs left out"] == 1
    assert table.loc[compare.NOISY_INPUT]["runs left out"] == 0


def test_committed_files_become_rows(tmp_path):
    """A campaign folder, a CPU evaluation of its network and full-test-set baselines; a baseline on
    a subset of the images or another sigma is left out."""
    repo = tmp_path
    net = repo / "results" / "plan-x" / "train-a"
    net.mkdir(parents=True)
    (net / "done").write_text("{}")
    (net / "summary.json").write_text(json.dumps({
        "item": "train-a", "kind": "train", "model": "dncnn", "params": 556096, "device": "gpu",
        "metrics": {"val_psnr": 24.7, "best_iteration": 90},
        "schedule": {"planned_iterations": 100, "paper_iterations": 600000},
        "config": {"task": "denoise", "sigma": [50.0], "seed": 3, "profile": "gpu"}, "provenance": {"plan": "smoke"}}))
    (repo / "results" / "cpu-eval").mkdir()
    (repo / "results" / "cpu-eval" / "a.json").write_text(json.dumps({
        "dataset": "BSDS500-test", "sigma": 50.0, "protocol": "standard", "psnr": 25.1, "ssim": 0.69, "images": 200,
        "run": "results/plan-x/train-a", "model": "dncnn", "params": 556096, "embedded": False}))
    base = repo / "results" / "baselines"
    base.mkdir()
    for name, method, images, sigma in (("bm3d_all", "bm3d", 200, 50.0), ("bm3d_first10", "bm3d", 10, 50.0),
                                        ("noisy_first10", "noisy", 10, 50.0), ("noisy_30", "noisy", 200, 30.0)):
        (base / f"{name}.json").write_text(json.dumps({
            "dataset": "BSDS500-test", "sigma": sigma, "protocol": "standard", "psnr": 25.5, "ssim": 0.68,
            "images": images, "method": method, "device": "cpu", "embedded": False}))
    rows = cm.denoise_rows(repo, 50.0)
    assert sorted(rows.model) == ["bm3d", "dncnn"]
    dn = rows[rows.model == "dncnn"].iloc[0]
    assert dn.seed == 3 and dn.train_iterations == 100 and dn["evaluated on"].startswith("cpu")
    assert dn["trained on"] == "gpu" and len(cm.campaign_rows(repo, "train")) == 1
    assert len(cm.campaign_folders(repo)) == 1 and len(cm.campaign_rows(repo, "eval")) == 0
    left = cm.not_done(repo)  # every item of the named plan but this one (not in the smoke plan)
    assert len(left) and "train-a" not in set(left.item)


def test_the_committed_gpu_genotype_is_labelled_not_searched():
    """Its search moved alpha by 0.0019 and beta by 0.004 (the threshold is 0.02): every table
    that shows the network trained from it says so."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    moves = cm.search_movements(repo)
    assert moves["results/paper/search-dn-s0"]["moved"] is False
    # the plan's networks of that genotype: the committed one and the CPU comparison's (issue 31)
    assert cm.unsearched_networks(repo) == {"results/paper/train-dn50-s0": "search-dn-s0",
                                            "results/paper/train-dn50-unsearched-s0-3k": "search-dn-s0"}
    table = cm.denoise_table(cm.denoise_rows(repo, 50.0), 50.0, cm.unsearched_networks(repo))
    assert cm.UNSEARCHED in set(table.method) and "HiNAS (ours)" not in set(table.method)
    assert cm.search_table(cm.campaign_rows(repo, "search"), moves)["searched?"].str.startswith("not searched").all()


def test_paired_differences_on_the_same_images():
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    scores = cm.per_image_scores(repo, 50.0)
    assert all(len(v) == 200 for v in scores.values())  # the most complete file of each method
    t = compare.paired_table(scores, cm.UNSEARCHED).set_index("comparison")
    bm3d = t.loc[f"{cm.UNSEARCHED} - BM3D"]
    assert bm3d["mean PSNR difference (dB)"] < 0 and bm3d["reading"] == "behind"
    d = stats.paired_difference([{"name": "a", "psnr": 1.0}, {"name": "b", "psnr": 2.0}],
                                  [{"name": "a", "psnr": 1.0}, {"name": "b", "psnr": 1.0}, {"name": "c", "psnr": 9.0}])
    assert d["images"] == 2 and d["wins"] == 1 and d["losses"] == 0 and d["mean"] == 0.5
    assert stats.paired_verdict({"mean": 0.05, "se": 0.01}) == "ahead"
    assert stats.paired_verdict({"mean": 0.05, "se": 0.03}) == "tie"
    assert stats.paired_verdict({"mean": 0.05, "se": 0.001}, spread=0.1) == "tie"  # inside the seed spread


def test_glance_names_an_unsearched_network_and_says_how_much_of_the_plan_is_done():
    from pathlib import Path

    from hinas.book.campaigns import seconds_by_device
    from hinas.campaign import campaign_status, load_plan

    repo = Path(__file__).resolve().parents[1]
    rows = cm.denoise_rows(repo, 50.0)
    whats = [r["what"] for r in cm.denoise_glance(rows, 50.0, cm.unsearched_networks(repo))]
    assert whats and all(w.startswith(cm.UNSEARCHED) for w in whats)
    totals = campaign_status(load_plan("paper"), repo / "results" / "paper")["totals"]
    total = sum(totals[k] for k in ("done", "pending", "waiting", "failed", "corrupt", "incomplete"))
    (line,) = cm.plan_progress(repo)
    assert f"**{totals['done']} of {total} items done**" in line and "`paper`" in line
    # the seconds are split by device, never all called GPU-seconds (the full search runs on the CPU)
    report = campaign_status(load_plan("paper"), repo / "results" / "paper")
    by_device = seconds_by_device(report["items"])
    assert abs(sum(by_device.values()) - totals["seconds_spent"]) < 1 and "GPU-seconds" not in line
    assert all(f"{s:,.0f} on {dev}" in line for dev, s in by_device.items())
