"""The book's settings: the sizes of chapters 1-3 per profile (:data:`SETTINGS`; the engine's
profiles are named in :data:`hinas.engine.config.PROFILES`), where runs and the repository live,
and which device a profile uses.

Chapters 4-6 are plans (``hinas/plans/search.yaml``, ``ablations.yaml``, ``sota.yaml``): their
sizes at each profile (seeds, search and training lengths, test images) are written there, each
with the reason it is what it is. The sizes here are chosen so that the whole book fits its time
budget on 2 CPU cores (about 3 minutes at ``smoke``, under 20 at ``quick``).
"""

from __future__ import annotations

from pathlib import Path

from hinas.eval.evaluation import PROTOCOLS as _EVAL_PROTOCOLS

REPO_ROOT = Path(__file__).resolve().parents[2]
PROTOCOLS = tuple(_EVAL_PROTOCOLS)  # the metric protocols every table is scored under

# Chapters 1-3 (:func:`chapter_settings`): ``inner`` (chapter 1): the LWAS timing's repeats, image
# size and supernet overrides (``timing_net``; smoke times a tiny one) and the explorer's seeds per
# family; ``outer`` (chapter 2): ``bench``, the Eq. 5 / Eq. 6 measurement (one training step of the
# denoising supernet per mode, hinas.bench.measure.supernet_memory); ``heads`` (chapter 3): the benchmark
# ``sets`` and ``scales`` of the bicubic table and the images (``kernel_images``) of the kernel table.
SETTINGS = {
    "smoke": dict(inner=dict(timing_repeats=2, timing_size=16, timing_net=dict(f=2, steps=2), explorer_seeds=2),
                  outer=dict(bench=dict(batch=1, size=8, f=2, steps=1, repeats=1)),
                  heads=dict(sets=["Set5"], scales=[2, 3, 4], kernel_images=1)),
    "quick": dict(inner=dict(timing_repeats=5, timing_size=32, timing_net={}, explorer_seeds=3),
                  outer=dict(bench=dict(batch=2, size=32, f=10, steps=4, repeats=2)),
                  heads=dict(sets=["Set5", "Set14", "B100"], scales=[2, 3, 4], kernel_images=5)),
    "gpu": dict(inner=dict(timing_repeats=20, timing_size=64, timing_net={}, explorer_seeds=4),
                outer=dict(bench=dict(batch=6, size=64, f=10, steps=4, repeats=5)),
                heads=dict(sets=["Set5", "Set14", "B100", "Urban100"], scales=[2, 3, 4], kernel_images=14)),
    "paper": dict(inner=dict(timing_repeats=20, timing_size=64, timing_net={}, explorer_seeds=4),
                  outer=dict(bench=dict(batch=6, size=64, f=10, steps=4, repeats=5)),
                  heads=dict(sets=["Set5", "Set14", "B100", "Urban100"], scales=[2, 3, 4], kernel_images=14)),
}


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
