"""The fast CUDA path (hinas.engine.fast): its pieces on the CPU, its equivalence on a GPU."""

from __future__ import annotations

import copy

import pytest
import torch

from hinas.engine import common, fast, runfolder
from hinas.engine.config import FAST_PATH_KEYS, RunConfig
from hinas.space.genotype import random_genotype

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the fast path is CUDA only)")


def test_profiles_turn_the_cuda_levers_on_only_where_cuda_runs():
    for profile in ("gpu", "paper"):
        cfg = RunConfig.from_profile(profile, "denoise")
        assert all(getattr(cfg, k) for k in FAST_PATH_KEYS)
        on_cpu = fast.active_levers(cfg, "cpu")  # only the CPU levers act there (tests/test_cpu_levers.py)
        assert {k for k, v in on_cpu.items() if v} == set(fast.CPU_LEVERS)
    for profile in ("smoke", "quick"):  # the CPU profiles: the CPU's lever only (issue 32)
        cfg = RunConfig.from_profile(profile, "denoise")
        assert {k for k in FAST_PATH_KEYS if getattr(cfg, k)} == set(fast.CPU_LEVERS)


def test_levers_are_execution_settings():
    """A run may be continued with other levers: they are not part of its identity or key."""
    a = RunConfig.from_profile("smoke", "denoise")
    b = a.replace(cuda_graphs=True, fused_optimizer=True, cudnn_benchmark=True, native_batchnorm=True,
                  channels_last=True)
    assert set(FAST_PATH_KEYS) <= set(runfolder.EXECUTION_KEYS)
    ida = runfolder.run_identity("train", a, [])
    idb = runfolder.run_identity("train", b, [])
    assert runfolder.identity_differences(ida, idb) == []


def test_native_batchnorm_is_the_same_batchnorm():
    torch.manual_seed(0)
    ref = torch.nn.Sequential(torch.nn.Conv2d(1, 6, 3, padding=1), torch.nn.BatchNorm2d(6),
                              torch.nn.BatchNorm2d(6, affine=False))
    ref[1].weight.data.uniform_()
    nat = copy.deepcopy(ref)
    assert fast.use_native_batchnorm(nat) == 2
    x = torch.randn(4, 1, 16, 16)
    for train in (True, False):
        ref.train(train), nat.train(train)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = ref(xa), nat(xb)
        torch.testing.assert_close(ya, yb)
        if train:
            ya.square().sum().backward()
            yb.square().sum().backward()
            torch.testing.assert_close(xa.grad, xb.grad)
            torch.testing.assert_close(ref[1].weight.grad, nat[1].weight.grad)
    for a, b in zip(ref.buffers(), nat.buffers()):
        torch.testing.assert_close(a, b)
    assert ref.state_dict().keys() == nat.state_dict().keys()


def test_set_lr_fills_a_device_learning_rate_in_place():
    p = torch.nn.Parameter(torch.ones(3))
    q = torch.nn.Parameter(torch.ones(3))
    lr = torch.tensor(0.1)
    opt = torch.optim.SGD([{"params": [p], "lr_factor": 1.0}, {"params": [q], "lr": 0.2, "lr_factor": 2.0}], lr=lr,
                          momentum=0.9)
    held = opt.param_groups[0]["lr"]
    fast.set_lr(opt, 0.5)
    assert held is opt.param_groups[0]["lr"] and float(held) == 0.5  # the tensor a graph reads
    assert opt.param_groups[1]["lr"] == 1.0


def test_checkpoints_of_both_paths_look_alike():
    """A fast checkpoint (device lr, fused flags) restores into an eager optimiser as floats."""
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([p], lr=torch.tensor(0.05), momentum=0.9, fused=True)
    p.grad = torch.ones(3)
    opt.step()
    state = common.plain_optimizer_state(opt.state_dict())
    g = state["param_groups"][0]
    assert g["lr"] == pytest.approx(0.05) and isinstance(g["lr"], float) and not g["fused"]
    assert isinstance(opt.param_groups[0]["lr"], torch.Tensor)  # the live optimiser is untouched
    eager = torch.optim.SGD([torch.nn.Parameter(torch.ones(3))], lr=1.0, momentum=0.9)
    eager.load_state_dict(state)
    assert eager.param_groups[0]["lr"] == pytest.approx(0.05)


