"""One optimisation step of the released HiNAS code, for timing next to hinas' own step.

The released code (hkzhang-git/HiNAS) is never vendored: ``code`` is the folder of a checkout the
user fetched, imported at run time. Each function builds the release's own model, losses and
optimiser as its scripts do and returns a closure doing ONE step on tensors the caller gives:

* :func:`released_train_step`: the derived network (``Dn_compnet``), one iteration of
  ``one_stage_nas/engine/trainer.py`` ``do_train`` (lines 87-98).
* :func:`released_search_step`: the supernet (``Dn_supernet``, ``03_search_CR_R0.yaml``), the
  weight step and the architecture step of ``one_stage_nas/engine/searcher.py`` ``train``.

Left out of the timed step on purpose: data loading, the LR scheduler's ``step()`` (it only sets
learning rates), the logging and training metrics computed after the update (trainer.py 107-113,
searcher.py 140-142), and ``torch.nn.DataParallel`` (train.py 33, search.py 43): on one GPU it
only scatters the inputs and calls the module; on several it would split the batch.

Shims for today's torch (the release targets torch 1.0); none edits the checkout:

* On a CPU-only machine ``Tensor.cuda()`` is a no-op during construction
  (``_identity_cuda``); the SSIM loss's window, a plain tensor in a plain list that
  ``model.to`` does not reach, is moved to ``device`` by hand. We never call ``.cuda()``.
* BatchNorm: torch 1.0 drew affine BN scales from U(0, 1), torch >= 1.2 sets 1. The train step
  copies a hinas network built with ``bn_init="torch1"``; the search step re-draws its affine
  BN scales with ``hinas.space.ops.init_batchnorm(..., "torch1")`` (same law, not torch 1.0's draws).
* ``optimizer.zero_grad()`` is called as written; today it sets grads to None where torch 1.0
  zeroed them in place (the same update for every parameter that gets a gradient).
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace as NS

import torch

from hinas.errors import HinasError

# 03_search_CR_R0.yaml over one_stage_nas/config/defaults.py: the fields Dn_supernet,
# build_decoder and make_search_optimizers read.
_SEARCH_MODEL = dict(NUM_LAYERS=3, NUM_BLOCKS=4, NUM_STRIDES=3, FILTER_MULTIPLIER=10, IN_CHANNEL=1,
                     WS_FACTORS=[1, 1.5, 2], PRIMITIVES="NO_DEF_L", ACTIVATION_F="Leaky", AFFINE=False,
                     USE_ASPP=False, USE_RES=True, ASPP_RATES=(2, 4, 6), META_ARCHITECTURE="Dn_supernet")
_SEARCH_SOLVER = dict(LR_START=0.025, LR_END=0.001, MOMENTUM=0.9, WEIGHT_DECAY=0.0003, LR_A=0.001, WD_A=0.001,
                      T_MAX=10)


def _reference_cfg(genotype, f: int, out_dir: str):
    """A stand-in for the released code's yacs config (train_s50.yaml + defaults.py), enough for
    its ``Dn_compnet`` and ``make_normal_optimizer``."""
    from types import SimpleNamespace as NS

    return NS(
        OUTPUT_DIR=out_dir,
        DATASET=NS(TASK="dn", DATA_NAME="BSD500_300", TRAIN_DATASETS=[]),
        SEARCH=NS(TIE_CELL=False, SEARCH_ON=False),
        MODEL=NS(NUM_LAYERS=genotype.layers, NUM_BLOCKS=genotype.steps, USE_ASPP=False, USE_RES=True,
                 PRIMITIVES="NO_DEF_L", ACTIVATION_F="Leaky", FILTER_MULTIPLIER=f, NUM_STRIDES=3,
                 WS_FACTORS=list(genotype.width_factors), IN_CHANNEL=1, ASPP_RATES=(2, 4, 6), AFFINE=True),
        SOLVER=NS(LOSS=["mse", "log_ssim"], LOSS_WEIGHT=[1.0, 0.6], BIAS_LR_FACTOR=2, WEIGHT_DECAY_BIAS=0,
                  WEIGHT_DECAY=0.00004, MOMENTUM=0.9, TRAIN=NS(INIT_LR=0.05, POWER=0.9, MAX_ITER=600_000)),
    )


def _copy_into_reference(ours, theirs) -> None:
    """Copy a hinas DerivedNetwork's weights and BN statistics into the released ``Dn_compnet``
    (module by module; the decoder's concat order differs: ours [high 128, low 48], theirs
    [low 48, high 128], so the first fuse unit's channels are permuted)."""
    pairs = [(ours.stem1, theirs.stem1), (ours.stem2, theirs.stem2), (ours.reduce, theirs.reduce)]
    for l in range(len(ours.cells)):
        pairs += [(ours.cells[l], theirs.cells[l]), (ours.scalers0[l].proj, theirs.scalers[2 * l].conv),
                  (ours.scalers1[l].proj, theirs.scalers[2 * l + 1].conv)]
    d = theirs.decoder
    pairs += [(ours.pre_conv, d.pre_conv), (ours.proj, d.proj), (ours.fuse[1], d.conv1), (ours.classifier, d.clf)]
    n_high = ours.fuse[0][0].in_channels - ours.proj[0].out_channels
    perm = torch.cat([torch.arange(n_high, ours.fuse[0][0].in_channels), torch.arange(n_high)])
    fuse0 = {}
    for k, v in ours.fuse[0].state_dict().items():
        if k.startswith("0.") or k.startswith("1.") and v.ndim == 1:  # depthwise conv, its BN
            v = v[perm]
        elif k == "3.weight":  # pointwise conv: permute its inputs
            v = v[:, perm]
        fuse0[k] = v
    pairs.append((fuse0, d.conv0))
    with torch.no_grad():
        for src, dst in pairs:
            a = list((src if isinstance(src, dict) else src.state_dict()).values())
            b = list(dst.state_dict().values())
            if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
                raise HinasError("the released network's modules do not match ours; is this the HiNAS release?")
            for x, y in zip(a, b):
                y.copy_(x)


def reference_side_by_side(code: str, *, iterations: int = 40, batch: int = 24, patch: int = 64, f: int = 20,
                           sigma: float = 50.0, seed: int = 0, device: str = "cpu", data_root=None, genotype=None,
                           max_images: int | None = None) -> dict:
    """Train the same derived network with the released code's own ``Dn_compnet`` (its losses,
    ``make_normal_optimizer``, clip 5) and with hinas, from the same initial weights (hinas'
    torch-1.0 BN init copied across) on the same batches, and return both loss traces.

    ``code`` is the path of a checkout of hkzhang-git/HiNAS (fetched by the user; never vendored).
    The released loss is NaN where its batch mean SSIM is <= 0; hinas logs a finite value there.
    """
    import math

    import numpy as np

    from hinas.engine.common import provenance
    from hinas.losses import RestorationLoss

    from hinas.data import PatchDataset, task_datasets
    from hinas.engine.config import RunConfig
    from hinas.engine.train import param_groups, poly_lr
    from hinas.space.genotype import random_genotype
    from hinas.losses import differentiable_ssim as ssim
    from hinas.space.network import build_network
    from hinas.space.ops import REFERENCE_NAMES

    root = Path(code)
    if not (root / "one_stage_nas" / "modeling" / "dn_compnet.py").exists():
        raise HinasError(f"{root}: not a checkout of the released HiNAS code (no one_stage_nas/modeling/"
                         f"dn_compnet.py); clone https://github.com/hkzhang-git/HiNAS and pass its folder")
    sys.path.insert(0, str(root))
    try:
        from one_stage_nas.modeling.dn_compnet import Dn_compnet
        from one_stage_nas.solver.build import make_normal_optimizer
    finally:
        sys.path.remove(str(root))
    cfg = RunConfig.from_profile("paper", "denoise", seed=seed, device=device)
    torch.manual_seed(seed)
    g = genotype or random_genotype("denoise", seed=seed)
    ours = build_network(g, f, bn_init="torch1").to(device)
    theirs_names = {v: k for k, v in REFERENCE_NAMES.items()}
    gene = ([[(theirs_names[op], j) for op, j in cell] for cell in g.cells], list(g.path))
    with tempfile.TemporaryDirectory() as tmp:
        rcfg = _reference_cfg(g, f, tmp)
        models = Path(tmp, "dn", "BSD500_300", f"Outline-{g.layers}c{g.steps}n_TC-False_ASPP-False_Res-True_Prim-NO_DEF_L",
                      "search", "models")
        models.mkdir(parents=True)
        torch.save(gene, models / "model_best.geno")
        patch_cuda = contextlib.nullcontext()
        if not torch.cuda.is_available():  # its SSIM window is .cuda()'d at construction
            patch_cuda = _identity_cuda()
        with patch_cuda, contextlib.redirect_stdout(sys.stderr):  # it prints where it loads the genotype
            theirs = Dn_compnet(rcfg).to(device)
    _copy_into_reference(ours, theirs)
    for loss in getattr(theirs, "loss_dict", None) or []:
        if hasattr(loss, "window"):
            loss.window = loss.window.to(device)
    x0 = torch.rand(2, 1, patch, patch, device=device)
    ours.eval(), theirs.eval()
    with torch.no_grad():
        init_diff = float((ours(x0) - theirs(x0)).abs().max())
    ours.train(), theirs.train()
    opt_ours = torch.optim.SGD(param_groups(ours, cfg), lr=cfg.train_lr, momentum=0.9)
    opt_theirs = make_normal_optimizer(rcfg, theirs)
    base_lrs = [grp["lr"] for grp in opt_theirs.param_groups]
    loss_fn = RestorationLoss("denoise", "train").to(device)
    records = sorted(task_datasets("denoise", data_root)["train"].records, key=lambda r: r.name)[:max_images]
    ds = PatchDataset(records, "denoise", patch=patch, sigma=sigma, seed=seed, rescale=True,
                      samples_per_epoch=max(len(records), batch))
    order = np.random.default_rng(seed)
    trace = []
    t0 = time.perf_counter()
    for it in range(iterations):
        ds.set_epoch(it)
        idx = order.choice(len(ds), size=batch, replace=len(ds) < batch)
        x, y = (torch.stack(t).to(device) for t in zip(*(ds[int(i)] for i in idx)))
        lr = poly_lr(cfg, it)
        for grp in opt_ours.param_groups:
            grp["lr"] = lr * grp["lr_factor"]
        for grp, base in zip(opt_theirs.param_groups, base_lrs):
            grp["lr"] = base * lr / cfg.train_lr
        opt_ours.zero_grad(set_to_none=True)
        pred = ours(x)
        l_ours = loss_fn(pred, y)
        l_ours.backward()
        torch.nn.utils.clip_grad_value_(ours.parameters(), 5.0)
        opt_ours.step()
        opt_theirs.zero_grad()
        pred_t, ld = theirs(x, y)
        l_theirs = ld["decoder_loss"]
        l_theirs.backward()
        torch.nn.utils.clip_grad_value_(theirs.parameters(), 5.0)
        opt_theirs.step()
        trace.append({"iteration": it + 1, "hinas": float(l_ours.detach()), "released": float(l_theirs.detach()),
                      "hinas_ssim": float(ssim(pred.detach(), y)), "released_ssim": float(ssim(pred_t.detach(), y))})
        if (it + 1) % 10 == 0:
            print(f"side-by-side: iteration {it + 1}/{iterations}", file=sys.stderr)
    seconds = time.perf_counter() - t0
    first_np = next((r["iteration"] for r in trace if r["released_ssim"] <= 0 or r["hinas_ssim"] <= 0), None)
    agree = [r for r in trace if first_np is None or r["iteration"] < first_np]
    max_diff = max((abs(r["hinas"] - r["released"]) for r in agree), default=None)
    return {"trace": trace, "initial_output_max_abs_diff": init_diff, "first_nonpositive_ssim_iteration": first_np,
            "max_loss_diff_before_it": max_diff, "released_nan_iterations": [r["iteration"] for r in trace
                                                                           if not math.isfinite(r["released"])],
            "iterations": iterations, "batch": batch, "patch": patch, "f": f, "sigma": sigma, "lr": cfg.train_lr,
            "seed": seed, "genotype": g.to_dict(), "images": len(records), "device": str(device),
            "seconds": round(seconds, 3), "torch": torch.__version__, "provenance": provenance(device),
            "released_code": {"path": str(root), "commit": _git_head(root)}}


def _git_head(root) -> str | None:
    import subprocess

    try:
        return subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


@contextlib.contextmanager
def _identity_cuda():
    """Make ``Tensor.cuda()`` a no-op while the released modules are built on a CPU-only machine."""
    original = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self
    try:
        yield
    finally:
        torch.Tensor.cuda = original


def check_checkout(code, module: str = "modeling.dn_compnet") -> Path:
    """``code`` as a checkout of the released code, else one line naming what is missing."""
    root = Path(code)
    rel = Path("one_stage_nas", *module.split(".")).with_suffix(".py")
    if not (root / rel).exists() or not (root / "one_stage_nas" / "solver" / "build.py").exists():
        raise HinasError(f"{root}: not a checkout of the released HiNAS code (no {rel.as_posix()}); "
                         f"clone https://github.com/hkzhang-git/HiNAS and pass its folder")
    return root


def _import_release(code: str, module: str, *names: str):
    """Import ``names`` from ``one_stage_nas.<module>`` of the checkout at ``code`` (on
    ``sys.path`` only while importing, so the release never shadows anything later)."""
    import importlib

    root = check_checkout(code, module)
    sys.path.insert(0, str(root))
    try:
        mod = importlib.import_module(f"one_stage_nas.{module}")
        from one_stage_nas.solver import build
    finally:
        sys.path.remove(str(root))
    return [getattr(mod, n) for n in names], build


def _construct(cls, cfg):
    """``cls(cfg)`` on the CPU; its constructor ``.cuda()``s the SSIM window, a no-op without CUDA."""
    patch = contextlib.nullcontext() if torch.cuda.is_available() else _identity_cuda()
    with patch, contextlib.redirect_stdout(sys.stderr):  # Dn_compnet prints where it loads the genotype
        return cls(cfg)


def _losses_to(model, device) -> None:
    # model.loss_dict is a plain list (not a ModuleList), and the SSIM window a plain attribute.
    for loss in getattr(model, "loss_dict", None) or []:
        if isinstance(getattr(loss, "window", None), torch.Tensor):
            loss.window = loss.window.to(device)


def released_train_step(code: str, genotype, *, f: int = 20, device="cpu", seed: int = 0, lr: float = 0.05,
                        ours=None):
    """The released ``Dn_compnet`` for ``genotype`` and one training step on it.

    Returns ``(model, step)``. The weights (and BN statistics) are those of ``ours``, a hinas
    ``DerivedNetwork`` of the same genotype and ``f``; without one, ``build_network(genotype, f,
    bn_init="torch1")`` is built after ``torch.manual_seed(seed)``. The config is
    ``_reference_cfg`` (``train_s50.yaml``: mse + 0.6 log-SSIM) with ``INIT_LR = lr``.

    ``step(x, y)`` follows trainer.py: ``pred, loss_dict = model(images, targets)`` (87),
    ``losses = sum(loss_dict.values()).mean()`` (88), ``optimizer.zero_grad()`` (95),
    ``losses.backward()`` (96), ``clip_grad_value_(model.parameters(), 5.0)`` (97),
    ``optimizer.step()`` (98), with ``make_normal_optimizer`` (solver/build.py 32-45: SGD,
    momentum 0.9, one group per parameter, biases at 2x lr without weight decay, others 4e-5).
    It returns the loss, detached (no host sync). The model is left in train mode, as trainer.py 47.
    """
    from hinas.space.genotype import Genotype
    from hinas.space.network import build_network
    from hinas.space.ops import REFERENCE_NAMES, canonical_op_name

    (Dn_compnet,), build = _import_release(code, "modeling.dn_compnet", "Dn_compnet")
    g = genotype if isinstance(genotype, Genotype) else Genotype.load(genotype)
    if ours is None:
        torch.manual_seed(seed)
        ours = build_network(g, f, bn_init="torch1")
    released_names = {v: k for k, v in REFERENCE_NAMES.items()}
    gene = ([[(released_names[canonical_op_name(op)], j) for op, j in cell] for cell in g.cells], list(g.path))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = _reference_cfg(g, f, tmp)
        cfg.SOLVER.TRAIN.INIT_LR = lr
        # Dn_compnet reads its genotype from the search's output folder (dn_compnet.py 65-81).
        models = Path(tmp, "dn", "BSD500_300", f"Outline-{g.layers}c{g.steps}n_TC-False_ASPP-False_Res-True_"
                      f"Prim-NO_DEF_L", "search", "models")
        models.mkdir(parents=True)
        torch.save(gene, models / "model_best.geno")
        model = _construct(Dn_compnet, cfg)
    _copy_into_reference(ours, model)
    model.to(device).train()
    _losses_to(model, device)
    optimizer = build.make_normal_optimizer(cfg, model)

    def step(x, y):
        pred, loss_dict = model(x, y)
        losses = sum(loss for loss in loss_dict.values()).mean()
        optimizer.zero_grad()
        losses.backward()
        torch.nn.utils.clip_grad_value_(model.parameters(), 5.0)
        optimizer.step()
        return losses.detach()

    step.optimizer = optimizer
    return model, step


def _search_cfg(batch: int):
    """A stand-in for the yacs config of ``configs/dn/BSD500_3c4n/03_search_CR_R0.yaml``."""
    return NS(
        OUTPUT_DIR="output_R0",
        DATASET=NS(TASK="dn", DATA_NAME="BSD500_300", CROP_SIZE=64, TRAIN_DATASETS=[]),
        SEARCH=NS(SEARCH_ON=True, TIE_CELL=False, ARCH_START_EPOCH=20, R_SEED=0),
        MODEL=NS(**_SEARCH_MODEL),
        DATALOADER=NS(BATCH_SIZE_TRAIN=batch, R_CROP=1),
        SOLVER=NS(LOSS=["mse", "log_ssim"], LOSS_WEIGHT=[1.0, 0.5], MAX_EPOCH=100, MOMENTUM=0.9,
                  SEARCH=NS(**_SEARCH_SOLVER)),
    )


def released_search_step(code: str, *, device="cpu", seed: int = 0, batch: int = 6):
    """The released ``Dn_supernet`` at the paper's denoising search setting and its two steps.

    Returns ``(model, weight_step, arch_step)``; each step takes ``(x, y)`` and returns the loss,
    detached. The model is built as tools/search.py 24-28 (``torch.manual_seed`` (``seed``, the
    config's R_SEED is 0), ``build_model``, ``make_optimizer`` -> ``make_search_optimizers``,
    solver/build.py 48-57) and left in train mode (searcher.py 90). ``batch`` is the config's
    BATCH_SIZE_TRAIN (6), kept on both steps as ``.batch`` for the caller's inputs; the model does
    not depend on it.

    * ``weight_step`` is searcher.py 136-146: ``loss_dict = model(images, targets)``, ``losses =
      sum(loss_dict.values()).mean()``, ``optim_w.zero_grad()``, ``losses.backward()``,
      ``optim_w.step()``: SGD (lr 0.025, momentum 0.9, weight decay 3e-4) over
      ``model.w_parameters()`` (everything but ``arch_*``); no clipping.
    * ``arch_step`` is searcher.py 114-119, run before the weight step of an iteration once the
      epoch is past ARCH_START_EPOCH (20): the same loss on another batch, ``optim_a.zero_grad()``,
      backward, ``optim_a.step()``: Adam (lr 1e-3, weight decay 1e-3) over ``model.a_parameters()``
      (``arch_alphas``, ``arch_betas``). Its backward also fills the weights' gradients, which the
      next weight step clears first, as in the release.
    """
    from hinas.space.ops import init_batchnorm

    (Dn_supernet,), build = _import_release(code, "modeling.dn_supernet", "Dn_supernet")
    cfg = _search_cfg(batch)
    torch.manual_seed(seed)
    model = _construct(Dn_supernet, cfg)
    init_batchnorm(model, "torch1")  # torch 1.0's BN scale law (see the module docstring)
    model.to(device).train()
    _losses_to(model, device)
    # make_search_optimizers after moving: SGD/Adam state is created lazily on the params' device.
    optims = build.make_search_optimizers(cfg, model)
    optim_w, optim_a = optims["optim_w"], optims["optim_a"]

    def step_with(optimizer):  # searcher.py: the same loss and backward, one optimiser per step
        def step(x, y):
            loss_dict = model(x, y)
            losses = sum(loss for loss in loss_dict.values()).mean()
            optimizer.zero_grad()
            losses.backward()
            optimizer.step()
            return losses.detach()

        step.optimizer, step.batch = optimizer, batch
        return step

    return model, step_with(optim_w), step_with(optim_a)
