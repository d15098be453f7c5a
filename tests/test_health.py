"""The rule that names a diverged training (hinas.engine.health) on logged histories."""

from __future__ import annotations

import json

from hinas.engine.health import DIVERGED, NONPOSITIVE_SHARE, OK, health_from_history, training_health


def _rows(losses, events=None, every=10):
    events = events or [0] * len(losses)
    return [{"iteration": (i + 1) * every, "loss": x, "nonpositive_ssim": e} for i, (x, e) in enumerate(zip(losses, events))]


def test_a_run_that_spikes_and_recovers_trained():
    losses = [0.28, 0.25, 14.7, 3.0, 0.5, 0.2, 0.12, 0.1, 0.08, 0.07, 0.07, 0.07]
    h = health_from_history(_rows(losses, [0, 0, 8, 6, 2] + [0] * 7), iterations=120)
    assert h["status"] == OK and h["max_loss"] == 14.7 and h["nonpositive_ssim"] == 16
    assert "loss 0.265 -> 0.07, 16 of 120 batches at SSIM <= 0" == h["evidence"]  # windows of 2 rows


def test_a_loss_that_ends_above_its_start_diverged():
    h = health_from_history(_rows([0.16, 0.2, 40.0, 4e4, 3e4, 4e4]), iterations=60)
    assert h["status"] == DIVERGED and "rose from 0.16 to 4e+04" in h["evidence"]


def test_many_batches_at_nonpositive_ssim_diverged_even_when_the_loss_falls():
    n = 70
    events = [3] * n  # 210 of 700 is 30%
    h = health_from_history(_rows([0.3] + [0.2] * (n - 1), events), iterations=700)
    assert 210 / 700 > NONPOSITIVE_SHARE and h["status"] == DIVERGED and "210 of 700 batches (30%)" in h["evidence"]
    fewer = health_from_history(_rows([0.3] + [0.2] * (n - 1), [2] * n), iterations=700)  # 20%
    assert fewer["status"] == OK


def test_a_non_finite_logged_loss_diverged():
    assert health_from_history(_rows([0.3, float("nan"), 0.1]))["status"] == DIVERGED
    assert health_from_history(_rows([0.3, "", 0.1]))["status"] == DIVERGED  # an empty cell is no loss


def test_training_health_reads_a_run_folder(tmp_path):
    (tmp_path / "history.csv").write_text("iteration,lr,loss,val_psnr,val_ssim,seconds,nonpositive_ssim\n"
                                          "10,0.05,0.3,,,1,0\n20,0.05,0.2,,,2,1\n30,0.05,0.1,,,3,0\n")
    (tmp_path / "summary.json").write_text(json.dumps({"iterations": 30}))
    h = training_health(tmp_path)
    assert h["status"] == OK and h["iterations"] == 30 and h["nonpositive_ssim"] == 1
