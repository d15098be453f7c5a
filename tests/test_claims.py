"""The intro's "shown and not shown" table (hinas.book.claims): verdicts follow the results."""

from __future__ import annotations

import json

import pytest

from hinas.book import claims
from hinas.book.settings import REPO_ROOT


def _by_key(rows):
    return {r["claim"]: r for r in rows}


def test_committed_results_decide_their_claims():
    rows = _by_key(claims.committed_claims(REPO_ROOT))
    assert rows["bicubic"]["verdict"] == "reproduced"
    assert rows["memory"]["verdict"] == "direction only" and rows["memory"]["evidence"].startswith("x1.70")
    assert rows["sr"]["verdict"] == "untested"
    # the committed network's genotype was not searched: its score tests no claim of the search
    assert rows["table10"]["verdict"] == "untested" and "not searched" in rows["table10"]["evidence"]


def test_a_bicubic_baseline_off_the_published_row_is_contradicted(tmp_path):
    (tmp_path / "results" / "baselines").mkdir(parents=True)
    for f in (REPO_ROOT / "results" / "baselines").glob("bicubic_*_x3_*.json"):
        d = json.loads(f.read_text())
        if d["dataset"] == "Set5" and d["protocol"] == "standard":
            d["psnr"] += 0.2
        (tmp_path / "results" / "baselines" / f.name).write_text(json.dumps(d))
    rows = _by_key(claims.committed_claims(tmp_path))
    assert rows["bicubic"]["verdict"] == "contradicted" and "0.2" in rows["bicubic"]["evidence"]
    assert rows["search"]["verdict"] == "untested" and rows["table10"]["verdict"] == "untested"
    assert "memory" not in rows  # no measurement of the paper's supernet: a chapter's own one stands


def test_memory_verdicts_follow_the_ratio():
    assert claims.memory_claim(1.7, "x", "2")["verdict"] == "direction only"
    assert claims.memory_claim(2.9, "x", "2")["verdict"] == "reproduced"
    assert claims.memory_claim(0.9, "x", "2")["verdict"] == "contradicted"


def test_table_fills_every_claim_and_lets_a_measurement_replace_untested():
    recorded = [claims.claim_row("ablations", "quick only", "untested", "5"),
                claims.claim_row("ablations", "3 of 4 agree at gpu", "contradicted", "5")]
    t = claims.claims_table(recorded)
    assert len(t) == len(claims.CLAIMS)
    row = t[t["where"] == "Tables 1, 3, 4, 6"].iloc[0]
    assert row.verdict == "contradicted" and row["this book's evidence"] == "3 of 4 agree at gpu"
    assert (t[t["where"] == "Table 10"].verdict == "untested").all()  # nothing recorded: untested, said so
    text = "\n".join(claims.claims_markdown(t))
    assert "not measured by this build" in text and "*reproduced*:" in text
    with pytest.raises(ValueError):
        claims.claim_row("nonsense", "", "reproduced", "1")
    with pytest.raises(ValueError):
        claims.claim_row("sr", "", "probably", "1")


def test_ablation_claim_is_untested_below_the_paper_scale():
    assert claims.ablation_claim(5, 3, 1, 1, "quick", "5")["verdict"] == "untested"
    assert claims.ablation_claim(4, 0, 0, 0, "gpu", "5")["verdict"] == "reproduced"
    assert claims.ablation_claim(3, 0, 1, 0, "paper", "5")["verdict"] == "contradicted"


def test_write_claims_reads_the_chapters_records(tmp_path):
    from hinas.book.glance import record_glance, write_claims

    class Paths:
        root = REPO_ROOT
        generated = tmp_path / "generated"

    record_glance(tmp_path, "smoke", "05", [{"what": "x", "measured": "1", "published": "–", "chapter": "5"},
                                           claims.claim_row("ablations", "only at smoke", "untested", "5")])
    text = write_claims(Paths, tmp_path, "smoke").read_text()
    assert "only at smoke" in text and "| Bicubic upscaling" in text
