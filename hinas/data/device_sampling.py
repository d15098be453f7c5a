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
* denoising noise is ``N(0, sigma/255)`` drawn on the device, added unclipped;
* denoising with ``rescale`` (the released RandomRescaleCrop, :func:`~hinas.data.rescale_crop`):
  with probability 0.5 the image is scaled by U(0.8, 1.2) to ``floor(h f) x floor(w f)`` and a
  crop is taken at a uniform relative position. Only the crop's pixels are resampled, with
  Pillow's bicubic filter reproduced exactly (its support widened when shrinking, weights
  normalised per output pixel, 22-bit fixed point, the horizontal pass rounded to uint8 before
  the vertical one), so a patch equals Pillow's resize-then-crop bit for bit (tested), in the
  pass order of Pillow up to 12 (the released code's); Pillow 13, which the host path calls,
  runs the vertical pass first where that is cheaper, one grey level apart on some pixels.

The draws differ from the host stream's numpy draws (same distribution, other numbers), so a
run with ``device_data`` is a different, equally valid sample; its run key says so.
"""

from __future__ import annotations

import numpy as np
import torch

from hinas.data.sampling import RESCALE_PROB, RESCALE_RANGE, BatchCursor, augment8

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
        self.rescale = bool(getattr(dataset, "rescale", False)) and dataset.task == "denoise"
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
        if self.rescale:
            crop = _rescaled_crops(self.images, index, h, w, p, g)  # B x p x p x C uint8
            patch = crop[torch.arange(b, device=dev).view(-1, 1, 1), self.rows[k], self.cols[k]]
            patch = patch.permute(0, 3, 1, 2).float().div_(255.0).contiguous()
        else:
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


# ---------------------------------------------------------------------------------------------
# RandomRescaleCrop on the device: Pillow's bicubic resize, computed for the crop's pixels only
# ---------------------------------------------------------------------------------------------
PRECISION_BITS = 22  # Pillow's fixed point for 8-bit resampling (Resample.c: 32 - 8 - 2)
BICUBIC_A = -0.5  # Pillow's bicubic (Keys' a = -0.5), support 2


def _bicubic(x: torch.Tensor) -> torch.Tensor:
    x = x.abs()
    a = BICUBIC_A
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def _pillow_weights(start: torch.Tensor, size_in: torch.Tensor, size_out: torch.Tensor, first: torch.Tensor,
                    p: int, window: int) -> torch.Tensor:
    """Pillow's fixed-point bicubic coefficients (Resample.c ``precompute_coeffs`` +
    ``normalize_coeffs_8bpc``) of output pixels ``start .. start+p-1`` of a resize from
    ``size_in`` to ``size_out`` (per sample), over source pixels ``first .. first+window-1``;
    B x p x window, float64 holding exact integers."""
    dev = start.device
    scale = size_in.double() / size_out.double()  # B
    filterscale = scale.clamp(min=1.0)
    support = 2.0 * filterscale
    center = (start.double().view(-1, 1) + torch.arange(p, device=dev, dtype=torch.float64) + 0.5) * scale.view(-1, 1)
    lo = torch.floor(center - support.view(-1, 1) + 0.5).clamp(min=0)  # (int) truncation; >= 0 after the clamp
    hi = torch.minimum(torch.floor(center + support.view(-1, 1) + 0.5), size_in.double().view(-1, 1))
    src = first.double().view(-1, 1, 1) + torch.arange(window, device=dev, dtype=torch.float64)  # B x 1 x K
    inside = (src >= lo.unsqueeze(-1)) & (src < hi.unsqueeze(-1))
    wgt = torch.where(inside, _bicubic((src - center.unsqueeze(-1) + 0.5) / filterscale.view(-1, 1, 1)),
                      torch.zeros((), dtype=torch.float64, device=dev))
    total = wgt.sum(-1, keepdim=True)
    wgt = torch.where(total != 0, wgt / total, wgt)
    one = float(1 << PRECISION_BITS)
    return torch.where(wgt < 0, torch.trunc(-0.5 + wgt * one), torch.trunc(0.5 + wgt * one))


def _round_pass(acc: torch.Tensor) -> torch.Tensor:
    """Pillow's ``clip8``: add half, shift right by PRECISION_BITS, clamp to 0..255 (exact in float64)."""
    return torch.floor((acc + float(1 << (PRECISION_BITS - 1))) / float(1 << PRECISION_BITS)).clamp_(0, 255)


