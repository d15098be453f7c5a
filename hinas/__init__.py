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
    "OPS": "hinas.ops",
    "PRIMITIVE_SETS": "hinas.ops",
    "SupernetConfig": "hinas.config",
    "Supernet": "hinas.supernet",
    "build_supernet": "hinas.supernet",
    "Genotype": "hinas.genotype",
    "viterbi": "hinas.genotype",
    "decode_cell": "hinas.genotype",
    "random_genotype": "hinas.genotype",
    "DerivedNetwork": "hinas.network",
    "build_network": "hinas.network",
    "count_parameters": "hinas.network",
    "count_flops": "hinas.network",
    "RestorationLoss": "hinas.losses",
    "differentiable_ssim": "hinas.losses",  # the loss's SSIM (torch, zero-padded); not the metric
    # metrics (BasicSR names and protocol; the HiNAS code's variants as reference_*)
    "calculate_psnr": "hinas.metrics",
    "calculate_ssim": "hinas.metrics",
    "reference_psnr": "hinas.metrics",
    "reference_ssim": "hinas.metrics",
    "rgb2y": "hinas.metrics",
    "evaluate": "hinas.evaluation",
    "imresize": "hinas.data.imresize",
    # runs: one RunConfig for CLI, API and notebooks
    "RunConfig": "hinas.engine.config",
    "PROFILES": "hinas.engine.config",
    "search": "hinas.engine.search",
    "train": "hinas.engine.train",
    "load_trained": "hinas.network_file",
    "evaluate_run": "hinas.evaluation",
    "cached_run": "hinas.engine",
    # using a trained network
    "restore_files": "hinas.restore",
    "export_onnx": "hinas.export",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hinas' has no attribute {name!r}")
