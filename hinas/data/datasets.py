"""Benchmark datasets as folders of images, decoded once and cached in memory.

Layout of a data root (what ``data_scripts/download.py`` writes and ``../shared/data`` holds)::

    BSDS500/{train,val,test}/*.jpg      200 / 100 / 200 colour JPEGs (val = B100)
    Set5/*.png  Set14/*.png  Urban100/*.png  Manga109/*.png
    BSD68_gray/*.png  Set12_gray/*.png
    DIV2K/DIV2K_train_HR/*.png  DIV2K/DIV2K_valid_HR/*.png  (+ DIV2K_*_LR_bicubic/X{2,3,4})

The data root comes from ``--data-root``, else the ``HINAS_DATA`` environment variable.
Without one, only the *embedded* default is available: CC0 / public-domain photos bundled
with scikit-image, split as

* ``embedded-train`` (7): astronaut, coffee, rocket, hubble_deep_field, brick, grass, gravel
* ``embedded-val`` (1): moon
* ``embedded-test`` (3): camera, chelsea, coins

Results on the embedded images are **not comparable with the paper**; every output made on
them carries ``embedded: true`` / ``comparable_with_paper: false``.

Grey files in a colour dataset stay HxW arrays (``ImageRecord.is_grey``). Set14 has two
grey members by design (``bridge`` is stored grey, ``man`` as equal-channel RGB), so Set14
and the embedded sets allow them (``ImageDataset.allows_grey``); elsewhere a grey image in
an RGB task is reported as an error by the consumer.
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hinas.errors import DataError
from hinas.safeio import one_line, quote

# Pixels one image may claim before it is decoded: DIV2K's largest is ~4.2 M; PIL's own bomb
# guard starts at ~89 M and only warns, so a crafted header could still ask for gigabytes.
MAX_IMAGE_PIXELS = 64 * 1024 * 1024

__all__ = [
    "IMAGE_EXTENSIONS",
    "DATASETS",
    "EMBEDDED_SPLIT",
    "ImageRecord",
    "ImageDataset",
    "resolve_data_root",
    "list_datasets",
    "load_dataset",
    "task_datasets",
    "read_image",
    "list_image_files",
    "canonical_name",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".webp")

# name -> (candidate folders under the data root, expected count, colour kind, use)
DATASETS: dict[str, dict] = {
    "BSDS500-train": {"dirs": ["BSDS500/train", "BSDS500/images/train"], "expected": 200, "kind": "rgb",
                      "use": "denoising train (with val); SR train fallback (with test)"},
    "BSDS500-val": {"dirs": ["BSDS500/val", "BSDS500/images/val"], "expected": 100, "kind": "rgb",
                    "use": "denoising train (with train); = B100"},
    "BSDS500-test": {"dirs": ["BSDS500/test", "BSDS500/images/test"], "expected": 200, "kind": "rgb",
                     "use": "denoising test (grey, 'BSD200')"},
    "B100": {"dirs": ["B100", "BSD100", "BSDS500/val", "BSDS500/images/val"], "expected": 100, "kind": "rgb",
             "use": "SR test (= BSDS500 val)"},
    "BSD68": {"dirs": ["BSD68_gray", "BSD68"], "expected": 68, "kind": "grey", "use": "denoising test (DnCNN-style)"},
    "Set12": {"dirs": ["Set12_gray", "Set12"], "expected": 12, "kind": "grey", "use": "denoising test"},
    "Set5": {"dirs": ["Set5"], "expected": 5, "kind": "rgb", "use": "SR test"},
    "Set14": {"dirs": ["Set14"], "expected": 14, "kind": "rgb", "use": "SR test", "allows_grey": True},
    "Urban100": {"dirs": ["Urban100"], "expected": 100, "kind": "rgb", "use": "SR test"},
    "Manga109": {"dirs": ["Manga109"], "expected": 109, "kind": "rgb", "use": "SR test"},
    "DIV2K-train": {"dirs": ["DIV2K/DIV2K_train_HR", "DIV2K/train/HR", "DIV2K/train"], "expected": 800,
                    "kind": "rgb", "use": "SR train"},
    "DIV2K-val": {"dirs": ["DIV2K/DIV2K_valid_HR", "DIV2K/val/HR", "DIV2K/val", "DIV2K/valid"], "expected": 100,
                  "kind": "rgb", "use": "SR validation"},
}

ALIASES = {
    "bsd100": "B100",
    "bsd200": "BSDS500-test",
    "bsd500-train": "BSDS500-train",
    "bsd500-val": "BSDS500-val",
    "bsd500-test": "BSDS500-test",
    "bsd68_gray": "BSD68",
    "set12_gray": "Set12",
    "div2k": "DIV2K-train",
}

EMBEDDED_SPLIT = {
    "embedded-train": ["astronaut", "coffee", "rocket", "hubble_deep_field", "brick", "grass", "gravel"],
    "embedded-val": ["moon"],
    "embedded-test": ["camera", "chelsea", "coins"],
}

MANGA109_HOWTO = (
    "Manga109 is not redistributable: request it at http://www.manga109.org/en/download.html "
    "(academic use), then put its 109 PNG pages (the usual SR-benchmark 'Manga109' HR folder) in "
    "DATA_ROOT/Manga109 or run 'python data_scripts/download.py Manga109 --from DIR'"
)

NOT_COMPARABLE = ("embedded scikit-image photos: a smoke-test default, NOT comparable with the paper; "
                  "set --data-root or HINAS_DATA for the benchmark datasets")


@dataclass
class ImageRecord:
    """One decoded image: ``image`` is uint8 HxW (grey) or HxWx3 (RGB)."""

    name: str
    path: str | None
    image: np.ndarray = field(repr=False)

    @property
    def is_grey(self) -> bool:
        return self.image.ndim == 2

    @property
    def shape(self) -> tuple:
        return self.image.shape

    def as_rgb(self) -> "ImageRecord":
        """Equal-channel RGB for a grey image (the rule SR evaluation applies to grey inputs)."""
        if not self.is_grey:
            return self
        return ImageRecord(self.name, self.path, np.repeat(self.image[..., None], 3, axis=2))


class ImageDataset:
    """A named list of :class:`ImageRecord`, decoded on first access and kept in memory."""

    def __init__(self, name: str, records=None, *, paths=None, grey: bool = False, embedded: bool = False,
                 root: str | None = None, allows_grey: bool = False):
        self.name = name
        self.grey = grey
        self.embedded = embedded
        self.root = root
        self.allows_grey = allows_grey or grey
        self._paths = list(paths) if paths is not None else None
        self._records = list(records) if records is not None else None
        self._lock = threading.Lock()

    @property
    def comparable_with_paper(self) -> bool:
        return not self.embedded

    @property
    def records(self) -> list[ImageRecord]:
        if self._records is None:
            with self._lock:
                if self._records is None:
                    self._records = [
                        ImageRecord(Path(p).stem, str(p), read_image(p, grey=self.grey)) for p in self._paths
                    ]
        return self._records

    @property
    def names(self) -> list[str]:
        if self._records is not None:
            return [r.name for r in self._records]
        return [Path(p).stem for p in self._paths]

    def __len__(self) -> int:
        return len(self._records) if self._records is not None else len(self._paths)

    def __iter__(self):
        return iter(self.records)

    def __getitem__(self, i) -> ImageRecord:
        return self.records[i]

    def select(self, names) -> "ImageDataset":
        """The images named ``names`` (file stems), in this dataset's order, as a new dataset,
        decoding none of the others."""
        wanted = {str(n) for n in names}
        if self._records is not None:
            records = [r for r in self._records if r.name in wanted]
            return ImageDataset(self.name, records, grey=self.grey, embedded=self.embedded, root=self.root,
                                allows_grey=self.allows_grey)
        paths = [p for p in self._paths if Path(p).stem in wanted]
        return ImageDataset(self.name, paths=paths, grey=self.grey, embedded=self.embedded, root=self.root,
                            allows_grey=self.allows_grey)

    def limit(self, n: int | None) -> "ImageDataset":
        """The first ``n`` images (sorted by name) as a new dataset; ``None`` keeps all."""
        if n is None or n >= len(self):
            return self
        if n < 1:
            raise DataError(f"--limit must be at least 1, got {n}")
        if self._records is not None:
            return ImageDataset(self.name, self._records[:n], grey=self.grey, embedded=self.embedded,
                                root=self.root, allows_grey=self.allows_grey)
        return ImageDataset(self.name, paths=self._paths[:n], grey=self.grey, embedded=self.embedded,
                            root=self.root, allows_grey=self.allows_grey)

    def __repr__(self) -> str:
        return f"ImageDataset({self.name!r}, {len(self)} images, grey={self.grey}, embedded={self.embedded})"


# ----------------------------------------------------------------------------- reading

def _png_bit_depth(path: Path) -> int | None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(26)
    except OSError:
        return None
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return head[24]
    return None


def read_image(path, grey: bool = False) -> np.ndarray:
    """Decode one image file into uint8 HxW (grey file, or ``grey=True``) or HxWx3.

    ``grey=True`` converts colour with PIL ``convert('L')`` (ITU-R 601 luma, integer), as the
    reference code. Raises :class:`DataError` naming the file for unreadable, truncated,
    16-bit, alpha or otherwise unsupported images.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    fix_replace = "re-download it (python data_scripts/download.py) or delete it from the folder"
    if not path.is_file():
        raise DataError(f"{quote(path)}: no such image file; check the path or the data root")
    if _png_bit_depth(path) == 16:
        raise DataError(f"{quote(path)}: 16-bit PNG; hinas needs 8-bit images: convert it "
                        f"(e.g. PIL: Image.open(f).convert('RGB').save(f)) or remove it")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > MAX_IMAGE_PIXELS:
                    raise DataError(f"{quote(path)}: claims {w}x{h} pixels, more than hinas decodes "
                                    f"({MAX_IMAGE_PIXELS} pixels; a decompression bomb or not a benchmark "
                                    f"image); remove it from the folder")
                im.load()
                arr = _decode(im, path, grey)
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(f"{quote(path)}: too many pixels to decode safely (a decompression bomb?); "
                        f"remove it from the folder") from None
    except UnidentifiedImageError as exc:
        raise DataError(f"{quote(path)}: not an image file PIL can read ({exc.__class__.__name__}); "
                        f"remove it from the folder or replace it with a PNG/JPEG") from None
    except MemoryError:
        raise DataError(f"{quote(path)}: not enough memory to decode this image; remove it from the folder") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{quote(path)}: corrupt or truncated image ({one_line(str(exc))[:120]}); "
                        f"{fix_replace}") from None
    if arr.size == 0:
        raise DataError(f"{quote(path)}: empty image; {fix_replace}")
    return arr


