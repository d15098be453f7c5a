"""Search, training and evaluation runs (REFERENCE.md sections 5-6), crash-safe and resumable.

* :func:`search` (``hinas search``), :func:`train` (``hinas train``),
  :func:`evaluate_run` (``hinas eval --weights``);
* :class:`RunConfig`: one configuration object with profiles ``smoke``, ``quick``, ``gpu``,
  ``paper``;
* :func:`cached_run`: a run folder keyed by its configuration, reused when finished and
  resumed when not (the book uses it so a re-run does not recompute).
"""

from __future__ import annotations

from pathlib import Path

from hinas.engine.config import PROFILES, RunConfig
from hinas.eval.evaluation import evaluate_run
from hinas.engine.search import search
from hinas.engine.train import train

__all__ = ["PROFILES", "RunConfig", "search", "train", "evaluate_run", "cached_run", "run_dir_for"]


def run_dir_for(kind: str, config: RunConfig, root, genotype=None) -> Path:
    """The folder of a cached run: keyed by the settings, the resolved data root and the genotype,
    so a changed data source gets its own folder instead of being refused on resume."""
    from hinas.data.datasets import resolve_data_root
    from hinas.engine.runfolder import IDENTITY_FORMAT

    data = resolve_data_root(config.data_root)
    extra = [kind, f"identity-{IDENTITY_FORMAT}", str(Path(data).resolve()) if data else "embedded"]
    extra += [genotype.architecture()] if genotype is not None else []
    return Path(root) / f"{kind}-{config.profile}-{config.task}-{config.key(*extra)}"


def cached_run(kind: str, config: RunConfig, root, genotype=None, progress: bool | None = False) -> dict:
    """Run ``kind`` ('search' or 'train') once per configuration under ``root``.

    A finished run is returned as is; an interrupted one continues from its checkpoint.
    The result dict gains ``run_dir``.
    """
    out = run_dir_for(kind, config, root, genotype)
    if kind == "search":
        summary = search(config, out, resume=True, progress=progress)
    elif kind == "train":
        summary = train(config, genotype, out, resume=True, progress=progress)
    else:
        raise ValueError("kind must be 'search' or 'train'")
    return dict(summary, run_dir=str(out))