def test_eager_stepper_is_the_plain_step():
    """On the CPU the stepper runs the body as it is: same losses as the step written out."""
    from hinas.engine.train import network_spec, param_groups
    from hinas.space.network_file import build_model
    from hinas.losses import RestorationLoss

    cfg = RunConfig.from_profile("smoke", "denoise")
    g = random_genotype("denoise", seed=0, layers=2, steps=2)
    torch.manual_seed(0)
    a = build_model(network_spec(cfg, g))
    b = copy.deepcopy(a)
    loss_fn = RestorationLoss("denoise", "train")
    opt_a = torch.optim.SGD(param_groups(a, cfg), lr=0.05, momentum=0.9)
    opt_b = torch.optim.SGD(param_groups(b, cfg), lr=0.05, momentum=0.9)
    stepper = fast.train_stepper(a, opt_a, loss_fn, cfg, "cpu")
    assert stepper.mode == "eager"
    torch.manual_seed(1)
    for _ in range(3):
        x, y = torch.rand(2, 1, 24, 24), torch.rand(2, 1, 24, 24)
        la = stepper.run(x, y)
        opt_b.zero_grad()
        lb = loss_fn(b(x), y)
        lb.backward()
        torch.nn.utils.clip_grad_value_(b.parameters(), cfg.grad_clip)
        opt_b.step()
        assert float(la) == float(lb.detach())
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_search_steps_compute_only_the_gradients_they_use():
    """The weight step leaves alpha/beta gradients alone and the architecture step the weights'
    (the released code computed and discarded them): same updates, less work."""
    from hinas.losses import RestorationLoss
    from hinas.space.supernet import Supernet

    cfg = RunConfig.from_profile("smoke", "denoise")
    torch.manual_seed(0)
    net = Supernet(cfg.supernet_config())
    opt_w = torch.optim.SGD(net.weight_parameters(), lr=0.01, momentum=0.9)
    opt_a = torch.optim.Adam(net.arch_parameters(), lr=0.01)
    arch, weight = fast.search_steppers(net, opt_w, opt_a, RestorationLoss("denoise", "search"), cfg, "cpu")
    x, y = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    weight.run(x, y)
    assert all(p.grad is None for p in net.arch_parameters())
    arch.run(x, y)
    assert all(p.grad is not None for p in net.arch_parameters())


# --------------------------------------------------------------------------------------------
# on a GPU
# --------------------------------------------------------------------------------------------
@cuda
def test_fast_path_equals_eager_on_the_gpu():
    """Issue 21: the fast fp32 path and the eager path, from the same weights on the same batches,
    give the same losses (<= 1e-4 over 50 steps) and BatchNorm statistics, and run as graphs."""
    from hinas.bench.gpu import fast_path_equivalence

    g = random_genotype("denoise", seed=0)
    r = fast_path_equivalence(g, device="cuda", steps=50, search_steps=10)
    assert r["train_mode_fast"] == "graph" and r["search_modes_fast"] == ["graph", "graph"], r
    assert r["train_max_loss_diff"] <= 1e-4, r
    assert r["search_max_loss_diff"] <= 1e-4, r
    assert r["train_max_bn_stat_diff"] <= 1e-3 and r["search_max_bn_stat_diff"] <= 1e-3, r
    assert r["search_max_arch_diff"] <= 1e-4, r


@cuda
def test_a_graph_run_trains_like_an_eager_one(tmp_path):
    """The same smoke training, eager and as graphs: the same network to float rounding."""
    from hinas.engine.train import train

    g = random_genotype("denoise", seed=0, layers=2, steps=2)
    cfg = RunConfig.from_profile("smoke", "denoise", device="cuda", iterations=16, quiet=True)
    eager = train(cfg, g, tmp_path / "a")
    fast_cfg = cfg.replace(cuda_graphs=True, fused_optimizer=True)
    fast_run = train(fast_cfg, g, tmp_path / "b")
    assert fast_run["execution"]["steps"]["training step"] == "graph"
    assert abs(fast_run["val_psnr"] - eager["val_psnr"]) < 0.05


