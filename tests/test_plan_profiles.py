"""Plans parameterised by profile (hinas.campaign.expand): seed lists, per-profile settings and
changes, included plans in sibling folders, item definitions (a changed item is never reused),
baseline items and central-crop evaluations; real smoke runs on the embedded photos."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hinas.campaign import campaign_status, load_plan, run_campaign, verify
from hinas.errors import ConfigError

QUIET = dict(log=lambda msg: None)

BASE = """\
name: base
profiles:
  smoke:
    seeds: [0, 1]
    first: [0]
    defaults: {iterations: 2, epochs: 1}
    eval: {limit: 1, crop: 48}
  quick:
    seeds: [0]
    first: [0]
defaults: {task: denoise, a_lr: 0.03}
items:
  - name: search-s{seed}
    each: first
    kind: search
  - name: train-s{seed}
    each: first
    kind: train
    genotype_from: search-s{seed}
    from_unmoved_search: true
  - name: eval-s{seed}
    each: first
    kind: eval
    network_from: train-s{seed}
    sigma: 50
  - name: noisy
    kind: baseline
    method: noisy-input
    sigma: 50
    protocols: [standard, hinas-reference]
"""

TOP = """\
name: top
include: [base]
profiles:
  smoke: {}
items:
  - name: dncnn-s{seed}
    each: first
    kind: train
    config: {model: dncnn}
  - name: eval-dncnn-s{seed}
    each: first
    kind: eval
    network_from: dncnn-s{seed}
    sigma: 50
