"""hinas: an executable companion to HiNAS (Zhang et al., IJCV).

The public API is re-exported here lazily so that ``import hinas`` stays cheap and so that
the command line can start without importing every sub-module.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "HinasError": "hinas.errors",
    "GenotypeError": "hinas.errors",
    "ConfigError": "hinas.errors",
    "DataError": "hinas.errors",
    "OPS": "hinas.space.ops",
    "PRIMITIVE_SETS": "hinas.space.ops",
    "SupernetConfig": "hinas.space.spec",
    "Supernet": "hinas.space.supernet",
    "build_supernet": "hinas.space.supernet",
    "Genotype": "hinas.space.genotype",
    "viterbi": "hinas.space.genotype",
    "decode_cell": "hinas.space.genotype",
    "random_genotype": "hinas.space.genotype",
    "DerivedNetwork": "hinas.space.network",
    "build_network": "hinas.space.network",
    "count_parameters": "hinas.space.network",
    "count_flops": "hinas.space.network",
    "RestorationLoss": "hinas.losses",
    "differentiable_ssim": "hinas.losses",  # the loss's SSIM (torch, zero-padded); not the metric
    # metrics (BasicSR names and protocol; the HiNAS code's variants as reference_*)
    "calculate_psnr": "hinas.eval.metrics",
    "calculate_ssim": "hinas.eval.metrics",
    "reference_psnr": "hinas.eval.metrics",
    "reference_ssim": "hinas.eval.metrics",
    "rgb2y": "hinas.eval.metrics",
    "evaluate": "hinas.eval.evaluation",
    "imresize": "hinas.data.imresize",
    # runs: one RunConfig for CLI, API and notebooks
    "RunConfig": "hinas.engine.config",
    "PROFILES": "hinas.engine.config",
    "search": "hinas.engine.search",
    "train": "hinas.engine.train",
    "load_trained": "hinas.space.network_file",
    "evaluate_run": "hinas.eval.evaluation",
    "cached_run": "hinas.engine",
    # using a trained network
    "restore_files": "hinas.deploy.restore",
    "export_onnx": "hinas.deploy.export",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hinas' has no attribute {name!r}")
