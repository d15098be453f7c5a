"""The book's settings: per-profile experiment sizes (:data:`SETTINGS`, over the engine's
profiles, whose names live in :data:`hinas.engine.config.PROFILES`), the configuration every
chapter starts from, where runs and the repository live, and which device a profile uses.

**Scaling.** The experiments run at the engine's profiles (``smoke``, ``quick``, ``gpu``,
``paper``) with the overrides in :data:`SETTINGS`, chosen so the whole book fits its time
budget on 2 CPU cores (about 3 minutes at ``smoke``, under 20 at ``quick``). At ``quick``:
the search runs 6 epochs with the architecture learning rate raised to 0.03 (the paper's
1e-3 over its ~100x more architecture steps; with 1e-3 alpha stays within 0.0005 of uniform
and the decoding is a coin toss); chapters 4 and 6 train each derived network for 700
iterations (their plans, ``hinas/plans/search.yaml`` and ``sota.yaml``, hold their sizes: seeds,
lengths, test images; DnCNN is trained for the first seed only); chapter 5's ablations train every
row of a table with the same shorter budget (``ablation_train``) and reuse chapter 4's searches
(:func:`hinas.book.runs.search_config`). ``gpu`` and ``paper`` use the engine's profiles unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from hinas.engine import RunConfig
from hinas.eval.evaluation import PROTOCOLS as _EVAL_PROTOCOLS

REPO_ROOT = Path(__file__).resolve().parents[2]
PROTOCOLS = tuple(_EVAL_PROTOCOLS)  # the metric protocols every table is scored under

# Per-profile experiment sizes. ``search``/``train``: RunConfig overrides (documented above);
# ``seeds``: the seeds of chapter 5's Table 1 (those of chapters 4 and 6 are their plans'; Table 1's
# full row reads chapter 4's searches, so the two lists must agree: tests check it); ``minor_seeds``: how
# many of them Tables 3, 4, 6 and 8 use (1 at quick, to fit the 20-minute book); ``eval_limit``: test images
# scored per evaluation (None = all); ``eval_crop``: score central crops of this size (None =
# whole images; a CPU budget measure, so the dataset is then named e.g. 'embedded-test[crop128]');
# ``ablation_eval_crop``: the crop for chapter 5's many ablation networks (default: ``eval_crop``;
# at quick, chapters 4 and 6 score whole images and the ablations central 128-px crops);
# ``rsws_n``: Table 1's random architectures ranked by shared weights;
# ``memory``: the Eq. 5 vs Eq. 6 memory benchmark's supernet (hinas.bench.measure.supernet_memory).
# Chapters 1-3 (:func:`chapter_settings`): ``inner`` (chapter 1): the LWAS timing's repeats, image
# size and supernet overrides (``timing_net``; smoke times a tiny one) and the explorer's seeds per
# family; ``outer`` (chapter 2): ``bench``, the Eq. 5 / Eq. 6 measurement (one training step of the
# denoising supernet per mode, hinas.bench.measure.supernet_memory); ``heads`` (chapter 3): the benchmark
# ``sets`` and ``scales`` of the bicubic table and the images (``kernel_images``) of the kernel table.
SETTINGS = {
    "smoke": dict(seeds=[0], minor_seeds=1, search={}, train={}, eval_limit=1, eval_crop=48, rsws_n=2,
                  rn_edges=2, memory=dict(batch=1, size=16, layers=2, levels=3, steps=2, f=2, repeats=1),
                  inner=dict(timing_repeats=2, timing_size=16, timing_net=dict(f=2, steps=2), explorer_seeds=2),
                  outer=dict(bench=dict(batch=1, size=8, f=2, steps=1, repeats=1)),
                  heads=dict(sets=["Set5"], scales=[2, 3, 4], kernel_images=1)),
    "quick": dict(seeds=[0, 1], minor_seeds=1,
                  search=dict(epochs=6, arch_start_epoch=2, val_start_epoch=3),
                  train=dict(iterations=700, val_every=50),
                  # the ablations' 150 iterations of 8 32x32 patches floor SSIM: with the released
                  # gradient at SSIM <= 0 (and 100 iterations), 9 of 10 orderings compared networks
                  # that never beat the noisy input (measured); chapter 5 says so. At the released
                  # lr 0.05 two of them diverged (loss 0.16 -> 4e4 by iteration 70, 3.2 dB, below
                  # the noisy input); the same run at 0.02 ends at 20.2 dB (measured, LWAS + ResL, seed 0)
                  ablation_train=dict(iterations=150, val_every=25, nonpositive_ssim="clamp", train_lr=0.02),
                  ablation_table1_seeds=1,  # Table 1's rows but the full one: the first seed only (time)
                  eval_limit=None, eval_crop=None,
                  ablation_eval_crop=128,
                  rsws_n=10, rn_edges=2,
                  memory=dict(batch=2, size=32, layers=3, levels=3, steps=3, f=4, repeats=2),
                  inner=dict(timing_repeats=5, timing_size=32, timing_net={}, explorer_seeds=3),
                  outer=dict(bench=dict(batch=2, size=32, f=10, steps=4, repeats=2)),
                  heads=dict(sets=["Set5", "Set14", "B100"], scales=[2, 3, 4], kernel_images=5)),
    "gpu": dict(seeds=[0, 1, 2], minor_seeds=3, search={}, train={}, eval_limit=None, eval_crop=None, rsws_n=10,
                rn_edges=2, memory=dict(batch=6, size=64, layers=3, levels=3, steps=4, f=10),
                inner=dict(timing_repeats=20, timing_size=64, timing_net={}, explorer_seeds=4),
                outer=dict(bench=dict(batch=6, size=64, f=10, steps=4, repeats=5)),
                heads=dict(sets=["Set5", "Set14", "B100", "Urban100"], scales=[2, 3, 4], kernel_images=14)),
    "paper": dict(seeds=[0, 1, 2], minor_seeds=3, search={}, train={}, eval_limit=None, eval_crop=None, rsws_n=30,
                  rn_edges=2, memory=dict(batch=6, size=64, layers=3, levels=3, steps=4, f=10),
                  inner=dict(timing_repeats=20, timing_size=64, timing_net={}, explorer_seeds=4),
                  outer=dict(bench=dict(batch=6, size=64, f=10, steps=4, repeats=5)),
                  heads=dict(sets=["Set5", "Set14", "B100", "Urban100"], scales=[2, 3, 4], kernel_images=14)),
}


def eval_crop(profile: str, ablation: bool = False) -> Optional[int]:
    """The central crop test images are scored on (None: whole images); ``ablation``: chapter 5's."""
    s = profile_settings(profile)
    return s.get("ablation_eval_crop", s["eval_crop"]) if ablation else s["eval_crop"]