def _rescaled_crops(block: torch.Tensor, index: torch.Tensor, h: torch.Tensor, w: torch.Tensor, p: int,
                    g: torch.Generator) -> torch.Tensor:
    """``B x p x p x C`` uint8 crops of RandomRescaleCrop (module doc) of images ``index``."""
    dev = block.device
    b = index.shape[0]
    lo_f, hi_f = RESCALE_RANGE
    scaled = torch.rand(b, generator=g, device=dev, dtype=torch.float64) <= RESCALE_PROB
    factor = lo_f + (hi_f - lo_f) * torch.rand(b, generator=g, device=dev, dtype=torch.float64)
    factor = torch.where(scaled, factor, torch.ones_like(factor))
    nh, nw = torch.floor(h.double() * factor).long(), torch.floor(w.double() * factor).long()
    small = (nh < p) | (nw < p)  # only for images within 25% of the crop size: not rescaled
    nh, nw = torch.where(small, h, nh), torch.where(small, w, nw)
    y = torch.floor((nh - p).double() * torch.rand(b, generator=g, device=dev, dtype=torch.float64)).long()
    x = torch.floor((nw - p).double() * torch.rand(b, generator=g, device=dev, dtype=torch.float64)).long()
    return pillow_crops(block, index, h, w, nh, nw, y, x, p)


def pillow_crops(block, index, h, w, nh, nw, y, x, p: int) -> torch.Tensor:
    """The ``p x p`` crops at ``(y, x)`` of images ``index`` (true sizes ``h x w``) resized to
    ``nh x nw`` with Pillow's bicubic (``Image.resize(..., BICUBIC)``), bit for bit; B x p x p x C uint8."""
    dev, b = block.device, index.shape[0]
    lo_f = RESCALE_RANGE[0]
    # source windows: every source pixel the crop's output pixels read (scale <= 1 / 0.8 here)
    window = int(np.ceil(p / lo_f)) + 2 * int(np.ceil(2 / lo_f)) + 4
    first_y = torch.floor((y.double() + 0.5) * h.double() / nh.double() - 2.0 * (h.double() / nh.double()).clamp(min=1)
                          + 0.5).clamp(min=0).long()
    first_x = torch.floor((x.double() + 0.5) * w.double() / nw.double() - 2.0 * (w.double() / nw.double()).clamp(min=1)
                          + 0.5).clamp(min=0).long()
    wy = _pillow_weights(y, h, nh, first_y, p, window)  # B x p x K
    wx = _pillow_weights(x, w, nw, first_x, p, window)
    rows = (first_y.view(-1, 1) + torch.arange(window, device=dev)).clamp(max=block.shape[1] - 1)
    cols = (first_x.view(-1, 1) + torch.arange(window, device=dev)).clamp(max=block.shape[2] - 1)
    src = block[index.view(-1, 1, 1), rows.view(b, -1, 1), cols.view(b, 1, -1)].double()  # B x K x K x C
    out = []
    for c in range(src.shape[-1]):  # horizontal pass first, rounded to uint8, then vertical (Resample.c)
        tmp = _round_pass(torch.bmm(src[..., c], wx.transpose(1, 2)))  # B x K x p
        out.append(_round_pass(torch.bmm(wy, tmp)))  # B x p x p
    return torch.stack(out, dim=-1).to(torch.uint8)


def on_device(stream, device) -> DeviceBatchStream:
    """The device-made equivalent of a host :class:`~hinas.data.sampling.BatchStream`."""
    return DeviceBatchStream(stream.dataset, stream.batch_size, stream.seed, device, stream.rank, stream.world)