def _decode(im, path, grey: bool) -> np.ndarray:
    """uint8 pixels of an opened image; refuses 16-bit, float and alpha images by name."""
    path = quote(path)
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        raise DataError(f"{path}: {mode} image (16-bit or float pixels); hinas needs 8-bit grey or "
                        f"RGB: convert it to 8-bit or remove it")
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        mode == "P" and "transparency" in im.info)
    if has_alpha:
        raise DataError(f"{path}: image has an alpha channel ({mode}); save it as RGB without "
                        f"transparency (PIL: Image.open(f).convert('RGB').save(f)) or remove it")
    if grey:
        out = im.convert("L") if mode != "L" else im
    elif mode in ("L", "1"):
        out = im.convert("L") if mode == "1" else im
    else:
        out = im.convert("RGB") if mode != "RGB" else im
    return np.array(out, dtype=np.uint8)


def list_image_files(folder) -> list[Path]:
    """Image files (by extension, case-insensitive) directly in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; check --data-root / HINAS_DATA or the dataset path")
    files = [p for p in folder.iterdir()
             if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: p.name)


# ----------------------------------------------------------------------------- roots / names

def resolve_data_root(data_root=None) -> Path | None:
    """``data_root`` if given, else ``$HINAS_DATA``, else ``None`` (= the embedded default)."""
    if data_root is None or str(data_root) == "":
        env = os.environ.get("HINAS_DATA")
        if not env:
            return None
        data_root = env
        origin = "HINAS_DATA"
    else:
        origin = "--data-root"
    root = Path(data_root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: data root ({origin}) is not a folder; point it at the folder holding "
                        f"Set5/, BSDS500/, ... (see data_scripts/download.py) or unset it for the embedded images")
    return root.resolve()


def canonical_name(name: str) -> str | None:
    """The registered dataset name for ``name`` (case-insensitive, with aliases), or None."""
    low = name.lower()
    for key in list(DATASETS) + list(EMBEDDED_SPLIT):
        if key.lower() == low:
            return key
    return ALIASES.get(low)


def _find_folder(root: Path, name: str) -> Path | None:
    for rel in DATASETS[name]["dirs"]:
        cand = root / rel
        if cand.is_dir():
            return cand
    return None


def list_datasets(data_root=None) -> dict:
    """Which datasets exist: name -> {found, path, images, expected, kind, use, embedded}.

    Only counts files (no decoding); ``hinas data check`` decodes them.
    """
    root = resolve_data_root(data_root)
    out: dict[str, dict] = {}
    for name, info in DATASETS.items():
        folder = _find_folder(root, name) if root is not None else None
        count = len(list_image_files(folder)) if folder is not None else 0
        out[name] = {"found": folder is not None and count > 0, "path": str(folder) if folder else None,
                     "images": count, "expected": info["expected"], "kind": info["kind"], "use": info["use"],
                     "embedded": False}
    for name, members in EMBEDDED_SPLIT.items():
        out[name] = {"found": True, "path": None, "images": len(members), "expected": len(members),
                     "kind": "mixed", "use": "embedded default split (not comparable with the paper)",
                     "embedded": True, "members": list(members)}
    return out


_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()


def _embedded(name: str, grey: bool) -> ImageDataset:
    import skimage.data

    records = []
    for member in EMBEDDED_SPLIT[name]:
        img = np.asarray(getattr(skimage.data, member)())
        if img.dtype != np.uint8:
            img = np.clip(img, 0, 255).astype(np.uint8)
        if img.ndim == 3 and img.shape[2] == 4:
            img = img[..., :3]
        if grey and img.ndim == 3:
            from PIL import Image

            img = np.array(Image.fromarray(img).convert("L"))
        records.append(ImageRecord(member, None, np.ascontiguousarray(img)))
    return ImageDataset(name, records, grey=grey, embedded=True, allows_grey=True)


def load_dataset(name, data_root=None, *, grey: bool = False) -> ImageDataset:
    """Load a dataset by registered name (see :data:`DATASETS`), ``embedded-*`` name, or folder.

    Images decode on first access of ``.records`` and are cached per (folder, grey) for the
    life of the process. ``grey=True`` converts colour images with PIL ``convert('L')``.
    """
    name = str(name)
    canon = canonical_name(name)
    if canon in EMBEDDED_SPLIT:
        key = ("embedded", canon, grey)
        with _CACHE_LOCK:
            if key not in _CACHE:
                _CACHE[key] = _embedded(canon, grey)
            return _CACHE[key]
    if canon is not None:
        root = resolve_data_root(data_root)
        if root is None:
            raise DataError(f"dataset {canon} needs a data root: pass --data-root DIR or set HINAS_DATA "
                            f"(download with 'python data_scripts/download.py {canon.split('-')[0]} --root DIR'); "
                            f"without one only embedded-train/-val/-test are available")
        folder = _find_folder(root, canon)
        if folder is None:
            looked = ", ".join(str(root / d) for d in DATASETS[canon]["dirs"])
            hint = MANGA109_HOWTO if canon == "Manga109" else (
                f"download it with 'python data_scripts/download.py {_download_name(canon)} --root {root}'")
            raise DataError(f"dataset {canon} not found under {root} (looked for {looked}); {hint}")
        allows_grey = bool(DATASETS[canon].get("allows_grey")) or DATASETS[canon]["kind"] == "grey"
        return _folder_dataset(folder, canon, grey, allows_grey)
    # a folder path (absolute, relative to the cwd, or relative to the data root)
    path = Path(name).expanduser()
    if not path.is_dir():
        root = resolve_data_root(data_root)
        if root is not None and (root / name).is_dir():
            path = root / name
        else:
            known = ", ".join(list(DATASETS) + list(EMBEDDED_SPLIT))
            raise DataError(f"unknown dataset '{name}': not a registered name ({known}) nor an existing folder")
    return _folder_dataset(path, path.name, grey, False)


def _download_name(canon: str) -> str:
    return {"B100": "BSDS500", "BSDS500-train": "BSDS500", "BSDS500-val": "BSDS500", "BSDS500-test": "BSDS500",
            "DIV2K-train": "DIV2K", "DIV2K-val": "DIV2K", "BSD68": "BSD68", "Set12": "Set12"}.get(canon, canon)


def _folder_dataset(folder: Path, name: str, grey: bool, allows_grey: bool) -> ImageDataset:
    folder = folder.resolve()
    files = list_image_files(folder)
    if not files:
        others = sorted(p.name for p in folder.iterdir())[:5]
        extra = f" (it holds: {', '.join(others)})" if others else ""
        raise DataError(f"{folder}: empty folder, no images ({'/'.join(e[1:] for e in IMAGE_EXTENSIONS[:3])}...)"
                        f"{extra}; put the dataset's images there or fix --data-root")
    key = ("folder", str(folder), grey, tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files))
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = ImageDataset(name, paths=files, grey=grey, root=str(folder), allows_grey=allows_grey)
        return _CACHE[key]


def _merge(name: str, datasets, grey: bool) -> ImageDataset:
    records = sorted((r for d in datasets for r in d.records), key=lambda r: r.name)
    return ImageDataset(name, records, grey=grey, embedded=any(d.embedded for d in datasets),
                        allows_grey=all(d.allows_grey for d in datasets))


def task_datasets(task: str, data_root=None) -> dict:
    """The paper's standard datasets for ``task`` ('denoise'/'dn' or 'sr').

    Returns ``{"task", "train": ImageDataset, "train_names": [...], "test": {name: ImageDataset},
    "grey": bool, "embedded": bool, "comparable_with_paper": bool, "note": str}``.

    * denoise: train = grey BSDS500 train+val (300, sorted by name, as BSD500_300.json),
      test = grey BSDS500-test ("BSD200"), plus BSD68/Set12 when present;
    * sr: train = DIV2K-train if present, else BSDS500 train+test (400; keeps B100 unseen),
      test = Set5, Set14, B100, Urban100 (and Manga109) as found;
    * without a data root: the embedded split for both, flagged not comparable.
    """
    t = task.lower()
    if t in ("dn", "denoise", "denoising"):
        t = "denoise"
    elif t in ("sr", "super-resolution", "superresolution"):
        t = "sr"
    else:
        raise DataError(f"unknown task '{task}': use 'denoise' or 'sr'")
    grey = t == "denoise"
    root = resolve_data_root(data_root)
    if root is None:
        return {"task": t, "train": load_dataset("embedded-train", grey=grey), "train_names": ["embedded-train"],
                "val": load_dataset("embedded-val", grey=grey),
                "test": {"embedded-test": load_dataset("embedded-test", grey=grey)}, "grey": grey,
                "embedded": True, "comparable_with_paper": False, "note": NOT_COMPARABLE}
    avail = list_datasets(root)
    if t == "denoise":
        train_names = ["BSDS500-train", "BSDS500-val"]
        test_names = ["BSDS500-test"] + [n for n in ("BSD68", "Set12") if avail[n]["found"]]
        note = "denoising: grey BSDS500 train+val (300) for search/training, BSDS500 test (BSD200) for evaluation"
    else:
        if avail["DIV2K-train"]["found"]:
            train_names = ["DIV2K-train"]
            note = "SR: DIV2K train (800) for search/training"
        else:
            train_names = ["BSDS500-train", "BSDS500-test"]
            note = ("SR: DIV2K not found, training on BSDS500 train+test (400 images; B100 = val stays unseen); "
                    "the paper trains on DIV2K")
        test_names = [n for n in ("Set5", "Set14", "B100", "Urban100", "Manga109") if avail[n]["found"]]
        if not test_names:
            raise DataError(f"no SR test set (Set5, Set14, B100, Urban100) under {root}; "
                            f"download them with 'python data_scripts/download.py Set5 Set14 Urban100 BSDS500 --root {root}'")
    train = _merge("+".join(train_names), [load_dataset(n, root, grey=grey) for n in train_names], grey)
    return {"task": t, "train": train, "train_names": train_names, "val": None,
            "test": {n: load_dataset(n, root, grey=grey) for n in test_names}, "grey": grey,
            "embedded": False, "comparable_with_paper": True, "note": note}