"""


def _plans(tmp_path, base=BASE, top=TOP):
    (tmp_path / "base.yaml").write_text(base)
    (tmp_path / "top.yaml").write_text(top)
    return tmp_path / "base.yaml", tmp_path / "top.yaml"


def test_a_plan_at_a_profile(tmp_path):
    base, top = _plans(tmp_path)
    p = load_plan(base, "smoke")
    assert [i.name for i in p.items] == ["search-s0", "train-s0", "eval-s0", "noisy"]
    s = p.item("search-s0")
    assert s.config == {"task": "denoise", "a_lr": 0.03, "profile": "smoke", "iterations": 2, "epochs": 1, "seed": 0}
    assert p.item("eval-s0").options == {"limit": 1, "crop": 48, "sigma": 50}  # the profile's eval options under its own
    assert [i.name for i in load_plan(base, "smoke", seed=5).items][:1] == ["search-s5"]
    assert load_plan(base, "smoke", seed=5).item("train-s5").config["seed"] == 5
    q = load_plan(base, "quick")
    assert q.item("search-s0").config["profile"] == "quick" and "limit" not in q.item("eval-s0").options
    # the including plan inherits the included plan's scale and reaches its items
    t = load_plan(top, "smoke")
    assert [i.name for i in t.all_items()][:4] == ["search-s0", "train-s0", "eval-s0", "noisy"]
    assert t.item("dncnn-s0").config["iterations"] == 2 and t.item("eval-dncnn-s0").options["crop"] == 48
    assert t.owner("train-s0").name == "base" and t.owner("dncnn-s0") is t
    assert t.folder(tmp_path / "r" / "top", "train-s0") == tmp_path / "r" / "base" / "train-s0"


def test_a_profile_sets_its_trainings_apart_from_its_searches(tmp_path):
    text = BASE.replace("    defaults: {iterations: 2, epochs: 1}", "    defaults: {iterations: 2, epochs: 1}\n"
                        "    train: {iterations: 3, train_lr: 0.02}", 1)
    text = text.replace("    genotype_from: search-s{seed}\n", "    genotype_from: search-s{seed}\n    config: {train_lr: 0.01}\n")
    base, top = _plans(tmp_path, text)
    p = load_plan(base, "smoke")
    assert p.item("search-s0").config["iterations"] == 2 and "train_lr" not in p.item("search-s0").config
    assert p.item("train-s0").config["iterations"] == 3 and p.item("train-s0").config["train_lr"] == 0.01  # its own wins
    assert load_plan(top, "smoke").item("dncnn-s0").config["iterations"] == 3  # an including plan extends it


def test_a_profile_changes_one_item(tmp_path):
    text = BASE.replace("    first: [0]\n    defaults", "    first: [0]\n    items:\n      noisy: {protocols: [standard]}\n"
                                                      "      train-s{seed}:\n        config: {iterations: 3}\n    defaults", 1)
    base, _ = _plans(tmp_path, text)
    p = load_plan(base, "smoke")
    assert p.item("noisy").options["protocols"] == ["standard"] and p.item("train-s0").config["iterations"] == 3
    assert load_plan(base, "quick").item("noisy").options["protocols"] == ["standard", "hinas-reference"]


@pytest.mark.parametrize("change, message", [
    (lambda t: t, "give one of smoke, quick"),  # no profile asked for
    (lambda t: t.replace("each: first\n    kind: search", "each: nope\n    kind: search"), "'each: nope' names no seed"),
    (lambda t: t.replace("name: search-s{seed}\n    each: first", "name: search-s{seed}"), "needs 'each: seeds'"),
    (lambda t: t.replace("name: noisy", "name: noisy\n    each: first"), "put '{seed}' in its name"),
    (lambda t: t.replace("seeds: [0, 1]", "seeds: [0, 0]"), "a list of seeds"),
    (lambda t: t.replace("seeds: [0, 1]", "seeds: [0, 1]\n    items: {nope: {limit: 2}}"), "names no item"),
    (lambda t: t.replace("seeds: [0, 1]", "seeds: [0, 1]\n    items: {noisy: {kind: eval}}"), "not its name, kind"),
    (lambda t: t.replace("    method: noisy-input\n", "    method: wiener\n"), "one of noisy-input, bm3d"),
    (lambda t: t.replace("eval: {limit: 1, crop: 48}", "eval: {limit: 1, crop: 8}"), "at least 11 pixels"),
    (lambda t: t.replace("    from_unmoved_search: true", "    from_unmoved_search: 1"), "true or false"),
    (lambda t: t.replace("    from_unmoved_search: true", "    from_unmoved_search: true\n    genotype_edit: {kind: R3, edges: 2}"),
     "'genotype_edit' must be"),
    (lambda t: t.replace("    from_unmoved_search: true", "    from_unmoved_search: true\n    genotype_edit: {kind: R1, edges: 0}"),
     "edges must be a positive integer"),
])
def test_bad_plans_are_one_line(tmp_path, change, message):
    base, _ = _plans(tmp_path, change(BASE))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("{", r"\{")) as exc:
        load_plan(base, None if message.startswith("give") else "smoke")
    assert "\n" not in str(exc.value) and str(base) in str(exc.value)


def test_bad_includes(tmp_path):
    _, top = _plans(tmp_path)
    (tmp_path / "base.yaml").write_text(BASE.replace("name: base\n", "name: base\ninclude: [top]\n"))
    with pytest.raises(ConfigError, match="goes round in a circle"):
        load_plan(top, "smoke")
    _plans(tmp_path, top=TOP.replace("dncnn-s{seed}\n    each", "train-s{seed}\n    each", 1))
    with pytest.raises(ConfigError, match="used twice"):
        load_plan(top, "smoke")
    _plans(tmp_path, top=TOP.replace("include: [base]", "include: [nope]"))
    with pytest.raises(ConfigError, match="unknown plan 'nope'"):
        load_plan(top, "smoke")
    with pytest.raises(ConfigError, match="has no profiles"):
        load_plan("paper", "smoke")


def test_a_plan_with_its_include_runs_reuses_and_verifies(tmp_path):
    _, top = _plans(tmp_path)
    plan = load_plan(top, "smoke")
    out = tmp_path / "r" / "top"
    report = run_campaign(plan, out, 600, **QUIET)
    assert report["ok"] and report["done"] == 2
    assert [r["name"] for r in report["ran"]] == ["search-s0", "train-s0", "eval-s0", "noisy", "dncnn-s0",
                                                  "eval-dncnn-s0"]
    base = tmp_path / "r" / "base"
    assert {d.name for d in base.iterdir() if d.is_dir()} >= {"search-s0", "train-s0", "eval-s0", "noisy"}
    noisy = json.loads((base / "noisy" / "summary.json").read_text())
    assert noisy["method"] == "noisy-input" and "network" not in noisy and noisy["params"] is None
    net = json.loads((base / "eval-s0" / "summary.json").read_text())
    sets = {e["dataset"] for e in noisy["evaluations"] + net["evaluations"]}  # the same images for both
    assert len(sets) == 1 and sets.pop() in ("embedded-test[crop48]", "BSDS500-test[crop48]")
    assert {e["protocol"] for e in noisy["evaluations"]} == {"standard", "hinas-reference"}
    # the searched supernet is kept (what RSWS ranks with), and loads into the search's supernet
    from safetensors.torch import load_file

    from hinas.campaign.options import item_config
    from hinas.space.supernet import Supernet

    assert "supernet.safetensors" in json.loads((base / "search-s0" / "summary.json").read_text())["files"]
    Supernet(item_config(plan.item("search-s0"), None, None).supernet_config()).load_state_dict(
        load_file(base / "search-s0" / "supernet.safetensors"), strict=True)
    train = json.loads((base / "train-s0" / "summary.json").read_text())
    assert train["health"]["status"] in ("trained", "diverged") and train["definition"] == plan.item("train-s0").definition
    # a second call finds everything done and runs nothing
    again = run_campaign(plan, out, 600, **QUIET)
    assert again["ok"] and not again["ran"]
    for folder in (base, out):  # the baseline's method and the crops scored again by the verifier
        v = verify(folder, images=1)
        assert v["match"], v["problems"]
    assert {n["path"].rsplit("/", 1)[1] for n in verify(base, images=1)["networks"]} == {"train-s0", "noisy"}


def test_a_changed_definition_is_stale_never_reused(tmp_path):
    base, _ = _plans(tmp_path)
    out = tmp_path / "r" / "base"
    assert run_campaign(load_plan(base, "smoke"), out, 600, **QUIET)["ok"]
    (tmp_path / "base.yaml").write_text(BASE.replace("sigma: 50\n    protocols", "sigma: 30\n    protocols"))
    changed = load_plan(base, "smoke")
    st = {i["name"]: i for i in campaign_status(changed, out)["items"]}
    assert st["noisy"]["status"] == "stale" and "another definition" in st["noisy"]["problem"]
    assert st["eval-s0"]["status"] == "done"  # unchanged items are still the same experiment
    before = (out / "noisy" / "summary.json").read_bytes()
    report = run_campaign(changed, out, 600, **QUIET)
    assert not report["ok"] and (out / "noisy" / "summary.json").read_bytes() == before  # never run over
    cli = subprocess.run([sys.executable, "-m", "hinas", "campaign", "status", "--plan", str(base), "--profile",
                          "smoke", "--results", str(out)], capture_output=True, text=True)
    assert cli.returncode == 1 and "STALE" in cli.stdout


def test_the_movement_gate_holds_unless_the_plan_lifts_it(tmp_path):
    text = BASE.replace("    from_unmoved_search: true\n", "").replace("a_lr: 0.03", "a_lr: 0.000001")
    base, _ = _plans(tmp_path, text)
    report = run_campaign(load_plan(base, "smoke"), tmp_path / "r", 600, **QUIET)
    waiting = {r["name"]: r for r in report["ran"] if r["status"] == "waiting"}
    assert "train-s0" in waiting and "did not move" in waiting["train-s0"]["reason"]


def test_the_command_line_takes_a_profile(tmp_path):
    base, _ = _plans(tmp_path)
    run = [sys.executable, "-m", "hinas", "campaign", "status", "--plan", str(base), "--results", str(tmp_path / "r")]
    for extra, code, text in (([], 2, "give one of smoke, quick"), (["--profile", "smoke"], 0, "pending  search-s0"),
                              (["--profile", "gpu"], 2, "no profile 'gpu'")):
        out = subprocess.run(run + extra, capture_output=True, text=True)
        assert out.returncode == code and text in out.stdout + out.stderr, out
        assert "Traceback" not in out.stderr


def test_the_books_plans_load_at_every_profile():
    for name in ("search", "sota"):
        for profile in ("smoke", "quick", "gpu", "paper"):
            plan = load_plan(name, profile)
            assert plan.all_items() and all(i.definition for i in plan.all_items())
    sota = load_plan("sota", "quick")
    # DnCNN trains with exactly the HiNAS networks' settings (the same budget), at this profile
    hinas_cfg, dncnn_cfg = sota.item("train-dn50-s0").config, sota.item("train-dncnn50-s0").config
    assert {k: v for k, v in dncnn_cfg.items() if k != "model"} == {k: v for k, v in hinas_cfg.items()}


def test_the_ablation_plan_compares_like_with_like_at_every_profile():
    """Chapter 5's plan (hinas/plans/ablations.yaml): Table 1's full row is chapter 4's search at
    every seed; every ablation network trains with the same budget, differing only in what its
    table varies; Table 3's fixed widths are the paper's (f = 20) scaled by the profile's net_f; and
    every network is scored on the noisy input's images."""
    from hinas.campaign.options import item_config

    varied = {"node_channels", "train_ssim_weight", "lwas", "residual", "seed"}
    for profile in ("smoke", "quick", "gpu", "paper"):
        plan = load_plan("ablations", profile)
        chapter4 = [i.config["seed"] for i in load_plan("search", profile).items if i.kind == "search"]
        assert plan.tables["Table 1"]["seeds"] == chapter4
        assert all(plan.item(f"train-full-s{s}").genotype_from == f"search-dn-s{s}" for s in chapter4)
        trains = [i for i in plan.items if i.kind == "train"]
        budgets = {tuple(sorted((k, str(v)) for k, v in i.config.items() if k not in varied)) for i in trains}
        assert len(budgets) == 1, f"{profile}: the ablation networks train with different budgets"
        for s in plan.tables["Table 3"]["seeds"]:
            cfg = item_config(plan.item(f"train-full-s{s}"), "cpu", None)
            k = (cfg.net_f or 20) / 20
            assert plan.item(f"train-w40-s{s}").config["node_channels"] == [round(40 * k)] * cfg.layers
            assert plan.item(f"train-wm-s{s}").config["node_channels"] == [round(c * k) for c in (20, 40, 80)][: cfg.layers]
        floor = plan.item("noisy-ablations-dn50").options
        for it in (i for i in plan.items if i.kind == "eval"):
            assert {k: v for k, v in it.options.items() if k != "protocols"} == \
                {k: v for k, v in floor.items() if k not in ("method", "protocols")}


def test_a_training_of_edited_cells(tmp_path):
    """Table 6's rows: the searched genotype with ops replaced (R1) or connections changed (R2)."""
    from hinas.space.genotype import Genotype, modify_genotype

    text = BASE.replace("    from_unmoved_search: true\n", "    from_unmoved_search: true\n"
                        "    genotype_edit: {kind: R2, edges: 1}\n")
    base, _ = _plans(tmp_path, text)
    plan = load_plan(base, "smoke")
    assert plan.item("train-s0").options["genotype_edit"] == {"kind": "R2", "edges": 1}
    (tmp_path / "plain").mkdir()
    plain = load_plan(_plans(tmp_path / "plain")[0], "smoke")
    assert plan.item("train-s0").definition != plain.item("train-s0").definition  # another experiment
    assert plan.item("search-s0").definition == plain.item("search-s0").definition
    out = tmp_path / "r"
    assert run_campaign(plan, out, 600, only=["search-s0", "train-s0"], **QUIET)["ok"]
    searched = Genotype.load(out / "search-s0" / "genotype.json")
    trained = Genotype.load(out / "train-s0" / "genotype.json")
    assert trained.cells == modify_genotype(searched, "R2", 1, seed=0).cells != searched.cells
