"""Training batches made on the device: no per-step host work (the fast CUDA path).

:class:`DeviceBatchStream` is a drop-in for :class:`hinas.data.sampling.BatchStream` built from
the same :class:`~hinas.data.PatchDataset` (``RunConfig.device_data``). The training images
live on the device once, as uint8 tensors padded into one ``N x H x W x C`` block (SR: the
MATLAB-bicubic LR images too, made once on the host); every batch is then one gather:

* sample ``i`` of cycle ``c`` visits image ``perm_c[i] % N`` (``perm_c`` a seeded permutation,
  as the host stream);
* crop corners, the dihedral element (0..7) and the noise level are drawn with a
  ``torch.Generator`` on the device, re-seeded per batch from ``(seed, cycle, position)``, so
  the stream's whole state is ``(cycle, position)`` and a resumed run draws the same batches;
* the 8 flips/rotations are index maps: ``augment8`` applied once to coordinate grids, so a
  patch is gathered already transformed (exactly what :func:`~hinas.data.augment8` gives);
* denoising noise is ``N(0, sigma/255)`` drawn on the device, added unclipped.

The draws differ from the host stream's numpy draws (same distribution, other numbers), so a
run with ``device_data`` is a different, equally valid sample; its run key says so.
"""

from __future__ import annotations

import numpy as np
import torch

from hinas.data.sampling import BatchCursor, augment8

__all__ = ["DeviceBatchStream", "on_device"]


def _dihedral_maps(p: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, cols), each 8 x p x p: element k of a p x p patch is ``patch[rows[k], cols[k]]``."""
    ii, jj = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    rows = np.stack([np.ascontiguousarray(augment8(ii, k)) for k in range(8)])
    cols = np.stack([np.ascontiguousarray(augment8(jj, k)) for k in range(8)])
    return torch.from_numpy(rows).to(device), torch.from_numpy(cols).to(device)


def _pack(images: list[np.ndarray], device) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 N x Hmax x Wmax x C block (zero padded) and the true sizes N x 2 (long)."""
    hmax = max(a.shape[0] for a in images)
    wmax = max(a.shape[1] for a in images)
    c = 1 if images[0].ndim == 2 else images[0].shape[2]
    block = np.zeros((len(images), hmax, wmax, c), dtype=np.uint8)
    for n, a in enumerate(images):
        block[n, : a.shape[0], : a.shape[1]] = a.reshape(a.shape[0], a.shape[1], c)
    sizes = np.array([a.shape[:2] for a in images], dtype=np.int64)
    return torch.from_numpy(block).to(device), torch.from_numpy(sizes).to(device)


class DeviceBatchStream(BatchCursor):
    """Batches of a :class:`~hinas.data.PatchDataset` made on ``device`` (see the module doc).

    Same interface as :class:`hinas.data.sampling.BatchStream` (the same :class:`BatchCursor`):
    ``next()`` -> (input, target) float32 ``B x C x h x w`` on ``device``; ``state()`` /
    ``load_state()``; ``batches_per_cycle``.
    """

    def __init__(self, dataset, batch_size: int, seed: int, device, rank: int = 0, world: int = 1):
        super().__init__(len(dataset), batch_size, seed, rank, world)
        self.device = torch.device(device)
        self.task = dataset.task
        self.patch = dataset.patch
        self.augment = dataset.augment
        self.n_images = len(dataset.records)
        if self.task == "denoise":
            self.images, self.sizes = _pack([r.image for r in dataset.records], self.device)
            self.sigmas = torch.tensor(dataset.sigmas, dtype=torch.float32, device=self.device)
            self.scale = None
        else:
            dataset.precompute()
            pairs = [dataset._pair(j) for j in range(self.n_images)]
            self.images, self.sizes = _pack([lr for _, lr in pairs], self.device)
            self.hr_images, _ = _pack([hr for hr, _ in pairs], self.device)
            self.scale = dataset.scale
            self.sigmas = None
            self.hr_rows, self.hr_cols = _dihedral_maps(self.patch * self.scale, self.device)
        self.rows, self.cols = _dihedral_maps(self.patch, self.device)
        self.generator = torch.Generator(device=self.device)

    def _draw_permutation(self) -> torch.Tensor:
        self.generator.manual_seed(self.permutation_seed())
        return torch.randperm(self.samples, generator=self.generator, device=self.device)

    def next(self):
        index = self._advance() % self.n_images
        # one seed per batch: the stream's state is (cycle, position) alone
        self.generator.manual_seed((self.seed * 1_000_003 + self.cycle) * 1_000_003 + self.position)
        return self._make(index)

    # -- the gather ---------------------------------------------------------------------------
    def _make(self, index: torch.Tensor):
        g, dev, p = self.generator, self.device, self.patch
        b = index.shape[0]
        h, w = self.sizes[index, 0], self.sizes[index, 1]
        y = (torch.rand(b, generator=g, device=dev) * (h - p + 1)).long().clamp_(max=h - p)
        x = (torch.rand(b, generator=g, device=dev) * (w - p + 1)).long().clamp_(max=w - p)
        k = (torch.randint(0, 8, (b,), generator=g, device=dev) if self.augment
             else torch.zeros(b, dtype=torch.long, device=dev))
        patch = self._gather(self.images, index, y, x, k, self.rows, self.cols)
        if self.task == "denoise":
            pick = torch.randint(0, len(self.sigmas), (b,), generator=g, device=dev)
            sigma = self.sigmas[pick].view(b, 1, 1, 1) / 255.0
            noise = torch.randn(patch.shape, generator=g, device=dev) * sigma
            return patch + noise, patch
        s = self.scale
        hr = self._gather(self.hr_images, index, y * s, x * s, k, self.hr_rows, self.hr_cols)
        return patch, hr

    @staticmethod
    def _gather(block, index, y, x, k, rows, cols) -> torch.Tensor:
        r = y.view(-1, 1, 1) + rows[k]  # B x p x p source rows, already flipped/rotated
        c = x.view(-1, 1, 1) + cols[k]
        out = block[index.view(-1, 1, 1), r, c]  # B x p x p x C, uint8
        return out.permute(0, 3, 1, 2).float().div_(255.0).contiguous()


def on_device(stream, device) -> DeviceBatchStream:
    """The device-made equivalent of a host :class:`~hinas.data.sampling.BatchStream`."""
    return DeviceBatchStream(stream.dataset, stream.batch_size, stream.seed, device, stream.rank, stream.world)
