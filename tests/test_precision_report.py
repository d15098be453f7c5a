"""bf16 training against fp32 from committed results (issue 21's rule): pairs found by content
(same model, architecture, sigma, seed, iterations), compared image by image."""

import json

import pytest

from hinas.book import precision_report as pr


def _item(folder, summary, network=None):
    folder.mkdir(parents=True)
    (folder / "done").write_text("{}")
    (folder / "summary.json").write_text(json.dumps(summary))
    if network is not None:
        (folder / "network.json").write_text(json.dumps(network))


def _repo(tmp_path, bf16_offset, arch_bf16="cellA", iterations_bf16=20000):
    plan = tmp_path / "results" / "plan-x"
    for name, bf16, arch, its in (("train-fp32", False, "cellA", 20000), ("train-bf16", True, arch_bf16, iterations_bf16)):
        _item(plan / name, {"item": name, "kind": "train", "model": "hinas", "params": 1000,
                            "config": {"task": "denoise", "sigma": [50.0], "seed": 0, "amp_bf16": bf16},
                            "schedule": {"planned_iterations": its, "paper_iterations": 600000}},
              network={"genotype": arch})
        per_image = [{"name": f"im{i}", "psnr": 25.0 + 0.1 * i + (bf16_offset if bf16 else 0), "ssim": 0.7}
                     for i in range(4)]
        _item(plan / f"eval-{name}", {"item": f"eval-{name}", "kind": "eval", "network": name, "params": 1000,
                                      "evaluations": [{"dataset": "BSDS500-test", "task": "denoise", "sigma": 50.0,
                                                       "protocol": "standard", "precision": "fp32", "images": 4,
                                                       "psnr": sum(r["psnr"] for r in per_image) / 4, "ssim": 0.7,
                                                       "per_image": per_image}]})
    return tmp_path


@pytest.mark.parametrize("offset, verdict", [(0.01, "within"), (-0.2, "outside")])
def test_a_pair_is_compared_by_the_rule(tmp_path, offset, verdict):
    pairs = pr.precision_pairs(_repo(tmp_path, offset))
    assert len(pairs) == 1
    p = pairs.iloc[0]
    assert p["bf16 - fp32 (dB)"] == pytest.approx(offset) and p["images"] == 4 and p["iterations"] == 20000
    text = pr.precision_reading(pairs)
    assert f"{offset:+.3f} dB" in text and f"{verdict} the 0.05 dB" in text
    assert ("may become the default" in text) == (verdict == "within")


@pytest.mark.parametrize("kw", [{"arch_bf16": "cellB"}, {"iterations_bf16": 10000}])
def test_networks_that_differ_in_more_than_precision_are_no_pair(tmp_path, kw):
    pairs = pr.precision_pairs(_repo(tmp_path, 0.0, **kw))
    assert len(pairs) == 0 and "missing" in pr.precision_reading(pairs)


def test_the_committed_results_state_the_pair_missing():
    from hinas.book.settings import REPO_ROOT

    assert "stays a switch" in pr.precision_reading(pr.precision_pairs(REPO_ROOT))