def profile_settings(profile: str) -> dict:
    """The :data:`SETTINGS` of ``profile``."""
    if profile not in SETTINGS:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(SETTINGS)}")
    return SETTINGS[profile]


CHAPTERS = ("inner", "outer", "heads")  # the SETTINGS keys of chapters 1-3


def chapter_settings(profile: str, chapter: str) -> dict:
    """The sizes chapter ``chapter`` (one of :data:`CHAPTERS`) uses at ``profile``."""
    if chapter not in CHAPTERS:
        raise ValueError(f"unknown chapter {chapter!r}; choose one of {', '.join(CHAPTERS)}")
    return profile_settings(profile)[chapter]


def base_config(profile: str, task: str = "denoise", *, seed: int = 0, device: str = "cpu",
                data_root: Optional[str] = None, scale: Optional[int] = None, ablation: bool = False,
                **overrides) -> RunConfig:
    """The book's configuration: the engine profile plus :data:`SETTINGS` overrides.

    ``ablation=True`` adds the profile's ``ablation_train`` overrides (chapter 5's shorter
    training budget, the same for every row of a table, so the rows stay comparable)."""
    s = profile_settings(profile)
    values = dict(s["search"], **s["train"])
    if ablation:
        values.update(s.get("ablation_train", {}))
    values.update(overrides)
    return RunConfig.from_profile(profile, task, scale, seed=seed, device=device, data_root=data_root,
                                  quiet=True, **values)


def default_device(profile: str) -> str:
    """The device a profile runs on: CUDA for ``gpu``/``paper`` when a GPU is visible, else CPU."""
    if profile in ("gpu", "paper"):
        try:
            import torch

            if torch.cuda.is_available():
                return "cuda"
        except ImportError:  # pragma: no cover - torch is a dependency
            pass
    return "cpu"


def repo_root() -> Path:
    """The repository whose ``results/`` the chapters read: the parent of the working folder when
    a notebook runs in ``notebooks/`` (Jupyter, the book's build), else :data:`REPO_ROOT` (the
    repository this package lives in)."""
    cwd = Path.cwd()
    return cwd.parent if cwd.name == "notebooks" else REPO_ROOT


def default_runs_root() -> Path:
    """The repository's ``runs/`` folder, wherever a notebook or the build is started from."""
    return REPO_ROOT / "runs"
