"""Chapter 5's plan (hinas/plans/ablations.yaml) run at smoke through the campaign runner, read as
the paper's tables, and random search with weight sharing (hinas.engine.rsws, the ``rsws`` item)."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from hinas.book import ablation_report as ab, plans
from hinas.book.compare import NOISY_INPUT
from hinas.campaign import load_plan, run_campaign
from hinas.campaign.verify import verify
from hinas.errors import ConfigError


@pytest.fixture(scope="module")
def ran(tmp_path_factory, monkeypatch_module):
    monkeypatch_module.delenv("HINAS_DATA", raising=False)  # the embedded photos: seconds, everywhere
    plan = load_plan("ablations", "smoke")
    folder = tmp_path_factory.mktemp("plans") / "ablations"
    report = run_campaign(plan, folder, 3600, device="cpu", log=lambda m: None)
    return plan, folder, report


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_the_plan_runs_whole_and_verifies(ran):
    plan, folder, report = ran
    assert report["ok"] and report["totals"]["pending"] == 0, report["ran"]
    # the items that build on chapter 4's search ran from its sibling folder
    assert (folder.parent / "search" / "search-dn-s0" / "done").exists()
    assert (folder / "train-full-s0" / "done").exists()
    res = verify(folder)
    assert res["match"], res
    again = run_campaign(plan, folder, 3600, device="cpu", log=lambda m: None)  # every item reused
    assert not [r for r in again["ran"] if r["status"] == "done"]


def test_every_table_reads_its_rows_beside_the_floor(ran):
    plan, folder, _ = ran
    rows = plans.plan_rows(plan, folder)
    scores = plans.score_rows(rows, {})
    for table, spec in plan.tables.items():
        if table == "Table 8":
            continue
        t = plans.table_rows(plan, scores, table, floor=ab.FLOOR)
        assert list(t.method) == [*spec["rows"], NOISY_INPUT]  # in the plan's order, the floor last
        assert t.psnr.map(math.isfinite).all() and (t.images == 1).all()
        assert t.dataset.nunique() == 1  # every row on the same images
    t3 = plans.table_rows(plan, scores, "Table 3", floor=ab.FLOOR)
    assert list(ab.widths_table(t3)["channels per node"][:3]) == ["searched", "[8, 8]", "[4, 8]"]
    t8 = plans.search_rows(plan, rows, "Table 8")
    mem = plans.bench_result(plan, folder, "memory")
    assert sorted(t8.label) == ["eq5", "eq6"] and mem["memory_ratio"] > 1
    assert list(ab.cell_sharing_table(t8, mem)["cell sharing"]) == ["eq5", "eq6"]
    assert "Table 1's full row [0]" in ab.setup_note(plan, "cpu")


def test_a_committed_run_of_the_plan_is_read_through_the_same_tables(ran, tmp_path):
    """Chapter 5's first section and chapter 6's committed tables: a plan's run committed under
    results/ is shown table by table with the same reader as the chapter's own run (here the smoke
    run), each table's rows mean ± std beside the floor, paired image by image against the first."""
    from IPython.display import Markdown

    from hinas.book import campaigns

    plan, folder, _ = ran
    assert plans.committed_folder(tmp_path, plan) == tmp_path / "results" / "plans-smoke" / "ablations"
    shown = ab.committed_view(plan, folder, folder.parent)
    titles = [d.data for d in shown if isinstance(d, Markdown) and d.data.startswith("**")]
    assert [t.split("**")[1] for t in titles] == ["Table 1", "Table 3", "Table 4", "Table 6"]  # Table 8: searches
    assert all("`ablations`; profile `smoke`, device `cpu`" in t and "seeds [0]" in t for t in titles)
    tables = [d for d in shown if not isinstance(d, Markdown)]
    first = tables[0].data
    assert list(first.iloc[:, 0]) == [*plan.tables["Table 1"]["rows"], NOISY_INPUT]
    paired = [d.data for d in tables if "comparison" in d.data.columns]
    assert len(paired) == 4 and paired[0].comparison.iloc[0] == "HiNAS, LWAS + ResL - HiNAS, LWAS"
    missing = ab.committed_view(plan, tmp_path / "results" / "plans-smoke" / "ablations", tmp_path)
    assert len(missing) == 1 and "No `smoke` run of this plan is committed yet" in missing[0].data
    assert "results/plans-smoke/ablations" in missing[0].data
    # as chapter 6 reads a committed campaign folder: its plan's tables, and their items kept out of other summaries
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "results").symlink_to(folder.parent)
    views = campaigns.table_views(tmp_path / "repo")
    assert [d.data.split("**")[1] for d in views if isinstance(d, Markdown) and d.data.startswith("**")] == \
        ["Table 1", "Table 3", "Table 4", "Table 6"]
    assert "results/ablations/eval-full-s0" in campaigns.tabled_items(tmp_path / "repo")
    # beside each table: whether the searches its genotypes came from moved (a genotype of an unmoved search is no choice)
    came_from = [d.data for d in views if isinstance(d, Markdown) and d.data.startswith("Where each genotype came from")]
    assert came_from and all(("did not move" in t or " moved: " in t) and "search `" in t for t in came_from)


