"""Training sampling: the search split and random 64x64 patches with the 8 flips/rotations.

Reference behaviour (REFERENCE.md sections 5.2, 6, 8), with our deliberate differences:

* W/A/V split: sorted by name, V = the last ``floor(val_fraction * N)`` images, the rest
  halved into W (first) and A (second); ``mode="random"`` shuffles first with ``seed``.
* one "epoch" = one random crop per image (``samples_per_epoch`` defaults to ``len(records)``);
* augmentation: one of the 8 elements of the dihedral group (rot90 k times, then an optional
  horizontal flip) - the same set as the reference's rot90 + h-flip; for denoising, before
  it, the reference's RandomRescaleCrop when ``rescale=True`` (with p=0.5 the whole image is
  resized by U(0.8, 1.2) with PIL bicubic, then cropped; :func:`rescale_crop`);
* denoising noise is added after cropping/augmenting, unclipped, sigma drawn per sample from
  the list when several are given (the search uses [30, 50, 70]);
* every item is a pure function of (seed, epoch, index): :meth:`PatchDataset.set_epoch`
  lets a resumed run see exactly the samples it would have seen;
* batches come from a :class:`BatchStream` (host) or its device twin
  (:class:`hinas.data.device_sampling.DeviceBatchStream`); both walk a :class:`BatchCursor`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from hinas.data.degrade import make_lr
from hinas.errors import DataError

__all__ = ["search_split", "PatchDataset", "augment8", "rescale_crop", "crop_center", "central_crops", "crop_of"]

RESCALE_PROB = 0.5
RESCALE_RANGE = (0.8, 1.2)


def search_split(records, mode: str = "reference", val_fraction: float = 0.02, seed: int = 0):
    """Split images into (W, A, V) for the bilevel search.

    ``mode="reference"``: sorted by name; V = the last ``floor(val_fraction*N)`` images (at
    least 1); the remaining images: W = the first half (rounded up), A = the rest.
    ``mode="random"``: the same sizes after a seeded shuffle. With 300 BSDS images and 2%:
    W=147, A=147, V=6. Needs at least 3 images.
    """
    recs = list(records.records if hasattr(records, "records") else records)
    n = len(recs)
    if n < 3:
        raise DataError(f"the search split needs at least 3 images (one each for W, A and V), got {n}; "
                        f"use a bigger training folder")
    recs.sort(key=lambda r: r.name)
    if mode == "random":
        order = np.random.default_rng(seed).permutation(n)
        recs = [recs[i] for i in order]
    elif mode != "reference":
        raise DataError(f"unknown split mode '{mode}': use 'reference' or 'random'")
    n_val = min(max(1, int(math.floor(val_fraction * n))), n - 2)
    rest = recs[: n - n_val]
    v = recs[n - n_val:]
    n_w = (len(rest) + 1) // 2
    return rest[:n_w], rest[n_w:], v


def augment8(arr: np.ndarray, k: int) -> np.ndarray:
    """Element ``k`` (0..7) of the dihedral group: rot90 ``k % 4`` times, h-flip if ``k >= 4``."""
    out = np.rot90(arr, k % 4, axes=(0, 1))
    if k >= 4:
        out = out[:, ::-1]
    return out


def rescale_crop(img: np.ndarray, patch: int, rng: np.random.Generator) -> np.ndarray:
    """The released code's ``RandomRescaleCrop`` (transforms.py): with probability 0.5 scale the
    whole image by f ~ U(0.8, 1.2) (size floor(h f) x floor(w f), PIL bicubic), then take a
    ``patch`` crop at a uniformly drawn relative position. Draws 3 or 4 numbers from ``rng``."""
    from PIL import Image

    factor = float(rng.uniform(*RESCALE_RANGE)) if rng.random() <= RESCALE_PROB else 1.0
    h, w = img.shape[:2]
    nh, nw = math.floor(h * factor), math.floor(w * factor)
    if nh < patch or nw < patch:  # only for images within 25% of the crop size
        factor, nh, nw = 1.0, h, w
    loc_h, loc_w = float(rng.random()), float(rng.random())
    y, x = math.floor((nh - patch) * loc_h), math.floor((nw - patch) * loc_w)
    if factor != 1.0:
        img = np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize((nw, nh), Image.BICUBIC))
    return img[y:y + patch, x:x + patch]


def _to_tensor(a: np.ndarray) -> torch.Tensor:
    a = np.ascontiguousarray(a, dtype=np.float32) / 255.0
    if a.ndim == 2:
        a = a[None]
    else:
        a = a.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(a))


class PatchDataset(torch.utils.data.Dataset):
    """Random training patches; ``dataset[i]`` -> (input, target) float32 CHW tensors in [0, 1].

    * ``task="denoise"``: target = a ``patch`` x ``patch`` crop, input = target +
      N(0, sigma/255), unclipped (so it may leave [0, 1]); ``sigma`` a number or a list to draw
      from per sample.
    * ``task="sr"``: input = an LR ``patch`` x ``patch`` crop of ``imresize(modcrop(HR, s), 1/s)``
      (MATLAB bicubic, computed once per image and cached), target = the aligned HR crop of
      ``patch*scale``. Images must be RGB.

    ``rescale`` (denoising only): the reference's RandomRescaleCrop before the rotation/flip.
    Item ``i`` of epoch ``e`` draws from ``numpy.random.default_rng([seed, e, i])``.
    """

    def __init__(self, records, task: str, *, patch: int = 64, sigma=None, scale=None, augment: bool = True,
                 samples_per_epoch: int | None = None, seed: int = 0, rescale: bool = False):
        recs = list(records.records if hasattr(records, "records") else records)
        if not recs:
            raise DataError("no training images: the image list is empty")
        t = task.lower()
        if t in ("dn", "denoise", "denoising"):
            t = "denoise"
        elif t != "sr":
            raise DataError(f"unknown task '{task}': use 'denoise' or 'sr'")
        self.task = t
        self.records = recs
        self.patch = int(patch)
        self.augment = augment
        self.rescale = bool(rescale) and t == "denoise"
        self.seed = int(seed)
        self.epoch = 0
        self.samples_per_epoch = int(samples_per_epoch) if samples_per_epoch else len(recs)
        if t == "denoise":
            if sigma is None:
                raise DataError("denoising patches need a noise level: give sigma (0-255 scale), e.g. 30")
            self.sigmas = [float(s) for s in (sigma if isinstance(sigma, (list, tuple)) else [sigma])]
            if not self.sigmas or any(s < 0 for s in self.sigmas):
                raise DataError(f"sigma must be non-negative, got {sigma}")
            self.scale = None
            for r in recs:
                h, w = r.image.shape[:2]
                if h < self.patch or w < self.patch:
                    raise DataError(f"{r.path or r.name}: image {w}x{h} is smaller than the {self.patch}x{self.patch} "
                                    f"crop; remove it or use a smaller patch")
        else:
            if scale is None or int(scale) < 1:
                raise DataError("SR patches need an integer scale (2, 3 or 4)")
            self.scale = int(scale)
            self.sigmas = None
            for r in recs:
                if r.image.ndim != 3:
                    raise DataError(f"{r.path or r.name}: grey image in an RGB (SR) task; convert it to RGB "
                                    f"(PIL: Image.open(f).convert('RGB').save(f)) or remove it")
                h, w = r.image.shape[:2]
                need = self.patch * self.scale
                if h < need or w < need:
                    raise DataError(f"{r.path or r.name}: image {w}x{h} is smaller than the {need}x{need} HR crop "
                                    f"(patch {self.patch} x scale {self.scale}); remove it or use a smaller patch")
        self._lr_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose samples ``__getitem__`` returns (for exact resumption)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def _pair(self, j: int):
        if j not in self._lr_cache:
            r = self.records[j]
            self._lr_cache[j] = make_lr(r.image, self.scale, r.path or r.name)
        return self._lr_cache[j]

    def precompute(self) -> None:
        """Make every LR image now (SR), instead of on first use."""
        if self.task == "sr":
            for j in range(len(self.records)):
                self._pair(j)

    def __getitem__(self, index: int):
        if index < 0 or index >= len(self):
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        j = int(index) % len(self.records)
        p = self.patch
        k = int(rng.integers(8)) if self.augment else 0
        if self.task == "denoise":
            img = self.records[j].image
            if self.rescale:
                crop = rescale_crop(img, p, rng)
            else:
                h, w = img.shape[:2]
                y = int(rng.integers(h - p + 1))
                x = int(rng.integers(w - p + 1))
                crop = img[y:y + p, x:x + p]
            clean = augment8(crop, k)
            target = _to_tensor(clean)
            sigma = self.sigmas[int(rng.integers(len(self.sigmas)))] if len(self.sigmas) > 1 else self.sigmas[0]
            noise = rng.standard_normal(target.shape, dtype=np.float32) * np.float32(sigma / 255.0)
            return target + torch.from_numpy(noise), target
        hr, lr = self._pair(j)
        s = self.scale
        h, w = lr.shape[:2]
        y = int(rng.integers(h - p + 1))
        x = int(rng.integers(w - p + 1))
        lr_p = augment8(lr[y:y + p, x:x + p], k)
        hr_p = augment8(hr[y * s:(y + p) * s, x * s:(x + p) * s], k)
        return _to_tensor(lr_p), _to_tensor(hr_p)


class BatchCursor:
    """Where a seeded stream of batches stands; shared by the host and the device streams.

    Cycle ``c`` visits every one of ``samples`` once, in a permutation seeded by ``(seed, c)``
    (the subclass draws it); the whole state is ``(cycle, position)``, so a resumed run draws
    exactly the batches the interrupted one would have. With several processes, each takes its
    share ``[rank::world]`` of every global batch.
    """

    def __init__(self, samples: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        self.samples = int(samples)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.rank, self.world = rank, world
        self.cycle, self.position = 0, 0
        self._perm_cycle, self._perm = None, None

    @property
    def batches_per_cycle(self) -> int:
        return -(-self.samples // self.batch_size)

    def state(self) -> dict:
        return {"cycle": self.cycle, "position": self.position}

    def load_state(self, state: dict) -> None:
        self.cycle, self.position = int(state["cycle"]), int(state["position"])

    def permutation_seed(self) -> int:
        return self.seed * 100_003 + self.cycle

    def _draw_permutation(self):
        raise NotImplementedError

    def _advance(self):
        """The next global batch's sample indices (this process's share); moves the cursor."""
        if self.position >= self.batches_per_cycle:
            self.cycle += 1
            self.position = 0
        if self._perm_cycle != self.cycle:
            self._perm = self._draw_permutation()
            self._perm_cycle = self.cycle
        start = self.position * self.batch_size
        idx = self._perm[start : start + self.batch_size]
        self.position += 1
        if self.world > 1:
            idx = idx[self.rank :: self.world] if len(idx) > self.rank else idx[:1]
        return idx


class BatchStream(BatchCursor):
    """Batches of a :class:`PatchDataset` made on the host, the dataset's epoch set to the cycle."""

    def __init__(self, dataset, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        super().__init__(len(dataset), batch_size, seed, rank, world)
        self.dataset = dataset

    def _draw_permutation(self):
        return torch.randperm(self.samples, generator=torch.Generator().manual_seed(self.permutation_seed())).tolist()

    def next(self):
        idx = self._advance()
        self.dataset.set_epoch(self.cycle)
        items = [self.dataset[i] for i in idx]
        return torch.stack([a for a, _ in items]), torch.stack([b for _, b in items])


def crop_center(rec, size):
    """The central ``size`` x ``size`` crop of an image record (the whole image where it is smaller;
    ``size`` None: the record itself)."""
    from hinas.data.datasets import ImageRecord

    if size is None:
        return rec
    h, w = rec.image.shape[:2]
    ch, cw = min(size, h), min(size, w)
    y, x = (h - ch) // 2, (w - cw) // 2
    return ImageRecord(rec.name, rec.path, np.ascontiguousarray(rec.image[y:y + ch, x:x + cw]))


def central_crops(dataset, size):
    """``dataset`` with every image cut to its central ``size`` crop, named ``NAME[cropSIZE]`` (a CPU
    budget's test set: its scores are not comparable with whole images); ``size`` None: ``dataset``."""
    from hinas.data.datasets import ImageDataset

    if size is None:
        return dataset
    return ImageDataset(f"{dataset.name}[crop{size}]", [crop_center(r, size) for r in dataset.records],
                        grey=dataset.grey, embedded=dataset.embedded, allows_grey=dataset.allows_grey)


def crop_of(name: str) -> tuple[str, int | None]:
    """``('embedded-test', 48)`` for a :func:`central_crops` name ``'embedded-test[crop48]'``;
    ``(name, None)`` for any other name."""
    import re

    m = re.fullmatch(r"(.+)\[crop([1-9][0-9]{0,4})\]", name)
    return (m.group(1), int(m.group(2))) if m else (name, None)
