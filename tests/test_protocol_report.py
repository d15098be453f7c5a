"""The committed protocol ladders (results/protocol/) as chapter 6 reads them: their end steps agree
with the committed evaluations of the same networks and baselines on the same images (so the files
can be trusted by content), and the tables and sentences follow the numbers."""

import pytest

from hinas.book import committed as cm, protocol_report as pr, tables
from hinas.book.settings import REPO_ROOT
from hinas.eval.protocol_ladder import PROTOCOL_STEPS, STEPS, step_differences

SIGMA = 50.0


@pytest.fixture(scope="module")
def lad():
    return pr.ladders(REPO_ROOT, SIGMA, cm.unsearched_networks(REPO_ROOT))


def test_every_committed_method_has_a_ladder(lad):
    assert {"BM3D", cm.UNSEARCHED, cm.METHOD_LABELS["dncnn"], cm.METHOD_LABELS["noisy"]} <= set(lad)
    assert all(d["dataset"] == "BSDS500-test" and d["per_image"] for d in lad.values())


@pytest.mark.parametrize("label, step, protocol", [
    (cm.UNSEARCHED, "standard", "standard"), (cm.UNSEARCHED, "fresh-noise", "hinas-reference"),
    ("BM3D", "standard", "standard"), (cm.METHOD_LABELS["dncnn"], "standard", "standard"),
    (cm.METHOD_LABELS["noisy"], "standard", "standard"),
    (cm.METHOD_LABELS["noisy"], "fresh-noise", "hinas-reference")])
def test_ladder_ends_agree_with_the_committed_evaluations(lad, label, step, protocol):
    model = {"BM3D": "bm3d", cm.METHOD_LABELS["noisy"]: "noisy", cm.METHOD_LABELS["dncnn"]: "dncnn"}.get(label, "hinas")
    committed = cm.per_image_scores(REPO_ROOT, SIGMA, protocol=protocol)
    key = next(k for k in committed if k.startswith(cm.method_label(model, None, None).split(" (")[0]))
    theirs = {r["name"]: r["psnr"] for r in committed[key]}
    ours = {r["name"]: r["scores"][step]["psnr"] for r in lad[label]["per_image"]}
    assert set(ours) <= set(theirs)
    worst = max(abs(ours[n] - theirs[n]) for n in ours)
    assert worst < {"hinas": 0.01, "dncnn": 1e-3}.get(model, 1e-6)  # GPU or thread-count rounding for networks


def test_ladder_table_parts_add_up(lad):
    t = pr.ladder_table(lad)
    assert len(t) == len(PROTOCOL_STEPS) + 2 and set(lad) <= set(t.columns) | {"BM3D (profile vn)"}
    for label, d in lad.items():
        if label not in t.columns:
            continue
        parts = [r["psnr"]["mean"] for r in step_differences(d) if STEPS[r["step"]] in PROTOCOL_STEPS]
        total = d["summary"]["fresh-noise"]["psnr"] - d["summary"]["standard"]["psnr"]
        assert sum(parts) == pytest.approx(total, abs=1e-9)
        assert t[label].iloc[-1].startswith(f"{total:+.3f}")


def test_gap_table_states_what_is_missing(lad):
    rows = cm.denoise_rows(REPO_ROOT, SIGMA)
    gap = pr.gap_table(rows, lad, SIGMA, "search-dn-s0, not searched")
    pub = float(tables.published_rows("table10").query("method == 'HiNAS' and sigma == 50").psnr.iloc[0])
    ref = rows[(rows.model == "hinas") & (rows.protocol == "hinas-reference") & (rows.precision == "fp32")].psnr.iloc[0]
    rest = gap[gap.part == "not explained by any measurement here"]["dB"].iloc[0]
    assert rest == f"{pub - ref:+.2f}"
    assert (gap.measured.str.startswith("no")).sum() >= 2  # training length and search are stated as missing
    assert any("not searched" in p for p in gap.part)


def test_bm3d_reading_names_each_reason_with_its_direction(lad):
    rows = cm.denoise_rows(REPO_ROOT, SIGMA)
    text = " ".join(pr.bm3d_reading(lad, rows, SIGMA))
    assert "clipped to [0, 1]" in text and "hinas-reference" in text
    assert ("towards the published number" in text) or ("away from" in text) or ("tie" in text)