@cuda
def test_graphs_follow_a_smaller_last_batch():
    """An epoch's last batch is often smaller: it gets a graph of its own, and the steps stay
    those of the eager path (same losses, same weights) through many alternations."""
    from hinas.engine.train import network_spec, param_groups
    from hinas.space.network_file import build_model
    from hinas.losses import RestorationLoss

    dev = torch.device("cuda")
    cfg = RunConfig.from_profile("smoke", "denoise", device="cuda")
    g = random_genotype("denoise", seed=0, layers=2, steps=2)
    torch.manual_seed(0)
    base = build_model(network_spec(cfg, g))
    gen = torch.Generator().manual_seed(0)
    sizes = [4, 4, 3] * 8
    batches = [(torch.rand(n, 1, 32, 32, generator=gen).to(dev), torch.rand(n, 1, 32, 32, generator=gen).to(dev))
               for n in sizes]
    from hinas.bench.gpu import _tf32

    runs = {}
    for name, levers in (("eager", {}), ("graph", {"cuda_graphs": True, "fused_optimizer": True})):
        c = cfg.replace(**levers)
        model = copy.deepcopy(base).to(dev)
        opt = torch.optim.SGD(param_groups(model, c), lr=0.05, momentum=0.9)
        fast.arm_optimizer(opt, c, dev)
        stepper = fast.train_stepper(model, opt, RestorationLoss("denoise", "train").to(dev), c, dev)
        losses = []
        with _tf32(False):  # fp32 arithmetic in both: the comparison is of the mechanism
            for i, (x, y) in enumerate(batches):
                fast.set_lr(opt, 0.05 * (1 - i / 30))
                losses.append(stepper.run(x, y))
        runs[name] = (torch.stack(losses).cpu(), [p.detach().cpu() for p in model.parameters()], stepper)
    assert runs["graph"][2].mode == "graph" and len(runs["graph"][2].captures) == 2
    assert float((runs["eager"][0] - runs["graph"][0]).abs().max()) <= 1e-4
    for a, b in zip(runs["eager"][1], runs["graph"][1]):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)


def _report(**equivalence):
    from hinas.bench.gpu import sources_digest

    fast_levers = {"cudnn_benchmark": True, "channels_last": True, "native_batchnorm": True,
                   "fused_optimizer": True, "cuda_graphs": True}
    eq = {"train_mode_fast": "graph", "search_modes_fast": ["graph", "graph"], "train_max_loss_diff": 2e-6,
          "search_max_loss_diff": 1e-6, **equivalence}
    return {"equivalence": eq, "recommended": {"variant": "fast (+cuda_graphs)", "levers": fast_levers},
            "sources_sha256": sources_digest(), "train": {}, "search": {}, "provenance": {}}


def test_a_window_reuses_a_report_of_this_code_and_falls_back_to_eager_without_equivalence(tmp_path):
    """``hinas bench gpu-levers``: the recommended levers when the fast path matched eager, the eager
    path otherwise; ``--if-current`` accepts only a report of this tree's step code (a later GPU
    window then skips the speed check)."""
    import json
    import subprocess
    import sys

    from hinas.bench.gpu import campaign_levers, report_is_current

    good = _report()
    assert campaign_levers(good)["cuda_graphs"] and report_is_current(good)
    diverged = _report(train_max_loss_diff=1e-2)
    assert not any(v for k, v in campaign_levers(diverged).items() if k != "cudnn_benchmark")
    assert not campaign_levers(_report(train_mode_fast="eager (capture failed: x)"))["cuda_graphs"]
    assert not report_is_current({**good, "sources_sha256": "0" * 64})
    assert not report_is_current({k: v for k, v in good.items() if k != "equivalence"})
    for name, report, code, printed in [("good", good, 0, "--set cuda_graphs=true"),
                                        ("old", {**good, "sources_sha256": "f" * 64}, 1, "")]:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(report))
        out = subprocess.run([sys.executable, "-m", "hinas", "bench", "gpu-levers", str(path), "--if-current"],
                             capture_output=True, text=True)
        assert out.returncode == code and printed in out.stdout and (code == 0 or out.stdout == "")
        assert code == 0 or "run hinas bench gpu-speed --equivalence again" in out.stderr
    (tmp_path / "other.json").write_text(json.dumps({"equivalence": {}}))  # any JSON object is not a report
    out = subprocess.run([sys.executable, "-m", "hinas", "bench", "gpu-levers", str(tmp_path / "other.json")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "not a gpu-speed report" in out.stderr and out.stdout == ""
