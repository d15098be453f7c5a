"""One place per concept (issue 35, point 5): the selection score, the finite-number check, and
the search's named running sums, which a checkpoint written with the old positional list still
resumes from bit for bit."""

from __future__ import annotations

import time

import pytest
import torch

from hinas.errors import ConfigError, HinasError
from hinas.eval.metrics import selection_score
from hinas.safeio import finite_number, parse_json


# -------------------------------------------------------------------------- the finite-number check
def test_finite_number_accepts_ints_and_refuses_what_is_no_finite_number():
    assert finite_number(3, "--x") == 3.0 and isinstance(finite_number(3, "--x"), float)
    assert finite_number("2.5", "--x") == 2.5 and finite_number(True, "--x") == 1.0  # the CLI's callers, as before
    for bad, word in (("nan", "a finite"), (float("inf"), "a finite"), ("1e400", "a finite"), ("abc", "a number"),
                      (None, "a number"), ([1], "a number"), (10**400, "a number")):
        with pytest.raises(HinasError, match=f"--x must be {word}"):
            finite_number(bad, "--x")
    with pytest.raises(HinasError, match="must be a number, got True"):
        finite_number(True, "--x", bools=False)
    with pytest.raises(HinasError, match="must be a number, got '2'"):
        finite_number("2", "--x", numbers_only=True)
    with pytest.raises(ConfigError, match="--x must be > 0, got 0"):
        finite_number(0, "--x", lo=0, lo_open=True, error=ConfigError)
    with pytest.raises(HinasError, match="--x must be <= 255, got 256"):
        finite_number(256, "--x", hi=255)


def test_settings_keep_their_messages():
    from hinas.engine.config import RunConfig

    for value, message in (("nan", "setting 'w_lr' must be a finite number, got 'nan'"),
                           (float("inf"), "setting 'w_lr' must be a finite number, got inf"),
                           (True, "setting 'w_lr' must be a number, got True"),
                           ("fast", "setting 'w_lr' must be a number, got 'fast'")):
        with pytest.raises(ConfigError) as exc:
            RunConfig.from_profile("smoke", w_lr=value)
        assert str(exc.value) == message
    for value in ("nan", float("inf"), True, 2.5, "2.5", "many"):
        with pytest.raises(ConfigError, match=f"setting 'epochs' must be an integer, got {value!r}"):
            RunConfig.from_profile("smoke", epochs=value)
    assert RunConfig.from_profile("smoke", epochs="3", w_lr="0.5").epochs == 3
    with pytest.raises(ConfigError, match=r"setting 'sigma' must be a finite number, got nan$"):
        RunConfig.from_profile("smoke", sigma=[float("nan")])
    with pytest.raises(ConfigError, match=r"setting 'val_fraction' must be < 1, got 1.5$"):
        RunConfig.from_profile("smoke", val_fraction=1.5)


def test_plan_numbers_keep_their_one_message():
    from hinas.campaign.options import number

    assert number(5, "i: budget", "seconds", positive=True) == 5.0
    assert number(0, "i: estimate", "seconds", lo=0) == 0.0
    for value, kw, bound in ((True, {"positive": True}, "a positive"), ("5", {"positive": True}, "a positive"),
                             (0, {"positive": True}, "a positive"), (-1, {"lo": 0}, "a non-negative"),
                             (float("nan"), {}, "a finite"), (10**400, {}, "a finite")):
        with pytest.raises(ConfigError) as exc:
            number(value, "i: budget", "seconds", **kw)
        assert str(exc.value) == f"i: budget must be {bound} number of seconds, got {value!r}"


def test_json_numbers_beyond_float_are_refused_with_the_file_named():
    with pytest.raises(HinasError, match=r"^x.json: the JSON holds 1e999, beyond any finite number"):
        parse_json('{"a": 1e999}', "x.json", "thing")
    assert parse_json('{"a": 1.5}', "x.json", "thing") == {"a": 1.5}


# ------------------------------------------------------- the search's sums, and the old checkpoints
def test_old_list_of_sums_is_named_on_load_and_nothing_else_changes():
    from hinas.engine.search import _named_sums

    ck = {"model": {}, "state": {"epoch": 3, "sums": [1.5, 0.25, 7, 3]}}
    new = _named_sums(ck)
    assert new["state"] == {"epoch": 3, "sums": {"loss_w": 1.5, "loss_a": 0.25, "n_w": 7, "n_a": 3}}
    assert ck["state"]["sums"] == [1.5, 0.25, 7, 3]  # the loaded checkpoint is left as read
    named = {"state": {"sums": {"loss_w": 0.0, "loss_a": 0.0, "n_w": 0, "n_a": 0}}}
    assert _named_sums(named) is named
    for odd in ({"state": {"sums": [1.0, 2.0]}}, {"state": None}, {}):  # left for the restore to refuse
        assert _named_sums(odd) == odd


def _state_without_seconds(path):
    state = torch.load(path, weights_only=True)["state"]
    return [{k: v for k, v in row.items() if k != "seconds"} for row in state["history"]], state


def test_a_checkpoint_with_the_old_list_of_sums_resumes_bit_for_bit(tmp_path, same_search_files):
    from hinas.engine.config import RunConfig
    from hinas.engine.search import search

    # arch steps from the first epoch, so both sums are running when the search pauses mid-epoch
    cfg = RunConfig.from_profile("smoke", "denoise", quiet=True, epochs=2, arch_start_epoch=0, val_start_epoch=0)
    whole = search(cfg, tmp_path / "whole")
    paused = search(cfg, tmp_path / "cut", stop_at=time.monotonic())  # pauses at the first log point
    assert paused["status"] == "paused" and paused["epoch"] == 1 and paused["step_in_epoch"] > 0
    ckpt = tmp_path / "cut" / "checkpoint.pt"
    ck = torch.load(ckpt, weights_only=True)
    sums = ck["state"]["sums"]
    assert list(sums) == ["loss_w", "loss_a", "n_w", "n_a"] and sums["n_w"] > 0 and sums["n_a"] > 0
    assert sums["loss_w"] > 0 and sums["loss_a"] > 0
    ck["state"]["sums"] = [sums["loss_w"], sums["loss_a"], sums["n_w"], sums["n_a"]]  # as the code before wrote it
    torch.save(ck, ckpt)

    resumed = search(cfg, tmp_path / "cut", resume=True)
    assert resumed["path"] == whole["path"] and resumed["val_psnr"] == whole["val_psnr"]
    rows_whole, state_whole = _state_without_seconds(tmp_path / "whole" / "checkpoint.pt")
    rows_cut, state_cut = _state_without_seconds(ckpt)
    assert rows_cut == rows_whole and rows_cut[0]["loss_a"] is not None  # the paused epoch's mean losses too
    assert state_cut["sums"] == state_whole["sums"] and isinstance(state_cut["sums"], dict)  # saved named now
    best = state_cut["best"]
    same = ("score", "epoch", "psnr", "ssim")  # its genotype names the run folder and the time
    assert {k: best[k] for k in same} == {k: state_whole["best"][k] for k in same}
    assert best["score"] == selection_score(best["psnr"], best["ssim"])
    same_search_files(tmp_path / "whole", tmp_path / "cut")
