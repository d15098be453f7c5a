"""``hinas restore``: run a trained network on your own images (denoise or super-resolve).

    hinas restore photo.png --weights runs/t1 --out restored/          # -> restored/photo.png
    hinas restore big.tif --weights runs/sr2 --out big_x2.png --tile 256 --overlap 32
    hinas restore clean.png --weights runs/dn50 --out demo/ --add-noise 50 --seed 0

Rules (checked for every input before the first image is written):

* Inputs are 8-bit grey or RGB images (PNG, JPEG, TIFF, BMP, ...) or folders of them; a file
  that is not one exits with code 2 and one line naming it (:func:`hinas.data.read_image`).
* Channels follow the network. A grey-input network (the denoisers, 1 channel) gets colour
  images converted to grey with PIL ``convert('L')`` (ITU-R 601 luma, as the training data)
  and a one-line note says so; the output is then grey. An RGB network (SR) gets a grey
  image replicated to three channels and returns a grey image (the luma of its output).
* Denoising keeps the size; SR multiplies it by the network's scale.
* ``--tile N`` runs the network on N x N tiles that overlap by ``--overlap`` pixels and
  blends the overlaps with linear ramps, so large images fit in memory; with an overlap of
  a few dozen pixels the result equals the untiled one to within a grey level (tested).
* Outputs are never overwritten without ``--force``; two inputs mapping to one output name
  are refused, and so is an output that is an input (also through a hard or symbolic link)
  or lies inside an input folder, with or without ``--force``.
* Every option is checked first: ``--sigma``/``--add-noise`` are finite levels in 0-255,
  ``--device`` is cpu, cuda or cuda:N and present on this machine.

The command line lives in :mod:`hinas.cli.restore`.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np

from hinas.errors import DataError, HinasError
from hinas.safeio import finite_number, one_line, quote

__all__ = ["tiled_forward", "restore_array", "restore_files"]

OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


# ------------------------------------------------------------------------------ tiling
def _starts(length: int, tile: int, stride: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def _ramp(n: int, ramp: int, head: bool, tail: bool):
    """1-D blending weights of length n: rising over ``ramp`` pixels at a side that borders
    another tile (head/tail), 1 elsewhere; never 0, so every pixel keeps some weight."""
    import torch

    w = torch.ones(n)
    r = min(ramp, n // 2)
    if r > 0:
        up = (torch.arange(r, dtype=torch.float32) + 0.5) / r
        if head:
            w[:r] = up
        if tail:
            w[n - r:] = up.flip(0)
    return w


def tile_count(height: int, width: int, tile: int | None, overlap: int) -> int:
    if not tile:
        return 1
    stride = tile - overlap
    return len(_starts(height, tile, stride)) * len(_starts(width, tile, stride))


def tiled_forward(model, x, tile: int | None = None, overlap: int = 32, scale: int = 1, on_tile=None):
    """``model(x)`` for a 1xCxHxW tensor, computed on ``tile`` x ``tile`` tiles overlapping by
    ``overlap`` pixels (input scale), blended with linear ramps over the overlaps.

    ``scale`` is the network's output/input size ratio (1 for denoising). ``on_tile`` is
    called after each tile (progress bars). Without ``tile`` (or when the image fits in one
    tile) this is exactly ``model(x)``.
    """
    _, _, h, w = x.shape
    if not tile or (h <= tile and w <= tile):
        y = model(x)
        if on_tile:
            on_tile()
        return y
    if overlap < 0 or overlap >= tile:
        raise HinasError(f"--overlap must be between 0 and the tile size - 1 ({tile - 1}), got {overlap}")
    stride = tile - overlap
    out = weight = None
    for y0 in _starts(h, tile, stride):
        for x0 in _starts(w, tile, stride):
            th, tw = min(tile, h), min(tile, w)
            y = model(x[:, :, y0:y0 + th, x0:x0 + tw])
            if out is None:
                out = y.new_zeros(y.shape[0], y.shape[1], h * scale, w * scale)
                weight = y.new_zeros(1, 1, h * scale, w * scale)
            wy = _ramp(th * scale, overlap * scale, y0 > 0, y0 + th < h)
            wx = _ramp(tw * scale, overlap * scale, x0 > 0, x0 + tw < w)
            mask = (wy[:, None] * wx[None, :]).to(y)
            ys, xs = slice(y0 * scale, (y0 + th) * scale), slice(x0 * scale, (x0 + tw) * scale)
            out[:, :, ys, xs] += y * mask
            weight[:, :, ys, xs] += mask
            if on_tile:
                on_tile()
    return out / weight


# ---------------------------------------------------------------------------- one image
def network_channels(spec: dict) -> int:
    return int(spec.get("in_channels") or (1 if spec["task"] == "denoise" else 3))


def prepare_input(img: np.ndarray, channels: int) -> tuple[np.ndarray, str | None]:
    """uint8 HxW / HxWx3 -> the array the network reads, and a note when it was converted."""
    from hinas.data.degrade import to_grey

    if channels == 1 and img.ndim == 3:
        equal = bool((img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all())
        note = None if equal else ("colour image converted to grey (ITU-R 601 luma): this network "
                                   "denoises grey images; the output is grey")
        return to_grey(img), note
    if channels == 3 and img.ndim == 2:
        return np.repeat(img[..., None], 3, axis=2), None
    return img, None


def restore_array(model, img01: np.ndarray, *, scale: int = 1, tile: int | None = None, overlap: int = 32,
                  device="cpu", on_tile=None) -> np.ndarray:
    """Run ``model`` on a float image in [0, 1] (HxW or HxWxC); returns float32 in [0, 1]."""
    import torch

    from hinas.eval.evaluation import from_tensor, to_tensor

    with torch.no_grad():
        y = tiled_forward(model, to_tensor(img01, device), tile, overlap, scale, on_tile)
    return from_tensor(y)


# ------------------------------------------------------------------------------- files
def _expand_inputs(inputs) -> list[Path]:
    from hinas.data.datasets import list_image_files

    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = list_image_files(p)
            if not found:
                raise DataError(f"{p}: folder holds no images (PNG, JPEG, TIFF, ...); give image files or another folder")
            files.extend(Path(f) for f in found)
        elif p.exists():
            files.append(p)
        else:
            raise DataError(f"{p}: no such file or folder; check the path")
    return files


def _output_paths(files: list[Path], out: Path, with_noisy: bool) -> list[Path]:
    single_file = out.suffix.lower() in OUTPUT_SUFFIXES and not out.is_dir()
    if single_file and len(files) > 1:
        raise HinasError(f"--out {out} is a file name but {len(files)} images were given; give a folder")
    targets = [out] if single_file else [out / f"{f.stem}.png" for f in files]
    seen: dict[Path, Path] = {}
    for f, t in zip(files, targets):
        for path in ([t, noisy_path(t)] if with_noisy else [t]):
            if path in seen:
                raise HinasError(f"{f} and {seen[path]} would both be written to {path}; "
                                 f"restore them into separate folders")
            seen[path] = f
    return targets


def noisy_path(target: Path) -> Path:
    return target.with_name(f"{target.stem}_noisy.png")


def _part_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.part{path.suffix}")


def _noise_level(value, option: str) -> float | None:
    """A noise level given on the command line: finite and within 0-255, else one line."""
    if value is None:
        return None
    try:
        return finite_number(value, option, lo=0, hi=255)
    except HinasError as exc:
        raise HinasError(f"{exc}; give a noise level between 0 and 255 (the 0-255 pixel scale)") from None


def _real(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symbolic-link loop
        return Path(os.path.abspath(path))


def _check_writes(writes: list[Path], inputs: list[Path], out: Path) -> None:
    """Refuse, before anything is written, an output that is an input (same file after resolving,
    also through hard or symbolic links, as ``os.path.samefile``) or lies inside an input folder,
    that is a folder, or whose folder cannot be made or written."""
    by_id, by_path, folders = {}, {}, []
    for inp in inputs:
        try:
            st = inp.stat()
            by_id[(st.st_dev, st.st_ino)] = inp
        except OSError:
            pass
        real = _real(inp)
        by_path[real] = inp
        if inp.is_dir():
            folders.append((real, inp))
    for path in writes:
        for candidate in (path, _part_path(path)):
            where = _real(candidate)
            inp = by_path.get(where)
            if inp is None:
                try:
                    st = candidate.stat()
                    inp = by_id.get((st.st_dev, st.st_ino))
                except OSError:
                    pass
            if inp is not None:
                raise HinasError(f"--out {quote(out)}: {quote(path)} is the input {quote(inp)} itself; restoring "
                                 f"would overwrite the input (even with --force); choose another --out")
            for real, folder in folders:
                if real in where.parents:
                    raise HinasError(f"--out {quote(out)}: {quote(path)} lies inside the input folder "
                                     f"{quote(folder)}; choose an --out outside the input folders")
        if path.is_dir():
            raise HinasError(f"{quote(path)} is a folder where the output image would go; remove it or choose "
                             f"another --out")
    parent = writes[0].parent if writes else out
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise HinasError(f"--out {quote(out)}: {quote(parent)} is a file, not a folder; choose another --out")
    if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise HinasError(f"--out {quote(out)}: cannot write in {quote(parent)} (permission denied); choose a "
                         f"folder you can write to")


def _save(arr_uint8: np.ndarray, path: Path) -> None:
    """Write atomically (temporary ``.part`` file + rename): an interrupted run or a full disk leaves
    no half-written image; a failure names ``path`` and removes the temporary file."""
    from PIL import Image

    tmp = _part_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr_uint8).save(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno is None:  # PIL's own errors (an encoder) carry no errno
            raise HinasError(f"{quote(path)}: could not be written ({one_line(str(exc))[:120]}); "
                             f"check the free disk space and the permissions") from None
        raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def restore_files(weights, inputs, out, *, sigma: float | None = None, scale: int | None = None,
                  tile: int | None = None, overlap: int = 32, add_noise: float | None = None, seed: int = 0,
                  force: bool = False, device: str = "cpu", progress: bool = True) -> dict:
    """Restore image files with the network of a training run folder; see the module doc."""
    from hinas.data.datasets import read_image
    from hinas.data.degrade import add_noise_seeded, to_grey
    from hinas.engine.common import check_device
    from hinas.space.network_file import load_trained
    from hinas.eval.evaluation import quantise

    # -- validate everything before the first write ------------------------------------------
    sigma = _noise_level(sigma, "--sigma")
    add_noise = _noise_level(add_noise, "--add-noise")
    if tile is not None and tile < 16:
        raise HinasError(f"--tile must be at least 16 pixels, got {tile}")
    if overlap < 0 or (tile and overlap >= tile):
        raise HinasError(f"--overlap must be between 0 and --tile - 1, got {overlap}")
    device = check_device(device)
    files = _expand_inputs(inputs)
    out = Path(out)
    targets = _output_paths(files, out, add_noise is not None)
    writes = [p for t in targets for p in ([t, noisy_path(t)] if add_noise is not None else [t])]
    _check_writes(writes, [Path(i) for i in inputs] + files, out)
    model, spec = load_trained(weights, device=device)
    task, net_scale = spec["task"], spec.get("scale") or 1
    if task == "denoise":
        if scale is not None:
            raise HinasError(f"{weights} holds a denoising network: use --sigma, not --scale")
    else:
        if sigma is not None or add_noise is not None:
            raise HinasError(f"{weights} holds an SR x{net_scale} network: --sigma/--add-noise are for denoising")
        if scale is not None and scale != net_scale:
            raise HinasError(f"{weights} holds an x{net_scale} network, not x{scale}; use --scale {net_scale}")
    notes: list[str] = []
    trained_sigma = _trained_sigma(Path(weights)) if task == "denoise" else None
    level = sigma if sigma is not None else add_noise
    if level is not None and trained_sigma and float(level) not in trained_sigma:
        notes.append(f"this network was trained for sigma {'/'.join(f'{s:g}' for s in trained_sigma)}, "
                     f"the input has sigma {level:g}; expect weaker results")
    channels = network_channels(spec)
    shapes = []
    for f in files:
        img = read_image(f)  # DataError naming the file for anything that is not an 8-bit image
        h, w = img.shape[:2]
        if min(h, w) < 4:
            raise DataError(f"{f}: image {w}x{h} is too small to restore (at least 4x4 pixels)")
        shapes.append((h, w))
    existing = [p for p in writes if p.exists()]
    if existing and not force:
        raise HinasError(f"{existing[0]} exists{f' (and {len(existing) - 1} more)' if len(existing) > 1 else ''}; "
                         f"pass --force to overwrite or choose another --out")

    # -- restore ---------------------------------------------------------------------------------
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(tile_count(h, w, tile, overlap) for h, w in shapes), unit="tile", file=sys.stderr,
                   desc="restore", leave=False)
    results = []
    try:
        for f, target in zip(files, targets):
            img = read_image(f)
            net_in, note = prepare_input(img, channels)
            if note:
                notes.append(f"{f}: {note}")
            x = net_in.astype(np.float32) / 255.0
            noisy_file = None
            if add_noise is not None:
                x = add_noise_seeded(x, add_noise, f.name, extra=f"seed={seed}")
                noisy_file = noisy_path(target)
                _save(quantise(np.clip(x, 0, 1)), noisy_file)
            y = restore_array(model, x, scale=net_scale, tile=tile, overlap=overlap, device=device,
                              on_tile=bar.update if bar is not None else None)
            y8 = quantise(y)
            if y8.ndim == 3 and y8.shape[2] == 1:
                y8 = y8[..., 0]
            if img.ndim == 2 and y8.ndim == 3:  # grey in, grey out
                y8 = to_grey(y8)
            _save(y8, target)
            results.append({"input": str(f), "output": str(target), "noisy": str(noisy_file) if noisy_file else None,
                            "size_in": [img.shape[1], img.shape[0]], "size_out": [y8.shape[1], y8.shape[0]]})
    finally:
        if bar is not None:
            bar.close()
    return {"weights": str(weights), "task": task, "scale": spec.get("scale"), "tile": tile, "overlap": overlap,
            "add_noise": add_noise, "seed": seed if add_noise is not None else None, "images": results,
            "notes": notes}


def _trained_sigma(run_dir: Path) -> list[float] | None:
    """The noise levels the run in ``run_dir`` trained at (its ``config.yaml``), or None when that
    file is absent, oversized, not YAML or says nothing usable: only a note depends on it."""
    from hinas.errors import HinasError
    from hinas.safeio import load_yaml_file

    cfg = run_dir / "config.yaml"
    if not cfg.is_file():
        return None
    try:
        data = load_yaml_file(cfg, "run config")  # bounded: a config.yaml is small
        sigmas = [float(s) for s in data.get("sigma") or []]
    except (OSError, HinasError, AttributeError, TypeError, ValueError, OverflowError):
        return None
    return [s for s in sigmas if math.isfinite(s)] or None