def test_rsws_trains_the_best_ranked_random_architecture(ran):
    plan, folder, _ = ran
    summary = json.loads((folder / "rsws-s0" / "summary.json").read_text())
    assert summary["samples"] == 2 and len(summary["scores"]) == 2
    assert summary["scores"][summary["best"]]["score"] == max(s["score"] for s in summary["scores"])
    ranked = json.loads((folder / "rsws-s0" / "genotype.json").read_text())
    trained = json.loads((folder / "train-rsws-s0" / "genotype.json").read_text())
    assert ranked["provenance"]["source"] == "rsws_weight_sharing" and ranked["lwas"] is False
    assert trained["cells"] == ranked["cells"] and trained["path"] == ranked["path"]


def test_verify_catches_an_rsws_claim_that_is_not_its_scores(ran, tmp_path):
    _, folder, _ = ran
    copy = tmp_path / "ablations"
    shutil.copytree(folder, copy)
    path = copy / "rsws-s0" / "summary.json"
    s = json.loads(path.read_text())
    s["best"] = 1 - s["best"]
    path.write_text(json.dumps(s))
    res = verify(copy)
    assert not res["match"]


def test_rsws_items_are_checked_when_the_plan_loads(tmp_path):
    base = (tmp_path / "base.yaml")
    base.write_text("name: base\nitems:\n  - {name: s, kind: search, config: {profile: smoke}}\n"
                    "  - {name: t, kind: train, genotype_from: s, config: {profile: smoke}}\n")
    for extra, words in (("  - {name: r, kind: rsws}\n", "needs 'supernet_from"),
                         ("  - {name: r, kind: rsws, supernet_from: t}\n", "names a train item"),
                         ("  - {name: r, kind: rsws, supernet_from: s, samples: 0}\n", "positive integer"),
                         ("  - {name: r, kind: rsws, supernet_from: s, sigma: 5}\n", "unknown key")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(base.read_text() + extra)
        with pytest.raises(ConfigError, match=words):
            load_plan(bad)
    good = tmp_path / "good.yaml"
    good.write_text(base.read_text() + "  - {name: r, kind: rsws, supernet_from: s, samples: 3}\n"
                    "  - {name: u, kind: train, genotype_from: r, config: {profile: smoke}}\n")
    assert load_plan(good).item("u").depends == ["r"]


def test_a_plans_tables_name_its_items(tmp_path):
    text = ("name: t\nprofiles: {smoke: {seeds: [0]}}\nitems:\n"
            "  - {name: 's-{seed}', each: seeds, kind: search}\n")
    for tables, words in (("tables: {T: {each: nope, rows: {a: 's-{seed}'}}}\n", "neither a seed list"),
                          ("tables: {T: {each: [0, x], rows: {a: 's-{seed}'}}}\n", "nor a list of seeds"),
                          ("tables: {T: {each: [1], rows: {a: 's-{seed}'}}}\n", "names no item"),
                          ("tables: {T: {each: seeds, rows: {a: 'x-{seed}'}}}\n", "names no item"),
                          ("tables: {T: {rows: {a: 's-{seed}'}}}\n", "expected")):
        f = tmp_path / "t.yaml"
        f.write_text(text + tables)
        with pytest.raises(ConfigError, match=words):
            load_plan(f, "smoke")
    f.write_text(text + "tables: {T: {each: seeds, rows: {a: 's-{seed}'}}}\n")
    assert load_plan(f, "smoke", seed=2).tables == {"T": {"seeds": [2], "rows": {"a": "s-{seed}"}}}
    f.write_text(text + "tables: {T: {each: [0], rows: {a: 's-{seed}'}}}\n")  # the seeds themselves
    assert load_plan(f, "smoke").tables == {"T": {"seeds": [0], "rows": {"a": "s-{seed}"}}}


def test_rank_random_architectures_keeps_the_best_by_the_selection_score():
    import torch

    from hinas.data.sampling import central_crops
    from hinas.data.datasets import load_dataset
    from hinas.engine import RunConfig
    from hinas.engine.rsws import rank_random_architectures
    from hinas.space.supernet import Supernet

    cfg = RunConfig.from_profile("smoke", "denoise", None)
    torch.manual_seed(0)
    net = Supernet(cfg.supernet_config()).eval()
    records = central_crops(load_dataset("embedded-test", None, grey=True).limit(1), 32).records
    with torch.no_grad():
        res = rank_random_architectures(net, records, cfg.replace(val_protocol="reference"), n=3, seed=0)
    best = res["scores"][res["best"]]
    assert len(res["scores"]) == 3 and best["score"] == max(r["score"] for r in res["scores"])
    assert all(math.isfinite(r["psnr"]) for r in res["scores"])
    g = res["genotype"]
    assert g.path == best["path"] and g.provenance["source"] == "rsws_weight_sharing"
    assert g.provenance["val_protocol"] == "reference" and g.layers == cfg.layers
