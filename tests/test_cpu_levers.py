"""The CPU levers (issue 32): channels_last acts on the CPU and computes the same steps as eager
(loss traces within 1e-4 over 50 training and 10 search steps), bf16 autocast acts on the CPU when
asked and is recorded, and ``hinas bench cpu-speed`` reports ratios measured in one run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hinas.engine import fast
from hinas.engine.config import RunConfig
from hinas.space.genotype import random_genotype

REPO = Path(__file__).resolve().parents[1]


def test_channels_last_computes_eagers_steps_on_the_cpu():
    """The paper's derived network (f=20) and supernet at small batches and patches, 50 training and
    10 search steps, each from the eager path's state on the same batch: the same losses (<= 1e-4) and
    the same weights, statistics and alpha/beta after each step."""
    from hinas.bench.cpu import FP32_LEVERS, lever_equivalence

    r = lever_equivalence(random_genotype("denoise", seed=0), dict(FP32_LEVERS), steps=50, search_steps=10,
                          batch=2, search_batch=1, patch=24)
    assert r["holds"] and r["train_max_loss_diff"] <= 1e-4 and r["search_max_loss_diff"] <= 1e-4, r
    assert r["train_max_state_diff"] <= 1e-4 and r["search_max_state_diff"] <= 1e-4, r
    assert r["train_loss_first_last"][0] != r["train_loss_first_last"][1]  # the steps did train


def test_the_equivalence_check_finds_a_different_step():
    """A lever that changes the arithmetic (bf16 autocast) fails the same check: it can fail."""
    from hinas.bench.cpu import lever_equivalence

    r = lever_equivalence(random_genotype("denoise", seed=0), {"amp_bf16": True}, steps=3, search_steps=1,
                          batch=2, search_batch=1, patch=16)
    assert not r["holds"] and r["train_max_loss_diff"] > 1e-4, r


def test_cpu_levers_act_on_the_cpu_and_are_recorded():
    cfg = RunConfig.from_profile("smoke", "denoise").replace(channels_last=True, amp_bf16=True, cuda_graphs=True)
    levers = fast.active_levers(cfg, "cpu")
    assert levers["channels_last"] and not levers["cuda_graphs"]
    net = fast.prepare_network(torch.nn.Conv2d(1, 4, 3), cfg, "cpu")
    assert net.weight.is_contiguous(memory_format=torch.channels_last)
    with fast.autocast_for(cfg, "cpu"):
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
        y = torch.nn.functional.conv2d(torch.rand(1, 1, 8, 8), torch.rand(2, 1, 3, 3))
    assert y.dtype == torch.bfloat16
    assert fast.describe(cfg, "cpu")["amp_bf16"] and fast.describe(cfg, "cpu")["channels_last"]
    with fast.autocast_for(cfg.replace(amp_bf16=False), "cpu"):
        assert not torch.is_autocast_enabled("cpu")


def test_cpu_speed_report_has_ratios_measured_in_one_run():
    from hinas.bench.cpu import cpu_speed, cpu_tag

    r = cpu_speed(random_genotype("denoise", seed=0), threads=1, steps=1, search_steps=1, batch=2, search_batch=1,
                  patch=16, equivalence_steps=0, variants=("channels_last", "bf16"), bf16=True)
    assert set(r["train"]["variants"]) == {"eager", "channels_last", "bf16"}
    assert set(r["search"]["variants"]) == {"eager", "channels_last", "bf16"}
    row = r["search"]["variants"]["channels_last"]
    assert row["speedup_vs_eager"] == pytest.approx(r["search"]["variants"]["eager"]["weight_step_seconds"]
                                                    / row["weight_step_seconds"])
    assert row["speedup_vs_released"] is None and "arch_speedup_vs_eager" in row  # no --code: no released rows
    assert r["threads"] == 1 and "avx512_bf16" in r["cpu"]["flags"]
    assert cpu_tag(r["cpu"]).endswith(f"-{os.cpu_count()}c") and r["skipped"] == {}
    plain = cpu_speed(random_genotype("denoise", seed=0), threads=1, steps=1, search_steps=1, batch=1, search_batch=1,
                      patch=8, equivalence_steps=0, variants=("bf16",), bf16=False)
    assert set(plain["train"]["variants"]) == {"eager"} and "bf16" in plain["skipped"]


@pytest.mark.parametrize("args, message", [
    (["--variants", "turbo"], "--variants: unknown 'turbo'"),
    (["--code", "/nonexistent/HiNAS"], "--code"),
    (["--code", "README.md"], "--code"),
    (["--steps", "0"], "--steps"),
])
def test_cpu_speed_bad_calls_exit_2_in_one_line(args, message):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-m", "hinas", "bench", "cpu-speed", *args], capture_output=True, text=True,
                       env=env, cwd=REPO)
    assert p.returncode == 2 and message in p.stderr and p.stderr.count("\n") == 1, p.stderr
