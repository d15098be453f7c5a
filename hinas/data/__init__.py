"""Data: benchmark datasets, MATLAB-exact bicubic, seeded degradations, training patches.

Names are exported lazily so that ``hinas --help`` does not import torch.

* :func:`resolve_data_root`, :func:`list_datasets`, :func:`load_dataset`, :func:`task_datasets`
  (``hinas.data.datasets``): folders of images, the embedded scikit-image default;
* :func:`imresize`, :func:`modcrop` (``hinas.data.imresize``): MATLAB ``imresize`` bicubic;
* :func:`add_noise_seeded`, :func:`make_lr`, :func:`to_grey` (``hinas.data.degrade``);
* :func:`search_split`, :class:`PatchDataset`, :class:`BatchStream` (``hinas.data.sampling``).
"""

from __future__ import annotations

import importlib

# Imported eagerly (numpy only) so that ``hinas.data.imresize`` is the function, not the
# submodule of the same name.
from hinas.data.imresize import imresize, modcrop  # noqa: E402,F401

_EXPORTS = {
    "ImageRecord": "hinas.data.datasets",
    "ImageDataset": "hinas.data.datasets",
    "DATASETS": "hinas.data.datasets",
    "EMBEDDED_SPLIT": "hinas.data.datasets",
    "resolve_data_root": "hinas.data.datasets",
    "list_datasets": "hinas.data.datasets",
    "load_dataset": "hinas.data.datasets",
    "task_datasets": "hinas.data.datasets",
    "read_image": "hinas.data.datasets",
    "add_noise_seeded": "hinas.data.degrade",
    "noise_seed": "hinas.data.degrade",
    "make_lr": "hinas.data.degrade",
    "to_grey": "hinas.data.degrade",
    "search_split": "hinas.data.sampling",
    "BatchStream": "hinas.data.sampling",
    "PatchDataset": "hinas.data.sampling",
    "augment8": "hinas.data.sampling",
}

__all__ = sorted(list(_EXPORTS) + ["imresize", "modcrop"])


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hinas.data' has no attribute {name!r}")
